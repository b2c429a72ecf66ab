/*
 * batchnorm.c - batch normalisation as a bijector (Dinh et al. 2017, RealNVP
 * section 3.7; Papamakarios et al. 2017, MAF section 3.4):
 *   inverse (data -> base):  x = (y - m) r e^{gamma} + beta,  r = 1 / sqrt(v + eps)
 *                            ildj = sum_j (gamma_j + log r_j)
 *   forward (base -> data):  y = (x - beta) e^{-gamma} / r + m,  fldj = -ildj
 * In a training step (nf_pass.train != 0) the inverse uses the batch's mean m
 * and biased variance v (so the log-det depends on every row of the batch),
 * and one thread of the step updates the running averages
 *   m_run += 0.1 (m - m_run),  v_run += 0.1 (v_unbiased - v_run)
 * (PyTorch's momentum).  Everywhere else (evaluation, validation, sampling,
 * nf_flow_log_prob) both directions use the running averages, which are state
 * tensors saved in model files and checkpoints.  With several training
 * threads each computes its share of the batch's statistics.
 * Backward of a training-mode inverse (g = dL/dx, G = sum_i gl_i, u = (y-m) r):
 *   du = g e^gamma,  dy = r (du - mean_i du - u mean_i(du u)) - G u r / n,
 *   dgamma = sum_i g u e^gamma + G,  dbeta = sum_i g.
 * Parameters: [gamma (d), beta (d)], zero at creation (the identity map once
 * the statistics are those of the data).
 */
#include "bijector_impl.h"
#include "describe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BN_EPS NF_BN_EPS /* (describe.h: the device's kernels use them too) */
#define BN_MOMENTUM NF_BN_MOMENTUM

typedef struct batchnorm {
    nf_bijector base;
    float *run; /* state: running mean (d), then running variance (d) */
} batchnorm;

static size_t bn_scratch_bytes(const nf_bijector *b, size_t n) {
    (void)n;
    return 2 * nf__align(b->d * sizeof(double));
}

/* Batch statistics of n rows (when the pass trains and n >= 2) or the running
 * averages: m and r = 1/sqrt(v + eps).  Returns 1 for batch statistics. */
static int stats(const batchnorm *B, const nf_pass *p, const float *y, double *m, double *r) {
    size_t d = B->base.d, n = p->n;
    if (!p->train || n < 2) {
        for (size_t j = 0; j < d; j++) m[j] = B->run[j], r[j] = 1 / sqrt((double)B->run[d + j] + BN_EPS);
        return 0;
    }
    for (size_t j = 0; j < d; j++) m[j] = 0, r[j] = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) m[j] += y[i * d + j];
    for (size_t j = 0; j < d; j++) m[j] /= (double)n;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) r[j] += (y[i * d + j] - m[j]) * (y[i * d + j] - m[j]);
    for (size_t j = 0; j < d; j++) r[j] = 1 / sqrt(r[j] / (double)n + BN_EPS);
    return 1;
}

static nf_status bn_inverse(const nf_bijector *b, const nf_pass *p, float *x, float *ldj, const float *y) {
    batchnorm *B = (batchnorm *)b; /* the running averages are state (see the top of the file) */
    size_t d = b->d;
    const float *gam = b->params, *bet = b->params + d;
    unsigned char *cur = p->scratch;
    double *m = nf__carve(&cur, d * sizeof(double)), *r = nf__carve(&cur, d * sizeof(double));
    int batch = stats(B, p, y, m, r);
    if (batch && p->train == 2)
        for (size_t j = 0; j < d; j++) {
            double mj = 0, vj = 0;
            for (size_t i = 0; i < p->n; i++) mj += y[i * d + j];
            mj /= (double)p->n;
            for (size_t i = 0; i < p->n; i++) vj += (y[i * d + j] - mj) * (y[i * d + j] - mj);
            vj /= (double)(p->n - 1);
            B->run[j] += (float)(BN_MOMENTUM * (mj - B->run[j]));
            B->run[d + j] += (float)(BN_MOMENTUM * (vj - B->run[d + j]));
        }
    double sl = 0;
    for (size_t j = 0; j < d; j++) sl += (double)gam[j] + log(r[j]);
    for (size_t i = 0; i < p->n; i++) {
        for (size_t j = 0; j < d; j++)
            x[i * d + j] = (float)(((double)y[i * d + j] - m[j]) * r[j] * exp((double)gam[j]) + bet[j]);
        if (ldj) ldj[i] += (float)sl;
    }
    return NF_OK;
}

static nf_status bn_forward(const nf_bijector *b, const nf_pass *p, float *y, float *ldj, const float *x) {
    const batchnorm *B = (const batchnorm *)b;
    size_t d = b->d;
    const float *gam = b->params, *bet = b->params + d;
    double sl = 0;
    for (size_t j = 0; j < d; j++) sl += -(double)gam[j] + 0.5 * log((double)B->run[d + j] + BN_EPS);
    for (size_t i = 0; i < p->n; i++) {
        for (size_t j = 0; j < d; j++)
            y[i * d + j] = (float)(((double)x[i * d + j] - bet[j]) * exp(-(double)gam[j]) *
                                       sqrt((double)B->run[d + j] + BN_EPS) + B->run[j]);
        if (ldj) ldj[i] += (float)sl;
    }
    return NF_OK;
}

static nf_status bn_inverse_backward(const nf_bijector *b, const nf_pass *p, float *dy, float *dparams,
                                     const float *g, const float *gl, const float *y, const float *x) {
    const batchnorm *B = (const batchnorm *)b;
    size_t d = b->d, n = p->n;
    const float *gam = b->params;
    unsigned char *cur = p->scratch;
    double *m = nf__carve(&cur, d * sizeof(double)), *r = nf__carve(&cur, d * sizeof(double));
    nf_pass q = *p;
    q.train = p->train ? 1 : 0; /* the statistics of the forward pass, without another update */
    int batch = stats(B, &q, y, m, r);
    double G = 0;
    for (size_t i = 0; i < n; i++) G += gl[i];
    (void)x;
    for (size_t j = 0; j < d; j++) {
        double e = exp((double)gam[j]), s_du = 0, s_duu = 0, s_g = 0;
        for (size_t i = 0; i < n; i++) {
            double u = ((double)y[i * d + j] - m[j]) * r[j], du = g[i * d + j] * e;
            s_du += du, s_duu += du * u, s_g += g[i * d + j];
        }
        if (dparams) dparams[j] += (float)(s_duu + G), dparams[d + j] += (float)s_g;
        if (!dy) continue;
        for (size_t i = 0; i < n; i++) {
            double u = ((double)y[i * d + j] - m[j]) * r[j], du = g[i * d + j] * e;
            dy[i * d + j] = (float)(batch ? r[j] * (du - s_du / (double)n - u * s_duu / (double)n) - G * u * r[j] / (double)n
                                          : r[j] * du);
        }
    }
    return NF_OK;
}

static nf_status bn_forward_backward(const nf_bijector *b, const nf_pass *p, float *dx, float *dparams,
                                     const float *g, const float *gl, const float *x, const float *y) {
    const batchnorm *B = (const batchnorm *)b;
    size_t d = b->d;
    const float *gam = b->params, *bet = b->params + d;
    double G = 0;
    for (size_t i = 0; i < p->n; i++) G += gl[i];
    (void)y;
    for (size_t j = 0; j < d; j++) {
        double k = exp(-(double)gam[j]) * sqrt((double)B->run[d + j] + BN_EPS), s_g = 0, s_gx = 0;
        for (size_t i = 0; i < p->n; i++) {
            double gg = g[i * d + j];
            s_g += gg, s_gx += gg * ((double)x[i * d + j] - bet[j]);
            if (dx) dx[i * d + j] = (float)(gg * k);
        }
        if (dparams) dparams[j] += (float)(-s_gx * k - G), dparams[d + j] += (float)(-s_g * k);
    }
    return NF_OK;
}

static nf_status bn_tensors(const nf_bijector *b, const char *prefix, size_t off, nf_tensor_fn fn, void *ctx) {
    batchnorm *B = (batchnorm *)b;
    NF_TRY(nf__emit(fn, ctx, prefix, "log_gamma", off, 0, b->d));
    NF_TRY(nf__emit(fn, ctx, prefix, "beta", off + b->d, 0, b->d));
    const char *names[2] = {"running_mean", "running_var"};
    for (int k = 0; k < 2; k++) {
        nf_tensor_info t;
        memset(&t, 0, sizeof t);
        snprintf(t.name, sizeof t.name, "%s%s", prefix, names[k]);
        t.ndim = 1, t.shape[0] = t.count = b->d, t.state = B->run + k * b->d;
        NF_TRY(fn(ctx, &t));
    }
    return NF_OK;
}

static void bn_destroy(nf_bijector *b) { free(((batchnorm *)b)->run); }

static const nf_bijector_ops batchnorm_ops = {
    .name = "batchnorm",
    .forward = bn_forward,
    .inverse = bn_inverse,
    .forward_backward = bn_forward_backward,
    .inverse_backward = bn_inverse_backward,
    .scratch_bytes = bn_scratch_bytes,
    .tensors = bn_tensors,
    .destroy = bn_destroy,
};

nf_status nf_bijector_batchnorm(size_t d, nf_bijector **out) {
    const char *fn = "nf_bijector_batchnorm";
    NF_TRY(nf__check_ctor(fn, d, out));
    batchnorm *B = (batchnorm *)nf__bijector_alloc(sizeof(batchnorm), &batchnorm_ops, d, 2 * d);
    if (!B) return nf__err_prefix(NF_ERR_NOMEM, fn);
    B->run = malloc(2 * d * sizeof(float));
    if (!B->run) {
        nf_bijector_free(&B->base);
        return nf__err(NF_ERR_NOMEM, "%s: out of memory", fn);
    }
    for (size_t j = 0; j < d; j++) B->run[j] = 0, B->run[d + j] = 1;
    *out = &B->base;
    return NF_OK;
}

nf_status nf_bijector_batchnorm_running(nf_bijector *b, float **mean, float **var) {
    if (!b || b->ops != &batchnorm_ops || !mean || !var)
        return nf__err(NF_ERR_ARG, "nf_bijector_batchnorm_running: needs a batchnorm bijector and two result pointers");
    *mean = ((batchnorm *)b)->run, *var = ((batchnorm *)b)->run + b->d;
    return NF_OK;
}

float *nf__batchnorm_describe(const nf_bijector *b) { return b->ops == &batchnorm_ops ? ((batchnorm *)b)->run : NULL; }
