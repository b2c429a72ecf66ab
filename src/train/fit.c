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
#include <unistd.h>

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

/* The name of the tensor holding parameter `idx` (e.g. "layers.2.s_net.0.weight"). */
typedef struct find_ctx {
    size_t idx;
    char name[200];
} find_ctx;

static nf_status find_tensor(void *ctx, const nf_tensor_info *ti) {
    find_ctx *c = ctx;
    if (!ti->buffer && c->idx >= ti->offset && c->idx < ti->offset + ti->count)
        snprintf(c->name, sizeof c->name, "%s[%zu]", ti->name, c->idx - ti->offset);
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
        find_ctx fc = {bad, "?"};
        nf__bijector_tensors(f->bij, "", 0, find_tensor, &fc);
        nf_status e = nf__err(NF_ERR_NUMERIC, "the gradient of parameter %zu (%s) is %g", bad, fc.name,
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



/* ---- checkpoints ------------------------------------------------------------ */

typedef struct ckstate {
    int stream;
    size_t step, epoch, logs, inint, best_epoch, since;
    double acc, best;
    double *htrain, *hval; /* histories, `logs` (stream) or `epoch` (fit) entries */
} ckstate;

static char *join_doubles(const double *v, size_t n) {
    char *b = malloc(n * 26 + 2);
    if (!b) return NULL;
    size_t k = 0;
    b[0] = 0;
    for (size_t i = 0; i < n; i++) k += (size_t)snprintf(b + k, 26, "%s%.17g", i ? "," : "", v[i]);
    return b;
}

static int split_doubles(const char *s, double *v, size_t n) {
    for (size_t i = 0; i < n; i++) {
        char *end;
        if (!s) return -1;
        v[i] = strtod(s, &end);
        if (end == s) return -1;
        s = *end == ',' ? end + 1 : end;
    }
    return 0;
}

static nf_status save_ckpt(const trainer *t, const nf_train_opts *o, nf_rng *rng, const ckstate *c) {
    uint64_t st[6];
    nf__rng_get_state(rng, st);
    char rs[160], step[32], epoch[32], at[32], acc[40], inint[32], logs[32], best[40], be[32], since[32];
    snprintf(rs, sizeof rs, "%016llx %016llx %016llx %016llx %llx %016llx", (unsigned long long)st[0],
             (unsigned long long)st[1], (unsigned long long)st[2], (unsigned long long)st[3],
             (unsigned long long)st[4], (unsigned long long)st[5]);
    snprintf(step, sizeof step, "%zu", c->step), snprintf(epoch, sizeof epoch, "%zu", c->epoch);
    snprintf(at, sizeof at, "%zu", t->adam.t), snprintf(acc, sizeof acc, "%.17g", c->acc);
    snprintf(inint, sizeof inint, "%zu", c->inint), snprintf(logs, sizeof logs, "%zu", c->logs);
    snprintf(best, sizeof best, "%.17g", c->best), snprintf(be, sizeof be, "%zu", c->best_epoch);
    snprintf(since, sizeof since, "%zu", c->since);
    size_t nh = c->stream ? c->logs : c->epoch;
    char *ht = join_doubles(c->htrain, nh), *hv = join_doubles(c->hval, nh);
    if (!ht || !hv) {
        free(ht), free(hv);
        return nf__err(NF_ERR_NOMEM, "out of memory writing a checkpoint");
    }
    const char *kv[] = {"train.mode", c->stream ? "stream" : "epochs", "train.step", step, "train.epoch", epoch,
                        "train.adam_t", at, "train.rng", rs, "train.acc", acc, "train.inint", inint,
                        "train.logs", logs, "train.best", best, "train.best_epoch", be, "train.since", since,
                        "train.hist_train", ht, "train.hist_val", hv};
    nf_extra_tensor xt[3] = {{"train.adam_m", t->m, t->P}, {"train.adam_v", t->v, t->P}, {"train.best", t->best, t->P}};
    nf_status s = nf__flow_save_ex(t->f, o->checkpoint_path, NULL, xt, 3, kv, sizeof kv / sizeof kv[0] / 2);
    free(ht), free(hv);
    return s;
}

/* Restores the state of a checkpoint into t, rng and c (histories sized by the caller). */
static nf_status load_ckpt(trainer *t, const nf_train_opts *o, nf_rng *rng, ckstate *c, size_t hist_cap) {
    const char *path = o->resume_path;
    nf_model_file *m = NULL;
    NF_TRY(nf__model_open(path, &m));
    nf_status s = NF_OK;
#define META(k) nf__model_meta(m, k)
    const char *mode = META("train.mode"), *spec = META("spec");
    if (!mode || strcmp(mode, c->stream ? "stream" : "epochs"))
        s = nf__err(NF_ERR_DOMAIN, "%s: not a checkpoint of %s training", path, c->stream ? "streamed" : "epoch");
    else if (!t->f->spec || !spec || strcmp(spec, t->f->spec))
        s = nf__err(NF_ERR_DOMAIN, "%s: the checkpoint is of another flow (spec %s)", path, spec ? spec : "none");
    if (!s) s = nf__model_load_params(m, path, t->f);
    if (!s) s = nf__model_tensor(m, path, "train.adam_m", t->m, t->P);
    if (!s) s = nf__model_tensor(m, path, "train.adam_v", t->v, t->P);
    if (!s) s = nf__model_tensor(m, path, "train.best", t->best, t->P);
    uint64_t st[6] = {0};
    unsigned long long u[6];
    if (!s) {
        const char *rs = META("train.rng");
        if (!rs || sscanf(rs, "%llx %llx %llx %llx %llx %llx", &u[0], &u[1], &u[2], &u[3], &u[4], &u[5]) != 6)
            s = nf__err(NF_ERR_DOMAIN, "%s: invalid train.rng", path);
        for (int k = 0; !s && k < 6; k++) st[k] = u[k];
        if (!s && nf__rng_set_state(rng, st)) s = nf__err(NF_ERR_DOMAIN, "%s: invalid train.rng", path);
    }
    const char *keys[] = {"train.step", "train.epoch", "train.adam_t", "train.inint", "train.logs", "train.best_epoch", "train.since"};
    size_t *dst[] = {&c->step, &c->epoch, &t->adam.t, &c->inint, &c->logs, &c->best_epoch, &c->since};
    for (int k = 0; !s && k < 7; k++) {
        const char *v = META(keys[k]);
        char *end;
        unsigned long long x = v ? strtoull(v, &end, 10) : 0;
        if (!v || *end) s = nf__err(NF_ERR_DOMAIN, "%s: invalid %s", path, keys[k]);
        else *dst[k] = (size_t)x;
    }
    if (!s && (split_doubles(META("train.acc"), &c->acc, 1) || split_doubles(META("train.best"), &c->best, 1)))
        s = nf__err(NF_ERR_DOMAIN, "%s: invalid train.acc or train.best", path);
    size_t nh = c->stream ? c->logs : c->epoch;
    if (!s && (nh > hist_cap || split_doubles(META("train.hist_train"), c->htrain, nh) ||
               split_doubles(META("train.hist_val"), c->hval, nh)))
        s = nf__err(NF_ERR_DOMAIN, "%s: its history does not fit this run (%zu entries)", path, nh);
#undef META
    nf__model_close(m);
    return s;
}

static nf_status maybe_resume(trainer *t, const nf_train_opts *o, nf_rng *rng, ckstate *c, size_t cap, int *resumed) {
    *resumed = 0;
    if (!o->resume_path || access(o->resume_path, F_OK) != 0) return NF_OK; /* nothing saved yet: start afresh */
    NF_TRY(load_ckpt(t, o, rng, c, cap));
    *resumed = 1;
    return NF_OK;
}

static nf_status checkpoint_now(trainer *t, const nf_train_opts *o, nf_rng *rng, const ckstate *c, const char *unit,
                                size_t at) {
    nf_status s = save_ckpt(t, o, rng, c);
    if (s) {
        char head[96];
        snprintf(head, sizeof head, "%s %zu: writing the checkpoint", unit, at);
        nf__err_prefix(s, head);
    }
    return s;
}

/* Hands the histories to the report (or frees them). */
static void finish_history(nf_train_report *rep, double *ht, double *hv, size_t n) {
    if (rep) {
        rep->train_history = ht, rep->val_history = hv, rep->n_history = n;
    } else {
        free(ht), free(hv);
    }
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
    double *ht = calloc(o->epochs, sizeof(double)), *hv = calloc(o->epochs, sizeof(double));
    nf_rng *rng = NULL;
    if (!idx || !ht || !hv) s = nf__err(NF_ERR_NOMEM, "out of memory");
    if (!s) s = nf_rng_create(o->seed, &rng);
    memcpy(t.best, f->bij->params, t.P * sizeof(float));
    ckstate c = {0};
    c.best = INFINITY, c.htrain = ht, c.hval = hv;
    int resumed = 0;
    if (!s) s = maybe_resume(&t, o, rng, &c, o->epochs, &resumed);
    double t0 = now(), best = c.best, tl = c.epoch ? ht[c.epoch - 1] : NAN, vl = c.epoch ? hv[c.epoch - 1] : NAN;
    size_t since = c.since, stepno = c.step, epoch = c.epoch, best_epoch = c.best_epoch;
    int stopped = 0;
    size_t total = o->epochs * ((ntr + stepB - 1) / stepB);
    for (; epoch < o->epochs && !s; epoch++) {
        for (size_t i = 0; i < ntr; i++) idx[i] = i; /* each epoch's order depends on the RNG alone */
        for (size_t i = ntr; i-- > 1;) {            /* Fisher-Yates */
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
        ht[epoch] = tl, hv[epoch] = nval ? vl : NAN;
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
        if (!stopped && o->checkpoint_path && o->checkpoint_every && (epoch + 1) % o->checkpoint_every == 0) {
            c.step = stepno, c.epoch = epoch + 1, c.best = best, c.best_epoch = best_epoch, c.since = since;
            if ((s = checkpoint_now(&t, o, rng, &c, "epoch", epoch + 1))) break;
        }
        if (stopped) {
            epoch++;
            break;
        }
    }
    if (!s && nval && o->patience && stopped && best_epoch) memcpy(f->bij->params, t.best, t.P * sizeof(float));
    if (rep) {
        rep->steps = stepno, rep->epochs = epoch;
        rep->train_loss = tl, rep->val_loss = nval ? vl : NAN;
        rep->best_val_loss = nval ? best : NAN, rep->best_epoch = best_epoch;
        rep->stopped_early = stopped, rep->seconds = now() - t0;
    }
    nf_rng_free(rng);
    free(idx);
    nf__aligned_free(t.mem);
    if (s) {
        free(ht), free(hv);
        nf_train_report_free(rep);
        return nf__err_prefix(s, fn);
    }
    finish_history(rep, ht, hv, epoch);
    return NF_OK;
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
    double *ht = calloc(nlog, sizeof(double)), *hv = calloc(nlog, sizeof(double));
    if (!ht || !hv) s = nf__err(NF_ERR_NOMEM, "out of memory");
    if (!s) s = nf_rng_create(o->seed, &rng);
    ckstate c = {0};
    c.stream = 1, c.htrain = ht, c.hval = hv;
    int resumed = 0;
    if (!s) s = maybe_resume(&t, o, rng, &c, nlog, &resumed);
    double t0 = now(), acc = c.acc, tl = c.logs ? ht[c.logs - 1] : NAN;
    size_t inint = c.inint, logs = c.logs, stepno = c.step;
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
            ht[logs] = tl, hv[logs] = NAN;
            logs++;
            if (o->callback) {
                nf_train_progress pr = {stepno, o->steps, 0, 1, tl, NAN};
                if (o->callback(o->user, &pr)) stopped = 1;
            }
            acc = 0, inint = 0;
        }
        if (o->checkpoint_path && o->checkpoint_every && stepno % o->checkpoint_every == 0) {
            c.step = stepno, c.logs = logs, c.acc = acc, c.inint = inint;
            s = checkpoint_now(&t, o, rng, &c, "step", stepno);
        }
    }
    if (rep) {
        rep->steps = stepno, rep->train_loss = tl;
        rep->val_loss = rep->best_val_loss = NAN, rep->stopped_early = stopped, rep->seconds = now() - t0;
    }
    nf_rng_free(rng);
    nf__aligned_free(t.mem);
    if (s) {
        free(ht), free(hv);
        nf_train_report_free(rep);
        return nf__err_prefix(s, fn);
    }
    finish_history(rep, ht, hv, logs);
    return NF_OK;
}
