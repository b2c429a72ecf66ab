/*
 * uniform.c - Uniform(low, high) (d = 1).
 *   log p = -log(high - low) on the closed support [low, high], -inf
 *   outside (closed, so that a float32 map onto the support which rounds
 *   to `high`, e.g. sigmoid(x) = 1 for x > 16.6, keeps its density);
 *   samples lie in [low, high);
 *   cdf = clamp((x - low) / (high - low), 0, 1).
 */
#include "dist_impl.h"

#include <stdlib.h>

typedef struct uniform {
    nf_dist base;
    float low, high;
} uniform;

static nf_status uni_log_prob(const nf_dist *D, void *scratch, float *lp, const float *x, size_t n) {
    (void)scratch;
    const uniform *U = (const uniform *)D;
    float inside = (float)-log((double)U->high - U->low);
    for (size_t i = 0; i < n; i++) lp[i] = x[i] >= U->low && x[i] <= U->high ? inside : -INFINITY;
    return NF_OK;
}

static nf_status uni_sample(const nf_dist *D, void *scratch, nf_rng *rng, float *x, float *lp, size_t n) {
    const uniform *U = (const uniform *)D;
    double w = (double)U->high - U->low;
    for (size_t i = 0; i < n; i++) {
        float v = (float)(U->low + w * nf_rng_uniform(rng));
        x[i] = v < U->high ? v : nextafterf(U->high, U->low); /* rounding must not reach high */
    }
    return lp ? uni_log_prob(D, scratch, lp, x, n) : NF_OK;
}

static nf_status uni_cdf(const nf_dist *D, void *scratch, float *c, const float *x, size_t n) {
    (void)scratch;
    const uniform *U = (const uniform *)D;
    double w = (double)U->high - U->low;
    for (size_t i = 0; i < n; i++) {
        double v = ((double)x[i] - U->low) / w;
        c[i] = (float)(v < 0 ? 0 : v > 1 ? 1 : v);
    }
    return NF_OK;
}

static const nf_dist_ops uniform_ops = {
    .name = "uniform", .log_prob = uni_log_prob, .sample = uni_sample, .cdf = uni_cdf};

nf_status nf_dist_uniform(float low, float high, nf_dist **out) {
    const char *fn = "nf_dist_uniform";
    if (!out) return nf__err(NF_ERR_ARG, "%s: out is NULL", fn);
    *out = NULL;
    if (!isfinite(low) || !isfinite(high) || !(low < high))
        return nf__err(NF_ERR_DOMAIN, "%s: needs finite low < high, got low=%g, high=%g", fn,
                       (double)low, (double)high);
    uniform *U = calloc(1, sizeof *U);
    if (!U) return nf__err(NF_ERR_NOMEM, "%s: out of memory", fn);
    U->base.ops = &uniform_ops;
    U->base.name = "uniform";
    U->base.d = 1;
    U->low = low, U->high = high;
    *out = &U->base;
    return NF_OK;
}
