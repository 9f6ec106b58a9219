/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
/* cmocka.h needs these first (clang-format keeps separate blocks apart) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "json.h"
#include "spec.h"
#include "util.h"

#define CID "4c2a9e7b1d3f5a6c8e0b2d4f6a8c0e1f3b5d7f9a1c3e5b7d9f1a3c5e7b9d1f3a"
#define SID "9e1f6c0a4b2d8e7f3a5c1b9d0e2f4a6c8b0d2e4f6a8c0e2f4b6d8f0a2c4e6b8d"
#define DIGEST "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define DIGEST2 "sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
#define SNAP "/var/lib/containerd/io.containerd.snapshotter.v1.cloak/snapshots"

/* What containerd 1.6's CRI writes for an app container (kubelet adds termination-log). */
static const char cri_container[] = "{"
    "\"ociVersion\": \"1.0.2-dev\","
    "\"process\": {\"user\": {\"uid\": 0, \"gid\": 0}, \"args\": [\"/bin/sh\", \"-c\", \"sleep 1\"],"
    "  \"env\": [\"PATH=/usr/bin:/bin\"], \"cwd\": \"/\","
    "  \"capabilities\": {\"bounding\": [\"CAP_CHOWN\"], \"effective\": [\"CAP_CHOWN\"]},"
    "  \"noNewPrivileges\": true, \"apparmorProfile\": \"cri-containerd.apparmor.d\","
    "  \"selinuxLabel\": \"system_u:system_r:container_t:s0\", \"oomScoreAdj\": 1000},"
    "\"root\": {\"path\": \"rootfs\", \"readonly\": true},"
    "\"hostname\": \"ignored-for-app-containers\","
    "\"mounts\": ["
    " {\"destination\": \"/proc\", \"type\": \"proc\", \"source\": \"proc\","
    "  \"options\": [\"nosuid\", \"noexec\", \"nodev\"]},"
    " {\"destination\": \"/dev\", \"type\": \"tmpfs\", \"source\": \"tmpfs\","
    "  \"options\": [\"nosuid\", \"strictatime\", \"mode=755\", \"size=65536k\"]},"
    " {\"destination\": \"/dev/pts\", \"type\": \"devpts\", \"source\": \"devpts\","
    "  \"options\": [\"nosuid\", \"noexec\", \"newinstance\", \"ptmxmode=0666\", \"mode=0620\", \"gid=5\"]},"
    " {\"destination\": \"/dev/mqueue\", \"type\": \"mqueue\", \"source\": \"mqueue\","
    "  \"options\": [\"nosuid\", \"noexec\", \"nodev\"]},"
    " {\"destination\": \"/sys\", \"type\": \"sysfs\", \"source\": \"sysfs\","
    "  \"options\": [\"nosuid\", \"noexec\", \"nodev\", \"ro\"]},"
    " {\"destination\": \"/sys/fs/cgroup\", \"type\": \"cgroup\", \"source\": \"cgroup\","
    "  \"options\": [\"nosuid\", \"noexec\", \"nodev\", \"relatime\", \"ro\"]},"
    " {\"destination\": \"/etc/hosts\", \"type\": \"bind\","
    "  \"source\": \"/var/lib/kubelet/pods/5a3c1f2e/etc-hosts\", \"options\": [\"rbind\", \"rprivate\", \"rw\"]},"
    " {\"destination\": \"/dev/termination-log\", \"type\": \"bind\","
    "  \"source\": \"/var/lib/kubelet/pods/5a3c1f2e/containers/web/3f1b2c4d\","
    "  \"options\": [\"rbind\", \"rprivate\", \"rw\"]},"
    " {\"destination\": \"/etc/hostname\", \"type\": \"bind\","
    "  \"source\": \"/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/" SID "/hostname\","
    "  \"options\": [\"rbind\", \"rprivate\", \"rw\"]},"
    " {\"destination\": \"/etc/resolv.conf\", \"type\": \"bind\","
    "  \"source\": \"/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/" SID "/resolv.conf\","
    "  \"options\": [\"rbind\", \"rprivate\", \"rw\"]},"
    " {\"destination\": \"/dev/shm\", \"type\": \"bind\","
    "  \"source\": \"/run/containerd/io.containerd.grpc.v1.cri/sandboxes/" SID "/shm\","
    "  \"options\": [\"rbind\", \"rprivate\", \"rw\"]}"
    "],"
    "\"hooks\": {\"prestart\": [{\"path\": \"/usr/bin/nvidia-hook\", \"args\": [\"hook\", \"prestart\"]}],"
    "  \"createRuntime\": [{\"path\": \"/usr/bin/true\"}]},"
    "\"annotations\": {"
    "  \"io.kubernetes.cri.container-name\": \"web\","
    "  \"io.kubernetes.cri.container-type\": \"container\","
    "  \"io.kubernetes.cri.image-name\": \"127.0.0.1:5000/test/img:v1\","
    "  \"io.kubernetes.cri.sandbox-id\": \"" SID "\","
    "  \"io.kubernetes.cri.sandbox-name\": \"web-x2x7q\","
    "  \"io.kubernetes.cri.sandbox-namespace\": \"default\"},"
    "\"linux\": {"
    "  \"resources\": {\"devices\": [{\"allow\": false, \"access\": \"rwm\"},"
    "     {\"allow\": true, \"type\": \"c\", \"major\": 1, \"minor\": 3, \"access\": \"rwm\"}],"
    "    \"memory\": {\"limit\": 268435456}, \"cpu\": {\"shares\": 256, \"quota\": 50000, \"period\": 100000}},"
    "  \"cgroupsPath\": \"kubepods-besteffort-pod5a3c1f2e.slice:cri-containerd:" CID "\","
    "  \"namespaces\": [{\"type\": \"pid\", \"path\": \"/proc/123/ns/pid\"},"
    "    {\"type\": \"ipc\", \"path\": \"/proc/123/ns/ipc\"}, {\"type\": \"uts\", \"path\": \"/proc/123/ns/uts\"},"
    "    {\"type\": \"mount\"}, {\"type\": \"network\", \"path\": \"/var/run/netns/cni-0f3c2a1b\"}],"
    "  \"devices\": [{\"path\": \"/dev/fuse\", \"type\": \"c\", \"major\": 10, \"minor\": 229}],"
    "  \"seccomp\": {\"defaultAction\": \"SCMP_ACT_ERRNO\", \"architectures\": [\"SCMP_ARCH_X86_64\"],"
    "    \"syscalls\": [{\"names\": [\"read\", \"write\"], \"action\": \"SCMP_ACT_ALLOW\"}]},"
    "  \"mountLabel\": \"system_u:object_r:container_file_t:s0\","
    "  \"maskedPaths\": [\"/proc/kcore\"], \"readonlyPaths\": [\"/proc/sys\"]}"
    "}";

/* The pod's pause container (CRI 1.6: no image-name annotation on the sandbox). */
static const char cri_sandbox[] = "{"
    "\"ociVersion\": \"1.0.2-dev\","
    "\"process\": {\"user\": {\"uid\": 65535, \"gid\": 65535}, \"args\": [\"/pause\"], \"cwd\": \"/\","
    "  \"noNewPrivileges\": true, \"oomScoreAdj\": -998},"
    "\"root\": {\"path\": \"rootfs\", \"readonly\": true},"
    "\"hostname\": \"web-x2x7q\","
    "\"mounts\": ["
    " {\"destination\": \"/proc\", \"type\": \"proc\", \"source\": \"proc\", \"options\": [\"nosuid\"]},"
    " {\"destination\": \"/dev\", \"type\": \"tmpfs\", \"source\": \"tmpfs\", \"options\": [\"nosuid\"]},"
    " {\"destination\": \"/dev/shm\", \"type\": \"bind\","
    "  \"source\": \"/run/containerd/io.containerd.grpc.v1.cri/sandboxes/" SID "/shm\","
    "  \"options\": [\"rbind\", \"ro\"]}"
    "],"
    "\"annotations\": {"
    "  \"io.kubernetes.cri.container-type\": \"sandbox\","
    "  \"io.kubernetes.cri.sandbox-id\": \"" SID "\","
    "  \"io.kubernetes.cri.sandbox-cpu-period\": \"100000\","
    "  \"io.kubernetes.cri.sandbox-cpu-quota\": \"150000\","
    "  \"io.kubernetes.cri.sandbox-memory\": \"268435457\"},"
    "\"linux\": {\"cgroupsPath\": \"kubepods-pod.slice:cri-containerd:" SID "\","
    "  \"namespaces\": [{\"type\": \"pid\"}, {\"type\": \"ipc\"}, {\"type\": \"uts\"}, {\"type\": \"mount\"},"
    "    {\"type\": \"network\", \"path\": \"/var/run/netns/cni-0f3c2a1b\"}]}"
    "}";

static const char volume_pinned[] =
    "{\"volume_type\":\"image_guest_pull\",\"source\":\"127.0.0.1:5000/test/img:v1\","
    "\"image_pull\":{\"metadata\":{\"containerd.io/snapshot/cri.image-ref\":"
    "\"127.0.0.1:5000/test/img:v1\",\"containerd.io/snapshot/cri.manifest-digest\":\"" DIGEST
    "\"}}}";

static json_t *
parse(const char *text)
{
    json_t *j = NULL;
    _cleanup_error_ cc_error *err = NULL;
    if (cc_json_load_buffer(text, strlen(text), "test", CC_JSON_MAX_SIZE, &j, &err) < 0)
        fail_msg("%s", cc_error_message(err));
    return j;
}

static char *
base64(const char *s)
{
    size_t n = strlen(s);
    char *out = cc_xmalloc((n + 2) / 3 * 4 + 1);
    (void)EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s, (int)n);
    return out;
}

static void
mount_free(Containerd__Types__Mount *m)
{
    if (m)
        protobuf_c_message_free_unpacked(&m->base, NULL);
}
CC_DEFINE_CLEANUP(Containerd__Types__Mount, mount_free)
#define _cleanup_mount_ _cleanup_(mount_freep)

static void
sandbox_req_free(Grpc__CreateSandboxRequest *r)
{
    if (r)
        protobuf_c_message_free_unpacked(&r->base, NULL);
}
CC_DEFINE_CLEANUP(Grpc__CreateSandboxRequest, sandbox_req_free)

/* A rootfs mount: type, then options (NULL-terminated); "@VOLUME:<json>" is base64'ed. */
static Containerd__Types__Mount *
mount_new(const char *type, ...)
{
    Containerd__Types__Mount *m = cc_xmalloc(sizeof(*m));
    containerd__types__mount__init(m);
    m->type = cc_xstrdup(type);
    m->source = cc_xstrdup("overlay");
    va_list ap;
    va_start(ap, type);
    for (const char *o; (o = va_arg(ap, const char *));) {
        const char *json = cc_startswith(o, "@VOLUME:");
        _cleanup_free_ char *b = json ? base64(json) : NULL;
        m->options = cc_xreallocarray(m->options, m->n_options + 1, sizeof(char *));
        m->options[m->n_options++] =
            json ? cc_xasprintf("io.katacontainers.volume=%s", b) : cc_xstrdup(o);
    }
    va_end(ap);
    return m;
}

static Containerd__Types__Mount *
guest_pull_mount(const char *volume_json)
{
    _cleanup_free_ char *opt = cc_xasprintf("@VOLUME:%s", volume_json);
    return mount_new("fuse.nydus-overlayfs", "workdir=" SNAP "/12/work", "upperdir=" SNAP "/12/fs",
                     "lowerdir=" SNAP "/11/fs", opt, NULL);
}

/* Builds cid's spec from config (text or NULL) and a guest-pull volume (NULL: no rootfs). */
static int
build_json(const json_t *config, const char *cid, const char *volume_json,
           shim_container_spec **ret, cc_error **err)
{
    _cleanup_mount_ Containerd__Types__Mount *m = volume_json ? guest_pull_mount(volume_json) : NULL;
    Containerd__Types__Mount *rootfs[] = {m};
    shim_spec_input in = {
        .container_id = cid,
        .config = config,
        .rootfs = rootfs,
        .n_rootfs = m ? 1 : 0,
    };
    return shim_spec_build(&in, ret, err);
}

static int
build(const char *config, const char *volume_json, shim_container_spec **ret, cc_error **err)
{
    _cleanup_json_ json_t *c = parse(config);
    return build_json(c, CID, volume_json, ret, err);
}

static const Grpc__Mount *
find_mount(const Grpc__Spec *spec, const char *dest)
{
    for (size_t i = 0; i < spec->n_mounts; i++)
        if (cc_streq(spec->mounts[i]->destination, dest))
            return spec->mounts[i];
    fail_msg("no mount at %s", dest);
    return NULL;
}

static const char *
find_annotation(const Grpc__Spec *spec, const char *key)
{
    for (size_t i = 0; i < spec->n_annotations; i++)
        if (cc_streq(spec->annotations[i]->key, key))
            return spec->annotations[i]->value;
    return NULL;
}

/* The storage's image_guest_pull= metadata as JSON. */
static json_t *
storage_metadata(const Grpc__Storage *st)
{
    assert_int_equal(st->n_driver_options, 1);
    const char *j = cc_startswith(st->driver_options[0], "image_guest_pull=");
    assert_non_null(j);
    json_t *v = parse(j);
    json_t *meta = json_object_get(v, "metadata");
    assert_true(json_is_object(meta));
    json_incref(meta);
    json_decref(v);
    return meta;
}

static const char *
meta_get(const json_t *meta, const char *key)
{
    return json_string_value(json_object_get(meta, key));
}

/* Expects failure with code r and a message containing each NULL-terminated needle. */
static void
expect_error(int got, cc_error *const *errp, int want, ...)
{
    const cc_error *err = *errp;
    assert_int_equal(got, want);
    assert_non_null(err);
    assert_int_equal(err->code, want);
    va_list ap;
    va_start(ap, want);
    for (const char *s; (s = va_arg(ap, const char *));)
        if (!strstr(err->message, s))
            fail_msg("message '%s' lacks '%s'", err->message, s);
    va_end(ap);
}

static void
test_cri_container(void **state)
{
    _cleanup_(shim_container_spec_freep) shim_container_spec *s = NULL;
    _cleanup_error_ cc_error *err = NULL;
    _cleanup_json_ json_t *meta = NULL;

    int r = build(cri_container, volume_pinned, &s, &err);
    if (r < 0)
        fail_msg("%s", cc_error_message(err));
    assert_false(s->is_sandbox);
    assert_string_equal(s->sandbox_id, SID);
    assert_null(s->warning);
    assert_string_equal(s->image_ref, "127.0.0.1:5000/test/img@" DIGEST);

    /* storage */
    assert_int_equal(s->n_storages, 1);
    const Grpc__Storage *st = s->storages[0];
    assert_string_equal(st->driver, "image_guest_pull");
    assert_string_equal(st->source, "127.0.0.1:5000/test/img@" DIGEST);
    assert_string_equal(st->fstype, "overlay");
    assert_string_equal(st->mount_point, "/run/kata-containers/" CID "/rootfs");
    assert_int_equal(st->n_options, 0);
    meta = storage_metadata(st);
    assert_string_equal(meta_get(meta, SHIM_LABEL_IMAGE_REF), "127.0.0.1:5000/test/img:v1");
    assert_string_equal(meta_get(meta, SHIM_LABEL_MANIFEST_DIGEST), DIGEST);
    assert_string_equal(meta_get(meta, SHIM_ANN_CONTAINER_TYPE), "container");
    assert_int_equal(json_object_size(meta), 3);

    /* copies and rewritten mount sources */
    static const struct {
        const char *dest, *host, *guest;
    } want[] = {
        {"/etc/hosts", "/var/lib/kubelet/pods/5a3c1f2e/etc-hosts",
         "/run/kata-containers/shared/containers/" CID "-hosts"},
        {"/dev/termination-log", "/var/lib/kubelet/pods/5a3c1f2e/containers/web/3f1b2c4d",
         "/run/kata-containers/shared/containers/" CID "-termination-log"},
        {"/etc/hostname", "/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/" SID "/hostname",
         "/run/kata-containers/shared/containers/" CID "-hostname"},
        {"/etc/resolv.conf",
         "/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/" SID "/resolv.conf",
         "/run/kata-containers/shared/containers/" CID "-resolv.conf"},
    };
    assert_int_equal(s->n_copies, ELEMENTSOF(want));
    for (size_t i = 0; i < ELEMENTSOF(want); i++) {
        assert_string_equal(s->copies[i].host_path, want[i].host);
        assert_string_equal(s->copies[i].guest_path, want[i].guest);
        const Grpc__Mount *m = find_mount(s->spec, want[i].dest);
        assert_string_equal(m->source, want[i].guest);
        assert_string_equal(m->type, "bind");
        assert_int_equal(m->n_options, 3);
        assert_string_equal(m->options[0], "rbind");
    }
    const Grpc__Mount *shm = find_mount(s->spec, "/dev/shm");
    assert_string_equal(shm->source, "/run/kata-containers/sandbox/shm");
    assert_string_equal(shm->type, "bind");
    assert_string_equal(find_mount(s->spec, "/proc")->source, "proc");
    assert_string_equal(find_mount(s->spec, "/sys/fs/cgroup")->type, "cgroup");
    assert_int_equal(find_mount(s->spec, "/dev/pts")->n_options, 6);
    assert_int_equal(s->spec->n_mounts, 11);

    /* root, namespaces, host-only fields */
    assert_non_null(s->spec->root);
    assert_string_equal(s->spec->root->path, "/run/kata-containers/" CID "/rootfs");
    assert_true(s->spec->root->readonly);
    const Grpc__Linux *l = s->spec->linux;
    assert_non_null(l);
    assert_int_equal(l->n_namespaces, 4);
    static const char *const ns[] = {"pid", "ipc", "uts", "mount"};
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(l->namespaces[i]->type, ns[i]);
        assert_string_equal(l->namespaces[i]->path, "");
    }
    assert_string_equal(l->cgroupspath, "/cloak/" CID);
    assert_null(s->spec->hooks);
    assert_int_equal(l->n_devices, 0);
    assert_null(l->seccomp);
    assert_string_equal(l->mountlabel, "");
    assert_non_null(l->resources);
    assert_int_equal(l->resources->n_devices, 0);
    assert_int_equal(l->resources->memory->limit, 268435456);
    assert_int_equal(l->resources->cpu->quota, 50000);
    assert_int_equal(l->n_maskedpaths, 1);
    assert_string_equal(s->spec->process->apparmorprofile, "");
    assert_string_equal(s->spec->process->selinuxlabel, "");
    assert_true(s->spec->process->nonewprivileges);
    assert_int_equal(s->spec->process->n_args, 3);
    assert_string_equal(find_annotation(s->spec, SHIM_ANN_CONTAINER_TYPE), "container");
    assert_string_equal(find_annotation(s->spec, SHIM_ANN_IMAGE_NAME),
                        "127.0.0.1:5000/test/img:v1");
    assert_int_equal(s->spec->n_annotations, 6);
}

static void
test_input_not_modified(void **state)
{
    _cleanup_(shim_container_spec_freep) shim_container_spec *s = NULL;
    _cleanup_json_ json_t *c = parse(cri_container), *orig = parse(cri_container);
    assert_int_equal(build_json(c, CID, volume_pinned, &s, NULL), 0);
    assert_true(json_equal(c, orig));
}

static void
test_sandbox(void **state)
{
    _cleanup_(shim_container_spec_freep) shim_container_spec *s = NULL;
    _cleanup_(sandbox_req_freep) Grpc__CreateSandboxRequest *req = NULL;
    _cleanup_error_ cc_error *err = NULL;
    _cleanup_json_ json_t *meta = NULL, *config = parse(cri_sandbox);
    /* the pause image's snapshot names it; the guest uses its baked bundle anyway */
    static const char vol[] =
        "{\"volume_type\":\"image_guest_pull\",\"source\":\"registry.k8s.io/pause:3.6\","
        "\"image_pull\":{\"metadata\":{\"containerd.io/snapshot/cri.image-ref\":"
        "\"registry.k8s.io/pause:3.6\",\"containerd.io/snapshot/cri.manifest-digest\":\"" DIGEST2
        "\"}}}";

    int r = build_json(config, SID, vol, &s, &err);
    if (r < 0)
        fail_msg("%s", cc_error_message(err));
    assert_true(s->is_sandbox);
    assert_string_equal(s->sandbox_id, SID);
    assert_string_equal(s->image_ref, "pause");
    assert_null(s->warning);
    assert_string_equal(s->storages[0]->source, "pause");
    assert_string_equal(s->storages[0]->mount_point, "/run/kata-containers/" SID "/rootfs");
    meta = storage_metadata(s->storages[0]);
    assert_string_equal(meta_get(meta, SHIM_ANN_CONTAINER_TYPE), "sandbox");
    assert_int_equal(s->n_copies, 0);
    assert_string_equal(find_mount(s->spec, "/dev/shm")->source, SHIM_GUEST_SHM);
    assert_int_equal(s->spec->linux->n_namespaces, 4);
    assert_string_equal(s->spec->linux->cgroupspath, "/cloak/" SID);
    assert_string_equal(s->spec->hostname, "web-x2x7q");

    r = shim_sandbox_request(s, config, 0, &req, &err);
    if (r < 0)
        fail_msg("%s", cc_error_message(err));
    assert_string_equal(req->hostname, "web-x2x7q");
    assert_string_equal(req->sandbox_id, SID);
    assert_int_equal(req->n_storages, 1);
    const Grpc__Storage *shm = req->storages[0];
    assert_string_equal(shm->driver, "ephemeral");
    assert_string_equal(shm->fstype, "tmpfs");
    assert_string_equal(shm->mount_point, "/run/kata-containers/sandbox/shm");
    assert_int_equal(shm->n_driver_options, 0);
    bool size_found = false;
    for (size_t i = 0; i < shm->n_options; i++)
        size_found = size_found || cc_streq(shm->options[i], "size=67108864");
    assert_true(size_found);
    sandbox_req_free(TAKE_PTR(req));

    assert_int_equal(shim_sandbox_request(s, config, 128u << 20, &req, NULL), 0);
    assert_string_equal(req->storages[0]->options[req->storages[0]->n_options - 1],
                        "size=134217728");
    sandbox_req_free(TAKE_PTR(req));

    /* no hostname: empty */
    json_object_del(config, "hostname");
    assert_int_equal(shim_sandbox_request(s, config, 0, &req, NULL), 0);
    assert_string_equal(req->hostname, "");

    /* an app container has no CreateSandbox */
    _cleanup_(shim_container_spec_freep) shim_container_spec *app = NULL;
    assert_int_equal(build(cri_container, volume_pinned, &app, NULL), 0);
    Grpc__CreateSandboxRequest *none = NULL;
    expect_error(shim_sandbox_request(app, config, 0, &none, &err), &err, -EINVAL, "sandbox", NULL);
    assert_null(none);
}

static void
test_no_cri_annotations(void **state)
{
    /* ctr run with an image: no annotations at all: an app container of its own sandbox */
    _cleanup_(shim_container_spec_freep) shim_container_spec *s = NULL;
    _cleanup_json_ json_t *c = parse(cri_container);
    json_object_del(c, "annotations");
    assert_int_equal(build_json(c, "ctr-test", volume_pinned, &s, NULL), 0);
    assert_false(s->is_sandbox);
    assert_string_equal(s->sandbox_id, "ctr-test");
    assert_string_equal(s->image_ref, "127.0.0.1:5000/test/img@" DIGEST);
    assert_int_equal(s->spec->n_annotations, 0);
    assert_null(shim_config_annotation(c, SHIM_ANN_IMAGE_NAME));
}

static void
test_fallback_no_digest(void **state)
{
    _cleanup_(shim_container_spec_freep) shim_container_spec *s = NULL;
    _cleanup_error_ cc_error *err = NULL;
    _cleanup_json_ json_t *meta = NULL;
    static const char vol[] =
        "{\"volume_type\":\"image_guest_pull\",\"source\":\"127.0.0.1:5000/test/img:v1\","
        "\"image_pull\":{\"metadata\":{\"containerd.io/snapshot/cri.image-ref\":"
        "\"127.0.0.1:5000/test/img:v1\"}}}";

    int r = build(cri_container, vol, &s, &err);
    if (r < 0)
        fail_msg("%s", cc_error_message(err));
    assert_string_equal(s->image_ref, "127.0.0.1:5000/test/img:v1");
    assert_string_equal(s->storages[0]->source, "127.0.0.1:5000/test/img:v1");
    assert_non_null(s->warning);
    assert_non_null(strstr(s->warning, SHIM_LABEL_MANIFEST_DIGEST));
    assert_non_null(strstr(s->warning, "127.0.0.1:5000/test/img:v1"));
    meta = storage_metadata(s->storages[0]);
    assert_null(meta_get(meta, SHIM_LABEL_MANIFEST_DIGEST));

    /* the nydus shape: a dummy source, metadata without ref or digest, no image_pull at all */
    shim_container_spec_free(TAKE_PTR(s));
    r = build(cri_container,
              "{\"volume_type\":\"image_guest_pull\",\"source\":\"dummy-image-reference\"}", &s,
              &err);
    if (r < 0)
        fail_msg("%s", cc_error_message(err));
    assert_string_equal(s->image_ref, "127.0.0.1:5000/test/img:v1");
    assert_non_null(s->warning);
}

static void
test_mismatch(void **state)
{
    _cleanup_error_ cc_error *err = NULL;
    _cleanup_json_ json_t *meta = NULL;
    shim_container_spec *s = NULL;

    /* a digest without the ref it belongs to is never pinned to the annotation's repository:
     * the annotation's tag is pulled and the orphan digest does not reach the agent */
    static const char orphan[] =
        "{\"volume_type\":\"image_guest_pull\",\"source\":\"dummy-image-reference\","
        "\"image_pull\":{\"metadata\":{\"containerd.io/snapshot/cri.manifest-digest\":\"" DIGEST
        "\"}}}";
    assert_int_equal(build(cri_container, orphan, &s, NULL), 0);
    assert_string_equal(s->image_ref, "127.0.0.1:5000/test/img:v1");
    assert_non_null(s->warning);
    assert_non_null(strstr(s->warning, SHIM_LABEL_IMAGE_REF));
    meta = storage_metadata(s->storages[0]);
    assert_null(meta_get(meta, SHIM_LABEL_MANIFEST_DIGEST));
    s = shim_container_spec_free(s);

    /* the metadata's own ref and digest win over a different image-name annotation */
    _cleanup_json_ json_t *c = parse(cri_container);
    json_object_set_new(json_object_get(c, "annotations"), SHIM_ANN_IMAGE_NAME,
                        json_string("docker.io/library/busybox:latest"));
    assert_int_equal(build_json(c, CID, volume_pinned, &s, NULL), 0);
    assert_string_equal(s->image_ref, "127.0.0.1:5000/test/img@" DIGEST);
    s = shim_container_spec_free(s);

    /* a ref carrying another digest than the metadata's */
    static const char two_digests[] =
        "{\"volume_type\":\"image_guest_pull\",\"image_pull\":{\"metadata\":{"
        "\"containerd.io/snapshot/cri.image-ref\":\"127.0.0.1:5000/test/img@" DIGEST2 "\","
        "\"containerd.io/snapshot/cri.manifest-digest\":\"" DIGEST "\"}}}";
    expect_error(build(cri_container, two_digests, &s, &err), &err, -EINVAL, "rootfs: ",
                 "does not match", NULL);
    assert_null(s);

    /* the same digest twice is fine */
    static const char same_digest[] =
        "{\"volume_type\":\"image_guest_pull\",\"image_pull\":{\"metadata\":{"
        "\"containerd.io/snapshot/cri.image-ref\":\"127.0.0.1:5000/test/img:v1@" DIGEST "\","
        "\"containerd.io/snapshot/cri.manifest-digest\":\"" DIGEST "\"}}}";
    assert_int_equal(build(cri_container, same_digest, &s, NULL), 0);
    assert_string_equal(s->image_ref, "127.0.0.1:5000/test/img@" DIGEST);
    s = shim_container_spec_free(s);

    /* no digest and no annotation: nothing to pull */
    json_object_del(json_object_get(c, "annotations"), SHIM_ANN_IMAGE_NAME);
    expect_error(build_json(c, CID, "{\"volume_type\":\"image_guest_pull\"}", &s, &err), &err,
                 -EINVAL, "rootfs: ", SHIM_ANN_IMAGE_NAME, NULL);
    assert_null(s);
}

static void
test_refusals(void **state)
{
    _cleanup_error_ cc_error *err = NULL;
    shim_container_spec *s = NULL;
    _cleanup_json_ json_t *c = parse(cri_container);

    /* a kubelet volume (the service-account token) is a host bind mount */
    json_t *extra = parse("{\"destination\": \"/var/run/secrets/kubernetes.io/serviceaccount\","
                          "\"type\": \"bind\", \"source\": \"/var/lib/kubelet/pods/5a3c1f2e/"
                          "volumes/kubernetes.io~projected/kube-api-access-7xq2k\","
                          "\"options\": [\"rbind\", \"rprivate\", \"ro\"]}");
    json_array_append_new(json_object_get(c, "mounts"), extra);
    expect_error(build_json(c, CID, volume_pinned, &s, &err), &err, -EPERM,
                 "mounts[11] (destination '/var/run/secrets/kubernetes.io/serviceaccount'): host "
                 "bind mounts are not shared with the guest (source '/var/lib/kubelet/pods/",
                 NULL);
    assert_null(s);
    json_decref(c);

    /* type none with rbind options is a bind mount too */
    c = parse(cri_container);
    json_array_append_new(json_object_get(c, "mounts"),
                          parse("{\"destination\": \"/data\", \"type\": \"none\", \"source\": "
                                "\"/srv\", \"options\": [\"rbind\"]}"));
    expect_error(build_json(c, CID, volume_pinned, &s, &err), &err, -EPERM,
                 "mounts[11] (destination '/data')", "(source '/srv')", NULL);
    json_decref(c);

    /* a host block device */
    c = parse(cri_container);
    json_array_append_new(json_object_get(c, "mounts"),
                          parse("{\"destination\": \"/data\", \"type\": \"ext4\", \"source\": "
                                "\"/dev/sdb1\"}"));
    expect_error(build_json(c, CID, volume_pinned, &s, &err), &err, -EOPNOTSUPP,
                 "mounts[11] (destination '/data')", "'ext4'", NULL);
    json_decref(c);

    /* the same file twice */
    c = parse(cri_container);
    json_array_append_new(json_object_get(c, "mounts"),
                          parse("{\"destination\": \"/etc/hosts\", \"type\": \"bind\", "
                                "\"source\": \"/tmp/hosts\", \"options\": [\"rbind\"]}"));
    expect_error(build_json(c, CID, volume_pinned, &s, &err), &err, -EINVAL, "mounts[11]", NULL);
    json_decref(c);

    /* a copied file whose source is relative */
    c = parse(cri_container);
    json_object_set_new(json_array_get(json_object_get(c, "mounts"), 6), "source",
                        json_string("etc-hosts"));
    expect_error(build_json(c, CID, volume_pinned, &s, &err), &err, -EINVAL, "mounts[6]", NULL);
    json_decref(c);

    /* malformed fields name their path */
    c = parse(cri_container);
    json_object_set_new(json_array_get(json_object_get(c, "mounts"), 2), "options",
                        json_integer(1));
    expect_error(build_json(c, CID, volume_pinned, &s, &err), &err, -EINVAL, "mounts[2].options",
                 NULL);
    json_decref(c);
    c = parse(cri_container);
    json_object_set_new(json_object_get(c, "annotations"), SHIM_ANN_CONTAINER_TYPE,
                        json_string("podsandbox"));
    expect_error(build_json(c, CID, volume_pinned, &s, &err), &err, -EINVAL,
                 "annotations[\"io.kubernetes.cri.container-type\"]: ", NULL);
    json_decref(c);
    c = parse(cri_container);
    json_object_set_new(json_object_get(c, "annotations"), SHIM_ANN_CONTAINER_TYPE,
                        json_integer(1));
    expect_error(build_json(c, CID, volume_pinned, &s, &err), &err, -EINVAL,
                 "annotations[\"io.kubernetes.cri.container-type\"]", NULL);
    assert_null(shim_config_annotation(c, SHIM_ANN_CONTAINER_TYPE));

    /* container ids end up in guest paths */
    expect_error(build_json(c, "../x", volume_pinned, &s, &err), &err, -EINVAL, "container id",
                 NULL);
    expect_error(build_json(c, "", volume_pinned, &s, &err), &err, -EINVAL, "container id", NULL);
    assert_null(s);
}

static void
test_rootfs_refusals(void **state)
{
    _cleanup_error_ cc_error *err = NULL;
    _cleanup_json_ json_t *c = parse(cri_container);
    shim_container_spec *s = NULL;

    /* ctr run --rootfs: no mount, root.path is a host directory */
    json_object_set_new(json_object_get(c, "root"), "path", json_string("/srv/rootfs"));
    shim_spec_input in = {.container_id = CID, .config = c};
    expect_error(shim_spec_build(&in, &s, &err), &err, -EPERM, "rootfs: ", "'/srv/rootfs'", NULL);
    assert_null(s);

    /* two mounts */
    _cleanup_mount_ Containerd__Types__Mount *a = guest_pull_mount(volume_pinned);
    _cleanup_mount_ Containerd__Types__Mount *b = guest_pull_mount(volume_pinned);
    Containerd__Types__Mount *two[] = {a, b};
    in.rootfs = two;
    in.n_rootfs = 2;
    expect_error(shim_spec_build(&in, &s, &err), &err, -EINVAL, "rootfs: 2 mounts", NULL);

    /* containerd's overlayfs snapshotter */
    _cleanup_mount_ Containerd__Types__Mount *ov =
        mount_new("overlay", "workdir=/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/"
                             "snapshots/5/work",
                  "upperdir=/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/5/fs",
                  "lowerdir=/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/4/fs",
                  NULL);
    Containerd__Types__Mount *one[] = {ov};
    in.rootfs = one;
    in.n_rootfs = 1;
    expect_error(shim_spec_build(&in, &s, &err), &err, -EOPNOTSUPP, "rootfs: a 'overlay' mount",
                 "lowerdir=", "cloak-snapshotter must be containerd's snapshotter", NULL);

    /* native snapshotter */
    _cleanup_mount_ Containerd__Types__Mount *bind = mount_new("bind", "rbind", "rw", NULL);
    one[0] = bind;
    expect_error(shim_spec_build(&in, &s, &err), &err, -EOPNOTSUPP, "rootfs: a 'bind' mount", NULL);

    /* the option on another mount type */
    _cleanup_mount_ Containerd__Types__Mount *other =
        mount_new("overlay", "lowerdir=/x", "@VOLUME:{\"volume_type\":\"image_guest_pull\"}", NULL);
    one[0] = other;
    expect_error(shim_spec_build(&in, &s, &err), &err, -EINVAL, "rootfs: mount type 'overlay'",
                 NULL);

    /* the option twice */
    _cleanup_mount_ Containerd__Types__Mount *twice =
        mount_new("fuse.nydus-overlayfs", "@VOLUME:{\"volume_type\":\"image_guest_pull\"}",
                  "@VOLUME:{\"volume_type\":\"image_guest_pull\"}", NULL);
    one[0] = twice;
    expect_error(shim_spec_build(&in, &s, &err), &err, -EINVAL, "twice", NULL);

    /* bad base64 */
    _cleanup_mount_ Containerd__Types__Mount *bad =
        mount_new("fuse.nydus-overlayfs", "lowerdir=/x", "io.katacontainers.volume=eyJ2b2x1b*==",
                  NULL);
    one[0] = bad;
    expect_error(shim_spec_build(&in, &s, &err), &err, -EINVAL,
                 "rootfs: io.katacontainers.volume: invalid base64", NULL);

    /* JSON without volume_type, a wrong volume_type, bad metadata, bad digests */
    expect_error(build(cri_container, "{\"source\":\"x\"}", &s, &err), &err, -EINVAL,
                 "rootfs: io.katacontainers.volume: no volume_type", NULL);
    expect_error(build(cri_container, "{\"volume_type\":\"image_raw_block\"}", &s, &err), &err,
                 -EOPNOTSUPP, "rootfs: ", "'image_raw_block'", NULL);
    expect_error(build(cri_container,
                       "{\"volume_type\":\"image_guest_pull\",\"image_pull\":{\"metadata\":"
                       "{\"a\":1}}}",
                       &s, &err),
                 &err, -EINVAL, "rootfs: ", "metadata[\"a\"]", NULL);
    expect_error(build(cri_container, "{\"volume_type\":\"image_guest_pull\",\"image_pull\":[]}",
                       &s, &err),
                 &err, -EINVAL, "rootfs: ", "image_pull", NULL);
    assert_null(s);
}

static void
test_digest_validation(void **state)
{
    static const char *const bad[] = {
        "sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
        "sha256:0123456789abcdef",
        "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0",
        "sha512:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg",
        "",
    };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        _cleanup_error_ cc_error *err = NULL;
        shim_container_spec *s = NULL;
        _cleanup_free_ char *vol = cc_xasprintf(
            "{\"volume_type\":\"image_guest_pull\",\"image_pull\":{\"metadata\":{"
            "\"containerd.io/snapshot/cri.image-ref\":\"127.0.0.1:5000/test/img:v1\","
            "\"containerd.io/snapshot/cri.manifest-digest\":\"%s\"}}}",
            bad[i]);
        expect_error(build(cri_container, vol, &s, &err), &err, -EINVAL, "rootfs: ",
                     SHIM_LABEL_MANIFEST_DIGEST, bad[i], NULL);
        /* the sandbox's metadata is checked too */
        expect_error(build(cri_sandbox, vol, &s, &err), &err, -EINVAL, SHIM_LABEL_MANIFEST_DIGEST,
                     NULL);
        assert_null(s);
    }
}

static void
test_ref_parsing(void **state)
{
    static const struct {
        const char *ref, *pinned;
    } ok[] = {
        {"127.0.0.1:5000/test/img:v1", "127.0.0.1:5000/test/img@" DIGEST},
        {"127.0.0.1:5000/test/img", "127.0.0.1:5000/test/img@" DIGEST},
        {"localhost:5000/img:latest", "localhost:5000/img@" DIGEST},
        {"busybox:1.36", "busybox@" DIGEST},
        {"busybox", "busybox@" DIGEST},
        {"library/busybox:latest", "library/busybox@" DIGEST},
        {"docker.io/library/busybox:1.36.1-musl", "docker.io/library/busybox@" DIGEST},
        {"registry.k8s.io/pause:3.6", "registry.k8s.io/pause@" DIGEST},
        {"ghcr.io/org/sub/app@" DIGEST, "ghcr.io/org/sub/app@" DIGEST},
        {"ghcr.io/org/app:v2@" DIGEST, "ghcr.io/org/app@" DIGEST},
    };
    static const char *const bad[] = {
        "",
        "busybox:",
        "busybox:-x",
        "host:port/img",
        "host:/img",
        "/img:v1",
        "img/:v1",
        "a//b:v1",
        "img:v1 ",
        "img@sha256:abc",
        ("img:v1@" DIGEST2), /* the digest differs from the metadata's */
        "img:a/b",
    };
    for (size_t i = 0; i < ELEMENTSOF(ok); i++) {
        _cleanup_(shim_container_spec_freep) shim_container_spec *s = NULL;
        _cleanup_error_ cc_error *err = NULL;
        _cleanup_free_ char *vol = cc_xasprintf(
            "{\"volume_type\":\"image_guest_pull\",\"image_pull\":{\"metadata\":{"
            "\"containerd.io/snapshot/cri.image-ref\":\"%s\","
            "\"containerd.io/snapshot/cri.manifest-digest\":\"" DIGEST "\"}}}",
            ok[i].ref);
        if (build(cri_container, vol, &s, &err) < 0)
            fail_msg("%s: %s", ok[i].ref, cc_error_message(err));
        assert_string_equal(s->image_ref, ok[i].pinned);
        assert_null(s->warning);
    }
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        _cleanup_error_ cc_error *err = NULL;
        shim_container_spec *s = NULL;
        _cleanup_free_ char *vol = cc_xasprintf(
            "{\"volume_type\":\"image_guest_pull\",\"image_pull\":{\"metadata\":{"
            "\"containerd.io/snapshot/cri.image-ref\":\"%s\","
            "\"containerd.io/snapshot/cri.manifest-digest\":\"" DIGEST "\"}}}",
            bad[i]);
        if (build(cri_container, vol, &s, &err) != -EINVAL)
            fail_msg("'%s' was accepted", bad[i]);
        assert_non_null(strstr(err->message, SHIM_LABEL_IMAGE_REF));
        assert_null(s);
    }

    /* the fallback's annotation is checked the same way */
    _cleanup_error_ cc_error *err = NULL;
    _cleanup_json_ json_t *c = parse(cri_container);
    shim_container_spec *s = NULL;
    json_object_set_new(json_object_get(c, "annotations"), SHIM_ANN_IMAGE_NAME,
                        json_string("img:"));
    expect_error(build_json(c, CID, "{\"volume_type\":\"image_guest_pull\"}", &s, &err), &err,
                 -EINVAL, "annotations[\"io.kubernetes.cri.image-name\"]", NULL);
    assert_null(s);
}

static void
test_volume_decode(void **state)
{
    static const struct {
        const char *json;
    } ok[] = {
        {"{\"volume_type\":\"x\"}"},  /* 19 bytes: "==" */
        {"{\"volume_type\":\"xy\"}"}, /* 20 bytes: "=" */
        {"{\"volume_type\":\"x\" }"}, /* 20 bytes */
        {"{\"volume_type\":\"xyz\" }"},
    };
    for (size_t i = 0; i < ELEMENTSOF(ok); i++) {
        _cleanup_free_ char *b = base64(ok[i].json);
        _cleanup_json_ json_t *v = NULL, *want = parse(ok[i].json);
        _cleanup_error_ cc_error *err = NULL;
        if (shim_volume_decode(b, &v, &err) < 0)
            fail_msg("%s: %s", b, cc_error_message(err));
        assert_true(json_equal(v, want));
    }

    static const char *const bad[] = {
        "",
        "eyJ2",                         /* '{"v' : not JSON */
        "eyJ2b2x1bWVfdHlwZSI6IngifQ",   /* padding missing */
        "eyJ2b2x1bWVfdHlwZSI6IngifQ=",  /* length */
        "eyJ2b2x1bWVfdHlwZSI6IngifR==", /* non-zero padding bits */
        "eyJ2b2x1bWVfdHlwZSI6Ing=fQ==", /* '=' in the middle */
        "eyJ2b2x1bWVfdHlwZSI6IngifQ==\n",
        "eyJ2b2x1bWVf dHlwZSI6IngifQ==",
        "eyJ2b2x1bWVf-HlwZSI6IngifQ==", /* URL alphabet */
    };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        _cleanup_json_ json_t *v = NULL;
        _cleanup_error_ cc_error *err = NULL;
        if (shim_volume_decode(bad[i], &v, &err) != -EINVAL)
            fail_msg("'%s' was accepted", bad[i]);
        assert_null(v);
        assert_non_null(strstr(err->message, "io.katacontainers.volume"));
    }

    static const char *const bad_json[] = {
        "[1]", "{}", "{\"volume_type\":\"\"}", "{\"volume_type\":3}", "{\"volume_type\":null}",
    };
    for (size_t i = 0; i < ELEMENTSOF(bad_json); i++) {
        _cleanup_free_ char *b = base64(bad_json[i]);
        _cleanup_json_ json_t *v = NULL;
        _cleanup_error_ cc_error *err = NULL;
        if (shim_volume_decode(b, &v, &err) != -EINVAL)
            fail_msg("'%s' was accepted", bad_json[i]);
        assert_non_null(strstr(err->message, "io.katacontainers.volume"));
    }

    /* what cloak-snapshotter writes round-trips */
    _cleanup_free_ char *b = base64(volume_pinned);
    _cleanup_json_ json_t *v = NULL;
    assert_int_equal(shim_volume_decode(b, &v, NULL), 0);
    assert_string_equal(json_string_value(json_object_get(v, "volume_type")), "image_guest_pull");
}

static void
test_sizing(void **state)
{
    _cleanup_error_ cc_error *err = NULL;
    _cleanup_json_ json_t *c = parse(cri_sandbox);
    json_t *ann = json_object_get(c, "annotations");
    unsigned vcpus = 0, mem = 0;

    /* 150000/100000 -> 2 vcpus; 268435457 bytes -> 257 MiB */
    assert_int_equal(shim_sandbox_sizing(c, 1, 8, 256, 4096, &vcpus, &mem, &err), 0);
    assert_int_equal(vcpus, 3);
    assert_int_equal(mem, 256 + 257);

    /* exact multiples */
    json_object_set_new(ann, SHIM_ANN_SANDBOX_CPU_QUOTA, json_string("200000"));
    json_object_set_new(ann, SHIM_ANN_SANDBOX_MEMORY, json_string("134217728"));
    assert_int_equal(shim_sandbox_sizing(c, 1, 8, 256, 4096, &vcpus, &mem, &err), 0);
    assert_int_equal(vcpus, 3);
    assert_int_equal(mem, 384);

    /* clamped */
    json_object_set_new(ann, SHIM_ANN_SANDBOX_CPU_QUOTA, json_string("9223372036854775807"));
    json_object_set_new(ann, SHIM_ANN_SANDBOX_CPU_PERIOD, json_string("1"));
    json_object_set_new(ann, SHIM_ANN_SANDBOX_MEMORY, json_string("9223372036854775807"));
    assert_int_equal(shim_sandbox_sizing(c, 1, 8, 256, 4096, &vcpus, &mem, &err), 0);
    assert_int_equal(vcpus, 8);
    assert_int_equal(mem, 4096);

    /* unlimited (-1) and zero add nothing */
    json_object_set_new(ann, SHIM_ANN_SANDBOX_CPU_QUOTA, json_string("-1"));
    json_object_set_new(ann, SHIM_ANN_SANDBOX_CPU_PERIOD, json_string("100000"));
    json_object_set_new(ann, SHIM_ANN_SANDBOX_MEMORY, json_string("0"));
    assert_int_equal(shim_sandbox_sizing(c, 2, 8, 512, 4096, &vcpus, &mem, &err), 0);
    assert_int_equal(vcpus, 2);
    assert_int_equal(mem, 512);
    json_object_set_new(ann, SHIM_ANN_SANDBOX_CPU_QUOTA, json_string("50000"));
    json_object_set_new(ann, SHIM_ANN_SANDBOX_CPU_PERIOD, json_string("0"));
    assert_int_equal(shim_sandbox_sizing(c, 2, 8, 512, 4096, &vcpus, &mem, &err), 0);
    assert_int_equal(vcpus, 2);

    /* absent: the base */
    _cleanup_json_ json_t *bare = parse("{}");
    assert_int_equal(shim_sandbox_sizing(bare, 1, 8, 256, 4096, &vcpus, &mem, &err), 0);
    assert_int_equal(vcpus, 1);
    assert_int_equal(mem, 256);

    /* malformed */
    static const char *const bad[] = {"", "1.5", "abc", " 1", "+1", "1k", "99999999999999999999",
                                      "0x10"};
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        unsigned v = 77, m = 77;
        json_object_set_new(ann, SHIM_ANN_SANDBOX_MEMORY, json_string(bad[i]));
        expect_error(shim_sandbox_sizing(c, 1, 8, 256, 4096, &v, &m, &err), &err, -EINVAL,
                     "annotations[\"io.kubernetes.cri.sandbox-memory\"]", NULL);
        assert_int_equal(v, 77);
        assert_int_equal(m, 77);
    }
    json_object_set_new(ann, SHIM_ANN_SANDBOX_MEMORY, json_string("1"));
    json_object_set_new(ann, SHIM_ANN_SANDBOX_CPU_PERIOD, json_integer(100000));
    expect_error(shim_sandbox_sizing(c, 1, 8, 256, 4096, &vcpus, &mem, &err), &err, -EINVAL,
                 "sandbox-cpu-period", NULL);
}

static void
test_config_annotation(void **state)
{
    _cleanup_json_ json_t *c = parse(cri_container);
    assert_string_equal(shim_config_annotation(c, SHIM_ANN_SANDBOX_ID), SID);
    assert_null(shim_config_annotation(c, "nope"));
    _cleanup_json_ json_t *weird = parse("{\"annotations\": [1]}");
    assert_null(shim_config_annotation(weird, SHIM_ANN_SANDBOX_ID));
    assert_null(shim_config_annotation(NULL, SHIM_ANN_SANDBOX_ID));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cri_container),     cmocka_unit_test(test_input_not_modified),
        cmocka_unit_test(test_sandbox),           cmocka_unit_test(test_no_cri_annotations),
        cmocka_unit_test(test_fallback_no_digest), cmocka_unit_test(test_mismatch),
        cmocka_unit_test(test_refusals),          cmocka_unit_test(test_rootfs_refusals),
        cmocka_unit_test(test_digest_validation), cmocka_unit_test(test_ref_parsing),
        cmocka_unit_test(test_volume_decode),     cmocka_unit_test(test_sizing),
        cmocka_unit_test(test_config_annotation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
