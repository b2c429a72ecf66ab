/*
 * tanh.c - TFP Tanh: y = tanh x.
 *   fldj = log(1 - tanh^2 x) = 2 (log 2 - x - softplus(-2x))   (stable)
 *   inverse x = atanh y for -1 < y < 1, ildj = -log(1 - y) - log(1 + y)
 */
#include "elementwise.h"

static int tanh_fwd(const float *p, double x, double *y, double *l) {
    (void)p;
    *y = tanh(x), *l = 2 * (NF_LN2 - x - nf__softplus(-2 * x));
    return NF_EW_OK;
}
static int tanh_inv(const float *p, double y, double *x, double *l) {
    (void)p;
    if (!(y > -1 && y < 1)) return NF_EW_OUT_OF_DOMAIN;
    *x = atanh(y), *l = -log1p(-y) - log1p(y);
    return NF_EW_OK;
}
static void tanh_partials(const float *p, double x, double *fx, double *lx, double *fp, double *lp) {
    (void)p, (void)fp, (void)lp;
    double t = tanh(x);
    *fx = 1 - t * t, *lx = -2 * t;
}
static const nf_ew_kernel tanh_kernel = {.name = "tanh", .monotone = 1,
                                         .inv_domain = "-1 < y < 1", .fwd = tanh_fwd,
                                         .inv = tanh_inv, .partials = tanh_partials};

nf_status nf_bijector_tanh(size_t d, nf_bijector **out) {
    return nf__ew_create("nf_bijector_tanh", &tanh_kernel, d, 1, NULL, out);
}
