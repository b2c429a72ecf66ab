/*
 * transform.h - the elementwise transforms that conditioned bijectors (MAF,
 * coupling) apply to a coordinate, given parameters from a network:
 *   affine:  T(x; m, a) = (x - m) s(a)                  (2 parameters)
 *            with the scale s(a), by `scale`:
 *              NF_SCALE_UNBOUNDED  s = e^{-a}                     (MAF's classic form)
 *              NF_SCALE_TANH       s = e^{-c}, c = 3 tanh(a / 3)  (a soft clamp: s in [e^-3, e^3])
 *            or, as nflows' MAF (the shift after the scale):
 *              NF_SCALE_SIGMOID    T = x s(a) + m, s = sigmoid(a + 2) + 1e-3  (s in (0.001, 1.001))
 *              NF_SCALE_SOFTPLUS   T = x s(a) + m, s = softplus(a + c) + 1e-3, c = log(e^0.999 - 1)
 *                                  (nflows' current form, shifted so that a = 0 is the identity;
 *                                  s > 0.001, growing linearly, not exponentially, in a)
 *   spline:  T(x; p)    = rational-quadratic spline S   (3K - 1, rqspline.h)
 * T maps data-side values to base-side values (the density direction) and
 * T^{-1} is the sampling direction.  Parameter k of a coordinate is read at
 * p[k * stride] (the MADE's layout: output k*d + j belongs to input j).
 */
#ifndef NF_TRANSFORM_H
#define NF_TRANSFORM_H

#include "affine_form.h"
#include "rqspline.h"
#include "../core/core.h"

#include <math.h>

typedef struct nf_eltx {
    size_t bins;  /* 0: affine; K >= 2: spline with K bins */
    double bound; /* spline interval [-bound, bound] */
    int scale;    /* affine: NF_SCALE_* */
} nf_eltx;

/* Checks a constructor's spline options (bins 0 = affine) and fills *t. */
static inline nf_status nf__eltx_from_opts(const char *fn, size_t bins, float bound, nf_eltx *t) {
    t->scale = NF_SCALE_UNBOUNDED;
    if (bins == 1 || bins > NF_RQS_MAX_BINS)
        return nf__err(NF_ERR_ARG, "%s: spline_bins must be 0 (affine) or 2..%d, got %zu", fn, NF_RQS_MAX_BINS, bins);
    if (!(bound >= 0 && bound <= 1e6f))
        return nf__err(NF_ERR_ARG, "%s: spline_bound must be in (0, 1e6] (0: the default 3), got %g", fn, (double)bound);
    t->bins = bins;
    t->bound = bound > 0 ? bound : 3.0;
    return NF_OK;
}

NF_HD size_t nf__eltx_np(const nf_eltx *t) { return t->bins ? 3 * t->bins - 1 : 2; }

/* z = T(x); returns log T'(x). */
NF_HD double nf__eltx_eval(const nf_eltx *t, const float *p, size_t stride, double x, double *z) {
    if (t->bins) return nf__rqs_eval(t->bins, t->bound, p, stride, x, z);
    return nf__affine_eval(t->scale, p[0], p[stride], x, z);
}

/* x = T^{-1}(z); returns log T'(x). */
NF_HD double nf__eltx_invert(const nf_eltx *t, const float *p, size_t stride, double z, double *x) {
    if (t->bins) return nf__rqs_invert(t->bins, t->bound, p, stride, z, x);
    return nf__affine_invert(t->scale, p[0], p[stride], z, x);
}

/* Reverse mode at x, with z = T(x) as the pass stored it: given dL/dz = gz
 * and dL/d log T'(x) = gl, writes *gx = gz T'(x) + gl d log T'/dx and
 * gp[k * stride] = dL/dp_k.  (The affine map uses the stored z, as the MAF
 * did before the transforms were shared, so its results are unchanged bit
 * for bit.) */
NF_HD void nf__eltx_grad(const nf_eltx *t, const float *p, size_t stride, double x, double z, double gz,
                                 double gl, double *gx, float *gp) {
    if (t->bins) {
        nf__rqs_grad(t->bins, t->bound, p, stride, x, gz, gl, gx, gp);
        return;
    }
    nf__affine_grad(t->scale, p[0], p[stride], z, gz, gl, gx, &gp[0], &gp[stride]);
}

#endif
