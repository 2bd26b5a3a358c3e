/* SPDX-License-Identifier: MIT
 *
 * The memory dump model (private to the project): what a trace holds, independent of how it is
 * stored (JSON trace, binary wire records) and of what computes on it (the graph processor).
 *
 *   st_trace_t            a whole trace: metadata + global dumps in order
 *   └ st_global_dump_t    one global dump (id, ts): process dumps + the global nodes + warnings
 *     ├ st_process_dump_t one pid: name, process totals, its allocator nodes and ownership edges
 *     │ └ st_node_t       one allocator dump ("shared_memory/anon:0:1:27"): guid, weak, entries
 *     └ st_node_t         the shared "global/<guid>" nodes, each kept once, with the pid that
 *                         carries it in the file
 *
 * The model is plain arrays the caller may read directly; mutate it only through the functions
 * below so that lookups stay consistent. All strings are owned by the model. Nothing here does
 * I/O. Object keys, kinds and the shmtrack-specific layout (holder node + edge to a global node)
 * are helpers on top of the generic Chrome memory-infra model, at the end of this header.
 */
#ifndef SHMTRACK_MODEL_H
#define SHMTRACK_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- closed sets ------------------------------------------------------------------------- */

/* Object kinds (DESIGN §1): enum value, key prefix. */
#define ST_KIND_MAP(XX)                                                                            \
    XX(ST_KIND_ANON, "anon")                                                                       \
    XX(ST_KIND_MEMFD, "memfd")                                                                     \
    XX(ST_KIND_POSIX, "posix")                                                                     \
    XX(ST_KIND_SYSV, "sysv")                                                                       \
    XX(ST_KIND_HUGETLB, "hugetlb")

typedef enum st_kind {
#define XX(e, s) e,
    ST_KIND_MAP(XX)
#undef XX
        ST_KIND_COUNT
} st_kind_t;

/* Ownership policies (DESIGN §4). */
#define ST_POLICY_MAP(XX)                                                                          \
    XX(ST_POLICY_CREATOR, "creator")                                                               \
    XX(ST_POLICY_EQUAL, "equal")                                                                   \
    XX(ST_POLICY_FIRST_TOUCH, "first-touch")

typedef enum st_policy {
#define XX(e, s) e,
    ST_POLICY_MAP(XX)
#undef XX
        ST_POLICY_COUNT
} st_policy_t;

/* Process totals (DESIGN §5 process_totals): field name == JSON name. */
#define ST_TOTALS_MAP(XX)                                                                          \
    XX(resident_set_bytes)                                                                         \
    XX(private_footprint_bytes)                                                                    \
    XX(pss_bytes)                                                                                  \
    XX(uss_bytes)                                                                                  \
    XX(swap_bytes)                                                                                 \
    XX(rss_shmem_bytes)

enum {
#define XX(f) ST_TOTAL_BIT_##f,
    ST_TOTALS_MAP(XX)
#undef XX
        ST_TOTAL_COUNT
};
#define ST_TOTAL_HAS(f) (1u << ST_TOTAL_BIT_##f)

const char *st_kind_name(st_kind_t kind);         /* "anon"...; "?" when out of range */
int st_kind_parse(const char *s, st_kind_t *out); /* 0 or ST_EFORMAT */
const char *st_policy_name(st_policy_t policy);
int st_policy_parse(const char *s, st_policy_t *out);

/* ---- the generic memory-infra model ------------------------------------------------------ */

typedef enum st_entry_type { ST_ENTRY_SCALAR, ST_ENTRY_STRING } st_entry_type_t;

/* Read entries freely; change them only through st_node_set_*: the well-known names (size, key,
 * kind, ...) are one shared copy each, units "bytes" are shared, and strings of nodes built by
 * st_dump_add_object and st_process_add_holder live in their dump's arena (those of holders built
 * from one st_holder_proto_t are the same copy), so no field here may be freed or assigned by
 * callers. units and string share storage: read units only when type is
 * ST_ENTRY_SCALAR and string only when it is ST_ENTRY_STRING. 32 bytes: a merge of 100 clients
 * holds over a million entries. */
typedef struct st_entry {
    char *name;
    union {
        char *units;  /* scalar: "bytes", "objects", ...; shared by entries: never free it */
        char *string; /* string */
    };
    uint64_t value; /* scalar; 0 for a string */
    st_entry_type_t type;
    bool string_shared; /* private to model.c: string is not the entry's own copy */
} st_entry_t;

typedef struct st_node {
    char *name; /* '/'-separated path; "global/..." for shared nodes; holders built from one
                 * st_holder_proto_t point at the same copy */
    uint64_t guid;
    bool weak;
    uint8_t alloc; /* private to model.c: which of name and entries live in the dump's arena */
    st_entry_t *entries;
    size_t n_entries, cap_entries;
} st_node_t;

typedef struct st_edge {
    uint64_t source; /* guid */
    uint64_t target; /* guid */
    int importance;
} st_edge_t;

typedef struct st_totals {
#define XX(f) uint64_t f;
    ST_TOTALS_MAP(XX)
#undef XX
    unsigned present; /* ST_TOTAL_HAS(...) bits */
} st_totals_t;

struct st_model_index; /* private to model.c: find-by-name / find-by-guid in O(1) */
struct st_model_arena; /* private to model.c: memory freed with the dump */

typedef struct st_process_dump {
    int pid;
    char *name; /* NULL when unknown */
    st_totals_t totals;
    st_node_t *nodes; /* no "global/" nodes here: they live in st_global_dump_t.globals */
    size_t n_nodes, cap_nodes;
    st_edge_t *edges;
    size_t n_edges, cap_edges;
    struct st_model_index *node_index; /* nodes by name; maintained by model.c */
    struct st_model_arena *arena;      /* private to model.c: its dump's proc_arena */
    uint8_t alloc;                     /* private to model.c: which arrays are in the arena */
    uint64_t guid_seed;                /* private to model.c: st_hash64("<pid>:"), 0 until known */
    uint64_t holder_seed; /* private to model.c: st_hash64("<pid>:shared_memory/"), 0 until known */
} st_process_dump_t;

/* Something a producer could not read (scan: a /proc file; coordinator: a peer). */
typedef struct st_problem {
    int pid;    /* 0 when not about one process */
    char *path; /* what was being read; never NULL */
    int err;    /* positive errno or a negative ST_E* code */
} st_problem_t;

typedef struct st_global_dump {
    uint64_t id;
    uint64_t ts_us;
    char *trigger;         /* "periodic_interval" | "explicitly_triggered" */
    char *level_of_detail; /* "detailed" | "background" | "light" */
    st_process_dump_t *procs;
    size_t n_procs, cap_procs;
    st_node_t *globals;  /* the shared graph: each global node once */
    int *global_carrier; /* per global: pid of the process dump that carries it in JSON */
    size_t n_globals, cap_globals, cap_carrier;
    char **warnings; /* sentences from producers and the graph processor */
    size_t n_warnings, cap_warnings;
    st_problem_t *problems;
    size_t n_problems, cap_problems;
    bool partial;                        /* some process could not report; see warnings */
    struct st_model_index *global_index; /* globals by guid; maintained by model.c */
    struct st_model_arena *arena;        /* private to model.c: names, entries and strings of the
                                          * nodes st_dump_add_object and st_process_add_holder
                                          * build, and arrays reserved ahead, freed with the dump */
    struct st_model_arena *proc_arena;   /* private to model.c: the same for the process dumps
                                          * (apart: globals and processes may be built on two
                                          * threads, one each) */
    struct st_model_arena *proc_arena2;  /* private to model.c: a second one, for the process
                                          * dumps st_process_set_arena gives it */
    uint8_t alloc;                       /* private to model.c: which arrays are in the arena */
} st_global_dump_t;

typedef struct st_trace {
    int version;  /* metadata.shmtrack.version; 1 */
    char *policy; /* metadata.shmtrack.policy; NULL when absent */
    char *host;
    char *kernel;
    st_global_dump_t *dumps; /* in order of first appearance / creation */
    size_t n_dumps, cap_dumps;
} st_trace_t;

/* Allocation failures return -ENOMEM and leave the model as it was. */
int st_trace_new(st_trace_t **out);
void st_trace_free(st_trace_t *trace);
/* Frees the n oldest dumps (all when n >= n_dumps); the others move to the front, so pointers to
 * them are invalidated. */
void st_trace_drop_oldest(st_trace_t *trace, size_t n);
/* Moves dump i of src to the end of dst (its id and content unchanged): dumps built apart, e.g.
 * on another thread, join a trace without a copy. -EINVAL when there is no dump i. */
int st_trace_move_dump(st_trace_t *dst, st_trace_t *src, size_t i, st_global_dump_t **out);
int st_trace_set_meta(st_trace_t *trace, const char *policy, const char *host, const char *kernel);

/* Finds the dump with this id or appends a new one (ts_us, trigger "periodic_interval", level
 * "detailed"). The pointer stays valid until the next add to this trace. */
int st_trace_add_dump(st_trace_t *trace, uint64_t id, uint64_t ts_us, st_global_dump_t **out);
st_global_dump_t *st_trace_find_dump(const st_trace_t *trace, uint64_t id);
int st_dump_set_strings(st_global_dump_t *dump, const char *trigger, const char *level_of_detail);

/* Finds or appends the process dump for pid; name (may be NULL) replaces a NULL name only. */
int st_dump_add_process(st_global_dump_t *dump, int pid, const char *name, st_process_dump_t **out);
st_process_dump_t *st_dump_find_process(const st_global_dump_t *dump, int pid);
/* Sorts process dumps by pid and global nodes by name (deterministic output). */
void st_dump_sort(st_global_dump_t *dump);
/* Its two halves, which touch disjoint parts of the dump: the process dumps by pid, the global
 * nodes (and their carriers) by name. */
void st_dump_sort_procs(st_global_dump_t *dump);
void st_dump_sort_globals(st_global_dump_t *dump);

/* Finds a node by name or appends it (guid and weak used only when appending). A name starting
 * with "global/" is refused with -EINVAL: use st_dump_add_global. */
int st_process_add_node(st_process_dump_t *proc, const char *name, uint64_t guid, bool weak,
                        st_node_t **out);
st_node_t *st_process_find_node(const st_process_dump_t *proc, const char *name);
st_node_t *st_process_find_guid(const st_process_dump_t *proc, uint64_t guid);
int st_process_add_edge(st_process_dump_t *proc, uint64_t source, uint64_t target, int importance);
/* Makes room for n_nodes more nodes and n_edges more edges (and their index), so that adding that
 * many moves nothing. The same for global nodes. */
int st_process_reserve(st_process_dump_t *proc, size_t n_nodes, size_t n_edges);
int st_dump_reserve_globals(st_global_dump_t *dump, size_t n);

/* For the graph processor: 1 when no two nodes of proc share a name, 0 when some do, -ENOMEM;
 * true when every global node's name is st_global_name of its guid (so unique guids make unique
 * names). Both are cheap for dumps built with the functions here. */
int st__process_names_unique(const st_process_dump_t *proc);
bool st__dump_names_canonical(const st_global_dump_t *dump);
/* A fast hash of a name of len bytes, for the project's in-memory tables (not stable across
 * versions: never store it). Mix it before masking its low bits. */
uint64_t st__name_hash(const char *s, size_t len);

/* Finds a global node by guid or appends it with this name; carrier_pid is kept from the first
 * add. When found, *created (optional) is false. */
int st_dump_add_global(st_global_dump_t *dump, const char *name, uint64_t guid, bool weak,
                       int carrier_pid, st_node_t **out, bool *created);
st_node_t *st_dump_find_global(const st_global_dump_t *dump, uint64_t guid);

int st_dump_add_warning(st_global_dump_t *dump, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int st_dump_add_problem(st_global_dump_t *dump, int pid, const char *path, int err);

/* Entries: set replaces an entry of the same name (type may change). */
int st_node_set_scalar(st_node_t *node, const char *name, const char *units, uint64_t value);
/* st_node_set_scalar in "bytes", cheaper for the well-known names. */
int st_node_set_bytes(st_node_t *node, const char *name, uint64_t value);
/* The graph processor's answer for node: its effective_size entry set to value, or removed when
 * !has_size. A node made by the dump builders, which has none, gets it without a lookup. */
int st_node_set_effective_size(st_node_t *node, bool has_size, uint64_t value);
int st_node_set_string(st_node_t *node, const char *name, const char *value);
const st_entry_t *st_node_get(const st_node_t *node, const char *name);
/* Drops the entry called name, if any (entries keep their order). */
void st_node_remove(st_node_t *node, const char *name);
/* The scalar's value when the entry exists and is a scalar. */
bool st_node_scalar(const st_node_t *node, const char *name, uint64_t *value);
/* The string's value, or NULL. */
const char *st_node_string(const st_node_t *node, const char *name);

/* ---- guids -------------------------------------------------------------------------------- */

/* A stable 64-bit hash (FNV-1a) of a string: the same in every process and every run. */
uint64_t st_hash64(const char *s);
/* Guid of a process-local node: hash of "<pid>:<name>". */
uint64_t st_guid_local(int pid, const char *name);
/* Guid of the global node of an object key: hash of the key. Never 0. */
uint64_t st_guid_global(const char *key);
/* "global/<16 hex digits>" into buf (>= 24 bytes). */
void st_global_name(uint64_t guid, char *buf, size_t len);

/* ---- shmtrack's layout on top of the model -------------------------------------------------
 *
 * An object is a global node "global/<guid(key)>" with entries size, virtual_size, swapped_size
 * (scalars, bytes) and strings key, kind, name, creator_pid, label. A holder is a process-local
 * node "shared_memory/<key>" with size, virtual_size, swapped_size, mapped_size and strings kind,
 * name, key, plus an ownership edge to the global node carrying the holder's importance.
 */

#define ST_KEY_MAX 96
#define ST_HOLDER_PREFIX "shared_memory/"

typedef struct st_object_info {
    const char *key; /* required */
    st_kind_t kind;
    const char *name; /* shown name (a path, a memfd name); may be NULL */
    uint64_t size;    /* resident bytes */
    uint64_t virtual_size;
    uint64_t swapped_size;
    int creator_pid;   /* 0 when unknown */
    const char *label; /* may be NULL */
    uint64_t guid;     /* st_guid_global(key) when the caller has it at hand; 0: computed */
} st_object_info_t;

/* "<kind>:<major>:<minor>:<ino>" */
int st_key_format(char *buf, size_t len, st_kind_t kind, unsigned major, unsigned minor,
                  uint64_t ino);
/* "sysv:<ipc-ns inode>:<shmid>" */
int st_key_format_sysv(char *buf, size_t len, uint64_t ipcns_ino, int shmid);
/* The kind of a key ("memfd:0:1:5" -> ST_KIND_MEMFD); ST_EFORMAT for anything else. */
int st_key_kind(const char *key, st_kind_t *out);

/* Adds (or finds) the global node of an object and sets its entries. */
int st_dump_add_object(st_global_dump_t *dump, const st_object_info_t *info, int carrier_pid,
                       st_node_t **out);
/* st_dump_add_object for an object whose guid no global node of dump has, which the caller knows
 * (it adds distinct guids to a dump without global nodes, say): no lookup, and the dump's index
 * of globals catches up on its next lookup, not per node. pre: no global node has the guid. */
int st_dump_append_object(st_global_dump_t *dump, const st_object_info_t *info, int carrier_pid,
                          st_node_t **out);
/* Adds the holder node "shared_memory/<key>" to proc with the object's size entries and
 * mapped_size, and its ownership edge to the object's global node with importance. */
int st_process_add_holder(st_process_dump_t *proc, const st_object_info_t *info,
                          uint64_t mapped_size, int importance, st_node_t **out);

/* What every holder of one object has in common, made once per object so that adding each of its
 * holders copies and hashes none of it (a merge of 100 clients adds 100000 holders of 50000
 * objects): the node's name "shared_memory/<key>" and its name entry's string, kept in the arena
 * of the dump's process dumps and shared read-only by the holders built from it (so no holder
 * built so owns them); the object's kind and sizes; its global node's guid. Private to model.c:
 * read nothing in it. 64 bytes. */
typedef struct st_holder_proto {
    const char *path;   /* "shared_memory/<key>" */
    const char *name;   /* the name entry's string */
    uint64_t path_hash; /* st__name_hash of path */
    uint32_t path_len;
    uint32_t kind;
    uint64_t size, virtual_size, swapped_size;
    uint64_t target; /* the global node's guid */
} st_holder_proto_t;

/* Makes the proto of info's holders for the process dumps of dump. It takes from their arena:
 * call it on the thread that adds to them (see st_global_dump_t.proc_arena). -ENAMETOOLONG when
 * the key is longer than ST_KEY_MAX. */
int st_dump_holder_proto(st_global_dump_t *dump, const st_object_info_t *info,
                         st_holder_proto_t *out);
/* The process dumps of a dump take from one arena, so holders are added to them on one thread at
 * a time. st_process_set_arena(dump, p, 1) makes p take from the dump's second process arena from
 * now on (0: the first again), so that a second thread can add to it while the first adds to
 * dumps of the first arena. Call it on the thread that then adds to p; the second arena is made
 * on its first use. */
int st_process_set_arena(st_global_dump_t *dump, st_process_dump_t *p, unsigned which);
/* st_process_add_holder of the object of proto, which was made for proc's dump (its strings live
 * as long as that dump): the same node, entries and edge, sharing the proto's strings. */
int st_process_add_holder_proto(st_process_dump_t *proc, const st_holder_proto_t *proto,
                                uint64_t mapped_size, int importance, st_node_t **out);

#endif
