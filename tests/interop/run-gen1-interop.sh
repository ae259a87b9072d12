#!/usr/bin/env bash
# Interop with the first generation (multileveldown@5.0.1 over level@7):
#  1. the Node multileveldown guest script against a Node multileveldown
#     host and against a ravel multileveldown+ listener: transcripts equal
#     line for line;
#  2. ravel's C guest script (the many-level interop script, seeks
#     included) through multileveldown+ addresses to both hosts: equal to
#     its transcript against a Node many-level host;
#  3. gen1-resume: a ravel guest with retry, its stream cut after every
#     entry of forward, reverse, keys-only, values-only and seeking
#     iterators, gets every key exactly once from both hosts.
# Usage: run-gen1-interop.sh SERVE_CHILD GUEST_SCRIPT GEN1_RESUME
set -euo pipefail
serve_child=$1
guest_script=$2
gen1_resume=$3
here=$(cd "$(dirname "$0")" && pwd)
for m in multileveldown many-level level; do
  if [ ! -d "$here/node_modules/$m" ]; then
    echo "gen1 interop: Node peers not installed; run: (cd $here && npm ci)" >&2
    exit 1
  fi
done
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

start() {
  local out=$1; shift
  "$@" > "$out" &
  pids+=($!)
  for _ in $(seq 1 400); do
    grep -q ready "$out" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "gen1 interop: host did not start: $*" >&2
  return 1
}

start "$tmp/gen1-node.out" node "$here/gen1_host.js" "$tmp/gn.sock" "$tmp/gn-db"
start "$tmp/gen1-ravel.out" "$serve_child" "$tmp/gr-db" "multileveldown+unix:$tmp/gr.sock"
start "$tmp/many-node.out" node "$here/node_host.js" "$tmp/mn.sock" "$tmp/mn-db"

status=0
check() { # WHAT EXPECTED ACTUAL LINES
  if diff -u "$2" "$3"; then
    echo "ok: $1 ($(wc -l < "$3") steps)"
  else
    echo "FAIL: $1"; status=1
  fi
  [ "$(wc -l < "$2")" -eq "$4" ] || { echo "FAIL: $2 has $(wc -l < "$2") lines, not $4"; status=1; }
}

node "$here/gen1_script.js" "$tmp/gn.sock" > "$tmp/node-guest-node-host.txt"
node "$here/gen1_script.js" "$tmp/gr.sock" > "$tmp/node-guest-ravel-host.txt"
check "Node multileveldown guest: ravel host's transcript equals the Node host's" \
  "$tmp/node-guest-node-host.txt" "$tmp/node-guest-ravel-host.txt" 31

"$guest_script" "unix:$tmp/mn.sock" > "$tmp/c-many.txt"
"$guest_script" "multileveldown+unix:$tmp/gn.sock" > "$tmp/c-gen1-node.txt"
"$guest_script" "multileveldown+unix:$tmp/gr.sock" > "$tmp/c-gen1-ravel.txt"
check "ravel guest, Node multileveldown host: as against a many-level host" \
  "$tmp/c-many.txt" "$tmp/c-gen1-node.txt" 35
check "ravel guest, ravel multileveldown+ listener: as against a many-level host" \
  "$tmp/c-many.txt" "$tmp/c-gen1-ravel.txt" 35

# Every entry a cut: 10,000 entries against ravel's listener; 1,000
# against the Node host, whose every reconnect costs ~20 ms of its event
# loop (10,000 would take over three minutes).
for h in "gr 10000 ravel" "gn 1000 Node"; do
  set -- $h
  if timeout 200 "$gen1_resume" "$tmp/$1.sock" "$2"; then
    echo "ok: gen1-resume against the $3 host"
  else
    echo "FAIL: gen1-resume against the $3 host"; status=1
  fi
done
exit $status
