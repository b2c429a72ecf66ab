/*
 * laplace.c - TFP Laplace(loc, scale) as an independent d-dimensional
 * distribution (d = 1: the scalar one):
 *   log f(z) = -|z| - log 2,  (log f)'(z) = -sign(z),
 *   F(z) = e^z / 2 (z < 0), 1 - e^-z / 2 (z >= 0),
 *   z = -sign(v) log(1 - 2|v|) with v ~ U(-1/2, 1/2).
 */
#include "locscale.h"

static double lp_log_pdf(double z, double c) {
    (void)c;
    return -fabs(z) - NF_LN2;
}
static double lp_dlog_pdf(double z, double c) {
    (void)c;
    return z > 0 ? -1 : z < 0 ? 1 : 0;
}
static double lp_cdf(double z, double c) {
    (void)c;
    return z < 0 ? 0.5 * exp(z) : 1 - 0.5 * exp(-z);
}
static double lp_draw(nf_rng *rng, double c) {
    (void)c;
    double v;
    do v = nf_rng_uniform(rng) - 0.5;
    while (v <= -0.5);
    return v < 0 ? log1p(2 * v) : -log1p(-2 * v);
}

static const nf_ls_kernel laplace_kernel = {"laplace", lp_log_pdf, lp_dlog_pdf, lp_cdf, lp_draw};

nf_status nf_dist_laplace(size_t d, float loc, float scale, nf_dist **out) {
    return nf__locscale_create("nf_dist_laplace", &laplace_kernel, d, loc, scale, out);
}
