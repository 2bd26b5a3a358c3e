/* SPDX-License-Identifier: MIT
 *
 * The interposer's whole contract with the operating system (private to allocator/).
 *
 * Everything the preload asks of the kernel goes through this header, and one source file per OS
 * implements it (prim/linux.c; CMake picks it by CMAKE_SYSTEM_NAME), in the manner of mimalloc's
 * prim.h. Two families of functions live here:
 *
 *  - the "real calls" (st__prim_mmap ... st__prim_shmctl) keep libc's contract exactly: the same
 *    result and errno as the libc function of the same name, but they never enter the dynamic
 *    linker or libc's wrappers, so a hook can call them from anywhere, even while the preload is
 *    still starting or while another library's mmap hook is on the stack;
 *  - the helpers return 0 or -errno and may clobber errno; a hook saves and restores errno around
 *    them. None of them allocates, uses stdio or takes a lock of its own.
 *
 * A VMA's identity (dev, ino of the shmem inode behind it) comes from PROCMAP_QUERY, an ioctl on
 * /proc/self/maps (Linux 6.11+), with a read of /proc/self/maps into a static buffer as fallback.
 */
#ifndef SHMTRACK_ALLOCATOR_PRIM_H
#define SHMTRACK_ALLOCATOR_PRIM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct stat;
struct shmid_ds;

/* The functions on the path of a tracked mmap/munmap/memfd_create/ftruncate/close: GCC puts them
 * together (.text.hot), so that a hook walks to as few code pages as possible after its system
 * call (with page-table isolation and no PCID, each one is a TLB miss). */
#define ST__HOT __attribute__((hot))

/* The fast paths of the registry's fast table (registry.h) and of private mappings: mmap, munmap,
 * memfd_create, ftruncate, close, what they call and the raw calls they make. GNU ld's default
 * script sorts every .text.sorted.* input section by name into one run, so these sit together
 * across the three source files, right after ST__FAST_FIRST (one empty function, in a section whose
 * name sorts first), which aligns the run to a page; it fits in one page, so a hook of the
 * short-lived memfd pattern walks to one page of our code. */
#define ST__FAST __attribute__((section(".text.sorted.st_1fast")))
#define ST__FAST_FIRST __attribute__((section(".text.sorted.st_0fast"), aligned(4096), used))

/* ---- real calls: libc's contract (result, errno) --------------------------------------------- */

void *st__prim_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int st__prim_munmap(void *addr, size_t len);
void *st__prim_mremap(void *old_addr, size_t old_len, size_t new_len, int flags, void *new_addr);
int st__prim_memfd_create(const char *name, unsigned int flags);
int st__prim_ftruncate(int fd, off_t len);
int st__prim_close_call(int fd); /* close(2) without libc's cancellation point */
int st__prim_shmget(key_t key, size_t size, int flags);
void *st__prim_shmat(int shmid, const void *addr, int flags);
int st__prim_shmdt(const void *addr);
int st__prim_shmctl(int shmid, int cmd, struct shmid_ds *buf);

/* ---- helpers: 0 or -errno, errno unspecified afterwards -------------------------------------- */

/* One VMA as the kernel describes it. dev is split into major/minor as /proc shows them. */
typedef struct st__vma {
    uint64_t start, end; /* [start, end) */
    uint64_t offset;     /* file offset of start, in bytes */
    uint64_t ino;
    uint32_t dev_major, dev_minor;
    unsigned shared : 1;   /* VM_SHARED (maps shows 's') */
    unsigned writable : 1; /* VM_WRITE */
} st__vma_t;

/* The VMA that contains addr. -ENOENT when none does. Uses PROCMAP_QUERY when the kernel has it
 * and /proc/self/maps otherwise.
 * pre: callers serialise (the registry lock): the cached /proc/self/maps fd is shared state. */
int st__prim_vma_query(uintptr_t addr, st__vma_t *out);

/* Parses the first fields of a /proc/<pid>/maps (or smaps header) line. 0, or -EINVAL when the
 * line is not a VMA header. */
int st__prim_parse_maps_line(const char *line, size_t len, st__vma_t *out);

/* Forces the /proc/self/maps parsing path (tests); returns the previous setting. */
int st__prim_vma_force_fallback(int on);

/* Forgets the cached /proc/self/maps fd without closing a descriptor that is no longer ours. Called
 * in a fork child (the inherited fd describes the parent's address space). */
void st__prim_after_fork(void);

/* What fstat says about an fd that is being mapped shared. */
typedef struct st__fdinfo {
    uint64_t ino, size;
    uint64_t blocks;   /* bytes allocated: st_blocks * 512 */
    uint64_t ctime_ns; /* inode change time, ns since the epoch */
    uint32_t dev_major, dev_minor;
    uint32_t uid;
    int type; /* ST__FD_REG, ST__FD_DEVZERO or ST__FD_OTHER */
} st__fdinfo_t;

enum { ST__FD_OTHER, ST__FD_REG, ST__FD_DEVZERO };

int st__prim_fd_stat(int fd, st__fdinfo_t *out);

/* The kind (ST_KIND_* of src/model.h) of a regular file that is mapped shared: hugetlb on
 * hugetlbfs, memfd when /proc/self/fd/N names "/memfd:...", posix on any other tmpfs/shmem file.
 * -ENOTSUP for anything else (a disk file mapped shared is not shared memory). When name is not
 * NULL it receives the last path component (or the memfd name), cut to len-1 bytes. */
int st__prim_fd_kind(int fd, int *kind, char *name, size_t len);

/* cachestat(2) over the whole file (Linux 6.5+): the pages of its page cache (for shmem: every
 * allocated page in memory, written or not). -ENOSYS on older kernels, -EPERM for a caller that
 * neither owns nor may write the file. */
int st__prim_cachestat(int fd, uint64_t *pages);

/* Calls cb for every descriptor this process has open (a walk of /proc/self/fd into buf, the
 * caller's scratch space, with getdents64). A non-zero return from cb stops the walk. */
int st__prim_each_fd(char *buf, size_t cap, int (*cb)(int fd, void *ctx), void *ctx);

/* The inode of this process's IPC namespace (/proc/self/ns/ipc), which qualifies SysV ids. */
int st__prim_ipc_ns(uint64_t *ino);

/* A SysV segment's size and creator pid (IPC_STAT). */
int st__prim_shm_stat(int shmid, uint64_t *size, int *cpid);

/* getenv() without libc: a walk of environ, safe during early initialisation. NULL when absent. */
const char *st__prim_getenv(const char *name);

/* Private anonymous memory for the registry's arena: reserved, committed on first touch. */
void *st__prim_arena_map(size_t len);
void st__prim_arena_unmap(void *p, size_t len);

/* mincore over [addr, addr+len) into vec (one byte per page). */
int st__prim_mincore(void *addr, size_t len, unsigned char *vec);

/* Calls line_cb on every line of a (proc) file, without its '\n'; lines longer than the buffer
 * are cut. buf is the caller's scratch space (static in the preload). A non-zero return from
 * line_cb stops the walk and is returned. */
typedef int (*st__prim_line_cb)(const char *line, size_t len, void *ctx);
int st__prim_read_lines(const char *path, char *buf, size_t cap, st__prim_line_cb line_cb,
                        void *ctx);

/* Raw file access for the registry file written at exit (tests) and for logs. */
int st__prim_open(const char *path, int flags, int mode);
int st__prim_write_all(int fd, const void *buf, size_t len);
int st__prim_close(int fd);

int st__prim_getpid(void);
uint32_t st__prim_geteuid(void);
size_t st__prim_page_size(void);

#endif
