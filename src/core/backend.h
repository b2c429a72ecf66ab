/*
 * backend.h - the compute-backend seam: where the networks' matrix
 * products, their element-wise bias/activation passes and the optimiser
 * run.  A backend is a const table of plain functions on flat float arrays
 * (row-major, as CBLAS), shared by every flow that uses it; a flow names its
 * backend (nf_flow.be, NULL: the CPU's) and every pass carries it
 * (nf_pass.be) down to the networks (nn/mlp.c); the trainer runs Adam and
 * the gradient norm through it.  Every function gets its table as `be`, so a
 * backend with state embeds the table first in its own struct (the CPU
 * team, backend/team.c, finds its threads that way).  The bijector files keep their maths: a
 * second backend (a GPU's) supplies these kernels, plus batched kernels for
 * the bijector families it supports, and refuses the rest by name.
 * docs/architecture.md shows where each call is made.
 */
#ifndef NF_BACKEND_H
#define NF_BACKEND_H

#include "nflow.h"

#include <stddef.h>

/* Adam's hyper-parameters and step count (train/adam.h has the maths):
 *   g += wd p;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
 *   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps) */
typedef struct nf_adam {
    float lr, b1, b2, eps, wd;
    size_t t; /* steps taken */
} nf_adam;

/* What a product then does to its output C (m x n), so that a layer's
 * element-wise passes run in the product's call (on a team: each thread on
 * its own block, with no hand-off between them); NULL: nothing.
 *   bias: C = act(C + bias[column])          (a layer's forward)
 *   H:    C *= act'(.) through the activation outputs H (rows ldh apart)
 *                                             (the gradient entering a hidden layer)
 *   db:   db[i] += sum_r G[r][i] over C's rows i, G gn rows ldg apart
 *                                             (a weight gradient's bias gradient) */
typedef struct nf_epi {
    nf_activation act;
    const float *bias;
    const float *H;
    size_t ldh;
    float *db;
    const float *G;
    size_t gn, ldg;
} nf_epi;

typedef struct nf_backend {
    const char *name;
    /* C (m x n) = alpha op(A) op(B) + beta C; op transposes when ta / tb; then e (may be NULL) */
    void (*gemm)(const struct nf_backend *be, int ta, int tb, size_t m, size_t n, size_t k, float alpha, const float *A,
                 size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc, const nf_epi *e);
    /* y = alpha op(A) x + beta y, A (m x n) */
    void (*gemv)(const struct nf_backend *be, int ta, size_t m, size_t n, float alpha, const float *A, size_t lda, const float *x, float beta,
                 float *y);
    /* h = act(h + bias) over n rows of width b */
    void (*bias_act_forward)(const struct nf_backend *be, nf_activation a, float *h, const float *bias, size_t n, size_t b);
    /* g *= act'(.) through the activation's output h, m values */
    void (*act_backward)(const struct nf_backend *be, nf_activation a, float *g, const float *h, size_t m);
    /* db[j] += sum_i g[i][j] over n rows of width b */
    void (*bias_grad)(const struct nf_backend *be, float *db, const float *g, size_t n, size_t b);
    /* The Adam update of step a->t on n parameters with the gradient
     * g * gscale (a clipping factor); g is left zeroed. */
    void (*adam)(const struct nf_backend *be, const nf_adam *a, float gscale, float *p, float *g, float *m, float *v, size_t n);
    /* sum of g[i]^2 in a fixed order */
    double (*sum_squares)(const struct nf_backend *be, const float *g, size_t n);
    /* dW[i] += G[i] M[i] over n values (a MADE layer's masked weight gradient) */
    void (*mask_acc)(const struct nf_backend *be, float *dW, const float *G, const float *M, size_t n);
} nf_backend;

/* The CPU's backend (src/backend/cpu.c): CBLAS and vectorised loops. */
extern const nf_backend nf__backend_cpu;

/* b, or the CPU's backend when b is NULL. */
static inline const nf_backend *nf__be(const nf_backend *b) { return b ? b : &nf__backend_cpu; }

#endif
