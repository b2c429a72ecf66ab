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

void nf__adam_step(nf_adam *a, float *p, float *g, float *m, float *v, size_t n);
/* Scales g so that its L2 norm is at most max_norm; returns the norm before. */
double nf__clip_norm(float *g, size_t n, double max_norm);

#endif
