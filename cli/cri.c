/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloakctl's CRI client (cri.h): the connection, the call wrapper, id-prefix resolution and
 * the commands pull, exec, ps and rm. run is in cri-run.c.
 */
#include "cri.h"

#include "util.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *cri_address = NULL; /* read-only after main() set it */

void
cri_set_address(const char *address)
{
    cri_address = address;
}

cc_grpc_client *
cri_connect(const char *cmd)
{
    const char *a = cri_address ? cri_address : CRI_DEFAULT_ADDRESS;
    _cleanup_free_ char *target = NULL;
    if (!cc_startswith(a, "unix:"))
        target = cc_xasprintf("unix:%s", a);
    _cleanup_error_ cc_error *e = NULL;
    cc_grpc_client *c = NULL;
    if (cc_grpc_client_new(target ? target : a, &c, &e) < 0) {
        fprintf(stderr, "cloakctl %s: connect '%s': %s\n", cmd, a, cc_error_message(e));
        return NULL;
    }
    return c;
}

int
cri_call(cc_grpc_client *c, const char *method, const ProtobufCMessage *req,
         const ProtobufCMessageDescriptor *resp_desc, uint64_t timeout_usec,
         ProtobufCMessage **ret_resp, cc_error **err)
{
    _cleanup_free_ char *path = cc_xasprintf("/runtime.v1.%s", method);
    _cleanup_free_ char *message = NULL;
    ProtobufCMessage *resp = NULL;
    cc_ttrpc_code code = CC_TTRPC_OK;
    int r = cc_grpc_client_call_sync(c, path, req, resp_desc, timeout_usec, &resp, &code, &message,
                                     err);
    if (r < 0)
        return cc_error_prefix(err, r, "%s", method);
    if (code != CC_TTRPC_OK)
        return cc_error_msg(err, cc_ttrpc_code_to_errno(code), "%s: %s: %s", method,
                            cc_ttrpc_code_to_string(code), message ? message : "");
    *ret_resp = resp;
    return 0;
}

int
cri_pod_remove(cc_grpc_client *c, const char *id, cc_error **err)
{
    Runtime__V1__StopPodSandboxRequest stop = RUNTIME__V1__STOP_POD_SANDBOX_REQUEST__INIT;
    stop.pod_sandbox_id = (char *)id;
    _cleanup_msg_ ProtobufCMessage *r1 = NULL;
    int r = cri_call(c, "RuntimeService/StopPodSandbox", &stop.base,
                     &runtime__v1__stop_pod_sandbox_response__descriptor, CRI_TIMEOUT_RUN_POD, &r1,
                     err);
    if (r < 0)
        return r;
    Runtime__V1__RemovePodSandboxRequest rm = RUNTIME__V1__REMOVE_POD_SANDBOX_REQUEST__INIT;
    rm.pod_sandbox_id = (char *)id;
    _cleanup_msg_ ProtobufCMessage *r2 = NULL;
    return cri_call(c, "RuntimeService/RemovePodSandbox", &rm.base,
                    &runtime__v1__remove_pod_sandbox_response__descriptor, CRI_TIMEOUT_RUN_POD, &r2,
                    err);
}

int
cri_container_remove(cc_grpc_client *c, const char *id, int64_t timeout_sec, cc_error **err)
{
    Runtime__V1__StopContainerRequest stop = RUNTIME__V1__STOP_CONTAINER_REQUEST__INIT;
    stop.container_id = (char *)id;
    stop.timeout = timeout_sec;
    _cleanup_msg_ ProtobufCMessage *r1 = NULL;
    int r = cri_call(c, "RuntimeService/StopContainer", &stop.base,
                     &runtime__v1__stop_container_response__descriptor,
                     CRI_TIMEOUT_DEFAULT + (uint64_t)timeout_sec * CRI_USEC_PER_SEC, &r1, err);
    if (r < 0)
        return r;
    Runtime__V1__RemoveContainerRequest rm = RUNTIME__V1__REMOVE_CONTAINER_REQUEST__INIT;
    rm.container_id = (char *)id;
    _cleanup_msg_ ProtobufCMessage *r2 = NULL;
    return cri_call(c, "RuntimeService/RemoveContainer", &rm.base,
                    &runtime__v1__remove_container_response__descriptor, CRI_TIMEOUT_DEFAULT, &r2,
                    err);
}

static int
list_containers(cc_grpc_client *c, bool running_only, Runtime__V1__ListContainersResponse **ret,
                cc_error **err)
{
    Runtime__V1__ListContainersRequest req = RUNTIME__V1__LIST_CONTAINERS_REQUEST__INIT;
    Runtime__V1__ContainerFilter filter = RUNTIME__V1__CONTAINER_FILTER__INIT;
    Runtime__V1__ContainerStateValue state = RUNTIME__V1__CONTAINER_STATE_VALUE__INIT;
    if (running_only) {
        state.state = RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING;
        filter.state = &state;
        req.filter = &filter;
    }
    return cri_call(c, "RuntimeService/ListContainers", &req.base,
                    &runtime__v1__list_containers_response__descriptor, CRI_TIMEOUT_DEFAULT,
                    (ProtobufCMessage **)ret, err);
}

static int
list_pods(cc_grpc_client *c, Runtime__V1__ListPodSandboxResponse **ret, cc_error **err)
{
    Runtime__V1__ListPodSandboxRequest req = RUNTIME__V1__LIST_POD_SANDBOX_REQUEST__INIT;
    return cri_call(c, "RuntimeService/ListPodSandbox", &req.base,
                    &runtime__v1__list_pod_sandbox_response__descriptor, CRI_TIMEOUT_DEFAULT,
                    (ProtobufCMessage **)ret, err);
}

typedef enum cri_kind {
    CRI_KIND_CONTAINER,
    CRI_KIND_POD,
    _CRI_KIND_MAX,
    _CRI_KIND_INVALID = -EINVAL,
} cri_kind;

/*
 * Resolves what (a full id, a unique id prefix, or a pod's exact name) among the
 * containers and (when pods) the pod sandboxes. *ret_id: owned. Errors: -ENOENT, -EINVAL
 * (ambiguous), call errors.
 */
static int
resolve_id(cc_grpc_client *c, const char *what, bool pods, char **ret_id, cri_kind *ret_kind,
           cc_error **err)
{
    _cleanup_msg_ Runtime__V1__ListContainersResponse *cl = NULL;
    _cleanup_msg_ Runtime__V1__ListPodSandboxResponse *pl = NULL;
    int r = list_containers(c, false, &cl, err);
    if (r < 0)
        return r;
    if (pods && (r = list_pods(c, &pl, err)) < 0)
        return r;

    const char *found = NULL;
    cri_kind kind = _CRI_KIND_INVALID;
    size_t n = 0;
    size_t len = strlen(what);
    for (size_t i = 0; i < cl->n_containers; i++) {
        const char *id = cl->containers[i]->id;
        if (cc_streq(id, what)) {
            *ret_id = cc_xstrdup(id);
            *ret_kind = CRI_KIND_CONTAINER;
            return 0;
        }
        if (len > 0 && strncmp(id, what, len) == 0) {
            found = id;
            kind = CRI_KIND_CONTAINER;
            n++;
        }
    }
    for (size_t i = 0; pl && i < pl->n_items; i++) {
        const Runtime__V1__PodSandbox *p = pl->items[i];
        if (cc_streq(p->id, what) || (p->metadata && cc_streq(p->metadata->name, what))) {
            *ret_id = cc_xstrdup(p->id);
            *ret_kind = CRI_KIND_POD;
            return 0;
        }
        if (len > 0 && strncmp(p->id, what, len) == 0) {
            found = p->id;
            kind = CRI_KIND_POD;
            n++;
        }
    }
    if (n == 0)
        return cc_error_msg(err, -ENOENT, "no %s '%s'", pods ? "pod or container" : "container",
                            what);
    if (n > 1)
        return cc_error_msg(err, -EINVAL, "'%s' is ambiguous: %zu ids start with it", what, n);
    *ret_id = cc_xstrdup(found);
    *ret_kind = kind;
    return 0;
}

int
cri_resolve_pod(cc_grpc_client *c, const char *what, char **ret_id, cc_error **err)
{
    _cleanup_free_ char *id = NULL;
    cri_kind kind;
    int r = resolve_id(c, what, true, &id, &kind, err);
    if (r < 0)
        return r;
    if (kind != CRI_KIND_POD)
        return cc_error_msg(err, -ENOENT, "'%s' is a container, not a pod", what);
    *ret_id = TAKE_PTR(id);
    return 0;
}

/* --- pull ----------------------------------------------------------------------------------- */

int
cloakctl_pull(int argc, char **argv)
{
    if (argc == 2 && (cc_streq(argv[1], "--help") || cc_streq(argv[1], "-h"))) {
        printf("usage: cloakctl [--address SOCK] pull IMAGE\n");
        return 0;
    }
    if (argc != 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: cloakctl [--address SOCK] pull IMAGE\n");
        return 2;
    }
    _cleanup_(cc_grpc_client_freep) cc_grpc_client *c = cri_connect("pull");
    if (!c)
        return 1;
    Runtime__V1__PullImageRequest req = RUNTIME__V1__PULL_IMAGE_REQUEST__INIT;
    Runtime__V1__ImageSpec spec = RUNTIME__V1__IMAGE_SPEC__INIT;
    spec.image = argv[1];
    req.image = &spec;
    _cleanup_msg_ Runtime__V1__PullImageResponse *resp = NULL;
    _cleanup_error_ cc_error *e = NULL;
    if (cri_call(c, "ImageService/PullImage", &req.base,
                 &runtime__v1__pull_image_response__descriptor, CRI_TIMEOUT_PULL,
                 (ProtobufCMessage **)&resp, &e) < 0) {
        fprintf(stderr, "cloakctl pull: '%s': %s\n", argv[1], cc_error_message(e));
        return 1;
    }
    printf("%s\n", resp->image_ref);
    return 0;
}

/* --- exec ----------------------------------------------------------------------------------- */

int
cloakctl_exec(int argc, char **argv)
{
    static const struct option opts[] = {
        {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {},
    };
    long timeout = 60;
    int o;
    optind = 1;
    /* "+": options end at the container id; CMD may have options of its own. */
    while ((o = getopt_long(argc, argv, "+t:h", opts, NULL)) >= 0) {
        switch (o) {
        case 't': {
            char *end;
            errno = 0;
            timeout = strtol(optarg, &end, 10);
            if (errno || *end || end == optarg || timeout < 0 || timeout > 86400) {
                fprintf(stderr, "cloakctl exec: bad --timeout '%s'\n", optarg);
                return 2;
            }
            break;
        }
        case 'h':
            printf("usage: cloakctl [--address SOCK] exec [--timeout SEC] CONTAINER CMD...\n");
            return 0;
        default:
            return 2;
        }
    }
    if (argc - optind < 2) {
        fprintf(stderr, "usage: cloakctl [--address SOCK] exec [--timeout SEC] CONTAINER CMD...\n");
        return 2;
    }
    _cleanup_(cc_grpc_client_freep) cc_grpc_client *c = cri_connect("exec");
    if (!c)
        return 1;
    _cleanup_error_ cc_error *e = NULL;
    _cleanup_free_ char *id = NULL;
    cri_kind kind;
    if (resolve_id(c, argv[optind], false, &id, &kind, &e) < 0) {
        fprintf(stderr, "cloakctl exec: %s\n", cc_error_message(e));
        return 1;
    }
    Runtime__V1__ExecSyncRequest req = RUNTIME__V1__EXEC_SYNC_REQUEST__INIT;
    req.container_id = id;
    req.cmd = argv + optind + 1;
    req.n_cmd = (size_t)(argc - optind - 1);
    req.timeout = timeout;
    /* 0 = no timeout in CRI; then none on the call either. */
    uint64_t call_timeout =
        timeout ? CRI_TIMEOUT_DEFAULT + (uint64_t)timeout * CRI_USEC_PER_SEC : 0;
    _cleanup_msg_ Runtime__V1__ExecSyncResponse *resp = NULL;
    if (cri_call(c, "RuntimeService/ExecSync", &req.base,
                 &runtime__v1__exec_sync_response__descriptor, call_timeout,
                 (ProtobufCMessage **)&resp, &e) < 0) {
        fprintf(stderr, "cloakctl exec: %s\n", cc_error_message(e));
        return 1;
    }
    if (resp->stdout.len)
        fwrite(resp->stdout.data, 1, resp->stdout.len, stdout);
    fflush(stdout);
    if (resp->stderr.len)
        fwrite(resp->stderr.data, 1, resp->stderr.len, stderr);
    /* Exit codes are 0..255 in the shell: keep them, map anything else to 1. */
    return resp->exit_code >= 0 && resp->exit_code <= 255 ? resp->exit_code : 1;
}

/* --- ps ------------------------------------------------------------------------------------- */

static const char *
state_name(Runtime__V1__ContainerState s)
{
    switch (s) {
    case RUNTIME__V1__CONTAINER_STATE__CONTAINER_CREATED:
        return "created";
    case RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING:
        return "running";
    case RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED:
        return "exited";
    default:
        return "unknown";
    }
}

/* "5s ago", "3m ago", "2h ago", "4d ago" from created_at (ns since the epoch). */
static void
format_age(int64_t created_ns, char *buf, size_t size)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t s = (int64_t)now.tv_sec - created_ns / 1000000000;
    if (s < 0)
        s = 0;
    if (s < 120)
        snprintf(buf, size, "%llds ago", (long long)s);
    else if (s < 7200)
        snprintf(buf, size, "%lldm ago", (long long)(s / 60));
    else if (s < 172800)
        snprintf(buf, size, "%lldh ago", (long long)(s / 3600));
    else
        snprintf(buf, size, "%lldd ago", (long long)(s / 86400));
}

int
cloakctl_ps(int argc, char **argv)
{
    static const struct option opts[] = {
        {"all", no_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {},
    };
    bool all = false;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "ah", opts, NULL)) >= 0) {
        switch (o) {
        case 'a':
            all = true;
            break;
        case 'h':
            printf("usage: cloakctl [--address SOCK] ps [-a|--all]\n");
            return 0;
        default:
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "cloakctl ps: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    _cleanup_(cc_grpc_client_freep) cc_grpc_client *c = cri_connect("ps");
    if (!c)
        return 1;
    _cleanup_error_ cc_error *e = NULL;
    _cleanup_msg_ Runtime__V1__ListContainersResponse *cl = NULL;
    _cleanup_msg_ Runtime__V1__ListPodSandboxResponse *pl = NULL;
    if (list_containers(c, !all, &cl, &e) < 0 || list_pods(c, &pl, &e) < 0) {
        fprintf(stderr, "cloakctl ps: %s\n", cc_error_message(e));
        return 1;
    }
    printf("%-13s %-24s %-40s %-8s %s\n", "CONTAINER", "POD", "IMAGE", "STATE", "CREATED");
    for (size_t i = 0; i < cl->n_containers; i++) {
        const Runtime__V1__Container *ct = cl->containers[i];
        const char *pod = NULL;
        for (size_t j = 0; j < pl->n_items && !pod; j++)
            if (cc_streq(pl->items[j]->id, ct->pod_sandbox_id) && pl->items[j]->metadata)
                pod = pl->items[j]->metadata->name;
        char age[32];
        format_age(ct->created_at, age, sizeof(age));
        printf("%-13.12s %-24s %-40s %-8s %s\n", ct->id, pod ? pod : ct->pod_sandbox_id,
               ct->image && ct->image->image[0] ? ct->image->image : ct->image_ref,
               state_name(ct->state), age);
    }
    return 0;
}

/* --- rm ------------------------------------------------------------------------------------- */

int
cloakctl_rm(int argc, char **argv)
{
    if (argc < 2 || argv[1][0] == '-') {
        bool help = argc == 2 && (cc_streq(argv[1], "--help") || cc_streq(argv[1], "-h"));
        fprintf(help ? stdout : stderr,
                "usage: cloakctl [--address SOCK] rm POD_OR_CONTAINER...\n");
        return help ? 0 : 2;
    }
    _cleanup_(cc_grpc_client_freep) cc_grpc_client *c = cri_connect("rm");
    if (!c)
        return 1;
    int ret = 0;
    for (int i = 1; i < argc; i++) {
        _cleanup_error_ cc_error *e = NULL;
        _cleanup_free_ char *id = NULL;
        cri_kind kind;
        int r = resolve_id(c, argv[i], true, &id, &kind, &e);
        if (r >= 0)
            r = kind == CRI_KIND_POD ? cri_pod_remove(c, id, &e)
                                     : cri_container_remove(c, id, 10, &e);
        if (r < 0) {
            fprintf(stderr, "cloakctl rm: %s\n", cc_error_message(e));
            ret = 1;
            continue;
        }
        printf("%s\n", id);
    }
    return ret;
}
