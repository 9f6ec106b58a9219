/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloakctl run: one container in a pod of its own, as crictl runp + create + start would,
 * then its output and exit code as if it ran here:
 *
 *   PullImage, RunPodSandbox (log_directory: a fresh temp dir), CreateContainer (log_path
 *   "c.log"), StartContainer; then the CRI log file <log_directory>/c.log is followed (lines
 *   "<RFC3339Nano> stdout|stderr F|P <payload>") and each payload goes to our stdout or
 *   stderr, until ContainerStatus says EXITED; its exit code is ours. Finally StopPodSandbox
 *   and RemovePodSandbox and the temp dir removed, unless --keep.
 *
 * --pod POD (an id, unique id prefix or name) runs the container in an existing pod
 * instead: CreateContainer wants the pod's PodSandboxConfig, rebuilt from PodSandboxStatus
 * (metadata, labels, annotations, namespace modes; hostname and cgroup parent from
 * containerd's verbose info) with a fresh temp dir as its log_directory (containerd joins the
 * request's log_directory and the container's log_path). The pod is never removed: --rm
 * (StopContainer + RemoveContainer) and --keep only concern the container.
 *
 * SIGINT/SIGTERM while the container runs stop it (StopContainer, 10 s grace); the pod (with
 * --pod: the container) is still cleaned up. Synchronous: the only state shared with the
 * signal handler is one flag.
 */
#include "cri.h"
#include "fs.h"
#include "json.h"
#include "util.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define RUN_LOG_NAME "c.log"
#define RUN_POLL_NSEC (100 * 1000 * 1000)
#define RUN_STOP_GRACE_SEC 10
#define RUN_LINE_MAX (64u << 10) /* containerd splits lines at 16 KiB */
#define RUN_INFO_MAX (1u << 20)  /* PodSandboxStatus's verbose info */

/* Set by the SIGINT/SIGTERM handler only (the one mutable global: async-signal-safe). */
static volatile sig_atomic_t run_interrupted;

static void
on_interrupt(int signo)
{
    run_interrupted = signo;
}

typedef struct run_opts {
    const char *runtime; /* "" = the runtime's default handler */
    const char *pod;     /* --pod: an existing pod (id, id prefix, name); NULL: a new pod */
    bool keep;
    bool entrypoint; /* CMD[0] replaces the image's entrypoint */
    bool timings;    /* --timings: where the time went, one logfmt line on stderr */
    const char *image;
    char **cmd;
    size_t n_cmd;
} run_opts;

/* --- the CRI log file ------------------------------------------------------------------------ */

typedef struct log_follower {
    int fd;
    char *path;
    double first_output; /* CLOCK_REALTIME of the first line (containerd's stamp), or 0 */
    char buf[RUN_LINE_MAX];
    size_t len;
} log_follower;

static double
realtime_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
digits(const char **p, const char *end, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++, (*p)++) {
        if (*p >= end || **p < '0' || **p > '9')
            return -1;
        v = v * 10 + (**p - '0');
    }
    return v;
}

/* containerd's stamp of a CRI log line, Go's RFC3339Nano ("2006-01-02T15:04:05.999999999Z07:00"),
 * as seconds since the epoch; 0 when it is not one. */
static double
cri_log_time(const char *s, size_t len)
{
    const char *p = s, *end = s + len;
    struct tm tm = {};
    int y = digits(&p, end, 4);
    if (y < 0 || p >= end || *p++ != '-')
        return 0;
    int mo = digits(&p, end, 2);
    if (mo < 1 || mo > 12 || p >= end || *p++ != '-')
        return 0;
    int d = digits(&p, end, 2);
    if (d < 1 || d > 31 || p >= end || *p++ != 'T')
        return 0;
    int h = digits(&p, end, 2);
    if (h < 0 || h > 23 || p >= end || *p++ != ':')
        return 0;
    int mi = digits(&p, end, 2);
    if (mi < 0 || mi > 59 || p >= end || *p++ != ':')
        return 0;
    int sec = digits(&p, end, 2);
    if (sec < 0 || sec > 60)
        return 0;
    double frac = 0, scale = 0.1;
    if (p < end && *p == '.') {
        p++;
        if (p >= end || *p < '0' || *p > '9')
            return 0; /* a '.' needs a digit */
        for (; p < end && *p >= '0' && *p <= '9'; p++, scale /= 10)
            frac += (*p - '0') * scale;
    }
    long off = 0;
    if (p < end && *p == 'Z') {
        p++;
    } else if (p < end && (*p == '+' || *p == '-')) {
        int sign = *p++ == '-' ? -1 : 1;
        int oh = digits(&p, end, 2);
        if (oh < 0 || oh > 23 || p >= end || *p++ != ':')
            return 0;
        int om = digits(&p, end, 2);
        if (om < 0 || om > 59)
            return 0;
        off = sign * (oh * 3600L + om * 60L);
    } else {
        return 0;
    }
    if (p != end)
        return 0;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return 0;
    return (double)(t - off) + frac;
}

/* Writes one parsed CRI log line (without its '\n') to stdout or stderr. */
static void
log_emit_line(log_follower *f, const char *line, size_t len)
{
    /* "<time> <stream> <tag> <payload>": payload may be empty (and then the last space too). */
    const char *p = memchr(line, ' ', len);
    const char *end = line + len;
    if (!p)
        goto raw;
    if (f->first_output == 0) {
        f->first_output = cri_log_time(line, (size_t)(p - line));
        if (f->first_output == 0)
            f->first_output = realtime_now();
    }
    const char *stream = p + 1;
    const char *q = memchr(stream, ' ', (size_t)(end - stream));
    if (!q)
        goto raw;
    FILE *out = (size_t)(q - stream) == 6 && memcmp(stream, "stderr", 6) == 0 ? stderr : stdout;
    const char *tag = q + 1;
    const char *payload = memchr(tag, ' ', (size_t)(end - tag));
    payload = payload ? payload + 1 : end;
    bool full = tag < end && *tag == 'F';
    fwrite(payload, 1, (size_t)(end - payload), out);
    if (full)
        fputc('\n', out);
    fflush(out);
    return;
raw:
    if (f->first_output == 0)
        f->first_output = realtime_now();
    fwrite(line, 1, len, stdout);
    fputc('\n', stdout);
    fflush(stdout);
}

/* Reads what was appended since the last call and prints every complete line. */
static void
log_drain(log_follower *f)
{
    if (f->fd < 0) {
        f->fd = open(f->path, O_RDONLY | O_CLOEXEC);
        if (f->fd < 0)
            return; /* not there yet */
    }
    for (;;) {
        ssize_t n = read(f->fd, f->buf + f->len, sizeof(f->buf) - f->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        f->len += (size_t)n;
        size_t start = 0;
        char *nl;
        while ((nl = memchr(f->buf + start, '\n', f->len - start))) {
            log_emit_line(f, f->buf + start, (size_t)(nl - (f->buf + start)));
            start = (size_t)(nl - f->buf) + 1;
        }
        if (start == 0 && f->len == sizeof(f->buf)) {
            log_emit_line(f, f->buf, f->len); /* no newline in 64 KiB: not a CRI log */
            start = f->len;
        }
        memmove(f->buf, f->buf + start, f->len - start);
        f->len -= start;
    }
}

/* --- the steps ---------------------------------------------------------------------------- */

static char *
random_hex(size_t bytes)
{
    uint8_t b[32];
    assert(bytes <= sizeof(b));
    if (getrandom(b, bytes, 0) != (ssize_t)bytes) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        srandom((unsigned)(ts.tv_nsec ^ getpid()));
        for (size_t i = 0; i < bytes; i++)
            b[i] = (uint8_t)random();
    }
    char *s = cc_xmalloc(bytes * 2 + 1);
    for (size_t i = 0; i < bytes; i++)
        sprintf(s + 2 * i, "%02x", b[i]);
    return s;
}

static int
pull(cc_grpc_client *c, const char *image, cc_error **err)
{
    Runtime__V1__PullImageRequest req = RUNTIME__V1__PULL_IMAGE_REQUEST__INIT;
    Runtime__V1__ImageSpec spec = RUNTIME__V1__IMAGE_SPEC__INIT;
    spec.image = (char *)image;
    req.image = &spec;
    _cleanup_msg_ ProtobufCMessage *resp = NULL;
    return cri_call(c, "ImageService/PullImage", &req.base,
                    &runtime__v1__pull_image_response__descriptor, CRI_TIMEOUT_PULL, &resp, err);
}

/* Polls ContainerStatus: *ret_exited and *ret_code (when exited). */
static int
container_exited(cc_grpc_client *c, const char *id, bool *ret_exited, int *ret_code, cc_error **err)
{
    Runtime__V1__ContainerStatusRequest req = RUNTIME__V1__CONTAINER_STATUS_REQUEST__INIT;
    req.container_id = (char *)id;
    _cleanup_msg_ Runtime__V1__ContainerStatusResponse *resp = NULL;
    int r = cri_call(c, "RuntimeService/ContainerStatus", &req.base,
                     &runtime__v1__container_status_response__descriptor, CRI_TIMEOUT_DEFAULT,
                     (ProtobufCMessage **)&resp, err);
    if (r < 0)
        return r;
    if (!resp->status)
        return cc_error_msg(err, -EBADMSG, "ContainerStatus: no status in the response");
    *ret_exited = resp->status->state == RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED;
    if (*ret_exited)
        *ret_code = resp->status->exit_code;
    return 0;
}

/* When each step of a run ended (CLOCK_REALTIME, s; 0: did not happen). */
typedef struct run_times {
    double begin, pulled, pod, created, started, first_output, exited, removed;
} run_times;

/* Follows the log until the container exited; *ret_code: its exit code; t: first output and
 * exit. */
static int
follow(cc_grpc_client *c, const char *id, const char *log_path, int *ret_code, run_times *t,
       cc_error **err)
{
    log_follower *f = cc_xzalloc(sizeof(*f));
    f->fd = -EBADF;
    f->path = (char *)log_path;
    bool stopping = false, exited = false;
    int code = 0, r = 0;
    for (;;) {
        log_drain(f);
        if (exited)
            break;
        if (run_interrupted && !stopping) {
            stopping = true;
            Runtime__V1__StopContainerRequest stop = RUNTIME__V1__STOP_CONTAINER_REQUEST__INIT;
            stop.container_id = (char *)id;
            stop.timeout = RUN_STOP_GRACE_SEC;
            _cleanup_msg_ ProtobufCMessage *resp = NULL;
            r = cri_call(c, "RuntimeService/StopContainer", &stop.base,
                         &runtime__v1__stop_container_response__descriptor,
                         CRI_TIMEOUT_DEFAULT + RUN_STOP_GRACE_SEC * CRI_USEC_PER_SEC, &resp, err);
            if (r < 0)
                break;
        }
        r = container_exited(c, id, &exited, &code, err);
        if (r == -ENOENT) {
            r = cc_error_msg(err, r, "container %s was removed while running", id);
            break;
        }
        if (r < 0)
            break;
        if (!exited) {
            struct timespec ts = {.tv_nsec = RUN_POLL_NSEC};
            (void)nanosleep(&ts, NULL);
        }
        /* exited: one more drain; containerd copies the output before it records the exit. */
    }
    if (exited)
        t->exited = realtime_now();
    if (f->len) /* a last line without '\n' */
        log_emit_line(f, f->buf, f->len);
    t->first_output = f->first_output;
    cc_close(f->fd);
    free(f);
    if (r < 0)
        return r;
    *ret_code = code;
    return 0;
}

/* The pod a container runs in: a new one (RunPodSandbox) or an existing one (--pod). The
 * config is what CreateContainer gets as its sandbox_config; every pointer in it points into
 * this struct or into status (freed by run_pod_done). */
typedef struct run_pod {
    char *id; /* the pod's full id, once it exists */
    char *name;
    char *uid;
    Runtime__V1__PodSandboxConfig config;
    Runtime__V1__PodSandboxMetadata meta;
    Runtime__V1__LinuxPodSandboxConfig linux;
    Runtime__V1__LinuxSandboxSecurityContext sec;
    Runtime__V1__NamespaceOption ns;
    Runtime__V1__PodSandboxStatusResponse *status; /* --pod: PodSandboxStatus's answer */
    json_t *info;                                  /* --pod: its verbose info, or NULL */
    Runtime__V1__PodSandboxConfig__LabelsEntry *labels;
    Runtime__V1__PodSandboxConfig__LabelsEntry **label_ptrs;
    Runtime__V1__PodSandboxConfig__AnnotationsEntry *annotations;
    Runtime__V1__PodSandboxConfig__AnnotationsEntry **annotation_ptrs;
} run_pod;

static void
run_pod_done(run_pod *p)
{
    free(p->id);
    free(p->name);
    free(p->uid);
    cri_msg_freep(&p->status);
    json_decref(p->info);
    free(p->labels);
    free(p->label_ptrs);
    free(p->annotations);
    free(p->annotation_ptrs);
    *p = (run_pod){};
}

static void
fill_namespaces(Runtime__V1__NamespaceOption *ns)
{
    /* What kubelet sets by default: the pod's network and IPC, a PID namespace per
     * container (so the container's process is its PID 1). */
    ns->network = RUNTIME__V1__NAMESPACE_MODE__POD;
    ns->ipc = RUNTIME__V1__NAMESPACE_MODE__POD;
    ns->pid = RUNTIME__V1__NAMESPACE_MODE__CONTAINER;
}

/* The config of a new pod "cloakctl-<8 hex>" (hostname the same) logging to log_dir. */
static void
run_pod_new(run_pod *p, const char *log_dir)
{
    _cleanup_free_ char *suffix = random_hex(4);
    p->name = cc_xasprintf("cloakctl-%s", suffix);
    p->uid = random_hex(16);
    p->meta = (Runtime__V1__PodSandboxMetadata)RUNTIME__V1__POD_SANDBOX_METADATA__INIT;
    p->meta.name = p->name;
    p->meta.uid = p->uid;
    p->meta.namespace_ = (char *)"default";
    p->meta.attempt = 0;
    p->ns = (Runtime__V1__NamespaceOption)RUNTIME__V1__NAMESPACE_OPTION__INIT;
    fill_namespaces(&p->ns);
    p->sec =
        (Runtime__V1__LinuxSandboxSecurityContext)RUNTIME__V1__LINUX_SANDBOX_SECURITY_CONTEXT__INIT;
    p->sec.namespace_options = &p->ns;
    p->linux = (Runtime__V1__LinuxPodSandboxConfig)RUNTIME__V1__LINUX_POD_SANDBOX_CONFIG__INIT;
    p->linux.security_context = &p->sec;
    p->config = (Runtime__V1__PodSandboxConfig)RUNTIME__V1__POD_SANDBOX_CONFIG__INIT;
    p->config.metadata = &p->meta;
    p->config.hostname = p->name;
    p->config.log_directory = (char *)log_dir;
    p->config.linux = &p->linux;
}

/* A string of the verbose info's JSON (containerd: {"config": <PodSandboxConfig>, ...}),
 * or NULL. */
static char *
info_string(const run_pod *p, const char *path)
{
    const char *v = NULL;
    if (!p->info || cc_json_get_string(p->info, path, &v, NULL) < 0)
        return NULL;
    return (char *)v;
}

/* Copies the status's labels and annotations (map entries: same layout, but each message
 * must carry the config's entry descriptor to be packed). */
static void
copy_maps(run_pod *p)
{
    const Runtime__V1__PodSandboxStatus *st = p->status->status;
    size_t n = st->n_labels;
    p->labels = cc_xzalloc((n ? n : 1) * sizeof(*p->labels));
    p->label_ptrs = cc_xzalloc((n ? n : 1) * sizeof(*p->label_ptrs));
    for (size_t i = 0; i < n; i++) {
        p->labels[i] = (Runtime__V1__PodSandboxConfig__LabelsEntry)
            RUNTIME__V1__POD_SANDBOX_CONFIG__LABELS_ENTRY__INIT;
        p->labels[i].key = st->labels[i]->key;
        p->labels[i].value = st->labels[i]->value;
        p->label_ptrs[i] = &p->labels[i];
    }
    p->config.labels = p->label_ptrs;
    p->config.n_labels = n;

    n = st->n_annotations;
    p->annotations = cc_xzalloc((n ? n : 1) * sizeof(*p->annotations));
    p->annotation_ptrs = cc_xzalloc((n ? n : 1) * sizeof(*p->annotation_ptrs));
    for (size_t i = 0; i < n; i++) {
        p->annotations[i] = (Runtime__V1__PodSandboxConfig__AnnotationsEntry)
            RUNTIME__V1__POD_SANDBOX_CONFIG__ANNOTATIONS_ENTRY__INIT;
        p->annotations[i].key = st->annotations[i]->key;
        p->annotations[i].value = st->annotations[i]->value;
        p->annotation_ptrs[i] = &p->annotations[i];
    }
    p->config.annotations = p->annotation_ptrs;
    p->config.n_annotations = n;
}

/* The config of the existing, ready pod what (its id, a unique id prefix or its name),
 * rebuilt from PodSandboxStatus, logging to log_dir. Errors: -ENOENT (no such pod), -EINVAL
 * (ambiguous), -EBUSY (not ready), call errors. */
static int
run_pod_existing(cc_grpc_client *c, run_pod *p, const char *what, const char *log_dir,
                 cc_error **err)
{
    _cleanup_free_ char *id = NULL;
    int r = cri_resolve_pod(c, what, &id, err);
    if (r < 0)
        return r;
    Runtime__V1__PodSandboxStatusRequest req = RUNTIME__V1__POD_SANDBOX_STATUS_REQUEST__INIT;
    req.pod_sandbox_id = id;
    req.verbose = true;
    r = cri_call(c, "RuntimeService/PodSandboxStatus", &req.base,
                 &runtime__v1__pod_sandbox_status_response__descriptor, CRI_TIMEOUT_DEFAULT,
                 (ProtobufCMessage **)&p->status, err);
    if (r < 0)
        return r;
    const Runtime__V1__PodSandboxStatus *st = p->status->status;
    if (!st || !st->metadata)
        return cc_error_msg(err, -EBADMSG, "PodSandboxStatus: no status or metadata for '%s'", id);
    if (st->state != RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_READY)
        return cc_error_msg(err, -EBUSY, "pod %s (%s) is not ready", st->id, st->metadata->name);
    for (size_t i = 0; i < p->status->n_info; i++)
        if (cc_streq(p->status->info[i]->key, "info")) {
            const char *v = p->status->info[i]->value;
            (void)cc_json_load_buffer(v, strlen(v), "info", RUN_INFO_MAX, &p->info, NULL);
        }

    p->id = cc_xstrdup(st->id);
    p->name = cc_xstrdup(st->metadata->name);
    p->config = (Runtime__V1__PodSandboxConfig)RUNTIME__V1__POD_SANDBOX_CONFIG__INIT;
    p->config.metadata = st->metadata; /* the same message type */
    p->config.hostname = info_string(p, "config.hostname");
    if (!p->config.hostname)
        p->config.hostname = p->name;
    p->config.log_directory = (char *)log_dir;
    copy_maps(p);
    p->sec =
        (Runtime__V1__LinuxSandboxSecurityContext)RUNTIME__V1__LINUX_SANDBOX_SECURITY_CONTEXT__INIT;
    if (st->linux && st->linux->namespaces && st->linux->namespaces->options) {
        p->sec.namespace_options = st->linux->namespaces->options;
    } else {
        p->ns = (Runtime__V1__NamespaceOption)RUNTIME__V1__NAMESPACE_OPTION__INIT;
        fill_namespaces(&p->ns);
        p->sec.namespace_options = &p->ns;
    }
    p->linux = (Runtime__V1__LinuxPodSandboxConfig)RUNTIME__V1__LINUX_POD_SANDBOX_CONFIG__INIT;
    p->linux.security_context = &p->sec;
    p->linux.cgroup_parent = info_string(p, "config.linux.cgroup_parent");
    p->config.linux = &p->linux;
    return 0;
}

/* CreateContainer in pod p; named "main", or "main-<8 hex>" in an existing pod (names are
 * unique in a pod). *ret_id: owned. */
static int
create_container(cc_grpc_client *c, const run_opts *o, run_pod *p, char **ret_id, cc_error **err)
{
    _cleanup_free_ char *suffix = o->pod ? random_hex(4) : NULL;
    _cleanup_free_ char *name = suffix ? cc_xasprintf("main-%s", suffix) : cc_xstrdup("main");
    Runtime__V1__ContainerMetadata cmeta = RUNTIME__V1__CONTAINER_METADATA__INIT;
    cmeta.name = name;
    Runtime__V1__ImageSpec spec = RUNTIME__V1__IMAGE_SPEC__INIT;
    spec.image = (char *)o->image;
    Runtime__V1__NamespaceOption ctr_ns = RUNTIME__V1__NAMESPACE_OPTION__INIT;
    fill_namespaces(&ctr_ns);
    Runtime__V1__LinuxContainerSecurityContext ctr_sec =
        RUNTIME__V1__LINUX_CONTAINER_SECURITY_CONTEXT__INIT;
    ctr_sec.namespace_options = &ctr_ns;
    Runtime__V1__LinuxContainerConfig ctr_linux = RUNTIME__V1__LINUX_CONTAINER_CONFIG__INIT;
    ctr_linux.security_context = &ctr_sec;
    Runtime__V1__ContainerConfig ctr = RUNTIME__V1__CONTAINER_CONFIG__INIT;
    ctr.metadata = &cmeta;
    ctr.image = &spec;
    if (o->entrypoint && o->n_cmd > 0) {
        ctr.command = o->cmd;
        ctr.n_command = 1;
        ctr.args = o->cmd + 1;
        ctr.n_args = o->n_cmd - 1;
    } else {
        ctr.args = o->cmd;
        ctr.n_args = o->n_cmd;
    }
    ctr.log_path = (char *)RUN_LOG_NAME;
    ctr.linux = &ctr_linux;

    Runtime__V1__CreateContainerRequest create = RUNTIME__V1__CREATE_CONTAINER_REQUEST__INIT;
    create.pod_sandbox_id = p->id;
    create.config = &ctr;
    create.sandbox_config = &p->config;
    _cleanup_msg_ Runtime__V1__CreateContainerResponse *create_resp = NULL;
    int r = cri_call(c, "RuntimeService/CreateContainer", &create.base,
                     &runtime__v1__create_container_response__descriptor, CRI_TIMEOUT_DEFAULT,
                     (ProtobufCMessage **)&create_resp, err);
    if (r < 0)
        return r;
    *ret_id = cc_xstrdup(create_resp->container_id);
    return 0;
}

/* The whole run after the pull, in pod p (created here unless --pod: p->id is set as soon as
 * the pod exists); *ret_ctr_id receives the container as soon as it exists. */
static int
run_in_pod(cc_grpc_client *c, const run_opts *o, const char *log_dir, run_pod *p, char **ret_ctr_id,
           int *ret_code, run_times *t, cc_error **err)
{
    int r;
    if (!o->pod) {
        Runtime__V1__RunPodSandboxRequest runp = RUNTIME__V1__RUN_POD_SANDBOX_REQUEST__INIT;
        runp.config = &p->config;
        runp.runtime_handler = (char *)o->runtime;
        _cleanup_msg_ Runtime__V1__RunPodSandboxResponse *runp_resp = NULL;
        r = cri_call(c, "RuntimeService/RunPodSandbox", &runp.base,
                     &runtime__v1__run_pod_sandbox_response__descriptor, CRI_TIMEOUT_RUN_POD,
                     (ProtobufCMessage **)&runp_resp, err);
        if (r < 0)
            return r;
        p->id = cc_xstrdup(runp_resp->pod_sandbox_id);
    }
    t->pod = realtime_now();
    if (run_interrupted)
        return cc_error_msg(err, -EINTR, "interrupted");

    r = create_container(c, o, p, ret_ctr_id, err);
    if (r < 0)
        return r;
    t->created = realtime_now();

    Runtime__V1__StartContainerRequest start = RUNTIME__V1__START_CONTAINER_REQUEST__INIT;
    start.container_id = *ret_ctr_id;
    _cleanup_msg_ ProtobufCMessage *start_resp = NULL;
    r = cri_call(c, "RuntimeService/StartContainer", &start.base,
                 &runtime__v1__start_container_response__descriptor, CRI_TIMEOUT_RUN_POD,
                 &start_resp, err);
    if (r < 0)
        return r;
    t->started = realtime_now();

    _cleanup_free_ char *log_path = cc_xasprintf("%s/%s", log_dir, RUN_LOG_NAME);
    r = follow(c, *ret_ctr_id, log_path, ret_code, t, err);
    if (r >= 0 && o->keep)
        fprintf(stderr, "cloakctl run: kept %spod %s (%s), container %s, logs in %s\n",
                o->pod ? "" : "new ", p->id, p->name, *ret_ctr_id, log_dir);
    return r;
}

/* "cloakctl run: timings: pull=0.052 pod=7.501 ..." (s since the run began; a step that did not
 * happen is left out). */
static void
print_timings(const run_times *t)
{
    static const struct {
        const char *name;
        size_t off;
    } steps[] = {
        {"pull", offsetof(run_times, pulled)},     {"pod", offsetof(run_times, pod)},
        {"create", offsetof(run_times, created)},  {"start", offsetof(run_times, started)},
        {"first_output", offsetof(run_times, first_output)},
        {"exited", offsetof(run_times, exited)},   {"removed", offsetof(run_times, removed)},
    };
    fputs("cloakctl run: timings:", stderr);
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        double v = *(const double *)((const char *)t + steps[i].off);
        if (v > 0)
            fprintf(stderr, " %s=%.3f", steps[i].name, v - t->begin);
    }
    fputc('\n', stderr);
}

static void
remove_log_dir(const char *log_dir)
{
    _cleanup_free_ char *parent = cc_xstrdup(log_dir);
    char *slash = strrchr(parent, '/');
    assert(slash);
    *slash = 0;
    _cleanup_error_ cc_error *e = NULL;
    _cleanup_close_ int fd = open(parent[0] ? parent : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        (void)cc_error_set(&e, -errno, "open '%s'", parent);
    else if (cc_rm_rf_at(fd, slash + 1, &e) >= 0)
        return;
    fprintf(stderr, "cloakctl run: remove '%s': %s\n", log_dir, cc_error_message(e));
}

static int
parse_run_args(int argc, char **argv, run_opts *o)
{
    static const struct option opts[] = {
        {"runtime", required_argument, NULL, 'r'},
        {"pod", required_argument, NULL, 'p'},
        {"rm", no_argument, NULL, 'R'},
        {"keep", no_argument, NULL, 'k'},
        {"entrypoint", no_argument, NULL, 'e'},
        {"timings", no_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {},
    };
    static const char usage[] =
        "usage: cloakctl [--address SOCK] run [--runtime HANDLER|--pod POD] [--rm|--keep]\n"
        "                [--entrypoint] [--timings] IMAGE [CMD...]\n"
        "  --pod POD  run in the existing pod POD (id, unique id prefix or name), which stays;\n"
        "             --rm (the default) and --keep then concern the container only\n"
        "  --timings  at the end, one line on stderr: when each step ended, in seconds since\n"
        "             the run began (first_output: containerd's stamp of the first line)\n";
    int opt;
    optind = 1;
    /* "+": options end at IMAGE; CMD has options of its own. */
    while ((opt = getopt_long(argc, argv, "+r:h", opts, NULL)) >= 0) {
        switch (opt) {
        case 'r':
            o->runtime = optarg;
            break;
        case 'p':
            o->pod = optarg;
            break;
        case 'R':
            o->keep = false;
            break;
        case 'k':
            o->keep = true;
            break;
        case 'e':
            o->entrypoint = true;
            break;
        case 't':
            o->timings = true;
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            return -2;
        }
    }
    if (optind >= argc) {
        fputs(usage, stderr);
        return -2;
    }
    if (o->pod && (!*o->pod || *o->runtime)) {
        fprintf(stderr, "cloakctl run: %s\n",
                *o->pod ? "--runtime and --pod: the pod's runtime handler applies"
                        : "--pod needs a pod id");
        return -2;
    }
    if (o->entrypoint && optind + 1 >= argc) {
        fprintf(stderr, "cloakctl run: --entrypoint needs a CMD\n");
        return -2;
    }
    o->image = argv[optind];
    o->cmd = argv + optind + 1;
    o->n_cmd = (size_t)(argc - optind - 1);
    return 1;
}

int
cloakctl_run(int argc, char **argv)
{
    run_opts o = {.runtime = ""};
    int r = parse_run_args(argc, argv, &o);
    if (r <= 0)
        return -r;

    _cleanup_(cc_grpc_client_freep) cc_grpc_client *c = cri_connect("run");
    if (!c)
        return 1;
    struct sigaction sa = {.sa_handler = on_interrupt};
    sigemptyset(&sa.sa_mask);
    (void)sigaction(SIGINT, &sa, NULL);
    (void)sigaction(SIGTERM, &sa, NULL);

    _cleanup_error_ cc_error *e = NULL;
    run_times t = {.begin = realtime_now()};
    if (pull(c, o.image, &e) < 0) {
        fprintf(stderr, "cloakctl run: '%s': %s\n", o.image, cc_error_message(e));
        return 1;
    }
    t.pulled = realtime_now();
    const char *tmp = getenv("TMPDIR");
    _cleanup_free_ char *log_dir = cc_xasprintf("%s/cloakctl-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(log_dir)) {
        fprintf(stderr, "cloakctl run: mkdtemp '%s': %s\n", log_dir, strerror(errno));
        return 1;
    }

    _cleanup_(run_pod_done) run_pod pod = {};
    _cleanup_free_ char *ctr_id = NULL;
    int code = 0;
    int ret = 0;
    if (o.pod)
        r = run_pod_existing(c, &pod, o.pod, log_dir, &e);
    else
        run_pod_new(&pod, log_dir);
    if (r >= 0)
        r = run_in_pod(c, &o, log_dir, &pod, &ctr_id, &code, &t, &e);
    if (r < 0) {
        fprintf(stderr, "cloakctl run: %s\n", cc_error_message(e));
        ret = 1;
    } else {
        ret = code >= 0 && code <= 255 ? code : 1;
    }
    if (o.keep && ret == 1 && !(o.pod ? ctr_id : pod.id))
        o.keep = false; /* nothing to keep but the empty log dir */
    if (!o.keep) {
        /* Our own pod goes with its container; in someone's pod only our container goes. */
        _cleanup_error_ cc_error *e2 = NULL;
        const char *what = o.pod ? "container" : "pod";
        const char *id = o.pod ? ctr_id : pod.id;
        if (id && (o.pod ? cri_container_remove(c, id, RUN_STOP_GRACE_SEC, &e2)
                         : cri_pod_remove(c, id, &e2)) < 0) {
            fprintf(stderr, "cloakctl run: %s %s: %s\n", what, id, cc_error_message(e2));
            ret = ret ? ret : 1;
        } else if (id) {
            t.removed = realtime_now();
        }
        remove_log_dir(log_dir);
    }
    if (o.timings)
        print_timings(&t);
    if (run_interrupted && ret == 0)
        ret = 128 + run_interrupted;
    return ret;
}
