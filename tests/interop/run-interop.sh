#!/usr/bin/env bash
# Interop with the real Node peers (many-level@2.0.0 over classic-level):
#  1. the Node guest script against a Node host and against a ravel host,
#  2. the same script through ravel's C guest against both hosts,
#     all four transcripts equal byte for byte;
#  3. a Node guest with retry, its connection cut after every entry of a
#     reverse (and forward) iterator, gets every key exactly once from a
#     ravel host.
# Usage: run-interop.sh SERVE_CHILD GUEST_SCRIPT
set -euo pipefail
serve_child=$1
guest_script=$2
here=$(cd "$(dirname "$0")" && pwd)
if [ ! -d "$here/node_modules/many-level" ]; then
  echo "interop: Node peers not installed; run: (cd $here && npm ci)" >&2
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

# Start a host in the background and wait for its "ready" line.
start() {
  local out=$1; shift
  "$@" > "$out" &
  pids+=($!)
  for _ in $(seq 1 200); do
    grep -q ready "$out" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "interop: host did not start: $*" >&2
  return 1
}

start "$tmp/node-host.out" node "$here/node_host.js" "$tmp/node.sock" "$tmp/node-db"
node "$here/guest_script.js" "$tmp/node.sock" > "$tmp/node-guest-node-host.txt"
"$guest_script" "unix:$tmp/node.sock" > "$tmp/c-guest-node-host.txt"

start "$tmp/ravel-host.out" "$serve_child" "$tmp/ravel-db" "unix:$tmp/ravel.sock"
node "$here/guest_script.js" "$tmp/ravel.sock" > "$tmp/node-guest-ravel-host.txt"
"$guest_script" "unix:$tmp/ravel.sock" > "$tmp/c-guest-ravel-host.txt"

status=0
for t in c-guest-node-host node-guest-ravel-host c-guest-ravel-host; do
  if diff -u "$tmp/node-guest-node-host.txt" "$tmp/$t.txt"; then
    echo "ok: $t transcript equals node-guest-node-host ($(wc -l < "$tmp/$t.txt") steps)"
  else
    echo "FAIL: $t transcript differs from node-guest-node-host"
    status=1
  fi
done
[ "$(wc -l < "$tmp/node-guest-node-host.txt")" -eq 35 ] || { echo "FAIL: transcript is short"; status=1; }

if timeout 60 node "$here/retry_reverse.js" "$tmp/ravel.sock"; then
  echo "ok: Node guest with retry, cut after every entry, ravel host: every key exactly once"
else
  echo "FAIL: retry_reverse.js against the ravel host"
  status=1
fi
exit $status
