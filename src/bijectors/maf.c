/*
 * maf.c - masked autoregressive flow layer (Papamakarios, Pavlakou & Murray
 * 2017; TFP MaskedAutoregressiveFlow) with a MADE (Germain et al. 2015) that
 * outputs the parameters p_i(x_<i) of an elementwise transform T per
 * coordinate (transform.h): affine (shift m_i, log-scale a_i, the classic
 * MAF) or a rational-quadratic spline (the autoregressive neural spline flow
 * of Durkan et al. 2019).  IAF (Kingma et al. 2016) is invert(MAF).
 *
 *   inverse (data -> base, density), one pass:  z_i = T(x_i; p_i(x)),
 *                                               ildj = sum log T'
 *   forward (base -> data, sampling), d passes: pass k sets the coordinate
 *            of degree k, x_i = T^{-1}(z_i; p_i(x));  fldj = -sum log T'
 *            (affine: x_i = z_i e^{a_i} + m_i, fldj = sum a_i)
 * The MADE's activations after pass d equal those at the final x (no unit
 * sees the last-degree input), so the forward pass tapes pass d.  The
 * coordinate of degree 1 depends on no input: its parameters are the output
 * layer's biases (its mask rows are all zero, checked when the layer is
 * built), so pass 1 runs no network when d >= 2 (or nothing is taped): MAF
 * sampling costs d - 1 network passes, one instead of two for d = 2.
 *
 * Backward of the inverse pass (g = dL/dz, gl = dL/dildj): the transform's
 * reverse mode gives the direct dx and dp; dx += MADE^T(dp).
 * Backward of the forward pass: x = f(z) solves z = G(x), so with
 * t = dL/dx and gl = dL/dfldj, w = dL/dz solves J_G^T w = t + gl dfldj/dx:
 *   w = (t - gl dl/dx - MADE^T_x(gp(w))) / T',   l = log T',
 *   gp(w) = w dT/dp + gl dl/dp  (the transform's reverse mode at (w, gl)),
 * which d sweeps solve exactly (each fixes one more degree); the parameters
 * get MADE^T_theta(-gp(w)).  (Affine: w = (t + MADE^T_x(cot)) e^{a},
 * cot = (w e^{-a}, w z + gl).)
 */
#include "bijector_impl.h"
#include "describe.h"
#include "transform.h"
#include "../nn/nn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct maf {
    nf_bijector base;
    nf_mlp made;          /* d (+ dc context) -> np*d: parameter k of coordinate j at k*d + j */
    nf_eltx tx;           /* the elementwise transform */
    size_t np;            /* its parameters per coordinate */
    size_t *order;        /* degree of each input, 1..d */
    size_t *by_degree;    /* by_degree[k] = input of degree k+1 */
    int first_free;       /* the degree-1 outputs see no hidden unit: they are the output biases */
    nf_net_opts opts;
} maf;

static size_t tape_floats(const maf *f, size_t n) { return nf__mlp_tape_floats(&f->made, n); }

static size_t maf_tape_bytes(const nf_bijector *b, size_t n) {
    return nf__align(tape_floats((const maf *)b, n) * sizeof(float));
}

static size_t maf_scratch_bytes(const nf_bijector *b, size_t n) {
    const maf *f = (const maf *)b;
    size_t d = b->d, di = d + b->dc;
    return maf_tape_bytes(b, n) + nf__align(nf__mlp_scratch_bytes(&f->made, n)) +
           nf__align(f->np * n * d * sizeof(float)) + 3 * nf__align(n * d * sizeof(float)) +
           3 * nf__align(n * di * sizeof(float)) + nf__align(n * d * sizeof(double));
}

/* The MADE's input rows: x itself, or [x | context] written into buf
 * (n x (d + dc)) for a conditional layer. */
static const float *made_in(const nf_bijector *b, const nf_pass *p, const float *x, float *buf) {
    size_t d = b->d, dc = b->dc, n = p->n;
    if (!dc) return x;
    for (size_t i = 0; i < n; i++) {
        memcpy(buf + i * (d + dc), x + i * d, d * sizeof(float));
        memcpy(buf + i * (d + dc) + d, p->ctx + i * dc, dc * sizeof(float));
    }
    return buf;
}

/* dx[:, :d] += the first d columns of g (n x (d + dc)) */
static void add_x_part(const nf_bijector *b, size_t n, float *dx, const float *g) {
    size_t d = b->d, di = d + b->dc;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) dx[i * d + j] += g[i * di + j];
}

/* The MADE output block of a tape (row stride np*d). */
static const float *made_out(const maf *f, const float *tape, size_t n) {
    return tape + tape_floats(f, n) - n * f->np * f->base.d;
}

static nf_status maf_inverse(const nf_bijector *b, const nf_pass *p, float *z, float *ldj, const float *x) {
    const maf *f = (const maf *)b;
    size_t n = p->n, d = b->d, rs = f->np * d;
    unsigned char *cur = p->scratch;
    float *tape = p->tape ? p->tape : nf__carve(&cur, tape_floats(f, n) * sizeof(float));
    float *xin = nf__carve(&cur, n * (d + b->dc) * sizeof(float));
    const float *h = nf__mlp_forward(&f->made, nf__be(p->be), b->params, tape, cur, made_in(b, p, x, xin), n);
    for (size_t i = 0; i < n; i++) {
        double acc = 0, zz;
        for (size_t j = 0; j < d; j++) {
            acc += nf__eltx_eval(&f->tx, h + i * rs + j, d, x[i * d + j], &zz);
            z[i * d + j] = (float)zz;
        }
        if (ldj) ldj[i] += (float)acc;
    }
    return NF_OK;
}

static nf_status maf_forward(const nf_bijector *b, const nf_pass *p, float *x, float *ldj, const float *z) {
    const maf *f = (const maf *)b;
    size_t n = p->n, d = b->d, rs = f->np * d;
    unsigned char *cur = p->scratch;
    float *tape = p->tape ? p->tape : nf__carve(&cur, tape_floats(f, n) * sizeof(float));
    size_t di = d + b->dc;
    float *xin = nf__carve(&cur, n * di * sizeof(float));
    memset(x, 0, n * d * sizeof(float));
    const float *in = made_in(b, p, x, xin); /* x itself, or [x | ctx] kept in step below */
    for (size_t k = 0; k < d; k++) {
        size_t j = f->by_degree[k], hs = rs;
        const float *h;
        if (k == 0 && f->first_free && (d > 1 || !p->tape))
            h = b->params + b->nparams - rs, hs = 0; /* the output biases, the same for every row */
        else
            h = nf__mlp_forward(&f->made, nf__be(p->be), b->params, tape, cur, in, n);
        for (size_t i = 0; i < n; i++) {
            double xx, l = nf__eltx_invert(&f->tx, h + i * hs + j, d, z[i * d + j], &xx);
            x[i * d + j] = (float)xx;
            if (b->dc) xin[i * di + j] = (float)xx;
            if (ldj) ldj[i] -= (float)l;
        }
    }
    return NF_OK;
}

static nf_status maf_inverse_backward(const nf_bijector *b, const nf_pass *p, float *dx, float *dparams,
                                      const float *g, const float *gl, const float *x, const float *z) {
    const maf *f = (const maf *)b;
    size_t n = p->n, d = b->d, rs = f->np * d;
    unsigned char *cur = (unsigned char *)p->scratch + maf_tape_bytes(b, n);
    void *mscratch = nf__carve(&cur, nf__mlp_scratch_bytes(&f->made, n));
    float *dout = nf__carve(&cur, rs * n * sizeof(float));
    float *xin = nf__carve(&cur, n * (d + b->dc) * sizeof(float));
    float *dxn = nf__carve(&cur, n * (d + b->dc) * sizeof(float));
    const float *h = made_out(f, p->tape, n), *in = made_in(b, p, x, xin);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) {
            double gx;
            nf__eltx_grad(&f->tx, h + i * rs + j, d, x[i * d + j], z[i * d + j], g[i * d + j], gl[i], &gx,
                          dout + i * rs + j);
            if (dx) dx[i * d + j] = (float)gx; /* direct term; the MADE's is added below */
        }
    nf__mlp_backward(&f->made, nf__be(p->be), b->params, dparams, dx ? dxn : NULL, dout, p->tape, mscratch, in, n);
    if (dx) add_x_part(b, n, dx, dxn);
    return NF_OK;
}

/* dout = gp(w) (negated when `neg`), the transform's parameter gradients at (w, gl). */
static void fill_gp(const maf *f, float *dout, const float *w, const float *h, const float *x, const float *z,
                    const float *gl, size_t n, int neg) {
    size_t d = f->base.d, rs = f->np * d;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) {
            double gx;
            nf__eltx_grad(&f->tx, h + i * rs + j, d, x[i * d + j], z[i * d + j], w[i * d + j], gl[i], &gx,
                          dout + i * rs + j);
        }
    if (neg)
        for (size_t q = 0; q < n * rs; q++) dout[q] = -dout[q];
}

static nf_status maf_forward_backward(const nf_bijector *b, const nf_pass *p, float *dz, float *dparams,
                                      const float *g, const float *gl, const float *z, const float *x) {
    const maf *f = (const maf *)b;
    size_t n = p->n, d = b->d, rs = f->np * d;
    unsigned char *cur = (unsigned char *)p->scratch + maf_tape_bytes(b, n);
    void *mscratch = nf__carve(&cur, nf__mlp_scratch_bytes(&f->made, n));
    float *dout = nf__carve(&cur, rs * n * sizeof(float));
    size_t di = d + b->dc;
    float *w = nf__carve(&cur, n * d * sizeof(float));
    float *r = nf__carve(&cur, n * di * sizeof(float));
    double *itp = nf__carve(&cur, n * d * sizeof(double)); /* 1 / T'(x) */
    float *glx = nf__carve(&cur, n * d * sizeof(float)); /* gl d log T'/dx */
    float *xin = nf__carve(&cur, n * di * sizeof(float));
    const float *h = made_out(f, p->tape, n), *in = made_in(b, p, x, xin);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) {
            double zz, gx, l = nf__eltx_eval(&f->tx, h + i * rs + j, d, x[i * d + j], &zz);
            nf__eltx_grad(&f->tx, h + i * rs + j, d, x[i * d + j], z[i * d + j], 0, gl[i], &gx, dout + i * rs + j);
            itp[i * d + j] = exp(-l), glx[i * d + j] = (float)gx;
        }
    memset(w, 0, n * d * sizeof(float));
    for (size_t sweep = 0; sweep < d; sweep++) {
        fill_gp(f, dout, w, h, x, z, gl, n, 0);
        nf__mlp_backward(&f->made, nf__be(p->be), b->params, NULL, r, dout, p->tape, mscratch, in, n);
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < d; j++) {
                size_t q = i * d + j;
                w[q] = (float)(((double)g[q] - r[i * di + j] - glx[q]) * itp[q]);
            }
    }
    if (dparams) {
        fill_gp(f, dout, w, h, x, z, gl, n, 1);
        nf__mlp_backward(&f->made, nf__be(p->be), b->params, dparams, NULL, dout, p->tape, mscratch, in, n);
    }
    if (dz) memcpy(dz, w, n * d * sizeof(float));
    return NF_OK;
}

static nf_status maf_init(nf_bijector *b, nf_rng *rng) {
    maf *f = (maf *)b;
    nf__mlp_init_params(&f->made, b->params, rng, f->opts.init, f->opts.zero_last);
    nf__mlp_apply_masks(&f->made, b->params, 0);
    return NF_OK;
}

static nf_status maf_tensors(const nf_bijector *b, const char *prefix, size_t off, nf_tensor_fn fn, void *ctx) {
    char p[160];
    snprintf(p, sizeof p, "%smade.", prefix);
    return nf__mlp_tensors(&((const maf *)b)->made, p, off, fn, ctx);
}

static void maf_premask(nf_bijector *b, int apply) {
    maf *f = (maf *)b;
    if (apply) nf__mlp_apply_masks(&f->made, b->params, apply == NF_PREMASK_CHECK);
    else f->made.premasked = 0;
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
    .premask = maf_premask,
    .destroy = maf_destroy,
};

nf_status nf_bijector_maf(size_t d, const nf_maf_opts *o, nf_rng *rng, nf_bijector **out) {
    const char *fn = "nf_bijector_maf";
    NF_TRY(nf__check_ctor(fn, d, out));
    if (!o || !rng) return nf__err(NF_ERR_ARG, "%s: opts and rng must not be NULL", fn);
    if (o->net.nhidden == 0) return nf__err(NF_ERR_ARG, "%s: a MADE needs at least one hidden layer", fn);
    if ((int)o->order < 0 || o->order > NF_ORDER_RANDOM) return nf__err(NF_ERR_ARG, "%s: unknown order %d", fn, (int)o->order);
    nf_eltx tx;
    NF_TRY(nf__eltx_from_opts(fn, o->spline_bins, o->spline_bound, &tx));
    if ((int)o->scale < 0 || o->scale > NF_SCALE_SOFTPLUS) return nf__err(NF_ERR_ARG, "%s: unknown scale form %d", fn, (int)o->scale);
    tx.scale = (int)o->scale;
    size_t np = nf__eltx_np(&tx);
    nf_mlp made;
    if (o->context_dim > (1u << 20)) return nf__err(NF_ERR_ARG, "%s: context_dim %zu is too large", fn, o->context_dim);
    nf_status s = nf__mlp_init_net(&made, d + o->context_dim, &o->net, np * d);
    if (s) return nf__err_prefix(s, fn);
    maf *f = (maf *)nf__bijector_alloc(sizeof(maf), &maf_ops, d, nf__mlp_param_count(&made));
    if (!f) return nf__err_prefix(NF_ERR_NOMEM, fn);
    f->made = made;
    f->base.dc = o->context_dim;
    f->tx = tx, f->np = np;
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
    s = nf__made_masks(&f->made, f->order, d, np);
    if (s) {
        nf_bijector_free(&f->base);
        return nf__err_prefix(s, fn);
    }
    const nf_mlp *mm = &f->made;
    size_t last = mm->nlin - 1, a = mm->w[last], j1 = f->by_degree[0];
    f->first_free = 1; /* mask rows of the degree-1 coordinate's outputs (k*d + j1) all zero */
    for (size_t q = 0; q < np; q++)
        for (size_t v = 0; v < a; v++) f->first_free &= mm->masks[last][(q * d + j1) * a + v] == 0.0f;
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

int nf__maf_describe(const nf_bijector *b, nf_maf_desc *o) {
    if (b->ops != &maf_ops) return 0;
    const maf *f = (const maf *)b;
    *o = (nf_maf_desc){&f->made, f->np, f->tx, f->by_degree, f->first_free};
    return 1;
}
