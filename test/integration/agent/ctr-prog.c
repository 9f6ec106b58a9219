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
 *   ctr-prog cat PATH...
 *                     copies each file to stdout (exit 1 at the first that cannot be read)
 *   ctr-prog ls DIR...
 *                     per DIR: its entry names but "." and "..", sorted (strcmp), one per
 *                     line, then "END" (exit 1 at the first that cannot be read)
 *   ctr-prog sleep    pause() forever, default signal dispositions (as PID 1 of a pid
 *                     namespace only SIGKILL ends it)
 *   ctr-prog alloc MIB
 *                     mallocs and touches MIB MiB, prints "allocated", then pause() forever
 *   ctr-prog spew MIB computes MIB MiB of pattern.h's stream, prints "ready" on stderr, waits
 *                     for a line (or EOF) on stdin, writes the stream to stdout in 64 KiB writes
 *                     and exits 0 (a reader timing it measures the stdio path, not the
 *                     generation under TCG)
 *   ctr-prog oom      mallocs and touches 1 MiB blocks forever (until the OOM killer comes)
 *   ctr-prog winch ROWS COLS
 *                     prints "tty=N" (isatty(1)) and "initial RxC" (TIOCGWINSZ of fd 1), then
 *                     "size RxC" after each SIGWINCH; exits 0 once the size is ROWSxCOLS
 *
 * Exit 2 on usage errors.
 */
#include "pattern.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define MIB (1u << 20)

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

/* A number in [0, max], or -1. */
static long
parse_num(const char *s, long max)
{
    char *end = NULL;
    errno = 0;
    long n = strtol(s, &end, 10);
    if (errno || end == s || *end || n < 0 || n > max) {
        fprintf(stderr, "ctr-prog: bad number '%s'\n", s);
        return -1;
    }
    return n;
}

/* A malloc'ed block of n bytes, every page written (so it is charged to the cgroup). */
static void *
alloc_touched(size_t n)
{
    char *p = malloc(n);
    if (!p)
        return NULL;
    for (size_t i = 0; i < n; i += 4096)
        p[i] = (char)(i >> 12 | 1);
    return p;
}

static int
mode_alloc(long mib)
{
    void *p = alloc_touched((size_t)mib * MIB);
    if (!p && mib > 0) {
        perror("malloc");
        return 1;
    }
    fputs("allocated\n", stdout);
    fflush(stdout);
    for (;;)
        pause();
}

static int
mode_spew(long mib)
{
    const size_t chunk = 64 << 10;
    size_t total = (size_t)mib * MIB;
    uint8_t *all = malloc(total ? total : 1);
    uint64_t state = PATTERN_SEED;
    if (!all) {
        perror("malloc");
        return 1;
    }
    pattern_fill(&state, all, total);

    fputs("ready\n", stderr);
    fflush(stderr);
    char line[64];
    (void)!fgets(line, sizeof(line), stdin);

    for (size_t done = 0; done < total; done += chunk) {
        const uint8_t *buf = all + done;
        for (size_t off = 0; off < chunk;) {
            ssize_t w = write(STDOUT_FILENO, buf + off, chunk - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                perror("write");
                return 1;
            }
            off += (size_t)w;
        }
    }
    free(all);
    return 0;
}

static _Noreturn void
mode_oom(void)
{
    for (unsigned long i = 0;; i++) {
        if (!alloc_touched(MIB)) { /* unlikely: the OOM killer comes first */
            fprintf(stderr, "ctr-prog: malloc failed after %lu MiB\n", i);
            sleep(1);
        }
    }
}

static int
mode_winch(long rows, long cols)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGWINCH);
    /* Blocked before "tty=" goes out: a resize right after it is not lost. */
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0) {
        perror("sigprocmask");
        return 1;
    }
    struct winsize ws = {0};
    int r = ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws);
    printf("tty=%d\ninitial %dx%d\n", isatty(STDOUT_FILENO), r < 0 ? -1 : ws.ws_row,
           r < 0 ? -1 : ws.ws_col);
    fflush(stdout);
    for (;;) {
        int signo = 0;
        if (sigwait(&set, &signo) != 0)
            return 1;
        if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) < 0) {
            perror("TIOCGWINSZ");
            return 1;
        }
        printf("size %dx%d\n", ws.ws_row, ws.ws_col);
        fflush(stdout);
        if (ws.ws_row == rows && ws.ws_col == cols)
            return 0;
    }
}

static int
cat_file(const char *path)
{
    FILE *f = fopen(path, "re");
    char buf[4096];
    size_t n;
    if (!f) {
        fprintf(stderr, "ctr-prog: %s: %s\n", path, strerror(errno));
        return -1;
    }
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        fwrite(buf, 1, n, stdout);
    fclose(f);
    fflush(stdout);
    return 0;
}

static int
skip_dots(const struct dirent *e)
{
    return strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
}

static int
by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int
list_dir(const char *path)
{
    struct dirent **names = NULL;
    int n = scandir(path, &names, skip_dots, by_name);
    if (n < 0) {
        fprintf(stderr, "ctr-prog: %s: %s\n", path, strerror(errno));
        return -1;
    }
    for (int i = 0; i < n; i++) {
        printf("%s\n", names[i]->d_name);
        free(names[i]);
    }
    free(names);
    fputs("END\n", stdout);
    fflush(stdout);
    return 0;
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
    if (argc >= 3 && strcmp(argv[1], "cat") == 0) {
        for (int i = 2; i < argc; i++)
            if (cat_file(argv[i]) < 0)
                return 1;
        return 0;
    }
    if (argc >= 3 && strcmp(argv[1], "ls") == 0) {
        for (int i = 2; i < argc; i++)
            if (list_dir(argv[i]) < 0)
                return 1;
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "sleep") == 0) {
        for (;;)
            pause();
    }
    if (argc == 3 && strcmp(argv[1], "alloc") == 0) {
        long mib = parse_num(argv[2], 4096);
        return mib < 0 ? 2 : mode_alloc(mib);
    }
    if (argc == 3 && strcmp(argv[1], "spew") == 0) {
        long mib = parse_num(argv[2], 4096);
        return mib < 0 ? 2 : mode_spew(mib);
    }
    if (argc == 2 && strcmp(argv[1], "oom") == 0)
        mode_oom();
    if (argc == 4 && strcmp(argv[1], "winch") == 0) {
        long rows = parse_num(argv[2], 65535), cols = parse_num(argv[3], 65535);
        return rows < 0 || cols < 0 ? 2 : mode_winch(rows, cols);
    }
    fprintf(stderr, "usage: ctr-prog echo | exit N | cat PATH... | ls DIR... | sleep | "
                    "alloc MIB | spew MIB | oom | winch ROWS COLS\n");
    return 2;
}
