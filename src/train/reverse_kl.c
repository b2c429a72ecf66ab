/*
 * reverse_kl.c - variational fitting of a flow to an unnormalised density
 * (Rezende & Mohamed 2015): minimise KL(q || p) = E_q[log q(x) - log p~(x)]
 * + log Z.  One step on B fresh base samples z:
 *   y = forward(z) with fldj (taped), x = scaler(y),
 *   loss = mean(log p_base(z) - fldj - sum log std - beta log p~(x))
 *   dL/dy = -beta std * grad log p~(x) / B,  dL/dfldj = -1 / B
 * with beta annealed from 0.01 to 1 over opts->anneal_steps (1 without);
 * the history records the beta = 1 estimate.
 *   forward_backward -> dL/dparams;  optional clipping;  Adam.
 * The base density does not depend on the parameters, so the sampling
 * direction alone is needed: IAF, planar/radial flows and couplings are one
 * pass each.  Every buffer is sized once; a step allocates nothing.
 */
#include "../flow/flow.h"
#include "adam.h"

#include <stdlib.h>
#include <string.h>

nf_status nf_flow_fit_reverse_kl(nf_flow *f, nf_log_density_fn target, void *user, const nf_train_opts *o,
                                 nf_train_report *rep) {
    const char *fn = "nf_flow_fit_reverse_kl";
    NF_TRY(nf__check_train_opts(fn, f, o, rep));
    if (!target) return nf__err(NF_ERR_ARG, "%s: target is NULL", fn);
    if (o->batch == 0 || o->steps == 0) return nf__err(NF_ERR_ARG, "%s: batch and steps must be >= 1", fn);
    if (f->bij->dc) return nf__err(NF_ERR_UNSUPPORTED, "%s: the flow is conditional", fn);
    if (f->base->nparams)
        return nf__err(NF_ERR_UNSUPPORTED, "%s: the base %s is trainable; its samples are not reparameterisable", fn,
                       f->base->name);
    size_t B = o->batch, d = f->d, P = f->bij->nparams;
    nf__bijector_premask(f->bij, NF_PREMASK_APPLY); /* MADE masks: applied once, kept by masked gradients */
    size_t every = o->log_every ? o->log_every : o->steps, nlog = (o->steps + every - 1) / every;
    size_t tb = nf__tape_bytes(f->bij, B), sb = nf__scratch_bytes(f->bij, B), db = nf__dist_scratch(f->base, B);
    size_t blk = nf__align(B * d * sizeof(float)), rb = nf__align(B * sizeof(float)), pb = nf__align(P * sizeof(float));
    unsigned char *mem = nf__aligned_alloc(nf__align(tb) + nf__align(sb) + nf__align(db) + 4 * blk + 4 * rb + 3 * pb);
    double *ht = calloc(nlog, sizeof(double)), *hv = calloc(nlog, sizeof(double));
    nf_rng *rng = NULL;
    nf_status s = mem && ht && hv ? nf_rng_create(o->seed, &rng) : nf__err(NF_ERR_NOMEM, "%s: out of memory", fn);
    if (s) {
        nf__aligned_free(mem), free(ht), free(hv);
        return s;
    }
    unsigned char *cur = mem;
    void *tape = nf__carve(&cur, tb), *scratch = nf__carve(&cur, sb), *dscratch = nf__carve(&cur, db);
    float *z = nf__carve(&cur, B * d * sizeof(float)), *y = nf__carve(&cur, B * d * sizeof(float));
    float *x = nf__carve(&cur, B * d * sizeof(float)), *gx = nf__carve(&cur, B * d * sizeof(float));
    float *lpz = nf__carve(&cur, B * sizeof(float)), *ldj = nf__carve(&cur, B * sizeof(float));
    float *lpt = nf__carve(&cur, B * sizeof(float)), *gl = nf__carve(&cur, B * sizeof(float));
    float *grad = nf__carve(&cur, P * sizeof(float)), *m = nf__carve(&cur, P * sizeof(float));
    float *v = nf__carve(&cur, P * sizeof(float));
    memset(grad, 0, P * sizeof(float)), memset(m, 0, P * sizeof(float)), memset(v, 0, P * sizeof(float));
    nf_adam adam = {o->lr, o->beta1, o->beta2, o->eps, o->weight_decay, 0};
    float *prev = NULL; /* the last good parameters, restored on failure */
    if (!(prev = malloc(P * sizeof(float) + 1))) s = nf__err(NF_ERR_NOMEM, "%s: out of memory", fn);
    double t0 = nf__now(), acc = 0, tl = NAN;
    size_t stepno = 0, inint = 0, logs = 0;
    int stopped = 0;
    for (size_t i = 0; i < B; i++) gl[i] = -1.0f / (float)B;
    while (!s && stepno < o->steps && !stopped) {
        stepno++;
        s = f->base->ops->sample(f->base, dscratch, rng, z, lpz, B);
        memset(ldj, 0, B * sizeof(float));
        nf_pass p = {B, tape, scratch, NULL, 0};
        if (!s) s = f->bij->ops->forward(f->bij, &p, y, ldj, z);
        if (s) break;
        memcpy(x, y, B * d * sizeof(float));
        if (f->has_scaler)
            for (size_t i = 0; i < B; i++)
                for (size_t j = 0; j < d; j++) x[i * d + j] = f->mean[j] + f->std[j] * x[i * d + j];
        size_t bad = nf__first_nonfinite(x, B * d);
        if (bad < B * d) {
            s = nf__err(NF_ERR_NUMERIC, "step %zu: a sample is non-finite (row %zu)", stepno, bad / d);
            break;
        }
        if (target(user, x, B, d, lpt, gx)) {
            s = nf__err(NF_ERR_ARG, "step %zu: the target log-density reported failure", stepno);
            break;
        }
        double loss = 0;
        for (size_t i = 0; i < B; i++) loss += (double)lpz[i] - ldj[i] - f->log_std_sum - lpt[i];
        loss /= (double)B;
        if (!isfinite(loss) || nf__first_nonfinite(gx, B * d) < B * d) {
            s = nf__err(NF_ERR_NUMERIC, "step %zu: the loss or the target's gradient is non-finite (loss %g)", stepno, loss);
            break;
        }
        double beta = o->anneal_steps ? fmin(1.0, 0.01 + (double)(stepno - 1) / (double)o->anneal_steps) : 1.0;
        for (size_t i = 0; i < B; i++)
            for (size_t j = 0; j < d; j++)
                gx[i * d + j] = (float)(-beta * gx[i * d + j] * (f->has_scaler ? f->std[j] : 1.0f) / (double)B);
        s = f->bij->ops->forward_backward(f->bij, &p, NULL, grad, gx, gl, z, y);
        if (s) break;
        double norm = nf__clip_norm(grad, P, o->clip_norm);
        if (!isfinite(norm)) {
            memset(grad, 0, P * sizeof(float));
            s = nf__err(NF_ERR_NUMERIC, "step %zu: the gradient is non-finite", stepno);
            break;
        }
        memcpy(prev, f->bij->params, P * sizeof(float));
        nf__adam_step(&adam, f->bij->params, grad, m, v, P);
        acc += loss, inint++;
        if (inint == every || stepno == o->steps) {
            tl = acc / (double)inint;
            ht[logs] = tl, hv[logs] = NAN;
            logs++, acc = 0, inint = 0;
            if (o->callback) {
                nf_train_progress pr = {stepno, o->steps, 0, 1, tl, NAN};
                if (o->callback(o->user, &pr)) stopped = 1;
            }
        }
    }
    if (s && prev && adam.t) memcpy(f->bij->params, prev, P * sizeof(float)); /* keep the last good step */
    if (rep) {
        rep->steps = s ? stepno - 1 : stepno, rep->train_loss = tl, rep->val_loss = rep->best_val_loss = NAN;
        rep->stopped_early = stopped, rep->seconds = nf__now() - t0;
        if (s) free(ht), free(hv);
        else rep->train_history = ht, rep->val_history = hv, rep->n_history = logs;
    } else
        free(ht), free(hv);
    free(prev);
    nf_rng_free(rng);
    nf__aligned_free(mem);
    return s ? nf__err_prefix(s, fn) : NF_OK;
}
