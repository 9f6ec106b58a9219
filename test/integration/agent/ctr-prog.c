/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
/*
 * ctr-prog: the process of the test containers that agent-test runs inside the guest. Built
 * static (no sanitizers): the container rootfs holds nothing but this binary.
 *
 *   ctr-prog echo     "hello from the container" on stdout, "hello stderr" on stderr, then
 *                     stdin copied to stdout line by line, "stdin closed" at EOF, then waits:
 *                     SIGTERM prints "got SIGTERM" and exits 42
 *   ctr-prog exit N   exits N
 *   ctr-prog sleep    pause() forever, default signal dispositions (as PID 1 of a pid
 *                     namespace only SIGKILL ends it)
 *
 * Exit 2 on usage errors.
 */
#include <signal.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
on_sigterm(int signo)
{
    static const char msg[] = "got SIGTERM\n";

    (void)signo;
    /* Only async-signal-safe calls here; stdout is flushed after every line anyway. */
    (void)!write(STDOUT_FILENO, msg, sizeof(msg) - 1);
    _exit(42);
}

static int
mode_echo(void)
{
    /* A handler, not the default disposition: PID 1 of a pid namespace ignores SIGTERM
     * otherwise. Installed first, so a SIGTERM at any point gives 42. */
    struct sigaction sa = {.sa_handler = on_sigterm};
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) < 0) {
        perror("sigaction");
        return 1;
    }

    fputs("hello from the container\n", stdout);
    fflush(stdout);
    fputs("hello stderr\n", stderr);
    fflush(stderr);

    char *line = NULL;
    size_t size = 0;
    while (getline(&line, &size, stdin) >= 0) {
        fputs(line, stdout);
        fflush(stdout);
    }
    free(line);
    fputs("stdin closed\n", stdout);
    fflush(stdout);

    for (;;)
        pause();
}

int
main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "echo") == 0)
        return mode_echo();
    if (argc == 3 && strcmp(argv[1], "exit") == 0) {
        char *end = NULL;
        long n = strtol(argv[2], &end, 10);
        if (end == argv[2] || *end || n < 0 || n > 255) {
            fprintf(stderr, "ctr-prog: bad exit code '%s'\n", argv[2]);
            return 2;
        }
        return (int)n;
    }
    if (argc == 3 && strcmp(argv[1], "cat") == 0) {
        FILE *f = fopen(argv[2], "re");
        char buf[4096];
        size_t n;
        if (!f) {
            fprintf(stderr, "ctr-prog: %s: %s\n", argv[2], strerror(errno));
            return 1;
        }
        while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
            fwrite(buf, 1, n, stdout);
        fclose(f);
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "sleep") == 0) {
        for (;;)
            pause();
    }
    fprintf(stderr, "usage: ctr-prog echo | exit N | cat PATH | sleep\n");
    return 2;
}
