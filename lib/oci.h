/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Conversion between Kata's protobuf mirror of the OCI runtime spec (grpc.Spec, our
 * proto/kata/oci.proto) and OCI runtime-spec JSON (config.json, as crun reads it and
 * containerd writes it). The guest agent turns CreateContainerRequest.OCI into config.json;
 * the host shim turns containerd's config.json into a grpc.Spec.
 *
 * Mapping rules (proto3 has no field presence, OCI JSON does):
 *
 *  - JSON names are the runtime-spec's (specs-go/config.go). Fields the runtime-spec marks
 *    required (no omitempty in specs-go) are always written, even when zero/empty:
 *    ociVersion, process.user{uid,gid}, process.cwd, process.consoleSize{height,width},
 *    rlimits[]{type,hard,soft}, root.path, mounts[].destination, hooks.*[].path,
 *    {uid,gid}Mappings[]{containerID,hostID,size}, resources.devices[].allow,
 *    pids.limit, weightDevice[]{major,minor}, throttle*Device[]{major,minor,rate},
 *    hugepageLimits[]{pageSize,limit}, network.priorities[]{name,priority},
 *    namespaces[].type, devices[]{path,type,major,minor}, seccomp.defaultAction,
 *    syscalls[]{names,action}, syscalls[].args[]{index,value,op}.
 *    process.user is written ({"uid":0,"gid":0}) when the proto has no User.
 *  - Every other field is written only when it is non-zero / non-empty: a 0, false, "" or
 *    empty list in the proto is "unset". So memory{limit,reservation,swap,kernel,
 *    kernelTCP,swappiness} = 0, cpu{shares,quota,period,realtime*} = 0, blockIO weights = 0,
 *    network.classID = 0, hooks[].timeout = 0 and syscalls[].errnoRet = 0 are omitted (the
 *    runtime's default applies: errnoRet absent = EPERM), and an explicit JSON 0 for them does
 *    not survive a round trip. Sub-objects (capabilities, linux.resources, memory, ...) are
 *    written, possibly as {}, exactly when the proto has the sub-message.
 *  - As in Kata's agent, three fields are always written although OCI makes them optional:
 *    process.oomScoreAdj (0 means "reset to 0", not "inherit the agent's") and
 *    linux.devices[]{fileMode,uid,gid}.
 *  - Device cgroup rules (linux.resources.devices[]) use -1 for a wildcard major/minor, as
 *    Kata does: -1 <-> key absent (0 is a real major/minor and is written).
 *  - JSON null is the same as an absent key. Unknown JSON fields are ignored; so are the
 *    proto's Solaris and Windows.
 *  - JSON integers are int64: a uint64 proto value above INT64_MAX (e.g. an rlimit of
 *    RLIM_INFINITY) cannot be written and fails with -ERANGE naming the field. A proto string
 *    that is not UTF-8 fails with -EINVAL.
 *
 * Errors name the JSON path the way lib/json.h does: "field 'process.args[2]': expected
 * string, got integer", "field 'annotations[\"a.b\"]': ...". Arrays and objects (maps) of more
 * than CC_OCI_MAX_ELEMENTS entries fail with -E2BIG. ret is written only on success.
 */
#pragma once

#include "error.h"
#include "kata/oci.pb-c.h"

#include <jansson.h>

#define CC_OCI_MAX_ELEMENTS 65536

/* Kata's Spec -> OCI runtime-spec JSON object (what crun reads as config.json). Every field of
 * oci.proto that has an OCI JSON counterpart; optional OCI fields that are empty/unset in the
 * proto are omitted. Solaris and Windows are ignored. *ret is a new reference. */
int cc_oci_spec_to_json(const Grpc__Spec *spec, json_t **ret, cc_error **err);
/* OCI config.json -> Kata Spec, every field our oci.proto has. The message is built with malloc
 * so that protobuf_c_message_free_unpacked(&(*ret)->base, NULL) frees it (strings, repeated
 * arrays, maps (map entries are messages Grpc__Spec__AnnotationsEntry etc.), sub-messages all
 * individually malloc'ed). Errors name the JSON path: "field 'process.args[2]': expected string,
 * got integer" (use lib/json.h helpers, which already produce such messages). Unknown JSON
 * fields are ignored. Limits: refuse more than 65536 elements in any array / map (-E2BIG, naming
 * the field). */
int cc_oci_spec_from_json(const json_t *json, Grpc__Spec **ret, cc_error **err);
/* The same for one Process (ExecProcessRequest.process carries it). */
int cc_oci_process_to_json(const Grpc__Process *p, json_t **ret, cc_error **err);
int cc_oci_process_from_json(const json_t *json, Grpc__Process **ret, cc_error **err);
