'use strict'

// Node side of ravel-bench (bench/bench.c): the SPEC workloads W1-W6 on a
// Node peer, defined as on the C side.
//
// Usage: node bench_node.js follower|guest DIR N
//        node bench_node.js many P DIR N
//        node bench_node.js mix W DIR N
//
//   follower  a rave-level@1.0.0 follower: a forked Node process opens DIR
//             first and leads (classic-level in that process), this one
//             follows over DIR/rave-level.sock
//   guest     a many-level@2.0.0 guest: a forked Node process serves DIR
//             (classic-level + ManyLevelHost) on TCP 127.0.0.1, a port the
//             kernel picks; this one connects to it. Both ends turn Nagle
//             off, as ravel does.
//
// Workloads: N entries, key "k" + the index as 15 zero-padded digits,
// value 100 bytes (windows into the C side's pseudo-random buffer; the
// random key order is the C side's too). W1 N puts one at a time; W2 N
// puts, 64 in flight; W3 N gets of random keys one at a time; W4 the same,
// 64 in flight; W5 iterate all N entries, keys and values; W6 N/100
// batches of 100 puts, one at a time. Then a second forked process that
// only opens the database (as a follower, or a guest) and scans it reports
// its peak RSS.
//
// Output on stdout, one line per workload, fields separated by a space:
//   W<k> <ops/s> <p50 us> <p99 us> <cpu us/op> <server cpu us/op>
// (latency for W1 and W3 only, 0 for the others; CPU time is user + system
// of this process, and of the leader or host process), then
//   rss <KiB>
// Exit 0 on success; 1 with a message on stderr otherwise.
//
// many and mix run bench/many.c's M1-M3 on a rave-level party of forked
// Node processes on DIR (the first leads, and its operations go to
// classic-level in its own process; the others follow): many, P processes,
// M1 (member i puts keys i*N/P .. (i+1)*N/P - 1 in order, each awaited)
// then M2 (N/P gets of its own slice in W3's random order); mix, M3: W
// writers put their slices of N as in M1 while one more process, the
// reader, gets random keys of all N (found or not) until they are done.
// Each phase is released by a message to every member; a member's cost
// (process.cpuUsage(), process.resourceUsage()'s context switches) runs
// from its release to the end of the phase. Output, for each phase p:
//   release <p> <process.hrtime ns of the release>
// then a line per member i:
//   member <p> <i> <ops> <found> <start ns> <end ns> <p50 us> <p99 us> <cpu us> <switches>
// (p50 and p99 of the reader's gets, 0 for the others), from which
// ravel-bench makes the figures as it does for its own variants.
//
// The roles leader, host, scan-follower, scan-guest and member are the
// forked helper processes; the parent talks to them over the IPC channel.

const net = require('net')
const { fork } = require('child_process')
const { once } = require('events')
const { pipeline } = require('readable-stream')
const { ClassicLevel } = require('classic-level')
const { ManyLevelHost, ManyLevelGuest } = require('many-level')
const { RaveLevel } = require('rave-level')

const KEY_LEN = 16
const KEY_DIGITS = 15
const VALUE_LEN = 100
const IN_FLIGHT = 64
const BATCH_SIZE = 100
const FILLER_SPREAD = 128
const GET_SEQ_SEED = 0x9E3779B97F4A7C15n
const GET_PIPE_SEED = 0xD1B54A32D192ED03n
const MASK64 = (1n << 64n) - 1n
const ENCODINGS = { keyEncoding: 'utf8', valueEncoding: 'buffer' }
const PEERS = { 'rave-level': '1.0.0', 'many-level': '2.0.0' }

function fail (err) {
  process.stderr.write(`bench_node: ${err.stack || err}\n`)
  process.exit(1)
}

// xorshift64, as in bench.c
function nextRandom (x) {
  x ^= (x << 13n) & MASK64
  x ^= x >> 7n
  x ^= (x << 17n) & MASK64
  return x
}

const filler = Buffer.alloc(VALUE_LEN + FILLER_SPREAD)
let fillerState = 0x2545F4914F6CDD1Dn
for (let i = 0; i < filler.length; i++) {
  fillerState = nextRandom(fillerState)
  filler[i] = 0x61 + Number(fillerState % 26n)
}

const key = (i) => 'k' + String(i).padStart(KEY_DIGITS, '0')
const value = (i) => filler.subarray(i % FILLER_SPREAD, i % FILLER_SPREAD + VALUE_LEN)

// The random key order of W3 and W4, drawn before the clock starts: BigInt
// arithmetic costs far more here than xorshift does in C.
function randomIndexes (seed, n) {
  const out = new Float64Array(n)
  const big = BigInt(n)
  let x = seed
  for (let i = 0; i < n; i++) {
    x = nextRandom(x)
    out[i] = Number(x % big)
  }
  return out
}

function cpuMicros () {
  const usage = process.cpuUsage()
  return usage.user + usage.system
}

// The p-quantile of sorted values, interpolating between the two nearest
// ranks, as bench/common.c does.
function percentile (sorted, p) {
  const rank = p * (sorted.length - 1)
  const lo = Math.floor(rank)
  if (lo + 1 >= sorted.length) return sorted[sorted.length - 1]
  return sorted[lo] + (rank - lo) * (sorted[lo + 1] - sorted[lo])
}

function checkValue (v) {
  if (v === undefined || v.length !== VALUE_LEN) throw new Error('get: value of the wrong length')
}

async function scan (db, n) {
  let count = 0
  for await (const [k, v] of db.iterator()) {
    if (k.length !== KEY_LEN || v.length !== VALUE_LEN) throw new Error('scan: entry of the wrong size')
    count++
  }
  if (count !== n) throw new Error(`scan: ${count} entries, not ${n}`)
}

// Run op(i) for i = 0 .. n-1 with at most IN_FLIGHT pending at once.
async function inFlight (n, op) {
  let next = 0
  async function lane () {
    while (next < n) await op(next++)
  }
  await Promise.all(Array.from({ length: IN_FLIGHT }, lane))
}

async function follow (dir) {
  const db = new RaveLevel(dir, ENCODINGS)
  db.on('leader', () => fail(new Error(`became the leader of ${dir}; the benchmark wants a follower`)))
  await db.open()
  return db
}

async function connect (port) {
  const db = new ManyLevelGuest({ retry: false, ...ENCODINGS })
  const sock = net.connect(port, '127.0.0.1')
  sock.setNoDelay(true)
  pipeline(sock, db.createRpcStream(), sock, () => {})
  await once(sock, 'connect')
  return db
}

// The messages an emitter ('message' events) brings, taken one at a time
// in order: none is lost for want of a listener when it comes. urgent(msg)
// true takes a message out of the queue (the caller has acted on it).
class Inbox {
  constructor (emitter, urgent = () => false) {
    this.queue = []
    this.waiter = null
    emitter.on('message', (msg) => {
      if (urgent(msg)) return
      if (this.waiter) {
        const waiter = this.waiter
        this.waiter = null
        waiter(msg)
      } else {
        this.queue.push(msg)
      }
    })
  }

  next () {
    if (this.queue.length > 0) return Promise.resolve(this.queue.shift())
    return new Promise((resolve) => { this.waiter = resolve })
  }
}

// A forked helper process, asked one thing at a time over IPC.
class Helper {
  constructor (role, args) {
    this.role = role
    this.ending = false
    this.child = fork(__filename, [role, ...args])
    this.inbox = new Inbox(this.child)
    this.child.on('exit', (code, signal) => {
      if (!this.ending) fail(new Error(`${role} process ended early (${signal || code})`))
    })
  }

  reply () {
    return this.inbox.next()
  }

  ask (cmd) {
    this.child.send({ cmd })
    return this.reply()
  }

  async stop () {
    this.ending = true
    const exited = once(this.child, 'exit')
    this.child.send({ cmd: 'stop' })
    const [code] = await exited
    if (code !== 0) throw new Error(`${this.role} process exited with ${code}`)
  }
}

// In a helper: tell the parent we are ready, then answer it until it says
// stop. Without a parent there is nothing to do: leave.
function serveParent (ready, close) {
  process.on('disconnect', () => process.exit(1))
  process.on('message', function ({ cmd }) {
    if (cmd === 'cpu') process.send({ cpu: cpuMicros() })
    else if (cmd === 'stop') close().then(() => process.exit(0), fail)
  })
  process.send(ready)
}

async function runWorkloads (db, n, server) {
  const lines = []
  const lat = new Float64Array(n)
  const batches = Math.floor(n / BATCH_SIZE)

  async function measure (name, ops, timed, fn) {
    const server0 = (await server.ask('cpu')).cpu
    const cpu0 = cpuMicros()
    const t0 = process.hrtime.bigint()
    await fn()
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9
    const cpu = cpuMicros() - cpu0
    const serverCpu = (await server.ask('cpu')).cpu - server0
    let p50 = 0
    let p99 = 0
    if (timed) {
      lat.sort()
      p50 = percentile(lat, 0.5)
      p99 = percentile(lat, 0.99)
    }
    lines.push(`${name} ${ops / seconds} ${p50} ${p99} ${cpu / ops} ${serverCpu / ops}`)
  }

  async function oneAtATime (op) {
    for (let i = 0; i < n; i++) {
      const t = process.hrtime.bigint()
      await op(i)
      lat[i] = Number(process.hrtime.bigint() - t) / 1e3
    }
  }

  const seq = randomIndexes(GET_SEQ_SEED, n)
  const piped = randomIndexes(GET_PIPE_SEED, n)

  await measure('W1', n, true, () => oneAtATime((i) => db.put(key(i), value(i))))
  await measure('W2', n, false, () => inFlight(n, (i) => db.put(key(i), value(i))))
  await measure('W3', n, true, () => oneAtATime(async (i) => checkValue(await db.get(key(seq[i])))))
  await measure('W4', n, false, () => inFlight(n, async (i) => checkValue(await db.get(key(piped[i])))))
  await measure('W5', n, false, () => scan(db, n))
  await measure('W6', batches * BATCH_SIZE, false, async function () {
    for (let b = 0; b < batches; b++) {
      const ops = []
      for (let i = b * BATCH_SIZE; i < (b + 1) * BATCH_SIZE; i++) {
        ops.push({ type: 'put', key: key(i), value: value(i) })
      }
      await db.batch(ops)
    }
  })
  return lines
}

// M1-M3: member i's task in phase p, as bench/many.c's task_of().
function taskOf (members, mix, n, phase, i) {
  const writers = mix ? members - 1 : members
  const k = Math.floor(n / writers)
  if (mix && i === writers) return { kind: 'reads', first: 0, count: n }
  return { kind: phase === 0 ? 'puts' : 'gets', first: i * k, count: k }
}

async function getOrAbsent (db, k) {
  try {
    return await db.get(k)
  } catch (err) {
    if (err.code === 'LEVEL_NOT_FOUND') return undefined
    throw err
  }
}

// A task, from now until it is done (reads: until enough() says so), as
// bench/many.c's run_task(); order holds the random indexes of gets and
// reads, drawn beforehand.
async function runTask (db, { kind, first, count }, order, enough) {
  const r = { ops: 0, found: 0, start: process.hrtime.bigint(), end: 0n, p50: 0, p99: 0 }
  const lat = []
  if (kind === 'puts') {
    for (let i = 0; i < count; i++) await db.put(key(first + i), value(first + i))
    r.ops = count
  } else if (kind === 'gets') {
    for (let i = 0; i < count; i++) checkValue(await db.get(key(first + order[i])))
    r.ops = r.found = count
  } else {
    while (!enough()) {
      const t = process.hrtime.bigint()
      const v = await getOrAbsent(db, key(order[r.ops % count]))
      lat.push(Number(process.hrtime.bigint() - t) / 1e3)
      if (v !== undefined) {
        checkValue(v)
        r.found++
      }
      r.ops++
    }
  }
  r.end = process.hrtime.bigint()
  if (lat.length > 0) {
    const sorted = Float64Array.from(lat).sort()
    r.p50 = percentile(sorted, 0.5)
    r.p99 = percentile(sorted, 0.99)
  }
  return { ...r, start: String(r.start), end: String(r.end) }
}

function switches () {
  const usage = process.resourceUsage()
  return usage.voluntaryContextSwitches + usage.involuntaryContextSwitches
}

// M1 and M2 (mix false), or M3: fork the leader, then (once it leads)
// the followers all at once — starting Node takes most of a small run's
// time — run the phases, print what each member reports.
async function party (members, mix, dir, n) {
  const kids = [new Helper('member', [dir, '0'])]
  await kids[0].reply()
  for (let i = 1; i < members; i++) kids.push(new Helper('member', [dir, String(i)]))
  for (const kid of kids.slice(1)) await kid.reply()
  const writers = mix ? members - 1 : members
  const lines = []
  for (let p = 0; p < (mix ? 1 : 2); p++) {
    kids.forEach((kid, i) => kid.child.send({ cmd: 'task', task: taskOf(members, mix, n, p, i) }))
    for (const kid of kids) await kid.reply() // armed
    const release = process.hrtime.bigint()
    for (const kid of kids) kid.child.send({ cmd: 'go' })
    const reports = []
    for (let i = 0; i < members; i++) {
      reports.push((await kids[i].reply()).report)
      if (mix && i === writers - 1) kids[writers].child.send({ cmd: 'enough' })
    }
    for (const kid of kids) kid.child.send({ cmd: 'cost' })
    lines.push(`release ${p} ${release}`)
    for (let i = 0; i < members; i++) {
      const { cpu, switches } = await kids[i].reply()
      const r = reports[i]
      lines.push(`member ${p} ${i} ${r.ops} ${r.found} ${r.start} ${r.end} ${r.p50} ${r.p99} ${cpu} ${switches}`)
    }
  }
  // The followers first, so that none takes the lead as the leader goes.
  await Promise.all(kids.slice(1).map((kid) => kid.stop()))
  await kids[0].stop()
  process.stdout.write(`${lines.join('\n')}\n`)
}

const roles = {
  // The measuring process.
  follower (dir, n) {
    return measureVariant(Number(n), new Helper('leader', [dir]), () => follow(dir),
      () => new Helper('scan-follower', [dir, n]))
  },

  guest (dir, n) {
    return measureVariant(Number(n), new Helper('host', [dir]), (ready) => connect(ready.port),
      (ready) => new Helper('scan-guest', [String(ready.port), n]))
  },

  many (p, dir, n) {
    return party(Number(p), false, dir, Number(n))
  },

  mix (w, dir, n) {
    return party(Number(w) + 1, true, dir, Number(n))
  },

  // The helpers.
  async leader (dir) {
    const db = new RaveLevel(dir, ENCODINGS)
    await once(db, 'leader')
    serveParent({}, () => db.close())
  },

  async host (dir) {
    const db = new ClassicLevel(dir)
    await db.open()
    const host = new ManyLevelHost(db)
    const server = net.createServer(function (sock) {
      sock.setNoDelay(true)
      pipeline(sock, host.createRpcStream(), sock, () => {})
    })
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
    serveParent({ port: server.address().port }, async function () {
      server.close()
      await db.close()
    })
  },

  async 'scan-follower' (dir, n) {
    const db = await follow(dir)
    await scan(db, Number(n))
    serveParent({ rss: process.resourceUsage().maxRSS }, () => db.close())
  },

  // A member of party(): the first leads; the others follow, and make one
  // round trip so that their socket is connected before the release.
  async member (dir, index) {
    let db
    if (index === '0') {
      db = new RaveLevel(dir, ENCODINGS)
      await once(db, 'leader')
    } else {
      db = await follow(dir)
      await getOrAbsent(db, 'ready')
    }
    let stopped = false
    const inbox = new Inbox(process, (msg) => {
      if (msg.cmd === 'enough') stopped = true
      return msg.cmd === 'enough'
    })
    process.on('disconnect', () => process.exit(1))
    process.send({ ready: true })
    for (;;) {
      const msg = await inbox.next()
      if (msg.cmd === 'stop') break
      const order = msg.task.kind === 'puts' ? null : randomIndexes(GET_SEQ_SEED, msg.task.count)
      process.send({ armed: true })
      await inbox.next() // go
      const cpu0 = cpuMicros()
      const switches0 = switches()
      const report = await runTask(db, msg.task, order, () => stopped)
      process.send({ report })
      await inbox.next() // cost
      process.send({ cpu: cpuMicros() - cpu0, switches: switches() - switches0 })
    }
    await db.close()
    process.exit(0)
  },

  async 'scan-guest' (port, n) {
    const db = await connect(Number(port))
    await scan(db, Number(n))
    serveParent({ rss: process.resourceUsage().maxRSS }, () => db.close())
  }
}

// Wait for the server, open the database through it (open(ready), ready
// being the server's first message), run W1-W6, then let a fresh process
// (scanner(ready)) scan for the peak RSS; print the results.
async function measureVariant (n, server, open, scanner) {
  const ready = await server.reply()
  const db = await open(ready)
  const lines = await runWorkloads(db, n, server)
  const scanning = scanner(ready)
  const { rss } = await scanning.reply()
  await scanning.stop()
  await db.close()
  await server.stop()
  process.stdout.write(`${lines.join('\n')}\nrss ${rss}\n`)
}

const [role, ...args] = process.argv.slice(2)
if (!Object.hasOwn(roles, role) || args.length !== roles[role].length) {
  process.stderr.write('usage: node bench_node.js follower|guest DIR N, or many P DIR N, or mix W DIR N\n')
  process.exit(2)
}
for (const [name, version] of Object.entries(PEERS)) {
  const found = require(`${name}/package.json`).version
  if (found !== version) fail(new Error(`${name} is ${found}, the benchmark wants ${version}`))
}
roles[role](...args).catch(fail)
