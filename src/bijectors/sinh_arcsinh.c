/*
 * sinh_arcsinh.c - TFP SinhArcsinh (Jones & Pewsey 2009), with trainable
 * skewness s and tailweight t > 0 (shared by every column):
 *   y = sinh(u),  u = t (asinh(x) + s)
 *   fldj = log t + log cosh(u) - log(1 + x^2) / 2
 *   inverse x = sinh(asinh(y) / t - s)
 * Partials (for the driver's backward passes), with c = cosh u, h = tanh u:
 *   f_x = c t / sqrt(1 + x^2),  f_s = c t,  f_t = c (asinh(x) + s)
 *   l_x = h t / sqrt(1 + x^2) - x / (1 + x^2),  l_s = h t,  l_t = 1/t + h (asinh(x) + s)
 */
#include "elementwise.h"

static int sa_fwd(const float *p, double x, double *y, double *l) {
    double s = p[0], t = p[1];
    if (!(t > 0)) return NF_EW_BAD_PARAM;
    double u = t * (asinh(x) + s);
    *y = sinh(u);
    *l = log(t) + (fabs(u) + log1p(exp(-2 * fabs(u))) - NF_LN2) - 0.5 * log1p(x * x); /* log cosh, stably */
    return isfinite(*y) ? NF_EW_OK : NF_EW_OUT_OF_DOMAIN;
}
static int sa_inv(const float *p, double y, double *x, double *l) {
    double s = p[0], t = p[1];
    if (!(t > 0)) return NF_EW_BAD_PARAM;
    *x = sinh(asinh(y) / t - s);
    double u = t * (asinh(*x) + s);
    *l = -(log(t) + (fabs(u) + log1p(exp(-2 * fabs(u))) - NF_LN2) - 0.5 * log1p(*x * *x));
    return isfinite(*x) ? NF_EW_OK : NF_EW_OUT_OF_DOMAIN;
}
static void sa_partials(const float *p, double x, double *fx, double *lx, double *fp, double *lp) {
    double s = p[0], t = p[1], a = asinh(x) + s, u = t * a, c = cosh(u), h = tanh(u), r = sqrt(1 + x * x);
    *fx = c * t / r;
    *lx = h * t / r - x / (1 + x * x);
    fp[0] = c * t;
    fp[1] = c * a;
    lp[0] = h * t;
    lp[1] = 1 / t + h * a;
}
static const nf_ew_kernel sinh_arcsinh_kernel = {.name = "sinh_arcsinh",
                                                 .k = 2,
                                                 .param_domain = "tailweight > 0",
                                                 .monotone = 1,
                                                 .pnames = {"skewness", "tailweight"},
                                                 .fwd = sa_fwd,
                                                 .inv = sa_inv,
                                                 .partials = sa_partials};

nf_status nf_bijector_sinh_arcsinh(size_t d, float skewness, float tailweight, nf_bijector **out) {
    const char *fn = "nf_bijector_sinh_arcsinh";
    if (!(tailweight > 0) || !isfinite(tailweight) || !isfinite(skewness))
        return nf__err(NF_ERR_DOMAIN, "%s: needs a finite skewness and tailweight > 0, got %g, %g", fn, (double)skewness,
                       (double)tailweight);
    float init[2] = {skewness, tailweight};
    return nf__ew_create(fn, &sinh_arcsinh_kernel, d, 1, init, out);
}
