#!/usr/bin/env bash
# Protocol extensions against the real Node peers (docs/protocol-extensions.md):
#  1. a ravel host's first frame on every connection is its Announce, and a
#     Node many-level@2 guest works behind it (it ignores the unknown tag);
#  2. ravel's C guest, run through the interop script against a Node host
#     that records every tag it receives, sends that host only many-level's
#     tags (0-9): no Hello to a host that announced nothing;
#  3. against that host, a conditional batch and a write with sync fail
#     with RAVEL_ENOTSUP before anything is sent (ext_guest.c), and plain
#     writes work.
# run-interop.sh and run-party-interop.sh cover the rest with the Announce
# in place: Node guests' transcripts against a ravel host, and Node
# rave-level members following a ravel leader.
# Usage: run-ext-interop.sh SERVE_CHILD GUEST_SCRIPT EXT_GUEST
set -euo pipefail
serve_child=$1
guest_script=$2
ext_guest=$3
here=$(cd "$(dirname "$0")" && pwd)
if [ ! -d "$here/node_modules/many-level" ]; then
  echo "ext interop: Node peers not installed; run: (cd $here && npm ci)" >&2
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

start() { # OUTFILE CMD...: run in the background until it prints "ready"
  local out=$1; shift
  "$@" > "$out" &
  pids+=($!)
  for _ in $(seq 1 200); do
    grep -q ready "$out" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "ext interop: did not start: $*" >&2
  return 1
}

status=0
start "$tmp/ravel-host.out" "$serve_child" "$tmp/ravel-db" "unix:$tmp/ravel.sock"
node "$here/ext_check.js" announced "$tmp/ravel.sock" || status=1

start "$tmp/tap-host.out" node "$here/ext_check.js" tap-host "$tmp/node.sock" "$tmp/tags.txt"
tap_pid=${pids[-1]}
"$guest_script" "unix:$tmp/node.sock" > "$tmp/transcript.txt"
"$ext_guest" "unix:$tmp/node.sock" || status=1
kill -TERM "$tap_pid"
wait "$tap_pid" || true
if [ "$(wc -l < "$tmp/transcript.txt")" -ne 35 ]; then
  echo "FAIL: the C guest's transcript against the Node host is short"
  status=1
elif [ ! -s "$tmp/tags.txt" ] || awk '$1 > 9 { bad = 1 } END { exit !bad }' "$tmp/tags.txt"; then
  echo "FAIL: the Node host received tags $(tr '\n' ' ' < "$tmp/tags.txt")"
  status=1
else
  echo "ok: a Node host received only many-level's tags from ravel's guest: $(tr '\n' ' ' < "$tmp/tags.txt")"
fi
exit $status
