/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "check.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "backend.h"
#include "fs.h"
#include "util.h"

#define QEMU_PROBE_TIMEOUT_MS 10000
#define QEMU_OUTPUT_MAX (256 * 1024)

/* Firmware a profile needs when the config does not name one (spec §1.2, §1.3). */
static const char *const default_firmware[_VMM_PROFILE_MAX] = {
    [VMM_PROFILE_SEV_SNP] = "/usr/share/ovmf/AMDSEV.fd",
    [VMM_PROFILE_TDX] = "/usr/share/ovmf/OVMF.inteltdx.fd",
};

/* What a TEE profile needs from the host. */
static const struct {
    const char *kvm_param; /* under sys/module/ */
    const char *device;    /* besides /dev/kvm */
    const char *qemu_object;
    const char *qemu_min;
} needs[_VMM_PROFILE_MAX] = {
    [VMM_PROFILE_SEV] = {"kvm_amd/parameters/sev", "/dev/sev", "sev-guest", "2.12"},
    [VMM_PROFILE_SEV_SNP] = {"kvm_amd/parameters/sev_snp", "/dev/sev", "sev-snp-guest", "9.1"},
    [VMM_PROFILE_TDX] = {"kvm_intel/parameters/tdx", NULL, "tdx-guest", "10.1"},
};

typedef struct qemu_facts {
    bool runs;
    char *version; /* "7.2.22" */
    char *objects; /* `-object help` output */
} qemu_facts;

/* Runs argv with stdout+stderr captured (bounded), killing it after timeout_ms. */
static int
run_capture(char *const *argv, int timeout_ms, char **ret_out, cc_error **err)
{
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return cc_error_set(err, -errno, "pipe");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
    pid_t pid;
    int r = -posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pipefd[1]);
    if (r < 0) {
        close(pipefd[0]);
        return cc_error_set(err, r, "run '%s'", argv[0]);
    }
    size_t len = 0, cap = 4096;
    char *out = cc_xmalloc(cap);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long left = timeout_ms - ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000);
        struct pollfd p = {.fd = pipefd[0], .events = POLLIN};
        int pr = left > 0 ? poll(&p, 1, (int)left) : 0;
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0) {
            kill(pid, SIGKILL);
            r = pr == 0 ? -ETIMEDOUT : -errno;
            break;
        }
        if (len + 1 >= cap && cap < QEMU_OUTPUT_MAX)
            out = cc_xrealloc(out, cap *= 2);
        ssize_t n = read(pipefd[0], out + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len + 1 >= cap && cap >= QEMU_OUTPUT_MAX)
            break;
    }
    close(pipefd[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    out[len] = 0;
    if (r < 0) {
        free(out);
        return cc_error_set(err, r, "run '%s'", argv[0]);
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        free(out);
        return cc_error_msg(err, -EIO, "'%s' failed (status %d)", argv[0], status);
    }
    *ret_out = out;
    return 0;
}

static void
qemu_probe(const char *qemu, qemu_facts *f, char **ret_line)
{
    _cleanup_error_ cc_error *e = NULL;
    _cleanup_free_ char *out = NULL;
    char *vargv[] = {(char *)qemu, (char *)"-version", NULL};
    unsigned a, b, c;

    if (run_capture(vargv, QEMU_PROBE_TIMEOUT_MS, &out, &e) < 0) {
        *ret_line = cc_xasprintf("%s", cc_error_message(e));
        return;
    }
    if (sscanf(out, "QEMU emulator version %u.%u.%u", &a, &b, &c) != 3) {
        *ret_line = cc_xasprintf("'%s -version' printed no QEMU version", qemu);
        return;
    }
    f->version = cc_xasprintf("%u.%u.%u", a, b, c);
    char *oargv[] = {(char *)qemu, (char *)"-machine", (char *)"none", (char *)"-object",
                     (char *)"help", NULL};
    if (run_capture(oargv, QEMU_PROBE_TIMEOUT_MS, &f->objects, &e) < 0) {
        *ret_line = cc_xasprintf("QEMU %s (%s): %s", f->version, qemu, cc_error_message(e));
        return;
    }
    f->runs = true;
    *ret_line = cc_xasprintf("QEMU %s (%s)", f->version, qemu);
}

static bool
qemu_has_object(const qemu_facts *f, const char *type)
{
    size_t n = strlen(type);
    for (const char *p = f->objects; p && (p = strstr(p, type)); p += n) {
        bool start = p == f->objects || p[-1] == ' ' || p[-1] == '\n';
        bool end = p[n] == '\n' || p[n] == 0 || p[n] == ' ';
        if (start && end)
            return true;
    }
    return false;
}

static char *
at_root(const char *root, const char *path)
{
    if (!root || cc_streq(root, "/"))
        return cc_xstrdup(path);
    return cc_xasprintf("%s%s", root, path);
}

static bool
root_access(const char *root, const char *path, int mode)
{
    _cleanup_free_ char *p = at_root(root, path);
    return access(p, mode) == 0;
}

/* A kvm module parameter reads "Y" or "1" when the feature is on. */
static bool
kvm_param_on(const char *root, const char *param)
{
    _cleanup_free_ char *rel = cc_xasprintf("/sys/module/%s", param);
    _cleanup_free_ char *p = at_root(root, rel);
    _cleanup_free_ char *v = NULL;
    if (cc_read_file(p, 64, &v, NULL, NULL) < 0)
        return false;
    return v[0] == 'Y' || v[0] == 'y' || v[0] == '1';
}

/* Appends "; reason" to *reasons. */
static void
add_reason(char **reasons, const char *fmt, ...) _printf_(2, 3);
static void
add_reason(char **reasons, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *r = cc_xvasprintf(fmt, ap);
    va_end(ap);
    char *n = *reasons ? cc_xasprintf("%s; %s", *reasons, r) : cc_xstrdup(r);
    free(*reasons);
    *reasons = n;
}

static void
check_tee(const vmm_config *c, const char *root, vmm_profile p, const qemu_facts *q,
          bool has_kvm, vmm_check_item *item)
{
    char *why = NULL;
    if (!has_kvm)
        add_reason(&why, "no usable KVM");
    if (!kvm_param_on(root, needs[p].kvm_param))
        add_reason(&why, "%s not enabled (/sys/module/%s)", vmm_profile_to_string(p),
                   needs[p].kvm_param);
    if (needs[p].device && !root_access(root, needs[p].device, R_OK | W_OK))
        add_reason(&why, "no %s", needs[p].device);
    if (q->runs && !qemu_has_object(q, needs[p].qemu_object))
        add_reason(&why, "QEMU %s has no %s (needs QEMU >= %s)", q->version, needs[p].qemu_object,
                   needs[p].qemu_min);
    const char *fw = c->profile == p && c->firmware ? c->firmware : default_firmware[p];
    if (fw && !root_access(root, fw, R_OK))
        add_reason(&why, "firmware '%s' missing", fw);
    item->runs = q->runs && !why;
    item->detail = why ? why : cc_xstrdup("KVM");
}

static void
ask_libvirt_all(const vmm_config *c, vmm_check_report *r)
{
    _cleanup_error_ cc_error *e = NULL;
    const vmm_backend_ops *ops = vmm_libvirt_ops(&e);
    if (!ops || !ops->supports) {
        r->libvirt = cc_xasprintf("libvirt backend unavailable: %s", cc_error_message(e));
        return;
    }
    r->libvirt = cc_xasprintf("libvirt at %s", c->libvirt_uri);
    for (int p = 0; p < _VMM_PROFILE_MAX; p++) {
        bool ok = false;
        _cleanup_free_ char *why = NULL;
        _cleanup_error_ cc_error *pe = NULL;
        if (ops->supports(c->libvirt_uri, (vmm_profile)p, &ok, &why, &pe) < 0)
            r->items[p].libvirt = cc_xasprintf("error: %s", cc_error_message(pe));
        else
            r->items[p].libvirt = ok ? cc_xstrdup("yes") : cc_xasprintf("no: %s", why ? why : "?");
        if (c->backend == VMM_BACKEND_LIBVIRT && !ok && r->items[p].runs) {
            r->items[p].runs = false;
            add_reason(&r->items[p].detail, "backend libvirt cannot run it");
        }
    }
}

int
vmm_check_host(const vmm_config *c, const char *root, bool ask_libvirt, vmm_check_report **ret,
               cc_error **err)
{
    vmm_check_report *r = cc_xzalloc(sizeof(*r));
    qemu_facts q = {0};
    _cleanup_free_ char *qemu_path = at_root(root, c->qemu_path);

    r->configured = c->profile;
    r->has_kvm = root_access(root, "/dev/kvm", R_OK | W_OK);
    if (r->has_kvm && (!root || cc_streq(root, "/")) && !vmm_kvm_usable("/dev/kvm", &r->kvm_unusable))
        r->has_kvm = false;
    else if (!r->has_kvm)
        r->kvm_unusable = cc_xstrdup("/dev/kvm missing");
    r->has_vhost_vsock = root_access(root, "/dev/vhost-vsock", R_OK | W_OK);
    qemu_probe(qemu_path, &q, &r->qemu);

    r->items[VMM_PROFILE_NONE].runs = q.runs;
    r->items[VMM_PROFILE_NONE].detail =
        !q.runs ? cc_xasprintf("QEMU does not run: %s", r->qemu)
        : r->has_kvm && c->accel != VMM_ACCEL_TCG ? cc_xstrdup("KVM")
                                                  : cc_xstrdup("TCG (no usable KVM)");
    for (int p = VMM_PROFILE_SEV; p < _VMM_PROFILE_MAX; p++)
        check_tee(c, root, (vmm_profile)p, &q, r->has_kvm, &r->items[p]);
    if (ask_libvirt)
        ask_libvirt_all(c, r);

    free(q.version);
    free(q.objects);
    *ret = r;
    (void)err;
    return 0;
}

vmm_check_report *
vmm_check_report_free(vmm_check_report *r)
{
    if (!r)
        return NULL;
    for (int p = 0; p < _VMM_PROFILE_MAX; p++) {
        free(r->items[p].detail);
        free(r->items[p].libvirt);
    }
    free(r->qemu);
    free(r->libvirt);
    free(r->kvm_unusable);
    free(r);
    return NULL;
}
