/*
 * actnorm.c - activation normalisation (Kingma & Dhariwal 2018, Glow): a
 * per-coordinate affine map whose parameters are set from data once,
 *   forward (base -> data):  y = x e^{s} + b,       fldj = sum s
 *   inverse (data -> base):  x = (y - b) e^{-s},    ildj = -sum s
 * Data-dependent initialisation (nf_flow_data_init, run by the fit calls
 * before the first step): b = column means and s = log(std + 1e-6) of the
 * data reaching this layer, so its base-side output starts standardised.
 * The "initialised" flag is a state tensor saved in model files, so a
 * reloaded (or resumed) model is not initialised again.
 * Backward: forward dx = g e^s, db = g, ds = g x e^s + gl;
 *           inverse dy = g e^-s, db = -g e^-s, ds = -g x - gl.
 */
#include "bijector_impl.h"
#include "describe.h"

#include <stdio.h>
#include <string.h>

typedef struct actnorm {
    nf_bijector base;
    float initialised; /* state: 0 until data_init ran */
} actnorm;

static nf_status an_pass(const nf_bijector *b, const nf_pass *p, float *out, float *ldj, const float *in, int fwd) {
    size_t d = b->d;
    const float *sh = b->params, *ls = b->params + d;
    double sl = 0;
    for (size_t j = 0; j < d; j++) sl += ls[j];
    for (size_t i = 0; i < p->n; i++) {
        for (size_t j = 0; j < d; j++) {
            double v = in[i * d + j];
            out[i * d + j] = (float)(fwd ? v * exp((double)ls[j]) + sh[j] : (v - sh[j]) * exp(-(double)ls[j]));
        }
        if (ldj) ldj[i] += (float)(fwd ? sl : -sl);
    }
    return NF_OK;
}
static nf_status an_forward(const nf_bijector *b, const nf_pass *p, float *y, float *ldj, const float *x) {
    return an_pass(b, p, y, ldj, x, 1);
}
static nf_status an_inverse(const nf_bijector *b, const nf_pass *p, float *x, float *ldj, const float *y) {
    return an_pass(b, p, x, ldj, y, 0);
}

/* in: the pass input, out: its output; g: dL/d(out), gl: dL/d(ldj) */
static nf_status an_backward(const nf_bijector *b, const nf_pass *p, float *gin, float *dparams, const float *g,
                             const float *gl, const float *in, const float *out, int fwd) {
    size_t d = b->d;
    const float *ls = b->params + d;
    for (size_t i = 0; i < p->n; i++)
        for (size_t j = 0; j < d; j++) {
            double gg = g[i * d + j], e = exp(fwd ? (double)ls[j] : -(double)ls[j]);
            if (gin) gin[i * d + j] = (float)(gg * e);
            if (dparams) {
                dparams[j] += (float)(fwd ? gg : -gg * e);
                /* forward: d/ds (x e^s) = x e^s; inverse: d/ds ((y - b) e^-s) = -x */
                dparams[d + j] += (float)(fwd ? gg * (double)in[i * d + j] * e + gl[i] : -gg * (double)out[i * d + j] - gl[i]);
            }
        }
    return NF_OK;
}
static nf_status an_forward_backward(const nf_bijector *b, const nf_pass *p, float *dx, float *dparams,
                                     const float *dy, const float *dldj, const float *x, const float *y) {
    return an_backward(b, p, dx, dparams, dy, dldj, x, y, 1);
}
static nf_status an_inverse_backward(const nf_bijector *b, const nf_pass *p, float *dy, float *dparams,
                                     const float *dx, const float *dldj, const float *y, const float *x) {
    return an_backward(b, p, dy, dparams, dx, dldj, y, x, 0);
}

static nf_status an_data_init(nf_bijector *b, const float *y, size_t n) {
    actnorm *a = (actnorm *)b;
    if (a->initialised != 0 || n == 0) return NF_OK;
    size_t d = b->d;
    for (size_t j = 0; j < d; j++) {
        double m = 0, v = 0;
        for (size_t i = 0; i < n; i++) m += y[i * d + j];
        m /= (double)n;
        for (size_t i = 0; i < n; i++) v += (y[i * d + j] - m) * (y[i * d + j] - m);
        b->params[j] = (float)m;
        b->params[d + j] = (float)log(sqrt(v / (double)n) + 1e-6);
    }
    a->initialised = 1;
    return NF_OK;
}

static nf_status an_tensors(const nf_bijector *b, const char *prefix, size_t off, nf_tensor_fn fn, void *ctx) {
    NF_TRY(nf__emit(fn, ctx, prefix, "shift", off, 0, b->d));
    NF_TRY(nf__emit(fn, ctx, prefix, "log_scale", off + b->d, 0, b->d));
    nf_tensor_info t;
    memset(&t, 0, sizeof t);
    snprintf(t.name, sizeof t.name, "%sinitialised", prefix);
    t.ndim = 1, t.shape[0] = t.count = 1, t.state = &((actnorm *)b)->initialised;
    return fn(ctx, &t);
}

static const nf_bijector_ops actnorm_ops = {
    .name = "actnorm",
    .forward = an_forward,
    .inverse = an_inverse,
    .forward_backward = an_forward_backward,
    .inverse_backward = an_inverse_backward,
    .data_init = an_data_init,
    .tensors = an_tensors,
};

nf_status nf_bijector_actnorm(size_t d, nf_bijector **out) {
    const char *fn = "nf_bijector_actnorm";
    NF_TRY(nf__check_ctor(fn, d, out));
    actnorm *a = (actnorm *)nf__bijector_alloc(sizeof(actnorm), &actnorm_ops, d, 2 * d);
    if (!a) return nf__err_prefix(NF_ERR_NOMEM, fn);
    *out = &a->base;
    return NF_OK;
}

nf_status nf_bijector_actnorm_initialised(const nf_bijector *b, int *initialised) {
    if (!b || !initialised || b->ops != &actnorm_ops)
        return nf__err(NF_ERR_ARG, "nf_bijector_actnorm_initialised: needs an actnorm bijector and a result pointer");
    *initialised = ((const actnorm *)b)->initialised != 0;
    return NF_OK;
}

int nf__actnorm_describe(const nf_bijector *b) { return b->ops == &actnorm_ops; }
