/* dump and load: every entry as a JSON line (format.h), with a progress
 * line on stderr for people watching. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data.h"
#include "format.h"

/* load's batches: many entries per write for speed, few enough bytes to
 * stay far below a host's frame cap (64 MiB by default). */
enum { BATCH_ENTRIES = 1000, BATCH_BYTES = 4 << 20 };

typedef struct progress {
    int on;
    const char *verb;
    double start, shown;
    uint64_t n;
} progress;

/* Shown only to a person: stderr is a terminal, and the entries
 * themselves do not go to (or come from) one, where it would garble them. */
static void progress_init(progress *p, const char *verb, FILE *data)
{
    p->on = isatty(STDERR_FILENO) && !isatty(fileno(data));
    p->verb = verb;
    p->start = p->shown = cli_now();
    p->n = 0;
}

/* Redraw the line in place, ten times a second at most; the last time,
 * end it. */
static void progress_show(progress *p, int last)
{
    if (!p->on)
        return;
    double t = cli_now();
    if (!last && t - p->shown < 0.1)
        return;
    p->shown = t;
    double rate = t > p->start ? (double)p->n / (t - p->start) : 0;
    fprintf(stderr, "\r%s %" PRIu64 " entries, %.0f entries/s  %s", p->verb, p->n, rate,
            last ? "\n" : "");
}

typedef struct dump {
    FILE *out;
    progress pr;
} dump;

static void dump_entry(void *ud, const char *key, size_t klen, const char *val, size_t vlen)
{
    dump *s = ud;
    fmt_json_entry(s->out, key, klen, val, vlen);
    s->pr.n++;
    progress_show(&s->pr, 0);
}

int data_dump(data_cmd *d)
{
    dump s = {.out = stdout};
    if (d->output && !(s.out = fopen(d->output, "w")))
        return cli_fail_errno("dump: cannot open %s", d->output);
    progress_init(&s.pr, "dumped", s.out);
    int rc = data_iterate(d, dump_entry, &s);
    progress_show(&s.pr, 1);
    if (d->output && fclose(s.out) != 0 && rc == EXIT_OK)
        rc = cli_fail_errno("dump: cannot write %s", d->output);
    return rc;
}

typedef struct load {
    data_cmd *d;
    ravel_batch *batch;
    size_t bytes;
    progress pr;
} load;

static int load_flush(load *l)
{
    size_t n = ravel_batch_count(l->batch);
    if (n == 0)
        return EXIT_OK;
    int rc = ravel_write(l->d->db, l->batch);
    if (rc != RAVEL_OK)
        return data_fail(l->d, rc);
    ravel_batch_clear(l->batch);
    l->bytes = 0;
    l->pr.n += n;
    progress_show(&l->pr, 0);
    return EXIT_OK;
}

/* Read and write every line; at a bad one, write the entries before it and
 * say where it is. */
static int load_lines(load *l, FILE *in, const char *name)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    uintmax_t lineno = 0;
    const char *err = NULL;
    int rc = EXIT_OK;
    while (rc == EXIT_OK && (n = getline(&line, &cap, in)) >= 0) {
        lineno++;
        if (strspn(line, " \t\r\n") == (size_t)n)
            continue;
        fmt_entry e;
        if (fmt_json_parse(line, (size_t)n, &e, &err))
            break;
        int st = ravel_batch_put(l->batch, e.key, e.klen, e.val, e.vlen);
        l->bytes += e.klen + e.vlen;
        if (st != RAVEL_OK)
            rc = data_fail(l->d, st);
        else if (ravel_batch_count(l->batch) >= BATCH_ENTRIES || l->bytes >= BATCH_BYTES)
            rc = load_flush(l);
    }
    free(line);
    if (rc == EXIT_OK && ferror(in))
        rc = cli_fail_errno("load: cannot read %s", name);
    if (rc == EXIT_OK)
        rc = load_flush(l);
    if (rc == EXIT_OK && err) {
        fprintf(stderr, "ravel: load: %s:%ju: %s (the %" PRIu64 " entries before it are loaded)\n",
                name, lineno, err, l->pr.n);
        rc = EXIT_FAIL;
    }
    return rc;
}

int data_load(data_cmd *d)
{
    load l = {.d = d};
    FILE *in = stdin;
    const char *name = "stdin";
    if (d->nargs && !(d->dash & 1)) {
        name = d->args[0].data;
        if (!(in = fopen(name, "r")))
            return cli_fail_errno("load: cannot open %s", name);
    }
    int rc;
    if (!(l.batch = ravel_batch_new())) {
        rc = cli_fail_errno("load");
    } else {
        progress_init(&l.pr, "loaded", in);
        rc = load_lines(&l, in, name);
        progress_show(&l.pr, 1);
    }
    ravel_batch_free(l.batch);
    if (in != stdin)
        fclose(in);
    return rc;
}
