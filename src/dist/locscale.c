/*
 * locscale.c - the driver of the location-scale families (locscale.h).
 */
#include "locscale.h"

#include <stdlib.h>

typedef struct locscale {
    nf_dist base;
    const nf_ls_kernel *k;
    double loc, scale, c; /* c: the kernel's shape constant */
} locscale;

static nf_status ls_log_prob(const nf_dist *D, void *scratch, float *lp, const float *x, size_t n) {
    (void)scratch;
    const locscale *L = (const locscale *)D;
    size_t d = D->d;
    double c = -(double)d * log(L->scale);
    for (size_t i = 0; i < n; i++) {
        double s = c;
        for (size_t j = 0; j < d; j++) s += L->k->log_pdf(((double)x[i * d + j] - L->loc) / L->scale, L->c);
        lp[i] = (float)s;
    }
    return NF_OK;
}

static nf_status ls_sample(const nf_dist *D, void *scratch, nf_rng *rng, float *x, float *lp, size_t n) {
    const locscale *L = (const locscale *)D;
    for (size_t q = 0; q < n * D->d; q++) x[q] = (float)(L->loc + L->scale * L->k->draw(rng, L->c));
    return lp ? ls_log_prob(D, scratch, lp, x, n) : NF_OK;
}

static nf_status ls_cdf(const nf_dist *D, void *scratch, float *c, const float *x, size_t n) {
    (void)scratch;
    const locscale *L = (const locscale *)D;
    for (size_t i = 0; i < n; i++) c[i] = (float)L->k->cdf(((double)x[i] - L->loc) / L->scale, L->c);
    return NF_OK;
}

static nf_status ls_grad(const nf_dist *D, float *g, const float *x, size_t n) {
    const locscale *L = (const locscale *)D;
    for (size_t q = 0; q < n * D->d; q++) g[q] = (float)(L->k->dlog_pdf(((double)x[q] - L->loc) / L->scale, L->c) / L->scale);
    return NF_OK;
}

static const nf_dist_ops locscale_ops = {
    .name = "locscale",
    .log_prob = ls_log_prob,
    .sample = ls_sample,
    .cdf = ls_cdf,
    .log_prob_grad = ls_grad,
};

nf_status nf__locscale_create(const char *fn, const nf_ls_kernel *k, size_t d, float loc, float scale, nf_dist **out) {
    return nf__locscale_create_shape(fn, k, d, loc, scale, 0, out);
}

nf_status nf__locscale_create_shape(const char *fn, const nf_ls_kernel *k, size_t d, float loc, float scale, double c,
                                   nf_dist **out) {
    if (!out) return nf__err(NF_ERR_ARG, "%s: out is NULL", fn);
    *out = NULL;
    if (d == 0 || d > ((size_t)1 << 24)) return nf__err(NF_ERR_ARG, "%s: dimension d=%zu must be in 1..2^24", fn, d);
    if (!isfinite(loc) || !(scale > 0) || !isfinite(scale))
        return nf__err(NF_ERR_DOMAIN, "%s: needs a finite loc and a finite scale > 0, got %g, %g", fn, (double)loc,
                       (double)scale);
    locscale *L = calloc(1, sizeof *L);
    if (!L) return nf__err(NF_ERR_NOMEM, "%s: out of memory", fn);
    L->base.ops = &locscale_ops;
    L->base.name = k->name;
    L->base.d = d;
    L->k = k;
    L->loc = loc;
    L->scale = scale;
    L->c = c;
    *out = &L->base;
    return NF_OK;
}
