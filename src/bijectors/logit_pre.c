/*
 * logit_pre.c - Real NVP's logit pre-transform of pixel values (Dinh et al.
 * 2017, section 4.1): data x in [0, K] (dequantised levels 0..K-1 lie in
 * [0, K)), base side z = logit(p), p = a + (1 - 2a) x / K, so a flow on z
 * never meets the image's bounds.  No parameters; a in (0, 1/2), K > 0.
 *   forward (base -> data):  x = K (sigmoid(z) - a) / (1 - 2a)
 *     fldj = log(K / (1 - 2a)) + log s + log(1 - s),  s = sigmoid(z)
 *   inverse (data -> base):  z = log p - log(1 - p),
 *     ildj = log((1 - 2a) / K) - log p - log(1 - p)
 * Backward: dx/dz = K s (1 - s) / (1 - 2a), dfldj/dz = 1 - 2s;
 *   dz/dx = c (1/p + 1/(1 - p)), dildj/dx = c (1/(1 - p) - 1/p), c = (1 - 2a) / K.
 */
#include "bijector_impl.h"

#include <math.h>

typedef struct logit_pre {
    nf_bijector base;
    double K, a;
} logit_pre;

static double sigm(double z) { return z >= 0 ? 1 / (1 + exp(-z)) : exp(z) / (1 + exp(z)); }
static double log_sigm(double z) { return z >= 0 ? -log1p(exp(-z)) : z - log1p(exp(z)); } /* log sigmoid(z) */

static nf_status lp_forward(const nf_bijector *b, const nf_pass *p, float *y, float *ldj, const float *x) {
    const logit_pre *t = (const logit_pre *)b;
    size_t d = b->d;
    for (size_t i = 0; i < p->n; i++) {
        double acc = 0;
        for (size_t j = 0; j < d; j++) {
            double z = x[i * d + j], s = sigm(z);
            y[i * d + j] = (float)(t->K * (s - t->a) / (1 - 2 * t->a));
            acc += log(t->K / (1 - 2 * t->a)) + log_sigm(z) + log_sigm(-z);
        }
        if (ldj) ldj[i] += (float)acc;
    }
    return NF_OK;
}

static nf_status lp_inverse(const nf_bijector *b, const nf_pass *p, float *x, float *ldj, const float *y) {
    const logit_pre *t = (const logit_pre *)b;
    size_t d = b->d;
    for (size_t i = 0; i < p->n; i++) {
        double acc = 0;
        for (size_t j = 0; j < d; j++) {
            double v = y[i * d + j];
            if (!(v >= 0 && v <= t->K))
                return nf__err(NF_ERR_DOMAIN, "logit_pre: inverse needs 0 <= x <= %g (pixel values), got %g at row %zu, "
                               "column %zu", t->K, v, i, j);
            double q = t->a + (1 - 2 * t->a) * v / t->K;
            x[i * d + j] = (float)(log(q) - log1p(-q));
            acc += log((1 - 2 * t->a) / t->K) - log(q) - log1p(-q);
        }
        if (ldj) ldj[i] += (float)acc;
    }
    return NF_OK;
}

static nf_status lp_forward_backward(const nf_bijector *b, const nf_pass *p, float *dx, float *dparams, const float *dy,
                                     const float *dldj, const float *x, const float *y) {
    (void)dparams, (void)y;
    const logit_pre *t = (const logit_pre *)b;
    size_t d = b->d;
    for (size_t i = 0; dx && i < p->n; i++)
        for (size_t j = 0; j < d; j++) {
            double s = sigm(x[i * d + j]);
            dx[i * d + j] = (float)(dy[i * d + j] * t->K * s * (1 - s) / (1 - 2 * t->a) + dldj[i] * (1 - 2 * s));
        }
    return NF_OK;
}

static nf_status lp_inverse_backward(const nf_bijector *b, const nf_pass *p, float *dy, float *dparams, const float *dx,
                                     const float *dldj, const float *y, const float *x) {
    (void)dparams, (void)x;
    const logit_pre *t = (const logit_pre *)b;
    size_t d = b->d;
    double c = (1 - 2 * t->a) / t->K;
    for (size_t i = 0; dy && i < p->n; i++)
        for (size_t j = 0; j < d; j++) {
            double q = t->a + c * y[i * d + j];
            dy[i * d + j] = (float)(dx[i * d + j] * c * (1 / q + 1 / (1 - q)) + dldj[i] * c * (1 / (1 - q) - 1 / q));
        }
    return NF_OK;
}

static int lp_monotone(const nf_bijector *b) {
    (void)b;
    return 1;
}

static const nf_bijector_ops logit_pre_ops = {
    .name = "logit_pre",
    .forward = lp_forward,
    .inverse = lp_inverse,
    .forward_backward = lp_forward_backward,
    .inverse_backward = lp_inverse_backward,
    .monotone = lp_monotone,
};

nf_status nf_bijector_logit_pre(size_t d, double levels, double alpha, nf_bijector **out) {
    const char *fn = "nf_bijector_logit_pre";
    NF_TRY(nf__check_ctor(fn, d, out));
    if (!(levels > 0 && levels <= 1e9) || !(alpha > 0 && alpha < 0.5))
        return nf__err(NF_ERR_ARG, "%s: levels must be in (0, 1e9] and alpha in (0, 0.5), got %g and %g", fn, levels, alpha);
    logit_pre *t = (logit_pre *)nf__bijector_alloc(sizeof(logit_pre), &logit_pre_ops, d, 0);
    if (!t) return nf__err_prefix(NF_ERR_NOMEM, fn);
    t->K = levels, t->a = alpha;
    *out = &t->base;
    return NF_OK;
}
