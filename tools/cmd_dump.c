/* dump and load: every entry as a JSON line (format.h), with a progress
 * line on stderr for people watching. */
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

/* ---- backup: the entries of one snapshot into a new LevelDB ---- */

typedef struct backup {
    data_cmd *d;
    ravel_db *dest;
    ravel_batch *batch;
    size_t bytes;
    FILE *lines;   /* -o: the same entries as JSON lines, or NULL */
    int rc;        /* EXIT_OK until a write fails */
    progress pr;
} backup;

static int backup_flush(backup *b)
{
    if (ravel_batch_count(b->batch) == 0)
        return EXIT_OK;
    int rc = ravel_write(b->dest, b->batch);
    if (rc != RAVEL_OK)
        return cli_fail(rc, "backup: cannot write the copy");
    ravel_batch_clear(b->batch);
    b->bytes = 0;
    return EXIT_OK;
}

static void backup_entry(void *ud, const char *key, size_t klen, const char *val, size_t vlen)
{
    backup *b = ud;
    if (b->rc != EXIT_OK)
        return;
    if (ravel_batch_put(b->batch, key, klen, val, vlen) != RAVEL_OK) {
        b->rc = cli_fail(RAVEL_ENOMEM, "backup");
        return;
    }
    b->bytes += klen + vlen;
    if (b->lines)
        fmt_json_entry(b->lines, key, klen, val, vlen);
    b->pr.n++;
    progress_show(&b->pr, 0);
    if (ravel_batch_count(b->batch) >= BATCH_ENTRIES || b->bytes >= BATCH_BYTES)
        b->rc = backup_flush(b);
}

#define EXIT_SNAPSHOT_LOST (-1)

/* One pass: every entry of a new snapshot into the copy. EXIT_OK, an exit
 * code, or EXIT_SNAPSHOT_LOST. */
static int backup_one_snapshot(backup *b)
{
    ravel_snapshot *snap;
    int rc = ravel_snapshot_create(b->d->db, &snap);
    if (rc != RAVEL_OK)
        return data_fail(b->d, rc);
    ravel_readoptions ro;
    ravel_readoptions_init(&ro);
    ro.snapshot = snap;
    int status;
    rc = data_iterate_ro(b->d, &ro, backup_entry, b, &status);
    ravel_snapshot_release(b->d->db, snap);
    if (status == RAVEL_ESNAPSHOT)
        return EXIT_SNAPSHOT_LOST;
    if (rc == EXIT_OK)
        rc = b->rc;
    if (rc == EXIT_OK)
        rc = backup_flush(b);
    return rc;
}

/* Empty the copy and its lines for another pass. */
static int backup_restart(backup *b)
{
    ravel_batch_clear(b->batch);
    b->bytes = 0;
    b->rc = EXIT_OK;
    int rc = ravel_clear(b->dest, NULL);
    if (rc != RAVEL_OK)
        return cli_fail(rc, "backup: cannot empty the copy to start again");
    if (b->lines && (fflush(b->lines) != 0 || ftruncate(fileno(b->lines), 0) != 0 ||
                     fseek(b->lines, 0, SEEK_SET) != 0))
        return cli_fail_errno("backup: cannot start %s again", b->d->output);
    return EXIT_OK;
}

/* Remove the copy a failed backup began: LevelDB's files, then DEST. */
static void remove_copy(const char *dest)
{
    DIR *dir = opendir(dest);
    if (dir) {
        struct dirent *e;
        while ((e = readdir(dir)))
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
                char path[8192];
                snprintf(path, sizeof path, "%s/%s", dest, e->d_name);
                unlink(path);
            }
        closedir(dir);
    }
    rmdir(dest);
}

/* The copy is one snapshot, on every kind of handle: LevelDB's own where
 * this process leads DIR (others may join and write meanwhile), or one
 * the leader or host keeps for this stream. If that leader goes away
 * during the copy, its snapshot goes with it (RAVEL_ESNAPSHOT): the copy
 * starts again from a new one, a few times. */
#define BACKUP_TRIES 3

int data_backup(data_cmd *d)
{
    const char *dest = d->args[0].data;
    /* Only a copy made here is removed on failure: nothing of the user's. */
    struct stat st;
    DIR *there = opendir(dest);
    int empty = 1;
    if (there) {
        struct dirent *e;
        while (empty && (e = readdir(there)))
            empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
        closedir(there);
    }
    if ((there && !empty) || (!there && stat(dest, &st) == 0)) {
        fprintf(stderr, "ravel: backup: %s exists and is not an empty directory\n", dest);
        return EXIT_FAIL;
    }
    ravel_options o;
    ravel_options_init(&o);
    o.error_if_exists = 1;
    backup b = {.d = d};
    int rc = ravel_open_local(&b.dest, dest, &o);
    if (rc != RAVEL_OK)
        return cli_fail(rc, "backup: cannot make the copy %s", dest);
    if (d->output && !(b.lines = fopen(d->output, "w"))) {
        rc = cli_fail_errno("backup: cannot open %s", d->output);
    } else if (!(b.batch = ravel_batch_new())) {
        rc = cli_fail_errno("backup");
    } else {
        for (int tries = 1;; tries++) {
            progress_init(&b.pr, "copied", stdout);
            rc = backup_one_snapshot(&b);
            progress_show(&b.pr, 1);
            if (rc != EXIT_SNAPSHOT_LOST || tries == BACKUP_TRIES)
                break;
            fprintf(stderr, "ravel: backup: the leader went away, and its snapshot with it; "
                            "starting again from a new one\n");
            if ((rc = backup_restart(&b)) != EXIT_OK)
                break;
        }
        if (rc == EXIT_SNAPSHOT_LOST)
            rc = EXIT_FAIL;
    }
    ravel_batch_free(b.batch);
    if (b.lines && fclose(b.lines) != 0 && rc == EXIT_OK)
        rc = cli_fail_errno("backup: cannot write %s", d->output);
    ravel_db_close(b.dest);
    if (rc != EXIT_OK) {
        remove_copy(dest);
        fprintf(stderr, "ravel: backup: %s removed: it was not complete\n", dest);
        return rc;
    }
    printf("%" PRIu64 " entries copied from one snapshot of %s into %s\n", b.pr.n, d->target,
           dest);
    return EXIT_OK;
}
