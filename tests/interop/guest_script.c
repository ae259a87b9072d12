/* The interop script of guest_script.js, step for step, through ravel's
 * API: run against a Node many-level host (and a ravel host), its
 * transcript must equal the Node guest's byte for byte. The transcript
 * format is described at the top of guest_script.js.
 * Usage: guest-script ADDRESS (for tls:HOST:PORT, the CA bundle and the
 * client certificate and key are in $RAVEL_TLS_CA, $RAVEL_TLS_CERT and
 * $RAVEL_TLS_KEY) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "ravel.h"

static ravel_db *db;
static char line[1 << 16];

static void emit(const char *name, const char *result)
{
    printf("%s %s\n", name, result);
}

static void hex(char *out, const char *p, size_t n)
{
    if (n == 0) {
        strcpy(out, "-");
        return;
    }
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", (unsigned char)p[i]);
}

static const char *err(int rc)
{
    static char buf[64];
    snprintf(buf, sizeof buf, "ERR:%s", rv_wire_error(rc));
    return buf;
}

static void ok_or_err(const char *name, int rc)
{
    emit(name, rc == RAVEL_OK ? "ok" : err(rc));
}

static void put(const char *name, const char *k, size_t kl, const char *v, size_t vl)
{
    ok_or_err(name, ravel_put(db, k, kl, v, vl));
}

static void get(const char *name, const char *k, size_t kl)
{
    char *v;
    size_t vl;
    int rc = ravel_get(db, k, kl, &v, &vl);
    if (rc != RAVEL_OK) {
        emit(name, err(rc));
        return;
    }
    hex(line, v, vl);
    ravel_free(v);
    emit(name, line);
}

/* Append entries until the end; returns the status that stopped it. */
static int drain(ravel_iter *it, int keys, int values, char *out)
{
    const char *k, *v;
    size_t kl, vl;
    int rc;
    char item[1024];
    while ((rc = ravel_iter_next(it, &k, &kl, &v, &vl)) == RAVEL_OK) {
        char *p = item;
        if (keys) {
            hex(p, k, kl);
            p += strlen(p);
        }
        if (keys && values)
            *p++ = '=';
        if (values)
            hex(p, v, vl);
        if (out[strlen(out) - 1] != '[')
            strcat(out, ",");
        strcat(out, item);
    }
    return rc;
}

static ravel_range range(void)
{
    ravel_range r;
    ravel_range_init(&r);
    return r;
}

#define BOUND(s) ((ravel_bound){(s), strlen(s)})

static void iterate(const char *name, ravel_range r, const char *seek_first, int next_then_seek,
                    const char *seek_to)
{
    ravel_iter *it;
    int rc = ravel_iter_new(db, &r, &it);
    if (rc != RAVEL_OK) {
        emit(name, err(rc));
        return;
    }
    strcpy(line, "[");
    if (seek_first)
        ravel_iter_seek(it, seek_first, strlen(seek_first));
    if (next_then_seek) {
        const char *k, *v;
        size_t kl, vl;
        rc = ravel_iter_next(it, &k, &kl, &v, &vl);
        if (rc == RAVEL_OK) {
            hex(line + 1, k, kl);
            strcat(line, "=");
            hex(line + strlen(line), v, vl);
        }
        ravel_iter_seek(it, seek_to, strlen(seek_to));
    }
    rc = drain(it, r.keys, r.values, line);
    ravel_iter_free(it);
    if (rc != RAVEL_END) {
        emit(name, err(rc));
        return;
    }
    strcat(line, "]");
    emit(name, line);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s ADDRESS\n", argv[0]);
        return 2;
    }
    ravel_options o;
    ravel_options_init(&o);
    o.retry = 0;
    /* A tls: ADDRESS takes its files from the environment, as
     * guest_script.js does. */
    o.tls_ca_file = getenv("RAVEL_TLS_CA");
    o.tls_cert_file = getenv("RAVEL_TLS_CERT");
    o.tls_key_file = getenv("RAVEL_TLS_KEY");
    if (ravel_connect(&db, argv[1], &o) != RAVEL_OK) {
        fprintf(stderr, "guest-script: %s\n", ravel_errmsg());
        return 1;
    }
    ok_or_err("s01-clear", ravel_clear(db, NULL));
    const char *puts[][2] = {{"a", "A"}, {"aa", "AA"}, {"ab", "AB"}, {"b", "B"},
                             {"c", "C"}, {"d", "D"},   {"e", "E"}};
    for (int i = 0; i < 7; i++) {
        char name[32];
        snprintf(name, sizeof name, "s%02d-put-%s", i + 2, puts[i][0]);
        put(name, puts[i][0], strlen(puts[i][0]), puts[i][1], strlen(puts[i][1]));
    }
    put("s09-put-empty-value", "f", 1, "", 0);
    put("s10-put-binary", "\x00\xff\x01", 3, "\x00\x01", 2);
    get("s11-get", "a", 1);
    get("s12-get-empty-value", "f", 1);
    get("s13-get-binary", "\x00\xff\x01", 3);
    get("s14-get-missing", "zz", 2);
    ok_or_err("s15-del", ravel_del(db, "d", 1));
    get("s16-get-deleted", "d", 1);

    ravel_batch *b = ravel_batch_new();
    ravel_batch_put(b, "g", 1, "G", 1);
    ravel_batch_del(b, "e", 1);
    ravel_batch_put(b, "h", 1, "H", 1);
    ok_or_err("s17-batch", ravel_write(db, b));
    ravel_batch_free(b);

    const void *keys[] = {"a", "e", "g", "zz", "f"};
    size_t klens[] = {1, 1, 1, 2, 1};
    char *vals[5];
    size_t vlens[5];
    int rc = ravel_get_many(db, 5, keys, klens, vals, vlens);
    if (rc != RAVEL_OK) {
        emit("s18-get-many", err(rc));
    } else {
        strcpy(line, "[");
        for (int i = 0; i < 5; i++) {
            if (i)
                strcat(line, ",");
            if (vals[i])
                hex(line + strlen(line), vals[i], vlens[i]);
            else
                strcat(line, "undefined");
            ravel_free(vals[i]);
        }
        strcat(line, "]");
        emit("s18-get-many", line);
    }

    ravel_range r = range();
    iterate("s19-iter-all", r, NULL, 0, NULL);
    r.reverse = 1;
    iterate("s20-iter-reverse", r, NULL, 0, NULL);
    r = range();
    r.has_gt = 1, r.gt = BOUND("a");
    r.has_lt = 1, r.lt = BOUND("c");
    iterate("s21-iter-gt-lt", r, NULL, 0, NULL);
    r = range();
    r.has_gte = 1, r.gte = BOUND("ab");
    r.has_lte = 1, r.lte = BOUND("c");
    iterate("s22-iter-gte-lte", r, NULL, 0, NULL);
    r = range();
    r.limit = 2;
    iterate("s23-iter-limit", r, NULL, 0, NULL);
    r.reverse = 1;
    iterate("s24-iter-reverse-limit", r, NULL, 0, NULL);
    r = range();
    r.values = 0;
    iterate("s25-keys", r, NULL, 0, NULL);
    r = range();
    r.keys = 0;
    iterate("s26-values", r, NULL, 0, NULL);
    iterate("s27-iter-seek", range(), NULL, 1, "b");
    r = range();
    r.reverse = 1;
    iterate("s28-iter-reverse-seek", r, NULL, 1, "ab");
    iterate("s29-iter-seek-missing", range(), "ac", 0, NULL);
    r = range();
    r.has_gt = 1, r.gt = BOUND("x");
    iterate("s30-iter-empty-range", r, NULL, 0, NULL);
    r = range();
    r.has_gte = 1, r.gte = BOUND("b");
    r.has_lt = 1, r.lt = BOUND("d");
    ok_or_err("s31-clear-range", ravel_clear(db, &r));
    iterate("s32-list", range(), NULL, 0, NULL);
    r = range();
    r.reverse = 1;
    r.limit = 1;
    ok_or_err("s33-clear-reverse-limit", ravel_clear(db, &r));
    iterate("s34-list", range(), NULL, 0, NULL);
    ravel_db_close(db);
    emit("s35-close", "ok");
    return 0;
}
