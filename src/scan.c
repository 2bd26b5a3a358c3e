/* SPDX-License-Identifier: MIT
 *
 * The /proc scanner (see scan.h for what it finds, how it measures and whom it names owner).
 *
 * Shape of a scan: each process is read whole (stat, totals, VMAs, fds) into a private record list
 * and only then committed to the object table, so a process that vanishes half-way leaves nothing
 * behind. Objects live in one array indexed by an open-addressing table on their identity (the
 * key's fields, not the formatted key). After all processes: SysV segments and unheld /dev/shm
 * files are added, every object is measured once, and only measured objects are written to the
 * dump with their holders.
 */
#include "scan.h"
#include "array.h"

#include "error.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

/* ---- records and objects ---- */

/* What identifies an object: its key's fields (DESIGN §1) without formatting the key. SysV: ns is
 * the IPC namespace inode and ino the shmid (the device is not part of the key); others: the
 * backing inode's (major, minor, ino) and ns 0. */
typedef struct ident {
    st_kind_t kind;
    unsigned major, minor;
    uint64_t ino;
    uint64_t ns;
} ident_t;

typedef struct rec {
    ident_t id;
    uint64_t start, end, offset; /* a VMA; end == 0 for an fd */
    int fd;                      /* -1 for a VMA */
    size_t name;                 /* offset in the reader's name arena */
} rec_t;

typedef struct vma_ref {
    uint64_t start, end, offset;
    size_t obj;
} vma_ref_t;

typedef struct proc {
    int pid;
    st_proc_stat_t stat;
    st_totals_t totals;
    uint64_t ipcns; /* read when the first SysV mapping is seen */
    bool have_ipcns;
    uint64_t mntns; /* read when the first file needs its filesystem looked up */
    bool have_mntns;
    vma_ref_t *vmas;
    size_t n_vmas, cap_vmas;
    bool smaps_read;
} proc_t;

typedef struct holder {
    size_t proc;
    uint64_t mapped;
    size_t n_vmas;
    uint64_t start, end; /* its first VMA of the object, for map_files */
    int fd;              /* an fd to the object, or -1 */
} holder_t;

typedef struct obj {
    char key[ST_KEY_MAX];
    st_kind_t kind;
    char *name;
    unsigned major, minor;
    uint64_t ino;
    uint64_t sysv_ns; /* sysv: the IPC namespace of its key */
    holder_t *holders;
    size_t n_holders, cap_holders;
    char *path; /* a path of its own (a /dev/shm file), or NULL */
    bool have_seg;
    st_sysv_seg_t seg;
    bool measured;
    st_residency_t res;
    uint64_t lb_rss, lb_swap, lb_virt; /* smaps lower bound inputs */
    bool lb_needed;                    /* no exact way: the lower bound, taken after measuring */
    int lb_denied;                     /* why (an errno), or 0: another IPC namespace */
    int mrc;                           /* < 0: every way to it vanished (left out) */
} obj_t;

/* FS_UNKNOWN: a device the mount table does not show (the kernel's internal mounts) */
enum { FS_OTHER, FS_TMPFS, FS_HUGETLBFS, FS_UNKNOWN };

typedef struct mount_ent {
    unsigned major, minor;
    int fs;
} mount_ent_t;

typedef struct mount_ns {
    uint64_t ns;
    mount_ent_t *ents;
    size_t n, cap;
} mount_ns_t;

typedef struct scan {
    const st_scan_options_t *o;
    st_global_dump_t *dump;
    proc_t *procs;
    size_t n_procs, cap_procs;
    obj_t *objs;
    size_t n_objs, cap_objs;
    size_t *table; /* object index + 1; 0 = empty */
    size_t table_cap;
    bool have_shm_dev;
    unsigned shm_major, shm_minor;
    uint64_t self_ipcns;
    mount_ns_t *mnts;
    size_t n_mnts, cap_mnts;
    st_sysv_seg_t *segs;
    size_t n_segs, cap_segs;
    bool segs_read;
    pthread_mutex_t mnt_lock; /* mnts, shared by the reading threads */
    /* fds of measured objects not yet closed, from every measuring thread (their numbers
     * interleave, so only together do they form runs): closed in runs with one close_range each,
     * every CLOSE_BATCH of them, or with opts->close_async all at once after the scan */
    pthread_mutex_t close_lock;
    int *closing;
    size_t n_closing, cap_closing;
    /* set once a measuring thread ran out of fds: from then on no thread keeps directory fds
     * beyond the one it is using, so what the others hold cannot starve it (try_in) */
    atomic_bool fds_short;
    /* set when even waiting found none (the limit is below what the process itself holds):
     * later objects try once, so such a scan waits once, not once per object */
    atomic_bool fds_none;
} scan_t;

/* What one measuring thread keeps to itself. */
typedef struct meas {
    scan_t *s;
    /* /proc/PID/map_files and /proc/PID/fd of each scanned process (2 * index + 0 or 1), opened
     * when first needed (objects are measured in the order of their global node names, so their
     * holders come in no particular order), or -1 */
    int *dirs;
    size_t n_dirs; /* open among them */
} meas_t;

/* At most this many directory fds per measuring thread: beyond, they are all closed and opened
 * again as needed (a scan of thousands of processes under a low RLIMIT_NOFILE). */
enum { MAX_DIRS = 512 };

static bool gone(int rc)
{
    return rc == -ENOENT || rc == -ESRCH;
}

/* ---- object index ---- */

static uint64_t ident_hash(const ident_t *id)
{
    uint64_t h = (uint64_t)id->kind * 0x9e3779b97f4a7c15ull;
    if (id->kind == ST_KIND_SYSV)
        h ^= id->ns * 0xff51afd7ed558ccdull;
    else
        h ^= (((uint64_t)id->major << 32) | id->minor) * 0xff51afd7ed558ccdull;
    h ^= id->ino * 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 32);
}

static bool ident_eq(const ident_t *a, const obj_t *o)
{
    if (a->kind != o->kind || a->ino != o->ino)
        return false;
    return a->kind == ST_KIND_SYSV ? a->ns == o->sysv_ns
                                   : a->major == o->major && a->minor == o->minor;
}

static int table_rehash(scan_t *s, size_t cap)
{
    size_t *t = calloc(cap, sizeof(*t));
    if (t == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < s->n_objs; i++) {
        const obj_t *o = &s->objs[i];
        ident_t id = {o->kind, o->major, o->minor, o->ino, o->sysv_ns};
        size_t h = (size_t)ident_hash(&id) & (cap - 1);
        while (t[h] != 0)
            h = (h + 1) & (cap - 1);
        t[h] = i + 1;
    }
    free(s->table);
    s->table = t;
    s->table_cap = cap;
    return 0;
}

static obj_t *obj_find(const scan_t *s, const ident_t *id, size_t *idx)
{
    if (s->table_cap == 0)
        return NULL;
    size_t h = (size_t)ident_hash(id) & (s->table_cap - 1);
    while (s->table[h] != 0) {
        obj_t *o = &s->objs[s->table[h] - 1];
        if (ident_eq(id, o)) {
            if (idx != NULL)
                *idx = s->table[h] - 1;
            return o;
        }
        h = (h + 1) & (s->table_cap - 1);
    }
    return NULL;
}

/* Finds or adds the object id (name: its path or memfd name, used when adding). */
static int obj_get(scan_t *s, const ident_t *id, const char *name, size_t *idx)
{
    if (obj_find(s, id, idx) != NULL)
        return 0;
    int rc;
    if ((s->n_objs + 1) * 2 > s->table_cap &&
        (rc = table_rehash(s, s->table_cap ? s->table_cap * 2 : 256)) < 0)
        return rc;
    if (s->n_objs == s->cap_objs) { /* not zeroed: each object is, as it is added */
        size_t ncap = s->cap_objs ? 2 * s->cap_objs : 256;
        obj_t *p = realloc(s->objs, ncap * sizeof(*p));
        if (p == NULL)
            return -ENOMEM;
        s->objs = p;
        s->cap_objs = ncap;
    }
    obj_t *o = &s->objs[s->n_objs];
    memset(o, 0, sizeof(*o));
    if (id->kind == ST_KIND_SYSV)
        rc = st_key_format_sysv(o->key, sizeof(o->key), id->ns, (int)id->ino);
    else
        rc = st_key_format(o->key, sizeof(o->key), id->kind, id->major, id->minor, id->ino);
    if (rc < 0)
        return rc;
    o->kind = id->kind;
    o->major = id->major;
    o->minor = id->minor;
    o->ino = id->ino;
    o->sysv_ns = id->kind == ST_KIND_SYSV ? id->ns : 0;
    if (name != NULL && (o->name = strdup(name)) == NULL)
        return -ENOMEM;
    size_t h = (size_t)ident_hash(id) & (s->table_cap - 1);
    while (s->table[h] != 0)
        h = (h + 1) & (s->table_cap - 1);
    s->table[h] = s->n_objs + 1;
    *idx = s->n_objs++;
    return 0;
}

/* The holder of o for process proc, added when missing. Processes are committed one after the
 * other, so if proc already holds o it is the last holder: O(1) however many holders o has. */
static holder_t *obj_holder(obj_t *o, size_t proc)
{
    if (o->n_holders > 0 && o->holders[o->n_holders - 1].proc == proc)
        return &o->holders[o->n_holders - 1];
    if (o->n_holders == o->cap_holders) {
        size_t ncap = o->cap_holders ? o->cap_holders * 2 : 2;
        holder_t *p = realloc(o->holders, ncap * sizeof(*p));
        if (p == NULL)
            return NULL;
        o->holders = p;
        o->cap_holders = ncap;
    }
    holder_t *h = &o->holders[o->n_holders++];
    memset(h, 0, sizeof(*h));
    h->proc = proc;
    h->fd = -1;
    return h;
}

/* ---- classification ---- */

static int mounts_load(scan_t *s, int pidfd, uint64_t ns, mount_ns_t **out);

static int fs_of(scan_t *s, proc_t *p, int pidfd, unsigned major, unsigned minor, int *fs)
{
    mount_ns_t *m = NULL;
    int rc = 0;
    if (!p->have_mntns && (rc = st_procfs_ns_inode_at(pidfd, "mnt", &p->mntns)) < 0)
        return rc;
    p->have_mntns = true;
    uint64_t ns = p->mntns;
    pthread_mutex_lock(&s->mnt_lock);
    for (size_t i = 0; i < s->n_mnts; i++)
        if (s->mnts[i].ns == ns)
            m = &s->mnts[i];
    if (m == NULL && (rc = mounts_load(s, pidfd, ns, &m)) < 0)
        goto out;
    *fs = FS_UNKNOWN;
    for (size_t i = 0; i < m->n; i++) {
        if (m->ents[i].major == major && m->ents[i].minor == minor) {
            *fs = m->ents[i].fs;
            break;
        }
    }
out:
    pthread_mutex_unlock(&s->mnt_lock);
    return rc;
}

static int mount_cb(unsigned major, unsigned minor, const char *fstype, const char *mountpoint,
                    void *arg)
{
    mount_ns_t *m = arg;
    if (st__array_grow((void **)&m->ents, &m->cap, m->n + 1, sizeof(mount_ent_t)) < 0)
        return -ENOMEM;
    m->ents[m->n].major = major;
    m->ents[m->n].minor = minor;
    m->ents[m->n].fs = strcmp(fstype, "tmpfs") == 0       ? FS_TMPFS
                       : strcmp(fstype, "hugetlbfs") == 0 ? FS_HUGETLBFS
                                                          : FS_OTHER;
    m->n++;
    return 0;
}

/* Reads mountinfo into a buffer of its own: it runs while the reader's buffer may hold the maps
 * text being parsed (a lookup from vma_cb), and happens once per mount namespace. Called with
 * s->mnt_lock held. */
static int mounts_load(scan_t *s, int pidfd, uint64_t ns, mount_ns_t **out)
{
    st_procfs_buf_t buf = {NULL, 0};
    size_t len = 0;
    int rc = st_procfs_read_at(pidfd, "mountinfo", &buf, &len);
    if (rc < 0)
        goto out;
    if ((rc = st__array_grow((void **)&s->mnts, &s->cap_mnts, s->n_mnts + 1, sizeof(mount_ns_t))) <
        0)
        goto out;
    mount_ns_t *m = &s->mnts[s->n_mnts];
    memset(m, 0, sizeof(*m));
    m->ns = ns;
    if ((rc = st_procfs_parse_mountinfo(buf.p, len, mount_cb, m)) < 0) {
        free(m->ents);
        goto out;
    }
    s->n_mnts++;
    *out = m;
out:
    st_procfs_buf_free(&buf);
    return rc;
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* The kind of a shared file mapping or an fd target (path without " (deleted)"), or 1 when it is
 * not shared memory (a regular file on a disk). */
static int classify(scan_t *s, proc_t *p, int pidfd, const char *path, bool deleted, unsigned major,
                    unsigned minor, uint64_t page_size, st_kind_t *kind)
{
    bool on_shm = s->have_shm_dev && major == s->shm_major && minor == s->shm_minor;
    if (deleted && starts_with(path, "/SYSV") && strlen(path) == 13) {
        *kind = ST_KIND_SYSV;
        return 0;
    }
    if (deleted && strcmp(path, "/anon_hugepage") == 0) {
        *kind = ST_KIND_HUGETLB;
        return 0;
    }
    if (deleted && strcmp(path, "/dev/zero") == 0 && (on_shm || !s->have_shm_dev)) {
        *kind = ST_KIND_ANON;
        return 0;
    }
    if (starts_with(path, "/memfd:")) {
        long base = sysconf(_SC_PAGESIZE);
        bool huge = (page_size > (uint64_t)base) || (s->have_shm_dev && !on_shm);
        *kind = huge ? ST_KIND_HUGETLB : ST_KIND_MEMFD;
        return 0;
    }
    if (on_shm) { /* the internal shm mount holds nothing else we know */
        *kind = ST_KIND_ANON;
        return 0;
    }
    int fs = FS_OTHER;
    int rc = fs_of(s, p, pidfd, major, minor, &fs);
    if (rc < 0)
        return rc;
    if (fs == FS_TMPFS) {
        *kind = ST_KIND_POSIX;
        return 0;
    }
    if (fs == FS_HUGETLBFS) {
        *kind = ST_KIND_HUGETLB;
        return 0;
    }
    return 1;
}

/* ---- reading one process ---- */

typedef struct pread {
    scan_t *s;
    proc_t *p;
    int pidfd; /* /proc/PID */
    rec_t *recs;
    size_t n_recs, cap_recs;
    char *names; /* the records' names, NUL-separated; reused from process to process */
    size_t names_len, names_cap;
    int err;             /* first error from a callback */
    const char *what;    /* the file the callback failed on, or NULL */
    st_procfs_buf_t buf; /* one read buffer for every /proc file this reader reads */
} pread_t;

static int add_rec(pread_t *r, st_kind_t kind, const char *path, unsigned major, unsigned minor,
                   uint64_t ino, uint64_t start, uint64_t end, uint64_t offset, int fd)
{
    int rc = st__array_grow((void **)&r->recs, &r->cap_recs, r->n_recs + 1, sizeof(rec_t));
    if (rc < 0)
        return rc;
    proc_t *p = r->p;
    if (kind == ST_KIND_SYSV && !p->have_ipcns) {
        if ((rc = st_procfs_ns_inode_at(r->pidfd, "ipc", &p->ipcns)) < 0) {
            r->what = "ns/ipc";
            return rc;
        }
        p->have_ipcns = true;
    }
    /* a memfd's name as the program gave it, as the preload reports it (the kind says memfd) */
    const char *name = starts_with(path, "/memfd:") ? path + strlen("/memfd:") : path;
    size_t nl = strlen(name) + 1;
    if ((rc = st__array_grow((void **)&r->names, &r->names_cap, r->names_len + nl, 1)) < 0)
        return rc;
    memcpy(r->names + r->names_len, name, nl);
    rec_t *rec = &r->recs[r->n_recs];
    rec->id = (ident_t){kind, major, minor, ino, kind == ST_KIND_SYSV ? p->ipcns : 0};
    rec->start = start;
    rec->end = end;
    rec->offset = offset;
    rec->fd = fd;
    rec->name = r->names_len;
    r->names_len += nl;
    r->n_recs++;
    return 0;
}

static int vma_cb(const st_vma_t *vma, void *arg)
{
    pread_t *r = arg;
    st_kind_t kind;
    int rc = classify(r->s, r->p, r->pidfd, vma->path, vma->deleted, vma->major, vma->minor,
                      vma->page_size, &kind);
    if (rc == 1)
        return 0;
    if (rc == 0)
        rc = add_rec(r, kind, vma->path, vma->major, vma->minor, vma->inode, vma->start, vma->end,
                     vma->offset, -1);
    if (rc < 0)
        r->err = rc;
    return rc < 0 ? 1 : 0;
}

/* Whether the link of an fd is worth reading (st_procfs_read_fds_at reads it only then): a
 * regular file on the internal shm mount, on a tmpfs or hugetlbfs, or on a device the mount
 * table does not show (the kernel's internal hugetlbfs mounts hold MFD_HUGETLB memfds). A file
 * on a disk is not shared memory, and neither are pipes, sockets and terminals. */
static bool fd_want(const struct stat *st, void *arg)
{
    pread_t *r = arg;
    scan_t *s = r->s;
    if (!S_ISREG(st->st_mode))
        return false;
    unsigned major = major(st->st_dev), minor = minor(st->st_dev);
    if (!s->have_shm_dev || (major == s->shm_major && minor == s->shm_minor))
        return true;
    int fs = FS_UNKNOWN;
    if (fs_of(s, r->p, r->pidfd, major, minor, &fs) < 0)
        return true; /* fd_cb meets the same error and records it */
    return fs != FS_OTHER;
}

static int fd_cb(const st_fd_info_t *fd, void *arg)
{
    pread_t *r = arg;
    if (!S_ISREG(fd->st.st_mode))
        return 0;
    unsigned major = major(fd->st.st_dev), minor = minor(fd->st.st_dev);
    st_kind_t kind;
    int rc = classify(r->s, r->p, r->pidfd, fd->target, fd->deleted, major, minor, 0, &kind);
    if (rc == 1 || (rc == 0 && kind == ST_KIND_SYSV))
        return 0;
    if (rc == 0)
        rc = add_rec(r, kind, fd->target, major, minor, (uint64_t)fd->st.st_ino, 0, 0, 0, fd->fd);
    if (rc < 0)
        r->err = rc;
    return rc < 0 ? 1 : 0;
}

/* Empties r for the next process, keeping its arrays. */
static void reset_recs(pread_t *r)
{
    r->n_recs = 0;
    r->names_len = 0;
    r->err = 0;
    r->what = NULL;
}

static void free_recs(pread_t *r)
{
    free(r->recs);
    free(r->names);
    st_procfs_buf_free(&r->buf);
    r->recs = NULL;
    r->names = NULL;
    r->n_recs = r->cap_recs = r->names_len = r->names_cap = 0;
}

static int cmp_int(const void *a, const void *b);

/* Whether the caller replaces pid's totals with its own (opts->own_totals): reading them is then
 * wasted, and smaps_rollup walks every page table of the process (most of a scan of small
 * processes, the coordinator's clients, which report their totals themselves). */
static bool totals_replaced(const st_scan_options_t *o, int pid)
{
    return o->n_own_totals > 0 &&
           bsearch(&pid, o->own_totals, o->n_own_totals, sizeof(pid), cmp_int) != NULL;
}

/* Reads pid completely into r (p->... and r->recs): 0, 1 for a kernel thread or a zombie (nothing
 * to read), or -errno with *what naming the file. Every file is read through one /proc/PID fd, so
 * all of it is about the same process. */
static int read_proc(pread_t *r, const char **what)
{
    proc_t *p = r->p;
    st_procfs_buf_t *buf = &r->buf;
    int rc;
    *what = "";
    if ((rc = st_procfs_open_pid(p->pid)) < 0)
        return rc;
    r->pidfd = rc;
    *what = "stat";
    if ((rc = st_procfs_read_stat_at(r->pidfd, buf, &p->stat)) < 0)
        goto out;
    if ((p->stat.flags & ST_PF_KTHREAD) || p->stat.state == 'Z' || p->stat.state == 'X') {
        rc = 1; /* a kernel thread or a zombie: no memory of its own, not a problem */
        goto out;
    }
    *what = "smaps_rollup";
    if (totals_replaced(r->s->o, p->pid))
        rc = st_procfs_access_at(r->pidfd, "smaps_rollup");
    else
        rc = st_procfs_read_totals_at(r->pidfd, buf, &p->totals);
    if (rc < 0)
        goto out;
    *what = "maps";
    st_maps_method_t method = r->s->o->maps_method;
    if (method == ST_MAPS_AUTO && !r->s->have_shm_dev)
        method = ST_MAPS_PROCMAP; /* classify() then needs the page size, which the text lacks */
    rc = st_procfs_read_vmas_at(r->pidfd, buf, method, true, vma_cb, r, NULL);
    if ((rc == -ENOTTY || rc == -EINVAL) && method != r->s->o->maps_method && r->err == 0 &&
        r->n_recs == 0)
        rc = st_procfs_read_vmas_at(r->pidfd, buf, ST_MAPS_TEXT, true, vma_cb, r, NULL);
    if (r->err < 0 || rc < 0)
        goto out;
    *what = "fd";
    rc = st_procfs_read_fds_at(r->pidfd, fd_want, fd_cb, r);
out:
    if (r->err < 0) {
        rc = r->err;
        if (r->what != NULL)
            *what = r->what;
    }
    close(r->pidfd);
    r->pidfd = -1;
    return rc < 0 ? rc : rc == 1 ? 1 : 0;
}

/* Moves a fully read process and its records into the scan. */
static int commit_proc(scan_t *s, pread_t *r)
{
    int rc = st__array_grow((void **)&s->procs, &s->cap_procs, s->n_procs + 1, sizeof(proc_t));
    if (rc < 0)
        return rc;
    size_t pi = s->n_procs;
    s->procs[pi] = *r->p;
    s->n_procs++;
    proc_t *p = &s->procs[pi];
    for (size_t i = 0; i < r->n_recs; i++) {
        rec_t *rec = &r->recs[i];
        size_t oi;
        if ((rc = obj_get(s, &rec->id, r->names + rec->name, &oi)) < 0)
            return rc;
        obj_t *o = &s->objs[oi];
        holder_t *h = obj_holder(o, pi);
        if (h == NULL)
            return -ENOMEM;
        if (rec->fd >= 0) {
            if (h->fd < 0)
                h->fd = rec->fd;
            continue;
        }
        uint64_t len = rec->end - rec->start;
        h->mapped += len;
        if (h->n_vmas++ == 0) {
            h->start = rec->start;
            h->end = rec->end;
        }
        if (rec->offset + len > o->lb_virt)
            o->lb_virt = rec->offset + len;
        if ((rc = st__array_grow((void **)&p->vmas, &p->cap_vmas, p->n_vmas + 1,
                                 sizeof(vma_ref_t))) < 0)
            return rc;
        p->vmas[p->n_vmas++] = (vma_ref_t){rec->start, rec->end, rec->offset, oi};
    }
    return 0;
}

/* ---- SysV and /dev/shm ---- */

static int seg_cb(const st_sysv_seg_t *seg, void *arg)
{
    scan_t *s = arg;
    if (st__array_grow((void **)&s->segs, &s->cap_segs, s->n_segs + 1, sizeof(*seg)) < 0)
        return -ENOMEM;
    s->segs[s->n_segs++] = *seg;
    return 0;
}

static int read_segs(scan_t *s)
{
    char *buf = NULL;
    size_t len = 0;
    int rc = st_procfs_read_file("/proc/sysvipc/shm", &buf, &len);
    if (rc < 0) {
        st_dump_add_problem(s->dump, 0, "/proc/sysvipc/shm", -rc);
        return rc == -ENOMEM ? rc : 0;
    }
    rc = st_procfs_parse_sysvipc_shm(buf, len, seg_cb, s, NULL);
    free(buf);
    s->segs_read = rc == 0;
    return rc;
}

static const st_sysv_seg_t *seg_find(const scan_t *s, int shmid)
{
    for (size_t i = 0; i < s->n_segs; i++)
        if (s->segs[i].shmid == shmid)
            return &s->segs[i];
    return NULL;
}

static int add_unheld_sysv(scan_t *s)
{
    for (size_t i = 0; i < s->n_segs; i++) {
        const st_sysv_seg_t *seg = &s->segs[i];
        if (seg->nattch != 0)
            continue;
        char name[32];
        size_t oi;
        ident_t id = {ST_KIND_SYSV, 0, 0, (uint64_t)seg->shmid, s->self_ipcns};
        snprintf(name, sizeof(name), "/SYSV%08x", (unsigned)seg->key);
        int rc = obj_get(s, &id, name, &oi);
        if (rc < 0)
            return rc;
    }
    return 0;
}

typedef struct outside {
    scan_t *s;
    size_t *cand; /* object indexes still believed unheld */
    size_t n_cand;
} outside_t;

static void outside_drop(outside_t *x, unsigned major, unsigned minor, uint64_t ino)
{
    for (size_t i = 0; i < x->n_cand; i++) {
        obj_t *o = &x->s->objs[x->cand[i]];
        if (o->major == major && o->minor == minor && o->ino == ino) {
            o->path = (free(o->path), NULL); /* held elsewhere: not ours to report */
            x->cand[i] = x->cand[--x->n_cand];
            return;
        }
    }
}

static int outside_vma(const st_vma_t *vma, void *arg)
{
    outside_drop(arg, vma->major, vma->minor, vma->inode);
    return 0;
}

static int outside_fd(const st_fd_info_t *fd, void *arg)
{
    outside_drop(arg, major(fd->st.st_dev), minor(fd->st.st_dev), (uint64_t)fd->st.st_ino);
    return 0;
}

static bool regular(const struct stat *st, void *arg)
{
    (void)arg;
    return S_ISREG(st->st_mode);
}

static bool scanned(const scan_t *s, int pid)
{
    for (size_t i = 0; i < s->n_procs; i++)
        if (s->procs[i].pid == pid)
            return true;
    return false;
}

/* In a scan of a subset of processes, a /dev/shm file nobody in the subset holds may be held by
 * a process outside it: check every other process for the candidates' inodes. */
static int check_outside(scan_t *s, outside_t *x)
{
    DIR *d = opendir("/proc");
    if (d == NULL)
        return -errno;
    struct dirent *de;
    size_t unchecked = 0;
    int self = getpid();
    while (x->n_cand > 0 && (de = readdir(d)) != NULL) {
        char *end = NULL;
        long pid = strtol(de->d_name, &end, 10);
        if (*end != '\0' || pid <= 0 || pid == self || scanned(s, (int)pid))
            continue;
        int rc = st_procfs_read_vmas((int)pid, s->o->maps_method, true, outside_vma, x, NULL);
        if (rc == 0)
            rc = st_procfs_read_fds((int)pid, regular, outside_fd, x);
        if (rc < 0 && !gone(rc))
            unchecked++;
    }
    closedir(d);
    if (unchecked > 0 && x->n_cand > 0)
        st_dump_add_warning(s->dump,
                            "scan: %zu process(es) outside the scanned set could not be read; "
                            "%zu /dev/shm file(s) reported as unheld may be held by them",
                            unchecked, x->n_cand);
    return 0;
}

static int add_unheld_devshm(scan_t *s, bool subset)
{
    const char *dir = s->o->devshm_dir ? s->o->devshm_dir : "/dev/shm";
    DIR *d = opendir(dir);
    int rc = 0;
    outside_t x = {s, NULL, 0};
    size_t cap = 0;
    if (d == NULL) {
        st_dump_add_problem(s->dump, 0, dir, errno);
        return 0;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char path[PATH_MAX];
        struct stat st;
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode))
            continue;
        unsigned major = major(st.st_dev), minor = minor(st.st_dev);
        ident_t id = {ST_KIND_POSIX, major, minor, (uint64_t)st.st_ino, 0};
        if (obj_find(s, &id, NULL) != NULL)
            continue;
        size_t oi;
        if ((rc = obj_get(s, &id, path, &oi)) < 0 ||
            (rc = st__array_grow((void **)&x.cand, &cap, x.n_cand + 1, sizeof(size_t))) < 0)
            goto out;
        if ((s->objs[oi].path = strdup(path)) == NULL) {
            rc = -ENOMEM;
            goto out;
        }
        x.cand[x.n_cand++] = oi;
    }
    if (subset && x.n_cand > 0)
        rc = check_outside(s, &x);
out:
    free(x.cand);
    closedir(d);
    return rc;
}

/* ---- measurement ---- */

/* Whether what was measured is the object (an fd number or an address range may be reused). */
static bool same_object(const obj_t *o, const st_residency_t *r)
{
    return major((dev_t)r->dev) == o->major && minor((dev_t)r->dev) == o->minor && r->ino == o->ino;
}

typedef struct lb_arg {
    scan_t *s;
    proc_t *p;
} lb_arg_t;

static int smaps_cb(uint64_t start, uint64_t end, uint64_t rss, uint64_t swap, void *arg)
{
    lb_arg_t *a = arg;
    for (size_t i = 0; i < a->p->n_vmas; i++) {
        vma_ref_t *v = &a->p->vmas[i];
        if (v->start == start && v->end == end) {
            obj_t *o = &a->s->objs[v->obj];
            if (rss > o->lb_rss)
                o->lb_rss = rss;
            if (swap > o->lb_swap)
                o->lb_swap = swap;
        }
    }
    return 0;
}

/* Reads /proc/PID/smaps of a mapper once and folds every VMA's Rss/Swap into its object. */
static void load_smaps(scan_t *s, proc_t *p)
{
    char path[64];
    char *buf = NULL;
    size_t len = 0;
    if (p->smaps_read)
        return;
    p->smaps_read = true;
    snprintf(path, sizeof(path), "/proc/%d/smaps", p->pid);
    int rc = st_procfs_read_file(path, &buf, &len);
    if (rc < 0) {
        st_dump_add_problem(s->dump, p->pid, path, -rc);
        return;
    }
    lb_arg_t a = {s, p};
    st_procfs_parse_smaps(buf, len, smaps_cb, &a);
    free(buf);
}

/* Checks what was measured and keeps it: 0 when it was the object, 1 when not, or rc. */
static int keep(obj_t *o, int rc, const st_residency_t *r)
{
    if (rc < 0)
        return rc;
    if (!same_object(o, r))
        return 1;
    o->res = *r;
    o->measured = true;
    return 0;
}

/* Tries one path: 0 when it measured the object, 1 when this path is not the object, -errno. */
static int try_path(scan_t *s, obj_t *o, const char *path)
{
    st_residency_t r;
    return keep(o, st_residency_measure_path(path, s->o->residency_method, &r), &r);
}

/* Closes fds[0..n): each run of consecutive numbers with one close_range (every number in a run
 * is an fd this scan opened and still owns, so nothing else is closed, even while other threads
 * open files: an fd still open cannot be handed out again). */
static void close_fds(int *fds, size_t n)
{
    if (n == 0)
        return;
    qsort(fds, n, sizeof(int), cmp_int);
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && fds[j] == fds[j - 1] + 1)
            j++;
        if (j - i == 1 || close_range((unsigned)fds[i], (unsigned)fds[j - 1], 0) < 0)
            for (size_t k = i; k < j; k++)
                close(fds[k]);
        i = j;
    }
}

/* Closes the deferred fds. Called with s->close_lock held, or after the measuring threads are
 * done. */
static void close_deferred(scan_t *s)
{
    close_fds(s->closing, s->n_closing);
    s->n_closing = 0;
}

enum { CLOSE_BATCH = 256 };

static void close_deferred_locked(scan_t *s)
{
    pthread_mutex_lock(&s->close_lock);
    close_deferred(s);
    pthread_mutex_unlock(&s->close_lock);
}

/* Closes fd later, with others: a measured object's fd is of no further use, and one close per
 * object was a fifth of the measuring syscalls. Closing a shmem file costs more than opening it
 * (~3 us: the kernel's __fput), so with opts->close_async they all wait for close_async_all. */
static void close_later(scan_t *s, int fd)
{
    pthread_mutex_lock(&s->close_lock);
    if (!s->o->close_async && s->n_closing >= CLOSE_BATCH)
        close_deferred(s);
    if (st__array_grow((void **)&s->closing, &s->cap_closing, s->n_closing + 1, sizeof(int)) < 0)
        close(fd);
    else
        s->closing[s->n_closing++] = fd;
    pthread_mutex_unlock(&s->close_lock);
}

typedef struct closer {
    int *fds;
    size_t n;
} closer_t;

static void *closer_main(void *arg)
{
    closer_t *c = arg;
    close_fds(c->fds, c->n);
    free(c->fds);
    free(c);
    return NULL;
}

/* After the measuring threads: the deferred fds are closed on a detached thread of their own
 * (opts->close_async), so that the caller goes on building and writing the trace on one CPU
 * while another closes; here when a thread cannot be had. */
static void close_async_all(scan_t *s)
{
    closer_t *c = malloc(sizeof(*c));
    pthread_attr_t attr;
    pthread_t tid;
    bool started = false;
    if (c != NULL && pthread_attr_init(&attr) == 0) {
        *c = (closer_t){s->closing, s->n_closing};
        started = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) == 0 &&
                  pthread_create(&tid, &attr, closer_main, c) == 0;
        pthread_attr_destroy(&attr);
    }
    if (!started) {
        free(c);
        close_deferred(s);
        return;
    }
    s->closing = NULL; /* the thread's now */
    s->n_closing = s->cap_closing = 0;
}

/* Opens name under dirfd to measure an object; when out of fds, the deferred ones go first. */
static int open_object(scan_t *s, int dirfd, const char *name)
{
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0 && (errno == EMFILE || errno == ENFILE)) {
        pthread_mutex_lock(&s->close_lock);
        close_deferred(s);
        pthread_mutex_unlock(&s->close_lock);
        fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    }
    return fd < 0 ? -errno : fd;
}

/* Closes every directory fd this thread keeps (with the objects' fds). */
static void dirs_flush(meas_t *m)
{
    for (size_t i = 0; m->n_dirs > 0 && i < 2 * m->s->n_procs; i++) {
        if (m->dirs[i] >= 0) {
            close_later(m->s, m->dirs[i]);
            m->dirs[i] = -1;
            m->n_dirs--;
        }
    }
}

/* The directory fd of /proc/PID/<map_files|fd> (dir 0 or 1) of scanned process proc, opened on
 * first use; when out of fds, the deferred ones and this thread's other directories go first.
 * -errno when it cannot be opened. */
static int proc_dir(meas_t *m, size_t proc, int dir)
{
    int *fd = &m->dirs[2 * proc + (size_t)dir];
    if (*fd >= 0)
        return *fd;
    if (m->n_dirs >= MAX_DIRS ||
        (m->n_dirs > 0 && atomic_load_explicit(&m->s->fds_short, memory_order_relaxed)))
        dirs_flush(m);
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/%s", m->s->procs[proc].pid,
             dir == 0 ? "map_files" : "fd");
    /* openat, as for the objects' fds: both are closed with close_range, and ThreadSanitizer,
     * which follows open and close but neither openat nor close_range, would otherwise take a
     * number reused by another thread for a race */
    *fd = openat(AT_FDCWD, path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (*fd < 0 && (errno == EMFILE || errno == ENFILE)) {
        dirs_flush(m);
        close_deferred_locked(m->s);
        *fd = openat(AT_FDCWD, path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    }
    if (*fd < 0)
        return -errno;
    m->n_dirs++;
    return *fd;
}

/* Tries /proc/PID/<dir>/<name> (dir 0: map_files, 1: fd) of scanned process proc. */
static int try_in(meas_t *m, obj_t *o, size_t proc, int dir, const char *name)
{
    int dfd = proc_dir(m, proc, dir);
    if (dfd < 0 && dfd != -EMFILE && dfd != -ENFILE)
        return dfd;
    st_residency_t r;
    int fd = dfd < 0 ? dfd : open_object(m->s, dfd, name);
    /* Out of fds: this thread's directories and the deferred fds go, and the other threads are
     * told to keep no directories either; what they hold now is theirs for a moment only (an
     * object's fd is deferred once measured), so a few tries, 1 ms apart, find a free one. Giving
     * up at once made the object a lower bound whenever another thread's directories happened to
     * fill the table (test_low_fd_limit_same_trace failed 2 of 94 runs on a loaded machine). */
    int max_tries = atomic_load_explicit(&m->s->fds_none, memory_order_relaxed) ? 1 : 200;
    for (int tries = 0; (fd == -EMFILE || fd == -ENFILE) && tries < max_tries; tries++) {
        atomic_store_explicit(&m->s->fds_short, true, memory_order_relaxed);
        dirs_flush(m);
        close_deferred_locked(m->s);
        if (tries > 0)
            nanosleep(&(struct timespec){0, 1000000}, NULL);
        if ((dfd = proc_dir(m, proc, dir)) < 0) {
            if (dfd != -EMFILE && dfd != -ENFILE)
                return dfd;
            fd = dfd;
            continue;
        }
        fd = open_object(m->s, dfd, name);
    }
    if (fd == -EMFILE || fd == -ENFILE)
        atomic_store_explicit(&m->s->fds_none, true, memory_order_relaxed);
    if (fd < 0)
        return fd;
    int rc = st_residency_measure_fd(fd, m->s->o->residency_method, &r);
    close_later(m->s, fd);
    return keep(o, rc, &r);
}

static int meas_init(meas_t *m, scan_t *s)
{
    memset(m, 0, sizeof(*m));
    m->s = s;
    if ((m->dirs = malloc((2 * s->n_procs + 1) * sizeof(int))) == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < 2 * s->n_procs; i++)
        m->dirs[i] = -1;
    return 0;
}

/* The directory fds go with the objects' (closed in runs, or on the closing thread). */
static void meas_done(meas_t *m)
{
    if (m->dirs != NULL)
        dirs_flush(m);
    free(m->dirs);
    m->dirs = NULL;
}

/* Records the outcome of one attempt: permission refusals and vanished ways are told apart. */
static void note(int rc, int *denied, int *vanished)
{
    if (rc == -EPERM || rc == -EACCES)
        *denied = rc;
    else if (rc == 1 || gone(rc))
        *vanished = rc == 1 ? -ESTALE : rc;
    else if (rc < 0)
        *denied = rc; /* an error we cannot explain: not exact, so a lower bound */
}

/* Measures o exactly if any way to it is permitted, else marks it for the smaps lower bound
 * (o->lb_needed, taken by lower_bound() after every thread is done: it reads other objects'
 * mappers). Returns -ENOENT/-ESRCH/-ESTALE when every way to it vanished (the object is then left
 * out), -ENOMEM. Touches nothing but o and m, so threads may measure different objects at once. */
static int measure(meas_t *m, obj_t *o)
{
    scan_t *s = m->s;
    char path[128];
    int denied = 0, vanished = 0;
    if (o->kind == ST_KIND_SYSV && o->sysv_ns == s->self_ipcns && s->segs_read) {
        const st_sysv_seg_t *seg = seg_find(s, (int)o->ino);
        if (seg == NULL)
            return -EIDRM; /* removed since the maps were read */
        o->have_seg = true;
        o->seg = *seg;
        o->res.virtual_size = seg->size;
        if (seg->have_rss) {
            o->res.resident = seg->rss;
            o->res.swapped = seg->swap;
            o->res.source = ST_RES_SYSVIPC;
            o->measured = true;
            return 0;
        }
    }
    for (size_t i = 0; i < o->n_holders && !o->measured; i++) {
        holder_t *h = &o->holders[i];
        if (h->n_vmas > 0) {
            snprintf(path, sizeof(path), "%" PRIx64 "-%" PRIx64, h->start, h->end);
            note(try_in(m, o, h->proc, 0, path), &denied, &vanished);
        }
        if (!o->measured && h->fd >= 0) {
            snprintf(path, sizeof(path), "%d", h->fd);
            note(try_in(m, o, h->proc, 1, path), &denied, &vanished);
        }
    }
    if (!o->measured && o->path == NULL && o->kind == ST_KIND_POSIX && o->name != NULL &&
        o->name[0] == '/' && (o->path = strdup(o->name)) == NULL)
        return -ENOMEM;
    if (!o->measured && o->path != NULL)
        note(try_path(s, o, o->path), &denied, &vanished);
    if (o->measured)
        return 0;
    if (denied == 0 && !(o->kind == ST_KIND_SYSV && o->sysv_ns != s->self_ipcns))
        return vanished ? vanished : -ENOENT;
    o->lb_needed = true;
    o->lb_denied = denied;
    return 0;
}

/* The smaps lower bound of an object measure() could not measure exactly: the largest single
 * VMA's Rss/Swap among its mappers, and a warning naming it. */
static void lower_bound(scan_t *s, obj_t *o)
{
    int denied = o->lb_denied;
    for (size_t i = 0; i < o->n_holders; i++)
        if (o->holders[i].n_vmas > 0)
            load_smaps(s, &s->procs[o->holders[i].proc]);
    o->res.resident = o->lb_rss;
    o->res.swapped = o->lb_swap;
    if (o->res.virtual_size < o->lb_virt)
        o->res.virtual_size = o->lb_virt;
    o->res.source = ST_RES_SMAPS_LOWER_BOUND;
    o->measured = true;
    st_dump_add_warning(s->dump,
                        "scan: %s: residency could not be measured exactly (%s); size is a lower "
                        "bound: the largest Rss of one VMA mapping it (smaps)",
                        o->key, denied ? strerror(-denied) : "not in the scanner's IPC namespace");
}

/* ---- ownership and output ---- */

/* Index into o->holders of the owner under the creator policy. */
static size_t owner_of(const scan_t *s, const obj_t *o)
{
    size_t best = 0;
    if (o->have_seg) {
        for (size_t i = 0; i < o->n_holders; i++)
            if (s->procs[o->holders[i].proc].pid == o->seg.cpid)
                return i;
    }
    for (size_t i = 1; i < o->n_holders; i++) {
        const proc_t *a = &s->procs[o->holders[i].proc], *b = &s->procs[o->holders[best].proc];
        if (a->stat.starttime < b->stat.starttime ||
            (a->stat.starttime == b->stat.starttime && a->pid < b->pid))
            best = i;
    }
    return best;
}

typedef struct order {
    uint64_t guid;
    size_t obj;
} order_t;

static int cmp_order(const void *a, const void *b)
{
    uint64_t x = ((const order_t *)a)->guid, y = ((const order_t *)b)->guid;
    return (x > y) - (x < y);
}

/* Writes processes, measured objects and holders into the dump, while the objects are being
 * measured: processes first, then objects in the order of their global node names ("global/<guid
 * hex>", so st_dump_sort finds them sorted), each as soon as it and every object before it in
 * that order are done. Objects are measured in that order too, so the thread that writes the
 * dump (the calling one; the model is not shared) does so between its own measurements while the
 * others measure on; the dump is the one a write after measuring everything would give. */
typedef struct emitter {
    scan_t *s;
    st_process_dump_t **pds; /* by process index */
    order_t *order;          /* every object, by guid */
    unsigned char *done;     /* per MEASURE_CHUNK of order: measured (release/acquire) */
    size_t next;             /* order[next] is the next object to write */
    int lowest;              /* the lowest pid: the carrier of an object nobody holds */
    int rc;                  /* the first error writing */
} emitter_t;

enum { MEASURE_CHUNK = 32 };

static int emit_begin(scan_t *s, emitter_t *e)
{
    memset(e, 0, sizeof(*e));
    e->s = s;
    if ((e->pds = calloc(s->n_procs ? s->n_procs : 1, sizeof(*e->pds))) == NULL ||
        (e->order = malloc((s->n_objs ? s->n_objs : 1) * sizeof(*e->order))) == NULL ||
        (e->done = calloc(s->n_objs / MEASURE_CHUNK + 1, 1)) == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < s->n_procs; i++) {
        proc_t *p = &s->procs[i];
        st_process_dump_t *pd = NULL;
        int rc = st_dump_add_process(s->dump, p->pid, p->stat.comm, &pd);
        if (rc < 0)
            return rc;
        if (p->totals.present != 0)
            pd->totals = p->totals;
        if (e->lowest == 0 || p->pid < e->lowest)
            e->lowest = p->pid;
    }
    for (size_t i = 0; i < s->n_procs; i++) /* stable now: no more processes are added */
        e->pds[i] = st_dump_find_process(s->dump, s->procs[i].pid);
    for (size_t oi = 0; oi < s->n_objs; oi++)
        e->order[oi] = (order_t){st_guid_global(s->objs[oi].key), oi};
    qsort(e->order, s->n_objs, sizeof(*e->order), cmp_order);
    return 0;
}

static void emit_end(emitter_t *e)
{
    free(e->pds);
    free(e->order);
    free(e->done);
}

/* Writes one measured object and its holders. */
static int emit_object(emitter_t *e, obj_t *o)
{
    scan_t *s = e->s;
    st_object_info_t info = {
        .key = o->key,
        .kind = o->kind,
        .name = o->name,
        .size = o->res.resident,
        .virtual_size = o->res.virtual_size,
        .swapped_size = o->res.swapped,
        .creator_pid = o->have_seg ? o->seg.cpid : 0,
        .label = NULL,
    };
    size_t owner = o->n_holders ? owner_of(s, o) : 0;
    int carrier = o->n_holders ? s->procs[o->holders[owner].proc].pid : e->lowest;
    st_node_t *g = NULL;
    int rc;
    if ((rc = st_dump_add_object(s->dump, &info, carrier, &g)) < 0 ||
        (rc = st_node_set_string(g, "residency_source", st_residency_source_name(o->res.source))) <
            0)
        return rc;
    for (size_t i = 0; i < o->n_holders; i++) {
        holder_t *h = &o->holders[i];
        int importance = (s->o->policy == ST_POLICY_CREATOR && i == owner) ? 2 : 0;
        if ((rc = st_process_add_holder(e->pds[h->proc], &info, h->mapped, importance, NULL)) < 0)
            return rc;
    }
    return 0;
}

/* Writes the objects that are ready, in order. Before every thread is done (all false), it stops
 * at an object whose chunk is still being measured or that waits for its lower bound (taken
 * after measuring, in object order); with all, it writes the rest. An object whose every way
 * vanished is not written. */
static void emit_ready(emitter_t *e, bool all)
{
    scan_t *s = e->s;
    while (e->rc == 0 && e->next < s->n_objs) {
        if (!all && !__atomic_load_n(&e->done[e->next / MEASURE_CHUNK], __ATOMIC_ACQUIRE))
            return;
        obj_t *o = &s->objs[e->order[e->next].obj];
        if (o->mrc == -ENOMEM) {
            e->rc = -ENOMEM;
            return;
        }
        if (!all && o->lb_needed)
            return;
        if (o->measured)
            e->rc = emit_object(e, o);
        e->next++;
    }
}

/* ---- entry points ---- */

void st_scan_options_init(st_scan_options_t *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->policy = ST_POLICY_CREATOR;
    opts->maps_method = ST_MAPS_AUTO;
    opts->residency_method = ST_RESIDENCY_AUTO;
    opts->include_unheld = true;
    opts->devshm_dir = "/dev/shm";
    opts->dump_id = 1;
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static bool pid_exists(int pid)
{
    char path[64];
    struct stat st;
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    return pid > 0 && stat(path, &st) == 0;
}

int st_scan_resolve_pids(const st_scan_options_t *opts, int **pids, size_t *n_pids, int *bad_pid)
{
    int rc = 0;
    int *all = NULL, *ppid = NULL, *out = NULL;
    size_t n_all = 0, cap_all = 0, cap_ppid = 0, n_out = 0, cap_out = 0;
    DIR *d = NULL;
    if (opts->policy == ST_POLICY_FIRST_TOUCH)
        return ST_EUSAGE;
    if (opts->n_pids > 0) {
        for (size_t i = 0; i < opts->n_pids; i++) {
            if (!pid_exists(opts->pids[i])) {
                if (bad_pid != NULL)
                    *bad_pid = opts->pids[i];
                return -ESRCH;
            }
        }
        if ((out = malloc(opts->n_pids * sizeof(int))) == NULL)
            return -ENOMEM;
        memcpy(out, opts->pids, opts->n_pids * sizeof(int));
        n_out = opts->n_pids;
        goto done;
    }
    if (opts->tree_root > 0 && !pid_exists(opts->tree_root)) {
        if (bad_pid != NULL)
            *bad_pid = opts->tree_root;
        return -ESRCH;
    }
    if ((d = opendir("/proc")) == NULL)
        return -errno;
    struct dirent *de;
    int self = getpid();
    while ((de = readdir(d)) != NULL) {
        char *end = NULL;
        long pid = strtol(de->d_name, &end, 10);
        if (*end != '\0' || pid <= 0 || pid > INT32_MAX)
            continue;
        st_proc_stat_t st;
        if (opts->tree_root > 0 && st_procfs_read_stat((int)pid, &st) < 0)
            continue; /* gone */
        if ((rc = st__array_grow((void **)&all, &cap_all, n_all + 1, sizeof(int))) < 0 ||
            (rc = st__array_grow((void **)&ppid, &cap_ppid, n_all + 1, sizeof(int))) < 0)
            goto out;
        all[n_all] = (int)pid;
        ppid[n_all] = opts->tree_root > 0 ? st.ppid : 0;
        n_all++;
        if (opts->tree_root <= 0 && pid != self) {
            if ((rc = st__array_grow((void **)&out, &cap_out, n_out + 1, sizeof(int))) < 0)
                goto out;
            out[n_out++] = (int)pid;
        }
    }
    if (opts->tree_root > 0) {
        /* breadth-first over the parent links: out doubles as the queue */
        if ((rc = st__array_grow((void **)&out, &cap_out, 1, sizeof(int))) < 0)
            goto out;
        out[n_out++] = opts->tree_root;
        for (size_t q = 0; q < n_out; q++) {
            for (size_t i = 0; i < n_all; i++) {
                if (ppid[i] != out[q] || all[i] == opts->tree_root)
                    continue;
                if ((rc = st__array_grow((void **)&out, &cap_out, n_out + 1, sizeof(int))) < 0)
                    goto out;
                out[n_out++] = all[i];
            }
        }
    }
done:
    qsort(out, n_out, sizeof(int), cmp_int);
    /* drop duplicates (a --pid given twice) */
    size_t w = 0;
    for (size_t i = 0; i < n_out; i++)
        if (w == 0 || out[w - 1] != out[i])
            out[w++] = out[i];
    *pids = out;
    *n_pids = w;
    out = NULL;
out:
    if (d != NULL)
        closedir(d);
    free(all);
    free(ppid);
    free(out);
    return rc;
}

/* The dev of the kernel's internal shm mount (shared anon, memfd, SysV live there): our own
 * memfd's. */
static void probe_shm_dev(scan_t *s)
{
    int fd = memfd_create("shmtrack-probe", MFD_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return;
    if (fstat(fd, &st) == 0) {
        s->have_shm_dev = true;
        s->shm_major = major(st.st_dev);
        s->shm_minor = minor(st.st_dev);
    }
    close(fd);
}

static void scan_free(scan_t *s)
{
    for (size_t i = 0; i < s->n_procs; i++)
        free(s->procs[i].vmas);
    free(s->procs);
    for (size_t i = 0; i < s->n_objs; i++) {
        free(s->objs[i].name);
        free(s->objs[i].path);
        free(s->objs[i].holders);
    }
    free(s->objs);
    free(s->table);
    for (size_t i = 0; i < s->n_mnts; i++)
        free(s->mnts[i].ents);
    free(s->mnts);
    free(s->segs);
    close_deferred(s); /* left only when the scan stopped early */
    free(s->closing);
}

/* ---- threads ---- */

/* How many threads read processes and measure objects: opts->threads, or (0) one per online CPU
 * up to 4. Fewer when there is little to do: a thread costs about as much as reading a few
 * processes. The output does not depend on it (see read_all and measure_all). */
enum { MAX_THREADS = 8 };

static size_t n_threads(const scan_t *s, size_t work)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    size_t n = s->o->threads > 0 ? s->o->threads : cpus > 4 ? 4 : cpus > 1 ? (size_t)cpus : 1;
    size_t most = work / 16 > 1 ? work / 16 : 1;
    if (n > MAX_THREADS)
        n = MAX_THREADS;
    return n < most ? n : most;
}

/* Runs fn(arg[i]) for i < n, arg[0] on the calling thread and the others on threads of their
 * own. If a thread cannot be started, its share runs here after the others. */
static void run_threads(void *(*fn)(void *), void *args, size_t size, size_t n)
{
    pthread_t tid[MAX_THREADS];
    bool started[MAX_THREADS] = {false};
    for (size_t i = 1; i < n && i < MAX_THREADS; i++)
        started[i] = pthread_create(&tid[i], NULL, fn, (char *)args + i * size) == 0;
    fn(args);
    for (size_t i = 1; i < n && i < MAX_THREADS; i++) {
        if (started[i])
            pthread_join(tid[i], NULL);
        else
            fn((char *)args + i * size);
    }
}

/* One process as a reading thread left it, for read_all to commit in pid order. */
typedef struct slot {
    proc_t p;
    rec_t *recs;
    size_t n_recs;
    char *names;
    int rc;
    const char *what;
    int ready; /* read (release/acquire) */
} slot_t;

/* The state the reading threads share: the pids, their slots, and the commit, which the calling
 * thread makes in pid order between its own reads (the others read on meanwhile). */
typedef struct readers {
    scan_t *s;
    const int *pids;
    slot_t *slots;
    size_t n;
    size_t next;      /* the next pid index to read */
    size_t committed; /* slots before this one are committed (the calling thread's) */
    int rc;           /* the first error committing */
    int refused;      /* the last permission error of a process left out */
} readers_t;

typedef struct reader {
    readers_t *all;
    bool commits;
} reader_t;

/* Commits the slots that are read, in pid order: stops at one still being read unless all. A
 * committed slot's records are freed at once, so the next reads reuse their memory. */
static void commit_ready(readers_t *a, bool all)
{
    scan_t *s = a->s;
    while (a->rc == 0 && a->committed < a->n) {
        slot_t *sl = &a->slots[a->committed];
        if (!all && !__atomic_load_n(&sl->ready, __ATOMIC_ACQUIRE))
            return;
        if (sl->rc == -ENOMEM) {
            a->rc = -ENOMEM;
        } else if (sl->rc < 0) {
            char path[64];
            snprintf(path, sizeof(path), "/proc/%d/%s", sl->p.pid, sl->what);
            st_dump_add_problem(s->dump, sl->p.pid, path, -sl->rc);
            if (!gone(sl->rc))
                a->refused = sl->rc;
        } else if (sl->rc == 0) {
            pread_t r;
            memset(&r, 0, sizeof(r));
            r.p = &sl->p;
            r.recs = sl->recs;
            r.n_recs = sl->n_recs;
            r.names = sl->names;
            a->rc = commit_proc(s, &r);
        }
        free(sl->recs);
        free(sl->names);
        sl->recs = NULL;
        sl->names = NULL;
        a->committed++;
    }
}

/* A reading thread: takes pids one at a time and reads each whole into its slot. */
static void *read_worker(void *arg)
{
    reader_t *w = arg;
    readers_t *a = w->all;
    pread_t r;
    memset(&r, 0, sizeof(r));
    r.s = a->s;
    r.pidfd = -1;
    for (;;) {
        size_t i = __atomic_fetch_add(&a->next, 1, __ATOMIC_RELAXED);
        if (i >= a->n)
            break;
        slot_t *sl = &a->slots[i];
        sl->p.pid = a->pids[i];
        r.p = &sl->p;
        reset_recs(&r);
        sl->rc = read_proc(&r, &sl->what);
        if (sl->rc == 0) { /* the slot takes the records; the next process starts afresh */
            sl->recs = r.recs;
            sl->n_recs = r.n_recs;
            sl->names = r.names;
            r.recs = NULL;
            r.names = NULL;
            r.cap_recs = r.names_cap = 0;
        }
        __atomic_store_n(&sl->ready, 1, __ATOMIC_RELEASE);
        if (w->commits)
            commit_ready(a, false);
    }
    free_recs(&r);
    return NULL;
}

/* Reads every pid (in parallel) and commits them in pid order as they come, so the objects'
 * order and everything after it are those of a single-threaded scan. */
static int read_all(scan_t *s, const int *pids, size_t n_pids, int *refused)
{
    size_t nt = n_threads(s, n_pids);
    reader_t w[MAX_THREADS];
    readers_t a = {s, pids, NULL, n_pids, 0, 0, 0, 0};
    if ((a.slots = calloc(n_pids ? n_pids : 1, sizeof(*a.slots))) == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < nt; i++)
        w[i] = (reader_t){&a, i == 0};
    run_threads(read_worker, w, sizeof(w[0]), nt);
    commit_ready(&a, true);
    for (size_t i = a.committed; i < n_pids; i++) { /* left by an error */
        free(a.slots[i].recs);
        free(a.slots[i].names);
    }
    free(a.slots);
    if (a.refused != 0)
        *refused = a.refused;
    return a.rc;
}

typedef struct measurer {
    meas_t m;
    emitter_t *e;
    bool writes;  /* the thread that writes the dump between its measurements */
    size_t *next; /* the next chunk of objects to measure (in e->order), shared by the threads */
} measurer_t;

/* A measuring thread: takes runs of objects in the order they are written. */
static void *measure_worker(void *arg)
{
    measurer_t *w = arg;
    scan_t *s = w->m.s;
    emitter_t *e = w->e;
    for (;;) {
        size_t first = __atomic_fetch_add(w->next, MEASURE_CHUNK, __ATOMIC_RELAXED);
        if (first >= s->n_objs)
            break;
        size_t end = first + MEASURE_CHUNK < s->n_objs ? first + MEASURE_CHUNK : s->n_objs;
        for (size_t k = first; k < end; k++) {
            obj_t *o = &s->objs[e->order[k].obj];
            o->mrc = measure(&w->m, o);
        }
        __atomic_store_n(&e->done[first / MEASURE_CHUNK], 1, __ATOMIC_RELEASE);
        if (w->writes)
            emit_ready(e, false);
    }
    meas_done(&w->m);
    return NULL;
}

/* Measures every object (in parallel) and writes the dump as they come (see emitter_t); then,
 * in object order, takes the lower bounds and records what could not be measured, so that the
 * dump's warnings and problems come out as a single thread would write them, and writes the
 * objects left. */
static int measure_and_emit(scan_t *s)
{
    size_t next = 0, nt = n_threads(s, s->n_objs / 8);
    measurer_t w[MAX_THREADS];
    emitter_t e;
    int rc = emit_begin(s, &e);
    for (size_t i = 0; i < nt; i++) {
        w[i].m.dirs = NULL;
        if (rc == 0)
            rc = meas_init(&w[i].m, s);
        w[i].e = &e;
        w[i].writes = i == 0;
        w[i].next = &next;
    }
    if (rc < 0)
        goto out;
    run_threads(measure_worker, w, sizeof(w[0]), nt);
    if (s->o->close_async)
        close_async_all(s);
    else
        close_deferred(s);
    for (size_t i = 0; i < s->n_objs; i++) {
        obj_t *o = &s->objs[i];
        if (o->mrc == -ENOMEM) {
            rc = -ENOMEM;
            goto out;
        }
        if (o->lb_needed)
            lower_bound(s, o);
        if (o->mrc < 0) {
            char what[ST_KEY_MAX + 16];
            snprintf(what, sizeof(what), "object %s", o->key);
            st_dump_add_problem(s->dump, 0, what, -o->mrc);
        }
    }
    emit_ready(&e, true);
    rc = e.rc;
out:
    for (size_t i = 0; i < nt; i++)
        free(w[i].m.dirs);
    emit_end(&e);
    return rc;
}

/* Whether pids are all processes but the scanner (then /dev/shm needs no outside check). */
static bool is_subset(const int *pids, size_t n)
{
    int *all = NULL;
    size_t n_all = 0;
    st_scan_options_t o;
    st_scan_options_init(&o);
    if (st_scan_resolve_pids(&o, &all, &n_all, NULL) < 0)
        return true;
    bool subset = false;
    for (size_t i = 0; i < n_all && !subset; i++)
        subset = bsearch(&all[i], pids, n, sizeof(int), cmp_int) == NULL;
    free(all);
    return subset;
}

int st_scan_into_dump(const st_scan_options_t *opts, const int *pids_in, size_t n_pids,
                      st_global_dump_t *dump)
{
    if (opts->policy == ST_POLICY_FIRST_TOUCH) {
        st_dump_add_warning(dump, "scan: policy first-touch cannot be known from /proc");
        return ST_EUSAGE;
    }
    scan_t s;
    memset(&s, 0, sizeof(s));
    s.o = opts;
    s.dump = dump;
    int rc = 0, refused = 0;
    int *pids = NULL;
    if (n_pids > 0) {
        if ((pids = malloc(n_pids * sizeof(int))) == NULL)
            return -ENOMEM;
        memcpy(pids, pids_in, n_pids * sizeof(int));
        qsort(pids, n_pids, sizeof(int), cmp_int);
    }
    pthread_mutex_init(&s.mnt_lock, NULL);
    pthread_mutex_init(&s.close_lock, NULL);
    probe_shm_dev(&s);
    if ((rc = st_procfs_ns_inode(0, "ipc", &s.self_ipcns)) < 0)
        goto out;

    if ((rc = read_all(&s, pids, n_pids, &refused)) < 0)
        goto out;
    if (s.n_procs == 0 && n_pids > 0) {
        rc = refused ? refused : -ESRCH; /* e.g. -EACCES: none of them is ours to read */
        goto out;
    }
    if ((rc = read_segs(&s)) < 0)
        goto out;
    if (opts->include_unheld) {
        if ((rc = add_unheld_sysv(&s)) < 0 ||
            (rc = add_unheld_devshm(&s, is_subset(pids, n_pids))) < 0)
            goto out;
    }
    rc = measure_and_emit(&s);
out:
    free(pids);
    scan_free(&s);
    pthread_mutex_destroy(&s.mnt_lock);
    pthread_mutex_destroy(&s.close_lock);
    return rc;
}

int st_scan_trace(const st_scan_options_t *opts, st_trace_t **out, int *bad_pid)
{
    st_trace_t *t = NULL;
    int *pids = NULL;
    size_t n = 0;
    int rc = st_scan_resolve_pids(opts, &pids, &n, bad_pid);
    if (rc < 0)
        return rc;
    struct utsname u;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    st_global_dump_t *d = NULL;
    if ((rc = st_trace_new(&t)) < 0)
        goto out;
    bool have_uname = uname(&u) == 0;
    if ((rc = st_trace_set_meta(t, st_policy_name(opts->policy), have_uname ? u.nodename : NULL,
                                have_uname ? u.release : NULL)) < 0 ||
        (rc = st_trace_add_dump(t, opts->dump_id ? opts->dump_id : 1,
                                (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u,
                                &d)) < 0 ||
        (rc = st_dump_set_strings(d, "explicitly_triggered", "detailed")) < 0)
        goto out;
    if ((rc = st_scan_into_dump(opts, pids, n, d)) < 0)
        goto out;
    st_dump_sort(d);
    *out = t;
    t = NULL;
out:
    st_trace_free(t);
    free(pids);
    return rc;
}
