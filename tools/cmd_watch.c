/* watch: print each change of a range as a JSON line as it happens;
 * changelog: show or set the database's change log. */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "format.h"

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* The range a resync names, as the bounds of the watch. */
static void print_range(const ravel_range *r)
{
    fputs("\"range\":{", stdout);
    const char *sep = "";
    const ravel_bound *b[4] = {&r->gt, &r->gte, &r->lt, &r->lte};
    const int has[4] = {r->has_gt && !r->has_gte, r->has_gte, r->has_lt && !r->has_lte,
                        r->has_lte};
    static const char *const names[4] = {"gt", "gte", "lt", "lte"};
    for (int i = 0; i < 4; i++)
        if (has[i]) {
            fputs(sep, stdout);
            fmt_json_member(stdout, names[i], b[i]->data, b[i]->len);
            sep = ",";
        }
    putchar('}');
}

int data_watch(data_cmd *d)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    ravel_watch_options o;
    ravel_watch_options_init(&o);
    o.range = &d->range;
    o.has_from = d->has_from;
    o.from = d->from;
    ravel_watch *w;
    int rc = ravel_watch_new(d->db, &o, &w);
    if (rc != RAVEL_OK)
        return data_fail(d, rc);
    int64_t left = d->range.limit; /* < 0: until interrupted */
    while (!interrupted && left != 0) {
        ravel_change c;
        rc = ravel_watch_next(w, &c, 200);
        if (rc == RAVEL_ETIMEDOUT)
            continue;
        if (rc != RAVEL_OK)
            break;
        if (c.type == RAVEL_CHANGE_RESYNC) {
            printf("{\"type\":\"resync\",\"from\":%" PRIu64 ",\"seq\":%" PRIu64 ",", c.resync_from,
                   c.seq);
            print_range(&d->range);
            puts("}");
        } else {
            printf("{\"seq\":%" PRIu64 ",\"type\":\"%s\",", c.seq,
                   c.type == RAVEL_CHANGE_PUT ? "put" : "del");
            fmt_json_member(stdout, "key", c.key, c.klen);
            if (c.type == RAVEL_CHANGE_PUT) {
                putchar(',');
                fmt_json_member(stdout, "value", c.val, c.vlen);
            }
            puts("}");
        }
        /* Each change as it happens, also into a pipe. */
        if (fflush(stdout) != 0)
            break;
        if (left > 0 && c.last)
            left--;
    }
    ravel_watch_free(w);
    if (rc != RAVEL_OK && rc != RAVEL_ETIMEDOUT)
        return data_fail(d, rc);
    return EXIT_OK;
}

static int number(data_cmd *d, int i, uint64_t *out)
{
    char *end;
    const char *s = d->args[i].data;
    *out = strtoull(s, &end, 10);
    if (end == s || *end || s[0] == '-')
        return cli_usage(d->cmd, "'%s' is not a number", s);
    return EXIT_OK;
}

int data_changelog(data_cmd *d)
{
    ravel_changelog st;
    int rc;
    if (d->nargs == 0) {
        rc = ravel_changelog_get(d->db, &st);
    } else {
        ravel_changelog set = {0};
        const char *what = d->args[0].data;
        if (strcmp(what, "on") == 0)
            set.on = 1;
        else if (strcmp(what, "off") != 0)
            return cli_usage(d->cmd, "changelog takes on or off, not '%s'", what);
        if (!set.on && d->nargs > 1)
            return cli_usage(d->cmd, "changelog off takes nothing more");
        if (d->nargs > 1 && number(d, 1, &set.max_count))
            return EXIT_USAGE;
        if (d->nargs > 2 && number(d, 2, &set.max_bytes))
            return EXIT_USAGE;
        rc = ravel_changelog_set(d->db, &set, &st);
    }
    if (rc != RAVEL_OK)
        return data_fail(d, rc);
    printf("{\"on\":%s,\"max_count\":%" PRIu64 ",\"max_bytes\":%" PRIu64 ",\"seq\":%" PRIu64
           ",\"floor\":%" PRIu64 ",\"records\":%" PRIu64 ",\"bytes\":%" PRIu64 "}\n",
           st.on ? "true" : "false", st.max_count, st.max_bytes, st.seq, st.floor, st.records,
           st.bytes);
    return EXIT_OK;
}
