/*
 * test_comm.c - data-parallel training across processes (nf_comm), with
 * the processes simulated by threads and a transport that sums in rank
 * order.  The MPI build's tests (tests/mpi/run) run the same engine under
 * mpirun.
 */
#include "test.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#define MAXR 4

/* The transport: every rank publishes its buffer, all sum them in rank
 * order (so every rank gets the same values), then write back. */
typedef struct world {
    int n;
    pthread_barrier_t bar;
    void *buf[MAXR];
    int skew; /* > 0: rank 1 receives slightly wrong float sums from this call on (a broken transport) */
} world;

typedef struct member {
    world *w;
    nf_comm comm;
    int calls; /* float sums so far */
} member;

static int sum_any(void *user, void *buf, size_t n, int dbl) {
    member *m = user;
    world *w = m->w;
    int r = m->comm.rank;
    w->buf[r] = buf;
    pthread_barrier_wait(&w->bar);
    void *tmp = malloc((n ? n : 1) * (dbl ? sizeof(double) : sizeof(float)));
    for (size_t i = 0; i < n; i++) {
        double s = 0;
        float sf = 0;
        for (int q = 0; q < w->n; q++) {
            if (dbl) s += ((double *)w->buf[q])[i];
            else sf += ((float *)w->buf[q])[i];
        }
        if (dbl) ((double *)tmp)[i] = s;
        else ((float *)tmp)[i] = sf;
    }
    pthread_barrier_wait(&w->bar); /* everyone has read every buffer */
    memcpy(buf, tmp, n * (dbl ? sizeof(double) : sizeof(float)));
    free(tmp);
    if (!dbl && r == 1 && w->skew && ++m->calls >= w->skew && n) ((float *)buf)[0] *= 1.0001f;
    return 0;
}
static int sum_floats(void *u, float *b, size_t n) { return sum_any(u, b, n, 0); }
static int sum_doubles(void *u, double *b, size_t n) { return sum_any(u, b, n, 1); }

/* What a rank does: its own flow (same seed), rows and options. */
typedef struct job {
    member m;
    nf_flow *f;
    const float *rows; /* nf_flow_fit: [train | validation] rows of this rank */
    size_t n;
    nf_train_opts o;
    int kind; /* 0: fit, 1: stream, 2: reverse KL */
    nf_status st;
    char msg[512];
    nf_train_report rep;
} job;

static int draw_moons(void *u, nf_rng *rng, float *x, size_t n) {
    (void)u;
    return nf_data_moons(rng, n, 0.05f, x, NULL) != NF_OK;
}

static int draw_fail_late(void *u, nf_rng *rng, float *x, size_t n) { /* rank 1 fails at its 5th draw */
    int *calls = u;
    return ++*calls == 5 ? 9 : draw_moons(NULL, rng, x, n);
}

/* n moons points (2 floats each) drawn with `seed`; free() them. */
static float *moons(size_t n, uint64_t seed) {
    float *x = malloc(n * 2 * sizeof(float));
    nf_rng *rng = NULL;
    nf_rng_create(seed, &rng);
    nf_data_moons(rng, n, 0.05f, x, NULL);
    nf_rng_free(rng);
    return x;
}

static void *job_main(void *arg) {
    job *j = arg;
    nf_log_density_fn u1 = NULL;
    nf_energy_target("u1", &u1);
    if (j->kind == 0) j->st = nf_flow_fit(j->f, j->rows, j->n, &j->o, &j->rep);
    else if (j->kind == 1) j->st = nf_flow_fit_stream(j->f, j->o.user ? draw_fail_late : draw_moons, j->o.user, &j->o, &j->rep);
    else j->st = nf_flow_fit_reverse_kl(j->f, u1, NULL, &j->o, &j->rep);
    snprintf(j->msg, sizeof j->msg, "%s", j->st ? nf_last_error() : "");
    return NULL;
}

/* Runs n jobs as n "processes". */
static void run_world(job *jobs, int n, int skew) {
    world w;
    memset(&w, 0, sizeof w);
    w.n = n;
    w.skew = skew;
    pthread_barrier_init(&w.bar, NULL, (unsigned)n);
    pthread_t th[MAXR];
    for (int r = 0; r < n; r++) {
        jobs[r].m.w = &w;
        jobs[r].m.comm = (nf_comm){r, n, sum_floats, sum_doubles, &jobs[r].m, 10};
        jobs[r].o.comm = &jobs[r].m.comm;
        jobs[r].o.user = jobs[r].kind == 1 && jobs[r].o.user && r != 1 ? NULL : jobs[r].o.user;
    }
    for (int r = 1; r < n; r++) pthread_create(&th[r], NULL, job_main, &jobs[r]);
    job_main(&jobs[0]);
    for (int r = 1; r < n; r++) pthread_join(th[r], NULL);
    pthread_barrier_destroy(&w.bar);
}

static nf_flow *flow(const char *spec, size_t d) {
    nf_flow *f = NULL;
    CHECK_OK(nf_flow_from_spec(spec, d, 11, &f));
    return f;
}

static int same_params(job *jobs, int n) {
    size_t P = nf_flow_param_count(jobs[0].f);
    for (int r = 1; r < n; r++)
        if (memcmp(nf_flow_params(jobs[0].f), nf_flow_params(jobs[r].f), P * sizeof(float))) return 0;
    return 1;
}

static void free_jobs(job *jobs, int n) {
    for (int r = 0; r < n; r++) {
        nf_flow_free(jobs[r].f);
        nf_train_report_free(&jobs[r].rep);
    }
}

/* n ranks, each with its share of the training rows and of the validation
 * rows; the same global batch as one process. */
static void shard(job *jobs, int n, const float *tr, size_t ntr, const float *val, size_t nval, float *buf, size_t D) {
    float *cur = buf;
    for (int r = 0; r < n; r++) {
        size_t t0 = ntr * (size_t)r / (size_t)n, t1 = ntr * (size_t)(r + 1) / (size_t)n;
        size_t v0 = nval * (size_t)r / (size_t)n, v1 = nval * (size_t)(r + 1) / (size_t)n;
        memcpy(cur, tr + t0 * D, (t1 - t0) * D * sizeof(float));
        memcpy(cur + (t1 - t0) * D, val + v0 * D, (v1 - v0) * D * sizeof(float));
        jobs[r].rows = cur;
        jobs[r].n = (t1 - t0) + (v1 - v0);
        jobs[r].o.val_split = (float)(((double)(v1 - v0) + 0.5) / (double)jobs[r].n);
        cur += jobs[r].n * D;
    }
}

static nf_train_opts base_opts(void) {
    nf_train_opts o = nf_train_defaults();
    o.batch = 100, o.epochs = 6, o.seed = 3, o.lr = 2e-3f, o.standardize = 1;
    return o;
}

/* 1, 2 and 3 processes train one model on the same rows: equal parameters
 * on every process, the same kind of result as one process. */
static void test_fit_shards(void) {
    size_t ntr = 1500, nval = 500;
    float *all = moons(ntr + nval, 4), *buf = malloc((ntr + nval) * 2 * sizeof(float));
    const char *spec = "chain(actnorm, realnvp(layers=4, hidden=[32,32]))";
    job one = {.f = flow(spec, 2), .rows = all, .n = ntr + nval, .o = base_opts()};
    one.o.val_split = (float)((nval + 0.5) / (double)(ntr + nval));
    job_main(&one);
    CHECK(one.st == NF_OK, "one process trains: %s", one.msg);
    for (int n = 2; n <= 3; n++) {
        job jobs[MAXR];
        memset(jobs, 0, sizeof jobs);
        for (int r = 0; r < n; r++) jobs[r].f = flow(spec, 2), jobs[r].o = base_opts();
        shard(jobs, n, all, ntr, all + ntr * 2, nval, buf, 2);
        run_world(jobs, n, 0);
        int ok = 1;
        for (int r = 0; r < n; r++) ok &= jobs[r].st == NF_OK;
        CHECK(ok, "%d processes train (%s / %s)", n, jobs[0].msg, jobs[1].msg);
        CHECK(same_params(jobs, n), "%d processes keep bit-identical parameters", n);
        CHECK(jobs[0].rep.steps == one.rep.steps && jobs[0].rep.epochs == 6,
              "%d processes take the steps of one process with the global batch (%zu, %zu)", n, jobs[0].rep.steps,
              one.rep.steps);
        CHECK(jobs[0].rep.val_loss == jobs[n - 1].rep.val_loss && jobs[0].rep.train_loss == jobs[n - 1].rep.train_loss,
              "every process reports the same losses");
        CHECK_NEAR(jobs[0].rep.val_loss, one.rep.val_loss, 0.08, "%d processes' validation NLL vs one process's", n);
        const float *m1, *s1, *mn, *sn;
        nf_flow_scaler(one.f, &m1, &s1);
        nf_flow_scaler(jobs[1].f, &mn, &sn);
        CHECK(fabsf(m1[0] - mn[0]) < 1e-5f && fabsf(s1[1] - sn[1]) < 1e-5f,
              "the scaler is fitted to every process's rows (%g vs %g)", (double)mn[0], (double)m1[0]);
        free_jobs(jobs, n);
    }
    nf_flow_free(one.f);
    nf_train_report_free(&one.rep);
    free(all);
    free(buf);
}

/* Full-batch training (batch 0): the global batch is every training row
 * for any number of processes, so 3 processes with unequal shares must
 * follow one process's run to float rounding: this checks the weighting of
 * each process's gradient by its rows (Adam alone would hide a uniform
 * error of scale; weight decay and the unequal shares do not). */
static void test_full_batch_matches_one(void) {
    size_t n = 1000, share[3] = {100, 250, 650};
    float *all = moons(n, 6);
    const char *spec = "realnvp(layers=2, hidden=[16,16])";
    nf_train_opts o = nf_train_defaults();
    o.batch = 0, o.epochs = 8, o.weight_decay = 0.05f, o.lr = 1e-2f, o.seed = 2, o.standardize = 1;
    job one = {.f = flow(spec, 2), .rows = all, .n = n, .o = o};
    job_main(&one);
    job jobs[MAXR];
    memset(jobs, 0, sizeof jobs);
    size_t at = 0;
    for (int r = 0; r < 3; r++) {
        jobs[r].f = flow(spec, 2), jobs[r].o = o, jobs[r].rows = all + at * 2, jobs[r].n = share[r];
        at += share[r];
    }
    run_world(jobs, 3, 0);
    CHECK(one.st == NF_OK && jobs[0].st == NF_OK && same_params(jobs, 3), "full batch on 1 and 3 processes (%s)",
          jobs[0].msg);
    size_t P = nf_flow_param_count(one.f);
    double worst = 0;
    for (size_t i = 0; i < P; i++) {
        double a = nf_flow_params(one.f)[i], b = nf_flow_params(jobs[0].f)[i];
        worst = fmax(worst, fabs(a - b) / (1e-3 + fabs(a)));
    }
    CHECK(worst < 1e-3, "3 unequal shares follow one process's full-batch run (parameters within %.2g relative)", worst);
    for (size_t e = 0; e < 8 && one.rep.n_history == 8 && jobs[0].rep.n_history == 8; e++)
        CHECK_NEAR(jobs[0].rep.train_history[e], one.rep.train_history[e], 1e-5, "epoch %zu's loss", e + 1);
    free_jobs(jobs, 3);
    nf_flow_free(one.f);
    nf_train_report_free(&one.rep);
    free(all);
}

static int stop_at_2(void *u, const nf_train_progress *p) {
    (void)u;
    return p->epoch == 2;
}

/* A checkpoint of a 2-process run: resumed by 2 processes bit for bit, and
 * by 3 processes correctly (equal parameters, the planned epochs). */
static void test_resume(void) {
    size_t ntr = 600;
    float *all = moons(ntr, 5);
    const char *spec = "realnvp(layers=2, hidden=[16,16])";
    char ck[64];
    snprintf(ck, sizeof ck, "/tmp/nflow_comm_ck_%d.nflow", (int)getpid());
    job full[MAXR], part[MAXR], res[MAXR], res3[MAXR];
    memset(full, 0, sizeof full), memset(part, 0, sizeof part), memset(res, 0, sizeof res), memset(res3, 0, sizeof res3);
    for (int r = 0; r < 3; r++) {
        size_t a = ntr * (size_t)r / 2, b = ntr * (size_t)(r + 1) / 2, a3 = ntr * (size_t)r / 3, b3 = ntr * (size_t)(r + 1) / 3;
        job proto = {.rows = all + a * 2, .n = b - a, .o = base_opts()};
        proto.o.epochs = 4, proto.o.standardize = 0;
        full[r] = proto, full[r].f = flow(spec, 2);
        part[r] = proto, part[r].f = flow(spec, 2);
        part[r].o.callback = stop_at_2, part[r].o.checkpoint_path = ck, part[r].o.checkpoint_every = 2;
        res[r] = proto, res[r].f = flow(spec, 2), res[r].o.resume_path = ck;
        res3[r] = proto, res3[r].rows = all + a3 * 2, res3[r].n = b3 - a3, res3[r].f = flow(spec, 2);
        res3[r].o.resume_path = ck;
    }
    run_world(full, 2, 0);
    run_world(part, 2, 0);
    CHECK(part[0].st == NF_OK && part[0].rep.epochs == 2 && access(ck, F_OK) == 0,
          "the interrupted run stops after epoch 2 with a checkpoint (%s)", part[0].msg);
    run_world(res, 2, 0);
    size_t P = nf_flow_param_count(full[0].f);
    CHECK(res[0].st == NF_OK && res[0].rep.epochs == 4 && same_params(res, 2) &&
              !memcmp(nf_flow_params(res[0].f), nf_flow_params(full[0].f), P * sizeof(float)),
          "2 processes resume bit-identically to an uninterrupted 2-process run (%s)", res[0].msg);
    run_world(res3, 3, 0);
    CHECK(res3[0].st == NF_OK && res3[2].st == NF_OK && res3[0].rep.epochs == 4 && same_params(res3, 3),
          "3 processes resume a 2-process checkpoint to the planned epochs with equal parameters (%s)", res3[0].msg);
    CHECK(isfinite(res3[0].rep.train_loss) && res3[0].rep.train_loss < full[0].rep.train_history[0],
          "and keep training (%.3f after epoch 1's %.3f)", res3[0].rep.train_loss, full[0].rep.train_history[0]);
    unlink(ck);
    free_jobs(full, 3), free_jobs(part, 3), free_jobs(res, 3), free_jobs(res3, 3);
    free(all);
}

/* Streams and reverse KL: each process draws its own rows; the global
 * batch is split.  Failures stop every process at the same step. */
static void test_streams_and_faults(void) {
    job jobs[MAXR];
    for (int kind = 1; kind <= 2; kind++) {
        memset(jobs, 0, sizeof jobs);
        for (int r = 0; r < 2; r++) {
            jobs[r].f = flow(kind == 1 ? "realnvp(layers=2, hidden=[16,16])" : "iaf(layers=2, hidden=[16,16])", 2);
            jobs[r].o = base_opts(), jobs[r].o.steps = 30, jobs[r].o.log_every = 10, jobs[r].o.batch = 51;
            jobs[r].o.standardize = 0, jobs[r].kind = kind;
        }
        run_world(jobs, 2, 0);
        CHECK(jobs[0].st == NF_OK && jobs[1].st == NF_OK && same_params(jobs, 2) && jobs[0].rep.steps == 30,
              "%s across 2 processes: equal parameters (%s)", kind == 1 ? "a stream" : "reverse KL", jobs[0].msg);
        free_jobs(jobs, 2);
    }
    /* a batch smaller than the processes */
    memset(jobs, 0, sizeof jobs);
    for (int r = 0; r < 3; r++) jobs[r].f = flow("realnvp(layers=1, hidden=[8])", 2), jobs[r].o = base_opts(), jobs[r].o.batch = 2, jobs[r].kind = 1;
    run_world(jobs, 3, 0);
    CHECK(jobs[0].st == NF_ERR_ARG && strstr(jobs[0].msg, "smaller than the 3 processes"), "batch < processes: %s",
          jobs[0].msg);
    free_jobs(jobs, 3);
    /* rank 1's sampler fails at step 5: both stop there, keeping step 4's equal parameters */
    int calls = 0;
    memset(jobs, 0, sizeof jobs);
    for (int r = 0; r < 2; r++) {
        jobs[r].f = flow("realnvp(layers=1, hidden=[8])", 2), jobs[r].o = base_opts(), jobs[r].kind = 1;
        jobs[r].o.steps = 20, jobs[r].o.standardize = 0, jobs[r].o.user = &calls;
    }
    run_world(jobs, 2, 0);
    CHECK(jobs[1].st == NF_ERR_ARG && strstr(jobs[1].msg, "step 5") && strstr(jobs[1].msg, "sampler reported failure"),
          "the failing process says why: %s", jobs[1].msg);
    CHECK(jobs[0].st == NF_ERR_ARG && strstr(jobs[0].msg, "step 5") && strstr(jobs[0].msg, "1 other process failed"),
          "the other stops at the same step: %s", jobs[0].msg);
    CHECK(jobs[0].rep.steps == 4 && same_params(jobs, 2), "both keep step 4's equal parameters (%zu steps)",
          jobs[0].rep.steps);
    free_jobs(jobs, 2);
    /* rank 1 has a NaN in its rows: every process refuses before training */
    float rows[2][40];
    for (int i = 0; i < 40; i++) rows[0][i] = rows[1][i] = (float)(i % 7) * 0.3f + (float)(i % 2);
    rows[1][13] = NAN;
    memset(jobs, 0, sizeof jobs);
    for (int r = 0; r < 2; r++)
        jobs[r].f = flow("realnvp(layers=1, hidden=[8])", 2), jobs[r].o = base_opts(), jobs[r].rows = rows[r], jobs[r].n = 20;
    run_world(jobs, 2, 0);
    CHECK(jobs[1].st == NF_ERR_DOMAIN && strstr(jobs[1].msg, "row 6"), "the process with the NaN names it: %s",
          jobs[1].msg);
    CHECK(jobs[0].st == NF_ERR_DOMAIN && strstr(jobs[0].msg, "other process"), "the other refuses too: %s", jobs[0].msg);
    free_jobs(jobs, 2);
    /* a transport that gives rank 1 different sums: the checksum catches the drift */
    memset(jobs, 0, sizeof jobs);
    for (int r = 0; r < 2; r++) {
        jobs[r].f = flow("realnvp(layers=1, hidden=[8])", 2), jobs[r].o = base_opts(), jobs[r].kind = 1;
        jobs[r].o.steps = 50, jobs[r].o.standardize = 0;
    }
    run_world(jobs, 2, 13);
    CHECK(jobs[0].st == NF_ERR_NUMERIC && jobs[1].st == NF_ERR_NUMERIC && strstr(jobs[0].msg, "step 20") &&
              strstr(jobs[0].msg, "parameters differ between processes"),
          "drifting parameters are caught at the next check: %s", jobs[0].msg);
    free_jobs(jobs, 2);
    /* bad comms */
    nf_flow *f = flow("realnvp(layers=1, hidden=[8])", 2);
    nf_comm bad = {2, 2, sum_floats, sum_doubles, NULL, 0};
    nf_train_opts o = base_opts();
    o.comm = &bad;
    CHECK_ERR(nf_flow_fit_stream(f, draw_moons, NULL, &o, NULL), NF_ERR_ARG, "rank 2 of 2 processes is not a valid rank");
    bad = (nf_comm){0, 2, NULL, sum_doubles, NULL, 0};
    CHECK_ERR(nf_flow_fit_stream(f, draw_moons, NULL, &o, NULL), NF_ERR_ARG, "sum_floats and sum_doubles must be set");
    nf_comm alone = {0, 1, NULL, NULL, NULL, 0}; /* one process: an ordinary run, bit for bit */
    nf_flow *g = flow("realnvp(layers=1, hidden=[8])", 2);
    o.comm = &alone, o.steps = 20;
    CHECK_OK(nf_flow_fit_stream(f, draw_moons, NULL, &o, NULL));
    o.comm = NULL;
    CHECK_OK(nf_flow_fit_stream(g, draw_moons, NULL, &o, NULL));
    CHECK(!memcmp(nf_flow_params(f), nf_flow_params(g), nf_flow_param_count(f) * sizeof(float)),
          "a comm of one process trains exactly as no comm");
    nf_flow_free(f);
    nf_flow_free(g);
}

void test_comm(void) {
    test_fit_shards();
    test_full_batch_matches_one();
    test_resume();
    test_streams_and_faults();
}
