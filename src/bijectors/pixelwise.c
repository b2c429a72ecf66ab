/*
 * pixelwise.c - one C-dimensional bijector applied at every pixel of a
 * C x H x W image (coordinate c H W + q is channel c of pixel q), sharing its
 * parameters: Glow's ActNorm is pixelwise(actnorm) and its invertible 1 x 1
 * convolution with the LU parameterisation is pixelwise(lu_linear).
 *
 * The n rows become n H W rows of C values (row i H W + q holds pixel q of
 * image i), the inner bijector runs once on all of them, and the rows go
 * back; log|det| of an image is the sum over its pixels.  Backward:
 * the upstream gradient transposed alike, d(log-det) of every pixel row =
 * that of its image.  Tape: the transposed input and output and the inner
 * tape (for n H W rows).
 */
#include "bijector_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct pixelwise {
    nf_bijector base;
    nf_bijector *in; /* on C values */
    size_t C, HW;
} pixelwise;

static size_t blk(size_t n, size_t k) { return nf__align(n * k * sizeof(float)); }

static size_t px_scratch_bytes(const nf_bijector *b, size_t n) {
    const pixelwise *p = (const pixelwise *)b;
    size_t N = n * p->HW;
    return 4 * blk(N, p->C) + 2 * blk(N, 1) + nf__align(nf__scratch_bytes(p->in, N));
}

static size_t px_tape_bytes(const nf_bijector *b, size_t n) {
    const pixelwise *p = (const pixelwise *)b;
    size_t N = n * p->HW;
    return 2 * blk(N, p->C) + nf__align(nf__tape_bytes(p->in, N));
}

/* [n][C][HW] -> [n HW][C] and back */
static void to_pixels(const pixelwise *p, const float *x, size_t n, float *t) {
    size_t C = p->C, HW = p->HW;
    for (size_t i = 0; i < n; i++)
        for (size_t c = 0; c < C; c++)
            for (size_t q = 0; q < HW; q++) t[(i * HW + q) * C + c] = x[(i * C + c) * HW + q];
}

static void from_pixels(const pixelwise *p, const float *t, size_t n, float *x) {
    size_t C = p->C, HW = p->HW;
    for (size_t i = 0; i < n; i++)
        for (size_t c = 0; c < C; c++)
            for (size_t q = 0; q < HW; q++) x[(i * C + c) * HW + q] = t[(i * HW + q) * C + c];
}

typedef struct px_bufs {
    float *in, *out, *g, *gin, *l, *dl;
    void *tape, *scratch;
} px_bufs;

static px_bufs bufs(const pixelwise *p, const nf_pass *ps) {
    px_bufs r;
    size_t N = ps->n * p->HW;
    unsigned char *s = ps->scratch;
    float *si = nf__carve(&s, blk(N, p->C)), *so = nf__carve(&s, blk(N, p->C));
    r.g = nf__carve(&s, blk(N, p->C));
    r.gin = nf__carve(&s, blk(N, p->C));
    r.l = nf__carve(&s, blk(N, 1));
    r.dl = nf__carve(&s, blk(N, 1));
    r.scratch = s;
    if (ps->tape) {
        unsigned char *t = ps->tape;
        r.in = nf__carve(&t, blk(N, p->C));
        r.out = nf__carve(&t, blk(N, p->C));
        r.tape = t;
    } else {
        r.in = si, r.out = so, r.tape = NULL;
    }
    return r;
}

static nf_status px_pass(const nf_bijector *b, const nf_pass *ps, float *out, float *ldj, const float *in, int fwd) {
    const pixelwise *p = (const pixelwise *)b;
    size_t n = ps->n, N = n * p->HW;
    px_bufs r = bufs(p, ps);
    to_pixels(p, in, n, r.in);
    if (ldj) memset(r.l, 0, N * sizeof(float));
    nf_pass q = {N, r.tape, r.scratch, NULL, ps->train, ps->be};
    nf_status s = fwd ? p->in->ops->forward(p->in, &q, r.out, ldj ? r.l : NULL, r.in)
                      : p->in->ops->inverse(p->in, &q, r.out, ldj ? r.l : NULL, r.in);
    if (s) return nf__err_prefix(s, "pixelwise");
    from_pixels(p, r.out, n, out);
    if (ldj)
        for (size_t i = 0; i < n; i++) {
            double a = 0;
            for (size_t k = 0; k < p->HW; k++) a += r.l[i * p->HW + k];
            ldj[i] += (float)a;
        }
    return NF_OK;
}

static nf_status px_forward(const nf_bijector *b, const nf_pass *p, float *y, float *ldj, const float *x) {
    return px_pass(b, p, y, ldj, x, 1);
}

static nf_status px_inverse(const nf_bijector *b, const nf_pass *p, float *x, float *ldj, const float *y) {
    return px_pass(b, p, x, ldj, y, 0);
}

static nf_status px_backward(const nf_bijector *b, const nf_pass *ps, float *gin, float *dparams, const float *gout,
                             const float *dldj, int fwd) {
    const pixelwise *p = (const pixelwise *)b;
    size_t n = ps->n, N = n * p->HW;
    px_bufs r = bufs(p, ps);
    to_pixels(p, gout, n, r.g);
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < p->HW; k++) r.dl[i * p->HW + k] = dldj[i];
    nf_pass q = {N, r.tape, r.scratch, NULL, ps->train, ps->be};
    float *gi = gin ? r.gin : NULL;
    nf_status s = fwd ? p->in->ops->forward_backward(p->in, &q, gi, dparams, r.g, r.dl, r.in, r.out)
                      : p->in->ops->inverse_backward(p->in, &q, gi, dparams, r.g, r.dl, r.in, r.out);
    if (s) return nf__err_prefix(s, "pixelwise");
    if (gin) from_pixels(p, r.gin, n, gin);
    return NF_OK;
}

static nf_status px_forward_backward(const nf_bijector *b, const nf_pass *p, float *dx, float *dparams, const float *dy,
                                     const float *dldj, const float *x, const float *y) {
    (void)x, (void)y; /* the transposed rows are on the tape */
    return px_backward(b, p, dx, dparams, dy, dldj, 1);
}

static nf_status px_inverse_backward(const nf_bijector *b, const nf_pass *p, float *dy, float *dparams, const float *dx,
                                     const float *dldj, const float *y, const float *x) {
    (void)x, (void)y;
    return px_backward(b, p, dy, dparams, dx, dldj, 0);
}

static void px_rebind(nf_bijector *b) { nf__bijector_bind(((pixelwise *)b)->in, b->params); }

static nf_status px_init(nf_bijector *b, nf_rng *rng) {
    nf_bijector *in = ((pixelwise *)b)->in;
    return in->ops->init_params ? in->ops->init_params(in, rng) : NF_OK;
}

static void px_premask(nf_bijector *b, int apply) { nf__bijector_premask(((pixelwise *)b)->in, apply); }

static nf_status px_data_init(nf_bijector *b, const float *y, size_t n) {
    pixelwise *p = (pixelwise *)b;
    float *t = malloc(n * b->d * sizeof(float) + 1);
    if (!t) return nf__err(NF_ERR_NOMEM, "pixelwise: out of memory for %zu rows", n);
    to_pixels(p, y, n, t);
    nf_status s = nf__bijector_data_init(p->in, t, NULL, n * p->HW);
    free(t);
    return s;
}

static nf_status px_tensors(const nf_bijector *b, const char *prefix, size_t off, nf_tensor_fn fn, void *ctx) {
    char pre[160];
    snprintf(pre, sizeof pre, "%spixel.", prefix);
    return nf__bijector_tensors(((const pixelwise *)b)->in, pre, off, fn, ctx);
}

static void px_destroy(nf_bijector *b) { nf_bijector_free(((pixelwise *)b)->in); }

static const nf_bijector_ops pixelwise_ops = {
    .name = "pixelwise",
    .forward = px_forward,
    .inverse = px_inverse,
    .forward_backward = px_forward_backward,
    .inverse_backward = px_inverse_backward,
    .scratch_bytes = px_scratch_bytes,
    .tape_bytes = px_tape_bytes,
    .rebind = px_rebind,
    .init_params = px_init,
    .tensors = px_tensors,
    .data_init = px_data_init,
    .premask = px_premask,
    .destroy = px_destroy,
};

nf_status nf_bijector_pixelwise(nf_bijector *inner, const size_t shape[3], nf_bijector **out) {
    const char *fn = "nf_bijector_pixelwise";
    if (!out) return nf__err(NF_ERR_ARG, "%s: out is NULL", fn);
    *out = NULL;
    if (!inner || !shape) return nf__err(NF_ERR_ARG, "%s: bijector and shape must not be NULL", fn);
    size_t C = shape[0], HW = shape[1] * shape[2];
    if (!C || !HW || inner->d != C || shape[1] > (1u << 16) || shape[2] > (1u << 16))
        return nf__err(NF_ERR_SHAPE, "%s: %s has dimension %zu; the image %zu x %zu x %zu needs one of C = %zu", fn,
                       inner->name, inner->d, C, shape[1], shape[2], C);
    if (inner->dc) return nf__err(NF_ERR_UNSUPPORTED, "%s: %s is conditional; pixelwise takes none", fn, inner->name);
    pixelwise *p = (pixelwise *)nf__bijector_alloc(sizeof(pixelwise), &pixelwise_ops, C * HW, inner->nparams);
    if (!p) return nf__err_prefix(NF_ERR_NOMEM, fn);
    p->in = inner, p->C = C, p->HW = HW;
    px_rebind(&p->base);
    *out = &p->base;
    return NF_OK;
}
