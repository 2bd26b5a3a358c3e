/* SPDX-License-Identifier: MIT
 *
 * The growable buffer behind the page, metrics and protobuf writers; see strbuf.h.
 */
#include "strbuf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Makes room for len more bytes plus a NUL; sets the sticky error on failure. */
static int reserve(st_strbuf_t *b, size_t len)
{
    if (b->err)
        return b->err;
    if (len > SIZE_MAX / 2 - b->len - 1) {
        b->err = -ENOMEM;
        return b->err;
    }
    size_t need = b->len + len + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) {
        b->err = -ENOMEM;
        return b->err;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

void st_strbuf_append(st_strbuf_t *b, const void *data, size_t len)
{
    if (reserve(b, len) != 0)
        return;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void st_strbuf_puts(st_strbuf_t *b, const char *s)
{
    st_strbuf_append(b, s, strlen(s));
}

void st_strbuf_putc(st_strbuf_t *b, char c)
{
    st_strbuf_append(b, &c, 1);
}

void st_strbuf_printf(st_strbuf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->err = b->err ? b->err : -EINVAL;
        return;
    }
    if (reserve(b, (size_t)n) != 0)
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

int st_strbuf_error(const st_strbuf_t *b)
{
    return b->err;
}

char *st_strbuf_steal(st_strbuf_t *b, size_t *len)
{
    char *p = NULL;
    if (b->err == 0 && reserve(b, 0) == 0) {
        p = b->data;
        p[b->len] = '\0';
        if (len)
            *len = b->len;
        b->data = NULL;
    }
    st_strbuf_free(b);
    return p;
}

void st_strbuf_free(st_strbuf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->err = 0;
}
