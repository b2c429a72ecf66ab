/*
 * common.c - option parsing, errors and exit codes shared by the subcommands.
 */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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

/* "--name=value", or "-nVALUE" for a one-letter option: the value, else NULL. */
static const char *attached(const char *arg, const char *name) {
    size_t k = strlen(name);
    if (strncmp(arg, name, k)) return NULL;
    if (name[1] == '-') return arg[k] == '=' ? arg + k + 1 : NULL;
    return k == 2 && arg[k] ? arg + k : NULL;
}

int arg_given(int argc, char **argv, const char *name) {
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], name) || attached(argv[i], name)) return 1;
    return 0;
}

const char *opt_str(args *a, const char *name, const char *def) {
    for (int i = 0; i < a->argc; i++) {
        const char *v = a->used[i] ? NULL : attached(a->argv[i], name);
        if (v) {
            a->used[i] = 1;
            return v;
        }
    }
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

int mkdir_p(const char *dir, char *made, size_t cap) {
    char tmp[4096];
    if (made && cap) made[0] = 0;
    if (snprintf(tmp, sizeof tmp, "%s", dir) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    size_t len = strlen(tmp);
    for (char *p = tmp + 1;; p++) {
        if (*p && *p != '/') continue;
        char c = *p;
        *p = 0;
        if (mkdir(tmp, 0777) == 0) {
            if (made && cap && !made[0]) snprintf(made, cap, "%s", tmp); /* the first folder this call made */
        } else if (errno != EEXIST) {
            return -1;
        }
        *p = c;
        if ((size_t)(p - tmp) >= len) break;
    }
    return 0;
}

void rmdir_made(const char *dir, const char *made) {
    if (!made || !made[0]) return;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", dir);
    size_t stop = strlen(made);
    while (strlen(tmp) >= stop && rmdir(tmp) == 0) { /* only empty folders go */
        char *slash = strrchr(tmp, '/');
        if (!slash || slash == tmp) break;
        *slash = 0;
    }
}

void engine_opts_parse(args *a, engine_opts *e) {
    e->ck_every = (size_t)opt_num(a, "--checkpoint-every", 0, 1, 1e12);
    e->threads = (size_t)opt_num(a, "--threads", 1, 1, 64);
    const char *split = opt_str(a, "--split", "auto");
    e->split = !strcmp(split, "auto") ? NF_SPLIT_AUTO : !strcmp(split, "rows") ? NF_SPLIT_ROWS
             : !strcmp(split, "columns") ? NF_SPLIT_COLUMNS : -1;
    if (e->split < 0) exit(fail(a->cmd, EXIT_USAGE, "--split must be rows, columns or auto, got '%s'", split));
    e->resume = opt_flag(a, "--resume");
    e->device = opt_str(a, "--device", NULL);
}

int set_device(const char *cmd, nf_flow *f, const char *device) {
    if (!device || nf_flow_set_device(f, device) == NF_OK) return 0;
    return fail(cmd, EXIT_USAGE, "%s", nf_last_error());
}

void engine_opts_finish(const char *cmd, const engine_opts *e, const char *out, int rc) {
    FILE *ck = e->ck_every || e->resume ? fopen(e->ckpath, "rb") : NULL;
    if (ck) fclose(ck);
    if (!rc && ck) {
        remove(e->ckpath); /* the model holds the final parameters */
    } else if (rc && ck) {
        fprintf(stderr, "nflow %s: %s is kept: run the same command with --resume to continue from it\n", cmd,
                e->ckpath);
    } else if (rc) {
        rmdir_made(out, e->made);
    }
}

void engine_opts_apply(const char *cmd, engine_opts *e, const char *out, int quiet, nf_train_opts *o) {
    snprintf(e->ckpath, sizeof e->ckpath, "%s/checkpoint.nflow", out);
    if (e->ck_every) {
        o->checkpoint_path = e->ckpath;
        o->checkpoint_every = e->ck_every;
    }
    if (e->resume) {
        FILE *ck = fopen(e->ckpath, "rb");
        if (ck) {
            fclose(ck);
            o->resume_path = e->ckpath;
            if (!quiet) fprintf(stderr, "nflow %s: resuming from %s\n", cmd, e->ckpath);
        } else if (!quiet) {
            fprintf(stderr, "nflow %s: no checkpoint in %s yet, starting afresh\n", cmd, out);
        }
    }
    o->threads = e->threads; /* the library runs BLAS single-threaded inside them */
    o->split = e->split;
}

void cmdline_join(char *buf, size_t cap, const char *prog, int argc, char **argv) {
    size_t len = (size_t)snprintf(buf, cap, "%s", prog);
    for (int i = 0; i < argc && len < cap; i++) {
        int quote = strpbrk(argv[i], " ()[],\"") != NULL;
        len += (size_t)snprintf(buf + len, cap - len, quote ? " \"%s\"" : " %s", argv[i]);
    }
}
