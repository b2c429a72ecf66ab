/*
 * flow.c - a flow: a base distribution, a bijector (forward: base -> data)
 * and an optional standard scaler, so that the user's units are kept:
 *   log p(x) = log p_base(z) + ildj(y) - sum log std,
 *   y = (x - mean) / std,  z = bijector.inverse(y).
 * One-off calls process NF_FLOW_CHUNK rows at a time with one workspace.
 */
#include "flow.h"
#include "../device/prog.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

nf_status nf_flow_create(nf_bijector *b, nf_dist *base, nf_flow **out) {
    const char *fn = "nf_flow_create";
    if (!out) return nf__err(NF_ERR_ARG, "%s: out is NULL", fn);
    *out = NULL;
    if (!b) return nf__err(NF_ERR_ARG, "%s: bijector is NULL", fn);
    if (base && base->d != b->d)
        return nf__err(NF_ERR_SHAPE, "%s: base %s has dimension %zu, bijector %s has %zu", fn, base->name,
                       base->d, b->name, b->d);
    if (base && !base->ops->log_prob_grad)
        return nf__err(NF_ERR_UNSUPPORTED, "%s: base %s has no log-density gradient, so it cannot be trained over", fn, base->name);
    nf_flow *f = calloc(1, sizeof *f);
    if (!f) return nf__err(NF_ERR_NOMEM, "%s: out of memory", fn);
    if (!base) {
        nf_status s = nf_dist_mvn_diag(b->d, NULL, NULL, &f->base);
        if (s) {
            free(f);
            return nf__err_prefix(s, fn);
        }
    } else
        f->base = base;
    f->bij = b;
    f->d = b->d;
    f->Pb = b->nparams, f->P = b->nparams + f->base->nparams, f->params = b->params;
    if (f->base->nparams) { /* one buffer: the bijector's parameters, then the base's */
        float *all = malloc(f->P * sizeof(float));
        if (!all) {
            free(f);
            return nf__err(NF_ERR_NOMEM, "%s: out of memory", fn);
        }
        nf__bijector_bind(b, all);
        memcpy(all + f->Pb, f->base->params, f->base->nparams * sizeof(float));
        if (f->base->owns_params) free(f->base->params);
        f->base->params = all + f->Pb, f->base->owns_params = 0;
        f->params = all, f->owns_params = 1;
    }
    *out = f;
    return NF_OK;
}

nf_status nf__flow_tensors(const nf_flow *f, nf_tensor_fn fn, void *ctx) {
    NF_TRY(nf__bijector_tensors(f->bij, "", 0, fn, ctx));
    if (!f->base->nparams) return NF_OK;
    if (f->base->ops->tensors) return f->base->ops->tensors(f->base, "base.", f->Pb, fn, ctx);
    return nf__emit(fn, ctx, "base.", "params", f->Pb, 0, f->base->nparams);
}

void nf_flow_free(nf_flow *f) {
    if (!f) return;
    if (f->names) nf_free_names(f->names, f->d + f->bij->dc); /* before the bijector that says how many */
    nf__flow_dev_free(f->dev);
    nf_bijector_free(f->bij);
    nf_dist_free(f->base);
    if (f->owns_params) free(f->params);
    free(f->mean);
    free(f->std);
    free(f->spec);
    free(f);
}

size_t nf_flow_dim(const nf_flow *f) { return f ? f->d : 0; }
size_t nf_flow_param_count(const nf_flow *f) { return f ? f->P : 0; }
/* The caller may write the buffer: the passes stop trusting that masked
 * MADE weights are zero until the masks are applied again (nn.h). */
float *nf_flow_params(nf_flow *f) {
    if (!f) return NULL;
    nf__bijector_premask(f->bij, 0);
    return f->params;
}
const nf_bijector *nf_flow_bijector(const nf_flow *f) { return f ? f->bij : NULL; }
const char *nf_flow_spec(const nf_flow *f) { return f && f->spec ? f->spec : NULL; }

int nf_flow_scaler(const nf_flow *f, const float **mean, const float **std) {
    if (!f || !f->has_scaler) return 0;
    if (mean) *mean = f->mean;
    if (std) *std = f->std;
    return 1;
}

nf_status nf_flow_set_scaler(nf_flow *f, const float *mean, const float *std) {
    const char *fn = "nf_flow_set_scaler";
    if (!f) return nf__err(NF_ERR_ARG, "%s: flow is NULL", fn);
    if (!mean || !std) {
        f->has_scaler = 0;
        return NF_OK;
    }
    for (size_t j = 0; j < f->d; j++)
        if (!isfinite(mean[j]) || !isfinite(std[j]) || !(std[j] > 0))
            return nf__err(NF_ERR_DOMAIN, "%s: column %zu: mean %g and std %g must be finite with std > 0", fn, j,
                           (double)mean[j], (double)std[j]);
    if (!f->mean) {
        f->mean = malloc(f->d * sizeof(float));
        f->std = malloc(f->d * sizeof(float));
        if (!f->mean || !f->std) return nf__err(NF_ERR_NOMEM, "%s: out of memory", fn);
    }
    memcpy(f->mean, mean, f->d * sizeof(float));
    memcpy(f->std, std, f->d * sizeof(float));
    f->log_std_sum = 0;
    for (size_t j = 0; j < f->d; j++) f->log_std_sum += log((double)std[j]);
    f->has_scaler = 1;
    return NF_OK;
}

nf_status nf_flow_data_init(nf_flow *f, const float *x, size_t n) {
    const char *fn = "nf_flow_data_init";
    if (!f || !x || n == 0) return nf__err(NF_ERR_ARG, "%s: needs a flow and at least 1 row", fn);
    nf_status s = nf__check_finite("data", x, n, f->d);
    if (s) return nf__err_prefix(s, fn);
    if (f->bij->dc) return nf__err(NF_ERR_UNSUPPORTED, "%s: a conditional flow initialises in nf_flow_fit", fn);
    float *y = malloc(n * f->d * sizeof(float));
    if (!y) return nf__err(NF_ERR_NOMEM, "%s: out of memory", fn);
    memcpy(y, x, n * f->d * sizeof(float));
    nf__flow_scale_in(f, y, n);
    s = nf__bijector_data_init(f->bij, y, NULL, n);
    free(y);
    return s ? nf__err_prefix(s, fn) : NF_OK;
}

nf_status nf_flow_fit_scaler(nf_flow *f, const float *x, size_t n) { return nf__flow_fit_scaler(f, x, n, NULL); }

/* The column sums of n rows (width D, the first d columns) into acc[0..d)
 * and the count into acc[d]; across processes, summed over all. */
static nf_status column_sums(const nf_comm *comm, const float *x, size_t n, size_t d, size_t D, const double *mean,
                             double *acc) {
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) {
            double c = mean ? x[i * D + j] - mean[j] : x[i * D + j];
            acc[j] += mean ? c * c : c;
        }
    acc[d] = (double)n;
    return nf__comm_on(comm) ? nf__comm_sum_d(comm, acc, d + 1) : NF_OK;
}

nf_status nf__flow_fit_scaler(nf_flow *f, const float *x, size_t n, const nf_comm *comm) {
    const char *fn = "nf_flow_fit_scaler";
    int many = nf__comm_on(comm);
    if (!f || (!x && n)) return nf__err(NF_ERR_ARG, "%s: needs a flow and rows", fn);
    size_t d = f->d, D = d + f->bij->dc; /* rows of a conditional flow end with the context */
    nf_status s = nf__check_finite("data", x, n, D);
    double *acc = calloc(2 * d + 2, sizeof(double));
    float *m = malloc(2 * d * sizeof(float));
    if (!s && (!acc || !m)) s = nf__err(NF_ERR_NOMEM, "%s: out of memory", fn);
    if (many) s = nf__comm_agree(comm, s); /* every process's rows are fine, or none goes on */
    if (!s) s = column_sums(comm, x, n, d, D, NULL, acc); /* acc[d]: the rows of all processes */
    double rows = acc ? acc[d] : 0;
    if (!s && rows < 2) s = nf__err(NF_ERR_ARG, "%s: needs at least 2 rows", fn);
    for (size_t j = 0; !s && j < d; j++) acc[j] /= rows;
    if (!s) s = column_sums(comm, x, n, d, D, acc, acc + d + 1);
    if (s) {
        free(acc);
        free(m);
        return nf__err_prefix(s, fn);
    }
    memmove(acc + d, acc + d + 1, d * sizeof(double));
    char list[512] = "";
    size_t nconst = 0, len = 0;
    for (size_t j = 0; j < d; j++) {
        m[j] = (float)acc[j];
        m[d + j] = (float)sqrt(acc[d + j] / rows); /* population std, as scikit-learn */
        if (!(m[d + j] > 0) && len + 24 < sizeof list) /* every constant column, named at once */
            len += (size_t)snprintf(list + len, sizeof list - len, "%s%zu", nconst++ ? ", " : "", j);
        else if (!(m[d + j] > 0))
            nconst++;
    }
    if (nconst)
        s = nf__err(NF_ERR_DOMAIN, "%s: %zu constant column%s (std 0, 0-based): %s%s", fn, nconst, nconst > 1 ? "s" : "", list,
                    len + 24 >= sizeof list ? ", ..." : "");
    if (!s) s = nf_flow_set_scaler(f, m, m + d);
    free(acc);
    free(m);
    return s;
}

void nf__flow_scale_in(const nf_flow *f, float *x, size_t n) {
    if (!f->has_scaler) return;
    size_t d = f->d;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) x[i * d + j] = (x[i * d + j] - f->mean[j]) / f->std[j];
}

static void scale_out(const nf_flow *f, float *x, size_t n) {
    if (!f->has_scaler) return;
    size_t d = f->d;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) x[i * d + j] = f->mean[j] + f->std[j] * x[i * d + j];
}

/* One workspace for chunks of m rows: bijector scratch, base scratch, two
 * n x d buffers and one of n floats. */
typedef struct fws {
    unsigned char *mem;
    void *bscratch, *dscratch;
    float *a, *b, *l;
} fws;

static nf_status ws_alloc(const nf_flow *f, size_t m, fws *w) {
    size_t bs = nf__scratch_bytes(f->bij, m), ds = nf__dist_scratch(f->base, m);
    size_t blk = nf__align(m * f->d * sizeof(float));
    w->mem = nf__aligned_alloc(nf__align(bs) + nf__align(ds) + 2 * blk + nf__align(m * sizeof(float)));
    if (!w->mem) return nf__err(NF_ERR_NOMEM, "out of memory for a workspace of %zu rows", m);
    unsigned char *cur = w->mem;
    w->bscratch = nf__carve(&cur, bs);
    w->dscratch = nf__carve(&cur, ds);
    w->a = nf__carve(&cur, m * f->d * sizeof(float));
    w->b = nf__carve(&cur, m * f->d * sizeof(float));
    w->l = nf__carve(&cur, m * sizeof(float));
    return NF_OK;
}

static size_t chunk_of(size_t n) { return n < NF_FLOW_CHUNK ? n : NF_FLOW_CHUNK; }

static nf_status check_call(const char *fn, const nf_flow *f, const void *a, const void *b, size_t n) {
    if (!f) return nf__err(NF_ERR_ARG, "%s: flow is NULL", fn);
    if (n && (!a || !b)) return nf__err(NF_ERR_ARG, "%s: NULL array", fn);
    return NF_OK;
}

/* A conditional flow needs n x dc context rows, an unconditional one none. */
static nf_status check_ctx(const char *fn, const nf_flow *f, const float *ctx, size_t n) {
    size_t dc = f->bij->dc;
    if (dc && !ctx)
        return nf__err(NF_ERR_ARG, "%s: the flow is conditional: it needs a context of %zu values per row (%s_ctx)", fn, dc,
                       fn);
    if (!dc && ctx) return nf__err(NF_ERR_ARG, "%s: the flow is not conditional; pass no context", fn);
    nf_status s = ctx ? nf__check_finite("context", ctx, n, dc) : NF_OK;
    return s ? nf__err_prefix(s, fn) : NF_OK;
}

static nf_status nonfinite_out(const char *what, const float *v, size_t m, size_t width, size_t row0) {
    size_t k = nf__first_nonfinite(v, m * width);
    if (k == m * width) return NF_OK;
    return nf__err(NF_ERR_NUMERIC, "%s is non-finite (%g) at row %zu", what, (double)v[k], row0 + k / width);
}

/* ---- chunked passes, optionally over several threads ---------------------- */

/* One chunk [r, r + k) of a pass, with the calling thread's workspace. */
typedef nf_status (*chunk_fn)(const void *job, fws *w, size_t r, size_t k);

typedef struct chunk_worker {
    const nf_flow *f;
    chunk_fn fn;
    const void *job;
    size_t n, m, t, T; /* rows, chunk size, this worker, workers */
    nf_status st;
    size_t bad_row;    /* first row of the failing chunk */
    char msg[512];
} chunk_worker;

/* Worker t runs chunks t, t + T, t + 2T, ... and stops at its first failure. */
static void *chunk_main(void *arg) {
    chunk_worker *c = arg;
    fws w;
    c->st = ws_alloc(c->f, c->m, &w);
    if (c->st) {
        c->bad_row = 0;
        snprintf(c->msg, sizeof c->msg, "%s", nf_last_error());
        return NULL;
    }
    for (size_t r = c->t * c->m; r < c->n && !c->st; r += c->T * c->m) {
        size_t k = c->n - r < c->m ? c->n - r : c->m;
        c->st = c->fn(c->job, &w, r, k);
        if (c->st) c->bad_row = r, snprintf(c->msg, sizeof c->msg, "%s", nf_last_error());
    }
    nf__aligned_free(w.mem);
    return NULL;
}

/* Runs fn over the chunks of n rows on f->threads threads (each with its own
 * workspace; the chunks are independent, so the results do not depend on the
 * thread count).  On failure the earliest failing chunk's error is reported. */
static nf_status run_chunks(const nf_flow *f, size_t n, chunk_fn fn, const void *job) {
    size_t m = chunk_of(n), nchunks = (n + m - 1) / m, T = f->threads > 1 ? f->threads : 1;
    if (T > nchunks) T = nchunks;
    chunk_worker c[NF_FLOW_MAX_THREADS];
    pthread_t th[NF_FLOW_MAX_THREADS];
    int started[NF_FLOW_MAX_THREADS] = {0};
    nf_blas_guard bg;
    nf__blas_enter(&bg); /* one BLAS thread inside nflow's threads */
    for (size_t t = 0; t < T; t++) c[t] = (chunk_worker){f, fn, job, n, m, t, T, NF_OK, 0, {0}};
    for (size_t t = 1; t < T; t++) started[t] = pthread_create(&th[t], NULL, chunk_main, &c[t]) == 0;
    chunk_main(&c[0]);
    for (size_t t = 1; t < T; t++) {
        if (started[t]) pthread_join(th[t], NULL);
        else chunk_main(&c[t]); /* no thread could be started: run its share here */
    }
    nf__blas_leave(&bg);
    size_t worst = T;
    for (size_t t = 0; t < T; t++)
        if (c[t].st && (worst == T || c[t].bad_row < c[worst].bad_row)) worst = t;
    return worst == T ? NF_OK : nf__err(c[worst].st, "%s", c[worst].msg);
}

typedef struct density_job {
    const nf_flow *f;
    const float *x, *ctx;
    float *lp, *z;
} density_job;

/* to_base: lp == NULL; log_prob: z == NULL. */
static nf_status density_chunk(const void *jp, fws *w, size_t r, size_t k) {
    const density_job *J = jp;
    const nf_flow *f = J->f;
    size_t d = f->d, dc = f->bij->dc;
    float *lp = J->lp, *z = J->z;
    memcpy(w->a, J->x + r * d, k * d * sizeof(float));
    nf__flow_scale_in(f, w->a, k);
    memset(w->l, 0, k * sizeof(float));
    const float *cr = J->ctx ? J->ctx + r * dc : NULL;
    nf_pass p = {k, NULL, w->bscratch, cr, 0, f->be};
    float *zz = z ? z + r * d : w->b;
    nf_status s = f->bij->ops->inverse(f->bij, &p, zz, lp ? w->l : NULL, w->a);
    if (!s) s = nonfinite_out("the base-space point", zz, k, d, r);
    if (s == NF_ERR_NUMERIC && lp) {
        /* Some row's base-space point overflows float: its density is 0.
         * Redo the chunk row by row; overflowing rows get log p = -inf. */
        s = NF_OK;
        for (size_t i = 0; i < k && !s; i++) {
            nf_pass q = {1, NULL, w->bscratch, cr ? cr + i * dc : NULL, 0, f->be};
            w->l[i] = 0;
            nf_status si = f->bij->ops->inverse(f->bij, &q, zz + i * d, &w->l[i], w->a + i * d);
            if (!si) si = nonfinite_out("the base-space point", zz + i * d, 1, d, r + i);
            if (si == NF_ERR_NUMERIC) {
                for (size_t j = 0; j < d; j++) zz[i * d + j] = 0;
                w->l[i] = -INFINITY;
            } else
                s = si;
        }
    }
    if (!s && lp) {
        s = f->base->ops->log_prob(f->base, w->dscratch, lp + r, zz, k);
        for (size_t i = 0; i < k && !s; i++) {
            lp[r + i] = (float)((double)lp[r + i] + w->l[i] - f->log_std_sum);
            if (isnan(lp[r + i])) s = nf__err(NF_ERR_NUMERIC, "log_prob is NaN at row %zu", r + i);
        }
    }
    return s;
}

/* On the flow's device; rows it gives a non-finite log-density are done
 * again by the CPU's passes (which tell a point the model maps out of range,
 * log p = -inf, from a NaN). */
static nf_status dev_density(const nf_flow *f, const density_job *J, size_t n) {
    NF_TRY(nf__flow_dev_density(f, J->x, J->ctx, n, J->lp, J->z));
    size_t d = f->d;
    for (size_t i = 0; i < n; i++) {
        int bad = J->lp ? !isfinite(J->lp[i]) : 0;
        for (size_t j = 0; J->z && j < d; j++) bad |= !isfinite(J->z[i * d + j]);
        if (J->lp && !bad) J->lp[i] = (float)((double)J->lp[i] - f->log_std_sum);
        if (!bad) continue;
        density_job one = {f, J->x + i * d, J->ctx ? J->ctx + i * f->bij->dc : NULL, J->lp ? J->lp + i : NULL,
                           J->z ? J->z + i * d : NULL};
        nf_status s = run_chunks(f, 1, density_chunk, &one);
        if (s) {
            char head[64];
            snprintf(head, sizeof head, "row %zu (done again on the CPU)", i);
            return nf__err_prefix(s, head);
        }
    }
    return NF_OK;
}

static nf_status density(const char *fn, const nf_flow *f, const float *x, const float *ctx, size_t n, float *lp,
                         float *z) {
    NF_TRY(check_call(fn, f, x, lp ? (void *)lp : (void *)z, n));
    if (n == 0) return NF_OK;
    NF_TRY(check_ctx(fn, f, ctx, n));
    nf_status s = nf__check_finite("input x", x, n, f->d);
    if (s) return nf__err_prefix(s, fn);
    density_job J = {f, x, ctx, lp, z};
    s = f->dev ? dev_density(f, &J, n) : run_chunks(f, n, density_chunk, &J);
    return s ? nf__err_prefix(s, fn) : NF_OK;
}

nf_status nf_flow_log_prob(const nf_flow *f, const float *x, size_t n, float *out) {
    return density("nf_flow_log_prob", f, x, NULL, n, out, NULL);
}

nf_status nf_flow_log_prob_ctx(const nf_flow *f, const float *x, const float *ctx, size_t n, float *out) {
    return density("nf_flow_log_prob_ctx", f, x, ctx, n, out, NULL);
}

nf_status nf_flow_to_base(const nf_flow *f, const float *x, size_t n, float *z) {
    return density("nf_flow_to_base", f, x, NULL, n, NULL, z);
}

size_t nf_flow_context_dim(const nf_flow *f) { return f ? f->bij->dc : 0; }

nf_status nf_flow_set_threads(nf_flow *f, size_t threads) {
    if (!f || threads == 0 || threads > NF_FLOW_MAX_THREADS)
        return nf__err(NF_ERR_ARG, "nf_flow_set_threads: needs a flow and 1..%d threads, got %zu", NF_FLOW_MAX_THREADS,
                       threads);
    f->threads = threads;
    return NF_OK;
}

typedef struct draw_job {
    const nf_flow *f;
    const float *ctx;
    float *x, *lp; /* x holds the base samples on entry */
} draw_job;

static nf_status draw_chunk(const void *jp, fws *w, size_t r, size_t k) {
    const draw_job *J = jp;
    const nf_flow *f = J->f;
    size_t d = f->d, dc = f->bij->dc;
    float *x = J->x, *lp = J->lp;
    memcpy(w->a, x + r * d, k * d * sizeof(float));
    memset(w->l, 0, k * sizeof(float));
    nf_pass p = {k, NULL, w->bscratch, J->ctx ? J->ctx + r * dc : NULL, 0, f->be};
    nf_status s = f->bij->ops->forward(f->bij, &p, x + r * d, lp ? w->l : NULL, w->a);
    if (!s) s = nonfinite_out("a sample", x + r * d, k, d, r);
    if (s) return s;
    scale_out(f, x + r * d, k);
    if (lp)
        for (size_t i = 0; i < k; i++) lp[r + i] = (float)((double)lp[r + i] - w->l[i] - f->log_std_sum);
    return NF_OK;
}

/* Samples on the flow's device: the base points from rng's words as the
 * CPU draws them (nf__dprog_sample), mapped forward there. */
static nf_status dev_draw(const nf_flow *f, nf_rng *rng, const float *ctx, size_t n, float *x, float *lp) {
    float *fl = lp ? calloc(n, sizeof(float)) : NULL;
    if (lp && !fl) return nf__err(NF_ERR_NOMEM, "out of memory");
    nf_status s = nf__flow_dev_sample(f, rng, ctx, n, x, lp, fl);
    if (!s) s = nonfinite_out("a sample", x, n, f->d, 0);
    if (!s) scale_out(f, x, n);
    for (size_t i = 0; !s && lp && i < n; i++) lp[i] = (float)((double)lp[i] - fl[i] - f->log_std_sum);
    free(fl);
    return s;
}

/* The base samples are drawn first, chunk by chunk on the calling thread (the
 * generator's stream is the same for any thread count), then mapped forward
 * in parallel chunks. */
static nf_status draw(const char *fn, const nf_flow *f, nf_rng *rng, const float *ctx, size_t n, float *x,
                      float *lp) {
    NF_TRY(check_call(fn, f, x, x, n));
    if (!rng) return nf__err(NF_ERR_ARG, "%s: rng is NULL", fn);
    if (n == 0) return NF_OK;
    NF_TRY(check_ctx(fn, f, ctx, n));
    if (f->dev) {
        nf_status ds = dev_draw(f, rng, ctx, n, x, lp);
        return ds ? nf__err_prefix(ds, fn) : NF_OK;
    }
    size_t d = f->d, m = chunk_of(n);
    void *ds = nf__aligned_alloc(nf__dist_scratch(f->base, m));
    nf_status s = ds ? NF_OK : nf__err(NF_ERR_NOMEM, "out of memory");
    for (size_t r = 0; r < n && !s; r += m) {
        size_t k = n - r < m ? n - r : m;
        s = f->base->ops->sample(f->base, ds, rng, x + r * d, lp ? lp + r : NULL, k);
    }
    nf__aligned_free(ds);
    draw_job J = {f, ctx, x, lp};
    if (!s) s = run_chunks(f, n, draw_chunk, &J);
    return s ? nf__err_prefix(s, fn) : NF_OK;
}

nf_status nf_flow_sample(const nf_flow *f, nf_rng *rng, size_t n, float *x) {
    return draw("nf_flow_sample", f, rng, NULL, n, x, NULL);
}

nf_status nf_flow_sample_ctx(const nf_flow *f, nf_rng *rng, const float *ctx, size_t n, float *x) {
    return draw("nf_flow_sample_ctx", f, rng, ctx, n, x, NULL);
}

nf_status nf_flow_sample_and_log_prob(const nf_flow *f, nf_rng *rng, size_t n, float *x, float *lp) {
    if (n && !lp) return nf__err(NF_ERR_ARG, "nf_flow_sample_and_log_prob: log_prob array is NULL");
    return draw("nf_flow_sample_and_log_prob", f, rng, NULL, n, x, lp);
}

nf_status nf_flow_sample_and_log_prob_ctx(const nf_flow *f, nf_rng *rng, const float *ctx, size_t n, float *x,
                                          float *lp) {
    if (n && !lp) return nf__err(NF_ERR_ARG, "nf_flow_sample_and_log_prob_ctx: log_prob array is NULL");
    return draw("nf_flow_sample_and_log_prob_ctx", f, rng, ctx, n, x, lp);
}

size_t nf_flow_stage_count(const nf_flow *f) {
    if (!f) return 0;
    nf_bijector *const *parts;
    size_t k = nf__bijector_parts(f->bij, &parts);
    return 1 + (k ? k : 1) + (f->has_scaler ? 1 : 0);
}

nf_status nf_flow_sample_stages(const nf_flow *f, nf_rng *rng, size_t n, float *out, const char **names) {
    const char *fn = "nf_flow_sample_stages";
    NF_TRY(check_call(fn, f, out, out, n));
    if (!rng) return nf__err(NF_ERR_ARG, "%s: rng is NULL", fn);
    if (f->bij->dc) return nf__err(NF_ERR_UNSUPPORTED, "%s: not available for a conditional flow", fn);
    nf_bijector *const *parts;
    nf_bijector *single[1] = {f->bij};
    size_t k = nf__bijector_parts(f->bij, &parts);
    if (!k) parts = single, k = 1;
    size_t d = f->d, blk = n * d;
    if (names) {
        names[0] = "base";
        for (size_t i = 0; i < k; i++) names[1 + i] = parts[i]->name;
        if (f->has_scaler) names[1 + k] = "scaler";
    }
    if (n == 0) return NF_OK;
    size_t sb = 0, db = nf__dist_scratch(f->base, n);
    for (size_t i = 0; i < k; i++)
        if (nf__scratch_bytes(parts[i], n) > sb) sb = nf__scratch_bytes(parts[i], n);
    unsigned char *mem = nf__aligned_alloc(nf__align(sb) + nf__align(db));
    if (!mem) return nf__err(NF_ERR_NOMEM, "%s: out of memory", fn);
    nf_blas_guard bg;
    nf__blas_enter(&bg);
    nf_status s = f->base->ops->sample(f->base, mem + nf__align(sb), rng, out, NULL, n);
    for (size_t i = 0; i < k && !s; i++) {
        nf_pass p = {n, NULL, mem, NULL, 0, f->be};
        s = parts[i]->ops->forward(parts[i], &p, out + (i + 1) * blk, NULL, out + i * blk);
        if (!s) s = nonfinite_out(parts[i]->name, out + (i + 1) * blk, n, d, 0);
    }
    nf__blas_leave(&bg);
    if (!s && f->has_scaler) {
        memcpy(out + (k + 1) * blk, out + k * blk, blk * sizeof(float));
        scale_out(f, out + (k + 1) * blk, n);
    }
    nf__aligned_free(mem);
    return s ? nf__err_prefix(s, fn) : NF_OK;
}

nf_status nf_flow_set_column_names(nf_flow *f, const char *const *names) {
    if (!f) return nf__err(NF_ERR_ARG, "nf_flow_set_column_names: flow is NULL");
    size_t D = f->d + f->bij->dc;
    char **v = NULL;
    if (names) {
        v = calloc(D, sizeof *v);
        for (size_t j = 0; v && j < D; j++)
            if (!names[j] || !(v[j] = strdup(names[j]))) {
                nf_free_names(v, D);
                return nf__err(names[j] ? NF_ERR_NOMEM : NF_ERR_ARG, "nf_flow_set_column_names: %s",
                               names[j] ? "out of memory" : "a name is NULL");
            }
        if (!v) return nf__err(NF_ERR_NOMEM, "nf_flow_set_column_names: out of memory");
    }
    nf_free_names(f->names, D);
    f->names = v;
    return NF_OK;
}

const char *nf_flow_column_name(const nf_flow *f, size_t j) {
    return f && f->names && j < f->d + f->bij->dc ? f->names[j] : NULL;
}
