/* SPDX-License-Identifier: MIT
 *
 * Unit tests for the /proc readers (src/procfs.c): every parser on fixtures under
 * tests/data/proc/ (values written by hand, so the expected numbers are known), and the live
 * readers on the test's own process, where the truth is what the test created itself: both VMA
 * sources (maps text and PROCMAP_QUERY) must report the mappings it made, with the inode fstat
 * gave it, and agree with each other.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "error.h"
#include "procfs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static char *fixture(const char *name, size_t *len)
{
    const char *dir = getenv("SHMTRACK_TEST_DATA");
    char path[PATH_MAX];
    char *buf = NULL;
    assert_non_null(dir);
    snprintf(path, sizeof(path), "%s/proc/%s", dir, name);
    assert_int_equal(st_procfs_read_file(path, &buf, len), 0);
    return buf;
}

typedef struct vmas {
    st_vma_t v[64];
    size_t n;
} vmas_t;

static int collect(const st_vma_t *vma, void *arg)
{
    vmas_t *c = arg;
    if (c->n < 64)
        c->v[c->n++] = *vma;
    return 0;
}

static void test_maps_fixture(void **state)
{
    size_t len, bad = 0;
    char *buf = fixture("maps", &len);
    vmas_t *c = calloc(1, sizeof(*c));
    assert_int_equal(st_procfs_parse_maps(buf, len, collect, c, &bad), 0);
    assert_int_equal(c->n, 8);
    assert_int_equal(bad, 1);
    assert_int_equal(c->v[0].major, 0xfe);
    assert_int_equal(c->v[0].minor, 1);
    assert_int_equal(c->v[0].perms, ST_VMA_READ);
    assert_string_equal(c->v[0].path, "/usr/bin/cat");
    assert_false(c->v[0].deleted);
    assert_int_equal(c->v[1].start, 0x7f1c2a000000ull);
    assert_int_equal(c->v[1].end, 0x7f1c2a100000ull);
    assert_int_equal(c->v[1].perms, ST_VMA_READ | ST_VMA_WRITE | ST_VMA_SHARED);
    assert_int_equal(c->v[1].inode, 1027);
    assert_string_equal(c->v[1].path, "/dev/zero");
    assert_true(c->v[1].deleted);
    assert_int_equal(c->v[2].offset, 0x2000);
    assert_string_equal(c->v[2].path, "/memfd:my buf");
    assert_int_equal(c->v[3].minor, 0x1a);
    assert_string_equal(c->v[3].path, "/dev/shm/with space name");
    assert_false(c->v[3].deleted);
    assert_string_equal(c->v[4].path, "/SYSV0000abcd");
    assert_int_equal(c->v[4].inode, 32769);
    assert_string_equal(c->v[5].path, "");
    assert_int_equal(c->v[5].inode, 0);
    assert_string_equal(c->v[6].path, "[stack]");
    assert_int_equal(c->v[7].start, 0xffffffffff600000ull);
    free(c);
    free(buf);
}

static void test_maps_bad_lines(void **state)
{
    static const char *const bad[] = {
        "",
        "7f00",
        "7f00-",
        "7f00-7e00 rw-s 0 00:01 1 /x",            /* end < start */
        "7f00-7f10 rw-q 0 00:01 1 /x",            /* bad flag */
        "7f00-7f10 rw-s 0 00:01",                 /* no inode */
        "7f00-7f10 rw-s 0 0001 1 /x",             /* no ':' */
        "7f00-7f10 rw-s 0 00:01 12x /x",          /* junk in inode */
        "ffffffffffffffffff-1 rw-s 0 00:01 1 /x", /* overflow */
        "7f00-7f10 rw",                           /* short perms */
        "7f00-7f10 rw-s 0 100000000:01 1 /x",     /* major overflow */
    };
    st_vma_t *v = malloc(sizeof(*v));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(st_procfs_parse_maps_line(bad[i], strlen(bad[i]), v), ST_EFORMAT);
    /* not NUL-terminated: the parser must stop at len */
    const char line[] = "7f00-7f10 rw-s 0 00:01 5 /abcdef";
    assert_int_equal(st_procfs_parse_maps_line(line, sizeof(line) - 4, v), 0);
    assert_string_equal(v->path, "/abc");
    assert_int_equal(v->inode, 5);
    free(v);
}

static void test_totals_fixture(void **state)
{
    size_t len;
    st_proc_mem_t mem;
    st_totals_t t;
    memset(&mem, 0, sizeof(mem));
    char *buf = fixture("smaps_rollup", &len);
    assert_int_equal(st_procfs_parse_smaps_rollup(buf, len, &mem), 0);
    free(buf);
    buf = fixture("status", &len);
    assert_int_equal(st_procfs_parse_status(buf, len, &mem), 0);
    free(buf);
    assert_int_equal(mem.pss_shmem, 1024 * 1024);
    assert_int_equal(mem.swap, 16 * 1024);
    st_procfs_totals_from_mem(&mem, &t);
    assert_int_equal(t.resident_set_bytes, 5120 * 1024);
    assert_int_equal(t.pss_bytes, 3072 * 1024);
    assert_int_equal(t.uss_bytes, (512 + 2560) * 1024);
    assert_int_equal(t.private_footprint_bytes, (2048 + 16) * 1024);
    assert_int_equal(t.swap_bytes, 16 * 1024);
    assert_int_equal(t.rss_shmem_bytes, 2048 * 1024);
    assert_int_equal(t.present, (1u << ST_TOTAL_COUNT) - 1);

    /* status alone (a process whose rollup could not be read) */
    memset(&mem, 0, sizeof(mem));
    buf = fixture("status", &len);
    st_procfs_parse_status(buf, len, &mem);
    free(buf);
    st_procfs_totals_from_mem(&mem, &t);
    assert_int_equal(t.resident_set_bytes, 5120 * 1024);
    assert_false(t.present & ST_TOTAL_HAS(pss_bytes));
}

static void test_stat_fixture(void **state)
{
    size_t len;
    st_proc_stat_t st;
    char *buf = fixture("stat", &len);
    assert_int_equal(st_procfs_parse_stat(buf, len, &st), 0);
    free(buf);
    assert_int_equal(st.pid, 1234);
    assert_string_equal(st.comm, "a) (b) c");
    assert_int_equal(st.state, 'S');
    assert_int_equal(st.ppid, 1);
    assert_int_equal(st.starttime, 987654);
    assert_int_equal(st.flags, 4194304);
    const char *shorts[] = {"1 (x", "1 (x) S", "1 (x) S 1 2 3", "x (y) S 1", "1 x) S 1"};
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(st_procfs_parse_stat(shorts[i], strlen(shorts[i]), &st), ST_EFORMAT);
}

typedef struct segs {
    st_sysv_seg_t s[8];
    size_t n;
} segs_t;

static int seg_collect(const st_sysv_seg_t *seg, void *arg)
{
    segs_t *c = arg;
    if (c->n < 8)
        c->s[c->n++] = *seg;
    return 0;
}

static void test_sysvipc_fixture(void **state)
{
    size_t len, bad = 0;
    segs_t c = {.n = 0};
    char *buf = fixture("sysvipc_shm", &len);
    assert_int_equal(st_procfs_parse_sysvipc_shm(buf, len, seg_collect, &c, &bad), 0);
    free(buf);
    assert_int_equal(c.n, 2);
    assert_int_equal(bad, 0); /* "garbage line" does not start with a digit: header-like, skipped */
    assert_int_equal(c.s[0].shmid, 32768);
    assert_int_equal(c.s[0].perms, 01600);
    assert_int_equal(c.s[0].size, 65536);
    assert_int_equal(c.s[0].cpid, 4321);
    assert_int_equal(c.s[0].lpid, 4322);
    assert_int_equal(c.s[0].nattch, 2);
    assert_true(c.s[0].have_rss);
    assert_int_equal(c.s[0].rss, 8192);
    assert_int_equal(c.s[1].key, 305419896);
    assert_int_equal(c.s[1].nattch, 0);
    assert_int_equal(c.s[1].uid, 1000);
    assert_int_equal(c.s[1].swap, 4096);
    const char *trunc = "1 2 600 4096 5";
    bad = 0;
    c.n = 0;
    st_procfs_parse_sysvipc_shm(trunc, strlen(trunc), seg_collect, &c, &bad);
    assert_int_equal(c.n, 0);
    assert_int_equal(bad, 1);
}

typedef struct mounts {
    unsigned major[8], minor[8];
    char fstype[8][16], mnt[8][64];
    size_t n;
} mounts_t;

static int mount_collect(unsigned major, unsigned minor, const char *fstype, const char *mnt,
                         void *arg)
{
    mounts_t *m = arg;
    if (m->n < 8) {
        m->major[m->n] = major;
        m->minor[m->n] = minor;
        snprintf(m->fstype[m->n], 16, "%s", fstype);
        snprintf(m->mnt[m->n], 64, "%s", mnt);
        m->n++;
    }
    return 0;
}

static void test_mountinfo_fixture(void **state)
{
    size_t len;
    mounts_t m = {.n = 0};
    char *buf = fixture("mountinfo", &len);
    assert_int_equal(st_procfs_parse_mountinfo(buf, len, mount_collect, &m), 0);
    free(buf);
    assert_int_equal(m.n, 4);
    assert_int_equal(m.major[0], 254);
    assert_string_equal(m.fstype[0], "ext4");
    assert_int_equal(m.minor[1], 22);
    assert_string_equal(m.fstype[1], "tmpfs");
    assert_string_equal(m.mnt[1], "/dev/shm");
    assert_string_equal(m.fstype[2], "hugetlbfs");
    assert_string_equal(m.fstype[3], "tmpfs"); /* no optional fields before "-" */
}

typedef struct smaps_seen {
    uint64_t start[4], rss[4], swap[4];
    size_t n;
} smaps_seen_t;

static int smaps_collect(uint64_t start, uint64_t end, uint64_t rss, uint64_t swap, void *arg)
{
    smaps_seen_t *s = arg;
    if (s->n < 4) {
        s->start[s->n] = start;
        s->rss[s->n] = rss;
        s->swap[s->n] = swap;
        s->n++;
    }
    return 0;
}

static void test_smaps_fixture(void **state)
{
    size_t len;
    smaps_seen_t s = {.n = 0};
    char *buf = fixture("smaps", &len);
    assert_int_equal(st_procfs_parse_smaps(buf, len, smaps_collect, &s), 0);
    free(buf);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.start[0], 0x7f1c2a000000ull);
    assert_int_equal(s.rss[0], 40 * 1024);
    assert_int_equal(s.swap[0], 8 * 1024); /* SwapPss is not Swap */
    assert_int_equal(s.rss[1], 64 * 1024);
}

/* ---- live: the test's own process ---- */

static const st_vma_t *find_vma(const vmas_t *c, uint64_t start)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->v[i].start == start)
            return &c->v[i];
    return NULL;
}

static void test_live_both_sources(void **state)
{
    long page = sysconf(_SC_PAGESIZE);
    int fd = memfd_create("procfs test", MFD_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 4 * page), 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    char *mfd = mmap(NULL, 2 * (size_t)page, PROT_READ, MAP_SHARED, fd, page);
    char *anon =
        mmap(NULL, 3 * (size_t)page, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(mfd != MAP_FAILED && anon != MAP_FAILED);

    vmas_t *text = calloc(1, sizeof(*text)), *ioc = calloc(1, sizeof(*ioc));
    st_maps_method_t used;
    assert_int_equal(st_procfs_read_vmas(0, ST_MAPS_TEXT, true, collect, text, &used), 0);
    assert_int_equal(used, ST_MAPS_TEXT);
    int rc = st_procfs_read_vmas(getpid(), ST_MAPS_PROCMAP, true, collect, ioc, &used);
    if (rc == -ENOTTY || rc == -EINVAL) {
        print_message("PROCMAP_QUERY not supported by this kernel: only maps text checked\n");
    } else {
        assert_int_equal(rc, 0);
        assert_int_equal(used, ST_MAPS_PROCMAP);
        assert_int_equal(ioc->n, text->n);
        for (size_t i = 0; i < text->n; i++) {
            const st_vma_t *a = &text->v[i], *b = &ioc->v[i];
            assert_int_equal(a->start, b->start);
            assert_int_equal(a->end, b->end);
            assert_int_equal(a->offset, b->offset);
            assert_int_equal(a->perms, b->perms);
            assert_int_equal(a->major, b->major);
            assert_int_equal(a->minor, b->minor);
            assert_int_equal(a->inode, b->inode);
            assert_string_equal(a->path, b->path);
            assert_int_equal(a->deleted, b->deleted);
        }
    }
    for (int pass = 0; pass < 2; pass++) {
        const vmas_t *c = pass ? ioc : text;
        if (c->n == 0)
            continue;
        const st_vma_t *v = find_vma(c, (uint64_t)(uintptr_t)mfd);
        assert_non_null(v);
        assert_int_equal(v->end - v->start, 2 * page);
        assert_int_equal(v->offset, page);
        assert_int_equal(v->inode, st.st_ino);
        assert_int_equal(v->major, major(st.st_dev));
        assert_int_equal(v->minor, minor(st.st_dev));
        assert_string_equal(v->path, "/memfd:procfs test");
        assert_true(v->deleted);
        assert_int_equal(v->perms, ST_VMA_READ | ST_VMA_SHARED);
        v = find_vma(c, (uint64_t)(uintptr_t)anon);
        assert_non_null(v);
        assert_string_equal(v->path, "/dev/zero");
        assert_true(v->deleted);
        assert_int_equal(v->end - v->start, 3 * page);
        for (size_t i = 0; i < c->n; i++) /* the filter: only shared file mappings */
            assert_true((c->v[i].perms & ST_VMA_SHARED) && c->v[i].path[0] == '/');
    }
    free(text);
    free(ioc);
    munmap(mfd, 2 * (size_t)page);
    munmap(anon, 3 * (size_t)page);
    close(fd);
}

/* ---- ST_MAPS_AUTO: the text where shared mappings are dense, the ioctl where sparse ---- */

typedef struct vlist {
    st_vma_t *v;
    size_t n, cap;
} vlist_t;

static int vlist_add(const st_vma_t *vma, void *arg)
{
    vlist_t *l = arg;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->v = realloc(l->v, l->cap * sizeof(*l->v));
        assert_non_null(l->v);
    }
    l->v[l->n++] = *vma;
    return 0;
}

/* AUTO's walk of this process against PROCMAP_QUERY's, VMA by VMA (both include page_size
 * only where the ioctl answered, so that field is left out). Returns AUTO's *used. */
static st_maps_method_t auto_equals_ioctl(const char *newline_name)
{
    vlist_t a = {NULL, 0, 0}, q = {NULL, 0, 0};
    st_maps_method_t used = ST_MAPS_TEXT, used_q;
    assert_int_equal(st_procfs_read_vmas(0, ST_MAPS_AUTO, true, vlist_add, &a, &used), 0);
    assert_int_equal(st_procfs_read_vmas(0, ST_MAPS_PROCMAP, true, vlist_add, &q, &used_q), 0);
    assert_int_equal(a.n, q.n);
    bool seen = false;
    for (size_t i = 0; i < a.n; i++) {
        assert_int_equal(a.v[i].start, q.v[i].start);
        assert_int_equal(a.v[i].end, q.v[i].end);
        assert_int_equal(a.v[i].offset, q.v[i].offset);
        assert_int_equal(a.v[i].perms, q.v[i].perms);
        assert_int_equal(a.v[i].major, q.v[i].major);
        assert_int_equal(a.v[i].minor, q.v[i].minor);
        assert_int_equal(a.v[i].inode, q.v[i].inode);
        assert_string_equal(a.v[i].path, q.v[i].path);
        assert_int_equal(a.v[i].deleted, q.v[i].deleted);
        seen = seen || strcmp(a.v[i].path, newline_name) == 0;
    }
    assert_true(seen); /* the name with a newline, as the program gave it */
    free(a.v);
    free(q.v);
    return used;
}

static void test_live_auto(void **state)
{
    enum { MANY = 300 };
    long page = sysconf(_SC_PAGESIZE);
    vlist_t probe = {NULL, 0, 0};
    int rc = st_procfs_read_vmas(0, ST_MAPS_PROCMAP, true, vlist_add, &probe, NULL);
    free(probe.v);
    if (rc == -ENOTTY || rc == -EINVAL) {
        skip(); /* PROCMAP_QUERY needs Linux 6.11 */
        return;
    }
    /* a memfd whose name holds a newline: the text shows "\012", the ioctl the name itself */
    int nl = memfd_create("two\nlines", MFD_CLOEXEC);
    assert_true(nl >= 0 && ftruncate(nl, page) == 0);
    char *nlmap = mmap(NULL, (size_t)page, PROT_READ, MAP_SHARED, nl, 0);
    assert_true(nlmap != MAP_FAILED);

    /* a few shared mappings among the test's libraries: the text's first page is mostly not
     * shared, so AUTO goes on with the ioctl */
    assert_int_equal(auto_equals_ioctl("/memfd:two\nlines"), ST_MAPS_AUTO);

    /* hundreds: AUTO reads the text to the end (and asks the ioctl about the one name) */
    char *maps[MANY];
    for (int i = 0; i < MANY; i++) {
        int fd = memfd_create("auto", MFD_CLOEXEC);
        assert_true(fd >= 0 && ftruncate(fd, page) == 0);
        maps[i] = mmap(NULL, (size_t)page, PROT_READ, MAP_SHARED, fd, 0);
        assert_true(maps[i] != MAP_FAILED);
        close(fd);
    }
    vlist_t t = {NULL, 0, 0};
    st_maps_method_t used;
    assert_int_equal(st_procfs_read_vmas(0, ST_MAPS_TEXT, true, vlist_add, &t, &used), 0);
    bool escaped = false;
    for (size_t i = 0; i < t.n; i++)
        escaped = escaped || strcmp(t.v[i].path, "/memfd:two\\012lines") == 0;
    assert_true(escaped); /* what the text alone would have said */
    free(t.v);
    assert_int_equal(auto_equals_ioctl("/memfd:two\nlines"), ST_MAPS_AUTO);
    munmap(nlmap, (size_t)page);
    close(nl);
    /* no newline any more: AUTO gives what the text gives (the text alone answers when the
     * first page of maps is dense; under ASan its shadow mappings come first, and the ioctl goes
     * on from there) */
    vlist_t a = {NULL, 0, 0};
    t = (vlist_t){NULL, 0, 0};
    assert_int_equal(st_procfs_read_vmas(0, ST_MAPS_AUTO, true, vlist_add, &a, &used), 0);
    assert_true(used == ST_MAPS_TEXT || used == ST_MAPS_AUTO);
    assert_int_equal(st_procfs_read_vmas(0, ST_MAPS_TEXT, true, vlist_add, &t, NULL), 0);
    assert_true(a.n >= MANY);
    assert_int_equal(a.n, t.n);
    for (size_t i = 0; i < a.n; i++) {
        assert_int_equal(a.v[i].start, t.v[i].start);
        assert_int_equal(a.v[i].end, t.v[i].end);
        assert_int_equal(a.v[i].inode, t.v[i].inode);
        assert_string_equal(a.v[i].path, t.v[i].path);
    }
    free(a.v);
    free(t.v);
    for (int i = 0; i < MANY; i++)
        munmap(maps[i], (size_t)page);
}

typedef struct fd_seen {
    int want;
    bool found;
    st_fd_info_t info;
} fd_seen_t;

static int fd_collect(const st_fd_info_t *fd, void *arg)
{
    fd_seen_t *s = arg;
    if (fd->fd == s->want) {
        s->found = true;
        s->info = *fd;
    }
    return 0;
}

static void test_live_fds_stat_totals(void **state)
{
    int fd = memfd_create("fd probe", MFD_CLOEXEC);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    fd_seen_t *s = calloc(1, sizeof(*s));
    s->want = fd;
    assert_int_equal(st_procfs_read_fds(getpid(), NULL, fd_collect, s), 0);
    assert_true(s->found);
    assert_string_equal(s->info.target, "/memfd:fd probe");
    assert_true(s->info.deleted);
    assert_int_equal(s->info.st.st_ino, st.st_ino);
    assert_int_equal(s->info.st.st_dev, st.st_dev);
    free(s);
    close(fd);

    st_proc_stat_t ps;
    assert_int_equal(st_procfs_read_stat(getpid(), &ps), 0);
    assert_int_equal(ps.pid, getpid());
    assert_int_equal(ps.ppid, getppid());
    assert_true(ps.starttime > 0);

    st_totals_t t;
    assert_int_equal(st_procfs_read_totals(getpid(), &t), 0);
    assert_true(t.present & ST_TOTAL_HAS(resident_set_bytes));
    assert_true(t.resident_set_bytes > 0);

    /* a pid that cannot exist: -ENOENT, never a crash */
    assert_int_equal(st_procfs_read_stat(0x3fffffff, &ps), -ENOENT);
    assert_int_equal(st_procfs_read_totals(0x3fffffff, &t), -ENOENT);
    assert_true(st_procfs_read_fds(0x3fffffff, NULL, fd_collect, NULL) == -ENOENT);
    uint64_t ns = 0, ns2 = 0;
    assert_int_equal(st_procfs_ns_inode(0, "ipc", &ns), 0);
    assert_int_equal(st_procfs_ns_inode(getpid(), "ipc", &ns2), 0);
    assert_int_equal(ns, ns2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_maps_fixture),         cmocka_unit_test(test_maps_bad_lines),
        cmocka_unit_test(test_totals_fixture),       cmocka_unit_test(test_stat_fixture),
        cmocka_unit_test(test_sysvipc_fixture),      cmocka_unit_test(test_mountinfo_fixture),
        cmocka_unit_test(test_smaps_fixture),        cmocka_unit_test(test_live_both_sources),
        cmocka_unit_test(test_live_fds_stat_totals), cmocka_unit_test(test_live_auto),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
