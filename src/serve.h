/* SPDX-License-Identifier: MIT
 *
 * The HTTP side of `shmtrack serve` (private), on libmicrohttpd:
 *   GET /            the memory-infra page (src/view.h), refreshing itself from /api/dumps
 *   GET /api/dumps   the report JSON (DESIGN §5), exactly as `report --format json` prints it
 *   GET /api/extra   what the page shows beyond the report (st_view_extra_json)
 *   GET /metrics     Prometheus text (src/metrics.h)
 * HEAD works wherever GET does; other methods on those paths get 405 with Allow, other paths
 * 404, a request that carries a body 400. Whoever produces data (a trace file being reloaded,
 * a coordinator) calls st_server_publish; requests always see one complete publication. The
 * server runs on libmicrohttpd's own threads with a connection limit and an idle timeout, so
 * floods and clients that never read cost a bounded amount and then go away.
 */
#ifndef SHMTRACK_SERVE_H
#define SHMTRACK_SERVE_H

#include <stddef.h>
#include <stdint.h>

typedef struct st_server st_server_t;

typedef struct st_server_options {
    const char *bind;         /* numeric IPv4 or IPv6 address; NULL means "127.0.0.1" */
    unsigned port;            /* 0 picks a free port (see st_server_port) */
    unsigned max_connections; /* 0 means 512 */
    unsigned timeout_s;       /* idle connection timeout; 0 means 15 */
    unsigned refresh_ms;      /* the page's refresh period; 0 means 2000 */
} st_server_options_t;

/* Starts listening. Until the first publish, data URLs answer 503, except /metrics, which
 * then carries the server's counters alone (failed dumps count from the start). Returns 0, -EINVAL
 * (bad address), -EADDRINUSE/-errno when the socket cannot be bound, -ENOMEM, or -ELIBACC when
 * libmicrohttpd cannot be loaded (it is opened here, on first use, not linked). */
int st_server_start(const st_server_options_t *opts, st_server_t **out);

/* Replaces the served data: report_json (len bytes, the report of DESIGN §5), extra_json
 * (NUL-terminated, may be NULL) and the time it took to produce. Counters for /metrics advance
 * by the dumps whose ids are new. Returns 0, ST_EFORMAT (not a report; nothing replaced) or
 * -ENOMEM. */
int st_server_publish(st_server_t *server, const char *report_json, size_t len,
                      const char *extra_json, double duration_s);

/* Counts a failed dump or reload in /metrics; the previous data stays served. */
void st_server_publish_failed(st_server_t *server);

unsigned st_server_port(const st_server_t *server);

/* Stops listening, closes every connection and frees the server. NULL is fine. */
void st_server_stop(st_server_t *server);

#endif
