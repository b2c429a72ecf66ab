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

#include <pthread.h>
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

#define NF_MAX_THREADS 64

/* One thread's share of a batch: its own workspace and (but for slot 0,
 * which uses the trainer's) gradient buffer. */
typedef struct slot {
    unsigned char *mem;
    void *tape, *bscratch, *dscratch;
    float *z, *gz, *ldj, *lp, *gl, *grad;
    double sum; /* sum over its rows of log p_base(z) + ildj */
    double sq;  /* sum of squares of the reduced gradient over its share */
    nf_status st;
    char msg[512];
    struct trainer *owner;
} slot;

typedef struct trainer {
    nf_flow *f;
    size_t B, d, P, T;
    unsigned char *mem;
    float *x;                          /* B x d, the batch in model space */
    size_t dc;                         /* conditional flows: context values per row */
    float *ctx;                        /* B x dc, the batch's context (NULL if dc = 0) */
    float *raw;                        /* B x (d + dc), a sampler's rows (conditional streams) */
    float *grad, *m, *v, *best;
    nf_adam adam;
    float clip, gscale;                /* gscale: the clipping factor of this step's gradient */
    double norm;                       /* of the last step's gradient, before clipping */
    slot slots[NF_MAX_THREADS];
    /* the pool: T - 1 workers; one barrier, passed three times per task */
    pthread_t th[NF_MAX_THREADS];
    pthread_barrier_t bar;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int pool, quit, ready, task_grad, task_adam;
    size_t task_k;
} trainer;

static nf_status slot_init(trainer *t, slot *w, size_t rows, int own_grad) {
    const nf_flow *f = t->f;
    size_t tb = nf__tape_bytes(f->bij, rows), sb = nf__scratch_bytes(f->bij, rows),
           db = nf__dist_scratch(f->base, rows), blk = nf__align(rows * t->d * sizeof(float)),
           rb = nf__align(rows * sizeof(float)), pb = own_grad ? nf__align(t->P * sizeof(float)) : 0;
    w->mem = nf__aligned_alloc(nf__align(tb) + nf__align(sb) + nf__align(db) + 2 * blk + 3 * rb + pb);
    if (!w->mem) return nf__err(NF_ERR_NOMEM, "out of memory for the training workspace (%zu rows)", rows);
    unsigned char *cur = w->mem;
    w->tape = nf__carve(&cur, tb);
    w->bscratch = nf__carve(&cur, sb);
    w->dscratch = nf__carve(&cur, db);
    w->z = nf__carve(&cur, rows * t->d * sizeof(float));
    w->gz = nf__carve(&cur, rows * t->d * sizeof(float));
    w->ldj = nf__carve(&cur, rows * sizeof(float));
    w->lp = nf__carve(&cur, rows * sizeof(float));
    w->gl = nf__carve(&cur, rows * sizeof(float));
    w->grad = own_grad ? nf__carve(&cur, t->P * sizeof(float)) : t->grad;
    if (own_grad) memset(w->grad, 0, t->P * sizeof(float));
    return NF_OK;
}

/* Slot s's rows of the current task: forward, base density and, when asked,
 * the backward pass into its gradient buffer. */
static void slot_run(trainer *t, size_t s) {
    slot *w = &t->slots[s];
    const nf_flow *f = t->f;
    size_t k = t->task_k, r0 = k * s / t->T, r1 = k * (s + 1) / t->T, m = r1 - r0, d = t->d;
    const float *x = t->x + r0 * d;
    w->st = NF_OK, w->sum = 0;
    if (m == 0) return;
    memset(w->ldj, 0, m * sizeof(float));
    nf_pass p = {m, t->task_grad ? w->tape : NULL, w->bscratch, t->ctx ? t->ctx + r0 * t->dc : NULL,
                 t->task_grad ? (s == 0 ? 2 : 1) : 0};
    nf_status st = f->bij->ops->inverse(f->bij, &p, w->z, w->ldj, x);
    if (!st) st = f->base->ops->log_prob(f->base, w->dscratch, w->lp, w->z, m);
    for (size_t i = 0; !st && i < m; i++) w->sum += (double)w->lp[i] + w->ldj[i];
    if (!st && t->task_grad && isfinite(w->sum)) {
        st = f->base->ops->log_prob_grad(f->base, w->gz, w->z, m);
        float inv = -1.0f / (float)k;
        for (size_t i = 0; !st && i < m * d; i++) w->gz[i] *= inv;
        for (size_t i = 0; !st && i < m; i++) w->gl[i] = inv;
        if (!st) st = f->bij->ops->inverse_backward(f->bij, &p, NULL, w->grad, w->gz, w->gl, x, w->z);
        if (!st && f->base->nparams) /* a trainable base: its parameters follow the bijector's */
            st = f->base->ops->param_grad(f->base, w->grad + f->Pb, w->gl, w->z, m);
    }
    if (st) snprintf(w->msg, sizeof w->msg, "%s", nf_last_error());
    w->st = st;
}

/* Thread s's share of the parameters: [p0, p1), cut at multiples of 16
 * floats so no two threads write one cache line. */
static void param_share(const trainer *t, size_t s, size_t *p0, size_t *p1) {
    *p0 = s ? (t->P * s / t->T) & ~(size_t)15 : 0;
    *p1 = s + 1 < t->T ? (t->P * (s + 1) / t->T) & ~(size_t)15 : t->P;
}

/* Thread s adds the other slots' gradients into t->grad over its share of
 * the parameters, clears them for the next step, and sums the squares of
 * its share (the norm is then a sum over slots, in slot order). */
static void slot_reduce(trainer *t, size_t s) {
    size_t p0, p1;
    param_share(t, s, &p0, &p1);
    for (size_t q = 1; q < t->T; q++) {
        float *g = t->slots[q].grad;
        for (size_t j = p0; j < p1; j++) t->grad[j] += g[j], g[j] = 0;
    }
    t->slots[s].sq = nf__sum_squares(t->grad + p0, p1 - p0);
}

/* Thread s's share of the Adam update (the step is counted by the caller). */
static void slot_adam(trainer *t, size_t s) {
    size_t p0, p1;
    param_share(t, s, &p0, &p1);
    nf__adam_apply(&t->adam, t->gscale, t->f->params + p0, t->grad + p0, t->m + p0, t->v + p0, p1 - p0);
}

static void *pool_main(void *arg) {
    slot *w = arg;
    trainer *t = w->owner;
    size_t s = (size_t)(w - t->slots);
    pthread_mutex_lock(&t->mu); /* wait until every worker exists (or start-up failed) */
    while (!t->ready) pthread_cond_wait(&t->cv, &t->mu);
    pthread_mutex_unlock(&t->mu);
    if (t->quit) return NULL;
    for (;;) {
        pthread_barrier_wait(&t->bar);
        if (t->quit) break;
        if (t->task_adam) {
            slot_adam(t, s);
            pthread_barrier_wait(&t->bar);
            continue;
        }
        slot_run(t, s);
        pthread_barrier_wait(&t->bar);
        if (t->task_grad) slot_reduce(t, s);
        pthread_barrier_wait(&t->bar);
    }
    return NULL;
}

/* Runs the current task on all slots (the caller is slot 0). */
static void run_task(trainer *t) {
    if (!t->pool) {
        slot_run(t, 0);
        return;
    }
    pthread_barrier_wait(&t->bar);
    slot_run(t, 0);
    pthread_barrier_wait(&t->bar);
    if (t->task_grad) slot_reduce(t, 0);
    pthread_barrier_wait(&t->bar);
}

/* One Adam step on all slots, each over its share of the parameters. */
static void run_adam(trainer *t) {
    t->adam.t++;
    if (!t->pool) {
        slot_adam(t, 0);
        return;
    }
    t->task_adam = 1;
    pthread_barrier_wait(&t->bar);
    slot_adam(t, 0);
    pthread_barrier_wait(&t->bar);
    t->task_adam = 0;
}

static void trainer_free(trainer *t) {
    if (t->pool) {
        t->quit = 1;
        pthread_barrier_wait(&t->bar);
        for (size_t s = 1; s < t->T; s++) pthread_join(t->th[s], NULL);
        pthread_barrier_destroy(&t->bar);
        pthread_mutex_destroy(&t->mu);
        pthread_cond_destroy(&t->cv);
    }
    for (size_t s = 0; s < t->T; s++) nf__aligned_free(t->slots[s].mem);
    nf__aligned_free(t->mem);
}

static nf_status trainer_init(trainer *t, nf_flow *f, size_t B, const nf_train_opts *o) {
    memset(t, 0, sizeof *t);
    t->f = f, t->B = B, t->d = f->d, t->P = f->P;
    nf__bijector_premask(f->bij, NF_PREMASK_APPLY); /* MADE masks: applied once, kept by masked gradients */
    t->T = o->threads > 1 ? o->threads : 1;
    if (t->T > NF_MAX_THREADS) return nf__err(NF_ERR_ARG, "threads must be at most %d, got %zu", NF_MAX_THREADS, t->T);
    if (t->T > B) t->T = B ? B : 1;
    if (!f->base->ops->log_prob_grad)
        return nf__err(NF_ERR_UNSUPPORTED, "base %s has no log-density gradient", f->base->name);
    size_t pb = nf__align(t->P * sizeof(float) + 1);
    t->dc = f->bij->dc;
    size_t cb = t->dc ? nf__align(B * t->dc * sizeof(float)) + nf__align(B * (t->d + t->dc) * sizeof(float)) : 0;
    t->mem = nf__aligned_alloc(nf__align(B * t->d * sizeof(float)) + 4 * pb + cb);
    if (!t->mem) return nf__err(NF_ERR_NOMEM, "out of memory for the training workspace (batch %zu)", B);
    unsigned char *cur = t->mem;
    t->x = nf__carve(&cur, B * t->d * sizeof(float));
    if (t->dc) {
        t->ctx = nf__carve(&cur, B * t->dc * sizeof(float));
        t->raw = nf__carve(&cur, B * (t->d + t->dc) * sizeof(float));
    }
    t->grad = nf__carve(&cur, t->P * sizeof(float) + 1);
    t->m = nf__carve(&cur, t->P * sizeof(float) + 1);
    t->v = nf__carve(&cur, t->P * sizeof(float) + 1);
    t->best = nf__carve(&cur, t->P * sizeof(float) + 1);
    memset(t->grad, 0, t->P * sizeof(float));
    memset(t->m, 0, t->P * sizeof(float));
    memset(t->v, 0, t->P * sizeof(float));
    memcpy(t->best, f->params, t->P * sizeof(float)); /* checkpoints store it in either mode */
    t->adam = (nf_adam){o->lr, o->beta1, o->beta2, o->eps, o->weight_decay, 0};
    t->clip = o->clip_norm;
    size_t rows = (B + t->T - 1) / t->T;
    nf_status s = NF_OK;
    for (size_t q = 0; q < t->T && !s; q++) s = slot_init(t, &t->slots[q], rows, q > 0);
    if (!s && t->T > 1) {
        /* Workers wait on `ready`; the barrier is made only once all exist, so a
         * failed start can release the ones already running. */
        pthread_mutex_init(&t->mu, NULL);
        pthread_cond_init(&t->cv, NULL);
        size_t started = 1;
        for (; started < t->T; started++) {
            t->slots[started].owner = t;
            if (pthread_create(&t->th[started], NULL, pool_main, &t->slots[started])) break;
        }
        if (started == t->T && pthread_barrier_init(&t->bar, NULL, (unsigned)t->T) == 0) {
            t->pool = 1;
        } else {
            t->quit = 1;
            s = nf__err(NF_ERR_NOMEM, "cannot start %zu training threads", t->T);
        }
        pthread_mutex_lock(&t->mu);
        t->ready = 1;
        pthread_cond_broadcast(&t->cv);
        pthread_mutex_unlock(&t->mu);
        if (s) {
            for (size_t q = 1; q < started; q++) pthread_join(t->th[q], NULL);
            pthread_mutex_destroy(&t->mu);
            pthread_cond_destroy(&t->cv);
        }
    }
    if (s) {
        for (size_t q = 0; q < NF_MAX_THREADS; q++) nf__aligned_free(t->slots[q].mem), t->slots[q].mem = NULL;
        nf__aligned_free(t->mem);
        t->mem = NULL;
        return s;
    }
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
    t->task_k = k, t->task_grad = with_grad;
    run_task(t); /* t->grad is all zeros on entry: zeroed once, then cleared by each Adam step */
    double s = 0;
    nf_status st = NF_OK;
    for (size_t q = 0; q < t->T; q++) {
        if (!st && t->slots[q].st) st = nf__err(t->slots[q].st, "%s", t->slots[q].msg);
        s += t->slots[q].sum;
    }
    if (!st) {
        *loss = -s / (double)k + f->log_std_sum;
        if (!isfinite(*loss)) st = nf__err(NF_ERR_NUMERIC, "the loss is %g", *loss);
    }
    if (st || !with_grad) {
        if (st && with_grad) memset(t->grad, 0, t->P * sizeof(float));
        return st;
    }
    double sq = 0;
    if (t->pool)
        for (size_t q = 0; q < t->T; q++) sq += t->slots[q].sq;
    else
        sq = nf__sum_squares(t->grad, t->P);
    t->norm = sqrt(sq);
    t->gscale = nf__clip_scale(t->norm, t->clip); /* applied inside the Adam update */
    if (!isfinite(t->norm)) {
        size_t bad = nf__first_nonfinite(t->grad, t->P);
        find_ctx fc = {bad, "?"};
        nf__flow_tensors(f, find_tensor, &fc);
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
    run_adam(t);
    return NF_OK;
}

/* Batch row i from a user row: its first d values (x), then the context. */
static void put_row(trainer *t, size_t i, const float *row) {
    memcpy(t->x + i * t->d, row, t->d * sizeof(float));
    if (t->dc) memcpy(t->ctx + i * t->dc, row + t->d, t->dc * sizeof(float));
}

/* Mean NLL over n rows of user data, in batches of t->B. */
static nf_status evaluate(trainer *t, const float *data, size_t n, double *out) {
    double acc = 0;
    size_t D = t->d + t->dc;
    for (size_t r = 0; r < n; r += t->B) {
        size_t k = n - r < t->B ? n - r : t->B;
        for (size_t i = 0; i < k; i++) put_row(t, i, data + (r + i) * D);
        nf__flow_scale_in(t->f, t->x, k);
        double l;
        nf_status s = nll(t, k, 0, &l);
        if (s == NF_ERR_NUMERIC || s == NF_ERR_DOMAIN) {
            /* rows the model maps out of float range or out of its support:
             * density 0, as nf_flow_log_prob's -inf; early stopping goes on */
            *out = INFINITY;
            return NF_OK;
        }
        NF_TRY(s);
        acc += l * (double)k;
    }
    *out = acc / (double)n;
    return NF_OK;
}

double nf__now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
#define now nf__now

nf_status nf__check_train_opts(const char *fn, nf_flow *f, const nf_train_opts *o, nf_train_report *r) {
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
    if (f->P == 0) return nf__err(NF_ERR_ARG, "%s: the flow has no trainable parameters", fn);
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
    NF_TRY(nf__check_train_opts(fn, f, o, rep));
    if (!data) return nf__err(NF_ERR_ARG, "%s: data is NULL", fn);
    size_t nval = (size_t)((double)n * o->val_split), ntr = n - nval;
    if (ntr < 1 || (o->val_split > 0 && nval < 1))
        return nf__err(NF_ERR_ARG, "%s: %zu rows leave %zu for training and %zu for validation", fn, n, ntr, nval);
    if (o->epochs == 0) return nf__err(NF_ERR_ARG, "%s: epochs must be >= 1", fn);
    size_t D = f->d + f->bij->dc; /* a row: x, then the context of a conditional flow */
    nf_status s = nf__check_finite("data", data, n, D);
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
            for (size_t i = 0; i < k; i++) put_row(&t, i, data + idx[r + i] * D);
            nf__flow_scale_in(f, t.x, k);
            if (stepno == 0 && (s = nf__bijector_data_init(f->bij, t.x, t.ctx, k))) break; /* actnorm */
            double l;
            s = step(&t, k, ++stepno, &l);
            acc += l * (double)k;
        }
        if (s) break;
        tl = acc / (double)ntr;
        if (nval) {
            s = evaluate(&t, data + ntr * D, nval, &vl);
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
                memcpy(t.best, f->params, t.P * sizeof(float));
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
    if (!s && nval && o->patience && stopped && best_epoch) memcpy(f->params, t.best, t.P * sizeof(float));
    if (rep) {
        rep->steps = stepno, rep->epochs = epoch;
        rep->train_loss = tl, rep->val_loss = nval ? vl : NAN;
        rep->best_val_loss = nval ? best : NAN, rep->best_epoch = best_epoch;
        rep->stopped_early = stopped, rep->seconds = now() - t0;
    }
    nf_rng_free(rng);
    free(idx);
    trainer_free(&t);
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
    NF_TRY(nf__check_train_opts(fn, f, o, rep));
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
        int rc = draw(user, rng, t.dc ? t.raw : t.x, o->batch);
        if (rc) {
            s = nf__err(NF_ERR_ARG, "step %zu: the sampler reported failure (code %d)", stepno + 1, rc);
            break;
        }
        if ((s = nf__check_finite("a sampled batch", t.dc ? t.raw : t.x, o->batch, f->d + t.dc))) break;
        for (size_t i = 0; t.dc && i < o->batch; i++) put_row(&t, i, t.raw + i * (f->d + t.dc));
        nf__flow_scale_in(f, t.x, o->batch);
        if (stepno == 0 && (s = nf__bijector_data_init(f->bij, t.x, t.ctx, o->batch))) break; /* actnorm */
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
    trainer_free(&t);
    if (s) {
        free(ht), free(hv);
        nf_train_report_free(rep);
        return nf__err_prefix(s, fn);
    }
    finish_history(rep, ht, hv, logs);
    return NF_OK;
}
