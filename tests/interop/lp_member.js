'use strict'

// A Node level-party@5.1.1 party member (multileveldown 5 underneath) for
// the mixed-party tests with the first generation.
//
// Usage: node lp_member.js member DIR ID SECONDS IDS
//   as rave_member.js: for SECONDS, put m<ID> = "<ID>:<n>" and read m<X>
//   for every X in IDS; exit 0 if it saw every member's key and no put
//   failed.
// Usage: node lp_member.js chaos DIR ID LOG
//   put c<ID>-<8-digit n> for n = 0, 1, … until SIGTERM, appending n to
//   LOG once acknowledged; exit 0 on SIGTERM.
// Either way, when it becomes the leader it writes its pid to DIR.leader.

const fs = require('fs')
const party = require('level-party')

const [mode, dir, id, arg, ids] = process.argv.slice(2)
if (mode !== 'member' && mode !== 'chaos') {
  process.stderr.write('usage: node lp_member.js member|chaos DIR ID ...\n')
  process.exit(2)
}

let leader = false
const db = party(dir, { keyEncoding: 'utf8', valueEncoding: 'utf8' })
db.on('leader', function () {
  leader = true
  const tmp = `${dir}.leader.${process.pid}`
  fs.writeFileSync(tmp, `${process.pid}\n`)
  fs.renameSync(tmp, `${dir}.leader`)
})

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function member () {
  const expected = ids.split(',')
  const seen = new Set()
  let puts = 0
  const end = Date.now() + Number(arg) * 1000
  while (Date.now() < end) {
    await db.put(`m${id}`, `${id}:${puts}`)
    puts++
    for (const x of expected) {
      try {
        await db.get(`m${x}`)
        seen.add(x)
      } catch (err) {
        if (!err.notFound) throw err
      }
    }
    await sleep(20)
  }
  const ok = expected.every((x) => seen.has(x))
  console.log(`level-party member ${id}: ${puts} puts, saw [${[...seen].sort()}], led=${leader}`)
  process.exit(ok ? 0 : 1)
}

async function chaos () {
  const log = fs.openSync(arg, 'a')
  let stop = false
  process.on('SIGTERM', () => { stop = true })
  for (let n = 0; !stop; n++) {
    const key = `c${id}-${String(n).padStart(8, '0')}`
    await db.put(key, key)
    fs.writeSync(log, `${n}\n`) // acknowledged: on record at once
  }
  process.exit(0)
}

(mode === 'member' ? member() : chaos()).catch(function (err) {
  console.error(`level-party ${mode} ${id}: ${err.stack || err}`)
  process.exit(1)
})
