/* SPDX-License-Identifier: MIT
 *
 * bench_scan_floor: the kernel calls an exact /proc scan cannot do without, and nothing else, so
 * that bench_scan can print how fast any scanner built on these interfaces could be on this
 * machine beside what shmtrack scan and smem take.
 *
 * Usage: bench_scan_floor [--threads N] --pid PID... (the arguments shmtrack scan gets; -o and its
 * value are ignored). Per process it reads what issue 3 asks for: stat (start time, the owner
 * rule), status and smaps_rollup (the process totals of DESIGN §5), maps (the shared mappings; the
 * text is parsed with sscanf, nothing is kept but the range and the object's device and inode) and
 * the fd directory (objects held by an fd: each entry is stat'ed). Per shared object, once (by
 * device and inode): open /proc/PID/map_files/<range> (or /proc/PID/fd/N), fstat (st_blocks, for
 * the swapped bytes) and cachestat (the resident bytes), then close. Processes, then objects, are
 * split over N threads (default: one per CPU, at most 4, as shmtrack scan does). It builds no dump,
 * computes no ownership and writes no trace: it prints one line, the number of objects and their
 * resident bytes, which bench_scan compares with the kernel truth so that the floor is known to
 * have measured the same thing. Linux only (cachestat: 6.5 or later).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#ifndef __NR_cachestat
#define __NR_cachestat 451
#endif

enum { MAX_THREADS = 4, BUF = 1 << 20 };

struct cs_range {
    uint64_t off, len;
};
struct cs {
    uint64_t cache, dirty, writeback, evicted, recently_evicted;
};

/* One way to one shared object: the holder's pid and the name under map_files or fd. */
typedef struct way {
    uint64_t dev, ino;
    int pid;
    bool fd;
    char name[40];
} way_t;

typedef struct worker {
    unsigned idx;
    way_t *ways;
    size_t n, cap;
    uint64_t resident;
    size_t measured;
    char *buf;
} worker_t;

static int *g_pids;
static size_t g_npids;
static unsigned g_threads;
static way_t *g_all;
static size_t g_nall;

static int add_way(worker_t *w, const way_t *x)
{
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 1024;
        way_t *v = realloc(w->ways, cap * sizeof(*v));
        if (v == NULL)
            return -ENOMEM;
        w->ways = v;
        w->cap = cap;
    }
    w->ways[w->n++] = *x;
    return 0;
}

/* Reads a whole /proc file into w->buf; -1 when it cannot be opened. */
static ssize_t slurp(worker_t *w, int dfd, const char *name)
{
    int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t n = 0;
    ssize_t r;
    while (n < BUF - 1 && (r = read(fd, w->buf + n, BUF - 1 - n)) > 0)
        n += (size_t)r;
    w->buf[n] = '\0';
    close(fd);
    return (ssize_t)n;
}

static void read_maps(worker_t *w, int pid)
{
    for (char *l = w->buf; *l != '\0';) {
        char *nl = strchr(l, '\n');
        if (nl != NULL)
            *nl = '\0';
        unsigned long long s, e, off, ino;
        unsigned maj, min;
        char perms[8];
        if (sscanf(l, "%llx-%llx %7s %llx %x:%x %llu", &s, &e, perms, &off, &maj, &min, &ino) ==
                7 &&
            perms[3] == 's' && ino != 0) {
            way_t x = {makedev(maj, min), ino, pid, false, ""};
            snprintf(x.name, sizeof(x.name), "%llx-%llx", s, e);
            (void)add_way(w, &x);
        }
        if (nl == NULL)
            break;
        l = nl + 1;
    }
}

static void read_fds(worker_t *w, int dfd, int pid)
{
    int fdd = openat(dfd, "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fdd < 0 ? NULL : fdopendir(fdd);
    if (d == NULL) {
        if (fdd >= 0)
            close(fdd);
        return;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        struct stat st;
        if (de->d_name[0] == '.' || fstatat(fdd, de->d_name, &st, 0) < 0 || !S_ISREG(st.st_mode))
            continue;
        way_t x = {st.st_dev, st.st_ino, pid, true, ""};
        snprintf(x.name, sizeof(x.name), "%.39s", de->d_name);
        (void)add_way(w, &x);
    }
    closedir(d);
}

static void *reader(void *arg)
{
    worker_t *w = arg;
    for (size_t i = w->idx; i < g_npids; i += g_threads) {
        char path[32];
        snprintf(path, sizeof(path), "/proc/%d", g_pids[i]);
        int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
            continue;
        (void)slurp(w, dfd, "stat");
        (void)slurp(w, dfd, "status");
        (void)slurp(w, dfd, "smaps_rollup");
        read_fds(w, dfd, g_pids[i]);
        if (slurp(w, dfd, "maps") >= 0)
            read_maps(w, g_pids[i]);
        close(dfd);
    }
    return NULL;
}

static void *measurer(void *arg)
{
    worker_t *w = arg;
    for (size_t i = w->idx; i < g_nall; i += g_threads) {
        const way_t *x = &g_all[i];
        char path[96];
        snprintf(path, sizeof(path), "/proc/%d/%s/%s", x->pid, x->fd ? "fd" : "map_files", x->name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        struct stat st;
        struct cs_range r = {0, 0};
        struct cs c;
        if (fstat(fd, &st) == 0 && syscall(__NR_cachestat, fd, &r, &c, 0) == 0) {
            w->resident += c.cache * (uint64_t)sysconf(_SC_PAGESIZE);
            w->measured++;
        }
        close(fd);
    }
    return NULL;
}

static int cmp_way(const void *a, const void *b)
{
    const way_t *x = a, *y = b;
    if (x->dev != y->dev)
        return x->dev < y->dev ? -1 : 1;
    if (x->ino != y->ino)
        return x->ino < y->ino ? -1 : 1;
    return 0;
}

static void run(void *(*fn)(void *), worker_t *w)
{
    pthread_t th[MAX_THREADS];
    for (unsigned t = 1; t < g_threads; t++)
        if (pthread_create(&th[t], NULL, fn, &w[t]) != 0)
            exit(1);
    fn(&w[0]);
    for (unsigned t = 1; t < g_threads; t++)
        pthread_join(th[t], NULL);
}

int main(int argc, char **argv)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    g_threads = cpus < 1 ? 1 : cpus > MAX_THREADS ? MAX_THREADS : (unsigned)cpus;
    if ((g_pids = calloc((size_t)argc, sizeof(int))) == NULL)
        return 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--pid") == 0 && i + 1 < argc)
            g_pids[g_npids++] = atoi(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            g_threads = (unsigned)atoi(argv[++i]);
        else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc)
            i++;
    }
    if (g_npids == 0 || g_threads < 1 || g_threads > MAX_THREADS) {
        fprintf(stderr, "usage: bench_scan_floor [--threads 1-%d] --pid PID...\n", MAX_THREADS);
        return 2;
    }
    worker_t w[MAX_THREADS];
    memset(w, 0, sizeof(w));
    for (unsigned t = 0; t < g_threads; t++) {
        w[t].idx = t;
        if ((w[t].buf = malloc(BUF)) == NULL)
            return 1;
    }
    run(reader, w);
    size_t n = 0;
    for (unsigned t = 0; t < g_threads; t++)
        n += w[t].n;
    if ((g_all = malloc((n ? n : 1) * sizeof(*g_all))) == NULL)
        return 1;
    for (unsigned t = 0; t < g_threads; t++) {
        if (w[t].n > 0)
            memcpy(g_all + g_nall, w[t].ways, w[t].n * sizeof(*g_all));
        g_nall += w[t].n;
    }
    /* each object once: its first way (map_files and fd ways of one object are equivalent here) */
    qsort(g_all, g_nall, sizeof(*g_all), cmp_way);
    size_t u = 0;
    for (size_t i = 0; i < g_nall; i++)
        if (u == 0 || cmp_way(&g_all[u - 1], &g_all[i]) != 0)
            g_all[u++] = g_all[i];
    g_nall = u;
    run(measurer, w);
    uint64_t resident = 0;
    size_t measured = 0;
    for (unsigned t = 0; t < g_threads; t++) {
        resident += w[t].resident;
        measured += w[t].measured;
    }
    printf("objects %zu measured %zu resident %" PRIu64 "\n", g_nall, measured, resident);
    return 0;
}
