/* SPDX-License-Identifier: Apache-2.0 */
/*
 * An OCI distribution (registry v2) client for pulling inside the guest, on libcurl, and the
 * parsers of what it fetches (manifest, index, image config).
 *
 * Registries: HTTPS verified against the CA bundle; plain HTTP only for a registry on the
 * insecure list ("host" or "host:port", or "host:*" for any port). With loopback_gateway set
 * (the dev profile's user networking), a registry host in 127.0.0.0/8, "localhost" or "[::1]"
 * is reached at that address instead, same port (the image ref is not changed: auth realms
 * and the repository stay as written). docker.io refs map to registry-1.docker.io and
 * "library/" as docker does.
 *
 * Auth: anonymous; basic with the configured credentials of the registry; bearer tokens from
 * a 401's WWW-Authenticate realm (with the basic credentials when there are some), cached per
 * client and scope. Credentials and tokens are never logged.
 *
 * Threads: a client may be used from several threads at once (one blob per thread); each
 * call blocks (network). Errors name the image, what was fetched and what failed: network,
 * HTTP status (401/403 auth, 404 not found), digest, size.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

#define REGISTRY_MANIFEST_MAX (4u << 20) /* manifests, indexes */
#define REGISTRY_CONFIG_MAX (8u << 20)   /* image config blobs */

typedef struct registry_credential {
    const char *registry; /* "host[:port]" as in image refs */
    const char *username;
    const char *password;
} registry_credential;

typedef struct registry_config {
    const char *const *insecure; /* plain-HTTP registries: "host", "host:port", "host:*" */
    size_t n_insecure;
    const char *loopback_gateway; /* e.g. "10.0.2.2"; NULL: no rewriting */
    const char *ca_file;          /* NULL: "/etc/ssl/certs/ca-certificates.crt" */
    const registry_credential *credentials;
    size_t n_credentials;
    long connect_timeout_sec;     /* 0: 30 */
    long low_speed_timeout_sec;   /* abort when under 1 KiB/s for this long; 0: 60 */
} registry_config;

/* "[registry/]repository[:tag][@sha256:<hex>]" */
typedef struct image_ref {
    char *registry;   /* "docker.io" when none was given */
    char *repository; /* "library/busybox" for docker.io's official images */
    char *tag;        /* NULL when none (then "latest" unless a digest is given) */
    char *digest;     /* NULL when none */
} image_ref;

int image_ref_parse(const char *s, image_ref *ret, cc_error **err);
void image_ref_clear(image_ref *ref);
/* "registry/repository@digest" (the pinned form); caller frees. */
char *image_ref_pinned(const image_ref *ref, const char *digest);

typedef struct registry_client registry_client;

/* A client for ref's registry and repository. cfg and its strings are copied. */
int registry_client_new(const registry_config *cfg, const image_ref *ref, registry_client **ret,
                        cc_error **err);
registry_client *registry_client_free(registry_client *c);

/*
 * GETs manifest `reference` (a tag or a digest) accepting OCI/Docker manifests and indexes.
 * When expect_digest is non-NULL the body's sha256 must equal it (-EBADMSG otherwise, naming
 * both). *ret_body (NUL-terminated, caller frees), *ret_len, *ret_media_type (Content-Type, or
 * the body's mediaType; caller frees).
 */
int registry_get_manifest(registry_client *c, const char *reference, const char *expect_digest,
                          char **ret_body, size_t *ret_len, char **ret_media_type, cc_error **err);

/* GETs a small blob (the config) whole, verified against digest, at most max bytes. */
int registry_get_blob(registry_client *c, const char *digest, size_t max, char **ret_body,
                      size_t *ret_len, cc_error **err);

/* A blob streamed as it downloads: registry_blob_read() matches layer_read_fn. The bytes are
 * not verified here (layer_unpack() does that in the same pass). expected_size < 0: unknown. */
typedef struct registry_blob registry_blob;
int registry_blob_open(registry_client *c, const char *digest, int64_t expected_size,
                       registry_blob **ret, cc_error **err);
ssize_t registry_blob_read(void *blob, void *buf, size_t len, cc_error **err);
registry_blob *registry_blob_close(registry_blob *b);

/* --- what the registry serves --------------------------------------------------------------- */

typedef struct oci_descriptor {
    char *media_type;
    char *digest; /* "sha256:<64 hex>", checked */
    int64_t size;
} oci_descriptor;

typedef struct oci_manifest {
    oci_descriptor config;
    oci_descriptor *layers;
    size_t n_layers;
} oci_manifest;

void oci_descriptor_clear(oci_descriptor *d);
void oci_manifest_clear(oci_manifest *m);

/* True for the OCI image index and Docker manifest list media types. */
bool oci_media_type_is_index(const char *media_type);

/*
 * An index (or manifest list): the descriptor of the manifest for os/architecture (e.g.
 * "linux"/"amd64"; variant ignored), or -ENOENT naming the platforms it has.
 */
int oci_index_select(const char *body, size_t len, const char *os, const char *architecture,
                     oci_descriptor *ret, cc_error **err);
/* An image manifest (OCI or Docker schema 2; schema 1 is refused). At most 1024 layers. */
int oci_manifest_parse(const char *body, size_t len, oci_manifest *ret, cc_error **err);
/* An image config: os must be "linux"; *ret_diff_ids ("sha256:<hex>" each) in layer order. */
int oci_config_diff_ids(const char *body, size_t len, char ***ret_diff_ids, size_t *ret_n,
                        cc_error **err);
/* "sha256:" + 64 lowercase hex digits. */
bool oci_digest_is_valid(const char *digest);
