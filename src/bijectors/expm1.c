/*
 * expm1.c - TFP Expm1: y = e^x - 1 (computed as expm1, exact near 0).
 *   fldj = x;  inverse x = log1p(y) for y > -1,  ildj = -log1p(y)
 */
#include "elementwise.h"

static int em_fwd(const float *p, double x, double *y, double *l) {
    (void)p;
    *y = expm1(x);
    *l = x;
    return NF_EW_OK;
}
static int em_inv(const float *p, double y, double *x, double *l) {
    (void)p;
    if (!(y > -1)) return NF_EW_OUT_OF_DOMAIN;
    *x = log1p(y);
    *l = -*x;
    return NF_EW_OK;
}
static void em_partials(const float *p, double x, double *fx, double *lx, double *fp, double *lp) {
    (void)p;
    (void)fp;
    (void)lp;
    *fx = exp(x);
    *lx = 1;
}
static const nf_ew_kernel expm1_kernel = {.name = "expm1", .monotone = 1, .inv_domain = "y > -1",
                                          .fwd = em_fwd, .inv = em_inv, .partials = em_partials};

nf_status nf_bijector_expm1(size_t d, nf_bijector **out) {
    return nf__ew_create("nf_bijector_expm1", &expm1_kernel, d, 1, NULL, out);
}
