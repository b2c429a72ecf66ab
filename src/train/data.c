/*
 * data.c - 2-D toy data sets.
 *   moons:        scikit-learn's make_moons(n, noise) (shuffled)
 *   circles:      scikit-learn's make_circles(n, noise, factor=0.8)
 *   8gaussians, checkerboard, spirals, pinwheel: the generators of FFJORD
 *                 (Grathwohl et al. 2019), with `noise` as extra Gaussian
 *                 noise on top of their own spread.
 */
#include "../core/core.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#define PI 3.14159265358979323846

static void shuffle_rows(nf_rng *rng, float *x, int *lab, size_t n) {
    for (size_t i = n; i-- > 1;) {
        size_t j = (size_t)nf_rng_below(rng, i + 1);
        float a = x[2 * i], b = x[2 * i + 1];
        x[2 * i] = x[2 * j], x[2 * i + 1] = x[2 * j + 1];
        x[2 * j] = a, x[2 * j + 1] = b;
        if (lab) {
            int t = lab[i];
            lab[i] = lab[j], lab[j] = t;
        }
    }
}

static void add_noise(nf_rng *rng, float *x, size_t n, float noise) {
    if (noise > 0)
        for (size_t i = 0; i < 2 * n; i++) x[i] += noise * nf_rng_normal(rng);
}

/* linspace(0, end, m)[i] */
static double lin(size_t i, size_t m, double end) { return m > 1 ? end * (double)i / (double)(m - 1) : 0; }

static void moons(nf_rng *rng, size_t n, float *x, int *lab) {
    size_t nout = n / 2, nin = n - nout;
    for (size_t i = 0; i < nout; i++) {
        double t = lin(i, nout, PI);
        x[2 * i] = (float)cos(t), x[2 * i + 1] = (float)sin(t);
        if (lab) lab[i] = 0;
    }
    for (size_t i = 0; i < nin; i++) {
        double t = lin(i, nin, PI);
        x[2 * (nout + i)] = (float)(1 - cos(t)), x[2 * (nout + i) + 1] = (float)(1 - sin(t) - 0.5);
        if (lab) lab[nout + i] = 1;
    }
    shuffle_rows(rng, x, lab, n);
}

static void circles(nf_rng *rng, size_t n, float *x, int *lab) {
    size_t nout = n / 2, nin = n - nout;
    for (size_t i = 0; i < nout; i++) {
        double t = 2 * PI * (double)i / (double)nout;
        x[2 * i] = (float)cos(t), x[2 * i + 1] = (float)sin(t);
        if (lab) lab[i] = 0;
    }
    for (size_t i = 0; i < nin; i++) {
        double t = 2 * PI * (double)i / (double)nin;
        x[2 * (nout + i)] = (float)(0.8 * cos(t)), x[2 * (nout + i) + 1] = (float)(0.8 * sin(t));
        if (lab) lab[nout + i] = 1;
    }
    shuffle_rows(rng, x, lab, n);
}

static void gaussians8(nf_rng *rng, size_t n, float *x, int *lab) {
    const double r = 1 / sqrt(2.0);
    const double c[8][2] = {{1, 0}, {-1, 0}, {0, 1}, {0, -1}, {r, r}, {r, -r}, {-r, r}, {-r, -r}};
    for (size_t i = 0; i < n; i++) {
        int k = (int)nf_rng_below(rng, 8);
        x[2 * i] = (float)((4 * c[k][0] + 0.5 * nf_rng_normal(rng)) / 1.414);
        x[2 * i + 1] = (float)((4 * c[k][1] + 0.5 * nf_rng_normal(rng)) / 1.414);
        if (lab) lab[i] = k;
    }
}

static void checkerboard(nf_rng *rng, size_t n, float *x, int *lab) {
    for (size_t i = 0; i < n; i++) {
        double x1 = 4.0 * nf_rng_uniform(rng) - 2;
        double x2 = nf_rng_uniform(rng) - 2.0 * (double)nf_rng_below(rng, 2);
        x2 += fmod(floor(x1) + 4, 2); /* floor(x1) % 2 with Python's sign rule */
        x[2 * i] = (float)(2 * x1), x[2 * i + 1] = (float)(2 * x2);
        if (lab) lab[i] = 0;
    }
}

static void spirals(nf_rng *rng, size_t n, float *x, int *lab) {
    for (size_t i = 0; i < n; i++) {
        double t = sqrt(nf_rng_uniform(rng)) * 540 * 2 * PI / 360;
        double a = -cos(t) * t + 0.5 * nf_rng_uniform(rng), b = sin(t) * t + 0.5 * nf_rng_uniform(rng);
        int k = i < n / 2 ? 0 : 1;
        if (k) a = -a, b = -b;
        x[2 * i] = (float)(a / 3 + 0.1 * nf_rng_normal(rng));
        x[2 * i + 1] = (float)(b / 3 + 0.1 * nf_rng_normal(rng));
        if (lab) lab[i] = k;
    }
    shuffle_rows(rng, x, lab, n);
}

static void pinwheel(nf_rng *rng, size_t n, float *x, int *lab) {
    const int classes = 5;
    const double rstd = 0.3, tstd = 0.1, rate = 0.25;
    for (size_t i = 0; i < n; i++) {
        int k = (int)(i * (size_t)classes / (n ? n : 1));
        double f0 = rstd * nf_rng_normal(rng) + 1, f1 = tstd * nf_rng_normal(rng);
        double ang = 2 * PI * k / classes + rate * exp(f0);
        double c = cos(ang), s = sin(ang);
        x[2 * i] = (float)(2 * (f0 * c - f1 * s));
        x[2 * i + 1] = (float)(2 * (f0 * s + f1 * c));
        if (lab) lab[i] = k;
    }
    shuffle_rows(rng, x, lab, n);
}

typedef void (*gen_fn)(nf_rng *, size_t, float *, int *);
static const struct {
    const char *name;
    gen_fn fn;
} gens[] = {{"moons", moons},     {"circles", circles},  {"8gaussians", gaussians8}, {"checkerboard", checkerboard},
            {"spirals", spirals}, {"pinwheel", pinwheel}};

nf_status nf_data_generate(const char *name, nf_rng *rng, size_t n, float noise, float *x, int *labels) {
    const char *fn = "nf_data_generate";
    if (!name || !rng || (n && !x)) return nf__err(NF_ERR_ARG, "%s: NULL argument", fn);
    if (!(noise >= 0) || !isfinite(noise))
        return nf__err(NF_ERR_ARG, "%s: noise must be finite and >= 0, got %g", fn, (double)noise);
    for (size_t g = 0; g < sizeof gens / sizeof gens[0]; g++)
        if (!strcmp(name, gens[g].name)) {
            gens[g].fn(rng, n, x, labels);
            add_noise(rng, x, n, noise);
            return NF_OK;
        }
    char known[256];
    size_t len = 0;
    for (size_t g = 0; g < sizeof gens / sizeof gens[0]; g++)
        len += (size_t)snprintf(known + len, sizeof known - len, "%s%s", g ? ", " : "", gens[g].name);
    return nf__err(NF_ERR_ARG, "%s: unknown data set '%s' (known: %s)", fn, name, known);
}

const char *nf_data_name(size_t k) { return k < sizeof gens / sizeof gens[0] ? gens[k].name : NULL; }

nf_status nf_data_moons(nf_rng *rng, size_t n, float noise, float *x, int *labels) {
    return nf_data_generate("moons", rng, n, noise, x, labels);
}
