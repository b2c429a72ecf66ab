/*
 * test_torch_flows.c - nflow against the PyTorch reference programs on
 * identical weights (design.md 5.2): the dataflowr RealNVP and the reference
 * MAF at hidden width 16, weights mapped to nflow's layout by
 * tests/gen_ref_flows.py.  log_prob must agree to 1e-5 and the gradient of
 * the mean NLL to 1e-4 of its largest entry.
 */
#include "test.h"

#include <stdlib.h>

#ifndef NF_TEST_DATA
#define NF_TEST_DATA "tests/data"
#endif

static float *load(const char *name, size_t n) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", NF_TEST_DATA, name);
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL, "cannot open %s", path);
    if (!f) return NULL;
    float *v = malloc(n * sizeof(float) + 1);
    size_t got = fread(v, sizeof(float), n + 1, f);
    fclose(f);
    CHECK(got == n, "%s holds %zu floats, expected %zu", path, got, n);
    if (got != n) {
        free(v);
        return NULL;
    }
    return v;
}

/* log_prob of the 64 points and the gradient of their mean NLL. */
static void compare(const char *what, nf_bijector *b, const float *x, const float *ref_lp,
                    const float *ref_grad) {
    enum { N = 64 };
    nf_flow *flow = NULL;
    CHECK_OK(nf_flow_create(b, NULL, &flow));
    float lp[N], z[2 * N], ildj[N], gz[2 * N], gl[N];
    CHECK_OK(nf_flow_log_prob(flow, x, N, lp));
    for (int i = 0; i < N; i++) CHECK_NEAR(lp[i], ref_lp[i], 1e-5, "%s log_prob of point %d vs PyTorch", what, i);
    CHECK_OK(nf_bijector_inverse(b, x, N, z, ildj));
    for (int i = 0; i < 2 * N; i++) gz[i] = z[i] / N; /* d(-mean log N(z))/dz */
    for (int i = 0; i < N; i++) gl[i] = -1.0f / N;
    size_t np = nf_bijector_param_count(b);
    float *g = calloc(np, sizeof(float));
    CHECK_OK(nf_bijector_inverse_backward(b, x, N, gz, gl, NULL, g));
    double big = 0, worst = 0;
    size_t at = 0;
    for (size_t k = 0; k < np; k++)
        if (fabs(ref_grad[k]) > big) big = fabs(ref_grad[k]);
    for (size_t k = 0; k < np; k++)
        if (fabs(g[k] - ref_grad[k]) > worst) worst = fabs(g[k] - ref_grad[k]), at = k;
    CHECK(worst <= 1e-4 * big, "%s: gradient differs from PyTorch's by %g at parameter %zu (largest entry %g)", what,
          worst, at, big);
    free(g);
    nf_flow_free(flow);
}

void test_torch_flows(void) {
    float *x = load("points.f32", 128);
    nf_rng *rng = NULL;
    nf_rng_create(0, &rng);

    /* dataflowr RealNVP: 6 couplings, s/t nets 2-16-16-2, leaky ReLU, tanh on s */
    nf_coupling_opts c = {.net = {.hidden = {16, 16}, .nhidden = 2, .activation = NF_ACT_LEAKY_RELU},
                          .separate_nets = 1, .tanh_scale = 1};
    nf_bijector *rn = NULL;
    CHECK_OK(nf_bijector_realnvp(2, 6, &c, rng, &rn));
    size_t np = nf_bijector_param_count(rn);
    float *p = load("realnvp_params.f32", np), *lp = load("realnvp_logp.f32", 64), *g = load("realnvp_grad.f32", np);
    if (x && p && lp && g) {
        memcpy(nf_bijector_params(rn), p, np * sizeof(float));
        compare("RealNVP", rn, x, lp, g);
    } else
        nf_bijector_free(rn);
    free(p), free(lp), free(g);

    /* reference MAF: 2 MADEs [16,16] ReLU, reversed between them; PyTorch's
     * layer 0 meets the data first, which in TFP order is the first part */
    nf_maf_opts m = {.net = {.hidden = {16, 16}, .nhidden = 2, .activation = NF_ACT_RELU}};
    nf_bijector *bs[3] = {0}, *maf = NULL;
    size_t perm[2] = {1, 0};
    CHECK_OK(nf_bijector_maf(2, &m, rng, &bs[0]));
    CHECK_OK(nf_bijector_permute(2, perm, &bs[1]));
    CHECK_OK(nf_bijector_maf(2, &m, rng, &bs[2]));
    CHECK_OK(nf_bijector_chain(bs, 3, &maf));
    np = nf_bijector_param_count(maf);
    p = load("maf_params.f32", np), lp = load("maf_logp.f32", 64), g = load("maf_grad.f32", np);
    if (x && p && lp && g) {
        /* the chain stores parts in forward application order: PyTorch's layer 1 first */
        size_t half = np / 2;
        float *mine = nf_bijector_params(maf), *gm = malloc(np * sizeof(float));
        memcpy(mine, p + half, half * sizeof(float));
        memcpy(mine + half, p, half * sizeof(float));
        memcpy(gm, g + half, half * sizeof(float));
        memcpy(gm + half, g, half * sizeof(float));
        compare("MAF", maf, x, lp, gm);
        free(gm);
    } else
        nf_bijector_free(maf);
    free(p), free(lp), free(g), free(x);
    nf_rng_free(rng);
}
