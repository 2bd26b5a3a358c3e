/* SPDX-License-Identifier: MIT
 *
 * libFuzzer target for the JSON trace reader (src/trace_json.c). Any input must either be
 * rejected with an error text or load; what loads must write, read back, and write again to the
 * same bytes (the writer's output is canonical), so the writer is fuzzed through the reader too.
 * Built only with SHMTRACK_FUZZ=ON (clang); seed corpus in tests/fuzz/corpus/fuzz_trace_reader/.
 */
#include "trace_json.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *write_mem(const st_trace_t *t, size_t *len)
{
    char *buf = NULL;
    st_error_t err;
    FILE *f = open_memstream(&buf, len);
    if (f == NULL)
        abort();
    if (st_trace_write_stream(t, f, &err) != 0)
        abort();
    fclose(f);
    return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    st_trace_t *t = NULL, *t2 = NULL;
    st_error_t err;
    int rc = st_trace_read_buffer((const char *)data, size, "fuzz", &t, &err);
    if (rc != 0) {
        /* rejected: with a code the reader documents and a sentence saying why */
        if ((rc != ST_EFORMAT && rc != ST_EVERSION) || t != NULL || err.text[0] == '\0')
            abort();
        return 0;
    }
    size_t a_len = 0, b_len = 0;
    char *a = write_mem(t, &a_len);
    if (st_trace_read_buffer(a, a_len, "rewritten", &t2, &err) != 0) {
        fprintf(stderr, "the writer's output does not read back: %s\n%s\n", err.text, a);
        abort();
    }
    char *b = write_mem(t2, &b_len);
    if (a_len != b_len || memcmp(a, b, a_len) != 0) {
        fprintf(stderr, "write/read/write is not stable:\n%s\n----\n%s\n", a, b);
        abort();
    }
    free(a);
    free(b);
    st_trace_free(t2);
    st_trace_free(t);
    return 0;
}
