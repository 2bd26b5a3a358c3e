/* SPDX-License-Identifier: MIT
 *
 * Summaries as JSON: the `shmtrack report --format json` schema of shared/DESIGN.md §5 plus the
 * additive fields documented in docs/report.md ("label", "creator_pid" per object; "partial",
 * "warnings", "problems" per dump). Kept apart from summary.c so that the builder stays free of
 * jansson; the web view embeds exactly the value built here.
 *
 * Keys come in the schema's order (jansson keeps insertion order), so the output is
 * deterministic and reads like the schema. Unknown values are JSON null, never 0.
 */
#include "summary.h"

#include "error.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

/* Sets key to value (stolen) and records failure in *ok; value may be NULL after a failed
 * json_*() constructor, which counts as failure. */
static void put(json_t *obj, const char *key, json_t *value, bool *ok)
{
    if (value == NULL || json_object_set_new(obj, key, value) < 0)
        *ok = false;
}

static void append(json_t *arr, json_t *value, bool *ok)
{
    if (value == NULL || json_array_append_new(arr, value) < 0)
        *ok = false;
}

static json_t *uint_json(uint64_t v)
{
    return json_integer(v > (uint64_t)INT64_MAX ? (json_int_t)INT64_MAX : (json_int_t)v);
}

static json_t *pid_or_null(int pid)
{
    return pid > 0 ? json_integer(pid) : json_null();
}

static json_t *string_or_null(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

static json_t *total_or_null(const st_summary_process_t *p, unsigned bit, uint64_t v)
{
    return (p->present & bit) ? uint_json(v) : json_null();
}

static json_t *process_json(const st_summary_process_t *p, bool *ok)
{
    json_t *o = json_object();
    if (o == NULL) {
        *ok = false;
        return NULL;
    }
    put(o, "pid", json_integer(p->pid), ok);
    put(o, "name", string_or_null(p->name), ok);
    put(o, "shared_owned_bytes", uint_json(p->shared_owned_bytes), ok);
    put(o, "shared_mapped_bytes", uint_json(p->shared_mapped_bytes), ok);
    put(o, "rss_bytes", total_or_null(p, ST_SUMMARY_HAS_RSS, p->rss_bytes), ok);
    put(o, "pss_bytes", total_or_null(p, ST_SUMMARY_HAS_PSS, p->pss_bytes), ok);
    put(o, "private_footprint_bytes",
        total_or_null(p, ST_SUMMARY_HAS_PRIVATE, p->private_footprint_bytes), ok);
    return o;
}

static json_t *object_json(const st_summary_object_t *so, bool *ok)
{
    json_t *o = json_object();
    json_t *holders = json_array();
    if (o == NULL || holders == NULL) {
        json_decref(o);
        json_decref(holders);
        *ok = false;
        return NULL;
    }
    put(o, "key", json_string(so->key), ok);
    put(o, "kind", json_string(so->kind), ok);
    put(o, "name", json_string(so->name), ok);
    put(o, "size", uint_json(so->size), ok);
    put(o, "virtual_size", uint_json(so->virtual_size), ok);
    put(o, "swapped_size", uint_json(so->swapped_size), ok);
    put(o, "owner_pid", pid_or_null(so->owner_pid), ok);
    for (size_t i = 0; i < so->n_holders; i++) {
        const st_summary_holder_t *h = &so->holders[i];
        json_t *hj = json_object();
        if (hj == NULL) {
            *ok = false;
            break;
        }
        put(hj, "pid", json_integer(h->pid), ok);
        put(hj, "importance", json_integer(h->importance), ok);
        put(hj, "effective_size", uint_json(h->effective_size), ok);
        append(holders, hj, ok);
    }
    put(o, "holders", holders, ok);
    put(o, "label", string_or_null(so->label), ok);
    put(o, "creator_pid", pid_or_null(so->creator_pid), ok);
    return o;
}

int st_summary_to_json(const st_summary_t *s, json_t **out)
{
    bool ok = true;
    char id[24];
    snprintf(id, sizeof(id), "0x%" PRIx64, s->id);

    json_t *d = json_object();
    json_t *procs = json_array();
    json_t *objects = json_array();
    json_t *totals = json_object();
    json_t *warnings = json_array();
    json_t *problems = json_array();
    if (d == NULL || procs == NULL || objects == NULL || totals == NULL || warnings == NULL ||
        problems == NULL) {
        json_decref(d);
        json_decref(procs);
        json_decref(objects);
        json_decref(totals);
        json_decref(warnings);
        json_decref(problems);
        return -ENOMEM;
    }
    for (size_t i = 0; i < s->n_procs; i++)
        append(procs, process_json(&s->procs[i], &ok), &ok);
    for (size_t i = 0; i < s->n_objects; i++)
        append(objects, object_json(&s->objects[i], &ok), &ok);
    put(totals, "shared_resident_unique", uint_json(s->shared_resident_unique), &ok);
    put(totals, "attributed", uint_json(s->attributed), &ok);
    put(totals, "unattributed", uint_json(s->unattributed), &ok);
    for (size_t i = 0; i < s->n_warnings; i++)
        append(warnings, json_string(s->warnings[i]), &ok);
    for (size_t i = 0; i < s->n_problems; i++) {
        const st_summary_problem_t *p = &s->problems[i];
        json_t *pj = json_object();
        if (pj == NULL) {
            ok = false;
            break;
        }
        put(pj, "pid", pid_or_null(p->pid), &ok);
        put(pj, "path", json_string(p->path), &ok);
        put(pj, "error", json_string(st_strerror(p->err > 0 ? -p->err : p->err)), &ok);
        append(problems, pj, &ok);
    }

    put(d, "id", json_string(id), &ok);
    put(d, "ts", uint_json(s->ts_us), &ok);
    put(d, "processes", procs, &ok);
    put(d, "objects", objects, &ok);
    put(d, "totals", totals, &ok);
    put(d, "partial", json_boolean(s->partial), &ok);
    put(d, "warnings", warnings, &ok);
    put(d, "problems", problems, &ok);
    if (!ok) {
        json_decref(d);
        return -ENOMEM;
    }
    *out = d;
    return 0;
}

int st_summaries_to_json(st_summary_t *const *summaries, size_t n, json_t **out)
{
    bool ok = true;
    json_t *root = json_object();
    json_t *dumps = json_array();
    if (root == NULL || dumps == NULL) {
        json_decref(root);
        json_decref(dumps);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n && ok; i++) {
        json_t *d = NULL;
        if (st_summary_to_json(summaries[i], &d) < 0)
            ok = false;
        else
            append(dumps, d, &ok);
    }
    put(root, "dumps", dumps, &ok);
    if (!ok) {
        json_decref(root);
        return -ENOMEM;
    }
    *out = root;
    return 0;
}

int st_trace_summary_json(const st_trace_t *trace, json_t **out)
{
    int rc = 0;
    st_summary_t **all = NULL;
    size_t n = 0;
    if (trace->n_dumps > 0 && (all = calloc(trace->n_dumps, sizeof(*all))) == NULL)
        return -ENOMEM;
    for (; n < trace->n_dumps; n++)
        if ((rc = st_summary_compute(&trace->dumps[n], &all[n])) < 0)
            goto out;
    rc = st_summaries_to_json(all, n, out);
out:
    for (size_t i = 0; i < n; i++)
        st_summary_free(all[i]);
    free(all);
    return rc;
}
