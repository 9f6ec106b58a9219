/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lib/ttrpc-codec.c: headers, the hand-written envelope codec (checked against protobuf-c's
 * generated code for the same .proto, in both directions), Go's decoding rules, UTF-8 and
 * the errno <-> status table.
 */
#define _GNU_SOURCE
#include "google/rpc/status.pb-c.h"
#include "test-helpers.h"
#include "ttrpc/ttrpc.pb-c.h"

static void
test_header(void **state)
{
    uint8_t p[CC_TTRPC_HEADER_LENGTH];
    ttrpc_header h = {.length = 0x00123456, .stream_id = 0x89abcdef, .type = 2, .flags = 0x5a};
    ttrpc_header_put(p, &h);
    static const uint8_t want[] = {0x00, 0x12, 0x34, 0x56, 0x89, 0xab, 0xcd, 0xef, 0x02, 0x5a};
    assert_memory_equal(p, want, sizeof(want));
    ttrpc_header g = ttrpc_header_get(p);
    assert_int_equal(g.length, h.length);
    assert_int_equal(g.stream_id, h.stream_id);
    assert_int_equal(g.type, 2);
    assert_int_equal(g.flags, 0x5a);
}

/* Our encoder's Request, decoded by protobuf-c, and protobuf-c's, decoded by us. */
static void
test_request_both_ways(void **state)
{
    static const cc_ttrpc_kv md[] = {{"k1", "v1"}, {"", "empty-key"}, {"k3", ""}};
    cc_ttrpc_request r = {.service = "containerd.task.v2.Task",
                          .method = "Create",
                          .payload = "\x0a\x03"
                                     "abc",
                          .len = 5,
                          .timeout_usec = 3 * SECOND,
                          .metadata = md,
                          .n_metadata = 3};
    ttrpc_payload pl;
    ttrpc_payload_init(&pl, NULL, r.payload, r.len);
    size_t n = ttrpc_request_size(&r, &pl);
    uint8_t *buf = cc_xmalloc(n);
    ttrpc_request_encode(buf, &r, &pl);

    Ttrpc__Request *m = ttrpc__request__unpack(NULL, n, buf);
    assert_non_null(m);
    assert_int_equal(ttrpc__request__get_packed_size(m), n);
    assert_string_equal(m->service, "containerd.task.v2.Task");
    assert_string_equal(m->method, "Create");
    assert_int_equal(m->payload.len, 5);
    assert_memory_equal(m->payload.data,
                        "\x0a\x03"
                        "abc",
                        5);
    assert_int_equal(m->timeout_nano, 3000000000LL);
    assert_int_equal(m->n_metadata, 3);
    assert_string_equal(m->metadata[1]->value, "empty-key");
    assert_string_equal(m->metadata[2]->key, "k3");

    /* protobuf-c re-encodes it byte for byte the same. */
    uint8_t *again = cc_xmalloc(n);
    assert_int_equal(ttrpc__request__pack(m, again), n);
    assert_memory_equal(again, buf, n);

    ttrpc_request_view v;
    assert_int_equal(ttrpc_request_decode(again, n, &v, NULL), 0);
    assert_int_equal(v.service.n, strlen("containerd.task.v2.Task"));
    assert_memory_equal(v.method.p, "Create", 6);
    assert_int_equal(v.payload.n, 5);
    assert_int_equal(v.timeout_nano, 3000000000LL);
    assert_int_equal(v.n_metadata, 3);
    ttrpc_bytes keys[3], values[3];
    assert_int_equal(ttrpc_request_metadata(again, n, keys, values, 3), 3);
    assert_memory_equal(keys[0].p, "k1", 2);
    assert_int_equal(keys[1].n, 0);
    assert_int_equal(values[2].n, 0);
    ttrpc__request__free_unpacked(m, NULL);
    free(buf);
    free(again);
}

/* A protobuf message as payload is packed in place. */
static void
test_request_message_payload(void **state)
{
    Ttrpc__KeyValue kv = TTRPC__KEY_VALUE__INIT;
    kv.key = "hello";
    kv.value = "world";
    cc_ttrpc_request r = {.service = "s", .method = "m", .msg = &kv.base};
    ttrpc_payload pl;
    ttrpc_payload_init(&pl, &kv.base, NULL, 0);
    assert_int_equal(pl.len, ttrpc__key_value__get_packed_size(&kv));
    size_t n = ttrpc_request_size(&r, &pl);
    uint8_t buf[128];
    assert_true(n <= sizeof(buf));
    ttrpc_request_encode(buf, &r, &pl);
    ttrpc_request_view v;
    assert_int_equal(ttrpc_request_decode(buf, n, &v, NULL), 0);
    Ttrpc__KeyValue *got = ttrpc__key_value__unpack(NULL, v.payload.n, v.payload.p);
    assert_non_null(got);
    assert_string_equal(got->value, "world");
    ttrpc__key_value__free_unpacked(got, NULL);
    assert_int_equal(v.timeout_nano, 0);
    assert_int_equal(v.n_metadata, 0);
}

static int
decode(const void *p, size_t n, ttrpc_request_view *v)
{
    const char *reason = NULL;
    int r = ttrpc_request_decode(p, n, v, &reason);
    if (r < 0)
        assert_non_null(reason);
    return r;
}

/* gogo/protobuf's rules, which Go's ttrpc server applies. */
static void
test_request_decode_rules(void **state)
{
    ttrpc_request_view v;
    /* Empty: all defaults. */
    assert_int_equal(decode("", 0, &v), 0);
    assert_int_equal(v.service.n + v.method.n + v.payload.n, 0);
    /* Last value wins; unknown fields (varint, fixed32/64, bytes, groups) are skipped. */
    static const uint8_t a[] = {0x0a, 1,    'x',  0x0a, 2,    'y', 'z', 0x30, 0x96, 0x01,
                                0x39, 1,    2,    3,    4,    5,   6,   7,    8,    0x3d,
                                1,    2,    3,    4,    0x42, 2,   'q', 'q',  0x4b, 0x08,
                                1,    0x53, 0x54, 0x4c, 0x12, 1,   'M', 0x20, 0x05};
    assert_int_equal(decode(a, sizeof(a), &v), 0);
    assert_int_equal(v.service.n, 2);
    assert_memory_equal(v.service.p, "yz", 2);
    assert_memory_equal(v.method.p, "M", 1);
    assert_int_equal(v.timeout_nano, 5);
    /* A known field with the wrong wire type is skipped as unknown (not an error). */
    static const uint8_t b[] = {0x08, 0x01, 0x25, 1, 2, 3, 4, 0x12, 1, 'M'};
    assert_int_equal(decode(b, sizeof(b), &v), 0);
    assert_int_equal(v.service.n, 0);
    assert_int_equal(v.timeout_nano, 0);
    /* Field number 0 is skipped too, as Go does. */
    static const uint8_t c[] = {0x00, 0x07, 0x12, 1, 'M'};
    assert_int_equal(decode(c, sizeof(c), &v), 0);
    /* A negative timeout is a 10-byte varint. */
    static const uint8_t d[] = {0x20, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    assert_int_equal(decode(d, sizeof(d), &v), 0);
    assert_int_equal(v.timeout_nano, -1);
}

static void
test_request_decode_errors(void **state)
{
    ttrpc_request_view v;
    static const struct {
        const char *data;
        size_t len;
        int r;
    } bad[] = {
        {"\x0a\x05\x61\x62\x63", 5, -EBADMSG},                                /* truncated bytes */
        {"\x0a", 1, -EBADMSG},                                                /* no length */
        {"\x20", 1, -EBADMSG},                                                /* no varint */
        {"\x20\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02", 11, -EOVERFLOW},     /* 10th byte > 1 */
        {"\x20\xff\xff\xff\xff\xff\xff\xff\xff\xff\x81\x00", 12, -EOVERFLOW}, /* 11 bytes */
        {"\x20\xff\xff\xff\xff\xff\xff\xff\xff\xff", 10, -EBADMSG},           /* cut short */
        {"\x0c", 1, -EBADMSG},                                                /* end group at top */
        {"\x0f\x00", 2, -EBADMSG},                                            /* wire type 7 */
        {"\x0e\x00", 2, -EBADMSG},                                            /* wire type 6 */
        {"\x0b\x08\x01", 3, -EBADMSG},         /* unterminated group */
        {"\x39\x01\x02", 3, -EBADMSG},         /* short fixed64 */
        {"\x0a\x02\xc3\x28", 4, -EILSEQ},      /* bad UTF-8 service */
        {"\x12\x03\xed\xa0\x80", 5, -EILSEQ},  /* surrogate in method */
        {"\x2a\x03\x0a\x01\xff", 5, -EILSEQ},  /* bad UTF-8 key */
        {"\x2a\x02\x0a\x05", 4, -EBADMSG},     /* truncated metadata */
        {"\x0a\x01\xff\x0a\x05", 5, -EBADMSG}, /* structure errors win over UTF-8 ones */
    };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        int r = decode(bad[i].data, bad[i].len, &v);
        if (r != bad[i].r)
            fail_msg("case %zu: %d, want %d", i, r, bad[i].r);
    }
    /* Invalid UTF-8 in a bytes field is fine. */
    assert_int_equal(decode("\x1a\x02\xc3\x28", 4, &v), 0);
}

static void
test_response_ok(void **state)
{
    ttrpc_payload pl;
    ttrpc_payload_init(&pl, NULL, NULL, 0);
    /* Success with an empty payload is a zero-length Response (what Go sends). */
    assert_int_equal(ttrpc_response_ok_size(&pl), 0);

    ttrpc_payload_init(&pl, NULL, "\x08\x01", 2);
    size_t n = ttrpc_response_ok_size(&pl);
    uint8_t buf[16];
    ttrpc_response_ok_encode(buf, &pl);
    Ttrpc__Response *m = ttrpc__response__unpack(NULL, n, buf);
    assert_non_null(m);
    assert_null(m->status);
    assert_int_equal(m->payload.len, 2);
    assert_int_equal(ttrpc__response__get_packed_size(m), n);
    ttrpc__response__free_unpacked(m, NULL);

    ttrpc_response_view v;
    assert_int_equal(ttrpc_response_decode(buf, n, &v, NULL), 0);
    assert_int_equal(v.code, 0);
    assert_int_equal(v.payload.n, 2);
}

static void
test_response_status(void **state)
{
    static const int32_t codes[] = {5, 12, 16, 1000, -1};
    for (size_t i = 0; i < ELEMENTSOF(codes); i++) {
        const char *msg = i == 3 ? "" : "no such thing";
        size_t n = ttrpc_response_status_size(codes[i], strlen(msg));
        uint8_t buf[64];
        assert_true(n <= sizeof(buf));
        ttrpc_response_status_encode(buf, codes[i], msg, strlen(msg));
        Ttrpc__Response *m = ttrpc__response__unpack(NULL, n, buf);
        assert_non_null(m);
        assert_non_null(m->status);
        assert_int_equal(m->status->code, codes[i]);
        assert_string_equal(m->status->message, msg);
        assert_int_equal(m->payload.len, 0);
        assert_int_equal(ttrpc__response__get_packed_size(m), n);
        ttrpc__response__free_unpacked(m, NULL);

        ttrpc_response_view v;
        assert_int_equal(ttrpc_response_decode(buf, n, &v, NULL), 0);
        assert_int_equal(v.code, codes[i]);
        assert_int_equal(v.message.n, strlen(msg));
    }
}

static void
test_response_decode_protobuf_c(void **state)
{
    Google__Rpc__Status st = GOOGLE__RPC__STATUS__INIT;
    st.code = 9;
    st.message = "busy";
    Ttrpc__Response resp = TTRPC__RESPONSE__INIT;
    resp.status = &st;
    resp.payload = (ProtobufCBinaryData){3, (uint8_t *)"abc"};
    uint8_t buf[64];
    size_t n = ttrpc__response__pack(&resp, buf);
    ttrpc_response_view v;
    assert_int_equal(ttrpc_response_decode(buf, n, &v, NULL), 0);
    assert_int_equal(v.code, 9);
    assert_memory_equal(v.message.p, "busy", 4);
    assert_memory_equal(v.payload.p, "abc", 3);
    /* Two status fields merge: the second's code, the first's message. */
    static const uint8_t merged[] = {0x0a, 0x06, 0x08, 0x05, 0x12, 0x02,
                                     'h',  'i',  0x0a, 0x02, 0x08, 0x07};
    assert_int_equal(ttrpc_response_decode(merged, sizeof(merged), &v, NULL), 0);
    assert_int_equal(v.code, 7);
    assert_memory_equal(v.message.p, "hi", 2);
    /* Broken ones. */
    assert_int_equal(ttrpc_response_decode((const uint8_t *)"\x0a\x05\x08", 3, &v, NULL), -EBADMSG);
    assert_int_equal(ttrpc_response_decode((const uint8_t *)"\x0a\x02\x08\x80", 4, &v, NULL),
                     -EBADMSG);
    assert_int_equal(ttrpc_response_decode((const uint8_t *)"\x0a\x03\x12\x01\xff", 5, &v, NULL),
                     -EILSEQ);
}

static void
test_utf8(void **state)
{
    assert_true(ttrpc_utf8_valid((const uint8_t *)"", 0));
    assert_true(
        ttrpc_utf8_valid((const uint8_t *)"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", 15));
    assert_false(ttrpc_utf8_valid((const uint8_t *)"\xc0\xaf", 2));         /* overlong */
    assert_false(ttrpc_utf8_valid((const uint8_t *)"\xe0\x80\xaf", 3));     /* overlong */
    assert_false(ttrpc_utf8_valid((const uint8_t *)"\xed\xa0\x80", 3));     /* surrogate */
    assert_false(ttrpc_utf8_valid((const uint8_t *)"\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    assert_false(ttrpc_utf8_valid((const uint8_t *)"\xe2\x82", 2));         /* truncated */
    assert_false(ttrpc_utf8_valid((const uint8_t *)"\x80", 1));

    char s[] = "a\xffz\xe2\x82\xac!";
    size_t n = ttrpc_utf8_sanitize(s, strlen(s), 100);
    assert_int_equal(n, 7);
    assert_memory_equal(s, "a?z\xe2\x82\xac!", 7);
    /* Cut on a character boundary. */
    char t[] = "ab\xe2\x82\xac";
    assert_int_equal(ttrpc_utf8_sanitize(t, strlen(t), 4), 2);
}

static void
test_errno_table(void **state)
{
    static const struct {
        int err;
        cc_ttrpc_code code;
    } fwd[] = {
        {0, CC_TTRPC_OK},
        {-ENOENT, CC_TTRPC_NOT_FOUND},
        {-EEXIST, CC_TTRPC_ALREADY_EXISTS},
        {-EINVAL, CC_TTRPC_INVALID_ARGUMENT},
        {-EOPNOTSUPP, CC_TTRPC_UNIMPLEMENTED},
        {-ETIMEDOUT, CC_TTRPC_DEADLINE_EXCEEDED},
        {-EPERM, CC_TTRPC_PERMISSION_DENIED},
        {-EACCES, CC_TTRPC_PERMISSION_DENIED},
        {ENOENT, CC_TTRPC_NOT_FOUND}, /* positive works too */
        {-EIO, CC_TTRPC_INTERNAL},
        {-ENOMEM, CC_TTRPC_INTERNAL},
        {-ECANCELED, CC_TTRPC_INTERNAL}, /* STYLE.md: everything else is INTERNAL */
    };
    for (size_t i = 0; i < ELEMENTSOF(fwd); i++)
        assert_int_equal(cc_ttrpc_code_from_errno(fwd[i].err), fwd[i].code);
    assert_int_equal(cc_ttrpc_code_to_errno(CC_TTRPC_OK), 0);
    assert_int_equal(cc_ttrpc_code_to_errno(CC_TTRPC_NOT_FOUND), -ENOENT);
    assert_int_equal(cc_ttrpc_code_to_errno(CC_TTRPC_ALREADY_EXISTS), -EEXIST);
    assert_int_equal(cc_ttrpc_code_to_errno(CC_TTRPC_INVALID_ARGUMENT), -EINVAL);
    assert_int_equal(cc_ttrpc_code_to_errno(CC_TTRPC_UNIMPLEMENTED), -EOPNOTSUPP);
    assert_int_equal(cc_ttrpc_code_to_errno(CC_TTRPC_DEADLINE_EXCEEDED), -ETIMEDOUT);
    assert_int_equal(cc_ttrpc_code_to_errno(CC_TTRPC_PERMISSION_DENIED), -EPERM);
    assert_int_equal(cc_ttrpc_code_to_errno(CC_TTRPC_CANCELLED), -ECANCELED);
    assert_int_equal(cc_ttrpc_code_to_errno(CC_TTRPC_RESOURCE_EXHAUSTED), -EMSGSIZE);
    assert_int_equal(cc_ttrpc_code_to_errno(CC_TTRPC_UNAVAILABLE), -ENOTCONN);
    assert_int_equal(cc_ttrpc_code_to_errno(CC_TTRPC_INTERNAL), -EIO);
    assert_int_equal(cc_ttrpc_code_to_errno(CC_TTRPC_FAILED_PRECONDITION), -EIO);
    /* Every code the forward table produces maps back to an errno that maps to it again. */
    for (size_t i = 1; i < ELEMENTSOF(fwd); i++)
        assert_int_equal(cc_ttrpc_code_from_errno(cc_ttrpc_code_to_errno(fwd[i].code)),
                         fwd[i].code);
    assert_string_equal(cc_ttrpc_code_to_string(CC_TTRPC_NOT_FOUND), "NotFound");
    assert_string_equal(cc_ttrpc_code_to_string(CC_TTRPC_CANCELLED), "Canceled");
    assert_string_equal(cc_ttrpc_code_to_string(CC_TTRPC_UNAUTHENTICATED), "Unauthenticated");
    assert_string_equal(cc_ttrpc_code_to_string(_CC_TTRPC_CODE_MAX), "invalid");
    assert_string_equal(cc_ttrpc_code_to_string(_CC_TTRPC_CODE_INVALID), "invalid");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header),
        cmocka_unit_test(test_request_both_ways),
        cmocka_unit_test(test_request_message_payload),
        cmocka_unit_test(test_request_decode_rules),
        cmocka_unit_test(test_request_decode_errors),
        cmocka_unit_test(test_response_ok),
        cmocka_unit_test(test_response_status),
        cmocka_unit_test(test_response_decode_protobuf_c),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_errno_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
