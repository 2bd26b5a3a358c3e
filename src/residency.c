/* SPDX-License-Identifier: MIT
 *
 * Residency of one object from an fd (see residency.h for the sources and their traps). The
 * cachestat structures are defined here because Debian 12's headers predate Linux 6.5.
 */
#include "residency.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef __NR_cachestat
#define __NR_cachestat 451
#endif
#ifndef HUGETLBFS_MAGIC
#define HUGETLBFS_MAGIC 0x958458f6
#endif

struct st_cachestat_range {
    uint64_t off;
    uint64_t len;
};

struct st_cachestat {
    uint64_t nr_cache;
    uint64_t nr_dirty;
    uint64_t nr_writeback;
    uint64_t nr_evicted;
    uint64_t nr_recently_evicted;
};

static const char *const source_names[] = {
#define XX(e, s) s,
    ST_RESIDENCY_SOURCE_MAP(XX)
#undef XX
};

const char *st_residency_source_name(st_residency_source_t source)
{
    return (unsigned)source < ST_RES_COUNT ? source_names[source] : "?";
}

/* Whether mincore's answer on fd is the truth for this caller: the kernel's can_do_mincore() wants
 * the caller to own the inode (or hold CAP_FOWNER) or to have write permission. We test the same
 * two things: ownership, and whether the file can be reopened for writing. */
static bool mincore_trusted(int fd, const struct stat *st)
{
    if (st->st_uid == geteuid())
        return true;
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    int wfd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY);
    if (wfd < 0)
        return false;
    close(wfd);
    return true;
}

static int measure_mincore(int fd, const struct stat *st, uint64_t *resident)
{
    long page = sysconf(_SC_PAGESIZE);
    uint64_t size = (uint64_t)st->st_size;
    *resident = 0;
    if (size == 0)
        return 0;
    if (!mincore_trusted(fd, st))
        return -EPERM;
    /* One mapping of the whole object, queried in chunks so the vector stays small. */
    void *addr = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (addr == MAP_FAILED)
        return -errno;
    int rc = 0;
    const size_t chunk_pages = 1u << 16;
    unsigned char *vec = malloc(chunk_pages);
    if (vec == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    uint64_t pages = (size + (uint64_t)page - 1) / (uint64_t)page;
    for (uint64_t first = 0; first < pages; first += chunk_pages) {
        uint64_t n = pages - first < chunk_pages ? pages - first : chunk_pages;
        if (mincore((char *)addr + first * (uint64_t)page, n * (uint64_t)page, vec) < 0) {
            rc = -errno;
            goto out;
        }
        for (uint64_t i = 0; i < n; i++)
            if (vec[i] & 1)
                *resident += (uint64_t)page;
    }
out:
    free(vec);
    munmap(addr, size);
    return rc;
}

int st_residency_measure_fd(int fd, st_residency_method_t method, st_residency_t *out)
{
    struct stat st;
    struct statfs sfs;
    memset(out, 0, sizeof(*out));
    if (fstat(fd, &st) < 0)
        return -errno;
    out->dev = (uint64_t)st.st_dev;
    out->ino = (uint64_t)st.st_ino;
    out->virtual_size = st.st_size > 0 ? (uint64_t)st.st_size : 0;
    uint64_t blocks = (uint64_t)st.st_blocks * 512u;
    /* hugetlbfs reports its huge page size as st_blksize; only then is fstatfs worth a call */
    if (st.st_blksize > sysconf(_SC_PAGESIZE) && fstatfs(fd, &sfs) == 0 &&
        (unsigned long)sfs.f_type == (unsigned long)HUGETLBFS_MAGIC) {
        out->resident = blocks;
        out->source = ST_RES_ST_BLOCKS;
        return 0;
    }
    int rc = -ENOSYS;
    if (method != ST_RESIDENCY_MINCORE) {
        struct st_cachestat_range range = {0, 0}; /* len 0: to the end of the file */
        struct st_cachestat cs;
        memset(&cs, 0, sizeof(cs));
        if (syscall(__NR_cachestat, fd, &range, &cs, 0) == 0) {
            out->resident = cs.nr_cache * (uint64_t)sysconf(_SC_PAGESIZE);
            out->source = ST_RES_CACHESTAT;
            rc = 0;
        } else {
            rc = -errno;
        }
        if (rc < 0 && !(method == ST_RESIDENCY_AUTO && rc == -ENOSYS))
            return rc;
    }
    if (rc < 0) {
        if ((rc = measure_mincore(fd, &st, &out->resident)) < 0)
            return rc;
        out->source = ST_RES_MINCORE;
    }
    out->swapped = blocks > out->resident ? blocks - out->resident : 0;
    return 0;
}

int st_residency_measure_path(const char *path, st_residency_method_t method, st_residency_t *out)
{
    return st_residency_measure_at(AT_FDCWD, path, method, out);
}

int st_residency_measure_at(int dirfd, const char *path, st_residency_method_t method,
                            st_residency_t *out)
{
    int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return -errno;
    int rc = st_residency_measure_fd(fd, method, out);
    close(fd);
    return rc;
}
