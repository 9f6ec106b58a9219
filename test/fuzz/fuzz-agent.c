/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzzes the agent's handling of host requests. The first input byte selects the message
 * (modulo 3), the rest is its protobuf encoding:
 *   0  CreateContainerRequest  agent_validate_id, agent_storages_validate, agent_validate_spec
 *   1  CreateSandboxRequest    agent_validate_id, agent_storages_validate
 *   2  CopyFileRequest         agent_copy_file, for real, on a temporary base
 * Validation must touch nothing; CopyFile may write only below the base. The base is prepared
 * with symlinks an attacker would have left there ("up" -> "..", "root" -> "/", "dir/up" ->
 * "../.."), and after every input the temporary directory around the base must hold exactly
 * what it held before (traps otherwise). Failures must come with an error of the same code.
 * One agent for the whole run (crun /bin/false, never started). FUZZ_AGENT_VERBOSE=1 prints
 * each call's result.
 *
 * Inputs name paths below AGENT_GUEST_BASE, as the host does (the corpus is stable across
 * runs): validation, which only compares strings, runs on a copy of the agent whose base is
 * AGENT_GUEST_BASE; CopyFile's path has that prefix replaced by the temporary base.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

static struct {
    char tmp[64];
    char base[80];
    char state[80];
    char pause[80];
    char *root;     /* the listing of / ("root" in the base points there) */
    cc_loop *loop;
    agent *a;
} fz;

/* The names in dir (sorted, ' '-joined): what a call must not change. */
static char *
list_dir(const char *dir)
{
    struct dirent **ents;
    int n = scandir(dir, &ents, NULL, alphasort);
    char *s = cc_xstrdup("");
    CHECK(n >= 0);
    for (int i = 0; i < n; i++) {
        if (strcmp(ents[i]->d_name, ".") && strcmp(ents[i]->d_name, "..")) {
            char *t = cc_xasprintf("%s%s%s", s, *s ? " " : "", ents[i]->d_name);
            free(s);
            s = t;
        }
        free(ents[i]);
    }
    free(ents);
    return s;
}

/* Empties the base and puts the traps back. */
static void
reset_base(void)
{
    int fd = fz.a->base_fd;
    CHECK(cc_rm_rf_children(fd, NULL) == 0);
    CHECK(symlinkat("..", fd, "up") == 0);
    CHECK(symlinkat("/", fd, "root") == 0);
    CHECK(mkdirat(fd, "dir", 0755) == 0);
    CHECK(symlinkat("../..", fd, "dir/up") == 0);
    int f = openat(fd, "dir/file", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    CHECK(f >= 0);
    close(f);
}

static void
cleanup(void)
{
    fz.a = agent_free(fz.a);
    fz.loop = cc_loop_free(fz.loop);
    free(fz.root);
    fz.root = NULL;
    int fd = open("/tmp", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)cc_rm_rf_at(fd, fz.tmp + strlen("/tmp/"), NULL);
        close(fd);
    }
}

static void
init_once(void)
{
    static const int sigs[] = {SIGCHLD};
    cc_error *err = NULL;

    if (fz.a)
        return;
    snprintf(fz.tmp, sizeof(fz.tmp), "/tmp/cloak-fuzz-agent-XXXXXX");
    CHECK(mkdtemp(fz.tmp));
    snprintf(fz.base, sizeof(fz.base), "%s/base", fz.tmp);
    snprintf(fz.state, sizeof(fz.state), "%s/state", fz.tmp);
    snprintf(fz.pause, sizeof(fz.pause), "%s/pause", fz.tmp);
    CHECK(mkdir(fz.pause, 0755) == 0);
    agent_options opts = {.init = false,
                          .base = fz.base,
                          .state_dir = fz.state,
                          .pause_bundle = fz.pause,
                          .crun = "/bin/false"};
    CHECK(cc_loop_block_signals(sigs, ELEMENTSOF(sigs), &err) == 0);
    CHECK(cc_loop_new(&fz.loop, &err) == 0);
    if (agent_new(fz.loop, &opts, NULL, &fz.a, &err) < 0) {
        fprintf(stderr, "fuzz-agent: %s\n", cc_error_message(err));
        abort();
    }
    atexit(cleanup);
    reset_base();
    fz.root = list_dir("/");
}

/* r from a call that took &err: a failure carries an error with the same code, and only then. */
static void
check_result(int r, cc_error **err)
{
    if (getenv("FUZZ_AGENT_VERBOSE")) /* for corpus work: what each input got */
        fprintf(stderr, "fuzz-agent: %d %s\n", r, r < 0 ? cc_error_message(*err) : "ok");
    if (r < 0)
        CHECK(*err && (*err)->code == r && strlen(cc_error_message(*err)) > 0);
    else
        CHECK(r == 0 && !*err);
    *err = cc_error_free(*err);
}

/* The agent as validation sees it: only opts.base differs (validation reads no fd). */
static agent
validation_agent(void)
{
    agent v = *fz.a;
    v.opts.base = AGENT_GUEST_BASE;
    return v;
}

static void
create_container(const Grpc__CreateContainerRequest *req)
{
    agent v = validation_agent();
    cc_error *err = NULL;
    check_result(agent_validate_id(req->container_id, "container_id", false, &err), &err);
    check_result(agent_validate_id(req->exec_id, "exec_id", true, &err), &err);
    check_result(agent_storages_validate(&v, req->storages, req->n_storages, "storages", &err),
                 &err);
    check_result(agent_validate_spec(&v, req->oci, &err), &err);
}

static void
create_sandbox(const Grpc__CreateSandboxRequest *req)
{
    agent v = validation_agent();
    cc_error *err = NULL;
    check_result(agent_validate_id(req->sandbox_id, "sandbox_id", false, &err), &err);
    check_result(agent_storages_validate(&v, req->storages, req->n_storages, "storages", &err),
                 &err);
}

static void
copy_file(Grpc__CopyFileRequest *req)
{
    const char *rest = req->path ? cc_startswith(req->path, AGENT_GUEST_BASE) : NULL;
    cc_error *err = NULL;

    if (rest) {
        /* unpacked with the default allocator: free_unpacked frees this one with free() */
        char *p = cc_xasprintf("%s%s", fz.base, rest);
        free(req->path);
        req->path = p;
    }
    check_result(agent_copy_file(fz.a, req, &err), &err);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const ProtobufCMessageDescriptor *const types[] = {
        &grpc__create_container_request__descriptor,
        &grpc__create_sandbox_request__descriptor,
        &grpc__copy_file_request__descriptor,
    };
    if (size < 1)
        return 0;
    init_once();

    _cleanup_free_ char *top = list_dir(fz.tmp);
    _cleanup_free_ char *base = list_dir(fz.base);
    unsigned which = data[0] % ELEMENTSOF(types);
    ProtobufCMessage *m = protobuf_c_message_unpack(types[which], NULL, size - 1, data + 1);
    if (!m)
        return 0;
    switch (which) {
    case 0:
        create_container((const Grpc__CreateContainerRequest *)m);
        break;
    case 1:
        create_sandbox((const Grpc__CreateSandboxRequest *)m);
        break;
    default:
        copy_file((Grpc__CopyFileRequest *)m);
        break;
    }
    protobuf_c_message_free_unpacked(m, NULL);

    /* nothing appeared or vanished next to the base; validation touched nothing at all */
    _cleanup_free_ char *top_after = list_dir(fz.tmp);
    CHECK(strcmp(top, top_after) == 0);
    if (which != 2) {
        _cleanup_free_ char *base_after = list_dir(fz.base);
        CHECK(strcmp(base, base_after) == 0);
    } else {
        /* nor in / through base/root */
        _cleanup_free_ char *root = list_dir("/");
        CHECK(strcmp(root, fz.root) == 0);
        reset_base();
    }
    return 0;
}
