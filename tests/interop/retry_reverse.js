'use strict'

// Iterator resume-after-reconnect check for the ravel interop tests.
//
// Usage: node retry_reverse.js SOCKPATH
//
// A many-level@2 ManyLevelGuest with { retry: true } talks to the host on the
// unix socket SOCKPATH. connect() opens a fresh socket and rpc stream, and
// reconnects whenever the socket closes (until we are finished). The script:
//
//   1. clears the database, then puts a=A, aa=AA, ab=AB, b=B, c=C
//   2. reads a reverse iterator over everything, destroying the current
//      socket after EVERY entry received; the guest re-sends the iterator
//      (with its bookmark) on the new connection and the host must resume
//      right after the last key received
//   3. does the same with a forward iterator
//
// For each case it prints one line, "<case> <JSON array of keys>", e.g.
//   reverse ["c","b","ab","aa","a"]
//   forward ["a","aa","ab","b","c"]
// followed by "PASS" or "FAIL: ..." lines. Exit status: 0 iff both cases
// produced exactly the expected keys, 1 otherwise, 2 on the 20 s timeout.

const net = require('net')
const { pipeline } = require('readable-stream')
const { ManyLevelGuest } = require('many-level')

const sockPath = process.argv[2]

if (!sockPath) {
  process.stderr.write('usage: node retry_reverse.js SOCKPATH\n')
  process.exit(64)
}

const timer = setTimeout(function () {
  process.stdout.write('FAIL: timed out after 20 s\n')
  process.exit(2)
}, 20e3)

const db = new ManyLevelGuest({ retry: true, keyEncoding: 'utf8', valueEncoding: 'utf8' })

let socket = null
let done = false
let connects = 0

function connect () {
  if (done) return

  let rpc
  try {
    rpc = db.createRpcStream()
  } catch (err) {
    // Previous rpc stream has not finished tearing down yet
    setTimeout(connect, 5)
    return
  }

  const sock = net.connect(sockPath)
  socket = sock
  connects++

  pipeline(sock, rpc, sock, function () {
    if (socket === sock) socket = null
    if (!done) setTimeout(connect, 5)
  })
}

async function readKeys (options) {
  const it = db.iterator(options)
  const keys = []

  try {
    let entry
    while ((entry = await it.next()) !== undefined) {
      keys.push(entry[0])
      // Drop the connection after every entry; connect() attaches a new one
      if (socket !== null) socket.destroy()
    }
  } finally {
    await it.close()
  }

  return keys
}

async function main () {
  connect()

  await db.clear()
  for (const k of ['a', 'aa', 'ab', 'b', 'c']) {
    await db.put(k, k.toUpperCase())
  }

  const cases = [
    ['reverse', { reverse: true }, ['c', 'b', 'ab', 'aa', 'a']],
    ['forward', {}, ['a', 'aa', 'ab', 'b', 'c']]
  ]

  let ok = true

  for (const [name, options, expected] of cases) {
    const before = connects
    const keys = await readKeys(options)
    const got = JSON.stringify(keys)
    const want = JSON.stringify(expected)

    process.stdout.write(`${name} ${got}\n`)

    if (got === want) {
      process.stdout.write(`PASS: ${name} (${connects - before} reconnects)\n`)
    } else {
      process.stdout.write(`FAIL: ${name} expected ${want}\n`)
      ok = false
    }
  }

  done = true
  clearTimeout(timer)
  await db.close()

  return ok
}

main().then(function (ok) {
  process.exit(ok ? 0 : 1)
}, function (err) {
  process.stdout.write(`FAIL: ${err.code || ''} ${err.message}\n`)
  process.exit(1)
})
