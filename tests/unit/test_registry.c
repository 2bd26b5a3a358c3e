/* SPDX-License-Identifier: MIT
 *
 * Unit tests for the preload's registry (allocator/registry.c), its measurement (measure.c) and OS
 * layer (prim/linux.c), linked directly, without LD_PRELOAD (heaptrack style). Each test makes
 * real mappings, mirrors the calls into the registry the way the hooks do, and compares the
 * registry's ranges with /proc/self/maps as parsed here, independently of prim.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent.h"
#include "model.h"
#include "prim.h"
#include "registry.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096ul
#define MAXR 64

typedef struct span {
    unsigned long start, end, off;
} span_t;

/* dev and ino of the VMA containing addr, from /proc/self/maps. */
static void maps_ident(void *addr, unsigned *maj, unsigned *min, unsigned long *ino)
{
    FILE *f = fopen("/proc/self/maps", "r");
    assert_non_null(f);
    char line[512];
    unsigned long a = (unsigned long)addr, s, e, off;
    int found = 0;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "%lx-%lx %*s %lx %x:%x %lu", &s, &e, &off, maj, min, ino) == 6 && s <= a &&
            a < e) {
            found = 1;
            break;
        }
    fclose(f);
    assert_true(found);
}

static int cmp_span(const void *pa, const void *pb)
{
    const span_t *a = pa, *b = pb;
    return a->start < b->start ? -1 : a->start > b->start;
}

static int merge(span_t *s, int n)
{
    qsort(s, (size_t)n, sizeof(*s), cmp_span);
    int m = 0;
    for (int i = 0; i < n; i++)
        if (m > 0 && s[m - 1].end == s[i].start &&
            s[m - 1].off + (s[m - 1].end - s[m - 1].start) == s[i].off)
            s[m - 1].end = s[i].end;
        else
            s[m++] = s[i];
    return m;
}

/* The shared VMAs of inode ino (on dev maj:min) in /proc/self/maps. */
static int maps_spans(unsigned maj, unsigned min, unsigned long ino, span_t *out)
{
    FILE *f = fopen("/proc/self/maps", "r");
    assert_non_null(f);
    char line[512], perms[8];
    int n = 0;
    unsigned long s, e, off, i;
    unsigned ma, mi;
    while (fgets(line, sizeof(line), f) != NULL && n < MAXR)
        if (sscanf(line, "%lx-%lx %7s %lx %x:%x %lu", &s, &e, perms, &off, &ma, &mi, &i) == 7 &&
            perms[3] == 's' && ma == maj && mi == min && i == ino)
            out[n++] = (span_t){s, e, off};
    fclose(f);
    return merge(out, n);
}

static int reg_spans(st__reg_t *reg, st__obj_t *obj, span_t *out)
{
    int n = 0;
    for (uint32_t id = obj->first; id != 0 && n < MAXR;) {
        st__range_t *r = st__reg_range(reg, id);
        out[n++] = (span_t){r->start, r->start + r->len, r->off};
        id = r->next;
    }
    return merge(out, n);
}

/* The registry's ranges of obj are exactly the kernel's VMAs of its inode. */
static void check_obj(st__reg_t *reg, const st__key_t *key, unsigned maj, unsigned min,
                      unsigned long ino)
{
    span_t k[MAXR], r[MAXR];
    int nk = maps_spans(maj, min, ino, k);
    st__obj_t *obj = st__reg_find(reg, key);
    if (nk == 0) {
        assert_null(obj);
        return;
    }
    assert_non_null(obj);
    int nr = reg_spans(reg, obj, r);
    for (int i = 0; i < nk || i < nr; i++) {
        if (i < nk && i < nr && k[i].start == r[i].start && k[i].end == r[i].end &&
            k[i].off == r[i].off)
            continue;
        for (int j = 0; j < nk; j++)
            print_error("maps     %lx-%lx %lu\n", k[j].start, k[j].end, k[j].off);
        for (int j = 0; j < nr; j++)
            print_error("registry %lx-%lx %lu\n", r[j].start, r[j].end, r[j].off);
        fail_msg("ranges differ");
    }
    uint64_t mapped = 0;
    for (int i = 0; i < nk; i++)
        mapped += k[i].end - k[i].start;
    assert_int_equal(st__reg_mapped_bytes(reg, obj), mapped);
}

static int setup(void **state)
{
    st__reg_t *reg = aligned_alloc(_Alignof(st__reg_t), sizeof(*reg));
    if (reg == NULL || st__reg_init(reg, 1024, 2048) != 0)
        return -1;
    *state = reg;
    return 0;
}

static int teardown(void **state)
{
    st__reg_destroy(*state);
    free(*state);
    return 0;
}

/* A shared anonymous mapping registered as the mmap hook does. */
static char *map_anon(st__reg_t *reg, size_t pages, st__key_t *key, unsigned *maj, unsigned *min,
                      unsigned long *ino)
{
    char *p = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(p != MAP_FAILED);
    maps_ident(p, maj, min, ino);
    *key = st__key_shmem(ST_KIND_ANON, *maj, *min, *ino);
    st__obj_t *obj = NULL;
    bool added = false;
    assert_int_equal(st__reg_get(reg, key, &obj, &added), 0);
    assert_true(added);
    obj->flags |= ST__OBJ_CREATOR;
    assert_int_equal(st__reg_map(reg, obj, (uintptr_t)p, pages * PAGE, 0), 0);
    return p;
}

static void test_partial_munmap(void **state)
{
    st__reg_t *reg = *state;
    st__key_t key;
    unsigned maj, min;
    unsigned long ino;
    char *p = map_anon(reg, 8, &key, &maj, &min, &ino);
    check_obj(reg, &key, maj, min, ino);
    /* a hole in the middle, then the head, then the tail */
    assert_int_equal(munmap(p + 2 * PAGE, 2 * PAGE), 0);
    assert_int_equal(st__reg_unmap(reg, (uintptr_t)p + 2 * PAGE, 2 * PAGE), 2 * PAGE);
    check_obj(reg, &key, maj, min, ino);
    assert_int_equal(munmap(p, PAGE), 0);
    st__reg_unmap(reg, (uintptr_t)p, PAGE);
    check_obj(reg, &key, maj, min, ino);
    assert_int_equal(munmap(p + 7 * PAGE, PAGE), 0);
    st__reg_unmap(reg, (uintptr_t)p + 7 * PAGE, PAGE);
    check_obj(reg, &key, maj, min, ino);
    /* a window spanning the hole and both pieces' edges */
    assert_int_equal(munmap(p + PAGE, 5 * PAGE), 0);
    st__reg_unmap(reg, (uintptr_t)p + PAGE, 5 * PAGE);
    check_obj(reg, &key, maj, min, ino);
    /* everything: the object leaves the registry */
    assert_int_equal(munmap(p, 8 * PAGE), 0);
    st__reg_unmap(reg, (uintptr_t)p, 8 * PAGE);
    check_obj(reg, &key, maj, min, ino);
    assert_null(st__reg_find(reg, &key));
    assert_int_equal(reg->n_objs, 0);
    assert_int_equal(reg->n_ranges, 0);
    assert_false(st__reg_may_overlap(reg, (uintptr_t)p, 8 * PAGE));
}

static void test_mremap(void **state)
{
    st__reg_t *reg = *state;
    st__key_t key;
    unsigned maj, min;
    unsigned long ino;
    char *p = map_anon(reg, 4, &key, &maj, &min, &ino);
    /* grow (in place or moved) */
    char *q = mremap(p, 4 * PAGE, 16 * PAGE, MREMAP_MAYMOVE);
    assert_true(q != MAP_FAILED);
    assert_int_equal(
        st__reg_mremap(reg, (uintptr_t)p, 4 * PAGE, (uintptr_t)q, 16 * PAGE, MREMAP_MAYMOVE), 0);
    check_obj(reg, &key, maj, min, ino);
    /* shrink in place */
    char *r = mremap(q, 16 * PAGE, 6 * PAGE, 0);
    assert_ptr_equal(r, q);
    st__reg_mremap(reg, (uintptr_t)q, 16 * PAGE, (uintptr_t)r, 6 * PAGE, 0);
    check_obj(reg, &key, maj, min, ino);
    /* move a middle piece to a fixed place: splits the source */
    char *dst = mmap(NULL, 4 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(dst != MAP_FAILED);
    char *s = mremap(r + 2 * PAGE, 2 * PAGE, 2 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
    assert_ptr_equal(s, dst);
    st__reg_mremap(reg, (uintptr_t)r + 2 * PAGE, 2 * PAGE, (uintptr_t)s, 2 * PAGE,
                   MREMAP_MAYMOVE | MREMAP_FIXED);
    check_obj(reg, &key, maj, min, ino);
    /* old_len 0: a second mapping of the same pages */
    char *t = mremap(r, 0, 2 * PAGE, MREMAP_MAYMOVE);
    assert_true(t != MAP_FAILED);
    st__reg_mremap(reg, (uintptr_t)r, 0, (uintptr_t)t, 2 * PAGE, MREMAP_MAYMOVE);
    check_obj(reg, &key, maj, min, ino);
    munmap(t, 2 * PAGE);
    st__reg_unmap(reg, (uintptr_t)t, 2 * PAGE);
    munmap(s, 2 * PAGE);
    st__reg_unmap(reg, (uintptr_t)s, 2 * PAGE);
    munmap(r, 6 * PAGE);
    st__reg_unmap(reg, (uintptr_t)r, 6 * PAGE);
    check_obj(reg, &key, maj, min, ino);
    assert_int_equal(reg->n_objs, 0);
}

/* Two mappings of one memfd, one at an offset; a third object mapped MAP_FIXED over both. The
 * resident bytes count each page once. */
static void test_double_mapping(void **state)
{
    st__reg_t *reg = *state;
    int fd = memfd_create("reg-test", 0);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 8 * PAGE), 0);
    char *a = mmap(NULL, 8 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    char *b = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 4 * PAGE);
    assert_true(a != MAP_FAILED && b != MAP_FAILED);
    st__fdinfo_t fi;
    assert_int_equal(st__prim_fd_stat(fd, &fi), 0);
    int kind = -1;
    char name[ST__REG_NAME_MAX];
    assert_int_equal(st__prim_fd_kind(fd, &kind, name, sizeof(name)), 0);
    assert_int_equal(kind, ST_KIND_MEMFD);
    assert_string_equal(name, "reg-test");
    st__key_t key = st__key_shmem((uint8_t)kind, fi.dev_major, fi.dev_minor, fi.ino);
    st__obj_t *obj = NULL;
    assert_int_equal(st__reg_get(reg, &key, &obj, NULL), 0);
    obj->size = fi.size;
    assert_int_equal(st__reg_map(reg, obj, (uintptr_t)a, 8 * PAGE, 0), 0);
    assert_int_equal(st__reg_map(reg, obj, (uintptr_t)b, 4 * PAGE, 4 * PAGE), 0);
    check_obj(reg, &key, fi.dev_major, fi.dev_minor, fi.ino);
    /* pages 0, 5, 6 through a; 5 again through b (offset 4 + 1) */
    a[0] = 1;
    a[5 * PAGE] = 1;
    a[6 * PAGE] = 1;
    b[PAGE] = 2;
    st__obj_record_t rec[4];
    size_t n = 0;
    assert_int_equal(st__agent_measure_objects(reg, rec, 4, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(rec[0].resident, 3 * PAGE);
    assert_int_equal(rec[0].mapped, 12 * PAGE);
    assert_int_equal(rec[0].virtual_size, 8 * PAGE);
    assert_int_equal(rec[0].kind, ST_KIND_MEMFD);

    /* a different object mapped MAP_FIXED over a's pages 2..3 replaces them */
    int fd2 = memfd_create("reg-test-2", 0);
    assert_int_equal(ftruncate(fd2, 2 * PAGE), 0);
    char *c = mmap(a + 2 * PAGE, 2 * PAGE, PROT_READ, MAP_SHARED | MAP_FIXED, fd2, 0);
    assert_ptr_equal(c, a + 2 * PAGE);
    st__fdinfo_t fi2;
    assert_int_equal(st__prim_fd_stat(fd2, &fi2), 0);
    st__key_t key2 = st__key_shmem(ST_KIND_MEMFD, fi2.dev_major, fi2.dev_minor, fi2.ino);
    st__obj_t *obj2 = NULL;
    assert_int_equal(st__reg_get(reg, &key2, &obj2, NULL), 0);
    assert_int_equal(st__reg_map(reg, obj2, (uintptr_t)c, 2 * PAGE, 0), 0);
    check_obj(reg, &key, fi.dev_major, fi.dev_minor, fi.ino);
    check_obj(reg, &key2, fi2.dev_major, fi2.dev_minor, fi2.ino);
    st__obj_t *at = st__reg_find_addr(reg, (uintptr_t)c + 10, NULL);
    assert_ptr_equal(at, obj2);
    munmap(a, 8 * PAGE);
    munmap(b, 4 * PAGE);
    st__reg_unmap(reg, (uintptr_t)a, 8 * PAGE);
    st__reg_unmap(reg, (uintptr_t)b, 4 * PAGE);
    close(fd);
    close(fd2);
    st__reg_sweep(reg);
    assert_int_equal(reg->n_objs, 0);
}

static int n_changes;
static void count_change(const st__obj_t *obj, st__reg_change_t what, uint64_t start, uint64_t len,
                         void *ctx)
{
    (void)obj;
    (void)what;
    (void)start;
    (void)len;
    (void)ctx;
    n_changes++;
}

/* Pending objects (registry.h): ranges follow munmap and mremap before the identity is known, no
 * change is reported for them, and a merge gives the keyed object exactly the kernel's VMAs. */
static void test_pending(void **state)
{
    st__reg_t *reg = *state;
    st__reg_set_change_cb(reg, count_change, NULL);
    n_changes = 0;
    char *p = mmap(NULL, 8 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(p != MAP_FAILED);
    st__obj_t *pend = NULL;
    assert_int_equal(st__reg_add_pending(reg, ST_KIND_ANON, NULL, &pend), 0);
    pend->flags |= ST__OBJ_CREATOR;
    assert_int_equal(st__reg_map(reg, pend, (uintptr_t)p, 8 * PAGE, 0), 0);
    assert_int_equal(reg->n_pending, 1);
    /* a hole, then the head moved elsewhere */
    assert_int_equal(munmap(p + 3 * PAGE, 2 * PAGE), 0);
    st__reg_unmap(reg, (uintptr_t)p + 3 * PAGE, 2 * PAGE);
    char *dst = mmap(NULL, 3 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(dst != MAP_FAILED); /* a place of our own to move to */
    char *q = mremap(p, 3 * PAGE, 3 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
    assert_true(q != MAP_FAILED);
    assert_int_equal(st__reg_mremap(reg, (uintptr_t)p, 3 * PAGE, (uintptr_t)q, 3 * PAGE,
                                    MREMAP_MAYMOVE | MREMAP_FIXED),
                     0);
    assert_int_equal(n_changes, 0);
    assert_int_equal(pend->nranges, 2);
    /* resolve as the hooks do: the VMA's identity */
    unsigned maj, min;
    unsigned long ino;
    maps_ident(q, &maj, &min, &ino);
    st__key_t key = st__key_shmem(ST_KIND_ANON, maj, min, ino);
    assert_null(st__reg_find(reg, &key));
    st__obj_t *obj = NULL;
    assert_int_equal(st__reg_get(reg, &key, &obj, NULL), 0);
    n_changes = 0;
    st__reg_merge_pending(reg, pend, obj);
    assert_int_equal(n_changes, 2); /* one MAPPED per range */
    assert_int_equal(reg->n_pending, 0);
    assert_int_equal(reg->n_objs, 1);
    assert_true(obj->flags & ST__OBJ_CREATOR);
    check_obj(reg, &key, maj, min, ino);
    munmap(q, 3 * PAGE);
    munmap(p + 5 * PAGE, 3 * PAGE);
    st__reg_unmap(reg, (uintptr_t)q, 3 * PAGE);
    st__reg_unmap(reg, (uintptr_t)p + 5 * PAGE, 3 * PAGE);
    assert_int_equal(reg->n_objs, 0);

    /* unmapped before resolution: gone without a trace; dropped: the same */
    n_changes = 0;
    p = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_int_equal(st__reg_add_pending(reg, ST_KIND_ANON, NULL, &pend), 0);
    assert_int_equal(st__reg_map(reg, pend, (uintptr_t)p, 2 * PAGE, 0), 0);
    st__reg_unmap(reg, (uintptr_t)p, 2 * PAGE);
    assert_int_equal(reg->n_objs, 0);
    assert_int_equal(reg->n_pending, 0);
    assert_int_equal(st__reg_add_pending(reg, ST_KIND_ANON, NULL, &pend), 0);
    assert_int_equal(st__reg_map(reg, pend, (uintptr_t)p, 2 * PAGE, 0), 0);
    st__reg_drop_pending(reg, pend);
    assert_int_equal(reg->n_objs, 0);
    assert_int_equal(reg->n_ranges, 0);
    assert_int_equal(n_changes, 0);
    munmap(p, 2 * PAGE);

    /* a hint stays while a pending mapping names it, even when its fd number is reused */
    int fd = memfd_create("hint", 0);
    assert_int_equal(ftruncate(fd, PAGE), 0);
    st__fdinfo_t fi;
    assert_int_equal(st__prim_fd_stat(fd, &fi), 0);
    key = st__key_shmem(ST_KIND_MEMFD, fi.dev_major, fi.dev_minor, fi.ino);
    assert_int_equal(st__reg_get(reg, &key, &obj, NULL), 0);
    st__reg_set_fd(reg, obj, fd);
    assert_ptr_equal(st__reg_fd_object(reg, fd), obj);
    assert_true(st__reg_fd_maybe(reg, fd));
    p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    assert_int_equal(st__reg_add_pending(reg, ST_KIND_MEMFD, obj, &pend), 0);
    assert_int_equal(st__reg_map(reg, pend, (uintptr_t)p, PAGE, 0), 0);
    assert_ptr_equal(st__reg_pending_hint(reg, pend), obj);
    assert_int_equal(obj->pending_refs, 1);
    close(fd);
    int fd2 = memfd_create("hint-2", 0);
    assert_int_equal(fd2, fd);
    st__fdinfo_t fi2;
    assert_int_equal(st__prim_fd_stat(fd2, &fi2), 0);
    st__key_t key2 = st__key_shmem(ST_KIND_MEMFD, fi2.dev_major, fi2.dev_minor, fi2.ino);
    st__obj_t *obj2 = NULL;
    assert_int_equal(st__reg_get(reg, &key2, &obj2, NULL), 0);
    st__reg_set_fd(reg, obj2, fd2);
    assert_ptr_equal(st__reg_find(reg, &key), obj); /* kept: the pending mapping names it */
    assert_int_equal(obj->fd, -1);
    st__reg_merge_pending(reg, pend, obj);
    assert_int_equal(obj->pending_refs, 0);
    check_obj(reg, &key, fi.dev_major, fi.dev_minor, fi.ino);
    munmap(p, PAGE);
    st__reg_unmap(reg, (uintptr_t)p, PAGE);
    assert_null(st__reg_find(reg, &key)); /* no mapping, no fd: gone */
    close(fd2);
    st__reg_sweep(reg);
    assert_int_equal(reg->n_objs, 0);
    st__reg_set_change_cb(reg, NULL, NULL);
}

/* An object created through an fd stays while the fd is open, and leaves when it is closed and the
 * last mapping goes. */
static void test_fd_held(void **state)
{
    st__reg_t *reg = *state;
    int fd = memfd_create("held", 0);
    assert_int_equal(ftruncate(fd, PAGE), 0);
    st__fdinfo_t fi;
    assert_int_equal(st__prim_fd_stat(fd, &fi), 0);
    st__key_t key = st__key_shmem(ST_KIND_MEMFD, fi.dev_major, fi.dev_minor, fi.ino);
    st__obj_t *obj = NULL;
    assert_int_equal(st__reg_get(reg, &key, &obj, NULL), 0);
    st__reg_set_fd(reg, obj, fd);
    char *p = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, fd, 0);
    assert_int_equal(st__reg_map(reg, obj, (uintptr_t)p, PAGE, 0), 0);
    munmap(p, PAGE);
    st__reg_unmap(reg, (uintptr_t)p, PAGE);
    assert_non_null(st__reg_find(reg, &key)); /* fd still open */
    p = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, fd, 0);
    assert_int_equal(st__reg_map(reg, obj, (uintptr_t)p, PAGE, 0), 0);
    close(fd);
    munmap(p, PAGE);
    st__reg_unmap(reg, (uintptr_t)p, PAGE);
    assert_non_null(st__reg_find(reg, &key)); /* not known yet: close() is not hooked */
    st__reg_sweep(reg);
    assert_null(st__reg_find(reg, &key));

    /* the fd number coming back from memfd_create means the old fd was closed */
    fd = memfd_create("held-1", 0);
    assert_int_equal(st__prim_fd_stat(fd, &fi), 0);
    key = st__key_shmem(ST_KIND_MEMFD, fi.dev_major, fi.dev_minor, fi.ino);
    assert_int_equal(st__reg_get(reg, &key, &obj, NULL), 0);
    st__reg_set_fd(reg, obj, fd);
    close(fd);
    int fd2 = memfd_create("held-2", 0);
    assert_int_equal(fd2, fd);
    st__fdinfo_t fi2;
    assert_int_equal(st__prim_fd_stat(fd2, &fi2), 0);
    st__key_t key2 = st__key_shmem(ST_KIND_MEMFD, fi2.dev_major, fi2.dev_minor, fi2.ino);
    st__obj_t *obj2 = NULL;
    assert_int_equal(st__reg_get(reg, &key2, &obj2, NULL), 0);
    st__reg_set_fd(reg, obj2, fd2);
    assert_null(st__reg_find(reg, &key));
    assert_non_null(st__reg_find(reg, &key2));
    assert_int_equal(reg->n_objs, 1);
    close(fd2);
    st__reg_sweep(reg);
    assert_int_equal(reg->n_objs, 0);
}

static st__key_t fd_key(int fd)
{
    st__fdinfo_t fi;
    assert_int_equal(st__prim_fd_stat(fd, &fi), 0);
    return st__key_shmem(ST_KIND_MEMFD, fi.dev_major, fi.dev_minor, fi.ino);
}

/* Pending created fds (memfd_create records no identity): keyed later, merged into an object that
 * already has the key with its pending mappings' hints moved, dropped silently at close. */
static void test_fd_pending(void **state)
{
    st__reg_t *reg = *state;
    int fd = memfd_create("fdp", 0);
    assert_int_equal(ftruncate(fd, PAGE), 0);
    st__obj_t *obj = NULL, *t = NULL, *p = NULL, *e = NULL;
    assert_int_equal(st__reg_add_fd_pending(reg, ST_KIND_MEMFD, fd, 1, &obj), 0);
    obj->flags |= ST__OBJ_CREATOR;
    assert_true(st__reg_fd_maybe(reg, fd));
    assert_false(st__reg_fd_keyed_maybe(reg, fd)); /* ftruncate needs no lock for it */
    assert_ptr_equal(st__reg_fd_object(reg, fd), obj);
    assert_int_equal(reg->n_fdpend, 1);
    /* a pending mapping made through the fd names it */
    assert_int_equal(st__reg_add_pending(reg, ST_KIND_MEMFD, obj, &p), 0);
    char *m = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    assert_true(m != MAP_FAILED);
    assert_int_equal(st__reg_map(reg, p, (uintptr_t)m, PAGE, 0), 0);
    /* the key is already known (a read-only mapping was identified eagerly) */
    st__key_t key = fd_key(fd);
    assert_int_equal(st__reg_get(reg, &key, &e, NULL), 0);
    st__reg_key_fd_pending(reg, obj, &key, &t);
    assert_ptr_equal(t, e);
    assert_true(e->flags & ST__OBJ_CREATOR);
    assert_ptr_equal(st__reg_pending_hint(reg, p), e);
    assert_int_equal(e->pending_refs, 1);
    assert_ptr_equal(st__reg_fd_object(reg, fd), e);
    assert_true(st__reg_fd_keyed_maybe(reg, fd));
    assert_int_equal(reg->n_fdpend, 0);
    st__reg_merge_pending(reg, p, e);
    /* closed while mapped: kept; unmapped: gone */
    close(fd);
    st__reg_close_fd(reg, fd);
    assert_false(st__reg_fd_maybe(reg, fd));
    assert_non_null(st__reg_find(reg, &key));
    munmap(m, PAGE);
    st__reg_unmap(reg, (uintptr_t)m, PAGE);
    assert_null(st__reg_find(reg, &key));
    assert_int_equal(reg->n_objs, 0);

    /* closed before anything resolved it: nothing left */
    fd = memfd_create("fdp-2", 0);
    assert_int_equal(st__reg_add_fd_pending(reg, ST_KIND_MEMFD, fd, 1, &obj), 0);
    close(fd);
    st__reg_close_fd(reg, fd);
    assert_int_equal(reg->n_objs, 0);
    assert_int_equal(reg->n_fdpend, 0);

    /* escaped (duplicated): the close of its fd keeps it, the sweep adopts the duplicate, and
     * drops it once no fd is left */
    fd = memfd_create("fdp-3", 0);
    assert_int_equal(st__reg_add_fd_pending(reg, ST_KIND_MEMFD, fd, 1, &obj), 0);
    key = fd_key(fd);
    st__reg_key_fd_pending(reg, obj, &key, &t);
    assert_ptr_equal(t, obj);
    assert_ptr_equal(st__reg_find(reg, &key), obj);
    t->flags |= ST__OBJ_ESCAPED;
    int dupfd = dup(fd);
    close(fd);
    st__reg_close_fd(reg, fd);
    assert_ptr_equal(st__reg_find(reg, &key), t);
    st__reg_sweep(reg);
    assert_ptr_equal(st__reg_find(reg, &key), t);
    assert_int_equal(t->fd, dupfd);
    close(dupfd);
    st__reg_sweep(reg);
    assert_null(st__reg_find(reg, &key));
    assert_int_equal(reg->n_objs, 0);
}

/* The fast table (registry.h): a memfd's fd and one mapping of it, recorded beside the registry
 * and moved into it (FDPEND object, pending mapping whose hint it is) by anything else. */
static void test_fast_table(void **state)
{
    st__reg_t *reg = *state;
    int fd = memfd_create("fast", 0);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 4 * PAGE), 0);
    assert_false(st__reg_fd_maybe(reg, fd));
    assert_int_equal(st__reg_fast_add(reg, fd, ST_KIND_MEMFD, 7, 99, ST__OBJ_CREATOR, 3), 0);
    assert_true(st__reg_fast_has_fd(reg, fd));
    assert_true(st__reg_fd_maybe(reg, fd));
    assert_false(st__reg_fd_indexed(reg, fd)); /* the fd index page is not touched */
    assert_false(st__reg_fd_keyed_maybe(reg, fd));
    assert_int_equal(reg->n_objs, 0);
    char *m = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    assert_true(m != MAP_FAILED);
    uintptr_t a = (uintptr_t)m;
    assert_false(st__reg_may_overlap(reg, a, 4 * PAGE));
    assert_int_equal(st__reg_fast_map(reg, fd, a, 4 * PAGE, 0), 0);
    assert_true(st__reg_may_overlap(reg, a + PAGE, PAGE));
    assert_false(st__reg_may_overlap(reg, a + 4 * PAGE, PAGE));
    /* a second mapping of the same fd is refused (the hooks then flush) */
    assert_int_equal(st__reg_fast_map(reg, fd, a + 8 * PAGE, PAGE, 0), -1);
    /* only the exact range is a slot's mapping */
    int slot = st__reg_fast_fd_slot(reg, fd);
    assert_true(slot >= 0);
    assert_int_equal(st__reg_fast_mapping(reg, a, 4 * PAGE), slot);
    assert_int_equal(st__reg_fast_mapping(reg, a, PAGE), -1);
    assert_int_equal(st__reg_fast_mapping(reg, a + PAGE, 3 * PAGE), -1);
    /* unmapped exactly: the bounds are empty again, the fd stays */
    st__reg_fast_unmapped(reg, slot);
    assert_false(st__reg_may_overlap(reg, a, 4 * PAGE));
    assert_true(st__reg_fast_has_fd(reg, fd));
    assert_int_equal(st__reg_fast_map(reg, fd, a, 4 * PAGE, 0), 0);

    /* st__reg_lock flushes: an FDPEND object with the slot's fields, its mapping a pending object
     * naming it, the fd indexed, the table empty */
    st__reg_lock(reg);
    assert_int_equal(reg->n_fast, 0);
    assert_false(st__reg_fast_has_fd(reg, fd));
    assert_true(st__reg_fd_indexed(reg, fd));
    st__obj_t *o = st__reg_fd_object(reg, fd);
    assert_non_null(o);
    assert_true(o->flags & ST__OBJ_FDPEND);
    assert_true(o->flags & ST__OBJ_CREATOR);
    assert_int_equal(o->a, 7);
    assert_int_equal(o->b, 99);
    assert_int_equal(o->importance, 3);
    assert_int_equal(o->pending_refs, 1);
    st__range_t *r = NULL;
    st__obj_t *p = st__reg_find_addr(reg, a + PAGE, &r);
    assert_non_null(p);
    assert_true(p->flags & ST__OBJ_PENDING);
    assert_ptr_equal(st__reg_pending_hint(reg, p), o);
    assert_int_equal(r->start, a);
    assert_int_equal(r->len, 4 * PAGE);
    assert_true(st__reg_may_overlap(reg, a, PAGE)); /* the registry's bounds now */
    /* a partial munmap of it is exact */
    assert_int_equal(munmap(m + PAGE, PAGE), 0);
    st__reg_unmap(reg, a + PAGE, PAGE);
    assert_int_equal(p->nranges, 2);
    assert_int_equal(st__reg_mapped_bytes(reg, p), 3 * PAGE);
    st__reg_unlock(reg);

    /* a new mapping that overlaps a registry range stays out of the table */
    int fd2 = memfd_create("fast-2", 0);
    assert_int_equal(st__reg_fast_add(reg, fd2, ST_KIND_MEMFD, 1, 2, ST__OBJ_CREATOR, 0), 0);
    assert_int_equal(st__reg_fast_map(reg, fd2, a + 2 * PAGE, PAGE, 0), -1);
    assert_int_equal(st__reg_fast_map(reg, fd2, a + PAGE, PAGE, 0), 0); /* the hole is free */
    /* nor one over another slot's mapping */
    int fd3 = memfd_create("fast-3", 0);
    assert_int_equal(st__reg_fast_add(reg, fd3, ST_KIND_MEMFD, 1, 3, ST__OBJ_CREATOR, 0), 0);
    assert_int_equal(st__reg_fast_map(reg, fd3, a + PAGE, PAGE, 0), -1);
    assert_int_equal(st__reg_fast_map(reg, -1, a + 20 * PAGE, PAGE, 0), -1); /* no slot */
    /* close of an unmapped slot: gone without a trace */
    slot = st__reg_fast_fd_slot(reg, fd3);
    st__reg_fast_drop(reg, slot);
    assert_false(st__reg_fd_maybe(reg, fd3));
    /* the same number again while still in the table (closed behind our back): flushed, and the
     * caller takes the slow path */
    assert_int_equal(st__reg_fast_add(reg, fd2, ST_KIND_MEMFD, 1, 2, ST__OBJ_CREATOR, 0), -EEXIST);
    assert_int_equal(reg->n_fast, 0);
    assert_true(st__reg_fd_indexed(reg, fd2));
    uint32_t objs = reg->n_objs;

    /* a full table makes room by flushing */
    for (int i = 0; i < ST__REG_FAST; i++)
        assert_int_equal(st__reg_fast_add(reg, 1000 + i, ST_KIND_MEMFD, 1, 2, 0, 0), 0);
    assert_int_equal(reg->n_fast, ST__REG_FAST);
    assert_int_equal(reg->n_objs, objs);
    assert_int_equal(st__reg_fast_add(reg, 2000, ST_KIND_MEMFD, 1, 2, 0, 0), 0);
    assert_int_equal(reg->n_fast, 1);
    assert_int_equal(reg->n_objs, objs + ST__REG_FAST);
    assert_true(st__reg_fd_indexed(reg, 1000));
    assert_true(st__reg_fast_has_fd(reg, 2000));
    st__reg_fast_drop(reg, st__reg_fast_fd_slot(reg, 2000));
    munmap(m, 4 * PAGE);
    close(fd);
    close(fd2);
    close(fd3);
}

/* A flush with no room left: the slots are dropped and counted (the hooks switch tracking off). */
static void test_fast_full(void **state)
{
    (void)state;
    st__reg_t *reg = aligned_alloc(_Alignof(st__reg_t), sizeof(*reg));
    assert_non_null(reg);
    assert_int_equal(st__reg_init(reg, 2, 4), 0);
    assert_int_equal(st__reg_fast_add(reg, 5, ST_KIND_MEMFD, 1, 2, 0, 0), 0);
    assert_int_equal(st__reg_fast_map(reg, 5, 0x10000, PAGE, 0), 0);
    assert_int_equal(st__reg_fast_add(reg, 6, ST_KIND_MEMFD, 1, 2, 0, 0), 0);
    assert_int_equal(st__reg_fast_flush(reg), -ENOSPC);
    assert_int_equal(reg->fast_lost, 1); /* 5 and its mapping took both objects */
    assert_int_equal(reg->n_fast, 0);
    assert_false(st__reg_fast_has_fd(reg, 6));
    assert_false(st__reg_may_overlap(reg, 0x20000, PAGE));
    assert_true(st__reg_may_overlap(reg, 0x10000, PAGE));
    st__reg_destroy(reg);
    free(reg);
}

static void test_sysv(void **state)
{
    st__reg_t *reg = *state;
    int id = shmget(IPC_PRIVATE, 3 * PAGE, IPC_CREAT | 0600);
    assert_true(id >= 0);
    char *p = shmat(id, NULL, 0);
    assert_true(p != (void *)-1);
    shmctl(id, IPC_RMID, NULL);
    uint64_t ns = 0, size = 0;
    int cpid = 0;
    assert_int_equal(st__prim_ipc_ns(&ns), 0);
    assert_int_equal(st__prim_shm_stat(id, &size, &cpid), 0);
    assert_int_equal(size, 3 * PAGE);
    assert_int_equal(cpid, getpid());
    st__key_t key = {ns, (uint64_t)id, ST_KIND_SYSV};
    st__obj_t *obj = NULL;
    assert_int_equal(st__reg_get(reg, &key, &obj, NULL), 0);
    assert_int_equal(st__reg_map(reg, obj, (uintptr_t)p, 3 * PAGE, 0), 0);
    /* SysV ids are their own space: the anon key with the same number is another object */
    st__key_t anon = st__key_shmem(ST_KIND_ANON, 0, 1, (uint64_t)id);
    assert_null(st__reg_find(reg, &anon));
    unsigned maj, min;
    unsigned long ino;
    maps_ident(p, &maj, &min, &ino);
    assert_int_equal(ino, (unsigned long)id); /* the maps inode of a SysV segment is its shmid */
    p[0] = 1;
    p[2 * PAGE] = 1;
    st__obj_record_t rec;
    size_t n = 0;
    assert_int_equal(st__agent_measure_objects(reg, &rec, 1, &n), 0);
    assert_int_equal(rec.resident, 2 * PAGE);
    assert_int_equal(shmdt(p), 0);
    st__reg_unmap(reg, (uintptr_t)p, 3 * PAGE);
    assert_null(st__reg_find(reg, &key));
}

static void test_capacity(void **state)
{
    (void)state;
    st__reg_t reg;
    assert_int_equal(st__reg_init(&reg, 2, 2), 0);
    st__obj_t *o[3];
    for (uint64_t i = 0; i < 2; i++) {
        st__key_t k = st__key_shmem(ST_KIND_ANON, 0, 1, 100 + i);
        assert_int_equal(st__reg_get(&reg, &k, &o[i], NULL), 0);
    }
    st__key_t k = st__key_shmem(ST_KIND_ANON, 0, 1, 200);
    assert_int_equal(st__reg_get(&reg, &k, &o[2], NULL), -ENOSPC);
    assert_int_equal(st__reg_map(&reg, o[0], 0x10000, PAGE, 0), 0);
    assert_int_equal(st__reg_map(&reg, o[1], 0x20000, PAGE, 0), 0);
    assert_int_equal(st__reg_map(&reg, o[0], 0x30000, PAGE, 0), -ENOSPC);
    /* a split that needs a range it does not have drops the tail rather than lie */
    st__reg_map(&reg, o[0], 0x40000, 0, 0);
    st__reg_unmap(&reg, 0x10000, 0); /* no-op */
    assert_int_equal(reg.n_ranges, 2);
    st__reg_destroy(&reg);
}

/* The lock in a fork child: usable whatever the parent's threads were doing. */
static void *hold_lock(void *arg)
{
    st__reg_t *reg = arg;
    st__reg_lock(reg);
    sleep(2);
    st__reg_unlock(reg);
    return NULL;
}

static void test_fork_reset(void **state)
{
    st__reg_t *reg = *state;
    st__key_t key;
    unsigned maj, min;
    unsigned long ino;
    char *p = map_anon(reg, 2, &key, &maj, &min, &ino);
    /* 1: the forking thread held the lock (the fork hook): state kept, creator -> inherited */
    st__reg_lock(reg);
    pid_t pid = fork();
    if (pid == 0) {
        st__reg_fork_child(reg, true);
        st__obj_t *o = st__reg_find(reg, &key);
        int ok = o != NULL && !(o->flags & ST__OBJ_CREATOR) && (o->flags & ST__OBJ_INHERITED) &&
                 st__reg_trylock(reg);
        _exit(ok ? 0 : 1);
    }
    st__reg_unlock(reg);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_true(st__reg_find(reg, &key)->flags & ST__OBJ_CREATOR); /* the parent's is unchanged */

    /* 2: another thread held the lock (_Fork could not take it): the child starts empty */
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, hold_lock, reg), 0);
    usleep(200 * 1000);
    pid = fork();
    if (pid == 0) {
        st__reg_fork_child(reg, false);
        st__obj_t *o = NULL;
        st__key_t k2 = st__key_shmem(ST_KIND_ANON, 0, 1, 4242);
        int ok = st__reg_trylock(reg) && st__reg_find(reg, &key) == NULL &&
                 st__reg_get(reg, &k2, &o, NULL) == 0;
        _exit(ok ? 0 : 1);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    pthread_join(t, NULL);
    munmap(p, 2 * PAGE);
    st__reg_unmap(reg, (uintptr_t)p, 2 * PAGE);
}

/* The registry's memory per tracked object: the fixed records and, measured, the arena pages
 * resident after 10000 objects with one mapping each. */
static void test_bytes_per_object(void **state)
{
    (void)state;
    st__reg_t reg;
    assert_int_equal(st__reg_init(&reg, 0, 0), 0);
    size_t before = st__reg_resident_bytes(&reg);
    const uint64_t n = 10000;
    for (uint64_t i = 0; i < n; i++) {
        st__key_t k = st__key_shmem(ST_KIND_ANON, 0, 1, 1000 + i);
        st__obj_t *o = NULL;
        assert_int_equal(st__reg_get(&reg, &k, &o, NULL), 0);
        assert_int_equal(st__reg_map(&reg, o, 0x100000000ull + i * 2 * PAGE, PAGE, 0), 0);
    }
    size_t after = st__reg_resident_bytes(&reg);
    size_t per = (after - before) / n;
    print_message("registry: %zu bytes of records per object; %zu resident bytes per object at "
                  "%lu objects\n",
                  st__reg_bytes_per_object(&reg), per, (unsigned long)n);
    assert_true(st__reg_bytes_per_object(&reg) <= 128);
    assert_true(per <= 128);
    st__reg_destroy(&reg);
}

/* PROCMAP_QUERY and the maps fallback agree with /proc/self/maps as parsed here. */
static void test_vma_query(void **state)
{
    (void)state;
    char *p = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    unsigned maj, min;
    unsigned long ino;
    maps_ident(p, &maj, &min, &ino);
    for (int fallback = 0; fallback < 2; fallback++) {
        int was = st__prim_vma_force_fallback(fallback);
        st__vma_t v;
        assert_int_equal(st__prim_vma_query((uintptr_t)p + PAGE, &v), 0);
        assert_int_equal(v.start, (uintptr_t)p);
        assert_int_equal(v.end, (uintptr_t)p + 3 * PAGE);
        assert_int_equal(v.ino, ino);
        assert_int_equal(v.dev_major, maj);
        assert_int_equal(v.dev_minor, min);
        assert_true(v.shared);
        assert_true(v.writable);
        st__prim_vma_force_fallback(was);
    }
    munmap(p, 3 * PAGE);
    st__vma_t v;
    assert_int_equal(st__prim_vma_query((uintptr_t)p + PAGE, &v), -ENOENT);
}

/* Process totals equal /proc/self/status and smaps_rollup read here. */
static unsigned long kb(const char *path, const char *key)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[256];
    unsigned long v = 0;
    size_t k = strlen(key);
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, key, k) == 0)
            v = strtoul(line + k, NULL, 10);
    fclose(f);
    return v * 1024;
}

static void test_totals(void **state)
{
    (void)state;
    st__totals_record_t t;
    assert_int_equal(st__agent_measure_totals(&t), 0);
    unsigned long swap = kb("/proc/self/status", "VmSwap:");
    assert_int_equal(t.swap_bytes, swap);
    assert_true(t.present & ST_TOTAL_HAS(resident_set_bytes));
    assert_true(t.present & ST_TOTAL_HAS(pss_bytes));
    assert_true(t.present & ST_TOTAL_HAS(uss_bytes));
    assert_true(t.present & ST_TOTAL_HAS(private_footprint_bytes));
    assert_true(t.present & ST_TOTAL_HAS(rss_shmem_bytes));
    /* Rss moves a little between two reads; it must be the same order */
    unsigned long rss = kb("/proc/self/smaps_rollup", "Rss:");
    assert_true(t.resident_set_bytes > rss / 2 && t.resident_set_bytes < rss * 2);
    assert_true(t.uss_bytes <= t.resident_set_bytes);
    assert_true(t.pss_bytes <= t.resident_set_bytes);
}

/* The guard against mincore's all-resident answer: an object marked untrusted reports "unknown"
 * when every page looks resident, and its real count otherwise. */
static void test_untrusted_guard(void **state)
{
    st__reg_t *reg = *state;
    st__key_t key;
    unsigned maj, min;
    unsigned long ino;
    char *p = map_anon(reg, 4, &key, &maj, &min, &ino);
    st__obj_t *obj = st__reg_find(reg, &key);
    obj->flags |= ST__OBJ_UNTRUSTED;
    p[0] = 1;
    st__obj_record_t rec;
    size_t n = 0;
    assert_int_equal(st__agent_measure_objects(reg, &rec, 1, &n), 0);
    assert_int_equal(rec.resident, PAGE);
    assert_false(rec.flags & ST__REC_RESIDENT_UNKNOWN);
    memset(p, 1, 4 * PAGE);
    assert_int_equal(st__agent_measure_objects(reg, &rec, 1, &n), 0);
    assert_true(rec.flags & ST__REC_RESIDENT_UNKNOWN);
    assert_int_equal(rec.resident, 0);
    obj->flags &= (uint8_t)~ST__OBJ_UNTRUSTED;
    assert_int_equal(st__agent_measure_objects(reg, &rec, 1, &n), 0);
    assert_int_equal(rec.resident, 4 * PAGE);
    munmap(p, 4 * PAGE);
    st__reg_unmap(reg, (uintptr_t)p, 4 * PAGE);
}

/* The line reader: lines split across reads, a line longer than the buffer cut to its head, a last
 * line without a newline. */
struct lines {
    char seen[8][64];
    size_t len[8];
    int n;
};

static int line_cb(const char *line, size_t len, void *ctx)
{
    struct lines *l = ctx;
    if (l->n < 8) {
        l->len[l->n] = len;
        snprintf(l->seen[l->n], sizeof(l->seen[0]), "%.*s", (int)(len < 63 ? len : 63), line);
    }
    l->n++;
    return 0;
}

static void test_read_lines(void **state)
{
    (void)state;
    char path[] = "/tmp/shmtrack-lines-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    char longline[300];
    memset(longline, 'x', sizeof(longline));
    FILE *f = fdopen(fd, "w");
    fprintf(f, "first\n%.*s\nsecond line\n\nlast", (int)sizeof(longline), longline);
    fclose(f);
    char buf[16];
    struct lines l;
    memset(&l, 0, sizeof(l));
    assert_int_equal(st__prim_read_lines(path, buf, sizeof(buf), line_cb, &l), 0);
    unlink(path);
    assert_int_equal(l.n, 5);
    assert_string_equal(l.seen[0], "first");
    assert_int_equal(l.len[1], sizeof(buf)); /* the head of the long line */
    assert_string_equal(l.seen[2], "second line");
    assert_string_equal(l.seen[3], "");
    assert_string_equal(l.seen[4], "last");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_partial_munmap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mremap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_double_mapping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fd_held, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fd_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fast_table, setup, teardown),
        cmocka_unit_test(test_fast_full),
        cmocka_unit_test_setup_teardown(test_sysv, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fork_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_untrusted_guard, setup, teardown),
        cmocka_unit_test(test_read_lines),
        cmocka_unit_test(test_capacity),
        cmocka_unit_test(test_bytes_per_object),
        cmocka_unit_test(test_vma_query),
        cmocka_unit_test(test_totals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
