/* SPDX-License-Identifier: MIT
 *
 * bench_preload: the interposer's overhead, measured side by side in one run.
 *
 * Three long-lived worker processes run the same loops: A without and B with
 * LD_PRELOAD=libshmtrack.so, B connected to a minimal coordinator (an ipc/server.h loop on a
 * thread of this process that accepts events and discards them), so that B's agent thread does
 * the work it does in real use; H has the preload without a coordinator (the hooks' own cost: no
 * agent thread, events counted and dropped), to tell the two costs apart. Both workers are pinned
 * to the same CPU (sched_setaffinity before exec; the agent thread inherits it), so they never run
 * at once and the agent's background work competes with B's own loop as it would on a busy machine.
 * The parent drives many short rounds, rotating the order (A B H, B H A, H A B) so that slow drifts
 * of the machine's load hit both equally, and prints per case: (a) shared anonymous mmap + touch
 * one page + munmap        (tracked path) (b) memfd_create + ftruncate + mmap + munmap + close
 * (tracked path) (c) private anonymous mmap + munmap                        (the untracked path)
 * the minimum and median wall-clock nanoseconds per iteration of each worker over the rounds, the
 * ratio of the medians (the figure the targets apply to) and of the minimums, and the process CPU
 * time per iteration of each worker over the whole case (CLOCK_PROCESS_CPUTIME_ID: every thread,
 * so work moved to the agent thread is counted), with the part spent outside the main thread.
 * A second table times every iteration on its own (10th percentile and median per round, averaged
 * over a third as many rotating rounds): another process's work spoils single iterations there,
 * not whole rounds, so it says more on a loaded machine.
 * Then the registry's memory per tracked object (the preload's registry code, linked here).
 *
 * Usage: bench_preload [--preload PATH] [--rounds N] [--round-ms MS]
 *        bench_preload --worker   (internal: reads commands on stdin)
 */
#include "model.h"
#include "registry.h"
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define PAGE 4096
#define MAX_ROUNDS 999

static double clock_ns(clockid_t id)
{
    struct timespec t;
    clock_gettime(id, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

/* ---- worker ---------------------------------------------------------------------------------- */

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

static int cmp_double(const void *a, const void *b);

/* Commands, one per line on stdin, one answer line each on stdout:
 *   run C N   N iterations of case C: "<wall ns>"
 *   iter C N  N iterations of case C, each timed: "<10th percentile ns> <median ns>"
 *   cpu       after letting background threads drain (300 ms asleep): "<process ns> <thread ns>"
 *   quit */
static int worker(void)
{
    char line[128];
    setvbuf(stdout, NULL, _IOLBF, 0);
    while (fgets(line, sizeof(line), stdin) != NULL) {
        char c;
        long n;
        if (sscanf(line, "run %c %ld", &c, &n) == 2) {
            double t0 = clock_ns(CLOCK_MONOTONIC);
            for (long i = 0; i < n; i++)
                if (one_iteration(c) != 0) {
                    perror("bench_preload worker");
                    return 1;
                }
            printf("%.0f\n", clock_ns(CLOCK_MONOTONIC) - t0);
        } else if (sscanf(line, "iter %c %ld", &c, &n) == 2 && n > 0) {
            static double t[1 << 16];
            if (n > (long)(sizeof(t) / sizeof(t[0])))
                n = (long)(sizeof(t) / sizeof(t[0]));
            for (long i = 0; i < n; i++) {
                double t0 = clock_ns(CLOCK_MONOTONIC);
                if (one_iteration(c) != 0) {
                    perror("bench_preload worker");
                    return 1;
                }
                t[i] = clock_ns(CLOCK_MONOTONIC) - t0;
            }
            qsort(t, (size_t)n, sizeof(t[0]), cmp_double);
            printf("%.0f %.0f\n", t[n / 10], t[n / 2]);
        } else if (strncmp(line, "cpu", 3) == 0) {
            struct timespec ts = {0, 300 * 1000 * 1000};
            nanosleep(&ts, NULL);
            printf("%.0f %.0f\n", clock_ns(CLOCK_PROCESS_CPUTIME_ID),
                   clock_ns(CLOCK_THREAD_CPUTIME_ID));
        } else {
            return 0;
        }
    }
    return 0;
}

/* ---- parent ---------------------------------------------------------------------------------- */

typedef struct proc {
    pid_t pid;
    FILE *to, *from;
} proc_t;

static int start_worker(proc_t *w, const char *self, const char *preload, const char *sock_env,
                        int cpu)
{
    int in[2], out[2];
    if (pipe(in) != 0 || pipe(out) != 0)
        return -1;
    char *env[1024];
    static char preload_env[2][4200];
    static int slot;
    int n = 0;
    for (char **e = environ; *e != NULL && n < 1020; e++)
        if (strncmp(*e, "LD_PRELOAD=", 11) != 0 && strncmp(*e, "SHMTRACK_", 9) != 0)
            env[n++] = *e;
    if (preload != NULL) {
        char *pe = preload_env[slot++ & 1];
        snprintf(pe, sizeof(preload_env[0]), "LD_PRELOAD=%s", preload);
        env[n++] = pe;
        if (sock_env != NULL)
            env[n++] = (char *)sock_env;
    }
    env[n] = NULL;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        if (sched_setaffinity(0, sizeof(set), &set) != 0)
            _exit(126);
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[0]);
        close(in[1]);
        close(out[0]);
        close(out[1]);
        char *argv[] = {(char *)self, "--worker", NULL};
        execve(self, argv, env);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    w->pid = pid;
    w->to = fdopen(in[1], "w");
    w->from = fdopen(out[0], "r");
    if (w->to == NULL || w->from == NULL)
        return -1;
    setvbuf(w->to, NULL, _IOLBF, 0);
    return 0;
}

static int ask(proc_t *w, const char *cmd, double *x, double *y)
{
    char line[128];
    if (fprintf(w->to, "%s\n", cmd) < 0 || fgets(line, sizeof(line), w->from) == NULL)
        return -1;
    int want = y != NULL ? 2 : 1;
    return sscanf(line, "%lf %lf", x, y != NULL ? y : x) == want ? 0 : -1;
}

static void stop_worker(proc_t *w)
{
    if (w->to != NULL) {
        fprintf(w->to, "quit\n");
        fclose(w->to);
    }
    if (w->from != NULL)
        fclose(w->from);
    if (w->pid > 0)
        waitpid(w->pid, NULL, 0);
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

/* The minimal coordinator: accepts clients, reads and discards their events. */
static volatile int server_stop;
static int server_ready;

static void on_ready(void *ud, st_conn_t *c)
{
    (void)ud;
    (void)c;
    __atomic_add_fetch(&server_ready, 1, __ATOMIC_RELAXED);
}

static void on_frame(void *ud, st_conn_t *c, const st_frame_t *f)
{
    (void)ud;
    (void)c;
    (void)f;
}

static void on_close(void *ud, st_conn_t *c, int err, const char *why)
{
    (void)ud;
    (void)c;
    (void)err;
    (void)why;
}

static void *server_main(void *arg)
{
    st_server_t *s = arg;
    while (!server_stop)
        st_server_run(s, 50);
    return NULL;
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

/* The first line of /proc/loadavg into buf (len bytes), without its newline; buf stays as it
 * was when the file cannot be read. */
static void read_loadavg(char *buf, size_t len)
{
    FILE *f = fopen("/proc/loadavg", "r");
    if (f != NULL) {
        if (fgets(buf, (int)len, f) != NULL)
            buf[strcspn(buf, "\n")] = '\0';
        fclose(f);
    }
}

/* The CPU both workers are pinned to: the last one this process may use. */
static int pick_cpu(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) != 0)
        return 0;
    int cpu = 0;
    for (int i = 0; i < CPU_SETSIZE; i++)
        if (CPU_ISSET(i, &set))
            cpu = i;
    return cpu;
}

typedef struct bench_case {
    char c;
    const char *what;
    double target;
} bench_case_t;

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--worker") == 0)
        return worker();
    const char *preload = PRELOAD_PATH;
    int rounds = 60, round_ms = 30;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--preload") == 0 && i + 1 < argc)
            preload = argv[++i];
        else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (strcmp(argv[i], "--round-ms") == 0 && i + 1 < argc)
            round_ms = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_preload [--preload PATH] [--rounds N] [--round-ms MS]\n");
            return 2;
        }
    }
    if (rounds < 3 || rounds > MAX_ROUNDS)
        rounds = 60;
    if (round_ms < 1 || round_ms > 10000)
        round_ms = 30;
    if (access(preload, R_OK) != 0) {
        fprintf(stderr, "bench_preload: %s: %s\n", preload, strerror(errno));
        return 1;
    }

    char dir[] = "/tmp/shmtrack-bench-XXXXXX";
    if (mkdtemp(dir) == NULL) {
        perror("bench_preload: mkdtemp");
        return 1;
    }
    char sock[128], sock_env[160];
    snprintf(sock, sizeof(sock), "%s/s", dir);
    snprintf(sock_env, sizeof(sock_env), "SHMTRACK_SOCKET=%s", sock);
    st_server_config_t cfg = {.socket_path = sock, .allow_root = true};
    st_server_ops_t ops = {on_ready, on_frame, on_close, NULL, NULL};
    st_server_t *srv = NULL;
    pthread_t srv_thread;
    if (st_server_open(&cfg, &ops, NULL, &srv) != 0 ||
        pthread_create(&srv_thread, NULL, server_main, srv) != 0) {
        fprintf(stderr, "bench_preload: cannot start the coordinator socket\n");
        return 1;
    }

    int cpu = pick_cpu();
    proc_t wa = {0}, wb = {0}, wh = {0};
    int rc = 1;
    if (start_worker(&wa, argv[0], NULL, NULL, cpu) != 0 ||
        start_worker(&wb, argv[0], preload, sock_env, cpu) != 0 ||
        start_worker(&wh, argv[0], preload, NULL, cpu) != 0) {
        fprintf(stderr, "bench_preload: cannot start the workers\n");
        goto out;
    }

    static const bench_case_t cases[] = {
        {'a', "(a) shared anon mmap+touch+munmap", 1.05},
        {'b', "(b) memfd+ftruncate+mmap+munmap+close", 1.05},
        {'c', "(c) private anon mmap+munmap", 1.02},
    };
    char load[128] = "?";
    read_loadavg(load, sizeof(load));
    printf("bench_preload: %s\n", preload);
    printf("load average at start: %s; %ld CPUs online; both workers pinned to CPU %d\n", load,
           sysconf(_SC_NPROCESSORS_ONLN), cpu);
    printf("%d rounds of ~%d ms per worker and case, order rotating (A B H, B H A, H A B)\n",
           rounds, round_ms);
    printf("A = without, B = with LD_PRELOAD (connected to a coordinator that discards events),\n"
           "H = with LD_PRELOAD and no coordinator (the hooks alone: no agent thread, events "
           "dropped); targets apply to B/A\n");
    printf("wall: ns per iteration over the rounds; cpu: process CPU ns per iteration over the "
           "case (all threads), bg = the part outside the main thread\n\n");
    printf("%-38s %8s %8s %8s %8s %7s %7s %7s | %8s %8s %6s %7s %7s %s\n", "case", "A min", "A med",
           "B min", "B med", "med B/A", "min B/A", "med H/A", "A cpu", "B cpu", "B bg", "cpu B/A",
           "cpu H/A", "target");

    static double ta[MAX_ROUNDS], tb[MAX_ROUNDS], th[MAX_ROUNDS];
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        char cmd[64];
        /* Calibrate on A: iterations for one round of round_ms. */
        long iters = 200;
        double ns = 0;
        snprintf(cmd, sizeof(cmd), "run %c %ld", cases[k].c, iters);
        if (ask(&wa, cmd, &ns, NULL) != 0 || ask(&wb, cmd, &ns, NULL) != 0 ||
            ask(&wh, cmd, &ns, NULL) != 0)
            goto fail;
        if (ask(&wa, cmd, &ns, NULL) != 0)
            goto fail;
        iters = (long)((double)round_ms * 1e6 / (ns / (double)iters));
        if (iters < 10)
            iters = 10;
        snprintf(cmd, sizeof(cmd), "run %c %ld", cases[k].c, iters);
        double ca0, cta0, cb0, ctb0, ch0, cth0, ca1, cta1, cb1, ctb1, ch1, cth1;
        if (ask(&wa, "cpu", &ca0, &cta0) != 0 || ask(&wb, "cpu", &cb0, &ctb0) != 0 ||
            ask(&wh, "cpu", &ch0, &cth0) != 0)
            goto fail;
        for (int r = 0; r < rounds; r++) {
            /* A B H, then B H A, then H A B: each position equally often */
            proc_t *w[3] = {&wa, &wb, &wh};
            double *t[3] = {&ta[r], &tb[r], &th[r]};
            for (int i = 0; i < 3; i++)
                if (ask(w[(r + i) % 3], cmd, t[(r + i) % 3], NULL) != 0)
                    goto fail;
            ta[r] /= (double)iters;
            tb[r] /= (double)iters;
            th[r] /= (double)iters;
        }
        if (ask(&wa, "cpu", &ca1, &cta1) != 0 || ask(&wb, "cpu", &cb1, &ctb1) != 0 ||
            ask(&wh, "cpu", &ch1, &cth1) != 0)
            goto fail;
        double total = (double)iters * rounds;
        double cpu_a = (ca1 - ca0) / total, cpu_b = (cb1 - cb0) / total,
               cpu_h = (ch1 - ch0) / total;
        double bg_b = ((cb1 - cb0) - (ctb1 - ctb0)) / total;
        double ma = median(ta, rounds), mb = median(tb, rounds), mh = median(th, rounds);
        double mina = ta[0], minb = tb[0]; /* sorted by median() */
        printf("%-38s %8.1f %8.1f %8.1f %8.1f %6.3fx %6.3fx %6.3fx | %8.1f %8.1f %6.1f %6.3fx "
               "%6.3fx <= %.2fx\n",
               cases[k].what, mina, ma, minb, mb, mb / ma, minb / mina, mh / ma, cpu_a, cpu_b, bg_b,
               cpu_b / cpu_a, cpu_h / cpu_a, cases[k].target);
        fflush(stdout);
    }
    read_loadavg(load, sizeof(load));
    /* Per-iteration percentiles: each iteration timed on its own, so that an interruption by
     * another process spoils one iteration, not a whole round (the figures above are round
     * means): less sensitive to a loaded machine. */
    printf("\nper iteration (each timed alone; mean over %d rotating rounds of each worker's 10th "
           "percentile and median, ns)\n",
           rounds / 3);
    printf("%-38s %8s %8s %8s %8s %7s %7s %7s %7s\n", "case", "A p10", "A p50", "B p10", "B p50",
           "p10 B/A", "p50 B/A", "p10 H/A", "p50 H/A");
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        char cmd[64];
        double ns = 0;
        snprintf(cmd, sizeof(cmd), "run %c 200", cases[k].c);
        if (ask(&wa, cmd, &ns, NULL) != 0)
            goto fail;
        long iters = (long)((double)round_ms * 1e6 / (ns / 200.0));
        snprintf(cmd, sizeof(cmd), "iter %c %ld", cases[k].c, iters < 10 ? 10 : iters);
        double sum[3][2] = {{0}};
        int n = rounds / 3;
        for (int r = 0; r < n; r++) {
            proc_t *w[3] = {&wa, &wb, &wh};
            for (int i = 0; i < 3; i++) {
                int j = (r + i) % 3;
                double p10, p50;
                if (ask(w[j], cmd, &p10, &p50) != 0)
                    goto fail;
                sum[j][0] += p10;
                sum[j][1] += p50;
            }
        }
        printf("%-38s %8.1f %8.1f %8.1f %8.1f %6.3fx %6.3fx %6.3fx %6.3fx\n", cases[k].what,
               sum[0][0] / n, sum[0][1] / n, sum[1][0] / n, sum[1][1] / n, sum[1][0] / sum[0][0],
               sum[1][1] / sum[0][1], sum[2][0] / sum[0][0], sum[2][1] / sum[0][1]);
        fflush(stdout);
    }
    read_loadavg(load, sizeof(load));
    printf("\nload average at end: %s; coordinator handshakes: %d\n\n", load,
           __atomic_load_n(&server_ready, __ATOMIC_RELAXED));
    rc = registry_bytes();
    goto out;
fail:
    fprintf(stderr, "bench_preload: a worker failed\n");
out:
    stop_worker(&wa);
    stop_worker(&wb);
    stop_worker(&wh);
    server_stop = 1;
    pthread_join(srv_thread, NULL);
    st_server_close(srv);
    rmdir(dir);
    return rc;
}
