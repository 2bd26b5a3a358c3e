/* SPDX-License-Identifier: MIT
 *
 * A growable byte buffer (private): the page, the Prometheus text and the Perfetto protobuf are
 * all built in memory before they are written or served, so one small helper keeps that code free
 * of size arithmetic. Errors are sticky: after an allocation failure every append is a no-op and
 * st_strbuf_error() returns -ENOMEM, so callers check once at the end.
 */
#ifndef SHMTRACK_STRBUF_H
#define SHMTRACK_STRBUF_H

#include <stddef.h>

typedef struct st_strbuf {
    char *data; /* NUL-terminated when len > 0 and no error */
    size_t len, cap;
    int err; /* 0 or -ENOMEM */
} st_strbuf_t;

#define ST_STRBUF_INIT                                                                             \
    {                                                                                              \
        NULL, 0, 0, 0                                                                              \
    }

void st_strbuf_append(st_strbuf_t *b, const void *data, size_t len);
void st_strbuf_puts(st_strbuf_t *b, const char *s);
void st_strbuf_putc(st_strbuf_t *b, char c);
void st_strbuf_printf(st_strbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int st_strbuf_error(const st_strbuf_t *b);
/* Hands the data to the caller (who frees it) and resets b. NULL after an error (b is freed). */
char *st_strbuf_steal(st_strbuf_t *b, size_t *len);
void st_strbuf_free(st_strbuf_t *b);

#endif
