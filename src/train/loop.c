/*
 * loop.c - the one training loop.  Every fit call runs it with a batch
 * source and an objective (trainer.h); a step is always
 *   batch -> objective on the slots -> slot gradients summed -> reduce hook
 *   -> clipping -> Adam -> history and callback -> checkpoint -> early stop.
 * Periods: an epoch of an array source (then validation, early stopping
 * and the best parameters), else log_every steps; the history holds one
 * entry per period.  Checkpoints are written every checkpoint_every epochs
 * (array source) or steps (streams).  A non-finite loss or gradient stops
 * training with NF_ERR_NUMERIC naming the step; the parameters after the
 * last good step are kept.
 */
#include "trainer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* One step on the k rows in t->x; `pre`: a failure before the step (the
 * batch), which across processes still takes part in the step's sums so
 * that every process stops. */
static nf_status step(nf_trainer *t, size_t k, double *loss, nf_status pre) {
    if (t->dev) { /* on the device: the loss is read at the period's end */
        *loss = 0;
        return pre ? pre : nf__dtrain_step(t, k);
    }
    nf_status s = pre ? nf__trainer_fail(t, pre) : nf__trainer_eval(t, k, 1, loss);
    if (s) return s;
    nf__trainer_adam(t);
    return NF_OK;
}

/* Across processes, the first step: a data-dependent initialisation
 * (act-norm) takes rank 0's; every process must have got this far. */
static nf_status first_step_sync(nf_trainer *t, nf_status s) {
    s = nf__comm_agree(t->comm, s);
    return s ? s : nf__comm_bcast_f(t->comm, t->f->params, t->P);
}

/* Across processes: every `every` steps, the parameters must be equal. */
static nf_status check_same(const nf_trainer *t, size_t stepno) {
    size_t every = t->comm->check_every ? t->comm->check_every : 100;
    if (stepno % every) return NF_OK;
    int same;
    NF_TRY(nf__comm_same(t->comm, t->f->params, t->P, &same));
    if (!same)
        return nf__err(NF_ERR_NUMERIC,
                       "step %zu: the parameters differ between processes (checksum); the transport's sums must give "
                       "every process the same values",
                       stepno);
    return NF_OK;
}

/* Across processes: a resume must find the same checkpoint everywhere; the
 * parameters then start as rank 0's. */
static nf_status start_sync(nf_trainer *t, nf_status s, int loaded, size_t step) {
    if (!t->comm) return s;
    NF_TRY(nf__comm_agree(t->comm, s));
    double v[2] = {(double)loaded, (double)step};
    NF_TRY(nf__comm_sum_d(t->comm, v, 2));
    double n = (double)t->comm->size;
    if (v[0] != 0 && (v[0] != n || v[1] != n * (double)step))
        return nf__err(NF_ERR_ARG, "the processes found different checkpoints to resume from (a folder every process "
                                   "must see the same way)");
    return nf__comm_bcast_f(t->comm, t->f->params, t->P);
}

static nf_status step_error(nf_status s, size_t stepno) {
    char head[96];
    snprintf(head, sizeof head, "step %zu (the parameters after step %zu are kept)", stepno, stepno - 1);
    return nf__err_prefix(s, head);
}

/* Early stopping on the validation NLL vl of the epoch just ended; 1 when
 * patience ran out. */
static int early_stop(nf_trainer *t, nf_loop_state *c, const nf_train_opts *o, double vl) {
    if (vl < c->best) {
        c->best = vl;
        c->best_epoch = c->epoch;
        c->since = 0;
        memcpy(t->best, t->f->params, t->P * sizeof(float));
        return 0;
    }
    return o->patience && ++c->since >= o->patience;
}

typedef struct plan {
    int epochs;   /* periods are epochs of an array source */
    size_t total; /* steps planned */
    size_t every; /* steps per period (streams) */
    size_t nlog;  /* history entries at most */
} plan;

static plan make_plan(const nf_source *src, const nf_train_opts *o) {
    plan p = {0};
    p.epochs = src->idx != NULL;
    if (p.epochs) {
        size_t per = src->nsteps ? src->nsteps : (src->ntr + src->step - 1) / src->step;
        /* epochs, or whole epochs covering at least opts->steps steps */
        size_t ne = o->epochs ? o->epochs : (o->steps + per - 1) / per;
        p.total = ne * per;
        p.nlog = ne;
    } else {
        p.total = o->steps;
        p.every = o->log_every ? o->log_every : o->steps;
        p.nlog = (p.total + p.every - 1) / p.every;
    }
    return p;
}

/* Ends a period: history, validation, early stopping, callback.  Sets
 * *stopped (1: the callback, 2: patience). */
static nf_status end_period(nf_trainer *t, nf_source *src, const nf_train_opts *o, const plan *pl, nf_loop_state *c,
                            int *stopped) {
    double tl = c->acc / (double)c->cnt, vl = NAN;
    if (t->dev) { /* the device's period: its loss terms, parameters and moments */
        double sum, rows;
        size_t bad;
        NF_TRY(nf__dtrain_sync(t, &sum, &rows, &bad));
        if (bad) return step_error(nf__err(NF_ERR_NUMERIC, "the loss or the gradient is not finite"), bad);
        tl = t->obj->loss(t, sum, (size_t)rows); /* (the objectives' losses are affine in the sum of per-row terms) */
    }
    if (pl->epochs) c->epoch++;
    if (src->nval) {
        nf_status s = nf__source_validation(src, t, &vl);
        if (s) {
            char head[64];
            snprintf(head, sizeof head, "epoch %zu: validation", c->epoch);
            return nf__err_prefix(s, head);
        }
    }
    c->htrain[c->logs] = tl;
    c->hval[c->logs] = vl;
    c->logs++;
    if (src->nval && early_stop(t, c, o, vl)) *stopped = 2;
    if (o->callback) {
        nf_train_progress pr = {c->step, pl->total, c->epoch, 1, tl, vl};
        if (o->callback(o->user, &pr) && !*stopped) *stopped = 1;
    }
    if (t->comm) { /* a callback's stop, on any process, stops them all */
        double v = *stopped == 1;
        NF_TRY(nf__comm_sum_d(t->comm, &v, 1));
        if (v > 0 && !*stopped) *stopped = 1;
    }
    c->acc = 0;
    c->cnt = 0;
    return NF_OK;
}

static nf_status checkpoint(nf_trainer *t, const nf_train_opts *o, const nf_rng *rng, const nf_loop_state *c,
                            int epochs) {
    nf_status s = t->dev ? nf__dtrain_sync(t, NULL, NULL, NULL) : NF_OK;
    if (!s && (!t->comm || t->comm->rank == 0)) s = nf__checkpoint_save(t, o->checkpoint_path, rng, c); /* rank 0 writes */
    if (s) {
        char head[96];
        snprintf(head, sizeof head, "%s %zu: writing the checkpoint", epochs ? "epoch" : "step",
                 epochs ? c->epoch : c->step);
        nf__err_prefix(s, head);
    }
    return t->comm ? nf__comm_agree(t->comm, s) : s;
}

/* Hands the histories to the report (or frees them). */
static void finish_report(nf_train_report *rep, const nf_loop_state *c, const plan *pl, const nf_source *src,
                          int stopped, int restored, double seconds, nf_status s) {
    if (!rep || s) {
        free(c->htrain);
        free(c->hval);
        if (rep) nf_train_report_free(rep);
    }
    if (!rep) return;
    rep->steps = c->step;
    rep->epochs = pl->epochs ? c->epoch : 0;
    rep->train_loss = c->logs ? c->htrain[c->logs - 1] : NAN;
    rep->val_loss = c->logs && src->nval ? c->hval[c->logs - 1] : NAN;
    rep->best_val_loss = src->nval ? c->best : NAN;
    rep->best_epoch = c->best_epoch;
    rep->stopped_early = stopped != 0;
    rep->restored = restored;
    if (restored) { /* the numbers of the parameters kept */
        rep->train_loss = c->htrain[c->best_epoch - 1];
        rep->val_loss = c->best;
    }
    rep->seconds = seconds;
    if (!s) {
        rep->train_history = c->htrain;
        rep->val_history = c->hval;
        rep->n_history = c->logs;
    }
}

nf_status nf__train_loop(nf_trainer *t, nf_source *src, const nf_train_opts *o, nf_train_report *rep) {
    plan pl = make_plan(src, o);
    nf_loop_state c = {0};
    c.mode = src->mode;
    c.best = INFINITY;
    c.htrain = calloc(pl.nlog ? pl.nlog : 1, sizeof(double));
    c.hval = calloc(pl.nlog ? pl.nlog : 1, sizeof(double));
    nf_rng *rng = NULL;
    nf_status s = c.htrain && c.hval ? nf_rng_create(o->seed, &rng) : nf__err(NF_ERR_NOMEM, "out of memory");
    int loaded = !s && o->resume_path && access(o->resume_path, F_OK) == 0; /* nothing saved yet: start afresh */
    if (loaded) s = nf__checkpoint_load(t, o->resume_path, rng, &c, pl.nlog);
    s = start_sync(t, s, loaded, c.step);
    if (!s && t->dev) s = nf__dtrain_upload(t);
    double t0 = now();
    int stopped = 0;
    while (!s && !stopped && c.step < pl.total) {
        size_t k = 0;
        double l;
        t->stepno = c.step + 1;
        if (t->comm) /* each process its own stream, keyed by the step: resumable */
            nf__rng_seed(rng, o->seed, ((uint64_t)t->comm->rank << 40) + c.step);
        s = src->next(src, t, rng, &k);
        if (!s && c.step == 0 && t->obj == &nf__objective_nll && k)
            s = nf__bijector_data_init(t->f->bij, t->x, t->ctx, k); /* actnorm: the first batch */
        if (!s && c.step == 0 && t->dev) s = nf__dtrain_upload(t); /* the initialised parameters */
        if (c.step == 0 && t->comm) s = first_step_sync(t, s);
        s = step(t, k, &l, s);
        if (!s && t->comm) s = check_same(t, t->stepno);
        if (s) {
            s = step_error(s, t->stepno);
            break;
        }
        c.step++;
        double kk = t->kglob; /* the step's rows, over all processes */
        c.acc += pl.epochs ? l * kk : l;
        c.cnt += pl.epochs ? (size_t)kk : 1;
        int period_end = pl.epochs ? src->wrapped : c.cnt == pl.every || c.step == pl.total;
        if (period_end && (s = end_period(t, src, o, &pl, &c, &stopped))) break;
        size_t unit = pl.epochs ? (period_end ? c.epoch : 0) : c.step;
        if (o->checkpoint_path && o->checkpoint_every && unit && unit % o->checkpoint_every == 0 && stopped != 2)
            s = checkpoint(t, o, rng, &c, pl.epochs);
    }
    if (t->dev) { /* the device's last parameters (on failure: those after the last good step) */
        nf_status ds = nf__dtrain_sync(t, NULL, NULL, NULL);
        if (!s) s = ds;
    }
    int restored = !s && src->nval && o->patience && stopped && c.best_epoch;
    if (restored) memcpy(t->f->params, t->best, t->P * sizeof(float));
    finish_report(rep, &c, &pl, src, stopped, restored, now() - t0, s);
    nf_rng_free(rng);
    return s;
}
