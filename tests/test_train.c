/*
 * test_train.c - MADE's autoregressive property, flows (scaler, sampling,
 * stages), data sets, and short training runs: the loss falls, the model
 * stays invertible, seeds reproduce, early stopping restores the best
 * parameters, and a non-finite loss stops training with the last good
 * parameters kept.
 */
#include "test.h"

#include "../src/nn/nn.h"
#include "../src/bijectors/bijector_impl.h"
#include "../src/flow/flow.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

static void test_made_autoregressive(void) {
    enum { D = 5, K = 2 };
    size_t order[D] = {3, 1, 5, 2, 4}, hidden[2] = {7, 9};
    nf_mlp m;
    CHECK_OK(nf__mlp_init(&m, D, hidden, 2, K * D, NF_ACT_RELU));
    CHECK_OK(nf__made_masks(&m, order, D, K));
    nf_rng *rng = NULL;
    nf_rng_create(21, &rng);
    float *p = malloc(nf__mlp_param_count(&m) * sizeof(float));
    nf__mlp_init_params(&m, p, rng, NF_INIT_TORCH, 0);
    float *tape = malloc(nf__mlp_tape_floats(&m, 1) * sizeof(float));
    void *scr = malloc(nf__mlp_scratch_bytes(&m, 1));
    float x[D], x2[D], out0[K * D];
    nf_rng_fill_normal(rng, x, D);
    memcpy(out0, nf__mlp_forward(&m, &nf__backend_cpu, p, tape, scr, x, 1), sizeof out0);
    int moved_any = 0;
    for (size_t i = 0; i < D; i++) {
        memcpy(x2, x, sizeof x);
        x2[i] += 1.5f;
        const float *o = nf__mlp_forward(&m, &nf__backend_cpu, p, tape, scr, x2, 1);
        for (size_t u = 0; u < K * D; u++) {
            size_t j = u % D;
            if (order[j] <= order[i])
                CHECK(o[u] == out0[u], "MADE output %zu (input %zu, degree %zu) moved when input %zu (degree %zu) did",
                      u, j, order[j], i, order[i]);
            else
                moved_any += o[u] != out0[u];
        }
    }
    CHECK(moved_any > 0, "MADE outputs do depend on inputs of lower degree");
    nf__mlp_free_masks(&m);
    free(p), free(tape), free(scr);

    /* Through the public MAF: with natural order, z_j ignores x_k for k > j. */
    nf_maf_opts mo = {.net = {.hidden = {16, 16}, .nhidden = 2, .activation = NF_ACT_RELU}};
    nf_bijector *maf = NULL;
    CHECK_OK(nf_bijector_maf(4, &mo, rng, &maf));
    float a[4] = {0.3f, -1, 0.7f, 2}, b[4], za[4], zb[4];
    CHECK_OK(nf_bijector_inverse(maf, a, 1, za, NULL));
    for (int i = 0; i < 4; i++) {
        memcpy(b, a, sizeof a);
        b[i] -= 0.9f;
        CHECK_OK(nf_bijector_inverse(maf, b, 1, zb, NULL));
        for (int j = 0; j < i; j++) CHECK(zb[j] == za[j], "MAF z_%d moved when x_%d did", j, i);
        CHECK(zb[i] != za[i], "MAF z_%d follows x_%d", i, i);
    }
    nf_bijector_free(maf);
    nf_rng_free(rng);
}

static int draw_moons(void *u, nf_rng *rng, float *x, size_t n) {
    (void)u;
    return nf_data_moons(rng, n, 0.05f, x, NULL) != NF_OK;
}

/* 4-D rows whose coordinates depend on each other. */
static int draw_chain4(void *u, nf_rng *rng, float *x, size_t n) {
    (void)u;
    nf_rng_fill_normal(rng, x, 4 * n);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 1; j < 4; j++) x[4 * i + j] += 0.8f * x[4 * i + j - 1] * x[4 * i + j - 1] - 0.5f;
    return 0;
}

/* Pairs (j < i) where the density direction's z_j moved when x_i did: an
 * autoregressive layer with natural order has none. */
static int ar_violations(const nf_flow *f) {
    const nf_bijector *b = nf_flow_bijector(f);
    float a[4] = {0.3f, -1, 0.7f, 2}, c[4], za[4], zc[4];
    int bad = 0;
    if (nf_bijector_inverse(b, a, 1, za, NULL)) return 100;
    for (int i = 0; i < 4; i++) {
        memcpy(c, a, sizeof a);
        c[i] -= 0.9f;
        if (nf_bijector_inverse(b, c, 1, zc, NULL)) return 100;
        for (int j = 0; j < i; j++) bad += zc[j] != za[j];
    }
    return bad;
}

/* MADE masks are applied to the weights once (at creation, at the start of
 * training, on load) and the passes then use the weights as they are;
 * nf_flow_params hands the buffer out for writing, after which the passes
 * mask per call again.  So: training keeps masked weights at zero, both
 * ways of computing agree bit for bit, and a nonzero masked weight written
 * through the pointer (or read from a file) never breaks the autoregressive
 * structure. */
static void test_made_masks_once(void) {
    nf_flow *f = NULL;
    CHECK_OK(nf_flow_from_spec("maf(layers=1, hidden=[24,24])", 4, 7, &f));
    nf_train_opts o = nf_train_defaults();
    o.batch = 64, o.steps = 40, o.lr = 1e-2f, o.log_every = 0;
    CHECK_OK(nf_flow_fit_stream(f, draw_chain4, NULL, &o, NULL));
    CHECK(ar_violations(f) == 0, "trained MAF stays autoregressive (masked weights stay zero)");
    enum { N = 64 };
    float x[4 * N], lp1[N], lp2[N], lp3[N];
    nf_rng *rng = NULL;
    nf_rng_create(8, &rng);
    draw_chain4(NULL, rng, x, N);
    CHECK_OK(nf_flow_log_prob(f, x, N, lp1));
    float *p = nf_flow_params(f); /* from here the passes mask per call */
    CHECK_OK(nf_flow_log_prob(f, x, N, lp2));
    CHECK(!memcmp(lp1, lp2, sizeof lp1), "masks applied once or per call: the same log_prob bit for bit");
    size_t P = nf_flow_param_count(f);
    for (size_t k = 0; k < P; k++) p[k] += 0.05f * (float)sin((double)k); /* masked weights too */
    CHECK(ar_violations(f) == 0, "masked weights written through nf_flow_params have no effect");
    CHECK_OK(nf_flow_log_prob(f, x, N, lp2));
    const char *path = "/tmp/nflow_premask_test.nflow";
    CHECK_OK(nf_flow_save(f, path, NULL));
    nf_flow *g = NULL;
    CHECK_OK(nf_flow_load(path, &g));
    if (g) {
        CHECK(ar_violations(g) == 0, "a loaded MAF is autoregressive");
        CHECK_OK(nf_flow_log_prob(g, x, N, lp3));
        CHECK(!memcmp(lp2, lp3, sizeof lp2), "saved with nonzero masked weights, loaded: the same log_prob");
        nf_flow_free(g);
    }
    remove(path);
    o.steps = 5; /* training applies the masks again */
    CHECK_OK(nf_flow_fit_stream(f, draw_chain4, NULL, &o, NULL));
    CHECK(ar_violations(f) == 0, "MAF trained after a write through nf_flow_params stays autoregressive");
    nf_rng_free(rng);
    nf_flow_free(f);
}

static nf_flow *small_realnvp(uint64_t seed) {
    nf_rng *rng = NULL;
    nf_rng_create(seed, &rng);
    nf_coupling_opts c = {.net = {.hidden = {32, 32}, .nhidden = 2, .activation = NF_ACT_LEAKY_RELU},
                          .separate_nets = 1, .tanh_scale = 1};
    nf_bijector *b = NULL;
    nf_flow *f = NULL;
    CHECK_OK(nf_bijector_realnvp(2, 4, &c, rng, &b));
    CHECK_OK(nf_flow_create(b, NULL, &f));
    nf_rng_free(rng);
    return f;
}

static double max_roundtrip(const nf_flow *f) {
    nf_rng *rng = NULL;
    nf_rng_create(77, &rng);
    float z[400], x[400], z2[400];
    nf_rng_fill_normal(rng, z, 400);
    double w = INFINITY;
    if (nf_bijector_forward(nf_flow_bijector(f), z, 200, x, NULL) == NF_OK &&
        nf_bijector_inverse(nf_flow_bijector(f), x, 200, z2, NULL) == NF_OK) {
        w = 0;
        for (int i = 0; i < 400; i++)
            if (fabs(z2[i] - z[i]) > w) w = fabs(z2[i] - z[i]);
    }
    nf_rng_free(rng);
    return w;
}

static void test_stream_training(void) {
    nf_flow *f = small_realnvp(1);
    nf_train_opts o = nf_train_defaults();
    o.lr = 3e-3f, o.batch = 64, o.steps = 300, o.log_every = 50, o.seed = 5;
    nf_train_report r;
    CHECK_OK(nf_flow_fit_stream(f, draw_moons, NULL, &o, &r));
    CHECK(r.n_history == 6 && r.steps == 300, "history has %zu entries after %zu steps", r.n_history, r.steps);
    if (r.n_history == 6)
        CHECK(r.train_history[5] < r.train_history[0] - 0.3, "RealNVP loss falls: %.3f -> %.3f", r.train_history[0],
              r.train_history[5]);
    CHECK(max_roundtrip(f) < 1e-4, "trained RealNVP stays invertible (%.3g)", max_roundtrip(f));
    /* same seed, same result, bit for bit */
    nf_flow *g = small_realnvp(1);
    nf_train_report r2;
    CHECK_OK(nf_flow_fit_stream(g, draw_moons, NULL, &o, &r2));
    CHECK(memcmp(nf_flow_params(f), nf_flow_params(g), nf_flow_param_count(f) * sizeof(float)) == 0,
          "training is reproducible from its seeds");
    nf_train_report_free(&r);
    nf_train_report_free(&r2);
    nf_flow_free(g);

    /* sample_and_log_prob agrees with log_prob; stages end at the samples */
    nf_rng *rng = NULL;
    nf_rng_create(8, &rng);
    float x[600], lp[300], lp2[300];
    CHECK_OK(nf_flow_sample_and_log_prob(f, rng, 300, x, lp));
    CHECK_OK(nf_flow_log_prob(f, x, 300, lp2));
    double worst = 0;
    for (int i = 0; i < 300; i++)
        if (fabs(lp[i] - lp2[i]) > worst) worst = fabs(lp[i] - lp2[i]);
    CHECK(worst < 1e-3, "flow sample_and_log_prob vs log_prob: %g", worst);
    size_t ns = nf_flow_stage_count(f);
    CHECK(ns == 5, "stages: base + 4 couplings, got %zu", ns);
    float *st = malloc(ns * 50 * 2 * sizeof(float)), s1[100];
    const char *names[8];
    nf_rng *ra = NULL, *rb = NULL;
    nf_rng_create(9, &ra);
    nf_rng_create(9, &rb);
    CHECK_OK(nf_flow_sample_stages(f, ra, 50, st, names));
    CHECK_OK(nf_flow_sample(f, rb, 50, s1));
    CHECK(memcmp(st + (ns - 1) * 100, s1, sizeof s1) == 0, "the last stage equals nf_flow_sample");
    CHECK(!strcmp(names[0], "base") && !strcmp(names[1], "realnvp"), "stage names %s, %s", names[0], names[1]);
    free(st);
    nf_rng_free(ra), nf_rng_free(rb), nf_rng_free(rng);
    nf_flow_free(f);
}

static nf_flow *small_maf(int iaf, uint64_t seed) {
    nf_rng *rng = NULL;
    nf_rng_create(seed, &rng);
    nf_maf_opts m = {.net = {.hidden = {16, 16}, .nhidden = 2, .activation = NF_ACT_RELU}};
    nf_bijector *bs[3] = {0}, *b = NULL;
    size_t perm[2] = {1, 0};
    if (iaf) {
        nf_bijector_iaf(2, &m, rng, &bs[0]);
        nf_bijector_iaf(2, &m, rng, &bs[2]);
    } else {
        nf_bijector_maf(2, &m, rng, &bs[0]);
        nf_bijector_maf(2, &m, rng, &bs[2]);
    }
    nf_bijector_permute(2, perm, &bs[1]);
    nf_flow *f = NULL;
    CHECK_OK(nf_bijector_chain(bs, 3, &b));
    CHECK_OK(nf_flow_create(b, NULL, &f));
    nf_rng_free(rng);
    return f;
}

/* Spline flows train: coupling and autoregressive, streamed moons. */
static void test_spline_training(void) {
    const char *specs[] = {"nsf(layers=2, hidden=[16,16], bins=6)", "maf(layers=2, hidden=[16,16], bins=6)",
                           "iaf(layers=1, hidden=[16,16], bins=4)"};
    for (int k = 0; k < 3; k++) {
        nf_flow *f = NULL;
        CHECK_OK(nf_flow_from_spec(specs[k], 2, 3, &f));
        if (!f) continue;
        nf_train_opts o = nf_train_defaults();
        o.lr = 3e-3f, o.batch = 64, o.steps = k == 2 ? 120 : 300, o.log_every = o.steps / 6, o.seed = 5;
        nf_train_report r;
        CHECK_OK(nf_flow_fit_stream(f, draw_moons, NULL, &o, &r));
        CHECK(r.n_history == 6, "%s: 6 history entries, got %zu", specs[k], r.n_history);
        if (r.n_history == 6)
            CHECK(r.train_history[5] < r.train_history[0] - 0.3, "%s: loss falls %.3f -> %.3f", specs[k],
                  r.train_history[0], r.train_history[5]);
        CHECK(max_roundtrip(f) < 1e-4, "%s: trained spline flow stays invertible (%.3g)", specs[k], max_roundtrip(f));
        nf_train_report_free(&r);
        nf_flow_free(f);
    }
}

static void test_fit_data(void) {
    nf_rng *rng = NULL;
    nf_rng_create(3, &rng);
    enum { N = 1000 };
    float *x = malloc(N * 2 * sizeof(float));
    CHECK_OK(nf_data_moons(rng, N, 0.05f, x, NULL));
    for (int iaf = 0; iaf < 2; iaf++) {
        nf_flow *f = small_maf(iaf, 4);
        nf_train_opts o = nf_train_defaults();
        o.batch = 0, o.epochs = 150, o.val_split = 0.2f, o.standardize = 1, o.lr = 1e-2f;
        nf_train_report r;
        CHECK_OK(nf_flow_fit(f, x, N, &o, &r));
        CHECK(r.epochs == 150 && r.n_history == 150, "%s: 150 epochs recorded", iaf ? "IAF" : "MAF");
        CHECK(r.train_history[149] < r.train_history[0] - 0.5 && r.val_loss < r.val_history[0] - 0.5,
              "%s (full batch, scaler): loss falls %.3f -> %.3f, validation %.3f -> %.3f", iaf ? "IAF" : "MAF",
              r.train_history[0], r.train_history[149], r.val_history[0], r.val_loss);
        CHECK(max_roundtrip(f) < 1e-3, "trained %s stays invertible (%.3g)", iaf ? "IAF" : "MAF", max_roundtrip(f));
        nf_train_report_free(&r);
        nf_flow_free(f);
    }

    /* early stopping: a huge learning rate stalls validation; the best
     * epoch's parameters come back */
    nf_flow *f = small_maf(0, 6);
    nf_train_opts o = nf_train_defaults();
    o.batch = 50, o.epochs = 400, o.val_split = 0.2f, o.standardize = 1, o.lr = 0.05f, o.patience = 3;
    nf_train_report r;
    CHECK_OK(nf_flow_fit(f, x, N, &o, &r));
    CHECK(r.stopped_early && r.epochs < 400, "early stopping after %zu epochs", r.epochs);
    float lp[200];
    CHECK_OK(nf_flow_log_prob(f, x + 800 * 2, 200, lp));
    double v = 0;
    for (int i = 0; i < 200; i++) v -= lp[i] / 200.0;
    CHECK_NEAR(v, r.best_val_loss, 1e-4, "restored parameters give the best validation loss");
    CHECK(r.restored && r.val_loss == r.best_val_loss && r.train_loss == r.train_history[r.best_epoch - 1],
          "the report describes the parameters kept (epoch %zu: validation %.4f, train %.4f)", r.best_epoch, r.val_loss,
          r.train_loss);
    nf_train_report_free(&r);

    /* a non-finite loss stops training, naming the step; parameters are kept */
    float *p = nf_flow_params(f);
    size_t np = nf_flow_param_count(f);
    p[np - 1] = -1e30f; /* a log-scale bias: z = (x - m) exp(1e30) overflows */
    float *before = malloc(np * sizeof(float));
    memcpy(before, p, np * sizeof(float));
    o.patience = 0;
    CHECK_ERR(nf_flow_fit(f, x, N, &o, &r), NF_ERR_NUMERIC, "step 1");
    CHECK(memcmp(before, p, np * sizeof(float)) == 0, "parameters are unchanged after the failed step");
    free(before);
    /* bad data and options */
    x[7] = NAN;
    CHECK_ERR(nf_flow_fit(f, x, N, &o, &r), NF_ERR_DOMAIN, "row 3");
    x[7] = 0;
    o.lr = -1;
    CHECK_ERR(nf_flow_fit(f, x, N, &o, &r), NF_ERR_ARG, "lr");
    nf_flow_free(f);
    free(x);
    nf_rng_free(rng);
}

/* The chain's float log-det accumulation stays within 1e-4 of the same
 * per-part log-dets summed in double. */
static void test_logdet_accumulation(void) {
    const char *specs[2] = {"realnvp(layers=8, hidden=[32,32])", "maf(layers=6, hidden=[32,32])"};
    for (int k = 0; k < 2; k++) {
        nf_flow *f = NULL;
        CHECK_OK(nf_flow_from_spec(specs[k], 2, 17, &f));
        nf_rng *rng = NULL;
        nf_rng_create(18, &rng);
        float *p = nf_flow_params(f);
        if (k == 0) /* RealNVP's log-scales are tanh-bounded: larger weights give larger log-dets */
            for (size_t i = 0; i < nf_flow_param_count(f); i++) p[i] *= 3;
        enum { N = 200 };
        float x[2 * N], z[2 * N], ldj[N], cur[2 * N], nxt[2 * N], l1[N];
        nf_rng_fill_normal(rng, x, 2 * N);
        const nf_bijector *b = nf_flow_bijector(f);
        CHECK_OK(nf_bijector_inverse(b, x, N, z, ldj));
        nf_bijector *const *parts;
        size_t np = nf__chain_parts(b, &parts);
        double acc[N] = {0};
        memcpy(cur, x, sizeof cur);
        for (size_t q = np; q-- > 0;) { /* the inverse applies the last part first */
            CHECK_OK(nf_bijector_inverse(parts[q], cur, N, nxt, l1));
            for (int i = 0; i < N; i++) acc[i] += l1[i];
            memcpy(cur, nxt, sizeof cur);
        }
        double worst = 0, big = 0;
        for (int i = 0; i < N; i++) worst = fmax(worst, fabs(ldj[i] - acc[i])), big = fmax(big, fabs(acc[i]));
        CHECK(np > 1 && worst <= 1e-4 * fmax(1, big), "%s: float log-det within 1e-4 of double (%g, |ldj| up to %g)",
              specs[k], worst, big);
        nf_rng_free(rng);
        nf_flow_free(f);
    }
}

/* Batch-parallel training split by rows: the same gradients as one thread
 * up to float rounding, and reproducible for a given thread count
 * (test_team.c: the split by columns). */
static void test_threaded_training(void) {
    float *p[3];
    size_t np = 0;
    for (int run = 0; run < 3; run++) {
        nf_flow *f = NULL;
        CHECK_OK(nf_flow_from_spec("realnvp(layers=4, hidden=[32,32])", 2, 8, &f));
        nf_train_opts o = nf_train_defaults();
        o.batch = 101, o.steps = 40, o.seed = 4, o.threads = run == 0 ? 1 : 3, o.split = NF_SPLIT_ROWS;
        CHECK_OK(nf_flow_fit_stream(f, draw_moons, NULL, &o, NULL));
        np = nf_flow_param_count(f);
        p[run] = malloc(np * sizeof(float));
        memcpy(p[run], nf_flow_params(f), np * sizeof(float));
        nf_flow_free(f);
    }
    CHECK(!memcmp(p[1], p[2], np * sizeof(float)), "3-thread training is reproducible bit for bit");
    double worst = 0;
    for (size_t i = 0; i < np; i++) worst = fmax(worst, fabs(p[0][i] - p[1][i]));
    CHECK(worst > 0 && worst < 1e-3, "3 threads train the same model as 1, up to rounding (max difference %g)", worst);
    for (int run = 0; run < 3; run++) free(p[run]);
    nf_flow *f = NULL;
    CHECK_OK(nf_flow_from_spec("maf(hidden=[8])", 2, 8, &f));
    nf_train_opts o = nf_train_defaults();
    o.threads = 65;
    CHECK_ERR(nf_flow_fit_stream(f, draw_moons, NULL, &o, NULL), NF_ERR_ARG, "threads must be at most 64");
    nf_flow_free(f);
}

/* Far outside the data: finite or -inf, never NaN. */
static void test_far_points(void) {
    const char *specs[3] = {"realnvp(layers=4, hidden=[16])", "maf(layers=2, hidden=[16])", "affine_scalar(scale=1e-30)"};
    for (int k = 0; k < 3; k++) {
        nf_flow *f = NULL;
        size_t d = k == 2 ? 1 : 2;
        CHECK_OK(nf_flow_from_spec(specs[k], d, 3, &f));
        float x[10] = {1e6f, 1e6f, -1e6f, 3, 0.5f, -1e6f, 1e30f, 0, 0.1f, 0.2f}, lp[10];
        CHECK_OK(nf_flow_log_prob(f, x, 5 * 2 / d, lp));
        for (size_t i = 0; i < 5 * 2 / d; i++)
            CHECK(!isnan(lp[i]) && (isfinite(lp[i]) || lp[i] < 0), "%s: log_prob of a far point %zu is %g", specs[k], i, lp[i]);
        if (k == 2) { /* z = x * 1e30: overflows float for x = 1e9, stays finite for x = 1e-12 */
            float y[3] = {1e9f, 1e-12f, -1e9f}, l3[3];
            CHECK_OK(nf_flow_log_prob(f, y, 3, l3));
            CHECK(isinf(l3[0]) && l3[0] < 0 && isfinite(l3[1]) && isinf(l3[2]) && l3[2] < 0,
                  "an overflowing inverse gives -inf, other rows stay finite: %g %g %g", l3[0], l3[1], l3[2]);
        }
        nf_flow_free(f);
    }
}

static void test_scaler_and_data(void) {
    nf_rng *rng = NULL;
    nf_rng_create(4, &rng);
    nf_flow *f = small_realnvp(2);
    float x[40], lp[20], lp2[20], y[40];
    nf_rng_fill_normal(rng, x, 40);
    float mean[2] = {3, -1}, sd[2] = {2, 0.5f};
    CHECK_OK(nf_flow_log_prob(f, x, 20, lp));
    for (int i = 0; i < 20; i++) y[2 * i] = 3 + 2 * x[2 * i], y[2 * i + 1] = -1 + 0.5f * x[2 * i + 1];
    CHECK_OK(nf_flow_set_scaler(f, mean, sd));
    CHECK_OK(nf_flow_log_prob(f, y, 20, lp2));
    for (int i = 0; i < 20; i++)
        CHECK_NEAR(lp2[i], lp[i] - log(2 * 0.5), 1e-5, "log_prob in user units includes the scaler's log-det");
    float zero[2] = {1, 0};
    CHECK_ERR(nf_flow_set_scaler(f, mean, zero), NF_ERR_DOMAIN, "std");
    nf_flow_free(f);

    const char *names[] = {"moons", "circles", "8gaussians", "checkerboard", "spirals", "pinwheel"};
    float *d = malloc(4000 * 2 * sizeof(float));
    int *lab = malloc(4000 * sizeof(int));
    for (int k = 0; k < 6; k++) {
        CHECK_OK(nf_data_generate(names[k], rng, 4000, 0.0f, d, lab));
        CHECK(nf__first_nonfinite(d, 8000) == 8000, "%s data are finite", names[k]);
    }
    CHECK_OK(nf_data_moons(rng, 4000, 0.0f, d, lab));
    double mx = 0, my = 0;
    int ones = 0, on_arc = 1;
    for (int i = 0; i < 4000; i++) {
        mx += d[2 * i] / 4000.0, my += d[2 * i + 1] / 4000.0, ones += lab[i];
        double cx = lab[i] ? 1 : 0, cy = lab[i] ? 0.5 : 0; /* noise-free points lie on unit circles */
        on_arc &= fabs(hypot(d[2 * i] - cx, d[2 * i + 1] - cy) - 1) < 1e-5;
    }
    CHECK(ones == 2000, "moons: half of each label (%d)", ones);
    CHECK(on_arc, "noise-free moons lie on the two half circles");
    CHECK_NEAR(mx, 0.5, 1e-6, "moons mean x");
    CHECK_NEAR(my, 0.25, 1e-4, "moons mean y");
    CHECK_ERR(nf_data_generate("spiral", rng, 10, 0, d, NULL), NF_ERR_ARG, "known: moons");
    free(d), free(lab);
    nf_rng_free(rng);
}

/* ActNorm: fit initialises it from the first batch (its base-side output
 * standardised), once; the flag survives a save and reload, so a reloaded
 * model keeps its trained parameters when trained again. */
static void test_actnorm_init(void) {
    const char *path = "/tmp/nflow_actnorm_test.nflow";
    nf_flow *f = NULL;
    CHECK_OK(nf_flow_from_spec("chain(actnorm, maf(hidden=[8]))", 2, 1, &f));
    if (!f) return;
    float x[400 * 2], z[400 * 2];
    nf_rng *rng = NULL;
    nf_rng_create(6, &rng);
    for (int i = 0; i < 400; i++) x[2 * i] = 5 + 3 * nf_rng_normal(rng), x[2 * i + 1] = -2 + 0.5f * nf_rng_normal(rng);
    nf_bijector *const *parts;
    size_t k = nf__chain_parts(nf_flow_bijector(f), &parts);
    int init = -1;
    /* TFP order: actnorm is applied last in the forward direction, first on data */
    CHECK(k == 2 && nf_bijector_actnorm_initialised(parts[1], &init) == NF_OK && init == 0, "actnorm starts uninitialised");
    CHECK_OK(nf_flow_data_init(f, x, 400));
    nf_bijector_actnorm_initialised(parts[1], &init);
    CHECK(init == 1, "nf_flow_data_init initialised it");
    CHECK_OK(nf_bijector_inverse(parts[1], x, 400, z, NULL));
    double m[2] = {0}, v[2] = {0};
    for (int i = 0; i < 400; i++)
        for (int j = 0; j < 2; j++) m[j] += z[2 * i + j] / 400.0, v[j] += z[2 * i + j] * z[2 * i + j] / 400.0;
    CHECK(fabs(m[0]) < 1e-4 && fabs(m[1]) < 1e-4 && fabs(v[0] - 1) < 1e-3 && fabs(v[1] - 1) < 1e-3,
          "actnorm output standardised: means %g %g, second moments %g %g", m[0], m[1], v[0], v[1]);
    /* a second init does nothing */
    float p0[4];
    memcpy(p0, nf_bijector_params(parts[1]), sizeof p0);
    for (int i = 0; i < 800; i++) z[i] = 100 + x[i];
    CHECK_OK(nf_flow_data_init(f, z, 400));
    CHECK(!memcmp(p0, nf_bijector_params(parts[1]), sizeof p0), "an initialised actnorm is not initialised again");
    CHECK_OK(nf_flow_save(f, path, NULL));
    nf_flow *g = NULL;
    CHECK_OK(nf_flow_load(path, &g));
    if (g) {
        nf_bijector *const *gp;
        nf__chain_parts(nf_flow_bijector(g), &gp);
        nf_bijector_actnorm_initialised(gp[1], &init);
        CHECK(init == 1, "the initialised flag survives save and load");
        CHECK_OK(nf_flow_data_init(g, z, 400));
        CHECK(!memcmp(p0, nf_bijector_params(gp[1]), sizeof p0), "a reloaded actnorm is not initialised again");
        nf_flow_free(g);
    }
    remove(path);
    /* fit runs the initialisation: a fresh flow trained for one epoch */
    nf_flow *h = NULL;
    CHECK_OK(nf_flow_from_spec("chain(actnorm, maf(hidden=[8]))", 2, 1, &h));
    nf_train_opts o = nf_train_defaults();
    o.epochs = 1, o.batch = 400;
    CHECK_OK(nf_flow_fit(h, x, 400, &o, NULL));
    nf__chain_parts(nf_flow_bijector(h), &parts);
    nf_bijector_actnorm_initialised(parts[1], &init);
    CHECK(init == 1 && fabs(nf_bijector_params(parts[1])[0] - p0[0]) < 0.1,
          "nf_flow_fit initialised the actnorm (shift %g, data mean %g)", nf_bijector_params(parts[1])[0], p0[0]);
    nf_flow_free(h);
    nf_flow_free(f);
    nf_rng_free(rng);
}

/* Rows [x0, x1, label] of moons with noise 0.05. */
static int draw_labelled_moons(void *u, nf_rng *r, float *rows, size_t n) {
    (void)u;
    float x[2 * 512];
    int lab[512];
    if (n > 512 || nf_data_moons(r, n, 0.05f, x, lab)) return 1;
    for (size_t i = 0; i < n; i++) rows[3 * i] = x[2 * i], rows[3 * i + 1] = x[2 * i + 1], rows[3 * i + 2] = (float)lab[i];
    return 0;
}

/* A conditional flow learns the moons given the moon label: samples for
 * label 0 lie on the upper moon, for label 1 on the lower one, and the
 * density of a point is higher under its own label. */
static void test_conditional(void) {
    const char *specs[] = {"nsf(layers=4, hidden=[32,32], bins=6, context=1)", "maf(layers=3, hidden=[32,32], context=1)"};
    for (int k = 0; k < 2; k++) {
        nf_flow *f = NULL;
        CHECK_OK(nf_flow_from_spec(specs[k], 2, 3, &f));
        if (!f) continue;
        CHECK(nf_flow_context_dim(f) == 1, "%s: context dimension 1", specs[k]);
        nf_train_opts o = nf_train_defaults();
        o.lr = 3e-3f, o.batch = 128, o.steps = 600, o.log_every = 100, o.seed = 5;
        CHECK_OK(nf_flow_fit_stream(f, draw_labelled_moons, NULL, &o, NULL));
        nf_rng *rng = NULL;
        nf_rng_create(9, &rng);
        float c0[400], c1[400], x0[800], x1[800], lp00[400], lp01[400];
        for (int i = 0; i < 400; i++) c0[i] = 0, c1[i] = 1;
        CHECK_OK(nf_flow_sample_ctx(f, rng, c0, 400, x0));
        CHECK_OK(nf_flow_sample_ctx(f, rng, c1, 400, x1));
        double m0 = 0, m1 = 0;
        for (int i = 0; i < 400; i++) m0 += x0[2 * i + 1] / 400.0, m1 += x1[2 * i + 1] / 400.0;
        /* make_moons: the upper moon (label 0) has mean height 2/pi = 0.64, the lower one -0.14 */
        CHECK(fabs(m0 - 0.64) < 0.15 && fabs(m1 + 0.14) < 0.15, "%s: sample mean heights %.3f (label 0), %.3f (label 1)",
              specs[k], m0, m1);
        CHECK_OK(nf_flow_log_prob_ctx(f, x0, c0, 400, lp00));
        CHECK_OK(nf_flow_log_prob_ctx(f, x0, c1, 400, lp01));
        double own = 0, other = 0;
        for (int i = 0; i < 400; i++) own += lp00[i] / 400.0, other += fmax(lp01[i], -50) / 400.0;
        CHECK(own > other + 3, "%s: label-0 samples score %.2f under label 0, %.2f under label 1", specs[k], own, other);
        float lp[4];
        CHECK_ERR(nf_flow_log_prob(f, x0, 2, lp), NF_ERR_ARG, "conditional");
        CHECK_ERR(nf_flow_sample(f, rng, 2, x0), NF_ERR_ARG, "conditional");
        nf_rng_free(rng);
        nf_flow_free(f);
    }
}

/* log p~(x) = -|x - (1, -2)|^2 / (2 * 0.25): a Gaussian with scale 0.5 */
static int gauss_target(void *u, const float *x, size_t n, size_t d, float *lp, float *g) {
    (void)u;
    for (size_t i = 0; i < n; i++) {
        double a = x[i * d] - 1.0, b = x[i * d + 1] + 2.0;
        lp[i] = (float)(-(a * a + b * b) / 0.5);
        if (g) g[i * d] = (float)(-a / 0.25), g[i * d + 1] = (float)(-b / 0.25);
    }
    return 0;
}

/* Reverse KL: an affine flow fitted to a Gaussian target reaches it exactly
 * (loss -> -log Z, zero variance); planar and IAF flows fitted to U1 put
 * their samples on its ring; the energies' gradients match differences. */
static void test_reverse_kl(void) {
    nf_flow *f = NULL;
    CHECK_OK(nf_flow_from_spec("affine(rank=0)", 2, 1, &f));
    nf_train_opts o = nf_train_defaults();
    o.lr = 1e-2f, o.batch = 64, o.steps = 3000, o.log_every = 500;
    nf_train_report r;
    CHECK_OK(nf_flow_fit_reverse_kl(f, gauss_target, NULL, &o, &r));
    double logz = log(2 * 3.14159265358979323846 * 0.25);
    /* the KL estimate is log q - log p~ averaged over 500 steps: >= -log Z up to noise, and close to it */
    CHECK(r.train_loss > -logz - 1e-3 && r.train_loss < -logz + 5e-3, "reverse KL to a Gaussian: loss %.5f, -log Z = %.5f",
          r.train_loss, -logz);
    nf_rng *rng = NULL;
    nf_rng_create(3, &rng);
    float xs[2000], m[2] = {0}, v[2] = {0};
    CHECK_OK(nf_flow_sample(f, rng, 1000, xs));
    for (int i = 0; i < 1000; i++)
        for (int j = 0; j < 2; j++) m[j] += xs[2 * i + j] / 1000;
    for (int i = 0; i < 1000; i++)
        for (int j = 0; j < 2; j++) v[j] += (xs[2 * i + j] - m[j]) * (xs[2 * i + j] - m[j]) / 1000;
    CHECK(fabs(m[0] - 1) < 0.05 && fabs(m[1] + 2) < 0.05 && fabs(sqrtf(v[0]) - 0.5f) < 0.03 && fabs(sqrtf(v[1]) - 0.5f) < 0.03,
          "fitted Gaussian: mean (%.3f, %.3f), std (%.3f, %.3f)", m[0], m[1], sqrtf(v[0]), sqrtf(v[1]));
    nf_train_report_free(&r);
    nf_flow_free(f);

    nf_log_density_fn u1 = NULL;
    CHECK_OK(nf_energy_target("u1", &u1));
    CHECK_ERR(nf_energy_target("u9", &u1), NF_ERR_ARG, "known: u1");
    /* the energies' gradients against central differences */
    for (int k = 1; k <= 4; k++) {
        char nm[4] = {'u', (char)('0' + k), 0};
        nf_log_density_fn t = NULL;
        CHECK_OK(nf_energy_target(nm, &t));
        float pt[2] = {0.7f, -0.4f}, lp, g[2];
        t(NULL, pt, 1, 2, &lp, g);
        for (int j = 0; j < 2; j++) {
            float q[2] = {pt[0], pt[1]}, lpp, lpm;
            q[j] = pt[j] + 0.00390625f; /* 2^-8: exact in float */
            t(NULL, q, 1, 2, &lpp, NULL);
            q[j] = pt[j] - 0.00390625f;
            t(NULL, q, 1, 2, &lpm, NULL);
            CHECK_NEAR(g[j], ((double)lpp - lpm) / (2 * 0.00390625), 2e-3, "%s gradient [%d]", nm, j);
        }
    }
    const char *specs[] = {"planar(layers=16)", "iaf(layers=2, hidden=[32,32])"};
    for (int k = 0; k < 2; k++) {
        nf_flow *h = NULL;
        CHECK_OK(nf_flow_from_spec(specs[k], 2, 2, &h));
        if (!h) continue;
        o = nf_train_defaults();
        o.lr = 5e-3f, o.batch = 128, o.steps = 1500, o.log_every = 250;
        CHECK_OK(nf_flow_fit_reverse_kl(h, u1, NULL, &o, &r));
        CHECK(r.n_history == 6 && r.train_history[5] < r.train_history[0] - 0.5, "%s on U1: KL estimate %.3f -> %.3f",
              specs[k], r.n_history ? r.train_history[0] : NAN, r.n_history == 6 ? r.train_history[5] : NAN);
        CHECK_OK(nf_flow_sample(h, rng, 1000, xs));
        double rad = 0;
        for (int i = 0; i < 1000; i++) rad += sqrt(xs[2 * i] * xs[2 * i] + xs[2 * i + 1] * xs[2 * i + 1]) / 1000;
        CHECK(fabs(rad - 2) < 0.3, "%s on U1: samples at mean radius %.3f (the ring is at 2)", specs[k], rad);
        nf_train_report_free(&r);
        nf_flow_free(h);
    }
    nf_rng_free(rng);
}

static int draw_8g(void *u, nf_rng *r, float *x, size_t n) {
    (void)u;
    return nf_data_generate("8gaussians", r, n, 0.05f, x, NULL) != NF_OK;
}

/* A trainable mixture base: its parameters follow the bijector's, train
 * with them (the fit with it beats the same MAF on a normal base), survive
 * save and load, and reverse KL refuses it. */
static void test_mog_base(void) {
    const char *path = "/tmp/nflow_mog_test.nflow";
    nf_flow *f = NULL, *g = NULL;
    CHECK_OK(nf_flow_from_spec("transformed(mog(k=8), maf(hidden=[16,16]))", 2, 4, &f));
    CHECK_OK(nf_flow_from_spec("maf(hidden=[16,16])", 2, 4, &g));
    if (!f || !g) return;
    size_t pb = nf_flow_param_count(g), pm = nf_flow_param_count(f);
    CHECK(pm == pb + 8 + 2 * 8 * 2, "mixture base adds 8 + 32 parameters (%zu vs %zu)", pm, pb);
    float before[40];
    memcpy(before, nf_flow_params(f) + pb, sizeof before);
    nf_train_opts o = nf_train_defaults();
    o.lr = 5e-3f, o.batch = 256, o.steps = 800, o.log_every = 800;
    nf_train_report r1, r2;
    CHECK_OK(nf_flow_fit_stream(f, draw_8g, NULL, &o, &r1));
    CHECK_OK(nf_flow_fit_stream(g, draw_8g, NULL, &o, &r2));
    CHECK(memcmp(before, nf_flow_params(f) + pb, sizeof before) != 0, "the mixture's parameters trained");
    CHECK(r1.train_loss < r2.train_loss - 0.3, "8 gaussians: MAF on a mixture base %.3f, on a normal base %.3f", r1.train_loss,
          r2.train_loss);
    CHECK_OK(nf_flow_save(f, path, NULL));
    nf_flow *h = NULL;
    CHECK_OK(nf_flow_load(path, &h));
    if (h) {
        CHECK(!memcmp(nf_flow_params(h), nf_flow_params(f), pm * sizeof(float)), "mixture base reloads bit-identically");
        float x[20], a[10], b[10];
        for (int i = 0; i < 20; i++) x[i] = (float)i / 5 - 2;
        CHECK_OK(nf_flow_log_prob(f, x, 10, a));
        CHECK_OK(nf_flow_log_prob(h, x, 10, b));
        CHECK(!memcmp(a, b, sizeof a), "log_prob identical after reload");
        nf_flow_free(h);
    }
    remove(path);
    nf_log_density_fn u1 = NULL;
    nf_energy_target("u1", &u1);
    CHECK_ERR(nf_flow_fit_reverse_kl(f, u1, NULL, &o, NULL), NF_ERR_UNSUPPORTED, "reparameterisable");
    nf_train_report_free(&r1), nf_train_report_free(&r2);
    nf_flow_free(f), nf_flow_free(g);
}

/* L = sum g.x + sum gl.ldj of a training-mode batch-norm inverse pass. */
static double bn_train_loss(const nf_bijector *b, const float *y, size_t n, const float *g, const float *gl, void *scr) {
    float x[64], ldj[16] = {0};
    nf_pass p = {n, NULL, scr, NULL, 1, NULL};
    b->ops->inverse(b, &p, x, ldj, y);
    double L = 0;
    for (size_t i = 0; i < n; i++) {
        L += (double)gl[i] * ldj[i];
        for (size_t j = 0; j < b->d; j++) L += (double)g[i * b->d + j] * x[i * b->d + j];
    }
    return L;
}

/* Batch norm: the training-mode pass (batch statistics, which couple the
 * rows) has the right gradients; only update passes move the running
 * averages; a fitted flow's running averages match the data and survive
 * save and load. */
static void test_batchnorm(void) {
    nf_bijector *b = NULL;
    CHECK_OK(nf_bijector_batchnorm(3, &b));
    if (!b) return;
    nf_rng *rng = NULL;
    nf_rng_create(12, &rng);
    enum { n = 6, d = 3 };
    float y[n * d], g[n * d], gl[n], dy[n * d], dp[2 * d] = {0}, *P = nf_bijector_params(b), *rm, *rv;
    for (int k = 0; k < 2 * d; k++) P[k] = 0.4f * nf_rng_normal(rng);
    for (int i = 0; i < n * d; i++) y[i] = 2 + 1.5f * nf_rng_normal(rng), g[i] = nf_rng_normal(rng);
    for (int i = 0; i < n; i++) gl[i] = nf_rng_normal(rng);
    unsigned char scr[4096] __attribute__((aligned(64)));
    nf_pass p = {n, NULL, scr, NULL, 1, NULL};
    float xo[n * d];
    b->ops->inverse(b, &p, xo, NULL, y);
    b->ops->inverse_backward(b, &p, dy, dp, g, gl, y, xo);
    const double h = 1.0 / 256;
    for (int q = 0; q < n * d; q++) {
        float v0 = y[q];
        y[q] = (float)(v0 + h);
        double lp = bn_train_loss(b, y, n, g, gl, scr);
        y[q] = (float)(v0 - h);
        double lm = bn_train_loss(b, y, n, g, gl, scr);
        y[q] = v0;
        CHECK_NEAR(dy[q], (lp - lm) / (2 * h), 2e-3, "training batch norm dL/dy[%d]", q);
    }
    for (int k = 0; k < 2 * d; k++) {
        float v0 = P[k];
        P[k] = (float)(v0 + h);
        double lp = bn_train_loss(b, y, n, g, gl, scr);
        P[k] = (float)(v0 - h);
        double lm = bn_train_loss(b, y, n, g, gl, scr);
        P[k] = v0;
        CHECK_NEAR(dp[k], (lp - lm) / (2 * h), 2e-3, "training batch norm dL/dparam[%d]", k);
    }
    CHECK_OK(nf_bijector_batchnorm_running(b, &rm, &rv));
    CHECK(rm[0] == 0 && rv[0] == 1, "training passes without the update flag leave the running averages");
    nf_pass pu = {n, NULL, scr, NULL, 2, NULL};
    b->ops->inverse(b, &pu, xo, NULL, y);
    CHECK(rm[0] != 0 && rv[0] != 1, "an update pass moves them");
    nf_bijector_free(b);

    const char *path = "/tmp/nflow_bn_test.nflow";
    nf_flow *f = NULL;
    CHECK_OK(nf_flow_from_spec("chain(batchnorm, maf(hidden=[16]))", 2, 1, &f)); /* batchnorm first on data */
    float data[1000 * 2];
    for (int i = 0; i < 1000; i++) data[2 * i] = 3 + 2 * nf_rng_normal(rng), data[2 * i + 1] = -1 + 0.5f * nf_rng_normal(rng);
    nf_train_opts o = nf_train_defaults();
    o.epochs = 30, o.batch = 100, o.val_split = 0.2f;
    nf_train_report r;
    CHECK_OK(nf_flow_fit(f, data, 1000, &o, &r));
    nf_bijector *const *parts;
    nf__chain_parts(nf_flow_bijector(f), &parts);
    CHECK_OK(nf_bijector_batchnorm_running(parts[1], &rm, &rv));
    CHECK(fabs(rm[0] - 3) < 0.3 && fabs(rm[1] + 1) < 0.1 && fabs(rv[0] - 4) < 0.8 && fabs(rv[1] - 0.25) < 0.05,
          "running averages follow the data: mean (%.3f, %.3f), var (%.3f, %.3f)", rm[0], rm[1], rv[0], rv[1]);
    CHECK(isfinite(r.val_loss) && r.val_loss < r.val_history[0], "validation (running averages) improves: %.3f -> %.3f",
          r.val_history[0], r.val_loss);
    CHECK_OK(nf_flow_save(f, path, NULL));
    nf_flow *ld = NULL;
    CHECK_OK(nf_flow_load(path, &ld));
    if (ld) {
        float a[50], c[50];
        CHECK_OK(nf_flow_log_prob(f, data, 50, a));
        CHECK_OK(nf_flow_log_prob(ld, data, 50, c));
        CHECK(!memcmp(a, c, sizeof a), "batch norm's running averages survive save and load");
        nf_flow_free(ld);
    }
    remove(path);
    nf_train_report_free(&r);
    nf_flow_free(f);
    nf_rng_free(rng);
}

/* Validation rows outside the model's support (log of a negative) give a
 * validation NLL of +inf: recorded, never an improvement, and early
 * stopping goes on instead of the fit failing. */
static void test_infinite_validation(void) {
    nf_flow *f = NULL;
    CHECK_OK(nf_flow_from_spec("chain(exp, maf(hidden=[8]))", 2, 1, &f));
    if (!f) return;
    float x[200 * 2];
    nf_rng *rng = NULL;
    nf_rng_create(4, &rng);
    for (int i = 0; i < 400; i++) x[i] = 0.5f + nf_rng_uniform(rng);
    x[399] = -1; /* the last row is a validation row */
    nf_train_opts o = nf_train_defaults();
    o.epochs = 10, o.batch = 50, o.val_split = 0.2f, o.patience = 3;
    nf_train_report r;
    nf_status s = nf_flow_fit(f, x, 200, &o, &r);
    CHECK(s == NF_OK, "fit with an out-of-support validation row: %s", s ? nf_last_error() : "ok");
    if (!s) {
        CHECK(r.epochs == 3 && r.stopped_early, "stopped by patience after 3 epochs (ran %zu)", r.epochs);
        CHECK(r.n_history >= 1 && isinf(r.val_history[0]) && isfinite(r.train_history[0]),
              "validation NLL recorded as inf, training NLL finite");
    }
    nf_train_report_free(&r);
    nf_rng_free(rng);
    nf_flow_free(f);
}

static void test_options(void) {
    /* TFP's fraction_masked: 0.5 of d = 4 conditions on the first 2 */
    nf_rng *rng = NULL;
    nf_rng_create(12, &rng);
    nf_coupling_opts c = {.net = {.hidden = {8}, .nhidden = 1, .activation = NF_ACT_TANH}, .fraction_masked = 0.5f};
    nf_bijector *b = NULL;
    CHECK_OK(nf_bijector_coupling(4, &c, rng, &b));
    float x[4] = {0.1f, -0.2f, 0.3f, 0.4f}, y[4];
    CHECK_OK(nf_bijector_forward(b, x, 1, y, NULL));
    CHECK(y[0] == x[0] && y[1] == x[1] && y[2] != x[2] && y[3] != x[3], "fraction_masked 0.5 keeps the first half");
    nf_bijector_free(b);
    c.fraction_masked = 0;
    CHECK_ERR(nf_bijector_coupling(4, &c, rng, &b), NF_ERR_ARG, "fraction_masked");
    c.num_masked = 4;
    CHECK_ERR(nf_bijector_coupling(4, &c, rng, &b), NF_ERR_ARG, "1..d-1");

    /* Gradient clipping.  With eps = 1 Adam's update is at most lr times the
     * (clipped) gradient's norm, so 5 clipped steps move the parameters by at
     * most 5 lr clip in L2 norm; unclipped ones move them much further. */
    double moved[2];
    for (int clip = 0; clip < 2; clip++) {
        nf_flow *f = small_realnvp(3);
        size_t np = nf_flow_param_count(f);
        float *before = malloc(np * sizeof(float));
        memcpy(before, nf_flow_params(f), np * sizeof(float));
        nf_train_opts o = nf_train_defaults();
        o.batch = 32, o.steps = 5, o.lr = 0.1f, o.eps = 1, o.log_every = 5;
        o.clip_norm = clip ? 0.01f : 0;
        CHECK_OK(nf_flow_fit_stream(f, draw_moons, NULL, &o, NULL));
        double ss = 0;
        for (size_t k = 0; k < np; k++) {
            double dlt = nf_flow_params(f)[k] - before[k];
            ss += dlt * dlt;
        }
        moved[clip] = sqrt(ss);
        free(before);
        nf_flow_free(f);
    }
    CHECK(moved[1] > 0 && moved[1] <= 5 * 0.1 * 0.01 * 1.001, "clipped steps move at most 5 lr clip: %g", moved[1]);
    CHECK(moved[0] > 10 * moved[1], "unclipped steps move further: %g vs %g", moved[0], moved[1]);
    nf_rng_free(rng);
}

static int stop_at(void *u, const nf_train_progress *p) {
    const size_t *at = u; /* stop after this step (stream) or epoch (fit) */
    return (p->epoch ? p->epoch : p->step) >= *at;
}

/* An interrupted run resumed from its checkpoint ends bit-identical to an
 * uninterrupted one, for streamed and epoch training. */
static void test_resume(void) {
    const char *t = getenv("TMPDIR");
    char ck[512];
    snprintf(ck, sizeof ck, "%s/nflow_ckpt_%d.nflow", t && *t ? t : "/tmp", (int)getpid());
    nf_rng *rng = NULL;
    nf_rng_create(31, &rng);
    float *x = malloc(600 * 2 * sizeof(float));
    nf_data_moons(rng, 600, 0.05f, x, NULL);
    nf_log_density_fn u2 = NULL;
    CHECK_OK(nf_energy_target("u2", &u2));
    for (int mode = 0; mode < 3; mode++) {
        nf_flow *full = NULL, *part = NULL, *res = NULL;
        const char *spec = mode == 1 ? "maf(layers=2, hidden=[16,16])" : "realnvp(layers=2, hidden=[16])";
        CHECK_OK(nf_flow_from_spec(spec, 2, 5, &full));
        CHECK_OK(nf_flow_from_spec(spec, 2, 5, &part));
        CHECK_OK(nf_flow_from_spec(spec, 2, 5, &res));
        nf_train_opts o = nf_train_defaults();
        o.seed = 9, o.lr = 3e-3f;
        nf_train_report a, b, c;
        size_t at = mode == 1 ? 6 : 120;
        remove(ck);
        if (mode == 2) { /* reverse KL on two threads, with annealing */
            o.steps = 300, o.batch = 64, o.log_every = 40, o.threads = 2, o.anneal_steps = 100;
            CHECK_OK(nf_flow_fit_reverse_kl(full, u2, NULL, &o, &a));
            o.checkpoint_path = ck, o.checkpoint_every = 60, o.callback = stop_at, o.user = &at;
            CHECK_OK(nf_flow_fit_reverse_kl(part, u2, NULL, &o, &b)); /* stops at step 120 */
            o.callback = NULL, o.resume_path = ck;
            CHECK_OK(nf_flow_fit_reverse_kl(res, u2, NULL, &o, &c));
        } else if (mode) {
            o.epochs = 12, o.batch = 64, o.val_split = 0.2f, o.standardize = 1;
            CHECK_OK(nf_flow_fit(full, x, 600, &o, &a));
            o.checkpoint_path = ck, o.checkpoint_every = 3, o.callback = stop_at, o.user = &at;
            CHECK_OK(nf_flow_fit(part, x, 600, &o, &b)); /* stops after epoch 6, checkpoint of epoch 6 */
            o.callback = NULL, o.resume_path = ck;
            CHECK_OK(nf_flow_fit(res, x, 600, &o, &c));
        } else {
            o.steps = 300, o.batch = 50, o.log_every = 40;
            CHECK_OK(nf_flow_fit_stream(full, draw_moons, NULL, &o, &a));
            o.checkpoint_path = ck, o.checkpoint_every = 60, o.callback = stop_at, o.user = &at;
            CHECK_OK(nf_flow_fit_stream(part, draw_moons, NULL, &o, &b)); /* stops at step 120 */
            o.callback = NULL, o.resume_path = ck;
            CHECK_OK(nf_flow_fit_stream(res, draw_moons, NULL, &o, &c));
        }
        size_t np = nf_flow_param_count(full);
        CHECK(b.steps < a.steps, "%s: the interrupted run stopped early (%zu of %zu steps)", spec, b.steps, a.steps);
        CHECK(c.steps == a.steps && !memcmp(nf_flow_params(full), nf_flow_params(res), np * sizeof(float)),
              "%s: resumed run ends bit-identical to the uninterrupted one", spec);
        CHECK(c.n_history == a.n_history && !memcmp(c.train_history, a.train_history, a.n_history * sizeof(double)),
              "%s: resumed history equals the uninterrupted one", spec);
        nf_train_report_free(&a), nf_train_report_free(&b), nf_train_report_free(&c);
        /* a checkpoint of another flow is refused */
        nf_flow *other = NULL;
        CHECK_OK(nf_flow_from_spec("maf(hidden=[7])", 2, 5, &other));
        o.callback = NULL, o.resume_path = ck;
        nf_status st = mode == 2   ? nf_flow_fit_reverse_kl(other, u2, NULL, &o, NULL)
                       : mode == 1 ? nf_flow_fit(other, x, 600, &o, NULL)
                                   : nf_flow_fit_stream(other, draw_moons, NULL, &o, NULL);
        CHECK(st == NF_ERR_DOMAIN && strstr(nf_last_error(), "another flow"), "checkpoint of another flow: %s", nf_last_error());
        /* a checkpoint of another kind of training is refused */
        st = mode == 2 ? nf_flow_fit_stream(res, draw_moons, NULL, &o, NULL) : nf_flow_fit_reverse_kl(res, u2, NULL, &o, NULL);
        CHECK(st == NF_ERR_DOMAIN && strstr(nf_last_error(), "not a checkpoint of"), "checkpoint of other training: %s",
              nf_last_error());
        nf_flow_free(other);
        /* a checkpoint is also a model file */
        nf_flow *m = NULL;
        CHECK_OK(nf_flow_load(ck, &m));
        nf_flow_free(m);
        nf_flow_free(full), nf_flow_free(part), nf_flow_free(res);
    }
    remove(ck);
    free(x);
    nf_rng_free(rng);
}

/* Resident memory in KiB from /proc/self/status, or -1 where there is none. */
static long resident_kib(void) {
    FILE *fp = fopen("/proc/self/status", "r");
    if (!fp) return -1;
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, fp))
        if (!strncmp(line, "VmRSS:", 6)) kib = strtol(line + 6, NULL, 10);
    fclose(fp);
    return kib;
}

/* Training workspaces are given back when a fit returns: calling fit again
 * and again must not grow the process.  (With them taken from glibc's
 * malloc, each RealNVP fit left 12.8 MiB more resident until it settled
 * near 74 MiB.)  Only where large blocks are mapped (not under sanitizers
 * or valgrind, whose malloc keeps freed memory on purpose). */
static void test_fit_gives_memory_back(void) {
    if (!nf__alloc_maps_large() || resident_kib() < 0) return;
    nf_flow *f = NULL;
    CHECK_OK(nf_flow_from_spec("realnvp(layers=6, hidden=[256,256])", 2, 1, &f));
    nf_train_opts o = nf_train_defaults();
    o.batch = 256, o.steps = 2, o.log_every = 0;
    long before = 0;
    for (int k = 0; k < 6; k++) {
        CHECK_OK(nf_flow_fit_stream(f, draw_moons, NULL, &o, NULL));
        if (k == 1) before = resident_kib();
    }
    long after = resident_kib();
    CHECK(after - before < 4096, "4 more fits grew the process by %ld KiB (from %ld)", after - before, before);
    nf_flow_free(f);
}


/* The compute-backend seam: a flow whose backend counts its calls (and
 * forwards them to the CPU's) gives the CPU's numbers bit for bit, and its
 * passes and training really go through the table: every network product,
 * every Adam update. */
static size_t be_gemm, be_adam;
static void count_gemm(const nf_backend *be, int ta, int tb, size_t m, size_t n, size_t k, float alpha, const float *A,
                       size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc, const nf_epi *e) {
    __atomic_add_fetch(&be_gemm, 1, __ATOMIC_RELAXED);
    nf__backend_cpu.gemm(be, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc, e);
}
static void count_adam(const nf_backend *be, const nf_adam *a, float gscale, float *p, float *g, float *m, float *v,
                       size_t n) {
    __atomic_add_fetch(&be_adam, 1, __ATOMIC_RELAXED);
    nf__backend_cpu.adam(be, a, gscale, p, g, m, v, n);
}

static void test_backend_seam(void) {
    nf_backend counting = nf__backend_cpu;
    counting.name = "counting";
    counting.gemm = count_gemm;
    counting.adam = count_adam;
    nf_flow *a = small_realnvp(7), *b = small_realnvp(7);
    b->be = &counting;
    float x[64 * 2], la[64], lb[64];
    nf_rng *rng = NULL;
    nf_rng_create(2, &rng);
    nf_data_moons(rng, 64, 0.05f, x, NULL);
    CHECK_OK(nf_flow_log_prob(a, x, 64, la));
    CHECK_OK(nf_flow_log_prob(b, x, 64, lb));
    CHECK(be_gemm > 0 && !memcmp(la, lb, sizeof la), "log_prob through the table: %zu products, same values", be_gemm);
    nf_train_opts o = nf_train_defaults();
    o.batch = 64, o.steps = 10, o.log_every = 5, o.threads = 2, o.split = NF_SPLIT_ROWS;
    be_gemm = 0;
    CHECK_OK(nf_flow_fit_stream(a, draw_moons, NULL, &o, NULL));
    CHECK_OK(nf_flow_fit_stream(b, draw_moons, NULL, &o, NULL));
    size_t np = nf_flow_param_count(a);
    CHECK(be_adam == 20 && be_gemm > 0, "training through the table: %zu Adam updates (10 steps x 2 threads), %zu products",
          be_adam, be_gemm);
    CHECK(!memcmp(nf_flow_params(a), nf_flow_params(b), np * sizeof(float)), "trained through the table: same parameters");
    /* a split by columns is the CPU backend's team: a flow on another backend keeps it and splits rows */
    o.split = NF_SPLIT_COLUMNS;
    be_adam = 0;
    CHECK_OK(nf_flow_fit_stream(b, draw_moons, NULL, &o, NULL));
    CHECK(be_adam == 20, "columns asked of a flow on its own backend: rows, %zu Adam updates through it (want 20)", be_adam);
    nf_flow_free(a), nf_flow_free(b);
    nf_rng_free(rng);
}

/* nf_flow_fit with epochs = 0 runs whole epochs covering `steps` steps:
 * the same run, bit for bit, as the equivalent epoch count. */
static void test_fit_steps(void) {
    nf_rng *rng = NULL;
    nf_rng_create(8, &rng);
    float *x = malloc(500 * 2 * sizeof(float));
    nf_data_moons(rng, 500, 0.05f, x, NULL);
    nf_flow *a = small_realnvp(4), *b = small_realnvp(4);
    nf_train_opts o = nf_train_defaults();
    o.batch = 64, o.val_split = 0.2f, o.epochs = 0, o.steps = 20; /* 400 rows: 7 steps an epoch -> 3 epochs */
    nf_train_report ra, rb;
    CHECK_OK(nf_flow_fit(a, x, 500, &o, &ra));
    o.epochs = 3;
    CHECK_OK(nf_flow_fit(b, x, 500, &o, &rb));
    size_t np = nf_flow_param_count(a);
    CHECK(ra.steps == 21 && ra.epochs == 3 && rb.steps == 21, "steps=20 runs 3 whole epochs (%zu steps, %zu epochs)", ra.steps,
          ra.epochs);
    CHECK(!memcmp(nf_flow_params(a), nf_flow_params(b), np * sizeof(float)), "steps=20 equals epochs=3 bit for bit");
    o.epochs = 0, o.steps = 0;
    CHECK_ERR(nf_flow_fit(a, x, 500, &o, NULL), NF_ERR_ARG, "epochs or steps");
    nf_train_report_free(&ra), nf_train_report_free(&rb);
    nf_flow_free(a), nf_flow_free(b);
    free(x);
    nf_rng_free(rng);
}

/* Reverse KL on the training pool: a run on 3 threads repeats bit for bit,
 * and follows the one-thread run (the sums differ only in their order). */
static void test_reverse_kl_threads(void) {
    nf_log_density_fn u1 = NULL;
    CHECK_OK(nf_energy_target("u1", &u1));
    nf_flow *f[3] = {NULL, NULL, NULL};
    nf_train_report r[3];
    size_t threads[3] = {1, 3, 3};
    for (int k = 0; k < 3; k++) {
        CHECK_OK(nf_flow_from_spec("iaf(layers=2, hidden=[16,16])", 2, 3, &f[k]));
        nf_train_opts o = nf_train_defaults();
        o.lr = 5e-3f, o.batch = 128, o.steps = 200, o.log_every = 50, o.threads = threads[k], o.split = NF_SPLIT_ROWS;
        CHECK_OK(nf_flow_fit_reverse_kl(f[k], u1, NULL, &o, &r[k]));
    }
    size_t np = nf_flow_param_count(f[0]);
    CHECK(!memcmp(nf_flow_params(f[1]), nf_flow_params(f[2]), np * sizeof(float)), "3-thread reverse KL repeats bit for bit");
    CHECK(memcmp(nf_flow_params(f[0]), nf_flow_params(f[1]), np * sizeof(float)) != 0, "3 threads sum in another order");
    CHECK(r[0].n_history == 4 && r[1].n_history == 4 && fabs(r[0].train_loss - r[1].train_loss) < 0.05,
          "1 and 3 threads reach the same KL estimate (%.4f, %.4f)", r[0].train_loss, r[1].train_loss);
    for (int k = 0; k < 3; k++) {
        nf_train_report_free(&r[k]);
        nf_flow_free(f[k]);
    }
}

/* The reduction hook as a data-parallel run would use it: two "ranks"
 * (threads), each training its own copy of the flow on its own stream,
 * average their gradients and losses in the hook; their parameters stay
 * equal bit for bit although their data differ.  The hook sees every
 * parameter once per step; a failing hook stops training, keeping the
 * parameters of the last good step. */
typedef struct ranks {
    pthread_barrier_t bar;
    float *g[2];
    double loss[2];
    size_t calls[2], n;
} ranks;
typedef struct rank {
    ranks *all;
    int id;
    nf_flow *f;
    nf_status st;
} rank;

static int fail_third(void *user, float *grad, size_t n, double *loss) {
    (void)grad, (void)n, (void)loss;
    return ++*(size_t *)user == 3 ? 7 : 0;
}

static int average_hook(void *user, float *grad, size_t n, double *loss) {
    rank *r = user;
    ranks *a = r->all;
    a->calls[r->id]++;
    a->n = n;
    a->g[r->id] = grad;
    a->loss[r->id] = *loss;
    pthread_barrier_wait(&a->bar);
    const float *other = a->g[1 - r->id];
    float *mine = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) mine[i] = r->id ? (other[i] + grad[i]) / 2 : (grad[i] + other[i]) / 2;
    double l = (a->loss[0] + a->loss[1]) / 2;
    pthread_barrier_wait(&a->bar); /* both have read both */
    memcpy(grad, mine, n * sizeof(float));
    *loss = l;
    free(mine);
    return 0;
}

static void *rank_main(void *arg) {
    rank *r = arg;
    nf_train_opts o = nf_train_defaults();
    o.batch = 50, o.steps = 40, o.log_every = 20, o.seed = 100 + (uint64_t)r->id; /* each rank its own stream */
    o.reduce = average_hook, o.reduce_user = r;
    r->st = nf_flow_fit_stream(r->f, draw_moons, NULL, &o, NULL);
    return NULL;
}

static void test_reduce_hook(void) {
    ranks a;
    memset(&a, 0, sizeof a);
    pthread_barrier_init(&a.bar, NULL, 2);
    rank r[2] = {{&a, 0, small_realnvp(6), NF_OK}, {&a, 1, small_realnvp(6), NF_OK}};
    pthread_t th;
    pthread_create(&th, NULL, rank_main, &r[1]);
    rank_main(&r[0]);
    pthread_join(th, NULL);
    size_t np = nf_flow_param_count(r[0].f);
    CHECK(r[0].st == NF_OK && r[1].st == NF_OK, "both ranks trained");
    CHECK(a.calls[0] == 40 && a.calls[1] == 40 && a.n == np, "the hook ran once a step on all %zu parameters (%zu, %zu calls)",
          np, a.calls[0], a.calls[1]);
    CHECK(!memcmp(nf_flow_params(r[0].f), nf_flow_params(r[1].f), np * sizeof(float)),
          "ranks with averaged gradients keep equal parameters");
    nf_flow *alone = small_realnvp(6);
    nf_train_opts o = nf_train_defaults();
    o.batch = 50, o.steps = 40, o.log_every = 20, o.seed = 100;
    CHECK_OK(nf_flow_fit_stream(alone, draw_moons, NULL, &o, NULL));
    CHECK(memcmp(nf_flow_params(alone), nf_flow_params(r[0].f), np * sizeof(float)) != 0,
          "the hook changed the step (rank 0 alone trains differently)");
    /* a failing hook at step 3: the parameters after step 2 are kept */
    nf_flow *g = small_realnvp(6), *h = small_realnvp(6);
    o.steps = 2;
    CHECK_OK(nf_flow_fit_stream(h, draw_moons, NULL, &o, NULL));
    size_t calls = 0;
    o.steps = 10, o.reduce = fail_third, o.reduce_user = &calls;
    nf_train_report rep;
    CHECK_ERR(nf_flow_fit_stream(g, draw_moons, NULL, &o, &rep), NF_ERR_ARG,
              "step 3 (the parameters after step 2 are kept): the reduce hook reported failure (code 7)");
    CHECK(rep.steps == 2 && !memcmp(nf_flow_params(g), nf_flow_params(h), np * sizeof(float)),
          "the parameters after step 2 are kept (%zu steps reported)", rep.steps);
    pthread_barrier_destroy(&a.bar);
    nf_flow_free(g), nf_flow_free(h), nf_flow_free(alone);
    nf_flow_free(r[0].f), nf_flow_free(r[1].f);
}

/* Dequantisation: integer data uniform on {0..3}^2, dequantised, is uniform
 * on [0, 4)^2, whose NLL is 2 log 4: a spline flow gets close to it (and
 * never below, as it is a proper density of the dequantised data), while
 * without dequantisation the density piles onto the integers and the
 * "NLL" falls far below. */
static void test_dequantize(void) {
    nf_rng *r = NULL;
    nf_rng_create(1, &r);
    enum { N = 4000 };
    float *x = malloc(N * 2 * sizeof(float));
    for (int i = 0; i < 2 * N; i++) x[i] = (float)nf_rng_below(r, 4);
    double val[2] = {0, 0};
    for (int dq = 0; dq < 2; dq++) {
        nf_flow *f = NULL;
        CHECK_OK(nf_flow_from_spec("nsf(layers=4, hidden=[32,32], bins=8)", 2, 3, &f));
        nf_train_opts o = nf_train_defaults();
        o.epochs = 30, o.batch = 200, o.lr = 3e-3f, o.val_split = 0.25f, o.standardize = 1, o.dequantize = dq;
        nf_train_report rep;
        CHECK_OK(nf_flow_fit(f, x, N, &o, &rep));
        val[dq] = rep.val_loss;
        nf_train_report_free(&rep);
        nf_flow_free(f);
    }
    double ideal = 2 * log(4.0);
    CHECK(val[1] > ideal - 0.02 && val[1] < ideal + 0.1, "dequantised NLL %.4f near 2 log 4 = %.4f", val[1], ideal);
    CHECK(val[0] < ideal - 1, "without dequantisation the density collapses onto the integers (%.4f)", val[0]);
    free(x);
    nf_rng_free(r);
}

/* The threading policy: BLAS runs one thread inside nflow's calls, so a
 * seeded fit gives the same parameters whatever OpenBLAS's own thread
 * count (with 256-wide networks its multi-threaded sgemm sums in another
 * order), and the host's setting is put back afterwards. */
extern void openblas_set_num_threads(int) __attribute__((weak));
extern int openblas_get_num_threads(void) __attribute__((weak));

static void test_blas_threads(void) {
    if (!openblas_set_num_threads || !openblas_get_num_threads) {
        printf("note: the BLAS is not OpenBLAS; the BLAS-thread check was skipped\n");
        return;
    }
    nf_flow *f[2] = {NULL, NULL};
    int blas[2] = {1, 2};
    for (int k = 0; k < 2; k++) {
        openblas_set_num_threads(blas[k]);
        CHECK_OK(nf_flow_from_spec("realnvp(layers=2, hidden=[256,256])", 2, 5, &f[k]));
        nf_train_opts o = nf_train_defaults();
        o.batch = 256, o.steps = 20, o.log_every = 10;
        if (f[k]) CHECK_OK(nf_flow_fit_stream(f[k], draw_moons, NULL, &o, NULL));
        CHECK(openblas_get_num_threads() == blas[k], "the host's BLAS threads (%d) are put back (%d)", blas[k],
              openblas_get_num_threads());
    }
    openblas_set_num_threads(1);
    if (f[0] && f[1])
        CHECK(!memcmp(nf_flow_params(f[0]), nf_flow_params(f[1]), nf_flow_param_count(f[0]) * sizeof(float)),
              "a seeded fit does not depend on OpenBLAS's thread count");
    nf_flow_free(f[0]);
    nf_flow_free(f[1]);
}

/* The affine MAF's defaults on a 64-dimensional table (scikit-learn's
 * digits, standardised and dequantised): the validation loss stays finite
 * and falls every epoch at lr 1e-3 (an unbounded scale drove it to inf in
 * earlier measurements), and the spec's defaults are a soft-clamped scale
 * with an identity start and nflows' residual MADE. */
static void test_maf_defaults_on_a_table(void) {
    float *x = NULL;
    size_t n = 0, d = 0;
    char **names = NULL;
    CHECK_OK(nf_read_table_names("examples/data/digits.csv", &x, &n, &d, &names));
    if (!x || d != 65) return;
    size_t D = 64; /* the label column goes */
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < D; j++) x[i * D + j] = x[i * d + j];
    for (uint64_t seed = 1; seed <= 2; seed++) {
        nf_flow *f = NULL;
        CHECK_OK(nf_flow_from_spec("maf(layers=5, hidden=[128,128])", D, seed, &f));
        if (!f) continue;
        if (seed == 1) { /* an identity start: log_prob is the standard normal's */
            float z[64] = {0}, lp;
            CHECK_OK(nf_flow_log_prob(f, z, 1, &lp));
            CHECK_NEAR(lp, -64 * 0.91893853320467274, 1e-3, "the default MAF starts as the identity");
            /* nflows' residual MADE: 64 -> 128, two blocks of 2 x (128 x 128), 128 -> 2 x 64 */
            CHECK(nf_flow_param_count(f) == 5 * (64 * 128 + 128 + 4 * (128 * 128 + 128) + 128 * 128 + 128),
                  "the default MADE is the residual one (%zu parameters)", nf_flow_param_count(f));
        }
        nf_train_opts o = nf_train_defaults();
        o.epochs = 6, o.batch = 100, o.lr = 1e-3f, o.val_split = 0.15f, o.standardize = 1, o.dequantize = 1, o.seed = seed;
        nf_train_report r;
        CHECK_OK(nf_flow_fit(f, x, n, &o, &r));
        int ok = r.n_history == 6;
        for (size_t e = 0; ok && e < r.n_history; e++)
            ok = isfinite(r.val_history[e]) && (e == 0 || r.val_history[e] < r.val_history[e - 1]);
        CHECK(ok, "seed %llu: validation NLL finite and falling for 6 epochs (%.1f -> %.1f)", (unsigned long long)seed,
              r.n_history ? r.val_history[0] : NAN, r.n_history ? r.val_history[r.n_history - 1] : NAN);
        nf_train_report_free(&r);
        nf_flow_free(f);
    }
    nf_free_names(names, d);
    free(x);
}

void test_train(void) {
    test_maf_defaults_on_a_table();
    test_blas_threads();
    test_dequantize();
    test_backend_seam();
    test_fit_steps();
    test_reverse_kl_threads();
    test_reduce_hook();
    test_fit_gives_memory_back();
    test_made_masks_once();
    test_resume();
    test_far_points();
    test_threaded_training();
    test_logdet_accumulation();
    test_options();
    test_made_autoregressive();
    test_stream_training();
    test_spline_training();
    test_infinite_validation();
    test_actnorm_init();
    test_conditional();
    test_reverse_kl();
    test_mog_base();
    test_batchnorm();
    test_fit_data();
    test_scaler_and_data();
}
