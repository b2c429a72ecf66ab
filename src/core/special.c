/*
 * special.c - the standard normal CDF and its inverse, the regularised
 * incomplete beta function (continued fraction, Numerical Recipes' scheme)
 * and a Gamma sampler (Marsaglia & Tsang), for Student's t.
 *
 * ndtr(x) = erfc(-x / sqrt 2) / 2, accurate in both tails.
 * ndtri(p): Acklam's rational approximation (relative error 1.15e-9) refined
 * by one Halley step on ndtr, which brings it to double precision.
 */
#include "core.h"

double nf__ndtr(double x) { return 0.5 * erfc(-x * NF_SQRT1_2); }

double nf__ndtri(double p) {
    static const double a[6] = {-3.969683028665376e+01, 2.209460984245205e+02,
                                -2.759285104469687e+02, 1.383577518672690e+02,
                                -3.066479806614716e+01, 2.506628277459239e+00};
    static const double b[5] = {-5.447609879822406e+01, 1.615858368580409e+02,
                                -1.556989798598866e+02, 6.680131188771972e+01,
                                -1.328068155288572e+01};
    static const double c[6] = {-7.784894002430293e-03, -3.223964580411365e-01,
                                -2.400758277161838e+00, -2.549732539343734e+00,
                                4.374664141464968e+00,  2.938163982698783e+00};
    static const double d[4] = {7.784695709041462e-03, 3.224671290700398e-01,
                                2.445134137142996e+00, 3.754408661907416e+00};
    const double plow = 0.02425, phigh = 1 - plow;
    double x;
    if (p <= 0) return -INFINITY;
    if (p >= 1) return INFINITY;
    if (p < plow) {
        double q = sqrt(-2 * log(p));
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
    } else if (p <= phigh) {
        double q = p - 0.5, r = q * q;
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
            (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
    } else {
        double q = sqrt(-2 * log1p(-p));
        x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
    }
    /* One Halley step: e = Phi(x) - p, u = e / phi(x). */
    double e = nf__ndtr(x) - p;
    double u = e * exp(0.5 * x * x + NF_LOG_SQRT_2PI);
    x = x - u / (1 + 0.5 * x * u);
    return x;
}

/* The continued fraction of I_x(a, b) (modified Lentz), for x < (a + 1) / (a + b + 2). */
static double betacf(double a, double b, double x) {
    const double tiny = 1e-300;
    double qab = a + b, qap = a + 1, qam = a - 1, c = 1, d = 1 - qab * x / qap;
    if (fabs(d) < tiny) d = tiny;
    d = 1 / d;
    double h = d;
    for (int m = 1; m <= 300; m++) {
        double m2 = 2.0 * m, aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1 + aa * d, c = 1 + aa / c;
        if (fabs(d) < tiny) d = tiny;
        if (fabs(c) < tiny) c = tiny;
        d = 1 / d, h *= d * c;
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1 + aa * d, c = 1 + aa / c;
        if (fabs(d) < tiny) d = tiny;
        if (fabs(c) < tiny) c = tiny;
        d = 1 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1) < 1e-15) break;
    }
    return h;
}

double nf__betainc(double a, double b, double x) {
    if (!(x > 0)) return 0;
    if (!(x < 1)) return 1;
    double lf = lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x);
    if (x < (a + 1) / (a + b + 2)) return exp(lf) * betacf(a, b, x) / a;
    return 1 - exp(lf) * betacf(b, a, 1 - x) / b;
}

double nf__rng_gamma(nf_rng *rng, double alpha) {
    if (alpha < 1) { /* Gamma(a) = Gamma(a + 1) U^(1/a) */
        double u;
        do u = nf_rng_uniform(rng);
        while (u <= 0);
        return nf__rng_gamma(rng, alpha + 1) * pow(u, 1 / alpha);
    }
    double d = alpha - 1.0 / 3, c = 1 / sqrt(9 * d); /* Marsaglia & Tsang 2000 */
    for (;;) {
        double z = nf_rng_normal(rng), v = 1 + c * z;
        if (v <= 0) continue;
        v = v * v * v;
        double u = nf_rng_uniform(rng);
        if (u <= 0) continue;
        if (log(u) < 0.5 * z * z + d - d * v + d * log(v)) return d * v;
    }
}
