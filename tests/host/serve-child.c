/* A host in its own process, for tests that kill it: serves a LevelDB
 * directory on an address, prints "ready" once listening, and exits on
 * SIGTERM or SIGINT. Usage: serve-child DIR ADDRESS [--readonly]
 * A tls: ADDRESS takes the host's certificate, key and client CA from
 * $RAVEL_TLS_CERT, $RAVEL_TLS_KEY and $RAVEL_TLS_CA, and prints
 * "ready PORT". */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ravel.h"

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s DIR ADDRESS [--readonly]\n", argv[0]);
        return 2;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    ravel_db *db;
    ravel_host *h;
    ravel_host_options ho;
    ravel_host_options_init(&ho);
    ho.readonly = argc > 3 && strcmp(argv[3], "--readonly") == 0;
    ho.tls_cert_file = getenv("RAVEL_TLS_CERT");
    ho.tls_key_file = getenv("RAVEL_TLS_KEY");
    ho.tls_ca_file = getenv("RAVEL_TLS_CA");
    int rc = ravel_open_local(&db, argv[1], NULL);
    if (rc == RAVEL_OK && (rc = ravel_host_new(&h, db, &ho)) == RAVEL_OK &&
        (rc = ravel_host_listen(h, argv[2])) != RAVEL_OK)
        ravel_host_free(h);
    if (rc != RAVEL_OK) {
        fprintf(stderr, "serve-child: %s\n", ravel_errmsg());
        return 1;
    }
    if (strncmp(argv[2], "tls:", 4) == 0)
        printf("ready %d\n", ravel_host_port(h));
    else
        printf("ready\n");
    fflush(stdout);
    int sig;
    sigwait(&set, &sig);
    ravel_host_free(h);
    ravel_db_close(db);
    return 0;
}
