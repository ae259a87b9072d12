#!/usr/bin/env bash
# Mixed parties: ravel processes and Node rave-level@1.0.0 processes on one
# directory, started in either order; the leader — a ravel process in one
# round, a Node process in the other — is SIGKILLed midway, and every
# surviving member keeps writing and sees every member's key.
# Usage: run-party-interop.sh PARTY_CHILD
set -euo pipefail
child=$1
here=$(cd "$(dirname "$0")" && pwd)
if [ ! -d "$here/node_modules/rave-level" ]; then
  echo "party interop: Node peers not installed; run: (cd $here && npm ci)" >&2
  exit 1
fi
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

member() { # KIND DIR ID SECONDS
  if [ "$1" = node ]; then
    node "$here/rave_member.js" "$2" "$3" "$4" 1,2,3,4 &
  else
    "$child" member "$2" "$3" "$4" 1,2,3,4 &
  fi
  pids+=($!)
}

wait_leader_file() {
  for _ in $(seq 1 400); do
    [ -s "$1.leader" ] && return 0
    sleep 0.025
  done
  echo "party interop: no leader in $1" >&2
  return 1
}

status=0
round() { # NAME KIND1 KIND2 KIND3 KIND4
  local name=$1 dir="$tmp/$1"
  pids=()
  member "$2" "$dir" 1 30
  local first=${pids[0]}
  wait_leader_file "$dir"
  [ "$(cat "$dir.leader")" = "$first" ] || { echo "FAIL $name: member 1 did not lead"; status=1; }
  member "$3" "$dir" 2 4
  member "$4" "$dir" 3 4
  member "$5" "$dir" 4 4
  sleep 1.5
  kill -9 "$first"
  echo "$name: SIGKILLed the $2 leader (pid $first)"
  local ok=1
  for p in "${pids[@]:1}"; do
    if ! wait "$p"; then ok=0; fi
  done
  wait "$first" 2>/dev/null || true
  local leader
  leader=$(cat "$dir.leader")
  if [ "$leader" = "$first" ]; then echo "FAIL $name: no new leader"; ok=0; fi
  if [ $ok = 1 ]; then echo "ok: $name (new leader pid $leader)"; else echo "FAIL: $name"; status=1; fi
}

round ravel-leader-killed ravel node ravel node
round node-leader-killed node ravel node ravel
exit $status
