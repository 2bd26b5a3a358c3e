/* SPDX-License-Identifier: MIT
 *
 * What a process reports at a dump request (private to allocator/; see agent.h): one fixed record
 * per object it holds and its process totals.
 *
 * fd-backed objects (memfd, POSIX shm, hugetlbfs files) are measured from an fd of the object, the
 * way src/residency.c measures them for the /proc scan: cachestat(2) counts every page of the
 * object's page cache, including pages that posix_fallocate allocated and nobody wrote yet (which
 * mincore misses: they are not uptodate), and swapped bytes are st_blocks*512 minus that; hugetlbfs
 * objects are their st_blocks. The fd is the one the object was created through, else any fd this
 * process holds on the inode (a walk of /proc/self/fd, once per dump), else one opened through
 * /proc/self/map_files (which the kernel permits with CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE).
 * With none of them, or a kernel without cachestat, the object falls back to mincore below and
 * its record says the figure is a lower bound (ST__RES_MINCORE_LOWER).
 *
 * Otherwise resident bytes come from mincore(2) over this process's own mappings of the object,
 * which for shmem reports the object's page cache (pages faulted by any process), not this
 * process's page tables. An object mapped several times, or in pieces, is counted over the union of
 * its mapped object offsets, so each resident page counts once. The kernel answers "all resident"
 * to a caller that can neither write nor own the file; such objects (flagged ST__OBJ_UNTRUSTED by
 * the hooks) report ST__REC_RESIDENT_UNKNOWN when mincore says every page is in, and the
 * coordinator falls back to its /proc scan. Swap comes from /proc/self/smaps, whose Swap line for a
 * shared shmem VMA counts the object's swapped pages in the VMA's range; the largest figure over
 * the object's VMAs is reported (exact when one mapping covers the object). Everything is read with
 * raw syscalls into static buffers: this runs on the agent thread or at exit, one caller at a time.
 */
#include "agent.h"

#include "model.h"
#include "prim.h"

#include <errno.h>
#include <string.h>

#define MAX_RANGES_MEASURED 64

static char line_buf[8192];

/* "Key:   123 kB" -> 123 * 1024 when the line starts with key. */
static int kb_value(const char *line, size_t len, const char *key, uint64_t *out)
{
    size_t k = strlen(key);
    if (len <= k || memcmp(line, key, k) != 0)
        return 0;
    size_t i = k;
    while (i < len && (line[i] == ' ' || line[i] == '\t'))
        i++;
    uint64_t v = 0;
    for (; i < len && line[i] >= '0' && line[i] <= '9'; i++)
        v = v * 10 + (uint64_t)(line[i] - '0');
    *out = v * 1024;
    return 1;
}

struct totals_ctx {
    st__totals_record_t *t;
    uint64_t priv_clean, priv_dirty, rss_anon, vm_swap;
    unsigned seen;
};

enum {
    SEEN_RSS = 1,
    SEEN_PSS = 2,
    SEEN_PC = 4,
    SEEN_PD = 8,
    SEEN_ANON = 16,
    SEEN_VMSWAP = 32,
    SEEN_SHMEM = 64
};

static int rollup_cb(const char *line, size_t len, void *ctx)
{
    struct totals_ctx *c = ctx;
    uint64_t v;
    if (kb_value(line, len, "Rss:", &v)) {
        c->t->resident_set_bytes = v;
        c->seen |= SEEN_RSS;
    } else if (kb_value(line, len, "Pss:", &v)) {
        c->t->pss_bytes = v;
        c->seen |= SEEN_PSS;
    } else if (kb_value(line, len, "Private_Clean:", &v)) {
        c->priv_clean = v;
        c->seen |= SEEN_PC;
    } else if (kb_value(line, len, "Private_Dirty:", &v)) {
        c->priv_dirty = v;
        c->seen |= SEEN_PD;
    }
    return 0;
}

static int status_cb(const char *line, size_t len, void *ctx)
{
    struct totals_ctx *c = ctx;
    uint64_t v;
    if (kb_value(line, len, "RssAnon:", &v)) {
        c->rss_anon = v;
        c->seen |= SEEN_ANON;
    } else if (kb_value(line, len, "VmSwap:", &v)) {
        c->vm_swap = v;
        c->seen |= SEEN_VMSWAP;
    } else if (kb_value(line, len, "RssShmem:", &v)) {
        c->t->rss_shmem_bytes = v;
        c->seen |= SEEN_SHMEM;
    }
    return 0;
}

int st__agent_measure_totals(st__totals_record_t *out)
{
    memset(out, 0, sizeof(*out));
    struct totals_ctx c = {.t = out};
    int rc1 =
        st__prim_read_lines("/proc/self/smaps_rollup", line_buf, sizeof(line_buf), rollup_cb, &c);
    int rc2 = st__prim_read_lines("/proc/self/status", line_buf, sizeof(line_buf), status_cb, &c);
    if (c.seen & SEEN_RSS)
        out->present |= ST_TOTAL_HAS(resident_set_bytes);
    if (c.seen & SEEN_PSS)
        out->present |= ST_TOTAL_HAS(pss_bytes);
    if ((c.seen & (SEEN_PC | SEEN_PD)) == (SEEN_PC | SEEN_PD)) {
        out->uss_bytes = c.priv_clean + c.priv_dirty;
        out->present |= ST_TOTAL_HAS(uss_bytes);
    }
    if ((c.seen & (SEEN_ANON | SEEN_VMSWAP)) == (SEEN_ANON | SEEN_VMSWAP)) {
        out->private_footprint_bytes = c.rss_anon + c.vm_swap;
        out->present |= ST_TOTAL_HAS(private_footprint_bytes);
    }
    if (c.seen & SEEN_VMSWAP) {
        out->swap_bytes = c.vm_swap;
        out->present |= ST_TOTAL_HAS(swap_bytes);
    }
    if (c.seen & SEEN_SHMEM)
        out->present |= ST_TOTAL_HAS(rss_shmem_bytes);
    if (rc1 < 0 && rc2 < 0)
        return rc1;
    return 0;
}

/* ---- objects --------------------------------------------------------------------------------- */

typedef struct piece {
    uint64_t start, len, off;
} piece_t;

/* Resident pages of [addr, addr+len), and whether every page was resident. */
static int count_resident(uint64_t addr, uint64_t len, uint64_t *resident, uint64_t *pages)
{
    static unsigned char vec[4096];
    size_t page = st__prim_page_size();
    uint64_t total = len / page;
    for (uint64_t at = 0; at < total; at += sizeof(vec)) {
        uint64_t n = total - at < sizeof(vec) ? total - at : sizeof(vec);
        int rc = st__prim_mincore((void *)(uintptr_t)(addr + at * page), n * page, vec);
        if (rc != 0)
            return rc;
        for (uint64_t i = 0; i < n; i++)
            *resident += vec[i] & 1;
        *pages += n;
    }
    return 0;
}

/* ---- fd-backed objects ----------------------------------------------------------------------- */

#define FD_TABLE_MAX 1024

typedef struct fd_ent {
    uint64_t a, ino;
    int fd;
} fd_ent_t;

static fd_ent_t fd_table[FD_TABLE_MAX]; /* regular files this process holds, built once a dump */
static size_t fd_table_n;
static int fd_table_built;
static char dirent_buf[4096];
static int no_cachestat; /* the kernel said ENOSYS */

static uint64_t dev_a(const st__fdinfo_t *fi)
{
    return ((uint64_t)fi->dev_major << 32) | fi->dev_minor;
}

static int fd_table_cb(int fd, void *ctx)
{
    (void)ctx;
    st__fdinfo_t fi;
    if (fd_table_n < FD_TABLE_MAX && st__prim_fd_stat(fd, &fi) == 0 && fi.type == ST__FD_REG) {
        fd_table[fd_table_n].a = dev_a(&fi);
        fd_table[fd_table_n].ino = fi.ino;
        fd_table[fd_table_n].fd = fd;
        fd_table_n++;
    }
    return 0;
}

static bool fd_is(int fd, const st__obj_t *obj, st__fdinfo_t *fi)
{
    return fd >= 0 && st__prim_fd_stat(fd, fi) == 0 && fi->type == ST__FD_REG &&
           fi->ino == obj->b && dev_a(fi) == obj->a;
}

/* "/proc/self/map_files/<start>-<end>" of the VMA holding addr, without snprintf. */
static int map_files_path(uint64_t addr, char *buf)
{
    st__vma_t v;
    int rc = st__prim_vma_query((uintptr_t)addr, &v);
    if (rc != 0)
        return rc;
    static const char prefix[] = "/proc/self/map_files/";
    size_t n = sizeof(prefix) - 1;
    memcpy(buf, prefix, n);
    uint64_t parts[2] = {v.start, v.end};
    for (int i = 0; i < 2; i++) {
        char d[16];
        int k = 0;
        uint64_t x = parts[i];
        do {
            d[k++] = "0123456789abcdef"[x & 15];
            x >>= 4;
        } while (x != 0);
        while (k > 0)
            buf[n++] = d[--k];
        buf[n++] = i == 0 ? '-' : '\0';
    }
    return 0;
}

/* An fd of obj and what fstat says about it; *opened when the caller must close it. -ENOENT when
 * no way to the object is permitted. pre: locked */
static int object_fd(st__reg_t *reg, const st__obj_t *obj, st__fdinfo_t *fi, bool *opened)
{
    *opened = false;
    if (fd_is(obj->fd, obj, fi))
        return obj->fd;
    if (!fd_table_built) {
        fd_table_n = 0;
        st__prim_each_fd(dirent_buf, sizeof(dirent_buf), fd_table_cb, NULL);
        fd_table_built = 1;
    }
    for (size_t i = 0; i < fd_table_n; i++)
        if (fd_table[i].ino == obj->b && fd_table[i].a == obj->a && fd_is(fd_table[i].fd, obj, fi))
            return fd_table[i].fd;
    for (uint32_t id = obj->first; id != 0;) {
        const st__range_t *r = st__reg_range(reg, id);
        char path[64];
        if (map_files_path(r->start, path) == 0) {
            int fd = st__prim_open(path, 0 /* O_RDONLY */, 0);
            if (fd >= 0 && fd_is(fd, obj, fi)) {
                *opened = true;
                return fd;
            }
            if (fd >= 0)
                st__prim_close(fd);
            if (fd == -EPERM || fd == -EACCES)
                break; /* not permitted: no other range will be */
        }
        id = r->next;
    }
    return -ENOENT;
}

/* Exact residency of an fd-backed object; 0, or -errno and the caller falls back to mincore.
 * pre: locked */
static int measure_fd_object(st__reg_t *reg, const st__obj_t *obj, st__obj_record_t *rec)
{
    st__fdinfo_t fi;
    bool opened = false;
    int fd = object_fd(reg, obj, &fi, &opened);
    if (fd < 0)
        return fd;
    int rc = 0;
    if (obj->kind == ST_KIND_HUGETLB) {
        rec->resident = fi.blocks; /* allocated huge pages; hugetlbfs does not swap */
        rec->swapped = 0;
        rec->res_source = ST__RES_ST_BLOCKS;
    } else {
        uint64_t pages = 0;
        rc = no_cachestat ? -ENOSYS : st__prim_cachestat(fd, &pages);
        if (rc == -ENOSYS)
            no_cachestat = 1;
        if (rc == 0) {
            rec->resident = pages * st__prim_page_size();
            rec->swapped = fi.blocks > rec->resident ? fi.blocks - rec->resident : 0;
            rec->res_source = ST__RES_CACHESTAT;
        }
    }
    if (rc == 0)
        rec->virtual_size = fi.size;
    if (opened)
        st__prim_close(fd);
    return rc;
}

/* pre: locked (the ranges cannot be unmapped under us: munmap hooks take the lock). */
static void measure_resident(st__reg_t *reg, const st__obj_t *obj, st__obj_record_t *rec)
{
    bool fd_backed =
        obj->kind == ST_KIND_MEMFD || obj->kind == ST_KIND_POSIX || obj->kind == ST_KIND_HUGETLB;
    if (fd_backed && measure_fd_object(reg, obj, rec) == 0)
        return;
    rec->res_source = fd_backed ? ST__RES_MINCORE_LOWER : ST__RES_MINCORE;
    piece_t p[MAX_RANGES_MEASURED];
    size_t n = 0;
    for (uint32_t id = obj->first; id != 0 && n < MAX_RANGES_MEASURED;) {
        const st__range_t *r = st__reg_range(reg, id);
        p[n].start = r->start;
        p[n].len = r->len;
        p[n].off = r->off;
        n++;
        id = r->next;
    }
    /* Insertion sort by object offset: few ranges per object. */
    for (size_t i = 1; i < n; i++) {
        piece_t x = p[i];
        size_t j = i;
        while (j > 0 && p[j - 1].off > x.off) {
            p[j] = p[j - 1];
            j--;
        }
        p[j] = x;
    }
    uint64_t covered = 0, resident = 0, pages = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t s = p[i].off > covered ? p[i].off : covered;
        uint64_t e = p[i].off + p[i].len;
        if (s >= e)
            continue;
        if (count_resident(p[i].start + (s - p[i].off), e - s, &resident, &pages) != 0)
            continue; /* not mapped any more (an unhooked munmap): count what we can */
        covered = e;
    }
    rec->resident = resident * st__prim_page_size();
    if ((obj->flags & ST__OBJ_UNTRUSTED) && pages > 0 && resident == pages) {
        rec->resident = 0;
        rec->flags |= ST__REC_RESIDENT_UNKNOWN;
    }
}

static void copy_str(char *dst, const char *src)
{
    size_t n = strlen(src);
    if (n > ST__REG_NAME_MAX - 1)
        n = ST__REG_NAME_MAX - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

struct smaps_ctx {
    st__obj_record_t *recs;
    size_t n;
    st__obj_record_t *cur;
};

/* The path field of a maps header: after the 5th space-separated field. */
static const char *maps_path(const char *line, size_t len)
{
    size_t i = 0;
    for (int field = 0; field < 5; field++) {
        while (i < len && line[i] != ' ')
            i++;
        while (i < len && line[i] == ' ')
            i++;
    }
    return line + i;
}

static int smaps_cb(const char *line, size_t len, void *ctx)
{
    struct smaps_ctx *c = ctx;
    st__vma_t v;
    if (st__prim_parse_maps_line(line, len, &v) == 0) {
        c->cur = NULL;
        if (!v.shared)
            return 0;
        const char *path = maps_path(line, len);
        int sysv = (size_t)(path - line) + 5 <= len && memcmp(path, "/SYSV", 5) == 0;
        uint64_t a = ((uint64_t)v.dev_major << 32) | v.dev_minor;
        for (size_t i = 0; i < c->n; i++) {
            st__obj_record_t *r = &c->recs[i];
            if (sysv ? (r->kind == ST_KIND_SYSV && r->b == v.ino)
                     : (r->kind != ST_KIND_SYSV && r->a == a && r->b == v.ino)) {
                c->cur = r;
                break;
            }
        }
        return 0;
    }
    uint64_t swap;
    if (c->cur != NULL &&
        (c->cur->res_source == ST__RES_MINCORE || c->cur->res_source == ST__RES_MINCORE_LOWER) &&
        kb_value(line, len, "Swap:", &swap) && swap > c->cur->swapped)
        c->cur->swapped = swap;
    return 0;
}

int st__agent_measure_objects(st__reg_t *reg, st__obj_record_t *recs, size_t cap, size_t *n)
{
    size_t count = 0;
    int rc = 0;
    fd_table_built = 0; /* the fds of this dump, walked when first needed */
    st__reg_lock(reg);
    st__reg_resolve_all(reg); /* mappings recorded without their identity (registry.h) */
    st__reg_sweep(reg);       /* objects whose creating fd was closed since */
    uint32_t limit = st__reg_obj_limit(reg);
    st__reg_unlock(reg);
    for (uint32_t id = 0; id < limit; id++) {
        st__reg_lock(reg);
        if (id >= st__reg_obj_limit(reg)) {
            st__reg_unlock(reg);
            break;
        }
        st__obj_t *obj = st__reg_obj(reg, id);
        if (!obj->used || (obj->flags & ST__OBJ_PENDING)) {
            st__reg_unlock(reg);
            continue;
        }
        if (count == cap) {
            st__reg_unlock(reg);
            rc = -ENOSPC;
            break;
        }
        st__obj_record_t *rec = &recs[count++];
        memset(rec, 0, sizeof(*rec));
        rec->a = obj->a;
        rec->b = obj->b;
        rec->kind = obj->kind;
        rec->virtual_size = obj->size;
        rec->importance = obj->importance;
        rec->nranges = (uint16_t)(obj->nranges > UINT16_MAX ? UINT16_MAX : obj->nranges);
        if (obj->flags & ST__OBJ_CREATOR)
            rec->flags |= ST__REC_CREATOR;
        if (obj->flags & ST__OBJ_CLAIMED)
            rec->flags |= ST__REC_CLAIMED;
        if (obj->flags & ST__OBJ_INHERITED)
            rec->flags |= ST__REC_INHERITED;
        rec->mapped = st__reg_mapped_bytes(reg, obj);
        copy_str(rec->name, st__reg_name(reg, obj));
        copy_str(rec->label, st__reg_label(reg, obj));
        measure_resident(reg, obj, rec);
        st__reg_unlock(reg);
    }
    *n = count;
    if (count > 0) {
        struct smaps_ctx c = {.recs = recs, .n = count, .cur = NULL};
        st__prim_read_lines("/proc/self/smaps", line_buf, sizeof(line_buf), smaps_cb, &c);
    }
    return rc;
}

int st__agent_fill_dump(st__reg_t *reg, st__totals_record_t *totals, st__obj_record_t *recs,
                        size_t cap, size_t *n)
{
    int rc = st__agent_measure_totals(totals);
    int rc2 = st__agent_measure_objects(reg, recs, cap, n);
    return rc2 != 0 ? rc2 : rc;
}

const char *st__res_source_name(st__res_source_t source)
{
    static const char *const names[] = {
#define XX(e, s) s,
        ST__RES_SOURCE_MAP(XX)
#undef XX
    };
    return (unsigned)source < ST__RES_COUNT ? names[source] : "?";
}

const char *st__event_name(st__event_type_t type)
{
    static const char *const names[] = {
#define XX(e, s) s,
        ST__EVENT_MAP(XX)
#undef XX
    };
    return (unsigned)type < ST__EV_COUNT ? names[type] : "?";
}
