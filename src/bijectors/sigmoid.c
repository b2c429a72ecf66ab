/*
 * sigmoid.c - TFP Sigmoid: y = 1 / (1 + e^-x).
 *   fldj = log s(x) + log s(-x) = -softplus(-x) - softplus(x)
 *   inverse x = log y - log(1 - y) for 0 < y < 1, ildj = -log y - log(1 - y)
 */
#include "elementwise.h"

static int sig_fwd(const float *p, double x, double *y, double *l) {
    (void)p;
    *y = nf__sigmoid(x), *l = -nf__softplus(-x) - nf__softplus(x);
    return NF_EW_OK;
}
static int sig_inv(const float *p, double y, double *x, double *l) {
    (void)p;
    if (!(y > 0 && y < 1)) return NF_EW_OUT_OF_DOMAIN;
    double ly = log(y), l1 = log1p(-y);
    *x = ly - l1, *l = -ly - l1;
    return NF_EW_OK;
}
static void sig_partials(const float *p, double x, double *fx, double *lx, double *fp, double *lp) {
    (void)p, (void)fp, (void)lp;
    double s = nf__sigmoid(x);
    *fx = s * (1 - s), *lx = 1 - 2 * s;
}
static const nf_ew_kernel sigmoid_kernel = {.name = "sigmoid", .monotone = 1,
                                            .inv_domain = "0 < y < 1", .fwd = sig_fwd,
                                            .inv = sig_inv, .partials = sig_partials};

nf_status nf_bijector_sigmoid(size_t d, nf_bijector **out) {
    return nf__ew_create("nf_bijector_sigmoid", &sigmoid_kernel, d, 1, NULL, out);
}
