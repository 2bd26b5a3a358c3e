/* SPDX-License-Identifier: MIT
 *
 * The memory dump model: growable arrays with find-or-add lookups. Traces are small (hundreds of
 * processes, thousands of objects per dump) and built once, so linear lookups by name are used
 * for process-local nodes only through st_process_find_node; producers that add many nodes keep
 * their own index (the scanner and the coordinator do, with uthash). See model.h.
 */
#include "model.h"

#include "array.h"
#include "error.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Replaces *dst by a copy of src (NULL allowed). */
static int set_str(char **dst, const char *src)
{
    char *copy = NULL;
    if (src != NULL && (copy = strdup(src)) == NULL)
        return -ENOMEM;
    free(*dst);
    *dst = copy;
    return 0;
}

/* ---- lookup indexes ----
 *
 * Producers add hundreds of thousands of nodes to one dump (the coordinator merging 500 clients);
 * linear find-or-add would make that quadratic. Each process dump keeps an open-addressing table
 * of node positions by name hash and each global dump one of global positions by guid. A table
 * covers the first `count` elements of its array; when the array holds more (someone appended
 * without the functions below) or was reordered (st_dump_sort), it is rebuilt on the next lookup.
 */
struct st_model_index {
    uint32_t *slots; /* element position + 1; 0 is empty (an index covers < 2^32 - 1) */
    size_t cap;      /* power of two */
    size_t count;    /* elements indexed: positions [0, count) */
    bool dup;        /* two of them are equal (appended without a lookup) */
    bool arena;      /* slots live in the dump's arena: never freed alone */
};

static void index_free(struct st_model_index **ix)
{
    if (*ix != NULL) {
        if (!(*ix)->arena)
            free((*ix)->slots);
        free(*ix);
        *ix = NULL;
    }
}

static uint64_t mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

/* Inserts position pos with hash h (no duplicate check: callers looked it up first). */
static void index_put(struct st_model_index *ix, uint64_t h, size_t pos)
{
    size_t i = (size_t)mix64(h) & (ix->cap - 1);
    while (ix->slots[i] != 0)
        i = (i + 1) & (ix->cap - 1);
    ix->slots[i] = (uint32_t)pos + 1;
}

/* The index's hash of a name of len bytes, 8 at a time (st_hash64 goes byte by byte; this one
 * is private to the project's tables, so it need not be stable). Also the graph processor's. */
uint64_t st__name_hash(const char *s, size_t len)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ len;
    for (; len >= 8; s += 8, len -= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 31;
    }
    uint64_t w = 0;
    memcpy(&w, s, len);
    return (h ^ w) * 0x100000001b3ull;
}

static uint64_t node_hash(const st_node_t *n)
{
    return st__name_hash(n->name, strlen(n->name));
}

static uint64_t global_hash(const st_node_t *n)
{
    return n->guid;
}

/* Inserts position pos of arr with hash h, noting in ix->dup when an element equal to it (same)
 * is there already. */
static void index_put_check(struct st_model_index *ix, uint64_t h, const st_node_t *arr, size_t pos,
                            bool (*same)(const st_node_t *, const st_node_t *))
{
    size_t i = (size_t)mix64(h) & (ix->cap - 1);
    for (; ix->slots[i] != 0; i = (i + 1) & (ix->cap - 1))
        if (!ix->dup && same(&arr[ix->slots[i] - 1], &arr[pos]))
            ix->dup = true;
    ix->slots[i] = (uint32_t)pos + 1;
}

static bool same_name(const st_node_t *a, const st_node_t *b)
{
    return a->name[0] == b->name[0] && strcmp(a->name, b->name) == 0;
}

static bool same_guid(const st_node_t *a, const st_node_t *b)
{
    return a->guid == b->guid;
}

static int index_catch_up(struct st_model_index **pix, const st_node_t *arr, size_t n,
                          uint64_t (*hash)(const st_node_t *));

/* Makes ix cover n elements of arr, growing or rebuilding it. -ENOMEM leaves it absent (lookups
 * then fall back to a linear scan). Inline: every lookup asks, and it is nearly always current. */
static inline int index_sync(struct st_model_index **pix, const st_node_t *arr, size_t n,
                             uint64_t (*hash)(const st_node_t *))
{
    if (*pix != NULL && (*pix)->count == n)
        return 0;
    return index_catch_up(pix, arr, n, hash);
}

/* index_sync when ix does not cover n elements. */
static int index_catch_up(struct st_model_index **pix, const st_node_t *arr, size_t n,
                          uint64_t (*hash)(const st_node_t *))
{
    struct st_model_index *ix = *pix;
    if (n >= UINT32_MAX / 2) { /* beyond the index's positions: lookups scan */
        index_free(pix);
        return -ENOMEM;
    }
    if (ix == NULL || ix->count > n || (n + 1) * 2 > ix->cap) {
        size_t cap = 64;
        while (cap < (n + 1) * 2)
            cap <<= 1;
        if (ix == NULL && (ix = calloc(1, sizeof(*ix))) == NULL)
            return -ENOMEM;
        uint32_t *slots = calloc(cap, sizeof(*slots));
        if (slots == NULL) {
            if (!ix->arena)
                free(ix->slots);
            free(ix);
            *pix = NULL;
            return -ENOMEM;
        }
        if (!ix->arena)
            free(ix->slots);
        ix->arena = false;
        ix->slots = slots;
        ix->cap = cap;
        ix->count = 0;
        ix->dup = false;
        *pix = ix;
    }
    /* elements appended without a lookup: they may repeat one */
    for (size_t i = ix->count; i < n; i++)
        index_put_check(ix, hash(&arr[i]), arr, i, hash == node_hash ? same_name : same_guid);
    ix->count = n;
    return 0;
}

/* ---- the dump arena ----
 *
 * Nodes that st_dump_add_object and st_process_add_holder create take their name, an entry array
 * of the size they need and their strings from their dump's arena: bump allocation in chunks
 * that are freed with the dump, so a merge of 100 clients (150000 nodes, over a million entries)
 * makes no malloc per node and touches no more memory than it fills. Process dumps point at their
 * dump's arena. Sanitizer builds allocate each piece alone, so that they still see misuse. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define ARENA_BUMP 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define ARENA_BUMP 0
#endif
#endif
#ifndef ARENA_BUMP
#define ARENA_BUMP 1
#endif

#define ARENA_MIN ((size_t)64 << 10)
#define ARENA_HUGE ((size_t)2 << 20)

typedef struct achunk {
    struct achunk *next;
    size_t used, cap;
    max_align_t data[];
} achunk;

#define PID_STRINGS 64

struct st_model_arena {
    achunk *head;
    size_t total; /* bytes of chunks so far: the next chunk doubles it, up to ARENA_HUGE */
    /* creator_pid strings st_dump_add_object put here, by the pid's low bits: the objects of a
     * dump have few creators, so most objects share one instead of formatting their own */
    struct {
        int pid;
        const char *s; /* NULL: none */
    } pids[PID_STRINGS];
};

static void arena_free(struct st_model_arena *a)
{
    if (a == NULL)
        return;
    for (achunk *c = a->head, *next; c != NULL; c = next) {
        next = c->next;
        free(c);
    }
    free(a);
}

/* len bytes aligned for any type (8 bytes is enough for everything stored here). */
static void *arena_alloc(struct st_model_arena *a, size_t len)
{
    len = (len + 7) & ~(size_t)7;
    achunk *c = a->head;
    if (!ARENA_BUMP || c == NULL || c->cap - c->used < len) {
        size_t cap = ARENA_BUMP ? (a->total < ARENA_MIN ? ARENA_MIN : a->total) : len;
        if (cap > ARENA_HUGE - sizeof(achunk))
            cap = ARENA_HUGE - sizeof(achunk);
        if (cap < len)
            cap = len;
        size_t bytes = sizeof(achunk) + cap;
        if (ARENA_BUMP && bytes == ARENA_HUGE) {
            /* offered to transparent huge pages: a first-touch fault per 4 KiB page is dear
             * on a VM */
            c = aligned_alloc(ARENA_HUGE, ARENA_HUGE);
#ifdef MADV_HUGEPAGE
            if (c != NULL)
                (void)madvise(c, ARENA_HUGE, MADV_HUGEPAGE); /* advice only */
#endif
        } else {
            c = malloc(bytes);
        }
        if (c == NULL)
            return NULL;
        c->used = 0;
        c->cap = cap;
        c->next = a->head;
        a->head = c;
        a->total += cap;
    }
    void *p = (char *)c->data + c->used;
    c->used += len;
    return p;
}

/* Process and global dump arrays that live in the arena (st_process_dump_t.alloc and
 * st_global_dump_t.alloc bits): st_process_reserve and st_dump_reserve_globals put them there
 * when they start empty; growing past that moves them to the heap. */
enum { ARRAY_NODES = 1, ARRAY_EDGES = 2, ARRAY_GLOBALS = 4 };
/* st_process_dump_t.alloc beside those: an edge came from st_process_add_edge. Without it every
 * edge is add_holder's, which gives a node one edge, appended with the node: edge k is node k's
 * while the process has only holders, and no other edge has its source. */
enum { PROC_OTHER_EDGES = 64 };

static int grow_array_full(void **arr, size_t *cap, size_t need, size_t elem, uint8_t *alloc,
                           uint8_t bit);

/* st__array_grow for an array that may live in the arena (bit set in *alloc). Inline: every add
 * asks, and there is nearly always room. */
static inline int grow_array(void **arr, size_t *cap, size_t need, size_t elem, uint8_t *alloc,
                             uint8_t bit)
{
    return need <= *cap ? 0 : grow_array_full(arr, cap, need, elem, alloc, bit);
}

/* grow_array when the array is full. */
static int grow_array_full(void **arr, size_t *cap, size_t need, size_t elem, uint8_t *alloc,
                           uint8_t bit)
{
    if (!(*alloc & bit))
        return st__array_grow(arr, cap, need, elem);
    size_t ncap = *cap * 2 > need ? *cap * 2 : need;
    if (ncap > SIZE_MAX / elem)
        return -ENOMEM;
    char *p = malloc(ncap * elem);
    if (p == NULL)
        return -ENOMEM;
    memcpy(p, *arr, *cap * elem);
    memset(p + *cap * elem, 0, (ncap - *cap) * elem);
    *arr = p;
    *cap = ncap;
    *alloc &= (uint8_t)~bit;
    return 0;
}

/* Grows *arr to exactly need elements (when it has fewer); the adds clear each one they use. */
static int reserve_exact(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    if (need > SIZE_MAX / elem)
        return -ENOMEM;
    void *p = realloc(*arr, need * elem);
    if (p == NULL)
        return -ENOMEM;
    *arr = p;
    *cap = need;
    return 0;
}

/* reserve_exact for an array that may live in the arena: an empty one is put there. */
static int reserve_array(struct st_model_arena *a, void **arr, size_t *cap, size_t need,
                         size_t elem, uint8_t *alloc, uint8_t bit)
{
    if (need <= *cap)
        return 0;
    if (*cap == 0 && a != NULL && need <= SIZE_MAX / elem) {
        void *p = arena_alloc(a, need * elem);
        if (p != NULL) {
            free(*arr);
            *arr = p;
            *cap = need;
            *alloc |= bit;
            return 0;
        }
    }
    if (*alloc & bit)
        return grow_array(arr, cap, need, elem, alloc, bit);
    return reserve_exact(arr, cap, need, elem);
}

/* The dump's global arrays with room for need globals, moved together. */
static int reserve_globals(st_global_dump_t *dump, size_t need)
{
    if (need <= dump->cap_globals && need <= dump->cap_carrier)
        return 0;
    if (dump->alloc & ARRAY_GLOBALS) { /* both leave the arena */
        st_node_t *g = malloc(need * sizeof(*g));
        int *c = malloc(need * sizeof(*c));
        if (g == NULL || c == NULL) {
            free(g);
            free(c);
            return -ENOMEM;
        }
        memcpy(g, dump->globals, dump->n_globals * sizeof(*g));
        memcpy(c, dump->global_carrier, dump->n_globals * sizeof(*c));
        dump->globals = g;
        dump->global_carrier = c;
        dump->cap_globals = dump->cap_carrier = need;
        dump->alloc &= (uint8_t)~ARRAY_GLOBALS;
        return 0;
    }
    if (reserve_exact((void **)&dump->globals, &dump->cap_globals, need, sizeof(*dump->globals)) <
            0 ||
        reserve_exact((void **)&dump->global_carrier, &dump->cap_carrier, need,
                      sizeof(*dump->global_carrier)) < 0)
        return -ENOMEM;
    return 0;
}

/* ---- closed sets ---- */

static const char *const kind_names[] = {
#define XX(e, s) s,
    ST_KIND_MAP(XX)
#undef XX
};

static const char *const policy_names[] = {
#define XX(e, s) s,
    ST_POLICY_MAP(XX)
#undef XX
};

const char *st_kind_name(st_kind_t kind)
{
    return (unsigned)kind < ST_KIND_COUNT ? kind_names[kind] : "?";
}

int st_kind_parse(const char *s, st_kind_t *out)
{
    for (unsigned i = 0; i < ST_KIND_COUNT; i++) {
        if (strcmp(s, kind_names[i]) == 0) {
            *out = (st_kind_t)i;
            return 0;
        }
    }
    return ST_EFORMAT;
}

const char *st_policy_name(st_policy_t policy)
{
    return (unsigned)policy < ST_POLICY_COUNT ? policy_names[policy] : "?";
}

int st_policy_parse(const char *s, st_policy_t *out)
{
    for (unsigned i = 0; i < ST_POLICY_COUNT; i++) {
        if (strcmp(s, policy_names[i]) == 0) {
            *out = (st_policy_t)i;
            return 0;
        }
    }
    return ST_EFORMAT;
}

static const char hex_digits[] = "0123456789abcdef";

/* Whether the node's name is st_global_name of its guid. */
static bool is_canonical(const st_node_t *n)
{
    if (strncmp(n->name, "global/", 7) != 0)
        return false;
    /* front to back: a shorter name stops at its NUL, which is no digit */
    for (int i = 0; i < 16; i++)
        if (n->name[7 + i] != hex_digits[(n->guid >> (60 - 4 * i)) & 15])
            return false;
    return n->name[23] == '\0';
}

/* ---- freeing ---- */

/* Nearly every scalar's units are "bytes": such entries share this one copy instead of a
 * strdup each (a scan of 5500 objects set ~150000 of them). Only model.c frees units. */
static char bytes_units[] = "bytes";

static void units_free(char *units)
{
    if (units != bytes_units)
        free(units);
}

/* Entry names every shmtrack node carries, kept once each: a merge of 100 clients sets about a
 * million entries and a strdup per name was most of its allocations. Other names are copied. */
#define WELL_KNOWN_MAP(XX)                                                                         \
    XX(size)                                                                                       \
    XX(virtual_size)                                                                               \
    XX(swapped_size)                                                                               \
    XX(mapped_size)                                                                                \
    XX(effective_size)                                                                             \
    XX(key)                                                                                        \
    XX(kind)                                                                                       \
    XX(name)                                                                                       \
    XX(creator_pid)                                                                                \
    XX(label)                                                                                      \
    XX(residency_source)

static struct {
#define XX(n) char n[sizeof(#n)];
    WELL_KNOWN_MAP(XX)
#undef XX
} well_known = {
#define XX(n) #n,
    WELL_KNOWN_MAP(XX)
#undef XX
};

static bool is_well_known(const char *name)
{
    return name >= (const char *)&well_known && name < (const char *)(&well_known + 1);
}

/* The shared copy of name, or NULL when it is not a well-known one. */
static char *well_known_name(const char *name)
{
    if (is_well_known(name))
        return (char *)name;
    /* the first letter tells them apart, but for two pairs the second does (a name missing here
     * would only be copied per entry) */
    char *c = NULL;
    switch (name[0]) {
    case 's':
        c = name[1] == 'i' ? well_known.size : well_known.swapped_size;
        break;
    case 'k':
        c = name[1] == 'e' ? well_known.key : well_known.kind;
        break;
    case 'v':
        c = well_known.virtual_size;
        break;
    case 'm':
        c = well_known.mapped_size;
        break;
    case 'e':
        c = well_known.effective_size;
        break;
    case 'n':
        c = well_known.name;
        break;
    case 'c':
        c = well_known.creator_pid;
        break;
    case 'l':
        c = well_known.label;
        break;
    case 'r':
        c = well_known.residency_source;
        break;
    default:
        return NULL;
    }
    return strcmp(c, name) == 0 ? c : NULL;
}

/* Frees what the entry owns (its name stays) and leaves it an empty scalar. */
static void value_free(st_entry_t *e)
{
    if (e->type == ST_ENTRY_SCALAR)
        units_free(e->units);
    else if (!e->string_shared)
        free(e->string);
    e->units = NULL;
    e->string_shared = false;
    e->type = ST_ENTRY_SCALAR;
    e->value = 0;
}

static void entry_clear(st_entry_t *e)
{
    if (!is_well_known(e->name))
        free(e->name);
    value_free(e);
}

static void entries_free(st_node_t *node);

/* st_node_t.alloc bits: what lives in the dump's arena (freed with it, never alone), whether
 * a global node's name is st_global_name of its guid, and whether freeing its entries frees
 * nothing (NODE_CLEAN: in the arena, each with a well-known name and a shared string or the
 * shared units; set by the builders, cleared by any setter that allocates). A dump of 150 000
 * builders' nodes is then freed without reading any of its entries. */
enum {
    NODE_NAME_ARENA = 1,
    NODE_ENTRIES_ARENA = 2,
    NODE_CANONICAL = 4,
    NODE_CLEAN = 8,
    NODE_NO_EFFECTIVE = 16 /* no effective_size entry: set by the builders, cleared by any
                            * append (st_node_set_effective_size then looks nothing up) */
};

static void node_clear(st_node_t *node)
{
    for (size_t i = 0; !(node->alloc & NODE_CLEAN) && i < node->n_entries; i++)
        entry_clear(&node->entries[i]);
    entries_free(node);
    if (!(node->alloc & NODE_NAME_ARENA))
        free(node->name);
}

static void process_clear(st_process_dump_t *proc)
{
    for (size_t i = 0; i < proc->n_nodes; i++)
        node_clear(&proc->nodes[i]);
    if (!(proc->alloc & ARRAY_NODES))
        free(proc->nodes);
    if (!(proc->alloc & ARRAY_EDGES))
        free(proc->edges);
    free(proc->name);
    index_free(&proc->node_index);
}

static void dump_clear(st_global_dump_t *dump)
{
    for (size_t i = 0; i < dump->n_procs; i++)
        process_clear(&dump->procs[i]);
    free(dump->procs);
    for (size_t i = 0; i < dump->n_globals; i++)
        node_clear(&dump->globals[i]);
    if (!(dump->alloc & ARRAY_GLOBALS)) {
        free(dump->globals);
        free(dump->global_carrier);
    }
    for (size_t i = 0; i < dump->n_warnings; i++)
        free(dump->warnings[i]);
    free(dump->warnings);
    for (size_t i = 0; i < dump->n_problems; i++)
        free(dump->problems[i].path);
    free(dump->problems);
    free(dump->trigger);
    free(dump->level_of_detail);
    index_free(&dump->global_index);
    arena_free(dump->arena);
    dump->arena = NULL;
    arena_free(dump->proc_arena);
    dump->proc_arena = NULL;
    arena_free(dump->proc_arena2);
    dump->proc_arena2 = NULL;
}

int st_trace_new(st_trace_t **out)
{
    st_trace_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return -ENOMEM;
    t->version = 1;
    *out = t;
    return 0;
}

void st_trace_free(st_trace_t *trace)
{
    if (trace == NULL)
        return;
    for (size_t i = 0; i < trace->n_dumps; i++)
        dump_clear(&trace->dumps[i]);
    free(trace->dumps);
    free(trace->policy);
    free(trace->host);
    free(trace->kernel);
    free(trace);
}

void st_trace_drop_oldest(st_trace_t *trace, size_t n)
{
    if (n > trace->n_dumps)
        n = trace->n_dumps;
    for (size_t i = 0; i < n; i++)
        dump_clear(&trace->dumps[i]);
    memmove(trace->dumps, trace->dumps + n, (trace->n_dumps - n) * sizeof(*trace->dumps));
    trace->n_dumps -= n;
}

int st_trace_move_dump(st_trace_t *dst, st_trace_t *src, size_t i, st_global_dump_t **out)
{
    if (i >= src->n_dumps)
        return -EINVAL;
    if (st__array_grow((void **)&dst->dumps, &dst->cap_dumps, dst->n_dumps + 1,
                       sizeof(*dst->dumps)) < 0)
        return -ENOMEM;
    dst->dumps[dst->n_dumps] = src->dumps[i];
    memmove(src->dumps + i, src->dumps + i + 1, (src->n_dumps - i - 1) * sizeof(*src->dumps));
    src->n_dumps--;
    if (out != NULL)
        *out = &dst->dumps[dst->n_dumps];
    dst->n_dumps++;
    return 0;
}

int st_trace_set_meta(st_trace_t *trace, const char *policy, const char *host, const char *kernel)
{
    if (set_str(&trace->policy, policy) < 0 || set_str(&trace->host, host) < 0 ||
        set_str(&trace->kernel, kernel) < 0)
        return -ENOMEM;
    return 0;
}

/* ---- dumps ---- */

st_global_dump_t *st_trace_find_dump(const st_trace_t *trace, uint64_t id)
{
    for (size_t i = 0; i < trace->n_dumps; i++)
        if (trace->dumps[i].id == id)
            return &trace->dumps[i];
    return NULL;
}

int st_trace_add_dump(st_trace_t *trace, uint64_t id, uint64_t ts_us, st_global_dump_t **out)
{
    st_global_dump_t *d = st_trace_find_dump(trace, id);
    if (d == NULL) {
        if (st__array_grow((void **)&trace->dumps, &trace->cap_dumps, trace->n_dumps + 1,
                           sizeof(*d)) < 0)
            return -ENOMEM;
        d = &trace->dumps[trace->n_dumps];
        memset(d, 0, sizeof(*d));
        d->id = id;
        d->ts_us = ts_us;
        if (st_dump_set_strings(d, "periodic_interval", "detailed") < 0) {
            dump_clear(d);
            memset(d, 0, sizeof(*d));
            return -ENOMEM;
        }
        trace->n_dumps++;
    }
    if (out != NULL)
        *out = d;
    return 0;
}

int st_dump_set_strings(st_global_dump_t *dump, const char *trigger, const char *level_of_detail)
{
    if (trigger != NULL && set_str(&dump->trigger, trigger) < 0)
        return -ENOMEM;
    if (level_of_detail != NULL && set_str(&dump->level_of_detail, level_of_detail) < 0)
        return -ENOMEM;
    return 0;
}

/* The dump's arena, made on first use; NULL when out of memory. */
static struct st_model_arena *dump_arena(st_global_dump_t *dump)
{
    if (dump->arena == NULL)
        dump->arena = calloc(1, sizeof(*dump->arena));
    return dump->arena;
}

st_process_dump_t *st_dump_find_process(const st_global_dump_t *dump, int pid)
{
    for (size_t i = 0; i < dump->n_procs; i++)
        if (dump->procs[i].pid == pid)
            return &dump->procs[i];
    return NULL;
}

int st_dump_add_process(st_global_dump_t *dump, int pid, const char *name, st_process_dump_t **out)
{
    st_process_dump_t *p = st_dump_find_process(dump, pid);
    if (p == NULL) {
        if (st__array_grow((void **)&dump->procs, &dump->cap_procs, dump->n_procs + 1, sizeof(*p)) <
            0)
            return -ENOMEM;
        if (dump->proc_arena == NULL &&
            (dump->proc_arena = calloc(1, sizeof(*dump->proc_arena))) == NULL)
            return -ENOMEM;
        p = &dump->procs[dump->n_procs];
        memset(p, 0, sizeof(*p));
        p->pid = pid;
        p->arena = dump->proc_arena;
        dump->n_procs++;
    }
    if (p->name == NULL && name != NULL && set_str(&p->name, name) < 0)
        return -ENOMEM;
    if (out != NULL)
        *out = p;
    return 0;
}

static int cmp_proc(const void *a, const void *b)
{
    const st_process_dump_t *x = a, *y = b;
    return (x->pid > y->pid) - (x->pid < y->pid);
}

static int cmp_global(const void *a, const void *b)
{
    const st_node_t *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

void st_dump_sort(st_global_dump_t *dump)
{
    st_dump_sort_procs(dump);
    st_dump_sort_globals(dump);
}

void st_dump_sort_procs(st_global_dump_t *dump)
{
    if (dump->n_procs > 1) /* qsort(NULL, 0, ...) is undefined behaviour */
        qsort(dump->procs, dump->n_procs, sizeof(*dump->procs), cmp_proc);
}

void st_dump_sort_globals(st_global_dump_t *dump)
{
    if (dump->n_globals < 2)
        return;
    /* Sort pointers, then permute globals and their carriers together. */
    size_t n = dump->n_globals;
    st_node_t **order = malloc(n * sizeof(*order));
    st_node_t *nodes = malloc(n * sizeof(*nodes));
    int *carrier = malloc(n * sizeof(*carrier));
    if (order == NULL || nodes == NULL || carrier == NULL) {
        /* out of memory: fall back to an in-place insertion sort */
        free(order);
        free(nodes);
        free(carrier);
        for (size_t i = 1; i < n; i++) {
            st_node_t t = dump->globals[i];
            int c = dump->global_carrier[i];
            size_t j = i;
            while (j > 0 && strcmp(dump->globals[j - 1].name, t.name) > 0) {
                dump->globals[j] = dump->globals[j - 1];
                dump->global_carrier[j] = dump->global_carrier[j - 1];
                j--;
            }
            dump->globals[j] = t;
            dump->global_carrier[j] = c;
        }
        index_free(&dump->global_index);
        return;
    }
    for (size_t i = 0; i < n; i++)
        order[i] = &dump->globals[i];
    /* Names made by st_global_name ("global/" + 16 hex digits of the guid) sort like their guids:
     * when every name is one, sort numbers instead of strings, or nothing when they are in order
     * already (the coordinator adds them so). */
    st__keyed_t *keys = malloc(2 * n * sizeof(*keys));
    bool canonical = keys != NULL, sorted = true;
    for (size_t i = 0; canonical && i < n; i++) {
        canonical = (dump->globals[i].alloc & NODE_CANONICAL) || is_canonical(&dump->globals[i]);
        sorted = sorted && (i == 0 || dump->globals[i - 1].guid < dump->globals[i].guid);
        if (canonical)
            keys[i] = (st__keyed_t){dump->globals[i].guid, (uintptr_t)&dump->globals[i]};
    }
    if (canonical && sorted) {
        free(keys);
        free(order);
        free(nodes);
        free(carrier);
        return;
    }
    if (canonical) {
        st__sort_hashes(keys, keys + n, n); /* guids */
        for (size_t i = 0; i < n; i++)
            order[i] = (st_node_t *)keys[i].val;
    } else {
        qsort(order, n, sizeof(*order), cmp_global);
    }
    free(keys);
    for (size_t i = 0; i < n; i++) {
        size_t from = (size_t)(order[i] - dump->globals);
        nodes[i] = dump->globals[from];
        carrier[i] = dump->global_carrier[from];
    }
    memcpy(dump->globals, nodes, n * sizeof(*nodes));
    memcpy(dump->global_carrier, carrier, n * sizeof(*carrier));
    free(order);
    free(nodes);
    free(carrier);
    index_free(&dump->global_index);
}

/* ---- nodes ---- */

static bool is_global_name(const char *name)
{
    return strncmp(name, "global/", 7) == 0;
}

/* st_process_find_node with the name's hash h (st__name_hash) computed by the caller. */
static st_node_t *find_node_h(const st_process_dump_t *proc, const char *name, uint64_t h)
{
    /* The index is a cache: building it does not change what the process dump holds. */
    st_process_dump_t *mut = (st_process_dump_t *)proc;
    if (index_sync(&mut->node_index, proc->nodes, proc->n_nodes, node_hash) == 0) {
        const struct st_model_index *ix = proc->node_index;
        size_t i = (size_t)mix64(h) & (ix->cap - 1);
        for (; ix->slots[i] != 0; i = (i + 1) & (ix->cap - 1))
            if (strcmp(proc->nodes[ix->slots[i] - 1].name, name) == 0)
                return &proc->nodes[ix->slots[i] - 1];
        return NULL;
    }
    for (size_t i = 0; i < proc->n_nodes; i++)
        if (strcmp(proc->nodes[i].name, name) == 0)
            return &proc->nodes[i];
    return NULL;
}

st_node_t *st_process_find_node(const st_process_dump_t *proc, const char *name)
{
    return find_node_h(proc, name, st__name_hash(name, strlen(name)));
}

st_node_t *st_process_find_guid(const st_process_dump_t *proc, uint64_t guid)
{
    for (size_t i = 0; i < proc->n_nodes; i++)
        if (proc->nodes[i].guid == guid)
            return &proc->nodes[i];
    return NULL;
}

/* Appends a node named name (hash h, st__name_hash) to proc: the caller looked the name up (there
 * is none) and gives the node its name, with the NODE_*_ARENA bits (alloc) that say who owns it. */
static inline int append_node(st_process_dump_t *proc, char *name, uint8_t alloc, uint64_t h,
                              uint64_t guid, bool weak, st_node_t **out)
{
    if (grow_array((void **)&proc->nodes, &proc->cap_nodes, proc->n_nodes + 1, sizeof(st_node_t),
                   &proc->alloc, ARRAY_NODES) < 0)
        return -ENOMEM;
    st_node_t *n = &proc->nodes[proc->n_nodes];
    *n = (st_node_t){.name = name, .guid = guid, .weak = weak, .alloc = alloc};
    proc->n_nodes++;
    /* index it now with the hash at hand (index_sync would hash the name again) */
    struct st_model_index *ix = proc->node_index;
    if (ix != NULL && ix->count == proc->n_nodes - 1 && (proc->n_nodes + 1) * 2 <= ix->cap) {
        index_put(ix, h, proc->n_nodes - 1);
        ix->count = proc->n_nodes;
    }
    *out = n;
    return 0;
}

/* st_process_add_node with the name's hash (st__name_hash) at hand. *created tells. */
static int add_node_h(st_process_dump_t *proc, const char *name, uint64_t h, uint64_t guid,
                      bool weak, st_node_t **out, bool *created)
{
    st_node_t *n = find_node_h(proc, name, h);
    *created = n == NULL;
    if (n == NULL) {
        char *copy = strdup(name);
        if (copy == NULL)
            return -ENOMEM;
        int rc = append_node(proc, copy, 0, h, guid, weak, &n);
        if (rc < 0) {
            free(copy);
            return rc;
        }
    }
    *out = n;
    return 0;
}

int st_process_add_node(st_process_dump_t *proc, const char *name, uint64_t guid, bool weak,
                        st_node_t **out)
{
    if (is_global_name(name))
        return -EINVAL;
    st_node_t *n = NULL;
    bool created;
    size_t len = strlen(name);
    int rc = add_node_h(proc, name, st__name_hash(name, len), guid, weak, &n, &created);
    if (rc == 0 && out != NULL)
        *out = n;
    return rc;
}

/* Makes *pix cover arr[0..n) with room for total elements (a failure leaves it to grow later). */
static void index_reserve(struct st_model_index **pix, const st_node_t *arr, size_t n, size_t total,
                          uint64_t (*hash)(const st_node_t *), struct st_model_arena *a)
{
    if ((*pix != NULL && (total + 1) * 2 <= (*pix)->cap) || total >= UINT32_MAX / 2)
        return;
    size_t cap = 64;
    while (cap < (total + 1) * 2)
        cap <<= 1;
    struct st_model_index *ix = calloc(1, sizeof(*ix));
    if (ix != NULL && a != NULL && (ix->slots = arena_alloc(a, cap * sizeof(*ix->slots))) != NULL) {
        memset(ix->slots, 0, cap * sizeof(*ix->slots));
        ix->arena = true;
    } else if (ix != NULL && (ix->slots = calloc(cap, sizeof(*ix->slots))) == NULL) {
        free(ix);
        ix = NULL;
    }
    if (ix != NULL) {
        index_free(pix);
        ix->cap = cap;
        *pix = ix;
        (void)index_sync(pix, arr, n, hash);
    }
}

int st_process_reserve(st_process_dump_t *proc, size_t n_nodes, size_t n_edges)
{
    if (reserve_array(proc->arena, (void **)&proc->nodes, &proc->cap_nodes, proc->n_nodes + n_nodes,
                      sizeof(*proc->nodes), &proc->alloc, ARRAY_NODES) < 0 ||
        reserve_array(proc->arena, (void **)&proc->edges, &proc->cap_edges, proc->n_edges + n_edges,
                      sizeof(*proc->edges), &proc->alloc, ARRAY_EDGES) < 0)
        return -ENOMEM;
    index_reserve(&proc->node_index, proc->nodes, proc->n_nodes, proc->n_nodes + n_nodes, node_hash,
                  proc->arena);
    return 0;
}

int st_dump_reserve_globals(st_global_dump_t *dump, size_t n)
{
    /* the two arrays move together: both in the arena or neither */
    size_t need = dump->n_globals + n;
    if (need > dump->cap_globals && dump->cap_globals == 0 && dump->cap_carrier == 0 &&
        dump_arena(dump) != NULL) {
        st_node_t *g = arena_alloc(dump->arena, need * sizeof(*g));
        int *c = arena_alloc(dump->arena, need * sizeof(*c));
        if (g != NULL && c != NULL) {
            free(dump->globals);
            free(dump->global_carrier);
            dump->globals = g;
            dump->global_carrier = c;
            dump->cap_globals = dump->cap_carrier = need;
            dump->alloc |= ARRAY_GLOBALS;
        }
    }
    if (reserve_globals(dump, need) < 0)
        return -ENOMEM;
    index_reserve(&dump->global_index, dump->globals, dump->n_globals, need, global_hash,
                  dump->arena);
    return 0;
}

static int append_edge(st_process_dump_t *proc, uint64_t source, uint64_t target, int importance)
{
    if (grow_array((void **)&proc->edges, &proc->cap_edges, proc->n_edges + 1, sizeof(st_edge_t),
                   &proc->alloc, ARRAY_EDGES) < 0)
        return -ENOMEM;
    proc->edges[proc->n_edges++] = (st_edge_t){source, target, importance};
    return 0;
}

int st_process_add_edge(st_process_dump_t *proc, uint64_t source, uint64_t target, int importance)
{
    proc->alloc |= PROC_OTHER_EDGES;
    return append_edge(proc, source, target, importance);
}

st_node_t *st_dump_find_global(const st_global_dump_t *dump, uint64_t guid)
{
    st_global_dump_t *mut = (st_global_dump_t *)dump; /* the index is a cache */
    if (index_sync(&mut->global_index, dump->globals, dump->n_globals, global_hash) == 0) {
        const struct st_model_index *ix = dump->global_index;
        size_t i = (size_t)mix64(guid) & (ix->cap - 1);
        for (; ix->slots[i] != 0; i = (i + 1) & (ix->cap - 1))
            if (dump->globals[ix->slots[i] - 1].guid == guid)
                return &dump->globals[ix->slots[i] - 1];
        return NULL;
    }
    for (size_t i = 0; i < dump->n_globals; i++)
        if (dump->globals[i].guid == guid)
            return &dump->globals[i];
    return NULL;
}

/* Appends a global node of this guid (the caller looked it up: there is none) named name: the
 * dump arena's already when arena_name (made by st_dump_add_object: st_global_name of the guid,
 * which the node then keeps), else copied. */
static int append_global(st_global_dump_t *dump, const char *name, bool arena_name, uint64_t guid,
                         bool weak, int carrier_pid, bool indexed, st_node_t **out)
{
    size_t need = dump->n_globals + 1;
    if ((need > dump->cap_globals || need > dump->cap_carrier) &&
        ((dump->alloc & ARRAY_GLOBALS)
             ? reserve_globals(dump, 2 * dump->cap_globals) < 0
             : st__array_grow((void **)&dump->globals, &dump->cap_globals, need,
                              sizeof(st_node_t)) < 0 ||
                   st__array_grow((void **)&dump->global_carrier, &dump->cap_carrier, need,
                                  sizeof(int)) < 0))
        return -ENOMEM;
    char *copy = arena_name ? (char *)name : strdup(name);
    if (copy == NULL)
        return -ENOMEM;
    st_node_t *n = &dump->globals[dump->n_globals];
    *n = (st_node_t){.name = copy, .guid = guid, .weak = weak};
    n->alloc = arena_name ? NODE_NAME_ARENA | NODE_CANONICAL : is_canonical(n) ? NODE_CANONICAL : 0;
    dump->global_carrier[dump->n_globals] = carrier_pid;
    dump->n_globals++;
    /* index it now (index_sync would look for a duplicate, which the caller's find ruled out);
     * unless not indexed: then the index catches up on the next lookup */
    struct st_model_index *ix = dump->global_index;
    if (indexed && ix != NULL && ix->count == dump->n_globals - 1 &&
        (dump->n_globals + 1) * 2 <= ix->cap) {
        index_put(ix, guid, dump->n_globals - 1);
        ix->count = dump->n_globals;
    }
    *out = n;
    return 0;
}

int st_dump_add_global(st_global_dump_t *dump, const char *name, uint64_t guid, bool weak,
                       int carrier_pid, st_node_t **out, bool *created)
{
    st_node_t *n = st_dump_find_global(dump, guid);
    if (created != NULL)
        *created = n == NULL;
    int rc = n == NULL ? append_global(dump, name, false, guid, weak, carrier_pid, true, &n) : 0;
    if (rc == 0 && out != NULL)
        *out = n;
    return rc;
}

int st_dump_add_warning(st_global_dump_t *dump, const char *fmt, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -ENOMEM;
    if (st__array_grow((void **)&dump->warnings, &dump->cap_warnings, dump->n_warnings + 1,
                       sizeof(char *)) < 0) {
        free(s);
        return -ENOMEM;
    }
    dump->warnings[dump->n_warnings++] = s;
    return 0;
}

int st_dump_add_problem(st_global_dump_t *dump, int pid, const char *path, int err)
{
    char *p = strdup(path ? path : "");
    if (p == NULL)
        return -ENOMEM;
    if (st__array_grow((void **)&dump->problems, &dump->cap_problems, dump->n_problems + 1,
                       sizeof(st_problem_t)) < 0) {
        free(p);
        return -ENOMEM;
    }
    dump->problems[dump->n_problems++] = (st_problem_t){pid, p, err};
    return 0;
}

/* ---- entries ---- */

const st_entry_t *st_node_get(const st_node_t *node, const char *name)
{
    /* A well-known name is stored only as its shared copy: pointers compare. */
    const char *wk = well_known_name(name);
    if (wk != NULL) {
        for (size_t i = 0; i < node->n_entries; i++)
            if (node->entries[i].name == wk)
                return &node->entries[i];
        return NULL;
    }
    /* the first byte tells most entry names apart without a call */
    for (size_t i = 0; i < node->n_entries; i++)
        if (node->entries[i].name[0] == name[0] && strcmp(node->entries[i].name, name) == 0)
            return &node->entries[i];
    return NULL;
}

/* ---- entry blocks ----
 *
 * A node's first ENTRY_BLOCK entries live in a fixed-size block from a shared pool: 2 MiB chunks
 * offered to transparent huge pages, carved into blocks, freed blocks kept on a list for the
 * next dump. A merge of 100 clients creates 150000 nodes; with malloc each one's entries were
 * fresh 4 KiB pages, and on a VM a first-touch page fault costs ~25 us, which was most of the
 * merge. Only blocks of exactly ENTRY_BLOCK entries come from here (cap_entries tells); larger
 * arrays use malloc. Sanitizer builds use malloc for all, so that they still see misuse. */
#define ENTRY_BLOCK 10
#define POOL_CHUNK ((size_t)2 << 20)

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define ENTRY_POOL 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define ENTRY_POOL 0
#endif
#endif
#ifndef ENTRY_POOL
#define ENTRY_POOL 1
#endif

#if ENTRY_POOL
typedef union block {
    union block *next;
    st_entry_t e[ENTRY_BLOCK];
} block_t;

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static block_t *pool_free;         /* freed blocks */
static char *pool_next, *pool_end; /* the rest of the newest chunk */
static void *pool_chunks;          /* the newest chunk; each chunk's first block-sized slot
                                    * points to the one before, so that every chunk stays
                                    * reachable from its start (valgrind: not "possibly lost") */

static st_entry_t *block_alloc(void)
{
    block_t *b = NULL;
    pthread_mutex_lock(&pool_lock);
    if (pool_free != NULL) {
        b = pool_free;
        pool_free = b->next;
    } else {
        if (pool_next == NULL || (size_t)(pool_end - pool_next) < sizeof(block_t)) {
            char *c = aligned_alloc(POOL_CHUNK, POOL_CHUNK); /* never freed: reused */
            if (c != NULL) {
#ifdef MADV_HUGEPAGE
                (void)madvise(c, POOL_CHUNK, MADV_HUGEPAGE); /* advice only */
#endif
                *(void **)(void *)c = pool_chunks;
                pool_chunks = c;
                pool_next = c + sizeof(block_t);
                pool_end = c + POOL_CHUNK;
            }
        }
        if (pool_next != NULL && (size_t)(pool_end - pool_next) >= sizeof(block_t)) {
            b = (block_t *)(void *)pool_next;
            pool_next += sizeof(block_t);
        }
    }
    pthread_mutex_unlock(&pool_lock);
    return b != NULL ? b->e : NULL;
}

static void block_free(st_entry_t *e)
{
    block_t *b = (block_t *)(void *)e;
    pthread_mutex_lock(&pool_lock);
    b->next = pool_free;
    pool_free = b;
    pthread_mutex_unlock(&pool_lock);
}
#else
static st_entry_t *block_alloc(void)
{
    return malloc(ENTRY_BLOCK * sizeof(st_entry_t));
}

static void block_free(st_entry_t *e)
{
    free(e);
}
#endif

static void entries_free(st_node_t *node)
{
    if (node->alloc & NODE_ENTRIES_ARENA)
        return;
    if (node->cap_entries == ENTRY_BLOCK)
        block_free(node->entries);
    else
        free(node->entries);
}

void st_node_remove(st_node_t *node, const char *name)
{
    st_entry_t *e = (st_entry_t *)st_node_get(node, name);
    if (e == NULL)
        return;
    entry_clear(e);
    size_t i = (size_t)(e - node->entries);
    memmove(e, e + 1, (node->n_entries - i - 1) * sizeof(*e));
    node->n_entries--;
}

/* The entry called name, appended empty when missing. wk: name's shared copy when it is a
 * well-known one (then entries compare by pointer), NULL otherwise. */
static int entry_slot_wk(st_node_t *node, char *wk, const char *name, st_entry_t **out)
{
    st_entry_t *e = NULL;
    for (size_t i = 0; i < node->n_entries && e == NULL; i++)
        if (wk != NULL
                ? node->entries[i].name == wk
                : node->entries[i].name[0] == name[0] && strcmp(node->entries[i].name, name) == 0)
            e = &node->entries[i];
    if (e == NULL) {
        if (node->n_entries == node->cap_entries) {
            /* room for a shmtrack node's entries at once (a global has 9 with effective_size) */
            size_t cap = node->cap_entries < ENTRY_BLOCK / 2 ? ENTRY_BLOCK : node->cap_entries * 2;
            st_entry_t *p = cap == ENTRY_BLOCK ? block_alloc() : malloc(cap * sizeof(*p));
            if (p == NULL)
                return -ENOMEM;
            if (node->n_entries > 0)
                memcpy(p, node->entries, node->n_entries * sizeof(*p));
            entries_free(node);
            node->alloc &= (uint8_t) ~(NODE_ENTRIES_ARENA | NODE_CLEAN);
            node->entries = p;
            node->cap_entries = cap;
        }
        e = &node->entries[node->n_entries];
        memset(e, 0, sizeof(*e));
        node->alloc &= (uint8_t)~NODE_NO_EFFECTIVE; /* e may be it */
        if ((e->name = wk) == NULL) {
            node->alloc &= (uint8_t)~NODE_CLEAN; /* a name of its own to free */
            if ((e->name = strdup(name)) == NULL)
                return -ENOMEM;
        }
        node->n_entries++;
    }
    *out = e;
    return 0;
}

static int entry_slot(st_node_t *node, const char *name, st_entry_t **out)
{
    return entry_slot_wk(node, well_known_name(name), name, out);
}

/* st_node_set_scalar of a well-known name in bytes, without looking names up. */
static int set_wk_bytes(st_node_t *node, char *wk, uint64_t value)
{
    st_entry_t *e = NULL;
    if (entry_slot_wk(node, wk, wk, &e) < 0)
        return -ENOMEM;
    value_free(e);
    e->units = bytes_units;
    e->value = value;
    return 0;
}

int st_node_set_effective_size(st_node_t *node, bool has_size, uint64_t value)
{
    if ((node->alloc & NODE_NO_EFFECTIVE) && (!has_size || node->n_entries < node->cap_entries)) {
        if (!has_size)
            return 0;
        /* a builder's node that has none: appended in its room, without reading the others */
        st_entry_t *e = &node->entries[node->n_entries++];
        memset(e, 0, sizeof(*e));
        e->name = well_known.effective_size;
        e->units = bytes_units;
        e->value = value;
        node->alloc &= (uint8_t)~NODE_NO_EFFECTIVE;
        return 0;
    }
    if (!has_size) {
        st_node_remove(node, "effective_size");
        return 0;
    }
    return set_wk_bytes(node, well_known.effective_size, value);
}

/* Strings every shmtrack node repeats: kept once, never copied. */
static const char *shared_string(const char *value, size_t len)
{
    if (len == 0)
        return "";
    if (len > 7)
        return NULL;
    /* the kind names, told apart by their first letter before any strcmp */
    for (size_t k = 0; k < ST_KIND_COUNT; k++)
        if (kind_names[k][0] == value[0] && strcmp(kind_names[k], value) == 0)
            return kind_names[k];
    return NULL;
}

/* st_node_set_string with the name's well-known pointer wk (NULL: none) already looked up. */
static int set_string_wk(st_node_t *node, char *wk, const char *name, const char *value)
{
    st_entry_t *e = NULL;
    if (value == NULL)
        value = "";
    size_t len = strlen(value);
    /* copied before the entries may move: value may be another entry's string */
    const char *shared = shared_string(value, len);
    char *v = NULL;
    if (shared == NULL && (v = malloc(len + 1)) == NULL)
        return -ENOMEM;
    if (v != NULL)
        memcpy(v, value, len + 1);
    if (entry_slot_wk(node, wk, name, &e) < 0) {
        free(v);
        return -ENOMEM;
    }
    value_free(e);
    e->type = ST_ENTRY_STRING;
    e->string = v != NULL ? v : (char *)shared;
    e->string_shared = v == NULL;
    if (v != NULL)
        node->alloc &= (uint8_t)~NODE_CLEAN;
    return 0;
}

/* st_node_set_string of a well-known name, without looking names up. */
static int set_wk_string(st_node_t *node, char *wk, const char *value)
{
    return set_string_wk(node, wk, wk, value);
}

int st_node_set_scalar(st_node_t *node, const char *name, const char *units, uint64_t value)
{
    st_entry_t *e = NULL;
    char *u = units == NULL || strcmp(units, "bytes") == 0 ? bytes_units : strdup(units);
    if (u == NULL || entry_slot(node, name, &e) < 0) {
        units_free(u);
        return -ENOMEM;
    }
    value_free(e);
    e->units = u;
    e->value = value;
    if (u != bytes_units)
        node->alloc &= (uint8_t)~NODE_CLEAN;
    return 0;
}

int st_node_set_bytes(st_node_t *node, const char *name, uint64_t value)
{
    char *wk = well_known_name(name);
    return wk != NULL ? set_wk_bytes(node, wk, value) : st_node_set_scalar(node, name, NULL, value);
}

int st_node_set_string(st_node_t *node, const char *name, const char *value)
{
    return set_string_wk(node, well_known_name(name), name, value);
}

bool st_node_scalar(const st_node_t *node, const char *name, uint64_t *value)
{
    const st_entry_t *e = st_node_get(node, name);
    if (e == NULL || e->type != ST_ENTRY_SCALAR)
        return false;
    if (value != NULL)
        *value = e->value;
    return true;
}

const char *st_node_string(const st_node_t *node, const char *name)
{
    const st_entry_t *e = st_node_get(node, name);
    return (e != NULL && e->type == ST_ENTRY_STRING) ? e->string : NULL;
}

/* ---- guids ----
 *
 * Names, keys and guids are formatted by hand: a scan formats tens of thousands of them and
 * snprintf was an eighth of its user time. */

/* Writes v in decimal so that it ends just before end; returns where it starts. */
static char *dec_before(char *end, uint64_t v)
{
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    return end;
}

/* pid in decimal (with '-' when negative) into buf (at least 16 bytes), NUL-terminated; returns
 * its length. */
static size_t pid_str(char *buf, int pid)
{
    char tmp[16];
    char *e = tmp + sizeof(tmp);
    char *p = dec_before(e, pid < 0 ? 0u - (uint64_t)(int64_t)pid : (uint64_t)pid);
    if (pid < 0)
        *--p = '-';
    size_t n = (size_t)(e - p);
    memcpy(buf, p, n);
    buf[n] = '\0';
    return n;
}

uint64_t st_hash64(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* st_hash64 of "<pid>:": where every guid of the process's nodes starts. */
static uint64_t local_seed(int pid)
{
    char buf[32];
    size_t n = pid_str(buf, pid);
    buf[n] = ':';
    buf[n + 1] = '\0';
    return st_hash64(buf);
}

/* st_hash64's state h carried on over s. */
static uint64_t fnv_more(uint64_t h, const char *s)
{
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* fnv_more over the len bytes at s (no NUL looked for), four a round: the multiplies wait on
 * each other anyway, the loop's own work need not add to them (a merge hashes 100000 keys). */
static uint64_t fnv_n(uint64_t h, const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    for (; len >= 4; u += 4, len -= 4) {
        h = (h ^ u[0]) * 0x100000001b3ULL;
        h = (h ^ u[1]) * 0x100000001b3ULL;
        h = (h ^ u[2]) * 0x100000001b3ULL;
        h = (h ^ u[3]) * 0x100000001b3ULL;
    }
    for (; len > 0; u++, len--)
        h = (h ^ *u) * 0x100000001b3ULL;
    return h;
}

/* st_guid_local from the process's seed. */
static uint64_t guid_from_seed(uint64_t h, const char *name)
{
    h = fnv_more(h, name);
    return h ? h : 1;
}

uint64_t st_guid_local(int pid, const char *name)
{
    return guid_from_seed(local_seed(pid), name);
}

int st__process_names_unique(const st_process_dump_t *proc)
{
    st_process_dump_t *mut = (st_process_dump_t *)proc; /* the index is a cache */
    if (index_sync(&mut->node_index, proc->nodes, proc->n_nodes, node_hash) < 0)
        return -ENOMEM;
    return !proc->node_index->dup;
}

bool st__dump_names_canonical(const st_global_dump_t *dump)
{
    for (size_t i = 0; i < dump->n_globals; i++)
        if (!(dump->globals[i].alloc & NODE_CANONICAL))
            return false;
    return true;
}

uint64_t st_guid_global(const char *key)
{
    uint64_t h = st_hash64(key);
    return h ? h : 1;
}

/* The 8 lowercase hex digits of v, most significant first, at out (no NUL): each nibble spread
 * to a byte, turned into its digit all at once (a merge names 50000 objects per 100 clients). */
static void hex8(uint32_t v, char *out)
{
    uint64_t x = v;
    x = ((x & 0xffff0000ull) << 16) | (x & 0xffffull);
    x = ((x & 0x0000ff000000ff00ull) << 8) | (x & 0x000000ff000000ffull);
    x = ((x & 0x00f000f000f000f0ull) << 4) | (x & 0x000f000f000f000full);
    /* byte k holds nibble k (least significant first); digits > 9 get 'a' - '0' - 10 more */
    uint64_t over9 = ((x + 0x0606060606060606ull) >> 4) & 0x0101010101010101ull;
    x += 0x3030303030303030ull + over9 * ('a' - '0' - 10);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    x = __builtin_bswap64(x); /* nibble 7 first in memory */
#endif
    memcpy(out, &x, 8);
}

/* st_global_name into out, which has room for all 24 bytes. */
static void global_name24(uint64_t guid, char *out)
{
    memcpy(out, "global/", 7);
    hex8((uint32_t)(guid >> 32), out + 7);
    hex8((uint32_t)guid, out + 15);
    out[23] = '\0';
}

void st_global_name(uint64_t guid, char *buf, size_t len)
{
    char tmp[24]; /* "global/" + 16 digits + NUL */
    global_name24(guid, tmp);
    if (len == 0)
        return;
    size_t n = len - 1 < 23 ? len - 1 : 23; /* truncated like snprintf */
    memcpy(buf, tmp, n);
    buf[n] = '\0';
}

/* ---- shmtrack's layout ---- */

int st_key_format(char *buf, size_t len, st_kind_t kind, unsigned major, unsigned minor,
                  uint64_t ino)
{
    char tmp[96]; /* "<kind>:" + 3 numbers of at most 20 digits and their separators */
    char *e = tmp + sizeof(tmp), *p = dec_before(e, ino);
    *--p = ':';
    p = dec_before(p, minor);
    *--p = ':';
    p = dec_before(p, major);
    *--p = ':';
    const char *k = st_kind_name(kind);
    size_t kl = strlen(k), nl = (size_t)(e - p);
    if (kl + nl >= len) {
        if (len > 0)
            buf[0] = '\0';
        return -ENAMETOOLONG;
    }
    memcpy(buf, k, kl);
    memcpy(buf + kl, p, nl);
    buf[kl + nl] = '\0';
    return 0;
}

int st_key_format_sysv(char *buf, size_t len, uint64_t ipcns_ino, int shmid)
{
    int n = snprintf(buf, len, "sysv:%" PRIu64 ":%d", ipcns_ino, shmid);
    return (n < 0 || (size_t)n >= len) ? -ENAMETOOLONG : 0;
}

int st_key_kind(const char *key, st_kind_t *out)
{
    const char *colon = strchr(key, ':');
    if (colon == NULL || (size_t)(colon - key) >= 16)
        return ST_EFORMAT;
    char kind[16];
    memcpy(kind, key, (size_t)(colon - key));
    kind[colon - key] = '\0';
    return st_kind_parse(kind, out);
}

/* Sets the size entries common to global and holder nodes. */
static int set_object_entries(st_node_t *n, const st_object_info_t *info)
{
    if (set_wk_bytes(n, well_known.size, info->size) < 0 ||
        set_wk_bytes(n, well_known.virtual_size, info->virtual_size) < 0 ||
        set_wk_bytes(n, well_known.swapped_size, info->swapped_size) < 0 ||
        set_wk_string(n, well_known.key, info->key) < 0 ||
        set_wk_string(n, well_known.kind, st_kind_name(info->kind)) < 0 ||
        set_wk_string(n, well_known.name, info->name ? info->name : "") < 0)
        return -ENOMEM;
    return 0;
}

/* ---- building fresh nodes ----
 *
 * A node that st_dump_add_object or st_process_add_holder has just created gets its entries
 * written at once, in the order the setters would add them, with room for the entries added
 * later (effective_size; a scanned global's residency_source), and the strings it does not share
 * (its name, key, shown name, ...), all in one piece of the arena: no lookups, one allocation per
 * node (a merge of 100 clients makes 150000 of them), no copy of the strings every node repeats. */
enum { GLOBAL_ENTRIES = 8, GLOBAL_ROOM = 10, HOLDER_ENTRIES = 7, HOLDER_ROOM = 8 };
enum { GLOBAL_NAME_SIZE = 24, PREFIX_LEN = sizeof(ST_HOLDER_PREFIX) - 1 };

static void put_bytes(st_entry_t *e, char *wk, uint64_t value)
{
    *e = (st_entry_t){.name = wk, .units = bytes_units, .value = value, .type = ST_ENTRY_SCALAR};
}

static void put_string(st_entry_t *e, char *wk, const char *s)
{
    *e = (st_entry_t){
        .name = wk, .string = (char *)s, .type = ST_ENTRY_STRING, .string_shared = true};
}

/* A string a fresh node will hold: a copy that lives longer than the node to point at (a shared
 * string), or one to copy into the node's piece of the arena. */
typedef struct nstr {
    const char *s;
    size_t len;
    bool keep; /* point at s: it outlives the node */
} nstr;

/* value (NULL: "") to copy, unless shared_string has it. */
static nstr nstr_of(const char *value)
{
    if (value == NULL)
        value = "";
    size_t len = strlen(value);
    const char *shared = shared_string(value, len);
    return (nstr){shared != NULL ? shared : value, len, shared != NULL};
}

/* Bytes s takes in the node's piece. */
static size_t nstr_room(const nstr *s)
{
    return s->keep ? 0 : s->len + 1;
}

/* The node's copy of s: s itself when kept, else copied to *at, which moves past it. */
static const char *nstr_put(const nstr *s, char **at)
{
    if (s->keep)
        return s->s;
    char *p = *at;
    memcpy(p, s->s, s->len);
    p[s->len] = '\0';
    *at += s->len + 1;
    return p;
}

/* Gives the fresh node n the entry array e (room entries, in the arena) and writes the object's
 * common entries in it (size, virtual_size, swapped_size, key, kind, name). key and name: the
 * node's copies. */
static void put_object_entries(st_node_t *n, st_entry_t *e, size_t room,
                               const st_object_info_t *info, const char *key, const char *name)
{
    put_bytes(&e[0], well_known.size, info->size);
    put_bytes(&e[1], well_known.virtual_size, info->virtual_size);
    put_bytes(&e[2], well_known.swapped_size, info->swapped_size);
    put_string(&e[3], well_known.key, key);
    put_string(&e[4], well_known.kind, st_kind_name(info->kind));
    put_string(&e[5], well_known.name, name);
    n->entries = e;
    n->n_entries = 6;
    n->cap_entries = room;
    n->alloc |= NODE_ENTRIES_ARENA | NODE_CLEAN | NODE_NO_EFFECTIVE;
}

/* A global node's strings beside its common entries: key, name, creator_pid, label. */
enum { GS_KEY, GS_NAME, GS_CREATOR, GS_LABEL, GS_COUNT };

/* Writes a global node's entries into e, the start of its piece of the arena, and the strings s
 * that it does not keep at at, further in that piece. Returns its creator_pid string. */
static const char *put_global_entries(st_node_t *n, st_entry_t *e, char *at,
                                      const st_object_info_t *info, const nstr s[GS_COUNT])
{
    const char *v[GS_COUNT];
    for (int i = 0; i < GS_COUNT; i++)
        v[i] = nstr_put(&s[i], &at);
    put_object_entries(n, e, GLOBAL_ROOM, info, v[GS_KEY], v[GS_NAME]);
    put_string(&e[6], well_known.creator_pid, v[GS_CREATOR]);
    put_string(&e[7], well_known.label, v[GS_LABEL]);
    n->n_entries = GLOBAL_ENTRIES;
    return v[GS_CREATOR];
}

/* st_dump_add_object; look: false when the caller knows that no global has the guid (then
 * neither a lookup nor the index: it catches up on the next lookup). */
static int add_object(st_global_dump_t *dump, const st_object_info_t *info, int carrier_pid,
                      bool look, st_node_t **out)
{
    uint64_t guid = info->guid != 0 ? info->guid : st_guid_global(info->key);
    char pid[16];
    st_node_t *n = look ? st_dump_find_global(dump, guid) : NULL;
    bool fresh = n == NULL || (n->n_entries == 0 && n->cap_entries == 0);
    int rc = 0;
    if (fresh && dump_arena(dump) != NULL) {
        struct st_model_arena *a = dump->arena;
        unsigned pk = (unsigned)info->creator_pid % PID_STRINGS;
        bool known = a->pids[pk].s != NULL && a->pids[pk].pid == info->creator_pid;
        /* one piece: entries, the node's name when it is new, then its strings */
        const nstr s[GS_COUNT] = {nstr_of(info->key), nstr_of(info->name),
                                  known ? (nstr){a->pids[pk].s, 0, true}
                                        : (nstr){pid, pid_str(pid, info->creator_pid), false},
                                  nstr_of(info->label)};
        size_t head = GLOBAL_ROOM * sizeof(st_entry_t) + (n == NULL ? GLOBAL_NAME_SIZE : 0);
        size_t bytes = head;
        for (int i = 0; i < GS_COUNT; i++)
            bytes += nstr_room(&s[i]);
        char *p = arena_alloc(a, bytes);
        if (p == NULL)
            return -ENOMEM;
        if (n == NULL) {
            char *name = p + head - GLOBAL_NAME_SIZE;
            global_name24(guid, name);
            if ((rc = append_global(dump, name, true, guid, false, carrier_pid, look, &n)) < 0)
                return rc;
        }
        const char *creator = put_global_entries(n, (st_entry_t *)(void *)p, p + head, info, s);
        if (!known) {
            a->pids[pk].pid = info->creator_pid;
            a->pids[pk].s = creator;
        }
    } else {
        char name[GLOBAL_NAME_SIZE];
        st_global_name(guid, name, sizeof(name));
        pid_str(pid, info->creator_pid);
        if ((n == NULL &&
             (rc = append_global(dump, name, false, guid, false, carrier_pid, look, &n)) < 0) ||
            (rc = set_object_entries(n, info)) < 0 ||
            (rc = set_wk_string(n, well_known.creator_pid, pid)) < 0 ||
            (rc = set_wk_string(n, well_known.label, info->label ? info->label : "")) < 0)
            return rc;
    }
    if (out != NULL)
        *out = n;
    return 0;
}

int st_dump_add_object(st_global_dump_t *dump, const st_object_info_t *info, int carrier_pid,
                       st_node_t **out)
{
    return add_object(dump, info, carrier_pid, true, out);
}

int st_dump_append_object(st_global_dump_t *dump, const st_object_info_t *info, int carrier_pid,
                          st_node_t **out)
{
    return add_object(dump, info, carrier_pid, false, out);
}

/* st_process_add_holder's lookups: the process's seed of holder guids, made on first use. */
static uint64_t holder_seed(st_process_dump_t *proc)
{
    if (proc->holder_seed == 0) {
        if (proc->guid_seed == 0)
            proc->guid_seed = local_seed(proc->pid);
        proc->holder_seed = fnv_more(proc->guid_seed, ST_HOLDER_PREFIX);
    }
    return proc->holder_seed;
}

/* Creates the holder node named path (hash h, pre: proc has none) in one piece of proc's arena:
 * its entries (the object's, mapped_size), then the strings it does not keep: its name (whose end
 * is the key entry's string) and the shown name. */
static int new_holder_node(st_process_dump_t *proc, const nstr *path, uint64_t h, uint64_t guid,
                           const st_object_info_t *info, const nstr *name, uint64_t mapped_size,
                           st_node_t **out)
{
    char *p = arena_alloc(proc->arena,
                          HOLDER_ROOM * sizeof(st_entry_t) + nstr_room(path) + nstr_room(name));
    if (p == NULL)
        return -ENOMEM;
    st_entry_t *e = (st_entry_t *)(void *)p;
    char *at = p + HOLDER_ROOM * sizeof(*e);
    const char *ps = nstr_put(path, &at), *ns = nstr_put(name, &at);
    st_node_t *n = NULL;
    int rc = append_node(proc, (char *)ps, NODE_NAME_ARENA, h, guid, false, &n);
    if (rc < 0)
        return rc;
    put_object_entries(n, e, HOLDER_ROOM, info, ps + PREFIX_LEN, ns);
    put_bytes(&e[6], well_known.mapped_size, mapped_size);
    n->n_entries = HOLDER_ENTRIES;
    *out = n;
    return 0;
}

/* st_process_add_holder of the object hp describes. A node it creates copies hp's strings into
 * its piece of the arena (copy: they are the caller's) or points at them (hp is a proto of proc's
 * dump, whose strings live as long as the node). */
static int add_holder(st_process_dump_t *proc, const st_holder_proto_t *hp, bool copy,
                      uint64_t mapped_size, int importance, st_node_t **out)
{
    const st_object_info_t info = {.key = hp->path + PREFIX_LEN,
                                   .kind = (st_kind_t)hp->kind,
                                   .name = hp->name,
                                   .size = hp->size,
                                   .virtual_size = hp->virtual_size,
                                   .swapped_size = hp->swapped_size,
                                   .guid = hp->target};
    uint64_t guid = fnv_n(holder_seed(proc), info.key, hp->path_len - PREFIX_LEN);
    guid = guid ? guid : 1; /* guid_from_seed's */
    st_node_t *node = find_node_h(proc, hp->path, hp->path_hash);
    bool is_new = node == NULL;
    int rc;
    if (is_new && proc->arena != NULL) {
        const nstr path = {hp->path, hp->path_len, !copy},
                   name = copy ? nstr_of(hp->name) : (nstr){hp->name, 0, true};
        rc = new_holder_node(proc, &path, hp->path_hash, guid, &info, &name, mapped_size, &node);
    } else {
        rc = is_new ? add_node_h(proc, hp->path, hp->path_hash, guid, false, &node, &is_new) : 0;
        if (rc == 0 && (rc = set_object_entries(node, &info)) == 0)
            rc = set_wk_bytes(node, well_known.mapped_size, mapped_size);
    }
    if (rc < 0)
        return rc;
    bool have_edge = false, only = false;
    size_t k = (size_t)(node - proc->nodes);
    if (!is_new && !(proc->alloc & PROC_OTHER_EDGES) && k < proc->n_edges &&
        proc->edges[k].source == node->guid) {
        /* its only edge (PROC_OTHER_EDGES): a process holding n objects, seen again (the /proc
         * scan's holders, then the coordinator's), was n^2 edge reads */
        proc->edges[k].target = hp->target;
        proc->edges[k].importance = importance;
        have_edge = only = true;
    }
    for (size_t i = 0; !is_new && !only && i < proc->n_edges; i++) {
        if (proc->edges[i].source == node->guid) {
            proc->edges[i].target = hp->target;
            proc->edges[i].importance = importance;
            have_edge = true;
        }
    }
    if (!have_edge && (rc = append_edge(proc, node->guid, hp->target, importance)) < 0)
        return rc;
    if (out != NULL)
        *out = node;
    return 0;
}

/* The holder node's name of key into path (HOLDER_PATH_SIZE bytes); its length, or 0 when the
 * key is too long. */
enum { HOLDER_PATH_SIZE = sizeof(ST_HOLDER_PREFIX) + ST_KEY_MAX };

static size_t holder_path(const char *key, char *path)
{
    size_t kl = strlen(key);
    if (PREFIX_LEN + kl >= HOLDER_PATH_SIZE)
        return 0;
    memcpy(path, ST_HOLDER_PREFIX, PREFIX_LEN);
    memcpy(path + PREFIX_LEN, key, kl + 1);
    return PREFIX_LEN + kl;
}

/* The parts of hp that do not depend on where its strings are. */
static void proto_values(st_holder_proto_t *hp, const st_object_info_t *info)
{
    hp->path_hash = st__name_hash(hp->path, hp->path_len);
    hp->kind = (uint32_t)info->kind;
    hp->size = info->size;
    hp->virtual_size = info->virtual_size;
    hp->swapped_size = info->swapped_size;
    hp->target = info->guid != 0 ? info->guid : st_guid_global(info->key);
}

int st_process_add_holder(st_process_dump_t *proc, const st_object_info_t *info,
                          uint64_t mapped_size, int importance, st_node_t **out)
{
    char path[HOLDER_PATH_SIZE];
    size_t len = holder_path(info->key, path);
    if (len == 0)
        return -ENAMETOOLONG;
    /* a proto of the caller's strings, which a new node copies */
    st_holder_proto_t hp = {.path = path, .name = info->name, .path_len = (uint32_t)len};
    proto_values(&hp, info);
    return add_holder(proc, &hp, true, mapped_size, importance, out);
}

int st_dump_holder_proto(st_global_dump_t *dump, const st_object_info_t *info,
                         st_holder_proto_t *out)
{
    size_t kl = strlen(info->key), len = PREFIX_LEN + kl;
    if (len >= HOLDER_PATH_SIZE) /* st_process_add_holder's limit */
        return -ENAMETOOLONG;
    if (dump->proc_arena == NULL &&
        (dump->proc_arena = calloc(1, sizeof(*dump->proc_arena))) == NULL)
        return -ENOMEM;
    /* one piece: the path, written in place, then the shown name unless it is a shared string */
    const nstr name = nstr_of(info->name);
    char *path = arena_alloc(dump->proc_arena, len + 1 + nstr_room(&name));
    if (path == NULL)
        return -ENOMEM;
    memcpy(path, ST_HOLDER_PREFIX, PREFIX_LEN);
    memcpy(path + PREFIX_LEN, info->key, kl + 1);
    char *at = path + len + 1;
    *out = (st_holder_proto_t){.path = path, .path_len = (uint32_t)len};
    out->name = nstr_put(&name, &at);
    proto_values(out, info);
    return 0;
}

int st_process_set_arena(st_global_dump_t *dump, st_process_dump_t *p, unsigned which)
{
    struct st_model_arena **a = which == 0 ? &dump->proc_arena : &dump->proc_arena2;
    if (*a == NULL && (*a = calloc(1, sizeof(**a))) == NULL)
        return -ENOMEM;
    p->arena = *a;
    return 0;
}

int st_process_add_holder_proto(st_process_dump_t *proc, const st_holder_proto_t *proto,
                                uint64_t mapped_size, int importance, st_node_t **out)
{
    return add_holder(proc, proto, false, mapped_size, importance, out);
}
