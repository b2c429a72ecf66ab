/*
 * normal_cdf.c - TFP NormalCDF: y = Phi(x), the standard normal CDF.
 *   fldj = log phi(x) = -x^2/2 - log sqrt(2 pi)
 *   inverse x = Phi^-1(y) for 0 < y < 1, ildj = x^2/2 + log sqrt(2 pi)
 */
#include "elementwise.h"

static int ncdf_fwd(const float *p, double x, double *y, double *l) {
    (void)p;
    *y = nf__ndtr(x), *l = -0.5 * x * x - NF_LOG_SQRT_2PI;
    return NF_EW_OK;
}
static int ncdf_inv(const float *p, double y, double *x, double *l) {
    (void)p;
    if (!(y > 0 && y < 1)) return NF_EW_OUT_OF_DOMAIN;
    double v = nf__ndtri(y);
    *x = v, *l = 0.5 * v * v + NF_LOG_SQRT_2PI;
    return NF_EW_OK;
}
static void ncdf_partials(const float *p, double x, double *fx, double *lx, double *fp, double *lp) {
    (void)p, (void)fp, (void)lp;
    *fx = exp(-0.5 * x * x - NF_LOG_SQRT_2PI), *lx = -x;
}
static const nf_ew_kernel normal_cdf_kernel = {.name = "normal_cdf", .monotone = 1,
                                               .inv_domain = "0 < y < 1", .fwd = ncdf_fwd,
                                               .inv = ncdf_inv, .partials = ncdf_partials};

nf_status nf_bijector_normal_cdf(size_t d, nf_bijector **out) {
    return nf__ew_create("nf_bijector_normal_cdf", &normal_cdf_kernel, d, 1, NULL, out);
}
