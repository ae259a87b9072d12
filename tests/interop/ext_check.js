'use strict'

// Interop checks of ravel's protocol extensions (docs/protocol-extensions.md).
//
// node ext_check.js announced SOCKPATH
//   A ravel host listens on SOCKPATH. The first frame it writes on a new
//   connection must be its Announce (tag 64: version 1, "error-messages"),
//   before the guest sends anything. Then a many-level@2 ManyLevelGuest
//   works against the same host (the Announce in front, ignored): put, get,
//   getMany, an iterator, del, a rejected get of a missing key.
//   Prints one "ok: ..." line per check; exits 1 on a failure.
//
// node ext_check.js tap-host SOCKPATH TAGFILE
//   A many-level@2 host (over memory-level) on SOCKPATH that records the tag
//   of every frame its guests send. Prints "ready" once listening; on
//   SIGTERM writes the tags seen (sorted, one per line) to TAGFILE and exits.
//   run-ext-interop.sh points ravel's C guest at it: a Node host must never
//   receive a tag it does not know (Hello, tag 64, goes only to a host that
//   announced).

const fs = require('fs')
const net = require('net')
const { Transform } = require('stream')
const { pipeline } = require('readable-stream')
const { ManyLevelGuest, ManyLevelHost } = require('many-level')
const { MemoryLevel } = require('memory-level')

const [mode, sockPath, tagFile] = process.argv.slice(2)

// Frames from a byte stream: a varint length, then that many bytes.
function frameReader (onFrame) {
  let buf = Buffer.alloc(0)
  return function (chunk) {
    buf = Buffer.concat([buf, chunk])
    for (;;) {
      let len = 0
      let shift = 0
      let i = 0
      for (; i < buf.length && i < 10; i++) {
        len += (buf[i] & 0x7f) * 2 ** shift
        shift += 7
        if (!(buf[i] & 0x80)) break
      }
      if (i >= buf.length || i === 10) return
      if (buf.length < i + 1 + len) return
      const frame = buf.subarray(i + 1, i + 1 + len)
      buf = buf.subarray(i + 1 + len)
      if (len) onFrame(frame)
    }
  }
}

// The first frame the host writes, the guest silent.
function firstFrame (path) {
  return new Promise(function (resolve, reject) {
    const socket = net.connect(path)
    const timer = setTimeout(() => reject(new Error('no frame from the host within 5 s')), 5000)
    const read = frameReader(function (frame) {
      clearTimeout(timer)
      socket.destroy()
      resolve(frame)
    })
    socket.on('data', read)
    socket.on('error', reject)
  })
}

// Fields of a protobuf message: [number, wireType, value] (varint or bytes).
function fields (msg) {
  const out = []
  let i = 0
  function varint () {
    let v = 0
    let shift = 0
    for (;;) {
      const b = msg[i++]
      v += (b & 0x7f) * 2 ** shift
      shift += 7
      if (!(b & 0x80)) return v
    }
  }
  while (i < msg.length) {
    const key = varint()
    const type = key & 7
    if (type === 0) out.push([Math.floor(key / 8), 0, varint()])
    else if (type === 2) {
      const n = varint()
      out.push([Math.floor(key / 8), 2, msg.subarray(i, i + n)])
      i += n
    } else throw new Error(`unexpected wire type ${type}`)
  }
  return out
}

function check (cond, what) {
  if (!cond) throw new Error(what)
  console.log(`ok: ${what}`)
}

async function announced () {
  const frame = await firstFrame(sockPath)
  check(frame[0] === 64, 'the first frame of a ravel host is tag 64 (Announce)')
  const f = fields(frame.subarray(1))
  const version = f.find(x => x[0] === 1)
  const names = f.filter(x => x[0] === 2).map(x => x[2].toString())
  check(version && version[2] === 1, 'the Announce says version 1')
  check(names.includes('error-messages'), 'the Announce names "error-messages"')

  const db = new ManyLevelGuest()
  const socket = net.connect(sockPath)
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('error', reject)
  })
  pipeline(socket, db.createRpcStream(), socket, () => {})
  await db.open()
  await db.put('ext-a', '1')
  await db.put('ext-b', '2')
  check(await db.get('ext-a') === '1', 'a Node guest puts and gets past the Announce')
  const many = await db.getMany(['ext-a', 'ext-zz', 'ext-b'])
  check(many[0] === '1' && many[1] === undefined && many[2] === '2', 'getMany')
  const entries = await db.iterator({ gte: 'ext-', lt: 'ext.' }).all()
  check(JSON.stringify(entries) === '[["ext-a","1"],["ext-b","2"]]', 'an iterator')
  await db.del('ext-a')
  let code = null
  try {
    await db.get('ext-a')
  } catch (err) {
    code = err.code
  }
  // many-level@2 resolves a missing key as undefined; older ones reject.
  check(code === null || code === 'LEVEL_NOT_FOUND', 'del, then get of the missing key')
  await db.close()
  socket.destroy()
}

function tapHost () {
  const db = new MemoryLevel()
  const host = new ManyLevelHost(db)
  const tags = new Set()
  const server = net.createServer(function (socket) {
    const read = frameReader(frame => tags.add(frame[0]))
    const tap = new Transform({
      transform (chunk, enc, cb) {
        read(chunk)
        cb(null, chunk)
      }
    })
    pipeline(socket, tap, host.createRpcStream(), socket, () => {})
  })
  try {
    fs.unlinkSync(sockPath)
  } catch (err) {
    if (err.code !== 'ENOENT') throw err
  }
  server.listen(sockPath, () => process.stdout.write('ready\n'))
  process.on('SIGTERM', function () {
    fs.writeFileSync(tagFile, [...tags].sort((a, b) => a - b).map(t => `${t}\n`).join(''))
    process.exit(0)
  })
}

if (mode === 'announced' && sockPath) {
  announced().catch(function (err) {
    console.log(`FAIL: ${err.message}`)
    process.exit(1)
  })
} else if (mode === 'tap-host' && sockPath && tagFile) {
  tapHost()
} else {
  process.stderr.write('usage: node ext_check.js announced SOCKPATH | tap-host SOCKPATH TAGFILE\n')
  process.exit(64)
}
