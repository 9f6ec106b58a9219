/* SPDX-License-Identifier: Apache-2.0 */
/* snap_store internals shared by store.c, mount.c and the unit tests. */
#pragma once

#include "store.h"

struct snap_store {
    char *root;
    int dir_fd; /* <root>/snapshots */
    snap_info **infos; /* id order */
    size_t n_infos;
    uint64_t next_id;
    uint64_t id_mark; /* ids below this are reserved in <root>/id-mark (ids are never reused) */
};

/* The snapshot named name, or NULL. */
snap_info *snap_store_find(const snap_store *s, const char *name);

/* The one mount of an active or view snapshot (mount.c). */
int snap_mount_build(const snap_store *s, const snap_info *info, snap_mount *ret,
                     cc_error **err);

/* Standard base64 with padding, NUL-terminated (mount.c). */
char *snap_base64_encode(const void *buf, size_t len);
