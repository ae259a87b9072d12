/* The ravel command: what its parts share — exit codes, the table of
 * commands, messages on stderr, addresses. */
#ifndef RAVEL_CLI_H
#define RAVEL_CLI_H

#include <stddef.h>

/* Exit codes, stable: scripts test them. */
enum { EXIT_OK = 0, EXIT_NOTFOUND = 1, EXIT_USAGE = 2, EXIT_FAIL = 3, EXIT_CONFLICT = 4 };

/* Options a data command accepts besides the common ones (--connect,
 * --escapes, --help). */
enum {
    OPTS_RANGE = 1 << 0,   /* --gt --gte --lt --lte --prefix --limit --reverse */
    OPTS_PROJECT = 1 << 1, /* --keys --values */
    OPTS_RAW = 1 << 2,     /* --raw */
    OPTS_FORCE = 1 << 3,   /* --force */
    OPTS_OUTPUT = 1 << 4,  /* --output FILE */
    OPTS_IF = 1 << 5,      /* --if-value OLD (and for put --if-absent) */
};

/* Parts of the help that several commands share. */
enum { DOC_TEXT = 1 << 0, DOC_LINES = 1 << 1 };

typedef struct data_cmd data_cmd;

typedef struct cli_command {
    const char *name;
    const char *usage;   /* what follows "ravel NAME" in the synopsis */
    const char *summary; /* one line for 'ravel --help' */
    const char *help;    /* the rest of 'ravel help NAME' */
    int (*main)(const struct cli_command *cmd, int argc, char **argv);
    /* Data commands only (main == data_main). */
    unsigned opts;          /* OPTS_* */
    unsigned docs;          /* DOC_*: shared help sections that apply */
    int min_args, max_args; /* positional arguments after DIR */
    int byte_args;          /* they are keys and values (-e applies) */
    int creates;            /* create the database when DIR holds none */
    int (*run)(data_cmd *d);
} cli_command;

/* 'ravel help NAME': the command's synopsis, help, and the shared parts
 * that apply to it. */
void cli_print_help(const cli_command *cmd);

/* Print "ravel: MESSAGE" and a pointer to --help on stderr; returns
 * EXIT_USAGE. */
int cli_usage(const cli_command *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Print "ravel: WHAT: " and the library's words for `status` on stderr;
 * returns EXIT_FAIL. */
int cli_fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Print "ravel: WHAT: " and strerror(errno) on stderr; returns EXIT_FAIL. */
int cli_fail_errno(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

struct option;

/* The usage error for what getopt_long returned as c, ':' (a missing
 * value) or '?' (an unknown option), with longopts to name options. */
int cli_bad_option(const cli_command *cmd, int c, char **argv, const struct option *longopts);

/* The long name of the option whose getopt value is val. */
const char *cli_option_name(const struct option *longopts, int val);

/* CLOCK_MONOTONIC in seconds. */
double cli_now(void);

/* Copy `address` to out, making tcp:PORT and tcp::PORT bind or reach
 * loopback (tcp:127.0.0.1:PORT), and the same for tls:; anything else is
 * copied as it is.
 * Returns 0, or -1 when it does not fit. */
int cli_address(char *out, size_t size, const char *address);

/* What is wrong with an address (after cli_address), or NULL when it has
 * the form unix:PATH or tcp:HOST:PORT. Checked before anything is opened,
 * so a typo is a usage error with nothing done. */
const char *cli_check_address(const char *address);

int serve_main(const cli_command *cmd, int argc, char **argv);
int demo_main(const cli_command *cmd, int argc, char **argv);
int info_main(const cli_command *cmd, int argc, char **argv);
int destroy_main(const cli_command *cmd, int argc, char **argv);
int repair_main(const cli_command *cmd, int argc, char **argv);
int data_main(const cli_command *cmd, int argc, char **argv);

/* The data commands, run by data_main once the target is open. */
int data_get(data_cmd *d);
int data_put(data_cmd *d);
int data_del(data_cmd *d);
int data_ls(data_cmd *d);
int data_count(data_cmd *d);
int data_clear(data_cmd *d);
int data_dump(data_cmd *d);
int data_load(data_cmd *d);
int data_backup(data_cmd *d);
int data_compact(data_cmd *d);

#endif
