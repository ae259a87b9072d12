#!/usr/bin/env bash
# Watches against the real Node peers (extension "watch",
# docs/protocol-extensions.md):
#  1. a watch through a Node many-level host fails with RAVEL_ENOTSUP at
#     once (ravel watch exits 3, saying so), and so does one on a directory
#     whose party a Node rave-level process leads;
#  2. a Node rave-level member's writes through a ravel leader are changes
#     like any others;
#  3. when the party moves to a Node leader (the ravel leader is
#     SIGKILLed), the watch prints a resync, then fails with RAVEL_ENOTSUP:
#     never a hang.
# Usage: run-watch-interop.sh WATCH_CHILD RAVEL
set -euo pipefail
watch_child=$1
ravel=$2
here=$(cd "$(dirname "$0")" && pwd)
if [ ! -d "$here/node_modules/rave-level" ]; then
  echo "watch interop: Node peers not installed; run: (cd $here && npm ci)" >&2
  exit 1
fi
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
status=0
fail() { echo "FAIL: $*"; status=1; }

wait_for() { # FILE PATTERN: up to 10 s
  for _ in $(seq 1 200); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

# 1a. A Node many-level host.
node "$here/node_host.js" "$tmp/node.sock" "$tmp/node-db" > "$tmp/node-host.out" &
pids+=($!)
wait_for "$tmp/node-host.out" ready || fail "the Node host did not start"
start=$(date +%s%N)
rc=0
timeout 20 "$ravel" watch --connect "unix:$tmp/node.sock" > "$tmp/w1.out" 2> "$tmp/w1.err" || rc=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
[ "$rc" -eq 3 ] || fail "watch through a Node host exited $rc, not 3"
grep -q "not supported" "$tmp/w1.err" || fail "watch through a Node host: $(cat "$tmp/w1.err")"
[ "$ms" -lt 5000 ] || fail "watch through a Node host took $ms ms to fail"
echo "# watch through a Node many-level host: exit $rc after $ms ms: $(head -1 "$tmp/w1.err")"

# 1b. A directory a Node rave-level process leads.
mkdir -p "$tmp/p1"
node "$here/rave_member.js" "$tmp/p1/db" n1 6 n1 > "$tmp/m1.out" &
pids+=($!)
wait_for "$tmp/p1/db.leader" . || fail "the Node member did not lead"
rc=0
start=$(date +%s%N)
timeout 20 "$ravel" watch "$tmp/p1/db" > "$tmp/w2.out" 2> "$tmp/w2.err" || rc=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
[ "$rc" -eq 3 ] || fail "watch on a Node-led party exited $rc, not 3"
grep -q "not supported" "$tmp/w2.err" || fail "watch on a Node-led party: $(cat "$tmp/w2.err")"
echo "# watch on a party a Node process leads: exit $rc after $ms ms"

# 2 and 3. A ravel leader, a watcher on its socket, a Node member writing;
# then the ravel leader dies and the Node member takes over.
mkdir -p "$tmp/p2"
"$watch_child" hold "$tmp/p2/db" 60 - &
leader=$!
pids+=($leader)
for _ in $(seq 1 200); do [ -e "$tmp/p2/db.ready" ] && break; sleep 0.05; done
[ -e "$tmp/p2/db.ready" ] || fail "the ravel leader did not start"
rc_file="$tmp/w3.rc"
( rc=0; timeout 60 "$ravel" watch --connect "unix:$tmp/p2/db/rave-level.sock" > "$tmp/w3.out" 2> "$tmp/w3.err" || rc=$?; echo "$rc" > "$rc_file" ) &
pids+=($!)
sleep 0.5
node "$here/rave_member.js" "$tmp/p2/db" n2 4 n2 > "$tmp/m2.out" &
pids+=($!)
wait_for "$tmp/w3.out" '"key":"mn2"' || fail "the Node member's writes through the ravel leader were not seen"
kill -KILL "$leader"
for _ in $(seq 1 400); do [ -s "$rc_file" ] && break; sleep 0.05; done
if [ ! -s "$rc_file" ]; then
  fail "the watch did not end after the party moved to a Node leader"
else
  [ "$(cat "$rc_file")" -eq 3 ] || fail "the watch exited $(cat "$rc_file"), not 3"
  tail -1 "$tmp/w3.out" | grep -q '"type":"resync"' || fail "no resync before the end: $(tail -1 "$tmp/w3.out")"
  grep -q "not supported" "$tmp/w3.err" || fail "the watch's end: $(cat "$tmp/w3.err")"
fi
echo "# party moved to a Node leader: $(grep -c '"type":"put"' "$tmp/w3.out") changes from the Node member, then $(tail -1 "$tmp/w3.out"), exit $(cat "$rc_file" 2>/dev/null)"
exit $status
