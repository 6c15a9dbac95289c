export { Hub, newSessionId, type HubOptions, type ConnectOptions, type ConnectResult } from './hub.js'
export { Session, decodeIdentifier, type SessionSink, type CommandResult, type SessionMode } from './session.js'
export {
  PUBSUB_CHANNEL, TURBO_CHANNEL, pubsubChannel, turboChannel,
  type Channel, type Channels, type ChannelContext, type Authenticate, type Identity
} from './channels.js'
export {
  parseCommand, parseJsonl, validateCommand,
  type Command, type ParsedCommand, type JsonlLine, type HistoryRequest,
  type SubscribeCommand, type UnsubscribeCommand, type MessageCommand, type HistoryCommand, type PongCommand
} from './commands.js'
export {
  Outgoing, pingMessage, controlStream, isInternalStream, broadcastReply, disconnectMessage, buildIdentifier,
  type ServerMessage, type Encoder, type WelcomeMessage, type PingMessage, type IdentifierReply, type DisconnectMessage, type DataMessage
} from './protocol.js'
export type { ChannelSource } from './channel-source.js'
