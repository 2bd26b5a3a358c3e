/* SPDX-License-Identifier: MIT
 *
 * The report summary: turns one global dump and its graph result into per-process and per-object
 * ownership figures (see summary.h, docs/report.md). Pure code: no I/O, no globals.
 *
 * Every number charged to someone comes from the graph result, never from an effective_size entry
 * the dump may carry (a file is not trusted to agree with the algorithm). Holders are found from
 * the result's ownership fields rather than from the dump's edges because the graph processor
 * already dropped the edges it refused (unknown ends, second edges, weak targets); an object
 * whose global node did not survive weak removal is not reported at all.
 */
#include "summary.h"
#include "array.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- small helpers ---- */

/* strdup that keeps NULL as NULL; *ok turns false on allocation failure. */
static char *dup_or_null(const char *s, bool *ok)
{
    if (s == NULL)
        return NULL;
    char *d = strdup(s);
    if (d == NULL)
        *ok = false;
    return d;
}

/* acc += v, capped at UINT64_MAX; *capped turns true when the cap was hit. */
static void add_capped(uint64_t *acc, uint64_t v, bool *capped)
{
    if (*acc > UINT64_MAX - v) {
        *acc = UINT64_MAX;
        *capped = true;
    } else {
        *acc += v;
    }
}

/* Warnings accumulate while building; cap_warnings is local to the builder. */
typedef struct builder {
    st_summary_t *s;
    size_t cap_warnings;
} builder_t;

/* Appends a copy of text unless an equal warning is already there. */
static int add_warning_text(builder_t *b, const char *text)
{
    st_summary_t *s = b->s;
    for (size_t i = 0; i < s->n_warnings; i++)
        if (strcmp(s->warnings[i], text) == 0)
            return 0;
    char *copy = strdup(text);
    if (copy == NULL || st__array_grow((void **)&s->warnings, &b->cap_warnings, s->n_warnings + 1,
                                       sizeof(char *)) < 0) {
        free(copy);
        return -ENOMEM;
    }
    s->warnings[s->n_warnings++] = copy;
    return 0;
}

__attribute__((format(printf, 2, 3))) static int add_warning(builder_t *b, const char *fmt, ...)
{
    char *text = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&text, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -ENOMEM;
    int rc = add_warning_text(b, text);
    free(text);
    return rc;
}

/* ---- processes ---- */

/* True for "shared_memory/<key>": the holder layout, one level below "shared_memory". */
static bool is_holder_path(const char *path)
{
    size_t n = strlen(ST_HOLDER_PREFIX);
    return strncmp(path, ST_HOLDER_PREFIX, n) == 0 && path[n] != '\0' &&
           strchr(path + n, '/') == NULL;
}

static int fill_process(st_summary_process_t *sp, const st_process_dump_t *proc,
                        const st_graph_result_t *graph, bool *capped)
{
    bool ok = true;
    sp->pid = proc->pid;
    sp->name = dup_or_null(proc->name, &ok);
    if (!ok)
        return -ENOMEM;

    const st_graph_node_t *sm = st_graph_find(graph, proc->pid, "shared_memory");
    sp->shared_owned_bytes = sm != NULL ? sm->effective_size : 0;

    for (size_t i = 0; i < proc->n_nodes; i++) {
        const st_node_t *n = &proc->nodes[i];
        uint64_t mapped = 0;
        if (!is_holder_path(n->name) || !st_node_scalar(n, "mapped_size", &mapped))
            continue;
        /* A holder that weak removal dropped maps nothing the report can show. */
        if (st_graph_find(graph, proc->pid, n->name) == NULL)
            continue;
        add_capped(&sp->shared_mapped_bytes, mapped, capped);
    }

    const st_totals_t *t = &proc->totals;
    sp->present = t->present & (ST_SUMMARY_HAS_RSS | ST_SUMMARY_HAS_PSS | ST_SUMMARY_HAS_PRIVATE);
    sp->rss_bytes = t->resident_set_bytes;
    sp->pss_bytes = t->pss_bytes;
    sp->private_footprint_bytes = t->private_footprint_bytes;
    return 0;
}

static int cmp_process(const void *a, const void *b)
{
    const st_summary_process_t *x = a, *y = b;
    return (x->pid > y->pid) - (x->pid < y->pid);
}

/* ---- objects ---- */

/* The graph nodes that own something, sorted by (owned guid, pid, path): the holders of one
 * object are then one run, found by binary search. */
typedef struct owner_ref {
    uint64_t owns;
    const st_graph_node_t *node;
} owner_ref_t;

static int cmp_owner_ref(const void *a, const void *b)
{
    const owner_ref_t *x = a, *y = b;
    if (x->owns != y->owns)
        return x->owns < y->owns ? -1 : 1;
    if (x->node->pid != y->node->pid)
        return x->node->pid < y->node->pid ? -1 : 1;
    return strcmp(x->node->path, y->node->path);
}

/* Index of the first ref owning guid, or n. */
static size_t first_owner(const owner_ref_t *refs, size_t n, uint64_t guid)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (refs[mid].owns < guid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* creator_pid is a decimal string in the format; anything else counts as unknown. */
static int parse_pid(const char *s)
{
    if (s == NULL || *s == '\0')
        return 0;
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v <= 0 || v > INT32_MAX)
        return 0;
    return (int)v;
}

static int fill_object(st_summary_object_t *so, const st_node_t *global, const char *key,
                       const st_graph_node_t *gnode, const owner_ref_t *refs, size_t n_refs,
                       bool *capped)
{
    bool ok = true;
    so->key = dup_or_null(key, &ok);

    const char *kind = st_node_string(global, "kind");
    st_kind_t k;
    if ((kind == NULL || *kind == '\0') && st_key_kind(key, &k) == 0)
        kind = st_kind_name(k);
    so->kind = dup_or_null(kind ? kind : "", &ok);

    const char *name = st_node_string(global, "name");
    so->name = dup_or_null(name ? name : "", &ok);
    const char *label = st_node_string(global, "label");
    if (label != NULL && *label != '\0')
        so->label = dup_or_null(label, &ok);
    if (!ok)
        return -ENOMEM;
    so->creator_pid = parse_pid(st_node_string(global, "creator_pid"));

    so->size = gnode->size;
    so->unattributed = gnode->effective_size;
    st_node_scalar(global, "virtual_size", &so->virtual_size);
    st_node_scalar(global, "swapped_size", &so->swapped_size);

    /* Holders: one per pid; a process owning the object through several nodes (unusual, but
     * the format allows it) is charged their sum and shown with its highest claim. */
    size_t cap = 0;
    for (size_t i = first_owner(refs, n_refs, global->guid);
         i < n_refs && refs[i].owns == global->guid; i++) {
        const st_graph_node_t *g = refs[i].node;
        st_summary_holder_t *last = so->n_holders ? &so->holders[so->n_holders - 1] : NULL;
        if (last != NULL && last->pid == g->pid) {
            add_capped(&last->effective_size, g->effective_size, capped);
            if (g->importance > last->importance)
                last->importance = g->importance;
            continue;
        }
        if (st__array_grow((void **)&so->holders, &cap, so->n_holders + 1, sizeof(*so->holders)) <
            0)
            return -ENOMEM;
        so->holders[so->n_holders++] =
            (st_summary_holder_t){g->pid, g->importance, g->effective_size};
    }

    uint64_t best = 0;
    for (size_t i = 0; i < so->n_holders; i++) {
        if (so->holders[i].effective_size > best) { /* strict: ties keep the lower pid */
            best = so->holders[i].effective_size;
            so->owner_pid = so->holders[i].pid;
        }
    }
    return 0;
}

static int cmp_object(const void *a, const void *b)
{
    const st_summary_object_t *x = a, *y = b;
    return strcmp(x->key, y->key);
}

/* ---- the builder ---- */

static bool over_json(uint64_t v)
{
    return v > (uint64_t)INT64_MAX;
}

/* True when a number the JSON output writes does not fit a JSON integer (json_int_t). */
static bool any_over_json(const st_summary_t *s)
{
    if (over_json(s->id) || over_json(s->ts_us) || over_json(s->shared_resident_unique) ||
        over_json(s->attributed) || over_json(s->unattributed))
        return true;
    for (size_t i = 0; i < s->n_procs; i++) {
        const st_summary_process_t *p = &s->procs[i];
        if (over_json(p->shared_owned_bytes) || over_json(p->shared_mapped_bytes) ||
            over_json(p->rss_bytes) || over_json(p->pss_bytes) ||
            over_json(p->private_footprint_bytes))
            return true;
    }
    for (size_t i = 0; i < s->n_objects; i++) {
        const st_summary_object_t *o = &s->objects[i];
        if (over_json(o->size) || over_json(o->virtual_size) || over_json(o->swapped_size))
            return true;
        for (size_t j = 0; j < o->n_holders; j++)
            if (over_json(o->holders[j].effective_size))
                return true;
    }
    return false;
}

int st_summary_build(const st_global_dump_t *dump, const st_graph_result_t *graph,
                     st_summary_t **out)
{
    int rc = -ENOMEM;
    owner_ref_t *refs = NULL;
    st_summary_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        goto out;
    builder_t b = {s, 0};
    bool capped = false;

    s->id = dump->id;
    s->ts_us = dump->ts_us;
    s->partial = dump->partial;

    for (size_t i = 0; i < dump->n_warnings; i++)
        if ((rc = add_warning_text(&b, dump->warnings[i])) < 0)
            goto out;
    for (size_t i = 0; i < graph->n_warnings; i++)
        if ((rc = add_warning_text(&b, graph->warnings[i])) < 0)
            goto out;

    rc = -ENOMEM;
    if (dump->n_problems > 0) {
        s->problems = calloc(dump->n_problems, sizeof(*s->problems));
        if (s->problems == NULL)
            goto out;
        for (size_t i = 0; i < dump->n_problems; i++) {
            const st_problem_t *p = &dump->problems[i];
            s->problems[i].pid = p->pid;
            s->problems[i].err = p->err;
            if ((s->problems[i].path = strdup(p->path ? p->path : "")) == NULL)
                goto out;
            s->n_problems++;
        }
    }

    if (dump->n_procs > 0) {
        s->procs = calloc(dump->n_procs, sizeof(*s->procs));
        if (s->procs == NULL)
            goto out;
        for (size_t i = 0; i < dump->n_procs; i++) {
            s->n_procs++;
            if ((rc = fill_process(&s->procs[i], &dump->procs[i], graph, &capped)) < 0)
                goto out;
        }
        qsort(s->procs, s->n_procs, sizeof(*s->procs), cmp_process);
    }

    rc = -ENOMEM;
    size_t n_refs = 0;
    if (graph->n_nodes > 0 && (refs = calloc(graph->n_nodes, sizeof(*refs))) == NULL)
        goto out;
    for (size_t i = 0; i < graph->n_nodes; i++) {
        const st_graph_node_t *g = &graph->nodes[i];
        if (g->owns != 0 && g->pid != 0)
            refs[n_refs++] = (owner_ref_t){g->owns, g};
    }
    if (n_refs > 0)
        qsort(refs, n_refs, sizeof(*refs), cmp_owner_ref);

    if (dump->n_globals > 0 && (s->objects = calloc(dump->n_globals, sizeof(*s->objects))) == NULL)
        goto out;
    for (size_t i = 0; i < dump->n_globals; i++) {
        const st_node_t *global = &dump->globals[i];
        const char *key = st_node_string(global, "key");
        if (key == NULL || *key == '\0')
            continue; /* not a shared memory object: some other producer's global node */
        const st_graph_node_t *gnode = st_graph_find(graph, 0, global->name);
        if (gnode == NULL)
            continue; /* removed as weak, with every edge to it */
        st_summary_object_t *so = &s->objects[s->n_objects++];
        if ((rc = fill_object(so, global, key, gnode, refs, n_refs, &capped)) < 0)
            goto out;
    }
    if (s->n_objects > 0)
        qsort(s->objects, s->n_objects, sizeof(*s->objects), cmp_object);
    for (size_t i = 1; i < s->n_objects; i++)
        if (strcmp(s->objects[i - 1].key, s->objects[i].key) == 0 &&
            (rc = add_warning(&b, "summary: two global nodes carry the key %s",
                              s->objects[i].key)) < 0)
            goto out;

    for (size_t i = 0; i < s->n_objects; i++) {
        const st_summary_object_t *o = &s->objects[i];
        add_capped(&s->shared_resident_unique, o->size, &capped);
        add_capped(&s->unattributed, o->unattributed, &capped);
        for (size_t j = 0; j < o->n_holders; j++)
            add_capped(&s->attributed, o->holders[j].effective_size, &capped);
    }

    if (capped && (rc = add_warning(&b, "summary: a sum exceeds 2^64-1 bytes and was capped")) < 0)
        goto out;
    if (s->attributed > UINT64_MAX - s->unattributed ||
        s->attributed + s->unattributed != s->shared_resident_unique) {
        rc = add_warning(&b,
                         "summary: invariant violated: attributed %" PRIu64
                         " + unattributed %" PRIu64 " != shared_resident_unique %" PRIu64,
                         s->attributed, s->unattributed, s->shared_resident_unique);
        if (rc < 0)
            goto out;
    }
    if (any_over_json(s) &&
        (rc = add_warning(&b, "summary: a value exceeds 2^63-1 and is written as "
                              "9223372036854775807 in JSON")) < 0)
        goto out;

    *out = s;
    s = NULL;
    rc = 0;
out:
    free(refs);
    st_summary_free(s);
    return rc;
}

int st_summary_compute(const st_global_dump_t *dump, st_summary_t **out)
{
    st_graph_result_t *graph = NULL;
    int rc = st_graph_process(dump, &graph);
    if (rc == 0)
        rc = st_summary_build(dump, graph, out);
    st_graph_result_free(graph);
    return rc;
}

void st_summary_free(st_summary_t *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n_procs; i++)
        free(s->procs[i].name);
    free(s->procs);
    for (size_t i = 0; i < s->n_objects; i++) {
        st_summary_object_t *o = &s->objects[i];
        free(o->key);
        free(o->kind);
        free(o->name);
        free(o->label);
        free(o->holders);
    }
    free(s->objects);
    for (size_t i = 0; i < s->n_warnings; i++)
        free(s->warnings[i]);
    free(s->warnings);
    for (size_t i = 0; i < s->n_problems; i++)
        free(s->problems[i].path);
    free(s->problems);
    free(s);
}
