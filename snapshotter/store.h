/* SPDX-License-Identifier: Apache-2.0 */
/*
 * snap_store: the snapshots of cloak-snapshotter, with containerd's semantics (mirroring
 * containerd 1.6 snapshots/storage and the overlay snapshotter) plus the guest-pull rules
 * (specs/guest-pull-snapshotter.md §3, §8).
 *
 * On disk, the file system is the source of truth (no database):
 *
 *     <root>/snapshots/<id>/info.json   name, parent, kind, timestamps, labels
 *     <root>/snapshots/<id>/fs          the upper (or only) layer
 *     <root>/snapshots/<id>/work        overlayfs work dir
 *
 * ids are decimal numbers, never reused while the root exists (the next one is derived from
 * the largest at open). A snapshot exists once its info.json does: creation makes the dirs
 * first, then writes info.json (write, fsync, rename); commit and label updates rewrite it
 * the same way; removal renames the dir to ".rm-<id>" first. At open (and on Cleanup)
 * everything else under snapshots/ (dirs without info.json, ".rm-*", stray files) is
 * removed, and temporary files inside snapshot dirs are ignored.
 *
 * Errors (negative errno, with messages shaped like containerd's): -ENOENT not found,
 * -EEXIST already exists, -EINVAL invalid argument, -EBUSY failed precondition (snapshot
 * not active, has children, legacy host unpack refused).
 *
 * Single-threaded: the loop thread only. Blocks on the file system.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "error.h"
#include "macro.h"

/* Same numbers as containerd.services.snapshots.v1.Kind. */
typedef enum snap_kind {
    SNAP_KIND_VIEW = 1,
    SNAP_KIND_ACTIVE = 2,
    SNAP_KIND_COMMITTED = 3,
    _SNAP_KIND_MAX,
    _SNAP_KIND_INVALID = -EINVAL,
} snap_kind;

/* Labels of the guest-pull protocol. */
#define SNAP_LABEL_TARGET "containerd.io/snapshot.ref"
#define SNAP_LABEL_GUESTPULL "containerd.io/snapshot/guestpull"
#define SNAP_LABEL_IMAGE_REF "containerd.io/snapshot/cri.image-ref"
#define SNAP_LABEL_MANIFEST_DIGEST "containerd.io/snapshot/cri.manifest-digest"
#define SNAP_DUMMY_IMAGE_REF "dummy-image-reference"
/* containerd's labels.Validate: key plus value. */
#define SNAP_LABEL_LENGTH_MAX 4096

typedef struct snap_info {
    uint64_t id;
    char *name;   /* the key of an active or view snapshot */
    char *parent; /* NULL: none */
    snap_kind kind;
    struct timespec created, updated;
    json_t *labels; /* object of strings, never NULL */
} snap_info;

typedef struct snap_mount {
    char *type;
    char *source;
    char **options;
    size_t n_options;
} snap_mount;

/* Frees the members of m and zeroes it. */
void snap_mount_clear(snap_mount *m);

typedef struct snap_store snap_store;

/*
 * Opens (creating it if needed) the store under root, removing half-made snapshots.
 * Errors: mkdir/open errors; an unreadable snapshot dir is logged and removed.
 */
int snap_store_open(const char *root, snap_store **ret, cc_error **err);
snap_store *snap_store_free(snap_store *s);
CC_DEFINE_CLEANUP(snap_store, snap_store_free)

/*
 * Prepare (kind ACTIVE) or View (kind VIEW) of key on parent (NULL or "": none) with labels
 * (borrowed object of strings, may be NULL). *ret_mount receives the one mount to use.
 * A Prepare carrying SNAP_LABEL_TARGET commits a guest-pull placeholder and returns -EEXIST
 * "target snapshot \"<target>\": already exists" on success (containerd's remote snapshot
 * protocol). An unlabelled Prepare of an "extract-" key on a chain without guest-pull
 * snapshots (host-side unpack) gives -EBUSY.
 */
int snap_store_prepare(snap_store *s, snap_kind kind, const char *key, const char *parent,
                       const json_t *labels, snap_mount *ret_mount, cc_error **err);

/* The mount of an active or view snapshot (-EBUSY for a committed one). */
int snap_store_mounts(snap_store *s, const char *key, snap_mount *ret_mount, cc_error **err);

/* Commits the active snapshot key as name with labels (borrowed, may be NULL). */
int snap_store_commit(snap_store *s, const char *name, const char *key, const json_t *labels,
                      cc_error **err);

/* Removes key (-EBUSY when it has children). */
int snap_store_remove(snap_store *s, const char *key, cc_error **err);

/* The snapshot named key, borrowed until the next change, in *ret. -ENOENT when absent. */
int snap_store_stat(snap_store *s, const char *key, const snap_info **ret, cc_error **err);

/*
 * Updates the labels of name from labels (borrowed object): with no paths, replaces them all;
 * else each path is "labels" (replace all) or "labels.<key>" (set, or delete when absent from
 * labels); any other path gives -EINVAL. *ret receives the updated info (borrowed).
 */
int snap_store_update(snap_store *s, const char *name, const json_t *labels,
                      char *const *paths, size_t n_paths, const snap_info **ret, cc_error **err);

/* Disk usage of key's fs dir: bytes (allocated blocks) and inodes. */
int snap_store_usage(snap_store *s, const char *key, int64_t *ret_size, int64_t *ret_inodes,
                     cc_error **err);

/* Removes directories under snapshots/ that are no snapshot. */
int snap_store_cleanup(snap_store *s, cc_error **err);

/* Iteration over every snapshot, in id order: i < snap_store_count(s). Borrowed. */
size_t snap_store_count(const snap_store *s);
const snap_info *snap_store_get(const snap_store *s, size_t i);

/*
 * containerd's filter syntax (filters package) on snapshot fields: selectors separated by
 * ',' (AND), each "<field>", "<field>==<value>", "<field>!=<value>" or "<field>~=<regexp>";
 * fields name, parent, kind (view|active|committed) and labels.<key> (keys and values may be
 * quoted "..."). *ret tells whether info matches. -EINVAL on a syntax error.
 */
int snap_filter_match(const snap_info *info, const char *filter, bool *ret, cc_error **err);

/* "view", "active", "committed". */
const char *snap_kind_to_string(snap_kind k);
