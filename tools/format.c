/* Bytes as text. The JSON here is only the one object shape of a dump line,
 * so a few functions read and write it; a general JSON library would add a
 * dependency for no gain, and the common ones stop strings at NUL. */
#include "format.h"

#include <stdint.h>
#include <string.h>

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The length of the valid UTF-8 sequence at p (n bytes available) and its
 * code point; 0 for bytes that are not UTF-8 (overlong forms, surrogates,
 * beyond U+10FFFF, cut short). */
static size_t utf8_seq(const unsigned char *p, size_t n, uint32_t *cp)
{
    size_t len;
    uint32_t v, min;
    if (p[0] < 0x80) {
        *cp = p[0];
        return 1;
    }
    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        len = 2, v = p[0] & 0x1f, min = 0x80;
    else if ((p[0] & 0xf0) == 0xe0)
        len = 3, v = p[0] & 0x0f, min = 0x800;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4)
        len = 4, v = p[0] & 0x07, min = 0x10000;
    else
        return 0;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        v = v << 6 | (p[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return len;
}

/* C0 and C1 control characters and DEL: terminals act on them. */
static int is_control(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}

void fmt_text(FILE *f, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0; /* bytes from run to i go out as they are */
    while (i < n) {
        uint32_t cp;
        size_t len = utf8_seq(p + i, n - i, &cp);
        if (len && !is_control(cp) && cp != '\\') {
            i += len;
            continue;
        }
        /* Escape one byte; the rest of a bad sequence follows on its own. */
        fwrite(s + run, 1, i - run, f);
        if (p[i] == '\\')
            fputs("\\\\", f);
        else
            fprintf(f, "\\x%02x", p[i]);
        run = ++i;
    }
    fwrite(s + run, 1, i - run, f);
}

int fmt_unescape(char *s, size_t *len, const char **bad)
{
    /* Writing never overtakes reading: the text at r is still intact. */
    char *w = s;
    const char *r = s;
    while (*r) {
        if (*r != '\\') {
            *w++ = *r++;
        } else if (r[1] == '\\') {
            *w++ = '\\';
            r += 2;
        } else if (r[1] == 'x' && hexval(r[2]) >= 0 && hexval(r[3]) >= 0) {
            *w++ = (char)(hexval(r[2]) << 4 | hexval(r[3]));
            r += 4;
        } else {
            *bad = r;
            return -1;
        }
    }
    *len = (size_t)(w - s);
    return 0;
}

/* ---- writing JSON lines ---- */

static int utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    uint32_t cp;
    for (size_t i = 0, len; i < n; i += len)
        if (!(len = utf8_seq(p + i, n - i, &cp)))
            return 0;
    return 1;
}

/* A JSON string of valid UTF-8; control characters are escaped so that a
 * dump is safe to look at in a terminal. */
static void json_string(FILE *f, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    putc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned c = p[i];
        if (c == 0xc2 && i + 1 < n && p[i + 1] <= 0x9f)
            fprintf(f, "\\u%04x", p[++i]); /* a C1 control, U+0080..U+009F */
        else if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", f);
        else if (c == '\t')
            fputs("\\t", f);
        else if (c < 0x80 && is_control(c))
            fprintf(f, "\\u%04x", c);
        else
            putc((int)c, f);
    }
    putc('"', f);
}

void fmt_json_string(FILE *f, const char *s, size_t n)
{
    if (utf8_valid(s, n)) {
        json_string(f, s, n);
        return;
    }
    /* Not UTF-8 (a path can be any bytes): each byte as the code point of
     * its value, readable and valid JSON. */
    putc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80 || c < 0x20 || c == '"' || c == '\\')
            fprintf(f, "\\u%04x", c);
        else
            putc(c, f);
    }
    putc('"', f);
}

static void json_base64(FILE *f, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    putc('"', f);
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        putc(b64_alphabet[v >> 18], f);
        putc(b64_alphabet[v >> 12 & 63], f);
        putc(i + 1 < n ? b64_alphabet[v >> 6 & 63] : '=', f);
        putc(i + 2 < n ? b64_alphabet[v & 63] : '=', f);
    }
    putc('"', f);
}

static void json_member(FILE *f, const char *name, const char *s, size_t n)
{
    if (utf8_valid(s, n)) {
        fprintf(f, "\"%s\":", name);
        json_string(f, s, n);
    } else {
        fprintf(f, "\"%s_b64\":", name);
        json_base64(f, s, n);
    }
}

void fmt_json_member(FILE *f, const char *name, const char *s, size_t n)
{
    json_member(f, name, s, n);
}

void fmt_json_entry(FILE *f, const char *key, size_t klen, const char *val, size_t vlen)
{
    putc('{', f);
    json_member(f, "key", key, klen);
    putc(',', f);
    json_member(f, "value", val, vlen);
    fputs("}\n", f);
}

/* ---- reading JSON lines ---- */

typedef struct parser {
    char *p, *end;
    const char *err;
} parser;

static int fail(parser *ps, const char *err)
{
    ps->err = err;
    return -1;
}

static void skip_space(parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\r' || *ps->p == '\n'))
        ps->p++;
}

/* Skip JSON whitespace; then, if the next character is c, take it. */
static int take(parser *ps, char c)
{
    skip_space(ps);
    if (ps->p < ps->end && *ps->p == c) {
        ps->p++;
        return 1;
    }
    return 0;
}

static int hex4(parser *ps, uint32_t *v)
{
    if (ps->end - ps->p < 4)
        return -1;
    *v = 0;
    for (int i = 0; i < 4; i++) {
        int d = hexval(*ps->p++);
        if (d < 0)
            return -1;
        *v = *v << 4 | (uint32_t)d;
    }
    return 0;
}

/* After "\u": one code point, from a surrogate pair when it is one. */
static int unicode_escape(parser *ps, uint32_t *cp)
{
    uint32_t lo;
    if (hex4(ps, cp))
        return fail(ps, "\\u needs four hex digits");
    if (*cp >= 0xdc00 && *cp <= 0xdfff)
        return fail(ps, "a low surrogate \\u without its high half");
    if (*cp < 0xd800 || *cp > 0xdbff)
        return 0;
    if (ps->end - ps->p < 2 || ps->p[0] != '\\' || ps->p[1] != 'u')
        return fail(ps, "a high surrogate \\u without its low half");
    ps->p += 2;
    if (hex4(ps, &lo) || lo < 0xdc00 || lo > 0xdfff)
        return fail(ps, "a high surrogate \\u without its low half");
    *cp = 0x10000 + ((*cp - 0xd800) << 10) + (lo - 0xdc00);
    return 0;
}

/* Encode cp as UTF-8 at w; returns the byte count. */
static size_t utf8_put(char *w, uint32_t cp)
{
    if (cp < 0x80) {
        w[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        w[0] = (char)(0xc0 | cp >> 6);
        w[1] = (char)(0x80 | (cp & 63));
        return 2;
    }
    if (cp < 0x10000) {
        w[0] = (char)(0xe0 | cp >> 12);
        w[1] = (char)(0x80 | (cp >> 6 & 63));
        w[2] = (char)(0x80 | (cp & 63));
        return 3;
    }
    w[0] = (char)(0xf0 | cp >> 18);
    w[1] = (char)(0x80 | (cp >> 12 & 63));
    w[2] = (char)(0x80 | (cp >> 6 & 63));
    w[3] = (char)(0x80 | (cp & 63));
    return 4;
}

/* A JSON string, decoded in place: every escape is longer than the bytes
 * it stands for, so writing never overtakes reading. */
static int string(parser *ps, char **out, size_t *len)
{
    static const char plain[] = "\"\\/bfnrt", decoded[] = "\"\\/\b\f\n\r\t";
    if (!take(ps, '"'))
        return fail(ps, "expected a string");
    char *w = *out = ps->p;
    for (;;) {
        if (ps->p == ps->end)
            return fail(ps, "a string without its closing quote");
        unsigned char c = (unsigned char)*ps->p++;
        if (c == '"')
            break;
        if (c < 0x20)
            return fail(ps, "a control character in a string (JSON wants it escaped)");
        if (c != '\\') {
            *w++ = (char)c;
            continue;
        }
        if (ps->p == ps->end)
            return fail(ps, "a string without its closing quote");
        c = (unsigned char)*ps->p++;
        const char *esc = c ? strchr(plain, c) : NULL;
        uint32_t cp;
        if (esc) {
            *w++ = decoded[esc - plain];
        } else if (c == 'u') {
            if (unicode_escape(ps, &cp))
                return -1;
            w += utf8_put(w, cp);
        } else {
            return fail(ps, "an unknown escape in a string");
        }
    }
    *len = (size_t)(w - *out);
    return 0;
}

/* Standard padded base64, decoded in place (3 bytes out per 4 in). */
static int base64(char *s, size_t *len)
{
    size_t n = *len, w = 0;
    if (n % 4)
        return -1;
    for (size_t i = 0; i < n; i += 4) {
        uint32_t v = 0;
        int pad = 0;
        for (size_t j = 0; j < 4; j++) {
            char c = s[i + j];
            const char *d = c ? strchr(b64_alphabet, c) : NULL;
            /* '=' only at the very end, as "x=" or "=="'s last two. */
            if (c == '=' && i + 4 == n && (j == 3 || (j == 2 && s[i + 3] == '=')))
                pad++;
            else if (!d || pad)
                return -1;
            v = v << 6 | (d ? (uint32_t)(d - b64_alphabet) : 0);
        }
        s[w++] = (char)(v >> 16);
        if (pad < 2)
            s[w++] = (char)(v >> 8 & 0xff);
        if (pad < 1)
            s[w++] = (char)(v & 0xff);
    }
    *len = w;
    return 0;
}

/* One "name": "string" member into e; `seen` has bit 1 for a key, 2 for a
 * value. */
static int member(parser *ps, fmt_entry *e, unsigned *seen)
{
    char *name, *s;
    size_t nlen, slen;
    if (string(ps, &name, &nlen))
        return -1;
    if (!take(ps, ':'))
        return fail(ps, "expected ':' after a member's name");
    if (string(ps, &s, &slen))
        return -1;
    int is_key = nlen >= 3 && memcmp(name, "key", 3) == 0;
    size_t base = is_key ? 3 : 5;
    if (!is_key && !(nlen >= 5 && memcmp(name, "value", 5) == 0))
        return fail(ps, "a member other than key, key_b64, value, value_b64");
    int is_b64 = nlen == base + 4 && memcmp(name + base, "_b64", 4) == 0;
    if (nlen != base && !is_b64)
        return fail(ps, "a member other than key, key_b64, value, value_b64");
    unsigned bit = is_key ? 1 : 2;
    if (*seen & bit)
        return fail(ps, is_key ? "two keys" : "two values");
    *seen |= bit;
    if (is_b64 && base64(s, &slen))
        return fail(ps, "bad base64 (standard alphabet, padded with '=')");
    if (is_key)
        e->key = s, e->klen = slen;
    else
        e->val = s, e->vlen = slen;
    return 0;
}

int fmt_json_parse(char *line, size_t n, fmt_entry *e, const char **err)
{
    parser ps = {line, line + n, NULL};
    unsigned seen = 0;
    int rc = 0;
    if (!take(&ps, '{'))
        rc = fail(&ps, "expected a JSON object");
    else if (!take(&ps, '}')) {
        do
            rc = member(&ps, e, &seen);
        while (rc == 0 && take(&ps, ','));
        if (rc == 0 && !take(&ps, '}'))
            rc = fail(&ps, "expected ',' or '}'");
    }
    skip_space(&ps);
    if (rc == 0 && ps.p != ps.end)
        rc = fail(&ps, "more after the object");
    if (rc == 0 && seen != 3)
        rc = fail(&ps, "an entry needs a key and a value");
    *err = ps.err;
    return rc;
}
