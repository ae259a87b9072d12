#include "sock.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"

static socklen_t sa_len(const struct sockaddr_storage *sa)
{
    return sa->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

static int unix_sockaddr(const rv_address *a, struct sockaddr_un *sun)
{
    memset(sun, 0, sizeof *sun);
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, a->path, strlen(a->path) + 1);
    return 0;
}

int rv_listen_fd(const rv_address *a, int *out, int *port)
{
    *port = 0;
    if (a->is_unix) {
        struct sockaddr_un sun;
        unix_sockaddr(a, &sun);
        struct stat st;
        if (lstat(a->path, &st) == 0) {
            if (!S_ISSOCK(st.st_mode)) {
                return rv_err(RAVEL_EADDR,
                              "cannot listen on %s: a file that is not a socket is there", a->path);
            }
            /* A socket file: stale if nobody answers on it. */
            int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
            int live = probe >= 0 && connect(probe, (struct sockaddr *)&sun, sizeof sun) == 0;
            if (probe >= 0)
                close(probe);
            if (live) {
                return rv_err(RAVEL_EADDR, "cannot listen on %s: another process is serving there",
                              a->path);
            }
        }
        /* Made listening under a temporary name, then renamed into place
         * (over a stale socket): whoever sees the socket appear can
         * connect at once. Bound under its own name when the temporary
         * one would not fit in sun_path. */
        struct sockaddr_un tmp;
        memcpy(&tmp, &sun, sizeof tmp);
        int n = snprintf(tmp.sun_path, sizeof tmp.sun_path, "%s.%ld", a->path, (long)getpid());
        int renamed = n > 0 && (size_t)n < sizeof tmp.sun_path;
        if (renamed)
            unlink(tmp.sun_path);
        else
            unlink(a->path);
        const char *bound = renamed ? tmp.sun_path : a->path;
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *)(renamed ? &tmp : &sun), sizeof sun) != 0) {
            int rc = rv_err(RAVEL_EIO, "cannot listen on %s: %s", a->path, strerror(errno));
            if (fd >= 0)
                close(fd);
            return rc;
        }
        /* Owner-only, set before listen() so no one else can connect. */
        if (chmod(bound, 0600) != 0 || listen(fd, 511) != 0 ||
            (renamed && rename(bound, a->path) != 0)) {
            int rc = rv_err(RAVEL_EIO, "cannot listen on %s: %s", a->path, strerror(errno));
            close(fd);
            unlink(bound);
            return rc;
        }
        *out = fd;
        return RAVEL_OK;
    }
    int fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, (const struct sockaddr *)&a->sa, sa_len(&a->sa)) != 0 || listen(fd, 511) != 0) {
        int rc = errno == EADDRINUSE
                     ? rv_err(RAVEL_EADDR, "cannot listen on %s: the address is already in use "
                                           "(another process listens there)", a->text)
                     : rv_err(RAVEL_EIO, "cannot listen on %s: %s", a->text, strerror(errno));
        if (fd >= 0)
            close(fd);
        return rc;
    }
    struct sockaddr_storage bound;
    socklen_t len = sizeof bound;
    if (getsockname(fd, (struct sockaddr *)&bound, &len) == 0)
        *port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                  : ((struct sockaddr_in *)&bound)->sin_port);
    *out = fd;
    return RAVEL_OK;
}

void rv_tune_socket(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}
