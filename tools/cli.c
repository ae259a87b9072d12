/* Messages and addresses shared by the commands. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "ravel.h"

static void say(const char *fmt, va_list ap)
{
    fputs("ravel: ", stderr);
    vfprintf(stderr, fmt, ap);
}

int cli_usage(const cli_command *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    say(fmt, ap);
    va_end(ap);
    if (cmd)
        fprintf(stderr, "\n(run 'ravel help %s' for usage)\n", cmd->name);
    else
        fputs("\n(run 'ravel --help' for usage)\n", stderr);
    return EXIT_USAGE;
}

int cli_fail(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    say(fmt, ap);
    va_end(ap);
    /* The detail often repeats the code's meaning; say it once then. */
    const char *words = ravel_strerror(status), *detail = ravel_errmsg();
    if (strcmp(detail, words) == 0 || strcmp(detail, "no error") == 0)
        fprintf(stderr, ": %s\n", words);
    else
        fprintf(stderr, ": %s (%s)\n", words, detail);
    return EXIT_FAIL;
}

int cli_fail_errno(const char *fmt, ...)
{
    int err = errno;
    va_list ap;
    va_start(ap, fmt);
    say(fmt, ap);
    va_end(ap);
    fprintf(stderr, ": %s\n", strerror(err));
    return EXIT_FAIL;
}

const char *cli_option_name(const struct option *longopts, int val)
{
    for (const struct option *o = longopts; o->name; o++)
        if (o->val == val)
            return o->name;
    return "?";
}

int cli_bad_option(const cli_command *cmd, int c, char **argv, const struct option *longopts)
{
    if (c == ':')
        return cli_usage(cmd, "--%s needs a value", cli_option_name(longopts, optopt));
    /* optopt is the character of an unknown short option, 0 for a long one
     * (which getopt has stepped over). */
    if (optopt)
        return cli_usage(cmd, "unknown option -%c for %s", optopt, cmd->name);
    return cli_usage(cmd, "unknown option %s for %s", argv[optind - 1], cmd->name);
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The first generation's protocol (multileveldown 5) on an address. */
#define GEN1_PREFIX "multileveldown+"
#define GEN1_LEN (sizeof GEN1_PREFIX - 1)

int cli_address(char *out, size_t size, const char *address)
{
    if (strncmp(address, GEN1_PREFIX, GEN1_LEN) == 0) {
        if (size <= GEN1_LEN)
            return -1;
        memcpy(out, GEN1_PREFIX, GEN1_LEN);
        return cli_address(out + GEN1_LEN, size - GEN1_LEN, address + GEN1_LEN);
    }
    const char *rest = address + 4;
    int n;
    if (strncmp(address, "tcp:", 4) != 0 && strncmp(address, "tls:", 4) != 0)
        n = snprintf(out, size, "%s", address);
    else if (*rest == ':')
        n = snprintf(out, size, "%.4s127.0.0.1%s", address, rest);
    else if (*rest && strspn(rest, "0123456789") == strlen(rest))
        n = snprintf(out, size, "%.4s127.0.0.1:%s", address, rest);
    else
        n = snprintf(out, size, "%s", address);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

const char *cli_check_address(const char *address)
{
    if (strncmp(address, GEN1_PREFIX, GEN1_LEN) == 0) {
        address += GEN1_LEN;
        if (strncmp(address, "unix:", 5) != 0 && strncmp(address, "tcp:", 4) != 0)
            return "multileveldown+ goes before unix:PATH or tcp:HOST:PORT (multileveldown 5 "
                   "has no TLS)";
    }
    if (strncmp(address, "unix:", 5) == 0)
        return address[5] ? NULL : "unix: needs a socket path (unix:PATH)";
    if (strncmp(address, "tcp:", 4) != 0 && strncmp(address, "tls:", 4) != 0)
        return "not an address: give unix:PATH, tcp:HOST:PORT, tcp:PORT or tls:HOST:PORT "
               "(multileveldown+unix:PATH or multileveldown+tcp:... for multileveldown 5)";
    const char *port = strrchr(address + 4, ':');
    if (!port)
        return "a tcp or tls address needs a port: tcp:HOST:PORT, tcp:PORT, tls:HOST:PORT";
    port++;
    char *end;
    errno = 0;
    long n = strtol(port, &end, 10);
    if (!*port || *end || n < 0 || n > 65535 || errno)
        return "the port must be a number from 0 to 65535";
    return NULL;
}
