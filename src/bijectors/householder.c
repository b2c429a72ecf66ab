/*
 * householder.c - a learnable Householder reflection, y = H x with
 * H = I - 2 v v^T / (v . v): orthogonal and symmetric, its own inverse,
 * log|det| = 0 (volume preserving mixing of the columns, as in
 * Tomczak & Welling 2016).  Parameters: v (d).  householder(reflections=K)
 * in the spec chains K of them.
 * Backward (g the upstream gradient, u the pass input, a = v.u, s = v.v):
 *   du = H g,   dv = -(2/s) ((g.v) u + a g) + (4 a (g.v) / s^2) v.
 */
#include "bijector_impl.h"

#include <math.h>
#include <string.h>

/* v . v, or an error for v = 0 (no reflection). */
static nf_status norm2(const nf_bijector *b, double *s) {
    *s = 0;
    for (size_t j = 0; j < b->d; j++) *s += (double)b->params[j] * b->params[j];
    return *s > 0 ? NF_OK : nf__err(NF_ERR_DOMAIN, "householder: the reflection vector is zero");
}

static nf_status hh_apply(const nf_bijector *b, const nf_pass *p, float *out, float *ldj, const float *in) {
    (void)ldj; /* log|det H| = 0 */
    const float *v = b->params;
    size_t d = b->d;
    double s;
    NF_TRY(norm2(b, &s));
    for (size_t i = 0; i < p->n; i++) {
        double a = 0;
        for (size_t j = 0; j < d; j++) a += (double)v[j] * in[i * d + j];
        double c = 2 * a / s;
        for (size_t j = 0; j < d; j++) out[i * d + j] = (float)(in[i * d + j] - c * v[j]);
    }
    return NF_OK;
}

static nf_status hh_backward(const nf_bijector *b, const nf_pass *p, float *gin, float *dparams, const float *g,
                             const float *u) {
    const float *v = b->params;
    size_t d = b->d;
    double s;
    NF_TRY(norm2(b, &s));
    for (size_t i = 0; i < p->n; i++) {
        const float *gi = g + i * d, *ui = u + i * d;
        double gv = 0, a = 0;
        for (size_t j = 0; j < d; j++) gv += (double)gi[j] * v[j], a += (double)v[j] * ui[j];
        if (gin)
            for (size_t j = 0; j < d; j++) gin[i * d + j] = (float)(gi[j] - 2 * gv / s * v[j]);
        if (dparams)
            for (size_t j = 0; j < d; j++)
                dparams[j] += (float)(-(2 / s) * (gv * ui[j] + a * gi[j]) + 4 * a * gv / (s * s) * v[j]);
    }
    return NF_OK;
}

static nf_status hh_forward_backward(const nf_bijector *b, const nf_pass *p, float *dx, float *dparams, const float *dy,
                                     const float *dldj, const float *x, const float *y) {
    (void)dldj, (void)y;
    return hh_backward(b, p, dx, dparams, dy, x);
}

static nf_status hh_inverse_backward(const nf_bijector *b, const nf_pass *p, float *dy, float *dparams, const float *dx,
                                     const float *dldj, const float *y, const float *x) {
    (void)dldj, (void)x;
    return hh_backward(b, p, dy, dparams, dx, y);
}

static nf_status hh_init(nf_bijector *b, nf_rng *rng) {
    for (size_t j = 0; j < b->d; j++) b->params[j] = nf_rng_normal(rng);
    return NF_OK;
}

static const nf_bijector_ops householder_ops = {
    .name = "householder",
    .forward = hh_apply,
    .inverse = hh_apply,
    .forward_backward = hh_forward_backward,
    .inverse_backward = hh_inverse_backward,
    .init_params = hh_init,
};

nf_status nf_bijector_householder(size_t d, nf_rng *rng, nf_bijector **out) {
    const char *fn = "nf_bijector_householder";
    NF_TRY(nf__check_ctor(fn, d, out));
    if (!rng) return nf__err(NF_ERR_ARG, "%s: rng must not be NULL", fn);
    nf_bijector *b = nf__bijector_alloc(sizeof(nf_bijector), &householder_ops, d, d);
    if (!b) return nf__err_prefix(NF_ERR_NOMEM, fn);
    hh_init(b, rng);
    *out = b;
    return NF_OK;
}
