/* SPDX-License-Identifier: MIT
 *
 * Unit tests for the JSON trace reader and writer (src/trace_json.c).
 *
 * Golden files (tests/data/golden/): every X.json must read and write back byte for byte;
 * every X.input.json (a catapult-style file: 0x hex, split "v" events, other phases) must
 * normalise to X.json. Malformed files (tests/data/malformed/): every X.json has an X.expected
 * holding the exact error line (`X.json: event N: field: problem`) or `loads` for files the
 * reader must accept (edges to unknown guids, cycles); the test walks both directories, so a file
 * added there is tested without touching this code. The rest checks the model the reader builds
 * against what the hand-written inputs say, and the writer's file handling.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "error.h"
#include "fileio.h"
#include "model.h"
#include "trace_json.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *data_dir(void)
{
    const char *d = getenv("SHMTRACK_TEST_DATA");
    return d ? d : "tests/data";
}

/* Whole file into a NUL-terminated buffer. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot open %s: %s", path, strerror(errno));
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 65536;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

/* The writer's output for trace, in memory. Out of line: inlined at -O3, GCC 12 takes the
 * buffer open_memstream fills for a pointer to the local that holds it (-Wdangling-pointer). */
__attribute__((noinline)) static char *write_mem(const st_trace_t *t, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    st_error_t err;
    FILE *f = open_memstream(&buf, &n);
    assert_non_null(f);
    assert_int_equal(st_trace_write_stream(t, f, &err), 0);
    fclose(f);
    *len = n;
    return buf;
}

/* Asserts that the two buffers hold the same bytes, then frees both. */
static void same_bytes_free(char *x, size_t x_len, char *y, size_t y_len)
{
    assert_int_equal(x_len, y_len);
    assert_memory_equal(x, y, x_len);
    free(x);
    free(y);
}

static st_trace_t *read_ok(const char *path)
{
    st_trace_t *t = NULL;
    st_error_t err;
    int rc = st_trace_read_file(path, &t, &err);
    if (rc != 0) {
        char line[1024];
        st_error_format(&err, "event", line, sizeof(line));
        fail_msg("%s: rc %d: %s", path, rc, line);
    }
    return t;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static void test_golden_round_trip(void **state)
{
    (void)state;
    char dir[1024], path[2048], want_path[2048];
    snprintf(dir, sizeof(dir), "%s/golden", data_dir());
    DIR *dh = opendir(dir);
    assert_non_null(dh);
    int stable = 0, normalised = 0;
    struct dirent *de;
    while ((de = readdir(dh)) != NULL) {
        if (!ends_with(de->d_name, ".json"))
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        if (ends_with(de->d_name, ".input.json")) {
            snprintf(want_path, sizeof(want_path), "%s/%.*s.json", dir,
                     (int)(strlen(de->d_name) - strlen(".input.json")), de->d_name);
            normalised++;
        } else {
            snprintf(want_path, sizeof(want_path), "%s", path);
            stable++;
        }
        st_trace_t *t = read_ok(path);
        size_t got_len = 0, want_len = 0;
        char *got = write_mem(t, &got_len);
        char *want = slurp(want_path, &want_len);
        if (got_len != want_len || memcmp(got, want, got_len) != 0) {
            fprintf(stderr, "--- %s differs from %s; the writer gave:\n%s\n", path, want_path, got);
            fail_msg("golden mismatch: %s", de->d_name);
        }
        free(got);
        free(want);
        st_trace_free(t);
    }
    closedir(dh);
    /* browser_3proc, two_dumps, weak_nodes, catapult_split (+ its input) at least */
    assert_true(stable >= 4);
    assert_true(normalised >= 1);
}

static void test_malformed_dir(void **state)
{
    (void)state;
    char dir[1024], path[2048], exp_path[2048];
    snprintf(dir, sizeof(dir), "%s/malformed", data_dir());
    DIR *dh = opendir(dir);
    assert_non_null(dh);
    int failures = 0, loads = 0, json_files = 0, expected_files = 0;
    struct dirent *de;
    while ((de = readdir(dh)) != NULL) {
        if (ends_with(de->d_name, ".expected")) {
            /* every .expected has its input: no stale expectations */
            expected_files++;
            snprintf(path, sizeof(path), "%s/%.*s.json", dir,
                     (int)(strlen(de->d_name) - strlen(".expected")), de->d_name);
            if (access(path, R_OK) != 0)
                fail_msg("%s has no input file", de->d_name);
            continue;
        }
        if (de->d_name[0] == '.')
            continue;
        if (!ends_with(de->d_name, ".json"))
            fail_msg("unexpected file %s in %s", de->d_name, dir);
        json_files++;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        snprintf(exp_path, sizeof(exp_path), "%s/%.*s.expected", dir,
                 (int)(strlen(de->d_name) - strlen(".json")), de->d_name);
        if (access(exp_path, R_OK) != 0)
            fail_msg("%s has no .expected file", de->d_name);
        char *expected = slurp(exp_path, NULL);
        expected[strcspn(expected, "\n")] = '\0';

        st_trace_t *t = NULL;
        st_error_t err;
        int rc = st_trace_read_file(path, &t, &err);
        if (strcmp(expected, "loads") == 0) {
            if (rc != 0) {
                char line[1024];
                st_error_format(&err, "event", line, sizeof(line));
                fail_msg("%s should load: %s", de->d_name, line);
            }
            /* and what loads writes back stably */
            size_t a_len, b_len;
            char *a = write_mem(t, &a_len);
            st_trace_t *t2 = NULL;
            assert_int_equal(st_trace_read_buffer(a, a_len, "again", &t2, &err), 0);
            char *b = write_mem(t2, &b_len);
            same_bytes_free(a, a_len, b, b_len);
            st_trace_free(t2);
            st_trace_free(t);
            loads++;
        } else {
            char line[1024];
            assert_null(t);
            if (rc != ST_EFORMAT && rc != ST_EVERSION)
                fail_msg("%s: rc %d, want ST_EFORMAT or ST_EVERSION", de->d_name, rc);
            snprintf(err.source, sizeof(err.source), "%s", de->d_name); /* path-independent */
            st_error_format(&err, "event", line, sizeof(line));
            if (strcmp(line, expected) != 0)
                fail_msg("%s:\n  got  %s\n  want %s", de->d_name, line, expected);
            failures++;
        }
        free(expected);
    }
    closedir(dh);
    assert_int_equal(json_files, expected_files);
    assert_true(failures >= 20);
    assert_true(loads >= 2);
}

/* What the hand-written catapult-style input says, checked on the model. */
static void test_catapult_model(void **state)
{
    (void)state;
    char path[1024];
    snprintf(path, sizeof(path), "%s/golden/catapult_split.input.json", data_dir());
    st_trace_t *t = read_ok(path);
    assert_int_equal(t->n_dumps, 2);
    st_global_dump_t *d = st_trace_find_dump(t, 5);
    assert_non_null(d);
    assert_int_equal(d->ts_us, 1000);                    /* earliest of 1000, 1003, 1001 */
    assert_string_equal(d->level_of_detail, "detailed"); /* highest of light, detailed */
    assert_int_equal(d->n_procs, 2);
    st_process_dump_t *p1 = st_dump_find_process(d, 1), *p2 = st_dump_find_process(d, 2);
    assert_string_equal(p1->name, "Browser");
    assert_string_equal(p2->name, "Renderer");
    /* totals: first event's resident_set_bytes wins, the second adds swap_bytes */
    assert_int_equal(p1->totals.resident_set_bytes, 0x2000000);
    assert_int_equal(p1->totals.private_footprint_bytes, 0x1800000);
    assert_true(p1->totals.present & ST_TOTAL_HAS(swap_bytes));
    assert_false(p1->totals.present & ST_TOTAL_HAS(pss_bytes));
    /* split node: guid "0xA1" and "a1" are one node; size from the first event, mapped_size
     * from the second */
    st_node_t *n = st_process_find_node(p1, "shared_memory/memfd:0:1:42");
    assert_non_null(n);
    assert_int_equal(n->guid, 0xa1);
    uint64_t v = 0;
    assert_true(st_node_scalar(n, "size", &v));
    assert_int_equal(v, 0x4000);
    assert_true(st_node_scalar(n, "mapped_size", &v));
    assert_int_equal(v, 0x8000);
    assert_string_equal(st_node_string(n, "kind"), "memfd");
    n = st_process_find_node(p1, "v8/isolate_0/heap");
    assert_true(n->weak);
    assert_int_equal(st_process_find_node(p1, "discardable")->n_entries, 0);
    /* the global: carried by pid 1 (first), entries merged, first value wins */
    assert_int_equal(d->n_globals, 1);
    assert_string_equal(d->globals[0].name, "global/beef");
    assert_int_equal(d->global_carrier[0], 1);
    assert_true(st_node_scalar(&d->globals[0], "size", &v));
    assert_int_equal(v, 0x4000);
    assert_true(st_node_scalar(&d->globals[0], "virtual_size", &v));
    assert_int_equal(v, 0x8000);
    /* edges: the retention edge is dropped, the ownership edges kept */
    assert_int_equal(p1->n_edges, 1);
    assert_int_equal(p1->edges[0].source, 0xa1);
    assert_int_equal(p1->edges[0].target, 0xbeef);
    assert_int_equal(p1->edges[0].importance, 2);
    assert_int_equal(p2->n_edges, 1);
    /* the second dump, id "6" without 0x */
    d = st_trace_find_dump(t, 6);
    assert_non_null(d);
    assert_string_equal(d->trigger, "explicitly_triggered");
    assert_string_equal(d->level_of_detail, "background");
    assert_int_equal(d->ts_us, 5000);
    st_trace_free(t);
}

static void test_browser_model(void **state)
{
    (void)state;
    char path[1024];
    snprintf(path, sizeof(path), "%s/golden/two_dumps.json", data_dir());
    st_trace_t *t = read_ok(path);
    assert_string_equal(t->policy, "creator");
    assert_string_equal(t->host, "build-host");
    assert_int_equal(t->n_dumps, 2);
    st_global_dump_t *d = &t->dumps[0];
    assert_int_equal(d->n_procs, 3);
    assert_int_equal(d->procs[0].pid, 4100); /* sorted */
    assert_int_equal(d->n_globals, 3);
    for (size_t i = 0; i < d->n_globals; i++) {
        const char *key = st_node_string(&d->globals[i], "key");
        assert_non_null(key);
        assert_int_equal(d->globals[i].guid, st_guid_global(key));
    }
    st_process_dump_t *r = st_dump_find_process(d, 4188);
    assert_int_equal(r->n_edges, 3);
    d = &t->dumps[1];
    assert_true(d->partial);
    assert_int_equal(d->n_warnings, 1);
    assert_int_equal(d->n_problems, 2);
    assert_int_equal(d->problems[0].err, ENOENT);
    assert_string_equal(d->problems[0].path, "/proc/4123/smaps_rollup");
    assert_int_equal(d->problems[1].err, ST_EPROTO);
    assert_null(st_dump_find_process(d, 4123));
    st_trace_free(t);
}

static void read_string(const char *json, int want_rc, st_trace_t **out)
{
    st_error_t err;
    int rc = st_trace_read_buffer(json, strlen(json), "buf", out, &err);
    if (rc != want_rc) {
        char line[1024];
        st_error_format(&err, "event", line, sizeof(line));
        fail_msg("rc %d want %d: %s", rc, want_rc, line);
    }
}

static void test_hex_forms(void **state)
{
    (void)state;
    st_trace_t *t = NULL;
    read_string("{\"traceEvents\":[{\"ph\":\"v\",\"pid\":3,\"id\":\"0XfF\",\"ts\":2.9,\"args\":{"
                "\"dumps\":{\"process_totals\":{\"resident_set_bytes\":\"0x0000000000000000001F\","
                "\"pss_bytes\":\"ffffffffffffffff\"}}}}]}",
                0, &t);
    assert_int_equal(t->dumps[0].id, 0xff);
    assert_int_equal(t->dumps[0].ts_us, 2); /* fractional µs are dropped */
    assert_int_equal(t->dumps[0].procs[0].totals.resident_set_bytes, 0x1f);
    assert_int_equal(t->dumps[0].procs[0].totals.pss_bytes, UINT64_MAX);
    st_trace_free(t);
}

/* process_name events in any order, before and after the dumps; the last name of a pid wins and
 * names it in every dump. */
static void test_process_names(void **state)
{
    (void)state;
    st_trace_t *t = NULL;
#define M(pid, name)                                                                               \
    "{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":" #pid ",\"args\":{\"name\":\"" name "\"}}"
#define V(pid, id)                                                                                 \
    "{\"ph\":\"v\",\"pid\":" #pid ",\"id\":\"" id "\",\"ts\":1,\"args\":{\"dumps\":{}}}"
    read_string("{\"traceEvents\":[" M(30, "c") "," M(10, "a") "," M(20, "b") "," V(10, "1") "," V(
                    20, "1") "," V(30, "1") "," V(40, "1") "," M(10, "a2") "," V(10, "2") "]}",
                0, &t);
#undef M
#undef V
    assert_int_equal(t->n_dumps, 2);
    st_global_dump_t *d = &t->dumps[0];
    assert_string_equal(st_dump_find_process(d, 10)->name, "a2");
    assert_string_equal(st_dump_find_process(d, 20)->name, "b");
    assert_string_equal(st_dump_find_process(d, 30)->name, "c");
    assert_null(st_dump_find_process(d, 40)->name);
    assert_string_equal(st_dump_find_process(&t->dumps[1], 10)->name, "a2");
    st_trace_free(t);
}

static void test_oversized(void **state)
{
    (void)state;
    char path[] = "/tmp/shmtrack-test-big-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    /* sparse: costs no disk */
    assert_int_equal(ftruncate(fd, (off_t)ST_TRACE_MAX_BYTES + 1), 0);
    close(fd);
    st_trace_t *t = NULL;
    st_error_t err;
    assert_int_equal(st_trace_read_file(path, &t, &err), ST_ETOOBIG);
    assert_null(t);
    assert_non_null(strstr(err.text, "exceed the limit"));
    unlink(path);
}

static void test_missing_file(void **state)
{
    (void)state;
    st_trace_t *t = NULL;
    st_error_t err;
    assert_int_equal(st_trace_read_file("/nonexistent/trace.json", &t, &err), -ENOENT);
    char line[512];
    st_error_format(&err, "event", line, sizeof(line));
    assert_string_equal(line, "/nonexistent/trace.json: cannot open: No such file or directory");
}

static int count_entries(const char *dir)
{
    DIR *dh = opendir(dir);
    int n = 0;
    struct dirent *de;
    assert_non_null(dh);
    while ((de = readdir(dh)) != NULL)
        n += de->d_name[0] != '.';
    closedir(dh);
    return n;
}

/* Reads the FIFO at path in a child into out_path; returns the child's pid. */
static pid_t fifo_reader(const char *path, const char *out_path)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int in = open(path, O_RDONLY), out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        char buf[4096];
        ssize_t n;
        while (in >= 0 && out >= 0 && (n = read(in, buf, sizeof(buf))) > 0)
            if (write(out, buf, (size_t)n) != n)
                _exit(2);
        _exit(in >= 0 && out >= 0 ? 0 : 1);
    }
    return pid;
}

/* An output that is not a regular file (here a FIFO; /dev/null in real life) is written in
 * place: replacing it by a rename would turn /dev/null into a regular file. */
static void test_write_special_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/st_special-XXXXXX", fifo[64], got[64];
    assert_non_null(mkdtemp(dir));
    snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
    snprintf(got, sizeof(got), "%s/got.json", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_true(st_file_is_special(fifo));
    assert_false(st_file_is_special(dir));
    assert_false(st_file_is_special("/nonexistent/x"));

    st_trace_t *t = NULL, *back = NULL;
    st_global_dump_t *d = NULL;
    st_process_dump_t *p = NULL;
    assert_int_equal(st_trace_new(&t), 0);
    assert_int_equal(st_trace_add_dump(t, 1, 10, &d), 0);
    assert_int_equal(st_dump_add_process(d, 42, "fifo_writer", &p), 0);
    st_error_t err;
    int status = 0;
    for (int mode = 0; mode < 2; mode++) {
        pid_t r = fifo_reader(fifo, got);
        assert_int_equal(
            st_trace_write_file_ex(t, fifo, mode ? ST_WRITE_FSYNC : ST_WRITE_FSYNC_REPLACE, &err),
            0);
        assert_int_equal(waitpid(r, &status, 0), r);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        struct stat st;
        assert_int_equal(stat(fifo, &st), 0);
        assert_true(S_ISFIFO(st.st_mode));
        assert_int_equal(st_trace_read_file(got, &back, &err), 0);
        assert_int_equal(back->n_dumps, 1);
        assert_non_null(st_dump_find_process(&back->dumps[0], 42));
        st_trace_free(back);
        back = NULL;
    }
    /* the file writer of view/export/dump too */
    pid_t r = fifo_reader(fifo, got);
    assert_int_equal(st_file_write(fifo, "hello\n", 6), 0);
    assert_int_equal(waitpid(r, &status, 0), r);
    struct stat st;
    assert_int_equal(stat(fifo, &st), 0);
    assert_true(S_ISFIFO(st.st_mode));
    assert_int_equal(stat(got, &st), 0);
    assert_int_equal(st.st_size, 6);
    /* nothing left at a temporary name */
    assert_int_equal(count_entries(dir), 2);
    st_trace_free(t);
    unlink(fifo);
    unlink(got);
    rmdir(dir);
}

/* A dump with objects whose carriers have no process dump, and one with no processes at all. */
static void test_writer_carriers(void **state)
{
    (void)state;
    st_trace_t *t = NULL;
    st_global_dump_t *d = NULL;
    st_node_t *n = NULL;
    st_process_dump_t *p = NULL;
    assert_int_equal(st_trace_new(&t), 0);
    assert_int_equal(st_trace_add_dump(t, 1, 10, &d), 0);
    assert_int_equal(st_dump_add_global(d, "global/b", 0xb, false, 30, &n, NULL), 0);
    assert_int_equal(st_dump_add_global(d, "global/a", 0xa, false, 20, &n, NULL), 0);
    assert_int_equal(st_trace_add_dump(t, 2, 20, &d), 0);
    assert_int_equal(st_dump_add_process(d, 7, NULL, &p), 0);
    assert_int_equal(st_dump_add_process(d, 5, NULL, &p), 0);
    assert_int_equal(st_dump_add_global(d, "global/c", 0xc, false, 99, &n, NULL), 0);
    assert_int_equal(st_dump_add_global(d, "global/d", 0xd, false, 7, &n, NULL), 0);
    assert_int_equal(st_trace_add_dump(t, 3, 30, &d), 0); /* empty: metadata only */
    assert_int_equal(st_dump_add_warning(d, "nobody answered"), 0);

    size_t len = 0, len2 = 0;
    char *out = write_mem(t, &len);
    st_trace_t *t2 = NULL;
    st_error_t err;
    assert_int_equal(st_trace_read_buffer(out, len, "mem", &t2, &err), 0);
    assert_int_equal(t2->n_dumps, 3);
    /* dump 1: one event per carrier */
    d = &t2->dumps[0];
    assert_int_equal(d->n_procs, 2);
    assert_int_equal(d->global_carrier[0], 20);
    assert_int_equal(d->global_carrier[1], 30);
    /* dump 2: global/c's carrier 99 is absent: the lowest pid carries it */
    d = &t2->dumps[1];
    assert_int_equal(d->n_procs, 2);
    assert_string_equal(d->globals[0].name, "global/c");
    assert_int_equal(d->global_carrier[0], 5);
    assert_int_equal(d->global_carrier[1], 7);
    d = &t2->dumps[2];
    assert_int_equal(d->id, 3);
    assert_string_equal(d->warnings[0], "nobody answered");
    char *out2 = write_mem(t2, &len2);
    assert_int_equal(len, len2);
    assert_memory_equal(out, out2, len);
    free(out);
    free(out2);
    st_trace_free(t2);
    st_trace_free(t);
}

static void test_writer_invalid_utf8(void **state)
{
    (void)state;
    st_trace_t *t = NULL, *t2 = NULL;
    st_global_dump_t *d = NULL;
    st_process_dump_t *p = NULL;
    st_node_t *n = NULL;
    st_error_t err;
    assert_int_equal(st_trace_new(&t), 0);
    assert_int_equal(st_trace_add_dump(t, 1, 0, &d), 0);
    assert_int_equal(st_dump_add_process(d, 1, "bad\xff", &p), 0);
    assert_int_equal(st_process_add_node(p, "shared_memory/\xc3(", 1, false, &n), 0);
    assert_int_equal(st_node_set_string(n, "name", "/memfd:\xed\xa0\x80x"), 0); /* surrogate */
    size_t len = 0;
    char *out = write_mem(t, &len);
    assert_int_equal(st_trace_read_buffer(out, len, "mem", &t2, &err), 0);
    p = &t2->dumps[0].procs[0];
    assert_string_equal(p->name, "bad\xef\xbf\xbd");
    assert_string_equal(p->nodes[0].name, "shared_memory/\xef\xbf\xbd(");
    assert_string_equal(st_node_string(&p->nodes[0], "name"),
                        "/memfd:\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdx");
    free(out);
    st_trace_free(t2);
    st_trace_free(t);
}

/* st_trace_write_stream_threads(threads) as a string. */
static char *write_threads(const st_trace_t *t, unsigned threads, size_t *len)
{
    char *buf = NULL;
    st_error_t err;
    FILE *f = open_memstream(&buf, len);
    assert_non_null(f);
    assert_int_equal(st_trace_write_stream_threads(t, f, threads, &err), 0);
    assert_int_equal(fclose(f), 0);
    return buf;
}

/* Event texts built on several threads (dumps of 45 and 3 processes, so both a threaded and a
 * one-thread dump, and rounds that do not divide the events evenly) give the very bytes one
 * thread gives. */
static void test_writer_threads(void **state)
{
    (void)state;
    st_trace_t *t = NULL;
    st_global_dump_t *d = NULL;
    assert_int_equal(st_trace_new(&t), 0);
    for (int dump = 0; dump < 2; dump++) {
        assert_int_equal(st_trace_add_dump(t, (uint64_t)dump + 1, 10, &d), 0);
        int n = dump == 0 ? 45 : 3;
        for (int i = 0; i < n; i++) {
            st_process_dump_t *p = NULL;
            st_node_t *node = NULL, *g = NULL;
            char name[64];
            assert_int_equal(st_dump_add_process(d, 100 + i, "proc", &p), 0);
            p->totals.pss_bytes = (uint64_t)i * 4096;
            p->totals.present = ST_TOTAL_HAS(pss_bytes);
            snprintf(name, sizeof(name), "shared_memory/memfd:0:1:%d", i);
            assert_int_equal(st_process_add_node(p, name, 0x1000u + (unsigned)i, false, &node), 0);
            assert_int_equal(st_node_set_scalar(node, "size", "bytes", (uint64_t)i * 8192), 0);
            assert_int_equal(st_node_set_string(node, "name", "memfd:x"), 0);
            snprintf(name, sizeof(name), "global/%x", 0x2000u + (unsigned)i);
            assert_int_equal(st_dump_add_global(d, name, 0x2000u + (unsigned)i, false,
                                                100 + (i * 7) % n, &g, NULL),
                             0);
            assert_int_equal(st_node_set_scalar(g, "size", "bytes", (uint64_t)i), 0);
            assert_int_equal(
                st_process_add_edge(p, 0x1000u + (unsigned)i, 0x2000u + (unsigned)i, 2), 0);
        }
    }
    size_t len1 = 0;
    char *one = write_threads(t, 1, &len1);
    for (unsigned threads = 0; threads <= 4; threads++) {
        size_t len = 0;
        char *out = write_threads(t, threads, &len);
        assert_int_equal(len, len1);
        assert_memory_equal(out, one, len);
        free(out);
    }
    st_trace_t *t2 = NULL;
    st_error_t err;
    assert_int_equal(st_trace_read_buffer(one, len1, "mem", &t2, &err), 0);
    assert_int_equal(t2->dumps[0].n_procs, 45);
    assert_int_equal(t2->dumps[0].n_globals, 45);
    assert_int_equal(t2->dumps[1].n_procs, 3);
    free(one);
    st_trace_free(t2);
    st_trace_free(t);
}

static void test_write_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/shmtrack-test-XXXXXX", path[256], golden[1024];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/trace.json", dir);
    snprintf(golden, sizeof(golden), "%s/golden/browser_3proc.json", data_dir());
    st_trace_t *t = read_ok(golden);
    st_error_t err;
    /* new file, then replacing it: only the target remains, with the golden bytes */
    for (int i = 0; i < 2; i++) {
        assert_int_equal(st_trace_write_file(t, path, &err), 0);
        assert_int_equal(count_entries(dir), 1);
        size_t a, b;
        char *got = slurp(path, &a), *want = slurp(golden, &b);
        assert_int_equal(a, b);
        assert_memory_equal(got, want, a);
        free(got);
        free(want);
    }
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    mode_t um = umask(0);
    umask(um);
    assert_int_equal(st.st_mode & 0777, 0666 & ~um);

    /* without fsync unless it replaces a non-empty file: the same bytes, atomically */
    for (int i = 0; i < 2; i++) {
        if (i == 0)
            unlink(path);
        assert_int_equal(st_trace_write_file_ex(t, path, ST_WRITE_FSYNC_REPLACE, &err), 0);
        assert_int_equal(count_entries(dir), 1);
        size_t a, b;
        char *got = slurp(path, &a), *want = slurp(golden, &b);
        assert_int_equal(a, b);
        assert_memory_equal(got, want, a);
        free(got);
        free(want);
    }

    /* "-" is stdout */
    char out_path[300];
    snprintf(out_path, sizeof(out_path), "%s/stdout", dir);
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, STDOUT_FILENO);
    close(fd);
    int rc = st_trace_write_file(t, "-", &err);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    assert_int_equal(rc, 0);
    size_t a, b;
    char *got = slurp(out_path, &a), *want = slurp(golden, &b);
    assert_int_equal(a, b);
    assert_memory_equal(got, want, a);
    free(got);
    free(want);

    /* "-" reads stdin */
    int saved_in = dup(STDIN_FILENO);
    fd = open(golden, O_RDONLY);
    dup2(fd, STDIN_FILENO);
    close(fd);
    st_trace_t *t2 = NULL;
    rc = st_trace_read_file("-", &t2, &err);
    dup2(saved_in, STDIN_FILENO);
    close(saved_in);
    assert_int_equal(rc, 0);
    assert_int_equal(t2->dumps[0].n_procs, 3);
    st_trace_free(t2);

    /* a directory that does not exist: an error naming the temporary file */
    char bad[300];
    snprintf(bad, sizeof(bad), "%s/missing/trace.json", dir);
    assert_int_equal(st_trace_write_file(t, bad, &err), -ENOENT);
    assert_non_null(strstr(err.text, "cannot create"));
    assert_string_equal(err.source, bad);

    unlink(out_path);
    unlink(path);
    rmdir(dir);
    st_trace_free(t);
}

/* The metadata after traceEvents (as a spool writes it) reads as the same trace; a dump it lists
 * twice is still an error. */
static void test_metadata_last(void **state)
{
    (void)state;
    char path[1024];
    snprintf(path, sizeof(path), "%s/golden/two_dumps.json", data_dir());
    st_trace_t *t = read_ok(path);
    size_t len = 0;
    char *first = write_mem(t, &len); /* {\n "metadata":M,\n "traceEvents":E\n} */
    const char *m = strstr(first, "\"metadata\":"), *e = strstr(first, ",\n \"traceEvents\":");
    assert_non_null(m);
    assert_non_null(e);
    const char *end = strrchr(first, '}');
    size_t n_meta = (size_t)(e - m), n_ev = (size_t)(end - (e + 2));
    char *last = malloc(len + 16);
    assert_non_null(last);
    int n = snprintf(last, len + 16, "{%.*s,%.*s}", (int)n_ev, e + 2, (int)n_meta, m);
    st_trace_t *u = NULL;
    st_error_t err;
    assert_int_equal(st_trace_read_buffer(last, (size_t)n, "last", &u, &err), 0);
    size_t a, b;
    char *x = write_mem(t, &a), *y = write_mem(u, &b);
    same_bytes_free(x, a, y, b);
    assert_true(u->n_dumps == 2 && u->dumps[1].partial == t->dumps[1].partial);
    st_trace_free(u);
    /* listed twice: the metadata's dumps array with its first entry again */
    const char *arr = strstr(last, "\"dumps\":[");
    assert_non_null(arr);
    arr += strlen("\"dumps\":[");
    const char *close = strstr(arr, "}");
    char *twice = malloc(strlen(last) + (size_t)(close - arr) + 8);
    assert_non_null(twice);
    sprintf(twice, "%.*s%.*s},%s", (int)(arr - last), last, (int)(close - arr), arr, arr);
    u = NULL;
    assert_true(st_trace_read_buffer(twice, strlen(twice), "twice", &u, &err) < 0);
    assert_null(u);
    assert_non_null(strstr(err.text, "is listed twice"));
    free(twice);
    free(last);
    free(first);
    st_trace_free(t);
}

/* A spool given a trace's dumps one by one commits a file that reads as that trace: the writer
 * gives the same bytes for what was read back as for the trace itself (every golden and example
 * trace: several dumps, warnings, problems, a partial dump, process names; a trace without names;
 * a process renamed in a later dump; none at all). Nothing but the trace is left beside it, and a
 * spool dropped before its commit removes its file and leaves the old trace alone. */
static void spool_check(const st_trace_t *t, const char *out, const char *what)
{
    st_trace_spool_t *s = NULL;
    st_error_t err;
    assert_int_equal(st_trace_spool_open(out, &s, &err), 0);
    for (size_t i = 0; i < t->n_dumps; i++) {
        assert_int_equal(st_trace_spool_add(s, &t->dumps[i], &err), 0);
        assert_int_equal(st_trace_spool_dumps(s), i + 1);
    }
    assert_int_equal(st_trace_spool_commit(s, t, ST_WRITE_FSYNC, &err), 0);
    st_trace_spool_free(s);
    st_trace_t *back = read_ok(out);
    size_t got_len = 0, want_len = 0;
    char *got = write_mem(back, &got_len), *want = write_mem(t, &want_len);
    if (got_len != want_len || memcmp(got, want, got_len) != 0)
        fail_msg("%s: the spool's trace reads back as:\n%s", what, got);
    free(got);
    free(want);
    st_trace_free(back);
}

static void test_spool(void **state)
{
    (void)state;
    char dir[] = "/tmp/shmtrack-spool-XXXXXX", out[256], path[2048], sub[1024];
    assert_non_null(mkdtemp(dir));
    snprintf(out, sizeof(out), "%s/trace.json", dir);
    int n = 0;
    static const char *const subs[] = {"golden", "examples"};
    for (size_t k = 0; k < 2; k++) {
        snprintf(sub, sizeof(sub), "%s/%s", data_dir(), subs[k]);
        DIR *dh = opendir(sub);
        assert_non_null(dh);
        struct dirent *de;
        while ((de = readdir(dh)) != NULL) {
            if (!ends_with(de->d_name, ".json") || ends_with(de->d_name, ".input.json"))
                continue;
            snprintf(path, sizeof(path), "%s/%s", sub, de->d_name);
            st_trace_t *t = read_ok(path);
            spool_check(t, out, path);
            st_trace_free(t);
            assert_int_equal(count_entries(dir), 1); /* the trace; no spool, no temporary */
            n++;
        }
        closedir(dh);
    }
    assert_true(n >= 6);
    snprintf(path, sizeof(path), "%s/golden/two_dumps.json", data_dir());
    /* a process renamed in a later dump: its first name is the one kept */
    st_trace_t *t = read_ok(path);
    assert_true(t->n_dumps == 2 && t->dumps[1].n_procs > 0);
    for (size_t k = 0; k < t->dumps[1].n_procs; k++) {
        free(t->dumps[1].procs[k].name);
        t->dumps[1].procs[k].name = strdup("renamed");
    }
    spool_check(t, out, "renamed");
    /* no names at all */
    for (size_t i = 0; i < t->n_dumps; i++)
        for (size_t k = 0; k < t->dumps[i].n_procs; k++) {
            free(t->dumps[i].procs[k].name);
            t->dumps[i].procs[k].name = NULL;
        }
    spool_check(t, out, "no names");
    st_trace_free(t);
    /* no dump at all */
    st_trace_t *empty = NULL;
    assert_int_equal(st_trace_new(&empty), 0);
    spool_check(empty, out, "empty");
    st_trace_free(empty);
    /* dropped before its commit: the spool goes, the old trace stays as it was */
    size_t a, b;
    char *before = slurp(out, &a);
    t = read_ok(path);
    st_trace_spool_t *s = NULL;
    st_error_t err;
    assert_int_equal(st_trace_spool_open(out, &s, &err), 0);
    assert_int_equal(count_entries(dir), 2);
    assert_int_equal(st_trace_spool_add(s, &t->dumps[0], &err), 0);
    st_trace_spool_free(s);
    assert_int_equal(count_entries(dir), 1);
    char *after = slurp(out, &b);
    same_bytes_free(before, a, after, b);
    st_trace_free(t);
    /* a directory that does not exist: a clear error */
    snprintf(path, sizeof(path), "%s/missing/trace.json", dir);
    assert_true(st_trace_spool_open(path, &s, &err) < 0);
    assert_null(s);
    assert_non_null(strstr(err.text, "cannot create"));
    unlink(out);
    assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_round_trip),   cmocka_unit_test(test_malformed_dir),
        cmocka_unit_test(test_catapult_model),      cmocka_unit_test(test_browser_model),
        cmocka_unit_test(test_hex_forms),           cmocka_unit_test(test_process_names),
        cmocka_unit_test(test_oversized),           cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_write_special_file),  cmocka_unit_test(test_writer_carriers),
        cmocka_unit_test(test_writer_invalid_utf8), cmocka_unit_test(test_write_file),
        cmocka_unit_test(test_writer_threads),      cmocka_unit_test(test_spool),
        cmocka_unit_test(test_metadata_last),
    };
    return cmocka_run_group_tests_name("trace_json", tests, NULL, NULL);
}
