/* SPDX-License-Identifier: MIT
 *
 * Growable arrays for the core (private to src/): one doubling helper shared by the model, the
 * scanner, the summary and the JSON reader, instead of a copy in each.
 */
#ifndef SHMTRACK_ARRAY_H
#define SHMTRACK_ARRAY_H

#include <stddef.h>
#include <stdint.h>

/* Grows *arr (elements of elem bytes, *cap of them) to hold at least need elements, doubling
 * from 8; new elements are zeroed. Returns 0 or -ENOMEM, leaving *arr and *cap as they were. */
int st__array_grow(void **arr, size_t *cap, size_t need, size_t elem);

/* A 64-bit key and what it sorts: a position, a pointer cast to uintptr_t. */
typedef struct st__keyed {
    uint64_t key;
    uintptr_t val;
} st__keyed_t;

/* Sorts a[0..n) by key, stably (LSD radix, 11 bits a pass; tmp: n elements of scratch). */
void st__radix_sort(st__keyed_t *a, st__keyed_t *tmp, size_t n);
/* st__radix_sort, the same order, for keys spread evenly over their 64 bits (hashes, guids):
 * about a third of the work for them. Other keys cost two passes more than st__radix_sort. */
void st__sort_hashes(st__keyed_t *a, st__keyed_t *tmp, size_t n);

#endif
