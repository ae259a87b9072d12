'use strict'

// Deterministic first-generation guest script: a multileveldown@5.0.1
// client (no retry) runs a fixed script against the host on a unix
// socket and prints one line per step. Run against a Node multileveldown
// host and a ravel "multileveldown+unix:" listener, the transcripts must
// be equal line for line.
//
// Usage: node gen1_script.js SOCKPATH
//
// Each line: "<step> <result>"; bytes as lowercase hex ("-" for empty),
// "ERR:<message>" for a failure (the Node guest keeps only the host's
// words, or levelup's NotFoundError message for a missing key, with
// notFound set), lists as [a,b] and entries as key=value.

const net = require('net')
const multileveldown = require('multileveldown')
const { pipeline } = require('readable-stream')

const sockPath = process.argv[2]
const B = (s) => Buffer.from(s, 'latin1')
const hex = (b) => b === undefined || b === null ? 'undefined' : b.length === 0 ? '-' : Buffer.from(b).toString('hex')
const list = (a) => '[' + a.join(',') + ']'

function emit (name, result) { process.stdout.write(`${name} ${result}\n`) }

async function step (name, fn) {
  let result
  try { result = await fn() } catch (err) {
    result = 'ERR:' + (err.notFound ? 'notFound:' : '') + err.message
  }
  emit(name, result)
}

function iterate (db, opts, fmt) {
  return new Promise(function (resolve, reject) {
    const it = db.iterator(opts)
    const out = []
    const next = () => it.next(function (err, k, v) {
      if (err) return it.end(() => reject(err))
      if (k === undefined && v === undefined) return it.end(() => resolve(list(out)))
      out.push(fmt(k, v))
      next()
    })
    next()
  })
}

const kv = (k, v) => `${hex(k)}=${hex(v)}`

async function main () {
  const db = multileveldown.client({ keyEncoding: 'binary', valueEncoding: 'binary' })
  const socket = net.connect(sockPath)
  await new Promise((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
  pipeline(socket, db.connect(), socket, () => {})

  await step('s01-clear', async () => { await db.clear(); return 'ok' })
  let n = 2
  for (const [k, v] of [['a', 'A'], ['aa', 'AA'], ['ab', 'AB'], ['b', 'B'], ['c', 'C'], ['d', 'D'], ['e', 'E']]) {
    await step(`s${String(n++).padStart(2, '0')}-put-${k}`, async () => { await db.put(B(k), B(v)); return 'ok' })
  }
  await step('s09-put-binary', async () => { await db.put(Buffer.from('00ff01', 'hex'), Buffer.from('0001', 'hex')); return 'ok' })
  await step('s10-get', async () => hex(await db.get(B('a'))))
  await step('s11-get-missing', async () => hex(await db.get(B('zz'))))
  await step('s12-del', async () => { await db.del(B('d')); return 'ok' })
  await step('s13-get-deleted', async () => hex(await db.get(B('d'))))
  await step('s14-batch', async () => {
    await db.batch([{ type: 'put', key: B('g'), value: B('G') }, { type: 'del', key: B('e') }, { type: 'put', key: B('h'), value: B('H') }])
    return 'ok'
  })
  await step('s15-get-many', async () => list((await db.getMany([B('a'), B('e'), B('g'), B('zz')])).map(hex)))
  await step('s16-iter-all', () => iterate(db, {}, kv))
  await step('s17-iter-reverse', () => iterate(db, { reverse: true }, kv))
  await step('s18-iter-gt-lt', () => iterate(db, { gt: B('a'), lt: B('c') }, kv))
  await step('s19-iter-gte-lte', () => iterate(db, { gte: B('ab'), lte: B('c') }, kv))
  await step('s20-iter-limit', () => iterate(db, { limit: 2 }, kv))
  await step('s21-iter-reverse-limit', () => iterate(db, { reverse: true, limit: 2 }, kv))
  await step('s22-keys', () => iterate(db, { values: false }, (k) => hex(k)))
  await step('s23-values', () => iterate(db, { keys: false }, (k, v) => hex(v)))
  await step('s24-iter-empty-range', () => iterate(db, { gt: B('x') }, kv))
  // More entries than one budget (32) and one re-arm (16): flow control.
  await step('s25-put-100', async () => {
    const ops = []
    for (let i = 0; i < 100; i++) ops.push({ type: 'put', key: B('m' + String(i).padStart(3, '0')), value: B('v' + i) })
    await db.batch(ops)
    return 'ok'
  })
  await step('s26-iter-100', () => iterate(db, { gte: B('m'), lt: B('n') }, (k) => hex(k)))
  await step('s27-iter-100-reverse-limit', () => iterate(db, { gte: B('m'), lt: B('n'), reverse: true, limit: 40 }, (k) => hex(k)))
  await step('s28-clear-range', async () => { await db.clear({ gte: B('b'), lt: B('d') }); return 'ok' })
  await step('s29-clear-reverse-limit', async () => { await db.clear({ reverse: true, limit: 1 }); return 'ok' })
  await step('s30-list', () => iterate(db, { lt: B('m') }, kv))
  await step('s31-close', async () => { await db.close(); return 'ok' })
}

main().then(() => process.exit(0), function (err) {
  process.stderr.write(`gen1_script: ${err.stack || err}\n`)
  process.exit(1)
})
