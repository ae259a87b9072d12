/* Shared-memory rings: a byte stream between two processes on one machine
 * that costs no system call while both ends are awake (extension "shm",
 * docs/protocol-extensions.md).
 *
 * A guest makes one memfd per stream holding two rings, guest to host
 * ("in", the host's input) and host to guest ("out"), and hands it to the
 * host over the unix socket (SCM_RIGHTS). From then on the frames travel
 * through the rings, exactly the bytes the socket would have carried; the
 * socket stays for liveness (its end is the stream's end) and for the
 * doorbell byte below.
 *
 * Each ring is single-producer, single-consumer: `head` counts the bytes
 * the producer ever wrote, `tail` those the consumer took; each end keeps
 * its own count privately and only publishes it, so a peer that scribbles
 * on the shared page can make this end see a protocol error, never read or
 * write outside the ring. Waking, in both directions the same way: a
 * consumer about to sleep sets `sleeping`, looks once more, and sleeps on
 * the futex `seq`; a producer that published bytes and finds `sleeping`
 * set bumps `seq` and wakes it (the two sequentially consistent accesses on
 * each side see each other, so no wake-up is lost). A consumer that cannot
 * sleep on a futex (the guest's libuv loop) sets `doorbell` instead, and
 * the producer then writes one byte to the socket. A producer that finds
 * the ring full sets `writer_waiting`; the consumer, having made room,
 * wakes it the same way as above on the other ring.
 *
 * The memfd is sealed against growing and shrinking before it is handed
 * over, so the host's mapping cannot turn into SIGBUS under it. */
#ifndef RAVEL_TRANSPORT_SHM_H
#define RAVEL_TRANSPORT_SHM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define RV_SHM_MAGIC 0x6c657661u /* "avel", little endian */
#define RV_SHM_VERSION 1
/* Bytes in each ring (a power of two). */
#define RV_SHM_RING (256u << 10)

typedef struct rv_ring_ctl {
    _Atomic uint64_t head;           /* written by the producer */
    _Atomic uint32_t seq;            /* futex: bumped to wake the consumer */
    _Atomic uint32_t sleeping;       /* the consumer sleeps on seq */
    _Atomic uint32_t doorbell;       /* the consumer waits for a socket byte */
    char pad0[64 - 20];
    _Atomic uint64_t tail;           /* written by the consumer */
    _Atomic uint32_t writer_waiting; /* the producer waits for room */
    char pad1[64 - 12];
} rv_ring_ctl;

typedef struct rv_shm_hdr {
    uint32_t magic, version, ring_size, reserved;
    char pad[64 - 16];
    rv_ring_ctl in, out;
} rv_shm_hdr;

#define RV_SHM_DATA_OFF 4096u
#define RV_SHM_BYTES (RV_SHM_DATA_OFF + 2 * (size_t)RV_SHM_RING)

/* One end's view of one ring. */
typedef struct rv_ring {
    rv_ring_ctl *ctl;
    uint8_t *data;
    uint32_t size;  /* power of two */
    uint64_t pos;   /* this end's own count: head (producer) or tail (consumer) */
} rv_ring;

/* A mapped pair of rings: `rx` is what this end reads, `tx` what it
 * writes. */
typedef struct rv_shm {
    rv_shm_hdr *hdr;
    size_t bytes;
    rv_ring rx, tx;
} rv_shm;

/* Does this kernel have what a host needs (futex_waitv, Linux 5.16)? A
 * host without it offers no "shm". */
int rv_shm_host_supported(void);

/* Guest: make a sealed memfd with both rings, map it, and set *sh up as
 * the guest's end. Returns the fd (to hand over, then close) or -1 with
 * errno. */
int rv_shm_create(rv_shm *sh);
/* Host: map a memfd from a guest and set *sh up as the host's end, after
 * checking its seals, size and header. 0, or -1 (the fd is not a ring
 * pair this host can use; nothing is mapped). Does not close fd. */
int rv_shm_attach(rv_shm *sh, int fd);
void rv_shm_unmap(rv_shm *sh);

/* Producer: copy up to n bytes in; returns how many fit (0 when full). */
size_t rv_ring_write(rv_ring *r, const void *p, size_t n);
/* Producer: is there room for a byte? */
int rv_ring_room(const rv_ring *r);
/* Producer: move what b holds into the ring, as far as it fits, taking
 * it out of b; when it does not all fit, set writer_waiting (the consumer
 * then wakes the producer once it made room). Returns 1 when bytes moved;
 * the caller then wakes the consumer (rv_ring_notify). */
struct rv_buf;
int rv_ring_send(rv_ring *r, struct rv_buf *b);
/* Consumer: bytes waiting, or (uint64_t)-1 when the peer's head makes no
 * sense (a protocol error). */
uint64_t rv_ring_avail(const rv_ring *r);
/* Consumer: copy n bytes starting `off` bytes past the tail, without
 * taking them (n + off <= rv_ring_avail). */
void rv_ring_peek(const rv_ring *r, uint64_t off, void *p, size_t n);
/* Consumer: take n bytes (n <= rv_ring_avail). */
void rv_ring_take(rv_ring *r, size_t n);

/* Producer, after writing: wake the consumer if it sleeps on the futex.
 * Returns 1 when the consumer asked for a doorbell byte (and clears the
 * request): the caller writes one to the socket. */
int rv_ring_notify(rv_ring *r);
/* Consumer, after taking: if the producer waits for room, clear that and
 * return 1; the caller wakes it (rv_ring_poke on the other ring). */
int rv_ring_room_wanted(rv_ring *r);
/* Wake whoever sleeps on r's futex, whatever it waits for. */
void rv_ring_poke(rv_ring *r);

/* Consumer: sleep until bytes come or *stop is set (checked between
 * wake-ups; whoever sets it pokes the ring), at most timeout_ms (< 0: no
 * limit). Returns at once when bytes are there. */
void rv_ring_wait(rv_ring *r, const _Atomic int *stop, int timeout_ms);

/* futex(2) on a word in shared memory. */
void rv_futex_wake(_Atomic uint32_t *word);
void rv_futex_wait(_Atomic uint32_t *word, uint32_t val);
/* The same, for at most ms milliseconds. */
void rv_futex_wait_ms(_Atomic uint32_t *word, uint32_t val, int ms);

/* sendmsg/recvmsg with one fd as SCM_RIGHTS. rv_send_fd: as send(2)
 * (MSG_NOSIGNAL). rv_recv_fd: as read(2); *fd gets a received fd (close-
 * on-exec) or stays -1; extra fds are closed. */
long rv_send_fd(int sock, const void *buf, size_t len, int fd);
long rv_recv_fd(int sock, void *buf, size_t len, int *fd);

#endif
