/* SPDX-License-Identifier: MIT
 *
 * The /metrics text; see metrics.h. The report JSON is parsed with jansson (this file is JSON
 * input like the trace reader), and only its last dump is exposed: Prometheus samples the
 * present, the page and /api/dumps keep the history. Families are written in a fixed order with
 * HELP and TYPE lines, one sample per line, no timestamps.
 */
#include "metrics.h"

#include "error.h"
#include "strbuf.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* A label value with '\\', '"' and newline escaped (the exposition format's three escapes). */
static void label_value(st_strbuf_t *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            st_strbuf_puts(b, "\\\\");
        else if (*s == '"')
            st_strbuf_puts(b, "\\\"");
        else if (*s == '\n')
            st_strbuf_puts(b, "\\n");
        else
            st_strbuf_putc(b, *s);
    }
}

static void family(st_strbuf_t *b, const char *name, const char *type, const char *help)
{
    st_strbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static uint64_t u64(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v) : 0;
}

static const char *str(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "";
}

static int load(const char *report_json, size_t len, json_t **root, json_t **dumps)
{
    *root = json_loadb(report_json, len, JSON_REJECT_DUPLICATES, NULL);
    *dumps = json_object_get(*root, "dumps");
    if (!json_is_array(*dumps)) {
        json_decref(*root);
        *root = NULL;
        return ST_EFORMAT;
    }
    return 0;
}

static uint64_t dump_id(const json_t *dump)
{
    const char *id = json_string_value(json_object_get(dump, "id"));
    return id ? strtoull(id, NULL, 16) : 0; /* "0x.." or bare hex, as in the trace */
}

int st_metrics_count_new(const char *report_json, size_t len, uint64_t *max_id, uint64_t *n_new,
                         uint64_t *n_new_partial)
{
    json_t *root = NULL, *dumps = NULL, *d = NULL;
    size_t i;
    uint64_t top = *max_id;
    int rc = load(report_json, len, &root, &dumps);
    *n_new = *n_new_partial = 0;
    if (rc != 0)
        return rc;
    json_array_foreach(dumps, i, d)
    {
        uint64_t id = dump_id(d);
        if (id <= *max_id)
            continue;
        (*n_new)++;
        if (json_is_true(json_object_get(d, "partial")))
            (*n_new_partial)++;
        if (id > top)
            top = id;
    }
    *max_id = top;
    json_decref(root);
    return 0;
}

int st_metrics_render(const char *report_json, size_t len, char **out, size_t *out_len)
{
    st_strbuf_t b = ST_STRBUF_INIT;
    json_t *root = NULL, *dumps = NULL, *last = NULL, *v = NULL;
    size_t i;
    int rc = load(report_json, len, &root, &dumps);

    *out = NULL;
    if (rc != 0)
        return rc;
    last = json_array_get(dumps, json_array_size(dumps) ? json_array_size(dumps) - 1 : 0);
    json_t *procs = json_object_get(last, "processes");
    json_t *objects = json_object_get(last, "objects");
    json_t *totals = json_object_get(last, "totals");
    if (last && (!json_is_array(procs) || !json_is_array(objects) || !json_is_object(totals))) {
        rc = ST_EFORMAT;
        goto out;
    }

    static const struct {
        const char *metric, *field, *help;
    } proc_families[] = {
        {"shmtrack_process_shared_owned_bytes", "shared_owned_bytes",
         "Shared memory charged to the process after ownership (effective size), latest dump."},
        {"shmtrack_process_shared_mapped_bytes", "shared_mapped_bytes",
         "Shared memory the process maps, latest dump."},
        {"shmtrack_process_resident_bytes", "rss_bytes",
         "Resident set of the process, latest dump."},
        {"shmtrack_process_pss_bytes", "pss_bytes", "Proportional set size, latest dump."},
        {"shmtrack_process_private_footprint_bytes", "private_footprint_bytes",
         "RssAnon + VmSwap of the process, latest dump."},
    };
    for (size_t f = 0; f < sizeof(proc_families) / sizeof(proc_families[0]); f++) {
        family(&b, proc_families[f].metric, "gauge", proc_families[f].help);
        json_array_foreach(procs, i, v)
        {
            st_strbuf_printf(&b, "%s{pid=\"%" PRIu64 "\",name=\"", proc_families[f].metric,
                             u64(v, "pid"));
            label_value(&b, str(v, "name"));
            st_strbuf_printf(&b, "\"} %" PRIu64 "\n", u64(v, proc_families[f].field));
        }
    }

    family(&b, "shmtrack_object_resident_bytes", "gauge",
           "Resident bytes of each shared memory object, counted once; owner is the pid charged "
           "most (0: nobody), latest dump.");
    json_array_foreach(objects, i, v)
    {
        st_strbuf_puts(&b, "shmtrack_object_resident_bytes{key=\"");
        label_value(&b, str(v, "key"));
        st_strbuf_puts(&b, "\",kind=\"");
        label_value(&b, str(v, "kind"));
        st_strbuf_puts(&b, "\",name=\"");
        label_value(&b, str(v, "name"));
        st_strbuf_printf(&b, "\",owner=\"%" PRIu64 "\"} %" PRIu64 "\n", u64(v, "owner_pid"),
                         u64(v, "size"));
    }

    family(&b, "shmtrack_shared_resident_unique_bytes", "gauge",
           "Resident shared memory of all objects, each counted once, latest dump.");
    st_strbuf_printf(&b, "shmtrack_shared_resident_unique_bytes %" PRIu64 "\n",
                     u64(totals, "shared_resident_unique"));
    family(&b, "shmtrack_unattributed_bytes", "gauge",
           "Resident shared memory no live process holds, latest dump (0 when healthy).");
    st_strbuf_printf(&b, "shmtrack_unattributed_bytes %" PRIu64 "\n", u64(totals, "unattributed"));
    family(&b, "shmtrack_dump_partial", "gauge", "1 when the latest dump is partial.");
    st_strbuf_printf(&b, "shmtrack_dump_partial %d\n",
                     json_is_true(json_object_get(last, "partial")) ? 1 : 0);
    family(&b, "shmtrack_dump_warnings", "gauge", "Warnings attached to the latest dump.");
    st_strbuf_printf(&b, "shmtrack_dump_warnings %zu\n",
                     json_array_size(json_object_get(last, "warnings")));
    rc = st_strbuf_error(&b);
    if (rc == 0) {
        *out = st_strbuf_steal(&b, out_len);
        rc = *out ? 0 : -ENOMEM;
    }
out:
    st_strbuf_free(&b);
    json_decref(root);
    return rc;
}

int st_metrics_render_state(const st_metrics_state_t *state, char **out, size_t *out_len)
{
    st_strbuf_t b = ST_STRBUF_INIT;
    family(&b, "shmtrack_dumps_total", "counter", "Global dumps taken or loaded by this server.");
    st_strbuf_printf(&b, "shmtrack_dumps_total %" PRIu64 "\n", state->dumps_total);
    family(&b, "shmtrack_partial_dumps_total", "counter",
           "Global dumps that were partial (a process could not report).");
    st_strbuf_printf(&b, "shmtrack_partial_dumps_total %" PRIu64 "\n", state->partial_dumps_total);
    family(&b, "shmtrack_dump_errors_total", "counter",
           "Dumps or trace reloads that failed (the previous data stays served).");
    st_strbuf_printf(&b, "shmtrack_dump_errors_total %" PRIu64 "\n", state->publish_errors_total);
    family(&b, "shmtrack_dump_duration_seconds", "gauge",
           "Time taken to produce the latest data (dump or trace load, graph, summary).");
    st_strbuf_printf(&b, "shmtrack_dump_duration_seconds %.6f\n", state->dump_duration_seconds);

    *out = st_strbuf_steal(&b, out_len);
    return *out ? 0 : -ENOMEM;
}
