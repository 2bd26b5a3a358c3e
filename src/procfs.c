/* SPDX-License-Identifier: MIT
 *
 * /proc readers (see procfs.h). Parsers work on (pointer, length) with a small cursor type so that
 * no parser depends on a terminating NUL or reads past the end of what it was given; they are
 * fuzzed (tests/fuzz/fuzz_procfs.c). Readers open one file, read it whole, and hand the buffer to
 * the parser, so a file that changes while it is read is at worst a slightly stale snapshot.
 *
 * PROCMAP_QUERY and its structure are defined here when the system headers predate Linux 6.11
 * (Debian 12 ships 6.1 headers); the layout is the kernel's ABI and carries its own size field.
 */
#include "procfs.h"

#include "error.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/fs.h>

/* Valgrind (Debian 12's) does not know PROCMAP_QUERY, so it takes the name the kernel writes for
 * uninitialised; when its header is there, the name is marked as written (a no-op outside
 * valgrind). */
#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#endif
#endif
#ifndef VALGRIND_MAKE_MEM_DEFINED
#define VALGRIND_MAKE_MEM_DEFINED(addr, len) ((void)(addr), (void)(len))
#endif

#ifndef PROCMAP_QUERY
struct procmap_query {
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
#define PROCFS_IOCTL_MAGIC 'f'
#define PROCMAP_QUERY _IOWR(PROCFS_IOCTL_MAGIC, 17, struct procmap_query)
#define PROCMAP_QUERY_VMA_READABLE 0x01
#define PROCMAP_QUERY_VMA_WRITABLE 0x02
#define PROCMAP_QUERY_VMA_EXECUTABLE 0x04
#define PROCMAP_QUERY_VMA_SHARED 0x08
#define PROCMAP_QUERY_COVERING_OR_NEXT_VMA 0x10
#define PROCMAP_QUERY_FILE_BACKED_VMA 0x20
#endif

static const char deleted_suffix[] = " (deleted)";

/* ---- files ---- */

void st_procfs_buf_free(st_procfs_buf_t *b)
{
    free(b->p);
    b->p = NULL;
    b->cap = 0;
}

/* Reads fd to its end into b. single: the file is one seq_file record (stat, status,
 * smaps_rollup are single_open files), which the kernel hands whole to a read that has room for
 * it, so a read that leaves room is the end and the read that would return 0 is saved. */
static int read_fd_into(int fd, st_procfs_buf_t *b, size_t *len, bool single)
{
    size_t used = 0;
    for (;;) {
        if (b->cap - used < 2 || b->p == NULL) {
            size_t ncap = b->cap ? b->cap * 2 : 16384;
            if (b->cap >= ST_PROCFS_MAX_BYTES)
                return ST_ETOOBIG;
            char *p = realloc(b->p, ncap);
            if (p == NULL)
                return -ENOMEM;
            b->p = p;
            b->cap = ncap;
        }
        size_t room = b->cap - used - 1;
        ssize_t n = read(fd, b->p + used, room);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            break;
        used += (size_t)n;
        if (single && (size_t)n < room)
            break;
    }
    b->p[used] = '\0';
    *len = used;
    return 0;
}

static int read_at(int dirfd, const char *name, st_procfs_buf_t *b, size_t *len, bool single)
{
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = read_fd_into(fd, b, len, single);
    close(fd);
    return rc;
}

int st_procfs_read_at(int dirfd, const char *name, st_procfs_buf_t *b, size_t *len)
{
    return read_at(dirfd, name, b, len, false);
}

int st_procfs_access_at(int dirfd, const char *name)
{
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    close(fd);
    return 0;
}

int st_procfs_read_file(const char *path, char **buf, size_t *len)
{
    st_procfs_buf_t b = {NULL, 0};
    int rc = read_at(AT_FDCWD, path, &b, len, false);
    if (rc < 0) {
        st_procfs_buf_free(&b);
        return rc;
    }
    *buf = b.p;
    return 0;
}

int st_procfs_open_pid(int pid)
{
    char path[32];
    if (pid > 0)
        snprintf(path, sizeof(path), "/proc/%d", pid);
    else
        snprintf(path, sizeof(path), "/proc/self");
    int fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

/* Runs an *_at reader on a /proc/PID fd opened for it. */
#define WITH_PID(pid, call)                                                                        \
    do {                                                                                           \
        int pidfd = st_procfs_open_pid(pid);                                                       \
        if (pidfd < 0)                                                                             \
            return pidfd;                                                                          \
        int rc_ = (call);                                                                          \
        close(pidfd);                                                                              \
        return rc_;                                                                                \
    } while (0)

/* ---- a bounded cursor ---- */

typedef struct cur {
    const char *p, *end;
} cur_t;

static void skip_spaces(cur_t *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
        c->p++;
}

/* Hex digit values + 1; 0 for anything else. */
static const unsigned char hex_digit[256] = {
    ['0'] = 1,  ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,  ['6'] = 7,  ['7'] = 8,
    ['8'] = 9,  ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
    ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
};

/* Parses an unsigned number in base 8, 10 or 16 (any decimal digit is taken in base 8, as it
 * always was); false when there is no digit or it overflows. Overflow is tested without a
 * division per digit, which was a fifth of parsing maps. */
static bool take_u64(cur_t *c, int base, uint64_t *out)
{
    uint64_t v = 0;
    const char *start = c->p;
    if (base == 16) {
        unsigned d;
        while (c->p < c->end && (d = hex_digit[(unsigned char)*c->p]) != 0) {
            if (v >> 60) /* v * 16 would not fit */
                return false;
            v = (v << 4) | (d - 1);
            c->p++;
        }
    } else {
        unsigned d;
        while (c->p < c->end && (d = (unsigned)(unsigned char)*c->p - '0') < 10u) {
            if (__builtin_mul_overflow(v, (uint64_t)base, &v) || __builtin_add_overflow(v, d, &v))
                return false;
            c->p++;
        }
    }
    if (c->p == start)
        return false;
    *out = v;
    return true;
}

static bool take_int(cur_t *c, int *out)
{
    bool neg = false;
    uint64_t v;
    if (c->p < c->end && *c->p == '-') {
        neg = true;
        c->p++;
    }
    if (!take_u64(c, 10, &v) || v > (uint64_t)INT32_MAX + (neg ? 1u : 0u))
        return false;
    *out = neg ? (int)(-(int64_t)v) : (int)v;
    return true;
}

static bool take_char(cur_t *c, char ch)
{
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return true;
    }
    return false;
}

/* Splits the next line off buf: [line, line+n) without its '\n'; false at the end. */
static bool next_line(cur_t *buf, cur_t *line)
{
    if (buf->p >= buf->end)
        return false;
    const char *nl = memchr(buf->p, '\n', (size_t)(buf->end - buf->p));
    line->p = buf->p;
    line->end = nl ? nl : buf->end;
    buf->p = nl ? nl + 1 : buf->end;
    return true;
}

/* Copies [p, end) into dst (size cap) with the " (deleted)" suffix removed into *deleted.
 * Returns true when the copy was truncated. */
static bool copy_path(const char *p, const char *end, char *dst, size_t cap, bool *deleted)
{
    size_t n = (size_t)(end - p);
    size_t sl = sizeof(deleted_suffix) - 1;
    *deleted = false;
    if (n >= sl && memcmp(end - sl, deleted_suffix, sl) == 0) {
        *deleted = true;
        n -= sl;
    }
    bool truncated = n >= cap;
    if (truncated)
        n = cap - 1;
    memcpy(dst, p, n);
    dst[n] = '\0';
    return truncated;
}

/* ---- maps ---- */

int st_procfs_parse_maps_line(const char *line, size_t len, st_vma_t *out)
{
    cur_t c = {line, line + len};
    uint64_t v;
    const char *nl = memchr(line, '\n', len);
    if (nl != NULL)
        c.end = nl;
    memset(out, 0, offsetof(st_vma_t, path));
    out->path[0] = '\0';
    if (!take_u64(&c, 16, &out->start) || !take_char(&c, '-') || !take_u64(&c, 16, &out->end) ||
        out->end < out->start || !take_char(&c, ' '))
        return ST_EFORMAT;
    if (c.end - c.p < 4)
        return ST_EFORMAT;
    static const char flags[4] = {'r', 'w', 'x', 's'};
    for (int i = 0; i < 4; i++, c.p++) {
        if (*c.p == flags[i])
            out->perms |= 1u << i;
        else if (!(*c.p == '-' || (i == 3 && *c.p == 'p')))
            return ST_EFORMAT;
    }
    skip_spaces(&c);
    if (!take_u64(&c, 16, &out->offset))
        return ST_EFORMAT;
    skip_spaces(&c);
    if (!take_u64(&c, 16, &v) || v > UINT32_MAX)
        return ST_EFORMAT;
    out->major = (unsigned)v;
    if (!take_char(&c, ':') || !take_u64(&c, 16, &v) || v > UINT32_MAX)
        return ST_EFORMAT;
    out->minor = (unsigned)v;
    skip_spaces(&c);
    if (!take_u64(&c, 10, &out->inode))
        return ST_EFORMAT;
    if (c.p < c.end && *c.p != ' ' && *c.p != '\t')
        return ST_EFORMAT;
    skip_spaces(&c);
    out->truncated = copy_path(c.p, c.end, out->path, sizeof(out->path), &out->deleted);
    return 0;
}

int st_procfs_parse_maps(const char *buf, size_t len, st_vma_cb cb, void *arg, size_t *bad)
{
    cur_t all = {buf, buf + len}, line;
    st_vma_t *vma = malloc(sizeof(*vma));
    int rc = 0;
    if (vma == NULL)
        return -ENOMEM;
    while (next_line(&all, &line)) {
        if (line.p == line.end)
            continue;
        if (st_procfs_parse_maps_line(line.p, (size_t)(line.end - line.p), vma) < 0) {
            if (bad != NULL)
                (*bad)++;
            continue;
        }
        if ((rc = cb(vma, arg)) != 0)
            break;
    }
    free(vma);
    return rc;
}

typedef struct filter_arg {
    st_vma_cb cb;
    void *arg;
} filter_arg_t;

static int filter_shared_files(const st_vma_t *vma, void *arg)
{
    filter_arg_t *f = arg;
    if (!(vma->perms & ST_VMA_SHARED) || vma->path[0] != '/') /* SysV inode 0 is shmid 0 */
        return 0;
    return f->cb(vma, f->arg);
}

static int read_vmas_text(int pidfd, st_procfs_buf_t *buf, bool shared_files_only, st_vma_cb cb,
                          void *arg)
{
    st_procfs_buf_t local = {NULL, 0};
    st_procfs_buf_t *b = buf ? buf : &local;
    size_t len = 0;
    int rc = read_at(pidfd, "maps", b, &len, false);
    if (rc == 0) {
        filter_arg_t f = {cb, arg};
        rc = shared_files_only ? st_procfs_parse_maps(b->p, len, filter_shared_files, &f, NULL)
                               : st_procfs_parse_maps(b->p, len, cb, arg, NULL);
    }
    st_procfs_buf_free(&local);
    return rc;
}

/* Asks PROCMAP_QUERY for the VMA covering or following addr (with shared_files_only: the next
 * shared file-backed one) into *vma, its name through name (PATH_MAX bytes). 0, -ENOENT when
 * there is none, or -errno (-ENOTTY/-EINVAL: the kernel lacks the ioctl). pre: fd is an open
 * /proc/PID/maps. */
static int query_vma(int fd, uint64_t addr, bool shared_files_only, char *name, st_vma_t *vma)
{
    struct procmap_query q;
    memset(&q, 0, sizeof(q));
    q.size = sizeof(q);
    q.query_flags = PROCMAP_QUERY_COVERING_OR_NEXT_VMA;
    if (shared_files_only)
        q.query_flags |= PROCMAP_QUERY_FILE_BACKED_VMA | PROCMAP_QUERY_VMA_SHARED;
    q.query_addr = addr;
    q.vma_name_addr = (uint64_t)(uintptr_t)name;
    q.vma_name_size = PATH_MAX;
    while (ioctl(fd, PROCMAP_QUERY, &q) < 0)
        if (errno != EINTR)
            return -errno;
    if (q.vma_name_size > 0 && q.vma_name_size <= PATH_MAX)
        (void)VALGRIND_MAKE_MEM_DEFINED(name, q.vma_name_size);
    memset(vma, 0, offsetof(st_vma_t, path));
    vma->start = q.vma_start;
    vma->end = q.vma_end;
    vma->offset = q.vma_offset;
    vma->major = q.dev_major;
    vma->minor = q.dev_minor;
    vma->inode = q.inode;
    vma->page_size = q.vma_page_size;
    if (q.vma_flags & PROCMAP_QUERY_VMA_READABLE)
        vma->perms |= ST_VMA_READ;
    if (q.vma_flags & PROCMAP_QUERY_VMA_WRITABLE)
        vma->perms |= ST_VMA_WRITE;
    if (q.vma_flags & PROCMAP_QUERY_VMA_EXECUTABLE)
        vma->perms |= ST_VMA_EXEC;
    if (q.vma_flags & PROCMAP_QUERY_VMA_SHARED)
        vma->perms |= ST_VMA_SHARED;
    /* vma_name_size is the length including the NUL; 0 when the VMA has no name. */
    size_t n = q.vma_name_size ? q.vma_name_size - 1 : 0;
    if (n >= PATH_MAX)
        n = PATH_MAX - 1;
    vma->truncated =
        copy_path(name, name + strnlen(name, n), vma->path, sizeof(vma->path), &vma->deleted);
    return 0;
}

/* Walks VMAs with PROCMAP_QUERY from addr: ask for the VMA covering or following addr, then
 * continue at its end. vma and name (PATH_MAX bytes) are the caller's room. pre: fd is an open
 * /proc/PID/maps. */
static int walk_ioctl(int fd, uint64_t addr, bool shared_files_only, st_vma_cb cb, void *arg,
                      st_vma_t *vma, char *name)
{
    for (;;) {
        int rc = query_vma(fd, addr, shared_files_only, name, vma);
        if (rc == -ENOENT) /* no VMA at or after addr */
            return 0;
        if (rc < 0)
            return rc;
        if (vma->end <= addr) /* the kernel must make progress; never loop */
            return ST_EFORMAT;
        addr = vma->end;
        if ((!shared_files_only || vma->path[0] == '/') && (rc = cb(vma, arg)) != 0)
            return rc;
    }
}

static int read_vmas_ioctl(int fd, bool shared_files_only, st_vma_cb cb, void *arg)
{
    int rc = -ENOMEM;
    st_vma_t *vma = malloc(sizeof(*vma));
    char *name = malloc(PATH_MAX);
    if (vma != NULL && name != NULL)
        rc = walk_ioctl(fd, 0, shared_files_only, cb, arg, vma, name);
    free(vma);
    free(name);
    return rc;
}

/* ---- ST_MAPS_AUTO: the text where shared file mappings are dense, the ioctl where sparse ---- */

/* What the two sources cost here (Linux 6.18 in a VM): the text ~0.35 us per VMA line of any
 * kind (the kernel formats it, we parse it), PROCMAP_QUERY ~1.7 us per VMA it returns (one
 * syscall each, but it skips the VMAs a caller does not want in the kernel). So the text wins
 * when more than about one line in AUTO_DENSITY is wanted, the ioctl otherwise. The first
 * AUTO_PROBE bytes of text tell which kind of process this is: a program with hundreds of
 * libraries and a few shared mappings goes on with the ioctl from where the text stopped; one
 * made of shared mappings (the bench's, a browser's renderer pool) reads on. */
enum { AUTO_PROBE = 4096, AUTO_DENSITY = 5 };

typedef struct auto_walk {
    int fd;
    bool shared_files_only;
    st_vma_cb cb;
    void *arg;
    st_vma_t *vma;
    char *name;         /* PATH_MAX bytes for query_vma */
    size_t lines, kept; /* complete lines parsed; of them, wanted by the caller */
    uint64_t next;      /* end of the last complete line's VMA (while probing) */
    bool probing;       /* in the first AUTO_PROBE bytes, where lines and next count */
    bool used_ioctl, no_ioctl;
} auto_walk_t;

/* The text escapes a '\n' in a file name as "\012" (and nothing else, so a name holding those
 * four characters reads the same): only the ioctl can tell the name of such a VMA. */
static bool escaped_name(const st_vma_t *vma)
{
    return strstr(vma->path, "\\012") != NULL;
}

/* Whether a maps line [p, end) is of a shared VMA ('s' in its permissions, the 4th character
 * after the range): false for the private lines that are most of most processes, which are
 * then not parsed. True also when the line cannot be read this way (the parser decides). */
static bool shared_line(const char *p, const char *end)
{
    const char *sp = memchr(p, ' ', (size_t)(end - p));
    return sp == NULL || end - sp < 5 || sp[4] == 's';
}

/* A private line while probing: only its end counts (where the ioctl would go on). */
static void probe_line(auto_walk_t *w, const char *p, const char *end)
{
    cur_t c = {p, end};
    uint64_t start, stop;
    if (take_u64(&c, 16, &start) && take_char(&c, '-') && take_u64(&c, 16, &stop) &&
        stop >= start) {
        w->lines++;
        w->next = stop;
    }
}

/* Parses the complete lines of [p, end) and calls the caller for the wanted ones. Returns the
 * cb's non-zero value or -errno; *used is how many bytes were consumed (the partial last line,
 * when !last, is left for the next read). */
static int auto_lines(auto_walk_t *w, const char *p, const char *end, bool last, size_t *used)
{
    const char *start = p;
    int rc = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL && !last)
            break;
        const char *le = nl ? nl : end;
        if (w->shared_files_only && !shared_line(p, le)) {
            if (w->probing)
                probe_line(w, p, le);
            p = nl ? nl + 1 : end;
            continue;
        }
        if (le > p && st_procfs_parse_maps_line(p, (size_t)(le - p), w->vma) == 0) {
            st_vma_t *v = w->vma;
            w->lines++;
            w->next = v->end;
            if (!w->shared_files_only || ((v->perms & ST_VMA_SHARED) && v->path[0] == '/')) {
                w->kept++;
                if (escaped_name(v) && !w->no_ioctl) {
                    uint64_t want = v->start;
                    int q = query_vma(w->fd, want, false, w->name, v);
                    if (q == -ENOTTY || q == -EINVAL)
                        w->no_ioctl = true;
                    else if (q < 0 && q != -ENOENT)
                        return q;
                    w->used_ioctl = w->used_ioctl || q == 0;
                    if (q != 0 || v->start != want) /* gone meanwhile: the text's word */
                        (void)st_procfs_parse_maps_line(p, (size_t)(le - p), v);
                }
                if ((rc = w->cb(v, w->arg)) != 0)
                    return rc;
            }
        }
        p = nl ? nl + 1 : end;
    }
    *used = (size_t)(p - start);
    return 0;
}

/* Reads maps through fd from its current position into b (which holds `have` unparsed bytes)
 * to the end, parsing as it goes. */
static int auto_text_rest(auto_walk_t *w, st_procfs_buf_t *b, size_t have)
{
    for (;;) {
        if (b->cap - have < 4096) {
            if (b->cap >= ST_PROCFS_MAX_BYTES)
                return ST_ETOOBIG;
            char *p = realloc(b->p, b->cap * 2);
            if (p == NULL)
                return -ENOMEM;
            b->p = p;
            b->cap *= 2;
        }
        ssize_t n = read(w->fd, b->p + have, b->cap - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        size_t used = 0;
        int rc = auto_lines(w, b->p, b->p + have + (size_t)n, n == 0, &used);
        if (rc != 0 || n == 0)
            return rc;
        have += (size_t)n - used;
        memmove(b->p, b->p + used, have);
    }
}

static int read_vmas_auto(int fd, st_procfs_buf_t *b, bool shared_files_only, st_vma_cb cb,
                          void *arg, st_maps_method_t *used)
{
    int rc = 0;
    st_vma_t vma; /* on the stack: a reading thread of the scanner calls this once per process */
    char name[PATH_MAX];
    auto_walk_t w = {fd, shared_files_only, cb, arg, &vma, name, 0, 0, 0, true, false, false};
    if (b->cap < 4 * AUTO_PROBE) {
        char *p = realloc(b->p, 4 * AUTO_PROBE);
        if (p == NULL) {
            rc = -ENOMEM;
            goto out;
        }
        b->p = p;
        b->cap = 4 * AUTO_PROBE;
    }
    ssize_t n;
    while ((n = read(fd, b->p, AUTO_PROBE)) < 0 && errno == EINTR)
        ;
    if (n < 0) {
        rc = -errno;
        goto out;
    }
    size_t consumed = 0;
    if ((rc = auto_lines(&w, b->p, b->p + n, n == 0, &consumed)) != 0 || n == 0)
        goto out;
    w.probing = false;
    if (w.lines > 0 && w.kept * AUTO_DENSITY < w.lines && !w.no_ioctl) {
        rc = walk_ioctl(fd, w.next, shared_files_only, cb, arg, &vma, name);
        if (rc != -ENOTTY && rc != -EINVAL) {
            w.used_ioctl = true;
            goto out;
        }
        w.no_ioctl = true; /* no ioctl: the text it is, from where it stopped */
    }
    memmove(b->p, b->p + consumed, (size_t)n - consumed);
    rc = auto_text_rest(&w, b, (size_t)n - consumed);
out:
    if (used != NULL)
        *used = w.used_ioctl ? (w.lines > 0 ? ST_MAPS_AUTO : ST_MAPS_PROCMAP) : ST_MAPS_TEXT;
    return rc;
}

int st_procfs_read_vmas_at(int pidfd, st_procfs_buf_t *buf, st_maps_method_t method,
                           bool shared_files_only, st_vma_cb cb, void *arg, st_maps_method_t *used)
{
    if (method == ST_MAPS_TEXT) {
        if (used != NULL)
            *used = ST_MAPS_TEXT;
        return read_vmas_text(pidfd, buf, shared_files_only, cb, arg);
    }
    int fd = openat(pidfd, "maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc;
    if (method == ST_MAPS_AUTO) {
        st_procfs_buf_t local = {NULL, 0};
        rc = read_vmas_auto(fd, buf ? buf : &local, shared_files_only, cb, arg, used);
        st_procfs_buf_free(&local);
    } else {
        rc = read_vmas_ioctl(fd, shared_files_only, cb, arg);
        if (used != NULL)
            *used = ST_MAPS_PROCMAP;
    }
    close(fd);
    return rc;
}

int st_procfs_read_vmas(int pid, st_maps_method_t method, bool shared_files_only, st_vma_cb cb,
                        void *arg, st_maps_method_t *used)
{
    WITH_PID(pid, st_procfs_read_vmas_at(pidfd, NULL, method, shared_files_only, cb, arg, used));
}

/* ---- "Key:   N kB" files ---- */

/* If line is "<key>: <n> kB", stores n*1024 in *out. */
static bool kv_kb(cur_t line, const char *key, uint64_t *out)
{
    size_t kl = strlen(key);
    if ((size_t)(line.end - line.p) <= kl || memcmp(line.p, key, kl) != 0 || line.p[kl] != ':')
        return false;
    line.p += kl + 1;
    skip_spaces(&line);
    uint64_t v;
    if (!take_u64(&line, 10, &v) || v > UINT64_MAX / 1024)
        return false;
    *out = v * 1024;
    return true;
}

/* True when line looks like a VMA header "start-end perms ..." (smaps). */
static bool vma_header(cur_t line, uint64_t *start, uint64_t *end)
{
    return take_u64(&line, 16, start) && take_char(&line, '-') && take_u64(&line, 16, end) &&
           take_char(&line, ' ');
}

int st_procfs_parse_smaps(const char *buf, size_t len, st_smaps_cb cb, void *arg)
{
    cur_t all = {buf, buf + len}, line;
    bool in_vma = false;
    uint64_t start = 0, end = 0, rss = 0, swap = 0, v;
    int rc = 0;
    while (next_line(&all, &line)) {
        uint64_t s, e;
        if (vma_header(line, &s, &e)) {
            if (in_vma && (rc = cb(start, end, rss, swap, arg)) != 0)
                return rc;
            in_vma = true;
            start = s;
            end = e;
            rss = swap = 0;
        } else if (kv_kb(line, "Rss", &v)) {
            rss = v;
        } else if (kv_kb(line, "Swap", &v)) {
            swap = v;
        }
    }
    if (in_vma)
        rc = cb(start, end, rss, swap, arg);
    return rc;
}

int st_procfs_parse_smaps_rollup(const char *buf, size_t len, st_proc_mem_t *mem)
{
    cur_t all = {buf, buf + len}, line;
    uint64_t v;
    while (next_line(&all, &line)) {
        if (kv_kb(line, "Rss", &v)) {
            mem->rss = v;
            mem->present |= ST_MEM_RSS;
        } else if (kv_kb(line, "Pss", &v)) {
            mem->pss = v;
            mem->present |= ST_MEM_PSS;
        } else if (kv_kb(line, "Pss_Shmem", &v)) {
            mem->pss_shmem = v;
            mem->present |= ST_MEM_PSS_SHMEM;
        } else if (kv_kb(line, "Private_Clean", &v) || kv_kb(line, "Private_Dirty", &v) ||
                   kv_kb(line, "Private_Hugetlb", &v)) {
            mem->private_bytes += v;
            mem->present |= ST_MEM_PRIVATE;
        } else if (kv_kb(line, "Swap", &v)) {
            mem->swap = v;
            mem->present |= ST_MEM_SWAP;
        }
    }
    return 0;
}

int st_procfs_parse_status(const char *buf, size_t len, st_proc_mem_t *mem)
{
    cur_t all = {buf, buf + len}, line;
    uint64_t v;
    while (next_line(&all, &line)) {
        if (kv_kb(line, "RssAnon", &v)) {
            mem->rss_anon = v;
            mem->present |= ST_MEM_RSS_ANON;
        } else if (kv_kb(line, "RssShmem", &v)) {
            mem->rss_shmem = v;
            mem->present |= ST_MEM_RSS_SHMEM;
        } else if (kv_kb(line, "VmSwap", &v)) {
            mem->vm_swap = v;
            mem->present |= ST_MEM_VM_SWAP;
        } else if (kv_kb(line, "VmRSS", &v)) {
            mem->vm_rss = v;
            mem->present |= ST_MEM_VM_RSS;
        }
    }
    return 0;
}

void st_procfs_totals_from_mem(const st_proc_mem_t *m, st_totals_t *out)
{
    memset(out, 0, sizeof(*out));
    if (m->present & ST_MEM_RSS) {
        out->resident_set_bytes = m->rss;
        out->present |= ST_TOTAL_HAS(resident_set_bytes);
    } else if (m->present & ST_MEM_VM_RSS) {
        out->resident_set_bytes = m->vm_rss;
        out->present |= ST_TOTAL_HAS(resident_set_bytes);
    }
    if ((m->present & ST_MEM_RSS_ANON) && (m->present & ST_MEM_VM_SWAP)) {
        out->private_footprint_bytes = m->rss_anon + m->vm_swap;
        out->present |= ST_TOTAL_HAS(private_footprint_bytes);
    }
    if (m->present & ST_MEM_PSS) {
        out->pss_bytes = m->pss;
        out->present |= ST_TOTAL_HAS(pss_bytes);
    }
    if (m->present & ST_MEM_PRIVATE) {
        out->uss_bytes = m->private_bytes;
        out->present |= ST_TOTAL_HAS(uss_bytes);
    }
    if (m->present & ST_MEM_VM_SWAP) {
        out->swap_bytes = m->vm_swap;
        out->present |= ST_TOTAL_HAS(swap_bytes);
    }
    if (m->present & ST_MEM_RSS_SHMEM) {
        out->rss_shmem_bytes = m->rss_shmem;
        out->present |= ST_TOTAL_HAS(rss_shmem_bytes);
    }
}

int st_procfs_read_totals_at(int pidfd, st_procfs_buf_t *buf, st_totals_t *out)
{
    st_procfs_buf_t local = {NULL, 0};
    st_procfs_buf_t *b = buf ? buf : &local;
    size_t len = 0;
    st_proc_mem_t mem;
    memset(&mem, 0, sizeof(mem));
    int rc = read_at(pidfd, "status", b, &len, true);
    if (rc == 0) {
        st_procfs_parse_status(b->p, len, &mem);
        rc = read_at(pidfd, "smaps_rollup", b, &len, true);
    }
    if (rc == 0) {
        st_procfs_parse_smaps_rollup(b->p, len, &mem);
        st_procfs_totals_from_mem(&mem, out);
    }
    st_procfs_buf_free(&local);
    return rc;
}

int st_procfs_read_totals(int pid, st_totals_t *out)
{
    WITH_PID(pid, st_procfs_read_totals_at(pidfd, NULL, out));
}

/* ---- stat ---- */

int st_procfs_parse_stat(const char *buf, size_t len, st_proc_stat_t *out)
{
    cur_t c = {buf, buf + len};
    memset(out, 0, sizeof(*out));
    if (!take_int(&c, &out->pid) || !take_char(&c, ' ') || !take_char(&c, '('))
        return ST_EFORMAT;
    const char *comm = c.p, *close = NULL;
    for (const char *p = c.p; p < c.end; p++)
        if (*p == ')')
            close = p;
    if (close == NULL)
        return ST_EFORMAT;
    size_t n = (size_t)(close - comm);
    if (n >= sizeof(out->comm))
        n = sizeof(out->comm) - 1;
    memcpy(out->comm, comm, n);
    out->comm[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if (out->comm[i] == '\0' || out->comm[i] == '\n')
            out->comm[i] = '?';
    c.p = close + 1;
    if (!take_char(&c, ' ') || c.p >= c.end)
        return ST_EFORMAT;
    out->state = *c.p++;
    if (!take_char(&c, ' ') || !take_int(&c, &out->ppid))
        return ST_EFORMAT;
    /* Fields 5..21 are skipped; field 22 is starttime. We are after field 4 (ppid). */
    for (int field = 5; field <= 22; field++) {
        if (!take_char(&c, ' '))
            return ST_EFORMAT;
        if (field == 22)
            return take_u64(&c, 10, &out->starttime) ? 0 : ST_EFORMAT;
        if (field == 9) {
            uint64_t flags;
            if (!take_u64(&c, 10, &flags) || flags > UINT32_MAX)
                return ST_EFORMAT;
            out->flags = (unsigned)flags;
            continue;
        }
        while (c.p < c.end && *c.p != ' ')
            c.p++;
    }
    return ST_EFORMAT;
}

int st_procfs_read_stat_at(int pidfd, st_procfs_buf_t *buf, st_proc_stat_t *out)
{
    st_procfs_buf_t local = {NULL, 0};
    st_procfs_buf_t *b = buf ? buf : &local;
    size_t len = 0;
    int rc = read_at(pidfd, "stat", b, &len, true);
    if (rc == 0)
        rc = st_procfs_parse_stat(b->p, len, out);
    st_procfs_buf_free(&local);
    return rc;
}

int st_procfs_read_stat(int pid, st_proc_stat_t *out)
{
    WITH_PID(pid, st_procfs_read_stat_at(pidfd, NULL, out));
}

/* ---- fds ---- */

/* The fd directory is read with getdents64 into a stack buffer: no DIR allocation and no fcntl
 * that fdopendir would make. Each fd is stat'ed first and its link read only when the caller
 * wants it: most fds of most processes are pipes, sockets, terminals and files on disks, which
 * a stat alone rules out. */
int st_procfs_read_fds_at(int pidfd, st_fd_want_cb want, st_fd_cb cb, void *arg)
{
    int rc = 0;
    st_fd_info_t info;
    char dents[8192] __attribute__((aligned(8)));
    int dfd = openat(pidfd, "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -errno;
    for (;;) {
        ssize_t got = getdents64(dfd, dents, sizeof(dents));
        if (got < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            goto out;
        }
        if (got == 0)
            break;
        for (size_t off = 0; off < (size_t)got;) {
            const struct dirent64 *de = (const struct dirent64 *)(dents + off);
            off += de->d_reclen;
            char *endp = NULL;
            long fd = strtol(de->d_name, &endp, 10);
            if (de->d_name[0] < '0' || de->d_name[0] > '9' || *endp != '\0' || fd < 0 ||
                fd > INT32_MAX)
                continue;
            if (fstatat(dfd, de->d_name, &info.st, 0) < 0)
                continue; /* closed meanwhile */
            if (want != NULL && !want(&info.st, arg))
                continue;
            char target[PATH_MAX];
            ssize_t n = readlinkat(dfd, de->d_name, target, sizeof(target) - 1);
            if (n <= 0 || target[0] != '/')
                continue; /* closed meanwhile, or socket:[..], pipe:[..], anon_inode:... */
            info.fd = (int)fd;
            copy_path(target, target + n, info.target, sizeof(info.target), &info.deleted);
            if ((rc = cb(&info, arg)) != 0)
                goto out;
        }
    }
out:
    close(dfd);
    return rc;
}

int st_procfs_read_fds(int pid, st_fd_want_cb want, st_fd_cb cb, void *arg)
{
    WITH_PID(pid, st_procfs_read_fds_at(pidfd, want, cb, arg));
}

/* ---- sysvipc ---- */

int st_procfs_parse_sysvipc_shm(const char *buf, size_t len, st_sysv_cb cb, void *arg, size_t *bad)
{
    cur_t all = {buf, buf + len}, line;
    int rc = 0;
    while (next_line(&all, &line)) {
        st_sysv_seg_t s;
        memset(&s, 0, sizeof(s));
        skip_spaces(&line);
        if (line.p == line.end || (!isdigit((unsigned char)*line.p) && *line.p != '-')) {
            /* the header line ("key shmid perms ...") or an empty line */
            continue;
        }
        uint64_t perms = 0, size = 0, nattch = 0, uid = 0, v = 0;
        int key = 0, shmid = 0, cpid = 0, lpid = 0;
        bool ok = take_int(&line, &key);
        skip_spaces(&line);
        ok = ok && take_int(&line, &shmid);
        skip_spaces(&line);
        ok = ok && take_u64(&line, 8, &perms);
        skip_spaces(&line);
        ok = ok && take_u64(&line, 10, &size);
        skip_spaces(&line);
        ok = ok && take_int(&line, &cpid);
        skip_spaces(&line);
        ok = ok && take_int(&line, &lpid);
        skip_spaces(&line);
        ok = ok && take_u64(&line, 10, &nattch);
        skip_spaces(&line);
        ok = ok && take_u64(&line, 10, &uid);
        if (!ok || shmid < 0 || uid > UINT32_MAX) {
            if (bad != NULL)
                (*bad)++;
            continue;
        }
        s.key = key;
        s.shmid = shmid;
        s.perms = (unsigned)perms;
        s.size = size;
        s.cpid = cpid;
        s.lpid = lpid;
        s.nattch = nattch;
        s.uid = (unsigned)uid;
        /* gid cuid cgid atime dtime ctime, then rss swap */
        uint64_t rest[8];
        int got = 0;
        for (; got < 8; got++) {
            skip_spaces(&line);
            if (!take_u64(&line, 10, &v))
                break;
            rest[got] = v;
        }
        if (got == 8) {
            s.rss = rest[6];
            s.swap = rest[7];
            s.have_rss = true;
        }
        if ((rc = cb(&s, arg)) != 0)
            return rc;
    }
    return 0;
}

/* ---- mountinfo ---- */

/* Next space-separated field of line into dst (cap); false when there is none. */
static bool take_field(cur_t *line, char *dst, size_t cap)
{
    skip_spaces(line);
    const char *s = line->p;
    while (line->p < line->end && *line->p != ' ')
        line->p++;
    size_t n = (size_t)(line->p - s);
    if (n == 0)
        return false;
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, s, n);
    dst[n] = '\0';
    return true;
}

int st_procfs_parse_mountinfo(const char *buf, size_t len, st_mount_cb cb, void *arg)
{
    cur_t all = {buf, buf + len}, line;
    char root[PATH_MAX], mnt[PATH_MAX], fstype[64], tmp[PATH_MAX];
    int rc = 0;
    while (next_line(&all, &line)) {
        uint64_t id, parent, major, minor;
        skip_spaces(&line);
        if (!take_u64(&line, 10, &id))
            continue;
        skip_spaces(&line);
        if (!take_u64(&line, 10, &parent))
            continue;
        skip_spaces(&line);
        if (!take_u64(&line, 10, &major) || !take_char(&line, ':') ||
            !take_u64(&line, 10, &minor) || major > UINT32_MAX || minor > UINT32_MAX)
            continue;
        if (!take_field(&line, root, sizeof(root)) || !take_field(&line, mnt, sizeof(mnt)))
            continue;
        bool sep = false;
        while (take_field(&line, tmp, sizeof(tmp))) {
            if (strcmp(tmp, "-") == 0) {
                sep = true;
                break;
            }
        }
        if (!sep || !take_field(&line, fstype, sizeof(fstype)))
            continue;
        if ((rc = cb((unsigned)major, (unsigned)minor, fstype, mnt, arg)) != 0)
            return rc;
    }
    return 0;
}

int st_procfs_ns_inode_at(int pidfd, const char *name, uint64_t *out)
{
    char path[64];
    struct stat st;
    snprintf(path, sizeof(path), "ns/%s", name);
    if (fstatat(pidfd, path, &st, 0) < 0)
        return -errno;
    *out = (uint64_t)st.st_ino;
    return 0;
}

int st_procfs_ns_inode(int pid, const char *name, uint64_t *out)
{
    WITH_PID(pid, st_procfs_ns_inode_at(pidfd, name, out));
}
