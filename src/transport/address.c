#include "address.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

int rv_address_parse(rv_address *a, const char *text)
{
    memset(a, 0, sizeof *a);
    if (!text)
        return rv_err(RAVEL_EADDR, "address is NULL");
    snprintf(a->text, sizeof a->text, "%s", text);
    if (strncmp(text, RV_GEN1_PREFIX, strlen(RV_GEN1_PREFIX)) == 0) {
        const char *rest = text + strlen(RV_GEN1_PREFIX);
        if (strncmp(rest, "unix:", 5) != 0 && strncmp(rest, "tcp:", 4) != 0)
            return rv_err(RAVEL_EADDR,
                          "address %s: expected " RV_GEN1_PREFIX "unix:PATH or " RV_GEN1_PREFIX
                          "tcp:HOST:PORT", text);
        int rc = rv_address_parse(a, rest);
        snprintf(a->text, sizeof a->text, "%s", text);
        a->dialect = RV_DIALECT_GEN1;
        return rc;
    }
    if (strncmp(text, "unix:", 5) == 0) {
        const char *path = text + 5;
        if (!*path)
            return rv_err(RAVEL_EADDR, "address %s has an empty socket path", text);
        if (strlen(path) >= sizeof a->path)
            return rv_err(RAVEL_EADDR,
                          "socket path %s is %zu bytes; unix sockets allow at most %zu",
                          path, strlen(path), sizeof a->path - 1);
        a->is_unix = 1;
        memcpy(a->path, path, strlen(path) + 1);
        return RAVEL_OK;
    }
    if (strncmp(text, "tcp:", 4) != 0 && strncmp(text, "tls:", 4) != 0)
        return rv_err(RAVEL_EADDR,
                      "address %s: expected unix:PATH, tcp:HOST:PORT or tls:HOST:PORT", text);
    a->is_tls = text[1] == 'l';
    char *host = a->host;
    const size_t hostsz = sizeof a->host;
    const char *rest = text + 4, *port;
    if (*rest == '[') {
        const char *close = strchr(rest, ']');
        if (!close || close[1] != ':')
            return rv_err(RAVEL_EADDR, "address %s: expected %.3s:[IPV6]:PORT", text, text);
        snprintf(host, hostsz, "%.*s", (int)(close - rest - 1), rest + 1);
        port = close + 2;
    } else {
        const char *colon = strrchr(rest, ':');
        if (!colon)
            return rv_err(RAVEL_EADDR, "address %s has no port (%.3s:HOST:PORT)", text, text);
        snprintf(host, hostsz, "%.*s", (int)(colon - rest), rest);
        port = colon + 1;
    }
    char *end;
    long p = strtol(port, &end, 10);
    if (!*port || *end || p < 0 || p > 65535)
        return rv_err(RAVEL_EADDR, "address %s: port must be a number from 0 to 65535", text);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    int rc = getaddrinfo(host[0] ? host : "127.0.0.1", port, &hints, &res);
    if (rc != 0)
        return rv_err(RAVEL_EADDR, "address %s: cannot resolve host %s: %s", text, host,
                      gai_strerror(rc));
    memcpy(&a->sa, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return RAVEL_OK;
}
