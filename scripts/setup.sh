#!/usr/bin/env bash
# Install what ravel needs to build and test, when it is missing: Debian
# packages (LevelDB, libuv, protobuf-c, OpenSSL, cmocka, cmake, valgrind,
# the openssl command that the TLS tests make certificates with, Node.js
# for the interop tests) and the Node peers from the committed lockfile.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake pkg-config libleveldb-dev libsnappy-dev libuv1-dev libprotobuf-c-dev
          libssl-dev openssl protobuf-c-compiler libcmocka-dev valgrind nodejs npm)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node may come from elsewhere than Debian; then its npm does too.
if command -v node >/dev/null && command -v npm >/dev/null; then
  missing=("${missing[@]/nodejs}")
  missing=("${missing[@]/npm}")
fi
read -r -a missing <<< "${missing[*]}"
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -d tests/interop/node_modules/many-level ] ||
   [ tests/interop/package-lock.json -nt tests/interop/node_modules/.package-lock.json ]; then
  echo "setup: npm ci (Node peers for the interop tests)"
  (cd tests/interop && npm ci --no-audit --no-fund --loglevel=error)
fi
