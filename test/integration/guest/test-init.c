/* SPDX-License-Identifier: Apache-2.0 */
/*
 * /init of the tiny guest the vmm integration tests boot: proves the VM reached userspace.
 * It mounts devtmpfs, writes CLOAK_TEST_GUEST_READY to the console, then either waits to be
 * stopped (default) or powers the VM off when the kernel command line has
 * cloak.test=poweroff (to test that a guest-initiated exit is seen).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <unistd.h>

static int
cmdline_has(const char *word)
{
    char buf[4096] = "";
    int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    for (char *tok = strtok(buf, " \n"); tok; tok = strtok(NULL, " \n"))
        if (strcmp(tok, word) == 0)
            return 1;
    return 0;
}

int
main(void)
{
    mkdir("/dev", 0755);
    mkdir("/proc", 0555);
    mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
    mount("proc", "/proc", "proc", 0, NULL);
    int fd = open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
    }
    printf("CLOAK_TEST_GUEST_READY\n");
    fflush(stdout);
    if (cmdline_has("cloak.test=poweroff")) {
        sync();
        reboot(RB_POWER_OFF);
    }
    for (;;)
        pause();
}
