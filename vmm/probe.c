/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
/* vmm_host_probe: which acceleration and agent transport this host offers us. */
#include "check.h"
#include "vmm.h"

#include <fcntl.h>
#include <unistd.h>

/* Usable = we may open it read-write (access() alone misses LSM and cgroup denials). */
static bool
device_usable(const char *path)
{
    int fd;

    if (access(path, R_OK | W_OK) < 0)
        return false;
    fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return false;
    close(fd);
    return true;
}

void
vmm_host_probe(vmm_host *ret)
{
    *ret = (vmm_host){
        .has_kvm = device_usable("/dev/kvm") && vmm_kvm_usable("/dev/kvm", NULL),
        .has_vhost_vsock = device_usable("/dev/vhost-vsock"),
    };
}
