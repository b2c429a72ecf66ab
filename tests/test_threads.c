/*
 * test_threads.c - one distribution used from several threads at once gives
 * the same answers as serial calls (and so does a flow, on the CPU and on a
 * device), and error messages are per thread.
 */
#include "test.h"
#include "../src/device/prog.h"

#include <pthread.h>
#include <stdlib.h>

enum { NT = 4, M = 4000 };

typedef struct job {
    const nf_dist *dist;
    uint64_t seed;
    float x[2 * M], lp[M], lp2[M];
    int ok;
    char msg[128];
} job;

static void *worker(void *arg) {
    job *j = arg;
    nf_rng *rng = NULL;
    j->ok = nf_rng_create(j->seed, &rng) == NF_OK;
    for (int rep = 0; rep < 5 && j->ok; rep++) {
        j->ok &= nf_dist_sample_and_log_prob(j->dist, rng, M, j->x, j->lp) == NF_OK;
        j->ok &= nf_dist_log_prob(j->dist, j->x, M, j->lp2) == NF_OK;
    }
    /* an error in this thread... */
    nf_dist *bad = NULL;
    nf_dist_normal(0, -1, &bad);
    snprintf(j->msg, sizeof j->msg, "%s", nf_last_error());
    nf_rng_free(rng);
    return NULL;
}

/* Flows: one model, four threads, each with its own RNG, sampling and
 * scoring at once; every thread's numbers equal a serial recomputation. */
typedef struct fjob {
    const nf_flow *flow;
    uint64_t seed;
    float x[2 * 500], lp[500], lp2[500];
    int ok;
} fjob;

static void *flow_worker(void *arg) {
    fjob *j = arg;
    nf_rng *rng = NULL;
    j->ok = nf_rng_create(j->seed, &rng) == NF_OK;
    for (int rep = 0; rep < 3 && j->ok; rep++) {
        j->ok &= nf_flow_sample_and_log_prob(j->flow, rng, 500, j->x, j->lp) == NF_OK;
        j->ok &= nf_flow_log_prob(j->flow, j->x, 500, j->lp2) == NF_OK;
    }
    nf_rng_free(rng);
    return NULL;
}

static void test_flow_threads(void) {
    /* the third: a flow on a device (the host device), whose calls take the device's lock */
    const char *specs[3] = {"realnvp(layers=4, hidden=[32,32])", "maf(layers=3, hidden=[24,24])",
                            "maf(layers=3, hidden=[24,24])"};
    for (int k = 0; k < 3; k++) {
        nf_flow *f = NULL;
        CHECK_OK(nf_flow_from_spec(specs[k], 2, 9, &f));
        if (!f) continue;
        if (k == 2) CHECK_OK(nf__flow_set_device_ops(f, &nf__dev_host, 0));
        static fjob jobs[NT];
        pthread_t th[NT];
        for (int t = 0; t < NT; t++) {
            jobs[t].flow = f, jobs[t].seed = 200 + t;
            pthread_create(&th[t], NULL, flow_worker, &jobs[t]);
        }
        for (int t = 0; t < NT; t++) pthread_join(th[t], NULL);
        for (int t = 0; t < NT; t++) {
            CHECK(jobs[t].ok, "%s: thread %d calls succeeded", specs[k], t);
            float lp[500];
            CHECK_OK(nf_flow_log_prob(f, jobs[t].x, 500, lp));
            CHECK(!memcmp(lp, jobs[t].lp2, sizeof lp), "%s: thread %d log_prob equals the serial result", specs[k], t);
        }
        nf_flow_free(f);
    }
}

static int draw_m(void *u, nf_rng *r, float *x, size_t n) {
    (void)u;
    return nf_data_moons(r, n, 0.05f, x, NULL) != NF_OK;
}

/* The training pool (batch split over 3 threads) under ThreadSanitizer too:
 * maximum likelihood, reverse KL, and a pool stopped before its first task. */
static void test_pool(void) {
    nf_flow *f = NULL;
    CHECK_OK(nf_flow_from_spec("maf(layers=2, hidden=[16])", 2, 2, &f));
    nf_train_opts o = nf_train_defaults();
    o.batch = 64, o.steps = 20, o.threads = 3, o.log_every = 10;
    nf_train_report r;
    CHECK_OK(nf_flow_fit_stream(f, draw_m, NULL, &o, &r));
    CHECK(r.steps == 20 && isfinite(r.train_loss), "threaded training ran");
    nf_train_report_free(&r);
    /* reverse KL on the same pool, and a trainer freed before its first step */
    nf_log_density_fn u1 = NULL;
    CHECK_OK(nf_energy_target("u1", &u1));
    CHECK_OK(nf_flow_fit_reverse_kl(f, u1, NULL, &o, &r));
    CHECK(r.steps == 20 && isfinite(r.train_loss), "threaded reverse KL ran");
    nf_train_report_free(&r);
    o.resume_path = "/dev/null"; /* not a checkpoint: fails before any step */
    CHECK_ERR(nf_flow_fit_stream(f, draw_m, NULL, &o, NULL), NF_ERR_DOMAIN, "/dev/null");
    nf_flow_free(f);
}

/* log_prob and sample split over threads give the serial results bit for
 * bit (24,676 rows: 12 chunks of 2048 and a partial one, over 1, 2 and 3 threads), and a
 * failing chunk is reported with its rows. */
static void test_pass_threads(void) {
    nf_flow *f = NULL;
    CHECK_OK(nf_flow_from_spec("chain(nsf(layers=2, hidden=[8], bins=4), maf(hidden=[8]))", 2, 4, &f));
    if (!f) return;
    enum { n = 3 * 8192 + 100 };
    float *x = malloc(n * 2 * sizeof(float)), *lp[3], *xs[3], *lq[3];
    nf_rng *rng = NULL;
    nf_rng_create(6, &rng);
    nf_rng_fill_normal(rng, x, n * 2);
    x[2 * 20000] = 1e30f; /* a far point in the tenth chunk: log p = -inf, not an error */
    for (int t = 0; t < 3; t++) {
        lp[t] = malloc(n * sizeof(float)), xs[t] = malloc(n * 2 * sizeof(float)), lq[t] = malloc(n * sizeof(float));
        CHECK_OK(nf_flow_set_threads(f, (size_t)t + 1));
        CHECK_OK(nf_flow_log_prob(f, x, n, lp[t]));
        nf_rng *r = NULL;
        nf_rng_create(11, &r);
        CHECK_OK(nf_flow_sample_and_log_prob(f, r, n, xs[t], lq[t]));
        nf_rng_free(r);
    }
    for (int t = 1; t < 3; t++) {
        CHECK(!memcmp(lp[0], lp[t], n * sizeof(float)), "log_prob over %d threads equals the serial result", t + 1);
        CHECK(!memcmp(xs[0], xs[t], n * 2 * sizeof(float)) && !memcmp(lq[0], lq[t], n * sizeof(float)),
              "samples over %d threads equal the serial ones", t + 1);
    }
    CHECK(isinf(lp[2][20000]) && lp[2][20000] < 0, "the far point has log p = -inf");
    x[2 * 17000 + 1] = NAN;
    CHECK_ERR(nf_flow_log_prob(f, x, n, lp[0]), NF_ERR_DOMAIN, "row 17000");
    CHECK_ERR(nf_flow_set_threads(f, 0), NF_ERR_ARG, "1..64");
    for (int t = 0; t < 3; t++) free(lp[t]), free(xs[t]), free(lq[t]);
    free(x);
    nf_rng_free(rng);
    nf_flow_free(f);
}

void test_threads(void) {
    test_pass_threads();
    test_pool();
    test_flow_threads();
    nf_dist *base = NULL, *td = NULL;
    nf_bijector *parts[3] = {0}, *ch = NULL;
    CHECK_OK(nf_dist_mvn_diag(2, NULL, NULL, &base));
    CHECK_OK(nf_bijector_affine(2, 2, NULL, NULL, NULL, &parts[0]));
    CHECK_OK(nf_bijector_tanh(2, &parts[1]));
    CHECK_OK(nf_bijector_leaky_relu(2, 0.4f, &parts[2]));
    CHECK_OK(nf_bijector_chain(parts, 3, &ch));
    nf_rng *r = NULL;
    nf_rng_create(1, &r);
    CHECK_OK(nf_bijector_init_params(ch, r));
    nf_rng_free(r);
    CHECK_OK(nf_dist_transformed(base, ch, &td));

    /* ...does not touch the main thread's message */
    nf_bijector *none = NULL;
    nf_bijector_exp(0, &none);
    char mine[256];
    snprintf(mine, sizeof mine, "%s", nf_last_error());

    static job jobs[NT];
    pthread_t th[NT];
    for (int t = 0; t < NT; t++) {
        jobs[t].dist = td;
        jobs[t].seed = 100 + t;
        pthread_create(&th[t], NULL, worker, &jobs[t]);
    }
    for (int t = 0; t < NT; t++) pthread_join(th[t], NULL);
    CHECK(strcmp(mine, nf_last_error()) == 0, "error message is per thread: %s", nf_last_error());
    for (int t = 0; t < NT; t++) {
        CHECK(jobs[t].ok, "thread %d calls succeeded", t);
        CHECK(strstr(jobs[t].msg, "scale") != NULL, "thread %d sees its own error: %s", t, jobs[t].msg);
        /* serial recomputation gives the same numbers */
        float *lp = malloc(M * sizeof(float));
        CHECK_OK(nf_dist_log_prob(td, jobs[t].x, M, lp));
        CHECK(memcmp(lp, jobs[t].lp2, M * sizeof(float)) == 0, "thread %d: log_prob equals the serial result", t);
        /* and the same seed gives the same samples */
        nf_rng *rr = NULL;
        nf_rng_create(100 + t, &rr);
        float *x = malloc(2 * M * sizeof(float)), *l = malloc(M * sizeof(float));
        for (int rep = 0; rep < 5; rep++) nf_dist_sample_and_log_prob(td, rr, M, x, l);
        CHECK(memcmp(x, jobs[t].x, 2 * M * sizeof(float)) == 0, "thread %d: samples reproducible", t);
        free(x), free(l), free(lp);
        nf_rng_free(rr);
    }
    nf_dist_free(td);
}
