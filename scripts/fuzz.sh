#!/usr/bin/env bash
# Build the libFuzzer targets with clang in build-fuzz/ and run each one for
# SECONDS (default 30) through ctest, starting from the committed seed
# corpora (tests/fuzz/README.md). Installs clang and its runtimes
# (libFuzzer, sanitizers) when they are missing.
# Usage: scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
case "$seconds" in
  ''|*[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS]" >&2; exit 2 ;;
esac

scripts/setup.sh
missing=()
for p in clang libclang-rt-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "fuzz: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRAVEL_FUZZ=ON \
  -DRAVEL_FUZZ_SECONDS="$seconds" >/dev/null
cmake --build build-fuzz -j "$(nproc)" --target fuzz-decoder fuzz-host-session fuzz-guest-session
echo "== fuzz: each target for ${seconds}s"
(cd build-fuzz && ctest -L fuzz -j "$(nproc)" --output-on-failure)
