/* SPDX-License-Identifier: MIT
 *
 * End to end through the wire: the preload inside the probe connects to a minimal coordinator
 * made here from ipc/server.h, announces its objects, and answers DUMP_REQUEST with records that
 * must match the kernel (keys from the probe's /proc/<pid>/maps) and what the probe touched. The
 * fork child must connect by itself and report the inherited object as holder, not creator.
 * Built only when ipc/ provides the server (CMake checks).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define PAGE 4096u
#define MAX_OBJS 16

typedef struct peer {
    st_conn_t *conn;
    int pid;
    int events;
    int dumped;
    st_wire_object_t objs[MAX_OBJS];
    int n_objs;
} peer_t;

static peer_t peers[8];
static int n_peers;

static peer_t *peer_of(st_conn_t *c)
{
    for (int i = 0; i < n_peers; i++)
        if (peers[i].conn == c)
            return &peers[i];
    return NULL;
}

static void on_ready(void *ud, st_conn_t *c)
{
    (void)ud;
    if (n_peers < 8)
        peers[n_peers++] = (peer_t){.conn = c, .pid = c->pid};
}

static void on_frame(void *ud, st_conn_t *c, const st_frame_t *f)
{
    (void)ud;
    peer_t *p = peer_of(c);
    if (p == NULL)
        return;
    if (f->hdr.type == ST_MSG_OBJECT_EVENT) {
        p->events += (int)(f->hdr.length / sizeof(st_wire_event_t));
    } else if (f->hdr.type == ST_MSG_PROCESS_DUMP) {
        const st_wire_dump_chunk_t *h = f->body;
        const char *at = (const char *)(h + 1);
        if (h->seq == 0)
            at += sizeof(st_wire_totals_t);
        const st_wire_object_t *o = (const void *)at;
        for (uint32_t i = 0; i < h->n_objects && p->n_objs < MAX_OBJS; i++)
            p->objs[p->n_objs++] = o[i];
        if (f->hdr.flags & ST_WIRE_F_LAST)
            p->dumped = 1;
    }
}

static void on_close(void *ud, st_conn_t *c, int err, const char *why)
{
    (void)ud;
    (void)err;
    (void)why;
    peer_t *p = peer_of(c);
    if (p != NULL)
        p->conn = NULL;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* The memfd's inode from the probe's maps ("/memfd:ipc-frames"). */
static unsigned long memfd_ino(int pid, unsigned *maj, unsigned *min)
{
    char path[64], line[512];
    snprintf(path, sizeof(path), "/proc/%d/maps", pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    unsigned long ino = 0;
    while (fgets(line, sizeof(line), f) != NULL)
        if (strstr(line, "/memfd:ipc-frames") != NULL &&
            sscanf(line, "%*x-%*x %*s %*x %x:%x %lu", maj, min, &ino) == 3)
            break;
    fclose(f);
    return ino;
}

/* The inode of the VMA starting at addr in pid's maps, 0 when none. */
static unsigned long vma_ino(int pid, unsigned long addr)
{
    char path[64], line[512];
    snprintf(path, sizeof(path), "/proc/%d/maps", pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    unsigned long ino = 0, s;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "%lx-%*x %*s %*x %*x:%*x %lu", &s, &ino) == 2 && s == addr)
            break;
        else
            ino = 0;
    fclose(f);
    return ino;
}

static const st_wire_object_t *find(const peer_t *p, unsigned kind, unsigned long ino)
{
    for (int i = 0; i < p->n_objs; i++)
        if (p->objs[i].key.kind == kind && p->objs[i].key.ino == ino)
            return &p->objs[i];
    return NULL;
}

static void test_dump_over_wire(void **state)
{
    (void)state;
    char dir[] = "/tmp/shmtrack-ipc-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char sock[128], sockenv[160];
    snprintf(sock, sizeof(sock), "%s/s", dir);
    snprintf(sockenv, sizeof(sockenv), "SHMTRACK_SOCKET=%s", sock);
    st_server_config_t cfg = {.socket_path = sock, .allow_root = true};
    st_server_ops_t ops = {on_ready, on_frame, on_close, NULL, NULL};
    st_server_t *srv = NULL;
    assert_int_equal(st_server_open(&cfg, &ops, NULL, &srv), 0);

    int in[2], out[2];
    assert_int_equal(pipe(in), 0);
    assert_int_equal(pipe(out), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        alarm(60);
        char *env[] = {"LD_PRELOAD=" PRELOAD_PATH, sockenv, NULL};
        char *argv[] = {PROBE_PATH, "ipc", "/dev/null", NULL};
        execve(PROBE_PATH, argv, env);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    char buf[128] = "";
    size_t have = 0;
    int child = 0;
    unsigned long late = 0, late_m = 0;
    double deadline = now() + 20;
    int requested = 0;
    while (now() < deadline) {
        st_server_run(srv, 50);
        ssize_t n = read(out[0], buf + have, sizeof(buf) - 1 - have);
        if (n > 0) {
            have += (size_t)n;
            buf[have] = '\0';
            sscanf(buf, "ready %d %lx %lx", &child, &late, &late_m);
        }
        if (!requested && child != 0 && n_peers >= 2) {
            st_wire_dump_request_t r = {.dump_id = 1, .level = ST_LEVEL_DETAILED};
            for (int i = 0; i < n_peers; i++)
                if (peers[i].conn != NULL)
                    st_server_send(srv, peers[i].conn, ST_MSG_DUMP_REQUEST, 0, &r, sizeof(r));
            requested = 1;
        }
        if (requested && peers[0].dumped && peers[1].dumped)
            break;
    }
    unsigned maj = 0, min = 0;
    unsigned long ino = memfd_ino(pid, &maj, &min);
    unsigned long late_ino = vma_ino(pid, late);
    unsigned long late_m_ino = vma_ino(pid, late_m);
    close(in[1]); /* the probe exits */
    int status;
    waitpid(pid, &status, 0);
    st_server_close(srv);
    rmdir(dir);

    assert_int_not_equal(child, 0);
    assert_int_equal(n_peers, 2);
    assert_true(ino != 0);
    peer_t *pp = peers[0].pid == pid ? &peers[0] : &peers[1];
    peer_t *cp = peers[0].pid == pid ? &peers[1] : &peers[0];
    assert_int_equal(pp->pid, pid);
    assert_int_equal(cp->pid, child);
    assert_true(pp->dumped && cp->dumped);
    assert_true(pp->events >= 4); /* created + mapped of each object, label, importance */

    const st_wire_object_t *pm = find(pp, 1 /* memfd */, ino);
    assert_non_null(pm);
    assert_int_equal(pm->key.major, maj);
    assert_int_equal(pm->key.minor, min);
    assert_int_equal(pm->resident, 6 * PAGE); /* 5 by the parent, 1 by the child */
    assert_int_equal(pm->mapped_bytes, 16 * PAGE);
    assert_int_equal(pm->virtual_size, 16 * PAGE);
    assert_int_equal(pm->flags, ST_OBJ_F_CREATOR | ST_OBJ_F_EXPLICIT);
    assert_int_equal(pm->importance, 4);
    assert_string_equal(pm->name, "ipc-frames");
    assert_string_equal(pm->label, "frames");

    const st_wire_object_t *cm = find(cp, 1, ino);
    assert_non_null(cm);
    assert_int_equal(cm->resident, 6 * PAGE);
    assert_int_equal(cm->flags, 0); /* inherited: holder, not creator, no claim */
    /* mapped right before the request, still pending then: the dump resolves and measures it */
    assert_true(late_ino != 0);
    const st_wire_object_t *pl = find(pp, 0 /* anon */, late_ino);
    assert_non_null(pl);
    assert_int_equal(pl->resident, 2 * PAGE);
    assert_int_equal(pl->mapped_bytes, 3 * PAGE);
    assert_int_equal(pl->flags, ST_OBJ_F_CREATOR);
    /* created and mapped right before the request, still in the fast table then: counted with
     * exact bytes, its creator the probe */
    assert_true(late_m_ino != 0);
    const st_wire_object_t *plm = find(pp, 1 /* memfd */, late_m_ino);
    assert_non_null(plm);
    assert_int_equal(plm->resident, 3 * PAGE);
    assert_int_equal(plm->mapped_bytes, 4 * PAGE);
    assert_int_equal(plm->virtual_size, 4 * PAGE);
    assert_int_equal(plm->flags, ST_OBJ_F_CREATOR);
    assert_string_equal(plm->name, "late-memfd");
    assert_int_equal(pp->n_objs, 4);
    assert_int_equal(cp->n_objs, 2);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dump_over_wire),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
