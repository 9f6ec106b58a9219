/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One image layer, in one streaming pass and without a temporary copy:
 *   compressed bytes (pulled through read_fn) -> sha256 (must equal the descriptor's digest)
 *   -> gzip / zstd / no decompression -> sha256 (must equal the config's diff_id)
 *   -> tar entries unpacked below dir_fd, with OCI whiteouts turned into overlayfs ones.
 * The digests can only be checked at the end: on any failure the caller discards dir_fd's
 * contents and never uses them. Thread-safe (no global state); blocks (runs in a worker).
 *
 * Unpack policy (host-controlled bytes, but digests pinned by the manifest the agent verified):
 * - paths: a leading "/" or "./" is dropped; an entry with a ".." component, an empty name or
 *   a name over PATH_MAX is an error. Parent directories are opened one component at a time
 *   without following symlinks, so no entry, hard link or symlink can write outside dir_fd.
 * - hard links must name an earlier regular file of the same layer (resolved the same way).
 * - symlinks are created as they are (their target is data; it is resolved inside the
 *   container's root at run time).
 * - device nodes (char, block) are skipped and counted; FIFOs are created.
 * - setuid/setgid/sticky bits, owners, modes, mtimes and xattrs (user.*, security.capability)
 *   are kept: the image is the workload's, and the container's own capability set applies.
 * - whiteouts: ".wh.NAME" becomes a 0/0 character device NAME, ".wh..wh..opq" sets
 *   trusted.overlay.opaque=y on its directory; a later entry replaces an earlier one.
 */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "error.h"

/* Pulls up to len compressed bytes into buf: the count, 0 at the end, or a negative errno
 * (with *err set). */
typedef ssize_t (*layer_read_fn)(void *userdata, void *buf, size_t len, cc_error **err);

typedef enum layer_compression {
    LAYER_COMPRESSION_NONE,
    LAYER_COMPRESSION_GZIP,
    LAYER_COMPRESSION_ZSTD,
} layer_compression;

/* OCI and Docker layer media types -> compression; -EOPNOTSUPP (naming it) for the others
 * (encrypted layers, foreign layers). */
int layer_compression_from_media_type(const char *media_type, layer_compression *ret,
                                      cc_error **err);

typedef struct layer_stats {
    uint64_t compressed_bytes;
    uint64_t uncompressed_bytes;
    unsigned entries;
    unsigned devices_skipped;
    unsigned whiteouts;
} layer_stats;

/*
 * digest and diff_id: "sha256:<64 hex>". dir_fd: an empty directory (O_PATH is fine),
 * borrowed. Errors name what failed: "layer sha256:...: digest mismatch (got sha256:...)",
 * "diff_id mismatch", "gzip: ...", "tar entry 'a/../b': ...", ENOSPC, read_fn's errors.
 * stats may be NULL.
 */
int layer_unpack(layer_read_fn read_fn, void *userdata, layer_compression compression,
                 const char *digest, const char *diff_id, int dir_fd, layer_stats *stats,
                 cc_error **err);
