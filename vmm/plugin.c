/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Loads the libvirt backend plugin (cloak-vmm-libvirt.so) on first use, so that a process on
 * the qemu backend never maps libvirt. Places tried, in order:
 *   $CLOAK_VMM_LIBVIRT_PLUGIN      (a file path; when set, the only place tried)
 *   <exe dir>/../vmm/              (the build tree: build/test/x → build/vmm/)
 *   <exe dir>/
 *   <exe dir>/../lib/cloak/        (an install under any prefix: <prefix>/bin → <prefix>/lib/cloak)
 *   <prefix>/lib/cloak/            (CLOAK_PLUGIN_DIR, from CMAKE_INSTALL_PREFIX)
 * The plugin stays loaded for the life of the process (never dlclose'd: libvirt starts
 * threads that must not lose their code).
 */
#include "backend.h"
#include "util.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef CLOAK_PLUGIN_DIR
#define CLOAK_PLUGIN_DIR "/usr/local/lib/cloak"
#endif

/* The loaded ops: written once under the mutex, never changed afterwards. */
static pthread_mutex_t plugin_lock = PTHREAD_MUTEX_INITIALIZER;
static const vmm_backend_ops *plugin_ops;

/* The directory of /proc/self/exe, or NULL. Returns a new string. */
static char *
exe_dir(void)
{
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
    char *slash;

    if (n <= 0)
        return NULL;
    buf[n] = '\0';
    slash = strrchr(buf, '/');
    if (!slash)
        return NULL;
    *slash = '\0';
    return cc_xstrdup(buf[0] ? buf : "/");
}

/*
 * Tries one file: 1 with *ret set when it loaded, 0 when the file does not exist (nothing to
 * report beyond the place), -ELIBBAD with *ret_why set when it exists but is unusable.
 */
static int
try_load(const char *path, const vmm_backend_ops **ret, char **ret_why)
{
    const vmm_backend_ops *ops;
    void *h;

    if (access(path, F_OK) < 0)
        return 0;
    h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        *ret_why = cc_xasprintf("dlopen: %s", e ? e : "unknown error");
        return -ELIBBAD;
    }
    ops = dlsym(h, VMM_LIBVIRT_PLUGIN_SYMBOL);
    if (!ops || !ops->start || !ops->stop || !ops->kill || !ops->free) {
        *ret_why = cc_xstrdup("no usable symbol '" VMM_LIBVIRT_PLUGIN_SYMBOL "'");
        dlclose(h);
        return -ELIBBAD;
    }
    *ret = ops;
    return 1;
}

/* The candidate paths, NULL-terminated; free with vmm_strv_free. */
static char **
candidates(void)
{
    _cleanup_free_ char *dir = exe_dir();
    const char *env = getenv("CLOAK_VMM_LIBVIRT_PLUGIN");
    char **v = cc_xzalloc(6 * sizeof(char *));
    size_t n = 0;

    if (env && env[0]) {
        v[n++] = cc_xstrdup(env);
        return v;
    }
    if (dir) {
        v[n++] = cc_xasprintf("%s/../vmm/%s", dir, VMM_LIBVIRT_PLUGIN_NAME);
        v[n++] = cc_xasprintf("%s/%s", dir, VMM_LIBVIRT_PLUGIN_NAME);
        v[n++] = cc_xasprintf("%s/../lib/cloak/%s", dir, VMM_LIBVIRT_PLUGIN_NAME);
    }
    v[n++] = cc_xasprintf("%s/%s", CLOAK_PLUGIN_DIR, VMM_LIBVIRT_PLUGIN_NAME);
    return v;
}

static int
load_plugin(const vmm_backend_ops **ret, cc_error **err)
{
    char **paths = candidates();
    _cleanup_free_ char *tried = NULL;
    int r = -ENOENT;

    for (size_t i = 0; paths[i]; i++) {
        _cleanup_free_ char *why = NULL;
        char *t;

        r = try_load(paths[i], ret, &why);
        if (r > 0) {
            vmm_strv_free(paths);
            return 0;
        }
        t = cc_xasprintf("%s%s'%s'%s%s", tried ? tried : "", tried ? ", " : "", paths[i],
                         why ? ": " : " (not found)", why ? why : "");
        free(tried);
        tried = t;
        if (r < 0)
            break; /* a broken plugin is an error, not a reason to load an older one */
    }
    vmm_strv_free(paths);
    if (r == 0)
        r = -ENOENT;
    return cc_error_msg(err, r, "libvirt backend plugin %s: tried %s", VMM_LIBVIRT_PLUGIN_NAME,
                        tried ? tried : "nothing");
}

const vmm_backend_ops *
vmm_libvirt_ops(cc_error **err)
{
    const vmm_backend_ops *ops = NULL;

    pthread_mutex_lock(&plugin_lock);
    if (!plugin_ops && load_plugin(&ops, err) >= 0)
        plugin_ops = ops;
    ops = plugin_ops;
    pthread_mutex_unlock(&plugin_lock);
    return ops;
}
