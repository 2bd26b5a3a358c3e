/* SPDX-License-Identifier: MIT
 *
 * The three renderings of report summaries (see report.h, docs/report.md).
 *
 * The table is built in memory first (cells as strings) so that every column can be as wide as
 * its widest cell: numbers right-aligned, text left-aligned, two spaces between columns. The CSV
 * has one header and a `section` column (process, object, holder, totals, warning, problem)
 * because a spreadsheet or `awk -F,` reads one rectangular table more easily than several. JSON
 * goes through summary_json.c so that the report and the web view cannot disagree.
 */
#include "report.h"

#include "error.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const format_names[] = {
#define XX(e, s) s,
    ST_REPORT_FORMAT_MAP(XX)
#undef XX
};

const char *st_report_format_name(st_report_format_t format)
{
    return (unsigned)format < ST_REPORT_FORMAT_COUNT ? format_names[format] : "?";
}

int st_report_format_parse(const char *s, st_report_format_t *out)
{
    for (unsigned i = 0; i < ST_REPORT_FORMAT_COUNT; i++) {
        if (strcmp(s, format_names[i]) == 0) {
            *out = (st_report_format_t)i;
            return 0;
        }
    }
    return ST_EUSAGE;
}

void st_report_human(uint64_t v, char *buf, size_t len)
{
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
    if (v < 1024) {
        snprintf(buf, len, "%" PRIu64 " B", v);
        return;
    }
    size_t u = 0;
    uint64_t unit = 1024;
    while (u + 1 < sizeof(units) / sizeof(units[0]) && v / unit >= 1024) {
        unit *= 1024;
        u++;
    }
    /* Integer arithmetic: whole units and tenths, rounded half up. r < unit <= 2^40, so
     * r * 10 cannot overflow. */
    uint64_t whole = v / unit, r = v % unit;
    uint64_t tenths = (r * 10 + unit / 2) / unit;
    if (tenths == 10) {
        whole++;
        tenths = 0;
    }
    if (whole == 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
        whole = 1;
        u++;
    }
    snprintf(buf, len, "%" PRIu64 ".%" PRIu64 " %s", whole, tenths, units[u]);
}

/* ---- the table ---- */

#define MAX_COLS 9

typedef struct table {
    size_t n_cols;
    const char *head[MAX_COLS];
    bool right[MAX_COLS];
    char **cells; /* n_rows * n_cols, row-major */
    size_t n_rows, cap_rows;
    bool failed; /* an allocation failed; printing is skipped and -ENOMEM returned */
} table_t;

static void table_row(table_t *t)
{
    if (t->failed)
        return;
    if (t->n_rows == t->cap_rows) {
        size_t ncap = t->cap_rows ? t->cap_rows * 2 : 16;
        char **p = realloc(t->cells, ncap * t->n_cols * sizeof(char *));
        if (p == NULL) {
            t->failed = true;
            return;
        }
        memset(p + t->cap_rows * t->n_cols, 0, (ncap - t->cap_rows) * t->n_cols * sizeof(char *));
        t->cells = p;
        t->cap_rows = ncap;
    }
    t->n_rows++;
}

/* Sets cell col of the last row. */
__attribute__((format(printf, 3, 4))) static void table_set(table_t *t, size_t col, const char *fmt,
                                                            ...)
{
    if (t->failed)
        return;
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0) {
        t->failed = true;
        return;
    }
    t->cells[(t->n_rows - 1) * t->n_cols + col] = s;
}

static void table_free(table_t *t)
{
    for (size_t i = 0; i < t->n_rows * t->n_cols; i++)
        free(t->cells[i]);
    free(t->cells);
}

static void table_print(FILE *f, const table_t *t)
{
    size_t width[MAX_COLS] = {0};
    for (size_t c = 0; c < t->n_cols; c++) {
        width[c] = strlen(t->head[c]);
        for (size_t r = 0; r < t->n_rows; r++) {
            const char *s = t->cells[r * t->n_cols + c];
            if (s != NULL && strlen(s) > width[c])
                width[c] = strlen(s);
        }
    }
    for (size_t r = 0; r <= t->n_rows; r++) {
        /* Build the line, then drop trailing blanks so goldens do not depend on them. */
        char line[4096];
        size_t pos = 0;
        for (size_t c = 0; c < t->n_cols; c++) {
            const char *s = r == 0 ? t->head[c] : t->cells[(r - 1) * t->n_cols + c];
            int n = snprintf(line + pos, sizeof(line) - pos, "%s%*s", c ? "  " : "",
                             t->right[c] ? (int)width[c] : -(int)width[c], s ? s : "");
            if (n < 0 || (size_t)n >= sizeof(line) - pos) {
                pos = sizeof(line) - 1;
                break;
            }
            pos += (size_t)n;
        }
        while (pos > 0 && line[pos - 1] == ' ')
            pos--;
        line[pos] = '\0';
        fprintf(f, "  %s\n", line);
    }
}

/* A byte count as the table shows it. */
static void fmt_bytes(uint64_t v, bool bytes, char *buf, size_t len)
{
    if (bytes)
        snprintf(buf, len, "%" PRIu64, v);
    else
        st_report_human(v, buf, len);
}

static void set_bytes(table_t *t, size_t col, uint64_t v, bool bytes)
{
    char buf[32];
    fmt_bytes(v, bytes, buf, sizeof(buf));
    table_set(t, col, "%s", buf);
}

/* A dump timestamp that is wall-clock time (µs since the epoch, as `run`, `daemon` and `scan`
 * write it) also as UTC, " (2026-11-23 12:00:00 UTC)"; a relative one (a trace from elsewhere,
 * the tests' small numbers) stays a bare number: anything before 2001 is taken as relative. */
static void fmt_wall_clock(uint64_t ts_us, char *buf, size_t len)
{
    buf[0] = '\0';
    if (ts_us < UINT64_C(1000000000000000) || ts_us / 1000000 > (uint64_t)INT32_MAX * 4)
        return;
    time_t t = (time_t)(ts_us / 1000000);
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL)
        return;
    char tmp[32];
    if (strftime(tmp, sizeof(tmp), "%Y-%m-%d %H:%M:%S", &tm) == 0)
        return;
    snprintf(buf, len, " (%s UTC)", tmp);
}

static void sum_add(uint64_t *acc, uint64_t v)
{
    *acc = *acc > UINT64_MAX - v ? UINT64_MAX : *acc + v;
}

static int write_table(FILE *f, const st_summary_t *s, bool bytes)
{
    int rc = 0;
    char a[32], b[32], c[32];

    char when[40] = "";
    fmt_wall_clock(s->ts_us, when, sizeof(when));
    fprintf(f, "dump 0x%" PRIx64 " at %" PRIu64 " us%s: %zu process%s, %zu object%s\n", s->id,
            s->ts_us, when, s->n_procs, s->n_procs == 1 ? "" : "es", s->n_objects,
            s->n_objects == 1 ? "" : "s");

    table_t p = {
        .n_cols = 7,
        .head = {"PID", "NAME", "RESIDENT", "PSS", "PRIVATE", "SHARED MAPPED", "SHARED OWNED"},
        .right = {true, false, true, true, true, true, true}};
    uint64_t rss = 0, pss = 0, priv = 0, mapped = 0, owned = 0;
    for (size_t i = 0; i < s->n_procs; i++) {
        const st_summary_process_t *sp = &s->procs[i];
        table_row(&p);
        table_set(&p, 0, "%d", sp->pid);
        table_set(&p, 1, "%s", sp->name ? sp->name : "-");
        if (sp->present & ST_SUMMARY_HAS_RSS) {
            set_bytes(&p, 2, sp->rss_bytes, bytes);
            sum_add(&rss, sp->rss_bytes);
        } else {
            table_set(&p, 2, "-");
        }
        if (sp->present & ST_SUMMARY_HAS_PSS) {
            set_bytes(&p, 3, sp->pss_bytes, bytes);
            sum_add(&pss, sp->pss_bytes);
        } else {
            table_set(&p, 3, "-");
        }
        if (sp->present & ST_SUMMARY_HAS_PRIVATE) {
            set_bytes(&p, 4, sp->private_footprint_bytes, bytes);
            sum_add(&priv, sp->private_footprint_bytes);
        } else {
            table_set(&p, 4, "-");
        }
        set_bytes(&p, 5, sp->shared_mapped_bytes, bytes);
        set_bytes(&p, 6, sp->shared_owned_bytes, bytes);
        sum_add(&mapped, sp->shared_mapped_bytes);
        sum_add(&owned, sp->shared_owned_bytes);
    }
    table_row(&p);
    table_set(&p, 0, "total");
    set_bytes(&p, 2, rss, bytes);
    set_bytes(&p, 3, pss, bytes);
    set_bytes(&p, 4, priv, bytes);
    set_bytes(&p, 5, mapped, bytes);
    set_bytes(&p, 6, owned, bytes);

    table_t o = {
        .n_cols = 9,
        .head = {"KEY", "KIND", "NAME", "LABEL", "SIZE", "VIRTUAL", "SWAPPED", "OWNER", "HOLDERS"},
        .right = {false, false, false, false, true, true, true, true, true}};
    size_t n_unattributed = 0;
    for (size_t i = 0; i < s->n_objects; i++) {
        const st_summary_object_t *so = &s->objects[i];
        table_row(&o);
        table_set(&o, 0, "%s", so->key);
        table_set(&o, 1, "%s", so->kind);
        table_set(&o, 2, "%s", *so->name ? so->name : "-");
        table_set(&o, 3, "%s", so->label ? so->label : "-");
        set_bytes(&o, 4, so->size, bytes);
        set_bytes(&o, 5, so->virtual_size, bytes);
        set_bytes(&o, 6, so->swapped_size, bytes);
        if (so->owner_pid > 0)
            table_set(&o, 7, "%d", so->owner_pid);
        else
            table_set(&o, 7, "-");
        table_set(&o, 8, "%zu", so->n_holders);
        if (so->unattributed > 0)
            n_unattributed++;
    }

    if (p.failed || o.failed) {
        rc = -ENOMEM;
        goto out;
    }
    fprintf(f, "processes:\n");
    table_print(f, &p);
    fprintf(f, "objects:\n");
    if (s->n_objects > 0)
        table_print(f, &o);
    else
        fprintf(f, "  none\n");

    fmt_bytes(s->shared_resident_unique, bytes, a, sizeof(a));
    fmt_bytes(s->attributed, bytes, b, sizeof(b));
    fmt_bytes(s->unattributed, bytes, c, sizeof(c));
    fprintf(f, "shared resident, each object once: %s = attributed %s + unattributed %s\n", a, b,
            c);
    fprintf(f, "unattributed: %s in %zu object%s nobody is charged for\n", c, n_unattributed,
            n_unattributed == 1 ? "" : "s");
    fprintf(f, "partial: %s\n",
            s->partial ? "yes, some processes could not report (see warnings)" : "no");
    if (s->n_warnings == 0)
        fprintf(f, "warnings: none\n");
    else
        fprintf(f, "warnings: %zu\n", s->n_warnings);
    for (size_t i = 0; i < s->n_warnings; i++)
        fprintf(f, "  - %s\n", s->warnings[i]);
    if (s->n_problems > 0)
        fprintf(f, "problems: %zu\n", s->n_problems);
    for (size_t i = 0; i < s->n_problems; i++) {
        const st_summary_problem_t *pr = &s->problems[i];
        int err = pr->err > 0 ? -pr->err : pr->err;
        if (pr->pid > 0)
            fprintf(f, "  - pid %d: %s: %s\n", pr->pid, pr->path, st_strerror(err));
        else
            fprintf(f, "  - %s: %s\n", pr->path, st_strerror(err));
    }
out:
    table_free(&p);
    table_free(&o);
    return rc;
}

/* ---- CSV ---- */

/* The columns, in order; docs/report.md describes each. */
#define CSV_COLUMNS(XX)                                                                            \
    XX(section)                                                                                    \
    XX(dump_id)                                                                                    \
    XX(ts_us)                                                                                      \
    XX(pid)                                                                                        \
    XX(name)                                                                                       \
    XX(key)                                                                                        \
    XX(kind)                                                                                       \
    XX(importance)                                                                                 \
    XX(rss_bytes)                                                                                  \
    XX(pss_bytes)                                                                                  \
    XX(private_footprint_bytes)                                                                    \
    XX(shared_mapped_bytes)                                                                        \
    XX(shared_owned_bytes)                                                                         \
    XX(size)                                                                                       \
    XX(virtual_size)                                                                               \
    XX(swapped_size)                                                                               \
    XX(effective_size)                                                                             \
    XX(owner_pid)                                                                                  \
    XX(holder_count)                                                                               \
    XX(label)                                                                                      \
    XX(creator_pid)                                                                                \
    XX(shared_resident_unique)                                                                     \
    XX(attributed)                                                                                 \
    XX(unattributed)                                                                               \
    XX(partial)                                                                                    \
    XX(message)

enum {
#define XX(c) COL_##c,
    CSV_COLUMNS(XX)
#undef XX
        COL_COUNT
};

/* One CSV row under construction: a cell per column, NULL for empty. */
typedef struct csv_row {
    char *cell[COL_COUNT];
    bool failed;
} csv_row_t;

__attribute__((format(printf, 3, 4))) static void csv_set(csv_row_t *r, int col, const char *fmt,
                                                          ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0) {
        r->failed = true;
        return;
    }
    free(r->cell[col]);
    r->cell[col] = s;
}

/* RFC 4180: a field holding a comma, a quote or a line break is quoted, quotes doubled. */
static void csv_field(FILE *f, const char *s)
{
    if (s == NULL)
        return;
    if (strpbrk(s, ",\"\r\n") == NULL) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

/* Prints the row (section and dump columns filled here) and empties it. */
static int csv_emit(FILE *f, csv_row_t *r, const char *section, const st_summary_t *s)
{
    csv_set(r, COL_section, "%s", section);
    csv_set(r, COL_dump_id, "0x%" PRIx64, s->id);
    csv_set(r, COL_ts_us, "%" PRIu64, s->ts_us);
    int rc = r->failed ? -ENOMEM : 0;
    for (int c = 0; c < COL_COUNT; c++) {
        if (rc == 0) {
            if (c)
                fputc(',', f);
            csv_field(f, r->cell[c]);
        }
        free(r->cell[c]);
        r->cell[c] = NULL;
    }
    if (rc == 0)
        fputc('\n', f);
    r->failed = false;
    return rc;
}

static int write_csv(FILE *f, const st_summary_t *s)
{
    int rc = 0;
    csv_row_t r = {0};
    for (size_t i = 0; i < s->n_procs && rc == 0; i++) {
        const st_summary_process_t *p = &s->procs[i];
        csv_set(&r, COL_pid, "%d", p->pid);
        if (p->name != NULL)
            csv_set(&r, COL_name, "%s", p->name);
        if (p->present & ST_SUMMARY_HAS_RSS)
            csv_set(&r, COL_rss_bytes, "%" PRIu64, p->rss_bytes);
        if (p->present & ST_SUMMARY_HAS_PSS)
            csv_set(&r, COL_pss_bytes, "%" PRIu64, p->pss_bytes);
        if (p->present & ST_SUMMARY_HAS_PRIVATE)
            csv_set(&r, COL_private_footprint_bytes, "%" PRIu64, p->private_footprint_bytes);
        csv_set(&r, COL_shared_mapped_bytes, "%" PRIu64, p->shared_mapped_bytes);
        csv_set(&r, COL_shared_owned_bytes, "%" PRIu64, p->shared_owned_bytes);
        rc = csv_emit(f, &r, "process", s);
    }
    for (size_t i = 0; i < s->n_objects && rc == 0; i++) {
        const st_summary_object_t *o = &s->objects[i];
        csv_set(&r, COL_key, "%s", o->key);
        csv_set(&r, COL_kind, "%s", o->kind);
        csv_set(&r, COL_name, "%s", o->name);
        csv_set(&r, COL_size, "%" PRIu64, o->size);
        csv_set(&r, COL_virtual_size, "%" PRIu64, o->virtual_size);
        csv_set(&r, COL_swapped_size, "%" PRIu64, o->swapped_size);
        csv_set(&r, COL_effective_size, "%" PRIu64, o->unattributed);
        if (o->owner_pid > 0)
            csv_set(&r, COL_owner_pid, "%d", o->owner_pid);
        csv_set(&r, COL_holder_count, "%zu", o->n_holders);
        if (o->label != NULL)
            csv_set(&r, COL_label, "%s", o->label);
        if (o->creator_pid > 0)
            csv_set(&r, COL_creator_pid, "%d", o->creator_pid);
        rc = csv_emit(f, &r, "object", s);
    }
    for (size_t i = 0; i < s->n_objects && rc == 0; i++) {
        const st_summary_object_t *o = &s->objects[i];
        for (size_t j = 0; j < o->n_holders && rc == 0; j++) {
            csv_set(&r, COL_pid, "%d", o->holders[j].pid);
            csv_set(&r, COL_key, "%s", o->key);
            csv_set(&r, COL_importance, "%d", o->holders[j].importance);
            csv_set(&r, COL_effective_size, "%" PRIu64, o->holders[j].effective_size);
            rc = csv_emit(f, &r, "holder", s);
        }
    }
    if (rc == 0) {
        csv_set(&r, COL_shared_resident_unique, "%" PRIu64, s->shared_resident_unique);
        csv_set(&r, COL_attributed, "%" PRIu64, s->attributed);
        csv_set(&r, COL_unattributed, "%" PRIu64, s->unattributed);
        csv_set(&r, COL_partial, "%s", s->partial ? "true" : "false");
        rc = csv_emit(f, &r, "totals", s);
    }
    for (size_t i = 0; i < s->n_warnings && rc == 0; i++) {
        csv_set(&r, COL_message, "%s", s->warnings[i]);
        rc = csv_emit(f, &r, "warning", s);
    }
    for (size_t i = 0; i < s->n_problems && rc == 0; i++) {
        const st_summary_problem_t *p = &s->problems[i];
        if (p->pid > 0)
            csv_set(&r, COL_pid, "%d", p->pid);
        csv_set(&r, COL_message, "%s: %s", p->path, st_strerror(p->err > 0 ? -p->err : p->err));
        rc = csv_emit(f, &r, "problem", s);
    }
    for (int c = 0; c < COL_COUNT; c++)
        free(r.cell[c]);
    return rc;
}

static void csv_header(FILE *f)
{
    static const char *const cols[] = {
#define XX(c) #c,
        CSV_COLUMNS(XX)
#undef XX
    };
    for (int c = 0; c < COL_COUNT; c++)
        fprintf(f, "%s%s", c ? "," : "", cols[c]);
    fputc('\n', f);
}

/* ---- entry point ---- */

int st_report_write(FILE *f, st_summary_t *const *summaries, size_t n,
                    const st_report_options_t *opt)
{
    int rc = 0;
    json_t *root = NULL;
    switch (opt->format) {
    case ST_REPORT_JSON:
        if ((rc = st_summaries_to_json(summaries, n, &root)) < 0)
            goto out;
        if (json_dumpf(root, f, JSON_INDENT(2)) < 0) {
            rc = -EIO;
            goto out;
        }
        fputc('\n', f);
        break;
    case ST_REPORT_CSV:
        csv_header(f);
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = write_csv(f, summaries[i]);
        break;
    case ST_REPORT_TABLE:
    default:
        for (size_t i = 0; i < n && rc == 0; i++) {
            if (i > 0)
                fputc('\n', f);
            rc = write_table(f, summaries[i], opt->bytes);
        }
        break;
    }
    if (rc == 0 && ferror(f))
        rc = -EIO;
out:
    json_decref(root);
    return rc;
}
