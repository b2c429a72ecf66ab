/*
 * sigmoid.c - TFP Sigmoid: y = 1 / (1 + e^-x).
 *   fldj = log s(x) + log s(-x) = -softplus(-x) - softplus(x)
 *   inverse x = log y - log(1 - y) for 0 < y < 1, ildj = -log y - log(1 - y)
 * and TFP's Sigmoid(low, high) (fixed constants): y = high s(x) + low s(-x),
 *   kept strictly inside (low, high) in float (the nearest float inside when
 *   it rounds onto a bound); fldj = log(high - low) + log s(x) + log s(-x);
 *   inverse x = log(y - low) - log(high - y), ildj = log(high - low) - log(y - low) - log(high - y).
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

/* p = [low, high] (constants) */
static int sl_fwd(const float *p, double x, double *y, double *l) {
    double lo = p[0], hi = p[1];
    if (!(hi > lo)) return NF_EW_BAD_PARAM;
    double v = hi * nf__sigmoid(x) + lo * nf__sigmoid(-x);
    float f = (float)v;
    if (f >= p[1]) v = (double)nextafterf(p[1], p[0]); /* strictly inside, as a float */
    if (f <= p[0]) v = (double)nextafterf(p[0], p[1]);
    *y = v, *l = log(hi - lo) - nf__softplus(-x) - nf__softplus(x);
    return NF_EW_OK;
}
static int sl_inv(const float *p, double y, double *x, double *l) {
    double lo = p[0], hi = p[1];
    if (!(hi > lo)) return NF_EW_BAD_PARAM;
    if (!(y > lo && y < hi)) return NF_EW_OUT_OF_DOMAIN;
    double a = log(y - lo), b = log(hi - y);
    *x = a - b, *l = log(hi - lo) - a - b;
    return NF_EW_OK;
}
static void sl_partials(const float *p, double x, double *fx, double *lx, double *fp, double *lp) {
    (void)fp, (void)lp;
    double s = nf__sigmoid(x);
    *fx = ((double)p[1] - p[0]) * s * (1 - s), *lx = 1 - 2 * s;
}
static const nf_ew_kernel sigmoid_lh_kernel = {.name = "sigmoid", .nc = 2, .monotone = 1, .inv_domain = "low < y < high",
                                               .param_domain = "high > low", .fwd = sl_fwd, .inv = sl_inv,
                                               .partials = sl_partials};

nf_status nf_bijector_sigmoid_range(size_t d, float low, float high, nf_bijector **out) {
    const char *fn = "nf_bijector_sigmoid_range";
    if (!(high > low)) return nf__err(NF_ERR_ARG, "%s: needs low < high, got %g and %g", fn, (double)low, (double)high);
    float c[2] = {low, high};
    return nf__ew_create_const(fn, &sigmoid_lh_kernel, d, 1, NULL, c, out);
}

nf_status nf_bijector_sigmoid(size_t d, nf_bijector **out) {
    return nf__ew_create("nf_bijector_sigmoid", &sigmoid_kernel, d, 1, NULL, out);
}
