/* SPDX-License-Identifier: Apache-2.0 */
/*
 * guest/registry.c: image refs, the insecure list, WWW-Authenticate, the manifest/index/config
 * parsers, and the client end to end against a small HTTP server on 127.0.0.1 (a thread
 * answering one request per connection from a table of canned responses).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "json.h"
#include "registry-priv.h"
#include "registry.h"
#include "util.h"

#define D_A "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define D_B "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define D_C "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"

static void
sha256(const void *p, size_t n, char out[72])
{
    unsigned char md[32];
    assert_true(EVP_Digest(p, n, md, NULL, EVP_sha256(), NULL));
    strcpy(out, "sha256:");
    for (int i = 0; i < 32; i++)
        sprintf(out + 7 + 2 * i, "%02x", md[i]);
}

/* --- image refs ------------------------------------------------------------------------------ */

static void
test_ref_good(void **state)
{
    static const struct {
        const char *in, *registry, *repository, *tag, *digest;
    } cases[] = {
        {"busybox", "docker.io", "library/busybox", NULL, NULL},
        {"busybox:1.36", "docker.io", "library/busybox", "1.36", NULL},
        {"library/busybox", "docker.io", "library/busybox", NULL, NULL},
        {"docker.io/busybox", "docker.io", "library/busybox", NULL, NULL},
        {"index.docker.io/foo/bar:x", "docker.io", "foo/bar", "x", NULL},
        {"foo/bar", "docker.io", "foo/bar", NULL, NULL},
        {"quay.io/a/b/c:v1_2-3.x", "quay.io", "a/b/c", "v1_2-3.x", NULL},
        {"localhost/x", "localhost", "x", NULL, NULL},
        {"localhost:5000/x", "localhost:5000", "x", NULL, NULL},
        {"localhost:5000/x:_t", "localhost:5000", "x", "_t", NULL},
        {"[::1]:5000/x", "[::1]:5000", "x", NULL, NULL},
        {"127.0.0.1:5000/a-b__c.d---e/f_g:latest", "127.0.0.1:5000", "a-b__c.d---e/f_g", "latest",
         NULL},
        {"My-Registry.example.com/x", "My-Registry.example.com", "x", NULL, NULL},
        {"busybox@" D_A, "docker.io", "library/busybox", NULL, D_A},
        {"r.io/x:t@" D_B, "r.io", "x", "t", D_B},
    };
    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        image_ref r = {0};
        cc_error *err = NULL;
        if (image_ref_parse(cases[i].in, &r, &err) < 0)
            fail_msg("%s: %s", cases[i].in, cc_error_message(err));
        assert_string_equal(r.registry, cases[i].registry);
        assert_string_equal(r.repository, cases[i].repository);
        if (cases[i].tag)
            assert_string_equal(r.tag, cases[i].tag);
        else
            assert_null(r.tag);
        if (cases[i].digest)
            assert_string_equal(r.digest, cases[i].digest);
        else
            assert_null(r.digest);
        image_ref_clear(&r);
    }
    image_ref r = {0};
    assert_int_equal(image_ref_parse("busybox:1", &r, NULL), 0);
    _cleanup_free_ char *p = image_ref_pinned(&r, D_C);
    assert_string_equal(p, "docker.io/library/busybox@" D_C);
    image_ref_clear(&r);
}

static void
test_ref_bad(void **state)
{
    char long_tag[200], long_name[300];
    memset(long_tag, 0, sizeof(long_tag));
    strcpy(long_tag, "x:");
    memset(long_tag + 2, 'a', 129);
    memset(long_name, 0, sizeof(long_name));
    memset(long_name, 'a', 256);

    static const struct {
        const char *in, *msg;
    } cases[] = {
        {"", "image ref '': empty"},
        {"Busybox", "image ref 'Busybox': bad repository 'Busybox' (lowercase letters, digits "
                    "and separators '.', '_', '__', '-' between them, '/' between components)"},
        {"quay.io/Foo/bar", NULL},
        {"x@sha512:abcd", "image ref 'x@sha512:abcd': unsupported digest algorithm 'sha512' "
                          "(only sha256)"},
        {"x@sha256:ABCDEF", "image ref 'x@sha256:ABCDEF': bad digest (expected sha256: and 64 "
                            "lowercase hex digits)"},
        {"x@" D_A "0", NULL},
        {"x:", NULL},
        {"x:-a", NULL},
        {"x:a/b", NULL},
        {"a//b", NULL},
        {"a/b/", NULL},
        {"a..b", NULL},
        {"a___b", NULL},
        {"-a", NULL},
        {"a-", NULL},
        {"localhost:0/x", NULL},
        {"localhost:99999/x", NULL},
        {"-bad.io/x", NULL},
        {"[::zz]:5000/x", NULL},
        {"r.io/", "image ref 'r.io/': empty repository"},
        {"x y", NULL},
    };
    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        image_ref r = {.registry = (char *)"untouched"};
        _cleanup_error_ cc_error *err = NULL;
        if (image_ref_parse(cases[i].in, &r, &err) != -EINVAL)
            fail_msg("'%s' parsed", cases[i].in);
        assert_non_null(err);
        if (cases[i].msg)
            assert_string_equal(cc_error_message(err), cases[i].msg);
        assert_string_equal(r.registry, "untouched");
    }
    _cleanup_error_ cc_error *err = NULL;
    image_ref r = {0};
    assert_int_equal(image_ref_parse(long_tag, &r, &err), -EINVAL);
    assert_non_null(strstr(cc_error_message(err), "bad tag"));
    long_tag[130] = '\0'; /* 128 characters: fine */
    assert_int_equal(image_ref_parse(long_tag, &r, NULL), 0);
    image_ref_clear(&r);
    assert_int_equal(image_ref_parse(long_name, &r, NULL), -EINVAL);
    long_name[255] = '\0';
    assert_int_equal(image_ref_parse(long_name, &r, NULL), 0);
    image_ref_clear(&r);
}

/* --- insecure list, loopback, WWW-Authenticate ----------------------------------------------- */

static void
test_insecure_match(void **state)
{
    const char *list[] = {"plain", "exact:5000", "any:*", "[::1]:*", "127.0.0.1:*"};
    size_t n = ELEMENTSOF(list);
    assert_true(registry_insecure_match(list, n, "plain"));
    assert_true(registry_insecure_match(list, n, "PLAIN"));
    assert_false(registry_insecure_match(list, n, "plain:5000"));
    assert_true(registry_insecure_match(list, n, "exact:5000"));
    assert_false(registry_insecure_match(list, n, "exact:5001"));
    assert_false(registry_insecure_match(list, n, "exact"));
    assert_true(registry_insecure_match(list, n, "any:1"));
    assert_true(registry_insecure_match(list, n, "any"));
    assert_false(registry_insecure_match(list, n, "any.io"));
    assert_true(registry_insecure_match(list, n, "[::1]:5000"));
    assert_true(registry_insecure_match(list, n, "127.0.0.1:80"));
    assert_false(registry_insecure_match(list, n, "127.0.0.2:80"));
    assert_false(registry_insecure_match(list, n, "docker.io"));
    assert_false(registry_insecure_match(NULL, 0, "plain"));

    assert_true(registry_host_is_loopback("localhost"));
    assert_true(registry_host_is_loopback("127.0.0.1"));
    assert_true(registry_host_is_loopback("127.255.1.2"));
    assert_true(registry_host_is_loopback("[::1]"));
    assert_false(registry_host_is_loopback("128.0.0.1"));
    assert_false(registry_host_is_loopback("localhost.example"));
    assert_false(registry_host_is_loopback("10.0.2.2"));
}

static void
test_challenge(void **state)
{
    registry_challenge ch = {0};
    assert_int_equal(registry_challenge_parse(
                         "Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker."
                         "io\",scope=\"repository:library/busybox:pull\"",
                         &ch, NULL),
                     0);
    assert_int_equal(ch.scheme, REGISTRY_AUTH_BEARER);
    assert_string_equal(ch.realm, "https://auth.docker.io/token");
    assert_string_equal(ch.service, "registry.docker.io");
    assert_string_equal(ch.scope, "repository:library/busybox:pull");
    registry_challenge_clear(&ch);

    /* case-insensitive scheme and names, escapes, spaces, unknown params, token values */
    assert_int_equal(registry_challenge_parse("  bEaReR  Realm = \"http://a/t?x=\\\"q\\\\\" , "
                                              "error=\"insufficient_scope\",SERVICE=svc",
                                              &ch, NULL),
                     0);
    assert_int_equal(ch.scheme, REGISTRY_AUTH_BEARER);
    assert_string_equal(ch.realm, "http://a/t?x=\"q\\");
    assert_string_equal(ch.service, "svc");
    assert_null(ch.scope);
    registry_challenge_clear(&ch);

    assert_int_equal(registry_challenge_parse("Basic realm=\"Registry Realm\"", &ch, NULL), 0);
    assert_int_equal(ch.scheme, REGISTRY_AUTH_BASIC);
    assert_string_equal(ch.realm, "Registry Realm");
    registry_challenge_clear(&ch);

    /* several challenges: Bearer preferred; unknown schemes skipped */
    assert_int_equal(registry_challenge_parse("Basic realm=\"b\", Negotiate abc==, Bearer "
                                              "realm=\"https://t\", scope=\"s\"",
                                              &ch, NULL),
                     0);
    assert_int_equal(ch.scheme, REGISTRY_AUTH_BEARER);
    assert_string_equal(ch.realm, "https://t");
    assert_string_equal(ch.scope, "s");
    registry_challenge_clear(&ch);

    static const char *const bad[] = {
        "",
        "Negotiate",
        "Bearer",
        "Bearer service=\"x\"",
        "Bearer realm=\"unterminated",
        "Bearer realm=",
        "Bearer realm=\"x\" junk",
        "Bearer realm=\"x\\",
        "@",
    };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        _cleanup_error_ cc_error *err = NULL;
        ch = (registry_challenge){.realm = (char *)"untouched"};
        if (registry_challenge_parse(bad[i], &ch, &err) != -EINVAL)
            fail_msg("'%s' parsed", bad[i]);
        assert_non_null(err);
        assert_string_equal(ch.realm, "untouched");
    }
}

/* --- parsers --------------------------------------------------------------------------------- */

#define MANIFEST_JSON                                                                              \
    "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","           \
    "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"" D_A     \
    "\",\"size\":1234},\"layers\":[{\"mediaType\":"                                                \
    "\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"" D_B "\",\"size\":100},"        \
    "{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+zstd\",\"digest\":\"" D_C             \
    "\",\"size\":0}]}"

static void
expect_manifest_error(const char *json, int code, const char *msg)
{
    oci_manifest m = {0};
    _cleanup_error_ cc_error *err = NULL;
    int r = oci_manifest_parse(json, strlen(json), &m, &err);
    if (r != code)
        fail_msg("%s: got %d (%s)", json, r, cc_error_message(err));
    assert_null(m.layers);
    if (msg)
        assert_string_equal(cc_error_message(err), msg);
}

static void
test_manifest_parse(void **state)
{
    oci_manifest m = {0};
    cc_error *err = NULL;
    if (oci_manifest_parse(MANIFEST_JSON, strlen(MANIFEST_JSON), &m, &err) < 0)
        fail_msg("%s", cc_error_message(err));
    assert_string_equal(m.config.digest, D_A);
    assert_int_equal(m.config.size, 1234);
    assert_int_equal(m.n_layers, 2);
    assert_string_equal(m.layers[0].media_type, "application/vnd.oci.image.layer.v1.tar+gzip");
    assert_string_equal(m.layers[1].digest, D_C);
    assert_int_equal(m.layers[1].size, 0);
    oci_manifest_clear(&m);

    /* Docker schema 2, no mediaType at the top */
    const char *docker =
        "{\"schemaVersion\":2,\"config\":{\"mediaType\":"
        "\"application/vnd.docker.container.image.v1+json\",\"digest\":\"" D_A "\",\"size\":1},"
        "\"layers\":[]}";
    assert_int_equal(oci_manifest_parse(docker, strlen(docker), &m, NULL), 0);
    assert_int_equal(m.n_layers, 0);
    oci_manifest_clear(&m);

    expect_manifest_error("{\"schemaVersion\":1,\"fsLayers\":[]}", -EINVAL,
                          "manifest: field 'schemaVersion': 1 is not supported (expected 2)");
    expect_manifest_error("{}", -EINVAL, "manifest: field 'schemaVersion': missing");
    expect_manifest_error("[1]", -EINVAL, NULL);
    expect_manifest_error("{\"schemaVersion\":2", -EINVAL, NULL);
    expect_manifest_error(
        "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\"}", -EINVAL,
        "manifest: field 'mediaType': not an image manifest media type (an index)");
    expect_manifest_error("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"x\",\"digest\":"
                          "\"" D_A "\",\"size\":1},\"layers\":[]}",
                          -EOPNOTSUPP,
                          "manifest: field 'config.mediaType': not an image config media type");
    expect_manifest_error("{\"schemaVersion\":2,\"config\":{\"mediaType\":"
                          "\"application/vnd.oci.image.config.v1+json\",\"digest\":\"" D_A
                          "\",\"size\":1},\"layers\":[{\"mediaType\":\"m\",\"digest\":\"" D_B
                          "\",\"size\":1},{\"mediaType\":\"m\",\"digest\":\"" D_B
                          "\",\"size\":1},{\"mediaType\":\"m\",\"digest\":\"sha256:00\","
                          "\"size\":1}]}",
                          -EINVAL,
                          "manifest: field 'layers[2].digest': not a sha256 digest (sha256: and 64 "
                          "lowercase hex digits)");
    expect_manifest_error("{\"schemaVersion\":2,\"config\":{\"mediaType\":"
                          "\"application/vnd.oci.image.config.v1+json\",\"digest\":\"" D_A
                          "\",\"size\":-1},\"layers\":[]}",
                          -EINVAL, "manifest: field 'config.size': negative");
    expect_manifest_error(
        "{\"schemaVersion\":2,\"config\":{\"mediaType\":"
        "\"application/vnd.oci.image.config.v1+json\",\"digest\":\"" D_A
        "\",\"size\":1},\"layers\":[{\"mediaType\":\"m\",\"digest\":\"" D_B "\",\"size\":\"1\"}]}",
        -EINVAL, "manifest: field 'layers[0].size': expected integer, got string");
    expect_manifest_error("{\"schemaVersion\":2,\"config\":{\"mediaType\":"
                          "\"application/vnd.oci.image.config.v1+json\",\"digest\":\"" D_A
                          "\",\"size\":1}}",
                          -EINVAL, "manifest: field 'layers': missing");

    /* more than 1024 layers */
    _cleanup_free_ char *big = cc_xstrdup("{\"schemaVersion\":2,\"config\":{\"mediaType\":"
                                          "\"application/vnd.oci.image.config.v1+json\","
                                          "\"digest\":\"" D_A "\",\"size\":1},\"layers\":[");
    for (int i = 0; i < 1025; i++) {
        char *s = cc_xasprintf("%s%s{\"mediaType\":\"m\",\"digest\":\"" D_B "\",\"size\":1}", big,
                               i ? "," : "");
        free(big);
        big = s;
    }
    char *s = cc_xasprintf("%s]}", big);
    free(big);
    big = s;
    expect_manifest_error(big, -EINVAL, "manifest: field 'layers': more than 1024 layers");
}

#define INDEX_JSON                                                                                 \
    "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\","              \
    "\"manifests\":[{\"mediaType\":\"application/"                                                 \
    "vnd.oci.image.manifest.v1+json\",\"digest\":\"" D_A                                           \
    "\",\"size\":10,\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\",\"variant\":"        \
    "\"v8\"}},{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"" D_C     \
    "\",\"size\":3,\"annotations\":{\"vnd.docker.reference.type\":\"attestation-manifest\"}},"     \
    "{\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\",\"digest\":\"" D_B    \
    "\",\"size\":20,\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}}]}"

static void
test_index_select(void **state)
{
    oci_descriptor d = {0};
    cc_error *err = NULL;
    if (oci_index_select(INDEX_JSON, strlen(INDEX_JSON), "linux", "amd64", &d, &err) < 0)
        fail_msg("%s", cc_error_message(err));
    assert_string_equal(d.digest, D_B);
    assert_int_equal(d.size, 20);
    assert_string_equal(d.media_type, "application/vnd.docker.distribution.manifest.v2+json");
    oci_descriptor_clear(&d);

    _cleanup_error_ cc_error *e1 = NULL;
    assert_int_equal(oci_index_select(INDEX_JSON, strlen(INDEX_JSON), "linux", "s390x", &d, &e1),
                     -ENOENT);
    assert_string_equal(cc_error_message(e1),
                        "index: no manifest for linux/s390x (has linux/arm64/v8, linux/amd64)");
    assert_null(d.digest);

    _cleanup_error_ cc_error *e2 = NULL;
    const char *bad = "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":"
                      "\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:x\","
                      "\"size\":1,\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}}]}";
    assert_int_equal(oci_index_select(bad, strlen(bad), "linux", "amd64", &d, &e2), -EINVAL);
    assert_string_equal(cc_error_message(e2), "index: field 'manifests[0].digest': not a sha256 "
                                              "digest (sha256: and 64 lowercase hex digits)");

    _cleanup_error_ cc_error *e3 = NULL;
    const char *wrongtype = "{\"schemaVersion\":2,\"manifests\":[{\"platform\":{\"os\":7}}]}";
    assert_int_equal(oci_index_select(wrongtype, strlen(wrongtype), "linux", "amd64", &d, &e3),
                     -EINVAL);
    assert_string_equal(cc_error_message(e3),
                        "index: field 'manifests[0].platform.os': expected string, got integer");

    _cleanup_error_ cc_error *e4 = NULL;
    assert_int_equal(
        oci_index_select(MANIFEST_JSON, strlen(MANIFEST_JSON), "linux", "amd64", &d, &e4), -EINVAL);
    assert_string_equal(cc_error_message(e4), "index: field 'mediaType': not an index media type");

    const char *empty = "{\"schemaVersion\":2,\"manifests\":[]}";
    _cleanup_error_ cc_error *e5 = NULL;
    assert_int_equal(oci_index_select(empty, strlen(empty), "linux", "amd64", &d, &e5), -ENOENT);
    assert_string_equal(cc_error_message(e5),
                        "index: no manifest for linux/amd64 (has no platforms)");

    assert_true(oci_media_type_is_index("application/vnd.oci.image.index.v1+json"));
    assert_true(
        oci_media_type_is_index("application/vnd.docker.distribution.manifest.list.v2+json"));
    assert_false(oci_media_type_is_index("application/vnd.oci.image.manifest.v1+json"));
    assert_false(oci_media_type_is_index(NULL));
    assert_true(oci_digest_is_valid(D_A));
    assert_false(
        oci_digest_is_valid("sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
                            "AAAAAAAAA"));
    assert_false(oci_digest_is_valid("sha512:aa"));
    assert_false(oci_digest_is_valid(NULL));
}

static void
expect_config_error(const char *json, const char *msg)
{
    char **ids = NULL;
    size_t n = 99;
    _cleanup_error_ cc_error *err = NULL;
    assert_int_equal(oci_config_diff_ids(json, strlen(json), &ids, &n, &err), -EINVAL);
    assert_null(ids);
    assert_int_equal(n, 99);
    assert_string_equal(cc_error_message(err), msg);
}

static void
test_config_diff_ids(void **state)
{
    const char *cfg = "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{},\"rootfs\":"
                      "{\"type\":\"layers\",\"diff_ids\":[\"" D_A "\",\"" D_B "\"]}}";
    char **ids = NULL;
    size_t n = 0;
    assert_int_equal(oci_config_diff_ids(cfg, strlen(cfg), &ids, &n, NULL), 0);
    assert_int_equal(n, 2);
    assert_string_equal(ids[0], D_A);
    assert_string_equal(ids[1], D_B);
    assert_null(ids[2]);
    cc_json_strv_free(ids);

    expect_config_error("{\"os\":\"windows\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}",
                        "image config: image is for os 'windows', not linux");
    expect_config_error("{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}",
                        "image config: field 'os': missing");
    expect_config_error("{\"os\":\"linux\",\"rootfs\":{\"type\":\"x\",\"diff_ids\":[]}}",
                        "image config: field 'rootfs.type': 'x' is not \"layers\"");
    expect_config_error("{\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\"}}",
                        "image config: field 'rootfs.diff_ids': missing");
    expect_config_error("{\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"" D_A
                        "\",\"md5:x\"]}}",
                        "image config: field 'rootfs.diff_ids[1]': not a sha256 digest");
    expect_config_error("{\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[1]}}",
                        "image config: field 'rootfs.diff_ids[0]': expected string, got integer");
}

/* --- end to end ------------------------------------------------------------------------------ */

#define BLOB_SIZE (1u << 20)

typedef struct request {
    char path[512];
    char host[128];
    char auth[256];
} request;

static struct {
    int fd;
    int port;
    pthread_t thread;
    atomic_bool stop;
    pthread_mutex_t lock;
    request log[64];
    size_t n_log;
    unsigned token_fetches;
    char realm_host[32]; /* host of the Bearer realm ("127.0.0.1") */

    char *manifest;
    char manifest_digest[72];
    char *blob; /* BLOB_SIZE pseudo-random bytes */
    char blob_digest[72];
    char config_digest[72];
} srv;

static const char config_json[] = "{\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\","
                                  "\"diff_ids\":[]}}";

static void
send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w <= 0)
            return; /* the client went away (a refused digest, a closed blob) */
        c += w;
        n -= (size_t)w;
    }
}

static void
respond(int fd, int status, const char *extra_headers, const void *body, size_t len)
{
    char head[1024];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d X\r\nContent-Length: %zu\r\nConnection: close\r\n%s\r\n", status,
                     len, extra_headers ? extra_headers : "");
    send_all(fd, head, (size_t)n);
    send_all(fd, body, len);
}

static void
header_value(const char *req, const char *name, char *out, size_t size)
{
    out[0] = '\0';
    for (const char *p = strstr(req, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2;
        size_t n = strlen(name);
        if (strncasecmp(line, name, n) == 0 && line[n] == ':') {
            const char *v = line + n + 1;
            while (*v == ' ')
                v++;
            size_t len = strcspn(v, "\r\n");
            snprintf(out, size, "%.*s", (int)len, v);
            return;
        }
    }
}

static void
serve(int fd, const request *rq)
{
    char path[512];
    snprintf(path, sizeof(path), "%s", rq->path);
    bool bearer_ok = cc_streq(rq->auth, "Bearer secret-token");
    char challenge[256];
    snprintf(challenge, sizeof(challenge),
             "WWW-Authenticate: Bearer realm=\"http://%s:%d/token\",service=\"test-registry\","
             "scope=\"repository:test/app:pull\"\r\n",
             srv.realm_host, srv.port);

    if (cc_startswith(path, "/token?")) {
        pthread_mutex_lock(&srv.lock);
        srv.token_fetches++;
        pthread_mutex_unlock(&srv.lock);
        if (!strstr(path, "service=test-registry") ||
            !strstr(path, "scope=repository%3atest%2fapp%3apull"))
            return respond(fd, 400, NULL, "bad query", 9);
        const char *body = "{\"token\":\"secret-token\",\"expires_in\":300}";
        return respond(fd, 200, "Content-Type: application/json\r\n", body, strlen(body));
    }
    if (cc_startswith(path, "/v2/denied/")) {
        if (cc_startswith(path, "/v2/denied/app/blobs/")) /* token given but refused */
            return respond(fd, 401, challenge, "", 0);
        return respond(fd, 403, NULL, "", 0);
    }
    if (cc_startswith(path, "/v2/basic/app/")) {
        /* user:pass */
        if (!cc_streq(rq->auth, "Basic dXNlcjpwYXNz"))
            return respond(fd, 401, "WWW-Authenticate: Basic realm=\"Registry\"\r\n", "", 0);
        return respond(fd, 200, "Content-Type: application/vnd.oci.image.manifest.v1+json\r\n",
                       srv.manifest, strlen(srv.manifest));
    }
    if (cc_startswith(path, "/storage/")) {
        /* where blobs are redirected: no auth needed */
        return respond(fd, 200, "Content-Type: application/octet-stream\r\n", srv.blob, BLOB_SIZE);
    }
    if (!cc_startswith(path, "/v2/test/app/"))
        return respond(fd, 404, NULL, "", 0);
    if (!bearer_ok)
        return respond(fd, 401, challenge, "{\"errors\":[]}", 13);

    const char *ref = cc_startswith(path, "/v2/test/app/manifests/");
    if (ref) {
        if (cc_streq(ref, "v1") || cc_streq(ref, srv.manifest_digest) || cc_streq(ref, D_A))
            /* D_A: the body does not have that digest */
            return respond(fd, 200,
                           "Content-Type: application/vnd.oci.image.manifest.v1+json; "
                           "charset=utf-8\r\n",
                           srv.manifest, strlen(srv.manifest));
        if (cc_streq(ref, "untyped"))
            return respond(fd, 200, "Content-Type: application/json\r\n", srv.manifest,
                           strlen(srv.manifest));
        if (cc_streq(ref, "huge")) {
            size_t n = REGISTRY_MANIFEST_MAX + 1;
            _cleanup_free_ char *b = cc_xzalloc(n);
            memset(b, ' ', n);
            return respond(fd, 200, NULL, b, n);
        }
        return respond(fd, 404, NULL, "{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\"}]}", 40);
    }
    const char *digest = cc_startswith(path, "/v2/test/app/blobs/");
    if (digest) {
        char loc[256];
        if (cc_streq(digest, srv.blob_digest)) {
            /* same host: a relative redirect */
            return respond(fd, 307, "Location: /v2/test/app/blobs/real/blob\r\n", "", 0);
        }
        if (cc_streq(digest, D_B)) {
            /* another host name (same server): Authorization must not follow */
            snprintf(loc, sizeof(loc), "Location: http://localhost:%d/storage/blob\r\n", srv.port);
            return respond(fd, 302, loc, "", 0);
        }
        if (cc_streq(digest, "real/blob"))
            return respond(fd, 200, "Content-Type: application/octet-stream\r\n", srv.blob,
                           BLOB_SIZE);
        if (cc_streq(digest, srv.config_digest))
            return respond(fd, 200, NULL, config_json, strlen(config_json));
        if (cc_streq(digest, D_C)) /* claims to be D_C, is not */
            return respond(fd, 200, NULL, config_json, strlen(config_json));
        return respond(fd, 404, NULL, "", 0);
    }
    respond(fd, 404, NULL, "", 0);
}

static void *
server_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&srv.stop)) {
        struct pollfd p = {.fd = srv.fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        int fd = accept4(srv.fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        char req[16384];
        size_t n = 0;
        while (n < sizeof(req) - 1) {
            ssize_t r = recv(fd, req + n, sizeof(req) - 1 - n, 0);
            if (r <= 0)
                break;
            n += (size_t)r;
            req[n] = '\0';
            if (strstr(req, "\r\n\r\n"))
                break;
        }
        req[n] = '\0';
        request rq = {0};
        if (sscanf(req, "GET %511s ", rq.path) == 1) {
            header_value(req, "Host", rq.host, sizeof(rq.host));
            header_value(req, "Authorization", rq.auth, sizeof(rq.auth));
            pthread_mutex_lock(&srv.lock);
            if (srv.n_log < ELEMENTSOF(srv.log))
                srv.log[srv.n_log++] = rq;
            pthread_mutex_unlock(&srv.lock);
            serve(fd, &rq);
        }
        shutdown(fd, SHUT_WR);
        close(fd);
    }
    return NULL;
}

static int
server_setup(void **state)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    srv.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(srv.fd >= 0);
    assert_int_equal(bind(srv.fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(srv.fd, 16), 0);
    assert_int_equal(getsockname(srv.fd, (struct sockaddr *)&a, &len), 0);
    srv.port = ntohs(a.sin_port);
    pthread_mutex_init(&srv.lock, NULL);
    strcpy(srv.realm_host, "127.0.0.1");

    srv.manifest = cc_xstrdup(MANIFEST_JSON);
    sha256(srv.manifest, strlen(srv.manifest), srv.manifest_digest);
    srv.blob = cc_xmalloc(BLOB_SIZE);
    uint32_t x = 12345;
    for (size_t i = 0; i < BLOB_SIZE; i++) {
        x = x * 1103515245u + 12345u;
        srv.blob[i] = (char)(x >> 16);
    }
    sha256(srv.blob, BLOB_SIZE, srv.blob_digest);
    sha256(config_json, strlen(config_json), srv.config_digest);
    atomic_store(&srv.stop, false);
    assert_int_equal(pthread_create(&srv.thread, NULL, server_main, NULL), 0);
    return 0;
}

static int
server_teardown(void **state)
{
    atomic_store(&srv.stop, true);
    pthread_join(srv.thread, NULL);
    close(srv.fd);
    free(srv.manifest);
    free(srv.blob);
    return 0;
}

static void
log_reset(void)
{
    pthread_mutex_lock(&srv.lock);
    srv.n_log = 0;
    srv.token_fetches = 0;
    pthread_mutex_unlock(&srv.lock);
}

static const request *
log_find(const char *path_prefix, size_t nth)
{
    for (size_t i = 0; i < srv.n_log; i++)
        if (cc_startswith(srv.log[i].path, path_prefix) && nth-- == 0)
            return &srv.log[i];
    return NULL;
}

static registry_client *
client_for(const char *host, const char *repo, const char *gateway,
           const registry_credential *creds, size_t n_creds)
{
    static const char *const insecure[] = {"127.0.0.1:*", "127.0.0.2:*", "127.0.0.3:*"};
    _cleanup_free_ char *s = cc_xasprintf("%s:%d/%s", host, srv.port, repo);
    image_ref ref = {0};
    assert_int_equal(image_ref_parse(s, &ref, NULL), 0);
    registry_config cfg = {
        .insecure = insecure,
        .n_insecure = ELEMENTSOF(insecure),
        .loopback_gateway = gateway,
        .credentials = creds,
        .n_credentials = n_creds,
        .connect_timeout_sec = 5,
        .low_speed_timeout_sec = 10,
    };
    registry_client *c = NULL;
    cc_error *err = NULL;
    if (registry_client_new(&cfg, &ref, &c, &err) < 0)
        fail_msg("%s", cc_error_message(err));
    image_ref_clear(&ref);
    return c;
}

static void
test_e2e_manifest(void **state)
{
    registry_client *c = client_for("127.0.0.1", "test/app", NULL, NULL, 0);
    char *body = NULL, *mt = NULL;
    size_t len = 0;
    cc_error *err = NULL;
    log_reset();

    /* by tag: 401, token, retry with the token */
    if (registry_get_manifest(c, "v1", NULL, &body, &len, &mt, &err) < 0)
        fail_msg("%s", cc_error_message(err));
    assert_int_equal(len, strlen(MANIFEST_JSON));
    assert_string_equal(body, MANIFEST_JSON);
    assert_string_equal(mt, "application/vnd.oci.image.manifest.v1+json");
    free(body);
    free(mt);
    assert_int_equal(srv.token_fetches, 1);
    assert_string_equal(log_find("/v2/test/app/manifests/v1", 0)->auth, "");
    assert_string_equal(log_find("/v2/test/app/manifests/v1", 1)->auth, "Bearer secret-token");
    char host[64];
    snprintf(host, sizeof(host), "127.0.0.1:%d", srv.port);
    assert_string_equal(log_find("/v2/test/app/manifests/v1", 0)->host, host);

    /* by digest, token cached: one request, expected digest checked */
    log_reset();
    assert_int_equal(
        registry_get_manifest(c, srv.manifest_digest, srv.manifest_digest, &body, &len, &mt, NULL),
        0);
    free(body);
    free(mt);
    assert_int_equal(srv.token_fetches, 0);
    assert_int_equal(srv.n_log, 1);
    assert_string_equal(srv.log[0].auth, "Bearer secret-token");

    /* wrong digest: by expect_digest, and implied by a digest reference */
    _cleanup_error_ cc_error *e1 = NULL, *e2 = NULL, *e3 = NULL, *e4 = NULL, *e5 = NULL;
    body = NULL;
    assert_int_equal(registry_get_manifest(c, "v1", D_B, &body, &len, &mt, &e1), -EBADMSG);
    assert_null(body);
    _cleanup_free_ char *want =
        cc_xasprintf("manifest of 127.0.0.1:%d/test/app: digest mismatch: want %s, got %s",
                     srv.port, D_B, srv.manifest_digest);
    assert_string_equal(cc_error_message(e1), want);
    assert_int_equal(registry_get_manifest(c, D_A, NULL, &body, &len, &mt, &e2), -EBADMSG);

    /* 404, too big, content type from the body */
    assert_int_equal(registry_get_manifest(c, "nope", NULL, &body, &len, &mt, &e3), -ENOENT);
    _cleanup_free_ char *want404 = cc_xasprintf(
        "manifest 'nope' of 127.0.0.1:%d/test/app: manifest unknown (HTTP 404)", srv.port);
    assert_string_equal(cc_error_message(e3), want404);
    assert_int_equal(registry_get_manifest(c, "huge", NULL, &body, &len, &mt, &e4), -EFBIG);
    assert_int_equal(registry_get_manifest(c, "untyped", NULL, &body, &len, &mt, NULL), 0);
    assert_string_equal(mt, "application/vnd.oci.image.manifest.v1+json");
    free(body);
    free(mt);
    assert_int_equal(registry_get_manifest(c, "bad/ref", NULL, &body, &len, &mt, &e5), -EINVAL);
    registry_client_free(c);
}

static void
test_e2e_blob(void **state)
{
    registry_client *c = client_for("127.0.0.1", "test/app", NULL, NULL, 0);
    char *body = NULL;
    size_t len = 0;
    cc_error *err = NULL;

    /* small blob: whole, verified, bounded */
    if (registry_get_blob(c, srv.config_digest, 4096, &body, &len, &err) < 0)
        fail_msg("%s", cc_error_message(err));
    assert_int_equal(len, strlen(config_json));
    assert_memory_equal(body, config_json, len);
    free(body);
    _cleanup_error_ cc_error *e1 = NULL, *e2 = NULL, *e3 = NULL, *e4 = NULL;
    assert_int_equal(registry_get_blob(c, D_C, 4096, &body, &len, &e1), -EBADMSG);
    assert_non_null(strstr(cc_error_message(e1), "digest mismatch"));
    assert_int_equal(registry_get_blob(c, srv.config_digest, 10, &body, &len, &e2), -EFBIG);
    assert_int_equal(registry_get_blob(c, D_A, 4096, &body, &len, &e3), -ENOENT);
    _cleanup_free_ char *want =
        cc_xasprintf("blob %s of 127.0.0.1:%d/test/app: blob unknown (HTTP 404)", D_A, srv.port);
    assert_string_equal(cc_error_message(e3), want);

    /* streamed, through a same-host redirect, with several read sizes */
    static const size_t sizes[] = {1 << 20, 65536, 4093, 7};
    for (size_t s = 0; s < ELEMENTSOF(sizes); s++) {
        registry_blob *b = NULL;
        log_reset();
        if (registry_blob_open(c, srv.blob_digest, BLOB_SIZE, &b, &err) < 0)
            fail_msg("%s", cc_error_message(err));
        _cleanup_free_ char *got = cc_xmalloc(BLOB_SIZE + 1);
        size_t total = 0;
        for (;;) {
            size_t want_n = sizes[s] < BLOB_SIZE + 1 - total ? sizes[s] : BLOB_SIZE + 1 - total;
            ssize_t n = registry_blob_read(b, got + total, want_n, &err);
            if (n < 0)
                fail_msg("%s", cc_error_message(err));
            if (n == 0)
                break;
            total += (size_t)n;
            assert_true(total <= BLOB_SIZE);
        }
        assert_int_equal(total, BLOB_SIZE);
        assert_memory_equal(got, srv.blob, BLOB_SIZE);
        assert_int_equal(registry_blob_read(b, got, 10, NULL), 0); /* EOF again */
        registry_blob_close(b);
        /* the token followed the same-host redirect */
        assert_string_equal(log_find("/v2/test/app/blobs/real/blob", 0)->auth,
                            "Bearer secret-token");
    }

    /* size mismatch at open; a blob closed half way */
    registry_blob *b = NULL;
    assert_int_equal(registry_blob_open(c, srv.blob_digest, BLOB_SIZE + 5, &b, &e4), -EBADMSG);
    assert_null(b);
    assert_non_null(strstr(cc_error_message(e4), "size mismatch"));
    _cleanup_error_ cc_error *e6 = NULL;
    assert_int_equal(registry_blob_open(c, srv.blob_digest, 100, &b, &e6), -EFBIG);
    assert_null(b);
    assert_int_equal(registry_blob_open(c, srv.blob_digest, -1, &b, NULL), 0);
    char small[100];
    assert_int_equal(registry_blob_read(b, small, sizeof(small), NULL), 100);
    assert_memory_equal(small, srv.blob, 100);
    registry_blob_close(b);

    /* a cross-host redirect: the Authorization header stays behind */
    log_reset();
    assert_int_equal(registry_blob_open(c, D_B, BLOB_SIZE, &b, NULL), 0);
    assert_int_equal(registry_blob_read(b, small, sizeof(small), NULL), 100);
    registry_blob_close(b);
    assert_string_equal(log_find("/v2/test/app/blobs/" D_B, 0)->auth, "Bearer secret-token");
    const request *st = log_find("/storage/blob", 0);
    assert_non_null(st);
    assert_string_equal(st->auth, "");
    char host[64];
    snprintf(host, sizeof(host), "localhost:%d", srv.port);
    assert_string_equal(st->host, host);

    /* a 404 surfaces at open */
    _cleanup_error_ cc_error *e5 = NULL;
    assert_int_equal(registry_blob_open(c, D_A, 10, &b, &e5), -ENOENT);
    registry_client_free(c);
}

static void
test_e2e_auth(void **state)
{
    char *body = NULL, *mt = NULL;
    size_t len = 0;

    /* 403 and a refused token: -EACCES naming the image */
    registry_client *c = client_for("127.0.0.1", "denied/app", NULL, NULL, 0);
    _cleanup_error_ cc_error *e1 = NULL, *e2 = NULL;
    assert_int_equal(registry_get_manifest(c, "v1", NULL, &body, &len, &mt, &e1), -EACCES);
    _cleanup_free_ char *want = cc_xasprintf(
        "manifest 'v1' of 127.0.0.1:%d/denied/app: access denied (HTTP 403)", srv.port);
    assert_string_equal(cc_error_message(e1), want);
    log_reset();
    assert_int_equal(registry_get_blob(c, D_A, 10, &body, &len, &e2), -EACCES);
    assert_non_null(strstr(cc_error_message(e2), "access denied (HTTP 401)"));
    assert_int_equal(srv.token_fetches, 1);
    registry_client_free(c);

    /* Basic: no credentials, wrong ones, right ones */
    c = client_for("127.0.0.1", "basic/app", NULL, NULL, 0);
    _cleanup_error_ cc_error *e3 = NULL, *e4 = NULL;
    assert_int_equal(registry_get_manifest(c, "v1", NULL, &body, &len, &mt, &e3), -EACCES);
    _cleanup_free_ char *want3 = cc_xasprintf(
        "manifest 'v1' of 127.0.0.1:%d/basic/app: registry 127.0.0.1:%d requires authentication",
        srv.port, srv.port);
    assert_string_equal(cc_error_message(e3), want3);
    registry_client_free(c);

    _cleanup_free_ char *reg = cc_xasprintf("127.0.0.1:%d", srv.port);
    registry_credential bad = {.registry = reg, .username = "user", .password = "wrong"};
    c = client_for("127.0.0.1", "basic/app", NULL, &bad, 1);
    assert_int_equal(registry_get_manifest(c, "v1", NULL, &body, &len, &mt, &e4), -EACCES);
    assert_null(strstr(cc_error_message(e4), "wrong"));
    registry_client_free(c);

    registry_credential good[] = {
        {.registry = "other.io", .username = "x", .password = "y"},
        {.registry = reg, .username = "user", .password = "pass"},
    };
    c = client_for("127.0.0.1", "basic/app", NULL, good, 2);
    log_reset();
    assert_int_equal(registry_get_manifest(c, "v1", NULL, &body, &len, &mt, NULL), 0);
    free(body);
    free(mt);
    assert_int_equal(registry_get_manifest(c, "v1", NULL, &body, &len, &mt, NULL), 0);
    free(body);
    free(mt);
    /* anonymous, basic, then basic straight away */
    assert_int_equal(srv.n_log, 3);
    assert_string_equal(srv.log[2].auth, "Basic dXNlcjpwYXNz");
    registry_client_free(c);
}

static void
test_e2e_loopback_gateway(void **state)
{
    /* 127.0.0.2 and 127.0.0.3 have no listener: only the rewrite to 127.0.0.1 reaches it,
     * while Host (and the realm's host) stay as written. */
    strcpy(srv.realm_host, "127.0.0.3");
    registry_client *c = client_for("127.0.0.2", "test/app", "127.0.0.1", NULL, 0);
    char *body = NULL, *mt = NULL;
    size_t len = 0;
    cc_error *err = NULL;
    log_reset();
    if (registry_get_manifest(c, "v1", NULL, &body, &len, &mt, &err) < 0)
        fail_msg("%s", cc_error_message(err));
    free(body);
    free(mt);
    char host[64];
    snprintf(host, sizeof(host), "127.0.0.2:%d", srv.port);
    assert_string_equal(log_find("/v2/test/app/manifests/v1", 1)->host, host);
    snprintf(host, sizeof(host), "127.0.0.3:%d", srv.port);
    assert_string_equal(log_find("/token", 0)->host, host);
    registry_client_free(c);
    strcpy(srv.realm_host, "127.0.0.1");

    /* without the gateway the same registry is unreachable */
    c = client_for("127.0.0.2", "test/app", NULL, NULL, 0);
    _cleanup_error_ cc_error *e = NULL;
    assert_int_equal(registry_get_manifest(c, "v1", NULL, &body, &len, &mt, &e), -ECONNREFUSED);
    registry_client_free(c);
}

static void
test_https_refused_without_insecure(void **state)
{
    /* not insecure-listed: https to a plain HTTP server fails in TLS, not silently in HTTP */
    _cleanup_free_ char *s = cc_xasprintf("localhost:%d/test/app", srv.port);
    image_ref ref = {0};
    assert_int_equal(image_ref_parse(s, &ref, NULL), 0);
    registry_config cfg = {.connect_timeout_sec = 5};
    registry_client *c = NULL;
    assert_int_equal(registry_client_new(&cfg, &ref, &c, NULL), 0);
    char *body = NULL, *mt = NULL;
    size_t len = 0;
    _cleanup_error_ cc_error *e = NULL;
    int r = registry_get_manifest(c, "v1", NULL, &body, &len, &mt, &e);
    assert_true(r < 0);
    assert_non_null(e);
    registry_client_free(c);
    image_ref_clear(&ref);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ref_good),
        cmocka_unit_test(test_ref_bad),
        cmocka_unit_test(test_insecure_match),
        cmocka_unit_test(test_challenge),
        cmocka_unit_test(test_manifest_parse),
        cmocka_unit_test(test_index_select),
        cmocka_unit_test(test_config_diff_ids),
        cmocka_unit_test(test_e2e_manifest),
        cmocka_unit_test(test_e2e_blob),
        cmocka_unit_test(test_e2e_auth),
        cmocka_unit_test(test_e2e_loopback_gateway),
        cmocka_unit_test(test_https_refused_without_insecure),
    };
    return cmocka_run_group_tests(tests, server_setup, server_teardown);
}
