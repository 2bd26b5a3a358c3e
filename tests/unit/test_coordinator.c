/* SPDX-License-Identifier: MIT
 *
 * The coordinator, the server and the client library together, with fake clients in forked
 * processes that speak the protocol (through ipc/client.c, or raw frames for misbehaviour):
 *
 *  - a merged dump counts shared objects once, charges them to their creator, keeps explicit
 *    claims, and keeps an object's metadata after its creator exits;
 *  - a client that stops answering: the dump completes at the deadline, marked partial;
 *  - a client SIGKILLed mid-dump, and clients that send garbage (bad magic, another version,
 *    length lies, truncated and out-of-order chunk streams, oversized packets): each is dropped
 *    with a reason while the other clients' dump completes;
 *  - the coordinator killed and restarted: clients reconnect, none is harmed, and re-announce
 *    their objects;
 *  - a coordinator that does not read for seconds: no client event is lost;
 *  - a client of another uid (setpriv --reuid=nobody) is refused;
 *  - 500 clients x 1000 objects: the dump completes, every object counted once.
 *
 * The truth each test checks is what the test's fake clients reported, computed here.
 */
#include "client.h"
#include "coordinator.h"
#include "frame.h"
#include "graph.h"
#include "sock.h"
#include "trace_json.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static char g_dir[64];
static char g_sock[128];
static char g_self[4096];
static char g_log[8192];

static void log_cb(void *ud, const char *msg)
{
    (void)ud;
    size_t n = strlen(g_log);
    snprintf(g_log + n, sizeof(g_log) - n, "%s\n", msg);
}

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof(g_dir), "/tmp/st_coord_XXXXXX");
    if (mkdtemp(g_dir) == NULL)
        return -1;
    snprintf(g_sock, sizeof(g_sock), "%s/run/sock", g_dir);
    g_log[0] = '\0';
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static st_coord_t *open_coord(int deadline_ms)
{
    st_coord_config_t cfg = {.socket_path = g_sock, .deadline_ms = deadline_ms, .log = log_cb};
    st_coord_t *co = NULL;
    assert_int_equal(st_coord_open(&cfg, &co), 0);
    return co;
}

static void pump_until_clients(st_coord_t *co, size_t n, int timeout_ms)
{
    uint64_t end = st_clock_ms() + (uint64_t)timeout_ms;
    while (st_coord_client_count(co) < n && st_clock_ms() < end)
        st_coord_run(co, 20);
    assert_int_equal(st_coord_client_count(co), n);
}

/* ---- fake clients ---- */

static st_wire_key_t key_of(uint64_t ino)
{
    st_wire_key_t k = {.kind = 0 /* anon */, .major = 0, .minor = 1, .shmid = -1, .ino = ino};
    return k;
}

static uint64_t resident_of(uint64_t ino)
{
    return 4096 * (ino % 7 + 1);
}

static void announce(st_client_t *c, unsigned type, uint64_t ino, const char *label)
{
    st_wire_event_t ev;
    memset(&ev, 0, sizeof(ev));
    ev.type = type;
    ev.key = key_of(ino);
    ev.resident = resident_of(ino);
    ev.virtual_size = 8 * 4096;
    ev.mapped_bytes = 8 * 4096;
    snprintf(ev.name, sizeof(ev.name), "obj%" PRIu64, ino);
    if (label)
        snprintf(ev.label, sizeof(ev.label), "%s", label);
    while (st_client_event(c, &ev) == -EAGAIN)
        st_client_flush(c, 100);
}

enum behaviour { B_NORMAL, B_CLAIM, B_HIDDEN, B_REJOIN, B_STALL, B_SUICIDE };

typedef struct fake {
    pid_t pid;
    int ready_fd; /* reads one byte when the child is set up */
    int quit_fd;  /* closing it tells the child to exit */
} fake_t;

static enum behaviour g_behaviour;
static int g_keep_fds[2]; /* a child's pipes to the test: B_REJOIN closes every other fd */

/* Dump callback of a B_REJOIN child: at the first request it closes every fd it did not open,
 * the client's socket among them, as some programs do, and answers nothing; the library
 * reconnects, and the request the coordinator sends on the new connection is answered. */
static int rejoin_dump(void *ud, uint64_t id, unsigned level, st_client_writer_t *w)
{
    static int requests;
    if (requests++ == 0) {
        for (int fd = 3; fd < 4096; fd++)
            if (fd != g_keep_fds[0] && fd != g_keep_fds[1])
                close(fd);
        return 0;
    }
    (void)ud;
    return st_client_default_dump(st_client_writer_client(w), id, level, w);
}

/* Dump callback of misbehaving children: writes some objects, then stalls or dies. */
static int bad_dump(void *ud, uint64_t id, unsigned level, st_client_writer_t *w)
{
    (void)ud;
    st_client_default_dump(st_client_writer_client(w), id, level, w);
    if (g_behaviour == B_STALL)
        for (;;)
            pause();
    /* more than one chunk written so far? write enough to send a first chunk, then die */
    st_wire_object_t o;
    memset(&o, 0, sizeof(o));
    for (unsigned i = 0; i < ST_WIRE_OBJECTS_PER_CHUNK + 5; i++) {
        o.key = key_of(900000 + i);
        st_client_write_object(w, &o);
    }
    raise(SIGKILL);
    return 0;
}

/* Forks a child running n_clients clients; client g announces objects
 * [base + g * stride, base + g * stride + n_objs): the first `created` of them as CREATED. */
static fake_t spawn(unsigned n_clients, uint64_t base, uint64_t stride, unsigned n_objs,
                    unsigned created, enum behaviour b)
{
    int ready[2], quit[2];
    assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
    assert_int_equal(pipe2(quit, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* drop what the parent holds (other fakes' pipes, the coordinator's sockets) */
        for (int fd = 3; fd < 4096; fd++)
            if (fd != ready[1] && fd != quit[0])
                close(fd);
        g_behaviour = b;
        g_keep_fds[0] = ready[1];
        g_keep_fds[1] = quit[0];
        if (b == B_HIDDEN) {
            /* a shared mapping the hooks never saw: only the /proc scan can find it */
            int mfd = memfd_create("hidden", MFD_CLOEXEC);
            if (mfd < 0 || ftruncate(mfd, 16 * 4096) < 0)
                _exit(14);
            char *m = mmap(NULL, 16 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
            if (m == MAP_FAILED)
                _exit(15);
            memset(m, 1, 3 * 4096);
        }
        st_client_t **cl = calloc(n_clients, sizeof(*cl));
        for (unsigned g = 0; g < n_clients; g++) {
            st_client_config_t cfg = {.socket_path = g_sock,
                                      .queue_capacity = 1024,
                                      .registry_capacity = n_objs + 8,
                                      .dump_cb = b >= B_STALL    ? bad_dump
                                                 : b == B_REJOIN ? rejoin_dump
                                                                 : NULL};
            if (st_client_start(&cfg, &cl[g]) < 0)
                _exit(10);
        }
        for (unsigned g = 0; g < n_clients; g++) {
            for (unsigned j = 0; j < n_objs; j++)
                announce(cl[g], j < created ? ST_EVENT_CREATED : ST_EVENT_MAPPED,
                         base + g * stride + j, NULL);
            if (b == B_CLAIM) {
                st_wire_event_t ev;
                memset(&ev, 0, sizeof(ev));
                ev.type = ST_EVENT_IMPORTANCE;
                ev.key = key_of(base + g * stride);
                ev.importance = 7;
                st_client_event(cl[g], &ev);
            }
        }
        for (unsigned g = 0; g < n_clients; g++) {
            if (st_client_wait_connected(cl[g], 60000) < 0 || st_client_flush(cl[g], 60000) < 0)
                _exit(11);
        }
        char byte = 'r';
        if (write(ready[1], &byte, 1) != 1)
            _exit(12);
        while (read(quit[0], &byte, 1) < 0 && errno == EINTR)
            ;
        int bad = 0;
        for (unsigned g = 0; g < n_clients; g++) {
            st_client_stats_t s;
            st_client_get_stats(cl[g], &s);
            /* No loss: every queued event was sent, however slow the coordinator was (a frame
             * the socket does not take is kept and retried, never dropped while connected). */
            bad += s.events_sent != s.events_queued;
            st_client_stop(cl[g]);
        }
        _exit(bad ? 13 : 0);
    }
    close(ready[1]);
    close(quit[0]);
    return (fake_t){pid, ready[0], quit[1]};
}

/* Pumps the coordinator until the child says it is ready. */
static void wait_ready(st_coord_t *co, const fake_t *f, int timeout_ms)
{
    uint64_t end = st_clock_ms() + (uint64_t)timeout_ms;
    for (;;) {
        st_coord_run(co, 10);
        struct pollfd p = {.fd = f->ready_fd, .events = POLLIN};
        if (poll(&p, 1, 0) == 1) {
            char byte;
            assert_int_equal(read(f->ready_fd, &byte, 1), 1);
            return;
        }
        assert_true(st_clock_ms() < end);
    }
}

/* A coordinator (deadline DEADLINE_MS) with two clients, both ready: *A an ordinary one
 * (objects 1-5) and *ODD one behaving as B (objects BASE to BASE + 4). */
static st_coord_t *open_with_odd_client(int deadline_ms, enum behaviour b, uint64_t base, fake_t *a,
                                        fake_t *odd)
{
    st_coord_t *co = open_coord(deadline_ms);
    *a = spawn(1, 1, 0, 5, 5, B_NORMAL);
    *odd = spawn(1, base, 0, 5, 5, b);
    wait_ready(co, a, 10000);
    wait_ready(co, odd, 10000);
    return co;
}

/* Tells the child to exit and returns its wait status. */
static int finish(st_coord_t *co, fake_t *f)
{
    close(f->quit_fd);
    close(f->ready_fd);
    int status = 0;
    for (;;) {
        pid_t r = waitpid(f->pid, &status, WNOHANG);
        if (r == f->pid)
            return status;
        assert_int_equal(r, 0);
        if (co != NULL)
            st_coord_run(co, 10);
        else
            usleep(10000);
    }
}

static void kill_fake(fake_t *f)
{
    kill(f->pid, SIGKILL);
    close(f->quit_fd);
    close(f->ready_fd);
    waitpid(f->pid, NULL, 0);
}

static const st_edge_t *edge_of(const st_process_dump_t *p, uint64_t ino)
{
    char path[128];
    snprintf(path, sizeof(path), "shared_memory/anon:0:1:%" PRIu64, ino);
    const st_node_t *n = st_process_find_node(p, path);
    if (n == NULL)
        return NULL;
    for (size_t i = 0; i < p->n_edges; i++)
        if (p->edges[i].source == n->guid)
            return &p->edges[i];
    return NULL;
}

static const st_node_t *global_of(const st_global_dump_t *d, uint64_t ino)
{
    char key[64];
    snprintf(key, sizeof(key), "anon:0:1:%" PRIu64, ino);
    return st_dump_find_global(d, st_guid_global(key));
}

static bool warned(const st_global_dump_t *d, const char *what, int pid)
{
    char p[32];
    snprintf(p, sizeof(p), "pid %d ", pid);
    for (size_t i = 0; i < d->n_warnings; i++)
        if (strstr(d->warnings[i], what) && strstr(d->warnings[i], p))
            return true;
    return false;
}

/* ---- tests ---- */

/* Every node's effective_size (UINT64_MAX: none), globals first, then each process's nodes. */
static uint64_t *effective_sizes(const st_global_dump_t *d, size_t *n)
{
    size_t cnt = d->n_globals;
    for (size_t p = 0; p < d->n_procs; p++)
        cnt += d->procs[p].n_nodes;
    uint64_t *v = calloc(cnt + 1, sizeof(*v));
    assert_non_null(v);
    size_t k = 0;
    for (size_t p = 0; p <= d->n_procs; p++) {
        const st_node_t *nodes = p == 0 ? d->globals : d->procs[p - 1].nodes;
        size_t nn = p == 0 ? d->n_globals : d->procs[p - 1].n_nodes;
        for (size_t i = 0; i < nn; i++, k++)
            if (!st_node_scalar(&nodes[i], "effective_size", &v[k]))
                v[k] = UINT64_MAX;
    }
    *n = cnt;
    return v;
}

/* The coordinator annotated d from the links it knows (st_graph_annotate_links, so it took them:
 * taken_before is st__graph_links_taken before the dump), and the graph processor finding them
 * itself gives the same effective sizes and warnings. */
static void assert_links_agree(st_global_dump_t *d, size_t taken_before)
{
    assert_true(st__graph_links_taken > taken_before);
    size_t n = 0, m = 0, warnings = d->n_warnings;
    uint64_t *before = effective_sizes(d, &n);
    assert_int_equal(st_graph_annotate_dump(d), 0);
    uint64_t *after = effective_sizes(d, &m);
    assert_int_equal(n, m);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(before[i], after[i]);
    assert_int_equal(d->n_warnings, warnings);
    free(before);
    free(after);
}

static void test_merge_and_policy(void **state)
{
    (void)state;
    st_coord_t *co = open_coord(2000);
    fake_t a = spawn(1, 1, 0, 10, 10, B_NORMAL); /* creates 1..10 */
    fake_t b = spawn(1, 6, 0, 10, 0, B_CLAIM);   /* maps 6..15, claims 7 on 6 */
    wait_ready(co, &a, 10000);
    wait_ready(co, &b, 10000);
    st_global_dump_t *d = NULL;
    size_t taken = st__graph_links_taken;
    assert_int_equal(st_coord_dump_sync(co, "explicitly_triggered", &d), 0);
    assert_links_agree(d, taken);
    assert_false(d->partial);
    assert_int_equal(d->n_procs, 2);
    assert_int_equal(d->n_globals, 15); /* 6..10 are shared, counted once */
    const st_process_dump_t *pa = st_dump_find_process(d, a.pid);
    const st_process_dump_t *pb = st_dump_find_process(d, b.pid);
    assert_non_null(pa);
    assert_non_null(pb);
    assert_int_equal(pa->n_nodes, 10);
    assert_int_equal(pb->n_nodes, 10);
    for (uint64_t ino = 1; ino <= 15; ino++) {
        const st_node_t *g = global_of(d, ino);
        assert_non_null(g);
        uint64_t size = 0;
        assert_true(st_node_scalar(g, "size", &size));
        assert_int_equal(size, resident_of(ino));
        char want[16];
        snprintf(want, sizeof(want), "%d", ino <= 10 ? (int)a.pid : 0);
        assert_string_equal(st_node_string(g, "creator_pid"), want);
        if (ino <= 10)
            assert_int_equal(edge_of(pa, ino)->importance, 2); /* the creator */
        if (ino >= 6)
            assert_int_equal(edge_of(pb, ino)->importance, ino == 6 ? 7 : 0);
    }
    uint64_t mapped = 0;
    char path[64];
    snprintf(path, sizeof(path), "shared_memory/anon:0:1:%d", 12);
    assert_true(st_node_scalar(st_process_find_node(pb, path), "mapped_size", &mapped));
    assert_int_equal(mapped, 8 * 4096);

    /* the creator exits: its metadata stays, the holder left splits equally */
    assert_int_equal(finish(co, &a), 0);
    pump_until_clients(co, 1, 5000);
    st_coord_object_t meta;
    assert_true(st_coord_find_object(co, "anon:0:1:3", &meta));
    assert_int_equal(meta.creator_pid, a.pid);
    assert_string_equal(meta.name, "obj3");
    assert_true(meta.created_ns == 0 || meta.created_ns > 0);
    assert_int_equal(st_coord_dump_sync(co, "explicitly_triggered", &d), 0);
    assert_int_equal(d->n_procs, 1);
    assert_int_equal(d->n_globals, 10);
    pb = st_dump_find_process(d, b.pid);
    char apid[16];
    snprintf(apid, sizeof(apid), "%d", (int)a.pid);
    assert_string_equal(st_node_string(global_of(d, 7), "creator_pid"), apid); /* remembered */
    assert_int_equal(edge_of(pb, 7)->importance, 0);
    assert_int_equal(st_coord_trace(co)->n_dumps, 2);
    assert_int_equal(finish(co, &b), 0);
    st_coord_close(co);
}

static void test_scan_finds_unannounced(void **state)
{
    (void)state;
    st_coord_t *co = open_coord(2000);
    fake_t h = spawn(1, 1, 0, 2, 2, B_HIDDEN);
    wait_ready(co, &h, 10000);
    st_global_dump_t *d = NULL;
    size_t taken = st__graph_links_taken;
    assert_int_equal(st_coord_dump_sync(co, "explicitly_triggered", &d), 0);
    /* the scan's holder of the hidden memfd is linked by lookup, the announced ones directly */
    assert_links_agree(d, taken);
    const st_process_dump_t *p = st_dump_find_process(d, h.pid);
    assert_non_null(p);
    size_t memfds = 0;
    for (size_t i = 0; i < d->n_globals; i++) {
        const char *kind = st_node_string(&d->globals[i], "kind");
        const char *name = st_node_string(&d->globals[i], "name");
        uint64_t size = 0;
        if (kind && strcmp(kind, "memfd") == 0 && name && strstr(name, "hidden")) {
            memfds++;
            assert_true(st_node_scalar(&d->globals[i], "size", &size));
            assert_int_equal(size, 3 * 4096); /* the 3 pages the child touched */
        }
    }
    assert_int_equal(memfds, 1);
    assert_non_null(global_of(d, 1)); /* and the announced ones */
    assert_int_equal(finish(co, &h), 0);
    st_coord_close(co);
}

static void test_stalled_client(void **state)
{
    (void)state;
    fake_t a, s;
    st_coord_t *co = open_with_odd_client(300, B_STALL, 100, &a, &s);
    uint64_t t0 = st_clock_ms();
    st_global_dump_t *d = NULL;
    assert_int_equal(st_coord_dump_sync(co, "explicitly_triggered", &d), 0);
    uint64_t took = st_clock_ms() - t0;
    assert_true(took >= 290 && took < 3000);
    assert_true(d->partial);
    assert_true(warned(d, "did not answer within 300 ms", s.pid));
    assert_int_equal(d->n_procs, 1);
    assert_non_null(st_dump_find_process(d, a.pid));
    assert_int_equal(d->n_globals, 5);
    /* the coordinator still works: the next dump is partial again, not hung */
    assert_int_equal(st_coord_dump_sync(co, "explicitly_triggered", &d), 0);
    assert_true(d->partial);
    kill_fake(&s);
    assert_int_equal(finish(co, &a), 0);
    st_coord_close(co);
}

static void test_killed_mid_dump(void **state)
{
    (void)state;
    fake_t a, k;
    st_coord_t *co = open_with_odd_client(5000, B_SUICIDE, 200, &a, &k);
    uint64_t t0 = st_clock_ms();
    st_global_dump_t *d = NULL;
    assert_int_equal(st_coord_dump_sync(co, "explicitly_triggered", &d), 0);
    assert_true(st_clock_ms() - t0 < 4000); /* did not wait for the deadline */
    assert_true(d->partial);
    assert_true(warned(d, "left the dump before answering", k.pid));
    assert_int_equal(d->n_procs, 1);
    assert_int_equal(d->n_globals, 5);
    int status = 0;
    close(k.quit_fd);
    close(k.ready_fd);
    assert_int_equal(waitpid(k.pid, &status, 0), k.pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    assert_int_equal(finish(co, &a), 0);
    st_coord_close(co);
}

/* A client whose connection is closed under it while it is asked (the program closed every fd)
 * reconnects during the dump, is asked again, and answers: the dump is complete, not partial,
 * and says what happened. */
static void test_rejoin_mid_dump(void **state)
{
    (void)state;
    fake_t a, r;
    st_coord_t *co = open_with_odd_client(5000, B_REJOIN, 300, &a, &r);
    st_global_dump_t *d = NULL;
    assert_int_equal(st_coord_dump_sync(co, "explicitly_triggered", &d), 0);
    assert_false(d->partial);
    assert_true(warned(d, "reconnected and answered on its new connection", r.pid));
    assert_int_equal(d->n_procs, 2);
    const st_process_dump_t *p = st_dump_find_process(d, r.pid);
    assert_non_null(p);
    for (uint64_t ino = 300; ino < 305; ino++) {
        const st_edge_t *e = edge_of(p, ino);
        assert_non_null(e);
        const st_node_t *g = global_of(d, ino);
        assert_non_null(g);
        uint64_t size = 0;
        assert_true(st_node_scalar(g, "size", &size));
        assert_int_equal(size, resident_of(ino));
    }
    assert_int_equal(d->n_globals, 10);
    /* the next dump is an ordinary one */
    assert_int_equal(st_coord_dump_sync(co, "explicitly_triggered", &d), 0);
    assert_false(d->partial);
    assert_int_equal(d->n_warnings, 0);
    assert_int_equal(finish(co, &r), 0);
    assert_int_equal(finish(co, &a), 0);
    st_coord_close(co);
}

/* A raw peer in this process: connects and shakes hands by hand. */
static int raw_connect(st_coord_t *co)
{
    int fd = -1;
    assert_int_equal(st_sock_connect(g_sock, 1000, &fd), 0);
    static unsigned char buf[ST_WIRE_MAX_FRAME];
    st_wire_hello_t h;
    memset(&h, 0, sizeof(h));
    h.pid = (uint32_t)getpid();
    int n = st_frame_encode(buf, sizeof(buf), ST_MSG_HELLO, 0, &h, sizeof(h));
    assert_int_equal(st_sock_send(fd, buf, (size_t)n, 1000), 0);
    for (int i = 0; i < 100; i++) {
        st_coord_run(co, 10);
        n = st_sock_recv(fd, buf, sizeof(buf), 0);
        if (n != -EAGAIN)
            break;
    }
    st_frame_t f;
    assert_true(n > 0);
    assert_int_equal(st_frame_decode(buf, (size_t)n, &f, NULL), 0);
    assert_int_equal(f.hdr.type, ST_MSG_HELLO_ACK);
    return fd;
}

/* Pumps until fd has a packet; returns its decoded type (or a negative errno). */
static int raw_next(st_coord_t *co, int fd, unsigned char *buf, size_t cap)
{
    for (int i = 0; i < 300; i++) {
        int n = st_sock_recv(fd, buf, cap, 0);
        if (n != -EAGAIN) {
            if (n < 0)
                return n;
            st_frame_t f;
            int rc = st_frame_decode(buf, (size_t)n, &f, NULL);
            return rc < 0 ? rc : f.hdr.type;
        }
        st_coord_run(co, 10);
    }
    return -ETIMEDOUT;
}

static int send_chunk(int fd, uint32_t seq, unsigned flags, uint64_t id)
{
    static unsigned char body[sizeof(st_wire_dump_chunk_t) + sizeof(st_wire_totals_t)];
    static unsigned char buf[ST_WIRE_MAX_FRAME];
    memset(body, 0, sizeof(body));
    st_wire_dump_chunk_t c = {id, seq, 0};
    memcpy(body, &c, sizeof(c));
    size_t len = sizeof(c) + (seq == 0 ? sizeof(st_wire_totals_t) : 0);
    int n = st_frame_encode(buf, sizeof(buf), ST_MSG_PROCESS_DUMP, flags, body, len);
    return st_sock_send(fd, buf, (size_t)n, 1000);
}

enum garbage { G_MAGIC, G_LENGTH, G_TRUNCATED, G_ORDER, G_OVERSIZED, G_TYPE, G_COUNT };

static void test_garbage(void **state)
{
    (void)state;
    static const char *const expect[G_COUNT] = {
        "bad magic",    "length field disagrees",           "restarted before its last chunk",
        "out of order", "larger than the protocol maximum", "a client may not send"};
    st_coord_t *co = open_coord(3000);
    fake_t a = spawn(1, 1, 0, 5, 5, B_NORMAL);
    wait_ready(co, &a, 10000);
    static unsigned char buf[ST_WIRE_MAX_FRAME + 64];
    for (int g = 0; g < G_COUNT; g++) {
        g_log[0] = '\0';
        int fd = raw_connect(co);
        uint64_t id = 0;
        assert_int_equal(st_coord_dump_start(co, "explicitly_triggered", &id), 0);
        assert_int_equal(raw_next(co, fd, buf, sizeof(buf)), ST_MSG_DUMP_REQUEST);
        int n;
        switch (g) {
        case G_MAGIC:
            memset(buf, 0xab, 64);
            assert_int_equal(st_sock_send(fd, buf, 64, 1000), 0);
            break;
        case G_LENGTH: {
            st_wire_bye_t bye = {0, 0};
            n = st_frame_encode(buf, sizeof(buf), ST_MSG_BYE, 0, &bye, sizeof(bye));
            ((st_wire_header_t *)buf)->length = 4000;
            assert_int_equal(st_sock_send(fd, buf, (size_t)n, 1000), 0);
            break;
        }
        case G_TRUNCATED:
            assert_int_equal(send_chunk(fd, 0, 0, id), 0);
            assert_int_equal(send_chunk(fd, 0, ST_WIRE_F_LAST, id), 0);
            break;
        case G_ORDER:
            assert_int_equal(send_chunk(fd, 0, 0, id), 0);
            assert_int_equal(send_chunk(fd, 2, ST_WIRE_F_LAST, id), 0);
            break;
        case G_OVERSIZED:
            memset(buf, 0, sizeof(buf));
            assert_int_equal(st_sock_send(fd, buf, ST_WIRE_MAX_FRAME + 8, 1000), 0);
            break;
        case G_TYPE: {
            st_wire_dump_request_t r = {1, 0, 0};
            n = st_frame_encode(buf, sizeof(buf), ST_MSG_DUMP_REQUEST, 0, &r, sizeof(r));
            assert_int_equal(st_sock_send(fd, buf, (size_t)n, 1000), 0);
            break;
        }
        }
        st_global_dump_t *d = NULL;
        uint64_t t0 = st_clock_ms();
        assert_int_equal(st_coord_dump_sync(co, "explicitly_triggered", &d), 0);
        assert_true(st_clock_ms() - t0 < 2500); /* dropped, not waited for */
        assert_int_equal(d->id, id);
        assert_true(d->partial);
        assert_non_null(st_dump_find_process(d, a.pid)); /* the good client's dump completes */
        assert_int_equal(d->n_globals, 5);
        if (strstr(g_log, expect[g]) == NULL)
            fail_msg("case %d: no '%s' in log:\n%s", g, expect[g], g_log);
        /* the dropped peer was told why, then closed */
        int t = raw_next(co, fd, buf, sizeof(buf));
        assert_int_equal(t, ST_MSG_ERROR);
        assert_int_equal(raw_next(co, fd, buf, sizeof(buf)), -ECONNRESET);
        close(fd);
    }
    assert_int_equal(st_coord_client_count(co), 1);
    assert_int_equal(finish(co, &a), 0);
    st_coord_close(co);
}

static void test_version_refused(void **state)
{
    (void)state;
    st_coord_t *co = open_coord(1000);
    int fd = -1;
    assert_int_equal(st_sock_connect(g_sock, 1000, &fd), 0);
    static unsigned char buf[ST_WIRE_MAX_FRAME];
    st_wire_hello_t h;
    memset(&h, 0, sizeof(h));
    int n = st_frame_encode(buf, sizeof(buf), ST_MSG_HELLO, 0, &h, sizeof(h));
    ((st_wire_header_t *)buf)->version = ST_WIRE_VERSION + 1;
    assert_int_equal(st_sock_send(fd, buf, (size_t)n, 1000), 0);
    assert_int_equal(raw_next(co, fd, buf, sizeof(buf)), ST_MSG_ERROR);
    const st_wire_error_t *e = (const void *)(buf + sizeof(st_wire_header_t));
    assert_int_equal(e->code, ST_WERR_VERSION);
    assert_non_null(strstr(e->text, "incompatible protocol"));
    assert_int_equal(raw_next(co, fd, buf, sizeof(buf)), -ECONNRESET);
    close(fd);
    assert_non_null(strstr(g_log, "incompatible protocol"));
    st_coord_close(co);
}

/* The client library against a fake coordinator that refuses its version: final, with the
 * coordinator's sentence. */
static void test_client_refused(void **state)
{
    (void)state;
    int lfd = -1;
    assert_int_equal(st_sock_listen(g_sock, 4, &lfd), 0);
    st_client_config_t cfg = {.socket_path = g_sock};
    st_client_t *c = NULL;
    assert_int_equal(st_client_start(&cfg, &c), 0);
    int fd = -1;
    for (int i = 0; i < 200 && st_sock_accept(lfd, &fd) == -EAGAIN; i++)
        usleep(10000);
    assert_true(fd >= 0);
    static unsigned char buf[ST_WIRE_MAX_FRAME];
    assert_true(st_sock_recv(fd, buf, sizeof(buf), 2000) > 0);
    int n = st_frame_encode_error(buf, sizeof(buf), ST_WERR_VERSION, "speak version 9");
    ((st_wire_header_t *)buf)->version = 9;
    assert_int_equal(st_sock_send(fd, buf, (size_t)n, 1000), 0);
    assert_int_equal(st_client_wait_connected(c, 3000), -ECONNREFUSED);
    assert_non_null(strstr(st_client_last_error(c), "speak version 9"));
    st_wire_event_t ev;
    memset(&ev, 0, sizeof(ev));
    assert_int_equal(st_client_event(c, &ev), -ECONNREFUSED);
    st_client_stop(c);
    close(fd);
    close(lfd);
}

static void test_restart(void **state)
{
    (void)state;
    st_coord_t *co = open_coord(2000);
    fake_t a = spawn(2, 1, 100, 20, 20, B_NORMAL);
    wait_ready(co, &a, 10000);
    st_global_dump_t *d = NULL;
    assert_int_equal(st_coord_dump_sync(co, "explicitly_triggered", &d), 0);
    assert_int_equal(d->n_globals, 40);
    for (int round = 0; round < 2; round++) {
        st_coord_close(co); /* the coordinator goes away */
        usleep(200000);
        co = open_coord(2000);
        pump_until_clients(co, 2, 10000); /* both clients come back */
        assert_int_equal(st_coord_dump_sync(co, "explicitly_triggered", &d), 0);
        assert_false(d->partial);
        assert_int_equal(d->n_globals, 40);
        /* the new coordinator learnt every live object again from the clients' re-announcement
         * (its answers came after it on each connection) */
        for (uint64_t g = 0; g < 2; g++) {
            for (uint64_t ino = 1 + g * 100; ino < 1 + g * 100 + 20; ino++) {
                char key[64], name[32];
                snprintf(key, sizeof(key), "anon:0:1:%" PRIu64, ino);
                snprintf(name, sizeof(name), "obj%" PRIu64, ino);
                st_coord_object_t o;
                assert_true(st_coord_find_object(co, key, &o));
                assert_int_equal(o.creator_pid, a.pid);
                assert_string_equal(o.name, name);
                assert_false(o.destroyed);
            }
        }
        assert_int_equal(waitpid(a.pid, NULL, WNOHANG), 0); /* unharmed */
    }
    assert_int_equal(finish(co, &a), 0);
    st_coord_close(co);
}

/* A coordinator that stops reading for longer than any send timeout (as while it merges a large
 * dump on a loaded machine): the client keeps its unsent frame and retries; no event is lost. */
static void test_slow_coordinator(void **state)
{
    (void)state;
    enum { N = 4000 }; /* ~10 frames: far more than the socket buffers */
    st_coord_t *co = open_coord(5000);
    fake_t a = spawn(1, 1, 0, N, N, B_NORMAL);
    pump_until_clients(co, 1, 10000);
    usleep(3000 * 1000); /* not reading: the client's socket fills and stays full for 3 s */
    wait_ready(co, &a, 60000);
    st_global_dump_t *d = NULL;
    assert_int_equal(st_coord_dump_sync(co, "explicitly_triggered", &d), 0);
    assert_false(d->partial);
    assert_int_equal(d->n_globals, N);
    for (uint64_t ino = 1; ino <= N; ino++) {
        char key[64];
        snprintf(key, sizeof(key), "anon:0:1:%" PRIu64, ino);
        st_coord_object_t o;
        assert_true(st_coord_find_object(co, key, &o));
        assert_int_equal(o.creator_pid, a.pid);
    }
    assert_int_equal(finish(co, &a), 0); /* the child checked events_sent == events_queued */
    st_coord_close(co);
}

/* Events queued before any coordinator listens: the agent keeps the registry current, discards the
 * oldest events once its queue is half full (counted), and re-announces the registry when it
 * connects, so the coordinator still learns every object. (A client in this process.) */
static void test_reannounce_after_discard(void **state)
{
    (void)state;
    enum { N = 100 };
    st_client_config_t cfg = {
        .socket_path = g_sock, .queue_capacity = 32, .registry_capacity = 256};
    st_client_t *c = NULL;
    assert_int_equal(st_client_start(&cfg, &c), 0);
    for (uint64_t ino = 1; ino <= N; ino++) {
        st_wire_event_t ev;
        memset(&ev, 0, sizeof(ev));
        ev.type = ST_EVENT_CREATED;
        ev.key = key_of(ino);
        ev.resident = resident_of(ino);
        snprintf(ev.name, sizeof(ev.name), "obj%" PRIu64, ino);
        while (st_client_event(c, &ev) == -EAGAIN)
            usleep(5000); /* nobody listens: the agent makes room by discarding the oldest */
    }
    st_client_stats_t s;
    st_client_get_stats(c, &s);
    /* N events went into a queue of 32 with nothing sent: the agent discarded at least N - 32 */
    assert_int_equal(s.events_queued, N);
    assert_int_equal(s.events_sent, 0);
    assert_false(s.connected);
    st_coord_t *co = open_coord(5000);
    pump_until_clients(co, 1, 10000);
    st_global_dump_t *d = NULL;
    assert_int_equal(st_coord_dump_sync(co, "explicitly_triggered", &d), 0);
    assert_int_equal(d->n_globals, N);
    for (uint64_t ino = 1; ino <= N; ino++) {
        char key[64], name[32];
        snprintf(key, sizeof(key), "anon:0:1:%" PRIu64, ino);
        snprintf(name, sizeof(name), "obj%" PRIu64, ino);
        st_coord_object_t o;
        assert_true(st_coord_find_object(co, key, &o));
        assert_int_equal(o.creator_pid, getpid());
        assert_string_equal(o.name, name);
    }
    st_client_stop(c);
    st_coord_close(co);
}

/* max_dumps: the trace keeps the newest dumps only, each still complete. */
static void test_max_dumps(void **state)
{
    (void)state;
    st_coord_config_t cfg = {
        .socket_path = g_sock, .deadline_ms = 2000, .log = log_cb, .max_dumps = 2};
    st_coord_t *co = NULL;
    assert_int_equal(st_coord_open(&cfg, &co), 0);
    fake_t a = spawn(1, 1, 0, 30, 30, B_NORMAL);
    wait_ready(co, &a, 10000);
    st_global_dump_t *d = NULL;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(st_coord_dump_sync(co, "explicitly_triggered", &d), 0);
        assert_int_equal(d->n_globals, 30);
    }
    const st_trace_t *t = st_coord_trace(co);
    assert_int_equal(t->n_dumps, 2);
    assert_int_equal(t->dumps[0].id, 3);
    assert_int_equal(t->dumps[1].id, 4);
    assert_int_equal(t->dumps[0].n_globals, 30);
    assert_ptr_equal(d, &t->dumps[1]);
    assert_int_equal(finish(co, &a), 0);
    st_coord_close(co);
}

static void test_other_uid_refused(void **state)
{
    (void)state;
    if (geteuid() != 0 || access("/usr/bin/setpriv", X_OK) != 0)
        skip();
    st_coord_t *co = open_coord(1000);
    /* open the file permissions so the peer reaches the SO_PEERCRED check behind them */
    char path[256];
    snprintf(path, sizeof(path), "%s/run", g_dir);
    assert_int_equal(chmod(g_dir, 0755), 0);
    assert_int_equal(chmod(path, 0755), 0);
    assert_int_equal(chmod(g_sock, 0666), 0);
    char exe[256];
    snprintf(exe, sizeof(exe), "%s/peer", g_dir);
    char cmd[8300];
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s' && chmod 755 '%s'", g_self, exe, exe);
    assert_int_equal(system(cmd), 0);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/usr/bin/setpriv", "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
              exe, "--uid-client", g_sock, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    for (int i = 0; i < 1000; i++) {
        st_coord_run(co, 10);
        if (waitpid(pid, &status, WNOHANG) == pid)
            break;
    }
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0); /* the peer saw a refusal naming the uid */
    assert_int_equal(st_coord_client_count(co), 0);
    assert_non_null(strstr(g_log, "peer uid 65534 is not the coordinator's uid 0"));
    st_coord_close(co);
}

/* --uid-client mode: exit 0 when the coordinator refused us because of our uid. */
static int uid_client(const char *sock)
{
    st_client_config_t cfg = {.socket_path = sock};
    st_client_t *c = NULL;
    if (st_client_start(&cfg, &c) < 0)
        return 2;
    int rc = st_client_wait_connected(c, 5000);
    int ok = rc == -ECONNREFUSED && strstr(st_client_last_error(c), "uid") != NULL;
    if (!ok)
        fprintf(stderr, "uid client: rc %d, last error '%s'\n", rc, st_client_last_error(c));
    st_client_stop(c);
    return ok ? 0 : 1;
}

static void test_many_clients(void **state)
{
    (void)state;
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
    /* Sanitizer builds run 3-15x slower: 100 clients there; the Release build runs all 500. */
    enum { PROCS = 4, PER = 25, OBJS = 1000, STRIDE = 500 };
#else
    enum { PROCS = 10, PER = 50, OBJS = 1000, STRIDE = 500 };
#endif
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < PROCS * PER + 64)
        skip();
    st_coord_t *co = open_coord(15000);
    fake_t f[PROCS];
    uint64_t t0 = st_clock_ms();
    for (int p = 0; p < PROCS; p++)
        f[p] = spawn(PER, 1 + (uint64_t)p * PER * STRIDE, STRIDE, OBJS, STRIDE, B_NORMAL);
    for (int p = 0; p < PROCS; p++)
        wait_ready(co, &f[p], 60000);
    assert_int_equal(st_coord_client_count(co), PROCS * PER);
    uint64_t t1 = st_clock_ms();
    st_global_dump_t *d = NULL;
    size_t taken = st__graph_links_taken;
    assert_int_equal(st_coord_dump_sync(co, "explicitly_triggered", &d), 0);
    uint64_t t2 = st_clock_ms();
    assert_links_agree(d, taken); /* many clients per process: their records share holders */
    print_message("setup %" PRIu64 " ms, dump of %d clients x %d objects %" PRIu64 " ms\n", t1 - t0,
                  PROCS * PER, OBJS, t2 - t1);
    assert_false(d->partial);
    assert_int_equal(d->n_procs, PROCS);
    /* truth: client g announced [1 + g*STRIDE, 1 + g*STRIDE + OBJS) and created its first
     * STRIDE; so inos 1 .. PROCS*PER*STRIDE + STRIDE, each once */
    const uint64_t last = (uint64_t)PROCS * PER * STRIDE + (OBJS - STRIDE);
    assert_int_equal(d->n_globals, last);
    uint64_t want = 0, got = 0;
    for (uint64_t ino = 1; ino <= last; ino++)
        want += resident_of(ino);
    for (size_t i = 0; i < d->n_globals; i++) {
        uint64_t v = 0;
        assert_true(st_node_scalar(&d->globals[i], "size", &v));
        got += v;
    }
    assert_int_equal(got, want);
    size_t holders = 0;
    for (size_t i = 0; i < d->n_procs; i++)
        holders += d->procs[i].n_nodes;
    /* per process: PER overlapping ranges = (PER - 1) * STRIDE + OBJS distinct keys */
    assert_int_equal(holders, (size_t)PROCS * ((PER - 1) * STRIDE + OBJS));
    /* every object's creator is the process of the client that created it */
    for (uint64_t ino = 1; ino <= last; ino += 997) {
        uint64_t g = (ino - 1) / STRIDE;
        char want_pid[16];
        snprintf(want_pid, sizeof(want_pid), "%d", g < PROCS * PER ? (int)f[g / PER].pid : 0);
        assert_string_equal(st_node_string(global_of(d, ino), "creator_pid"), want_pid);
    }
    /* every event reached the coordinator: each object is known from its events, with the
     * creator its CREATED event named and the name its events carried */
    for (uint64_t ino = 1; ino <= last; ino++) {
        char key[64], name[32];
        snprintf(key, sizeof(key), "anon:0:1:%" PRIu64, ino);
        snprintf(name, sizeof(name), "obj%" PRIu64, ino);
        st_coord_object_t o;
        assert_true(st_coord_find_object(co, key, &o));
        uint64_t g = (ino - 1) / STRIDE;
        assert_int_equal(o.creator_pid, g < PROCS * PER ? (int)f[g / PER].pid : 0);
        assert_string_equal(o.name, name);
    }
    for (int p = 0; p < PROCS; p++)
        assert_int_equal(finish(co, &f[p]), 0);
    st_coord_close(co);
}

/* ---- raw clients in forked processes: answers sent when the test says ---- */

/* In a child: connects and shakes hands as a tracked process; the socket, or exits. */
static int kid_connect(void)
{
    int fd = -1;
    if (st_sock_connect(g_sock, 5000, &fd) < 0)
        _exit(20);
    static unsigned char buf[ST_WIRE_MAX_FRAME];
    st_wire_hello_t h;
    memset(&h, 0, sizeof(h));
    h.pid = (uint32_t)getpid();
    h.role = ST_ROLE_CLIENT;
    int n = st_frame_encode(buf, sizeof(buf), ST_MSG_HELLO, 0, &h, sizeof(h));
    st_frame_t f;
    if (n < 0 || st_sock_send(fd, buf, (size_t)n, 5000) < 0 ||
        (n = st_sock_recv(fd, buf, sizeof(buf), 10000)) <= 0 ||
        st_frame_decode(buf, (size_t)n, &f, NULL) < 0 || f.hdr.type != ST_MSG_HELLO_ACK)
        _exit(21);
    return fd;
}

/* In a child: waits for a DUMP_REQUEST on fd; its dump id. Exits when the coordinator closed
 * the connection. */
static uint64_t kid_request(int fd)
{
    static unsigned char buf[ST_WIRE_MAX_FRAME];
    for (;;) {
        int n = st_sock_recv(fd, buf, sizeof(buf), 30000);
        st_frame_t f;
        if (n == -ECONNRESET)
            _exit(0);
        if (n < 0 || st_frame_decode(buf, (size_t)n, &f, NULL) < 0)
            _exit(22);
        if (f.hdr.type == ST_MSG_DUMP_REQUEST)
            return ((const st_wire_dump_request_t *)f.body)->dump_id;
    }
}

/* In a child: sends n records as one answer to dump id, in as many chunks as they need. */
static void kid_answer(int fd, uint64_t id, const st_wire_object_t *recs, size_t n)
{
    static unsigned char body[ST_WIRE_MAX_BODY];
    static unsigned char buf[ST_WIRE_MAX_FRAME];
    size_t off = 0;
    for (uint32_t seq = 0;; seq++) {
        size_t room = ST_WIRE_OBJECTS_PER_CHUNK, k = n - off < room ? n - off : room;
        st_wire_dump_chunk_t c = {id, seq, (uint32_t)k};
        size_t len = 0;
        memcpy(body, &c, sizeof(c));
        len += sizeof(c);
        if (seq == 0) {
            memset(body + len, 0, sizeof(st_wire_totals_t));
            len += sizeof(st_wire_totals_t);
        }
        memcpy(body + len, recs + off, k * sizeof(*recs));
        len += k * sizeof(*recs);
        off += k;
        bool last = off == n;
        int m = st_frame_encode(buf, sizeof(buf), ST_MSG_PROCESS_DUMP, last ? ST_WIRE_F_LAST : 0,
                                body, len);
        if (m < 0 || st_sock_send(fd, buf, (size_t)m, 5000) < 0)
            _exit(23);
        if (last)
            return;
    }
}

/* In a child: announces one event. */
static void kid_event(int fd, unsigned type, st_wire_key_t key, const char *name, const char *label)
{
    static unsigned char buf[ST_WIRE_MAX_FRAME];
    st_wire_event_t ev;
    memset(&ev, 0, sizeof(ev));
    ev.type = type;
    ev.key = key;
    snprintf(ev.name, sizeof(ev.name), "%s", name);
    snprintf(ev.label, sizeof(ev.label), "%s", label);
    int n = st_frame_encode(buf, sizeof(buf), ST_MSG_OBJECT_EVENT, 0, &ev, sizeof(ev));
    if (n < 0 || st_sock_send(fd, buf, (size_t)n, 5000) < 0)
        _exit(24);
}

typedef struct kid {
    pid_t pid;
    int go;   /* the test writes a byte: answer now; closes it: exit */
    int done; /* the child writes a byte: ready, then one per answer sent */
} kid_t;

/* Forks a child running body(k, go, done) with only its pipe ends open. */
static kid_t kid_spawn(unsigned k, void (*body)(unsigned k, int go, int done))
{
    int go[2], done[2];
    assert_int_equal(pipe2(go, O_CLOEXEC), 0);
    assert_int_equal(pipe2(done, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        for (int fd = 3; fd < 4096; fd++)
            if (fd != go[0] && fd != done[1])
                close(fd);
        body(k, go[0], done[1]);
        _exit(0);
    }
    close(go[0]);
    close(done[1]);
    return (kid_t){pid, go[1], done[0]};
}

/* Pumps the coordinator until the child writes a byte. */
static void kid_wait(st_coord_t *co, const kid_t *kid)
{
    uint64_t end = st_clock_ms() + 20000;
    for (;;) {
        struct pollfd p = {.fd = kid->done, .events = POLLIN};
        if (poll(&p, 1, 0) == 1) {
            char byte;
            assert_int_equal(read(kid->done, &byte, 1), 1);
            return;
        }
        st_coord_run(co, 5);
        assert_true(st_clock_ms() < end);
    }
}

/* Pumps the coordinator until fewer than `pending` clients are still asked. */
static void pump_until_pending_below(st_coord_t *co, size_t pending)
{
    uint64_t end = st_clock_ms() + 20000;
    while (st_coord_dump_busy(co) && st_coord_dump_pending(co) >= pending) {
        st_coord_run(co, 5);
        assert_true(st_clock_ms() < end);
    }
}

/* Forks n children running body, waits until each said it is ready and the coordinator has them
 * all as clients. */
static void kids_start(st_coord_t *co, kid_t *kids, unsigned n,
                       void (*body)(unsigned k, int go, int done))
{
    for (unsigned k = 0; k < n; k++)
        kids[k] = kid_spawn(k, body);
    for (unsigned k = 0; k < n; k++)
        kid_wait(co, &kids[k]);
    pump_until_clients(co, n, 10000);
}

static int kid_end(kid_t *kid)
{
    close(kid->go);
    close(kid->done);
    int status = 0;
    assert_int_equal(waitpid(kid->pid, &status, 0), kid->pid);
    return status;
}

/* The answers of test_answer_order: child k of ORDER_KIDS reports 30 of the 40 shared objects
 * (anon, every fifth SysV), each with its own name, sizes, label, creator flag and claims; one
 * object twice (two names); child 3 also 500 objects of its own (more than one chunk). */
enum { ORDER_KIDS = 4, ORDER_SHARED = 40 };

static bool order_reports(unsigned k, uint64_t ino)
{
    return (ino * 7 + k) % 4 != 0;
}

static bool order_flags(unsigned k, uint64_t ino)
{
    return (ino + k) % 3 == 0;
}

static st_wire_key_t order_key(uint64_t ino)
{
    if (ino % 5 == 0)
        return (st_wire_key_t){.kind = 3 /* sysv */, .shmid = (int32_t)ino, .ino = 77};
    return key_of(ino);
}

static size_t order_records(unsigned k, st_wire_object_t *recs)
{
    size_t n = 0;
    for (uint64_t ino = 1; ino <= ORDER_SHARED; ino++) {
        if (!order_reports(k, ino))
            continue;
        st_wire_object_t *r = &recs[n++];
        memset(r, 0, sizeof(*r));
        r->key = order_key(ino);
        r->resident = 4096 * (1 + (ino + k) % 5);
        r->virtual_size = 4096 * (8 + k);
        r->swapped = 4096 * k;
        r->mapped_bytes = 4096 * (2 + k);
        if (ino != 6) /* 6: nothing but what its events said */
            snprintf(r->name, sizeof(r->name), "c%u-%" PRIu64, k, ino);
        if (ino % 3 == 0 && ino != 6)
            snprintf(r->label, sizeof(r->label), "L%u", k);
        if (order_flags(k, ino))
            r->flags |= ST_OBJ_F_CREATOR;
        if (ino % 7 == k) {
            r->flags |= ST_OBJ_F_EXPLICIT;
            r->importance = (int32_t)k + 3;
        }
    }
    for (int twice = 0; twice < 2; twice++) {
        st_wire_object_t *r = &recs[n++];
        memset(r, 0, sizeof(*r));
        r->key = key_of(41 + k);
        r->resident = 4096 * (1 + (unsigned)twice);
        snprintf(r->name, sizeof(r->name), "dup%c-%u", twice ? 'B' : 'A', k);
    }
    for (uint64_t i = 0; k == 3 && i < 500; i++) {
        st_wire_object_t *r = &recs[n++];
        memset(r, 0, sizeof(*r));
        r->key = key_of(1000 + i);
        r->resident = 4096;
        r->flags = ST_OBJ_F_CREATOR;
        snprintf(r->name, sizeof(r->name), "own%" PRIu64, i);
    }
    return n;
}

static void order_kid(unsigned k, int go, int done)
{
    int fd = kid_connect();
    if (k == 0)
        for (uint64_t ino = 1; ino <= 5; ino++) {
            char name[32];
            snprintf(name, sizeof(name), "ev%" PRIu64, ino);
            kid_event(fd, ST_EVENT_CREATED, order_key(ino), name, "");
        }
    if (k == 2)
        kid_event(fd, ST_EVENT_MAPPED, key_of(6), "ev6", "evlabel");
    static st_wire_object_t recs[ORDER_SHARED + 2 + 500];
    size_t n = order_records(k, recs);
    char byte = 'r';
    if (write(done, &byte, 1) != 1)
        _exit(25);
    for (;;) {
        uint64_t id = kid_request(fd);
        if (read(go, &byte, 1) != 1)
            _exit(0);
        kid_answer(fd, id, recs, n);
        if (write(done, &byte, 1) != 1)
            _exit(26);
    }
}

/* The dump's JSON as the daemon writes it, with the id and time that differ between dumps
 * fixed. */
static char *dump_json(st_coord_t *co, st_global_dump_t *d, size_t *len)
{
    st_trace_t view = *st_coord_trace(co);
    d->id = 1;
    d->ts_us = 1;
    view.dumps = d;
    view.n_dumps = 1;
    char *json = NULL;
    FILE *f = open_memstream(&json, len);
    assert_non_null(f);
    assert_int_equal(st_trace_write_stream(&view, f, NULL), 0);
    assert_int_equal(fclose(f), 0);
    return json;
}

/* The merged dump does not depend on the order the answers arrive in: the same answers, sent
 * one at a time in several orders (each merged as it arrives), give the same JSON byte for
 * byte; and the record that names an object is the lowest pid's, the creator the announced one,
 * else the lowest flagged pid. */
static void test_answer_order(void **state)
{
    (void)state;
    st_coord_config_t cfg = {
        .socket_path = g_sock, .deadline_ms = 20000, .log = log_cb, .no_scan = true};
    st_coord_t *co = NULL;
    assert_int_equal(st_coord_open(&cfg, &co), 0);
    kid_t kids[ORDER_KIDS];
    kids_start(co, kids, ORDER_KIDS, order_kid);
    st_coord_object_t meta;
    uint64_t end = st_clock_ms() + 10000;
    while (!st_coord_find_object(co, "anon:0:1:6", &meta) ||
           !st_coord_find_object(co, "anon:0:1:4", &meta)) {
        st_coord_run(co, 5);
        assert_true(st_clock_ms() < end);
    }
    static const unsigned orders[][ORDER_KIDS] = {
        {0, 1, 2, 3}, {3, 2, 1, 0}, {1, 3, 0, 2}, {2, 0, 3, 1}};
    char *first = NULL;
    size_t first_len = 0;
    for (size_t o = 0; o < sizeof(orders) / sizeof(orders[0]); o++) {
        assert_int_equal(st_coord_dump_start(co, "explicitly_triggered", NULL), 0);
        for (unsigned i = 0; i < ORDER_KIDS; i++) {
            const kid_t *kid = &kids[orders[o][i]];
            size_t pending = st_coord_dump_pending(co);
            assert_int_equal(pending, ORDER_KIDS - i);
            char byte = 'g';
            assert_int_equal(write(kid->go, &byte, 1), 1);
            kid_wait(co, kid);
            pump_until_pending_below(co, pending);
        }
        end = st_clock_ms() + 10000;
        while (st_coord_dump_busy(co)) {
            st_coord_run(co, 5);
            assert_true(st_clock_ms() < end);
        }
        st_trace_t *t = st_coord_trace(co);
        assert_int_equal(t->n_dumps, o + 1);
        st_global_dump_t *d = &t->dumps[o];
        assert_false(d->partial);
        assert_int_equal(d->n_procs, ORDER_KIDS);
        assert_int_equal(d->n_globals, ORDER_SHARED + ORDER_KIDS + 500);
        size_t len = 0;
        char *json = dump_json(co, d, &len);
        if (first == NULL) {
            first = json;
            first_len = len;
        } else {
            assert_int_equal(len, first_len);
            assert_memory_equal(json, first, len);
            free(json);
        }
        /* who names an object and who created it */
        for (uint64_t ino = 1; ino <= ORDER_SHARED; ino++) {
            if (ino % 5 == 0)
                continue;
            int low = 0, flagged = 0;
            unsigned low_k = 0;
            for (unsigned k = 0; k < ORDER_KIDS; k++) {
                if (!order_reports(k, ino))
                    continue;
                if (low == 0 || kids[k].pid < low) {
                    low = kids[k].pid;
                    low_k = k;
                }
                if (order_flags(k, ino) && (flagged == 0 || kids[k].pid < flagged))
                    flagged = kids[k].pid;
            }
            const st_node_t *g = global_of(d, ino);
            assert_non_null(g);
            char want[32];
            if (ino == 6)
                snprintf(want, sizeof(want), "ev6");
            else
                snprintf(want, sizeof(want), "c%u-%" PRIu64, low_k, ino);
            assert_string_equal(st_node_string(g, "name"), want);
            if (ino == 6)
                snprintf(want, sizeof(want), "evlabel");
            else if (ino % 3 == 0)
                snprintf(want, sizeof(want), "L%u", low_k);
            else
                want[0] = '\0';
            assert_string_equal(st_node_string(g, "label"), want);
            uint64_t size = 0;
            assert_true(st_node_scalar(g, "size", &size));
            assert_int_equal(size, 4096 * (1 + (ino + low_k) % 5));
            snprintf(want, sizeof(want), "%d", ino <= 5 ? (int)kids[0].pid : flagged);
            assert_string_equal(st_node_string(g, "creator_pid"), want);
        }
        for (unsigned k = 0; k < ORDER_KIDS; k++) {
            char want[32];
            snprintf(want, sizeof(want), "dupA-%u", k); /* its first record of the two */
            assert_string_equal(st_node_string(global_of(d, 41 + k), "name"), want);
        }
    }
    free(first);
    st_coord_close(co); /* the children see their connection close and exit */
    for (unsigned k = 0; k < ORDER_KIDS; k++)
        assert_int_equal(kid_end(&kids[k]), 0);
}

/* A child whose first connection is still asked when it opens a second one: the second is asked
 * too (a rejoin), and both answer, with different records. Only the first complete answer
 * counts. */
static void twice_kid(unsigned k, int go, int done)
{
    (void)k;
    int a = kid_connect();
    char byte = 'r';
    if (write(done, &byte, 1) != 1)
        _exit(25);
    uint64_t id = kid_request(a);
    int b = kid_connect();
    if (kid_request(b) != id)
        _exit(27);
    st_wire_object_t recs[5];
    memset(recs, 0, sizeof(recs));
    for (unsigned i = 0; i < 5; i++)
        recs[i].key = key_of(6 + i);
    kid_answer(b, id, recs, 5); /* the new connection first */
    if (write(done, &byte, 1) != 1 || read(go, &byte, 1) != 1)
        _exit(26);
    for (unsigned i = 0; i < 5; i++)
        recs[i].key = key_of(1 + i);
    kid_answer(a, id, recs, 5);
    if (write(done, &byte, 1) != 1)
        _exit(26);
    (void)read(go, &byte, 1);
}

static void test_rejoin_both_answer(void **state)
{
    (void)state;
    st_coord_config_t cfg = {
        .socket_path = g_sock, .deadline_ms = 20000, .log = log_cb, .no_scan = true};
    st_coord_t *co = NULL;
    assert_int_equal(st_coord_open(&cfg, &co), 0);
    kid_t kid = kid_spawn(0, twice_kid);
    kid_wait(co, &kid);
    pump_until_clients(co, 1, 10000);
    assert_int_equal(st_coord_dump_start(co, "explicitly_triggered", NULL), 0);
    kid_wait(co, &kid); /* the second connection answered */
    pump_until_pending_below(co, 2);
    assert_true(st_coord_dump_busy(co));
    char byte = 'g';
    assert_int_equal(write(kid.go, &byte, 1), 1);
    kid_wait(co, &kid); /* the first one too */
    uint64_t end = st_clock_ms() + 10000;
    while (st_coord_dump_busy(co)) {
        st_coord_run(co, 5);
        assert_true(st_clock_ms() < end);
    }
    st_global_dump_t *d = &st_coord_trace(co)->dumps[0];
    assert_false(d->partial);
    assert_int_equal(d->n_procs, 1);
    assert_int_equal(d->procs[0].n_nodes, 5);
    assert_int_equal(d->n_globals, 5);
    for (uint64_t ino = 1; ino <= 10; ino++) {
        if (ino <= 5)
            assert_null(global_of(d, ino));
        else
            assert_non_null(edge_of(&d->procs[0], ino));
    }
    assert_non_null(strstr(g_log, "answered twice"));
    st_coord_close(co);
    assert_int_equal(kid_end(&kid), 0);
}

/* ---- the ask window ---- */

/* Child k: answers a request with one object of its own (key 200 + k) when the test writes 'y',
 * keeps it unanswered when 's'. Writes 'r' when ready, 'a' when asked, 'd' when it answered. */
static void window_kid(unsigned k, int go, int done)
{
    int fd = kid_connect();
    char byte = 'r';
    if (write(done, &byte, 1) != 1)
        _exit(25);
    st_wire_object_t rec;
    memset(&rec, 0, sizeof(rec));
    rec.key = key_of(200 + k);
    rec.resident = rec.virtual_size = rec.mapped_bytes = 4096;
    for (;;) {
        uint64_t id = kid_request(fd);
        byte = 'a';
        if (write(done, &byte, 1) != 1 || read(go, &byte, 1) != 1)
            _exit(0);
        if (byte == 'y') {
            kid_answer(fd, id, &rec, 1);
            byte = 'd';
            if (write(done, &byte, 1) != 1)
                _exit(26);
        }
    }
}

enum { WINDOW_KIDS = 5 };

typedef struct window_seen {
    bool asked[WINDOW_KIDS], answered[WINDOW_KIDS];
    size_t n_asked, n_answered;
} window_seen;

/* Pumps the coordinator for ms, noting which kids say they were asked or answered. */
static void window_pump(st_coord_t *co, const kid_t *kids, size_t n, window_seen *w, int ms)
{
    uint64_t end = st_clock_ms() + (uint64_t)ms;
    do {
        st_coord_run(co, 2);
        for (size_t k = 0; k < n; k++) {
            struct pollfd p = {.fd = kids[k].done, .events = POLLIN};
            char byte;
            while (poll(&p, 1, 0) == 1 && read(kids[k].done, &byte, 1) == 1) {
                if (byte == 'a' && !w->asked[k]) {
                    w->asked[k] = true;
                    w->n_asked++;
                }
                if (byte == 'd' && !w->answered[k]) {
                    w->answered[k] = true;
                    w->n_answered++;
                }
            }
        }
    } while (st_clock_ms() < end);
}

static st_coord_t *window_open(size_t window, int patience_ms, int deadline_ms, kid_t *kids,
                               size_t n)
{
    st_coord_config_t cfg = {.socket_path = g_sock,
                             .deadline_ms = deadline_ms,
                             .log = log_cb,
                             .no_scan = true,
                             .ask_window = window,
                             .ask_patience_ms = patience_ms};
    st_coord_t *co = NULL;
    assert_int_equal(st_coord_open(&cfg, &co), 0);
    kids_start(co, kids, (unsigned)n, window_kid);
    return co;
}

static void window_end(st_coord_t *co, kid_t *kids, size_t n)
{
    st_coord_close(co);
    for (size_t k = 0; k < n; k++)
        assert_int_equal(kid_end(&kids[k]), 0);
}

/* Two at a time: each answer lets the next client be asked, and no more. */
static void test_ask_window(void **state)
{
    (void)state;
    kid_t kids[WINDOW_KIDS];
    st_coord_t *co = window_open(2, 60000, 30000, kids, WINDOW_KIDS);
    window_seen w = {0};
    assert_int_equal(st_coord_dump_start(co, "explicitly_triggered", NULL), 0);
    window_pump(co, kids, WINDOW_KIDS, &w, 300);
    assert_int_equal(w.n_asked, 2);
    for (size_t i = 0; i < WINDOW_KIDS; i++) {
        size_t k = 0;
        while (!w.asked[k] || w.answered[k])
            k++;
        char byte = 'y';
        assert_int_equal(write(kids[k].go, &byte, 1), 1);
        uint64_t end = st_clock_ms() + 10000;
        while (!w.answered[k]) {
            window_pump(co, kids, WINDOW_KIDS, &w, 5);
            assert_true(st_clock_ms() < end);
        }
        window_pump(co, kids, WINDOW_KIDS, &w, 100);
        assert_int_equal(w.n_asked, i + 3 < WINDOW_KIDS ? i + 3 : WINDOW_KIDS);
    }
    assert_false(st_coord_dump_busy(co));
    st_global_dump_t *d = &st_coord_trace(co)->dumps[0];
    assert_false(d->partial);
    assert_int_equal(d->n_procs, WINDOW_KIDS);
    for (size_t k = 0; k < WINDOW_KIDS; k++)
        assert_non_null(edge_of(st_dump_find_process(d, kids[k].pid), 200 + k));
    window_end(co, kids, WINDOW_KIDS);
}

/* One at a time, and the first client asked never answers: after the patience the others are
 * asked all the same, long before half the deadline. */
static void test_ask_window_stuck(void **state)
{
    (void)state;
    kid_t kids[WINDOW_KIDS];
    st_coord_t *co = window_open(1, 50, 3000, kids, WINDOW_KIDS);
    window_seen w = {0};
    uint64_t t0 = st_clock_ms();
    assert_int_equal(st_coord_dump_start(co, "explicitly_triggered", NULL), 0);
    size_t stuck = WINDOW_KIDS;
    bool told[WINDOW_KIDS] = {false};
    while (w.n_answered < WINDOW_KIDS - 1) {
        window_pump(co, kids, WINDOW_KIDS, &w, 2);
        for (size_t k = 0; k < WINDOW_KIDS; k++) {
            if (!w.asked[k] || told[k])
                continue;
            char byte = stuck == WINDOW_KIDS ? 's' : 'y';
            if (byte == 's')
                stuck = k;
            told[k] = true;
            assert_int_equal(write(kids[k].go, &byte, 1), 1);
        }
        assert_true(st_clock_ms() - t0 < 1500); /* half the deadline is 1500 */
    }
    assert_true(st_coord_dump_busy(co));
    assert_int_equal(st_coord_dump_pending(co), 1);
    while (st_coord_dump_busy(co))
        st_coord_run(co, 20);
    st_global_dump_t *d = &st_coord_trace(co)->dumps[0];
    assert_true(d->partial);
    assert_int_equal(d->n_procs, WINDOW_KIDS - 1);
    assert_true(warned(d, "did not answer within 3000 ms", kids[stuck].pid));
    assert_null(st_dump_find_process(d, kids[stuck].pid));
    window_end(co, kids, WINDOW_KIDS);
}

/* One at a time with endless patience, nobody answers: at half the deadline everyone left is
 * asked, so each client has its say before the dump ends. */
static void test_ask_window_half_deadline(void **state)
{
    (void)state;
    kid_t kids[3];
    st_coord_t *co = window_open(1, 60000, 1000, kids, 3);
    window_seen w = {0};
    uint64_t t0 = st_clock_ms();
    assert_int_equal(st_coord_dump_start(co, "explicitly_triggered", NULL), 0);
    window_pump(co, kids, 3, &w, 300);
    if (st_clock_ms() - t0 < 450) /* else this machine was too slow to tell */
        assert_int_equal(w.n_asked, 1);
    while (st_coord_dump_busy(co))
        window_pump(co, kids, 3, &w, 5);
    window_pump(co, kids, 3, &w, 50);
    assert_int_equal(w.n_asked, 3);
    st_global_dump_t *d = &st_coord_trace(co)->dumps[0];
    assert_true(d->partial);
    assert_int_equal(d->n_procs, 0);
    for (size_t k = 0; k < 3; k++)
        assert_true(warned(d, "did not answer within 1000 ms", kids[k].pid));
    window_end(co, kids, 3);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--uid-client") == 0)
        return uid_client(argv[2]);
    ssize_t n = readlink("/proc/self/exe", g_self, sizeof(g_self) - 1);
    if (n > 0)
        g_self[n] = '\0';
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_merge_and_policy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan_finds_unannounced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stalled_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_killed_mid_dump, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejoin_mid_dump, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejoin_both_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_answer_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_version_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_coordinator, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_dumps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reannounce_after_discard, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_uid_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_clients, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ask_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ask_window_stuck, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ask_window_half_deadline, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
