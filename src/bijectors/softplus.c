/*
 * softplus.c - TFP Softplus: y = log(1 + e^x).
 *   fldj = log sigmoid(x) = -softplus(-x)
 *   inverse x = y + log(1 - e^-y) = y + log(-expm1(-y)) for y > 0,
 *   ildj = -log(-expm1(-y))
 * and TFP's Softplus(hinge_softness=c, low) (fixed constants):
 *   y = c softplus(x / c) + low, fldj = log sigmoid(x / c);
 *   inverse x = c log(expm1((y - low) / c)) for y > low, ildj = -log sigmoid(x / c).
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

/* p = [c, low] (constants) */
static int sh_fwd(const float *p, double x, double *y, double *l) {
    double c = p[0];
    if (!(c > 0)) return NF_EW_BAD_PARAM;
    *y = c * nf__softplus(x / c) + p[1], *l = -nf__softplus(-x / c);
    return NF_EW_OK;
}
static int sh_inv(const float *p, double y, double *x, double *l) {
    double c = p[0], u = (y - p[1]) / c;
    if (!(c > 0)) return NF_EW_BAD_PARAM;
    if (!(u > 0)) return NF_EW_OUT_OF_DOMAIN;
    double t = log(-expm1(-u)); /* log(1 - e^-u) */
    *x = c * (u + t), *l = -t;   /* x / c = u + t; -log s(x/c) = -log(1 - e^-u) */
    return NF_EW_OK;
}
static void sh_partials(const float *p, double x, double *fx, double *lx, double *fp, double *lp) {
    (void)fp, (void)lp;
    double c = p[0];
    *fx = nf__sigmoid(x / c), *lx = nf__sigmoid(-x / c) / c;
}
static const nf_ew_kernel softplus_hl_kernel = {.name = "softplus", .nc = 2, .monotone = 1, .inv_domain = "y > low",
                                                .param_domain = "hinge_softness > 0", .fwd = sh_fwd, .inv = sh_inv,
                                                .partials = sh_partials};

nf_status nf_bijector_softplus_hinge(size_t d, float hinge_softness, float low, nf_bijector **out) {
    const char *fn = "nf_bijector_softplus_hinge";
    if (!(hinge_softness > 0)) return nf__err(NF_ERR_ARG, "%s: hinge_softness must be > 0, got %g", fn, (double)hinge_softness);
    float c[2] = {hinge_softness, low};
    return nf__ew_create_const(fn, &softplus_hl_kernel, d, 1, NULL, c, out);
}

nf_status nf_bijector_softplus(size_t d, nf_bijector **out) {
    return nf__ew_create("nf_bijector_softplus", &softplus_kernel, d, 1, NULL, out);
}
