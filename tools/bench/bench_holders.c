/* SPDX-License-Identifier: MIT
 *
 * Holders seen twice: a process dump gets N holder nodes (st_process_add_holder, as the /proc scan
 * adds them), then the same N again (as the coordinator's merge adds its clients' records to the
 * process dumps the scan made). Prints, per N, both times and their ratio, measured side by side:
 * adding a holder that exists should cost about what adding a new one does, at any N (its edge
 * is found without reading the others). Usage: bench_holders [ROUNDS] (default 5; the median).
 */
#include "bench_util.h"
#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* One round: the times of the first and the second pass over n holders; -1 on failure. */
static int round_ms(int n, double *first, double *again)
{
    st_trace_t *t = NULL;
    st_global_dump_t *d = NULL;
    st_process_dump_t *p = NULL;
    if (st_trace_new(&t) < 0 || st_trace_add_dump(t, 1, 0, &d) < 0 ||
        st_dump_add_process(d, 10, "bench", &p) < 0)
        return -1;
    char key[64];
    double t0 = bench_now_ms(), t1 = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < n; i++) {
            snprintf(key, sizeof(key), "memfd:0:1:%d", 1000 + i);
            st_object_info_t info = {.key = key, .kind = ST_KIND_MEMFD, .name = "x", .size = 4096};
            if (st_process_add_holder(p, &info, 4096, pass * 2, NULL) < 0)
                return -1;
        }
        if (pass == 0)
            t1 = bench_now_ms();
    }
    *first = t1 - t0;
    *again = bench_now_ms() - t1;
    int ok = p->n_edges == (size_t)n ? 0 : -1; /* the second pass added none */
    st_trace_free(t);
    return ok;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 5;
    if (rounds < 1)
        rounds = 1;
    double *a = calloc((size_t)rounds, sizeof(*a)), *b = calloc((size_t)rounds, sizeof(*b));
    if (a == NULL || b == NULL)
        return 1;
    printf("holders of one process added, then added again (median of %d rounds)\n", rounds);
    printf("%8s %12s %12s %8s\n", "holders", "first ms", "again ms", "ratio");
    for (int n = 1000; n <= 16000; n *= 2) {
        for (int r = 0; r < rounds; r++)
            if (round_ms(n, &a[r], &b[r]) < 0) {
                fprintf(stderr, "bench_holders: a round failed at %d holders\n", n);
                return 1;
            }
        qsort(a, (size_t)rounds, sizeof(*a), bench_cmp_double);
        qsort(b, (size_t)rounds, sizeof(*b), bench_cmp_double);
        double fa = a[rounds / 2], fb = b[rounds / 2];
        printf("%8d %12.2f %12.2f %8.2f\n", n, fa, fb, fa > 0 ? fb / fa : 0.0);
    }
    free(a);
    free(b);
    return 0;
}
