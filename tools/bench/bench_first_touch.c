/* SPDX-License-Identifier: MIT
 *
 * What a first touch of fresh anonymous memory costs on this machine, 64 MiB at a time: each step
 * maps a new region (never reused), touches one byte per 4 KiB page and prints the milliseconds it
 * took, then the ratio of the slowest step to the median of the first eight. On bare metal every
 * step costs about the same. On a VM whose host backs guest memory lazily, the steps past the
 * memory the guest has touched since it booted cost many times more: that is what makes a
 * coordinator that keeps every dump in memory (bench_coordinator KEEP 0) slow after its first
 * ~1 GiB on the VM these figures come from (docs/ipc.md, eighth round). Usage: bench_first_touch
 * [STEPS [huge]] (default 40 steps, 2.5 GiB; "huge": MADV_HUGEPAGE on each region, as glibc's
 * large blocks may get). The regions stay mapped until the program exits.
 */
#include "bench_util.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define STEP ((size_t)64 << 20)

int main(int argc, char **argv)
{
    int steps = argc > 1 ? atoi(argv[1]) : 40;
    bool huge = argc > 2 && strcmp(argv[2], "huge") == 0;
    if (steps < 8 || steps > 1024) {
        fprintf(stderr, "usage: bench_first_touch [STEPS (8-1024) [huge]]\n");
        return 2;
    }
    double *ms = calloc((size_t)steps, sizeof(*ms));
    if (ms == NULL)
        return 1;
    printf("first touch of fresh anonymous memory, ms per 64 MiB step (%s pages):\n",
           huge ? "MADV_HUGEPAGE" : "4 KiB");
    double worst = 0;
    for (int i = 0; i < steps; i++) {
        char *p = mmap(NULL, STEP, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            perror("mmap");
            return 1;
        }
        if (huge)
            (void)madvise(p, STEP, MADV_HUGEPAGE);
        double t = bench_now_ms();
        for (size_t o = 0; o < STEP; o += 4096)
            ((volatile char *)p)[o] = 1;
        ms[i] = bench_now_ms() - t;
        worst = ms[i] > worst ? ms[i] : worst;
        printf("%s%.1f", i % 10 ? " " : (i ? "\n" : ""), ms[i]);
    }
    double first[8];
    memcpy(first, ms, sizeof(first));
    qsort(first, 8, sizeof(first[0]), bench_cmp_double);
    double base = (first[3] + first[4]) / 2;
    printf("\nslowest step / median of the first eight: %.1f / %.1f = %.1fx\n", worst, base,
           base > 0 ? worst / base : 0);
    free(ms);
    return 0;
}
