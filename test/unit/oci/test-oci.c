/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
/* cmocka.h needs these first (clang-format keeps separate blocks apart) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "json.h"
#include "oci.h"
#include "util.h"

static void
spec_free(Grpc__Spec *s)
{
    if (s)
        protobuf_c_message_free_unpacked(&s->base, NULL);
}
CC_DEFINE_CLEANUP(Grpc__Spec, spec_free)
#define _cleanup_spec_ _cleanup_(spec_freep)

static void
process_free(Grpc__Process *p)
{
    if (p)
        protobuf_c_message_free_unpacked(&p->base, NULL);
}
CC_DEFINE_CLEANUP(Grpc__Process, process_free)

static json_t *
load_data(const char *name)
{
    _cleanup_free_ char *path = cc_xasprintf("%s/oci/%s", CLOAK_TEST_DATA_DIR, name);
    _cleanup_error_ cc_error *err = NULL;
    json_t *j = NULL;
    int r = cc_json_load_file(path, CC_JSON_MAX_SIZE, &j, &err);
    if (r < 0)
        fail_msg("%s", cc_error_message(err));
    return j;
}

static json_t *
parse(const char *text)
{
    json_t *j = NULL;
    _cleanup_error_ cc_error *err = NULL;
    if (cc_json_load_buffer(text, strlen(text), "test", CC_JSON_MAX_SIZE, &j, &err) < 0)
        fail_msg("%s: %s", text, cc_error_message(err));
    return j;
}

static void
assert_json_equal(const json_t *want, const json_t *got)
{
    if (json_equal(want, got))
        return;
    _cleanup_free_ char *a = json_dumps(want, JSON_SORT_KEYS);
    _cleanup_free_ char *b = json_dumps(got, JSON_SORT_KEYS);
    fail_msg("JSON differs\nwant: %s\ngot:  %s", a, b);
}

static Grpc__Spec *
from_json_ok(const json_t *j)
{
    _cleanup_error_ cc_error *err = NULL;
    Grpc__Spec *spec = NULL;
    if (cc_oci_spec_from_json(j, &spec, &err) < 0)
        fail_msg("from_json: %s", cc_error_message(err));
    assert_non_null(spec);
    return spec;
}

static json_t *
to_json_ok(const Grpc__Spec *spec)
{
    _cleanup_error_ cc_error *err = NULL;
    json_t *j = NULL;
    if (cc_oci_spec_to_json(spec, &j, &err) < 0)
        fail_msg("to_json: %s", cc_error_message(err));
    assert_non_null(j);
    return j;
}

/* JSON -> proto -> JSON, then proto -> wire -> proto -> JSON: both must give want. */
static void
assert_round_trip(const json_t *in, const json_t *want)
{
    _cleanup_spec_ Grpc__Spec *spec = from_json_ok(in);
    _cleanup_json_ json_t *out = to_json_ok(spec);
    assert_json_equal(want, out);

    size_t len = protobuf_c_message_get_packed_size(&spec->base);
    _cleanup_free_ uint8_t *buf = cc_xmalloc(len ? len : 1);
    assert_int_equal(protobuf_c_message_pack(&spec->base, buf), len);
    _cleanup_spec_ Grpc__Spec *unpacked = grpc__spec__unpack(NULL, len, buf);
    assert_non_null(unpacked);
    _cleanup_json_ json_t *again = to_json_ok(unpacked);
    assert_json_equal(want, again);
}

static void
test_round_trip_file(const char *name)
{
    _cleanup_json_ json_t *in = load_data(name);
    assert_round_trip(in, in);
}

static void
test_cri_container(void **state)
{
    (void)state;
    test_round_trip_file("cri-container.json");
}

static void
test_cri_sandbox(void **state)
{
    (void)state;
    test_round_trip_file("cri-sandbox.json");
}

static void
test_full(void **state)
{
    (void)state;
    test_round_trip_file("full.json");
}

/* Every field of every message reachable from m is set (non-zero, non-empty). */
static void
assert_all_set(const ProtobufCMessage *m, const char *where)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[i];
        if (cc_streq(fd->name, "Solaris") || cc_streq(fd->name, "Windows"))
            continue;
        const char *p = (const char *)m + fd->offset;
        if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)((const char *)m + fd->quantifier_offset);
            if (n == 0)
                fail_msg("%s.%s: empty", where, fd->name);
            if (fd->type == PROTOBUF_C_TYPE_MESSAGE)
                for (size_t k = 0; k < n; k++)
                    assert_all_set((*(ProtobufCMessage *const *const *)p)[k], fd->name);
            continue;
        }
        bool set = false;
        switch (fd->type) {
        case PROTOBUF_C_TYPE_STRING:
            set = **(char *const *)p != '\0';
            break;
        case PROTOBUF_C_TYPE_BOOL:
            set = *(const protobuf_c_boolean *)p;
            break;
        case PROTOBUF_C_TYPE_UINT32:
            set = *(const uint32_t *)p != 0;
            break;
        case PROTOBUF_C_TYPE_INT64:
        case PROTOBUF_C_TYPE_UINT64:
            set = *(const uint64_t *)p != 0;
            break;
        case PROTOBUF_C_TYPE_MESSAGE:
            set = *(void *const *)p != NULL;
            if (set)
                assert_all_set(*(ProtobufCMessage *const *)p, fd->name);
            break;
        default:
            fail_msg("%s.%s: unexpected type", where, fd->name);
        }
        if (!set)
            fail_msg("%s.%s: not set from full.json", where, fd->name);
    }
}

static void
test_full_covers_every_field(void **state)
{
    (void)state;
    _cleanup_json_ json_t *in = load_data("full.json");
    _cleanup_spec_ Grpc__Spec *spec = from_json_ok(in);
    assert_all_set(&spec->base, "Spec");
}

static void
test_spot_checks(void **state)
{
    (void)state;
    _cleanup_json_ json_t *in = load_data("cri-container.json");
    _cleanup_spec_ Grpc__Spec *s = from_json_ok(in);

    assert_string_equal(s->version, "1.0.2-dev");
    assert_int_equal(s->process->n_args, 4);
    assert_string_equal(s->process->args[3], "--log-level=info");
    assert_int_equal(s->process->user->uid, 1000);
    assert_int_equal(s->process->user->n_additionalgids, 2);
    assert_int_equal(s->process->user->additionalgids[1], 2000);
    assert_string_equal(s->process->cwd, "/srv");
    assert_int_equal(s->process->oomscoreadj, 969);
    assert_true(s->process->nonewprivileges);
    assert_int_equal(s->process->capabilities->n_bounding, 14);
    assert_int_equal(s->process->capabilities->n_inheritable, 0);
    assert_string_equal(s->process->rlimits[0]->type, "RLIMIT_NOFILE");
    assert_int_equal(s->process->rlimits[0]->hard, 1048576);
    assert_string_equal(s->root->path, "rootfs");
    assert_false(s->root->readonly);
    assert_int_equal(s->n_mounts, 12);
    assert_string_equal(s->mounts[6]->destination, "/etc/hosts");
    assert_string_equal(s->mounts[6]->type, "bind");
    assert_string_equal(s->mounts[6]->options[2], "rw");
    assert_null(s->hooks);
    assert_int_equal(s->n_annotations, 7);
    bool found = false;
    for (size_t i = 0; i < s->n_annotations; i++)
        if (cc_streq(s->annotations[i]->key, "io.kubernetes.cri.container-type"))
            found = cc_streq(s->annotations[i]->value, "container");
    assert_true(found);

    Grpc__Linux *l = s->linux;
    assert_non_null(l->resources);
    assert_int_equal(l->resources->n_devices, 5);
    assert_false(l->resources->devices[0]->allow);
    assert_int_equal(l->resources->devices[0]->major, -1); /* wildcard */
    assert_int_equal(l->resources->devices[0]->minor, -1);
    assert_string_equal(l->resources->devices[0]->type, "");
    assert_int_equal(l->resources->devices[3]->major, 136);
    assert_int_equal(l->resources->devices[3]->minor, -1);
    assert_int_equal(l->resources->devices[4]->minor, 200);
    assert_int_equal(l->resources->memory->limit, 268435456);
    assert_int_equal(l->resources->memory->swap, 0);
    assert_int_equal(l->resources->cpu->shares, 256);
    assert_int_equal(l->resources->cpu->quota, 50000);
    assert_int_equal(l->resources->cpu->period, 100000);
    assert_null(l->resources->pids);
    assert_int_equal(l->n_namespaces, 5);
    assert_string_equal(l->namespaces[4]->type, "network");
    assert_string_equal(l->namespaces[4]->path,
                        "/var/run/netns/cni-0f3c2a1b-7e6d-4c5b-9a8f-1e2d3c4b5a69");
    assert_string_equal(l->seccomp->defaultaction, "SCMP_ACT_ERRNO");
    assert_int_equal(l->seccomp->n_syscalls, 5);
    assert_int_equal(l->seccomp->syscalls[2]->args[0]->value, 4294967295u);
    assert_string_equal(l->seccomp->syscalls[3]->args[0]->op, "SCMP_CMP_MASKED_EQ");
    assert_int_equal(l->seccomp->syscalls[4]->errnoret, 38);
    assert_int_equal(l->n_maskedpaths, 9);
    assert_int_equal(l->n_readonlypaths, 6);
    assert_string_equal(l->readonlypaths[5], "/proc/sysrq-trigger");
}

/* Documented differences: optional zeros vanish, a few required/Kata fields appear. */
static void
test_normalisation(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"{}", "{\"ociVersion\": \"\"}"},
        {"{\"ociVersion\": \"1\", \"process\": {}}",
         "{\"ociVersion\": \"1\", \"process\": {\"user\": {\"uid\": 0, \"gid\": 0}, \"cwd\": \"\","
         " \"oomScoreAdj\": 0}}"},
        {"{\"ociVersion\": \"1\", \"hostname\": \"\", \"mounts\": [], \"annotations\": {},"
         " \"process\": {\"terminal\": false, \"user\": {\"uid\": 0, \"gid\": 0,"
         " \"additionalGids\": []}, \"args\": [], \"cwd\": \"/\", \"oomScoreAdj\": 0}}",
         "{\"ociVersion\": \"1\", \"process\": {\"user\": {\"uid\": 0, \"gid\": 0}, \"cwd\": \"/\","
         " \"oomScoreAdj\": 0}}"},
        {"{\"ociVersion\": \"1\", \"linux\": {\"resources\": {\"memory\": {\"limit\": 0,"
         " \"swappiness\": 0, \"disableOOMKiller\": false}, \"cpu\": {\"shares\": 0},"
         " \"devices\": [{\"allow\": true, \"major\": 0, \"minor\": null}]},"
         " \"devices\": [{\"path\": \"/dev/x\", \"type\": \"c\", \"major\": 1, \"minor\": 2}],"
         " \"seccomp\": {\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"a\"],"
         " \"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": 0, \"args\": [{\"index\": 0, \"value\": 0,"
         " \"valueTwo\": 0, \"op\": \"SCMP_CMP_EQ\"}]}]}}}",
         "{\"ociVersion\": \"1\", \"linux\": {\"resources\": {\"memory\": {}, \"cpu\": {},"
         " \"devices\": [{\"allow\": true, \"major\": 0}]},"
         " \"devices\": [{\"path\": \"/dev/x\", \"type\": \"c\", \"major\": 1, \"minor\": 2,"
         " \"fileMode\": 0, \"uid\": 0, \"gid\": 0}],"
         " \"seccomp\": {\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"a\"],"
         " \"action\": \"SCMP_ACT_ERRNO\", \"args\": [{\"index\": 0, \"value\": 0,"
         " \"op\": \"SCMP_CMP_EQ\"}]}]}}}"},
        /* unknown fields and Solaris/Windows/VM sections are dropped */
        {"{\"ociVersion\": \"1\", \"vm\": {\"kernel\": {\"path\": \"/k\"}}, \"windows\": {},"
         " \"process\": {\"cwd\": \"/\", \"oomScoreAdj\": 1, \"user\": {\"uid\": 1, \"gid\": 1,"
         " \"umask\": 18}, \"ioPriority\": {\"class\": \"IOPRIO_CLASS_RT\"}}}",
         "{\"ociVersion\": \"1\", \"process\": {\"cwd\": \"/\", \"oomScoreAdj\": 1, \"user\":"
         " {\"uid\": 1, \"gid\": 1}}}"},
    };
    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        _cleanup_json_ json_t *in = parse(cases[i].in);
        _cleanup_json_ json_t *want = parse(cases[i].out);
        assert_round_trip(in, want);
    }
}

static void
assert_from_json_fails(const char *text, int code, const char *message)
{
    _cleanup_json_ json_t *in = parse(text);
    _cleanup_error_ cc_error *err = NULL;
    Grpc__Spec *spec = (Grpc__Spec *)0x1;
    int r = cc_oci_spec_from_json(in, &spec, &err);
    if (r != code)
        fail_msg("%s: got %d (%s), want %d", text, r, cc_error_message(err), code);
    assert_ptr_equal(spec, (Grpc__Spec *)0x1);
    assert_non_null(err);
    assert_int_equal(err->code, code);
    assert_string_equal(cc_error_message(err), message);
}

static void
test_errors(void **state)
{
    (void)state;
    static const struct {
        const char *in, *message;
    } cases[] = {
        {"[]", "expected object, got array"},
        {"{\"ociVersion\": 1}", "field 'ociVersion': expected string, got integer"},
        {"{\"process\": {\"args\": [\"a\", \"b\", 3]}}",
         "field 'process.args[2]': expected string, got integer"},
        {"{\"process\": {\"user\": {\"uid\": 4294967296}}}",
         "field 'process.user.uid': 4294967296 out of range [0, 4294967295]"},
        {"{\"process\": {\"user\": {\"additionalGids\": [1, -1]}}}",
         "field 'process.user.additionalGids[1]': -1 out of range [0, 4294967295]"},
        {"{\"process\": {\"terminal\": 1}}",
         "field 'process.terminal': expected boolean, got integer"},
        {"{\"process\": {\"rlimits\": [{\"type\": \"RLIMIT_NOFILE\", \"hard\": 1.5}]}}",
         "field 'process.rlimits[0].hard': expected integer, got real"},
        {"{\"mounts\": {}}", "field 'mounts': expected array, got object"},
        {"{\"mounts\": [null]}", "field 'mounts[0]': expected object, got null"},
        {"{\"mounts\": [{\"destination\": \"/a\"}, {\"options\": [\"ro\", false]}]}",
         "field 'mounts[1].options[1]': expected string, got boolean"},
        {"{\"linux\": \"x\"}", "field 'linux': expected object, got string"},
        {"{\"linux\": {\"resources\": {\"devices\": [{\"allow\": \"yes\"}]}}}",
         "field 'linux.resources.devices[0].allow': expected boolean, got string"},
        {"{\"linux\": {\"seccomp\": {\"syscalls\": [{\"names\": [\"a\"], \"args\": [{\"index\": 0},"
         " {\"index\": -1}]}]}}}",
         "field 'linux.seccomp.syscalls[0].args[1].index': -1 out of range [0, "
         "9223372036854775807]"},
        {"{\"linux\": {\"resources\": {\"blockIO\": {\"throttleReadBpsDevice\": [{\"major\": "
         "\"8\"}]}}}}",
         "field 'linux.resources.blockIO.throttleReadBpsDevice[0].major': expected integer, got "
         "string"},
        {"{\"annotations\": {\"io.kubernetes.cri.sandbox-id\": 1}}",
         "field 'annotations[\"io.kubernetes.cri.sandbox-id\"]': expected string, got integer"},
        {"{\"annotations\": {\"plain\": null}}",
         "field 'annotations.plain': expected string, got null"},
        {"{\"linux\": {\"sysctl\": [\"a=b\"]}}",
         "field 'linux.sysctl': expected object, got array"},
        {"{\"hooks\": {\"poststop\": [{\"path\": \"/x\", \"timeout\": \"5\"}]}}",
         "field 'hooks.poststop[0].timeout': expected integer, got string"},
    };
    for (size_t i = 0; i < ELEMENTSOF(cases); i++)
        assert_from_json_fails(cases[i].in, -EINVAL, cases[i].message);

    /* not even a value */
    _cleanup_error_ cc_error *err = NULL;
    Grpc__Spec *spec = NULL;
    assert_int_equal(cc_oci_spec_from_json(NULL, &spec, &err), -EINVAL);
    assert_null(spec);
}

static void
test_too_many(void **state)
{
    (void)state;
    _cleanup_json_ json_t *doc = parse("{\"process\": {\"env\": []}, \"annotations\": {}}");
    json_t *env = json_object_get(json_object_get(doc, "process"), "env");
    for (int i = 0; i < CC_OCI_MAX_ELEMENTS; i++)
        assert_int_equal(json_array_append_new(env, json_string("A=1")), 0);

    /* exactly the limit is fine */
    _cleanup_spec_ Grpc__Spec *spec = from_json_ok(doc);
    assert_int_equal(spec->process->n_env, CC_OCI_MAX_ELEMENTS);

    assert_int_equal(json_array_append_new(env, json_string("A=1")), 0);
    _cleanup_error_ cc_error *err = NULL;
    Grpc__Spec *bad = NULL;
    assert_int_equal(cc_oci_spec_from_json(doc, &bad, &err), -E2BIG);
    assert_null(bad);
    assert_string_equal(cc_error_message(err),
                        "field 'process.env': 65537 elements, more than 65536");

    json_array_clear(env);
    json_t *ann = json_object_get(doc, "annotations");
    for (int i = 0; i <= CC_OCI_MAX_ELEMENTS; i++) {
        char key[32];
        snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(json_object_set_new(ann, key, json_string("v")), 0);
    }
    err = cc_error_free(err);
    assert_int_equal(cc_oci_spec_from_json(doc, &bad, &err), -E2BIG);
    assert_string_equal(cc_error_message(err),
                        "field 'annotations': 65537 elements, more than 65536");
}

static void
test_to_json_errors(void **state)
{
    (void)state;
    _cleanup_json_ json_t *in = load_data("cri-container.json");
    _cleanup_spec_ Grpc__Spec *spec = from_json_ok(in);
    _cleanup_error_ cc_error *err = NULL;
    json_t *out = NULL;

    spec->process->rlimits[0]->hard = UINT64_MAX; /* RLIM_INFINITY */
    assert_int_equal(cc_oci_spec_to_json(spec, &out, &err), -ERANGE);
    assert_null(out);
    assert_string_equal(cc_error_message(err), "field 'process.rlimits[0].hard': "
                                               "18446744073709551615 does not fit a JSON integer");
    spec->process->rlimits[0]->hard = 1;

    free(spec->mounts[1]->options[0]);
    spec->mounts[1]->options[0] = cc_xstrdup("bad\xff");
    err = cc_error_free(err);
    assert_int_equal(cc_oci_spec_to_json(spec, &out, &err), -EINVAL);
    assert_string_equal(cc_error_message(err),
                        "field 'mounts[1].options[0]': string is not valid UTF-8");

    free(spec->annotations[0]->key);
    spec->annotations[0]->key = cc_xstrdup("k.\xc3");
    spec->mounts[1]->options[0][3] = '\0';
    err = cc_error_free(err);
    assert_int_equal(cc_oci_spec_to_json(spec, &out, &err), -EINVAL);
    assert_string_equal(cc_error_message(err),
                        "field 'annotations[\"k.\xc3\"]': string is not valid UTF-8");

    /* a message of the wrong type */
    err = cc_error_free(err);
    assert_int_equal(cc_oci_process_to_json((const Grpc__Process *)spec, &out, &err), -EINVAL);
    assert_null(out);
    assert_int_equal(cc_oci_spec_to_json(NULL, &out, NULL), -EINVAL);
}

static void
test_process(void **state)
{
    (void)state;
    _cleanup_json_ json_t *doc = load_data("full.json");
    json_t *pj = json_object_get(doc, "process");
    _cleanup_error_ cc_error *err = NULL;
    _cleanup_(process_freep) Grpc__Process *p = NULL;
    if (cc_oci_process_from_json(pj, &p, &err) < 0)
        fail_msg("%s", cc_error_message(err));
    assert_int_equal(p->consolesize->width, 80);
    assert_string_equal(p->user->username, "app");
    assert_int_equal(p->oomscoreadj, -500);

    _cleanup_json_ json_t *out = NULL;
    assert_int_equal(cc_oci_process_to_json(p, &out, &err), 0);
    assert_json_equal(pj, out);

    /* process-level paths start at the process */
    _cleanup_json_ json_t *bad = parse("{\"args\": [\"sh\", 3]}");
    Grpc__Process *q = NULL;
    assert_int_equal(cc_oci_process_from_json(bad, &q, &err), -EINVAL);
    assert_null(q);
    assert_string_equal(cc_error_message(err), "field 'args[1]': expected string, got integer");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cri_container),  cmocka_unit_test(test_cri_sandbox),
        cmocka_unit_test(test_full),           cmocka_unit_test(test_full_covers_every_field),
        cmocka_unit_test(test_spot_checks),    cmocka_unit_test(test_normalisation),
        cmocka_unit_test(test_errors),         cmocka_unit_test(test_too_many),
        cmocka_unit_test(test_to_json_errors), cmocka_unit_test(test_process),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
