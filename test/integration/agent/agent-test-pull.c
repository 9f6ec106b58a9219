/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
/*
 * agent-test scenario "pull": image pull inside the guest (image_guest_pull storages of
 * ordinary containers), against the registry and images of test/integration/pull/
 * (make-images.py wrote --images FILE).
 *
 * CreateSandbox without storages; then containers whose rootfs the agent pulls:
 *   p1  test/multi:v1 pinned by digest, `cat /etc/a.txt`      -> "layer2-a" (L2, zstd, wins)
 *   p2  the same, `ls /etc /data/x /data/opq`                  -> whiteouts and an opaque dir
 *   p3  the same, `cat /etc/marker`                            -> this run's marker (L4)
 *   i1  test/multi:index pinned by the index digest            -> the linux/amd64 manifest
 * all four alive together on one set of layers (pull-vm.sh checks the registry served each
 * layer blob once), then removed; then the failures, each leaving the agent serving:
 *   w1  a pinned digest the registry answers with another manifest -> "digest"
 *   m1  a digest the registry does not have                      -> "not found"/"manifest unknown"
 *   t1  test/tampered:v1 (a flipped byte in its L1 blob)         -> names that layer's digest
 * and p4 (test/multi:v1 again) still works after them; DestroySandbox.
 */
#include "agent-test.h"
#include "error.h"
#include "json.h"
#include "kata/agent.pb-c.h"
#include "kata/oci.pb-c.h"
#include "macro.h"
#include "util.h"

#include <stdio.h>
#include <string.h>

#define PULL_TIMEOUT (180 * USEC_PER_SEC) /* a CreateContainer that pulls, under TCG */
#define OUTPUT_TIMEOUT 60.0               /* s: a container's whole stdout */

/* One entry of images.json, strings borrowed from the document. */
typedef struct pull_image {
    const char *name;
    const char *ref;
    const char *digest;
    const char *marker;         /* NULL when none */
    const char *tampered_layer; /* NULL when none */
} pull_image;

static int
image_get(test_ctx *t, json_t *doc, const char *name, pull_image *ret)
{
    _cleanup_error_ cc_error *err = NULL;
    _cleanup_free_ char *p_ref = cc_xasprintf("images.%s.ref", name);
    _cleanup_free_ char *p_digest = cc_xasprintf("images.%s.manifest_digest", name);
    _cleanup_free_ char *p_marker = cc_xasprintf("images.%s.marker", name);
    _cleanup_free_ char *p_tampered = cc_xasprintf("images.%s.tampered_layer", name);
    pull_image im = {.name = name};

    if (cc_json_get_string(doc, p_ref, &im.ref, &err) < 0 ||
        cc_json_get_string(doc, p_digest, &im.digest, &err) < 0)
        return fail(t, "images.json", "%s: %s", name,
                    err ? cc_error_message(err) : "missing ref or manifest_digest");
    int r = cc_json_get_string(doc, p_marker, &im.marker, &err);
    if (r < 0 && r != -ENOENT)
        return fail(t, "images.json", "%s", cc_error_message(err));
    r = cc_json_get_string(doc, p_tampered, &im.tampered_layer, &err);
    if (r < 0 && r != -ENOENT)
        return fail(t, "images.json", "%s", cc_error_message(err));
    *ret = im;
    return 0;
}

/* --- CreateContainer with an image_guest_pull storage ------------------------------------- */

/* The driver option as containerd's nydus/Kata path sends it: image_guest_pull=<JSON>. */
static char *
pull_driver_option(const pull_image *im)
{
    _cleanup_json_ json_t *md =
        json_pack("{s:{s:s, s:s, s:s}}", "metadata", "containerd.io/snapshot/cri.image-ref",
                  im->ref, "containerd.io/snapshot/cri.manifest-digest", im->digest,
                  "io.kubernetes.cri.container-type", "container");
    _cleanup_free_ char *s = NULL;
    if (!md || cc_json_dump(md, &s, NULL) < 0)
        return NULL;
    return cc_xasprintf("image_guest_pull=%s", s);
}

/*
 * CreateContainer id with its rootfs pulled from im, running args. want_ok: must succeed;
 * else must fail and the message must contain one of words (case-insensitive). 0 or -1.
 */
static int
create_pulled(test_ctx *t, const char *step, const char *id, const pull_image *im,
              const char *const *args, size_t n_args, bool want_ok, const char *const *words,
              size_t n_words)
{
    _cleanup_free_ char *root = cc_xasprintf("/run/kata-containers/%s/rootfs", id);
    _cleanup_free_ char *opt = pull_driver_option(im);
    if (!opt)
        return fail(t, step, "cannot encode the driver option");
    const char *opts[] = {opt};

    spec_buf b;
    spec_init(&b, root, args, n_args, id, SPEC_N_MOUNTS);
    Grpc__Storage st = GRPC__STORAGE__INIT;
    st.driver = (char *)"image_guest_pull";
    st.source = (char *)im->ref;
    st.fstype = (char *)"overlay";
    st.mount_point = root;
    st.driver_options = STRV(opts);
    st.n_driver_options = 1;
    Grpc__Storage *storages[] = {&st};
    Grpc__CreateContainerRequest req = GRPC__CREATE_CONTAINER_REQUEST__INIT;
    req.container_id = req.exec_id = (char *)id;
    req.oci = &b.spec;
    req.storages = storages;
    req.n_storages = 1;

    rpc_result r;
    double start = now_sec();
    int code = rpc(t, AGENT_SERVICE, "CreateContainer", &req.base, NULL, PULL_TIMEOUT, &r);
    double took = now_sec() - start;
    int ret = 0;
    if (want_ok) {
        if (code != CC_TTRPC_OK)
            ret = fail(t, step, "CreateContainer: %s %s", code_name(code), r.message);
        else
            ok(t, "%s (%.1f s)", step, took);
    } else if (code < 0) {
        ret = fail(t, step, "CreateContainer: no answer: %s", r.message);
    } else if (code == CC_TTRPC_OK) {
        ret = fail(t, step, "CreateContainer succeeded, want an error");
        /* do not leave it behind: the id is not reused, but its mounts would stay */
        container_call(t, "RemoveContainer of the wrongly created container", "RemoveContainer",
                       id);
    } else if (code == CC_TTRPC_DEADLINE_EXCEEDED || code == CC_TTRPC_UNAVAILABLE) {
        ret = fail(t, step, "CreateContainer: %s %s (no real answer)", code_name(code), r.message);
    } else {
        bool named = n_words == 0;
        for (size_t i = 0; i < n_words && !named; i++)
            named = strcasestr(r.message, words[i]) != NULL;
        if (!named)
            ret = fail(t, step, "CreateContainer: %s \"%s\" names none of '%s'%s", code_name(code),
                       r.message, words[0], n_words > 1 ? " (or the others)" : "");
        else
            ok(t, "%s (%s \"%s\", %.1f s)", step, code_name(code), r.message, took);
    }
    rpc_result_clear(&r);
    return ret;
}

/* ReadStdout of id until EOF (the INTERNAL "EOF" error): everything, in *ret (caller frees). */
static int
read_all(test_ctx *t, const char *step, const char *id, char **ret)
{
    _cleanup_free_ char *out = cc_xstrdup("");
    double start = now_sec();

    for (;;) {
        if (now_sec() - start > OUTPUT_TIMEOUT)
            return fail(t, step, "no EOF on stdout within %.0f s; got \"%s\"", OUTPUT_TIMEOUT, out);
        Grpc__ReadStreamRequest req = GRPC__READ_STREAM_REQUEST__INIT;
        req.container_id = req.exec_id = (char *)id;
        req.len = 65536;
        rpc_result r;
        int code = rpc(t, AGENT_SERVICE, "ReadStdout", &req.base,
                       &grpc__read_stream_response__descriptor, CALL_TIMEOUT, &r);
        if (code == CC_TTRPC_OK) {
            ProtobufCBinaryData *d = &((Grpc__ReadStreamResponse *)r.resp)->data;
            char *joined = cc_xasprintf("%s%.*s", out, (int)d->len, (char *)d->data);
            free(out);
            out = joined;
            rpc_result_clear(&r);
            continue;
        }
        bool eof = code >= 0 && code != CC_TTRPC_DEADLINE_EXCEEDED && r.message &&
                   strstr(r.message, "EOF");
        if (!eof)
            fail(t, step, "ReadStdout: %s %s; got \"%s\"", code_name(code), r.message, out);
        rpc_result_clear(&r);
        if (!eof)
            return -1;
        *ret = TAKE_PTR(out);
        return 0;
    }
}

/* Creates, starts and waits for id (exit 0); its whole stdout in *ret. Not removed. */
static int
run_pulled(test_ctx *t, const char *id, const pull_image *im, const char *const *args,
           size_t n_args, char **ret)
{
    _cleanup_free_ char *s_create =
        cc_xasprintf("CreateContainer %s from %s (%s)", id, im->name, args[1]);
    _cleanup_free_ char *s_start = cc_xasprintf("StartContainer %s", id);
    _cleanup_free_ char *s_read = cc_xasprintf("ReadStdout %s", id);
    _cleanup_free_ char *s_wait = cc_xasprintf("WaitProcess %s", id);

    if (create_pulled(t, s_create, id, im, args, n_args, true, NULL, 0) < 0)
        return -1;
    if (container_call(t, s_start, "StartContainer", id) < 0)
        return -1;
    _cleanup_free_ char *out = NULL;
    int r = read_all(t, s_read, id, &out);
    if (wait_exec(t, s_wait, id, "", 0) < 0 || r < 0)
        return -1;
    *ret = TAKE_PTR(out);
    return 0;
}

/* Whether section has name as a whole line before any "END" line. */
static bool
has_line(const char *section, const char *name)
{
    size_t len = strlen(name);
    for (const char *p = section; *p;) {
        const char *nl = strchrnul(p, '\n');
        if ((size_t)(nl - p) == len && strncmp(p, name, len) == 0)
            return true;
        if ((size_t)(nl - p) == 3 && strncmp(p, "END", 3) == 0)
            return false;
        p = *nl ? nl + 1 : nl;
    }
    return false;
}

/* The listing of one directory in `ls`'s output: a copy up to (not including) its END. */
static char *
ls_section(const char *out, size_t idx)
{
    const char *p = out;
    for (size_t i = 0; i < idx; i++) {
        const char *end = strstr(p, "END\n");
        if (!end)
            return NULL;
        p = end + 4;
    }
    const char *end = strstr(p, "END\n");
    if (!end || (end != p && end[-1] != '\n'))
        return NULL;
    return cc_xstrndup(p, (size_t)(end - p));
}

static void
check_listing(test_ctx *t, const char *out, size_t idx, const char *dir, const char *const *want,
              size_t n_want, const char *const *absent, size_t n_absent, bool exact)
{
    _cleanup_free_ char *step = cc_xasprintf("p2: ls %s", dir);
    _cleanup_free_ char *sec = ls_section(out, idx);
    if (!sec) {
        fail(t, step, "no listing %zu in \"%s\"", idx, out);
        return;
    }
    for (size_t i = 0; i < n_want; i++)
        if (!has_line(sec, want[i])) {
            fail(t, step, "no '%s' in [%s]", want[i], sec);
            return;
        }
    for (size_t i = 0; i < n_absent; i++)
        if (has_line(sec, absent[i])) {
            fail(t, step, "'%s' still there (whiteout ignored?) in [%s]", absent[i], sec);
            return;
        }
    if (exact) {
        size_t lines = 0;
        for (const char *p = sec; *p; p++)
            lines += *p == '\n';
        if (lines != n_want) {
            fail(t, step, "%zu entries, want exactly %zu: [%s]", lines, n_want, sec);
            return;
        }
    }
    size_t len = strlen(sec);
    if (len > 0 && sec[len - 1] == '\n')
        sec[len - 1] = '\0';
    for (char *p = sec; *p; p++)
        if (*p == '\n')
            *p = ' ';
    ok(t, "%s: %s", step, sec);
}

/* --- the scenario -------------------------------------------------------------------------- */

static const char *const args_cat_a[] = {"/bin/prog", "cat", "/etc/a.txt"};
static const char *const args_ls[] = {"/bin/prog", "ls", "/etc", "/data/x", "/data/opq"};
static const char *const args_cat_marker[] = {"/bin/prog", "cat", "/etc/marker"};

static int
create_sandbox(test_ctx *t)
{
    Grpc__CreateSandboxRequest req = GRPC__CREATE_SANDBOX_REQUEST__INIT;
    req.hostname = (char *)"cloak-pull";
    req.sandbox_id = (char *)"sb1";
    return expect_ok(t, "CreateSandbox (no storages)", "CreateSandbox", &req.base);
}

static void
step_valid(test_ctx *t, const pull_image *multi, const pull_image *index)
{
    _cleanup_free_ char *out = NULL;

    if (run_pulled(t, "p1", multi, args_cat_a, ELEMENTSOF(args_cat_a), &out) == 0) {
        if (cc_streq(out, "layer2-a"))
            ok(t, "p1: /etc/a.txt is L2's \"layer2-a\"");
        else
            fail(t, "p1: /etc/a.txt", "\"%s\", want \"layer2-a\" (from the zstd L2)", out);
    }

    free(TAKE_PTR(out));
    if (run_pulled(t, "p2", multi, args_ls, ELEMENTSOF(args_ls), &out) == 0) {
        static const char *const etc_want[] = {"a.txt", "marker"};
        static const char *const etc_absent[] = {"b.txt", ".wh.b.txt"};
        static const char *const x_want[] = {"keep.txt", "new.txt"};
        static const char *const x_absent[] = {"gone.txt", ".wh.gone.txt"};
        static const char *const opq_want[] = {"fresh.txt"};
        check_listing(t, out, 0, "/etc", etc_want, ELEMENTSOF(etc_want), etc_absent,
                      ELEMENTSOF(etc_absent), false);
        check_listing(t, out, 1, "/data/x", x_want, ELEMENTSOF(x_want), x_absent,
                      ELEMENTSOF(x_absent), true);
        check_listing(t, out, 2, "/data/opq", opq_want, ELEMENTSOF(opq_want), NULL, 0, true);
    }

    free(TAKE_PTR(out));
    if (run_pulled(t, "p3", multi, args_cat_marker, ELEMENTSOF(args_cat_marker), &out) == 0) {
        if (multi->marker && cc_streq(out, multi->marker))
            ok(t, "p3: /etc/marker is this run's \"%s\" (L4)", out);
        else
            fail(t, "p3: /etc/marker", "\"%s\", want \"%s\"", out, multi->marker ?: "?");
    }

    free(TAKE_PTR(out));
    if (run_pulled(t, "i1", index, args_cat_marker, ELEMENTSOF(args_cat_marker), &out) == 0) {
        if (index->marker && cc_streq(out, index->marker))
            ok(t, "i1: the index resolved to linux/amd64 (marker \"%s\")", out);
        else
            fail(t, "i1: /etc/marker", "\"%s\", want \"%s\"", out, index->marker ?: "?");
    }

    /* all four existed together, on the same layers; now they go */
    static const char *const ids[] = {"p1", "p2", "p3", "i1"};
    for (size_t i = 0; i < ELEMENTSOF(ids); i++) {
        _cleanup_free_ char *step = cc_xasprintf("RemoveContainer %s", ids[i]);
        container_call(t, step, "RemoveContainer", ids[i]);
    }
}

static void
step_failures(test_ctx *t, const pull_image *wrong, const pull_image *missing,
              const pull_image *tampered)
{
    static const char *const w_digest[] = {"digest"};
    static const char *const w_missing[] = {"not found", "manifest unknown", "MANIFEST_UNKNOWN"};

    create_pulled(t, "CreateContainer w1: the registry serves another manifest for the pin", "w1",
                  wrong, args_cat_a, ELEMENTSOF(args_cat_a), false, w_digest, ELEMENTSOF(w_digest));
    check_health(t, "the wrong manifest digest");

    create_pulled(t, "CreateContainer m1: a manifest the registry does not have", "m1", missing,
                  args_cat_a, ELEMENTSOF(args_cat_a), false, w_missing, ELEMENTSOF(w_missing));
    check_health(t, "the missing manifest");

    if (!tampered->tampered_layer) {
        fail(t, "CreateContainer t1", "images.json names no tampered layer");
        return;
    }
    /* the hex alone: whether the message writes "sha256:" before it is its business */
    const char *hex = strchr(tampered->tampered_layer, ':');
    const char *w_tampered[] = {hex ? hex + 1 : tampered->tampered_layer};
    create_pulled(t, "CreateContainer t1: a layer blob with a flipped byte", "t1", tampered,
                  args_cat_a, ELEMENTSOF(args_cat_a), false, w_tampered, 1);
    check_health(t, "the tampered layer");
}

int
scenario_pull(test_ctx *t)
{
    _cleanup_error_ cc_error *err = NULL;
    _cleanup_json_ json_t *doc = NULL;
    pull_image multi, index, wrong, missing, tampered;

    if (!t->images_path)
        return fail(t, "images.json", "no --images FILE");
    if (cc_json_load_file(t->images_path, CC_JSON_MAX_SIZE, &doc, &err) < 0)
        return fail(t, "images.json", "%s", cc_error_message(err));
    if (image_get(t, doc, "multi", &multi) < 0 || image_get(t, doc, "index", &index) < 0 ||
        image_get(t, doc, "wrong_digest", &wrong) < 0 ||
        image_get(t, doc, "missing", &missing) < 0 || image_get(t, doc, "tampered", &tampered) < 0)
        return -1;
    info("multi %s@%s", multi.ref, multi.digest);

    if (create_sandbox(t) < 0) {
        fail(t, "scenario", "no sandbox: skipping the containers");
    } else {
        step_valid(t, &multi, &index);
        step_failures(t, &wrong, &missing, &tampered);

        /* the agent survived all that: the image still works (left for DestroySandbox) */
        _cleanup_free_ char *out = NULL;
        if (run_pulled(t, "p4", &multi, args_cat_a, ELEMENTSOF(args_cat_a), &out) == 0) {
            if (cc_streq(out, "layer2-a"))
                ok(t, "p4 after the failures: /etc/a.txt is \"layer2-a\"");
            else
                fail(t, "p4: /etc/a.txt", "\"%s\", want \"layer2-a\"", out);
        }
    }

    Grpc__DestroySandboxRequest dreq = GRPC__DESTROY_SANDBOX_REQUEST__INIT;
    expect_ok(t, "DestroySandbox", "DestroySandbox", &dreq.base);
    return 0;
}
