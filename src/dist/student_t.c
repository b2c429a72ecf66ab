/*
 * student_t.c - TFP StudentT(df, loc, scale) as an independent
 * d-dimensional distribution (d = 1: the scalar one), df > 0 fixed:
 *   log f(z) = lgamma((v+1)/2) - lgamma(v/2) - log(v pi)/2 - (v+1)/2 log(1 + z^2/v),
 *   (log f)'(z) = -(v+1) z / (v + z^2),
 *   F(z) = 1 - I_t(v/2, 1/2)/2 for z >= 0 (t = v / (v + z^2)), I_t(v/2, 1/2)/2 below,
 *   z = N / sqrt(G / v) with N standard normal and G ~ chi^2_v = 2 Gamma(v/2).
 */
#include "locscale.h"

#include <math.h>

static double st_log_pdf(double z, double v) {
    return lgamma((v + 1) / 2) - lgamma(v / 2) - 0.5 * log(v * 3.14159265358979323846) - (v + 1) / 2 * log1p(z * z / v);
}
static double st_dlog_pdf(double z, double v) { return -(v + 1) * z / (v + z * z); }
static double st_cdf(double z, double v) {
    double h = 0.5 * nf__betainc(v / 2, 0.5, v / (v + z * z));
    return z >= 0 ? 1 - h : h;
}
static double st_draw(nf_rng *rng, double v) {
    double g = 2 * nf__rng_gamma(rng, v / 2);
    return nf_rng_normal(rng) / sqrt(g / v);
}

static const nf_ls_kernel student_t_kernel = {"student_t", st_log_pdf, st_dlog_pdf, st_cdf, st_draw};

nf_status nf_dist_student_t(size_t d, float df, float loc, float scale, nf_dist **out) {
    const char *fn = "nf_dist_student_t";
    if (!(df > 0) || !isfinite(df)) return nf__err(NF_ERR_DOMAIN, "%s: df must be finite and > 0, got %g", fn, (double)df);
    return nf__locscale_create_shape(fn, &student_t_kernel, d, loc, scale, df, out);
}
