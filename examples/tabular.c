/*
 * tabular.c - density estimation on real tabular data: scikit-learn's digits
 * (1797 x 64, dequantised with uniform noise) and breast cancer (569 x 30),
 * comparing Gaussians, MADE, RealNVP, MAF and rational-quadratic spline flows,
 * and the layers around them (batch norm, a mixture base, ActNorm and LU
 * mixing), by test log-likelihood (as in the MAF and NSF papers' tables).
 *
 *   tabular [--quick] [--seed S] FILE...     (the last column, the label, is dropped)
 *
 * Each file is shuffled with a fixed seed and split 70% / 15% / 15% into
 * training, validation and test rows; a standard scaler fitted on the
 * training rows sits inside every model (densities stay in the data's
 * units); training is Adam with minibatches of 100 and early stopping on the
 * validation NLL (patience 20 epochs, best parameters kept).  A file whose
 * name contains "digits" is dequantised: x + u, u ~ U[0, 1).  Prints one
 * Markdown table row per model: test mean log-likelihood (nats per row)
 * with its standard error.  --quick runs tiny models for 2 epochs (tests).
 */
#include "common.h"

typedef struct model {
    const char *name, *spec, *quick;
    float lr;
} model;

static const model MODELS[] = {
    {"Gaussian (diagonal)", "identity", "identity", 1e-3f},
    {"Gaussian (full covariance)", "lu_linear(perm=identity)", "lu_linear(perm=identity)", 1e-2f},
    {"MADE", "maf(layers=1, hidden=[256,256])", "maf(layers=1, hidden=[8])", 1e-3f},
    {"RealNVP", "realnvp(layers=8, hidden=[256,256])", "realnvp(layers=2, hidden=[8])", 1e-4f},
    {"MAF", "maf(layers=5, hidden=[256,256])", "maf(layers=2, hidden=[8])", 1e-3f},
    {"RQ-NSF (coupling)", "chain(nsf(layers=2, hidden=[128,128], bins=8), lu_linear, nsf(layers=2, hidden=[128,128], bins=8))",
     "nsf(layers=2, hidden=[8], bins=4)", 5e-4f},
    {"RQ-NSF (autoregressive)", "maf(layers=3, hidden=[128,128], bins=8)", "maf(layers=1, hidden=[8], bins=4)", 5e-4f},
    {"MAF + batch norm", "chain(batchnorm, maf(hidden=[256,256]), batchnorm, reverse, maf(hidden=[256,256]), batchnorm, reverse, maf(hidden=[256,256]))",
     "chain(batchnorm, maf(hidden=[8]))", 1e-3f},
    {"MAF MoG", "transformed(mog(k=10), maf(layers=5, hidden=[256,256]))", "transformed(mog(k=2), maf(hidden=[8]))", 1e-3f},
    {"Glow-style (ActNorm, LU, spline coupling)",
     "chain(actnorm, lu_linear, nsf(layers=2, hidden=[128,128], bins=8), actnorm, lu_linear, nsf(layers=2, hidden=[128,128], bins=8))",
     "chain(actnorm, lu_linear, nsf(layers=1, hidden=[8], bins=4))", 5e-4f},
};

static void shuffle_rows(float *x, size_t n, size_t d, nf_rng *rng) {
    float *tmp = malloc(d * sizeof(float));
    for (size_t i = n; i-- > 1;) {
        size_t j = (size_t)nf_rng_below(rng, i + 1);
        memcpy(tmp, x + i * d, d * sizeof(float));
        memcpy(x + i * d, x + j * d, d * sizeof(float));
        memcpy(x + j * d, tmp, d * sizeof(float));
    }
    free(tmp);
}

static void run_file(const char *path, int quick, uint64_t seed) {
    float *raw = NULL;
    size_t n, dc;
    TRY(nf_read_table(path, &raw, &n, &dc));
    if (dc < 2) {
        fprintf(stderr, "%s: needs at least one feature column before the label\n", path);
        exit(2);
    }
    size_t d = dc - 1;
    float *x = malloc(n * d * sizeof(float));
    for (size_t i = 0; i < n; i++) memcpy(x + i * d, raw + i * dc, d * sizeof(float));
    free(raw);
    nf_rng *rng = NULL;
    TRY(nf_rng_create(seed, &rng));
    int digits = strstr(path, "digits") != NULL;
    if (digits)
        for (size_t k = 0; k < n * d; k++) x[k] += nf_rng_uniform(rng); /* dequantise */
    shuffle_rows(x, n, d, rng);
    size_t ntr = n * 70 / 100, nva = n * 15 / 100, nte = n - ntr - nva;
    const float *test = x + (ntr + nva) * d;
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    printf("\n%s: %zu rows x %zu features%s; %zu train / %zu validation / %zu test\n\n", base, n, d,
           digits ? " (dequantised)" : "", ntr, nva, nte);
    printf("| model | spec | parameters | test log-likelihood (nats) | epochs | seconds |\n|---|---|---|---|---|---|\n");
    float *lp = malloc(nte * sizeof(float));
    for (size_t m = 0; m < sizeof MODELS / sizeof MODELS[0]; m++) {
        const char *spec = quick ? MODELS[m].quick : MODELS[m].spec;
        nf_flow *f = NULL;
        TRY(nf_flow_from_spec(spec, d, seed, &f));
        TRY(nf_flow_fit_scaler(f, x, ntr));
        double t0 = ex_now();
        size_t epochs = 0;
        if (nf_flow_param_count(f) > 0) {
            nf_train_opts o = nf_train_defaults();
            o.lr = MODELS[m].lr, o.batch = 100, o.seed = seed;
            o.epochs = quick ? 2 : 1000, o.patience = quick ? 2 : 20;
            o.val_split = (float)nva / (float)(ntr + nva);
            nf_train_report r;
            TRY(nf_flow_fit(f, x, ntr + nva, &o, &r));
            epochs = r.epochs;
            nf_train_report_free(&r);
        }
        double secs = ex_now() - t0;
        TRY(nf_flow_log_prob(f, test, nte, lp));
        double s = 0, s2 = 0;
        for (size_t i = 0; i < nte; i++) s += lp[i], s2 += (double)lp[i] * lp[i];
        double mean = s / (double)nte, se = sqrt(fmax(s2 / (double)nte - mean * mean, 0) / (double)nte);
        printf("| %s | `%s` | %zu | %.2f ± %.2f | %zu | %.1f |\n", MODELS[m].name, spec, nf_flow_param_count(f), mean, se,
               epochs, secs);
        fflush(stdout);
        nf_flow_free(f);
    }
    free(lp);
    free(x);
    nf_rng_free(rng);
}

int main(int argc, char **argv) {
    int quick = 0, files = 0;
    uint64_t seed = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], NULL, 10);
        else if (argv[i][0] == '-') {
            fprintf(stderr, "usage: tabular [--quick] [--seed S] FILE...\n");
            return 1;
        }
    }
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seed")) i++;
        else if (argv[i][0] != '-') run_file(argv[i], quick, seed), files++;
    }
    if (!files) {
        fprintf(stderr, "usage: tabular [--quick] [--seed S] FILE...\n  e.g. tabular examples/data/digits.csv examples/data/breast_cancer.csv\n");
        return 1;
    }
    return 0;
}
