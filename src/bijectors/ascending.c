/*
 * ascending.c - TFP Ascending: an unconstrained vector to a strictly
 * increasing one, y_0 = x_0, y_i = y_{i-1} + e^{x_i}.
 *   fldj = sum_{i>=1} x_i
 *   inverse x_0 = y_0, x_i = log(y_i - y_{i-1}) (needs y increasing),
 *   ildj = -sum_{i>=1} log(y_i - y_{i-1})
 * Backward, forward: dx_0 = sum_j dy_j, dx_i = e^{x_i} sum_{j>=i} dy_j + dldj;
 *   inverse (d_i = y_i - y_{i-1}): dy_k = [k=0] dx_0 + (dx_k - dldj)/d_k [k>=1]
 *   - (dx_{k+1} - dldj)/d_{k+1} [k+1 < d].  No parameters.
 */
#include "bijector_impl.h"

#include <math.h>

static nf_status asc_forward(const nf_bijector *b, const nf_pass *p, float *y, float *ldj, const float *x) {
    size_t d = b->d;
    for (size_t i = 0; i < p->n; i++) {
        double acc = x[i * d], l = 0;
        y[i * d] = x[i * d];
        for (size_t j = 1; j < d; j++) {
            acc += exp((double)x[i * d + j]);
            y[i * d + j] = (float)acc;
            l += x[i * d + j];
        }
        if (ldj) ldj[i] += (float)l;
    }
    return NF_OK;
}

static nf_status asc_inverse(const nf_bijector *b, const nf_pass *p, float *x, float *ldj, const float *y) {
    size_t d = b->d;
    for (size_t i = 0; i < p->n; i++) {
        double l = 0;
        for (size_t j = 1; j < d; j++) {
            double df = (double)y[i * d + j] - y[i * d + j - 1];
            if (!(df > 0))
                return nf__err(NF_ERR_DOMAIN, "ascending: inverse needs strictly increasing values, row %zu has %g then %g "
                               "at columns %zu, %zu", i, (double)y[i * d + j - 1], (double)y[i * d + j], j - 1, j);
            l -= log(df);
        }
        x[i * d] = y[i * d];
        for (size_t j = 1; j < d; j++) x[i * d + j] = (float)log((double)y[i * d + j] - y[i * d + j - 1]);
        if (ldj) ldj[i] += (float)l;
    }
    return NF_OK;
}

static nf_status asc_forward_backward(const nf_bijector *b, const nf_pass *p, float *dx, float *dparams, const float *dy,
                                      const float *dldj, const float *x, const float *y) {
    (void)dparams, (void)y;
    size_t d = b->d;
    for (size_t i = 0; dx && i < p->n; i++) {
        double tail = 0; /* sum_{j>=k} dy_j */
        for (size_t k = d; k-- > 0;) {
            tail += dy[i * d + k];
            dx[i * d + k] = (float)(k ? exp((double)x[i * d + k]) * tail + dldj[i] : tail);
        }
    }
    return NF_OK;
}

static nf_status asc_inverse_backward(const nf_bijector *b, const nf_pass *p, float *dy, float *dparams, const float *dx,
                                      const float *dldj, const float *y, const float *x) {
    (void)dparams, (void)x;
    size_t d = b->d;
    for (size_t i = 0; dy && i < p->n; i++)
        for (size_t k = 0; k < d; k++) {
            double g = k == 0 ? dx[i * d] : ((double)dx[i * d + k] - dldj[i]) / ((double)y[i * d + k] - y[i * d + k - 1]);
            if (k + 1 < d) g -= ((double)dx[i * d + k + 1] - dldj[i]) / ((double)y[i * d + k + 1] - y[i * d + k]);
            dy[i * d + k] = (float)g;
        }
    return NF_OK;
}

static const nf_bijector_ops ascending_ops = {
    .name = "ascending",
    .forward = asc_forward,
    .inverse = asc_inverse,
    .forward_backward = asc_forward_backward,
    .inverse_backward = asc_inverse_backward,
};

nf_status nf_bijector_ascending(size_t d, nf_bijector **out) {
    const char *fn = "nf_bijector_ascending";
    NF_TRY(nf__check_ctor(fn, d, out));
    nf_bijector *b = nf__bijector_alloc(sizeof(nf_bijector), &ascending_ops, d, 0);
    if (!b) return nf__err_prefix(NF_ERR_NOMEM, fn);
    *out = b;
    return NF_OK;
}
