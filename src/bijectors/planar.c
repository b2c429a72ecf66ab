/*
 * planar.c - planar flow (Rezende & Mohamed 2015, "Variational Inference
 * with Normalizing Flows", eq. 10-12):
 *   forward (base -> data):  y = z + u' tanh(w.z + b),
 *                            fldj = log|1 + (1 - t^2) w.u'|,  t = tanh(w.z + b)
 * with u' = u + (m(w.u) - w.u) w / |w|^2, m(a) = -1 + softplus(a), so that
 * w.u' >= -1 and the map is invertible (the paper's appendix A).
 *   inverse: w.y = a + c tanh(a + b) with a = w.z, c = w.u' is monotone in
 *            a; a safeguarded Newton iteration solves it, then
 *            z = y - u' tanh(a + b).
 * Parameters: [u (d), w (d), b].
 * Backward of the forward pass (g = dL/dy, gl = dL/dfldj), D = 1 + (1-t^2) c:
 *   dL/da = (g.u')(1 - t^2) - gl 2 t (1 - t^2) c / D
 *   dz = g + dL/da w,  du' = g t + gl (1-t^2)/D w,
 *   dw = dL/da z + gl (1-t^2)/D u' (+ the path through u'),  db = dL/da.
 * Backward of the inverse: with J = I + (1-t^2) u' w^T (Sherman-Morrison),
 *   dy = J^{-T} (g - gl grad_z fldj), and the parameters get the forward
 *   pass's gradients for (g_y, gl) = (-dy, -gl) at z.
 */
#include "bijector_impl.h"

#include <stdlib.h>
#include <string.h>

/* u' and what its chain rule needs */
typedef struct uhat {
    double *uh;      /* d */
    double kappa, q, ww, sig; /* w.u, (m - kappa)/|w|^2, |w|^2, sigmoid(kappa) */
} uhat;

static void make_uhat(const float *P, size_t d, uhat *h) {
    const float *u = P, *w = P + d;
    double k = 0, ww = 0;
    for (size_t j = 0; j < d; j++) k += (double)w[j] * u[j], ww += (double)w[j] * w[j];
    ww = ww > 1e-30 ? ww : 1e-30;
    double m = -1 + nf__softplus(k);
    h->kappa = k, h->ww = ww, h->q = (m - k) / ww, h->sig = nf__sigmoid(k);
    for (size_t j = 0; j < d; j++) h->uh[j] = u[j] + h->q * w[j];
}

/* u' (carved from the scratch) and c = w.u' */
static double setup(const nf_bijector *b, unsigned char **cur, uhat *h) {
    size_t d = b->d;
    const float *w = b->params + d;
    h->uh = nf__carve(cur, d * sizeof(double));
    make_uhat(b->params, d, h);
    double c = 0;
    for (size_t j = 0; j < d; j++) c += (double)w[j] * h->uh[j];
    return c;
}

static size_t pl_scratch_bytes(const nf_bijector *b, size_t n) {
    (void)n;
    return 5 * nf__align(b->d * sizeof(double));
}

/* Solves a + c tanh(a + bb) = s for a (c >= -1: monotone, a in [s-|c|, s+|c|]). */
static double solve_a(double s, double c, double bb) {
    double lo = s - fabs(c), hi = s + fabs(c), a = s - c * tanh(s + bb);
    a = fmin(fmax(a, lo), hi);
    for (int it = 0; it < 100; it++) {
        double t = tanh(a + bb), f = a + c * t - s, fp = 1 + c * (1 - t * t);
        if (f == 0) break;
        if (f > 0) hi = a;
        else lo = a;
        double an = fp > 0 ? a - f / fp : 0.5 * (lo + hi);
        if (!(an > lo && an < hi)) an = 0.5 * (lo + hi); /* bisect when Newton leaves the bracket */
        if (fabs(an - a) <= 1e-15 * (1 + fabs(a))) {
            a = an;
            break;
        }
        a = an;
    }
    return a;
}

/* forward: y = z + u' t with t = tanh(w.z + b); inverse: the same t from
 * w.y by solve_a, then z = y - u' t. */
static nf_status pl_pass(const nf_bijector *b, const nf_pass *p, float *out, float *ldj, const float *in, int fwd) {
    size_t d = b->d;
    const float *w = b->params + d, bb = b->params[2 * d];
    unsigned char *cur = p->scratch;
    uhat h;
    double c = setup(b, &cur, &h);
    for (size_t i = 0; i < p->n; i++) {
        const float *r = in + i * d;
        double s = 0;
        for (size_t j = 0; j < d; j++) s += (double)w[j] * r[j];
        double t = tanh(fwd ? s + bb : solve_a(s, c, bb) + bb), l = log(fabs(1 + (1 - t * t) * c));
        for (size_t j = 0; j < d; j++) out[i * d + j] = (float)(r[j] + (fwd ? 1 : -1) * h.uh[j] * t);
        if (ldj) ldj[i] += (float)(fwd ? l : -l);
    }
    return NF_OK;
}
static nf_status pl_forward(const nf_bijector *b, const nf_pass *p, float *y, float *ldj, const float *z) {
    return pl_pass(b, p, y, ldj, z, 1);
}
static nf_status pl_inverse(const nf_bijector *b, const nf_pass *p, float *z, float *ldj, const float *y) {
    return pl_pass(b, p, z, ldj, y, 0);
}

/* Forward-pass reverse mode for one row at z: adds into du' (acc_uh), dw
 * (direct part, acc_w) and db; writes dz (may be NULL). */
static void row_backward(const float *w, double bb, const uhat *h, double c, size_t d, const float *z,
                         const double *g, double gl, double *dz, double *acc_uh, double *acc_w, double *acc_b) {
    double a = 0, gu = 0;
    for (size_t j = 0; j < d; j++) a += (double)w[j] * z[j], gu += g[j] * h->uh[j];
    double t = tanh(a + bb), s1 = 1 - t * t, D = 1 + s1 * c;
    double dLda = gu * s1 - gl * 2 * t * s1 * c / D, k = gl * s1 / D;
    for (size_t j = 0; j < d; j++) {
        if (dz) dz[j] = g[j] + dLda * w[j];
        acc_uh[j] += g[j] * t + k * w[j];
        acc_w[j] += dLda * z[j] + k * h->uh[j];
    }
    *acc_b += dLda;
}

/* Adds the accumulated du', dw, db into dparams (u' depends on u and w). */
static void finish_params(const float *P, size_t d, const uhat *h, const double *duh, const double *dw, double db,
                          float *dparams) {
    const float *u = P, *w = P + d;
    double dw_uh = 0; /* du'.w */
    for (size_t j = 0; j < d; j++) dw_uh += duh[j] * w[j];
    double s1 = h->sig - 1, mk = h->q * h->ww; /* m' - 1, m - kappa */
    for (size_t j = 0; j < d; j++) {
        dparams[j] += (float)(duh[j] + dw_uh * s1 * w[j] / h->ww);
        dparams[d + j] += (float)(dw[j] + h->q * duh[j] + dw_uh * (s1 * u[j] / h->ww - 2 * mk * w[j] / (h->ww * h->ww)));
    }
    dparams[2 * d] += (float)db;
}

static nf_status pl_backward(const nf_bijector *b, const nf_pass *p, float *gin, float *dparams, const float *gout,
                             const float *gl, const float *z, const float *y, int fwd) {
    size_t d = b->d;
    const float *w = b->params + d, bb = b->params[2 * d];
    unsigned char *cur = p->scratch;
    uhat h;
    double c = setup(b, &cur, &h);
    double *acc = nf__carve(&cur, 2 * d * sizeof(double)), *g = nf__carve(&cur, d * sizeof(double));
    double *dz = nf__carve(&cur, d * sizeof(double)), accb = 0;
    memset(acc, 0, 2 * d * sizeof(double));
    (void)y;
    for (size_t i = 0; i < p->n; i++) {
        const float *zr = z + i * d;
        if (fwd) {
            for (size_t j = 0; j < d; j++) g[j] = gout[i * d + j];
            row_backward(w, bb, &h, c, d, zr, g, gl[i], dz, acc, acc + d, &accb);
            if (gin)
                for (size_t j = 0; j < d; j++) gin[i * d + j] = (float)dz[j];
            continue;
        }
        /* inverse: dy = J^{-T} (g - gl grad fldj), grad fldj = -2 t (1-t^2) c / D w */
        double a = 0;
        for (size_t j = 0; j < d; j++) a += (double)w[j] * zr[j];
        double t = tanh(a + bb), s1 = 1 - t * t, D = 1 + s1 * c, gf = -2 * t * s1 * c / D;
        double uv = 0;
        for (size_t j = 0; j < d; j++) {
            g[j] = (double)gout[i * d + j] - gl[i] * gf * w[j];
            uv += h.uh[j] * g[j];
        }
        for (size_t j = 0; j < d; j++) g[j] -= s1 * uv / D * w[j]; /* g is now dL/dy */
        if (gin)
            for (size_t j = 0; j < d; j++) gin[i * d + j] = (float)g[j];
        for (size_t j = 0; j < d; j++) g[j] = -g[j];
        row_backward(w, bb, &h, c, d, zr, g, -gl[i], NULL, acc, acc + d, &accb);
    }
    if (dparams) finish_params(b->params, d, &h, acc, acc + d, accb, dparams);
    return NF_OK;
}

static nf_status pl_forward_backward(const nf_bijector *b, const nf_pass *p, float *dx, float *dparams,
                                     const float *dy, const float *dldj, const float *x, const float *y) {
    return pl_backward(b, p, dx, dparams, dy, dldj, x, y, 1);
}
static nf_status pl_inverse_backward(const nf_bijector *b, const nf_pass *p, float *dy, float *dparams,
                                     const float *dx, const float *dldj, const float *y, const float *x) {
    return pl_backward(b, p, dy, dparams, dx, dldj, x, y, 0);
}

/* u, w ~ N(0, 0.01) (a near-identity start), b = 0 */
static nf_status pl_init(nf_bijector *b, nf_rng *rng) {
    for (size_t j = 0; j < 2 * b->d; j++) b->params[j] = 0.1f * nf_rng_normal(rng);
    b->params[2 * b->d] = 0;
    return NF_OK;
}

static nf_status pl_tensors(const nf_bijector *b, const char *prefix, size_t off, nf_tensor_fn fn, void *ctx) {
    NF_TRY(nf__emit(fn, ctx, prefix, "u", off, 0, b->d));
    NF_TRY(nf__emit(fn, ctx, prefix, "w", off + b->d, 0, b->d));
    return nf__emit(fn, ctx, prefix, "b", off + 2 * b->d, 0, 1);
}

static const nf_bijector_ops planar_ops = {
    .name = "planar",
    .forward = pl_forward,
    .inverse = pl_inverse,
    .forward_backward = pl_forward_backward,
    .inverse_backward = pl_inverse_backward,
    .scratch_bytes = pl_scratch_bytes,
    .init_params = pl_init,
    .tensors = pl_tensors,
};

nf_status nf_bijector_planar(size_t d, nf_rng *rng, nf_bijector **out) {
    const char *fn = "nf_bijector_planar";
    NF_TRY(nf__check_ctor(fn, d, out));
    if (!rng) return nf__err(NF_ERR_ARG, "%s: rng is NULL", fn);
    nf_bijector *b = nf__bijector_alloc(sizeof(nf_bijector), &planar_ops, d, 2 * d + 1);
    if (!b) return nf__err_prefix(NF_ERR_NOMEM, fn);
    pl_init(b, rng);
    *out = b;
    return NF_OK;
}
