/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vmm_config: configs/cloak-*.toml read into a vmm_config and validated. The schema is in
 * configs/README.md; key names follow Kata's [hypervisor.qemu] where Kata has one.
 *
 * Every error names the file, the line and the full dotted key:
 *   "/etc/cloak/x.toml:12: key 'hypervisor.default_memory': must be between 256 and ..."
 */
#include "fs.h"
#include "toml.h"
#include "util.h"
#include "vmm.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONFIG_MAX_SIZE (1024 * 1024)
#define ANNOTATION_PREFIX "io.katacontainers.config.hypervisor."

#define VCPUS_MIN 1
#define VCPUS_MAX 512
#define MEMORY_MIN 256
#define MEMORY_MAX 1048576
#define KERNEL_PARAMS_MAX 4096

/* Keys enable_annotations may list. cc_init_data is not a config field: the shim reads that
 * annotation itself; apply_annotations only checks that it is allowed. */
static const char *const annotation_keys[] = {
    "default_vcpus", "default_memory", "kernel_params", "cc_init_data", NULL,
};

static const char *const root_keys[] = {"hypervisor", "runtime", NULL};
static const char *const runtime_keys[] = {"create_timeout", "boot_timeout", NULL};
static const char *const hypervisor_keys[] = {
    "profile",
    "backend",
    "accel",
    "path",
    "libvirt_uri",
    "kernel",
    "initrd",
    "firmware",
    "kernel_params",
    "machine_type",
    "cpu_model",
    "default_vcpus",
    "default_memory",
    "default_maxvcpus",
    "default_maxmemory",
    "agent_channel",
    "network",
    "enable_annotations",
    "sev",
    "snp",
    "tdx",
    NULL,
};
static const char *const sev_keys[] = {"cbitpos", "reduced_phys_bits", "policy", "kernel_hashes",
                                       NULL};
static const char *const snp_keys[] = {"cbitpos",  "reduced_phys_bits", "policy", "kernel_hashes",
                                       "id_block", "id_auth",           NULL};
static const char *const tdx_keys[] = {"attributes", "quote_generation_socket", NULL};

/* What errors need: the name to print and the directory relative paths resolve against. */
typedef struct cfg_ctx {
    const char *name; /* as the caller gave it, or "<buffer>" */
    char *dir;        /* absolute directory of the file; NULL without a path */
    cc_error **err;
} cfg_ctx;

/* "NAME:LINE: key 'TABLE.KEY': <fmt>", -EINVAL. v gives the line (the table's when NULL). */
static int _printf_(5, 6) cfg_fail(const cfg_ctx *ctx, const cc_toml *v, const char *table,
                                   const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *msg = cc_xvasprintf(fmt, ap);
    va_end(ap);
    return cc_error_msg(ctx->err, -EINVAL, "%s:%u: key '%s%s%s': %s", ctx->name, cc_toml_line(v),
                        table ? table : "", table ? "." : "", key, msg);
}

static bool
strv_contains(const char *const *v, const char *s)
{
    for (; v && *v; v++)
        if (strcmp(*v, s) == 0)
            return true;
    return false;
}

/* Refuses keys the schema does not know, so a typo is an error rather than a silent default. */
static int
cfg_check_keys(const cfg_ctx *ctx, const cc_toml *t, const char *table, const char *const *known)
{
    for (size_t i = 0; i < cc_toml_table_len(t); i++) {
        size_t len;
        const char *k = cc_toml_table_key_at(t, i, &len);
        if (strlen(k) == len && strv_contains(known, k))
            continue;
        const cc_toml *v = cc_toml_table_value_at(t, i);
        return cfg_fail(ctx, v, table, k, "unknown %s",
                        cc_toml_type_of(v) == CC_TOML_TABLE ? "table" : "key");
    }
    return 0;
}

static int
cfg_check_type(const cfg_ctx *ctx, const cc_toml *v, const char *table, const char *key,
               cc_toml_type want)
{
    if (cc_toml_type_of(v) == want)
        return 0;
    return cfg_fail(ctx, v, table, key, "expected %s, got %s", cc_toml_type_name(want),
                    cc_toml_type_name(cc_toml_type_of(v)));
}

/* *ret untouched when the key is absent. */
static int
cfg_get_string(const cfg_ctx *ctx, const cc_toml *t, const char *table, const char *key,
               const char **ret)
{
    const cc_toml *v = cc_toml_table_get(t, key);
    if (!v)
        return 0;
    int r = cfg_check_type(ctx, v, table, key, CC_TOML_STRING);
    if (r < 0)
        return r;
    size_t len;
    const char *s = cc_toml_as_string(v, &len);
    if (strlen(s) != len)
        return cfg_fail(ctx, v, table, key, "must not contain NUL");
    *ret = s;
    return 0;
}

/* Replaces *field with a copy of the key's string; empty_ok false refuses "". */
static int
cfg_get_dup(const cfg_ctx *ctx, const cc_toml *t, const char *table, const char *key, bool empty_ok,
            char **field)
{
    const char *s = NULL;
    int r = cfg_get_string(ctx, t, table, key, &s);
    if (r < 0 || !s)
        return r;
    if (!empty_ok && !*s)
        return cfg_fail(ctx, cc_toml_table_get(t, key), table, key, "must not be empty");
    free(*field);
    *field = cc_xstrdup(s);
    return 0;
}

/* A URI: non-empty, at most 256 bytes, no whitespace or control characters (it is recorded
 * in the state dir as one word for crash cleanup). */
static int
cfg_get_uri(const cfg_ctx *ctx, const cc_toml *t, const char *table, const char *key, char **field)
{
    int r = cfg_get_dup(ctx, t, table, key, false, field);
    if (r < 0)
        return r;
    size_t n = strlen(*field);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)(*field)[i] <= ' ' || (*field)[i] == 0x7f)
            return cfg_fail(ctx, cc_toml_table_get(t, key), table, key,
                            "must not contain whitespace or control characters");
    if (n > 256)
        return cfg_fail(ctx, cc_toml_table_get(t, key), table, key, "longer than 256 bytes");
    return 0;
}

/* A path: "" leaves it unset (NULL), relative ones resolve against the file's directory. */
static int
cfg_get_path(const cfg_ctx *ctx, const cc_toml *t, const char *table, const char *key, char **field)
{
    const char *s = NULL;
    int r = cfg_get_string(ctx, t, table, key, &s);
    if (r < 0 || !s)
        return r;
    free(*field);
    *field = NULL;
    if (!*s)
        return 0;
    if (s[0] == '/') {
        *field = cc_xstrdup(s);
        return 0;
    }
    if (!ctx->dir)
        return cfg_fail(ctx, cc_toml_table_get(t, key), table, key,
                        "relative path '%s' needs a config file to resolve against", s);
    *field = cc_xasprintf("%s/%s", ctx->dir, s);
    return 0;
}

static int
cfg_get_int(const cfg_ctx *ctx, const cc_toml *t, const char *table, const char *key, int64_t min,
            int64_t max, const char *unit, int64_t *ret)
{
    const cc_toml *v = cc_toml_table_get(t, key);
    if (!v)
        return 0;
    int r = cfg_check_type(ctx, v, table, key, CC_TOML_INTEGER);
    if (r < 0)
        return r;
    int64_t i = cc_toml_as_int(v);
    if (i < min || i > max)
        return cfg_fail(ctx, v, table, key,
                        "must be between %" PRId64 " and %" PRId64 "%s, got %" PRId64, min, max,
                        unit, i);
    *ret = i;
    return 0;
}

static int
cfg_get_unsigned(const cfg_ctx *ctx, const cc_toml *t, const char *table, const char *key,
                 unsigned min, unsigned max, const char *unit, unsigned *field)
{
    int64_t i = *field;
    int r = cfg_get_int(ctx, t, table, key, min, max, unit, &i);
    if (r < 0)
        return r;
    *field = (unsigned)i;
    return 0;
}

static int
cfg_get_bool(const cfg_ctx *ctx, const cc_toml *t, const char *table, const char *key, bool *field)
{
    const cc_toml *v = cc_toml_table_get(t, key);
    if (!v)
        return 0;
    int r = cfg_check_type(ctx, v, table, key, CC_TOML_BOOL);
    if (r < 0)
        return r;
    *field = cc_toml_as_bool(v);
    return 0;
}

/* An optional sub-table; *ret stays NULL when absent. */
static int
cfg_get_table(const cfg_ctx *ctx, const cc_toml *t, const char *table, const char *key,
              const cc_toml **ret)
{
    const cc_toml *v = cc_toml_table_get(t, key);
    if (!v)
        return 0;
    int r = cfg_check_type(ctx, v, table, key, CC_TOML_TABLE);
    if (r < 0)
        return r;
    *ret = v;
    return 0;
}

static int
lookup_profile(const char *s)
{
    return vmm_profile_from_string(s);
}

static int
lookup_backend(const char *s)
{
    return vmm_backend_from_string(s);
}

static int
lookup_accel(const char *s)
{
    return vmm_accel_from_string(s);
}

static int
lookup_channel(const char *s)
{
    return vmm_channel_from_string(s);
}

static int
lookup_net(const char *s)
{
    return vmm_net_from_string(s);
}

static int
cfg_get_enum(const cfg_ctx *ctx, const cc_toml *t, const char *key, int (*lookup)(const char *),
             const char *choices, int *field)
{
    const char *s = NULL;
    int r = cfg_get_string(ctx, t, "hypervisor", key, &s);
    if (r < 0 || !s)
        return r;
    int v = lookup(s);
    if (v < 0)
        return cfg_fail(ctx, cc_toml_table_get(t, key), "hypervisor", key,
                        "must be one of %s, got '%s'", choices, s);
    *field = v;
    return 0;
}

static int
cfg_parse_enums(const cfg_ctx *ctx, const cc_toml *hv, vmm_config *c)
{
    int profile = c->profile, backend = c->backend, accel = c->accel, channel = c->channel,
        net = c->net, r;

    if ((r = cfg_get_enum(ctx, hv, "profile", lookup_profile, "none|sev|sev-snp|tdx", &profile)) <
            0 ||
        (r = cfg_get_enum(ctx, hv, "backend", lookup_backend, "auto|qemu|libvirt", &backend)) < 0 ||
        (r = cfg_get_enum(ctx, hv, "accel", lookup_accel, "auto|kvm|tcg", &accel)) < 0 ||
        (r = cfg_get_enum(ctx, hv, "agent_channel", lookup_channel, "auto|vsock|serial",
                          &channel)) < 0 ||
        (r = cfg_get_enum(ctx, hv, "network", lookup_net, "none|user|tap", &net)) < 0)
        return r;
    c->profile = (vmm_profile)profile;
    c->backend = (vmm_backend)backend;
    c->accel = (vmm_accel)accel;
    c->channel = (vmm_channel)channel;
    c->net = (vmm_net)net;
    return 0;
}

static int
cfg_parse_annotations(const cfg_ctx *ctx, const cc_toml *hv, vmm_config *c)
{
    const cc_toml *a = cc_toml_table_get(hv, "enable_annotations");
    if (!a)
        return 0;
    int r = cfg_check_type(ctx, a, "hypervisor", "enable_annotations", CC_TOML_ARRAY);
    if (r < 0)
        return r;
    size_t n = cc_toml_array_len(a);
    char **v = cc_xreallocarray(NULL, n + 1, sizeof(char *));
    v[0] = NULL;
    vmm_strv_free(c->enable_annotations);
    c->enable_annotations = v;
    for (size_t i = 0; i < n; i++) {
        const cc_toml *e = cc_toml_array_at(a, i);
        size_t len;
        const char *s = cc_toml_as_string(e, &len);
        if (cc_toml_type_of(e) != CC_TOML_STRING)
            return cfg_fail(ctx, e, "hypervisor", "enable_annotations",
                            "expected string elements, got %s",
                            cc_toml_type_name(cc_toml_type_of(e)));
        if (strlen(s) != len || !strv_contains(annotation_keys, s))
            return cfg_fail(ctx, e, "hypervisor", "enable_annotations",
                            "unknown annotation key '%s' (known: default_vcpus, default_memory, "
                            "kernel_params, cc_init_data)",
                            s);
        if (strv_contains((const char *const *)v, s))
            return cfg_fail(ctx, e, "hypervisor", "enable_annotations", "duplicate entry '%s'", s);
        v[i] = cc_xstrdup(s);
        v[i + 1] = NULL;
    }
    return 0;
}

static int
cfg_parse_hypervisor(const cfg_ctx *ctx, const cc_toml *hv, vmm_config *c)
{
    const char *tbl = "hypervisor";
    int r;

    if ((r = cfg_check_keys(ctx, hv, tbl, hypervisor_keys)) < 0 ||
        (r = cfg_parse_enums(ctx, hv, c)) < 0 ||
        (r = cfg_get_path(ctx, hv, tbl, "path", &c->qemu_path)) < 0 ||
        (r = cfg_get_uri(ctx, hv, tbl, "libvirt_uri", &c->libvirt_uri)) < 0 ||
        (r = cfg_get_path(ctx, hv, tbl, "kernel", &c->kernel)) < 0 ||
        (r = cfg_get_path(ctx, hv, tbl, "initrd", &c->initrd)) < 0 ||
        (r = cfg_get_path(ctx, hv, tbl, "firmware", &c->firmware)) < 0 ||
        (r = cfg_get_dup(ctx, hv, tbl, "kernel_params", true, &c->kernel_params)) < 0 ||
        (r = cfg_get_dup(ctx, hv, tbl, "machine_type", false, &c->machine)) < 0 ||
        (r = cfg_get_dup(ctx, hv, tbl, "cpu_model", true, &c->cpu_model)) < 0 ||
        (r = cfg_get_unsigned(ctx, hv, tbl, "default_vcpus", VCPUS_MIN, VCPUS_MAX, "", &c->vcpus)) <
            0 ||
        (r = cfg_get_unsigned(ctx, hv, tbl, "default_memory", MEMORY_MIN, MEMORY_MAX, " MiB",
                              &c->memory_mib)) < 0 ||
        (r = cfg_get_unsigned(ctx, hv, tbl, "default_maxvcpus", VCPUS_MIN, VCPUS_MAX, "",
                              &c->max_vcpus)) < 0 ||
        (r = cfg_get_unsigned(ctx, hv, tbl, "default_maxmemory", MEMORY_MIN, MEMORY_MAX, " MiB",
                              &c->max_memory_mib)) < 0 ||
        (r = cfg_parse_annotations(ctx, hv, c)) < 0)
        return r;
    if (c->max_vcpus < c->vcpus)
        return cfg_fail(ctx, cc_toml_table_get(hv, "default_maxvcpus"), tbl, "default_maxvcpus",
                        "must not be below default_vcpus (%u), got %u", c->vcpus, c->max_vcpus);
    if (c->max_memory_mib < c->memory_mib)
        return cfg_fail(ctx, cc_toml_table_get(hv, "default_maxmemory"), tbl, "default_maxmemory",
                        "must not be below default_memory (%u MiB), got %u", c->memory_mib,
                        c->max_memory_mib);
    if (!c->qemu_path)
        return cfg_fail(ctx, cc_toml_table_get(hv, "path"), tbl, "path", "must not be empty");
    if (c->cpu_model && !*c->cpu_model) {
        free(c->cpu_model);
        c->cpu_model = NULL;
    }
    return 0;
}

/* [hypervisor.sev] and [hypervisor.snp] share these; only the profile's own table fills c. */
static int
cfg_parse_sev_common(const cfg_ctx *ctx, const cc_toml *t, const char *table, vmm_tee *tee)
{
    int r;
    if ((r = cfg_get_unsigned(ctx, t, table, "cbitpos", 32, 63, "", &tee->cbitpos)) < 0 ||
        (r = cfg_get_unsigned(ctx, t, table, "reduced_phys_bits", 0, 63, "",
                              &tee->reduced_phys_bits)) < 0 ||
        (r = cfg_get_bool(ctx, t, table, "kernel_hashes", &tee->kernel_hashes)) < 0)
        return r;
    return 0;
}

static int
cfg_parse_sev(const cfg_ctx *ctx, const cc_toml *t, vmm_tee *tee)
{
    const char *tbl = "hypervisor.sev";
    int64_t policy = (int64_t)tee->policy;
    int r;

    if ((r = cfg_check_keys(ctx, t, tbl, sev_keys)) < 0 ||
        (r = cfg_parse_sev_common(ctx, t, tbl, tee)) < 0 ||
        (r = cfg_get_int(ctx, t, tbl, "policy", 0, INT64_MAX, "", &policy)) < 0)
        return r;
    if (policy > UINT32_MAX)
        return cfg_fail(ctx, cc_toml_table_get(t, "policy"), tbl, "policy",
                        "must fit in 32 bits, got 0x%" PRIx64, (uint64_t)policy);
    tee->policy = (uint64_t)policy;
    return 0;
}

/* Base64 of exactly want bytes (standard alphabet, padded). */
static bool
base64_len_is(const char *s, size_t want)
{
    size_t n = strlen(s), pad = 0;
    if (n % 4 != 0 || n != (want + 2) / 3 * 4)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '=' && i >= n - 2) {
            pad++;
            continue;
        }
        if (pad || !(('A' <= ch && ch <= 'Z') || ('a' <= ch && ch <= 'z') ||
                     ('0' <= ch && ch <= '9') || ch == '+' || ch == '/'))
            return false;
    }
    return n / 4 * 3 - pad == want;
}

static int
cfg_parse_snp_id(const cfg_ctx *ctx, const cc_toml *t, const char *tbl, vmm_tee *tee)
{
    int r;
    if ((r = cfg_get_dup(ctx, t, tbl, "id_block", true, &tee->snp_id_block)) < 0 ||
        (r = cfg_get_dup(ctx, t, tbl, "id_auth", true, &tee->snp_id_auth)) < 0)
        return r;
    bool block = tee->snp_id_block && *tee->snp_id_block;
    bool auth = tee->snp_id_auth && *tee->snp_id_auth;
    if (block && !auth)
        return cfg_fail(ctx, cc_toml_table_get(t, "id_block"), tbl, "id_auth",
                        "required when id_block is set");
    if (auth && !block)
        return cfg_fail(ctx, cc_toml_table_get(t, "id_auth"), tbl, "id_block",
                        "required when id_auth is set");
    if (block && !base64_len_is(tee->snp_id_block, 96))
        return cfg_fail(ctx, cc_toml_table_get(t, "id_block"), tbl, "id_block",
                        "must be base64 of 96 bytes");
    if (auth && !base64_len_is(tee->snp_id_auth, 4096))
        return cfg_fail(ctx, cc_toml_table_get(t, "id_auth"), tbl, "id_auth",
                        "must be base64 of 4096 bytes");
    if (!block) {
        free(tee->snp_id_block);
        free(tee->snp_id_auth);
        tee->snp_id_block = tee->snp_id_auth = NULL;
    }
    return 0;
}

static int
cfg_parse_snp(const cfg_ctx *ctx, const cc_toml *t, vmm_tee *tee)
{
    const char *tbl = "hypervisor.snp";
    int64_t policy = (int64_t)tee->policy;
    int r;

    if ((r = cfg_check_keys(ctx, t, tbl, snp_keys)) < 0 ||
        (r = cfg_parse_sev_common(ctx, t, tbl, tee)) < 0 ||
        (r = cfg_get_int(ctx, t, tbl, "policy", 0, INT64_MAX, "", &policy)) < 0)
        return r;
    /* Bit 17 is reserved and must be 1; firmware refuses the launch otherwise. */
    if (!(policy & (INT64_C(1) << 17)))
        return cfg_fail(ctx, cc_toml_table_get(t, "policy"), tbl, "policy",
                        "bit 17 (reserved, must be 1) is clear in 0x%" PRIx64, (uint64_t)policy);
    tee->policy = (uint64_t)policy;
    return cfg_parse_snp_id(ctx, t, tbl, tee);
}

static int
cfg_parse_tdx(const cfg_ctx *ctx, const cc_toml *t, vmm_tee *tee)
{
    const char *tbl = "hypervisor.tdx";
    int64_t attributes = (int64_t)tee->tdx_attributes;
    int r;

    if ((r = cfg_check_keys(ctx, t, tbl, tdx_keys)) < 0 ||
        (r = cfg_get_int(ctx, t, tbl, "attributes", 0, INT64_MAX, "", &attributes)) < 0 ||
        (r = cfg_get_path(ctx, t, tbl, "quote_generation_socket", &tee->tdx_qgs_socket)) < 0)
        return r;
    tee->tdx_attributes = (uint64_t)attributes;
    return 0;
}

static void
tee_clear(vmm_tee *tee)
{
    free(tee->snp_id_block);
    free(tee->snp_id_auth);
    free(tee->tdx_qgs_socket);
    *tee = (vmm_tee){0};
}

static void
tee_defaults(vmm_profile p, vmm_tee *tee)
{
    tee_clear(tee);
    switch (p) {
    case VMM_PROFILE_SEV:
        *tee =
            (vmm_tee){.cbitpos = 51, .reduced_phys_bits = 1, .policy = 0x3, .kernel_hashes = true};
        break;
    case VMM_PROFILE_SEV_SNP:
        *tee = (vmm_tee){
            .cbitpos = 51, .reduced_phys_bits = 1, .policy = 0x30000, .kernel_hashes = true};
        break;
    case VMM_PROFILE_TDX:
        tee->tdx_attributes = 0x10000000;
        tee->tdx_qgs_socket = cc_xstrdup("/var/run/tdx-qgs/qgs.socket");
        break;
    default:
        break;
    }
}

/* Every TEE table is checked (a typo in an unused one is still a typo); the profile's own
 * table fills c->tee. */
static int
cfg_parse_tee(const cfg_ctx *ctx, const cc_toml *hv, vmm_config *c)
{
    static const struct {
        const char *key;
        vmm_profile profile;
        int (*parse)(const cfg_ctx *, const cc_toml *, vmm_tee *);
    } tables[] = {
        {"sev", VMM_PROFILE_SEV, cfg_parse_sev},
        {"snp", VMM_PROFILE_SEV_SNP, cfg_parse_snp},
        {"tdx", VMM_PROFILE_TDX, cfg_parse_tdx},
    };

    for (size_t i = 0; i < ELEMENTSOF(tables); i++) {
        const cc_toml *t = NULL;
        vmm_tee tee = {0};
        tee_defaults(tables[i].profile, &tee);
        int r = cfg_get_table(ctx, hv, "hypervisor", tables[i].key, &t);
        if (r >= 0 && t)
            r = tables[i].parse(ctx, t, &tee);
        if (r < 0 || tables[i].profile != c->profile) {
            tee_clear(&tee);
            if (r < 0)
                return r;
            continue;
        }
        tee_clear(&c->tee);
        c->tee = tee;
    }
    return 0;
}

/* Combinations that cannot work, named by the key that makes them so. */
static int
cfg_check_combinations(const cfg_ctx *ctx, const cc_toml *hv, const vmm_config *c)
{
    const char *profile = vmm_profile_to_string(c->profile);
    bool tee = c->profile != VMM_PROFILE_NONE;

    if ((c->profile == VMM_PROFILE_SEV_SNP || c->profile == VMM_PROFILE_TDX) && !c->firmware)
        return cfg_fail(ctx, cc_toml_table_get(hv, "firmware") ?: cc_toml_table_get(hv, "profile"),
                        "hypervisor", "firmware", "required for profile %s", profile);
    if (tee && c->accel == VMM_ACCEL_TCG)
        return cfg_fail(ctx, cc_toml_table_get(hv, "accel"), "hypervisor", "accel",
                        "'tcg' cannot run profile %s (it needs kvm)", profile);
    if (c->net == VMM_NET_TAP && c->backend == VMM_BACKEND_LIBVIRT)
        return cfg_fail(ctx, cc_toml_table_get(hv, "network"), "hypervisor", "network",
                        "'tap' is not supported with backend libvirt");
    return 0;
}

static vmm_config *
config_new_defaults(void)
{
    vmm_config *c = cc_xzalloc(sizeof(*c));
    c->profile = VMM_PROFILE_NONE;
    c->backend = VMM_BACKEND_QEMU;
    c->accel = VMM_ACCEL_AUTO;
    c->channel = VMM_CHANNEL_AUTO;
    c->net = VMM_NET_USER;
    c->qemu_path = cc_xstrdup("/usr/bin/qemu-system-x86_64");
    c->libvirt_uri = cc_xstrdup("qemu:///system");
    c->kernel_params = cc_xstrdup("");
    c->machine = cc_xstrdup("q35");
    c->vcpus = 1;
    c->memory_mib = 2048;
    c->max_vcpus = VCPUS_MAX;
    c->max_memory_mib = MEMORY_MAX;
    c->create_timeout_sec = 300;
    c->boot_timeout_sec = 120;
    c->enable_annotations = cc_xzalloc(sizeof(char *));
    return c;
}

vmm_config *
vmm_config_free(vmm_config *c)
{
    if (!c)
        return NULL;
    free(c->path);
    free(c->qemu_path);
    free(c->libvirt_uri);
    free(c->kernel);
    free(c->initrd);
    free(c->firmware);
    free(c->kernel_params);
    free(c->machine);
    free(c->cpu_model);
    tee_clear(&c->tee);
    vmm_strv_free(c->enable_annotations);
    free(c);
    return NULL;
}

/* path made absolute against the cwd (no symlink resolution: the name the user gave). */
static int
absolute_path(const char *path, char **ret, cc_error **err)
{
    if (path[0] == '/') {
        *ret = cc_xstrdup(path);
        return 0;
    }
    _cleanup_free_ char *cwd = getcwd(NULL, 0);
    if (!cwd)
        return cc_error_set(err, -errno, "getcwd");
    *ret = cc_xasprintf("%s/%s", cwd, path);
    return 0;
}

static int
cfg_parse_root(const cfg_ctx *ctx, const cc_toml *root, vmm_config *c)
{
    const cc_toml *hv = NULL; /* absent: all defaults (lookups on NULL find nothing) */
    int r;

    const cc_toml *rt = NULL;
    if ((r = cfg_check_keys(ctx, root, NULL, root_keys)) < 0 ||
        (r = cfg_get_table(ctx, root, NULL, "hypervisor", &hv)) < 0 ||
        (r = cfg_parse_hypervisor(ctx, hv, c)) < 0 || (r = cfg_parse_tee(ctx, hv, c)) < 0 ||
        (r = cfg_get_table(ctx, root, NULL, "runtime", &rt)) < 0 ||
        (r = cfg_check_keys(ctx, rt, "runtime", runtime_keys)) < 0 ||
        (r = cfg_get_unsigned(ctx, rt, "runtime", "create_timeout", 1, 86400, " s",
                              &c->create_timeout_sec)) < 0 ||
        (r = cfg_get_unsigned(ctx, rt, "runtime", "boot_timeout", 1, 86400, " s",
                              &c->boot_timeout_sec)) < 0)
        return r;
    return cfg_check_combinations(ctx, hv, c);
}

int
vmm_config_load_buffer(const char *buf, size_t len, const char *path, vmm_config **ret,
                       cc_error **err)
{
    _cleanup_(vmm_config_freep) vmm_config *c = config_new_defaults();
    cfg_ctx ctx = {.name = path ? path : "<buffer>", .err = err};
    int r;

    if (path) {
        r = absolute_path(path, &c->path, err);
        if (r < 0)
            return r;
        const char *slash = strrchr(c->path, '/');
        ctx.dir = slash == c->path ? cc_xstrdup("/") : cc_xstrndup(c->path, slash - c->path);
    }
    _cleanup_(cc_toml_freep) cc_toml *root = cc_toml_parse(buf, len, err);
    if (!root)
        r = cc_error_prefix(err, -EINVAL, "%s", ctx.name);
    else
        r = cfg_parse_root(&ctx, root, c);
    free(ctx.dir);
    if (r < 0)
        return r;
    *ret = TAKE_PTR(c);
    return 0;
}

int
vmm_config_load(const char *path, vmm_config **ret, cc_error **err)
{
    _cleanup_free_ char *buf = NULL;
    size_t len;
    int r = cc_read_file(path, CONFIG_MAX_SIZE, &buf, &len, err);
    if (r < 0)
        return cc_error_prefix(err, r, "load config");
    return vmm_config_load_buffer(buf, len, path, ret, err);
}

/* ---- guest kernel and initrd ----------------------------------------------------------- */

static bool
is_regular_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Fills the unset ones from dir when all the unset ones are there. */
static bool
try_guest_dir(vmm_config *c, const char *dir)
{
    _cleanup_free_ char *kernel = cc_xasprintf("%s/vmlinuz", dir);
    _cleanup_free_ char *initrd = cc_xasprintf("%s/initrd.img", dir);
    if ((!c->kernel && !is_regular_file(kernel)) || (!c->initrd && !is_regular_file(initrd)))
        return false;
    if (!c->kernel)
        c->kernel = TAKE_PTR(kernel);
    if (!c->initrd)
        c->initrd = TAKE_PTR(initrd);
    return true;
}

int
vmm_config_resolve_guest(vmm_config *c, const char *exe_dir, const char *prefix, cc_error **err)
{
    if (c->kernel && c->initrd)
        return 0;
    /* The build tree (<build>/<component>/../guest), an install under any prefix
     * (<prefix>/bin/../share/cloak/guest), then the prefix this was compiled for. */
    _cleanup_free_ char *a = exe_dir ? cc_xasprintf("%s/../guest", exe_dir) : NULL;
    _cleanup_free_ char *b = exe_dir ? cc_xasprintf("%s/../share/cloak/guest", exe_dir) : NULL;
    _cleanup_free_ char *p = prefix ? cc_xasprintf("%s/share/cloak/guest", prefix) : NULL;
    if ((a && try_guest_dir(c, a)) || (b && try_guest_dir(c, b)) || (p && try_guest_dir(c, p)))
        return 0;
    return cc_error_msg(err, -ENOENT, "guest %s not found in '%s', '%s' nor '%s'",
                        !c->kernel && !c->initrd ? "vmlinuz and initrd.img"
                        : !c->kernel             ? "vmlinuz"
                                                 : "initrd.img",
                        a ? a : "(no exe dir)", b ? b : "(no exe dir)", p ? p : "(no prefix)");
}

/* ---- pod annotations --------------------------------------------------------------------- */

/* Strict decimal: digits only, no sign, no spaces, within [min, max]. */
static int
parse_annotation_uint(const char *name, const char *value, unsigned min, unsigned max,
                      const char *unit, unsigned *ret, cc_error **err)
{
    uint64_t v = 0;
    if (!*value)
        return cc_error_msg(err, -EINVAL, "annotation '%s': expected a decimal integer, got ''",
                            name);
    for (const char *p = value; *p; p++) {
        if (*p < '0' || *p > '9')
            return cc_error_msg(
                err, -EINVAL, "annotation '%s': expected a decimal integer, got '%s'", name, value);
        if (v <= UINT32_MAX)
            v = v * 10 + (uint64_t)(*p - '0');
    }
    if (v < min || v > max)
        return cc_error_msg(err, -EINVAL, "annotation '%s': must be between %u and %u%s, got %s",
                            name, min, max, unit, value);
    *ret = (unsigned)v;
    return 0;
}

static int
check_kernel_params(const char *name, const char *value, cc_error **err)
{
    if (strlen(value) > KERNEL_PARAMS_MAX)
        return cc_error_msg(err, -EINVAL, "annotation '%s': longer than %d bytes", name,
                            KERNEL_PARAMS_MAX);
    for (const unsigned char *p = (const unsigned char *)value; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return cc_error_msg(err, -EINVAL, "annotation '%s': contains a control character",
                                name);
    return 0;
}

/* One annotation into the staged values; unrelated annotations are skipped. */
static int
apply_one(const vmm_config *c, const char *name, const char *value, unsigned *vcpus,
          unsigned *memory, const char **params, cc_error **err)
{
    const char *key = cc_startswith(name, ANNOTATION_PREFIX);
    if (!key)
        return 0;
    if (!strv_contains((const char *const *)c->enable_annotations, key))
        return cc_error_msg(err, -EPERM, "annotation '%s': not allowed by enable_annotations",
                            name);
    if (strcmp(key, "default_vcpus") == 0)
        return parse_annotation_uint(name, value, VCPUS_MIN, VCPUS_MAX, "", vcpus, err);
    if (strcmp(key, "default_memory") == 0)
        return parse_annotation_uint(name, value, MEMORY_MIN, MEMORY_MAX, " MiB", memory, err);
    if (strcmp(key, "kernel_params") == 0) {
        *params = value;
        return check_kernel_params(name, value, err);
    }
    return 0; /* cc_init_data: allowed; the caller decodes it */
}

int
vmm_config_apply_annotations(vmm_config *c, const char *const *annotations, cc_error **err)
{
    unsigned vcpus = c->vcpus, memory = c->memory_mib;
    const char *params = NULL;

    for (size_t i = 0; annotations && annotations[i] && annotations[i + 1]; i += 2) {
        int r = apply_one(c, annotations[i], annotations[i + 1], &vcpus, &memory, &params, err);
        if (r < 0)
            return r;
    }
    c->vcpus = vcpus;
    c->memory_mib = memory;
    if (params && *params) {
        /* Appended, as Kata does: the config's own parameters stay. */
        char *joined = *c->kernel_params ? cc_xasprintf("%s %s", c->kernel_params, params)
                                         : cc_xstrdup(params);
        free(c->kernel_params);
        c->kernel_params = joined;
    }
    return 0;
}
