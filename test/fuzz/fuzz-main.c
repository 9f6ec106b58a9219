/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Replay driver linked with every fuzz harness when it is not built with libFuzzer:
 * runs LLVMFuzzerTestOneInput over each file named on the command line and over every
 * regular file inside each directory named (sorted, so runs are repeatable). This is how
 * ctest turns the committed corpus into regression tests under any compiler.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
run_file(const char *path)
{
    FILE *f = fopen(path, "rbe");
    if (!f) {
        fprintf(stderr, "fuzz-main: open '%s': %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, len = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (!buf)
            abort();
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
        if (len == cap)
            buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    /* Exact-size copy so ASan catches any read past the input. */
    uint8_t *exact = malloc(len ? len : 1);
    if (!exact)
        abort();
    memcpy(exact, buf, len);
    free(buf);
    LLVMFuzzerTestOneInput(exact, len);
    free(exact);
    return 0;
}

static int
cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int
main(int argc, char **argv)
{
    int files = 0, failed = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) < 0) {
            fprintf(stderr, "fuzz-main: stat '%s': %s\n", argv[i], strerror(errno));
            failed++;
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            failed += run_file(argv[i]) < 0;
            files++;
            continue;
        }
        struct dirent **ents;
        int n = scandir(argv[i], &ents, NULL, NULL);
        if (n < 0) {
            fprintf(stderr, "fuzz-main: scandir '%s': %s\n", argv[i], strerror(errno));
            failed++;
            continue;
        }
        char **names = calloc(n ? n : 1, sizeof(*names));
        int k = 0;
        for (int j = 0; j < n; j++) {
            if (ents[j]->d_name[0] != '.')
                names[k++] = strdup(ents[j]->d_name);
            free(ents[j]);
        }
        free(ents);
        qsort(names, k, sizeof(*names), cmp);
        for (int j = 0; j < k; j++) {
            char *p;
            if (asprintf(&p, "%s/%s", argv[i], names[j]) < 0)
                abort();
            if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
                failed += run_file(p) < 0;
                files++;
            }
            free(p);
            free(names[j]);
        }
        free(names);
    }
    printf("%s: replayed %d inputs, %d unreadable\n", argv[0], files, failed);
    return failed || files == 0 ? 1 : 0;
}
