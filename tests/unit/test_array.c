/* SPDX-License-Identifier: MIT
 *
 * Unit tests for the core's arrays (src/array.c): st__sort_hashes gives st__radix_sort's order,
 * stable, for evenly spread keys (its quick way) and for keys that are not (its fallback).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "array.h"

#include <stdlib.h>
#include <string.h>

static uint64_t next(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    uint64_t x = *s;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    return x ^ (x >> 33);
}

/* Both sorts of the same n keys (val: the original position) give the same array. */
static void check_same(const uint64_t *keys, size_t n)
{
    st__keyed_t *a = malloc(2 * n * sizeof(*a)), *b = malloc(2 * n * sizeof(*b));
    assert_non_null(a);
    assert_non_null(b);
    for (size_t i = 0; i < n; i++)
        a[i] = b[i] = (st__keyed_t){keys[i], i};
    st__radix_sort(a, a + n, n);
    st__sort_hashes(b, b + n, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(a[i].key, b[i].key);
        assert_int_equal(a[i].val, b[i].val); /* stable: equal keys keep their order */
        if (i > 0)
            assert_true(b[i - 1].key <= b[i].key);
    }
    free(a);
    free(b);
}

static void test_sort_hashes(void **state)
{
    (void)state;
    enum { N = 50000 };
    uint64_t *k = malloc(N * sizeof(*k)), s = 1;
    assert_non_null(k);
    /* hashes, with some repeated (equal keys, equal top bits) */
    for (size_t i = 0; i < N; i++)
        k[i] = i % 97 == 0 && i > 0 ? k[i - 1] : next(&s);
    check_same(k, N);
    /* small counts, the empty one included */
    for (size_t n = 0; n < 40; n++)
        check_same(k, n);
    /* not spread: the top bits all equal (the fallback), then only a few top values */
    for (size_t i = 0; i < N; i++)
        k[i] = next(&s) >> 30;
    check_same(k, N);
    for (size_t i = 0; i < N; i++)
        k[i] = (next(&s) & 0xffff) | ((uint64_t)(i % 3) << 62);
    check_same(k, N);
    /* sorted already, and reversed */
    for (size_t i = 0; i < N; i++)
        k[i] = (uint64_t)i << 40;
    check_same(k, N);
    for (size_t i = 0; i < N; i++)
        k[i] = (uint64_t)(N - i) << 40;
    check_same(k, N);
    free(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sort_hashes),
    };
    return cmocka_run_group_tests_name("array", tests, NULL, NULL);
}
