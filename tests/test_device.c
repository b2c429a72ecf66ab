/*
 * test_device.c - flows on a device (nf_flow_set_device) against the same
 * flows on the CPU: log_prob, to_base, samples, one step's gradient and
 * loss, and seeded training runs, for every family a device runs; the
 * refusals of the rest by name.  The device programs run on the host device
 * (src/device/host.c: the kernels of kern.h in loops on the CPU) in every
 * build, and on the GPU when nflow was built with CUDA and one is present;
 * otherwise the GPU's checks are skipped with the reason printed and
 * counted in the closing line.
 */
#include "test.h"
#include "../src/device/prog.h"
#include "../src/train/trainer.h"

#include <stdlib.h>
#include <unistd.h>

/* The families a device runs, small (d = 3 or 4). */
static const struct {
    const char *spec;
    size_t d;
    int shift_into_bn; /* a layer's constant shift feeds a batchnorm: its gradient is zero, and Adam
                          turns the rounding noise there into lr-sized steps, so training compares
                          losses and densities but not parameters */
} FAMILIES[] = {
    {"realnvp(layers=3, hidden=[16,16])", 3, 0},                       /* separate s/t nets, tanh scales */
    {"realnvp(layers=2, hidden=[8], separate=0, tanh_scale=0)", 4, 0}, /* one net [shift | scale] */
    {"nice(layers=3, hidden=[16,16])", 4, 0},
    {"realnvp(layers=3, hidden=[8,8], residual=1, activation=tanh)", 3, 0}, /* twin residual nets */
    {"maf(layers=2, hidden=[16,16])", 3, 0},                           /* residual MADE, tanh scale */
    {"maf(layers=2, hidden=[12,12], residual=0, scale=unbounded, activation=tanh)", 4, 0},
    {"maf(layers=1, hidden=[8], residual=0, scale=sigmoid, activation=elu)", 3, 0},
    {"maf(layers=1, hidden=[8,8], scale=softplus, activation=sigmoid)", 3, 0},
    {"chain(coupling(num_masked=1, hidden=[8]), permute([2,0,1]), coupling(num_masked=2, hidden=[8]))", 3, 0},
    {"nsf(layers=2, hidden=[12,12], bins=5)", 3, 0},                  /* spline couplings */
    {"nsf(layers=2, hidden=[8], bins=4, bound=2, residual=1)", 4, 0},
    {"maf(layers=2, hidden=[12,12], bins=6)", 3, 0},                  /* spline MAF */
    {"iaf(layers=2, hidden=[12,12])", 3, 0},                          /* inverted MAF: density in d passes */
    {"iaf(layers=1, hidden=[8], bins=4)", 3, 0},
    {"chain(actnorm, realnvp(layers=2, hidden=[8]), actnorm)", 3, 0}, /* data-initialised */
    {"chain(maf(hidden=[8]), lu_linear, maf(hidden=[8]), lu_linear)", 4, 0}, /* Glow's LU mixing */
    /* batch statistics: first on the data side, and between layers */
    {"chain(batchnorm, maf(hidden=[8]), realnvp(layers=2, hidden=[8]))", 3, 0},
    {"chain(maf(hidden=[8]), batchnorm, realnvp(layers=2, hidden=[8]), batchnorm)", 3, 1},
};
#define NFAM (sizeof FAMILIES / sizeof FAMILIES[0])

static void fill(float *x, size_t n, uint64_t seed) {
    nf_rng *r;
    nf_rng_create(seed, &r);
    for (size_t i = 0; i < n; i++) x[i] = (float)(1.3 * nf_rng_normal(r));
    nf_rng_free(r);
}

/* Moves every parameter by N(0, 0.15^2) from `seed`: no layer starts at the
 * identity (zero last layers, LU's all-zero start), so every path computes. */
static void jitter(nf_flow *f, uint64_t seed) {
    nf_rng *r;
    nf_rng_create(seed, &r);
    float *p = nf_flow_params(f);
    for (size_t i = 0; i < nf_flow_param_count(f); i++) p[i] += (float)(0.15 * nf_rng_normal(r));
    nf_rng_free(r);
}

/* max |a - b| / (1 + max |b|) */
static double rel_err(const float *a, const float *b, size_t n) {
    double e = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        double q = fabs((double)a[i] - b[i]);
        e = q > e || isnan(q) ? q : e;
        m = fabs(b[i]) > m ? fabs(b[i]) : m;
    }
    return e / (1 + m);
}

/* f on ops' unit 0. */
static nf_status on_device(nf_flow *f, const nf_dev_ops *ops) { return nf__flow_set_device_ops(f, ops, 0); }

/* The same flow twice from spec and seed (parameters jittered from `jit`
 * unless 0): *c on the CPU, *g on ops' device.  0 when either failed. */
static int pair(const char *spec, size_t d, uint64_t seed, uint64_t jit, const nf_dev_ops *ops, nf_flow **c,
                nf_flow **g) {
    *c = *g = NULL;
    CHECK_OK(nf_flow_from_spec(spec, d, seed, c));
    CHECK_OK(nf_flow_from_spec(spec, d, seed, g));
    if (!*c || !*g) {
        nf_flow_free(*c), nf_flow_free(*g);
        return 0;
    }
    if (jit) jitter(*c, jit), jitter(*g, jit);
    CHECK_OK(on_device(*g, ops));
    return 1;
}

static void one_offs(const char *spec, size_t d, const nf_dev_ops *ops, const char *dev, double tol) {
    nf_flow *c, *g;
    if (!pair(spec, d, 11, 77, ops, &c, &g)) return;
    size_t n = 300;
    float *x = malloc(n * d * sizeof(float)), *l1 = malloc(n * sizeof(float)), *l2 = malloc(n * sizeof(float));
    float *z1 = malloc(n * d * sizeof(float)), *z2 = malloc(n * d * sizeof(float));
    fill(x, n * d, 5);
    float mean[4] = {0.5f, -1, 2, 0}, sd[4] = {2, 0.5f, 1.5f, 1};
    CHECK_OK(nf_flow_set_scaler(c, mean, sd));
    CHECK_OK(nf_flow_set_scaler(g, mean, sd));
    CHECK_OK(nf_flow_log_prob(c, x, n, l1));
    CHECK_OK(nf_flow_log_prob(g, x, n, l2));
    CHECK(rel_err(l2, l1, n) < tol, "%s on %s: log_prob differs from the CPU's by %g", spec, dev, rel_err(l2, l1, n));
    CHECK_OK(nf_flow_to_base(c, x, n, z1));
    CHECK_OK(nf_flow_to_base(g, x, n, z2));
    CHECK(rel_err(z2, z1, n * d) < tol, "%s on %s: to_base differs by %g", spec, dev, rel_err(z2, z1, n * d));
    nf_rng *r1, *r2;
    nf_rng_create(3, &r1);
    nf_rng_create(3, &r2);
    CHECK_OK(nf_flow_sample_and_log_prob(c, r1, n, z1, l1));
    CHECK_OK(nf_flow_sample_and_log_prob(g, r2, n, z2, l2));
    CHECK(rel_err(z2, z1, n * d) < tol, "%s on %s: samples differ by %g", spec, dev, rel_err(z2, z1, n * d));
    CHECK(rel_err(l2, l1, n) < tol, "%s on %s: samples' log_prob differs by %g", spec, dev, rel_err(l2, l1, n));
    /* the generator continues as on the CPU: an odd number of draws leaves a spare normal, and a
     * long call crosses the device's chunks (a pair of draws split between two) */
    size_t sizes[3] = {1, 9001, 5};
    for (int c2 = 0; c2 < 3; c2++) {
        size_t m = sizes[c2];
        float *a = malloc(m * d * sizeof(float)), *b2 = malloc(m * d * sizeof(float));
        CHECK_OK(nf_flow_sample(c, r1, m, a));
        CHECK_OK(nf_flow_sample(g, r2, m, b2));
        CHECK(rel_err(b2, a, m * d) < tol, "%s on %s: call %d of %zu samples differs by %g", spec, dev, c2, m,
              rel_err(b2, a, m * d));
        free(a), free(b2);
    }
    CHECK(strcmp(nf_flow_device(g), dev) == 0, "nf_flow_device says %s", nf_flow_device(g));
    nf_rng_free(r1), nf_rng_free(r2);
    free(x), free(l1), free(l2), free(z1), free(z2);
    nf_flow_free(c), nf_flow_free(g);
}

/* One step's loss and gradient: the CPU trainer's against the device program's. */
static void gradient(const char *spec, size_t d, const nf_dev_ops *ops, const char *dev, double tol) {
    nf_flow *f = NULL;
    CHECK_OK(nf_flow_from_spec(spec, d, 13, &f));
    if (!f) return;
    jitter(f, 78);
    size_t k = 50, P = nf_flow_param_count(f);
    nf_train_opts o = nf_train_defaults();
    nf_trainer t;
    float *x = malloc(k * d * sizeof(float)), *gd = malloc(P * sizeof(float));
    fill(x, k * d, 9);
    CHECK_OK(nf__trainer_init(&t, f, &nf__objective_nll, k, &o));
    memcpy(t.x, x, k * d * sizeof(float));
    double loss = 0, sum = 0;
    CHECK_OK(nf__trainer_eval(&t, k, 1, &loss));
    nf_device *dv = NULL;
    nf_dprog *p = NULL;
    nf_status s = nf__device_open(ops, 0, &dv);
    if (!s) s = nf__dprog_create(f, dv, k, 1, &p);
    CHECK(s == NF_OK, "%s: the device program: %s", spec, nf_last_error());
    if (!s) {
        const nf_dprog_train *b = nf__dprog_buffers(p);
        CHECK_OK(dv->ops->put(dv->st, b->batch, x, k * d * sizeof(float)));
        nf__dprog_nll(p, k, 1);
        CHECK_OK(dv->ops->get(dv->st, gd, b->g, P * sizeof(float)));
        CHECK_OK(dv->ops->get(dv->st, &sum, b->state + ST_LOSS, sizeof sum));
        CHECK_NEAR(-sum / (double)k, loss, tol, "%s on %s: the step's loss", spec, dev);
        double e = rel_err(gd, t.grad, P);
        CHECK(e < tol, "%s on %s: the gradient differs from the CPU's by %g (relative to its largest entry)", spec, dev,
              e);
    }
    nf__dprog_free(p);
    nf__device_close(dv);
    nf__trainer_free(&t);
    free(x), free(gd);
    nf_flow_free(f);
}

/* Seeded training (epochs with validation, early stopping; then a stream
 * with clipping): the device's run ends where the CPU's does. */
static void training(const char *spec, size_t d, const nf_dev_ops *ops, const char *dev, double tol, int loose) {
    nf_flow *c, *g;
    if (!pair(spec, d, 17, 0, ops, &c, &g)) return;
    size_t n = 400, P = nf_flow_param_count(c);
    float *x = malloc(n * d * sizeof(float));
    fill(x, n * d, 21);
    for (size_t i = 0; i < n; i++) x[i * d + 1] += 0.5f * x[i * d] * x[i * d]; /* something to learn */
    nf_train_opts o = nf_train_defaults();
    o.batch = 64, o.epochs = 4, o.val_split = 0.2f, o.patience = 3, o.seed = 4, o.lr = 3e-3f;
    nf_train_report rc = {0}, rg = {0};
    CHECK_OK(nf_flow_fit(c, x, n, &o, &rc));
    CHECK_OK(nf_flow_fit(g, x, n, &o, &rg));
    CHECK(rc.n_history == rg.n_history && rc.steps == rg.steps, "%s on %s: %zu/%zu epochs, %zu/%zu steps", spec, dev,
          rg.n_history, rc.n_history, rg.steps, rc.steps);
    for (size_t e = 0; e < rc.n_history && e < rg.n_history; e++) {
        CHECK_NEAR(rg.train_history[e], rc.train_history[e], 20 * tol, "%s on %s: epoch %zu's training loss", spec, dev, e);
        CHECK_NEAR(rg.val_history[e], rc.val_history[e], 20 * tol, "%s on %s: epoch %zu's validation loss", spec, dev, e);
    }
    double e = rel_err(nf_flow_params(g), nf_flow_params(c), P);
    CHECK(loose || e < 100 * tol, "%s on %s: the trained parameters differ by %g", spec, dev, e);
    float *l1 = malloc(n * sizeof(float)), *l2 = malloc(n * sizeof(float)); /* (batch norm: the running averages) */
    CHECK_OK(nf_flow_log_prob(c, x, n, l1));
    CHECK_OK(nf_flow_log_prob(g, x, n, l2));
    CHECK(rel_err(l2, l1, n) < 100 * tol, "%s on %s: the trained flow's log_prob differs by %g", spec, dev, rel_err(l2, l1, n));
    free(l1), free(l2);
    nf_train_report_free(&rc), nf_train_report_free(&rg);
    free(x);
    nf_flow_free(c), nf_flow_free(g);
}

/* A step whose loss or gradient is not finite stops training on the device
 * as on the CPU: the same status, naming the same step, and the parameters
 * after the step before it kept. */
static void divergence(const nf_dev_ops *ops, const char *dev) {
    const char *spec = "maf(layers=2, hidden=[16,16], residual=0, scale=unbounded)";
    nf_flow *c, *g;
    if (!pair(spec, 3, 5, 0, ops, &c, &g)) return;
    size_t n = 256, P = nf_flow_param_count(c);
    float *x = malloc(n * 3 * sizeof(float));
    fill(x, n * 3, 8);
    nf_train_opts o = nf_train_defaults();
    o.batch = 32, o.epochs = 20, o.lr = 1e4f, o.seed = 2;
    nf_status sc = nf_flow_fit(c, x, n, &o, NULL);
    char mc[512];
    snprintf(mc, sizeof mc, "%s", nf_last_error());
    nf_status sg = nf_flow_fit(g, x, n, &o, NULL);
    const char *mg = nf_last_error();
    CHECK(sc == NF_ERR_NUMERIC && sg == NF_ERR_NUMERIC, "lr 1e4 diverges on both: %s / %s", mc, mg);
    /* the host device rounds as the CPU does: the same step fails; a GPU's rounding may move the
     * overflow by a step, and then the kept parameters are compared only for being finite */
    const char *a = strstr(mc, "step "), *b = strstr(mg, "step ");
    int sa = a ? atoi(a + 5) : -1, sb = b ? atoi(b + 5) : -2, exact = ops == &nf__dev_host;
    CHECK(sa > 1 && (sa == sb || (!exact && abs(sa - sb) <= 1)), "on %s the same step fails: \"%s\" and \"%s\"", dev,
          mc, mg);
    double e = rel_err(nf_flow_params(g), nf_flow_params(c), P);
    CHECK(isfinite(e) && (sa != sb || e < 1e-2),
          "on %s the parameters of the last good step are kept (they differ from the CPU's by %g)", dev, e);
    free(x);
    nf_flow_free(c), nf_flow_free(g);
}

/* Conditional flows: log_prob, samples, one step's gradient and training, given context rows. */
static void conditional(const nf_dev_ops *ops, const char *dev, double tol) {
    static const struct {
        const char *spec;
        size_t d, dc;
    } C[] = {
        {"realnvp(layers=2, hidden=[8], context=2)", 3, 2},
        {"maf(layers=2, hidden=[12,12], context=2)", 3, 2},
        {"maf(layers=1, hidden=[8], context=1, bins=4, residual=0)", 2, 1},
        {"nsf(layers=2, hidden=[8], context=1)", 3, 1},
        {"iaf(layers=2, hidden=[8], context=2)", 3, 2},
    };
    for (size_t i = 0; i < sizeof C / sizeof C[0]; i++) {
        const char *spec = C[i].spec;
        size_t d = C[i].d, dc = C[i].dc, n = 200, D = d + dc;
        nf_flow *c, *g;
        if (!pair(spec, d, 3, 79, ops, &c, &g)) continue;
        float *x = malloc(n * d * sizeof(float)), *ctx = malloc(n * dc * sizeof(float)), *rows = malloc(n * D * sizeof(float));
        float *l1 = malloc(n * sizeof(float)), *l2 = malloc(n * sizeof(float));
        float *s1 = malloc(n * d * sizeof(float)), *s2 = malloc(n * d * sizeof(float));
        fill(x, n * d, 31);
        fill(ctx, n * dc, 32);
        for (size_t r = 0; r < n; r++) {
            memcpy(rows + r * D, x + r * d, d * sizeof(float));
            memcpy(rows + r * D + d, ctx + r * dc, dc * sizeof(float));
            rows[r * D] += 0.7f * ctx[r * dc]; /* the data depend on the context */
        }
        CHECK_OK(nf_flow_log_prob_ctx(c, x, ctx, n, l1));
        CHECK_OK(nf_flow_log_prob_ctx(g, x, ctx, n, l2));
        CHECK(rel_err(l2, l1, n) < tol, "%s on %s: log_prob given context differs by %g", spec, dev, rel_err(l2, l1, n));
        nf_rng *r1, *r2;
        nf_rng_create(6, &r1);
        nf_rng_create(6, &r2);
        CHECK_OK(nf_flow_sample_and_log_prob_ctx(c, r1, ctx, n, s1, l1));
        CHECK_OK(nf_flow_sample_and_log_prob_ctx(g, r2, ctx, n, s2, l2));
        CHECK(rel_err(s2, s1, n * d) < tol && rel_err(l2, l1, n) < tol, "%s on %s: samples given context differ by %g, %g",
              spec, dev, rel_err(s2, s1, n * d), rel_err(l2, l1, n));
        nf_rng_free(r1), nf_rng_free(r2);
        /* one step's gradient */
        size_t k = 40, P = nf_flow_param_count(c);
        nf_train_opts o = nf_train_defaults();
        nf_trainer t;
        float *gd = malloc(P * sizeof(float));
        CHECK_OK(nf__trainer_init(&t, c, &nf__objective_nll, k, &o));
        memcpy(t.x, x, k * d * sizeof(float));
        memcpy(t.ctx, ctx, k * dc * sizeof(float));
        double loss = 0, sum = 0;
        CHECK_OK(nf__trainer_eval(&t, k, 1, &loss));
        nf_device *dv = NULL;
        nf_dprog *p = NULL;
        CHECK_OK(nf__device_open(ops, 0, &dv));
        if (dv) CHECK_OK(nf__dprog_create(c, dv, k, 1, &p));
        if (p) {
            const nf_dprog_train *b = nf__dprog_buffers(p);
            CHECK_OK(dv->ops->put(dv->st, b->batch, x, k * d * sizeof(float)));
            CHECK_OK(dv->ops->put(dv->st, b->ctx, ctx, k * dc * sizeof(float)));
            nf__dprog_nll(p, k, 1);
            CHECK_OK(dv->ops->get(dv->st, gd, b->g, P * sizeof(float)));
            CHECK_OK(dv->ops->get(dv->st, &sum, b->state + ST_LOSS, sizeof sum));
            CHECK_NEAR(-sum / (double)k, loss, tol, "%s on %s: the step's loss given context", spec, dev);
            CHECK(rel_err(gd, t.grad, P) < tol, "%s on %s: the gradient given context differs by %g", spec, dev,
                  rel_err(gd, t.grad, P));
        }
        nf__dprog_free(p);
        nf__device_close(dv);
        nf__trainer_free(&t);
        /* training on [x | context] rows */
        o.batch = 50, o.epochs = 3, o.val_split = 0.25f, o.seed = 9, o.lr = 3e-3f;
        nf_train_report rc = {0}, rg = {0};
        CHECK_OK(nf_flow_fit(c, rows, n, &o, &rc));
        CHECK_OK(nf_flow_fit(g, rows, n, &o, &rg));
        for (size_t e = 0; e < rc.n_history && e < rg.n_history; e++)
            CHECK_NEAR(rg.val_history[e], rc.val_history[e], 20 * tol, "%s on %s: epoch %zu's validation loss", spec, dev, e);
        CHECK(rel_err(nf_flow_params(g), nf_flow_params(c), P) < 100 * tol, "%s on %s: trained parameters differ by %g",
              spec, dev, rel_err(nf_flow_params(g), nf_flow_params(c), P));
        nf_train_report_free(&rc), nf_train_report_free(&rg);
        free(x), free(ctx), free(rows), free(l1), free(l2), free(s1), free(s2), free(gd);
        nf_flow_free(c), nf_flow_free(g);
    }
}

static int stop_after(void *u, const nf_train_progress *p) {
    const size_t *at = u;
    return (p->epoch ? p->epoch : p->step) >= *at;
}

static int draw_rows(void *u, nf_rng *r, float *x, size_t n) {
    (void)u;
    for (size_t i = 0; i < 3 * n; i++) x[i] = (float)nf_rng_normal(r);
    for (size_t i = 0; i < n; i++) x[i * 3 + 1] += 0.5f * x[i * 3] * x[i * 3];
    return 0;
}

/* A fit on the stream of draw_rows, or on the n rows of x. */
static nf_status fit_rows(nf_flow *f, int stream, const float *x, size_t n, const nf_train_opts *o, nf_train_report *r) {
    return stream ? nf_flow_fit_stream(f, draw_rows, NULL, o, r) : nf_flow_fit(f, x, n, o, r);
}

/* On a device, an interrupted run resumed from its checkpoint ends
 * bit-identical to an uninterrupted one (epochs with validation, a stream),
 * batch norm's running averages included: checkpoints read the device's
 * parameters, moments and state, a resume puts them back. */
static void resume(const nf_dev_ops *ops, const char *dev) {
    const char *t = getenv("TMPDIR");
    char ck[512];
    snprintf(ck, sizeof ck, "%s/nflow_dev_ckpt_%d.nflow", t && *t ? t : "/tmp", (int)getpid());
    const char *spec = "chain(batchnorm, maf(hidden=[12,12]), realnvp(layers=2, hidden=[8]))";
    size_t n = 300;
    float *x = malloc(n * 3 * sizeof(float));
    fill(x, n * 3, 41);
    for (int stream = 0; stream < 2; stream++) {
        nf_flow *fl[3] = {NULL, NULL, NULL};
        for (int k = 0; k < 3; k++) {
            CHECK_OK(nf_flow_from_spec(spec, 3, 7, &fl[k]));
            if (fl[k]) CHECK_OK(on_device(fl[k], ops));
        }
        if (!fl[0] || !fl[1] || !fl[2]) continue;
        nf_train_opts o = nf_train_defaults();
        o.seed = 3, o.lr = 3e-3f, o.batch = 50;
        nf_train_report a = {0}, b = {0}, c = {0};
        size_t at = stream ? 40 : 4;
        remove(ck);
        if (stream) o.steps = 100, o.log_every = 20;
        else o.epochs = 8, o.val_split = 0.2f;
        CHECK_OK(fit_rows(fl[0], stream, x, n, &o, &a)); /* uninterrupted */
        o.checkpoint_path = ck, o.checkpoint_every = stream ? 20 : 2, o.callback = stop_after, o.user = &at;
        CHECK_OK(fit_rows(fl[1], stream, x, n, &o, &b)); /* stopped at `at` */
        o.callback = NULL, o.resume_path = ck;
        CHECK_OK(fit_rows(fl[2], stream, x, n, &o, &c)); /* resumed */
        size_t P = nf_flow_param_count(fl[0]);
        float l0[8], l2[8];
        CHECK_OK(nf_flow_log_prob(fl[0], x, 8, l0));
        CHECK_OK(nf_flow_log_prob(fl[2], x, 8, l2)); /* (the running averages) */
        CHECK(b.steps < a.steps && c.steps == a.steps, "on %s (%s): stopped at %zu, resumed to %zu of %zu steps", dev,
              stream ? "stream" : "epochs", b.steps, c.steps, a.steps);
        CHECK(!memcmp(nf_flow_params(fl[0]), nf_flow_params(fl[2]), P * sizeof(float)) && !memcmp(l0, l2, sizeof l0),
              "on %s (%s): the resumed run ends bit-identical to the uninterrupted one", dev, stream ? "stream" : "epochs");
        CHECK(c.n_history == a.n_history && !memcmp(c.train_history, a.train_history, a.n_history * sizeof(double)),
              "on %s (%s): the resumed history equals the uninterrupted one", dev, stream ? "stream" : "epochs");
        nf_train_report_free(&a), nf_train_report_free(&b), nf_train_report_free(&c);
        for (int k = 0; k < 3; k++) nf_flow_free(fl[k]);
    }
    remove(ck);
    free(x);
}

/* Reverse KL (fit-density): the sampling direction's backward pass on the
 * device, the target on the host; every step's loss and the trained
 * parameters as the CPU's. */
static void reverse_kl(const nf_dev_ops *ops, const char *dev, double tol) {
    static const char *K[] = {
        "realnvp(layers=2, hidden=[8])",      "iaf(layers=2, hidden=[8,8])",
        "maf(layers=2, hidden=[8])",          "nsf(layers=2, hidden=[8], bins=4)",
        "chain(actnorm, lu_linear, realnvp(layers=2, hidden=[8]))", "chain(batchnorm, iaf(hidden=[8]), batchnorm)",
    };
    nf_log_density_fn target;
    CHECK_OK(nf_energy_target("u2", &target));
    for (size_t i = 0; i < sizeof K / sizeof K[0]; i++) {
        nf_flow *c, *g;
        if (!pair(K[i], 2, 21, 81, ops, &c, &g)) continue;
        nf_train_opts o = nf_train_defaults();
        o.steps = 40, o.batch = 32, o.log_every = 10, o.anneal_steps = 20, o.seed = 6, o.lr = 3e-3f, o.clip_norm = 50;
        nf_train_report rc = {0}, rg = {0};
        CHECK_OK(nf_flow_fit_reverse_kl(c, target, NULL, &o, &rc));
        CHECK_OK(nf_flow_fit_reverse_kl(g, target, NULL, &o, &rg));
        CHECK(rc.n_history == rg.n_history && rc.steps == rg.steps, "%s on %s: reverse KL ran %zu/%zu steps", K[i], dev,
              rg.steps, rc.steps);
        for (size_t e = 0; e < rc.n_history && e < rg.n_history; e++)
            CHECK_NEAR(rg.train_history[e], rc.train_history[e], 20 * tol, "%s on %s: reverse KL period %zu's loss", K[i],
                       dev, e);
        size_t P = nf_flow_param_count(c);
        double e = rel_err(nf_flow_params(g), nf_flow_params(c), P);
        CHECK(e < 100 * tol, "%s on %s: reverse-KL parameters differ by %g", K[i], dev, e);
        nf_train_report_free(&rc), nf_train_report_free(&rg);
        nf_flow_free(c), nf_flow_free(g);
    }
}

static void refusals(const nf_dev_ops *ops) {
    static const struct {
        const char *spec;
        size_t d;
        const char *needle;
    } NO[] = {
        {"chain(planar(layers=2), realnvp(layers=2, hidden=[8]))", 3, "(planar) has no device kernels"},
        {"transformed(mog(k=3), realnvp(layers=2, hidden=[8]))", 3, "the base"},
        {"glow(levels=1, steps=1, hidden=[4], shape=[1,2,2])", 4, "convolutional network"},
    };
    for (size_t i = 0; i < sizeof NO / sizeof NO[0]; i++) {
        nf_flow *f = NULL;
        CHECK_OK(nf_flow_from_spec(NO[i].spec, NO[i].d, 1, &f));
        if (f) CHECK_ERR(on_device(f, ops), NF_ERR_UNSUPPORTED, NO[i].needle);
        if (f) CHECK(strcmp(nf_flow_device(f), "cpu") == 0, "%s: a refused device is not set", NO[i].spec);
        nf_flow_free(f);
    }
    nf_flow *f = NULL;
    CHECK_OK(nf_flow_from_spec("realnvp(layers=2, hidden=[8])", 2, 1, &f));
    if (!f) return;
    CHECK_OK(on_device(f, ops));
    CHECK_OK(nf_flow_set_device(f, "cpu"));
    CHECK(strcmp(nf_flow_device(f), "cpu") == 0, "back on the CPU");
    nf_flow_free(f);
}

static void suite_on(const nf_dev_ops *ops, const char *dev, double tol) {
    for (size_t i = 0; i < NFAM; i++) {
        one_offs(FAMILIES[i].spec, FAMILIES[i].d, ops, dev, tol);
        gradient(FAMILIES[i].spec, FAMILIES[i].d, ops, dev, tol);
        training(FAMILIES[i].spec, FAMILIES[i].d, ops, dev, tol, FAMILIES[i].shift_into_bn);
    }
    conditional(ops, dev, tol);
    resume(ops, dev);
    reverse_kl(ops, dev, tol);
    divergence(ops, dev);
    refusals(ops);
}

#ifdef NF_CUDA
/* TF32 products on a GPU: log_prob of the seed RealNVP against fp32 on the same GPU; the
 * difference is printed (docs/performance.md quotes it) and must stay under 1e-2 relative. */
static void tf32_error(void) {
    nf_flow *a = NULL, *b = NULL;
    CHECK_OK(nf_flow_from_spec("realnvp(layers=6, hidden=[256,256])", 2, 1, &a));
    CHECK_OK(nf_flow_from_spec("realnvp(layers=6, hidden=[256,256])", 2, 1, &b));
    if (!a || !b) return;
    jitter(a, 5), jitter(b, 5);
    CHECK_OK(nf_flow_set_device(a, "cuda"));
    CHECK_OK(nf_flow_set_device(b, "cuda,tf32"));
    CHECK(strcmp(nf_flow_device(b), "cuda:0,tf32") == 0, "the TF32 device's name: %s", nf_flow_device(b));
    size_t n = 4096;
    float *x = malloc(n * 2 * sizeof(float)), *la = malloc(n * sizeof(float)), *lb = malloc(n * sizeof(float));
    fill(x, n * 2, 12);
    CHECK_OK(nf_flow_log_prob(a, x, n, la));
    CHECK_OK(nf_flow_log_prob(b, x, n, lb));
    double e = rel_err(lb, la, n);
    printf("INFO device: TF32 against fp32 on the GPU, the seed RealNVP's log_prob of %zu points: max |difference| "
           "/ (1 + max |log p|) = %.3g\n", n, e);
    CHECK(e < 1e-2, "TF32's log_prob differs from fp32's by %g", e);
    free(x), free(la), free(lb);
    nf_flow_free(a), nf_flow_free(b);
}
#endif

void test_device(void) {
    suite_on(&nf__dev_host, "host:0", 2e-5);
    nf_flow *f = NULL;
    CHECK_OK(nf_flow_from_spec("realnvp(layers=2, hidden=[8])", 2, 1, &f));
    if (!f) return;
    CHECK_ERR(nf_flow_set_device(f, "tpu"), NF_ERR_ARG, "unknown device \"tpu\"");
    CHECK_ERR(nf_flow_set_device(f, "cuda:x"), NF_ERR_ARG, "must be 0..1024");
    CHECK_ERR(nf_flow_set_device(f, "cuda:0,tf3"), NF_ERR_ARG, "must be 0..1024");
    CHECK_ERR(nf_flow_set_device(f, "cpu,tf32"), NF_ERR_ARG, "unknown device");
    if (!nf_cuda_available())
        CHECK_ERR(nf_flow_set_device(f, "cuda,tf32"), NF_ERR_UNSUPPORTED, "built without CUDA");
    nf_status s = nf_flow_set_device(f, "cuda");
    if (!nf_cuda_available()) {
        CHECK(s == NF_ERR_UNSUPPORTED && strstr(nf_last_error(), "built without CUDA (build with make CUDA=1)"),
              "cuda without CUDA: %s", nf_last_error());
        test_skip("device", "the GPU checks: this nflow was built without CUDA (make CUDA=1)");
    } else if (s) {
        char why[300];
        snprintf(why, sizeof why, "the GPU checks: %s", nf_last_error());
        test_skip("device", why);
    } else {
#ifdef NF_CUDA
        suite_on(&nf__dev_cuda, "cuda:0", 1e-4);
        tf32_error();
#endif
    }
    nf_flow_free(f);
}
