/* Watches of remote and party handles: each over a stream of its own to
 * the host or leader (extension "watch", docs/protocol-extensions.md),
 * read by the caller of next (or the callback form's thread). A watch's
 * stream carries nothing else, so it needs no place in the guest session
 * and the handle's loop thread never touches it; it reconnects by itself
 * and resumes after the last change it delivered. */
#ifndef RAVEL_GUEST_WATCH_H
#define RAVEL_GUEST_WATCH_H

#include "db/db.h"
#include "transport/address.h"

/* Watch through the host at `a` (unix or tcp; tls: RAVEL_ENOTSUP). */
int rv_sockwatch_new(const rv_address *a, const ravel_watch_options *o, ravel_watch **out);

/* Read (set NULL) or change the change log through the host at `a`. */
int rv_sock_changelog(const rv_address *a, int timeout_ms, const ravel_changelog *set,
                      ravel_changelog *out);

#endif
