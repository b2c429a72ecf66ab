/*
 * transformed.c - TFP TransformedDistribution: y = b.forward(z), z ~ base.
 *   log p(y) = log p_base(b.inverse(y)) + ildj(y)
 *   sample_and_log_prob: z ~ base, y = b.forward(z), log p(y) = log p_base(z) - fldj(z)
 *   cdf (d = 1, b monotone): F(y) = F_base(b.inverse(y)), or 1 - that if b
 *   is decreasing.
 */
#include "dist_impl.h"
#include "../bijectors/bijector_impl.h"

#include <stdlib.h>
#include <string.h>

typedef struct transformed {
    nf_dist base;
    nf_dist *inner;
    nf_bijector *bij;
} transformed;

typedef struct tws {
    float *z, *ldj;
    void *bscratch, *dscratch;
} tws;

static size_t tr_scratch(const nf_dist *D, size_t n) {
    const transformed *T = (const transformed *)D;
    return nf__align(n * D->d * sizeof(float)) + nf__align(n * sizeof(float)) +
           nf__align(nf__scratch_bytes(T->bij, n)) + nf__align(nf__dist_scratch(T->inner, n));
}

static void carve(const transformed *T, void *scratch, size_t n, tws *w) {
    unsigned char *cur = scratch;
    w->z = nf__carve(&cur, n * T->base.d * sizeof(float));
    w->ldj = nf__carve(&cur, n * sizeof(float));
    w->bscratch = nf__carve(&cur, nf__scratch_bytes(T->bij, n));
    w->dscratch = cur;
}

static nf_status tr_log_prob(const nf_dist *D, void *scratch, float *lp, const float *y, size_t n) {
    const transformed *T = (const transformed *)D;
    tws w;
    carve(T, scratch, n, &w);
    memset(w.ldj, 0, n * sizeof(float));
    nf_pass p = {n, NULL, w.bscratch, NULL, 0, NULL};
    nf_blas_guard bg;
    nf__blas_enter(&bg); /* one BLAS thread inside nflow's calls (core/blas.c) */
    nf_status bs = T->bij->ops->inverse(T->bij, &p, w.z, w.ldj, y);
    nf__blas_leave(&bg);
    NF_TRY(bs);
    NF_TRY(T->inner->ops->log_prob(T->inner, w.dscratch, lp, w.z, n));
    for (size_t i = 0; i < n; i++) lp[i] += w.ldj[i];
    return NF_OK;
}

static nf_status tr_sample(const nf_dist *D, void *scratch, nf_rng *rng, float *y, float *lp, size_t n) {
    const transformed *T = (const transformed *)D;
    tws w;
    carve(T, scratch, n, &w);
    memset(w.ldj, 0, n * sizeof(float));
    NF_TRY(T->inner->ops->sample(T->inner, w.dscratch, rng, w.z, lp, n));
    nf_pass p = {n, NULL, w.bscratch, NULL, 0, NULL};
    nf_blas_guard bg;
    nf__blas_enter(&bg); /* one BLAS thread inside nflow's calls (core/blas.c) */
    nf_status bs = T->bij->ops->forward(T->bij, &p, y, lp ? w.ldj : NULL, w.z);
    nf__blas_leave(&bg);
    NF_TRY(bs);
    if (lp)
        for (size_t i = 0; i < n; i++) lp[i] -= w.ldj[i];
    return NF_OK;
}

static nf_status tr_cdf(const nf_dist *D, void *scratch, float *c, const float *y, size_t n) {
    const transformed *T = (const transformed *)D;
    int m = nf_bijector_monotone(T->bij);
    if (!T->inner->ops->cdf || m == 0)
        return nf__err(NF_ERR_UNSUPPORTED, "transformed: cdf needs a base with a cdf and a monotone bijector (%s is %s)",
                       T->bij->name, m ? "monotone" : "not known to be monotone");
    tws w;
    carve(T, scratch, n, &w);
    nf_pass p = {n, NULL, w.bscratch, NULL, 0, NULL};
    nf_blas_guard bg;
    nf__blas_enter(&bg); /* one BLAS thread inside nflow's calls (core/blas.c) */
    nf_status bs = T->bij->ops->inverse(T->bij, &p, w.z, NULL, y);
    nf__blas_leave(&bg);
    NF_TRY(bs);
    NF_TRY(T->inner->ops->cdf(T->inner, w.dscratch, c, w.z, n));
    if (m < 0)
        for (size_t i = 0; i < n; i++) c[i] = 1.0f - c[i];
    return NF_OK;
}

static void tr_destroy(nf_dist *D) {
    transformed *T = (transformed *)D;
    nf_dist_free(T->inner);
    nf_bijector_free(T->bij);
}

static const nf_dist_ops transformed_ops = {
    .name = "transformed",
    .log_prob = tr_log_prob,
    .sample = tr_sample,
    .cdf = tr_cdf,
    .scratch_bytes = tr_scratch,
    .destroy = tr_destroy,
};

nf_status nf_dist_transformed(nf_dist *base, nf_bijector *b, nf_dist **out) {
    const char *fn = "nf_dist_transformed";
    if (!out) return nf__err(NF_ERR_ARG, "%s: out is NULL", fn);
    *out = NULL;
    if (!base || !b) return nf__err(NF_ERR_ARG, "%s: base and bijector must not be NULL", fn);
    if (b->dc)
        return nf__err(NF_ERR_UNSUPPORTED, "%s: %s is conditional; use a flow (nf_flow_create) and its _ctx calls", fn,
                       b->name);
    if (base->d != b->d)
        return nf__err(NF_ERR_SHAPE, "%s: base %s has dimension %zu but bijector %s has %zu", fn,
                       base->name, base->d, b->name, b->d);
    transformed *T = calloc(1, sizeof *T);
    if (!T) return nf__err(NF_ERR_NOMEM, "%s: out of memory", fn);
    T->base.ops = &transformed_ops;
    T->base.name = "transformed";
    T->base.d = base->d;
    T->inner = base;
    T->bij = b;
    *out = &T->base;
    return NF_OK;
}
