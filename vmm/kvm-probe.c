/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Whether /dev/kvm can really run a guest. Opening the device is not enough: on some nested
 * hosts KVM answers every ioctl but offers a CPU without SSE3 and real guests spin forever
 * inside KVM_RUN (seen on this project's CI machines: a Debian kernel never reaches its
 * console). So: KVM's supported CPUID must offer the x86-64-v2 baseline (SSE3, SSSE3,
 * SSE4.1, SSE4.2, POPCNT, CX16), and a throwaway VM must run a few real-mode instructions
 * (port I/O, a loop, HLT) to the expected exits, in a child process with a deadline.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "util.h"

#define CPUID_MAX_ENTRIES 256
#define PROBE_DEADLINE_S 3

/* CPUID leaf 1 ECX bits of the x86-64-v2 baseline, and their names for the reason. */
static const struct {
    unsigned bit;
    const char *name;
} v2_ecx[] = {{0, "sse3"}, {9, "ssse3"}, {13, "cx16"}, {19, "sse4.1"}, {20, "sse4.2"},
              {23, "popcnt"}};

static int
check_cpuid(int kvm, char **ret_reason)
{
    size_t sz = sizeof(struct kvm_cpuid2) + CPUID_MAX_ENTRIES * sizeof(struct kvm_cpuid_entry2);
    _cleanup_free_ struct kvm_cpuid2 *c = cc_xzalloc(sz);
    c->nent = CPUID_MAX_ENTRIES;
    if (ioctl(kvm, KVM_GET_SUPPORTED_CPUID, c) < 0) {
        *ret_reason = cc_xasprintf("KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
        return -1;
    }
    for (unsigned i = 0; i < c->nent; i++) {
        if (c->entries[i].function != 1)
            continue;
        for (size_t j = 0; j < ELEMENTSOF(v2_ecx); j++)
            if (!(c->entries[i].ecx & (1u << v2_ecx[j].bit))) {
                *ret_reason = cc_xasprintf("KVM offers no %s (a broken nested KVM?)",
                                           v2_ecx[j].name);
                return -1;
            }
        return 0;
    }
    *ret_reason = cc_xstrdup("KVM reports no CPUID leaf 1");
    return -1;
}

/* In the child: run out 0x3f8 / loop / hlt; exit 0 when the exits are IO then HLT. */
static _noreturn_ void
run_tiny_vm(int kvm)
{
    /* mov dx,0x3f8; mov al,'K'; out dx,al; mov cx,1000; loop $; hlt */
    static const unsigned char code[] = {0xba, 0xf8, 0x03, 0xb0, 'K',  0xee,
                                         0xb9, 0xe8, 0x03, 0xe2, 0xfe, 0xf4};
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_UNBLOCK, &all, NULL); /* the caller may block or ignore SIGALRM */
    signal(SIGALRM, SIG_DFL);
    alarm(PROBE_DEADLINE_S);
    int vm = ioctl(kvm, KVM_CREATE_VM, 0);
    unsigned char *mem = mmap(NULL, 0x1000, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                              -1, 0);
    if (vm < 0 || mem == MAP_FAILED)
        _exit(2);
    memcpy(mem, code, sizeof(code));
    struct kvm_userspace_memory_region region = {
        .memory_size = 0x1000, .userspace_addr = (unsigned long)mem};
    int cpu = -1;
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0 ||
        (cpu = ioctl(vm, KVM_CREATE_VCPU, 0)) < 0)
        _exit(3);
    int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    struct kvm_run *run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, cpu, 0);
    struct kvm_sregs sregs;
    struct kvm_regs regs = {.rip = 0, .rflags = 2};
    if (run == MAP_FAILED || ioctl(cpu, KVM_GET_SREGS, &sregs) < 0)
        _exit(4);
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    if (ioctl(cpu, KVM_SET_SREGS, &sregs) < 0 || ioctl(cpu, KVM_SET_REGS, &regs) < 0)
        _exit(5);
    if (ioctl(cpu, KVM_RUN, 0) < 0 || run->exit_reason != KVM_EXIT_IO)
        _exit(6);
    if (ioctl(cpu, KVM_RUN, 0) < 0 || run->exit_reason != KVM_EXIT_HLT)
        _exit(7);
    _exit(0);
}

bool
vmm_kvm_usable(const char *dev, char **ret_reason)
{
    char *reason = NULL;
    int kvm = open(dev, O_RDWR | O_CLOEXEC);
    if (kvm < 0) {
        reason = cc_xasprintf("open '%s': %s", dev, strerror(errno));
        goto out;
    }
    if (ioctl(kvm, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
        reason = cc_xstrdup("unexpected KVM API version");
        goto out;
    }
    if (check_cpuid(kvm, &reason) < 0)
        goto out;
    pid_t pid = fork();
    if (pid < 0) {
        reason = cc_xasprintf("fork: %s", strerror(errno));
        goto out;
    }
    if (pid == 0)
        run_tiny_vm(kvm);
    int status = 0, w;
    while ((w = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
        ;
    if (w < 0)
        reason = cc_xasprintf("waitpid: %s", strerror(errno));
    else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        reason = WIFSIGNALED(status) ? cc_xasprintf("a test VM did not finish in %d s",
                                                    PROBE_DEADLINE_S)
                                     : cc_xasprintf("a test VM failed (step %d)",
                                                    WEXITSTATUS(status));
out:
    if (kvm >= 0)
        close(kvm);
    if (ret_reason)
        *ret_reason = reason;
    else
        free(reason);
    return reason == NULL;
}
