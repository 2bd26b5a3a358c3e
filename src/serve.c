/* SPDX-License-Identifier: MIT
 *
 * `shmtrack serve`'s HTTP server; see serve.h for the routes. Every publication is rendered once
 * (page, metrics) into one immutable snapshot; requests copy the bytes they send out of the
 * current snapshot under a mutex, so a request never sees half of an update and publication never
 * waits for a slow client. libmicrohttpd does the HTTP: parsing (malformed requests get its 400),
 * connection limits, timeouts, and non-blocking writes to clients that do not read.
 *
 * libmicrohttpd is loaded with dlopen when a server starts, not linked: it brings GnuTLS and a
 * dozen libraries whose loading and constructors cost every other subcommand ~6 ms of CPU at
 * startup (`shmtrack scan` runs in tens of milliseconds). The header still gives the types; the
 * library's soname comes from the build (SHMTRACK_MHD_SONAME).
 */
#include "serve.h"

#include "error.h"
#include "metrics.h"
#include "view.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#ifndef SHMTRACK_MHD_SONAME
#define SHMTRACK_MHD_SONAME "libmicrohttpd.so.12"
#endif

/* The libmicrohttpd functions this file calls, resolved once by mhd_load. */
#define MHD_FUNCS(XX)                                                                              \
    XX(MHD_create_response_from_buffer)                                                            \
    XX(MHD_add_response_header)                                                                    \
    XX(MHD_queue_response)                                                                         \
    XX(MHD_destroy_response)                                                                       \
    XX(MHD_lookup_connection_value)                                                                \
    XX(MHD_start_daemon)                                                                           \
    XX(MHD_get_daemon_info)                                                                        \
    XX(MHD_stop_daemon)

static struct mhd_api {
#define XX(f) __typeof__(f) *f;
    MHD_FUNCS(XX)
#undef XX
} mhd;
static int mhd_rc = 1; /* 1: not loaded yet; then 0 or -ELIBACC */
static pthread_once_t mhd_once = PTHREAD_ONCE_INIT;

static void mhd_load_once(void)
{
    void *h = dlopen(SHMTRACK_MHD_SONAME, RTLD_NOW | RTLD_LOCAL);
    mhd_rc = h ? 0 : -ELIBACC;
#define XX(f)                                                                                      \
    if (h && (*(void **)&mhd.f = dlsym(h, #f)) == NULL)                                            \
        mhd_rc = -ELIBACC;
    MHD_FUNCS(XX)
#undef XX
}

/* 0 when libmicrohttpd is loaded with every function we call, else -ELIBACC. */
static int mhd_load(void)
{
    pthread_once(&mhd_once, mhd_load_once);
    return mhd_rc;
}

typedef struct snapshot {
    char *page, *report, *extra, *metrics;
    size_t page_len, report_len, extra_len, metrics_len;
} snapshot_t;

struct st_server {
    struct MHD_Daemon *daemon;
    unsigned port;
    unsigned refresh_ms;
    pthread_mutex_t lock;
    snapshot_t *current;         /* NULL until the first publish; guarded by lock */
    st_metrics_state_t counters; /* guarded by lock */
    uint64_t max_dump_id;
};

static void snapshot_free(snapshot_t *s)
{
    if (!s)
        return;
    free(s->page);
    free(s->report);
    free(s->extra);
    free(s->metrics);
    free(s);
}

static enum MHD_Result send_bytes(struct MHD_Connection *conn, unsigned status, const char *type,
                                  const char *data, size_t len, bool head)
{
    /* For HEAD libmicrohttpd sends the headers of this response, Content-Length included, and
     * leaves out the body. */
    (void)head;
    struct MHD_Response *r =
        mhd.MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    mhd.MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    mhd.MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    mhd.MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    if (strncmp(type, "text/html", 9) == 0)
        mhd.MHD_add_response_header(r, "Content-Security-Policy",
                                    "default-src 'none'; script-src 'unsafe-inline'; style-src "
                                    "'unsafe-inline'; connect-src 'self'; img-src data:");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        mhd.MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result ret = mhd.MHD_queue_response(conn, status, r);
    mhd.MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_text(struct MHD_Connection *conn, unsigned status, const char *text,
                                 bool head)
{
    return send_bytes(conn, status, "text/plain; charset=utf-8", text, strlen(text), head);
}

enum route { ROUTE_NONE, ROUTE_PAGE, ROUTE_DUMPS, ROUTE_EXTRA, ROUTE_METRICS };

static enum route route_of(const char *url)
{
    if (strcmp(url, "/") == 0 || strcmp(url, "/index.html") == 0)
        return ROUTE_PAGE;
    if (strcmp(url, "/api/dumps") == 0)
        return ROUTE_DUMPS;
    if (strcmp(url, "/api/extra") == 0)
        return ROUTE_EXTRA;
    if (strcmp(url, "/metrics") == 0)
        return ROUTE_METRICS;
    return ROUTE_NONE;
}

/* libmicrohttpd calls this at least once per request; we answer on the first call (a request
 * with a body is answered 400 before the body is read, and MHD then closes the connection). */
static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **req_cls)
{
    st_server_t *server = cls;
    bool head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
    bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0;
    enum route route = route_of(url);
    (void)upload_data;
    (void)req_cls;

    /* RFC 9112 §3.2: an HTTP/1.1 request without Host is answered 400. */
    if (strcmp(version, MHD_HTTP_VERSION_1_1) == 0 &&
        !mhd.MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST))
        return send_text(conn, MHD_HTTP_BAD_REQUEST, "HTTP/1.1 needs a Host header\n", head);
    if (route == ROUTE_NONE)
        return send_text(conn, MHD_HTTP_NOT_FOUND, "not found\n", head);
    if (!get && !head)
        return send_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n", false);
    const char *cl =
        mhd.MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te =
        mhd.MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    if ((cl && strcmp(cl, "0") != 0) || te || *upload_data_size != 0)
        return send_text(conn, MHD_HTTP_BAD_REQUEST, "a GET request has no body\n", head);

    enum MHD_Result ret;
    pthread_mutex_lock(&server->lock);
    const snapshot_t *s = server->current;
    if (!s && route == ROUTE_METRICS) {
        /* No dump yet (a coordinator not reachable so far): the counters alone, so that a
         * scrape sees the failed attempts. */
        char *counters = NULL;
        size_t clen = 0;
        if (st_metrics_render_state(&server->counters, &counters, &clen) == 0)
            ret = send_bytes(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
                             counters, clen, head);
        else
            ret = send_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n", head);
        free(counters);
    } else if (!s) {
        ret = send_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "no dump yet\n", head);
    } else if (route == ROUTE_PAGE) {
        ret = send_bytes(conn, MHD_HTTP_OK, "text/html; charset=utf-8", s->page, s->page_len, head);
    } else if (route == ROUTE_DUMPS) {
        ret = send_bytes(conn, MHD_HTTP_OK, "application/json", s->report, s->report_len, head);
    } else if (route == ROUTE_EXTRA) {
        ret = send_bytes(conn, MHD_HTTP_OK, "application/json", s->extra, s->extra_len, head);
    } else {
        /* The dump's families were rendered at publish; the counters change between
         * publications (failed reloads), so they are appended now. */
        char *counters = NULL, *all = NULL;
        size_t clen = 0;
        if (st_metrics_render_state(&server->counters, &counters, &clen) == 0 &&
            (all = malloc(s->metrics_len + clen)) != NULL) {
            memcpy(all, s->metrics, s->metrics_len);
            memcpy(all + s->metrics_len, counters, clen);
            ret = send_bytes(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", all,
                             s->metrics_len + clen, head);
        } else {
            ret = send_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n", head);
        }
        free(counters);
        free(all);
    }
    pthread_mutex_unlock(&server->lock);
    return ret;
}

int st_server_start(const st_server_options_t *opts, st_server_t **out)
{
    static const st_server_options_t defaults = {NULL, 0, 0, 0, 0};
    struct sockaddr_storage ss;
    st_server_t *server = NULL;
    const char *bind = NULL;
    int rc = 0;

    *out = NULL;
    if (!opts)
        opts = &defaults;
    bind = opts->bind ? opts->bind : "127.0.0.1";
    if (opts->port > 65535)
        return -EINVAL;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD;
    if (inet_pton(AF_INET, bind, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)opts->port);
    } else if (inet_pton(AF_INET6, bind, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)opts->port);
        flags |= MHD_USE_IPv6;
    } else {
        return -EINVAL;
    }

    if ((rc = mhd_load()) < 0)
        return rc;
    server = calloc(1, sizeof(*server));
    if (!server)
        return -ENOMEM;
    if (pthread_mutex_init(&server->lock, NULL) != 0) {
        free(server);
        return -ENOMEM;
    }
    server->refresh_ms = opts->refresh_ms ? opts->refresh_ms : 2000;
    errno = 0;
    server->daemon = mhd.MHD_start_daemon(
        flags, (uint16_t)opts->port, NULL, NULL, handle, server, MHD_OPTION_SOCK_ADDR, &ss,
        MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)(opts->max_connections ? opts->max_connections : 512),
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(opts->timeout_s ? opts->timeout_s : 15),
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024), MHD_OPTION_LISTEN_BACKLOG_SIZE,
        (unsigned)256, MHD_OPTION_END);
    if (!server->daemon) {
        rc = errno ? -errno : -EADDRINUSE;
        goto out;
    }
    const union MHD_DaemonInfo *info =
        mhd.MHD_get_daemon_info(server->daemon, MHD_DAEMON_INFO_BIND_PORT);
    server->port = info ? info->port : opts->port;
out:
    if (rc != 0) {
        pthread_mutex_destroy(&server->lock);
        free(server);
        return rc;
    }
    *out = server;
    return 0;
}

int st_server_publish(st_server_t *server, const char *report_json, size_t len,
                      const char *extra_json, double duration_s)
{
    snapshot_t *s = calloc(1, sizeof(*s));
    st_view_options_t vopts = {true, server->refresh_ms, "api/dumps"};
    uint64_t max_id, n_new = 0, n_partial = 0;
    int rc;

    if (!s)
        return -ENOMEM;
    pthread_mutex_lock(&server->lock);
    max_id = server->max_dump_id;
    pthread_mutex_unlock(&server->lock);

    rc = st_metrics_count_new(report_json, len, &max_id, &n_new, &n_partial);
    if (rc != 0)
        goto out;
    rc = st_metrics_render(report_json, len, &s->metrics, &s->metrics_len);
    if (rc != 0)
        goto out;
    rc = st_view_render(report_json, len, extra_json, &vopts, &s->page, &s->page_len);
    if (rc != 0)
        goto out;
    s->report = malloc(len + 1);
    s->extra = strdup(extra_json ? extra_json : "{}");
    if (!s->report || !s->extra) {
        rc = -ENOMEM;
        goto out;
    }
    memcpy(s->report, report_json, len);
    s->report[len] = '\0';
    s->report_len = len;
    s->extra_len = strlen(s->extra);

    pthread_mutex_lock(&server->lock);
    snapshot_t *old = server->current;
    server->current = s;
    /* One thread publishes, so max_dump_id is still the one read above. */
    server->counters.dumps_total += n_new;
    server->counters.partial_dumps_total += n_partial;
    server->counters.dump_duration_seconds = duration_s;
    server->max_dump_id = max_id;
    pthread_mutex_unlock(&server->lock);
    s = old;
out:
    snapshot_free(s);
    return rc;
}

void st_server_publish_failed(st_server_t *server)
{
    pthread_mutex_lock(&server->lock);
    server->counters.publish_errors_total++;
    pthread_mutex_unlock(&server->lock);
}

unsigned st_server_port(const st_server_t *server)
{
    return server->port;
}

void st_server_stop(st_server_t *server)
{
    if (!server)
        return;
    mhd.MHD_stop_daemon(server->daemon);
    snapshot_free(server->current);
    pthread_mutex_destroy(&server->lock);
    free(server);
}
