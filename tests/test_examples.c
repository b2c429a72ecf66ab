/*
 * test_examples.c - runs the example programs and checks what they print.
 */
#include "test.h"

#include <stdlib.h>

/* Finds the line starting with `key` in `out` and parses up to `max`
 * numbers after its '='.  Returns how many were read. */
static int numbers_after(const char *out, const char *key, double *v, int max) {
    const char *p = strstr(out, key);
    if (!p) return 0;
    p = strchr(p, '=');
    if (!p) return 0;
    p++;
    int k = 0;
    while (k < max && *p && *p != '\n') {
        char *end;
        double x = strtod(p, &end);
        if (end != p) {
            v[k++] = x;
            p = end;
        } else
            p++;
    }
    return k;
}

/* Runs cmd, capturing up to cap - 1 bytes of its output; returns its exit
 * status, or -1 if it could not be started. */
static int run_capture(const char *cmd, char *out, size_t cap) {
    FILE *f = popen(cmd, "r");
    CHECK(f != NULL, "could not run %s", cmd);
    if (!f) return -1;
    size_t len = fread(out, 1, cap - 1, f);
    out[len] = 0;
    return pclose(f);
}

static void check_walkthrough(const char *dir) {
    char cmd[1024], out[8192] = {0};
    snprintf(cmd, sizeof cmd, "%s/walkthrough", dir);
    int rc = run_capture(cmd, out, sizeof out);
    CHECK(rc == 0, "walkthrough exited with %d", rc);
    double v[4];
    /* The seed's numbers, to the 6 significant digits printed. */
    CHECK(numbers_after(out, "Normal(0,1).log_prob(2.01)", v, 1) == 1 && v[0] == -2.93899,
          "walkthrough: Normal(0,1).log_prob(2.01) printed as -2.93899");
    CHECK(numbers_after(out, "Uniform.log_prob(Phi(2.01))", v, 1) == 1 && v[0] == -2.93899,
          "walkthrough: the normal CDF route gives the same number");
    const double lp[3] = {-0.918939, -1.04394, -1.41894}, tl[3] = {-1.61209, -1.73709, -2.11209},
                 cd[3] = {0.5, 0.691462, 0.841345};
    double w[8];
    int k = numbers_after(out, "Normal(0,1).log_prob([0, 0.5, 1])", w, 8);
    CHECK(k == 3 && w[0] == lp[0] && w[1] == lp[1] && w[2] == lp[2], "walkthrough: Normal log_prob([0, 0.5, 1])");
    k = numbers_after(out, "transformed(Normal, affine_scalar(0, 2)).log_prob(2x)", w, 8);
    CHECK(k == 3 && w[0] == tl[0] && w[1] == tl[1] && w[2] == tl[2], "walkthrough: transformed log_prob");
    k = numbers_after(out, "transformed(...).cdf(2x)", w, 8);
    CHECK(k == 3 && w[0] == cd[0] && w[1] == cd[1] && w[2] == cd[2], "walkthrough: transformed cdf");
    k = numbers_after(out, "mean, variance of normal_cdf.inverse(u)", w, 8);
    CHECK(k == 2 && fabs(w[0]) < 0.02 && fabs(w[1] - 1) < 0.03, "walkthrough: standard normal moments");
    k = numbers_after(out, "inline leaky_relu(0.5).forward", w, 8);
    CHECK(k == 4 && w[0] == -1 && w[1] == -0.25 && w[3] == 2, "walkthrough: inline leaky relu");
}

/* The tabular comparison end to end (quick mode: tiny models, 2 epochs). */
static void check_tabular(const char *dir) {
    char cmd[1024], out[16384] = {0};
    snprintf(cmd, sizeof cmd, "%s/tabular --quick examples/data/breast_cancer.csv", dir);
    CHECK(run_capture(cmd, out, sizeof out) == 0, "tabular exited with an error: %s", out);
    CHECK(strstr(out, "569 rows x 30 features; 398 train / 85 validation / 86 test") != NULL, "tabular: the split");
    const char *names[] = {"| Gaussian (diagonal) |", "| Gaussian (full covariance) |", "| MADE |", "| RealNVP |",
                           "| MAF |", "| RQ-NSF (coupling) |", "| RQ-NSF (autoregressive) |", "| MAF + batch norm |",
                           "| MAF MoG |", "| Glow-style (ActNorm, LU, spline coupling) |"};
    double ll[10];
    for (int m = 0; m < 10; m++) {
        const char *p = strstr(out, names[m]);
        ll[m] = NAN;
        for (int bar = 0; p && bar < 3; bar++) p = strchr(p + 1, '|'); /* the 4th column */
        if (p) ll[m] = strtod(p + 1, NULL);
        CHECK(isfinite(ll[m]), "tabular: %s has a finite test log-likelihood", names[m]);
    }
    /* correlated features: a full covariance beats the diagonal Gaussian */
    CHECK(ll[1] > ll[0] + 3, "tabular: full-covariance Gaussian %.2f vs diagonal %.2f", ll[1], ll[0]);
}

/* The image flows from the C API (quick mode): every model trains and gives a finite figure
 * in bits per dimension, below the 4.09 bits of 17 equally likely grey levels. */
static void check_images(const char *dir) {
    char cmd[1024], out[8192] = {0};
    snprintf(cmd, sizeof cmd, "%s/images --quick examples/data/digits.csv", dir);
    CHECK(run_capture(cmd, out, sizeof out) == 0, "images exited with an error: %s", out);
    CHECK(strstr(out, "1257 train / 269 validation / 271 test") != NULL, "images: the split");
    const char *names[] = {"| Glow, spline couplings |", "| Real NVP multi-scale, spline couplings |", "| spline MAF (MLP, flat vector) |"};
    for (int m = 0; m < 3; m++) {
        const char *p = strstr(out, names[m]);
        for (int bar = 0; p && bar < 4; bar++) p = strchr(p + 1, '|'); /* the 5th column */
        double bpd = p ? strtod(p + 1, NULL) : NAN;
        CHECK(isfinite(bpd) && bpd > 0 && bpd < log2(17.0), "images: %s %.3f bits per dimension", names[m], bpd);
    }
}

void test_examples(const char *dir) {
    check_walkthrough(dir);
    check_tabular(dir);
    check_images(dir);
}
