/* Who holds a LevelDB directory's lock, without touching the lock. */
#ifndef RAVEL_UTIL_LOCKS_H
#define RAVEL_UTIL_LOCKS_H

/* The pid of a process holding a POSIX lock on dir/LOCK, other than
 * skip_pid (0: skip none, this process counts too), from /proc/locks:
 * asking fcntl means opening and closing LOCK, which would drop every
 * lock this process holds on it. 0: none seen, or no way to tell. */
int rv_lock_holder(const char *dir, int skip_pid);

#endif
