'use strict'

// Deterministic many-level guest script for the ravel interop tests.
//
// Usage: node guest_script.js SOCKPATH
//        node guest_script.js tls:HOST:PORT   (see main below)
//
// Connects a many-level@2 ManyLevelGuest (no retry) to the host listening on
// the unix socket SOCKPATH, runs the fixed script below and prints a
// transcript to stdout. The same script is reimplemented in C against ravel's
// API; the two transcripts must be identical byte for byte.
//
// TRANSCRIPT FORMAT
//
//   One line per step, each terminated by a single "\n" (no "\r"), no
//   leading/trailing spaces, nothing else on stdout:
//
//     <step-name> <result>
//
//   <step-name>  "sNN-name", NN = two-digit step number, in order.
//   <result> is one of:
//     ok            a write/clear/close succeeded (no value)
//     <hex>         bytes as lowercase hex, two digits per byte ("a" -> 61)
//     -             empty bytes (zero length)
//     undefined     a missing entry in a getMany result
//     ERR:<code>    the operation failed; <code> is the error's .code,
//                   e.g. ERR:LEVEL_NOT_FOUND
//     [i1,i2,...]   a list: items comma-separated, no spaces; [] when empty
//
//   List items (getMany results, iterator output) use the forms above; an
//   iterator entry is written as
//     <keyhex>=<valuehex>   normal iterator (keys and values)
//     <keyhex>              keys-only iterator (db.keys())
//     <valuehex>            values-only iterator (db.values())
//   with "-" standing for empty bytes on either side of "=".
//
//   If an iterator fails midway, its result is ERR:<code> (entries already
//   read are not printed).
//
// All keys/values are raw bytes (keyEncoding/valueEncoding 'buffer'). Text
// keys in the step list below mean their ASCII bytes.
//
// STEPS
//
//   s01-clear               clear() everything
//   s02..s08-put-<k>        put a=A, aa=AA, ab=AB, b=B, c=C, d=D, e=E
//   s09-put-empty-value     put f = "" (zero-length value)
//   s10-put-binary          put 00ff01 = 0001
//   s11-get                 get a
//   s12-get-empty-value     get f
//   s13-get-binary          get 00ff01
//   s14-get-missing         get zz                 (ERR:LEVEL_NOT_FOUND)
//   s15-del                 del d
//   s16-get-deleted         get d                  (ERR:LEVEL_NOT_FOUND)
//   s17-batch               batch [put g=G, del e, put h=H]
//   s18-get-many            getMany [a, e, g, zz, f]
//   s19-iter-all            iterator {}
//   s20-iter-reverse        iterator {reverse}
//   s21-iter-gt-lt          iterator {gt a, lt c}
//   s22-iter-gte-lte        iterator {gte ab, lte c}
//   s23-iter-limit          iterator {limit 2}
//   s24-iter-reverse-limit  iterator {reverse, limit 2}
//   s25-keys                keys {}
//   s26-values              values {}
//   s27-iter-seek           iterator {}: next() once, seek(b), read the rest
//   s28-iter-reverse-seek   iterator {reverse}: next() once, seek(ab), rest
//   s29-iter-seek-missing   iterator {}: seek(ac) (absent key) first, read all
//   s30-iter-empty-range    iterator {gt x}
//   s31-clear-range         clear {gte b, lt d}
//   s32-list                iterator {}
//   s33-clear-reverse-limit clear {reverse, limit 1}
//   s34-list                iterator {}
//   s35-close               close()

const fs = require('fs')
const net = require('net')
const tls = require('tls')
const { pipeline } = require('readable-stream')
const { ManyLevelGuest } = require('many-level')

const sockPath = process.argv[2]

if (!sockPath) {
  process.stderr.write('usage: node guest_script.js SOCKPATH\n')
  process.exit(64)
}

const B = (s) => Buffer.from(s, 'latin1')
const HEX = (h) => Buffer.from(h, 'hex')

function hex (buf) {
  if (buf === undefined) return 'undefined'
  return buf.length === 0 ? '-' : Buffer.from(buf).toString('hex')
}

function list (items) {
  return '[' + items.join(',') + ']'
}

function emit (name, result) {
  process.stdout.write(`${name} ${result}\n`)
}

// Run one step; `fn` returns the result string, or throws.
async function step (name, fn) {
  let result
  try {
    result = await fn()
  } catch (err) {
    result = 'ERR:' + (err.code || 'UNKNOWN')
  }
  emit(name, result)
}

// Read entries from an abstract-level 1.x iterator until it ends.
async function drain (it, format, out = []) {
  let item
  while ((item = await it.next()) !== undefined) out.push(format(item))
  return out
}

const entry = ([k, v]) => `${hex(k)}=${hex(v)}`

async function iterate (db, options) {
  const it = db.iterator(options)
  try {
    return list(await drain(it, entry))
  } finally {
    await it.close()
  }
}

async function main () {
  const db = new ManyLevelGuest({ keyEncoding: 'buffer', valueEncoding: 'buffer' })
  // tls:HOST:PORT: Node's tls.connect with the files named by
  // $RAVEL_TLS_CA, $RAVEL_TLS_CERT and $RAVEL_TLS_KEY (mutual TLS).
  const m = /^tls:(.*):(\d+)$/.exec(sockPath)
  const socket = m
    ? tls.connect({
      host: m[1],
      port: Number(m[2]),
      ca: fs.readFileSync(process.env.RAVEL_TLS_CA),
      cert: process.env.RAVEL_TLS_CERT ? fs.readFileSync(process.env.RAVEL_TLS_CERT) : undefined,
      key: process.env.RAVEL_TLS_KEY ? fs.readFileSync(process.env.RAVEL_TLS_KEY) : undefined
    })
    : net.connect(sockPath)

  // Fail hard (exit 1, no transcript) if the host is not there at all.
  await new Promise(function (resolve, reject) {
    socket.once(m ? 'secureConnect' : 'connect', resolve)
    socket.once('error', reject)
  })

  pipeline(socket, db.createRpcStream(), socket, () => {})

  await step('s01-clear', async () => { await db.clear(); return 'ok' })

  const puts = [['a', 'A'], ['aa', 'AA'], ['ab', 'AB'], ['b', 'B'], ['c', 'C'], ['d', 'D'], ['e', 'E']]
  let n = 2
  for (const [k, v] of puts) {
    const name = `s${String(n++).padStart(2, '0')}-put-${k}`
    await step(name, async () => { await db.put(B(k), B(v)); return 'ok' })
  }

  await step('s09-put-empty-value', async () => { await db.put(B('f'), Buffer.alloc(0)); return 'ok' })
  await step('s10-put-binary', async () => { await db.put(HEX('00ff01'), HEX('0001')); return 'ok' })

  await step('s11-get', async () => hex(await db.get(B('a'))))
  await step('s12-get-empty-value', async () => hex(await db.get(B('f'))))
  await step('s13-get-binary', async () => hex(await db.get(HEX('00ff01'))))
  await step('s14-get-missing', async () => hex(await db.get(B('zz'))))

  await step('s15-del', async () => { await db.del(B('d')); return 'ok' })
  await step('s16-get-deleted', async () => hex(await db.get(B('d'))))

  await step('s17-batch', async () => {
    await db.batch([
      { type: 'put', key: B('g'), value: B('G') },
      { type: 'del', key: B('e') },
      { type: 'put', key: B('h'), value: B('H') }
    ])
    return 'ok'
  })

  await step('s18-get-many', async () => {
    const values = await db.getMany([B('a'), B('e'), B('g'), B('zz'), B('f')])
    return list(values.map(hex))
  })

  await step('s19-iter-all', () => iterate(db, {}))
  await step('s20-iter-reverse', () => iterate(db, { reverse: true }))
  await step('s21-iter-gt-lt', () => iterate(db, { gt: B('a'), lt: B('c') }))
  await step('s22-iter-gte-lte', () => iterate(db, { gte: B('ab'), lte: B('c') }))
  await step('s23-iter-limit', () => iterate(db, { limit: 2 }))
  await step('s24-iter-reverse-limit', () => iterate(db, { reverse: true, limit: 2 }))

  await step('s25-keys', async () => {
    const it = db.keys()
    try { return list(await drain(it, hex)) } finally { await it.close() }
  })

  await step('s26-values', async () => {
    const it = db.values()
    try { return list(await drain(it, hex)) } finally { await it.close() }
  })

  await step('s27-iter-seek', async () => {
    const it = db.iterator()
    try {
      const out = []
      const first = await it.next()
      if (first !== undefined) out.push(entry(first))
      it.seek(B('b'))
      return list(await drain(it, entry, out))
    } finally {
      await it.close()
    }
  })

  await step('s28-iter-reverse-seek', async () => {
    const it = db.iterator({ reverse: true })
    try {
      const out = []
      const first = await it.next()
      if (first !== undefined) out.push(entry(first))
      it.seek(B('ab'))
      return list(await drain(it, entry, out))
    } finally {
      await it.close()
    }
  })

  await step('s29-iter-seek-missing', async () => {
    const it = db.iterator()
    try {
      it.seek(B('ac'))
      return list(await drain(it, entry))
    } finally {
      await it.close()
    }
  })

  await step('s30-iter-empty-range', () => iterate(db, { gt: B('x') }))

  await step('s31-clear-range', async () => { await db.clear({ gte: B('b'), lt: B('d') }); return 'ok' })
  await step('s32-list', () => iterate(db, {}))
  await step('s33-clear-reverse-limit', async () => { await db.clear({ reverse: true, limit: 1 }); return 'ok' })
  await step('s34-list', () => iterate(db, {}))

  await step('s35-close', async () => { await db.close(); return 'ok' })
}

main().then(function () {
  process.exit(0)
}, function (err) {
  process.stderr.write(`guest_script: ${err.stack || err}\n`)
  process.exit(1)
})
