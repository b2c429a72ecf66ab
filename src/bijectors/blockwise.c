/*
 * blockwise.c - TFP Blockwise: bijector i acts on the i-th block of
 * consecutive columns (sizes s_0 + ... + s_{m-1} = d); the log-dets add.
 * With identity blocks it is Real NVP's multi-scale factoring-out: the
 * columns an identity holds go to the base as they are, the rest on through
 * the other parts.
 *
 * Each part runs on its block gathered into contiguous rows (n x s_i) and
 * its output is scattered back.  Tape, per part: the gathered input, the
 * output and the part's own tape; backward gathers the block of the
 * upstream gradient, runs the part's backward and scatters its input
 * gradient.  Parameters: the parts' buffers end to end.
 */
#include "bijector_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct blockwise {
    nf_bijector base;
    size_t m;
    nf_bijector **part;
    size_t *col, *off; /* first column and first parameter of each part */
} blockwise;

static size_t rows(size_t n, size_t s) { return nf__align(n * s * sizeof(float)); }

static size_t max_width(const blockwise *w) {
    size_t mx = 0;
    for (size_t i = 0; i < w->m; i++)
        if (w->part[i]->d > mx) mx = w->part[i]->d;
    return mx;
}

static size_t bw_scratch_bytes(const nf_bijector *b, size_t n) {
    const blockwise *w = (const blockwise *)b;
    size_t mx = 0;
    for (size_t i = 0; i < w->m; i++) {
        size_t s = nf__scratch_bytes(w->part[i], n);
        if (s > mx) mx = s;
    }
    return 4 * rows(n, max_width(w)) + nf__align(mx);
}

static size_t part_tape(const blockwise *w, size_t i, size_t n) {
    return 2 * rows(n, w->part[i]->d) + nf__align(nf__tape_bytes(w->part[i], n));
}

static size_t bw_tape_bytes(const nf_bijector *b, size_t n) {
    const blockwise *w = (const blockwise *)b;
    size_t t = 0;
    for (size_t i = 0; i < w->m; i++) t += part_tape(w, i, n);
    return t;
}

static void gather(const float *x, size_t n, size_t d, size_t c0, size_t s, float *out) {
    for (size_t i = 0; i < n; i++) memcpy(out + i * s, x + i * d + c0, s * sizeof(float));
}

static void scatter(const float *in, size_t n, size_t d, size_t c0, size_t s, float *x) {
    for (size_t i = 0; i < n; i++) memcpy(x + i * d + c0, in + i * s, s * sizeof(float));
}

/* Part i's buffers: in, out (the tape's when there is one) and its tape. */
typedef struct bw_bufs {
    float *in, *out, *g, *gin;
    void *tape, *scratch;
} bw_bufs;

static bw_bufs bufs(const blockwise *w, const nf_pass *p, size_t i) {
    bw_bufs r;
    size_t n = p->n, mw = rows(n, max_width(w));
    unsigned char *sc = p->scratch;
    r.g = nf__carve(&sc, mw);
    r.gin = nf__carve(&sc, mw);
    float *si = nf__carve(&sc, mw), *so = nf__carve(&sc, mw);
    r.scratch = sc;
    if (!p->tape) {
        r.in = si, r.out = so, r.tape = NULL;
        return r;
    }
    unsigned char *t = p->tape;
    for (size_t j = 0; j < i; j++) t += part_tape(w, j, n);
    r.in = nf__carve(&t, rows(n, w->part[i]->d));
    r.out = nf__carve(&t, rows(n, w->part[i]->d));
    r.tape = t;
    return r;
}

static nf_status part_error(const blockwise *w, size_t i, nf_status s) {
    char head[96];
    snprintf(head, sizeof head, "blockwise: part %zu (columns %zu..%zu)", i, w->col[i], w->col[i] + w->part[i]->d - 1);
    return nf__err_prefix(s, head);
}

static nf_status bw_pass(const nf_bijector *b, const nf_pass *p, float *out, float *ldj, const float *in, int fwd) {
    const blockwise *w = (const blockwise *)b;
    size_t n = p->n, d = b->d;
    for (size_t i = 0; i < w->m; i++) {
        nf_bijector *q = w->part[i];
        bw_bufs r = bufs(w, p, i);
        gather(in, n, d, w->col[i], q->d, r.in);
        nf_pass pp = {n, r.tape, r.scratch, NULL, p->train, p->be};
        nf_status s = fwd ? q->ops->forward(q, &pp, r.out, ldj, r.in) : q->ops->inverse(q, &pp, r.out, ldj, r.in);
        if (s) return part_error(w, i, s);
        scatter(r.out, n, d, w->col[i], q->d, out);
    }
    return NF_OK;
}

static nf_status bw_forward(const nf_bijector *b, const nf_pass *p, float *y, float *ldj, const float *x) {
    return bw_pass(b, p, y, ldj, x, 1);
}

static nf_status bw_inverse(const nf_bijector *b, const nf_pass *p, float *x, float *ldj, const float *y) {
    return bw_pass(b, p, x, ldj, y, 0);
}

/* Reverse mode through the pass (fwd: forward), from the tape of that pass. */
static nf_status bw_backward(const nf_bijector *b, const nf_pass *p, float *gin, float *dparams, const float *gout,
                             const float *dldj, int fwd) {
    const blockwise *w = (const blockwise *)b;
    size_t n = p->n, d = b->d;
    for (size_t i = 0; i < w->m; i++) {
        nf_bijector *q = w->part[i];
        bw_bufs r = bufs(w, p, i);
        gather(gout, n, d, w->col[i], q->d, r.g);
        nf_pass pp = {n, r.tape, r.scratch, NULL, p->train, p->be};
        float *dp = dparams ? dparams + w->off[i] : NULL, *gi = gin ? r.gin : NULL;
        nf_status s = fwd ? q->ops->forward_backward(q, &pp, gi, dp, r.g, dldj, r.in, r.out)
                          : q->ops->inverse_backward(q, &pp, gi, dp, r.g, dldj, r.in, r.out);
        if (s) return part_error(w, i, s);
        if (gin) scatter(r.gin, n, d, w->col[i], q->d, gin);
    }
    return NF_OK;
}

static nf_status bw_forward_backward(const nf_bijector *b, const nf_pass *p, float *dx, float *dparams, const float *dy,
                                     const float *dldj, const float *x, const float *y) {
    (void)x, (void)y; /* the parts read their blocks from the tape */
    return bw_backward(b, p, dx, dparams, dy, dldj, 1);
}

static nf_status bw_inverse_backward(const nf_bijector *b, const nf_pass *p, float *dy, float *dparams, const float *dx,
                                     const float *dldj, const float *y, const float *x) {
    (void)x, (void)y;
    return bw_backward(b, p, dy, dparams, dx, dldj, 0);
}

static void bw_rebind(nf_bijector *b) {
    blockwise *w = (blockwise *)b;
    for (size_t i = 0; i < w->m; i++) nf__bijector_bind(w->part[i], b->params ? b->params + w->off[i] : NULL);
}

static int bw_monotone(const nf_bijector *b) {
    const blockwise *w = (const blockwise *)b;
    return w->m == 1 ? nf_bijector_monotone(w->part[0]) : 0;
}

static nf_status bw_init(nf_bijector *b, nf_rng *rng) {
    blockwise *w = (blockwise *)b;
    for (size_t i = 0; i < w->m; i++)
        if (w->part[i]->ops->init_params) NF_TRY(w->part[i]->ops->init_params(w->part[i], rng));
    return NF_OK;
}

static void bw_premask(nf_bijector *b, int apply) {
    blockwise *w = (blockwise *)b;
    for (size_t i = 0; i < w->m; i++) nf__bijector_premask(w->part[i], apply);
}

static nf_status bw_data_init(nf_bijector *b, const float *y, size_t n) {
    blockwise *w = (blockwise *)b;
    float *blk = malloc(n * max_width(w) * sizeof(float) + 1);
    nf_status s = blk ? NF_OK : nf__err(NF_ERR_NOMEM, "blockwise: out of memory for %zu rows", n);
    for (size_t i = 0; i < w->m && !s; i++) {
        gather(y, n, b->d, w->col[i], w->part[i]->d, blk);
        s = nf__bijector_data_init(w->part[i], blk, NULL, n);
    }
    free(blk);
    return s;
}

static nf_status bw_tensors(const nf_bijector *b, const char *prefix, size_t off, nf_tensor_fn fn, void *ctx) {
    const blockwise *w = (const blockwise *)b;
    for (size_t i = 0; i < w->m; i++) {
        char p[160];
        snprintf(p, sizeof p, "%sblocks.%zu.", prefix, i);
        NF_TRY(nf__bijector_tensors(w->part[i], p, off + w->off[i], fn, ctx));
    }
    return NF_OK;
}

static void bw_destroy(nf_bijector *b) {
    blockwise *w = (blockwise *)b;
    for (size_t i = 0; i < w->m; i++) nf_bijector_free(w->part[i]);
    free(w->part);
    free(w->col);
    free(w->off);
}

static const nf_bijector_ops blockwise_ops = {
    .name = "blockwise",
    .forward = bw_forward,
    .inverse = bw_inverse,
    .forward_backward = bw_forward_backward,
    .inverse_backward = bw_inverse_backward,
    .scratch_bytes = bw_scratch_bytes,
    .tape_bytes = bw_tape_bytes,
    .rebind = bw_rebind,
    .monotone = bw_monotone,
    .init_params = bw_init,
    .tensors = bw_tensors,
    .data_init = bw_data_init,
    .premask = bw_premask,
    .destroy = bw_destroy,
};

nf_status nf_bijector_blockwise(nf_bijector **bs, size_t m, nf_bijector **out) {
    const char *fn = "nf_bijector_blockwise";
    if (!out) return nf__err(NF_ERR_ARG, "%s: out is NULL", fn);
    *out = NULL;
    if (!bs || m == 0) return nf__err(NF_ERR_ARG, "%s: needs at least one bijector", fn);
    size_t d = 0, np = 0;
    for (size_t i = 0; i < m; i++) {
        if (!bs[i]) return nf__err(NF_ERR_ARG, "%s: bijector %zu is NULL", fn, i);
        if (bs[i]->dc) return nf__err(NF_ERR_UNSUPPORTED, "%s: bijector %zu (%s) is conditional; blocks take none", fn, i, bs[i]->name);
        for (size_t j = 0; j < i; j++)
            if (bs[j] == bs[i]) return nf__err(NF_ERR_ARG, "%s: bijector %zu appears twice (at %zu); blockwise owns its parts", fn, i, j);
        d += bs[i]->d;
        np += bs[i]->nparams;
    }
    blockwise *w = (blockwise *)nf__bijector_alloc(sizeof(blockwise), &blockwise_ops, d, np);
    if (!w) return nf__err_prefix(NF_ERR_NOMEM, fn);
    w->part = malloc(m * sizeof *w->part);
    w->col = malloc(m * sizeof *w->col);
    w->off = malloc(m * sizeof *w->off);
    if (!w->part || !w->col || !w->off) {
        free(w->part), free(w->col), free(w->off), free(w->base.params), free(w);
        return nf__err(NF_ERR_NOMEM, "%s: out of memory", fn);
    }
    w->m = m;
    for (size_t i = 0, c = 0, o = 0; i < m; i++) {
        w->part[i] = bs[i], w->col[i] = c, w->off[i] = o;
        c += bs[i]->d, o += bs[i]->nparams;
    }
    bw_rebind(&w->base);
    *out = &w->base;
    return NF_OK;
}
