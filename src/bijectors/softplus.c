/*
 * softplus.c - TFP Softplus: y = log(1 + e^x).
 *   fldj = log sigmoid(x) = -softplus(-x)
 *   inverse x = y + log(1 - e^-y) = y + log(-expm1(-y)) for y > 0,
 *   ildj = -log(-expm1(-y))
 */
#include "elementwise.h"

static int sp_fwd(const float *p, double x, double *y, double *l) {
    (void)p;
    *y = nf__softplus(x), *l = -nf__softplus(-x);
    return NF_EW_OK;
}
static int sp_inv(const float *p, double y, double *x, double *l) {
    (void)p;
    if (!(y > 0)) return NF_EW_OUT_OF_DOMAIN;
    double t = log(-expm1(-y));
    *x = y + t, *l = -t;
    return NF_EW_OK;
}
static void sp_partials(const float *p, double x, double *fx, double *lx, double *fp, double *lp) {
    (void)p, (void)fp, (void)lp;
    *fx = nf__sigmoid(x), *lx = nf__sigmoid(-x);
}
static const nf_ew_kernel softplus_kernel = {.name = "softplus", .monotone = 1,
                                             .inv_domain = "y > 0", .fwd = sp_fwd, .inv = sp_inv,
                                             .partials = sp_partials};

nf_status nf_bijector_softplus(size_t d, nf_bijector **out) {
    return nf__ew_create("nf_bijector_softplus", &softplus_kernel, d, 1, NULL, out);
}
