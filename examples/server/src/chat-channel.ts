import type { Channel } from '@rt/core'

/** The chat room stream of a room name. */
export const roomStream = (room: string): string => `chat_${room}`

/**
 * The demo channel: `{"channel":"ChatChannel","room":"lobby"}` streams from
 * `chat_lobby`; the `speak` action broadcasts `{user, text}` to the room.
 */
export const ChatChannel: Channel = {
  subscribed(ctx) {
    const room = ctx.params.room
    if (typeof room !== 'string' || !/^[\w-]{1,64}$/.test(room)) return ctx.reject()
    ctx.streamFrom(roomStream(room))
  },
  actions: {
    async speak(ctx, data) {
      const text = typeof data.text === 'string' ? data.text.slice(0, 2000) : ''
      if (text === '') return
      const user = typeof data.user === 'string' && data.user !== '' ? data.user.slice(0, 64) : 'anonymous'
      await ctx.broadcast(roomStream(String(ctx.params.room)), { user, text })
    }
  }
}
