#!/usr/bin/env bash
# The interop transcript over mutual TLS: the Node guest script (Node's
# tls.connect with a client certificate) and ravel's C guest, each against
# a ravel host on tls:127.0.0.1:PORT that requires client certificates,
# must write the transcript of the Node guest against a Node host over a
# plain unix socket, byte for byte. Certificates: tests/tls/make-certs.sh.
# Usage: run-tls-interop.sh SERVE_CHILD GUEST_SCRIPT
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

sh "$here/../tls/make-certs.sh" "$tmp/certs"
c=$tmp/certs

start "$tmp/node-host.out" node "$here/node_host.js" "$tmp/node.sock" "$tmp/node-db"
node "$here/guest_script.js" "$tmp/node.sock" > "$tmp/node-guest-node-host.txt"

RAVEL_TLS_CERT=$c/host.crt RAVEL_TLS_KEY=$c/host.key RAVEL_TLS_CA=$c/ca.crt \
  start "$tmp/ravel-host.out" "$serve_child" "$tmp/ravel-db" "tls:127.0.0.1:0"
port=$(awk '/^ready/ {print $2}' "$tmp/ravel-host.out")
export RAVEL_TLS_CA=$c/ca.crt RAVEL_TLS_CERT=$c/writer.crt RAVEL_TLS_KEY=$c/writer.key
node "$here/guest_script.js" "tls:localhost:$port" > "$tmp/node-guest-ravel-tls-host.txt"
"$guest_script" "tls:localhost:$port" > "$tmp/c-guest-ravel-tls-host.txt"

status=0
for t in node-guest-ravel-tls-host c-guest-ravel-tls-host; do
  if diff -u "$tmp/node-guest-node-host.txt" "$tmp/$t.txt"; then
    echo "ok: $t transcript equals node-guest-node-host ($(wc -l < "$tmp/$t.txt") steps)"
  else
    echo "FAIL: $t transcript differs from node-guest-node-host"
    status=1
  fi
done
[ "$(wc -l < "$tmp/node-guest-node-host.txt")" -eq 35 ] || { echo "FAIL: transcript is short"; status=1; }

# Without a client certificate, Node's guest is refused in the handshake:
# its first request fails (TLS 1.3 refuses it after the client's side of
# the handshake, so the request sees the connection lost).
RAVEL_TLS_CERT= RAVEL_TLS_KEY= timeout 20 node "$here/guest_script.js" "tls:localhost:$port" \
  > "$tmp/nocert.txt" 2>&1 || true
if head -1 "$tmp/nocert.txt" | grep -q '^s01-clear ERR:LEVEL_CONNECTION_LOST$' ||
   grep -q 'certificate' "$tmp/nocert.txt"; then
  echo "ok: a Node guest without a client certificate is refused"
else
  echo "FAIL: a Node guest without a client certificate was not refused:"
  cat "$tmp/nocert.txt"
  status=1
fi
exit $status
