/* SPDX-License-Identifier: MIT
 *
 * The coordinator (see coordinator.h): ipc/server.c handles connections and frames; this file is
 * the bookkeeping on top: clients by session, objects by key, and the global dump's life:
 *
 *   start:  every ready client becomes PENDING and is asked (DUMP_REQUEST) in turn: at most
 *           cfg.ask_window of them at a time, the next when one answers or leaves, or when one
 *           has kept its request cfg.ask_patience_ms (a stuck client holds no place); from
 *           half the deadline on, everyone left is asked at once. Asked all at once, 100 clients
 *           or more contend for the cores and their answers pile up in socket buffers that
 *           outgrow the caches before the coordinator reads them (docs/ipc.md, eighth round)
 *   answer: PROCESS_DUMP chunks are copied into the client's record buffer; LAST -> ANSWERED,
 *           and its records are indexed at once (pass 1 of the merge: each object found or
 *           added by wire key, its key string, guid and announced metadata), while the other
 *           clients are still answering
 *   rejoin: a client that connects while a dump is in progress, from a process whose client was
 *           asked and has not answered (the host closed every fd, or dup2'ed over ours, and the
 *           library reconnected), is asked too: its answer on the new connection completes the
 *           dump, and its earlier departure becomes a warning that does not make the dump partial.
 *           If the first connection answers too (it was still pending when the new one came),
 *           the first of the two complete answers counts and the other is ignored
 *   finish: when nobody is PENDING or the deadline passed. Late and departed clients become
 *           warnings and make the dump partial. With every answer indexed, the objects and
 *           holders are added, the graph processor annotates, the dump is appended to the trace
 *           and waiting tools are answered.
 *
 * The merged dump does not depend on the order the answers arrived in: an object's record that
 * gives its name, sizes, label and carrier is the one from the lowest pid that reported it (the
 * first in that process's record order), and its creator is the one a CREATED event announced,
 * else the lowest pid whose record carries the creator flag.
 *
 * uthash keeps the two tables (the objects also by binary wire key in an open-addressing table,
 * for the merge); the per-dump index is an open-addressing table by binary wire key (kept between
 * dumps, like the record buffers: fresh pages are dear on a VM), so a merge is linear in the
 * number of records and formats each object's key once. index_answer and merge are kept out of
 * line so that a profiler can count them (valgrind --toggle-collect).
 */
#include "coordinator.h"

#include "array.h"
#include "error.h"
#include "graph.h"
#include "procfs.h"
#include "scan.h"
#include "server.h"
#include "sock.h"
#include "trace_json.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include <uthash.h>

_Static_assert(ST_WIRE_KIND_COUNT == ST_KIND_COUNT, "wire kinds follow st_kind_t");
_Static_assert(ST_KIND_ANON == 0 && ST_KIND_SYSV == 3, "wire kinds follow st_kind_t");

enum { C_IDLE, C_PENDING, C_ANSWERED };

/* How long a dump waits for a live process whose client left before answering to reconnect
 * (the library reconnects at once; within the deadline). */
#define REJOIN_GRACE_MS 250

typedef struct client {
    uint64_t session; /* hash key */
    st_conn_t *conn;  /* NULL once gone */
    int pid;
    uint32_t role;
    char name[64];
    int state;
    st_wire_totals_t totals;
    st_wire_object_t *recs; /* grown only while PENDING: stable once the answer is complete,
                             * until clear_dump_state (departed clients keep theirs) */
    size_t n_recs, cap_recs;
    uint32_t *objs; /* per record once indexed: its merge object's position + 1; 0 unusable key */
    size_t cap_objs;
    bool rejoined;     /* asked for the dump in progress when it connected (see rejoins) */
    bool asking;       /* its request counts against the ask window */
    uint64_t asked_ms; /* st_clock_ms when it was asked */
    bool waiting;      /* a control client waiting for the dump in progress */
    bool want_trace;
    UT_hash_handle hh;
} client_t;

/* Why the dump in progress is partial. */
typedef struct reason {
    char *text;
    int left_pid; /* the pid whose client left before answering, or 0 */
    bool awaited; /* left_pid is alive and has not rejoined yet */
} reason_t;

typedef struct object {
    char key[ST_KEY_MAX];
    st_coord_object_t meta;
    UT_hash_handle hh;
} object_t;

/* An announced object in the table by wire key, with its key string and guid, made when its
 * first event came: pass 1 then neither formats nor hashes the key of an object it finds here,
 * in the one cache line it reads anyway (formatting, strlen and hashing were ~1/5 of pass 1). */
typedef struct ann {
    st_wire_key_t wk; /* canonical */
    object_t *o;      /* NULL: empty */
    uint64_t guid;    /* st_guid_global(o->key) */
    uint8_t key_len;  /* strlen(o->key) when it fits key below, else 0 */
    char key[23];     /* o->key with its NUL, when key_len > 0 */
} ann_t;
_Static_assert(sizeof(ann_t) == 64, "an announced object per cache line");

/* Per-dump merge index entry. */
typedef struct mobj {
    st_wire_key_t wk; /* canonical: only the fields the key string shows */
    int creator;      /* set by the merge: announced, else flagged */
    int flagged;      /* the lowest pid whose record has ST_OBJ_F_CREATOR; 0 none */
    uint64_t size;    /* set by the merge: its resident bytes, the first record's, or the /proc
                       * scan's when that is larger (fd-backed objects) */
    const st_wire_object_t *first; /* the record of the lowest pid (stable: see client_t.recs) */
    int first_pid;                 /* that pid */
    uint64_t guid;                 /* st_guid_global(key) */
    const object_t *announced;     /* what the events said about it; NULL when nothing */
    uint32_t global;               /* set by graph_links: its index in the dump's global nodes */
    size_t key;                    /* its key string: at this offset of the merge's key buffer */
} mobj_t;

/* The /proc scan of the clients asked for a dump, run on its own thread while they answer (their
 * pids are known when the requests go out): a dump then costs the longer of the two, not both. */
typedef struct scan_job {
    pthread_t thread;
    bool started;    /* the thread exists and has not been joined */
    st_trace_t *out; /* one dump, filled by the thread; NULL when no job */
    int *pids;       /* sorted */
    size_t n_pids;
    st_scan_options_t so;
    int rc;
    st_trace_t *gone; /* dumps the trace dropped, freed by the thread after its scan */
} scan_job_t;

struct st_coord {
    st_coord_config_t cfg;
    st_server_t *srv;
    st_trace_t *trace;
    client_t *clients;
    object_t *objects;
    /* the same objects by canonical wire key (open addressing, at most half full): what the
     * merge looks answers up in, with the hash it has at hand and ahead of use; ann_ok false
     * when it could not grow (the merge then looks up co->objects by key string) */
    struct ann *ann;
    size_t cap_ann, n_ann;
    bool ann_ok;
    size_t n_ready_clients;
    /* the dump in progress */
    bool active;
    uint64_t id, next_id;
    uint64_t ts_us;
    uint64_t deadline_ms;
    char trigger[32];
    size_t pending;
    client_t *departed; /* answered or pending clients that left during the dump (not hashed) */
    /* the merge index, filled as clients answer, and its scratch, kept between dumps */
    mobj_t *pool;
    size_t cap_pool, used;   /* used: objects indexed in this dump */
    size_t keys_len;         /* bytes of keybuf used in this dump */
    size_t objects_at_start; /* n_objects when the dump started */
    int index_rc;            /* < 0: indexing an answer failed (out of memory) */
    size_t n_objects;        /* entries of objects */
    uint32_t *slots;         /* open addressing: pool position + 1 by wire key hash; 0 is empty */
    size_t cap_slots;
    st__keyed_t *keys; /* objects by guid, and as much scratch */
    size_t cap_keys;
    /* per pool object, made by the holders thread: what its holders share, and its creator
     * (read per holder, from a small array rather than the pool) */
    st_holder_proto_t *protos;
    int *creators;
    size_t cap_protos;
    char *keybuf; /* the objects' key strings, one after another (mobj_t.key) */
    size_t cap_keybuf;
    reason_t *reasons;
    size_t n_reasons;
    size_t n_awaited;         /* reasons whose process is alive and may still rejoin */
    uint64_t rejoin_until_ms; /* how long the dump waits for them (within the deadline) */
    st_global_dump_t *last;   /* the last merged dump */
    bool last_done;
    scan_job_t scan;
    uint64_t t_start, t_answered; /* st_clock_ns: this dump's start, its last answer in */
    uint64_t t_index;             /* ns spent in index_answer in this dump */
    st_coord_times_t times;       /* the last merged dump's */
    /* graph_links' arrays, kept from dump to dump (no fresh pages): per answer record the holder
     * node it became; per process node its global node and size; per global node its size */
    uint32_t *rec_node, *lk_target;
    uint64_t *lk_size, *lk_gsize;
    size_t cap_rec_node, cap_lkt, cap_lks, cap_lkg;
    /* the clients of the dump in progress in the order they are asked (NULL: left before its
     * turn): [0, ask_old) answered, left or kept waiting too long; [ask_old, ask_next) asked,
     * asking of them counting against the window */
    client_t **ask;
    size_t n_ask, ask_old, ask_next, asking, cap_ask;
    uint64_t ask_all_ms; /* when everyone left is asked: half the deadline */
};

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static void scan_options(const st_coord_t *co, st_scan_options_t *so)
{
    st_scan_options_init(so);
    so->policy = co->cfg.policy == ST_POLICY_EQUAL ? ST_POLICY_EQUAL : ST_POLICY_CREATOR;
    so->include_unheld = false;
}

/* The nice value of the scan thread, which works while the clients answer. Its results are
 * needed only when the merge starts, but as a fresh task the scheduler ran it (and the threads it
 * starts) before the coordinator's own thread, which then read and indexed the answers after it
 * with the other core idle. Lower, it takes more of what the coordinator's thread and the
 * clients leave. Not much lower: on a busy machine a thread at nice 10 was starved enough that
 * the merge waited for it (docs/ipc.md, fifth round). */
#define HELPER_NICE 5

/* Lowers the calling thread's priority (on Linux, a nice value is per thread and a thread it
 * starts inherits it). Best effort: raising one's own nice value needs no privilege. */
static void helper_priority(void)
{
    (void)setpriority(PRIO_PROCESS, (id_t)gettid(), HELPER_NICE);
}

static void *scan_main(void *arg)
{
    scan_job_t *j = arg;
    helper_priority();
    j->rc = st_scan_into_dump(&j->so, j->pids, j->n_pids, &j->out->dumps[0]);
    st_trace_free(j->gone);
    j->gone = NULL;
    return NULL;
}

/* Waits for the scan thread (if any); the job's result stays for the merge. */
static void scan_join(st_coord_t *co)
{
    if (co->scan.started) {
        pthread_join(co->scan.thread, NULL);
        co->scan.started = false;
    }
}

static void scan_discard(st_coord_t *co)
{
    scan_join(co);
    st_trace_free(co->scan.gone); /* when no thread took them */
    co->scan.gone = NULL;
    st_trace_free(co->scan.out);
    free(co->scan.pids);
    co->scan.out = NULL;
    co->scan.pids = NULL;
    co->scan.n_pids = 0;
}

/* The pids a dump scans: *pids (n client pids, malloc'd) and, with scan_tree_root, every live
 * descendant of that process (itself excluded); *pids becomes that set, sorted and without
 * duplicates. A tree that cannot be read is left out (the clients are still scanned). */
static int scan_pids(const st_coord_t *co, int **pids, size_t n, size_t *n_out)
{
    int *tree = NULL;
    size_t n_tree = 0;
    if (co->cfg.scan_tree_root > 0) {
        st_scan_options_t so;
        st_scan_options_init(&so);
        so.tree_root = co->cfg.scan_tree_root;
        int rc = st_scan_resolve_pids(&so, &tree, &n_tree, NULL);
        if (rc == -ENOMEM)
            return rc;
        if (rc < 0)
            n_tree = 0;
    }
    if (n_tree > 0) {
        int *p = realloc(*pids, (n + n_tree) * sizeof(*p));
        if (p == NULL) {
            free(tree);
            return -ENOMEM;
        }
        *pids = p;
        for (size_t k = 0; k < n_tree; k++)
            if (tree[k] != co->cfg.scan_tree_root)
                p[n++] = tree[k];
    }
    free(tree);
    int *p = *pids;
    qsort(p, n, sizeof(*p), cmp_int);
    size_t w = 0;
    for (size_t i = 0; i < n; i++)
        if (w == 0 || p[w - 1] != p[i])
            p[w++] = p[i];
    *n_out = w;
    return 0;
}

/* Starts scanning the clients just asked for a dump, and hands the thread gone (NULL or the
 * dumps a bounded trace dropped) to free after its scan (see drop_oldest). Without a thread (or
 * memory) the merge scans them itself, as it does when the clients that answered are not the
 * ones asked, and gone is freed here. */
static void scan_start(st_coord_t *co, size_t n_asked, st_trace_t *gone)
{
    scan_discard(co);
    scan_job_t *j = &co->scan;
    j->gone = gone;
    if (co->cfg.no_scan || (n_asked == 0 && co->cfg.scan_tree_root <= 0)) {
        scan_discard(co);
        return;
    }
    if ((j->pids = calloc(n_asked + 1, sizeof(*j->pids))) == NULL) {
        scan_discard(co);
        return;
    }
    st_global_dump_t *d = NULL;
    if (st_trace_new(&j->out) < 0 || st_trace_add_dump(j->out, co->id, co->ts_us, &d) < 0) {
        scan_discard(co);
        return;
    }
    client_t *c, *tmp;
    HASH_ITER(hh, co->clients, c, tmp)
    {
        if (c->state == C_PENDING && j->n_pids < n_asked)
            j->pids[j->n_pids++] = c->pid;
    }
    if (scan_pids(co, &j->pids, j->n_pids, &j->n_pids) < 0) {
        scan_discard(co);
        return;
    }
    scan_options(co, &j->so);
    if (co->cfg.scan_tree_root <= 0) {
        /* Every pid scanned is a client asked. The merge takes this scan only when the same
         * pids answered, and then replaces each one's totals with those its client reported:
         * reading them here (smaps_rollup walks the page tables) would be wasted. With a tree,
         * a descendant that is no client keeps the scan's totals, so all are read. */
        j->so.own_totals = j->pids;
        j->so.n_own_totals = j->n_pids;
    }
    j->rc = 0;
    if (pthread_create(&j->thread, NULL, scan_main, j) != 0)
        scan_discard(co);
    else
        j->started = true;
}

static void logf_(st_coord_t *co, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(st_coord_t *co, const char *fmt, ...)
{
    if (co->cfg.log == NULL)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    co->cfg.log(co->cfg.ud, msg);
}

static void server_log(void *ud, const char *msg)
{
    st_coord_t *co = ud;
    if (co->cfg.log)
        co->cfg.log(co->cfg.ud, msg);
}

/* Notes why this dump is partial; left_pid (or 0): the pid whose client left before answering,
 * forgiven at the merge when another client of that pid answered (a reconnect mid-dump). */
static void add_reason(st_coord_t *co, int left_pid, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void add_reason(st_coord_t *co, int left_pid, const char *fmt, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    reason_t *r = realloc(co->reasons, (co->n_reasons + 1) * sizeof(*r));
    if (r == NULL) {
        free(s);
        return;
    }
    co->reasons = r;
    r[co->n_reasons++] = (reason_t){s, left_pid, false};
    logf_(co, "dump 0x%" PRIx64 ": %s", co->id, s);
}

static int wire_key(const st_wire_key_t *k, char *buf, size_t len)
{
    if (k->kind == ST_KIND_SYSV)
        return st_key_format_sysv(buf, len, k->ino, k->shmid);
    return st_key_format(buf, len, (st_kind_t)k->kind, k->major, k->minor, k->ino);
}

/* The fields of a wire key that its key string shows (st_key_format, st_key_format_sysv): two
 * records name the same object exactly when these are equal. */
static st_wire_key_t canonical_key(const st_wire_key_t *k)
{
    if (k->kind == ST_KIND_SYSV)
        return (st_wire_key_t){k->kind, 0, 0, k->shmid, k->ino};
    return (st_wire_key_t){k->kind, k->major, k->minor, 0, k->ino};
}

static uint64_t key_hash(const st_wire_key_t *k)
{
    uint64_t h = k->ino * 0x9e3779b97f4a7c15ull;
    h ^= ((uint64_t)k->kind << 56) ^ ((uint64_t)k->major << 32) ^ k->minor ^
         ((uint64_t)(uint32_t)k->shmid << 20);
    h *= 0xff51afd7ed558ccdull;
    return h ^ (h >> 32);
}

static int ann_put(st_coord_t *co, const st_wire_key_t *wk, object_t *o)
{
    if ((co->n_ann + 1) * 2 > co->cap_ann) {
        size_t cap = co->cap_ann ? co->cap_ann * 2 : 1024;
        /* entries on whole cache lines, so the one line pass 1 asks for ahead holds all of
         * one (malloc aligns to 16 only) */
        ann_t *t = aligned_alloc(64, cap * sizeof(*t));
        if (t == NULL)
            return -ENOMEM;
        memset(t, 0, cap * sizeof(*t));
        for (size_t i = 0; i < co->cap_ann; i++) {
            if (co->ann[i].o == NULL)
                continue;
            size_t slot = (size_t)key_hash(&co->ann[i].wk) & (cap - 1);
            while (t[slot].o != NULL)
                slot = (slot + 1) & (cap - 1);
            t[slot] = co->ann[i];
        }
        free(co->ann);
        co->ann = t;
        co->cap_ann = cap;
    }
    size_t slot = (size_t)key_hash(wk) & (co->cap_ann - 1);
    while (co->ann[slot].o != NULL)
        slot = (slot + 1) & (co->cap_ann - 1);
    ann_t *a = &co->ann[slot];
    *a = (ann_t){.wk = *wk, .o = o, .guid = st_guid_global(o->key)};
    size_t kl = strlen(o->key);
    if (kl < sizeof(a->key)) {
        a->key_len = (uint8_t)kl;
        memcpy(a->key, o->key, kl + 1);
    }
    co->n_ann++;
    return 0;
}

/* The table's entry of canonical key wk (hash h: key_hash), or NULL. pre: co->ann_ok. */
static const ann_t *ann_find(const st_coord_t *co, const st_wire_key_t *wk, uint64_t h)
{
    if (co->cap_ann == 0)
        return NULL;
    size_t mask = co->cap_ann - 1;
    for (size_t slot = (size_t)h & mask; co->ann[slot].o != NULL; slot = (slot + 1) & mask)
        if (memcmp(&co->ann[slot].wk, wk, sizeof(*wk)) == 0)
            return &co->ann[slot];
    return NULL;
}

/* The announced object of canonical key wk (hash h: key_hash), or NULL; key: its string, for
 * when the table is not usable. */
static object_t *ann_get(const st_coord_t *co, const st_wire_key_t *wk, uint64_t h, const char *key)
{
    object_t *o = NULL;
    if (!co->ann_ok) {
        HASH_FIND(hh, co->objects, key, strlen(key), o);
        return o;
    }
    const ann_t *a = ann_find(co, wk, h);
    return a != NULL ? a->o : NULL;
}

static void client_free(client_t *c)
{
    free(c->recs);
    free(c->objs);
    free(c);
}

/* Makes room in the merge index for n more objects: the pool, and the slot table at most half
 * full (grown tables are rehashed; both are kept between dumps). */
static int index_reserve(st_coord_t *co, size_t n)
{
    size_t need = co->used + n;
    if (need > co->cap_pool) {
        size_t cap = co->cap_pool * 2 > need ? co->cap_pool * 2 : need;
        mobj_t *p = realloc(co->pool, cap * sizeof(*p));
        if (p == NULL)
            return -ENOMEM;
        co->pool = p;
        co->cap_pool = cap;
    }
    if (need * 2 > co->cap_slots || co->slots == NULL) {
        size_t cap = co->cap_slots ? co->cap_slots : 1024;
        while (cap < need * 2)
            cap <<= 1;
        uint32_t *slots = calloc(cap, sizeof(*slots));
        if (slots == NULL)
            return -ENOMEM;
        for (size_t j = 0; j < co->used; j++) {
            size_t slot = (size_t)key_hash(&co->pool[j].wk) & (cap - 1);
            while (slots[slot] != 0)
                slot = (slot + 1) & (cap - 1);
            slots[slot] = (uint32_t)(j + 1);
        }
        free(co->slots);
        co->slots = slots;
        co->cap_slots = cap;
    }
    return 0;
}

/* Where record r's object is looked up: the hash of its canonical key. */
static uint64_t record_hash(const st_wire_object_t *r)
{
    st_wire_key_t wk = canonical_key(&r->key);
    return key_hash(&wk);
}

/* Asks for the slots record i + 8 will be looked up in (the index's, and the announced table's,
 * which a new object's lookup reads): a cache miss each, unless asked ahead. Asking for the pool
 * entry a slot names too (a second stage 8 records further) showed no gain in a micro-benchmark
 * of index_answer on this VM and cost ~5% more instructions (callgrind). Inlined by force: GCC 12
 * finds a function of prefetches alone free of side effects and drops its calls. */
__attribute__((always_inline)) static inline void index_prefetch(const st_coord_t *co,
                                                                 const client_t *c, size_t i)
{
    if (i + 8 < c->n_recs) {
        uint64_t h = record_hash(&c->recs[i + 8]);
        __builtin_prefetch(&co->slots[h & (co->cap_slots - 1)]);
        if (co->ann_ok && co->cap_ann > 0)
            __builtin_prefetch(&co->ann[h & (co->cap_ann - 1)]);
    }
}

/* Adds record r's object (canonical key wk, hash h, not in the index) at slot: its key string
 * in the key buffer (copied from the announced table, else formatted there), its guid, its
 * announced metadata. NULL when its key cannot be formatted (the record is left out) or
 * *rc = -ENOMEM. */
static mobj_t *index_add(st_coord_t *co, const client_t *c, const st_wire_object_t *r,
                         const st_wire_key_t *wk, uint64_t h, size_t slot, int *rc)
{
    if (co->keys_len + ST_KEY_MAX > co->cap_keybuf) {
        size_t cap = co->cap_keybuf ? co->cap_keybuf * 2 : 65536;
        char *b = realloc(co->keybuf, cap);
        if (b == NULL) {
            *rc = -ENOMEM;
            return NULL;
        }
        co->keybuf = b;
        co->cap_keybuf = cap;
    }
    char *key = co->keybuf + co->keys_len;
    const ann_t *a = co->ann_ok ? ann_find(co, wk, h) : NULL;
    size_t kl;
    if (a != NULL && a->key_len > 0) {
        kl = a->key_len; /* the same string: it shows only the canonical key's fields */
        memcpy(key, a->key, kl + 1);
    } else {
        if (wire_key(&r->key, key, ST_KEY_MAX) < 0)
            return NULL;
        kl = strlen(key);
    }
    mobj_t *m = &co->pool[co->used++];
    memset(m, 0, sizeof(*m));
    m->wk = *wk;
    m->key = co->keys_len;
    co->keys_len += kl + 1;
    m->first = r;
    m->first_pid = c->pid;
    m->guid = a != NULL ? a->guid : st_guid_global(key);
    m->announced = co->ann_ok ? (a != NULL ? a->o : NULL) : ann_get(co, wk, h, key);
    co->slots[slot] = (uint32_t)co->used;
    return m;
}

/* Pass 1 of the merge for one complete answer: each record's object found in the index or
 * added (its key string formatted, its guid computed and its announced metadata looked up only
 * then), and c->objs filled. Runs as each answer completes, while others are still coming;
 * nothing it keeps depends on the order answers arrive in (see the file comment). */
__attribute__((noinline)) static int index_answer(st_coord_t *co, client_t *c)
{
    if (c->n_recs > c->cap_objs) {
        uint32_t *o = realloc(c->objs, c->n_recs * sizeof(*o));
        if (o == NULL)
            return -ENOMEM;
        c->objs = o;
        c->cap_objs = c->n_recs;
    }
    int rc = index_reserve(co, c->n_recs);
    if (rc < 0)
        return rc;
    size_t mask = co->cap_slots - 1;
    for (size_t i = 0; i < c->n_recs; i++) {
        const st_wire_object_t *r = &c->recs[i];
        index_prefetch(co, c, i);
        c->objs[i] = 0;
        st_wire_key_t wk = canonical_key(&r->key);
        uint64_t h = key_hash(&wk);
        size_t slot = (size_t)h & mask;
        mobj_t *m = NULL;
        for (; co->slots[slot] != 0; slot = (slot + 1) & mask) {
            mobj_t *x = &co->pool[co->slots[slot] - 1];
            if (memcmp(&x->wk, &wk, sizeof(wk)) == 0) {
                m = x;
                break;
            }
        }
        if (m == NULL) {
            if ((m = index_add(co, c, r, &wk, h, slot, &rc)) == NULL) {
                if (rc < 0)
                    return rc;
                continue;
            }
        } else if (c->pid < m->first_pid) {
            m->first = r;
            m->first_pid = c->pid;
        }
        c->objs[i] = (uint32_t)(m - co->pool) + 1;
        if ((r->flags & ST_OBJ_F_CREATOR) && (m->flagged == 0 || c->pid < m->flagged))
            m->flagged = c->pid;
    }
    return 0;
}

/* Whether a client of pid other than c has answered this dump (connected or departed); only
 * rejoined ones when only_rejoined. */
static bool pid_answered(const st_coord_t *co, int pid, const client_t *c, bool only_rejoined)
{
    const client_t *x, *tmp;
    HASH_ITER(hh, co->clients, x, tmp)
    {
        if (x != c && x->pid == pid && x->state == C_ANSWERED && (x->rejoined || !only_rejoined))
            return true;
    }
    for (x = co->departed; x != NULL; x = x->hh.next)
        if (x->pid == pid && (x->rejoined || !only_rejoined))
            return true;
    return false;
}

/* ---- server callbacks ---- */

/* Whether a client of pid connecting now should be asked for the dump in progress: a client of
 * pid was asked (it is still pending, or it left before answering) and none of pid answered. */
static bool rejoins(const st_coord_t *co, int pid)
{
    bool asked = false;
    for (size_t i = 0; i < co->n_reasons; i++)
        asked |= co->reasons[i].left_pid == pid;
    const client_t *c, *tmp;
    HASH_ITER(hh, co->clients, c, tmp)
    {
        if (c->pid != pid)
            continue;
        if (c->state == C_ANSWERED)
            return false;
        asked |= c->state == C_PENDING;
    }
    for (c = co->departed; c != NULL; c = c->hh.next)
        if (c->pid == pid)
            return false;
    return asked;
}

/* Whether pid is a process that has not exited (not a zombie). */
static bool proc_alive(int pid)
{
    st_proc_stat_t st;
    return st_procfs_read_stat(pid, &st) == 0 && st.state != 'Z' && st.state != 'X';
}

/* Whether another client of pid is still asked. */
static bool any_pending(const st_coord_t *co, int pid)
{
    const client_t *c, *tmp;
    HASH_ITER(hh, co->clients, c, tmp)
    {
        if (c->pid == pid && c->state == C_PENDING)
            return true;
    }
    return false;
}

/* c no longer holds a place in the ask window: it answered, left, or waited too long. */
static void ask_release(st_coord_t *co, client_t *c)
{
    if (c->asking) {
        c->asking = false;
        co->asking--;
    }
}

/* Asks the next clients while the window has room (all of them from ask_all_ms on), after
 * releasing the places of requests older than cfg.ask_patience_ms. A failed send closes the
 * client through on_close, which clears its entry and its place. */
static void ask_more(st_coord_t *co)
{
    uint64_t now = st_clock_ms();
    for (; co->ask_old < co->ask_next; co->ask_old++) {
        client_t *c = co->ask[co->ask_old];
        if (c != NULL && c->asking) {
            if (now - c->asked_ms < (uint64_t)co->cfg.ask_patience_ms)
                break;
            ask_release(co, c);
        }
    }
    size_t window = now >= co->ask_all_ms ? SIZE_MAX : co->cfg.ask_window;
    st_wire_dump_request_t req = {co->id, ST_LEVEL_DETAILED, 0};
    while (co->asking < window && co->ask_next < co->n_ask) {
        client_t *c = co->ask[co->ask_next++];
        if (c == NULL || c->state != C_PENDING || c->conn == NULL)
            continue;
        c->asking = true;
        c->asked_ms = now;
        co->asking++;
        st_server_send(co->srv, c->conn, ST_MSG_DUMP_REQUEST, 0, &req, sizeof(req));
    }
}

/* When ask_more next has something to do on its own (a place to release, or everyone left to
 * ask); UINT64_MAX when nothing is waiting to be asked. */
static uint64_t ask_at(const st_coord_t *co)
{
    if (co->ask_next >= co->n_ask)
        return UINT64_MAX;
    uint64_t at = co->ask_all_ms;
    for (size_t i = co->ask_old; i < co->ask_next; i++) {
        const client_t *c = co->ask[i];
        if (c != NULL && c->asking) { /* the oldest place: asked in order */
            uint64_t t = c->asked_ms + (uint64_t)co->cfg.ask_patience_ms;
            return t < at ? t : at;
        }
    }
    return at;
}

static void on_ready(void *ud, st_conn_t *conn)
{
    st_coord_t *co = ud;
    client_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        st_server_drop(co->srv, conn, ST_WERR_BUSY, -ENOMEM, "coordinator out of memory");
        return;
    }
    c->session = conn->session;
    c->conn = conn;
    c->pid = (int)conn->pid;
    c->role = conn->hello.role;
    const char *exe = conn->hello.exe;
    const char *slash = strrchr(exe, '/');
    st_wire_strcpy(c->name, sizeof(c->name), slash ? slash + 1 : exe);
    conn->data = c;
    if (c->role == ST_ROLE_CLIENT && co->active && rejoins(co, c->pid)) {
        st_wire_dump_request_t req = {co->id, ST_LEVEL_DETAILED, 0};
        for (size_t i = 0; i < co->n_reasons; i++) {
            if (co->reasons[i].left_pid == c->pid && co->reasons[i].awaited) {
                co->reasons[i].awaited = false;
                co->n_awaited--;
            }
        }
        c->state = C_PENDING;
        c->rejoined = true;
        co->pending++;
        logf_(co, "dump 0x%" PRIx64 ": pid %d (%s) reconnected during the dump: asked again",
              co->id, c->pid, c->name);
        /* a send failure closes the client through on_close, which undoes the above */
        HASH_ADD(hh, co->clients, session, sizeof(c->session), c);
        co->n_ready_clients++;
        st_server_send(co->srv, conn, ST_MSG_DUMP_REQUEST, 0, &req, sizeof(req));
        return;
    }
    HASH_ADD(hh, co->clients, session, sizeof(c->session), c);
    if (c->role == ST_ROLE_CLIENT)
        co->n_ready_clients++;
}

static void on_close(void *ud, st_conn_t *conn, int err, const char *why)
{
    st_coord_t *co = ud;
    client_t *c = conn->data;
    if (c == NULL)
        return; /* never finished its handshake */
    conn->data = NULL;
    for (size_t i = co->ask_old; i < co->n_ask; i++)
        if (co->ask[i] == c)
            co->ask[i] = NULL;
    ask_release(co, c);
    HASH_DEL(co->clients, c);
    c->conn = NULL;
    if (c->role == ST_ROLE_CLIENT)
        co->n_ready_clients--;
    if (co->active && c->state == C_PENDING) {
        co->pending--;
        add_reason(co, c->pid, "pid %d (%s) left the dump before answering: %s", c->pid, c->name,
                   err == 0 ? "it disconnected" : why);
        c->state = C_IDLE;
        if (co->n_reasons > 0 && co->reasons[co->n_reasons - 1].left_pid == c->pid &&
            proc_alive(c->pid) && !any_pending(co, c->pid)) {
            /* its process lives on: it may have closed every fd (or dup2'ed over ours) and
             * its library reconnects at once; give it a moment to rejoin */
            co->reasons[co->n_reasons - 1].awaited = true;
            co->n_awaited++;
            uint64_t until = st_clock_ms() + REJOIN_GRACE_MS;
            co->rejoin_until_ms = until < co->deadline_ms ? until : co->deadline_ms;
        }
    }
    if (co->active && c->state == C_ANSWERED) {
        /* its answer is complete: keep it for the merge */
        c->hh.next = co->departed;
        co->departed = c;
        return;
    }
    client_free(c);
}

static void on_events(st_coord_t *co, client_t *c, const st_frame_t *f)
{
    const st_wire_event_t *evs;
    size_t n;
    st_frame_events(f, &evs, &n);
    for (size_t i = 0; i < n; i++) {
        const st_wire_event_t *ev = &evs[i];
        char key[ST_KEY_MAX];
        if (wire_key(&ev->key, key, sizeof(key)) < 0)
            continue;
        object_t *o = NULL;
        HASH_FIND_STR(co->objects, key, o);
        if (o == NULL) {
            if ((o = calloc(1, sizeof(*o))) == NULL)
                return;
            memcpy(o->key, key, sizeof(key));
            HASH_ADD_STR(co->objects, key, o);
            co->n_objects++;
            st_wire_key_t wk = canonical_key(&ev->key);
            if (co->ann_ok && ann_put(co, &wk, o) < 0)
                co->ann_ok = false; /* the merge looks objects up by key string */
        }
        st_coord_object_t *m = &o->meta;
        if (ev->name[0] && (ev->type == ST_EVENT_CREATED || m->name[0] == '\0'))
            st_wire_strcpy(m->name, sizeof(m->name), ev->name);
        if (ev->label[0] &&
            (ev->type == ST_EVENT_CREATED || ev->type == ST_EVENT_LABEL || m->label[0] == '\0'))
            st_wire_strcpy(m->label, sizeof(m->label), ev->label);
        switch (ev->type) {
        case ST_EVENT_CREATED:
            m->creator_pid = c->pid; /* the kernel's pid, not a claim */
            m->created_ns = ev->ts_ns;
            m->destroyed = false;
            break;
        case ST_EVENT_DESTROYED:
            m->destroyed = true;
            break;
        case ST_EVENT_IMPORTANCE:
            m->importance = ev->importance;
            m->explicit_claim = true;
            break;
        default:
            break;
        }
    }
}

/* Makes room for n more records in c's record buffer (kept between dumps): doubling, or just
 * enough when exact. Only while c is pending: once its answer is indexed, the merge points into
 * it. */
static int recs_reserve(client_t *c, size_t n, bool exact)
{
    if (c->n_recs + n <= c->cap_recs)
        return 0;
    size_t cap = c->cap_recs ? c->cap_recs : 512;
    while (cap < c->n_recs + n)
        cap *= 2;
    if (exact)
        cap = c->n_recs + n;
    st_wire_object_t *r = realloc(c->recs, cap * sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    c->recs = r;
    c->cap_recs = cap;
    return 0;
}

/* Where the server receives a pending client's next dump chunk's objects: right after the
 * records it has (ops.dump_dest), so on_chunk has nothing to copy (16 MB per dump at 100
 * clients). Room for a whole frame's body is made, as a packet of another kind may land there
 * before it is moved back; just that room, not the doubling, which made the buffers of a 1000-
 * record answer twice its size (the last chunk is short, its room mostly untouched). */
static void *dump_dest(void *ud, st_conn_t *conn)
{
    st_coord_t *co = ud;
    client_t *c = conn->data;
    if (c == NULL || !co->active || c->state != C_PENDING ||
        recs_reserve(c, ST_WIRE_MAX_BODY / sizeof(st_wire_object_t) + 1, true) < 0)
        return NULL;
    return c->recs + c->n_recs;
}

static void on_chunk(st_coord_t *co, client_t *c, const st_frame_t *f)
{
    const st_wire_dump_chunk_t *ch;
    const st_wire_totals_t *t;
    const st_wire_object_t *objs;
    size_t n;
    st_frame_dump_parts(f, &ch, &t, &objs, &n);
    if (!co->active || c->state != C_PENDING || ch->dump_id != co->id)
        return; /* a late answer to an earlier dump */
    if (t != NULL)
        c->totals = *t;
    if (recs_reserve(c, n, false) < 0) {
        st_server_drop(co->srv, c->conn, ST_WERR_BUSY, -ENOMEM, "coordinator out of memory");
        return;
    }
    if (n > 0 && objs != c->recs + c->n_recs) /* else received in place (dump_dest) */
        memcpy(c->recs + c->n_recs, objs, n * sizeof(*objs));
    c->n_recs += n;
    if (f->hdr.flags & ST_WIRE_F_LAST) {
        co->pending--;
        ask_release(co, c);
        ask_more(co); /* the next client answers while this answer is indexed */
        if (pid_answered(co, c->pid, c, !c->rejoined)) {
            /* two connections of one process were both asked for the same answer (it
             * reconnected while its first was still pending) and both answered: the first
             * complete answer counts. Clients of one process that were all asked at the start
             * (a program may run several) all count. */
            logf_(co, "dump 0x%" PRIx64 ": pid %d (%s) answered twice: the second ignored", co->id,
                  c->pid, c->name);
            c->state = C_IDLE;
            c->n_recs = 0;
            return;
        }
        c->state = C_ANSWERED;
        uint64_t t0 = st_clock_ns();
        int rc = co->index_rc < 0 ? 0 : index_answer(co, c);
        if (rc < 0)
            co->index_rc = rc; /* the merge fails with it */
        co->t_answered = st_clock_ns();
        co->t_index += co->t_answered - t0;
    }
}

static void on_frame(void *ud, st_conn_t *conn, const st_frame_t *f)
{
    st_coord_t *co = ud;
    client_t *c = conn->data;
    if (c == NULL)
        return;
    switch (f->hdr.type) {
    case ST_MSG_OBJECT_EVENT:
        on_events(co, c, f);
        break;
    case ST_MSG_PROCESS_DUMP:
        on_chunk(co, c, f);
        break;
    case ST_MSG_DUMP_NOW: {
        const st_wire_dump_now_t *r = f->body;
        c->waiting = true;
        c->want_trace = (r->flags & ST_DUMP_NOW_F_TRACE) != 0;
        if (!co->active) {
            int rc = st_coord_dump_start(co, "explicitly_triggered", NULL);
            if (rc < 0) {
                st_wire_dump_done_t done = {.rc = rc};
                st_server_send(co->srv, conn, ST_MSG_DUMP_DONE, 0, &done, sizeof(done));
                c->waiting = false;
            }
        }
        break;
    }
    case ST_MSG_ERROR:
        logf_(co, "pid %d sent an error: %s", c->pid, ((const st_wire_error_t *)f->body)->text);
        break;
    default:
        break;
    }
}

/* ---- lifecycle ---- */

int st_coord_open(const st_coord_config_t *cfg, st_coord_t **out)
{
    if (cfg == NULL || cfg->socket_path == NULL || (unsigned)cfg->policy >= ST_POLICY_COUNT)
        return -EINVAL;
    st_coord_t *co = calloc(1, sizeof(*co));
    if (co == NULL)
        return -ENOMEM;
    co->cfg = *cfg;
    if (co->cfg.deadline_ms <= 0)
        co->cfg.deadline_ms = ST_COORD_DEADLINE_DEFAULT_MS;
    if (co->cfg.ask_window == 0)
        co->cfg.ask_window = ST_COORD_ASK_WINDOW_DEFAULT;
    if (co->cfg.ask_patience_ms <= 0)
        co->cfg.ask_patience_ms = ST_COORD_ASK_PATIENCE_MS;
    co->next_id = 1;
    co->ann_ok = true;
    /* With a bounded trace, the memory the oldest dump frees can hold the next one; but glibc
     * serves the merge's big arrays (graph vertices, sort scratch) with fresh mmaps and trims
     * freed heap at once, so every dump still paid a first-touch fault per 4 KiB page (tens of us
     * each on this VM: ~16 us, measured). Keep them in the heap, and keep the heap: the dump
     * dropped just before a merge frees as much as the merge then needs (60 MiB at 100 clients),
     * and a trim threshold below that gave it back to the kernel only to fault it in again (a
     * 100-client bench with max_dumps 1: ~1700 faults per dump with a 64 MiB threshold, 8 with
     * 1 GiB). Process-wide, so only when asked for a bounded trace (with every dump kept, each
     * dump's memory is new anyway and this only raised RSS). With a bounded trace also one
     * malloc arena and no mmap at all: the merge's worker threads are new each dump, and glibc
     * gave each a thread arena whose extra 64 MiB heaps it unmapped once empty, and it serves
     * 32 MiB and more (its largest mmap threshold) by mmap whatever the threshold: at 500 clients
     * both faulted pages in again every dump (flt50 2115 and 2119 in two runs, 7 with this),
     * and the graph phase took 114.1 and 110.9 ms against 61.6 and 69.6 with it, alternating. */
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    if (co->cfg.max_dumps > 0) {
        mallopt(M_TRIM_THRESHOLD, 1 << 30);
        mallopt(M_ARENA_MAX, 1);
        mallopt(M_MMAP_MAX, 0);
    }
    int rc = st_trace_new(&co->trace);
    if (rc < 0)
        goto out;
    char host[256] = "";
    gethostname(host, sizeof(host) - 1);
    struct utsname u;
    const char *kernel = uname(&u) == 0 ? u.release : "";
    if ((rc = st_trace_set_meta(co->trace, st_policy_name(cfg->policy), host, kernel)) < 0)
        goto out;
    st_server_config_t scfg = {.socket_path = cfg->socket_path, .allow_root = cfg->allow_root};
    st_server_ops_t ops = {on_ready, on_frame, on_close, server_log, dump_dest};
    if ((rc = st_server_open(&scfg, &ops, co, &co->srv)) < 0)
        goto out;
    *out = co;
    return 0;
out:
    st_trace_free(co->trace);
    free(co);
    return rc;
}

/* Takes the oldest n dumps out of the trace, into a trace of their own that the caller frees.
 * Freeing them touches every node of every dump (4 ms and more at 100 clients); on the
 * coordinator's thread that came after the clients' burst (100 fresh tasks, which the scheduler
 * runs first) and before the first answer was read. The scan thread frees them after its scan
 * instead, beside the clients; the merge joins it before it allocates, so their memory is
 * reused all the same. When they cannot be moved (no memory), they are freed here. */
static st_trace_t *drop_oldest(st_coord_t *co, size_t n)
{
    st_trace_t *gone = NULL;
    if (st_trace_new(&gone) < 0) {
        st_trace_drop_oldest(co->trace, n);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (st_trace_move_dump(gone, co->trace, 0, NULL) < 0) {
            st_trace_drop_oldest(co->trace, n - i);
            break;
        }
    }
    return gone;
}

static void clear_dump_state(st_coord_t *co)
{
    for (size_t i = 0; i < co->n_reasons; i++)
        free(co->reasons[i].text);
    free(co->reasons);
    co->reasons = NULL;
    co->n_reasons = 0;
    co->n_awaited = 0;
    co->rejoin_until_ms = 0;
    while (co->departed != NULL) {
        client_t *c = co->departed;
        co->departed = c->hh.next;
        client_free(c);
    }
    client_t *c, *tmp;
    HASH_ITER(hh, co->clients, c, tmp)
    {
        /* the record buffer is kept for the next dump: fresh pages are dear on a VM */
        c->state = C_IDLE;
        c->rejoined = false;
        c->asking = false;
        c->n_recs = 0;
    }
    co->active = false;
    co->pending = 0;
    co->n_ask = co->ask_old = co->ask_next = co->asking = 0;
    scan_discard(co);
}

void st_coord_close(st_coord_t *co)
{
    if (co == NULL)
        return;
    co->active = false;
    st_server_close(co->srv); /* on_close frees every client */
    free(co->ask);
    clear_dump_state(co);
    free(co->pool);
    free(co->slots);
    free(co->keys);
    free(co->protos);
    free(co->creators);
    free(co->keybuf);
    free(co->ann);
    free(co->rec_node);
    free(co->lk_target);
    free(co->lk_size);
    free(co->lk_gsize);
    object_t *o, *tmp;
    HASH_ITER(hh, co->objects, o, tmp)
    {
        HASH_DEL(co->objects, o);
        free(o);
    }
    st_trace_free(co->trace);
    free(co);
}

int st_coord_watch(st_coord_t *co, int fd, void (*cb)(void *ud, int fd), void *ud)
{
    return st_server_watch(co->srv, fd, cb, ud);
}

st_trace_t *st_coord_trace(st_coord_t *co)
{
    return co->trace;
}

void st_coord_last_times(const st_coord_t *co, st_coord_times_t *out)
{
    *out = co->times;
}

size_t st_coord_client_count(const st_coord_t *co)
{
    return co->n_ready_clients;
}

bool st_coord_find_object(const st_coord_t *co, const char *key, st_coord_object_t *out)
{
    object_t *o = NULL;
    HASH_FIND_STR(co->objects, key, o);
    if (o == NULL)
        return false;
    *out = o->meta;
    return true;
}

bool st_coord_dump_busy(const st_coord_t *co)
{
    return co->active;
}

size_t st_coord_dump_pending(const st_coord_t *co)
{
    return co->active ? co->pending : 0;
}

int st_coord_dump_start(st_coord_t *co, const char *trigger, uint64_t *id)
{
    if (co->active)
        return -EBUSY;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    co->t_start = co->t_answered = st_clock_ns();
    co->t_index = 0;
    co->active = true;
    co->id = co->next_id++;
    co->ts_us = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    co->deadline_ms = st_clock_ms() + (uint64_t)co->cfg.deadline_ms;
    st_wire_strcpy(co->trigger, sizeof(co->trigger), trigger);
    co->pending = 0;
    co->used = 0;
    co->keys_len = 0;
    co->index_rc = 0;
    co->objects_at_start = co->n_objects;
    if (co->slots != NULL)
        memset(co->slots, 0, co->cap_slots * sizeof(*co->slots));
    client_t *c, *tmp;
    /* pending first, then send: a send failure closes the client through on_close */
    HASH_ITER(hh, co->clients, c, tmp)
    {
        if (c->role == ST_ROLE_CLIENT) {
            c->state = C_PENDING;
            co->pending++;
        }
    }
    size_t asked = co->pending;
    if (asked > co->cap_ask) {
        client_t **a = realloc(co->ask, asked * sizeof(*a));
        if (a == NULL) { /* undo: nobody was asked */
            HASH_ITER(hh, co->clients, c, tmp)
            {
                c->state = C_IDLE;
            }
            co->pending = 0;
            co->active = false;
            return -ENOMEM;
        }
        co->ask = a;
        co->cap_ask = asked;
    }
    co->n_ask = co->ask_old = co->ask_next = co->asking = 0;
    HASH_ITER(hh, co->clients, c, tmp)
    {
        if (c->state == C_PENDING)
            co->ask[co->n_ask++] = c;
    }
    co->ask_all_ms = st_clock_ms() + (uint64_t)co->cfg.deadline_ms / 2;
    ask_more(co);
    /* A bounded trace drops its oldest dumps now, while the clients work on their answers, not
     * when they are all in (3-6 ms at 100 clients), and the scan thread frees them
     * (drop_oldest); the merge then reuses their memory all the same. */
    st_trace_t *gone = NULL;
    if (co->cfg.max_dumps > 0 && co->trace->n_dumps >= co->cfg.max_dumps)
        gone = drop_oldest(co, co->trace->n_dumps - co->cfg.max_dumps + 1);
    scan_start(co, asked, gone);
    if (id != NULL)
        *id = co->id;
    return 0;
}

/* ---- merge ---- */

static int policy_importance(const st_coord_t *co, const st_wire_object_t *r, int pid, int creator)
{
    if (r->flags & ST_OBJ_F_EXPLICIT)
        return r->importance;
    switch (co->cfg.policy) {
    case ST_POLICY_EQUAL:
        return 0;
    case ST_POLICY_CREATOR:
    case ST_POLICY_FIRST_TOUCH:
    default:
        return creator != 0 && pid == creator ? 2 : 0;
    }
}

/* The clients whose answer is in this dump (connected or departed), in an array. */
static int answered(st_coord_t *co, client_t ***out, size_t *n)
{
    size_t cnt = 0, i = 0;
    client_t *c, *tmp;
    HASH_ITER(hh, co->clients, c, tmp)
    cnt += c->state == C_ANSWERED;
    for (c = co->departed; c != NULL; c = c->hh.next)
        cnt++;
    client_t **v = calloc(cnt ? cnt : 1, sizeof(*v));
    if (v == NULL)
        return -ENOMEM;
    HASH_ITER(hh, co->clients, c, tmp)
    if (c->state == C_ANSWERED)
        v[i++] = c;
    for (c = co->departed; c != NULL; c = c->hh.next)
        v[i++] = c;
    *out = v;
    *n = cnt;
    return 0;
}

static void totals_from_wire(st_totals_t *t, const st_wire_totals_t *w)
{
    t->resident_set_bytes = w->resident_set_bytes;
    t->private_footprint_bytes = w->private_footprint_bytes;
    t->pss_bytes = w->pss_bytes;
    t->uss_bytes = w->uss_bytes;
    t->swap_bytes = w->swap_bytes;
    t->rss_shmem_bytes = w->rss_shmem_bytes;
    t->present = w->present & ((1u << ST_TOTAL_COUNT) - 1);
}

/* What the merge says about an object: its first record, what its events announced, the scan. */
static void object_info(const st_coord_t *co, const mobj_t *m, st_object_info_t *info)
{
    const object_t *o = m->announced;
    const st_wire_object_t *f = m->first;
    *info = (st_object_info_t){
        .key = co->keybuf + m->key,
        .kind = (st_kind_t)f->key.kind,
        .name = f->name[0] ? f->name : (o ? o->meta.name : NULL),
        .size = m->size,
        .virtual_size = f->virtual_size,
        .swapped_size = f->swapped,
        .creator_pid = m->creator,
        .label = f->label[0] ? f->label : (o ? o->meta.label : NULL),
        .guid = m->guid,
    };
}

/* The holders of every answer, into the process dumps the merge made for them. */
typedef struct holders_job {
    const st_coord_t *co;
    st_global_dump_t *d;
    client_t *const *cl;
    size_t *proc;       /* per answer: its process dump's index in d->procs */
    size_t *off;        /* per answer: where its records' holder nodes start in rec_node */
    uint32_t *rec_node; /* per record: the index of its holder node in its process dump */
    size_t n_cl;
    st_holder_proto_t *protos; /* per pool object (co->protos) */
    int *creators;             /* per pool object (co->creators) */
    /* the answers by process dump (several clients may share one process): unit u's answers
     * are by_proc[units[u] .. units[u + 1]), in answer order; the worker and then the merge's
     * own thread take units in turn (next), each process dump wholly on one of them */
    size_t *by_proc, *units, n_units;
    atomic_size_t next;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int protos_state; /* under mu: 0 being made, 1 made, < 0 failed */
    int rc;
} holders_job_t;

/* What each object's holders share, in pool order: its first record and events are read once,
 * not once per holder, and the holder name's copy and hash are made once. */
static int make_protos(holders_job_t *j)
{
    const st_coord_t *co = j->co;
    const mobj_t *pool = co->pool;
    for (size_t o = 0; o < co->used; o++) {
        if (o + 8 < co->used) { /* the first record and events are anywhere: ask ahead */
            __builtin_prefetch(pool[o + 8].first);
            __builtin_prefetch(pool[o + 8].first->name);
            __builtin_prefetch(pool[o + 8].first->label);
            if (pool[o + 8].announced != NULL)
                __builtin_prefetch(&pool[o + 8].announced->meta);
        }
        st_object_info_t info;
        object_info(co, &pool[o], &info);
        int rc = st_dump_holder_proto(j->d, &info, &j->protos[o]);
        if (rc < 0)
            return rc;
        j->creators[o] = pool[o].creator;
    }
    return 0;
}

/* Adds the holders of the units it takes until none is left; `which` is the process arena the
 * caller's thread takes from (st_process_set_arena): 0 on the worker, 1 on the merge's thread. */
static int holders_part(holders_job_t *j, unsigned which)
{
    const st_coord_t *co = j->co;
    for (size_t u; (u = atomic_fetch_add(&j->next, 1)) < j->n_units;) {
        st_process_dump_t *p = &j->d->procs[j->proc[j->by_proc[j->units[u]]]];
        int rc = which == 0 ? 0 : st_process_set_arena(j->d, p, which);
        for (size_t x = j->units[u]; x < j->units[u + 1] && rc == 0; x++) {
            size_t k = j->by_proc[x];
            const client_t *c = j->cl[k];
            for (size_t i = 0; i < c->n_recs && rc == 0; i++) {
                if (i + 8 < c->n_recs && c->objs[i + 8] != 0) /* a random proto: ask ahead */
                    __builtin_prefetch(&j->protos[c->objs[i + 8] - 1]);
                const st_wire_object_t *r = &c->recs[i];
                if (c->objs[i] == 0)
                    continue;
                size_t o = c->objs[i] - 1;
                int imp = policy_importance(co, r, c->pid, j->creators[o]);
                st_node_t *node = NULL;
                rc = st_process_add_holder_proto(p, &j->protos[o], r->mapped_bytes, imp, &node);
                if (rc == 0)
                    j->rec_node[j->off[k] + i] = (uint32_t)(node - p->nodes);
            }
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* The worker: the protos, then holders until the units run out (the merge's thread joins in
 * once its objects are done). */
static void *holders_main(void *arg)
{
    holders_job_t *j = arg;
    int rc = make_protos(j);
    pthread_mutex_lock(&j->mu);
    j->protos_state = rc < 0 ? rc : 1;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
    j->rc = rc < 0 ? rc : holders_part(j, 0);
    return NULL;
}

/* The units of holders_job_t: the answers grouped by process dump, in answer order within one.
 * -ENOMEM or 0. */
static int holders_units(holders_job_t *j, size_t n_procs)
{
    size_t *fill = calloc(n_procs + 1, sizeof(*fill));
    j->by_proc = malloc((j->n_cl + 1) * sizeof(*j->by_proc));
    j->units = malloc((j->n_cl + 1) * sizeof(*j->units));
    if (fill == NULL || j->by_proc == NULL || j->units == NULL) {
        free(fill);
        return -ENOMEM;
    }
    for (size_t k = 0; k < j->n_cl; k++)
        fill[j->proc[k]]++;
    size_t at = 0;
    j->n_units = 0;
    for (size_t q = 0; q < n_procs; q++) {
        size_t n = fill[q];
        fill[q] = at;
        if (n > 0)
            j->units[j->n_units++] = at;
        at += n;
    }
    j->units[j->n_units] = at;
    for (size_t k = 0; k < j->n_cl; k++)
        j->by_proc[fill[j->proc[k]]++] = k;
    free(fill);
    return 0;
}

/* What the graph processor would otherwise find out (st_graph_links_t): the global node each
 * holder owns and the sizes, known here from the records (the holder node each became, its
 * object) or, for the nodes of the /proc scan that no record touched, looked up in the dump. In
 * two parts: links_globals, once the global nodes are sorted (while the holders are still being
 * added), then graph_links, after st_dump_sort_procs. 1: links made, 0: the dump is not all
 * holders with a size (then the graph processor finds the shape itself), -ENOMEM. */
static int links_globals(st_coord_t *co, st_global_dump_t *d)
{
    size_t ng = d->n_globals;
    if (st__array_grow((void **)&co->lk_gsize, &co->cap_lkg, ng + 1, sizeof(*co->lk_gsize)) < 0)
        return -ENOMEM;
    memset(co->lk_gsize, 0xff, ng * sizeof(*co->lk_gsize));
    /* the merge's objects: the only global nodes, in guid order (their canonical names sort that
     * way), unless the scan added others */
    bool only_ours = ng == co->used;
    for (size_t j = 0; j < co->used; j++) {
        /* guid order is random order in the pool and the answers: asked for ahead */
        if (j + 16 < co->used) { /* both lines an entry may straddle */
            __builtin_prefetch(&co->pool[co->keys[j + 16].val]);
            __builtin_prefetch((const char *)&co->pool[co->keys[j + 16].val + 1] - 1);
        }
        mobj_t *m = &co->pool[co->keys[j].val];
        const st_node_t *g = only_ours ? &d->globals[j] : st_dump_find_global(d, m->guid);
        if (g == NULL || g->guid != m->guid)
            return 0;
        m->global = (uint32_t)(g - d->globals);
        co->lk_gsize[m->global] = m->size;
    }
    for (size_t i = 0; i < ng; i++) /* the scan's own */
        if (co->lk_gsize[i] == UINT64_MAX &&
            !st_node_scalar(&d->globals[i], "size", &co->lk_gsize[i]))
            return 0;
    return 1;
}

static int graph_links(st_coord_t *co, st_global_dump_t *d, client_t *const *cl, size_t n_cl,
                       const size_t *off, st_graph_links_t *out)
{
    size_t np = 0;
    for (size_t p = 0; p < d->n_procs; p++)
        np += d->procs[p].n_nodes;
    if (st__array_grow((void **)&co->lk_target, &co->cap_lkt, np + 1, sizeof(*co->lk_target)) < 0 ||
        st__array_grow((void **)&co->lk_size, &co->cap_lks, np + 1, sizeof(*co->lk_size)) < 0)
        return -ENOMEM;
    const uint32_t unset = UINT32_MAX;
    memset(co->lk_target, 0xff, np * sizeof(*co->lk_target));
    size_t base = 0;
    for (size_t p = 0; p < d->n_procs; base += d->procs[p++].n_nodes) {
        const st_process_dump_t *proc = &d->procs[p];
        for (size_t k = 0; k < n_cl; k++) {
            const client_t *c = cl[k];
            if (c->pid != proc->pid)
                continue;
            for (size_t i = 0; i < c->n_recs; i++) {
                if (c->objs[i] == 0)
                    continue;
                const mobj_t *m = &co->pool[c->objs[i] - 1];
                size_t s = base + co->rec_node[off[k] + i];
                co->lk_target[s] = m->global;
                co->lk_size[s] = co->lk_gsize[m->global];
            }
        }
        /* the scan's holders that no record touched */
        for (size_t k = 0; k < proc->n_nodes; k++) {
            if (co->lk_target[base + k] != unset)
                continue;
            const st_node_t *g =
                k < proc->n_edges ? st_dump_find_global(d, proc->edges[k].target) : NULL;
            if (g == NULL || !st_node_scalar(&proc->nodes[k], "size", &co->lk_size[base + k]))
                return 0;
            co->lk_target[base + k] = (uint32_t)(g - d->globals);
        }
    }
    *out = (st_graph_links_t){co->lk_target, co->lk_size, co->lk_gsize};
    return 1;
}

/* Makes room for the holders thread's per-object arrays (kept between dumps). */
static int protos_reserve(st_coord_t *co, size_t n)
{
    if (n <= co->cap_protos)
        return 0;
    free(co->protos);
    free(co->creators);
    co->cap_protos = 0;
    /* a proto per cache line: each holder reads one */
    size_t bytes = (n * sizeof(*co->protos) + 63) & ~(size_t)63;
    co->protos = aligned_alloc(64, bytes);
    co->creators = malloc(n * sizeof(*co->creators));
    if (co->protos == NULL || co->creators == NULL)
        return -ENOMEM;
    co->cap_protos = n;
    return 0;
}

__attribute__((noinline)) static int merge(st_coord_t *co, st_global_dump_t **out)
{
    int rc = 0;
    client_t **cl = NULL;
    size_t n_cl = 0;
    holders_job_t hj = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    size_t *off = NULL;
    pthread_t worker;
    if ((rc = answered(co, &cl, &n_cl)) < 0)
        return rc;
    if ((rc = co->index_rc) < 0)
        goto out;
    mobj_t *pool = co->pool;
    size_t used = co->used;
    uint64_t t_prepare = st_clock_ns();

    /* pass 1 was done as each answer came (index_answer); what is left: the creators, from
     * the events as they stand now (an object announced after an answer was indexed is looked
     * up again) */
    bool new_objects = co->n_objects != co->objects_at_start;
    for (size_t j = 0; j < used; j++) {
        mobj_t *m = &pool[j];
        if (j + 8 < used && pool[j + 8].announced != NULL) /* anywhere in the heap */
            __builtin_prefetch(&pool[j + 8].announced->meta.creator_pid);
        if (m->announced == NULL && new_objects)
            m->announced = ann_get(co, &m->wk, key_hash(&m->wk), co->keybuf + m->key);
        m->creator = m->announced != NULL ? m->announced->meta.creator_pid : 0;
        if (m->creator == 0)
            m->creator = m->flagged;
    }

    /* The /proc scan of the clients that answered: what the hooks did not see. Usually the scan
     * thread did it while they answered; when the clients that answered are not the ones it
     * scanned (some were late or left), they are scanned here. */
    int *pids = NULL;
    if (!co->cfg.no_scan && (n_cl > 0 || co->cfg.scan_tree_root > 0) &&
        (pids = calloc(n_cl + 1, sizeof(*pids))) == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    size_t n_pids = 0;
    for (size_t k = 0; pids != NULL && k < n_cl; k++)
        pids[k] = cl[k]->pid;
    if (pids != NULL && (rc = scan_pids(co, &pids, n_cl, &n_pids)) < 0)
        goto out;
    scan_join(co);
    bool scanned = pids != NULL && co->scan.out != NULL && co->scan.n_pids == n_pids &&
                   memcmp(co->scan.pids, pids, n_pids * sizeof(*pids)) == 0;
    st_global_dump_t *d = NULL;
    if (scanned)
        rc = st_trace_move_dump(co->trace, co->scan.out, 0, &d);
    else
        rc = st_trace_add_dump(co->trace, co->id, co->ts_us, &d);
    if (rc < 0 || (rc = st_dump_set_strings(d, co->trigger, "detailed")) < 0) {
        free(pids);
        goto out;
    }
    if (pids != NULL) {
        int src = co->scan.rc;
        if (!scanned) {
            st_scan_options_t so;
            scan_options(co, &so);
            src = n_pids > 0 ? st_scan_into_dump(&so, pids, n_pids, d) : 0;
        }
        free(pids);
        if (src == -ENOMEM) {
            rc = src;
            goto out;
        }
        if (src < 0 && (rc = st_dump_add_warning(d, "the /proc scan of the clients failed: %s",
                                                 st_strerror(src))) < 0)
            goto out;
    }

    /* fd-backed objects: the agents measure them with cachestat when they can reach an fd of the
     * object (held, or /proc/self/map_files with CAP_SYS_ADMIN) and then agree with the scan;
     * without one (an unprivileged process that closed the fd, as PostgreSQL does with its DSM
     * segments) they fall back to mincore, which misses tmpfs pages that posix_fallocate
     * allocated and nobody wrote. The wire record cannot say which (ipc/wire.h has no flag for
     * it), so the larger of the two figures is taken: equal when both are exact, the exact one
     * when the agent's is a lower bound. Looked up before pass 2 adds any object, so the dump's
     * index is built once. Every object's size is settled here, in pool order (its first record
     * is then read almost in sequence; links_globals, in guid order, only reads m->size). */
    for (size_t j = 0; j < used; j++) {
        mobj_t *m = &pool[j];
        st_kind_t kind = (st_kind_t)m->wk.kind; /* canonical_key keeps the kind */
        const st_node_t *sn = NULL;
        uint64_t by_scan = 0;
        if ((kind == ST_KIND_POSIX || kind == ST_KIND_MEMFD) &&
            (sn = st_dump_find_global(d, m->guid)) != NULL)
            (void)st_node_scalar(sn, "size", &by_scan);
        m->size = m->first->resident > by_scan ? m->first->resident : by_scan;
    }

    /* pass 2: the processes, then on two threads the objects (here, in pool order; st_dump_sort
     * then puts them in guid order) and the holders (on a worker: first
     * what each object's holders share, then the holders), in arrays sized for them at once. The
     * two touch disjoint parts of the dump: the global nodes, their index and the dump's arena
     * here; the process dumps and their own arena there (see st_global_dump_t.proc_arena); both
     * only read the merge index and the answers. Once its objects are done (and the worker's
     * protos), this thread adds holders too: the process dumps the worker has not taken yet,
     * from the second process arena (st_process_set_arena). */
    if ((rc = st_dump_reserve_globals(d, used)) < 0)
        goto out;
    size_t n_recs = 0;
    if ((hj.proc = malloc((n_cl + 1) * sizeof(*hj.proc))) == NULL ||
        (off = malloc((n_cl + 1) * sizeof(*off))) == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t k = 0; k < n_cl; k++) {
        off[k] = n_recs;
        n_recs += cl[k]->n_recs;
    }
    if (n_recs > co->cap_rec_node && (rc = st__array_grow((void **)&co->rec_node, &co->cap_rec_node,
                                                          n_recs, sizeof(*co->rec_node))) < 0)
        goto out;
    for (size_t k = 0; k < n_cl; k++) {
        client_t *c = cl[k];
        st_process_dump_t *p = NULL;
        if ((rc = st_dump_add_process(d, c->pid, c->name[0] ? c->name : NULL, &p)) < 0 ||
            (rc = st_process_reserve(p, c->n_recs, c->n_recs)) < 0)
            goto out;
        totals_from_wire(&p->totals, &c->totals);
        hj.proc[k] = (size_t)(p - d->procs); /* d->procs may still move */
    }
    if ((rc = protos_reserve(co, used)) < 0)
        goto out;
    uint64_t t_build = st_clock_ns();
    hj.co = co;
    hj.d = d;
    hj.cl = cl;
    hj.off = off;
    hj.rec_node = co->rec_node;
    hj.n_cl = n_cl;
    hj.protos = co->protos;
    hj.creators = co->creators;
    if ((rc = holders_units(&hj, d->n_procs)) < 0)
        goto out;
    bool threaded = pthread_create(&worker, NULL, holders_main, &hj) == 0;
    if (!threaded)
        holders_main(&hj);
    if (used > co->cap_keys) {
        free(co->keys);
        co->cap_keys = 0;
        if ((co->keys = malloc(2 * used * sizeof(*co->keys))) != NULL)
            co->cap_keys = used;
    }
    rc = co->cap_keys < used ? -ENOMEM : 0;
    for (size_t j = 0; j < used && rc == 0; j++)
        co->keys[j] = (st__keyed_t){pool[j].guid, j};
    if (rc == 0)
        st__sort_hashes(co->keys, co->keys + used, used); /* guids */
    /* a dump without global nodes (the scan found none) whose guids are distinct (sorted: a
     * repeat is the one before) gets a new node per object, appended without a lookup */
    bool fresh = d->n_globals == 0;
    for (size_t j = 1; j < used && fresh && rc == 0; j++)
        fresh = co->keys[j].key != co->keys[j - 1].key;
    /* in pool order, which is the order of the answers' records: their pieces are read almost
     * in sequence (in guid order every object's were cache misses); st_dump_sort then puts the
     * nodes in guid order */
    for (size_t j = 0; j < used && rc == 0; j++) {
        if (j + 8 < used) {
            const mobj_t *a = &pool[j + 8];
            __builtin_prefetch(a->first);
            __builtin_prefetch(a->first->name);
            __builtin_prefetch(a->first->label); /* its own line: add_object reads its length */
            if (a->announced != NULL) {          /* the label is 68 bytes further: its own line */
                __builtin_prefetch(&a->announced->meta);
                __builtin_prefetch(a->announced->meta.label);
            }
        }
        st_object_info_t info;
        object_info(co, &pool[j], &info);
        if (fresh)
            rc = st_dump_append_object(d, &info, pool[j].first_pid, NULL);
        else
            rc = st_dump_add_object(d, &info, pool[j].first_pid, NULL);
    }
    /* while the worker is still adding holders: the global nodes in guid order, and what
     * graph_links needs of them */
    int linked = 0;
    if (rc == 0) {
        st_dump_sort_globals(d);
        rc = linked = links_globals(co, d);
    }
    /* then the holders the worker has not taken yet, once it made the protos */
    int part = 0;
    if (threaded && rc >= 0) {
        pthread_mutex_lock(&hj.mu);
        while (hj.protos_state == 0)
            pthread_cond_wait(&hj.cv, &hj.mu);
        bool made = hj.protos_state > 0;
        pthread_mutex_unlock(&hj.mu);
        if (made)
            part = holders_part(&hj, 1);
    }
    if (threaded)
        pthread_join(worker, NULL);
    if (rc >= 0)
        rc = hj.rc < 0 ? hj.rc : part;
    if (rc < 0)
        goto out;

    for (size_t i = 0; i < co->n_reasons; i++) {
        const reason_t *r = &co->reasons[i];
        bool forgiven = false;
        for (size_t k = 0; k < n_cl && r->left_pid != 0 && !forgiven; k++)
            forgiven = cl[k]->pid == r->left_pid;
        if (forgiven)
            rc = st_dump_add_warning(d, "%s; it reconnected and answered on its new connection",
                                     r->text);
        else
            rc = st_dump_add_warning(d, "%s", r->text);
        if (rc < 0)
            goto out;
        d->partial |= !forgiven;
    }
    uint64_t t_graph = st_clock_ns();
    st_dump_sort_procs(d);
    st_graph_links_t links;
    if ((rc = linked == 1 ? graph_links(co, d, cl, n_cl, off, &links) : 0) < 0 ||
        (rc = rc == 1 ? st_graph_annotate_links(d, &links) : st_graph_annotate_dump(d)) < 0)
        goto out;
    uint64_t t_end = st_clock_ns();
    co->times = (st_coord_times_t){
        .answers = co->t_answered - co->t_start,
        .index = co->t_index,
        .prepare = t_build - t_prepare,
        .build = t_graph - t_build,
        .graph = t_end - t_graph,
        .total = t_end - co->t_start,
    };
    *out = d;
out:
    pthread_mutex_destroy(&hj.mu);
    pthread_cond_destroy(&hj.cv);
    free(cl);
    free(hj.proc);
    free(hj.by_proc);
    free(hj.units);
    free(off);
    return rc;
}

static int write_trace(const st_trace_t *t, FILE *f)
{
    return st_trace_write_stream(t, f, NULL);
}

/* Sends the dump's result to every waiting tool. */
static void answer_waiters(st_coord_t *co, const st_global_dump_t *d, int merge_rc)
{
    char *json = NULL;
    size_t json_len = 0;
    bool json_done = false;
    client_t *c, *tmp;
    HASH_ITER(hh, co->clients, c, tmp)
    {
        if (!c->waiting || c->conn == NULL)
            continue;
        c->waiting = false;
        if (c->want_trace && d != NULL && !json_done) {
            json_done = true;
            /* a one-dump view of the trace: the writer only reads it */
            st_trace_t view = *co->trace;
            view.dumps = (st_global_dump_t *)d;
            view.n_dumps = 1;
            FILE *f = NULL;
            f = open_memstream(&json, &json_len);
            if (f != NULL) {
                if (write_trace(&view, f) < 0) {
                    fclose(f);
                    free(json);
                    json = NULL;
                    json_len = 0;
                } else {
                    fclose(f);
                }
            }
        }
        st_wire_dump_done_t done = {
            .dump_id = co->id,
            .n_processes = d ? (uint32_t)d->n_procs : 0,
            .n_objects = d ? (uint32_t)d->n_globals : 0,
            .partial = d ? d->partial : 1,
            .rc = merge_rc,
            .trace_bytes = c->want_trace && json ? json_len : 0,
        };
        if (st_server_send(co->srv, c->conn, ST_MSG_DUMP_DONE, 0, &done, sizeof(done)) < 0)
            continue;
        if (!c->want_trace || json == NULL)
            continue;
        static unsigned char chunk[ST_WIRE_MAX_BODY];
        size_t room = ST_WIRE_MAX_BODY - sizeof(st_wire_trace_chunk_t), off = 0;
        for (uint32_t seq = 0; c->conn != NULL; seq++) {
            size_t n = json_len - off < room ? json_len - off : room;
            st_wire_trace_chunk_t h = {co->id, seq, (uint32_t)n};
            memcpy(chunk, &h, sizeof(h));
            memcpy(chunk + sizeof(h), json + off, n);
            off += n;
            bool last = off == json_len;
            if (st_server_send(co->srv, c->conn, ST_MSG_TRACE_CHUNK, last ? ST_WIRE_F_LAST : 0,
                               chunk, sizeof(h) + n) < 0 ||
                last)
                break;
        }
    }
    free(json);
}

static void finish(st_coord_t *co)
{
    uint64_t now = st_clock_ms();
    client_t *c, *tmp;
    HASH_ITER(hh, co->clients, c, tmp)
    {
        if (c->state == C_PENDING) {
            add_reason(co, 0, "pid %d (%s) did not answer within %d ms", c->pid, c->name,
                       co->cfg.deadline_ms);
            c->state = C_IDLE;
        }
    }
    (void)now;
    st_global_dump_t *d = NULL;
    int rc = merge(co, &d);
    if (rc < 0)
        logf_(co, "dump 0x%" PRIx64 " could not be merged: %s", co->id, st_strerror(rc));
    co->last = d;
    co->last_done = true;
    clear_dump_state(co);
    answer_waiters(co, d, rc);
    if (d != NULL && co->cfg.on_dump)
        co->cfg.on_dump(co->cfg.ud, d);
}

/* When the dump in progress can finish: at the deadline, or when nobody is asked and no
 * departed process is still awaited (each only for its grace). */
static uint64_t finish_at(const st_coord_t *co)
{
    if (co->pending > 0)
        return co->deadline_ms;
    return co->n_awaited > 0 ? co->rejoin_until_ms : 0;
}

int st_coord_run(st_coord_t *co, int timeout_ms)
{
    if (co->active) {
        uint64_t now = st_clock_ms(), at = finish_at(co), ask = ask_at(co);
        if (ask < at)
            at = ask;
        int left = now >= at ? 0 : (int)(at - now);
        if (timeout_ms < 0 || left < timeout_ms)
            timeout_ms = left;
    }
    int rc = st_server_run(co->srv, timeout_ms);
    if (co->active)
        ask_more(co); /* places that clients left, or kept too long */
    if (co->active && st_clock_ms() >= finish_at(co))
        finish(co);
    return rc;
}

int st_coord_dump_sync(st_coord_t *co, const char *trigger, st_global_dump_t **out)
{
    if (!co->active) {
        int rc = st_coord_dump_start(co, trigger, NULL);
        if (rc < 0)
            return rc;
    }
    co->last_done = false;
    co->last = NULL;
    while (!co->last_done) {
        int rc = st_coord_run(co, 100);
        if (rc < 0)
            return rc;
    }
    if (co->last == NULL)
        return -EIO;
    *out = co->last;
    return 0;
}

int st_coord_write_trace(st_coord_t *co, const char *path, char *err, size_t err_len)
{
    st_error_t e;
    memset(&e, 0, sizeof(e));
    int rc = st_trace_write_file(co->trace, path, &e);
    if (rc < 0 && err != NULL)
        st_error_format(&e, "event", err, err_len);
    return rc;
}
