/* SPDX-License-Identifier: MIT
 *
 * Small helpers the standalone benchmarks share (header only: each bench is one program).
 */
#ifndef SHMTRACK_BENCH_UTIL_H
#define SHMTRACK_BENCH_UTIL_H

#include <time.h>

/* CLOCK_MONOTONIC in milliseconds. */
static inline double bench_now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* qsort comparator of doubles, ascending. */
static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#endif
