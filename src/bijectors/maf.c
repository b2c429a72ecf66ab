/*
 * maf.c - masked autoregressive flow layer (Papamakarios, Pavlakou & Murray
 * 2017; TFP MaskedAutoregressiveFlow) with a MADE (Germain et al. 2015) that
 * outputs a shift m_i and a log-scale a_i per coordinate from the coordinates
 * of lower degree.  IAF (Kingma et al. 2016) is invert(MAF).
 *
 *   inverse (data -> base, density), one pass:  z = (x - m(x)) e^{-a(x)},
 *                                               ildj = -sum a(x)
 *   forward (base -> data, sampling), d passes: pass k sets the coordinate
 *            of degree k, x_i = z_i e^{a_i} + m_i;  fldj = sum a(x)
 * The MADE's activations after pass d equal those at the final x (no unit
 * sees the last-degree input), so the forward pass tapes pass d.
 *
 * Backward of the inverse pass (g = dL/dz, gl = dL/dildj):
 *   dm = -g e^{-a},  da = -g z - gl,  dx = g e^{-a} + MADE^T(dm, da)
 * Backward of the forward pass: x = f(z) solves z = G(x) (the inverse map),
 * so with t = dL/dx the gradient w = dL/dz solves the triangular system
 *   J_G^T w = t + gl d(sum a)/dx,   i.e.   w = (t + R(w)) e^{a},
 *   R(w) = MADE^T_x(dm = w e^{-a}, da = w z + gl),
 * which d fixed-point sweeps solve exactly (each fixes one more degree);
 * the parameters get MADE^T_theta(dm = w e^{-a}, da = w z + gl).
 */
#include "bijector_impl.h"
#include "../nn/nn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct maf {
    nf_bijector base;
    nf_mlp made;          /* d -> 2d: [m (d), a (d)] */
    size_t *order;        /* degree of each input, 1..d */
    size_t *by_degree;    /* by_degree[k] = input of degree k+1 */
    nf_net_opts opts;
} maf;

static size_t tape_floats(const maf *f, size_t n) { return nf__mlp_tape_floats(&f->made, n); }

static size_t maf_tape_bytes(const nf_bijector *b, size_t n) {
    return nf__align(tape_floats((const maf *)b, n) * sizeof(float));
}

static size_t maf_scratch_bytes(const nf_bijector *b, size_t n) {
    const maf *f = (const maf *)b;
    size_t d = b->d;
    return maf_tape_bytes(b, n) + nf__align(nf__mlp_scratch_bytes(&f->made, n)) +
           nf__align(2 * n * d * sizeof(float)) + 3 * nf__align(n * d * sizeof(float));
}

/* The MADE output block (m then a) of a tape. */
static const float *made_out(const maf *f, const float *tape, size_t n) {
    return tape + tape_floats(f, n) - n * 2 * f->base.d;
}

static nf_status maf_inverse(const nf_bijector *b, const nf_pass *p, float *z, float *ldj, const float *x) {
    const maf *f = (const maf *)b;
    size_t n = p->n, d = b->d;
    unsigned char *cur = p->scratch;
    float *tape = p->tape ? p->tape : nf__carve(&cur, tape_floats(f, n) * sizeof(float));
    const float *h = nf__mlp_forward(&f->made, b->params, tape, cur, x, n);
    for (size_t i = 0; i < n; i++) {
        double acc = 0;
        for (size_t j = 0; j < d; j++) {
            double m = h[i * 2 * d + j], a = h[i * 2 * d + d + j];
            z[i * d + j] = (float)(((double)x[i * d + j] - m) * exp(-a));
            acc += a;
        }
        if (ldj) ldj[i] -= (float)acc;
    }
    return NF_OK;
}

static nf_status maf_forward(const nf_bijector *b, const nf_pass *p, float *x, float *ldj, const float *z) {
    const maf *f = (const maf *)b;
    size_t n = p->n, d = b->d;
    unsigned char *cur = p->scratch;
    float *tape = p->tape ? p->tape : nf__carve(&cur, tape_floats(f, n) * sizeof(float));
    memset(x, 0, n * d * sizeof(float));
    for (size_t k = 0; k < d; k++) {
        size_t j = f->by_degree[k];
        const float *h = nf__mlp_forward(&f->made, b->params, tape, cur, x, n);
        for (size_t i = 0; i < n; i++) {
            double m = h[i * 2 * d + j], a = h[i * 2 * d + d + j];
            x[i * d + j] = (float)((double)z[i * d + j] * exp(a) + m);
            if (ldj) ldj[i] += (float)a;
        }
    }
    return NF_OK;
}

static nf_status maf_inverse_backward(const nf_bijector *b, const nf_pass *p, float *dx, float *dparams,
                                      const float *g, const float *gl, const float *x, const float *z) {
    const maf *f = (const maf *)b;
    size_t n = p->n, d = b->d;
    unsigned char *cur = (unsigned char *)p->scratch + maf_tape_bytes(b, n);
    void *mscratch = nf__carve(&cur, nf__mlp_scratch_bytes(&f->made, n));
    float *dout = nf__carve(&cur, 2 * n * d * sizeof(float));
    const float *h = made_out(f, p->tape, n);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) {
            double a = h[i * 2 * d + d + j], e = exp(-a), gg = g[i * d + j];
            dout[i * 2 * d + j] = (float)(-gg * e);
            dout[i * 2 * d + d + j] = (float)(-gg * (double)z[i * d + j] - gl[i]);
            if (dx) dx[i * d + j] = (float)(gg * e); /* direct term; the MADE's is added below */
        }
    if (!dx) {
        nf__mlp_backward(&f->made, b->params, dparams, NULL, dout, p->tape, mscratch, x, n);
        return NF_OK;
    }
    float *dxn = nf__carve(&cur, n * d * sizeof(float));
    nf__mlp_backward(&f->made, b->params, dparams, dxn, dout, p->tape, mscratch, x, n);
    for (size_t q = 0; q < n * d; q++) dx[q] += dxn[q];
    return NF_OK;
}

/* dout = (w e^{-a}, w z + gl) */
static void fill_cot(const maf *f, float *dout, const float *w, const float *h, const float *z,
                     const float *gl, size_t n) {
    size_t d = f->base.d;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) {
            double a = h[i * 2 * d + d + j], ww = w[i * d + j];
            dout[i * 2 * d + j] = (float)(ww * exp(-a));
            dout[i * 2 * d + d + j] = (float)(ww * (double)z[i * d + j] + gl[i]);
        }
}

static nf_status maf_forward_backward(const nf_bijector *b, const nf_pass *p, float *dz, float *dparams,
                                      const float *g, const float *gl, const float *z, const float *x) {
    const maf *f = (const maf *)b;
    size_t n = p->n, d = b->d;
    unsigned char *cur = (unsigned char *)p->scratch + maf_tape_bytes(b, n);
    void *mscratch = nf__carve(&cur, nf__mlp_scratch_bytes(&f->made, n));
    float *dout = nf__carve(&cur, 2 * n * d * sizeof(float));
    float *w = nf__carve(&cur, n * d * sizeof(float));
    float *r = nf__carve(&cur, n * d * sizeof(float));
    const float *h = made_out(f, p->tape, n);
    memset(w, 0, n * d * sizeof(float));
    for (size_t sweep = 0; sweep < d; sweep++) {
        fill_cot(f, dout, w, h, z, gl, n);
        nf__mlp_backward(&f->made, b->params, NULL, r, dout, p->tape, mscratch, x, n);
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < d; j++)
                w[i * d + j] = (float)(((double)g[i * d + j] + r[i * d + j]) * exp((double)h[i * 2 * d + d + j]));
    }
    if (dparams) {
        fill_cot(f, dout, w, h, z, gl, n);
        nf__mlp_backward(&f->made, b->params, dparams, NULL, dout, p->tape, mscratch, x, n);
    }
    if (dz) memcpy(dz, w, n * d * sizeof(float));
    return NF_OK;
}

static nf_status maf_init(nf_bijector *b, nf_rng *rng) {
    maf *f = (maf *)b;
    nf__mlp_init_params(&f->made, b->params, rng, f->opts.init, f->opts.zero_last);
    return NF_OK;
}

static nf_status maf_tensors(const nf_bijector *b, const char *prefix, size_t off, nf_tensor_fn fn, void *ctx) {
    char p[160];
    snprintf(p, sizeof p, "%smade.", prefix);
    return nf__mlp_tensors(&((const maf *)b)->made, p, off, fn, ctx);
}

static void maf_destroy(nf_bijector *b) {
    maf *f = (maf *)b;
    nf__mlp_free_masks(&f->made);
    free(f->order);
    free(f->by_degree);
}

static const nf_bijector_ops maf_ops = {
    .name = "maf",
    .forward = maf_forward,
    .inverse = maf_inverse,
    .forward_backward = maf_forward_backward,
    .inverse_backward = maf_inverse_backward,
    .scratch_bytes = maf_scratch_bytes,
    .tape_bytes = maf_tape_bytes,
    .init_params = maf_init,
    .tensors = maf_tensors,
    .destroy = maf_destroy,
};

nf_status nf_bijector_maf(size_t d, const nf_maf_opts *o, nf_rng *rng, nf_bijector **out) {
    const char *fn = "nf_bijector_maf";
    NF_TRY(nf__check_ctor(fn, d, out));
    if (!o || !rng) return nf__err(NF_ERR_ARG, "%s: opts and rng must not be NULL", fn);
    if (o->net.nhidden == 0) return nf__err(NF_ERR_ARG, "%s: a MADE needs at least one hidden layer", fn);
    if ((int)o->order < 0 || o->order > NF_ORDER_RANDOM) return nf__err(NF_ERR_ARG, "%s: unknown order %d", fn, (int)o->order);
    nf_mlp made;
    nf_status s = nf__mlp_init(&made, d, o->net.hidden, o->net.nhidden, 2 * d, o->net.activation);
    if (s) return nf__err_prefix(s, fn);
    maf *f = (maf *)nf__bijector_alloc(sizeof(maf), &maf_ops, d, nf__mlp_param_count(&made));
    if (!f) return nf__err_prefix(NF_ERR_NOMEM, fn);
    f->made = made;
    f->opts = o->net;
    f->order = malloc(d * sizeof(size_t));
    f->by_degree = malloc(d * sizeof(size_t));
    if (!f->order || !f->by_degree) {
        nf_bijector_free(&f->base);
        return nf__err(NF_ERR_NOMEM, "%s: out of memory", fn);
    }
    for (size_t i = 0; i < d; i++) f->order[i] = o->order == NF_ORDER_REVERSED ? d - i : i + 1;
    if (o->order == NF_ORDER_RANDOM)
        for (size_t i = d; i-- > 1;) {
            size_t j = (size_t)nf_rng_below(rng, i + 1), t = f->order[i];
            f->order[i] = f->order[j], f->order[j] = t;
        }
    for (size_t i = 0; i < d; i++) f->by_degree[f->order[i] - 1] = i;
    s = nf__made_masks(&f->made, f->order, d, 2);
    if (s) {
        nf_bijector_free(&f->base);
        return nf__err_prefix(s, fn);
    }
    maf_init(&f->base, rng);
    *out = &f->base;
    return NF_OK;
}

nf_status nf_bijector_iaf(size_t d, const nf_maf_opts *o, nf_rng *rng, nf_bijector **out) {
    nf_bijector *m = NULL;
    NF_TRY(nf_bijector_maf(d, o, rng, &m));
    nf_status s = nf_bijector_invert(m, out);
    if (s) {
        nf_bijector_free(m);
        return s;
    }
    (*out)->name = "iaf";
    return NF_OK;
}
