/*
 * coupling.c - affine coupling (RealNVP, Dinh, Sohl-Dickstein & Bengio 2017)
 * and additive coupling (NICE, Dinh, Krueger & Bengio 2015), as in
 * dataflowr's RealNVP and TFP's RealNVP bijector.
 *
 * Conditioning coordinates c pass unchanged; transformed coordinates t:
 *   forward (base -> data):  y_t = x_t * exp(s) + sh,       fldj = sum s
 *   inverse (data -> base):  x_t = (y_t - sh) * exp(-s),   ildj = -sum s
 * with (s, sh) = nets(x_c) and s = tanh(raw) when tanh_scale; s = 0 for NICE.
 * The networks read only the n_c conditioning columns and produce only the
 * n_t transformed ones (no whole-vector masking).
 *
 * Backward (g = upstream gradient of the pass output, gl of the log-det):
 *   forward:  dx_t = g_t e^s,  dsh = g_t,  ds = g_t (y_t - sh) + gl
 *   inverse:  dy_t = g_t e^-s, dsh = -g_t e^-s, ds = -g_t x_t - gl
 *   ds_raw = ds (1 - s^2) with tanh; the nets' backward adds to dx_c.
 * Parameters: [s-net, t-net] (separate) or [net] whose outputs are
 * [shift (n_t), log-scale (n_t)] (TFP's order), or [shift net] (NICE).
 *
 * Conditional coupling (context_dim > 0): the nets read [x_c, context].
 *
 * Spline coupling (Durkan et al. 2019): one net gives the 3K - 1 parameters
 * of a rational-quadratic spline S per transformed coordinate (parameter k of
 * coordinate j at output k*n_t + j), with S the density direction:
 *   inverse: x_t = S(y_t),       ildj = sum log S'(y_t)
 *   forward: y_t = S^{-1}(x_t),  fldj = -sum log S'(y_t)
 * Backward (transform.h's reverse mode gives gx, gp at (gz, gl) at y_t):
 *   inverse: dy_t = gx(g, gl), dp = gp(g, gl)
 *   forward: dx_t = w = (g - gx(0, gl)) / S'(y_t), dp = -gp(w, gl).
 */
#include "bijector_impl.h"
#include "describe.h"
#include "transform.h"
#include "../nn/nn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct coupling {
    nf_bijector base;
    size_t nc, nt;
    size_t ni;             /* the nets' input width: nc + context dimension */
    size_t *ci, *ti;       /* conditioning and transformed column indices */
    nf_mlp net[2];         /* separate: [s, t]; else net[0] only */
    int nnets, separate, tanh_scale, shift_only;
    nf_eltx tx;            /* tx.bins > 0: spline coupling */
    nf_net_opts opts;
} coupling;

/* Workspace of one pass for n rows (tape when saving, scratch otherwise). */
typedef struct cws {
    float *xc;             /* n x ni: gathered conditioning columns, then the context */
    float *ntape[2];       /* the nets' tapes */
} cws;

static size_t region_bytes(const coupling *c, size_t n) {
    size_t b = nf__align(n * c->ni * sizeof(float));
    for (int k = 0; k < c->nnets; k++) b += nf__align(nf__mlp_tape_floats(&c->net[k], n) * sizeof(float));
    return b;
}

static unsigned char *carve_region(const coupling *c, unsigned char *cur, size_t n, cws *w) {
    w->xc = nf__carve(&cur, n * c->ni * sizeof(float));
    for (int k = 0; k < c->nnets; k++) w->ntape[k] = nf__carve(&cur, nf__mlp_tape_floats(&c->net[k], n) * sizeof(float));
    return cur;
}

static size_t net_scratch(const coupling *c, size_t n) {
    size_t m = 0;
    for (int k = 0; k < c->nnets; k++) {
        size_t s = nf__mlp_scratch_bytes(&c->net[k], n);
        if (s > m) m = s;
    }
    return nf__align(m);
}

static size_t cp_tape_bytes(const nf_bijector *b, size_t n) { return region_bytes((const coupling *)b, n); }

/* Output floats per row of all nets together. */
static size_t out_width(const coupling *c) { return c->tx.bins ? nf__eltx_np(&c->tx) * c->nt : 2 * c->nt; }

static size_t cp_scratch_bytes(const nf_bijector *b, size_t n) {
    const coupling *c = (const coupling *)b;
    /* region (when no tape) + nets' scratch + backward: dout (n x out_width), dxc (n x ni) x 2 */
    return region_bytes(c, n) + net_scratch(c, n) + nf__align(out_width(c) * n * sizeof(float)) +
           2 * nf__align(n * c->ni * sizeof(float));
}

/* Output block (last tape block) of net k. */
static const float *net_out(const coupling *c, const cws *w, int k, size_t n) {
    const nf_mlp *m = &c->net[k];
    return w->ntape[k] + nf__mlp_tape_floats(m, n) - n * m->w[m->nlin];
}

/* Runs the nets on the conditioning columns of `in`; returns pointers to
 * raw-s (NULL for NICE) and shift rows with their row strides. */
typedef struct st_view {
    const float *s, *sh;
    size_t ss, shs; /* row strides */
} st_view;

static void run_nets(const coupling *c, const nf_pass *p, cws *w, unsigned char *nscratch,
                     const float *in, st_view *v) {
    size_t n = p->n, d = c->base.d;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < c->nc; j++) w->xc[i * c->ni + j] = in[i * d + c->ci[j]];
        for (size_t j = c->nc; j < c->ni; j++) w->xc[i * c->ni + j] = p->ctx[i * c->base.dc + j - c->nc];
    }
    const float *P = c->base.params;
    for (int k = 0; k < c->nnets; k++) {
        nf__mlp_forward(&c->net[k], nf__be(p->be), P, w->ntape[k], nscratch, w->xc, n);
        P += nf__mlp_param_count(&c->net[k]);
    }
    if (c->shift_only) {
        v->s = NULL, v->sh = net_out(c, w, 0, n), v->ss = 0, v->shs = c->nt;
    } else if (c->separate) {
        v->s = net_out(c, w, 0, n), v->sh = net_out(c, w, 1, n), v->ss = v->shs = c->nt;
    } else {
        const float *o = net_out(c, w, 0, n);
        v->sh = o, v->s = o + c->nt, v->ss = v->shs = 2 * c->nt;
    }
}

static inline double scale_of(const coupling *c, const st_view *v, size_t i, size_t j) {
    if (!v->s) return 0;
    double r = v->s[i * v->ss + j];
    return c->tanh_scale ? tanh(r) : r;
}

static nf_status cp_pass(const nf_bijector *b, const nf_pass *p, float *out, float *ldj,
                         const float *in, int fwd) {
    const coupling *c = (const coupling *)b;
    size_t n = p->n, d = b->d;
    cws w;
    unsigned char *cur = p->scratch;
    if (p->tape) carve_region(c, p->tape, n, &w);
    else cur = carve_region(c, cur, n, &w);
    st_view v;
    run_nets(c, p, &w, cur, in, &v);
    if (c->tx.bins) {
        const float *pr = net_out(c, &w, 0, n);
        size_t rs = nf__eltx_np(&c->tx) * c->nt;
        for (size_t i = 0; i < n; i++) {
            double acc = 0, o;
            for (size_t j = 0; j < c->nc; j++) out[i * d + c->ci[j]] = in[i * d + c->ci[j]];
            for (size_t j = 0; j < c->nt; j++) {
                double u = in[i * d + c->ti[j]];
                acc += fwd ? -nf__eltx_invert(&c->tx, pr + i * rs + j, c->nt, u, &o)
                           : nf__eltx_eval(&c->tx, pr + i * rs + j, c->nt, u, &o);
                out[i * d + c->ti[j]] = (float)o;
            }
            if (ldj) ldj[i] += (float)acc;
        }
        return NF_OK;
    }
    for (size_t i = 0; i < n; i++) {
        double acc = 0;
        for (size_t j = 0; j < c->nc; j++) out[i * d + c->ci[j]] = in[i * d + c->ci[j]];
        for (size_t j = 0; j < c->nt; j++) {
            double s = scale_of(c, &v, i, j), sh = v.sh[i * v.shs + j];
            double u = in[i * d + c->ti[j]];
            out[i * d + c->ti[j]] = (float)(fwd ? u * exp(s) + sh : (u - sh) * exp(-s));
            acc += s;
        }
        if (ldj) ldj[i] += (float)(fwd ? acc : -acc);
    }
    return NF_OK;
}

static nf_status cp_forward(const nf_bijector *b, const nf_pass *p, float *y, float *ldj, const float *x) {
    return cp_pass(b, p, y, ldj, x, 1);
}
static nf_status cp_inverse(const nf_bijector *b, const nf_pass *p, float *x, float *ldj, const float *y) {
    return cp_pass(b, p, x, ldj, y, 0);
}

/* The spline's part of the backward pass: the transformed coordinates'
 * input gradients (gin, may be NULL) and the net outputs' gradients (dout);
 * yd is the data-side batch (the pass output when fwd, its input otherwise). */
static void spline_backward(const coupling *c, float *gin, float *dout, const float *g, const float *gl,
                            const float *yd, const float *pr, size_t n, int fwd) {
    size_t d = c->base.d, nt = c->nt, rs = nf__eltx_np(&c->tx) * nt;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < nt; j++) {
            const float *pp = pr + i * rs + j;
            float *dp = dout + i * rs + j;
            double y = yd[i * d + c->ti[j]], gg = g[i * d + c->ti[j]], gx;
            if (fwd) {
                double z, l = nf__eltx_eval(&c->tx, pp, nt, y, &z), glx;
                nf__eltx_grad(&c->tx, pp, nt, y, z, 0, gl[i], &glx, dp);
                double wv = (gg - glx) / exp(l);
                nf__eltx_grad(&c->tx, pp, nt, y, z, wv, gl[i], &gx, dp);
                for (size_t k = 0; k < rs; k += nt) dp[k] = -dp[k];
                gx = wv;
            } else {
                nf__eltx_grad(&c->tx, pp, nt, y, 0, gg, gl[i], &gx, dp); /* splines: z unused */
            }
            if (gin) gin[i * d + c->ti[j]] = (float)gx;
        }
}

/* The affine part of the backward pass (see the top of the file). */
static void affine_backward(const coupling *c, const cws *wsp, float *gin, float *dout, const float *g,
                            const float *gl, const float *out, size_t n, int fwd) {
    size_t d = c->base.d, nt = c->nt;
    const cws w = *wsp;
    st_view v;
    if (c->shift_only) v = (st_view){NULL, net_out(c, &w, 0, n), 0, nt};
    else if (c->separate) v = (st_view){net_out(c, &w, 0, n), net_out(c, &w, 1, n), nt, nt};
    else v = (st_view){net_out(c, &w, 0, n) + nt, net_out(c, &w, 0, n), 2 * nt, 2 * nt};
    /* gradients of the nets' outputs; layout follows the nets */
    float *dsh, *ds;
    size_t dstride;
    if (c->shift_only) dsh = dout, ds = NULL, dstride = nt;
    else if (c->separate) ds = dout, dsh = dout + n * nt, dstride = nt;
    else dsh = dout, ds = dout + nt, dstride = 2 * nt;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < nt; j++) {
            double s = scale_of(c, &v, i, j), sh = v.sh[i * v.shs + j];
            double gg = g[i * d + c->ti[j]], gt, gsh, gs;
            if (fwd) {
                double es = exp(s);
                gt = gg * es, gsh = gg, gs = gg * ((double)out[i * d + c->ti[j]] - sh) + gl[i];
            } else {
                double ems = exp(-s);
                gt = gg * ems, gsh = -gg * ems, gs = -gg * (double)out[i * d + c->ti[j]] - gl[i];
            }
            if (gin) gin[i * d + c->ti[j]] = (float)gt;
            dsh[i * dstride + j] = (float)gsh;
            if (ds) ds[i * dstride + j] = (float)(c->tanh_scale ? gs * (1 - s * s) : gs);
        }
}

/* Shared backward.  in: the pass input, out: its output, g: upstream gradient
 * of out, gl: of the log-det; writes gin (may be NULL). */
static nf_status cp_backward(const nf_bijector *b, const nf_pass *p, float *gin, float *dparams,
                             const float *g, const float *gl, const float *in, const float *out, int fwd) {
    const coupling *c = (const coupling *)b;
    size_t n = p->n, d = b->d, nt = c->nt, nc = c->nc, ni = c->ni;
    cws w;
    carve_region(c, p->tape, n, &w);
    unsigned char *cur = (unsigned char *)p->scratch + region_bytes(c, n);
    unsigned char *nscratch = cur;
    cur += net_scratch(c, n);
    float *dout = nf__carve(&cur, out_width(c) * n * sizeof(float));
    float *dxc = nf__carve(&cur, n * ni * sizeof(float));
    float *dxc2 = nf__carve(&cur, n * ni * sizeof(float));
    if (c->tx.bins) spline_backward(c, gin, dout, g, gl, fwd ? out : in, net_out(c, &w, 0, n), n, fwd);
    else affine_backward(c, &w, gin, dout, g, gl, out, n, fwd);
    /* back through the nets */
    memset(dxc, 0, n * ni * sizeof(float));
    float *P = c->base.params, *DP = dparams;
    for (int k = 0; k < c->nnets; k++) {
        const nf_mlp *m = &c->net[k];
        float *dk = c->separate && k == 1 ? dout + n * nt : dout;
        nf__mlp_backward(m, nf__be(p->be), P, DP, gin ? dxc2 : NULL, dk, w.ntape[k], nscratch, w.xc, n);
        if (gin)
            for (size_t q = 0; q < n * ni; q++) dxc[q] += dxc2[q];
        size_t np = nf__mlp_param_count(m);
        P += np;
        if (DP) DP += np;
    }
    if (gin)
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < nc; j++) gin[i * d + c->ci[j]] = g[i * d + c->ci[j]] + dxc[i * ni + j];
    return NF_OK;
}

static nf_status cp_forward_backward(const nf_bijector *b, const nf_pass *p, float *dx, float *dparams,
                                     const float *dy, const float *dldj, const float *x, const float *y) {
    return cp_backward(b, p, dx, dparams, dy, dldj, x, y, 1);
}
static nf_status cp_inverse_backward(const nf_bijector *b, const nf_pass *p, float *dy, float *dparams,
                                     const float *dx, const float *dldj, const float *y, const float *x) {
    return cp_backward(b, p, dy, dparams, dx, dldj, y, x, 0);
}

static nf_status cp_init(nf_bijector *b, nf_rng *rng) {
    coupling *c = (coupling *)b;
    float *P = b->params;
    for (int k = 0; k < c->nnets; k++) {
        nf__mlp_init_params(&c->net[k], P, rng, c->opts.init, c->opts.zero_last);
        P += nf__mlp_param_count(&c->net[k]);
    }
    return NF_OK;
}

static nf_status cp_tensors(const nf_bijector *b, const char *prefix, size_t off, nf_tensor_fn fn, void *ctx) {
    const coupling *c = (const coupling *)b;
    const char *names[2] = {c->separate ? "s_net." : c->shift_only ? "t_net." : "net.", "t_net."};
    for (int k = 0; k < c->nnets; k++) {
        char p[160];
        snprintf(p, sizeof p, "%s%s", prefix, names[k]);
        NF_TRY(nf__mlp_tensors(&c->net[k], p, off, fn, ctx));
        off += nf__mlp_param_count(&c->net[k]);
    }
    return NF_OK;
}

static void cp_destroy(nf_bijector *b) {
    coupling *c = (coupling *)b;
    free(c->ci);
    free(c->ti);
    for (int k = 0; k < 2; k++) nf__mlp_free_masks(&c->net[k]); /* a convnet's state */
}

static const nf_bijector_ops coupling_ops = {
    .name = "coupling",
    .forward = cp_forward,
    .inverse = cp_inverse,
    .forward_backward = cp_forward_backward,
    .inverse_backward = cp_inverse_backward,
    .scratch_bytes = cp_scratch_bytes,
    .tape_bytes = cp_tape_bytes,
    .init_params = cp_init,
    .tensors = cp_tensors,
    .destroy = cp_destroy,
};

nf_status nf_bijector_coupling(size_t d, const nf_coupling_opts *o, nf_rng *rng, nf_bijector **out) {
    const char *fn = "nf_bijector_coupling";
    NF_TRY(nf__check_ctor(fn, d, out));
    if (!o || !rng) return nf__err(NF_ERR_ARG, "%s: opts and rng must not be NULL", fn);
    if (d < 2) return nf__err(NF_ERR_ARG, "%s: a coupling layer needs d >= 2, got %zu", fn, d);
    size_t nm = o->num_masked;
    if (!o->mask && nm == 0) {
        if (!(o->fraction_masked > 0 && o->fraction_masked < 1))
            return nf__err(NF_ERR_ARG, "%s: give a mask, num_masked, or fraction_masked in (0, 1) (got %g)", fn,
                           (double)o->fraction_masked);
        nm = (size_t)floor((double)o->fraction_masked * (double)d);
    }
    size_t nc = 0;
    for (size_t j = 0; j < d; j++) nc += o->mask ? o->mask[j] != 0 : j < nm;
    if (nc == 0 || nc == d)
        return nf__err(NF_ERR_ARG, "%s: the mask must condition on 1..d-1 coordinates, it selects %zu of %zu", fn, nc, d);
    coupling tmp = {0};
    NF_TRY(nf__eltx_from_opts(fn, o->spline_bins, o->spline_bound, &tmp.tx));
    if (tmp.tx.bins && (o->shift_only || o->separate_nets))
        return nf__err(NF_ERR_ARG, "%s: a spline coupling uses one network; shift_only and separate_nets must be 0", fn);
    if (o->context_dim > (1u << 20)) return nf__err(NF_ERR_ARG, "%s: context_dim %zu is too large", fn, o->context_dim);
    tmp.nc = nc, tmp.nt = d - nc, tmp.ni = nc + o->context_dim;
    tmp.separate = o->separate_nets && !o->shift_only;
    tmp.shift_only = o->shift_only, tmp.tanh_scale = o->tanh_scale && !o->shift_only && !o->spline_bins;
    tmp.nnets = tmp.separate ? 2 : 1;
    tmp.opts = o->net;
    int image = o->image[0] || o->image[1] || o->image[2];
    if (image && (o->image[0] * o->image[1] * o->image[2] != d || o->context_dim))
        return nf__err(NF_ERR_ARG, "%s: image %zu x %zu x %zu must have d = %zu entries and no context", fn, o->image[0],
                       o->image[1], o->image[2], d);
    size_t outw = tmp.separate || tmp.shift_only ? tmp.nt : out_width(&tmp);
    tmp.ci = malloc(nc * sizeof(size_t));
    tmp.ti = malloc((d - nc) * sizeof(size_t));
    nf_status s = !tmp.ci || !tmp.ti ? nf__err(NF_ERR_NOMEM, "out of memory") : NF_OK;
    for (size_t j = 0, a = 0, t = 0; !s && j < d; j++) {
        int cond = o->mask ? o->mask[j] != 0 : j < nm;
        if (cond) tmp.ci[a++] = j;
        else tmp.ti[t++] = j;
    }
    for (int k = 0; k < tmp.nnets && !s; k++) {
        if (image) {
            s = nf__mlp_init_conv(&tmp.net[k], o->image, tmp.ci, tmp.nc, tmp.ti, tmp.nt, outw / tmp.nt, &o->net);
            continue;
        }
        s = nf__mlp_init_net(&tmp.net[k], tmp.ni, &o->net, outw);
        /* Initialise as a network reading the whole masked vector (dataflowr,
         * TFP's template on x * mask): the same weight distribution as the
         * reference, though only the n_c live inputs are stored. */
        tmp.net[k].fan_in0 = d + o->context_dim;
    }
    size_t np = 0;
    for (int k = 0; k < tmp.nnets; k++) np += nf__mlp_param_count(&tmp.net[k]);
    coupling *c = s ? NULL : (coupling *)nf__bijector_alloc(sizeof(coupling), &coupling_ops, d, np);
    if (!c) {
        free(tmp.ci), free(tmp.ti);
        for (int k = 0; k < 2; k++) nf__mlp_free_masks(&tmp.net[k]);
        return nf__err_prefix(s ? s : NF_ERR_NOMEM, fn);
    }
    nf_bijector base = c->base;
    *c = tmp;
    c->base = base;
    c->base.dc = o->context_dim;
    c->base.name = tmp.shift_only ? "nice" : tmp.tx.bins ? "spline_coupling" : "realnvp";
    cp_init(&c->base, rng);
    *out = &c->base;
    return NF_OK;
}

nf_status nf_bijector_realnvp(size_t d, size_t layers, const nf_coupling_opts *o, nf_rng *rng,
                              nf_bijector **out) {
    const char *fn = "nf_bijector_realnvp";
    NF_TRY(nf__check_ctor(fn, d, out));
    if (!o || layers == 0 || layers > 1024)
        return nf__err(NF_ERR_ARG, "%s: needs opts and 1..1024 layers, got %zu", fn, layers);
    nf_bijector **bs = calloc(layers, sizeof *bs);
    unsigned char *mask = malloc(d);
    if (!bs || !mask) {
        free(bs), free(mask);
        return nf__err(NF_ERR_NOMEM, "%s: out of memory", fn);
    }
    nf_status s = NF_OK;
    for (size_t k = 0; k < layers && !s; k++) {
        nf_coupling_opts ok = *o;
        for (size_t j = 0; j < d; j++) mask[j] = (unsigned char)((j + k) % 2 == 1);
        ok.mask = mask;
        /* application order k = 0 first: it goes last in the TFP-ordered list */
        s = nf_bijector_coupling(d, &ok, rng, &bs[layers - 1 - k]);
    }
    if (!s && layers == 1) *out = bs[0]; /* one layer is the coupling itself */
    else if (!s) s = nf_bijector_chain(bs, layers, out);
    if (s) {
        for (size_t k = 0; k < layers; k++) nf_bijector_free(bs[k]);
        nf__err_prefix(s, fn);
    }
    free(bs), free(mask);
    return s;
}

int nf__coupling_describe(const nf_bijector *b, nf_coupling_desc *o) {
    if (b->ops != &coupling_ops) return 0;
    const coupling *c = (const coupling *)b;
    *o = (nf_coupling_desc){c->nc, c->nt, c->ni, c->ci, c->ti, {&c->net[0], &c->net[1]}, c->nnets, c->separate,
                            c->tanh_scale, c->shift_only, c->tx};
    return 1;
}
