#!/usr/bin/env bash
# ravel as its users get it: `cmake --install` into a fresh prefix, then
# programs built against that prefix only — with find_package(ravel)
# (shared and static targets), and with `pkg-config --static` for a
# static link — run; then the uninstall target removes every file.
# Usage: test-install.sh BUILD_DIR SOURCE_DIR/tests/install CC
set -uo pipefail
build=$1
here=$2
cc=$3
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ravel-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
failures=0
fail() {
  echo "FAIL [install]: $*" >&2
  failures=$((failures + 1))
}

cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log" >&2; fail "cmake --install"; exit 1; }
libdir=$(dirname "$(find "$prefix" -name ravel.pc | head -1)")/..
for f in include/ravel.h bin/ravel share/man/man1/ravel.1 share/bash-completion/completions/ravel; do
  [ -e "$prefix/$f" ] || fail "$f was not installed"
done
[ -e "$libdir/cmake/ravel/ravelConfig.cmake" ] || fail "no ravelConfig.cmake"

# find_package(ravel), from the prefix alone.
cmake -S "$here/consumer" -B "$tmp/consumer" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_C_COMPILER="$cc" >"$tmp/consumer.log" 2>&1 &&
  cmake --build "$tmp/consumer" >>"$tmp/consumer.log" 2>&1 ||
  { cat "$tmp/consumer.log" >&2; fail "find_package(ravel) consumer did not build"; }
for p in consumer consumer_static; do
  out=$("$tmp/consumer/$p" "$tmp/db-$p" 2>&1)
  [ "$out" = ok ] || fail "$p: $out"
done
# ldd's output is kept, not piped: with pipefail, `grep -q` leaving early
# would fail the pipeline on ldd's SIGPIPE.
deps=$(ldd "$tmp/consumer/consumer")
[[ "$deps" == *"libravel.so.0 => $prefix/"* ]] ||
  fail "consumer does not use the installed libravel.so: $deps"

# pkg-config --static: a program with ravel, LevelDB, libuv and protobuf-c
# linked in statically (the C library and its runtime stay shared).
export PKG_CONFIG_PATH=$libdir/pkgconfig
libs=$(pkg-config --static --libs ravel) || fail "pkg-config --static --libs ravel"
for l in -lravel -lleveldb -lsnappy -lstdc++ -lprotobuf-c; do
  [[ " $libs " == *" $l "* ]] || fail "pkg-config --static --libs ravel lacks $l: $libs"
done
if [ -e /usr/lib/x86_64-linux-gnu/libuv_a.a ] || [ -e /usr/lib/aarch64-linux-gnu/libuv_a.a ]; then
  [[ " $libs " == *" -luv_a "* ]] || fail "Debian's static libuv is -luv_a: $libs"
fi
# shellcheck disable=SC2046,SC2086
"$cc" -o "$tmp/static" "$here/consumer/main.c" $(pkg-config --cflags ravel) \
  -Wl,-Bstatic $libs -Wl,-Bdynamic 2>"$tmp/static.log" ||
  { cat "$tmp/static.log" >&2; fail "static link with pkg-config --static failed"; }
if [ -x "$tmp/static" ]; then
  out=$("$tmp/static" "$tmp/db-static" 2>&1)
  [ "$out" = ok ] || fail "static program: $out"
  deps=$(ldd "$tmp/static")
  if grep -Eq 'libravel|libleveldb|libuv|libprotobuf-c|libsnappy' <<<"$deps"; then
    fail "the static program still loads shared libraries: $deps"
  fi
fi
# The plain (dynamic) link: pkg-config --libs names ravel alone.
plain=$(pkg-config --libs ravel)
[[ "$plain" == *-lravel* && "$plain" != *-lleveldb* && "$plain" != *-luv* ]] ||
  fail "pkg-config --libs ravel: $plain"

# Uninstall: every installed file goes.
cp "$build/install_manifest.txt" "$tmp/manifest"
cmake -DMANIFEST="$build/install_manifest.txt" -P "$here/../../cmake/uninstall.cmake" >/dev/null ||
  fail "uninstall"
left=$(find "$prefix" -type f -o -type l)
[ -z "$left" ] || fail "left after uninstall: $left"

if [ "$failures" -ne 0 ]; then
  echo "install: $failures check(s) failed" >&2
  exit 1
fi
echo "install: ok"
