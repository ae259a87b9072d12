#!/usr/bin/env bash
# Mixed parties with the first generation: Node level-party@5.1.1
# processes, Node rave-level@1.0.0 processes and ravel processes on one
# directory, in every start order. Each member writes its key and must
# read every member's. Then the leader is SIGKILLed; in a party with all
# three kinds, leaders are SIGKILLed until a ravel member leads again
# (a Node leader serves one generation only: the other's members wait
# for a leader they can reach), and the rest carry on.
# Usage: run-gen1-party.sh PARTY_CHILD
set -euo pipefail
child=$1
here=$(cd "$(dirname "$0")" && pwd)
for m in level-party rave-level; do
  if [ ! -d "$here/node_modules/$m" ]; then
    echo "gen1 party: Node peers not installed; run: (cd $here && npm ci)" >&2
    exit 1
  fi
done
tmp=$(mktemp -d)
pids=()
kinds=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

member() { # KIND DIR ID SECONDS IDS
  case $1 in
    lp) node "$here/lp_member.js" member "$2" "$3" "$4" "$5" & ;;
    rave) node "$here/rave_member.js" "$2" "$3" "$4" "$5" & ;;
    ravel) "$child" member "$2" "$3" "$4" "$5" & ;;
  esac
  pids+=($!)
  kinds+=("$1")
}

# The pid that holds LevelDB's lock on DIR (whatever its kind), from
# /proc/locks; empty if none.
lock_holder() {
  local ino
  ino=$(stat -c %i "$1/LOCK" 2>/dev/null) || return 0
  awk -v ino="$ino" '$2 == "POSIX" { split($6, f, ":"); if (f[3] == ino) { print $5; exit } }' /proc/locks
}

wait_leader() { # DIR NOT_PID -> prints the pid
  for _ in $(seq 1 400); do
    local l
    l=$(lock_holder "$1")
    if [ -n "$l" ] && [ "$l" != "$2" ] && { [ -S "$1/level-party.sock" ] || [ -S "$1/rave-level.sock" ]; }; then
      echo "$l"; return 0
    fi
    sleep 0.025
  done
  return 1
}

kind_of() {
  for i in "${!pids[@]}"; do
    if [ "${pids[$i]}" = "$1" ]; then echo "${kinds[$i]}"; return; fi
  done
  echo unknown
}

status=0
round() { # NAME SECONDS KIND...
  local name=$1 secs=$2 dir="$tmp/$1"
  shift 2
  local n=$#
  local ids
  ids=$(seq -s, 1 "$n")
  pids=(); kinds=()
  local i=1
  for k in "$@"; do
    member "$k" "$dir" "$i" "$secs" "$ids"
    [ $i = 1 ] && { wait_leader "$dir" "" > /dev/null || { echo "FAIL $name: nobody leads"; status=1; return; }; }
    i=$((i + 1))
  done
  sleep 2
  local killed=() leader last=""
  for _ in $(seq 1 8); do
    leader=$(wait_leader "$dir" "$last") || { echo "FAIL $name: no new leader"; status=1; return; }
    local kind
    kind=$(kind_of "$leader")
    # Once a kill is done, stop at a ravel leader (everyone can reach
    # it), or at any leader in a party of two generations.
    if [ ${#killed[@]} -gt 0 ] && { [ "$kind" = ravel ] || ! [[ " $* " == *" rave "* && " $* " == *" lp "* ]]; }; then
      break
    fi
    kill -9 "$leader"
    killed+=("$kind:$leader")
    last=$leader
    sleep 0.5
  done
  local ok=1
  for i in "${!pids[@]}"; do
    local p=${pids[$i]}
    if [[ " ${killed[*]} " == *":$p "* ]]; then wait "$p" 2>/dev/null || true; continue; fi
    if ! wait "$p"; then echo "  member $((i + 1)) (${kinds[$i]}) failed"; ok=0; fi
  done
  if [ $ok = 1 ]; then
    echo "ok: $name: SIGKILLed leaders ${killed[*]}; the rest carried on (leader now $(kind_of "$leader"))"
  else
    echo "FAIL: $name (SIGKILLed ${killed[*]})"; status=1
  fi
}

round lp-first        6 lp ravel lp ravel
round ravel-first     6 ravel lp ravel lp
round three-ravel-first 9 ravel lp rave ravel lp rave
round three-lp-first    9 lp ravel rave lp ravel rave
round three-rave-first  9 rave lp ravel rave lp ravel
exit $status
