/* SPDX-License-Identifier: MIT
 *
 * Unit tests for the report summary (src/summary.c, src/summary_json.c). Two kinds:
 *   - the summary's own rules (owner selection, holders, mapped/owned bytes, the invariant
 *     warning, weak removal, warnings and problems) over graph results written out by hand, so
 *     that they test summary.c alone;
 *   - shared/ALGORITHM.md's vectors posed as shared memory objects and run through the real
 *     graph processor, with the expected bytes computed by hand in the comments.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "error.h"
#include "graph.h"
#include "model.h"
#include "summary.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MiB (1024ull * 1024ull)

/* ---- building models ---- */

static st_trace_t *trace;
static st_global_dump_t *dump;

static int setup(void **state)
{
    assert_int_equal(st_trace_new(&trace), 0);
    assert_int_equal(st_trace_add_dump(trace, 0x2a, 5000, &dump), 0);
    return 0;
}

static int teardown(void **state)
{
    st_trace_free(trace);
    trace = NULL;
    dump = NULL;
    return 0;
}

static st_process_dump_t *proc(int pid)
{
    st_process_dump_t *p = NULL;
    assert_int_equal(st_dump_add_process(dump, pid, NULL, &p), 0);
    return p;
}

static st_object_info_t object(const char *key, uint64_t size)
{
    st_object_info_t info = {key, ST_KIND_MEMFD, "obj", size, 2 * size, 0, 0, NULL, 0};
    assert_int_equal(st_key_kind(key, &info.kind), 0);
    return info;
}

/* Holder of info in pid, reporting holder_size as its size (the object's, normally). */
static void hold(int pid, st_object_info_t info, uint64_t holder_size, int importance,
                 uint64_t mapped)
{
    info.size = holder_size;
    assert_int_equal(st_process_add_holder(proc(pid), &info, mapped, importance, NULL), 0);
}

static void add_object(const st_object_info_t *info)
{
    assert_int_equal(st_dump_add_object(dump, info, 0, NULL), 0);
}

static const st_summary_object_t *find_object(const st_summary_t *s, const char *key)
{
    for (size_t i = 0; i < s->n_objects; i++)
        if (strcmp(s->objects[i].key, key) == 0)
            return &s->objects[i];
    return NULL;
}

static const st_summary_holder_t *find_holder(const st_summary_object_t *o, int pid)
{
    for (size_t i = 0; i < o->n_holders; i++)
        if (o->holders[i].pid == pid)
            return &o->holders[i];
    return NULL;
}

static const st_summary_process_t *find_proc(const st_summary_t *s, int pid)
{
    for (size_t i = 0; i < s->n_procs; i++)
        if (s->procs[i].pid == pid)
            return &s->procs[i];
    return NULL;
}

static bool has_warning(const st_summary_t *s, const char *needle)
{
    for (size_t i = 0; i < s->n_warnings; i++)
        if (strstr(s->warnings[i], needle) != NULL)
            return true;
    return false;
}

/* ---- hand-written graph results ---- */

typedef struct gspec {
    int pid;
    const char *path; /* NULL: the global node of key */
    const char *key;
    uint64_t size, effective;
    const char *owns_key; /* the key whose global node this node owns */
    int importance;
} gspec_t;

static int cmp_gnode(const void *a, const void *b)
{
    const st_graph_node_t *x = a, *y = b;
    if (x->pid != y->pid)
        return x->pid < y->pid ? -1 : 1;
    return strcmp(x->path, y->path);
}

static st_graph_result_t *fake_graph(const gspec_t *specs, size_t n, const char *warning)
{
    st_graph_result_t *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    r->nodes = calloc(n ? n : 1, sizeof(*r->nodes));
    assert_non_null(r->nodes);
    for (size_t i = 0; i < n; i++) {
        st_graph_node_t *g = &r->nodes[i];
        g->pid = specs[i].pid;
        if (specs[i].path != NULL) {
            g->path = strdup(specs[i].path);
        } else {
            char name[32];
            st_global_name(st_guid_global(specs[i].key), name, sizeof(name));
            g->path = strdup(name);
            g->guid = st_guid_global(specs[i].key);
        }
        assert_non_null(g->path);
        g->is_explicit = true;
        g->size = specs[i].size;
        g->effective_size = specs[i].effective;
        g->owns = specs[i].owns_key ? st_guid_global(specs[i].owns_key) : 0;
        g->importance = specs[i].importance;
    }
    r->n_nodes = n;
    qsort(r->nodes, n, sizeof(*r->nodes), cmp_gnode);
    if (warning != NULL) {
        r->warnings = calloc(1, sizeof(char *));
        assert_non_null(r->warnings);
        r->warnings[0] = strdup(warning);
        r->n_warnings = 1;
    }
    return r;
}

static void fake_free(st_graph_result_t *r)
{
    for (size_t i = 0; i < r->n_nodes; i++)
        free(r->nodes[i].path);
    free(r->nodes);
    for (size_t i = 0; i < r->n_warnings; i++)
        free(r->warnings[i]);
    free(r->warnings);
    free(r);
}

static st_summary_t *summarize_fake(const gspec_t *specs, size_t n, const char *warning)
{
    st_graph_result_t *g = fake_graph(specs, n, warning);
    st_summary_t *s = NULL;
    assert_int_equal(st_summary_build(dump, g, &s), 0);
    fake_free(g);
    return s;
}

static st_summary_t *summarize_real(void)
{
    st_summary_t *s = NULL;
    assert_int_equal(st_summary_compute(dump, &s), 0);
    return s;
}

#define H(pid, key) "shared_memory/" key

/* ---- the summary's rules, over hand-written graph results ---- */

/* Two holders charged 50 each: the lower pid owns; the one charged 0 never does. */
static void test_owner_ties_to_lowest_pid(void **state)
{
    st_object_info_t o = object("memfd:0:1:5", 100);
    add_object(&o);
    hold(13, o, 100, 0, 10);
    hold(12, o, 100, 0, 10);
    hold(11, o, 100, 0, 10);
    const gspec_t g[] = {
        {0, NULL, "memfd:0:1:5", 100, 0, NULL, 0},
        {11, "shared_memory", NULL, 100, 0, NULL, 0},
        {11, H(11, "memfd:0:1:5"), NULL, 100, 0, "memfd:0:1:5", 0},
        {12, "shared_memory", NULL, 100, 50, NULL, 0},
        {12, H(12, "memfd:0:1:5"), NULL, 100, 50, "memfd:0:1:5", 0},
        {13, "shared_memory", NULL, 100, 50, NULL, 0},
        {13, H(13, "memfd:0:1:5"), NULL, 100, 50, "memfd:0:1:5", 0},
    };
    st_summary_t *s = summarize_fake(g, sizeof(g) / sizeof(g[0]), NULL);
    const st_summary_object_t *so = find_object(s, "memfd:0:1:5");
    assert_non_null(so);
    assert_int_equal(so->owner_pid, 12);
    assert_int_equal(so->n_holders, 3);
    assert_int_equal(so->holders[0].pid, 11); /* sorted by pid */
    assert_int_equal(so->holders[2].pid, 13);
    assert_int_equal(find_holder(so, 13)->effective_size, 50);
    assert_int_equal(s->attributed, 100);
    assert_int_equal(s->unattributed, 0);
    assert_int_equal(s->shared_resident_unique, 100);
    assert_int_equal(s->n_warnings, 0);
    st_summary_free(s);
}

/* Nobody charged anything: no owner, the whole size is unattributed. */
static void test_no_owner_when_nobody_charged(void **state)
{
    st_object_info_t o = object("posix:0:26:11", 4096);
    add_object(&o);
    hold(7, o, 4096, 0, 4096);
    const gspec_t g[] = {
        {0, NULL, "posix:0:26:11", 4096, 4096, NULL, 0},
        {7, "shared_memory", NULL, 4096, 0, NULL, 0},
        {7, H(7, "posix:0:26:11"), NULL, 4096, 0, "posix:0:26:11", 0},
    };
    st_summary_t *s = summarize_fake(g, sizeof(g) / sizeof(g[0]), NULL);
    const st_summary_object_t *so = find_object(s, "posix:0:26:11");
    assert_int_equal(so->owner_pid, 0);
    assert_int_equal(so->n_holders, 1);
    assert_int_equal(so->unattributed, 4096);
    assert_string_equal(so->kind, "posix");
    assert_int_equal(s->unattributed, 4096);
    assert_int_equal(s->attributed, 0);
    assert_int_equal(s->n_warnings, 0);
    st_summary_free(s);
}

/* Charges that do not add up to the objects' sizes are reported, never passed silently. */
static void test_invariant_violation_warns(void **state)
{
    st_object_info_t o = object("anon:0:1:9", 100);
    add_object(&o);
    hold(5, o, 100, 2, 100);
    const gspec_t g[] = {
        {0, NULL, "anon:0:1:9", 100, 0, NULL, 0},
        {5, "shared_memory", NULL, 100, 30, NULL, 0},
        {5, H(5, "anon:0:1:9"), NULL, 100, 30, "anon:0:1:9", 2},
    };
    st_summary_t *s = summarize_fake(g, sizeof(g) / sizeof(g[0]), NULL);
    assert_int_equal(s->attributed, 30);
    assert_int_equal(s->shared_resident_unique, 100);
    assert_true(has_warning(s, "invariant violated: attributed 30 + unattributed 0 != "
                               "shared_resident_unique 100"));
    st_summary_free(s);
}

/* Per-process figures: owned from the "shared_memory" subtree, mapped summed over holder nodes
 * (a node below a holder does not count), totals only where reported. */
static void test_process_figures(void **state)
{
    st_object_info_t a = object("memfd:0:1:1", 300), b = object("anon:0:1:2", 50);
    add_object(&a);
    add_object(&b);
    hold(40, a, 300, 2, 4096);
    hold(40, b, 50, 0, 8192);
    st_process_dump_t *p = proc(40);
    st_node_t *n = NULL;
    assert_int_equal(st_process_add_node(p, "shared_memory/memfd:0:1:1/part", 1, false, &n), 0);
    assert_int_equal(st_node_set_scalar(n, "mapped_size", "bytes", 999), 0);
    p->totals.resident_set_bytes = 777;
    p->totals.pss_bytes = 555;
    p->totals.present = ST_TOTAL_HAS(resident_set_bytes) | ST_TOTAL_HAS(pss_bytes);
    const gspec_t g[] = {
        {0, NULL, "memfd:0:1:1", 300, 0, NULL, 0},
        {0, NULL, "anon:0:1:2", 50, 50, NULL, 0},
        {40, "shared_memory", NULL, 350, 300, NULL, 0},
        {40, H(40, "memfd:0:1:1"), NULL, 300, 300, "memfd:0:1:1", 2},
        {40, "shared_memory/memfd:0:1:1/part", NULL, 300, 0, NULL, 0},
        {40, H(40, "anon:0:1:2"), NULL, 50, 0, "anon:0:1:2", 0},
    };
    st_summary_t *s = summarize_fake(g, sizeof(g) / sizeof(g[0]), NULL);
    const st_summary_process_t *sp = find_proc(s, 40);
    assert_non_null(sp);
    assert_null(sp->name);
    assert_int_equal(sp->shared_owned_bytes, 300);
    assert_int_equal(sp->shared_mapped_bytes, 4096 + 8192);
    assert_int_equal(sp->rss_bytes, 777);
    assert_int_equal(sp->pss_bytes, 555);
    assert_int_equal(sp->present, ST_SUMMARY_HAS_RSS | ST_SUMMARY_HAS_PSS);
    /* objects sorted by key */
    assert_string_equal(s->objects[0].key, "anon:0:1:2");
    assert_string_equal(s->objects[1].key, "memfd:0:1:1");
    assert_int_equal(s->shared_resident_unique, 350);
    assert_int_equal(s->attributed + s->unattributed, 350);
    st_summary_free(s);
}

/* What the graph processor removed (a weak global and its holder) is not in the summary. */
static void test_removed_nodes_are_skipped(void **state)
{
    st_object_info_t o = object("memfd:0:1:3", 64);
    add_object(&o);
    hold(9, o, 64, 0, 4096);
    const gspec_t g[] = {{9, "malloc", NULL, 10, 10, NULL, 0}};
    st_summary_t *s = summarize_fake(g, 1, NULL);
    assert_int_equal(s->n_objects, 0);
    assert_int_equal(find_proc(s, 9)->shared_mapped_bytes, 0);
    assert_int_equal(find_proc(s, 9)->shared_owned_bytes, 0);
    assert_int_equal(s->shared_resident_unique, 0);
    st_summary_free(s);
}

/* A process owning one object through two nodes is one holder, charged their sum, shown with
 * its highest claim. Global nodes without a key are not objects. */
static void test_holders_merge_per_pid(void **state)
{
    st_object_info_t o = object("memfd:0:1:4", 100);
    add_object(&o);
    hold(3, o, 100, 0, 100);
    st_node_t *other = NULL;
    assert_int_equal(st_dump_add_global(dump, "global/ff", 0xff, false, 3, &other, NULL), 0);
    const gspec_t g[] = {
        {0, NULL, "memfd:0:1:4", 100, 0, NULL, 0},
        {0, "global/ff", NULL, 5, 5, NULL, 0},
        {3, "shared_memory", NULL, 100, 60, NULL, 0},
        {3, H(3, "memfd:0:1:4"), NULL, 100, 60, "memfd:0:1:4", 0},
        {3, "gpu/buffer", NULL, 40, 40, "memfd:0:1:4", 1},
    };
    st_summary_t *s = summarize_fake(g, sizeof(g) / sizeof(g[0]), NULL);
    assert_int_equal(s->n_objects, 1);
    const st_summary_object_t *so = &s->objects[0];
    assert_int_equal(so->n_holders, 1);
    assert_int_equal(so->holders[0].effective_size, 100);
    assert_int_equal(so->holders[0].importance, 1);
    assert_int_equal(so->owner_pid, 3);
    assert_int_equal(s->n_warnings, 0);
    st_summary_free(s);
}

/* The dump's warnings, then the graph's, without repeats; partial and problems copied. */
static void test_warnings_partial_problems(void **state)
{
    assert_int_equal(st_dump_add_warning(dump, "pid 7 did not answer"), 0);
    assert_int_equal(st_dump_add_warning(dump, "edge to unknown guid 0x5"), 0);
    assert_int_equal(st_dump_add_problem(dump, 7, "/proc/7/smaps_rollup", EACCES), 0);
    dump->partial = true;
    proc(1);
    const gspec_t g[] = {{1, "malloc", NULL, 1, 1, NULL, 0}};
    st_summary_t *s = summarize_fake(g, 1, "edge to unknown guid 0x5");
    assert_true(s->partial);
    assert_int_equal(s->n_warnings, 2);
    assert_string_equal(s->warnings[0], "pid 7 did not answer");
    assert_string_equal(s->warnings[1], "edge to unknown guid 0x5");
    assert_int_equal(s->n_problems, 1);
    assert_int_equal(s->problems[0].pid, 7);
    assert_string_equal(s->problems[0].path, "/proc/7/smaps_rollup");
    assert_int_equal(s->problems[0].err, EACCES);
    st_summary_free(s);
}

/* The JSON: schema order, nulls for the unknown, additive fields last. */
static void test_json_shape(void **state)
{
    st_object_info_t o = {"memfd:0:1:5", ST_KIND_MEMFD, "ring", 100, 4096, 8, 11, "lbl", 0};
    add_object(&o);
    hold(11, o, 100, 2, 4096);
    hold(12, o, 100, 0, 4096);
    st_process_dump_t *p = proc(11);
    assert_int_equal(st_dump_add_process(dump, 11, "a", NULL), 0);
    p->totals.resident_set_bytes = 1;
    p->totals.pss_bytes = 2;
    p->totals.private_footprint_bytes = 3;
    p->totals.present = (1u << ST_TOTAL_COUNT) - 1;
    const gspec_t g[] = {
        {0, NULL, "memfd:0:1:5", 100, 0, NULL, 0},
        {11, "shared_memory", NULL, 100, 100, NULL, 0},
        {11, H(11, "memfd:0:1:5"), NULL, 100, 100, "memfd:0:1:5", 2},
        {12, "shared_memory", NULL, 100, 0, NULL, 0},
        {12, H(12, "memfd:0:1:5"), NULL, 100, 0, "memfd:0:1:5", 0},
    };
    st_summary_t *s = summarize_fake(g, sizeof(g) / sizeof(g[0]), NULL);
    json_t *j = NULL;
    assert_int_equal(st_summaries_to_json(&s, 1, &j), 0);
    char *text = json_dumps(j, JSON_COMPACT);
    assert_non_null(text);
    assert_string_equal(
        text,
        "{\"dumps\":[{\"id\":\"0x2a\",\"ts\":5000,\"processes\":["
        "{\"pid\":11,\"name\":\"a\",\"shared_owned_bytes\":100,\"shared_mapped_bytes\":4096,"
        "\"rss_bytes\":1,\"pss_bytes\":2,\"private_footprint_bytes\":3},"
        "{\"pid\":12,\"name\":null,\"shared_owned_bytes\":0,\"shared_mapped_bytes\":4096,"
        "\"rss_bytes\":null,\"pss_bytes\":null,\"private_footprint_bytes\":null}],"
        "\"objects\":[{\"key\":\"memfd:0:1:5\",\"kind\":\"memfd\",\"name\":\"ring\",\"size\":100,"
        "\"virtual_size\":4096,\"swapped_size\":8,\"owner_pid\":11,\"holders\":["
        "{\"pid\":11,\"importance\":2,\"effective_size\":100},"
        "{\"pid\":12,\"importance\":0,\"effective_size\":0}],\"label\":\"lbl\","
        "\"creator_pid\":11}],"
        "\"totals\":{\"shared_resident_unique\":100,\"attributed\":100,\"unattributed\":0},"
        "\"partial\":false,\"warnings\":[],\"problems\":[]}]}");
    free(text);
    json_decref(j);
    st_summary_free(s);
}

/* ---- ALGORITHM.md's vectors as objects, through the real graph processor ---- */

/* Object of 10 bytes; holders (importance, size) = (2,6) (2,7) (1,5) (0,8). Group 2 walked
 * small first: 6 -> 6/2 = 3, already 6; 7 -> 3 + (7-6)/1 = 4, already 7. Group 1: 5 <= 7 -> 0.
 * Group 0: 8 -> (8-7)/1 = 1, already 8. The object keeps 10 - 8 = 2. */
static void test_vector_importance_groups(void **state)
{
    st_object_info_t o = object("memfd:0:1:10", 10);
    add_object(&o);
    hold(1, o, 6, 2, 10);
    hold(2, o, 7, 2, 10);
    hold(3, o, 5, 1, 10);
    hold(4, o, 8, 0, 10);
    st_summary_t *s = summarize_real();
    const st_summary_object_t *so = find_object(s, "memfd:0:1:10");
    assert_non_null(so);
    assert_int_equal(so->size, 10);
    assert_int_equal(find_holder(so, 1)->effective_size, 3);
    assert_int_equal(find_holder(so, 2)->effective_size, 4);
    assert_int_equal(find_holder(so, 3)->effective_size, 0);
    assert_int_equal(find_holder(so, 4)->effective_size, 1);
    assert_int_equal(find_holder(so, 1)->importance, 2);
    assert_int_equal(find_holder(so, 3)->importance, 1);
    assert_int_equal(so->unattributed, 2);
    assert_int_equal(so->owner_pid, 2);
    assert_int_equal(s->attributed, 8);
    assert_int_equal(s->unattributed, 2);
    assert_int_equal(s->shared_resident_unique, 10);
    assert_int_equal(find_proc(s, 2)->shared_owned_bytes, 4);
    assert_false(has_warning(s, "invariant"));
    st_summary_free(s);
}

/* 8 MiB held by A (importance 2) and B (0): A is charged everything. */
static void test_vector_creator_claims(void **state)
{
    st_object_info_t o = object("anon:0:1:27", 8 * MiB);
    add_object(&o);
    hold(100, o, 8 * MiB, 0, 8 * MiB);
    hold(200, o, 8 * MiB, 2, 8 * MiB);
    st_summary_t *s = summarize_real();
    const st_summary_object_t *so = find_object(s, "anon:0:1:27");
    assert_int_equal(find_holder(so, 200)->effective_size, 8 * MiB);
    assert_int_equal(find_holder(so, 100)->effective_size, 0);
    assert_int_equal(so->unattributed, 0);
    assert_int_equal(so->owner_pid, 200);
    assert_int_equal(find_proc(s, 200)->shared_owned_bytes, 8 * MiB);
    assert_int_equal(find_proc(s, 100)->shared_mapped_bytes, 8 * MiB);
    st_summary_free(s);
}

/* 8 MiB at equal importance: 4 MiB each; the tie goes to the lower pid. */
static void test_vector_equal_split(void **state)
{
    st_object_info_t o = object("anon:0:1:27", 8 * MiB);
    add_object(&o);
    hold(200, o, 8 * MiB, 0, 8 * MiB);
    hold(100, o, 8 * MiB, 0, 8 * MiB);
    st_summary_t *s = summarize_real();
    const st_summary_object_t *so = find_object(s, "anon:0:1:27");
    assert_int_equal(find_holder(so, 100)->effective_size, 4 * MiB);
    assert_int_equal(find_holder(so, 200)->effective_size, 4 * MiB);
    assert_int_equal(so->owner_pid, 100);
    assert_int_equal(s->unattributed, 0);
    st_summary_free(s);
}

/* 100 bytes, three holders at equal importance: 34, 33, 33 (largest remainder, lowest pid). */
static void test_vector_three_holders(void **state)
{
    st_object_info_t o = object("memfd:0:1:7", 100);
    add_object(&o);
    hold(103, o, 100, 0, 4096);
    hold(101, o, 100, 0, 4096);
    hold(102, o, 100, 0, 4096);
    st_summary_t *s = summarize_real();
    const st_summary_object_t *so = find_object(s, "memfd:0:1:7");
    assert_int_equal(find_holder(so, 101)->effective_size, 34);
    assert_int_equal(find_holder(so, 102)->effective_size, 33);
    assert_int_equal(find_holder(so, 103)->effective_size, 33);
    assert_int_equal(so->owner_pid, 101);
    assert_int_equal(s->attributed, 100);
    assert_int_equal(s->unattributed, 0);
    assert_int_equal(s->shared_resident_unique, 100);
    st_summary_free(s);
}

/* An object nobody holds: all of it unattributed, no owner, no holders. */
static void test_unattributed_object(void **state)
{
    st_object_info_t held = object("memfd:0:1:1", 1000), stale = object("posix:0:26:11", 512);
    add_object(&held);
    add_object(&stale);
    proc(1);
    hold(1, held, 1000, 2, 1000);
    st_summary_t *s = summarize_real();
    const st_summary_object_t *so = find_object(s, "posix:0:26:11");
    assert_non_null(so);
    assert_int_equal(so->n_holders, 0);
    assert_int_equal(so->owner_pid, 0);
    assert_int_equal(so->unattributed, 512);
    assert_int_equal(s->shared_resident_unique, 1512);
    assert_int_equal(s->attributed, 1000);
    assert_int_equal(s->unattributed, 512);
    assert_false(has_warning(s, "invariant"));
    st_summary_free(s);
}

/* A weak global nobody reports strong disappears with the holders that point at it. */
static void test_weak_global_disappears(void **state)
{
    st_object_info_t o = object("memfd:0:1:8", 100);
    st_node_t *g = NULL;
    assert_int_equal(st_dump_add_object(dump, &o, 0, &g), 0);
    g->weak = true;
    hold(5, o, 100, 0, 4096);
    st_summary_t *s = summarize_real();
    assert_null(find_object(s, "memfd:0:1:8"));
    assert_int_equal(find_proc(s, 5)->shared_mapped_bytes, 0);
    assert_int_equal(s->shared_resident_unique, 0);
    st_summary_free(s);
}

/* A suballocation that owns the holder node takes part of the holder's charge: the bytes are
 * still counted once, but not by a holder, so the summary must say the invariant breaks. */
static void test_chain_breaks_invariant_loudly(void **state)
{
    st_object_info_t o = object("memfd:0:1:6", 100);
    add_object(&o);
    hold(5, o, 100, 2, 100);
    st_process_dump_t *p = proc(5);
    uint64_t holder_guid = st_process_find_node(p, "shared_memory/memfd:0:1:6")->guid;
    st_node_t *sub = NULL;
    assert_int_equal(st_process_add_node(p, "partition/a", 77, false, &sub), 0);
    assert_int_equal(st_node_set_scalar(sub, "size", "bytes", 40), 0);
    assert_int_equal(st_process_add_edge(p, 77, holder_guid, 0), 0);
    st_summary_t *s = summarize_real();
    const st_summary_object_t *so = find_object(s, "memfd:0:1:6");
    assert_int_equal(so->size, 100);
    assert_int_equal(find_holder(so, 5)->effective_size, 60);
    assert_true(has_warning(s, "invariant violated: attributed 60 + unattributed 0"));
    st_summary_free(s);
}

/* The whole-trace JSON the web view embeds: one element per dump, each recomputed. */
static void test_trace_summary_json(void **state)
{
    st_object_info_t o = object("memfd:0:1:7", 100);
    add_object(&o);
    hold(101, o, 100, 0, 4096);
    hold(102, o, 100, 0, 4096);
    st_global_dump_t *second = NULL;
    assert_int_equal(st_trace_add_dump(trace, 0x2b, 6000, &second), 0);
    dump = second;
    add_object(&o);
    hold(101, o, 100, 2, 4096);
    json_t *j = NULL;
    assert_int_equal(st_trace_summary_json(trace, &j), 0);
    json_t *dumps = json_object_get(j, "dumps");
    assert_int_equal(json_array_size(dumps), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(dumps, 0), "id")), "0x2a");
    assert_string_equal(json_string_value(json_object_get(json_array_get(dumps, 1), "id")), "0x2b");
    /* first dump: 50 + 50; second: the only holder claims all 100 */
    json_t *h0 = json_object_get(
        json_array_get(json_object_get(json_array_get(dumps, 0), "objects"), 0), "holders");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(h0, 1), "effective_size")),
                     50);
    json_t *t1 = json_object_get(json_array_get(dumps, 1), "totals");
    assert_int_equal(json_integer_value(json_object_get(t1, "attributed")), 100);
    assert_int_equal(json_integer_value(json_object_get(t1, "unattributed")), 0);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_owner_ties_to_lowest_pid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_owner_when_nobody_charged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invariant_violation_warns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_process_figures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_removed_nodes_are_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_holders_merge_per_pid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_warnings_partial_problems, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vector_importance_groups, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vector_creator_claims, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vector_equal_split, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vector_three_holders, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unattributed_object, setup, teardown),
        cmocka_unit_test_setup_teardown(test_weak_global_disappears, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain_breaks_invariant_loudly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trace_summary_json, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
