#!/usr/bin/env bash
# Chaos with the first generation: Node level-party@5.1.1 writers, ravel
# writers (party-child chaos) and a 'ravel serve' member on one
# directory; whoever leads — of any kind — is SIGKILLed, KILLS times,
# and a member of the same kind takes the victim's place. Every write a
# writer saw acknowledged (its log) must be in the database afterwards.
# Usage: run-gen1-chaos.sh PARTY_CHILD RAVEL [KILLS]
set -euo pipefail
child=$1
ravel=$2
kills_wanted=${3:-50}
here=$(cd "$(dirname "$0")" && pwd)
if [ ! -d "$here/node_modules/level-party" ]; then
  echo "gen1 chaos: Node peers not installed; run: (cd $here && npm ci)" >&2
  exit 1
fi
tmp=$(mktemp -d)
dir=$tmp/db
declare -A kind_of_pid=() log_of_pid=()
cleanup() {
  for p in "${!kind_of_pid[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

next_id=0
logs=()
spawn() { # KIND
  local id=$next_id
  next_id=$((next_id + 1))
  case $1 in
    lp) node "$here/lp_member.js" chaos "$dir" "n$id" "$tmp/n$id.log" & logs+=("n$id") ;;
    ravel) "$child" chaos "$dir" "r$id" "$tmp/r$id.log" & logs+=("r$id") ;;
    serve) "$ravel" serve "$dir" --listen "unix:$tmp/serve.sock" --quiet > /dev/null 2>&1 & ;;
  esac
  kind_of_pid[$!]=$1
  [ "$1" = serve ] || log_of_pid[$!]=${logs[-1]}
}

lock_holder() {
  local ino
  ino=$(stat -c %i "$dir/LOCK" 2>/dev/null) || return 0
  awk -v ino="$ino" '$2 == "POSIX" { split($6, f, ":"); if (f[3] == ino) { print $5; exit } }' /proc/locks
}

# Wait for a leader other than $1 that serves both of its sockets (or,
# for a Node level-party leader, its one).
wait_leader() {
  for _ in $(seq 1 800); do
    local l
    l=$(lock_holder)
    if [ -n "$l" ] && [ "$l" != "$1" ] && [ -n "${kind_of_pid[$l]:-}" ] && [ -S "$dir/level-party.sock" ]; then
      echo "$l"; return 0
    fi
    sleep 0.025
  done
  return 1
}

spawn ravel
wait_leader "" > /dev/null
spawn lp
spawn ravel
spawn lp
spawn serve
sleep 1

declare -A killed_kinds=()
kills=0 last=""
start=$(date +%s)
while [ $kills -lt "$kills_wanted" ]; do
  leader=$(wait_leader "$last") || { echo "FAIL: no leader after $kills kills"; exit 1; }
  sleep 0.1 # let work happen under it
  kind=${kind_of_pid[$leader]}
  kill -9 "$leader"
  wait "$leader" 2>/dev/null || true
  unset "kind_of_pid[$leader]" "log_of_pid[$leader]"
  killed_kinds[$kind]=$(( ${killed_kinds[$kind]:-0} + 1 ))
  kills=$((kills + 1))
  last=$leader
  spawn "$kind"
done
echo "SIGKILLed $kills leaders in $(( $(date +%s) - start )) s: $(for k in "${!killed_kinds[@]}"; do printf '%s %s ' "${killed_kinds[$k]}" "$k"; done)"

status=0
# Every writer is up and has written (a Node process that gets SIGTERM
# before its handler is set would die of it), then all stop.
for _ in $(seq 1 400); do
  up=1
  for p in "${!log_of_pid[@]}"; do
    [ -s "$tmp/${log_of_pid[$p]}.log" ] || up=0
  done
  [ $up = 1 ] && break
  sleep 0.025
done
for p in "${!kind_of_pid[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
for p in "${!kind_of_pid[@]}"; do
  if ! timeout 30 tail --pid="$p" -f /dev/null; then echo "FAIL: ${kind_of_pid[$p]} pid $p did not stop"; status=1; fi
  if ! wait "$p"; then echo "FAIL: ${kind_of_pid[$p]} pid $p failed"; status=1; fi
done
unset kind_of_pid; declare -A kind_of_pid=()

# Every acknowledged write is there, as LevelDB itself sees it.
"$ravel" ls "$dir" | cut -f1 | sort > "$tmp/present"
total=0
for id in "${logs[@]}"; do
  [ -f "$tmp/$id.log" ] || continue
  awk -v id="$id" '{ printf "c%s-%08d\n", id, $1 }' "$tmp/$id.log"
done | sort > "$tmp/acked"
total=$(wc -l < "$tmp/acked")
missing=$(comm -23 "$tmp/acked" "$tmp/present" | wc -l)
if [ "$missing" -ne 0 ] || [ "$total" -eq 0 ]; then
  echo "FAIL: $missing of $total acknowledged writes missing"
  comm -23 "$tmp/acked" "$tmp/present" | head
  status=1
else
  echo "ok: $total acknowledged writes of ${#logs[@]} writers all present"
fi
exit $status
