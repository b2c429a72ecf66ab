/*
 * elementwise.c - batched passes for elementwise bijectors (see
 * elementwise.h for the derivative rules).  Scalars are computed in double
 * and rounded once to float.
 */
#include "elementwise.h"

#include <string.h>

typedef struct ew {
    nf_bijector base;
    const nf_ew_kernel *kern;
    size_t nslot;
    float c[NF_EW_MAXC]; /* the kernel's fixed constants */
} ew;

static inline const float *slot_params(const ew *e, size_t j) {
    return e->base.params ? e->base.params + (e->nslot == 1 ? 0 : j) * e->kern->k : NULL;
}

/* What a kernel reads for column j: its fixed constants, or the slot's parameters
 * (a kernel has one or the other, nf__ew_create_const). */
static inline const float *kernel_args(const ew *e, size_t j) { return e->kern->nc ? e->c : slot_params(e, j); }

static nf_status kernel_error(const ew *e, int rc, int fwd, double v, size_t i, size_t j) {
    const nf_ew_kernel *k = e->kern;
    if (rc == NF_EW_BAD_PARAM) {
        const float *p = slot_params(e, j);
        return nf__err(NF_ERR_DOMAIN,
                       "%s: parameter %g of column %zu is invalid (needs %s); the map is not invertible",
                       e->base.name, p ? (double)p[k->k - 1] : 0.0, j,
                       k->param_domain ? k->param_domain : "a valid value");
    }
    return nf__err(NF_ERR_DOMAIN, "%s: %s needs %s, got %s=%g at row %zu, column %zu", e->base.name,
                   fwd ? "forward" : "inverse",
                   (fwd ? k->fwd_domain : k->inv_domain) ? (fwd ? k->fwd_domain : k->inv_domain)
                                                          : "a valid input",
                   fwd ? "x" : "y", v, i, j);
}

static nf_status ew_pass(const nf_bijector *b, const nf_pass *p, float *out, float *ldj,
                         const float *in, int fwd) {
    const ew *e = (const ew *)b;
    const nf_ew_kernel *k = e->kern;
    size_t d = b->d;
    for (size_t i = 0; i < p->n; i++) {
        double acc = 0;
        for (size_t j = 0; j < d; j++) {
            double o, l;
            double v = in[i * d + j];
            const float *a = kernel_args(e, j);
            int rc = fwd ? k->fwd(a, v, &o, &l) : k->inv(a, v, &o, &l);
            if (rc) return kernel_error(e, rc, fwd, v, i, j);
            out[i * d + j] = (float)o;
            acc += l;
        }
        if (ldj) ldj[i] += (float)acc;
    }
    return NF_OK;
}

static nf_status ew_forward(const nf_bijector *b, const nf_pass *p, float *y, float *ldj,
                            const float *x) {
    return ew_pass(b, p, y, ldj, x, 1);
}

static nf_status ew_inverse(const nf_bijector *b, const nf_pass *p, float *x, float *ldj,
                            const float *y) {
    return ew_pass(b, p, x, ldj, y, 0);
}

/* Shared backward: `xs` are the points in the forward domain (the forward
 * input, or the inverse output). */
static nf_status ew_backward(const nf_bijector *b, const nf_pass *p, float *gin, float *dparams,
                             const float *gout, const float *dldj, const float *xs, int fwd) {
    const ew *e = (const ew *)b;
    const nf_ew_kernel *k = e->kern;
    size_t d = b->d, np = b->nparams;
    double *acc = p->scratch; /* np doubles */
    if (dparams && np) memset(acc, 0, np * sizeof(double));
    for (size_t i = 0; i < p->n; i++) {
        double gl = dldj[i];
        for (size_t j = 0; j < d; j++) {
            double fx, lx, fp[NF_EW_MAXP] = {0}, lp[NF_EW_MAXP] = {0};
            double g = gout[i * d + j];
            k->partials(kernel_args(e, j), xs[i * d + j], &fx, &lx, fp, lp);
            double gx, gp[NF_EW_MAXP];
            if (fwd) {
                gx = g * fx + gl * lx;
                for (size_t m = 0; m < k->k; m++) gp[m] = g * fp[m] + gl * lp[m];
            } else {
                if (fx == 0) return kernel_error(e, NF_EW_BAD_PARAM, 0, 0, i, j);
                gx = (g - gl * lx) / fx;
                for (size_t m = 0; m < k->k; m++) {
                    double dxdp = -fp[m] / fx;
                    gp[m] = g * dxdp - gl * (lp[m] + lx * dxdp);
                }
            }
            if (gin) gin[i * d + j] = (float)gx;
            if (dparams)
                for (size_t m = 0; m < k->k; m++) acc[(e->nslot == 1 ? 0 : j) * k->k + m] += gp[m];
        }
    }
    if (dparams)
        for (size_t m = 0; m < np; m++) dparams[m] += (float)acc[m];
    return NF_OK;
}

static nf_status ew_forward_backward(const nf_bijector *b, const nf_pass *p, float *dx,
                                     float *dparams, const float *dy, const float *dldj,
                                     const float *x, const float *y) {
    (void)y;
    return ew_backward(b, p, dx, dparams, dy, dldj, x, 1);
}

static nf_status ew_inverse_backward(const nf_bijector *b, const nf_pass *p, float *dy,
                                     float *dparams, const float *dx, const float *dldj,
                                     const float *y, const float *x) {
    (void)y;
    return ew_backward(b, p, dy, dparams, dx, dldj, x, 0);
}

static size_t ew_scratch_bytes(const nf_bijector *b, size_t n) {
    (void)n;
    return b->nparams * sizeof(double);
}

static int ew_monotone(const nf_bijector *b) {
    const ew *e = (const ew *)b;
    if (e->kern->monotone) return e->kern->monotone;
    int sign = 0;
    for (size_t s = 0; s < e->nslot; s++) {
        double fx, lx, fp[NF_EW_MAXP], lp[NF_EW_MAXP];
        e->kern->partials(kernel_args(e, s), 0.0, &fx, &lx, fp, lp);
        int sg = fx > 0 ? 1 : fx < 0 ? -1 : 0;
        if (sg == 0 || (sign && sg != sign)) return 0;
        sign = sg;
    }
    return sign;
}

/* k == 1: one tensor [nslot]; k == 2 (one slot): one [1] tensor each. */
static nf_status ew_tensors(const nf_bijector *b, const char *prefix, size_t off, nf_tensor_fn fn, void *ctx) {
    const ew *e = (const ew *)b;
    for (size_t m = 0; m < e->kern->k; m++)
        NF_TRY(nf__emit(fn, ctx, prefix, e->kern->pnames[m], off + m, 0, e->kern->k == 1 ? e->nslot : 1));
    return NF_OK;
}

static const nf_bijector_ops ew_ops = {
    .name = "elementwise",
    .forward = ew_forward,
    .inverse = ew_inverse,
    .forward_backward = ew_forward_backward,
    .inverse_backward = ew_inverse_backward,
    .scratch_bytes = ew_scratch_bytes,
    .monotone = ew_monotone,
    .tensors = ew_tensors,
};

nf_status nf__ew_create(const char *fn, const nf_ew_kernel *kern, size_t d, size_t nslot,
                        const float *init, nf_bijector **out) {
    return nf__ew_create_const(fn, kern, d, nslot, init, NULL, out);
}

nf_status nf__ew_create_const(const char *fn, const nf_ew_kernel *kern, size_t d, size_t nslot, const float *init,
                              const float *consts, nf_bijector **out) {
    NF_TRY(nf__check_ctor(fn, d, out));
    if (kern->nc && (kern->k || !consts || nf__first_nonfinite(consts, kern->nc) < kern->nc))
        return nf__err(NF_ERR_ARG, "%s: its constants must be given and finite (and it has no parameters)", fn);
    size_t np = nslot * kern->k;
    if (init) {
        size_t bad = nf__first_nonfinite(init, np);
        if (bad < np)
            return nf__err(NF_ERR_DOMAIN, "%s: parameter %zu is not finite (%g)", fn, bad,
                           (double)init[bad]);
    }
    ew *e = (ew *)nf__bijector_alloc(sizeof(ew), &ew_ops, d, np);
    if (!e) return nf__err_prefix(NF_ERR_NOMEM, fn);
    e->base.name = kern->name;
    e->kern = kern;
    e->nslot = nslot;
    if (kern->nc) memcpy(e->c, consts, kern->nc * sizeof(float));
    if (init && np) memcpy(e->base.params, init, np * sizeof(float));
    /* Reject parameters (and constants) that make the map non-invertible now, not at first use. */
    for (size_t s = 0; s < (kern->k ? nslot : 1) && (kern->k || kern->nc); s++) {
        double y, l;
        if (kern->fwd(kernel_args(e, s), 0.0, &y, &l) == NF_EW_BAD_PARAM) {
            kernel_error(e, NF_EW_BAD_PARAM, 1, 0, 0, s);
            nf_bijector_free(&e->base);
            return nf__err_prefix(NF_ERR_DOMAIN, fn);
        }
    }
    *out = &e->base;
    return NF_OK;
}
