/* SPDX-License-Identifier: MIT
 *
 * The ownership graph processor (private): Chromium memory-infra's algorithm, specified in
 * shared/ALGORITHM.md, over one global dump. Pure: model in, sizes out; no I/O, no globals.
 *
 * The result lists every node that survived weak removal (explicit ones, implicit ancestors and
 * the "<unspecified>" children it adds) with its computed size and its effective size in whole
 * bytes, rounded so that every split conserves bytes exactly (largest remainder, ties to the lowest
 * pid, then the lowest node name).
 */
#ifndef SHMTRACK_GRAPH_H
#define SHMTRACK_GRAPH_H

#include "model.h"

/* Where a node's scalar entry comes from (pass 4). */
typedef enum st_graph_entry_origin {
    ST_GRAPH_ENTRY_OWN,        /* reported by the node itself (first reporter wins) */
    ST_GRAPH_ENTRY_AGGREGATED, /* the node lacked it: the sum over its children having it */
    ST_GRAPH_ENTRY_PROPAGATED, /* the node lacked it: copied from the global node it owns */
} st_graph_entry_origin_t;

/* One scalar (uint) entry of a node after pass 4, other than "size" and "effective_size" (those
 * are the node's size and effective_size fields). name and units point into the dump's model
 * (entry names and interned units): valid while that dump lives and keeps those entries;
 * st_graph_annotate only touches "effective_size", so it keeps them valid. */
typedef struct st_graph_entry {
    const char *name;
    const char *units; /* aggregated: the units of the first child having the entry */
    uint64_t value;    /* aggregated: saturating sum */
    st_graph_entry_origin_t origin;
} st_graph_entry_t;

typedef struct st_graph_node {
    int pid;                     /* 0 for the shared global graph */
    char *path;                  /* full name, e.g. "shared_memory/anon:0:1:5", "global/00ab..." */
    uint64_t guid;               /* 0 for implicit nodes and "<unspecified>" */
    bool is_explicit;            /* reported by a producer (not an ancestor or "<unspecified>") */
    bool has_size;               /* false: no size could be inferred (a leaf without "size") */
    uint64_t size;               /* after aggregation (pass 5); 0 when !has_size */
    uint64_t effective_size;     /* after rounding; 0 when !has_size */
    long double effective_exact; /* before rounding: leaf size x coefficients, or children's sum */
    uint64_t owns;               /* guid of the node it owns, 0 if none (or the edge was dropped) */
    int importance;              /* of that ownership edge */
    const st_graph_entry_t *entries; /* pass 4's scalar entries, in result->entries; own ones in
                                      * report order, then aggregated, then propagated */
    size_t n_entries;
} st_graph_node_t;

typedef struct st_graph_result {
    st_graph_node_t *nodes; /* sorted by (pid, path) */
    size_t n_nodes;
    char **warnings; /* problems found: unknown edge ends, second edges, bad sizes */
    size_t n_warnings;
    st_graph_entry_t *entries; /* storage of every node's entries (node.entries point into it) */
    size_t n_entries;
    void *strings; /* private: storage of the paths */
} st_graph_result_t;

/* Runs every pass over dump. pre: dump != NULL. Returns 0 or -ENOMEM. A dump of the flat layout
 * (holders "shared_memory/<x>" each owning one childless "global/<x>" node, nothing else) takes a
 * shortcut with the same result; st__graph_process_general never does (for tests). */
int st_graph_process(const st_global_dump_t *dump, st_graph_result_t **out);
int st__graph_process_general(const st_global_dump_t *dump, st_graph_result_t **out);
/* 1 when dump takes the shortcut, 0 when not, -ENOMEM (for tests). */
int st__graph_flat(const st_global_dump_t *dump);
/* The shortcut's size pass runs on two threads (each half of the global nodes) from this many
 * global nodes on; tests lower it to compare both ways on small dumps. */
extern size_t st__graph_flat_split_min;
/* How many times st_graph_annotate_links could use the links it was given (for tests). */
extern size_t st__graph_links_taken;
void st_graph_result_free(st_graph_result_t *result);
/* The node (pid, path), or NULL when it was removed or never existed. */
const st_graph_node_t *st_graph_find(const st_graph_result_t *result, int pid, const char *path);

/* Writes the computed "effective_size" entry into every explicit node of dump (process nodes and
 * global nodes; a node without a size, or removed as weak, loses any stale entry) and appends the
 * result's warnings to dump->warnings (once: a warning already present is not added again). */
int st_graph_annotate(st_global_dump_t *dump, const st_graph_result_t *result);

/* The flat layout (docs/graph.md) as its builder knows it: the coordinator's merge made every node
 * of the dump with st_dump_add_object and st_process_add_holder (or took the scanner's, made the
 * same way) and knows which global node each holder owns, so st_graph_annotate_links need not
 * find that out with a guid table, name checks and size lookups as st_graph_annotate_dump does.
 * Process nodes are numbered in order: dump->procs[0]'s nodes first (after st_dump_sort). */
typedef struct st_graph_links {
    const uint32_t *target; /* per process node: the index in dump->globals of the node it owns */
    const uint64_t *size;   /* per process node: its "size" entry (every node has one) */
    const uint64_t *glob_size; /* per global node: its "size" entry */
} st_graph_links_t;

/* st_graph_annotate_dump's outcome for a dump of the flat layout whose links are given. It checks
 * what is cheap (non-zero sorted pids, one edge per node whose source is that node, a target per
 * holder, no process holding one global node twice, no weak node) and takes the general way when
 * that fails; it trusts the builder for what is not (unique names and guids, targets equal to the
 * edges' and sizes equal to the entries: the model's builders make them so). */
int st_graph_annotate_links(st_global_dump_t *dump, const st_graph_links_t *links);

/* st_graph_process + st_graph_annotate of one dump, with the same outcome; on the flat layout that
 * the coordinator and the scanner produce it writes the sizes without building a result. */
int st_graph_annotate_dump(st_global_dump_t *dump);

/* Convenience: st_graph_annotate_dump of every dump of a trace. */
int st_graph_annotate_trace(st_trace_t *trace);

#endif
