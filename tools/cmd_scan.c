/* SPDX-License-Identifier: MIT
 *
 * `shmtrack scan`: one global dump of shared memory ownership from /proc alone (no preload).
 * Thin: parses arguments, calls st_scan_trace (src/scan.h), runs the graph processor for the
 * effective sizes and writes the trace.
 */
#include "cli.h"

#include "error.h"
#include "graph.h"
#include "scan.h"
#include "trace_json.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: shmtrack scan [--pid PID]... [--tree PID] [--policy P] [--threads N]\n"
        "                     [-o TRACE [--fsync]]\n"
        "\n"
        "Finds every shared memory object (shared anonymous, memfd, POSIX shm, SysV, hugetlbfs)\n"
        "that the selected processes map or hold an fd to, plus unattached SysV segments and\n"
        "/dev/shm files nobody holds, measures each object's resident bytes once, and writes a\n"
        "trace with one global dump in which each object is owned by one process.\n"
        "\n"
        "  --pid PID      scan this process (repeatable); it must exist\n"
        "  --tree PID     scan this process and all its descendants\n"
        "                 (neither: every process except shmtrack itself)\n"
        "  --policy P     creator (default): SysV segments go to their creator if it holds\n"
        "                 them, everything else to the holder that started first;\n"
        "                 equal: every holder gets an equal share\n"
        "                 (first-touch cannot be known from /proc and is refused)\n"
        "  --maps M       how to read mappings: auto (default: the maps text where shared\n"
        "                 mappings are dense, PROCMAP_QUERY where they are sparse), maps,\n"
        "                 procmap-query\n"
        "  --threads N    threads that read processes and measure objects (default: one\n"
        "                 per CPU, at most 4; N at most 8); the trace is the same whatever N\n"
        "  -o, --output TRACE  write the trace here (default: stdout), atomically (a\n"
        "                 temporary file renamed over TRACE); fsync'd when it replaces a\n"
        "                 non-empty file\n"
        "  --fsync        always fsync the trace and its directory\n"
        "  -h, --help     show this help\n"
        "\n"
        "Objects whose residency cannot be measured exactly (e.g. without CAP_SYS_ADMIN for\n"
        "/proc/PID/map_files) get a lower bound from smaps, labelled residency_source =\n"
        "smaps-lower-bound, and a warning in the trace. Exit status: 0 success, 1 failure,\n"
        "2 bad usage or a --pid/--tree process that does not exist.\n");
}

/* Whether to free the model before exiting: only where a leak checker looks (ASan/LSan builds).
 * Otherwise the process exit returns it at once, and freeing ~40000 small allocations one by one
 * is a few percent of a large scan. */
#if defined(__SANITIZE_ADDRESS__)
#define FREE_AT_EXIT 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(leak_sanitizer)
#define FREE_AT_EXIT 1
#endif
#endif
#ifndef FREE_AT_EXIT
#define FREE_AT_EXIT 0
#endif

/* The model left to the process exit stays reachable from here, so that valgrind's leak check
 * counts it as still reachable, not lost. */
static st_trace_t *volatile g_left_to_exit; /* volatile: a store nobody reads is kept */

static bool parse_pid(const char *s, int *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v <= 0 || v > INT_MAX)
        return false;
    *out = (int)v;
    return true;
}

/* A scan builds a model of tens of MiB in many small allocations; on VMs where a page fault is
 * expensive, faulting it in 4 KiB at a time is a large share of the run (bench_scan: ~6000 minor
 * faults). Grow the heap in one 64 MiB step, never trim it, and ask for transparent huge pages
 * on it (honoured when THP is "madvise" or "always"; harmless otherwise). One arena: the reading
 * and measuring threads allocate from this heap too, not from arenas of their own that fault in
 * 4 KiB at a time (perf stat: 790-920 page faults -> 420-520). No fastbins: freeing
 * the model then never stops to consolidate them (callgrind: 44.5 -> 39.4 M instructions to
 * free a 5500-object trace). */
static void heap_on_huge_pages(void)
{
    const size_t pad = 64u << 20, huge = 2u << 20;
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_MXFAST, 0);
    mallopt(M_ARENA_MAX, 1);
    mallopt(M_TOP_PAD, (int)pad);
    mallopt(M_TRIM_THRESHOLD, (int)(2 * pad));
    void *p = malloc(1u << 20); /* extends the break by itself + the pad */
    char *top = sbrk(0);
    if (p == NULL || top == (char *)-1)
        goto out;
    uintptr_t start = ((uintptr_t)p + huge - 1) & ~(uintptr_t)(huge - 1);
    if ((uintptr_t)top > start)
        madvise((void *)start, (uintptr_t)top - start, MADV_HUGEPAGE);
out:
    free(p);
}

/* The scan keeps one fd per measured object open until it is done measuring, then closes them
 * on another thread while this one builds and writes the trace (opts.close_async): room for
 * them, as far as the hard limit allows (the default soft limit, 1024, is for select()). */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int st_cmd_scan(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"pid", required_argument, NULL, 'p'},
        {"tree", required_argument, NULL, 't'},
        {"policy", required_argument, NULL, 'P'},
        {"maps", required_argument, NULL, 'm'},
        {"output", required_argument, NULL, 'o'},
        {"threads", required_argument, NULL, 'T'},
        {"fsync", no_argument, NULL, 'F'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int status = ST_EXIT_USAGE;
    int *pids = NULL;
    size_t n_pids = 0;
    const char *output = "-";
    st_write_sync_t sync = ST_WRITE_FSYNC_REPLACE;
    st_trace_t *trace = NULL;
    st_scan_options_t opts;
    st_scan_options_init(&opts);
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'p': {
            int pid;
            if (!parse_pid(optarg, &pid)) {
                fprintf(stderr, "shmtrack scan: --pid '%s' is not a process id\n", optarg);
                goto out;
            }
            int *p = realloc(pids, (n_pids + 1) * sizeof(int));
            if (p == NULL) {
                status = ST_EXIT_FAIL;
                goto out;
            }
            pids = p;
            pids[n_pids++] = pid;
            break;
        }
        case 't':
            if (!parse_pid(optarg, &opts.tree_root)) {
                fprintf(stderr, "shmtrack scan: --tree '%s' is not a process id\n", optarg);
                goto out;
            }
            break;
        case 'P':
            if (st_policy_parse(optarg, &opts.policy) < 0) {
                fprintf(stderr, "shmtrack scan: unknown policy '%s' (creator, equal)\n", optarg);
                goto out;
            }
            if (opts.policy == ST_POLICY_FIRST_TOUCH) {
                fprintf(stderr, "shmtrack scan: policy first-touch needs the preload: which "
                                "process faulted a page first cannot be read from /proc\n");
                goto out;
            }
            break;
        case 'm':
            if (strcmp(optarg, "auto") == 0)
                opts.maps_method = ST_MAPS_AUTO;
            else if (strcmp(optarg, "maps") == 0)
                opts.maps_method = ST_MAPS_TEXT;
            else if (strcmp(optarg, "procmap-query") == 0)
                opts.maps_method = ST_MAPS_PROCMAP;
            else {
                fprintf(stderr, "shmtrack scan: unknown --maps '%s'\n", optarg);
                goto out;
            }
            break;
        case 'o':
            output = optarg;
            break;
        case 'F':
            sync = ST_WRITE_FSYNC;
            break;
        case 'T': {
            int n;
            if (!parse_pid(optarg, &n) || n > 8) {
                fprintf(stderr, "shmtrack scan: --threads '%s' is not a number from 1 to 8\n",
                        optarg);
                goto out;
            }
            opts.threads = (unsigned)n;
            break;
        }
        case 'h':
            usage(stdout);
            status = ST_EXIT_OK;
            goto out;
        default:
            usage(stderr);
            goto out;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "shmtrack scan: unexpected argument '%s'\n", argv[optind]);
        goto out;
    }
    if (n_pids > 0 && opts.tree_root > 0) {
        fprintf(stderr, "shmtrack scan: --pid and --tree cannot be combined\n");
        goto out;
    }
    opts.pids = pids;
    opts.n_pids = n_pids;
    opts.close_async = true;
    raise_fd_limit();
    heap_on_huge_pages();
    int bad = 0;
    int rc = st_scan_trace(&opts, &trace, &bad);
    if (rc == -ESRCH && bad > 0) {
        fprintf(stderr, "shmtrack scan: no process with pid %d\n", bad);
        goto out;
    }
    if (rc == -EACCES || rc == -EPERM) {
        fprintf(stderr,
                "shmtrack scan: no selected process could be read (%s): run as root or as "
                "the processes' owner\n",
                st_strerror(rc));
        status = ST_EXIT_FAIL;
        goto out;
    }
    if (rc == -ESRCH) {
        fprintf(stderr, "shmtrack scan: every selected process exited before it could be read\n");
        status = ST_EXIT_FAIL;
        goto out;
    }
    if (rc < 0) {
        fprintf(stderr, "shmtrack scan: %s\n", st_strerror(rc));
        status = rc == ST_EUSAGE ? ST_EXIT_USAGE : ST_EXIT_FAIL;
        goto out;
    }
    status = ST_EXIT_FAIL;
    if ((rc = st_graph_annotate_trace(trace)) < 0) {
        fprintf(stderr, "shmtrack scan: graph processor: %s\n", st_strerror(rc));
        goto out;
    }
    st_error_t err;
    memset(&err, 0, sizeof(err));
    if ((rc = st_trace_write_file_ex(trace, output, sync, &err)) < 0) {
        char msg[1024];
        st_error_format(&err, "event", msg, sizeof(msg));
        fprintf(stderr, "shmtrack scan: %s: %s\n", output, msg[0] ? msg : st_strerror(rc));
        goto out;
    }
    const st_global_dump_t *d = &trace->dumps[0];
    if (d->n_problems > 0)
        fprintf(stderr, "shmtrack scan: %zu thing(s) could not be read (listed in the trace)\n",
                d->n_problems);
    status = ST_EXIT_OK;
out:
    if (FREE_AT_EXIT) /* otherwise the model goes with the process, which exits next */
        st_trace_free(trace);
    else
        g_left_to_exit = trace;
    free(pids);
    return status;
}
