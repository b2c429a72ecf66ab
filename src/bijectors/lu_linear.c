/*
 * lu_linear.c - Glow's LU-decomposed invertible linear map (Kingma &
 * Dhariwal 2018; nflows' LULinear):
 *   forward (base -> data):  y = P L U' x + b,   U' = U + diag(s), s = e^{log_s}
 *                            fldj = sum log_s
 *   inverse (data -> base):  x = U'^{-1} L^{-1} P^T (y - b)  (two triangular
 *                            solves), ildj = -sum log_s
 * L is unit lower triangular, U strictly upper triangular, P a fixed
 * permutation ((P c)_j = c_perm[j], as nf_bijector_permute).  Parameters:
 * [b (d), L strict lower by rows (d(d-1)/2), U strict upper by rows
 * (d(d-1)/2), log_s (d)]; all zero is P itself.
 *
 * Backward, with a = U' x and c = L a:
 *   forward (g = dL/dy):  dc = P^T g, dL += dc a^T, da = L^T dc,
 *                         dU' += da x^T, dx = U'^T da, db = g, dlog_s += gl
 *   inverse (g = dL/dx):  da = U'^{-T} g, dU' -= da x^T, dc = L^{-T} da,
 *                         dL -= dc a^T, dy = P dc, db = -dy, dlog_s -= gl
 * (dlog_s_i gets dU'_ii s_i).
 */
#include "bijector_impl.h"
#include "describe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct lu_linear {
    nf_bijector base;
    size_t *perm;
    float *permf; /* the permutation as a tensor for model files */
} lu_linear;

typedef struct lu_view {
    const float *b, *lo, *up, *ls;
} lu_view;

static lu_view view_of(const nf_bijector *b, const float *P) {
    size_t d = b->d, t = d * (d - 1) / 2;
    return (lu_view){P, P + d, P + d + t, P + d + 2 * t};
}
/* strict lower (i > j) and strict upper (i < j) packed by rows */
static inline size_t lo_at(size_t i, size_t j) { return i * (i - 1) / 2 + j; }
static inline size_t up_at(size_t d, size_t i, size_t j) { return i * d - i * (i + 1) / 2 + (j - i - 1); }

static size_t lu_scratch_bytes(const nf_bijector *b, size_t n) {
    (void)n;
    return 4 * nf__align(b->d * sizeof(double));
}

/* a = U' x, c = L a for one row */
static void apply_lu(const lu_view *v, size_t d, const float *x, double *a, double *c) {
    for (size_t i = 0; i < d; i++) {
        double s = exp((double)v->ls[i]) * x[i];
        for (size_t j = i + 1; j < d; j++) s += (double)v->up[up_at(d, i, j)] * x[j];
        a[i] = s;
    }
    for (size_t i = 0; i < d; i++) {
        double s = a[i];
        for (size_t j = 0; j < i; j++) s += (double)v->lo[lo_at(i, j)] * a[j];
        c[i] = s;
    }
}

static double sum_log_s(const lu_view *v, size_t d) {
    double s = 0;
    for (size_t i = 0; i < d; i++) s += v->ls[i];
    return s;
}

static nf_status lu_forward(const nf_bijector *b, const nf_pass *p, float *y, float *ldj, const float *x) {
    const lu_linear *L = (const lu_linear *)b;
    size_t d = b->d;
    lu_view v = view_of(b, b->params);
    unsigned char *cur = p->scratch;
    double *a = nf__carve(&cur, d * sizeof(double)), *c = nf__carve(&cur, d * sizeof(double));
    double sl = sum_log_s(&v, d);
    for (size_t r = 0; r < p->n; r++) {
        apply_lu(&v, d, x + r * d, a, c);
        for (size_t j = 0; j < d; j++) y[r * d + j] = (float)(c[L->perm[j]] + (double)v.b[j]);
        if (ldj) ldj[r] += (float)sl;
    }
    return NF_OK;
}

/* c = P^T (y - b), a = L^{-1} c, x = U'^{-1} a for one row */
static void solve_lu(const lu_linear *L, const lu_view *v, size_t d, const float *y, double *c, double *a, double *x) {
    for (size_t j = 0; j < d; j++) c[L->perm[j]] = (double)y[j] - (double)v->b[j];
    for (size_t i = 0; i < d; i++) {
        double s = c[i];
        for (size_t j = 0; j < i; j++) s -= (double)v->lo[lo_at(i, j)] * a[j];
        a[i] = s;
    }
    for (size_t i = d; i-- > 0;) {
        double s = a[i];
        for (size_t j = i + 1; j < d; j++) s -= (double)v->up[up_at(d, i, j)] * x[j];
        x[i] = s * exp(-(double)v->ls[i]);
    }
}

static nf_status lu_inverse(const nf_bijector *b, const nf_pass *p, float *x, float *ldj, const float *y) {
    const lu_linear *L = (const lu_linear *)b;
    size_t d = b->d;
    lu_view v = view_of(b, b->params);
    unsigned char *cur = p->scratch;
    double *c = nf__carve(&cur, d * sizeof(double)), *a = nf__carve(&cur, d * sizeof(double));
    double *xr = nf__carve(&cur, d * sizeof(double));
    double sl = sum_log_s(&v, d);
    for (size_t r = 0; r < p->n; r++) {
        solve_lu(L, &v, d, y + r * d, c, a, xr);
        for (size_t j = 0; j < d; j++) x[r * d + j] = (float)xr[j];
        if (ldj) ldj[r] -= (float)sl;
    }
    return NF_OK;
}

/* Shared backward (see the top of the file): fwd 1 with g = dL/dy gives
 * dx in gin; fwd 0 with g = dL/dx gives dy.  x is the base-side batch. */
static nf_status lu_backward(const nf_bijector *b, const nf_pass *p, float *gin, float *dparams, const float *g,
                             const float *gl, const float *x, int fwd) {
    const lu_linear *L = (const lu_linear *)b;
    size_t d = b->d;
    lu_view v = view_of(b, b->params);
    unsigned char *cur = p->scratch;
    double *a = nf__carve(&cur, d * sizeof(double)), *c = nf__carve(&cur, d * sizeof(double));
    double *dc = nf__carve(&cur, d * sizeof(double)), *da = nf__carve(&cur, d * sizeof(double));
    double sg = fwd ? 1 : -1;
    for (size_t r = 0; r < p->n; r++) {
        const float *xr = x + r * d, *gr = g + r * d;
        apply_lu(&v, d, xr, a, c);
        if (fwd) {
            for (size_t j = 0; j < d; j++) dc[L->perm[j]] = gr[j];
            for (size_t j = 0; j < d; j++) { /* da = L^T dc */
                double s = dc[j];
                for (size_t i = j + 1; i < d; i++) s += (double)v.lo[lo_at(i, j)] * dc[i];
                da[j] = s;
            }
        } else {
            for (size_t i = 0; i < d; i++) { /* U'^T da = g (lower triangular) */
                double s = gr[i];
                for (size_t k = 0; k < i; k++) s -= (double)v.up[up_at(d, k, i)] * da[k];
                da[i] = s * exp(-(double)v.ls[i]);
            }
            for (size_t i = d; i-- > 0;) { /* L^T dc = da (unit upper triangular) */
                double s = da[i];
                for (size_t k = i + 1; k < d; k++) s -= (double)v.lo[lo_at(k, i)] * dc[k];
                dc[i] = s;
            }
        }
        if (dparams) {
            lu_view dv = view_of(b, dparams);
            float *db = (float *)dv.b, *dlo = (float *)dv.lo, *dup = (float *)dv.up, *dls = (float *)dv.ls;
            for (size_t j = 0; j < d; j++) db[j] += (float)(sg * dc[L->perm[j]]);
            for (size_t i = 1; i < d; i++)
                for (size_t j = 0; j < i; j++) dlo[lo_at(i, j)] += (float)(sg * dc[i] * a[j]);
            for (size_t i = 0; i < d; i++) {
                for (size_t j = i + 1; j < d; j++) dup[up_at(d, i, j)] += (float)(sg * da[i] * xr[j]);
                dls[i] += (float)(sg * (da[i] * xr[i] * exp((double)v.ls[i]) + gl[r]));
            }
        }
        if (gin && fwd)
            for (size_t j = 0; j < d; j++) { /* dx = U'^T da */
                double s = exp((double)v.ls[j]) * da[j];
                for (size_t i = 0; i < j; i++) s += (double)v.up[up_at(d, i, j)] * da[i];
                gin[r * d + j] = (float)s;
            }
        if (gin && !fwd)
            for (size_t j = 0; j < d; j++) gin[r * d + j] = (float)dc[L->perm[j]]; /* dy = P dc */
    }
    return NF_OK;
}

static nf_status lu_forward_backward(const nf_bijector *b, const nf_pass *p, float *dx, float *dparams,
                                     const float *g, const float *gl, const float *x, const float *y) {
    (void)y;
    return lu_backward(b, p, dx, dparams, g, gl, x, 1);
}
static nf_status lu_inverse_backward(const nf_bijector *b, const nf_pass *p, float *dy, float *dparams,
                                     const float *g, const float *gl, const float *y, const float *x) {
    (void)y;
    return lu_backward(b, p, dy, dparams, g, gl, x, 0);
}

static nf_status lu_tensors(const nf_bijector *b, const char *prefix, size_t off, nf_tensor_fn fn, void *ctx) {
    size_t d = b->d, t = d * (d - 1) / 2;
    NF_TRY(nf__emit(fn, ctx, prefix, "shift", off, 0, d));
    NF_TRY(nf__emit(fn, ctx, prefix, "lower", off + d, 0, t));
    NF_TRY(nf__emit(fn, ctx, prefix, "upper", off + d + t, 0, t));
    NF_TRY(nf__emit(fn, ctx, prefix, "log_scale", off + d + 2 * t, 0, d));
    nf_tensor_info ti;
    memset(&ti, 0, sizeof ti);
    snprintf(ti.name, sizeof ti.name, "%spermutation", prefix);
    ti.ndim = 1, ti.shape[0] = ti.count = d, ti.buffer = ((const lu_linear *)b)->permf;
    return fn(ctx, &ti);
}

static void lu_destroy(nf_bijector *b) {
    free(((lu_linear *)b)->perm);
    free(((lu_linear *)b)->permf);
}

static const nf_bijector_ops lu_ops = {
    .name = "lu_linear",
    .forward = lu_forward,
    .inverse = lu_inverse,
    .forward_backward = lu_forward_backward,
    .inverse_backward = lu_inverse_backward,
    .scratch_bytes = lu_scratch_bytes,
    .tensors = lu_tensors,
    .destroy = lu_destroy,
};

nf_status nf_bijector_lu_linear(size_t d, const size_t *perm, nf_bijector **out) {
    const char *fn = "nf_bijector_lu_linear";
    NF_TRY(nf__check_ctor(fn, d, out));
    if (d > 65536) return nf__err(NF_ERR_ARG, "%s: d = %zu is too large for a dense map", fn, d);
    lu_linear *L = (lu_linear *)nf__bijector_alloc(sizeof(lu_linear), &lu_ops, d, 2 * d + d * (d - 1));
    if (!L) return nf__err_prefix(NF_ERR_NOMEM, fn);
    L->perm = malloc(d * sizeof(size_t));
    L->permf = malloc(d * sizeof(float));
    unsigned char *seen = calloc(d, 1);
    nf_status s = L->perm && L->permf && seen ? NF_OK : nf__err(NF_ERR_NOMEM, "%s: out of memory", fn);
    for (size_t j = 0; j < d && !s; j++) {
        size_t v = perm ? perm[j] : j;
        if (v >= d || seen[v])
            s = nf__err(NF_ERR_ARG, "%s: perm is not a permutation of 0..%zu: entry %zu is %zu", fn, d - 1, j, v);
        else seen[v] = 1, L->perm[j] = v, L->permf[j] = (float)v;
    }
    free(seen);
    if (s) {
        nf_bijector_free(&L->base);
        return s;
    }
    *out = &L->base;
    return NF_OK;
}

int nf__lu_describe(const nf_bijector *b, const size_t **perm) {
    if (b->ops != &lu_ops) return 0;
    *perm = ((const lu_linear *)b)->perm;
    return 1;
}
