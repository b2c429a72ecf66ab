/*
 * objective_nll.c - maximum likelihood: the mean negative log-likelihood of a
 * batch X (model space, after the scaler), through the inverse (density
 * direction):
 *   Z = inverse(X) with ildj (taped),  loss = -mean(log p_base(Z) + ildj) + sum log std
 *   dL/dZ = -grad log p_base(Z) / k,   dL/dildj = -1 / k
 *   inverse_backward -> dL/dparams; a trainable base adds its own gradient.
 */
#include "trainer.h"

#include <string.h>

static void nll_run(nf_trainer *t, nf_slot *w, size_t r0, size_t m, size_t k, int grad) {
    const nf_flow *f = t->f;
    size_t d = t->d, s = (size_t)(w - t->slots);
    const float *x = t->x + r0 * d;
    float *z = w->u, *gz = w->v;
    memset(w->ldj, 0, m * sizeof(float));
    nf_pass p = {
        m, grad ? w->tape : NULL, w->bscratch, t->ctx ? t->ctx + r0 * t->dc : NULL, grad ? (s == 0 ? 2 : 1) : 0, t->be};
    nf_status st = f->bij->ops->inverse(f->bij, &p, z, w->ldj, x);
    if (!st) st = f->base->ops->log_prob(f->base, w->dscratch, w->lp, z, m);
    for (size_t i = 0; !st && i < m; i++) w->sum += (double)w->lp[i] + w->ldj[i];
    if (!st && grad && isfinite(w->sum)) {
        st = f->base->ops->log_prob_grad(f->base, gz, z, m);
        float inv = -1.0f / (float)k;
        for (size_t i = 0; !st && i < m * d; i++) gz[i] *= inv;
        for (size_t i = 0; !st && i < m; i++) w->gl[i] = inv;
        if (!st) st = f->bij->ops->inverse_backward(f->bij, &p, NULL, w->grad, gz, w->gl, x, z);
        if (!st && f->base->nparams) /* a trainable base: its parameters follow the bijector's */
            st = f->base->ops->param_grad(f->base, w->grad + f->Pb, w->gl, z, m);
    }
    w->st = st;
}

static double nll_loss(const nf_trainer *t, double sum, size_t k) { return -sum / (double)k + t->f->log_std_sum; }

const nf_objective nf__objective_nll = {"nll", nll_run, nll_loss};
