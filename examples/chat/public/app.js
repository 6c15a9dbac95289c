// The rt chat demo: @rt/client over SSE with long-polling fallback, the example server's ChatChannel.
// With ?share=1 the page's tabs share one connection (@rt/client/shared-tabs): open many, see one stream.
const $ = (id) => document.getElementById(id)
const params = new URLSearchParams(location.search)
const forceLongPoll = $('force-long-poll')
forceLongPoll.checked = params.get('transport') === 'long-poll'
$('name').value = params.get('name') ?? ''
$('room').value = params.get('room') ?? 'lobby'

// Behind ACTION_CABLE_URL the Rails app's connection identifies the user by this cookie (rt forwards cookies).
document.cookie = `user=${encodeURIComponent($('name').value.trim() || 'anonymous')}; path=/; SameSite=Lax`

const shared = params.get('share') === '1'
const options = {
  url: location.origin,
  transports: shared && forceLongPoll.checked ? ['long-poll'] : ['sse', 'long-poll'],
  onTransport: (transport) => { $('transport').textContent = transport === undefined ? 'reconnecting…' : `${transport}${shared ? ' (shared by the tabs)' : ''}` }
}
const consumer = shared
  ? (await import('/vendor/rt-client/shared-tabs.js')).createSharedConsumer({ ...options, shareAcrossTabs: 'chat' })
  : (await import('/vendor/rt-client/index.js')).createConsumer(options)
// A shared connection's transport is the leader's: it is chosen when the page opens.
forceLongPoll.disabled = shared
if (!shared && forceLongPoll.checked) consumer.useTransport('long-poll')
let subscription

function log(text, user) {
  const item = document.createElement('li')
  if (user === undefined) item.className = 'system'
  else {
    const who = document.createElement('span')
    who.className = 'user'
    who.textContent = user
    item.append(who)
  }
  item.append(text)
  $('log').append(item)
  $('log').scrollTop = $('log').scrollHeight
}

function showPosition(meta) {
  if (meta.offset !== undefined) $('position').textContent = `${meta.stream} #${meta.offset} (${meta.epoch})`
}

$('join').addEventListener('submit', (event) => {
  event.preventDefault()
  const room = $('room').value.trim()
  subscription?.unsubscribe()
  $('current-room').textContent = room
  subscription = consumer.subscribe({ channel: 'ChatChannel', params: { room } }, {
    connected: () => {
      $('text').disabled = false
      $('send-button').disabled = false
      log(`joined ${room}`)
    },
    disconnected: () => log('connection lost, resuming…'),
    rejected: () => log(`could not join ${room}`),
    rejectedHistory: () => log('some messages were missed while away'),
    received: (message, meta) => {
      showPosition(meta)
      log(message.text, message.user)
    }
  })
})

$('send').addEventListener('submit', (event) => {
  event.preventDefault()
  const text = $('text').value.trim()
  if (text === '' || subscription === undefined) return
  subscription.perform('speak', { user: $('name').value.trim() || 'anonymous', text })
  $('text').value = ''
})

forceLongPoll.addEventListener('change', () => { if (!shared) consumer.useTransport(forceLongPoll.checked ? 'long-poll' : 'auto') })
if (params.has('autojoin')) $('join').requestSubmit()
