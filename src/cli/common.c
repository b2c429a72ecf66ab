/*
 * common.c - option parsing, errors and exit codes shared by the subcommands.
 */
#include "cli.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int fail(const char *cmd, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "nflow %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    if (code == EXIT_USAGE) fprintf(stderr, "Try 'nflow %s --help'.\n", cmd);
    return code;
}

int status_exit(nf_status s) {
    switch (s) {
    case NF_OK: return 0;
    case NF_ERR_NUMERIC: return EXIT_NUMERIC;
    case NF_ERR_DOMAIN:
    case NF_ERR_SHAPE: return EXIT_DATA;
    default: return EXIT_DATA;
    }
}

int args_init(args *a, const char *cmd, int argc, char **argv) {
    a->argc = argc, a->argv = argv, a->cmd = cmd;
    a->used = calloc((size_t)argc + 1, sizeof(int));
    return a->used ? 0 : -1;
}

void args_free(args *a) { free(a->used); }

int help_or_init(args *a, const char *cmd, int argc, char **argv, const char *help) {
    if (args_init(a, cmd, argc, argv)) return fail(cmd, EXIT_DATA, "out of memory");
    if (opt_flag(a, "--help") || opt_flag(a, "-h")) {
        fputs(help, stdout);
        args_free(a);
        return -1;
    }
    return 0;
}

static int find(args *a, const char *name) {
    for (int i = 0; i < a->argc; i++)
        if (!a->used[i] && !strcmp(a->argv[i], name)) return i;
    return -1;
}

const char *opt_str(args *a, const char *name, const char *def) {
    int i = find(a, name);
    if (i < 0) return def;
    if (i + 1 >= a->argc) exit(fail(a->cmd, EXIT_USAGE, "option %s needs a value", name));
    a->used[i] = a->used[i + 1] = 1;
    return a->argv[i + 1];
}

int opt_flag(args *a, const char *name) {
    int i = find(a, name);
    if (i < 0) return 0;
    a->used[i] = 1;
    return 1;
}

double opt_num(args *a, const char *name, double def, double lo, double hi) {
    const char *s = opt_str(a, name, NULL);
    if (!s) return def;
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= lo && v <= hi))
        exit(fail(a->cmd, EXIT_USAGE, "option %s must be a number in [%g, %g], got '%s'", name, lo, hi, s));
    return v;
}

const char *arg_positional(args *a, int k) {
    for (int i = 0; i < a->argc; i++)
        if (!a->used[i] && a->argv[i][0] != '-' && k-- == 0) {
            a->used[i] = 1;
            return a->argv[i];
        }
    return NULL;
}

int args_check_all_used(args *a) {
    for (int i = 0; i < a->argc; i++)
        if (!a->used[i]) return fail(a->cmd, EXIT_USAGE, "unknown argument '%s'", a->argv[i]);
    return 0;
}

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void split_context_rows(const float *rows, size_t n, size_t d, size_t dc, float *x, float *c) {
    for (size_t i = 0; i < n; i++) { /* row i's source lies at or after its destination: no unread row is overwritten */
        if (dc) memcpy(c + i * dc, rows + i * (d + dc) + d, dc * sizeof(float));
        memmove(x + i * d, rows + i * (d + dc), d * sizeof(float));
    }
}
