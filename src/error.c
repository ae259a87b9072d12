#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char errmsg[512];

const char *ravel_strerror(int status)
{
    switch (status) {
#define X(name, value, wire, msg) \
    case RAVEL_##name:            \
        return msg;
        RAVEL_ERRNO_MAP(X)
#undef X
    }
    return "unknown status";
}

const char *ravel_errname(int status)
{
    switch (status) {
#define X(name, value, wire, msg) \
    case RAVEL_##name:            \
        return "RAVEL_" #name;
        RAVEL_ERRNO_MAP(X)
#undef X
    }
    return "RAVEL_UNKNOWN";
}

const char *ravel_errmsg(void)
{
    return errmsg[0] ? errmsg : "no error";
}

void ravel_free(void *ptr)
{
    free(ptr);
}

int rv_err(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errmsg, sizeof errmsg, fmt, ap);
    va_end(ap);
    return code;
}

int rv_err_leveldb(char *errptr)
{
    /* LevelDB reports the kind of an error only as a prefix of its text. */
    int code = RAVEL_EIO;
    if (strncmp(errptr, "Corruption: ", 12) == 0)
        code = RAVEL_ECORRUPT;
    else if (strncmp(errptr, "NotFound: ", 10) == 0 || strncmp(errptr, "Invalid argument: ", 18) == 0)
        code = RAVEL_EINVAL;
    else if (strncmp(errptr, "Not implemented: ", 17) == 0)
        code = RAVEL_ENOTSUP;
    else if (strstr(errptr, "/LOCK: ") && (strstr(errptr, "temporarily unavailable") || strstr(errptr, "already held")))
        code = RAVEL_ELOCKED;
    rv_err(code, "%s", errptr);
    free(errptr);
    return code;
}

const char *rv_wire_error(int code)
{
    switch (code) {
#define X(name, value, wire, msg)     \
    case RAVEL_##name:                \
        if (wire)                     \
            return wire;              \
        break;
        RAVEL_ERRNO_MAP(X)
#undef X
    }
    return "LEVEL_REMOTE_ERROR";
}

int rv_code_from_wire(const char *s)
{
#define X(name, value, wire, msg)                  \
    if (wire && strcmp(s, wire ? wire : "") == 0) \
        return RAVEL_##name;
    RAVEL_ERRNO_MAP(X)
#undef X
    return RAVEL_EREMOTE;
}
