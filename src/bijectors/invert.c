/*
 * invert.c - TFP Invert: forward is the part's inverse and inverse its
 * forward; the log-dets swap with them.  Tape, scratch and parameters are the
 * part's own.
 */
#include "bijector_impl.h"
#include "describe.h"

#include <stdio.h>

typedef struct invert {
    nf_bijector base;
    nf_bijector *inner;
} invert;

#define INNER(b) (((const invert *)(b))->inner)

static nf_status inv_forward(const nf_bijector *b, const nf_pass *p, float *y, float *ldj,
                             const float *x) {
    return INNER(b)->ops->inverse(INNER(b), p, y, ldj, x);
}

static nf_status inv_inverse(const nf_bijector *b, const nf_pass *p, float *x, float *ldj,
                             const float *y) {
    return INNER(b)->ops->forward(INNER(b), p, x, ldj, y);
}

static nf_status inv_forward_backward(const nf_bijector *b, const nf_pass *p, float *dx,
                                      float *dparams, const float *dy, const float *dldj,
                                      const float *x, const float *y) {
    /* Our forward x -> y is the part's inverse with its "y" = our x. */
    return INNER(b)->ops->inverse_backward(INNER(b), p, dx, dparams, dy, dldj, x, y);
}

static nf_status inv_inverse_backward(const nf_bijector *b, const nf_pass *p, float *dy,
                                      float *dparams, const float *dx, const float *dldj,
                                      const float *y, const float *x) {
    return INNER(b)->ops->forward_backward(INNER(b), p, dy, dparams, dx, dldj, y, x);
}

static size_t inv_scratch(const nf_bijector *b, size_t n) { return nf__scratch_bytes(INNER(b), n); }
static size_t inv_tape(const nf_bijector *b, size_t n) { return nf__tape_bytes(INNER(b), n); }
static void inv_rebind(nf_bijector *b) { nf__bijector_bind(((invert *)b)->inner, b->params); }
static int inv_monotone(const nf_bijector *b) { return nf_bijector_monotone(INNER(b)); }
static nf_status inv_init(nf_bijector *b, nf_rng *rng) {
    nf_bijector *in = ((invert *)b)->inner;
    return in->ops->init_params ? in->ops->init_params(in, rng) : NF_OK;
}
static nf_status inv_tensors(const nf_bijector *b, const char *prefix, size_t off, nf_tensor_fn fn, void *ctx) {
    char p[160];
    snprintf(p, sizeof p, "%sbijector.", prefix);
    return nf__bijector_tensors(INNER(b), p, off, fn, ctx);
}
static void inv_premask(nf_bijector *b, int apply) { nf__bijector_premask(((invert *)b)->inner, apply); }
static void inv_destroy(nf_bijector *b) { nf_bijector_free(((invert *)b)->inner); }

static const nf_bijector_ops invert_ops = {
    .name = "invert",
    .forward = inv_forward,
    .inverse = inv_inverse,
    .forward_backward = inv_forward_backward,
    .inverse_backward = inv_inverse_backward,
    .scratch_bytes = inv_scratch,
    .tape_bytes = inv_tape,
    .rebind = inv_rebind,
    .monotone = inv_monotone,
    .init_params = inv_init,
    .tensors = inv_tensors,
    .premask = inv_premask,
    .destroy = inv_destroy,
};

nf_status nf_bijector_invert(nf_bijector *b, nf_bijector **out) {
    const char *fn = "nf_bijector_invert";
    if (!out) return nf__err(NF_ERR_ARG, "%s: out is NULL", fn);
    *out = NULL;
    if (!b) return nf__err(NF_ERR_ARG, "%s: bijector is NULL", fn);
    invert *v = (invert *)nf__bijector_alloc(sizeof(invert), &invert_ops, b->d, b->nparams);
    if (!v) return nf__err_prefix(NF_ERR_NOMEM, fn);
    v->inner = b;
    v->base.dc = b->dc;
    inv_rebind(&v->base);
    *out = &v->base;
    return NF_OK;
}

int nf__invert_describe(const nf_bijector *b, const nf_bijector **inner) {
    if (b->ops != &invert_ops) return 0;
    *inner = INNER(b);
    return 1;
}
