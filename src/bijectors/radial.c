/*
 * radial.c - radial flow (Rezende & Mohamed 2015, eq. 14 and appendix A):
 *   forward (base -> data):  y = z + beta h(r) (z - z0),  h = 1 / (alpha + r),
 *                            r = |z - z0|
 *   fldj = (d - 1) log A + log(A + B),  A = 1 + beta h,  B = -beta r h^2
 * with alpha = softplus(a) > 0 and beta = -alpha + softplus(b') >= -alpha
 * (invertible).  Parameters: [z0 (d), a, b'].
 *   inverse: r_y = |y - z0| = r (1 + beta / (alpha + r)) is the quadratic
 *            r^2 + (alpha + beta - r_y) r - alpha r_y = 0 in r >= 0 (its
 *            non-negative root, in a cancellation-free form); then
 *            z = z0 + (y - z0) / (1 + beta / (alpha + r)).
 * Backward of the forward pass (g = dL/dy, gl = dL/dfldj), D = z - z0,
 * gamma = g.D, F = fldj as a function of r:
 *   dz  = g A + (beta h' gamma / r + gl F_r / r) D,     h' = -h^2
 *   dz0 = g - dz
 *   dbeta  = h gamma + gl ((d-1) h / A + alpha h^2 / (A + B))
 *   dalpha = -beta h^2 gamma + gl ((d-1)(-beta h^2) / A + beta (r - alpha) h^3 / (A + B))
 * then through the softplus reparameterisations.  The Jacobian
 * J = A I + B e e^T (e = D / r) is symmetric, so the inverse pass's backward
 * is dy = J^{-1} (g - gl grad fldj) and the forward's parameter gradients at
 * (-dy, -gl).
 */
#include "bijector_impl.h"

#include <string.h>

typedef struct rad {
    double alpha, beta, sa, sb; /* sa, sb: the softplus derivatives (sigmoids) */
} rad;

static rad params_of(const nf_bijector *b) {
    double a = b->params[b->d], bp = b->params[b->d + 1];
    rad r;
    r.alpha = nf__softplus(a);
    r.beta = -r.alpha + nf__softplus(bp);
    r.sa = nf__sigmoid(a), r.sb = nf__sigmoid(bp);
    return r;
}

static size_t ra_scratch_bytes(const nf_bijector *b, size_t n) {
    (void)n;
    return 4 * nf__align(b->d * sizeof(double));
}

/* r, h, A, B and F_r at a row z */
typedef struct geo {
    double r, h, A, B, Fr;
} geo;

static geo geometry(const rad *p, size_t d, const float *z, const float *z0, double *D) {
    geo g;
    double r2 = 0;
    for (size_t j = 0; j < d; j++) D[j] = (double)z[j] - z0[j], r2 += D[j] * D[j];
    g.r = sqrt(r2);
    double ar = p->alpha + g.r;
    g.h = 1 / ar;
    g.A = 1 + p->beta * g.h;
    g.B = -p->beta * g.r * g.h * g.h;
    /* dA/dr = -beta h^2, d(A+B)/dr = -2 beta alpha h^3 */
    g.Fr = (double)(d - 1) * (-p->beta * g.h * g.h) / g.A + (-2 * p->beta * p->alpha * g.h * g.h * g.h) / (g.A + g.B);
    return g;
}

/* fldj of a row from its geometry */
static double fldj_of(const geo *g, size_t d) { return (double)(d - 1) * log(fabs(g->A)) + log(fabs(g->A + g->B)); }

static nf_status ra_forward(const nf_bijector *b, const nf_pass *pp, float *y, float *ldj, const float *z) {
    size_t d = b->d;
    rad p = params_of(b);
    double *D = pp->scratch;
    for (size_t i = 0; i < pp->n; i++) {
        geo g = geometry(&p, d, z + i * d, b->params, D);
        for (size_t j = 0; j < d; j++) y[i * d + j] = (float)((double)z[i * d + j] + p.beta * g.h * D[j]);
        if (ldj) ldj[i] += (float)fldj_of(&g, d);
    }
    return NF_OK;
}

static nf_status ra_inverse(const nf_bijector *b, const nf_pass *pp, float *z, float *ldj, const float *y) {
    size_t d = b->d;
    rad p = params_of(b);
    const float *z0 = b->params;
    unsigned char *cur = pp->scratch;
    double *D = nf__carve(&cur, d * sizeof(double));
    for (size_t i = 0; i < pp->n; i++) {
        double ry2 = 0;
        for (size_t j = 0; j < d; j++) {
            double v = (double)y[i * d + j] - z0[j];
            ry2 += v * v;
        }
        double ry = sqrt(ry2), q = p.alpha + p.beta - ry, disc = sqrt(q * q + 4 * p.alpha * ry);
        double r = q > 0 ? 2 * p.alpha * ry / (q + disc) : 0.5 * (disc - q);
        double s = 1 / (1 + p.beta / (p.alpha + r));
        for (size_t j = 0; j < d; j++) z[i * d + j] = (float)(z0[j] + s * ((double)y[i * d + j] - z0[j]));
        if (ldj) {
            geo g = geometry(&p, d, z + i * d, z0, D);
            ldj[i] -= (float)fldj_of(&g, d);
        }
    }
    return NF_OK;
}

/* Forward-pass reverse mode for one row: writes dz (may be NULL), adds
 * into dz0 (acc, d) and dalpha, dbeta. */
static void row_backward(const rad *p, size_t d, const double *D, const geo *g, const double *gy, double gl, double *dz,
                         double *acc, double *dalpha, double *dbeta) {
    double gamma = 0;
    for (size_t j = 0; j < d; j++) gamma += gy[j] * D[j];
    double h2 = g->h * g->h, coef = g->r > 0 ? (p->beta * -h2 * gamma + gl * g->Fr) / g->r : 0;
    for (size_t j = 0; j < d; j++) {
        double dzj = gy[j] * g->A + coef * D[j];
        if (dz) dz[j] = dzj;
        acc[j] += gy[j] - dzj;
    }
    *dbeta += g->h * gamma + gl * ((double)(d - 1) * g->h / g->A + p->alpha * h2 / (g->A + g->B));
    *dalpha += -p->beta * h2 * gamma +
               gl * ((double)(d - 1) * (-p->beta * h2) / g->A + p->beta * (g->r - p->alpha) * h2 * g->h / (g->A + g->B));
}

static nf_status ra_backward(const nf_bijector *b, const nf_pass *pp, float *gin, float *dparams, const float *gout,
                             const float *gl, const float *z, int fwd) {
    size_t d = b->d;
    rad p = params_of(b);
    const float *z0 = b->params;
    unsigned char *cur = pp->scratch;
    double *D = nf__carve(&cur, d * sizeof(double)), *acc = nf__carve(&cur, 3 * d * sizeof(double));
    double *gy = acc + d, *dz = acc + 2 * d, dal = 0, dbe = 0;
    memset(acc, 0, d * sizeof(double));
    for (size_t i = 0; i < pp->n; i++) {
        geo g = geometry(&p, d, z + i * d, z0, D);
        if (fwd) {
            for (size_t j = 0; j < d; j++) gy[j] = gout[i * d + j];
            row_backward(&p, d, D, &g, gy, gl[i], dz, acc, &dal, &dbe);
            if (gin)
                for (size_t j = 0; j < d; j++) gin[i * d + j] = (float)dz[j];
            continue;
        }
        /* inverse: v = g - gl grad fldj (grad fldj = F_r e); dy = J^{-1} v,
         * J^{-1} v = (v - B / (A + B) e (e.v)) / A */
        double ev = 0;
        for (size_t j = 0; j < d; j++) {
            double e = g.r > 0 ? D[j] / g.r : 0;
            gy[j] = (double)gout[i * d + j] - gl[i] * g.Fr * e;
            ev += e * gy[j];
        }
        for (size_t j = 0; j < d; j++) {
            double e = g.r > 0 ? D[j] / g.r : 0;
            gy[j] = (gy[j] - g.B / (g.A + g.B) * e * ev) / g.A;
            if (gin) gin[i * d + j] = (float)gy[j];
            gy[j] = -gy[j];
        }
        row_backward(&p, d, D, &g, gy, -gl[i], NULL, acc, &dal, &dbe);
    }
    if (dparams) {
        for (size_t j = 0; j < d; j++) dparams[j] += (float)acc[j];
        /* alpha = softplus(a), beta = -alpha + softplus(b') */
        dparams[d] += (float)((dal - dbe) * p.sa);
        dparams[d + 1] += (float)(dbe * p.sb);
    }
    return NF_OK;
}

static nf_status ra_forward_backward(const nf_bijector *b, const nf_pass *p, float *dx, float *dparams,
                                     const float *dy, const float *dldj, const float *x, const float *y) {
    (void)y;
    return ra_backward(b, p, dx, dparams, dy, dldj, x, 1);
}
static nf_status ra_inverse_backward(const nf_bijector *b, const nf_pass *p, float *dy, float *dparams,
                                     const float *dx, const float *dldj, const float *y, const float *x) {
    (void)y;
    return ra_backward(b, p, dy, dparams, dx, dldj, x, 0);
}

/* z0 ~ N(0, 1), a and b' such that alpha = 1 and beta near 0 */
static nf_status ra_init(nf_bijector *b, nf_rng *rng) {
    for (size_t j = 0; j < b->d; j++) b->params[j] = nf_rng_normal(rng);
    b->params[b->d] = 0.5413f;                                  /* softplus = 1 */
    b->params[b->d + 1] = 0.5413f + 0.1f * nf_rng_normal(rng); /* beta = softplus(b') - 1 */
    return NF_OK;
}

static nf_status ra_tensors(const nf_bijector *b, const char *prefix, size_t off, nf_tensor_fn fn, void *ctx) {
    NF_TRY(nf__emit(fn, ctx, prefix, "z0", off, 0, b->d));
    NF_TRY(nf__emit(fn, ctx, prefix, "alpha_raw", off + b->d, 0, 1));
    return nf__emit(fn, ctx, prefix, "beta_raw", off + b->d + 1, 0, 1);
}

static const nf_bijector_ops radial_ops = {
    .name = "radial",
    .forward = ra_forward,
    .inverse = ra_inverse,
    .forward_backward = ra_forward_backward,
    .inverse_backward = ra_inverse_backward,
    .scratch_bytes = ra_scratch_bytes,
    .init_params = ra_init,
    .tensors = ra_tensors,
};

nf_status nf_bijector_radial(size_t d, nf_rng *rng, nf_bijector **out) {
    const char *fn = "nf_bijector_radial";
    NF_TRY(nf__check_ctor(fn, d, out));
    if (!rng) return nf__err(NF_ERR_ARG, "%s: rng is NULL", fn);
    nf_bijector *b = nf__bijector_alloc(sizeof(nf_bijector), &radial_ops, d, d + 2);
    if (!b) return nf__err_prefix(NF_ERR_NOMEM, fn);
    ra_init(b, rng);
    *out = b;
    return NF_OK;
}
