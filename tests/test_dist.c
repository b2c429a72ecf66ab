/*
 * test_dist.c - distributions: the seed's reference numbers, PyTorch
 * reference values, sampling moments, sample_and_log_prob consistency, cdf
 * rules and error reports.
 */
#include "test.h"

#include "ref_torch.h"
#include "../src/dist/dist_impl.h"

#include <stdlib.h>

static void test_seed_numbers(void) {
    nf_dist *n01 = NULL, *u01 = NULL;
    nf_bijector *ncdf = NULL;
    CHECK_OK(nf_dist_normal(0, 1, &n01));
    CHECK_OK(nf_dist_uniform(0, 1, &u01));
    CHECK_OK(nf_bijector_normal_cdf(1, &ncdf));
    float x = 2.01f, lp, u, l, lu;
    CHECK_OK(nf_dist_log_prob(n01, &x, 1, &lp));
    CHECK_NEAR(lp, -2.938989, 2e-7, "Normal(0,1).log_prob(2.01)");
    CHECK_OK(nf_bijector_forward(ncdf, &x, 1, &u, &l));
    CHECK_OK(nf_dist_log_prob(u01, &u, 1, &lu));
    CHECK_NEAR(lu + l, lp, 1e-7, "Uniform.log_prob(Phi(x)) + Phi.fldj(x) == Normal.log_prob(x)");
    float xs[3] = {0, 0.5f, 1}, lps[3], c[3];
    const double want[3] = {-0.9189385, -1.0439385, -1.4189385}, wc[3] = {0.5, 0.6914625, 0.8413447};
    CHECK_OK(nf_dist_log_prob(n01, xs, 3, lps));
    CHECK_OK(nf_dist_cdf(n01, xs, 3, c));
    for (int i = 0; i < 3; i++) {
        CHECK_NEAR(lps[i], want[i], 1e-7, "Normal(0,1).log_prob(%g)", xs[i]);
        CHECK_NEAR(c[i], wc[i], 1e-7, "Normal(0,1).cdf(%g)", xs[i]);
    }
    float pr[3];
    CHECK_OK(nf_dist_prob(n01, xs, 3, pr));
    for (int i = 0; i < 3; i++) CHECK_NEAR(pr[i], exp(want[i]), 1e-6, "prob = exp(log_prob)");
    nf_dist_free(n01);
    nf_dist_free(u01);
    nf_bijector_free(ncdf);
}

static void test_transformed(void) {
    nf_dist *base = NULL, *td = NULL;
    nf_bijector *b = NULL;
    CHECK_OK(nf_dist_normal(0, 1, &base));
    CHECK_OK(nf_bijector_affine_scalar(1, 0, 2, &b));
    CHECK_OK(nf_dist_transformed(base, b, &td));
    CHECK(strcmp(nf_dist_name(td), "transformed") == 0 && nf_dist_dim(td) == 1, "name and dim");
    float z[3], lp[3], c[3];
    for (int i = 0; i < 3; i++) z[i] = (float)ref_td_z[i];
    CHECK_OK(nf_dist_log_prob(td, z, 3, lp));
    CHECK_OK(nf_dist_cdf(td, z, 3, c));
    for (int i = 0; i < 3; i++) {
        CHECK_NEAR(lp[i], ref_td_logp[i], 1e-7, "transformed log_prob(%g) vs PyTorch", z[i]);
        CHECK_NEAR(c[i], ref_td_cdf[i], 1e-7, "transformed cdf(%g) vs PyTorch", z[i]);
    }
    /* sample_and_log_prob agrees with log_prob, and samples have the right spread */
    nf_rng *rng = NULL;
    nf_rng_create(11, &rng);
    enum { M = 50000 };
    float *s = malloc(M * sizeof(float)), *sl = malloc(M * sizeof(float)), *l2 = malloc(M * sizeof(float));
    CHECK_OK(nf_dist_sample_and_log_prob(td, rng, M, s, sl));
    CHECK_OK(nf_dist_log_prob(td, s, M, l2));
    double m = 0, v = 0, worst = 0;
    for (int i = 0; i < M; i++) {
        m += s[i], v += (double)s[i] * s[i];
        if (fabs(sl[i] - l2[i]) > worst) worst = fabs(sl[i] - l2[i]);
    }
    m /= M, v = v / M - m * m;
    CHECK(worst < 1e-5, "sample_and_log_prob vs log_prob: max difference %g", worst);
    CHECK(fabs(m) < 0.03 && fabs(v - 4) < 0.08, "samples of 2 N(0,1): mean %g var %g", m, v);
    nf_dist_free(td);

    /* A decreasing bijector flips the cdf: y = -x has F(y) = 1 - Phi(-y) = Phi(y). */
    float neg = -1;
    CHECK_OK(nf_dist_normal(0, 1, &base));
    CHECK_OK(nf_bijector_scale(1, &neg, 1, &b));
    CHECK_OK(nf_dist_transformed(base, b, &td));
    float y = 0.7f, cy;
    CHECK_OK(nf_dist_cdf(td, &y, 1, &cy));
    CHECK_NEAR(cy, 0.758036347776927, 1e-6, "cdf through a decreasing bijector");
    nf_dist_free(td);

    /* A nonlinear 2-D transformed distribution: consistency of the two paths. */
    nf_dist *b2 = NULL;
    nf_bijector *parts[3] = {0}, *ch = NULL;
    float loc[2] = {0.5f, -1}, sd[2] = {1, 0.5f};
    CHECK_OK(nf_dist_mvn_diag(2, loc, sd, &b2));
    CHECK_OK(nf_bijector_affine(2, 1, NULL, NULL, NULL, &parts[0]));
    CHECK_OK(nf_bijector_softplus(2, &parts[1]));
    CHECK_OK(nf_bijector_leaky_relu(2, 0.3f, &parts[2]));
    CHECK_OK(nf_bijector_chain(parts, 3, &ch));
    CHECK_OK(nf_bijector_init_params(ch, rng));
    CHECK_OK(nf_dist_transformed(b2, ch, &td));
    float s2[2000], sl2[1000], l22[1000];
    CHECK_OK(nf_dist_sample_and_log_prob(td, rng, 1000, s2, sl2));
    CHECK_OK(nf_dist_log_prob(td, s2, 1000, l22));
    worst = 0;
    for (int i = 0; i < 1000; i++)
        if (fabs(sl2[i] - l22[i]) > worst) worst = fabs(sl2[i] - l22[i]);
    CHECK(worst < 1e-4, "2-D transformed: sample_and_log_prob vs log_prob, max difference %g", worst);
    CHECK_ERR(nf_dist_cdf(td, s2, 1, c), NF_ERR_UNSUPPORTED, "scalar");
    nf_dist_free(td);
    free(s), free(sl), free(l2);
    nf_rng_free(rng);
}

static void test_basic_dists(void) {
    nf_dist *mvn = NULL, *iso = NULL, *u = NULL;
    float loc[2] = {1, -0.5f}, sd[2] = {2, 0.5f}, x[6], lp[4];
    for (int i = 0; i < 6; i++) x[i] = (float)ref_mvn_x[i];
    CHECK_OK(nf_dist_mvn_diag(2, loc, sd, &mvn));
    CHECK_OK(nf_dist_log_prob(mvn, x, 3, lp));
    for (int i = 0; i < 3; i++) CHECK_NEAR(lp[i], ref_mvn_logp[i], 1e-7, "mvn_diag log_prob vs PyTorch, row %d", i);
    CHECK_ERR(nf_dist_cdf(mvn, x, 1, lp), NF_ERR_UNSUPPORTED, "only scalar");
    CHECK_OK(nf_dist_mvn_scaled_identity(2, NULL, 2.0f, &iso));
    float z[2] = {0, 0};
    CHECK_OK(nf_dist_log_prob(iso, z, 1, lp));
    CHECK_NEAR(lp[0], -2 * (log(2.0) + 0.91893853320467274), 1e-7, "scaled identity log_prob at 0");

    CHECK_OK(nf_dist_uniform(-1, 3, &u));
    float in[4] = {0.5f, -1.5f, 3.0f, 3.5f}, c[4];
    CHECK_OK(nf_dist_log_prob(u, in, 4, lp));
    CHECK_NEAR(lp[0], ref_uni_logp[0], 1e-7, "uniform log_prob vs PyTorch");
    CHECK(isinf(lp[1]) && lp[1] < 0 && isinf(lp[3]), "uniform log_prob outside [low, high] is -inf");
    CHECK(lp[2] == lp[0], "uniform log_prob at high: the support is closed (%g)", (double)lp[2]);
    CHECK_OK(nf_dist_cdf(u, in, 3, c));
    CHECK(c[0] == 0.375f && c[1] == 0 && c[2] == 1, "uniform cdf clamps");
    /* TFP's logistic, uniform(0, 1) through invert(sigmoid): sigmoid(x) rounds to 1 in float32
     * above x ~ 16.6, where the density must go on as the logistic's -x - 2 log(1 + e^-x) */
    {
        nf_rng *r0 = NULL;
        nf_rng_create(1, &r0);
        nf_dist *logi = NULL;
        CHECK_OK(nf_dist_from_spec("transformed(uniform(0, 1), invert(sigmoid))", r0, &logi));
        float xs[5] = {-30, -17, 0, 17, 30}, lq[5];
        if (logi) CHECK_OK(nf_dist_log_prob(logi, xs, 5, lq));
        for (int k = 0; logi && k < 5; k++) {
            double ax = fabs(xs[k]), want = -ax - 2 * log1p(exp(-ax));
            CHECK_NEAR(lq[k], want, 1e-4 * (1 + ax), "logistic log_prob at %g", (double)xs[k]);
        }
        nf_dist_free(logi);
        /* the same at normal_cdf's boundary: Phi(x) rounds to 1 above x ~ 5.4 */
        nf_dist *nrm = NULL;
        CHECK_OK(nf_dist_from_spec("transformed(uniform(0, 1), invert(normal_cdf))", r0, &nrm));
        float xn[3] = {-7, 0, 7}, ln[3];
        if (nrm) CHECK_OK(nf_dist_log_prob(nrm, xn, 3, ln));
        for (int k = 0; nrm && k < 3; k++)
            CHECK_NEAR(ln[k], -0.5 * xn[k] * xn[k] - 0.91893853320467274, 1e-3, "normal via normal_cdf at %g", (double)xn[k]);
        nf_dist_free(nrm);
        /* and tanh's: tanh(x) rounds to 1 above x ~ 9 */
        nf_dist *th = NULL;
        CHECK_OK(nf_dist_from_spec("transformed(uniform(-1, 1), invert(tanh))", r0, &th));
        float xt[3] = {-12, 0, 12}, lt[3];
        if (th) CHECK_OK(nf_dist_log_prob(th, xt, 3, lt));
        for (int k = 0; th && k < 3; k++) {
            double ax = fabs(xt[k]), want = log(0.5) + 2 * (log(2.0) - ax - log1p(exp(-2 * ax)));
            CHECK_NEAR(lt[k], want, 1e-4 * (1 + ax), "uniform through invert(tanh) at %g", (double)xt[k]);
        }
        nf_dist_free(th);
        nf_rng_free(r0);
    }

    /* sampling moments */
    nf_rng *rng = NULL;
    nf_rng_create(5, &rng);
    enum { M = 40000 };
    float *s = malloc(2 * M * sizeof(float));
    CHECK_OK(nf_dist_sample(mvn, rng, M, s));
    double m0 = 0, m1 = 0, v0 = 0, v1 = 0;
    for (int i = 0; i < M; i++) m0 += s[2 * i], m1 += s[2 * i + 1];
    m0 /= M, m1 /= M;
    for (int i = 0; i < M; i++)
        v0 += (s[2 * i] - m0) * (s[2 * i] - m0), v1 += (s[2 * i + 1] - m1) * (s[2 * i + 1] - m1);
    v0 /= M, v1 /= M;
    CHECK(fabs(m0 - 1) < 0.05 && fabs(m1 + 0.5) < 0.02, "mvn sample means %g %g", m0, m1);
    CHECK(fabs(v0 - 4) < 0.15 && fabs(v1 - 0.25) < 0.01, "mvn sample variances %g %g", v0, v1);
    CHECK_OK(nf_dist_sample(u, rng, M, s));
    int inside = 1;
    for (int i = 0; i < M; i++) inside &= s[i] >= -1 && s[i] < 3;
    CHECK(inside, "uniform samples lie in [low, high)");
    free(s);
    nf_rng_free(rng);

    /* errors */
    nf_dist *bad = NULL;
    CHECK_ERR(nf_dist_normal(0, 0, &bad), NF_ERR_DOMAIN, "scale[0]=0");
    CHECK_ERR(nf_dist_normal(NAN, 1, &bad), NF_ERR_DOMAIN, "loc");
    CHECK_ERR(nf_dist_uniform(1, 1, &bad), NF_ERR_DOMAIN, "low < high");
    float nanx[2] = {0, NAN};
    CHECK_ERR(nf_dist_log_prob(mvn, nanx, 1, lp), NF_ERR_DOMAIN, "column 1");
    CHECK_ERR(nf_dist_sample(mvn, NULL, 1, lp), NF_ERR_ARG, "rng");
    nf_bijector *e3 = NULL;
    CHECK_OK(nf_bijector_exp(3, &e3));
    CHECK_ERR(nf_dist_transformed(mvn, e3, &bad), NF_ERR_SHAPE, "dimension");
    nf_bijector_free(e3); /* not taken on failure */
    nf_dist_free(mvn);
    nf_dist_free(iso);
    nf_dist_free(u);

    /* log-normal: log_prob outside the support of exp is a domain error */
    nf_dist *n01 = NULL, *ln = NULL;
    nf_bijector *e1 = NULL;
    CHECK_OK(nf_dist_normal(0, 1, &n01));
    CHECK_OK(nf_bijector_exp(1, &e1));
    CHECK_OK(nf_dist_transformed(n01, e1, &ln));
    float yv[2] = {1.0f, -1.0f};
    CHECK_OK(nf_dist_log_prob(ln, yv, 1, lp));
    CHECK_NEAR(lp[0], -0.91893853320467274, 1e-7, "log-normal density at 1");
    CHECK_ERR(nf_dist_log_prob(ln, yv, 2, lp), NF_ERR_DOMAIN, "y > 0");
    nf_dist_free(ln);
}

static void test_normal_cdf_sampling(void) {
    /* normal_cdf.inverse(u), u ~ Uniform(0,1) (here as a transformed
     * distribution), is standard normal. */
    nf_dist *u = NULL, *td = NULL;
    nf_bijector *ncdf = NULL, *inv = NULL;
    CHECK_OK(nf_dist_uniform(0x1.0p-24f, 1, &u));
    CHECK_OK(nf_bijector_normal_cdf(1, &ncdf));
    CHECK_OK(nf_bijector_invert(ncdf, &inv));
    CHECK_OK(nf_dist_transformed(u, inv, &td));
    nf_rng *rng = NULL;
    nf_rng_create(99, &rng);
    enum { M = 100000 };
    float *s = malloc(M * sizeof(float)), *lp = malloc(M * sizeof(float));
    CHECK_OK(nf_dist_sample_and_log_prob(td, rng, M, s, lp));
    double m = 0, v = 0, worst = 0;
    for (int i = 0; i < M; i++) {
        m += s[i], v += (double)s[i] * s[i];
        double ref = -0.5 * s[i] * s[i] - 0.91893853320467274;
        if (fabs(lp[i] - ref) > worst) worst = fabs(lp[i] - ref);
    }
    m /= M, v = v / M - m * m;
    CHECK(fabs(m) < 0.015 && fabs(v - 1) < 0.02, "normal_cdf.inverse(u): mean %g, var %g", m, v);
    CHECK(worst < 1e-4, "its log_prob is the standard normal's (max diff %g)", worst);
    free(s), free(lp);
    nf_rng_free(rng);
    nf_dist_free(td);
}

/* The mixture base against PyTorch's MixtureSameFamily; its gradients (in x
 * and in its parameters) against central differences; sampling moments. */
static void test_mog(void) {
    enum { K = REF_MOG_K, d = REF_MOG_D, n = 4 };
    nf_rng *rng = NULL;
    nf_rng_create(2, &rng);
    nf_dist *m = NULL;
    CHECK_OK(nf_dist_mog(d, K, rng, &m));
    if (!m) return;
    CHECK(m->nparams == K + 2 * K * d, "mog parameter count");
    for (size_t k = 0; k < m->nparams; k++) m->params[k] = (float)ref_mog_params[k];
    float x[n * d], lp[n], g[n * d];
    for (int i = 0; i < n * d; i++) x[i] = (float)ref_mog_x[i];
    CHECK_OK(nf_dist_log_prob(m, x, n, lp));
    for (int i = 0; i < n; i++) CHECK_NEAR(lp[i], ref_mog_logp[i], 1e-5, "mog log_prob[%d] vs PyTorch", i);
    /* gradients: L = sum_i w_i log p(x_i) */
    const float w[n] = {0.5f, -1.0f, 2.0f, 0.25f};
    m->ops->log_prob_grad(m, g, x, n);
    float gp[K + 2 * K * d];
    memset(gp, 0, sizeof gp);
    m->ops->param_grad(m, gp, w, x, n);
    const double h = 1.0 / 256;
    for (int q = 0; q < n * d; q++) {
        float v0 = x[q], lpp[n], lpm[n];
        x[q] = (float)(v0 + h), nf_dist_log_prob(m, x, n, lpp);
        x[q] = (float)(v0 - h), nf_dist_log_prob(m, x, n, lpm);
        x[q] = v0;
        CHECK_NEAR(g[q], ((double)lpp[q / d] - lpm[q / d]) / (2 * h), 2e-3, "mog d log p / dx[%d]", q);
    }
    for (size_t k = 0; k < m->nparams; k++) {
        float v0 = m->params[k], lpp[n], lpm[n];
        double fd = 0;
        m->params[k] = (float)(v0 + h), nf_dist_log_prob(m, x, n, lpp);
        m->params[k] = (float)(v0 - h), nf_dist_log_prob(m, x, n, lpm);
        m->params[k] = v0;
        for (int i = 0; i < n; i++) fd += w[i] * ((double)lpp[i] - lpm[i]) / (2 * h);
        CHECK_NEAR(gp[k], fd, 2e-3, "mog parameter gradient [%zu]", k);
    }
    /* samples: the mixture's mean sum_k pi_k mu_k */
    float *xs = malloc(20000 * d * sizeof(float));
    CHECK_OK(nf_dist_sample(m, rng, 20000, xs));
    double pz = 0, pi[K], mean[d] = {0}, emp[d] = {0};
    for (int k = 0; k < K; k++) pz += exp(ref_mog_params[k]);
    for (int k = 0; k < K; k++) pi[k] = exp(ref_mog_params[k]) / pz;
    for (int k = 0; k < K; k++)
        for (int j = 0; j < d; j++) mean[j] += pi[k] * ref_mog_params[K + k * d + j];
    for (int i = 0; i < 20000; i++)
        for (int j = 0; j < d; j++) emp[j] += xs[i * d + j] / 20000.0;
    CHECK(fabs(emp[0] - mean[0]) < 0.03 && fabs(emp[1] - mean[1]) < 0.03, "mog sample mean (%.3f, %.3f) vs (%.3f, %.3f)",
          emp[0], emp[1], mean[0], mean[1]);
    free(xs);
    nf_dist *bad = NULL;
    CHECK_ERR(nf_dist_mog(2, 0, rng, &bad), NF_ERR_ARG, "components");
    nf_dist_free(m);
    nf_rng_free(rng);
}

/* TFP's Logistic and Laplace: log_prob and cdf against their closed forms,
 * sampling moments (variances s^2 pi^2 / 3 and 2 b^2), the log-density's
 * gradient against differences, and both as a flow's base. */
/* A flow on base `spec` trains on moons: its loss falls over 30 epochs. */
static void check_base_trains(const char *spec, nf_rng *rng) {
    nf_flow *f = NULL;
    CHECK_OK(nf_flow_from_spec(spec, 2, 3, &f));
    if (!f) return;
    float x[200 * 2];
    nf_data_moons(rng, 200, 0.05f, x, NULL);
    nf_train_opts o = nf_train_defaults();
    o.epochs = 30, o.batch = 50, o.lr = 3e-3f;
    nf_train_report r;
    CHECK_OK(nf_flow_fit(f, x, 200, &o, &r));
    CHECK(r.n_history == 30 && r.train_history[29] < r.train_history[0], "%s trains (%.3f -> %.3f)", spec,
          r.n_history ? r.train_history[0] : NAN, r.n_history == 30 ? r.train_history[29] : NAN);
    nf_train_report_free(&r);
    nf_flow_free(f);
}

/* The gradient of a 2-D distribution's log p at (1.3, -0.9) against central differences. */
static void check_log_prob_grad(const nf_dist *g, const char *name) {
    float pt[2] = {1.3f, -0.9f}, gr[2];
    CHECK_OK(g->ops->log_prob_grad(g, gr, pt, 1));
    for (int j = 0; j < 2; j++) {
        float q[2] = {pt[0], pt[1]}, lpp, lpm;
        q[j] = pt[j] + 0.00390625f;
        nf_dist_log_prob(g, q, 1, &lpp);
        q[j] = pt[j] - 0.00390625f;
        nf_dist_log_prob(g, q, 1, &lpm);
        CHECK_NEAR(gr[j], ((double)lpp - lpm) / (2 * 0.00390625), 2e-3, "%s d log p / dx[%d]", name, j);
    }
}

static void test_logistic_laplace(void) {
    nf_rng *rng = NULL;
    nf_rng_create(21, &rng);
    for (int k = 0; k < 2; k++) {
        nf_dist *D = NULL;
        CHECK_OK(k ? nf_dist_laplace(1, 1, 2, &D) : nf_dist_logistic(1, 1, 2, &D));
        if (!D) continue;
        float x[3] = {0, 1, 3}, lp[3], c[3];
        CHECK_OK(nf_dist_log_prob(D, x, 3, lp));
        CHECK_OK(nf_dist_cdf(D, x, 3, c));
        for (int i = 0; i < 3; i++) {
            double z = (x[i] - 1) / 2.0;
            double want = k ? -fabs(z) - log(2.0) - log(2.0) : -fabs(z) - 2 * log1p(exp(-fabs(z))) - log(2.0);
            double wc = k ? (z < 0 ? 0.5 * exp(z) : 1 - 0.5 * exp(-z)) : 1 / (1 + exp(-z));
            CHECK_NEAR(lp[i], want, 1e-6, "%s log_prob at %g", k ? "laplace" : "logistic", (double)x[i]);
            CHECK_NEAR(c[i], wc, 1e-6, "%s cdf at %g", k ? "laplace" : "logistic", (double)x[i]);
        }
        enum { M = 200000 };
        float *s = malloc(M * sizeof(float));
        CHECK_OK(nf_dist_sample(D, rng, M, s));
        double m = 0, v = 0;
        for (int i = 0; i < M; i++) m += s[i] / (double)M;
        for (int i = 0; i < M; i++) v += (s[i] - m) * (s[i] - m) / (double)M;
        double wv = k ? 2 * 4.0 : 4.0 * 3.14159265358979 * 3.14159265358979 / 3;
        CHECK(fabs(m - 1) < 0.03 && fabs(v / wv - 1) < 0.02, "%s samples: mean %.4f, variance %.4f (want 1, %.4f)",
              k ? "laplace" : "logistic", m, v, wv);
        free(s);
        nf_dist_free(D);
    }
    /* as bases: the gradient against differences, and a flow that trains on them */
    const char *specs[2] = {"transformed(logistic(0, 1), maf(hidden=[8]))", "transformed(laplace(0, 1), maf(hidden=[8]))"};
    for (int k = 0; k < 2; k++) check_base_trains(specs[k], rng);
    for (int k = 0; k < 2; k++) { /* the gradient of log p (laplace away from its kink) */
        nf_dist *g = NULL;
        CHECK_OK(k ? nf_dist_laplace(2, 0.5f, 1.5f, &g) : nf_dist_logistic(2, 0.5f, 1.5f, &g));
        if (g) check_log_prob_grad(g, k ? "laplace" : "logistic");
        nf_dist_free(g);
    }
    nf_dist *bad = NULL;
    CHECK_ERR(nf_dist_laplace(1, 0, 0, &bad), NF_ERR_DOMAIN, "scale > 0");
    nf_rng_free(rng);
}

/* Student's t: closed forms (df = 1 is the Cauchy: log f(0) = -log pi, F(z) = 1/2 + atan(z)/pi),
 * a scaled one's log_prob, the variance of its samples (df = 5: 5/3), the gradient of log p,
 * a flow on it as a base, and df's domain. */
static void test_student_t(void) {
    nf_rng *rng = NULL;
    nf_rng_create(22, &rng);
    nf_dist *D = NULL;
    CHECK_OK(nf_dist_student_t(1, 1, 0, 1, &D));
    if (D) {
        float x[4] = {0, 1, -1, 3}, lp[4], c[4];
        CHECK_OK(nf_dist_log_prob(D, x, 4, lp));
        CHECK_OK(nf_dist_cdf(D, x, 4, c));
        CHECK_NEAR(lp[0], -log(3.14159265358979), 1e-6, "Cauchy log_prob at 0");
        for (int i = 0; i < 4; i++) CHECK_NEAR(c[i], 0.5 + atan(x[i]) / 3.14159265358979, 1e-6, "Cauchy cdf at %g", (double)x[i]);
        nf_dist_free(D);
    }
    CHECK_OK(nf_dist_student_t(1, 3, 1, 2, &D));
    if (D) {
        float x = 0.5f, lp;
        CHECK_OK(nf_dist_log_prob(D, &x, 1, &lp));
        double z = -0.25, want = lgamma(2.0) - lgamma(1.5) - 0.5 * log(3 * 3.14159265358979) - 2 * log1p(z * z / 3) - log(2.0);
        CHECK_NEAR(lp, want, 1e-6, "student_t(3, 1, 2) log_prob at 0.5");
        nf_dist_free(D);
    }
    CHECK_OK(nf_dist_student_t(1, 5, 0, 1, &D));
    if (D) {
        enum { M = 400000 };
        float *s = malloc(M * sizeof(float));
        CHECK_OK(nf_dist_sample(D, rng, M, s));
        double m = 0, v = 0;
        for (int i = 0; i < M; i++) m += s[i] / (double)M;
        for (int i = 0; i < M; i++) v += (s[i] - m) * (s[i] - m) / (double)M;
        CHECK(fabs(m) < 0.01 && fabs(v / (5.0 / 3) - 1) < 0.03, "student_t(5) samples: mean %.4f, variance %.4f (want 0, 1.6667)", m, v);
        /* the sampled quantiles follow the cdf: the share below 2.015 (df 5's 95th percentile) is 0.95 */
        size_t below = 0;
        for (int i = 0; i < M; i++) below += s[i] < 2.015048f;
        CHECK(fabs((double)below / M - 0.95) < 0.002, "student_t(5): %.4f of the samples below its 95th percentile", (double)below / M);
        float q = 2.015048f, cq;
        CHECK_OK(nf_dist_cdf(D, &q, 1, &cq));
        CHECK_NEAR(cq, 0.95, 1e-5, "student_t(5) cdf at its 95th percentile");
        free(s);
        nf_dist_free(D);
    }
    CHECK_OK(nf_dist_student_t(2, 4, 0.5f, 1.5f, &D));
    if (D) check_log_prob_grad(D, "student_t");
    nf_dist_free(D);
    check_base_trains("transformed(student_t(4), maf(hidden=[8]))", rng);
    CHECK_ERR(nf_dist_student_t(1, 0, 0, 1, &D), NF_ERR_DOMAIN, "df must be finite and > 0");
    nf_rng_free(rng);
}

/* MultivariateNormalTriL: log_prob against the closed form, the samples' covariance L L^T,
 * the gradients in x and in the parameters against differences, and as a trainable base it
 * learns a correlated Gaussian's covariance. */
static void test_mvn_tril(void) {
    nf_rng *rng = NULL;
    nf_rng_create(23, &rng);
    float loc[2] = {1, 2}, L[4] = {2, 0, 0.5f, 1};
    nf_dist *D = NULL;
    CHECK_OK(nf_dist_mvn_tril(2, loc, L, &D));
    if (D) {
        float x[4] = {1, 2, 0, 0}, lp[2];
        CHECK_OK(nf_dist_log_prob(D, x, 2, lp));
        CHECK_NEAR(lp[0], -2.5310242469692907, 1e-6, "mvn_tril log_prob at loc");
        CHECK_NEAR(lp[1], -4.187274246969291, 1e-6, "mvn_tril log_prob at 0 (numpy's)");
        enum { M = 200000 };
        float *s = malloc(2 * M * sizeof(float));
        CHECK_OK(nf_dist_sample(D, rng, M, s));
        double m0 = 0, m1 = 0, c00 = 0, c01 = 0, c11 = 0;
        for (int i = 0; i < M; i++) m0 += s[2 * i] / (double)M, m1 += s[2 * i + 1] / (double)M;
        for (int i = 0; i < M; i++) {
            double a = s[2 * i] - m0, b = s[2 * i + 1] - m1;
            c00 += a * a / M, c01 += a * b / M, c11 += b * b / M;
        }
        CHECK(fabs(m0 - 1) < 0.02 && fabs(m1 - 2) < 0.01 && fabs(c00 - 4) < 0.06 && fabs(c01 - 1) < 0.03 && fabs(c11 - 1.25) < 0.02,
              "mvn_tril samples: mean (%.3f, %.3f), covariance [%.3f %.3f; %.3f] (want [4 1; 1.25])", m0, m1, c00, c01, c11);
        free(s);
        check_log_prob_grad(D, "mvn_tril");
        /* d log p / d params against central differences at one point */
        float pt[2] = {0.3f, -0.7f}, w = 1, gp[5] = {0};
        CHECK_OK(D->ops->param_grad(D, gp, &w, pt, 1));
        for (size_t k = 0; k < 5; k++) {
            float keep = D->params[k], lpp, lpm;
            D->params[k] = keep + 0.00390625f;
            nf_dist_log_prob(D, pt, 1, &lpp);
            D->params[k] = keep - 0.00390625f;
            nf_dist_log_prob(D, pt, 1, &lpm);
            D->params[k] = keep;
            CHECK_NEAR(gp[k], ((double)lpp - lpm) / (2 * 0.00390625), 2e-3, "mvn_tril d log p / d param %zu", k);
        }
        nf_dist_free(D);
    }
    float bad[4] = {1, 0, 0, 0};
    CHECK_ERR(nf_dist_mvn_tril(2, NULL, bad, &D), NF_ERR_DOMAIN, "the diagonal must be > 0");
    /* as a base: the fitted covariance approaches the data's, [1 0.8; 0.8 1] */
    nf_flow *f = NULL;
    CHECK_OK(nf_flow_from_spec("transformed(mvn_tril, shift([0, 0]))", 2, 1, &f));
    if (f) {
        enum { N = 4000 };
        float *x = malloc(2 * N * sizeof(float));
        for (int i = 0; i < N; i++) {
            float a = nf_rng_normal(rng), b = nf_rng_normal(rng);
            x[2 * i] = a, x[2 * i + 1] = 0.8f * a + 0.6f * b;
        }
        nf_train_opts o = nf_train_defaults();
        o.epochs = 40, o.batch = 200, o.lr = 2e-2f;
        nf_train_report r;
        CHECK_OK(nf_flow_fit(f, x, N, &o, &r));
        nf_train_report_free(&r);
        float *s = malloc(2 * N * sizeof(float));
        nf_flow_sample(f, rng, N, s);
        double c01 = 0, c00 = 0;
        for (int i = 0; i < N; i++) c00 += s[2 * i] * s[2 * i] / N, c01 += s[2 * i] * s[2 * i + 1] / N;
        CHECK(fabs(c01 - 0.8) < 0.08 && fabs(c00 - 1) < 0.1, "a trained mvn_tril base: covariance %.3f, variance %.3f (want 0.8, 1)",
              c01, c00);
        free(s), free(x);
        nf_flow_free(f);
    }
    nf_rng_free(rng);
}

/* independent(scalar, d): log p sums the columns' scalar log-densities, samples have the
 * scalar's moments in every column, a flow on it trains, and the wrong inputs are refused. */
static void test_independent(void) {
    nf_rng *rng = NULL;
    nf_rng_create(24, &rng);
    nf_dist *s = NULL, *D = NULL;
    CHECK_OK(nf_dist_normal(1, 2, &s));
    CHECK_OK(nf_dist_independent(s, 3, &D));
    if (D) {
        float x[3] = {1, 0, 3}, lp;
        CHECK_OK(nf_dist_log_prob(D, x, 1, &lp));
        double want = 0;
        for (int j = 0; j < 3; j++) want += -0.91893853320467274 - log(2.0) - 0.5 * pow((x[j] - 1) / 2.0, 2);
        CHECK_NEAR(lp, want, 1e-6, "independent(normal(1, 2), 3) log_prob");
        enum { M = 100000 };
        float *v = malloc(3 * M * sizeof(float));
        CHECK_OK(nf_dist_sample(D, rng, M, v));
        for (int j = 0; j < 3; j++) {
            double m = 0, q = 0;
            for (int i = 0; i < M; i++) m += v[3 * i + j] / (double)M;
            for (int i = 0; i < M; i++) q += (v[3 * i + j] - m) * (v[3 * i + j] - m) / M;
            CHECK(fabs(m - 1) < 0.03 && fabs(q - 4) < 0.08, "independent column %d: mean %.3f, variance %.3f", j, m, q);
        }
        free(v);
        nf_dist_free(D);
    }
    check_base_trains("transformed(independent(student_t(5)), maf(hidden=[8]))", rng);
    CHECK_OK(nf_dist_student_t(2, 3, 0, 1, &s));
    CHECK_ERR(nf_dist_independent(s, 2, &D), NF_ERR_SHAPE, "it takes a scalar distribution");
    nf_dist_free(s);
    CHECK_OK(nf_dist_mog(1, 2, rng, &s));
    CHECK_ERR(nf_dist_independent(s, 2, &D), NF_ERR_UNSUPPORTED, "trainable parameters");
    nf_dist_free(s);
    nf_rng_free(rng);
}

void test_dist(void) {
    test_independent();
    test_mvn_tril();
    test_student_t();
    test_logistic_laplace();
    test_seed_numbers();
    test_mog();
    test_transformed();
    test_basic_dists();
    test_normal_cdf_sampling();
}
