/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
/*
 * agent-test: drives cloak-agent's Kata agent API (grpc.AgentService, grpc.Health) over the
 * host end of the guest's virtio-serial port, as the Kata shim does.
 *
 *   agent-test --socket PATH [--prog PATH-TO-ctr-prog] [--images IMAGES.json]
 *              [--ready-timeout SEC] SCENARIO
 *
 * Scenario "pull" (agent-test-pull.c, needs --images): containers whose rootfs the agent
 * pulls from the test registry of test/integration/pull/.
 *
 * Scenario "main": health and version, guest details, CreateSandbox with an ephemeral
 * tmpfs, the container rootfs copied in with CopyFile (ctr-prog as /bin/prog), container c1
 * (stdio through Read/WriteStream, SIGTERM, exit status 42), c2 (exit 7), the rest of the API
 * (agent-test-rest.c: exec, tty, ListProcesses, stats, pause, update, OOM events, 64 MiB of
 * stdout through ReadStdout and ReadStdio, OnlineCPUMem), the pause sandbox
 * container (image_guest_pull), negative cases (each must fail and leave the agent serving
 * and unchanged), raw frames (oversized, truncated) on fresh connections, the pause stopped
 * (SIGTERM, status 0), c3 left running, and DestroySandbox, after which the guest powers off (agent-vm.sh checks that).
 *
 * Prints "ok STEP" or "FAIL STEP: WHY" per step and "N passed, N failed" at the end.
 * Exit 0 when everything passed, 1 on failures, 2 on usage errors.
 */
#include "error.h"
#include "loop.h"
#include "macro.h"
#include "ttrpc.h"
#include "util.h"

#include "agent-test.h"

#include "google/protobuf/empty.pb-c.h"
#include "kata/agent.pb-c.h"
#include "kata/health.pb-c.h"
#include "kata/oci.pb-c.h"
#include "ttrpc/ttrpc.pb-c.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

void
rpc_result_clear(rpc_result *r)
{
    free(r->message);
    if (r->resp)
        protobuf_c_message_free_unpacked(r->resp, NULL);
    *r = (rpc_result){0};
}

double
now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void
ok(test_ctx *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("ok ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    fflush(stdout);
    va_end(ap);
    t->passed++;
}

/* Always returns -1, for "return fail(...)". */
int
fail(test_ctx *t, const char *step, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("FAIL %s: ", step);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    fflush(stdout);
    va_end(ap);
    t->failed++;
    return -1;
}

void
info(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("# ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    fflush(stdout);
    va_end(ap);
}

const char *
code_name(int code)
{
    return code < 0 ? "local-error" : cc_ttrpc_code_to_string((cc_ttrpc_code)code);
}

/*
 * One synchronous call of service/method with req; on OK, unpacks the response as resp_desc
 * (may be NULL). Returns r->code.
 */
int
rpc(test_ctx *t, const char *service, const char *method, const ProtobufCMessage *req,
    const ProtobufCMessageDescriptor *resp_desc, uint64_t timeout_usec, rpc_result *r)
{
    _cleanup_error_ cc_error *err = NULL;
    cc_ttrpc_reply reply = {0};

    *r = (rpc_result){.code = -1};
    if (!t->client) {
        r->message = cc_xstrdup("not connected");
        return -1;
    }
    cc_ttrpc_request rq = {
        .service = service, .method = method, .msg = req, .timeout_usec = timeout_usec};
    if (cc_ttrpc_client_call_sync(t->client, &rq, &reply, &err) < 0) {
        r->message = cc_xstrdup(cc_error_message(err));
        return -1;
    }
    r->code = (int)reply.code;
    r->message = TAKE_PTR(reply.message);
    if (reply.code == CC_TTRPC_OK && resp_desc) {
        r->resp = protobuf_c_message_unpack(resp_desc, NULL, reply.len, reply.payload);
        if (!r->resp) {
            free(r->message);
            r->message = cc_xasprintf("undecodable %s (%zu bytes)", resp_desc->name, reply.len);
            r->code = -1;
        }
    }
    cc_ttrpc_reply_clear(&reply);
    return r->code;
}

/* An AgentService call whose response is not needed: reports step ok or FAIL. */
int
expect_ok(test_ctx *t, const char *step, const char *method, const ProtobufCMessage *req)
{
    rpc_result r;
    int code = rpc(t, AGENT_SERVICE, method, req, NULL, CALL_TIMEOUT, &r);
    int ret = 0;
    if (code != CC_TTRPC_OK)
        ret = fail(t, step, "%s: %s %s", method, code_name(code), r.message);
    else
        ok(t, "%s", step);
    rpc_result_clear(&r);
    return ret;
}

/*
 * An AgentService call that must fail: with want (>= 0) exactly, any error status for -1.
 * field (may be NULL): a word the message must contain (case-insensitive).
 */
int
expect_error(test_ctx *t, const char *step, const char *method, const ProtobufCMessage *req,
             int want, const char *field)
{
    rpc_result r;
    int code = rpc(t, AGENT_SERVICE, method, req, NULL, CALL_TIMEOUT, &r);
    int ret = 0;
    if (code < 0)
        ret = fail(t, step, "%s: no answer: %s", method, r.message);
    else if (code == CC_TTRPC_OK)
        ret = fail(t, step, "%s succeeded, want an error", method);
    else if (code == CC_TTRPC_DEADLINE_EXCEEDED || code == CC_TTRPC_UNAVAILABLE)
        ret = fail(t, step, "%s: %s %s (no real answer)", method, code_name(code), r.message);
    else if (want >= 0 && code != want)
        ret = fail(t, step, "%s: %s \"%s\", want %s", method, code_name(code), r.message,
                   code_name(want));
    else if (field && !strcasestr(r.message, field))
        ret = fail(t, step, "%s: %s \"%s\" does not name '%s'", method, code_name(code),
                   r.message, field);
    else
        ok(t, "%s (%s \"%s\")", step, code_name(code), r.message);
    rpc_result_clear(&r);
    return ret;
}

/* --- connection ------------------------------------------------------------------------- */

static int
connect_unix(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return -errno;
    return TAKE_FD(fd);
}

static void
disconnect(test_ctx *t)
{
    t->client = cc_ttrpc_client_free(t->client);
}

/* Health.Check with timeout: the status code; *serving set from the response. */
static int
health_check(test_ctx *t, uint64_t timeout_usec, int *serving, rpc_result *r)
{
    Grpc__CheckRequest req = GRPC__CHECK_REQUEST__INIT;
    int code = rpc(t, HEALTH_SERVICE, "Check", &req.base,
                   &grpc__health_check_response__descriptor, timeout_usec, r);
    if (code == CC_TTRPC_OK)
        *serving = ((Grpc__HealthCheckResponse *)r->resp)->status;
    return code;
}

/*
 * Connects (again) and polls Health.Check until the agent answers SERVING, up to timeout_sec.
 * QEMU's socket exists from the start, but the guest opens its port only once the agent runs;
 * until then requests wait in QEMU (a short per-try timeout, then another try: late answers
 * to forgotten calls are dropped by the client).
 */
int
connect_agent(test_ctx *t, unsigned timeout_sec, double *ret_elapsed)
{
    double start = now_sec();
    char last[256] = "nothing tried";

    disconnect(t);
    while (now_sec() - start < timeout_sec) {
        if (!t->client || cc_ttrpc_client_is_closed(t->client)) {
            disconnect(t);
            int fd = connect_unix(t->socket_path);
            if (fd < 0) {
                snprintf(last, sizeof(last), "connect '%s': %s", t->socket_path, strerror(-fd));
                usleep(200 * 1000);
                continue;
            }
            _cleanup_error_ cc_error *err = NULL;
            if (cc_ttrpc_client_new(t->loop, fd, &t->client, &err) < 0) {
                snprintf(last, sizeof(last), "client: %s", cc_error_message(err));
                cc_close(fd);
                return -1;
            }
        }
        rpc_result r;
        int serving = 0;
        int code = health_check(t, 3 * USEC_PER_SEC, &serving, &r);
        if (code == CC_TTRPC_OK && serving == GRPC__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING) {
            rpc_result_clear(&r);
            *ret_elapsed = now_sec() - start;
            return 0;
        }
        snprintf(last, sizeof(last), "Health.Check: %s %s (status %d)", code_name(code),
                 r.message, serving);
        rpc_result_clear(&r);
        if (code != CC_TTRPC_DEADLINE_EXCEEDED)
            usleep(200 * 1000); /* an answer or a closed connection: do not spin */
    }
    fprintf(stderr, "agent-test: agent not ready after %u s: %s\n", timeout_sec, last);
    return -1;
}

/* After a negative case: the agent still answers Health.Check SERVING. */
int
check_health(test_ctx *t, const char *after)
{
    rpc_result r;
    int serving = 0;
    int code = health_check(t, CALL_TIMEOUT, &serving, &r);
    int ret = 0;
    if (code != CC_TTRPC_OK)
        ret = fail(t, "health", "after %s: %s %s", after, code_name(code), r.message);
    else if (serving != GRPC__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING)
        ret = fail(t, "health", "after %s: status %d", after, serving);
    rpc_result_clear(&r);
    return ret;
}

/* --- OCI specs ---------------------------------------------------------------------------- */


static const char *const cap_set[] = {"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_KILL", "CAP_SETGID",
                                      "CAP_SETUID"};
static const char *const env_path[] = {"PATH=/bin"};
static const char *const ns_types[] = {"pid", "ipc", "uts", "mount"};
static const char *const masked[] = {"/proc/kcore", "/proc/keys"};
static const char *const readonly[] = {"/proc/sys", "/proc/sysrq-trigger"};
static const char *const dev_opts[] = {"nosuid", "strictatime", "mode=755", "size=65536k"};
static const char *const pts_opts[] = {"nosuid", "noexec", "newinstance", "ptmxmode=0666",
                                       "mode=0620", "gid=5"};
static const char *const sys_opts[] = {"nosuid", "noexec", "nodev", "ro"};

static const struct {
    const char *dest, *source, *type;
    const char *const *options;
    size_t n_options;
} mount_table[] = {
    {"/proc", "proc", "proc", NULL, 0},
    {"/dev", "tmpfs", "tmpfs", dev_opts, ELEMENTSOF(dev_opts)},
    {"/dev/pts", "devpts", "devpts", pts_opts, ELEMENTSOF(pts_opts)},
    {"/sys", "sysfs", "sysfs", sys_opts, ELEMENTSOF(sys_opts)},
};
_Static_assert(ELEMENTSOF(mount_table) == SPEC_N_MOUNTS, "SPEC_N_MOUNTS");


/* Fills b: root_path, args (n_args), hostname; n_mounts of mount_table (2 for the pause). */
void
spec_init(spec_buf *b, const char *root_path, const char *const *args, size_t n_args,
          const char *hostname, size_t n_mounts)
{
    *b = (spec_buf){
        .spec = GRPC__SPEC__INIT,
        .process = GRPC__PROCESS__INIT,
        .user = GRPC__USER__INIT,
        .caps = GRPC__LINUX_CAPABILITIES__INIT,
        .root = GRPC__ROOT__INIT,
        .lnx = GRPC__LINUX__INIT,
    };
    b->caps.bounding = b->caps.effective = b->caps.inheritable = b->caps.permitted =
        STRV(cap_set);
    b->caps.n_bounding = b->caps.n_effective = b->caps.n_inheritable = b->caps.n_permitted =
        ELEMENTSOF(cap_set);

    b->process.args = STRV(args);
    b->process.n_args = n_args;
    b->process.env = STRV(env_path);
    b->process.n_env = ELEMENTSOF(env_path);
    b->process.cwd = (char *)"/";
    b->process.user = &b->user;
    b->process.capabilities = &b->caps;

    b->root.path = (char *)root_path;

    for (size_t i = 0; i < ELEMENTSOF(mount_table); i++) {
        b->mounts[i] = (Grpc__Mount)GRPC__MOUNT__INIT;
        b->mounts[i].destination = (char *)mount_table[i].dest;
        b->mounts[i].source = (char *)mount_table[i].source;
        b->mounts[i].type = (char *)mount_table[i].type;
        b->mounts[i].options = STRV(mount_table[i].options);
        b->mounts[i].n_options = mount_table[i].n_options;
        b->mount_ptrs[i] = &b->mounts[i];
    }
    for (size_t i = 0; i < ELEMENTSOF(b->ns); i++) {
        b->ns[i] = (Grpc__LinuxNamespace)GRPC__LINUX_NAMESPACE__INIT;
        b->ns[i].type = (char *)ns_types[i];
        b->ns_ptrs[i] = &b->ns[i];
    }
    b->lnx.namespaces = b->ns_ptrs;
    b->lnx.n_namespaces = ELEMENTSOF(b->ns);
    b->lnx.cgroupspath = (char *)"/cloak/c1";
    b->lnx.maskedpaths = STRV(masked);
    b->lnx.n_maskedpaths = ELEMENTSOF(masked);
    b->lnx.readonlypaths = STRV(readonly);
    b->lnx.n_readonlypaths = ELEMENTSOF(readonly);

    b->spec.version = (char *)"1.0.2";
    b->spec.process = &b->process;
    b->spec.root = &b->root;
    b->spec.hostname = (char *)hostname;
    b->spec.mounts = b->mount_ptrs;
    b->spec.n_mounts = n_mounts;
    b->spec.linux = &b->lnx;
}

static const char *const args_echo[] = {"/bin/prog", "echo"};
static const char *const args_exit7[] = {"/bin/prog", "exit", "7"};
static const char *const args_sleep[] = {"/bin/prog", "sleep"};
static const char *const args_pause[] = {"/pause"};

/* CreateContainer of id on the copied rootfs running args, no storages. */
int
create_container(test_ctx *t, const char *step, const char *id, const char *const *args,
                 size_t n_args)
{
    spec_buf b;
    spec_init(&b, ROOTFS, args, n_args, id, ELEMENTSOF(mount_table));
    Grpc__CreateContainerRequest req = GRPC__CREATE_CONTAINER_REQUEST__INIT;
    req.container_id = req.exec_id = (char *)id;
    req.oci = &b.spec;
    return expect_ok(t, step, "CreateContainer", &req.base);
}

int
container_call(test_ctx *t, const char *step, const char *method, const char *id)
{
    if (cc_streq(method, "StartContainer")) {
        Grpc__StartContainerRequest req = GRPC__START_CONTAINER_REQUEST__INIT;
        req.container_id = (char *)id;
        return expect_ok(t, step, method, &req.base);
    }
    Grpc__RemoveContainerRequest req = GRPC__REMOVE_CONTAINER_REQUEST__INIT;
    req.container_id = (char *)id;
    return expect_ok(t, step, method, &req.base);
}

int
signal_exec(test_ctx *t, const char *step, const char *id, const char *exec_id, unsigned signo)
{
    Grpc__SignalProcessRequest req = GRPC__SIGNAL_PROCESS_REQUEST__INIT;
    req.container_id = (char *)id;
    req.exec_id = (char *)exec_id;
    req.signal = signo;
    return expect_ok(t, step, "SignalProcess", &req.base);
}

static int
signal_process(test_ctx *t, const char *step, const char *id, unsigned signo)
{
    return signal_exec(t, step, id, "", signo);
}

int
wait_exec(test_ctx *t, const char *step, const char *id, const char *exec_id, int want)
{
    Grpc__WaitProcessRequest req = GRPC__WAIT_PROCESS_REQUEST__INIT;
    req.container_id = (char *)id;
    req.exec_id = (char *)exec_id;
    rpc_result r;
    int code = rpc(t, AGENT_SERVICE, "WaitProcess", &req.base,
                   &grpc__wait_process_response__descriptor, CALL_TIMEOUT, &r);
    int ret = 0;
    if (code != CC_TTRPC_OK)
        ret = fail(t, step, "WaitProcess: %s %s", code_name(code), r.message);
    else if (((Grpc__WaitProcessResponse *)r.resp)->status != want)
        ret = fail(t, step, "status %d, want %d", ((Grpc__WaitProcessResponse *)r.resp)->status,
                   want);
    else
        ok(t, "%s (status %d)", step, want);
    rpc_result_clear(&r);
    return ret;
}

static int
wait_process(test_ctx *t, const char *step, const char *id, int want)
{
    return wait_exec(t, step, id, "", want);
}

/* --- stdio -------------------------------------------------------------------------------- */

int
read_until_buf(test_ctx *t, int which, const char *id, const char *exec_id, char **buf,
               const char *want)
{
    const char *method = which == 0 ? "ReadStdout" : "ReadStderr";
    _cleanup_free_ char *step = cc_xasprintf("%s%s%s '%.*s'", method, *exec_id ? " " : "",
                                             exec_id, (int)strcspn(want, "\n"), want);
    double start = now_sec();

    for (;;) {
        char *hit = *buf ? strstr(*buf, want) : NULL;
        if (hit) {
            char *rest = cc_xstrdup(hit + strlen(want));
            free(*buf);
            *buf = rest;
            ok(t, "%s", step);
            return 0;
        }
        if (now_sec() - start > CALL_TIMEOUT / USEC_PER_SEC)
            return fail(t, step, "not within 30 s; got \"%s\"", *buf ?: "");

        Grpc__ReadStreamRequest req = GRPC__READ_STREAM_REQUEST__INIT;
        req.container_id = (char *)id;
        req.exec_id = (char *)exec_id;
        req.len = 4096;
        rpc_result r;
        int code = rpc(t, AGENT_SERVICE, method, &req.base, &grpc__read_stream_response__descriptor,
                       CALL_TIMEOUT, &r);
        if (code != CC_TTRPC_OK) {
            fail(t, step, "%s: %s %s; got \"%s\"", method, code_name(code), r.message, *buf ?: "");
            rpc_result_clear(&r);
            return -1;
        }
        ProtobufCBinaryData *d = &((Grpc__ReadStreamResponse *)r.resp)->data;
        char *joined = cc_xasprintf("%s%.*s", *buf ?: "", (int)d->len, (char *)d->data);
        free(*buf);
        *buf = joined;
        rpc_result_clear(&r);
    }
}

/* The same for a container's init (exec_id = id), with t->out as the buffers (c1, c4). */
static int
read_until(test_ctx *t, int which, const char *id, const char *want)
{
    return read_until_buf(t, which, id, id, &t->out[which], want);
}

int
write_stdin_exec(test_ctx *t, const char *id, const char *exec_id, const char *data)
{
    Grpc__WriteStreamRequest req = GRPC__WRITE_STREAM_REQUEST__INIT;
    req.container_id = (char *)id;
    req.exec_id = (char *)exec_id;
    req.data = (ProtobufCBinaryData){strlen(data), (uint8_t *)data};
    rpc_result r;
    int code = rpc(t, AGENT_SERVICE, "WriteStdin", &req.base,
                   &grpc__write_stream_response__descriptor, CALL_TIMEOUT, &r);
    int ret = 0;
    if (code != CC_TTRPC_OK)
        ret = fail(t, "WriteStdin", "%s %s", code_name(code), r.message);
    else if (((Grpc__WriteStreamResponse *)r.resp)->len != strlen(data))
        ret = fail(t, "WriteStdin", "len %u, want %zu", ((Grpc__WriteStreamResponse *)r.resp)->len,
                   strlen(data));
    else
        ok(t, "WriteStdin%s%s (len %zu)", *exec_id ? " " : "", exec_id, strlen(data));
    rpc_result_clear(&r);
    return ret;
}

static int
write_stdin(test_ctx *t, const char *id, const char *data)
{
    return write_stdin_exec(t, id, id, data);
}

/* After the process exited: ReadStdout ends with an error status, each call within 10 s. */
static int
read_until_eof(test_ctx *t, const char *id)
{
    for (int i = 0; i < 64; i++) {
        Grpc__ReadStreamRequest req = GRPC__READ_STREAM_REQUEST__INIT;
        req.container_id = req.exec_id = (char *)id;
        req.len = 4096;
        rpc_result r;
        int code = rpc(t, AGENT_SERVICE, "ReadStdout", &req.base,
                       &grpc__read_stream_response__descriptor, EOF_READ_TIMEOUT, &r);
        if (code == CC_TTRPC_OK) {
            ProtobufCBinaryData *d = &((Grpc__ReadStreamResponse *)r.resp)->data;
            info("ReadStdout after exit: \"%.*s\"", (int)d->len, (char *)d->data);
            rpc_result_clear(&r);
            continue;
        }
        int ret = 0;
        if (code < 0 || code == CC_TTRPC_DEADLINE_EXCEEDED)
            ret = fail(t, "ReadStdout at EOF", "%s %s", code_name(code), r.message);
        else
            ok(t, "ReadStdout at EOF (%s \"%s\")", code_name(code), r.message);
        rpc_result_clear(&r);
        return ret;
    }
    return fail(t, "ReadStdout at EOF", "still data after 64 reads");
}

/* --- CopyFile ----------------------------------------------------------------------------- */

static void
copy_req_init(Grpc__CopyFileRequest *req, const char *path, uint32_t mode)
{
    *req = (Grpc__CopyFileRequest)GRPC__COPY_FILE_REQUEST__INIT;
    req->path = (char *)path;
    req->file_mode = mode;
    req->dir_mode = 0755;
}

static int
copy_dir(test_ctx *t, const char *path)
{
    Grpc__CopyFileRequest req;
    copy_req_init(&req, path, S_IFDIR | 0755);
    _cleanup_free_ char *step = cc_xasprintf("CopyFile dir %s", path);
    return expect_ok(t, step, "CopyFile", &req.base);
}

static int
copy_symlink(test_ctx *t, const char *path, const char *target)
{
    Grpc__CopyFileRequest req;
    copy_req_init(&req, path, S_IFLNK | 0777);
    req.file_size = (int64_t)strlen(target);
    req.data = (ProtobufCBinaryData){strlen(target), (uint8_t *)target};
    _cleanup_free_ char *step = cc_xasprintf("CopyFile symlink %s -> %s", path, target);
    return expect_ok(t, step, "CopyFile", &req.base);
}

/* The file at src as path, in COPY_CHUNK pieces with their offsets, as Kata's runtime. */
static int
copy_file(test_ctx *t, const char *src, const char *path)
{
    _cleanup_free_ char *step = cc_xasprintf("CopyFile %s", path);
    _cleanup_fclose_ FILE *f = fopen(src, "re");
    if (!f)
        return fail(t, step, "open '%s': %m", src);
    struct stat st;
    if (fstat(fileno(f), &st) < 0)
        return fail(t, step, "stat '%s': %m", src);
    _cleanup_free_ uint8_t *buf = cc_xmalloc(COPY_CHUNK);
    int64_t offset = 0;
    unsigned chunks = 0;
    do {
        size_t n = fread(buf, 1, COPY_CHUNK, f);
        if (n == 0 && ferror(f))
            return fail(t, step, "read '%s': %m", src);
        Grpc__CopyFileRequest req;
        copy_req_init(&req, path, S_IFREG | 0755);
        req.file_size = st.st_size;
        req.offset = offset;
        req.data = (ProtobufCBinaryData){n, buf};
        rpc_result r;
        int code = rpc(t, AGENT_SERVICE, "CopyFile", &req.base, NULL, CALL_TIMEOUT, &r);
        if (code != CC_TTRPC_OK) {
            fail(t, step, "chunk at %" PRId64 ": %s %s", offset, code_name(code), r.message);
            rpc_result_clear(&r);
            return -1;
        }
        rpc_result_clear(&r);
        offset += (int64_t)n;
        chunks++;
    } while (offset < st.st_size);
    ok(t, "%s (%" PRId64 " bytes in %u chunks)", step, offset, chunks);
    return 0;
}

/* --- scenario steps ----------------------------------------------------------------------- */

static void
step_health_version(test_ctx *t)
{
    rpc_result r;
    int serving = 0;
    int code = health_check(t, CALL_TIMEOUT, &serving, &r);
    if (code != CC_TTRPC_OK)
        fail(t, "Health.Check", "%s %s", code_name(code), r.message);
    else if (serving != GRPC__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING)
        fail(t, "Health.Check", "status %d, want SERVING (1)", serving);
    else
        ok(t, "Health.Check SERVING");
    rpc_result_clear(&r);

    Grpc__CheckRequest req = GRPC__CHECK_REQUEST__INIT;
    code = rpc(t, HEALTH_SERVICE, "Version", &req.base, &grpc__version_check_response__descriptor,
               CALL_TIMEOUT, &r);
    if (code != CC_TTRPC_OK) {
        fail(t, "Health.Version", "%s %s", code_name(code), r.message);
    } else {
        Grpc__VersionCheckResponse *v = (Grpc__VersionCheckResponse *)r.resp;
        if (!*v->agent_version)
            fail(t, "Health.Version", "empty agent_version");
        else
            ok(t, "Health.Version agent_version=%s grpc_version=%s", v->agent_version,
               v->grpc_version);
    }
    rpc_result_clear(&r);
}

static void
step_guest_details(test_ctx *t)
{
    Grpc__GuestDetailsRequest req = GRPC__GUEST_DETAILS_REQUEST__INIT;
    req.mem_block_size = true;
    rpc_result r;
    int code = rpc(t, AGENT_SERVICE, "GetGuestDetails", &req.base,
                   &grpc__guest_details_response__descriptor, CALL_TIMEOUT, &r);
    if (code != CC_TTRPC_OK) {
        fail(t, "GetGuestDetails", "%s %s", code_name(code), r.message);
    } else {
        Grpc__GuestDetailsResponse *d = (Grpc__GuestDetailsResponse *)r.resp;
        if (!d->agent_details) {
            fail(t, "GetGuestDetails", "no agent_details");
        } else {
            _cleanup_free_ char *handlers = cc_xstrdup("");
            for (size_t i = 0; i < d->agent_details->n_storage_handlers; i++) {
                char *n = cc_xasprintf("%s%s%s", handlers, i ? "," : "",
                                       d->agent_details->storage_handlers[i]);
                free(handlers);
                handlers = n;
            }
            ok(t, "GetGuestDetails version=%s storage_handlers=[%s] mem_block_size=%" PRIu64,
               d->agent_details->version, handlers, d->mem_block_size_bytes);
        }
    }
    rpc_result_clear(&r);
}

static int
step_create_sandbox(test_ctx *t)
{
    static const char *const opts[] = {"size=64m"};
    Grpc__Storage st = GRPC__STORAGE__INIT;
    st.driver = (char *)"ephemeral";
    st.source = (char *)"tmpfs";
    st.fstype = (char *)"tmpfs";
    st.options = STRV(opts);
    st.n_options = ELEMENTSOF(opts);
    st.mount_point = (char *)EPHEMERAL;
    Grpc__Storage *storages[] = {&st};
    Grpc__CreateSandboxRequest req = GRPC__CREATE_SANDBOX_REQUEST__INIT;
    req.hostname = (char *)"cloak-test";
    req.sandbox_id = (char *)"sb1";
    req.storages = storages;
    req.n_storages = ELEMENTSOF(storages);
    return expect_ok(t, "CreateSandbox", "CreateSandbox", &req.base);
}

static int
step_rootfs(test_ctx *t)
{
    static const char *const dirs[] = {ROOTFS,          ROOTFS "/bin", ROOTFS "/proc",
                                       ROOTFS "/dev",   ROOTFS "/sys", ROOTFS "/tmp",
                                       ROOTFS "/etc"};
    int ret = 0;
    for (size_t i = 0; i < ELEMENTSOF(dirs); i++)
        if (copy_dir(t, dirs[i]) < 0)
            ret = -1;
    if (copy_file(t, t->prog_path, ROOTFS "/bin/prog") < 0)
        ret = -1;
    if (copy_symlink(t, ROOTFS "/bin/sh-link", "prog") < 0)
        ret = -1;
    return ret;
}

static void
step_c1(test_ctx *t)
{
    if (create_container(t, "CreateContainer c1", "c1", args_echo, ELEMENTSOF(args_echo)) < 0 ||
        container_call(t, "StartContainer c1", "StartContainer", "c1") < 0)
        return;
    if (read_until(t, 0, "c1", "hello from the container\n") < 0 ||
        read_until(t, 1, "c1", "hello stderr\n") < 0)
        return;
    if (write_stdin(t, "c1", "ping\n") < 0 || read_until(t, 0, "c1", "ping\n") < 0)
        return;
    Grpc__CloseStdinRequest creq = GRPC__CLOSE_STDIN_REQUEST__INIT;
    creq.container_id = creq.exec_id = (char *)"c1";
    if (expect_ok(t, "CloseStdin c1", "CloseStdin", &creq.base) < 0 ||
        read_until(t, 0, "c1", "stdin closed\n") < 0)
        return;
    if (signal_process(t, "SignalProcess c1 SIGTERM", "c1", 15) < 0)
        return;
    wait_process(t, "WaitProcess c1", "c1", 42);
    read_until_eof(t, "c1");

    Grpc__RemoveContainerRequest rreq = GRPC__REMOVE_CONTAINER_REQUEST__INIT;
    rreq.container_id = (char *)"c1";
    rreq.timeout = 0;
    expect_ok(t, "RemoveContainer c1", "RemoveContainer", &rreq.base);
}

static void
step_c2(test_ctx *t)
{
    if (create_container(t, "CreateContainer c2", "c2", args_exit7, ELEMENTSOF(args_exit7)) < 0 ||
        container_call(t, "StartContainer c2", "StartContainer", "c2") < 0)
        return;
    wait_process(t, "WaitProcess c2", "c2", 7);
    container_call(t, "RemoveContainer c2", "RemoveContainer", "c2");
}

static void
step_pause(test_ctx *t)
{
    static const char *const drv_opts[] = {
        "image_guest_pull={\"metadata\":{\"io.kubernetes.cri.container-type\":\"sandbox\"}}"};
    spec_buf b;
    spec_init(&b, PAUSE_ROOTFS, args_pause, ELEMENTSOF(args_pause), "cloak-test", 2);
    Grpc__Storage st = GRPC__STORAGE__INIT;
    st.driver = (char *)"image_guest_pull";
    st.source = (char *)"pause";
    st.fstype = (char *)"overlay";
    st.mount_point = (char *)PAUSE_ROOTFS;
    st.driver_options = STRV(drv_opts);
    st.n_driver_options = ELEMENTSOF(drv_opts);
    Grpc__Storage *storages[] = {&st};
    Grpc__CreateContainerRequest req = GRPC__CREATE_CONTAINER_REQUEST__INIT;
    req.container_id = req.exec_id = (char *)"sb1";
    req.oci = &b.spec;
    req.storages = storages;
    req.n_storages = ELEMENTSOF(storages);
    if (expect_ok(t, "CreateContainer sb1 (pause)", "CreateContainer", &req.base) < 0 ||
        container_call(t, "StartContainer sb1", "StartContainer", "sb1") < 0 ||
        signal_process(t, "SignalProcess sb1 0 (exists)", "sb1", 0) < 0)
        return;
    t->pause_running = true;
}

/*
 * Ends the pause container: SIGTERM, exit status 0. Run seconds after its start, on purpose:
 * the agent turns SIGTERM into SIGKILL for a container's PID 1 without a SIGTERM handler (as
 * Kata's agent does, from SigCgt), and right after StartContainer /pause may not have
 * installed its handler yet (status 137 then).
 */
static void
step_pause_stop(test_ctx *t)
{
    if (!t->pause_running)
        return;
    if (signal_process(t, "SignalProcess sb1 0 (still there)", "sb1", 0) < 0 ||
        signal_process(t, "SignalProcess sb1 SIGTERM", "sb1", 15) < 0)
        return;
    wait_process(t, "WaitProcess sb1", "sb1", 0);
    container_call(t, "RemoveContainer sb1", "RemoveContainer", "sb1");
}

/* --- negative cases ----------------------------------------------------------------------- */

static void
mut_no_process(spec_buf *b)
{
    b->spec.process = NULL;
}

static void
mut_no_args(spec_buf *b)
{
    b->process.n_args = 0;
    b->process.args = NULL;
}

static void
mut_relative_root(spec_buf *b)
{
    b->root.path = (char *)"sandbox/ephemeral/rootfs1/rootfs";
}

static void
mut_relative_mount(spec_buf *b)
{
    b->mounts[1].destination = (char *)"dev";
}

static const struct {
    const char *name;
    void (*mutate)(spec_buf *b);
    const char *field; /* what the error message must name */
} bad_specs[] = {
    {"no Process", mut_no_process, "process"},
    {"empty Args", mut_no_args, "args"},
    {"relative Root.Path", mut_relative_root, "root"},
    {"relative Mount destination", mut_relative_mount, "destination"},
};

static void
step_negative(test_ctx *t)
{
    /* unknown container */
    Grpc__StartContainerRequest sreq = GRPC__START_CONTAINER_REQUEST__INIT;
    sreq.container_id = (char *)"nope";
    expect_error(t, "StartContainer unknown id", "StartContainer", &sreq.base,
                 CC_TTRPC_NOT_FOUND, NULL);
    check_health(t, "StartContainer unknown id");

    /* storages outside /run/kata-containers */
    static const char *const bad_mount_points[] = {"/run/kata-containers/../../etc", "/etc/evil"};
    for (size_t i = 0; i < ELEMENTSOF(bad_mount_points); i++) {
        spec_buf b;
        spec_init(&b, ROOTFS, args_sleep, ELEMENTSOF(args_sleep), "c3", ELEMENTSOF(mount_table));
        Grpc__Storage st = GRPC__STORAGE__INIT;
        st.driver = (char *)"ephemeral";
        st.source = (char *)"tmpfs";
        st.fstype = (char *)"tmpfs";
        st.mount_point = (char *)bad_mount_points[i];
        Grpc__Storage *storages[] = {&st};
        Grpc__CreateContainerRequest req = GRPC__CREATE_CONTAINER_REQUEST__INIT;
        req.container_id = req.exec_id = (char *)"c3";
        req.oci = &b.spec;
        req.storages = storages;
        req.n_storages = 1;
        _cleanup_free_ char *step = cc_xasprintf("CreateContainer storage %s", st.mount_point);
        expect_error(t, step, "CreateContainer", &req.base, CC_TTRPC_INVALID_ARGUMENT, NULL);
        check_health(t, step);
    }

    /* CopyFile outside the base */
    static const char *const bad_paths[] = {"/run/kata-containers/../../etc/passwd",
                                            "/etc/passwd", "run/kata-containers/relative"};
    for (size_t i = 0; i < ELEMENTSOF(bad_paths); i++) {
        Grpc__CopyFileRequest req;
        copy_req_init(&req, bad_paths[i], S_IFREG | 0644);
        req.file_size = 6;
        req.data = (ProtobufCBinaryData){6, (uint8_t *)"owned\n"};
        _cleanup_free_ char *step = cc_xasprintf("CopyFile %s", bad_paths[i]);
        expect_error(t, step, "CopyFile", &req.base, -1, NULL);
        check_health(t, step);
    }

    /* ... nor through a symlink in the base that points out of it */
    {
        Grpc__CopyFileRequest req;
        copy_req_init(&req, EPHEMERAL "/esc", S_IFLNK | 0777);
        req.file_size = 4;
        req.data = (ProtobufCBinaryData){4, (uint8_t *)"/etc"};
        rpc_result r;
        int code = rpc(t, AGENT_SERVICE, "CopyFile", &req.base, NULL, CALL_TIMEOUT, &r);
        info("CopyFile symlink esc -> /etc: %s %s", code_name(code), r.message);
        rpc_result_clear(&r);
        copy_req_init(&req, EPHEMERAL "/esc/owned", S_IFREG | 0644);
        req.file_size = 6;
        req.data = (ProtobufCBinaryData){6, (uint8_t *)"owned\n"};
        expect_error(t, "CopyFile through symlink esc -> /etc", "CopyFile", &req.base, -1, NULL);
        check_health(t, "CopyFile through symlink");
    }

    /* malformed specs, all for id c3 */
    for (size_t i = 0; i < ELEMENTSOF(bad_specs); i++) {
        spec_buf b;
        spec_init(&b, ROOTFS, args_sleep, ELEMENTSOF(args_sleep), "c3", ELEMENTSOF(mount_table));
        bad_specs[i].mutate(&b);
        Grpc__CreateContainerRequest req = GRPC__CREATE_CONTAINER_REQUEST__INIT;
        req.container_id = req.exec_id = (char *)"c3";
        req.oci = &b.spec;
        _cleanup_free_ char *step = cc_xasprintf("CreateContainer spec %s", bad_specs[i].name);
        expect_error(t, step, "CreateContainer", &req.base, CC_TTRPC_INVALID_ARGUMENT,
                     bad_specs[i].field);
        check_health(t, step);
    }

    /* bad container ids */
    char long_id[301];
    memset(long_id, 'a', 300);
    long_id[300] = '\0';
    const char *const bad_ids[] = {"a/b", "..", "../c3", long_id};
    for (size_t i = 0; i < ELEMENTSOF(bad_ids); i++) {
        spec_buf b;
        spec_init(&b, ROOTFS, args_sleep, ELEMENTSOF(args_sleep), "c3", ELEMENTSOF(mount_table));
        Grpc__CreateContainerRequest req = GRPC__CREATE_CONTAINER_REQUEST__INIT;
        req.container_id = req.exec_id = (char *)bad_ids[i];
        req.oci = &b.spec;
        _cleanup_free_ char *step =
            strlen(bad_ids[i]) > 16
                ? cc_xasprintf("CreateContainer id of %zu chars", strlen(bad_ids[i]))
                : cc_xasprintf("CreateContainer id '%s'", bad_ids[i]);
        expect_error(t, step, "CreateContainer", &req.base, CC_TTRPC_INVALID_ARGUMENT, NULL);
        check_health(t, step);
    }

    /* a message over 4 MiB is refused by our client, without touching the connection */
    {
        _cleanup_free_ uint8_t *big = cc_xzalloc(CC_TTRPC_MESSAGE_LENGTH_MAX + 1);
        Grpc__CopyFileRequest req;
        copy_req_init(&req, ROOTFS "/tmp/big", S_IFREG | 0644);
        req.file_size = CC_TTRPC_MESSAGE_LENGTH_MAX + 1;
        req.data = (ProtobufCBinaryData){CC_TTRPC_MESSAGE_LENGTH_MAX + 1, big};
        rpc_result r;
        int code = rpc(t, AGENT_SERVICE, "CopyFile", &req.base, NULL, CALL_TIMEOUT, &r);
        if (code != -1 || !strstr(r.message, "exceed maximum message size"))
            fail(t, "CopyFile of 4 MiB+1", "%s %s, want a local refusal", code_name(code),
                 r.message);
        else
            ok(t, "CopyFile of 4 MiB+1 refused locally (%s)", r.message);
        rpc_result_clear(&r);
        check_health(t, "the refused CopyFile");
    }
}

/* --- raw frames on fresh connections ------------------------------------------------------ */

static void
put_header(uint8_t h[CC_TTRPC_HEADER_LENGTH], uint32_t len, uint32_t stream_id)
{
    uint32_t be_len = htonl(len), be_id = htonl(stream_id);
    memcpy(h, &be_len, 4);
    memcpy(h + 4, &be_id, 4);
    h[8] = 1; /* request */
    h[9] = 0;
}

static int
send_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/*
 * Our client gone, a plain connection gets head and body (the header and what follows), then
 * waits up to 2 s for whatever the agent answers (shown, not checked) and hangs up. Then a new
 * client must find the agent serving.
 */
static void
raw_frame(test_ctx *t, const char *step, const uint8_t *head, size_t head_len,
          const uint8_t *body, size_t body_len)
{
    disconnect(t);
    usleep(500 * 1000); /* let the guest see the hang-up of the client's connection */
    int fd = -EBADF;
    for (int i = 0; i < 50 && fd < 0; i++) {
        fd = connect_unix(t->socket_path);
        if (fd < 0)
            usleep(100 * 1000);
    }
    if (fd < 0) {
        fail(t, step, "connect '%s': %s", t->socket_path, strerror(-fd));
    } else {
        struct timeval tv = {.tv_sec = 10};
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        int r = send_all(fd, head, head_len);
        if (r >= 0)
            r = send_all(fd, body, body_len);
        if (r < 0)
            info("%s: send: %s", step, strerror(-r));
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 2000) > 0) {
            uint8_t buf[256];
            ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
            info("%s: the agent answered %zd bytes before the hang-up", step, n);
        }
        cc_close(fd);
        usleep(500 * 1000);
    }

    double elapsed = 0;
    if (connect_agent(t, 60, &elapsed) < 0)
        fail(t, step, "the agent does not answer Health.Check on a new connection");
    else
        ok(t, "%s, then Health.Check on a new connection after %.1f s", step, elapsed);
}

static void
step_raw(test_ctx *t)
{
    uint8_t head[CC_TTRPC_HEADER_LENGTH];

    /* a header claiming 5 MiB, then 64 KiB of garbage, then hang up */
    _cleanup_free_ uint8_t *garbage = cc_xmalloc(64 << 10);
    memset(garbage, 0xab, 64 << 10);
    put_header(head, 5u << 20, 1);
    raw_frame(t, "raw frame claiming 5 MiB", head, sizeof(head), garbage, 64 << 10);

    /* a valid header and half of a valid Health.Check request, then hang up */
    Grpc__CheckRequest check = GRPC__CHECK_REQUEST__INIT;
    uint8_t payload[64];
    size_t plen = grpc__check_request__pack(&check, payload);
    Ttrpc__Request req = TTRPC__REQUEST__INIT;
    req.service = (char *)HEALTH_SERVICE;
    req.method = (char *)"Check";
    req.payload = (ProtobufCBinaryData){plen, payload};
    size_t len = ttrpc__request__get_packed_size(&req);
    _cleanup_free_ uint8_t *buf = cc_xmalloc(len);
    ttrpc__request__pack(&req, buf);
    put_header(head, (uint32_t)len, 1);
    raw_frame(t, "half a request, then hang-up", head, sizeof(head), buf, len / 2);
}

/* --- main --------------------------------------------------------------------------------- */

/* A file the host copied in, bind-mounted into a container (as CRI's /etc/hosts is); and the
 * same with a host-made symlink as the source, which must be refused: following it would
 * expose any guest path (here "/") to the container. */
static const char *const bind_opts[] = {"rbind", "ro"};
#define BIND_MARKER "bind-marker-5e1f\n"

static int
create_with_bind(test_ctx *t, const char *step, const char *id, const char *const *args,
                 size_t n_args, const char *source, bool want_ok)
{
    spec_buf b;
    spec_init(&b, ROOTFS, args, n_args, id, ELEMENTSOF(mount_table));
    Grpc__Mount *m = &b.mounts[ELEMENTSOF(mount_table)];
    *m = (Grpc__Mount)GRPC__MOUNT__INIT;
    m->destination = (char *)"/etc/marker";
    m->source = (char *)source;
    m->type = (char *)"bind";
    m->options = STRV(bind_opts);
    m->n_options = ELEMENTSOF(bind_opts);
    b.mount_ptrs[ELEMENTSOF(mount_table)] = m;
    b.spec.n_mounts = ELEMENTSOF(mount_table) + 1;
    Grpc__CreateContainerRequest req = GRPC__CREATE_CONTAINER_REQUEST__INIT;
    req.container_id = req.exec_id = (char *)id;
    req.oci = &b.spec;
    if (want_ok)
        return expect_ok(t, step, "CreateContainer", &req.base);
    return expect_error(t, step, "CreateContainer", &req.base, CC_TTRPC_INVALID_ARGUMENT,
                        "symbolic link");
}

static void
step_binds(test_ctx *t)
{
    static const char *const args_cat[] = {"/bin/prog", "cat", "/etc/marker"};
    const char *marker = "/run/kata-containers/shared/c4-marker";
    const char *evil = "/run/kata-containers/shared/c5-evil";
    Grpc__CopyFileRequest req;

    copy_req_init(&req, marker, S_IFREG | 0644);
    req.file_size = (int64_t)strlen(BIND_MARKER);
    req.data = (ProtobufCBinaryData){strlen(BIND_MARKER), (uint8_t *)BIND_MARKER};
    if (expect_ok(t, "CopyFile bind marker", "CopyFile", &req.base) < 0)
        return;
    if (create_with_bind(t, "CreateContainer c4 (bind of a copied file)", "c4", args_cat,
                         ELEMENTSOF(args_cat), marker, true) == 0 &&
        container_call(t, "StartContainer c4", "StartContainer", "c4") == 0) {
        read_until(t, 0, "c4", "bind-marker-5e1f");
        wait_process(t, "WaitProcess c4", "c4", 0);
        container_call(t, "RemoveContainer c4", "RemoveContainer", "c4");
    }

    if (copy_symlink(t, evil, "/") < 0)
        return;
    create_with_bind(t, "CreateContainer c5 with a bind source that is a symlink to /", "c5",
                     args_cat, ELEMENTSOF(args_cat), evil, false);
    check_health(t, "bind through a symlink");
}

static int
scenario_main(test_ctx *t)
{
    step_health_version(t);
    step_guest_details(t);
    if (step_create_sandbox(t) < 0 || step_rootfs(t) < 0) {
        fail(t, "scenario", "no sandbox or rootfs: skipping the containers");
    } else {
        step_c1(t);
        step_c2(t);
        step_rest(t);
    }
    step_binds(t);
    step_pause(t);
    step_negative(t);
    step_raw(t);
    step_pause_stop(t);

    /* after all the failed creates of c3, a valid one succeeds; left running for
     * DestroySandbox (SIGTERM is ignored by PID 1 of a pid namespace: needs SIGKILL) */
    if (create_container(t, "CreateContainer c3 after the failed ones", "c3", args_sleep,
                         ELEMENTSOF(args_sleep)) >= 0)
        container_call(t, "StartContainer c3 (left running)", "StartContainer", "c3");

    Grpc__DestroySandboxRequest dreq = GRPC__DESTROY_SANDBOX_REQUEST__INIT;
    expect_ok(t, "DestroySandbox", "DestroySandbox", &dreq.base);
    return 0;
}

static int
usage(void)
{
    fprintf(stderr, "usage: agent-test --socket PATH --prog CTR_PROG [--ready-timeout SEC] main\n"
                    "       agent-test --socket PATH --images IMAGES_JSON [--ready-timeout SEC] "
                    "pull\n");
    return 2;
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'},
        {"prog", required_argument, NULL, 'p'},
        {"images", required_argument, NULL, 'i'},
        {"ready-timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {},
    };
    test_ctx t = {.ready_timeout_sec = 120};
    int c;

    while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
        switch (c) {
        case 's':
            t.socket_path = optarg;
            break;
        case 'p':
            t.prog_path = optarg;
            break;
        case 'i':
            t.images_path = optarg;
            break;
        case 't':
            t.ready_timeout_sec = (unsigned)strtoul(optarg, NULL, 10);
            break;
        default:
            return usage();
        }
    }
    if (!t.socket_path || optind != argc - 1)
        return usage();
    const char *scenario = argv[optind];
    if (!(cc_streq(scenario, "main") && t.prog_path) &&
        !(cc_streq(scenario, "pull") && t.images_path))
        return usage();

    _cleanup_error_ cc_error *err = NULL;
    _cleanup_(cc_loop_freep) cc_loop *loop = NULL;
    if (cc_loop_new(&loop, &err) < 0) {
        fprintf(stderr, "agent-test: %s\n", cc_error_message(err));
        return 1;
    }
    t.loop = loop;

    double elapsed = 0;
    if (connect_agent(&t, t.ready_timeout_sec, &elapsed) < 0) {
        printf("FAIL connect: agent not ready within %u s\n0 passed, 1 failed\n",
               t.ready_timeout_sec);
        return 1;
    }
    printf("agent ready after %.1f s\n", elapsed);
    fflush(stdout);

    if (cc_streq(scenario, "pull"))
        scenario_pull(&t);
    else
        scenario_main(&t);

    disconnect(&t);
    free(t.out[0]);
    free(t.out[1]);
    printf("%u passed, %u failed\n", t.passed, t.failed);
    return t.failed ? 1 : 0;
}
