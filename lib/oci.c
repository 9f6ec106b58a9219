/* SPDX-License-Identifier: Apache-2.0 */
/*
 * OCI runtime-spec JSON <-> Kata grpc.Spec. One table per message maps each OCI JSON name to
 * the protobuf field of the same meaning; the protobuf-c descriptors supply types, offsets
 * and sub-message types, so the two walkers below handle every message alike. The mapping
 * rules are documented in oci.h.
 */
#define _GNU_SOURCE
#include "oci.h"

#include "json.h"
#include "util.h"

#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

enum {
    F_ALWAYS = 1u << 0,   /* written even when zero/empty (required by the runtime-spec) */
    F_WILDCARD = 1u << 1, /* int64: -1 <-> absent, 0 is written */
    F_MAP = 1u << 2,      /* map<string, string>: JSON object */
};

typedef struct oci_field {
    const char *json;  /* OCI JSON key */
    const char *proto; /* field name in oci.proto */
    unsigned flags;
} oci_field;

typedef struct oci_msg {
    const ProtobufCMessageDescriptor *desc;
    const oci_field *fields;
    size_t n_fields;
} oci_msg;

#define F(j, p, fl)                                                                                \
    {                                                                                              \
        .json = (j), .proto = (p), .flags = (fl)                                                   \
    }
#define MSG(d, f)                                                                                  \
    {                                                                                              \
        .desc = &(d), .fields = (f), .n_fields = ELEMENTSOF(f)                                     \
    }

static const oci_field spec_fields[] = {
    F("ociVersion", "Version", F_ALWAYS),   F("process", "Process", 0), F("root", "Root", 0),
    F("hostname", "Hostname", 0),           F("mounts", "Mounts", 0),   F("hooks", "Hooks", 0),
    F("annotations", "Annotations", F_MAP), F("linux", "Linux", 0),
};

static const oci_field process_fields[] = {
    F("terminal", "Terminal", 0),
    F("consoleSize", "ConsoleSize", 0),
    F("user", "User", F_ALWAYS),
    F("args", "Args", 0),
    F("env", "Env", 0),
    F("cwd", "Cwd", F_ALWAYS),
    F("capabilities", "Capabilities", 0),
    F("rlimits", "Rlimits", 0),
    F("noNewPrivileges", "NoNewPrivileges", 0),
    F("apparmorProfile", "ApparmorProfile", 0),
    F("oomScoreAdj", "OOMScoreAdj", F_ALWAYS),
    F("selinuxLabel", "SelinuxLabel", 0),
};

static const oci_field box_fields[] = {
    F("height", "Height", F_ALWAYS),
    F("width", "Width", F_ALWAYS),
};

static const oci_field user_fields[] = {
    F("uid", "UID", F_ALWAYS),
    F("gid", "GID", F_ALWAYS),
    F("additionalGids", "AdditionalGids", 0),
    F("username", "Username", 0),
};

static const oci_field capabilities_fields[] = {
    F("bounding", "Bounding", 0),       F("effective", "Effective", 0),
    F("inheritable", "Inheritable", 0), F("permitted", "Permitted", 0),
    F("ambient", "Ambient", 0),
};

static const oci_field rlimit_fields[] = {
    F("type", "Type", F_ALWAYS),
    F("hard", "Hard", F_ALWAYS),
    F("soft", "Soft", F_ALWAYS),
};

static const oci_field root_fields[] = {
    F("path", "Path", F_ALWAYS),
    F("readonly", "Readonly", 0),
};

static const oci_field mount_fields[] = {
    F("destination", "destination", F_ALWAYS),
    F("type", "type", 0),
    F("source", "source", 0),
    F("options", "options", 0),
};

static const oci_field hooks_fields[] = {
    F("prestart", "Prestart", 0),
    F("createRuntime", "CreateRuntime", 0),
    F("createContainer", "CreateContainer", 0),
    F("startContainer", "StartContainer", 0),
    F("poststart", "Poststart", 0),
    F("poststop", "Poststop", 0),
};

static const oci_field hook_fields[] = {
    F("path", "Path", F_ALWAYS),
    F("args", "Args", 0),
    F("env", "Env", 0),
    F("timeout", "Timeout", 0),
};

static const oci_field linux_fields[] = {
    F("uidMappings", "UIDMappings", 0),
    F("gidMappings", "GIDMappings", 0),
    F("sysctl", "Sysctl", F_MAP),
    F("resources", "Resources", 0),
    F("cgroupsPath", "CgroupsPath", 0),
    F("namespaces", "Namespaces", 0),
    F("devices", "Devices", 0),
    F("seccomp", "Seccomp", 0),
    F("rootfsPropagation", "RootfsPropagation", 0),
    F("maskedPaths", "MaskedPaths", 0),
    F("readonlyPaths", "ReadonlyPaths", 0),
    F("mountLabel", "MountLabel", 0),
    F("intelRdt", "IntelRdt", 0),
};

static const oci_field idmapping_fields[] = {
    F("containerID", "ContainerID", F_ALWAYS),
    F("hostID", "HostID", F_ALWAYS),
    F("size", "Size", F_ALWAYS),
};

static const oci_field resources_fields[] = {
    F("devices", "Devices", 0), F("memory", "Memory", 0),
    F("cpu", "CPU", 0),         F("pids", "Pids", 0),
    F("blockIO", "BlockIO", 0), F("hugepageLimits", "HugepageLimits", 0),
    F("network", "Network", 0),
};

static const oci_field device_cgroup_fields[] = {
    F("allow", "Allow", F_ALWAYS),   F("type", "Type", 0),     F("major", "Major", F_WILDCARD),
    F("minor", "Minor", F_WILDCARD), F("access", "Access", 0),
};

static const oci_field memory_fields[] = {
    F("limit", "Limit", 0),
    F("reservation", "Reservation", 0),
    F("swap", "Swap", 0),
    F("kernel", "Kernel", 0),
    F("kernelTCP", "KernelTCP", 0),
    F("swappiness", "Swappiness", 0),
    F("disableOOMKiller", "DisableOOMKiller", 0),
};

static const oci_field cpu_fields[] = {
    F("shares", "Shares", 0),
    F("quota", "Quota", 0),
    F("period", "Period", 0),
    F("realtimeRuntime", "RealtimeRuntime", 0),
    F("realtimePeriod", "RealtimePeriod", 0),
    F("cpus", "Cpus", 0),
    F("mems", "Mems", 0),
};

static const oci_field pids_fields[] = {
    F("limit", "Limit", F_ALWAYS),
};

static const oci_field blockio_fields[] = {
    F("weight", "Weight", 0),
    F("leafWeight", "LeafWeight", 0),
    F("weightDevice", "WeightDevice", 0),
    F("throttleReadBpsDevice", "ThrottleReadBpsDevice", 0),
    F("throttleWriteBpsDevice", "ThrottleWriteBpsDevice", 0),
    F("throttleReadIOPSDevice", "ThrottleReadIOPSDevice", 0),
    F("throttleWriteIOPSDevice", "ThrottleWriteIOPSDevice", 0),
};

static const oci_field weight_device_fields[] = {
    F("major", "Major", F_ALWAYS),
    F("minor", "Minor", F_ALWAYS),
    F("weight", "Weight", 0),
    F("leafWeight", "LeafWeight", 0),
};

static const oci_field throttle_device_fields[] = {
    F("major", "Major", F_ALWAYS),
    F("minor", "Minor", F_ALWAYS),
    F("rate", "Rate", F_ALWAYS),
};

static const oci_field hugepage_fields[] = {
    F("pageSize", "Pagesize", F_ALWAYS),
    F("limit", "Limit", F_ALWAYS),
};

static const oci_field network_fields[] = {
    F("classID", "ClassID", 0),
    F("priorities", "Priorities", 0),
};

static const oci_field priority_fields[] = {
    F("name", "Name", F_ALWAYS),
    F("priority", "Priority", F_ALWAYS),
};

static const oci_field namespace_fields[] = {
    F("type", "Type", F_ALWAYS),
    F("path", "Path", 0),
};

static const oci_field device_fields[] = {
    F("path", "Path", F_ALWAYS),         F("type", "Type", F_ALWAYS),
    F("major", "Major", F_ALWAYS),       F("minor", "Minor", F_ALWAYS),
    F("fileMode", "FileMode", F_ALWAYS), F("uid", "UID", F_ALWAYS),
    F("gid", "GID", F_ALWAYS),
};

static const oci_field seccomp_fields[] = {
    F("defaultAction", "DefaultAction", F_ALWAYS),
    F("architectures", "Architectures", 0),
    F("flags", "Flags", 0),
    F("syscalls", "Syscalls", 0),
};

static const oci_field syscall_fields[] = {
    F("names", "Names", F_ALWAYS),
    F("action", "Action", F_ALWAYS),
    F("errnoRet", "errnoret", 0),
    F("args", "Args", 0),
};

static const oci_field seccomp_arg_fields[] = {
    F("index", "Index", F_ALWAYS),
    F("value", "Value", F_ALWAYS),
    F("valueTwo", "ValueTwo", 0),
    F("op", "Op", F_ALWAYS),
};

static const oci_field intel_rdt_fields[] = {
    F("l3CacheSchema", "L3CacheSchema", 0),
};

static const oci_msg oci_msgs[] = {
    MSG(grpc__spec__descriptor, spec_fields),
    MSG(grpc__process__descriptor, process_fields),
    MSG(grpc__box__descriptor, box_fields),
    MSG(grpc__user__descriptor, user_fields),
    MSG(grpc__linux_capabilities__descriptor, capabilities_fields),
    MSG(grpc__posixrlimit__descriptor, rlimit_fields),
    MSG(grpc__root__descriptor, root_fields),
    MSG(grpc__mount__descriptor, mount_fields),
    MSG(grpc__hooks__descriptor, hooks_fields),
    MSG(grpc__hook__descriptor, hook_fields),
    MSG(grpc__linux__descriptor, linux_fields),
    MSG(grpc__linux_idmapping__descriptor, idmapping_fields),
    MSG(grpc__linux_resources__descriptor, resources_fields),
    MSG(grpc__linux_device_cgroup__descriptor, device_cgroup_fields),
    MSG(grpc__linux_memory__descriptor, memory_fields),
    MSG(grpc__linux_cpu__descriptor, cpu_fields),
    MSG(grpc__linux_pids__descriptor, pids_fields),
    MSG(grpc__linux_block_io__descriptor, blockio_fields),
    MSG(grpc__linux_weight_device__descriptor, weight_device_fields),
    MSG(grpc__linux_throttle_device__descriptor, throttle_device_fields),
    MSG(grpc__linux_hugepage_limit__descriptor, hugepage_fields),
    MSG(grpc__linux_network__descriptor, network_fields),
    MSG(grpc__linux_interface_priority__descriptor, priority_fields),
    MSG(grpc__linux_namespace__descriptor, namespace_fields),
    MSG(grpc__linux_device__descriptor, device_fields),
    MSG(grpc__linux_seccomp__descriptor, seccomp_fields),
    MSG(grpc__linux_syscall__descriptor, syscall_fields),
    MSG(grpc__linux_seccomp_arg__descriptor, seccomp_arg_fields),
    MSG(grpc__linux_intel_rdt__descriptor, intel_rdt_fields),
};

/* ---- helpers ------------------------------------------------------------------------- */

static const oci_msg *
msg_lookup(const ProtobufCMessageDescriptor *desc)
{
    for (size_t i = 0; i < ELEMENTSOF(oci_msgs); i++)
        if (oci_msgs[i].desc == desc)
            return &oci_msgs[i];
    assert(!"message without a field table");
    abort();
}

static const ProtobufCFieldDescriptor *
field_desc(const oci_msg *m, const oci_field *f)
{
    const ProtobufCFieldDescriptor *fd =
        protobuf_c_message_descriptor_get_field_by_name(m->desc, f->proto);
    assert(fd); /* the tables name fields of oci.proto */
    if (!fd)
        abort();
    return fd;
}

#define MEMBER(msg, offset) ((void *)((char *)(msg) + (offset)))

/* jansson returns NULL only on OOM for these constructors: abort, like cc_xmalloc. */
static json_t *
jcheck(json_t *v)
{
    if (!v)
        abort();
    return v;
}

static void
message_free(ProtobufCMessage *m)
{
    if (m)
        protobuf_c_message_free_unpacked(m, NULL);
}
CC_DEFINE_CLEANUP(ProtobufCMessage, message_free)

static ProtobufCMessage *
message_new(const ProtobufCMessageDescriptor *desc)
{
    ProtobufCMessage *m = cc_xmalloc(desc->sizeof_message);
    desc->message_init(m);
    return m;
}

static bool
key_needs_quoting(const char *key)
{
    return !*key || strpbrk(key, ".[]\"") != NULL;
}

/* "<prefix>.<key>", or "<prefix>[\"<key>\"]" (\" and \\ escaped) when key needs quoting. */
static char *
path_key(const char *prefix, const char *key)
{
    if (!key_needs_quoting(key))
        return *prefix ? cc_xasprintf("%s.%s", prefix, key) : cc_xstrdup(key);

    size_t plen = strlen(prefix), klen = strlen(key);
    char *s = cc_xmalloc(plen + 2 * klen + 5), *p = s;
    memcpy(p, prefix, plen);
    p += plen;
    *p++ = '[';
    *p++ = '"';
    for (const char *k = key; *k; k++) {
        if (*k == '"' || *k == '\\')
            *p++ = '\\';
        *p++ = *k;
    }
    *p++ = '"';
    *p++ = ']';
    *p = '\0';
    return s;
}

static char *
path_index(const char *prefix, size_t i)
{
    return cc_xasprintf("%s[%zu]", prefix, i);
}

static int
too_many(cc_error **err, const char *name, size_t n)
{
    if (n <= CC_OCI_MAX_ELEMENTS)
        return 0;
    return cc_error_msg(err, -E2BIG, "field '%s': %zu elements, more than %d", name, n,
                        CC_OCI_MAX_ELEMENTS);
}

/* ---- proto -> JSON ------------------------------------------------------------------- */

static int msg_to_json(const oci_msg *m, const ProtobufCMessage *msg, const char *path,
                       json_t **ret, cc_error **err);

static int
string_to_json(const char *s, const char *name, json_t **ret, cc_error **err)
{
    json_t *v = json_string(s ? s : "");
    if (!v)
        return cc_error_msg(err, -EINVAL, "field '%s': string is not valid UTF-8", name);
    *ret = v;
    return 0;
}

/* Whether the scalar at p is the proto3 default (unset). */
static bool
scalar_is_zero(const ProtobufCFieldDescriptor *fd, const void *p)
{
    switch (fd->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        return !s || !*s;
    }
    case PROTOBUF_C_TYPE_BOOL:
        return !*(const protobuf_c_boolean *)p;
    case PROTOBUF_C_TYPE_UINT32:
        return *(const uint32_t *)p == 0;
    case PROTOBUF_C_TYPE_INT64:
        return *(const int64_t *)p == 0;
    case PROTOBUF_C_TYPE_UINT64:
        return *(const uint64_t *)p == 0;
    case PROTOBUF_C_TYPE_MESSAGE:
        return *(void *const *)p == NULL;
    default:
        abort(); /* oci.proto uses no other type */
    }
}

/* One value (a singular field or one element of a repeated one) at p. */
static int
value_to_json(const ProtobufCFieldDescriptor *fd, const void *p, const char *name, json_t **ret,
              cc_error **err)
{
    switch (fd->type) {
    case PROTOBUF_C_TYPE_STRING:
        return string_to_json(*(char *const *)p, name, ret, err);
    case PROTOBUF_C_TYPE_BOOL:
        *ret = jcheck(json_boolean(*(const protobuf_c_boolean *)p));
        return 0;
    case PROTOBUF_C_TYPE_UINT32:
        *ret = jcheck(json_integer(*(const uint32_t *)p));
        return 0;
    case PROTOBUF_C_TYPE_INT64:
        *ret = jcheck(json_integer(*(const int64_t *)p));
        return 0;
    case PROTOBUF_C_TYPE_UINT64: {
        uint64_t u = *(const uint64_t *)p;
        if (u > INT64_MAX)
            return cc_error_msg(err, -ERANGE, "field '%s': %" PRIu64 " does not fit a JSON integer",
                                name, u);
        *ret = jcheck(json_integer((json_int_t)u));
        return 0;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *sub = *(ProtobufCMessage *const *)p;
        const ProtobufCMessageDescriptor *desc = fd->descriptor;
        if (sub)
            return msg_to_json(msg_lookup(desc), sub, name, ret, err);
        /* a required sub-object the proto does not have: write its defaults */
        _cleanup_(message_freep) ProtobufCMessage *def = message_new(desc);
        return msg_to_json(msg_lookup(desc), def, name, ret, err);
    }
    default:
        abort();
    }
}

static int
map_to_json(const ProtobufCFieldDescriptor *fd, ProtobufCMessage *const *entries, size_t n,
            const char *name, json_t **ret, cc_error **err)
{
    const ProtobufCMessageDescriptor *edesc = fd->descriptor;
    const ProtobufCFieldDescriptor *kfd =
        protobuf_c_message_descriptor_get_field_by_name(edesc, "key");
    const ProtobufCFieldDescriptor *vfd =
        protobuf_c_message_descriptor_get_field_by_name(edesc, "value");
    assert(kfd && vfd && kfd->type == PROTOBUF_C_TYPE_STRING &&
           vfd->type == PROTOBUF_C_TYPE_STRING);

    _cleanup_json_ json_t *obj = jcheck(json_object());
    for (size_t i = 0; i < n; i++) {
        const char *key = *(char *const *)MEMBER(entries[i], kfd->offset);
        const char *value = *(char *const *)MEMBER(entries[i], vfd->offset);
        key = key ? key : "";
        _cleanup_free_ char *kname = path_key(name, key);
        _cleanup_json_ json_t *k = NULL, *v = NULL;
        int r = string_to_json(key, kname, &k, err); /* checks the key's UTF-8 */
        if (r < 0)
            return r;
        r = string_to_json(value, kname, &v, err);
        if (r < 0)
            return r;
        if (json_object_set_new_nocheck(obj, key, TAKE_PTR(v)) < 0)
            abort();
    }
    *ret = TAKE_PTR(obj);
    return 0;
}

static size_t
elem_size(const ProtobufCFieldDescriptor *fd)
{
    switch (fd->type) {
    case PROTOBUF_C_TYPE_UINT32:
        return sizeof(uint32_t);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_UINT64:
        return sizeof(uint64_t);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(void *);
    default:
        abort();
    }
}

static int
repeated_to_json(const ProtobufCFieldDescriptor *fd, const void *array, size_t n, const char *name,
                 json_t **ret, cc_error **err)
{
    size_t size = elem_size(fd);
    _cleanup_json_ json_t *a = jcheck(json_array());
    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char *ename = path_index(name, i);
        json_t *v = NULL;
        int r = value_to_json(fd, (const char *)array + i * size, ename, &v, err);
        if (r < 0)
            return r;
        if (json_array_append_new(a, v) < 0)
            abort();
    }
    *ret = TAKE_PTR(a);
    return 0;
}

/* The JSON for field f of msg in *ret, or NULL when it is to be omitted. */
static int
field_to_json(const oci_msg *m, const oci_field *f, const ProtobufCMessage *msg, const char *path,
              json_t **ret, cc_error **err)
{
    const ProtobufCFieldDescriptor *fd = field_desc(m, f);
    const void *p = MEMBER(msg, fd->offset);
    _cleanup_free_ char *name = path_key(path, f->json);

    *ret = NULL;
    if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
        size_t n = *(const size_t *)MEMBER(msg, fd->quantifier_offset);
        const void *array = *(void *const *)p;
        if (n == 0 && !(f->flags & F_ALWAYS))
            return 0;
        if (f->flags & F_MAP)
            return map_to_json(fd, array, n, name, ret, err);
        return repeated_to_json(fd, array, n, name, ret, err);
    }
    if (f->flags & F_WILDCARD) {
        assert(fd->type == PROTOBUF_C_TYPE_INT64);
        if (*(const int64_t *)p == -1)
            return 0;
    } else if (!(f->flags & F_ALWAYS) && scalar_is_zero(fd, p)) {
        return 0;
    }
    return value_to_json(fd, p, name, ret, err);
}

static int
msg_to_json(const oci_msg *m, const ProtobufCMessage *msg, const char *path, json_t **ret,
            cc_error **err)
{
    assert(msg->descriptor == m->desc);
    _cleanup_json_ json_t *obj = jcheck(json_object());
    for (size_t i = 0; i < m->n_fields; i++) {
        json_t *v = NULL;
        int r = field_to_json(m, &m->fields[i], msg, path, &v, err);
        if (r < 0)
            return r;
        if (v && json_object_set_new_nocheck(obj, m->fields[i].json, v) < 0)
            abort();
    }
    *ret = TAKE_PTR(obj);
    return 0;
}

static int
to_json(const ProtobufCMessageDescriptor *desc, const ProtobufCMessage *msg, json_t **ret,
        cc_error **err)
{
    if (!msg)
        return cc_error_msg(err, -EINVAL, "no message to convert");
    if (msg->descriptor != desc)
        return cc_error_msg(err, -EINVAL, "expected message %s, got %s", desc->name,
                            msg->descriptor ? msg->descriptor->name : "(none)");
    json_t *obj = NULL;
    int r = msg_to_json(msg_lookup(desc), msg, "", &obj, err);
    if (r < 0)
        return r;
    *ret = obj;
    return 0;
}

int
cc_oci_spec_to_json(const Grpc__Spec *spec, json_t **ret, cc_error **err)
{
    return to_json(&grpc__spec__descriptor, spec ? &spec->base : NULL, ret, err);
}

int
cc_oci_process_to_json(const Grpc__Process *p, json_t **ret, cc_error **err)
{
    return to_json(&grpc__process__descriptor, p ? &p->base : NULL, ret, err);
}

/* ---- JSON -> proto ------------------------------------------------------------------- */

static int msg_from_json(const oci_msg *m, const json_t *obj, const char *path,
                         ProtobufCMessage **ret, cc_error **err);

/* One value from v into the slot p (a singular field or one element of a repeated one). */
static int
value_from_json(const ProtobufCFieldDescriptor *fd, void *p, const json_t *v, const char *name,
                cc_error **err)
{
    int r;

    switch (fd->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = NULL;
        r = cc_json_as_string(v, name, &s, err);
        if (r < 0)
            return r;
        char **slot = p;
        if (*slot && *slot != fd->default_value)
            free(*slot);
        *slot = cc_xstrdup(s);
        return 0;
    }
    case PROTOBUF_C_TYPE_BOOL: {
        bool b = false;
        r = cc_json_as_bool(v, name, &b, err);
        if (r >= 0)
            *(protobuf_c_boolean *)p = b;
        return r;
    }
    case PROTOBUF_C_TYPE_UINT32:
        return cc_json_as_uint32(v, name, p, err);
    case PROTOBUF_C_TYPE_INT64:
        return cc_json_as_int64(v, name, p, err);
    case PROTOBUF_C_TYPE_UINT64:
        return cc_json_as_uint64(v, name, p, err);
    case PROTOBUF_C_TYPE_MESSAGE: {
        json_t *obj = NULL;
        r = cc_json_as_object(v, name, &obj, err);
        if (r < 0)
            return r;
        ProtobufCMessage *sub = NULL;
        r = msg_from_json(msg_lookup(fd->descriptor), obj, name, &sub, err);
        if (r < 0)
            return r;
        message_free(*(ProtobufCMessage **)p);
        *(ProtobufCMessage **)p = sub;
        return 0;
    }
    default:
        abort();
    }
}

/*
 * A JSON array into the repeated field at p (array pointer) / count. The count grows with
 * each element converted, so a failure leaves a message protobuf-c can free.
 */
static int
repeated_from_json(const ProtobufCFieldDescriptor *fd, void **array, size_t *count, const json_t *v,
                   const char *name, cc_error **err)
{
    json_t *a = NULL;
    int r = cc_json_as_array(v, name, &a, err);
    if (r < 0)
        return r;
    size_t n = json_array_size(a);
    r = too_many(err, name, n);
    if (r < 0)
        return r;
    if (n == 0)
        return 0;

    size_t size = elem_size(fd);
    *array = cc_xzalloc(n * size);
    *count = 0;
    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char *ename = path_index(name, i);
        json_t *e = json_array_get(a, i);
        if (json_is_null(e)) /* an element cannot be absent */
            return cc_error_msg(err, -EINVAL, "field '%s': expected %s, got null", ename,
                                fd->type == PROTOBUF_C_TYPE_MESSAGE  ? "object"
                                : fd->type == PROTOBUF_C_TYPE_STRING ? "string"
                                                                     : "integer");
        r = value_from_json(fd, (char *)*array + i * size, e, ename, err);
        if (r < 0)
            return r;
        (*count)++;
    }
    return 0;
}

static int
map_from_json(const ProtobufCFieldDescriptor *fd, void **array, size_t *count, const json_t *v,
              const char *name, cc_error **err)
{
    const ProtobufCMessageDescriptor *edesc = fd->descriptor;
    const ProtobufCFieldDescriptor *kfd =
        protobuf_c_message_descriptor_get_field_by_name(edesc, "key");
    const ProtobufCFieldDescriptor *vfd =
        protobuf_c_message_descriptor_get_field_by_name(edesc, "value");
    assert(kfd && vfd);

    json_t *obj = NULL;
    int r = cc_json_as_object(v, name, &obj, err);
    if (r < 0)
        return r;
    size_t n = json_object_size(obj);
    r = too_many(err, name, n);
    if (r < 0)
        return r;
    if (n == 0)
        return 0;

    ProtobufCMessage **entries = cc_xzalloc(n * sizeof(*entries));
    *array = entries;
    *count = 0;
    const char *key;
    size_t key_len;
    json_t *value;
    json_object_keylen_foreach(obj, key, key_len, value)
    {
        _cleanup_free_ char *kname = path_key(name, key);
        if (strlen(key) != key_len)
            return cc_error_msg(err, -EINVAL, "field '%s': key contains a NUL byte", kname);
        ProtobufCMessage *entry = message_new(edesc);
        entries[(*count)++] = entry;
        *(char **)MEMBER(entry, kfd->offset) = cc_xstrdup(key);
        r = value_from_json(vfd, MEMBER(entry, vfd->offset), value, kname, err);
        if (r == -ENOENT) /* null value */
            return cc_error_msg(err, -EINVAL, "field '%s': expected string, got null", kname);
        if (r < 0)
            return r;
    }
    return 0;
}

static int
field_from_json(const ProtobufCFieldDescriptor *fd, unsigned flags, ProtobufCMessage *msg,
                const json_t *v, const char *name, cc_error **err)
{
    void *p = MEMBER(msg, fd->offset);

    if (fd->label != PROTOBUF_C_LABEL_REPEATED)
        return value_from_json(fd, p, v, name, err);

    size_t *count = MEMBER(msg, fd->quantifier_offset);
    if (flags & F_MAP)
        return map_from_json(fd, p, count, v, name, err);
    return repeated_from_json(fd, p, count, v, name, err);
}

static int
msg_from_json(const oci_msg *m, const json_t *obj, const char *path, ProtobufCMessage **ret,
              cc_error **err)
{
    _cleanup_(message_freep) ProtobufCMessage *msg = message_new(m->desc);

    for (size_t i = 0; i < m->n_fields; i++) {
        const oci_field *f = &m->fields[i];
        const ProtobufCFieldDescriptor *fd = field_desc(m, f);
        if (f->flags & F_WILDCARD)
            *(int64_t *)MEMBER(msg, fd->offset) = -1;

        const json_t *v = json_object_get(obj, f->json);
        if (!v || json_is_null(v))
            continue;
        _cleanup_free_ char *name = path_key(path, f->json);
        int r = field_from_json(fd, f->flags, msg, v, name, err);
        if (r < 0)
            return r;
    }
    *ret = TAKE_PTR(msg);
    return 0;
}

static int
from_json(const ProtobufCMessageDescriptor *desc, const json_t *json, ProtobufCMessage **ret,
          cc_error **err)
{
    json_t *obj = NULL;
    int r = cc_json_as_object(json, NULL, &obj, err);
    if (r == -ENOENT)
        return cc_error_msg(err, -EINVAL, "expected object, got %s", cc_json_type_name(json));
    if (r < 0)
        return r;
    return msg_from_json(msg_lookup(desc), obj, "", ret, err);
}

int
cc_oci_spec_from_json(const json_t *json, Grpc__Spec **ret, cc_error **err)
{
    ProtobufCMessage *m = NULL;
    int r = from_json(&grpc__spec__descriptor, json, &m, err);
    if (r < 0)
        return r;
    *ret = (Grpc__Spec *)m;
    return 0;
}

int
cc_oci_process_from_json(const json_t *json, Grpc__Process **ret, cc_error **err)
{
    ProtobufCMessage *m = NULL;
    int r = from_json(&grpc__process__descriptor, json, &m, err);
    if (r < 0)
        return r;
    *ret = (Grpc__Process *)m;
    return 0;
}
