/*
 * fit.c - the public fit calls.  Each checks its arguments, then chooses a
 * batch source and an objective for the one loop (loop.c):
 *   nf_flow_fit             rows of an array, shuffled epochs  + NLL
 *   nf_flow_fit_stream      a sampler callback, fresh rows      + NLL
 *   nf_flow_fit_reverse_kl  base samples                        + reverse KL
 */
#include "trainer.h"

#include <stdlib.h>
#include <string.h>

nf_train_opts nf_train_defaults(void) {
    nf_train_opts o = {0};
    o.lr = 1e-3f;
    o.beta1 = 0.9f;
    o.beta2 = 0.999f;
    o.eps = 1e-8f;
    o.batch = 100;
    o.epochs = 100;
    o.steps = 1000;
    o.log_every = 100;
    return o;
}

void nf_train_report_free(nf_train_report *r) {
    if (!r) return;
    free(r->train_history);
    free(r->val_history);
    r->train_history = r->val_history = NULL;
    r->n_history = 0;
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
    if (f->P == 0) return nf__err(NF_ERR_ARG, "%s: the flow has no trainable parameters", fn);
    if (o->split < NF_SPLIT_AUTO || o->split > NF_SPLIT_COLUMNS)
        return nf__err(NF_ERR_ARG, "%s: split must be NF_SPLIT_AUTO, NF_SPLIT_ROWS or NF_SPLIT_COLUMNS, got %d", fn, o->split);
    nf_status s = nf__comm_check(o->comm);
    return s ? nf__err_prefix(s, fn) : NF_OK;
}

/* Streams and reverse KL across processes: this process's share of the
 * global batch (an even split; every process computes the same). */
static nf_status local_batch(const char *fn, const nf_train_opts *o, size_t *step) {
    *step = o->batch;
    if (!nf__comm_on(o->comm)) return NF_OK;
    size_t n = (size_t)o->comm->size, r = (size_t)o->comm->rank;
    if (o->batch < n) return nf__err(NF_ERR_ARG, "%s: batch %zu is smaller than the %zu processes", fn, o->batch, n);
    *step = nf__part(o->batch, n, r + 1) - nf__part(o->batch, n, r);
    return NF_OK;
}

static nf_status check_nll(const char *fn, const nf_flow *f) {
    if (!f->base->ops->log_prob_grad)
        return nf__err(NF_ERR_UNSUPPORTED, "%s: base %s has no log-density gradient", fn, f->base->name);
    return NF_OK;
}

/* Builds the trainer for batches of B rows, runs the loop, frees. */
static nf_status run(const char *fn, nf_flow *f, const nf_objective *obj, nf_source *src, size_t B,
                     const nf_train_opts *o, nf_train_report *rep, nf_log_density_fn target, void *target_user) {
    nf_trainer t;
    nf_status s = nf__trainer_init(&t, f, obj, B, o);
    if (s) return nf__err_prefix(s, fn);
    t.target = target;
    t.target_user = target_user;
    t.anneal_steps = o->anneal_steps;
    nf_blas_guard bg;
    nf__blas_enter(&bg); /* one BLAS thread inside nflow's: results do not depend on OPENBLAS_NUM_THREADS */
    s = nf__train_loop(&t, src, o, rep);
    nf__blas_leave(&bg);
    nf__trainer_free(&t);
    return s ? nf__err_prefix(s, fn) : NF_OK;
}

/* The scaler from the training rows (dequantised ones: one draw of their
 * noise, so that integer columns constant in the data are not refused). */
static nf_status fit_scaler(nf_flow *f, const float *data, size_t ntr, size_t D, const nf_train_opts *o) {
    if (!o->dequantize) return nf__flow_fit_scaler(f, data, ntr, o->comm);
    float *tmp = malloc(ntr * D * sizeof(float) + 1);
    nf_rng *r = NULL;
    if (!tmp || nf_rng_create(o->seed ^ 0x5ca1eULL, &r)) {
        free(tmp);
        return nf__err(NF_ERR_NOMEM, "nf_flow_fit: out of memory");
    }
    memcpy(tmp, data, ntr * D * sizeof(float));
    for (size_t i = 0; i < ntr; i++)
        for (size_t j = 0; j < f->d; j++) tmp[i * D + j] += nf_rng_uniform(r);
    nf_status s = nf__flow_fit_scaler(f, tmp, ntr, o->comm);
    nf_rng_free(r);
    free(tmp);
    return s;
}

/* Across processes: the global training and validation rows (each process
 * has its own; a process may have none), steps per epoch for the global
 * batch, and this process's largest share of a step. */
static nf_status global_rows(const char *fn, const nf_train_opts *o, size_t ntr, size_t nval, size_t *nsteps,
                             size_t *stepB) {
    double v[2] = {(double)ntr, (double)nval};
    NF_TRY(nf__comm_sum_d(o->comm, v, 2));
    size_t NTR = (size_t)v[0], NVAL = (size_t)v[1];
    if (NTR < 1 || (o->val_split > 0 && NVAL < 1))
        return nf__err(NF_ERR_ARG, "%s: the processes' rows leave %zu for training and %zu for validation", fn, NTR, NVAL);
    *nsteps = o->batch == 0 || o->batch >= NTR ? 1 : (NTR + o->batch - 1) / o->batch;
    *stepB = (ntr + *nsteps - 1) / *nsteps;
    return NF_OK;
}

nf_status nf_flow_fit(nf_flow *f, const float *data, size_t n, const nf_train_opts *o, nf_train_report *rep) {
    const char *fn = "nf_flow_fit";
    NF_TRY(check_opts(fn, f, o, rep));
    NF_TRY(check_nll(fn, f));
    int many = nf__comm_on(o->comm);
    size_t nval = (size_t)((double)n * o->val_split), ntr = n - nval;
    size_t D = f->d + f->bij->dc; /* a row: x, then the context of a conditional flow */
    nf_status s = NF_OK;
    if (!data && (n || !many)) s = nf__err(NF_ERR_ARG, "%s: data is NULL", fn);
    else if (!many && (ntr < 1 || (o->val_split > 0 && nval < 1)))
        s = nf__err(NF_ERR_ARG, "%s: %zu rows leave %zu for training and %zu for validation", fn, n, ntr, nval);
    else if (o->epochs == 0 && o->steps == 0) s = nf__err(NF_ERR_ARG, "%s: give epochs or steps (>= 1)", fn);
    else if ((s = nf__check_finite("data", data, n, D))) s = nf__err_prefix(s, fn);
    if (many) s = nf__comm_agree(o->comm, s); /* a process with bad rows stops them all */
    if (s) return s;
    if (o->standardize && (s = fit_scaler(f, data, ntr, D, o))) return s;
    size_t stepB = o->batch == 0 || o->batch > ntr ? ntr : o->batch, nsteps = 0;
    if (many && (s = global_rows(fn, o, ntr, nval, &nsteps, &stepB))) return s;
    size_t B = stepB ? stepB : 1; /* the trainer's batch also serves validation, in chunks */
    if (nval > B && B < NF_FLOW_CHUNK) B = nval < NF_FLOW_CHUNK ? nval : NF_FLOW_CHUNK;
    nf_source src;
    if ((s = nf__source_array(&src, data, ntr, nval, D, stepB))) return nf__err_prefix(s, fn);
    src.nsteps = nsteps;
    if (o->dequantize && (s = nf__source_dequantize(&src, f->d, o->seed ^ 0xdec0deULL))) {
        nf__source_free(&src);
        return nf__err_prefix(s, fn);
    }
    s = run(fn, f, &nf__objective_nll, &src, B, o, rep, NULL, NULL);
    nf__source_free(&src);
    return s;
}

nf_status nf_flow_fit_stream(nf_flow *f, nf_sampler_fn draw, void *user, const nf_train_opts *o, nf_train_report *rep) {
    const char *fn = "nf_flow_fit_stream";
    NF_TRY(check_opts(fn, f, o, rep));
    NF_TRY(check_nll(fn, f));
    if (!draw) return nf__err(NF_ERR_ARG, "%s: sampler is NULL", fn);
    if (o->batch == 0 || o->steps == 0) return nf__err(NF_ERR_ARG, "%s: batch and steps must be >= 1", fn);
    size_t step;
    NF_TRY(local_batch(fn, o, &step));
    nf_source src = nf__source_sampler(draw, user, step);
    return run(fn, f, &nf__objective_nll, &src, step, o, rep, NULL, NULL);
}

nf_status nf_flow_fit_reverse_kl(nf_flow *f, nf_log_density_fn target, void *user, const nf_train_opts *o,
                                 nf_train_report *rep) {
    const char *fn = "nf_flow_fit_reverse_kl";
    NF_TRY(check_opts(fn, f, o, rep));
    if (!target) return nf__err(NF_ERR_ARG, "%s: target is NULL", fn);
    if (o->batch == 0 || o->steps == 0) return nf__err(NF_ERR_ARG, "%s: batch and steps must be >= 1", fn);
    if (f->bij->dc) return nf__err(NF_ERR_UNSUPPORTED, "%s: the flow is conditional", fn);
    if (f->base->nparams)
        return nf__err(NF_ERR_UNSUPPORTED, "%s: the base %s is trainable; its samples are not reparameterisable", fn,
                       f->base->name);
    size_t step;
    NF_TRY(local_batch(fn, o, &step));
    nf_source src = nf__source_base(step);
    return run(fn, f, &nf__objective_reverse_kl, &src, step, o, rep, target, user);
}
