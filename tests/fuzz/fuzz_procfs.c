/* SPDX-License-Identifier: MIT
 *
 * libFuzzer target for the /proc parsers (src/procfs.c): every parser gets the same bytes, which
 * are not NUL-terminated (the copy has exactly `size` bytes), so a read past the end is caught by
 * ASan. The first byte picks nothing: all parsers run on every input. Seed corpus:
 * tests/fuzz/corpus/fuzz_procfs/ (copies of the tests/data/proc fixtures).
 */
#include "procfs.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int vma_cb(const st_vma_t *vma, void *arg)
{
    (*(size_t *)arg) += strlen(vma->path) + (vma->end - vma->start != 0);
    return 0;
}

static int smaps_cb(uint64_t start, uint64_t end, uint64_t rss, uint64_t swap, void *arg)
{
    (*(size_t *)arg) += (size_t)(rss + swap + end - start);
    return 0;
}

static int seg_cb(const st_sysv_seg_t *seg, void *arg)
{
    (*(size_t *)arg) += (size_t)seg->size;
    return 0;
}

static int mount_cb(unsigned major, unsigned minor, const char *fstype, const char *mnt, void *arg)
{
    (*(size_t *)arg) += strlen(fstype) + strlen(mnt) + major + minor;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size ? size : 1);
    if (buf == NULL)
        return 0;
    memcpy(buf, data, size);
    size_t sink = 0, bad = 0;
    st_vma_t *vma = malloc(sizeof(*vma));
    if (vma != NULL) {
        st_procfs_parse_maps_line(buf, size, vma);
        free(vma);
    }
    st_procfs_parse_maps(buf, size, vma_cb, &sink, &bad);
    st_procfs_parse_smaps(buf, size, smaps_cb, &sink);
    st_proc_mem_t mem;
    memset(&mem, 0, sizeof(mem));
    st_procfs_parse_smaps_rollup(buf, size, &mem);
    st_procfs_parse_status(buf, size, &mem);
    st_totals_t totals;
    st_procfs_totals_from_mem(&mem, &totals);
    st_proc_stat_t st;
    st_procfs_parse_stat(buf, size, &st);
    st_procfs_parse_sysvipc_shm(buf, size, seg_cb, &sink, &bad);
    st_procfs_parse_mountinfo(buf, size, mount_cb, &sink);
    free(buf);
    return 0;
}
