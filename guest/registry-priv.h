/* SPDX-License-Identifier: Apache-2.0 */
/*
 * registry.c internals, for test/unit/guest/test-registry.c only.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

typedef enum registry_auth_scheme {
    REGISTRY_AUTH_NONE,
    REGISTRY_AUTH_BASIC,
    REGISTRY_AUTH_BEARER,
} registry_auth_scheme;

/* The challenge a client answers: Bearer when the header offers it, else Basic. */
typedef struct registry_challenge {
    registry_auth_scheme scheme;
    char *realm;   /* NULL when absent */
    char *service; /* Bearer only; NULL when absent */
    char *scope;   /* Bearer only; NULL when absent */
} registry_challenge;

void registry_challenge_clear(registry_challenge *ch);

/*
 * Parses one WWW-Authenticate value (RFC 7235: one or more challenges, "scheme param=value,
 * param="quoted \"string\"", ..."; schemes and parameter names are case-insensitive) into
 * *ret, keeping the Bearer challenge if there is one, else the Basic one. Other schemes are
 * skipped. -EINVAL on a syntax error or when no Bearer/Basic challenge is present (Bearer
 * without a realm too); *ret is written only on success.
 */
int registry_challenge_parse(const char *header, registry_challenge *ret, cc_error **err);

/*
 * Whether registry ("host" or "host:port", as written in image refs) is on the insecure list:
 * entry "host" matches only "host" written without a port, "host:port" only that port,
 * "host:*" the host with any port or none. Host names compare case-insensitively.
 */
bool registry_insecure_match(const char *const *list, size_t n, const char *registry);

/* "localhost", "[::1]" (or "::1") or an IPv4 address in 127.0.0.0/8. */
bool registry_host_is_loopback(const char *host);
