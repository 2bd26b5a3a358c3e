/* SPDX-License-Identifier: MIT
 *
 * The ownership graph processor: Chromium memory-infra's algorithm (shared/ALGORITHM.md, the same
 * passes as Perfetto's graph_processor.cc and catapult's global_memory_dump.html) over one global
 * dump, with one deliberate difference: effective sizes are whole bytes that conserve exactly.
 *
 * Shape. Every node of every graph (one graph per process, graph 0 for the shared "global/"
 * nodes, each with an internal root that is never reported) is a `vertex` in one array sized
 * exactly up front (reported nodes + inner paths + one "<unspecified>" per inner path), so
 * indices stay valid as nodes are added. Only inner paths are indexed by path (uthash), since only
 * they are ever looked up; explicit guids are indexed for the edges. Parent/child and owner/owned
 * links are index lists. Every pass that must visit a node "after its parent and its
 * owned target" walks one topological order of the dependency graph (arcs parent -> child and
 * target -> owner); passes that need "after all children and all owners" walk it backwards.
 * Building that order (Kahn) is also where ownership cycles are found: a cycle (including a node
 * owning its own descendant, which would deadlock both orders) is broken by dropping the edge on
 * it that was added last, with a warning.
 *
 * Rounding. The exact effective size of a leaf is size x cumulative owning coefficient x
 * cumulative owned coefficient (long double). Instead of flooring each leaf (Chromium) or
 * apportioning all leaves at once (which could move a byte from one object to another), the
 * leaves are arranged in a "flow tree" that follows the splits the algorithm makes: a node that
 * claims memory through an ownership edge hangs under the node it owns (an owned node's bytes
 * split between what it keeps and its owners' shares), a leaf below an owning node hangs under
 * that owning node (its allotment split among its leaves), and a leaf below an owned node under
 * that node. Exact values are quantised to 2^-20 byte and summed per flow subtree in 128-bit
 * integers; a subtree total within the accumulated quantisation error of a whole byte counts as
 * that byte count. Then, top down, each flow node's whole-byte total is apportioned among its
 * children (and its own leaf value) by the largest-remainder method, ties to the lowest pid,
 * then the lowest path. So every subtree whose exact total is a whole number of bytes (a shared
 * object: the global node plus its holders) gets exactly that number, every leaf gets the floor
 * or the ceiling of its exact value (hence 0 <= effective <= size), and the grand total is the
 * rounded exact total. docs/graph.md describes the passes as implemented.
 */
#include "graph.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static void *big_alloc(size_t bytes);
#define uthash_malloc(sz) big_alloc(sz) /* bucket arrays of big tables too */
#include <uthash.h>

#define NONE UINT32_MAX
#define QSHIFT 20
__extension__ typedef __int128 q128; /* exact values in units of 2^-20 byte */
#define QUNIT ((q128)1 << QSHIFT)

/* ---- storage ---- */

#define BIG ((size_t)2 << 20)

/* Large arrays are 2 MiB aligned and offered to transparent huge pages: on a VM a first-touch
 * fault of a 4 KiB page can cost ~25 us, so a cold 100k-node dump spent most of its time
 * faulting; a 2 MiB page costs about as much as a 4 KiB one. Freed with free(). */
static void *big_alloc(size_t bytes)
{
    if (bytes < ((size_t)256 << 10))
        return malloc(bytes ? bytes : 1);
    size_t len = (bytes + BIG - 1) & ~(BIG - 1);
    void *p = aligned_alloc(BIG, len);
#ifdef MADV_HUGEPAGE
    if (p != NULL)
        (void)madvise(p, len, MADV_HUGEPAGE); /* advice only: failure changes nothing */
#endif
    return p;
}

/* Paths live in chunks that never move: the result hands them out as its nodes' paths. */
typedef struct chunk {
    struct chunk *next;
    size_t used, cap;
    char data[];
} chunk;

static char *arena_alloc(chunk **head, size_t len)
{
    if (*head == NULL || (*head)->used + len > (*head)->cap) {
        /* chunks grow with the arena, up to 16 MiB */
        size_t cap = *head != NULL ? (*head)->cap * 2 : 65536;
        if (cap > ((size_t)16 << 20))
            cap = (size_t)16 << 20;
        if (cap < len)
            cap = len;
        chunk *c = big_alloc(sizeof(*c) + cap);
        if (c == NULL)
            return NULL;
        c->next = *head;
        c->used = 0;
        c->cap = cap;
        *head = c;
    }
    char *p = (*head)->data + (*head)->used;
    (*head)->used += len;
    return p;
}

static void arena_free(chunk *c)
{
    while (c != NULL) {
        chunk *next = c->next;
        free(c);
        c = next;
    }
}

/* Hot data of one node, kept small (160 bytes): the processor's time is mostly memory. Fields
 * that are never alive at the same time share storage; each union says when each is used. */
typedef struct vertex {
    char *key; /* 4 bytes graph index, then the path, NUL-terminated */
    uint64_t guid;
    uint64_t own_size, size; /* reported (or propagated) size; computed size (pass 5) */
    uint64_t eff;            /* pass 9: first the flow subtree's bytes, then the node's own */
    union {
        long double owning; /* pass 7 coefficient, cumulative from pass 8 */
        long double exact;  /* pass 9: exact effective size */
    };
    long double owned; /* pass 7 coefficient, cumulative from pass 8 */
    union {
        struct {
            uint64_t not_owning, not_owned; /* passes 6-7 */
        };
        q128 q; /* pass 9: quantised flow subtree total */
    };
    uint32_t graph, parent, first_child, next_sibling;
    uint32_t target, first_owner, next_owner; /* the owned node; the owners, linked */
    int importance;
    uint32_t depth;
    union {
        uint32_t edge_seq; /* passes 2-3: input position of the owns edge */
        uint32_t oanc;     /* pass 9: nearest owned proper ancestor */
    };
    union {
        uint32_t mark;  /* pass 2-3: cycle walk stamp */
        uint32_t claim; /* pass 9: nearest owning ancestor-or-self */
    };
    uint32_t tfirst, tnext; /* pass 9: flow tree children */
    union {
        uint32_t unspec;  /* pass 5: the "<unspecified>" child added */
        uint32_t nleaves; /* pass 9: leaves in the flow subtree */
    };
    bool is_explicit : 1, is_root : 1, weak : 1, removed : 1, has_own : 1, has_size : 1, done : 1,
        local_below : 1;
} vertex;

/* An inner path ("shared_memory", "global"): the only paths ever looked up, so the only ones
 * indexed. Leaves are unique by construction (the model finds-or-adds names per process and
 * global nodes merge by guid); a duplicate leaf path is reported when the result is sorted. */
typedef struct prefix {
    UT_hash_handle hh;
    char *key; /* as vertex.key */
    struct prefix *parent, *next;
    size_t len; /* of the path */
    uint32_t vidx;
} prefix;

/* The guid index: entries in one dense array (a chain walk touches little memory). */
typedef struct guid_entry {
    UT_hash_handle hh;
    uint64_t guid;
    uint32_t vidx;
} guid_entry;

typedef struct cand {
    q128 q;
    int pid;
    const char *path;
    uint64_t out;
} cand;

/* Pass 4. A reporter is one model node behind a vertex (a global node may have several), listed
 * per vertex in report order. Aggregation builds every vertex's entry set as a slice of one
 * array of `aent` (own entries, string ones included so that a string blocks a sum of the same
 * name; then sums); propagation then builds the final slices (scalars only) in the result's type.
 */
typedef struct reporter {
    const st_node_t *node;
    uint32_t next;
} reporter;

enum { AENT_OWN, AENT_AGG, AENT_STRING };

typedef struct aent {
    const char *name, *units;
    uint64_t value;
    int kind;
} aent;

typedef struct eslice {
    size_t aoff, foff;
    uint32_t acnt, fcnt;
} eslice;

typedef struct graph {
    const st_global_dump_t *dump;
    vertex *v;
    uint32_t n, cap;
    prefix *by_path, *prefix_first, *prefix_last;
    chunk *prefixes;
    size_t n_prefixes;
    guid_entry *by_guid, *guids;
    size_t n_guids;
    chunk *strings;
    char *kbuf;
    size_t kcap;
    char **warnings;
    size_t n_warnings, cap_warnings;
    uint32_t *order;
    uint32_t n_order;
    int *gpid; /* pid of each graph */
    uint32_t n_graphs;
    uint32_t *roots;
    uint64_t *prefix_lens; /* per graph: bit (len % 64) set when an inner path has length len */
    cand *cands;
    size_t cap_cands;
    reporter *reps;
    uint32_t n_reps;
    uint32_t *rep_head, *rep_tail; /* per vertex, NONE when none */
    aent *aents;
    size_t n_aents, cap_aents;
    eslice *es; /* per vertex that existed at pass 4 */
    uint32_t n_es;
    st_graph_entry_t *fents;
    size_t n_fents, cap_fents;
    int err;
} graph;

static const char *vpath(const vertex *x)
{
    return x->key + 4;
}

static int vpid(const graph *g, const vertex *x)
{
    return g->gpid[x->graph];
}

static void warn(graph *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(graph *g, const char *fmt, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0) {
        g->err = -ENOMEM;
        return;
    }
    if (g->n_warnings == g->cap_warnings) {
        size_t cap = g->cap_warnings ? g->cap_warnings * 2 : 16;
        char **w = realloc(g->warnings, cap * sizeof(*w));
        if (w == NULL) {
            free(s);
            g->err = -ENOMEM;
            return;
        }
        g->warnings = w;
        g->cap_warnings = cap;
    }
    g->warnings[g->n_warnings++] = s;
}

/* "'shared_memory/x' of pid 12" or "'global/00ab' (global)", for warnings. */
static const char *who(const graph *g, uint32_t i, char *buf, size_t len)
{
    const vertex *x = &g->v[i];
    if (x->graph == 0)
        snprintf(buf, len, "'%s' (global)", vpath(x));
    else
        snprintf(buf, len, "'%s' of pid %d", vpath(x), vpid(g, x));
    return buf;
}

/* ---- pass 1: nodes ---- */

/* Guids are hashes already (FNV-1a of the node's identity): fold, don't rehash. */
static unsigned guid_hash(uint64_t guid)
{
    return (unsigned)(guid ^ (guid >> 32));
}

static char *make_key(graph *g, uint32_t gi, const char *path, size_t len)
{
    char *key = arena_alloc(&g->strings, 4 + len + 1);
    if (key == NULL) {
        g->err = -ENOMEM;
        return NULL;
    }
    memcpy(key, &gi, 4);
    memcpy(key + 4, path, len);
    key[4 + len] = '\0';
    return key;
}

static uint32_t vertex_new(graph *g, uint32_t gi, char *key, uint32_t parent)
{
    if (key == NULL || g->n == g->cap) { /* the capacity is an upper bound: a bug guard */
        g->err = -ENOMEM;
        return NONE;
    }
    uint32_t i = g->n++;
    vertex *x = &g->v[i];
    memset(x, 0, sizeof(*x));
    x->key = key;
    x->graph = gi;
    x->parent = parent;
    x->first_child = x->next_sibling = NONE;
    x->target = x->first_owner = x->next_owner = NONE;
    x->tfirst = x->tnext = x->unspec = NONE;
    x->owning = x->owned = 1.0L;
    if (parent != NONE) {
        vertex *p = &g->v[parent];
        x->depth = p->depth + 1;
        x->next_sibling = p->first_child;
        p->first_child = i;
    }
    return i;
}

static prefix *find_prefix(graph *g, uint32_t gi, const char *path, size_t len)
{
    if (4 + len > g->kcap) {
        size_t cap = (4 + len) * 2;
        char *k = realloc(g->kbuf, cap);
        if (k == NULL) {
            g->err = -ENOMEM;
            return NULL;
        }
        g->kbuf = k;
        g->kcap = cap;
    }
    memcpy(g->kbuf, &gi, 4);
    memcpy(g->kbuf + 4, path, len);
    prefix *x = NULL;
    HASH_FIND(hh, g->by_path, g->kbuf, (unsigned)(4 + len), x);
    return x;
}

/* The inner path path[0..len) of graph gi and its missing ancestors, created in that order
 * (ancestors first). Iterative, so a path of any depth is fine. NULL for the root (len ==
 * SIZE_MAX) or on error. */
static prefix *ensure_prefix(graph *g, uint32_t gi, const char *path, size_t len)
{
    if (len == SIZE_MAX)
        return NULL;
    prefix *found = find_prefix(g, gi, path, len);
    if (found != NULL || g->err)
        return found;
    /* The deepest existing ancestor, and where the first missing component starts. */
    prefix *parent = NULL;
    size_t from = 0, pos = len;
    for (;;) {
        const char *slash = pos > 0 ? memrchr(path, '/', pos) : NULL;
        if (slash == NULL)
            break;
        size_t plen = (size_t)(slash - path);
        prefix *p = find_prefix(g, gi, path, plen);
        if (p != NULL) {
            parent = p;
            from = plen + 1;
            break;
        }
        pos = plen;
    }
    for (;;) {
        const char *slash = from < len ? memchr(path + from, '/', len - from) : NULL;
        size_t end = slash != NULL ? (size_t)(slash - path) : len;
        prefix *p = (prefix *)(void *)arena_alloc(&g->prefixes, sizeof(prefix) + 15);
        char *key = make_key(g, gi, path, end);
        if (p == NULL || key == NULL) {
            g->err = -ENOMEM;
            return NULL;
        }
        p = (prefix *)(((uintptr_t)p + 15) & ~(uintptr_t)15);
        memset(p, 0, sizeof(*p));
        p->key = key;
        p->len = end;
        p->parent = parent;
        if (g->prefix_last != NULL)
            g->prefix_last->next = p;
        else
            g->prefix_first = p;
        g->prefix_last = p;
        g->n_prefixes++;
        HASH_ADD_KEYPTR(hh, g->by_path, p->key, (unsigned)(4 + end), p);
        g->prefix_lens[gi] |= (uint64_t)1 << (end & 63);
        parent = p;
        if (end == len)
            return p;
        from = end + 1;
    }
}

/* Where the path of a node's parent ends; SIZE_MAX when the parent is the root. */
static size_t parent_len(const char *name)
{
    const char *slash = strrchr(name, '/');
    return slash != NULL ? (size_t)(slash - name) : SIZE_MAX;
}

/* The inner path holding name in graph gi (NULL: the root), trying last first. */
static prefix *parent_prefix(graph *g, uint32_t gi, const char *name, prefix *last)
{
    size_t len = parent_len(name);
    if (len == SIZE_MAX)
        return NULL;
    if (last != NULL && last->len == len && memcmp(last->key, &gi, 4) == 0 &&
        memcmp(last->key + 4, name, len) == 0)
        return last;
    return ensure_prefix(g, gi, name, len);
}

static uint32_t node_graph(const st_node_t *n, uint32_t gi)
{
    return strncmp(n->name, "global/", 7) == 0 ? 0 : gi;
}

static void add_reporter(graph *g, uint32_t i, const st_node_t *n)
{
    uint32_t r = g->n_reps++;
    g->reps[r] = (reporter){n, NONE};
    if (g->rep_head[i] == NONE)
        g->rep_head[i] = r;
    else
        g->reps[g->rep_tail[i]].next = r;
    g->rep_tail[i] = r;
}

static void merge_reporter(graph *g, uint32_t i, const st_node_t *n)
{
    vertex *x = &g->v[i];
    add_reporter(g, i, n);
    uint64_t size;
    x->weak = x->weak && n->weak; /* weak only if every reporter says so */
    if (!x->has_own && st_node_scalar(n, "size", &size)) {
        x->own_size = size;
        x->has_own = true;
    }
}

static void add_explicit(graph *g, uint32_t gi, const st_node_t *n, int pid, prefix *parent)
{
    char a[320];
    bool index_guid = n->guid != 0;
    if (n->guid != 0) {
        guid_entry *ge = NULL;
        HASH_FIND_BYHASHVALUE(hh, g->by_guid, &n->guid, sizeof(n->guid), guid_hash(n->guid), ge);
        vertex *x = ge != NULL ? &g->v[ge->vidx] : NULL;
        if (x != NULL && x->graph == 0 && gi == 0) {
            if (strcmp(vpath(x), n->name) != 0)
                warn(g, "global node '%s' has the guid %016" PRIx64 " of %s; merged into it",
                     n->name, n->guid, who(g, (uint32_t)(x - g->v), a, sizeof(a)));
            merge_reporter(g, (uint32_t)(x - g->v), n);
            return;
        }
        if (x != NULL) {
            warn(g,
                 "node '%s' of pid %d reuses the guid %016" PRIx64 " of %s; edges with that "
                 "guid refer to the first node",
                 n->name, pid, n->guid, who(g, (uint32_t)(x - g->v), a, sizeof(a)));
            index_guid = false;
        }
    }
    size_t len = strlen(n->name);
    /* Most reported nodes are leaves: look the path up only when some inner path of this
     * graph has its length (mod 64). */
    prefix *inner =
        (g->prefix_lens[gi] >> (len & 63)) & 1 ? find_prefix(g, gi, n->name, len) : NULL;
    uint32_t i;
    if (inner != NULL) {
        i = inner->vidx;
        if (g->v[i].is_explicit) { /* one inner path reported twice */
            if (index_guid)
                warn(g,
                     "%s is reported with a second guid %016" PRIx64 "; edges with that guid "
                     "are dropped",
                     who(g, i, a, sizeof(a)), n->guid);
            merge_reporter(g, i, n);
            return;
        }
    } else {
        i = vertex_new(g, gi, make_key(g, gi, n->name, len),
                       parent != NULL ? parent->vidx : g->roots[gi]);
        if (i == NONE)
            return;
    }
    vertex *x = &g->v[i];
    add_reporter(g, i, n);
    x->is_explicit = true;
    x->weak = n->weak;
    uint64_t size;
    if (st_node_scalar(n, "size", &size)) {
        x->own_size = size;
        x->has_own = true;
    }
    if (index_guid) {
        x->guid = n->guid;
        guid_entry *ge = &g->guids[g->n_guids++];
        ge->guid = n->guid;
        ge->vidx = i;
        HASH_ADD_BYHASHVALUE(hh, g->by_guid, guid, sizeof(ge->guid), guid_hash(ge->guid), ge);
    }
}

/* Two steps: first every inner path (the ancestors of reported nodes) is indexed, so that the
 * vertex array can be sized exactly and only inner paths need an index; then the vertices: the
 * roots, the inner paths (ancestors first), and each reported node, which either takes over its
 * inner vertex or becomes a leaf under its parent. */
static int collect(graph *g)
{
    const st_global_dump_t *d = g->dump;
    size_t n_explicit = d->n_globals;
    for (size_t p = 0; p < d->n_procs; p++)
        n_explicit += d->procs[p].n_nodes;
    prefix **parents = big_alloc(n_explicit * sizeof(*parents));
    g->n_graphs = (uint32_t)d->n_procs + 1;
    g->gpid = calloc(g->n_graphs, sizeof(*g->gpid));
    g->roots = calloc(g->n_graphs, sizeof(*g->roots));
    g->prefix_lens = calloc(g->n_graphs, sizeof(*g->prefix_lens));
    if (parents == NULL || g->gpid == NULL || g->roots == NULL || g->prefix_lens == NULL) {
        free(parents);
        return -ENOMEM;
    }
    size_t e = 0;
    prefix *last = NULL; /* siblings usually come together: reuse the last parent found */
    for (size_t i = 0; i < d->n_globals && !g->err; i++, e++)
        parents[e] = last = parent_prefix(g, 0, d->globals[i].name, last);
    for (size_t p = 0; p < d->n_procs; p++)
        for (size_t i = 0; i < d->procs[p].n_nodes && !g->err; i++, e++) {
            const st_node_t *n = &d->procs[p].nodes[i];
            prefix *pp = parent_prefix(g, node_graph(n, (uint32_t)p + 1), n->name, last);
            parents[e] = pp;
            last = pp != NULL ? pp : last;
        }
    /* vertices: roots + inner paths + reported nodes, and one "<unspecified>" per inner node */
    size_t cap = g->n_graphs + 2 * g->n_prefixes + n_explicit;
    if (g->err || cap >= NONE) {
        free(parents);
        return g->err ? g->err : -E2BIG;
    }
    g->cap = (uint32_t)cap;
    g->v = big_alloc(cap * sizeof(*g->v));
    g->guids = big_alloc(n_explicit * sizeof(*g->guids));
    g->reps = big_alloc(n_explicit * sizeof(*g->reps));
    g->rep_head = big_alloc(cap * sizeof(*g->rep_head));
    g->rep_tail = big_alloc(cap * sizeof(*g->rep_tail));
    if (g->v == NULL || g->guids == NULL || g->reps == NULL || g->rep_head == NULL ||
        g->rep_tail == NULL) {
        free(parents);
        return -ENOMEM;
    }
    memset(g->rep_head, 0xff, cap * sizeof(*g->rep_head)); /* NONE */
    for (uint32_t gi = 0; gi < g->n_graphs; gi++) {
        g->gpid[gi] = gi == 0 ? 0 : d->procs[gi - 1].pid;
        g->roots[gi] = vertex_new(g, gi, make_key(g, gi, "", 0), NONE);
        if (g->roots[gi] == NONE)
            break;
        g->v[g->roots[gi]].is_root = true;
        g->v[g->roots[gi]].is_explicit = true;
    }
    for (prefix *p = g->prefix_first; p != NULL && !g->err; p = p->next) {
        uint32_t gi;
        memcpy(&gi, p->key, 4);
        p->vidx = vertex_new(g, gi, p->key, p->parent != NULL ? p->parent->vidx : g->roots[gi]);
    }
    e = 0;
    for (size_t i = 0; i < d->n_globals && !g->err; i++, e++)
        add_explicit(g, 0, &d->globals[i], 0, parents[e]);
    for (size_t p = 0; p < d->n_procs; p++)
        for (size_t i = 0; i < d->procs[p].n_nodes && !g->err; i++, e++) {
            const st_node_t *n = &d->procs[p].nodes[i];
            add_explicit(g, node_graph(n, (uint32_t)p + 1), n, d->procs[p].pid, parents[e]);
        }
    free(parents);
    return g->err;
}

/* ---- pass 2: edges ---- */

static uint32_t find_guid(graph *g, uint64_t guid)
{
    guid_entry *x = NULL;
    if (guid != 0)
        HASH_FIND_BYHASHVALUE(hh, g->by_guid, &guid, sizeof(guid), guid_hash(guid), x);
    return x != NULL ? x->vidx : NONE;
}

static void add_edges(graph *g)
{
    char a[320], b[320];
    uint32_t seq = 0;
    for (size_t p = 0; p < g->dump->n_procs; p++) {
        const st_process_dump_t *proc = &g->dump->procs[p];
        for (size_t k = 0; k < proc->n_edges; k++) {
            const st_edge_t *e = &proc->edges[k];
            seq++;
            uint32_t s = find_guid(g, e->source), t = find_guid(g, e->target);
            if (s == NONE || t == NONE) {
                if (s == NONE && t == NONE)
                    warn(g,
                         "ownership edge %016" PRIx64 " -> %016" PRIx64 " reported by pid %d "
                         "dropped: no node has either guid",
                         e->source, e->target, proc->pid);
                else if (s == NONE)
                    warn(g,
                         "ownership edge %016" PRIx64 " -> %s reported by pid %d dropped: no "
                         "node has the source guid",
                         e->source, who(g, t, b, sizeof(b)), proc->pid);
                else
                    warn(g,
                         "ownership edge %s -> %016" PRIx64 " reported by pid %d dropped: no "
                         "node has the target guid",
                         who(g, s, a, sizeof(a)), e->target, proc->pid);
                continue;
            }
            vertex *x = &g->v[s];
            if (s == t) {
                warn(g, "ownership edge from %s to itself dropped (a cycle)",
                     who(g, s, a, sizeof(a)));
                continue;
            }
            if (x->target != NONE) {
                if (x->target != t || x->importance != e->importance)
                    warn(g,
                         "second ownership edge of %s (to %s, importance %d) ignored: it "
                         "already owns %016" PRIx64 " with importance %d",
                         who(g, s, a, sizeof(a)), who(g, t, b, sizeof(b)), e->importance,
                         g->v[x->target].guid, x->importance);
                continue;
            }
            x->target = t;
            x->importance = e->importance;
            x->edge_seq = seq;
            x->next_owner = g->v[t].first_owner;
            g->v[t].first_owner = s;
        }
    }
}

static void unlink_owner(graph *g, uint32_t owner)
{
    vertex *t = &g->v[g->v[owner].target];
    uint32_t *link = &t->first_owner;
    while (*link != NONE && *link != owner)
        link = &g->v[*link].next_owner;
    if (*link == owner)
        *link = g->v[owner].next_owner;
    g->v[owner].target = NONE;
    g->v[owner].next_owner = NONE;
}

/* Kahn's algorithm over arcs parent -> child and target -> owner. When it stalls, the nodes left
 * contain a cycle: walk back from one of them (to its parent while that is unplaced, else to its
 * target) until a node repeats, then drop the ownership edge on that cycle that was added last
 * (the one that closed it). Each node has at most two predecessors, so the walk is cheap. */
static int build_order(graph *g)
{
    char a[320], b[320];
    uint32_t *indeg = big_alloc(g->n * sizeof(*indeg));
    g->order = big_alloc(g->n * sizeof(*g->order));
    if (indeg == NULL || g->order == NULL) {
        free(indeg);
        return -ENOMEM;
    }
    uint32_t head = 0, tail = 0, cursor = 0, stamp = 0;
    for (uint32_t i = 0; i < g->n; i++) {
        indeg[i] = (g->v[i].parent != NONE) + (g->v[i].target != NONE);
        if (indeg[i] == 0)
            g->order[tail++] = i;
    }
    while (head < g->n) {
        if (head == tail) { /* stalled: a cycle among the nodes left */
            while (g->v[cursor].done)
                cursor++;
            uint32_t x = cursor;
            stamp++;
            while (g->v[x].mark != stamp) {
                g->v[x].mark = stamp;
                uint32_t p = g->v[x].parent;
                x = (p != NONE && !g->v[p].done) ? p : g->v[x].target;
            }
            uint32_t c0 = x, best = NONE;
            do {
                uint32_t p = g->v[x].parent;
                if (p != NONE && !g->v[p].done) {
                    x = p;
                } else {
                    if (best == NONE || g->v[x].edge_seq > g->v[best].edge_seq)
                        best = x;
                    x = g->v[x].target;
                }
            } while (x != c0);
            warn(g,
                 "ownership edges form a cycle; the edge from %s to %s that closes it was "
                 "dropped",
                 who(g, best, a, sizeof(a)), who(g, g->v[best].target, b, sizeof(b)));
            unlink_owner(g, best);
            if (--indeg[best] == 0)
                g->order[tail++] = best;
            continue;
        }
        uint32_t x = g->order[head++];
        g->v[x].done = true;
        for (uint32_t c = g->v[x].first_child; c != NONE; c = g->v[c].next_sibling)
            if (--indeg[c] == 0)
                g->order[tail++] = c;
        for (uint32_t o = g->v[x].first_owner; o != NONE; o = g->v[o].next_owner)
            if (--indeg[o] == 0)
                g->order[tail++] = o;
    }
    g->n_order = g->n;
    free(indeg);
    return g->err;
}

/* ---- pass 3: weak nodes ---- */

static void remove_weak(graph *g)
{
    /* Implicit nodes whose children are all weak (children come later in the order). */
    for (uint32_t k = g->n_order; k-- > 0;) {
        vertex *x = &g->v[g->order[k]];
        if (x->is_root || x->is_explicit)
            continue;
        bool all = true;
        for (uint32_t c = x->first_child; c != NONE && all; c = g->v[c].next_sibling)
            all = g->v[c].weak;
        x->weak = all;
    }
    /* Weak parent or weak owned target makes a node weak (both come earlier in the order). */
    for (uint32_t k = 0; k < g->n_order; k++) {
        vertex *x = &g->v[g->order[k]];
        if (x->is_root)
            continue;
        if (g->v[x->parent].weak || (x->target != NONE && g->v[x->target].weak))
            x->weak = true;
        x->removed = x->weak;
    }
    uint32_t kept = 0;
    for (uint32_t k = 0; k < g->n_order; k++) {
        uint32_t i = g->order[k];
        vertex *x = &g->v[i];
        if (x->removed)
            continue;
        g->order[kept++] = i;
        uint32_t *link = &x->first_child;
        while (*link != NONE) {
            if (g->v[*link].removed)
                *link = g->v[*link].next_sibling;
            else
                link = &g->v[*link].next_sibling;
        }
        link = &x->first_owner;
        while (*link != NONE) {
            if (g->v[*link].removed)
                *link = g->v[*link].next_owner;
            else
                link = &g->v[*link].next_owner;
        }
    }
    g->n_order = kept;
}

/* ---- pass 4: numerics ---- */

static bool skip_entry(const char *name)
{
    return (name[0] == 's' && strcmp(name, "size") == 0) ||
           (name[0] == 'e' && strcmp(name, "effective_size") == 0);
}

static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 256;
    while (c < need)
        c *= 2;
    void *p = realloc(*arr, c * elem);
    if (p == NULL)
        return -ENOMEM;
    *arr = p;
    *cap = c;
    return 0;
}

/* The entry called name in a[off..off+n), or NULL. */
static aent *find_aent(aent *a, size_t off, size_t n, const char *name)
{
    for (size_t k = off; k < off + n; k++)
        if (a[k].name == name || (a[k].name[0] == name[0] && strcmp(a[k].name, name) == 0))
            return &a[k];
    return NULL;
}

/* Children before parents (the order backwards): a vertex's set is its reporters' entries (the
 * first value of a name wins), then, for every uint entry a child has that the vertex lacks,
 * the sum over its children having it. Each set is one slice of g->aents. */
static int aggregate_numerics(graph *g)
{
    g->n_es = g->n;
    g->es = big_alloc((size_t)g->n * sizeof(*g->es));
    if (g->es == NULL)
        return -ENOMEM;
    memset(g->es, 0, (size_t)g->n * sizeof(*g->es));
    /* Sized once for the reporters' entries plus a few sums per vertex: growing by doubling
     * copied the whole array each time (a tenth of a 100-process dump's processing). */
    size_t reserve = 4 * (size_t)g->n;
    for (uint32_t r = 0; r < g->n_reps; r++)
        reserve += g->reps[r].node->n_entries;
    if (grow((void **)&g->aents, &g->cap_aents, reserve, sizeof(*g->aents)) < 0)
        return -ENOMEM;
    for (uint32_t k = g->n_order; k-- > 0;) {
        uint32_t i = g->order[k];
        const vertex *x = &g->v[i];
        if (x->is_root)
            continue;
        size_t start = g->n_aents;
        for (uint32_t r = g->rep_head[i]; r != NONE; r = g->reps[r].next) {
            const st_node_t *n = g->reps[r].node;
            if (grow((void **)&g->aents, &g->cap_aents, g->n_aents + n->n_entries,
                     sizeof(*g->aents)) < 0)
                return -ENOMEM;
            for (size_t e = 0; e < n->n_entries; e++) {
                const st_entry_t *en = &n->entries[e];
                if (skip_entry(en->name) ||
                    find_aent(g->aents, start, g->n_aents - start, en->name) != NULL)
                    continue;
                bool scalar = en->type == ST_ENTRY_SCALAR;
                g->aents[g->n_aents++] =
                    (aent){en->name, scalar ? en->units : NULL, scalar ? en->value : 0,
                           scalar ? AENT_OWN : AENT_STRING};
            }
        }
        for (uint32_t c = x->first_child; c != NONE; c = g->v[c].next_sibling) {
            const eslice *cs = &g->es[c];
            for (uint32_t e = 0; e < cs->acnt; e++) {
                if (grow((void **)&g->aents, &g->cap_aents, g->n_aents + 1, sizeof(*g->aents)) < 0)
                    return -ENOMEM;
                const aent ce = g->aents[cs->aoff + e];
                if (ce.kind == AENT_STRING)
                    continue;
                aent *have = find_aent(g->aents, start, g->n_aents - start, ce.name);
                if (have == NULL)
                    g->aents[g->n_aents++] = (aent){ce.name, ce.units, ce.value, AENT_AGG};
                else if (have->kind == AENT_AGG &&
                         __builtin_add_overflow(have->value, ce.value, &have->value))
                    have->value = UINT64_MAX;
            }
        }
        if (g->n_aents - start > UINT32_MAX)
            return -E2BIG;
        g->es[i].aoff = start;
        g->es[i].acnt = (uint32_t)(g->n_aents - start);
    }
    free(g->reps);
    free(g->rep_head);
    free(g->rep_tail);
    g->reps = NULL;
    g->rep_head = g->rep_tail = NULL;
    return 0;
}

static st_graph_entry_origin_t origin_of(int kind)
{
    return kind == AENT_OWN ? ST_GRAPH_ENTRY_OWN : ST_GRAPH_ENTRY_AGGREGATED;
}

/* Parents and owned targets first (the order): a vertex's final set is its scalar entries from
 * aggregation, then, when it owns a global node, that node's final entries it lacks (a string of
 * the same name counts as having it). */
static int propagate_numerics(graph *g)
{
    for (uint32_t k = 0; k < g->n_order; k++) {
        uint32_t i = g->order[k];
        const vertex *x = &g->v[i];
        if (x->is_root)
            continue;
        eslice *xs = &g->es[i];
        const eslice *ts =
            x->target != NONE && g->v[x->target].graph == 0 ? &g->es[x->target] : NULL;
        size_t need = g->n_fents + xs->acnt + (ts != NULL ? ts->fcnt : 0);
        if (grow((void **)&g->fents, &g->cap_fents, need, sizeof(*g->fents)) < 0)
            return -ENOMEM;
        size_t start = g->n_fents;
        for (uint32_t e = 0; e < xs->acnt; e++) {
            const aent *a = &g->aents[xs->aoff + e];
            if (a->kind != AENT_STRING)
                g->fents[g->n_fents++] =
                    (st_graph_entry_t){a->name, a->units, a->value, origin_of(a->kind)};
        }
        for (uint32_t e = 0; ts != NULL && e < ts->fcnt; e++) {
            const st_graph_entry_t *t = &g->fents[ts->foff + e];
            if (find_aent(g->aents, xs->aoff, xs->acnt, t->name) == NULL)
                g->fents[g->n_fents++] =
                    (st_graph_entry_t){t->name, t->units, t->value, ST_GRAPH_ENTRY_PROPAGATED};
        }
        xs->foff = start;
        xs->fcnt = (uint32_t)(g->n_fents - start);
    }
    free(g->aents);
    g->aents = NULL;
    g->n_aents = g->cap_aents = 0;
    return 0;
}

/* A global node's "size" is copied to each owner lacking one (the entries above exclude it:
 * pass 5 works on these sizes). */
static void propagate_sizes(graph *g)
{
    for (uint32_t k = 0; k < g->n_order; k++) {
        vertex *x = &g->v[g->order[k]];
        if (x->target == NONE || x->has_own)
            continue;
        const vertex *t = &g->v[x->target];
        if (t->graph == 0 && t->has_own) {
            x->own_size = t->own_size;
            x->has_own = true;
        }
    }
}

/* ---- pass 5: sizes ---- */

/* Whether node d is p or below it. */
static bool within(const graph *g, uint32_t d, uint32_t p)
{
    uint32_t pd = g->v[p].depth;
    while (d != NONE && g->v[d].depth > pd)
        d = g->v[d].parent;
    return d == p;
}

/* Σ of leaf sizes below p, not descending into (and not counting) a node that owns something
 * at or below p: catapult's aggregateDescendantDump. Iterative walk of the subtree. */
static uint64_t aggregate_slow(const graph *g, uint32_t p)
{
    uint64_t sum = 0;
    uint32_t cur = g->v[p].first_child;
    while (cur != NONE) {
        const vertex *x = &g->v[cur];
        bool descend = false;
        if (x->target != NONE && within(g, x->target, p))
            ; /* owns something inside p: counts 0 */
        else if (x->first_child == NONE)
            sum += x->has_size ? x->size : 0;
        else
            descend = true;
        if (descend) {
            cur = x->first_child;
            continue;
        }
        while (cur != p && g->v[cur].next_sibling == NONE)
            cur = g->v[cur].parent;
        if (cur == p)
            break;
        cur = g->v[cur].next_sibling;
    }
    return sum;
}

static int compute_sizes(graph *g)
{
    char a[320], b[320];
    for (uint32_t k = g->n_order; k-- > 0;) {
        uint32_t i = g->order[k];
        vertex *x = &g->v[i];
        bool lob = x->target != NONE && g->v[x->target].graph == x->graph;
        bool has_agg = x->first_child != NONE, has_maxo = false;
        uint64_t agg = 0, maxo = 0;
        uint32_t maxo_node = NONE;
        for (uint32_t c = x->first_child; c != NONE; c = g->v[c].next_sibling) {
            lob = lob || g->v[c].local_below;
            agg += g->v[c].has_size ? g->v[c].size : 0;
        }
        x->local_below = lob;
        /* Without ownership inside this subtree, Σ of the leaves is Σ of the children's sizes
         * (each child's "<unspecified>" makes up its difference); otherwise walk the leaves. */
        if (has_agg && lob)
            agg = aggregate_slow(g, i);
        for (uint32_t o = x->first_owner; o != NONE; o = g->v[o].next_owner) {
            if (g->v[o].has_size && (!has_maxo || g->v[o].size > maxo)) {
                maxo = g->v[o].size;
                maxo_node = o;
            }
            has_maxo = has_maxo || g->v[o].has_size;
        }
        x->has_size = x->has_own || has_agg || has_maxo;
        uint64_t size = x->has_own ? x->own_size : 0;
        if (has_agg && agg > size) {
            if (x->has_own)
                warn(g,
                     "%s reports size %" PRIu64 " but its children sum to %" PRIu64
                     "; using the larger size",
                     who(g, i, a, sizeof(a)), x->own_size, agg);
            size = agg;
        }
        if (has_maxo && maxo > size) {
            if (x->has_own)
                warn(g,
                     "%s reports size %" PRIu64 " but its owner %s has size %" PRIu64
                     "; using the larger size",
                     who(g, i, a, sizeof(a)), x->own_size, who(g, maxo_node, b, sizeof(b)), maxo);
            size = maxo;
        }
        x->size = x->has_size ? size : 0;
        if (x->has_size && has_agg && size > agg && !x->is_root) {
            size_t plen = strlen(vpath(x)), slen = sizeof("/<unspecified>") - 1;
            bool clash = false;
            for (uint32_t c = x->first_child; c != NONE && !clash; c = g->v[c].next_sibling)
                clash = strcmp(vpath(&g->v[c]) + plen, "/<unspecified>") == 0;
            if (clash) {
                warn(g,
                     "%s already has a child named <unspecified>; its %" PRIu64
                     " unaccounted bytes are not shown",
                     who(g, i, a, sizeof(a)), size - agg);
                continue;
            }
            char *key = arena_alloc(&g->strings, 4 + plen + slen + 1);
            if (key == NULL)
                return -ENOMEM;
            memcpy(key, x->key, 4 + plen);
            memcpy(key + 4 + plen, "/<unspecified>", slen + 1);
            uint32_t u = vertex_new(g, x->graph, key, i);
            if (u == NONE)
                return g->err;
            vertex *un = &g->v[u];
            un->own_size = un->size = size - agg;
            un->has_own = un->has_size = true;
            g->v[i].unspec = u;
        }
    }
    /* Put each "<unspecified>" right after its parent: still a topological order. */
    uint32_t *order = big_alloc(g->n * sizeof(*order));
    if (order == NULL)
        return -ENOMEM;
    uint32_t n = 0;
    for (uint32_t k = 0; k < g->n_order; k++) {
        order[n++] = g->order[k];
        if (g->v[g->order[k]].unspec != NONE)
            order[n++] = g->v[g->order[k]].unspec;
    }
    free(g->order);
    g->order = order;
    g->n_order = n;
    return 0;
}

/* ---- pass 6: sub-sizes ---- */

static uint64_t largest_owner(const graph *g, uint32_t i)
{
    uint64_t m = 0;
    for (uint32_t o = g->v[i].first_owner; o != NONE; o = g->v[o].next_owner)
        if (g->v[o].has_size && g->v[o].size > m)
            m = g->v[o].size;
    return m;
}

static void compute_sub_sizes(graph *g)
{
    for (uint32_t k = g->n_order; k-- > 0;) {
        vertex *x = &g->v[g->order[k]];
        if (!x->has_size)
            continue;
        if (x->first_child == NONE) {
            x->not_owning = x->not_owned = x->size;
            continue;
        }
        for (uint32_t c = x->first_child; c != NONE; c = g->v[c].next_sibling) {
            const vertex *y = &g->v[c];
            if (y->target == NONE)
                x->not_owning += y->not_owning;
            if (y->first_owner == NONE) {
                x->not_owned += y->not_owned;
            } else {
                uint64_t lo = largest_owner(g, c);
                x->not_owned += y->size > lo ? y->size - lo : 0;
            }
        }
    }
}

/* ---- pass 7: ownership coefficients ---- */

typedef struct owner_key {
    int importance;
    uint64_t s; /* not-owning sub-size */
    int pid;
    const char *path;
    long double *owning; /* where its coefficient goes */
} owner_key;

static int cmp_owner(const void *pa, const void *pb)
{
    const owner_key *a = pa, *b = pb;
    if (a->importance != b->importance)
        return a->importance > b->importance ? -1 : 1;
    if (a->s != b->s)
        return a->s < b->s ? -1 : 1;
    if (a->pid != b->pid)
        return a->pid < b->pid ? -1 : 1;
    return strcmp(a->path, b->path);
}

/* Pass 7 proper, shared by the general pass and the flat one: the owners of one owned object,
 * sorted by cmp_owner, share what each covers beyond the owners before it, equally among those
 * of the same importance; sets each owner's coefficient and, when the owned side has a
 * not-owning size, its own (*OWNED). */
static void share_owners(const owner_key *keys, size_t n, uint64_t not_owned, long double *owned)
{
    uint64_t already = 0;
    for (size_t j = 0; j < n;) {
        size_t end = j;
        while (end < n && keys[end].importance == keys[j].importance)
            end++;
        long double attributed = 0;
        for (size_t r = end - j; j < end; j++, r--) {
            uint64_t s = keys[j].s;
            if (s > already) {
                attributed += (long double)(s - already) / (long double)r;
                already = s;
            }
            if (s != 0)
                *keys[j].owning = attributed / (long double)s;
        }
    }
    if (not_owned != 0)
        *owned = not_owned > already ? (long double)(not_owned - already) / (long double)not_owned
                                     : 0.0L;
}

static int compute_coefficients(graph *g)
{
    owner_key *keys = NULL;
    size_t cap = 0;
    for (uint32_t k = 0; k < g->n_order; k++) {
        vertex *x = &g->v[g->order[k]];
        if (!x->has_size || x->first_owner == NONE)
            continue;
        size_t n = 0;
        for (uint32_t o = x->first_owner; o != NONE; o = g->v[o].next_owner) {
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                owner_key *nk = realloc(keys, cap * sizeof(*keys));
                if (nk == NULL) {
                    free(keys);
                    return -ENOMEM;
                }
                keys = nk;
            }
            const vertex *y = &g->v[o];
            keys[n++] =
                (owner_key){y->importance, y->not_owning, vpid(g, y), vpath(y), &g->v[o].owning};
        }
        qsort(keys, n, sizeof(*keys), cmp_owner);
        share_owners(keys, n, x->not_owned, &x->owned);
    }
    free(keys);
    return 0;
}

/* ---- pass 8: cumulative coefficients ---- */

static void compute_cumulative(graph *g)
{
    for (uint32_t k = 0; k < g->n_order; k++) {
        vertex *x = &g->v[g->order[k]];
        if (!x->has_size)
            continue;
        const vertex *p = x->parent != NONE ? &g->v[x->parent] : NULL;
        x->owned = x->owned * (p != NULL ? p->owned : 1.0L);
        if (x->target != NONE)
            x->owning = x->owning * g->v[x->target].owning;
        else
            x->owning = p != NULL ? p->owning : 1.0L;
    }
}

/* ---- pass 9: effective sizes, rounded per split ---- */

static q128 quantise(long double v, uint64_t max)
{
    if (!(v > 0)) /* also NaN */
        return 0;
    if (v >= (long double)max)
        return (q128)max << QSHIFT;
    uint64_t whole = (uint64_t)v; /* v < max: fits */
    uint64_t frac = (uint64_t)((v - (long double)whole) * (long double)QUNIT + 0.5L);
    return ((q128)whole << QSHIFT) + frac;
}

/* Moves q to the nearest whole byte when it is within tol units of it. */
static q128 snap(q128 q, q128 tol)
{
    if (tol >= QUNIT / 2)
        tol = QUNIT / 2 - 1;
    q128 r = q & (QUNIT - 1);
    if (r != 0 && r <= tol)
        return q - r;
    if (r != 0 && QUNIT - r <= tol)
        return q + (QUNIT - r);
    return q;
}

static int cmp_cand_ptr(const void *pa, const void *pb)
{
    const cand *a = *(cand *const *)pa, *b = *(cand *const *)pb;
    q128 ra = a->q & (QUNIT - 1), rb = b->q & (QUNIT - 1);
    if (ra != rb)
        return ra > rb ? -1 : 1;
    if (a->pid != b->pid)
        return a->pid < b->pid ? -1 : 1;
    return strcmp(a->path, b->path);
}

/* Largest remainder: total whole bytes among c[0..n) with exact values c[i].q. */
static int apportion(uint64_t total, cand *c, size_t n)
{
    uint64_t floors = 0;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        c[i].out = (uint64_t)(c[i].q >> QSHIFT);
        floors += c[i].out;
        m += (c[i].q & (QUNIT - 1)) != 0;
    }
    if (total > floors) {
        uint64_t extra = total - floors;
        if (extra < m) {
            cand **p = malloc(m * sizeof(*p));
            if (p == NULL)
                return -ENOMEM;
            size_t k = 0;
            for (size_t i = 0; i < n; i++)
                if ((c[i].q & (QUNIT - 1)) != 0)
                    p[k++] = &c[i];
            qsort(p, m, sizeof(*p), cmp_cand_ptr);
            for (size_t i = 0; i < extra; i++)
                p[i]->out++;
            free(p);
            extra = 0;
        } else {
            for (size_t i = 0; i < n; i++)
                if ((c[i].q & (QUNIT - 1)) != 0)
                    c[i].out++;
            extra -= m;
        }
        /* Unreachable when every total is the floor or ceiling of its exact value; kept so
         * that bytes are conserved whatever happens. */
        for (size_t i = 0; extra > 0 && n > 0; i = (i + 1) % n, extra--)
            c[i].out++;
    } else if (total < floors) {
        uint64_t less = floors - total; /* unreachable, as above */
        for (size_t i = 0; less > 0; i = (i + 1) % n)
            if (c[i].out > 0) {
                c[i].out--;
                less--;
            }
    }
    return 0;
}

/* A leaf's own exact value, quantised; whole bytes when within float noise of them. */
static q128 self_q(const vertex *x)
{
    return snap(quantise(x->exact, x->size), 2);
}

static int reserve_cands(graph *g, size_t n)
{
    if (n <= g->cap_cands)
        return 0;
    size_t cap = n * 2;
    cand *c = realloc(g->cands, cap * sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    g->cands = c;
    g->cap_cands = cap;
    return 0;
}

static int compute_effective(graph *g)
{
    /* Exact leaf values and the flow tree. */
    uint32_t top_first = NONE;
    size_t n_top = 0;
    for (uint32_t k = 0; k < g->n_order; k++) {
        uint32_t i = g->order[k];
        vertex *x = &g->v[i];
        if (x->is_root)
            continue;
        const vertex *p = &g->v[x->parent];
        bool proot = p->is_root;
        x->claim = x->target != NONE ? i : proot ? NONE : p->claim;
        x->oanc = proot ? NONE : p->first_owner != NONE ? x->parent : p->oanc;
        if (!x->has_size)
            continue;
        if (x->first_child == NONE)
            x->exact = (long double)x->size * x->owning * x->owned;
        uint32_t tp = x->claim == i ? x->target : x->claim != NONE ? x->claim : x->oanc;
        if (tp != NONE && g->v[tp].has_size) {
            x->tnext = g->v[tp].tfirst;
            g->v[tp].tfirst = i;
        } else {
            x->tnext = top_first;
            top_first = i;
            n_top++;
        }
    }
    /* Quantised subtree totals, bottom up (flow children come later in the order). */
    size_t max_kids = n_top;
    for (uint32_t k = g->n_order; k-- > 0;) {
        vertex *x = &g->v[g->order[k]];
        if (!x->has_size || x->is_root)
            continue;
        bool leaf = x->first_child == NONE;
        x->q = leaf ? self_q(x) : 0;
        x->nleaves = leaf;
        size_t kids = leaf;
        for (uint32_t c = x->tfirst; c != NONE; c = g->v[c].tnext) {
            x->q += g->v[c].q;
            x->nleaves += g->v[c].nleaves;
            kids++;
        }
        if (kids > max_kids)
            max_kids = kids;
        if (x->tfirst != NONE)
            x->q = snap(x->q, (q128)2 * x->nleaves + (x->q >> 58));
    }
    if (reserve_cands(g, max_kids + 1) < 0)
        return -ENOMEM;
    /* Top level: the rounded grand total, apportioned. */
    q128 total = 0;
    size_t n = 0;
    for (uint32_t i = top_first; i != NONE; i = g->v[i].tnext) {
        total += g->v[i].q;
        g->cands[n++] = (cand){g->v[i].q, vpid(g, &g->v[i]), vpath(&g->v[i]), 0};
    }
    if (apportion((uint64_t)((total + QUNIT / 2) >> QSHIFT), g->cands, n) < 0)
        return -ENOMEM;
    n = 0;
    for (uint32_t i = top_first; i != NONE; i = g->v[i].tnext)
        g->v[i].eff = g->cands[n++].out;
    /* Each flow node's bytes among its own leaf value and its flow children, top down. */
    for (uint32_t k = 0; k < g->n_order; k++) {
        vertex *x = &g->v[g->order[k]];
        if (!x->has_size || x->is_root)
            continue;
        bool leaf = x->first_child == NONE;
        if (x->tfirst == NONE) {
            x->eff = leaf ? x->eff : 0;
            continue;
        }
        n = 0;
        if (leaf)
            g->cands[n++] = (cand){self_q(x), vpid(g, x), vpath(x), 0};
        for (uint32_t c = x->tfirst; c != NONE; c = g->v[c].tnext)
            g->cands[n++] = (cand){g->v[c].q, vpid(g, &g->v[c]), vpath(&g->v[c]), 0};
        if (apportion(x->eff, g->cands, n) < 0)
            return -ENOMEM;
        n = 0;
        x->eff = leaf ? g->cands[n++].out : 0;
        for (uint32_t c = x->tfirst; c != NONE; c = g->v[c].tnext)
            g->v[c].eff = g->cands[n++].out;
    }
    /* Inner nodes: Σ of their children, exact and rounded. */
    for (uint32_t k = g->n_order; k-- > 0;) {
        vertex *x = &g->v[g->order[k]];
        if (!x->has_size || x->first_child == NONE)
            continue;
        x->eff = 0;
        x->exact = 0;
        for (uint32_t c = x->first_child; c != NONE; c = g->v[c].next_sibling) {
            if (!g->v[c].has_size)
                continue;
            x->eff += g->v[c].eff;
            x->exact += g->v[c].exact;
        }
    }
    return 0;
}

/* ---- result ---- */

typedef struct sort_item {
    const char *path;
    uint32_t idx;
} sort_item;

static int cmp_item(const void *pa, const void *pb)
{
    return strcmp(((const sort_item *)pa)->path, ((const sort_item *)pb)->path);
}

typedef struct graph_key {
    int pid;
    uint32_t gi;
} graph_key;

static int cmp_graph_key(const void *pa, const void *pb)
{
    const graph_key *a = pa, *b = pb;
    if (a->pid != b->pid)
        return a->pid < b->pid ? -1 : 1;
    return (a->gi > b->gi) - (a->gi < b->gi);
}

/* The surviving nodes sorted by (pid, path): bucketed by graph, then each graph sorted alone
 * (cheaper than one big sort, and where duplicate leaf paths would show up side by side). */
static int make_result(graph *g, st_graph_result_t **out)
{
    char a[320];
    int rc = -ENOMEM;
    st_graph_result_t *r = calloc(1, sizeof(*r));
    graph_key *gk = calloc(g->n_graphs, sizeof(*gk));
    size_t *count = calloc(g->n_graphs, sizeof(*count)); /* nodes per graph */
    sort_item *items = big_alloc(g->n_order * sizeof(*items));
    if (r == NULL || gk == NULL || count == NULL || items == NULL)
        goto out;
    r->nodes = big_alloc(g->n_order * sizeof(*r->nodes));
    if (r->nodes == NULL)
        goto out;
    for (uint32_t gi = 0; gi < g->n_graphs; gi++)
        gk[gi] = (graph_key){g->gpid[gi], gi};
    qsort(gk, g->n_graphs, sizeof(*gk), cmp_graph_key);
    for (uint32_t k = 0; k < g->n_order; k++)
        if (!g->v[g->order[k]].is_root)
            count[g->v[g->order[k]].graph]++;
    /* offsets in pid order */
    size_t off = 0;
    size_t *goff = calloc(g->n_graphs, sizeof(*goff));
    if (goff == NULL)
        goto out;
    for (uint32_t j = 0; j < g->n_graphs; j++) {
        goff[gk[j].gi] = off;
        off += count[gk[j].gi];
    }
    size_t n = off;
    for (uint32_t k = 0; k < g->n_order; k++) {
        const vertex *x = &g->v[g->order[k]];
        if (!x->is_root)
            items[goff[x->graph]++] = (sort_item){vpath(x), g->order[k]};
    }
    off = 0;
    for (uint32_t j = 0; j < g->n_graphs; j++) {
        size_t c = count[gk[j].gi];
        qsort(items + off, c, sizeof(*items), cmp_item);
        for (size_t i = off + 1; i < off + c; i++)
            if (strcmp(items[i].path, items[i - 1].path) == 0)
                warn(g, "two nodes are named %s; looking it up finds either",
                     who(g, items[i].idx, a, sizeof(a)));
        off += c;
    }
    free(goff);
    for (size_t i = 0; i < n; i++) {
        const vertex *x = &g->v[items[i].idx];
        r->nodes[i] = (st_graph_node_t){
            .pid = vpid(g, x),
            .path = (char *)vpath(x),
            .guid = x->is_explicit ? x->guid : 0,
            .is_explicit = x->is_explicit,
            .has_size = x->has_size,
            .size = x->size,
            .effective_size = x->eff,
            .effective_exact = x->has_size ? x->exact : 0,
            .owns = x->target != NONE ? g->v[x->target].guid : 0,
            .importance = x->target != NONE ? x->importance : 0,
        };
        if (items[i].idx < g->n_es && g->es[items[i].idx].fcnt > 0) {
            r->nodes[i].entries = g->fents + g->es[items[i].idx].foff;
            r->nodes[i].n_entries = g->es[items[i].idx].fcnt;
        }
    }
    r->n_nodes = n;
    if (g->err) {
        rc = g->err;
        goto out;
    }
    r->warnings = g->warnings;
    r->n_warnings = g->n_warnings;
    r->strings = g->strings;
    r->entries = g->fents;
    r->n_entries = g->n_fents;
    g->fents = NULL;
    g->warnings = NULL;
    g->n_warnings = 0;
    g->strings = NULL;
    *out = r;
    r = NULL;
    rc = 0;
out:
    if (r != NULL)
        free(r->nodes);
    free(r);
    free(gk);
    free(count);
    free(items);
    return rc;
}

static int add_warnings(st_global_dump_t *dump, char *const *warnings, size_t n);

/* ---- the flat layout: a fast path ----
 *
 * What the coordinator and the scanner produce: global nodes "global/<x>" and, in each process,
 * holder nodes "shared_memory/<x>", each owning one global node with one edge of its own process,
 * and nothing else (no weak node, no child, no other edge, unique pids, guids and names). On that
 * shape the passes above reduce to arithmetic per object: its size is the larger of its own and
 * its largest holder's, its holders split it by importance, and only the top-level apportioning
 * sees every object. flat_build checks the shape and computes exactly what the passes above
 * compute, operation for operation (the same long double and 128-bit arithmetic, the same order
 * where order matters: owner lists, sums of exact values, candidates, warnings), in plain arrays
 * indexed like the model; anything else goes the general way. The general passes visit this
 * shape in one topological order: roots, the inner paths ("global", then each process's
 * "shared_memory"), the global nodes backwards, then each one's holders backwards; reversed where
 * a pass walks backwards. tests/unit/test_graph.c compares both ways on random flat dumps.
 * Exact values are not stored: they are recomputed, by the same operations, where needed.
 */

typedef struct fholder {
    uint32_t proc : 31, has_size : 1; /* dump->procs[proc].nodes[node] */
    uint32_t node;
    uint32_t target; /* the global node it owns */
    int importance;
    uint64_t size, eff;
    long double owning; /* pass 7 */
    q128 q;             /* pass 9: its exact effective size, quantised */
} fholder;

typedef struct fglobal {
    uint32_t first, count; /* its holders: h[first .. first + count), in edge order */
    uint64_t size, eff;
    bool has_size;
    long double owned; /* pass 7 */
    q128 q;            /* pass 9: its flow subtree's total, quantised */
} fglobal;

/* An implicit inner node: "global" or a process's "shared_memory". */
typedef struct finner {
    uint64_t size, eff;
    long double exact;
} finner;

typedef struct flat {
    const st_global_dump_t *dump;
    const st_graph_links_t *given; /* the links and sizes, from the builder; NULL: found here */
    fglobal *g;                    /* per global node */
    fholder *h;                    /* per holder, grouped by global */
    uint32_t *hof;                 /* per process node (base[p] + i): its holder */
    size_t *base;                  /* per process: its first node's index among all process nodes */
    size_t n_h;
    finner top;             /* "global" (when there are global nodes) */
    finner *inner;          /* per process: "shared_memory" (when it has nodes) */
    size_t n_top, max_kids; /* pass 9: global nodes with a size; most candidates of one object */
    graph w;                /* only its warnings and err are used */
} flat;

static void flat_free(flat *f)
{
    free(f->g);
    free(f->h);
    free(f->hof);
    free(f->base);
    free(f->inner);
    for (size_t i = 0; i < f->w.n_warnings; i++)
        free(f->w.warnings[i]);
    free(f->w.warnings);
    memset(f, 0, sizeof(*f));
}

/* name is prefix (ending in '/') followed by one non-empty component. */
static bool one_below(const char *name, const char *pre, size_t plen)
{
    return strncmp(name, pre, plen) == 0 && name[plen] != '\0' && strchr(name + plen, '/') == NULL;
}

/* "'x' (global)" or "'x' of pid 12", like who(). */
static const char *flat_who(int pid, bool global, const char *path, char *buf, size_t len)
{
    if (global)
        snprintf(buf, len, "'%s' (global)", path);
    else
        snprintf(buf, len, "'%s' of pid %d", path, pid);
    return buf;
}

static uint64_t fmix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

/* Node refs (global index, or n_globals + process node index) by guid: open addressing over a
 * dense array of the guids. */
typedef struct gtab {
    uint32_t *slots; /* ref + 1; 0 is empty */
    uint64_t *guid;  /* per ref */
    size_t mask;
} gtab;

/* Inserts guid -> ref; false when the guid is there already. */
static bool gtab_put(gtab *t, uint64_t guid, uint32_t ref)
{
    t->guid[ref] = guid;
    size_t i = (size_t)fmix(guid) & t->mask;
    for (; t->slots[i] != 0; i = (i + 1) & t->mask)
        if (t->guid[t->slots[i] - 1] == guid)
            return false;
    t->slots[i] = ref + 1;
    return true;
}

/* Asks for guid's slot ahead of its gtab_put or gtab_get (a cache miss each otherwise). */
static void gtab_prefetch(const gtab *t, uint64_t guid)
{
    __builtin_prefetch(&t->slots[(size_t)fmix(guid) & t->mask]);
}

static uint32_t gtab_get(const gtab *t, uint64_t guid)
{
    size_t i = (size_t)fmix(guid) & t->mask;
    for (; t->slots[i] != 0; i = (i + 1) & t->mask)
        if (t->guid[t->slots[i] - 1] == guid)
            return t->slots[i] - 1;
    return NONE;
}

/* Slots of a name table for n names. */
static size_t names_cap(size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap <<= 1;
    return cap;
}

/* Whether the n names nodes[0..n) are all different. slots, hashes: scratch of names_cap(n) and
 * n elements. */
static bool names_unique(const st_node_t *nodes, size_t n, uint32_t *slots, uint64_t *hashes)
{
    size_t cap = names_cap(n), mask = cap - 1;
    memset(slots, 0, cap * sizeof(*slots));
    for (size_t k = 0; k < n; k++) {
        uint64_t h = hashes[k] = fmix(st__name_hash(nodes[k].name, strlen(nodes[k].name)));
        size_t i = (size_t)h & mask;
        for (; slots[i] != 0; i = (i + 1) & mask)
            if (hashes[slots[i] - 1] == h && strcmp(nodes[slots[i] - 1].name, nodes[k].name) == 0)
                return false;
        slots[i] = (uint32_t)k + 1;
    }
    return true;
}

static int cmp_int_asc(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* Checks the shape and links holders to their global nodes. 1: flat, 0: not, or -ENOMEM. */
static int flat_link(flat *f)
{
    const st_global_dump_t *d = f->dump;
    size_t ng = d->n_globals, np = 0;
    bool aligned = true; /* edge k of every process is its node k's (as the builders add them) */
    int rc = -ENOMEM;
    int *pids = NULL, *imp = NULL;
    gtab gt = {0};
    uint32_t *fill = NULL, *esrc = NULL, *nslots = NULL;
    uint64_t *nhash = NULL;
    for (size_t p = 0; p < d->n_procs; p++) {
        const st_process_dump_t *proc = &d->procs[p];
        if (proc->pid == 0 || proc->n_edges != proc->n_nodes)
            return 0;
        np += proc->n_nodes;
        for (size_t k = 0; k < proc->n_edges && aligned; k++)
            aligned = proc->edges[k].source == proc->nodes[k].guid;
    }
    if (ng + np >= NONE / 2)
        return 0;
    if ((pids = malloc((d->n_procs + 1) * sizeof(*pids))) == NULL ||
        (f->base = malloc((d->n_procs + 1) * sizeof(*f->base))) == NULL)
        goto out;
    for (size_t p = 0; p < d->n_procs; p++) {
        pids[p] = d->procs[p].pid;
        f->base[p] = p == 0 ? 0 : f->base[p - 1] + d->procs[p - 1].n_nodes;
    }
    f->base[d->n_procs] = np;
    if (d->n_procs > 1)
        qsort(pids, d->n_procs, sizeof(*pids), cmp_int_asc);
    rc = 0;
    for (size_t p = 1; p < d->n_procs; p++)
        if (pids[p] == pids[p - 1])
            goto out;
    rc = -ENOMEM;
    size_t cap = 16;
    while (cap < 2 * (ng + np))
        cap <<= 1;
    gt.mask = cap - 1;
    if ((gt.slots = big_alloc(cap * sizeof(*gt.slots))) == NULL ||
        (gt.guid = big_alloc((ng + np + 1) * sizeof(*gt.guid))) == NULL)
        goto out;
    memset(gt.slots, 0, cap * sizeof(*gt.slots));
    rc = 0;
    size_t most = ng; /* the most nodes of one graph */
    for (size_t i = 0; i < ng; i++) {
        const st_node_t *n = &d->globals[i];
        if (i + 8 < ng)
            gtab_prefetch(&gt, d->globals[i + 8].guid);
        if (n->weak || n->guid == 0 || !one_below(n->name, "global/", 7) ||
            !gtab_put(&gt, n->guid, (uint32_t)i))
            goto out;
    }
    static const char sm[] = "shared_memory/";
    for (size_t p = 0; p < d->n_procs; p++) {
        if (d->procs[p].n_nodes > most)
            most = d->procs[p].n_nodes;
        for (size_t i = 0; i < d->procs[p].n_nodes; i++) {
            const st_node_t *n = &d->procs[p].nodes[i];
            if (i + 8 < d->procs[p].n_nodes)
                gtab_prefetch(&gt, d->procs[p].nodes[i + 8].guid);
            if (n->weak || n->guid == 0 || !one_below(n->name, sm, sizeof(sm) - 1) ||
                !gtab_put(&gt, n->guid, (uint32_t)(ng + f->base[p] + i)))
                goto out;
        }
    }
    /* names: unique within each graph. The model knows for the dumps it built (canonical global
     * names, which unique guids keep apart; its index of each process's names); else a small
     * table per graph, which stays in cache. */
    for (size_t gi = 0; gi <= d->n_procs; gi++) {
        const st_node_t *nodes = gi == 0 ? d->globals : d->procs[gi - 1].nodes;
        size_t n = gi == 0 ? ng : d->procs[gi - 1].n_nodes;
        int known =
            gi == 0 ? st__dump_names_canonical(d) : st__process_names_unique(&d->procs[gi - 1]);
        if (known == 0 && gi > 0)
            goto out; /* two nodes of a process share a name */
        if (known == 1)
            continue;
        rc = -ENOMEM;
        if (nslots == NULL && ((nslots = malloc(names_cap(most) * sizeof(*nslots))) == NULL ||
                               (nhash = malloc((most + 1) * sizeof(*nhash))) == NULL))
            goto out;
        rc = 0;
        if (!names_unique(nodes, n, nslots, nhash))
            goto out;
    }
    rc = -ENOMEM;
    f->g = calloc(ng + 1, sizeof(*f->g));
    f->h = big_alloc((np + 1) * sizeof(*f->h));
    f->hof = malloc((np + 1) * sizeof(*f->hof)); /* first each node's target, then its holder */
    fill = calloc(ng + 1, sizeof(*fill));
    if (!aligned) { /* each edge's source node; each node's importance */
        esrc = malloc((np + 1) * sizeof(*esrc));
        imp = malloc((np + 1) * sizeof(*imp));
    }
    if (f->g == NULL || f->h == NULL || f->hof == NULL || fill == NULL ||
        (!aligned && (esrc == NULL || imp == NULL)))
        goto out;
    rc = 0;
    if (!aligned)
        memset(f->hof, 0xff, (np + 1) * sizeof(*f->hof));
    for (size_t p = 0; p < d->n_procs; p++) {
        const st_process_dump_t *proc = &d->procs[p];
        for (size_t k = 0; k < proc->n_edges; k++) {
            const st_edge_t *e = &proc->edges[k];
            if (k + 8 < proc->n_edges)
                gtab_prefetch(&gt, proc->edges[k + 8].target);
            uint32_t t = gtab_get(&gt, e->target), s = (uint32_t)(f->base[p] + k);
            if (t == NONE || t >= ng)
                goto out; /* not a global target */
            if (!aligned) {
                s = gtab_get(&gt, e->source);
                if (s == NONE || s < ng + f->base[p] || s >= ng + f->base[p + 1])
                    goto out; /* not a node of this process */
                s -= (uint32_t)ng;
                if (f->hof[s] != NONE)
                    goto out; /* a second edge */
                esrc[f->base[p] + k] = s;
                imp[s] = e->importance;
            }
            f->hof[s] = t;
            f->g[t].count++;
        }
    }
    /* n_edges == n_nodes and no source twice: every holder has its edge */
    uint32_t at = 0;
    for (size_t i = 0; i < ng; i++) {
        f->g[i].first = at;
        at += f->g[i].count;
    }
    for (size_t p = 0; p < d->n_procs; p++)
        for (size_t k = 0; k < d->procs[p].n_edges; k++) {
            uint32_t s = aligned ? (uint32_t)(f->base[p] + k) : esrc[f->base[p] + k];
            uint32_t t = f->hof[s], pos = f->g[t].first + fill[t]++;
            f->h[pos] = (fholder){.proc = (uint32_t)p,
                                  .node = (uint32_t)(s - f->base[p]),
                                  .target = t,
                                  .importance = aligned ? d->procs[p].edges[k].importance : imp[s],
                                  .owning = 1.0L};
            f->hof[s] = pos;
        }
    f->n_h = np;
    rc = 1;
out:
    free(pids);
    free(gt.slots);
    free(gt.guid);
    free(fill);
    free(esrc);
    free(imp);
    free(nslots);
    free(nhash);
    return rc;
}

size_t st__graph_links_taken;

/* flat_given's holders of the global nodes [from, to), grouped by global node, each group in
 * process order. */
/* Per global node, while its holders are placed: where the next one goes, and the process of
 * the last one placed + 1 (0: none yet). One small entry read and written per holder, in an
 * array a quarter of fglobal's size: the holders come in process order, their global nodes in
 * random order, and at 500 clients fglobal's array is far bigger than the caches. */
typedef struct given_cursor {
    uint32_t pos, last;
} given_cursor;

typedef struct given_job {
    flat *f;
    given_cursor *cur;
    uint32_t from, to;
    bool twice; /* a process holds one of them twice */
} given_job;

static void *given_main(void *arg)
{
    given_job *j = arg;
    flat *f = j->f;
    const st_global_dump_t *d = f->dump;
    const st_graph_links_t *l = f->given;
    for (size_t p = 0; p < d->n_procs && !j->twice; p++)
        for (size_t k = 0; k < d->procs[p].n_nodes; k++) {
            size_t s = f->base[p] + k;
            uint32_t t = l->target[s];
            if (t < j->from || t >= j->to)
                continue;
            given_cursor *c = &j->cur[t];
            if (c->last == p + 1) {
                j->twice = true;
                break;
            }
            c->last = (uint32_t)p + 1;
            uint32_t pos = c->pos++;
            f->h[pos] = (fholder){.proc = (uint32_t)p,
                                  .node = (uint32_t)k,
                                  .target = t,
                                  .importance = d->procs[p].edges[k].importance,
                                  .has_size = 1,
                                  .size = l->size[s],
                                  .owning = 1.0L};
            f->hof[s] = pos;
        }
    return NULL;
}

/* flat_link's outcome from links the builder gives (st_graph_links_t): what it cannot check
 * cheaply is trusted. 1: flat, 0: the links do not fit (f->given cleared), or -ENOMEM. */
static int flat_given(flat *f)
{
    const st_global_dump_t *d = f->dump;
    const st_graph_links_t *l = f->given;
    size_t ng = d->n_globals, np = 0;
    int rc = 0;
    given_cursor *cur = NULL;
    for (size_t p = 0; p < d->n_procs; p++) {
        const st_process_dump_t *proc = &d->procs[p];
        /* sorted unique pids: the holders of one global node, in process order, have distinct
         * pids, so no order below ever compares their names */
        if (proc->pid == 0 || (p > 0 && proc->pid <= d->procs[p - 1].pid) ||
            proc->n_edges != proc->n_nodes)
            goto out;
        for (size_t k = 0; k < proc->n_edges; k++)
            if (proc->edges[k].source != proc->nodes[k].guid || proc->nodes[k].weak)
                goto out;
        np += proc->n_nodes;
    }
    for (size_t i = 0; i < ng; i++)
        if (d->globals[i].weak)
            goto out;
    if (ng + np >= NONE / 2)
        goto out;
    rc = -ENOMEM;
    if ((f->base = malloc((d->n_procs + 1) * sizeof(*f->base))) == NULL ||
        (f->g = calloc(ng + 1, sizeof(*f->g))) == NULL ||
        (f->h = big_alloc((np + 1) * sizeof(*f->h))) == NULL ||
        (f->hof = malloc((np + 1) * sizeof(*f->hof))) == NULL ||
        (cur = malloc((ng + 1) * sizeof(*cur))) == NULL)
        goto out;
    rc = 0;
    for (size_t p = 0; p < d->n_procs; p++)
        f->base[p] = p == 0 ? 0 : f->base[p - 1] + d->procs[p - 1].n_nodes;
    f->base[d->n_procs] = np;
    for (size_t s = 0; s < np; s++) {
        if (l->target[s] >= ng)
            goto out;
        f->g[l->target[s]].count++;
    }
    uint32_t at = 0;
    for (size_t i = 0; i < ng; i++) {
        f->g[i].first = at;
        cur[i] = (given_cursor){at, 0};
        at += f->g[i].count;
    }
    /* the holders of the first and of the second half of the global nodes: apart, so on two
     * threads for a big dump */
    given_job lo = {f, cur, 0, (uint32_t)(ng / 2), false},
              hi = {f, cur, (uint32_t)(ng / 2), (uint32_t)ng, false};
    pthread_t th;
    bool threaded =
        ng >= st__graph_flat_split_min && pthread_create(&th, NULL, given_main, &hi) == 0;
    given_main(&lo);
    if (threaded)
        pthread_join(th, NULL);
    else
        given_main(&hi);
    if (lo.twice || hi.twice)
        goto out; /* a process holding one global node twice */
    f->n_h = np;
    st__graph_links_taken++;
    rc = 1;
out:
    free(cur);
    if (rc != 1) {
        free(f->base);
        free(f->g);
        free(f->h);
        free(f->hof);
        f->base = NULL;
        f->g = NULL;
        f->h = NULL;
        f->hof = NULL;
        f->given = NULL;
    }
    return rc;
}

static const st_node_t *holder_node(const flat *f, const fholder *h)
{
    return &f->dump->procs[h->proc].nodes[h->node];
}

/* A holder's exact effective size (pass 9): its size times pass 8's cumulative coefficients,
 * which on this shape are pass 7's times 1. */
static long double holder_exact(const fholder *h)
{
    return (long double)h->size * (h->owning * 1.0L) * 1.0L;
}

static long double global_exact(const fglobal *x)
{
    return (long double)x->size * 1.0L * (x->owned * 1.0L);
}

/* quantise(size x coef, size), the quantised exact value of a flat node, without long double
 * arithmetic for the coefficients 1 and 0 (a sole owner, an outranked one, an object its owners
 * cover: the usual ones), where it is size and 0 exactly. */
static q128 quantise_flat(uint64_t size, long double coef)
{
    if (coef == 1.0L)
        return (q128)size << QSHIFT;
    if (coef == 0.0L)
        return 0;
    return quantise((long double)size * (coef * 1.0L) * 1.0L, size);
}

/* st_node_scalar(n, "size"): the model's builders put it first. */
static bool node_size(const st_node_t *n, uint64_t *value)
{
    if (n->n_entries > 0 && n->entries[0].type == ST_ENTRY_SCALAR &&
        strcmp(n->entries[0].name, "size") == 0) {
        *value = n->entries[0].value;
        return true;
    }
    return st_node_scalar(n, "size", value);
}

/* Asks for holder j's node ahead of its use (f->h is in global order, its nodes are all over the
 * process dumps: a cache miss each otherwise), and for the entries of holder j - 8's, whose node
 * was asked for 8 holders before; only holders before end (another thread's are written). */
static void flat_prefetch(const flat *f, size_t j, size_t end)
{
    if (j < end)
        __builtin_prefetch(holder_node(f, &f->h[j]));
    if (j >= 8 && j - 8 < end)
        __builtin_prefetch(holder_node(f, &f->h[j - 8])->entries);
}

/* Pass 7 on the flat shape for the global node x (with a size and holders): its holders'
 * coefficients and its own. keys, cap: scratch, grown here. */
static int flat_owners(flat *f, fglobal *x, owner_key **keys, size_t *cap)
{
    const st_global_dump_t *d = f->dump;
    if (x->count > *cap) {
        owner_key *nk = realloc(*keys, x->count * 2 * sizeof(*nk));
        if (nk == NULL)
            return -ENOMEM;
        *keys = nk;
        *cap = x->count * 2;
    }
    owner_key *k = *keys;
    size_t n = 0;
    for (uint32_t j = x->first; j < x->first + x->count; j++) {
        const fholder *h = &f->h[j];
        /* given links: distinct pids (flat_given), so the path is never compared */
        k[n++] = (owner_key){h->importance, h->has_size ? h->size : 0, d->procs[h->proc].pid,
                             f->given ? "" : holder_node(f, h)->name, &f->h[j].owning};
    }
    /* (pid, path) is unique among them: any sort gives the general pass's order */
    if (n > 8) {
        qsort(k, n, sizeof(*k), cmp_owner);
    } else {
        for (size_t j = 1; j < n; j++) {
            owner_key y = k[j];
            size_t m = j;
            for (; m > 0 && cmp_owner(&k[m - 1], &y) > 0; m--)
                k[m] = k[m - 1];
            k[m] = y;
        }
    }
    share_owners(k, n, x->size, &x->owned); /* a leaf: its sub-sizes are its size */
    return 0;
}

/* Pass 9's first part on the flat shape for the global node x: the quantised totals of its flow
 * subtree (x->q, its holders' q); *n_top and *max_kids count the top level's candidates and the
 * most candidates of one object. */
static void eff_total(flat *f, fglobal *x, size_t *n_top, size_t *max_kids)
{
    if (!x->has_size)
        return;
    q128 q = snap(quantise_flat(x->size, x->owned), 2);
    uint32_t kids = 0;
    for (uint32_t j = x->first; j < x->first + x->count; j++) {
        fholder *h = &f->h[j];
        if (!h->has_size)
            continue;
        h->q = snap(quantise_flat(h->size, h->owning), 2);
        q += h->q;
        kids++;
    }
    if (kids > 0)
        q = snap(q, (q128)2 * (1 + kids) + (q >> 58));
    x->q = q;
    (*n_top)++;
    if (kids + 1 > *max_kids)
        *max_kids = kids + 1;
}

size_t st__graph_flat_split_min = 16384;

/* Passes 4 (sizes only), 5, 7 and 8 and pass 9's totals on the flat shape, for the global nodes
 * [from, to) and their holders; warnings go to w, counts as eff_total's. Global nodes are
 * independent here: two ranges may run at once. */
static int flat_sizes_range(flat *f, size_t from, size_t to, graph *w, size_t *n_top,
                            size_t *max_kids)
{
    const st_global_dump_t *d = f->dump;
    char a[320], b[320];
    owner_key *keys = NULL;
    size_t cap = 0;
    size_t end = to == 0 ? 0 : (size_t)f->g[to - 1].first + f->g[to - 1].count;
    for (size_t i = from; i < to; i++) {
        fglobal *x = &f->g[i];
        const st_node_t *gn = &d->globals[i];
        uint64_t own = f->given ? f->given->glob_size[i] : 0;
        bool has_own = f->given ? true : node_size(gn, &own);
        x->owned = 1.0L;
        bool has_maxo = false;
        uint64_t maxo = 0;
        uint32_t maxo_h = NONE;
        for (uint32_t j = x->first; j < x->first + x->count; j++) {
            fholder *h = &f->h[j];
            uint64_t s = h->size;
            bool has = true;
            if (f->given == NULL) {
                flat_prefetch(f, (size_t)j + 16, end);
                has = node_size(holder_node(f, h), &s);
            }
            if (!has && has_own) { /* propagate_sizes */
                s = own;
                has = true;
            }
            h->has_size = has;
            h->size = has ? s : 0;
            /* the general pass walks the owners backwards and keeps the first largest */
            if (has && (!has_maxo || h->size >= maxo)) {
                maxo = h->size;
                maxo_h = j;
                has_maxo = true;
            }
        }
        x->has_size = has_own || has_maxo;
        uint64_t size = has_own ? own : 0;
        if (has_maxo && maxo > size) {
            if (has_own) {
                const fholder *mh = &f->h[maxo_h];
                warn(
                    w,
                    "%s reports size %" PRIu64 " but its owner %s has size %" PRIu64
                    "; using the larger size",
                    flat_who(0, true, gn->name, a, sizeof(a)), own,
                    flat_who(d->procs[mh->proc].pid, false, holder_node(f, mh)->name, b, sizeof(b)),
                    maxo);
            }
            size = maxo;
        }
        x->size = x->has_size ? size : 0;
        if (x->has_size && x->count > 0 && flat_owners(f, x, &keys, &cap) < 0) {
            free(keys);
            return -ENOMEM;
        }
        eff_total(f, x, n_top, max_kids); /* pass 9's first part, while x is at hand */
    }
    free(keys);
    return w->err;
}

typedef struct sizes_job {
    flat *f;
    size_t from, to;
    graph w; /* only its warnings and err */
    size_t n_top, max_kids;
    int rc;
} sizes_job;

static void *sizes_main(void *arg)
{
    sizes_job *j = arg;
    j->rc = flat_sizes_range(j->f, j->from, j->to, &j->w, &j->n_top, &j->max_kids);
    return NULL;
}

/* flat_sizes_range of every global node: a big dump's halves on two threads, the second half's
 * warnings after the first's (the order of one thread). */
static int flat_sizes(flat *f)
{
    size_t ng = f->dump->n_globals;
    if (ng < st__graph_flat_split_min || ng < 2)
        return flat_sizes_range(f, 0, ng, &f->w, &f->n_top, &f->max_kids);
    sizes_job j = {.f = f, .from = ng / 2, .to = ng};
    pthread_t t;
    bool threaded = pthread_create(&t, NULL, sizes_main, &j) == 0;
    int rc = flat_sizes_range(f, 0, ng / 2, &f->w, &f->n_top, &f->max_kids);
    if (threaded)
        pthread_join(t, NULL);
    else
        sizes_main(&j);
    for (size_t i = 0; i < j.w.n_warnings; i++) {
        if (rc == 0 && f->w.n_warnings == f->w.cap_warnings) {
            size_t cap = f->w.cap_warnings ? f->w.cap_warnings * 2 : 16;
            char **nw = realloc(f->w.warnings, cap * sizeof(*nw));
            if (nw == NULL) {
                rc = f->w.err = -ENOMEM;
            } else {
                f->w.warnings = nw;
                f->w.cap_warnings = cap;
            }
        }
        if (rc == 0)
            f->w.warnings[f->w.n_warnings++] = j.w.warnings[i];
        else
            free(j.w.warnings[i]);
    }
    free(j.w.warnings);
    if (rc == 0 && j.rc < 0)
        rc = f->w.err = j.rc;
    f->n_top += j.n_top;
    if (j.max_kids > f->max_kids)
        f->max_kids = j.max_kids;
    return rc;
}

/* Pass 9's second part for the global nodes [from, to), after the top level: each object's bytes
 * among itself and its holders (c: scratch of max_kids). Global nodes are independent here: two
 * ranges may run at once. */
typedef struct eff_job {
    flat *f;
    size_t from, to;
    cand *c;
    int rc;
} eff_job;

static void eff_shares(eff_job *jb)
{
    flat *f = jb->f;
    const st_global_dump_t *d = f->dump;
    cand *c = jb->c;
    for (size_t i = jb->from; i < jb->to; i++) {
        fglobal *x = &f->g[i];
        if (!x->has_size)
            continue;
        size_t n = 0;
        c[n++] = (cand){snap(quantise_flat(x->size, x->owned), 2), 0, d->globals[i].name, 0};
        for (uint32_t k = x->first; k < x->first + x->count; k++) {
            const fholder *h = &f->h[k];
            if (h->has_size)
                c[n++] = (cand){h->q, d->procs[h->proc].pid,
                                f->given ? "" : holder_node(f, h)->name, 0}; /* as keys above */
        }
        if (n == 1)
            continue;
        if (apportion(x->eff, c, n) < 0) {
            jb->rc = -ENOMEM;
            return;
        }
        n = 0;
        x->eff = c[n++].out;
        for (uint32_t k = x->first; k < x->first + x->count; k++)
            if (f->h[k].has_size)
                f->h[k].eff = c[n++].out;
    }
}

static void *eff_main(void *arg)
{
    eff_shares(arg);
    return NULL;
}

/* eff_shares over every global node: a big dump's halves on two threads. */
static int flat_effective_shares(flat *f, eff_job *lo, eff_job *hi)
{
    size_t ng = f->dump->n_globals;
    bool split = ng >= st__graph_flat_split_min && ng >= 2;
    lo->f = hi->f = f;
    lo->from = 0;
    lo->to = hi->from = split ? ng / 2 : ng;
    hi->to = ng;
    pthread_t t;
    bool threaded = split && pthread_create(&t, NULL, eff_main, hi) == 0;
    eff_shares(lo);
    if (threaded)
        pthread_join(t, NULL);
    else
        eff_shares(hi);
    return lo->rc < 0 ? lo->rc : hi->rc;
}

/* Pass 9 on the flat shape. */
static int flat_effective(flat *f)
{
    const st_global_dump_t *d = f->dump;
    size_t ng = d->n_globals;
    eff_job lo = {0}, hi = {0};
    size_t n_top = f->n_top + d->n_procs + 1, max_kids = f->max_kids; /* from eff_total */
    cand *c = malloc((n_top > max_kids ? n_top : max_kids) * sizeof(*c) + sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    /* top level, in the order the general pass lists it: global nodes, then each process's
     * "shared_memory" backwards, then "global" */
    q128 total = 0;
    size_t n = 0;
    for (size_t i = 0; i < ng; i++)
        if (f->g[i].has_size) {
            total += f->g[i].q;
            c[n++] = (cand){f->g[i].q, 0, d->globals[i].name, 0};
        }
    for (size_t p = d->n_procs; p-- > 0;)
        if (d->procs[p].n_nodes > 0)
            c[n++] = (cand){0, d->procs[p].pid, "shared_memory", 0};
    if (ng > 0)
        c[n++] = (cand){0, 0, "global", 0};
    if (apportion((uint64_t)((total + QUNIT / 2) >> QSHIFT), c, n) < 0) {
        free(c);
        return -ENOMEM;
    }
    n = 0;
    for (size_t i = 0; i < ng; i++)
        if (f->g[i].has_size)
            f->g[i].eff = c[n++].out;
    /* each object's bytes among itself and its holders (c is the first half's scratch) */
    cand *c2 = malloc((max_kids + 1) * sizeof(*c2));
    if (c2 == NULL) {
        free(c);
        return -ENOMEM;
    }
    lo.c = c;
    hi.c = c2;
    int rc = flat_effective_shares(f, &lo, &hi);
    free(c);
    free(c2);
    return rc;
}

/* The implicit inner nodes ("global", each process's "shared_memory"): Σ of their children, exact
 * values summed in the general pass's order (the children list is newest first). Only a result
 * lists them: the annotation has no node to write them to. */
static int flat_inner(flat *f)
{
    const st_global_dump_t *d = f->dump;
    size_t ng = d->n_globals;
    if ((f->inner = calloc(d->n_procs + 1, sizeof(*f->inner))) == NULL)
        return -ENOMEM;
    for (size_t i = ng; i-- > 0;) {
        const fglobal *x = &f->g[i];
        if (!x->has_size)
            continue;
        f->top.size += x->size;
        f->top.eff += x->eff;
        f->top.exact += global_exact(x);
    }
    for (size_t p = 0; p < d->n_procs; p++) {
        finner *in = &f->inner[p];
        for (size_t i = d->procs[p].n_nodes; i-- > 0;) {
            const fholder *h = &f->h[f->hof[f->base[p] + i]];
            if (!h->has_size)
                continue;
            in->size += h->size;
            in->eff += h->eff;
            in->exact += holder_exact(h);
        }
    }
    return 0;
}

/* Checks the shape and computes every size. 1: flat (f filled; flat_free it), 0: not flat (f
 * empty), or -ENOMEM. */
static int flat_build(const st_global_dump_t *dump, const st_graph_links_t *given, flat *f)
{
    memset(f, 0, sizeof(*f));
    f->dump = dump;
    f->given = given;
    int rc = given != NULL ? flat_given(f) : 0;
    if (rc == 0)
        rc = flat_link(f);
    if (rc == 1 && (rc = flat_sizes(f)) == 0 && (rc = flat_effective(f)) == 0)
        return 1;
    flat_free(f);
    return rc;
}

/* Whether entry e of n is one pass 4 lists: not "size" or "effective_size", the first of its
 * name. */
static bool own_entry(const st_node_t *n, size_t e)
{
    const char *name = n->entries[e].name;
    if (skip_entry(name))
        return false;
    for (size_t k = 0; k < e; k++)
        if (n->entries[k].name == name ||
            (n->entries[k].name[0] == name[0] && strcmp(n->entries[k].name, name) == 0))
            return false;
    return true;
}

/* Whether n has an entry pass 4 lists called name (a string one counts). */
static bool has_own_entry(const st_node_t *n, const char *name)
{
    for (size_t e = 0; e < n->n_entries; e++)
        if ((n->entries[e].name == name ||
             (n->entries[e].name[0] == name[0] && strcmp(n->entries[e].name, name) == 0)) &&
            !skip_entry(name))
            return true;
    return false;
}

typedef struct fents {
    st_graph_entry_t *e;
    size_t n, cap;
} fents;

static int fents_add(fents *fe, st_graph_entry_t x)
{
    if (grow((void **)&fe->e, &fe->cap, fe->n + 1, sizeof(*fe->e)) < 0)
        return -ENOMEM;
    fe->e[fe->n++] = x;
    return 0;
}

/* A node's own scalar entries (pass 4). */
static int fents_own(fents *fe, const st_node_t *n)
{
    for (size_t e = 0; e < n->n_entries; e++) {
        const st_entry_t *en = &n->entries[e];
        if (en->type == ST_ENTRY_SCALAR && own_entry(n, e) &&
            fents_add(fe, (st_graph_entry_t){en->name, en->units, en->value, ST_GRAPH_ENTRY_OWN}) <
                0)
            return -ENOMEM;
    }
    return 0;
}

/* An implicit node's entries: summed over its children, visited newest first. */
static int fents_sum(fents *fe, size_t start, const st_node_t *n)
{
    for (size_t e = 0; e < n->n_entries; e++) {
        const st_entry_t *en = &n->entries[e];
        if (en->type != ST_ENTRY_SCALAR || !own_entry(n, e))
            continue;
        st_graph_entry_t *have = NULL;
        for (size_t k = start; k < fe->n && have == NULL; k++)
            if (fe->e[k].name == en->name ||
                (fe->e[k].name[0] == en->name[0] && strcmp(fe->e[k].name, en->name) == 0))
                have = &fe->e[k];
        if (have == NULL) {
            if (fents_add(fe, (st_graph_entry_t){en->name, en->units, en->value,
                                                 ST_GRAPH_ENTRY_AGGREGATED}) < 0)
                return -ENOMEM;
        } else if (__builtin_add_overflow(have->value, en->value, &have->value)) {
            have->value = UINT64_MAX;
        }
    }
    return 0;
}

/* st_graph_process's result from a flat computation: the same nodes, values, entries and
 * warnings, sorted by (pid, path). */
static int flat_result(flat *f, st_graph_result_t **out)
{
    const st_global_dump_t *d = f->dump;
    size_t ng = d->n_globals, n_nodes = ng + (ng > 0) + f->n_h;
    for (size_t p = 0; p < d->n_procs; p++)
        n_nodes += d->procs[p].n_nodes > 0;
    int rc = flat_inner(f);
    if (rc < 0)
        return rc;
    rc = -ENOMEM;
    fents fe = {0};
    chunk *strings = NULL;
    size_t *goff = malloc((ng + 1) * sizeof(*goff));      /* per global: its entries' start */
    size_t *eoff = malloc((n_nodes + 1) * sizeof(*eoff)); /* per result node */
    graph_key *gk = calloc(d->n_procs + 1, sizeof(*gk));
    sort_item *items = big_alloc((ng + f->n_h + 1) * sizeof(*items));
    st_graph_result_t *r = calloc(1, sizeof(*r));
    if (goff == NULL || eoff == NULL || gk == NULL || items == NULL || r == NULL ||
        (r->nodes = big_alloc((n_nodes + 1) * sizeof(*r->nodes))) == NULL)
        goto out;
    /* the global nodes' entries first: holders take what they lack from them */
    for (size_t i = 0; i < ng; i++) {
        goff[i] = fe.n;
        if (fents_own(&fe, &d->globals[i]) < 0)
            goto out;
    }
    goff[ng] = fe.n;
    for (uint32_t gi = 0; gi <= d->n_procs; gi++)
        gk[gi] = (graph_key){gi == 0 ? 0 : d->procs[gi - 1].pid, gi};
    qsort(gk, d->n_procs + 1, sizeof(*gk), cmp_graph_key);
    size_t at = 0;
    for (size_t j = 0; j <= d->n_procs; j++) {
        uint32_t gi = gk[j].gi;
        const st_process_dump_t *proc = gi > 0 ? &d->procs[gi - 1] : NULL;
        size_t n = 0;
        if (proc == NULL ? ng == 0 : proc->n_nodes == 0)
            continue;
        /* the implicit parent first ("global" < "global/..."), its entries summed over its
         * children newest first */
        const char *ipath = proc == NULL ? "global" : "shared_memory";
        char *path = arena_alloc(&strings, strlen(ipath) + 1);
        if (path == NULL)
            goto out;
        strcpy(path, ipath);
        eoff[at] = fe.n;
        const finner *in = proc == NULL ? &f->top : &f->inner[gi - 1];
        size_t kids = proc == NULL ? ng : proc->n_nodes;
        for (size_t i = kids; i-- > 0;)
            if (fents_sum(&fe, eoff[at], proc == NULL ? &d->globals[i] : &proc->nodes[i]) < 0)
                goto out;
        r->nodes[at++] = (st_graph_node_t){.pid = proc == NULL ? 0 : proc->pid,
                                           .path = path,
                                           .has_size = true,
                                           .size = in->size,
                                           .effective_size = in->eff,
                                           .effective_exact = in->exact};
        for (size_t i = 0; i < kids; i++)
            items[n++] =
                (sort_item){proc == NULL ? d->globals[i].name : proc->nodes[i].name, (uint32_t)i};
        qsort(items, n, sizeof(*items), cmp_item);
        for (size_t k = 0; k < n; k++) {
            uint32_t i = items[k].idx;
            const st_node_t *mn;
            eoff[at] = fe.n;
            if (proc == NULL) {
                const fglobal *x = &f->g[i];
                mn = &d->globals[i];
                r->nodes[at] =
                    (st_graph_node_t){.pid = 0,
                                      .guid = mn->guid,
                                      .is_explicit = true,
                                      .has_size = x->has_size,
                                      .size = x->size,
                                      .effective_size = x->eff,
                                      .effective_exact = x->has_size ? global_exact(x) : 0};
                for (size_t e = goff[i]; e < goff[i + 1]; e++)
                    if (fents_add(&fe, fe.e[e]) < 0)
                        goto out;
            } else {
                const fholder *h = &f->h[f->hof[f->base[gi - 1] + i]];
                mn = &proc->nodes[i];
                r->nodes[at] =
                    (st_graph_node_t){.pid = proc->pid,
                                      .guid = mn->guid,
                                      .is_explicit = true,
                                      .has_size = h->has_size,
                                      .size = h->size,
                                      .effective_size = h->eff,
                                      .effective_exact = h->has_size ? holder_exact(h) : 0,
                                      .owns = d->globals[h->target].guid,
                                      .importance = h->importance};
                if (fents_own(&fe, mn) < 0)
                    goto out;
                for (size_t e = goff[h->target]; e < goff[h->target + 1]; e++) {
                    st_graph_entry_t t = fe.e[e];
                    t.origin = ST_GRAPH_ENTRY_PROPAGATED;
                    if (!has_own_entry(mn, t.name) && fents_add(&fe, t) < 0)
                        goto out;
                }
            }
            size_t len = strlen(mn->name) + 1;
            if ((path = arena_alloc(&strings, len)) == NULL)
                goto out;
            memcpy(path, mn->name, len);
            r->nodes[at++].path = path;
        }
    }
    for (size_t k = 0; k < at; k++) {
        size_t end = k + 1 < at ? eoff[k + 1] : fe.n;
        r->nodes[k].entries = end > eoff[k] ? fe.e + eoff[k] : NULL;
        r->nodes[k].n_entries = end - eoff[k];
    }
    r->n_nodes = at;
    r->entries = fe.e;
    r->n_entries = fe.n;
    r->strings = strings;
    r->warnings = f->w.warnings;
    r->n_warnings = f->w.n_warnings;
    f->w.warnings = NULL;
    f->w.n_warnings = 0;
    fe.e = NULL;
    strings = NULL;
    *out = r;
    r = NULL;
    rc = 0;
out:
    if (r != NULL)
        free(r->nodes);
    free(r);
    free(fe.e);
    arena_free(strings);
    free(goff);
    free(eoff);
    free(gk);
    free(items);
    return rc;
}

/* st_graph_annotate of a flat computation: every node's entry from its own index. One job
 * writes the process dumps [from, to) and, with globals, the global nodes. */
typedef struct annotate_job {
    st_global_dump_t *dump;
    const flat *f;
    size_t from, to;
    bool globals;
    int rc;
} annotate_job;

static void flat_annotate_node(st_node_t *n, bool has_size, uint64_t eff, int *rc)
{
    if (st_node_set_effective_size(n, has_size, eff) < 0)
        *rc = -ENOMEM;
}

static void *annotate_main(void *arg)
{
    annotate_job *j = arg;
    const flat *f = j->f;
    st_global_dump_t *d = j->dump;
    for (size_t i = 0; j->globals && i < d->n_globals && j->rc == 0; i++)
        flat_annotate_node(&d->globals[i], f->g[i].has_size, f->g[i].eff, &j->rc);
    for (size_t p = j->from; p < j->to && j->rc == 0; p++)
        for (size_t i = 0; i < d->procs[p].n_nodes && j->rc == 0; i++) {
            if (i + 8 < d->procs[p].n_nodes) /* holders in process order: all over f->h */
                __builtin_prefetch(&f->h[f->hof[f->base[p] + i + 8]]);
            const fholder *h = &f->h[f->hof[f->base[p] + i]];
            flat_annotate_node(&d->procs[p].nodes[i], h->has_size, h->eff, &j->rc);
        }
    return NULL;
}

/* Big dumps on two threads: the global nodes and the last process dumps on one, the first
 * process dumps on the other, as many nodes on each as whole process dumps allow. */
static int flat_annotate(st_global_dump_t *dump, const flat *f)
{
    size_t np = dump->n_procs, split = np;
    bool two = dump->n_globals >= st__graph_flat_split_min;
    if (two) { /* the first process dumps, up to half of all nodes */
        size_t half = (dump->n_globals + f->base[np]) / 2;
        for (split = 0; split < np && f->base[split + 1] <= half; split++)
            ;
    }
    annotate_job lo = {dump, f, 0, split, !two, 0}, hi = {dump, f, split, np, two, 0};
    pthread_t t;
    bool threaded = two && pthread_create(&t, NULL, annotate_main, &hi) == 0;
    annotate_main(&lo);
    if (threaded)
        pthread_join(t, NULL);
    else if (two)
        annotate_main(&hi);
    int rc = lo.rc < 0 ? lo.rc : hi.rc;
    if (rc < 0)
        return rc;
    return add_warnings(dump, f->w.warnings, f->w.n_warnings);
}

int st__graph_process_general(const st_global_dump_t *dump, st_graph_result_t **out)
{
    graph g = {.dump = dump};
    int rc = collect(&g);
    /* The indexes are done with: free them now so that later passes reuse the memory. */
    HASH_CLEAR(hh, g.by_path);
    arena_free(g.prefixes);
    g.prefixes = NULL;
    if (rc == 0)
        add_edges(&g);
    HASH_CLEAR(hh, g.by_guid);
    free(g.guids);
    g.guids = NULL;
    if (rc == 0)
        rc = g.err ? g.err : build_order(&g);
    if (rc == 0) {
        remove_weak(&g);
        rc = aggregate_numerics(&g);
    }
    if (rc == 0)
        rc = propagate_numerics(&g);
    if (rc == 0) {
        propagate_sizes(&g);
        rc = compute_sizes(&g);
    }
    if (rc == 0) {
        compute_sub_sizes(&g);
        rc = compute_coefficients(&g);
    }
    if (rc == 0) {
        compute_cumulative(&g);
        rc = compute_effective(&g);
    }
    if (rc == 0 && g.err)
        rc = g.err;
    if (rc == 0)
        rc = make_result(&g, out);
    HASH_CLEAR(hh, g.by_path);
    HASH_CLEAR(hh, g.by_guid);
    free(g.guids);
    arena_free(g.prefixes);
    for (size_t i = 0; i < g.n_warnings; i++)
        free(g.warnings[i]);
    free(g.warnings);
    arena_free(g.strings);
    free(g.v);
    free(g.gpid);
    free(g.roots);
    free(g.prefix_lens);
    free(g.order);
    free(g.kbuf);
    free(g.cands);
    free(g.reps);
    free(g.rep_head);
    free(g.rep_tail);
    free(g.aents);
    free(g.es);
    free(g.fents);
    return rc;
}

int st_graph_process(const st_global_dump_t *dump, st_graph_result_t **out)
{
    flat f;
    int rc = flat_build(dump, NULL, &f);
    if (rc == 0)
        return st__graph_process_general(dump, out);
    if (rc == 1)
        rc = flat_result(&f, out);
    flat_free(&f);
    return rc;
}

int st__graph_flat(const st_global_dump_t *dump)
{
    flat f;
    int rc = flat_build(dump, NULL, &f);
    flat_free(&f);
    return rc;
}

void st_graph_result_free(st_graph_result_t *result)
{
    if (result == NULL)
        return;
    for (size_t i = 0; i < result->n_warnings; i++)
        free(result->warnings[i]);
    free(result->warnings);
    free(result->nodes);
    free(result->entries);
    arena_free(result->strings);
    free(result);
}

const st_graph_node_t *st_graph_find(const st_graph_result_t *result, int pid, const char *path)
{
    size_t lo = 0, hi = result->n_nodes;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const st_graph_node_t *n = &result->nodes[mid];
        int c = n->pid != pid ? (n->pid < pid ? -1 : 1) : strcmp(n->path, path);
        if (c == 0)
            return n;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* ---- annotation ---- */

/* The result nodes of pid: [*lo, *hi) of the sorted result. */
static void pid_range(const st_graph_result_t *result, int pid, size_t *lo, size_t *hi)
{
    size_t a = 0, b = result->n_nodes;
    while (a < b) { /* first node with pid >= pid */
        size_t mid = a + (b - a) / 2;
        if (result->nodes[mid].pid < pid)
            a = mid + 1;
        else
            b = mid;
    }
    *lo = a;
    b = result->n_nodes;
    while (a < b) { /* first node with pid > pid */
        size_t mid = a + (b - a) / 2;
        if (result->nodes[mid].pid <= pid)
            a = mid + 1;
        else
            b = mid;
    }
    *hi = a;
}

/* st_graph_find within the range of one pid. */
static const st_graph_node_t *find_in(const st_graph_result_t *result, size_t lo, size_t hi,
                                      const char *path)
{
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(result->nodes[mid].path, path);
        if (c == 0)
            return &result->nodes[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* lo, hi: the result's range of the node's pid (0 for a global node). */
static int annotate_node(st_node_t *node, size_t lo, size_t hi, const st_graph_result_t *result)
{
    const st_graph_node_t *r = find_in(result, lo, hi, node->name);
    bool has = r != NULL && r->has_size;
    return st_node_set_effective_size(node, has, has ? r->effective_size : 0);
}

typedef struct seen {
    UT_hash_handle hh;
    const char *s;
} seen;

/* Appends each of warnings[0..n) that dump does not have yet (once). */
static int add_warnings(st_global_dump_t *dump, char *const *warnings, size_t n_new)
{
    int rc = 0;
    seen *set = NULL, *items = calloc(dump->n_warnings + n_new + 1, sizeof(*items));
    if (items == NULL)
        return -ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < dump->n_warnings; i++) {
        seen *s = NULL;
        HASH_FIND_STR(set, dump->warnings[i], s);
        if (s != NULL)
            continue;
        items[n].s = dump->warnings[i];
        HASH_ADD_KEYPTR(hh, set, items[n].s, strlen(items[n].s), &items[n]);
        n++;
    }
    for (size_t i = 0; i < n_new; i++) {
        seen *s = NULL;
        HASH_FIND_STR(set, warnings[i], s);
        if (s != NULL)
            continue;
        if ((rc = st_dump_add_warning(dump, "%s", warnings[i])) < 0)
            goto out;
        items[n].s = warnings[i];
        HASH_ADD_KEYPTR(hh, set, items[n].s, strlen(items[n].s), &items[n]);
        n++;
    }
out:
    HASH_CLEAR(hh, set);
    free(items);
    return rc;
}

int st_graph_annotate(st_global_dump_t *dump, const st_graph_result_t *result)
{
    int rc = 0;
    size_t glo, ghi, lo, hi;
    pid_range(result, 0, &glo, &ghi);
    for (size_t p = 0; p < dump->n_procs; p++) {
        const st_process_dump_t *proc = &dump->procs[p];
        pid_range(result, proc->pid, &lo, &hi);
        for (size_t i = 0; i < proc->n_nodes; i++) {
            st_node_t *n = &proc->nodes[i];
            bool global = strncmp(n->name, "global/", 7) == 0;
            if ((rc = annotate_node(n, global ? glo : lo, global ? ghi : hi, result)) < 0)
                return rc;
        }
    }
    for (size_t i = 0; i < dump->n_globals; i++)
        if ((rc = annotate_node(&dump->globals[i], glo, ghi, result)) < 0)
            return rc;
    return add_warnings(dump, result->warnings, result->n_warnings);
}

static int annotate(st_global_dump_t *dump, const st_graph_links_t *links)
{
    flat f;
    int rc = flat_build(dump, links, &f);
    if (rc == 1) {
        rc = flat_annotate(dump, &f);
        flat_free(&f);
        return rc;
    }
    if (rc < 0)
        return rc;
    st_graph_result_t *r = NULL;
    if ((rc = st__graph_process_general(dump, &r)) == 0)
        rc = st_graph_annotate(dump, r);
    st_graph_result_free(r);
    return rc;
}

int st_graph_annotate_dump(st_global_dump_t *dump)
{
    return annotate(dump, NULL);
}

int st_graph_annotate_links(st_global_dump_t *dump, const st_graph_links_t *links)
{
    return annotate(dump, links);
}

int st_graph_annotate_trace(st_trace_t *trace)
{
    for (size_t i = 0; i < trace->n_dumps; i++) {
        int rc = st_graph_annotate_dump(&trace->dumps[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}
