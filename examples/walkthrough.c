/*
 * walkthrough.c - the seed 001 walkthrough of TensorFlow Probability's
 * distributions and bijectors, in nflow.
 *
 *   1. Normal(0,1).log_prob(2.01) = -2.938989, and the same number from
 *      Uniform(0,1).log_prob(normal_cdf.forward(x)) + normal_cdf.fldj(x):
 *      a normal is a uniform pushed through the inverse normal CDF.
 *   2. A transformed distribution: Normal(0,1) through y = 2x.  Its
 *      log-density at z = 2x is log N(x) - log 2, its cdf at z is Phi(x).
 *   3. Sampling: normal_cdf.inverse(u) for uniform u is standard normal.
 *   4. A user-defined (inline) bijector: the tutorial's leaky ReLU.
 *
 * Numbers are printed to 6 significant digits, the precision the seed
 * quotes them to.  Note that 2.01f is 2.00999999 in float; nflow computes in
 * double and rounds once, giving -2.9389884 (the exact value for that input
 * is -2.93898851), where float32 arithmetic in TensorFlow or PyTorch gives
 * -2.9389887: both are -2.93899.
 *
 * Build and run:  make && ./build/examples/walkthrough
 * (forward = base -> data, sampling; inverse = data -> base, density.)
 */
#include "nflow.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define TRY(expr)                                                                     \
    do {                                                                              \
        nf_status s_ = (expr);                                                        \
        if (s_ != NF_OK) {                                                            \
            fprintf(stderr, "walkthrough: %s\n  -> %s\n", #expr, nf_last_error());    \
            exit(1);                                                                  \
        }                                                                             \
    } while (0)

static void print_vec(const char *label, const float *v, size_t n) {
    printf("%-52s = [", label);
    for (size_t i = 0; i < n; i++) printf("%s%.6g", i ? ", " : "", v[i]);
    printf("]\n");
}

/* The tutorial's leaky ReLU, written as callbacks (alpha = 0.5). */
static int lrelu_fwd(void *u, const float *x, float *y, size_t n, size_t d) {
    float a = *(const float *)u;
    for (size_t i = 0; i < n * d; i++) y[i] = x[i] >= 0 ? x[i] : a * x[i];
    return 0;
}
static int lrelu_inv(void *u, const float *y, float *x, size_t n, size_t d) {
    float a = *(const float *)u;
    for (size_t i = 0; i < n * d; i++) x[i] = y[i] >= 0 ? y[i] : y[i] / a;
    return 0;
}
static int lrelu_fldj(void *u, const float *x, float *ldj, size_t n, size_t d) {
    float a = *(const float *)u;
    for (size_t i = 0; i < n; i++) {
        ldj[i] = 0;
        for (size_t j = 0; j < d; j++) ldj[i] += x[i * d + j] < 0 ? logf(a) : 0.0f;
    }
    return 0;
}

int main(void) {
    nf_dist *normal = NULL, *uniform = NULL;
    nf_bijector *ncdf = NULL;
    TRY(nf_dist_normal(0, 1, &normal));
    TRY(nf_dist_uniform(0, 1, &uniform));
    TRY(nf_bijector_normal_cdf(1, &ncdf));

    /* 1. */
    float x = 2.01f, lp, u, fldj, lu;
    TRY(nf_dist_log_prob(normal, &x, 1, &lp));
    printf("%-52s = %.6g\n", "Normal(0,1).log_prob(2.01)", lp);
    TRY(nf_bijector_forward(ncdf, &x, 1, &u, &fldj));
    TRY(nf_dist_log_prob(uniform, &u, 1, &lu));
    printf("%-52s = %.6g\n", "Uniform.log_prob(Phi(2.01)) + Phi.fldj(2.01)", lu + fldj);

    /* 2. */
    float xs[3] = {0, 0.5f, 1}, lps[3], zs[3], cdfx[3], cdfz[3];
    TRY(nf_dist_log_prob(normal, xs, 3, lps));
    print_vec("Normal(0,1).log_prob([0, 0.5, 1])", lps, 3);
    nf_dist *stretched = NULL, *base = NULL;
    nf_bijector *twice = NULL;
    TRY(nf_dist_normal(0, 1, &base));
    TRY(nf_bijector_affine_scalar(1, 0, 2, &twice));
    TRY(nf_bijector_forward(twice, xs, 3, zs, NULL));
    TRY(nf_dist_transformed(base, twice, &stretched)); /* owns base and twice now */
    TRY(nf_dist_log_prob(stretched, zs, 3, lps));
    print_vec("transformed(Normal, affine_scalar(0, 2)).log_prob(2x)", lps, 3);
    TRY(nf_dist_cdf(stretched, zs, 3, cdfz));
    print_vec("transformed(...).cdf(2x)", cdfz, 3);
    TRY(nf_dist_cdf(normal, xs, 3, cdfx));
    print_vec("Normal(0,1).cdf([0, 0.5, 1])", cdfx, 3);

    /* 3. */
    enum { M = 100000 };
    float *us = malloc(M * sizeof(float)), *zz = malloc(M * sizeof(float));
    if (!us || !zz) return 1;
    nf_rng *rng = NULL;
    TRY(nf_rng_create(2024, &rng));
    TRY(nf_dist_sample(uniform, rng, M, us));
    for (size_t i = 0; i < M; i++) /* keep u inside (0, 1): [0, 1) may give 0 */
        if (us[i] == 0.0f) us[i] = 0x1.0p-25f;
    TRY(nf_bijector_inverse(ncdf, us, M, zz, NULL));
    double m1 = 0, m2 = 0;
    for (size_t i = 0; i < M; i++) m1 += zz[i], m2 += (double)zz[i] * zz[i];
    m1 /= M, m2 = m2 / M - m1 * m1;
    printf("%-52s = [%.4f, %.4f]\n", "mean, variance of normal_cdf.inverse(u), 1e5 draws", m1, m2);

    /* 4. */
    float alpha = 0.5f, pts[4] = {-2, -0.5f, 0.5f, 2}, ys[4], back[4], ildj[4];
    nf_inline_fns fns = {.forward = lrelu_fwd, .inverse = lrelu_inv, .forward_log_det = lrelu_fldj,
                         .monotone = 1};
    nf_bijector *lrelu = NULL;
    TRY(nf_bijector_inline(1, "leaky_relu_inline", &fns, &alpha, &lrelu));
    TRY(nf_bijector_forward(lrelu, pts, 4, ys, NULL));
    TRY(nf_bijector_inverse(lrelu, ys, 4, back, ildj));
    print_vec("inline leaky_relu(0.5).forward([-2, -0.5, 0.5, 2])", ys, 4);
    print_vec("inline leaky_relu(0.5).ildj(y)", ildj, 4);

    free(us), free(zz);
    nf_rng_free(rng);
    nf_bijector_free(lrelu);
    nf_bijector_free(ncdf);
    nf_dist_free(stretched);
    nf_dist_free(normal);
    nf_dist_free(uniform);
    return 0;
}
