/* ravel serve: join a directory's party — leading it, or following whoever
 * does — and host that handle for guests on the given addresses. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ravel.h"

enum {
    MAX_LISTEN = 16,
    MAX_ACCESS = 64,
    OPT_READONLY = 256,
    OPT_TLS_CERT,
    OPT_TLS_KEY,
    OPT_TLS_CA,
    OPT_TLS_ALLOW,
    OPT_MAX_CONN,
};

static const struct option long_options[] = {
    {"listen", required_argument, NULL, 'l'},
    {"readonly", no_argument, NULL, OPT_READONLY},
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
    {"tls-ca", required_argument, NULL, OPT_TLS_CA},
    {"tls-allow", required_argument, NULL, OPT_TLS_ALLOW},
    {"max-connections", required_argument, NULL, OPT_MAX_CONN},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Runs on a library thread, at the first election or when the leader this
 * process followed went away. */
static void on_leader(void *ud)
{
    const char *dir = ud;
    fprintf(stderr, "ravel: leading %s: its party reaches it on %s/rave-level.sock\n", dir, dir);
}

/* Listen on every address. A TCP port is said even when quiet: port 0
 * picks one, and clients need to know which. */
static int listen_all(ravel_host *h, char (*addr)[1024], int n)
{
    for (int i = 0; i < n; i++) {
        int rc = ravel_host_listen(h, addr[i]);
        if (rc != RAVEL_OK) {
            /* The library's words name the address and the cause (in use,
             * another serve there); the code's meaning would only blur it. */
            fprintf(stderr, "ravel: %s\n", ravel_errmsg());
            return EXIT_FAIL;
        }
        const char *a = addr[i];
        if (strncmp(a, "multileveldown+", 15) == 0)
            a += 15;
        if (strncmp(a, "tcp:", 4) == 0 || strncmp(a, "tls:", 4) == 0)
            fprintf(stderr, "ravel: %.3s port %d (%s)\n", a, ravel_host_port(h), addr[i]);
    }
    return EXIT_OK;
}

int serve_main(const cli_command *cmd, int argc, char **argv)
{
    char addr[MAX_LISTEN][1024];
    ravel_tls_access access[MAX_ACCESS];
    int nlisten = 0, c;
    char *end;
    const char *bad;
    ravel_host_options ho;
    ravel_host_options_init(&ho);
    ho.verbose = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":l:qh", long_options, NULL)) != -1) {
        switch (c) {
        case 'l':
            if (nlisten == MAX_LISTEN)
                return cli_usage(cmd, "at most %d --listen addresses", MAX_LISTEN);
            if (cli_address(addr[nlisten], sizeof addr[0], optarg))
                return cli_usage(cmd, "--listen: address too long");
            if ((bad = cli_check_address(addr[nlisten++])))
                return cli_usage(cmd, "--listen %s: %s", optarg, bad);
            break;
        case OPT_READONLY:
            ho.readonly = 1;
            break;
        case OPT_TLS_CERT:
            ho.tls_cert_file = optarg;
            break;
        case OPT_TLS_KEY:
            ho.tls_key_file = optarg;
            break;
        case OPT_TLS_CA:
            ho.tls_ca_file = optarg;
            break;
        case OPT_TLS_ALLOW: {
            /* ro:MATCH or rw:MATCH */
            if (ho.tls_access_len == MAX_ACCESS)
                return cli_usage(cmd, "at most %d --tls-allow rules", MAX_ACCESS);
            int ro = strncmp(optarg, "ro:", 3) == 0, rw = strncmp(optarg, "rw:", 3) == 0;
            if ((!ro && !rw) || !optarg[3])
                return cli_usage(cmd,
                                 "--tls-allow %s: expected ro:SUBJECT, rw:SUBJECT, "
                                 "ro:sha256:FINGERPRINT or rw:sha256:FINGERPRINT",
                                 optarg);
            access[ho.tls_access_len++] = (ravel_tls_access){.match = optarg + 3, .readonly = ro};
            ho.tls_access = access;
            break;
        }
        case OPT_MAX_CONN: {
            long v = strtol(optarg, &end, 10);
            if (!*optarg || *end || v < 1 || v > 1000000)
                return cli_usage(cmd, "--max-connections: expected a number from 1 to 1000000");
            ho.max_connections = (int)v;
            break;
        }
        case 'q':
            ho.verbose = 0;
            break;
        case 'h':
            cli_print_help(cmd);
            return EXIT_OK;
        default:
            return cli_bad_option(cmd, c, argv, long_options);
        }
    }
    if (optind == argc)
        return cli_usage(cmd, "serve needs a database directory");
    if (optind + 1 < argc)
        return cli_usage(cmd, "unexpected argument '%s'", argv[optind + 1]);
    if (!nlisten)
        return cli_usage(cmd, "serve needs at least one --listen ADDRESS");
    int any_tls = 0;
    for (int i = 0; i < nlisten; i++)
        any_tls |= strncmp(addr[i], "tls:", 4) == 0;
    if (any_tls && (!ho.tls_cert_file || !ho.tls_key_file))
        return cli_usage(cmd, "a tls: address needs --tls-cert FILE and --tls-key FILE");
    if (!any_tls && (ho.tls_cert_file || ho.tls_key_file || ho.tls_ca_file))
        return cli_usage(cmd, "--tls-cert, --tls-key and --tls-ca need a tls:HOST:PORT address");
    if (ho.tls_access_len && !ho.tls_ca_file)
        return cli_usage(cmd, "--tls-allow needs --tls-ca (client certificates)");
    char *dir = argv[optind];

    /* Blocked before any thread starts, so that every thread inherits the
     * mask and the signals wait for sigwait below. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    ravel_options o;
    ravel_options_init(&o);
    o.on_leader = on_leader;
    o.on_leader_ud = dir;
    ravel_db *db;
    ravel_host *h = NULL;
    int rc = ravel_open(&db, dir, &o);
    if (rc != RAVEL_OK)
        return cli_fail(rc, "cannot open %s", dir);
    if (ravel_db_role(db) == RAVEL_ROLE_FOLLOWER)
        fprintf(stderr,
                "ravel: following the process that leads %s: requests go to it (and this one "
                "takes over if it goes away)\n",
                dir);
    if ((rc = ravel_host_new(&h, db, &ho)) != RAVEL_OK)
        rc = cli_fail(rc, "cannot start the host");
    else
        rc = listen_all(h, addr, nlisten);
    if (rc == EXIT_OK) {
        puts("ready");
        fflush(stdout);
        int sig;
        sigwait(&set, &sig);
        fprintf(stderr, "ravel: %s received, shutting down\n",
                sig == SIGINT ? "SIGINT" : "SIGTERM");
    }
    ravel_host_free(h);
    ravel_db_close(db);
    return rc;
}
