/* SPDX-License-Identifier: MIT
 *
 * prim.h for Linux (private to allocator/). Every kernel request is a raw syscall(2): the preload
 * must work while the dynamic linker is still resolving symbols, inside another library's mmap
 * hook and in a fork child, so nothing here goes through a libc wrapper that could itself be
 * interposed or take a libc lock. The SysV calls assume the direct shm* system calls of 64-bit
 * architectures (x86_64, aarch64, riscv64), whose shmid_ds is the kernel's shmid64_ds; 32-bit x86
 * multiplexes them through ipc(2) and is not supported.
 *
 * VMA identity comes from PROCMAP_QUERY (Linux 6.11) on a cached /proc/self/maps fd. The fd is
 * re-validated before each use (the program may have closed it or dup2'd something over it: an
 * ioctl on someone else's descriptor must never happen) and dropped in a fork child. Without the
 * ioctl, /proc/self/maps is read line by line into a static buffer.
 */
#include "prim.h"

#include "model.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/ioctl.h>
#include <linux/magic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#ifndef SYS_shmget
#error "allocator/prim/linux.c needs the direct shm* system calls (64-bit Linux)"
#endif

extern char **environ;

/* ---- real calls ------------------------------------------------------------------------------ */

/* The calls of the hot hooks (mmap, munmap, memfd_create, ftruncate, close) are made inline on
 * x86-64, with libc's convention for the result (-1 and errno for -4095..-1): libc's syscall()
 * is one more page of code to walk to after each system call, and on a kernel with page-table
 * isolation and no PCID every page touched after a system call is a TLB miss. */
#if defined(__x86_64__)
static inline long sys_result(long r)
{
    if ((unsigned long)r > -4096ul) {
        errno = (int)-r;
        return -1;
    }
    return r;
}

static inline long sys6(long n, long a, long b, long c, long d, long e, long f)
{
    long ret;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return sys_result(ret);
}
#define HOT_SYSCALL(n, a, b, c, d, e, f)                                                           \
    sys6((n), (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), (long)(f))
#else
#define HOT_SYSCALL(n, a, b, c, d, e, f) syscall((n), (a), (b), (c), (d), (e), (f))
#endif

ST__FAST void *st__prim_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    return (void *)HOT_SYSCALL(SYS_mmap, addr, len, prot, flags, fd, off);
}

ST__FAST int st__prim_munmap(void *addr, size_t len)
{
    return (int)HOT_SYSCALL(SYS_munmap, addr, len, 0, 0, 0, 0);
}

ST__FAST int st__prim_close_call(int fd)
{
    return (int)HOT_SYSCALL(SYS_close, fd, 0, 0, 0, 0, 0);
}

void *st__prim_mremap(void *old_addr, size_t old_len, size_t new_len, int flags, void *new_addr)
{
    return (void *)syscall(SYS_mremap, old_addr, old_len, new_len, flags, new_addr);
}

ST__FAST int st__prim_memfd_create(const char *name, unsigned int flags)
{
    return (int)HOT_SYSCALL(SYS_memfd_create, name, flags, 0, 0, 0, 0);
}

ST__FAST int st__prim_ftruncate(int fd, off_t len)
{
    return (int)HOT_SYSCALL(SYS_ftruncate, fd, len, 0, 0, 0, 0);
}

int st__prim_shmget(key_t key, size_t size, int flags)
{
    return (int)syscall(SYS_shmget, key, size, flags);
}

void *st__prim_shmat(int shmid, const void *addr, int flags)
{
    return (void *)syscall(SYS_shmat, shmid, addr, flags);
}

int st__prim_shmdt(const void *addr)
{
    return (int)syscall(SYS_shmdt, addr);
}

int st__prim_shmctl(int shmid, int cmd, struct shmid_ds *buf)
{
    return (int)syscall(SYS_shmctl, shmid, cmd, buf);
}

/* ---- small raw helpers ----------------------------------------------------------------------- */

/* syscall() returns -1 and sets errno; these helpers return -errno instead. */
static long raw(long rc)
{
    return rc < 0 ? -errno : rc;
}

int st__prim_open(const char *path, int flags, int mode)
{
    return (int)raw(syscall(SYS_openat, AT_FDCWD, path, flags | O_CLOEXEC, mode));
}

int st__prim_close(int fd)
{
    return (int)raw(syscall(SYS_close, fd));
}

int st__prim_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        long n = syscall(SYS_write, fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int st__prim_getpid(void)
{
    return (int)syscall(SYS_getpid);
}

uint32_t st__prim_geteuid(void)
{
    return (uint32_t)syscall(SYS_geteuid);
}

ST__HOT size_t st__prim_page_size(void)
{
    /* The auxiliary vector is not reachable without libc; every Linux target we build for uses
     * 4 KiB base pages except some aarch64/ppc64 kernels, which sysconf would tell. sysconf reads
     * the auxv libc already parsed and neither allocates nor locks. */
    static size_t page;
    if (page == 0)
        page = (size_t)sysconf(_SC_PAGESIZE);
    return page;
}

const char *st__prim_getenv(const char *name)
{
    size_t n = strlen(name);
    if (environ == NULL)
        return NULL;
    for (char **e = environ; *e != NULL; e++)
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
            return *e + n + 1;
    return NULL;
}

void *st__prim_arena_map(size_t len)
{
    void *p = (void *)syscall(SYS_mmap, NULL, len, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void st__prim_arena_unmap(void *p, size_t len)
{
    if (p != NULL)
        syscall(SYS_munmap, p, len);
}

int st__prim_mincore(void *addr, size_t len, unsigned char *vec)
{
    return (int)raw(syscall(SYS_mincore, addr, len, vec));
}

int st__prim_fd_stat(int fd, st__fdinfo_t *out)
{
    struct stat st;
    if (syscall(SYS_fstat, fd, &st) < 0)
        return -errno;
    memset(out, 0, sizeof(*out));
    out->ino = st.st_ino;
    out->size = (uint64_t)st.st_size;
    out->blocks = (uint64_t)st.st_blocks * 512u;
    out->dev_major = major(st.st_dev);
    out->dev_minor = minor(st.st_dev);
    out->uid = st.st_uid;
    out->ctime_ns = (uint64_t)st.st_ctim.tv_sec * 1000000000u + (uint64_t)st.st_ctim.tv_nsec;
    if (S_ISREG(st.st_mode))
        out->type = ST__FD_REG;
    else if (S_ISCHR(st.st_mode) && major(st.st_rdev) == 1 && minor(st.st_rdev) == 5)
        out->type = ST__FD_DEVZERO;
    else
        out->type = ST__FD_OTHER;
    return 0;
}

/* "/proc/self/fd/<fd>" without snprintf. */
static void fd_path(int fd, char *buf)
{
    static const char prefix[] = "/proc/self/fd/";
    char digits[16];
    int n = 0;
    unsigned v = (unsigned)fd;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    memcpy(buf, prefix, sizeof(prefix) - 1);
    size_t at = sizeof(prefix) - 1;
    while (n > 0)
        buf[at++] = digits[--n];
    buf[at] = '\0';
}

static void copy_name(char *dst, size_t len, const char *src, size_t n)
{
    if (dst == NULL || len == 0)
        return;
    if (n >= len)
        n = len - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

int st__prim_fd_kind(int fd, int *kind, char *name, size_t len)
{
    struct statfs sfs;
    char path[40], link[256];
    if (syscall(SYS_fstatfs, fd, &sfs) < 0)
        return -errno;
    if ((unsigned long)sfs.f_type != TMPFS_MAGIC && (unsigned long)sfs.f_type != HUGETLBFS_MAGIC)
        return -ENOTSUP;
    fd_path(fd, path);
    long n = syscall(SYS_readlinkat, AT_FDCWD, path, link, sizeof(link) - 1);
    if (n < 0)
        n = 0;
    link[n] = '\0';
    bool memfd = strncmp(link, "/memfd:", 7) == 0;
    if ((unsigned long)sfs.f_type == HUGETLBFS_MAGIC)
        *kind = ST_KIND_HUGETLB;
    else
        *kind = memfd ? ST_KIND_MEMFD : ST_KIND_POSIX;
    if (memfd) {
        const char *s = link + 7;
        size_t l = strlen(s);
        if (l >= 10 && strcmp(s + l - 10, " (deleted)") == 0)
            l -= 10;
        copy_name(name, len, s, l);
    } else {
        const char *slash = strrchr(link, '/');
        const char *s = slash ? slash + 1 : link;
        copy_name(name, len, s, strlen(s));
    }
    return 0;
}

#ifndef __NR_cachestat
#define __NR_cachestat 451
#endif

/* include/uapi/linux/mman.h (6.5); Debian 12's headers predate it. */
struct st_cachestat_range {
    uint64_t off, len;
};
struct st_cachestat {
    uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
};

int st__prim_cachestat(int fd, uint64_t *pages)
{
    struct st_cachestat_range range = {0, 0}; /* len 0: to the end of the file */
    struct st_cachestat cs;
    memset(&cs, 0, sizeof(cs));
    if (syscall(__NR_cachestat, fd, &range, &cs, 0) < 0)
        return -errno;
    *pages = cs.nr_cache;
    return 0;
}

struct st_dirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

int st__prim_each_fd(char *buf, size_t cap, int (*cb)(int fd, void *ctx), void *ctx)
{
    int dir = (int)raw(
        syscall(SYS_openat, AT_FDCWD, "/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0));
    if (dir < 0)
        return dir;
    int rc = 0;
    for (;;) {
        long n = syscall(SYS_getdents64, dir, buf, cap);
        if (n < 0) {
            rc = -errno;
            break;
        }
        if (n == 0)
            break;
        for (long at = 0; at < n && rc == 0;) {
            const struct st_dirent64 *d = (const struct st_dirent64 *)(buf + at);
            at += d->d_reclen;
            int fd = 0;
            const char *c = d->d_name;
            if (*c < '0' || *c > '9')
                continue;
            for (; *c >= '0' && *c <= '9'; c++)
                fd = fd * 10 + (*c - '0');
            if (fd != dir)
                rc = cb(fd, ctx);
        }
        if (rc != 0)
            break;
    }
    syscall(SYS_close, dir);
    return rc;
}

int st__prim_ipc_ns(uint64_t *ino)
{
    struct stat st;
    if (syscall(SYS_newfstatat, AT_FDCWD, "/proc/self/ns/ipc", &st, 0) < 0)
        return -errno;
    *ino = st.st_ino;
    return 0;
}

int st__prim_shm_stat(int shmid, uint64_t *size, int *cpid)
{
    struct shmid_ds ds;
    if (syscall(SYS_shmctl, shmid, IPC_STAT, &ds) < 0)
        return -errno;
    *size = ds.shm_segsz;
    *cpid = ds.shm_cpid;
    return 0;
}

/* ---- line reader ----------------------------------------------------------------------------- */

int st__prim_read_lines(const char *path, char *buf, size_t cap, st__prim_line_cb line_cb,
                        void *ctx)
{
    int fd = st__prim_open(path, O_RDONLY, 0);
    if (fd < 0)
        return fd;
    size_t have = 0;
    bool skipping = false; /* inside a line longer than the buffer: drop its tail */
    int rc = 0;
    for (;;) {
        long n = syscall(SYS_read, fd, buf + have, cap - have);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        if (n == 0) {
            if (have > 0 && !skipping)
                rc = line_cb(buf, have, ctx);
            break;
        }
        have += (size_t)n;
        size_t start = 0;
        for (size_t i = 0; i < have && rc == 0; i++) {
            if (buf[i] != '\n')
                continue;
            if (!skipping)
                rc = line_cb(buf + start, i - start, ctx);
            skipping = false;
            start = i + 1;
        }
        if (rc != 0)
            break;
        if (start == 0 && have == cap) {
            /* A line fills the buffer: hand out its head, skip the rest. */
            if (!skipping)
                rc = line_cb(buf, have, ctx);
            skipping = true;
            have = 0;
            if (rc != 0)
                break;
            continue;
        }
        memmove(buf, buf + start, have - start);
        have -= start;
    }
    st__prim_close(fd);
    return rc;
}

/* ---- VMA identity ---------------------------------------------------------------------------- */

/* include/uapi/linux/fs.h (6.11); Debian 12's headers predate it. */
struct st_procmap_query {
    uint64_t size;
    uint64_t query_flags;
    uint64_t query_addr;
    uint64_t vma_start;
    uint64_t vma_end;
    uint64_t vma_flags;
    uint64_t vma_page_size;
    uint64_t vma_offset;
    uint64_t inode;
    uint32_t dev_major;
    uint32_t dev_minor;
    uint32_t vma_name_size;
    uint32_t build_id_size;
    uint64_t vma_name_addr;
    uint64_t build_id_addr;
};
_Static_assert(sizeof(struct st_procmap_query) == 104, "procmap_query layout");
#define ST_PROCMAP_QUERY _IOWR('f', 17, struct st_procmap_query)
#define ST_PMQ_VMA_WRITABLE 0x02
#define ST_PMQ_VMA_SHARED 0x08

static struct {
    int fd;       /* cached /proc/self/maps, -1 when none */
    int pid;      /* the process that opened it */
    uint64_t dev; /* its identity, to notice close()/dup2() by the program */
    uint64_t ino;
    int no_ioctl; /* the kernel lacks PROCMAP_QUERY */
    int force_fallback;
} maps = {.fd = -1};

int st__prim_vma_force_fallback(int on)
{
    int was = maps.force_fallback;
    maps.force_fallback = on;
    return was;
}

void st__prim_after_fork(void)
{
    /* The descriptor was inherited; it still reads the parent's maps. Close it only if it is
     * still the one we opened (the child may have reused the number already: not in a fork
     * child that has not run any code yet, but cheap to check). */
    if (maps.fd >= 0) {
        struct stat st;
        if (syscall(SYS_fstat, maps.fd, &st) == 0 && st.st_dev == maps.dev && st.st_ino == maps.ino)
            syscall(SYS_close, maps.fd);
    }
    maps.fd = -1;
}

/* The cached maps fd, (re)opened when missing, not ours any more, or from another process. */
static int maps_fd(void)
{
    int pid = st__prim_getpid();
    if (maps.fd >= 0) {
        struct stat st;
        if (maps.pid == pid && syscall(SYS_fstat, maps.fd, &st) == 0 && st.st_dev == maps.dev &&
            st.st_ino == maps.ino)
            return maps.fd;
        /* Closed or replaced by the program (then it is not ours to close), or inherited. */
        maps.fd = -1;
    }
    int fd = st__prim_open("/proc/self/maps", O_RDONLY, 0);
    if (fd < 0)
        return fd;
    struct stat st;
    if (syscall(SYS_fstat, fd, &st) < 0) {
        int rc = -errno;
        st__prim_close(fd);
        return rc;
    }
    maps.fd = fd;
    maps.pid = pid;
    maps.dev = st.st_dev;
    maps.ino = st.st_ino;
    return fd;
}

static int query_ioctl(uintptr_t addr, st__vma_t *out)
{
    int fd = maps_fd();
    if (fd < 0)
        return fd;
    struct st_procmap_query q;
    memset(&q, 0, sizeof(q));
    q.size = sizeof(q);
    q.query_addr = addr;
    if (syscall(SYS_ioctl, fd, ST_PROCMAP_QUERY, &q) < 0)
        return -errno;
    out->start = q.vma_start;
    out->end = q.vma_end;
    out->offset = q.vma_offset;
    out->ino = q.inode;
    out->dev_major = q.dev_major;
    out->dev_minor = q.dev_minor;
    out->shared = (q.vma_flags & ST_PMQ_VMA_SHARED) != 0;
    out->writable = (q.vma_flags & ST_PMQ_VMA_WRITABLE) != 0;
    return 0;
}

static const char *hex(const char *p, const char *end, uint64_t *v)
{
    uint64_t x = 0;
    for (; p < end; p++) {
        int d;
        if (*p >= '0' && *p <= '9')
            d = *p - '0';
        else if (*p >= 'a' && *p <= 'f')
            d = *p - 'a' + 10;
        else
            break;
        x = x * 16 + (uint64_t)d;
    }
    *v = x;
    return p;
}

static const char *dec(const char *p, const char *end, uint64_t *v)
{
    uint64_t x = 0;
    for (; p < end && *p >= '0' && *p <= '9'; p++)
        x = x * 10 + (uint64_t)(*p - '0');
    *v = x;
    return p;
}

/* "start-end perms offset major:minor ino path": 0 when parsed. */
int st__prim_parse_maps_line(const char *p, size_t len, st__vma_t *v)
{
    const char *end = p + len;
    uint64_t x;
    p = hex(p, end, &v->start);
    if (p >= end || *p++ != '-')
        return -EINVAL;
    p = hex(p, end, &v->end);
    if (end - p < 6 || *p++ != ' ')
        return -EINVAL;
    v->writable = p[1] == 'w';
    v->shared = p[3] == 's';
    p += 5;
    p = hex(p, end, &v->offset);
    if (p >= end || *p++ != ' ')
        return -EINVAL;
    p = hex(p, end, &x);
    v->dev_major = (uint32_t)x;
    if (p >= end || *p++ != ':')
        return -EINVAL;
    p = hex(p, end, &x);
    v->dev_minor = (uint32_t)x;
    if (p >= end || *p++ != ' ')
        return -EINVAL;
    dec(p, end, &v->ino);
    return 0;
}

struct maps_find {
    uintptr_t addr;
    st__vma_t *out;
    int found;
};

static int maps_find_cb(const char *line, size_t len, void *ctx)
{
    struct maps_find *f = ctx;
    st__vma_t v;
    if (st__prim_parse_maps_line(line, len, &v) != 0)
        return 0;
    if (f->addr >= v.start && f->addr < v.end) {
        *f->out = v;
        f->found = 1;
        return 1;
    }
    return 0;
}

static int query_maps(uintptr_t addr, st__vma_t *out)
{
    static char buf[4096];
    struct maps_find f = {.addr = addr, .out = out, .found = 0};
    int rc = st__prim_read_lines("/proc/self/maps", buf, sizeof(buf), maps_find_cb, &f);
    if (rc < 0)
        return rc;
    return f.found ? 0 : -ENOENT;
}

int st__prim_vma_query(uintptr_t addr, st__vma_t *out)
{
    if (!maps.no_ioctl && !maps.force_fallback) {
        int rc = query_ioctl(addr, out);
        if (rc == 0 || rc == -ENOENT)
            return rc;
        if (rc == -ENOTTY || rc == -EINVAL || rc == -EOPNOTSUPP)
            maps.no_ioctl = 1; /* kernel without PROCMAP_QUERY: fall back from now on */
    }
    return query_maps(addr, out);
}
