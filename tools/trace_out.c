/* SPDX-License-Identifier: MIT
 *
 * Where `shmtrack run` and `shmtrack daemon` put their trace (cli.h, st_cli_trace_out_t).
 */
#include "cli.h"

#include "coordinator.h"
#include "error.h"
#include "fileio.h"
#include "trace_json.h"

#include <stdio.h>
#include <string.h>

int st_cli_trace_out_open(st_cli_trace_out_t *o, const char *cmd, const char *path,
                          st_coord_config_t *cfg)
{
    memset(o, 0, sizeof(*o));
    o->cmd = cmd;
    o->path = path;
    if (cfg->max_dumps > 0 || strcmp(path, "-") == 0 || st_file_is_special(path))
        return 0; /* the coordinator's trace, written at the end */
    st_error_t err;
    int rc = st_trace_spool_open(path, &o->spool, &err);
    if (rc < 0) {
        char line[768];
        st_error_format(&err, "event", line, sizeof(line));
        fprintf(stderr, "shmtrack %s: cannot write the trace: %s\n", cmd, line);
        return rc;
    }
    cfg->max_dumps = 1; /* the spool has the others: the memory of each is reused */
    return 0;
}

void st_cli_trace_out_dump(st_cli_trace_out_t *o, const st_global_dump_t *d)
{
    if (o->spool == NULL)
        return;
    st_error_t err;
    if (st_trace_spool_add(o->spool, d, &err) < 0) {
        char line[768];
        st_error_format(&err, "event", line, sizeof(line));
        fprintf(stderr, "shmtrack %s: dump 0x%llx will not be in %s: %s\n", o->cmd,
                (unsigned long long)d->id, o->path, line);
        o->lost++;
    }
}

int st_cli_trace_out_close(st_cli_trace_out_t *o, st_coord_t *co, size_t *n_dumps)
{
    char line[768] = "";
    st_error_t err;
    memset(&err, 0, sizeof(err));
    int rc;
    if (o->spool != NULL) {
        *n_dumps = st_trace_spool_dumps(o->spool);
        rc = st_trace_spool_commit(o->spool, st_coord_trace(co), ST_WRITE_FSYNC, &err);
        if (rc < 0)
            st_error_format(&err, "event", line, sizeof(line));
        st_trace_spool_free(o->spool);
        o->spool = NULL;
    } else {
        *n_dumps = st_coord_trace(co)->n_dumps;
        rc = st_coord_write_trace(co, o->path, line, sizeof(line));
    }
    if (rc < 0)
        fprintf(stderr, "shmtrack %s: cannot write %s: %s\n", o->cmd, o->path,
                line[0] ? line : st_strerror(rc));
    else if (o->lost > 0)
        fprintf(stderr, "shmtrack %s: %s lacks %zu dump%s that could not be written (above)\n",
                o->cmd, o->path, o->lost, o->lost == 1 ? "" : "s");
    return rc < 0 ? rc : o->lost > 0 ? 1 : 0;
}

void st_cli_trace_out_discard(st_cli_trace_out_t *o)
{
    st_trace_spool_free(o->spool);
    o->spool = NULL;
}
