/* SPDX-License-Identifier: MIT
 *
 * Unit tests for the dump model (src/model.c): find-or-add semantics, entries, guids, keys and the
 * shmtrack holder/object layout.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "error.h"
#include "model.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <string.h>

static int setup(void **state)
{
    st_trace_t *t = NULL;
    assert_int_equal(st_trace_new(&t), 0);
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    st_trace_free(*state);
    return 0;
}

static void test_find_or_add(void **state)
{
    st_trace_t *t = *state;
    st_global_dump_t *d = NULL, *d2 = NULL;
    assert_int_equal(st_trace_add_dump(t, 1, 100, &d), 0);
    assert_int_equal(st_trace_add_dump(t, 1, 999, &d2), 0);
    assert_ptr_equal(d, d2);
    assert_int_equal(d->ts_us, 100);
    assert_int_equal(t->n_dumps, 1);

    st_process_dump_t *p = NULL, *p2 = NULL;
    assert_int_equal(st_dump_add_process(d, 42, NULL, &p), 0);
    assert_null(p->name);
    assert_int_equal(st_dump_add_process(d, 42, "worker", &p2), 0);
    assert_ptr_equal(p, p2);
    assert_string_equal(p->name, "worker");

    st_node_t *n = NULL, *n2 = NULL;
    assert_int_equal(st_process_add_node(p, "malloc/x", 7, false, &n), 0);
    assert_int_equal(st_process_add_node(p, "malloc/x", 8, true, &n2), 0);
    assert_ptr_equal(n, n2);
    assert_int_equal(n->guid, 7);
    assert_false(n->weak);
    assert_int_equal(st_process_add_node(p, "global/abc", 9, false, &n), -EINVAL);
}

static void test_entries(void **state)
{
    st_trace_t *t = *state;
    st_global_dump_t *d = NULL;
    st_process_dump_t *p = NULL;
    st_node_t *n = NULL;
    assert_int_equal(st_trace_add_dump(t, 1, 0, &d), 0);
    assert_int_equal(st_dump_add_process(d, 1, "a", &p), 0);
    assert_int_equal(st_process_add_node(p, "a", 1, false, &n), 0);
    assert_int_equal(st_node_set_scalar(n, "size", "bytes", 4096), 0);
    assert_int_equal(st_node_set_string(n, "name", "buf"), 0);
    uint64_t v = 0;
    assert_true(st_node_scalar(n, "size", &v));
    assert_int_equal(v, 4096);
    assert_false(st_node_scalar(n, "name", &v));
    assert_string_equal(st_node_string(n, "name"), "buf");
    /* replacing changes the type */
    assert_int_equal(st_node_set_string(n, "size", "big"), 0);
    assert_false(st_node_scalar(n, "size", &v));
    assert_int_equal(n->n_entries, 2);
}

static void test_keys_and_guids(void **state)
{
    (void)state;
    char key[ST_KEY_MAX];
    assert_int_equal(st_key_format(key, sizeof(key), ST_KIND_ANON, 0, 1, 1027), 0);
    assert_string_equal(key, "anon:0:1:1027");
    assert_int_equal(st_key_format_sysv(key, sizeof(key), 4026531839u, 12), 0);
    assert_string_equal(key, "sysv:4026531839:12");
    st_kind_t k;
    assert_int_equal(st_key_kind("memfd:0:1:5", &k), 0);
    assert_int_equal(k, ST_KIND_MEMFD);
    assert_int_equal(st_key_kind("bogus:0:1:5", &k), ST_EFORMAT);
    assert_int_equal(st_key_kind("nocolon", &k), ST_EFORMAT);
    assert_int_equal(st_key_format(key, 8, ST_KIND_ANON, 0, 1, 1027), -ENAMETOOLONG);

    /* FNV-1a 64 of "a" is a published constant: the hash is stable across builds. */
    assert_int_equal(st_hash64("a"), 0xaf63dc4c8601ec8cULL);
    assert_int_equal(st_guid_global("anon:0:1:5"), st_guid_global("anon:0:1:5"));
    assert_true(st_guid_local(1, "x") != st_guid_local(2, "x"));
    char name[32];
    st_global_name(0xabcULL, name, sizeof(name));
    assert_string_equal(name, "global/0000000000000abc");
    /* every digit in every position, against printf */
    uint64_t v = 0x0123456789abcdefULL;
    for (int i = 0; i < 4096; i++) {
        char want[32];
        snprintf(want, sizeof(want), "global/%016" PRIx64, v);
        st_global_name(v, name, sizeof(name));
        assert_string_equal(name, want);
        v = v * 6364136223846793005ULL + 1442695040888963407ULL + (uint64_t)i;
        if (i % 16 == 0)
            v = (v << 4) | (v >> 60); /* rotate the digits through the positions */
    }
    st_global_name(~0ULL, name, sizeof(name));
    assert_string_equal(name, "global/ffffffffffffffff");
    st_global_name(0xabcULL, name, 10); /* truncated like snprintf */
    assert_string_equal(name, "global/00");
    st_policy_t pol;
    assert_int_equal(st_policy_parse("first-touch", &pol), 0);
    assert_int_equal(pol, ST_POLICY_FIRST_TOUCH);
    assert_string_equal(st_policy_name(ST_POLICY_EQUAL), "equal");
}

static void test_holder_layout(void **state)
{
    st_trace_t *t = *state;
    st_global_dump_t *d = NULL;
    st_process_dump_t *a = NULL, *b = NULL;
    assert_int_equal(st_trace_add_dump(t, 1, 0, &d), 0);
    assert_int_equal(st_dump_add_process(d, 10, "a", &a), 0);
    assert_int_equal(st_dump_add_process(d, 11, "b", &b), 0);
    st_object_info_t info = {.key = "memfd:0:1:77",
                             .kind = ST_KIND_MEMFD,
                             .name = "/memfd:x",
                             .size = 8192,
                             .virtual_size = 16384,
                             .creator_pid = 10};
    st_node_t *g = NULL, *g2 = NULL, *h = NULL;
    assert_int_equal(st_dump_add_object(d, &info, 10, &g), 0);
    assert_int_equal(st_dump_add_object(d, &info, 11, &g2), 0);
    assert_ptr_equal(g, g2);
    assert_int_equal(d->n_globals, 1);
    assert_int_equal(d->global_carrier[0], 10);
    assert_string_equal(st_node_string(g, "creator_pid"), "10");
    assert_int_equal(st_process_add_holder(a, &info, 16384, 2, &h), 0);
    assert_string_equal(h->name, "shared_memory/memfd:0:1:77");
    assert_int_equal(h->guid, st_guid_local(10, "shared_memory/memfd:0:1:77"));
    assert_int_equal(a->n_edges, 1);
    assert_int_equal(a->edges[0].target, g->guid);
    assert_int_equal(a->edges[0].importance, 2);
    /* adding again updates the one edge */
    assert_int_equal(st_process_add_holder(a, &info, 4096, 0, &h), 0);
    assert_int_equal(a->n_edges, 1);
    assert_int_equal(a->edges[0].importance, 0);
    uint64_t mapped = 0;
    assert_true(st_node_scalar(h, "mapped_size", &mapped));
    assert_int_equal(mapped, 4096);
    assert_int_equal(st_process_add_holder(b, &info, 4096, 0, NULL), 0);
    /* a caller that has the key's guid at hand passes it: the same nodes and edges */
    st_object_info_t known = info;
    known.key = "memfd:0:1:78";
    known.guid = st_guid_global(known.key);
    assert_int_equal(st_dump_add_object(d, &known, 11, &g2), 0);
    assert_int_equal(g2->guid, st_guid_global("memfd:0:1:78"));
    assert_string_equal(st_node_string(g2, "key"), "memfd:0:1:78");
    assert_int_equal(st_process_add_holder(b, &known, 4096, 0, &h), 0);
    assert_int_equal(h->guid, st_guid_local(11, "shared_memory/memfd:0:1:78"));
    assert_int_equal(b->edges[b->n_edges - 1].target, g2->guid);
    st_dump_sort(d);
    assert_int_equal(d->procs[0].pid, 10);
}

/* What the setters allocate in the builders' nodes (an entry name of their own, a string copy,
 * units other than bytes, entries grown out of the arena) is freed with the dump: the dump is
 * freed without reading the builders' entries only while they hold nothing of their own (ASan's
 * leak check fails this test otherwise). */
static void test_builder_nodes_freed(void **state)
{
    st_trace_t *t = *state;
    st_global_dump_t *d = NULL;
    st_process_dump_t *p = NULL;
    assert_int_equal(st_trace_add_dump(t, 1, 0, &d), 0);
    assert_int_equal(st_dump_add_process(d, 10, "a", &p), 0);
    st_node_t *g = NULL, *h = NULL;
    char key[32];
    for (int i = 0; i < 6; i++) {
        snprintf(key, sizeof(key), "memfd:0:1:%d", 100 + i);
        st_object_info_t info = {.key = key, .kind = ST_KIND_MEMFD, .name = "x", .size = 4096};
        assert_int_equal(st_dump_add_object(d, &info, 10, &g), 0);
        assert_int_equal(st_process_add_holder(p, &info, 4096, 0, &h), 0);
        st_node_t *n = i % 2 ? g : h;
        switch (i / 2) {
        case 0: /* a name of its own, then a string copy */
            assert_int_equal(st_node_set_string(n, "note", "a string no node shares"), 0);
            break;
        case 1: /* units of its own */
            assert_int_equal(st_node_set_scalar(n, "pages", "pages", 1), 0);
            break;
        default: /* a well-known entry set to a copied string, then more entries than the room */
            assert_int_equal(st_node_set_string(n, "name", "a longer shown name, copied"), 0);
            for (int k = 0; k < 12; k++) {
                char name[16];
                snprintf(name, sizeof(name), "extra%d", k);
                assert_int_equal(st_node_set_bytes(n, name, (uint64_t)k), 0);
            }
            break;
        }
        assert_int_equal(st_node_set_bytes(n, "effective_size", 4096), 0);
    }
    st_trace_drop_oldest(t, 1);
    assert_int_equal(t->n_dumps, 0);
}

static size_t count_entries(const st_node_t *n, const char *name)
{
    size_t c = 0;
    for (size_t i = 0; i < n->n_entries; i++)
        c += strcmp(n->entries[i].name, name) == 0;
    return c;
}

/* st_node_set_effective_size: appended to a builder's node without a lookup, replaced (never
 * repeated) and removed like st_node_set_bytes and st_node_remove, also once the node got the
 * entry another way, and on nodes the builders did not make. */
static void test_effective_size(void **state)
{
    st_trace_t *t = *state;
    st_global_dump_t *d = NULL;
    st_process_dump_t *p = NULL;
    assert_int_equal(st_trace_add_dump(t, 3, 0, &d), 0);
    st_object_info_t info = {
        .key = "memfd:0:1:7", .kind = ST_KIND_MEMFD, .name = "x", .size = 8192};
    st_node_t *g = NULL, *h = NULL, *other = NULL;
    assert_int_equal(st_dump_add_process(d, 11, "b", &p), 0);
    assert_int_equal(st_process_add_node(p, "other/node", 77, false, &other), 0);
    assert_int_equal(st_dump_add_process(d, 10, "a", &p), 0); /* d->procs may move: 11 after */
    assert_int_equal(st_process_add_holder(p, &info, 4096, 0, &h), 0);
    other = &st_dump_find_process(d, 11)->nodes[0];
    assert_int_equal(st_dump_add_object(d, &info, 10, &g), 0);
    uint64_t v = 0;
    st_node_t *nodes[] = {g, h, other};
    for (size_t k = 0; k < 3; k++) {
        st_node_t *n = nodes[k];
        size_t before = n->n_entries;
        if (k == 1) /* the holder gets it another way first */
            assert_int_equal(st_node_set_bytes(n, "effective_size", 5), 0);
        assert_int_equal(st_node_set_effective_size(n, true, 100), 0);
        assert_true(st_node_scalar(n, "effective_size", &v));
        assert_int_equal(v, 100);
        assert_int_equal(count_entries(n, "effective_size"), 1);
        assert_int_equal(n->n_entries, before + 1);
        assert_int_equal(st_node_set_effective_size(n, true, 200), 0);
        assert_true(st_node_scalar(n, "effective_size", &v));
        assert_int_equal(v, 200);
        assert_int_equal(count_entries(n, "effective_size"), 1);
        assert_int_equal(st_node_set_effective_size(n, false, 0), 0);
        assert_false(st_node_scalar(n, "effective_size", &v));
        assert_int_equal(n->n_entries, before);
        assert_int_equal(st_node_set_effective_size(n, false, 0), 0); /* nothing to remove */
        assert_int_equal(st_node_set_effective_size(n, true, 300), 0);
        assert_true(st_node_scalar(n, "effective_size", &v));
        assert_int_equal(v, 300);
        assert_int_equal(count_entries(n, "effective_size"), 1);
    }
    /* the other entries are untouched */
    assert_true(st_node_scalar(g, "size", &v));
    assert_int_equal(v, 8192);
    assert_true(st_node_scalar(h, "mapped_size", &v));
    assert_int_equal(v, 4096);
}

static const st_edge_t *edge_of(const st_process_dump_t *p, uint64_t source, size_t *count)
{
    const st_edge_t *e = NULL;
    *count = 0;
    for (size_t i = 0; i < p->n_edges; i++)
        if (p->edges[i].source == source) {
            e = &p->edges[i];
            (*count)++;
        }
    return e;
}

/* A holder added again keeps its one edge and takes the new importance and target: in a process
 * of holders only (its edge found where it is), after another node without an edge (edges no
 * longer in node order), and after an edge from st_process_add_edge repeats a source (then every
 * edge of that source changes, as before). */
static void test_holder_edges(void **state)
{
    st_trace_t *t = *state;
    st_global_dump_t *d = NULL;
    assert_int_equal(st_trace_add_dump(t, 4, 0, &d), 0);
    for (int shape = 0; shape < 3; shape++) {
        st_process_dump_t *p = NULL;
        assert_int_equal(st_dump_add_process(d, 20 + shape, "p", &p), 0);
        if (shape == 1) /* a node without an edge first */
            assert_int_equal(st_process_add_node(p, "other/node", 99, false, NULL), 0);
        char key[32];
        for (int i = 0; i < 3; i++) {
            snprintf(key, sizeof(key), "memfd:0:1:%d", 300 + i);
            st_object_info_t info = {.key = key, .kind = ST_KIND_MEMFD, .name = "x", .size = 4096};
            assert_int_equal(st_process_add_holder(p, &info, 4096, 0, NULL), 0);
        }
        uint64_t g1 = p->nodes[shape == 1 ? 2 : 1].guid, g0 = p->nodes[shape == 1 ? 1 : 0].guid;
        if (shape == 2) /* a second edge of holder 0 */
            assert_int_equal(st_process_add_edge(p, g0, 12345, 1), 0);
        size_t edges = p->n_edges, n = 0;
        for (int i = 0; i < 3; i++) {
            snprintf(key, sizeof(key), "memfd:0:1:%d", 300 + i);
            st_object_info_t info = {.key = key, .kind = ST_KIND_MEMFD, .name = "x", .size = 8192};
            assert_int_equal(st_process_add_holder(p, &info, 4096, 5 + i, NULL), 0);
        }
        assert_int_equal(p->n_edges, edges);
        const st_edge_t *e = edge_of(p, g1, &n);
        assert_int_equal(n, 1);
        assert_int_equal(e->importance, 6);
        assert_int_equal(e->target, st_guid_global("memfd:0:1:301"));
        e = edge_of(p, g0, &n);
        assert_int_equal(n, shape == 2 ? 2 : 1);
        for (size_t i = 0; i < p->n_edges; i++)
            if (p->edges[i].source == g0) {
                assert_int_equal(p->edges[i].importance, 5);
                assert_int_equal(p->edges[i].target, st_guid_global("memfd:0:1:300"));
            }
    }
}

/* Holders from one set of protos added to two process dumps at once, one of them on the second
 * process arena (st_process_set_arena) on another thread: the two dumps come out alike, and
 * freeing the dump frees both arenas (ASan's leak check; the coordinator's tests run it under
 * TSan). */
typedef struct arena_job {
    st_process_dump_t *p;
    const st_holder_proto_t *protos;
    st_global_dump_t *d;
    unsigned which;
    int rc;
} arena_job;

static void *arena_main(void *arg)
{
    arena_job *j = arg;
    j->rc = j->which ? st_process_set_arena(j->d, j->p, j->which) : 0;
    for (int i = 0; i < 500 && j->rc == 0; i++)
        j->rc = st_process_add_holder_proto(j->p, &j->protos[i], 4096, i % 3, NULL);
    return NULL;
}

static void test_second_arena(void **state)
{
    st_trace_t *t = *state;
    st_global_dump_t *d = NULL;
    assert_int_equal(st_trace_add_dump(t, 5, 0, &d), 0);
    static st_holder_proto_t protos[500];
    char key[32], name[32];
    for (int i = 0; i < 500; i++) {
        snprintf(key, sizeof(key), "memfd:0:1:%d", 1000 + i);
        snprintf(name, sizeof(name), "object %d", i);
        st_object_info_t info = {.key = key, .kind = ST_KIND_MEMFD, .name = name, .size = 8192};
        assert_int_equal(st_dump_holder_proto(d, &info, &protos[i]), 0);
    }
    st_process_dump_t *a = NULL, *b = NULL;
    assert_int_equal(st_dump_add_process(d, 31, "a", &a), 0);
    assert_int_equal(st_dump_add_process(d, 32, "b", &b), 0);
    a = st_dump_find_process(d, 31);
    arena_job ja = {a, protos, d, 0, 0}, jb = {b, protos, d, 1, 0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, arena_main, &jb), 0);
    arena_main(&ja);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(ja.rc, 0);
    assert_int_equal(jb.rc, 0);
    assert_non_null(d->proc_arena2);
    assert_int_equal(a->n_nodes, 500);
    assert_int_equal(b->n_nodes, 500);
    assert_int_equal(b->n_edges, 500);
    for (size_t i = 0; i < 500; i++) {
        assert_string_equal(a->nodes[i].name, b->nodes[i].name);
        assert_int_equal(a->nodes[i].n_entries, b->nodes[i].n_entries);
        for (size_t e = 0; e < a->nodes[i].n_entries; e++) {
            assert_string_equal(a->nodes[i].entries[e].name, b->nodes[i].entries[e].name);
            assert_int_equal(a->nodes[i].entries[e].value, b->nodes[i].entries[e].value);
        }
        assert_int_equal(a->edges[i].target, b->edges[i].target);
        assert_int_equal(a->edges[i].importance, b->edges[i].importance);
    }
}

/* st_dump_sort orders globals by name whether the names are canonical ("global/" + the guid's 16
 * hex digits: sorted by number) or not (sorted as strings); carriers and lookups follow. */
static void test_sort_globals(void **state)
{
    st_trace_t *t = *state;
    for (int canonical = 0; canonical < 2; canonical++) {
        st_global_dump_t *d = NULL;
        assert_int_equal(st_trace_add_dump(t, 20 + (uint64_t)canonical, 0, &d), 0);
        enum { N = 5000 };
        for (int i = 0; i < N; i++) {
            char key[64], name[64];
            snprintf(key, sizeof(key), "anon:0:1:%d", i * 7919 % N);
            uint64_t guid = st_guid_global(key);
            if (canonical)
                st_global_name(guid, name, sizeof(name));
            else
                snprintf(name, sizeof(name), "global/%d", i * 7919 % N);
            assert_int_equal(st_dump_add_global(d, name, guid, false, i, NULL, NULL), 0);
        }
        /* a guid with leading zero digits sorts first among canonical names */
        char name[64];
        st_global_name(0x00000000000000ffull, name, sizeof(name));
        if (canonical)
            assert_int_equal(st_dump_add_global(d, name, 0xff, false, -1, NULL, NULL), 0);
        st_dump_sort(d);
        for (size_t i = 1; i < d->n_globals; i++)
            assert_true(strcmp(d->globals[i - 1].name, d->globals[i].name) < 0);
        for (size_t i = 0; i < d->n_globals; i++) {
            assert_ptr_equal(st_dump_find_global(d, d->globals[i].guid), &d->globals[i]);
            if (d->global_carrier[i] >= 0) { /* the carrier went with its node */
                char k[64];
                snprintf(k, sizeof(k), "anon:0:1:%d", d->global_carrier[i] * 7919 % N);
                assert_int_equal(d->globals[i].guid, st_guid_global(k));
            }
        }
        if (canonical)
            assert_int_equal(d->globals[0].guid, 0xff);
    }
}

/* ---- the fast builders against the generic calls ----
 *
 * st_dump_add_object and st_process_add_holder write fresh nodes in one piece of the arena and
 * share strings; what they build must be exactly what the documented layout says, as the
 * generic st_dump_add_global / st_process_add_node / st_node_set_* calls build it: the same
 * nodes, names, guids, entries in the same order, edges. */

static void assert_node_equal(const st_node_t *a, const st_node_t *b)
{
    assert_string_equal(a->name, b->name);
    assert_int_equal(a->guid, b->guid);
    assert_int_equal(a->weak, b->weak);
    assert_int_equal(a->n_entries, b->n_entries);
    for (size_t i = 0; i < a->n_entries; i++) {
        const st_entry_t *x = &a->entries[i], *y = &b->entries[i];
        assert_string_equal(x->name, y->name);
        assert_int_equal(x->type, y->type);
        assert_int_equal(x->value, y->value);
        if (x->type == ST_ENTRY_SCALAR)
            assert_string_equal(x->units, y->units);
        else
            assert_string_equal(x->string, y->string);
    }
}

static void assert_dump_equal(const st_global_dump_t *a, const st_global_dump_t *b)
{
    assert_int_equal(a->n_globals, b->n_globals);
    for (size_t i = 0; i < a->n_globals; i++) {
        assert_node_equal(&a->globals[i], &b->globals[i]);
        assert_int_equal(a->global_carrier[i], b->global_carrier[i]);
        /* and the index finds each one (st_dump_append_object leaves it to catch up) */
        assert_ptr_equal(st_dump_find_global(a, a->globals[i].guid), &a->globals[i]);
    }
    assert_int_equal(a->n_procs, b->n_procs);
    for (size_t p = 0; p < a->n_procs; p++) {
        const st_process_dump_t *x = &a->procs[p], *y = &b->procs[p];
        assert_int_equal(x->pid, y->pid);
        assert_int_equal(x->n_nodes, y->n_nodes);
        for (size_t i = 0; i < x->n_nodes; i++) {
            assert_node_equal(&x->nodes[i], &y->nodes[i]);
            /* and the builder's index finds each one */
            assert_ptr_equal(st_process_find_node(x, x->nodes[i].name), &x->nodes[i]);
        }
        assert_int_equal(x->n_edges, y->n_edges);
        for (size_t i = 0; i < x->n_edges; i++) {
            assert_int_equal(x->edges[i].source, y->edges[i].source);
            assert_int_equal(x->edges[i].target, y->edges[i].target);
            assert_int_equal(x->edges[i].importance, y->edges[i].importance);
        }
        assert_int_equal(st__process_names_unique(x), st__process_names_unique(y));
    }
}

/* The entries an object and its holders share, by the layout in model.h, with the setters. */
static void ref_common(st_node_t *n, const st_object_info_t *info)
{
    assert_int_equal(st_node_set_scalar(n, "size", "bytes", info->size), 0);
    assert_int_equal(st_node_set_scalar(n, "virtual_size", "bytes", info->virtual_size), 0);
    assert_int_equal(st_node_set_scalar(n, "swapped_size", "bytes", info->swapped_size), 0);
    assert_int_equal(st_node_set_string(n, "key", info->key), 0);
    assert_int_equal(st_node_set_string(n, "kind", st_kind_name(info->kind)), 0);
    assert_int_equal(st_node_set_string(n, "name", info->name ? info->name : ""), 0);
}

/* st_dump_add_object by the layout in model.h. */
static void ref_object(st_global_dump_t *d, const st_object_info_t *info, int carrier)
{
    uint64_t guid = info->guid != 0 ? info->guid : st_guid_global(info->key);
    char name[32], pid[16];
    st_global_name(guid, name, sizeof(name));
    snprintf(pid, sizeof(pid), "%d", info->creator_pid);
    st_node_t *n = NULL;
    assert_int_equal(st_dump_add_global(d, name, guid, false, carrier, &n, NULL), 0);
    ref_common(n, info);
    assert_int_equal(st_node_set_string(n, "creator_pid", pid), 0);
    assert_int_equal(st_node_set_string(n, "label", info->label ? info->label : ""), 0);
}

/* st_process_add_holder by the layout in model.h. */
static void ref_holder(st_process_dump_t *p, const st_object_info_t *info, uint64_t mapped,
                       int importance)
{
    char path[256];
    snprintf(path, sizeof(path), "shared_memory/%s", info->key);
    st_node_t *n = NULL;
    assert_int_equal(st_process_add_node(p, path, st_guid_local(p->pid, path), false, &n), 0);
    ref_common(n, info);
    assert_int_equal(st_node_set_scalar(n, "mapped_size", "bytes", mapped), 0);
    uint64_t target = info->guid != 0 ? info->guid : st_guid_global(info->key);
    bool found = false;
    for (size_t i = 0; i < p->n_edges; i++) {
        if (p->edges[i].source == n->guid) {
            p->edges[i].target = target;
            p->edges[i].importance = importance;
            found = true;
        }
    }
    if (!found)
        assert_int_equal(st_process_add_edge(p, n->guid, target, importance), 0);
}

enum { FAST_INFOS = 8 };

/* Objects that exercise every string case: NULL, empty, equal to a kind name (kept once by the
 * model), long; creator pids 0, negative, the largest; a guid given or not. */
static void fast_infos(st_object_info_t info[FAST_INFOS], char *long_name, size_t len)
{
    memset(long_name, 'n', len - 1);
    long_name[len - 1] = '\0';
    info[0] = (st_object_info_t){.key = "memfd:0:1:77",
                                 .kind = ST_KIND_MEMFD,
                                 .name = "/memfd:x",
                                 .size = 8192,
                                 .virtual_size = 16384,
                                 .swapped_size = 4096,
                                 .creator_pid = 10,
                                 .label = "lbl"};
    info[1] = (st_object_info_t){.key = "anon:0:1:5", .kind = ST_KIND_ANON, .size = 1};
    info[2] = (st_object_info_t){.key = "posix:0:1:9",
                                 .kind = ST_KIND_POSIX,
                                 .name = "posix",
                                 .creator_pid = -3,
                                 .label = ""};
    info[3] = (st_object_info_t){.key = "sysv:4026531839:12",
                                 .kind = ST_KIND_SYSV,
                                 .name = "",
                                 .creator_pid = 2147483647,
                                 .guid = st_guid_global("sysv:4026531839:12")};
    info[4] = (st_object_info_t){.key = "hugetlb:0:15:123456789012345",
                                 .kind = ST_KIND_HUGETLB,
                                 .name = long_name,
                                 .virtual_size = 2 << 20,
                                 .creator_pid = -2147483647 - 1,
                                 .label = "memfd"};
    info[5] = (st_object_info_t){.key = "anon:0:1:6", .kind = ST_KIND_ANON, .name = "anon"};
    /* creators whose low bits are another's (0 and the smallest; 10 and 74): the model keeps the
     * strings of a few creators by them */
    info[6] = (st_object_info_t){.key = "anon:0:1:7", .kind = ST_KIND_ANON, .creator_pid = 74};
    info[7] = (st_object_info_t){.key = "anon:0:1:8", .kind = ST_KIND_ANON, .creator_pid = 10};
}

/* How build_dump adds nodes: the generic calls, the fast builders, holders from protos. */
enum build_mode { BUILD_GENERIC, BUILD_FAST, BUILD_PROTO };

/* Adds the holder of object k (info[k], proto[k]) to p the mode's way. */
static void add_holder_as(enum build_mode mode, st_process_dump_t *p, const st_object_info_t *info,
                          const st_holder_proto_t *proto, uint64_t mapped, int importance)
{
    if (mode == BUILD_GENERIC)
        ref_holder(p, info, mapped, importance);
    else if (mode == BUILD_FAST)
        assert_int_equal(st_process_add_holder(p, info, mapped, importance, NULL), 0);
    else
        assert_int_equal(st_process_add_holder_proto(p, proto, mapped, importance, NULL), 0);
}

/* The same dump built each mode's way: nodes that exist already (empty, or with entries: a
 * scan's), nodes added twice (updated), several processes. */
static void build_dump(st_global_dump_t *d, enum build_mode mode)
{
    char long_name[300];
    st_object_info_t info[FAST_INFOS + 1];
    st_holder_proto_t proto[FAST_INFOS + 1];
    fast_infos(info, long_name, sizeof(long_name));
    info[FAST_INFOS] = info[0]; /* the first again, with other values */
    info[FAST_INFOS].size = 1;
    info[FAST_INFOS].name = "other";
    st_node_t *n = NULL;
    char name[32];
    /* a global that exists without entries, one with an entry of its own */
    st_global_name(st_guid_global(info[1].key), name, sizeof(name));
    assert_int_equal(st_dump_add_global(d, name, st_guid_global(info[1].key), false, 7, NULL, NULL),
                     0);
    st_global_name(st_guid_global(info[2].key), name, sizeof(name));
    assert_int_equal(st_dump_add_global(d, name, st_guid_global(info[2].key), false, 8, &n, NULL),
                     0);
    assert_int_equal(st_node_set_string(n, "residency_source", "cachestat"), 0);
    assert_int_equal(st_dump_reserve_globals(d, FAST_INFOS), 0);
    for (int i = 0; i <= FAST_INFOS; i++) {
        if (mode == BUILD_GENERIC)
            ref_object(d, &info[i], 10 + i);
        else if (mode == BUILD_PROTO && i != 1 && i != 2 && i < FAST_INFOS) /* new guids */
            assert_int_equal(st_dump_append_object(d, &info[i], 10 + i, NULL), 0);
        else
            assert_int_equal(st_dump_add_object(d, &info[i], 10 + i, NULL), 0);
        if (mode == BUILD_PROTO)
            assert_int_equal(st_dump_holder_proto(d, &info[i], &proto[i]), 0);
    }

    st_process_dump_t *p = NULL;
    assert_int_equal(st_dump_add_process(d, 10, "a", &p), 0);
    assert_int_equal(st_process_reserve(p, FAST_INFOS, FAST_INFOS), 0);
    for (int i = 0; i <= FAST_INFOS; i++)
        add_holder_as(mode, p, &info[i], &proto[i], 100 + (uint64_t)i, i % 3);
    /* a process whose holder exists already, with an entry of its own (a scan's) */
    assert_int_equal(st_dump_add_process(d, 11, "b", &p), 0);
    assert_int_equal(st_process_add_node(p, "shared_memory/anon:0:1:5",
                                         st_guid_local(11, "shared_memory/anon:0:1:5"), false, &n),
                     0);
    assert_int_equal(st_node_set_scalar(n, "size", "bytes", 3), 0);
    assert_int_equal(st_node_set_string(n, "residency_source", "smaps"), 0);
    assert_int_equal(st_process_add_node(p, "malloc", 1234, true, NULL), 0);
    for (int i = FAST_INFOS - 1; i >= 0; i--)
        add_holder_as(mode, p, &info[i], &proto[i], 7, 0);
    /* a process dump without a reservation, with a negative pid */
    assert_int_equal(st_dump_add_process(d, -5, NULL, &p), 0);
    add_holder_as(mode, p, &info[3], &proto[3], 1, 2);
    add_holder_as(mode, p, &info[4], &proto[4], 2, 2);
}

static void test_fast_builders(void **state)
{
    st_trace_t *t = *state;
    for (enum build_mode mode = BUILD_GENERIC; mode <= BUILD_PROTO; mode++) {
        st_global_dump_t *d = NULL;
        assert_int_equal(st_trace_add_dump(t, (uint64_t)mode, 0, &d), 0);
        build_dump(d, mode);
    }
    const st_global_dump_t *ref = st_trace_find_dump(t, BUILD_GENERIC);
    for (int sorted = 0; sorted < 2; sorted++) {
        for (enum build_mode mode = BUILD_FAST; mode <= BUILD_PROTO; mode++)
            assert_dump_equal(st_trace_find_dump(t, (uint64_t)mode), ref);
        /* and after the sort the graph processor sees */
        for (enum build_mode mode = BUILD_GENERIC; mode <= BUILD_PROTO; mode++)
            st_dump_sort(st_trace_find_dump(t, (uint64_t)mode));
    }
    assert_true(st__dump_names_canonical(st_trace_find_dump(t, BUILD_PROTO)));
    /* holders from one proto share its strings */
    const st_global_dump_t *d = st_trace_find_dump(t, BUILD_PROTO);
    const st_node_t *a = st_process_find_node(&d->procs[1], "shared_memory/memfd:0:1:77"),
                    *b = st_process_find_node(&d->procs[2], "shared_memory/memfd:0:1:77");
    assert_non_null(a);
    assert_non_null(b);
    assert_ptr_equal(a->name, b->name);
    /* a key longer than ST_KEY_MAX */
    char key[ST_KEY_MAX + 8];
    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    st_object_info_t info = {.key = key};
    st_holder_proto_t proto;
    assert_int_equal(st_dump_holder_proto(st_trace_find_dump(t, BUILD_PROTO), &info, &proto),
                     -ENAMETOOLONG);
}

static void test_warnings_and_errors(void **state)
{
    st_trace_t *t = *state;
    st_global_dump_t *d = NULL;
    assert_int_equal(st_trace_add_dump(t, 3, 0, &d), 0);
    assert_int_equal(st_dump_add_warning(d, "edge %d unknown", 4), 0);
    assert_string_equal(d->warnings[0], "edge 4 unknown");
    assert_int_equal(st_dump_add_problem(d, 12, "/proc/12/smaps", EACCES), 0);
    assert_int_equal(d->problems[0].err, EACCES);
    assert_string_equal(st_strerror(ST_EFORMAT), "malformed input");
    assert_string_equal(st_strerror(-ENOENT), "No such file or directory");
    st_error_t e = {.source = "t.json"};
    assert_int_equal(st_error_set(&e, ST_EFORMAT, 12, "\"value\" is not hex"), ST_EFORMAT);
    char buf[128];
    st_error_format(&e, "event", buf, sizeof(buf));
    assert_string_equal(buf, "t.json: event 12: \"value\" is not hex");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_find_or_add, setup, teardown),
        cmocka_unit_test_setup_teardown(test_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_and_guids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_holder_layout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sort_globals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fast_builders, setup, teardown),
        cmocka_unit_test_setup_teardown(test_builder_nodes_freed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_effective_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_holder_edges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_arena, setup, teardown),
        cmocka_unit_test_setup_teardown(test_warnings_and_errors, setup, teardown),
    };
    return cmocka_run_group_tests_name("model", tests, NULL, NULL);
}
