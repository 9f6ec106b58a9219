/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Status codes, the errno table, frame headers and the envelope messages (ttrpc.Request,
 * ttrpc.Response, google.rpc.Status) encoded and decoded by hand. The envelope is small and
 * fixed, and doing it here avoids protobuf-c's allocations and copies on every call: decoded
 * fields point into the frame, and responses are packed straight into the output buffer.
 * The decoding rules are those of gogo/protobuf's table unmarshaller, which Go's ttrpc uses
 * (proto/table_unmarshal.go), so both sides accept and refuse the same frames.
 */
#define _GNU_SOURCE
#include "ttrpc-priv.h"
#include "util.h"

#include <string.h>

/* --- status codes and errno ----------------------------------------------------------------- */

static const char *const code_names[_CC_TTRPC_CODE_MAX] = {
    [CC_TTRPC_OK] = "OK",
    [CC_TTRPC_CANCELLED] = "Canceled",
    [CC_TTRPC_UNKNOWN] = "Unknown",
    [CC_TTRPC_INVALID_ARGUMENT] = "InvalidArgument",
    [CC_TTRPC_DEADLINE_EXCEEDED] = "DeadlineExceeded",
    [CC_TTRPC_NOT_FOUND] = "NotFound",
    [CC_TTRPC_ALREADY_EXISTS] = "AlreadyExists",
    [CC_TTRPC_PERMISSION_DENIED] = "PermissionDenied",
    [CC_TTRPC_RESOURCE_EXHAUSTED] = "ResourceExhausted",
    [CC_TTRPC_FAILED_PRECONDITION] = "FailedPrecondition",
    [CC_TTRPC_ABORTED] = "Aborted",
    [CC_TTRPC_OUT_OF_RANGE] = "OutOfRange",
    [CC_TTRPC_UNIMPLEMENTED] = "Unimplemented",
    [CC_TTRPC_INTERNAL] = "Internal",
    [CC_TTRPC_UNAVAILABLE] = "Unavailable",
    [CC_TTRPC_DATA_LOSS] = "DataLoss",
    [CC_TTRPC_UNAUTHENTICATED] = "Unauthenticated",
};

const char *
cc_ttrpc_code_to_string(cc_ttrpc_code code)
{
    if (code < 0 || code >= _CC_TTRPC_CODE_MAX)
        return "invalid";
    return code_names[code];
}

/* The one errno <-> status table (STYLE.md). `both`: also used errno -> status. */
static const struct {
    int err;
    cc_ttrpc_code code;
    bool both;
} errno_codes[] = {
    {ENOENT, CC_TTRPC_NOT_FOUND, true},
    {EEXIST, CC_TTRPC_ALREADY_EXISTS, true},
    {EINVAL, CC_TTRPC_INVALID_ARGUMENT, true},
    {EOPNOTSUPP, CC_TTRPC_UNIMPLEMENTED, true},
    {ETIMEDOUT, CC_TTRPC_DEADLINE_EXCEEDED, true},
    {EPERM, CC_TTRPC_PERMISSION_DENIED, true},
    {EACCES, CC_TTRPC_PERMISSION_DENIED, true},
    /* Status -> errno only: no errno maps to these (STYLE.md: "else INTERNAL"). */
    {ECANCELED, CC_TTRPC_CANCELLED, false},
    {EMSGSIZE, CC_TTRPC_RESOURCE_EXHAUSTED, false},
    {ENOTCONN, CC_TTRPC_UNAVAILABLE, false},
};

cc_ttrpc_code
cc_ttrpc_code_from_errno(int r)
{
    if (r == 0)
        return CC_TTRPC_OK;
    int e = r < 0 ? -r : r;
    for (size_t i = 0; i < ELEMENTSOF(errno_codes); i++)
        if (errno_codes[i].both && errno_codes[i].err == e)
            return errno_codes[i].code;
    return CC_TTRPC_INTERNAL;
}

int
cc_ttrpc_code_to_errno(cc_ttrpc_code code)
{
    if (code == CC_TTRPC_OK)
        return 0;
    for (size_t i = 0; i < ELEMENTSOF(errno_codes); i++)
        if (errno_codes[i].code == code)
            return -errno_codes[i].err;
    return -EIO;
}

/* --- frame header --------------------------------------------------------------------------- */

static void
put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t
get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void
ttrpc_header_put(uint8_t p[CC_TTRPC_HEADER_LENGTH], const ttrpc_header *h)
{
    put_be32(p, h->length);
    put_be32(p + 4, h->stream_id);
    p[8] = h->type;
    p[9] = h->flags;
}

ttrpc_header
ttrpc_header_get(const uint8_t p[CC_TTRPC_HEADER_LENGTH])
{
    return (ttrpc_header){
        .length = get_be32(p),
        .stream_id = get_be32(p + 4),
        .type = p[8],
        .flags = p[9],
    };
}

/* --- UTF-8 --------------------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at p (RFC 3629, like Go's utf8.ValidString), or 0. */
static size_t
utf8_seq(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];
    if (c < 0x80)
        return 1;
    size_t len = 0;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4;
    if (len == 0 || len > n)
        return 0;
    uint8_t lo = 0x80, hi = 0xbf; /* range of the second byte */
    if (c == 0xe0)
        lo = 0xa0; /* overlong */
    else if (c == 0xed)
        hi = 0x9f; /* surrogates */
    else if (c == 0xf0)
        lo = 0x90; /* overlong */
    else if (c == 0xf4)
        hi = 0x8f; /* > U+10FFFF */
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    return len;
}

bool
ttrpc_utf8_valid(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        size_t l = utf8_seq(p + i, n - i);
        if (l == 0)
            return false;
        i += l;
    }
    return true;
}

size_t
ttrpc_utf8_sanitize(char *s, size_t n, size_t max)
{
    uint8_t *p = (uint8_t *)s;
    size_t out = 0;
    for (size_t i = 0; i < n;) {
        size_t l = utf8_seq(p + i, n - i);
        if (out + (l ? l : 1) > max)
            break;
        if (l == 0) {
            p[out++] = '?';
            i++;
            continue;
        }
        memmove(p + out, p + i, l);
        out += l;
        i += l;
    }
    return out;
}

/* --- protobuf wire primitives ---------------------------------------------------------------- */

enum {
    WIRE_VARINT = 0,
    WIRE_FIXED64 = 1,
    WIRE_BYTES = 2,
    WIRE_SGROUP = 3,
    WIRE_EGROUP = 4,
    WIRE_FIXED32 = 5
};

/* Go's decodeVarint: at most 10 bytes, the 10th at most 1; overlong encodings are fine. */
static int
varint_get(const uint8_t **p, const uint8_t *end, uint64_t *ret)
{
    uint64_t x = 0;
    for (unsigned i = 0; i < 10 && *p < end; i++) {
        uint8_t b = *(*p)++;
        if (i == 9 && b > 1)
            return -EOVERFLOW; /* Go refuses these; protobuf-c drops the extra bits */
        x |= (uint64_t)(b & 0x7f) << (7 * i);
        if (b < 0x80) {
            *ret = x;
            return 0;
        }
    }
    return -EBADMSG;
}

static int
bytes_get(const uint8_t **p, const uint8_t *end, ttrpc_bytes *ret)
{
    uint64_t n;
    int r = varint_get(p, end, &n);
    if (r < 0)
        return r;
    if (n > (uint64_t)(end - *p))
        return -EBADMSG;
    *ret = (ttrpc_bytes){*p, (size_t)n};
    *p += n;
    return 0;
}

/* Skips one field's value (Go's skipField; groups as its findEndGroup, iteratively). */
static int
skip_field(const uint8_t **p, const uint8_t *end, unsigned wire)
{
    uint64_t depth = 0, v;
    ttrpc_bytes b;
    int r;
    for (;;) {
        switch (wire) {
        case WIRE_VARINT:
            if ((r = varint_get(p, end, &v)) < 0)
                return r;
            break;
        case WIRE_FIXED64:
        case WIRE_FIXED32: {
            size_t n = wire == WIRE_FIXED64 ? 8 : 4;
            if ((size_t)(end - *p) < n)
                return -EBADMSG;
            *p += n;
            break;
        }
        case WIRE_BYTES:
            if ((r = bytes_get(p, end, &b)) < 0)
                return r;
            break;
        case WIRE_SGROUP:
            depth++;
            break;
        case WIRE_EGROUP:
            if (depth == 0)
                return -EBADMSG; /* an end-group tag where a value starts */
            depth--;
            break;
        default:
            return -EBADMSG;
        }
        if (depth == 0)
            return 0;
        if ((r = varint_get(p, end, &v)) < 0)
            return r;
        wire = v & 7;
    }
}

static size_t
varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static uint8_t *
varint_put(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

/* Size of a length-delimited field with a one-byte tag; 0 for empty (proto3 omits it). */
static size_t
ld_size(size_t n)
{
    return n ? 1 + varint_size(n) + n : 0;
}

static uint8_t *
ld_head_put(uint8_t *p, unsigned field, size_t n)
{
    *p++ = (uint8_t)(field << 3 | WIRE_BYTES);
    return varint_put(p, n);
}

static uint8_t *
ld_put(uint8_t *p, unsigned field, const void *data, size_t n)
{
    if (n == 0)
        return p;
    p = ld_head_put(p, field, n);
    memcpy(p, data, n);
    return p + n;
}

/* --- decoding ------------------------------------------------------------------------------ */

/*
 * One field of a message: its number and wire type and, for the wire types the messages here use,
 * the value. Returns 1 for a field the caller may use, 0 when it was skipped, <0 on errors.
 */
static int
field_next(const uint8_t **p, const uint8_t *end, uint64_t *field, unsigned *wire,
           uint64_t *ret_varint, ttrpc_bytes *ret_bytes)
{
    uint64_t key;
    int r = varint_get(p, end, &key);
    if (r < 0)
        return r;
    *field = key >> 3;
    *wire = key & 7;
    if (*wire == WIRE_VARINT)
        r = varint_get(p, end, ret_varint);
    else if (*wire == WIRE_BYTES)
        r = bytes_get(p, end, ret_bytes);
    else
        return skip_field(p, end, *wire);
    return r < 0 ? r : 1;
}

static void
string_ok(ttrpc_bytes b, bool *bad_utf8)
{
    if (!ttrpc_utf8_valid(b.p, b.n))
        *bad_utf8 = true; /* Go reports it after parsing the rest */
}

static int
kv_decode(ttrpc_bytes in, ttrpc_bytes *key, ttrpc_bytes *value, bool *bad_utf8)
{
    const uint8_t *p = in.p, *end = in.p + in.n;
    *key = *value = (ttrpc_bytes){(const uint8_t *)"", 0};
    while (p < end) {
        uint64_t field, v;
        unsigned wire;
        ttrpc_bytes b;
        int r = field_next(&p, end, &field, &wire, &v, &b);
        if (r < 0)
            return r;
        if (r == 0 || wire != WIRE_BYTES || (field != 1 && field != 2))
            continue;
        string_ok(b, bad_utf8);
        *(field == 1 ? key : value) = b;
    }
    return 0;
}

/* Go's texts: its varint and length errors are all io.ErrUnexpectedEOF. */
static int
decode_fail(const char **ret_reason, int r)
{
    if (ret_reason)
        *ret_reason = r == -EILSEQ ? "proto: invalid UTF-8 string" : "unexpected EOF";
    return r;
}

int
ttrpc_request_decode(const uint8_t *data, size_t len, ttrpc_request_view *ret,
                     const char **ret_reason)
{
    static const uint8_t empty[1];
    ttrpc_request_view v = {.service = {empty, 0}, .method = {empty, 0}, .payload = {empty, 0}};
    const uint8_t *p = data, *end = data + len;
    bool bad_utf8 = false;
    while (p < end) {
        uint64_t field, x;
        unsigned wire;
        ttrpc_bytes b, k, val;
        int r = field_next(&p, end, &field, &wire, &x, &b);
        if (r < 0)
            return decode_fail(ret_reason, r);
        if (r == 0)
            continue;
        if (wire == WIRE_VARINT) {
            if (field == 4)
                v.timeout_nano = (int64_t)x;
            continue;
        }
        if (field == 1 || field == 2)
            string_ok(b, &bad_utf8);
        if (field == 1)
            v.service = b;
        else if (field == 2)
            v.method = b;
        else if (field == 3)
            v.payload = b;
        else if (field == 5) {
            if ((r = kv_decode(b, &k, &val, &bad_utf8)) < 0)
                return decode_fail(ret_reason, r);
            v.n_metadata++;
        }
    }
    if (bad_utf8)
        return decode_fail(ret_reason, -EILSEQ);
    *ret = v;
    return 0;
}

size_t
ttrpc_request_metadata(const uint8_t *data, size_t len, ttrpc_bytes *keys, ttrpc_bytes *values,
                       size_t max)
{
    const uint8_t *p = data, *end = data + len;
    size_t n = 0;
    bool bad_utf8 = false;
    while (p < end && n < max) {
        uint64_t field, x;
        unsigned wire;
        ttrpc_bytes b;
        int r = field_next(&p, end, &field, &wire, &x, &b);
        if (r < 0)
            break;
        if (r == 1 && wire == WIRE_BYTES && field == 5 &&
            kv_decode(b, &keys[n], &values[n], &bad_utf8) == 0)
            n++;
    }
    return n;
}

static int
status_decode(ttrpc_bytes in, ttrpc_response_view *v, bool *bad_utf8)
{
    const uint8_t *p = in.p, *end = in.p + in.n;
    while (p < end) {
        uint64_t field, x;
        unsigned wire;
        ttrpc_bytes b;
        int r = field_next(&p, end, &field, &wire, &x, &b);
        if (r < 0)
            return r;
        if (r == 1 && wire == WIRE_VARINT && field == 1)
            v->code = (int32_t)x;
        else if (r == 1 && wire == WIRE_BYTES && field == 2) {
            string_ok(b, bad_utf8);
            v->message = b;
        }
    }
    return 0;
}

int
ttrpc_response_decode(const uint8_t *data, size_t len, ttrpc_response_view *ret,
                      const char **ret_reason)
{
    static const uint8_t empty[1];
    ttrpc_response_view v = {.message = {empty, 0}, .payload = {empty, 0}};
    const uint8_t *p = data, *end = data + len;
    bool bad_utf8 = false;
    while (p < end) {
        uint64_t field, x;
        unsigned wire;
        ttrpc_bytes b;
        int r = field_next(&p, end, &field, &wire, &x, &b);
        if (r < 0)
            return decode_fail(ret_reason, r);
        if (r == 0 || wire != WIRE_BYTES)
            continue;
        if (field == 1 && (r = status_decode(b, &v, &bad_utf8)) < 0)
            return decode_fail(ret_reason, r);
        if (field == 2)
            v.payload = b;
    }
    if (bad_utf8)
        return decode_fail(ret_reason, -EILSEQ);
    *ret = v;
    return 0;
}

/* --- encoding ------------------------------------------------------------------------------ */

void
ttrpc_payload_init(ttrpc_payload *p, const ProtobufCMessage *msg, const void *raw, size_t len)
{
    *p = (ttrpc_payload){.msg = msg, .raw = raw, .len = len};
    if (msg)
        p->len = protobuf_c_message_get_packed_size(msg);
}

static uint8_t *
payload_put(uint8_t *out, unsigned field, const ttrpc_payload *pl)
{
    if (pl->len == 0)
        return out;
    if (!pl->msg)
        return ld_put(out, field, pl->raw, pl->len);
    out = ld_head_put(out, field, pl->len);
    return out + protobuf_c_message_pack(pl->msg, out);
}

static size_t
kv_size(const cc_ttrpc_kv *kv)
{
    return ld_size(strlen(kv->key)) + ld_size(strlen(kv->value));
}

size_t
ttrpc_request_size(const cc_ttrpc_request *r, const ttrpc_payload *pl)
{
    size_t n = ld_size(strlen(r->service)) + ld_size(strlen(r->method)) + ld_size(pl->len);
    if (r->timeout_usec) {
        uint64_t nano = r->timeout_usec > INT64_MAX / 1000 ? INT64_MAX : r->timeout_usec * 1000;
        n += 1 + varint_size(nano);
    }
    for (size_t i = 0; i < r->n_metadata; i++) {
        size_t kv = kv_size(&r->metadata[i]);
        n += 1 + varint_size(kv) + kv; /* present even when empty: it is repeated */
    }
    return n;
}

void
ttrpc_request_encode(uint8_t *out, const cc_ttrpc_request *r, const ttrpc_payload *pl)
{
    out = ld_put(out, 1, r->service, strlen(r->service));
    out = ld_put(out, 2, r->method, strlen(r->method));
    out = payload_put(out, 3, pl);
    if (r->timeout_usec) {
        uint64_t nano = r->timeout_usec > INT64_MAX / 1000 ? INT64_MAX : r->timeout_usec * 1000;
        *out++ = 4 << 3 | WIRE_VARINT;
        out = varint_put(out, nano);
    }
    for (size_t i = 0; i < r->n_metadata; i++) {
        const cc_ttrpc_kv *kv = &r->metadata[i];
        out = ld_head_put(out, 5, kv_size(kv));
        out = ld_put(out, 1, kv->key, strlen(kv->key));
        out = ld_put(out, 2, kv->value, strlen(kv->value));
    }
}

size_t
ttrpc_response_ok_size(const ttrpc_payload *pl)
{
    return ld_size(pl->len);
}

void
ttrpc_response_ok_encode(uint8_t *out, const ttrpc_payload *pl)
{
    payload_put(out, 2, pl);
}

static size_t
status_body_size(int32_t code, size_t msg_len)
{
    size_t n = ld_size(msg_len);
    if (code != 0)
        n += 1 + varint_size((uint64_t)(int64_t)code);
    return n;
}

size_t
ttrpc_response_status_size(int32_t code, size_t msg_len)
{
    size_t body = status_body_size(code, msg_len);
    return 1 + varint_size(body) + body;
}

void
ttrpc_response_status_encode(uint8_t *out, int32_t code, const char *msg, size_t msg_len)
{
    out = ld_head_put(out, 1, status_body_size(code, msg_len));
    if (code != 0) {
        *out++ = 1 << 3 | WIRE_VARINT;
        out = varint_put(out, (uint64_t)(int64_t)code);
    }
    ld_put(out, 2, msg, msg_len);
}
