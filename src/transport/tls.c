#include "tls.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "error.h"
#include "util/alloc.h"

#define TLS12_CIPHERS "ECDHE+AESGCM:ECDHE+CHACHA20"

/* OpenSSL's reason for the last failure, for a message; clears the queue. */
static const char *ssl_reason(char *buf, size_t n)
{
    unsigned long e = ERR_peek_last_error();
    if (!e)
        snprintf(buf, n, "%s", errno ? strerror(errno) : "unknown reason");
    else
        ERR_error_string_n(e, buf, n);
    ERR_clear_error();
    return buf;
}

/* An encrypted key must not make a library prompt on the terminal. */
static int no_password(char *buf, int size, int rwflag, void *ud)
{
    (void)buf, (void)size, (void)rwflag, (void)ud;
    return 0;
}

static SSL_CTX *new_ctx(const SSL_METHOD *m)
{
    SSL_CTX *ctx = SSL_CTX_new(m);
    if (!ctx)
        return NULL;
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
        !SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS)) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_NO_TICKET |
                                 SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_default_passwd_cb(ctx, no_password);
    return ctx;
}

static int use_cert(SSL_CTX *ctx, const char *cert, const char *key, const char *who)
{
    char why[256];
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
        return rv_err(RAVEL_EINVAL, "%s certificate %s cannot be used: %s", who, cert,
                      ssl_reason(why, sizeof why));
    int ok = SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) == 1;
    if (!ok && ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
        ERR_clear_error();
        return rv_err(RAVEL_EINVAL, "%s key %s does not match certificate %s", who, key, cert);
    }
    if (!ok)
        return rv_err(RAVEL_EINVAL, "%s key %s cannot be used (an unencrypted PEM key is needed): %s",
                      who, key, ssl_reason(why, sizeof why));
    if (SSL_CTX_check_private_key(ctx) != 1)
        return rv_err(RAVEL_EINVAL, "%s key %s does not match certificate %s: %s", who, key, cert,
                      ssl_reason(why, sizeof why));
    return RAVEL_OK;
}

int rv_tls_client_ctx(SSL_CTX **out, const ravel_options *o)
{
    *out = NULL;
    if (!o->tls_cert_file != !o->tls_key_file)
        return rv_err(RAVEL_EINVAL, "a client certificate needs both tls_cert_file and tls_key_file");
    SSL_CTX *ctx = new_ctx(TLS_client_method());
    if (!ctx)
        return rv_err(RAVEL_ENOMEM, "cannot make a TLS context: %s", ERR_reason_error_string(ERR_get_error()));
    char why[256];
    int rc = RAVEL_OK;
    if (o->tls_ca_file ? SSL_CTX_load_verify_locations(ctx, o->tls_ca_file, NULL) != 1
                       : SSL_CTX_set_default_verify_paths(ctx) != 1)
        rc = rv_err(RAVEL_EINVAL, "CA bundle %s cannot be used: %s",
                    o->tls_ca_file ? o->tls_ca_file : "(the system's)", ssl_reason(why, sizeof why));
    if (rc == RAVEL_OK && o->tls_cert_file)
        rc = use_cert(ctx, o->tls_cert_file, o->tls_key_file, "client");
    if (rc != RAVEL_OK) {
        SSL_CTX_free(ctx);
        return rc;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    *out = ctx;
    return RAVEL_OK;
}

/* The host's verification of a client: the chain first (OpenSSL), then,
 * for the client's own certificate, the access map. A refusal here goes
 * to the client as an alert during the handshake, so it learns why at
 * once instead of seeing its connection close later. */
static int verify_client(int ok, X509_STORE_CTX *x)
{
    if (!ok || X509_STORE_CTX_get_error_depth(x) != 0)
        return ok;
    SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
    const rv_tls_access *a = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    if (!a || !a->n)
        return 1;
    X509 *cert = X509_STORE_CTX_get_current_cert(x);
    if (rv_tls_access_find(a, cert))
        return 1;
    char *note = SSL_get_app_data(ssl);
    if (note) {
        char who[400];
        rv_tls_describe_cert(cert, who, sizeof who);
        snprintf(note, RV_TLS_NOTE, "the client's certificate is not in the access map: %s", who);
    }
    X509_STORE_CTX_set_error(x, X509_V_ERR_CERT_REJECTED); /* alert: bad certificate */
    return 0;
}

int rv_tls_server_ctx(SSL_CTX **out, const ravel_host_options *o, const rv_tls_access *a)
{
    *out = NULL;
    if (!o->tls_key_file)
        return rv_err(RAVEL_EINVAL, "tls_cert_file needs tls_key_file");
    SSL_CTX *ctx = new_ctx(TLS_server_method());
    if (!ctx)
        return rv_err(RAVEL_ENOMEM, "cannot make a TLS context: %s", ERR_reason_error_string(ERR_get_error()));
    SSL_CTX_set_num_tickets(ctx, 0);
    int rc = use_cert(ctx, o->tls_cert_file, o->tls_key_file, "host");
    if (rc == RAVEL_OK && o->tls_ca_file) {
        char why[256];
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(o->tls_ca_file);
        if (!names || SSL_CTX_load_verify_locations(ctx, o->tls_ca_file, NULL) != 1) {
            rc = rv_err(RAVEL_EINVAL, "client CA bundle %s cannot be used: %s", o->tls_ca_file,
                        ssl_reason(why, sizeof why));
            sk_X509_NAME_pop_free(names, X509_NAME_free);
        } else {
            SSL_CTX_set_client_CA_list(ctx, names);
            SSL_CTX_set_app_data(ctx, (void *)a);
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify_client);
        }
    } else if (rc == RAVEL_OK && o->tls_access_len) {
        rc = rv_err(RAVEL_EINVAL, "a TLS access map needs tls_ca_file (client certificates)");
    }
    if (rc != RAVEL_OK) {
        SSL_CTX_free(ctx);
        return rc;
    }
    *out = ctx;
    return RAVEL_OK;
}

static int hexval(int c)
{
    return isdigit(c) ? c - '0' : tolower(c) - 'a' + 10;
}

int rv_tls_access_parse(rv_tls_access *a, const ravel_host_options *o)
{
    a->rules = NULL;
    a->n = 0;
    if (!o->tls_access_len)
        return RAVEL_OK;
    if (!o->tls_access)
        return rv_err(RAVEL_EINVAL, "tls_access is NULL but tls_access_len is %zu", o->tls_access_len);
    a->rules = rv_calloc(o->tls_access_len, sizeof *a->rules);
    if (!a->rules)
        return rv_err(RAVEL_ENOMEM, "out of memory");
    for (size_t i = 0; i < o->tls_access_len; i++) {
        const char *m = o->tls_access[i].match;
        rv_tls_rule *r = &a->rules[a->n++];
        r->readonly = o->tls_access[i].readonly != 0;
        if (!m || !*m) {
            rv_tls_access_free(a);
            return rv_err(RAVEL_EINVAL, "TLS access rule %zu names no certificate", i);
        }
        if (strncasecmp(m, "sha256:", 7) == 0) {
            r->is_fp = 1;
            size_t k = 0;
            for (const char *p = m + 7; *p; p++) {
                if (*p == ':')
                    continue;
                if (!isxdigit((unsigned char)p[0]) || !isxdigit((unsigned char)p[1]) || k == 32) {
                    rv_tls_access_free(a);
                    return rv_err(RAVEL_EINVAL,
                                  "TLS access rule %zu: %s is not a SHA-256 fingerprint "
                                  "(sha256: and 64 hex digits)", i, m);
                }
                r->fp[k++] = (unsigned char)(hexval(p[0]) << 4 | hexval(p[1]));
                p++;
            }
            if (k != 32) {
                rv_tls_access_free(a);
                return rv_err(RAVEL_EINVAL, "TLS access rule %zu: %s is not a SHA-256 fingerprint "
                                            "(sha256: and 64 hex digits)", i, m);
            }
        } else if (!(r->subject = rv_strdup(m))) {
            rv_tls_access_free(a);
            return rv_err(RAVEL_ENOMEM, "out of memory");
        }
    }
    return RAVEL_OK;
}

void rv_tls_access_free(rv_tls_access *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->rules[i].subject);
    free(a->rules);
    a->rules = NULL;
    a->n = 0;
}

static void subject_of(X509 *cert, char *buf, size_t n)
{
    buf[0] = '\0';
    BIO *b = BIO_new(BIO_s_mem());
    if (!b)
        return;
    X509_NAME_print_ex(b, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
    int len = BIO_read(b, buf, (int)n - 1);
    buf[len > 0 ? len : 0] = '\0';
    BIO_free(b);
}

const rv_tls_rule *rv_tls_access_find(const rv_tls_access *a, X509 *cert)
{
    unsigned char fp[EVP_MAX_MD_SIZE];
    unsigned int fplen = 0;
    char subject[1024];
    if (!cert || X509_digest(cert, EVP_sha256(), fp, &fplen) != 1 || fplen != 32)
        return NULL;
    subject_of(cert, subject, sizeof subject);
    for (size_t i = 0; i < a->n; i++) {
        const rv_tls_rule *r = &a->rules[i];
        if (r->is_fp ? memcmp(r->fp, fp, 32) == 0 : strcmp(r->subject, subject) == 0)
            return r;
    }
    return NULL;
}

void rv_tls_describe_cert(X509 *cert, char *buf, size_t n)
{
    char subject[256];
    unsigned char fp[EVP_MAX_MD_SIZE];
    unsigned int fplen = 0;
    char hex[32 * 3 + 1] = "";
    subject_of(cert, subject, sizeof subject);
    if (X509_digest(cert, EVP_sha256(), fp, &fplen) == 1)
        for (unsigned i = 0; i < fplen && i < 32; i++)
            sprintf(hex + 3 * i, "%02X%s", fp[i], i + 1 < fplen ? ":" : "");
    snprintf(buf, n, "subject \"%s\", sha256:%s", subject, hex);
}

/* A socket BIO whose writes cannot raise SIGPIPE. */
static int nosig_write(BIO *b, const char *p, int n)
{
    BIO_clear_retry_flags(b);
    ssize_t w = send((int)(intptr_t)BIO_get_data(b), p, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        BIO_set_retry_write(b);
    return (int)w;
}

static int nosig_read(BIO *b, char *p, int n)
{
    BIO_clear_retry_flags(b);
    ssize_t r = read((int)(intptr_t)BIO_get_data(b), p, (size_t)n);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        BIO_set_retry_read(b);
    return (int)r;
}

static long nosig_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b, (void)num, (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int nosig_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static BIO_METHOD *nosig_method;

static void make_nosig_method(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR,
                                 "ravel socket");
    if (m && BIO_meth_set_write(m, nosig_write) && BIO_meth_set_read(m, nosig_read) &&
        BIO_meth_set_ctrl(m, nosig_ctrl) && BIO_meth_set_create(m, nosig_create))
        nosig_method = m;
    else
        BIO_meth_free(m);
}

SSL *rv_tls_client_ssl(SSL_CTX *ctx, const char *name, int fd)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, make_nosig_method);
    BIO *bio = nosig_method ? BIO_new(nosig_method) : NULL;
    SSL *ssl = bio ? SSL_new(ctx) : NULL;
    if (!ssl) {
        BIO_free(bio);
        ERR_clear_error();
        return NULL;
    }
    BIO_set_data(bio, (void *)(intptr_t)fd);
    SSL_set_bio(ssl, bio, bio);
    unsigned char ip[16];
    int is_ip = inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1;
    int ok = 1;
    if (ok && is_ip) {
        ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) == 1;
    } else if (ok) {
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        ok = SSL_set1_host(ssl, name) == 1 && SSL_set_tlsext_host_name(ssl, name) == 1;
    }
    if (!ok) {
        SSL_free(ssl);
        ERR_clear_error();
        return NULL;
    }
    return ssl;
}

/* Words for a certificate that failed verification. */
static void verify_words(SSL *ssl, long vr, const char *peer, char *buf, size_t n)
{
    const char *what = X509_verify_cert_error_string(vr);
    switch (vr) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
        snprintf(buf, n, "the %s's certificate has expired (%s)", peer, what);
        break;
    case X509_V_ERR_CERT_NOT_YET_VALID:
        snprintf(buf, n, "the %s's certificate is not valid yet (%s)", peer, what);
        break;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
        snprintf(buf, n, "the %s's certificate is not signed by a trusted CA (unknown CA: %s)",
                 peer, what);
        break;
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH: {
        X509_VERIFY_PARAM *p = SSL_get0_param(ssl);
        const char *host = X509_VERIFY_PARAM_get0_host(p, 0);
        char *ip = host ? NULL : X509_VERIFY_PARAM_get1_ip_asc(p);
        snprintf(buf, n, "the %s's certificate is not made for %s (name mismatch)",
                 peer, host ? host : ip ? ip : "the name it was reached by");
        OPENSSL_free(ip);
        break;
    }
    case X509_V_ERR_CERT_REJECTED: {
        const char *note = SSL_get_app_data(ssl);
        snprintf(buf, n, "%s", note && note[0] ? note : "the certificate was refused");
        break;
    }
    default:
        snprintf(buf, n, "the %s's certificate was refused: %s", peer, what);
    }
}

/* Words for an alert the peer sent, which says why it refused us. */
static void alert_words(int alert, const char *peer, char *buf, size_t n)
{
    const char *mean;
    switch (alert) {
    case SSL_AD_CERTIFICATE_REQUIRED:
        mean = "it requires a client certificate, and none was given";
        break;
    case SSL_AD_UNKNOWN_CA:
        mean = "our certificate is not signed by a CA it trusts (unknown CA)";
        break;
    case SSL_AD_CERTIFICATE_EXPIRED:
        mean = "our certificate has expired";
        break;
    case SSL_AD_BAD_CERTIFICATE:
    case SSL_AD_UNSUPPORTED_CERTIFICATE:
    case SSL_AD_CERTIFICATE_UNKNOWN:
    case SSL_AD_CERTIFICATE_REVOKED:
        mean = "it did not accept our certificate (not allowed by its access map, or not valid)";
        break;
    case SSL_AD_ACCESS_DENIED:
        mean = "access denied";
        break;
    case SSL_AD_PROTOCOL_VERSION:
        mean = "no TLS version in common (TLS 1.2 or later is needed)";
        break;
    case SSL_AD_HANDSHAKE_FAILURE:
        mean = "no cipher or setting in common";
        break;
    default:
        mean = "it sent an alert";
    }
    const char *desc = SSL_alert_desc_string_long(alert);
    if (strcmp(desc, "unknown") == 0) /* OpenSSL 3.0 has no words for the TLS 1.3 alerts */
        snprintf(buf, n, "the %s refused the TLS handshake: %s (alert %d)", peer, mean, alert);
    else
        snprintf(buf, n, "the %s refused the TLS handshake: %s (alert: %s)", peer, mean, desc);
}

int rv_tls_why(SSL *ssl, int ret, int err, const char *peer, char *buf, size_t n)
{
    int saved = errno, fatal = 1;
    unsigned long e = ERR_get_error();
    int reason = e ? ERR_GET_REASON(e) : 0;
    long vr = SSL_get_verify_result(ssl);
    if (err == SSL_ERROR_SSL && reason == SSL_R_CERTIFICATE_VERIFY_FAILED && vr != X509_V_OK) {
        verify_words(ssl, vr, peer, buf, n);
    } else if (err == SSL_ERROR_SSL && reason >= SSL_AD_REASON_OFFSET) {
        alert_words(reason - SSL_AD_REASON_OFFSET, peer, buf, n);
    } else if (err == SSL_ERROR_SSL &&
               (reason == SSL_R_WRONG_VERSION_NUMBER || reason == SSL_R_PACKET_LENGTH_TOO_LONG ||
                reason == SSL_R_UNKNOWN_PROTOCOL || reason == SSL_R_HTTP_REQUEST ||
                reason == SSL_R_RECORD_LENGTH_MISMATCH || reason == SSL_R_UNEXPECTED_MESSAGE)) {
        snprintf(buf, n, "the %s does not speak TLS (plain text on this connection; %s)", peer,
                 ERR_reason_error_string(e));
    } else if (err == SSL_ERROR_SSL && (reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE ||
                                        reason == SSL_R_NO_CERTIFICATES_RETURNED)) {
        snprintf(buf, n, "the %s sent no certificate, and one is required", peer);
    } else if (err == SSL_ERROR_SSL) {
        snprintf(buf, n, "TLS failed: %s", e ? ERR_reason_error_string(e) : "unknown reason");
    } else if (err == SSL_ERROR_ZERO_RETURN) {
        snprintf(buf, n, "the %s closed the TLS session", peer);
        fatal = 0;
    } else {
        fatal = 0;
        if (ret == 0 || saved == 0)
            snprintf(buf, n, "the %s closed the connection", peer);
        else
            snprintf(buf, n, "%s", strerror(saved));
    }
    ERR_clear_error();
    return fatal;
}
