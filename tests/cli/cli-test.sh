#!/usr/bin/env bash
# The ravel command through the real binary.
# Usage: cli-test.sh RAVEL CASE
#   basic      every command on a directory: put get del ls count clear,
#              the range options, help and version
#   binary     NUL, 0xff and newlines in keys and values: -e, put -, get
#              --raw, escaped text, JSON lines with base64, hand-written lines
#   usage      bad arguments (exit 2, a message on stderr), a missing key
#              (exit 1), clear refused when stdin is not a terminal, a bad
#              load line, an unreachable host
#   serve      a directory held by 'ravel serve': data commands join its
#              party or use --connect (unix and tcp); --readonly; a second
#              serve follows and takes over; clean shutdown on signals
#   roundtrip  dump -> load of 100,000 entries into a fresh directory, the
#              dumps equal byte for byte
#   tty        clear's question and the progress line, on a terminal made
#              by script(1); silence when stderr is not a terminal
#   node       a database held by a Node rave-level process
#   tls        serve --listen tls: with client certificates and an access
#              map; data commands with --connect tls: and --tls-*; each
#              refusal in words; usage errors of the --tls options
#   info       info on a directory nobody holds, one 'ravel serve' leads
#              (with a member), a plain LevelDB program holds, one that
#              holds no database (left as it was); --connect; --json
#   backup     a copy of 1.5M entries while 4 writers join and write; a
#              copy through a leader in another process and through a
#              host, from the snapshot it keeps for the stream
#              pairs (a/W/J, z/W/J) in atomic batches: the copy equals
#              the dump of the same snapshot (-o), every pair in it is
#              whole, none of the writers' values is in it; refusals
#   admin      version, --version, -V (ravel's and LevelDB's); destroy and
#              repair refused (exit 3, nothing changed) while 'ravel
#              serve' leads the directory and while a plain LevelDB
#              program holds its lock, and on a directory that holds no
#              database; destroy refused without --force when stdin is not
#              a terminal; repair after CURRENT is lost; destroy of an
#              idle database removes the directory, ravel-options included
#   demo-twice the demo twice on one directory: each run counts its own
#              4 writer records
#   gen1       serve --listen multileveldown+unix: and multileveldown+tcp:
#              with the data commands through --connect on them; serve's
#              party serves level-party.sock too; a conditional write
#              refused through the first generation; bad prefixed
#              addresses are usage errors
#   errors     each error names its cause at once, with its exit code:
#              another user's party socket, a directory that cannot be
#              made (both as an unprivileged user, when root can make
#              one), connection refused, a typo in --listen, an address
#              in use; reading commands leave a non-database directory
#              byte for byte as it was; --timeout on a host that is not
#              there and on a directory a plain LevelDB program holds
# Exits 0 when every check passes, 77 when the case cannot run here.
set -uo pipefail
ravel=$1
case=$2
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ravel-cli.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

failures=0
fail() {
  echo "FAIL [$case]: $*" >&2
  failures=$((failures + 1))
}

# run RC ARGS...: run ravel with stdin from $IN (default /dev/null), stdout
# and stderr to $tmp/out and $tmp/err, and check its exit code.
run() {
  local want=$1
  shift
  "$ravel" "$@" <"${IN:-/dev/null}" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  [ "$rc" -eq "$want" ] || fail "ravel $* exited $rc, not $want; stderr: $(cat "$tmp/err")"
}

# out_is TEXT: stdout was exactly TEXT (write newlines as $'\n').
out_is() {
  printf '%s' "$1" | cmp -s - "$tmp/out" ||
    fail "stdout was '$(cat -A "$tmp/out")', not '$(printf '%s' "$1" | cat -A)'"
}

# err_has REGEX: stderr matched it.
err_has() {
  grep -Eq -- "$1" "$tmp/err" || fail "stderr '$(cat "$tmp/err")' lacks /$1/"
}

# start_serve NAME ARGS...: 'ravel serve ARGS' in the background, its pid
# in $served, output in $tmp/NAME.out and .err; waits for 'ready'.
start_serve() {
  local name=$1
  shift
  "$ravel" serve "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
  served=$!
  pids+=("$served")
  for _ in $(seq 1 400); do
    grep -qx ready "$tmp/$name.out" && return 0
    kill -0 "$served" 2>/dev/null || break
    sleep 0.025
  done
  fail "serve $name did not get ready: $(cat "$tmp/$name.err")"
  return 1
}

# stop PID SIGNAL: signal a serve and check that it exits 0.
stop() {
  kill "-$2" "$1"
  wait "$1"
  local rc=$?
  [ "$rc" -eq 0 ] || fail "serve (pid $1) exited $rc after SIG$2"
}

case_basic() {
  local db=$tmp/db
  run 0 put "$db" b 2
  run 0 put "$db" a 1
  run 0 put "$db" c 3
  run 0 put "$db" ab 'x y'
  run 0 get "$db" ab
  out_is $'x y\n'
  run 0 ls "$db"
  out_is $'a\t1\nab\tx y\nb\t2\nc\t3\n'
  run 0 ls "$db" --reverse --limit 2
  out_is $'c\t3\nb\t2\n'
  run 0 ls "$db" --gt a --lte b --keys
  out_is $'ab\nb\n'
  run 0 ls "$db" --gte ab --lt c --values
  out_is $'x y\n2\n'
  run 0 ls "$db" -p a -n 5
  out_is $'a\t1\nab\tx y\n'
  run 0 count "$db"
  out_is $'4\n'
  run 0 count "$db" --prefix a
  out_is $'2\n'
  run 0 count "$db" --limit 3 --reverse
  out_is $'3\n'
  # Conditions: exit 4 and nothing written when one does not hold.
  run 4 put "$db" cnt 1 --if-value 0
  err_has 'does not hold the value'
  run 0 put "$db" cnt 1 --if-absent
  run 0 put "$db" cnt 2 --if-value 1
  run 4 put "$db" cnt 9 --if-value 1
  run 0 get "$db" cnt
  out_is $'2\n'
  run 4 put "$db" cnt 9 --if-absent
  err_has 'is present'
  run 0 put "$db" fresh 1 --if-absent
  run 4 del "$db" fresh --if-value 2
  run 0 get "$db" fresh
  out_is $'1\n'
  run 0 del "$db" fresh --if-value 1
  run 1 get "$db" fresh
  run 0 put -e "$db" bin '\x00' --if-absent
  run 0 del -e "$db" bin --if-value '\x00'
  run 2 del "$db" cnt --if-absent
  run 2 put "$db" cnt 2 --if-absent --if-value 1
  run 2 get "$db" cnt --if-value 1
  run 0 del "$db" cnt
  run 0 del "$db" b
  run 1 get "$db" b
  run 0 del "$db" never-there
  run 0 clear "$db" --prefix a
  run 0 ls "$db"
  out_is $'c\t3\n'
  run 0 put "$db" d 4
  run 0 clear "$db" --limit 1
  run 0 ls "$db" --keys
  out_is $'d\n'
  run 0 clear "$db" --force
  run 0 count "$db"
  out_is $'0\n'
  # Options may come before or after the arguments; -- ends them.
  run 0 put -- "$db" -dash -value
  run 0 get "$db" -- -dash
  out_is $'-value\n'
  # A prefix of 0xff bytes has no key after it: the range is open above.
  run 0 put -e "$db" '\xff\xff1' v
  run 0 put -e "$db" '\xfe' w
  run 0 ls -e "$db" --prefix '\xff\xff' --keys
  out_is $'\\xff\\xff1\n'
  # Read-only commands do not make a database where there is none.
  run 3 ls "$tmp/none"
  [ ! -e "$tmp/none" ] || fail "ls created $tmp/none"

  run 0 --help
  grep -q '^exit codes: 0 ok, 1 not found' "$tmp/out" || fail "ravel --help lacks the exit codes"
  for cmd in serve get put del ls count clear dump load demo; do
    run 0 help "$cmd"
    grep -q "^usage: ravel $cmd" "$tmp/out" || fail "ravel help $cmd: no usage line"
    grep -q '^exit codes:' "$tmp/out" || fail "ravel help $cmd: no exit codes"
    cp "$tmp/out" "$tmp/help"
    run 0 "$cmd" --help
    cmp -s "$tmp/out" "$tmp/help" || fail "ravel $cmd --help differs from ravel help $cmd"
  done
  run 0 help dump
  grep -q 'key_b64' "$tmp/out" || fail "ravel help dump does not explain the line format"
  run 0 version
  grep -Eq '^ravel [0-9]+\.[0-9]+\.[0-9]+$' "$tmp/out" || fail "version: $(cat "$tmp/out")"
}

case_binary() {
  local db=$tmp/db
  # A key of NUL, 0xff, newline; a value of the same from stdin.
  printf 'v\0\377\nw' >"$tmp/value"
  IN=$tmp/value run 0 put -e "$db" '\x00\xff\x0a' -
  run 0 get -e "$db" '\x00\xff\x0A' --raw
  cmp -s "$tmp/out" "$tmp/value" || fail "get --raw gave back other bytes"
  run 0 get -e "$db" '\x00\xff\x0a'
  out_is $'v\\x00\\xff\\x0aw\n'
  run 0 put "$db" 'back\slash' $'tab\there é'
  run 0 ls "$db"
  out_is $'\\x00\\xff\\x0a\tv\\x00\\xff\\x0aw\nback\\\\slash\ttab\\x09here é\n'
  # What ls shows, -e reads back.
  run 0 get -e "$db" 'back\\slash'
  out_is $'tab\\x09here é\n'
  run 0 del -e "$db" '\x00\xff\x0a'
  run 0 count "$db"
  out_is $'1\n'
  IN=$tmp/value run 0 put -e "$db" '\x00\xff\x0a' -

  run 0 dump "$db"
  out_is '{"key_b64":"AP8K","value_b64":"dgD/Cnc="}
{"key":"back\\slash","value":"tab\there é"}
'
  # Hand-written lines: either member order, spaces, escapes, surrogate
  # pairs, \u0000, a blank line, CRLF.
  printf '%s\r\n' \
    '{ "value" : "one\u0000two" , "key" : "k\/1" }' \
    '' \
    '{"key":"smile \ud83d\ude00","value_b64":""}' \
    '{"key_b64":"/w==","value":"\"q\"\\\b\f\n\r\t\u00e9\u0085"}' >"$tmp/lines"
  run 0 load "$tmp/db2" "$tmp/lines"
  run 0 get "$tmp/db2" k/1 --raw
  printf 'one\0two' | cmp -s - "$tmp/out" || fail "\\u0000 did not load as NUL"
  run 0 get "$tmp/db2" 'smile 😀'
  out_is $'\n'
  run 0 get -e "$tmp/db2" '\xff' --raw
  printf '"q"\\\b\f\n\r\t\303\251\302\205' | cmp -s - "$tmp/out" || fail "JSON escapes loaded wrong"
  run 0 dump "$tmp/db2"
  out_is '{"key":"k/1","value":"one\u0000two"}
{"key":"smile 😀","value":""}
{"key_b64":"/w==","value":"\"q\"\\\u0008\u000c\n\u000d\té\u0085"}
'
  # Binary entries round trip through dump and load.
  run 0 dump "$db" -o "$tmp/d1"
  IN=$tmp/d1 run 0 load "$tmp/db3" -
  run 0 dump "$tmp/db3"
  cmp -s "$tmp/out" "$tmp/d1" || fail "binary entries changed through dump and load"
}

case_usage() {
  local db=$tmp/db
  run 0 put "$db" a 1
  run 0 put "$db" b 2
  local bad
  while IFS= read -r bad; do
    eval "set -- $bad"
    run 2 "$@"
    [ -s "$tmp/err" ] || fail "ravel $bad: no message on stderr"
    [ ! -s "$tmp/out" ] || fail "ravel $bad: wrote to stdout"
  done <<EOF

nope
get
get "$db"
get "$db" a extra
put "$db" a
ls "$db" --bogus
ls "$db" -z
ls "$db" --limit
ls "$db" --limit -1
ls "$db" --limit many
ls "$db" --gt a --gte a
ls "$db" --lt a --lte a
ls "$db" --prefix a --gt a
ls "$db" --keys --values
get "$db" a --keys
put "$db" a 1 --raw
count "$db" --values
dump "$db" --force
get -e "$db" 'a\\q'
ls -e "$db" --gt '\\x4'
get --connect unix:/nowhere "$db" a
help nope
help get put
serve
serve "$db"
serve "$db" --listen
serve "$db" --listen unix:/x extra
serve "$db" --bogus
demo --bogus
EOF
  run 1 get "$db" missing
  err_has 'not found: missing'
  [ ! -s "$tmp/out" ] || fail "get of a missing key wrote to stdout"
  # clear of everything, stdin not a terminal, no --force: refused.
  run 2 clear "$db"
  err_has 'ALL entries.*--force'
  IN=/dev/zero run 2 clear "$db"
  run 2 clear "$db" --prefix ''
  run 0 count "$db"
  out_is $'2\n'
  # A bad line: what comes before it is loaded, the message says where.
  printf '%s\n' '{"key":"c","value":"3"}' '{"key":"d","value":"4"}' '{"key":"e"}' \
    '{"key":"f","value":"6"}' >"$tmp/lines"
  run 3 load "$db" "$tmp/lines"
  err_has "$tmp/lines:3: an entry needs a key and a value \\(the 2 entries before it are loaded\\)"
  run 0 ls "$db" --keys
  out_is $'a\nb\nc\nd\n'
  local line
  for line in 'not json' '{"key":"a","value":"b"} x' '{"key":"a","value":"b","key":"c"}' \
    '{"key":"a","val":"b"}' '{"key_b64":"AP8","value":""}' '{"key":"\ud800","value":""}' \
    '{"key":"a\q","value":""}' '{"key":"a' '{"key":"a"  "value":""}'; do
    printf '%s\n' "$line" >"$tmp/lines"
    run 3 load "$db" "$tmp/lines"
    err_has ':1: '
  done
  run 3 load "$db" "$tmp/missing-file"
  err_has 'cannot open .*missing-file: No such file'
  run 3 dump "$db" -o "$tmp/no/such/dir"
  err_has 'No such file or directory'
  # No host there: an error in words, not a wait.
  run 3 get --connect "unix:$tmp/nobody.sock" a
  err_has "is a host listening on unix:$tmp/nobody.sock"
  run 2 get --connect "tcp:nonsense" a
  err_has 'tcp:HOST:PORT'
}

case_serve() {
  local db=$tmp/db s1=$tmp/s1.sock s2=$tmp/s2.sock
  start_serve one "$db" --listen "unix:$s1" --listen tcp:0 || return
  local one=$served
  grep -q "leading $db" "$tmp/one.err" || fail "serve did not say it leads: $(cat "$tmp/one.err")"
  local port
  port=$(sed -n 's/^ravel: tcp port \([0-9]*\) (tcp:127\.0\.0\.1:0)$/\1/p' "$tmp/one.err")
  [ -n "$port" ] || fail "serve did not say its tcp port: $(cat "$tmp/one.err")"
  # Through the directory: these processes join serve's party.
  run 0 put "$db" k1 v1
  run 0 get --connect "unix:$s1" k1
  out_is $'v1\n'
  run 0 put --connect "tcp:$port" k2 v2
  run 0 get --connect "tcp::$port" k2
  out_is $'v2\n'
  run 0 get --connect "tcp:127.0.0.1:$port" k2
  run 0 ls "$db"
  out_is $'k1\tv1\nk2\tv2\n'
  grep -q 'connection opened' "$tmp/one.err" || fail "serve did not log connections"
  # The log names the peer: a TCP address, a unix peer's pid.
  grep -Eq 'connection opened from 127\.0\.0\.1:[0-9]+$' "$tmp/one.err" ||
    fail "no TCP peer address in the log: $(cat "$tmp/one.err")"
  grep -Eq 'connection opened from pid [0-9]+ \(uid [0-9]+\)$' "$tmp/one.err" ||
    fail "no unix peer pid in the log: $(cat "$tmp/one.err")"
  # Every data command, both ways.
  local target
  for target in "$db" "--connect=unix:$s1"; do
    run 0 put "$target" x 1
    run 0 count "$target" --prefix x
    out_is $'1\n'
    run 0 del "$target" x
    run 1 get "$target" x
    run 0 dump "$target" -o "$tmp/dump"
    run 0 clear "$target" --force
    run 0 load "$target" "$tmp/dump"
    run 0 ls "$target" --keys
    out_is $'k1\nk2\n'
  done
  # A second serve of the same directory follows the first, and serves
  # its own address read-only.
  start_serve two "$db" --listen "unix:$s2" --readonly || return
  local two=$served
  grep -q "following the process that leads $db" "$tmp/two.err" ||
    fail "second serve did not say it follows: $(cat "$tmp/two.err")"
  run 0 get --connect "unix:$s2" k1
  out_is $'v1\n'
  run 3 put --connect "unix:$s2" k3 v3
  err_has 'read-only'
  run 3 clear --connect "unix:$s2" --force
  run 0 put "$db" k3 v3
  # The leader goes; the follower leads now and still serves.
  stop "$one" TERM
  [ ! -e "$s1" ] || fail "serve left its socket $s1 behind"
  grep -q 'SIGTERM received' "$tmp/one.err" || fail "serve did not log the signal"
  for _ in $(seq 1 200); do
    grep -q "leading $db" "$tmp/two.err" && break
    sleep 0.025
  done
  grep -q "leading $db" "$tmp/two.err" || fail "the second serve did not take over"
  run 0 ls --connect "unix:$s2" --keys
  out_is $'k1\nk2\nk3\n'
  run 0 get "$db" k3
  out_is $'v3\n'
  stop "$two" INT
  [ ! -e "$s2" ] || fail "serve left its socket $s2 behind"
  # Nobody holds the directory now: the commands open it themselves.
  run 0 count "$db"
  out_is $'3\n'
  # Cannot listen: an error in words, exit 3.
  run 3 serve "$db" --listen "unix:$tmp/no/such/dir/s"
  err_has 'cannot listen'
  [ "$(cat "$tmp/out")" = "" ] || fail "serve said ready without listening"
}

case_roundtrip() {
  local n=100000
  # Text lines with escapes (members in either order) and binary lines
  # (base64 of bytes that are not UTF-8: 0xff first).
  awk -v n=$n 'BEGIN {
    for (i = 0; i < n; i++)
      if (i % 3 == 0) printf "{\"key_b64\":\"/w%06d\",\"value_b64\":\"AA%06d\"}\n", i, n - i
      else printf "{\"value\":\"line\\nbreak \\u00e9 \\\\ %d\",\"key\":\"t%06d\"}\n", i, i
  }' >"$tmp/input"
  # The source directory is held by a serve; load joins its party, dump
  # goes through --connect.
  start_serve held "$tmp/a" --listen "unix:$tmp/a.sock" --quiet || return
  local held=$served
  run 0 load "$tmp/a" "$tmp/input"
  [ ! -s "$tmp/err" ] || fail "load wrote to stderr, not a terminal: $(cat "$tmp/err")"
  run 0 count --connect "unix:$tmp/a.sock"
  out_is "$n"$'\n'
  run 0 dump --connect "unix:$tmp/a.sock" -o "$tmp/d1"
  [ ! -s "$tmp/err" ] || fail "dump wrote to stderr, not a terminal: $(cat "$tmp/err")"
  stop "$held" TERM
  [ "$(wc -l <"$tmp/d1")" -eq $n ] || fail "the dump has $(wc -l <"$tmp/d1") lines, not $n"
  grep -q '"key_b64":"/w000003"' "$tmp/d1" || fail "binary keys were not dumped as base64"
  # Into a fresh directory, from stdin; its dump, to stdout, is the same.
  IN=$tmp/d1 run 0 load "$tmp/b"
  run 0 dump "$tmp/b"
  cmp "$tmp/out" "$tmp/d1" || fail "the dumps of the source and the copy differ"
}

case_tty() {
  command -v script >/dev/null || { echo "script(1) is not installed" >&2; exit 77; }
  local db=$tmp/db
  # script(1) runs a command on a new terminal, with its own stdin fed to it.
  on_tty() {
    local input=$1
    shift
    printf '%s' "$input" | script -qec "$*" /dev/null >"$tmp/tty" 2>&1
  }
  run 0 put "$db" a 1
  run 0 put "$db" b 2
  on_tty $'n\n' "$ravel" clear "$db"
  [ $? -eq 3 ] || fail "clear answered n did not exit 3"
  grep -q "clear ALL entries of $db? \\[y/N\\]" "$tmp/tty" ||
    fail "clear did not ask: $(cat "$tmp/tty")"
  run 0 count "$db"
  out_is $'2\n'
  on_tty $'yes\n' "$ravel" clear "$db" || fail "clear answered yes failed: $(cat "$tmp/tty")"
  run 0 count "$db"
  out_is $'0\n'
  # A range is no question.
  run 0 put "$db" a 1
  on_tty '' "$ravel" clear "$db" --prefix a || fail "clear of a range asked: $(cat "$tmp/tty")"
  # Progress on a terminal, entries and rate; silence elsewhere (above and
  # in roundtrip).
  awk 'BEGIN { for (i = 0; i < 5000; i++) printf "{\"key\":\"k%05d\",\"value\":\"v\"}\n", i }' \
    >"$tmp/lines"
  on_tty '' "$ravel" load "$db" "$tmp/lines"
  grep -q 'loaded 5000 entries, [0-9]* entries/s' "$tmp/tty" ||
    fail "load showed no progress: $(cat "$tmp/tty")"
  on_tty '' "$ravel" dump "$db" -o "$tmp/dump"
  grep -q 'dumped 5000 entries, [0-9]* entries/s' "$tmp/tty" ||
    fail "dump showed no progress: $(cat "$tmp/tty")"
  cmp -s "$tmp/dump" "$tmp/lines" || fail "the dump differs from what was loaded"
  run 0 dump "$db" -o "$tmp/dump"
  [ ! -s "$tmp/err" ] || fail "dump wrote to stderr, not a terminal"
}

case_node() {
  local member=$here/../interop/rave_member.js
  if ! command -v node >/dev/null || [ ! -d "$here/../interop/node_modules/rave-level" ]; then
    echo "node or the Node peers (tests/interop: npm ci) are missing" >&2
    exit 77
  fi
  local db=$tmp/db
  # A Node rave-level member leads the directory for 6 seconds, putting
  # m1; the ravel commands join its party meanwhile.
  node "$member" "$db" 1 6 1 >"$tmp/node.out" 2>&1 &
  local node_pid=$!
  pids+=("$node_pid")
  for _ in $(seq 1 400); do
    [ -s "$db.leader" ] && break
    sleep 0.025
  done
  if [ "$(cat "$db.leader" 2>/dev/null)" != "$node_pid" ]; then
    fail "the Node member did not lead"
    return
  fi
  run 0 get "$db" m1
  grep -Eq '^1:[0-9]+$' "$tmp/out" || fail "get m1 from the Node leader: $(cat "$tmp/out")"
  run 0 info --json "$db"
  grep -q "\"leader\":{\"pid\":$node_pid,\"kind\":\"node\"" "$tmp/out" ||
    fail "info does not name the Node leader: $(cat "$tmp/out")"
  run 0 put -e "$db" 'from\x00c' $'two\nlines'
  run 0 ls "$db" --keys
  out_is $'from\\x00c\nm1\n'
  run 0 dump "$db" --prefix from
  out_is $'{"key":"from\\u0000c","value":"two\\nlines"}\n'
  wait "$node_pid" || fail "the Node member failed: $(cat "$tmp/node.out")"
  run 0 get -e "$db" 'from\x00c'
  out_is $'two\\x0alines\n'
}

case_tls() {
  command -v openssl >/dev/null || { echo "tls: no openssl command" >&2; exit 77; }
  local c=$tmp/certs db=$tmp/db
  sh "$here/../tls/make-certs.sh" "$c" || { fail "make-certs.sh failed"; return; }
  start_serve one "$db" --listen tls:0 --listen tcp:0 --tls-cert "$c/host.crt" \
    --tls-key "$c/host.key" --tls-ca "$c/ca.crt" --tls-allow "rw:CN=writer,O=ravel test" \
    --tls-allow "ro:CN=dashboard,O=ravel test" --max-connections 64 || return
  local port plain
  port=$(sed -n 's/^ravel: tls port \([0-9]*\) (tls:127\.0\.0\.1:0)$/\1/p' "$tmp/one.err")
  plain=$(sed -n 's/^ravel: tcp port \([0-9]*\) (tcp:127\.0\.0\.1:0)$/\1/p' "$tmp/one.err")
  [ -n "$port" ] && [ -n "$plain" ] || { fail "serve did not say its ports: $(cat "$tmp/one.err")"; return; }
  local w=(--tls-ca "$c/ca.crt" --tls-cert "$c/writer.crt" --tls-key "$c/writer.key")
  local r=(--tls-ca "$c/ca.crt" --tls-cert "$c/reader.crt" --tls-key "$c/reader.key")
  run 0 put --connect "tls:$port" "${w[@]}" k1 v1
  run 0 get --connect "tls:localhost:$port" "${r[@]}" k1
  out_is $'v1\n'
  run 0 ls --connect "tls::$port" "${r[@]}"
  out_is $'k1\tv1\n'
  run 3 put --connect "tls:$port" "${r[@]}" k2 v2
  err_has 'read-only'
  grep -q 'TLS connection (TLSv1.3, read-only): subject "CN=dashboard,O=ravel test"' "$tmp/one.err" ||
    fail "serve did not log the reader's access: $(cat "$tmp/one.err")"
  # Refusals, each in words.
  run 3 get --connect "tls:$port" --tls-ca "$c/ca.crt" k1
  err_has 'requires a client certificate'
  run 3 get --connect "tls:$port" --tls-ca "$c/ca.crt" --tls-cert "$c/unlisted.crt" --tls-key "$c/unlisted.key" k1
  err_has 'did not accept our certificate'
  run 3 get --connect "tls:$port" --tls-ca "$c/ca.crt" --tls-cert "$c/expired.crt" --tls-key "$c/expired.key" k1
  err_has 'our certificate has expired'
  run 3 get --connect "tls:$port" --tls-ca "$c/ca.crt" --tls-cert "$c/stranger.crt" --tls-key "$c/stranger.key" k1
  err_has 'unknown CA'
  run 3 get --connect "tls:$port" --tls-ca "$c/other-ca.crt" --tls-cert "$c/writer.crt" --tls-key "$c/writer.key" k1
  err_has "host's certificate is not signed by a trusted CA"
  run 3 get --connect "tls:$port" "${w[@]}" --tls-server-name db.example.com k1
  err_has 'name mismatch'
  run 3 get --connect "tcp:$port" k1
  err_has 'speaks TLS on this port'
  run 3 get --connect "tls:$plain" "${w[@]}" k1
  err_has 'does not speak TLS'
  grep -q 'refusing a TLS client: the client.s certificate has expired' "$tmp/one.err" ||
    fail "serve did not log the expired certificate: $(cat "$tmp/one.err")"
  # Usage errors.
  run 2 get --connect "tcp:$port" --tls-ca "$c/ca.crt" k1
  err_has 'need a tls:HOST:PORT'
  run 2 get "$db" --tls-ca "$c/ca.crt" k1
  run 2 get --connect "tls:$port" --tls-ca "$c/ca.crt" --tls-cert "$c/writer.crt" k1
  err_has 'go together'
  run 3 get --connect "tls:$port" --tls-ca "$tmp/none.crt" k1
  err_has 'none.crt'
  run 2 serve "$tmp/db2" --listen tls:0
  err_has 'needs --tls-cert'
  run 2 serve "$tmp/db2" --listen tls:0 --tls-cert "$c/host.crt" --tls-key "$c/host.key" --tls-allow "x:CN=a"
  err_has 'tls-allow'
  run 3 serve "$tmp/db2" --listen tls:0 --tls-cert "$c/host.crt" --tls-key "$c/writer.key"
  err_has 'does not match'
  stop "$served" TERM
}

# snapshot DIR: every file's name, size, mode, times and bytes.
snapshot() {
  (cd "$1" && find . -printf '%p %s %m %T@ %C@\n' | sort && find . -type f -exec sha256sum {} + | sort)
}

# as_nobody ARGS...: ravel as an unprivileged user (uid 65534), like run.
as_nobody() {
  local want=$1
  shift
  setpriv --reuid=65534 --regid=65534 --clear-groups "$ravel" "$@" </dev/null >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  [ "$rc" -eq "$want" ] || fail "ravel $* as uid 65534 exited $rc, not $want; stderr: $(cat "$tmp/err")"
}

case_errors() {
  local db=$tmp/db t0
  chmod 755 "$tmp"
  # Connection refused, said as such (was "bad file descriptor").
  run 3 get --connect tcp:127.0.0.1:1 a
  err_has 'Connection refused'
  # A typo in --listen is a usage error, and nothing is opened or made.
  run 2 serve "$db" --listen 7777
  err_has '--listen 7777: not an address'
  [ ! -e "$db" ] || fail "serve with a bad --listen made $db"
  run 2 serve "$db" --listen tcp:127.0.0.1:99999
  err_has 'port must be a number'
  run 2 count --connect unix: 
  # An address in use says so.
  start_serve one "$db" --listen tcp:0 --listen "unix:$tmp/one.sock" || return
  local one=$served port
  port=$(sed -n 's/^ravel: tcp port \([0-9]*\) .*/\1/p' "$tmp/one.err")
  run 3 serve "$tmp/other" --listen "tcp:$port"
  err_has "cannot listen on tcp:127.0.0.1:$port: the address is already in use"
  run 3 serve "$tmp/other" --listen "unix:$tmp/one.sock"
  err_has 'another process is serving there'
  # A directory that holds no database: reading commands refuse it and
  # leave it exactly as it was (LevelDB would write LOCK and LOG).
  local plain=$tmp/plain
  mkdir -p "$plain/sub"
  printf 'x' >"$plain/f"
  printf 'y' >"$plain/sub/g"
  touch -d '2001-01-01' "$plain" "$plain/f" "$plain/sub"
  snapshot "$plain" >"$tmp/before"
  local cmd
  for cmd in "get $plain a" "ls $plain" "count $plain" "dump $plain" "del $plain a" \
    "clear $plain --force" "ls $plain/sub" "count $plain/f"; do
    eval "run 3 $cmd"
    err_has 'no LevelDB database|not a directory'
  done
  snapshot "$plain" >"$tmp/after"
  cmp -s "$tmp/before" "$tmp/after" || fail "reading commands changed $plain: $(diff "$tmp/before" "$tmp/after")"
  # --timeout: a host that is not there, a directory a plain LevelDB
  # program holds (a POSIX lock on LOCK, as LevelDB takes it).
  run 2 count "$db" --timeout soon
  err_has '--timeout needs milliseconds'
  t0=$(date +%s%N)
  run 3 count --connect "unix:$tmp/none.sock" --timeout 300
  err_has 'no connection to the host within the connect timeout'
  [ $((($(date +%s%N) - t0) / 1000000)) -lt 3000 ] || fail "--timeout 300 took over 3 s"
  if command -v python3 >/dev/null; then
    run 0 put "$tmp/held" k v
    python3 -c 'import fcntl, sys, time
f = open(sys.argv[1] + "/LOCK", "r+")
fcntl.lockf(f, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(30)' "$tmp/held" >"$tmp/held.out" &
    pids+=($!)
    for _ in $(seq 1 200); do grep -q locked "$tmp/held.out" && break; sleep 0.025; done
    t0=$(date +%s%N)
    run 3 get "$tmp/held" k --timeout 300
    err_has 'locked by a process that does not share it.*waited 300 ms'
    [ $((($(date +%s%N) - t0) / 1000000)) -lt 3000 ] || fail "a locked directory: --timeout 300 took over 3 s"
  else
    echo "errors: no python3 to hold a lock: --timeout on a locked directory is skipped" >&2
  fi
  if [ "$(id -u)" -ne 0 ] || ! command -v setpriv >/dev/null; then
    echo "errors: not root, or no setpriv: the checks as another user are skipped" >&2
  else
    # Another user's party socket (srw-------): permission denied, at once
    # (it waited lock_timeout_ms, 10 s, then blamed the lock).
    t0=$(date +%s%N)
    as_nobody 3 count "$db"
    err_has "permission denied on $db/rave-level.sock"
    [ $((($(date +%s%N) - t0) / 1000000)) -lt 2000 ] || fail "permission denied took over 2 s"
    # A database directory that may not be made: permission denied.
    mkdir "$tmp/locked"
    as_nobody 3 put "$tmp/locked/sub/" k v
    err_has "cannot create database $tmp/locked/sub: permission denied"
  fi
  stop "$one" TERM
}

case_info() {
  local db=$tmp/db
  run 0 put "$db" k v
  run 0 info "$db"
  grep -q '^database   yes' "$tmp/out" || fail "info: $(cat "$tmp/out")"
  grep -q '^leader     none: nobody holds the directory' "$tmp/out" || fail "info: $(cat "$tmp/out")"
  grep -q '^leveldb    stats not known: nobody serves it' "$tmp/out" || fail "info: $(cat "$tmp/out")"
  grep -q '^options    bloom_bits_per_key 0, compression 1, block_size 4096' "$tmp/out" ||
    fail "info: no recorded options: $(cat "$tmp/out")"
  grep -Eq '^size       [1-9][0-9]* bytes on disk, [0-9]+ files' "$tmp/out" || fail "info: $(cat "$tmp/out")"
  start_serve one "$db" --listen "unix:$tmp/one.sock" || return
  local one=$served
  # A member: load waits on its stdin, following serve meanwhile.
  (sleep 3 | "$ravel" load "$db") &
  local member=$!
  pids+=("$member")
  for _ in $(seq 1 100); do
    run 0 info --json "$db"
    grep -q '"members":1' "$tmp/out" && break
    sleep 0.05
  done
  grep -q "\"leader\":{\"pid\":$one,\"kind\":\"ravel\",\"version\":1" "$tmp/out" ||
    fail "info --json does not name serve as a ravel leader: $(cat "$tmp/out")"
  grep -q '"members":1' "$tmp/out" || fail "info --json does not count the member: $(cat "$tmp/out")"
  grep -q "\"lock_holder\":{\"pid\":$one" "$tmp/out" || fail "info --json: lock holder: $(cat "$tmp/out")"
  run 0 info "$db"
  grep -Eq "^leader     pid $one, ravel \(protocol extensions version 1\): .*serve" "$tmp/out" ||
    fail "info: $(cat "$tmp/out")"
  # LevelDB's own figures, asked of the leader.
  grep -q '^leveldb.stats, from the leader:' "$tmp/out" && grep -q 'Compactions' "$tmp/out" &&
    grep -Eq '^memory     [0-9]+ bytes' "$tmp/out" || fail "info: no LevelDB stats: $(cat "$tmp/out")"
  grep -Eq '^exactly-once guests remembered: [0-9]+' "$tmp/out" ||
    fail "info: no exactly-once state: $(cat "$tmp/out")"
  grep -Eq '^change log off \(ravel changelog DIR on\); last sequence [0-9]+' "$tmp/out" ||
    fail "info: no change-log state: $(cat "$tmp/out")"
  run 0 info --json "$db"
  grep -q '"leveldb":{"stats":".*Compactions' "$tmp/out" || fail "info --json: stats: $(cat "$tmp/out")"
  # compact through the leader (this process follows) and through a host.
  run 0 compact "$db" --prefix k
  out_is $'compacted\n'
  run 0 compact --connect "unix:$tmp/one.sock"
  out_is $'compacted\n'
  run 0 info --connect "unix:$tmp/one.sock"
  grep -q "^host       ravel" "$tmp/out" || fail "info --connect: $(cat "$tmp/out")"
  grep -q "^pid        $one" "$tmp/out" || fail "info --connect: $(cat "$tmp/out")"
  wait "$member"
  stop "$one" TERM
  run 3 info --connect "unix:$tmp/one.sock"
  err_has 'cannot be reached'
  run 3 info --connect tcp:127.0.0.1:1 --json
  grep -q '"reachable":false' "$tmp/out" || fail "info --connect --json: $(cat "$tmp/out")"
  run 0 compact "$db"
  run 2 compact "$db" extra
  run 2 compact "$db" --limit 3
  err_has '--limit and --reverse do not apply'

  run 2 info
  run 2 info "$db" --connect unix:/x
  run 2 info --connect 7777
  # Held by a plain LevelDB program: named, no wait for the lock.
  if command -v python3 >/dev/null; then
    python3 -c 'import fcntl, sys, time
f = open(sys.argv[1] + "/LOCK", "r+")
fcntl.lockf(f, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(30)' "$db" >"$tmp/held.out" &
    local holder=$!
    pids+=("$holder")
    for _ in $(seq 1 200); do grep -q locked "$tmp/held.out" && break; sleep 0.025; done
    run 0 info "$db"
    grep -q "^leader     none: pid $holder holds LevelDB's lock and does not share it" "$tmp/out" ||
      fail "info on a held directory: $(cat "$tmp/out")"
    kill "$holder"
  fi
  # No database: said so (exit 3), and the directory is left as it was.
  mkdir -p "$tmp/plain"
  printf x >"$tmp/plain/f"
  snapshot "$tmp/plain" >"$tmp/before"
  run 3 info "$tmp/plain"
  err_has 'no LevelDB database'
  snapshot "$tmp/plain" >"$tmp/after"
  cmp -s "$tmp/before" "$tmp/after" || fail "info changed $tmp/plain"
}

case_backup() {
  local db=$tmp/db copy=$tmp/copy
  awk 'BEGIN {
    for (i = 0; i < 1500000; i++) printf "{\"key\":\"m/%07d\",\"value\":\"filler %d\"}\n", i, i
    for (w = 1; w <= 4; w++) for (j = 0; j < 25; j++) {
      printf "{\"key\":\"a/%d/%02d\",\"value\":\"r0\"}\n", w, j
      printf "{\"key\":\"z/%d/%02d\",\"value\":\"r0\"}\n", w, j
    }
  }' >"$tmp/seed"
  run 0 load "$db" "$tmp/seed"
  "$ravel" backup "$db" "$copy" -o "$tmp/lines" >"$tmp/backup.out" 2>"$tmp/backup.err" &
  local b=$!
  pids+=("$b")
  # Writers join once backup leads (else backup would follow, and refuse).
  for _ in $(seq 1 400); do
    "$ravel" info --json "$db" 2>/dev/null | grep -q "\"leader\":{\"pid\":$b," && break
    sleep 0.01
  done
  local w writers=()
  for w in 1 2 3 4; do
    (
      for r in $(seq 1 200); do
        kill -0 "$b" 2>/dev/null || break
        for j in $(seq -w 0 24); do
          printf '{"key":"a/%d/%s","value":"r%d"}\n{"key":"z/%d/%s","value":"r%d"}\n' \
            "$w" "$j" "$r" "$w" "$j" "$r"
        done >"$tmp/w$w.lines"
        "$ravel" load "$db" "$tmp/w$w.lines" || exit 1
        touch "$tmp/w$w.wrote"
      done
    ) &
    writers+=($!)
    pids+=($!)
  done
  wait "$b" || fail "backup exited $?: $(cat "$tmp/backup.err")"
  local overlapped=0
  for w in 1 2 3 4; do [ -e "$tmp/w$w.wrote" ] && overlapped=$((overlapped + 1)); done
  for w in "${writers[@]}"; do wait "$w" || fail "a writer failed"; done
  [ "$overlapped" -gt 0 ] || fail "no writer wrote while backup ran: the case proves nothing"
  grep -q '^1500200 entries copied from one snapshot' "$tmp/backup.out" ||
    fail "backup said: $(cat "$tmp/backup.out")"
  # The copy opens (plain LevelDB, nobody holds it) and equals the dump of
  # the same snapshot.
  "$ravel" dump "$copy" | cmp -s - "$tmp/lines" || fail "the copy differs from its snapshot's dump"
  run 0 count "$copy"
  out_is $'1500200\n'
  # Every pair whole, and from before the writers: one snapshot.
  grep -E '"key":"[az]/' "$tmp/lines" | grep -v '"value":"r0"' >"$tmp/later" &&
    fail "the copy holds writes made after its snapshot: $(head -3 "$tmp/later")"
  run 0 get "$db" z/1/00
  [ "$(cat "$tmp/out")" != r0 ] || fail "the writers' writes did not land in $db"
  # Through a leader in another process and through a host: the
  # snapshot is the leader's, kept for backup's stream, while a writer
  # goes on (each of its loads is one batch: a snapshot has all of a
  # round or none of it).
  run 0 clear "$db" --prefix m/
  start_serve one "$db" --listen "unix:$tmp/one.sock" || return
  (
    for r in $(seq 1 100000); do
      for j in $(seq -w 0 24); do
        printf '{"key":"a/1/%s","value":"s%d"}\n{"key":"z/1/%s","value":"s%d"}\n' \
          "$j" "$r" "$j" "$r"
      done >"$tmp/wf.lines"
      "$ravel" load "$db" "$tmp/wf.lines" || exit 1
      touch "$tmp/wf.wrote"
    done
  ) &
  local wf=$!
  pids+=("$wf")
  for _ in $(seq 1 500); do [ -e "$tmp/wf.wrote" ] && break; sleep 0.01; done
  local how n
  for how in follower host; do
    if [ $how = follower ]; then
      run 0 backup "$db" "$tmp/copy-$how" -o "$tmp/lines-$how"
    else
      run 0 backup --connect "unix:$tmp/one.sock" "$tmp/copy-$how" -o "$tmp/lines-$how"
    fi
    grep -q '^200 entries copied from one snapshot' "$tmp/out" ||
      fail "backup through the $how said: $(cat "$tmp/out")"
    "$ravel" dump "$tmp/copy-$how" | cmp -s - "$tmp/lines-$how" ||
      fail "the copy through the $how differs from its snapshot's dump"
    n=$(grep -E '"key":"[az]/1/' "$tmp/lines-$how" | sed 's/.*"value":"\([^"]*\)".*/\1/' |
      sort -u | wc -l)
    [ "$n" -eq 1 ] || fail "the copy through the $how mixes $n rounds of one writer's batches"
  done
  kill "$wf" 2>/dev/null
  wait "$wf" 2>/dev/null
  stop "$served" TERM
  run 3 backup "$db" "$copy"
  err_has 'exists and is not an empty directory'
  run 2 backup "$db"
}

case_demo_twice() {
  local run
  for run in 1 2; do
    run 0 demo --seconds 1 --dir "$tmp/demo"
    grep -q '(4 writer records in LevelDB)' "$tmp/out" ||
      fail "demo run $run: $(tail -1 "$tmp/out")"
  done
}

case_admin() {
  local db=$tmp/db v
  for v in version --version -V; do
    run 0 "$v"
    grep -Eq '^ravel [0-9]+\.[0-9]+\.[0-9]+$' "$tmp/out" || fail "$v: $(cat "$tmp/out")"
    grep -Eq '^LevelDB [0-9]+\.[0-9]+$' "$tmp/out" || fail "$v: no LevelDB version: $(cat "$tmp/out")"
  done
  for v in destroy repair; do
    run 0 help "$v"
    grep -q "^usage: ravel $v" "$tmp/out" || fail "ravel help $v: no usage line"
  done
  run 0 put "$db" k v
  run 0 put "$db" k2 v2
  # Not a database: refused, the directory left as it was.
  mkdir -p "$tmp/plain"
  printf x >"$tmp/plain/LOG"
  run 3 destroy --force "$tmp/plain"
  err_has 'no LevelDB database'
  run 3 repair "$tmp/plain"
  err_has 'no LevelDB files'
  [ "$(ls "$tmp/plain")" = LOG ] || fail "destroy or repair changed $tmp/plain: $(ls "$tmp/plain")"
  run 2 destroy "$db"
  err_has 'add --force'
  run 2 destroy
  # Held by 'ravel serve': refused, naming its pid.
  start_serve one "$db" --listen "unix:$tmp/one.sock" || return
  local one=$served
  run 3 destroy --force "$db"
  err_has "process $one holds its LOCK"
  run 3 repair "$db"
  err_has "process $one holds its LOCK"
  run 0 get "$db" k
  out_is $'v\n'
  stop "$one" TERM
  # Held by a plain LevelDB program (a POSIX lock on LOCK, as LevelDB
  # takes it).
  if command -v python3 >/dev/null; then
    python3 -c 'import fcntl, sys, time
f = open(sys.argv[1] + "/LOCK", "r+")
fcntl.lockf(f, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(30)' "$db" >"$tmp/held.out" &
    local holder=$!
    pids+=("$holder")
    for _ in $(seq 1 200); do grep -q locked "$tmp/held.out" && break; sleep 0.025; done
    run 3 destroy --force "$db"
    err_has "process $holder holds its LOCK"
    run 3 repair "$db"
    err_has "process $holder holds its LOCK"
    kill "$holder"
    wait "$holder" 2>/dev/null
  fi
  # Idle: repair brings back a database whose CURRENT is lost.
  rm "$db/CURRENT"
  run 3 get "$db" k
  run 0 repair "$db"
  run 0 get "$db" k2
  out_is $'v2\n'
  [ -e "$db/ravel-options" ] || fail "no ravel-options in $db"
  run 0 destroy --force "$db"
  [ ! -e "$db" ] || fail "destroy left $db: $(ls -A "$db")"
}

case_gen1() {
  local db=$tmp/db s=$tmp/m.sock
  start_serve g "$db" --listen "multileveldown+unix:$s" --listen multileveldown+tcp:0 || return
  local pid=$served
  [ -S "$db/level-party.sock" ] || fail "serve's party does not serve level-party.sock"
  [ -S "$db/rave-level.sock" ] || fail "serve's party does not serve rave-level.sock"
  local port
  port=$(sed -n 's/^ravel: tcp port \([0-9]*\) (multileveldown+tcp:127\.0\.0\.1:0)$/\1/p' "$tmp/g.err")
  [ -n "$port" ] || fail "serve did not say its tcp port: $(cat "$tmp/g.err")"
  run 0 put --connect "multileveldown+unix:$s" k1 v1
  run 0 get --connect "multileveldown+tcp:$port" k1
  out_is $'v1\n'
  run 1 get --connect "multileveldown+unix:$s" nope
  run 0 put "$db" k2 v2
  run 0 ls --connect "multileveldown+unix:$s"
  out_is $'k1\tv1\nk2\tv2\n'
  # A condition needs an extension the first generation does not have.
  run 3 put --connect "multileveldown+unix:$s" --if-absent k3 v3
  run 1 get "$db" k3
  run 2 get --connect multileveldown+tls:127.0.0.1:1 k1
  err_has 'multileveldown\+ goes before unix:PATH or tcp:HOST:PORT'
  run 2 serve "$db" --listen multileveldown+foo
  stop "$pid" TERM
}

case "$case" in
basic | binary | usage | serve | roundtrip | tty | node | tls | errors | demo-twice | info | backup | admin | gen1) "case_${case/-/_}" ;;
*)
  echo "cli-test.sh: no case $case" >&2
  exit 2
  ;;
esac
if [ "$failures" -ne 0 ]; then
  echo "$case: $failures check(s) failed" >&2
  exit 1
fi
echo "$case: ok"
