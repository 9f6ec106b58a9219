/* SPDX-License-Identifier: Apache-2.0 */
/* exec.c: stub, being written. */
#define _GNU_SOURCE
#include "agent.h"

AGENT_HANDLER(agent_rpc_exec_process)
{
    (void)buf;
    (void)len;
    (void)userdata;
    cc_ttrpc_call_fail(call, CC_TTRPC_UNIMPLEMENTED, "not implemented yet");
}

AGENT_HANDLER(agent_rpc_tty_win_resize)
{
    (void)buf;
    (void)len;
    (void)userdata;
    cc_ttrpc_call_fail(call, CC_TTRPC_UNIMPLEMENTED, "not implemented yet");
}

AGENT_HANDLER(agent_rpc_read_stdio)
{
    (void)buf;
    (void)len;
    (void)userdata;
    cc_ttrpc_call_fail(call, CC_TTRPC_UNIMPLEMENTED, "not implemented yet");
}

