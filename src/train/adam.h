/*
 * adam.h - Adam (Kingma & Ba 2015) on one flat parameter buffer, in the form
 * PyTorch's torch.optim.Adam uses:
 *   g += wd p;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
 *   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 */
#ifndef NF_ADAM_H
#define NF_ADAM_H

#include "../core/core.h"

typedef struct nf_adam {
    float lr, b1, b2, eps, wd;
    size_t t; /* steps taken */
} nf_adam;

/* One step; g is consumed and left zeroed, ready for the next step's
 * accumulation (saves a separate pass over the gradient buffer). */
void nf__adam_step(nf_adam *a, float *p, float *g, float *m, float *v, size_t n);
/* The update of step a->t (already counted) on n parameters with the
 * gradient g * gscale (a clipping factor, 1 for none); g is left zeroed.
 * Ranges of one buffer can be updated by different threads. */
void nf__adam_apply(const nf_adam *a, float gscale, float *p, float *g, float *m, float *v, size_t n);
/* Sum of g[i]^2 in a fixed order (identical in every NF_VEC clone). */
double nf__sum_squares(const float *g, size_t n);
/* The factor that scales a gradient of L2 norm `norm` to at most max_norm
 * (1 when max_norm is 0, the norm is within it, or the norm is not finite). */
float nf__clip_scale(double norm, double max_norm);
/* L2 norm of g (non-finite if any entry is); scaled to at most max_norm
 * when max_norm > 0 and the norm is finite.  Returns the norm before. */
double nf__clip_norm(float *g, size_t n, double max_norm);

#endif
