/*
 * mvn_tril.c - TFP MultivariateNormalTriL(loc, scale_tril): x = loc + L z,
 * z ~ N(0, I), L lower triangular with a positive diagonal (covariance L L^T).
 *   log p(x) = -d/2 log 2 pi - sum_i log L_ii - |u|^2 / 2,  L u = x - loc,
 *   d log p / dx = -a,  L^T a = u.
 * Trainable as a flow's base: parameters [loc (d), the lower triangle row by
 * row with log L_ii in place of L_ii (d(d+1)/2)].  Gradients (w_i the rows'
 * weights): d/d loc = a, d/d L_ij = a_i u_j (i > j), d/d log L_ii =
 * L_ii a_i u_i - 1.
 */
#include "dist_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct mvn_tril {
    nf_dist base;
} mvn_tril;

static size_t tri(size_t i, size_t j) { return i * (i + 1) / 2 + j; } /* entry (i, j), j <= i */

/* L from the parameters into Lm (d x d row-major, lower part), and sum log L_ii. */
static double unpack(const nf_dist *D, double *Lm) {
    size_t d = D->d;
    const float *t = D->params + d;
    double ld = 0;
    for (size_t i = 0; i < d; i++)
        for (size_t j = 0; j <= i; j++) {
            double v = t[tri(i, j)];
            Lm[i * d + j] = i == j ? exp(v) : v;
            if (i == j) ld += v;
        }
    return ld;
}

/* u = L^-1 (x - loc) */
static void solve_u(const nf_dist *D, const double *Lm, const float *x, double *u) {
    size_t d = D->d;
    for (size_t i = 0; i < d; i++) {
        double s = (double)x[i] - D->params[i];
        for (size_t j = 0; j < i; j++) s -= Lm[i * d + j] * u[j];
        u[i] = s / Lm[i * d + i];
    }
}

/* a = L^-T u */
static void solve_a(size_t d, const double *Lm, const double *u, double *a) {
    for (size_t i = d; i-- > 0;) {
        double s = u[i];
        for (size_t j = i + 1; j < d; j++) s -= Lm[j * d + i] * a[j];
        a[i] = s / Lm[i * d + i];
    }
}

static size_t mt_scratch(const nf_dist *D, size_t n) {
    (void)n;
    return (D->d * D->d + 2 * D->d) * sizeof(double);
}

static nf_status mt_log_prob(const nf_dist *D, void *scratch, float *lp, const float *x, size_t n) {
    size_t d = D->d;
    double *Lm = scratch, *u = Lm + d * d, ld = unpack(D, Lm);
    for (size_t i = 0; i < n; i++) {
        solve_u(D, Lm, x + i * d, u);
        double q = 0;
        for (size_t j = 0; j < d; j++) q += u[j] * u[j];
        lp[i] = (float)(-(double)d * NF_LOG_SQRT_2PI - ld - 0.5 * q);
    }
    return NF_OK;
}

static nf_status mt_sample(const nf_dist *D, void *scratch, nf_rng *rng, float *x, float *lp, size_t n) {
    size_t d = D->d;
    double *Lm = scratch, *z = Lm + d * d, ld = unpack(D, Lm);
    for (size_t i = 0; i < n; i++) {
        double q = 0;
        for (size_t j = 0; j < d; j++) z[j] = nf_rng_normal(rng), q += z[j] * z[j];
        for (size_t r = 0; r < d; r++) {
            double s = D->params[r];
            for (size_t j = 0; j <= r; j++) s += Lm[r * d + j] * z[j];
            x[i * d + r] = (float)s;
        }
        if (lp) lp[i] = (float)(-(double)d * NF_LOG_SQRT_2PI - ld - 0.5 * q);
    }
    return NF_OK;
}

/* The gradients need their own workspace: the interface passes them none. */
static nf_status mt_grads(const nf_dist *D, float *g, float *gp, const float *w, const float *x, size_t n) {
    size_t d = D->d;
    double *Lm = malloc((d * d + 2 * d) * sizeof(double));
    if (!Lm) return nf__err(NF_ERR_NOMEM, "mvn_tril: out of memory");
    double *u = Lm + d * d, *a = u + d;
    unpack(D, Lm);
    for (size_t i = 0; i < n; i++) {
        solve_u(D, Lm, x + i * d, u);
        solve_a(d, Lm, u, a);
        if (g)
            for (size_t j = 0; j < d; j++) g[i * d + j] = (float)-a[j];
        if (gp) {
            double wi = w ? w[i] : 1;
            for (size_t r = 0; r < d; r++) {
                gp[r] += (float)(wi * a[r]);
                for (size_t j = 0; j <= r; j++)
                    gp[d + tri(r, j)] += (float)(wi * (r == j ? Lm[r * d + r] * a[r] * u[r] - 1 : a[r] * u[j]));
            }
        }
    }
    free(Lm);
    return NF_OK;
}

static nf_status mt_log_prob_grad(const nf_dist *D, float *g, const float *x, size_t n) {
    return mt_grads(D, g, NULL, NULL, x, n);
}

static nf_status mt_param_grad(const nf_dist *D, float *gp, const float *w, const float *x, size_t n) {
    return mt_grads(D, NULL, gp, w, x, n);
}

static nf_status mt_tensors(const nf_dist *D, const char *prefix, size_t off, nf_tensor_fn fn, void *ctx) {
    NF_TRY(nf__emit(fn, ctx, prefix, "loc", off, 0, D->d));
    return nf__emit(fn, ctx, prefix, "scale_tril_log_diag", off + D->d, 0, D->d * (D->d + 1) / 2);
}

static const nf_dist_ops mvn_tril_ops = {
    .name = "mvn_tril",
    .log_prob = mt_log_prob,
    .sample = mt_sample,
    .log_prob_grad = mt_log_prob_grad,
    .param_grad = mt_param_grad,
    .tensors = mt_tensors,
    .scratch_bytes = mt_scratch,
};

nf_status nf_dist_mvn_tril(size_t d, const float *loc, const float *scale_tril, nf_dist **out) {
    const char *fn = "nf_dist_mvn_tril";
    if (!out) return nf__err(NF_ERR_ARG, "%s: out is NULL", fn);
    *out = NULL;
    if (d == 0 || d > 4096) return nf__err(NF_ERR_ARG, "%s: dimension d=%zu must be in 1..4096", fn, d);
    for (size_t i = 0; loc && i < d; i++)
        if (!isfinite(loc[i])) return nf__err(NF_ERR_DOMAIN, "%s: loc[%zu] is not finite", fn, i);
    for (size_t i = 0; scale_tril && i < d; i++)
        for (size_t j = 0; j <= i; j++) {
            float v = scale_tril[i * d + j];
            if (!isfinite(v) || (i == j && !(v > 0)))
                return nf__err(NF_ERR_DOMAIN, "%s: scale_tril[%zu][%zu] = %g (the diagonal must be > 0, every entry finite)",
                               fn, i, j, (double)v);
        }
    mvn_tril *M = calloc(1, sizeof *M);
    size_t np = d + d * (d + 1) / 2;
    float *p = calloc(np, sizeof(float));
    if (!M || !p) {
        free(M), free(p);
        return nf__err(NF_ERR_NOMEM, "%s: out of memory", fn);
    }
    M->base.ops = &mvn_tril_ops, M->base.name = "mvn_tril", M->base.d = d;
    M->base.nparams = np, M->base.params = p, M->base.owns_params = 1;
    for (size_t i = 0; i < d; i++) {
        p[i] = loc ? loc[i] : 0;
        for (size_t j = 0; j <= i; j++) {
            float v = scale_tril ? scale_tril[i * d + j] : (i == j ? 1.0f : 0.0f);
            p[d + tri(i, j)] = i == j ? logf(v) : v;
        }
    }
    *out = &M->base;
    return NF_OK;
}
