/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the shim sends the agent for one container, derived from containerd's config.json and
 * the task's rootfs mounts (specs/shim-v2-and-ttrpc.md §4, specs/guest-pull-snapshotter.md
 * §4.4, specs/agent-api-policy-and-peers.md §2). Pure functions: no I/O beyond what the
 * caller passes in, so everything here is unit-tested (test/unit/shim/test-spec.c).
 *
 * The guest layout (Kata's, so a Kata agent would accept it too):
 *   /run/kata-containers/<cid>/rootfs                 the container's rootfs (a storage)
 *   /run/kata-containers/sandbox/shm                  the pod's /dev/shm (ephemeral storage,
 *                                                     made by CreateSandbox)
 *   /run/kata-containers/shared/containers/<cid>-<n>  files copied with CopyFile (hosts,
 *                                                     hostname, resolv.conf, termination-log)
 */
#pragma once

#include "containerd/types/mount.pb-c.h"
#include "error.h"
#include "kata/agent.pb-c.h"
#include "kata/oci.pb-c.h"
#include "macro.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define SHIM_GUEST_BASE "/run/kata-containers"
#define SHIM_GUEST_SHM SHIM_GUEST_BASE "/sandbox/shm"
#define SHIM_GUEST_SHARED SHIM_GUEST_BASE "/shared/containers"
#define SHIM_SHM_SIZE_DEFAULT (64u << 20) /* Docker's and CRI's default /dev/shm size */

/* CRI's annotations (containerd pkg/cri/annotations). */
#define SHIM_ANN_CONTAINER_TYPE "io.kubernetes.cri.container-type" /* sandbox|container */
#define SHIM_ANN_SANDBOX_ID "io.kubernetes.cri.sandbox-id"
#define SHIM_ANN_IMAGE_NAME "io.kubernetes.cri.image-name"
#define SHIM_ANN_SANDBOX_CPU_PERIOD "io.kubernetes.cri.sandbox-cpu-period"
#define SHIM_ANN_SANDBOX_CPU_QUOTA "io.kubernetes.cri.sandbox-cpu-quota"
#define SHIM_ANN_SANDBOX_MEMORY "io.kubernetes.cri.sandbox-memory"
/* The snapshotter's labels, carried in the guest-pull volume's metadata. */
#define SHIM_LABEL_IMAGE_REF "containerd.io/snapshot/cri.image-ref"
#define SHIM_LABEL_MANIFEST_DIGEST "containerd.io/snapshot/cri.manifest-digest"

/* A host file the container sees at a mount destination, copied into the guest. */
typedef struct shim_copy_file {
    char *host_path;  /* the mount's source on the host (read by the caller, at most 1 MiB) */
    char *guest_path; /* CopyFile path: SHIM_GUEST_SHARED "/<cid>-<basename of destination>" */
} shim_copy_file;

typedef struct shim_spec_input {
    const char *container_id;
    const json_t *config; /* containerd's config.json (the OCI spec), borrowed */
    /* CreateTaskRequest.rootfs: empty (ctr --rootfs: root.path is a host dir, refused), or
     * exactly one guest-pull mount from cloak-snapshotter (fuse.nydus-overlayfs with an
     * io.katacontainers.volume=<base64 JSON> option). */
    Containerd__Types__Mount *const *rootfs;
    size_t n_rootfs;
} shim_spec_input;

/* Everything CreateContainer needs, all owned. */
typedef struct shim_container_spec {
    bool is_sandbox;  /* annotation container-type = sandbox (the pod's pause container) */
    char *sandbox_id; /* annotation sandbox-id, else the container id */
    /* The constrained spec (see shim_spec_build). */
    Grpc__Spec *spec;
    /* storages[0] is the rootfs (image_guest_pull); NULL-free array. */
    Grpc__Storage **storages;
    size_t n_storages;
    shim_copy_file *copies;
    size_t n_copies;
    char *image_ref;  /* what the guest pulls: "<repo>@sha256:..." when pinned, else the tag;
                       * "pause" for the sandbox */
    char *warning;    /* non-NULL: a fallback was taken (no manifest digest); log it */
} shim_container_spec;

/*
 * Builds the agent's view of one container (Kata's rules, tightened):
 *  - config.json -> grpc.Spec with lib/oci.c;
 *  - namespaces: `network` dropped (the VM is the pod's network), `path` of every other one
 *    dropped (host namespace paths mean nothing in the guest);
 *  - mounts: /etc/hosts, /etc/hostname, /etc/resolv.conf and /dev/termination-log bind
 *    mounts become copies (shim_copy_file) and their source the guest path; /dev/shm becomes
 *    a bind of SHIM_GUEST_SHM; proc, sysfs, tmpfs, devpts, mqueue, cgroup kept; any other bind
 *    mount is refused (-EPERM: "mounts[3] (destination '/data'): host bind mounts are not
 *    shared with the guest (source '/var/lib/...')");
 *  - rootfs: the guest-pull volume decoded (base64, JSON volume_type image_guest_pull) into
 *    storage {driver image_guest_pull, source <image_ref>, fstype overlay, mount_point
 *    /run/kata-containers/<cid>/rootfs, driver_options ["image_guest_pull=<JSON
 *    {metadata: {...}}>"]}; metadata = the volume's image_pull.metadata plus the
 *    container-type annotation. image_ref: the volume's cri.image-ref repository pinned to its
 *    cri.manifest-digest ("<repo>@<digest>", a tag in the ref is dropped); without a digest
 *    the io.kubernetes.cri.image-name annotation (a tag) and *warning says so; the repository
 *    of one source is never combined with the digest of another. The sandbox gets image_ref
 *    "pause" and metadata container-type=sandbox (the agent uses its baked pause bundle);
 *  - root.path = the storage's mount_point, root.readonly kept;
 *  - hooks dropped; linux.devices dropped (the guest has its own /dev); linux.resources.devices
 *    dropped; linux.cgroupsPath = "/cloak/<cid>"; seccomp, apparmor and selinux labels dropped
 *    (host profiles); annotations kept.
 * Errors (-EINVAL, -EPERM, -EOPNOTSUPP) name the field: "rootfs: ...", "mounts[2] ...",
 * "annotations[\"io.kubernetes.cri.container-type\"]: ...". *ret written only on success.
 */
int shim_spec_build(const shim_spec_input *in, shim_container_spec **ret, cc_error **err);
shim_container_spec *shim_container_spec_free(shim_container_spec *s);
CC_DEFINE_CLEANUP(shim_container_spec, shim_container_spec_free)

/*
 * CreateSandbox for the pod whose pause container is s (s->is_sandbox): sandbox_id, hostname
 * (config.json's hostname), and one storage: ephemeral tmpfs at SHIM_GUEST_SHM with
 * options size=<shm_size> (0: SHIM_SHM_SIZE_DEFAULT). *ret is malloc'ed deep (free with
 * protobuf_c_message_free_unpacked(&(*ret)->base, NULL)).
 */
int shim_sandbox_request(const shim_container_spec *s, const json_t *config, size_t shm_size,
                         Grpc__CreateSandboxRequest **ret, cc_error **err);

/*
 * The VM's size from CRI's pod-level annotations of the sandbox's config.json:
 * vcpus = base_vcpus + ceil(cpu-quota / cpu-period) (when both are > 0),
 * memory = base_memory_mib + ceil(memory / MiB) (when > 0), each clamped to the max.
 * A malformed annotation is -EINVAL naming it; absent ones add nothing.
 */
int shim_sandbox_sizing(const json_t *config, unsigned base_vcpus, unsigned max_vcpus,
                        unsigned base_memory_mib, unsigned max_memory_mib, unsigned *ret_vcpus,
                        unsigned *ret_memory_mib, cc_error **err);

/* [A-Za-z0-9][A-Za-z0-9._-]*, 1 to max characters: ids that end up in guest paths. */
bool shim_id_is_valid(const char *id, size_t max);

/* The annotation key's string value in config.json, or NULL (borrowed). */
const char *shim_config_annotation(const json_t *config, const char *key);

/* Decodes an "io.katacontainers.volume=" option value (base64 of JSON); *ret is a new JSON
 * object with a non-empty string volume_type. Errors name the option. */
int shim_volume_decode(const char *base64, json_t **ret, cc_error **err);
