/*
 * softsign.c - TFP Softsign: y = x / (1 + |x|), onto (-1, 1).
 *   fldj = log dy/dx = -2 log(1 + |x|)
 *   inverse x = y / (1 - |y|) for |y| < 1,  ildj = -2 log(1 - |y|)
 */
#include "elementwise.h"

static int ss_fwd(const float *p, double x, double *y, double *l) {
    (void)p;
    *y = x / (1 + fabs(x));
    *l = -2 * log1p(fabs(x));
    return NF_EW_OK;
}
static int ss_inv(const float *p, double y, double *x, double *l) {
    (void)p;
    if (!(fabs(y) < 1)) return NF_EW_OUT_OF_DOMAIN;
    *x = y / (1 - fabs(y));
    *l = -2 * log1p(-fabs(y));
    return NF_EW_OK;
}
static void ss_partials(const float *p, double x, double *fx, double *lx, double *fp, double *lp) {
    (void)p;
    (void)fp;
    (void)lp;
    double a = 1 + fabs(x);
    *fx = 1 / (a * a);
    *lx = -2 * (x > 0 ? 1 : x < 0 ? -1 : 0) / a;
}
static const nf_ew_kernel softsign_kernel = {.name = "softsign", .monotone = 1, .inv_domain = "-1 < y < 1",
                                             .fwd = ss_fwd, .inv = ss_inv, .partials = ss_partials};

nf_status nf_bijector_softsign(size_t d, nf_bijector **out) {
    return nf__ew_create("nf_bijector_softsign", &softsign_kernel, d, 1, NULL, out);
}
