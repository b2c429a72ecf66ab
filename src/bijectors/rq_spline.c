/*
 * rq_spline.c - TFP RationalQuadraticSpline(bin_widths, bin_heights,
 * knot_slopes, range_min): one monotone rational-quadratic spline (Durkan et
 * al. 2019) given by its knots, applied to every column, identity outside
 * [range_min, range_min + sum(bin_widths)].  Knots: x at range_min +
 * cumsum(bin_widths), y at range_min + cumsum(bin_heights) (the two sums
 * equal), slopes 1 at both ends and knot_slopes at the K - 1 inner knots.
 * The arguments are fixed (TFP's tensors; the trainable splines are the ones
 * inside coupling and MAF layers, rqspline.h).
 *   forward  y = S(x),      fldj = log S'(x)
 *   inverse  x = S^-1(y),   ildj = -log S'(x)
 *   backward dL/dx = g S'(x) + gl (log S')'(x)  (forward; the inverse's from it)
 */
#include "bijector_impl.h"
#include "rqspline.h"

#include <math.h>

typedef struct rq_spline {
    nf_bijector base;
    nf_rqs_knots kn;
} rq_spline;

static nf_status rq_pass(const nf_bijector *b, const nf_pass *p, float *out, float *ldj, const float *in, int fwd) {
    const rq_spline *r = (const rq_spline *)b;
    size_t d = b->d;
    for (size_t i = 0; i < p->n; i++) {
        double acc = 0;
        for (size_t j = 0; j < d; j++) {
            double o, l = fwd ? nf__rqs_knots_eval(&r->kn, in[i * d + j], &o) : -nf__rqs_knots_invert(&r->kn, in[i * d + j], &o);
            out[i * d + j] = (float)o;
            acc += l;
        }
        if (ldj) ldj[i] += (float)acc;
    }
    return NF_OK;
}

static nf_status rq_forward(const nf_bijector *b, const nf_pass *p, float *y, float *ldj, const float *x) {
    return rq_pass(b, p, y, ldj, x, 1);
}

static nf_status rq_inverse(const nf_bijector *b, const nf_pass *p, float *x, float *ldj, const float *y) {
    return rq_pass(b, p, x, ldj, y, 0);
}

static nf_status rq_forward_backward(const nf_bijector *b, const nf_pass *p, float *dx, float *dparams, const float *dy,
                                     const float *dldj, const float *x, const float *y) {
    (void)dparams, (void)y;
    const rq_spline *r = (const rq_spline *)b;
    size_t d = b->d;
    for (size_t i = 0; dx && i < p->n; i++)
        for (size_t j = 0; j < d; j++) dx[i * d + j] = (float)nf__rqs_knots_gx(&r->kn, x[i * d + j], dy[i * d + j], dldj[i]);
    return NF_OK;
}

/* Through the inverse at y with x = S^-1(y): dL/dy = (g - gl (log S')'(x)) / S'(x), the second
 * from the forward's reverse mode at x with (gz, gl) = (0, 1) and S' from (1, 0). */
static nf_status rq_inverse_backward(const nf_bijector *b, const nf_pass *p, float *dy, float *dparams, const float *dx,
                                     const float *dldj, const float *y, const float *x) {
    (void)dparams, (void)y;
    const rq_spline *r = (const rq_spline *)b;
    size_t d = b->d;
    for (size_t i = 0; dy && i < p->n; i++)
        for (size_t j = 0; j < d; j++) {
            double xv = x[i * d + j], sp = nf__rqs_knots_gx(&r->kn, xv, 1, 0), dl = nf__rqs_knots_gx(&r->kn, xv, 0, 1);
            dy[i * d + j] = (float)((dx[i * d + j] - dldj[i] * dl) / sp);
        }
    return NF_OK;
}

static int rq_monotone(const nf_bijector *b) {
    (void)b;
    return 1;
}

static const nf_bijector_ops rq_spline_ops = {
    .name = "rational_quadratic_spline",
    .forward = rq_forward,
    .inverse = rq_inverse,
    .forward_backward = rq_forward_backward,
    .inverse_backward = rq_inverse_backward,
    .monotone = rq_monotone,
};

nf_status nf_bijector_rq_spline(size_t d, size_t K, const float *bin_widths, const float *bin_heights,
                                const float *knot_slopes, float range_min, nf_bijector **out) {
    const char *fn = "nf_bijector_rq_spline";
    NF_TRY(nf__check_ctor(fn, d, out));
    if (K < 1 || K > NF_RQS_MAX_BINS) return nf__err(NF_ERR_ARG, "%s: 1..%d bins, got %zu", fn, NF_RQS_MAX_BINS, K);
    if (!bin_widths || !bin_heights || (K > 1 && !knot_slopes))
        return nf__err(NF_ERR_ARG, "%s: bin_widths, bin_heights (K each) and knot_slopes (K - 1) are required", fn);
    if (!isfinite(range_min)) return nf__err(NF_ERR_ARG, "%s: range_min must be finite", fn);
    nf_rqs_knots kn = {.K = K};
    kn.X[0] = kn.Y[0] = range_min, kn.D[0] = kn.D[K] = 1;
    for (size_t k = 0; k < K; k++) {
        if (!(bin_widths[k] > 0 && bin_heights[k] > 0 && isfinite(bin_widths[k]) && isfinite(bin_heights[k])))
            return nf__err(NF_ERR_ARG, "%s: bin widths and heights must be positive and finite (bin %zu: %g, %g)", fn, k,
                           (double)bin_widths[k], (double)bin_heights[k]);
        kn.X[k + 1] = kn.X[k] + bin_widths[k], kn.Y[k + 1] = kn.Y[k] + bin_heights[k];
        if (k + 1 < K) {
            if (!(knot_slopes[k] > 0 && isfinite(knot_slopes[k])))
                return nf__err(NF_ERR_ARG, "%s: knot slopes must be positive and finite (knot %zu: %g)", fn, k,
                               (double)knot_slopes[k]);
            kn.D[k + 1] = knot_slopes[k];
        }
    }
    double span = kn.X[K] - kn.X[0];
    if (fabs((kn.Y[K] - kn.Y[0]) - span) > 1e-5 * fmax(1.0, span))
        return nf__err(NF_ERR_ARG, "%s: bin_widths and bin_heights must have the same sum (%g and %g)", fn, span,
                       kn.Y[K] - kn.Y[0]);
    kn.Y[K] = kn.X[K]; /* the identity tails meet the spline exactly */
    rq_spline *r = (rq_spline *)nf__bijector_alloc(sizeof(rq_spline), &rq_spline_ops, d, 0);
    if (!r) return nf__err_prefix(NF_ERR_NOMEM, fn);
    r->kn = kn;
    *out = &r->base;
    return NF_OK;
}
