/* Whole-directory operations — destroying and repairing a database — and
 * the library's version. They run without a handle, so they first make
 * sure that nobody holds the directory. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <leveldb/c.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include "db/options.h"
#include "error.h"
#include "ravel.h"
#include "util/locks.h"

#define SOCKET_NAME "rave-level.sock"
#define STR_(x) #x
#define STR(x) STR_(x)

const char *ravel_version(void)
{
    return STR(RAVEL_VERSION_MAJOR) "." STR(RAVEL_VERSION_MINOR) "." STR(RAVEL_VERSION_PATCH);
}

int ravel_version_major(void)
{
    return RAVEL_VERSION_MAJOR;
}

int ravel_version_minor(void)
{
    return RAVEL_VERSION_MINOR;
}

int ravel_version_patch(void)
{
    return RAVEL_VERSION_PATCH;
}

static char leveldb_version[32];

static void make_leveldb_version(void)
{
    snprintf(leveldb_version, sizeof leveldb_version, "%d.%d", leveldb_major_version(),
             leveldb_minor_version());
}

const char *ravel_leveldb_version(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, make_leveldb_version);
    return leveldb_version;
}

/* Does a party answer on dir/rave-level.sock? A directory path too long
 * for sun_path is reached through /proc/self/fd. */
static int socket_live(const char *dir)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int dirfd = -1;
    if (snprintf(sun.sun_path, sizeof sun.sun_path, "%s/%s", dir, SOCKET_NAME) >=
        (int)sizeof sun.sun_path) {
        dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0)
            return 0;
        snprintf(sun.sun_path, sizeof sun.sun_path, "/proc/self/fd/%d/%s", dirfd, SOCKET_NAME);
    }
    int live = 0;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
        live = connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0;
        close(fd);
    }
    if (dirfd >= 0)
        close(dirfd);
    return live;
}

/* RAVEL_ELOCKED, saying who, while anyone holds dir; else RAVEL_OK. */
static int check_idle(const char *dir, const char *what)
{
    int pid = rv_lock_holder(dir, 0);
    if (pid == getpid())
        return rv_err(RAVEL_ELOCKED, "cannot %s %s: this process has it open (close its handles "
                                     "first); nothing was changed", what, dir);
    if (pid)
        return rv_err(RAVEL_ELOCKED, "cannot %s %s: process %d holds its LOCK (a LevelDB "
                                     "program or a party's leader); nothing was changed",
                      what, dir, pid);
    if (socket_live(dir))
        return rv_err(RAVEL_ELOCKED, "cannot %s %s: a party answers on %s/%s; nothing was "
                                     "changed", what, dir, dir, SOCKET_NAME);
    return RAVEL_OK;
}

/* dir must be a directory: RAVEL_OK, or RAVEL_EIO saying why not. */
static int check_dir(const char *dir, const char *what)
{
    struct stat st;
    if (stat(dir, &st) != 0)
        return rv_err(RAVEL_EIO, "cannot %s %s: %s", what, dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return rv_err(RAVEL_EIO, "cannot %s %s: it is not a directory", what, dir);
    return RAVEL_OK;
}

static int has_file(const char *dir, const char *name)
{
    char path[4200];
    struct stat st;
    return snprintf(path, sizeof path, "%s/%s", dir, name) < (int)sizeof path &&
           stat(path, &st) == 0;
}

static int ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), t = strlen(tail);
    return n >= t && strcmp(s + n - t, tail) == 0;
}

static int leveldb_name(const char *name);

/* Anything LevelDB's repair could rebuild from? */
static int has_leveldb_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int found = 0;
    struct dirent *e;
    while (!found && (e = readdir(d)))
        found = strcmp(e->d_name, "CURRENT") == 0 || leveldb_name(e->d_name);
    closedir(d);
    return found;
}

static void remove_in(const char *dir, const char *name)
{
    char path[4200];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) < (int)sizeof path)
        unlink(path);
}

/* Is name one that LevelDB gives its files (tables, logs, manifests)? */
static int leveldb_name(const char *name)
{
    return strncmp(name, "MANIFEST-", 9) == 0 || ends_with(name, ".ldb") ||
           ends_with(name, ".sst") || ends_with(name, ".log");
}

/* dir/lost: where LevelDB's repair sets aside the files it replaced. Its
 * LevelDB files go, and the folder when nothing else is in it. */
static void remove_lost(const char *dir)
{
    char lost[4200];
    if (snprintf(lost, sizeof lost, "%s/lost", dir) >= (int)sizeof lost)
        return;
    DIR *d = opendir(lost);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)))
        if (leveldb_name(e->d_name))
            remove_in(lost, e->d_name);
    closedir(d);
    rmdir(lost);
}

int ravel_destroy(const char *dir)
{
    if (!dir)
        return rv_err(RAVEL_EINVAL, "directory is NULL");
    int rc = check_dir(dir, "destroy");
    if (rc)
        return rc;
    if (!has_file(dir, "CURRENT"))
        return rv_err(RAVEL_EINVAL, "cannot destroy %s: no LevelDB database there (no CURRENT "
                                    "file); nothing was deleted", dir);
    rc = check_idle(dir, "destroy");
    if (rc)
        return rc;
    /* LevelDB takes the lock itself, so a process that opened the
     * directory since the check makes this fail instead. */
    leveldb_options_t *o = leveldb_options_create();
    char *err = NULL;
    leveldb_destroy_db(o, dir, &err);
    leveldb_options_destroy(o);
    if (err) {
        rc = rv_err_leveldb(err);
        char msg[600];
        snprintf(msg, sizeof msg, "%s", ravel_errmsg());
        return rv_err(rc, "cannot destroy %s: %s", dir, msg);
    }
    remove_in(dir, RV_OPTIONS_FILE);
    remove_in(dir, RV_OPTIONS_TMP);
    remove_in(dir, SOCKET_NAME); /* stale: nobody answered on it */
    remove_lost(dir);
    if (rmdir(dir) != 0 && errno != ENOTEMPTY && errno != EEXIST)
        return rv_err(RAVEL_EIO, "destroyed the database in %s but cannot remove the directory: "
                                 "%s", dir, strerror(errno));
    return RAVEL_OK;
}

int ravel_repair(const char *dir, const ravel_options *opts)
{
    if (!dir)
        return rv_err(RAVEL_EINVAL, "directory is NULL");
    ravel_options defaults;
    if (!opts) {
        ravel_options_init(&defaults);
        opts = &defaults;
    }
    int rc = check_dir(dir, "repair");
    if (rc)
        return rc;
    if (!has_leveldb_files(dir))
        return rv_err(RAVEL_EINVAL, "cannot repair %s: no LevelDB files there (no CURRENT, "
                                    "MANIFEST, table or log); nothing was changed", dir);
    rc = check_idle(dir, "repair");
    if (rc)
        return rc;
    /* LevelDB's repair takes no lock: hold LevelDB's LOCK (as its open
     * does, with fcntl) so that nobody opens the directory meanwhile. */
    char path[4200];
    if (snprintf(path, sizeof path, "%s/LOCK", dir) >= (int)sizeof path)
        return rv_err(RAVEL_EINVAL, "cannot repair %s: path too long", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return rv_err(RAVEL_EIO, "cannot repair %s: %s: %s", dir, path, strerror(errno));
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    if (fcntl(fd, F_SETLK, &fl) != 0) {
        int e = errno;
        close(fd);
        if (e == EAGAIN || e == EACCES)
            return rv_err(RAVEL_ELOCKED, "cannot repair %s: another process took its LOCK just "
                                         "now; nothing was changed", dir);
        return rv_err(RAVEL_EIO, "cannot repair %s: locking %s: %s", dir, path, strerror(e));
    }
    leveldb_options_t *o = leveldb_options_create();
    leveldb_filterpolicy_t *policy;
    rv_table_opts topts;
    rv_table_opts_resolve(dir, opts, &topts);
    rv_table_opts_apply(&topts, opts, o, &policy);
    char *err = NULL;
    leveldb_repair_db(o, dir, &err);
    leveldb_options_destroy(o);
    if (policy)
        leveldb_filterpolicy_destroy(policy);
    close(fd); /* drops the lock */
    if (err) {
        rc = rv_err_leveldb(err);
        char msg[600];
        snprintf(msg, sizeof msg, "%s", ravel_errmsg());
        return rv_err(rc, "cannot repair %s: %s", dir, msg);
    }
    return RAVEL_OK;
}
