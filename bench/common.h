/*
 * Helpers shared by the benchmark programs (ravel-bench, ravel-failover):
 * clocks, percentiles, scratch directories under $TMPDIR; and for
 * ravel-bench's files, the failure path, the standard workloads' keys and
 * values, child processes and the cells of the report's tables.
 */
#ifndef RAVEL_BENCH_COMMON_H
#define RAVEL_BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t now_ns(void);

/* A clock's reading in seconds (for CPU-time clocks as well). */
double clock_seconds(clockid_t clock);

/* Sort v ascending. */
void sort_doubles(double *v, size_t n);

/* The p-quantile (0 <= p <= 1) of n >= 1 sorted values, interpolating
 * linearly between the two nearest ranks, so that p = 0.5 of an even count
 * is the mean of the middle two. */
double percentile(const double *sorted, size_t n, double p);

/* Wait for child pid to end (through EINTR); returns its wait status. */
int reap(pid_t pid);

/* Make a fresh directory "$TMPDIR/<prefix>.XXXXXX" (/tmp without TMPDIR)
 * and write its path to out. Returns 0, or -1 with a message on stderr. */
int make_scratch_dir(char *out, size_t size, const char *prefix);

/* Remove a directory tree; reports what it cannot remove on stderr. */
void remove_tree(const char *path);

/* ---- Failures: the main process cleans up, a child only exits ---- */

/* What cleanup() removes, set by the program: the main process (the only
 * one that cleans up), the server and measuring children (-1: none), the
 * scratch directory ("": none). */
/* The options every ravel handle of the benchmarks opens with: the
 * defaults, with shared memory as --no-shm says (g_shared_memory, set
 * before any fork). */
struct ravel_options;
extern int g_shared_memory;
const struct ravel_options *bench_options(void);

extern pid_t g_main_pid;
extern pid_t g_server; /* a variant's leader or host process */
extern pid_t g_worker; /* the measuring (or scanning) process */
extern char g_root[4096];

/* Leave nothing behind: kill and reap the children named above, remove
 * the scratch directory. */
void cleanup(void);

/* In the main process cleanup() and exit(1); in a child _exit(1), which
 * the main process sees as a failure. */
_Noreturn void fail(void);

/* fail() after "ravel-bench: what: detail" on stderr. */
_Noreturn void die(const char *what, const char *detail);

/* fail() after the code's name and ravel_errmsg(), which is per thread:
 * call it on the thread whose call failed, right after it. */
_Noreturn void die_ravel(const char *what, int status);

/* fail() after the code alone, for a failure reported to a callback: it
 * happened on the I/O thread, whose ravel_errmsg() this thread cannot
 * see. */
_Noreturn void die_async(const char *what, int status);

/* fail() after LevelDB's message err, which it frees. */
_Noreturn void die_leveldb(const char *what, char *err);

/* Write all of buf to a pipe or socket, or die. */
void write_full(int fd, const void *buf, size_t len);

/* Read len bytes; returns the bytes read, fewer than len only at end of
 * file. Dies on an error. */
size_t read_full(int fd, void *buf, size_t len);

/* ---- The standard workloads' data ---- */

#define KEY_LEN 16 /* "k" + 15 zero-padded decimal digits */
#define KEY_DIGITS 15
#define VALUE_LEN 100
#define FILLER_SPREAD 128
#define GET_SEQ_SEED 0x9E3779B97F4A7C15ULL  /* the random key order of W3 */
#define GET_PIPE_SEED 0xD1B54A32D192ED03ULL /* and of W4 */

/* Values are windows into one fixed pseudo-random buffer: deterministic,
 * different from key to key (so LevelDB does not see one value repeated),
 * and free to produce, so the timing measures the database, not us.
 * bench_node.js builds the same buffer. Filled by init_filler(). */
extern char g_filler[VALUE_LEN + FILLER_SPREAD];
void init_filler(void);

/* The key of index: "k" and the index as KEY_DIGITS digits (no NUL). */
void make_key(char key[KEY_LEN], uint64_t index);

/* The VALUE_LEN bytes of the value of index (in g_filler). */
const char *value_for(uint64_t index);

/* xorshift64: a fixed seed gives every variant the same sequence. */
uint64_t next_random(uint64_t *state);

/* ---- Processes ---- */

/* Fork a child that writes to this process through a pipe, flushing
 * stdio first (what is still buffered would be printed by both). Returns
 * 0 in the child, with *fd the pipe's write end, and the child's pid here,
 * with *fd its read end. Dies on failure. */
pid_t fork_piped(int *fd);

/* Run argv (looked up on PATH) with its stdout read into out (at most
 * size - 1 bytes, NUL-terminated) and its stderr ours. Returns its exit
 * status, or -1 if it did not exit (127: it could not be run). */
int spawn_capture(char *const argv[], char *out, size_t size);

/* Run fn(arg, fd) in a child process (g_worker while it runs), which
 * writes `size` bytes of results to fd — no more than a pipe holds, as
 * they are read once the child has exited; wait for it and read them into
 * out. Fails the run, saying `what`, unless the child exits 0 having
 * written them all. */
void run_child(const char *what, void (*fn)(const void *arg, int fd), const void *arg, void *out,
               size_t size);

/* ---- A crew: member processes released together ---- */

#define CREW_MAX 8      /* members */
#define CREW_RELEASES 4 /* releases of one crew */

/* Fork `members` processes one at a time: member i runs fn(i, arg) and
 * exits 0 when it returns. fn must call crew_ready() once it has opened
 * its database — the next member is forked only then, so that the first
 * one to open a party's directory leads — and then crew_wait() once for
 * each of the `releases` crew_release() calls of the main process, in
 * order. cleanup() kills the members. One crew at a time; a process that
 * the main process forks while a crew runs holds the crew's next release
 * back until it exits (it inherits the pipes). */
void crew_start(int members, int releases, void (*fn)(int index, const void *arg),
                const void *arg);

/* In a member: say that it has opened its database (see crew_start). */
void crew_ready(void);

/* In a member: wait for the main process's next crew_release(). */
void crew_wait(void);

/* In a member: send size bytes (at most PIPE_BUF, so that the write is
 * never split) to the main process. */
void crew_send(const void *msg, size_t size);

/* In the main process: release at once every member waiting in
 * crew_wait() (end of file on a pipe they all read). Returns the time of
 * the release (CLOCK_MONOTONIC ns, read just before). */
uint64_t crew_release(void);

/* In the main process: what member `index` sent with crew_send(), in the
 * order it sent it. Fails the run if the member ended first. */
void crew_receive(int index, void *msg, size_t size);

/* In the main process: make the releases not yet made, and wait for every
 * member to exit; fails the run unless all exit 0. */
void crew_end(void);

/* ---- Report cells (markdown) ---- */

/* " v |" formatted with fmt, or " - |" when v is NAN. */
void print_value(double v, const char *fmt);

/* a / b, NAN when either side is missing (b <= 0 or a NAN). */
double ratio(double a, double b);

/* A ratio cell: a/b, or "-" when either is missing. */
void print_ratio(double a, double b);

/* The head of the targets table. */
void print_target_header(void);

/* One row of the targets table: `got` against the line `want` (at least,
 * or at most when at_most), "-" when it could not be measured. */
void print_target(const char *what, double got, double want, int at_most, const char *fmt);

#endif
