/* Listening sockets are made on the calling thread, so errors come back
 * with words before any event loop is involved. */
#ifndef RAVEL_TRANSPORT_SOCK_H
#define RAVEL_TRANSPORT_SOCK_H

#include "address.h"

/* A listening socket on a, in *fd. Unix: an existing socket file that
 * nobody answers on is replaced, one that answers is an error; the new
 * socket is owner-only (0600). Returns RAVEL_OK, RAVEL_EADDR or RAVEL_EIO
 * (with the message set). *port gets the bound TCP port. */
int rv_listen_fd(const rv_address *a, int *fd, int *port);

/* Options every TCP stream gets: requests are small and latency-bound, so
 * no Nagle delay. A no-op on other fds. */
void rv_tune_socket(int fd);

#endif
