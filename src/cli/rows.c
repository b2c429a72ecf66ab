/*
 * rows.c - one way to get a command's rows [x | context]: a generated set
 * (fresh draws, optionally with its label as the context) or a CSV / .npy
 * file (context columns moved to the end of each row).
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

int rows_generated(const char *data) {
    for (size_t k = 0; nf_data_name(k); k++)
        if (!strcmp(data, nf_data_name(k))) return 1;
    return 0;
}

nf_status rows_generate(const rows_src *g, nf_rng *rng, size_t n, float *x) {
    if (!g->labels) return nf_data_generate(g->data, rng, n, g->noise, x, NULL);
    int *lab = malloc((n ? n : 1) * sizeof(int));
    if (!lab) return NF_ERR_NOMEM;
    nf_status s = nf_data_generate(g->data, rng, n, g->noise, x, lab);
    for (size_t i = n; !s && i-- > 0;) { /* spread [x1, x2] rows to [x1, x2, label], from the end */
        float a = x[2 * i], b = x[2 * i + 1];
        x[3 * i] = a;
        x[3 * i + 1] = b;
        x[3 * i + 2] = (float)lab[i];
    }
    free(lab);
    return s;
}

int rows_draw(void *user, nf_rng *rng, float *x, size_t n) { return rows_generate(user, rng, n, x) != NF_OK; }

/* Parses a list "a,b,3" of column names (from the header) or 0-based
 * indices into flags over d columns; returns the count, 0 on a bad list
 * (*bad: the offending item). */
static size_t parse_cols(const char *s, size_t d, char **names, unsigned char *flag, char *bad, size_t badcap) {
    size_t k = 0;
    memset(flag, 0, d);
    while (*s) {
        const char *e = strchr(s, ',');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        snprintf(bad, badcap, "%.*s", (int)len, s);
        long v = -1;
        for (size_t j = 0; names && j < d && v < 0; j++)
            if (strlen(names[j]) == len && !strncmp(names[j], s, len)) v = (long)j;
        if (v < 0) {
            char *end;
            v = strtol(s, &end, 10);
            if (end != s + len || end == s) return 0;
        }
        if (v < 0 || (size_t)v >= d || flag[v]) return 0;
        flag[v] = 1;
        k++;
        s = e ? e + 1 : s + len;
    }
    return k;
}

/* Keeps the columns whose flag equals `keep`, in order (names too). */
static void keep_columns(float *x, size_t n, size_t *d, char **names, const unsigned char *flag, int keep) {
    size_t w = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < *d; j++)
            if (flag[j] == keep) x[w++] = x[i * *d + j];
    size_t nd = 0;
    for (size_t j = 0; j < *d; j++) {
        if (flag[j] == keep) {
            if (names) names[nd] = names[j];
            nd++;
        } else if (names) {
            free(names[j]);
        }
    }
    *d = nd;
}

/* Flags the columns that are constant over the n rows. */
static size_t constant_columns(const float *x, size_t n, size_t d, unsigned char *flag) {
    size_t k = 0;
    for (size_t j = 0; j < d; j++) {
        flag[j] = 1;
        for (size_t i = 1; i < n && flag[j]; i++) flag[j] = x[i * d + j] == x[j];
        k += flag[j];
    }
    return k;
}

/* --columns, --drop, --drop-constant: the file's columns kept. */
static int select_columns(const char *cmd, const rows_src *g, float *x, size_t n, size_t *d, char **names) {
    char bad[128];
    unsigned char *flag = malloc(*d ? *d : 1);
    if (!flag) return fail(cmd, EXIT_DATA, "out of memory");
    int rc = 0;
    const char *list = g->columns ? g->columns : g->drop;
    if (list) {
        if (!parse_cols(list, *d, names, flag, bad, sizeof bad))
            rc = fail(cmd, EXIT_USAGE, "%s %s: '%s' is not a column (names%s or indices 0..%zu, each once)",
                      g->columns ? "--columns" : "--drop", list, bad, names ? " from the header" : ": the file has no header;",
                      *d - 1);
        else
            keep_columns(x, n, d, names, flag, g->columns ? 1 : 0);
    }
    if (!rc && g->drop_constant) {
        size_t k = constant_columns(x, n, *d, flag);
        if (k) {
            fprintf(stderr, "nflow %s: dropping %zu constant column%s:", cmd, k, k > 1 ? "s" : "");
            for (size_t j = 0, c = 0; j < *d; j++) {
                if (!flag[j]) continue;
                if (names) fprintf(stderr, "%s %s", c++ ? "," : "", names[j]);
                else fprintf(stderr, "%s %zu", c++ ? "," : "", j);
            }
            fputc('\n', stderr);
            keep_columns(x, n, d, names, flag, 0);
        }
    }
    free(flag);
    if (!rc && *d == 0) rc = fail(cmd, EXIT_USAGE, "no column is left");
    return rc;
}

int rows_read(const char *cmd, const rows_src *g, float **x, size_t *n, size_t *d, size_t *dc, char ***names_out) {
    *dc = 0;
    if (names_out) *names_out = NULL;
    char **names = NULL;
    nf_status s = g->parts > 1 ? nf_read_table_part(g->data, g->part, g->parts, x, n, d, &names)
                               : nf_read_table_names(g->data, x, n, d, &names);
    if (s) return fail(cmd, EXIT_DATA, "%s", nf_last_error());
    size_t d0 = *d;
    int rc = select_columns(cmd, g, *x, *n, d, names);
    if (rc) {
        nf_free_names(names, d0);
        return rc;
    }
    size_t nctx = 0;
    if (g->ctxcols) {
        char bad[128];
        unsigned char *is_ctx = malloc(*d);
        float *row = malloc(*d * sizeof(float));
        char **nm = names ? malloc(*d * sizeof *nm) : NULL;
        nctx = is_ctx && row && (nm || !names) ? parse_cols(g->ctxcols, *d, names, is_ctx, bad, sizeof bad) : 0;
        for (size_t i = 0; nctx && nctx < *d && i < *n; i++) { /* reorder each row to [x | context] */
            size_t a0 = 0, c0 = *d - nctx;
            for (size_t j = 0; j < *d; j++) row[is_ctx[j] ? c0++ : a0++] = (*x)[i * *d + j];
            memcpy(*x + i * *d, row, *d * sizeof(float));
        }
        if (nctx && nctx < *d && nm) { /* and the names */
            size_t a0 = 0, c0 = *d - nctx;
            for (size_t j = 0; j < *d; j++) nm[is_ctx[j] ? c0++ : a0++] = names[j];
            memcpy(names, nm, *d * sizeof *nm);
        }
        free(nm);
        free(is_ctx);
        free(row);
        if (!nctx || nctx >= *d) {
            nf_free_names(names, *d);
            return fail(cmd, EXIT_USAGE,
                        "--context-cols %s: give distinct column names or numbers 0..%zu, leaving at least one data column",
                        g->ctxcols, *d - 1);
        }
    }
    if (names_out) *names_out = names;
    else nf_free_names(names, *d);
    *d -= nctx;
    *dc = nctx;
    return 0;
}
