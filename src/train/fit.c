/*
 * fit.c - maximum-likelihood training of a flow with Adam.
 *
 * One step on a batch X (model space after the scaler):
 *   Z = inverse(X) with ildj (taped),  loss = -mean(log p_base(Z) + ildj) + sum log std
 *   dL/dZ = -grad log p_base(Z) / B,   dL/dildj = -1 / B
 *   inverse_backward -> dL/dparams;  optional clipping;  Adam.
 * Every buffer is sized once for the largest batch before the first step; a
 * step allocates nothing.  A non-finite loss or gradient stops training with
 * NF_ERR_NUMERIC naming the step, and the parameters of the last good step
 * are kept.
 */
#include "../flow/flow.h"
#include "adam.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

nf_train_opts nf_train_defaults(void) {
    nf_train_opts o = {0};
    o.lr = 1e-3f, o.beta1 = 0.9f, o.beta2 = 0.999f, o.eps = 1e-8f;
    o.batch = 100, o.epochs = 100, o.steps = 1000, o.log_every = 100;
    return o;
}

void nf_train_report_free(nf_train_report *r) {
    if (!r) return;
    free(r->train_history);
    free(r->val_history);
    r->train_history = r->val_history = NULL;
    r->n_history = 0;
}

typedef struct trainer {
    nf_flow *f;
    size_t B, d, P;
    unsigned char *mem;
    void *tape, *bscratch, *dscratch;
    float *x, *z, *gz, *ldj, *lp, *gl;
    float *grad, *m, *v, *best;
    nf_adam adam;
    float clip;
    double norm; /* of the last step's gradient, before clipping */
} trainer;

static nf_status trainer_init(trainer *t, nf_flow *f, size_t B, const nf_train_opts *o) {
    memset(t, 0, sizeof *t);
    t->f = f, t->B = B, t->d = f->d, t->P = f->bij->nparams;
    if (!f->base->ops->log_prob_grad)
        return nf__err(NF_ERR_UNSUPPORTED, "base %s has no log-density gradient", f->base->name);
    size_t tb = nf__tape_bytes(f->bij, B), sb = nf__scratch_bytes(f->bij, B), db = nf__dist_scratch(f->base, B);
    size_t blk = nf__align(B * t->d * sizeof(float)), rb = nf__align(B * sizeof(float)),
           pb = nf__align(t->P * sizeof(float) + 1);
    t->mem = nf__aligned_alloc(nf__align(tb) + nf__align(sb) + nf__align(db) + 3 * blk + 3 * rb + 4 * pb);
    if (!t->mem) return nf__err(NF_ERR_NOMEM, "out of memory for the training workspace (batch %zu)", B);
    unsigned char *cur = t->mem;
    t->tape = nf__carve(&cur, tb);
    t->bscratch = nf__carve(&cur, sb);
    t->dscratch = nf__carve(&cur, db);
    t->x = nf__carve(&cur, B * t->d * sizeof(float));
    t->z = nf__carve(&cur, B * t->d * sizeof(float));
    t->gz = nf__carve(&cur, B * t->d * sizeof(float));
    t->ldj = nf__carve(&cur, B * sizeof(float));
    t->lp = nf__carve(&cur, B * sizeof(float));
    t->gl = nf__carve(&cur, B * sizeof(float));
    t->grad = nf__carve(&cur, t->P * sizeof(float) + 1);
    t->m = nf__carve(&cur, t->P * sizeof(float) + 1);
    t->v = nf__carve(&cur, t->P * sizeof(float) + 1);
    t->best = nf__carve(&cur, t->P * sizeof(float) + 1);
    memset(t->grad, 0, t->P * sizeof(float));
    memset(t->m, 0, t->P * sizeof(float));
    memset(t->v, 0, t->P * sizeof(float));
    t->adam = (nf_adam){o->lr, o->beta1, o->beta2, o->eps, o->weight_decay, 0};
    t->clip = o->clip_norm;
    return NF_OK;
}

/* Mean NLL (user units) of the k rows in t->x (model space), optionally
 * with gradients into t->grad (zeroed here). */
static nf_status nll(trainer *t, size_t k, int with_grad, double *loss) {
    nf_flow *f = t->f;
    memset(t->ldj, 0, k * sizeof(float));
    nf_pass p = {k, with_grad ? t->tape : NULL, t->bscratch};
    NF_TRY(f->bij->ops->inverse(f->bij, &p, t->z, t->ldj, t->x));
    NF_TRY(f->base->ops->log_prob(f->base, t->dscratch, t->lp, t->z, k));
    double s = 0;
    for (size_t i = 0; i < k; i++) s += (double)t->lp[i] + t->ldj[i];
    *loss = -s / (double)k + f->log_std_sum;
    if (!isfinite(*loss)) return nf__err(NF_ERR_NUMERIC, "the loss is %g", *loss);
    if (!with_grad) return NF_OK;
    NF_TRY(f->base->ops->log_prob_grad(f->base, t->gz, t->z, k));
    float inv = -1.0f / (float)k;
    for (size_t i = 0; i < k * t->d; i++) t->gz[i] *= inv;
    for (size_t i = 0; i < k; i++) t->gl[i] = inv;
    /* t->grad is all zeros here: zeroed once, then cleared by each Adam step */
    nf_status st = f->bij->ops->inverse_backward(f->bij, &p, NULL, t->grad, t->gz, t->gl, t->x, t->z);
    if (st) {
        memset(t->grad, 0, t->P * sizeof(float));
        return st;
    }
    t->norm = nf__clip_norm(t->grad, t->P, t->clip);
    if (!isfinite(t->norm)) {
        size_t bad = nf__first_nonfinite(t->grad, t->P);
        nf_status e = nf__err(NF_ERR_NUMERIC, "the gradient of parameter %zu is %g", bad,
                              bad < t->P ? (double)t->grad[bad] : t->norm);
        memset(t->grad, 0, t->P * sizeof(float));
        return e;
    }
    return NF_OK;
}

static nf_status step(trainer *t, size_t k, size_t stepno, double *loss) {
    nf_status s = nll(t, k, 1, loss);
    if (s) {
        char head[96];
        snprintf(head, sizeof head, "step %zu (the parameters after step %zu are kept)", stepno, stepno - 1);
        return nf__err_prefix(s, head);
    }
    nf__adam_step(&t->adam, t->f->bij->params, t->grad, t->m, t->v, t->P);
    return NF_OK;
}

/* Mean NLL over n rows of user data, in batches of t->B. */
static nf_status evaluate(trainer *t, const float *data, size_t n, double *out) {
    double acc = 0;
    for (size_t r = 0; r < n; r += t->B) {
        size_t k = n - r < t->B ? n - r : t->B;
        memcpy(t->x, data + r * t->d, k * t->d * sizeof(float));
        nf__flow_scale_in(t->f, t->x, k);
        double l;
        NF_TRY(nll(t, k, 0, &l));
        acc += l * (double)k;
    }
    *out = acc / (double)n;
    return NF_OK;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static nf_status check_opts(const char *fn, nf_flow *f, const nf_train_opts *o, nf_train_report *r) {
    if (!f || !o) return nf__err(NF_ERR_ARG, "%s: flow and opts must not be NULL", fn);
    if (r) memset(r, 0, sizeof *r);
    if (!(o->lr > 0) || !isfinite(o->lr)) return nf__err(NF_ERR_ARG, "%s: lr must be > 0, got %g", fn, (double)o->lr);
    if (!(o->beta1 >= 0 && o->beta1 < 1) || !(o->beta2 >= 0 && o->beta2 < 1))
        return nf__err(NF_ERR_ARG, "%s: betas must be in [0, 1), got %g, %g", fn, (double)o->beta1, (double)o->beta2);
    if (!(o->eps > 0)) return nf__err(NF_ERR_ARG, "%s: eps must be > 0", fn);
    if (!(o->val_split >= 0 && o->val_split < 1))
        return nf__err(NF_ERR_ARG, "%s: val_split must be in [0, 1), got %g", fn, (double)o->val_split);
    if (!(o->clip_norm >= 0) || !(o->weight_decay >= 0))
        return nf__err(NF_ERR_ARG, "%s: clip_norm and weight_decay must be >= 0", fn);
    if (f->bij->nparams == 0) return nf__err(NF_ERR_ARG, "%s: the flow has no trainable parameters", fn);
    return NF_OK;
}

static nf_status alloc_history(nf_train_report *r, size_t n) {
    if (!r) return NF_OK;
    r->train_history = calloc(n ? n : 1, sizeof(double));
    r->val_history = calloc(n ? n : 1, sizeof(double));
    if (!r->train_history || !r->val_history) {
        nf_train_report_free(r);
        return nf__err(NF_ERR_NOMEM, "out of memory for the loss history");
    }
    return NF_OK;
}

nf_status nf_flow_fit(nf_flow *f, const float *data, size_t n, const nf_train_opts *o, nf_train_report *rep) {
    const char *fn = "nf_flow_fit";
    NF_TRY(check_opts(fn, f, o, rep));
    if (!data) return nf__err(NF_ERR_ARG, "%s: data is NULL", fn);
    size_t nval = (size_t)((double)n * o->val_split), ntr = n - nval;
    if (ntr < 1 || (o->val_split > 0 && nval < 1))
        return nf__err(NF_ERR_ARG, "%s: %zu rows leave %zu for training and %zu for validation", fn, n, ntr, nval);
    if (o->epochs == 0) return nf__err(NF_ERR_ARG, "%s: epochs must be >= 1", fn);
    nf_status s = nf__check_finite("data", data, n, f->d);
    if (s) return nf__err_prefix(s, fn);
    if (o->standardize && (s = nf_flow_fit_scaler(f, data, ntr))) return s;
    size_t B = o->batch == 0 || o->batch > ntr ? ntr : o->batch;
    if (nval > B && B < NF_FLOW_CHUNK) B = nval < NF_FLOW_CHUNK ? nval : NF_FLOW_CHUNK; /* eval batches */
    size_t stepB = o->batch == 0 || o->batch > ntr ? ntr : o->batch;
    trainer t;
    if ((s = trainer_init(&t, f, B, o))) return nf__err_prefix(s, fn);
    size_t *idx = malloc(ntr * sizeof(size_t));
    if (!idx || (s = alloc_history(rep, o->epochs))) {
        free(idx);
        nf__aligned_free(t.mem);
        return s ? nf__err_prefix(s, fn) : nf__err(NF_ERR_NOMEM, "%s: out of memory", fn);
    }
    nf_rng *rng = NULL;
    if ((s = nf_rng_create(o->seed, &rng))) goto done;
    for (size_t i = 0; i < ntr; i++) idx[i] = i;
    double t0 = now(), best = INFINITY, tl = NAN, vl = NAN;
    size_t since = 0, stepno = 0, epoch = 0, best_epoch = 0;
    int stopped = 0;
    memcpy(t.best, f->bij->params, t.P * sizeof(float));
    size_t total = o->epochs * ((ntr + stepB - 1) / stepB);
    for (epoch = 0; epoch < o->epochs && !s; epoch++) {
        for (size_t i = ntr; i-- > 1;) { /* Fisher-Yates */
            size_t j = (size_t)nf_rng_below(rng, i + 1), tmp = idx[i];
            idx[i] = idx[j], idx[j] = tmp;
        }
        double acc = 0;
        for (size_t r = 0; r < ntr && !s; r += stepB) {
            size_t k = ntr - r < stepB ? ntr - r : stepB;
            for (size_t i = 0; i < k; i++) memcpy(t.x + i * f->d, data + idx[r + i] * f->d, f->d * sizeof(float));
            nf__flow_scale_in(f, t.x, k);
            double l;
            s = step(&t, k, ++stepno, &l);
            acc += l * (double)k;
        }
        if (s) break;
        tl = acc / (double)ntr;
        if (nval) {
            s = evaluate(&t, data + ntr * f->d, nval, &vl);
            if (s) {
                char head[64];
                snprintf(head, sizeof head, "epoch %zu: validation", epoch + 1);
                nf__err_prefix(s, head);
                break;
            }
        }
        if (rep) rep->train_history[epoch] = tl, rep->val_history[epoch] = nval ? vl : NAN;
        if (nval) {
            if (vl < best) {
                best = vl, best_epoch = epoch + 1, since = 0;
                memcpy(t.best, f->bij->params, t.P * sizeof(float));
            } else if (o->patience && ++since >= o->patience) {
                stopped = 1;
            }
        }
        if (o->callback) {
            nf_train_progress pr = {stepno, total, epoch + 1, 1, tl, nval ? vl : NAN};
            if (o->callback(o->user, &pr)) stopped = 1;
        }
        if (stopped) {
            epoch++;
            break;
        }
    }
    if (!s && nval && o->patience && stopped && best_epoch) memcpy(f->bij->params, t.best, t.P * sizeof(float));
    if (rep) {
        rep->steps = stepno, rep->epochs = epoch, rep->n_history = epoch;
        rep->train_loss = tl, rep->val_loss = nval ? vl : NAN;
        rep->best_val_loss = nval ? best : NAN, rep->best_epoch = best_epoch;
        rep->stopped_early = stopped, rep->seconds = now() - t0;
    }
done:
    nf_rng_free(rng);
    free(idx);
    nf__aligned_free(t.mem);
    if (s) nf_train_report_free(rep);
    return s ? nf__err_prefix(s, fn) : NF_OK;
}

nf_status nf_flow_fit_stream(nf_flow *f, nf_sampler_fn draw, void *user, const nf_train_opts *o,
                             nf_train_report *rep) {
    const char *fn = "nf_flow_fit_stream";
    NF_TRY(check_opts(fn, f, o, rep));
    if (!draw) return nf__err(NF_ERR_ARG, "%s: sampler is NULL", fn);
    if (o->batch == 0 || o->steps == 0) return nf__err(NF_ERR_ARG, "%s: batch and steps must be >= 1", fn);
    size_t every = o->log_every ? o->log_every : o->steps, nlog = (o->steps + every - 1) / every;
    trainer t;
    nf_status s = trainer_init(&t, f, o->batch, o);
    if (s) return nf__err_prefix(s, fn);
    nf_rng *rng = NULL;
    if ((s = alloc_history(rep, nlog)) || (s = nf_rng_create(o->seed, &rng))) {
        nf__aligned_free(t.mem);
        return nf__err_prefix(s, fn);
    }
    double t0 = now(), acc = 0, tl = NAN;
    size_t inint = 0, logs = 0, stepno = 0;
    int stopped = 0;
    while (stepno < o->steps && !s && !stopped) {
        int rc = draw(user, rng, t.x, o->batch);
        if (rc) {
            s = nf__err(NF_ERR_ARG, "step %zu: the sampler reported failure (code %d)", stepno + 1, rc);
            break;
        }
        if ((s = nf__check_finite("a sampled batch", t.x, o->batch, f->d))) break;
        nf__flow_scale_in(f, t.x, o->batch);
        double l;
        if ((s = step(&t, o->batch, ++stepno, &l))) break;
        acc += l, inint++;
        if (inint == every || stepno == o->steps) {
            tl = acc / (double)inint;
            if (rep) rep->train_history[logs] = tl, rep->val_history[logs] = NAN;
            logs++;
            if (o->callback) {
                nf_train_progress pr = {stepno, o->steps, 0, 1, tl, NAN};
                if (o->callback(o->user, &pr)) stopped = 1;
            }
            acc = 0, inint = 0;
        }
    }
    if (rep) {
        rep->steps = stepno, rep->n_history = logs, rep->train_loss = tl;
        rep->val_loss = rep->best_val_loss = NAN, rep->stopped_early = stopped, rep->seconds = now() - t0;
    }
    nf_rng_free(rng);
    nf__aligned_free(t.mem);
    if (s) nf_train_report_free(rep);
    return s ? nf__err_prefix(s, fn) : NF_OK;
}
