/* TLS between ravel hosts and guests (tls:HOST:PORT), with certificates
 * made here by tests/tls/make-certs.sh (the openssl command): mutual TLS
 * end to end with iterators and pipelining; each refusal with its words;
 * the access map (read-only and read-write certificates on one port);
 * retry across host restarts with every key of an iterator exactly once;
 * hostile input (garbage before and after the handshake, a stalled
 * handshake) while another guest is served; the connection cap; idle
 * connections that burn no CPU. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../helpers.h"

static char *certs;   /* the directory make-certs.sh filled */
static char *dbdir;
static ravel_db *local;

static char *cert(const char *name)
{
    static char buf[8][512];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, 512, "%s/%s", certs, name);
    return p;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A host serving `local` over TLS (and plain TCP when plain_port is
 * non-NULL) with host.crt, client CA ca.crt. */
static ravel_host *tls_host(ravel_host_options *ho, const char *crt, const char *key, int port,
                            int *plain_port)
{
    ho->tls_cert_file = cert(crt);
    ho->tls_key_file = cert(key);
    if (!ho->tls_ca_file)
        ho->tls_ca_file = cert("ca.crt");
    ravel_host *h;
    OK(ravel_host_new(&h, local, ho));
    char addr[64];
    if (plain_port) {
        OK(ravel_host_listen(h, "tcp:127.0.0.1:0"));
        *plain_port = ravel_host_port(h);
    }
    snprintf(addr, sizeof addr, "tls:127.0.0.1:%d", port);
    OK(ravel_host_listen(h, addr));
    return h;
}

static ravel_host *plain_tls_host(int *port)
{
    ravel_host_options ho;
    ravel_host_options_init(&ho);
    ravel_host *h = tls_host(&ho, "host.crt", "host.key", 0, NULL);
    *port = ravel_host_port(h);
    return h;
}

/* A guest of tls:127.0.0.1:port with client certificate `who` (NULL:
 * none), trusting `ca`. */
static int tls_guest(ravel_db **g, int port, const char *who, const char *ca, int retry)
{
    ravel_options o;
    ravel_options_init(&o);
    o.retry = retry;
    o.tls_ca_file = cert(ca);
    char crt[64], key[64];
    if (who) {
        snprintf(crt, sizeof crt, "%s.crt", who);
        snprintf(key, sizeof key, "%s.key", who);
        o.tls_cert_file = cert(crt);
        o.tls_key_file = cert(key);
    }
    char addr[64];
    snprintf(addr, sizeof addr, "tls:127.0.0.1:%d", port);
    return ravel_connect(g, addr, &o);
}

static void fill(unsigned long n)
{
    ravel_batch *b = ravel_batch_new();
    char k[17], v[100];
    memset(v, 'v', sizeof v);
    for (unsigned long i = 0; i < n; i++) {
        key_of(k, i);
        OK(ravel_batch_put(b, k, 16, v, sizeof v));
    }
    OK(ravel_write(local, b));
    ravel_batch_free(b);
}

static int setup(void **state)
{
    (void)state;
    certs = make_tmpdir();
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "sh %s %s", MAKE_CERTS, certs);
    if (system(cmd) != 0) {
        fprintf(stderr, "test-tls: %s failed (is the openssl command installed?)\n", cmd);
        return -1;
    }
    dbdir = make_tmpdir();
    return ravel_open_local(&local, dbdir, NULL) == RAVEL_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    ravel_db_close(local);
    rm_tmpdir(dbdir);
    rm_tmpdir(certs);
    return 0;
}

static int puts_done;
static void put_done(void *ud, int status)
{
    (void)ud;
    assert_int_equal(status, RAVEL_OK);
    __atomic_add_fetch(&puts_done, 1, __ATOMIC_SEQ_CST);
}

static int all_puts_done(void *n)
{
    return __atomic_load_n(&puts_done, __ATOMIC_SEQ_CST) == *(int *)n;
}

/* Mutual TLS end to end: writes, reads, a pipelined burst, an iterator
 * over more than one read-ahead batch; and one guest that stops reading
 * its iterator does not hold up another. */
static void test_mutual_tls(void **state)
{
    (void)state;
    int port;
    ravel_host *h = plain_tls_host(&port);
    ravel_db *g, *g2;
    OK(tls_guest(&g, port, "writer", "ca.crt", 0));
    OK(ravel_put(g, "a", 1, "A", 1));
    char *v;
    size_t vl;
    OK(ravel_get(g, "a", 1, &v, &vl));
    assert_memory_equal(v, "A", 1);
    ravel_free(v);
    assert_int_equal(ravel_get(g, "zz", 2, &v, &vl), RAVEL_ENOTFOUND);
    OK(ravel_del(g, "a", 1));

    /* 20,000 puts, all in flight at once: TLS writes that do not all fit. */
    int n = 20000;
    puts_done = 0;
    char k[17], val[100];
    memset(val, 'x', sizeof val);
    for (int i = 0; i < n; i++) {
        key_of(k, (unsigned long)i);
        OK(ravel_put_async(g, k, 16, val, sizeof val, put_done, NULL));
    }
    wait_until(all_puts_done, &n, "20000 pipelined puts over TLS");

    ravel_iter *it;
    OK(ravel_iter_new(g, NULL, &it));
    const char *ik, *iv;
    size_t ikl, ivl;
    int count = 0;
    while (ravel_iter_next(it, &ik, &ikl, &iv, &ivl) == RAVEL_OK) {
        key_of(k, (unsigned long)count);
        assert_int_equal(ikl, 16);
        assert_memory_equal(ik, k, 16);
        assert_int_equal(ivl, 100);
        count++;
    }
    assert_int_equal(count, n);
    ravel_iter_free(it);

    /* A guest that takes one entry and stops: the other is served. */
    OK(tls_guest(&g2, port, "writer", "ca.crt", 0));
    OK(ravel_iter_new(g2, NULL, &it));
    OK(ravel_iter_next(it, &ik, &ikl, &iv, &ivl));
    double t0 = now_s();
    for (int i = 0; i < 200; i++) {
        key_of(k, (unsigned long)i * 7);
        OK(ravel_get(g, k, 16, &v, &vl));
        ravel_free(v);
    }
    assert_true(now_s() - t0 < 5);
    ravel_iter_free(it);
    ravel_db_close(g2);
    OK(ravel_clear(g, NULL));
    ravel_db_close(g);
    ravel_host_free(h);
}

/* A get that must fail, with words containing `words`. */
static void refused(ravel_db *g, const char *words)
{
    char *v;
    size_t vl;
    int rc = ravel_get(g, "a", 1, &v, &vl);
    if (rc != RAVEL_ECONNLOST || !strstr(ravel_errmsg(), words))
        fail_msg("expected ECONNLOST with \"%s\", got %s: %s", words, ravel_errname(rc),
                 ravel_errmsg());
    ravel_db_close(g);
}

/* Each refusal with its words; with retry on too, the request fails
 * instead of waiting for ever. */
static void test_refusals(void **state)
{
    (void)state;
    int port, plain;
    ravel_host_options ho;
    ravel_host_options_init(&ho);
    ravel_host *h = tls_host(&ho, "host.crt", "host.key", 0, &plain);
    port = ravel_host_port(h);
    ravel_db *g;
    for (int retry = 0; retry <= 1; retry++) {
        OK(tls_guest(&g, port, NULL, "ca.crt", retry));
        refused(g, "requires a client certificate");
        OK(tls_guest(&g, port, "stranger", "ca.crt", retry));
        refused(g, "not signed by a CA it trusts");
        OK(tls_guest(&g, port, "expired", "ca.crt", retry));
        refused(g, "our certificate has expired");
        OK(tls_guest(&g, port, "writer", "other-ca.crt", retry));
        refused(g, "host's certificate is not signed by a trusted CA");
    }
    /* The wrong name. */
    ravel_options o;
    ravel_options_init(&o);
    o.retry = 1;
    o.tls_ca_file = cert("ca.crt");
    o.tls_cert_file = cert("writer.crt");
    o.tls_key_file = cert("writer.key");
    o.tls_server_name = "db.example.com";
    char addr[64];
    snprintf(addr, sizeof addr, "tls:127.0.0.1:%d", port);
    OK(ravel_connect(&g, addr, &o));
    refused(g, "not made for db.example.com (name mismatch)");
    o.tls_server_name = "localhost"; /* the certificate names it: fine */
    OK(ravel_connect(&g, addr, &o));
    OK(ravel_put(g, "a", 1, "A", 1));
    ravel_db_close(g);
    /* Plain text to the TLS port, with retry on. */
    snprintf(addr, sizeof addr, "tcp:127.0.0.1:%d", port);
    OK(ravel_connect(&g, addr, NULL));
    refused(g, "the host speaks TLS on this port");
    /* TLS to the plain port. */
    OK(tls_guest(&g, plain, "writer", "ca.crt", 1));
    refused(g, "does not speak TLS");
    /* TLS options on a plain address, and files that cannot be used. */
    o.tls_server_name = NULL;
    assert_int_equal(ravel_connect(&g, addr, &o), RAVEL_EADDR);
    assert_non_null(strstr(ravel_errmsg(), "use tls:HOST:PORT"));
    snprintf(addr, sizeof addr, "tls:127.0.0.1:%d", port);
    o.tls_key_file = cert("reader.key");
    assert_int_equal(ravel_connect(&g, addr, &o), RAVEL_EINVAL);
    assert_non_null(strstr(ravel_errmsg(), "does not match"));
    o.tls_ca_file = cert("missing.crt");
    assert_int_equal(ravel_connect(&g, addr, &o), RAVEL_EINVAL);
    assert_non_null(strstr(ravel_errmsg(), "missing.crt"));
    ravel_host_free(h);

    /* The host's certificate expired, or from another CA. */
    ravel_host_options_init(&ho);
    h = tls_host(&ho, "host-expired.crt", "host-expired.key", 0, NULL);
    OK(tls_guest(&g, ravel_host_port(h), "writer", "ca.crt", 1));
    refused(g, "host's certificate has expired");
    ravel_host_free(h);
    ravel_host_options_init(&ho);
    h = tls_host(&ho, "host-other.crt", "host-other.key", 0, NULL);
    OK(tls_guest(&g, ravel_host_port(h), "writer", "ca.crt", 0));
    refused(g, "unknown CA");
    ravel_host_free(h);

    /* A host without a certificate cannot listen on tls:, one with a bad
     * key cannot start. */
    ravel_host_options_init(&ho);
    OK(ravel_host_new(&h, local, &ho));
    assert_int_equal(ravel_host_listen(h, "tls:127.0.0.1:0"), RAVEL_EINVAL);
    ravel_host_free(h);
    ho.tls_cert_file = cert("host.crt");
    ho.tls_key_file = cert("writer.key");
    assert_int_equal(ravel_host_new(&h, local, &ho), RAVEL_EINVAL);
    assert_non_null(strstr(ravel_errmsg(), "does not match"));
}

/* "sha256:AB:CD:..." of a certificate, from the openssl command. */
static void fingerprint(const char *crt, char *out, size_t n)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "openssl x509 -noout -fingerprint -sha256 -in %s", cert(crt));
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    char line[256] = "";
    assert_non_null(fgets(line, sizeof line, f));
    pclose(f);
    char *eq = strchr(line, '=');
    assert_non_null(eq);
    eq[strcspn(eq, "\n")] = '\0';
    snprintf(out, n, "sha256:%s", eq + 1);
}

/* One port: a read-only dashboard (by subject), a writing service (by
 * fingerprint), and a certificate of the same CA that is in neither. */
static void test_access_map(void **state)
{
    (void)state;
    char fp[200];
    fingerprint("writer.crt", fp, sizeof fp);
    ravel_tls_access rules[] = {
        {.match = "CN=dashboard,O=ravel test", .readonly = 1},
        {.match = fp, .readonly = 0},
    };
    ravel_host_options ho;
    ravel_host_options_init(&ho);
    ho.tls_access = rules;
    ho.tls_access_len = 2;
    ravel_host *h = tls_host(&ho, "host.crt", "host.key", 0, NULL);
    int port = ravel_host_port(h);
    ravel_db *w, *r, *u;
    OK(tls_guest(&w, port, "writer", "ca.crt", 0));
    OK(tls_guest(&r, port, "reader", "ca.crt", 0));
    OK(ravel_put(w, "shared", 6, "1", 1));
    char *v;
    size_t vl;
    OK(ravel_get(r, "shared", 6, &v, &vl));
    assert_memory_equal(v, "1", 1);
    ravel_free(v);
    assert_int_equal(ravel_put(r, "shared", 6, "2", 1), RAVEL_EREADONLY);
    assert_int_equal(ravel_del(r, "shared", 6), RAVEL_EREADONLY);
    ravel_batch *b = ravel_batch_new();
    OK(ravel_batch_put(b, "x", 1, "y", 1));
    assert_int_equal(ravel_write(r, b), RAVEL_EREADONLY);
    assert_int_equal(ravel_clear(r, NULL), RAVEL_EREADONLY);
    OK(ravel_write(w, b));
    ravel_batch_free(b);
    OK(ravel_get(w, "shared", 6, &v, &vl));
    assert_memory_equal(v, "1", 1);
    ravel_free(v);
    OK(ravel_clear(w, NULL));
    OK(tls_guest(&u, port, "unlisted", "ca.crt", 0));
    refused(u, "did not accept our certificate");
    ravel_db_close(w);
    ravel_db_close(r);
    ravel_host_free(h);

    /* A malformed rule is refused up front. */
    rules[1].match = "sha256:12:34";
    assert_int_equal(ravel_host_new(&h, local, &ho), RAVEL_EINVAL);
    assert_non_null(strstr(ravel_errmsg(), "SHA-256"));
}

/* Retry across host restarts over TLS: a new handshake each time, and an
 * iterator that gets every key exactly once, forward and reverse. */
static void test_retry_restart(void **state)
{
    (void)state;
    unsigned long n = 30000;
    fill(n);
    int port;
    ravel_host *h = plain_tls_host(&port);
    ravel_db *g;
    OK(tls_guest(&g, port, "writer", "ca.crt", 1));
    for (int reverse = 0; reverse <= 1; reverse++) {
        ravel_range rg;
        ravel_range_init(&rg);
        rg.reverse = reverse;
        ravel_iter *it;
        OK(ravel_iter_new(g, &rg, &it));
        const char *k;
        size_t kl;
        unsigned long seen = 0;
        char want[17];
        int rc;
        while ((rc = ravel_iter_next(it, &k, &kl, NULL, NULL)) == RAVEL_OK) {
            key_of(want, reverse ? n - 1 - seen : seen);
            if (kl != 16 || memcmp(k, want, 16) != 0)
                fail_msg("entry %lu: got %.*s, want %s", seen, (int)kl, k, want);
            seen++;
            if (seen % 7000 == 0) { /* the host restarts on the same port */
                ravel_host_free(h);
                ravel_host_options ho;
                ravel_host_options_init(&ho);
                h = tls_host(&ho, "host.crt", "host.key", port, NULL);
            }
        }
        assert_int_equal(rc, RAVEL_END);
        assert_int_equal(seen, n);
        ravel_iter_free(it);
    }
    /* A put made while the host is down is sent on the next stream. */
    ravel_host_free(h);
    int want = 1;
    puts_done = 0;
    OK(ravel_put_async(g, "later", 5, "1", 1, put_done, NULL));
    usleep(50000);
    ravel_host_options ho;
    ravel_host_options_init(&ho);
    h = tls_host(&ho, "host.crt", "host.key", port, NULL);
    wait_until(all_puts_done, &want, "a put across a restart");
    ravel_db_close(g);
    ravel_host_free(h);
    OK(ravel_clear(local, NULL));
}

static int tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

/* Whether the host closed fd within ms (reads and drops what it sent). */
static int closed_within(int fd, int ms)
{
    double end = now_s() + ms / 1000.0;
    char buf[4096];
    while (now_s() < end) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0)
            continue;
        ssize_t r = read(fd, buf, sizeof buf);
        if (r <= 0)
            return 1;
    }
    return 0;
}

/* Has the host not closed fd (nor written to it) yet? Looks, never waits. */
static int still_open(int fd)
{
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, 0) == 0;
}

/* A TLS client of our own (OpenSSL, blocking) with the writer's
 * certificate, for bytes no ravel guest sends. */
static SSL *raw_tls(int fd, SSL_CTX **ctx)
{
    *ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_load_verify_locations(*ctx, cert("ca.crt"), NULL);
    SSL_CTX_use_certificate_file(*ctx, cert("writer.crt"), SSL_FILETYPE_PEM);
    SSL_CTX_use_PrivateKey_file(*ctx, cert("writer.key"), SSL_FILETYPE_PEM);
    SSL_CTX_set_verify(*ctx, SSL_VERIFY_PEER, NULL);
    SSL *ssl = SSL_new(*ctx);
    SSL_set_fd(ssl, fd);
    assert_int_equal(SSL_connect(ssl), 1);
    return ssl;
}

static int connections_are(void *arg)
{
    void **a = arg;
    return ravel_host_connections(a[0]) == *(int *)a[1];
}

/* Garbage before and after the handshake, and handshakes that stall:
 * each dropped, while a guest is served throughout. */
static void test_hostile(void **state)
{
    (void)state;
    ravel_host_options ho;
    ravel_host_options_init(&ho);
    ho.tls_handshake_timeout_ms = 3000;
    ravel_host *h = tls_host(&ho, "host.crt", "host.key", 0, NULL);
    int port = ravel_host_port(h);
    ravel_db *g;
    OK(tls_guest(&g, port, "writer", "ca.crt", 0));
    OK(ravel_put(g, "k", 1, "v", 1));
    int one = 1;
    void *arg[2] = {h, &one};
    wait_until(connections_are, arg, "one connection");

    /* Stalled: one says nothing, one stops inside its ClientHello. */
    int quiet = tcp_connect(port), half = tcp_connect(port);
    assert_int_equal(write(half, "\x16\x03\x01\x02\x00\x01", 6), 6);
    /* Plain-text garbage, and a handshake record full of garbage. */
    int junk = tcp_connect(port), bad_hello = tcp_connect(port);
    assert_int_equal(write(junk, "GET / HTTP/1.0\r\n\r\n", 18), 18);
    char hello[300];
    memset(hello, 0xee, sizeof hello);
    memcpy(hello, "\x16\x03\x01\x01\x20", 5);
    assert_int_equal(write(bad_hello, hello, sizeof hello), (ssize_t)sizeof hello);
    /* Meanwhile the guest is served: its gets are answered while the
     * stalled handshakes still hold their connections (their 3 s bound
     * has not run out), so nothing waited for them. */
    for (int i = 0; i < 100; i++) {
        char *v;
        size_t vl;
        OK(ravel_get(g, "k", 1, &v, &vl));
        ravel_free(v);
    }
    assert_true(still_open(quiet));
    assert_true(still_open(half));
    assert_true(closed_within(junk, 1000));
    assert_true(closed_within(bad_hello, 1000));
    assert_true(closed_within(quiet, 6000));
    assert_true(closed_within(half, 6000));
    close(quiet), close(half), close(junk), close(bad_hello);

    /* After the handshake: a frame far over the limit, then raw bytes
     * that are no TLS record. */
    SSL_CTX *ctx;
    int fd = tcp_connect(port);
    SSL *ssl = raw_tls(fd, &ctx);
    const unsigned char huge[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x00}; /* a 4 GiB frame */
    assert_int_equal(SSL_write(ssl, huge, sizeof huge), (int)sizeof huge);
    assert_true(closed_within(fd, 2000));
    SSL_free(ssl);
    close(fd);
    fd = tcp_connect(port);
    SSL_CTX_free(ctx);
    ssl = raw_tls(fd, &ctx);
    assert_int_equal(write(fd, hello, sizeof hello), (ssize_t)sizeof hello);
    assert_true(closed_within(fd, 2000));
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    ERR_clear_error();

    /* Many more, one after another: the host holds on to none of them. */
    for (int i = 0; i < 50; i++) {
        int f = tcp_connect(port);
        assert_int_equal(write(f, hello, sizeof hello), (ssize_t)sizeof hello);
        assert_true(closed_within(f, 2000));
        close(f);
    }
    wait_until(connections_are, arg, "only the guest's connection left");
    char *v;
    size_t vl;
    OK(ravel_get(g, "k", 1, &v, &vl));
    ravel_free(v);
    OK(ravel_del(g, "k", 1));
    ravel_db_close(g);
    ravel_host_free(h);
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* The connection cap: past it, connections are closed at once, and the
 * guests already connected go on being served; idle TLS connections
 * burn no CPU. */
static void test_connection_cap(void **state)
{
    (void)state;
    ravel_host_options ho;
    ravel_host_options_init(&ho);
    ho.max_connections = 4;
    ravel_host *h = tls_host(&ho, "host.crt", "host.key", 0, NULL);
    int port = ravel_host_port(h);
    ravel_db *g[4];
    for (int i = 0; i < 4; i++) {
        OK(tls_guest(&g[i], port, "writer", "ca.crt", 0));
        OK(ravel_put(g[i], "k", 1, "v", 1));
    }
    for (int i = 0; i < 10; i++) {
        int fd = tcp_connect(port);
        assert_true(closed_within(fd, 1000));
        close(fd);
    }
    ravel_db *extra;
    OK(tls_guest(&extra, port, "writer", "ca.crt", 0));
    char *v;
    size_t vl;
    assert_int_equal(ravel_get(extra, "k", 1, &v, &vl), RAVEL_ECONNLOST);
    ravel_db_close(extra);
    for (int i = 0; i < 4; i++) {
        OK(ravel_get(g[i], "k", 1, &v, &vl));
        ravel_free(v);
    }
    /* Idle: four guests and their host threads, asleep. */
    double c0 = cpu_s();
    usleep(500000);
    double idle = cpu_s() - c0;
    if (idle > 0.05)
        fail_msg("idle TLS connections used %.3f s of CPU in 0.5 s", idle);
    /* One leaves: a new one gets in. */
    ravel_db_close(g[3]);
    int three = 3;
    void *arg[2] = {h, &three};
    wait_until(connections_are, arg, "a connection to close");
    OK(tls_guest(&g[3], port, "writer", "ca.crt", 0));
    OK(ravel_get(g[3], "k", 1, &v, &vl));
    ravel_free(v);
    OK(ravel_del(g[0], "k", 1));
    for (int i = 0; i < 4; i++)
        ravel_db_close(g[i]);
    ravel_host_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mutual_tls),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_access_map),
        cmocka_unit_test(test_retry_restart),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_connection_cap),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
