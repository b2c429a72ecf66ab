/*
 * test_spline.c - the rational-quadratic spline (src/bijectors/rqspline.c)
 * at its edges: PyTorch reference values (an nflows-style implementation
 * with autograd, tests/gen_ref_torch.py), points exactly on the knots and at
 * +-B, far outside, extreme parameters (bins at their minimum width), and
 * the spline flows built on it (options, identity start, float round trips).
 */
#include "test.h"
#include "ref_torch.h"
#include "../src/bijectors/rqspline.h"

#include <float.h>
#include <stdlib.h>

#define NRX (sizeof ref_rqs_x / sizeof ref_rqs_x[0])

static void ref_params(float *p) {
    for (size_t k = 0; k < 3 * REF_RQS_K - 1; k++) p[k] = (float)ref_rqs_params[k];
}

static void test_reference(void) {
    float p[3 * REF_RQS_K - 1], gp[3 * REF_RQS_K - 1];
    double sum[3 * REF_RQS_K - 1] = {0};
    ref_params(p);
    for (size_t i = 0; i < NRX; i++) {
        double z, ld = nf__rqs_eval(REF_RQS_K, REF_RQS_B, p, 1, ref_rqs_x[i], &z), gx;
        CHECK_NEAR(z, ref_rqs_z[i], 1e-12, "S(%g) vs PyTorch", ref_rqs_x[i]);
        CHECK_NEAR(ld, ref_rqs_ld[i], 1e-11, "log S'(%g) vs PyTorch", ref_rqs_x[i]);
        nf__rqs_grad(REF_RQS_K, REF_RQS_B, p, 1, ref_rqs_x[i], REF_RQS_GZ, REF_RQS_GL, &gx, gp);
        CHECK_NEAR(gx, ref_rqs_gx[i], 1e-10, "dL/dx at %g vs PyTorch autograd", ref_rqs_x[i]);
        for (size_t k = 0; k < 3 * REF_RQS_K - 1; k++) sum[k] += gp[k];
        double x2;
        double ld2 = nf__rqs_invert(REF_RQS_K, REF_RQS_B, p, 1, ref_rqs_z[i], &x2);
        CHECK_NEAR(x2, ref_rqs_x[i], 1e-12, "S^-1(S(%g))", ref_rqs_x[i]);
        CHECK_NEAR(ld2, ref_rqs_ld[i], 1e-9, "log S' from the inverse at %g", ref_rqs_x[i]);
    }
    /* gp is float: compare with float tolerance */
    for (size_t k = 0; k < 3 * REF_RQS_K - 1; k++)
        CHECK_NEAR(sum[k], ref_rqs_gp[k], 1e-6, "dL/dparam[%zu] vs PyTorch autograd", k);
}

static void test_knots_and_tails(void) {
    float p[3 * REF_RQS_K - 1], gp[3 * REF_RQS_K - 1];
    ref_params(p);
    const double B = REF_RQS_B;
    for (size_t k = 0; k <= REF_RQS_K; k++) {
        double z, x;
        nf__rqs_eval(REF_RQS_K, B, p, 1, ref_rqs_knots_x[k], &z);
        CHECK_NEAR(z, ref_rqs_knots_y[k], 1e-12, "S(knot x_%zu) = knot y_%zu", k, k);
        double ld = nf__rqs_invert(REF_RQS_K, B, p, 1, ref_rqs_knots_y[k], &x);
        CHECK_NEAR(x, ref_rqs_knots_x[k], 1e-12, "S^-1(knot y_%zu) = knot x_%zu", k, k);
        CHECK(isfinite(ld), "log S' at knot %zu is finite", k);
    }
    double z, x;
    double l = nf__rqs_eval(REF_RQS_K, B, p, 1, B, &z);
    CHECK(z == B && fabs(l) < 1e-12, "S(B) = B with slope 1 (log S' = %g)", l);
    l = nf__rqs_invert(REF_RQS_K, B, p, 1, -B, &x);
    CHECK(x == -B && fabs(l) < 1e-12, "S^-1(-B) = -B with slope 1 (log S' = %g)", l);
    const double far[] = {-1e30, -1e6, -B - 1e-12, B + 1e-12, 1e6, 1e30, DBL_MAX, -DBL_MAX};
    for (size_t i = 0; i < sizeof far / sizeof far[0]; i++) {
        double ld = nf__rqs_eval(REF_RQS_K, B, p, 1, far[i], &z), gx;
        CHECK(z == far[i] && ld == 0, "identity tail at %g", far[i]);
        ld = nf__rqs_invert(REF_RQS_K, B, p, 1, far[i], &x);
        CHECK(x == far[i] && ld == 0, "identity tail of the inverse at %g", far[i]);
        nf__rqs_grad(REF_RQS_K, B, p, 1, far[i], 0.5, 2.0, &gx, gp);
        int zero = 1;
        for (size_t k = 0; k < 3 * REF_RQS_K - 1; k++) zero &= gp[k] == 0;
        CHECK(gx == 0.5 && zero, "tail gradient at %g: dx = gz, no parameter gradient", far[i]);
    }
}

/* Random splines up to extreme parameters (bins squeezed to the minimum
 * width next to nearly all-mass bins): the inverse stays in its bin, never
 * NaN, and round-trips; S is monotone. */
static void test_extreme(void) {
    nf_rng *rng = NULL;
    nf_rng_create(77, &rng);
    const size_t Ks[] = {2, 3, 8, 64, NF_RQS_MAX_BINS};
    const double scales[] = {0.1, 3, 30, 300};
    size_t bad_trip = 0, nonfinite = 0, nonmono = 0, trials = 0;
    double worst = 0;
    float *p = malloc(3 * NF_RQS_MAX_BINS * sizeof(float));
    for (size_t a = 0; a < sizeof Ks / sizeof Ks[0]; a++)
        for (size_t b = 0; b < sizeof scales / sizeof scales[0]; b++)
            for (int rep = 0; rep < 40; rep++) {
                size_t K = Ks[a];
                double B = rep % 2 ? 3.0 : 0.5;
                for (size_t k = 0; k < 3 * K - 1; k++) p[k] = (float)(scales[b] * nf_rng_normal(rng));
                double prev = -INFINITY;
                for (int i = 0; i <= 400; i++) {
                    /* 400 steps over [-B - 0.1, B + 0.1] (ends and knots: test_knots_and_tails) */
                    double x = -B - 0.1 + (2 * B + 0.2) * i / 400.0, z, x2;
                    double ld = nf__rqs_eval(K, B, p, 1, x, &z);
                    double ld2 = nf__rqs_invert(K, B, p, 1, z, &x2);
                    trials++;
                    if (!isfinite(z) || !isfinite(ld) || !isfinite(x2) || !isfinite(ld2)) nonfinite++;
                    if (z < prev) nonmono++;
                    prev = z;
                    /* the inverse is accurate: |S(S^-1(z)) - z| at rounding level */
                    double z2;
                    nf__rqs_eval(K, B, p, 1, x2, &z2);
                    double e = fabs(z2 - z);
                    if (e > worst) worst = e;
                    if (e > 1e-9 * B) bad_trip++;
                }
            }
    free(p);
    nf_rng_free(rng);
    CHECK(nonfinite == 0, "extreme splines: %zu of %zu values non-finite", nonfinite, trials);
    CHECK(nonmono == 0, "extreme splines: %zu of %zu steps decrease", nonmono, trials);
    CHECK(bad_trip == 0, "extreme splines: %zu of %zu round trips off (worst |S(S^-1(z)) - z| = %g)", bad_trip,
          trials, worst);
}

static void test_flows(void) {
    nf_rng *rng = NULL;
    nf_rng_create(5, &rng);
    nf_bijector *b = NULL;
    nf_maf_opts m = {.net = {.hidden = {16, 16}, .nhidden = 2, .activation = NF_ACT_RELU}, .spline_bins = 1};
    CHECK(nf_bijector_maf(2, &m, rng, &b) == NF_ERR_ARG && strstr(nf_last_error(), "spline_bins"), "bins = 1 refused");
    m.spline_bins = 129;
    CHECK(nf_bijector_maf(2, &m, rng, &b) == NF_ERR_ARG, "bins = 129 refused");
    m.spline_bins = 8, m.spline_bound = NAN;
    CHECK(nf_bijector_maf(2, &m, rng, &b) == NF_ERR_ARG && strstr(nf_last_error(), "spline_bound"), "NaN bound refused");
    m.spline_bound = -1;
    CHECK(nf_bijector_maf(2, &m, rng, &b) == NF_ERR_ARG, "negative bound refused");
    nf_coupling_opts c = {.net = m.net, .num_masked = 1, .spline_bins = 8, .separate_nets = 1};
    CHECK(nf_bijector_coupling(2, &c, rng, &b) == NF_ERR_ARG, "spline coupling with separate nets refused");

    /* zero-initialised output layers start at the identity */
    m.spline_bound = 0, m.net.zero_last = 1;
    CHECK_OK(nf_bijector_maf(3, &m, rng, &b));
    float x[300], y[300], ldj[100];
    nf_rng_fill_normal(rng, x, 300);
    CHECK_OK(nf_bijector_forward(b, x, 100, y, ldj));
    double e = 0, el = 0;
    for (int i = 0; i < 300; i++) e = fmax(e, fabs(y[i] - x[i]));
    for (int i = 0; i < 100; i++) el = fmax(el, fabs(ldj[i]));
    CHECK(e < 1e-5 && el < 1e-5, "zero_last spline MAF is the identity (max |y - x| %g, |ldj| %g)", e, el);
    nf_bijector_free(b);

    /* large random conditioners: sharp splines; float round trips through
     * both layers, with points on the bounds and far out */
    for (int kind = 0; kind < 2; kind++) {
        nf_coupling_opts cc = {.net = {.hidden = {16}, .nhidden = 1, .activation = NF_ACT_TANH}, .num_masked = 1,
                               .spline_bins = 10, .spline_bound = 2};
        nf_maf_opts mm = {.net = cc.net, .spline_bins = 10, .spline_bound = 2};
        CHECK_OK(kind ? nf_bijector_maf(3, &mm, rng, &b) : nf_bijector_coupling(3, &cc, rng, &b));
        float *P = nf_bijector_params(b);
        for (size_t k = 0; k < nf_bijector_param_count(b); k++) P[k] *= 8;
        float xs[3 * 64], ys[3 * 64], back[3 * 64], l1[64], l2[64];
        for (int i = 0; i < 3 * 64; i++) xs[i] = 5 * nf_rng_uniform(rng) - 2.5f;
        xs[0] = 2, xs[1] = -2, xs[2] = 1e30f, xs[3] = -1e6f, xs[4] = 0, xs[5] = 2;
        CHECK_OK(nf_bijector_forward(b, xs, 64, ys, l1));
        CHECK_OK(nf_bijector_inverse(b, ys, 64, back, l2));
        double worst = 0, lw = 0;
        for (int i = 0; i < 3 * 64; i++) worst = fmax(worst, fabs(back[i] - xs[i]) / (1 + fabs(xs[i])));
        for (int i = 0; i < 64; i++) lw = fmax(lw, fabs(l1[i] + l2[i]));
        CHECK(worst < 1e-4 && lw < 1e-3, "%s: float round trip of sharp splines (rel %g, ldj %g)",
              kind ? "spline maf" : "spline coupling", worst, lw);
        nf_bijector_free(b);
    }
    nf_rng_free(rng);
}

void test_spline(void) {
    test_reference();
    test_knots_and_tails();
    test_extreme();
    test_flows();
}
