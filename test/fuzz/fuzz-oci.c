/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzzes the OCI config.json <-> grpc.Spec converters: parses the input as JSON, converts it
 * to a Spec and checks what oci.h promises (traps on violation): a Spec built from JSON always
 * converts back, the result is a fixed point (JSON -> Spec -> JSON -> Spec -> JSON), and the
 * malloc'ed message packs, unpacks to the same JSON and frees cleanly. The "process" member
 * goes through the Process converters the same way.
 */
#include "error.h"
#include "json.h"
#include "oci.h"
#include "util.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

static void
check_failure(int r, cc_error *err)
{
    CHECK(r == -EINVAL || r == -E2BIG);
    CHECK(err && err->code == r && strlen(cc_error_message(err)) > 0);
}

static void
check_spec(const json_t *in)
{
    cc_error *err = NULL;
    Grpc__Spec *spec = (Grpc__Spec *)0x1;
    int r = cc_oci_spec_from_json(in, &spec, &err);
    if (r < 0) {
        check_failure(r, err);
        CHECK(spec == (Grpc__Spec *)0x1);
        cc_error_free(err);
        return;
    }
    CHECK(!err);

    json_t *out = NULL;
    CHECK(cc_oci_spec_to_json(spec, &out, &err) == 0 && json_is_object(out));

    /* the converted JSON is a fixed point */
    Grpc__Spec *spec2 = NULL;
    CHECK(cc_oci_spec_from_json(out, &spec2, &err) == 0);
    json_t *out2 = NULL;
    CHECK(cc_oci_spec_to_json(spec2, &out2, &err) == 0);
    CHECK(json_equal(out, out2));

    /* the message is valid protobuf-c: pack, unpack, same JSON */
    size_t len = protobuf_c_message_get_packed_size(&spec->base);
    uint8_t *buf = cc_xmalloc(len ? len : 1);
    CHECK(protobuf_c_message_pack(&spec->base, buf) == len);
    Grpc__Spec *unpacked = grpc__spec__unpack(NULL, len, buf);
    CHECK(unpacked);
    json_t *out3 = NULL;
    CHECK(cc_oci_spec_to_json(unpacked, &out3, &err) == 0);
    CHECK(json_equal(out, out3));

    json_decref(out3);
    protobuf_c_message_free_unpacked(&unpacked->base, NULL);
    free(buf);
    json_decref(out2);
    protobuf_c_message_free_unpacked(&spec2->base, NULL);
    json_decref(out);
    protobuf_c_message_free_unpacked(&spec->base, NULL);
}

static void
check_process(const json_t *in)
{
    cc_error *err = NULL;
    Grpc__Process *p = NULL;
    int r = cc_oci_process_from_json(in, &p, &err);
    if (r < 0) {
        check_failure(r, err);
        CHECK(!p);
        cc_error_free(err);
        return;
    }
    json_t *out = NULL;
    CHECK(cc_oci_process_to_json(p, &out, &err) == 0);
    size_t len = protobuf_c_message_get_packed_size(&p->base);
    uint8_t *buf = cc_xmalloc(len ? len : 1);
    CHECK(protobuf_c_message_pack(&p->base, buf) == len);
    Grpc__Process *unpacked = grpc__process__unpack(NULL, len, buf);
    CHECK(unpacked);
    json_t *out2 = NULL;
    CHECK(cc_oci_process_to_json(unpacked, &out2, &err) == 0);
    CHECK(json_equal(out, out2));

    json_decref(out2);
    protobuf_c_message_free_unpacked(&unpacked->base, NULL);
    free(buf);
    json_decref(out);
    protobuf_c_message_free_unpacked(&p->base, NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *in = NULL;
    cc_error *err = NULL;
    if (cc_json_load_buffer((const char *)data, size, "fuzz", CC_JSON_MAX_SIZE, &in, &err) < 0) {
        cc_error_free(err);
        return 0;
    }
    check_spec(in);
    json_t *process = json_object_get(in, "process");
    if (process)
        check_process(process);
    json_decref(in);
    return 0;
}
