/*
 * adam.c - Adam and global-norm gradient clipping on flat buffers.
 */
#include "adam.h"

NF_VEC static void adam_apply(const nf_adam *a, float gscale, float *restrict p, float *restrict g, float *restrict m,
                              float *restrict v, size_t n) {
    double bc1 = 1 - pow(a->b1, (double)a->t), bc2 = 1 - pow(a->b2, (double)a->t);
    float step = (float)(a->lr / bc1), isb2 = (float)(1 / sqrt(bc2));
    float b1 = a->b1, b2 = a->b2, eps = a->eps, wd = a->wd;
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] * gscale + wd * p[i];
        m[i] = b1 * m[i] + (1 - b1) * gi;
        v[i] = b2 * v[i] + (1 - b2) * gi * gi;
        p[i] -= step * m[i] / (sqrtf(v[i]) * isb2 + eps);
        g[i] = 0;
    }
}

NF_VEC static double sum_squares(const float *g, size_t n) {
    /* 64 float partial sums: the loop vectorises into independent chains
     * (4 AVX-512, 8 AVX2 or 16 SSE registers), each lane summing the same
     * elements in the same order whichever clone runs */
    float acc[64] = {0};
    size_t i = 0;
    for (; i + 64 <= n; i += 64)
        for (int k = 0; k < 64; k++) acc[k] += g[i + k] * g[i + k];
    double s = 0;
    for (int k = 0; k < 64; k++) s += acc[k];
    for (; i < n; i++) s += (double)g[i] * g[i];
    return s;
}

/* The clones are called through these plain functions, so that other files
 * need not see the multiversioning attribute (GCC and Clang disagree on
 * multiversioned functions declared in one file and defined in another). */
void nf__adam_apply(const nf_adam *a, float gscale, float *p, float *g, float *m, float *v, size_t n) {
    adam_apply(a, gscale, p, g, m, v, n);
}

double nf__sum_squares(const float *g, size_t n) { return sum_squares(g, n); }

float nf__clip_scale(double norm, double max_norm) {
    return max_norm > 0 && isfinite(norm) && norm > max_norm ? (float)(max_norm / norm) : 1.0f;
}
