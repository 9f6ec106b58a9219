/* SPDX-License-Identifier: Apache-2.0 */
/* network.c: stub, being written. */
#define _GNU_SOURCE
#include "agent.h"

AGENT_HANDLER(agent_rpc_update_interface)
{
    (void)buf;
    (void)len;
    (void)userdata;
    cc_ttrpc_call_fail(call, CC_TTRPC_UNIMPLEMENTED, "not implemented yet");
}

AGENT_HANDLER(agent_rpc_update_routes)
{
    (void)buf;
    (void)len;
    (void)userdata;
    cc_ttrpc_call_fail(call, CC_TTRPC_UNIMPLEMENTED, "not implemented yet");
}

AGENT_HANDLER(agent_rpc_list_interfaces)
{
    (void)buf;
    (void)len;
    (void)userdata;
    cc_ttrpc_call_fail(call, CC_TTRPC_UNIMPLEMENTED, "not implemented yet");
}

AGENT_HANDLER(agent_rpc_list_routes)
{
    (void)buf;
    (void)len;
    (void)userdata;
    cc_ttrpc_call_fail(call, CC_TTRPC_UNIMPLEMENTED, "not implemented yet");
}

