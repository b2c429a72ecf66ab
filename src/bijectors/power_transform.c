/*
 * power_transform.c - TFP PowerTransform(power = p), the Box-Cox inverse:
 *   y = (1 + p x)^(1/p) for 1 + p x > 0 (p = 0: y = e^x),
 *   fldj = (1/p - 1) log(1 + p x)   (p = 0: x);
 *   inverse x = (y^p - 1) / p for y > 0 (p = 0: log y), ildj = (p - 1) log y.
 * p is a fixed constant (TFP's non-trainable argument).
 */
#include "elementwise.h"

static int pt_fwd(const float *c, double x, double *y, double *l) {
    double p = c[0];
    if (p == 0) {
        *y = exp(x), *l = x;
        return NF_EW_OK;
    }
    double b = 1 + p * x;
    if (!(b > 0)) return NF_EW_OUT_OF_DOMAIN;
    *y = exp(log(b) / p), *l = (1 / p - 1) * log(b);
    return NF_EW_OK;
}
static int pt_inv(const float *c, double y, double *x, double *l) {
    double p = c[0];
    if (!(y > 0)) return NF_EW_OUT_OF_DOMAIN;
    double ly = log(y);
    *x = p == 0 ? ly : expm1(p * ly) / p, *l = (p - 1) * ly;
    return NF_EW_OK;
}
static void pt_partials(const float *c, double x, double *fx, double *lx, double *fp, double *lp) {
    (void)fp, (void)lp;
    double p = c[0], b = 1 + p * x;
    if (p == 0) {
        *fx = exp(x), *lx = 1;
        return;
    }
    *fx = exp((1 / p - 1) * log(b)), *lx = (1 - p) / b;
}
static const nf_ew_kernel power_kernel = {.name = "power_transform", .nc = 1, .monotone = 1,
                                          .fwd_domain = "1 + power x > 0", .inv_domain = "y > 0", .fwd = pt_fwd,
                                          .inv = pt_inv, .partials = pt_partials};

nf_status nf_bijector_power_transform(size_t d, float power, nf_bijector **out) {
    const char *fn = "nf_bijector_power_transform";
    if (!(power >= 0 && power <= 1e6))
        return nf__err(NF_ERR_ARG, "%s: power must be >= 0 (TFP's domain), got %g", fn, (double)power);
    return nf__ew_create_const(fn, &power_kernel, d, 1, NULL, &power, out);
}
