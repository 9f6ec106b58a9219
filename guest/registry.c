/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Registry v2 client (registry.h). Every request, small or streamed, is one `transfer`: a
 * curl easy handle in its own multi handle, driven from the calling thread. The write callback
 * fills a bounded buffer and pauses the transfer when it is full; readers drain the buffer and
 * unpause it. Opening a transfer runs it until the first body bytes arrive or it ends, so the
 * final HTTP status (after redirects) is known before anybody reads.
 */
#define _GNU_SOURCE
#include "registry.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "json.h"
#include "log.h"
#include "registry-priv.h"
#include "util.h"

#define MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_OCI_CONFIG "application/vnd.oci.image.config.v1+json"
#define MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define MT_DOCKER_CONFIG "application/vnd.docker.container.image.v1+json"

#define DEFAULT_CA_FILE "/etc/ssl/certs/ca-certificates.crt"
#define REF_NAME_MAX 255
#define REF_MAX 4096
#define TAG_MAX 128
#define LAYERS_MAX 1024
#define TOKEN_RESPONSE_MAX (1u << 20)
#define TOKEN_MAX (64u << 10)
#define STREAM_BUFFER (256u << 10)

/* --- digests and media types ---------------------------------------------------------------- */

static bool
is_lower_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

bool
oci_digest_is_valid(const char *digest)
{
    const char *hex = digest ? cc_startswith(digest, "sha256:") : NULL;
    if (!hex || strlen(hex) != 64)
        return false;
    for (size_t i = 0; i < 64; i++)
        if (!is_lower_hex(hex[i]))
            return false;
    return true;
}

static void
sha256_digest(const void *data, size_t len, char ret[72])
{
    unsigned char md[32];
    unsigned int n = 0;
    /* EVP_Digest with SHA-256 fails only on OOM, where we abort like cc_xmalloc. */
    if (!EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) || n != sizeof(md))
        abort();
    memcpy(ret, "sha256:", 7);
    for (size_t i = 0; i < sizeof(md); i++)
        snprintf(ret + 7 + 2 * i, 3, "%02x", md[i]);
}

bool
oci_media_type_is_index(const char *media_type)
{
    return media_type && (strcasecmp(media_type, MT_OCI_INDEX) == 0 ||
                          strcasecmp(media_type, MT_DOCKER_LIST) == 0);
}

static bool
media_type_is_manifest(const char *media_type)
{
    return media_type && (strcasecmp(media_type, MT_OCI_MANIFEST) == 0 ||
                          strcasecmp(media_type, MT_DOCKER_MANIFEST) == 0);
}

/* --- image references ----------------------------------------------------------------------- */

static bool
is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool
is_alnum(char c)
{
    return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

/* path-component ('/' path-component)*; path-component: [a-z0-9]+ ((.|_|__|-+) [a-z0-9]+)* */
static bool
repository_is_valid(const char *s)
{
    const char *p = s;
    for (;;) {
        if (!is_lower_alnum(*p))
            return false;
        while (is_lower_alnum(*p))
            p++;
        for (;;) {
            if (*p == '\0')
                return true;
            if (*p == '/') {
                p++;
                break;
            }
            if (*p == '.') {
                p++;
            } else if (*p == '_') {
                p += p[1] == '_' ? 2 : 1;
            } else if (*p == '-') {
                while (*p == '-')
                    p++;
            } else {
                return false;
            }
            if (!is_lower_alnum(*p))
                return false;
            while (is_lower_alnum(*p))
                p++;
        }
    }
}

/* host[:port]; host: domain components [A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])? joined by '.',
 * or "[IPv6]". With allow_any_port, ":*" is accepted as a port (insecure list entries). */
static bool
registry_name_is_valid(const char *s, bool allow_any_port)
{
    const char *p = s;
    if (*p == '[') {
        const char *end = strchr(p, ']');
        char addr[INET6_ADDRSTRLEN];
        struct in6_addr a6;
        size_t n = end ? (size_t)(end - p - 1) : 0;
        if (n == 0 || n >= sizeof(addr))
            return false;
        memcpy(addr, p + 1, n);
        addr[n] = '\0';
        if (inet_pton(AF_INET6, addr, &a6) != 1)
            return false;
        p = end + 1;
    } else {
        for (;;) {
            if (!is_alnum(*p))
                return false;
            while (is_alnum(*p) || *p == '-')
                p++;
            if (p[-1] == '-')
                return false;
            if (*p != '.')
                break;
            p++;
        }
    }
    if (*p == ':') {
        p++;
        if (allow_any_port && cc_streq(p, "*"))
            return true;
        size_t n = strspn(p, "0123456789");
        if (n == 0 || n > 5 || p[n] != '\0' || strtoul(p, NULL, 10) < 1 ||
            strtoul(p, NULL, 10) > 65535)
            return false;
        p += n;
    }
    return *p == '\0';
}

static bool
tag_is_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > TAG_MAX || !(is_alnum(s[0]) || s[0] == '_'))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!(is_alnum(s[i]) || s[i] == '_' || s[i] == '.' || s[i] == '-'))
            return false;
    return true;
}

void
image_ref_clear(image_ref *ref)
{
    if (!ref)
        return;
    free(ref->registry);
    free(ref->repository);
    free(ref->tag);
    free(ref->digest);
    *ref = (image_ref){0};
}

int
image_ref_parse(const char *s, image_ref *ret, cc_error **err)
{
    if (strlen(s) > REF_MAX)
        return cc_error_msg(err, -EINVAL, "image ref '%.64s...': longer than %d bytes", s, REF_MAX);
    if (*s == '\0')
        return cc_error_msg(err, -EINVAL, "image ref '': empty");

    _cleanup_free_ char *name = cc_xstrdup(s);
    _cleanup_free_ char *digest = NULL, *tag = NULL;
    char *at = strchr(name, '@');
    if (at) {
        *at = '\0';
        const char *d = at + 1;
        const char *colon = strchr(d, ':');
        if (colon && !cc_startswith(d, "sha256:"))
            return cc_error_msg(err, -EINVAL,
                                "image ref '%s': unsupported digest algorithm '%.*s' (only sha256)",
                                s, (int)(colon - d), d);
        if (!oci_digest_is_valid(d))
            return cc_error_msg(err, -EINVAL,
                                "image ref '%s': bad digest (expected sha256: and 64 lowercase "
                                "hex digits)",
                                s);
        digest = cc_xstrdup(d);
    }
    char *slash = strrchr(name, '/');
    char *colon = strrchr(name, ':');
    if (colon && (!slash || colon > slash)) {
        *colon = '\0';
        if (!tag_is_valid(colon + 1))
            return cc_error_msg(err, -EINVAL,
                                "image ref '%s': bad tag (expected [A-Za-z0-9_][A-Za-z0-9_.-]*, "
                                "at most %d characters)",
                                s, TAG_MAX);
        tag = cc_xstrdup(colon + 1);
    }
    if (strlen(name) > REF_NAME_MAX)
        return cc_error_msg(err, -EINVAL, "image ref '%s': name longer than %d characters", s,
                            REF_NAME_MAX);

    /* As docker's splitDockerDomain: the first component is a registry when it looks like a
     * host name with a dot or a port, or is localhost. */
    _cleanup_free_ char *registry = NULL, *repository = NULL;
    char *first = strchr(name, '/');
    if (first) {
        size_t n = (size_t)(first - name);
        if (memchr(name, '.', n) || memchr(name, ':', n) || name[0] == '[' ||
            (n == 9 && strncmp(name, "localhost", 9) == 0)) {
            registry = cc_xstrndup(name, n);
            repository = cc_xstrdup(first + 1);
        }
    }
    if (!registry) {
        registry = cc_xstrdup("docker.io");
        repository = cc_xstrdup(name);
    }
    if (!registry_name_is_valid(registry, false))
        return cc_error_msg(err, -EINVAL, "image ref '%s': bad registry '%s'", s, registry);
    if (*repository == '\0')
        return cc_error_msg(err, -EINVAL, "image ref '%s': empty repository", s);
    if (!repository_is_valid(repository))
        return cc_error_msg(err, -EINVAL,
                            "image ref '%s': bad repository '%s' (lowercase letters, digits and "
                            "separators '.', '_', '__', '-' between them, '/' between components)",
                            s, repository);
    if (strcasecmp(registry, "index.docker.io") == 0) {
        free(registry);
        registry = cc_xstrdup("docker.io");
    }
    if (cc_streq(registry, "docker.io") && !strchr(repository, '/')) {
        char *r = cc_xasprintf("library/%s", repository);
        free(repository);
        repository = r;
    }
    *ret = (image_ref){
        .registry = TAKE_PTR(registry),
        .repository = TAKE_PTR(repository),
        .tag = TAKE_PTR(tag),
        .digest = TAKE_PTR(digest),
    };
    return 0;
}

char *
image_ref_pinned(const image_ref *ref, const char *digest)
{
    return cc_xasprintf("%s/%s@%s", ref->registry, ref->repository,
                        digest        ? digest
                        : ref->digest ? ref->digest
                                      : "");
}

/* --- insecure list, loopback ---------------------------------------------------------------- */

/* Splits "host[:port]" ("[v6]:port" too): the host's length; *port after the ':' or NULL. */
static size_t
split_host_port(const char *s, const char **port)
{
    const char *c;
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        c = end ? (end[1] == ':' ? end + 1 : NULL) : NULL;
    } else {
        c = strrchr(s, ':');
    }
    *port = c ? c + 1 : NULL;
    return c ? (size_t)(c - s) : strlen(s);
}

bool
registry_insecure_match(const char *const *list, size_t n, const char *registry)
{
    const char *rport;
    size_t rlen = split_host_port(registry, &rport);

    for (size_t i = 0; i < n; i++) {
        const char *eport;
        size_t elen = split_host_port(list[i], &eport);
        if (elen != rlen || strncasecmp(list[i], registry, rlen) != 0)
            continue;
        if (!eport && !rport)
            return true; /* "host" matches only the host written without a port */
        if (eport && cc_streq(eport, "*"))
            return true;
        if (eport && rport && strcmp(eport, rport) == 0)
            return true;
    }
    return false;
}

bool
registry_host_is_loopback(const char *host)
{
    struct in_addr a;
    if (strcasecmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0 ||
        strcmp(host, "::1") == 0)
        return true;
    return inet_pton(AF_INET, host, &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}

/* --- WWW-Authenticate ----------------------------------------------------------------------- */

void
registry_challenge_clear(registry_challenge *ch)
{
    if (!ch)
        return;
    free(ch->realm);
    free(ch->service);
    free(ch->scope);
    *ch = (registry_challenge){0};
}

static bool
is_tchar(char c)
{
    return is_alnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static const char *
skip_ows(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* token or quoted-string at *pp; a new string in *ret. */
static int
parse_param_value(const char **pp, char **ret)
{
    const char *p = *pp;
    if (*p == '"') {
        size_t cap = strlen(p), n = 0;
        _cleanup_free_ char *v = cc_xmalloc(cap + 1);
        for (p++; *p != '"'; p++) {
            if (*p == '\0')
                return -EINVAL;
            if (*p == '\\') {
                p++;
                if (*p == '\0')
                    return -EINVAL;
            }
            v[n++] = *p;
        }
        v[n] = '\0';
        *pp = p + 1;
        *ret = TAKE_PTR(v);
        return 0;
    }
    const char *start = p;
    while (is_tchar(*p) || *p == '/' || *p == '=') /* token68 too ("abc==") */
        p++;
    if (p == start)
        return -EINVAL;
    *ret = cc_xstrndup(start, (size_t)(p - start));
    *pp = p;
    return 0;
}

int
registry_challenge_parse(const char *header, registry_challenge *ret, cc_error **err)
{
    registry_challenge bearer = {0}, basic = {0};
    registry_challenge *cur = NULL; /* the challenge being read, NULL: skipping one */
    bool have_bearer = false, have_basic = false;
    const char *p = skip_ows(header);
    int r = 0;

    while (*p) {
        if (*p == ',') {
            p = skip_ows(p + 1);
            continue;
        }
        const char *start = p;
        while (is_tchar(*p))
            p++;
        if (p == start) {
            r = cc_error_msg(err, -EINVAL, "WWW-Authenticate: unexpected character at offset %zu",
                             (size_t)(start - header));
            goto out;
        }
        size_t n = (size_t)(p - start);
        const char *after = skip_ows(p);
        if (*after == '=' && cur != NULL) {
            /* auth-param of the current challenge */
            p = skip_ows(after + 1);
            _cleanup_free_ char *value = NULL;
            if (parse_param_value(&p, &value) < 0) {
                r = cc_error_msg(err, -EINVAL, "WWW-Authenticate: bad value of parameter '%.*s'",
                                 (int)n, start);
                goto out;
            }
            char **slot = n == 5 && strncasecmp(start, "realm", 5) == 0     ? &cur->realm
                          : n == 7 && strncasecmp(start, "service", 7) == 0 ? &cur->service
                          : n == 5 && strncasecmp(start, "scope", 5) == 0   ? &cur->scope
                                                                            : NULL;
            if (slot) {
                free(*slot);
                *slot = TAKE_PTR(value);
            }
        } else if (*after == '=') {
            /* parameter of a skipped scheme (or token68 of one) */
            p = skip_ows(after + 1);
            _cleanup_free_ char *value = NULL;
            if (parse_param_value(&p, &value) < 0) {
                r = cc_error_msg(err, -EINVAL, "WWW-Authenticate: bad parameter value");
                goto out;
            }
        } else {
            /* a new challenge: scheme [params] */
            if (n == 6 && strncasecmp(start, "bearer", 6) == 0) {
                registry_challenge_clear(&bearer);
                cur = &bearer;
                have_bearer = true;
            } else if (n == 5 && strncasecmp(start, "basic", 5) == 0) {
                registry_challenge_clear(&basic);
                cur = &basic;
                have_basic = true;
            } else {
                cur = NULL;
            }
            p = after;
            continue;
        }
        p = skip_ows(p);
        if (*p && *p != ',') {
            r = cc_error_msg(err, -EINVAL, "WWW-Authenticate: expected ',' at offset %zu",
                             (size_t)(p - header));
            goto out;
        }
    }
    if (have_bearer) {
        if (!bearer.realm || !*bearer.realm) {
            r = cc_error_msg(err, -EINVAL, "WWW-Authenticate: Bearer challenge without a realm");
            goto out;
        }
        bearer.scheme = REGISTRY_AUTH_BEARER;
        *ret = bearer;
        bearer = (registry_challenge){0};
    } else if (have_basic) {
        free(basic.service);
        free(basic.scope);
        basic.service = basic.scope = NULL;
        basic.scheme = REGISTRY_AUTH_BASIC;
        *ret = basic;
        basic = (registry_challenge){0};
    } else {
        r = cc_error_msg(err, -EINVAL, "WWW-Authenticate: no Bearer or Basic challenge");
    }
out:
    registry_challenge_clear(&bearer);
    registry_challenge_clear(&basic);
    return r;
}

/* --- the client ----------------------------------------------------------------------------- */

struct registry_client {
    char *name;     /* "registry/repository", for errors */
    char *registry; /* as written in the ref */
    char *repository;
    char *base_url; /* "https://registry-1.docker.io/v2/library/busybox" */
    bool insecure;
    char **insecure_list;
    size_t n_insecure;
    char *gateway; /* loopback_gateway, bracketed when IPv6; NULL: no rewriting */
    char *ca_file;
    char *username, *password; /* NULL: no credentials for this registry */
    long connect_timeout, low_speed_time;

    pthread_mutex_t lock;
    char *token;    /* bearer token (guarded by lock) */
    bool use_basic; /* the registry asked for Basic (guarded by lock) */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

static void
curl_init_once(void)
{
    curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void
free_secret(char *s)
{
    if (s) {
        cc_explicit_bzero(s, strlen(s));
        free(s);
    }
}

static bool
credential_matches(const char *cred, const char *registry)
{
    if (strcasecmp(cred, registry) == 0)
        return true;
    if (!cc_streq(registry, "docker.io"))
        return false;
    return strcasecmp(cred, "index.docker.io") == 0 ||
           strcasecmp(cred, "registry-1.docker.io") == 0;
}

int
registry_client_new(const registry_config *cfg, const image_ref *ref, registry_client **ret,
                    cc_error **err)
{
    (void)pthread_once(&curl_once, curl_init_once);
    if (curl_init_result != CURLE_OK)
        return cc_error_msg(err, -EIO, "curl_global_init: %s",
                            curl_easy_strerror(curl_init_result));

    registry_client *c = cc_xzalloc(sizeof(*c));
    (void)pthread_mutex_init(&c->lock, NULL);
    c->registry = cc_xstrdup(ref->registry);
    c->repository = cc_xstrdup(ref->repository);
    c->name = cc_xasprintf("%s/%s", ref->registry, ref->repository);
    c->n_insecure = cfg->n_insecure;
    c->insecure_list = cc_xzalloc((cfg->n_insecure + 1) * sizeof(char *));
    for (size_t i = 0; i < cfg->n_insecure; i++)
        c->insecure_list[i] = cc_xstrdup(cfg->insecure[i]);
    c->insecure =
        registry_insecure_match((const char *const *)c->insecure_list, c->n_insecure, c->registry);
    if (cfg->loopback_gateway && *cfg->loopback_gateway)
        c->gateway = strchr(cfg->loopback_gateway, ':') && cfg->loopback_gateway[0] != '['
                         ? cc_xasprintf("[%s]", cfg->loopback_gateway)
                         : cc_xstrdup(cfg->loopback_gateway);
    c->ca_file = cc_xstrdup(cfg->ca_file ? cfg->ca_file : DEFAULT_CA_FILE);
    for (size_t i = 0; i < cfg->n_credentials; i++) {
        const registry_credential *cr = &cfg->credentials[i];
        if (cr->registry && credential_matches(cr->registry, c->registry)) {
            c->username = cc_xstrdup(cr->username ? cr->username : "");
            c->password = cc_xstrdup(cr->password ? cr->password : "");
            break;
        }
    }
    c->connect_timeout = cfg->connect_timeout_sec > 0 ? cfg->connect_timeout_sec : 30;
    c->low_speed_time = cfg->low_speed_timeout_sec > 0 ? cfg->low_speed_timeout_sec : 60;
    c->base_url = cc_xasprintf(
        "%s://%s/v2/%s", c->insecure ? "http" : "https",
        cc_streq(c->registry, "docker.io") ? "registry-1.docker.io" : c->registry, c->repository);
    *ret = c;
    return 0;
}

registry_client *
registry_client_free(registry_client *c)
{
    if (!c)
        return NULL;
    free(c->name);
    free(c->registry);
    free(c->repository);
    free(c->base_url);
    for (size_t i = 0; i < c->n_insecure; i++)
        free(c->insecure_list[i]);
    free(c->insecure_list);
    free(c->gateway);
    free(c->ca_file);
    free_secret(c->username);
    free_secret(c->password);
    free_secret(c->token);
    (void)pthread_mutex_destroy(&c->lock);
    free(c);
    return NULL;
}

/* --- transfers ------------------------------------------------------------------------------ */

typedef struct transfer {
    CURL *easy;
    CURLM *multi;
    bool added;
    struct curl_slist *headers;
    struct curl_slist *connect_to;
    char errbuf[CURL_ERROR_SIZE];
    char *what; /* "manifest 'x' of reg/repo", for errors */

    char *buf; /* unread bytes: buf[start, start + len) */
    size_t start, len, cap;
    uint64_t total, max; /* max: only with has_max */
    bool has_max, paused, done, too_big;
    CURLcode result;
    long status;
} transfer;

typedef struct transfer_opts {
    const char *url;
    const char *accept; /* NULL: none */
    bool has_max;
    uint64_t max;
    registry_auth_scheme auth;
    const char *token; /* REGISTRY_AUTH_BEARER */
    bool allow_http;
} transfer_opts;

static transfer *
transfer_free(transfer *t)
{
    if (!t)
        return NULL;
    if (t->added)
        (void)curl_multi_remove_handle(t->multi, t->easy);
    if (t->easy)
        curl_easy_cleanup(t->easy);
    if (t->multi)
        (void)curl_multi_cleanup(t->multi);
    curl_slist_free_all(t->headers);
    curl_slist_free_all(t->connect_to);
    free(t->what);
    free(t->buf);
    free(t);
    return NULL;
}
CC_DEFINE_CLEANUP(transfer, transfer_free)

static size_t
transfer_write(char *data, size_t size, size_t nmemb, void *userdata)
{
    transfer *t = userdata;
    size_t n = size * nmemb;

    if (t->has_max && n > t->max - t->total) {
        t->too_big = true;
        return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
    }
    if (n > t->cap - t->len) {
        if (t->len > 0) {
            t->paused = true;
            return CURL_WRITEFUNC_PAUSE; /* curl keeps the bytes and delivers them again */
        }
        free(t->buf);
        t->buf = cc_xmalloc(n);
        t->cap = n;
        t->start = 0;
    }
    if (t->start + t->len + n > t->cap) {
        memmove(t->buf, t->buf + t->start, t->len);
        t->start = 0;
    }
    memcpy(t->buf + t->start + t->len, data, n);
    t->len += n;
    t->total += n;
    return n;
}

static int
curl_code_to_errno(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
        return -EHOSTUNREACH;
    case CURLE_COULDNT_CONNECT:
        return -ECONNREFUSED;
    case CURLE_OPERATION_TIMEDOUT:
        return -ETIMEDOUT;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
        return -EPROTO;
    case CURLE_TOO_MANY_REDIRECTS:
        return -ELOOP;
    case CURLE_UNSUPPORTED_PROTOCOL:
        return -EPROTONOSUPPORT;
    case CURLE_OUT_OF_MEMORY:
        return -ENOMEM;
    default:
        return -EIO;
    }
}

static int
transfer_error(transfer *t, cc_error **err)
{
    if (t->too_big)
        return cc_error_msg(err, -EFBIG, "%s: larger than %" PRIu64 " bytes", t->what, t->max);
    return cc_error_msg(err, curl_code_to_errno(t->result), "%s: %s", t->what,
                        t->errbuf[0] ? t->errbuf : curl_easy_strerror(t->result));
}

/* Adds the CONNECT_TO rewrites of loopback hosts to the gateway (any port -> same port). */
static void
add_connect_to(transfer *t, const registry_client *c, const char *url)
{
    static const char *const hosts[] = {"localhost", "127.0.0.1", "[::1]"};
    if (!c->gateway)
        return;
    for (size_t i = 0; i < ELEMENTSOF(hosts); i++) {
        _cleanup_free_ char *e = cc_xasprintf("%s::%s:", hosts[i], c->gateway);
        t->connect_to = curl_slist_append(t->connect_to, e);
    }
    CURLU *u = curl_url();
    char *host = NULL;
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && registry_host_is_loopback(host)) {
        _cleanup_free_ char *e = cc_xasprintf("%s::%s:", host, c->gateway);
        t->connect_to = curl_slist_append(t->connect_to, e);
    }
    curl_free(host);
    curl_url_cleanup(u);
}

static int
transfer_new(const registry_client *c, const transfer_opts *o, const char *what, transfer **ret,
             cc_error **err)
{
    _cleanup_(transfer_freep) transfer *t = cc_xzalloc(sizeof(*t));
    t->what = cc_xstrdup(what);
    t->has_max = o->has_max;
    t->max = o->max;
    t->cap = STREAM_BUFFER;
    t->buf = cc_xmalloc(t->cap);
    t->easy = curl_easy_init();
    t->multi = curl_multi_init();
    if (!t->easy || !t->multi)
        return cc_error_msg(err, -ENOMEM, "%s: curl init failed", what);

    if (o->accept) {
        _cleanup_free_ char *h = cc_xasprintf("Accept: %s", o->accept);
        t->headers = curl_slist_append(t->headers, h);
    }
    add_connect_to(t, c, o->url);
    const char *protocols = o->allow_http ? "http,https" : "https";
    CURL *e = t->easy;
    CURLcode rc = CURLE_OK;
#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (rc == CURLE_OK)                                                                        \
            rc = curl_easy_setopt(e, opt, val);                                                    \
    } while (0)
    SET(CURLOPT_URL, o->url);
    SET(CURLOPT_PROTOCOLS_STR, protocols);
    SET(CURLOPT_REDIR_PROTOCOLS_STR, protocols);
    SET(CURLOPT_FOLLOWLOCATION, 1L);
    SET(CURLOPT_MAXREDIRS, 5L);
    SET(CURLOPT_UNRESTRICTED_AUTH, 0L);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_USERAGENT, "cloak-agent/" CLOAK_VERSION);
    SET(CURLOPT_CAINFO, c->ca_file);
    SET(CURLOPT_SSL_VERIFYPEER, 1L);
    SET(CURLOPT_SSL_VERIFYHOST, 2L);
    SET(CURLOPT_CONNECTTIMEOUT, c->connect_timeout);
    SET(CURLOPT_LOW_SPEED_LIMIT, 1024L);
    SET(CURLOPT_LOW_SPEED_TIME, c->low_speed_time);
    SET(CURLOPT_ERRORBUFFER, t->errbuf);
    SET(CURLOPT_WRITEFUNCTION, transfer_write);
    SET(CURLOPT_WRITEDATA, t);
    SET(CURLOPT_HTTPGET, 1L);
    if (t->headers)
        SET(CURLOPT_HTTPHEADER, t->headers);
    if (t->connect_to)
        SET(CURLOPT_CONNECT_TO, t->connect_to);
    if (o->auth == REGISTRY_AUTH_BASIC) {
        SET(CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        SET(CURLOPT_USERNAME, c->username);
        SET(CURLOPT_PASSWORD, c->password);
    } else if (o->auth == REGISTRY_AUTH_BEARER) {
        /* curl's own Bearer support: like Basic, never sent to another host on a redirect. */
        SET(CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
        SET(CURLOPT_XOAUTH2_BEARER, o->token);
    }
#undef SET
    if (rc != CURLE_OK)
        return cc_error_msg(err, -EIO, "%s: curl_easy_setopt: %s", what, curl_easy_strerror(rc));
    *ret = TAKE_PTR(t);
    return 0;
}

/* One round of the multi loop: runs curl, notes the end, and waits when nothing is buffered. */
static int
transfer_step(transfer *t, cc_error **err)
{
    int running = 0, queued = 0;
    CURLMcode mc = curl_multi_perform(t->multi, &running);
    if (mc != CURLM_OK)
        return cc_error_msg(err, -EIO, "%s: curl_multi_perform: %s", t->what,
                            curl_multi_strerror(mc));
    CURLMsg *m;
    while ((m = curl_multi_info_read(t->multi, &queued)))
        if (m->msg == CURLMSG_DONE && m->easy_handle == t->easy) {
            t->done = true;
            t->result = m->data.result;
        }
    if (!t->done && t->len == 0 && !t->paused) {
        mc = curl_multi_poll(t->multi, NULL, 0, 1000, NULL);
        if (mc != CURLM_OK)
            return cc_error_msg(err, -EIO, "%s: curl_multi_poll: %s", t->what,
                                curl_multi_strerror(mc));
    }
    return 0;
}

/* Runs the transfer until its final status is known (first body bytes, or the end). */
static int
transfer_start(transfer *t, cc_error **err)
{
    CURLMcode mc = curl_multi_add_handle(t->multi, t->easy);
    if (mc != CURLM_OK)
        return cc_error_msg(err, -EIO, "%s: curl_multi_add_handle: %s", t->what,
                            curl_multi_strerror(mc));
    t->added = true;
    while (t->len == 0 && !t->done) {
        int r = transfer_step(t, err);
        if (r < 0)
            return r;
    }
    if (t->done && t->result != CURLE_OK)
        return transfer_error(t, err);
    (void)curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->status);
    return 0;
}

static ssize_t
transfer_read(transfer *t, void *buf, size_t len, cc_error **err)
{
    if (len == 0)
        return 0;
    for (;;) {
        if (t->len > 0) {
            size_t n = len < t->len ? len : t->len;
            memcpy(buf, t->buf + t->start, n);
            t->start += n;
            t->len -= n;
            if (t->len == 0)
                t->start = 0;
            return (ssize_t)n;
        }
        if (t->done)
            return t->result == CURLE_OK ? 0 : transfer_error(t, err);
        if (t->paused) {
            /* The callback may run (and pause again) inside curl_easy_pause. */
            t->paused = false;
            CURLcode rc = curl_easy_pause(t->easy, CURLPAUSE_CONT);
            if (rc != CURLE_OK && !t->done) {
                t->done = true;
                t->result = rc;
            }
            continue;
        }
        int r = transfer_step(t, err);
        if (r < 0)
            return r;
    }
}

/* The rest of the body, NUL-terminated, after what transfer_start() buffered. */
static int
transfer_read_all(transfer *t, char **ret, size_t *ret_len, cc_error **err)
{
    size_t cap = 4096, len = 0;
    _cleanup_free_ char *body = cc_xmalloc(cap);
    for (;;) {
        if (cap - len < 2) {
            cap *= 2;
            body = cc_xrealloc(body, cap);
        }
        ssize_t n = transfer_read(t, body + len, cap - len - 1, err);
        if (n < 0)
            return (int)n;
        if (n == 0)
            break;
        len += (size_t)n;
    }
    body[len] = '\0';
    *ret = TAKE_PTR(body);
    *ret_len = len;
    return 0;
}

static int
status_error(long status, const char *what, const char *unknown, cc_error **err)
{
    switch (status) {
    case 401:
    case 403:
        return cc_error_msg(err, -EACCES, "%s: access denied (HTTP %ld)", what, status);
    case 404:
        return cc_error_msg(err, -ENOENT, "%s: %s (HTTP 404)", what, unknown);
    case 429:
        return cc_error_msg(err, -EAGAIN, "%s: too many requests (HTTP 429)", what);
    default:
        return cc_error_msg(err, -EIO, "%s: HTTP %ld", what, status);
    }
}

static int
url_host_port(const char *url, char **ret_scheme, char **ret_hostport, cc_error **err)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL;
    int r = 0;
    if (!u)
        return cc_error_msg(err, -ENOMEM, "curl_url");
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        r = -EINVAL;
        goto out;
    }
    (void)curl_url_get(u, CURLUPART_PORT, &port, 0); /* none when not written */
    *ret_scheme = cc_xstrdup(scheme);
    *ret_hostport = port ? cc_xasprintf("%s:%s", host, port) : cc_xstrdup(host);
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return r;
}

static bool
token_is_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > TOKEN_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x21 || s[i] > 0x7e)
            return false;
    return true;
}

/* GETs a token from the challenge's realm (with the basic credentials when there are some)
 * and caches it in the client. */
static int
fetch_token(registry_client *c, const registry_challenge *ch, cc_error **err)
{
    _cleanup_free_ char *what = cc_xasprintf("token for %s", c->name);
    _cleanup_free_ char *scheme = NULL, *hostport = NULL;
    int r = url_host_port(ch->realm, &scheme, &hostport, NULL);
    if (r < 0)
        return cc_error_msg(err, -EPROTO, "%s: bad realm URL in the registry's challenge", what);
    bool allow_http =
        strcasecmp(scheme, "http") == 0 &&
        registry_insecure_match((const char *const *)c->insecure_list, c->n_insecure, hostport);
    if (strcasecmp(scheme, "https") != 0 && !allow_http)
        return cc_error_msg(err, -EPROTO,
                            "%s: realm '%s' is not https and its host is not insecure-listed", what,
                            hostport);

    _cleanup_free_ char *default_scope = cc_xasprintf("repository:%s:pull", c->repository);
    _cleanup_free_ char *service = ch->service ? cc_xasprintf("service=%s", ch->service) : NULL;
    _cleanup_free_ char *scope = cc_xasprintf("scope=%s", ch->scope ? ch->scope : default_scope);
    CURLU *u = curl_url();
    char *url = NULL;
    bool ok =
        u && curl_url_set(u, CURLUPART_URL, ch->realm, 0) == CURLUE_OK &&
        (!service || curl_url_set(u, CURLUPART_QUERY, service,
                                  CURLU_APPENDQUERY | CURLU_URLENCODE) == CURLUE_OK) &&
        curl_url_set(u, CURLUPART_QUERY, scope, CURLU_APPENDQUERY | CURLU_URLENCODE) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_URL, &url, 0) == CURLUE_OK;
    curl_url_cleanup(u);
    if (!ok) {
        curl_free(url);
        return cc_error_msg(err, -EPROTO, "%s: cannot build the token URL from realm", what);
    }

    transfer_opts o = {
        .url = url,
        .accept = "application/json",
        .has_max = true,
        .max = TOKEN_RESPONSE_MAX,
        .auth = c->username ? REGISTRY_AUTH_BASIC : REGISTRY_AUTH_NONE,
        .allow_http = allow_http,
    };
    _cleanup_(transfer_freep) transfer *t = NULL;
    r = transfer_new(c, &o, what, &t, err);
    curl_free(url);
    if (r < 0)
        return r;
    r = transfer_start(t, err);
    if (r < 0)
        return r;
    if (t->status != 200)
        return status_error(t->status, what, "realm not found", err);
    _cleanup_free_ char *body = NULL;
    size_t len = 0;
    r = transfer_read_all(t, &body, &len, err);
    if (r < 0)
        return r;

    _cleanup_json_ json_t *doc = NULL;
    r = cc_json_load_buffer(body, len, "token response", TOKEN_RESPONSE_MAX, &doc, err);
    if (body)
        cc_explicit_bzero(body, len);
    if (r < 0)
        return cc_error_prefix(err, r, "%s", what);
    const char *token = NULL;
    r = cc_json_get_string(doc, "token", &token, NULL);
    if (r == -ENOENT || (r >= 0 && !*token))
        r = cc_json_get_string(doc, "access_token", &token, NULL);
    if (r < 0 || !token_is_valid(token))
        return cc_error_msg(err, -EPROTO, "%s: the response has no usable token", what);

    pthread_mutex_lock(&c->lock);
    free_secret(c->token);
    c->token = cc_xstrdup(token);
    pthread_mutex_unlock(&c->lock);
    return 0;
}

/* The preferred challenge among the 401's WWW-Authenticate headers. */
static int
transfer_challenge(transfer *t, registry_challenge *ret)
{
    struct curl_header *h = NULL;
    registry_challenge best = {0};
    if (curl_easy_header(t->easy, "WWW-Authenticate", 0, CURLH_HEADER, -1, &h) != CURLHE_OK)
        return -ENOENT;
    size_t amount = h->amount;
    for (size_t i = 0; i < amount; i++) {
        registry_challenge ch = {0};
        if (curl_easy_header(t->easy, "WWW-Authenticate", i, CURLH_HEADER, -1, &h) != CURLHE_OK ||
            registry_challenge_parse(h->value, &ch, NULL) < 0)
            continue;
        if (best.scheme == REGISTRY_AUTH_NONE ||
            (best.scheme == REGISTRY_AUTH_BASIC && ch.scheme == REGISTRY_AUTH_BEARER)) {
            registry_challenge_clear(&best);
            best = ch;
        } else {
            registry_challenge_clear(&ch);
        }
    }
    if (best.scheme == REGISTRY_AUTH_NONE)
        return -ENOENT;
    *ret = best;
    return 0;
}

/*
 * GETs url on the registry, answering one auth challenge (and a refused cached token) at most
 * once, until the final status is known. *ret gets the 2xx transfer; any other status is the
 * error (unknown: what a 404 means).
 */
static int
registry_open(registry_client *c, const char *url, const char *accept, bool has_max, uint64_t max,
              const char *what, const char *unknown, transfer **ret, cc_error **err)
{
    _cleanup_(transfer_freep) transfer *t = NULL;
    bool token_fetched = false;
    int r;

    for (unsigned attempt = 0;; attempt++) {
        _cleanup_free_ char *token = NULL;
        transfer_opts o = {
            .url = url,
            .accept = accept,
            .has_max = has_max,
            .max = max,
            .allow_http = c->insecure,
        };
        pthread_mutex_lock(&c->lock);
        if (c->token) {
            token = cc_xstrdup(c->token);
            o.auth = REGISTRY_AUTH_BEARER;
            o.token = token;
        } else if (c->use_basic && c->username) {
            o.auth = REGISTRY_AUTH_BASIC;
        }
        pthread_mutex_unlock(&c->lock);

        t = transfer_free(t);
        r = transfer_new(c, &o, what, &t, err);
        if (token)
            cc_explicit_bzero(token, strlen(token));
        if (r < 0)
            return r;
        r = transfer_start(t, err);
        if (r < 0)
            return r;
        if (t->status != 401 || attempt >= 2)
            break;

        registry_challenge ch = {0};
        if (transfer_challenge(t, &ch) < 0)
            break;
        if (ch.scheme == REGISTRY_AUTH_BASIC) {
            registry_challenge_clear(&ch);
            if (!c->username)
                return cc_error_msg(err, -EACCES, "%s: registry %s requires authentication", what,
                                    c->registry);
            if (o.auth == REGISTRY_AUTH_BASIC)
                break; /* the credentials were refused */
            pthread_mutex_lock(&c->lock);
            c->use_basic = true;
            pthread_mutex_unlock(&c->lock);
            continue;
        }
        if (token_fetched) {
            registry_challenge_clear(&ch);
            break; /* a fresh token was refused */
        }
        r = fetch_token(c, &ch, err);
        registry_challenge_clear(&ch);
        if (r < 0)
            return cc_error_prefix(err, r, "%s", what);
        token_fetched = true;
    }
    if (t->status < 200 || t->status > 299)
        return status_error(t->status, what, unknown, err);
    *ret = TAKE_PTR(t);
    return 0;
}

static bool
reference_is_valid(const char *reference)
{
    return reference && (oci_digest_is_valid(reference) || tag_is_valid(reference));
}

/* Content-Type without parameters, lowercased; NULL when absent. */
static char *
content_type(transfer *t)
{
    char *ct = NULL;
    if (curl_easy_getinfo(t->easy, CURLINFO_CONTENT_TYPE, &ct) != CURLE_OK || !ct)
        return NULL;
    size_t n = strcspn(ct, "; \t");
    char *s = cc_xstrndup(ct, n);
    for (char *p = s; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return s;
}

/* Content-Type when it names a manifest or index, else the body's mediaType, else a guess
 * from the body's shape ("manifests": an OCI index), else Content-Type, else OCI manifest. */
static char *
manifest_media_type(transfer *t, const char *body, size_t len)
{
    _cleanup_free_ char *ct = content_type(t);
    if (ct && (oci_media_type_is_index(ct) || media_type_is_manifest(ct)))
        return TAKE_PTR(ct);
    _cleanup_json_ json_t *doc = NULL;
    const char *mt = NULL;
    json_t *manifests = NULL;
    if (cc_json_load_buffer(body, len, NULL, REGISTRY_MANIFEST_MAX, &doc, NULL) >= 0) {
        if (cc_json_get_string(doc, "mediaType", &mt, NULL) >= 0 && *mt)
            return cc_xstrdup(mt);
        if (cc_json_get_array(doc, "manifests", &manifests, NULL) >= 0)
            return cc_xstrdup(MT_OCI_INDEX);
    }
    if (ct && *ct)
        return TAKE_PTR(ct);
    return cc_xstrdup(MT_OCI_MANIFEST);
}

int
registry_get_manifest(registry_client *c, const char *reference, const char *expect_digest,
                      char **ret_body, size_t *ret_len, char **ret_media_type, cc_error **err)
{
    if (!reference_is_valid(reference))
        return cc_error_msg(err, -EINVAL, "manifest of %s: bad reference (not a tag or digest)",
                            c->name);
    if (expect_digest && !oci_digest_is_valid(expect_digest))
        return cc_error_msg(err, -EINVAL, "manifest of %s: bad expected digest", c->name);
    /* Fetched by digest: the body must have it, whatever the caller asked. */
    if (!expect_digest && oci_digest_is_valid(reference))
        expect_digest = reference;

    _cleanup_free_ char *what = cc_xasprintf("manifest '%s' of %s", reference, c->name);
    _cleanup_free_ char *url = cc_xasprintf("%s/manifests/%s", c->base_url, reference);
    _cleanup_(transfer_freep) transfer *t = NULL;
    int r = registry_open(
        c, url, MT_OCI_INDEX ", " MT_OCI_MANIFEST ", " MT_DOCKER_LIST ", " MT_DOCKER_MANIFEST, true,
        REGISTRY_MANIFEST_MAX, what, "manifest unknown", &t, err);
    if (r < 0)
        return r;
    curl_off_t cl = -1;
    if (curl_easy_getinfo(t->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK &&
        cl > (curl_off_t)REGISTRY_MANIFEST_MAX)
        return cc_error_msg(err, -EFBIG, "%s: larger than %u bytes", what, REGISTRY_MANIFEST_MAX);

    _cleanup_free_ char *body = NULL;
    size_t len = 0;
    r = transfer_read_all(t, &body, &len, err);
    if (r < 0)
        return r;
    if (expect_digest) {
        char got[72];
        sha256_digest(body, len, got);
        if (strcmp(got, expect_digest) != 0)
            return cc_error_msg(err, -EBADMSG, "manifest of %s: digest mismatch: want %s, got %s",
                                c->name, expect_digest, got);
    }
    char *media_type = manifest_media_type(t, body, len);
    *ret_body = TAKE_PTR(body);
    *ret_len = len;
    *ret_media_type = media_type;
    return 0;
}

int
registry_get_blob(registry_client *c, const char *digest, size_t max, char **ret_body,
                  size_t *ret_len, cc_error **err)
{
    if (!oci_digest_is_valid(digest))
        return cc_error_msg(err, -EINVAL, "blob of %s: bad digest", c->name);
    _cleanup_free_ char *what = cc_xasprintf("blob %s of %s", digest, c->name);
    _cleanup_free_ char *url = cc_xasprintf("%s/blobs/%s", c->base_url, digest);
    _cleanup_(transfer_freep) transfer *t = NULL;
    if (max == 0)
        max = REGISTRY_CONFIG_MAX;
    int r = registry_open(c, url, NULL, true, max, what, "blob unknown", &t, err);
    if (r < 0)
        return r;
    curl_off_t cl = -1;
    if (curl_easy_getinfo(t->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK &&
        cl > (curl_off_t)max)
        return cc_error_msg(err, -EFBIG, "%s: larger than %zu bytes", what, max);

    _cleanup_free_ char *body = NULL;
    size_t len = 0;
    r = transfer_read_all(t, &body, &len, err);
    if (r < 0)
        return r;
    char got[72];
    sha256_digest(body, len, got);
    if (strcmp(got, digest) != 0)
        return cc_error_msg(err, -EBADMSG, "%s: digest mismatch: got %s", what, got);
    *ret_body = TAKE_PTR(body);
    *ret_len = len;
    return 0;
}

struct registry_blob {
    transfer *t;
    int64_t expected_size;
};

int
registry_blob_open(registry_client *c, const char *digest, int64_t expected_size,
                   registry_blob **ret, cc_error **err)
{
    if (!oci_digest_is_valid(digest))
        return cc_error_msg(err, -EINVAL, "blob of %s: bad digest", c->name);
    _cleanup_free_ char *what = cc_xasprintf("blob %s of %s", digest, c->name);
    _cleanup_free_ char *url = cc_xasprintf("%s/blobs/%s", c->base_url, digest);
    _cleanup_(transfer_freep) transfer *t = NULL;
    uint64_t max = expected_size >= 0 ? (uint64_t)expected_size : 0;
    int r = registry_open(c, url, NULL, expected_size >= 0, max, what, "blob unknown", &t, err);
    if (r < 0)
        return r;
    curl_off_t cl = -1;
    if (expected_size >= 0 &&
        curl_easy_getinfo(t->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK &&
        cl >= 0 && cl != expected_size)
        return cc_error_msg(
            err, -EBADMSG, "%s: size mismatch: want %" PRId64 " bytes, the registry sends %" PRId64,
            what, expected_size, (int64_t)cl);
    registry_blob *b = cc_xzalloc(sizeof(*b));
    b->t = TAKE_PTR(t);
    b->expected_size = expected_size;
    *ret = b;
    return 0;
}

ssize_t
registry_blob_read(void *blob, void *buf, size_t len, cc_error **err)
{
    registry_blob *b = blob;
    transfer *t = b->t;
    ssize_t n = transfer_read(t, buf, len, err);
    if (n == 0 && len > 0 && b->expected_size >= 0 && t->total != (uint64_t)b->expected_size)
        return cc_error_msg(err, -EBADMSG, "%s: truncated: got %" PRIu64 " of %" PRId64 " bytes",
                            t->what, t->total, b->expected_size);
    return n;
}

registry_blob *
registry_blob_close(registry_blob *b)
{
    if (!b)
        return NULL;
    transfer_free(b->t);
    free(b);
    return NULL;
}

/* --- manifests, indexes, configs ------------------------------------------------------------ */

void
oci_descriptor_clear(oci_descriptor *d)
{
    if (!d)
        return;
    free(d->media_type);
    free(d->digest);
    *d = (oci_descriptor){0};
}

void
oci_manifest_clear(oci_manifest *m)
{
    if (!m)
        return;
    oci_descriptor_clear(&m->config);
    for (size_t i = 0; i < m->n_layers; i++)
        oci_descriptor_clear(&m->layers[i]);
    free(m->layers);
    *m = (oci_manifest){0};
}

static int
missing(const char *path, int r, cc_error **err)
{
    return r == -ENOENT ? cc_error_msg(err, -EINVAL, "field '%s': missing", path) : r;
}

static int
get_string(const json_t *root, const char *path, const char **ret, cc_error **err)
{
    return missing(path, cc_json_get_string(root, path, ret, err), err);
}

static int
get_digest(const json_t *root, const char *path, const char **ret, cc_error **err)
{
    int r = get_string(root, path, ret, err);
    if (r < 0)
        return r;
    if (!oci_digest_is_valid(*ret))
        return cc_error_msg(err, -EINVAL,
                            "field '%s': not a sha256 digest (sha256: and 64 lowercase hex digits)",
                            path);
    return 0;
}

/* prefix: the descriptor's path from root ("config", "layers[3]"). */
static int
parse_descriptor(const json_t *root, const char *prefix, oci_descriptor *ret, cc_error **err)
{
    _cleanup_free_ char *p_mt = cc_xasprintf("%s.mediaType", prefix);
    _cleanup_free_ char *p_digest = cc_xasprintf("%s.digest", prefix);
    _cleanup_free_ char *p_size = cc_xasprintf("%s.size", prefix);
    const char *mt = NULL, *digest = NULL;
    int64_t size = 0;
    int r = get_string(root, p_mt, &mt, err);
    if (r < 0)
        return r;
    if (!*mt)
        return cc_error_msg(err, -EINVAL, "field '%s': empty", p_mt);
    r = get_digest(root, p_digest, &digest, err);
    if (r < 0)
        return r;
    r = missing(p_size, cc_json_get_int64(root, p_size, &size, err), err);
    if (r < 0)
        return r;
    if (size < 0)
        return cc_error_msg(err, -EINVAL, "field '%s': negative", p_size);
    *ret = (oci_descriptor){
        .media_type = cc_xstrdup(mt),
        .digest = cc_xstrdup(digest),
        .size = size,
    };
    return 0;
}

static int
check_schema_version(const json_t *root, cc_error **err)
{
    int64_t v = 0;
    int r = missing("schemaVersion", cc_json_get_int64(root, "schemaVersion", &v, err), err);
    if (r < 0)
        return r;
    if (v != 2)
        return cc_error_msg(err, -EINVAL,
                            "field 'schemaVersion': %" PRId64 " is not supported "
                            "(expected 2)",
                            v);
    return 0;
}

/* "os/arch[/variant]" of manifests[i] for the error listing the platforms, or NULL. */
static char *
platform_name(const json_t *root, size_t i)
{
    _cleanup_free_ char *p_os = cc_xasprintf("manifests[%zu].platform.os", i);
    _cleanup_free_ char *p_arch = cc_xasprintf("manifests[%zu].platform.architecture", i);
    _cleanup_free_ char *p_var = cc_xasprintf("manifests[%zu].platform.variant", i);
    const char *os = NULL, *arch = NULL, *variant = NULL;
    if (cc_json_get_string(root, p_os, &os, NULL) < 0 ||
        cc_json_get_string(root, p_arch, &arch, NULL) < 0)
        return NULL;
    if (cc_json_get_string(root, p_var, &variant, NULL) >= 0 && *variant)
        return cc_xasprintf("%.32s/%.32s/%.32s", os, arch, variant);
    return cc_xasprintf("%.32s/%.32s", os, arch);
}

int
oci_index_select(const char *body, size_t len, const char *os, const char *architecture,
                 oci_descriptor *ret, cc_error **err)
{
    _cleanup_json_ json_t *root = NULL;
    int r = cc_json_load_buffer(body, len, "index", REGISTRY_MANIFEST_MAX, &root, err);
    if (r < 0)
        return r;
    r = check_schema_version(root, err);
    if (r < 0)
        return cc_error_prefix(err, r, "index");
    const char *mt = NULL;
    r = cc_json_get_string(root, "mediaType", &mt, err);
    if (r < 0 && r != -ENOENT)
        return cc_error_prefix(err, r, "index");
    if (r >= 0 && !oci_media_type_is_index(mt))
        return cc_error_msg(err, -EINVAL, "index: field 'mediaType': not an index media type");
    json_t *manifests = NULL;
    r = missing("manifests", cc_json_get_array(root, "manifests", &manifests, err), err);
    if (r < 0)
        return cc_error_prefix(err, r, "index");

    size_t n = json_array_size(manifests);
    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char *p_plat = cc_xasprintf("manifests[%zu].platform", i);
        _cleanup_free_ char *p_os = cc_xasprintf("%s.os", p_plat);
        _cleanup_free_ char *p_arch = cc_xasprintf("%s.architecture", p_plat);
        const char *e_os = NULL, *e_arch = NULL;
        json_t *plat = NULL;
        r = cc_json_get_object(root, p_plat, &plat, err);
        if (r == -ENOENT)
            continue;
        if (r >= 0)
            r = cc_json_get_string(root, p_os, &e_os, err);
        if (r >= 0)
            r = cc_json_get_string(root, p_arch, &e_arch, err);
        if (r == -ENOENT)
            continue;
        if (r < 0)
            return cc_error_prefix(err, r, "index");
        if (!cc_streq(e_os, os) || !cc_streq(e_arch, architecture))
            continue;

        _cleanup_free_ char *prefix = cc_xasprintf("manifests[%zu]", i);
        oci_descriptor d = {0};
        r = parse_descriptor(root, prefix, &d, err);
        if (r < 0)
            return cc_error_prefix(err, r, "index");
        if (!media_type_is_manifest(d.media_type)) {
            oci_descriptor_clear(&d);
            return cc_error_msg(err, -EOPNOTSUPP,
                                "index: field '%s.mediaType': not an image manifest media type",
                                prefix);
        }
        *ret = d;
        return 0;
    }

    _cleanup_free_ char *have = cc_xstrdup("");
    size_t listed = 0;
    for (size_t i = 0; i < n && listed <= 16; i++) {
        _cleanup_free_ char *name = platform_name(root, i);
        if (!name)
            continue;
        char *s = cc_xasprintf("%s%s%s", have, listed ? ", " : "", listed < 16 ? name : "...");
        free(have);
        have = s;
        listed++;
    }
    return cc_error_msg(err, -ENOENT, "index: no manifest for %s/%s (has %s)", os, architecture,
                        listed ? have : "no platforms");
}

int
oci_manifest_parse(const char *body, size_t len, oci_manifest *ret, cc_error **err)
{
    _cleanup_json_ json_t *root = NULL;
    int r = cc_json_load_buffer(body, len, "manifest", REGISTRY_MANIFEST_MAX, &root, err);
    if (r < 0)
        return r;
    r = check_schema_version(root, err);
    if (r < 0)
        return cc_error_prefix(err, r, "manifest");
    const char *mt = NULL;
    r = cc_json_get_string(root, "mediaType", &mt, err);
    if (r < 0 && r != -ENOENT)
        return cc_error_prefix(err, r, "manifest");
    if (r >= 0 && !media_type_is_manifest(mt))
        return cc_error_msg(err, -EINVAL,
                            "manifest: field 'mediaType': not an image manifest media type%s",
                            oci_media_type_is_index(mt) ? " (an index)" : "");

    oci_manifest m = {0};
    r = parse_descriptor(root, "config", &m.config, err);
    if (r < 0)
        return cc_error_prefix(err, r, "manifest");
    if (strcasecmp(m.config.media_type, MT_OCI_CONFIG) != 0 &&
        strcasecmp(m.config.media_type, MT_DOCKER_CONFIG) != 0) {
        oci_manifest_clear(&m);
        return cc_error_msg(err, -EOPNOTSUPP,
                            "manifest: field 'config.mediaType': not an image config media type");
    }
    json_t *layers = NULL;
    r = missing("layers", cc_json_get_array(root, "layers", &layers, err), err);
    if (r >= 0 && json_array_size(layers) > LAYERS_MAX)
        r = cc_error_msg(err, -EINVAL, "field 'layers': more than %d layers", LAYERS_MAX);
    if (r < 0) {
        oci_manifest_clear(&m);
        return cc_error_prefix(err, r, "manifest");
    }
    size_t n = json_array_size(layers);
    m.layers = cc_xzalloc((n ? n : 1) * sizeof(*m.layers));
    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char *prefix = cc_xasprintf("layers[%zu]", i);
        r = parse_descriptor(root, prefix, &m.layers[i], err);
        if (r < 0) {
            oci_manifest_clear(&m);
            return cc_error_prefix(err, r, "manifest");
        }
        m.n_layers = i + 1;
    }
    *ret = m;
    return 0;
}

int
oci_config_diff_ids(const char *body, size_t len, char ***ret_diff_ids, size_t *ret_n,
                    cc_error **err)
{
    _cleanup_json_ json_t *root = NULL;
    int r = cc_json_load_buffer(body, len, "image config", REGISTRY_CONFIG_MAX, &root, err);
    if (r < 0)
        return r;
    const char *os = NULL, *type = NULL;
    r = get_string(root, "os", &os, err);
    if (r < 0)
        return cc_error_prefix(err, r, "image config");
    if (!cc_streq(os, "linux"))
        return cc_error_msg(err, -EINVAL, "image config: image is for os '%.32s', not linux", os);
    r = get_string(root, "rootfs.type", &type, err);
    if (r < 0)
        return cc_error_prefix(err, r, "image config");
    if (!cc_streq(type, "layers"))
        return cc_error_msg(err, -EINVAL,
                            "image config: field 'rootfs.type': '%.32s' is not \"layers\"", type);
    _cleanup_json_strv_ char **ids = NULL;
    r = missing("rootfs.diff_ids", cc_json_get_strv(root, "rootfs.diff_ids", LAYERS_MAX, &ids, err),
                err);
    if (r < 0)
        return cc_error_prefix(err, r, "image config");
    size_t n = 0;
    for (; ids[n]; n++)
        if (!oci_digest_is_valid(ids[n]))
            return cc_error_msg(
                err, -EINVAL, "image config: field 'rootfs.diff_ids[%zu]': not a sha256 digest", n);
    *ret_diff_ids = TAKE_PTR(ids);
    *ret_n = n;
    return 0;
}
