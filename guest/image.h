/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Image pull inside the guest: the image_guest_pull storage of a CreateContainer.
 *
 * The image is pulled pinned: <repository of the ref>@<manifest digest from the storage's
 * metadata (containerd.io/snapshot/cri.manifest-digest)>; without a digest, by the ref as given.
 * The manifest's digest is checked, an index resolved to linux/amd64, the config checked
 * against its digest, and each layer streamed through layer_unpack() (digest and diff_id
 * checked in the same pass) into <state>/layers/, which the host cannot reach. Layers are
 * shared by every container of the sandbox and downloaded once (a layer being downloaded is
 * waited for, a failed one retried by the next pull). The work runs in threads (up to 3
 * layers at a time per image); the result comes back on the loop, where the overlay is
 * mounted at the storage's mount point: the layers as lowerdirs, upper and work dirs in
 * <state>/overlay/<container id>.
 */
#pragma once

#include "agent.h"

/* The metadata keys of an image_guest_pull storage we read (the snapshotter writes them). */
#define AGENT_IMAGE_REF_KEY "containerd.io/snapshot/cri.image-ref"
#define AGENT_IMAGE_DIGEST_KEY "containerd.io/snapshot/cri.manifest-digest"

/* The layers of a pulled image, bottom first (absolute directories). */
typedef struct agent_image_layers {
    char **dirs;
    size_t n;
} agent_image_layers;

void agent_image_layers_free(agent_image_layers *l);

/* Checks an image_guest_pull storage's ref and digest (syntax only; no network). */
int agent_image_storage_check(const Grpc__Storage *st, cc_error **err);

/* Called on the loop when the pull finished: r < 0 with e on failure (e names the image and
 * what failed); on success layers (owned by the callee). */
typedef void (*agent_image_done_fn)(agent *a, int r, const cc_error *e, agent_image_layers *layers,
                                    void *userdata);

/* Starts pulling st's image; done() is called exactly once, later, on the loop. */
int agent_image_pull(agent *a, const Grpc__Storage *st, agent_image_done_fn done, void *userdata,
                     cc_error **err);

/* Mounts the overlay of layers at the directory fd mount_fd (the storage's mount point) for
 * container id. */
int agent_image_mount(agent *a, const agent_image_layers *layers, const char *container_id,
                      int mount_fd, cc_error **err);

/* Removes <state>/overlay/<container id> (after the overlay was unmounted). */
void agent_image_cleanup_container(agent *a, const char *container_id);
