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
 * Insertion into `sorted` is a memmove, which is cheap at the sizes a process maps shared memory
 * in (thousands of mappings), and keeps every lookup a binary search with no allocation.
 */
#include "registry.h"

#include "model.h"
#include "prim.h"

#include <errno.h>
#include <string.h>

#define OBJ_PINNED 0x80 /* internal: kept alive during mremap */

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
    pthread_mutex_init(&reg->lock, NULL);
    return 0;
}

void st__reg_destroy(st__reg_t *reg)
{
    st__prim_arena_unmap(reg->arena, reg->arena_len);
    pthread_mutex_destroy(&reg->lock);
    memset(reg, 0, sizeof(*reg));
}

void st__reg_lock(st__reg_t *reg)
{
    pthread_mutex_lock(&reg->lock);
}

bool st__reg_trylock(st__reg_t *reg)
{
    return pthread_mutex_trylock(&reg->lock) == 0;
}

void st__reg_unlock(st__reg_t *reg)
{
    pthread_mutex_unlock(&reg->lock);
}

void st__reg_set_change_cb(st__reg_t *reg, st__reg_change_cb cb, void *ctx)
{
    reg->on_change = cb;
    reg->change_ctx = ctx;
}

static void notify(st__reg_t *reg, const st__obj_t *obj, st__reg_change_t what, uint64_t start,
                   uint64_t len)
{
    if (reg->on_change != NULL && !(obj->flags & ST__OBJ_PENDING))
        reg->on_change(obj, what, start, len, reg->change_ctx);
}

/* ---- bounds ---------------------------------------------------------------------------------- */

bool st__reg_may_overlap(const st__reg_t *reg, uintptr_t start, size_t len)
{
    uintptr_t lo = __atomic_load_n(&reg->lo, __ATOMIC_RELAXED);
    uintptr_t hi = __atomic_load_n(&reg->hi, __ATOMIC_RELAXED);
    return start < hi && start + len > lo;
}

static void bounds_add(st__reg_t *reg, uintptr_t start, size_t len)
{
    if (start < reg->lo)
        __atomic_store_n(&reg->lo, start, __ATOMIC_RELAXED);
    if (start + len > reg->hi)
        __atomic_store_n(&reg->hi, start + len, __ATOMIC_RELAXED);
}

static void bounds_recompute(st__reg_t *reg)
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
static st__obj_t *obj_alloc(st__reg_t *reg, uint8_t kind)
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

static void string_free(st__reg_t *reg, uint32_t *slot)
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

void st__reg_remove(st__reg_t *reg, st__obj_t *obj)
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
    } else {
        uint32_t *link = &reg->buckets[hash_key(reg, obj->a, obj->b, obj->kind)];
        while (*link != 0 && *link != id + 1)
            link = &reg->objs[*link - 1].hnext;
        if (*link == id + 1)
            *link = obj->hnext;
    }
    notify(reg, obj, ST__REG_REMOVED, 0, 0);
    if (obj->fd >= 0 && (uint32_t)obj->fd < reg->max_fds && reg->fd_index[obj->fd] == id + 1 &&
        !(obj->flags & ST__OBJ_PENDING))
        reg->fd_index[obj->fd] = 0;
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
static void maybe_remove(st__reg_t *reg, st__obj_t *obj)
{
    bool fd_held = obj->fd >= 0 && !(obj->flags & ST__OBJ_PENDING); /* pending: fd is a hint */
    if (obj->nranges != 0 || fd_held || (obj->flags & OBJ_PINNED) || obj->pending_refs != 0)
        return;
    st__reg_remove(reg, obj);
}

void st__reg_set_fd(st__reg_t *reg, st__obj_t *obj, int fd)
{
    uint32_t id = (uint32_t)(obj - reg->objs);
    if (fd >= 0 && (uint32_t)fd < reg->max_fds) {
        uint32_t prev = reg->fd_index[fd];
        if (prev != 0 && prev != id + 1) {
            st__obj_t *old = &reg->objs[prev - 1];
            if (old->used && old->fd == fd) {
                old->fd = -1;
                maybe_remove(reg, old);
            }
        }
        reg->fd_index[fd] = id + 1;
    }
    obj->fd = fd;
}

void st__reg_sweep(st__reg_t *reg)
{
    for (uint32_t i = 0; i < reg->obj_hi; i++) {
        st__obj_t *obj = &reg->objs[i];
        if (!obj->used || obj->fd < 0 || (obj->flags & ST__OBJ_PENDING))
            continue;
        st__fdinfo_t fi;
        if (st__prim_fd_stat(obj->fd, &fi) == 0 && fi.ino == obj->b &&
            (((uint64_t)fi.dev_major << 32) | fi.dev_minor) == obj->a)
            continue;
        if ((uint32_t)obj->fd < reg->max_fds && reg->fd_index[obj->fd] == i + 1)
            reg->fd_index[obj->fd] = 0;
        obj->fd = -1;
        maybe_remove(reg, obj);
    }
}

/* ---- ranges ---------------------------------------------------------------------------------- */

/* First position in sorted whose range ends after addr. */
static uint32_t lower_bound(const st__reg_t *reg, uintptr_t addr)
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

static int range_alloc(st__reg_t *reg, uint32_t *out)
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

static void sorted_insert(st__reg_t *reg, uint32_t pos, uint32_t id)
{
    memmove(&reg->sorted[pos + 1], &reg->sorted[pos], (reg->n_sorted - pos) * sizeof(uint32_t));
    reg->sorted[pos] = id;
    reg->n_sorted++;
}

/* Adds range id to its object's list. */
static void obj_link(st__reg_t *reg, st__obj_t *obj, uint32_t id)
{
    reg->ranges[id].next = obj->first;
    obj->first = id + 1;
    obj->nranges++;
}

static void obj_unlink(st__reg_t *reg, st__obj_t *obj, uint32_t id)
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
static st__obj_t *range_drop(st__reg_t *reg, uint32_t pos)
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

size_t st__reg_unmap(st__reg_t *reg, uintptr_t start, size_t len)
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

int st__reg_map(st__reg_t *reg, st__obj_t *obj, uintptr_t start, size_t len, uint64_t off)
{
    uint8_t pinned = obj->flags & OBJ_PINNED;
    obj->flags |= OBJ_PINNED;
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

int st__reg_add_pending(st__reg_t *reg, uint8_t kind, st__obj_t *hint, st__obj_t **out)
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

st__obj_t *st__reg_pending_hint(st__reg_t *reg, const st__obj_t *pending)
{
    if (!(pending->flags & ST__OBJ_PENDING) || pending->hnext == 0)
        return NULL;
    return &reg->objs[pending->hnext - 1];
}

st__obj_t *st__reg_fd_object(st__reg_t *reg, int fd)
{
    if (fd < 0 || (uint32_t)fd >= reg->max_fds || reg->fd_index[fd] == 0)
        return NULL;
    st__obj_t *o = &reg->objs[reg->fd_index[fd] - 1];
    if (!o->used || o->fd != fd || (o->flags & ST__OBJ_PENDING))
        return NULL;
    return o;
}

bool st__reg_fd_maybe(const st__reg_t *reg, int fd)
{
    return fd >= 0 && (uint32_t)fd < reg->max_fds && reg->fd_index != NULL &&
           __atomic_load_n(&reg->fd_index[fd], __ATOMIC_RELAXED) != 0;
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
    if (reg->n_pending != 0 && reg->resolver != NULL)
        reg->resolver(reg, reg->resolver_ctx);
}

/* ---- fork ------------------------------------------------------------------------------------ */

void st__reg_fork_child(st__reg_t *reg, bool consistent)
{
    pthread_mutex_init(&reg->lock, NULL);
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
            pthread_mutex_init(&reg->lock, NULL);
            reg->lo = UINTPTR_MAX;
            reg->n_buckets = 1;
            reg->buckets = &reg->free_obj; /* a single empty bucket that stays 0 */
        }
        reg->on_change = cb;
        reg->change_ctx = ctx;
        reg->resolver = resolver;
        reg->resolver_ctx = resolver_ctx;
        return;
    }
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
