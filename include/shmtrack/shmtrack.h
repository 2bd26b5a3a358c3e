/* SPDX-License-Identifier: MIT
 *
 * shmtrack's public API: what a program may tell the tracker about its shared memory.
 *
 * A program built against this header runs unchanged whether or not libshmtrack.so is preloaded.
 * The functions are static inline trampolines: on first use they look the preload's entry points
 * up with dlsym() on the global scope (dlopen(NULL)), cache the answer, and return -ENOSYS when the
 * preload is absent. Weak symbols would have been lighter, but GNU ld resolves an undefined weak
 * reference in a position-independent executable to 0 at link time (x86-64 without
 * -z dynamic-undefined-weak), so the preload would never be found; a dlsym() once per call site
 * works for every executable and shared library. Link with ${CMAKE_DL_LIBS} (pkg-config and the
 * CMake package do) on C libraries that keep dlsym() in libdl.
 *
 * Environment: SHMTRACK_IMPORTANCE=N gives every object the process holds the claim N (the same
 * as calling shmtrack_set_importance() on each); SHMTRACK_DISABLE=1 turns the preload into a
 * pass-through, and these functions then return -ENOSYS.
 */
#ifndef SHMTRACK_SHMTRACK_H
#define SHMTRACK_SHMTRACK_H

#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Version of the preload's entry points these trampolines look for. */
#define SHMTRACK_ABI_VERSION 1

/** @cond internal */
/* Looks name up once in the global scope. The cache holds the function, or the cache's own
 * address when the preload is absent (so the lookup is not repeated). */
static inline void *shmtrack__lookup(void **cache, const char *name)
{
    void *fn = __atomic_load_n(cache, __ATOMIC_ACQUIRE);
    if (fn == NULL) {
        void *self = dlopen(NULL, RTLD_LAZY);
        fn = self != NULL ? dlsym(self, name) : NULL;
        if (fn == NULL)
            fn = (void *)cache;
        __atomic_store_n(cache, fn, __ATOMIC_RELEASE);
    }
    return fn == (void *)cache ? NULL : fn;
}
/** @endcond */

/**
 * Claims the shared memory object mapped at @p addr with @p importance.
 *
 * Every holder of an object claims it with an importance; the highest claim owns the object and
 * is charged its resident bytes (ties split equally). Without an explicit claim the coordinator's
 * policy decides (`creator`: the creating process claims 2, other holders 0). An explicit claim
 * overrides the policy for this process and this object only.
 *
 * @param addr       any address inside a shared mapping of the object (not necessarily its start)
 * @param importance the claim; higher wins
 * @return 0; -ENOENT when no tracked shared memory is mapped at @p addr; -EINVAL when @p addr is
 *         NULL; -ENOSYS when libshmtrack.so is not preloaded or is disabled.
 */
static inline int shmtrack_set_importance(const void *addr, int importance)
{
    static void *cache;
    int (*fn)(const void *, int);
    *(void **)&fn = shmtrack__lookup(&cache, "shmtrack_v1_set_importance");
    return fn != NULL ? fn(addr, importance) : -ENOSYS;
}

/**
 * Names the shared memory object mapped at @p addr in dumps and reports ("label").
 *
 * The label is kept per process and per object; the last call wins. Labels longer than 31 bytes
 * are cut.
 *
 * @param addr any address inside a shared mapping of the object
 * @param name a NUL-terminated label; not NULL
 * @return 0; -ENOENT when no tracked shared memory is mapped at @p addr; -EINVAL when @p addr or
 *         @p name is NULL; -ENOSPC when the preload has no room left for labels; -ENOSYS when
 *         libshmtrack.so is not preloaded or is disabled.
 */
static inline int shmtrack_label(const void *addr, const char *name)
{
    static void *cache;
    int (*fn)(const void *, const char *);
    *(void **)&fn = shmtrack__lookup(&cache, "shmtrack_v1_label");
    return fn != NULL ? fn(addr, name) : -ENOSYS;
}

#ifdef __cplusplus
}
#endif

#endif
