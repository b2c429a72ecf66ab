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

/* Parses "2" or "3,4" (0-based column indices) into flags over d columns;
 * returns the count, or 0 on a bad list. */
static size_t parse_cols(const char *s, size_t d, unsigned char *is_ctx) {
    size_t k = 0;
    memset(is_ctx, 0, d);
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 0 || (size_t)v >= d || is_ctx[v]) return 0;
        if (*end && *end != ',') return 0;
        is_ctx[v] = 1;
        k++;
        s = *end == ',' ? end + 1 : end;
    }
    return k;
}

int rows_read(const char *cmd, const rows_src *g, float **x, size_t *n, size_t *d, size_t *dc) {
    *dc = 0;
    if (nf_read_table(g->data, x, n, d)) return fail(cmd, EXIT_DATA, "%s", nf_last_error());
    if (!g->ctxcols) return 0;
    unsigned char *is_ctx = malloc(*d);
    float *row = malloc(*d * sizeof(float));
    size_t nctx = is_ctx && row ? parse_cols(g->ctxcols, *d, is_ctx) : 0;
    for (size_t i = 0; nctx && nctx < *d && i < *n; i++) { /* reorder each row to [x | context] */
        size_t a0 = 0, c0 = *d - nctx;
        for (size_t j = 0; j < *d; j++) row[is_ctx[j] ? c0++ : a0++] = (*x)[i * *d + j];
        memcpy(*x + i * *d, row, *d * sizeof(float));
    }
    free(is_ctx);
    free(row);
    if (!nctx || nctx >= *d)
        return fail(cmd, EXIT_USAGE,
                    "--context-cols %s: give distinct column numbers 0..%zu, leaving at least one data column",
                    g->ctxcols, *d - 1);
    *d -= nctx;
    *dc = nctx;
    return 0;
}
