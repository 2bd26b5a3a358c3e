/* SPDX-License-Identifier: MIT
 *
 * Unit tests for the page builder (src/view.c): the escaping that keeps embedded JSON inside its
 * <script> element, the placement of data and configuration in the template, that the page
 * references nothing outside itself, and the per-holder mapped bytes taken from the model.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "model.h"
#include "view.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void test_escape(void **state)
{
    (void)state;
    /* A name as hostile as a memfd name can be: closes the element, opens a comment, has '&'
     * and the two line separators JavaScript once treated as newlines. */
    const char in[] = "{\"name\":\"</script><!--&x\xe2\x80\xa8y\xe2\x80\xa9z\"}";
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(st_view_escape_json(in, strlen(in), &out, &len), 0);
    assert_string_equal(out,
                        "{\"name\":\"\\u003c/script\\u003e\\u003c!--\\u0026x\\u2028y\\u2029z\"}");
    assert_int_equal(len, strlen(out));
    free(out);

    /* Other multi-byte UTF-8 passes through untouched, and so does a lone 0xe2 at the end. */
    const char utf8[] = "[\"\xc3\xa9\xe2\x82\xac\xe2\"]";
    assert_int_equal(st_view_escape_json(utf8, strlen(utf8), &out, &len), 0);
    assert_string_equal(out, utf8);
    free(out);
}

static const char report[] =
    "{\"dumps\":[{\"id\":\"0x1\",\"ts\":1,\"processes\":[],\"objects\":[{\"key\":\"posix:0:26:11\","
    "\"name\":\"/dev/shm/</script><script>alert(1)</script>\"}]}]}";

static void test_render(void **state)
{
    (void)state;
    char *page = NULL;
    size_t len = 0;
    st_view_options_t opts = {true, 1500, "api/dumps"};
    assert_int_equal(st_view_render(report, strlen(report), "{\"mapped\":{}}", &opts, &page, &len),
                     0);
    assert_int_equal(strlen(page), len);
    assert_true(strncmp(page, "<!DOCTYPE html>", 15) == 0);
    /* No marker is left, data and config are where the page reads them. */
    assert_null(strstr(page, "@SHMTRACK_"));
    assert_non_null(strstr(page,
                           "<script type=\"application/json\" id=\"shmtrack-config\">"
                           "{\"live\":true,\"refresh_ms\":1500,\"api\":\"api/dumps\"}</script>"));
    assert_non_null(strstr(page, "id=\"shmtrack-data\">{\"dumps\":[{\"id\":\"0x1\""));
    assert_non_null(strstr(page, "id=\"shmtrack-extra\">{\"mapped\":{}}</script>"));
    /* The hostile name did not end the element: exactly the page's own closing tags remain,
     * one per <script> element of the template. */
    size_t opens = 0, closes = 0;
    for (const char *p = page; (p = strstr(p, "<script")); p++)
        opens++;
    for (const char *p = page; (p = strstr(p, "</script>")); p++)
        closes++;
    assert_int_equal(opens, 4);
    assert_int_equal(closes, 4);
    /* Self-contained: nothing is loaded from elsewhere. */
    assert_null(strstr(page, "src=\""));
    assert_null(strstr(page, "<link"));
    assert_null(strstr(page, "@import"));
    assert_null(strstr(page, "url("));
    free(page);
}

static void test_render_rejects(void **state)
{
    (void)state;
    char *page = NULL;
    size_t len = 0;
    assert_int_equal(st_view_render("", 0, NULL, NULL, &page, &len), -EINVAL);
    assert_int_equal(st_view_render("nope", 4, NULL, NULL, &page, &len), -EINVAL);
    assert_int_equal(st_view_render("{}", 2, "x", NULL, &page, &len), -EINVAL);
    assert_null(page);
    /* A default page: not live, empty extra data. */
    assert_int_equal(st_view_render(" {}", 3, NULL, NULL, &page, &len), 0);
    assert_non_null(strstr(page, "{\"live\":false,\"refresh_ms\":2000,\"api\":\"api/dumps\"}"));
    assert_non_null(strstr(page, "id=\"shmtrack-extra\">{}</script>"));
    free(page);
}

static void test_extra_json(void **state)
{
    (void)state;
    st_trace_t *t = NULL;
    st_global_dump_t *d = NULL;
    st_process_dump_t *p = NULL;
    st_node_t *n = NULL;
    char *json = NULL;
    size_t len = 0;
    st_object_info_t a = {
        .key = "memfd:0:1:5", .kind = ST_KIND_MEMFD, .name = "ring", .size = 8192};
    st_object_info_t b = {.key = "anon:0:1:9", .kind = ST_KIND_ANON, .size = 4096};

    assert_int_equal(st_trace_new(&t), 0);
    assert_int_equal(st_trace_add_dump(t, 0x2a, 5, &d), 0);
    assert_int_equal(st_dump_add_object(d, &a, 10, NULL), 0);
    assert_int_equal(st_dump_add_object(d, &b, 11, NULL), 0);
    assert_int_equal(st_dump_add_process(d, 10, "a", &p), 0);
    assert_int_equal(st_process_add_holder(p, &a, 8192, 2, NULL), 0);
    /* Not a holder node: a child of one, and another allocator. */
    assert_int_equal(st_process_add_node(p, "shared_memory/memfd:0:1:5/part", 1, false, &n), 0);
    assert_int_equal(st_node_set_scalar(n, "mapped_size", "bytes", 1), 0);
    assert_int_equal(st_process_add_node(p, "malloc", 2, false, &n), 0);
    assert_int_equal(st_node_set_scalar(n, "mapped_size", "bytes", 1), 0);
    assert_int_equal(st_dump_add_process(d, 11, "b", &p), 0);
    assert_int_equal(st_process_add_holder(p, &b, 4096, 0, NULL), 0);
    assert_int_equal(st_process_add_holder(p, &a, 4096, 0, NULL), 0);
    assert_int_equal(st_trace_add_dump(t, 0x2b, 6, &d), 0);

    /* Without graph results: no allocators. */
    assert_int_equal(st_view_extra_json(t, NULL, &json, &len), 0);
    assert_string_equal(json, "{\"mapped\":{\"0x2a\":{\"10\":{\"memfd:0:1:5\":8192},"
                              "\"11\":{\"anon:0:1:9\":4096,\"memfd:0:1:5\":4096}},\"0x2b\":{}},"
                              "\"allocators\":{\"0x2a\":{},\"0x2b\":{}}}");
    assert_int_equal(len, strlen(json));
    free(json);

    /* A graph result for the first dump, as st_graph_process lays it out (sorted by pid, path):
     * only other processes' top-level nodes become allocator columns. */
    st_graph_node_t nodes[] = {
        {.pid = 0, .path = "global/00000000000000aa", .effective_size = 9},
        {.pid = 10, .path = "malloc", .effective_size = 100},
        {.pid = 10, .path = "malloc/arena", .effective_size = 60},
        {.pid = 10, .path = "shared_memory", .effective_size = 8192},
        {.pid = 11, .path = "partition \"alloc\"", .effective_size = 7},
        {.pid = 11, .path = "unattributed", .effective_size = 1},
    };
    st_graph_result_t g = {.nodes = nodes, .n_nodes = sizeof(nodes) / sizeof(nodes[0])};
    st_graph_result_t *graphs[] = {&g, NULL};
    assert_int_equal(st_view_extra_json(t, graphs, &json, &len), 0);
    assert_non_null(strstr(json, "\"allocators\":{\"0x2a\":{\"10\":{\"malloc\":100},"
                                 "\"11\":{\"partition \\\"alloc\\\"\":7}},\"0x2b\":{}}}"));
    free(json);
    st_trace_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_render_rejects),
        cmocka_unit_test(test_extra_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
