/*
 * test_team.c - the CPU backend on a team of threads (src/backend/team.c)
 * and training split by columns (nf_train_opts.split = NF_SPLIT_COLUMNS).
 * Every team call against the CPU backend's: products over shapes that cut
 * unevenly, transposed operands, narrow outputs (cut by rows), padded
 * leading dimensions (the padding must stay untouched), alpha and beta; the
 * element-wise passes and Adam bit for bit.  Then trainings split by columns
 * against one thread for each kind of network a flow has (coupling MLPs,
 * masked MADEs, residual nets, spline couplings, batch norm, convnets of an
 * image flow), reproducible bit for bit, and reverse KL.
 */
#include "test.h"
#include "../src/backend/team.h"
#include "../src/nn/nn.h"

#include <stdlib.h>

enum { NTEAM = 3 };
static const size_t team_sizes[NTEAM] = {2, 3, 6};

static float *randn(nf_rng *rng, size_t n) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    nf_rng_fill_normal(rng, p, n);
    return p;
}

static double max_rel(const float *a, const float *b, size_t n) {
    double w = 0;
    for (size_t i = 0; i < n; i++) w = fmax(w, fabs((double)a[i] - b[i]) / (1 + fabs((double)b[i])));
    return w;
}

/* One product on the team against the CPU's, with epilogue `epi`: 0 none, 1 bias + tanh,
 * 2 the ELU's backward through outputs H, 3 a bias gradient over C's rows. */
static void check_gemm(const nf_backend *tb, size_t T, nf_rng *rng, int ta, int tb_, size_t m, size_t n, size_t k,
                       int epi) {
    const nf_backend *cpu = &nf__backend_cpu;
    size_t lda = (ta ? m : k) + 3, ldb = (tb_ ? k : n) + 1, ldc = n + 5;
    size_t ra = ta ? k : m, rb = tb_ ? n : k, gn = 7, ldg = m + 2;
    float *A = randn(rng, ra * lda), *B = randn(rng, rb * ldb), *C0 = randn(rng, m * ldc);
    float *C1 = malloc(m * ldc * sizeof(float)), *bias = randn(rng, n), *H = randn(rng, m * (n + 1));
    float *G = randn(rng, gn * ldg), *db0 = randn(rng, m), *db1 = malloc(m * sizeof(float));
    for (size_t i = 0; i < m * (n + 1); i++) H[i] = fmaxf(H[i] * 0.5f, -0.9f); /* ELU outputs, > -1 */
    memcpy(C1, C0, m * ldc * sizeof(float));
    memcpy(db1, db0, m * sizeof(float));
    nf_epi e0 = {NF_ACT_TANH, bias, NULL, 0, NULL, NULL, 0, 0}, e1 = e0;
    if (epi == 2) e0 = e1 = (nf_epi){NF_ACT_ELU, NULL, H, n + 1, NULL, NULL, 0, 0};
    if (epi == 3) e0 = (nf_epi){NF_ACT_IDENTITY, NULL, NULL, 0, db0, G, gn, ldg}, e1 = e0, e1.db = db1;
    cpu->gemm(cpu, ta, tb_, m, n, k, 0.7f, A, lda, B, ldb, 0.3f, C0, ldc, epi ? &e0 : NULL);
    tb->gemm(tb, ta, tb_, m, n, k, 0.7f, A, lda, B, ldb, 0.3f, C1, ldc, epi ? &e1 : NULL);
    /* (a block may sum its k products in another order than the whole: float rounding) */
    CHECK(max_rel(C1, C0, m * ldc) <= 4e-5, "team of %zu: gemm(%d, %d, %zu x %zu x %zu, epilogue %d) differs by %g", T, ta,
          tb_, m, n, k, epi, max_rel(C1, C0, m * ldc));
    int pad_ok = 1; /* the columns between n and ldc were never written */
    for (size_t i = 0; i < m; i++)
        for (size_t j = n; j < ldc; j++) pad_ok &= C1[i * ldc + j] == C0[i * ldc + j];
    CHECK(pad_ok, "team of %zu: gemm(%d, %d, %zu x %zu x %zu) wrote into the padding", T, ta, tb_, m, n, k);
    if (epi == 3)
        CHECK(!memcmp(db0, db1, m * sizeof(float)), "team of %zu: gemm(%d, %d, %zu x %zu x %zu): the bias gradient, bit for bit",
              T, ta, tb_, m, n, k);
    free(A), free(B), free(C0), free(C1), free(bias), free(H), free(G), free(db0), free(db1);
}

static void check_gemv(const nf_backend *tb, size_t T, nf_rng *rng, int ta, size_t m, size_t n) {
    const nf_backend *cpu = &nf__backend_cpu;
    size_t lda = n + 2, ny = ta ? n : m, nx = ta ? m : n;
    float *A = randn(rng, m * lda), *x = randn(rng, nx), *y0 = randn(rng, ny), *y1 = malloc(ny * sizeof(float));
    memcpy(y1, y0, ny * sizeof(float));
    cpu->gemv(cpu, ta, m, n, -1.3f, A, lda, x, 0.5f, y0);
    tb->gemv(tb, ta, m, n, -1.3f, A, lda, x, 0.5f, y1);
    CHECK(max_rel(y1, y0, ny) <= 1e-5, "team of %zu: gemv(%d, %zu x %zu) differs by %g", T, ta, m, n, max_rel(y1, y0, ny));
    free(A), free(x), free(y0), free(y1);
}

/* The element-wise passes and Adam: each value computed as the CPU does, bit for bit. */
static void check_elementwise(const nf_backend *tb, size_t T, nf_rng *rng) {
    const nf_backend *cpu = &nf__backend_cpu;
    size_t n = 300, b = 333, N = n * b;
    float *h0 = randn(rng, N), *h1 = malloc(N * sizeof(float)), *bias = randn(rng, b);
    float *g0 = randn(rng, N), *g1 = malloc(N * sizeof(float));
    for (int a = NF_ACT_IDENTITY; a <= NF_ACT_ELU; a++) {
        float *src = randn(rng, N);
        memcpy(h0, src, N * sizeof(float)), memcpy(h1, src, N * sizeof(float));
        cpu->bias_act_forward(cpu, (nf_activation)a, h0, bias, n, b);
        tb->bias_act_forward(tb, (nf_activation)a, h1, bias, n, b);
        CHECK(!memcmp(h0, h1, N * sizeof(float)), "team of %zu: bias + %s, bit for bit", T, nf__act_name((nf_activation)a));
        memcpy(g1, g0, N * sizeof(float));
        float *gc = malloc(N * sizeof(float));
        memcpy(gc, g0, N * sizeof(float));
        cpu->act_backward(cpu, (nf_activation)a, gc, h0, N - 7);
        tb->act_backward(tb, (nf_activation)a, g1, h0, N - 7);
        CHECK(!memcmp(gc, g1, N * sizeof(float)), "team of %zu: %s backward, bit for bit", T, nf__act_name((nf_activation)a));
        free(gc), free(src);
    }
    float *db0 = randn(rng, b), *db1 = malloc(b * sizeof(float));
    memcpy(db1, db0, b * sizeof(float));
    cpu->bias_grad(cpu, db0, g0, n, b);
    tb->bias_grad(tb, db1, g0, n, b);
    CHECK(!memcmp(db0, db1, b * sizeof(float)), "team of %zu: bias gradient, bit for bit", T);
    float *M = randn(rng, N), *w0 = randn(rng, N), *w1 = malloc(N * sizeof(float));
    memcpy(w1, w0, N * sizeof(float));
    cpu->mask_acc(cpu, w0, g0, M, N - 3);
    tb->mask_acc(tb, w1, g0, M, N - 3);
    CHECK(!memcmp(w0, w1, N * sizeof(float)), "team of %zu: masked weight gradient, bit for bit", T);
    double s0 = cpu->sum_squares(cpu, g0, N), s1 = tb->sum_squares(tb, g0, N);
    CHECK(fabs(s1 - s0) <= 1e-6 * s0 && s1 > 0, "team of %zu: sum of squares %.17g, want %.17g", T, s1, s0);
    /* Adam on two copies of the same state */
    nf_adam ad = {1e-3f, 0.9f, 0.999f, 1e-8f, 1e-4f, 3};
    float *st0[4], *st1[4];
    for (int q = 0; q < 4; q++) {
        st0[q] = randn(rng, N), st1[q] = malloc(N * sizeof(float));
        if (q == 3)
            for (size_t i = 0; i < N; i++) st0[q][i] = fabsf(st0[q][i]); /* v >= 0 */
        memcpy(st1[q], st0[q], N * sizeof(float));
    }
    cpu->adam(cpu, &ad, 0.5f, st0[0], st0[1], st0[2], st0[3], N - 1);
    tb->adam(tb, &ad, 0.5f, st1[0], st1[1], st1[2], st1[3], N - 1);
    int same = 1;
    for (int q = 0; q < 4; q++) same &= !memcmp(st0[q], st1[q], N * sizeof(float));
    CHECK(same, "team of %zu: Adam (parameters, cleared gradient, moments), bit for bit", T);
    for (int q = 0; q < 4; q++) free(st0[q]), free(st1[q]);
    free(h0), free(h1), free(bias), free(g0), free(g1), free(db0), free(db1), free(M), free(w0), free(w1);
}

static void test_team_calls(void) {
    nf_rng *rng = NULL;
    nf_rng_create(17, &rng);
    for (size_t q = 0; q < NTEAM; q++) {
        nf_team *team = NULL;
        CHECK_OK(nf__team_create(team_sizes[q], 0, &team));
        if (!team) continue;
        const nf_backend *tb = nf__team_backend(team);
        size_t T = team_sizes[q];
        /* a layer's forward, weight gradient and input gradient at batch 100 */
        /* a layer's forward (bias and activation), weight gradient (and the bias's), input gradient
         * (through the activation) at batch 100 */
        check_gemm(tb, T, rng, 0, 1, 100, 256, 256, 1);
        check_gemm(tb, T, rng, 1, 0, 256, 256, 100, 3);
        check_gemm(tb, T, rng, 0, 0, 100, 256, 256, 2);
        /* uneven cuts, both operands transposed, a narrow output (cut by rows), one too small to share */
        for (int epi = 0; epi < 4; epi++) {
            check_gemm(tb, T, rng, 0, 0, 37, 333, 129, epi);
            check_gemm(tb, T, rng, 1, 1, 70, 90, 300, epi);
            check_gemm(tb, T, rng, 0, 1, 1000, 3, 64, epi);
            check_gemm(tb, T, rng, 1, 0, 999, 2, 77, epi);
            check_gemm(tb, T, rng, 0, 1, 5, 2, 3, epi);
        }
        check_gemv(tb, T, rng, 0, 3000, 57);
        check_gemv(tb, T, rng, 1, 64, 5000);
        check_gemv(tb, T, rng, 1, 3, 4);
        check_elementwise(tb, T, rng);
        nf__team_free(team);
    }
    /* the parts of a team of 6 run on 6, 4, 2 threads or the caller alone: the same bits */
    size_t m = 100, n = 256, k = 256, N = 100003;
    float *A = randn(rng, m * k), *B = randn(rng, k * n), *C[4], *bias = randn(rng, n);
    double ss[4];
    size_t W[4] = {6, 4, 2, 1};
    for (int w = 0; w < 4; w++) {
        nf_team *team = NULL;
        C[w] = malloc(m * n * sizeof(float));
        CHECK_OK(nf__team_create(6, W[w], &team));
        if (!team) continue;
        const nf_backend *tb = nf__team_backend(team);
        nf_epi e = {NF_ACT_RELU, bias, NULL, 0, NULL, NULL, 0, 0};
        tb->gemm(tb, 0, 1, m, n, k, 1, A, k, B, k, 0, C[w], n, &e);
        float *g = malloc(N * sizeof(float));
        for (size_t i = 0; i < N; i++) g[i] = (float)(i % 97) * 0.01f - 0.3f;
        ss[w] = tb->sum_squares(tb, g, N);
        free(g);
        nf__team_free(team);
        if (w)
            CHECK(!memcmp(C[w], C[0], m * n * sizeof(float)) && ss[w] == ss[0],
                  "a team of 6 on %zu threads gives what it gives on 6", W[w]);
    }
    for (int w = 0; w < 4; w++) free(C[w]);
    free(A), free(B), free(bias);
    nf_team *bad = NULL;
    CHECK_ERR(nf__team_create(1, 0, &bad), NF_ERR_ARG, "2 to 64 threads");
    CHECK_ERR(nf__team_create(65, 0, &bad), NF_ERR_ARG, "2 to 64 threads");
    nf_rng_free(rng);
}

/* A fixed stream for image flows: 1 x 4 x 4 "images" of pixel values in [0, 4). */
static int draw_pixels(void *u, nf_rng *r, float *x, size_t n) {
    (void)u;
    for (size_t i = 0; i < n * 16; i++) x[i] = (float)(4 * nf_rng_uniform(r));
    return 0;
}

static int draw_two_moons(void *u, nf_rng *r, float *x, size_t n) {
    (void)u;
    return nf_data_moons(r, n, 0.05f, x, NULL) != NF_OK;
}

/* Trains `spec` (d 2 on moons, or d 16 on pixels) for a few steps at batch 100. */
static nf_flow *trained(const char *spec, size_t d, size_t threads, int split, nf_train_report *r) {
    nf_flow *f = NULL;
    CHECK_OK(nf_flow_from_spec(spec, d, 5, &f));
    if (!f) return NULL;
    nf_train_opts o = nf_train_defaults();
    o.batch = 100, o.steps = 24, o.log_every = 8, o.seed = 2, o.lr = 3e-3f, o.clip_norm = 5;
    o.threads = threads, o.split = split;
    CHECK_OK(nf_flow_fit_stream(f, d == 2 ? draw_two_moons : draw_pixels, NULL, &o, r));
    return f;
}

static void test_split_columns(void) {
    struct {
        const char *spec;
        size_t d;
    } cases[] = {
        {"realnvp(layers=4, hidden=[64,64])", 2},
        {"maf(layers=3, hidden=[64,64], residual=0)", 2},
        {"maf(layers=2, hidden=[64,64,64])", 2}, /* residual MADE blocks */
        {"nsf(layers=2, bins=4, hidden=[48,48])", 2},
        {"chain(maf(hidden=[64,64]), batchnorm, maf(hidden=[64,64]))", 2},
        {"glow(shape=[1,4,4], levels=1, steps=2, hidden=[16])", 16},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        nf_train_report r[3];
        nf_flow *f[3] = {trained(cases[c].spec, cases[c].d, 1, NF_SPLIT_ROWS, &r[0]),
                         trained(cases[c].spec, cases[c].d, 3, NF_SPLIT_COLUMNS, &r[1]),
                         trained(cases[c].spec, cases[c].d, 3, NF_SPLIT_COLUMNS, &r[2])};
        if (f[0] && f[1] && f[2]) {
            size_t np = nf_flow_param_count(f[0]);
            const float *p0 = nf_flow_params(f[0]), *p1 = nf_flow_params(f[1]);
            CHECK(!memcmp(p1, nf_flow_params(f[2]), np * sizeof(float)) && r[1].train_loss == r[2].train_loss,
                  "%s: 3 threads by columns repeat bit for bit", cases[c].spec);
            double worst = 0;
            for (size_t i = 0; i < np; i++) worst = fmax(worst, fabs((double)p0[i] - p1[i]));
            /* (a shift feeding a batch norm has a zero gradient, which Adam turns into lr-sized
             * steps of rounding noise: there only the losses are compared) */
            CHECK(worst < 1e-4 || strstr(cases[c].spec, "batchnorm"), "%s: 3 threads by columns train the model of one thread (max difference %g)",
                  cases[c].spec, worst);
            int hist = r[0].n_history == 3 && r[1].n_history == 3;
            for (size_t k = 0; hist && k < 3; k++)
                hist &= fabs(r[0].train_history[k] - r[1].train_history[k]) <= 1e-5 * (1 + fabs(r[0].train_history[k]));
            CHECK(hist, "%s: every logged loss as one thread's (last %.6f, %.6f)", cases[c].spec, r[0].train_loss,
                  r[1].train_loss);
        }
        for (int k = 0; k < 3; k++) {
            nf_train_report_free(&r[k]);
            nf_flow_free(f[k]);
        }
    }
    /* auto: columns where each thread would get fewer than NF_SPLIT_AUTO_ROWS rows, rows otherwise */
    const char *spec = "realnvp(layers=2, hidden=[32,32])";
    for (size_t threads = 2; threads <= 4; threads += 2) { /* 50 rows each: rows; 25: columns */
        nf_train_report r[3];
        int want = 100 / threads < NF_SPLIT_AUTO_ROWS ? NF_SPLIT_COLUMNS : NF_SPLIT_ROWS;
        nf_flow *a = trained(spec, 2, threads, NF_SPLIT_AUTO, &r[0]), *c = trained(spec, 2, threads, want, &r[1]),
                *o = trained(spec, 2, threads, NF_SPLIT_ROWS + NF_SPLIT_COLUMNS - want, &r[2]);
        for (int k = 0; k < 3; k++) nf_train_report_free(&r[k]);
        size_t np = a ? nf_flow_param_count(a) : 0;
        if (a && c && o)
            CHECK(!memcmp(nf_flow_params(a), nf_flow_params(c), np * sizeof(float)) &&
                      memcmp(nf_flow_params(a), nf_flow_params(o), np * sizeof(float)),
                  "auto at batch 100 on %zu threads splits by %s", threads, want == NF_SPLIT_ROWS ? "rows" : "columns");
        nf_flow_free(a), nf_flow_free(c), nf_flow_free(o);
    }
    nf_flow *f = NULL;
    CHECK_OK(nf_flow_from_spec(spec, 2, 5, &f));
    nf_train_opts o = nf_train_defaults();
    o.threads = 2, o.split = 7;
    CHECK_ERR(nf_flow_fit_stream(f, draw_two_moons, NULL, &o, NULL), NF_ERR_ARG, "split must be");
    nf_flow_free(f);
}

/* Reverse KL split by columns follows one thread and repeats bit for bit. */
static void test_reverse_kl_columns(void) {
    nf_log_density_fn u1 = NULL;
    CHECK_OK(nf_energy_target("u1", &u1));
    nf_flow *f[3] = {NULL, NULL, NULL};
    nf_train_report r[3];
    size_t threads[3] = {1, 4, 4};
    for (int k = 0; k < 3; k++) {
        CHECK_OK(nf_flow_from_spec("iaf(layers=2, hidden=[64,64])", 2, 3, &f[k]));
        nf_train_opts o = nf_train_defaults();
        o.lr = 5e-3f, o.batch = 128, o.steps = 60, o.log_every = 20, o.threads = threads[k];
        o.split = k ? NF_SPLIT_COLUMNS : NF_SPLIT_ROWS;
        CHECK_OK(nf_flow_fit_reverse_kl(f[k], u1, NULL, &o, &r[k]));
    }
    size_t np = nf_flow_param_count(f[0]);
    CHECK(!memcmp(nf_flow_params(f[1]), nf_flow_params(f[2]), np * sizeof(float)),
          "reverse KL on 4 threads by columns repeats bit for bit");
    CHECK(r[0].n_history == 3 && r[1].n_history == 3 && fabs(r[0].train_loss - r[1].train_loss) < 1e-4,
          "reverse KL by columns follows one thread (%.6f, %.6f)", r[0].train_loss, r[1].train_loss);
    for (int k = 0; k < 3; k++) {
        nf_train_report_free(&r[k]);
        nf_flow_free(f[k]);
    }
}

void test_team(void) {
    test_team_calls();
    test_split_columns();
    test_reverse_kl_columns();
}
