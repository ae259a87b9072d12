/* TLS with OpenSSL: the contexts a guest and a host make from their
 * options, the settings they share, and words for what went wrong. The
 * transports (guest/stream.c, host/host.c) drive SSL objects on their own
 * non-blocking fds; nothing here touches an fd.
 *
 * Settings, and why:
 *   - TLS 1.2 at least: 1.0 and 1.1 are deprecated (RFC 8996);
 *   - TLS 1.2 ciphers with forward secrecy and AEAD only (ECDHE with
 *     AES-GCM or ChaCha20-Poly1305; Node's defaults include them); TLS 1.3
 *     suites as OpenSSL has them; the system's security level otherwise
 *     (Debian's openssl.cnf: level 2, RSA keys of 2048 bits or more);
 *   - verification always: a guest checks the host's chain and its name
 *     (DNS name, or IP address when HOST is one; no partial wildcards); a
 *     host with a client CA requires and checks a client certificate;
 *   - no renegotiation (a TLS 1.2 peer could otherwise make a write wait
 *     for a read at any time, and it has a history of attacks);
 *   - no session tickets or session cache: guests reconnect rarely (a
 *     full handshake costs about a millisecond) and keep no state between
 *     connections, and the host keeps no ticket key to rotate;
 *   - a peer that closes without a close_notify has simply closed (the
 *     protocol's frames carry their own lengths, so a cut is seen anyway);
 *   - read-ahead on, partial writes and moving write buffers allowed: the
 *     transports read many records per read(2) and write from a buffer
 *     that grows between tries. */
#ifndef RAVEL_TRANSPORT_TLS_H
#define RAVEL_TRANSPORT_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>

#include "ravel.h"

/* The first byte of every TLS handshake record, and of an alert. */
#define RV_TLS_HANDSHAKE_BYTE 0x16
#define RV_TLS_ALERT_BYTE 0x15

/* A guest's context: verify against o->tls_ca_file (or the system's
 * CAs), with o's client certificate if any. RAVEL_OK, or RAVEL_EINVAL /
 * RAVEL_ENOMEM with the message set. */
int rv_tls_client_ctx(SSL_CTX **out, const ravel_options *o);

/* A host's access map, parsed. */
typedef struct rv_tls_rule {
    int is_fp;
    unsigned char fp[32];
    char *subject;
    int readonly;
} rv_tls_rule;

typedef struct rv_tls_access {
    rv_tls_rule *rules;
    size_t n;
} rv_tls_access;

/* Copy and parse o's access map. RAVEL_OK, or RAVEL_EINVAL (a rule that
 * names nothing, a bad fingerprint) / RAVEL_ENOMEM with the message set. */
int rv_tls_access_parse(rv_tls_access *a, const ravel_host_options *o);
void rv_tls_access_free(rv_tls_access *a);

/* A host's context from o's certificate, key and client CA, checking
 * client certificates against `a` (parsed from o; it must outlive the
 * context). An SSL whose app data is a char[RV_TLS_NOTE] gets the reason
 * of an access-map refusal there. RAVEL_OK, or RAVEL_EINVAL /
 * RAVEL_ENOMEM with the message set. */
#define RV_TLS_NOTE 512
int rv_tls_server_ctx(SSL_CTX **out, const ravel_host_options *o, const rv_tls_access *a);

/* The rule for a client certificate, or NULL when none matches. */
const rv_tls_rule *rv_tls_access_find(const rv_tls_access *a, X509 *cert);

/* A certificate's subject (RFC 2253) and SHA-256 fingerprint (hex, with
 * colons), for messages and logs. */
void rv_tls_describe_cert(X509 *cert, char *buf, size_t n);

/* A new SSL for a guest's connection to `name` (a DNS name or an IP
 * address: checked against the host's certificate; a DNS name also goes
 * out as SNI) on socket fd. Its writes use send(2) with MSG_NOSIGNAL: a
 * guest writes from its callers' threads, where a host that went away
 * must give EPIPE, not SIGPIPE (OpenSSL's socket BIO uses write(2)).
 * NULL when out of memory. */
SSL *rv_tls_client_ssl(SSL_CTX *ctx, const char *name, int fd);

/* What a failed SSL call (ret, with SSL_get_error's err) means, in words
 * for a message: the verification result, an alert from the peer, a peer
 * that does not speak TLS, or OpenSSL's reason. Consumes the thread's
 * OpenSSL error queue. Returns 1 when the cause is one another try would
 * meet again (certificates, protocol), 0 when it may be passing (the
 * connection broke). `peer` is "host" or "client", for the words. */
int rv_tls_why(SSL *ssl, int ret, int err, const char *peer, char *buf, size_t n);

#endif
