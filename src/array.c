/* SPDX-License-Identifier: MIT
 *
 * st__array_grow(), st__radix_sort() and st__sort_hashes(): see array.h.
 */
#include "array.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { BITS = 11, BUCKETS = 1 << BITS };

/* One stable counting pass of the radix sort: a by the BITS bits of the key at shift. */
static void radix_pass(st__keyed_t *a, st__keyed_t *tmp, size_t n, unsigned shift)
{
    size_t count[BUCKETS];
    memset(count, 0, sizeof(count));
    for (size_t i = 0; i < n; i++)
        count[(a[i].key >> shift) & (BUCKETS - 1)]++;
    if (count[(a[0].key >> shift) & (BUCKETS - 1)] == n)
        return; /* every key has this digit */
    size_t sum = 0;
    for (size_t b = 0; b < BUCKETS; b++) {
        size_t c = count[b];
        count[b] = sum;
        sum += c;
    }
    for (size_t i = 0; i < n; i++)
        tmp[count[(a[i].key >> shift) & (BUCKETS - 1)]++] = a[i];
    memcpy(a, tmp, n * sizeof(*a));
}

void st__radix_sort(st__keyed_t *a, st__keyed_t *tmp, size_t n)
{
    for (unsigned shift = 0; shift < 64 && n > 1; shift += BITS)
        radix_pass(a, tmp, n, shift);
}

void st__sort_hashes(st__keyed_t *a, st__keyed_t *tmp, size_t n)
{
    if (n < 2)
        return;
    /* the top 22 bits first (two passes instead of six): what is left out of order is a key
     * among the few with the same top bits, put in place by an insertion sort. Too many moves
     * mean keys that are not evenly spread: the full sort then (stable, so it gives the same
     * order from here as from the start) */
    radix_pass(a, tmp, n, 64 - 2 * BITS);
    radix_pass(a, tmp, n, 64 - BITS);
    size_t moves = 0;
    for (size_t i = 1; i < n; i++) {
        st__keyed_t x = a[i];
        size_t j = i;
        for (; j > 0 && a[j - 1].key > x.key; j--)
            a[j] = a[j - 1];
        a[j] = x;
        if ((moves += i - j) > n) {
            st__radix_sort(a, tmp, n);
            return;
        }
    }
}

int st__array_grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 8;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2 / elem)
            return -ENOMEM;
        ncap *= 2;
    }
    void *p = realloc(*arr, ncap * elem);
    if (p == NULL)
        return -ENOMEM;
    memset((char *)p + *cap * elem, 0, (ncap - *cap) * elem);
    *arr = p;
    *cap = ncap;
    return 0;
}
