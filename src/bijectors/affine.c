/*
 * affine.c - TFP Affine with a lower-triangular scale and a low-rank update:
 *
 *   y = M x + shift,   M = L + V V^T,   L (d x d) lower triangular, V (d x r).
 *
 * log|det M| by the matrix determinant lemma:
 *   det(L + V V^T) = det(L) det(C),   C = I_r + V^T L^-1 V   (r x r)
 * inverse by the Woodbury identity:
 *   M^-1 u = a - W C^-1 V^T a,   a = L^-1 u,   W = L^-1 V.
 *
 * Gradients (G = dL/dy per row, S = sum of dL/dldj over the batch):
 *   forward:  dx = M^T G,       dM = sum G x^T + S M^-T
 *   inverse:  dy = M^-T G,      dM = -sum dy x^T - S M^-T,  dshift = -sum dy
 *   and from dM:  dL = tril(dM),  dV = (dM + dM^T) V.
 * Parameters: [shift (d), L packed by rows (d(d+1)/2), V (d x r)].
 * All factorisation work is done in double once per batch.
 */
#include "bijector_impl.h"

#include <stdlib.h>
#include <string.h>

typedef struct affine {
    nf_bijector base;
    size_t r;
} affine;

#define LIDX(i, j) ((i) * ((i) + 1) / 2 + (j))

/* The per-batch factorisation, carved from scratch. */
typedef struct factor {
    double *M;    /* d x d dense L + V V^T */
    double *W;    /* d x r, L^-1 V */
    double *C;    /* r x r LU of I + V^T W */
    size_t *piv;  /* r */
    double *Minv; /* d x d (backward only) */
    double *a, *t, *u; /* d, r, d row temporaries */
    double *G;    /* nparams gradient accumulator */
    double *dM;   /* d x d */
    double logdet;
} factor;

static size_t factor_bytes(size_t d, size_t r, size_t np) {
    return nf__align(d * d * 8) * 3 + nf__align(d * r * 8) + nf__align(r * r * 8 + 8) +
           nf__align(r * sizeof(size_t) + 8) + nf__align(2 * d * 8 + r * 8 + 8) +
           nf__align(np * 8);
}

static size_t affine_scratch_bytes(const nf_bijector *b, size_t n) {
    (void)n;
    const affine *a = (const affine *)b;
    return factor_bytes(b->d, a->r, b->nparams);
}

static nf_status factorize(const affine *A, void *scratch, factor *f, int need_inverse) {
    size_t d = A->base.d, r = A->r;
    const float *L = A->base.params + d, *V = L + d * (d + 1) / 2;
    unsigned char *cur = scratch;
    f->M = nf__carve(&cur, d * d * 8);
    f->Minv = nf__carve(&cur, d * d * 8);
    f->dM = nf__carve(&cur, d * d * 8);
    f->W = nf__carve(&cur, d * r * 8);
    f->C = nf__carve(&cur, r * r * 8 + 8);
    f->piv = nf__carve(&cur, r * sizeof(size_t) + 8);
    f->a = nf__carve(&cur, 2 * d * 8 + r * 8 + 8);
    f->u = f->a + d;
    f->t = f->u + d;
    f->G = nf__carve(&cur, A->base.nparams * 8);
    double lad = 0;
    for (size_t i = 0; i < d; i++) {
        double lii = L[LIDX(i, i)];
        if (lii == 0 || !isfinite(lii))
            return nf__err(NF_ERR_DOMAIN,
                           "affine: scale_tril diagonal L[%zu][%zu]=%g must be finite and nonzero",
                           i, i, lii);
        lad += log(fabs(lii));
    }
    for (size_t i = 0; i < d; i++)
        for (size_t j = 0; j < d; j++) {
            double m = j <= i ? L[LIDX(i, j)] : 0;
            for (size_t k = 0; k < r; k++) m += (double)V[i * r + k] * V[j * r + k];
            f->M[i * d + j] = m;
        }
    /* W = L^-1 V by forward substitution, column by column. */
    for (size_t k = 0; k < r; k++)
        for (size_t i = 0; i < d; i++) {
            double s = V[i * r + k];
            for (size_t j = 0; j < i; j++) s -= L[LIDX(i, j)] * f->W[j * r + k];
            f->W[i * r + k] = s / L[LIDX(i, i)];
        }
    for (size_t p = 0; p < r; p++)
        for (size_t q = 0; q < r; q++) {
            double s = p == q;
            for (size_t i = 0; i < d; i++) s += (double)V[i * r + p] * f->W[i * r + q];
            f->C[p * r + q] = s;
        }
    double ladc = 0;
    if (r && nf__lu(f->C, r, f->piv, &ladc))
        return nf__err(NF_ERR_DOMAIN, "affine: L + V V^T is singular (I + V^T L^-1 V has a zero pivot)");
    f->logdet = lad + ladc;
    if (!isfinite(f->logdet))
        return nf__err(NF_ERR_NUMERIC, "affine: log|det(L + V V^T)| is not finite");
    (void)need_inverse;
    return NF_OK;
}

/* out = M^-1 u (Woodbury), with f->a and f->t as temporaries. */
static void solve_m(const affine *A, const factor *f, double *out, const double *u) {
    size_t d = A->base.d, r = A->r;
    const float *L = A->base.params + d, *V = L + d * (d + 1) / 2;
    double *a = f->a, *t = f->t;
    for (size_t i = 0; i < d; i++) {
        double s = u[i];
        for (size_t j = 0; j < i; j++) s -= L[LIDX(i, j)] * a[j];
        a[i] = s / L[LIDX(i, i)];
    }
    for (size_t k = 0; k < r; k++) {
        double s = 0;
        for (size_t i = 0; i < d; i++) s += (double)V[i * r + k] * a[i];
        t[k] = s;
    }
    if (r) nf__lu_solve(f->C, f->piv, r, t);
    for (size_t i = 0; i < d; i++) {
        double s = a[i];
        for (size_t k = 0; k < r; k++) s -= f->W[i * r + k] * t[k];
        out[i] = s;
    }
}

static nf_status affine_forward(const nf_bijector *b, const nf_pass *p, float *y, float *ldj,
                                const float *x) {
    const affine *A = (const affine *)b;
    size_t d = b->d;
    factor f;
    NF_TRY(factorize(A, p->scratch, &f, 0));
    const float *shift = b->params;
    for (size_t i = 0; i < p->n; i++) {
        for (size_t j = 0; j < d; j++) {
            double s = shift[j];
            for (size_t k = 0; k < d; k++) s += f.M[j * d + k] * x[i * d + k];
            y[i * d + j] = (float)s;
        }
        if (ldj) ldj[i] += (float)f.logdet;
    }
    return NF_OK;
}

static nf_status affine_inverse(const nf_bijector *b, const nf_pass *p, float *x, float *ldj,
                                const float *y) {
    const affine *A = (const affine *)b;
    size_t d = b->d;
    factor f;
    NF_TRY(factorize(A, p->scratch, &f, 1));
    const float *shift = b->params;
    for (size_t i = 0; i < p->n; i++) {
        for (size_t j = 0; j < d; j++) f.u[j] = (double)y[i * d + j] - shift[j];
        solve_m(A, &f, f.u, f.u);
        for (size_t j = 0; j < d; j++) x[i * d + j] = (float)f.u[j];
        if (ldj) ldj[i] -= (float)f.logdet;
    }
    return NF_OK;
}

/* Minv = M^-1, column by column. */
static void invert_m(const affine *A, factor *f) {
    size_t d = A->base.d;
    for (size_t j = 0; j < d; j++) {
        for (size_t i = 0; i < d; i++) f->u[i] = i == j;
        solve_m(A, f, f->u, f->u);
        for (size_t i = 0; i < d; i++) f->Minv[i * d + j] = f->u[i];
    }
}

/* Adds the parameter gradient implied by dM (and dshift in f->G[0..d)) to dparams. */
static void project_dm(const affine *A, factor *f, float *dparams) {
    size_t d = A->base.d, r = A->r;
    const float *V = A->base.params + d + d * (d + 1) / 2;
    double *gL = f->G + d, *gV = gL + d * (d + 1) / 2;
    for (size_t i = 0; i < d; i++)
        for (size_t j = 0; j <= i; j++) gL[LIDX(i, j)] = f->dM[i * d + j];
    for (size_t i = 0; i < d; i++)
        for (size_t k = 0; k < r; k++) {
            double s = 0;
            for (size_t j = 0; j < d; j++) s += (f->dM[i * d + j] + f->dM[j * d + i]) * V[j * r + k];
            gV[i * r + k] = s;
        }
    for (size_t m = 0; m < A->base.nparams; m++) dparams[m] += (float)f->G[m];
}

static nf_status affine_forward_backward(const nf_bijector *b, const nf_pass *p, float *dx,
                                         float *dparams, const float *dy, const float *dldj,
                                         const float *x, const float *y) {
    (void)y;
    const affine *A = (const affine *)b;
    size_t d = b->d;
    factor f;
    NF_TRY(factorize(A, p->scratch, &f, 1));
    if (dx)
        for (size_t i = 0; i < p->n; i++)
            for (size_t k = 0; k < d; k++) {
                double s = 0;
                for (size_t j = 0; j < d; j++) s += f.M[j * d + k] * dy[i * d + j];
                dx[i * d + k] = (float)s;
            }
    if (!dparams) return NF_OK;
    double S = 0;
    memset(f.G, 0, b->nparams * sizeof(double));
    memset(f.dM, 0, d * d * sizeof(double));
    for (size_t i = 0; i < p->n; i++) {
        S += dldj[i];
        for (size_t j = 0; j < d; j++) {
            double g = dy[i * d + j];
            f.G[j] += g;
            for (size_t k = 0; k < d; k++) f.dM[j * d + k] += g * x[i * d + k];
        }
    }
    if (S != 0) {
        invert_m(A, &f);
        for (size_t j = 0; j < d; j++)
            for (size_t k = 0; k < d; k++) f.dM[j * d + k] += S * f.Minv[k * d + j];
    }
    project_dm(A, &f, dparams);
    return NF_OK;
}

static nf_status affine_inverse_backward(const nf_bijector *b, const nf_pass *p, float *dy,
                                         float *dparams, const float *dx, const float *dldj,
                                         const float *y, const float *x) {
    (void)y;
    const affine *A = (const affine *)b;
    size_t d = b->d;
    factor f;
    NF_TRY(factorize(A, p->scratch, &f, 1));
    invert_m(A, &f);
    double S = 0;
    if (dparams) {
        memset(f.G, 0, b->nparams * sizeof(double));
        memset(f.dM, 0, d * d * sizeof(double));
    }
    for (size_t i = 0; i < p->n; i++) {
        S += dldj[i];
        /* g = M^-T dx_i */
        for (size_t k = 0; k < d; k++) {
            double s = 0;
            for (size_t j = 0; j < d; j++) s += f.Minv[j * d + k] * dx[i * d + j];
            f.u[k] = s;
        }
        if (dy)
            for (size_t k = 0; k < d; k++) dy[i * d + k] = (float)f.u[k];
        if (dparams)
            for (size_t j = 0; j < d; j++) {
                f.G[j] -= f.u[j];
                for (size_t k = 0; k < d; k++) f.dM[j * d + k] -= f.u[j] * x[i * d + k];
            }
    }
    if (!dparams) return NF_OK;
    for (size_t j = 0; j < d; j++)
        for (size_t k = 0; k < d; k++) f.dM[j * d + k] -= S * f.Minv[k * d + j];
    project_dm(A, &f, dparams);
    return NF_OK;
}

static int affine_monotone(const nf_bijector *b) {
    if (b->d != 1) return 0;
    const affine *A = (const affine *)b;
    double m = b->params[1];
    for (size_t k = 0; k < A->r; k++) m += (double)b->params[2 + k] * b->params[2 + k];
    return m > 0 ? 1 : m < 0 ? -1 : 0;
}

static nf_status affine_init(nf_bijector *b, nf_rng *rng) {
    const affine *A = (const affine *)b;
    size_t d = b->d;
    float *V = b->params + d + d * (d + 1) / 2;
    for (size_t i = 0; i < d * A->r; i++) V[i] = 0.1f * nf_rng_normal(rng);
    return NF_OK;
}

static nf_status affine_tensors(const nf_bijector *b, const char *prefix, size_t off, nf_tensor_fn fn, void *ctx) {
    size_t d = b->d, r = ((const affine *)b)->r, nl = d * (d + 1) / 2;
    NF_TRY(nf__emit(fn, ctx, prefix, "shift", off, 0, d));
    NF_TRY(nf__emit(fn, ctx, prefix, "scale_tril_packed", off + d, 0, nl));
    return r ? nf__emit(fn, ctx, prefix, "scale_perturb_factor", off + d + nl, d, r) : NF_OK;
}

static const nf_bijector_ops affine_ops = {
    .name = "affine",
    .forward = affine_forward,
    .inverse = affine_inverse,
    .forward_backward = affine_forward_backward,
    .inverse_backward = affine_inverse_backward,
    .scratch_bytes = affine_scratch_bytes,
    .monotone = affine_monotone,
    .init_params = affine_init,
    .tensors = affine_tensors,
};

nf_status nf_bijector_affine(size_t d, size_t r, const float *shift, const float *scale_tril,
                             const float *perturb, nf_bijector **out) {
    const char *fn = "nf_bijector_affine";
    NF_TRY(nf__check_ctor(fn, d, out));
    if (d > 4096) return nf__err(NF_ERR_ARG, "%s: dimension d=%zu is too large for a dense affine (max 4096)", fn, d);
    if (r > 4096) return nf__err(NF_ERR_ARG, "%s: rank r=%zu is too large (max 4096)", fn, r);
    size_t nl = d * (d + 1) / 2, np = d + nl + d * r;
    affine *A = (affine *)nf__bijector_alloc(sizeof(affine), &affine_ops, d, np);
    if (!A) return nf__err_prefix(NF_ERR_NOMEM, fn);
    A->r = r;
    float *P = A->base.params, *L = P + d, *V = L + nl;
    if (shift) memcpy(P, shift, d * sizeof(float));
    for (size_t i = 0; i < d; i++)
        for (size_t j = 0; j <= i; j++)
            L[LIDX(i, j)] = scale_tril ? scale_tril[i * d + j] : (float)(i == j);
    if (perturb) memcpy(V, perturb, d * r * sizeof(float));
    size_t bad = nf__first_nonfinite(P, np);
    const char *why = NULL;
    if (bad < np) why = "a parameter is not finite";
    for (size_t i = 0; !why && i < d; i++)
        if (L[LIDX(i, i)] == 0) why = "a diagonal entry of scale_tril is 0";
    if (why) {
        nf_bijector_free(&A->base);
        return nf__err(NF_ERR_DOMAIN, "%s: %s", fn, why);
    }
    *out = &A->base;
    return NF_OK;
}
