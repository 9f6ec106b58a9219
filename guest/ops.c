/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
/*
 * Container operations on cgroup v2 files: StatsContainer, Pause/ResumeContainer,
 * UpdateContainer, GetOOMEvent (inotify on memory.events), OnlineCPUMem (refused) and
 * cloak.agent.v1.Agent/ListProcesses. Each container's cgroup is <cgroup_root>/cloak/<id>
 * (container.c sets linux.cgroupsPath); the files are read and written directly, never with
 * crun, so nothing here blocks on a child.
 *
 * Mapping decisions (cgroup v2 -> Kata's v1-shaped CgroupStats), as Kata's agent (cgroups-rs)
 * and containerd's cgroups v2 metrics read them:
 *   cpu_usage: cpu.stat usage_usec/system_usec/user_usec * 1000 (ns); percpu_usage empty.
 *   throttling_data: nr_periods, nr_throttled, throttled_usec * 1000 (ns).
 *   memory: usage = memory.current, max_usage = memory.peak (0 before 5.19), limit =
 *     memory.max, failcnt = memory.events "max" (times the limit was hit); "max" limits are
 *     UINT64_MAX (cgroups-rs gives -1 as u64, containerd math.MaxUint64). swap_usage from
 *     memory.swap.current/.peak/.max and memory.swap.events "fail" (all 0 when absent).
 *     kernel_usage.usage = memory.stat "kernel" (or kernel_stack + slab). cache = "file".
 *     stats = every memory.stat key. use_hierarchy = true (v2 is always hierarchical).
 *   pids: pids.current, pids.max ("max" -> 0, as Kata).
 *   blkio: io.stat rbytes/wbytes -> io_service_bytes_recursive op "Read"/"Write", rios/wios ->
 *     io_serviced_recursive (as runc's cgroup v2 stats).
 *   network_stats: /proc/net/dev of the guest (the pod's network namespace), without lo.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "fs.h"
#include "log.h"
#include "util.h"

#include "cloak/agent.pb-c.h"


#define CGROUP_ROOT_DEFAULT "/sys/fs/cgroup"
#define CGROUP_FILE_MAX (1u << 20) /* io.stat with many devices; everything else is small */
#define STATS_ENTRIES_MAX 256      /* memory.stat keys, io.stat devices, interfaces */
#define FREEZE_TIMEOUT_USEC (5ull * 1000 * 1000)
#define FREEZE_POLL_USEC (10ull * 1000)
#define OOM_QUEUE_MAX 1024
#define PROCS_MAX 4096             /* ListProcesses answers at most this many */
#define CMDLINE_ARGS_MAX 64
#define CMDLINE_ARG_MAX 4096
#define PIDS_LIMIT_MAX 4194304     /* PID_MAX_LIMIT: pids.max refuses more */
#define CPUSET_MAX 8192


/* container_id: valid, and the container exists; answers the call otherwise. */
static agent_container *
find_container(agent *a, cc_ttrpc_call *call, const char *id)
{
    _cleanup_error_ cc_error *e = NULL;
    agent_container *c;

    if (agent_validate_id(id, "container_id", false, &e) < 0) {
        cc_ttrpc_call_fail_error(call, e);
        return NULL;
    }
    c = agent_container_find(a, id);
    if (!c)
        cc_ttrpc_call_fail(call, CC_TTRPC_NOT_FOUND, "container %s: not found", id);
    return c;
}

char *
agent_container_cgroup(agent_container *c)
{
    const char *root = c->agent->opts.cgroup_root;
    return cc_xasprintf("%s/cloak/%s", root && *root ? root : CGROUP_ROOT_DEFAULT, c->id);
}

/* Opens the container's cgroup directory (O_PATH); -ENOENT naming it when missing. */
static int
open_cgroup(agent_container *c, int *ret, cc_error **err)
{
    _cleanup_free_ char *dir = agent_container_cgroup(c);
    int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return cc_error_set(err, -errno, "container %s: cgroup %s", c->id, dir);
    *ret = fd;
    return 0;
}

/* --- reading cgroup files ------------------------------------------------------------------- */

static int
cg_read(int dir_fd, const char *name, char **ret, cc_error **err)
{
    _cleanup_close_ int fd = openat(dir_fd, name, O_RDONLY | O_NOCTTY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return cc_error_set(err, -errno, "%s", name);
    int r = cc_read_fd(fd, CGROUP_FILE_MAX, ret, NULL, err);
    if (r < 0)
        return cc_error_prefix(err, r, "%s", name);
    return 0;
}

/* A decimal u64 (what follows is not looked at); -EINVAL when none. */
static int
parse_u64(const char *s, const char **ret_end, uint64_t *ret)
{
    char *end;
    unsigned long long v;

    while (*s == ' ' || *s == '\t')
        s++;
    if (!isdigit((unsigned char)*s))
        return -EINVAL;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno == ERANGE)
        return -ERANGE;
    if (ret_end)
        *ret_end = end;
    *ret = v;
    return 0;
}

/* A single-value file: a number, or "max" (*ret = max_value). Missing or bad: *ret = 0. */
static uint64_t
cg_read_u64(int dir_fd, const char *name, uint64_t max_value)
{
    _cleanup_free_ char *text = NULL;
    uint64_t v;

    if (cg_read(dir_fd, name, &text, NULL) < 0)
        return 0;
    if (cc_startswith(text, "max"))
        return max_value;
    return parse_u64(text, NULL, &v) == 0 ? v : 0;
}

int
agent_cgroup_flat_key(const char *text, const char *key, uint64_t *ret)
{
    size_t klen = strlen(key);

    for (const char *line = text; line && *line;) {
        const char *nl = strchr(line, '\n');
        if (strncmp(line, key, klen) == 0 && (line[klen] == ' ' || line[klen] == '\t'))
            return parse_u64(line + klen, NULL, ret);
        line = nl ? nl + 1 : NULL;
    }
    return -ENOENT;
}

/* key of a flat-keyed file, 0 when the file or the key is missing. */
static uint64_t
cg_read_key(int dir_fd, const char *name, const char *key)
{
    _cleanup_free_ char *text = NULL;
    uint64_t v;

    if (cg_read(dir_fd, name, &text, NULL) < 0)
        return 0;
    return agent_cgroup_flat_key(text, key, &v) == 0 ? v : 0;
}

static Grpc__MemoryData *
memory_data_new(uint64_t usage, uint64_t max_usage, uint64_t failcnt, uint64_t limit)
{
    Grpc__MemoryData *d = cc_xmalloc(sizeof(*d));
    grpc__memory_data__init(d);
    d->usage = usage;
    d->max_usage = max_usage;
    d->failcnt = failcnt;
    d->limit = limit;
    return d;
}

static Grpc__CpuStats *
cpu_stats_read(int dir_fd)
{
    _cleanup_free_ char *text = NULL;
    Grpc__CpuStats *cs = cc_xmalloc(sizeof(*cs));
    Grpc__CpuUsage *u = cc_xmalloc(sizeof(*u));
    Grpc__ThrottlingData *t = cc_xmalloc(sizeof(*t));
    uint64_t v;

    grpc__cpu_stats__init(cs);
    grpc__cpu_usage__init(u);
    grpc__throttling_data__init(t);
    cs->cpu_usage = u;
    cs->throttling_data = t;
    if (cg_read(dir_fd, "cpu.stat", &text, NULL) < 0)
        return cs;
    if (agent_cgroup_flat_key(text, "usage_usec", &v) == 0)
        u->total_usage = v * 1000;
    if (agent_cgroup_flat_key(text, "system_usec", &v) == 0)
        u->usage_in_kernelmode = v * 1000;
    if (agent_cgroup_flat_key(text, "user_usec", &v) == 0)
        u->usage_in_usermode = v * 1000;
    if (agent_cgroup_flat_key(text, "nr_periods", &v) == 0)
        t->periods = v;
    if (agent_cgroup_flat_key(text, "nr_throttled", &v) == 0)
        t->throttled_periods = v;
    if (agent_cgroup_flat_key(text, "throttled_usec", &v) == 0)
        t->throttled_time = v * 1000;
    return cs;
}

/* memory.stat: every "key value" line into the map (at most STATS_ENTRIES_MAX). */
static void
memory_stat_parse(Grpc__MemoryStats *ms, const char *text)
{
    for (const char *line = text; line && *line;) {
        const char *nl = strchr(line, '\n');
        const char *sp = strchr(line, ' ');
        uint64_t v;

        if (ms->n_stats >= STATS_ENTRIES_MAX)
            break;
        if (sp && (!nl || sp < nl) && sp > line && parse_u64(sp, NULL, &v) == 0) {
            Grpc__MemoryStats__StatsEntry *e = cc_xmalloc(sizeof(*e));
            grpc__memory_stats__stats_entry__init(e);
            e->key = cc_xstrndup(line, (size_t)(sp - line));
            e->value = v;
            ms->stats = cc_xreallocarray(ms->stats, ms->n_stats + 1, sizeof(*ms->stats));
            ms->stats[ms->n_stats++] = e;
        }
        line = nl ? nl + 1 : NULL;
    }
}

static Grpc__MemoryStats *
memory_stats_read(int dir_fd)
{
    _cleanup_free_ char *text = NULL;
    Grpc__MemoryStats *ms = cc_xmalloc(sizeof(*ms));
    uint64_t v, kernel = 0;

    grpc__memory_stats__init(ms);
    ms->use_hierarchy = true;
    if (cg_read(dir_fd, "memory.stat", &text, NULL) == 0) {
        memory_stat_parse(ms, text);
        if (agent_cgroup_flat_key(text, "file", &v) == 0)
            ms->cache = v;
        if (agent_cgroup_flat_key(text, "kernel", &v) == 0) {
            kernel = v;
        } else {
            if (agent_cgroup_flat_key(text, "kernel_stack", &v) == 0)
                kernel += v;
            if (agent_cgroup_flat_key(text, "slab", &v) == 0)
                kernel += v;
        }
    }
    ms->usage = memory_data_new(cg_read_u64(dir_fd, "memory.current", UINT64_MAX),
                                cg_read_u64(dir_fd, "memory.peak", UINT64_MAX),
                                cg_read_key(dir_fd, "memory.events", "max"),
                                cg_read_u64(dir_fd, "memory.max", UINT64_MAX));
    ms->swap_usage = memory_data_new(cg_read_u64(dir_fd, "memory.swap.current", UINT64_MAX),
                                     cg_read_u64(dir_fd, "memory.swap.peak", UINT64_MAX),
                                     cg_read_key(dir_fd, "memory.swap.events", "fail"),
                                     cg_read_u64(dir_fd, "memory.swap.max", UINT64_MAX));
    ms->kernel_usage = memory_data_new(kernel, 0, 0, 0);
    return ms;
}

static void
blkio_add(Grpc__BlkioStatsEntry ***v, size_t *n, uint64_t major, uint64_t minor, const char *op,
          uint64_t value)
{
    Grpc__BlkioStatsEntry *e = cc_xmalloc(sizeof(*e));
    grpc__blkio_stats_entry__init(e);
    e->major = major;
    e->minor = minor;
    e->op = cc_xstrdup(op);
    e->value = value;
    *v = cc_xreallocarray(*v, *n + 1, sizeof(**v));
    (*v)[(*n)++] = e;
}

/* io.stat: "MAJ:MIN rbytes=N wbytes=N rios=N wios=N dbytes=N dios=N" per device. */
static Grpc__BlkioStats *
blkio_stats_read(int dir_fd)
{
    _cleanup_free_ char *text = NULL;
    Grpc__BlkioStats *bs = cc_xmalloc(sizeof(*bs));
    size_t devices = 0;

    grpc__blkio_stats__init(bs);
    if (cg_read(dir_fd, "io.stat", &text, NULL) < 0)
        return bs;
    for (char *line = text, *next; line && *line && devices < STATS_ENTRIES_MAX; line = next) {
        uint64_t major, minor, rbytes = 0, wbytes = 0, rios = 0, wios = 0;
        const char *p;

        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (parse_u64(line, &p, &major) < 0 || *p != ':' || parse_u64(p + 1, &p, &minor) < 0)
            continue;
        for (char *save = NULL, *tok = strtok_r((char *)p, " \t", &save); tok;
             tok = strtok_r(NULL, " \t", &save)) {
            const char *val = strchr(tok, '=');
            uint64_t v;
            if (!val || parse_u64(val + 1, NULL, &v) < 0)
                continue;
            if (cc_startswith(tok, "rbytes="))
                rbytes = v;
            else if (cc_startswith(tok, "wbytes="))
                wbytes = v;
            else if (cc_startswith(tok, "rios="))
                rios = v;
            else if (cc_startswith(tok, "wios="))
                wios = v;
        }
        blkio_add(&bs->io_service_bytes_recursive, &bs->n_io_service_bytes_recursive, major, minor,
                  "Read", rbytes);
        blkio_add(&bs->io_service_bytes_recursive, &bs->n_io_service_bytes_recursive, major, minor,
                  "Write", wbytes);
        blkio_add(&bs->io_serviced_recursive, &bs->n_io_serviced_recursive, major, minor, "Read",
                  rios);
        blkio_add(&bs->io_serviced_recursive, &bs->n_io_serviced_recursive, major, minor, "Write",
                  wios);
        devices++;
    }
    return bs;
}

int
agent_cgroup_stats(int dir_fd, Grpc__CgroupStats **ret, cc_error **err)
{
    Grpc__CgroupStats *s;
    Grpc__PidsStats *ps;
    struct stat st;

    if (fstat(dir_fd, &st) < 0)
        return cc_error_set(err, -errno, "cgroup directory");
    if (!S_ISDIR(st.st_mode))
        return cc_error_set(err, -ENOTDIR, "cgroup directory");
    s = cc_xmalloc(sizeof(*s));
    grpc__cgroup_stats__init(s);
    s->cpu_stats = cpu_stats_read(dir_fd);
    s->memory_stats = memory_stats_read(dir_fd);
    ps = cc_xmalloc(sizeof(*ps));
    grpc__pids_stats__init(ps);
    ps->current = cg_read_u64(dir_fd, "pids.current", 0);
    ps->limit = cg_read_u64(dir_fd, "pids.max", 0);
    s->pids_stats = ps;
    s->blkio_stats = blkio_stats_read(dir_fd);
    *ret = s;
    return 0;
}

/* /proc/net/dev: "  eth0: rxbytes rxpackets rxerrs rxdrop fifo frame compressed multicast
 * txbytes txpackets txerrs txdrop ...". Interfaces other than lo. */
static void
network_stats_read(Grpc__NetworkStats ***ret, size_t *ret_n)
{
    _cleanup_free_ char *text = NULL;

    if (cc_read_file("/proc/net/dev", CGROUP_FILE_MAX, &text, NULL, NULL) < 0)
        return;
    for (char *line = text, *next; line && *line && *ret_n < STATS_ENTRIES_MAX; line = next) {
        unsigned long long v[16];
        char *colon;

        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        colon = strchr(line, ':');
        if (!colon)
            continue;
        *colon = '\0';
        while (*line == ' ')
            line++;
        if (!*line || cc_streq(line, "lo"))
            continue;
        if (sscanf(colon + 1, "%llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
                   &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9], &v[10],
                   &v[11]) != 12)
            continue;
        Grpc__NetworkStats *n = cc_xmalloc(sizeof(*n));
        grpc__network_stats__init(n);
        n->name = cc_xstrdup(line);
        n->rx_bytes = v[0];
        n->rx_packets = v[1];
        n->rx_errors = v[2];
        n->rx_dropped = v[3];
        n->tx_bytes = v[8];
        n->tx_packets = v[9];
        n->tx_errors = v[10];
        n->tx_dropped = v[11];
        *ret = cc_xreallocarray(*ret, *ret_n + 1, sizeof(**ret));
        (*ret)[(*ret_n)++] = n;
    }
}

AGENT_HANDLER(agent_rpc_stats_container)
{
    agent *a = userdata;
    _cleanup_msg_ Grpc__StatsContainerRequest *req =
        UNPACK(Grpc__StatsContainerRequest, grpc__stats_container_request__descriptor);
    Grpc__StatsContainerResponse resp = GRPC__STATS_CONTAINER_RESPONSE__INIT;
    _cleanup_error_ cc_error *e = NULL;
    _cleanup_close_ int dir = -EBADF;
    agent_container *c;

    if (!req || !(c = find_container(a, call, req->container_id)))
        return;
    if (open_cgroup(c, &dir, &e) < 0 || agent_cgroup_stats(dir, &resp.cgroup_stats, &e) < 0)
        return agent_rpc_fail(call, "StatsContainer", e);
    network_stats_read(&resp.network_stats, &resp.n_network_stats);
    cc_ttrpc_call_reply(call, &resp.base);
    protobuf_c_message_free_unpacked(&resp.cgroup_stats->base, NULL);
    for (size_t i = 0; i < resp.n_network_stats; i++)
        protobuf_c_message_free_unpacked(&resp.network_stats[i]->base, NULL);
    free(resp.network_stats);
}

/* --- writing cgroup files ----------------------------------------------------------------- */

/* Writes value to dir_fd/name in one write(2), as cgroupfs wants. */
static int
cg_write(int dir_fd, const char *name, const char *value, cc_error **err)
{
    _cleanup_close_ int fd = openat(dir_fd, name, O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC);
    size_t n = strlen(value);
    ssize_t w;

    if (fd < 0)
        return cc_error_set(err, -errno, "%s", name);
    w = write(fd, value, n);
    if (w < 0)
        return cc_error_set(err, -errno, "write '%s' to %s", value, name);
    if ((size_t)w != n)
        return cc_error_set(err, -EIO, "write '%s' to %s: short write", value, name);
    return 0;
}

/* --- UpdateContainer ------------------------------------------------------------------------ */

uint64_t
agent_cpu_shares_to_weight(uint64_t shares)
{
    if (shares == 0)
        return 0;
    if (shares < 2)
        shares = 2;
    if (shares > 262144)
        shares = 262144;
    return 1 + ((shares - 2) * 9999) / 262142;
}

int
agent_validate_cpuset(const char *s, const char *field, cc_error **err)
{
    const char *p = s;

    if (!*s)
        return 0;
    if (strlen(s) > 4096)
        return cc_error_msg(err, -EINVAL, "%s: longer than 4096 bytes", field);
    for (;;) {
        uint64_t lo, hi;
        if (!isdigit((unsigned char)*p) || parse_u64(p, &p, &lo) < 0 || lo >= CPUSET_MAX)
            return cc_error_msg(err, -EINVAL, "%s: '%s' is not a CPU or node list", field, s);
        hi = lo;
        if (*p == '-' && (!isdigit((unsigned char)p[1]) || parse_u64(p + 1, &p, &hi) < 0 ||
                          hi >= CPUSET_MAX || hi < lo))
            return cc_error_msg(err, -EINVAL, "%s: '%s' is not a CPU or node list", field, s);
        if (*p == '\0')
            return 0;
        if (*p != ',')
            return cc_error_msg(err, -EINVAL, "%s: '%s' is not a CPU or node list", field, s);
        p++;
    }
}

/* One planned write; old: what the file held, to restore on a later failure. */
typedef struct cg_set {
    const char *file;
    char value[64 + 4096];
    char *old;
    bool optional_max; /* file may be missing when value is "max" (memory.swap.max, swap off) */
} cg_set;

static void
plan(cg_set *v, size_t *n, const char *file, const char *fmt, ...) _printf_(4, 5);

static void
plan(cg_set *v, size_t *n, const char *file, const char *fmt, ...)
{
    va_list ap;
    cg_set *s = &v[(*n)++];

    s->file = file;
    va_start(ap, fmt);
    vsnprintf(s->value, sizeof(s->value), fmt, ap);
    va_end(ap);
}

static int
plan_memory(const Grpc__LinuxMemory *m, cg_set *v, size_t *n, cc_error **err)
{
    int64_t swap;

    if (m->limit < -1)
        return cc_error_msg(err, -EINVAL, "resources.Memory.Limit: %" PRId64 " is out of range",
                            m->limit);
    if (m->reservation < -1)
        return cc_error_msg(err, -EINVAL,
                            "resources.Memory.Reservation: %" PRId64 " is out of range",
                            m->reservation);
    if (m->swap < -1)
        return cc_error_msg(err, -EINVAL, "resources.Memory.Swap: %" PRId64 " is out of range",
                            m->swap);
    /* OCI's swap is memory+swap; cgroup v2's memory.swap.max is swap alone (runc's rule) */
    if (m->limit == -1 && m->swap == 0)
        swap = -1;
    else if (m->swap == -1 || m->swap == 0)
        swap = m->swap;
    else if (m->limit <= 0)
        return cc_error_msg(err, -EINVAL,
                            "resources.Memory.Swap: a swap limit needs a memory limit");
    else if (m->swap < m->limit)
        return cc_error_msg(err, -EINVAL,
                            "resources.Memory.Swap: memory+swap (%" PRId64
                            ") is below the memory limit (%" PRId64 ")",
                            m->swap, m->limit);
    else
        swap = m->swap - m->limit;

    if (m->limit == -1)
        plan(v, n, "memory.max", "max");
    else if (m->limit > 0)
        plan(v, n, "memory.max", "%" PRId64, m->limit);
    /* the reservation is protection: -1 (none) is 0 */
    if (m->reservation != 0)
        plan(v, n, "memory.low", "%" PRId64, m->reservation < 0 ? 0 : m->reservation);
    if (swap == -1) {
        plan(v, n, "memory.swap.max", "max");
        v[*n - 1].optional_max = true;
    } else if (swap > 0) {
        plan(v, n, "memory.swap.max", "%" PRId64, swap);
    }
    if (m->kernel || m->kerneltcp || m->swappiness || m->disableoomkiller)
        cc_log(CC_LOG_DEBUG, "UpdateContainer: resources.Memory Kernel, KernelTCP, Swappiness and "
                             "DisableOOMKiller have no cgroup v2 equivalent: ignored");
    return 0;
}

static int
plan_cpu(const Grpc__LinuxCPU *cpu, cg_set *v, size_t *n, cc_error **err)
{
    int r;

    if (cpu->shares != 0 && (cpu->shares < 2 || cpu->shares > 262144))
        return cc_error_msg(err, -EINVAL,
                            "resources.CPU.Shares: %" PRIu64 " is not in 2..262144", cpu->shares);
    if (cpu->quota != 0 && cpu->quota != -1 && (cpu->quota < 1000 || cpu->quota > (1ll << 44)))
        return cc_error_msg(err, -EINVAL,
                            "resources.CPU.Quota: %" PRId64 " is not -1 or in 1000..2^44 (us)",
                            cpu->quota);
    if (cpu->period != 0 && (cpu->period < 1000 || cpu->period > 1000000))
        return cc_error_msg(err, -EINVAL,
                            "resources.CPU.Period: %" PRIu64 " is not in 1000..1000000 (us)",
                            cpu->period);
    if (cpu->realtimeruntime != 0 || cpu->realtimeperiod != 0)
        return cc_error_msg(err, -EINVAL, "resources.CPU.Realtime%s: cgroup v2 has no realtime "
                                          "CPU limits",
                            cpu->realtimeruntime != 0 ? "Runtime" : "Period");
    if ((r = agent_validate_cpuset(cpu->cpus ? cpu->cpus : "", "resources.CPU.Cpus", err)) < 0 ||
        (r = agent_validate_cpuset(cpu->mems ? cpu->mems : "", "resources.CPU.Mems", err)) < 0)
        return r;

    if (cpu->shares)
        plan(v, n, "cpu.weight", "%" PRIu64, agent_cpu_shares_to_weight(cpu->shares));
    /* as runc: quota 0 with a period means no quota; -1 is no quota */
    if (cpu->quota != 0 || cpu->period != 0) {
        char q[32] = "max";
        if (cpu->quota > 0)
            snprintf(q, sizeof(q), "%" PRId64, cpu->quota);
        if (cpu->period)
            plan(v, n, "cpu.max", "%s %" PRIu64, q, cpu->period);
        else
            plan(v, n, "cpu.max", "%s", q);
    }
    if (cpu->cpus && *cpu->cpus)
        plan(v, n, "cpuset.cpus", "%s", cpu->cpus);
    if (cpu->mems && *cpu->mems)
        plan(v, n, "cpuset.mems", "%s", cpu->mems);
    return 0;
}

/* Field names for errors about files the guest's cgroup lacks. */
static const char *
file_field(const char *file)
{
    static const char *const names[][2] = {
        {"memory.max", "resources.Memory.Limit"},  {"memory.low", "resources.Memory.Reservation"},
        {"memory.swap.max", "resources.Memory.Swap"}, {"cpu.weight", "resources.CPU.Shares"},
        {"cpu.max", "resources.CPU.Quota"},        {"cpuset.cpus", "resources.CPU.Cpus"},
        {"cpuset.mems", "resources.CPU.Mems"},     {"pids.max", "resources.Pids.Limit"},
    };
    for (size_t i = 0; i < ELEMENTSOF(names); i++)
        if (cc_streq(names[i][0], file))
            return names[i][1];
    return file;
}

int
agent_cgroup_update(int dir_fd, const Grpc__LinuxResources *res, cc_error **err)
{
    cg_set v[8];
    size_t n = 0, done;
    int r = 0;

    memset(v, 0, sizeof(v));
    /* validate everything first */
    if (res->memory && (r = plan_memory(res->memory, v, &n, err)) < 0)
        return r;
    if (res->cpu && (r = plan_cpu(res->cpu, v, &n, err)) < 0)
        return r;
    if (res->pids) {
        if (res->pids->limit > PIDS_LIMIT_MAX)
            return cc_error_msg(err, -EINVAL,
                                "resources.Pids.Limit: %" PRId64 " is above %d", res->pids->limit,
                                PIDS_LIMIT_MAX);
        /* as Kata: <= 0 is no limit */
        if (res->pids->limit > 0)
            plan(v, &n, "pids.max", "%" PRId64, res->pids->limit);
        else
            plan(v, &n, "pids.max", "max");
    }
    if (res->n_devices || res->blockio || res->n_hugepagelimits || res->network)
        cc_log(CC_LOG_DEBUG, "UpdateContainer: resources Devices, BlockIO, HugepageLimits and "
                             "Network cannot change in the guest: ignored");

    /* every file must be there (and readable, for the undo) before anything is written */
    for (size_t i = 0; i < n; i++) {
        _cleanup_error_ cc_error *e = NULL;
        r = cg_read(dir_fd, v[i].file, &v[i].old, &e);
        if (r == -ENOENT && v[i].optional_max) {
            v[i].file = NULL; /* swap accounting off: nothing to lift */
            continue;
        }
        if (r < 0) {
            if (r == -ENOENT)
                r = cc_error_msg(err, -EINVAL, "%s: the guest's cgroup has no %s", file_field(v[i].file),
                                 v[i].file);
            else
                r = cc_error_msg(err, r, "%s: %s", file_field(v[i].file), cc_error_message(e));
            goto out;
        }
    }
    for (done = 0; done < n; done++) {
        if (!v[done].file)
            continue;
        r = cg_write(dir_fd, v[done].file, v[done].value, err);
        if (r < 0) {
            r = cc_error_prefix(err, r, "%s", file_field(v[done].file));
            break;
        }
        cc_log(CC_LOG_DEBUG, "UpdateContainer: %s = %s", v[done].file, v[done].value);
    }
    if (r < 0) {
        /* undo, newest first; cpuset files read "" for "inherit", which writes back as "\n" */
        while (done-- > 0) {
            _cleanup_error_ cc_error *e = NULL;
            char *old = v[done].old;
            if (!v[done].file)
                continue;
            old[strcspn(old, "\n")] = '\0';
            if (cg_write(dir_fd, v[done].file, *old ? old : "\n", &e) < 0)
                cc_log_error(CC_LOG_WARNING, e, "UpdateContainer: cannot restore %s",
                             v[done].file);
        }
    }
out:
    for (size_t i = 0; i < n; i++)
        free(v[i].old);
    return r;
}

AGENT_HANDLER(agent_rpc_update_container)
{
    agent *a = userdata;
    _cleanup_msg_ Grpc__UpdateContainerRequest *req =
        UNPACK(Grpc__UpdateContainerRequest, grpc__update_container_request__descriptor);
    _cleanup_error_ cc_error *e = NULL;
    _cleanup_close_ int dir = -EBADF;
    agent_container *c;

    if (!req || !(c = find_container(a, call, req->container_id)))
        return;
    if (!req->resources) {
        cc_ttrpc_call_reply(call, NULL);
        return;
    }
    if (c->state == AGENT_CONTAINER_CREATING || c->state == AGENT_CONTAINER_REMOVING) {
        cc_ttrpc_call_fail(call, CC_TTRPC_FAILED_PRECONDITION, "container %s is %s", c->id,
                           agent_container_state_to_string(c->state));
        return;
    }
    if (open_cgroup(c, &dir, &e) < 0 || agent_cgroup_update(dir, req->resources, &e) < 0) {
        cc_error_prefix(&e, e ? e->code : -EIO, "container %s", c->id);
        return agent_rpc_fail(call, "UpdateContainer", e);
    }
    cc_log(CC_LOG_INFO, "container %s: resources updated", c->id);
    cc_ttrpc_call_reply(call, NULL);
}

/* --- PauseContainer / ResumeContainer ------------------------------------------------------- */

/* A freeze or thaw waiting for cgroup.events to say "frozen <want>". The container is looked
 * up by id at each tick: it may be removed meanwhile. */
typedef struct freeze_op {
    agent *agent;
    cc_ttrpc_call *call;
    char *id;
    bool freeze;
    uint64_t deadline;
    cc_loop_source *timer;
} freeze_op;

static void
freeze_op_free(freeze_op *op)
{
    cc_loop_source_free(op->timer);
    free(op->id);
    free(op);
}

/* 1: cgroup.events says frozen == want; 0: not yet; < 0: error. */
static int
frozen_is(int dir_fd, bool want, cc_error **err)
{
    _cleanup_free_ char *text = NULL;
    uint64_t v;
    int r;

    r = cg_read(dir_fd, "cgroup.events", &text, err);
    if (r < 0)
        return r;
    if (agent_cgroup_flat_key(text, "frozen", &v) < 0)
        return cc_error_msg(err, -EOPNOTSUPP, "cgroup.events: no 'frozen' (kernel without the "
                                              "cgroup v2 freezer)");
    return (v != 0) == want;
}

static int
container_frozen_is(agent_container *c, bool want, cc_error **err)
{
    _cleanup_close_ int dir = -EBADF;
    int r = open_cgroup(c, &dir, err);
    return r < 0 ? r : frozen_is(dir, want, err);
}

static void
freeze_finish(freeze_op *op, const cc_error *e)
{
    cc_ttrpc_call_set_cancel(op->call, NULL, NULL);
    if (e)
        agent_rpc_fail(op->call, op->freeze ? "PauseContainer" : "ResumeContainer", e);
    else
        cc_ttrpc_call_reply(op->call, NULL);
    freeze_op_free(op);
}

static int
on_freeze_tick(cc_loop_source *s, uint64_t deadline, void *userdata)
{
    freeze_op *op = userdata;
    _cleanup_error_ cc_error *e = NULL;
    agent_container *c = agent_container_find(op->agent, op->id);
    int r;

    (void)s;
    (void)deadline;
    if (!c) {
        cc_error_msg(&e, -ENOENT, "container %s was removed", op->id);
        freeze_finish(op, e);
        return 0;
    }
    r = container_frozen_is(c, op->freeze, &e);
    if (r == 0 && cc_loop_now() < op->deadline)
        return 0; /* the interval timer ticks again */
    if (r == 0) {
        cc_error_msg(&e, -ETIMEDOUT, "container %s: not %s after 5 s", c->id,
                     op->freeze ? "frozen" : "thawed");
        if (op->freeze) {
            /* leave it running rather than half frozen */
            _cleanup_close_ int dir = -EBADF;
            if (open_cgroup(c, &dir, NULL) == 0)
                (void)cg_write(dir, "cgroup.freeze", "0", NULL);
            c->paused = false;
        }
    } else if (r < 0) {
        cc_error_prefix(&e, r, "container %s", c->id);
    } else {
        cc_log(CC_LOG_INFO, "container %s %s", c->id, op->freeze ? "paused" : "resumed");
    }
    freeze_finish(op, r > 0 ? NULL : e);
    return 0;
}

static void
on_freeze_cancel(cc_ttrpc_call *call, cc_ttrpc_code reason, void *userdata)
{
    freeze_op *op = userdata;
    cc_ttrpc_call_fail(call, reason, "cancelled");
    freeze_op_free(op);
}

static void
freeze_container(agent *a, cc_ttrpc_call *call, const char *id, bool freeze)
{
    const char *method = freeze ? "PauseContainer" : "ResumeContainer";
    _cleanup_error_ cc_error *e = NULL;
    _cleanup_close_ int dir = -EBADF;
    agent_container *c;
    freeze_op *op;
    int r;

    if (!(c = find_container(a, call, id)))
        return;
    if (freeze && (c->state != AGENT_CONTAINER_RUNNING || c->paused)) {
        cc_ttrpc_call_fail(call, CC_TTRPC_FAILED_PRECONDITION, "container %s is %s, not running",
                           c->id, c->paused ? "paused" : agent_container_state_to_string(c->state));
        return;
    }
    if (!freeze && !c->paused) {
        cc_ttrpc_call_fail(call, CC_TTRPC_FAILED_PRECONDITION, "container %s is not paused",
                           c->id);
        return;
    }
    if ((r = open_cgroup(c, &dir, &e)) < 0 ||
        (r = cg_write(dir, "cgroup.freeze", freeze ? "1" : "0", &e)) < 0) {
        cc_error_prefix(&e, r, "container %s", c->id);
        return agent_rpc_fail(call, method, e);
    }
    c->paused = freeze;
    r = frozen_is(dir, freeze, &e);
    if (r != 0) {
        if (r < 0) {
            cc_error_prefix(&e, r, "container %s", c->id);
            if (freeze) {
                (void)cg_write(dir, "cgroup.freeze", "0", NULL);
                c->paused = false;
            }
            return agent_rpc_fail(call, method, e);
        }
        cc_log(CC_LOG_INFO, "container %s %s", c->id, freeze ? "paused" : "resumed");
        cc_ttrpc_call_reply(call, NULL);
        return;
    }
    /* not there yet: poll cgroup.events */
    op = cc_xzalloc(sizeof(*op));
    op->agent = a;
    op->call = call;
    op->id = cc_xstrdup(c->id);
    op->freeze = freeze;
    op->deadline = cc_loop_now() + FREEZE_TIMEOUT_USEC;
    r = cc_loop_add_timer(a->loop, FREEZE_POLL_USEC, FREEZE_POLL_USEC, on_freeze_tick, op,
                          &op->timer, &e);
    if (r < 0) {
        freeze_op_free(op);
        return agent_rpc_fail(call, method, e);
    }
    cc_ttrpc_call_set_cancel(call, on_freeze_cancel, op);
}

AGENT_HANDLER(agent_rpc_pause_container)
{
    _cleanup_msg_ Grpc__PauseContainerRequest *req =
        UNPACK(Grpc__PauseContainerRequest, grpc__pause_container_request__descriptor);
    if (req)
        freeze_container(userdata, call, req->container_id, true);
}

AGENT_HANDLER(agent_rpc_resume_container)
{
    _cleanup_msg_ Grpc__ResumeContainerRequest *req =
        UNPACK(Grpc__ResumeContainerRequest, grpc__resume_container_request__descriptor);
    if (req)
        freeze_container(userdata, call, req->container_id, false);
}

/* --- OOM events --------------------------------------------------------------------------- */

typedef struct oom_watch {
    int wd;
    uint64_t oom_kill;
} oom_watch;

typedef struct oom_waiter {
    struct oom_waiter *next;
    struct oom_state *state;
    cc_ttrpc_call *call;
} oom_waiter;

typedef struct oom_state {
    int fd;                     /* inotify */
    cc_loop_source *source;
    char *queue[OOM_QUEUE_MAX]; /* container ids, a ring */
    size_t head, n;
    oom_waiter *waiters, *waiters_tail;
} oom_state;

static void
oom_waiter_unlink(oom_state *st, oom_waiter *w)
{
    oom_waiter *prev = NULL;
    for (oom_waiter **pp = &st->waiters; *pp; prev = *pp, pp = &(*pp)->next)
        if (*pp == w) {
            *pp = w->next;
            if (st->waiters_tail == w)
                st->waiters_tail = prev;
            return;
        }
}

/* Answers waiting calls with queued events, oldest first. */
static void
oom_dispatch(oom_state *st)
{
    while (st->waiters && st->n > 0) {
        oom_waiter *w = st->waiters;
        _cleanup_free_ char *id = st->queue[st->head];
        Grpc__OOMEvent ev = GRPC__OOMEVENT__INIT;

        st->queue[st->head] = NULL;
        st->head = (st->head + 1) % OOM_QUEUE_MAX;
        st->n--;
        oom_waiter_unlink(st, w);
        ev.container_id = id;
        cc_ttrpc_call_set_cancel(w->call, NULL, NULL);
        cc_ttrpc_call_reply(w->call, &ev.base);
        free(w);
    }
}

static void
oom_queue(oom_state *st, const char *id)
{
    if (st->n == OOM_QUEUE_MAX) {
        cc_log(CC_LOG_WARNING, "OOM event queue full: dropping the oldest (container %s)",
               st->queue[st->head]);
        free(st->queue[st->head]);
        st->queue[st->head] = NULL;
        st->head = (st->head + 1) % OOM_QUEUE_MAX;
        st->n--;
    }
    st->queue[(st->head + st->n) % OOM_QUEUE_MAX] = cc_xstrdup(id);
    st->n++;
}

static uint64_t
oom_kill_count(agent_container *c)
{
    _cleanup_close_ int dir = -EBADF;
    if (open_cgroup(c, &dir, NULL) < 0)
        return 0;
    return cg_read_key(dir, "memory.events", "oom_kill");
}

static void
oom_check(agent *a, agent_container *c)
{
    oom_watch *w = c->oom;
    uint64_t now = oom_kill_count(c);

    if (now <= w->oom_kill) {
        w->oom_kill = now;
        return;
    }
    cc_log(CC_LOG_WARNING, "container %s: %" PRIu64 " process(es) killed by the OOM killer", c->id,
           now - w->oom_kill);
    for (uint64_t i = w->oom_kill; i < now && i - w->oom_kill < OOM_QUEUE_MAX; i++)
        oom_queue(a->oom_state, c->id);
    w->oom_kill = now;
}

static int
on_inotify(cc_loop_source *s, int fd, uint32_t revents, void *userdata)
{
    agent *a = userdata;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));

    (void)s;
    (void)revents;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            p += sizeof(*ev) + ev->len;
            if (ev->mask & IN_Q_OVERFLOW) {
                for (agent_container *c = a->containers; c; c = c->next)
                    if (c->oom)
                        oom_check(a, c);
                continue;
            }
            for (agent_container *c = a->containers; c; c = c->next) {
                oom_watch *w = c->oom;
                if (!w || w->wd != ev->wd)
                    continue;
                if (ev->mask & IN_IGNORED)
                    w->wd = -1; /* the cgroup went away */
                else
                    oom_check(a, c);
                break;
            }
        }
    }
    oom_dispatch(a->oom_state);
    return 0;
}

static oom_state *
oom_state_get(agent *a, cc_error **err)
{
    oom_state *st = a->oom_state;
    int r;

    if (st)
        return st;
    st = cc_xzalloc(sizeof(*st));
    st->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (st->fd < 0) {
        cc_error_set(err, -errno, "inotify_init1");
        free(st);
        return NULL;
    }
    r = cc_loop_add_io(a->loop, st->fd, EPOLLIN, on_inotify, a, &st->source, err);
    if (r < 0) {
        cc_close(st->fd);
        free(st);
        return NULL;
    }
    a->oom_state = st;
    return st;
}

void
agent_oom_watch(agent_container *c)
{
    _cleanup_error_ cc_error *e = NULL;
    _cleanup_free_ char *path = NULL;
    oom_state *st;
    oom_watch *w;
    int wd;

    if (c->oom)
        return;
    st = oom_state_get(c->agent, &e);
    if (!st) {
        cc_log_error(CC_LOG_WARNING, e, "container %s: no OOM events", c->id);
        return;
    }
    {
        _cleanup_free_ char *dir = agent_container_cgroup(c);
        path = cc_xasprintf("%s/memory.events", dir);
    }
    wd = inotify_add_watch(st->fd, path, IN_MODIFY);
    if (wd < 0) {
        cc_log_errno(CC_LOG_WARNING, -errno, "container %s: no OOM events: inotify %s", c->id,
                     path);
        return;
    }
    w = cc_xzalloc(sizeof(*w));
    w->wd = wd;
    c->oom = w;
    w->oom_kill = oom_kill_count(c);
}

void
agent_oom_unwatch(agent_container *c)
{
    oom_watch *w = c->oom;
    oom_state *st = c->agent->oom_state;

    if (!w)
        return;
    if (st && w->wd >= 0) {
        bool shared = false;
        /* inotify gives the same wd for the same inode: keep it while another uses it */
        for (agent_container *o = c->agent->containers; o; o = o->next)
            if (o != c && o->oom && ((oom_watch *)o->oom)->wd == w->wd)
                shared = true;
        if (!shared)
            (void)inotify_rm_watch(st->fd, w->wd);
    }
    free(w);
    c->oom = NULL;
}

void
agent_oom_free(agent *a)
{
    oom_state *st = a->oom_state;

    if (!st)
        return;
    while (st->waiters) {
        oom_waiter *w = st->waiters;
        st->waiters = w->next;
        cc_ttrpc_call_set_cancel(w->call, NULL, NULL);
        cc_ttrpc_call_fail(w->call, CC_TTRPC_UNAVAILABLE, "the agent is shutting down");
        free(w);
    }
    for (size_t i = 0; i < OOM_QUEUE_MAX; i++)
        free(st->queue[i]);
    cc_loop_source_free(st->source);
    cc_close(st->fd);
    /* the containers' watches die with the fd; agent_oom_unwatch() then only frees them */
    free(st);
    a->oom_state = NULL;
}

static void
on_oom_waiter_cancel(cc_ttrpc_call *call, cc_ttrpc_code reason, void *userdata)
{
    oom_waiter *w = userdata;
    oom_waiter_unlink(w->state, w);
    cc_ttrpc_call_fail(call, reason, "cancelled");
    free(w);
}

AGENT_HANDLER(agent_rpc_get_oom_event)
{
    agent *a = userdata;
    _cleanup_msg_ Grpc__GetOOMEventRequest *req =
        UNPACK(Grpc__GetOOMEventRequest, grpc__get_oomevent_request__descriptor);
    _cleanup_error_ cc_error *e = NULL;
    oom_state *st;
    oom_waiter *w;

    if (!req)
        return;
    st = oom_state_get(a, &e);
    if (!st)
        return agent_rpc_fail(call, "GetOOMEvent", e);
    w = cc_xzalloc(sizeof(*w));
    w->state = st;
    w->call = call;
    if (st->waiters_tail)
        st->waiters_tail->next = w;
    else
        st->waiters = w;
    st->waiters_tail = w;
    cc_ttrpc_call_set_cancel(call, on_oom_waiter_cancel, w);
    oom_dispatch(st);
}

/* --- OnlineCPUMem ------------------------------------------------------------------------- */

AGENT_HANDLER(agent_rpc_online_cpu_mem)
{
    _cleanup_msg_ Grpc__OnlineCPUMemRequest *req =
        UNPACK(Grpc__OnlineCPUMemRequest, grpc__online_cpumem_request__descriptor);
    (void)userdata;
    if (req)
        cc_ttrpc_call_fail(call, CC_TTRPC_UNIMPLEMENTED,
                           "no CPU or memory hotplug in a confidential VM");
}

/* --- cloak.agent.v1.Agent/ListProcesses ------------------------------------------------------ */

/* /proc/<pid>/cmdline as at most CMDLINE_ARGS_MAX args of at most CMDLINE_ARG_MAX bytes. */
static void
read_cmdline(pid_t pid, char ***ret, size_t *ret_n)
{
    char path[64];
    _cleanup_free_ char *text = NULL;
    _cleanup_close_ int fd = -EBADF;
    size_t len = 0;

    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    text = cc_xmalloc(CMDLINE_ARGS_MAX * CMDLINE_ARG_MAX + 1);
    while (len < CMDLINE_ARGS_MAX * CMDLINE_ARG_MAX) {
        ssize_t n = read(fd, text + len, CMDLINE_ARGS_MAX * CMDLINE_ARG_MAX - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    text[len] = '\0';
    for (size_t off = 0; off < len && *ret_n < CMDLINE_ARGS_MAX;) {
        size_t l = strnlen(text + off, len - off);
        *ret = cc_xreallocarray(*ret, *ret_n + 1, sizeof(**ret));
        (*ret)[(*ret_n)++] = cc_xstrndup(text + off, l < CMDLINE_ARG_MAX ? l : CMDLINE_ARG_MAX);
        off += l + 1;
    }
}

static const char *
exec_id_of(agent_container *c, pid_t pid)
{
    if (c->init && c->init->pid == pid)
        return c->id;
    for (agent_process *p = c->execs; p; p = p->next)
        if (p->pid == pid && !p->exited)
            return p->exec_id;
    return "";
}

AGENT_HANDLER(agent_rpc_list_processes)
{
    agent *a = userdata;
    _cleanup_msg_ Cloak__Agent__V1__ListProcessesRequest *req =
        UNPACK(Cloak__Agent__V1__ListProcessesRequest,
               cloak__agent__v1__list_processes_request__descriptor);
    Cloak__Agent__V1__ListProcessesResponse resp = CLOAK__AGENT__V1__LIST_PROCESSES_RESPONSE__INIT;
    _cleanup_error_ cc_error *e = NULL;
    _cleanup_close_ int dir = -EBADF;
    _cleanup_free_ char *text = NULL;
    agent_container *c;

    if (!req || !(c = find_container(a, call, req->container_id)))
        return;
    if (open_cgroup(c, &dir, &e) < 0 || cg_read(dir, "cgroup.procs", &text, &e) < 0)
        return agent_rpc_fail(call, "ListProcesses", e);
    for (char *line = text, *next; line && *line && resp.n_processes < PROCS_MAX; line = next) {
        uint64_t pid;
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (parse_u64(line, NULL, &pid) < 0 || pid == 0 || pid > INT32_MAX)
            continue;
        Cloak__Agent__V1__ProcessInfo *pi = cc_xmalloc(sizeof(*pi));
        cloak__agent__v1__process_info__init(pi);
        pi->pid = (int32_t)pid;
        pi->exec_id = cc_xstrdup(exec_id_of(c, (pid_t)pid));
        read_cmdline((pid_t)pid, &pi->args, &pi->n_args);
        resp.processes = cc_xreallocarray(resp.processes, resp.n_processes + 1,
                                          sizeof(*resp.processes));
        resp.processes[resp.n_processes++] = pi;
    }
    cc_ttrpc_call_reply(call, &resp.base);
    for (size_t i = 0; i < resp.n_processes; i++)
        protobuf_c_message_free_unpacked(&resp.processes[i]->base, NULL);
    free(resp.processes);
}
