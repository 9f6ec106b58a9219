/* SPDX-License-Identifier: Apache-2.0 */
/*
 * guest-argv CONFIG: the QEMU argv (one argument per line) the shim would launch for CONFIG,
 * with the guest kernel and initrd found the way the shim finds them: from the directory of
 * this executable (vmm_config_resolve_guest, exe dir = dirname of /proc/self/exe). No
 * compiled-in prefix is passed, so only the exe-dir candidates count. packaging.sh copies it
 * into an installed <prefix>/bin next to containerd-shim-cloak-v2. (cloakctl vm-config is a
 * pure dry run that prints placeholders for an unset kernel/initrd.)
 * Exit 1 on errors (the message on stderr), 2 on usage.
 */
#include "util.h"
#include "vmm.h"

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <unistd.h>

int
main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: guest-argv CONFIG\n");
        return 2;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0) {
        perror("guest-argv: readlink /proc/self/exe");
        return 1;
    }
    exe[n] = 0;
    const char *dir = dirname(exe);

    _cleanup_error_ cc_error *err = NULL;
    _cleanup_(vmm_config_freep) vmm_config *c = NULL;
    _cleanup_(vmm_vm_freep) vmm_vm *vm = NULL;
    char **qemu = NULL;
    vmm_vm_params p = {
        .id = "guest-argv",
        .state_dir = "/run/cloak/guest-argv",
        .host = {.has_kvm = true, .has_vhost_vsock = true},
    };
    if (vmm_config_load(argv[1], &c, &err) < 0 ||
        vmm_config_resolve_guest(c, dir, NULL, &err) < 0 || vmm_vm_new(c, &p, &vm, &err) < 0 ||
        vmm_qemu_argv(vm, &qemu, &err) < 0) {
        fprintf(stderr, "guest-argv: %s\n", cc_error_message(err));
        return 1;
    }
    for (char **a = qemu; *a; a++)
        printf("%s\n", *a);
    vmm_strv_free(qemu);
    return 0;
}
