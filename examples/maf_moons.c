/*
 * maf_moons.c - masked autoregressive flows on the two moons.
 *
 * Default: the configuration of the PyTorch reference
 * (../shared/reference/torch_maf_moons.py): 5 MAF layers, MADE hidden
 * [256,256], ReLU, reversed order between layers, standardised moons (the
 * scaler is inside the model, so NLLs are in the data's original units),
 * Adam lr 1e-3, 5000 steps of fresh batches of 100.
 *
 * --seed002: seed 002's experiment: 1000 standardised moons, full batch,
 * 600 epochs, validation split 0.2; first one MAF with MADE hidden [16,16],
 * then 6 MAFs with hidden [256,256] and permute([1,0]) between them.
 *
 * --iaf: the same stacks with IAF layers (invert(MAF)), trained by maximum
 * likelihood through their slow direction (density: d passes per layer), to
 * show that its gradients work; sampling is the fast direction.
 *
 * Usage: maf_moons [--seed002] [--iaf] [--steps N] [--seed S] [--heldout FILE.csv] [--out DIR]
 */
#include "common.h"

static int draw_moons(void *user, nf_rng *rng, float *x, size_t n) {
    (void)user;
    return nf_data_moons(rng, n, 0.05f, x, NULL) != NF_OK;
}

static int progress(void *user, const nf_train_progress *p) {
    size_t every = *(const size_t *)user;
    if (p->epoch == 0 || p->epoch % every == 0) {
        if (p->epoch) printf("epoch %4zu  loss %.4f  val %.4f\n", p->epoch, p->train_loss, p->val_loss);
        else printf("step %5zu  loss %.4f\n", p->step, p->train_loss);
        fflush(stdout);
    }
    return 0;
}

/* chain([maf, permute([1,0]), maf, ...]) of `layers` MAFs: the first listed is
 * applied first in the density direction, as in the reference. */
static int use_iaf;

static nf_flow *maf_stack(size_t layers, size_t hidden, nf_rng *rng) {
    nf_maf_opts m = {.net = {.hidden = {hidden, hidden}, .nhidden = 2, .activation = NF_ACT_RELU},
                     .order = NF_ORDER_NATURAL};
    nf_bijector *bs[64] = {0}, *b = NULL;
    size_t k = 0;
    for (size_t l = 0; l < layers; l++) {
        if (l) {
            size_t perm[2] = {1, 0};
            TRY(nf_bijector_permute(2, perm, &bs[k++]));
        }
        if (use_iaf) TRY(nf_bijector_iaf(2, &m, rng, &bs[k++]));
        else TRY(nf_bijector_maf(2, &m, rng, &bs[k++]));
    }
    if (k == 1) b = bs[0];
    else TRY(nf_bijector_chain(bs, k, &b));
    nf_flow *f = NULL;
    TRY(nf_flow_create(b, NULL, &f));
    return f;
}

static float *heldout_points(const char *path, size_t *n) {
    float *x;
    if (path) {
        x = ex_read_csv(path, 2, n);
        if (!x || !*n) {
            fprintf(stderr, "error: cannot read 2-column CSV %s\n", path);
            exit(2);
        }
        return x;
    }
    nf_rng *r = NULL;
    TRY(nf_rng_create(12345, &r));
    *n = 10000;
    x = malloc(*n * 2 * sizeof(float));
    TRY(nf_data_moons(r, *n, 0.05f, x, NULL));
    nf_rng_free(r);
    return x;
}

static void report(const char *what, const nf_flow *f, const float *xt, size_t nt, nf_rng *rng) {
    printf("%s: held-out mean NLL (%zu moons, original units): %.4f nats; max |inverse(forward(z)) - z| %.3g\n",
           what, nt, ex_nll(f, xt, nt), ex_roundtrip_error(f, rng, 10000));
}

int main(int argc, char **argv) {
    size_t steps = 5000;
    uint64_t seed = 0;
    int seed002 = 0;
    const char *heldout = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--heldout") && i + 1 < argc) heldout = argv[++i];
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--seed002")) seed002 = 1;
        else if (!strcmp(argv[i], "--iaf")) use_iaf = 1;
        else {
            fprintf(stderr, "usage: %s [--seed002] [--iaf] [--steps N] [--seed S] [--heldout FILE.csv] [--out DIR]\n", argv[0]);
            return 1;
        }
    }
    nf_rng *rng = NULL;
    TRY(nf_rng_create(seed, &rng));
    size_t nt;
    float *xt = heldout_points(heldout, &nt);
    nf_train_opts o = nf_train_defaults();
    o.seed = seed + 1;
    o.callback = progress;
    nf_train_report rep;

    if (seed002) {
        size_t n = 1000, every = 100;
        float *x = malloc(n * 2 * sizeof(float));
        TRY(nf_data_moons(rng, n, 0.05f, x, NULL));
        o.batch = 0, o.epochs = steps == 5000 ? 600 : steps, o.val_split = 0.2f, o.standardize = 1;
        o.user = &every;
        const size_t sizes[2] = {16, 256}, layers[2] = {1, 6};
        for (int k = 0; k < 2; k++) {
            nf_flow *f = maf_stack(layers[k], sizes[k], rng);
            printf("%zu %s(s), MADE hidden [%zu,%zu], %zu parameters\n", layers[k], use_iaf ? "IAF" : "MAF", sizes[k], sizes[k],
                   nf_flow_param_count(f));
            TRY(nf_flow_fit(f, x, n, &o, &rep));
            printf("trained %zu epochs in %.2f s; train %.4f, validation %.4f (best %.4f at epoch %zu)\n",
                   rep.epochs, rep.seconds, rep.train_loss, rep.val_loss, rep.best_val_loss, rep.best_epoch);
            report(k ? "6 layers" : "1 layer", f, xt, nt, rng);
            nf_train_report_free(&rep);
            nf_flow_free(f);
        }
        free(x);
    } else {
        size_t every = 0;
        nf_flow *f = maf_stack(5, 256, rng);
        /* the scaler, fitted on 100,000 moons, lives inside the model */
        float *big = malloc(100000 * 2 * sizeof(float));
        nf_rng *r2 = NULL;
        TRY(nf_rng_create(999, &r2));
        TRY(nf_data_moons(r2, 100000, 0.05f, big, NULL));
        TRY(nf_flow_fit_scaler(f, big, 100000));
        free(big);
        nf_rng_free(r2);
        printf("%s: 5 layers, MADE hidden [256,256], %zu parameters\n", use_iaf ? "IAF" : "MAF", nf_flow_param_count(f));
        o.lr = 1e-3f, o.batch = 100, o.steps = steps, o.log_every = 1000, o.user = &every;
        TRY(nf_flow_fit_stream(f, draw_moons, NULL, &o, &rep));
        printf("trained %zu steps in %.2f s (%.3f s per 1000 steps)\n", rep.steps, rep.seconds,
               1000 * rep.seconds / (double)rep.steps);
        report("5 layers", f, xt, nt, rng);
        if (out) {
            char path[4096];
            float *s = malloc(1000 * 2 * sizeof(float));
            TRY(nf_flow_sample(f, rng, 1000, s));
            snprintf(path, sizeof path, "%s/samples.csv", out);
            if (ex_write_csv(path, s, 1000, 2, "x,y")) fprintf(stderr, "warning: cannot write %s\n", path);
            free(s);
        }
        nf_train_report_free(&rep);
        nf_flow_free(f);
    }
    free(xt);
    nf_rng_free(rng);
    return 0;
}
