/*
 * rqspline.h - monotone rational-quadratic splines (Durkan, Bekasov, Murray &
 * Papamakarios 2019, "Neural Spline Flows") on [-B, B] with identity (linear)
 * tails, as scalar kernels in double precision.
 *
 * One spline has 3K - 1 raw parameters, read with a stride (p[k * stride]):
 *   p[0 .. K-1]       bin widths   (softmax, then at least NF_RQS_MIN_BIN)
 *   p[K .. 2K-1]      bin heights  (the same)
 *   p[2K .. 3K-2]     derivatives at the K-1 inner knots:
 *                     NF_RQS_MIN_DERIV + softplus(p + c0), c0 chosen so that
 *                     p = 0 gives derivative 1.
 * The boundary derivatives are 1 (the tails' slope), so all-zero parameters
 * give the identity map; a zero-initialised conditioner starts at identity.
 *
 * S maps x to z = S(x); inside [-B, B] it is the spline, outside identity.
 * `lder` is log S'(x).
 *
 * Knots (X_k, Y_k), k = 0..K, with X_0 = Y_0 = -B and X_K = Y_K = B, and
 * derivatives D_k (D_0 = D_K = 1).  In bin k, with w = X_{k+1} - X_k,
 * h = Y_{k+1} - Y_k, t = (x - X_k) / w and q = t (1 - t), the spline is
 *   S(x) = Y_k + h A / Bd,   A  = h t^2 + D_k w q,
 *                            Bd = h (t^2 + (1-t)^2) + (D_k + D_{k+1}) w q,
 *   S'(x) = h^2 E / (w Bd^2), E = D_{k+1} w t^2 + 2 h q + D_k w (1-t)^2,
 * which is the paper's eq. 4 with numerator and denominator multiplied by w
 * (s = h / w).  Its inverse solves a t^2 + b t + c = 0 with
 *   a = h (s - D_k) + dz (D_{k+1} + D_k - 2s),  b = h D_k - dz (...),
 *   c = -s dz  (dz = z - Y_k),
 * taking the root 2c / (-b - sqrt(b^2 - 4ac)), which does not cancel.
 * Gradients follow the formulas by hand: partials in (t, w, h, D_k, D_{k+1},
 * Y_k), then through t = (x - X_k) / w, the knots' cumulative sums, the
 * softmaxes and the softplus.
 *
 * The kernels are static inline (NF_HD): the CPU's passes and the device
 * kernels (device/kern.h) compile the same code.
 */
#ifndef NF_RQSPLINE_H
#define NF_RQSPLINE_H

#include "../core/hdmath.h"

#include <math.h>
#include <stddef.h>

#define NF_RQS_MAX_BINS 128
#define NF_RQS_MIN_BIN 1e-3
#define NF_RQS_MIN_DERIV 1e-3

/* A spline given by its knots (TFP's RationalQuadraticSpline): K bins, knots
 * X[0..K] and Y[0..K] increasing, slopes D[0..K] > 0 (D[0] = D[K] = 1 for
 * smooth identity tails); identity outside [X[0], X[K]] (inverse: outside
 * [Y[0], Y[K]]).  The same kernels as above. */
typedef struct nf_rqs_knots {
    size_t K;
    double X[NF_RQS_MAX_BINS + 1], Y[NF_RQS_MAX_BINS + 1], D[NF_RQS_MAX_BINS + 1];
} nf_rqs_knots;
/* The entry points: z = S(x) (nf__rqs_eval) and x = S^{-1}(z) (nf__rqs_invert,
 * a stable root of the bin's quadratic, clamped to the bin) return log
 * S'(x); nf__rqs_grad is the reverse mode at x for a loss with dL/dz = gz
 * and dL/d(log S'(x)) = gl: *gx = gz S'(x) + gl d log S'/dx, and
 * gp[k * stride] = dL/dp_k (written, every k).  The knots' versions
 * (nf__rqs_knots_*) are the same kernels on given knots; nf__rqs_knots_gx
 * is gz S'(x) + gl d log S'(x) / dx. */

/* The knots of one spline from raw parameters, with the softmaxes behind them. */
typedef struct knots {
    nf_rqs_knots s;
    double sw[NF_RQS_MAX_BINS], sh[NF_RQS_MAX_BINS]; /* the softmaxes */
} knots;

/* log(e^{1 - min} - 1): softplus(c0) + min = 1 */
NF_HD double deriv_offset(void) { return log(expm1(1.0 - NF_RQS_MIN_DERIV)); }

NF_HD void softmax(size_t K, const float *p, size_t stride, double *s) {
    double m = -INFINITY, sum = 0;
    for (size_t k = 0; k < K; k++) m = fmax(m, (double)p[k * stride]);
    for (size_t k = 0; k < K; k++) sum += s[k] = exp((double)p[k * stride] - m);
    for (size_t k = 0; k < K; k++) s[k] /= sum;
}

NF_HD void cumulate(size_t K, double B, const double *s, double *X) {
    double scale = 1.0 - NF_RQS_MIN_BIN * (double)K, c = 0;
    X[0] = -B;
    for (size_t k = 1; k < K; k++) {
        c += NF_RQS_MIN_BIN + scale * s[k - 1];
        X[k] = -B + 2 * B * c;
    }
    X[K] = B;
}

NF_HD void make_knots(size_t K, double B, const float *p, size_t stride, knots *kn) {
    softmax(K, p, stride, kn->sw);
    softmax(K, p + K * stride, stride, kn->sh);
    kn->s.K = K;
    cumulate(K, B, kn->sw, kn->s.X);
    cumulate(K, B, kn->sh, kn->s.Y);
    double c0 = deriv_offset();
    kn->s.D[0] = kn->s.D[K] = 1;
    for (size_t k = 1; k < K; k++) kn->s.D[k] = NF_RQS_MIN_DERIV + nf__softplus((double)p[(2 * K + k - 1) * stride] + c0);
}

/* The bin of v among knots K[0..K] (v inside [K[0], K[K]]): the last k with
 * K[k] <= v, at most K - 1 (v = B falls in the last bin). */
NF_HD size_t find_bin(size_t K, const double *kv, double v) {
    size_t lo = 0, hi = K - 1;
    while (lo < hi) {
        size_t mid = (lo + hi + 1) / 2;
        if (kv[mid] <= v) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

/* log S' at t in bin k */
NF_HD double log_deriv(const nf_rqs_knots *kn, size_t k, double t) {
    double w = kn->X[k + 1] - kn->X[k], h = kn->Y[k + 1] - kn->Y[k], d0 = kn->D[k], d1 = kn->D[k + 1];
    double q = t * (1 - t), u = 1 - t;
    double Bd = h * (t * t + u * u) + (d0 + d1) * w * q;
    double E = d1 * w * t * t + 2 * h * q + d0 * w * u * u;
    return 2 * log(h) + log(E) - log(w) - 2 * log(Bd);
}

/* S at t in bin k */
NF_HD double spline_at(const nf_rqs_knots *kn, size_t k, double t) {
    double w = kn->X[k + 1] - kn->X[k], h = kn->Y[k + 1] - kn->Y[k], d0 = kn->D[k], d1 = kn->D[k + 1];
    double q = t * (1 - t), u = 1 - t;
    double A = h * t * t + d0 * w * q, Bd = h * (t * t + u * u) + (d0 + d1) * w * q;
    return fmin(kn->Y[k] + h * A / Bd, kn->Y[k + 1]);
}

NF_HD int inside(double B, double v) { return v >= -B && v <= B; }

/* Identity tails: *out = v and 0 outside [-B, B]; otherwise builds the
 * knots and returns 1 with the bin of v among X (by_y 0) or Y (by_y 1). */
NF_HD int locate(size_t K, double B, const float *p, size_t stride, double v, int by_y, double *out, knots *kn,
                  size_t *k) {
    if (!inside(B, v)) {
        *out = v;
        return 0;
    }
    make_knots(K, B, p, stride, kn);
    *k = find_bin(K, by_y ? kn->s.Y : kn->s.X, v);
    return 1;
}

/* z = S(x) for x in bin k; returns log S'(x). */
NF_HD double eval_in(const nf_rqs_knots *kn, size_t k, double x, double *z) {
    double w = kn->X[k + 1] - kn->X[k];
    double t = fmin(fmax((x - kn->X[k]) / w, 0.0), 1.0);
    *z = spline_at(kn, k, t);
    return log_deriv(kn, k, t);
}

/* x = S^{-1}(z) for z in bin k (by Y); returns log S'(x). */
NF_HD double invert_in(const nf_rqs_knots *kn, size_t k, double z, double *x) {
    double w = kn->X[k + 1] - kn->X[k], h = kn->Y[k + 1] - kn->Y[k], d0 = kn->D[k], d1 = kn->D[k + 1];
    double s = h / w, dz = z - kn->Y[k], m = d1 + d0 - 2 * s;
    double a = h * (s - d0) + dz * m, b = h * d0 - dz * m, c = -s * dz;
    double disc = fmax(b * b - 4 * a * c, 0.0); /* >= 0 in exact arithmetic */
    double den = -b - sqrt(disc);
    double t = den != 0 ? 2 * c / den : 0.0;
    t = fmin(fmax(t, 0.0), 1.0);
    /* One Newton step on S(t) = z polishes the root where the quadratic's
     * coefficients cancel (extreme derivatives): kept only if it helps. */
    double r0 = spline_at(kn, k, t) - z, sl = exp(log_deriv(kn, k, t)) * w;
    if (r0 != 0 && sl > 0 && isfinite(sl)) {
        double t1 = fmin(fmax(t - r0 / sl, 0.0), 1.0);
        if (fabs(spline_at(kn, k, t1) - z) < fabs(r0)) t = t1;
    }
    *x = fmin(kn->X[k] + t * w, kn->X[k + 1]);
    return log_deriv(kn, k, t);
}

NF_HD double nf__rqs_eval(size_t K, double B, const float *p, size_t stride, double x, double *z) {
    knots kn;
    size_t k;
    if (!locate(K, B, p, stride, x, 0, z, &kn, &k)) return 0;
    return eval_in(&kn.s, k, x, z);
}

NF_HD double nf__rqs_invert(size_t K, double B, const float *p, size_t stride, double z, double *x) {
    knots kn;
    size_t k;
    if (!locate(K, B, p, stride, z, 1, x, &kn, &k)) return 0;
    return invert_in(&kn.s, k, z, x);
}

NF_HD double nf__rqs_knots_eval(const nf_rqs_knots *kn, double x, double *z) {
    if (!(x >= kn->X[0] && x <= kn->X[kn->K])) {
        *z = x;
        return 0;
    }
    return eval_in(kn, find_bin(kn->K, kn->X, x), x, z);
}

NF_HD double nf__rqs_knots_invert(const nf_rqs_knots *kn, double z, double *x) {
    if (!(z >= kn->Y[0] && z <= kn->Y[kn->K])) {
        *x = z;
        return 0;
    }
    return invert_in(kn, find_bin(kn->K, kn->Y, z), z, x);
}

/* dF/dt in bin k at t for F = gz S + gl log S' (the chain rule's t-part). */
NF_HD double bin_ft(const nf_rqs_knots *kn, size_t k, double t, double gz, double gl) {
    double w = kn->X[k + 1] - kn->X[k], h = kn->Y[k + 1] - kn->Y[k], d0 = kn->D[k], d1 = kn->D[k + 1];
    double q = t * (1 - t), u = 1 - t;
    double A = h * t * t + d0 * w * q;
    double Bd = h * (t * t + u * u) + (d0 + d1) * w * q;
    double E = d1 * w * t * t + 2 * h * q + d0 * w * u * u;
    double At = 2 * h * t + d0 * w * (1 - 2 * t);
    double Bt = (1 - 2 * t) * ((d0 + d1) * w - 2 * h);
    double Et = 2 * d1 * w * t + 2 * h * (1 - 2 * t) - 2 * d0 * w * u;
    double iB2 = 1 / (Bd * Bd);
    return gz * h * (At * Bd - A * Bt) * iB2 + gl * (Et / E - 2 * Bt / Bd);
}

NF_HD double nf__rqs_knots_gx(const nf_rqs_knots *kn, double x, double gz, double gl) {
    if (!(x >= kn->X[0] && x <= kn->X[kn->K])) return gz; /* identity tails */
    size_t k = find_bin(kn->K, kn->X, x);
    double w = kn->X[k + 1] - kn->X[k], t = fmin(fmax((x - kn->X[k]) / w, 0.0), 1.0);
    return bin_ft(kn, k, t, gz, gl) / w;
}

/* Adds g (on knot values V[1..K-1]; V[0], V[K] fixed) back through the
 * cumulative sum and softmax into gp[k * stride]. */
NF_HD void knots_backward(size_t K, double B, const double *s, const double *gV, float *gp, size_t stride) {
    double scale = (1.0 - NF_RQS_MIN_BIN * (double)K) * 2 * B;
    /* V_j = -B + 2B sum_{i<j} (min + scale' s_i): dL/ds_i = scale * sum_{j>i, j<K} gV_j */
    double gs[NF_RQS_MAX_BINS], acc = 0, dot = 0;
    for (size_t i = K; i-- > 0;) {
        gs[i] = scale * acc;          /* acc = sum_{j=i+1}^{K-1} gV_j */
        if (i >= 1) acc += gV[i];
        dot += s[i] * gs[i];
    }
    for (size_t i = 0; i < K; i++) gp[i * stride] = (float)(s[i] * (gs[i] - dot));
}

NF_HD void nf__rqs_grad(size_t K, double B, const float *p, size_t stride, double x, double gz, double gl,
                  double *gx, float *gp) {
    for (size_t k = 0; k < 3 * K - 1; k++) gp[k * stride] = 0;
    knots kn;
    size_t k;
    double xo;
    if (!locate(K, B, p, stride, x, 0, &xo, &kn, &k)) {
        *gx = gz; /* identity tail */
        return;
    }
    double w = kn.s.X[k + 1] - kn.s.X[k], h = kn.s.Y[k + 1] - kn.s.Y[k], d0 = kn.s.D[k], d1 = kn.s.D[k + 1];
    double t = fmin(fmax((x - kn.s.X[k]) / w, 0.0), 1.0), q = t * (1 - t), u = 1 - t;
    double A = h * t * t + d0 * w * q;
    double Bd = h * (t * t + u * u) + (d0 + d1) * w * q;
    double E = d1 * w * t * t + 2 * h * q + d0 * w * u * u;
    /* partials of A, Bd, E in (h, w, d0, d1); those in t are bin_ft's */
    double Ah = t * t, Aw = d0 * q, Ad0 = w * q;
    double Bh = t * t + u * u, Bw = (d0 + d1) * q, Bd0 = w * q, Bd1 = w * q;
    double Eh = 2 * q, Ew = d1 * t * t + d0 * u * u,
           Ed0 = w * u * u, Ed1 = w * t * t;
    double iB2 = 1 / (Bd * Bd);
    /* F = gz z + gl log S' */
    double Ft = bin_ft(&kn.s, k, t, gz, gl);
    double Fh = gz * (A / Bd + h * (Ah * Bd - A * Bh) * iB2) + gl * (2 / h + Eh / E - 2 * Bh / Bd);
    double Fw = gz * h * (Aw * Bd - A * Bw) * iB2 + gl * (Ew / E - 1 / w - 2 * Bw / Bd);
    double Fd0 = gz * h * (Ad0 * Bd - A * Bd0) * iB2 + gl * (Ed0 / E - 2 * Bd0 / Bd);
    double Fd1 = gz * h * (-A * Bd1) * iB2 + gl * (Ed1 / E - 2 * Bd1 / Bd);
    *gx = Ft / w;
    /* t = (x - X_k) / w, w = X_{k+1} - X_k, h = Y_{k+1} - Y_k */
    double Fw_tot = Fw - Ft * t / w;
    double gX[NF_RQS_MAX_BINS + 1], gY[NF_RQS_MAX_BINS + 1];
    for (size_t j = 0; j <= K; j++) gX[j] = gY[j] = 0;
    gX[k] = -Ft / w - Fw_tot, gX[k + 1] = Fw_tot;
    gY[k] = gz - Fh, gY[k + 1] = Fh;
    knots_backward(K, B, kn.sw, gX, gp, stride);
    knots_backward(K, B, kn.sh, gY, gp + K * stride, stride);
    double c0 = deriv_offset();
    if (k >= 1) gp[(2 * K + k - 1) * stride] = (float)(Fd0 * nf__sigmoid((double)p[(2 * K + k - 1) * stride] + c0));
    if (k + 1 < K) gp[(2 * K + k) * stride] = (float)(Fd1 * nf__sigmoid((double)p[(2 * K + k) * stride] + c0));
}

#endif
