/* SPDX-License-Identifier: MIT
 *
 * The seam between the interposer and the coordinator client (private to allocator/).
 *
 * Two halves. The transport half (st__agent_start ... st__agent_stop) is what the hooks need from
 * ipc/client.h: connect to SHMTRACK_SOCKET and say HELLO, queue object events without blocking
 * (a full queue drops the event; the coordinator's /proc scan is the catch-all), answer
 * DUMP_REQUEST on an agent thread by calling st__agent_fill_dump, reconnect after the program
 * closes or dup2()s over the socket, and start afresh in a fork child. Until ipc/ is merged these
 * are implemented in agent.c as "no coordinator" (events are counted and dropped).
 *
 * The measurement half (measure.c: st__agent_measure_*, st__agent_fill_dump) is complete: it turns
 * the registry into fixed-size records, measuring each object once (fd-backed objects with
 * cachestat on an fd of the object and swap from its st_blocks; otherwise mincore over the union of
 * this process's mappings of it, by object offset, and swap from smaps), the bytes this process
 * maps, and the process totals (smaps_rollup and status), all read with raw syscalls into static
 * buffers.
 * It runs on the agent thread (or at exit), never inside a hook.
 */
#ifndef SHMTRACK_ALLOCATOR_AGENT_H
#define SHMTRACK_ALLOCATOR_AGENT_H

#include "registry.h"

#include <stddef.h>
#include <stdint.h>

/* Object events (DESIGN §7 OBJECT_EVENT): one X-macro list for the enum and the names. */
#define ST__EVENT_MAP(XX)                                                                          \
    XX(ST__EV_CREATED, "created")                                                                  \
    XX(ST__EV_MAPPED, "mapped")                                                                    \
    XX(ST__EV_UNMAPPED, "unmapped")                                                                \
    XX(ST__EV_DESTROYED, "destroyed")                                                              \
    XX(ST__EV_IMPORTANCE, "importance")                                                            \
    XX(ST__EV_LABEL, "label")

typedef enum st__event_type {
#define XX(e, s) e,
    ST__EVENT_MAP(XX)
#undef XX
        ST__EV_COUNT
} st__event_type_t;

const char *st__event_name(st__event_type_t type);

typedef struct st__event {
    uint8_t type;  /* st__event_type_t */
    uint8_t kind;  /* ST_KIND_* */
    uint8_t flags; /* ST__OBJ_* */
    uint8_t pad;
    int32_t importance;
    uint64_t a, b; /* key, as st__key_t */
    uint64_t start, len, size;
    char name[ST__REG_NAME_MAX]; /* ST__EV_LABEL: the label */
} st__event_t;

/* ---- transport (wired to ipc/client.h) ------------------------------------------------------- */

/* Connects to socket_path (NULL: no coordinator; the preload then only keeps its registry) and
 * starts the agent thread, which measures reg on DUMP_REQUEST. Called once from the constructor.
 * 0 or -errno; failure is not fatal. */
int st__agent_start(st__reg_t *reg, const char *socket_path);
/* Queues an event without blocking or allocating; drops it when the queue is full. */
void st__agent_event(const st__event_t *ev);
/* In a fork child: forget the parent's connection and thread; reconnect lazily. */
void st__agent_fork_child(void);
void st__agent_stop(void);
/* Implemented by hooks.c: called by the transport on the agent thread after each successful
 * handshake (reconnects counts the earlier ones), to re-announce what the process holds. */
void st__hooks_on_connect(unsigned reconnects);

/* Events queued and dropped so far (tests, the registry file). */
void st__agent_counts(uint64_t *queued, uint64_t *dropped);

/* ---- measurement ----------------------------------------------------------------------------- */

/* Where a record's resident (and swapped) figure comes from; the names are the registry file's
 * source= values and match src/residency.h's residency_source where they mean the same. */
#define ST__RES_SOURCE_MAP(XX)                                                                     \
    XX(ST__RES_MINCORE, "mincore")                   /* exact for anon and SysV */                 \
    XX(ST__RES_MINCORE_LOWER, "mincore-lower-bound") /* fd-backed without an fd: see measure.c */  \
    XX(ST__RES_CACHESTAT, "cachestat")                                                             \
    XX(ST__RES_ST_BLOCKS, "st_blocks")

typedef enum st__res_source {
#define XX(e, s) e,
    ST__RES_SOURCE_MAP(XX)
#undef XX
        ST__RES_COUNT
} st__res_source_t;

const char *st__res_source_name(st__res_source_t source);

enum {
    ST__REC_CREATOR = 1u << 0,
    ST__REC_CLAIMED = 1u << 1,
    ST__REC_INHERITED = 1u << 2,
    ST__REC_RESIDENT_UNKNOWN = 1u << 3, /* mincore could not be trusted: use the /proc scan */
};

/* One held object, as the coordinator receives it in PROCESS_DUMP. */
typedef struct st__obj_record {
    uint64_t a, b; /* key, as st__key_t */
    uint64_t virtual_size;
    uint64_t resident;  /* object bytes resident, counted once (union of our mappings) */
    uint64_t swapped;   /* object bytes in swap within our largest mapping (smaps Swap) */
    uint64_t mapped;    /* bytes this process maps */
    int32_t importance; /* ST__IMPORTANCE_NONE when the policy decides */
    uint8_t kind;
    uint8_t flags; /* ST__REC_* */
    uint16_t nranges;
    char name[ST__REG_NAME_MAX];
    char label[ST__REG_NAME_MAX];
    uint8_t res_source; /* st__res_source_t */
} st__obj_record_t;

/* Process totals (DESIGN §5 process_totals), bytes; present uses ST_TOTAL_HAS bits of model.h. */
typedef struct st__totals_record {
    uint64_t resident_set_bytes, private_footprint_bytes, pss_bytes, uss_bytes, swap_bytes,
        rss_shmem_bytes;
    uint32_t present;
} st__totals_record_t;

/* Process totals from /proc/self/smaps_rollup and /proc/self/status. */
int st__agent_measure_totals(st__totals_record_t *out);

/* One record per object in reg, at most cap (*n gets the count written; -ENOSPC when more objects
 * exist than cap, after writing cap). Takes reg's lock once per object, so hooks wait at most for
 * one object's mincore. */
int st__agent_measure_objects(st__reg_t *reg, st__obj_record_t *recs, size_t cap, size_t *n);

/* Both of the above: what the agent thread calls on DUMP_REQUEST with the registry given to
 * st__agent_start.
 * Implemented in measure.c, like the two above; the transport lives in agent.c. */
int st__agent_fill_dump(st__reg_t *reg, st__totals_record_t *totals, st__obj_record_t *recs,
                        size_t cap, size_t *n);

#endif
