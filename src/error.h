/* Status codes: the one place where LevelDB's error texts and the wire's
 * error strings become RAVEL_E* codes, and where the per-thread detail
 * message behind ravel_errmsg() is set. */
#ifndef RAVEL_ERROR_H
#define RAVEL_ERROR_H

#include "ravel.h"

/* Set this thread's detail message (printf-style) and return `code`. */
int rv_err(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Map a LevelDB error string (from an errptr) to a code, set the detail
 * message to it, free it, and return the code. */
int rv_err_leveldb(char *errptr);

/* The wire's error string for a code ("LEVEL_NOT_FOUND"…); codes without one
 * travel as "LEVEL_REMOTE_ERROR". */
const char *rv_wire_error(int code);

/* The code for a wire error string; unknown strings are RAVEL_EREMOTE. */
int rv_code_from_wire(const char *s);

#endif
