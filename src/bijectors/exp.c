/*
 * exp.c - exp and log (TFP Exp, Log).
 *   exp: y = e^x, fldj = x;        inverse x = log y (y > 0), ildj = -log y.
 *   log: y = log x (x > 0), fldj = -log x;  inverse x = e^y, ildj = y.
 */
#include "elementwise.h"

static int exp_fwd(const float *p, double x, double *y, double *l) {
    (void)p;
    *y = exp(x), *l = x;
    return NF_EW_OK;
}
static int exp_inv(const float *p, double y, double *x, double *l) {
    (void)p;
    if (!(y > 0)) return NF_EW_OUT_OF_DOMAIN;
    *x = log(y), *l = -*x;
    return NF_EW_OK;
}
static void exp_partials(const float *p, double x, double *fx, double *lx, double *fp, double *lp) {
    (void)p, (void)fp, (void)lp;
    *fx = exp(x), *lx = 1;
}
static const nf_ew_kernel exp_kernel = {.name = "exp", .monotone = 1, .inv_domain = "y > 0",
                                        .fwd = exp_fwd, .inv = exp_inv, .partials = exp_partials};

static int log_fwd(const float *p, double x, double *y, double *l) {
    (void)p;
    if (!(x > 0)) return NF_EW_OUT_OF_DOMAIN;
    *y = log(x), *l = -*y;
    return NF_EW_OK;
}
static int log_inv(const float *p, double y, double *x, double *l) {
    (void)p;
    *x = exp(y), *l = y;
    return NF_EW_OK;
}
static void log_partials(const float *p, double x, double *fx, double *lx, double *fp, double *lp) {
    (void)p, (void)fp, (void)lp;
    *fx = 1 / x, *lx = -1 / x;
}
static const nf_ew_kernel log_kernel = {.name = "log", .monotone = 1, .fwd_domain = "x > 0",
                                        .fwd = log_fwd, .inv = log_inv, .partials = log_partials};

nf_status nf_bijector_exp(size_t d, nf_bijector **out) {
    return nf__ew_create("nf_bijector_exp", &exp_kernel, d, 1, NULL, out);
}

nf_status nf_bijector_log(size_t d, nf_bijector **out) {
    return nf__ew_create("nf_bijector_log", &log_kernel, d, 1, NULL, out);
}
