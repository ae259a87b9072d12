'use strict'

// Reference many-level@2 host for the ravel interop tests.
//
// Usage: node node_host.js SOCKPATH DBDIR
//
// Opens a classic-level database at DBDIR (created if missing), serves it
// with ManyLevelHost on a unix-socket server at SOCKPATH (a stale socket file
// is removed first) and prints exactly "ready\n" to stdout once listening.
// Shuts down cleanly (server closed, client sockets destroyed, db closed)
// on SIGTERM, SIGINT, or when stdin ends. stdin is only watched when it is a
// pipe or socket (i.e. a parent process holds the other end), so running the
// host in the background with stdin on /dev/null does not stop it at once.

const fs = require('fs')
const net = require('net')
const { pipeline } = require('readable-stream')
const { ClassicLevel } = require('classic-level')
const { ManyLevelHost } = require('many-level')

const [sockPath, dbDir] = process.argv.slice(2)

if (!sockPath || !dbDir) {
  process.stderr.write('usage: node node_host.js SOCKPATH DBDIR\n')
  process.exit(64)
}

const db = new ClassicLevel(dbDir, { createIfMissing: true })
const host = new ManyLevelHost(db)
const sockets = new Set()

const server = net.createServer(function (socket) {
  sockets.add(socket)
  pipeline(socket, host.createRpcStream(), socket, function () {
    sockets.delete(socket)
  })
})

let stopping = false

async function main () {
  await db.open()

  try {
    fs.unlinkSync(sockPath)
  } catch (err) {
    if (err.code !== 'ENOENT') throw err
  }

  await new Promise(function (resolve, reject) {
    server.once('error', reject)
    server.listen(sockPath, function () {
      server.removeListener('error', reject)
      resolve()
    })
  })

  process.stdout.write('ready\n')
}

async function shutdown () {
  if (stopping) return
  stopping = true

  server.close()
  for (const socket of sockets) socket.destroy()

  try {
    await db.close()
  } catch (err) {
    process.stderr.write(`node_host: close failed: ${err.message}\n`)
    process.exitCode = 1
  }

  process.exit()
}

process.on('SIGTERM', () => shutdown())
process.on('SIGINT', () => shutdown())
if (stdinIsPipe()) {
  process.stdin.on('end', () => shutdown())
  process.stdin.on('error', () => shutdown())
  process.stdin.resume()
}

function stdinIsPipe () {
  try {
    const st = fs.fstatSync(0)
    return st.isFIFO() || st.isSocket()
  } catch {
    return false
  }
}

main().catch(function (err) {
  process.stderr.write(`node_host: ${err.stack || err}\n`)
  process.exit(1)
})
