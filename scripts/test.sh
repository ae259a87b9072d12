#!/usr/bin/env bash
# Build ravel and run every test: once as a normal build, once under
# AddressSanitizer + UndefinedBehaviorSanitizer (LeakSanitizer included).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
jobs=$(nproc)
for variant in build build-asan; do
  flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
  [ "$variant" = build-asan ] && flags=(-DCMAKE_BUILD_TYPE=Debug -DRAVEL_SANITIZE=ON)
  cmake -S . -B "$variant" "${flags[@]}" >/dev/null
  cmake --build "$variant" -j "$jobs"
  echo "== ctest ($variant)"
  (cd "$variant" && ctest --output-on-failure --timeout 600)
done
