/* SPDX-License-Identifier: MIT
 *
 * How fast the JSON trace writer and reader are on a large dump: P processes (default 500) each
 * holding H shared objects (default 1000) out of a pool of O objects (default 1000), i.e. P*H
 * holder nodes and edges plus O global nodes. Prints the file size, the time to write it with
 * st_trace_write_file (atomic, fsync'd), the time a plain fwrite+fsync of the same bytes takes
 * (the floor any writer has), their ratio, and the time to read the file back.
 *
 * Usage: bench_trace_json [P [H [O [DIR]]]]   (DIR defaults to /tmp)
 */
#include "model.h"
#include "trace_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int build(st_trace_t *t, int procs, int holders, int objects)
{
    st_global_dump_t *d = NULL;
    int rc = st_trace_add_dump(t, 1, 1700000000000000ull, &d);
    char key[ST_KEY_MAX], name[64];
    for (int o = 0; rc == 0 && o < objects; o++) {
        snprintf(key, sizeof(key), "memfd:0:1:%d", 1000 + o);
        snprintf(name, sizeof(name), "/memfd:buffer-%d (deleted)", o);
        st_object_info_t info = {.key = key,
                                 .kind = ST_KIND_MEMFD,
                                 .name = name,
                                 .size = 4096u * (unsigned)(o + 1),
                                 .virtual_size = 8192u * (unsigned)(o + 1),
                                 .creator_pid = 1000 + o % procs};
        rc = st_dump_add_object(d, &info, 1000 + o % procs, NULL);
    }
    for (int p = 0; rc == 0 && p < procs; p++) {
        st_process_dump_t *proc = NULL;
        snprintf(name, sizeof(name), "worker-%d", p);
        if ((rc = st_dump_add_process(d, 1000 + p, name, &proc)) < 0)
            break;
        proc->totals.resident_set_bytes = 1u << 26;
        proc->totals.present = ST_TOTAL_HAS(resident_set_bytes);
        for (int h = 0; rc == 0 && h < holders; h++) {
            int o = (p + h) % objects;
            snprintf(key, sizeof(key), "memfd:0:1:%d", 1000 + o);
            snprintf(name, sizeof(name), "/memfd:buffer-%d (deleted)", o);
            st_object_info_t info = {.key = key,
                                     .kind = ST_KIND_MEMFD,
                                     .name = name,
                                     .size = 4096u * (unsigned)(o + 1),
                                     .virtual_size = 8192u * (unsigned)(o + 1)};
            /* the holder node and its edge, without st_process_add_holder's per-call scans */
            char path[sizeof(ST_HOLDER_PREFIX) + ST_KEY_MAX];
            snprintf(path, sizeof(path), ST_HOLDER_PREFIX "%s", key);
            st_node_t *n = NULL;
            uint64_t guid = st_guid_local(proc->pid, path);
            if ((rc = st_process_add_node(proc, path, guid, false, &n)) < 0 ||
                (rc = st_node_set_scalar(n, "size", "bytes", info.size)) < 0 ||
                (rc = st_node_set_scalar(n, "virtual_size", "bytes", info.virtual_size)) < 0 ||
                (rc = st_node_set_scalar(n, "swapped_size", "bytes", 0)) < 0 ||
                (rc = st_node_set_scalar(n, "mapped_size", "bytes", info.virtual_size)) < 0 ||
                (rc = st_node_set_string(n, "kind", "memfd")) < 0 ||
                (rc = st_node_set_string(n, "name", name)) < 0 ||
                (rc = st_node_set_string(n, "key", key)) < 0)
                break;
            rc = st_process_add_edge(proc, guid, st_guid_global(key), h == 0 ? 2 : 0);
        }
    }
    return rc;
}

int main(int argc, char **argv)
{
    int procs = argc > 1 ? atoi(argv[1]) : 500;
    int holders = argc > 2 ? atoi(argv[2]) : 1000;
    int objects = argc > 3 ? atoi(argv[3]) : 1000;
    const char *dir = argc > 4 ? argv[4] : "/tmp";
    char path[4096], raw[4096];
    snprintf(path, sizeof(path), "%s/bench_trace_json.%d.json", dir, (int)getpid());
    snprintf(raw, sizeof(raw), "%s/bench_trace_json.%d.raw", dir, (int)getpid());
    st_trace_t *t = NULL, *back = NULL;
    st_error_t err;
    char line[1024];
    int status = 1;
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = NULL, *f = NULL;

    if (procs <= 0 || holders <= 0 || objects <= 0 || holders > objects) {
        fprintf(stderr, "usage: %s [P [H [O [DIR]]]] with 0 < H <= O\n", argv[0]);
        return 2;
    }
    double t0 = now();
    if (st_trace_new(&t) < 0 || build(t, procs, holders, objects) < 0) {
        fprintf(stderr, "bench_trace_json: building the model failed\n");
        goto out;
    }
    double t1 = now();
    if (st_trace_write_file(t, path, &err) < 0) {
        st_error_format(&err, "event", line, sizeof(line));
        fprintf(stderr, "bench_trace_json: %s\n", line);
        goto out;
    }
    double t2 = now();
    /* the floor: the same bytes through stdio, fsync'd */
    if ((mem = open_memstream(&buf, &len)) == NULL || st_trace_write_stream(t, mem, &err) < 0)
        goto out;
    fclose(mem);
    mem = NULL;
    double t3 = now();
    if ((f = fopen(raw, "w")) == NULL || fwrite(buf, 1, len, f) != len || fflush(f) != 0 ||
        fsync(fileno(f)) != 0)
        goto out;
    double t4 = now();
    if (st_trace_read_file(path, &back, &err) < 0) {
        st_error_format(&err, "event", line, sizeof(line));
        fprintf(stderr, "bench_trace_json: %s\n", line);
        goto out;
    }
    double t5 = now();
    printf("model: %d processes x %d holder nodes, %d objects (built in %.2f s)\n", procs, holders,
           objects, t1 - t0);
    printf("file: %.1f MiB\n", (double)len / (1024.0 * 1024.0));
    printf("write (st_trace_write_file): %.2f s, %.0f MiB/s\n", t2 - t1,
           (double)len / (1024.0 * 1024.0) / (t2 - t1));
    printf("raw fwrite+fsync of the same bytes: %.3f s; writer/raw = %.1f\n", t4 - t3,
           (t2 - t1) / (t4 - t3));
    printf("read (st_trace_read_file): %.2f s\n", t5 - t4);
    status = 0;
out:
    if (mem)
        fclose(mem);
    if (f)
        fclose(f);
    free(buf);
    unlink(path);
    unlink(raw);
    st_trace_free(t);
    st_trace_free(back);
    return status;
}
