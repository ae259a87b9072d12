#!/usr/bin/env bash
# Build ravel and run its live demo on the default database.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target ravel_cli >/dev/null
exec build/ravel demo "$@"
