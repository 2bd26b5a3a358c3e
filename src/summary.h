/* SPDX-License-Identifier: MIT
 *
 * The report summary (private): what `shmtrack report` prints and what the web view embeds, built
 * from one global dump and the graph processor's result for it (shared/DESIGN.md §5, the
 * `report --format json` schema; docs/report.md is the contract).
 *
 *   st_summary_t            one global dump: id, ts, totals, partial, warnings, problems
 *   ├ st_summary_process_t  per pid: shared owned/mapped bytes and the process totals
 *   └ st_summary_object_t   per object (a global node with a "key"): sizes, owner, holders
 *     └ st_summary_holder_t per holding process: the edge's importance, its effective size
 *
 * Building a summary is pure (no I/O, no globals): the numbers are the graph result's, never an
 * effective_size a file carried. The builder checks the invariant Σ holders' effective +
 * unattributed == Σ objects' size and says so in the summary's warnings when it does not hold.
 * The JSON functions at the end turn summaries into jansson values with the schema's key order;
 * they are the only part that knows jansson.
 */
#ifndef SHMTRACK_SUMMARY_H
#define SHMTRACK_SUMMARY_H

#include "graph.h"
#include "model.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct st_summary_holder {
    int pid;
    int importance;          /* of the holder's ownership edge */
    uint64_t effective_size; /* what the graph processor charged this holder */
} st_summary_holder_t;

typedef struct st_summary_object {
    char *key;
    char *kind;            /* the node's "kind" string, else the key's prefix */
    char *name;            /* "" when the producer gave none */
    char *label;           /* NULL when none or empty */
    int creator_pid;       /* 0 when unknown */
    uint64_t size;         /* the graph processor's size of the global node */
    uint64_t virtual_size; /* entries of the global node; 0 when absent */
    uint64_t swapped_size;
    uint64_t unattributed;        /* the global node's own effective size */
    int owner_pid;                /* the holder charged most (ties: lowest pid); 0 when nobody */
    st_summary_holder_t *holders; /* sorted by pid, one per pid */
    size_t n_holders;
} st_summary_object_t;

/* Which of the process-total fields the producer reported. */
#define ST_SUMMARY_HAS_RSS ST_TOTAL_HAS(resident_set_bytes)
#define ST_SUMMARY_HAS_PSS ST_TOTAL_HAS(pss_bytes)
#define ST_SUMMARY_HAS_PRIVATE ST_TOTAL_HAS(private_footprint_bytes)

typedef struct st_summary_process {
    int pid;
    char *name;                   /* NULL when unknown */
    uint64_t shared_owned_bytes;  /* effective size of the pid's "shared_memory" subtree */
    uint64_t shared_mapped_bytes; /* Σ mapped_size of its "shared_memory/<key>" nodes */
    uint64_t rss_bytes;           /* process totals; valid when the bit is in present */
    uint64_t pss_bytes;
    uint64_t private_footprint_bytes;
    unsigned present; /* ST_SUMMARY_HAS_* bits */
} st_summary_process_t;

typedef struct st_summary_problem {
    int pid;    /* 0 when not about one process */
    char *path; /* never NULL */
    int err;    /* as in st_problem_t: positive errno or a negative ST_E* code */
} st_summary_problem_t;

typedef struct st_summary {
    uint64_t id;
    uint64_t ts_us;
    st_summary_process_t *procs; /* sorted by pid */
    size_t n_procs;
    st_summary_object_t *objects; /* sorted by key */
    size_t n_objects;
    uint64_t shared_resident_unique; /* Σ objects' size */
    uint64_t attributed;             /* Σ holders' effective_size */
    uint64_t unattributed;           /* Σ objects' global-node effective size */
    bool partial;                    /* copied from the dump */
    char **warnings; /* the dump's, then the graph processor's, then the summary's; no repeats */
    size_t n_warnings;
    st_summary_problem_t *problems; /* copied from the dump */
    size_t n_problems;
} st_summary_t;

/* Builds the summary of dump from graph, the result of st_graph_process(dump). Pure.
 * pre: dump != NULL, graph != NULL. Returns 0 or -ENOMEM. */
int st_summary_build(const st_global_dump_t *dump, const st_graph_result_t *graph,
                     st_summary_t **out);

/* Runs the graph processor over dump, then st_summary_build. Returns 0 or -ENOMEM. */
int st_summary_compute(const st_global_dump_t *dump, st_summary_t **out);

void st_summary_free(st_summary_t *summary);

/* The summary as one element of DESIGN §5's "dumps" array, keys in the schema's order followed
 * by the additive "partial", "warnings" and "problems". Integers are JSON integers; a value above
 * INT64_MAX (only from a corrupt input) is written as INT64_MAX and the builder has already said
 * so in warnings. Returns 0 or -ENOMEM; *out is a new reference. */
int st_summary_to_json(const st_summary_t *summary, json_t **out);

/* {"dumps":[...]} over n summaries, in the order given. */
int st_summaries_to_json(st_summary_t *const *summaries, size_t n, json_t **out);

/* {"dumps":[...]} for every dump of trace, each recomputed with the graph processor: exactly
 * what `shmtrack report --format json --dump all` prints. */
int st_trace_summary_json(const st_trace_t *trace, json_t **out);

#endif
