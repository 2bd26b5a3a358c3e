/* SPDX-License-Identifier: MIT
 *
 * Error codes and the caller-owned error record of the shmtrack core (private to the project).
 *
 * Every fallible function returns 0 or a negative errno; codes outside errno's range are listed
 * here once, in an X-macro, so the enum and st_strerror() cannot drift apart. Parsers also fill an
 * optional st_error_t so a user reads "trace.json: event 12: allocators.x: \"value\" is not hex"
 * rather than "parse error" (jansson's json_error_t is the model).
 */
#ifndef SHMTRACK_ERROR_H
#define SHMTRACK_ERROR_H

#include <stddef.h>

/* name, value, message */
#define ST_ERRNO_MAP(XX)                                                                           \
    XX(ST_EFORMAT, -4001, "malformed input")                                                       \
    XX(ST_EPROTO, -4002, "protocol violation")                                                     \
    XX(ST_EVERSION, -4003, "incompatible version")                                                 \
    XX(ST_ETOOBIG, -4004, "input exceeds its documented maximum")                                  \
    XX(ST_EPARTIAL, -4005, "data is incomplete")                                                   \
    XX(ST_EUSAGE, -4006, "invalid arguments")

enum {
#define XX(name, value, msg) name = (value),
    ST_ERRNO_MAP(XX)
#undef XX
};

/* A parser's account of what went wrong: where (source: usually a file name; index: the event,
 * frame or line number, -1 if none) and what, as one sentence. */
typedef struct st_error {
    char source[256];
    long index;
    char text[512];
} st_error_t;

/* The message for a 0/-errno/ST_E* code; never NULL. */
const char *st_strerror(int rc);

/* Fills err (when not NULL) and returns rc, so a parser can write `return st_error_set(...)`.
 * text is printf-style. */
int st_error_set(st_error_t *err, int rc, long index, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* "source: event N: text" (or without the parts that are empty) into buf. */
void st_error_format(const st_error_t *err, const char *index_word, char *buf, size_t len);

#endif
