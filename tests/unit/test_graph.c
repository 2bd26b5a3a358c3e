/* SPDX-License-Identifier: MIT
 *
 * Unit tests for the ownership graph processor (src/graph.c): every vector of shared/ALGORITHM.md,
 * weak removal, "<unspecified>", bad edges, cycles, suballocation chains with hand-computed values,
 * annotation, and property tests over thousands of random graphs whose expected totals the test
 * derives from the structure it generated, not from the processor. Ends with an informational
 * timing of a 100 processes x 1000 objects dump (printed, never asserted).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "graph.h"
#include "model.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MIB (1024ULL * 1024ULL)
#define NO_SIZE UINT64_MAX

/* ---- helpers ---- */

typedef struct fixture {
    st_trace_t *trace;
    st_global_dump_t *dump;
    st_graph_result_t *result;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(st_trace_new(&f->trace), 0);
    assert_int_equal(st_trace_add_dump(f->trace, 1, 0, &f->dump), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    st_graph_result_free(f->result);
    st_trace_free(f->trace);
    free(f);
    return 0;
}

static st_process_dump_t *proc(fixture *f, int pid)
{
    st_process_dump_t *p = NULL;
    assert_int_equal(st_dump_add_process(f->dump, pid, NULL, &p), 0);
    return p;
}

/* A process node with guid = hash of pid:name and an optional size. */
static uint64_t node(fixture *f, int pid, const char *name, uint64_t size, bool weak)
{
    st_node_t *n = NULL;
    uint64_t guid = st_guid_local(pid, name);
    assert_int_equal(st_process_add_node(proc(f, pid), name, guid, weak, &n), 0);
    if (size != NO_SIZE)
        assert_int_equal(st_node_set_scalar(n, "size", "bytes", size), 0);
    return guid;
}

/* A global node "global/<name>" with guid = hash of name. */
static uint64_t global(fixture *f, const char *name, uint64_t size, bool weak)
{
    char path[128];
    snprintf(path, sizeof(path), "global/%s", name);
    st_node_t *n = NULL;
    uint64_t guid = st_guid_global(name);
    assert_int_equal(st_dump_add_global(f->dump, path, guid, weak, 0, &n, NULL), 0);
    if (size != NO_SIZE)
        assert_int_equal(st_node_set_scalar(n, "size", "bytes", size), 0);
    return guid;
}

static void edge(fixture *f, int pid, uint64_t from, uint64_t to, int importance)
{
    assert_int_equal(st_process_add_edge(proc(f, pid), from, to, importance), 0);
}

static void run(fixture *f)
{
    st_graph_result_free(f->result);
    f->result = NULL;
    assert_int_equal(st_graph_process(f->dump, &f->result), 0);
}

static const st_graph_node_t *get(fixture *f, int pid, const char *path)
{
    const st_graph_node_t *n = st_graph_find(f->result, pid, path);
    if (n == NULL)
        fail_msg("no node %d:%s", pid, path);
    return n;
}

static uint64_t eff(fixture *f, int pid, const char *path)
{
    return get(f, pid, path)->effective_size;
}

static bool has_warning(fixture *f, const char *needle)
{
    for (size_t i = 0; i < f->result->n_warnings; i++)
        if (strstr(f->result->warnings[i], needle) != NULL)
            return true;
    return false;
}

/* Σ effective over top-level nodes (no '/' in the path) of every graph. */
static uint64_t total_effective(const st_graph_result_t *r)
{
    uint64_t t = 0;
    for (size_t i = 0; i < r->n_nodes; i++)
        if (strchr(r->nodes[i].path, '/') == NULL && r->nodes[i].has_size)
            t += r->nodes[i].effective_size;
    return t;
}

/* ---- ALGORITHM.md vectors ---- */

static void test_vector_importance_groups(void **state)
{
    fixture *f = *state;
    uint64_t owned = node(f, 1, "owned", 10, false);
    static const struct {
        const char *name;
        int importance;
        uint64_t size, expect;
    } owners[] = {
        {"owner1", 2, 6, 3}, {"owner2", 2, 7, 4}, {"owner3", 1, 5, 0}, {"owner4", 0, 8, 1}};
    for (size_t i = 0; i < 4; i++)
        edge(f, 1, node(f, 1, owners[i].name, owners[i].size, false), owned, owners[i].importance);
    run(f);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(eff(f, 1, owners[i].name), owners[i].expect);
    assert_int_equal(eff(f, 1, "owned"), 2);
    assert_int_equal(f->result->n_warnings, 0);
}

/* An object of size held by pids[i] with importances[i], through the shmtrack layout helpers. */
static void shared_object(fixture *f, const char *key, uint64_t size, const int *pids,
                          const int *importances, size_t n)
{
    st_object_info_t info = {.key = key, .kind = ST_KIND_ANON, .size = size};
    assert_int_equal(st_dump_add_object(f->dump, &info, pids[0], NULL), 0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(st_process_add_holder(proc(f, pids[i]), &info, size, importances[i], NULL),
                         0);
}

static uint64_t holder_eff(fixture *f, int pid, const char *key)
{
    char path[128];
    snprintf(path, sizeof(path), ST_HOLDER_PREFIX "%s", key);
    return eff(f, pid, path);
}

static uint64_t global_eff(fixture *f, const char *key)
{
    char path[32];
    st_global_name(st_guid_global(key), path, sizeof(path));
    return eff(f, 0, path);
}

static void test_vector_creator_owns(void **state)
{
    fixture *f = *state;
    int pids[] = {100, 200}, imp[] = {2, 0};
    shared_object(f, "anon:0:1:5", 8 * MIB, pids, imp, 2);
    run(f);
    assert_int_equal(holder_eff(f, 100, "anon:0:1:5"), 8 * MIB);
    assert_int_equal(holder_eff(f, 200, "anon:0:1:5"), 0);
    assert_int_equal(global_eff(f, "anon:0:1:5"), 0);
    assert_int_equal(eff(f, 100, "shared_memory"), 8 * MIB);
}

static void test_vector_equal_split(void **state)
{
    fixture *f = *state;
    int pids[] = {100, 200}, imp[] = {0, 0};
    shared_object(f, "anon:0:1:5", 8 * MIB, pids, imp, 2);
    run(f);
    assert_int_equal(holder_eff(f, 100, "anon:0:1:5"), 4 * MIB);
    assert_int_equal(holder_eff(f, 200, "anon:0:1:5"), 4 * MIB);
    assert_int_equal(global_eff(f, "anon:0:1:5"), 0);
}

static void test_vector_three_holders(void **state)
{
    fixture *f = *state;
    int pids[] = {30, 10, 20}, imp[] = {1, 1, 1};
    shared_object(f, "memfd:0:1:9", 100, pids, imp, 3);
    run(f);
    assert_int_equal(holder_eff(f, 10, "memfd:0:1:9"), 34);
    assert_int_equal(holder_eff(f, 20, "memfd:0:1:9"), 33);
    assert_int_equal(holder_eff(f, 30, "memfd:0:1:9"), 33);
    assert_int_equal(global_eff(f, "memfd:0:1:9"), 0);
    /* Chromium would floor 33.33 three times. */
    long double x = get(f, 10, "shared_memory/memfd:0:1:9")->effective_exact;
    assert_true(fabsl(x - 100.0L / 3) < 1e-9L);
}

/* Largest remainder first, the pid only breaks ties: holders of 1, 2 and 10 bytes of a
 * 10-byte object get 1/3, 1/3 + 1/2 and 1/3 + 1/2 + 8 = 0.33, 0.83, 8.83; the two spare bytes go
 * to the .83s, not to the lowest pid. */
static void test_largest_remainder_before_pid(void **state)
{
    fixture *f = *state;
    uint64_t g = global(f, "obj", 10, false);
    static const struct {
        int pid;
        uint64_t size, expect;
    } h[] = {{1, 1, 0}, {2, 2, 1}, {3, 10, 9}};
    for (size_t i = 0; i < 3; i++)
        edge(f, h[i].pid, node(f, h[i].pid, "shared_memory/obj", h[i].size, false), g, 0);
    run(f);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(eff(f, h[i].pid, "shared_memory/obj"), h[i].expect);
    assert_int_equal(eff(f, 0, "global/obj"), 0);
}

/* One process holding two objects whose shares have different remainders: each object still
 * conserves exactly (a global apportionment could move a byte between them). */
static void test_per_object_conservation(void **state)
{
    fixture *f = *state;
    int pids[] = {1, 2, 3}, imp[] = {0, 0, 0};
    shared_object(f, "anon:0:1:1", 10, pids, imp, 3);  /* 3.33 each */
    shared_object(f, "anon:0:1:2", 11, pids, imp, 3);  /* 3.67 each */
    shared_object(f, "anon:0:1:3", 100, pids, imp, 2); /* 50 each */
    run(f);
    assert_int_equal(holder_eff(f, 1, "anon:0:1:1") + holder_eff(f, 2, "anon:0:1:1") +
                         holder_eff(f, 3, "anon:0:1:1") + global_eff(f, "anon:0:1:1"),
                     10);
    assert_int_equal(holder_eff(f, 1, "anon:0:1:2") + holder_eff(f, 2, "anon:0:1:2") +
                         holder_eff(f, 3, "anon:0:1:2") + global_eff(f, "anon:0:1:2"),
                     11);
    assert_int_equal(holder_eff(f, 1, "anon:0:1:1"), 4);
    assert_int_equal(holder_eff(f, 2, "anon:0:1:1"), 3);
    assert_int_equal(holder_eff(f, 1, "anon:0:1:2"), 4);
    assert_int_equal(holder_eff(f, 2, "anon:0:1:2"), 4);
    assert_int_equal(holder_eff(f, 3, "anon:0:1:2"), 3);
    assert_int_equal(holder_eff(f, 1, "anon:0:1:3"), 50);
    assert_int_equal(eff(f, 1, "shared_memory"), 4 + 4 + 50);
    assert_int_equal(total_effective(f->result), 121);
}

/* ---- weak removal ---- */

static void test_weak_global_removed(void **state)
{
    fixture *f = *state;
    uint64_t g = global(f, "weak", 100, true);
    uint64_t h1 = node(f, 1, "shared_memory/weak", 100, false);
    uint64_t h2 = node(f, 2, "shared_memory/weak", 100, false);
    node(f, 2, "heap", 7, false);
    edge(f, 1, h1, g, 0);
    edge(f, 2, h2, g, 0);
    run(f);
    /* The weak node, every edge to it, and (Chromium's rule) the owners of a weak node go. */
    assert_null(st_graph_find(f->result, 0, "global/weak"));
    assert_null(st_graph_find(f->result, 1, "shared_memory/weak"));
    assert_null(st_graph_find(f->result, 2, "shared_memory/weak"));
    /* Implicit parents are judged before owners are: "shared_memory" had a strong child then,
     * so it stays, empty and without a size (as in Perfetto and catapult). "global" goes. */
    assert_false(get(f, 2, "shared_memory")->has_size);
    assert_null(st_graph_find(f->result, 2, "shared_memory/weak"));
    assert_null(st_graph_find(f->result, 0, "global"));
    for (size_t i = 0; i < f->result->n_nodes; i++)
        assert_int_not_equal(f->result->nodes[i].owns, g);
    assert_int_equal(eff(f, 2, "heap"), 7);
    assert_int_equal(f->result->n_warnings, 0);
}

/* Two reporters of one global: weak only if both say weak. The model keeps a global once, so
 * the second report is appended as the JSON reader sees it (same guid twice). */
static void two_reporters(fixture *f, bool weak1, bool weak2)
{
    uint64_t g = global(f, "obj", 64, weak1);
    st_node_t *n = NULL;
    assert_int_equal(st_dump_add_global(f->dump, "global/obj", g + 1, weak2, 2, &n, NULL), 0);
    n->guid = g;
    uint64_t h = node(f, 1, "shared_memory/obj", 64, false);
    edge(f, 1, h, g, 0);
    run(f);
}

static void test_weak_needs_every_reporter(void **state)
{
    fixture *f = *state;
    two_reporters(f, true, false);
    assert_non_null(st_graph_find(f->result, 0, "global/obj"));
    assert_int_equal(eff(f, 1, "shared_memory/obj"), 64);
    assert_int_equal(eff(f, 0, "global/obj"), 0);
}

static void test_weak_all_reporters(void **state)
{
    fixture *f = *state;
    two_reporters(f, true, true);
    assert_null(st_graph_find(f->result, 0, "global/obj"));
    assert_null(st_graph_find(f->result, 1, "shared_memory/obj"));
}

static void test_weak_implicit_parent(void **state)
{
    fixture *f = *state;
    node(f, 1, "a/x", 1, true);
    node(f, 1, "a/y", 2, true);
    node(f, 1, "b/x", 4, true);
    node(f, 1, "b/y", 8, false);
    node(f, 1, "c", 16, true);
    node(f, 1, "c/z", 32, false); /* child of a weak node */
    run(f);
    assert_null(st_graph_find(f->result, 1, "a"));
    assert_null(st_graph_find(f->result, 1, "a/x"));
    assert_null(st_graph_find(f->result, 1, "c"));
    assert_null(st_graph_find(f->result, 1, "c/z"));
    assert_null(st_graph_find(f->result, 1, "b/x"));
    assert_false(get(f, 1, "b")->is_explicit);
    assert_int_equal(eff(f, 1, "b"), 8);
    assert_int_equal(total_effective(f->result), 8);
}

/* ---- sizes ---- */

static void test_unspecified(void **state)
{
    fixture *f = *state;
    node(f, 1, "malloc", 100, false);
    node(f, 1, "malloc/a", 30, false);
    node(f, 1, "malloc/b/c", 20, false);
    node(f, 1, "tiny", 5, false);
    node(f, 1, "tiny/a", 5, false); /* exact: no <unspecified> */
    run(f);
    const st_graph_node_t *u = get(f, 1, "malloc/<unspecified>");
    assert_false(u->is_explicit);
    assert_int_equal(u->size, 50);
    assert_int_equal(u->effective_size, 50);
    assert_int_equal(eff(f, 1, "malloc"), 100);
    assert_int_equal(get(f, 1, "malloc/b")->size, 20);
    assert_null(st_graph_find(f->result, 1, "tiny/<unspecified>"));
    assert_int_equal(total_effective(f->result), 105);
    assert_int_equal(f->result->n_warnings, 0);
}

static void test_size_warnings(void **state)
{
    fixture *f = *state;
    node(f, 1, "small", 10, false);
    node(f, 1, "small/a", 15, false);
    node(f, 1, "small/b", 5, false);
    uint64_t g = global(f, "g", 50, false);
    uint64_t h = node(f, 2, "shared_memory/g", 80, false);
    edge(f, 2, h, g, 0);
    run(f);
    assert_int_equal(get(f, 1, "small")->size, 20);
    assert_true(has_warning(f, "'small' of pid 1 reports size 10 but its children sum to 20"));
    assert_int_equal(get(f, 0, "global/g")->size, 80);
    assert_true(has_warning(f, "'global/g' (global) reports size 50 but its owner "
                               "'shared_memory/g' of pid 2 has size 80"));
    assert_int_equal(eff(f, 2, "shared_memory/g"), 80);
    assert_int_equal(eff(f, 0, "global/g"), 0);
}

static void test_size_from_global(void **state)
{
    fixture *f = *state;
    uint64_t g = global(f, "obj", 4096, false);
    uint64_t h1 = node(f, 1, "shared_memory/obj", NO_SIZE, false);
    uint64_t h2 = node(f, 2, "shared_memory/obj", 1024, false);
    edge(f, 1, h1, g, 0);
    edge(f, 2, h2, g, 0);
    run(f);
    assert_true(get(f, 1, "shared_memory/obj")->has_size);
    assert_int_equal(get(f, 1, "shared_memory/obj")->size, 4096);
    /* Layers: 1024 split in two (512 each), then 3072 to the larger holder alone. */
    assert_int_equal(eff(f, 2, "shared_memory/obj"), 512);
    assert_int_equal(eff(f, 1, "shared_memory/obj"), 3584);
    assert_int_equal(eff(f, 0, "global/obj"), 0);
}

static void test_sizeless_leaf(void **state)
{
    fixture *f = *state;
    node(f, 1, "counters", NO_SIZE, false);
    node(f, 1, "heap", 10, false);
    run(f);
    assert_false(get(f, 1, "counters")->has_size);
    assert_int_equal(eff(f, 1, "heap"), 10);
}

/* ---- edges ---- */

static void test_missing_edge_ends(void **state)
{
    fixture *f = *state;
    uint64_t h = node(f, 1, "shared_memory/x", 10, false);
    uint64_t g = global(f, "y", 20, false);
    edge(f, 1, h, 0x1234abcdULL, 0);
    edge(f, 2, 0x5678ULL, g, 0);
    run(f);
    assert_true(has_warning(f, "ownership edge 'shared_memory/x' of pid 1 -> 000000001234abcd "
                               "reported by pid 1 dropped: no node has the target guid"));
    assert_true(has_warning(f, "0000000000005678 -> 'global/y' (global) reported by pid 2 "
                               "dropped: no node has the source guid"));
    assert_int_equal(get(f, 1, "shared_memory/x")->owns, 0);
    assert_int_equal(eff(f, 1, "shared_memory/x"), 10);
    assert_int_equal(eff(f, 0, "global/y"), 20);
}

static void test_second_edge(void **state)
{
    fixture *f = *state;
    uint64_t h = node(f, 1, "shared_memory/x", 10, false);
    uint64_t g1 = global(f, "one", 10, false);
    uint64_t g2 = global(f, "two", 10, false);
    edge(f, 1, h, g1, 0);
    edge(f, 1, h, g1, 0); /* the same edge again: not a problem */
    edge(f, 1, h, g2, 3);
    run(f);
    assert_int_equal(f->result->n_warnings, 1);
    assert_true(has_warning(f, "second ownership edge of 'shared_memory/x' of pid 1 (to "
                               "'global/two' (global), importance 3) ignored"));
    assert_int_equal(get(f, 1, "shared_memory/x")->owns, g1);
    assert_int_equal(eff(f, 0, "global/one"), 0);
    assert_int_equal(eff(f, 0, "global/two"), 10);
    assert_int_equal(eff(f, 1, "shared_memory/x"), 10);
}

static void test_cycles(void **state)
{
    fixture *f = *state;
    uint64_t a = node(f, 1, "a", 10, false);
    uint64_t b = node(f, 2, "b", 10, false);
    uint64_t c = node(f, 3, "c", 10, false);
    uint64_t self = node(f, 1, "self", 3, false);
    uint64_t p = node(f, 4, "p", 8, false);
    uint64_t pc = node(f, 4, "p/c", 8, false);
    edge(f, 1, a, b, 0);
    edge(f, 2, b, c, 0);
    edge(f, 3, c, a, 0); /* closes a -> b -> c -> a */
    edge(f, 1, self, self, 0);
    edge(f, 4, p, pc, 0); /* owning its own child: a cycle through the tree */
    run(f);
    assert_true(has_warning(f, "the edge from 'c' of pid 3 to 'a' of pid 1 that closes it"));
    assert_true(has_warning(f, "ownership edge from 'self' of pid 1 to itself dropped"));
    assert_true(has_warning(f, "the edge from 'p' of pid 4 to 'p/c' of pid 4 that closes it"));
    assert_int_equal(get(f, 3, "c")->owns, 0);
    /* What is left is the chain a -> b -> c of equal sizes: a gets everything. */
    assert_int_equal(eff(f, 1, "a"), 10);
    assert_int_equal(eff(f, 2, "b"), 0);
    assert_int_equal(eff(f, 3, "c"), 0);
    assert_int_equal(eff(f, 4, "p"), 8);
    assert_int_equal(total_effective(f->result), 10 + 3 + 8);
}

/* A path 3000 levels deep whose leaf owns the top of its own path (owning an ancestor is
 * allowed, owning a descendant is a cycle): nothing recursive may overflow, and the usual
 * invariants hold. */
static void test_deep_path(void **state)
{
    fixture *f = *state;
    enum { DEPTH = 3000 };
    char *path = malloc(2 * DEPTH + 8);
    assert_non_null(path);
    char *p = path;
    for (int i = 0; i < DEPTH; i++) {
        *p++ = 'a';
        *p++ = '/';
    }
    memcpy(p, "leaf", 5);
    uint64_t leaf = node(f, 1, path, 100, false);
    uint64_t top = node(f, 1, "a", NO_SIZE, false);
    node(f, 1, "a/side", 7, false);
    edge(f, 1, leaf, top, 0);
    run(f);
    assert_int_equal(f->result->n_warnings, 0);
    /* Hand-computed with ALGORITHM.md: the leaf is not counted in "a" (it owns "a"), so a's
     * size is its largest owner's, 100, with <unspecified> = 100 - 7 = 93. a.not_owned = 100
     * (the chain) + 7 + 93 = 200, of which its owner claims 100: owned_coef 1/2, and that half
     * applies to everything below "a", the owner included: leaf 50, side 3.5, <unspecified>
     * 46.5. The half byte goes to the lower path ("<" sorts before "s"). */
    assert_int_equal(get(f, 1, "a")->size, 100);
    assert_int_equal(get(f, 1, "a/<unspecified>")->size, 93);
    assert_int_equal(get(f, 1, path)->effective_size, 50);
    assert_int_equal(eff(f, 1, "a/side"), 3);
    assert_int_equal(eff(f, 1, "a/<unspecified>"), 47);
    assert_int_equal(eff(f, 1, "a"), 100);
    assert_int_equal(total_effective(f->result), 100);
    free(path);
}

/* ---- suballocation chains (hand-computed) ---- */

static void test_chain_simple(void **state)
{
    fixture *f = *state;
    /* C (10) is owned by B (6), which is owned by A (4): C keeps 10-6, B keeps 6-4, A gets 4. */
    uint64_t a = node(f, 1, "a", 4, false);
    uint64_t b = node(f, 2, "b", 6, false);
    uint64_t c = node(f, 3, "c", 10, false);
    edge(f, 1, a, b, 0);
    edge(f, 2, b, c, 0);
    run(f);
    assert_int_equal(eff(f, 1, "a"), 4);
    assert_int_equal(eff(f, 2, "b"), 2);
    assert_int_equal(eff(f, 3, "c"), 4);
}

static void test_chain_outranked(void **state)
{
    fixture *f = *state;
    /* D (8, importance 2) outranks B (6, importance 1) on C (10): D 8, C 2, B and its owner A 0. */
    uint64_t a = node(f, 1, "a", 4, false);
    uint64_t b = node(f, 2, "b", 6, false);
    uint64_t c = node(f, 3, "c", 10, false);
    uint64_t d = node(f, 4, "d", 8, false);
    edge(f, 1, a, b, 0);
    edge(f, 2, b, c, 1);
    edge(f, 4, d, c, 2);
    run(f);
    assert_int_equal(eff(f, 1, "a"), 0);
    assert_int_equal(eff(f, 2, "b"), 0);
    assert_int_equal(eff(f, 3, "c"), 2);
    assert_int_equal(eff(f, 4, "d"), 8);
}

static void test_chain_fractions(void **state)
{
    fixture *f = *state;
    /* C (10) split equally by B (6) and D (6): 3 each, C keeps 4. B's 3 are split between B
     * (keeps (6-3)/6 of them: 1.5) and its owner A (3 x 1/2 = 1.5). The B+A split is 3 exact
     * bytes; the half byte goes to the lowest pid (A, pid 1). */
    uint64_t a = node(f, 1, "a", 3, false);
    uint64_t b = node(f, 2, "b", 6, false);
    uint64_t c = node(f, 3, "c", 10, false);
    uint64_t d = node(f, 4, "d", 6, false);
    edge(f, 1, a, b, 0);
    edge(f, 2, b, c, 0);
    edge(f, 4, d, c, 0);
    run(f);
    assert_true(fabsl(get(f, 1, "a")->effective_exact - 1.5L) < 1e-12L);
    assert_true(fabsl(get(f, 2, "b")->effective_exact - 1.5L) < 1e-12L);
    assert_int_equal(eff(f, 1, "a"), 2);
    assert_int_equal(eff(f, 2, "b"), 1);
    assert_int_equal(eff(f, 3, "c"), 4);
    assert_int_equal(eff(f, 4, "d"), 3);
}

static void test_inner_owner(void **state)
{
    fixture *f = *state;
    /* An owning inner node: "gpu" (children 3 + 7) owns a global of 10 together with another
     * process's leaf of 10 at equal importance: 5 bytes to "gpu", split 1.5 / 3.5 among its
     * leaves: equal remainders, so the extra byte goes to the lower path, "gpu/a". */
    uint64_t g = global(f, "tex", 10, false);
    uint64_t gpu = node(f, 1, "gpu", NO_SIZE, false);
    node(f, 1, "gpu/a", 3, false);
    node(f, 1, "gpu/b", 7, false);
    uint64_t o = node(f, 2, "tex", 10, false);
    edge(f, 1, gpu, g, 0);
    edge(f, 2, o, g, 0);
    run(f);
    assert_int_equal(eff(f, 1, "gpu"), 5);
    assert_int_equal(eff(f, 1, "gpu/a"), 2);
    assert_int_equal(eff(f, 1, "gpu/b"), 3);
    assert_int_equal(eff(f, 2, "tex"), 5);
    assert_int_equal(eff(f, 0, "global/tex"), 0);
}

/* ---- annotation ---- */

/* ---- pass 4: numerics ---- */

static const st_graph_entry_t *entry(fixture *f, int pid, const char *path, const char *name)
{
    const st_graph_node_t *n = get(f, pid, path);
    for (size_t i = 0; i < n->n_entries; i++)
        if (strcmp(n->entries[i].name, name) == 0)
            return &n->entries[i];
    return NULL;
}

static st_node_t *model_node(fixture *f, int pid, const char *name)
{
    st_node_t *n = st_process_find_node(proc(f, pid), name);
    assert_non_null(n);
    return n;
}

static void set(fixture *f, int pid, const char *name, const char *entry_name, const char *units,
                uint64_t value)
{
    assert_int_equal(st_node_set_scalar(model_node(f, pid, name), entry_name, units, value), 0);
}

static void test_aggregate_numerics(void **state)
{
    fixture *f = *state;
    node(f, 1, "malloc/a", 10, false);
    node(f, 1, "malloc/b", 20, false);
    set(f, 1, "malloc/a", "virtual_size", "bytes", 100);
    set(f, 1, "malloc/a", "objects", "objects", 3);
    set(f, 1, "malloc/a", "effective_size", "bytes", 999); /* never aggregated */
    assert_int_equal(st_node_set_string(model_node(f, 1, "malloc/a"), "kind", "arena"), 0);
    set(f, 1, "malloc/b", "virtual_size", "bytes", 50);
    set(f, 1, "malloc/b", "objects", "objects", 4);
    /* an explicit parent that has virtual_size keeps it; one with a string "objects" gets none */
    node(f, 1, "gpu", NO_SIZE, false);
    node(f, 1, "gpu/x", 1, false);
    node(f, 1, "gpu/y", 2, false);
    set(f, 1, "gpu", "virtual_size", "bytes", 7);
    assert_int_equal(st_node_set_string(model_node(f, 1, "gpu"), "objects", "n/a"), 0);
    set(f, 1, "gpu/x", "virtual_size", "bytes", 20);
    set(f, 1, "gpu/y", "virtual_size", "bytes", 30);
    set(f, 1, "gpu/y", "objects", "objects", 5);
    set(f, 1, "gpu/y", "swapped_size", "bytes", 8);
    /* sums climb more than one level: v8 <- heap <- {a, b} */
    node(f, 1, "v8/heap/a", 1, false);
    node(f, 1, "v8/heap/b", 1, false);
    set(f, 1, "v8/heap/a", "virtual_size", "bytes", 5);
    set(f, 1, "v8/heap/b", "virtual_size", "bytes", 6);
    run(f);

    const st_graph_entry_t *e = entry(f, 1, "malloc", "virtual_size");
    assert_non_null(e);
    assert_int_equal(e->value, 150); /* 100 + 50 */
    assert_int_equal(e->origin, ST_GRAPH_ENTRY_AGGREGATED);
    assert_string_equal(e->units, "bytes");
    e = entry(f, 1, "malloc", "objects");
    assert_non_null(e);
    assert_int_equal(e->value, 7); /* 3 + 4 */
    assert_string_equal(e->units, "objects");
    assert_int_equal(get(f, 1, "malloc")->n_entries, 2); /* no size, effective_size, kind */
    assert_null(entry(f, 1, "malloc", "kind"));
    assert_int_equal(get(f, 1, "malloc")->size, 30); /* pass 5 still sums sizes */
    e = entry(f, 1, "malloc/a", "virtual_size");
    assert_non_null(e);
    assert_int_equal(e->value, 100);
    assert_int_equal(e->origin, ST_GRAPH_ENTRY_OWN);
    assert_int_equal(get(f, 1, "malloc/a")->n_entries, 2); /* virtual_size, objects */

    e = entry(f, 1, "gpu", "virtual_size");
    assert_non_null(e);
    assert_int_equal(e->value, 7); /* own, not 20 + 30 */
    assert_int_equal(e->origin, ST_GRAPH_ENTRY_OWN);
    assert_null(entry(f, 1, "gpu", "objects")); /* a string of that name blocks the sum */
    e = entry(f, 1, "gpu", "swapped_size");
    assert_non_null(e);
    assert_int_equal(e->value, 8); /* only gpu/y has it */
    assert_int_equal(e->origin, ST_GRAPH_ENTRY_AGGREGATED);

    assert_int_equal(entry(f, 1, "v8/heap", "virtual_size")->value, 11);
    assert_int_equal(entry(f, 1, "v8", "virtual_size")->value, 11);
    assert_int_equal(get(f, 1, "v8")->n_entries, 1);
}

static void test_propagate_numerics(void **state)
{
    fixture *f = *state;
    uint64_t g = global(f, "obj", 4096, false);
    st_node_t *gn = st_dump_find_global(f->dump, g);
    assert_non_null(gn);
    assert_int_equal(st_node_set_scalar(gn, "virtual_size", "bytes", 8192), 0);
    assert_int_equal(st_node_set_scalar(gn, "swapped_size", "bytes", 512), 0);
    assert_int_equal(st_node_set_scalar(gn, "handles", "objects", 2), 0);
    assert_int_equal(st_node_set_string(gn, "name", "region"), 0);
    uint64_t h1 = node(f, 1, "shared_memory/obj", NO_SIZE, false);
    uint64_t h2 = node(f, 2, "shared_memory/obj", 1024, false);
    set(f, 1, "shared_memory/obj", "virtual_size", "bytes", 1000);
    set(f, 2, "shared_memory/obj", "swapped_size", "bytes", 7);
    edge(f, 1, h1, g, 0);
    edge(f, 2, h2, g, 0);
    run(f);

    /* holder 1 lacks swapped_size and handles: the global's; keeps its own virtual_size */
    const st_graph_entry_t *e = entry(f, 1, "shared_memory/obj", "swapped_size");
    assert_non_null(e);
    assert_int_equal(e->value, 512);
    assert_int_equal(e->origin, ST_GRAPH_ENTRY_PROPAGATED);
    assert_string_equal(e->units, "bytes");
    e = entry(f, 1, "shared_memory/obj", "handles");
    assert_non_null(e);
    assert_int_equal(e->value, 2);
    assert_string_equal(e->units, "objects");
    e = entry(f, 1, "shared_memory/obj", "virtual_size");
    assert_int_equal(e->value, 1000);
    assert_int_equal(e->origin, ST_GRAPH_ENTRY_OWN);
    assert_null(entry(f, 1, "shared_memory/obj", "name")); /* scalars only */
    assert_null(entry(f, 1, "shared_memory/obj", "size")); /* size is the size field */
    assert_int_equal(get(f, 1, "shared_memory/obj")->n_entries, 3);
    assert_int_equal(get(f, 1, "shared_memory/obj")->size, 4096);
    /* holder 2 keeps its swapped_size and gets virtual_size */
    assert_int_equal(entry(f, 2, "shared_memory/obj", "swapped_size")->value, 7);
    e = entry(f, 2, "shared_memory/obj", "virtual_size");
    assert_int_equal(e->value, 8192);
    assert_int_equal(e->origin, ST_GRAPH_ENTRY_PROPAGATED);
    /* aggregation comes first: the parent sums what its children reported themselves */
    assert_int_equal(entry(f, 1, "shared_memory", "virtual_size")->value, 1000);
    assert_null(entry(f, 1, "shared_memory", "swapped_size"));
    assert_int_equal(entry(f, 0, "global/obj", "swapped_size")->origin, ST_GRAPH_ENTRY_OWN);

    /* annotate writes effective_size only: the model keeps what was reported */
    assert_int_equal(st_graph_annotate(f->dump, f->result), 0);
    uint64_t v = 0;
    assert_false(st_node_scalar(model_node(f, 1, "shared_memory/obj"), "swapped_size", &v));
    assert_false(st_node_scalar(model_node(f, 2, "shared_memory/obj"), "virtual_size", &v));
}

static void test_annotate(void **state)
{
    fixture *f = *state;
    int pids[] = {10, 20}, imp[] = {2, 0};
    shared_object(f, "anon:0:1:7", 1000, pids, imp, 2);
    uint64_t h = node(f, 10, "orphan", 5, false);
    edge(f, 10, h, 999, 0);
    uint64_t w = node(f, 10, "gone", 5, true);
    st_node_t *gone = st_process_find_guid(proc(f, 10), w);
    assert_int_equal(st_node_set_scalar(gone, "effective_size", "bytes", 77), 0);
    run(f);
    assert_int_equal(st_graph_annotate(f->dump, f->result), 0);
    assert_int_equal(st_graph_annotate(f->dump, f->result), 0); /* warnings only once */
    uint64_t v = 0;
    st_node_t *n = st_process_find_node(proc(f, 10), "shared_memory/anon:0:1:7");
    assert_true(st_node_scalar(n, "effective_size", &v));
    assert_int_equal(v, 1000);
    n = st_process_find_node(proc(f, 20), "shared_memory/anon:0:1:7");
    assert_true(st_node_scalar(n, "effective_size", &v));
    assert_int_equal(v, 0);
    assert_true(st_node_scalar(&f->dump->globals[0], "effective_size", &v));
    assert_int_equal(v, 0);
    assert_false(
        st_node_scalar(gone, "effective_size", &v)); /* removed as weak: stale entry gone */
    assert_int_equal(f->dump->n_warnings, 1);
    assert_non_null(strstr(f->dump->warnings[0], "'orphan' of pid 10"));
}

static void test_annotate_trace(void **state)
{
    fixture *f = *state;
    int pids[] = {1, 2, 3}, imp[] = {0, 0, 0};
    shared_object(f, "anon:0:1:8", 100, pids, imp, 3);
    st_global_dump_t *d2 = NULL;
    assert_int_equal(st_trace_add_dump(f->trace, 2, 10, &d2), 0);
    f->dump = d2;
    shared_object(f, "anon:0:1:8", 50, pids, imp, 2);
    assert_int_equal(st_graph_annotate_trace(f->trace), 0);
    uint64_t v = 0;
    st_node_t *n = st_process_find_node(st_dump_find_process(&f->trace->dumps[0], 1),
                                        "shared_memory/anon:0:1:8");
    assert_true(st_node_scalar(n, "effective_size", &v));
    assert_int_equal(v, 34);
    n = st_process_find_node(st_dump_find_process(&f->trace->dumps[1], 2),
                             "shared_memory/anon:0:1:8");
    assert_true(st_node_scalar(n, "effective_size", &v));
    assert_int_equal(v, 25);
}

/* ---- property tests ---- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static uint64_t rnd_below(uint64_t n)
{
    return n ? rnd() % n : 0;
}

/* A size: often tiny (remainders matter), sometimes large. */
static uint64_t rnd_size(void)
{
    switch (rnd_below(4)) {
    case 0:
        return rnd_below(12);
    case 1:
        return rnd_below(1000);
    case 2:
        return rnd_below(1ULL << 30);
    default:
        return 4096 * rnd_below(1 << 16);
    }
}

static bool near_integer_part(long double exact, uint64_t got)
{
    /* got must be floor or ceil of exact (allowing float noise around whole numbers) */
    long double lo = floorl(exact + 1e-6L), hi = ceill(exact - 1e-6L);
    if (lo > hi) { /* exact is (nearly) a whole number */
        long double r = roundl(exact);
        return (long double)got == r;
    }
    return (long double)got == lo || (long double)got == hi;
}

/* The shmtrack family: each process has a private tree of non-owning nodes whose inner sizes
 * are at least their children's sum, plus holders "shared_memory/<key>" owning the global node
 * of an object with a random importance and a size <= the object's size (or no size: it then
 * inherits the global's). The exact rule the test checks: every object's bytes are counted
 * once, by its global node and its holders together, and nothing else moves, so
 *   Σ effective over all top-level nodes = Σ object sizes + Σ sizes of the private trees
 * (= Σ process roots' sizes - Σ of the owning "shared_memory" subtrees + Σ global sizes),
 * and per object: Σ holders' effective + the global's effective == the object's size. */
static void shmtrack_family_one(uint64_t seed)
{
    rng_state = seed;
    st_trace_t *t = NULL;
    st_global_dump_t *d = NULL;
    assert_int_equal(st_trace_new(&t), 0);
    assert_int_equal(st_trace_add_dump(t, 1, 0, &d), 0);
    size_t nobj = 1 + rnd_below(12), nproc = 1 + rnd_below(7);
    uint64_t objsize[16];
    char keys[16][32];
    uint64_t truth = 0;
    /* per object: holders (pid, size, importance) for the independent share check */
    struct {
        int pid;
        uint64_t s;
        int imp;
    } holders[16][8];
    size_t nh[16] = {0};
    for (size_t k = 0; k < nobj; k++) {
        snprintf(keys[k], sizeof(keys[k]), "anon:0:1:%zu", k + 1);
        objsize[k] = rnd_size();
        st_object_info_t info = {.key = keys[k], .kind = ST_KIND_ANON, .size = objsize[k]};
        assert_int_equal(st_dump_add_object(d, &info, 0, NULL), 0);
        truth += objsize[k];
    }
    for (size_t p = 0; p < nproc; p++) {
        int pid = (int)(100 + rnd_below(900)) * 8 + (int)p; /* distinct, random order */
        st_process_dump_t *pr = NULL;
        assert_int_equal(st_dump_add_process(d, pid, NULL, &pr), 0);
        /* private tree: a few roots with leaves; inner sizes >= Σ children, or none */
        size_t nroots = rnd_below(3);
        for (size_t r = 0; r < nroots; r++) {
            char name[64];
            uint64_t sum = 0;
            size_t nleaves = rnd_below(4);
            for (size_t l = 0; l < nleaves; l++) {
                snprintf(name, sizeof(name), "heap%zu/part%zu", r, l);
                st_node_t *n = NULL;
                assert_int_equal(st_process_add_node(pr, name, st_guid_local(pid, name), false, &n),
                                 0);
                uint64_t s = rnd_size();
                assert_int_equal(st_node_set_scalar(n, "size", "bytes", s), 0);
                sum += s;
            }
            snprintf(name, sizeof(name), "heap%zu", r);
            if (nleaves == 0 || rnd_below(2)) {
                st_node_t *n = NULL;
                assert_int_equal(st_process_add_node(pr, name, st_guid_local(pid, name), false, &n),
                                 0);
                uint64_t s = sum + (rnd_below(2) ? rnd_size() : 0);
                assert_int_equal(st_node_set_scalar(n, "size", "bytes", s), 0);
                sum = s;
            }
            truth += sum;
        }
        for (size_t k = 0; k < nobj; k++) {
            if (rnd_below(3) == 0 || nh[k] == 8)
                continue;
            int imp = (int)rnd_below(3);
            uint64_t s = rnd_below(4) == 0 ? objsize[k] : rnd_below(objsize[k] + 1);
            st_object_info_t info = {.key = keys[k], .kind = ST_KIND_ANON, .size = s};
            st_node_t *h = NULL;
            assert_int_equal(st_process_add_holder(pr, &info, s, imp, &h), 0);
            if (rnd_below(5) == 0) { /* no size: inherits the global's */
                uint64_t had = 0;
                assert_true(st_node_scalar(h, "size", &had));
                st_node_remove(h, "size");
                /* "xize": a scalar, but not a size */
                assert_int_equal(st_node_set_scalar(h, "xize", "bytes", had), 0);
                s = objsize[k];
            }
            holders[k][nh[k]].pid = pid;
            holders[k][nh[k]].s = s;
            holders[k][nh[k]].imp = imp;
            nh[k]++;
        }
    }
    st_graph_result_t *r = NULL;
    assert_int_equal(st_graph_process(d, &r), 0);
    if (r->n_warnings != 0)
        fail_msg("seed %" PRIu64 ": unexpected warning %s", seed, r->warnings[0]);
    for (size_t i = 0; i < r->n_nodes; i++) {
        const st_graph_node_t *n = &r->nodes[i];
        bool leaf = i + 1 == r->n_nodes || r->nodes[i + 1].pid != n->pid ||
                    strncmp(r->nodes[i + 1].path, n->path, strlen(n->path)) != 0 ||
                    r->nodes[i + 1].path[strlen(n->path)] != '/';
        if (leaf && n->effective_size > n->size)
            fail_msg("seed %" PRIu64 ": %d:%s effective %" PRIu64 " > size %" PRIu64, seed, n->pid,
                     n->path, n->effective_size, n->size);
        if (leaf && !near_integer_part(n->effective_exact, n->effective_size))
            fail_msg("seed %" PRIu64 ": %d:%s effective %" PRIu64 " is not a rounding of %Lf", seed,
                     n->pid, n->path, n->effective_size, n->effective_exact);
    }
    for (size_t k = 0; k < nobj; k++) {
        char gpath[32], hpath[64];
        st_global_name(st_guid_global(keys[k]), gpath, sizeof(gpath));
        const st_graph_node_t *g = st_graph_find(r, 0, gpath);
        assert_non_null(g);
        uint64_t sum = g->effective_size;
        snprintf(hpath, sizeof(hpath), ST_HOLDER_PREFIX "%s", keys[k]);
        /* independent exact shares: importance groups, layered equal splits */
        long double share[8] = {0};
        size_t idx[8];
        for (size_t j = 0; j < nh[k]; j++)
            idx[j] = j;
        for (size_t a = 0; a < nh[k]; a++) /* sort: importance desc, size asc */
            for (size_t b = a + 1; b < nh[k]; b++) {
                size_t x = idx[a], y = idx[b];
                if (holders[k][y].imp > holders[k][x].imp ||
                    (holders[k][y].imp == holders[k][x].imp && holders[k][y].s < holders[k][x].s)) {
                    idx[a] = y;
                    idx[b] = x;
                }
            }
        uint64_t already = 0;
        for (size_t a = 0; a < nh[k];) {
            size_t end = a;
            while (end < nh[k] && holders[k][idx[end]].imp == holders[k][idx[a]].imp)
                end++;
            long double acc = 0;
            for (; a < end; a++) {
                uint64_t s = holders[k][idx[a]].s;
                if (s > already) {
                    acc += (long double)(s - already) / (long double)(end - a);
                    already = s;
                }
                share[idx[a]] = acc;
            }
        }
        for (size_t j = 0; j < nh[k]; j++) {
            const st_graph_node_t *h = st_graph_find(r, holders[k][j].pid, hpath);
            assert_non_null(h);
            sum += h->effective_size;
            if (fabsl(h->effective_exact - share[j]) > 1e-6L * (1 + share[j]))
                fail_msg("seed %" PRIu64 ": holder %d of %s: exact %Lf, expected %Lf", seed,
                         holders[k][j].pid, keys[k], h->effective_exact, share[j]);
        }
        if (fabsl(g->effective_exact - (long double)(objsize[k] - already)) > 1e-6L)
            fail_msg("seed %" PRIu64 ": %s keeps %Lf, expected %" PRIu64, seed, keys[k],
                     g->effective_exact, objsize[k] - already);
        if (sum != objsize[k])
            fail_msg("seed %" PRIu64 ": object %s: holders + global = %" PRIu64 " != size %" PRIu64,
                     seed, keys[k], sum, objsize[k]);
    }
    uint64_t total = total_effective(r);
    if (total != truth)
        fail_msg("seed %" PRIu64 ": total effective %" PRIu64 " != truth %" PRIu64, seed, total,
                 truth);
    st_graph_result_free(r);
    st_trace_free(t);
}

static void test_property_shmtrack(void **state)
{
    (void)state;
    for (uint64_t i = 0; i < 4000; i++)
        shmtrack_family_one(0x5eed0000ULL + i);
}

/* The general family: random trees in several processes, random ownership edges between any
 * two nodes (leaves or inner nodes, chains, cycles that must be broken), random importances and
 * sizes that need not be consistent (the size pass fixes them, with warnings). Checks: no crash,
 * every leaf's effective size is the floor or ceiling of its exact value (so 0 <= effective <=
 * size), and Σ effective == Σ exact leaf values rounded.
 *
 * When the generator only draws leaf -> leaf edges going from a later node to an earlier one
 * (no cycles) between flat top-level nodes, and makes every owned node at least as large as its
 * owners, there is an exact rule too: every chain hands its root's bytes down and nothing
 * else, so Σ effective == Σ sizes of the nodes that own nothing. */
static void general_family_one(uint64_t seed, bool chains_only)
{
    rng_state = seed;
    st_trace_t *t = NULL;
    st_global_dump_t *d = NULL;
    assert_int_equal(st_trace_new(&t), 0);
    assert_int_equal(st_trace_add_dump(t, 1, 0, &d), 0);
    enum { MAXN = 40 };
    struct {
        int pid;
        uint64_t guid, size;
        bool owns;
    } nodes[MAXN];
    size_t n = 0;
    size_t nproc = 1 + rnd_below(4);
    for (size_t p = 0; p < nproc; p++) {
        int pid = (int)p + 1;
        st_process_dump_t *pr = NULL;
        assert_int_equal(st_dump_add_process(d, pid, NULL, &pr), 0);
        size_t count = 1 + rnd_below(chains_only ? 6 : 10);
        for (size_t i = 0; i < count && n < MAXN; i++) {
            char name[64];
            if (chains_only)
                snprintf(name, sizeof(name), "n%zu", i);
            else
                snprintf(name, sizeof(name), "%s%zu%s%zu", rnd_below(2) ? "a/" : "b/", rnd_below(3),
                         rnd_below(2) ? "/x" : "", rnd_below(3));
            st_node_t *node = NULL;
            uint64_t guid = st_guid_local(pid, name);
            if (st_process_find_node(pr, name) != NULL)
                continue;
            assert_int_equal(
                st_process_add_node(pr, name, guid, rnd_below(20) == 0 && !chains_only, &node), 0);
            uint64_t s = rnd_size();
            if (rnd_below(6) != 0 || chains_only)
                assert_int_equal(st_node_set_scalar(node, "size", "bytes", s), 0);
            nodes[n].pid = pid;
            nodes[n].guid = guid;
            nodes[n].size = s;
            nodes[n].owns = false;
            n++;
        }
        /* inner nodes as explicit owners too */
        if (!chains_only && rnd_below(2)) {
            st_node_t *node = NULL;
            uint64_t guid = st_guid_local(pid, "a");
            assert_int_equal(st_process_add_node(pr, "a", guid, false, &node), 0);
            if (rnd_below(2))
                assert_int_equal(st_node_set_scalar(node, "size", "bytes", rnd_size()), 0);
            if (n < MAXN) {
                nodes[n].pid = pid;
                nodes[n].guid = guid;
                nodes[n].size = 0;
                nodes[n].owns = false;
                n++;
            }
        }
    }
    size_t nedges = rnd_below(n + 1);
    for (size_t e = 0; e < nedges; e++) {
        size_t a = rnd_below(n), b = rnd_below(n);
        if (chains_only) {
            if (a < b) {
                size_t tmp = a;
                a = b;
                b = tmp;
            }
            if (a == b || nodes[a].owns)
                continue;
            /* the owned node must be at least as large as every owner */
            if (nodes[a].size > nodes[b].size)
                continue;
            nodes[a].owns = true;
        }
        st_process_dump_t *pr = st_dump_find_process(d, nodes[a].pid);
        assert_int_equal(st_process_add_edge(pr, nodes[a].guid, nodes[b].guid,
                                             (int)rnd_below(3) - (chains_only ? 0 : 1)),
                         0);
    }
    st_graph_result_t *r = NULL;
    assert_int_equal(st_graph_process(d, &r), 0);
    long double exact = 0;
    for (size_t i = 0; i < r->n_nodes; i++) {
        const st_graph_node_t *x = &r->nodes[i];
        size_t len = strlen(x->path);
        bool leaf = i + 1 == r->n_nodes || r->nodes[i + 1].pid != x->pid ||
                    strncmp(r->nodes[i + 1].path, x->path, len) != 0 ||
                    r->nodes[i + 1].path[len] != '/';
        if (!leaf || !x->has_size)
            continue;
        exact += x->effective_exact;
        if (x->effective_size > x->size)
            fail_msg("seed %" PRIu64 ": %d:%s effective %" PRIu64 " > size %" PRIu64, seed, x->pid,
                     x->path, x->effective_size, x->size);
        if (x->effective_exact < 0 || !near_integer_part(x->effective_exact, x->effective_size))
            fail_msg("seed %" PRIu64 ": %d:%s effective %" PRIu64 " is not a rounding of %Lf", seed,
                     x->pid, x->path, x->effective_size, x->effective_exact);
    }
    uint64_t total = total_effective(r);
    if ((long double)total != roundl(exact))
        fail_msg("seed %" PRIu64 ": total effective %" PRIu64 " != rounded exact total %Lf", seed,
                 total, exact);
    if (chains_only) {
        uint64_t truth = 0;
        for (size_t i = 0; i < n; i++)
            truth += nodes[i].owns ? 0 : nodes[i].size;
        if (total != truth)
            fail_msg("seed %" PRIu64 ": chains: total %" PRIu64 " != truth %" PRIu64, seed, total,
                     truth);
        if (r->n_warnings != 0)
            fail_msg("seed %" PRIu64 ": unexpected warning %s", seed, r->warnings[0]);
    }
    st_graph_result_free(r);
    st_trace_free(t);
}

static void test_property_general(void **state)
{
    (void)state;
    for (uint64_t i = 0; i < 3000; i++)
        general_family_one(0xc4a10000ULL + i, false);
}

static void test_property_chains(void **state)
{
    (void)state;
    for (uint64_t i = 0; i < 3000; i++)
        general_family_one(0xc4a20000ULL + i, true);
}

/* ---- scale (informational) ---- */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void timed_dump(size_t nproc, size_t nobj, size_t globals_per_obj)
{
    st_trace_t *t = NULL;
    st_global_dump_t *d = NULL;
    assert_int_equal(st_trace_new(&t), 0);
    assert_int_equal(st_trace_add_dump(t, 1, 0, &d), 0);
    size_t nkeys = nobj * globals_per_obj;
    char(*keys)[32] = calloc(nkeys, sizeof(*keys));
    assert_non_null(keys);
    uint64_t sum_objects = 0;
    for (size_t k = 0; k < nkeys; k++) {
        snprintf(keys[k], sizeof(keys[k]), "anon:0:1:%zu", k + 1);
        /* appended directly: the model's find-or-add is linear, made for small producers */
        if (d->n_globals == d->cap_globals) {
            d->cap_globals = d->cap_carrier = d->cap_globals ? d->cap_globals * 2 : 1024;
            d->globals = realloc(d->globals, d->cap_globals * sizeof(*d->globals));
            d->global_carrier = realloc(d->global_carrier, d->cap_carrier * sizeof(int));
            assert_non_null(d->globals);
            assert_non_null(d->global_carrier);
        }
        st_node_t *g = &d->globals[d->n_globals];
        memset(g, 0, sizeof(*g));
        char name[32];
        st_global_name(st_guid_global(keys[k]), name, sizeof(name));
        g->name = strdup(name);
        g->guid = st_guid_global(keys[k]);
        d->global_carrier[d->n_globals++] = 0;
        assert_int_equal(st_node_set_scalar(g, "size", "bytes", 4096 * (k % 97 + 1)), 0);
        sum_objects += 4096 * (k % 97 + 1);
    }
    for (size_t p = 0; p < nproc; p++) {
        st_process_dump_t *pr = NULL;
        assert_int_equal(st_dump_add_process(d, (int)(1000 + p), NULL, &pr), 0);
        /* each process holds nobj objects: all shared when globals_per_obj == 1 */
        for (size_t o = 0; o < nobj; o++) {
            size_t k = globals_per_obj == 1 ? o : (p * nobj + o) % nkeys;
            uint64_t size = 4096 * (k % 97 + 1);
            /* appended directly, as above */
            char path[64];
            snprintf(path, sizeof(path), ST_HOLDER_PREFIX "%s", keys[k]);
            if (pr->n_nodes == pr->cap_nodes) {
                pr->cap_nodes = pr->cap_nodes ? pr->cap_nodes * 2 : 1024;
                pr->nodes = realloc(pr->nodes, pr->cap_nodes * sizeof(*pr->nodes));
                assert_non_null(pr->nodes);
            }
            st_node_t *h = &pr->nodes[pr->n_nodes++];
            memset(h, 0, sizeof(*h));
            h->name = strdup(path);
            h->guid = st_guid_local(pr->pid, path);
            assert_int_equal(st_node_set_scalar(h, "size", "bytes", size), 0);
            assert_int_equal(
                st_process_add_edge(pr, h->guid, st_guid_global(keys[k]), (int)((p + o) % 3)), 0);
        }
    }
    /* The first run pays for fresh pages (expensive on a busy VM); the later ones show a
     * coordinator's steady state, where the allocator reuses the previous dump's memory. CPU
     * time is printed next to wall time because the test machine may be shared. */
    double ms[3], cpu[3];
    size_t n_nodes = 0;
    for (int rep = 0; rep < 3; rep++) {
        st_graph_result_t *r = NULL;
        double t0 = now(), c0 = cpu_now();
        assert_int_equal(st_graph_process(d, &r), 0);
        ms[rep] = (now() - t0) * 1e3;
        cpu[rep] = (cpu_now() - c0) * 1e3;
        assert_int_equal(total_effective(r), sum_objects);
        assert_int_equal(r->n_warnings, 0);
        n_nodes = r->n_nodes;
        st_graph_result_free(r);
    }
    print_message("graph: %zu processes x %zu objects (%zu globals, %zu nodes): wall/cpu ms "
                  "%.1f/%.1f, then %.1f/%.1f, %.1f/%.1f\n",
                  nproc, nobj, nkeys, n_nodes, ms[0], cpu[0], ms[1], cpu[1], ms[2], cpu[2]);
    st_trace_free(t);
    free(keys);
}

/* ---- the flat shortcut against the general passes ----
 *
 * Random dumps of the flat layout (holders "shared_memory/<key>" each owning one "global/<x>"
 * node): varied numbers of processes (negative pids too) and objects, sizes absent, zero, equal
 * or larger in a holder than in its object (size warnings), importances drawn per policy
 * (creator, equal, first-touch, explicit claims, random ties), canonical and other global names,
 * extra scalar and string entries (names shared between objects and holders, so propagation and
 * its blocking by a string happen), edges in shuffled order. st_graph_process (the shortcut) and
 * st__graph_process_general must give identical results node by node, and st_graph_annotate_dump
 * the same annotated dump as the general process + annotate. A fifth of the dumps get one change
 * that leaves the flat layout; the shortcut must then refuse them. */

enum { FLAT_POLICIES = 5 };

/* Gives node n some of the extra entries (names shared between objects and holders), each one
 * time in 3: a string one time in string_in, else a scalar in bytes (the last in last_unit). */
static void flat_add_extras(st_node_t *n, uint64_t string_in, const char *last_unit)
{
    static const char *const extra[] = {"virtual_size", "swapped_size", "mapped_size", "bar",
                                        "qux"};
    for (size_t e = 0; e < 5; e++) {
        if (rnd_below(3) != 0)
            continue;
        if (rnd_below(string_in) == 0)
            assert_int_equal(st_node_set_string(n, extra[e], "text"), 0);
        else
            assert_int_equal(
                st_node_set_scalar(n, extra[e], e == 4 ? last_unit : "bytes", rnd_below(5000)), 0);
    }
}

/* Builds the seed's dump into d; returns whether it is meant to be flat. */
static bool flat_family_build(uint64_t seed, st_global_dump_t *d)
{
    rng_state = seed;
    int policy = (int)rnd_below(FLAT_POLICIES);
    size_t nproc = 1 + rnd_below(6), nglob = rnd_below(rnd_below(4) == 0 ? 60 : 14);
    int pids[8];
    for (size_t p = 0; p < nproc; p++) {
        int pid;
        bool dup;
        do {
            pid = (int)rnd_below(40) - (rnd_below(6) == 0 ? 45 : -1);
            dup = pid == 0;
            for (size_t q = 0; q < p; q++)
                dup = dup || pids[q] == pid;
        } while (dup);
        pids[p] = pid;
    }
    bool canonical = rnd_below(2) == 0;
    char keys[64][32];
    int creator[64];
    uint64_t gsize[64];
    for (size_t i = 0; i < nglob; i++) {
        snprintf(keys[i], sizeof(keys[i]), "anon:0:%u:%u", (unsigned)rnd_below(3),
                 (unsigned)rnd_below(100000));
        uint64_t guid = st_guid_global(keys[i]);
        char name[64];
        if (canonical)
            st_global_name(guid, name, sizeof(name));
        else
            snprintf(name, sizeof(name), "global/%s", keys[i]);
        st_node_t *n = NULL;
        bool created = false;
        assert_int_equal(st_dump_add_global(d, name, guid, false, 0, &n, &created), 0);
        if (!created) { /* a key drawn twice: make it another object */
            i--;
            continue;
        }
        creator[i] = rnd_below(4) == 0 ? 0 : pids[rnd_below(nproc)];
        gsize[i] = rnd_below(6) == 0 ? NO_SIZE : rnd_size();
        if (gsize[i] != NO_SIZE)
            assert_int_equal(st_node_set_scalar(n, "size", "bytes", gsize[i]), 0);
        flat_add_extras(n, 4, "objects");
        assert_int_equal(st_node_set_string(n, "key", keys[i]), 0);
        if (rnd_below(3) == 0)
            assert_int_equal(st_node_set_scalar(n, "effective_size", "bytes", 7), 0);
    }
    nglob = d->n_globals;
    for (size_t p = 0; p < nproc; p++) {
        st_process_dump_t *pr = NULL;
        assert_int_equal(st_dump_add_process(d, pids[p], NULL, &pr), 0);
        size_t first = pr->n_nodes;
        for (size_t i = 0; i < nglob; i++) {
            if (rnd_below(10) >= 4)
                continue;
            char path[64];
            snprintf(path, sizeof(path), "shared_memory/%s", keys[i]);
            st_node_t *h = NULL;
            assert_int_equal(st_process_add_node(pr, path, st_guid_local(pids[p], path), false, &h),
                             0);
            uint64_t g = gsize[i] == NO_SIZE ? rnd_below(3000) : gsize[i], hs = NO_SIZE;
            switch (rnd_below(8)) {
            case 0:
                break; /* no size: takes the object's */
            case 1:
                hs = rnd_size();
                break;
            case 2:
                hs = 0;
                break;
            case 3: /* larger than the object: a warning, often a tie with another holder */
                hs = g + 1 + rnd_below(2);
                break;
            case 4: /* a part of it: fractions */
                hs = g / (2 + rnd_below(5)) + rnd_below(3);
                break;
            default:
                hs = g;
                break;
            }
            if (hs != NO_SIZE)
                assert_int_equal(st_node_set_scalar(h, "size", "bytes", hs), 0);
            flat_add_extras(h, 5, "bytes");
        }
        /* edges after the nodes, in a shuffled order */
        size_t n = pr->n_nodes - first, order[64];
        for (size_t k = 0; k < n; k++)
            order[k] = first + k;
        for (size_t k = n; k > 1; k--) {
            size_t j = rnd_below(k), tmp = order[k - 1];
            order[k - 1] = order[j];
            order[j] = tmp;
        }
        for (size_t k = 0; k < n; k++) {
            const st_node_t *h = &pr->nodes[order[k]];
            size_t i = 0;
            while (strcmp(keys[i], h->name + sizeof("shared_memory/") - 1) != 0)
                i++;
            int imp;
            switch (policy) {
            case 0: /* creator and first-touch: the creator's holder outranks the others */
            case 1:
                imp = creator[i] != 0 && pids[p] == creator[i] ? 2 : 0;
                break;
            case 2: /* equal */
                imp = 0;
                break;
            case 3: /* explicit claims here and there */
                imp = rnd_below(4) == 0 ? (int)rnd_below(3) + 1 : 0;
                break;
            default:
                imp = (int)rnd_below(4) - 1;
                break;
            }
            assert_int_equal(st_process_add_edge(pr, h->guid, st_guid_global(keys[i]), imp), 0);
        }
    }
    if (rnd_below(4) == 0)
        assert_int_equal(st_dump_add_warning(d, "a producer's warning"), 0);
    if (nglob == 0 || rnd_below(5) != 0)
        return true;
    /* one change that leaves the flat layout */
    st_process_dump_t *pr = &d->procs[rnd_below(d->n_procs)];
    st_node_t *n = NULL;
    switch (rnd_below(pr->n_nodes > 0 ? 8 : 7)) {
    case 7: { /* a name given twice (appended without the model's lookup), with its own guid */
        assert_int_equal(st_process_reserve(pr, 1, 1), 0);
        const st_node_t *o = &pr->nodes[0];
        uint64_t target = 0;
        for (size_t k = 0; k < pr->n_edges; k++)
            if (pr->edges[k].source == o->guid)
                target = pr->edges[k].target;
        n = &pr->nodes[pr->n_nodes++];
        memset(n, 0, sizeof(*n));
        n->name = strdup(pr->nodes[0].name);
        assert_non_null(n->name);
        n->guid = 83;
        assert_int_equal(st_process_add_edge(pr, 83, target, 0), 0);
        break;
    }
    case 0: /* a weak object */
        d->globals[rnd_below(nglob)].weak = true;
        break;
    case 1: /* a child below an object */
        assert_int_equal(st_dump_add_global(d, "global/x/y", 77, false, 0, &n, NULL), 0);
        break;
    case 2: /* a holder without an edge */
        assert_int_equal(st_process_add_node(pr, "shared_memory/lonely", 78, false, &n), 0);
        break;
    case 3: /* an edge to nowhere, from a node that has none */
        assert_int_equal(st_process_add_node(pr, "shared_memory/lost", 79, false, &n), 0);
        assert_int_equal(st_process_add_edge(pr, 79, 12345, 0), 0);
        break;
    case 4: /* a node that is not a holder */
        assert_int_equal(st_process_add_node(pr, "malloc/x", 80, false, &n), 0);
        assert_int_equal(st_process_add_edge(pr, 80, d->globals[0].guid, 0), 0);
        break;
    case 5: /* a holder owning a holder */
        assert_int_equal(st_process_add_node(pr, "shared_memory/sub", 81, false, &n), 0);
        assert_int_equal(st_node_set_scalar(n, "size", "bytes", 5), 0);
        if (pr->n_nodes > 1)
            assert_int_equal(st_process_add_edge(pr, 81, pr->nodes[0].guid, 0), 0);
        else
            assert_int_equal(st_process_add_edge(pr, 81, 81, 0), 0);
        break;
    default: /* a global node owning something */
        assert_int_equal(st_process_add_node(pr, "shared_memory/own", 82, false, &n), 0);
        assert_int_equal(st_process_add_edge(pr, d->globals[0].guid, 82, 0), 0);
        break;
    }
    return false;
}

static void assert_same_result(const st_graph_result_t *a, const st_graph_result_t *b,
                               uint64_t seed)
{
    if (a->n_nodes != b->n_nodes)
        fail_msg("seed %" PRIx64 ": %zu nodes vs %zu", seed, a->n_nodes, b->n_nodes);
    for (size_t i = 0; i < a->n_nodes; i++) {
        const st_graph_node_t *x = &a->nodes[i], *y = &b->nodes[i];
        if (x->pid != y->pid || strcmp(x->path, y->path) != 0 || x->guid != y->guid ||
            x->is_explicit != y->is_explicit || x->has_size != y->has_size || x->size != y->size ||
            x->effective_size != y->effective_size || x->effective_exact != y->effective_exact ||
            x->owns != y->owns || x->importance != y->importance || x->n_entries != y->n_entries)
            fail_msg("seed %" PRIx64 ": node %zu differs: %d:%s size %" PRIu64 "/%" PRIu64
                     " eff %" PRIu64 "/%" PRIu64 " exact %.30Lg/%.30Lg entries %zu/%zu",
                     seed, i, x->pid, x->path, x->size, y->size, x->effective_size,
                     y->effective_size, x->effective_exact, y->effective_exact, x->n_entries,
                     y->n_entries);
        for (size_t e = 0; e < x->n_entries; e++) {
            const st_graph_entry_t *p = &x->entries[e], *q = &y->entries[e];
            if (strcmp(p->name, q->name) != 0 || p->value != q->value || p->origin != q->origin ||
                (p->units == NULL) != (q->units == NULL) ||
                (p->units != NULL && strcmp(p->units, q->units) != 0))
                fail_msg("seed %" PRIx64 ": %d:%s entry %zu differs: %s %" PRIu64 " vs %s %" PRIu64,
                         seed, x->pid, x->path, e, p->name, p->value, q->name, q->value);
        }
    }
    assert_int_equal(a->n_warnings, b->n_warnings);
    for (size_t i = 0; i < a->n_warnings; i++)
        assert_string_equal(a->warnings[i], b->warnings[i]);
}

static void assert_same_dump(const st_global_dump_t *a, const st_global_dump_t *b)
{
    assert_int_equal(a->n_procs, b->n_procs);
    assert_int_equal(a->n_globals, b->n_globals);
    for (size_t k = 0; k <= a->n_procs; k++) {
        size_t n = k == 0 ? a->n_globals : a->procs[k - 1].n_nodes;
        assert_int_equal(n, k == 0 ? b->n_globals : b->procs[k - 1].n_nodes);
        for (size_t i = 0; i < n; i++) {
            const st_node_t *x = k == 0 ? &a->globals[i] : &a->procs[k - 1].nodes[i];
            const st_node_t *y = k == 0 ? &b->globals[i] : &b->procs[k - 1].nodes[i];
            assert_string_equal(x->name, y->name);
            assert_int_equal(x->n_entries, y->n_entries);
            for (size_t e = 0; e < x->n_entries; e++) {
                const st_entry_t *p = &x->entries[e], *q = &y->entries[e];
                assert_string_equal(p->name, q->name);
                assert_int_equal(p->type, q->type);
                if (p->type == ST_ENTRY_SCALAR) {
                    assert_string_equal(p->units, q->units);
                    assert_int_equal(p->value, q->value);
                } else {
                    assert_string_equal(p->string, q->string);
                }
            }
        }
    }
    assert_int_equal(a->n_warnings, b->n_warnings);
    for (size_t i = 0; i < a->n_warnings; i++)
        assert_string_equal(a->warnings[i], b->warnings[i]);
}

/* The links st_graph_annotate_links takes, found in the dump as a builder would know them; false
 * when a node has no size or no edge to a global node (links cannot describe it). */
static bool find_links(const st_global_dump_t *d, uint32_t *target, uint64_t *size, uint64_t *gsize)
{
    for (size_t i = 0; i < d->n_globals; i++)
        if (!st_node_scalar(&d->globals[i], "size", &gsize[i]))
            return false;
    size_t s = 0;
    for (size_t p = 0; p < d->n_procs; p++)
        for (size_t k = 0; k < d->procs[p].n_nodes; k++, s++) {
            const st_node_t *n = &d->procs[p].nodes[k];
            const st_node_t *g = NULL;
            for (size_t e = 0; e < d->procs[p].n_edges && g == NULL; e++)
                if (d->procs[p].edges[e].source == n->guid)
                    g = st_dump_find_global(d, d->procs[p].edges[e].target);
            if (g == NULL || !st_node_scalar(n, "size", &size[s]))
                return false;
            target[s] = (uint32_t)(g - d->globals);
        }
    return true;
}

/* A new trace with two empty dumps, ids 1 (*c) and 2 (*d). */
static st_trace_t *two_dumps(st_global_dump_t **c, st_global_dump_t **d)
{
    st_trace_t *t = NULL;
    assert_int_equal(st_trace_new(&t), 0);
    assert_int_equal(st_trace_add_dump(t, 1, 0, c), 0);
    assert_int_equal(st_trace_add_dump(t, 2, 0, d), 0);
    *c = st_trace_find_dump(t, 1); /* the second add may have moved it */
    return t;
}

/* seed's dump annotated from given links and the way st_graph_annotate_dump finds them: the same
 * dump. 1 when the links were taken, 0 when they could not be given or were refused. */
static size_t flat_links_one(uint64_t seed)
{
    st_global_dump_t *c = NULL, *d = NULL;
    st_trace_t *t = two_dumps(&c, &d);
    flat_family_build(seed, c);
    flat_family_build(seed, d);
    st_dump_sort(c); /* as the coordinator does before it links */
    st_dump_sort(d);
    size_t np = 0, taken = st__graph_links_taken;
    for (size_t p = 0; p < c->n_procs; p++)
        np += c->procs[p].n_nodes;
    uint32_t *target = calloc(np + 1, sizeof(*target));
    uint64_t *size = calloc(np + 1, sizeof(*size)),
             *gsize = calloc(c->n_globals + 1, sizeof(*gsize));
    assert_true(target != NULL && size != NULL && gsize != NULL);
    /* only for the flat layout: the links promise it (st_graph_annotate_links trusts what it
     * cannot check cheaply, such as names and guids) */
    if (st__graph_flat(c) == 1 && find_links(c, target, size, gsize)) {
        st_graph_links_t l = {target, size, gsize};
        assert_int_equal(st_graph_annotate_links(c, &l), 0);
        assert_int_equal(st_graph_annotate_dump(d), 0);
        assert_same_dump(c, d);
    }
    free(target);
    free(size);
    free(gsize);
    st_trace_free(t);
    return st__graph_links_taken - taken;
}

static size_t flat_family_one(uint64_t seed)
{
    st_trace_t *t = NULL;
    st_global_dump_t *a = NULL, *b = NULL;
    assert_int_equal(st_trace_new(&t), 0);
    assert_int_equal(st_trace_add_dump(t, 1, 0, &a), 0);
    bool flat = flat_family_build(seed, a);
    assert_int_equal(st_trace_add_dump(t, 2, 0, &b), 0);
    a = st_trace_find_dump(t, 1);
    assert_true(flat_family_build(seed, b) == flat);
    if (st__graph_flat(a) != (flat ? 1 : 0))
        fail_msg("seed %" PRIx64 ": the shortcut %s a dump %s", seed, flat ? "refused" : "took",
                 flat ? "of the flat layout" : "that is not flat");
    st_graph_result_t *fast = NULL, *general = NULL;
    assert_int_equal(st_graph_process(a, &fast), 0);
    assert_int_equal(st__graph_process_general(a, &general), 0);
    assert_same_result(fast, general, seed);
    /* annotation: the shortcut's dump a against the general passes' dump b; then once more over
     * the annotated dumps (stale effective_size entries, warnings already there) */
    for (int pass = 0; pass < 2; pass++) {
        assert_int_equal(st_graph_annotate_dump(a), 0);
        st_graph_result_free(general);
        general = NULL;
        assert_int_equal(st__graph_process_general(b, &general), 0);
        assert_int_equal(st_graph_annotate(b, general), 0);
        assert_same_dump(a, b);
    }
    size_t warnings = fast->n_warnings;
    st_graph_result_free(fast);
    st_graph_result_free(general);
    st_trace_free(t);
    return flat ? 1 + warnings : 0;
}

/* One process holding one global node with two holder nodes (links given for both): the given
 * links' shortcut refuses it (a process holds each object once there), and the general way gives
 * what st_graph_annotate_dump gives. The threshold of two threads is lowered so that both halves
 * of the placement run (the global node is in the second half). */
static void build_twice(st_global_dump_t *d)
{
    st_node_t *n = NULL;
    assert_int_equal(st_dump_add_global(d, "global/a", 1001, false, 0, &n, NULL), 0);
    assert_int_equal(st_node_set_scalar(n, "size", "bytes", 4096), 0);
    assert_int_equal(st_dump_add_global(d, "global/b", 1002, false, 0, &n, NULL), 0);
    assert_int_equal(st_node_set_scalar(n, "size", "bytes", 8192), 0);
    static const struct {
        int pid;
        const char *path;
        uint64_t guid, target;
        int importance;
    } h[] = {{10, "shared_memory/a", 11, 1001, 0},
             {10, "shared_memory/b", 12, 1002, 0},
             {10, "shared_memory/b2", 13, 1002, 2},
             {20, "shared_memory/b", 21, 1002, 1}};
    st_process_dump_t *pr = NULL;
    for (size_t k = 0; k < sizeof(h) / sizeof(h[0]); k++) {
        if (pr == NULL || pr->pid != h[k].pid)
            assert_int_equal(st_dump_add_process(d, h[k].pid, NULL, &pr), 0);
        assert_int_equal(st_process_add_node(pr, h[k].path, h[k].guid, false, &n), 0);
        assert_int_equal(st_node_set_scalar(n, "size", "bytes", h[k].target == 1001 ? 4096 : 8192),
                         0);
        assert_int_equal(st_process_add_edge(pr, h[k].guid, h[k].target, h[k].importance), 0);
    }
}

static void test_links_held_twice(void **state)
{
    (void)state;
    st_global_dump_t *c = NULL, *d = NULL;
    st_trace_t *t = two_dumps(&c, &d);
    build_twice(c);
    build_twice(d);
    st_dump_sort(c);
    st_dump_sort(d);
    uint32_t target[4];
    uint64_t size[4], gsize[2];
    assert_true(find_links(c, target, size, gsize));
    assert_int_equal(target[1], target[2]); /* pid 10 holds global/b twice */
    size_t split = st__graph_flat_split_min, taken = st__graph_links_taken;
    st__graph_flat_split_min = 2;
    st_graph_links_t l = {target, size, gsize};
    assert_int_equal(st_graph_annotate_links(c, &l), 0);
    st__graph_flat_split_min = split;
    assert_int_equal(st__graph_links_taken, taken); /* refused: the general way ran */
    assert_int_equal(st_graph_annotate_dump(d), 0);
    assert_same_dump(c, d);
    st_trace_free(t);
}

static void test_flat_shortcut(void **state)
{
    (void)state;
    size_t flat = 0, linked = 0;
    size_t split = st__graph_flat_split_min;
    for (uint64_t i = 0; i < 3000; i++) {
        /* every other dump with the size pass split on two threads, as big dumps have it */
        st__graph_flat_split_min = i % 2 ? 2 : split;
        flat += flat_family_one(0xf1a70000ULL + i) > 0;
        linked += flat_links_one(0xf1a70000ULL + i);
    }
    st__graph_flat_split_min = split;
    assert_true(flat > 2000); /* most are flat: the comparison is not vacuous */
    /* and some have every size and their edges in node order, so that links can be given and
     * are taken (379 of these 3000) */
    assert_true(linked > 200);
}

/* The coordinator's and scanner's own builders (st_dump_add_object, st_process_add_holder) give
 * the flat layout. */
static void test_flat_builders(void **state)
{
    fixture *f = *state;
    st_object_info_t o = {.key = "memfd:0:1:5",
                          .kind = ST_KIND_MEMFD,
                          .size = 8192,
                          .virtual_size = 16384,
                          .creator_pid = 10};
    assert_int_equal(st_dump_add_object(f->dump, &o, 10, NULL), 0);
    assert_int_equal(st_process_add_holder(proc(f, 10), &o, 8192, 2, NULL), 0);
    assert_int_equal(st_process_add_holder(proc(f, 11), &o, 4096, 0, NULL), 0);
    assert_int_equal(st__graph_flat(f->dump), 1);
    run(f);
    assert_int_equal(eff(f, 10, "shared_memory/memfd:0:1:5"), 8192);
    assert_int_equal(eff(f, 11, "shared_memory/memfd:0:1:5"), 0);
}

static void test_scale(void **state)
{
    (void)state;
    timed_dump(100, 1000, 1);   /* 1000 objects shared by all */
    timed_dump(100, 1000, 100); /* 100k objects, one holder each */
    timed_dump(500, 1000, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_vector_importance_groups, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vector_creator_owns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vector_equal_split, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vector_three_holders, setup, teardown),
        cmocka_unit_test_setup_teardown(test_largest_remainder_before_pid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_per_object_conservation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_weak_global_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_weak_needs_every_reporter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_weak_all_reporters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_weak_implicit_parent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unspecified, setup, teardown),
        cmocka_unit_test_setup_teardown(test_size_warnings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_size_from_global, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sizeless_leaf, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_edge_ends, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_edge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cycles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deep_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain_simple, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain_outranked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain_fractions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inner_owner, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aggregate_numerics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_propagate_numerics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_annotate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_annotate_trace, setup, teardown),
        cmocka_unit_test(test_property_shmtrack),
        cmocka_unit_test(test_property_general),
        cmocka_unit_test(test_property_chains),
        cmocka_unit_test(test_flat_shortcut),
        cmocka_unit_test(test_links_held_twice),
        cmocka_unit_test_setup_teardown(test_flat_builders, setup, teardown),
        cmocka_unit_test(test_scale),
    };
    return cmocka_run_group_tests_name("graph", tests, NULL, NULL);
}
