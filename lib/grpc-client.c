/* SPDX-License-Identifier: Apache-2.0 */
/* gRPC client: blocking unary calls, each on its own pluck completion queue. */
#define _GNU_SOURCE
#include "grpc.h"
#include "util.h"

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <string.h>

struct cc_grpc_client {
    grpc_channel *channel;
};

int
cc_grpc_client_new(const char *path, cc_grpc_client **ret, cc_error **err)
{
    if (!path || !*path)
        return cc_error_msg(err, -EINVAL, "no gRPC server address");

    _cleanup_free_ char *target = path[0] == '/' ? cc_xasprintf("unix:%s", path) : cc_xstrdup(path);
    grpc_arg args[] = {
        {.type = GRPC_ARG_INTEGER,
         .key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
         .value.integer = CC_GRPC_MESSAGE_LENGTH_MAX},
    };
    grpc_channel_args cargs = {.num_args = ELEMENTSOF(args), .args = args};

    grpc_init();
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    grpc_channel *channel = grpc_channel_create(target, creds, &cargs);
    grpc_channel_credentials_release(creds);
    if (!channel) {
        grpc_shutdown();
        return cc_error_msg(err, -ENOMEM, "creating a gRPC channel to '%s'", target);
    }
    cc_grpc_client *c = cc_xzalloc(sizeof(*c));
    c->channel = channel;
    *ret = c;
    return 0;
}

cc_grpc_client *
cc_grpc_client_free(cc_grpc_client *c)
{
    if (!c)
        return NULL;
    grpc_channel_destroy(c->channel);
    free(c);
    grpc_shutdown();
    return NULL;
}

void
cc_grpc_reply_clear(cc_grpc_reply *r)
{
    free(r->message);
    free(r->payload);
    *r = (cc_grpc_reply){0};
}

static uint8_t *
byte_buffer_copy(grpc_byte_buffer *bb, size_t *ret_len)
{
    grpc_byte_buffer_reader reader;
    uint8_t *p = NULL;

    *ret_len = 0;
    if (!bb || !grpc_byte_buffer_reader_init(&reader, bb))
        return NULL;
    grpc_slice s = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    if (GRPC_SLICE_LENGTH(s) > 0) {
        p = cc_xmalloc(GRPC_SLICE_LENGTH(s));
        memcpy(p, GRPC_SLICE_START_PTR(s), GRPC_SLICE_LENGTH(s));
        *ret_len = GRPC_SLICE_LENGTH(s);
    }
    grpc_slice_unref(s);
    return p;
}

int
cc_grpc_client_call_raw(cc_grpc_client *c, const cc_grpc_request *req, cc_grpc_reply *ret,
                        cc_error **err)
{
    if (!req->method || req->method[0] != '/')
        return cc_error_msg(err, -EINVAL, "invalid gRPC method \"%s\"",
                            req->method ? req->method : "");
    for (size_t i = 0; i < req->n_metadata; i++)
        if (!req->metadata[i].key || !req->metadata[i].value)
            return cc_error_msg(err, -EINVAL, "metadata %zu without key or value", i);

    gpr_timespec deadline = gpr_inf_future(GPR_CLOCK_MONOTONIC);
    if (req->timeout_usec > 0)
        deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                gpr_time_from_micros((int64_t)req->timeout_usec, GPR_TIMESPAN));

    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    grpc_slice method = grpc_slice_from_static_string(req->method);
    grpc_call *call = grpc_channel_create_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                               method, NULL, deadline, NULL);

    grpc_metadata *md = cc_xreallocarray(NULL, req->n_metadata + 1, sizeof(*md));
    memset(md, 0, (req->n_metadata + 1) * sizeof(*md));
    for (size_t i = 0; i < req->n_metadata; i++) {
        md[i].key = grpc_slice_from_static_string(req->metadata[i].key);
        md[i].value = grpc_slice_from_static_string(req->metadata[i].value);
    }

    grpc_slice payload;
    if (req->msg) {
        payload = grpc_slice_malloc(protobuf_c_message_get_packed_size(req->msg));
        (void)protobuf_c_message_pack(req->msg, GRPC_SLICE_START_PTR(payload));
    } else
        payload = grpc_slice_from_copied_buffer(req->payload ? req->payload : "", req->len);
    grpc_byte_buffer *send = grpc_raw_byte_buffer_create(&payload, 1);
    grpc_slice_unref(payload);

    grpc_metadata_array initial_md, trailing_md;
    grpc_metadata_array_init(&initial_md);
    grpc_metadata_array_init(&trailing_md);
    grpc_byte_buffer *recv = NULL;
    grpc_status_code status = GRPC_STATUS_UNKNOWN;
    grpc_slice details = grpc_empty_slice();
    const char *error_string = NULL;

    grpc_op ops[6];
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].data.send_initial_metadata.count = req->n_metadata;
    ops[0].data.send_initial_metadata.metadata = md;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &recv;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &trailing_md;
    ops[5].data.recv_status_on_client.status = &status;
    ops[5].data.recv_status_on_client.status_details = &details;
    ops[5].data.recv_status_on_client.error_string = &error_string;

    int r = 0;
    grpc_call_error e = grpc_call_start_batch(call, ops, ELEMENTSOF(ops), call, NULL);
    if (e != GRPC_CALL_OK)
        r = cc_error_msg(err, -EIO, "gRPC call %s: starting the batch failed (%d)", req->method,
                         (int)e);
    else {
        grpc_event ev =
            grpc_completion_queue_pluck(cq, call, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type != GRPC_OP_COMPLETE)
            r = cc_error_msg(err, -EIO, "gRPC call %s: no completion", req->method);
    }
    if (r == 0) {
        cc_grpc_reply reply = {.code = (cc_ttrpc_code)status};
        if (GRPC_SLICE_LENGTH(details) > 0)
            reply.message = cc_xstrndup((const char *)GRPC_SLICE_START_PTR(details),
                                        GRPC_SLICE_LENGTH(details));
        else
            reply.message = cc_xstrdup("");
        if (status == GRPC_STATUS_OK)
            reply.payload = byte_buffer_copy(recv, &reply.len);
        *ret = reply;
    }

    gpr_free((void *)error_string);
    grpc_slice_unref(details);
    if (recv)
        grpc_byte_buffer_destroy(recv);
    grpc_byte_buffer_destroy(send);
    grpc_metadata_array_destroy(&initial_md);
    grpc_metadata_array_destroy(&trailing_md);
    free(md);
    grpc_call_unref(call);
    grpc_completion_queue_shutdown(cq);
    grpc_completion_queue_destroy(cq);
    return r;
}

int
cc_grpc_client_call_sync(cc_grpc_client *c, const char *method, const ProtobufCMessage *req,
                         const ProtobufCMessageDescriptor *resp_desc, uint64_t timeout_usec,
                         ProtobufCMessage **ret_resp, cc_ttrpc_code *ret_code, char **ret_message,
                         cc_error **err)
{
    cc_grpc_request request = {.method = method, .msg = req, .timeout_usec = timeout_usec};
    cc_grpc_reply reply = {0};
    ProtobufCMessage *resp = NULL;

    int r = cc_grpc_client_call_raw(c, &request, &reply, err);
    if (r < 0)
        return r;
    if (reply.code == CC_TTRPC_OK) {
        resp = protobuf_c_message_unpack(resp_desc, NULL, reply.len, reply.payload);
        if (!resp) {
            cc_grpc_reply_clear(&reply);
            return cc_error_msg(err, -EBADMSG, "gRPC call %s: cannot unpack the %s response",
                                method, resp_desc->name);
        }
    }
    *ret_resp = resp;
    if (ret_code)
        *ret_code = reply.code;
    if (ret_message)
        *ret_message = TAKE_PTR(reply.message);
    cc_grpc_reply_clear(&reply);
    return 0;
}
