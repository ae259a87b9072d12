#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "util/locks.h"

int rv_lock_holder(const char *dir, int skip_pid)
{
    char path[4200];
    struct stat st;
    if (snprintf(path, sizeof path, "%s/LOCK", dir) >= (int)sizeof path || stat(path, &st) != 0)
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
            strcmp(kind, "POSIX") == 0 && pid != skip_pid && ino == st.st_ino &&
            maj == major(st.st_dev) && min == minor(st.st_dev))
            holder = pid;
    }
    fclose(f);
    return holder;
}
