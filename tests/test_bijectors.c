/*
 * test_bijectors.c - bijector behaviour beyond the conformance table:
 * PyTorch reference values (ref_torch.h), TFP chain order, flat parameter
 * buffers, monotonicity, constructor errors, overflow reports.
 */
#include "test.h"

#include "ref_torch.h"

#include <stdlib.h>

static nf_status make_named(const char *name, double param, nf_bijector **b) {
    if (!strcmp(name, "exp")) return nf_bijector_exp(1, b);
    if (!strcmp(name, "log")) return nf_bijector_log(1, b);
    if (!strcmp(name, "sigmoid")) return nf_bijector_sigmoid(1, b);
    if (!strcmp(name, "tanh")) return nf_bijector_tanh(1, b);
    if (!strcmp(name, "softplus")) return nf_bijector_softplus(1, b);
    if (!strcmp(name, "normal_cdf")) return nf_bijector_normal_cdf(1, b);
    if (!strcmp(name, "affine_scalar")) return nf_bijector_affine_scalar(1, 0.3f, (float)param, b);
    if (!strcmp(name, "leaky_relu")) return nf_bijector_leaky_relu(1, (float)param, b);
    return NF_ERR_ARG;
}

/* TFP's Softsign, Expm1 and SinhArcsinh at x = 0.5 (1 for Expm1) against their
 * closed forms evaluated in double precision: y and the forward log-det. */
static void test_tfp_elementwise(void) {
    struct {
        const char *spec;
        float x;
        double y, fldj;
    } cases[] = {
        {"softsign", 0.5f, 1.0 / 3.0, -0.8109302162163288},
        {"expm1", 1.0f, 1.718281828459045, 1.0},
        {"sinh_arcsinh(skewness=1, tailweight=2)", 0.5f, 9.646553266730425, 2.8535205261422827},
    };
    nf_rng *rng = NULL;
    nf_rng_create(1, &rng);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        nf_bijector *b = NULL;
        CHECK_OK(nf_bijector_from_spec(cases[k].spec, 1, rng, &b));
        if (!b) continue;
        float y, l, back, il;
        CHECK_OK(nf_bijector_forward(b, &cases[k].x, 1, &y, &l));
        CHECK_NEAR(y, cases[k].y, 2e-6 * (1 + fabs(cases[k].y)), "%s forward", cases[k].spec);
        CHECK_NEAR(l, cases[k].fldj, 2e-6 * (1 + fabs(cases[k].fldj)), "%s forward log-det", cases[k].spec);
        CHECK_OK(nf_bijector_inverse(b, &y, 1, &back, &il));
        CHECK_NEAR(back, cases[k].x, 1e-5, "%s inverse", cases[k].spec);
        CHECK_NEAR(il, -l, 1e-5 * (1 + fabs(l)), "%s inverse log-det", cases[k].spec);
        nf_bijector_free(b);
    }
    nf_bijector *b = NULL;
    CHECK_ERR(nf_bijector_sinh_arcsinh(1, 0, -1, &b), NF_ERR_DOMAIN, "tailweight > 0");
    CHECK_ERR(nf_bijector_from_spec("softsign", 1, rng, &b) ? NF_ERR_ARG : nf_bijector_inverse(b, (float[]){1.0f}, 1,
              (float[1]){0}, NULL), NF_ERR_DOMAIN, "-1 < y < 1");
    nf_bijector_free(b);
    nf_rng_free(rng);
}

static void test_reference_values(void) {
    for (size_t i = 0; i < sizeof ref_scalars / sizeof ref_scalars[0]; i++) {
        const ref_scalar *r = &ref_scalars[i];
        nf_bijector *b = NULL;
        CHECK_OK(make_named(r->name, r->param, &b));
        if (!b) continue;
        float x = (float)r->x, y, l, xb, il;
        CHECK_OK(nf_bijector_forward(b, &x, 1, &y, &l));
        /* float input rounding moves y by f'(x) dx; compare with 1e-6 relative slack */
        CHECK_NEAR(y, r->y, 2e-6, "%s(%g) vs PyTorch", r->name, r->x);
        CHECK_NEAR(l, r->fldj, 2e-6, "%s fldj(%g) vs PyTorch", r->name, r->x);
        float yf = (float)r->y;
        if (nf_bijector_inverse(b, &yf, 1, &xb, &il) == NF_OK) {
            CHECK_NEAR(xb, r->x, 2e-5, "%s inverse(%g) vs PyTorch", r->name, r->y);
            CHECK_NEAR(il, -r->fldj, 2e-5, "%s ildj(%g) vs PyTorch", r->name, r->y);
        } else {
            /* only allowed where float rounding puts y on the boundary */
            CHECK(yf == 1.0f || yf == -1.0f, "%s inverse(%g) failed: %s", r->name, r->y, nf_last_error());
        }
        nf_bijector_free(b);
    }

    /* Affine with a rank-2 update against torch.linalg. */
    enum { d = REF_AFF_D, r = REF_AFF_R, n = REF_AFF_N };
    float L[d * d], V[d * r], sh[d], x[n * d], y[n * d], back[n * d], l[n], il[n];
    for (int i = 0; i < d * d; i++) L[i] = (float)ref_aff_L[i];
    for (int i = 0; i < d * r; i++) V[i] = (float)ref_aff_V[i];
    for (int i = 0; i < d; i++) sh[i] = (float)ref_aff_b[i];
    for (int i = 0; i < n * d; i++) x[i] = (float)ref_aff_x[i];
    nf_bijector *a = NULL;
    CHECK_OK(nf_bijector_affine(d, r, sh, L, V, &a));
    CHECK(nf_bijector_param_count(a) == d + d * (d + 1) / 2 + d * r, "affine parameter count");
    CHECK_OK(nf_bijector_forward(a, x, n, y, l));
    for (int i = 0; i < n * d; i++) CHECK_NEAR(y[i], ref_aff_y[i], 1e-5, "affine y[%d] vs PyTorch", i);
    for (int i = 0; i < n; i++) CHECK_NEAR(l[i], ref_aff_logdet, 1e-5, "affine log|det| vs PyTorch slogdet");
    CHECK_OK(nf_bijector_inverse(a, y, n, back, il));
    for (int i = 0; i < n * d; i++) CHECK_NEAR(back[i], ref_aff_x[i], 1e-5, "affine Woodbury inverse[%d]", i);
    for (int i = 0; i < n; i++) CHECK_NEAR(il[i], -ref_aff_logdet, 1e-5, "affine ildj");
    /* A singular L + V V^T is refused, not turned into inf. */
    float Ls[4] = {1, 0, 0, 1}, Vs[2] = {0, 0};
    nf_bijector *s = NULL;
    CHECK_OK(nf_bijector_affine(2, 1, NULL, Ls, Vs, &s));
    float *p = nf_bijector_params(s); /* [shift 2, L 3, V 2] */
    p[2 + 0] = 1, p[2 + 1] = 0, p[2 + 2] = -1; /* L = diag(1, -1) */
    p[5] = 0, p[6] = 1;                         /* V = (0, 1): M = diag(1, 0) */
    CHECK_ERR(nf_bijector_forward(s, x, 1, y, l), NF_ERR_DOMAIN, "singular");
    nf_bijector_free(s);
    nf_bijector_free(a);
}

static void test_chain_semantics(void) {
    /* TFP order: chain([exp, shift(1)]).forward(x) = exp(x + 1). */
    nf_bijector *e = NULL, *sh = NULL, *c = NULL;
    float one = 1;
    CHECK_OK(nf_bijector_exp(1, &e));
    CHECK_OK(nf_bijector_shift(1, &one, 1, &sh));
    nf_bijector *parts[2] = {e, sh};
    CHECK_OK(nf_bijector_chain(parts, 2, &c));
    float x = 0.5f, y, l;
    CHECK_OK(nf_bijector_forward(c, &x, 1, &y, &l));
    CHECK_NEAR(y, exp(1.5), 1e-6, "chain applies the last part first");
    CHECK_NEAR(l, 1.5, 1e-6, "chain fldj = log exp'(x + 1)");
    /* Parameters live in one flat buffer; editing it changes the part. */
    CHECK(nf_bijector_param_count(c) == 1, "chain parameter count");
    nf_bijector_params(c)[0] = 2;
    CHECK_OK(nf_bijector_forward(c, &x, 1, &y, NULL));
    CHECK_NEAR(y, exp(2.5), 1e-6, "chain parameter buffer drives the shift");
    CHECK(nf_bijector_monotone(c) == 1, "exp o shift is increasing");
    nf_bijector_free(c);

    /* invert(exp) is log. */
    nf_bijector *inv = NULL, *lg = NULL;
    CHECK_OK(nf_bijector_exp(2, &e));
    CHECK_OK(nf_bijector_invert(e, &inv));
    CHECK_OK(nf_bijector_log(2, &lg));
    float xs[4] = {0.5f, 1, 2, 3}, y1[4], y2[4], l1[2], l2[2];
    CHECK_OK(nf_bijector_forward(inv, xs, 2, y1, l1));
    CHECK_OK(nf_bijector_forward(lg, xs, 2, y2, l2));
    for (int i = 0; i < 4; i++) CHECK_NEAR(y1[i], y2[i], 1e-7, "invert(exp) == log");
    for (int i = 0; i < 2; i++) CHECK_NEAR(l1[i], l2[i], 1e-6, "invert(exp) ldj == log ldj");
    nf_bijector_free(inv);
    nf_bijector_free(lg);

    /* Monotonicity for the cdf of transformed distributions. */
    float neg = -2;
    nf_bijector *sc = NULL, *pm = NULL;
    CHECK_OK(nf_bijector_scale(1, &neg, 1, &sc));
    CHECK(nf_bijector_monotone(sc) == -1, "negative scale is decreasing");
    nf_bijector_free(sc);
    CHECK_OK(nf_bijector_reverse(2, &pm));
    CHECK(nf_bijector_monotone(pm) == 0, "a 2-D permutation is not coordinatewise monotone");
    nf_bijector_free(pm);
}

static void test_errors(void) {
    nf_bijector *b = NULL, *b2 = NULL, *c = NULL;
    size_t bad_perm[3] = {0, 0, 2}, out_perm[2] = {0, 5};
    CHECK_ERR(nf_bijector_permute(3, bad_perm, &b), NF_ERR_ARG, "repeated");
    CHECK_ERR(nf_bijector_permute(2, out_perm, &b), NF_ERR_ARG, "out of range");
    CHECK_ERR(nf_bijector_leaky_relu(2, 0.0f, &b), NF_ERR_DOMAIN, "alpha");
    CHECK_ERR(nf_bijector_exp(0, &b), NF_ERR_ARG, "dimension");
    float L0[4] = {1, 0, 0, 0};
    CHECK_ERR(nf_bijector_affine(2, 1, NULL, L0, NULL, &b), NF_ERR_DOMAIN, "diagonal");
    float two[2] = {1, 2};
    CHECK_ERR(nf_bijector_shift(3, two, 2, &b), NF_ERR_SHAPE, "1 or d=3");
    nf_inline_fns none = {0};
    CHECK_ERR(nf_bijector_inline(1, "x", &none, NULL, &b), NF_ERR_ARG, "required");
    /* chain of different dimensions */
    CHECK_OK(nf_bijector_exp(2, &b));
    CHECK_OK(nf_bijector_exp(3, &b2));
    nf_bijector *parts[2] = {b, b2};
    CHECK_ERR(nf_bijector_chain(parts, 2, &c), NF_ERR_SHAPE, "dimension 3");
    nf_bijector *same[2] = {b, b};
    CHECK_ERR(nf_bijector_chain(same, 2, &c), NF_ERR_ARG, "twice");
    nf_bijector_free(b2); /* the failed chains did not take ownership */
    /* overflow is reported with the bijector's name, never returned as inf */
    float big[2] = {1, 100}, y[2];
    CHECK_ERR(nf_bijector_forward(b, big, 1, y, NULL), NF_ERR_NUMERIC, "exp");
    CHECK(strstr(nf_last_error(), "column 1") != NULL, "overflow names the column: %s", nf_last_error());
    /* inside a chain, the part that overflowed is named */
    nf_bijector *sh = NULL;
    float s50 = 50;
    CHECK_OK(nf_bijector_scale(2, &s50, 1, &sh));
    nf_bijector *ch[2] = {b, sh}; /* scale first, then exp */
    CHECK_OK(nf_bijector_chain(ch, 2, &c));
    float mid[2] = {1, 3};
    CHECK_ERR(nf_bijector_forward(c, mid, 1, y, NULL), NF_ERR_NUMERIC, "part 0 (exp)");
    nf_bijector_free(c);
    /* a trained scale that reached 0 is reported */
    float s1 = 1;
    CHECK_OK(nf_bijector_scale(1, &s1, 1, &b));
    nf_bijector_params(b)[0] = 0;
    CHECK_ERR(nf_bijector_inverse(b, big, 1, y, NULL), NF_ERR_DOMAIN, "not invertible");
    nf_bijector_free(b);
}

static int id_cb(void *u, const float *x, float *y, size_t n, size_t d) {
    (void)u;
    memcpy(y, x, n * d * sizeof(float));
    return 0;
}
static int zero_ldj(void *u, const float *x, float *l, size_t n, size_t d) {
    (void)u, (void)x, (void)d;
    memset(l, 0, n * sizeof(float));
    return 0;
}
static int failing(void *u, const float *x, float *y, size_t n, size_t d) {
    (void)u, (void)x, (void)y, (void)n, (void)d;
    return 7;
}

static void test_inline_and_init(void) {
    nf_inline_fns f = {.forward = id_cb, .inverse = failing, .forward_log_det = zero_ldj};
    nf_bijector *b = NULL;
    CHECK_OK(nf_bijector_inline(2, "user_map", &f, NULL, &b));
    float x[2] = {1, 2}, y[2];
    CHECK_OK(nf_bijector_forward(b, x, 1, y, NULL));
    CHECK_ERR(nf_bijector_inverse(b, x, 1, y, NULL), NF_ERR_DOMAIN, "user_map: the inverse callback reported failure (code 7)");
    CHECK_ERR(nf_bijector_forward_backward(b, x, 1, NULL, NULL, y, NULL), NF_ERR_UNSUPPORTED, "no forward_backward");
    nf_bijector_free(b);

    /* affine's V starts at 0 (a saddle of the loss) until init_params */
    nf_rng *rng = NULL;
    nf_rng_create(3, &rng);
    CHECK_OK(nf_bijector_affine(2, 2, NULL, NULL, NULL, &b));
    float *p = nf_bijector_params(b);
    size_t np = nf_bijector_param_count(b);
    CHECK(p[np - 1] == 0 && p[2] == 1, "default affine is the identity");
    CHECK_OK(nf_bijector_init_params(b, rng));
    int nonzero = 0;
    for (size_t i = 5; i < np; i++) nonzero += p[i] != 0;
    CHECK(nonzero == 4, "init_params draws V (%d nonzero)", nonzero);
    nf_bijector_free(b);
    nf_rng_free(rng);
}

/* LU linear against the dense matrix P L U' built by PyTorch. */
static void test_lu_linear(void) {
    enum { d = 3, n = 4 };
    nf_bijector *b = NULL;
    CHECK_OK(nf_bijector_lu_linear(d, ref_lu_perm, &b));
    if (!b) return;
    CHECK(nf_bijector_param_count(b) == 2 * d + d * (d - 1), "lu_linear parameter count");
    float *P = nf_bijector_params(b), x[n * d], y[n * d], back[n * d], l[n], il[n];
    for (size_t k = 0; k < nf_bijector_param_count(b); k++) P[k] = (float)ref_lu_params[k];
    for (int i = 0; i < n * d; i++) x[i] = (float)ref_lu_x[i];
    CHECK_OK(nf_bijector_forward(b, x, n, y, l));
    for (int i = 0; i < n * d; i++) CHECK_NEAR(y[i], ref_lu_y[i], 1e-5, "lu_linear y[%d] vs PyTorch", i);
    for (int i = 0; i < n; i++) CHECK_NEAR(l[i], ref_lu_logdet, 1e-6, "lu_linear log|det| vs PyTorch slogdet");
    CHECK_OK(nf_bijector_inverse(b, y, n, back, il));
    for (int i = 0; i < n * d; i++) CHECK_NEAR(back[i], ref_lu_x[i], 1e-5, "lu_linear inverse[%d]", i);
    for (int i = 0; i < n; i++) CHECK_NEAR(il[i], -ref_lu_logdet, 1e-6, "lu_linear ildj");
    nf_bijector_free(b);
    size_t bad[3] = {0, 2, 2};
    CHECK_ERR(nf_bijector_lu_linear(3, bad, &b), NF_ERR_ARG, "not a permutation");
}

/* Image layers: squeeze's layout (Real NVP's space-to-depth: channel 4c + 2dy + dx of the
 * squeezed image holds pixel (2y + dy, 2x + dx) of channel c), pixelwise sums over pixels,
 * blockwise keeps an identity block as it is, and their errors. */
static void test_image_layers(void) {
    nf_bijector *b = NULL;
    size_t sh[3] = {2, 4, 4};
    CHECK_OK(nf_bijector_squeeze(sh, &b));
    if (b) {
        float x[32], z[32], back[32];
        for (int k = 0; k < 32; k++) x[k] = (float)k;
        CHECK_OK(nf_bijector_inverse(b, x, 1, z, NULL)); /* data -> base: squeezes */
        int ok = 1;
        for (size_t c = 0; c < 2; c++)
            for (size_t y = 0; y < 4; y++)
                for (size_t xx = 0; xx < 4; xx++)
                    ok &= z[((4 * c + 2 * (y % 2) + xx % 2) * 2 + y / 2) * 2 + xx / 2] == x[(c * 4 + y) * 4 + xx];
        CHECK(ok && z[1] == 2 && z[4] == 1 && z[8] == 4, "squeeze: channel 4c + 2dy + dx holds pixel (2y + dy, 2x + dx)");
        CHECK_OK(nf_bijector_forward(b, z, 1, back, NULL));
        CHECK(!memcmp(back, x, sizeof x), "unsqueeze undoes squeeze");
        nf_bijector_free(b);
    }
    size_t odd[3] = {1, 3, 4};
    CHECK_ERR(nf_bijector_squeeze(odd, &b), NF_ERR_SHAPE, "even H and W");
    /* pixelwise(scale 2 on 3 channels) on 3 x 2 x 2: log|det| = 12 log 2 */
    nf_bijector *in = NULL, *px = NULL;
    float two[3] = {2, 2, 2};
    size_t s3[3] = {3, 2, 2};
    CHECK_OK(nf_bijector_scale(3, two, 3, &in));
    CHECK_OK(nf_bijector_pixelwise(in, s3, &px));
    if (px) {
        float x[12], y[12], l = 0;
        for (int k = 0; k < 12; k++) x[k] = (float)k;
        CHECK_OK(nf_bijector_forward(px, x, 1, y, &l));
        CHECK(y[5] == 10 && fabsf(l - 12 * logf(2)) < 1e-5f, "pixelwise: every pixel scaled, log-det summed (%g)", l);
        nf_bijector_free(px);
    }
    size_t s2[3] = {2, 2, 2};
    CHECK_OK(nf_bijector_scale(3, two, 3, &in));
    CHECK_ERR(nf_bijector_pixelwise(in, s2, &px), NF_ERR_SHAPE, "needs one of C = 2");
    nf_bijector_free(in);
    /* blockwise(exp, identity) */
    nf_bijector *bs[2] = {NULL, NULL}, *bw = NULL;
    CHECK_OK(nf_bijector_exp(1, &bs[0]));
    CHECK_OK(nf_bijector_identity(2, &bs[1]));
    CHECK_OK(nf_bijector_blockwise(bs, 2, &bw));
    if (bw) {
        float x[3] = {0.5f, -1, 7}, y[3], l = 0;
        CHECK_OK(nf_bijector_forward(bw, x, 1, y, &l));
        CHECK(fabsf(y[0] - expf(0.5f)) < 1e-6f && y[1] == -1 && y[2] == 7 && fabsf(l - 0.5f) < 1e-6f,
              "blockwise: exp on column 0, the rest as it was, log-det 0.5 (%g)", l);
        nf_bijector_free(bw);
    }
}

/* TFP's own test cases, at their parameters and points, against the reference formulas
 * those tests use (evaluated in double precision offline): rational_quadratic_spline_test's
 * testTheoreticalFldjSimple (bin widths [1, 1], heights [sqrt(.5), 2 - sqrt(.5)], slopes 1, x =
 * linspace(-1.05, 1.05, 10): values and forward log-dets, the ends outside the range
 * unchanged), sinh_arcsinh_test's testBijectorVersusNumpyRewriteOfBasicFunctions (skewness
 * 0.2, tailweight 2 at x = [-2.01, 2, 1e-4]: y and the ildj), softplus_test's
 * hinge_softness 1.5 (y = 1.5 softplus(x / 1.5)). */
static void test_tfp_test_cases(void) {
    nf_bijector *b = NULL;
    float bw[2] = {1, 1}, bh[2] = {0.70710678f, 2 - 0.70710678f}, ks[1] = {1};
    CHECK_OK(nf_bijector_rq_spline(1, 2, bw, bh, ks, -1, &b));
    if (b) {
        const double want_y[10] = {-1.04999995, -0.845655133, -0.695495899, -0.557200542, -0.396710026,
                                   -0.166330402, 0.137332154, 0.474627656, 0.792764051, 1.04999995};
        const double want_l[10] = {0, -0.325640064, -0.520490799, -0.488352399, -0.226116841,
                                   0.154252269, 0.342672651, 0.366459061, 0.224564132, 0};
        float x[10], y[10], l[10] = {0}, back[10];
        for (int i = 0; i < 10; i++) x[i] = (float)(-1.05 + 2.1 * i / 9);
        CHECK_OK(nf_bijector_forward(b, x, 10, y, l));
        CHECK_OK(nf_bijector_inverse(b, y, 10, back, NULL));
        for (int i = 0; i < 10; i++) {
            CHECK_NEAR(y[i], want_y[i], 2e-6, "rational_quadratic_spline (TFP's testTheoreticalFldjSimple) at %g", (double)x[i]);
            CHECK_NEAR(l[i], want_l[i], 2e-6, "its forward log-det at %g", (double)x[i]);
            CHECK_NEAR(back[i], x[i], 2e-6, "its round trip at %g", (double)x[i]);
        }
        nf_bijector_free(b);
    }
    CHECK_OK(nf_bijector_sinh_arcsinh(1, 0.2f, 2, &b));
    if (b) {
        const float x[3] = {-2.01f, 2, 1e-4f};
        const double want_y[3] = {-6.0269293208427825, 13.366176180336195, 0.41096854848784836};
        const double want_ildj[3] = {-1.6942508512497605, -2.4839464664363287, -0.77117666785009042};
        float y[3], l[3] = {0}, back[3], il[3] = {0};
        CHECK_OK(nf_bijector_forward(b, x, 3, y, l));
        CHECK_OK(nf_bijector_inverse(b, y, 3, back, il));
        for (int i = 0; i < 3; i++) {
            CHECK_NEAR(y[i], want_y[i], 2e-6, "sinh_arcsinh(0.2, 2) (TFP's test) at %g", (double)x[i]);
            CHECK_NEAR(il[i], want_ildj[i], 2e-6, "sinh_arcsinh(0.2, 2) ildj at %g", (double)x[i]);
            CHECK_NEAR(l[i], -want_ildj[i], 1e-4, "sinh_arcsinh(0.2, 2) fldj = -ildj at %g (TFP's rtol)", (double)x[i]);
            CHECK_NEAR(back[i], x[i], 2e-6, "sinh_arcsinh(0.2, 2) round trip at %g", (double)x[i]);
        }
        nf_bijector_free(b);
    }
    CHECK_OK(nf_bijector_softplus_hinge(1, 1.5f, 0, &b));
    if (b) {
        const float x[5] = {-3, -0.5f, 0, 2.2f, 6};
        const double want[5] = {0.19039201656445875, 0.81045836203411259, 1.0397207708399179, 2.5113663601770355,
                                6.0272248918767142};
        float y[5], back[5];
        CHECK_OK(nf_bijector_forward(b, x, 5, y, NULL));
        CHECK_OK(nf_bijector_inverse(b, y, 5, back, NULL));
        for (int i = 0; i < 5; i++) {
            CHECK_NEAR(y[i], want[i], 2e-6, "softplus(hinge_softness=1.5) (TFP's test) at %g", (double)x[i]);
            CHECK_NEAR(back[i], x[i], 1e-5, "softplus(hinge_softness=1.5) round trip at %g", (double)x[i]);
        }
        nf_bijector_free(b);
    }
}

/* TFP's Sigmoid(low, high), Softplus(hinge_softness, low) and PowerTransform against their
 * closed forms (TFP's definitions), and Sigmoid's outputs strictly inside (low, high). */
static void test_fixed_argument_forms(void) {
    nf_bijector *b = NULL;
    float x[4] = {0.5f, 0, 40, -40}, y[4], l[4] = {0};
    CHECK_OK(nf_bijector_sigmoid_range(1, -1, 2, &b));
    if (b) {
        CHECK_OK(nf_bijector_forward(b, x, 4, y, l));
        CHECK(fabsf(y[0] - 0.8673779936f) < 1e-6f && fabsf(y[1] - 0.5f) < 1e-7f, "sigmoid(-1, 2) at 0.5 and 0: %g %g", y[0], y[1]);
        CHECK(y[2] < 2 && y[2] > 1.9999f && y[3] > -1 && y[3] < -0.9999f, "sigmoid(-1, 2) stays strictly inside: %.9g %.9g", y[2], y[3]);
        CHECK(fabsf(l[0] - (float)(log(3.0) - log1p(exp(-0.5)) - log1p(exp(0.5)))) < 1e-6f, "sigmoid(-1, 2) log-det at 0.5");
        nf_bijector_free(b);
    }
    CHECK_ERR(nf_bijector_sigmoid_range(1, 2, 2, &b), NF_ERR_ARG, "low < high");
    CHECK_OK(nf_bijector_softplus_hinge(1, 0.5f, 1, &b));
    if (b) {
        float xs[2] = {0, 1}, ys[2];
        CHECK_OK(nf_bijector_forward(b, xs, 2, ys, NULL));
        CHECK(fabsf(ys[0] - 1.34657359f) < 1e-6f && fabsf(ys[1] - 2.06346400f) < 1e-6f, "softplus(0.5, 1): %g %g", ys[0], ys[1]);
        nf_bijector_free(b);
    }
    CHECK_ERR(nf_bijector_softplus_hinge(1, 0, 1, &b), NF_ERR_ARG, "hinge_softness must be > 0");
    /* RationalQuadraticSpline against the NSF paper's formula (eq. 4 and its derivative, computed
     * independently): widths [0.8, 1.2], heights [1.2, 0.8], inner slope 0.5, range_min -1 */
    float bw[2] = {0.8f, 1.2f}, bh[2] = {1.2f, 0.8f}, ks[1] = {0.5f};
    CHECK_OK(nf_bijector_rq_spline(1, 2, bw, bh, ks, -1, &b));
    if (b) {
        float xs[4] = {-0.5f, 0.3f, 1.5f, -1}, ys[4], ls[4] = {0}, back[4];
        CHECK_OK(nf_bijector_forward(b, xs, 4, ys, ls));
        CHECK(fabsf(ys[0] + 0.142857143f) < 1e-6f && fabsf(ys[1] - 0.468412439f) < 1e-6f && ys[2] == 1.5f && ys[3] == -1,
              "rational_quadratic_spline values: %.9g %.9g %g %g", ys[0], ys[1], ys[2], ys[3]);
        CHECK(fabsf(ls[0] - 0.572444435f) < 1e-6f && fabsf(ls[1] + 0.521709099f) < 1e-6f && ls[2] == 0,
              "rational_quadratic_spline log-dets: %.9g %.9g %g", ls[0], ls[1], ls[2]);
        CHECK_OK(nf_bijector_inverse(b, ys, 4, back, NULL));
        CHECK(fabsf(back[0] - xs[0]) < 1e-6f && fabsf(back[1] - xs[1]) < 1e-6f, "rational_quadratic_spline inverse");
        nf_bijector_free(b);
    }
    /* SoftClip(-10, 10) against TFP's documented values */
    CHECK_OK(nf_bijector_soft_clip(1, -10, 10, 1, &b));
    if (b) {
        float xc[5] = {-15, -7, 1, 9, 20}, yc[5], want[5] = {-9.993284f, -6.951412f, 0.9998932f, 8.686738f, 9.999954f};
        CHECK_OK(nf_bijector_forward(b, xc, 5, yc, NULL));
        for (int k = 0; k < 5; k++) CHECK_NEAR(yc[k], want[k], 2e-6, "soft_clip(-10, 10) at %g (TFP's docs)", (double)xc[k]);
        nf_bijector_free(b);
    }
    /* Ascending: [1, 0, log 2] -> [1, 2, 4], log-det 0 + log 2; its inverse refuses a decreasing row */
    CHECK_OK(nf_bijector_ascending(3, &b));
    if (b) {
        float xa[3] = {1, 0, 0.69314718f}, ya[3], la = 0, dec[3] = {1, 3, 2};
        CHECK_OK(nf_bijector_forward(b, xa, 1, ya, &la));
        CHECK(fabsf(ya[0] - 1) < 1e-6f && fabsf(ya[1] - 2) < 1e-6f && fabsf(ya[2] - 4) < 1e-5f && fabsf(la - 0.69314718f) < 1e-6f,
              "ascending: %g %g %g, log-det %g", ya[0], ya[1], ya[2], la);
        CHECK_ERR(nf_bijector_inverse(b, dec, 1, ya, NULL), NF_ERR_DOMAIN, "strictly increasing");
        nf_bijector_free(b);
    }
    /* Householder: TFP's householder_test values (reflection axes [-0.8, 0.6] and [2/7, 3/7, 6/7]) */
    nf_rng *hr = NULL;
    nf_rng_create(3, &hr);
    CHECK_OK(nf_bijector_householder(2, hr, &b));
    if (b) {
        float *v = nf_bijector_params(b), xh[2] = {1, 0}, yh[2], lh = 0;
        v[0] = -0.8f, v[1] = 0.6f;
        CHECK_OK(nf_bijector_forward(b, xh, 1, yh, &lh));
        CHECK(fabsf(yh[0] + 0.28f) < 1e-6f && fabsf(yh[1] - 0.96f) < 1e-6f && lh == 0, "householder (TFP): %g %g, log-det %g", yh[0],
              yh[1], lh);
        nf_bijector_free(b);
    }
    CHECK_OK(nf_bijector_householder(3, hr, &b));
    if (b) {
        float *v = nf_bijector_params(b), xh[6] = {1, 0, 0, 0, 0, 1}, yh[6];
        float want[6] = {41 / 49.f, -12 / 49.f, -24 / 49.f, -24 / 49.f, -36 / 49.f, -23 / 49.f};
        v[0] = 2 / 7.f, v[1] = 3 / 7.f, v[2] = 6 / 7.f;
        CHECK_OK(nf_bijector_forward(b, xh, 2, yh, NULL));
        for (int k = 0; k < 6; k++) CHECK_NEAR(yh[k], want[k], 1e-6, "householder (TFP) [%d]", k);
        nf_bijector_free(b);
    }
    nf_rng_free(hr);
    /* Ascending: TFP's ascending_test, inverse([4, 8, 13]) = [4, log 4, log 5], ildj -(log 4 + log 5) */
    CHECK_OK(nf_bijector_ascending(3, &b));
    if (b) {
        float ya[6] = {2, 3, 4, 4, 8, 13}, xa[6], la[2] = {0, 0};
        CHECK_OK(nf_bijector_inverse(b, ya, 2, xa, la));
        CHECK(xa[0] == 2 && fabsf(xa[1]) < 1e-7f && fabsf(xa[2]) < 1e-7f && xa[3] == 4 && fabsf(xa[4] - logf(4)) < 1e-6f &&
                  fabsf(xa[5] - logf(5)) < 1e-6f && fabsf(la[1] + logf(20)) < 1e-6f,
              "ascending (TFP): %g %g %g, ildj %g", xa[3], xa[4], xa[5], la[1]);
        nf_bijector_free(b);
    }
    float bh2[2] = {1.2f, 0.9f};
    CHECK_ERR(nf_bijector_rq_spline(1, 2, bw, bh2, ks, -1, &b), NF_ERR_ARG, "the same sum");
    float ks0[1] = {0};
    CHECK_ERR(nf_bijector_rq_spline(1, 2, bw, bh, ks0, -1, &b), NF_ERR_ARG, "knot slopes must be positive");
    CHECK_OK(nf_bijector_power_transform(1, 0.5f, &b));
    if (b) {
        float xs[2] = {3, 1}, ys[2], ls[2] = {0};
        CHECK_OK(nf_bijector_forward(b, xs, 2, ys, ls));
        CHECK(fabsf(ys[0] - 6.25f) < 1e-5f && fabsf(ls[1] - 0.4054651f) < 1e-6f, "power_transform(0.5): %g, log-det %g", ys[0], ls[1]);
        float bad = -3;
        CHECK_ERR(nf_bijector_forward(b, &bad, 1, ys, NULL), NF_ERR_DOMAIN, "1 + power x > 0");
        nf_bijector_free(b);
    }
    /* TFP's power_transform_test: c = 0.2 at x = [-1, 2, -5 + 1e-4]: y = (1 + c x)^(1/c),
     * ildj = (c - 1) log y; the last point is 2e-5 from the domain's edge, where float32's
     * 1 + c x keeps about 3 digits */
    CHECK_OK(nf_bijector_power_transform(1, 0.2f, &b));
    if (b) {
        float xt[3] = {-1, 2, -5 + 1e-4f}, yt[3], back[3], il[3] = {0, 0, 0};
        double want[3] = {0.32768, 5.37824, 3.2e-24};
        CHECK_OK(nf_bijector_forward(b, xt, 3, yt, NULL));
        CHECK_OK(nf_bijector_inverse(b, yt, 3, back, il));
        for (int k = 0; k < 3; k++) {
            double tol = k < 2 ? 1e-6 : 1e-2;
            CHECK(fabs(yt[k] - want[k]) <= tol * want[k], "power_transform(0.2) (TFP) at %g: %g, want %g", (double)xt[k],
                  (double)yt[k], want[k]);
            CHECK(fabs(il[k] - (0.2 - 1) * log((double)yt[k])) <= 1e-4 * (1 + fabs(il[k])),
                  "power_transform(0.2) (TFP) ildj at %g: %g", (double)xt[k], (double)il[k]);
            CHECK(fabsf(back[k] - xt[k]) <= 1e-4f * (1 + fabsf(xt[k])), "power_transform(0.2) round trip at %g: %g",
                  (double)xt[k], (double)back[k]);
        }
        nf_bijector_free(b);
    }
}

void test_bijectors(void) {
    test_fixed_argument_forms();
    test_tfp_test_cases();
    test_image_layers();
    test_tfp_elementwise();
    test_reference_values();
    test_lu_linear();
    test_chain_semantics();
    test_errors();
    test_inline_and_init();
}
