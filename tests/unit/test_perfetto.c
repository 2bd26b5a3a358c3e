/* SPDX-License-Identifier: MIT
 *
 * Unit tests for the Perfetto encoder (src/perfetto.c). The encoding is checked two ways: the
 * varint edge cases byte by byte against the protobuf specification, and a whole small trace by
 * decoding it with Debian's `protoc --decode` against tests/data/perfetto/perfetto_subset.proto
 * (Perfetto's field numbers) and comparing the text with tests/data/perfetto/expected_decode.txt,
 * which was written from the model built below (guids are chosen, not hashed, so every number in
 * it can be followed back to this file).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "model.h"
#include "perfetto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "perfetto.c"

static void test_varint(void **state)
{
    (void)state;
    static const struct {
        uint64_t v;
        const char *bytes;
        size_t n;
    } cases[] = {
        {0, "\x00", 1},       {1, "\x01", 1},
        {127, "\x7f", 1},     {128, "\x80\x01", 2},
        {300, "\xac\x02", 2}, {UINT64_MAX, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 10},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        st_strbuf_t b = ST_STRBUF_INIT;
        varint(&b, cases[i].v);
        assert_int_equal(b.len, cases[i].n);
        assert_memory_equal(b.data, cases[i].bytes, cases[i].n);
        st_strbuf_free(&b);
    }
}

static void test_empty_trace(void **state)
{
    (void)state;
    st_trace_t *t = NULL;
    unsigned char *out = NULL;
    size_t len = 99;
    assert_int_equal(st_trace_new(&t), 0);
    assert_int_equal(st_perfetto_encode(t, &out, &len), 0);
    assert_non_null(out);
    assert_int_equal(len, 0);
    free(out);
    st_trace_free(t);
}

/* Two dumps: 812 (broker) creates memfd:0:1:1027 and claims it at importance 2, 813 (worker)
 * maps it at importance 0; the second dump is "light", has only 812, and a size that needs a
 * 10-byte varint. */
static st_trace_t *sample(void)
{
    st_trace_t *t = NULL;
    st_global_dump_t *d = NULL;
    st_process_dump_t *p = NULL;
    st_node_t *n = NULL;
    assert_int_equal(st_trace_new(&t), 0);

    assert_int_equal(st_trace_add_dump(t, 1, 1000, &d), 0);
    assert_int_equal(st_dump_add_global(d, "global/0000000000000100", 0x100, false, 812, &n, NULL),
                     0);
    assert_int_equal(st_node_set_scalar(n, "size", "bytes", 8192), 0);
    assert_int_equal(st_node_set_string(n, "key", "memfd:0:1:1027"), 0);
    assert_int_equal(st_dump_add_process(d, 812, "broker", &p), 0);
    assert_int_equal(st_process_add_node(p, "shared_memory/memfd:0:1:1027", 0x11, false, &n), 0);
    assert_int_equal(st_node_set_scalar(n, "size", "bytes", 8192), 0);
    assert_int_equal(st_node_set_scalar(n, "effective_size", "bytes", 8192), 0);
    assert_int_equal(st_process_add_edge(p, 0x11, 0x100, 2), 0);
    assert_int_equal(st_dump_add_process(d, 813, "worker", &p), 0);
    assert_int_equal(st_process_add_node(p, "shared_memory/memfd:0:1:1027", 0x12, true, &n), 0);
    assert_int_equal(st_node_set_scalar(n, "mapped_size", "bytes", 4096), 0);
    assert_int_equal(st_node_set_scalar(n, "handles", "objects", 3), 0);
    assert_int_equal(st_process_add_edge(p, 0x12, 0x100, 0), 0);

    assert_int_equal(st_trace_add_dump(t, 2, 2000, &d), 0);
    assert_int_equal(st_dump_set_strings(d, "explicitly_triggered", "light"), 0);
    assert_int_equal(st_dump_add_process(d, 812, "broker", &p), 0);
    assert_int_equal(st_process_add_node(p, "malloc", 300, false, &n), 0);
    assert_int_equal(st_node_set_scalar(n, "size", "bytes", UINT64_MAX), 0);
    return t;
}

static void test_protoc_decode(void **state)
{
    (void)state;
    const char *data = getenv("SHMTRACK_TEST_DATA");
    st_trace_t *t = sample();
    unsigned char *out = NULL;
    size_t len = 0;
    char path[] = "/tmp/shmtrack-perfetto-XXXXXX", cmd[2048], expected_path[1024];
    char got[16384], want[16384];

    assert_non_null(data);
    assert_int_equal(st_perfetto_encode(t, &out, &len), 0);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, out, len), (ssize_t)len);
    close(fd);

    snprintf(cmd, sizeof(cmd),
             "protoc --decode=perfetto.protos.Trace -I '%s/perfetto' '%s/perfetto/"
             "perfetto_subset.proto' < '%s' 2>&1",
             data, data, path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(got, 1, sizeof(got) - 1, p);
    got[n] = '\0';
    int status = pclose(p);
    if (status != 0)
        fprintf(stderr, "%s\n%s\n", cmd, got);
    assert_int_equal(status, 0);

    snprintf(expected_path, sizeof(expected_path), "%s/perfetto/expected_decode.txt", data);
    FILE *e = fopen(expected_path, "r");
    assert_non_null(e);
    n = fread(want, 1, sizeof(want) - 1, e);
    want[n] = '\0';
    fclose(e);
    if (strcmp(got, want) != 0)
        fprintf(stderr, "protoc --decode printed:\n%s\n", got);
    assert_string_equal(got, want);

    unlink(path);
    free(out);
    st_trace_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_varint),
        cmocka_unit_test(test_empty_trace),
        cmocka_unit_test(test_protoc_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
