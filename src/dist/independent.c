/*
 * independent.c - d independent copies of a scalar distribution as one
 * d-dimensional distribution (TFP's Sample(dist, d), or Independent over a
 * batch of d identical scalars): log p(x) = sum_j log p_1(x_j); samples are
 * n d scalar draws; the log-density's gradient is the scalar one's, column by
 * column.  So a flow's base can be built from any scalar family, e.g.
 * transformed(independent(normal(0, 2), d=3), maf(...)).  The scalar
 * distribution is owned and must have no trainable parameters.
 */
#include "dist_impl.h"

#include <stdlib.h>

typedef struct independent {
    nf_dist base;
    nf_dist *in;
} independent;

static size_t ind_scratch(const nf_dist *D, size_t n) {
    const independent *w = (const independent *)D;
    return nf__align(n * D->d * sizeof(float)) + nf__dist_scratch(w->in, n * D->d);
}

static void row_sums(const float *v, size_t n, size_t d, float *out) {
    for (size_t i = 0; i < n; i++) {
        double s = 0;
        for (size_t j = 0; j < d; j++) s += v[i * d + j];
        out[i] = (float)s;
    }
}

static nf_status ind_log_prob(const nf_dist *D, void *scratch, float *lp, const float *x, size_t n) {
    const independent *w = (const independent *)D;
    unsigned char *cur = scratch;
    float *t = nf__carve(&cur, n * D->d * sizeof(float));
    NF_TRY(w->in->ops->log_prob(w->in, cur, t, x, n * D->d));
    row_sums(t, n, D->d, lp);
    return NF_OK;
}

static nf_status ind_sample(const nf_dist *D, void *scratch, nf_rng *rng, float *x, float *lp, size_t n) {
    const independent *w = (const independent *)D;
    unsigned char *cur = scratch;
    float *t = nf__carve(&cur, n * D->d * sizeof(float));
    NF_TRY(w->in->ops->sample(w->in, cur, rng, x, lp ? t : NULL, n * D->d));
    if (lp) row_sums(t, n, D->d, lp);
    return NF_OK;
}

static nf_status ind_grad(const nf_dist *D, float *g, const float *x, size_t n) {
    const independent *w = (const independent *)D;
    if (!w->in->ops->log_prob_grad)
        return nf__err(NF_ERR_UNSUPPORTED, "independent: %s has no log-density gradient", w->in->name);
    return w->in->ops->log_prob_grad(w->in, g, x, n * D->d);
}

static nf_status ind_tensors(const nf_dist *D, const char *prefix, size_t off, nf_tensor_fn fn, void *ctx) {
    (void)D, (void)prefix, (void)off, (void)fn, (void)ctx; /* no parameters */
    return NF_OK;
}

static void ind_destroy(nf_dist *D) { nf_dist_free(((independent *)D)->in); }

static const nf_dist_ops independent_ops = {
    .name = "independent",
    .log_prob = ind_log_prob,
    .sample = ind_sample,
    .log_prob_grad = ind_grad,
    .tensors = ind_tensors,
    .scratch_bytes = ind_scratch,
    .destroy = ind_destroy,
};

nf_status nf_dist_independent(nf_dist *scalar, size_t d, nf_dist **out) {
    const char *fn = "nf_dist_independent";
    if (!out) return nf__err(NF_ERR_ARG, "%s: out is NULL", fn);
    *out = NULL;
    if (!scalar || d == 0 || d > ((size_t)1 << 24))
        return nf__err(NF_ERR_ARG, "%s: needs a distribution and d in 1..2^24 (got d %zu)", fn, d);
    if (scalar->d != 1)
        return nf__err(NF_ERR_SHAPE, "%s: %s has dimension %zu; it takes a scalar distribution", fn, scalar->name, scalar->d);
    if (scalar->nparams)
        return nf__err(NF_ERR_UNSUPPORTED, "%s: %s has trainable parameters; give it d itself (e.g. mog(k, d))", fn,
                       scalar->name);
    independent *w = calloc(1, sizeof *w);
    if (!w) return nf__err(NF_ERR_NOMEM, "%s: out of memory", fn);
    w->base.ops = &independent_ops, w->base.name = "independent", w->base.d = d;
    w->in = scalar;
    *out = &w->base;
    return NF_OK;
}
