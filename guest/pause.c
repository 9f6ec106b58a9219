/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloak-pause: the sandbox's pause process (as Kubernetes' pause): holds the sandbox's
 * namespaces, reaps whatever gets reparented to it and exits 0 on SIGINT/SIGTERM. Built
 * static, with nothing but libc, to run from the guest's pause bundle.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void
on_term(int sig)
{
    (void)sig;
    _exit(0);
}

static void
on_child(int sig)
{
    int saved = errno;
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
    errno = saved;
}

int
main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("cloak-pause %s\n", CLOAK_VERSION);
        return 0;
    }
    if (getpid() != 1)
        fprintf(stderr, "cloak-pause: warning: not PID 1\n");

    struct sigaction sa = {.sa_handler = on_term};
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0) {
        perror("cloak-pause: sigaction");
        return 1;
    }
    sa.sa_handler = on_child;
    sa.sa_flags = SA_NOCLDSTOP | SA_RESTART;
    if (sigaction(SIGCHLD, &sa, NULL) < 0) {
        perror("cloak-pause: sigaction");
        return 2;
    }
    for (;;)
        pause();
}
