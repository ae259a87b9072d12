/* Stream addresses as users write them: "unix:PATH", "tcp:HOST:PORT" or
 * "tls:HOST:PORT" (TCP with TLS on it; HOST may be a name, an IPv4 address
 * or a bracketed IPv6 address). A "multileveldown+" prefix before unix: or
 * tcp: declares the first generation's protocol (multileveldown 5) for
 * every stream of that address; without it, many-level's. */
#ifndef RAVEL_TRANSPORT_ADDRESS_H
#define RAVEL_TRANSPORT_ADDRESS_H

#include <sys/socket.h>
#include <sys/un.h>

/* Which protocol a stream speaks: declared by its address (or its party
 * socket), never guessed from its bytes (a many-level Iterator is a valid
 * multileveldown frame that means "close"). */
enum { RV_DIALECT_MANY = 0, RV_DIALECT_GEN1 = 1 };
#define RV_GEN1_PREFIX "multileveldown+"

typedef struct rv_address {
    int is_unix;
    int dialect;                /* RV_DIALECT_* */
    int is_tls;                 /* tls:HOST:PORT */
    char host[256];             /* tcp, tls: HOST as given (no brackets);
                                 * what a TLS guest checks the host's
                                 * certificate against */
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    struct sockaddr_storage sa; /* tcp: resolved address */
    char text[512];             /* as given, for messages */
} rv_address;

/* Parse (and for tcp, resolve) an address. RAVEL_OK or RAVEL_EADDR with a
 * message that says what is wrong. */
int rv_address_parse(rv_address *a, const char *text);

#endif
