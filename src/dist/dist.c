/*
 * dist.c - the public distribution calls: argument checks, one workspace
 * per call, non-finite inputs reported, NaN results never returned.
 */
#include "dist_impl.h"

#include <stdlib.h>

void nf_dist_free(nf_dist *D) {
    if (!D) return;
    if (D->ops->destroy) D->ops->destroy(D);
    if (D->owns_params) free(D->params);
    free(D);
}

size_t nf_dist_dim(const nf_dist *D) { return D ? D->d : 0; }
const char *nf_dist_name(const nf_dist *D) { return D ? D->name : "(null)"; }

static nf_status args(const char *fn, const nf_dist *D, const void *a, const void *b, size_t n) {
    if (!D) return nf__err(NF_ERR_ARG, "%s: distribution is NULL", fn);
    if (n && (!a || !b)) return nf__err(NF_ERR_ARG, "%s: %s: NULL array", fn, D->name);
    if (n > SIZE_MAX / sizeof(float) / D->d / 4)
        return nf__err(NF_ERR_ARG, "%s: %s: batch of %zu rows is too large", fn, D->name, n);
    return NF_OK;
}

static nf_status finish(const char *fn, const nf_dist *D, nf_status s, const float *out, size_t m,
                        size_t width, int allow_neg_inf) {
    if (s == NF_OK)
        for (size_t k = 0; k < m; k++)
            if (isnan(out[k]) || (!isfinite(out[k]) && !(allow_neg_inf && out[k] < 0))) {
                s = nf__err(NF_ERR_NUMERIC, "%s: result is %g at row %zu%s", D->name, (double)out[k],
                            k / width, allow_neg_inf ? "" : " (overflow)");
                break;
            }
    if (s) return nf__err_prefix(s, fn);
    return NF_OK;
}

typedef enum { OP_LOGP, OP_PROB, OP_CDF } evalop;

static nf_status eval(const char *fn, const nf_dist *D, const float *x, size_t n, float *out, evalop op) {
    NF_TRY(args(fn, D, x, out, n));
    if (n == 0) return NF_OK;
    if (op == OP_CDF && (D->d != 1 || !D->ops->cdf))
        return nf__err(NF_ERR_UNSUPPORTED, "%s: %s has no cdf%s", fn, D->name,
                       D->d != 1 ? " (only scalar distributions have one)" : "");
    nf_status s = nf__check_finite("input x", x, n, D->d);
    if (s) {
        nf__err_prefix(s, D->name);
        return nf__err_prefix(s, fn);
    }
    void *ws = nf__aligned_alloc(nf__dist_scratch(D, n));
    if (!ws) return nf__err(NF_ERR_NOMEM, "%s: out of memory", fn);
    s = op == OP_CDF ? D->ops->cdf(D, ws, out, x, n) : D->ops->log_prob(D, ws, out, x, n);
    nf__aligned_free(ws);
    if (s == NF_OK && op == OP_PROB)
        for (size_t i = 0; i < n; i++) out[i] = expf(out[i]);
    return finish(fn, D, s, out, n, 1, op == OP_LOGP);
}

nf_status nf_dist_log_prob(const nf_dist *D, const float *x, size_t n, float *out) {
    return eval("nf_dist_log_prob", D, x, n, out, OP_LOGP);
}

nf_status nf_dist_prob(const nf_dist *D, const float *x, size_t n, float *out) {
    return eval("nf_dist_prob", D, x, n, out, OP_PROB);
}

nf_status nf_dist_cdf(const nf_dist *D, const float *x, size_t n, float *out) {
    return eval("nf_dist_cdf", D, x, n, out, OP_CDF);
}

static nf_status draw(const char *fn, const nf_dist *D, nf_rng *rng, size_t n, float *x, float *lp) {
    NF_TRY(args(fn, D, x, x, n));
    if (!rng) return nf__err(NF_ERR_ARG, "%s: rng is NULL", fn);
    if (n == 0) return NF_OK;
    void *ws = nf__aligned_alloc(nf__dist_scratch(D, n));
    if (!ws) return nf__err(NF_ERR_NOMEM, "%s: out of memory", fn);
    nf_status s = D->ops->sample(D, ws, rng, x, lp, n);
    nf__aligned_free(ws);
    NF_TRY(finish(fn, D, s, x, n * D->d, D->d, 0));
    return lp ? finish(fn, D, NF_OK, lp, n, 1, 1) : NF_OK;
}

nf_status nf_dist_sample(const nf_dist *D, nf_rng *rng, size_t n, float *out) {
    return draw("nf_dist_sample", D, rng, n, out, NULL);
}

nf_status nf_dist_sample_and_log_prob(const nf_dist *D, nf_rng *rng, size_t n, float *x, float *lp) {
    if (n && !lp) return nf__err(NF_ERR_ARG, "nf_dist_sample_and_log_prob: log_prob array is NULL");
    return draw("nf_dist_sample_and_log_prob", D, rng, n, x, lp);
}
