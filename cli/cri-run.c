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
 * SIGINT/SIGTERM while the container runs stop it (StopContainer, 10 s grace); the pod is
 * still cleaned up. Synchronous: the only state shared with the signal handler is one flag.
 */
#include "cri.h"
#include "fs.h"
#include "util.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
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

/* Set by the SIGINT/SIGTERM handler only (the one mutable global: async-signal-safe). */
static volatile sig_atomic_t run_interrupted;

static void
on_interrupt(int signo)
{
    run_interrupted = signo;
}

typedef struct run_opts {
    const char *runtime; /* "" = the runtime's default handler */
    bool keep;
    bool entrypoint; /* CMD[0] replaces the image's entrypoint */
    const char *image;
    char **cmd;
    size_t n_cmd;
} run_opts;

/* --- the CRI log file ------------------------------------------------------------------------ */

typedef struct log_follower {
    int fd;
    char *path;
    char buf[RUN_LINE_MAX];
    size_t len;
} log_follower;

/* Writes one parsed CRI log line (without its '\n') to stdout or stderr. */
static void
log_emit_line(const char *line, size_t len)
{
    /* "<time> <stream> <tag> <payload>": payload may be empty (and then the last space too). */
    const char *p = memchr(line, ' ', len);
    const char *end = line + len;
    if (!p)
        goto raw;
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
            log_emit_line(f->buf + start, (size_t)(nl - (f->buf + start)));
            start = (size_t)(nl - f->buf) + 1;
        }
        if (start == 0 && f->len == sizeof(f->buf)) {
            log_emit_line(f->buf, f->len); /* no newline in 64 KiB: not a CRI log */
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

/* Follows the log until the container exited; *ret_code: its exit code. */
static int
follow(cc_grpc_client *c, const char *id, const char *log_path, int *ret_code, cc_error **err)
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
    if (f->len) /* a last line without '\n' */
        log_emit_line(f->buf, f->len);
    cc_close(f->fd);
    free(f);
    if (r < 0)
        return r;
    *ret_code = code;
    return 0;
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

/* CreateContainer "main" in pod_id (config pod); *ret_id: owned. */
static int
create_container(cc_grpc_client *c, const run_opts *o, const char *pod_id,
                 Runtime__V1__PodSandboxConfig *pod, char **ret_id, cc_error **err)
{
    Runtime__V1__ContainerMetadata cmeta = RUNTIME__V1__CONTAINER_METADATA__INIT;
    cmeta.name = (char *)"main";
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
    create.pod_sandbox_id = (char *)pod_id;
    create.config = &ctr;
    create.sandbox_config = pod;
    _cleanup_msg_ Runtime__V1__CreateContainerResponse *create_resp = NULL;
    int r = cri_call(c, "RuntimeService/CreateContainer", &create.base,
                     &runtime__v1__create_container_response__descriptor, CRI_TIMEOUT_DEFAULT,
                     (ProtobufCMessage **)&create_resp, err);
    if (r < 0)
        return r;
    *ret_id = cc_xstrdup(create_resp->container_id);
    return 0;
}

/* The whole run after the pull; *pod_id receives the pod as soon as it exists. */
static int
run_in_pod(cc_grpc_client *c, const run_opts *o, const char *log_dir, char **ret_pod_id,
           int *ret_code, cc_error **err)
{
    _cleanup_free_ char *suffix = random_hex(4);
    _cleanup_free_ char *name = cc_xasprintf("cloakctl-%s", suffix);
    _cleanup_free_ char *uid = random_hex(16);

    Runtime__V1__PodSandboxMetadata meta = RUNTIME__V1__POD_SANDBOX_METADATA__INIT;
    meta.name = name;
    meta.uid = uid;
    meta.namespace_ = (char *)"default";
    meta.attempt = 0;
    Runtime__V1__NamespaceOption pod_ns = RUNTIME__V1__NAMESPACE_OPTION__INIT;
    fill_namespaces(&pod_ns);
    Runtime__V1__LinuxSandboxSecurityContext pod_sec =
        RUNTIME__V1__LINUX_SANDBOX_SECURITY_CONTEXT__INIT;
    pod_sec.namespace_options = &pod_ns;
    Runtime__V1__LinuxPodSandboxConfig pod_linux = RUNTIME__V1__LINUX_POD_SANDBOX_CONFIG__INIT;
    pod_linux.security_context = &pod_sec;
    Runtime__V1__PodSandboxConfig pod = RUNTIME__V1__POD_SANDBOX_CONFIG__INIT;
    pod.metadata = &meta;
    pod.hostname = name;
    pod.log_directory = (char *)log_dir;
    pod.linux = &pod_linux;

    Runtime__V1__RunPodSandboxRequest runp = RUNTIME__V1__RUN_POD_SANDBOX_REQUEST__INIT;
    runp.config = &pod;
    runp.runtime_handler = (char *)o->runtime;
    _cleanup_msg_ Runtime__V1__RunPodSandboxResponse *runp_resp = NULL;
    int r = cri_call(c, "RuntimeService/RunPodSandbox", &runp.base,
                     &runtime__v1__run_pod_sandbox_response__descriptor, CRI_TIMEOUT_RUN_POD,
                     (ProtobufCMessage **)&runp_resp, err);
    if (r < 0)
        return r;
    *ret_pod_id = cc_xstrdup(runp_resp->pod_sandbox_id);
    if (run_interrupted)
        return cc_error_msg(err, -EINTR, "interrupted");

    _cleanup_free_ char *id = NULL;
    r = create_container(c, o, *ret_pod_id, &pod, &id, err);
    if (r < 0)
        return r;

    Runtime__V1__StartContainerRequest start = RUNTIME__V1__START_CONTAINER_REQUEST__INIT;
    start.container_id = (char *)id;
    _cleanup_msg_ ProtobufCMessage *start_resp = NULL;
    r = cri_call(c, "RuntimeService/StartContainer", &start.base,
                 &runtime__v1__start_container_response__descriptor, CRI_TIMEOUT_RUN_POD,
                 &start_resp, err);
    if (r < 0)
        return r;

    _cleanup_free_ char *log_path = cc_xasprintf("%s/%s", log_dir, RUN_LOG_NAME);
    r = follow(c, id, log_path, ret_code, err);
    if (r >= 0 && o->keep)
        fprintf(stderr, "cloakctl run: kept pod %s (%s), container %s, logs in %s\n", *ret_pod_id,
                name, id, log_dir);
    return r;
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
        {"runtime", required_argument, NULL, 'r'}, {"rm", no_argument, NULL, 'R'},
        {"keep", no_argument, NULL, 'k'},          {"entrypoint", no_argument, NULL, 'e'},
        {"help", no_argument, NULL, 'h'},          {},
    };
    static const char usage[] =
        "usage: cloakctl [--address SOCK] run [--runtime HANDLER] [--rm|--keep] [--entrypoint]\n"
        "                IMAGE [CMD...]\n";
    int opt;
    optind = 1;
    /* "+": options end at IMAGE; CMD has options of its own. */
    while ((opt = getopt_long(argc, argv, "+r:h", opts, NULL)) >= 0) {
        switch (opt) {
        case 'r':
            o->runtime = optarg;
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
    if (pull(c, o.image, &e) < 0) {
        fprintf(stderr, "cloakctl run: '%s': %s\n", o.image, cc_error_message(e));
        return 1;
    }
    const char *tmp = getenv("TMPDIR");
    _cleanup_free_ char *log_dir = cc_xasprintf("%s/cloakctl-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(log_dir)) {
        fprintf(stderr, "cloakctl run: mkdtemp '%s': %s\n", log_dir, strerror(errno));
        return 1;
    }

    _cleanup_free_ char *pod_id = NULL;
    int code = 0;
    int ret = 0;
    if (run_in_pod(c, &o, log_dir, &pod_id, &code, &e) < 0) {
        fprintf(stderr, "cloakctl run: %s\n", cc_error_message(e));
        ret = 1;
    } else {
        ret = code >= 0 && code <= 255 ? code : 1;
    }
    if (o.keep && ret == 1 && !pod_id)
        o.keep = false; /* nothing to keep but the empty log dir */
    if (!o.keep) {
        _cleanup_error_ cc_error *e2 = NULL;
        if (pod_id && cri_pod_remove(c, pod_id, &e2) < 0) {
            fprintf(stderr, "cloakctl run: pod %s: %s\n", pod_id, cc_error_message(e2));
            ret = ret ? ret : 1;
        }
        remove_log_dir(log_dir);
    }
    if (run_interrupted && ret == 0)
        ret = 128 + run_interrupted;
    return ret;
}
