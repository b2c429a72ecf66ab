/*
 * soft_clip.c - TFP SoftClip(low, high, hinge_softness = c): a smooth clip of
 * the real line into (low, high), nearly the identity well inside it
 * (TFP's definition, from its source):
 *   y = high - sp(w - sp(x - low)) w / sp(w),  w = high - low,
 *   sp(u) = c log(1 + e^(u/c)) (softplus with hinge softness c).
 * With u = x - low, v = w - sp(u), s(t) = sigmoid(t / c):
 *   dy/dx = (w / sp(w)) s(v) s(u),
 *   fldj = log(w / sp(w)) + log s(v) + log s(u);
 *   inverse: b = (high - y) sp(w) / w, v = sp^-1(b), u = sp^-1(w - v), x = low + u,
 *   with sp^-1(a) = c log(expm1(a / c)) for a > 0; needs low < y < high.
 * low, high and c are fixed constants.
 */
#include "elementwise.h"

static double spc(double u, double c) { return c * nf__softplus(u / c); }
static double spc_inv(double a, double c) { return a / c > 30 ? a + c * log1p(-exp(-a / c)) : c * log(expm1(a / c)); }
static double log_sig(double t) { return -nf__softplus(-t); }

/* p = [low, high, c] */
static int sc_fwd(const float *p, double x, double *y, double *l) {
    double lo = p[0], hi = p[1], c = p[2], w = hi - lo;
    if (!(w > 0 && c > 0)) return NF_EW_BAD_PARAM;
    double S = spc(w, c), u = x - lo, v = w - spc(u, c);
    *y = hi - spc(v, c) * w / S;
    *l = log(w / S) + log_sig(v / c) + log_sig(u / c);
    return NF_EW_OK;
}
static int sc_inv(const float *p, double y, double *x, double *l) {
    double lo = p[0], hi = p[1], c = p[2], w = hi - lo;
    if (!(w > 0 && c > 0)) return NF_EW_BAD_PARAM;
    if (!(y > lo && y < hi)) return NF_EW_OUT_OF_DOMAIN;
    double S = spc(w, c), b = (hi - y) * S / w, v = spc_inv(b, c), a = w - v;
    if (!(a > 0)) return NF_EW_OUT_OF_DOMAIN; /* y within rounding of low */
    double u = spc_inv(a, c);
    *x = lo + u;
    *l = -(log(w / S) + log_sig(v / c) + log_sig(u / c));
    return NF_EW_OK;
}
static void sc_partials(const float *p, double x, double *fx, double *lx, double *fp, double *lp) {
    (void)fp, (void)lp;
    double lo = p[0], hi = p[1], c = p[2], w = hi - lo, S = spc(w, c);
    double u = x - lo, v = w - spc(u, c), su = nf__sigmoid(u / c), sv = nf__sigmoid(v / c);
    *fx = w / S * sv * su;
    *lx = (-(1 - sv) * su + (1 - su)) / c;
}
static const nf_ew_kernel soft_clip_kernel = {.name = "soft_clip", .nc = 3, .monotone = 1, .inv_domain = "low < y < high",
                                              .param_domain = "low < high and hinge_softness > 0", .fwd = sc_fwd,
                                              .inv = sc_inv, .partials = sc_partials};

nf_status nf_bijector_soft_clip(size_t d, float low, float high, float hinge_softness, nf_bijector **out) {
    const char *fn = "nf_bijector_soft_clip";
    if (!(high > low) || !(hinge_softness > 0))
        return nf__err(NF_ERR_ARG, "%s: needs low < high and hinge_softness > 0, got %g, %g, %g", fn, (double)low,
                       (double)high, (double)hinge_softness);
    float c[3] = {low, high, hinge_softness};
    return nf__ew_create_const(fn, &soft_clip_kernel, d, 1, NULL, c, out);
}
