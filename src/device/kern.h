/*
 * kern.h - the device kernels: each is the body of one thread, run for
 * every index i < count of a launch (dev.h).  The same bodies are compiled
 * for the CPU (host.c runs them in loops, so the tests check them without a
 * GPU) and by nvcc for the GPU (cuda/cuda.cu runs them as one CUDA kernel).
 * Plain C that is also valid CUDA C++: no restrict, no designated
 * initialisers, no library calls but <math.h>'s.
 *
 * Conventions as the CPU code's: row-major n x d batches; forward is base ->
 * data (sampling), inverse is data -> base (density); log-det terms are
 * added into ldj; backward kernels write input gradients and the networks'
 * output gradients.
 */
#ifndef NF_KERN_H
#define NF_KERN_H

#include "../bijectors/transform.h"
#include "../core/hdmath.h"
#include "nflow.h"

#include <stddef.h>

/* Every kernel's arguments (passed by value; unused fields are ignored). */
typedef struct nf_kargs {
    float *o0, *o1, *o2;               /* outputs */
    const float *i0, *i1, *i2, *i3, *i4; /* inputs */
    const int *x0, *x1;                /* index arrays */
    double *st;                        /* the training state (K_STEP, K_ADAM) */
    size_t n, d, a, b, c, e;           /* sizes and strides */
    int act, mode, flag;
    float f0, f1, f2, f3, f4, f5;
    nf_eltx tx; /* the elementwise transform of MAF and spline layers (transform.h) */
    const unsigned long long *u; /* raw generator output (K_NORMAL_DRAW) */
    double dd;                   /* a double constant (K_NORMAL_DRAW: the generator's spare normal) */
    size_t tn, s0, s1; /* twin launches (K_BIAS_ACT, K_COPY_ACT, K_ACT_BWD, K_ADD): copies of tn
                          elements, copy q's o0 at q s0 and i0 at q s1 (tn = 0: one copy) */
} nf_kargs;

enum {
    K_BIAS_ACT,  /* n*b: o0[i] = act(o0[i] + i0[i % b]) (twin) */
    K_COPY_ACT,  /* n: o0[i] = act(i0[i]) (twin) */
    K_ACT_BWD,   /* n: o0[i] *= act'(.) through the output i0[i] (twin) */
    K_ADD,       /* n: o0[i] += i0[i] (twin) */
    K_MUL,       /* n: o0[i] *= i0[i] (masked weights' gradients) */
    K_GATHER,    /* n*c rows x columns: o0[r*a + j] = i0[r*d + x0[j]] */
    K_COUPLING,  /* n rows: affine coupling pass (mode 1 forward, 0 inverse) */
    K_COUPLING_BWD, /* n rows: its backward through the elementwise part */
    K_SPLINE_COUPLING, /* n rows: spline coupling pass (mode 1 forward, 0 inverse) */
    K_SPLINE_COUPLING_BWD, /* n*e: its inverse pass's backward */
    K_SCATTER_ADD,  /* n*c: o0[r*d + x0[j]] = i0[r*d + x0[j]] + i1[r*a + j] */
    K_PERMUTE,   /* n*d: mode 1: o0[r*d+j] = i0[r*d+x0[j]]; mode 0: o0[r*d+x0[j]] = i0[r*d+j] */
    K_MAF_INV,   /* n rows: z = T(x; h), ldj += sum log T' */
    K_MAF_INV_BWD, /* n*d: gx, dh from (g, gl) */
    K_MAF_FWD,   /* n rows: coordinate flag: x_j = T^{-1}(z_j; h), ldj -= log T' */
    K_NORMAL,    /* n rows: the base's log-density, and with o1 the NLL's gradients */
    K_ACTNORM,   /* n rows: ActNorm pass (mode 1 forward, 0 inverse) */
    K_ACTNORM_BWD, /* n*d: its inverse pass's backward (per-row parameter terms) */
    K_MAF_FB_PREP, /* n*d: backward through a MAF's forward pass: 1/T' and gl dlogT'/dx */
    K_MAF_GP,    /* n*d: the transform's parameter gradients at (w, gl) (negated with flag) */
    K_MAF_W,     /* n*d: one sweep's w = (g - r - glx) / T' (r's row stride a) */
    K_PUT_COLS,  /* n*e: o0[r*a + c + j] = i0[r*e + j] (columns into a wider row) */
    K_ADD_COLS,  /* n*e: o0[r*e + j] += i0[r*a + j] (the first e columns of wider rows) */
    K_LU,        /* n rows: Glow's LU linear map (mode 1 forward, 0 inverse) */
    K_LU_BWD,    /* n rows: its inverse pass's backward (per-row vectors for the products) */
    K_LU_PACK,   /* d*d: the products' sums into the packed parameter gradients */
    K_BN_SQ,     /* n*d: batch norm: (y - mean)^2 from the column sums */
    K_BN_STATS,  /* d: batch norm's mean and 1/sqrt(var + eps), from the batch or the running averages */
    K_BN,        /* n rows: batch norm pass (mode 1 forward, 0 inverse) */
    K_BN_TERMS,  /* n*d: its backward's per-row terms (du, du u, g) */
    K_BN_BWD,    /* n*d: dy */
    K_BN_PGRAD,  /* d: the parameters' gradients from the column sums */
    K_NORMAL_DRAW, /* n*d: base points loc + scale z, z by Box-Muller from the host generator's words */
    K_STEP,      /* 1: counts the step, checks it, accumulates its loss */
    K_ADAM,      /* n params: clipped Adam update, g zeroed */
    K_COUNT
};

/* The training state st[] (doubles on the device). */
enum {
    ST_SQ,       /* this step's sum of squared gradients */
    ST_LOSS,     /* this step's sum over rows of log p(x) */
    ST_T,        /* Adam's step count (good steps) */
    ST_STEP,     /* steps taken */
    ST_BAD,      /* the first step with a non-finite loss or gradient (0: none); no update after it */
    ST_ACC,      /* sum of log p(x) over the good steps' rows since the last read */
    ST_ROWS,     /* rows of those steps */
    ST_N
};

NF_HD float nf__k_act(int a, float h) {
    switch (a) {
    case NF_ACT_RELU: return h * (float)(h > 0);
    case NF_ACT_LEAKY_RELU: return h * (0.01f + (1 - 0.01f) * (float)(h > 0));
    case NF_ACT_TANH: return tanhf(h);
    case NF_ACT_SIGMOID: return (float)nf__sigmoid(h);
    case NF_ACT_ELU: return h > 0 ? h : expm1f(h);
    default: return h;
    }
}

/* act'(pre) through h = act(pre) */
NF_HD float nf__k_dact(int a, float h) {
    switch (a) {
    case NF_ACT_RELU: return (float)(h > 0);
    case NF_ACT_LEAKY_RELU: return 0.01f + (1 - 0.01f) * (float)(h > 0);
    case NF_ACT_TANH: return 1 - h * h;
    case NF_ACT_SIGMOID: return h * (1 - h);
    case NF_ACT_ELU: return h > 0 ? 1.0f : h + 1;
    default: return 1.0f;
    }
}

/* Affine coupling, row r (coupling.c's maths): i0 the pass input, o0 its
 * output, o1 ldj (or NULL); raw scales i1 (NULL: NICE) with row stride a,
 * shifts i2 with row stride b; x0 the conditioning columns (c of them), x1
 * the transformed ones (e); flag: s = tanh(raw). */
NF_HD void nf__k_coupling(const nf_kargs *k, size_t r) {
    size_t d = k->d;
    const float *in = k->i0 + r * d;
    float *out = k->o0 + r * d;
    double acc = 0;
    for (size_t j = 0; j < k->c; j++) out[k->x0[j]] = in[k->x0[j]];
    for (size_t j = 0; j < k->e; j++) {
        double s = 0;
        if (k->i1) {
            s = k->i1[r * k->a + j];
            if (k->flag) s = tanh(s);
        }
        double sh = k->i2[r * k->b + j], u = in[k->x1[j]];
        out[k->x1[j]] = (float)(k->mode ? u * exp(s) + sh : (u - sh) * exp(-s));
        acc += s;
    }
    if (k->o1) k->o1[r] += (float)(k->mode ? acc : -acc);
}

/* Its backward, row r (coupling.c's affine_backward): i0 = g (upstream,
 * n x d), i1 = gl, i2 = the pass output, i3 raw scales (stride a, NULL:
 * NICE), i4 shifts (stride b); writes o0 = the transformed columns' input
 * gradients (or NULL), o1 = dshift and o2 = draw-scale (or NULL), both with
 * row stride n (a stride here, not the row count). */
NF_HD void nf__k_coupling_bwd(const nf_kargs *k, size_t r) {
    size_t d = k->d, ds = k->n;
    for (size_t j = 0; j < k->e; j++) {
        double s = 0;
        if (k->i3) {
            s = k->i3[r * k->a + j];
            if (k->flag) s = tanh(s);
        }
        double sh = k->i4[r * k->b + j], gg = k->i0[r * d + k->x1[j]], gt, gsh, gs;
        double o = k->i2[r * d + k->x1[j]];
        if (k->mode) {
            double es = exp(s);
            gt = gg * es, gsh = gg, gs = gg * (o - sh) + k->i1[r];
        } else {
            double ems = exp(-s);
            gt = gg * ems, gsh = -gg * ems, gs = -gg * o - k->i1[r];
        }
        if (k->o0) k->o0[r * d + k->x1[j]] = (float)gt;
        k->o1[r * ds + j] = (float)gsh;
        if (k->o2) k->o2[r * ds + j] = (float)(k->flag ? gs * (1 - s * s) : gs);
    }
}

/* MAF inverse, row r: i0 = x, i1 = h (the MADE's outputs: parameter k of
 * coordinate j at k d + j, row stride a), o0 = z, o1 = ldj (or NULL); tx
 * the transform. */
NF_HD void nf__k_maf_inv(const nf_kargs *k, size_t r) {
    size_t d = k->d;
    const float *h = k->i1 + r * k->a;
    double acc = 0, z;
    for (size_t j = 0; j < d; j++) {
        acc += nf__eltx_eval(&k->tx, h + j, d, k->i0[r * d + j], &z);
        k->o0[r * d + j] = (float)z;
    }
    if (k->o1) k->o1[r] += (float)acc;
}

/* MAF inverse backward, element q = r*d + j: i0 = h (row stride a), i1 = z,
 * i2 = g, i3 = gl, i4 = x; o0 = the direct dx (or NULL), o1 = dh (row
 * stride a). */
NF_HD void nf__k_maf_inv_bwd(const nf_kargs *k, size_t q) {
    size_t d = k->d, r = q / d, j = q % d;
    double gx;
    nf__eltx_grad(&k->tx, k->i0 + r * k->a + j, d, k->i4[q], k->i1[q], k->i2[q], k->i3[r], &gx,
                  k->o1 + r * k->a + j);
    if (k->o0) k->o0[q] = (float)gx;
}

/* MAF forward, row r, coordinate j = flag: i0 = z, i1 = h (row stride a:
 * np d, or 0 for the output biases), o0 = x, o1 = ldj (or NULL); o2 (or
 * NULL): the MADE's input rows [x | context] (row stride b), kept in step. */
NF_HD void nf__k_maf_fwd(const nf_kargs *k, size_t r) {
    size_t d = k->d, j = (size_t)k->flag;
    double x, l = nf__eltx_invert(&k->tx, k->i1 + r * k->a + j, d, k->i0[r * d + j], &x);
    k->o0[r * d + j] = (float)x;
    if (k->o2) k->o2[r * k->b + j] = (float)x;
    if (k->o1) k->o1[r] -= (float)l;
}

/* Spline coupling, row r (coupling.c): i0 the pass input, o0 its output,
 * o1 ldj (or NULL); i1 the net's outputs (parameter k of transformed
 * coordinate j at k e + j, row stride a); x0 the conditioning columns (c),
 * x1 the transformed ones (e).  Inverse (mode 0): x_t = S(y_t), ldj +=
 * log S'; forward: y_t = S^{-1}(x_t), ldj -= log S'. */
NF_HD void nf__k_spline_coupling(const nf_kargs *k, size_t r) {
    size_t d = k->d;
    const float *in = k->i0 + r * d, *pr = k->i1 + r * k->a;
    float *out = k->o0 + r * d;
    double acc = 0, o;
    for (size_t j = 0; j < k->c; j++) out[k->x0[j]] = in[k->x0[j]];
    for (size_t j = 0; j < k->e; j++) {
        double u = in[k->x1[j]];
        acc += k->mode ? -nf__eltx_invert(&k->tx, pr + j, k->e, u, &o) : nf__eltx_eval(&k->tx, pr + j, k->e, u, &o);
        out[k->x1[j]] = (float)o;
    }
    if (k->o1) k->o1[r] += (float)acc;
}

/* Its backward, element q = r e + j: i0 = g, i1 = gl, i2 = the data-side
 * rows (the inverse pass's input, the forward pass's output), i3 the net's
 * outputs (row stride a); o0 = the transformed columns' input gradients (or
 * NULL), o1 = the net outputs' gradients (i3's layout).  mode 1, the
 * forward pass y = S^{-1}(x): dx = w = (g - gl dlogS'/dy) / S'(y) and the
 * parameters get -gp(w, gl) (coupling.c's spline_backward). */
NF_HD void nf__k_spline_coupling_bwd(const nf_kargs *k, size_t q) {
    size_t d = k->d, r = q / k->e, j = q % k->e, col = (size_t)k->x1[j];
    const float *pp = k->i3 + r * k->a + j;
    float *dp = k->o1 + r * k->a + j;
    double y = k->i2[r * d + col], gg = k->i0[r * d + col], gx;
    if (k->mode) {
        double z, l = nf__eltx_eval(&k->tx, pp, k->e, y, &z), glx;
        nf__eltx_grad(&k->tx, pp, k->e, y, z, 0, k->i1[r], &glx, dp);
        double wv = (gg - glx) / exp(l);
        nf__eltx_grad(&k->tx, pp, k->e, y, z, wv, k->i1[r], &gx, dp);
        for (size_t m = 0; m < k->a; m += k->e) dp[m] = -dp[m];
        gx = wv;
    } else {
        nf__eltx_grad(&k->tx, pp, k->e, y, 0, gg, k->i1[r], &gx, dp);
    }
    if (k->o0) k->o0[r * d + col] = (float)gx;
}

/* The base Normal(loc i1, scale i2), row r of z = i0 (normal.c's maths):
 * o0[r] = log p(z) + ldj[r] (i3, may be NULL); with o1, the NLL's
 * gradients for a batch of mean loss: o1 = dL/dz = -grad log p / k (f0 =
 * 1/k), o2[r] = dL/dldj = -1/k. */
NF_HD void nf__k_normal(const nf_kargs *k, size_t r) {
    size_t d = k->d;
    double s = 0;
    for (size_t j = 0; j < d; j++) s -= log((double)k->i2[j]) + NF_LOG_SQRT_2PI;
    for (size_t j = 0; j < d; j++) {
        double sc = k->i2[j], z = ((double)k->i0[r * d + j] - k->i1[j]) / sc;
        s -= 0.5 * z * z;
        if (k->o1) k->o1[r * d + j] = (float)(z / sc) * k->f0;
    }
    float lp = (float)s;
    k->o0[r] = k->i3 ? lp + k->i3[r] : lp;
    if (k->o2) k->o2[r] = -k->f0;
}

/* ActNorm, row r (actnorm.c): i0 in, o0 out, o1 ldj (or NULL), i1 the
 * parameters (d shifts, then d log-scales); mode 1 forward: y = x e^s + b,
 * 0 inverse: x = (y - b) e^-s. */
NF_HD void nf__k_actnorm(const nf_kargs *k, size_t r) {
    size_t d = k->d;
    const float *sh = k->i1, *ls = k->i1 + d;
    double sl = 0;
    for (size_t j = 0; j < d; j++) {
        double v = k->i0[r * d + j];
        k->o0[r * d + j] = (float)(k->mode ? v * exp((double)ls[j]) + sh[j] : (v - sh[j]) * exp(-(double)ls[j]));
        sl += ls[j];
    }
    if (k->o1) k->o1[r] += (float)(k->mode ? sl : -sl);
}

/* Its backward, element q = r d + j: i0 = g, i1 = gl, i3 the parameters;
 * mode 0 (inverse) i2 = the pass output x: dy = g e^-s, terms -g e^-s and
 * -g x - gl; mode 1 (forward) i2 = the pass input x: dx = g e^s, terms g
 * and g x e^s + gl.  o0 = the input gradient (or NULL), o1 = the
 * parameters' per-row terms (row stride 2d; summed over rows by the caller). */
NF_HD void nf__k_actnorm_bwd(const nf_kargs *k, size_t q) {
    size_t d = k->d, r = q / d, j = q % d;
    double gg = k->i0[q], e = exp(k->mode ? (double)k->i3[d + j] : -(double)k->i3[d + j]), x = k->i2[q];
    if (k->o0) k->o0[q] = (float)(gg * e);
    k->o1[r * 2 * d + j] = (float)(k->mode ? gg : -gg * e);
    k->o1[r * 2 * d + d + j] = (float)(k->mode ? gg * x * e + k->i1[r] : -gg * x - k->i1[r]);
}

/* Backward through a MAF's forward pass z -> x (maf.c's forward_backward),
 * element q = r d + j, with h the MADE's outputs at x (row stride a), x =
 * i1, z = i2, gl = i3: o0 = 1 / T'(x), o1 = gl d log T'/dx, o2 = scratch
 * for the parameter gradients (row stride a). */
NF_HD void nf__k_maf_fb_prep(const nf_kargs *k, size_t q) {
    size_t d = k->d, r = q / d, j = q % d;
    const float *h = k->i0 + r * k->a + j;
    double zz, gx, l = nf__eltx_eval(&k->tx, h, d, k->i1[q], &zz);
    nf__eltx_grad(&k->tx, h, d, k->i1[q], k->i2[q], 0, k->i3[r], &gx, k->o2 + r * k->a + j);
    k->o0[q] = (float)exp(-l);
    k->o1[q] = (float)gx;
}

/* o1 = gp(w, gl) (negated when flag), element q: h = i0 (row stride a), x =
 * i4, z = i1, w = i2, gl = i3. */
NF_HD void nf__k_maf_gp(const nf_kargs *k, size_t q) {
    size_t d = k->d, r = q / d, j = q % d, a = k->a;
    double gx;
    float *gp = k->o1 + r * a + j;
    nf__eltx_grad(&k->tx, k->i0 + r * a + j, d, k->i4[q], k->i1[q], k->i2[q], k->i3[r], &gx, gp);
    if (k->flag)
        for (size_t m = 0; m < a; m += d) gp[m] = -gp[m];
}

/* Glow's LU map (lu_linear.c), d x d: strict lower L and strict upper U
 * packed by rows after d shifts b, then d log-scales; P by x0. */
NF_HD size_t nf__k_lo(size_t i, size_t j) { return i * (i - 1) / 2 + j; }
NF_HD size_t nf__k_up(size_t d, size_t i, size_t j) { return i * d - i * (i + 1) / 2 + (j - i - 1); }

/* a = U' x = (U + diag e^ls) x for one row */
NF_HD void nf__k_lu_ux(size_t d, const float *up, const float *ls, const float *x, double *a) {
    for (size_t i = 0; i < d; i++) {
        double s = exp((double)ls[i]) * x[i];
        for (size_t j = i + 1; j < d; j++) s += (double)up[nf__k_up(d, i, j)] * x[j];
        a[i] = s;
    }
}

/* Row r: i0 in, o0 out, o1 ldj (or NULL), i1 the parameters, st a row's 3d
 * doubles of scratch (at st + 3 d r).  Forward: y = P L U' x + b; inverse:
 * x = U'^-1 L^-1 P^T (y - b). */
NF_HD void nf__k_lu(const nf_kargs *k, size_t r) {
    size_t d = k->d, t = d * (d - 1) / 2;
    const float *b = k->i1, *lo = k->i1 + d, *up = k->i1 + d + t, *ls = k->i1 + d + 2 * t, *in = k->i0 + r * d;
    double *a = k->st + 3 * d * r, *c = a + d, *x = c + d, sl = 0;
    for (size_t i = 0; i < d; i++) sl += ls[i];
    if (k->mode) {
        nf__k_lu_ux(d, up, ls, in, a);
        for (size_t i = 0; i < d; i++) {
            double s = a[i];
            for (size_t j = 0; j < i; j++) s += (double)lo[nf__k_lo(i, j)] * a[j];
            c[i] = s;
        }
        for (size_t j = 0; j < d; j++) k->o0[r * d + j] = (float)(c[k->x0[j]] + (double)b[j]);
    } else {
        for (size_t j = 0; j < d; j++) c[k->x0[j]] = (double)in[j] - (double)b[j];
        for (size_t i = 0; i < d; i++) {
            double s = c[i];
            for (size_t j = 0; j < i; j++) s -= (double)lo[nf__k_lo(i, j)] * a[j];
            a[i] = s;
        }
        for (size_t i = d; i-- > 0;) {
            double s = a[i];
            for (size_t j = i + 1; j < d; j++) s -= (double)up[nf__k_up(d, i, j)] * x[j];
            x[i] = s * exp(-(double)ls[i]);
        }
        for (size_t j = 0; j < d; j++) k->o0[r * d + j] = (float)x[j];
    }
    if (k->o1) k->o1[r] += (float)(k->mode ? sl : -sl);
}

/* Its backward, row r: i0 = g (the pass output's gradient), i2 = x (the
 * base-side rows: the inverse pass's output, the forward pass's input), i1
 * the parameters, st scratch; writes o1 = [dc | a] (row stride 2d, a = U'
 * x), o2 = da, and o0 = the input gradient: mode 0 (inverse: U'^T da = g,
 * L^T dc = da, dy = P dc), mode 1 (forward: dc = P^T g, da = L^T dc, dx =
 * U'^T da). */
NF_HD void nf__k_lu_bwd(const nf_kargs *k, size_t r) {
    size_t d = k->d, t = d * (d - 1) / 2;
    const float *lo = k->i1 + d, *up = k->i1 + d + t, *ls = k->i1 + d + 2 * t, *x = k->i2 + r * d, *g = k->i0 + r * d;
    double *a = k->st + 3 * d * r, *da = a + d, *dc = da + d;
    nf__k_lu_ux(d, up, ls, x, a);
    if (k->mode) {
        for (size_t j = 0; j < d; j++) dc[k->x0[j]] = g[j];
        for (size_t j = 0; j < d; j++) {
            double s = dc[j];
            for (size_t i = j + 1; i < d; i++) s += (double)lo[nf__k_lo(i, j)] * dc[i];
            da[j] = s;
        }
        for (size_t j = 0; j < d; j++) {
            double s = exp((double)ls[j]) * da[j];
            for (size_t i = 0; i < j; i++) s += (double)up[nf__k_up(d, i, j)] * da[i];
            k->o0[r * d + j] = (float)s;
        }
    } else {
        for (size_t i = 0; i < d; i++) {
            double s = g[i];
            for (size_t q = 0; q < i; q++) s -= (double)up[nf__k_up(d, q, i)] * da[q];
            da[i] = s * exp(-(double)ls[i]);
        }
        for (size_t i = d; i-- > 0;) {
            double s = da[i];
            for (size_t q = i + 1; q < d; q++) s -= (double)lo[nf__k_lo(q, i)] * dc[q];
            dc[i] = s;
        }
        for (size_t j = 0; j < d; j++) k->o0[r * d + j] = (float)dc[k->x0[j]];
    }
    for (size_t j = 0; j < d; j++) {
        k->o1[r * 2 * d + j] = (float)dc[j];
        k->o1[r * 2 * d + d + j] = (float)a[j];
        k->o2[r * d + j] = (float)da[j];
    }
}

/* Thread q = i d + j: o0 the layer's parameter gradients, i0 = sum_r dc_i
 * a_j, i1 = sum_r da_i x_j (d x d), i2 the parameters, i3[0] = sum_r gl;
 * added (mode 1, the forward pass) or subtracted (the inverse pass). */
NF_HD void nf__k_lu_pack(const nf_kargs *k, size_t q) {
    size_t d = k->d, t = d * (d - 1) / 2, i = q / d, j = q % d;
    float sg = k->mode ? 1.0f : -1.0f;
    if (i > j) k->o0[d + nf__k_lo(i, j)] += sg * k->i0[q];
    else if (i < j) k->o0[d + t + nf__k_up(d, i, j)] += sg * k->i1[q];
    else k->o0[d + 2 * t + i] += sg * (float)((double)k->i1[q] * exp((double)k->i2[d + 2 * t + i]) + k->i3[0]);
}

/* Batch normalisation (batchnorm.c).  Its statistics st[j] = mean, st[d +
 * j] = r = 1 / sqrt(var + eps) (doubles); the running averages i3 / o2
 * (mean, then variance: 2d floats); f0 = eps, f1 = momentum. */

/* element q: o0[q] = (y - sum_j / n)^2, i0 = y, i1 = the column sums */
NF_HD void nf__k_bn_sq(const nf_kargs *k, size_t q) {
    double m = (double)k->i1[q % k->d] / (double)k->n, v = (double)k->i0[q] - m;
    k->o0[q] = (float)(v * v);
}

/* column j: flag 1: from the batch's column sums i1 (sums of y, then of
 * squares about the mean) and, with mode 2, the running averages o2
 * updated (unbiased variance); flag 0: from the running averages. */
NF_HD void nf__k_bn_stats(const nf_kargs *k, size_t j) {
    size_t d = k->d;
    double *st = k->st;
    if (!k->flag) {
        st[j] = k->o2[j], st[d + j] = 1 / sqrt((double)k->o2[d + j] + k->f0);
        return;
    }
    double n = (double)k->n, m = (double)k->i1[j] / n, ss = k->i1[d + j];
    st[j] = m, st[d + j] = 1 / sqrt(ss / n + k->f0);
    if (k->mode == 2) {
        k->o2[j] += (float)(k->f1 * (m - k->o2[j]));
        k->o2[d + j] += (float)(k->f1 * (ss / (n - 1) - k->o2[d + j]));
    }
}

/* row r: i0 in, o0 out, o1 ldj (or NULL), i1 the parameters (log gamma,
 * beta); inverse: x = (y - m) r e^gamma + beta, forward: y = (x - beta)
 * e^-gamma / r + m. */
NF_HD void nf__k_bn(const nf_kargs *k, size_t r) {
    size_t d = k->d;
    const double *st = k->st;
    const float *gam = k->i1, *bet = k->i1 + d;
    double sl = 0;
    for (size_t j = 0; j < d; j++) {
        double v = k->i0[r * d + j], m = st[j], rr = st[d + j];
        k->o0[r * d + j] = (float)(k->mode ? (v - bet[j]) * exp(-(double)gam[j]) / rr + m
                                           : (v - m) * rr * exp((double)gam[j]) + bet[j]);
        sl += (double)gam[j] + log(rr);
    }
    if (k->o1) k->o1[r] += (float)(k->mode ? -sl : sl);
}

/* element q = r d + j: o0 (row stride 3d) = [du, du u, g], du = g e^gamma,
 * u = (y - m) r; i0 = g, i2 = y, i1 the parameters.  mode 1 (the forward
 * pass, i2 = its input x): [g (x - beta), g, 0]. */
NF_HD void nf__k_bn_terms(const nf_kargs *k, size_t q) {
    size_t d = k->d, r = q / d, j = q % d;
    if (k->mode) {
        k->o0[r * 3 * d + j] = (float)(k->i0[q] * ((double)k->i2[q] - k->i1[d + j]));
        k->o0[r * 3 * d + d + j] = k->i0[q];
        k->o0[r * 3 * d + 2 * d + j] = 0;
        return;
    }
    double u = ((double)k->i2[q] - k->st[j]) * k->st[d + j], du = k->i0[q] * exp((double)k->i1[j]);
    k->o0[r * 3 * d + j] = (float)du;
    k->o0[r * 3 * d + d + j] = (float)(du * u);
    k->o0[r * 3 * d + 2 * d + j] = k->i0[q];
}

/* element q: dy = r (du - s_du / n - u s_duu / n) - G u r / n (flag: batch
 * statistics), else r du; i0 = g, i2 = y, i1 the parameters, i3 = the
 * column sums [s_du, s_duu, s_g] then G. */
NF_HD void nf__k_bn_bwd(const nf_kargs *k, size_t q) {
    size_t d = k->d, j = q % d;
    if (k->mode) { /* the forward pass (running averages): dx = g e^-gamma / r */
        k->o0[q] = (float)(k->i0[q] * exp(-(double)k->i1[j]) / k->st[d + j]);
        return;
    }
    double n = (double)k->n, rr = k->st[d + j], u = ((double)k->i2[q] - k->st[j]) * rr;
    double du = k->i0[q] * exp((double)k->i1[j]), G = k->i3[3 * d];
    k->o0[q] = (float)(k->flag ? rr * (du - k->i3[j] / n - u * k->i3[d + j] / n) - G * u * rr / n : rr * du);
}

/* Element e of a chunk of base points (core/rng.c's normal draws, done
 * here): its global index g = a + e among the draws; the first draw is the
 * generator's spare (dd) when flag; draw g >= flag comes from pair q = (g -
 * flag) / 2 (cos for the even ones, sin for the odd), whose two words are
 * u[2 (q - b)], u[2 (q - b) + 1] (b: the chunk's first pair); o0[e] = loc
 * i1[j] + scale i2[j] z, j = g mod d. */
NF_HD void nf__k_normal_draw(const nf_kargs *k, size_t e) {
    size_t g = k->a + e, j = g % k->d;
    double z;
    if (k->flag && g == 0) {
        z = k->dd;
    } else {
        size_t m = g - (size_t)k->flag, q = m / 2 - k->b;
        double sine, cosine = nf__box_muller(nf__u53(k->u[2 * q]), nf__u53(k->u[2 * q + 1]), &sine);
        z = m % 2 ? sine : cosine;
    }
    k->o0[e] = k->i1[j] + k->i2[j] * (float)z;
}

/* One thread: the step's bookkeeping before Adam (f0 = the clip norm). */
NF_HD void nf__k_step(const nf_kargs *k) {
    double *st = k->st;
    st[ST_STEP] += 1;
    int ok = isfinite(st[ST_SQ]) && isfinite(st[ST_LOSS]);
    if (st[ST_BAD] == 0 && !ok) st[ST_BAD] = st[ST_STEP];
    if (st[ST_BAD] != 0) return;
    st[ST_T] += 1;
    st[ST_ACC] += st[ST_LOSS];
    st[ST_ROWS] += (double)k->n;
}

/* Adam on parameter i (train/adam.c's maths): o0 = p, o1 = g (zeroed), o2 =
 * m, and v in the same buffer as m at offset e; f0..f4 = lr, b1, b2, eps,
 * wd, f5 = the clip norm (0: none). */
NF_HD void nf__k_adam(const nf_kargs *k, size_t i) {
    const double *st = k->st;
    float *p = k->o0, *g = k->o1, *m = k->o2, *v = k->o2 + k->e;
    if (st[ST_BAD] != 0) {
        g[i] = 0;
        return;
    }
    double t = st[ST_T], norm = sqrt(st[ST_SQ]);
    float gscale = k->f5 > 0 && norm > k->f5 ? (float)(k->f5 / norm) : 1.0f;
    double bc1 = 1 - pow((double)k->f1, t), bc2 = 1 - pow((double)k->f2, t);
    float step = (float)(k->f0 / bc1), isb2 = (float)(1 / sqrt(bc2));
    float b1 = k->f1, b2 = k->f2, eps = k->f3, wd = k->f4;
    float gi = g[i] * gscale + wd * p[i];
    m[i] = b1 * m[i] + (1 - b1) * gi;
    v[i] = b2 * v[i] + (1 - b2) * gi * gi;
    p[i] -= step * m[i] / (sqrtf(v[i]) * isb2 + eps);
    g[i] = 0;
}

/* A twin launch's thread i: the element r of copy q, as offsets into o0 and i0. */
NF_HD void nf__k_twin(const nf_kargs *k, size_t i, size_t *o, size_t *in, size_t *r) {
    size_t q = k->tn ? i / k->tn : 0;
    *r = k->tn ? i % k->tn : i;
    *o = q * k->s0 + *r, *in = q * k->s1 + *r;
}

/* Thread i of kernel id. */
NF_HD void nf__kern(int id, size_t i, const nf_kargs *k) {
    size_t o, in, r;
    switch (id) {
    case K_BIAS_ACT: /* the bias of copy q at i0 + q s1 */
        nf__k_twin(k, i, &o, &in, &r);
        k->o0[o] = nf__k_act(k->act, k->o0[o] + k->i0[in - r + r % k->b]);
        break;
    case K_COPY_ACT: nf__k_twin(k, i, &o, &in, &r), k->o0[o] = nf__k_act(k->act, k->i0[in]); break;
    case K_ACT_BWD: nf__k_twin(k, i, &o, &in, &r), k->o0[o] *= nf__k_dact(k->act, k->i0[in]); break;
    case K_ADD: nf__k_twin(k, i, &o, &in, &r), k->o0[o] += k->i0[in]; break;
    case K_MUL: k->o0[i] *= k->i0[i]; break;
    case K_GATHER: k->o0[(i / k->c) * k->a + i % k->c] = k->i0[(i / k->c) * k->d + (size_t)k->x0[i % k->c]]; break;
    case K_COUPLING: nf__k_coupling(k, i); break;
    case K_COUPLING_BWD: nf__k_coupling_bwd(k, i); break;
    case K_SPLINE_COUPLING: nf__k_spline_coupling(k, i); break;
    case K_SPLINE_COUPLING_BWD: nf__k_spline_coupling_bwd(k, i); break;
    case K_SCATTER_ADD: {
        size_t row = i / k->c, q = row * k->d + (size_t)k->x0[i % k->c];
        k->o0[q] = k->i0[q] + k->i1[row * k->a + i % k->c];
        break;
    }
    case K_PERMUTE: {
        size_t row = i / k->d, j = i % k->d, pj = row * k->d + (size_t)k->x0[j];
        if (k->mode) k->o0[i] = k->i0[pj];
        else k->o0[pj] = k->i0[i];
        break;
    }
    case K_MAF_INV: nf__k_maf_inv(k, i); break;
    case K_MAF_INV_BWD: nf__k_maf_inv_bwd(k, i); break;
    case K_MAF_FWD: nf__k_maf_fwd(k, i); break;
    case K_NORMAL: nf__k_normal(k, i); break;
    case K_ACTNORM: nf__k_actnorm(k, i); break;
    case K_ACTNORM_BWD: nf__k_actnorm_bwd(k, i); break;
    case K_MAF_FB_PREP: nf__k_maf_fb_prep(k, i); break;
    case K_MAF_GP: nf__k_maf_gp(k, i); break;
    case K_MAF_W: /* w = (g - r - glx) / T': o0 = w, i0 = g, i1 = r (row stride a), i2 = glx, i3 = 1/T' */
        k->o0[i] = (float)(((double)k->i0[i] - k->i1[(i / k->d) * k->a + i % k->d] - k->i2[i]) * k->i3[i]);
        break;
    case K_PUT_COLS: k->o0[(i / k->e) * k->a + k->c + i % k->e] = k->i0[i]; break;
    case K_ADD_COLS: k->o0[i] += k->i0[(i / k->e) * k->a + i % k->e]; break;
    case K_LU: nf__k_lu(k, i); break;
    case K_LU_BWD: nf__k_lu_bwd(k, i); break;
    case K_LU_PACK: nf__k_lu_pack(k, i); break;
    case K_BN_SQ: nf__k_bn_sq(k, i); break;
    case K_BN_STATS: nf__k_bn_stats(k, i); break;
    case K_BN: nf__k_bn(k, i); break;
    case K_BN_TERMS: nf__k_bn_terms(k, i); break;
    case K_BN_BWD: nf__k_bn_bwd(k, i); break;
    case K_NORMAL_DRAW: nf__k_normal_draw(k, i); break;
    case K_BN_PGRAD: /* o0 = dparams, i3 the sums: dgamma += s_duu + G, dbeta += s_g; mode 1 (the forward
                        pass, K = e^-gamma / r): dgamma -= s_gx K + G, dbeta -= s_g K (i1 the parameters) */
        if (k->mode) {
            double K = exp(-(double)k->i1[i]) / k->st[k->d + i];
            k->o0[i] += (float)(-(double)k->i3[i] * K - k->i3[3 * k->d]), k->o0[k->d + i] += (float)(-(double)k->i3[k->d + i] * K);
        } else {
            k->o0[i] += k->i3[k->d + i] + k->i3[3 * k->d], k->o0[k->d + i] += k->i3[2 * k->d + i];
        }
        break;
    case K_STEP: nf__k_step(k); break;
    case K_ADAM: nf__k_adam(k, i); break;
    default: break;
    }
}

#endif
