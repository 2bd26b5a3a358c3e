/* SPDX-License-Identifier: MIT
 *
 * Reader and writer of the memory-infra flavour of Chrome's JSON trace format (DESIGN §5); see
 * trace_json.h. This file and the summary output are the only users of jansson.
 *
 * Reading is three passes over the parsed document. First metadata.shmtrack, which creates the
 * global dumps it lists (so dumps that no process reported keep their place). Then every event
 * once: "M" process_name events give pids their names, "v" events are checked for pid and id and
 * grouped by dump id in order of first appearance; other phases are skipped. Last, the "v"
 * events of one dump in file order: several events for one pid merge into one process dump, a
 * "global/..." node goes to the dump's shared graph with the pid of the first event that carried
 * it, and when a node (global or split across events) is reported again the first value of each
 * entry wins, as in catapult's importer. Two hash indexes per dump (guid -> node, container+name
 * -> node) keep that linear in the number of nodes and catch a guid used for two nodes or a node
 * given two guids. Anything the format does not allow is an error naming the event index and the
 * field path, e.g. `event 12: args.dumps.allocators["shared_memory/x"].attrs.size.value: "zz" is
 * not hex`; the caller gets ST_EFORMAT (ST_EVERSION, ST_ETOOBIG) and a model only on success.
 *
 * Writing builds one event at a time with jansson and streams it, so memory stays bounded by the
 * largest process dump rather than the trace. Output is deterministic: keys sorted, processes by
 * pid, globals by name (each written once, in its carrier's event), edges sorted, one newline-
 * indented layout. Strings that are not valid UTF-8 (a memfd name is whatever the program passed)
 * are written with U+FFFD in place of each bad byte, so the file is always valid JSON.
 */
#include "trace_json.h"

#include "array.h"
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uthash.h>

#define MEMORY_INFRA_CAT "disabled-by-default-memory-infra"
#define WEAK_FLAG 1

/* Levels of detail in increasing order, as catapult orders them. */
static const char *const levels[] = {"background", "light", "detailed"};

/* ---- error text helpers ------------------------------------------------------------------ */

/* A user string for an error message: quoted, escaped, cut after 64 bytes. */
static const char *quote(char *buf, size_t len, const char *s)
{
    size_t o = 0, cut = strlen(s) > 64 ? 64 : strlen(s);
    while (cut > 0 && cut < strlen(s) && ((unsigned char)s[cut] & 0xC0) == 0x80)
        cut--; /* do not split a UTF-8 sequence */
    if (len < 16)
        return "";
    buf[o++] = '"';
    for (size_t i = 0; i < cut && o + 8 < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c < 0x20) {
            o += (size_t)snprintf(buf + o, len - o, "\\u%04x", c);
        } else {
            buf[o++] = (char)c;
        }
    }
    if (cut < strlen(s) && o + 5 < len) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
        return "true";
    case JSON_FALSE:
        return "false";
    default:
        return "null";
    }
}

/* ---- hex --------------------------------------------------------------------------------- */

enum { HEX_OK, HEX_BAD, HEX_OVERFLOW };

/* Hex digits with an optional 0x, as catapult's parseInt(s, 16) takes them (but whole). */
static int parse_hex(const char *s, uint64_t *out)
{
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        s += 2;
    if (*s == '\0')
        return HEX_BAD;
    uint64_t v = 0;
    bool overflow = false;
    for (; *s; s++) {
        unsigned d;
        if (*s >= '0' && *s <= '9')
            d = (unsigned)(*s - '0');
        else if (*s >= 'a' && *s <= 'f')
            d = (unsigned)(*s - 'a' + 10);
        else if (*s >= 'A' && *s <= 'F')
            d = (unsigned)(*s - 'A' + 10);
        else
            return HEX_BAD;
        if (v >> 60)
            overflow = true;
        v = (v << 4) | d;
    }
    if (overflow)
        return HEX_OVERFLOW;
    *out = v;
    return HEX_OK;
}

/* ---- node indexes ------------------------------------------------------------------------ */

/* Where a node lives in a dump: container -1 is dump->globals, otherwise dump->procs[container]. */
typedef struct slot {
    uint64_t key;
    int32_t container; /* SLOT_EMPTY when free */
    uint32_t idx;
} slot_t;

#define SLOT_EMPTY INT32_MIN

typedef struct index {
    slot_t *slots;
    size_t cap, n;
} index_t;

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static void index_free(index_t *ix)
{
    free(ix->slots);
    memset(ix, 0, sizeof(*ix));
}

static void index_insert(index_t *ix, uint64_t key, int32_t container, uint32_t idx)
{
    size_t mask = ix->cap - 1, i = (size_t)mix64(key) & mask;
    while (ix->slots[i].container != SLOT_EMPTY)
        i = (i + 1) & mask;
    ix->slots[i] = (slot_t){key, container, idx};
    ix->n++;
}

/* Makes room for one more entry (load at most 1/2). */
static int index_reserve(index_t *ix)
{
    if ((ix->n + 1) * 2 <= ix->cap)
        return 0;
    size_t ncap = ix->cap ? ix->cap * 2 : 64;
    slot_t *old = ix->slots;
    size_t ocap = ix->cap;
    slot_t *s = malloc(ncap * sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < ncap; i++)
        s[i].container = SLOT_EMPTY;
    ix->slots = s;
    ix->cap = ncap;
    ix->n = 0;
    for (size_t i = 0; i < ocap; i++)
        if (old[i].container != SLOT_EMPTY)
            index_insert(ix, old[i].key, old[i].container, old[i].idx);
    free(old);
    return 0;
}

static st_node_t *node_at(const st_global_dump_t *d, int32_t container, uint32_t idx)
{
    return container < 0 ? &d->globals[idx] : &d->procs[container].nodes[idx];
}

static uint64_t name_key(int32_t container, const char *name)
{
    return st_hash64(name) ^ mix64((uint64_t)(uint32_t)container + 1);
}

/* ---- the reader -------------------------------------------------------------------------- */

typedef struct pid_name {
    int pid;
    size_t event;
    char *name;
} pid_name_t;

/* What the reader keeps per global dump while events arrive in any order. */
typedef struct dump_state {
    index_t by_guid, by_name;
    bool seen;   /* a "v" event has set ts, trigger and level */
    bool listed; /* metadata.shmtrack.dumps lists it */
} dump_state_t;

typedef struct reader {
    st_trace_t *trace;
    st_error_t *err;
    long ev;                    /* event index for errors; -1 outside traceEvents */
    index_t *by_guid, *by_name; /* of the dump being read */
    dump_state_t *states;       /* parallel to trace->dumps */
    size_t cap_states;
    pid_name_t *names;
    size_t n_names, cap_names;
} reader_t;

static int fail(reader_t *r, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(reader_t *r, int rc, const char *fmt, ...)
{
    if (r->err != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->err->text, sizeof(r->err->text), fmt, ap);
        va_end(ap);
        r->err->index = r->ev;
    }
    return rc;
}

/* "where.key", or "key" at the top of an event. */
static void path_join(char *buf, size_t len, const char *where, const char *key)
{
    snprintf(buf, len, "%s%s%s", where, where[0] ? "." : "", key);
}

/* The member key of obj. Missing: an error when required, else *out = NULL. Present with another
 * type than want: an error that names both. */
static int get_typed(reader_t *r, const json_t *obj, const char *where, const char *key,
                     json_type want, const char *want_name, bool required, json_t **out)
{
    char path[384];
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (v == NULL) {
        if (!required)
            return 0;
        path_join(path, sizeof(path), where, key);
        return fail(r, ST_EFORMAT, "%s: missing", path);
    }
    bool ok = json_typeof(v) == want || (want == JSON_TRUE && json_typeof(v) == JSON_FALSE);
    if (!ok) {
        path_join(path, sizeof(path), where, key);
        return fail(r, ST_EFORMAT, "%s: expected %s, got %s", path, want_name, type_name(v));
    }
    *out = v;
    return 0;
}

static int get_object(reader_t *r, const json_t *o, const char *where, const char *key, bool req,
                      json_t **out)
{
    return get_typed(r, o, where, key, JSON_OBJECT, "an object", req, out);
}

static int get_array(reader_t *r, const json_t *o, const char *where, const char *key, bool req,
                     json_t **out)
{
    return get_typed(r, o, where, key, JSON_ARRAY, "an array", req, out);
}

static int get_string(reader_t *r, const json_t *o, const char *where, const char *key, bool req,
                      const char **out)
{
    json_t *v = NULL;
    int rc = get_typed(r, o, where, key, JSON_STRING, "a string", req, &v);
    *out = v ? json_string_value(v) : NULL;
    return rc;
}

/* An integer member within [lo, hi]; *present tells whether it was there. */
static int get_int(reader_t *r, const json_t *o, const char *where, const char *key, bool req,
                   long long lo, long long hi, bool *present, long long *out)
{
    json_t *v = NULL;
    int rc = get_typed(r, o, where, key, JSON_INTEGER, "an integer", req, &v);
    *present = v != NULL;
    if (rc < 0 || v == NULL)
        return rc;
    long long x = json_integer_value(v);
    if (x < lo || x > hi) {
        char path[384];
        path_join(path, sizeof(path), where, key);
        return fail(r, ST_EFORMAT, "%s: %lld is out of range", path, x);
    }
    *out = x;
    return 0;
}

/* A hex string member ("1f", "0x1f"). */
static int get_hex(reader_t *r, const json_t *o, const char *where, const char *key, bool req,
                   bool *present, uint64_t *out)
{
    char path[384], q[160];
    json_t *v = json_object_get(o, key);
    *present = v != NULL;
    if (v == NULL && !req)
        return 0;
    path_join(path, sizeof(path), where, key);
    if (v == NULL)
        return fail(r, ST_EFORMAT, "%s: missing", path);
    if (!json_is_string(v))
        return fail(r, ST_EFORMAT, "%s: expected a hex string, got %s", path, type_name(v));
    const char *s = json_string_value(v);
    switch (parse_hex(s, out)) {
    case HEX_BAD:
        return fail(r, ST_EFORMAT, "%s: %s is not hex", path, quote(q, sizeof(q), s));
    case HEX_OVERFLOW:
        return fail(r, ST_EFORMAT, "%s: %s exceeds 64 bits", path, quote(q, sizeof(q), s));
    default:
        return 0;
    }
}

/* ---- metadata.shmtrack ---- */

static int read_problem(reader_t *r, st_global_dump_t *d, const json_t *p, const char *where)
{
    bool has_pid = false, has_err = false;
    long long pid = 0, e = 0;
    const char *path = NULL, *text = NULL;
    int rc;
    if (!json_is_object(p))
        return fail(r, ST_EFORMAT, "%s: expected an object, got %s", where, type_name(p));
    if ((rc = get_int(r, p, where, "pid", false, INT_MIN, INT_MAX, &has_pid, &pid)) < 0 ||
        (rc = get_string(r, p, where, "path", true, &path)) < 0 ||
        (rc = get_int(r, p, where, "errno", true, INT_MIN, INT_MAX, &has_err, &e)) < 0 ||
        (rc = get_string(r, p, where, "error", false, &text)) < 0)
        return rc;
    return st_dump_add_problem(d, (int)pid, path, (int)e);
}

static dump_state_t *dump_state(reader_t *r, size_t i);

/* One entry of metadata.shmtrack.dumps. The metadata may come before traceEvents (the writer's
 * order: it makes the dump) or after (a spool's order: the events made it, the entry adds its
 * flags, warnings and problems); a dump listed twice is an error either way. */
static int read_meta_dump(reader_t *r, const json_t *m, const char *where)
{
    bool present = false, partial = false;
    uint64_t id = 0;
    json_t *jpartial = NULL, *warnings = NULL, *problems = NULL;
    st_global_dump_t *d = NULL;
    char path[384], q[32];
    int rc;
    if (!json_is_object(m))
        return fail(r, ST_EFORMAT, "%s: expected an object, got %s", where, type_name(m));
    if ((rc = get_hex(r, m, where, "id", true, &present, &id)) < 0 ||
        (rc = get_typed(r, m, where, "partial", JSON_TRUE, "a boolean", false, &jpartial)) < 0 ||
        (rc = get_array(r, m, where, "warnings", false, &warnings)) < 0 ||
        (rc = get_array(r, m, where, "problems", false, &problems)) < 0)
        return rc;
    d = st_trace_find_dump(r->trace, id);
    dump_state_t *st = d != NULL ? dump_state(r, (size_t)(d - r->trace->dumps)) : NULL;
    if (d != NULL && st == NULL)
        return -ENOMEM;
    if (st != NULL && st->listed) {
        snprintf(q, sizeof(q), "0x%" PRIx64, id);
        return fail(r, ST_EFORMAT, "%s.id: dump %s is listed twice", where, q);
    }
    if (d == NULL) {
        if ((rc = st_trace_add_dump(r->trace, id, 0, &d)) < 0 ||
            (st = dump_state(r, r->trace->n_dumps - 1)) == NULL)
            return rc < 0 ? rc : -ENOMEM;
    }
    st->listed = true;
    partial = jpartial != NULL && json_is_true(jpartial);
    d->partial = partial;
    size_t i;
    json_t *v;
    json_array_foreach(warnings, i, v)
    {
        if (!json_is_string(v)) {
            snprintf(path, sizeof(path), "%s.warnings[%zu]", where, i);
            return fail(r, ST_EFORMAT, "%s: expected a string, got %s", path, type_name(v));
        }
        if ((rc = st_dump_add_warning(d, "%s", json_string_value(v))) < 0)
            return rc;
    }
    json_array_foreach(problems, i, v)
    {
        snprintf(path, sizeof(path), "%s.problems[%zu]", where, i);
        if ((rc = read_problem(r, d, v, path)) < 0)
            return rc;
    }
    return 0;
}

/* The value of the top-level "metadata": only metadata.shmtrack is ours. */
static int read_metadata(reader_t *r, const json_t *meta)
{
    json_t *shm = NULL, *dumps = NULL;
    const char *policy = NULL, *host = NULL, *kernel = NULL;
    bool has_version = false;
    long long version = 1;
    char where[64];
    int rc;
    if (!json_is_object(meta))
        return fail(r, ST_EFORMAT, "metadata: expected an object, got %s", type_name(meta));
    if ((rc = get_object(r, meta, "metadata", "shmtrack", false, &shm)) < 0 || shm == NULL)
        return rc;
    if ((rc = get_int(r, shm, "metadata.shmtrack", "version", false, LLONG_MIN, LLONG_MAX,
                      &has_version, &version)) < 0)
        return rc;
    if (version != 1)
        return fail(r, ST_EVERSION, "metadata.shmtrack.version: %lld is not supported (only 1)",
                    version);
    if ((rc = get_string(r, shm, "metadata.shmtrack", "policy", false, &policy)) < 0 ||
        (rc = get_string(r, shm, "metadata.shmtrack", "host", false, &host)) < 0 ||
        (rc = get_string(r, shm, "metadata.shmtrack", "kernel", false, &kernel)) < 0 ||
        (rc = get_array(r, shm, "metadata.shmtrack", "dumps", false, &dumps)) < 0)
        return rc;
    if ((rc = st_trace_set_meta(r->trace, policy, host, kernel)) < 0)
        return rc;
    r->trace->version = (int)version;
    size_t i;
    json_t *v;
    json_array_foreach(dumps, i, v)
    {
        snprintf(where, sizeof(where), "metadata.shmtrack.dumps[%zu]", i);
        if ((rc = read_meta_dump(r, v, where)) < 0)
            return rc;
    }
    return 0;
}

/* ---- events ---- */

static int read_dump_event(reader_t *r, const json_t *ev, st_global_dump_t *d, int pid, bool first);

/* The state of trace->dumps[i], grown along with the dumps. */
static dump_state_t *dump_state(reader_t *r, size_t i)
{
    size_t old = r->cap_states;
    if (st__array_grow((void **)&r->states, &r->cap_states, i + 1, sizeof(*r->states)) < 0)
        return NULL;
    memset(r->states + old, 0, (r->cap_states - old) * sizeof(*r->states));
    return &r->states[i];
}

/* One element of traceEvents: a process_name gives a pid its name, a "v" event goes to its
 * global dump, anything else is skipped. */
static int read_event(reader_t *r, const json_t *ev)
{
    const char *ph = NULL, *name = NULL;
    json_t *args = NULL;
    bool present = false;
    long long pid = 0;
    uint64_t id = 0;
    int rc;
    if (!json_is_object(ev))
        return fail(r, ST_EFORMAT, "expected an object, got %s", type_name(ev));
    if ((rc = get_string(r, ev, "", "ph", true, &ph)) < 0)
        return rc;
    if (strcmp(ph, "M") == 0) {
        json_t *jname = json_object_get(ev, "name");
        if (!json_is_string(jname) || strcmp(json_string_value(jname), "process_name") != 0)
            return 0;
        if ((rc = get_int(r, ev, "", "pid", true, INT_MIN, INT_MAX, &present, &pid)) < 0 ||
            (rc = get_object(r, ev, "", "args", true, &args)) < 0 ||
            (rc = get_string(r, args, "args", "name", true, &name)) < 0)
            return rc;
        char *copy = strdup(name);
        if (copy == NULL || st__array_grow((void **)&r->names, &r->cap_names, r->n_names + 1,
                                           sizeof(*r->names)) < 0) {
            free(copy);
            return -ENOMEM;
        }
        r->names[r->n_names++] = (pid_name_t){(int)pid, (size_t)r->ev, copy};
        return 0;
    }
    if (strcmp(ph, "v") != 0)
        return 0;
    if ((rc = get_int(r, ev, "", "pid", true, INT_MIN, INT_MAX, &present, &pid)) < 0 ||
        (rc = get_hex(r, ev, "", "id", true, &present, &id)) < 0)
        return rc;
    st_global_dump_t *d = st_trace_find_dump(r->trace, id);
    if (d == NULL && (rc = st_trace_add_dump(r->trace, id, 0, &d)) < 0)
        return rc;
    dump_state_t *st = dump_state(r, (size_t)(d - r->trace->dumps));
    if (st == NULL)
        return -ENOMEM;
    r->by_guid = &st->by_guid;
    r->by_name = &st->by_name;
    bool first = !st->seen;
    st->seen = true;
    return read_dump_event(r, ev, d, (int)pid, first);
}

static int cmp_names(const void *a, const void *b)
{
    const pid_name_t *x = a, *y = b;
    if (x->pid != y->pid)
        return (x->pid > y->pid) - (x->pid < y->pid);
    return (x->event > y->event) - (x->event < y->event);
}

/* The last process_name given for pid (catapult keeps the last), or NULL. */
static const char *name_of(const reader_t *r, int pid)
{
    size_t lo = 0, hi = r->n_names; /* first index with pid > wanted */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->names[mid].pid <= pid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (lo > 0 && r->names[lo - 1].pid == pid) ? r->names[lo - 1].name : NULL;
}

/* ---- pass 2: one "v" event ---- */

static int read_totals(reader_t *r, st_process_dump_t *proc, const json_t *dumps)
{
    json_t *totals = NULL;
    const char *where = "args.dumps.process_totals";
    bool present = false;
    uint64_t v = 0;
    int rc;
    if ((rc = get_object(r, dumps, "args.dumps", "process_totals", false, &totals)) < 0 ||
        totals == NULL)
        return rc;
#define XX(f)                                                                                      \
    if ((rc = get_hex(r, totals, where, #f, false, &present, &v)) < 0)                             \
        return rc;                                                                                 \
    if (present && !(proc->totals.present & ST_TOTAL_HAS(f))) {                                    \
        proc->totals.f = v;                                                                        \
        proc->totals.present |= ST_TOTAL_HAS(f);                                                   \
    }
    ST_TOTALS_MAP(XX)
#undef XX
    return 0;
}

/* One attribute; added to node unless a value for it was given before (first wins). */
static int read_attr(reader_t *r, st_node_t *node, const char *aname, const json_t *a,
                     const char *nwhere)
{
    char where[512], q[160];
    const char *type = NULL, *units = NULL, *s = NULL;
    bool present = false;
    uint64_t value = 0;
    int rc;
    bool plain = aname[0] != '\0' && strspn(aname, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRS"
                                                   "TUVWXYZ0123456789_") == strlen(aname);
    if (plain)
        snprintf(where, sizeof(where), "%s.attrs.%s", nwhere, aname);
    else
        snprintf(where, sizeof(where), "%s.attrs[%s]", nwhere, quote(q, sizeof(q), aname));
    if (!json_is_object(a))
        return fail(r, ST_EFORMAT, "%s: expected an object, got %s", where, type_name(a));
    if ((rc = get_string(r, a, where, "type", true, &type)) < 0)
        return rc;
    bool keep = st_node_get(node, aname) == NULL;
    if (strcmp(type, "scalar") == 0) {
        if ((rc = get_string(r, a, where, "units", true, &units)) < 0 ||
            (rc = get_hex(r, a, where, "value", true, &present, &value)) < 0)
            return rc;
        return keep ? st_node_set_scalar(node, aname, units, value) : 0;
    }
    if (strcmp(type, "string") == 0) {
        if ((rc = get_string(r, a, where, "units", false, &units)) < 0 ||
            (rc = get_string(r, a, where, "value", true, &s)) < 0)
            return rc;
        return keep ? st_node_set_string(node, aname, s) : 0;
    }
    return fail(r, ST_EFORMAT, "%s.type: %s is not scalar or string", where,
                quote(q, sizeof(q), type));
}

static int read_node(reader_t *r, st_global_dump_t *d, int32_t pi, const char *name,
                     const json_t *jn)
{
    char where[384], q[160], q2[160];
    bool present = false, weak;
    long long flags = 0;
    uint64_t guid = 0;
    json_t *attrs = NULL;
    st_node_t *node = NULL;
    int rc;
    snprintf(where, sizeof(where), "args.dumps.allocators[%s]", quote(q, sizeof(q), name));
    if (!json_is_object(jn))
        return fail(r, ST_EFORMAT, "%s: expected an object, got %s", where, type_name(jn));
    if ((rc = get_hex(r, jn, where, "guid", true, &present, &guid)) < 0 ||
        (rc = get_int(r, jn, where, "flags", false, 0, LLONG_MAX, &present, &flags)) < 0 ||
        (rc = get_object(r, jn, where, "attrs", false, &attrs)) < 0)
        return rc;
    weak = (flags & WEAK_FLAG) != 0;
    int32_t container = strncmp(name, "global/", 7) == 0 ? -1 : pi;

    /* Known guid: the same node again (split event, or a global from another process). */
    size_t mask = r->by_guid->cap - 1;
    for (size_t i = r->by_guid->cap ? (size_t)mix64(guid) & mask : 0;
         r->by_guid->cap && r->by_guid->slots[i].container != SLOT_EMPTY; i = (i + 1) & mask) {
        slot_t *s = &r->by_guid->slots[i];
        if (s->key != guid)
            continue;
        node = node_at(d, s->container, s->idx);
        if (s->container != container || strcmp(node->name, name) != 0) {
            if (s->container >= 0 && s->container != container)
                return fail(r, ST_EFORMAT, "%s.guid: %" PRIx64 " is already used by %s in pid %d",
                            where, guid, quote(q2, sizeof(q2), node->name),
                            d->procs[s->container].pid);
            return fail(r, ST_EFORMAT, "%s.guid: %" PRIx64 " is already used by %s", where, guid,
                        quote(q2, sizeof(q2), node->name));
        }
        if (!weak)
            node->weak = false; /* non-weak if any report is non-weak (catapult) */
        break;
    }
    if (node == NULL) {
        uint64_t nk = name_key(container, name);
        mask = r->by_name->cap - 1;
        for (size_t i = r->by_name->cap ? (size_t)mix64(nk) & mask : 0;
             r->by_name->cap && r->by_name->slots[i].container != SLOT_EMPTY; i = (i + 1) & mask) {
            slot_t *s = &r->by_name->slots[i];
            if (s->key != nk || s->container != container)
                continue;
            st_node_t *other = node_at(d, s->container, s->idx);
            if (strcmp(other->name, name) == 0)
                return fail(r, ST_EFORMAT,
                            "%s.guid: %" PRIx64 " differs from %" PRIx64 " given before", where,
                            guid, other->guid);
        }
        uint32_t idx;
        if (container < 0) {
            if ((rc = st_dump_add_global(d, name, guid, weak, d->procs[pi].pid, &node, NULL)) < 0)
                return rc;
            idx = (uint32_t)(node - d->globals);
        } else {
            if ((rc = st_process_add_node(&d->procs[pi], name, guid, weak, &node)) < 0)
                return rc;
            idx = (uint32_t)(node - d->procs[pi].nodes);
        }
        if (index_reserve(r->by_guid) < 0 || index_reserve(r->by_name) < 0)
            return -ENOMEM;
        index_insert(r->by_guid, guid, container, idx);
        index_insert(r->by_name, nk, container, idx);
    }
    const char *aname;
    json_t *a;
    json_object_foreach(attrs, aname, a)
    {
        if ((rc = read_attr(r, node, aname, a, where)) < 0)
            return rc;
    }
    return 0;
}

static int read_edges(reader_t *r, st_process_dump_t *proc, const json_t *dumps)
{
    json_t *graph = NULL, *e;
    char where[64], q[160];
    const char *type = NULL;
    bool present = false;
    uint64_t source = 0, target = 0;
    long long importance = 0;
    size_t i;
    int rc;
    if ((rc = get_array(r, dumps, "args.dumps", "allocators_graph", false, &graph)) < 0)
        return rc;
    json_array_foreach(graph, i, e)
    {
        snprintf(where, sizeof(where), "args.dumps.allocators_graph[%zu]", i);
        if (!json_is_object(e))
            return fail(r, ST_EFORMAT, "%s: expected an object, got %s", where, type_name(e));
        importance = 0;
        if ((rc = get_hex(r, e, where, "source", true, &present, &source)) < 0 ||
            (rc = get_hex(r, e, where, "target", true, &present, &target)) < 0 ||
            (rc = get_string(r, e, where, "type", true, &type)) < 0 ||
            (rc = get_int(r, e, where, "importance", false, INT_MIN, INT_MAX, &present,
                          &importance)) < 0)
            return rc;
        if (strcmp(type, "retention") == 0)
            continue; /* catapult draws these; the ownership model has no use for them */
        if (strcmp(type, "ownership") != 0)
            return fail(r, ST_EFORMAT, "%s.type: %s is not ownership or retention", where,
                        quote(q, sizeof(q), type));
        if ((rc = st_process_add_edge(proc, source, target, (int)importance)) < 0)
            return rc;
    }
    return 0;
}

static int level_rank(const char *s)
{
    for (int i = 0; i < (int)(sizeof(levels) / sizeof(levels[0])); i++)
        if (strcmp(s, levels[i]) == 0)
            return i;
    return -1;
}

static int read_dump_event(reader_t *r, const json_t *ev, st_global_dump_t *d, int pid, bool first)
{
    json_t *jts = NULL, *args = NULL, *dumps = NULL, *allocators = NULL;
    const char *trigger = NULL, *level = NULL;
    st_process_dump_t *proc = NULL;
    char q[160];
    uint64_t ts;
    int rc;
    if ((rc = get_string(r, ev, "", "name", false, &trigger)) < 0)
        return rc;
    jts = json_object_get(ev, "ts");
    if (jts == NULL)
        return fail(r, ST_EFORMAT, "ts: missing");
    if (json_is_integer(jts)) {
        if (json_integer_value(jts) < 0)
            return fail(r, ST_EFORMAT, "ts: %lld is negative", json_integer_value(jts));
        ts = (uint64_t)json_integer_value(jts);
    } else if (json_is_real(jts)) {
        double t = json_real_value(jts);
        if (!(t >= 0 && t < 1.8e19))
            return fail(r, ST_EFORMAT, "ts: %g is out of range", t);
        ts = (uint64_t)t;
    } else {
        return fail(r, ST_EFORMAT, "ts: expected a number, got %s", type_name(jts));
    }
    if ((rc = get_object(r, ev, "", "args", true, &args)) < 0 ||
        (rc = get_object(r, args, "args", "dumps", true, &dumps)) < 0 ||
        (rc = get_string(r, dumps, "args.dumps", "level_of_detail", false, &level)) < 0 ||
        (rc = get_object(r, dumps, "args.dumps", "allocators", false, &allocators)) < 0)
        return rc;
    if (level != NULL && level_rank(level) < 0)
        return fail(r, ST_EFORMAT,
                    "args.dumps.level_of_detail: %s is not background, light or detailed",
                    quote(q, sizeof(q), level));

    /* Dump-wide fields: earliest ts, the first event's trigger, the highest level (catapult). */
    if (first || ts < d->ts_us)
        d->ts_us = ts;
    if (first && trigger != NULL && (rc = st_dump_set_strings(d, trigger, NULL)) < 0)
        return rc;
    if (level != NULL && (first || level_rank(level) > level_rank(d->level_of_detail)) &&
        (rc = st_dump_set_strings(d, NULL, level)) < 0)
        return rc;

    if ((rc = st_dump_add_process(d, pid, NULL, &proc)) < 0)
        return rc;
    int32_t pi = (int32_t)(proc - d->procs);
    if ((rc = read_totals(r, proc, dumps)) < 0)
        return rc;
    const char *name;
    json_t *jn;
    json_object_foreach(allocators, name, jn)
    {
        if ((rc = read_node(r, d, pi, name, jn)) < 0)
            return rc;
    }
    return read_edges(r, &d->procs[pi], dumps);
}

/* ---- the document, one top-level value and one event at a time ----
 *
 * A large trace is hundreds of megabytes of events; parsed whole, jansson's tree is ten times
 * that. So the top-level object and the traceEvents array are walked here by hand and each
 * member and each event is parsed on its own (JSON_DISABLE_EOF_CHECK reports how much it
 * consumed) and freed once read. Whenever the text is not what that walk expects, the whole
 * buffer is parsed once more to report jansson's own message with its line and column.
 */

#define LOAD_FLAGS (JSON_DECODE_ANY | JSON_DISABLE_EOF_CHECK | JSON_REJECT_DUPLICATES)

/* The error for a buffer the walk could not follow: jansson's syntax error, or the wrong type
 * at the top level. */
static int whole_error(reader_t *r, const char *buf, size_t len)
{
    json_error_t jerr;
    r->ev = -1;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        if (json_error_code(&jerr) == json_error_out_of_memory)
            return -ENOMEM;
        return fail(r, ST_EFORMAT, "line %d column %d: %s", jerr.line, jerr.column, jerr.text);
    }
    int rc = json_is_object(root)
                 ? fail(r, ST_EFORMAT, "malformed input")
                 : fail(r, ST_EFORMAT, "top level: expected an object, got %s", type_name(root));
    json_decref(root);
    return rc;
}

static size_t skip_ws(const char *buf, size_t len, size_t pos)
{
    while (pos < len &&
           (buf[pos] == ' ' || buf[pos] == '\t' || buf[pos] == '\n' || buf[pos] == '\r'))
        pos++;
    return pos;
}

/* One JSON value at buf + *pos, advancing *pos past it; NULL when it does not parse. */
static json_t *load_one(const char *buf, size_t len, size_t *pos)
{
    json_error_t jerr;
    json_t *v = json_loadb(buf + *pos, len - *pos, LOAD_FLAGS, &jerr);
    if (v != NULL)
        *pos += (size_t)jerr.position;
    return v;
}

static int read_stream(reader_t *r, const char *buf, size_t len)
{
    bool seen_events = false;
    size_t pos = skip_ws(buf, len, 0), n_keys = 0, cap_keys = 0;
    char **keys = NULL;
    json_t *v = NULL;
    int rc = 0;
    if (pos == len || buf[pos] != '{') {
        rc = whole_error(r, buf, len);
        goto out;
    }
    pos = skip_ws(buf, len, pos + 1);
    while (pos < len && buf[pos] != '}') {
        const char *key;
        if (buf[pos] != '"' || (v = load_one(buf, len, &pos)) == NULL) {
            rc = whole_error(r, buf, len);
            goto out;
        }
        key = json_string_value(v);
        bool events = strcmp(key, "traceEvents") == 0, meta = strcmp(key, "metadata") == 0;
        bool dup = false; /* jansson's JSON_REJECT_DUPLICATES, for the top level */
        for (size_t i = 0; i < n_keys && !dup; i++)
            dup = strcmp(keys[i], key) == 0;
        if (!dup) {
            char *copy = strdup(key);
            if (copy == NULL ||
                st__array_grow((void **)&keys, &cap_keys, n_keys + 1, sizeof(*keys)) < 0) {
                free(copy);
                json_decref(v);
                rc = -ENOMEM;
                goto out;
            }
            keys[n_keys++] = copy;
        }
        json_decref(v);
        v = NULL;
        pos = skip_ws(buf, len, pos);
        if (dup || pos == len || buf[pos] != ':') {
            rc = whole_error(r, buf, len);
            goto out;
        }
        pos = skip_ws(buf, len, pos + 1);
        if (events && pos < len && buf[pos] == '[') {
            seen_events = true;
            pos = skip_ws(buf, len, pos + 1);
            for (long i = 0; pos < len && buf[pos] != ']'; i++) {
                if ((v = load_one(buf, len, &pos)) == NULL) {
                    rc = whole_error(r, buf, len);
                    goto out;
                }
                r->ev = i;
                rc = read_event(r, v);
                json_decref(v);
                v = NULL;
                r->ev = -1;
                if (rc < 0)
                    goto out;
                pos = skip_ws(buf, len, pos);
                if (pos < len && buf[pos] == ',')
                    pos = skip_ws(buf, len, pos + 1);
                else if (pos == len || buf[pos] != ']') {
                    rc = whole_error(r, buf, len);
                    goto out;
                }
            }
            if (pos == len) {
                rc = whole_error(r, buf, len);
                goto out;
            }
            pos++;
        } else {
            if ((v = load_one(buf, len, &pos)) == NULL) {
                rc = whole_error(r, buf, len);
                goto out;
            }
            if (events)
                rc = fail(r, ST_EFORMAT, "traceEvents: expected an array, got %s", type_name(v));
            else if (meta)
                rc = read_metadata(r, v);
            json_decref(v);
            v = NULL;
            if (rc < 0)
                goto out;
        }
        pos = skip_ws(buf, len, pos);
        if (pos < len && buf[pos] == ',')
            pos = skip_ws(buf, len, pos + 1);
        else if (pos == len || buf[pos] != '}') {
            rc = whole_error(r, buf, len);
            goto out;
        }
    }
    if (pos == len || skip_ws(buf, len, pos + 1) != len) {
        rc = whole_error(r, buf, len);
        goto out;
    } /* unterminated, or something after the object */
    if (!seen_events) {
        rc = fail(r, ST_EFORMAT, "traceEvents: missing");
        goto out;
    }

    /* process_name events may come anywhere: name the processes now */
    if (r->n_names > 1)
        qsort(r->names, r->n_names, sizeof(*r->names), cmp_names);
    for (size_t i = 0; i < r->trace->n_dumps; i++) {
        st_global_dump_t *d = &r->trace->dumps[i];
        for (size_t k = 0; k < d->n_procs; k++) {
            const char *name = name_of(r, d->procs[k].pid);
            if (name != NULL && (rc = st_dump_add_process(d, d->procs[k].pid, name, NULL)) < 0)
                goto out;
        }
        st_dump_sort(d);
    }
out:
    for (size_t i = 0; i < n_keys; i++)
        free(keys[i]);
    free(keys);
    return rc;
}

static void set_source(st_error_t *err, const char *source)
{
    if (err == NULL)
        return;
    memset(err, 0, sizeof(*err));
    err->index = -1;
    snprintf(err->source, sizeof(err->source), "%s", source ? source : "");
}

int st_trace_read_buffer(const char *buf, size_t len, const char *source, st_trace_t **out,
                         st_error_t *err)
{
    reader_t r = {.err = err, .ev = -1};
    int rc;
    set_source(err, source);
    *out = NULL;
    if (len > ST_TRACE_MAX_BYTES)
        return fail(&r, ST_ETOOBIG, "%zu bytes exceed the limit of %llu", len,
                    (unsigned long long)ST_TRACE_MAX_BYTES);
    if ((rc = st_trace_new(&r.trace)) < 0)
        goto out;
    if ((rc = read_stream(&r, buf, len)) < 0)
        goto out;
    *out = r.trace;
    r.trace = NULL;
out:
    if (rc == -ENOMEM)
        fail(&r, rc, "out of memory");
    st_trace_free(r.trace);
    for (size_t i = 0; i < r.cap_states; i++) {
        index_free(&r.states[i].by_guid);
        index_free(&r.states[i].by_name);
    }
    free(r.states);
    for (size_t i = 0; i < r.n_names; i++)
        free(r.names[i].name);
    free(r.names);
    return rc;
}

int st_trace_read_file(const char *path, st_trace_t **out, st_error_t *err)
{
    reader_t r = {.err = err, .ev = -1};
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int fd = -1, rc = 0;
    struct stat st;
    set_source(err, path);
    *out = NULL;
    if (strcmp(path, "-") == 0)
        fd = STDIN_FILENO;
    else if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        rc = -errno;
        fail(&r, rc, "cannot open: %s", strerror(-rc));
        goto out;
    }
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        if ((unsigned long long)st.st_size > ST_TRACE_MAX_BYTES) {
            rc = fail(&r, ST_ETOOBIG, "%lld bytes exceed the limit of %llu", (long long)st.st_size,
                      (unsigned long long)ST_TRACE_MAX_BYTES);
            goto out;
        }
        cap = (size_t)st.st_size + 1;
    }
    if (cap == 0)
        cap = 65536;
    if ((buf = malloc(cap)) == NULL) {
        rc = fail(&r, -ENOMEM, "out of memory");
        goto out;
    }
    for (;;) {
        if (len == cap) {
            /* Room for one byte past the limit, so that reaching it is seen. */
            size_t ncap = cap * 2 > ST_TRACE_MAX_BYTES + 1 ? ST_TRACE_MAX_BYTES + 1 : cap * 2;
            char *p = realloc(buf, ncap);
            if (p == NULL) {
                rc = fail(&r, -ENOMEM, "out of memory");
                goto out;
            }
            buf = p;
            cap = ncap;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            fail(&r, rc, "read: %s", strerror(-rc));
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > ST_TRACE_MAX_BYTES) {
            rc = fail(&r, ST_ETOOBIG, "more than %llu bytes",
                      (unsigned long long)ST_TRACE_MAX_BYTES);
            goto out;
        }
    }
    rc = st_trace_read_buffer(buf ? buf : "", len, path, out, err);
out:
    if (fd > STDIN_FILENO)
        close(fd);
    free(buf);
    return rc;
}

/* ---- the writer -------------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (RFC 3629: no overlongs, surrogates, > U+10FFFF),
 * or 0. */
static size_t utf8_len(const unsigned char *s)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0;
        if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90;
        if (c == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return n;
}

/* s with each byte that does not start valid UTF-8 replaced by U+FFFD; NULL when s is valid
 * (use s) or on ENOMEM (*nomem). */
static char *utf8_fix(const char *s, bool *nomem)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t bad = 0, len = 0;
    while (p[len]) {
        size_t n = utf8_len(p + len);
        bad += n == 0;
        len += n ? n : 1;
    }
    if (bad == 0)
        return NULL;
    char *out = malloc(len + bad * 2 + 1), *o = out;
    if (out == NULL) {
        *nomem = true;
        return NULL;
    }
    for (size_t i = 0; i < len;) {
        size_t n = utf8_len(p + i);
        if (n == 0) {
            memcpy(o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else {
            memcpy(o, p + i, n);
            o += n;
            i += n;
        }
    }
    *o = '\0';
    return out;
}

/* A JSON string for any C string. */
static json_t *jstr(const char *s)
{
    bool nomem = false;
    char *fixed = utf8_fix(s ? s : "", &nomem);
    if (nomem)
        return NULL;
    json_t *v = json_string_nocheck(fixed ? fixed : (s ? s : ""));
    free(fixed);
    return v;
}

/* obj[key] = value (stolen); key may be any C string. -ENOMEM on failure. */
static int jset(json_t *obj, const char *key, json_t *value)
{
    bool nomem = false;
    if (value == NULL)
        return -ENOMEM;
    char *fixed = utf8_fix(key, &nomem);
    if (nomem) {
        json_decref(value);
        return -ENOMEM;
    }
    int rc = json_object_set_new_nocheck(obj, fixed ? fixed : key, value);
    free(fixed);
    return rc < 0 ? -ENOMEM : 0;
}

/* *p, which the caller no longer owns. */
static json_t *take(json_t **p)
{
    json_t *v = *p;
    *p = NULL;
    return v;
}

static json_t *jhex(uint64_t v, bool prefix)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%s%" PRIx64, prefix ? "0x" : "", v);
    return json_string_nocheck(buf);
}

/* ---- event text ----
 *
 * The events are written by hand rather than built as jansson values: a large dump has hundreds
 * of thousands of nodes, and a jansson object per attribute costs more than the whole text. The
 * layout is fixed and sorted like JSON_SORT_KEYS would sort it, with one line per allocator
 * attribute and per edge so that two traces diff line by line.
 */

typedef struct buf {
    char *p;
    size_t n, cap;
    bool nomem;
} buf_t;

/* Room for len more bytes (and a NUL) at b->p + b->n, or false (and b->nomem) when there is
 * no memory for it. */
static bool reserve(buf_t *b, size_t len)
{
    if (b->n + len + 1 <= b->cap && !b->nomem)
        return true;
    if (b->nomem)
        return false;
    size_t ncap = b->cap ? b->cap : 4096;
    while (ncap < b->n + len + 1)
        ncap *= 2;
    char *p = realloc(b->p, ncap);
    if (p == NULL) {
        b->nomem = true;
        return false;
    }
    b->p = p;
    b->cap = ncap;
    return true;
}

static void put(buf_t *b, const char *s, size_t len)
{
    if (!reserve(b, len))
        return;
    memcpy(b->p + b->n, s, len);
    b->n += len;
}

static void puts_(buf_t *b, const char *s)
{
    put(b, s, strlen(s));
}

static void put_indent(buf_t *b, int indent)
{
    static const char nl[] = "\n                ";
    put(b, nl, 1 + (size_t)indent);
}

/* Bytes a JSON string holds as they are: printable ASCII but '"' and '\\'. */
static const unsigned char plain_ascii[256] = {
    [0x20 ... 0x21] = 1,
    [0x23 ... 0x5b] = 1,
    [0x5d ... 0x7f] = 1,
};

/* s as a JSON string; bytes that do not start valid UTF-8 become U+FFFD. */
static void put_str(buf_t *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t run = 0, i = 0; /* run: bytes before p[i] still to copy as they are */
    while (plain_ascii[p[i]])
        i++;
    if (p[i] == 0) { /* the common case: nothing to escape, one copy */
        if (reserve(b, i + 2)) {
            char *o = b->p + b->n;
            o[0] = '"';
            memcpy(o + 1, p, i);
            o[i + 1] = '"';
            b->n += i + 2;
        }
        return;
    }
    i = 0;
    put(b, "\"", 1);
    while (p[i]) {
        /* the common case first: a run of printable ASCII that needs no escape */
        size_t start = i;
        while (plain_ascii[p[i]])
            i++;
        run += i - start;
        if (p[i] == 0)
            break;
        unsigned char c = p[i];
        size_t n = c >= 0x20 && c != '"' && c != '\\' && c < 0x80 ? 1 : 0;
        if (c >= 0x80)
            n = utf8_len(p + i);
        if (n > 0) {
            run += n;
            i += n;
            continue;
        }
        put(b, (const char *)p + i - run, run);
        run = 0;
        char esc[8];
        switch (c) {
        case '"':
            put(b, "\\\"", 2);
            break;
        case '\\':
            put(b, "\\\\", 2);
            break;
        case '\n':
            put(b, "\\n", 2);
            break;
        case '\t':
            put(b, "\\t", 2);
            break;
        case '\r':
            put(b, "\\r", 2);
            break;
        default:
            if (c < 0x20) {
                snprintf(esc, sizeof(esc), "\\u%04x", c);
                put(b, esc, 6);
            } else {
                put(b, "\xEF\xBF\xBD", 3);
            }
        }
        i++;
    }
    put(b, (const char *)p + i - run, run);
    put(b, "\"", 1);
}

/* Numbers are formatted by hand: a dump has a few hundred thousand of them and snprintf was a
 * tenth of writing one. */
static void put_hex(buf_t *b, uint64_t v, bool prefix)
{
    static const char digits[] = "0123456789abcdef";
    char tmp[24];
    char *e = tmp + sizeof(tmp), *p = e;
    *--p = '"';
    do {
        *--p = digits[v & 15];
        v >>= 4;
    } while (v != 0);
    if (prefix) {
        *--p = 'x';
        *--p = '0';
    }
    *--p = '"';
    put(b, p, (size_t)(e - p));
}

static void put_int(buf_t *b, long long v)
{
    char tmp[24];
    char *e = tmp + sizeof(tmp), *p = e;
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        *--p = '-';
    put(b, p, (size_t)(e - p));
}

static int cmp_entry_ptr(const void *a, const void *b)
{
    const char *x = (*(const st_entry_t *const *)a)->name;
    const char *y = (*(const st_entry_t *const *)b)->name;
    if (x[0] != y[0]) /* most names differ in their first byte */
        return (unsigned char)x[0] - (unsigned char)y[0];
    return strcmp(x, y);
}

static int cmp_node_ptr(const void *a, const void *b)
{
    return strcmp((*(const st_node_t *const *)a)->name, (*(const st_node_t *const *)b)->name);
}

/* One allocator node: `"name":{"attrs":{...},"flags":1,"guid":"..."}`, attributes one a line
 * at indent + 2. es is scratch room for n->n_entries pointers. */
static void put_node(buf_t *b, const st_node_t *n, int indent, const st_entry_t **es)
{
    put_indent(b, indent);
    put_str(b, n->name);
    puts_(b, ":{\"attrs\":{");
    /* entries by name: an insertion sort when there are few, as a shmtrack node has about ten
     * and qsort's calls cost more than the sort */
    bool few = n->n_entries <= 32;
    for (size_t i = 0; i < n->n_entries; i++) {
        const st_entry_t *e = &n->entries[i];
        size_t j = i;
        while (few && j > 0 && cmp_entry_ptr(&es[j - 1], &e) > 0) {
            es[j] = es[j - 1];
            j--;
        }
        es[j] = e;
    }
    if (!few)
        qsort(es, n->n_entries, sizeof(*es), cmp_entry_ptr);
    for (size_t i = 0; i < n->n_entries; i++) {
        const st_entry_t *e = es[i];
        if (i > 0)
            put(b, ",", 1);
        put_indent(b, indent + 2);
        put_str(b, e->name);
        if (e->type == ST_ENTRY_SCALAR) {
            if (e->units == NULL || strcmp(e->units, "bytes") == 0) { /* nearly all of them */
                puts_(b, ":{\"type\":\"scalar\",\"units\":\"bytes\",\"value\":");
            } else {
                puts_(b, ":{\"type\":\"scalar\",\"units\":");
                put_str(b, e->units);
                puts_(b, ",\"value\":");
            }
            put_hex(b, e->value, false);
        } else {
            puts_(b, ":{\"type\":\"string\",\"value\":");
            put_str(b, e->string);
        }
        put(b, "}", 1);
    }
    if (n->n_entries > 0)
        put_indent(b, indent + 1);
    puts_(b, n->weak ? "},\"flags\":1,\"guid\":" : "},\"guid\":");
    put_hex(b, n->guid, false);
    put(b, "}", 1);
}

static int cmp_edges(const void *a, const void *b)
{
    const st_edge_t *x = a, *y = b;
    if (x->source != y->source)
        return x->source > y->source ? 1 : -1;
    if (x->target != y->target)
        return x->target > y->target ? 1 : -1;
    return (x->importance > y->importance) - (x->importance < y->importance);
}

/* What one "v" event carries: a process dump (may be NULL when the dump has none) and the
 * global nodes assigned to it, sorted by name. */
typedef struct wevent {
    int pid;
    const st_process_dump_t *proc;
    const st_node_t **globals;
    size_t n_globals;
} wevent_t;

/* Process totals in JSON key order. */
typedef struct total_ref {
    const char *name;
    unsigned bit;
    size_t offset;
} total_ref_t;

static int cmp_total_ref(const void *a, const void *b)
{
    return strcmp(((const total_ref_t *)a)->name, ((const total_ref_t *)b)->name);
}

static int event_text(buf_t *b, const st_global_dump_t *d, const wevent_t *we)
{
    total_ref_t totals[] = {
#define XX(f) {#f, ST_TOTAL_HAS(f), offsetof(st_totals_t, f)},
        ST_TOTALS_MAP(XX)
#undef XX
    };
    const st_process_dump_t *p = we->proc;
    size_t n_local = p ? p->n_nodes : 0, n_edges = p ? p->n_edges : 0, max_entries = 0;
    const st_node_t **nodes = NULL;
    const st_entry_t **es = NULL;
    st_edge_t *edges = NULL;
    int rc = -ENOMEM;

    qsort(totals, sizeof(totals) / sizeof(totals[0]), sizeof(totals[0]), cmp_total_ref);
    if (n_local + we->n_globals > 0 &&
        (nodes = malloc((n_local + we->n_globals) * sizeof(*nodes))) == NULL)
        goto out;
    for (size_t i = 0; i < n_local; i++)
        nodes[i] = &p->nodes[i];
    for (size_t i = 0; i < we->n_globals; i++)
        nodes[n_local + i] = we->globals[i];
    if (n_local + we->n_globals > 1)
        qsort(nodes, n_local + we->n_globals, sizeof(*nodes), cmp_node_ptr);
    for (size_t i = 0; i < n_local + we->n_globals; i++)
        if (nodes[i]->n_entries > max_entries)
            max_entries = nodes[i]->n_entries;
    if (max_entries > 0 && (es = malloc(max_entries * sizeof(*es))) == NULL)
        goto out;
    if (n_edges > 0) {
        if ((edges = malloc(n_edges * sizeof(*edges))) == NULL)
            goto out;
        memcpy(edges, p->edges, n_edges * sizeof(*edges));
        qsort(edges, n_edges, sizeof(*edges), cmp_edges);
    }

    puts_(b, "{\"args\":{\"dumps\":{\"allocators\":{");
    for (size_t i = 0; i < n_local + we->n_globals; i++) {
        if (i > 0)
            put(b, ",", 1);
        put_node(b, nodes[i], 5, es);
    }
    if (n_local + we->n_globals > 0)
        put_indent(b, 4);
    puts_(b, "},\"allocators_graph\":[");
    for (size_t i = 0; i < n_edges; i++) {
        put_indent(b, 5);
        puts_(b, "{\"importance\":");
        put_int(b, edges[i].importance);
        puts_(b, ",\"source\":");
        put_hex(b, edges[i].source, false);
        puts_(b, ",\"target\":");
        put_hex(b, edges[i].target, false);
        puts_(b, i + 1 < n_edges ? ",\"type\":\"ownership\"}," : ",\"type\":\"ownership\"}");
    }
    if (n_edges > 0)
        put_indent(b, 4);
    puts_(b, "],\"level_of_detail\":");
    put_str(b, d->level_of_detail ? d->level_of_detail : "detailed");
    puts_(b, ",\"process_totals\":{");
    bool any = false;
    for (size_t i = 0; p != NULL && i < sizeof(totals) / sizeof(totals[0]); i++) {
        if (!(p->totals.present & totals[i].bit))
            continue;
        if (any)
            put(b, ",", 1);
        any = true;
        put_indent(b, 5);
        put_str(b, totals[i].name);
        put(b, ":", 1);
        put_hex(b, *(const uint64_t *)((const char *)&p->totals + totals[i].offset), false);
    }
    if (any)
        put_indent(b, 4);
    puts_(b, "}}},\"cat\":\"" MEMORY_INFRA_CAT "\",\"id\":");
    put_hex(b, d->id, true);
    puts_(b, ",\"name\":");
    put_str(b, d->trigger ? d->trigger : "periodic_interval");
    puts_(b, ",\"ph\":\"v\",\"pid\":");
    put_int(b, we->pid);
    puts_(b, ",\"ts\":");
    put_int(b, (long long)d->ts_us);
    put(b, "}", 1);
    rc = b->nomem ? -ENOMEM : 0;
out:
    free(nodes);
    free(es);
    free(edges);
    return rc;
}

/* Streams jansson's output into a FILE, indenting every line after the first by `indent`. */
typedef struct out {
    FILE *f;
    int indent;
} out_t;

static int out_cb(const char *buf, size_t size, void *data)
{
    out_t *o = data;
    static const char spaces[] = "        ";
    while (size > 0) {
        const char *nl = memchr(buf, '\n', size);
        size_t n = nl ? (size_t)(nl - buf) + 1 : size;
        if (fwrite(buf, 1, n, o->f) != n)
            return -1;
        if (nl && fwrite(spaces, 1, (size_t)o->indent, o->f) != (size_t)o->indent)
            return -1;
        buf += n;
        size -= n;
    }
    return 0;
}

#define DUMP_FLAGS (JSON_INDENT(1) | JSON_COMPACT | JSON_SORT_KEYS)

/* Writes the event text in b as the next element of traceEvents and empties b. */
static int emit_event(FILE *f, buf_t *b, bool *first)
{
    if (b->nomem)
        return -ENOMEM;
    fputs(*first ? "\n  " : ",\n  ", f);
    *first = false;
    size_t n = fwrite(b->p, 1, b->n, f);
    int rc = n == b->n ? 0 : -EIO;
    b->n = 0;
    return rc;
}

static json_t *metadata_json(const st_trace_t *t)
{
    json_t *meta = json_object(), *shm = json_object(), *dumps = json_array();
    json_t *tmp;
    if (!meta || !shm || !dumps)
        goto fail;
    for (size_t i = 0; i < t->n_dumps; i++) {
        const st_global_dump_t *d = &t->dumps[i];
        json_t *jd = json_object(), *w = json_array(), *pr = json_array();
        if (jd == NULL || json_array_append_new(dumps, jd) < 0 || w == NULL || pr == NULL) {
            json_decref(w);
            json_decref(pr);
            goto fail;
        }
        if (jset(jd, "warnings", w) < 0 || jset(jd, "problems", pr) < 0 ||
            jset(jd, "id", jhex(d->id, true)) < 0 ||
            jset(jd, "partial", json_boolean(d->partial)) < 0)
            goto fail;
        for (size_t k = 0; k < d->n_warnings; k++)
            if ((tmp = jstr(d->warnings[k])) == NULL || json_array_append_new(w, tmp) < 0)
                goto fail;
        for (size_t k = 0; k < d->n_problems; k++) {
            const st_problem_t *p = &d->problems[k];
            json_t *jp = json_object();
            if (jp == NULL || json_array_append_new(pr, jp) < 0 ||
                jset(jp, "pid", json_integer(p->pid)) < 0 || jset(jp, "path", jstr(p->path)) < 0 ||
                jset(jp, "errno", json_integer(p->err)) < 0 ||
                jset(jp, "error", jstr(st_strerror(p->err > 0 ? -p->err : p->err))) < 0)
                goto fail;
        }
    }
    if (jset(shm, "dumps", take(&dumps)) < 0 ||
        jset(shm, "version", json_integer(t->version)) < 0 ||
        (t->policy && jset(shm, "policy", jstr(t->policy)) < 0) ||
        (t->host && jset(shm, "host", jstr(t->host)) < 0) ||
        (t->kernel && jset(shm, "kernel", jstr(t->kernel)) < 0) ||
        jset(meta, "shmtrack", take(&shm)) < 0)
        goto fail;
    return meta;
fail:
    json_decref(dumps);
    json_decref(shm);
    json_decref(meta);
    return NULL;
}

static int cmp_proc_ptr(const void *a, const void *b)
{
    const st_process_dump_t *x = *(const st_process_dump_t *const *)a;
    const st_process_dump_t *y = *(const st_process_dump_t *const *)b;
    return (x->pid > y->pid) - (x->pid < y->pid);
}

typedef struct gref {
    const st_node_t *node;
    int carrier;
    size_t event;
} gref_t;

static int cmp_gref_name(const void *a, const void *b)
{
    return strcmp(((const gref_t *)a)->node->name, ((const gref_t *)b)->node->name);
}

static int cmp_gref_carrier(const void *a, const void *b)
{
    const gref_t *x = a, *y = b;
    if (x->carrier != y->carrier)
        return (x->carrier > y->carrier) - (x->carrier < y->carrier);
    return strcmp(x->node->name, y->node->name);
}

/* Event texts are built on a few threads, a round of EVENTS_PER_JOB consecutive events each, and
 * written in order: the file is the one a single thread writes, and memory stays bounded by a
 * round's text. */
enum { EVENTS_PER_JOB = 8, MAX_WRITERS = 4 };

typedef struct wjob {
    const st_global_dump_t *d;
    const wevent_t *ev;
    size_t n;                    /* events ev[0..n) */
    buf_t text;                  /* their texts, one after the other */
    size_t ends[EVENTS_PER_JOB]; /* where each one ends in text */
    int rc;
} wjob_t;

static void *build_job(void *arg)
{
    wjob_t *j = arg;
    j->text.n = 0;
    j->rc = 0;
    for (size_t i = 0; i < j->n && j->rc == 0; i++) {
        j->rc = event_text(&j->text, j->d, &j->ev[i]);
        j->ends[i] = j->text.n;
    }
    return NULL;
}

static int write_events(FILE *f, buf_t *b, const st_global_dump_t *d, const wevent_t *ev,
                        size_t n_ev, unsigned threads, bool *first)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    size_t nt = threads > 0 ? threads : cpus > 1 ? (size_t)cpus : 1;
    if (nt > MAX_WRITERS)
        nt = MAX_WRITERS;
    if (n_ev < 2 * EVENTS_PER_JOB && threads == 0)
        nt = 1;
    if (nt == 1) {
        for (size_t e = 0; e < n_ev; e++) {
            int rc = event_text(b, d, &ev[e]);
            if (rc < 0 || (rc = emit_event(f, b, first)) < 0)
                return rc;
        }
        return 0;
    }
    wjob_t jobs[MAX_WRITERS];
    pthread_t tid[MAX_WRITERS];
    bool started[MAX_WRITERS];
    int rc = 0;
    memset(jobs, 0, sizeof(jobs));
    for (size_t e = 0; e < n_ev && rc == 0;) {
        size_t used = 0;
        for (; used < nt && e < n_ev; used++) {
            size_t n = n_ev - e < EVENTS_PER_JOB ? n_ev - e : EVENTS_PER_JOB;
            jobs[used].d = d;
            jobs[used].ev = ev + e;
            jobs[used].n = n;
            e += n;
        }
        for (size_t i = 1; i < used; i++)
            started[i] = pthread_create(&tid[i], NULL, build_job, &jobs[i]) == 0;
        build_job(&jobs[0]);
        for (size_t i = 1; i < used; i++) {
            if (started[i])
                pthread_join(tid[i], NULL);
            else
                build_job(&jobs[i]);
        }
        for (size_t i = 0; i < used && rc == 0; i++) {
            wjob_t *j = &jobs[i];
            if ((rc = j->rc) == 0 && j->text.nomem)
                rc = -ENOMEM;
            for (size_t k = 0, start = 0; k < j->n && rc == 0; k++) {
                fputs(*first ? "\n  " : ",\n  ", f);
                *first = false;
                if (fwrite(j->text.p + start, 1, j->ends[k] - start, f) != j->ends[k] - start)
                    rc = -EIO;
                start = j->ends[k];
            }
        }
    }
    for (size_t i = 0; i < nt; i++)
        free(jobs[i].text.p);
    return rc;
}

/* The "v" events of one dump, in pid order. */
static int write_dump(FILE *f, buf_t *b, const st_global_dump_t *d, unsigned threads, bool *first)
{
    const st_process_dump_t **procs = NULL;
    gref_t *g = NULL;
    const st_node_t **gnodes = NULL;
    wevent_t *ev = NULL;
    size_t n_ev = 0;
    int rc = -ENOMEM;
    if (d->n_procs > 0 && (procs = malloc(d->n_procs * sizeof(*procs))) == NULL)
        goto out;
    if (d->n_globals > 0 && ((g = malloc(d->n_globals * sizeof(*g))) == NULL ||
                             (gnodes = malloc(d->n_globals * sizeof(*gnodes))) == NULL))
        goto out;
    for (size_t i = 0; i < d->n_procs; i++)
        procs[i] = &d->procs[i];
    if (d->n_procs > 1)
        qsort(procs, d->n_procs, sizeof(*procs), cmp_proc_ptr);
    for (size_t i = 0; i < d->n_globals; i++)
        g[i] = (gref_t){&d->globals[i], d->global_carrier[i], 0};

    if (d->n_procs > 0) {
        /* Each global goes to its carrier's event, or the lowest pid's if it has none. */
        if ((ev = calloc(d->n_procs, sizeof(*ev))) == NULL)
            goto out;
        n_ev = d->n_procs;
        for (size_t i = 0; i < n_ev; i++)
            ev[i] = (wevent_t){procs[i]->pid, procs[i], NULL, 0};
        for (size_t i = 0; i < d->n_globals; i++) {
            size_t lo = 0, hi = n_ev;
            while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (ev[mid].pid < g[i].carrier)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            g[i].event = (lo < n_ev && ev[lo].pid == g[i].carrier) ? lo : 0;
        }
        if (d->n_globals > 1)
            qsort(g, d->n_globals, sizeof(*g), cmp_gref_name);
    } else if (d->n_globals > 0) {
        /* No process dump at all: events of their own for the carriers. */
        qsort(g, d->n_globals, sizeof(*g), cmp_gref_carrier);
        if ((ev = calloc(d->n_globals, sizeof(*ev))) == NULL)
            goto out;
        for (size_t i = 0; i < d->n_globals; i++) {
            if (n_ev == 0 || ev[n_ev - 1].pid != g[i].carrier)
                ev[n_ev++] = (wevent_t){g[i].carrier, NULL, NULL, 0};
            g[i].event = n_ev - 1;
        }
    }
    /* Bucket the globals by event, keeping name order inside each. */
    for (size_t i = 0; i < d->n_globals; i++)
        ev[g[i].event].n_globals++;
    size_t off = 0;
    for (size_t e = 0; e < n_ev; e++) {
        ev[e].globals = gnodes != NULL ? gnodes + off : NULL;
        off += ev[e].n_globals;
        ev[e].n_globals = 0;
    }
    for (size_t i = 0; i < d->n_globals; i++) {
        wevent_t *w = &ev[g[i].event];
        w->globals[w->n_globals++] = g[i].node;
    }
    rc = write_events(f, b, d, ev, n_ev, threads, first);
out:
    free(procs);
    free(g);
    free(gnodes);
    free(ev);
    return rc;
}

typedef struct pname {
    int pid;
    size_t order;
    const char *name;
} pname_t;

static int cmp_pname(const void *a, const void *b)
{
    const pname_t *x = a, *y = b;
    if (x->pid != y->pid)
        return (x->pid > y->pid) - (x->pid < y->pid);
    return (x->order > y->order) - (x->order < y->order);
}

/* One process_name event per pid: the first name the pid has in dump order. */
static int write_names(FILE *f, buf_t *b, const st_trace_t *t, bool *first)
{
    size_t n = 0, cap = 0;
    pname_t *names = NULL;
    int rc = 0;
    for (size_t i = 0; i < t->n_dumps; i++) {
        const st_global_dump_t *d = &t->dumps[i];
        for (size_t k = 0; k < d->n_procs; k++) {
            if (d->procs[k].name == NULL)
                continue;
            if (st__array_grow((void **)&names, &cap, n + 1, sizeof(*names)) < 0) {
                rc = -ENOMEM;
                goto out;
            }
            names[n] = (pname_t){d->procs[k].pid, n, d->procs[k].name};
            n++;
        }
    }
    if (n > 1)
        qsort(names, n, sizeof(*names), cmp_pname);
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && names[i].pid == names[i - 1].pid)
            continue;
        puts_(b, "{\"args\":{\"name\":");
        put_str(b, names[i].name);
        puts_(b, "},\"name\":\"process_name\",\"ph\":\"M\",\"pid\":");
        put_int(b, names[i].pid);
        put(b, "}", 1);
        if ((rc = emit_event(f, b, first)) < 0)
            goto out;
    }
out:
    free(names);
    return rc;
}

int st_trace_write_stream(const st_trace_t *trace, FILE *f, st_error_t *err)
{
    return st_trace_write_stream_threads(trace, f, 0, err);
}

int st_trace_write_stream_threads(const st_trace_t *trace, FILE *f, unsigned threads,
                                  st_error_t *err)
{
    reader_t r = {.err = err, .ev = -1}; /* for fail() only */
    out_t o = {f, 1};
    buf_t b = {0};
    bool first = true;
    int rc = 0;
    json_t *meta = metadata_json(trace);
    if (meta == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    fputs("{\n \"metadata\":", f);
    rc = json_dump_callback(meta, out_cb, &o, DUMP_FLAGS) < 0 ? -EIO : 0;
    json_decref(meta);
    if (rc < 0)
        goto out;
    fputs(",\n \"traceEvents\":[", f);
    if ((rc = write_names(f, &b, trace, &first)) < 0)
        goto out;
    for (size_t i = 0; i < trace->n_dumps; i++)
        if ((rc = write_dump(f, &b, &trace->dumps[i], threads, &first)) < 0)
            goto out;
    fputs(first ? "]\n}\n" : "\n ]\n}\n", f);
    if (fflush(f) != 0 || ferror(f))
        rc = errno ? -errno : -EIO;
out:
    free(b.p);
    if (rc == -ENOMEM)
        fail(&r, rc, "out of memory");
    else if (rc < 0)
        fail(&r, rc, "write: %s", st_strerror(rc));
    return rc;
}

int st_trace_write_file(const st_trace_t *trace, const char *path, st_error_t *err)
{
    return st_trace_write_file_ex(trace, path, ST_WRITE_FSYNC, err);
}

/* A name beside path that nobody else uses (O_EXCL): *tmp (malloc'd) and its fd, or < 0. */
static int create_beside(const char *path, const char *what, reader_t *r, char **tmp)
{
    static unsigned counter;
    int fd = -1;
    *tmp = NULL;
    for (int tries = 0; fd < 0; tries++) {
        unsigned n = __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED);
        free(*tmp);
        if (asprintf(tmp, "%s.%s.%d.%u", path, what, (int)getpid(), n) < 0) {
            *tmp = NULL;
            return fail(r, -ENOMEM, "out of memory");
        }
        fd = open(*tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && (errno != EEXIST || tries > 100)) {
            int rc = -errno;
            fail(r, rc, "cannot create %s: %s", *tmp, strerror(-rc));
            free(*tmp);
            *tmp = NULL;
            return rc;
        }
    }
    return fd;
}

/* Makes the rename of a file into dir_of durable (best effort: some filesystems refuse fsync on
 * directories). path is the file's name; it is cut to its directory here. */
static void sync_dir_of(char *path)
{
    char *slash = strrchr(path, '/');
    if (slash != NULL)
        *(slash == path ? slash + 1 : slash) = '\0';
    int dfd = open(slash ? path : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
}

int st_trace_write_file_ex(const st_trace_t *trace, const char *path, st_write_sync_t sync,
                           st_error_t *err)
{
    reader_t r = {.err = err, .ev = -1};
    char *tmp = NULL;
    FILE *f = NULL;
    int fd = -1, rc = 0;
    set_source(err, path);
    if (strcmp(path, "-") == 0) {
        errno = 0;
        return st_trace_write_stream(trace, stdout, err);
    }
    if (st_file_is_special(path)) {
        /* /dev/null, a FIFO...: written in place; a rename would replace the device itself */
        if ((fd = open(path, O_WRONLY | O_CLOEXEC)) < 0 || (f = fdopen(fd, "w")) == NULL) {
            rc = -errno;
            if (fd >= 0)
                close(fd);
            fail(&r, rc, "cannot open %s: %s", path, strerror(-rc));
            goto out;
        }
        setvbuf(f, NULL, _IOFBF, 1 << 20);
        errno = 0;
        rc = st_trace_write_stream(trace, f, err);
        int closed = fclose(f);
        f = NULL;
        if (rc == 0 && closed != 0) {
            rc = -errno;
            fail(&r, rc, "close: %s", strerror(-rc));
        }
        goto out;
    }
    struct stat old;
    bool durable = sync == ST_WRITE_FSYNC ||
                   (stat(path, &old) == 0 && S_ISREG(old.st_mode) && old.st_size > 0);
    /* A unique name next to the target; O_EXCL so two writers never share it. */
    if ((fd = create_beside(path, "tmp", &r, &tmp)) < 0) {
        rc = fd;
        goto out;
    }
    if ((f = fdopen(fd, "w")) == NULL) {
        rc = -errno;
        close(fd);
        fail(&r, rc, "fdopen: %s", strerror(-rc));
        goto out;
    }
    setvbuf(f, NULL, _IOFBF, 1 << 20);
    errno = 0;
    if ((rc = st_trace_write_stream(trace, f, err)) < 0)
        goto out;
    if (durable && fsync(fileno(f)) < 0) {
        rc = -errno;
        fail(&r, rc, "fsync: %s", strerror(-rc));
        goto out;
    }
    int closed = fclose(f);
    f = NULL;
    if (closed != 0) {
        rc = -errno;
        fail(&r, rc, "close: %s", strerror(-rc));
        goto out;
    }
    if (rename(tmp, path) < 0) {
        rc = -errno;
        fail(&r, rc, "rename: %s", strerror(-rc));
        goto out;
    }
    if (durable) /* the rename too */
        sync_dir_of(tmp);
    free(tmp);
    tmp = NULL;
out:
    if (f != NULL)
        fclose(f);
    if (tmp != NULL)
        unlink(tmp);
    free(tmp);
    return rc;
}

/* ---- spool: a trace written as its dumps come ---- */

typedef struct named_pid {
    int pid;
    UT_hash_handle hh;
} named_pid_t;

struct st_trace_spool {
    char *path;         /* the trace it becomes */
    char *tmp;          /* the dumps' events so far, each with its separator */
    FILE *f;            /* on tmp */
    st_trace_t *ids;    /* per dump added: id, time, partial, warnings, problems, and the processes
                         * named there first (write_names takes a pid's first name) */
    named_pid_t *named; /* the pids some dump in ids names */
    buf_t b;
    bool first;  /* no event written yet */
    bool broken; /* a dump half written could not be taken back: the file is not a trace */
};

size_t st_trace_spool_dumps(const st_trace_spool_t *s)
{
    return s->ids->n_dumps;
}

void st_trace_spool_free(st_trace_spool_t *s)
{
    if (s == NULL)
        return;
    if (s->f != NULL)
        fclose(s->f);
    if (s->tmp != NULL)
        unlink(s->tmp);
    free(s->tmp);
    free(s->path);
    free(s->b.p);
    st_trace_free(s->ids);
    named_pid_t *n, *tmp;
    HASH_ITER(hh, s->named, n, tmp)
    {
        HASH_DEL(s->named, n);
        free(n);
    }
    free(s);
}

int st_trace_spool_open(const char *path, st_trace_spool_t **out, st_error_t *err)
{
    reader_t r = {.err = err, .ev = -1};
    set_source(err, path);
    *out = NULL;
    st_trace_spool_t *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->path = strdup(path)) == NULL || st_trace_new(&s->ids) < 0) {
        st_trace_spool_free(s);
        return fail(&r, -ENOMEM, "out of memory");
    }
    int fd = create_beside(path, "spool", &r, &s->tmp);
    if (fd < 0) {
        st_trace_spool_free(s);
        return fd;
    }
    if ((s->f = fdopen(fd, "w+")) == NULL) {
        int rc = -errno;
        close(fd);
        st_trace_spool_free(s);
        return fail(&r, rc, "fdopen: %s", strerror(-rc));
    }
    setvbuf(s->f, NULL, _IOFBF, 1 << 20);
    fputs("{\n \"traceEvents\":[", s->f);
    s->first = true;
    *out = s;
    return 0;
}

/* What the metadata and the process names need of d, kept in s->ids: made apart and moved in
 * whole, or not at all. */
static int spool_remember(st_trace_spool_t *s, const st_global_dump_t *d)
{
    st_trace_t *one = NULL;
    st_global_dump_t *m = NULL;
    int rc = st_trace_new(&one);
    if (rc == 0)
        rc = st_trace_add_dump(one, d->id, d->ts_us, &m);
    for (size_t i = 0; rc == 0 && i < d->n_warnings; i++)
        rc = st_dump_add_warning(m, "%s", d->warnings[i]);
    for (size_t i = 0; rc == 0 && i < d->n_problems; i++)
        rc = st_dump_add_problem(m, d->problems[i].pid, d->problems[i].path, d->problems[i].err);
    for (size_t i = 0; rc == 0 && i < d->n_procs; i++) {
        named_pid_t *n = NULL;
        int pid = d->procs[i].pid;
        if (d->procs[i].name == NULL)
            continue;
        HASH_FIND_INT(s->named, &pid, n);
        if (n == NULL)
            rc = st_dump_add_process(m, pid, d->procs[i].name, NULL);
    }
    if (rc == 0) {
        m->partial = d->partial;
        rc = st_trace_move_dump(s->ids, one, 0, NULL);
    }
    /* the pids named now: after the move, so that a failure leaves the set as it was */
    const st_global_dump_t *kept = rc == 0 ? &s->ids->dumps[s->ids->n_dumps - 1] : NULL;
    for (size_t i = 0; kept != NULL && i < kept->n_procs; i++) {
        named_pid_t *n = malloc(sizeof(*n));
        if (n == NULL) { /* the next dump names it again: the same output, more memory */
            rc = 0;
            break;
        }
        n->pid = kept->procs[i].pid;
        HASH_ADD_INT(s->named, pid, n);
    }
    st_trace_free(one);
    return rc;
}

int st_trace_spool_add(st_trace_spool_t *s, const st_global_dump_t *d, st_error_t *err)
{
    reader_t r = {.err = err, .ev = -1};
    set_source(err, s->tmp);
    if (s->broken)
        return fail(&r, -EIO, "a dump before could not be taken back: no more dumps");
    long at = ftell(s->f);
    bool was_first = s->first;
    errno = 0;
    int rc = at < 0 ? -errno : write_dump(s->f, &s->b, d, 0, &s->first);
    if (rc == 0 && (fflush(s->f) != 0 || ferror(s->f)))
        rc = -EIO;
    if (rc == -EIO && errno != 0)
        rc = -errno; /* the write's own reason (ENOSPC, EDQUOT...) */
    if (rc == 0)
        rc = spool_remember(s, d);
    if (rc < 0 && at >= 0) { /* never half a dump: the dumps before it stay whole */
        s->first = was_first;
        clearerr(s->f);
        if (fseek(s->f, at, SEEK_SET) != 0 || ftruncate(fileno(s->f), at) != 0) {
            s->broken = true;
            return fail(&r, rc, "%s, and the dump half written cannot be taken back: %s",
                        st_strerror(rc), strerror(errno));
        }
    }
    if (rc == -ENOMEM)
        return fail(&r, rc, "out of memory");
    if (rc < 0)
        return fail(&r, rc, "write: %s", st_strerror(rc));
    return 0;
}

int st_trace_spool_commit(st_trace_spool_t *s, const st_trace_t *meta, st_write_sync_t sync,
                          st_error_t *err)
{
    reader_t r = {.err = err, .ev = -1};
    set_source(err, s->path);
    if (s->broken)
        return fail(&r, -EIO, "its spool holds a dump half written (reported when it was added)");
    s->ids->version = meta->version;
    if (st_trace_set_meta(s->ids, meta->policy, meta->host, meta->kernel) < 0)
        return fail(&r, -ENOMEM, "out of memory");
    /* the spool becomes the trace: the process names and the metadata after the events (the
     * reader takes them there), then the rename */
    struct stat old;
    bool durable = sync == ST_WRITE_FSYNC ||
                   (stat(s->path, &old) == 0 && S_ISREG(old.st_mode) && old.st_size > 0);
    out_t o = {s->f, 1};
    errno = 0;
    int rc = fseek(s->f, 0, SEEK_END) != 0 ? -errno : write_names(s->f, &s->b, s->ids, &s->first);
    json_t *jm = rc == 0 ? metadata_json(s->ids) : NULL;
    if (rc == 0 && jm == NULL)
        rc = -ENOMEM;
    if (rc == 0) {
        fputs(s->first ? "],\n \"metadata\":" : "\n ],\n \"metadata\":", s->f);
        rc = json_dump_callback(jm, out_cb, &o, DUMP_FLAGS) < 0 ? -EIO : 0;
        fputs("\n}\n", s->f);
    }
    json_decref(jm);
    if (rc == 0 && (fflush(s->f) != 0 || ferror(s->f)))
        rc = errno ? -errno : -EIO;
    if (rc == 0 && durable && fsync(fileno(s->f)) < 0)
        rc = -errno;
    if (rc == 0) {
        int closed = fclose(s->f);
        s->f = NULL;
        if (closed != 0)
            rc = -errno;
    }
    if (rc == 0 && rename(s->tmp, s->path) < 0)
        rc = -errno;
    if (rc == -ENOMEM)
        return fail(&r, rc, "out of memory");
    if (rc < 0)
        return fail(&r, rc, "write: %s", st_strerror(rc));
    if (durable)
        sync_dir_of(s->tmp);
    free(s->tmp); /* renamed: nothing for st_trace_spool_free to remove */
    s->tmp = NULL;
    return 0;
}
