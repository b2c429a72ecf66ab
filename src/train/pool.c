/*
 * pool.c - the trainer's workspaces and threads.
 *
 * A batch of k rows is cut into T slices, one per slot, run by W = min(T,
 * the CPUs online) threads: thread w takes slots w, w + W, ...; thread 0 is
 * the caller, threads 1..W-1 are workers that wait on one barrier (so the
 * results depend on T, never on W).  A task is two functions run on every
 * slot, a then b, with a barrier after each.  After
 * the objective (task a), task b sums the slots' gradients into t->grad over
 * each slot's share of the parameters, always in slot order, so a result
 * depends on T but not on timing.  Adam runs over the same shares.
 */
#include "trainer.h"

#include "../backend/team.h"
#include "../device/prog.h"

#include <stdio.h>
#include <string.h>

static nf_status slot_init(nf_trainer *t, nf_slot *w, size_t rows, int own_grad) {
    const nf_flow *f = t->f;
    size_t tb = nf__tape_bytes(f->bij, rows), sb = nf__scratch_bytes(f->bij, rows),
           db = nf__dist_scratch(f->base, rows), blk = nf__align(rows * t->d * sizeof(float)),
           rb = nf__align(rows * sizeof(float)), pb = own_grad ? nf__align(t->P * sizeof(float)) : 0;
    w->mem = nf__aligned_alloc(nf__align(tb) + nf__align(sb) + nf__align(db) + 3 * blk + 4 * rb + pb);
    if (!w->mem) return nf__err(NF_ERR_NOMEM, "out of memory for the training workspace (%zu rows)", rows);
    unsigned char *cur = w->mem;
    w->tape = nf__carve(&cur, tb);
    w->bscratch = nf__carve(&cur, sb);
    w->dscratch = nf__carve(&cur, db);
    w->u = nf__carve(&cur, rows * t->d * sizeof(float));
    w->v = nf__carve(&cur, rows * t->d * sizeof(float));
    w->w = nf__carve(&cur, rows * t->d * sizeof(float));
    w->ldj = nf__carve(&cur, rows * sizeof(float));
    w->lp = nf__carve(&cur, rows * sizeof(float));
    w->lt = nf__carve(&cur, rows * sizeof(float));
    w->gl = nf__carve(&cur, rows * sizeof(float));
    w->grad = own_grad ? nf__carve(&cur, t->P * sizeof(float)) : t->grad;
    if (own_grad) memset(w->grad, 0, t->P * sizeof(float));
    return NF_OK;
}

/* Slot s's rows of the current task through the objective. */
static void slot_objective(nf_trainer *t, size_t s) {
    nf_slot *w = &t->slots[s];
    size_t k = t->task_k, r0 = k * s / t->T, r1 = k * (s + 1) / t->T;
    w->st = NF_OK;
    w->sum = 0;
    if (r1 > r0) t->obj->run(t, w, r0, r1 - r0, k, t->task_grad);
    if (w->st) snprintf(w->msg, sizeof w->msg, "%s", nf_last_error());
}

/* Thread s's share of the parameters: [p0, p1), cut at multiples of 16
 * floats so no two threads write one cache line. */
static void param_share(const nf_trainer *t, size_t s, size_t *p0, size_t *p1) {
    *p0 = s ? (t->P * s / t->T) & ~(size_t)15 : 0;
    *p1 = s + 1 < t->T ? (t->P * (s + 1) / t->T) & ~(size_t)15 : t->P;
}

/* Thread s adds the other slots' gradients into t->grad over its share of
 * the parameters, clears them for the next step, and sums the squares of
 * its share (the norm is then a sum over slots, in slot order). */
static void slot_reduce(nf_trainer *t, size_t s) {
    size_t p0, p1;
    param_share(t, s, &p0, &p1);
    for (size_t q = 1; q < t->T; q++) {
        float *g = t->slots[q].grad;
        for (size_t j = p0; j < p1; j++) {
            t->grad[j] += g[j];
            g[j] = 0;
        }
    }
    t->slots[s].sq = t->be->sum_squares(t->be, t->grad + p0, p1 - p0);
}

/* Thread s's share of the Adam update (the step is counted by the caller). */
static void slot_adam(nf_trainer *t, size_t s) {
    size_t p0, p1;
    param_share(t, s, &p0, &p1);
    t->be->adam(t->be, &t->adam, t->gscale, t->f->params + p0, t->grad + p0, t->m + p0, t->v + p0, p1 - p0);
}

static void *pool_main(void *arg) {
    nf_slot *w = arg;
    nf_trainer *t = w->owner;
    size_t s = (size_t)(w - t->slots);
    pthread_mutex_lock(&t->mu); /* wait until every worker exists (or start-up failed) */
    while (!t->ready) pthread_cond_wait(&t->cv, &t->mu);
    pthread_mutex_unlock(&t->mu);
    if (t->start_failed) return NULL; /* (not `quit`: a trainer freed at once sets it before we look) */
    for (;;) {
        pthread_barrier_wait(&t->bar);
        if (t->quit) break;
        void (*b)(nf_trainer *, size_t) = t->task_b;
        for (size_t q = s; q < t->T; q += t->W) t->task_a(t, q);
        pthread_barrier_wait(&t->bar);
        if (b) {
            for (size_t q = s; q < t->T; q += t->W) b(t, q);
            pthread_barrier_wait(&t->bar);
        }
    }
    return NULL;
}

/* Runs a, then b (may be NULL), on every slot; the caller takes slots 0, W, 2W, ... */
static void run_task(nf_trainer *t, void (*a)(nf_trainer *, size_t), void (*b)(nf_trainer *, size_t)) {
    if (!t->pool) {
        for (size_t q = 0; q < t->T; q++) a(t, q);
        if (b)
            for (size_t q = 0; q < t->T; q++) b(t, q);
        return;
    }
    t->task_a = a;
    t->task_b = b;
    pthread_barrier_wait(&t->bar);
    for (size_t q = 0; q < t->T; q += t->W) a(t, q);
    pthread_barrier_wait(&t->bar);
    if (b) {
        for (size_t q = 0; q < t->T; q += t->W) b(t, q);
        pthread_barrier_wait(&t->bar);
    }
}

void nf__trainer_adam(nf_trainer *t) {
    t->adam.t++;
    run_task(t, slot_adam, NULL);
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

/* A non-finite gradient: names the first bad parameter, clears the buffer. */
static nf_status bad_gradient(nf_trainer *t) {
    size_t bad = nf__first_nonfinite(t->grad, t->P);
    find_ctx fc = {bad, "?"};
    nf__flow_tensors(t->f, find_tensor, &fc);
    nf_status e = nf__err(NF_ERR_NUMERIC, "the gradient of parameter %zu (%s) is %g", bad, fc.name,
                          bad < t->P ? (double)t->grad[bad] : t->norm);
    memset(t->grad, 0, t->P * sizeof(float));
    return e;
}

/* Across processes (t->comm): every process's status, rows and summed loss
 * in one sum (a failure anywhere fails the step everywhere), then the
 * gradient scaled by this process's share of the rows and summed: the
 * gradient of the global batch's mean loss, identical on every process. */
static nf_status comm_step(nf_trainer *t, nf_status st, size_t k, double *loss) {
    double v[4] = {st ? 0 : *loss * (double)k, (double)k, st ? 1 : 0, (double)st};
    nf_status cs = nf__comm_sum_d(t->comm, v, 4);
    if (st || cs) return st ? st : cs;
    if (v[2] > 0)
        return nf__err(v[2] == 1 ? (nf_status)(int)v[3] : NF_ERR_ARG, "%g other process%s failed at this step", v[2],
                       v[2] > 1 ? "es" : "");
    *loss = v[0] / v[1];
    t->kglob = v[1];
    float share = (float)((double)k / v[1]);
    if (share != 1.0f)
        for (size_t i = 0; i < t->P; i++) t->grad[i] *= share;
    return nf__comm_sum_f(t->comm, t->grad, t->P);
}

nf_status nf__trainer_fail(nf_trainer *t, nf_status st) {
    double l = 0;
    return t->comm ? comm_step(t, st, 0, &l) : st;
}

nf_status nf__trainer_eval(nf_trainer *t, size_t k, int grad, double *loss) {
    if (t->dev && !grad) return nf__dtrain_eval(t, k, loss);
    t->task_k = k;
    t->task_grad = grad;
    t->kglob = (double)k;
    double s = 0;
    nf_status st = NF_OK;
    if (k) { /* (a process's share of a step may be empty across processes) */
        /* t->grad is all zeros on entry: zeroed once, then cleared by each Adam step */
        run_task(t, slot_objective, grad && t->T > 1 ? slot_reduce : NULL);
        for (size_t q = 0; q < t->T; q++) {
            if (!st && t->slots[q].st) st = nf__err(t->slots[q].st, "%s", t->slots[q].msg);
            s += t->slots[q].sum;
        }
    }
    *loss = 0;
    if (!st && k) {
        *loss = t->obj->loss(t, s, k);
        if (!isfinite(*loss)) st = nf__err(NF_ERR_NUMERIC, "the loss is %g", *loss);
    }
    if (t->comm && grad) st = comm_step(t, st, k, loss);
    if (st || !grad) {
        if (st && grad) memset(t->grad, 0, t->P * sizeof(float));
        return st;
    }
    double sq = 0;
    if (t->reduce || t->comm) { /* the reduction seam: e.g. an all-reduce across processes */
        int rc = t->reduce ? t->reduce(t->reduce_user, t->grad, t->P, loss) : 0;
        if (rc) {
            memset(t->grad, 0, t->P * sizeof(float));
            return nf__err(NF_ERR_ARG, "the reduce hook reported failure (code %d)", rc);
        }
        sq = t->be->sum_squares(t->be, t->grad, t->P);
    } else if (t->T > 1) { /* (slot_reduce summed each share's squares) */
        for (size_t q = 0; q < t->T; q++) sq += t->slots[q].sq;
    } else {
        sq = t->be->sum_squares(t->be, t->grad, t->P);
    }
    t->norm = sqrt(sq);
    t->gscale = nf__clip_scale(t->norm, t->clip); /* applied inside the Adam update */
    return isfinite(t->norm) ? NF_OK : bad_gradient(t);
}

void nf__trainer_free(nf_trainer *t) {
    nf__dtrain_free(t);
    nf__team_free(t->team);
    t->team = NULL;
    if (t->pool) {
        t->quit = 1;
        pthread_barrier_wait(&t->bar);
        for (size_t s = 1; s < t->W; s++) pthread_join(t->th[s], NULL);
        pthread_barrier_destroy(&t->bar);
        pthread_mutex_destroy(&t->mu);
        pthread_cond_destroy(&t->cv);
        t->pool = 0;
    }
    for (size_t s = 0; s < NF_MAX_THREADS; s++) {
        nf__aligned_free(t->slots[s].mem);
        t->slots[s].mem = NULL;
    }
    nf__aligned_free(t->mem);
    t->mem = NULL;
}

/* Starts T - 1 workers.  They wait on `ready`; the barrier is made only once
 * all exist, so a failed start can release the ones already running. */
static nf_status start_pool(nf_trainer *t) {
    nf_status s = NF_OK;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    size_t started = 1;
    for (; started < t->W; started++) {
        t->slots[started].owner = t;
        if (pthread_create(&t->th[started], NULL, pool_main, &t->slots[started])) break;
    }
    if (started == t->W && pthread_barrier_init(&t->bar, NULL, (unsigned)t->W) == 0) {
        t->pool = 1;
    } else {
        t->start_failed = 1;
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
    return s;
}

/* Whether `threads` share each step by columns (a team) rather than rows. */
static int split_columns(const nf_flow *f, const nf_train_opts *o, size_t T, size_t B) {
    if (T < 2 || f->be || nf__flow_dev_device(f) || o->split == NF_SPLIT_ROWS) return 0;
    return o->split == NF_SPLIT_COLUMNS || B < (size_t)NF_SPLIT_AUTO_ROWS * T;
}

nf_status nf__trainer_init(nf_trainer *t, nf_flow *f, const nf_objective *obj, size_t B, const nf_train_opts *o) {
    memset(t, 0, sizeof *t);
    t->f = f;
    t->obj = obj;
    t->be = nf__be(f->be);
    t->B = B;
    t->d = f->d;
    t->P = f->P;
    t->reduce = o->reduce;
    t->reduce_user = o->reduce_user;
    t->comm = nf__comm_on(o->comm) ? o->comm : NULL;
    nf__bijector_premask(f->bij, NF_PREMASK_APPLY); /* MADE masks: applied once, kept by masked gradients */
    t->T = o->threads > 1 ? o->threads : 1;
    if (t->T > NF_MAX_THREADS) return nf__err(NF_ERR_ARG, "threads must be at most %d, got %zu", NF_MAX_THREADS, t->T);
    if (split_columns(f, o, t->T, B)) { /* one slot; the backend's passes on a team */
        nf_status s = nf__team_create(t->T, 0, &t->team);
        if (s) return s;
        t->be = nf__team_backend(t->team);
        t->T = 1;
    }
    if (t->T > B) t->T = B ? B : 1;
    size_t pb = nf__align(t->P * sizeof(float) + 1), db = nf__dist_scratch(f->base, B);
    t->dc = f->bij->dc;
    size_t cb = t->dc ? nf__align(B * t->dc * sizeof(float)) + nf__align(B * (t->d + t->dc) * sizeof(float)) : 0;
    t->mem = nf__aligned_alloc(nf__align(B * t->d * sizeof(float)) + nf__align(B * sizeof(float)) + nf__align(db) +
                               4 * pb + cb);
    if (!t->mem) return nf__err(NF_ERR_NOMEM, "out of memory for the training workspace (batch %zu)", B);
    unsigned char *cur = t->mem;
    t->x = nf__carve(&cur, B * t->d * sizeof(float));
    t->lpb = nf__carve(&cur, B * sizeof(float));
    t->dscratch = nf__carve(&cur, db);
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
    t->W = nf__threads_for(t->T);
    if (!s && t->W > 1) s = start_pool(t);
    if (!s) s = nf__dtrain_init(t);
    if (s) nf__trainer_free(t);
    return s;
}
