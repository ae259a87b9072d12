/* Host internals used by party mode. */
#ifndef RAVEL_HOST_HOST_H
#define RAVEL_HOST_HOST_H

#include "ravel.h"
#include "transport/address.h"

/* ravel_host_listen for an address already made (party sockets whose
 * path is too long for sun_path go through /proc/self/fd). */
int rv_host_listen_address(ravel_host *h, const rv_address *a);

#endif
