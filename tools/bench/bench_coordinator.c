/* SPDX-License-Identifier: MIT
 *
 * Coordinator benchmark: global dump latency and coordinator memory for 10, 100 and 500 clients
 * with 1000 objects each. Every client is its own spawned process running the real client library
 * (agent thread, default dump callback); client i creates 500 objects and maps 500 created by
 * client i+1, so half of every report is shared. Latency is measured in the coordinator from
 * st_coord_dump_start to the merged, graph-annotated dump appended to the in-memory trace (a dump
 * writes no file: the daemon writes the trace when it stops); the JSON write of one dump is timed
 * separately. cpu50 is the median CPU time (user + system) the coordinator
 * process itself spent per dump: on a shared machine wall time also counts waits for a core. RSS is
 * the coordinator's VmRSS (and peak VmHWM) from /proc/self/status after the first dump and after
 * all of them; flt50 the median number of page faults the coordinator took per dump (a first
 * touch of a page is dear on a VM). keep is the coordinator's max_dumps: 1, the newest dump only
 * (the memory of the one it drops is reused), or 0, every dump (the trace grows by a dump's
 * memory each round). Usage: bench_coordinator [ROUNDS [MAX_CLIENTS [KEEP]]]: with KEEP every
 * row keeps that many; without it (default) the rows keep 1 and one more row of 100 clients keeps
 * every dump, side by side (default ROUNDS 15, MAX_CLIENTS 500). Under
 * valgrind set ST_BENCH_EXE to this program's path (the clients are spawned from it). With
 * ST_BENCH_MARKS set, each timed dump of 100 clients or more prints "MARK start answered merged
 * pid" to stderr (CLOCK_MONOTONIC ns), so that the samples of `perf record -a -k CLOCK_MONOTONIC`
 * can be cut into its phases. With ST_BENCH_REAL set, each client instead creates 1000 memfds of
 * one page, maps and touches each and reports them by their real keys (no sharing: 1000 objects a
 * client): the /proc scan then finds every object too, and the merge adds holders that exist.
 * ST_BENCH_WINDOW sets the coordinator's ask_window (a number, or "all" for every client at once).
 */
#include "client.h"
#include "coordinator.h"
#include "sock.h"
#include "trace_json.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define OBJS 1000
#define STRIDE 500
#define CHILD_QUIT_FD 3 /* a spawned client's end of the quit pipe */

extern char **environ;

static char g_sock[128];
static size_t g_keep;    /* the row's max_dumps; 0: the trace keeps every dump */
static size_t g_window;  /* the coordinator's ask_window; 0: its default */
static char g_exe[4096]; /* this program, for the clients (valgrind's /proc/self/exe is valgrind) */

static void child(unsigned idx, int quit_fd)
{
    st_client_config_t cfg = {
        .socket_path = g_sock, .queue_capacity = 2048, .registry_capacity = OBJS + 8};
    st_client_t *c = NULL;
    if (st_client_start(&cfg, &c) < 0)
        _exit(1);
    bool real = getenv("ST_BENCH_REAL") != NULL;
    for (unsigned j = 0; j < OBJS; j++) {
        st_wire_event_t ev;
        memset(&ev, 0, sizeof(ev));
        if (real) { /* a real object the scan finds too */
            int fd = memfd_create("bench", MFD_CLOEXEC);
            struct stat st;
            char *p = fd < 0 || ftruncate(fd, 4096) != 0
                          ? MAP_FAILED
                          : mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            if (p == MAP_FAILED || fstat(fd, &st) != 0)
                _exit(1);
            p[0] = 1;
            close(fd);
            ev.type = ST_EVENT_CREATED;
            ev.key = (st_wire_key_t){ST_KIND_MEMFD, major(st.st_dev), minor(st.st_dev), -1,
                                     (uint64_t)st.st_ino};
            ev.resident = ev.virtual_size = ev.mapped_bytes = 4096;
            snprintf(ev.name, sizeof(ev.name), "bench");
            while (st_client_event(c, &ev) == -EAGAIN)
                st_client_flush(c, 100);
            continue;
        }
        ev.type = j < STRIDE ? ST_EVENT_CREATED : ST_EVENT_MAPPED;
        ev.key = (st_wire_key_t){0, 0, 1, -1, 1 + (uint64_t)idx * STRIDE + j};
        ev.resident = 4096 * (j % 5 + 1);
        ev.virtual_size = ev.mapped_bytes = 5 * 4096;
        snprintf(ev.name, sizeof(ev.name), "bench%u", j);
        while (st_client_event(c, &ev) == -EAGAIN)
            st_client_flush(c, 100);
    }
    char b;
    while (read(quit_fd, &b, 1) < 0 && errno == EINTR)
        ;
    st_client_stop(c);
    _exit(0);
}

static long status_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t n = strlen(field);
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, field, n) == 0)
            v = strtol(line + n + 1, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

/* CPU time of the coordinator (this process; the clients are other processes): on a shared
 * machine wall time also counts the waits for a core. */
static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Page faults of the coordinator so far (every thread of this process). */
static uint64_t faults(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)ru.ru_minflt + (uint64_t)ru.ru_majflt;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Per row: the median of each phase of st_coord_times_t over its rounds, printed after the
 * table. */
#define N_PHASES 6
static const char *const g_phase[N_PHASES] = {"answers", "index", "prepare",
                                              "build",   "graph", "total"};
#define MAX_ROWS 4
static double g_phases[MAX_ROWS][N_PHASES];
static unsigned g_rows_n[MAX_ROWS];
static size_t g_rows_keep[MAX_ROWS];
static size_t g_rows;

static void phase_medians(const st_coord_times_t *t, int rounds)
{
    uint64_t *v = calloc((size_t)rounds, sizeof(*v));
    for (int ph = 0; v != NULL && ph < N_PHASES && g_rows < MAX_ROWS; ph++) {
        for (int r = 0; r < rounds; r++) {
            const uint64_t f[N_PHASES] = {t[r].answers, t[r].index, t[r].prepare,
                                          t[r].build,   t[r].graph, t[r].total};
            v[r] = f[ph];
        }
        qsort(v, (size_t)rounds, sizeof(*v), cmp_u64);
        g_phases[g_rows][ph] = (double)v[rounds / 2] / 1e6;
    }
    free(v);
}

static int run(unsigned n, int rounds, const char *dir)
{
    snprintf(g_sock, sizeof(g_sock), "%s/run%u/sock", dir, n);
    st_coord_config_t cfg = {
        .socket_path = g_sock, .deadline_ms = 10000, .max_dumps = g_keep, .ask_window = g_window};
    st_coord_t *co = NULL;
    if (st_coord_open(&cfg, &co) < 0)
        return -1;
    int quit[2];
    if (pipe(quit) < 0) /* not close-on-exec: spawned clients inherit the read end */
        return -1;
    pid_t *pids = calloc(n, sizeof(*pids));
    /* Clients are spawned (a fresh exec of this program), not forked: forked children would share
     * the coordinator's heap copy-on-write, and the coordinator would then pay a page copy and a
     * TLB shootdown on its first write to every heap page, which no real coordinator pays. */
    char idx[16], qfd[16];
    snprintf(qfd, sizeof(qfd), "%d", quit[0]);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, quit[0], CHILD_QUIT_FD);
    posix_spawn_file_actions_addclose(&fa, quit[1]);
    for (unsigned i = 0; i < n; i++) {
        snprintf(idx, sizeof(idx), "%u", i);
        char *argv[] = {(char *)"bench_coordinator", (char *)"--child", idx, g_sock, NULL};
        if (posix_spawn(&pids[i], g_exe, &fa, NULL, argv, environ) != 0)
            return -1;
    }
    posix_spawn_file_actions_destroy(&fa);
    close(quit[0]);
    uint64_t end = st_clock_ms() + 60000;
    while (st_coord_client_count(co) < n && st_clock_ms() < end)
        st_coord_run(co, 10);
    /* let the events arrive: one warm-up dump, then wait for the queues to drain */
    for (int i = 0; i < 50; i++)
        st_coord_run(co, 10);
    st_global_dump_t *d = NULL;
    st_coord_dump_sync(co, "explicitly_triggered", &d);
    long rss1 = status_kb("VmRSS:");
    uint64_t *lat = calloc((size_t)rounds, sizeof(*lat));
    uint64_t *cpu = calloc((size_t)rounds, sizeof(*cpu));
    uint64_t *flt = calloc((size_t)rounds, sizeof(*flt));
    st_coord_times_t *ph = calloc((size_t)rounds, sizeof(*ph));
    size_t objects = 0, procs = 0;
    int partial = 0;
    for (int r = 0; r < rounds; r++) {
        uint64_t t0 = st_clock_ns(), c0 = cpu_ns(), f0 = faults();
        if (st_coord_dump_sync(co, "explicitly_triggered", &d) < 0)
            return -1;
        lat[r] = st_clock_ns() - t0;
        cpu[r] = cpu_ns() - c0;
        flt[r] = faults() - f0;
        st_coord_last_times(co, &ph[r]);
        if (getenv("ST_BENCH_MARKS") != NULL && n >= 100)
            fprintf(stderr, "MARK %" PRIu64 " %" PRIu64 " %" PRIu64 " %d\n", t0, t0 + ph[r].answers,
                    t0 + ph[r].total, (int)getpid());
        objects = d->n_globals;
        procs = d->n_procs;
        partial += d->partial;
    }
    long rss2 = status_kb("VmRSS:"), hwm = status_kb("VmHWM:");
    /* JSON write of the last dump alone */
    st_trace_t view = *st_coord_trace(co);
    view.dumps = d;
    view.n_dumps = 1;
    char out[256];
    snprintf(out, sizeof(out), "%s/trace%u.json", dir, n);
    uint64_t j0 = st_clock_ns();
    int wrc = st_trace_write_file(&view, out, NULL);
    uint64_t jt = st_clock_ns() - j0;
    phase_medians(ph, rounds);
    if (g_rows < MAX_ROWS) {
        g_rows_keep[g_rows] = g_keep;
        g_rows_n[g_rows++] = n;
    }
    free(ph);
    qsort(lat, (size_t)rounds, sizeof(*lat), cmp_u64);
    qsort(cpu, (size_t)rounds, sizeof(*cpu), cmp_u64);
    qsort(flt, (size_t)rounds, sizeof(*flt), cmp_u64);
    uint64_t p50 = lat[rounds / 2], p95 = lat[(rounds * 95 + 99) / 100 - 1];
    printf("%7u %4zu %8zu %9zu %9.1f %9.1f %9.1f %12.1f %10.1f %10.1f %10.1f %8d %8" PRIu64
           " %8.0f\n",
           n, g_keep, procs, objects, (double)p50 / 1e6, (double)p95 / 1e6,
           (double)cpu[rounds / 2] / 1e6, wrc == 0 ? (double)jt / 1e6 : -1.0, (double)rss1 / 1024,
           (double)rss2 / 1024, (double)hwm / 1024, partial, flt[rounds / 2],
           (double)p50 / ((double)n * OBJS));
    fflush(stdout);
    close(quit[1]);
    for (unsigned i = 0; i < n; i++) {
        while (waitpid(pids[i], NULL, WNOHANG) == 0)
            st_coord_run(co, 5);
    }
    free(pids);
    free(lat);
    free(cpu);
    free(flt);
    st_coord_close(co);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--child") == 0) {
        snprintf(g_sock, sizeof(g_sock), "%s", argv[3]);
        child((unsigned)atoi(argv[2]), CHILD_QUIT_FD);
    }
    ssize_t len = readlink("/proc/self/exe", g_exe, sizeof(g_exe) - 1);
    if (len <= 0)
        return 1;
    g_exe[len] = '\0';
    const char *exe = getenv("ST_BENCH_EXE"); /* under valgrind: the real path of this program */
    if (exe != NULL)
        snprintf(g_exe, sizeof(g_exe), "%s", exe);
    int rounds = argc > 1 ? atoi(argv[1]) : 15;
    unsigned max = argc > 2 ? (unsigned)atoi(argv[2]) : 500;
    bool keep_given = argc > 3;
    g_keep = keep_given ? (size_t)atoi(argv[3]) : 1;
    if (rounds < 1)
        rounds = 1;
    const char *win = getenv("ST_BENCH_WINDOW"); /* "all": every client asked at once */
    if (win != NULL)
        g_window = strcmp(win, "all") == 0 ? SIZE_MAX : (size_t)strtoul(win, NULL, 10);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    signal(SIGPIPE, SIG_IGN);
    char dir[] = "/tmp/st_bench_coord_XXXXXX";
    if (mkdtemp(dir) == NULL)
        return 1;
    printf("coordinator: global dump latency (request -> merged, annotated dump in the in-memory\n"
           "trace; no file is written per dump, json1 times writing one dump's JSON), cpu50: the\n"
           "coordinator's own CPU time per dump; %d rounds per row, %d objects per client (half\n"
           "shared with the next client); ns/rec: p50 per record the clients sent (clients x\n"
           "objects per client): the same in every row when the cost grows linearly with them\n",
           rounds, OBJS);
    if (getenv("ST_BENCH_REAL") != NULL)
        printf(
            "ST_BENCH_REAL: real memfds, 1000 of its own per client, each seen by the scan too\n");
    if (g_window == SIZE_MAX)
        printf("every client is asked at once (ST_BENCH_WINDOW=all)\n");
    else
        printf("at most %zu clients are asked at once (ask_window)\n",
               g_window > 0 ? g_window : (size_t)ST_COORD_ASK_WINDOW_DEFAULT);
    printf("keep: the dumps the coordinator's trace keeps (max_dumps; 0: every dump)\n\n");
    printf("%7s %4s %8s %9s %9s %9s %9s %12s %10s %10s %10s %8s %8s %8s\n", "clients", "keep",
           "procs", "objects", "p50 ms", "p95 ms", "cpu50 ms", "json1 ms", "RSS1 MiB", "RSSn MiB",
           "HWM MiB", "partial", "flt50", "ns/rec");
    static const unsigned sizes[] = {10, 100, 500};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        if (sizes[i] <= max && run(sizes[i], rounds, dir) < 0)
            fprintf(stderr, "bench_coordinator: run with %u clients failed\n", sizes[i]);
    if (!keep_given && max >= 100) { /* side by side: the same 100 clients, every dump kept */
        g_keep = 0;
        if (run(100, rounds, dir) < 0)
            fprintf(stderr, "bench_coordinator: run with 100 clients failed\n");
    }
    printf(
        "\nwhere a dump's time went, median ms per phase (st_coord_times_t: answers = request to\n"
        "the last answer in, index its part spent indexing them; prepare = creators, scan join,\n"
        "process dumps; build = global nodes and holders; graph = sort and annotation)\n");
    printf("%7s %4s", "clients", "keep");
    for (int p = 0; p < N_PHASES; p++)
        printf(" %9s", g_phase[p]);
    printf("\n");
    for (size_t r = 0; r < g_rows; r++) {
        printf("%7u %4zu", g_rows_n[r], g_rows_keep[r]);
        for (int p = 0; p < N_PHASES; p++)
            printf(" %9.1f", g_phases[r][p]);
        printf("\n");
    }
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : 1;
}
