/* SPDX-License-Identifier: Apache-2.0 */
/* ops.c: stub, being written. */
#define _GNU_SOURCE
#include "agent.h"
#include "util.h"

AGENT_HANDLER(agent_rpc_stats_container)
{
    (void)buf;
    (void)len;
    (void)userdata;
    cc_ttrpc_call_fail(call, CC_TTRPC_UNIMPLEMENTED, "not implemented yet");
}

AGENT_HANDLER(agent_rpc_pause_container)
{
    (void)buf;
    (void)len;
    (void)userdata;
    cc_ttrpc_call_fail(call, CC_TTRPC_UNIMPLEMENTED, "not implemented yet");
}

AGENT_HANDLER(agent_rpc_resume_container)
{
    (void)buf;
    (void)len;
    (void)userdata;
    cc_ttrpc_call_fail(call, CC_TTRPC_UNIMPLEMENTED, "not implemented yet");
}

AGENT_HANDLER(agent_rpc_update_container)
{
    (void)buf;
    (void)len;
    (void)userdata;
    cc_ttrpc_call_fail(call, CC_TTRPC_UNIMPLEMENTED, "not implemented yet");
}

AGENT_HANDLER(agent_rpc_get_oom_event)
{
    (void)buf;
    (void)len;
    (void)userdata;
    cc_ttrpc_call_fail(call, CC_TTRPC_UNIMPLEMENTED, "not implemented yet");
}

AGENT_HANDLER(agent_rpc_online_cpu_mem)
{
    (void)buf;
    (void)len;
    (void)userdata;
    cc_ttrpc_call_fail(call, CC_TTRPC_UNIMPLEMENTED, "not implemented yet");
}

AGENT_HANDLER(agent_rpc_list_processes)
{
    (void)buf;
    (void)len;
    (void)userdata;
    cc_ttrpc_call_fail(call, CC_TTRPC_UNIMPLEMENTED, "not implemented yet");
}

void
agent_oom_watch(agent_container *c)
{
    (void)c;
}

void
agent_oom_unwatch(agent_container *c)
{
    (void)c;
}

void
agent_oom_free(agent *a)
{
    (void)a;
}

char *
agent_container_cgroup(agent_container *c)
{
    return cc_xasprintf("/sys/fs/cgroup/cloak/%s", c->id);
}
