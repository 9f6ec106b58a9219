/* SPDX-License-Identifier: Apache-2.0 */
/*
 * containerd.services.snapshots.v1.Snapshots over gRPC: decode, call the store, map the
 * error, encode. Every handler runs on the loop thread.
 */
#define _GNU_SOURCE
#include "snapshotter.h"

#include <stdlib.h>
#include <string.h>

#include "containerd/services/snapshots/v1/snapshots.pb-c.h"
#include "json.h"
#include "log.h"
#include "util.h"

#define SERVICE "containerd.services.snapshots.v1.Snapshots"
#define LIST_BATCH 100

/* Every generated LabelsEntry has this layout. */
typedef struct label_entry {
    ProtobufCMessage base;
    char *key;
    char *value;
} label_entry;

static json_t *
labels_to_json(label_entry *const *entries, size_t n)
{
    json_t *o = json_object();
    for (size_t i = 0; i < n; i++)
        json_object_set_new(o, entries[i]->key ? entries[i]->key : "",
                            json_string(entries[i]->value ? entries[i]->value : ""));
    return o;
}

/* containerd's codes: FAILED_PRECONDITION has no errno in lib/'s table. */
static void
fail(cc_grpc_call *call, const char *what, const cc_error *e)
{
    int code = e ? e->code : -EIO;
    if (code == -EBUSY) {
        (void)cc_grpc_call_fail(call, CC_TTRPC_FAILED_PRECONDITION, "%s", cc_error_message(e));
        return;
    }
    if (code != -ENOENT && code != -EEXIST)
        cc_log(CC_LOG_WARNING, "%s: %s", what, cc_error_message(e));
    (void)cc_grpc_call_fail_error(call, e);
}

/* --- Info ------------------------------------------------------------------------------------- */

typedef struct info_msg {
    Containerd__Services__Snapshots__V1__Info info;
    Google__Protobuf__Timestamp created, updated;
    Containerd__Services__Snapshots__V1__Info__LabelsEntry *entries;
    Containerd__Services__Snapshots__V1__Info__LabelsEntry **labels;
} info_msg;

/* Fills m from info (strings borrowed); info_msg_clear() frees it. */
static void
info_msg_init(info_msg *m, const snap_info *info)
{
    *m = (info_msg){.info = CONTAINERD__SERVICES__SNAPSHOTS__V1__INFO__INIT,
                    .created = GOOGLE__PROTOBUF__TIMESTAMP__INIT,
                    .updated = GOOGLE__PROTOBUF__TIMESTAMP__INIT};
    m->info.name = info->name;
    m->info.parent = info->parent ? info->parent : (char *)"";
    m->info.kind = (Containerd__Services__Snapshots__V1__Kind)info->kind;
    m->created.seconds = info->created.tv_sec;
    m->created.nanos = (int32_t)info->created.tv_nsec;
    m->updated.seconds = info->updated.tv_sec;
    m->updated.nanos = (int32_t)info->updated.tv_nsec;
    m->info.created_at = &m->created;
    m->info.updated_at = &m->updated;
    size_t n = json_object_size(info->labels), i = 0;
    if (n > 0) {
        m->entries = cc_xreallocarray(NULL, n, sizeof(*m->entries));
        m->labels = cc_xreallocarray(NULL, n, sizeof(*m->labels));
        const char *k;
        json_t *v;
        json_object_foreach(info->labels, k, v) {
            m->entries[i] = (Containerd__Services__Snapshots__V1__Info__LabelsEntry)
                CONTAINERD__SERVICES__SNAPSHOTS__V1__INFO__LABELS_ENTRY__INIT;
            m->entries[i].key = (char *)k;
            m->entries[i].value = (char *)json_string_value(v);
            m->labels[i] = &m->entries[i];
            i++;
        }
    }
    m->info.n_labels = i;
    m->info.labels = m->labels;
}

static void
info_msg_clear(info_msg *m)
{
    free(m->entries);
    free(m->labels);
}

/* --- mounts ------------------------------------------------------------------------------------ */

/* Answers a response whose only field is `repeated Mount mounts = 1` (all three are alike). */
static void
reply_mount(cc_grpc_call *call, snap_mount *m)
{
    Containerd__Types__Mount mount = CONTAINERD__TYPES__MOUNT__INIT;
    mount.type = m->type;
    mount.source = m->source;
    mount.n_options = m->n_options;
    mount.options = m->options;
    Containerd__Types__Mount *mounts[] = {&mount};
    Containerd__Services__Snapshots__V1__MountsResponse resp =
        CONTAINERD__SERVICES__SNAPSHOTS__V1__MOUNTS_RESPONSE__INIT;
    resp.n_mounts = 1;
    resp.mounts = mounts;
    (void)cc_grpc_call_reply(call, &resp.base);
}

static void
prepare_or_view(cc_grpc_call *call, snap_ctx *ctx, snap_kind kind, const char *key,
                const char *parent, json_t *labels)
{
    _cleanup_error_ cc_error *e = NULL;
    snap_mount m = {0};
    int r = snap_store_prepare(ctx->store, kind, key, parent, labels, &m, &e);
    if (r < 0) {
        fail(call, kind == SNAP_KIND_VIEW ? "View" : "Prepare", e);
        return;
    }
    cc_log(CC_LOG_DEBUG, "%s \"%s\" on \"%s\": %s", kind == SNAP_KIND_VIEW ? "View" : "Prepare",
           key, parent, m.type);
    reply_mount(call, &m);
    snap_mount_clear(&m);
}

static void
on_prepare(cc_grpc_call *call, const uint8_t *buf, size_t len, void *userdata)
{
    Containerd__Services__Snapshots__V1__PrepareSnapshotRequest *req =
        (void *)cc_grpc_call_unpack(
            call, &containerd__services__snapshots__v1__prepare_snapshot_request__descriptor, buf,
            len);
    if (!req)
        return;
    _cleanup_json_ json_t *labels = labels_to_json((label_entry *const *)req->labels, req->n_labels);
    prepare_or_view(call, userdata, SNAP_KIND_ACTIVE, req->key, req->parent, labels);
    protobuf_c_message_free_unpacked(&req->base, NULL);
}

static void
on_view(cc_grpc_call *call, const uint8_t *buf, size_t len, void *userdata)
{
    Containerd__Services__Snapshots__V1__ViewSnapshotRequest *req = (void *)cc_grpc_call_unpack(
        call, &containerd__services__snapshots__v1__view_snapshot_request__descriptor, buf, len);
    if (!req)
        return;
    _cleanup_json_ json_t *labels = labels_to_json((label_entry *const *)req->labels, req->n_labels);
    prepare_or_view(call, userdata, SNAP_KIND_VIEW, req->key, req->parent, labels);
    protobuf_c_message_free_unpacked(&req->base, NULL);
}

static void
on_mounts(cc_grpc_call *call, const uint8_t *buf, size_t len, void *userdata)
{
    snap_ctx *ctx = userdata;
    Containerd__Services__Snapshots__V1__MountsRequest *req = (void *)cc_grpc_call_unpack(
        call, &containerd__services__snapshots__v1__mounts_request__descriptor, buf, len);
    if (!req)
        return;
    _cleanup_error_ cc_error *e = NULL;
    snap_mount m = {0};
    if (snap_store_mounts(ctx->store, req->key, &m, &e) < 0)
        fail(call, "Mounts", e);
    else
        reply_mount(call, &m);
    snap_mount_clear(&m);
    protobuf_c_message_free_unpacked(&req->base, NULL);
}

/* --- the rest ---------------------------------------------------------------------------------- */

static void
on_commit(cc_grpc_call *call, const uint8_t *buf, size_t len, void *userdata)
{
    snap_ctx *ctx = userdata;
    Containerd__Services__Snapshots__V1__CommitSnapshotRequest *req = (void *)cc_grpc_call_unpack(
        call, &containerd__services__snapshots__v1__commit_snapshot_request__descriptor, buf, len);
    if (!req)
        return;
    _cleanup_json_ json_t *labels = labels_to_json((label_entry *const *)req->labels, req->n_labels);
    _cleanup_error_ cc_error *e = NULL;
    if (snap_store_commit(ctx->store, req->name, req->key, labels, &e) < 0)
        fail(call, "Commit", e);
    else
        (void)cc_grpc_call_reply(call, NULL);
    protobuf_c_message_free_unpacked(&req->base, NULL);
}

static void
on_remove(cc_grpc_call *call, const uint8_t *buf, size_t len, void *userdata)
{
    snap_ctx *ctx = userdata;
    Containerd__Services__Snapshots__V1__RemoveSnapshotRequest *req = (void *)cc_grpc_call_unpack(
        call, &containerd__services__snapshots__v1__remove_snapshot_request__descriptor, buf, len);
    if (!req)
        return;
    _cleanup_error_ cc_error *e = NULL;
    if (snap_store_remove(ctx->store, req->key, &e) < 0)
        fail(call, "Remove", e);
    else
        (void)cc_grpc_call_reply(call, NULL);
    protobuf_c_message_free_unpacked(&req->base, NULL);
}

static void
reply_info(cc_grpc_call *call, const snap_info *info)
{
    /* StatSnapshotResponse and UpdateSnapshotResponse are both `Info info = 1`. */
    info_msg m;
    info_msg_init(&m, info);
    Containerd__Services__Snapshots__V1__StatSnapshotResponse resp =
        CONTAINERD__SERVICES__SNAPSHOTS__V1__STAT_SNAPSHOT_RESPONSE__INIT;
    resp.info = &m.info;
    (void)cc_grpc_call_reply(call, &resp.base);
    info_msg_clear(&m);
}

static void
on_stat(cc_grpc_call *call, const uint8_t *buf, size_t len, void *userdata)
{
    snap_ctx *ctx = userdata;
    Containerd__Services__Snapshots__V1__StatSnapshotRequest *req = (void *)cc_grpc_call_unpack(
        call, &containerd__services__snapshots__v1__stat_snapshot_request__descriptor, buf, len);
    if (!req)
        return;
    _cleanup_error_ cc_error *e = NULL;
    const snap_info *info;
    if (snap_store_stat(ctx->store, req->key, &info, &e) < 0)
        fail(call, "Stat", e);
    else
        reply_info(call, info);
    protobuf_c_message_free_unpacked(&req->base, NULL);
}

static void
on_update(cc_grpc_call *call, const uint8_t *buf, size_t len, void *userdata)
{
    snap_ctx *ctx = userdata;
    Containerd__Services__Snapshots__V1__UpdateSnapshotRequest *req = (void *)cc_grpc_call_unpack(
        call, &containerd__services__snapshots__v1__update_snapshot_request__descriptor, buf, len);
    if (!req)
        return;
    _cleanup_error_ cc_error *e = NULL;
    if (!req->info) {
        (void)cc_grpc_call_fail(call, CC_TTRPC_INVALID_ARGUMENT, "no snapshot info");
    } else {
        _cleanup_json_ json_t *labels =
            labels_to_json((label_entry *const *)req->info->labels, req->info->n_labels);
        const snap_info *info;
        size_t n = req->update_mask ? req->update_mask->n_paths : 0;
        char *const *paths = req->update_mask ? req->update_mask->paths : NULL;
        if (snap_store_update(ctx->store, req->info->name, labels, paths, n, &info, &e) < 0)
            fail(call, "Update", e);
        else
            reply_info(call, info);
    }
    protobuf_c_message_free_unpacked(&req->base, NULL);
}

/* Whether info passes any of the filters (none: all). A malformed filter matches all. */
static bool
list_match(const snap_info *info, char *const *filters, size_t n)
{
    if (n == 0)
        return true;
    for (size_t i = 0; i < n; i++) {
        bool m;
        if (snap_filter_match(info, filters[i], &m, NULL) < 0 || m)
            return true;
    }
    return false;
}

static void
on_list(cc_grpc_call *call, const uint8_t *buf, size_t len, void *userdata)
{
    snap_ctx *ctx = userdata;
    Containerd__Services__Snapshots__V1__ListSnapshotsRequest *req = (void *)cc_grpc_call_unpack(
        call, &containerd__services__snapshots__v1__list_snapshots_request__descriptor, buf, len);
    if (!req)
        return;
    size_t total = snap_store_count(ctx->store), sent = 0;
    info_msg *batch = cc_xreallocarray(NULL, LIST_BATCH, sizeof(*batch));
    Containerd__Services__Snapshots__V1__Info *ptrs[LIST_BATCH];
    size_t n = 0;
    for (size_t i = 0; i <= total; i++) {
        const snap_info *info = i < total ? snap_store_get(ctx->store, i) : NULL;
        if (info && list_match(info, req->filters, req->n_filters)) {
            info_msg_init(&batch[n], info);
            ptrs[n] = &batch[n].info;
            n++;
        }
        if (n == LIST_BATCH || (!info && n > 0)) {
            Containerd__Services__Snapshots__V1__ListSnapshotsResponse resp =
                CONTAINERD__SERVICES__SNAPSHOTS__V1__LIST_SNAPSHOTS_RESPONSE__INIT;
            resp.n_info = n;
            resp.info = ptrs;
            (void)cc_grpc_call_send(call, &resp.base);
            for (size_t j = 0; j < n; j++)
                info_msg_clear(&batch[j]);
            sent += n;
            n = 0;
        }
    }
    free(batch);
    cc_log(CC_LOG_DEBUG, "List (%zu filters): %zu of %zu", req->n_filters, sent, total);
    (void)cc_grpc_call_reply(call, NULL);
    protobuf_c_message_free_unpacked(&req->base, NULL);
}

static void
on_usage(cc_grpc_call *call, const uint8_t *buf, size_t len, void *userdata)
{
    snap_ctx *ctx = userdata;
    Containerd__Services__Snapshots__V1__UsageRequest *req = (void *)cc_grpc_call_unpack(
        call, &containerd__services__snapshots__v1__usage_request__descriptor, buf, len);
    if (!req)
        return;
    _cleanup_error_ cc_error *e = NULL;
    Containerd__Services__Snapshots__V1__UsageResponse resp =
        CONTAINERD__SERVICES__SNAPSHOTS__V1__USAGE_RESPONSE__INIT;
    if (snap_store_usage(ctx->store, req->key, &resp.size, &resp.inodes, &e) < 0)
        fail(call, "Usage", e);
    else
        (void)cc_grpc_call_reply(call, &resp.base);
    protobuf_c_message_free_unpacked(&req->base, NULL);
}

static void
on_cleanup(cc_grpc_call *call, const uint8_t *buf, size_t len, void *userdata)
{
    snap_ctx *ctx = userdata;
    _cleanup_error_ cc_error *e = NULL;
    if (snap_store_cleanup(ctx->store, &e) < 0)
        fail(call, "Cleanup", e);
    else
        (void)cc_grpc_call_reply(call, NULL);
}

static const cc_grpc_method methods[] = {
    {"Prepare", on_prepare}, {"View", on_view},     {"Mounts", on_mounts},
    {"Commit", on_commit},   {"Remove", on_remove}, {"Stat", on_stat},
    {"Update", on_update},   {"List", on_list},     {"Usage", on_usage},
    {"Cleanup", on_cleanup},
};

int
snap_rpc_register(snap_ctx *ctx, cc_grpc_server *server, cc_error **err)
{
    return cc_grpc_server_register(server, SERVICE, methods, ELEMENTSOF(methods), ctx, err);
}
