/*
 * chain.c - TFP Chain: as in TFP, chain([b_{k-1}, ..., b_1, b_0]) applies the
 * LAST element of the list first in the forward direction.  Internally the
 * parts are kept in application order app[0..k-1] (app[0] = bs[k-1]); error
 * messages number parts by their position in the caller's list.
 *
 * Intermediates: out_i = app[i].forward(out_{i-1}) for i < k-1 live in the
 * tape when one is given (the backward pass reads them), otherwise in two
 * ping-pong buffers of the scratch.  Every part's output is checked for
 * non-finite values, so an overflow is reported with the part that made it.
 * Parameters: the parts' flat buffers laid end to end in application order.
 */
#include "bijector_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct chain {
    nf_bijector base;
    size_t k;
    nf_bijector **app; /* application order */
    size_t *off;       /* parameter offset of each part */
} chain;

typedef struct chain_ws {
    float *inter[2];   /* scratch ping-pong, n x d each */
    void *part_scratch;
    unsigned char *tape; /* NULL or: (k-1) intermediates, then the parts' tapes */
} chain_ws;

static size_t block(size_t n, size_t d) { return nf__align(n * d * sizeof(float)); }

static size_t chain_scratch_bytes(const nf_bijector *b, size_t n) {
    const chain *c = (const chain *)b;
    size_t mx = 0;
    for (size_t i = 0; i < c->k; i++) {
        size_t s = nf__scratch_bytes(c->app[i], n);
        if (s > mx) mx = s;
    }
    return 2 * block(n, b->d) + nf__align(mx);
}

static size_t chain_tape_bytes(const nf_bijector *b, size_t n) {
    const chain *c = (const chain *)b;
    size_t t = (c->k - 1) * block(n, b->d);
    for (size_t i = 0; i < c->k; i++) t += nf__align(nf__tape_bytes(c->app[i], n));
    return t;
}

static void carve_ws(const chain *c, const nf_pass *p, chain_ws *w) {
    size_t bl = block(p->n, c->base.d);
    unsigned char *cur = p->scratch;
    w->inter[0] = nf__carve(&cur, bl);
    w->inter[1] = nf__carve(&cur, bl);
    w->part_scratch = cur;
    w->tape = p->tape;
}

/* Intermediate i (output of app[i]), 0 <= i < k-1, in the tape. */
static float *tape_inter(const chain *c, const nf_pass *p, size_t i) {
    return (float *)((unsigned char *)p->tape + i * block(p->n, c->base.d));
}

static void *tape_part(const chain *c, const nf_pass *p, size_t i) {
    if (!p->tape) return NULL;
    unsigned char *t = (unsigned char *)p->tape + (c->k - 1) * block(p->n, c->base.d);
    for (size_t j = 0; j < i; j++) t += nf__align(nf__tape_bytes(c->app[j], p->n));
    return t;
}

static nf_status check_part(const chain *c, size_t i, const float *out, size_t n, int fwd) {
    size_t d = c->base.d, k = nf__first_nonfinite(out, n * d);
    if (k == n * d) return NF_OK;
    return nf__err(NF_ERR_NUMERIC, "chain: part %zu (%s) %s produced a non-finite value (%g) at row %zu, column %zu",
                   c->k - 1 - i, c->app[i]->name, fwd ? "forward" : "inverse", (double)out[k], k / d,
                   k % d);
}

static nf_status part_error(const chain *c, size_t i, nf_status s) {
    char head[96];
    snprintf(head, sizeof head, "chain: part %zu", c->k - 1 - i);
    return nf__err_prefix(s, head);
}

static nf_status chain_forward(const nf_bijector *b, const nf_pass *p, float *y, float *ldj,
                               const float *x) {
    const chain *c = (const chain *)b;
    chain_ws w;
    carve_ws(c, p, &w);
    const float *cur = x;
    for (size_t i = 0; i < c->k; i++) {
        float *out = i == c->k - 1 ? y : p->tape ? tape_inter(c, p, i) : w.inter[i % 2];
        nf_pass q = {p->n, tape_part(c, p, i), w.part_scratch, p->ctx, p->train, p->be};
        nf_status s = c->app[i]->ops->forward(c->app[i], &q, out, ldj, cur);
        if (s) return part_error(c, i, s);
        NF_TRY(check_part(c, i, out, p->n, 1));
        cur = out;
    }
    return NF_OK;
}

static nf_status chain_inverse(const nf_bijector *b, const nf_pass *p, float *x, float *ldj,
                               const float *y) {
    const chain *c = (const chain *)b;
    chain_ws w;
    carve_ws(c, p, &w);
    const float *cur = y;
    for (size_t i = c->k; i-- > 0;) {
        float *out = i == 0 ? x : p->tape ? tape_inter(c, p, i - 1) : w.inter[i % 2];
        nf_pass q = {p->n, tape_part(c, p, i), w.part_scratch, p->ctx, p->train, p->be};
        nf_status s = c->app[i]->ops->inverse(c->app[i], &q, out, ldj, cur);
        if (s) return part_error(c, i, s);
        NF_TRY(check_part(c, i, out, p->n, 0));
        cur = out;
    }
    return NF_OK;
}

static nf_status chain_forward_backward(const nf_bijector *b, const nf_pass *p, float *dx,
                                        float *dparams, const float *dy, const float *dldj,
                                        const float *x, const float *y) {
    const chain *c = (const chain *)b;
    chain_ws w;
    carve_ws(c, p, &w);
    const float *g = dy;
    for (size_t i = c->k; i-- > 0;) {
        const float *in = i == 0 ? x : tape_inter(c, p, i - 1);
        const float *out = i == c->k - 1 ? y : tape_inter(c, p, i);
        float *gin = i == 0 ? dx : w.inter[i % 2];
        nf_pass q = {p->n, tape_part(c, p, i), w.part_scratch, p->ctx, p->train, p->be};
        nf_status s = c->app[i]->ops->forward_backward(c->app[i], &q, gin,
                                                       dparams ? dparams + c->off[i] : NULL, g,
                                                       dldj, in, out);
        if (s) return part_error(c, i, s);
        g = gin;
    }
    return NF_OK;
}

static nf_status chain_inverse_backward(const nf_bijector *b, const nf_pass *p, float *dy,
                                        float *dparams, const float *dx, const float *dldj,
                                        const float *y, const float *x) {
    const chain *c = (const chain *)b;
    chain_ws w;
    carve_ws(c, p, &w);
    const float *g = dx;
    for (size_t i = 0; i < c->k; i++) {
        const float *in = i == c->k - 1 ? y : tape_inter(c, p, i);
        const float *out = i == 0 ? x : tape_inter(c, p, i - 1);
        float *gin = i == c->k - 1 ? dy : w.inter[i % 2];
        nf_pass q = {p->n, tape_part(c, p, i), w.part_scratch, p->ctx, p->train, p->be};
        nf_status s = c->app[i]->ops->inverse_backward(c->app[i], &q, gin,
                                                       dparams ? dparams + c->off[i] : NULL, g,
                                                       dldj, in, out);
        if (s) return part_error(c, i, s);
        g = gin;
    }
    return NF_OK;
}

static void chain_rebind(nf_bijector *b) {
    chain *c = (chain *)b;
    /* no parameters at all: params is NULL, and NULL + 0 is undefined in C */
    for (size_t i = 0; i < c->k; i++) nf__bijector_bind(c->app[i], b->params ? b->params + c->off[i] : NULL);
}

static int chain_monotone(const nf_bijector *b) {
    const chain *c = (const chain *)b;
    int sign = 1;
    for (size_t i = 0; i < c->k; i++) sign *= nf_bijector_monotone(c->app[i]);
    return sign;
}

static nf_status chain_init(nf_bijector *b, nf_rng *rng) {
    chain *c = (chain *)b;
    for (size_t i = 0; i < c->k; i++)
        if (c->app[i]->ops->init_params) NF_TRY(c->app[i]->ops->init_params(c->app[i], rng));
    return NF_OK;
}

static void chain_premask(nf_bijector *b, int apply) {
    chain *c = (chain *)b;
    for (size_t i = 0; i < c->k; i++) nf__bijector_premask(c->app[i], apply);
}

/* Parts are named by their position in the caller's (TFP-ordered) list. */
static nf_status chain_tensors(const nf_bijector *b, const char *prefix, size_t off, nf_tensor_fn fn, void *ctx) {
    const chain *c = (const chain *)b;
    for (size_t i = 0; i < c->k; i++) {
        char p[160];
        snprintf(p, sizeof p, "%slayers.%zu.", prefix, c->k - 1 - i);
        NF_TRY(nf__bijector_tensors(c->app[i], p, off + c->off[i], fn, ctx));
    }
    return NF_OK;
}

static void chain_destroy(nf_bijector *b) {
    chain *c = (chain *)b;
    for (size_t i = 0; i < c->k; i++) nf_bijector_free(c->app[i]);
    free(c->app);
    free(c->off);
}

static size_t chain_parts(const nf_bijector *b, nf_bijector *const **parts) {
    const chain *c = (const chain *)b;
    *parts = c->app;
    return c->k;
}

static const nf_bijector_ops chain_ops = {
    .name = "chain",
    .forward = chain_forward,
    .inverse = chain_inverse,
    .forward_backward = chain_forward_backward,
    .inverse_backward = chain_inverse_backward,
    .scratch_bytes = chain_scratch_bytes,
    .tape_bytes = chain_tape_bytes,
    .rebind = chain_rebind,
    .monotone = chain_monotone,
    .init_params = chain_init,
    .tensors = chain_tensors,
    .premask = chain_premask,
    .parts = chain_parts,
    .destroy = chain_destroy,
};

size_t nf__chain_parts(const nf_bijector *b, nf_bijector *const **parts) {
    return b->ops == &chain_ops ? chain_parts(b, parts) : 0;
}

nf_status nf_bijector_chain(nf_bijector **bs, size_t k, nf_bijector **out) {
    const char *fn = "nf_bijector_chain";
    if (!out) return nf__err(NF_ERR_ARG, "%s: out is NULL", fn);
    *out = NULL;
    if (!bs || k == 0) return nf__err(NF_ERR_ARG, "%s: needs at least one bijector", fn);
    size_t np = 0, dc = 0;
    for (size_t i = 0; i < k; i++) {
        if (!bs[i]) return nf__err(NF_ERR_ARG, "%s: bijector %zu is NULL", fn, i);
        if (bs[i]->dc && dc && bs[i]->dc != dc)
            return nf__err(NF_ERR_SHAPE, "%s: bijector %zu (%s) takes a context of %zu values, an earlier one %zu", fn, i,
                           bs[i]->name, bs[i]->dc, dc);
        if (bs[i]->dc) dc = bs[i]->dc;
        if (bs[i]->d != bs[0]->d)
            return nf__err(NF_ERR_SHAPE, "%s: bijector %zu (%s) has dimension %zu but bijector 0 (%s) has %zu",
                           fn, i, bs[i]->name, bs[i]->d, bs[0]->name, bs[0]->d);
        for (size_t j = 0; j < i; j++)
            if (bs[j] == bs[i])
                return nf__err(NF_ERR_ARG, "%s: bijector %zu appears twice (at %zu); a chain owns its parts", fn, i, j);
        np += bs[i]->nparams;
    }
    chain *c = (chain *)nf__bijector_alloc(sizeof(chain), &chain_ops, bs[0]->d, np);
    if (!c) return nf__err_prefix(NF_ERR_NOMEM, fn);
    c->app = malloc(k * sizeof *c->app);
    c->off = malloc(k * sizeof *c->off);
    if (!c->app || !c->off) {
        free(c->app), free(c->off), free(c->base.params), free(c);
        return nf__err(NF_ERR_NOMEM, "%s: out of memory", fn);
    }
    c->k = k;
    c->base.dc = dc; /* every conditional part reads the same context */
    size_t off = 0;
    for (size_t i = 0; i < k; i++) {
        c->app[i] = bs[k - 1 - i];
        c->off[i] = off;
        off += c->app[i]->nparams;
    }
    chain_rebind(&c->base);
    *out = &c->base;
    return NF_OK;
}
