/* SPDX-License-Identifier: MIT
 *
 * bench_scan: how fast `shmtrack scan` is against smem over the same processes, in one run.
 *
 * Starts N processes (default 200) holding M shared memory objects each (default 50): half of them
 * shared anonymous regions shared by a group of 10 processes, half private memfd mappings. Then
 * times `shmtrack scan --pid ...` and `smem -t -P ^bench_kid` over exactly those processes, A B A B
 * (--rounds pairs), and prints the times, the ratio, and both tools' totals beside the kernel
 * truth: the bytes resident in those objects, measured here with mincore on the bench's own
 * mappings (shared regions) and by each child on its own private mappings.
 *
 * Each round also runs bench_scan_floor (built beside it) over the same processes: only the
 * kernel calls an exact scan cannot avoid (per process stat, status, smaps_rollup, maps and the fd
 * directory; per object an open of map_files, fstat and cachestat), no dump, no ownership, no
 * output. smem/floor is the best ratio any scanner built on these interfaces could print on this
 * machine at that moment; the floor's resident total is printed beside the kernel truth.
 *
 * smem knows processes, not objects: its PSS splits mapped pages between mappers and its RSS
 * counts a shared page in every mapper; shmtrack reports each object once. Not a test (no pass or
 * fail): run it by hand, `build/bin/bench_scan [-n N] [-m M] [--rounds R]`; needs smem
 * (tools/deps.sh bench).
 */
#include "model.h"
#include "trace_json.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { GROUP = 10, PAGES = 4 };

static long page;

static uint64_t resident(void *addr, size_t len)
{
    unsigned char vec[PAGES];
    uint64_t r = 0;
    if (mincore(addr, len, vec) < 0)
        return 0;
    for (size_t i = 0; i < len / (size_t)page; i++)
        r += (vec[i] & 1) ? (uint64_t)page : 0;
    return r;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs argv with stdout to out_path (or /dev/null); returns seconds, or -1 on failure, and adds
 * the CPU time (user + system) it took to *cpu. */
static double run(char **argv, const char *out_path, double *cpu)
{
    fflush(stdout);
    double t0 = now();
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        FILE *f = freopen(out_path ? out_path : "/dev/null", "w", stdout);
        if (f == NULL)
            _exit(126);
        execvp(argv[0], argv);
        _exit(127);
    }
    int status = 0;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "bench_scan: %s failed (status 0x%x)\n", argv[0], status);
        return -1;
    }
    double t = now() - t0;
    *cpu += (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
            (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    return t;
}

/* The child: keeps its group's shared regions, makes its private objects, reports, waits. */
static void kid(int idx, char **shared, int n_shared, int per, char *argv0, size_t argv0_len,
                int ready, int go)
{
    size_t len = PAGES * (size_t)page;
    /* rename the command line so smem's -P selects exactly the children */
    memset(argv0, 0, argv0_len);
    snprintf(argv0, argv0_len, "bench_kid");
    prctl(PR_SET_NAME, "bench_kid");
    int group = idx / GROUP;
    for (int j = 0; j < n_shared; j++)
        if (j / per != group)
            munmap(shared[j], len);
    uint64_t own = 0;
    for (int j = 0; j < per; j++) {
        int fd = memfd_create("bench", MFD_CLOEXEC);
        char *m = fd < 0 || ftruncate(fd, (off_t)len) < 0
                      ? MAP_FAILED
                      : mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED)
            _exit(1);
        close(fd);
        m[0] = 1;
        own += resident(m, len);
    }
    if (write(ready, &own, sizeof(own)) != (ssize_t)sizeof(own))
        _exit(2);
    char b;
    while (read(go, &b, 1) < 0 && errno == EINTR)
        ;
    _exit(0);
}

/* Σ size of global nodes that some process holds (the unique shared resident bytes) and
 * Σ pss_bytes over the processes. */
static int trace_totals(const char *path, uint64_t *unique, size_t *objects, uint64_t *pss)
{
    st_trace_t *t = NULL;
    st_error_t err;
    memset(&err, 0, sizeof(err));
    int rc = st_trace_read_file(path, &t, &err);
    if (rc < 0 || t->n_dumps == 0) {
        fprintf(stderr, "bench_scan: %s: %s\n", path, err.text);
        st_trace_free(t);
        return rc < 0 ? rc : -EINVAL;
    }
    const st_global_dump_t *d = &t->dumps[0];
    *unique = *pss = 0;
    *objects = 0;
    for (size_t g = 0; g < d->n_globals; g++) {
        bool held = false;
        for (size_t p = 0; p < d->n_procs && !held; p++)
            for (size_t e = 0; e < d->procs[p].n_edges && !held; e++)
                held = d->procs[p].edges[e].target == d->globals[g].guid;
        uint64_t size = 0;
        if (held && st_node_scalar(&d->globals[g], "size", &size)) {
            *unique += size;
            (*objects)++;
        }
    }
    for (size_t p = 0; p < d->n_procs; p++)
        *pss += d->procs[p].totals.pss_bytes;
    st_trace_free(t);
    return 0;
}

/* Totals line of `smem -t -c "pss rss"`: the last line, in KiB. */
static int smem_totals(const char *path, uint64_t *pss, uint64_t *rss)
{
    FILE *f = fopen(path, "r");
    char line[512], last[512] = "";
    if (f == NULL)
        return -errno;
    while (fgets(line, sizeof(line), f))
        if (line[0] != '-')
            memcpy(last, line, sizeof(last));
    fclose(f);
    unsigned long long a, b;
    if (sscanf(last, "%llu %llu", &a, &b) != 2)
        return -EINVAL;
    *pss = a * 1024;
    *rss = b * 1024;
    return 0;
}

/* The 1-minute load average and the online CPUs, printed beside the times: on a shared machine
 * they say how much the times can be trusted. */
static void print_load(const char *when)
{
    double load = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f != NULL) {
        if (fscanf(f, "%lf", &load) != 1)
            load = -1;
        fclose(f);
    }
    printf("load average %s: %.2f on %ld CPUs\n", when, load, sysconf(_SC_NPROCESSORS_ONLN));
}

static void usage(FILE *f)
{
    fprintf(f, "usage: bench_scan [-n PROCESSES] [-m OBJECTS_PER_PROCESS] [--rounds R]\n"
               "                  [--shmtrack PATH]\n"
               "Times `shmtrack scan` against smem over the same processes (A B A B ...).\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"processes", required_argument, NULL, 'n'},
        {"objects", required_argument, NULL, 'm'},
        {"rounds", required_argument, NULL, 'r'},
        {"shmtrack", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int n = 200, m = 50, rounds = 2, c;
    char shmtrack[PATH_MAX] = "";
    while ((c = getopt_long(argc, argv, "n:m:r:s:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'n':
            n = atoi(optarg);
            break;
        case 'm':
            m = atoi(optarg);
            break;
        case 'r':
            rounds = atoi(optarg);
            break;
        case 's':
            snprintf(shmtrack, sizeof(shmtrack), "%s", optarg);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (n < 1 || m < 2 || rounds < 1 || n > 5000 || m > 2000) {
        usage(stderr);
        return 2;
    }
    if (shmtrack[0] == '\0') { /* next to this binary: build/bin/shmtrack */
        char self[PATH_MAX];
        ssize_t l = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (l <= 0)
            return 1;
        self[l] = '\0';
        char *slash = strrchr(self, '/');
        *slash = '\0';
        snprintf(shmtrack, sizeof(shmtrack), "%.*s/shmtrack", PATH_MAX - 16, self);
    }
    char floor_exe[PATH_MAX + 32];
    snprintf(floor_exe, sizeof(floor_exe), "%s", shmtrack);
    char *fslash = strrchr(floor_exe, '/');
    snprintf(fslash ? fslash + 1 : floor_exe, 32, "bench_scan_floor");
    bool have_floor = access(floor_exe, X_OK) == 0;
    if (!have_floor)
        printf("bench_scan: %s not found: no floor column\n", floor_exe);
    page = sysconf(_SC_PAGESIZE);
    size_t len = PAGES * (size_t)page;
    int per = m / 2, groups = (n + GROUP - 1) / GROUP, n_shared = groups * per;
    char **shared = calloc((size_t)n_shared, sizeof(char *));
    pid_t *kids = calloc((size_t)n, sizeof(pid_t));
    int ready[2], go[2];
    if (shared == NULL || kids == NULL || pipe(ready) < 0 || pipe(go) < 0)
        return 1;
    uint64_t truth = 0;
    for (int j = 0; j < n_shared; j++) {
        shared[j] = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (shared[j] == MAP_FAILED)
            return 1;
        shared[j][0] = shared[j][page] = 1; /* 2 of 4 pages resident */
    }
    fflush(stdout);
    for (int i = 0; i < n; i++) {
        kids[i] = fork();
        if (kids[i] < 0) {
            perror("bench_scan: fork");
            return 1;
        }
        if (kids[i] == 0) {
            close(go[1]);
            kid(i, shared, n_shared, per, argv[0], strlen(argv[0]) + 1, ready[1], go[0]);
        }
    }
    close(go[0]);
    for (int i = 0; i < n; i++) {
        uint64_t own;
        if (read(ready[0], &own, sizeof(own)) != (ssize_t)sizeof(own))
            return 1;
        truth += own;
    }
    for (int j = 0; j < n_shared; j++) /* every group has at least one member holding it */
        truth += resident(shared[j], len);

    printf("bench_scan: %d processes x %d objects (%d shared anon regions, each held by a group "
           "of up to %d; %d private memfds each): %d objects, %d mappings\n",
           n, 2 * per, n_shared, GROUP, per, n_shared + n * per, n * 2 * per);

    char **scan_argv = calloc((size_t)(2 * n + 8), sizeof(char *));
    char trace[] = "/tmp/bench_scan-XXXXXX.json", smem_out[] = "/tmp/bench_smem-XXXXXX",
         floor_out[] = "/tmp/bench_floor-XXXXXX";
    int tfd = mkstemps(trace, 5), sfd = mkstemp(smem_out), ffd = mkstemp(floor_out);
    if (scan_argv == NULL || tfd < 0 || sfd < 0 || ffd < 0)
        return 1;
    close(tfd);
    close(sfd);
    close(ffd);
    int a = 0;
    scan_argv[a++] = shmtrack;
    scan_argv[a++] = "scan";
    for (int i = 0; i < n; i++) {
        char *pid = malloc(16);
        snprintf(pid, 16, "%d", (int)kids[i]);
        scan_argv[a++] = "--pid";
        scan_argv[a++] = pid;
    }
    scan_argv[a++] = "-o";
    scan_argv[a++] = trace;
    const char *wrap = getenv("BENCH_SCAN_WRAP"); /* e.g. "perf record -g -o FILE" */
    if (wrap != NULL) {
        char cmd[8192];
        int off = snprintf(cmd, sizeof(cmd), "%s", wrap);
        for (int i = 0; i < a && off < (int)sizeof(cmd) - 64; i++)
            off += snprintf(cmd + off, sizeof(cmd) - (size_t)off, " %s", scan_argv[i]);
        if (system(cmd) != 0)
            fprintf(stderr, "bench_scan: %s failed\n", wrap);
    }
    char *smem_argv[] = {"smem", "-t", "-H", "-c", "pss rss", "-P", "^bench_kid", NULL};

    /* the floor gets the same --pid list (it ignores -o) */
    char **floor_argv = calloc((size_t)(2 * n + 8), sizeof(char *));
    if (floor_argv == NULL)
        return 1;
    floor_argv[0] = floor_exe;
    memcpy(floor_argv + 1, scan_argv + 2, (size_t)(a - 2) * sizeof(char *));

    double t_scan = 0, t_smem = 0, t_floor = 0, c_scan = 0, c_smem = 0, c_floor = 0;
    int ok = 1;
    print_load("before");
    for (int r = 0; r < rounds && ok; r++) {
        /* each tool writes a new file every round, as in the first: shmtrack fsyncs a trace
         * that replaces a non-empty file, and smem would truncate its old output */
        unlink(trace);
        unlink(smem_out);
        double a1 = run(scan_argv, NULL, &c_scan), b1 = run(smem_argv, smem_out, &c_smem);
        double c1 = have_floor ? run(floor_argv, floor_out, &c_floor) : 0;
        if (a1 < 0 || b1 < 0 || c1 < 0) {
            ok = 0;
            break;
        }
        if (have_floor)
            printf("round %d: shmtrack scan %.3f s   smem %.3f s   floor %.3f s\n", r + 1, a1, b1,
                   c1);
        else
            printf("round %d: shmtrack scan %.3f s   smem %.3f s\n", r + 1, a1, b1);
        t_scan += a1;
        t_smem += b1;
        t_floor += c1;
    }
    print_load("after");
    if (ok) {
        uint64_t unique = 0, st_pss = 0, sm_pss = 0, sm_rss = 0;
        size_t objects = 0;
        printf("mean: shmtrack scan %.3f s, smem %.3f s: ratio smem/shmtrack = %.2f\n",
               t_scan / rounds, t_smem / rounds, t_smem / t_scan);
        if (have_floor)
            printf("floor (the kernel calls alone) %.3f s: smem/floor = %.2f, shmtrack/floor = "
                   "%.2f\n",
                   t_floor / rounds, t_smem / t_floor, t_scan / t_floor);
        printf("CPU time (user + system) per run: shmtrack scan %.3f s, smem %.3f s",
               c_scan / rounds, c_smem / rounds);
        if (have_floor)
            printf(", floor %.3f s (%.3f s of wall at best on %ld CPUs)", c_floor / rounds,
                   c_floor / rounds / (double)sysconf(_SC_NPROCESSORS_ONLN),
                   sysconf(_SC_NPROCESSORS_ONLN));
        printf("\n");
        if (have_floor)
            printf("5x smem is %.3f s; the floor at best on %ld CPUs leaves %.3f s for everything "
                   "else\n",
                   t_smem / rounds / 5, sysconf(_SC_NPROCESSORS_ONLN),
                   t_smem / rounds / 5 - c_floor / rounds / (double)sysconf(_SC_NPROCESSORS_ONLN));
        printf("kernel truth (resident bytes of these objects, mincore): %" PRIu64 "\n", truth);
        FILE *ff = have_floor ? fopen(floor_out, "r") : NULL;
        char fl[256];
        if (ff != NULL && fgets(fl, sizeof(fl), ff) != NULL)
            printf("floor: %s", fl);
        if (ff != NULL)
            fclose(ff);
        if (trace_totals(trace, &unique, &objects, &st_pss) == 0)
            printf("shmtrack: shared resident, each object once: %" PRIu64
                   " (%zu objects); sum of process PSS: %" PRIu64 "\n",
                   unique, objects, st_pss);
        if (smem_totals(smem_out, &sm_pss, &sm_rss) == 0)
            printf("smem: sum of PSS %" PRIu64 ", sum of RSS %" PRIu64
                   " (per process; no per-object count)\n",
                   sm_pss, sm_rss);
    }
    close(go[1]);
    for (int i = 0; i < n; i++)
        waitpid(kids[i], NULL, 0);
    unlink(trace);
    unlink(smem_out);
    unlink(floor_out);
    return ok ? 0 : 1;
}
