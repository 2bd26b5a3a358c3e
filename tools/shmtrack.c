/* SPDX-License-Identifier: MIT
 *
 * The shmtrack command: dispatches to a subcommand (tools/cmd_*.c). Thin on purpose: the work is
 * in st_core, where the tests reach it too.
 */
#include "cli.h"

#include "coordinator.h"
#include "error.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    const char *summary;
    int (*fn)(int, char **);
} commands[] = {
#define XX(name, summary) {#name, summary, st_cmd_##name},
    ST_CMD_MAP(XX)
#undef XX
};

int st_cli_parse_ms(const char *s, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 0 || v > 86400000L)
        return ST_EUSAGE;
    *out = v;
    return 0;
}

int st_cli_coord_option(const char *cmd, int c, const char *arg, st_coord_config_t *cfg,
                        long *interval_ms)
{
    long deadline = 0;
    switch (c) {
    case 'i':
        if (st_cli_parse_ms(arg, interval_ms) < 0) {
            fprintf(stderr, "shmtrack %s: --interval takes milliseconds, not '%s'\n", cmd, arg);
            return ST_EUSAGE;
        }
        return 1;
    case 'd':
        if (st_cli_parse_ms(arg, &deadline) < 0 || deadline == 0) {
            fprintf(stderr, "shmtrack %s: --deadline takes milliseconds > 0, not '%s'\n", cmd, arg);
            return ST_EUSAGE;
        }
        cfg->deadline_ms = (int)deadline;
        return 1;
    case 'p':
        if (st_policy_parse(arg, &cfg->policy) < 0) {
            fprintf(stderr, "shmtrack %s: unknown policy '%s' (creator, equal, first-touch)\n", cmd,
                    arg);
            return ST_EUSAGE;
        }
        return 1;
    case 's':
        cfg->socket_path = arg;
        return 1;
    case 'w': {
        char *end = NULL;
        errno = 0;
        unsigned long long n = strtoull(arg, &end, 10);
        if (strcmp(arg, "all") == 0) {
            cfg->ask_window = SIZE_MAX;
        } else if (errno != 0 || end == arg || *end != '\0' || arg[0] == '-' || n == 0 ||
                   n > 100000) {
            fprintf(stderr,
                    "shmtrack %s: --ask-window takes a number of clients (1-100000) or 'all', "
                    "not '%s'\n",
                    cmd, arg);
            return ST_EUSAGE;
        } else {
            cfg->ask_window = (size_t)n;
        }
        return 1;
    }
    default:
        return 0;
    }
}

static void usage(FILE *f)
{
    fprintf(f, "usage: shmtrack <command> [options]\n\n"
               "Counts every shared memory object of a group of processes exactly once, in the\n"
               "process that owns it.\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n`shmtrack <command> --help` describes one command.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return ST_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return ST_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("shmtrack " SHMTRACK_VERSION "\n");
        return ST_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "shmtrack: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return ST_EXIT_USAGE;
}
