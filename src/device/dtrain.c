/*
 * dtrain.c - the training engine's step on a flow's device (trainer.h):
 * maximum likelihood and (kl_step) reverse KL.
 * The loop (train/loop.c) is the same; what changes is where a step runs:
 * the batch is copied into a fixed device buffer, then the NLL's forward and
 * backward passes, the gradient's norm, the step's bookkeeping (kern.h
 * K_STEP: a non-finite loss or gradient marks the step and stops every
 * later update) and Adam with clipping run on the device without a host
 * synchronisation.  Where the device offers graphs (CUDA), a full batch's
 * step is recorded once and replayed.  The loss terms accumulate on the
 * device and are read, with the parameters and Adam's moments, once per
 * period (nf__dtrain_sync), so the host copies are current wherever the
 * loop looks at them: validation, early stopping, checkpoints, the end.
 */
#include "prog.h"
#include "../train/trainer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct nf_dtrain {
    nf_dprog *p;
    nf_device *dv;
    float *host;    /* reverse KL: y, x, gx (B x d each), fldj, lpt, gl (B each) on the host */
    void *graph;    /* a full batch's step, recorded (NULL: none yet or not offered) */
    int graph_failed;
    int warm;       /* a full batch's step has run once eagerly (cuBLAS initialised before recording) */
};

nf_status nf__dtrain_init(nf_trainer *t) {
    nf_device *dv = nf__flow_dev_device(t->f);
    if (!dv) return NF_OK;
    if (t->obj != &nf__objective_nll && t->obj != &nf__objective_reverse_kl)
        return nf__err(NF_ERR_UNSUPPORTED, "--device %s: training by %s runs on the CPU only", dv->name, t->obj->name);
    if (t->comm || t->reduce)
        return nf__err(NF_ERR_UNSUPPORTED, "--device %s: training across processes (MPI) or with a reduce hook runs on "
                       "the CPU only", dv->name);
    nf_dtrain *dt = calloc(1, sizeof *dt);
    if (!dt) return nf__err(NF_ERR_NOMEM, "out of memory");
    nf_status s = nf__dprog_create(t->f, dv, t->B, 1, &dt->p);
    if (!s && t->obj == &nf__objective_reverse_kl) {
        dt->host = malloc((3 * t->d + 3) * t->B * sizeof(float));
        if (!dt->host) s = nf__err(NF_ERR_NOMEM, "out of memory");
    }
    if (s) {
        nf__dprog_free(dt->p);
        free(dt);
        return s;
    }
    dt->dv = dv;
    t->dev = dt;
    return NF_OK;
}

void nf__dtrain_free(nf_trainer *t) {
    nf_dtrain *dt = t->dev;
    if (!dt) return;
    if (dt->graph) dt->dv->ops->graph_free(dt->dv->st, dt->graph);
    nf__dprog_free(dt->p);
    free(dt->host);
    free(dt);
    t->dev = NULL;
}

nf_status nf__dtrain_upload(nf_trainer *t) {
    nf_dtrain *dt = t->dev;
    const nf_dprog_train *b = nf__dprog_buffers(dt->p);
    const nf_dev_ops *o = dt->dv->ops;
    NF_TRY(nf__dprog_put_params(dt->p, t->f->params));
    NF_TRY(o->put(dt->dv->st, b->mv, t->m, t->P * sizeof(float)));
    NF_TRY(o->put(dt->dv->st, b->mv + t->P, t->v, t->P * sizeof(float)));
    double st[ST_N] = {0};
    st[ST_T] = (double)t->adam.t;
    return o->put(dt->dv->st, b->state, st, sizeof st);
}

/* The step's bookkeeping and Adam (the gradient and the loss terms are in). */
static void step_update(nf_trainer *t, size_t k) {
    nf_dtrain *dt = t->dev;
    const nf_dprog_train *b = nf__dprog_buffers(dt->p);
    nf_kargs a;
    memset(&a, 0, sizeof a);
    a.st = b->state, a.n = k;
    dt->dv->ops->launch(dt->dv->st, K_STEP, 1, &a);
    if (!t->P) return;
    a.o0 = b->p, a.o1 = b->g, a.o2 = b->mv, a.e = t->P;
    a.f0 = t->adam.lr, a.f1 = t->adam.b1, a.f2 = t->adam.b2, a.f3 = t->adam.eps, a.f4 = t->adam.wd, a.f5 = t->clip;
    dt->dv->ops->launch(dt->dv->st, K_ADAM, t->P, &a);
}

/* The step's device work on the k rows already in the batch buffer. */
static void step_work(nf_trainer *t, size_t k) {
    nf__dprog_nll(t->dev->p, k, 1);
    step_update(t, k);
}

/* A reverse-KL step (objective_kl.c's maths; the target runs on the host,
 * so each step waits for the device): the k base points in t->x (their
 * log-densities in t->lpb) mapped forward on the device, the target and the
 * loss on the host, the gradient back through the forward pass on the
 * device, then the update there. */
static nf_status kl_step(nf_trainer *t, size_t k) {
    nf_dtrain *dt = t->dev;
    const nf_flow *f = t->f;
    size_t d = t->d;
    float *y = dt->host, *x = y + t->B * d, *gx = x + t->B * d, *fl = gx + t->B * d, *lpt = fl + t->B, *gl = lpt + t->B;
    NF_TRY(nf__dprog_kl_forward(dt->p, t->x, k, y, fl));
    memcpy(x, y, k * d * sizeof(float));
    if (f->has_scaler)
        for (size_t i = 0; i < k; i++)
            for (size_t j = 0; j < d; j++) x[i * d + j] = f->mean[j] + f->std[j] * x[i * d + j];
    size_t bad = nf__first_nonfinite(x, k * d);
    if (bad < k * d) return nf__err(NF_ERR_NUMERIC, "a sample is non-finite (row %zu)", bad / d);
    if (t->target(t->target_user, x, k, d, lpt, gx)) return nf__err(NF_ERR_ARG, "the target log-density reported failure");
    double sum = 0;
    for (size_t i = 0; i < k; i++) sum += (double)t->lpb[i] - fl[i] - f->log_std_sum - lpt[i];
    if (!isfinite(sum) || nf__first_nonfinite(gx, k * d) < k * d)
        return nf__err(NF_ERR_NUMERIC, "the loss or the target's gradient is non-finite (loss %g)", sum / (double)k);
    double beta = t->anneal_steps ? fmin(1.0, 0.01 + (double)(t->stepno - 1) / (double)t->anneal_steps) : 1.0;
    for (size_t i = 0; i < k; i++)
        for (size_t j = 0; j < d; j++)
            gx[i * d + j] = (float)(-beta * gx[i * d + j] * (f->has_scaler ? f->std[j] : 1.0f) / (double)k);
    for (size_t i = 0; i < k; i++) gl[i] = -1.0f / (float)k;
    NF_TRY(nf__dprog_kl_backward(dt->p, k, gx, gl));
    const nf_dprog_train *b = nf__dprog_buffers(dt->p);
    NF_TRY(dt->dv->ops->put(dt->dv->st, b->state + ST_LOSS, &sum, sizeof sum));
    step_update(t, k);
    return NF_OK;
}

/* The k rows in t->x (and their context) into the device's batch buffer. */
static nf_status put_batch(nf_trainer *t, size_t k) {
    nf_dtrain *dt = t->dev;
    const nf_dprog_train *b = nf__dprog_buffers(dt->p);
    NF_TRY(dt->dv->ops->put(dt->dv->st, b->batch, t->x, k * t->d * sizeof(float)));
    return t->dc ? dt->dv->ops->put(dt->dv->st, b->ctx, t->ctx, k * t->dc * sizeof(float)) : NF_OK;
}

nf_status nf__dtrain_step(nf_trainer *t, size_t k) {
    nf_dtrain *dt = t->dev;
    const nf_dev_ops *o = dt->dv->ops;
    const nf_dprog_train *b = nf__dprog_buffers(dt->p);
    t->kglob = (double)k;
    if (!k) return NF_OK;
    if (t->obj == &nf__objective_reverse_kl) return kl_step(t, k);
    NF_TRY(put_batch(t, k));
    int warm = dt->warm;
    if (k == b->R) dt->warm = 1;
    if (k == b->R && o->graph_begin && !dt->graph_failed && warm) {
        if (!dt->graph) { /* record a full batch's step once (the second one) */
            nf_status s = o->graph_begin(dt->dv->st);
            if (!s) {
                step_work(t, k);
                s = o->graph_end(dt->dv->st, &dt->graph);
            }
            if (s) dt->graph_failed = 1; /* steps run one call at a time instead */
        }
        if (dt->graph) return o->graph_replay(dt->dv->st, dt->graph);
    }
    step_work(t, k);
    return NF_OK;
}

nf_status nf__dtrain_sync(nf_trainer *t, double *sum, double *rows, size_t *bad) {
    nf_dtrain *dt = t->dev;
    const nf_dev_ops *o = dt->dv->ops;
    const nf_dprog_train *b = nf__dprog_buffers(dt->p);
    double st[ST_N];
    NF_TRY(o->get(dt->dv->st, st, b->state, sizeof st));
    NF_TRY(nf__dprog_get_params(dt->p, t->f->params));
    NF_TRY(o->get(dt->dv->st, t->m, b->mv, t->P * sizeof(float)));
    NF_TRY(o->get(dt->dv->st, t->v, b->mv + t->P, t->P * sizeof(float)));
    t->adam.t = (size_t)st[ST_T];
    if (bad) *bad = (size_t)st[ST_BAD];
    if (!sum) return NF_OK;
    *sum = st[ST_ACC];
    *rows = st[ST_ROWS];
    st[ST_ACC] = st[ST_ROWS] = 0;
    return o->put(dt->dv->st, b->state, st, sizeof st);
}

nf_status nf__dtrain_eval(nf_trainer *t, size_t k, double *loss) {
    nf_dtrain *dt = t->dev;
    const nf_dev_ops *o = dt->dv->ops;
    const nf_dprog_train *b = nf__dprog_buffers(dt->p);
    t->kglob = (double)k;
    *loss = 0;
    if (!k) return NF_OK;
    NF_TRY(put_batch(t, k));
    nf__dprog_nll(dt->p, k, 0);
    double s;
    NF_TRY(o->get(dt->dv->st, &s, b->state + ST_LOSS, sizeof s));
    *loss = t->obj->loss(t, s, k);
    return isfinite(*loss) ? NF_OK : nf__err(NF_ERR_NUMERIC, "the loss is %g", *loss);
}
