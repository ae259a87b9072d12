/* ravel destroy and ravel repair: whole-directory operations, refused
 * while any process holds the directory. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli.h"
#include "ravel.h"

/* Parse "[--force] DIR" (force == NULL: no --force). */
static int parse(const cli_command *cmd, int argc, char **argv, int *force, const char **dir)
{
    static const struct option long_options[] = {
        {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static const struct option no_force[] = {
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const struct option *longopts = force ? long_options : no_force;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, force ? ":fh" : ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': *force = 1; break;
        case 'h':
            cli_print_help(cmd);
            return -1;
        default:
            return cli_bad_option(cmd, c, argv, longopts);
        }
    }
    if (argc - optind != 1)
        return argc - optind ? cli_usage(cmd, "unexpected argument '%s'", argv[optind + 1])
                             : cli_usage(cmd, "%s needs a database directory", cmd->name);
    *dir = argv[optind];
    return EXIT_OK;
}

int destroy_main(const cli_command *cmd, int argc, char **argv)
{
    int force = 0;
    const char *dir;
    int rc = parse(cmd, argc, argv, &force, &dir);
    if (rc)
        return rc < 0 ? EXIT_OK : rc;
    if (!force) {
        if (!isatty(STDIN_FILENO))
            return cli_usage(cmd, "destroy deletes the database %s and ALL its entries: add "
                                  "--force to mean it (stdin is not a terminal to ask)", dir);
        fprintf(stderr, "destroy the database %s and ALL its entries? [y/N] ", dir);
        char answer[16] = "";
        if (!fgets(answer, sizeof answer, stdin))
            putc('\n', stderr);
        answer[strcspn(answer, "\n")] = '\0';
        if (strcasecmp(answer, "y") != 0 && strcasecmp(answer, "yes") != 0) {
            fprintf(stderr, "ravel: destroy: not confirmed, nothing deleted\n");
            return EXIT_FAIL;
        }
    }
    rc = ravel_destroy(dir);
    if (rc != RAVEL_OK)
        return cli_fail(rc, "destroy");
    return EXIT_OK;
}

int repair_main(const cli_command *cmd, int argc, char **argv)
{
    const char *dir;
    int rc = parse(cmd, argc, argv, NULL, &dir);
    if (rc)
        return rc < 0 ? EXIT_OK : rc;
    rc = ravel_repair(dir, NULL);
    if (rc != RAVEL_OK)
        return cli_fail(rc, "repair");
    return EXIT_OK;
}
