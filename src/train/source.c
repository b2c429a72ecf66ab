/*
 * source.c - the batch sources of the training loop: rows of an array in
 * shuffled epochs, a sampler callback (fresh rows every step), and base
 * samples (reverse KL).  Each fills t->x (model space) and t->ctx.
 */
#include "trainer.h"

#include <stdlib.h>
#include <string.h>

/* Batch row i from a user row: its first d values (x), then the context. */
static void put_row(nf_trainer *t, size_t i, const float *row) {
    memcpy(t->x + i * t->d, row, t->d * sizeof(float));
    if (t->dc) memcpy(t->ctx + i * t->dc, row + t->d, t->dc * sizeof(float));
}

/* The next stepB rows of the epoch (fewer at its end); a new epoch starts
 * with a fresh permutation, which depends on the RNG alone. */
static nf_status array_next(nf_source *src, nf_trainer *t, nf_rng *rng, size_t *k) {
    size_t ntr = src->ntr, *idx = src->idx;
    if (src->pos == 0) {
        for (size_t i = 0; i < ntr; i++) idx[i] = i;
        for (size_t i = ntr; i-- > 1;) { /* Fisher-Yates */
            size_t j = (size_t)nf_rng_below(rng, i + 1), tmp = idx[i];
            idx[i] = idx[j];
            idx[j] = tmp;
        }
    }
    size_t r = src->pos, n = ntr - r < src->step ? ntr - r : src->step;
    if (src->nsteps) /* across processes: part j of this process's rows */
        n = nf__part(ntr, src->nsteps, src->j + 1) - r;
    for (size_t i = 0; i < n; i++) put_row(t, i, src->data + idx[r + i] * src->D);
    if (src->vnoise) /* dequantisation: fresh U(0, 1) noise on every value, every epoch */
        for (size_t q = 0; q < n * t->d; q++) t->x[q] += nf_rng_uniform(rng);
    nf__flow_scale_in(t->f, t->x, n);
    if (src->nsteps) {
        src->j = src->j + 1 == src->nsteps ? 0 : src->j + 1;
        src->wrapped = src->j == 0;
        src->pos = src->wrapped ? 0 : r + n;
    } else {
        src->pos = r + n == ntr ? 0 : r + n;
        src->wrapped = src->pos == 0;
    }
    *k = n;
    return NF_OK;
}

nf_status nf__source_array(nf_source *src, const float *data, size_t ntr, size_t nval, size_t D, size_t step) {
    memset(src, 0, sizeof *src);
    src->mode = "epochs";
    src->next = array_next;
    src->data = data;
    src->ntr = ntr;
    src->nval = nval;
    src->D = D;
    src->step = step;
    src->idx = malloc((ntr ? ntr : 1) * sizeof(size_t));
    return src->idx ? NF_OK : nf__err(NF_ERR_NOMEM, "out of memory");
}

nf_status nf__source_dequantize(nf_source *src, size_t d, uint64_t seed) {
    src->vnoise = malloc(src->nval * d * sizeof(float) + 1);
    nf_rng *r = NULL;
    if (!src->vnoise || nf_rng_create(seed, &r)) return nf__err(NF_ERR_NOMEM, "out of memory");
    for (size_t q = 0; q < src->nval * d; q++) src->vnoise[q] = nf_rng_uniform(r);
    nf_rng_free(r);
    return NF_OK;
}

void nf__source_free(nf_source *src) {
    free(src->idx);
    free(src->vnoise);
    src->vnoise = NULL;
    src->idx = NULL;
}

/* stepB rows drawn by the user's sampler: [x | context] each. */
static nf_status sampler_next(nf_source *src, nf_trainer *t, nf_rng *rng, size_t *k) {
    size_t n = src->step, D = t->d + t->dc;
    float *rows = t->dc ? t->raw : t->x;
    int rc = src->draw(src->user, rng, rows, n);
    if (rc) return nf__err(NF_ERR_ARG, "the sampler reported failure (code %d)", rc);
    NF_TRY(nf__check_finite("a sampled batch", rows, n, D));
    for (size_t i = 0; t->dc && i < n; i++) put_row(t, i, t->raw + i * D);
    nf__flow_scale_in(t->f, t->x, n);
    *k = n;
    return NF_OK;
}

nf_source nf__source_sampler(nf_sampler_fn draw, void *user, size_t step) {
    nf_source s = {0};
    s.mode = "stream";
    s.next = sampler_next;
    s.draw = draw;
    s.user = user;
    s.step = step;
    return s;
}

/* stepB base samples z and their log-densities (reverse KL). */
static nf_status base_next(nf_source *src, nf_trainer *t, nf_rng *rng, size_t *k) {
    const nf_dist *base = t->f->base;
    *k = src->step;
    return base->ops->sample(base, t->dscratch, rng, t->x, t->lpb, src->step);
}

nf_source nf__source_base(size_t step) {
    nf_source s = {0};
    s.mode = "reverse_kl";
    s.next = base_next;
    s.step = step;
    return s;
}

/* The mean NLL of the array source's validation rows, in batches of t->B
 * (rows the model maps out of float range or out of its support have
 * density 0, as nf_flow_log_prob's -inf: the NLL is +inf and early stopping
 * goes on). */
static nf_status local_validation(nf_source *src, nf_trainer *t, double *acc) {
    const float *data = src->data + src->ntr * src->D;
    size_t n = src->nval;
    *acc = 0;
    for (size_t r = 0; r < n; r += t->B) {
        size_t k = n - r < t->B ? n - r : t->B;
        for (size_t i = 0; i < k; i++) put_row(t, i, data + (r + i) * src->D);
        for (size_t q = 0; src->vnoise && q < k * t->d; q++) t->x[q] += src->vnoise[r * t->d + q]; /* one fixed draw */
        nf__flow_scale_in(t->f, t->x, k);
        double l;
        nf_status s = nf__trainer_eval(t, k, 0, &l);
        if (s == NF_ERR_NUMERIC || s == NF_ERR_DOMAIN) {
            *acc = INFINITY;
            return NF_OK;
        }
        NF_TRY(s);
        *acc += l * (double)k;
    }
    return NF_OK;
}

nf_status nf__source_validation(nf_source *src, nf_trainer *t, double *nll) {
    double acc;
    nf_status s = local_validation(src, t, &acc);
    if (!t->comm) {
        *nll = acc / (double)src->nval;
        return s;
    }
    /* across processes: the sums of every process's rows, and any failure */
    int inf = !s && isinf(acc);
    double v[4] = {s || inf ? 0 : acc, (double)src->nval, (double)inf, s ? 1 : 0};
    nf_status cs = nf__comm_sum_d(t->comm, v, 4);
    if (s || cs) return s ? s : cs;
    if (v[3] > 0) return nf__err(NF_ERR_ARG, "%g other process%s failed in validation", v[3], v[3] > 1 ? "es" : "");
    *nll = v[2] > 0 ? INFINITY : v[0] / v[1];
    return NF_OK;
}
