/*
 * test_conformance.c - the table-driven conformance suite (design.md 5.1).
 * For every bijector in the table, on random inputs in its domain:
 *   1. inverse(forward(x)) == x and ildj(forward(x)) == -fldj(x);
 *   2. fldj and ildj equal log|det J| of a finite-difference Jacobian;
 *   3. every gradient (inputs and parameters, both directions) equals
 *      central finite differences of L = sum(g * out) + sum(gl * ldj);
 *   4. a batch gives the same rows as one row at a time;
 *   5. non-finite and out-of-domain inputs are reported, naming the bijector.
 * Finite differences use the 4-point stencil with h = 2^-8, so x +- h is
 * exact in float and the error is dominated by float rounding (~1e-5).
 * Piecewise-smooth bijectors (splines, whose knots move with the inputs and
 * parameters) use h = 2^-12 for the Jacobian, and a gradient that misses the
 * central difference may match a one-sided one instead (a knot inside the
 * stencil lies on one side of the point); such fallbacks are counted and
 * must stay rare, so they cannot hide a wrong gradient.
 */
#include "test.h"

#include <stdlib.h>

#define NROW 5
#define H (1.0 / 256)
#define TOL 2e-3

typedef nf_status (*maker)(size_t d, nf_rng *rng, nf_bijector **out);

typedef struct bcase {
    const char *label;
    maker make;
    size_t d;
    float lo, hi; /* forward inputs drawn uniformly in [lo, hi] ... */
    float gap;    /* ... with |x| >= gap (kinks at 0) */
    float bad;    /* an out-of-domain value (NAN: none) */
    int bad_fwd;  /* 1: `bad` is a forward input, 0: an inverse input */
    int piecewise; /* 1: smooth only between knots (splines), see fd_check */
    size_t dc;     /* conditional bijectors: context values per row (random, fixed) */
} bcase;

/* The current case's context rows (NULL for unconditional cases). */
static const float *case_ctx;
static size_t case_dc;
static const float *crow(size_t i) { return case_ctx ? case_ctx + i * case_dc : NULL; }

static float runif(nf_rng *r, float lo, float hi) { return lo + (hi - lo) * nf_rng_uniform(r); }

/* ---- makers -------------------------------------------------------------- */

static nf_status mk_identity(size_t d, nf_rng *r, nf_bijector **o) { (void)r; return nf_bijector_identity(d, o); }
static nf_status mk_shift_vec(size_t d, nf_rng *r, nf_bijector **o) {
    float s[8];
    for (size_t j = 0; j < d; j++) s[j] = nf_rng_normal(r);
    return nf_bijector_shift(d, s, d, o);
}
static nf_status mk_shift_one(size_t d, nf_rng *r, nf_bijector **o) {
    (void)r;
    float s = 0.7f;
    return nf_bijector_shift(d, &s, 1, o);
}
static nf_status mk_scale_vec(size_t d, nf_rng *r, nf_bijector **o) {
    float s[8];
    for (size_t j = 0; j < d; j++) s[j] = (j % 2 ? -1 : 1) * runif(r, 0.5f, 2.0f);
    return nf_bijector_scale(d, s, d, o);
}
static nf_status mk_affine_scalar(size_t d, nf_rng *r, nf_bijector **o) {
    (void)r;
    return nf_bijector_affine_scalar(d, 0.3f, -1.7f, o);
}
static nf_status affine_r(size_t d, size_t rank, nf_rng *r, nf_bijector **o) {
    float sh[8], L[64], V[64];
    for (size_t i = 0; i < d; i++) {
        sh[i] = nf_rng_normal(r);
        for (size_t j = 0; j < d; j++)
            L[i * d + j] = i == j ? (i % 2 ? -1 : 1) * runif(r, 0.6f, 1.5f) : 0.3f * nf_rng_normal(r);
        for (size_t k = 0; k < rank; k++) V[i * rank + k] = 0.5f * nf_rng_normal(r);
    }
    return nf_bijector_affine(d, rank, sh, L, V, o);
}
static nf_status mk_affine(size_t d, nf_rng *r, nf_bijector **o) { return affine_r(d, 2, r, o); }
static nf_status mk_affine_r0(size_t d, nf_rng *r, nf_bijector **o) { return affine_r(d, 0, r, o); }
static nf_status mk_exp(size_t d, nf_rng *r, nf_bijector **o) { (void)r; return nf_bijector_exp(d, o); }
static nf_status mk_log(size_t d, nf_rng *r, nf_bijector **o) { (void)r; return nf_bijector_log(d, o); }
static nf_status mk_sigmoid(size_t d, nf_rng *r, nf_bijector **o) { (void)r; return nf_bijector_sigmoid(d, o); }
static nf_status mk_tanh(size_t d, nf_rng *r, nf_bijector **o) { (void)r; return nf_bijector_tanh(d, o); }
static nf_status mk_softplus(size_t d, nf_rng *r, nf_bijector **o) { (void)r; return nf_bijector_softplus(d, o); }
static nf_status mk_softsign(size_t d, nf_rng *r, nf_bijector **o) { (void)r; return nf_bijector_softsign(d, o); }
static nf_status mk_expm1(size_t d, nf_rng *r, nf_bijector **o) { (void)r; return nf_bijector_expm1(d, o); }
static nf_status mk_sinh_arcsinh(size_t d, nf_rng *r, nf_bijector **o) {
    return nf_bijector_sinh_arcsinh(d, 0.5f * nf_rng_normal(r), 0.7f + 0.5f * nf_rng_uniform(r), o);
}
static nf_status mk_ncdf(size_t d, nf_rng *r, nf_bijector **o) { (void)r; return nf_bijector_normal_cdf(d, o); }
static nf_status mk_leaky(size_t d, nf_rng *r, nf_bijector **o) { (void)r; return nf_bijector_leaky_relu(d, 0.3f, o); }
static nf_status mk_permute(size_t d, nf_rng *r, nf_bijector **o) {
    (void)r;
    size_t p[8];
    for (size_t j = 0; j < d; j++) p[j] = (j + 2) % d;
    return nf_bijector_permute(d, p, o);
}
static nf_status mk_reverse(size_t d, nf_rng *r, nf_bijector **o) { (void)r; return nf_bijector_reverse(d, o); }

/* invert(mk(...)); the inner bijector is made first (a function's
 * arguments are evaluated in no fixed order, so not as an argument) */
static nf_status mk_invert(nf_status (*mk)(size_t, nf_rng *, nf_bijector **), size_t d, nf_rng *r, nf_bijector **o) {
    nf_bijector *in = NULL;
    nf_status s = mk(d, r, &in);
    if (s) return s;
    s = nf_bijector_invert(in, o);
    if (s) nf_bijector_free(in);
    return s;
}
static nf_status mk_inv_sigmoid(size_t d, nf_rng *r, nf_bijector **o) { return mk_invert(mk_sigmoid, d, r, o); }
static nf_status mk_inv_affine(size_t d, nf_rng *r, nf_bijector **o) { return mk_invert(mk_affine, d, r, o); }

static nf_status chain_of(nf_bijector **bs, size_t k, nf_bijector **o) {
    for (size_t i = 0; i < k; i++)
        if (!bs[i]) {
            for (size_t j = 0; j < k; j++) nf_bijector_free(bs[j]);
            return NF_ERR_ARG;
        }
    nf_status s = nf_bijector_chain(bs, k, o);
    if (s)
        for (size_t j = 0; j < k; j++) nf_bijector_free(bs[j]);
    return s;
}
/* chain([affine, softplus, scale, leaky_relu]): leaky_relu is applied first. */
static nf_status mk_chain(size_t d, nf_rng *r, nf_bijector **o) {
    nf_bijector *bs[4] = {0};
    mk_affine(d, r, &bs[0]);
    mk_softplus(d, r, &bs[1]);
    mk_scale_vec(d, r, &bs[2]);
    nf_bijector_leaky_relu(d, 0.5f, &bs[3]);
    return chain_of(bs, 4, o);
}
/* chain([reverse, chain([affine, permute]), invert(affine_scalar)]) */
static nf_status mk_nested(size_t d, nf_rng *r, nf_bijector **o) {
    nf_bijector *in[2] = {0}, *bs[3] = {0};
    mk_affine(d, r, &in[0]);
    mk_permute(d, r, &in[1]);
    mk_reverse(d, r, &bs[0]);
    chain_of(in, 2, &bs[1]);
    mk_invert(mk_affine_scalar, d, r, &bs[2]);
    return chain_of(bs, 3, o);
}

/* The seed's leaky ReLU as an inline bijector, alpha = 0.5, with gradients. */
#define INL_A 0.5f
static int inl_fwd(void *u, const float *x, float *y, size_t n, size_t d) {
    (void)u;
    for (size_t i = 0; i < n * d; i++) y[i] = x[i] >= 0 ? x[i] : INL_A * x[i];
    return 0;
}
static int inl_inv(void *u, const float *y, float *x, size_t n, size_t d) {
    (void)u;
    for (size_t i = 0; i < n * d; i++) x[i] = y[i] >= 0 ? y[i] : y[i] / INL_A;
    return 0;
}
static int inl_fldj(void *u, const float *x, float *l, size_t n, size_t d) {
    (void)u;
    for (size_t i = 0; i < n; i++) {
        l[i] = 0;
        for (size_t j = 0; j < d; j++) l[i] += x[i * d + j] < 0 ? logf(INL_A) : 0;
    }
    return 0;
}
static int inl_fb(void *u, const float *x, const float *dy, const float *dl, float *dx, size_t n, size_t d) {
    (void)u, (void)dl;
    for (size_t i = 0; i < n * d; i++) dx[i] = x[i] >= 0 ? dy[i] : INL_A * dy[i];
    return 0;
}
static int inl_ib(void *u, const float *y, const float *dx, const float *dl, float *dy, size_t n, size_t d) {
    (void)u, (void)dl;
    for (size_t i = 0; i < n * d; i++) dy[i] = y[i] >= 0 ? dx[i] : dx[i] / INL_A;
    return 0;
}
static nf_status mk_inline(size_t d, nf_rng *r, nf_bijector **o) {
    (void)r;
    nf_inline_fns f = {.forward = inl_fwd, .inverse = inl_inv, .forward_log_det = inl_fldj,
                       .forward_backward = inl_fb, .inverse_backward = inl_ib, .monotone = 1};
    return nf_bijector_inline(d, "my_leaky_relu", &f, NULL, o);
}

/* Trainable flows: small nets with smooth activations, so finite
 * differences do not straddle a ReLU kink. */
static nf_net_opts small_net(nf_activation a) {
    nf_net_opts o = {.hidden = {8, 8}, .nhidden = 2, .activation = a};
    return o;
}
static nf_status mk_realnvp_sep(size_t d, nf_rng *r, nf_bijector **o) {
    unsigned char mask[8] = {0, 1, 0, 1, 0, 1, 0, 1};
    nf_coupling_opts c = {.net = small_net(NF_ACT_TANH), .mask = mask, .separate_nets = 1, .tanh_scale = 1};
    return nf_bijector_coupling(d, &c, r, o);
}
static nf_status mk_realnvp_joint(size_t d, nf_rng *r, nf_bijector **o) {
    nf_coupling_opts c = {.net = small_net(NF_ACT_ELU), .num_masked = 1};
    return nf_bijector_coupling(d, &c, r, o);
}
/* TFP's RealNVP with a negative num_masked: the last coordinate conditions */
static nf_status mk_coupling_reversed(size_t d, nf_rng *r, nf_bijector **o) {
    return nf_bijector_from_spec("coupling(num_masked=-1, hidden=[6], activation=tanh, zero_last=0)", d, r, o);
}
static nf_status mk_nice(size_t d, nf_rng *r, nf_bijector **o) {
    nf_coupling_opts c = {.net = small_net(NF_ACT_SIGMOID), .num_masked = 2, .shift_only = 1};
    return nf_bijector_coupling(d, &c, r, o);
}
static nf_status mk_realnvp_stack(size_t d, nf_rng *r, nf_bijector **o) {
    nf_coupling_opts c = {.net = small_net(NF_ACT_TANH), .separate_nets = 1, .tanh_scale = 1};
    return nf_bijector_realnvp(d, 4, &c, r, o);
}
static nf_status mk_maf(size_t d, nf_rng *r, nf_bijector **o) {
    nf_maf_opts m = {.net = small_net(NF_ACT_TANH), .order = NF_ORDER_NATURAL};
    return nf_bijector_maf(d, &m, r, o);
}
static nf_status mk_maf_random(size_t d, nf_rng *r, nf_bijector **o) {
    nf_maf_opts m = {.net = small_net(NF_ACT_ELU), .order = NF_ORDER_RANDOM};
    m.net.hidden[0] = 12, m.net.nhidden = 1;
    return nf_bijector_maf(d, &m, r, o);
}
/* the bounded scales of an affine MAF (soft clamp, nflows' sigmoid and softplus), and an IAF with one */
static nf_status mk_maf_tanh(size_t d, nf_rng *r, nf_bijector **o) {
    nf_maf_opts m = {.net = small_net(NF_ACT_TANH), .order = NF_ORDER_NATURAL, .scale = NF_SCALE_TANH};
    return nf_bijector_maf(d, &m, r, o);
}
static nf_status mk_maf_sigmoid(size_t d, nf_rng *r, nf_bijector **o) {
    nf_maf_opts m = {.net = small_net(NF_ACT_TANH), .order = NF_ORDER_RANDOM, .scale = NF_SCALE_SIGMOID};
    return nf_bijector_maf(d, &m, r, o);
}
static nf_status mk_maf_softplus(size_t d, nf_rng *r, nf_bijector **o) {
    nf_maf_opts m = {.net = small_net(NF_ACT_TANH), .order = NF_ORDER_REVERSED, .scale = NF_SCALE_SOFTPLUS};
    return nf_bijector_maf(d, &m, r, o);
}
/* nflows' residual networks (nf_net_opts.residual), every weight redrawn at a scale where the
 * blocks matter (their last layers start near zero) */
static nf_status redraw(nf_status s, nf_rng *r, nf_bijector *b) {
    if (!s) {
        float *p = nf_bijector_params(b);
        for (size_t k = 0; k < nf_bijector_param_count(b); k++) p[k] = 0.4f * nf_rng_normal(r);
    }
    return s;
}
static nf_status mk_maf_residual(size_t d, nf_rng *r, nf_bijector **o) {
    nf_maf_opts m = {.net = small_net(NF_ACT_TANH), .order = NF_ORDER_RANDOM, .scale = NF_SCALE_TANH};
    m.net.residual = 1;
    return redraw(nf_bijector_maf(d, &m, r, o), r, *o);
}
static nf_status mk_coupling_residual(size_t d, nf_rng *r, nf_bijector **o) {
    nf_coupling_opts c = {.net = small_net(NF_ACT_TANH), .num_masked = 1}; /* smooth: ELU's kink upsets clang's differences */
    c.net.residual = 1, c.net.nhidden = 1;
    return redraw(nf_bijector_coupling(d, &c, r, o), r, *o);
}
/* couplings with convnets on a 2 x 2 x 2 image: a checkerboard mask (affine, separate nets
 * and one joint net) and a channel mask (spline) */
static nf_status mk_conv_coupling(size_t d, nf_rng *r, nf_bijector **o) {
    unsigned char mask[8];
    for (size_t j = 0; j < 8; j++) mask[j] = (unsigned char)((j / 4 + (j / 2) % 2 + j % 2) % 2); /* (c + y + x) odd */
    nf_coupling_opts c = {.net = small_net(NF_ACT_TANH), .mask = mask, .tanh_scale = 1, .image = {2, 2, 2}};
    c.net.hidden[0] = 3, c.net.nhidden = 1;
    return redraw(nf_bijector_coupling(d, &c, r, o), r, *o);
}
static nf_status mk_conv_separate(size_t d, nf_rng *r, nf_bijector **o) {
    unsigned char mask[8];
    for (size_t j = 0; j < 8; j++) mask[j] = (unsigned char)((j / 4 + (j / 2) % 2 + j % 2) % 2 == 0);
    nf_coupling_opts c = {.net = small_net(NF_ACT_SIGMOID), .mask = mask, .separate_nets = 1, .image = {2, 2, 2}};
    c.net.hidden[0] = 2, c.net.hidden[1] = 3;
    return redraw(nf_bijector_coupling(d, &c, r, o), r, *o);
}
static nf_status mk_conv_spline(size_t d, nf_rng *r, nf_bijector **o) {
    unsigned char mask[8] = {1, 1, 1, 1, 0, 0, 0, 0}; /* channel 0 conditions channel 1 */
    nf_coupling_opts c = {.net = small_net(NF_ACT_TANH), .mask = mask, .spline_bins = 4, .spline_bound = 1.5f,
                          .image = {2, 2, 2}};
    c.net.hidden[0] = 3, c.net.nhidden = 1;
    return nf_bijector_coupling(d, &c, r, o); /* the default draw, as the other spline rows */
}
static nf_status mk_iaf_sigmoid(size_t d, nf_rng *r, nf_bijector **o) {
    nf_maf_opts m = {.net = small_net(NF_ACT_TANH), .order = NF_ORDER_REVERSED, .scale = NF_SCALE_SIGMOID};
    return nf_bijector_iaf(d, &m, r, o);
}
static nf_status mk_iaf(size_t d, nf_rng *r, nf_bijector **o) {
    nf_maf_opts m = {.net = small_net(NF_ACT_TANH), .order = NF_ORDER_REVERSED};
    return nf_bijector_iaf(d, &m, r, o);
}
/* seed 002: chain([maf, permute, maf]) */
static nf_status mk_maf_chain(size_t d, nf_rng *r, nf_bijector **o) {
    nf_bijector *bs[3] = {0};
    mk_maf(d, r, &bs[0]);
    mk_reverse(d, r, &bs[1]);
    mk_maf(d, r, &bs[2]);
    return chain_of(bs, 3, o);
}

/* LU linear with a shuffled permutation and random factors */
static nf_status mk_lu(size_t d, nf_rng *r, nf_bijector **o) {
    size_t perm[8];
    for (size_t j = 0; j < d; j++) perm[j] = (j * 3 + 1) % d;
    nf_status s = nf_bijector_lu_linear(d, d % 3 ? perm : NULL, o);
    if (s) return s;
    float *P = nf_bijector_params(*o);
    for (size_t k = 0; k < nf_bijector_param_count(*o); k++) P[k] = 0.4f * nf_rng_normal(r);
    return NF_OK;
}

static nf_status mk_actnorm(size_t d, nf_rng *r, nf_bijector **o) {
    nf_status s = nf_bijector_actnorm(d, o);
    if (s) return s;
    float *P = nf_bijector_params(*o);
    for (size_t k = 0; k < 2 * d; k++) P[k] = 0.5f * nf_rng_normal(r);
    return NF_OK;
}

/* images (2 x 2 x 2 when d = 8, 1 x 2 x 2 when d = 4): Glow's per-channel ActNorm and
 * invertible 1x1 convolution as pixelwise parts, squeeze, and blockwise parts */
static const size_t *img_shape(size_t d) {
    static const size_t s8[3] = {2, 2, 2}, s4[3] = {1, 2, 2};
    return d == 8 ? s8 : s4;
}
static nf_status mk_pixel_lu(size_t d, nf_rng *r, nf_bijector **o) {
    nf_bijector *in = NULL;
    nf_status s = mk_lu(img_shape(d)[0], r, &in);
    if (!s) s = nf_bijector_pixelwise(in, img_shape(d), o);
    if (s) nf_bijector_free(in);
    return s;
}
static nf_status mk_pixel_actnorm(size_t d, nf_rng *r, nf_bijector **o) {
    nf_bijector *in = NULL;
    nf_status s = mk_actnorm(img_shape(d)[0], r, &in);
    if (!s) s = nf_bijector_pixelwise(in, img_shape(d), o);
    if (s) nf_bijector_free(in);
    return s;
}
/* TFP's fixed-argument forms: Sigmoid(low, high), Softplus(hinge_softness, low), PowerTransform */
static nf_status mk_sigmoid_range(size_t d, nf_rng *r, nf_bijector **o) {
    (void)r;
    return nf_bijector_sigmoid_range(d, -1, 2, o);
}
static nf_status mk_softplus_hinge(size_t d, nf_rng *r, nf_bijector **o) {
    (void)r;
    return nf_bijector_softplus_hinge(d, 0.5f, 1, o);
}
static nf_status mk_power(size_t d, nf_rng *r, nf_bijector **o) {
    (void)r;
    return nf_bijector_power_transform(d, 0.5f, o);
}
static nf_status mk_power0(size_t d, nf_rng *r, nf_bijector **o) {
    (void)r;
    return nf_bijector_power_transform(d, 0, o);
}
static nf_status mk_scale_log(size_t d, nf_rng *r, nf_bijector **o) {
    float a[8];
    for (size_t j = 0; j < d; j++) a[j] = 0.5f * nf_rng_normal(r);
    return nf_bijector_scale_log(d, a, d, o);
}
static nf_status mk_rq_spline(size_t d, nf_rng *r, nf_bijector **o) {
    (void)r; /* 3 bins on [-1.5, 1.5]; inputs reach the identity tails */
    float w[3] = {0.9f, 1.2f, 0.9f}, h[3] = {1.1f, 0.9f, 1.0f}, s[2] = {0.8f, 1.3f}; /* gentle: differences stay accurate */
    return nf_bijector_rq_spline(d, 3, w, h, s, -1.5f, o);
}
static nf_status mk_soft_clip(size_t d, nf_rng *r, nf_bijector **o) {
    (void)r;
    return nf_bijector_soft_clip(d, -1, 1.5f, 0.5f, o);
}
static nf_status mk_householder(size_t d, nf_rng *r, nf_bijector **o) { return nf_bijector_householder(d, r, o); }
static nf_status mk_ascending(size_t d, nf_rng *r, nf_bijector **o) {
    (void)r;
    return nf_bijector_ascending(d, o);
}
static nf_status mk_logit_pre(size_t d, nf_rng *r, nf_bijector **o) {
    (void)r;
    return nf_bijector_logit_pre(d, 17, 0.05, o);
}
static nf_status mk_squeeze(size_t d, nf_rng *r, nf_bijector **o) {
    (void)r;
    return nf_bijector_squeeze(img_shape(d), o);
}
static nf_status mk_blockwise(size_t d, nf_rng *r, nf_bijector **o) {
    nf_bijector *bs[3] = {0};
    nf_status s = mk_lu(2, r, &bs[0]);
    if (!s) s = mk_sigmoid(1, r, &bs[1]);
    if (!s) s = mk_maf(d - 3, r, &bs[2]);
    if (!s) s = nf_bijector_blockwise(bs, 3, o);
    if (s)
        for (int i = 0; i < 3; i++) nf_bijector_free(bs[i]);
    return s;
}
static nf_status mk_factor_out(size_t d, nf_rng *r, nf_bijector **o) { /* multi-scale: the last half to the base */
    nf_bijector *bs[2] = {0};
    nf_status s = mk_realnvp_sep(d / 2, r, &bs[0]);
    if (!s) s = nf_bijector_identity(d - d / 2, &bs[1]);
    if (!s) s = nf_bijector_blockwise(bs, 2, o);
    if (s) nf_bijector_free(bs[0]), nf_bijector_free(bs[1]);
    return s;
}

/* Batch norm in evaluation mode (running averages), random gamma and beta */
static nf_status mk_batchnorm(size_t d, nf_rng *r, nf_bijector **o) {
    nf_status s = nf_bijector_batchnorm(d, o);
    if (s) return s;
    float *P = nf_bijector_params(*o), *m, *v;
    for (size_t k = 0; k < 2 * d; k++) P[k] = 0.5f * nf_rng_normal(r);
    nf_bijector_batchnorm_running(*o, &m, &v);
    for (size_t j = 0; j < d; j++) m[j] = nf_rng_normal(r), v[j] = 0.5f + nf_rng_uniform(r);
    return NF_OK;
}

/* Planar and radial flows, pushed away from the identity */
static nf_status mk_planar(size_t d, nf_rng *r, nf_bijector **o) {
    nf_status s = nf_bijector_planar(d, r, o);
    if (s) return s;
    float *P = nf_bijector_params(*o);
    for (size_t k = 0; k < 2 * d + 1; k++) P[k] = 0.8f * nf_rng_normal(r);
    return NF_OK;
}
static nf_status mk_radial(size_t d, nf_rng *r, nf_bijector **o) {
    nf_status s = nf_bijector_radial(d, r, o);
    if (s) return s;
    float *P = nf_bijector_params(*o);
    for (size_t k = 0; k < d; k++) P[k] = 0.5f * nf_rng_normal(r);
    P[d] = 0.3f, P[d + 1] = 1.2f;
    return NF_OK;
}
static nf_status mk_radial_contract(size_t d, nf_rng *r, nf_bijector **o) {
    nf_status s = mk_radial(d, r, o);
    if (!s) nf_bijector_params(*o)[d + 1] = -1.5f; /* beta < 0: contracts towards z0 */
    return s;
}

/* Conditional layers (context of 2 values) */
static nf_status mk_cond_coupling(size_t d, nf_rng *r, nf_bijector **o) {
    nf_coupling_opts c = {.net = small_net(NF_ACT_TANH), .num_masked = 1, .tanh_scale = 1, .context_dim = 2};
    return nf_bijector_coupling(d, &c, r, o);
}
static nf_status mk_cond_spline(size_t d, nf_rng *r, nf_bijector **o) {
    nf_coupling_opts c = {.net = small_net(NF_ACT_TANH), .num_masked = 2, .spline_bins = 4, .spline_bound = 1.5f,
                          .context_dim = 2};
    return nf_bijector_coupling(d, &c, r, o);
}
static nf_status mk_cond_maf_chain(size_t d, nf_rng *r, nf_bijector **o) {
    nf_maf_opts m = {.net = small_net(NF_ACT_TANH), .context_dim = 2};
    nf_maf_opts s = {.net = small_net(NF_ACT_ELU), .spline_bins = 3, .spline_bound = 1.5f, .context_dim = 2};
    nf_bijector *bs[3] = {0};
    nf_bijector_maf(d, &m, r, &bs[0]);
    mk_reverse(d, r, &bs[1]);
    nf_bijector_iaf(d, &s, r, &bs[2]);
    return chain_of(bs, 3, o);
}

/* Spline flows (K bins on [-B, B]; inputs reach past B into the tails). */
static nf_status mk_spline_coupling(size_t d, nf_rng *r, nf_bijector **o) {
    nf_coupling_opts c = {.net = small_net(NF_ACT_TANH), .num_masked = 1, .spline_bins = 5, .spline_bound = 1.5f};
    return nf_bijector_coupling(d, &c, r, o);
}
static nf_status mk_spline_maf(size_t d, nf_rng *r, nf_bijector **o) {
    nf_maf_opts m = {.net = small_net(NF_ACT_TANH), .order = NF_ORDER_NATURAL, .spline_bins = 4, .spline_bound = 1.5f};
    return nf_bijector_maf(d, &m, r, o);
}
static nf_status mk_spline_iaf(size_t d, nf_rng *r, nf_bijector **o) {
    nf_maf_opts m = {.net = small_net(NF_ACT_ELU), .order = NF_ORDER_REVERSED, .spline_bins = 3, .spline_bound = 1.5f};
    return nf_bijector_iaf(d, &m, r, o);
}

static const bcase cases[] = {
    {"identity", mk_identity, 3, -2, 2, 0, NAN, 0, 0, 0},
    {"shift", mk_shift_vec, 3, -2, 2, 0, NAN, 0, 0, 0},
    {"shift", mk_shift_one, 2, -2, 2, 0, NAN, 0, 0, 0},
    {"scale", mk_scale_vec, 3, -2, 2, 0, NAN, 0, 0, 0},
    {"affine_scalar", mk_affine_scalar, 2, -2, 2, 0, NAN, 0, 0, 0},
    {"affine", mk_affine, 3, -2, 2, 0, NAN, 0, 0, 0},
    {"affine", mk_affine, 1, -2, 2, 0, NAN, 0, 0, 0},
    {"affine", mk_affine_r0, 4, -2, 2, 0, NAN, 0, 0, 0},
    {"exp", mk_exp, 3, -2, 2, 0, -1.0f, 0, 0, 0},
    {"log", mk_log, 3, 0.3f, 3, 0, -0.5f, 1, 0, 0},
    {"sigmoid", mk_sigmoid, 3, -2, 2, 0, 1.0f, 0, 0, 0},
    {"tanh", mk_tanh, 3, -1.2f, 1.2f, 0, -1.0f, 0, 0, 0},
    {"softplus", mk_softplus, 3, -2, 2, 0, 0.0f, 0, 0, 0},
    {"softsign", mk_softsign, 3, -2, 2, 0.05f, 1.0f, 0, 0, 0},
    {"expm1", mk_expm1, 3, -2, 2, 0, -1.0f, 0, 0, 0},
    {"sinh_arcsinh", mk_sinh_arcsinh, 3, -2, 2, 0, NAN, 0, 0, 0},
    {"normal_cdf", mk_ncdf, 3, -1.5f, 1.5f, 0, 1.0f, 0, 0, 0},
    {"leaky_relu", mk_leaky, 3, -2, 2, 0.2f, NAN, 0, 0, 0},
    {"permute", mk_permute, 3, -2, 2, 0, NAN, 0, 0, 0},
    {"reverse", mk_reverse, 4, -2, 2, 0, NAN, 0, 0, 0},
    {"invert", mk_inv_sigmoid, 3, 0.1f, 0.9f, 0, 0.0f, 1, 0, 0},
    {"invert", mk_inv_affine, 3, -2, 2, 0, NAN, 0, 0, 0},
    {"chain", mk_chain, 3, -2, 2, 0.2f, NAN, 0, 0, 0},
    {"chain", mk_nested, 3, -2, 2, 0, NAN, 0, 0, 0},
    {"my_leaky_relu", mk_inline, 2, -2, 2, 0.2f, NAN, 0, 0, 0},
    {"realnvp", mk_realnvp_sep, 3, -2, 2, 0, NAN, 0, 0, 0},
    {"realnvp", mk_realnvp_joint, 3, -2, 2, 0, NAN, 0, 0, 0},
    {"realnvp", mk_coupling_reversed, 3, -2, 2, 0, NAN, 0, 0, 0},
    {"nice", mk_nice, 4, -2, 2, 0, NAN, 0, 0, 0},
    {"chain", mk_realnvp_stack, 2, -2, 2, 0, NAN, 0, 0, 0},
    {"maf", mk_maf, 3, -2, 2, 0, NAN, 0, 0, 0},
    {"maf", mk_maf_random, 4, -2, 2, 0, NAN, 0, 0, 0},
    {"maf", mk_maf, 1, -2, 2, 0, NAN, 0, 0, 0},
    {"iaf", mk_iaf, 3, -2, 2, 0, NAN, 0, 0, 0},
    {"maf", mk_maf_tanh, 3, -2, 2, 0, NAN, 0, 0, 0},
    {"maf", mk_maf_sigmoid, 4, -2, 2, 0, NAN, 0, 0, 0},
    {"iaf", mk_iaf_sigmoid, 3, -2, 2, 0, NAN, 0, 0, 0},
    {"maf", mk_maf_softplus, 4, -2, 2, 0, NAN, 0, 0, 0},
    {"maf", mk_maf_residual, 4, -2, 2, 0, NAN, 0, 0, 0},
    {"maf", mk_maf_residual, 1, -2, 2, 0, NAN, 0, 0, 0},
    {"realnvp", mk_coupling_residual, 3, -2, 2, 0, NAN, 0, 0, 0},
    {"pixelwise", mk_pixel_lu, 8, -2, 2, 0, NAN, 0, 0, 0},
    {"pixelwise", mk_pixel_lu, 4, -2, 2, 0, NAN, 0, 0, 0},
    {"pixelwise", mk_pixel_actnorm, 8, -2, 2, 0, NAN, 0, 0, 0},
    {"squeeze", mk_squeeze, 8, -2, 2, 0, NAN, 0, 0, 0},
    {"logit_pre", mk_logit_pre, 3, -3, 3, 0, 17.5f, 0, 0, 0},
    {"sigmoid", mk_sigmoid_range, 3, -2, 2, 0, 2.5f, 0, 0, 0},
    {"softplus", mk_softplus_hinge, 3, -2, 2, 0, 0.5f, 0, 0, 0},
    {"power_transform", mk_power, 3, -1.5f, 2, 0, -3.0f, 1, 0, 0},
    {"power_transform", mk_power0, 2, -2, 2, 0, -1.0f, 0, 0, 0},
    {"scale", mk_scale_log, 3, -2, 2, 0, NAN, 0, 0, 0},
    {"soft_clip", mk_soft_clip, 3, -2, 2, 0, 1.5f, 0, 0, 0},
    {"householder", mk_householder, 4, -2, 2, 0, NAN, 0, 0, 0},
    {"householder", mk_householder, 1, -2, 2, 0, NAN, 0, 0, 0},
    {"ascending", mk_ascending, 4, -2, 2, 0, NAN, 0, 0, 0},
    {"rational_quadratic_spline", mk_rq_spline, 6, -2, 2, 0, NAN, 0, 1, 0},
    {"blockwise", mk_blockwise, 5, -2, 2, 0, NAN, 0, 0, 0},
    {"blockwise", mk_factor_out, 6, -2, 2, 0, NAN, 0, 0, 0},
    {"realnvp", mk_conv_coupling, 8, -2, 2, 0, NAN, 0, 0, 0},
    {"realnvp", mk_conv_separate, 8, -2, 2, 0, NAN, 0, 0, 0},
    {"spline_coupling", mk_conv_spline, 8, -2, 2, 0, NAN, 0, 1, 0},
    {"chain", mk_maf_chain, 2, -2, 2, 0, NAN, 0, 0, 0},
    {"actnorm", mk_actnorm, 3, -2, 2, 0, NAN, 0, 0, 0},
    {"batchnorm", mk_batchnorm, 3, -2, 2, 0, NAN, 0, 0, 0},
    {"planar", mk_planar, 2, -2, 2, 0, NAN, 0, 0, 0},
    {"planar", mk_planar, 4, -2, 2, 0, NAN, 0, 0, 0},
    {"radial", mk_radial, 2, -2, 2, 0, NAN, 0, 0, 0},
    {"radial", mk_radial_contract, 3, -2, 2, 0, NAN, 0, 0, 0},
    {"lu_linear", mk_lu, 4, -2, 2, 0, NAN, 0, 0, 0},
    {"lu_linear", mk_lu, 3, -2, 2, 0, NAN, 0, 0, 0},
    {"lu_linear", mk_lu, 1, -2, 2, 0, NAN, 0, 0, 0},
    {"realnvp", mk_cond_coupling, 3, -2, 2, 0, NAN, 0, 0, 2},
    {"spline_coupling", mk_cond_spline, 3, -2, 2, 0, NAN, 0, 1, 2},
    {"chain", mk_cond_maf_chain, 3, -2, 2, 0, NAN, 0, 1, 2},
    {"spline_coupling", mk_spline_coupling, 3, -2, 2, 0, NAN, 0, 1, 0},
    {"maf", mk_spline_maf, 3, -2, 2, 0, NAN, 0, 1, 0},
    {"iaf", mk_spline_iaf, 3, -2, 2, 0, NAN, 0, 1, 0},
};

/* ---- helpers ------------------------------------------------------------- */

static double det_log_abs(double *a, size_t n) {
    double lad = 0;
    for (size_t k = 0; k < n; k++) {
        size_t p = k;
        for (size_t i = k + 1; i < n; i++)
            if (fabs(a[i * n + k]) > fabs(a[p * n + k])) p = i;
        for (size_t j = 0; j < n; j++) {
            double t = a[k * n + j];
            a[k * n + j] = a[p * n + j], a[p * n + j] = t;
        }
        if (a[k * n + k] == 0) return -INFINITY;
        lad += log(fabs(a[k * n + k]));
        for (size_t i = k + 1; i < n; i++) {
            double f = a[i * n + k] / a[k * n + k];
            for (size_t j = k; j < n; j++) a[i * n + j] -= f * a[k * n + j];
        }
    }
    return lad;
}

static nf_status pass(const nf_bijector *b, int fwd, const float *in, size_t n, float *out, float *ldj) {
    return fwd ? nf_bijector_forward_ctx(b, in, crow(0), n, out, ldj) : nf_bijector_inverse_ctx(b, in, crow(0), n, out, ldj);
}

/* L = sum g * out + sum gl * ldj over the batch, in double. */
static double loss(const nf_bijector *b, int fwd, const float *in, const float *g, const float *gl) {
    size_t d = nf_bijector_dim(b);
    float out[NROW * 8], ldj[NROW];
    if (pass(b, fwd, in, NROW, out, ldj) != NF_OK) return NAN;
    double s = 0;
    for (size_t i = 0; i < NROW; i++) {
        s += (double)gl[i] * ldj[i];
        for (size_t j = 0; j < d; j++) s += (double)g[i * d + j] * out[i * d + j];
    }
    return s;
}

/* 4-point central difference of f(v) around *v, restoring *v. */
#define STENCIL(v, expr, result)                                    \
    do {                                                            \
        float v0_ = *(v);                                           \
        double f_[4];                                               \
        const double st_[4] = {-2 * H, -H, H, 2 * H};               \
        for (int s_ = 0; s_ < 4; s_++) {                            \
            *(v) = (float)(v0_ + st_[s_]);                          \
            f_[s_] = (expr);                                        \
        }                                                           \
        *(v) = v0_;                                                 \
        (result) = (f_[0] - 8 * f_[1] + 8 * f_[2] - f_[3]) / (12 * H); \
    } while (0)

/* One-sided second-order differences from the 3 points v, v+-H, v+-2H. */
#define ONESIDED(v, expr, left, right)                                          \
    do {                                                                        \
        float v0_ = *(v);                                                       \
        double f0_ = (expr), fp_[2], fm_[2];                                    \
        for (int s_ = 0; s_ < 2; s_++) {                                        \
            *(v) = (float)(v0_ + (s_ + 1) * H);                                 \
            fp_[s_] = (expr);                                                   \
            *(v) = (float)(v0_ - (s_ + 1) * H);                                 \
            fm_[s_] = (expr);                                                   \
        }                                                                       \
        *(v) = v0_;                                                             \
        (right) = (-3 * f0_ + 4 * fp_[0] - fp_[1]) / (2 * H);                   \
        (left) = (3 * f0_ - 4 * fm_[0] + fm_[1]) / (2 * H);                     \
    } while (0)

static int near(double got, double want) { return fabs(got - want) <= TOL * (1 + fabs(want)); }

/* Checks one gradient entry against central differences or, for piecewise
 * cases, a one-sided one (counted in *fallbacks). */
#define FD_CHECK(c, v, expr, got, fallbacks, ...)                              \
    do {                                                                       \
        double fd_, l_, r_;                                                    \
        STENCIL(v, expr, fd_);                                                 \
        if ((c)->piecewise && !near(got, fd_)) {                               \
            ONESIDED(v, expr, l_, r_);                                         \
            if (near(got, l_) || near(got, r_)) {                              \
                (*(fallbacks))++; \
                fd_ = got;                                                     \
            }                                                                  \
        }                                                                      \
        CHECK_NEAR(got, fd_, TOL, __VA_ARGS__);                                \
    } while (0)

static void check_case(const bcase *c, size_t ci) {
    nf_rng *rng = NULL;
    nf_rng_create(1000 + ci, &rng);
    nf_bijector *b = NULL;
    nf_status st = c->make(c->d, rng, &b);
    CHECK(st == NF_OK, "case %zu (%s): constructor failed: %s", ci, c->label, nf_last_error());
    if (st) {
        nf_rng_free(rng);
        return;
    }
    const size_t d = c->d, n = NROW;
    const char *nm = nf_bijector_name(b);
    float ctxv[NROW * 8];
    for (size_t i = 0; i < NROW * 8; i++) ctxv[i] = runif(rng, -1, 1);
    case_ctx = c->dc ? ctxv : NULL, case_dc = c->dc;
    CHECK(nf_bijector_context_dim(b) == c->dc, "case %zu (%s): context dim %zu", ci, nm, nf_bijector_context_dim(b));
    CHECK(strcmp(nm, c->label) == 0, "case %zu: name is %s, expected %s", ci, nm, c->label);
    CHECK(nf_bijector_dim(b) == d, "case %zu (%s): dim", ci, nm);

    float x[NROW * 8], y[NROW * 8], x2[NROW * 8], fldj[NROW], ildj[NROW];
    for (size_t i = 0; i < n * d; i++) {
        do x[i] = runif(rng, c->lo, c->hi);
        while (c->gap > 0 && fabsf(x[i]) < c->gap);
    }

    /* 1. round trip */
    CHECK_OK(nf_bijector_forward_ctx(b, x, crow(0), n, y, fldj));
    CHECK_OK(nf_bijector_inverse_ctx(b, y, crow(0), n, x2, ildj));
    for (size_t i = 0; i < n * d; i++)
        CHECK_NEAR(x2[i], x[i], 1e-4, "case %zu (%s): inverse(forward(x))[%zu]", ci, nm, i);
    for (size_t i = 0; i < n; i++)
        CHECK_NEAR(ildj[i], -fldj[i], 1e-4, "case %zu (%s): ildj(y) vs -fldj(x), row %zu", ci, nm, i);
    float l2[NROW];
    if (!c->dc) {
        CHECK_OK(nf_bijector_forward_log_det_jacobian(b, x, n, l2));
        for (size_t i = 0; i < n; i++) CHECK(l2[i] == fldj[i], "case %zu (%s): fldj call differs", ci, nm);
        CHECK_OK(nf_bijector_inverse_log_det_jacobian(b, y, n, l2));
        for (size_t i = 0; i < n; i++) CHECK(l2[i] == ildj[i], "case %zu (%s): ildj call differs", ci, nm);
    } else {
        /* a conditional bijector needs its context; another context moves the output */
        CHECK_ERR(nf_bijector_forward(b, x, n, x2, NULL), NF_ERR_ARG, "conditional");
        float c2[NROW * 8], y2[NROW * 8];
        for (size_t i = 0; i < n * c->dc; i++) c2[i] = case_ctx[i] + 0.5f;
        CHECK_OK(nf_bijector_forward_ctx(b, x, c2, n, y2, NULL));
        double moved = 0;
        for (size_t i = 0; i < n * d; i++) moved = fmax(moved, fabs(y2[i] - y[i]));
        CHECK(moved > 1e-3, "case %zu (%s): the output depends on the context (moved %g)", ci, nm, moved);
    }

    /* 2. log-det against a finite-difference Jacobian, both directions */
    for (int fwd = 1; fwd >= 0; fwd--) {
        for (size_t i = 0; i < n; i++) {
            float row[8], out[8];
            double J[64];
            memcpy(row, (fwd ? x : y) + i * d, d * sizeof(float));
            const double hj = c->piecewise ? H / 16 : H;
            for (size_t j = 0; j < d; j++) {
                double col[4][8];
                float v0 = row[j];
                const double steps[4] = {-2 * hj, -hj, hj, 2 * hj};
                for (int s = 0; s < 4; s++) {
                    row[j] = (float)(v0 + steps[s]);
                    if (fwd) nf_bijector_forward_ctx(b, row, crow(i), 1, out, NULL);
                    else nf_bijector_inverse_ctx(b, row, crow(i), 1, out, NULL);
                    for (size_t k = 0; k < d; k++) col[s][k] = out[k];
                }
                row[j] = v0;
                for (size_t k = 0; k < d; k++)
                    J[k * d + j] = (col[0][k] - 8 * col[1][k] + 8 * col[2][k] - col[3][k]) / (12 * hj);
            }
            double ref = det_log_abs(J, d);
            CHECK_NEAR(fwd ? fldj[i] : ildj[i], ref, TOL, "case %zu (%s): %s log-det vs finite differences, row %zu",
                       ci, nm, fwd ? "forward" : "inverse", i);
        }
    }

    /* 3. gradients against finite differences, both directions */
    size_t np = nf_bijector_param_count(b);
    float *params = nf_bijector_params(b);
    CHECK((np == 0) == (params == NULL), "case %zu (%s): params pointer vs count", ci, nm);
    float g[NROW * 8], gl[NROW], gin[NROW * 8];
    float *dp = calloc(np + 1, sizeof(float));
    size_t fallbacks = 0, checked = 0;
    for (int fwd = 1; fwd >= 0; fwd--) {
        float *in = fwd ? x : y;
        nf_rng_fill_normal(rng, g, n * d);
        nf_rng_fill_normal(rng, gl, n);
        for (size_t i = 0; i < n * d; i++) gin[i] = NAN; /* must be overwritten */
        memset(dp, 0, (np + 1) * sizeof(float));
        st = fwd ? nf_bijector_forward_backward_ctx(b, in, crow(0), n, g, gl, gin, dp)
                 : nf_bijector_inverse_backward_ctx(b, in, crow(0), n, g, gl, gin, dp);
        CHECK(st == NF_OK, "case %zu (%s): backward failed: %s", ci, nm, nf_last_error());
        if (st) continue;
        for (size_t k = 0; k < n * d; k++)
            FD_CHECK(c, &in[k], loss(b, fwd, in, g, gl), gin[k], &fallbacks, "case %zu (%s): %s input gradient [%zu]",
                     ci, nm, fwd ? "forward" : "inverse", k);
        for (size_t k = 0; k < np; k++)
            FD_CHECK(c, &params[k], loss(b, fwd, in, g, gl), dp[k], &fallbacks,
                     "case %zu (%s): %s parameter gradient [%zu]", ci, nm, fwd ? "forward" : "inverse", k);
        checked += n * d + np;
        /* NULL gradients mean zero; NULL outputs are allowed. */
        float dp2[1];
        st = fwd ? nf_bijector_forward_backward_ctx(b, in, crow(0), n, NULL, NULL, NULL, np ? NULL : dp2)
                 : nf_bijector_inverse_backward_ctx(b, in, crow(0), n, NULL, NULL, NULL, NULL);
        CHECK(st == NF_OK, "case %zu (%s): backward with NULL arrays: %s", ci, nm, nf_last_error());
    }
    free(dp);
    CHECK(fallbacks * 20 <= checked, "case %zu (%s): %zu of %zu gradients matched only one-sided differences", ci, nm,
          fallbacks, checked);

    /* 4. batch independence */
    for (size_t i = 0; i < n; i++) {
        float yr[8], lr;
        CHECK_OK(nf_bijector_forward_ctx(b, x + i * d, crow(i), 1, yr, &lr));
        for (size_t j = 0; j < d; j++)
            CHECK_NEAR(yr[j], y[i * d + j], 1e-6, "case %zu (%s): row %zu alone vs in a batch", ci, nm, i);
        CHECK_NEAR(lr, fldj[i], 1e-6, "case %zu (%s): ldj of row %zu alone vs in a batch", ci, nm, i);
    }
    /* in-place (aliased) call gives the same answer */
    float xa[NROW * 8];
    memcpy(xa, x, n * d * sizeof(float));
    CHECK_OK(nf_bijector_forward_ctx(b, xa, crow(0), n, xa, NULL));
    for (size_t i = 0; i < n * d; i++) CHECK(xa[i] == y[i], "case %zu (%s): in-place forward differs", ci, nm);

    /* 5. errors */
    float bad[NROW * 8];
    memcpy(bad, x, n * d * sizeof(float));
    bad[d + 1 < n * d ? d + 1 : 0] = NAN;
    CHECK_ERR(nf_bijector_forward_ctx(b, bad, crow(0), n, y, fldj), NF_ERR_DOMAIN, nm);
    CHECK_ERR(nf_bijector_inverse_ctx(b, bad, crow(0), n, y, fldj), NF_ERR_DOMAIN, "non-finite");
    if (!isnan(c->bad)) {
        memcpy(bad, c->bad_fwd ? x : y, n * d * sizeof(float));
        bad[2 * d] = c->bad; /* row 2, column 0 */
        st = pass(b, c->bad_fwd, bad, n, x2, NULL);
        CHECK(st == NF_ERR_DOMAIN && strstr(nf_last_error(), "row 2"),
              "case %zu (%s): out-of-domain input %g: got %s: %s", ci, nm, (double)c->bad,
              nf_status_str(st), nf_last_error());
    }
    CHECK_ERR(nf_bijector_forward_ctx(b, NULL, crow(0), n, y, NULL), NF_ERR_ARG, "NULL");
    CHECK_OK(nf_bijector_forward_ctx(b, NULL, crow(0), 0, NULL, NULL)); /* an empty batch is fine */
    if (c->dc) {
        float cb[NROW * 8];
        memcpy(cb, case_ctx, n * c->dc * sizeof(float));
        cb[1] = INFINITY;
        CHECK_ERR(nf_bijector_forward_ctx(b, x, cb, n, y, NULL), NF_ERR_DOMAIN, "context");
    } else
        CHECK_ERR(nf_bijector_forward_ctx(b, x, x, n, y, NULL), NF_ERR_ARG, "takes no context");

    nf_bijector_free(b);
    nf_rng_free(rng);
}

void test_conformance(void) {
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_case(&cases[i], i);
}
