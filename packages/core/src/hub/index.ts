export { Hub, newSessionId, type HubOptions, type ConnectOptions, type ConnectResult, type ConnectRejection } from './hub.js'
export { Session, decodeIdentifier, type SessionSink, type CommandResult, type SessionMode, type JoinedStream } from './session.js'
export {
  PUBSUB_CHANNEL, TURBO_CHANNEL, pubsubChannel, turboChannel,
  type Channel, type Channels, type ChannelContext, type Authenticate, type Identity, type StreamFromOptions, type ChannelPresence
} from './channels.js'
export { verifyJwt, requestToken, type JwtOptions, type JwtResult, type JwtFailure } from './jwt.js'
export { pingOptions, pingWheel, pingWheelCount, PingWheel, type Pingable, type PingOptions, type ParsedPingOptions } from './ping.js'
export { PresenceTracker, type PresenceEvent } from './presence.js'
export { REMOTE_COMMANDS_STREAM, canonicalIdentity, type RemoteDisconnect } from './remote-disconnect.js'
export { whisper } from './whisper.js'
export {
  parseCommand, parseJsonl, validateCommand,
  type Command, type ParsedCommand, type CommandLimits, type JsonlLine, type HistoryRequest,
  type SubscribeCommand, type UnsubscribeCommand, type MessageCommand, type HistoryCommand, type PongCommand,
  type WhisperCommand, type JoinCommand, type LeaveCommand, type PresenceCommand, type PresenceRecord
} from './commands.js'
export {
  Outgoing, encodeServerMessage, encodeDataPayload, pingMessage, controlStream, sortKeysDeep, isInternalStream, broadcastReply, disconnectMessage, buildIdentifier,
  type PingPrecision, type ServerMessage, type Encoder, type WelcomeMessage, type PingMessage, type IdentifierReply, type DisconnectMessage, type DataMessage
} from './protocol.js'
export type { ChannelSource } from './channel-source.js'
