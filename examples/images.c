/*
 * images.c - image flows from the C API: scikit-learn's digits as 1 x 8 x 8
 * images (1797 of them, 17 grey levels), Glow and Real NVP's multi-scale
 * flow beside a spline MAF that sees the same 64 numbers as a flat vector,
 * by test bits per dimension (docs/images.md).
 *
 *   images [--quick] [--seed S] [examples/data/digits.csv]
 *
 * The label column is dropped; rows are shuffled with the seed and split
 * 70% / 15% / 15%; training dequantises the integer pixels with fresh
 * U(0, 1) noise every epoch (nf_train_opts.dequantize), the validation and
 * test rows with one fixed draw; a standard scaler fitted to the training
 * rows sits inside every model; Adam at 1e-3, batches of 100, early
 * stopping (patience 20).  Bits per dimension = test NLL / (64 ln 2).
 * --quick: tiny models for 2 epochs (tests).
 */
#include "common.h"

typedef struct model {
    const char *name, *spec, *quick;
} model;

static const model MODELS[] = {
    {"Glow, spline couplings", "glow(levels=2, steps=4, hidden=[64,64], bins=8)", "glow(levels=2, steps=1, hidden=[4], bins=4)"},
    {"Real NVP multi-scale, spline couplings", "realnvp_multiscale(levels=2, steps=3, hidden=[64,64], bins=8)",
     "realnvp_multiscale(levels=2, steps=1, hidden=[4], bins=4)"},
    {"spline MAF (MLP, flat vector)", "maf(layers=5, hidden=[128,128], bins=8)", "maf(layers=1, hidden=[8], bins=4)"},
};

int main(int argc, char **argv) {
    int quick = 0;
    uint64_t seed = 1;
    const char *path = "examples/data/digits.csv";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], NULL, 10);
        else if (argv[i][0] != '-') path = argv[i];
        else {
            fprintf(stderr, "usage: images [--quick] [--seed S] [digits.csv]\n");
            return 1;
        }
    }
    float *raw = NULL;
    size_t n, dc;
    TRY(nf_read_table(path, &raw, &n, &dc));
    if (dc != 65) {
        fprintf(stderr, "%s: expected 64 pixel columns and a label, got %zu columns\n", path, dc);
        return 2;
    }
    size_t d = 64;
    float *x = malloc(n * d * sizeof(float)), *tmp = malloc(d * sizeof(float));
    for (size_t i = 0; i < n; i++) memcpy(x + i * d, raw + i * dc, d * sizeof(float));
    free(raw);
    nf_rng *rng = NULL;
    TRY(nf_rng_create(seed, &rng));
    for (size_t i = n; i-- > 1;) { /* shuffle the images */
        size_t j = (size_t)nf_rng_below(rng, i + 1);
        memcpy(tmp, x + i * d, d * sizeof(float));
        memcpy(x + i * d, x + j * d, d * sizeof(float));
        memcpy(x + j * d, tmp, d * sizeof(float));
    }
    size_t ntr = n * 70 / 100, nva = n * 15 / 100, nte = n - ntr - nva;
    float *test = malloc(nte * d * sizeof(float)), *lp = malloc(nte * sizeof(float));
    memcpy(test, x + (ntr + nva) * d, nte * d * sizeof(float));
    for (size_t k = 0; k < nte * d; k++) test[k] += nf_rng_uniform(rng); /* the test rows' one draw */
    printf("digits as 1 x 8 x 8 images: %zu train / %zu validation / %zu test, seed %llu\n\n", ntr, nva, nte,
           (unsigned long long)seed);
    printf("| model | spec | parameters | test NLL (nats) | bits per dimension | epochs | seconds |\n|---|---|---|---|---|---|---|\n");
    for (size_t m = 0; m < sizeof MODELS / sizeof MODELS[0]; m++) {
        const char *spec = quick ? MODELS[m].quick : MODELS[m].spec;
        nf_flow *f = NULL;
        TRY(nf_flow_from_spec(spec, d, seed, &f));
        nf_train_opts o = nf_train_defaults();
        o.batch = 100, o.seed = seed, o.standardize = 1, o.dequantize = 1;
        o.epochs = quick ? 2 : 500, o.patience = quick ? 2 : 20;
        o.val_split = (float)nva / (float)(ntr + nva);
        nf_train_report r;
        double t0 = ex_now();
        TRY(nf_flow_fit(f, x, ntr + nva, &o, &r));
        double secs = ex_now() - t0;
        TRY(nf_flow_log_prob(f, test, nte, lp));
        double s = 0;
        for (size_t i = 0; i < nte; i++) s += lp[i];
        double nll = -s / (double)nte;
        printf("| %s | `%s` | %zu | %.2f | %.3f | %zu | %.1f |\n", MODELS[m].name, spec, nf_flow_param_count(f), nll,
               nll / (64 * log(2.0)), r.epochs, secs);
        fflush(stdout);
        nf_train_report_free(&r);
        nf_flow_free(f);
    }
    free(x), free(tmp), free(test), free(lp);
    nf_rng_free(rng);
    return 0;
}
