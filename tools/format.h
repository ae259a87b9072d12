/* Arbitrary bytes as text: escaped for people (get, ls, and -e on the
 * command line) and as JSON lines (dump, load). */
#ifndef RAVEL_FORMAT_H
#define RAVEL_FORMAT_H

#include <stddef.h>
#include <stdio.h>

/* Write s[0..n) as text: printable UTF-8 as it is, a backslash as \\, every
 * other byte (control characters, bytes that are not UTF-8) as \xNN. */
void fmt_text(FILE *f, const char *s, size_t n);

/* Decode, in place, what fmt_text writes: \xNN and \\ in the C string s;
 * *len gets the byte count. Returns 0, or -1 with *bad at the bad escape
 * (the text from *bad on is still as it was). */
int fmt_unescape(char *s, size_t *len, const char **bad);

/* Write one entry as a JSON line: {"key":…,"value":…}, each a JSON string
 * when its bytes are valid UTF-8, else "key_b64"/"value_b64" in base64. */
/* s as a JSON string: as it is when it is UTF-8, else each byte as
 * \u00NN. */
void fmt_json_string(FILE *f, const char *s, size_t n);

void fmt_json_entry(FILE *f, const char *key, size_t klen, const char *val, size_t vlen);
/* One member, "NAME":"…" or, for bytes that are not UTF-8, "NAME_b64":"…",
 * as fmt_json_entry writes its key and value. */
void fmt_json_member(FILE *f, const char *name, const char *s, size_t n);

typedef struct fmt_entry {
    char *key, *val;
    size_t klen, vlen;
} fmt_entry;

/* Parse a line written by fmt_json_entry (or any JSON object of that
 * shape) in place: e's pointers point into line. Returns 0, or -1 with
 * *err saying what is wrong. */
int fmt_json_parse(char *line, size_t n, fmt_entry *e, const char **err);

#endif
