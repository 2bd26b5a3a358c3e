/* SPDX-License-Identifier: MIT
 *
 * Readers for /proc (private to the project): the raw facts the scanner (src/scan.c) builds its
 * objects from. Every text format has a parser that takes a buffer, so unit tests and fuzzers feed
 * fixtures (tests/data/proc/...), and a reader that opens the real file of a pid and calls it.
 *
 * Parsers never trust their input: a line they cannot read is skipped (callers that need one
 * record get ST_EFORMAT), numbers are range checked, and no parser reads past `len` (buffers need
 * not be NUL-terminated). Readers return 0 or -errno exactly as the kernel gave it (-ENOENT or
 * -ESRCH when the process went away, -EACCES/-EPERM when it is not ours to read), so the scanner
 * can record what it could not read and why.
 *
 * Mappings come from one of two sources with the same output: the text of /proc/PID/maps (~0.35 us
 * per VMA line of any kind), or the PROCMAP_QUERY ioctl on an open /proc/PID/maps (Linux 6.11+,
 * ~1.7 us per VMA it returns, one syscall each, but it can skip private and anonymous VMAs in the
 * kernel). ST_MAPS_AUTO mixes them on one open file: it reads the first page of text and, when
 * fewer than one line in five is wanted (a program with many libraries and few shared mappings),
 * goes on with the ioctl from where the text stopped; otherwise it reads the text to the end and
 * asks the ioctl only about names the text cannot tell (a '\n' in a name shows as "\012"). Without
 * the ioctl (ENOTTY/EINVAL) it is the text. The tests run all three.
 */
#ifndef SHMTRACK_PROCFS_H
#define SHMTRACK_PROCFS_H

#include "model.h"

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

/* Largest /proc file a reader accepts (maps of a huge process are a few MiB). */
#define ST_PROCFS_MAX_BYTES (64u << 20)

/* Reads a whole file into a NUL-terminated malloc'd buffer (*len excludes the NUL).
 * 0, -errno, or ST_ETOOBIG beyond ST_PROCFS_MAX_BYTES. */
int st_procfs_read_file(const char *path, char **buf, size_t *len);

/* A read buffer reused across reads, so that a scan of many processes allocates it once. Start
 * it zeroed; st_procfs_buf_free releases it. */
typedef struct st_procfs_buf {
    char *p;
    size_t cap;
} st_procfs_buf_t;
void st_procfs_buf_free(st_procfs_buf_t *b);

/* Reads dirfd/name whole into b (NUL-terminated; *len excludes the NUL). 0, -errno, or
 * ST_ETOOBIG beyond ST_PROCFS_MAX_BYTES. */
int st_procfs_read_at(int dirfd, const char *name, st_procfs_buf_t *b, size_t *len);

/* Opens dirfd/name and closes it unread: 0 or -errno. The permission check of reading it (a
 * /proc/PID file guarded by ptrace access fails at open) without the work of reading it. */
int st_procfs_access_at(int dirfd, const char *name);

/* A directory fd on /proc/PID (pid 0: /proc/self) for the *_at readers below. Everything read
 * through it is about that one process even if the pid is reused meanwhile, and each file is
 * one short lookup instead of a walk from /. Returns the fd or -errno. */
int st_procfs_open_pid(int pid);

/* ---- mappings ---------------------------------------------------------------------------- */

enum {
    ST_VMA_READ = 1u << 0,
    ST_VMA_WRITE = 1u << 1,
    ST_VMA_EXEC = 1u << 2,
    ST_VMA_SHARED = 1u << 3, /* 's' in maps: VM_MAYSHARE */
};

/* One VMA as maps prints it. path has " (deleted)" removed and `deleted` set instead; it is empty
 * for anonymous VMAs. Names longer than the buffer are truncated (truncated = true). */
typedef struct st_vma {
    uint64_t start, end; /* [start, end) */
    uint64_t offset;     /* file offset of start, bytes */
    unsigned perms;      /* ST_VMA_* */
    unsigned major, minor;
    uint64_t inode;
    uint64_t page_size; /* kernel page size of the VMA; 0 when the source does not say (maps) */
    bool deleted;
    bool truncated;
    char path[PATH_MAX];
} st_vma_t;

/* Return non-zero to stop the walk; that value is returned by the walker. */
typedef int (*st_vma_cb)(const st_vma_t *vma, void *arg);

/* One line of maps (without or with its '\n'): 0 or ST_EFORMAT. */
int st_procfs_parse_maps_line(const char *line, size_t len, st_vma_t *out);
/* Every parsable line of a maps buffer, in order; unparsable lines are counted in *bad (optional)
 * and skipped. */
int st_procfs_parse_maps(const char *buf, size_t len, st_vma_cb cb, void *arg, size_t *bad);

#define ST_MAPS_METHOD_MAP(XX)                                                                     \
    XX(ST_MAPS_AUTO, "auto")                                                                       \
    XX(ST_MAPS_TEXT, "maps")                                                                       \
    XX(ST_MAPS_PROCMAP, "procmap-query")

typedef enum st_maps_method {
#define XX(e, s) e,
    ST_MAPS_METHOD_MAP(XX)
#undef XX
} st_maps_method_t;

/* Walks the VMAs of pid (0 = self). shared_files_only: only VMAs that are shared and backed by a
 * file (what shared memory is made of; the ioctl filters these in the kernel). ST_MAPS_PROCMAP
 * returns -ENOTTY/-EINVAL when the kernel lacks the ioctl; ST_MAPS_AUTO then reads the text.
 * *used (optional) tells which source answered: ST_MAPS_TEXT or ST_MAPS_PROCMAP alone, or
 * ST_MAPS_AUTO when both did. page_size is 0 for VMAs the text told. */
int st_procfs_read_vmas(int pid, st_maps_method_t method, bool shared_files_only, st_vma_cb cb,
                        void *arg, st_maps_method_t *used);
/* The same through a st_procfs_open_pid() fd; buf (may be NULL) is reused for maps text. */
int st_procfs_read_vmas_at(int pidfd, st_procfs_buf_t *buf, st_maps_method_t method,
                           bool shared_files_only, st_vma_cb cb, void *arg, st_maps_method_t *used);

/* ---- per-VMA residency from smaps (the scanner's lower bound) ---------------------------- */

typedef int (*st_smaps_cb)(uint64_t start, uint64_t end, uint64_t rss, uint64_t swap, void *arg);
/* Calls cb once per VMA block of an smaps buffer with its Rss and Swap in bytes. */
int st_procfs_parse_smaps(const char *buf, size_t len, st_smaps_cb cb, void *arg);

/* ---- process totals ---------------------------------------------------------------------- */

enum {
    ST_MEM_RSS = 1u << 0,
    ST_MEM_PSS = 1u << 1,
    ST_MEM_PSS_SHMEM = 1u << 2,
    ST_MEM_PRIVATE = 1u << 3, /* Private_Clean + Private_Dirty (+ Private_Hugetlb) */
    ST_MEM_SWAP = 1u << 4,
    ST_MEM_RSS_ANON = 1u << 5,
    ST_MEM_RSS_SHMEM = 1u << 6,
    ST_MEM_VM_SWAP = 1u << 7,
    ST_MEM_VM_RSS = 1u << 8,
};

/* smaps_rollup and status figures, in bytes; `present` says which were found. */
typedef struct st_proc_mem {
    uint64_t rss, pss, pss_shmem, private_bytes, swap; /* smaps_rollup */
    uint64_t rss_anon, rss_shmem, vm_swap, vm_rss;     /* status */
    unsigned present;                                  /* ST_MEM_* */
} st_proc_mem_t;

/* Each adds what it finds to *mem (fields it does not see are left alone). */
int st_procfs_parse_smaps_rollup(const char *buf, size_t len, st_proc_mem_t *mem);
int st_procfs_parse_status(const char *buf, size_t len, st_proc_mem_t *mem);
/* DESIGN §5 process_totals from mem: resident_set_bytes = Rss (VmRSS without rollup),
 * private_footprint_bytes = RssAnon + VmSwap, pss_bytes = Pss, uss_bytes = Private_*,
 * swap_bytes = VmSwap, rss_shmem_bytes = RssShmem. Only figures whose sources were present. */
void st_procfs_totals_from_mem(const st_proc_mem_t *mem, st_totals_t *out);
/* Reads smaps_rollup and status of pid. A kernel thread (empty rollup) gives present == 0. */
int st_procfs_read_totals(int pid, st_totals_t *out);
int st_procfs_read_totals_at(int pidfd, st_procfs_buf_t *buf, st_totals_t *out);

/* ---- /proc/PID/stat ---------------------------------------------------------------------- */

typedef struct st_proc_stat {
    int pid;
    char comm[64]; /* as the kernel shows it (at most 15 chars on Linux; kept short here) */
    char state;
    int ppid;
    unsigned flags;     /* PF_* (field 9) */
    uint64_t starttime; /* clock ticks after boot */
} st_proc_stat_t;

/* PF_KTHREAD: a kernel thread, which has no memory of its own to scan. */
#define ST_PF_KTHREAD 0x00200000u

/* 0 or ST_EFORMAT. comm may hold spaces and parentheses: the last ')' ends it. */
int st_procfs_parse_stat(const char *buf, size_t len, st_proc_stat_t *out);
int st_procfs_read_stat(int pid, st_proc_stat_t *out);
int st_procfs_read_stat_at(int pidfd, st_procfs_buf_t *buf, st_proc_stat_t *out);

/* ---- /proc/PID/fd ------------------------------------------------------------------------ */

typedef struct st_fd_info {
    int fd;
    char target[PATH_MAX]; /* readlink of /proc/PID/fd/N; " (deleted)" removed, deleted set */
    bool deleted;
    struct stat st; /* of the file itself (stat through the magic link) */
} st_fd_info_t;

/* Calls cb for every fd whose link target is a path or a memfd ("/..."), stat'ed through the
 * link; sockets, pipes and anon inodes are skipped. Every fd is stat'ed first and, when want is
 * not NULL, its link is read only if want(st, arg) says so (a stat alone rules out most fds).
 * An fd closed between readdir and stat is skipped. 0, the first non-zero cb value, or -errno
 * for the directory itself. */
typedef bool (*st_fd_want_cb)(const struct stat *st, void *arg);
typedef int (*st_fd_cb)(const st_fd_info_t *fd, void *arg);
int st_procfs_read_fds(int pid, st_fd_want_cb want, st_fd_cb cb, void *arg);
int st_procfs_read_fds_at(int pidfd, st_fd_want_cb want, st_fd_cb cb, void *arg);

/* ---- /proc/sysvipc/shm ------------------------------------------------------------------- */

typedef struct st_sysv_seg {
    int key;
    int shmid;
    unsigned perms;
    uint64_t size;
    int cpid, lpid;
    uint64_t nattch;
    unsigned uid;
    uint64_t rss, swap; /* bytes */
    bool have_rss;      /* the kernel printed rss and swap (2.6.35+) */
} st_sysv_seg_t;

typedef int (*st_sysv_cb)(const st_sysv_seg_t *seg, void *arg);
/* Skips the header line and any line it cannot read (counted in *bad, optional). */
int st_procfs_parse_sysvipc_shm(const char *buf, size_t len, st_sysv_cb cb, void *arg, size_t *bad);

/* ---- /proc/PID/mountinfo ----------------------------------------------------------------- */

typedef int (*st_mount_cb)(unsigned major, unsigned minor, const char *fstype,
                           const char *mountpoint, void *arg);
int st_procfs_parse_mountinfo(const char *buf, size_t len, st_mount_cb cb, void *arg);

/* The inode of /proc/PID/ns/<name> (e.g. "ipc", "mnt"); pid 0 = self. */
int st_procfs_ns_inode(int pid, const char *name, uint64_t *out);
int st_procfs_ns_inode_at(int pidfd, const char *name, uint64_t *out);

#endif
