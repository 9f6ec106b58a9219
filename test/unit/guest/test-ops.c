/* SPDX-License-Identifier: Apache-2.0 */
/*
 * guest/ops.c on a fake cgroup v2 directory (a temporary directory holding the files the
 * kernel would show): the StatsContainer mapping, UpdateContainer's writes, shares -> weight,
 * cpuset lists, flat-keyed parsing (memory.events oom_kill), the cgroup path override.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "error.h"
#include "fs.h"
#include "loop.h"
#include "util.h"

typedef struct fixture {
    char tmp[PATH_MAX];
    int dir;
} fixture;

static void
put(int dir, const char *name, const char *text)
{
    _cleanup_close_ int fd = openat(dir, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(cc_write_all(fd, text, strlen(text)), 0);
}

static char *
get(int dir, const char *name)
{
    _cleanup_close_ int fd = openat(dir, name, O_RDONLY | O_CLOEXEC);
    char *text = NULL;
    assert_true(fd >= 0);
    assert_int_equal(cc_read_fd(fd, 65536, &text, NULL, NULL), 0);
    return text;
}

static int
setup(void **state)
{
    fixture *f = cc_xzalloc(sizeof(*f));
    snprintf(f->tmp, sizeof(f->tmp), "/tmp/cloak-test-ops-XXXXXX");
    if (!mkdtemp(f->tmp))
        return -1;
    f->dir = open(f->tmp, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (f->dir < 0)
        return -1;
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fixture *f = *state;
    _cleanup_close_ int parent = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    (void)cc_rm_rf_at(parent, f->tmp + 5, NULL);
    cc_close(f->dir);
    free(f);
    return 0;
}

/* What a 6.1 kernel shows for a container with limits (no memory.peak, no swap files). */
static void
fake_cgroup(int dir)
{
    put(dir, "cpu.stat",
        "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\ncore_sched.force_idle_usec 0\n"
        "nr_periods 10\nnr_throttled 3\nthrottled_usec 250\nnr_bursts 0\nburst_usec 0\n");
    put(dir, "memory.current", "1048576\n");
    put(dir, "memory.max", "max\n");
    put(dir, "memory.low", "0\n");
    put(dir, "memory.stat", "anon 4096\nfile 8192\nkernel 1234\nkernel_stack 16384\nslab 100\n"
                            "pgfault 77\n");
    put(dir, "memory.events", "low 0\nhigh 0\nmax 5\noom 2\noom_kill 2\noom_group_kill 0\n");
    put(dir, "pids.current", "3\n");
    put(dir, "pids.max", "max\n");
    put(dir, "io.stat", "8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n"
                        "253:1 rbytes=7 wbytes=8 rios=9 wios=10 dbytes=0 dios=0\n");
    put(dir, "cpu.weight", "100\n");
    put(dir, "cpu.max", "max 100000\n");
    put(dir, "cgroup.events", "populated 1\nfrozen 0\n");
}

static uint64_t
stat_value(const Grpc__MemoryStats *ms, const char *key)
{
    for (size_t i = 0; i < ms->n_stats; i++)
        if (cc_streq(ms->stats[i]->key, key))
            return ms->stats[i]->value;
    fail_msg("no memory.stat key %s", key);
    return 0;
}

static void
test_stats(void **state)
{
    fixture *f = *state;
    Grpc__CgroupStats *s = NULL;

    fake_cgroup(f->dir);
    assert_int_equal(agent_cgroup_stats(f->dir, &s, NULL), 0);
    assert_non_null(s);
    assert_int_equal(s->cpu_stats->cpu_usage->total_usage, 1500000);
    assert_int_equal(s->cpu_stats->cpu_usage->usage_in_usermode, 1000000);
    assert_int_equal(s->cpu_stats->cpu_usage->usage_in_kernelmode, 500000);
    assert_int_equal(s->cpu_stats->cpu_usage->n_percpu_usage, 0);
    assert_int_equal(s->cpu_stats->throttling_data->periods, 10);
    assert_int_equal(s->cpu_stats->throttling_data->throttled_periods, 3);
    assert_int_equal(s->cpu_stats->throttling_data->throttled_time, 250000);

    const Grpc__MemoryStats *ms = s->memory_stats;
    assert_int_equal(ms->cache, 8192);
    assert_int_equal(ms->usage->usage, 1048576);
    assert_int_equal(ms->usage->max_usage, 0); /* no memory.peak */
    assert_int_equal(ms->usage->failcnt, 5);
    assert_true(ms->usage->limit == UINT64_MAX);
    assert_int_equal(ms->swap_usage->usage, 0); /* no swap files */
    assert_int_equal(ms->swap_usage->limit, 0);
    assert_int_equal(ms->kernel_usage->usage, 1234);
    assert_true(ms->use_hierarchy);
    assert_int_equal(ms->n_stats, 6);
    assert_int_equal(stat_value(ms, "anon"), 4096);
    assert_int_equal(stat_value(ms, "pgfault"), 77);

    assert_int_equal(s->pids_stats->current, 3);
    assert_int_equal(s->pids_stats->limit, 0);

    const Grpc__BlkioStats *b = s->blkio_stats;
    assert_int_equal(b->n_io_service_bytes_recursive, 4);
    assert_int_equal(b->n_io_serviced_recursive, 4);
    assert_string_equal(b->io_service_bytes_recursive[0]->op, "Read");
    assert_int_equal(b->io_service_bytes_recursive[0]->major, 8);
    assert_int_equal(b->io_service_bytes_recursive[0]->minor, 0);
    assert_int_equal(b->io_service_bytes_recursive[0]->value, 100);
    assert_string_equal(b->io_service_bytes_recursive[1]->op, "Write");
    assert_int_equal(b->io_service_bytes_recursive[1]->value, 200);
    assert_int_equal(b->io_service_bytes_recursive[2]->major, 253);
    assert_int_equal(b->io_service_bytes_recursive[2]->minor, 1);
    assert_int_equal(b->io_serviced_recursive[3]->value, 10);
    assert_string_equal(b->io_serviced_recursive[3]->op, "Write");

    /* it packs */
    size_t n = protobuf_c_message_get_packed_size(&s->base);
    assert_true(n > 0);
    protobuf_c_message_free_unpacked(&s->base, NULL);

    /* with the files a 6.8 kernel with swap adds, and limits */
    put(f->dir, "memory.peak", "2097152\n");
    put(f->dir, "memory.max", "4194304\n");
    put(f->dir, "memory.swap.current", "4096\n");
    put(f->dir, "memory.swap.max", "max\n");
    put(f->dir, "memory.swap.events", "high 0\nmax 0\nfail 4\n");
    put(f->dir, "pids.max", "100\n");
    assert_int_equal(agent_cgroup_stats(f->dir, &s, NULL), 0);
    assert_int_equal(s->memory_stats->usage->max_usage, 2097152);
    assert_int_equal(s->memory_stats->usage->limit, 4194304);
    assert_int_equal(s->memory_stats->swap_usage->usage, 4096);
    assert_int_equal(s->memory_stats->swap_usage->failcnt, 4);
    assert_true(s->memory_stats->swap_usage->limit == UINT64_MAX);
    assert_int_equal(s->pids_stats->limit, 100);
    protobuf_c_message_free_unpacked(&s->base, NULL);
}

static void
test_stats_empty(void **state)
{
    fixture *f = *state;
    Grpc__CgroupStats *s = NULL;

    /* no files at all (controllers not enabled): zeros, not an error */
    assert_int_equal(agent_cgroup_stats(f->dir, &s, NULL), 0);
    assert_int_equal(s->cpu_stats->cpu_usage->total_usage, 0);
    assert_int_equal(s->memory_stats->n_stats, 0);
    assert_int_equal(s->blkio_stats->n_io_service_bytes_recursive, 0);
    protobuf_c_message_free_unpacked(&s->base, NULL);
}

static void
test_flat_key(void **state)
{
    uint64_t v = 0;
    (void)state;
    const char *ev = "low 0\nhigh 0\nmax 5\noom 2\noom_kill 3\noom_group_kill 1\n";
    assert_int_equal(agent_cgroup_flat_key(ev, "oom_kill", &v), 0);
    assert_int_equal(v, 3);
    assert_int_equal(agent_cgroup_flat_key(ev, "oom", &v), 0);
    assert_int_equal(v, 2);
    assert_int_equal(agent_cgroup_flat_key(ev, "max", &v), 0);
    assert_int_equal(v, 5);
    assert_int_equal(agent_cgroup_flat_key(ev, "oom_k", &v), -ENOENT);
    assert_int_equal(agent_cgroup_flat_key("", "oom_kill", &v), -ENOENT);
    assert_int_equal(agent_cgroup_flat_key("oom_kill x\n", "oom_kill", &v), -EINVAL);
    assert_int_equal(agent_cgroup_flat_key("frozen 1", "frozen", &v), 0);
    assert_int_equal(v, 1);
}

static void
test_shares_to_weight(void **state)
{
    (void)state;
    assert_int_equal(agent_cpu_shares_to_weight(0), 0);
    assert_int_equal(agent_cpu_shares_to_weight(2), 1);
    assert_int_equal(agent_cpu_shares_to_weight(1024), 39);
    assert_int_equal(agent_cpu_shares_to_weight(262144), 10000);
    assert_int_equal(agent_cpu_shares_to_weight(102), 4);
}

static void
test_cpuset(void **state)
{
    _cleanup_error_ cc_error *e = NULL;
    (void)state;
    static const char *const good[] = {"", "0", "0-3", "0,2,4-7", "8191", "1-1"};
    static const char *const bad[] = {"-1", "0-", "a", "0,,1", "0,", " 0", "3-1", "8192",
                                      "0-8192", "1 2", "0;1", "+1"};
    for (size_t i = 0; i < ELEMENTSOF(good); i++)
        assert_int_equal(agent_validate_cpuset(good[i], "CPU.Cpus", NULL), 0);
    for (size_t i = 0; i < ELEMENTSOF(bad); i++)
        if (agent_validate_cpuset(bad[i], "CPU.Cpus", NULL) != -EINVAL)
            fail_msg("'%s' accepted", bad[i]);
    assert_int_equal(agent_validate_cpuset("x", "resources.CPU.Mems", &e), -EINVAL);
    assert_non_null(strstr(cc_error_message(e), "resources.CPU.Mems"));
}

static void
check(int dir, const char *name, const char *want)
{
    _cleanup_free_ char *text = get(dir, name);
    assert_string_equal(text, want);
}

static void
test_update(void **state)
{
    fixture *f = *state;
    _cleanup_error_ cc_error *e = NULL;
    Grpc__LinuxResources r = GRPC__LINUX_RESOURCES__INIT;
    Grpc__LinuxMemory m = GRPC__LINUX_MEMORY__INIT;
    Grpc__LinuxCPU cpu = GRPC__LINUX_CPU__INIT;
    Grpc__LinuxPids pids = GRPC__LINUX_PIDS__INIT;

    fake_cgroup(f->dir);
    put(f->dir, "memory.swap.max", "max\n");
    put(f->dir, "pids.max", "max\n");
    r.memory = &m;
    r.cpu = &cpu;
    r.pids = &pids;
    m.limit = 100 << 20;
    m.reservation = 50 << 20;
    m.swap = 150 << 20;
    cpu.shares = 1024;
    cpu.quota = 50000;
    cpu.period = 100000;
    pids.limit = 64;
    assert_int_equal(agent_cgroup_update(f->dir, &r, &e), 0);
    check(f->dir, "memory.max", "104857600");
    check(f->dir, "memory.low", "52428800");
    check(f->dir, "memory.swap.max", "52428800");
    check(f->dir, "cpu.weight", "39");
    check(f->dir, "cpu.max", "50000 100000");
    check(f->dir, "pids.max", "64");

    /* unlimited */
    m.limit = -1;
    m.reservation = 0;
    m.swap = 0;
    cpu.shares = 0;
    cpu.quota = -1;
    cpu.period = 0;
    pids.limit = 0;
    assert_int_equal(agent_cgroup_update(f->dir, &r, &e), 0);
    check(f->dir, "memory.max", "max");
    check(f->dir, "memory.low", "52428800"); /* 0: unchanged */
    check(f->dir, "memory.swap.max", "max");
    check(f->dir, "cpu.weight", "39");
    check(f->dir, "cpu.max", "max");
    check(f->dir, "pids.max", "max");

    /* swap off (no memory.swap.max): "max" is fine, a limit is not */
    assert_int_equal(unlinkat(f->dir, "memory.swap.max", 0), 0);
    assert_int_equal(agent_cgroup_update(f->dir, &r, &e), 0);
    m.limit = 100 << 20;
    m.swap = 200 << 20;
    assert_int_equal(agent_cgroup_update(f->dir, &r, &e), -EINVAL);
    assert_non_null(strstr(cc_error_message(e), "resources.Memory.Swap"));
    check(f->dir, "memory.max", "max"); /* nothing written */

    /* cpusets: the guest enables no cpuset controller: refused, nothing written */
    m.swap = 0;
    cpu.cpus = (char *)"0-1";
    e = cc_error_free(e);
    assert_int_equal(agent_cgroup_update(f->dir, &r, &e), -EINVAL);
    assert_non_null(strstr(cc_error_message(e), "resources.CPU.Cpus"));
    check(f->dir, "memory.max", "max");
    put(f->dir, "cpuset.cpus", "\n");
    assert_int_equal(agent_cgroup_update(f->dir, &r, &e), 0);
    check(f->dir, "cpuset.cpus", "0-1");
    check(f->dir, "memory.max", "104857600");
    cpu.cpus = (char *)"";
}

static void
test_update_invalid(void **state)
{
    fixture *f = *state;
    Grpc__LinuxResources r = GRPC__LINUX_RESOURCES__INIT;
    Grpc__LinuxMemory m = GRPC__LINUX_MEMORY__INIT;
    Grpc__LinuxCPU cpu = GRPC__LINUX_CPU__INIT;
    Grpc__LinuxPids pids = GRPC__LINUX_PIDS__INIT;
    Grpc__LinuxDeviceCgroup dev = GRPC__LINUX_DEVICE_CGROUP__INIT;
    Grpc__LinuxDeviceCgroup *devs[] = {&dev};
    static const struct {
        int64_t limit, swap;
        uint64_t shares;
        int64_t quota;
        uint64_t period;
        int64_t pids, rt;
        const char *field;
    } cases[] = {
        {-2, 0, 0, 0, 0, 0, 0, "resources.Memory.Limit"},
        {0, 100, 0, 0, 0, 0, 0, "resources.Memory.Swap"},      /* swap without a limit */
        {200, 100, 0, 0, 0, 0, 0, "resources.Memory.Swap"},    /* memory+swap < memory */
        {0, -2, 0, 0, 0, 0, 0, "resources.Memory.Swap"},
        {0, 0, 1, 0, 0, 0, 0, "resources.CPU.Shares"},
        {0, 0, 262145, 0, 0, 0, 0, "resources.CPU.Shares"},
        {0, 0, 0, 999, 0, 0, 0, "resources.CPU.Quota"},
        {0, 0, 0, -5, 0, 0, 0, "resources.CPU.Quota"},
        {0, 0, 0, 0, 999, 0, 0, "resources.CPU.Period"},
        {0, 0, 0, 0, 1000001, 0, 0, "resources.CPU.Period"},
        {0, 0, 0, 0, 0, 4194305, 0, "resources.Pids.Limit"},
        {0, 0, 0, 0, 0, 0, 1000, "resources.CPU.RealtimeRuntime"},
    };

    fake_cgroup(f->dir);
    put(f->dir, "memory.swap.max", "max\n");
    put(f->dir, "pids.max", "max\n");
    r.memory = &m;
    r.cpu = &cpu;
    r.pids = &pids;
    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        _cleanup_error_ cc_error *e = NULL;
        m.limit = cases[i].limit;
        m.swap = cases[i].swap;
        cpu.shares = cases[i].shares;
        cpu.quota = cases[i].quota;
        cpu.period = cases[i].period;
        pids.limit = cases[i].pids;
        cpu.realtimeruntime = cases[i].rt;
        assert_int_equal(agent_cgroup_update(f->dir, &r, &e), -EINVAL);
        if (!strstr(cc_error_message(e), cases[i].field))
            fail_msg("case %zu: '%s' does not name %s", i, cc_error_message(e), cases[i].field);
        check(f->dir, "memory.max", "max\n");
        check(f->dir, "pids.max", "max\n");
        check(f->dir, "cpu.max", "max 100000\n");
    }

    /* devices (and BlockIO, hugepages, network) are ignored */
    memset(&cpu, 0, sizeof(cpu));
    grpc__linux_cpu__init(&cpu);
    m.limit = 4096 * 1024;
    m.swap = 0;
    pids.limit = 0;
    r.n_devices = 1;
    r.devices = devs;
    assert_int_equal(agent_cgroup_update(f->dir, &r, NULL), 0);
    check(f->dir, "memory.max", "4194304");
}

static void
test_cgroup_path(void **state)
{
    static const int sigs[] = {SIGCHLD};
    fixture *f = *state;
    _cleanup_error_ cc_error *err = NULL;
    _cleanup_free_ char *base = cc_xasprintf("%s/base", f->tmp);
    _cleanup_free_ char *sd = cc_xasprintf("%s/state", f->tmp);
    cc_loop *loop = NULL;
    agent *a = NULL;
    agent_options opts = {.base = base, .state_dir = sd, .pause_bundle = f->tmp,
                          .crun = "/bin/false", .cgroup_root = f->tmp};
    agent_container c = {.id = (char *)"abc"};

    assert_int_equal(cc_loop_block_signals(sigs, ELEMENTSOF(sigs), NULL), 0);
    assert_int_equal(cc_loop_new(&loop, NULL), 0);
    if (agent_new(loop, &opts, NULL, &a, &err) < 0)
        fail_msg("agent_new: %s", cc_error_message(err));
    c.agent = a;
    _cleanup_free_ char *p = agent_container_cgroup(&c);
    _cleanup_free_ char *want = cc_xasprintf("%s/cloak/abc", f->tmp);
    assert_string_equal(p, want);

    /* an OOM watch on a fake memory.events, then unwatch; agent_free frees the state */
    _cleanup_free_ char *cg = cc_xasprintf("%s/cloak", f->tmp);
    assert_int_equal(mkdir(cg, 0755), 0);
    assert_int_equal(mkdir(want, 0755), 0);
    _cleanup_close_ int d = open(want, O_PATH | O_DIRECTORY | O_CLOEXEC);
    put(d, "memory.events", "oom 1\noom_kill 1\n");
    c.next = a->containers;
    a->containers = &c;
    agent_oom_watch(&c);
    assert_non_null(c.oom);
    assert_non_null(a->oom_state);
    put(d, "memory.events", "oom 3\noom_kill 3\n");
    assert_int_equal(cc_loop_run_once(loop, 100 * 1000, NULL) >= 0, 1);
    agent_oom_unwatch(&c);
    assert_null(c.oom);
    a->containers = c.next;
    a = agent_free(a);
    loop = cc_loop_free(loop);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats_empty, setup, teardown),
        cmocka_unit_test(test_flat_key),
        cmocka_unit_test(test_shares_to_weight),
        cmocka_unit_test(test_cpuset),
        cmocka_unit_test_setup_teardown(test_update, setup, teardown),
        cmocka_unit_test_setup_teardown(test_update_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cgroup_path, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
