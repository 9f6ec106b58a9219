/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agent's boot configuration, read from the kernel command line (/proc/cmdline) that
 * vmm/vm.c writes:
 *
 *   console=ttyS0 quiet panic=-1 cloak.agent=serial|vsock [cloak.net=ADDR/PREFIX[,GATEWAY]]
 *   [cloak.log=debug|info|warning|error]
 *
 * Pure parsing: no I/O, no logging.
 */
#pragma once

#include <netinet/in.h>
#include <stdbool.h>

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
} agent_boot_config;

/*
 * Parses a kernel command line: words separated by white space, possibly ending in '\n';
 * double quotes group words as the kernel allows (cloak.log="debug", "cloak.net=a/b") and
 * are dropped. Unknown words are ignored; a repeated key keeps its last value (as the kernel
 * does). A bad value of a cloak.* key is -EINVAL with a message naming the key and value
 * ("cloak.net: bad prefix '33'"); an unknown cloak.* key is ignored (newer host).
 * *ret is written only on success. Never blocks.
 */
int agent_cmdline_parse(const char *cmdline, agent_boot_config *ret, cc_error **err);

/* "serial", "vsock"; "unknown" otherwise. */
const char *agent_channel_to_string(agent_channel c);
