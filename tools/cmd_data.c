/* The data commands: their common options, the target (a directory joined
 * in party mode, or a host), and get, put, del, ls, count, clear. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "data.h"
#include "format.h"

enum {
    OPT_GT = 256, OPT_GTE, OPT_LT, OPT_LTE, OPT_KEYS, OPT_VALUES, OPT_RAW,
    OPT_TLS_CA, OPT_TLS_CERT, OPT_TLS_KEY, OPT_TLS_NAME, OPT_IF_VALUE, OPT_IF_ABSENT, OPT_FROM
};

static const struct option long_options[] = {
    {"connect", required_argument, NULL, 'c'}, {"escapes", no_argument, NULL, 'e'},
    {"help", no_argument, NULL, 'h'},          {"gt", required_argument, NULL, OPT_GT},
    {"gte", required_argument, NULL, OPT_GTE}, {"lt", required_argument, NULL, OPT_LT},
    {"lte", required_argument, NULL, OPT_LTE}, {"prefix", required_argument, NULL, 'p'},
    {"limit", required_argument, NULL, 'n'},   {"reverse", no_argument, NULL, 'r'},
    {"keys", no_argument, NULL, OPT_KEYS},     {"values", no_argument, NULL, OPT_VALUES},
    {"raw", no_argument, NULL, OPT_RAW},       {"force", no_argument, NULL, 'f'},
    {"output", required_argument, NULL, 'o'},  {"tls-ca", required_argument, NULL, OPT_TLS_CA},
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
    {"tls-server-name", required_argument, NULL, OPT_TLS_NAME},
    {"timeout", required_argument, NULL, 't'},
    {"if-value", required_argument, NULL, OPT_IF_VALUE},
    {"if-absent", no_argument, NULL, OPT_IF_ABSENT},
    {"from", required_argument, NULL, OPT_FROM},
    {NULL, 0, NULL, 0},
};

/* A leading ':' makes getopt report a missing value apart from an unknown
 * option, and keeps it quiet: the messages are ours. */
static const char short_options[] = ":c:ehp:n:rfo:t:";

/* Which OPTS_* group an option belongs to (0: every data command's). */
static unsigned option_group(int opt)
{
    switch (opt) {
    case OPT_GT: case OPT_GTE: case OPT_LT: case OPT_LTE: case 'p': case 'n': case 'r':
        return OPTS_RANGE;
    case OPT_KEYS: case OPT_VALUES:
        return OPTS_PROJECT;
    case OPT_RAW:
        return OPTS_RAW;
    case 'f':
        return OPTS_FORCE;
    case 'o':
        return OPTS_OUTPUT;
    case OPT_IF_VALUE: case OPT_IF_ABSENT:
        return OPTS_IF;
    case OPT_FROM:
        return OPTS_FROM;
    }
    return 0;
}

int data_fail(data_cmd *d, int status)
{
    cli_fail(status, "%s on %s", d->cmd->name, d->target);
    /* With retry off, a host that never answered is reported as a lost
     * connection: say what is more likely (unless TLS said why). */
    if (status == RAVEL_ECONNLOST && d->remote && !strstr(ravel_errmsg(), "TLS"))
        fprintf(stderr, "ravel: is a host listening on %s?\n", d->target);
    return EXIT_FAIL;
}

/* The bounds as given, before -e decodes them. */
enum { B_GT, B_GTE, B_LT, B_LTE, B_PREFIX, NBOUNDS };

typedef struct parsed {
    const char *connect, *limit, *timeout;
    const char *tls_ca, *tls_cert, *tls_key, *tls_name;
    char *if_value;
    char *bounds[NBOUNDS];
    int escapes, keys_only, values_only;
    int timeout_ms; /* --timeout, else 0 */
} parsed;

static int parse_options(data_cmd *d, parsed *p, int argc, char **argv)
{
    const cli_command *cmd = d->cmd;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, short_options, long_options, NULL)) != -1) {
        if (c == ':' || c == '?')
            return cli_bad_option(cmd, c, argv, long_options);
        unsigned group = option_group(c);
        if (group && !(cmd->opts & group))
            return cli_usage(cmd, "%s does not take --%s", cmd->name,
                             cli_option_name(long_options, c));
        switch (c) {
        case 'h':
            cli_print_help(cmd);
            return -1;
        case 'c': p->connect = optarg; break;
        case 'e': p->escapes = 1; break;
        case OPT_GT: p->bounds[B_GT] = optarg; break;
        case OPT_GTE: p->bounds[B_GTE] = optarg; break;
        case OPT_LT: p->bounds[B_LT] = optarg; break;
        case OPT_LTE: p->bounds[B_LTE] = optarg; break;
        case 'p': p->bounds[B_PREFIX] = optarg; break;
        case 'n': p->limit = optarg; break;
        case 'r': d->range.reverse = 1; break;
        case OPT_KEYS: p->keys_only = 1; break;
        case OPT_VALUES: p->values_only = 1; break;
        case OPT_RAW: d->raw = 1; break;
        case 'f': d->force = 1; break;
        case 'o': d->output = optarg; break;
        case OPT_TLS_CA: p->tls_ca = optarg; break;
        case OPT_TLS_CERT: p->tls_cert = optarg; break;
        case OPT_TLS_KEY: p->tls_key = optarg; break;
        case OPT_TLS_NAME: p->tls_name = optarg; break;
        case 't': p->timeout = optarg; break;
        case OPT_FROM: {
            char *end;
            errno = 0;
            d->from = strtoull(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-')
                return cli_usage(d->cmd, "--from needs a sequence number, not '%s'", optarg);
            d->has_from = 1;
            break;
        }
        case OPT_IF_VALUE: p->if_value = optarg; break;
        case OPT_IF_ABSENT: d->if_absent = 1; break;
        }
    }
    if (p->if_value && d->if_absent)
        return cli_usage(cmd, "--if-value and --if-absent together: give one condition");
    if (d->if_absent && strcmp(cmd->name, "put") != 0)
        return cli_usage(cmd, "%s does not take --if-absent", cmd->name);
    if (p->timeout) {
        char *end;
        errno = 0;
        long ms = strtol(p->timeout, &end, 10);
        if (!*p->timeout || *end || ms < 1 || ms > 86400000 || errno)
            return cli_usage(cmd, "--timeout needs milliseconds (1 to 86400000), not '%s'",
                             p->timeout);
        p->timeout_ms = (int)ms;
    }
    return EXIT_OK;
}

/* A key or value from the command line: bytes as given, or with -e its
 * escapes decoded (in place). */
static int decode(data_cmd *d, const parsed *p, char *s, ravel_bound *out, const char *what)
{
    size_t len = strlen(s);
    const char *bad;
    if (p->escapes && fmt_unescape(s, &len, &bad))
        return cli_usage(d->cmd, "%s: bad escape '%.4s' (-e knows \\xNN and \\\\)", what, bad);
    out->data = s;
    out->len = len;
    return EXIT_OK;
}

/* The first key after every key that starts with prefix: the prefix with
 * its trailing 0xff bytes dropped and its last byte incremented; none (0)
 * when it is all 0xff. Written to out (prefix's length at least). */
static size_t prefix_end(const ravel_bound *prefix, unsigned char *out)
{
    size_t n = prefix->len;
    memcpy(out, prefix->data, n);
    while (n > 0 && out[n - 1] == 0xff)
        n--;
    if (n > 0)
        out[n - 1]++;
    return n;
}

static int build_range(data_cmd *d, const parsed *p, unsigned char **end_buf)
{
    static const char *const names[NBOUNDS] = {"--gt", "--gte", "--lt", "--lte", "--prefix"};
    ravel_bound b[NBOUNDS] = {{0}};
    ravel_range *r = &d->range;
    for (int i = 0; i < NBOUNDS; i++)
        if (p->bounds[i] && decode(d, p, p->bounds[i], &b[i], names[i]))
            return EXIT_USAGE;
    if (p->bounds[B_GT] && p->bounds[B_GTE])
        return cli_usage(d->cmd, "--gt and --gte together: give one lower bound");
    if (p->bounds[B_LT] && p->bounds[B_LTE])
        return cli_usage(d->cmd, "--lt and --lte together: give one upper bound");
    r->has_gt = p->bounds[B_GT] != NULL, r->gt = b[B_GT];
    r->has_gte = p->bounds[B_GTE] != NULL, r->gte = b[B_GTE];
    r->has_lt = p->bounds[B_LT] != NULL, r->lt = b[B_LT];
    r->has_lte = p->bounds[B_LTE] != NULL, r->lte = b[B_LTE];
    if (p->bounds[B_PREFIX]) {
        if (r->has_gt || r->has_gte || r->has_lt || r->has_lte)
            return cli_usage(d->cmd, "--prefix is a range of its own: give it without bounds");
        if (!(*end_buf = malloc(b[B_PREFIX].len + 1)))
            return cli_fail_errno("%s", d->cmd->name);
        r->has_gte = 1, r->gte = b[B_PREFIX];
        r->lt = (ravel_bound){*end_buf, prefix_end(&b[B_PREFIX], *end_buf)};
        r->has_lt = r->lt.len > 0;
    }
    if (p->limit) {
        char *end;
        errno = 0;
        long long n = strtoll(p->limit, &end, 10);
        if (!*p->limit || *end || n < 0 || errno)
            return cli_usage(d->cmd, "--limit needs a count (0 or more), not '%s'", p->limit);
        r->limit = n;
    }
    if (p->keys_only && p->values_only)
        return cli_usage(d->cmd, "--keys and --values together: leave both out for both");
    if (d->cmd->run == data_compact && (p->limit || r->reverse))
        return cli_usage(d->cmd, "compact takes a key range; --limit and --reverse do not apply");
    r->keys = !p->values_only;
    r->values = !p->keys_only;
    /* An empty lower bound (--gte '', --prefix '') takes in every key. */
    d->bounded = r->has_gt || (r->has_gte && r->gte.len) || r->has_lt || r->has_lte || p->limit;
    return EXIT_OK;
}

/* The target, then the command's own arguments. */
static int take_args(data_cmd *d, const parsed *p, int npos, char **pos)
{
    const cli_command *cmd = d->cmd;
    if (p->connect) {
        char address[1024];
        const char *bad = cli_address(address, sizeof address, p->connect)
                              ? "address too long"
                              : cli_check_address(address);
        if (bad)
            return cli_usage(cmd, "--connect %s: %s", p->connect, bad);
        d->target = p->connect;
        d->remote = 1;
    } else if (npos == 0) {
        return cli_usage(cmd, "%s needs a database directory, or --connect ADDRESS", cmd->name);
    } else {
        d->target = *pos++;
        npos--;
    }
    if (npos < cmd->min_args)
        return cli_usage(cmd, "%s needs %s", cmd->name, cmd->usage);
    if (npos > cmd->max_args)
        return cli_usage(cmd, "unexpected argument '%s'%s", pos[cmd->max_args],
                         p->connect ? " (with --connect there is no DIR)" : "");
    d->nargs = npos;
    if (p->if_value) {
        if (decode(d, p, p->if_value, &d->old, "--if-value"))
            return EXIT_USAGE;
        d->if_value = 1;
    }
    for (int i = 0; i < npos; i++) {
        if (strcmp(pos[i], "-") == 0)
            d->dash |= 1u << i;
        if (!cmd->byte_args)
            d->args[i] = (ravel_bound){pos[i], strlen(pos[i])};
        else if (decode(d, p, pos[i], &d->args[i], i ? "VALUE" : "KEY"))
            return EXIT_USAGE;
    }
    return EXIT_OK;
}

/* Asked before the database is opened: a process waiting for a person
 * should not be the one leading the directory meanwhile. */
static int confirm_clear_all(data_cmd *d)
{
    if (!isatty(STDIN_FILENO))
        return cli_usage(d->cmd,
                         "clear without a range deletes ALL entries of %s: add --force to "
                         "mean it (stdin is not a terminal to ask)",
                         d->target);
    fprintf(stderr, "clear ALL entries of %s? [y/N] ", d->target);
    char answer[16] = "";
    if (!fgets(answer, sizeof answer, stdin))
        putc('\n', stderr);
    answer[strcspn(answer, "\n")] = '\0';
    if (strcasecmp(answer, "y") == 0 || strcasecmp(answer, "yes") == 0)
        return EXIT_OK;
    fprintf(stderr, "ravel: clear: not confirmed, nothing deleted\n");
    return EXIT_FAIL;
}

static int open_target(data_cmd *d, const parsed *p)
{
    ravel_options o;
    ravel_options_init(&o);
    int rc;
    if (p->connect) {
        char address[1024];
        cli_address(address, sizeof address, p->connect); /* checked by take_args */
        /* One command, one attempt: a host that cannot be reached is an
         * error to report, not something to wait for — unless --timeout
         * says how long to keep trying. */
        o.retry = p->timeout_ms > 0;
        o.connect_timeout_ms = p->timeout_ms;
        o.tls_ca_file = p->tls_ca;
        o.tls_cert_file = p->tls_cert;
        o.tls_key_file = p->tls_key;
        o.tls_server_name = p->tls_name;
        int tls = strncmp(address, "tls:", 4) == 0;
        if (!tls && (p->tls_ca || p->tls_cert || p->tls_key || p->tls_name))
            return cli_usage(d->cmd, "--tls-* options need a tls:HOST:PORT address");
        if (!p->tls_cert != !p->tls_key)
            return cli_usage(d->cmd, "--tls-cert and --tls-key go together");
        rc = ravel_connect(&d->db, address, &o);
    } else if (p->tls_ca || p->tls_cert || p->tls_key || p->tls_name) {
        return cli_usage(d->cmd, "--tls-* options need --connect tls:HOST:PORT");
    } else {
        /* Nothing is written into a directory that holds no database:
         * ravel_open checks before LevelDB would write LOCK and LOG. */
        if (!d->cmd->creates && access(d->target, F_OK) != 0)
            return cli_fail_errno("cannot open %s", d->target);
        o.create_if_missing = d->cmd->creates;
        if (p->timeout_ms) {
            /* A directory locked by a program that does not share it, and
             * a leader that goes with no new one elected. */
            o.lock_timeout_ms = p->timeout_ms;
            o.connect_timeout_ms = p->timeout_ms;
        }
        rc = ravel_open(&d->db, d->target, &o);
    }
    return rc == RAVEL_OK ? EXIT_OK : cli_fail(rc, "cannot open %s", d->target);
}

int data_main(const cli_command *cmd, int argc, char **argv)
{
    data_cmd d = {.cmd = cmd};
    parsed p = {0};
    unsigned char *end_buf = NULL;
    ravel_range_init(&d.range);
    int rc = parse_options(&d, &p, argc, argv);
    if (rc < 0) /* the help was asked for, and given */
        return EXIT_OK;
    if (rc == EXIT_OK)
        rc = take_args(&d, &p, argc - optind, argv + optind);
    if (rc == EXIT_OK)
        rc = build_range(&d, &p, &end_buf);
    if (rc == EXIT_OK && (cmd->opts & OPTS_FORCE) && !d.bounded && !d.force)
        rc = confirm_clear_all(&d);
    if (rc == EXIT_OK)
        rc = open_target(&d, &p);
    if (rc == EXIT_OK) {
        rc = cmd->run(&d);
        ravel_db_close(d.db);
    }
    free(end_buf);
    if (fflush(stdout) != 0 && rc != EXIT_FAIL)
        rc = cli_fail_errno("cannot write to stdout");
    return rc;
}

int data_iterate(data_cmd *d, data_entry_fn fn, void *ud)
{
    int status;
    return data_iterate_ro(d, NULL, fn, ud, &status);
}

int data_iterate_ro(data_cmd *d, const ravel_readoptions *ro, data_entry_fn fn, void *ud,
                    int *status)
{
    ravel_iter *it;
    int rc = *status = ravel_iter_new_opt(d->db, ro, &d->range, &it);
    if (rc != RAVEL_OK)
        return data_fail(d, rc);
    const char *k, *v;
    size_t kl, vl;
    while ((rc = ravel_iter_next(it, &k, &kl, &v, &vl)) == RAVEL_OK)
        fn(ud, k, kl, v, vl);
    ravel_iter_free(it);
    *status = rc;
    return rc == RAVEL_END ? EXIT_OK : data_fail(d, rc);
}

/* ---- the commands ---- */

int data_get(data_cmd *d)
{
    char *val;
    size_t vlen;
    int rc = ravel_get(d->db, d->args[0].data, d->args[0].len, &val, &vlen);
    if (rc == RAVEL_ENOTFOUND) {
        fputs("ravel: get: key not found: ", stderr);
        fmt_text(stderr, d->args[0].data, d->args[0].len);
        putc('\n', stderr);
        return EXIT_NOTFOUND;
    }
    if (rc != RAVEL_OK)
        return data_fail(d, rc);
    if (d->raw) {
        fwrite(val, 1, vlen, stdout);
    } else {
        fmt_text(stdout, val, vlen);
        putchar('\n');
    }
    ravel_free(val);
    return EXIT_OK;
}

/* All of stdin, for put's '-'. */
static int read_stdin(char **out, size_t *len)
{
    size_t cap = 0, n = 0, got;
    char *buf = NULL;
    do {
        if (n == cap) {
            char *more = realloc(buf, cap = cap ? cap * 2 : 65536);
            if (!more) {
                free(buf);
                return cli_fail_errno("put: cannot read the value from stdin");
            }
            buf = more;
        }
        n += got = fread(buf + n, 1, cap - n, stdin);
    } while (got > 0);
    if (ferror(stdin)) {
        free(buf);
        return cli_fail_errno("put: cannot read the value from stdin");
    }
    *out = buf;
    *len = n;
    return EXIT_OK;
}

/* put (v: the value) or del (v NULL) of args[0], under --if-value or
 * --if-absent when given: one batch with a check, applied only if it
 * holds (exit 4 and words when it does not). */
static int conditional(data_cmd *d, const ravel_bound *v)
{
    const ravel_bound *k = &d->args[0];
    if (!d->if_value && !d->if_absent) {
        int rc = v ? ravel_put(d->db, k->data, k->len, v->data, v->len)
                   : ravel_del(d->db, k->data, k->len);
        return rc == RAVEL_OK ? EXIT_OK : data_fail(d, rc);
    }
    ravel_batch *b = ravel_batch_new();
    if (!b)
        return cli_fail(RAVEL_ENOMEM, "%s", d->cmd->name);
    int rc = d->if_absent ? ravel_batch_check_absent(b, k->data, k->len)
                          : ravel_batch_check(b, k->data, k->len, d->old.data, d->old.len);
    if (rc == RAVEL_OK)
        rc = v ? ravel_batch_put(b, k->data, k->len, v->data, v->len)
               : ravel_batch_del(b, k->data, k->len);
    if (rc == RAVEL_OK)
        rc = ravel_write(d->db, b);
    ravel_batch_free(b);
    if (rc == RAVEL_ECONFLICT) {
        fprintf(stderr, "ravel: %s: not done: the key %s\n", d->cmd->name,
                d->if_absent ? "is present" : "does not hold the value --if-value gave");
        return EXIT_CONFLICT;
    }
    return rc == RAVEL_OK ? EXIT_OK : data_fail(d, rc);
}

int data_put(data_cmd *d)
{
    ravel_bound v = d->args[1];
    char *buf = NULL;
    if (d->dash & 2) {
        if (read_stdin(&buf, &v.len))
            return EXIT_FAIL;
        v.data = buf;
    }
    int rc = conditional(d, &v);
    free(buf);
    return rc;
}

int data_del(data_cmd *d)
{
    return conditional(d, NULL);
}

static void ls_entry(void *ud, const char *key, size_t klen, const char *val, size_t vlen)
{
    const ravel_range *r = ud;
    if (r->keys)
        fmt_text(stdout, key, klen);
    if (r->keys && r->values)
        putchar('\t');
    if (r->values)
        fmt_text(stdout, val, vlen);
    putchar('\n');
}

int data_ls(data_cmd *d)
{
    return data_iterate(d, ls_entry, &d->range);
}

static void count_entry(void *ud, const char *key, size_t klen, const char *val, size_t vlen)
{
    (void)key, (void)klen, (void)val, (void)vlen;
    ++*(uint64_t *)ud;
}

int data_count(data_cmd *d)
{
    uint64_t n = 0;
    d->range.values = 0; /* keys only: they are what a guest resumes from */
    int rc = data_iterate(d, count_entry, &n);
    if (rc == EXIT_OK)
        printf("%" PRIu64 "\n", n);
    return rc;
}

int data_clear(data_cmd *d)
{
    int rc = ravel_clear(d->db, &d->range);
    return rc == RAVEL_OK ? EXIT_OK : data_fail(d, rc);
}

/* compact: LevelDB's compact_range over the range's bounds (inclusive, as
 * LevelDB's are; compacting a little more than asked is harmless). */
int data_compact(data_cmd *d)
{
    const ravel_range *r = &d->range;
    const ravel_bound *lo = r->has_gte ? &r->gte : r->has_gt ? &r->gt : NULL;
    const ravel_bound *hi = r->has_lte ? &r->lte : r->has_lt ? &r->lt : NULL;
    int rc = ravel_compact_range(d->db, lo ? lo->data : NULL, lo ? lo->len : 0,
                                 hi ? hi->data : NULL, hi ? hi->len : 0);
    if (rc != RAVEL_OK)
        return data_fail(d, rc);
    printf("compacted\n");
    return EXIT_OK;
}
