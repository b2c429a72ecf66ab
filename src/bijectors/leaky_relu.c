/*
 * leaky_relu.c - the learnable leaky ReLU (PReLU) of seed 001 (Eric Jang's
 * "Normalizing Flows Tutorial", TensorFlow): y = x for x >= 0, alpha x for
 * x < 0.  The trainable parameter is la = log(alpha), so alpha = e^la > 0
 * and the map is always invertible.
 *   fldj = 0 (x >= 0) or la (x < 0)
 *   inverse x = y (y >= 0) or y / alpha, ildj = 0 or -la
 */
#include "elementwise.h"

static int lr_fwd(const float *p, double x, double *y, double *l) {
    double la = p[0];
    if (x >= 0) *y = x, *l = 0;
    else *y = exp(la) * x, *l = la;
    return NF_EW_OK;
}
static int lr_inv(const float *p, double y, double *x, double *l) {
    double la = p[0];
    if (y >= 0) *x = y, *l = 0;
    else *x = y * exp(-la), *l = -la;
    return NF_EW_OK;
}
static void lr_partials(const float *p, double x, double *fx, double *lx, double *fp, double *lp) {
    double a = exp((double)p[0]);
    *lx = 0;
    if (x >= 0) *fx = 1, fp[0] = 0, lp[0] = 0;
    else *fx = a, fp[0] = a * x, lp[0] = 1;
}
static const nf_ew_kernel leaky_relu_kernel = {.name = "leaky_relu", .k = 1, .monotone = 1, .pnames = {"log_alpha"},
                                               .fwd = lr_fwd, .inv = lr_inv,
                                               .partials = lr_partials};

nf_status nf_bijector_leaky_relu(size_t d, float alpha, nf_bijector **out) {
    NF_TRY(nf__check_ctor("nf_bijector_leaky_relu", d, out));
    if (!(alpha > 0) || !isfinite(alpha))
        return nf__err(NF_ERR_DOMAIN, "nf_bijector_leaky_relu: alpha must be finite and > 0, got %g",
                       (double)alpha);
    float la = logf(alpha);
    return nf__ew_create("nf_bijector_leaky_relu", &leaky_relu_kernel, d, 1, &la, out);
}
