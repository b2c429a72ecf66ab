/*
 * adam.c - Adam and global-norm gradient clipping on flat buffers.
 */
#include "adam.h"

void nf__adam_step(nf_adam *a, float *p, float *g, float *m, float *v, size_t n) {
    a->t++;
    double bc1 = 1 - pow(a->b1, (double)a->t), bc2 = 1 - pow(a->b2, (double)a->t);
    float step = (float)(a->lr / bc1), isb2 = (float)(1 / sqrt(bc2));
    float b1 = a->b1, b2 = a->b2, eps = a->eps, wd = a->wd;
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] + wd * p[i];
        m[i] = b1 * m[i] + (1 - b1) * gi;
        v[i] = b2 * v[i] + (1 - b2) * gi * gi;
        p[i] -= step * m[i] / (sqrtf(v[i]) * isb2 + eps);
    }
}

double nf__clip_norm(float *g, size_t n, double max_norm) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)g[i] * g[i];
    double norm = sqrt(s);
    if (max_norm > 0 && norm > max_norm) {
        float f = (float)(max_norm / norm);
        for (size_t i = 0; i < n; i++) g[i] *= f;
    }
    return norm;
}
