'use strict'

// Reference first-generation host: multileveldown@5.0.1's server over
// level@7 (leveldown), as level-party@5.1.1's leader serves it.
//
// Usage: node gen1_host.js SOCKPATH DBDIR
//
// Serves DBDIR on a unix socket at SOCKPATH (a stale socket file is
// removed first) and prints "ready\n" once listening. Exits on SIGTERM or
// SIGINT.

const fs = require('fs')
const net = require('net')
const level = require('level')
const multileveldown = require('multileveldown')
const { pipeline } = require('readable-stream')

const [sockPath, dbDir] = process.argv.slice(2)
if (!sockPath || !dbDir) {
  process.stderr.write('usage: node gen1_host.js SOCKPATH DBDIR\n')
  process.exit(64)
}

const db = level(dbDir, { keyEncoding: 'binary', valueEncoding: 'binary' }, function (err) {
  if (err) throw err
  try { fs.unlinkSync(sockPath) } catch (e) { if (e.code !== 'ENOENT') throw e }
  const server = net.createServer(function (sock) {
    pipeline(sock, multileveldown.server(db), sock, () => {})
  })
  server.listen(sockPath, () => process.stdout.write('ready\n'))
  const stop = () => { server.close(); db.close(() => process.exit(0)) }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
})
