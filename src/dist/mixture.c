/*
 * mixture.c - a trainable mixture of K diagonal Gaussians (the "MoG" base of
 * the MAF paper's MADE MoG / MAF MoG), with parameters
 * [a (K logits), mu (K x d), s (K x d log-scales)]:
 *   log pi_k = a_k - logsumexp(a)
 *   c_k(x)   = log pi_k + sum_j [ -z_kj^2 / 2 - s_kj - log sqrt(2 pi) ],
 *              z_kj = (x_j - mu_kj) e^{-s_kj}
 *   log p(x) = logsumexp_k c_k(x),   r_k = softmax_k(c_k) (responsibilities)
 *   d/dx_j   = -sum_k r_k z_kj e^{-s_kj}
 *   d/da_k = r_k - pi_k,  d/dmu_kj = r_k z_kj e^{-s_kj},  d/ds_kj = r_k (z_kj^2 - 1)
 * A flow built on it trains these with the bijector's parameters (they sit
 * after them in the flow's flat buffer).
 */
#include "dist_impl.h"

#include <stdlib.h>
#include <string.h>

#define MOG_MAX_K 256

typedef struct mog {
    nf_dist base;
    size_t K;
} mog;

/* c_k for one row into c (K); returns log p. */
static double components(const mog *M, const float *x, double *c) {
    size_t K = M->K, d = M->base.d;
    const float *a = M->base.params, *mu = a + K, *s = mu + K * d;
    double am = -INFINITY, as = 0;
    for (size_t k = 0; k < K; k++) am = fmax(am, (double)a[k]);
    for (size_t k = 0; k < K; k++) as += exp((double)a[k] - am);
    double lz = am + log(as), cm = -INFINITY;
    for (size_t k = 0; k < K; k++) {
        double v = (double)a[k] - lz;
        for (size_t j = 0; j < d; j++) {
            double z = ((double)x[j] - mu[k * d + j]) * exp(-(double)s[k * d + j]);
            v -= 0.5 * z * z + s[k * d + j] + NF_LOG_SQRT_2PI;
        }
        c[k] = v;
        cm = fmax(cm, v);
    }
    double t = 0;
    for (size_t k = 0; k < K; k++) t += exp(c[k] - cm);
    return cm + log(t);
}

static nf_status mog_log_prob(const nf_dist *D, void *scratch, float *lp, const float *x, size_t n) {
    (void)scratch;
    const mog *M = (const mog *)D;
    double c[MOG_MAX_K];
    for (size_t i = 0; i < n; i++) lp[i] = (float)components(M, x + i * D->d, c);
    return NF_OK;
}

static nf_status mog_sample(const nf_dist *D, void *scratch, nf_rng *rng, float *x, float *lp, size_t n) {
    const mog *M = (const mog *)D;
    size_t K = M->K, d = D->d;
    const float *a = D->params, *mu = a + K, *s = mu + K * d;
    double am = -INFINITY, as = 0;
    for (size_t k = 0; k < K; k++) am = fmax(am, (double)a[k]);
    for (size_t k = 0; k < K; k++) as += exp((double)a[k] - am);
    for (size_t i = 0; i < n; i++) {
        double u = nf_rng_uniform(rng) * as, acc = 0;
        size_t k = 0;
        for (; k + 1 < K; k++) {
            acc += exp((double)a[k] - am);
            if (u < acc) break;
        }
        for (size_t j = 0; j < d; j++) x[i * d + j] = (float)(mu[k * d + j] + exp((double)s[k * d + j]) * nf_rng_normal(rng));
    }
    return lp ? mog_log_prob(D, scratch, lp, x, n) : NF_OK;
}

static nf_status mog_grad(const nf_dist *D, float *g, const float *x, size_t n) {
    const mog *M = (const mog *)D;
    size_t K = M->K, d = D->d;
    const float *mu = D->params + K, *s = mu + K * d;
    double c[MOG_MAX_K];
    for (size_t i = 0; i < n; i++) {
        double lp = components(M, x + i * d, c);
        for (size_t j = 0; j < d; j++) {
            double gj = 0;
            for (size_t k = 0; k < K; k++) {
                double e = exp(-(double)s[k * d + j]), z = ((double)x[i * d + j] - mu[k * d + j]) * e;
                gj -= exp(c[k] - lp) * z * e;
            }
            g[i * d + j] = (float)gj;
        }
    }
    return NF_OK;
}

static nf_status mog_param_grad(const nf_dist *D, float *gp, const float *w, const float *x, size_t n) {
    const mog *M = (const mog *)D;
    size_t K = M->K, d = D->d;
    const float *a = D->params, *mu = a + K, *s = mu + K * d;
    double c[MOG_MAX_K], am = -INFINITY, as = 0;
    for (size_t k = 0; k < K; k++) am = fmax(am, (double)a[k]);
    for (size_t k = 0; k < K; k++) as += exp((double)a[k] - am);
    for (size_t i = 0; i < n; i++) {
        double lp = components(M, x + i * d, c), wi = w[i];
        for (size_t k = 0; k < K; k++) {
            double r = exp(c[k] - lp);
            gp[k] += (float)(wi * (r - exp((double)a[k] - am) / as));
            for (size_t j = 0; j < d; j++) {
                double e = exp(-(double)s[k * d + j]), z = ((double)x[i * d + j] - mu[k * d + j]) * e;
                gp[K + k * d + j] += (float)(wi * r * z * e);
                gp[K + K * d + k * d + j] += (float)(wi * r * (z * z - 1));
            }
        }
    }
    return NF_OK;
}

static nf_status mog_tensors(const nf_dist *D, const char *prefix, size_t off, nf_tensor_fn fn, void *ctx) {
    const mog *M = (const mog *)D;
    NF_TRY(nf__emit(fn, ctx, prefix, "logits", off, 0, M->K));
    NF_TRY(nf__emit(fn, ctx, prefix, "means", off + M->K, M->K, D->d));
    return nf__emit(fn, ctx, prefix, "log_scales", off + M->K + M->K * D->d, M->K, D->d);
}

static const nf_dist_ops mog_ops = {
    .name = "mog",
    .log_prob = mog_log_prob,
    .sample = mog_sample,
    .log_prob_grad = mog_grad,
    .param_grad = mog_param_grad,
    .tensors = mog_tensors,
};

nf_status nf_dist_mog(size_t d, size_t K, nf_rng *rng, nf_dist **out) {
    const char *fn = "nf_dist_mog";
    if (!out) return nf__err(NF_ERR_ARG, "%s: out is NULL", fn);
    *out = NULL;
    if (d == 0 || d > (1u << 20) || K == 0 || K > MOG_MAX_K || !rng)
        return nf__err(NF_ERR_ARG, "%s: needs d >= 1, 1..%d components and an rng (got d %zu, K %zu)", fn, MOG_MAX_K, d, K);
    mog *M = calloc(1, sizeof *M);
    float *p = calloc(K + 2 * K * d, sizeof(float));
    if (!M || !p) {
        free(M), free(p);
        return nf__err(NF_ERR_NOMEM, "%s: out of memory", fn);
    }
    M->base.ops = &mog_ops, M->base.name = "mog", M->base.d = d;
    M->base.nparams = K + 2 * K * d, M->base.params = p, M->base.owns_params = 1;
    M->K = K;
    /* equal weights, unit scales, means ~ N(0, 1): components start apart */
    for (size_t q = 0; q < K * d; q++) p[K + q] = K > 1 ? nf_rng_normal(rng) : 0.0f;
    *out = &M->base;
    return NF_OK;
}
