/* SPDX-License-Identifier: MIT
 *
 * The per-process registry of shared memory objects (private to allocator/; see registry.h).
 *
 * Layout of the arena, all reserved at init and committed page by page as the arrays fill:
 *
 *   objs[max_objs]        56-byte object records, free list through hnext
 *   ranges[max_ranges]    32-byte range records, free list through next
 *   buckets[n_buckets]    hash of keys -> object id + 1, chained through st__obj_t.hnext
 *   sorted[max_ranges]    range ids ordered by start address (ranges never overlap: they are
 *                         pieces of this process's VMAs), for munmap/mremap and address lookups
 *   strings[2*max_objs]   32-byte name/label slots, free list through their first 4 bytes
 *   fd_index[65536]       fd -> the object created through it, to notice a closed fd when its
 *                         number comes back from memfd_create/shm_open (close() is not hooked)
 *
 * The fast table (registry.h) lives in the registry struct itself, not in the arena.
 *
 * Insertion into `sorted` is a memmove, which is cheap at the sizes a process maps shared memory
 * in (thousands of mappings), and keeps every lookup a binary search with no allocation.
 */
#include "registry.h"

#include "model.h"
#include "prim.h"

#include <errno.h>
#include <linux/futex.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define OBJ_PINNED 0x80     /* internal: kept alive during mremap */
#define FD_PEND 0x80000000u /* fd_index entry of an FDPEND object (st__reg_fd_keyed_maybe) */

/* The object id + 1 recorded for fd (0: none). pre: fd in range */
ST__HOT static uint32_t fd_slot(const st__reg_t *reg, int fd)
{
    return reg->fd_index[fd] & ~FD_PEND;
}

ST__HOT static void fd_slot_set(st__reg_t *reg, int fd, const st__obj_t *obj)
{
    uint32_t v = obj == NULL ? 0
                             : ((uint32_t)(obj - reg->objs) + 1) |
                                   ((obj->flags & ST__OBJ_FDPEND) ? FD_PEND : 0);
    __atomic_store_n(&reg->fd_index[fd], v, __ATOMIC_RELAXED);
}

static size_t align_up(size_t v, size_t a)
{
    return (v + a - 1) & ~(a - 1);
}

int st__reg_init(st__reg_t *reg, uint32_t max_objs, uint32_t max_ranges)
{
    memset(reg, 0, sizeof(*reg));
    if (max_objs == 0)
        max_objs = 65536;
    if (max_ranges == 0)
        max_ranges = 2 * max_objs;
    uint32_t n_buckets = 1;
    while (n_buckets < max_objs)
        n_buckets <<= 1;
    uint32_t max_strings = 2 * max_objs;
    size_t page = st__prim_page_size();
    size_t o_objs = 0;
    size_t o_ranges = align_up(o_objs + (size_t)max_objs * sizeof(st__obj_t), page);
    size_t o_buckets = align_up(o_ranges + (size_t)max_ranges * sizeof(st__range_t), page);
    size_t o_sorted = align_up(o_buckets + (size_t)n_buckets * sizeof(uint32_t), page);
    size_t o_strings = align_up(o_sorted + (size_t)max_ranges * sizeof(uint32_t), page);
    uint32_t max_fds = 65536;
    size_t o_fds = align_up(o_strings + (size_t)max_strings * ST__REG_NAME_MAX, page);
    size_t len = align_up(o_fds + (size_t)max_fds * sizeof(uint32_t), page);
    char *arena = st__prim_arena_map(len);
    if (arena == NULL)
        return -ENOMEM;
    reg->arena = arena;
    reg->arena_len = len;
    reg->objs = (st__obj_t *)(arena + o_objs);
    reg->ranges = (st__range_t *)(arena + o_ranges);
    reg->buckets = (uint32_t *)(arena + o_buckets);
    reg->sorted = (uint32_t *)(arena + o_sorted);
    reg->strings = (char(*)[ST__REG_NAME_MAX])(arena + o_strings);
    reg->fd_index = (uint32_t *)(arena + o_fds);
    reg->max_fds = max_fds;
    reg->max_objs = max_objs;
    reg->max_ranges = max_ranges;
    reg->n_buckets = n_buckets;
    reg->max_strings = max_strings;
    reg->lo = UINTPTR_MAX;
    reg->hi = 0;
    reg->fast_lo = UINTPTR_MAX;
    reg->fast_hi = 0;
    reg->lock = 0;
    return 0;
}

void st__reg_destroy(st__reg_t *reg)
{
    st__prim_arena_unmap(reg->arena, reg->arena_len);
    memset(reg, 0, sizeof(*reg));
}

/* The lock is a three-state futex word (0 free, 1 held, 2 held and maybe waited for), taken and
 * released inline with one atomic each when uncontended: a pthread mutex costs calls into two
 * more pages of libc per hook, and on a kernel with page-table isolation and no PCID every page
 * touched after a system call is a TLB miss. The slow paths keep errno as they found it (the
 * hooks promise the caller libc's errno, and pthread_mutex_lock never touches it). */
static void futex(int *word, int op, int val)
{
    int saved = errno;
    syscall(SYS_futex, word, op, val, NULL, NULL, 0);
    errno = saved;
}

ST__HOT void st__reg_lock_fast(st__reg_t *reg)
{
    int c = 0;
    if (__atomic_compare_exchange_n(&reg->lock, &c, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        return;
    if (c != 2)
        c = __atomic_exchange_n(&reg->lock, 2, __ATOMIC_ACQUIRE);
    while (c != 0) {
        futex(&reg->lock, FUTEX_WAIT_PRIVATE, 2);
        c = __atomic_exchange_n(&reg->lock, 2, __ATOMIC_ACQUIRE);
    }
}

void st__reg_lock(st__reg_t *reg)
{
    st__reg_lock_fast(reg);
    if (reg->n_fast != 0)
        (void)st__reg_fast_flush(reg);
}

bool st__reg_trylock(st__reg_t *reg)
{
    if (!st__reg_trylock_fast(reg))
        return false;
    if (reg->n_fast != 0)
        (void)st__reg_fast_flush(reg);
    return true;
}

void st__reg_unlock_wake(st__reg_t *reg)
{
    __atomic_store_n(&reg->lock, 0, __ATOMIC_RELEASE);
    futex(&reg->lock, FUTEX_WAKE_PRIVATE, 1);
}

void st__reg_set_change_cb(st__reg_t *reg, st__reg_change_cb cb, void *ctx)
{
    reg->on_change = cb;
    reg->change_ctx = ctx;
}

ST__HOT static void notify(st__reg_t *reg, const st__obj_t *obj, st__reg_change_t what,
                           uint64_t start, uint64_t len)
{
    if (reg->on_change != NULL && !(obj->flags & (ST__OBJ_PENDING | ST__OBJ_FDPEND)))
        reg->on_change(obj, what, start, len, reg->change_ctx);
}

/* ---- bounds ---------------------------------------------------------------------------------- */

ST__HOT static void bounds_add(st__reg_t *reg, uintptr_t start, size_t len)
{
    if (start < reg->lo)
        __atomic_store_n(&reg->lo, start, __ATOMIC_RELAXED);
    if (start + len > reg->hi)
        __atomic_store_n(&reg->hi, start + len, __ATOMIC_RELAXED);
}

ST__HOT static void bounds_recompute(st__reg_t *reg)
{
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    if (reg->n_sorted > 0) {
        const st__range_t *first = &reg->ranges[reg->sorted[0]];
        const st__range_t *last = &reg->ranges[reg->sorted[reg->n_sorted - 1]];
        lo = first->start;
        hi = last->start + last->len;
    }
    __atomic_store_n(&reg->lo, lo, __ATOMIC_RELAXED);
    __atomic_store_n(&reg->hi, hi, __ATOMIC_RELAXED);
}

/* ---- objects --------------------------------------------------------------------------------- */

/* Shmem kinds share one (dev, ino) space, so they compare as one class: a lookup by (posix, dev,
 * ino) finds the memfd of that inode. SysV ids are a separate space (DESIGN §2). */
static uint8_t kind_class(uint8_t kind)
{
    return kind == ST_KIND_SYSV;
}

static uint32_t hash_key(const st__reg_t *reg, uint64_t a, uint64_t b, uint8_t kind)
{
    uint64_t h = a * 0x9E3779B97F4A7C15ull ^ (b + kind_class(kind)) * 0xC2B2AE3D27D4EB4Full;
    h ^= h >> 29;
    return (uint32_t)h & (reg->n_buckets - 1);
}

st__obj_t *st__reg_find(st__reg_t *reg, const st__key_t *key)
{
    uint32_t id = reg->buckets[hash_key(reg, key->a, key->b, key->kind)];
    while (id != 0) {
        st__obj_t *o = &reg->objs[id - 1];
        if (o->a == key->a && o->b == key->b && kind_class(o->kind) == kind_class(key->kind))
            return o;
        id = o->hnext;
    }
    return NULL;
}

/* A fresh object record, not yet in the hash. */
ST__HOT static st__obj_t *obj_alloc(st__reg_t *reg, uint8_t kind)
{
    uint32_t id;
    if (reg->free_obj != 0) {
        id = reg->free_obj - 1;
        reg->free_obj = reg->objs[id].hnext;
    } else if (reg->obj_hi < reg->max_objs) {
        id = reg->obj_hi++;
    } else {
        return NULL;
    }
    st__obj_t *o = &reg->objs[id];
    memset(o, 0, sizeof(*o));
    o->kind = kind;
    o->fd = -1;
    o->importance = ST__IMPORTANCE_NONE;
    o->used = 1;
    reg->n_objs++;
    return o;
}

int st__reg_get(st__reg_t *reg, const st__key_t *key, st__obj_t **out, bool *added)
{
    st__obj_t *o = st__reg_find(reg, key);
    if (added != NULL)
        *added = false;
    if (o != NULL) {
        *out = o;
        return 0;
    }
    o = obj_alloc(reg, key->kind);
    if (o == NULL)
        return -ENOSPC;
    uint32_t id = (uint32_t)(o - reg->objs);
    o->a = key->a;
    o->b = key->b;
    uint32_t *bucket = &reg->buckets[hash_key(reg, key->a, key->b, key->kind)];
    o->hnext = *bucket;
    *bucket = id + 1;
    if (added != NULL)
        *added = true;
    notify(reg, o, ST__REG_ADDED, 0, 0);
    *out = o;
    return 0;
}

ST__HOT static void string_free(st__reg_t *reg, uint32_t *slot)
{
    if (*slot == 0)
        return;
    uint32_t id = *slot - 1;
    memcpy(reg->strings[id], &reg->free_string, sizeof(uint32_t));
    reg->free_string = id + 1;
    reg->n_strings_used--;
    *slot = 0;
}

static int string_set(st__reg_t *reg, uint32_t *slot, const char *s)
{
    if (*slot == 0) {
        uint32_t id;
        if (reg->free_string != 0) {
            id = reg->free_string - 1;
            memcpy(&reg->free_string, reg->strings[id], sizeof(uint32_t));
        } else if (reg->string_hi < reg->max_strings) {
            id = reg->string_hi++;
        } else {
            return -ENOSPC;
        }
        reg->n_strings_used++;
        *slot = id + 1;
    }
    char *dst = reg->strings[*slot - 1];
    size_t n = strlen(s);
    if (n > ST__REG_NAME_MAX - 1)
        n = ST__REG_NAME_MAX - 1;
    memcpy(dst, s, n);
    dst[n] = '\0';
    return 0;
}

int st__reg_set_name(st__reg_t *reg, st__obj_t *obj, const char *name)
{
    uint32_t slot = obj->name;
    int rc = string_set(reg, &slot, name);
    obj->name = slot;
    return rc;
}

int st__reg_set_label(st__reg_t *reg, st__obj_t *obj, const char *label)
{
    uint32_t slot = obj->label;
    int rc = string_set(reg, &slot, label);
    obj->label = slot;
    return rc;
}

const char *st__reg_name(const st__reg_t *reg, const st__obj_t *obj)
{
    return obj->name ? reg->strings[obj->name - 1] : "";
}

const char *st__reg_label(const st__reg_t *reg, const st__obj_t *obj)
{
    return obj->label ? reg->strings[obj->label - 1] : "";
}

uint32_t st__reg_obj_limit(const st__reg_t *reg)
{
    return reg->obj_hi;
}

st__obj_t *st__reg_obj(st__reg_t *reg, uint32_t id)
{
    return &reg->objs[id];
}

uint32_t st__reg_obj_id(const st__reg_t *reg, const st__obj_t *obj)
{
    return (uint32_t)(obj - reg->objs);
}

st__range_t *st__reg_range(st__reg_t *reg, uint32_t id_plus_one)
{
    return id_plus_one ? &reg->ranges[id_plus_one - 1] : NULL;
}

static void maybe_remove(st__reg_t *reg, st__obj_t *obj);

ST__HOT void st__reg_remove(st__reg_t *reg, st__obj_t *obj)
{
    if (!obj->used || obj->nranges != 0 || obj->pending_refs != 0)
        return;
    uint32_t id = (uint32_t)(obj - reg->objs);
    st__obj_t *hint = NULL;
    if (obj->flags & ST__OBJ_PENDING) {
        /* not in the hash; hnext is the hint */
        hint = st__reg_pending_hint(reg, obj);
        obj->hnext = 0;
        reg->n_pending--;
    } else if (obj->flags & ST__OBJ_FDPEND) {
        reg->n_fdpend--; /* not in the hash either */
    } else {
        uint32_t *link = &reg->buckets[hash_key(reg, obj->a, obj->b, obj->kind)];
        while (*link != 0 && *link != id + 1)
            link = &reg->objs[*link - 1].hnext;
        if (*link == id + 1)
            *link = obj->hnext;
    }
    notify(reg, obj, ST__REG_REMOVED, 0, 0);
    if (obj->fd >= 0 && (uint32_t)obj->fd < reg->max_fds && fd_slot(reg, obj->fd) == id + 1 &&
        !(obj->flags & ST__OBJ_PENDING))
        fd_slot_set(reg, obj->fd, NULL);
    string_free(reg, &obj->name);
    string_free(reg, &obj->label);
    obj->used = 0;
    obj->flags = 0;
    obj->hnext = reg->free_obj;
    reg->free_obj = id + 1;
    reg->n_objs--;
    if (hint != NULL) {
        hint->pending_refs--;
        maybe_remove(reg, hint);
    }
}

/* An object leaves when nothing holds it any more: no range and no fd of ours on it. Whether the
 * fd is still open is learnt when its number is reused (st__reg_set_fd) or at a sweep, so that
 * munmap costs no extra syscall. */
ST__HOT static void maybe_remove(st__reg_t *reg, st__obj_t *obj)
{
    /* pending: fd is a hint; escaped: another fd may hold it (the next sweep decides) */
    bool fd_held =
        !(obj->flags & ST__OBJ_PENDING) && (obj->fd >= 0 || (obj->flags & ST__OBJ_ESCAPED));
    if (obj->nranges != 0 || fd_held || (obj->flags & OBJ_PINNED) || obj->pending_refs != 0)
        return;
    st__reg_remove(reg, obj);
}

ST__HOT void st__reg_set_fd(st__reg_t *reg, st__obj_t *obj, int fd)
{
    uint32_t id = (uint32_t)(obj - reg->objs);
    if (fd >= 0 && (uint32_t)fd < reg->max_fds) {
        uint32_t prev = fd_slot(reg, fd);
        if (prev != 0 && prev != id + 1) {
            st__obj_t *old = &reg->objs[prev - 1];
            if (old->used && old->fd == fd) {
                old->fd = -1;
                maybe_remove(reg, old);
            }
        }
        fd_slot_set(reg, fd, obj);
    }
    obj->fd = fd;
}

static bool fd_names(int fd, const st__obj_t *obj)
{
    st__fdinfo_t fi;
    return fd >= 0 && st__prim_fd_stat(fd, &fi) == 0 && fi.type == ST__FD_REG && fi.ino == obj->b &&
           (((uint64_t)fi.dev_major << 32) | fi.dev_minor) == obj->a;
}

struct fd_search {
    const st__obj_t *obj;
    int found;
};

static int fd_search_cb(int fd, void *ctx)
{
    struct fd_search *s = ctx;
    if (!fd_names(fd, s->obj))
        return 0;
    s->found = fd;
    return 1;
}

void st__reg_sweep(st__reg_t *reg)
{
    static char dirents[4096];
    for (uint32_t i = 0; i < reg->obj_hi; i++) {
        st__obj_t *obj = &reg->objs[i];
        if (!obj->used || (obj->flags & (ST__OBJ_PENDING | ST__OBJ_FDPEND)))
            continue;
        bool escaped = (obj->flags & ST__OBJ_ESCAPED) != 0;
        if ((obj->fd < 0 && !escaped) || fd_names(obj->fd, obj))
            continue;
        if (obj->fd >= 0 && (uint32_t)obj->fd < reg->max_fds && fd_slot(reg, obj->fd) == i + 1)
            fd_slot_set(reg, obj->fd, NULL);
        obj->fd = -1;
        obj->flags &= (uint8_t)~ST__OBJ_ESCAPED;
        if (escaped) {
            /* a duplicate (dup, SCM_RIGHTS to ourselves) may still hold it */
            struct fd_search s = {obj, -1};
            st__prim_each_fd(dirents, sizeof(dirents), fd_search_cb, &s);
            if (s.found >= 0) {
                st__reg_set_fd(reg, obj, s.found);
                obj->flags |= ST__OBJ_ESCAPED;
                continue;
            }
        }
        maybe_remove(reg, obj);
    }
}

ST__HOT void st__reg_close_fd(st__reg_t *reg, int fd)
{
    if (fd < 0 || (uint32_t)fd >= reg->max_fds || fd_slot(reg, fd) == 0)
        return;
    st__obj_t *obj = &reg->objs[fd_slot(reg, fd) - 1];
    fd_slot_set(reg, fd, NULL);
    if (!obj->used || obj->fd != fd || (obj->flags & ST__OBJ_PENDING))
        return;
    obj->fd = -1;
    maybe_remove(reg, obj);
}

/* ---- ranges ---------------------------------------------------------------------------------- */

/* First position in sorted whose range ends after addr. */
ST__HOT static uint32_t lower_bound(const st__reg_t *reg, uintptr_t addr)
{
    uint32_t lo = 0, hi = reg->n_sorted;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        const st__range_t *r = &reg->ranges[reg->sorted[mid]];
        if (r->start + r->len <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

bool st__reg_overlaps(const st__reg_t *reg, uintptr_t start, uintptr_t end)
{
    uint32_t pos = lower_bound(reg, start);
    return pos < reg->n_sorted && reg->ranges[reg->sorted[pos]].start < end;
}

ST__HOT static int range_alloc(st__reg_t *reg, uint32_t *out)
{
    if (reg->free_range != 0) {
        *out = reg->free_range - 1;
        reg->free_range = reg->ranges[*out].next;
    } else if (reg->range_hi < reg->max_ranges) {
        *out = reg->range_hi++;
    } else {
        return -ENOSPC;
    }
    reg->n_ranges++;
    return 0;
}

ST__HOT static void sorted_insert(st__reg_t *reg, uint32_t pos, uint32_t id)
{
    memmove(&reg->sorted[pos + 1], &reg->sorted[pos], (reg->n_sorted - pos) * sizeof(uint32_t));
    reg->sorted[pos] = id;
    reg->n_sorted++;
}

/* Adds range id to its object's list. */
ST__HOT static void obj_link(st__reg_t *reg, st__obj_t *obj, uint32_t id)
{
    reg->ranges[id].next = obj->first;
    obj->first = id + 1;
    obj->nranges++;
}

ST__HOT static void obj_unlink(st__reg_t *reg, st__obj_t *obj, uint32_t id)
{
    uint32_t *link = &obj->first;
    while (*link != 0 && *link != id + 1)
        link = &reg->ranges[*link - 1].next;
    if (*link == id + 1) {
        *link = reg->ranges[id].next;
        obj->nranges--;
    }
}

/* Removes sorted[pos] entirely; returns its object. */
ST__HOT static st__obj_t *range_drop(st__reg_t *reg, uint32_t pos)
{
    uint32_t id = reg->sorted[pos];
    st__range_t *r = &reg->ranges[id];
    st__obj_t *obj = &reg->objs[r->obj];
    obj_unlink(reg, obj, id);
    memmove(&reg->sorted[pos], &reg->sorted[pos + 1], (reg->n_sorted - pos - 1) * sizeof(uint32_t));
    reg->n_sorted--;
    r->next = reg->free_range;
    reg->free_range = id + 1;
    reg->n_ranges--;
    return obj;
}

ST__HOT size_t st__reg_unmap(st__reg_t *reg, uintptr_t start, size_t len)
{
    uintptr_t end = start + len;
    size_t removed = 0;
    uint32_t pos = lower_bound(reg, start);
    while (pos < reg->n_sorted) {
        uint32_t id = reg->sorted[pos];
        st__range_t *r = &reg->ranges[id];
        uintptr_t rs = r->start, re = r->start + r->len;
        if (rs >= end)
            break;
        st__obj_t *obj = &reg->objs[r->obj];
        if (rs < start && re > end) {
            /* A hole in the middle: keep the head, add the tail as a new range. */
            uint32_t tail;
            if (range_alloc(reg, &tail) != 0) {
                /* No room for the tail: forget it rather than keep a wrong range. */
                r->len = start - rs;
                notify(reg, obj, ST__REG_UNMAPPED, start, re - start);
                removed += re - start;
                pos++;
                continue;
            }
            st__range_t *t = &reg->ranges[tail];
            t->start = end;
            t->len = re - end;
            t->off = r->off + (end - rs);
            t->obj = r->obj;
            obj_link(reg, obj, tail);
            r->len = start - rs;
            sorted_insert(reg, pos + 1, tail);
            notify(reg, obj, ST__REG_UNMAPPED, start, len);
            removed += len;
            pos += 2;
        } else if (rs < start) {
            r->len = start - rs;
            notify(reg, obj, ST__REG_UNMAPPED, start, re - start);
            removed += re - start;
            pos++;
        } else if (re > end) {
            r->off += end - rs;
            r->start = end;
            r->len = re - end;
            notify(reg, obj, ST__REG_UNMAPPED, rs, end - rs);
            removed += end - rs;
            pos++;
        } else {
            notify(reg, obj, ST__REG_UNMAPPED, rs, re - rs);
            removed += re - rs;
            range_drop(reg, pos);
            maybe_remove(reg, obj);
        }
    }
    if (removed > 0)
        bounds_recompute(reg);
    return removed;
}

ST__HOT int st__reg_map(st__reg_t *reg, st__obj_t *obj, uintptr_t start, size_t len, uint64_t off)
{
    uint8_t pinned = obj->flags & OBJ_PINNED;
    obj->flags |= OBJ_PINNED;
    if (st__reg_may_overlap(reg, start, len))
        st__reg_unmap(reg, start, len);
    obj->flags = (uint8_t)((obj->flags & ~OBJ_PINNED) | pinned);
    uint32_t id;
    int rc = range_alloc(reg, &id);
    if (rc != 0) {
        maybe_remove(reg, obj);
        return rc;
    }
    st__range_t *r = &reg->ranges[id];
    r->start = start;
    r->len = len;
    r->off = off;
    r->obj = (uint32_t)(obj - reg->objs);
    obj_link(reg, obj, id);
    sorted_insert(reg, lower_bound(reg, start), id);
    bounds_add(reg, start, len);
    notify(reg, obj, ST__REG_MAPPED, start, len);
    return 0;
}

st__obj_t *st__reg_find_addr(st__reg_t *reg, uintptr_t addr, st__range_t **range)
{
    uint32_t pos = lower_bound(reg, addr);
    if (pos < reg->n_sorted) {
        st__range_t *r = &reg->ranges[reg->sorted[pos]];
        if (r->start <= addr) {
            if (range != NULL)
                *range = r;
            return &reg->objs[r->obj];
        }
    }
    if (range != NULL)
        *range = NULL;
    return NULL;
}

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

int st__reg_mremap(st__reg_t *reg, uintptr_t old_addr, size_t old_len, uintptr_t new_addr,
                   size_t new_len, int flags)
{
    st__range_t *r = NULL;
    st__obj_t *obj = st__reg_find_addr(reg, old_addr, &r);
    if (obj == NULL) {
        /* Untracked memory moved, possibly over tracked ranges (MREMAP_FIXED replaces). */
        if (new_addr != old_addr || new_len > old_len)
            st__reg_unmap(reg, new_addr, new_len);
        return 0;
    }
    uint64_t off = r->off + (old_addr - r->start);
    uint8_t pinned = obj->flags & OBJ_PINNED;
    obj->flags |= OBJ_PINNED;
    /* old_len == 0 makes a second mapping of a shared mapping and leaves the first. */
    if (old_len != 0 && !(flags & MREMAP_DONTUNMAP))
        st__reg_unmap(reg, old_addr, old_len);
    int rc = st__reg_map(reg, obj, new_addr, new_len, off);
    obj->flags = (uint8_t)((obj->flags & ~OBJ_PINNED) | pinned);
    if (obj->used)
        maybe_remove(reg, obj);
    return rc;
}

uint64_t st__reg_mapped_bytes(st__reg_t *reg, const st__obj_t *obj)
{
    uint64_t sum = 0;
    for (uint32_t id = obj->first; id != 0; id = reg->ranges[id - 1].next)
        sum += reg->ranges[id - 1].len;
    return sum;
}

/* ---- pending identity ------------------------------------------------------------------------ */

ST__HOT int st__reg_add_pending(st__reg_t *reg, uint8_t kind, st__obj_t *hint, st__obj_t **out)
{
    if (hint != NULL && hint->pending_refs == UINT8_MAX)
        return -EBUSY;
    st__obj_t *o = obj_alloc(reg, kind);
    if (o == NULL)
        return -ENOSPC;
    o->flags = ST__OBJ_PENDING;
    if (hint != NULL) {
        o->hnext = (uint32_t)(hint - reg->objs) + 1;
        hint->pending_refs++;
    }
    reg->n_pending++;
    *out = o;
    return 0;
}

ST__HOT st__obj_t *st__reg_pending_hint(st__reg_t *reg, const st__obj_t *pending)
{
    if (!(pending->flags & ST__OBJ_PENDING) || pending->hnext == 0)
        return NULL;
    return &reg->objs[pending->hnext - 1];
}

ST__HOT st__obj_t *st__reg_fd_object(st__reg_t *reg, int fd)
{
    if (fd < 0 || (uint32_t)fd >= reg->max_fds || fd_slot(reg, fd) == 0)
        return NULL;
    st__obj_t *o = &reg->objs[fd_slot(reg, fd) - 1];
    if (!o->used || o->fd != fd || (o->flags & ST__OBJ_PENDING))
        return NULL;
    return o;
}

ST__FAST bool st__reg_fd_keyed_maybe(const st__reg_t *reg, int fd)
{
    if (fd < 0 || (uint32_t)fd >= reg->max_fds || reg->fd_index == NULL)
        return false;
    uint32_t v = __atomic_load_n(&reg->fd_index[fd], __ATOMIC_RELAXED);
    return v != 0 && !(v & FD_PEND);
}

void st__reg_merge_pending(st__reg_t *reg, st__obj_t *pending, st__obj_t *target)
{
    uint32_t tid = (uint32_t)(target - reg->objs);
    uint8_t pinned = target->flags & OBJ_PINNED;
    target->flags |= OBJ_PINNED; /* removing pending may drop the hint's last reference */
    for (uint32_t id = pending->first; id != 0;) {
        st__range_t *r = &reg->ranges[id - 1];
        uint32_t next = r->next;
        r->obj = tid;
        r->next = target->first;
        target->first = id;
        target->nranges++;
        notify(reg, target, ST__REG_MAPPED, r->start, r->len);
        id = next;
    }
    target->flags |= pending->flags & (ST__OBJ_CREATOR | ST__OBJ_INHERITED);
    if (pending->size > target->size)
        target->size = pending->size;
    pending->first = 0;
    pending->nranges = 0;
    st__reg_remove(reg, pending);
    target->flags = (uint8_t)((target->flags & ~OBJ_PINNED) | pinned);
}

void st__reg_drop_pending(st__reg_t *reg, st__obj_t *pending)
{
    while (pending->used && pending->first != 0) {
        const st__range_t *r = &reg->ranges[pending->first - 1];
        st__reg_unmap(reg, r->start, r->len); /* the last one removes pending */
    }
    if (pending->used)
        st__reg_remove(reg, pending);
}

void st__reg_set_resolver(st__reg_t *reg, void (*fn)(st__reg_t *reg, void *ctx), void *ctx)
{
    reg->resolver = fn;
    reg->resolver_ctx = ctx;
}

void st__reg_resolve_all(st__reg_t *reg)
{
    if ((reg->n_pending != 0 || reg->n_fdpend != 0) && reg->resolver != NULL)
        reg->resolver(reg, reg->resolver_ctx);
}

/* ---- pending created fds -------------------------------------------------------------------- */

ST__HOT int st__reg_add_fd_pending(st__reg_t *reg, uint8_t kind, int fd, uint64_t ts_ns,
                                   st__obj_t **out)
{
    st__obj_t *o = obj_alloc(reg, kind);
    if (o == NULL)
        return -ENOSPC;
    o->flags = ST__OBJ_FDPEND;
    o->a = ts_ns;
    reg->n_fdpend++;
    st__reg_set_fd(reg, o, fd);
    *out = o;
    return 0;
}

/* Every pending mapping whose hint is obj: its hint becomes to (NULL: none). */
static void rehint(st__reg_t *reg, st__obj_t *obj, st__obj_t *to)
{
    uint32_t id = (uint32_t)(obj - reg->objs) + 1;
    for (uint32_t i = 0; i < reg->obj_hi && obj->pending_refs != 0; i++) {
        st__obj_t *p = &reg->objs[i];
        if (!p->used || !(p->flags & ST__OBJ_PENDING) || p->hnext != id)
            continue;
        obj->pending_refs--;
        if (to != NULL && to->pending_refs < UINT8_MAX) {
            p->hnext = (uint32_t)(to - reg->objs) + 1;
            to->pending_refs++;
        } else {
            p->hnext = 0;
        }
    }
    obj->pending_refs = 0;
}

void st__reg_key_fd_pending(st__reg_t *reg, st__obj_t *obj, const st__key_t *key, st__obj_t **out)
{
    st__obj_t *e = st__reg_find(reg, key);
    if (e == NULL) {
        uint32_t id = (uint32_t)(obj - reg->objs);
        obj->flags &= (uint8_t)~ST__OBJ_FDPEND;
        reg->n_fdpend--;
        obj->a = key->a;
        obj->b = key->b;
        uint32_t *bucket = &reg->buckets[hash_key(reg, key->a, key->b, obj->kind)];
        obj->hnext = *bucket;
        *bucket = id + 1;
        if (obj->fd >= 0 && (uint32_t)obj->fd < reg->max_fds && fd_slot(reg, obj->fd) == id + 1)
            fd_slot_set(reg, obj->fd, obj); /* no longer FD_PEND */
        notify(reg, obj, ST__REG_ADDED, 0, 0);
        *out = obj;
        return;
    }
    /* already known (mapped read-only, or from another fd): obj merges into it */
    e->flags |= obj->flags & (ST__OBJ_CREATOR | ST__OBJ_ESCAPED);
    if (obj->size > e->size)
        e->size = obj->size;
    if (e->name == 0 && obj->name != 0)
        (void)st__reg_set_name(reg, e, st__reg_name(reg, obj));
    rehint(reg, obj, e);
    int fd = obj->fd;
    if (fd >= 0)
        st__reg_set_fd(reg, e, fd); /* takes the fd index slot: obj leaves */
    if (obj->used) {
        obj->fd = -1;
        st__reg_remove(reg, obj);
    }
    *out = e;
}

void st__reg_drop_fd_pending(st__reg_t *reg, st__obj_t *obj)
{
    rehint(reg, obj, NULL);
    st__reg_remove(reg, obj);
}

/* ---- fast table (registry.h) ------------------------------------------------------------------
 */

void st__reg_fast_bounds(st__reg_t *reg)
{
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    for (int i = 0; i < ST__REG_FAST; i++) {
        const st__reg_fast_t *e = &reg->fast[i];
        if (reg->fast_fd1[i] == 0 || e->len == 0)
            continue;
        if (e->start < lo)
            lo = e->start;
        if (e->start + e->len > hi)
            hi = e->start + e->len;
    }
    __atomic_store_n(&reg->fast_lo, lo, __ATOMIC_RELAXED);
    __atomic_store_n(&reg->fast_hi, hi, __ATOMIC_RELAXED);
}

/* One slot as the slow path would have recorded it: an FDPEND object (st__reg_add_fd_pending, as
 * memfd_create does) and its mapping as a pending object whose hint it is (as mmap does). */
static int fast_flush_one(st__reg_t *reg, int fd, const st__reg_fast_t *e)
{
    uint32_t need = e->len != 0 ? 2 : 1;
    if (reg->max_objs - reg->n_objs < need || reg->max_ranges - reg->n_ranges < need - 1) {
        st__reg_resolve_all(reg); /* merges pending objects, as a full registry does in the hooks */
        if (reg->max_objs - reg->n_objs < need || reg->max_ranges - reg->n_ranges < need - 1)
            return -ENOSPC;
    }
    st__obj_t *o = NULL, *p = NULL;
    if (st__reg_add_fd_pending(reg, e->kind, fd, e->ts, &o) != 0)
        return -ENOSPC;
    o->b = e->name_hash;
    o->flags |= e->flags;
    o->importance = e->importance;
    if (e->len == 0)
        return 0;
    if (st__reg_add_pending(reg, e->kind, o, &p) != 0)
        return -ENOSPC;
    p->fd = fd;
    p->size = 0; /* an fd's object: its size is read at resolution */
    return st__reg_map(reg, p, e->start, e->len, e->off);
}

int st__reg_fast_flush(st__reg_t *reg)
{
    int rc = 0;
    for (int i = 0; i < ST__REG_FAST && reg->n_fast != 0; i++) {
        int32_t fd1 = reg->fast_fd1[i];
        if (fd1 == 0)
            continue;
        if (fast_flush_one(reg, fd1 - 1, &reg->fast[i]) != 0) {
            reg->fast_lost++;
            rc = -ENOSPC;
        }
        reg->fast[i].len = 0;
        reg->n_fast--;
        __atomic_store_n(&reg->fast_fd1[i], 0, __ATOMIC_RELEASE); /* after the fd index entry */
    }
    __atomic_store_n(&reg->fast_lo, UINTPTR_MAX, __ATOMIC_RELAXED);
    __atomic_store_n(&reg->fast_hi, 0, __ATOMIC_RELAXED);
    return rc;
}

/* ---- fork ------------------------------------------------------------------------------------ */

void st__reg_fork_child(st__reg_t *reg, bool consistent)
{
    reg->lock = 0;
    if (!consistent) {
        /* Another thread was mid-update when the parent forked without our lock (_Fork from a
         * signal handler, a raw clone): start empty; the coordinator's /proc scan covers the
         * inherited objects. */
        void *arena = reg->arena;
        size_t arena_len = reg->arena_len;
        uint32_t mo = reg->max_objs, mr = reg->max_ranges;
        st__reg_change_cb cb = reg->on_change;
        void *ctx = reg->change_ctx;
        void (*resolver)(st__reg_t *, void *) = reg->resolver;
        void *resolver_ctx = reg->resolver_ctx;
        st__prim_arena_unmap(arena, arena_len);
        if (st__reg_init(reg, mo, mr) != 0) {
            /* No arena: an empty registry that can hold nothing (st__reg_get says -ENOSPC). */
            memset(reg, 0, sizeof(*reg));
            reg->lo = UINTPTR_MAX;
            reg->fast_lo = UINTPTR_MAX;
            reg->n_buckets = 1;
            reg->buckets = &reg->free_obj; /* a single empty bucket that stays 0 */
        }
        reg->on_change = cb;
        reg->change_ctx = ctx;
        reg->resolver = resolver;
        reg->resolver_ctx = resolver_ctx;
        return;
    }
    (void)st__reg_fast_flush(reg); /* empty: the parent flushed when it took the lock */
    for (uint32_t i = 0; i < reg->obj_hi; i++) {
        st__obj_t *o = &reg->objs[i];
        if (!o->used)
            continue;
        o->flags = (uint8_t)((o->flags & ~ST__OBJ_CREATOR) | ST__OBJ_INHERITED);
    }
}

/* ---- measurement ----------------------------------------------------------------------------- */

size_t st__reg_bytes_per_object(const st__reg_t *reg)
{
    (void)reg;
    return sizeof(st__obj_t) + sizeof(st__range_t) + sizeof(uint32_t) /* bucket */ +
           sizeof(uint32_t) /* sorted slot */;
}

size_t st__reg_resident_bytes(const st__reg_t *reg)
{
    static unsigned char vec[4096];
    size_t page = st__prim_page_size();
    size_t pages = reg->arena_len / page, resident = 0;
    for (size_t at = 0; at < pages; at += sizeof(vec)) {
        size_t n = pages - at < sizeof(vec) ? pages - at : sizeof(vec);
        if (st__prim_mincore((char *)reg->arena + at * page, n * page, vec) != 0)
            return 0;
        for (size_t i = 0; i < n; i++)
            resident += vec[i] & 1;
    }
    return resident * page;
}

_Static_assert(sizeof(st__obj_t) == 56, "object record grew: check the 128-byte budget");
_Static_assert(sizeof(st__range_t) == 32, "range record grew: check the 128-byte budget");
