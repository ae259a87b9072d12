/* ravel info: what can be known cheaply about a database directory or a
 * host, without opening LevelDB — so it writes nothing anywhere, works on
 * a directory another user's process holds, and never waits for a lock.
 *
 * Who leads a directory: whoever answers on DIR/rave-level.sock, whose
 * pid SO_PEERCRED gives (the process that listens). A ravel host writes
 * an Announce (tag 64, docs/protocol-extensions.md) as its first frame;
 * a Node rave-level leader sends nothing until asked. Who holds LevelDB's
 * lock: /proc/locks. The members: the connected sockets bound to the
 * party's socket path, from /proc/net/unix. LevelDB's own figures come
 * from a ravel leader or host, asked over its socket (extension
 * "maintenance"): info never opens LevelDB itself. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli.h"
#include "format.h"
#include "ravel.h"

#define SOCKET_NAME "rave-level.sock"

/* What answers on a socket. */
typedef struct peer {
    int reached;      /* connected */
    int err;          /* errno of the failed connect */
    int pid;          /* SO_PEERCRED (unix sockets), else 0 */
    int ravel;        /* sent an Announce: a ravel host */
    unsigned version; /* its extensions version */
    char command[160];
} peer;

/* The command line of pid, its arguments joined by spaces (cut short). */
static void command_of(int pid, char *out, size_t size)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
    out[0] = '\0';
    FILE *f = fopen(path, "re");
    if (!f)
        return;
    size_t n = fread(out, 1, size - 1, f);
    fclose(f);
    out[n] = '\0';
    for (size_t i = 0; i + 1 < n; i++)
        if (out[i] == '\0')
            out[i] = ' ';
}

/* Is pid a Node process? Its executable is named node (or nodejs). */
static int is_node(int pid)
{
    char path[64], exe[4096];
    snprintf(path, sizeof path, "/proc/%d/exe", pid);
    ssize_t n = readlink(path, exe, sizeof exe - 1);
    if (n <= 0)
        return 0;
    exe[n] = '\0';
    const char *base = strrchr(exe, '/');
    base = base ? base + 1 : exe;
    return strcmp(base, "node") == 0 || strcmp(base, "nodejs") == 0;
}

/* A varint at *p (< end): its value, *p moved past it; -1 if cut short. */
static int64_t varint(const unsigned char **p, const unsigned char *end)
{
    uint64_t v = 0;
    for (int shift = 0; *p < end && shift < 64; shift += 7) {
        unsigned char b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return (int64_t)v;
    }
    return -1;
}

/* Wait up to ms for the host's first frame; an Announce (tag 64) says
 * ravel, and its field 1 the version. */
static void read_announce(int fd, peer *pr, int ms)
{
    unsigned char buf[256];
    size_t got = 0;
    while (got < sizeof buf) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, ms) <= 0)
            break;
        ssize_t n = read(fd, buf + got, sizeof buf - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        const unsigned char *q = buf, *end = buf + got;
        int64_t len = varint(&q, end);
        if (len < 0 || (size_t)(end - q) < (size_t)len)
            continue; /* the frame is not all here yet */
        if (len >= 1 && q[0] == 64) {
            pr->ravel = 1;
            const unsigned char *m = q + 1, *mend = q + len;
            if (m < mend && *m == 0x08) { /* field 1, varint */
                m++;
                int64_t v = varint(&m, mend);
                pr->version = v > 0 ? (unsigned)v : 0;
            }
        }
        break;
    }
}

/* Connect to a unix socket path (one longer than sun_path through its
 * directory's fd) or a TCP address, and see who answers. */
static void probe(const char *address, peer *pr)
{
    memset(pr, 0, sizeof *pr);
    int fd = -1, dirfd = -1;
    if (strncmp(address, "unix:", 5) == 0) {
        const char *path = address + 5;
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        if (strlen(path) < sizeof sun.sun_path) {
            memcpy(sun.sun_path, path, strlen(path) + 1);
        } else {
            char dir[4096];
            snprintf(dir, sizeof dir, "%s", path);
            char *slash = strrchr(dir, '/');
            if (slash)
                *slash = '\0';
            dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
            snprintf(sun.sun_path, sizeof sun.sun_path, "/proc/self/fd/%d/%s", dirfd,
                     slash ? slash + 1 : path);
        }
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0) {
            pr->err = errno;
            close(fd);
            fd = -1;
        }
    } else {
        char host[256];
        const char *rest = address + 4, *colon = strrchr(rest, ':');
        snprintf(host, sizeof host, "%.*s", (int)(colon - rest), rest);
        if (host[0] == '[') { /* tcp:[::1]:PORT */
            memmove(host, host + 1, strlen(host));
            host[strcspn(host, "]")] = '\0';
        }
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
        if (getaddrinfo(host, colon + 1, &hints, &res) != 0) {
            pr->err = EHOSTUNREACH;
            return;
        }
        fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
            pr->err = errno;
            close(fd);
            fd = -1;
        }
        freeaddrinfo(res);
    }
    if (dirfd >= 0)
        close(dirfd);
    if (fd < 0) {
        if (!pr->err)
            pr->err = errno;
        return;
    }
    pr->reached = 1;
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.pid > 0) {
        pr->pid = cred.pid;
        command_of(pr->pid, pr->command, sizeof pr->command);
    }
    if (!pr->pid || !is_node(pr->pid))
        read_announce(fd, pr, 1000);
    close(fd);
}

/* The pid holding a POSIX lock on path (LevelDB's LOCK), or 0. */
static int lock_holder(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return 0;
    FILE *f = fopen("/proc/locks", "re");
    if (!f)
        return 0;
    char line[256], kind[16];
    unsigned maj, min;
    unsigned long ino;
    int pid, holder = 0;
    while (!holder && fgets(line, sizeof line, f)) {
        if (sscanf(line, "%*d: %15s %*s %*s %d %x:%x:%lu", kind, &pid, &maj, &min, &ino) == 5 &&
            strcmp(kind, "POSIX") == 0 && ino == st.st_ino && maj == major(st.st_dev) &&
            min == minor(st.st_dev))
            holder = pid;
    }
    fclose(f);
    return holder;
}

/* Connected sockets bound to path: the party's members (and other
 * connections to it); -1 when /proc/net/unix cannot be read. A ravel
 * leader binds PATH.PID and renames it into place (so that the socket
 * appears already listening): /proc/net/unix shows the name it bound. */
static int connections_to(const char *path)
{
    FILE *f = fopen("/proc/net/unix", "re");
    if (!f)
        return -1;
    char line[4400];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned st;
        int off = 0;
        /* Num RefCount Protocol Flags Type St Inode Path */
        if (sscanf(line, "%*s %*s %*s %*s %*s %x %*u %n", &st, &off) != 1 || !off)
            continue;
        line[strcspn(line, "\n")] = '\0';
        const char *name = line + off, *rest = name + strlen(path);
        if (st == 3 && strncmp(name, path, strlen(path)) == 0 && /* SS_CONNECTED */
            (!*rest || (*rest == '.' && rest[1] && !rest[1 + strspn(rest + 1, "0123456789")])))
            n++;
    }
    fclose(f);
    return n;
}

/* LevelDB's figures, asked of a ravel leader or host. */
typedef struct stats {
    char *stats;           /* leveldb.stats, NULL if not known */
    char *memory;          /* leveldb.approximate-memory-usage */
    char *eo;              /* ravel.exactly-once */
    char why[256];         /* why not, when not */
} stats;

static void ask_stats(const char *address, const peer *p, stats *st)
{
    memset(st, 0, sizeof *st);
    if (!p->reached || !p->ravel) {
        snprintf(st->why, sizeof st->why, "%s",
                 !p->reached ? "nobody serves it (info does not open the database itself)"
                             : "the leader is not a ravel process");
        return;
    }
    ravel_options o;
    ravel_options_init(&o);
    o.retry = 0;
    o.connect_timeout_ms = 2000;
    ravel_db *db;
    int rc = ravel_connect(&db, address, &o);
    if (rc == RAVEL_OK) {
        rc = ravel_property_value(db, "leveldb.stats", &st->stats);
        if (rc == RAVEL_OK)
            rc = ravel_property_value(db, "leveldb.approximate-memory-usage", &st->memory);
        if (rc == RAVEL_OK && ravel_property_value(db, "ravel.exactly-once", &st->eo) != RAVEL_OK)
            st->eo = NULL; /* an older ravel leader: not known */
        if (rc != RAVEL_OK)
            snprintf(st->why, sizeof st->why, "%s", ravel_errmsg());
        ravel_db_close(db);
    } else {
        snprintf(st->why, sizeof st->why, "%s", ravel_errmsg());
    }
}

static void stats_free(stats *st)
{
    ravel_free(st->stats);
    ravel_free(st->memory);
    ravel_free(st->eo);
}

static void json_string(const char *s);

static void print_stats(const stats *st, int json)
{
    if (json) {
        fputs(",\"leveldb\":", stdout);
        if (st->stats) {
            fputs("{\"stats\":", stdout);
            json_string(st->stats);
            printf(",\"approximate_memory_bytes\":%s}", st->memory ? st->memory : "null");
            fputs(",\"exactly_once\":", stdout);
            if (st->eo)
                json_string(st->eo);
            else
                fputs("null", stdout);
        } else {
            fputs("null", stdout);
        }
        fputs(",\"entries\":null", stdout);
        return;
    }
    if (st->stats) {
        printf("memory     %s bytes (LevelDB's approximate memory use)\n",
               st->memory ? st->memory : "?");
        if (st->eo)
            printf("exactly-once %s", st->eo);
        printf("leveldb.stats, from the leader:\n%s", st->stats);
        if (!*st->stats || st->stats[strlen(st->stats) - 1] != '\n')
            putchar('\n');
    } else {
        printf("leveldb    stats not known: %s\n", st->why);
    }
    printf("entries    not counted: LevelDB keeps no count (ravel count counts them)\n");
}

/* The table options recorded when the database was created (the file
 * ravel-options: "name value" lines), as "name value, ..." text; empty
 * without a record. */
static void recorded_options(const char *dir, char *out, size_t cap)
{
    char path[8192], line[256], name[64];
    long long value;
    size_t n = 0;
    out[0] = '\0';
    snprintf(path, sizeof path, "%s/ravel-options", dir);
    FILE *f = fopen(path, "re");
    if (!f)
        return;
    while (fgets(line, sizeof line, f))
        if (line[0] != '#' && sscanf(line, "%63s %lld", name, &value) == 2 &&
            strcmp(name, "version") != 0 && n < cap)
            n += (size_t)snprintf(out + n, cap - n, "%s%s %lld", n ? ", " : "", name, value);
    fclose(f);
}

typedef struct dir_info {
    int database;
    unsigned long long bytes;
    unsigned files;
    int holder;            /* pid holding LOCK, 0 none */
    char holder_cmd[160];
    peer leader;
    int members;           /* -1 unknown */
    stats st;
    char options[512];     /* recorded_options */
} dir_info;

static int gather_dir(const char *dir, dir_info *in)
{
    memset(in, 0, sizeof *in);
    DIR *d = opendir(dir);
    if (!d)
        return cli_fail_errno("info: cannot read %s", dir);
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[8192];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (lstat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            in->bytes += (unsigned long long)st.st_size;
            in->files++;
        }
        if (strcmp(e->d_name, "CURRENT") == 0)
            in->database = 1;
    }
    closedir(d);
    char path[8192];
    snprintf(path, sizeof path, "%s/LOCK", dir);
    in->holder = lock_holder(path);
    recorded_options(dir, in->options, sizeof in->options);
    if (in->holder)
        command_of(in->holder, in->holder_cmd, sizeof in->holder_cmd);
    snprintf(path, sizeof path, "%s/" SOCKET_NAME, dir);
    in->members = connections_to(path); /* before our own probe connects */
    char address[8200];
    snprintf(address, sizeof address, "unix:%s", path);
    probe(address, &in->leader);
    ask_stats(address, &in->leader, &in->st);
    return EXIT_OK;
}

static const char *kind_of(const peer *p)
{
    return p->ravel ? "ravel" : p->pid && is_node(p->pid) ? "node" : "unknown";
}

static void json_string(const char *s)
{
    fmt_json_string(stdout, s, strlen(s));
}

static void print_dir(const char *dir, const dir_info *in, int json)
{
    const peer *l = &in->leader;
    if (json) {
        fputs("{\"directory\":", stdout);
        json_string(dir);
        printf(",\"database\":%s,\"size_bytes\":%llu,\"files\":%u,\"leader\":",
               in->database ? "true" : "false", in->bytes, in->files);
        if (l->reached) {
            printf("{\"pid\":%d,\"kind\":\"%s\",\"version\":%u,\"command\":", l->pid, kind_of(l),
                   l->version);
            json_string(l->command);
            putchar('}');
        } else {
            fputs("null", stdout);
        }
        fputs(",\"lock_holder\":", stdout);
        if (in->holder) {
            printf("{\"pid\":%d,\"command\":", in->holder);
            json_string(in->holder_cmd);
            putchar('}');
        } else {
            fputs("null", stdout);
        }
        printf(",\"members\":");
        if (l->reached && in->members >= 0)
            printf("%d", in->members);
        else
            fputs("null", stdout);
        print_stats(&in->st, 1);
        fputs(",\"recorded_options\":", stdout);
        if (in->options[0])
            json_string(in->options);
        else
            fputs("null", stdout);
        puts("}");
        return;
    }
    printf("directory  %s\n", dir);
    printf("database   %s\n", in->database ? "yes (LevelDB: a CURRENT file)" : "none here");
    printf("size       %llu bytes on disk, %u files\n", in->bytes, in->files);
    if (in->database)
        printf("options    %s\n", in->options[0] ? in->options
                                                 : "none recorded (made by LevelDB, Node or an older ravel)");
    if (l->reached) {
        printf("leader     pid %d, %s", l->pid,
               l->ravel ? "ravel" : is_node(l->pid) ? "Node (rave-level)" : "not ravel (no announcement)");
        if (l->ravel)
            printf(" (protocol extensions version %u)", l->version);
        printf("%s%s\n", l->command[0] ? ": " : "", l->command);
        if (in->members >= 0)
            printf("members    %d connected to its socket\n", in->members);
    } else if (in->holder) {
        printf("leader     none: pid %d holds LevelDB's lock and does not share it%s%s\n",
               in->holder, in->holder_cmd[0] ? ": " : "", in->holder_cmd);
    } else if (l->err == EACCES) {
        printf("leader     unknown: permission denied on %s/" SOCKET_NAME "\n", dir);
    } else {
        printf("leader     none: nobody holds the directory\n");
    }
    if (in->database)
        print_stats(&in->st, 0);
}

static void print_host(const char *address, const peer *p, const stats *st, int json)
{
    if (json) {
        fputs("{\"address\":", stdout);
        json_string(address);
        printf(",\"reachable\":%s", p->reached ? "true" : "false");
        if (!p->reached) {
            fputs(",\"error\":", stdout);
            json_string(strerror(p->err));
        } else {
            printf(",\"pid\":");
            if (p->pid)
                printf("%d", p->pid);
            else
                fputs("null", stdout);
            printf(",\"kind\":\"%s\",\"version\":%u,\"command\":", kind_of(p), p->version);
            json_string(p->command);
            print_stats(st, 1);
        }
        puts("}");
        return;
    }
    printf("address    %s\n", address);
    if (!p->reached) {
        printf("host       not reachable: %s\n", strerror(p->err));
        return;
    }
    printf("host       %s", p->ravel ? "ravel" : "not ravel (no announcement: Node many-level?)");
    if (p->ravel)
        printf(" (protocol extensions version %u)", p->version);
    putchar('\n');
    if (p->pid)
        printf("pid        %d%s%s\n", p->pid, p->command[0] ? ": " : "", p->command);
    print_stats(st, 0);
}

int info_main(const cli_command *cmd, int argc, char **argv)
{
    static const struct option long_options[] = {
        {"connect", required_argument, NULL, 'c'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *connect_to = NULL;
    int json = 0, c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:jh", long_options, NULL)) != -1) {
        switch (c) {
        case 'c': connect_to = optarg; break;
        case 'j': json = 1; break;
        case 'h':
            cli_print_help(cmd);
            return EXIT_OK;
        default:
            return cli_bad_option(cmd, c, argv, long_options);
        }
    }
    int npos = argc - optind;
    if (connect_to && npos)
        return cli_usage(cmd, "unexpected argument '%s' (with --connect there is no DIR)",
                         argv[optind]);
    if (!connect_to && npos != 1)
        return npos ? cli_usage(cmd, "unexpected argument '%s'", argv[optind + 1])
                    : cli_usage(cmd, "info needs a database directory, or --connect ADDRESS");
    if (connect_to) {
        char address[1024];
        const char *bad = cli_address(address, sizeof address, connect_to)
                              ? "address too long"
                              : cli_check_address(address);
        if (bad)
            return cli_usage(cmd, "--connect %s: %s", connect_to, bad);
        peer p;
        stats st;
        probe(address, &p);
        ask_stats(address, &p, &st);
        print_host(connect_to, &p, &st, json);
        stats_free(&st);
        if (!p.reached) {
            fprintf(stderr, "ravel: info: %s cannot be reached: %s\n", connect_to, strerror(p.err));
            return EXIT_FAIL;
        }
        return EXIT_OK;
    }
    const char *dir = argv[optind];
    struct stat st;
    if (stat(dir, &st) != 0)
        return cli_fail_errno("info: cannot open %s", dir);
    if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr, "ravel: info: %s is not a directory\n", dir);
        return EXIT_FAIL;
    }
    dir_info in;
    int rc = gather_dir(dir, &in);
    if (rc != EXIT_OK)
        return rc;
    print_dir(dir, &in, json);
    stats_free(&in.st);
    if (!in.database) {
        fprintf(stderr, "ravel: info: no LevelDB database at %s\n", dir);
        return EXIT_FAIL;
    }
    return EXIT_OK;
}
