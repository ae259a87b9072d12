/* What the data commands (get put del ls count clear dump load) share once
 * their arguments are parsed and the database is open. */
#ifndef RAVEL_CLI_DATA_H
#define RAVEL_CLI_DATA_H

#include "cli.h"
#include "ravel.h"

struct data_cmd {
    const cli_command *cmd;
    ravel_db *db;
    const char *target;  /* DIR or ADDRESS, for messages */
    int remote;          /* target is a host's ADDRESS (--connect) */
    int nargs;
    ravel_bound args[2]; /* the arguments after the target, decoded */
    unsigned dash;       /* bit i: argument i was given as "-" */
    ravel_range range;   /* from the range options */
    int bounded;         /* a bound or a limit narrows the range */
    int raw, force;
    const char *output;
    int if_value, if_absent; /* --if-value OLD (in old), --if-absent */
    ravel_bound old;
};

/* Report a failed operation on d's database; returns EXIT_FAIL. */
int data_fail(data_cmd *d, int status);

/* Call fn for every entry of d->range, in order; returns an exit code. */
typedef void (*data_entry_fn)(void *ud, const char *key, size_t klen, const char *val, size_t vlen);
int data_iterate(data_cmd *d, data_entry_fn fn, void *ud);
/* The same through read options (a snapshot); the iterator's status is
 * left in *status (RAVEL_END when it went through) for a caller that
 * tells RAVEL_ESNAPSHOT apart. */
int data_iterate_ro(data_cmd *d, const ravel_readoptions *ro, data_entry_fn fn, void *ud,
                    int *status);

#endif
