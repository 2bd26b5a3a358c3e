/* SPDX-License-Identifier: MIT
 *
 * The transport half of agent.h over ipc/client.h (private to allocator/). CMake builds this file
 * instead of agent.c once ipc/ provides the client library.
 *
 * The client owns the connection, the bounded lock-free event queue, the agent thread, reconnects
 * and the fork reset; this file only translates. Events from the hooks become st_wire_event_t and
 * go to st_client_event(), which neither blocks, allocates nor locks, so it is safe under the
 * registry lock. A DUMP_REQUEST runs dump_cb on the agent thread: it measures the registry
 * (measure.c) into static records and writes them as wire records. The agent thread is not a hook:
 * it takes the registry lock like any other thread, one object at a time.
 */
#include "agent.h"

#include "client.h"
#include "model.h"

#include <errno.h>
#include <string.h>
#include <time.h>

static st_client_t *client;
static st__reg_t *registry;
static uint64_t local_dropped; /* events refused before a client existed */

/* Records of one dump: static (the agent thread is the only caller); 4096 objects per dump. */
static st__obj_record_t recs[4096];

static void wire_key(st_wire_key_t *k, uint8_t kind, uint64_t a, uint64_t b)
{
    memset(k, 0, sizeof(*k));
    k->kind = kind;
    if (kind == ST_KIND_SYSV) {
        k->ino = a;
        k->shmid = (int32_t)b;
    } else {
        k->major = (uint32_t)(a >> 32);
        k->minor = (uint32_t)a;
        k->ino = b;
        k->shmid = -1;
    }
}

static void copy_text(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static int dump_cb(void *ud, uint64_t dump_id, unsigned level, st_client_writer_t *w)
{
    (void)ud;
    (void)dump_id;
    (void)level;
    if (registry == NULL)
        return -ENODEV;
    st__totals_record_t t;
    size_t n = 0;
    int rc = st__agent_fill_dump(registry, &t, recs, sizeof(recs) / sizeof(recs[0]), &n);
    st_wire_totals_t wt;
    memset(&wt, 0, sizeof(wt));
    wt.resident_set_bytes = t.resident_set_bytes;
    wt.private_footprint_bytes = t.private_footprint_bytes;
    wt.pss_bytes = t.pss_bytes;
    wt.uss_bytes = t.uss_bytes;
    wt.swap_bytes = t.swap_bytes;
    wt.rss_shmem_bytes = t.rss_shmem_bytes;
    wt.present = t.present;
    int wrc = st_client_write_totals(w, &wt);
    if (wrc != 0)
        return wrc;
    for (size_t i = 0; i < n; i++) {
        const st__obj_record_t *r = &recs[i];
        st_wire_object_t o;
        memset(&o, 0, sizeof(o));
        wire_key(&o.key, r->kind, r->a, r->b);
        /* An untrustworthy mincore answer is reported as 0: the coordinator's /proc scan has the
         * object too and knows better. */
        o.resident = (r->flags & ST__REC_RESIDENT_UNKNOWN) ? 0 : r->resident;
        o.swapped = r->swapped;
        o.virtual_size = r->virtual_size;
        o.mapped_bytes = r->mapped;
        o.importance = r->importance == ST__IMPORTANCE_NONE ? 0 : r->importance;
        if (r->flags & ST__REC_CREATOR)
            o.flags |= ST_OBJ_F_CREATOR;
        if (r->flags & ST__REC_CLAIMED)
            o.flags |= ST_OBJ_F_EXPLICIT;
        copy_text(o.name, sizeof(o.name), r->name);
        copy_text(o.label, sizeof(o.label), r->label);
        wrc = st_client_write_object(w, &o);
        if (wrc != 0)
            return wrc;
    }
    return rc;
}

static void connect_cb(void *ud, unsigned reconnects)
{
    (void)ud;
    st__hooks_on_connect(reconnects);
}

int st__agent_start(st__reg_t *reg, const char *socket_path)
{
    registry = reg;
    if (socket_path == NULL || socket_path[0] == '\0')
        return 0;
    st_client_config_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.socket_path = socket_path;
    cfg.dump_cb = dump_cb;
    cfg.connect_cb = connect_cb;
    /* The client applies every event to its own registry, which only st_client_default_dump
     * reads; we answer dumps from ours. At the default size its open addressing fills with
     * tombstones under create/destroy churn and each event then probes thousands of slots on the
     * agent thread (bench_preload (b)); the smallest table keeps that to 16 probes. */
    cfg.registry_capacity = 1;
    return st_client_start(&cfg, &client);
}

void st__agent_event(const st__event_t *ev)
{
    st_client_t *c = client;
    if (c == NULL) {
        __atomic_add_fetch(&local_dropped, 1, __ATOMIC_RELAXED);
        return;
    }
    st_wire_event_t w;
    memset(&w, 0, sizeof(w));
    switch ((st__event_type_t)ev->type) {
    case ST__EV_CREATED:
        w.type = ST_EVENT_CREATED;
        break;
    case ST__EV_MAPPED:
        w.type = ST_EVENT_MAPPED;
        break;
    case ST__EV_UNMAPPED:
        w.type = ST_EVENT_UNMAPPED;
        break;
    case ST__EV_DESTROYED:
        w.type = ST_EVENT_DESTROYED;
        break;
    case ST__EV_IMPORTANCE:
        w.type = ST_EVENT_IMPORTANCE;
        break;
    case ST__EV_LABEL:
        w.type = ST_EVENT_LABEL;
        break;
    default:
        return;
    }
    w.importance = ev->importance == ST__IMPORTANCE_NONE ? 0 : ev->importance;
    wire_key(&w.key, ev->kind, ev->a, ev->b);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts); /* vDSO: no system call */
    w.ts_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    w.virtual_size = ev->size;
    w.mapped_bytes = ev->len;
    if (ev->type == ST__EV_LABEL)
        copy_text(w.label, sizeof(w.label), ev->name);
    else
        copy_text(w.name, sizeof(w.name), ev->name);
    st_client_event(c, &w);
}

void st__agent_fork_child(void)
{
    if (client != NULL)
        st_client_fork_child(client);
}

void st__agent_stop(void)
{
    if (client != NULL)
        st_client_stop(client);
    client = NULL;
    registry = NULL;
}

void st__agent_counts(uint64_t *queued, uint64_t *dropped)
{
    uint64_t local = __atomic_load_n(&local_dropped, __ATOMIC_RELAXED);
    if (client == NULL) {
        *queued = local;
        *dropped = local;
        return;
    }
    st_client_stats_t s;
    st_client_get_stats(client, &s);
    *queued = s.events_queued + local;
    *dropped = s.events_dropped + local;
}
