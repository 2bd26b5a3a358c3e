/* SPDX-License-Identifier: MIT
 *
 * Integration tests of the /proc scanner (src/scan.c) on real processes. Each scenario builds a
 * small process tree (fork, and exec of scan_helper) around shared memory objects, and measures
 * the truth itself before scanning the tree: mincore() over the test's own mapping of each object
 * (for shmem it reports the object's page cache), st_blocks of its own fd, the pages it knows it
 * wrote, the pids its children reported and the object identity fstat or its own maps line gives.
 * The scanner's output is compared with that exactly: one global node per object, its size,
 * virtual size, the holder set, each holder's mapped bytes and the owner (importance 2).
 *
 * `test_scan --unpriv` is the unprivileged variant, run under setpriv as nobody by
 * test_unprivileged: there a number must be exact or labelled smaps-lower-bound (and then not above
 * the truth) — never a wrong exact-looking number.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "error.h"
#include "graph.h"
#include "scan.h"
#include "trace_json.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long page;

/* ---- the test's own measurements ---- */

static uint64_t own_mincore(void *addr, size_t len)
{
    size_t n = (len + (size_t)page - 1) / (size_t)page;
    unsigned char *vec = malloc(n);
    uint64_t r = 0;
    assert_non_null(vec);
    assert_int_equal(mincore(addr, len, vec), 0);
    for (size_t i = 0; i < n; i++)
        r += (vec[i] & 1) ? (uint64_t)page : 0;
    free(vec);
    return r;
}

static void key_of_fd(int fd, const char *kind, char *key, size_t len)
{
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    snprintf(key, len, "%s:%u:%u:%" PRIu64, kind, major(st.st_dev), minor(st.st_dev),
             (uint64_t)st.st_ino);
}

/* The identity of the mapping at addr, from the test's own reading of /proc/self/maps. */
static void key_of_addr(void *addr, const char *kind, char *key, size_t len)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    bool found = false;
    assert_non_null(f);
    while (fgets(line, sizeof(line), f)) {
        unsigned long start, end, off, ino;
        unsigned maj, min;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s %lx %x:%x %lu", &start, &end, perms, &off, &maj, &min,
                   &ino) == 7 &&
            start == (unsigned long)(uintptr_t)addr) {
            snprintf(key, len, "%s:%u:%u:%lu", kind, maj, min, ino);
            found = true;
            break;
        }
    }
    fclose(f);
    assert_true(found);
}

static void key_of_sysv(int shmid, char *key, size_t len)
{
    struct stat st;
    assert_int_equal(stat("/proc/self/ns/ipc", &st), 0);
    snprintf(key, len, "sysv:%" PRIu64 ":%d", (uint64_t)st.st_ino, shmid);
}

/* ---- process trees ---- */

typedef struct world {
    int ready[2]; /* each process of the tree writes its pid when it is set up */
    int go[2];    /* the tree waits for EOF here; the test closes go[1] to end it */
    pid_t root;
    pid_t pids[64];
    int n;
} world_t;

static void world_init(world_t *w)
{
    memset(w, 0, sizeof(*w));
    assert_int_equal(pipe(w->ready), 0);
    assert_int_equal(pipe(w->go), 0);
}

/* In a child of the tree: announce readiness, wait for the end, reap own children, exit. */
static void child_ready_and_wait(world_t *w)
{
    int me = getpid();
    char b;
    if (write(w->ready[1], &me, sizeof(me)) != (ssize_t)sizeof(me))
        _exit(3);
    while (read(w->go[0], &b, 1) < 0 && errno == EINTR)
        ;
    while (wait(NULL) > 0)
        ;
    _exit(0);
}

/* Forks the tree root (fn runs in it, after go[1] is closed) and waits for n ready pids. */
static void world_start(world_t *w, void (*fn)(world_t *, void *), void *arg, int n)
{
    w->root = fork();
    assert_true(w->root >= 0);
    if (w->root == 0) {
        close(w->go[1]);
        fn(w, arg);
        _exit(4);
    }
    for (int i = 0; i < n; i++) {
        int pid;
        assert_int_equal(read(w->ready[0], &pid, sizeof(pid)), sizeof(pid));
        w->pids[w->n++] = pid;
    }
}

static void world_end(world_t *w)
{
    int status = 0;
    close(w->go[1]);
    assert_int_equal(waitpid(w->root, &status, 0), w->root);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(w->go[0]);
    close(w->ready[0]);
    close(w->ready[1]);
}

/* Sleeps past one clock tick so start times differ (ownership: first started). */
static void tick(void)
{
    struct timespec ts = {0, 30 * 1000 * 1000};
    nanosleep(&ts, NULL);
}

/* ---- scanning and checking ---- */

static st_trace_t *scan_tree(pid_t root, st_policy_t policy, st_maps_method_t method,
                             st_residency_method_t residency)
{
    st_scan_options_t o;
    st_trace_t *t = NULL;
    st_scan_options_init(&o);
    o.tree_root = root;
    o.policy = policy;
    o.maps_method = method;
    o.residency_method = residency;
    int bad = 0;
    assert_int_equal(st_scan_trace(&o, &t, &bad), 0);
    assert_int_equal(t->n_dumps, 1);
    return t;
}

static const st_node_t *global_of(const st_global_dump_t *d, const char *key)
{
    const st_node_t *found = NULL;
    for (size_t i = 0; i < d->n_globals; i++) {
        const char *k = st_node_string(&d->globals[i], "key");
        if (k != NULL && strcmp(k, key) == 0) {
            assert_null(found); /* exactly once */
            found = &d->globals[i];
        }
    }
    return found;
}

static uint64_t scalar(const st_node_t *n, const char *name)
{
    uint64_t v = 0;
    assert_true(st_node_scalar(n, name, &v));
    return v;
}

typedef struct expect {
    const char *key;
    uint64_t size, virtual_size;
    int n;        /* holders */
    pid_t pid[8]; /* holder pids */
    uint64_t mapped[8];
    pid_t owner;      /* 0: no owner check */
    const char *name; /* optional */
} expect_t;

static void check_object(const st_global_dump_t *d, const expect_t *e, st_policy_t policy)
{
    const st_node_t *g = global_of(d, e->key);
    if (g == NULL)
        fail_msg("object %s not in the dump", e->key);
    assert_int_equal(scalar(g, "size"), e->size);
    assert_int_equal(scalar(g, "virtual_size"), e->virtual_size);
    const char *src = st_node_string(g, "residency_source");
    assert_non_null(src);
    assert_string_not_equal(src, "smaps-lower-bound"); /* root: always exact */
    if (e->name != NULL)
        assert_string_equal(st_node_string(g, "name"), e->name);
    char path[160];
    snprintf(path, sizeof(path), "shared_memory/%s", e->key);
    int seen = 0;
    for (size_t i = 0; i < d->n_procs; i++) {
        const st_process_dump_t *p = &d->procs[i];
        const st_node_t *h = st_process_find_node(p, path);
        int want = -1;
        for (int j = 0; j < e->n; j++)
            if (e->pid[j] == p->pid)
                want = j;
        if (want < 0) {
            if (h != NULL)
                fail_msg("pid %d holds %s but should not", p->pid, e->key);
            continue;
        }
        if (h == NULL)
            fail_msg("pid %d should hold %s", p->pid, e->key);
        seen++;
        assert_int_equal(scalar(h, "mapped_size"), e->mapped[want]);
        int importance = -1, edges = 0;
        for (size_t k = 0; k < p->n_edges; k++) {
            if (p->edges[k].source == h->guid) {
                edges++;
                importance = p->edges[k].importance;
                assert_int_equal(p->edges[k].target, g->guid);
            }
        }
        assert_int_equal(edges, 1);
        if (policy == ST_POLICY_EQUAL)
            assert_int_equal(importance, 0);
        else if (e->owner != 0)
            assert_int_equal(importance, p->pid == e->owner ? 2 : 0);
    }
    assert_int_equal(seen, e->n);
}

/* The graph processor over the dump: for every object, the effective sizes of its holders plus
 * what its global node keeps equal its size exactly (so Σ effective + unattributed == Σ sizes);
 * an object with no holder keeps all of it (unattributed); under creator the owner gets all of
 * it, under equal each holder gets size/n rounded by largest remainder. */
static void check_effective(const st_global_dump_t *d, const expect_t *e, size_t n_e,
                            st_policy_t policy)
{
    st_graph_result_t *g = NULL;
    assert_int_equal(st_graph_process(d, &g), 0);
    uint64_t sizes = 0, effective = 0;
    for (size_t i = 0; i < d->n_globals; i++) {
        const st_node_t *obj = &d->globals[i];
        uint64_t size = scalar(obj, "size");
        const char *key = st_node_string(obj, "key");
        const st_graph_node_t *gn = st_graph_find(g, 0, obj->name);
        assert_non_null(gn);
        uint64_t sum = gn->effective_size;
        char path[160];
        snprintf(path, sizeof(path), "shared_memory/%s", key);
        for (size_t p = 0; p < d->n_procs; p++) {
            const st_graph_node_t *h = st_graph_find(g, d->procs[p].pid, path);
            if (h != NULL)
                sum += h->effective_size;
        }
        if (sum != size)
            fail_msg("%s: effective sizes sum to %" PRIu64 ", size %" PRIu64, key, sum, size);
        sizes += size;
        effective += sum;
        for (size_t k = 0; k < n_e; k++) {
            if (strcmp(e[k].key, key) != 0)
                continue;
            if (e[k].n == 0)
                assert_int_equal(gn->effective_size, size); /* unattributed */
            else
                assert_int_equal(gn->effective_size, 0);
            for (int j = 0; j < e[k].n; j++) {
                const st_graph_node_t *h = st_graph_find(g, e[k].pid[j], path);
                assert_non_null(h);
                if (policy == ST_POLICY_CREATOR)
                    assert_int_equal(h->effective_size, e[k].pid[j] == e[k].owner ? size : 0);
                else
                    assert_true(h->effective_size == size / (uint64_t)e[k].n ||
                                h->effective_size == size / (uint64_t)e[k].n + 1);
            }
        }
    }
    assert_int_equal(effective, sizes);
    st_graph_result_free(g);
}

/* Scans the tree with both VMA sources, both policies and both exact residency methods (each
 * is checked against the same truth) and checks e. */
static void scan_and_check(pid_t root, const expect_t *e, size_t n_e)
{
    st_maps_method_t methods[] = {ST_MAPS_TEXT, ST_MAPS_PROCMAP};
    st_policy_t policies[] = {ST_POLICY_CREATOR, ST_POLICY_EQUAL};
    st_residency_method_t residency[] = {ST_RESIDENCY_CACHESTAT, ST_RESIDENCY_MINCORE};
    for (size_t m = 0; m < 2; m++) {
        for (size_t p = 0; p < 2; p++) {
            for (size_t r = 0; r < 2; r++) {
                st_trace_t *t = scan_tree(root, policies[p], methods[m], residency[r]);
                for (size_t i = 0; i < n_e; i++)
                    check_object(&t->dumps[0], &e[i], policies[p]);
                check_effective(&t->dumps[0], e, n_e, policies[p]);
                st_trace_free(t);
            }
        }
    }
}

/* ---- scenario: shared anonymous memory inherited over fork ---- */

typedef struct anon_arg {
    char *a;
} anon_arg_t;

static void anon_root(world_t *w, void *arg)
{
    anon_arg_t *x = arg;
    for (int c = 0; c < 2; c++) {
        tick();
        pid_t pid = fork();
        if (pid == 0) {
            for (int i = 0; i < 10; i++)
                x->a[(c * 20 + i) * page] = 1; /* child c writes pages [20c, 20c+10) */
            child_ready_and_wait(w);
        }
    }
    child_ready_and_wait(w);
}

static void test_anon_fork(void **state)
{
    world_t w;
    anon_arg_t x;
    size_t len = 64 * (size_t)page;
    x.a = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(x.a != MAP_FAILED);
    char key[96];
    key_of_addr(x.a, "anon", key, sizeof(key));
    world_init(&w);
    world_start(&w, anon_root, &x, 3);
    uint64_t truth = own_mincore(x.a, len);
    assert_int_equal(truth, 20 * (uint64_t)page); /* the scenario did what it meant to */
    expect_t e = {.key = key,
                  .size = truth,
                  .virtual_size = len,
                  .n = 3,
                  .owner = w.root,
                  .name = "/dev/zero"};
    for (int i = 0; i < 3; i++) {
        e.pid[i] = w.pids[i];
        e.mapped[i] = len;
    }
    scan_and_check(w.root, &e, 1);
    world_end(&w);
    munmap(x.a, len);
}

/* ---- scenario: a memfd passed over SCM_RIGHTS to an exec'd process ---- */

typedef struct memfd_arg {
    int fd;
} memfd_arg_t;

static void send_fd(int sock, int fd)
{
    char data = 'f';
    char cbuf[CMSG_SPACE(sizeof(int))];
    memset(cbuf, 0, sizeof(cbuf));
    struct iovec iov = {&data, 1};
    struct msghdr msg = {0};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf;
    msg.msg_controllen = sizeof(cbuf);
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    if (sendmsg(sock, &msg, 0) != 1)
        _exit(5);
}

static void memfd_root(world_t *w, void *arg)
{
    memfd_arg_t *x = arg;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        _exit(6);
    tick();
    pid_t pid = fork();
    if (pid == 0) {
        char a[5][16];
        snprintf(a[0], 16, "%d", sv[1]);
        snprintf(a[1], 16, "%d", w->ready[1]);
        snprintf(a[2], 16, "%d", w->go[0]);
        snprintf(a[3], 16, "%d", 8);
        snprintf(a[4], 16, "%d", 3);
        close(sv[0]);
        close(x->fd); /* the exec'd process gets the memfd only over the socket */
        execl(SCAN_HELPER, "scan_helper", "recvmap", a[0], a[1], a[2], a[3], a[4], (char *)NULL);
        _exit(7);
    }
    close(sv[1]);
    send_fd(sv[0], x->fd);
    child_ready_and_wait(w); /* keeps the inherited memfd fd: an fd-only holder */
}

static void test_memfd_scm_rights_exec(void **state)
{
    world_t w;
    memfd_arg_t x;
    size_t len = 16 * (size_t)page;
    x.fd = memfd_create("scm passed", 0);
    assert_true(x.fd >= 0);
    assert_int_equal(ftruncate(x.fd, (off_t)len), 0);
    char buf[4096];
    memset(buf, 1, sizeof(buf));
    for (int i = 0; i < 5; i++)
        assert_int_equal(pwrite(x.fd, buf, 1, (off_t)i * page), 1);
    char key[96];
    key_of_fd(x.fd, "memfd", key, sizeof(key));
    world_init(&w);
    world_start(&w, memfd_root, &x, 2);
    char *m = mmap(NULL, len, PROT_READ, MAP_SHARED, x.fd, 0);
    assert_true(m != MAP_FAILED);
    uint64_t truth = own_mincore(m, len);
    assert_int_equal(truth, 8 * (uint64_t)page); /* 5 written here, 3 by the exec'd helper */
    pid_t helper = w.pids[0] == w.root ? w.pids[1] : w.pids[0];
    expect_t e = {.key = key,
                  .size = truth,
                  .virtual_size = len,
                  .n = 2,
                  .pid = {w.root, helper},
                  .mapped = {0, len},
                  .owner = w.root,
                  .name = "scm passed"};
    scan_and_check(w.root, &e, 1);
    world_end(&w);
    munmap(m, len);
    close(x.fd);
}

/* ---- scenario: one memfd mapped twice in one process; a partially unmapped region ---- */

typedef struct twice_arg {
    int fd;
    char *anon;
} twice_arg_t;

static void twice_root(world_t *w, void *arg)
{
    twice_arg_t *x = arg;
    size_t len = 8 * (size_t)page;
    char *a = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, x->fd, 0);
    char *b = mmap(NULL, len, PROT_READ, MAP_SHARED, x->fd, 0);
    if (a == MAP_FAILED || b == MAP_FAILED)
        _exit(8);
    for (int i = 0; i < 3; i++)
        a[i * page] = 1;
    for (int i = 0; i < 16; i++)
        x->anon[i * page] = 1;
    if (munmap(x->anon + 4 * page, 8 * (size_t)page) < 0) /* keeps [0,4) and [12,16) */
        _exit(9);
    child_ready_and_wait(w);
}

static void test_memfd_twice_and_partial_unmap(void **state)
{
    world_t w;
    twice_arg_t x;
    size_t len = 8 * (size_t)page, alen = 16 * (size_t)page;
    x.fd = memfd_create("twice", 0);
    assert_true(x.fd >= 0);
    assert_int_equal(ftruncate(x.fd, (off_t)len), 0);
    x.anon = mmap(NULL, alen, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(x.anon != MAP_FAILED);
    char mkey[96], akey[96];
    key_of_fd(x.fd, "memfd", mkey, sizeof(mkey));
    key_of_addr(x.anon, "anon", akey, sizeof(akey));
    world_init(&w);
    world_start(&w, twice_root, &x, 1);
    char *m = mmap(NULL, len, PROT_READ, MAP_SHARED, x.fd, 0);
    assert_true(m != MAP_FAILED);
    expect_t e[2] = {
        /* mapped twice: mapped_size counts both mappings; the object's size counts once */
        {.key = mkey,
         .size = own_mincore(m, len),
         .virtual_size = len,
         .n = 1,
         .pid = {w.root},
         .mapped = {2 * len},
         .owner = w.root},
        /* the unmapped middle's pages stay in the object */
        {.key = akey,
         .size = own_mincore(x.anon, alen),
         .virtual_size = alen,
         .n = 1,
         .pid = {w.root},
         .mapped = {8 * (uint64_t)page},
         .owner = w.root},
    };
    assert_int_equal(e[0].size, 3 * (uint64_t)page);
    assert_int_equal(e[1].size, 16 * (uint64_t)page);
    scan_and_check(w.root, e, 2);
    world_end(&w);
    munmap(m, len);
    munmap(x.anon, alen);
    close(x.fd);
}

/* ---- scenario: POSIX shm reopened by name in another process, then unlinked ---- */

typedef struct posix_arg {
    char name[64];
} posix_arg_t;

static void posix_root(world_t *w, void *arg)
{
    posix_arg_t *x = arg;
    size_t len = 8 * (size_t)page;
    int fd = shm_open(x->name, O_RDWR, 0);
    if (fd < 0)
        _exit(10);
    char *a = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (a == MAP_FAILED)
        _exit(11);
    close(fd);
    for (int i = 0; i < 4; i++)
        a[i * page] = 1;
    child_ready_and_wait(w);
}

static void test_posix_reopen_unlink(void **state)
{
    world_t w;
    posix_arg_t x;
    size_t len = 8 * (size_t)page;
    snprintf(x.name, sizeof(x.name), "/shmtrack-test-posix-%d", (int)getpid());
    int fd = shm_open(x.name, O_RDWR | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)len), 0);
    char key[96], name[96];
    key_of_fd(fd, "posix", key, sizeof(key));
    world_init(&w);
    tick();
    world_start(&w, posix_root, &x, 1);
    /* mapped only now, so the tree does not inherit this mapping */
    char *m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
    assert_true(m != MAP_FAILED);
    close(fd);
    assert_int_equal(shm_unlink(x.name), 0);
    snprintf(name, sizeof(name), "/dev/shm%s", x.name);
    expect_t e = {.key = key,
                  .size = own_mincore(m, len),
                  .virtual_size = len,
                  .n = 1,
                  .pid = {w.root},
                  .mapped = {len},
                  .owner = w.root,
                  .name = name};
    assert_int_equal(e.size, 4 * (uint64_t)page);
    scan_and_check(w.root, &e, 1);
    world_end(&w);
    munmap(m, len);
}

/* ---- regression: maps text read past a file whose filesystem had to be looked up ---- */

/* A /dev/shm file's mount is looked up (mountinfo) while the maps text is being parsed; that
 * lookup must not reuse the buffer holding the maps. The test maps a /dev/shm file and just above
 * it a memfd, at the bottom of its address space (first in maps), and scans itself from the maps
 * text: both must be found. */
static void test_maps_text_after_mount_lookup(void **state)
{
    size_t len = 2 * (size_t)page;
    char shm_name[64], k_memfd[96], k_posix[96];
    snprintf(shm_name, sizeof(shm_name), "/shmtrack-test-mnt-%d", (int)getpid());
    int mfd = memfd_create("mnt-lookup", MFD_CLOEXEC);
    assert_true(mfd >= 0);
    assert_int_equal(ftruncate(mfd, (off_t)len), 0);
    /* low fixed addresses: first in maps, so the lookup happens early in the text (256 MiB is
     * below a PIE binary and inside ASan's low application range) */
    char *low = NULL, *a = MAP_FAILED;
    for (uintptr_t at = 0x10000000u; at <= 0x40000000u && a == MAP_FAILED; at += 0x10000000u) {
        low = (char *)at;
        a = mmap(low + len, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED_NOREPLACE, mfd, 0);
    }
    if (a != low + len) {
        close(mfd);
        skip(); /* no free low address: the case cannot be set up here */
    }
    int pfd = shm_open(shm_name, O_RDWR | O_CREAT | O_EXCL, 0600);
    assert_true(pfd >= 0);
    assert_int_equal(shm_unlink(shm_name), 0);
    assert_int_equal(ftruncate(pfd, (off_t)len), 0);
    char *b = mmap(low, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED_NOREPLACE, pfd, 0);
    assert_true(b == low);
    a[0] = b[0] = 1;
    key_of_fd(mfd, "memfd", k_memfd, sizeof(k_memfd));
    key_of_fd(pfd, "posix", k_posix, sizeof(k_posix));
    close(mfd);
    close(pfd);
    st_scan_options_t o;
    st_scan_options_init(&o);
    o.maps_method = ST_MAPS_TEXT;
    o.include_unheld = false;
    int self = getpid();
    o.pids = &self;
    o.n_pids = 1;
    st_trace_t *t = NULL;
    assert_int_equal(st_scan_trace(&o, &t, NULL), 0);
    assert_non_null(global_of(&t->dumps[0], k_posix));
    assert_non_null(global_of(&t->dumps[0], k_memfd));
    st_trace_free(t);
    munmap(a, len);
    munmap(b, len);
}

/* ---- scenario: SysV attached in two processes, then IPC_RMID ---- */

typedef struct sysv_arg {
    int to_root[2];
    int to_test[2];
} sysv_arg_t;

static void sysv_root(world_t *w, void *arg)
{
    sysv_arg_t *x = arg;
    tick();
    pid_t pid = fork();
    if (pid == 0) { /* the creator starts after the root: creator must still win */
        int id = shmget(IPC_PRIVATE, 8 * (size_t)page, IPC_CREAT | 0600);
        char *a = id < 0 ? (char *)-1 : shmat(id, NULL, 0);
        if (a == (char *)-1)
            _exit(12);
        a[0] = a[page] = 1;
        if (write(x->to_root[1], &id, sizeof(id)) != sizeof(id) ||
            write(x->to_test[1], &id, sizeof(id)) != sizeof(id))
            _exit(13);
        child_ready_and_wait(w);
    }
    int id;
    if (read(x->to_root[0], &id, sizeof(id)) != sizeof(id))
        _exit(14);
    char *a = shmat(id, NULL, 0);
    if (a == (char *)-1)
        _exit(15);
    a[4 * page] = a[5 * page] = 1;
    child_ready_and_wait(w);
}

static void test_sysv_two_attach_rmid(void **state)
{
    world_t w;
    sysv_arg_t x;
    size_t len = 8 * (size_t)page;
    assert_int_equal(pipe(x.to_root), 0);
    assert_int_equal(pipe(x.to_test), 0);
    world_init(&w);
    world_start(&w, sysv_root, &x, 2);
    int id;
    assert_int_equal(read(x.to_test[0], &id, sizeof(id)), sizeof(id));
    char *m = shmat(id, NULL, SHM_RDONLY);
    assert_true(m != (char *)-1);
    uint64_t truth = own_mincore(m, len);
    assert_int_equal(truth, 4 * (uint64_t)page);
    assert_int_equal(shmctl(id, IPC_RMID, NULL), 0);
    char key[96];
    key_of_sysv(id, key, sizeof(key));
    pid_t creator = w.pids[0] == w.root ? w.pids[1] : w.pids[0];
    expect_t e = {.key = key,
                  .size = truth,
                  .virtual_size = len,
                  .n = 2,
                  .pid = {w.root, creator},
                  .mapped = {len, len},
                  .owner = creator,
                  .name = "/SYSV00000000"};
    scan_and_check(w.root, &e, 1);
    char cpid[16];
    snprintf(cpid, sizeof(cpid), "%d", (int)creator);
    st_trace_t *t = scan_tree(w.root, ST_POLICY_CREATOR, ST_MAPS_AUTO, ST_RESIDENCY_AUTO);
    assert_string_equal(st_node_string(global_of(&t->dumps[0], key), "creator_pid"), cpid);
    st_trace_free(t);
    world_end(&w);
    shmdt(m);
    for (int i = 0; i < 2; i++) {
        close(x.to_root[i]);
        close(x.to_test[i]);
    }
}

/* ---- scenario: alive but unmapped objects of each kind ---- */

static void idle_root(world_t *w, void *arg)
{
    child_ready_and_wait(w);
}

static void test_unmapped_alive(void **state)
{
    world_t w;
    char buf[4096];
    memset(buf, 1, sizeof(buf));
    /* a memfd the tree holds only as an fd */
    int mfd = memfd_create("fd only", 0);
    assert_true(mfd >= 0);
    assert_int_equal(ftruncate(mfd, 4 * page), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(pwrite(mfd, buf, 1, (off_t)i * page), 1);
    struct stat st;
    assert_int_equal(fstat(mfd, &st), 0);
    uint64_t mfd_truth = (uint64_t)st.st_blocks * 512;
    /* a /dev/shm file nobody maps or holds */
    char path[96];
    snprintf(path, sizeof(path), "/dev/shm/shmtrack-test-unheld-%d", (int)getpid());
    int pfd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
    assert_true(pfd >= 0);
    assert_int_equal(ftruncate(pfd, 8 * page), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pwrite(pfd, buf, 1, (off_t)i * page), 1);
    assert_int_equal(fstat(pfd, &st), 0);
    uint64_t posix_truth = (uint64_t)st.st_blocks * 512;
    char mkey[96], pkey[96], skey[96];
    key_of_fd(mfd, "memfd", mkey, sizeof(mkey));
    key_of_fd(pfd, "posix", pkey, sizeof(pkey));
    close(pfd);
    /* a SysV segment with no attachment */
    int id = shmget(IPC_PRIVATE, 4 * (size_t)page, IPC_CREAT | 0600);
    assert_true(id >= 0);
    char *s = shmat(id, NULL, 0);
    assert_true(s != (char *)-1);
    for (int i = 0; i < 3; i++)
        s[i * page] = 1;
    uint64_t sysv_truth = own_mincore(s, 4 * (size_t)page);
    assert_int_equal(shmdt(s), 0);
    key_of_sysv(id, skey, sizeof(skey));

    world_init(&w);
    world_start(&w, idle_root, NULL, 1);
    assert_int_equal(mfd_truth, 3 * (uint64_t)page);
    assert_int_equal(posix_truth, 2 * (uint64_t)page);
    assert_int_equal(sysv_truth, 3 * (uint64_t)page);
    expect_t e[3] = {
        {.key = mkey,
         .size = mfd_truth,
         .virtual_size = 4 * (uint64_t)page,
         .n = 1,
         .pid = {w.root},
         .mapped = {0},
         .owner = w.root},
        {.key = pkey,
         .size = posix_truth,
         .virtual_size = 8 * (uint64_t)page,
         .n = 0,
         .name = path},
        {.key = skey, .size = sysv_truth, .virtual_size = 4 * (uint64_t)page, .n = 0},
    };
    scan_and_check(w.root, e, 3);
    world_end(&w);
    unlink(path);
    shmctl(id, IPC_RMID, NULL);
    close(mfd);
}

/* ---- scenario: hugetlbfs ---- */

static long read_long(const char *path)
{
    FILE *f = fopen(path, "r");
    long v = -1;
    if (f != NULL) {
        if (fscanf(f, "%ld", &v) != 1)
            v = -1;
        fclose(f);
    }
    return v;
}

static bool write_long(const char *path, long v)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return false;
    bool ok = fprintf(f, "%ld\n", v) > 0;
    return fclose(f) == 0 && ok;
}

typedef struct huge_arg {
    int fd;
    size_t len;
} huge_arg_t;

static void huge_root(world_t *w, void *arg)
{
    huge_arg_t *x = arg;
    char *a = mmap(NULL, x->len, PROT_READ | PROT_WRITE, MAP_SHARED, x->fd, 0);
    if (a == MAP_FAILED)
        _exit(16);
    a[0] = 1; /* one huge page */
    child_ready_and_wait(w);
}

static void test_hugetlb(void **state)
{
    const char *nr = "/proc/sys/vm/nr_hugepages";
    long before = read_long(nr);
    if (before < 0) {
        print_message("skipped: %s unreadable (no hugetlb support)\n", nr);
        skip();
    }
    if (before < 2 && !(write_long(nr, 2) && read_long(nr) >= 2)) {
        write_long(nr, before);
        print_message("skipped: could not reserve 2 huge pages in %s (have %ld)\n", nr, before);
        skip();
    }
    long hpage = 0;
    FILE *f = fopen("/proc/meminfo", "r");
    char line[128];
    while (f != NULL && fgets(line, sizeof(line), f))
        if (sscanf(line, "Hugepagesize: %ld kB", &hpage) == 1)
            break;
    if (f != NULL)
        fclose(f);
    hpage *= 1024;
    huge_arg_t x = {memfd_create("huge", MFD_HUGETLB), 2 * (size_t)hpage};
    assert_true(hpage > 0 && x.fd >= 0);
    assert_int_equal(ftruncate(x.fd, (off_t)x.len), 0);
    char key[96];
    key_of_fd(x.fd, "hugetlb", key, sizeof(key));
    world_t w;
    world_init(&w);
    world_start(&w, huge_root, &x, 1);
    expect_t e = {.key = key,
                  .size = (uint64_t)hpage,
                  .virtual_size = x.len,
                  .n = 1,
                  .pid = {w.root},
                  .mapped = {x.len},
                  .owner = w.root};
    scan_and_check(w.root, &e, 1);
    world_end(&w);
    close(x.fd);
    if (before < 2)
        write_long(nr, before);
}

/* ---- bad input ---- */

static void test_nonexistent_pid(void **state)
{
    st_scan_options_t o;
    st_trace_t *t = NULL;
    int pid = 0x3ffffff0, bad = 0;
    st_scan_options_init(&o);
    o.pids = &pid;
    o.n_pids = 1;
    assert_int_equal(st_scan_trace(&o, &t, &bad), -ESRCH);
    assert_int_equal(bad, pid);
    assert_null(t);
    o.n_pids = 0;
    o.policy = ST_POLICY_FIRST_TOUCH;
    assert_int_equal(st_scan_trace(&o, &t, &bad), ST_EUSAGE);
}

/* A process that exits between pid selection and reading is recorded, never fatal. */
static void test_vanished_pid(void **state)
{
    pid_t gone = fork();
    if (gone == 0)
        _exit(0);
    assert_int_equal(waitpid(gone, NULL, 0), gone);
    st_scan_options_t o;
    st_scan_options_init(&o);
    st_trace_t *t = NULL;
    st_global_dump_t *d = NULL;
    assert_int_equal(st_trace_new(&t), 0);
    assert_int_equal(st_trace_add_dump(t, 1, 0, &d), 0);
    int pids[2] = {getpid(), gone};
    assert_int_equal(st_scan_into_dump(&o, pids, 2, d), 0);
    assert_non_null(st_dump_find_process(d, getpid()));
    assert_null(st_dump_find_process(d, gone));
    bool recorded = false;
    for (size_t i = 0; i < d->n_problems; i++)
        recorded |= d->problems[i].pid == gone && d->problems[i].err == ENOENT;
    assert_true(recorded);
    st_trace_free(t);
}

/* Pids whose totals the caller replaces (the coordinator's clients) get none from the scan, and
 * everything else the scan finds is the same. */
static void test_own_totals(void **state)
{
    st_scan_options_t o;
    st_scan_options_init(&o);
    o.include_unheld = false;
    st_trace_t *t = NULL;
    st_global_dump_t *full = NULL, *own = NULL;
    assert_int_equal(st_trace_new(&t), 0);
    assert_int_equal(st_trace_add_dump(t, 1, 0, &full), 0);
    assert_int_equal(st_trace_add_dump(t, 2, 0, &own), 0);
    full = &t->dumps[0]; /* the second add may have moved the first */
    int pid = getpid();
    assert_int_equal(st_scan_into_dump(&o, &pid, 1, full), 0);
    o.own_totals = &pid;
    o.n_own_totals = 1;
    assert_int_equal(st_scan_into_dump(&o, &pid, 1, own), 0);
    const st_process_dump_t *pf = st_dump_find_process(full, pid);
    const st_process_dump_t *po = st_dump_find_process(own, pid);
    assert_non_null(pf);
    assert_non_null(po);
    assert_true(pf->totals.present & ST_TOTAL_HAS(pss_bytes));
    assert_int_equal(po->totals.present, 0);
    assert_int_equal(po->n_nodes, pf->n_nodes);
    assert_int_equal(own->n_globals, full->n_globals);
    assert_int_equal(own->n_problems, 0);
    st_trace_free(t);
}

/* ---- threads ---- */

enum { MANY_PROCS = 40, MANY_OBJS = 10 };

/* MANY_OBJS memfds of 2 pages: all but the last mapped, 1 or 2 pages written; the last one
 * held as an fd only. */
static void many_objects(int k)
{
    for (int j = 0; j < MANY_OBJS; j++) {
        int fd = memfd_create("many", 0);
        if (fd < 0 || ftruncate(fd, 2 * page) < 0)
            _exit(5);
        if (j == MANY_OBJS - 1)
            return; /* the fd stays open */
        char *m = mmap(NULL, 2 * (size_t)page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED)
            _exit(6);
        close(fd);
        for (int p = 0; p <= (k + j) % 2; p++)
            m[p * page] = 1;
    }
}

/* The root of MANY_PROCS processes that share one anonymous region and have objects of their
 * own. */
static void many_root(world_t *w, void *arg)
{
    char *shared =
        mmap(NULL, 4 * (size_t)page, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED)
        _exit(5);
    shared[0] = 1;
    for (int i = 1; i < MANY_PROCS; i++) {
        pid_t c = fork();
        if (c < 0)
            _exit(5);
        if (c == 0) {
            many_objects(i);
            child_ready_and_wait(w);
        }
    }
    many_objects(0);
    child_ready_and_wait(w);
}

/* The trace of a scan of the tree with this many threads, as the writer writes it (one fixed
 * timestamp, so that two scans can be compared byte for byte). */
static bool scan_close_async; /* st_scan_options.close_async for scan_text */

static char *scan_text(pid_t root, unsigned threads, st_maps_method_t maps, size_t *n_globals)
{
    st_scan_options_t o;
    st_trace_t *t = NULL;
    st_error_t err;
    char *text = NULL;
    size_t len = 0;
    st_scan_options_init(&o);
    o.tree_root = root;
    o.threads = threads;
    o.maps_method = maps;
    o.close_async = scan_close_async;
    o.include_unheld = false; /* /dev/shm may change between the scans on a shared machine */
    assert_int_equal(st_scan_trace(&o, &t, NULL), 0);
    t->dumps[0].ts_us = 1;
    *n_globals = t->dumps[0].n_globals;
    /* PSS and USS change between the scans for real: the processes share pages copy-on-write
     * with this one, which allocates (ASan builds a lot) while it scans. So do RSS and the
     * anonymous footprint under TSan: every child runs the sanitizer's background thread, which
     * faults pages in between scans (seen once in 40 runs: one child's Rss +48 KiB). The objects,
     * their sizes, holders and owners are what must not change. */
    for (size_t i = 0; i < t->dumps[0].n_procs; i++)
        t->dumps[0].procs[i].totals.present &=
            ~(ST_TOTAL_HAS(pss_bytes) | ST_TOTAL_HAS(uss_bytes) | ST_TOTAL_HAS(resident_set_bytes) |
              ST_TOTAL_HAS(private_footprint_bytes));
    assert_int_equal(st_graph_annotate_trace(t), 0);
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    memset(&err, 0, sizeof(err));
    assert_int_equal(st_trace_write_stream(t, f, &err), 0);
    assert_int_equal(fclose(f), 0);
    st_trace_free(t);
    return text;
}

/* Starts the many-process world in *W and scans it on THREADS threads reading mappings by MAPS:
 * the reference trace, its N globals every process's objects and the shared one. */
static char *many_reference(world_t *w, unsigned threads, st_maps_method_t maps, size_t *n)
{
    world_init(w);
    world_start(w, many_root, NULL, MANY_PROCS);
    char *text = scan_text(w->root, threads, maps, n);
    assert_int_equal(*n, MANY_PROCS * MANY_OBJS + 1);
    return text;
}

/* TEXT (N globals) is the reference trace REF (N_REF globals) to the byte; frees TEXT. */
static void assert_same_trace(const char *ref, size_t n_ref, char *text, size_t n)
{
    size_t lr = strlen(ref), lt = strlen(text), at = 0;
    while (at < lr && at < lt && ref[at] == text[at])
        at++;
    if (at < lr || at < lt) { /* where they part, not two whole traces (cmocka cuts them) */
        size_t from = at > 200 ? at - 200 : 0;
        int wr = (int)(lr - from < 600 ? lr - from : 600),
            wt = (int)(lt - from < 600 ? lt - from : 600);
        fprintf(stderr,
                "traces differ at byte %zu of %zu / %zu\n--- first:\n%.*s\n--- second:\n%.*s\n", at,
                lr, lt, wr, ref + from, wt, text + from);
        fail_msg("the two scans' traces differ");
    }
    assert_int_equal(n_ref, n);
    free(text);
}

/* Reading processes and measuring objects on several threads gives the very trace one thread
 * gives (enough processes and objects that every phase runs on more than one thread). */
static void test_threads_same_trace(void **state)
{
    world_t w;
    size_t n1 = 0, n3 = 0, n8 = 0;
    char *one = many_reference(&w, 1, ST_MAPS_AUTO, &n1);
    char *three = scan_text(w.root, 3, ST_MAPS_AUTO, &n3);
    char *eight = scan_text(w.root, 8, ST_MAPS_AUTO, &n8);
    assert_same_trace(one, n1, three, n3);
    assert_same_trace(one, n1, eight, n8);
    free(one);
    world_end(&w);
}

/* Every way of reading mappings gives the very same trace: the text, PROCMAP_QUERY, and AUTO
 * (which mixes them by how dense a process's shared mappings are). */
static void test_maps_methods_same_trace(void **state)
{
    world_t w;
    size_t na = 0, nt = 0, nq = 0;
    char *a = many_reference(&w, 2, ST_MAPS_AUTO, &na);
    char *t = scan_text(w.root, 2, ST_MAPS_TEXT, &nt);
    assert_same_trace(a, na, t, nt);
    st_scan_options_t o;
    st_scan_options_init(&o);
    o.tree_root = w.root;
    o.maps_method = ST_MAPS_PROCMAP;
    st_trace_t *probe = NULL;
    if (st_scan_trace(&o, &probe, NULL) == 0 && probe->dumps[0].n_problems == 0) {
        char *q = scan_text(w.root, 2, ST_MAPS_PROCMAP, &nq);
        assert_same_trace(a, na, q, nq);
    } else {
        print_message("PROCMAP_QUERY not supported by this kernel: text and auto compared\n");
    }
    st_trace_free(probe);
    free(a);
    world_end(&w);
}

/* Measuring keeps fds open (every object's until the end with close_async, and each thread's
 * /proc/PID directories); under a tight RLIMIT_NOFILE the scan closes them early and reopens
 * what it needs, and gives the very trace it gives with room to spare. */
static void test_low_fd_limit_same_trace(void **state)
{
    world_t w;
    size_t n1 = 0, n2 = 0;
    char *roomy = many_reference(&w, 2, ST_MAPS_AUTO, &n1);
    struct rlimit old, tight;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    int probe = open("/dev/null", O_RDONLY | O_CLOEXEC); /* the lowest free fd: fds in use */
    assert_true(probe >= 0);
    close(probe);
    tight = old;
    tight.rlim_cur = (rlim_t)probe + 24; /* far fewer than the 401 objects, 40 processes */
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &tight), 0);
    scan_close_async = true;
    char *tight_text = scan_text(w.root, 2, ST_MAPS_AUTO, &n2);
    scan_close_async = false;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    assert_same_trace(roomy, n1, tight_text, n2);
    free(roomy);
    world_end(&w);
}

/* ---- the command ---- */

static int run_cli(const char *args, char *err, size_t len)
{
    const char *bin = getenv("SHMTRACK_BIN");
    char cmd[1024];
    assert_non_null(bin);
    snprintf(cmd, sizeof(cmd), "%s/shmtrack scan %s 2>&1 >/dev/null", bin, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(err, 1, len - 1, p);
    err[n] = '\0';
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* `shmtrack scan --tree ROOT -o TRACE` writes a trace the reader takes back, with the object,
 * its holders and effective sizes; bad pids and policies exit 2 with a sentence. */
static void test_cli(void **state)
{
    world_t w;
    anon_arg_t x;
    size_t len = 64 * (size_t)page;
    x.a = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(x.a != MAP_FAILED);
    char key[96], out[1024], args[256], trace[] = "/tmp/shmtrack-test-scan-XXXXXX";
    key_of_addr(x.a, "anon", key, sizeof(key));
    int tfd = mkstemp(trace);
    assert_true(tfd >= 0);
    close(tfd);
    world_init(&w);
    world_start(&w, anon_root, &x, 3);
    uint64_t truth = own_mincore(x.a, len);
    snprintf(args, sizeof(args), "--tree %d -o %s", (int)w.root, trace);
    assert_int_equal(run_cli(args, out, sizeof(out)), 0);
    st_trace_t *t = NULL;
    st_error_t err;
    assert_int_equal(st_trace_read_file(trace, &t, &err), 0);
    assert_int_equal(t->n_dumps, 1);
    const st_node_t *g = global_of(&t->dumps[0], key);
    assert_non_null(g);
    assert_int_equal(scalar(g, "size"), truth);
    assert_int_equal(scalar(g, "effective_size"), 0);
    char path[160];
    snprintf(path, sizeof(path), "shared_memory/%s", key);
    uint64_t sum = 0;
    for (int i = 0; i < 3; i++) {
        const st_process_dump_t *p = st_dump_find_process(&t->dumps[0], w.pids[i]);
        assert_non_null(p);
        const st_node_t *h = st_process_find_node(p, path);
        assert_non_null(h);
        uint64_t eff = scalar(h, "effective_size");
        assert_int_equal(eff, w.pids[i] == w.root ? truth : 0);
        sum += eff;
    }
    assert_int_equal(sum, truth);
    st_trace_free(t);
    world_end(&w);
    munmap(x.a, len);
    unlink(trace);

    assert_int_equal(run_cli("--pid 1073741800", out, sizeof(out)), 2);
    assert_non_null(strstr(out, "no process with pid 1073741800"));
    assert_int_equal(run_cli("--policy first-touch", out, sizeof(out)), 2);
    assert_non_null(strstr(out, "first-touch"));
    assert_int_equal(run_cli("--pid x", out, sizeof(out)), 2);
    assert_int_equal(run_cli("--help", out, sizeof(out)), 0);
}

/* ---- unprivileged ---- */

/* Runs as nobody (see test_unprivileged): scenario + scan in one process tree of its own. Every
 * object must be exact, or labelled smaps-lower-bound and not above the truth. */
static int unpriv_main(void)
{
    world_t w;
    anon_arg_t x;
    size_t len = 64 * (size_t)page;
    int failures = 0;
    x.a = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    int mfd = memfd_create("unpriv", 0);
    if (x.a == MAP_FAILED || mfd < 0 || ftruncate(mfd, 4 * page) < 0 ||
        pwrite(mfd, "x", 1, page) != 1)
        return 2;
    char akey[96], mkey[96];
    key_of_addr(x.a, "anon", akey, sizeof(akey));
    key_of_fd(mfd, "memfd", mkey, sizeof(mkey));
    world_init(&w);
    world_start(&w, anon_root, &x, 3);
    struct {
        const char *key;
        uint64_t truth;
    } objs[2] = {{akey, own_mincore(x.a, len)}, {mkey, (uint64_t)page}};
    st_trace_t *t = scan_tree(w.root, ST_POLICY_CREATOR, ST_MAPS_AUTO, ST_RESIDENCY_AUTO);
    const st_global_dump_t *d = &t->dumps[0];
    for (int i = 0; i < 2; i++) {
        const st_node_t *g = global_of(d, objs[i].key);
        uint64_t size = 0;
        if (g == NULL || !st_node_scalar(g, "size", &size)) {
            printf("unpriv: %s missing\n", objs[i].key);
            failures++;
            continue;
        }
        const char *src = st_node_string(g, "residency_source");
        bool lower = src != NULL && strcmp(src, "smaps-lower-bound") == 0;
        bool warned = false;
        for (size_t k = 0; k < d->n_warnings; k++)
            warned |= strstr(d->warnings[k], objs[i].key) != NULL;
        printf("unpriv: %s size %" PRIu64 " truth %" PRIu64 " source %s%s\n", objs[i].key, size,
               objs[i].truth, src ? src : "(none)", warned ? " (warned)" : "");
        if (lower ? (size > objs[i].truth || !warned) : size != objs[i].truth)
            failures++;
    }
    st_trace_free(t);
    world_end(&w);
    return failures ? 1 : 0;
}

static void test_unprivileged(void **state)
{
    if (geteuid() != 0) {
        print_message("skipped: needs root to switch to nobody with setpriv\n");
        skip();
    }
    /* copy ourselves where nobody can execute us */
    char dir[] = "/tmp/shmtrack-unpriv-XXXXXX", exe[64], cmd[256];
    assert_non_null(mkdtemp(dir));
    assert_int_equal(chmod(dir, 0755), 0);
    snprintf(exe, sizeof(exe), "%s/test_scan", dir);
    snprintf(cmd, sizeof(cmd), "cp /proc/%d/exe %s && chmod 755 %s", (int)getpid(), exe, exe);
    assert_int_equal(system(cmd), 0);
    pid_t pid = fork();
    if (pid == 0) {
        execlp("setpriv", "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", exe,
               "--unpriv", (char *)NULL);
        _exit(127);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    unlink(exe);
    rmdir(dir);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(int argc, char **argv)
{
    page = sysconf(_SC_PAGESIZE);
    if (argc > 1 && strcmp(argv[1], "--unpriv") == 0)
        return unpriv_main();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_anon_fork),
        cmocka_unit_test(test_memfd_scm_rights_exec),
        cmocka_unit_test(test_memfd_twice_and_partial_unmap),
        cmocka_unit_test(test_posix_reopen_unlink),
        cmocka_unit_test(test_maps_text_after_mount_lookup),
        cmocka_unit_test(test_sysv_two_attach_rmid),
        cmocka_unit_test(test_unmapped_alive),
        cmocka_unit_test(test_hugetlb),
        cmocka_unit_test(test_nonexistent_pid),
        cmocka_unit_test(test_vanished_pid),
        cmocka_unit_test(test_own_totals),
        cmocka_unit_test(test_threads_same_trace),
        cmocka_unit_test(test_maps_methods_same_trace),
        cmocka_unit_test(test_low_fd_limit_same_trace),
        cmocka_unit_test(test_cli),
        cmocka_unit_test(test_unprivileged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
