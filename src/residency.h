/* SPDX-License-Identifier: MIT
 *
 * Resident and swapped bytes of one shared memory object, measured once from an fd to it
 * (private to the project). The scanner reaches an object through /proc/PID/map_files/START-END
 * or /proc/PID/fd/N and asks here; nothing here knows about processes.
 *
 * Sources, best first:
 *   cachestat  cachestat(2) (Linux 6.5+): nr_cache pages of the object's page cache. The kernel
 *              answers EPERM to a caller that neither owns nor may write the file (since the
 *              CVE-2025-21691 fix), so an answer is always exact.
 *   mincore    mincore(2) over a private read-only mapping of the whole object: for shmem it
 *              reports the object's page cache, including pages nobody maps. For a caller that
 *              cannot write or own the file the kernel pretends every page is resident, so this
 *              source is refused (-EPERM) unless the caller owns the file or can reopen it O_RDWR.
 *   st_blocks  hugetlbfs: the inode's block count is exactly its allocated huge pages (mincore
 *              there looks at the caller's page tables, not at the object, and there is no swap).
 * Swapped bytes are st_blocks*512 - resident (never negative): shmem's block count covers its
 * resident and its swapped pages.
 */
#ifndef SHMTRACK_RESIDENCY_H
#define SHMTRACK_RESIDENCY_H

#include <stdint.h>

/* name, the `residency_source` attribute value. sysvipc and smaps-lower-bound are set by the
 * scanner (from /proc/sysvipc/shm's rss/swap, and from smaps when nothing exact was possible). */
#define ST_RESIDENCY_SOURCE_MAP(XX)                                                                \
    XX(ST_RES_CACHESTAT, "cachestat")                                                              \
    XX(ST_RES_MINCORE, "mincore")                                                                  \
    XX(ST_RES_ST_BLOCKS, "st_blocks")                                                              \
    XX(ST_RES_SYSVIPC, "sysvipc")                                                                  \
    XX(ST_RES_SMAPS_LOWER_BOUND, "smaps-lower-bound")

typedef enum st_residency_source {
#define XX(e, s) e,
    ST_RESIDENCY_SOURCE_MAP(XX)
#undef XX
        ST_RES_COUNT
} st_residency_source_t;

const char *st_residency_source_name(st_residency_source_t source);

/* Which exact method to try: AUTO = cachestat, then mincore when the kernel lacks cachestat. */
typedef enum st_residency_method {
    ST_RESIDENCY_AUTO,
    ST_RESIDENCY_CACHESTAT,
    ST_RESIDENCY_MINCORE,
} st_residency_method_t;

typedef struct st_residency {
    uint64_t resident;     /* bytes in page cache (+ swap cache where the kernel counts it) */
    uint64_t swapped;      /* bytes in swap */
    uint64_t virtual_size; /* st_size */
    uint64_t dev, ino;     /* of what was measured, so callers can check they measured the object
                              they meant (an fd number or a range may have been reused) */
    st_residency_source_t source;
} st_residency_t;

/* pre: fd >= 0. 0, -EPERM when no exact answer is possible for this caller, or -errno. */
int st_residency_measure_fd(int fd, st_residency_method_t method, st_residency_t *out);
/* Opens path read-only (e.g. "/proc/42/map_files/7f..-7f.."), measures, closes. */
int st_residency_measure_path(const char *path, st_residency_method_t method, st_residency_t *out);
/* The same, path relative to dirfd (openat): saves the /proc/PID lookup when many objects are
 * reached through one process's map_files or fd directory. */
int st_residency_measure_at(int dirfd, const char *path, st_residency_method_t method,
                            st_residency_t *out);

#endif
