/*
 * common.h - small helpers shared by the example programs (not part of the
 * library): error exit, timing, a minimal numeric CSV reader and writer, and
 * held-out NLL.
 */
#ifndef NF_EXAMPLES_COMMON_H
#define NF_EXAMPLES_COMMON_H

#include "nflow.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TRY(expr)                                                                    \
    do {                                                                             \
        nf_status s_ = (expr);                                                       \
        if (s_ != NF_OK) {                                                           \
            fprintf(stderr, "error: %s\n  -> %s\n", #expr, nf_last_error());         \
            exit(3);                                                                 \
        }                                                                            \
    } while (0)

static inline double ex_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Reads rows of `d` comma-separated numbers, skipping a header line that does
 * not start with a number.  Returns a malloc'd n x d array, or NULL. */
static inline float *ex_read_csv(const char *path, size_t d, size_t *n_out) {
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    size_t cap = 1024, n = 0;
    float *x = malloc(cap * d * sizeof(float));
    char line[4096];
    while (x && fgets(line, sizeof line, f)) {
        char *p = line, *end;
        float row[64];
        size_t k = 0;
        while (k < d && k < 64) {
            double v = strtod(p, &end);
            if (end == p) break;
            row[k++] = (float)v;
            p = end;
            while (*p == ',' || *p == ' ') p++;
        }
        if (k != d) continue; /* header or blank line */
        if (n == cap) {
            float *nx = realloc(x, 2 * cap * d * sizeof(float));
            if (!nx) {
                free(x);
                x = NULL;
                break;
            }
            x = nx, cap *= 2;
        }
        memcpy(x + n * d, row, d * sizeof(float));
        n++;
    }
    fclose(f);
    *n_out = n;
    return x;
}

static inline int ex_write_csv(const char *path, const float *x, size_t n, size_t d, const char *header) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    if (header) fprintf(f, "%s\n", header);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) fprintf(f, "%.8g%c", x[i * d + j], j + 1 < d ? ',' : '\n');
    return fclose(f);
}

/* Mean negative log-likelihood of n rows. */
static inline double ex_nll(const nf_flow *flow, const float *x, size_t n) {
    float *lp = malloc(n * sizeof(float));
    if (!lp) exit(3);
    TRY(nf_flow_log_prob(flow, x, n, lp));
    double s = 0;
    for (size_t i = 0; i < n; i++) s -= lp[i];
    free(lp);
    return s / (double)n;
}

/* Largest |inverse(forward(z)) - z| over n base samples. */
static inline double ex_roundtrip_error(const nf_flow *flow, nf_rng *rng, size_t n) {
    const nf_bijector *b = nf_flow_bijector(flow);
    size_t d = nf_flow_dim(flow);
    float *z = malloc(n * d * sizeof(float)), *x = malloc(n * d * sizeof(float)), *z2 = malloc(n * d * sizeof(float));
    if (!z || !x || !z2) exit(3);
    nf_rng_fill_normal(rng, z, n * d);
    TRY(nf_bijector_forward(b, z, n, x, NULL));
    TRY(nf_bijector_inverse(b, x, n, z2, NULL));
    double worst = 0;
    for (size_t i = 0; i < n * d; i++)
        if (fabs(z2[i] - z[i]) > worst) worst = fabs(z2[i] - z[i]);
    free(z), free(x), free(z2);
    return worst;
}

#endif
