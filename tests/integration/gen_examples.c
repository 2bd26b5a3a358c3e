/* SPDX-License-Identifier: MIT
 *
 * Writes the bundled example traces of tests/data/examples/ from models built here, through the
 * project's own writer, so that the files follow DESIGN §5 exactly and every number in them has
 * a reason written next to it. Usage: gen_examples DIR (writes DIR/browser.json, DIR/equal.json).
 * The ctest check examples_fresh regenerates them into the build tree and compares with the
 * committed files.
 *
 * browser.json: a broker (pid 1000) and three workers (1001-1003) under the creator policy
 * (the creator claims importance 2, every other holder 0):
 *   memfd:0:1:2048 "shared-heap", created by the broker, held by all four: the broker owns it.
 *   anon:0:1:4096  "/dev/zero (deleted)", created by worker 1001, shared with 1002: 1001 owns it.
 *   memfd:0:1:2050 "frames", its creator (999) has exited: the holders split it equally, 1048577
 *                  bytes into 349526 + 349526 + 349525 (largest remainder, lowest pid first).
 *   posix:0:26:11  "/dev/shm/stale-cache", nobody maps it: 524288 bytes unattributed.
 * Dump 0x2, a second later: worker 1003 has exited (frames: 524289 + 524288), the heap grew to
 * 12 MiB resident. equal.json: one 100-byte object held by three processes at importance 0:
 * 34 + 33 + 33.
 */
#include "error.h"
#include "model.h"
#include "trace_json.h"

#include <stdio.h>

#define KiB 1024ull
#define MiB (1024ull * 1024ull)

typedef struct proc_spec {
    int pid;
    const char *name;
    uint64_t rss, pss, private_footprint, uss, swap, rss_shmem;
} proc_spec_t;

typedef struct holder_spec {
    int pid;
    uint64_t mapped;
    int importance;
} holder_spec_t;

static int add_proc(st_global_dump_t *d, const proc_spec_t *p)
{
    st_process_dump_t *proc = NULL;
    int rc = st_dump_add_process(d, p->pid, p->name, &proc);
    if (rc < 0)
        return rc;
    proc->totals.resident_set_bytes = p->rss;
    proc->totals.pss_bytes = p->pss;
    proc->totals.private_footprint_bytes = p->private_footprint;
    proc->totals.uss_bytes = p->uss;
    proc->totals.swap_bytes = p->swap;
    proc->totals.rss_shmem_bytes = p->rss_shmem;
    proc->totals.present = (1u << ST_TOTAL_COUNT) - 1;
    return 0;
}

/* The global node (carried by carrier) and one holder node + edge per holder. */
static int add_object(st_global_dump_t *d, const st_object_info_t *info, int carrier,
                      const holder_spec_t *holders, size_t n)
{
    int rc = st_dump_add_object(d, info, carrier, NULL);
    for (size_t i = 0; i < n && rc == 0; i++) {
        st_process_dump_t *proc = st_dump_find_process(d, holders[i].pid);
        rc = proc
                 ? st_process_add_holder(proc, info, holders[i].mapped, holders[i].importance, NULL)
                 : -1;
    }
    return rc;
}

static int browser_dump(st_trace_t *t, uint64_t id, uint64_t ts, bool worker3)
{
    st_global_dump_t *d = NULL;
    int rc = st_trace_add_dump(t, id, ts, &d);
    if (rc < 0)
        return rc;
    const proc_spec_t procs1[] = {
        {1000, "broker", 20 * MiB, 14 * MiB, 10 * MiB, 9 * MiB, 0, 8 * MiB},
        {1001, "worker-1", 12 * MiB, 6 * MiB, 4 * MiB, 3 * MiB, 0, 8 * MiB},
        {1002, "worker-2", 11 * MiB, 5 * MiB, 3 * MiB, 2 * MiB, 0, 8 * MiB},
        {1003, "worker-3", 10 * MiB, 4 * MiB, 2 * MiB, 1 * MiB, 0, 8 * MiB},
    };
    const proc_spec_t procs2[] = {
        {1000, "broker", 24 * MiB, 18 * MiB, 10 * MiB, 9 * MiB, 0, 12 * MiB},
        {1001, "worker-1", 13 * MiB, 7 * MiB, 4 * MiB, 3 * MiB, 0, 12 * MiB},
        {1002, "worker-2", 12 * MiB, 6 * MiB, 3 * MiB, 2 * MiB, 0, 12 * MiB},
    };
    const proc_spec_t *procs = worker3 ? procs1 : procs2;
    size_t n_procs = worker3 ? 4 : 3;
    for (size_t i = 0; i < n_procs && rc == 0; i++)
        rc = add_proc(d, &procs[i]);

    st_object_info_t heap = {"memfd:0:1:2048",
                             ST_KIND_MEMFD,
                             "shared-heap",
                             worker3 ? 8 * MiB : 12 * MiB,
                             16 * MiB,
                             worker3 ? 1 * MiB : 0,
                             1000,
                             "heap",
                             0};
    const holder_spec_t heap_holders[] = {
        {1000, 16 * MiB, 2}, {1001, 8 * MiB, 0}, {1002, 8 * MiB, 0}, {1003, 8 * MiB, 0}};
    st_object_info_t scratch = {"anon:0:1:4096",
                                ST_KIND_ANON,
                                "/dev/zero (deleted)",
                                2 * MiB,
                                4 * MiB,
                                0,
                                1001,
                                "scratch",
                                0};
    const holder_spec_t scratch_holders[] = {{1001, 4 * MiB, 2}, {1002, 4 * MiB, 0}};
    st_object_info_t frames = {
        "memfd:0:1:2050", ST_KIND_MEMFD, "frames", 1 * MiB + 1, 2 * MiB, 0, 999, "frames", 0};
    const holder_spec_t frames_holders[] = {
        {1001, 2 * MiB, 0}, {1002, 2 * MiB, 0}, {1003, 2 * MiB, 0}};
    st_object_info_t stale = {
        "posix:0:26:11", ST_KIND_POSIX, "/dev/shm/stale-cache", 512 * KiB, 1 * MiB, 0, 0, NULL, 0};

    if (rc == 0)
        rc = add_object(d, &heap, 1000, heap_holders, worker3 ? 4 : 3);
    if (rc == 0)
        rc = add_object(d, &scratch, 1001, scratch_holders, 2);
    if (rc == 0)
        rc = add_object(d, &frames, 1001, frames_holders, worker3 ? 3 : 2);
    if (rc == 0)
        rc = add_object(d, &stale, 1000, NULL, 0);
    if (rc == 0)
        st_dump_sort(d);
    return rc;
}

static int equal_dump(st_trace_t *t)
{
    st_global_dump_t *d = NULL;
    int rc = st_trace_add_dump(t, 1, 1000000, &d);
    const proc_spec_t procs[] = {
        {101, "holder-a", 64 * KiB, 40 * KiB, 32 * KiB, 32 * KiB, 0, 4 * KiB},
        {102, "holder-b", 64 * KiB, 40 * KiB, 32 * KiB, 32 * KiB, 0, 4 * KiB},
        {103, "holder-c", 64 * KiB, 40 * KiB, 32 * KiB, 32 * KiB, 0, 4 * KiB},
    };
    for (size_t i = 0; i < 3 && rc == 0; i++)
        rc = add_proc(d, &procs[i]);
    st_object_info_t obj = {"memfd:0:1:7", ST_KIND_MEMFD, "equal", 100, 4 * KiB, 0, 0, NULL, 0};
    const holder_spec_t holders[] = {{101, 4 * KiB, 0}, {102, 4 * KiB, 0}, {103, 4 * KiB, 0}};
    if (rc == 0)
        rc = add_object(d, &obj, 101, holders, 3);
    if (rc == 0)
        st_dump_sort(d);
    return rc;
}

static int write_trace(st_trace_t *t, const char *dir, const char *file)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    st_error_t err = {0};
    int rc = st_trace_write_file(t, path, &err);
    if (rc < 0) {
        char line[1024];
        st_error_format(&err, "event", line, sizeof(line));
        fprintf(stderr, "gen_examples: %s: %s (%s)\n", path, line, st_strerror(rc));
    }
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_examples DIR\n");
        return 2;
    }
    int status = 1;
    st_trace_t *browser = NULL, *equal = NULL;
    if (st_trace_new(&browser) < 0 || st_trace_new(&equal) < 0 ||
        st_trace_set_meta(browser, "creator", "example-host", "6.8.0") < 0 ||
        st_trace_set_meta(equal, "equal", "example-host", "6.8.0") < 0)
        goto out;
    if (browser_dump(browser, 1, 1000000, true) < 0 ||
        browser_dump(browser, 2, 2000000, false) < 0 || equal_dump(equal) < 0)
        goto out;
    if (write_trace(browser, argv[1], "browser.json") < 0 ||
        write_trace(equal, argv[1], "equal.json") < 0)
        goto out;
    status = 0;
out:
    st_trace_free(browser);
    st_trace_free(equal);
    return status;
}
