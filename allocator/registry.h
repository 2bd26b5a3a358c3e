/* SPDX-License-Identifier: MIT
 *
 * The per-process registry of shared memory objects (private to allocator/).
 *
 * One entry per object this process holds, keyed by what the kernel says the object is (kind +
 * dev + ino, or SysV IPC namespace + shmid; never an address or a name), with the exact list of
 * address ranges through which this process maps it. Ranges stay exact under partial munmap,
 * mremap (move, grow, shrink, duplicate), MAP_FIXED replacement and double mappings; each range
 * remembers the object offset it starts at. An object also carries its creator flag, its
 * importance claim, a short name and a label.
 *
 * Storage is one private arena obtained from the OS (prim.h), reserved up front and committed as
 * it is touched: fixed arrays of object and range records with free lists, a chained hash of
 * objects, and an array of range ids sorted by address for munmap/mremap lookups. Nothing here
 * calls malloc, stdio or the dynamic linker, so the hooks can use it anywhere, and tests link it
 * directly without LD_PRELOAD. One mutex guards it; st__reg_fork_child() makes it usable in a fork
 * child whatever state the lock was in. Callers take the lock (st__reg_lock) around every call
 * marked "pre: locked"; st__reg_may_overlap() alone is lock-free, so that munmap of private
 * memory costs two atomic loads.
 */
#ifndef SHMTRACK_ALLOCATOR_REGISTRY_H
#define SHMTRACK_ALLOCATOR_REGISTRY_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ST__REG_NAME_MAX 32 /* bytes stored for a name or label, NUL included */
#define ST__IMPORTANCE_NONE INT32_MIN

/* An object's identity. Lookups compare (a, b) and whether the kind is SysV: the shmem kinds
 * share one inode space, so a lookup by (posix, dev, ino) finds the memfd of that inode. Shmem
 * kinds: a = (major << 32) | minor of st_dev, b = st_ino. SysV: a = IPC namespace inode, b = shmid.
 */
typedef struct st__key {
    uint64_t a, b;
    uint8_t kind; /* ST_KIND_* */
} st__key_t;

enum {
    ST__OBJ_CREATOR = 1u << 0,   /* this process created it */
    ST__OBJ_CLAIMED = 1u << 1,   /* importance set explicitly (API or SHMTRACK_IMPORTANCE) */
    ST__OBJ_INHERITED = 1u << 2, /* known from before a fork */
    ST__OBJ_UNTRUSTED = 1u << 3, /* mincore may report everything resident (see agent.c) */
    ST__OBJ_PENDING = 1u << 4,   /* identity not resolved yet (see st__reg_add_pending) */
};

typedef struct st__obj {
    uint64_t a, b;      /* key */
    uint64_t size;      /* virtual size last seen (st_size or segment size) */
    int32_t importance; /* ST__IMPORTANCE_NONE unless claimed */
    int32_t fd;         /* the fd this process created it through, -1 if none; for a pending
                           object, the fd it was mapped from (a hint only) */
    uint32_t first;     /* first range id + 1, 0 when not mapped */
    uint32_t hnext;     /* hash chain: next object id + 1 */
    uint32_t nranges;
    uint32_t name, label; /* string slot id + 1, 0 when none */
    uint8_t kind;
    uint8_t flags; /* ST__OBJ_* */
    uint8_t used;
    uint8_t pending_refs; /* pending objects whose hint this is: kept while > 0 */
} st__obj_t;

typedef struct st__range {
    uint64_t start, len; /* bytes; page aligned */
    uint64_t off;        /* object offset of start */
    uint32_t obj;        /* object id */
    uint32_t next;       /* next range of the same object: id + 1 */
} st__range_t;

/* Called for each change the hooks report as an event (see agent.h); may be NULL. */
typedef enum st__reg_change {
    ST__REG_ADDED,    /* a new object entered the registry */
    ST__REG_MAPPED,   /* a range was added */
    ST__REG_UNMAPPED, /* a range (or part of one) went away */
    ST__REG_REMOVED,  /* the object left the registry: no mapping and no fd */
} st__reg_change_t;
typedef void (*st__reg_change_cb)(const st__obj_t *obj, st__reg_change_t what, uint64_t start,
                                  uint64_t len, void *ctx);

typedef struct st__reg {
    pthread_mutex_t lock;
    void *arena;
    size_t arena_len;
    st__obj_t *objs;
    st__range_t *ranges;
    uint32_t *buckets;  /* object id + 1 */
    uint32_t *sorted;   /* range ids sorted by start */
    uint32_t *fd_index; /* fd -> object id + 1 of the object created through it */
    char (*strings)[ST__REG_NAME_MAX];
    uint32_t max_objs, max_ranges, n_buckets, max_strings, max_fds;
    uint32_t n_objs, n_ranges, n_sorted, n_strings_used;
    uint32_t n_pending;                         /* objects with ST__OBJ_PENDING */
    uint32_t obj_hi, range_hi, string_hi;       /* high-water marks of the arrays */
    uint32_t free_obj, free_range, free_string; /* free lists: id + 1 */
    /* lock-free bounds of all ranges for st__reg_may_overlap */
    uintptr_t lo, hi;
    st__reg_change_cb on_change;
    void *change_ctx;
    void (*resolver)(struct st__reg *reg, void *ctx);
    void *resolver_ctx;
} st__reg_t;

/* Reserves the arena for max_objs objects and max_ranges ranges (0: defaults 65536 / 131072).
 * -ENOMEM when the OS refuses. */
int st__reg_init(st__reg_t *reg, uint32_t max_objs, uint32_t max_ranges);
void st__reg_destroy(st__reg_t *reg);

void st__reg_lock(st__reg_t *reg);
bool st__reg_trylock(st__reg_t *reg);
void st__reg_unlock(st__reg_t *reg);

/* In a fork child: a fresh lock, every object held as inherited and not created here. When
 * consistent is false (the parent could not take the lock before forking), the contents may be
 * half-updated and the registry is emptied instead. */
void st__reg_fork_child(st__reg_t *reg, bool consistent);

/* Whether [start, start+len) may intersect a tracked range. Lock-free, may say yes wrongly. */
bool st__reg_may_overlap(const st__reg_t *reg, uintptr_t start, size_t len);

/* The object with this key, or NULL. pre: locked */
st__obj_t *st__reg_find(st__reg_t *reg, const st__key_t *key);
/* Finds or adds the object. -ENOSPC when the arena is full. pre: locked */
int st__reg_get(st__reg_t *reg, const st__key_t *key, st__obj_t **out, bool *added);

/* Records that [start, start+len) maps obj from object offset off. Any tracked range already in
 * that window is removed first (MAP_FIXED replaced it). -ENOSPC when full. pre: locked */
int st__reg_map(st__reg_t *reg, st__obj_t *obj, uintptr_t start, size_t len, uint64_t off);

/* Forgets whatever is tracked in [start, start+len): ranges are cut or split. Objects left with
 * no range and no fd leave the registry. Returns the number of bytes of tracked ranges removed.
 * pre: locked */
size_t st__reg_unmap(st__reg_t *reg, uintptr_t start, size_t len);

/* Applies a successful mremap(old, old_len, new_len, flags, ...) that returned new_addr. Returns
 * 0, or -ENOSPC when a range could not be recorded (the registry is then incomplete). pre: locked
 */
int st__reg_mremap(st__reg_t *reg, uintptr_t old_addr, size_t old_len, uintptr_t new_addr,
                   size_t new_len, int flags);

/* The object whose mapping contains addr, and the range (either may be NULL). pre: locked */
st__obj_t *st__reg_find_addr(st__reg_t *reg, uintptr_t addr, st__range_t **range);

/* Drops an object with no range (e.g. its fd was closed). pre: locked */
void st__reg_remove(st__reg_t *reg, st__obj_t *obj);

/* Records that obj was created (memfd_create, shm_open) through fd, which keeps it held while it
 * has no mapping. The fd was just returned by the kernel, so an older object recorded under the
 * same number lost its fd (the program closed it: close() is not hooked) and leaves the registry
 * if it has no mapping either. pre: locked */
void st__reg_set_fd(st__reg_t *reg, st__obj_t *obj, int fd);

/* Checks every object held through an fd (fstat: is it still that inode?) and drops those whose
 * fd is gone and that have no mapping. Run at dump time, not in hooks. pre: locked */
void st__reg_sweep(st__reg_t *reg);

/* Name and label, cut to ST__REG_NAME_MAX - 1 bytes. -ENOSPC when no string slot is left.
 * pre: locked */
int st__reg_set_name(st__reg_t *reg, st__obj_t *obj, const char *name);
int st__reg_set_label(st__reg_t *reg, st__obj_t *obj, const char *label);
const char *st__reg_name(const st__reg_t *reg, const st__obj_t *obj);  /* "" when none */
const char *st__reg_label(const st__reg_t *reg, const st__obj_t *obj); /* "" when none */

/* Iteration: ids 0 .. st__reg_obj_limit()-1, skipping entries with used == 0. pre: locked */
uint32_t st__reg_obj_limit(const st__reg_t *reg);
st__obj_t *st__reg_obj(st__reg_t *reg, uint32_t id);
uint32_t st__reg_obj_id(const st__reg_t *reg, const st__obj_t *obj);
st__range_t *st__reg_range(st__reg_t *reg, uint32_t id_plus_one);
/* Bytes this process maps of obj (sum of its ranges). pre: locked */
uint64_t st__reg_mapped_bytes(st__reg_t *reg, const st__obj_t *obj);

/* Fixed cost of one tracked object with one mapping, in bytes of arena (records, hash slot and
 * index slot), and the arena bytes resident right now (mincore of the arena). */
size_t st__reg_bytes_per_object(const st__reg_t *reg);
size_t st__reg_resident_bytes(const st__reg_t *reg);

void st__reg_set_change_cb(st__reg_t *reg, st__reg_change_cb cb, void *ctx);

/* ---- pending identity ------------------------------------------------------------------------
 *
 * A shared mapping can be recorded before anyone knows which object it maps: the mmap hook then
 * costs no system call. It becomes a *pending* object: a record with its exact ranges (partial
 * munmap, mremap and MAP_FIXED replacement follow it like any other), its kind and creator flag,
 * but no key: it is not in the hash, and changes to it raise no change callback (nothing was
 * announced). Resolution (the hooks' resolver: PROCMAP_QUERY on one of its ranges) merges it into
 * the object with the kernel's key through st__reg_merge_pending; a pending object whose ranges
 * all go away first simply vanishes. hint, when not NULL, is the object the mapping is expected
 * to belong to (the memfd created through the fd being mapped); it is kept in the registry until
 * every pending object naming it is resolved or gone (at most 255 at a time).
 */

/* A pending object of this kind. -ENOSPC when full, -EBUSY when hint has 255 already.
 * pre: locked */
int st__reg_add_pending(st__reg_t *reg, uint8_t kind, st__obj_t *hint, st__obj_t **out);
/* The hint given to st__reg_add_pending, or NULL. pre: locked */
st__obj_t *st__reg_pending_hint(st__reg_t *reg, const st__obj_t *pending);
/* Moves every range of pending to target (MAPPED callbacks), merges its CREATOR and INHERITED
 * flags and its size (the larger one wins), and frees it. pre: locked, target not pending */
void st__reg_merge_pending(st__reg_t *reg, st__obj_t *pending, st__obj_t *target);
/* Forgets pending and its ranges without a callback (its identity could not be established).
 * pre: locked */
void st__reg_drop_pending(st__reg_t *reg, st__obj_t *pending);
/* The object created through fd (st__reg_set_fd) if it still names fd, else NULL. No syscall:
 * the caller must be ready for the fd to have been closed and reused. pre: locked */
st__obj_t *st__reg_fd_object(st__reg_t *reg, int fd);

/* Whether fd may have been recorded with st__reg_set_fd. Lock-free (a relaxed load), may say yes
 * wrongly; no means no. */
bool st__reg_fd_maybe(const st__reg_t *reg, int fd);

/* The function that resolves every pending object (set by the hooks; may be NULL), and a call to
 * it when there is any pending object. pre: locked (for st__reg_resolve_all) */
void st__reg_set_resolver(st__reg_t *reg, void (*fn)(st__reg_t *reg, void *ctx), void *ctx);
void st__reg_resolve_all(st__reg_t *reg);

static inline st__key_t st__key_shmem(uint8_t kind, uint32_t major, uint32_t minor, uint64_t ino)
{
    st__key_t k = {((uint64_t)major << 32) | minor, ino, kind};
    return k;
}

#endif
