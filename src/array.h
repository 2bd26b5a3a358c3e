/* SPDX-License-Identifier: MIT
 *
 * Growable arrays for the core (private to src/): one doubling helper shared by the model, the
 * scanner, the summary and the JSON reader, instead of a copy in each.
 */
#ifndef SHMTRACK_ARRAY_H
#define SHMTRACK_ARRAY_H

#include <stddef.h>

/* Grows *arr (elements of elem bytes, *cap of them) to hold at least need elements, doubling
 * from 8; new elements are zeroed. Returns 0 or -ENOMEM, leaving *arr and *cap as they were. */
int st__array_grow(void **arr, size_t *cap, size_t need, size_t elem);

#endif
