/* SPDX-License-Identifier: MIT
 *
 * Unit tests for the Prometheus text (src/metrics.c): samples of the last dump only, label value
 * escaping (the format's three escapes), the counters' text, rejection of what is not a report,
 * and how new dumps are counted across publications.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "error.h"
#include "metrics.h"

#include <stdlib.h>
#include <string.h>

static const char report[] =
    "{\"dumps\":["
    "{\"id\":\"0x1\",\"ts\":1,\"partial\":true,\"warnings\":[],\"processes\":[{\"pid\":7,\"name\":"
    "\"old\","
    "\"shared_owned_bytes\":1,\"shared_mapped_bytes\":1,\"rss_bytes\":1,\"pss_bytes\":1,"
    "\"private_footprint_bytes\":1}],\"objects\":[],\"totals\":{\"shared_resident_unique\":0,"
    "\"attributed\":0,\"unattributed\":0}},"
    "{\"id\":\"0x2\",\"ts\":2,\"partial\":false,\"warnings\":[\"w\"],"
    "\"processes\":[{\"pid\":812,\"name\":\"a \\\"q\\\" b\\\\c\\nd\",\"shared_owned_bytes\":8192,"
    "\"shared_mapped_bytes\":12288,\"rss_bytes\":40960,\"pss_bytes\":20480,"
    "\"private_footprint_bytes\":4096}],"
    "\"objects\":[{\"key\":\"memfd:0:1:5\",\"kind\":\"memfd\",\"name\":\"r\\\"x\",\"size\":8192,"
    "\"virtual_size\":16384,\"swapped_size\":0,\"owner_pid\":812,\"holders\":[]},"
    "{\"key\":\"posix:0:26:1\",\"kind\":\"posix\",\"name\":\"\",\"size\":4096,\"virtual_size\":"
    "4096,"
    "\"swapped_size\":0,\"owner_pid\":0,\"holders\":[]}],"
    "\"totals\":{\"shared_resident_unique\":12288,\"attributed\":8192,\"unattributed\":4096}}]}";

static void test_render(void **state)
{
    (void)state;
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(st_metrics_render(report, strlen(report), &out, &len), 0);
    assert_int_equal(strlen(out), len);
    /* The last dump only. */
    assert_null(strstr(out, "pid=\"7\""));
    assert_non_null(strstr(out, "# TYPE shmtrack_process_shared_owned_bytes gauge\n"));
    assert_non_null(strstr(out, "shmtrack_process_shared_owned_bytes{pid=\"812\","
                                "name=\"a \\\"q\\\" b\\\\c\\nd\"} 8192\n"));
    assert_non_null(strstr(out, "shmtrack_process_shared_mapped_bytes{pid=\"812\","));
    assert_non_null(strstr(out, "shmtrack_object_resident_bytes{key=\"memfd:0:1:5\",kind=\"memfd\","
                                "name=\"r\\\"x\",owner=\"812\"} 8192\n"));
    assert_non_null(strstr(out, "shmtrack_object_resident_bytes{key=\"posix:0:26:1\","
                                "kind=\"posix\",name=\"\",owner=\"0\"} 4096\n"));
    assert_non_null(strstr(out, "\nshmtrack_unattributed_bytes 4096\n"));
    assert_non_null(strstr(out, "\nshmtrack_shared_resident_unique_bytes 12288\n"));
    assert_non_null(strstr(out, "\nshmtrack_dump_partial 0\n"));
    assert_non_null(strstr(out, "\nshmtrack_dump_warnings 1\n"));
    /* No raw newline inside any sample line: every line is a comment or name{...} value. */
    for (char *line = out; *line;) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        assert_true(line[0] == '#' || strncmp(line, "shmtrack_", 9) == 0);
        line = nl + 1;
    }
    free(out);
}

static void test_state(void **state)
{
    (void)state;
    st_metrics_state_t s = {5, 2, 0.25, 1};
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(st_metrics_render_state(&s, &out, &len), 0);
    assert_non_null(strstr(out, "# TYPE shmtrack_dumps_total counter\nshmtrack_dumps_total 5\n"));
    assert_non_null(strstr(out, "shmtrack_partial_dumps_total 2\n"));
    assert_non_null(strstr(out, "shmtrack_dump_errors_total 1\n"));
    assert_non_null(strstr(out, "shmtrack_dump_duration_seconds 0.250000\n"));
    free(out);
}

static void test_rejects(void **state)
{
    (void)state;
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(st_metrics_render("{}", 2, &out, &len), ST_EFORMAT);
    assert_int_equal(st_metrics_render("[1]", 3, &out, &len), ST_EFORMAT);
    assert_int_equal(st_metrics_render("{\"dumps\":[", 10, &out, &len), ST_EFORMAT);
    const char bad[] = "{\"dumps\":[{\"id\":\"0x1\",\"processes\":{}}]}";
    assert_int_equal(st_metrics_render(bad, strlen(bad), &out, &len), ST_EFORMAT);
    assert_null(out);
    /* No dumps at all is a report: zero totals. */
    assert_int_equal(st_metrics_render("{\"dumps\":[]}", 12, &out, &len), 0);
    assert_non_null(strstr(out, "\nshmtrack_unattributed_bytes 0\n"));
    free(out);
}

static void test_count_new(void **state)
{
    (void)state;
    uint64_t max = 0, n = 0, partial = 0;
    assert_int_equal(st_metrics_count_new(report, strlen(report), &max, &n, &partial), 0);
    assert_int_equal(n, 2);
    assert_int_equal(partial, 1);
    assert_int_equal(max, 2);
    /* Published again: nothing new. */
    assert_int_equal(st_metrics_count_new(report, strlen(report), &max, &n, &partial), 0);
    assert_int_equal(n, 0);
    assert_int_equal(partial, 0);
    max = 1;
    assert_int_equal(st_metrics_count_new(report, strlen(report), &max, &n, &partial), 0);
    assert_int_equal(n, 1);
    assert_int_equal(partial, 0);
    assert_int_equal(st_metrics_count_new("nope", 4, &max, &n, &partial), ST_EFORMAT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_state),
        cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_count_new),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
