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
 * directly without LD_PRELOAD. One lock guards it (a futex word); st__reg_fork_child() makes it
 * usable in a fork child whatever state the lock was in. A small fast table in front of it serves
 * the short-lived memfd pattern (see "fast table"). Callers take the lock (st__reg_lock) around
 * every call marked "pre: locked"; st__reg_may_overlap() alone is lock-free, so that munmap of
 * private memory costs two atomic loads.
 */
#ifndef SHMTRACK_ALLOCATOR_REGISTRY_H
#define SHMTRACK_ALLOCATOR_REGISTRY_H

#include <errno.h>
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
    ST__OBJ_FDPEND = 1u << 5,    /* created through fd, identity not read yet (see below) */
    ST__OBJ_ESCAPED = 1u << 6,   /* its fd was duplicated or sent: other fds may hold it */
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

/* One slot of the fast table (see "fast table" below): a memfd_create'd fd recorded before the
 * registry hears of it, and at most one mapping of it. */
typedef struct st__reg_fast {
    uint64_t ts, name_hash;   /* what an FDPEND object keeps in a and b */
    uint64_t start, len, off; /* its mapping; len 0 when not mapped */
    int32_t importance;       /* the object's claim (ST__IMPORTANCE_NONE: none) */
    uint8_t kind;             /* ST_KIND_* */
    uint8_t flags;            /* ST__OBJ_CREATOR, ST__OBJ_CLAIMED */
} st__reg_fast_t;

#define ST__REG_FAST 4 /* slots of the fast table */

typedef struct st__reg {
    /* The first cache line is all the fast paths and the lock-free checks read. */
    int lock;        /* 0 free, 1 held, 2 held with waiters (a futex: see registry.c) */
    uint32_t n_fast; /* used slots of the fast table */
    int32_t fast_fd1[ST__REG_FAST]; /* fd + 1 of each fast slot, 0 when free */
    /* lock-free bounds of all ranges for st__reg_may_overlap: the registry's, the fast table's */
    uintptr_t lo, hi;
    uintptr_t fast_lo, fast_hi;
    uint32_t *fd_index; /* fd -> object id + 1 of the object created through it */
    st__reg_fast_t fast[ST__REG_FAST];
    void *arena;
    size_t arena_len;
    st__obj_t *objs;
    st__range_t *ranges;
    uint32_t *buckets; /* object id + 1 */
    uint32_t *sorted;  /* range ids sorted by start */
    char (*strings)[ST__REG_NAME_MAX];
    uint32_t max_objs, max_ranges, n_buckets, max_strings, max_fds;
    uint32_t n_objs, n_ranges, n_sorted, n_strings_used;
    uint32_t n_pending;                         /* objects with ST__OBJ_PENDING */
    uint32_t n_fdpend;                          /* objects with ST__OBJ_FDPEND */
    uint32_t obj_hi, range_hi, string_hi;       /* high-water marks of the arrays */
    uint32_t free_obj, free_range, free_string; /* free lists: id + 1 */
    uint32_t fast_lost; /* fast slots a flush had no room for (the registry is incomplete) */
    st__reg_change_cb on_change;
    void *change_ctx;
    void (*resolver)(struct st__reg *reg, void *ctx);
    void *resolver_ctx;
} __attribute__((aligned(64))) st__reg_t;

/* Reserves the arena for max_objs objects and max_ranges ranges (0: defaults 65536 / 131072).
 * -ENOMEM when the OS refuses. */
int st__reg_init(st__reg_t *reg, uint32_t max_objs, uint32_t max_ranges);
void st__reg_destroy(st__reg_t *reg);

/* Take the lock and flush the fast table into the registry (st__reg_fast_flush), so that every
 * caller sees the whole registry and never the fast table. */
void st__reg_lock(st__reg_t *reg);
bool st__reg_trylock(st__reg_t *reg);
static inline void st__reg_unlock(st__reg_t *reg);
/* The same without the flush: for the fast paths only (see "fast table"). */
void st__reg_lock_fast(st__reg_t *reg);
static inline bool st__reg_trylock_fast(st__reg_t *reg);

/* In a fork child: a fresh lock, every object held as inherited and not created here. When
 * consistent is false (the parent could not take the lock before forking), the contents may be
 * half-updated and the registry is emptied instead. */
void st__reg_fork_child(st__reg_t *reg, bool consistent);

/* Whether [start, start+len) may intersect a tracked range (the registry's or a fast slot's
 * mapping). Lock-free, may say yes wrongly. */
static inline bool st__reg_may_overlap(const st__reg_t *reg, uintptr_t start, size_t len);

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
 * fd is gone and that have no mapping. An ESCAPED object whose own fd is gone is looked for among
 * every fd of the process (a walk of /proc/self/fd) and adopts one that names it. Run at dump
 * time, not in hooks. pre: locked */
void st__reg_sweep(st__reg_t *reg);

/* The program closed fd (after the real close): the object created through it loses its fd and
 * leaves the registry unless a mapping (or, when ESCAPED, another fd: decided at the next sweep)
 * still holds it. An FDPEND object leaves without a callback. pre: locked */
void st__reg_close_fd(st__reg_t *reg, int fd);

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
/* The object created through fd (st__reg_set_fd or st__reg_add_fd_pending) if it still names fd,
 * else NULL; it may be FDPEND. No syscall: the caller must be ready for the fd to have been closed
 * and reused. pre: locked */
st__obj_t *st__reg_fd_object(st__reg_t *reg, int fd);

/* Whether fd may have been recorded with st__reg_set_fd or is in the fast table. Lock-free
 * (relaxed loads), may say yes wrongly; no means no. */
static inline bool st__reg_fd_maybe(const st__reg_t *reg, int fd);
/* The same for the fd index alone (st__reg_set_fd), without the fast table. */
static inline bool st__reg_fd_indexed(const st__reg_t *reg, int fd);
/* The same for an object with a key (not FDPEND, not in the fast table): a relaxed load. */
bool st__reg_fd_keyed_maybe(const st__reg_t *reg, int fd);

/* The function that resolves every pending object (set by the hooks; may be NULL), and a call to
 * it when there is any pending object. pre: locked (for st__reg_resolve_all) */
void st__reg_set_resolver(st__reg_t *reg, void (*fn)(st__reg_t *reg, void *ctx), void *ctx);
void st__reg_resolve_all(st__reg_t *reg);

/* ---- pending created fds ---------------------------------------------------------------------
 *
 * memfd_create records its fd without asking the kernel what the object is (no fstat): an FDPEND
 * object with its kind, creator flag, the fd, in `a` the CLOCK_REALTIME_COARSE time taken before
 * the creating call (a floor for the inode's ctime) and in `b` a hash of its name (the hooks'
 * business; the name itself is stored at resolution). It
 * is in the fd index but not in the hash, and raises no change callback. The hooks resolve it
 * (fstat, validated against what was recorded) when its identity can matter, with
 * st__reg_key_fd_pending; a close of its fd before then drops it silently (st__reg_close_fd).
 * Pending mappings of the fd name it as their hint.
 */

/* An FDPEND object created through fd at time ts_ns. -ENOSPC when full. pre: locked */
int st__reg_add_fd_pending(st__reg_t *reg, uint8_t kind, int fd, uint64_t ts_ns, st__obj_t **out);
/* Gives obj (FDPEND) its key. When another object already has that key, obj's fd, creator flag,
 * size and pending mappings move to it, obj is freed and *out is that object; else *out is obj,
 * now in the hash. pre: locked */
void st__reg_key_fd_pending(st__reg_t *reg, st__obj_t *obj, const st__key_t *key, st__obj_t **out);
/* Forgets obj (FDPEND) whose identity could not be established; its pending mappings lose their
 * hint. pre: locked */
void st__reg_drop_fd_pending(st__reg_t *reg, st__obj_t *obj);

/* ---- fast table ------------------------------------------------------------------------------
 *
 * The short-lived pattern memfd_create + ftruncate + mmap + munmap + close, served without
 * touching the records, the hash, the sorted index or the fd index (on a kernel with page-table
 * isolation and no PCID every page touched after a system call is a TLB miss). A slot is a pending
 * created fd (its kind, creator flag and claim, the time and name hash st__reg_add_fd_pending
 * would record) with at most one mapping (exact start, length, object offset). It lives in the
 * registry struct itself, next to the lock, and is only read and written by the fast paths, which
 * take the lock with st__reg_lock_fast:
 *
 *   st__reg_fast_add     memfd_create's fd (the table full: flushed first)
 *   st__reg_fast_map     a writable shared mmap of a slot's fd, when the slot has no mapping yet
 * and no tracked range overlaps the new one st__reg_fast_mapping + st__reg_fast_unmapped   munmap
 * of exactly a slot's mapping st__reg_fast_fd_slot + st__reg_fast_drop       close of a slot's fd
 * that is not mapped
 *
 * Anything else (partial munmap, mremap, MAP_FIXED over a slot's mapping, a second mapping, dup,
 * SCM_RIGHTS, close while mapped, fork, spawn, a dump, the API, a reused fd number) first flushes
 * the table: each slot becomes what the slow path would have recorded (an FDPEND object, and its
 * mapping a pending object whose hint it is), so nothing else ever sees the table. st__reg_lock
 * and st__reg_trylock flush it; a fast path that falls back to the slow path calls
 * st__reg_fast_flush itself. Slot mappings never overlap each other or a registry range (checked
 * when they are recorded; everything that adds a registry range flushes first), and
 * st__reg_may_overlap covers them (fast_lo, fast_hi).
 */

/* Moves every slot into the registry. -ENOSPC when there was no room for some (they are dropped
 * and counted in fast_lost: the caller switches tracking off). pre: locked */
int st__reg_fast_flush(st__reg_t *reg);
/* Records fd, just returned by memfd_create, in a slot (flags: ST__OBJ_CREATOR, ST__OBJ_CLAIMED).
 * -EEXIST when a slot already holds that number (its fd was closed behind our back): the table is
 * then flushed and the caller takes the slow path. -ENOSPC when a flush made for room failed.
 * pre: locked */
static inline int st__reg_fast_add(st__reg_t *reg, int fd, uint8_t kind, uint64_t ts,
                                   uint64_t name_hash, uint8_t flags, int32_t importance);
/* Whether fd is in the fast table. Lock-free; may say yes wrongly when another thread changes it.
 */
static inline bool st__reg_fast_has_fd(const st__reg_t *reg, int fd);
/* The slot holding fd, or -1. pre: locked */
static inline int st__reg_fast_fd_slot(const st__reg_t *reg, int fd);
/* Records [start, start+len) at object offset off as the mapping of fd's slot: 0, or -1 when the
 * fast path does not apply (no slot, already mapped, an overlap): nothing changed. pre: locked */
static inline int st__reg_fast_map(st__reg_t *reg, int fd, uintptr_t start, size_t len,
                                   uint64_t off);
/* The slot whose mapping is exactly [start, start+len), or -1. pre: locked */
static inline int st__reg_fast_mapping(const st__reg_t *reg, uintptr_t start, size_t len);
/* The slot's mapping went away (munmap). pre: locked */
static inline void st__reg_fast_unmapped(st__reg_t *reg, int slot);
/* Whether the slot has a mapping. pre: locked */
static inline bool st__reg_fast_mapped(const st__reg_t *reg, int slot);
/* Forgets the slot (its fd was closed while not mapped: the memfd died unseen). pre: locked */
static inline void st__reg_fast_drop(st__reg_t *reg, int slot);

/* ---- inline definitions (the fast paths and the lock-free checks) --------------------------- */

void st__reg_unlock_wake(st__reg_t *reg); /* the lock had waiters */
/* Whether a registry range intersects [start, end). pre: locked */
bool st__reg_overlaps(const st__reg_t *reg, uintptr_t start, uintptr_t end);
/* fast_lo, fast_hi from the slots' mappings. pre: locked */
void st__reg_fast_bounds(st__reg_t *reg);

static inline bool st__reg_trylock_fast(st__reg_t *reg)
{
    int c = 0;
    return __atomic_compare_exchange_n(&reg->lock, &c, 1, false, __ATOMIC_ACQUIRE,
                                       __ATOMIC_RELAXED);
}

static inline void st__reg_unlock(st__reg_t *reg)
{
    if (__atomic_fetch_sub(&reg->lock, 1, __ATOMIC_RELEASE) != 1)
        st__reg_unlock_wake(reg);
}

static inline bool st__reg_may_overlap(const st__reg_t *reg, uintptr_t start, size_t len)
{
    uintptr_t lo = __atomic_load_n(&reg->lo, __ATOMIC_RELAXED);
    uintptr_t hi = __atomic_load_n(&reg->hi, __ATOMIC_RELAXED);
    uintptr_t flo = __atomic_load_n(&reg->fast_lo, __ATOMIC_RELAXED);
    uintptr_t fhi = __atomic_load_n(&reg->fast_hi, __ATOMIC_RELAXED);
    return (start < hi && start + len > lo) || (start < fhi && start + len > flo);
}

static inline int st__reg_fast_fd_slot(const st__reg_t *reg, int fd)
{
    if (fd < 0)
        return -1;
    for (int i = 0; i < ST__REG_FAST; i++)
        if (__atomic_load_n(&reg->fast_fd1[i], __ATOMIC_ACQUIRE) == fd + 1)
            return i;
    return -1;
}

static inline bool st__reg_fast_has_fd(const st__reg_t *reg, int fd)
{
    return st__reg_fast_fd_slot(reg, fd) >= 0;
}

static inline bool st__reg_fd_indexed(const st__reg_t *reg, int fd)
{
    return fd >= 0 && (uint32_t)fd < reg->max_fds && reg->fd_index != NULL &&
           __atomic_load_n(&reg->fd_index[fd], __ATOMIC_RELAXED) != 0;
}

/* The fast table first: a flush indexes an fd before it clears its slot (release), so a reader
 * that finds the slot empty (acquire) finds the index entry. */
static inline bool st__reg_fd_maybe(const st__reg_t *reg, int fd)
{
    return st__reg_fast_has_fd(reg, fd) || st__reg_fd_indexed(reg, fd);
}

static inline int st__reg_fast_mapping(const st__reg_t *reg, uintptr_t start, size_t len)
{
    if (start >= reg->fast_hi || start + len <= reg->fast_lo)
        return -1; /* outside every slot's mapping */
    for (int i = 0; i < ST__REG_FAST; i++)
        if (reg->fast[i].start == start && reg->fast[i].len == len && len != 0 &&
            reg->fast_fd1[i] != 0)
            return i;
    return -1;
}

static inline bool st__reg_fast_mapped(const st__reg_t *reg, int slot)
{
    return reg->fast[slot].len != 0;
}

static inline int st__reg_fast_add(st__reg_t *reg, int fd, uint8_t kind, uint64_t ts,
                                   uint64_t name_hash, uint8_t flags, int32_t importance)
{
    int slot = reg->n_fast == 0 ? 0 : -1; /* empty: no duplicate to look for */
    for (int i = 0; i < ST__REG_FAST && reg->n_fast != 0; i++) {
        int32_t v = reg->fast_fd1[i];
        if (v == fd + 1) {
            /* its fd was closed behind our back: the slow path knows what to do with it */
            int rc = st__reg_fast_flush(reg);
            return rc != 0 ? rc : -EEXIST;
        }
        if (v == 0 && slot < 0)
            slot = i;
    }
    if (slot < 0) {
        int rc = st__reg_fast_flush(reg);
        if (rc != 0)
            return rc;
        slot = 0;
    }
    st__reg_fast_t *e = &reg->fast[slot];
    e->ts = ts;
    e->name_hash = name_hash;
    e->len = 0;
    e->importance = importance;
    e->kind = kind;
    e->flags = flags;
    reg->n_fast++;
    __atomic_store_n(&reg->fast_fd1[slot], fd + 1, __ATOMIC_RELEASE);
    return 0;
}

static inline int st__reg_fast_map(st__reg_t *reg, int fd, uintptr_t start, size_t len,
                                   uint64_t off)
{
    int slot = st__reg_fast_fd_slot(reg, fd);
    uintptr_t end = start + len;
    if (slot < 0 || reg->fast[slot].len != 0 || len == 0 || end < start)
        return -1;
    if (start < reg->fast_hi && end > reg->fast_lo) {
        for (int i = 0; i < ST__REG_FAST; i++) {
            const st__reg_fast_t *e = &reg->fast[i];
            if (reg->fast_fd1[i] != 0 && e->len != 0 && start < e->start + e->len && end > e->start)
                return -1;
        }
    }
    if (start < reg->hi && end > reg->lo && st__reg_overlaps(reg, start, end))
        return -1;
    st__reg_fast_t *e = &reg->fast[slot];
    e->start = start;
    e->len = len;
    e->off = off;
    if (start < reg->fast_lo)
        __atomic_store_n(&reg->fast_lo, start, __ATOMIC_RELAXED);
    if (end > reg->fast_hi)
        __atomic_store_n(&reg->fast_hi, end, __ATOMIC_RELAXED);
    return 0;
}

static inline void st__reg_fast_unmapped(st__reg_t *reg, int slot)
{
    st__reg_fast_t *e = &reg->fast[slot];
    if (e->start == reg->fast_lo && e->start + e->len == reg->fast_hi) {
        /* the bounds are exactly this mapping: the others are disjoint, so there are none */
        __atomic_store_n(&reg->fast_lo, UINTPTR_MAX, __ATOMIC_RELAXED);
        __atomic_store_n(&reg->fast_hi, 0, __ATOMIC_RELAXED);
        e->len = 0;
        return;
    }
    e->len = 0;
    st__reg_fast_bounds(reg);
}

static inline void st__reg_fast_drop(st__reg_t *reg, int slot)
{
    if (reg->fast[slot].len != 0)
        st__reg_fast_unmapped(reg, slot);
    reg->n_fast--;
    __atomic_store_n(&reg->fast_fd1[slot], 0, __ATOMIC_RELEASE);
}

static inline st__key_t st__key_shmem(uint8_t kind, uint32_t major, uint32_t minor, uint64_t ino)
{
    st__key_t k = {((uint64_t)major << 32) | minor, ino, kind};
    return k;
}

#endif
