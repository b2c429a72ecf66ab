/*
 * logistic.c - TFP Logistic(loc, scale) as an independent d-dimensional
 * distribution (d = 1: the scalar one):
 *   log f(z) = -z - 2 log(1 + e^-z) = -|z| - 2 log1p(e^-|z|),
 *   (log f)'(z) = -tanh(z / 2),  F(z) = sigmoid(z),  z = log(u / (1 - u)).
 */
#include "locscale.h"

static double lg_log_pdf(double z, double c) {
    (void)c;
    return -fabs(z) - 2 * log1p(exp(-fabs(z)));
}
static double lg_dlog_pdf(double z, double c) {
    (void)c;
    return -tanh(z / 2);
}
static double lg_cdf(double z, double c) {
    (void)c;
    return nf__sigmoid(z);
}
static double lg_draw(nf_rng *rng, double c) {
    (void)c;
    double u;
    do u = nf_rng_uniform(rng);
    while (u <= 0);
    return log(u) - log1p(-u);
}

static const nf_ls_kernel logistic_kernel = {"logistic", lg_log_pdf, lg_dlog_pdf, lg_cdf, lg_draw};

nf_status nf_dist_logistic(size_t d, float loc, float scale, nf_dist **out) {
    return nf__locscale_create("nf_dist_logistic", &logistic_kernel, d, loc, scale, out);
}
