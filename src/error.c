/* SPDX-License-Identifier: MIT
 *
 * st_strerror() and the st_error_t helpers. See error.h.
 */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *st_strerror(int rc)
{
    switch (rc) {
#define XX(name, value, msg)                                                                       \
    case name:                                                                                     \
        return msg;
        ST_ERRNO_MAP(XX)
#undef XX
    case 0:
        return "success";
    default:
        break;
    }
    if (rc < 0 && rc > -4000)
        return strerror(-rc);
    return "unknown error";
}

int st_error_set(st_error_t *err, int rc, long index, const char *fmt, ...)
{
    if (err == NULL)
        return rc;
    err->index = index;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->text, sizeof(err->text), fmt, ap);
    va_end(ap);
    return rc;
}

void st_error_format(const st_error_t *err, const char *index_word, char *buf, size_t len)
{
    const char *src = err->source[0] ? err->source : "";
    const char *sep = err->source[0] ? ": " : "";
    if (err->index >= 0 && index_word != NULL)
        snprintf(buf, len, "%s%s%s %ld: %s", src, sep, index_word, err->index, err->text);
    else
        snprintf(buf, len, "%s%s%s", src, sep, err->text);
}
