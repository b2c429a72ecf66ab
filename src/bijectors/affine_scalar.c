/*
 * affine_scalar.c - identity, shift, scale and affine_scalar (TFP Identity,
 * Shift, Scale, AffineScalar): y = shift + scale * x, coordinatewise.
 *   fldj = log|scale|,  x = (y - shift) / scale,  ildj = -log|scale|.
 * Parameters (trainable): shift, scale, or [shift, scale] per slot; TFP's
 * Scale(log_scale=a) trains a: y = e^a x, fldj = a.
 */
#include "elementwise.h"

static int id_fwd(const float *p, double x, double *y, double *l) {
    (void)p;
    *y = x, *l = 0;
    return NF_EW_OK;
}
static void id_partials(const float *p, double x, double *fx, double *lx, double *fp, double *lp) {
    (void)p, (void)x, (void)fp, (void)lp;
    *fx = 1, *lx = 0;
}
static const nf_ew_kernel identity_kernel = {
    .name = "identity", .monotone = 1, .fwd = id_fwd, .inv = id_fwd, .partials = id_partials};

static int shift_fwd(const float *p, double x, double *y, double *l) {
    *y = x + p[0], *l = 0;
    return NF_EW_OK;
}
static int shift_inv(const float *p, double y, double *x, double *l) {
    *x = y - p[0], *l = 0;
    return NF_EW_OK;
}
static void shift_partials(const float *p, double x, double *fx, double *lx, double *fp,
                           double *lp) {
    (void)p, (void)x;
    *fx = 1, *lx = 0, fp[0] = 1, lp[0] = 0;
}
static const nf_ew_kernel shift_kernel = {.name = "shift", .k = 1, .monotone = 1, .pnames = {"shift"},
                                          .fwd = shift_fwd, .inv = shift_inv,
                                          .partials = shift_partials};

/* The scale is the LAST parameter of a slot, so scale and affine_scalar share code. */
static int affine_fwd(double a, double s, double x, double *y, double *l) {
    if (s == 0) return NF_EW_BAD_PARAM;
    *y = a + s * x, *l = log(fabs(s));
    return NF_EW_OK;
}
static int affine_inv(double a, double s, double y, double *x, double *l) {
    if (s == 0) return NF_EW_BAD_PARAM;
    *x = (y - a) / s, *l = -log(fabs(s));
    return NF_EW_OK;
}

static int scale_fwd(const float *p, double x, double *y, double *l) { return affine_fwd(0, p[0], x, y, l); }
static int scale_inv(const float *p, double y, double *x, double *l) { return affine_inv(0, p[0], y, x, l); }
static void scale_partials(const float *p, double x, double *fx, double *lx, double *fp, double *lp) {
    *fx = p[0], *lx = 0, fp[0] = x, lp[0] = 1.0 / p[0];
}
static const nf_ew_kernel scale_kernel = {.name = "scale", .k = 1, .param_domain = "scale != 0", .pnames = {"scale"},
                                          .fwd = scale_fwd, .inv = scale_inv,
                                          .partials = scale_partials};

/* TFP Scale(log_scale=a): y = e^a x, the trainable parameter a (no sign to lose) */
static int ls_fwd(const float *p, double x, double *y, double *l) {
    *y = exp((double)p[0]) * x, *l = p[0];
    return NF_EW_OK;
}
static int ls_inv(const float *p, double y, double *x, double *l) {
    *x = exp(-(double)p[0]) * y, *l = -(double)p[0];
    return NF_EW_OK;
}
static void ls_partials(const float *p, double x, double *fx, double *lx, double *fp, double *lp) {
    double e = exp((double)p[0]);
    *fx = e, *lx = 0, fp[0] = e * x, lp[0] = 1;
}
static const nf_ew_kernel log_scale_kernel = {.name = "scale", .k = 1, .monotone = 1, .pnames = {"log_scale"},
                                              .fwd = ls_fwd, .inv = ls_inv, .partials = ls_partials};

static int as_fwd(const float *p, double x, double *y, double *l) { return affine_fwd(p[0], p[1], x, y, l); }
static int as_inv(const float *p, double y, double *x, double *l) { return affine_inv(p[0], p[1], y, x, l); }
static void as_partials(const float *p, double x, double *fx, double *lx, double *fp, double *lp) {
    *fx = p[1], *lx = 0;
    fp[0] = 1, lp[0] = 0;
    fp[1] = x, lp[1] = 1.0 / p[1];
}
static const nf_ew_kernel affine_scalar_kernel = {
    .name = "affine_scalar", .k = 2, .param_domain = "scale != 0", .pnames = {"shift", "scale"},
    .fwd = as_fwd, .inv = as_inv, .partials = as_partials};

static nf_status slots(const char *fn, size_t d, size_t count, const float *v) {
    if (!v) return nf__err(NF_ERR_ARG, "%s: values are NULL", fn);
    if (count != 1 && count != d)
        return nf__err(NF_ERR_SHAPE, "%s: expected 1 or d=%zu values, got %zu", fn, d, count);
    return NF_OK;
}

nf_status nf_bijector_identity(size_t d, nf_bijector **out) {
    return nf__ew_create("nf_bijector_identity", &identity_kernel, d, 1, NULL, out);
}

nf_status nf_bijector_shift(size_t d, const float *shift, size_t count, nf_bijector **out) {
    NF_TRY(nf__check_ctor("nf_bijector_shift", d, out));
    NF_TRY(slots("nf_bijector_shift", d, count, shift));
    return nf__ew_create("nf_bijector_shift", &shift_kernel, d, count, shift, out);
}

nf_status nf_bijector_scale(size_t d, const float *scale, size_t count, nf_bijector **out) {
    NF_TRY(nf__check_ctor("nf_bijector_scale", d, out));
    NF_TRY(slots("nf_bijector_scale", d, count, scale));
    return nf__ew_create("nf_bijector_scale", &scale_kernel, d, count, scale, out);
}

nf_status nf_bijector_scale_log(size_t d, const float *log_scale, size_t count, nf_bijector **out) {
    NF_TRY(nf__check_ctor("nf_bijector_scale_log", d, out));
    NF_TRY(slots("nf_bijector_scale_log", d, count, log_scale));
    return nf__ew_create("nf_bijector_scale_log", &log_scale_kernel, d, count, log_scale, out);
}

nf_status nf_bijector_affine_scalar(size_t d, float shift, float scale, nf_bijector **out) {
    float p[2] = {shift, scale};
    return nf__ew_create("nf_bijector_affine_scalar", &affine_scalar_kernel, d, 1, p, out);
}
