/*
 * adam.h - Adam (Kingma & Ba 2015) on one flat parameter buffer, in the form
 * PyTorch's torch.optim.Adam uses:
 *   g += wd p;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
 *   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 */
#ifndef NF_ADAM_H
#define NF_ADAM_H

#include "../core/backend.h" /* nf_adam */
#include "../core/core.h"

/* The update of step a->t (already counted) on n parameters with the
 * gradient g * gscale (a clipping factor, 1 for none); g is left zeroed.
 * Ranges of one buffer can be updated by different threads. */
void nf__adam_apply(const nf_adam *a, float gscale, float *p, float *g, float *m, float *v, size_t n);
/* Sum of g[i]^2 in a fixed order (identical in every NF_VEC clone). */
double nf__sum_squares(const float *g, size_t n);
/* The factor that scales a gradient of L2 norm `norm` to at most max_norm
 * (1 when max_norm is 0, the norm is within it, or the norm is not finite). */
float nf__clip_scale(double norm, double max_norm);

#endif
