/*
 * affine_form.h - the affine elementwise transform of MAF layers
 * (transform.h describes the forms), on one coordinate with shift m and
 * raw scale a: shared by the CPU passes (transform.h) and the device
 * kernels (device/kern.h), so both compute the same expressions.
 */
#ifndef NF_AFFINE_FORM_H
#define NF_AFFINE_FORM_H

#include "../core/hdmath.h"
#include "nflow.h"

#define NF_TANH_CLAMP 3.0
#define NF_SOFTPLUS_SHIFT 0.54132485461291800 /* log(e^0.999 - 1): softplus(c) + 1e-3 = 1 */

/* The forms that apply the shift after the scale (z = x s + m). */
NF_HD int nf__scale_after(int form) { return form == NF_SCALE_SIGMOID || form == NF_SCALE_SOFTPLUS; }

/* The affine scale s(a) and d log s / da. */
NF_HD double nf__affine_scale(int form, double a, double *dlog) {
    if (form == NF_SCALE_TANH) {
        double t = tanh(a / NF_TANH_CLAMP);
        *dlog = -(1 - t * t);
        return exp(-NF_TANH_CLAMP * t);
    }
    if (form == NF_SCALE_SIGMOID) {
        double g = nf__sigmoid(a + 2), sc = g + 1e-3;
        *dlog = g * (1 - g) / sc;
        return sc;
    }
    if (form == NF_SCALE_SOFTPLUS) {
        double sc = nf__softplus(a + NF_SOFTPLUS_SHIFT) + 1e-3;
        *dlog = nf__sigmoid(a + NF_SOFTPLUS_SHIFT) / sc;
        return sc;
    }
    *dlog = -1;
    return exp(-a);
}

/* z = T(x; m, a); returns log T'(x). */
NF_HD double nf__affine_eval(int form, double m, double a, double x, double *z) {
    if (form == NF_SCALE_UNBOUNDED) { /* as before the forms, bit for bit */
        *z = (x - m) * exp(-a);
        return -a;
    }
    double dl, sc = nf__affine_scale(form, a, &dl);
    *z = nf__scale_after(form) ? x * sc + m : (x - m) * sc;
    return log(sc);
}

/* x = T^{-1}(z; m, a); returns log T'(x). */
NF_HD double nf__affine_invert(int form, double m, double a, double z, double *x) {
    if (form == NF_SCALE_UNBOUNDED) {
        *x = z * exp(a) + m;
        return -a;
    }
    double dl, sc = nf__affine_scale(form, a, &dl);
    *x = nf__scale_after(form) ? (z - m) / sc : z / sc + m;
    return log(sc);
}

/* Reverse mode at x with the stored z = T(x): given dL/dz = gz and
 * dL/d log T' = gl, *gx = dL/dx, *gm = dL/dm, *ga = dL/da. */
NF_HD void nf__affine_grad(int form, double m, double a, double z, double gz, double gl, double *gx, float *gm,
                           float *ga) {
    if (form == NF_SCALE_UNBOUNDED) {
        double e = exp(-a);
        *gx = gz * e;
        *gm = (float)(-gz * e);
        *ga = (float)(-gz * z - gl);
        return;
    }
    /* z = (x - m) s(a) (sigmoid, softplus: x s(a) + m), l = log s(a):  dz/dx = s, dz/dm = -s (sigmoid, softplus: 1),
     * dz/da = (z - shift part) dlog, dl/da = dlog */
    double dl, sc = nf__affine_scale(form, a, &dl);
    int after = nf__scale_after(form);
    *gx = gz * sc;
    *gm = (float)(after ? gz : -gz * sc);
    *ga = (float)((gz * (after ? z - m : z) + gl) * dl);
}

#endif
