/* Party mode: many processes open one directory. Whoever holds LevelDB's
 * lock leads — its operations go straight to LevelDB and its host serves
 * the others on <dir>/rave-level.sock (many-level's protocol, for
 * rave-level and ravel members) and <dir>/level-party.sock
 * (multileveldown 5's, for level-party 5 members) — and the others follow
 * over one of them. A follower whose stream ends runs an election on its
 * remote handle's loop thread: take the lock and lead, or connect to
 * whoever did: rave-level.sock first, level-party.sock when that is all
 * there is (a Node level-party leader serves only that one). */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "db/db.h"
#include "error.h"
#include "guest/remote.h"
#include "guest/watch.h"
#include "host/host.h"
#include "util/alloc.h"
#include "util/backoff.h"
#include "util/locks.h"

#define SOCKET_NAME "rave-level.sock"
#define GEN1_SOCKET_NAME "level-party.sock"
#define MAX_BACKOFF_MS 20 /* a follower that lost the race retries at least this often */

typedef struct party {
    ravel_db base;
    ravel_options opts;
    int retry;
    char dir[4096];        /* absolute */
    char sock_text[4200];  /* <dir>/rave-level.sock, for messages */
    int dirfd;             /* for socket paths longer than sun_path, else -1 */
    rv_address sock;
    int has_sock;
    rv_address gen1_sock;  /* <dir>/level-party.sock, RV_DIALECT_GEN1 */
    _Atomic int role;
    _Atomic int closing;
    int close_in_loop;     /* closed on the remote's loop thread: on_released finishes */
    ravel_db *local;       /* while leading */
    ravel_host *host;      /* while leading */
    rv_remote *remote;     /* once following */
    /* election state, on the remote's loop thread */
    uv_timer_t timer;
    /* The directory, watched for the socket's creation only (inotify
     * IN_CREATE/IN_MOVED_TO): a watch of every change (uv_fs_event) woke
     * every member for each write of the new leader replaying its log,
     * slowing the election of a party of ten by several milliseconds. */
    int inotify_fd;
    int wd;                /* the watch, or -1 */
    uv_poll_t watch;
    int handles_ready;
    int watching;
    int sock_changed;      /* the socket file changed during a connect */
    int locked;            /* the last step found the database locked */
    unsigned fails;
    rv_backoff backoff;
} party;

static const rv_db_ops party_ops;

/* The socket address; a path too long for sun_path goes through a
 * directory fd (/proc/self/fd/N/rave-level.sock), which Linux resolves in
 * bind() and connect() alike. Needs the directory to exist. */
static int make_sock_address(party *p)
{
    if (p->has_sock)
        return RAVEL_OK;
    memset(&p->sock, 0, sizeof p->sock);
    p->sock.is_unix = 1;
    snprintf(p->sock.text, sizeof p->sock.text, "unix:%.500s", p->sock_text);
    if (strlen(p->sock_text) < sizeof p->sock.path) {
        memcpy(p->sock.path, p->sock_text, strlen(p->sock_text) + 1);
    } else {
        p->dirfd = open(p->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (p->dirfd < 0)
            return RAVEL_EIO;
        snprintf(p->sock.path, sizeof p->sock.path, "/proc/self/fd/%d/%s", p->dirfd, SOCKET_NAME);
    }
    /* The same, for level-party's socket beside it. */
    memset(&p->gen1_sock, 0, sizeof p->gen1_sock);
    p->gen1_sock.is_unix = 1;
    p->gen1_sock.dialect = RV_DIALECT_GEN1;
    char gen1_text[sizeof p->dir + 32];
    snprintf(gen1_text, sizeof gen1_text, "%s/%s", p->dir, GEN1_SOCKET_NAME);
    snprintf(p->gen1_sock.text, sizeof p->gen1_sock.text, "multileveldown+unix:%.480s", gen1_text);
    if (strlen(gen1_text) < sizeof p->gen1_sock.path) {
        memcpy(p->gen1_sock.path, gen1_text, strlen(gen1_text) + 1);
    } else {
        if (p->dirfd < 0 && (p->dirfd = open(p->dir, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
            return RAVEL_EIO;
        snprintf(p->gen1_sock.path, sizeof p->gen1_sock.path, "/proc/self/fd/%d/%s", p->dirfd,
                 GEN1_SOCKET_NAME);
    }
    p->has_sock = 1;
    return RAVEL_OK;
}

/* A blocking connect to the leader's socket a: the fd, or -1 with errno
 * set. */
static int connect_to(party *p, const rv_address *a)
{
    if (make_sock_address(p) != RAVEL_OK)
        return -1;
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    memcpy(sun.sun_path, a->path, strlen(a->path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0) {
        int err = errno;
        close(fd);
        errno = err;
        return -1;
    }
    return fd;
}

/* Connect to the leader: on rave-level.sock, else on level-party.sock
 * (*gen1 set), where a Node level-party leader listens. A ravel leader
 * listens on rave-level.sock before level-party.sock, so when
 * level-party.sock answers, rave-level.sock is asked once more: a ravel
 * leader that came up between the two tries is reached with its
 * extensions, not through the first generation's protocol. The fd, or -1
 * with errno from rave-level.sock's attempt. */
static int connect_leader(party *p, int *gen1)
{
    *gen1 = 0;
    int fd = connect_to(p, &p->sock);
    if (fd >= 0 || errno == EACCES || errno == EPERM)
        return fd;
    int err = errno;
    int fd1 = connect_to(p, &p->gen1_sock);
    if (fd1 < 0) {
        errno = err;
        return -1;
    }
    fd = connect_to(p, &p->sock);
    if (fd >= 0) {
        close(fd1);
        return fd;
    }
    *gen1 = 1;
    return fd1;
}

/* The socket is there but not ours to use (it is owner-only): that will
 * not change by waiting for the lock, so say so at once. */
static int socket_forbidden(const party *p)
{
    struct stat st;
    char owner[64] = "";
    if (stat(p->sock.path, &st) == 0)
        snprintf(owner, sizeof owner, " (owned by uid %u, mode %o)", (unsigned)st.st_uid,
                 (unsigned)(st.st_mode & 07777));
    return rv_err(RAVEL_EIO,
                  "cannot join the party of %s: permission denied on %s%s; run as the user "
                  "who owns it",
                  p->dir, p->sock_text, owner);
}

/* We hold the lock: serve the directory, and from now on run our own
 * operations directly. Pending requests of a former follower reach the
 * database through a socketpair to our own host. */
static int become_leader(party *p, ravel_db *local)
{
    ravel_host *host;
    ravel_host_options ho;
    ravel_host_options_init(&ho);
    ho.max_frame = p->opts.max_frame;
    ho.busy_poll_us = p->opts.busy_poll_us;
    int rc = make_sock_address(p);
    if (rc != RAVEL_OK)
        return rv_err(rc, "cannot open directory %s to make its socket", p->dir);
    rc = ravel_host_new(&host, local, &ho);
    if (rc != RAVEL_OK)
        return rc;
    rc = rv_host_listen_address(host, &p->sock);
    if (rc == RAVEL_OK)
        rc = rv_host_listen_address(host, &p->gen1_sock);
    if (rc != RAVEL_OK) {
        ravel_host_free(host);
        return rc;
    }
    p->local = local;
    p->host = host;
    if (p->remote) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0 &&
            ravel_host_attach_fd(host, sv[0], sv[0]) == RAVEL_OK)
            rv_remote_adopt(p->remote, sv[1], sv[1]);
    }
    atomic_store(&p->role, RAVEL_ROLE_LEADER);
    if (p->opts.on_leader)
        p->opts.on_leader(p->opts.on_leader_ud);
    return RAVEL_OK;
}

/* Does another process hold LevelDB's lock on the directory? Read from
 * /proc/locks, which touches no file: asking fcntl means opening and
 * closing LOCK, which would drop every POSIX lock this process holds on
 * it; and LevelDB, asked to open a locked directory, first renames the
 * leader's LOG to LOG.old and starts an empty one (it sets up its log
 * before it takes the lock), waking every member that watches the
 * directory. 0 when unsure: LevelDB's open decides then. */
static int locked_elsewhere(const party *p)
{
    return rv_lock_holder(p->dir, getpid()) != 0;
}

/* Open the directory as its leader, unless another process visibly holds
 * it: RAVEL_ELOCKED without asking LevelDB then. */
static int try_lead(party *p, ravel_db **local)
{
    if (locked_elsewhere(p))
        return RAVEL_ELOCKED;
    return ravel_open_local(local, p->dir, &p->opts);
}

/* ---- the election, on the remote's loop thread ---- */

static void election_step(party *p);

static void on_timer(uv_timer_t *t)
{
    election_step(t->data);
}

static void socket_appeared(party *p)
{
    /* A new leader is about to listen. Do not wait for the backoff timer;
     * if a connect is under way, go again as soon as it fails. */
    if (uv_is_active((uv_handle_t *)&p->timer)) {
        uv_timer_stop(&p->timer);
        election_step(p);
    } else {
        p->sock_changed = 1;
    }
}

static void on_dir_change(uv_poll_t *w, int status, int events)
{
    party *p = w->data;
    (void)events;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    int seen = 0;
    ssize_t n;
    while ((n = read(p->inotify_fd, buf, sizeof buf)) > 0) {
        for (char *q = buf; q < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)q;
            if (ev->len && (strcmp(ev->name, SOCKET_NAME) == 0 ||
                            strcmp(ev->name, GEN1_SOCKET_NAME) == 0))
                seen = 1;
            q += sizeof *ev + ev->len;
        }
    }
    if (status == 0 && seen)
        socket_appeared(p);
}

static void retry_later(party *p)
{
    uv_timer_start(&p->timer, on_timer, rv_backoff_next(&p->backoff), 0);
}

static void election_step(party *p)
{
    if (atomic_load(&p->closing) || atomic_load(&p->role) == RAVEL_ROLE_LEADER)
        return;
    ravel_db *local;
    int rc = try_lead(p, &local);
    p->locked = rc == RAVEL_ELOCKED;
    if (rc == RAVEL_OK) {
        if (become_leader(p, local) == RAVEL_OK)
            return;
        ravel_db_close(local);
        p->fails++;
        retry_later(p);
    } else if (rc == RAVEL_ELOCKED) {
        /* Whoever answers, rave-level.sock first (a unix connect does not
         * block); if neither does, a connect to rave-level.sock whose
         * failure comes back as on_lost, with its errno. */
        int gen1;
        int fd = connect_leader(p, &gen1);
        if (fd >= 0) {
            rv_remote_set_address(p->remote, gen1 ? &p->gen1_sock : &p->sock);
            rv_remote_adopt_dialect(p->remote, fd, fd, gen1 ? RV_DIALECT_GEN1 : RV_DIALECT_MANY);
            return;
        }
        rv_remote_set_address(p->remote, &p->sock);
        rv_remote_connect(p->remote);
    } else {
        p->fails++;
        retry_later(p);
    }
}

static void on_lost(rv_remote *r, void *ud)
{
    party *p = ud;
    if (atomic_load(&p->closing) || atomic_load(&p->role) == RAVEL_ROLE_LEADER)
        return;
    if (!p->handles_ready) {
        uv_timer_init(rv_remote_loop(p->remote), &p->timer);
        p->timer.data = p;
        p->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (p->inotify_fd >= 0 && uv_poll_init(rv_remote_loop(p->remote), &p->watch, p->inotify_fd) != 0) {
            close(p->inotify_fd);
            p->inotify_fd = -1;
        }
        p->watch.data = p;
        p->handles_ready = 1;
    }
    /* Without a watch, the backoff timer alone finds the new leader. */
    if (!p->watching && p->inotify_fd >= 0 &&
        (p->wd = inotify_add_watch(p->inotify_fd, p->dir, IN_CREATE | IN_MOVED_TO)) >= 0) {
        uv_poll_start(&p->watch, UV_READABLE, on_dir_change);
        p->watching = 1;
    }
    /* The leader just went, or a new socket appeared: try at once. */
    if (p->fails++ == 0 || p->sock_changed) {
        p->sock_changed = 0;
        election_step(p);
    } else if (p->locked && p->watching && rv_remote_connect_error(r) == ECONNREFUSED) {
        /* Someone holds the lock and does not listen yet: the winner,
         * replaying the log. The watch says when its socket appears;
         * trying again meanwhile only takes CPU from it (each failed
         * LevelDB open also renames its LOG file, waking every watcher).
         * The timer is for a winner that dies before it listens. */
        uv_timer_start(&p->timer, on_timer, MAX_BACKOFF_MS, 0);
    } else {
        retry_later(p);
    }
}

static void on_up(rv_remote *r, void *ud)
{
    party *p = ud;
    (void)r;
    p->fails = 0;
    rv_backoff_reset(&p->backoff);
    p->sock_changed = 0;
    if (p->watching) {
        inotify_rm_watch(p->inotify_fd, p->wd);
        uv_poll_stop(&p->watch);
        p->watching = 0;
    }
}

static void on_watch_closed(uv_handle_t *h)
{
    party *p = h->data;
    close(p->inotify_fd);
    p->inotify_fd = -1;
}

static void on_shutdown(rv_remote *r, void *ud)
{
    party *p = ud;
    (void)r;
    if (p->handles_ready) {
        uv_close((uv_handle_t *)&p->timer, NULL);
        if (p->inotify_fd >= 0)
            uv_close((uv_handle_t *)&p->watch, on_watch_closed);
    }
}

static void on_released(void *ud);

/* ---- opening ---- */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void party_free(party *p)
{
    if (p->dirfd >= 0)
        close(p->dirfd);
    free(p);
}

int ravel_open(ravel_db **out, const char *dir, const ravel_options *opts)
{
    if (!out || !dir || !*dir)
        return rv_err(RAVEL_EINVAL, "result pointer or directory is NULL or empty");
    *out = NULL;
    party *p = rv_calloc(1, sizeof *p);
    if (!p)
        return rv_err(RAVEL_ENOMEM, "out of memory");
    p->base.ops = &party_ops;
    p->dirfd = -1;
    if (opts)
        p->opts = *opts;
    else
        ravel_options_init(&p->opts);
    p->retry = p->opts.retry != 0;
    /* Absolute, so the socket path is the same from every process. */
    if (dir[0] == '/') {
        snprintf(p->dir, sizeof p->dir, "%s", dir);
    } else {
        char cwd[2048];
        if (!getcwd(cwd, sizeof cwd)) {
            party_free(p);
            return rv_err(RAVEL_EIO, "cannot resolve %s: the current directory is unknown", dir);
        }
        snprintf(p->dir, sizeof p->dir, "%s/%s", cwd, dir);
    }
    size_t n = strlen(p->dir);
    while (n > 1 && p->dir[n - 1] == '/')
        p->dir[--n] = '\0';
    snprintf(p->sock_text, sizeof p->sock_text, "%s/%s", p->dir, SOCKET_NAME);

    double deadline = now_ms() + (p->opts.lock_timeout_ms > 0 ? p->opts.lock_timeout_ms : 0);
    rv_backoff_init(&p->backoff, 1, MAX_BACKOFF_MS);
    for (;;) {
        int gen1;
        int fd = connect_leader(p, &gen1);
        if (fd < 0 && (errno == EACCES || errno == EPERM)) {
            int rc = socket_forbidden(p);
            party_free(p);
            return rc;
        }
        if (fd >= 0) {
            rv_backoff_reset(&p->backoff);
            rv_remote_hooks hooks = {on_lost, on_up, on_shutdown, on_released, p};
            int rc = rv_remote_new(&p->remote, &p->opts, p->retry,
                                   gen1 ? &p->gen1_sock : &p->sock, &hooks, fd);
            if (rc != RAVEL_OK) {
                close(fd);
                party_free(p);
                return rc;
            }
            atomic_store(&p->role, RAVEL_ROLE_FOLLOWER);
            break;
        }
        ravel_db *local;
        int rc = try_lead(p, &local);
        if (rc == RAVEL_OK) {
            rc = become_leader(p, local);
            if (rc != RAVEL_OK) {
                ravel_db_close(local);
                party_free(p);
                return rc;
            }
            break;
        }
        if (rc != RAVEL_ELOCKED) {
            party_free(p);
            return rc;
        }
        if (now_ms() >= deadline) {
            rc = rv_err(RAVEL_ELOCKED,
                        "database %s is locked by a process that does not share it: nothing "
                        "answers on %s (waited %d ms)",
                        p->dir, p->sock_text, p->opts.lock_timeout_ms);
            party_free(p);
            return rc;
        }
        /* Someone holds the lock but does not listen yet: a leader being
         * born. Look again soon. */
        struct timespec ts = {0, (long)rv_backoff_next(&p->backoff) * 1000000L};
        nanosleep(&ts, NULL);
    }
    *out = &p->base;
    return RAVEL_OK;
}

/* ---- operations: straight to LevelDB while leading, else remote ---- */

static ravel_db *target(party *p)
{
    return atomic_load(&p->role) == RAVEL_ROLE_LEADER ? p->local : rv_remote_db(p->remote);
}

/* The request goes to the handle in use now, which owns it from then on
 * (and is the one a synchronous caller waits on). */
static int p_submit(ravel_db *d, rv_req *req)
{
    ravel_db *t = target((party *)d);
    return t->ops->submit(t, req);
}

static int p_iter_new(ravel_db *d, const ravel_range *r, const ravel_readoptions *ro,
                      ravel_iter **out)
{
    ravel_db *t = target((party *)d);
    return t->ops->iter_new(t, r, ro, out);
}

static int p_role(ravel_db *d)
{
    return atomic_load(&((party *)d)->role);
}

/* The rest of a close, once the remote handle is done with the party:
 * the host, then LevelDB, which releases the lock for the next leader. */
static void finish_close(party *p)
{
    ravel_host_free(p->host);
    ravel_db_close(p->local);
    party_free(p);
}

static void on_released(void *ud)
{
    party *p = ud;
    if (p->close_in_loop)
        finish_close(p);
}

/* First the remote (its loop runs elections and its hooks use the party),
 * then the rest. Closed from a callback on the remote's loop thread (an
 * asynchronous result, or on_leader after a failover), the remote can only
 * finish once that callback returns: the rest follows in on_released. */
static void p_close(ravel_db *d)
{
    party *p = (party *)d;
    atomic_store(&p->closing, 1);
    if (p->remote && rv_remote_in_loop(p->remote)) {
        p->close_in_loop = 1;
        ravel_db_close(rv_remote_db(p->remote));
        return;
    }
    if (p->remote)
        ravel_db_close(rv_remote_db(p->remote));
    finish_close(p);
}

/* A watch, and the change log, go through the directory's socket to
 * whoever leads — this handle's own host while it leads — so a watch
 * follows failovers by reconnecting there (guest/watch.c). */
static int p_watch(ravel_db *d, const ravel_watch_options *o, ravel_watch **out)
{
    party *p = (party *)d;
    if (make_sock_address(p) != RAVEL_OK)
        return rv_err(RAVEL_EIO, "cannot open directory %s for its socket", p->dir);
    return rv_sockwatch_new(&p->sock, o, out);
}

static int p_changelog(ravel_db *d, const ravel_changelog *set, ravel_changelog *out)
{
    party *p = (party *)d;
    if (make_sock_address(p) != RAVEL_OK)
        return rv_err(RAVEL_EIO, "cannot open directory %s for its socket", p->dir);
    return rv_sock_changelog(&p->sock, p->opts.lock_timeout_ms, set, out);
}

static const rv_db_ops party_ops = {
    .submit = p_submit,
    .iter_new = p_iter_new,
    .role = p_role,
    .close = p_close,
    .watch = p_watch,
    .changelog = p_changelog,
};
