/*
 * normal.c - independent normals: Normal(loc, scale) (d = 1) and TFP's
 * MultivariateNormalDiag (loc, scale_diag or scale_identity_multiplier).
 *   log p(x) = sum_j [ -z_j^2 / 2 - log scale_j - log sqrt(2 pi) ],
 *   z_j = (x_j - loc_j) / scale_j;   cdf (d = 1) = Phi(z);
 *   d log p / dx_j = -z_j / scale_j.
 */
#include "dist_impl.h"

#include <stdlib.h>
#include <string.h>

typedef struct normal {
    nf_dist base;
    float *loc, *scale; /* d values each */
} normal;

static nf_status normal_log_prob(const nf_dist *D, void *scratch, float *lp, const float *x, size_t n) {
    (void)scratch;
    const normal *N = (const normal *)D;
    size_t d = D->d;
    double c = 0;
    for (size_t j = 0; j < d; j++) c -= log((double)N->scale[j]) + NF_LOG_SQRT_2PI;
    for (size_t i = 0; i < n; i++) {
        double s = c;
        for (size_t j = 0; j < d; j++) {
            double z = ((double)x[i * d + j] - N->loc[j]) / N->scale[j];
            s -= 0.5 * z * z;
        }
        lp[i] = (float)s;
    }
    return NF_OK;
}

static nf_status normal_sample(const nf_dist *D, void *scratch, nf_rng *rng, float *x, float *lp,
                               size_t n) {
    const normal *N = (const normal *)D;
    size_t d = D->d;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++)
            x[i * d + j] = N->loc[j] + N->scale[j] * nf_rng_normal(rng);
    return lp ? normal_log_prob(D, scratch, lp, x, n) : NF_OK;
}

static nf_status normal_cdf(const nf_dist *D, void *scratch, float *c, const float *x, size_t n) {
    (void)scratch;
    const normal *N = (const normal *)D;
    for (size_t i = 0; i < n; i++) c[i] = (float)nf__ndtr(((double)x[i] - N->loc[0]) / N->scale[0]);
    return NF_OK;
}

static nf_status normal_grad(const nf_dist *D, float *g, const float *x, size_t n) {
    const normal *N = (const normal *)D;
    size_t d = D->d;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) {
            double s = N->scale[j];
            g[i * d + j] = (float)(-((double)x[i * d + j] - N->loc[j]) / (s * s));
        }
    return NF_OK;
}

static void normal_destroy(nf_dist *D) {
    normal *N = (normal *)D;
    free(N->loc);
    free(N->scale);
}

static const nf_dist_ops normal_ops = {
    .name = "normal",
    .log_prob = normal_log_prob,
    .sample = normal_sample,
    .cdf = normal_cdf,
    .log_prob_grad = normal_grad,
    .destroy = normal_destroy,
};

/* loc (NULL: 0) and scale (NULL: `mult` for every column). */
static nf_status make(const char *fn, const char *name, size_t d, const float *loc, const float *scale, float mult,
                      nf_dist **out) {
    if (!out) return nf__err(NF_ERR_ARG, "%s: out is NULL", fn);
    *out = NULL;
    if (d == 0 || d > ((size_t)1 << 24))
        return nf__err(NF_ERR_ARG, "%s: dimension d=%zu must be in 1..2^24", fn, d);
    for (size_t j = 0; j < d; j++) {
        float l = loc ? loc[j] : 0.0f, s = scale ? scale[j] : mult;
        if (!isfinite(l)) return nf__err(NF_ERR_DOMAIN, "%s: loc[%zu]=%g is not finite", fn, j, (double)l);
        if (!(s > 0) || !isfinite(s))
            return nf__err(NF_ERR_DOMAIN, "%s: scale[%zu]=%g must be finite and > 0", fn, j, (double)s);
    }
    normal *N = calloc(1, sizeof *N);
    if (N) {
        N->loc = malloc(d * sizeof(float));
        N->scale = malloc(d * sizeof(float));
    }
    if (!N || !N->loc || !N->scale) {
        if (N) normal_destroy(&N->base);
        free(N);
        return nf__err(NF_ERR_NOMEM, "%s: out of memory", fn);
    }
    N->base.ops = &normal_ops;
    N->base.name = name;
    N->base.d = d;
    for (size_t j = 0; j < d; j++) {
        N->loc[j] = loc ? loc[j] : 0.0f;
        N->scale[j] = scale ? scale[j] : mult;
    }
    *out = &N->base;
    return NF_OK;
}

nf_status nf_dist_normal(float loc, float scale, nf_dist **out) {
    return make("nf_dist_normal", "normal", 1, &loc, &scale, 1.0f, out);
}

nf_status nf_dist_mvn_diag(size_t d, const float *loc, const float *scale_diag, nf_dist **out) {
    return make("nf_dist_mvn_diag", "mvn_diag", d, loc, scale_diag, 1.0f, out);
}

nf_status nf_dist_mvn_scaled_identity(size_t d, const float *loc, float multiplier, nf_dist **out) {
    return make("nf_dist_mvn_scaled_identity", "mvn_diag", d, loc, NULL, multiplier, out);
}

int nf__dist_normal_describe(const nf_dist *D, const float **loc, const float **scale) {
    if (D->ops != &normal_ops) return 0;
    *loc = ((const normal *)D)->loc;
    *scale = ((const normal *)D)->scale;
    return 1;
}
