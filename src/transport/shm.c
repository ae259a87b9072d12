/* Shared-memory rings (shm.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "transport/shm.h"
#include "util/buf.h"

#define SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

int rv_shm_host_supported(void)
{
    static _Atomic int known; /* 0 not yet asked, 1 yes, 2 no */
    int k = atomic_load(&known);
    if (!k) {
        /* No waiters is invalid where the call exists. */
        long rc = syscall(SYS_futex_waitv, NULL, 0, 0, NULL, 0);
        k = rc < 0 && errno == ENOSYS ? 2 : 1;
        atomic_store(&known, k);
    }
    return k == 1;
}

static void ring_init(rv_ring *r, rv_ring_ctl *ctl, uint8_t *data, uint32_t size)
{
    r->ctl = ctl;
    r->data = data;
    r->size = size;
    r->pos = 0;
}

static void *map(int fd, size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    return p == MAP_FAILED ? NULL : p;
}

int rv_shm_create(rv_shm *sh)
{
    memset(sh, 0, sizeof *sh);
    int fd = memfd_create("ravel-shm", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -1;
    rv_shm_hdr *h = NULL;
    if (ftruncate(fd, (off_t)RV_SHM_BYTES) != 0 || fcntl(fd, F_ADD_SEALS, SEALS) != 0 ||
        !(h = map(fd, RV_SHM_BYTES))) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    h->magic = RV_SHM_MAGIC;
    h->version = RV_SHM_VERSION;
    h->ring_size = RV_SHM_RING;
    sh->hdr = h;
    sh->bytes = RV_SHM_BYTES;
    uint8_t *base = (uint8_t *)h + RV_SHM_DATA_OFF;
    ring_init(&sh->tx, &h->in, base, RV_SHM_RING);
    ring_init(&sh->rx, &h->out, base + RV_SHM_RING, RV_SHM_RING);
    return fd;
}

int rv_shm_attach(rv_shm *sh, int fd)
{
    memset(sh, 0, sizeof *sh);
    struct stat st;
    int seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0 || (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW) ||
        fstat(fd, &st) != 0 || (uint64_t)st.st_size != RV_SHM_BYTES)
        return -1;
    rv_shm_hdr *h = map(fd, RV_SHM_BYTES);
    if (!h)
        return -1;
    if (h->magic != RV_SHM_MAGIC || h->version != RV_SHM_VERSION || h->ring_size != RV_SHM_RING) {
        munmap(h, RV_SHM_BYTES);
        return -1;
    }
    sh->hdr = h;
    sh->bytes = RV_SHM_BYTES;
    uint8_t *base = (uint8_t *)h + RV_SHM_DATA_OFF;
    ring_init(&sh->rx, &h->in, base, RV_SHM_RING);
    ring_init(&sh->tx, &h->out, base + RV_SHM_RING, RV_SHM_RING);
    /* Start from what the guest published: it may have written already. */
    sh->rx.pos = atomic_load(&h->in.tail);
    sh->tx.pos = atomic_load(&h->out.head);
    if (sh->rx.pos != 0 || sh->tx.pos != 0) {
        rv_shm_unmap(sh);
        return -1;
    }
    return 0;
}

void rv_shm_unmap(rv_shm *sh)
{
    if (sh->hdr)
        munmap(sh->hdr, sh->bytes);
    memset(sh, 0, sizeof *sh);
}

size_t rv_ring_write(rv_ring *r, const void *p, size_t n)
{
    uint64_t tail = atomic_load_explicit(&r->ctl->tail, memory_order_acquire);
    uint64_t used = r->pos - tail;
    if (used > r->size)
        used = r->size; /* a peer's nonsense: write nothing */
    size_t room = r->size - (size_t)used;
    if (n > room)
        n = room;
    if (!n)
        return 0;
    size_t at = (size_t)(r->pos & (r->size - 1));
    size_t first = r->size - at < n ? r->size - at : n;
    memcpy(r->data + at, p, first);
    memcpy(r->data, (const uint8_t *)p + first, n - first);
    r->pos += n;
    atomic_store(&r->ctl->head, r->pos); /* seq_cst: see rv_ring_notify */
    return n;
}

int rv_ring_room(const rv_ring *r)
{
    return r->pos - atomic_load(&r->ctl->tail) < r->size;
}

int rv_ring_send(rv_ring *r, rv_buf *b)
{
    int moved = 0;
    while (b->len) {
        size_t n = rv_ring_write(r, b->data, b->len);
        if (!n) {
            atomic_store(&r->ctl->writer_waiting, 1);
            n = rv_ring_write(r, b->data, b->len); /* room made meanwhile */
            if (!n)
                break;
        }
        rv_buf_consume(b, n);
        moved = 1;
    }
    return moved;
}

uint64_t rv_ring_avail(const rv_ring *r)
{
    uint64_t head = atomic_load_explicit(&r->ctl->head, memory_order_acquire);
    uint64_t n = head - r->pos;
    return n > r->size ? UINT64_MAX : n;
}

void rv_ring_peek(const rv_ring *r, uint64_t off, void *p, size_t n)
{
    size_t at = (size_t)((r->pos + off) & (r->size - 1));
    size_t first = r->size - at < n ? r->size - at : n;
    memcpy(p, r->data + at, first);
    memcpy((uint8_t *)p + first, r->data, n - first);
}

void rv_ring_take(rv_ring *r, size_t n)
{
    r->pos += n;
    atomic_store(&r->ctl->tail, r->pos);
}

void rv_futex_wake(_Atomic uint32_t *word)
{
    syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

void rv_futex_wait(_Atomic uint32_t *word, uint32_t val)
{
    syscall(SYS_futex, word, FUTEX_WAIT, val, NULL, NULL, 0);
}

void rv_futex_wait_ms(_Atomic uint32_t *word, uint32_t val, int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    syscall(SYS_futex, word, FUTEX_WAIT, val, &ts, NULL, 0);
}

void rv_ring_poke(rv_ring *r)
{
    atomic_fetch_add(&r->ctl->seq, 1);
    rv_futex_wake(&r->ctl->seq);
}

int rv_ring_notify(rv_ring *r)
{
    if (atomic_load(&r->ctl->sleeping))
        rv_ring_poke(r);
    return atomic_load(&r->ctl->doorbell) && atomic_exchange(&r->ctl->doorbell, 0);
}

int rv_ring_room_wanted(rv_ring *r)
{
    return atomic_load(&r->ctl->writer_waiting) && atomic_exchange(&r->ctl->writer_waiting, 0);
}

void rv_ring_wait(rv_ring *r, const _Atomic int *stop, int timeout_ms)
{
    uint32_t seq = atomic_load(&r->ctl->seq);
    atomic_store(&r->ctl->sleeping, 1);
    if (rv_ring_avail(r) == 0 && !(stop && atomic_load(stop))) {
        struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L};
        syscall(SYS_futex, &r->ctl->seq, FUTEX_WAIT, seq, timeout_ms < 0 ? NULL : &ts, NULL, 0);
    }
    atomic_store(&r->ctl->sleeping, 0);
}

long rv_send_fd(int sock, const void *buf, size_t len, int fd)
{
    struct iovec iov = {(void *)buf, len};
    union {
        char b[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof u);
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b,
                       .msg_controllen = sizeof u.b};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    return sendmsg(sock, &m, MSG_NOSIGNAL);
}

long rv_recv_fd(int sock, void *buf, size_t len, int *fd)
{
    struct iovec iov = {buf, len};
    union {
        char b[CMSG_SPACE(4 * sizeof(int))];
        struct cmsghdr align;
    } u;
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b,
                       .msg_controllen = sizeof u.b};
    long n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
    if (n < 0)
        return n;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            int got;
            memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof got);
            if (*fd < 0)
                *fd = got;
            else
                close(got);
        }
    }
    return n;
}
