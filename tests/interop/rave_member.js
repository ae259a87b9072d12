'use strict'

// A Node rave-level@1.0.0 party member for the mixed-party tests.
//
// Usage: node rave_member.js DIR ID SECONDS IDS
//
// Opens DIR with RaveLevel and, for SECONDS, puts m<ID> = "<ID>:<n>" and
// reads m<X> for every X in IDS (comma-separated). When it becomes the
// leader it writes its pid to DIR.leader (as ravel's party-child does).
// Prints one line and exits 0 if it saw every member's key and no put
// failed; 1 otherwise.

const fs = require('fs')
const { RaveLevel } = require('rave-level')

const [dir, id, seconds, ids] = process.argv.slice(2)
if (!ids) {
  process.stderr.write('usage: node rave_member.js DIR ID SECONDS IDS\n')
  process.exit(2)
}

const expected = ids.split(',')
const seen = new Set()
let leader = false
let puts = 0

const db = new RaveLevel(dir, { keyEncoding: 'utf8', valueEncoding: 'utf8' })
db.on('leader', function () {
  leader = true
  const tmp = `${dir}.leader.${process.pid}`
  fs.writeFileSync(tmp, `${process.pid}\n`)
  fs.renameSync(tmp, `${dir}.leader`)
})

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function main () {
  const end = Date.now() + Number(seconds) * 1000
  while (Date.now() < end) {
    await db.put(`m${id}`, `${id}:${puts}`)
    puts++
    for (const x of expected) {
      try {
        await db.get(`m${x}`)
        seen.add(x)
      } catch (err) {
        if (err.code !== 'LEVEL_NOT_FOUND') throw err
      }
    }
    await sleep(20)
  }
  await db.close()
}

main().then(function () {
  const ok = expected.every((x) => seen.has(x))
  console.log(`node member ${id}: ${puts} puts, saw [${[...seen].sort()}], led=${leader}`)
  process.exit(ok ? 0 : 1)
}, function (err) {
  console.error(`node member ${id}: ${err.code || ''} ${err.stack || err}`)
  process.exit(1)
})
