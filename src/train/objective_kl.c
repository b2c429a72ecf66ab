/*
 * objective_kl.c - variational fitting (Rezende & Mohamed 2015): minimise
 * KL(q || p) = E_q[log q(x) - log p~(x)] + log Z.  The batch holds base
 * samples z with their log-densities (the base-sample source); per slot:
 *   y = forward(z) with fldj (taped), x = scaler(y),
 *   loss = mean(log p_base(z) - fldj - sum log std - beta log p~(x))
 *   dL/dy = -beta std * grad log p~(x) / k,  dL/dfldj = -1 / k
 *   forward_backward -> dL/dparams
 * with beta annealed from 0.01 to 1 over anneal_steps (1 without); the loss
 * reported is the beta = 1 estimate.  The base density does not depend on
 * the parameters, so only the sampling direction is needed: IAF,
 * planar/radial flows and couplings are one pass each.  With several
 * threads the target is called from each, on disjoint rows.
 */
#include "trainer.h"

#include <string.h>

static void kl_run(nf_trainer *t, nf_slot *w, size_t r0, size_t m, size_t k, int grad) {
    const nf_flow *f = t->f;
    size_t d = t->d;
    const float *z = t->x + r0 * d, *lpz = t->lpb + r0;
    float *y = w->u, *x = w->v, *gx = w->w, *lpt = w->lt;
    memset(w->ldj, 0, m * sizeof(float));
    nf_pass p = {m, grad ? w->tape : NULL, w->bscratch, NULL, 0, t->be};
    nf_status st = f->bij->ops->forward(f->bij, &p, y, w->ldj, z);
    if (st) goto out;
    memcpy(x, y, m * d * sizeof(float));
    if (f->has_scaler)
        for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < d; j++) x[i * d + j] = f->mean[j] + f->std[j] * x[i * d + j];
    size_t bad = nf__first_nonfinite(x, m * d);
    if (bad < m * d) {
        st = nf__err(NF_ERR_NUMERIC, "a sample is non-finite (row %zu)", r0 + bad / d);
        goto out;
    }
    if (t->target(t->target_user, x, m, d, lpt, gx)) {
        st = nf__err(NF_ERR_ARG, "the target log-density reported failure");
        goto out;
    }
    for (size_t i = 0; i < m; i++) w->sum += (double)lpz[i] - w->ldj[i] - f->log_std_sum - lpt[i];
    if (!isfinite(w->sum) || nf__first_nonfinite(gx, m * d) < m * d) {
        st = nf__err(NF_ERR_NUMERIC, "the loss or the target's gradient is non-finite (loss %g)", w->sum / (double)m);
        goto out;
    }
    if (!grad) goto out;
    double beta = t->anneal_steps ? fmin(1.0, 0.01 + (double)(t->stepno - 1) / (double)t->anneal_steps) : 1.0;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < d; j++)
            gx[i * d + j] = (float)(-beta * gx[i * d + j] * (f->has_scaler ? f->std[j] : 1.0f) / (double)k);
    for (size_t i = 0; i < m; i++) w->gl[i] = -1.0f / (float)k;
    st = f->bij->ops->forward_backward(f->bij, &p, NULL, w->grad, gx, w->gl, z, y);
out:
    w->st = st;
}

static double kl_loss(const nf_trainer *t, double sum, size_t k) {
    (void)t;
    return sum / (double)k;
}

const nf_objective nf__objective_reverse_kl = {"reverse_kl", kl_run, kl_loss};
