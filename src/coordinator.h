/* SPDX-License-Identifier: MIT
 *
 * The coordinator (private): the process every tracked program reports to. It keeps the table of
 * live clients and of the objects they announced (creator pid, name, label, importance, creation
 * time; an object's metadata outlives its creator), and takes global dumps: DUMP_REQUEST to every
 * client (at most ask_window waiting at a time), wait until all answered or the deadline passed,
 * then merge the answers into one
 * st_global_dump_t appended to its trace:
 *
 *   - each object once, keyed by its kernel identity (st_dump_add_object), and one holder node +
 *     ownership edge per process that reported it (st_process_add_holder);
 *   - importance: an explicit claim in a record wins; otherwise the policy: "creator" gives 2 to
 *     the creator (from CREATED events, else the record's creator flag) when it is among the
 *     holders, 0 to everyone else; "equal" gives 0 to all; "first-touch" cannot be observed from
 *     the hooks and falls back to "creator" (the creator is the usual first toucher);
 *   - a client that is late, disconnects or sends garbage is left out and the dump is marked
 *     partial with one warning naming the pid and the reason; the dump never waits past the
 *     deadline;
 *   - before the records, the /proc scan (src/scan.h) of the answering clients' pids (and, with
 *     scan_tree_root, of every descendant of that process, client or not) adds what the hooks
 *     did not see (raw syscalls, glibc-internal mappings, processes without the preload);
 *     objects nobody holds outside those pids are not looked for. Client records then override
 *     the scan's sizes and claims for the objects they report;
 *   - the graph processor annotates the dump with effective sizes.
 *
 * Single-threaded: drive it with st_coord_run from one thread. Tools (`shmtrack dump`) connect to
 * the same socket with role ST_ROLE_CONTROL and send DUMP_NOW; they receive DUMP_DONE and, when
 * they asked, the dump as a one-dump JSON trace in TRACE_CHUNK frames.
 */
#ifndef SHMTRACK_COORDINATOR_H
#define SHMTRACK_COORDINATOR_H

#include "model.h"

#include <stdbool.h>
#include <stdint.h>

#define ST_COORD_DEADLINE_DEFAULT_MS 1000
/* Clients answering a dump at once (st_coord_config_t.ask_window), and how long a request counts
 * against that window before the next client is asked anyway (ask_patience_ms). */
#define ST_COORD_ASK_WINDOW_DEFAULT 32
#define ST_COORD_ASK_PATIENCE_MS 25

typedef struct st_coord st_coord_t;

typedef struct st_coord_config {
    const char *socket_path; /* required; its directory is created 0700 */
    st_policy_t policy;      /* default ST_POLICY_CREATOR (0) */
    int deadline_ms;         /* per global dump; 0: ST_COORD_DEADLINE_DEFAULT_MS */
    /* How many clients are asked at once: the next client is asked when one answers, leaves, or
     * has kept its request ask_patience_ms without answering, and every client not yet
     * asked is asked once half the deadline has passed. Answers then come in while the ones
     * before are indexed, not all at once (see the file comment of coordinator.c).
     * 0: ST_COORD_ASK_WINDOW_DEFAULT; SIZE_MAX: every client at once. */
    size_t ask_window;
    int ask_patience_ms; /* 0: ST_COORD_ASK_PATIENCE_MS */
    bool allow_root;     /* accept root peers besides our uid */
    bool no_scan;        /* skip the /proc scan of the clients' pids during the merge */
    /* > 0: the /proc scan also covers this process's descendants (not the process itself), so a
     * program the preload cannot reach (static, refused peer, scrubbed environment) is still
     * counted; `shmtrack run` passes its own pid. 0: only the clients that answered. */
    int scan_tree_root;
    /* Dumps the in-memory trace keeps: when a dump starts, the oldest beyond max_dumps - 1 are
     * freed (their memory then holds the new dump: no fresh pages). 0: keep every dump. */
    size_t max_dumps;
    /* Called for every sentence worth logging (refusals, dropped clients). Optional. */
    void (*log)(void *ud, const char *msg);
    /* Called when a global dump has been merged and appended to the trace. Optional. */
    void (*on_dump)(void *ud, const st_global_dump_t *dump);
    void *ud;
} st_coord_config_t;

/* What the coordinator knows about an object from events. */
typedef struct st_coord_object {
    int creator_pid; /* 0 when no CREATED event was seen */
    char name[64];
    char label[32];
    int importance;      /* the last explicit claim */
    bool explicit_claim; /* an IMPORTANCE event was seen */
    bool destroyed;
    uint64_t created_ns; /* CLOCK_REALTIME from the event; 0 unknown */
} st_coord_object_t;

int st_coord_open(const st_coord_config_t *cfg, st_coord_t **out);
/* Closes every connection and frees everything, the trace included. */
void st_coord_close(st_coord_t *co);

/* One round of the event loop: waits up to timeout_ms (less when a dump deadline is nearer). */
int st_coord_run(st_coord_t *co, int timeout_ms);
/* Adds fd to the loop (e.g. a signalfd): cb runs on the loop's thread when fd is readable. */
int st_coord_watch(st_coord_t *co, int fd, void (*cb)(void *ud, int fd), void *ud);

/* Starts a global dump ("explicitly_triggered" or "periodic_interval"); *id (optional) gets its
 * id. -EBUSY when one is in progress. */
int st_coord_dump_start(st_coord_t *co, const char *trigger, uint64_t *id);
bool st_coord_dump_busy(const st_coord_t *co);
/* Clients asked for the dump in progress that have not answered yet (0 when none). */
size_t st_coord_dump_pending(const st_coord_t *co);
/* Starts a dump (or joins the one in progress) and runs the loop until it is merged. *out points
 * into the coordinator's trace. */
int st_coord_dump_sync(st_coord_t *co, const char *trigger, st_global_dump_t **out);

/* The trace of every dump so far (owned by the coordinator). */
st_trace_t *st_coord_trace(st_coord_t *co);
/* Writes the whole trace to path atomically (temporary name + rename);
 * err (optional) receives the writer's sentence. */
int st_coord_write_trace(st_coord_t *co, const char *path, char *err, size_t err_len);

/* Where the last merged dump's time went (CLOCK_MONOTONIC, nanoseconds), for benchmarks and logs:
 * answers = request sent .. the last answer in (index: the part of it spent indexing answers);
 * prepare = creators, the /proc scan's join and lookups, the process dumps; build = the global
 * nodes and the holders; graph = sorting and the graph processor's annotation; total = from
 * st_coord_dump_start to the dump in the trace. All 0 before the first dump. */
typedef struct st_coord_times {
    uint64_t answers, index, prepare, build, graph, total;
} st_coord_times_t;
void st_coord_last_times(const st_coord_t *co, st_coord_times_t *out);

/* Connected tracked processes (role client, handshake done). */
size_t st_coord_client_count(const st_coord_t *co);
/* The metadata of an object by key ("anon:0:1:27"); false when unknown. */
bool st_coord_find_object(const st_coord_t *co, const char *key, st_coord_object_t *out);

#endif
