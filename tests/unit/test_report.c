/* SPDX-License-Identifier: MIT
 *
 * Unit tests for the report renderings (src/report.c): human units, the table's alignment and
 * lines, CSV quoting and its single header, format names. The summaries are written out by
 * hand here, so these tests exercise the formatting alone.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "error.h"
#include "report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_human_units(void **state)
{
    static const struct {
        uint64_t v;
        const char *want;
    } cases[] = {
        {0, "0 B"},
        {1023, "1023 B"},
        {1024, "1.0 KiB"},
        {1536, "1.5 KiB"},
        {1024 + 51, "1.0 KiB"}, /* 0.0498 KiB rounds down */
        {1024 + 52, "1.1 KiB"}, /* 0.0508 KiB rounds up */
        {1048575, "1.0 MiB"},   /* 1023.999 KiB carries into the next unit */
        {1048577, "1.0 MiB"},
        {12058625, "11.5 MiB"}, /* 11.500001 MiB */
        {3ull << 30, "3.0 GiB"},
        {(5ull << 40) + (1ull << 39), "5.5 TiB"},
        {UINT64_MAX, "16777216.0 TiB"},
    };
    char buf[32];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        st_report_human(cases[i].v, buf, sizeof(buf));
        assert_string_equal(buf, cases[i].want);
    }
}

static void test_format_names(void **state)
{
    st_report_format_t f;
    assert_int_equal(st_report_format_parse("csv", &f), 0);
    assert_int_equal(f, ST_REPORT_CSV);
    assert_int_equal(st_report_format_parse("json", &f), 0);
    assert_int_equal(f, ST_REPORT_JSON);
    assert_int_equal(st_report_format_parse("xml", &f), ST_EUSAGE);
    assert_string_equal(st_report_format_name(ST_REPORT_TABLE), "table");
}

/* A summary with one process, one object with two holders, a warning. */
static st_summary_t *sample(void)
{
    st_summary_t *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    s->id = 0x1f;
    s->ts_us = 42;
    s->n_procs = 2;
    s->procs = calloc(2, sizeof(*s->procs));
    s->procs[0] =
        (st_summary_process_t){7, strdup("a, \"b\""), 1536, 4096, 2048, 0, 0, ST_SUMMARY_HAS_RSS};
    s->procs[1] = (st_summary_process_t){12345, NULL, 0, 4096, 0, 0, 0, 0};
    s->n_objects = 1;
    s->objects = calloc(1, sizeof(*s->objects));
    st_summary_object_t *o = &s->objects[0];
    o->key = strdup("memfd:0:1:5");
    o->kind = strdup("memfd");
    o->name = strdup("ring");
    o->size = 1536;
    o->virtual_size = 4096;
    o->owner_pid = 7;
    o->n_holders = 2;
    o->holders = calloc(2, sizeof(*o->holders));
    o->holders[0] = (st_summary_holder_t){7, 2, 1536};
    o->holders[1] = (st_summary_holder_t){12345, 0, 0};
    s->shared_resident_unique = 1536;
    s->attributed = 1536;
    s->n_warnings = 1;
    s->warnings = calloc(1, sizeof(char *));
    s->warnings[0] = strdup("something, odd");
    return s;
}

static char *render(st_summary_t *s, st_report_format_t format, bool bytes)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    st_report_options_t opt = {format, bytes};
    assert_int_equal(st_report_write(f, &s, 1, &opt), 0);
    fclose(f);
    return buf;
}

static void test_table(void **state)
{
    st_summary_t *s = sample();
    char *out = render(s, ST_REPORT_TABLE, false);
    const char *want =
        "dump 0x1f at 42 us: 2 processes, 1 object\n"
        "processes:\n"
        "    PID  NAME    RESIDENT  PSS  PRIVATE  SHARED MAPPED  SHARED OWNED\n"
        "      7  a, \"b\"   2.0 KiB    -        -        4.0 KiB       1.5 KiB\n"
        "  12345  -              -    -        -        4.0 KiB           0 B\n"
        "  total           2.0 KiB  0 B      0 B        8.0 KiB       1.5 KiB\n"
        "objects:\n"
        "  KEY          KIND   NAME  LABEL     SIZE  VIRTUAL  SWAPPED  OWNER  HOLDERS\n"
        "  memfd:0:1:5  memfd  ring  -      1.5 KiB  4.0 KiB      0 B      7        2\n"
        "shared resident, each object once: 1.5 KiB = attributed 1.5 KiB + "
        "unattributed 0 B\n"
        "unattributed: 0 B in 0 objects nobody is charged for\n"
        "partial: no\n"
        "warnings: 1\n"
        "  - something, odd\n";
    assert_string_equal(out, want);
    free(out);
    out = render(s, ST_REPORT_TABLE, true);
    assert_non_null(
        strstr(out, "      7  a, \"b\"      2048    -        -           4096          1536\n"
                    "  12345  -              -    -        -           4096             0\n"
                    "  total              2048    0        0           8192          1536\n"));
    free(out);
    st_summary_free(s);
}

/* A label set through the API is a column of its own; a wall-clock timestamp is also shown as
 * UTC. */
static void test_table_label_and_wall_clock(void **state)
{
    st_summary_t *s = sample();
    s->ts_us = UINT64_C(1795431501473278);
    s->objects[0].label = strdup("io ring");
    char *out = render(s, ST_REPORT_TABLE, false);
    assert_non_null(strstr(out, "dump 0x1f at 1795431501473278 us (2026-11-23 10:58:21 UTC): 2 "
                                "processes, 1 object\n"));
    assert_non_null(strstr(out, "  KEY          KIND   NAME  LABEL       SIZE  VIRTUAL"));
    assert_non_null(strstr(out, "  memfd:0:1:5  memfd  ring  io ring  1.5 KiB  4.0 KiB"));
    free(out);
    st_summary_free(s);
}

static void test_csv(void **state)
{
    st_summary_t *s = sample();
    char *out = render(s, ST_REPORT_CSV, false);
    const char *header =
        "section,dump_id,ts_us,pid,name,key,kind,importance,rss_bytes,pss_bytes,"
        "private_footprint_bytes,shared_mapped_bytes,shared_owned_bytes,size,virtual_size,"
        "swapped_size,effective_size,owner_pid,holder_count,label,creator_pid,"
        "shared_resident_unique,attributed,unattributed,partial,message\n";
    assert_memory_equal(out, header, strlen(header));
    const char *rest = out + strlen(header);
    const char *want = "process,0x1f,42,7,\"a, \"\"b\"\"\",,,,2048,,,4096,1536,,,,,,,,,,,,,\n"
                       "process,0x1f,42,12345,,,,,,,,4096,0,,,,,,,,,,,,,\n"
                       "object,0x1f,42,,ring,memfd:0:1:5,memfd,,,,,,,1536,4096,0,0,7,2,,,,,,,\n"
                       "holder,0x1f,42,7,,memfd:0:1:5,,2,,,,,,,,,1536,,,,,,,,,\n"
                       "holder,0x1f,42,12345,,memfd:0:1:5,,0,,,,,,,,,0,,,,,,,,,\n"
                       "totals,0x1f,42,,,,,,,,,,,,,,,,,,,1536,1536,0,false,\n"
                       "warning,0x1f,42,,,,,,,,,,,,,,,,,,,,,,,\"something, odd\"\n";
    assert_string_equal(rest, want);
    free(out);
    st_summary_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_human_units), cmocka_unit_test(test_format_names),
        cmocka_unit_test(test_table),       cmocka_unit_test(test_table_label_and_wall_clock),
        cmocka_unit_test(test_csv),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
