/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agent's boot configuration, read from the kernel command line (/proc/cmdline) that
 * vmm/vm.c writes:
 *
 *   console=ttyS0 quiet panic=-1 cloak.agent=serial|vsock [cloak.net=ADDR/PREFIX[,GATEWAY]]
 *   [cloak.log=debug|info|warning|error] [cloak.registry.insecure=LIST]
 *   [cloak.registry.loopback=ADDR]
 *
 * cloak.registry.insecure: comma-separated registries pulled over plain HTTP (at most
 * AGENT_REGISTRY_INSECURE_MAX), each "host", "host:port" or "host:*" (guest/registry.h: "host"
 * matches only the registry written without a port, "host:*" with any port or none); host is
 * a DNS name, an IPv4 address or "[IPv6]". cloak.registry.loopback: an IPv4 address at which
 * registries named localhost, 127.0.0.0/8 or [::1] are reached (QEMU user networking: the
 * host's loopback is 10.0.2.2).
 *
 * Pure parsing: no I/O, no logging.
 */
#pragma once

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>

#include "error.h"

typedef enum agent_channel {
    AGENT_CHANNEL_SERIAL,
    AGENT_CHANNEL_VSOCK,
    _AGENT_CHANNEL_MAX,
    _AGENT_CHANNEL_INVALID = -EINVAL,
} agent_channel;

typedef struct agent_boot_config {
    agent_channel channel;      /* cloak.agent=serial|vsock; default serial */
    bool net;                   /* cloak.net= given */
    struct in_addr net_addr;    /* e.g. 10.0.2.15 */
    unsigned net_prefix;        /* 1..32, e.g. 24 */
    struct in_addr net_gateway; /* e.g. 10.0.2.2; INADDR_ANY (0) when the value had none */
    int log_level;              /* cloak.log= as a cc_log_level; default CC_LOG_INFO */
    char **registry_insecure;   /* cloak.registry.insecure=, NULL-terminated; NULL when none */
    size_t n_registry_insecure;
    bool has_registry_loopback;       /* cloak.registry.loopback= given */
    struct in_addr registry_loopback; /* e.g. 10.0.2.2 */
} agent_boot_config;

#define AGENT_REGISTRY_INSECURE_MAX 32

/*
 * Parses a kernel command line: words separated by white space, possibly ending in '\n';
 * double quotes group words as the kernel allows (cloak.log="debug", "cloak.net=a/b") and
 * are dropped. Unknown words are ignored; a repeated key keeps its last value (as the kernel
 * does). A bad value of a cloak.* key is -EINVAL with a message naming the key and value
 * ("cloak.net: bad prefix '33'"); an unknown cloak.* key is ignored (newer host).
 * *ret is written only on success (it then owns allocations: agent_boot_config_clear()).
 * Never blocks.
 */
int agent_cmdline_parse(const char *cmdline, agent_boot_config *ret, cc_error **err);

/* Frees what agent_cmdline_parse() allocated in c and zeroes those fields. NULL-safe. */
void agent_boot_config_clear(agent_boot_config *c);

/* "serial", "vsock"; "unknown" otherwise. */
const char *agent_channel_to_string(agent_channel c);
