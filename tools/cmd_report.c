/* SPDX-License-Identifier: MIT
 * Placeholder so the tree builds while `shmtrack report` is written (issue 2); replaced there. */
#include "cli.h"

#include <stdio.h>

int st_cmd_report(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "shmtrack report: not implemented yet\n");
    return ST_EXIT_FAIL;
}
