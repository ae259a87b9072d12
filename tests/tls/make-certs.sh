#!/bin/sh
# Certificates for the TLS tests, made with the openssl command into DIR:
#   ca.crt            the CA that signs everything below but "stranger"
#   other-ca.crt      another CA
#   host.crt/.key     the host: DNS:localhost and IP:127.0.0.1
#   host-expired.*    the host, expired yesterday
#   host-other.*      the host, signed by the other CA
#   writer.*          client "CN=writer,O=ravel test"
#   reader.*          client "CN=dashboard,O=ravel test"
#   unlisted.*        client "CN=unlisted,O=ravel test" (in no access map)
#   expired.*         client "CN=writer,O=ravel test", expired yesterday
#   stranger.*        client "CN=writer,O=ravel test", signed by the other CA
# EC P-256 keys: quick to make, and every peer has them.
# Usage: make-certs.sh DIR
set -eu
dir=$1
mkdir -p "$dir"
cd "$dir"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; }
ca() {
  key "$1"
  openssl req -x509 -new -key "$1.key" -out "$1.crt" -days 30 -subj "/CN=$2" 2>/dev/null
}
# cert NAME SUBJECT CA DAYS [SAN]
cert() {
  key "$1"
  openssl req -new -key "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
  printf 'basicConstraints=CA:FALSE\n' > "$1.ext"
  [ -z "${5:-}" ] || printf 'subjectAltName=%s\n' "$5" >> "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$3.crt" -CAkey "$3.key" -CAcreateserial \
    -out "$1.crt" -days "$4" -extfile "$1.ext" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
ca ca "ravel test CA"
ca other-ca "another CA"
cert host "/CN=localhost" ca 30 "DNS:localhost,IP:127.0.0.1"
cert host-expired "/CN=localhost" ca -1 "DNS:localhost,IP:127.0.0.1"
cert host-other "/CN=localhost" other-ca 30 "DNS:localhost,IP:127.0.0.1"
cert writer "/O=ravel test/CN=writer" ca 30
cert reader "/O=ravel test/CN=dashboard" ca 30
cert unlisted "/O=ravel test/CN=unlisted" ca 30
cert expired "/O=ravel test/CN=writer" ca -1
cert stranger "/O=ravel test/CN=writer" other-ca 30
