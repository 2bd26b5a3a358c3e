/* SPDX-License-Identifier: MIT
 *
 * The /proc scanner (private to the project): every shared memory object of a set of processes,
 * counted once, with its holders and an owner, from /proc alone (no preload). `shmtrack scan` and
 * the coordinator (for processes and mappings its clients cannot report) both call it.
 *
 * What it finds, per process: each shared, file-backed VMA on shmem or hugetlbfs (shared anonymous
 * "/dev/zero (deleted)", memfd, files on tmpfs such as /dev/shm, SysV "/SYSV%08x", hugetlbfs), and
 * each fd to a memfd or a tmpfs/hugetlbfs file. Outside processes: SysV segments with no attachment
 * (/proc/sysvipc/shm) and files under /dev/shm that no process maps or holds ("unheld": a global
 * node with no holder, which the report shows as unattributed).
 *
 * Keys follow DESIGN §1: "<kind>:<major>:<minor>:<ino>" of the backing inode; SysV
 * "sysv:<ipc-ns inode of the holder>:<shmid>". The kind comes from the name and the filesystem:
 * "/SYSV..." is sysv; "/dev/zero" on the kernel's internal shm mount is anon; "/anon_hugepage" and
 * anything on hugetlbfs is hugetlb; "/memfd:..." is memfd; any other file on a tmpfs is posix.
 *
 * Per object, measured exactly once (residency.h): cachestat (or mincore) on an fd opened through
 * /proc/PID/map_files/START-END or /proc/PID/fd/N (map_files needs CAP_SYS_ADMIN), or the file's
 * own path under /dev/shm; SysV in the scanner's IPC namespace from /proc/sysvipc/shm (rss, swap:
 * the kernel's own count). Every opened file is checked to be the object's (dev, ino) before it
 * is believed. When no exact source is permitted, the object's size is a lower bound: the largest
 * Rss of any single VMA mapping it (from /proc/PID/smaps of its mappers), swapped_size the largest
 * such VMA's Swap, virtual_size the largest (offset + length) of those VMAs; the global node gets
 * residency_source = "smaps-lower-bound" and the dump a warning naming the object. Every global
 * node carries `residency_source` (cachestat | mincore | st_blocks | sysvipc | smaps-lower-bound).
 *
 * Holders: a holder's mapped_size is the bytes it maps of the object, summed over all its VMAs of
 * that object, so an object mapped twice counts twice there (mapped_size may exceed the object's
 * virtual size); an fd-only holder has mapped_size 0. The object's size is counted once regardless.
 *
 * Ownership (--policy): creator (default): a SysV segment's creator (cpid) when it is among the
 * holders; otherwise the holder that started first (starttime in /proc/PID/stat, ties to the lowest
 * pid) claims importance 2 and the others 0. equal: every holder 0. first-touch cannot be known
 * from /proc and is refused with ST_EUSAGE.
 *
 * Races: a process that vanishes (ENOENT/ESRCH) or cannot be read (EACCES/EPERM) while it is read
 * is skipped whole and recorded with st_dump_add_problem(pid, path, errno); an object whose
 * measurement could not complete because every way to it vanished is left out (never a partial
 * object) and recorded the same way. The scan succeeds when anything was read.
 */
#ifndef SHMTRACK_SCAN_H
#define SHMTRACK_SCAN_H

#include "model.h"
#include "procfs.h"
#include "residency.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct st_scan_options {
    const int *pids; /* explicit pids (--pid), n_pids of them; each must exist */
    size_t n_pids;
    int tree_root; /* > 0: this process and all its descendants (--tree) */
                   /* neither: every process but the scanner itself */
    st_policy_t policy;
    st_maps_method_t maps_method;           /* tests force ST_MAPS_TEXT or ST_MAPS_PROCMAP */
    st_residency_method_t residency_method; /* tests force ST_RESIDENCY_MINCORE */
    bool include_unheld;    /* unattached SysV and unheld /dev/shm files (default true) */
    const char *devshm_dir; /* default "/dev/shm" */
    uint64_t dump_id;       /* for st_scan_trace; default 1 */
    bool close_async;       /* close the fds opened to measure objects on a detached thread after
                               measuring, instead of every few hundred on the way (for a command
                               that builds and writes the trace next, then exits; default false).
                               Keeps up to one fd per object open meanwhile: raise RLIMIT_NOFILE */
    unsigned
        threads; /* threads that read processes and measure objects; 0 (default): one per
                    online CPU, at most 4; at most 8. The dump is the same whatever the number. */
    /* Sorted pids whose totals the caller replaces with its own (the coordinator: its clients
     * report theirs): their status and smaps_rollup are not read, so their process dumps get no
     * totals from the scan. smaps_rollup is still opened, so a process the scanner may not read
     * is refused at the same file as before. NULL: every process's totals are read. */
    const int *own_totals;
    size_t n_own_totals;
} st_scan_options_t;

/* Defaults: all processes, creator policy, ST_MAPS_AUTO, ST_RESIDENCY_AUTO, include_unheld. */
void st_scan_options_init(st_scan_options_t *opts);

/* The pids the options select, sorted. An explicit pid or tree root that does not exist: -ESRCH
 * with *bad_pid (optional) set to it. first-touch policy: ST_EUSAGE. */
int st_scan_resolve_pids(const st_scan_options_t *opts, int **pids, size_t *n_pids, int *bad_pid);

/* Scans exactly these pids into an existing global dump (the coordinator's entry point).
 *
 * For each pid read completely, finds or adds its process dump (name = comm when it had none),
 * replaces the totals it could read, and adds one holder node "shared_memory/<key>" + ownership
 * edge per object it holds (an existing holder node of that key is updated, not duplicated). For
 * each object it adds or updates the global node (entries size, virtual_size, swapped_size, key,
 * kind, name, creator_pid, label "" and residency_source); the scan's measurement replaces what
 * was there, so call it before merging in fresher client reports if those should win. Unheld
 * objects (opts->include_unheld) are added with no holder; in a scan of a subset of processes a
 * /dev/shm file counts as unheld only after every other readable process was checked not to hold
 * it (a warning names processes that could not be checked). Problems and warnings are appended
 * to dump. opts->pids/tree_root are ignored here. Returns 0, ST_EUSAGE (first-touch), -ENOMEM,
 * or, when not one process could be read, the error that refused one (e.g. -EACCES) or -ESRCH
 * when they all vanished. */
int st_scan_into_dump(const st_scan_options_t *opts, const int *pids, size_t n_pids,
                      st_global_dump_t *dump);

/* Resolves the pids and scans them into a new trace with one dump (id opts->dump_id, trigger
 * "explicitly_triggered", ts CLOCK_MONOTONIC in us) and metadata policy/host/kernel. */
int st_scan_trace(const st_scan_options_t *opts, st_trace_t **out, int *bad_pid);

#endif
