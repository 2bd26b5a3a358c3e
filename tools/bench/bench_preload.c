/* SPDX-License-Identifier: MIT
 *
 * bench_preload: the interposer's overhead, measured side by side in one run.
 *
 * The parent re-executes itself as a worker, once without and once with
 * LD_PRELOAD=libshmtrack.so, interleaved (A B A B ...) for several rounds, and prints per case the
 * median nanoseconds per iteration of each mode and their ratio:
 *   (a) shared anonymous mmap + touch one page + munmap        (tracked path)
 *   (b) memfd_create + ftruncate + mmap + munmap + close       (tracked path)
 *   (c) private anonymous mmap + munmap                        (the untracked path)
 * and the registry's memory per tracked object (the preload's registry code, linked here): the
 * fixed record bytes and the arena bytes resident per object after 10000 tracked objects.
 *
 * Usage: bench_preload [--preload PATH] [--rounds N]
 *        bench_preload --worker CASE ITERS   (internal)
 */
#include "model.h"
#include "registry.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define PAGE 4096

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static int one_iteration(char c)
{
    if (c == 'a') {
        char *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return -1;
        p[0] = 1;
        return munmap(p, PAGE);
    }
    if (c == 'b') {
        int fd = memfd_create("bench", MFD_CLOEXEC);
        if (fd < 0 || ftruncate(fd, PAGE) != 0)
            return -1;
        char *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
            return -1;
        munmap(p, PAGE);
        return close(fd);
    }
    char *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -1;
    return munmap(p, PAGE);
}

/* Prints ns per iteration of case c. */
static int worker(char c, long iters)
{
    for (long i = 0; i < iters / 10; i++) /* warm up */
        if (one_iteration(c) != 0)
            return 1;
    double t0 = now_ns();
    for (long i = 0; i < iters; i++)
        if (one_iteration(c) != 0) {
            perror("bench_preload");
            return 1;
        }
    printf("%.1f\n", (now_ns() - t0) / (double)iters);
    return 0;
}

static double run_worker(const char *self, const char *preload, char c, long iters)
{
    int pipefd[2];
    if (pipe(pipefd) != 0)
        return -1;
    char *env[1024];
    static char preload_env[4200];
    int n = 0;
    for (char **e = environ; *e != NULL && n < 1020; e++)
        if (strncmp(*e, "LD_PRELOAD=", 11) != 0)
            env[n++] = *e;
    if (preload != NULL) {
        snprintf(preload_env, sizeof(preload_env), "LD_PRELOAD=%s", preload);
        env[n++] = preload_env;
    }
    env[n] = NULL;
    char cs[2] = {c, 0}, its[32];
    snprintf(its, sizeof(its), "%ld", iters);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pipefd[1], 1);
        close(pipefd[0]);
        char *argv[] = {(char *)self, "--worker", cs, its, NULL};
        execve(self, argv, env);
        _exit(127);
    }
    close(pipefd[1]);
    char buf[64] = "";
    ssize_t got = read(pipefd[0], buf, sizeof(buf) - 1);
    close(pipefd[0]);
    int status;
    waitpid(pid, &status, 0);
    if (got <= 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return -1;
    buf[got] = '\0';
    return strtod(buf, NULL);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int registry_bytes(void)
{
    st__reg_t reg;
    if (st__reg_init(&reg, 0, 0) != 0)
        return 1;
    size_t before = st__reg_resident_bytes(&reg);
    const unsigned long n = 10000;
    for (unsigned long i = 0; i < n; i++) {
        st__key_t k = st__key_shmem(ST_KIND_ANON, 0, 1, 1000 + i);
        st__obj_t *o = NULL;
        if (st__reg_get(&reg, &k, &o, NULL) != 0 ||
            st__reg_map(&reg, o, 0x100000000ull + i * 2 * PAGE, PAGE, 0) != 0)
            return 1;
    }
    size_t after = st__reg_resident_bytes(&reg);
    printf("registry: %zu bytes of records per tracked object (object + range + hash slot + "
           "index slot); %zu bytes resident per object at %lu objects, one mapping each "
           "(target <= 128)\n",
           st__reg_bytes_per_object(&reg), (after - before) / n, n);
    st__reg_destroy(&reg);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--worker") == 0)
        return worker(argv[2][0], atol(argv[3]));
    const char *preload = PRELOAD_PATH;
    int rounds = 7;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--preload") == 0 && i + 1 < argc)
            preload = argv[++i];
        else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_preload [--preload PATH] [--rounds N]\n");
            return 2;
        }
    }
    if (rounds < 1 || rounds > 99)
        rounds = 7;
    if (access(preload, R_OK) != 0) {
        fprintf(stderr, "bench_preload: %s: %s\n", preload, strerror(errno));
        return 1;
    }
    static const struct {
        char c;
        long iters;
        const char *what;
        const char *target;
    } cases[] = {
        {'a', 5000, "(a) shared anon mmap + touch + munmap", "<= 1.05x"},
        {'b', 20000, "(b) memfd + ftruncate + mmap + munmap + close", "<= 1.05x"},
        {'c', 200000, "(c) private anon mmap + munmap (untracked)", "<= 1.02x"},
    };
    printf("bench_preload: %s\n%d rounds, A (without) and B (with LD_PRELOAD) interleaved; median "
           "ns per iteration\n\n",
           preload, rounds);
    printf("%-48s %10s %10s %8s  %s\n", "case", "without", "with", "ratio", "target");
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        double a[99], b[99];
        for (int r = 0; r < rounds; r++) {
            a[r] = run_worker(argv[0], NULL, cases[k].c, cases[k].iters);
            b[r] = run_worker(argv[0], preload, cases[k].c, cases[k].iters);
            if (a[r] < 0 || b[r] < 0) {
                fprintf(stderr, "bench_preload: worker for case %c failed\n", cases[k].c);
                return 1;
            }
        }
        double ma = median(a, rounds), mb = median(b, rounds);
        printf("%-48s %10.1f %10.1f %7.3fx  %s\n", cases[k].what, ma, mb, mb / ma, cases[k].target);
    }
    printf("\n");
    return registry_bytes();
}
