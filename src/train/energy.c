/*
 * energy.c - the four 2-D test energies of Rezende & Mohamed 2015 (Table 1),
 * as unnormalised log-densities log p~(z) = -U(z) with their gradients:
 *   w1 = sin(2 pi z1 / 4), w2 = 3 exp(-((z1 - 1) / 0.6)^2 / 2),
 *   w3 = 3 sigmoid((z1 - 1) / 0.3)
 *   U1 = ((|z| - 2) / 0.4)^2 / 2 - log(e^{-((z1-2)/0.6)^2/2} + e^{-((z1+2)/0.6)^2/2})
 *   U2 = ((z2 - w1) / 0.4)^2 / 2
 *   U3 = -log(e^{-((z2 - w1)/0.35)^2/2} + e^{-((z2 - w1 + w2)/0.35)^2/2})
 *   U4 = -log(e^{-((z2 - w1)/0.4)^2/2} + e^{-((z2 - w1 + w3)/0.35)^2/2})
 * U2-U4 do not decay along z1 (the paper draws them on [-4, 4]^2), so a
 * density fitted to them would spread without bound; nflow adds the
 * envelope (z1 / 4)^8 / 2 to them, which leaves [-3, 3] nearly untouched
 * (at most 0.05 nats) and makes them normalisable.
 */
#include "../core/core.h"

#include <string.h>

#define PI 3.14159265358979323846

/* log(e^a + e^b) and its partials da, db (softmax weights) */
static double lse2(double a, double b, double *wa, double *wb) {
    double m = fmax(a, b), ea = exp(a - m), eb = exp(b - m), s = ea + eb;
    *wa = ea / s, *wb = eb / s;
    return m + log(s);
}

/* -U and its gradient for one point of energy k (1..4). */
static double neg_u(int k, double z1, double z2, double *g1, double *g2) {
    double w1 = sin(2 * PI * z1 / 4), dw1 = cos(2 * PI * z1 / 4) * 2 * PI / 4;
    double lp = 0;
    *g1 = *g2 = 0;
    if (k == 1) {
        double r = sqrt(z1 * z1 + z2 * z2), a = (r - 2) / 0.4;
        double pa = -0.5 * ((z1 - 2) / 0.6) * ((z1 - 2) / 0.6), pb = -0.5 * ((z1 + 2) / 0.6) * ((z1 + 2) / 0.6), wa, wb;
        lp = -0.5 * a * a + lse2(pa, pb, &wa, &wb);
        double dr = r > 0 ? -a / 0.4 / r : 0;
        *g1 = dr * z1 + wa * (-(z1 - 2) / 0.36) + wb * (-(z1 + 2) / 0.36);
        *g2 = dr * z2;
        return lp;
    }
    if (k == 2) {
        double a = (z2 - w1) / 0.4;
        lp = -0.5 * a * a;
        *g2 = -a / 0.4, *g1 = a / 0.4 * dw1;
    } else {
        double s1 = k == 3 ? 0.35 : 0.4, s2 = 0.35, add, dadd;
        if (k == 3) {
            double e = exp(-0.5 * ((z1 - 1) / 0.6) * ((z1 - 1) / 0.6));
            add = 3 * e, dadd = 3 * e * (-(z1 - 1) / 0.36);
        } else {
            double sg = nf__sigmoid((z1 - 1) / 0.3);
            add = 3 * sg, dadd = 3 * sg * (1 - sg) / 0.3;
        }
        double a = (z2 - w1) / s1, b = (z2 - w1 + add) / s2, wa, wb;
        lp = lse2(-0.5 * a * a, -0.5 * b * b, &wa, &wb);
        *g2 = wa * (-a / s1) + wb * (-b / s2);
        *g1 = wa * (a / s1 * dw1) + wb * (-b / s2 * (dadd - dw1));
    }
    /* envelope along z1 */
    double q = z1 / 4, q2 = q * q, q4 = q2 * q2;
    lp -= 0.5 * q4 * q4;
    *g1 -= 4 * q4 * q2 * q / 4;
    return lp;
}

static int energy(int k, const float *x, size_t n, size_t d, float *logp, float *grad) {
    if (d != 2) return 1;
    for (size_t i = 0; i < n; i++) {
        double g1, g2;
        logp[i] = (float)neg_u(k, x[2 * i], x[2 * i + 1], &g1, &g2);
        if (grad) grad[2 * i] = (float)g1, grad[2 * i + 1] = (float)g2;
    }
    return 0;
}
/* The callbacks of U1..U4 (the user pointer is unused). */
#define ENERGY_FN(name, k)                                                                  \
    static int name(void *u, const float *x, size_t n, size_t d, float *lp, float *g) { \
        (void)u;                                                                            \
        return energy(k, x, n, d, lp, g);                                                   \
    }
ENERGY_FN(u1, 1)
ENERGY_FN(u2, 2)
ENERGY_FN(u3, 3)
ENERGY_FN(u4, 4)
#undef ENERGY_FN

nf_status nf_energy_target(const char *name, nf_log_density_fn *fn) {
    static const struct {
        const char *name;
        nf_log_density_fn fn;
    } t[] = {{"u1", u1}, {"u2", u2}, {"u3", u3}, {"u4", u4}};
    if (!name || !fn) return nf__err(NF_ERR_ARG, "nf_energy_target: NULL argument");
    for (size_t i = 0; i < 4; i++)
        if (!strcmp(name, t[i].name)) {
            *fn = t[i].fn;
            return NF_OK;
        }
    return nf__err(NF_ERR_ARG, "nf_energy_target: unknown target '%s' (known: u1, u2, u3, u4)", name);
}
