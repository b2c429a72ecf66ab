/*
 * prog.c - a flow compiled for a device (prog.h): the layers' passes as
 * device products (dev.h gemm) and kernels (kern.h), mirroring the CPU
 * files' maths (nn/mlp.c, bijectors/coupling.c, maf.c, permute.c,
 * dist/normal.c) so that the device and the CPU agree to rounding.
 *
 * Layers are held in application order (base -> data, as a chain's parts).
 * The density (inverse) runs them last first; with a training program the
 * values between layers u[l] (u[L] = the batch, u[0] = z) and each layer's
 * network tape stay on the device for the backward pass.
 */
#include "prog.h"
#include "../core/core.h"
#include "../bijectors/describe.h"
#include "../dist/dist_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An MLP on the device: nn.h's nf_mlp with its parameters at `off` of the
 * flat buffer (MADE masks: the weights are uploaded masked, and a training
 * program's gradient is masked once per step, nf_dprog.gmask). */
typedef struct dmlp {
    size_t nlin, w[NF_MLP_MAX_LAYERS + 1], off;
    int act, residual;
    unsigned char masked[NF_MLP_MAX_LAYERS]; /* the layer has a MADE mask (host->masks[l]) */
    const nf_mlp *host;
} dmlp;

enum { L_COUPLING, L_PERMUTE, L_MAF, L_ACTNORM, L_LU, L_BN };

typedef struct dlayer {
    int kind;
    size_t off, np;
    /* coupling */
    size_t nc, nt, ni;
    int *ci, *ti;
    int nnets, separate, tanh_scale, shift_only;
    dmlp net[2];
    /* permute */
    int *perm;
    /* maf (and spline couplings: tx) */
    nf_eltx tx;
    size_t npc; /* the transform's parameters per coordinate */
    int first_free;
    int inv; /* an inverted MAF (IAF): its density is the MAF's sampling pass */
    /* batch norm: running averages (device; the host's state at host_run), its statistics (2d doubles) */
    float *run, *host_run;
    double *mr;
    const size_t *by_degree;
    /* tapes (training: this layer's own; else shared) */
    float *xc, *tape[2];
} dlayer;

struct nf_dprog {
    nf_device *dv;
    size_t d, dc, L, R;     /* dc: context values per row (conditional flows), 0: none */
    float *xin;             /* R x (d + dc): a conditional MADE's input rows [x | context] */
    int train;
    dlayer *lay;
    nf_dprog_train tb;
    float *loc, *scale;     /* the base's */
    float *u;               /* training: (L + 1) x R x d; else 2 x R x d */
    float *ldj, *rowv, *gl; /* R each */
    float *gz[2];           /* R x d each */
    float *ones;            /* R ones (bias gradients as products) */
    float *gmask;           /* P: 0 at MADE-masked weights, else 1 (training; NULL: no masks) */
    float *gb[4];           /* MLP backward: 2 R x widest each (twin nets: the second copy at sG) */
    size_t sG;              /* R x widest */
    float *dout, *dxc[2];   /* R x (widest output), R x widest input each */
    float *fb[3];           /* R x d each: an IAF's backward (1/T', gl dlogT'/dx, w) */
    double *lust;           /* R x 3d: LU layers' per-row scratch */
    float *bnt, *bns;       /* batch norm: per-row terms (R x 3d), column sums (3d + 1) */
    int bn_mode;            /* batch norm in density passes: 0 running averages, 2 the batch's (and update them) */
    float *lub;             /* LU backward: dy (R x d), [dc | a] (R x 2d), da (R x d), two d x d sums, sum gl */
    float *tapes;           /* every layer's tape, one block */
    void *words;            /* a chunk's generator words (sampling; allocated on first use) */
    float *hostbuf;         /* host: P floats (masked parameters on their way) */
    float *hrow;            /* host: R floats */
    size_t bytes;           /* device memory held */
};

#define OPS(p) ((p)->dv->ops)
#define ST(p) ((p)->dv->st)

nf_status nf__device_open(const nf_dev_ops *ops, int index, nf_device **out) {
    nf_device *dv = calloc(1, sizeof *dv);
    if (!dv) return nf__err(NF_ERR_NOMEM, "out of memory");
    nf_status s = ops->open(index, &dv->st);
    if (s) {
        free(dv);
        return s;
    }
    dv->ops = ops, dv->index = index;
    snprintf(dv->name, sizeof dv->name, "%s:%d", ops->name, index);
    *out = dv;
    return NF_OK;
}

void nf__device_close(nf_device *dv) {
    if (!dv) return;
    dv->ops->close(dv->st);
    free(dv);
}

/* ---- what runs --------------------------------------------------------- */

/* The flow's layers in application order, nested chains flattened: into
 * *out (malloc'ed; NULL on failure), their number returned. */
static size_t flatten_into(const nf_bijector *b, const nf_bijector **out, size_t k) {
    nf_bijector *const *parts;
    size_t np = nf__chain_parts(b, &parts);
    if (!np) {
        if (out) out[k] = b;
        return k + 1;
    }
    for (size_t i = 0; i < np; i++) k = flatten_into(parts[i], out, k);
    return k;
}

static size_t layer_parts(const nf_flow *f, const nf_bijector ***out) {
    size_t L = flatten_into(f->bij, NULL, 0);
    *out = malloc(L * sizeof **out);
    if (*out) flatten_into(f->bij, *out, 0);
    return L;
}

static nf_status check_mlp(const nf_mlp *m, const char *what, size_t l, const char *device) {
    if (m->conv) return nf__err(NF_ERR_UNSUPPORTED, "--device %s: layer %zu (%s) has a convolutional network; "
                                "image flows run on the CPU only", device, l, what);
    return NF_OK;
}

static nf_status check_layer(const nf_bijector *b, size_t l, const char *device) {
    nf_coupling_desc c;
    nf_maf_desc m;
    const size_t *perm;
    if (nf__coupling_describe(b, &c)) {
        for (int k = 0; k < c.nnets; k++) NF_TRY(check_mlp(c.net[k], b->name, l, device));
        return NF_OK;
    }
    if (nf__maf_describe(b, &m)) return check_mlp(m.made, b->name, l, device);
    const nf_bijector *inner;
    if (nf__invert_describe(b, &inner) && nf__maf_describe(inner, &m)) return check_mlp(m.made, b->name, l, device);
    if (nf__actnorm_describe(b) || nf__lu_describe(b, &perm) || nf__batchnorm_describe(b)) return NF_OK;
    if (nf__permute_describe(b, &perm)) return NF_OK;
    return nf__err(NF_ERR_UNSUPPORTED, "--device %s: layer %zu (%s) has no device kernels; a device runs couplings "
                   "(realnvp, nice, nsf), maf, iaf, actnorm, batchnorm, lu_linear and permutations on a normal base", device, l, b->name);
}

nf_status nf__dprog_check(const nf_flow *f, const char *device) {
    const float *loc, *scale;
    if (!nf__dist_normal_describe(f->base, &loc, &scale))
        return nf__err(NF_ERR_UNSUPPORTED, "--device %s: the base %s has no device kernels (a normal base does)", device,
                       f->base->name);
    const nf_bijector **parts;
    size_t L = layer_parts(f, &parts);
    if (!parts) return nf__err(NF_ERR_NOMEM, "out of memory");
    nf_status s = NF_OK;
    for (size_t l = 0; l < L && !s; l++) s = check_layer(parts[l], l, device);
    free(parts);
    return s;
}

/* ---- building ---------------------------------------------------------- */

static void *dalloc(nf_dprog *p, size_t bytes, nf_status *s) {
    if (*s) return NULL;
    void *q = OPS(p)->alloc(ST(p), bytes);
    if (!q) *s = nf__err(NF_ERR_NOMEM, "%s: out of device memory (%zu bytes more, %zu held)", p->dv->name, bytes,
                         p->bytes);
    p->bytes += bytes;
    return q;
}

static int *put_index(nf_dprog *p, const size_t *ix, size_t n, nf_status *s) {
    int *d = dalloc(p, n * sizeof(int), s);
    int *h = malloc(n * sizeof(int));
    if (!h && !*s) *s = nf__err(NF_ERR_NOMEM, "out of memory");
    for (size_t j = 0; !*s && j < n; j++) h[j] = (int)ix[j];
    if (!*s) *s = OPS(p)->put(ST(p), d, h, n * sizeof(int));
    free(h);
    return d;
}

static size_t mlp_tape(const dmlp *m, size_t n) {
    size_t t = 0;
    for (size_t l = 1; l <= m->nlin; l++) t += n * m->w[l];
    return t;
}

static size_t mlp_widest(const dmlp *m) {
    size_t w = 0;
    for (size_t l = 0; l <= m->nlin; l++) w = m->w[l] > w ? m->w[l] : w;
    return w;
}

static void make_mlp(dmlp *m, const nf_mlp *h, size_t off) {
    memset(m, 0, sizeof *m);
    m->nlin = h->nlin, m->off = off, m->act = (int)h->act, m->residual = h->residual, m->host = h;
    memcpy(m->w, h->w, sizeof m->w);
    for (size_t l = 0; l < h->nlin; l++) m->masked[l] = h->masks[l] && !h->ones[l];
}

/* Every masked weight of an MLP in the all-parameter mask gm (1 elsewhere);
 * returns whether there was one. */
static int mark_masks(const dmlp *m, float *gm) {
    float *w = gm + m->off;
    int any = 0;
    for (size_t q = 0; q < m->nlin; q++) {
        size_t a = m->w[q], b = m->w[q + 1];
        if (m->masked[q]) memcpy(w, m->host->masks[q], a * b * sizeof(float)), any = 1;
        w += a * b + b;
    }
    return any;
}

/* Floats of layer l's tape for n rows (xc and the nets'). */
static size_t layer_tape(const dlayer *y, size_t n) {
    if (y->kind == L_COUPLING) {
        size_t t = n * y->ni;
        for (int k = 0; k < y->nnets; k++) t += mlp_tape(&y->net[k], n);
        return t;
    }
    return y->kind == L_MAF ? mlp_tape(&y->net[0], n) : 0;
}

static void carve_tape(dlayer *y, float *t, size_t n) {
    if (y->kind == L_COUPLING) {
        y->xc = t, t += n * y->ni;
        for (int k = 0; k < y->nnets; k++) y->tape[k] = t, t += mlp_tape(&y->net[k], n);
    } else if (y->kind == L_MAF) {
        y->tape[0] = t;
    }
}

static void build_layer(nf_dprog *p, dlayer *y, const nf_bijector *b, size_t off, nf_status *s) {
    nf_coupling_desc c;
    nf_maf_desc m;
    const size_t *perm;
    const nf_bijector *inner = NULL;
    y->off = off, y->np = b->nparams;
    if (nf__coupling_describe(b, &c)) {
        y->kind = L_COUPLING;
        y->nc = c.nc, y->nt = c.nt, y->ni = c.ni;
        y->nnets = c.nnets, y->separate = c.separate, y->tanh_scale = c.tanh_scale, y->shift_only = c.shift_only;
        y->tx = c.tx, y->npc = nf__eltx_np(&c.tx);
        y->ci = put_index(p, c.ci, c.nc, s);
        y->ti = put_index(p, c.ti, c.nt, s);
        size_t o = off;
        for (int k = 0; k < c.nnets; k++) {
            make_mlp(&y->net[k], c.net[k], o);
            o += nf__mlp_param_count(c.net[k]);
        }
    } else if (nf__actnorm_describe(b)) {
        y->kind = L_ACTNORM;
    } else if (nf__batchnorm_describe(b)) {
        y->kind = L_BN;
        y->host_run = nf__batchnorm_describe(b);
        y->run = dalloc(p, 2 * b->d * sizeof(float), s);
        y->mr = dalloc(p, 2 * b->d * sizeof(double), s);
    } else if (nf__lu_describe(b, &perm)) {
        y->kind = L_LU;
        y->perm = put_index(p, perm, b->d, s);
    } else if (nf__maf_describe(b, &m) || (nf__invert_describe(b, &inner) && nf__maf_describe(inner, &m))) {
        y->kind = L_MAF;
        y->inv = inner != NULL;
        y->tx = m.tx, y->npc = m.np, y->first_free = m.first_free, y->by_degree = m.by_degree;
        make_mlp(&y->net[0], m.made, off);
        y->nnets = 1;
    } else if (nf__permute_describe(b, &perm)) {
        y->kind = L_PERMUTE;
        y->perm = put_index(p, perm, b->d, s);
    }
}

size_t nf__dprog_rows_for(const nf_flow *f, size_t bytes, size_t cap) {
    const nf_bijector **parts;
    size_t L = layer_parts(f, &parts), per = 0, widest = f->d;
    for (size_t l = 0; parts && l < L; l++) {
        nf_coupling_desc c;
        nf_maf_desc m;
        const nf_mlp *nets[2] = {NULL, NULL};
        size_t t = 0;
        if (nf__coupling_describe(parts[l], &c)) nets[0] = c.net[0], nets[1] = c.nnets > 1 ? c.net[1] : NULL, t = c.ni;
        else if (nf__maf_describe(parts[l], &m)) nets[0] = m.made;
        for (int k = 0; k < 2; k++)
            for (size_t q = 0; nets[k] && q <= nets[k]->nlin; q++) {
                if (q) t += nets[k]->w[q];
                widest = nets[k]->w[q] > widest ? nets[k]->w[q] : widest;
            }
        per = t > per ? t : per;
    }
    free(parts);
    per += 2 * f->d + 2 + widest; /* the values between layers, ldj, log p, a residual net's act(input) */
    size_t r = bytes / (per * sizeof(float));
    return r < 256 ? 256 : r > cap ? cap : r;
}

nf_status nf__dprog_create(const nf_flow *f, nf_device *dv, size_t R, int train, nf_dprog **out) {
    NF_TRY(nf__dprog_check(f, dv->name));
    const nf_bijector **parts;
    size_t L = layer_parts(f, &parts), d = f->d;
    if (!parts) return nf__err(NF_ERR_NOMEM, "out of memory");
    nf_dprog *p = calloc(1, sizeof *p);
    if (p) p->lay = calloc(L, sizeof *p->lay);
    if (p) p->hostbuf = malloc((f->P ? f->P : 1) * sizeof(float));
    if (p) p->hrow = malloc(R * sizeof(float));
    if (!p || !p->lay || !p->hostbuf || !p->hrow) {
        if (p) free(p->lay), free(p->hostbuf), free(p->hrow);
        free(p);
        free(parts);
        return nf__err(NF_ERR_NOMEM, "out of memory");
    }
    p->dv = dv, p->d = d, p->dc = f->bij->dc, p->L = L, p->R = R, p->train = train;
    nf_status s = NF_OK;
    size_t off = 0, tape = 0, widest = d, outw = 1, inw = 1;
    int iaf = 0, lu = 0, bn = 0;
    for (size_t l = 0; l < L && !s; l++) {
        dlayer *y = &p->lay[l];
        build_layer(p, y, parts[l], off, &s);
        off += parts[l]->nparams;
        size_t lt = layer_tape(y, R);
        tape = train ? tape + lt : (lt > tape ? lt : tape);
        for (int k = 0; k < y->nnets; k++) {
            const dmlp *m = &y->net[k];
            size_t w = mlp_widest(m);
            widest = w > widest ? w : widest;
        }
        if (y->kind == L_COUPLING) {
            size_t ow = y->shift_only ? y->nt : y->npc * y->nt;
            outw = ow > outw ? ow : outw;
            inw = y->ni > inw ? y->ni : inw;
        } else if (y->kind == L_MAF) {
            outw = y->npc * d > outw ? y->npc * d : outw;
            inw = d + p->dc > inw ? d + p->dc : inw;
            iaf = 1; /* (a MAF's sampling-pass backward: reverse KL, IAF densities) */
        } else if (y->kind == L_ACTNORM) {
            outw = 2 * d > outw ? 2 * d : outw;
        } else if (y->kind == L_LU) {
            lu = 1;
        } else if (y->kind == L_BN) {
            bn = 1;
        }
    }
    free(parts);
    size_t P = f->P;
    p->sG = R * widest;
    p->tb.P = P, p->tb.R = R, p->tb.d = d;
    p->tb.p = dalloc(p, (P ? P : 1) * sizeof(float), &s);
    const float *loc, *scale;
    nf__dist_normal_describe(f->base, &loc, &scale);
    p->loc = dalloc(p, d * sizeof(float), &s);
    p->scale = dalloc(p, d * sizeof(float), &s);
    if (!s) s = OPS(p)->put(ST(p), p->loc, loc, d * sizeof(float));
    if (!s) s = OPS(p)->put(ST(p), p->scale, scale, d * sizeof(float));
    p->u = dalloc(p, (train ? L + 1 : 2) * R * d * sizeof(float), &s);
    p->tb.batch = train ? p->u + L * R * d : p->u;
    float *tp = p->tapes = dalloc(p, (tape ? tape : 1) * sizeof(float), &s);
    for (size_t l = 0; l < L && !s; l++) {
        carve_tape(&p->lay[l], tp, R);
        if (train) tp += layer_tape(&p->lay[l], R);
    }
    p->ldj = dalloc(p, R * sizeof(float), &s);
    if (lu) p->lust = dalloc(p, R * 3 * d * sizeof(double), &s);
    if (bn) p->bnt = dalloc(p, R * 3 * d * sizeof(float), &s);
    if (bn) p->bns = dalloc(p, (3 * d + 1) * sizeof(float), &s);
    if (lu && train) p->lub = dalloc(p, (R * 4 * d + 2 * d * d + 1) * sizeof(float), &s);
    if (p->dc) {
        p->tb.ctx = dalloc(p, R * p->dc * sizeof(float), &s);
        p->xin = dalloc(p, R * (d + p->dc) * sizeof(float), &s);
    }
    p->rowv = dalloc(p, R * sizeof(float), &s);
    p->tb.state = dalloc(p, ST_N * sizeof(double), &s);
    if (train) {
        p->tb.g = dalloc(p, (P ? P : 1) * sizeof(float), &s);
        p->tb.mv = dalloc(p, (P ? 2 * P : 1) * sizeof(float), &s);
        p->gl = dalloc(p, R * sizeof(float), &s);
        for (int k = 0; k < 2; k++) p->gz[k] = dalloc(p, R * d * sizeof(float), &s);
        p->ones = dalloc(p, R * sizeof(float), &s);
        float *gm = s ? NULL : malloc((P ? P : 1) * sizeof(float));
        if (!s && !gm) s = nf__err(NF_ERR_NOMEM, "out of memory");
        int any = 0;
        for (size_t i = 0; gm && i < P; i++) gm[i] = 1.0f;
        for (size_t l = 0; gm && l < L; l++)
            for (int k = 0; k < p->lay[l].nnets; k++) any |= mark_masks(&p->lay[l].net[k], gm);
        if (any) p->gmask = dalloc(p, P * sizeof(float), &s);
        if (any && !s) s = OPS(p)->put(ST(p), p->gmask, gm, P * sizeof(float));
        free(gm);
        for (int k = 0; k < 4; k++) p->gb[k] = dalloc(p, 2 * R * widest * sizeof(float), &s);
        p->dout = dalloc(p, R * outw * sizeof(float), &s);
        p->dxc[0] = dalloc(p, 2 * R * inw * sizeof(float), &s); /* the twin nets' input gradients: dxc[1] */
        p->dxc[1] = p->dxc[0] ? p->dxc[0] + R * inw : NULL;
        for (int k = 0; k < 3; k++) p->fb[k] = iaf ? dalloc(p, R * d * sizeof(float), &s) : NULL;
        float *h1 = s ? NULL : malloc(R * sizeof(float));
        if (!s && !h1) s = nf__err(NF_ERR_NOMEM, "out of memory");
        for (size_t i = 0; !s && i < R; i++) h1[i] = 1.0f;
        if (!s) s = OPS(p)->put(ST(p), p->ones, h1, R * sizeof(float));
        free(h1);
        if (!s) OPS(p)->zero(ST(p), p->tb.g, (P ? P : 1) * sizeof(float));
        if (!s) OPS(p)->zero(ST(p), p->tb.mv, (P ? 2 * P : 1) * sizeof(float));
    } else {
        p->gb[0] = dalloc(p, 2 * R * widest * sizeof(float), &s); /* a residual net's act(input) (twins: two) */
    }
    if (!s) OPS(p)->zero(ST(p), p->tb.state, ST_N * sizeof(double));
    if (!s) s = nf__dprog_put_params(p, f->params);
    if (s) {
        nf__dprog_free(p);
        return s;
    }
    *out = p;
    return NF_OK;
}

/* Frees what dalloc gave (the device's free takes NULL). */
void nf__dprog_free(nf_dprog *p) {
    if (!p) return;
    void *st = ST(p);
    const nf_dev_ops *o = OPS(p);
    for (size_t l = 0; l < p->L; l++) {
        dlayer *y = &p->lay[l];
        o->free(st, y->ci), o->free(st, y->ti), o->free(st, y->perm), o->free(st, y->run), o->free(st, y->mr);
    }
    void *bufs[] = {p->words, p->bnt, p->bns, p->lust, p->lub, p->tapes, p->tb.ctx, p->xin, p->tb.p,
                    p->tb.g, p->tb.mv, p->tb.state, p->loc, p->scale, p->u,      p->ldj,   p->rowv,
                    p->gl,   p->gz[0], p->gz[1],  p->ones,  p->gmask, p->gb[0],  p->gb[1], p->gb[2],
                    p->gb[3], p->dout, p->dxc[0], p->fb[0], p->fb[1], p->fb[2]};
    for (size_t k = 0; k < sizeof bufs / sizeof bufs[0]; k++) o->free(st, bufs[k]);
    free(p->lay);
    free(p->hostbuf);
    free(p->hrow);
    free(p);
}

nf_status nf__dprog_put_params(nf_dprog *p, const float *params) {
    size_t P = p->tb.P;
    if (!P) return NF_OK;
    memcpy(p->hostbuf, params, P * sizeof(float));
    for (size_t l = 0; l < p->L; l++) /* MADE masks applied (the CPU's premasked weights) */
        for (int k = 0; k < p->lay[l].nnets; k++) {
            const dmlp *m = &p->lay[l].net[k];
            float *w = p->hostbuf + m->off;
            for (size_t q = 0; q < m->nlin; q++) {
                size_t a = m->w[q], b = m->w[q + 1];
                if (m->masked[q])
                    for (size_t i = 0; i < a * b; i++) w[i] *= m->host->masks[q][i];
                w += a * b + b;
            }
        }
    NF_TRY(OPS(p)->put(ST(p), p->tb.p, p->hostbuf, P * sizeof(float)));
    for (size_t l = 0; l < p->L; l++) /* batch norm's running averages (state) */
        if (p->lay[l].kind == L_BN) NF_TRY(OPS(p)->put(ST(p), p->lay[l].run, p->lay[l].host_run, 2 * p->d * sizeof(float)));
    return NF_OK;
}

nf_status nf__dprog_get_params(nf_dprog *p, float *params) {
    for (size_t l = 0; l < p->L; l++)
        if (p->lay[l].kind == L_BN) NF_TRY(OPS(p)->get(ST(p), p->lay[l].host_run, p->lay[l].run, 2 * p->d * sizeof(float)));
    return p->tb.P ? OPS(p)->get(ST(p), params, p->tb.p, p->tb.P * sizeof(float)) : NF_OK;
}

const nf_dprog_train *nf__dprog_buffers(const nf_dprog *p) { return &p->tb; }
nf_device *nf__dprog_device(const nf_dprog *p) { return p->dv; }

/* ---- networks ---------------------------------------------------------- */

static void launch(nf_dprog *p, int id, size_t count, const nf_kargs *a) {
    if (count) OPS(p)->launch(ST(p), id, count, a);
}

static void gemm(nf_dprog *p, int ta, int tb, size_t m, size_t n, size_t k, float alpha, const float *A, size_t lda,
                 const float *B, size_t ldb, float beta, float *C, size_t ldc) {
    OPS(p)->gemm(ST(p), ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* Twin networks (a coupling's s and t nets, of the same widths) run as one:
 * batched products and twin kernel launches over cnt copies at fixed
 * strides in floats: sP the parameters (and their gradients), sT the tapes,
 * sX the input (0: shared), sD the output gradients, sDX the input
 * gradients; the backward's scratch blocks (gb) at p->sG.  cnt = 1: one net. */
typedef struct twin {
    size_t cnt, sP, sT, sX, sD, sDX;
} twin;
static const twin ONE = {1, 0, 0, 0, 0, 0};

static void gemm_tw(nf_dprog *p, const twin *tw, int ta, int tb, size_t m, size_t n, size_t k, const float *A,
                    size_t lda, size_t sa, const float *B, size_t ldb, size_t sb, float beta, float *C, size_t ldc,
                    size_t sc) {
    if (tw->cnt == 1) gemm(p, ta, tb, m, n, k, 1.0f, A, lda, B, ldb, beta, C, ldc);
    else OPS(p)->gemm_batched(ST(p), ta, tb, m, n, k, 1.0f, A, lda, sa, B, ldb, sb, beta, C, ldc, sc, tw->cnt);
}

/* Kernel id over tw->cnt copies of `per` elements, o0's at stride s0, i0's at s1. */
static void launch_tw(nf_dprog *p, const twin *tw, int id, size_t per, nf_kargs *k, size_t s0, size_t s1) {
    k->tn = per, k->s0 = s0, k->s1 = s1;
    launch(p, id, per * tw->cnt, k);
}

/* out (n x b) = act(in (n x a) W^T + bias), the input at stride sin */
static void linear(nf_dprog *p, const twin *tw, int act, const float *in, size_t sin, const float *W, float *out,
                   size_t n, size_t a, size_t b) {
    gemm_tw(p, tw, 0, 1, n, b, a, in, a, sin, W, a, tw->sP, 0.0f, out, b, tw->sT);
    nf_kargs k = {0};
    k.o0 = out, k.i0 = W + a * b, k.b = b, k.act = act;
    launch_tw(p, tw, K_BIAS_ACT, n * b, &k, tw->sT, tw->sP);
}

/* nn/mlp.c's forward (plain and residual) on the device; returns the
 * (first copy's) output block. */
static const float *mlp_fwd(nf_dprog *p, const dmlp *m, float *tape, const float *x, size_t n, const twin *tw) {
    const float *in = x, *P = p->tb.p + m->off;
    size_t sin = tw->sX;
    float *t = tape;
    for (size_t l = 0; l < m->nlin; l++) {
        size_t a = m->w[l], b = m->w[l + 1];
        if (!m->residual) {
            linear(p, tw, l + 1 < m->nlin ? m->act : NF_ACT_IDENTITY, in, sin, P, t, n, a, b);
        } else {
            const float *src = in;
            size_t ssrc = sin;
            if (l > 0 && l + 1 < m->nlin) { /* reads act(its input) */
                nf_kargs k = {0};
                k.o0 = p->gb[0], k.i0 = in, k.act = m->act;
                launch_tw(p, tw, K_COPY_ACT, n * a, &k, p->sG, sin);
                src = p->gb[0], ssrc = p->sG;
            }
            linear(p, tw, NF_ACT_IDENTITY, src, ssrc, P, t, n, a, b);
            if (l > 0 && l % 2 == 0 && l + 1 < m->nlin) { /* adds its block's input */
                nf_kargs k = {0};
                k.o0 = t, k.i0 = t - n * b - n * a;
                launch_tw(p, tw, K_ADD, n * b, &k, tw->sT, tw->sT);
            }
        }
        in = t, sin = tw->sT;
        t += n * b;
        P += a * b + b;
    }
    return in;
}

/* dW += g^T in, db += sum_rows g (g at stride sg, in at sin; a MADE's
 * masked entries are zeroed once the whole step's gradient is in:
 * nf__dprog_nll) */
static void param_grad(nf_dprog *p, const dmlp *m, const twin *tw, size_t l, float *dW, const float *g, size_t sg,
                       const float *in, size_t sin, size_t n) {
    size_t a = m->w[l], b = m->w[l + 1];
    gemm_tw(p, tw, 1, 0, b, a, n, g, b, sg, in, a, sin, 1.0f, dW, a, tw->sP);
    gemm_tw(p, tw, 0, 0, 1, b, n, p->ones, n, 0, g, b, sg, 1.0f, dW + a * b, b, tw->sP);
}

/* g *= act'(.) through h (strides sg, sh) */
static void act_bwd(nf_dprog *p, const twin *tw, int act, float *g, size_t sg, const float *h, size_t sh, size_t cnt) {
    nf_kargs k = {0};
    k.o0 = g, k.i0 = h, k.act = act;
    launch_tw(p, tw, K_ACT_BWD, cnt, &k, sg, sh);
}

/* nn/mlp.c's backward: dparams (device, may be NULL) +=, dx (may be NULL) =. */
static void mlp_bwd(nf_dprog *p, const dmlp *m, float *dparams, float *dx, float *dout, const float *tape,
                    const float *x, size_t n, const twin *tw) {
    size_t off[NF_MLP_MAX_LAYERS], toff[NF_MLP_MAX_LAYERS], o = 0, to = 0, sG = p->sG;
    for (size_t l = 0; l < m->nlin; l++) {
        off[l] = o, toff[l] = to;
        o += m->w[l] * m->w[l + 1] + m->w[l + 1];
        to += n * m->w[l + 1];
    }
    const float *P = p->tb.p + m->off;
    if (m->residual) {
        float *gs = p->gb[0], *gt = p->gb[1], *ga = p->gb[2], *abuf = p->gb[3];
        size_t L = m->nlin - 1, w = m->w[1], wo = m->w[L + 1];
        if (dparams) param_grad(p, m, tw, L, dparams + off[L], dout, tw->sD, tape + toff[L - 1], tw->sT, n);
        gemm_tw(p, tw, 0, 0, n, w, wo, dout, wo, tw->sD, P + off[L], w, tw->sP, 0.0f, gs, w, sG);
        for (size_t l = L - 1; l >= 2; l -= 2)
            for (size_t j = 0; j < 2; j++) {
                size_t q = l - j;
                const float *g = j ? gt : gs;
                nf_kargs k = {0};
                k.o0 = abuf, k.i0 = tape + toff[q - 1], k.act = m->act;
                launch_tw(p, tw, K_COPY_ACT, n * w, &k, sG, tw->sT);
                if (dparams) param_grad(p, m, tw, q, dparams + off[q], g, sG, abuf, sG, n);
                float *dst = j ? ga : gt;
                gemm_tw(p, tw, 0, 0, n, w, w, g, w, sG, P + off[q], w, tw->sP, 0.0f, dst, w, sG);
                act_bwd(p, tw, m->act, dst, sG, abuf, sG, n * w);
                if (j) {
                    nf_kargs ka = {0};
                    ka.o0 = gs, ka.i0 = ga;
                    launch_tw(p, tw, K_ADD, n * w, &ka, sG, sG);
                }
            }
        if (dparams) param_grad(p, m, tw, 0, dparams + off[0], gs, sG, x, tw->sX, n);
        if (dx) gemm_tw(p, tw, 0, 0, n, m->w[0], w, gs, w, sG, P + off[0], m->w[0], tw->sP, 0.0f, dx, m->w[0], tw->sDX);
        return;
    }
    float *g = dout;
    size_t sg = tw->sD;
    int which = 0;
    for (size_t l = m->nlin; l-- > 0;) {
        size_t a = m->w[l], b = m->w[l + 1];
        const float *outp = tape + toff[l], *in = l ? tape + toff[l - 1] : x;
        size_t sin = l ? tw->sT : tw->sX;
        if (l + 1 < m->nlin) act_bwd(p, tw, m->act, g, sg, outp, tw->sT, n * b);
        if (dparams) param_grad(p, m, tw, l, dparams + off[l], g, sg, in, sin, n);
        if (l == 0 && !dx) break;
        float *next = l == 0 ? dx : p->gb[which];
        size_t snext = l == 0 ? tw->sDX : sG;
        which ^= 1;
        gemm_tw(p, tw, 0, 0, n, a, b, g, b, sg, P + off[l], a, tw->sP, 0.0f, next, a, snext);
        g = next, sg = snext;
    }
}

/* ---- layers ------------------------------------------------------------ */

/* The coupling's nets on the conditioning columns of `in`: raw scales
 * (NULL: NICE) and shifts with their row strides. */
typedef struct st_view {
    const float *s, *sh;
    size_t ss, shs;
} st_view;

/* dst[r][c + j] = src[r][j] for e columns; dst rows of width a. */
static void put_cols(nf_dprog *p, float *dst, size_t a, size_t c, const float *src, size_t e, size_t n) {
    nf_kargs k = {0};
    k.o0 = dst, k.i0 = src, k.a = a, k.c = c, k.e = e;
    launch(p, K_PUT_COLS, n * e, &k);
}

/* A MADE's input rows: x itself, or [x | context] in p->xin (maf.c's made_in). */
static const float *made_in(nf_dprog *p, const float *x, size_t n) {
    if (!p->dc) return x;
    put_cols(p, p->xin, p->d + p->dc, 0, x, p->d, n);
    put_cols(p, p->xin, p->d + p->dc, p->d, p->tb.ctx, p->dc, n);
    return p->xin;
}

/* dx (n x d) += the first d columns of g (n x (d + dc)); g = dx's own width when dc = 0. */
static void add_x_part(nf_dprog *p, float *dx, const float *g, size_t n) {
    nf_kargs k = {0};
    k.o0 = dx, k.i0 = g, k.a = p->d + p->dc, k.e = p->d;
    launch(p, K_ADD_COLS, n * p->d, &k);
}

/* A coupling's nets as twins: two (separate s and t nets, batched) or one. */
static twin coupling_twin(const nf_dprog *p, const dlayer *y, size_t n) {
    twin tw = ONE;
    if (y->nnets == 2)
        tw = (twin){2, y->net[1].off - y->net[0].off, (size_t)(y->tape[1] - y->tape[0]), 0, n * y->nt,
                    p->dxc[0] ? (size_t)(p->dxc[1] - p->dxc[0]) : 0};
    return tw;
}

static st_view coupling_nets(nf_dprog *p, dlayer *y, const float *in, size_t n) {
    nf_kargs k = {0};
    k.o0 = y->xc, k.i0 = in, k.x0 = y->ci, k.a = y->ni, k.c = y->nc, k.d = p->d;
    launch(p, K_GATHER, n * y->nc, &k);
    if (p->dc) put_cols(p, y->xc, y->ni, y->nc, p->tb.ctx, p->dc, n);
    const float *o[2] = {NULL, NULL};
    twin tw = coupling_twin(p, y, n);
    o[0] = mlp_fwd(p, &y->net[0], y->tape[0], y->xc, n, &tw);
    if (y->nnets == 2) o[1] = o[0] + tw.sT; /* the twin's output block */
    st_view v;
    if (y->shift_only || y->tx.bins) v = (st_view){NULL, o[0], 0, y->nt}; /* (a spline's parameters: sh) */
    else if (y->separate) v = (st_view){o[0], o[1], y->nt, y->nt};
    else v = (st_view){o[0] + y->nt, o[0], 2 * y->nt, 2 * y->nt};
    return v;
}

/* Whether a batch norm layer's density pass of n rows uses the batch's statistics. */
static int bn_batch(const nf_dprog *p, size_t n) { return p->bn_mode && n >= 2; }

/* Batch norm's statistics into y->mr: of the n rows y (a density pass in
 * training: the batch's, the running averages updated) or the running averages. */
static void bn_stats(nf_dprog *p, dlayer *y, const float *rows, size_t n) {
    size_t d = p->d;
    nf_kargs k = {0};
    k.st = y->mr, k.o2 = y->run, k.d = d, k.n = n, k.f0 = (float)NF_BN_EPS, k.f1 = (float)NF_BN_MOMENTUM;
    if (rows && bn_batch(p, n)) {
        gemm(p, 0, 0, 1, d, n, 1.0f, p->ones, n, rows, d, 0.0f, p->bns, d);
        nf_kargs q = {0};
        q.o0 = p->bnt, q.i0 = rows, q.i1 = p->bns, q.d = d, q.n = n;
        launch(p, K_BN_SQ, n * d, &q);
        gemm(p, 0, 0, 1, d, n, 1.0f, p->ones, n, p->bnt, d, 0.0f, p->bns + d, d);
        k.i1 = p->bns, k.flag = 1, k.mode = p->bn_mode;
    }
    launch(p, K_BN_STATS, d, &k);
}

/* One layer's pass: fwd 1 (base -> data) or 0 (data -> base). */
static void layer_pass(nf_dprog *p, dlayer *y, float *out, float *ldj, const float *in, size_t n, int fwd) {
    size_t d = p->d;
    nf_kargs k = {0};
    if (y->kind == L_PERMUTE) {
        k.o0 = out, k.i0 = in, k.x0 = y->perm, k.d = d, k.mode = fwd;
        launch(p, K_PERMUTE, n * d, &k);
    } else if (y->kind == L_COUPLING && y->tx.bins) {
        st_view v = coupling_nets(p, y, in, n);
        k.o0 = out, k.o1 = ldj, k.i0 = in, k.i1 = v.sh, k.a = y->npc * y->nt, k.tx = y->tx;
        k.x0 = y->ci, k.x1 = y->ti, k.c = y->nc, k.e = y->nt, k.d = d, k.mode = fwd;
        launch(p, K_SPLINE_COUPLING, n, &k);
    } else if (y->kind == L_COUPLING) {
        st_view v = coupling_nets(p, y, in, n);
        k.o0 = out, k.o1 = ldj, k.i0 = in, k.i1 = v.s, k.i2 = v.sh, k.a = v.ss, k.b = v.shs;
        k.x0 = y->ci, k.x1 = y->ti, k.c = y->nc, k.e = y->nt, k.d = d, k.mode = fwd, k.flag = y->tanh_scale;
        launch(p, K_COUPLING, n, &k);
    } else if (y->kind == L_ACTNORM) {
        k.o0 = out, k.o1 = ldj, k.i0 = in, k.i1 = p->tb.p + y->off, k.d = d, k.mode = fwd;
        launch(p, K_ACTNORM, n, &k);
    } else if (y->kind == L_LU) {
        k.o0 = out, k.o1 = ldj, k.i0 = in, k.i1 = p->tb.p + y->off, k.x0 = y->perm, k.st = p->lust, k.d = d, k.mode = fwd;
        launch(p, K_LU, n, &k);
    } else if (y->kind == L_BN) {
        bn_stats(p, y, fwd ? NULL : in, n);
        k.o0 = out, k.o1 = ldj, k.i0 = in, k.i1 = p->tb.p + y->off, k.st = y->mr, k.d = d, k.mode = fwd;
        launch(p, K_BN, n, &k);
    } else if (!(fwd ^ y->inv)) { /* MAF density (IAF sampling): one pass */
        const float *h = mlp_fwd(p, &y->net[0], y->tape[0], made_in(p, in, n), n, &ONE);
        k.o0 = out, k.o1 = ldj, k.i0 = in, k.i1 = h, k.a = y->npc * d, k.d = d, k.tx = y->tx;
        launch(p, K_MAF_INV, n, &k);
    } else { /* MAF sampling (IAF density): one pass per degree */
        OPS(p)->zero(ST(p), out, n * d * sizeof(float));
        const float *min = made_in(p, out, n); /* [x | context], x kept in step below */
        for (size_t q = 0; q < d; q++) {
            size_t j = y->by_degree[q], hs = y->npc * d;
            const float *h;
            if (q == 0 && y->first_free)
                h = p->tb.p + y->off + y->np - hs, hs = 0; /* the output biases, the same for every row */
            else
                h = mlp_fwd(p, &y->net[0], y->tape[0], min, n, &ONE);
            nf_kargs km = {0};
            km.o0 = out, km.o1 = ldj, km.i0 = in, km.i1 = h, km.a = hs, km.d = d, km.tx = y->tx, km.flag = (int)j;
            if (p->dc) km.o2 = p->xin, km.b = d + p->dc;
            launch(p, K_MAF_FWD, n, &km);
        }
    }
}

/* Backward through an IAF's density pass, a MAF's sampling pass z -> x (z =
 * yin, x = xout, the MADE's tape at x): maf.c's forward_backward, d sweeps
 * of w = (g - MADE_x^T(gp(w)) - gl dlogT'/dx) / T', then the parameters get
 * MADE_theta^T(-gp(w)); dy = w. */
static void iaf_bwd(nf_dprog *p, const dlayer *y, float *dy, const float *g, const float *yin, const float *xout,
                    size_t n) {
    size_t d = p->d, a = y->npc * d;
    const dmlp *m = &y->net[0];
    const float *h = y->tape[0] + mlp_tape(m, n) - n * a;
    float *itp = p->fb[0], *glx = p->fb[1], *w = dy ? dy : p->fb[2], *r = p->dxc[0];
    nf_kargs k = {0};
    k.o0 = itp, k.o1 = glx, k.o2 = p->dout, k.i0 = h, k.i1 = xout, k.i2 = yin, k.i3 = p->gl, k.a = a, k.d = d;
    k.tx = y->tx;
    launch(p, K_MAF_FB_PREP, n * d, &k);
    OPS(p)->zero(ST(p), w, n * d * sizeof(float));
    nf_kargs kg = {0};
    kg.o1 = p->dout, kg.i0 = h, kg.i1 = yin, kg.i2 = w, kg.i3 = p->gl, kg.i4 = xout, kg.a = a, kg.d = d, kg.tx = y->tx;
    nf_kargs kw = {0};
    kw.o0 = w, kw.i0 = g, kw.i1 = r, kw.i2 = glx, kw.i3 = itp, kw.a = d + p->dc, kw.d = d;
    const float *min = made_in(p, xout, n);
    for (size_t sweep = 0; sweep < d; sweep++) {
        launch(p, K_MAF_GP, n * d, &kg);
        mlp_bwd(p, m, NULL, r, p->dout, y->tape[0], min, n, &ONE);
        launch(p, K_MAF_W, n * d, &kw);
    }
    kg.flag = 1;
    launch(p, K_MAF_GP, n * d, &kg);
    mlp_bwd(p, m, p->tb.g + y->off, NULL, p->dout, y->tape[0], min, n, &ONE);
}

/* Backward through an LU layer's pass (lu_linear.c's backward; x the
 * base-side rows): per-row vectors by K_LU_BWD, their products' sums by
 * GEMMs, packed into the parameter gradients by K_LU_PACK; db = -sum dy
 * (inverse) or sum g (forward). */
static void lu_bwd(nf_dprog *p, const dlayer *y, int fwd, float *din, const float *g, const float *x, size_t n) {
    size_t d = p->d;
    float *dyp = p->lub, *dca = dyp + p->R * d, *da = dca + p->R * 2 * d, *m1 = da + p->R * d, *m2 = m1 + d * d;
    float *sgl = m2 + d * d, *P = p->tb.p + y->off, *dparams = p->tb.g + y->off;
    nf_kargs k = {0};
    k.o0 = dyp, k.o1 = dca, k.o2 = da, k.i0 = g, k.i1 = P, k.i2 = x, k.x0 = y->perm, k.st = p->lust, k.d = d, k.mode = fwd;
    launch(p, K_LU_BWD, n, &k);
    gemm(p, 1, 0, d, d, n, 1.0f, dca, 2 * d, dca + d, 2 * d, 0.0f, m1, d);
    gemm(p, 1, 0, d, d, n, 1.0f, da, d, x, d, 0.0f, m2, d);
    gemm(p, 0, 0, 1, 1, n, 1.0f, p->ones, n, p->gl, 1, 0.0f, sgl, 1);
    nf_kargs kp = {0};
    kp.o0 = dparams, kp.i0 = m1, kp.i1 = m2, kp.i2 = P, kp.i3 = sgl, kp.d = d, kp.mode = fwd;
    launch(p, K_LU_PACK, d * d, &kp);
    if (fwd) gemm(p, 0, 0, 1, d, n, 1.0f, p->ones, n, g, d, 1.0f, dparams, d);
    else gemm(p, 0, 0, 1, d, n, -1.0f, p->ones, n, dyp, d, 1.0f, dparams, d);
    if (din) OPS(p)->copy(ST(p), din, dyp, n * d * sizeof(float));
}

/* dy's conditioning columns: g's plus the nets' input gradient (dxc[0]). */
static void scatter_cond(nf_dprog *p, const dlayer *y, float *dy, const float *g, size_t n) {
    nf_kargs k = {0};
    k.o0 = dy, k.i0 = g, k.i1 = p->dxc[0], k.x0 = y->ci, k.a = y->ni, k.c = y->nc, k.d = p->d;
    launch(p, K_SCATTER_ADD, n * y->nc, &k);
}

/* Backward through one pass of layer y (fwd 1: its forward, base -> data;
 * 0: its inverse) from input `in` to output `out`: g = dL/dout, gl =
 * dL/dldj (p->gl); writes din = dL/din (may be NULL) and adds the
 * parameters' gradients into the device gradient. */
static void layer_bwd(nf_dprog *p, dlayer *y, int fwd, float *din, const float *g, const float *in, const float *out,
                      size_t n) {
    size_t d = p->d;
    float *dparams = p->tb.g + y->off;
    nf_kargs k = {0};
    if (y->kind == L_PERMUTE) {
        if (!din) return;
        k.o0 = din, k.i0 = g, k.x0 = y->perm, k.d = d, k.mode = !fwd;
        launch(p, K_PERMUTE, n * d, &k);
    } else if (y->kind == L_COUPLING && y->tx.bins) {
        const dmlp *m = &y->net[0];
        const float *o = y->tape[0] + mlp_tape(m, n) - n * m->w[m->nlin];
        k.o0 = din, k.o1 = p->dout, k.i0 = g, k.i1 = p->gl, k.i2 = fwd ? out : in, k.i3 = o, k.a = y->npc * y->nt;
        k.tx = y->tx, k.x1 = y->ti, k.e = y->nt, k.d = d, k.mode = fwd;
        launch(p, K_SPLINE_COUPLING_BWD, n * y->nt, &k);
        mlp_bwd(p, m, dparams, din ? p->dxc[0] : NULL, p->dout, y->tape[0], y->xc, n, &ONE);
        if (din) scatter_cond(p, y, din, g, n);
    } else if (y->kind == L_COUPLING) {
        size_t nt = y->nt, ni = y->ni;
        const float *o[2] = {NULL, NULL};
        for (int q = 0; q < y->nnets; q++) o[q] = y->tape[q] + mlp_tape(&y->net[q], n) - n * y->net[q].w[y->net[q].nlin];
        float *dsh, *ds;
        size_t dstride;
        const float *s, *sh;
        size_t ss, shs;
        if (y->shift_only) dsh = p->dout, ds = NULL, dstride = nt, s = NULL, sh = o[0], ss = 0, shs = nt;
        else if (y->separate) ds = p->dout, dsh = p->dout + n * nt, dstride = nt, s = o[0], sh = o[1], ss = shs = nt;
        else dsh = p->dout, ds = p->dout + nt, dstride = 2 * nt, s = o[0] + nt, sh = o[0], ss = shs = 2 * nt;
        k.o0 = din, k.o1 = dsh, k.o2 = ds, k.i0 = g, k.i1 = p->gl, k.i2 = out, k.i3 = s, k.i4 = sh;
        k.a = ss, k.b = shs, k.n = dstride, k.x1 = y->ti, k.e = nt, k.d = d, k.mode = fwd, k.flag = y->tanh_scale;
        launch(p, K_COUPLING_BWD, n, &k);
        twin tw = coupling_twin(p, y, n); /* separate nets: s's output gradients at dout, t's at dout + n nt */
        mlp_bwd(p, &y->net[0], dparams + (y->net[0].off - y->off), din ? p->dxc[0] : NULL, p->dout, y->tape[0], y->xc,
                n, &tw);
        if (din) {
            if (y->nnets == 2) {
                nf_kargs ka = {0};
                ka.o0 = p->dxc[0], ka.i0 = p->dxc[1];
                launch(p, K_ADD, n * ni, &ka);
            }
            scatter_cond(p, y, din, g, n);
        }
    } else if (y->kind == L_ACTNORM) {
        const float *P = p->tb.p + y->off;
        k.o0 = din, k.o1 = p->dout, k.i0 = g, k.i1 = p->gl, k.i2 = fwd ? in : out, k.i3 = P, k.d = d, k.mode = fwd;
        launch(p, K_ACTNORM_BWD, n * d, &k);
        gemm(p, 0, 0, 1, 2 * d, n, 1.0f, p->ones, n, p->dout, 2 * d, 1.0f, dparams, 2 * d);
    } else if (y->kind == L_LU) {
        lu_bwd(p, y, fwd, din, g, fwd ? in : out, n);
    } else if (y->kind == L_BN) {
        const float *P = p->tb.p + y->off;
        k.o0 = p->bnt, k.i0 = g, k.i1 = P, k.i2 = in, k.st = y->mr, k.d = d, k.mode = fwd;
        launch(p, K_BN_TERMS, n * d, &k);
        gemm(p, 0, 0, 1, 3 * d, n, 1.0f, p->ones, n, p->bnt, 3 * d, 0.0f, p->bns, 3 * d);
        gemm(p, 0, 0, 1, 1, n, 1.0f, p->ones, n, p->gl, 1, 0.0f, p->bns + 3 * d, 1);
        nf_kargs kb = {0};
        kb.o0 = din, kb.i0 = g, kb.i1 = P, kb.i2 = in, kb.i3 = p->bns, kb.st = y->mr, kb.d = d, kb.n = n, kb.mode = fwd;
        kb.flag = !fwd && bn_batch(p, n);
        if (din) launch(p, K_BN_BWD, n * d, &kb);
        nf_kargs kp = {0};
        kp.o0 = dparams, kp.i1 = P, kp.i3 = p->bns, kp.st = y->mr, kp.d = d, kp.mode = fwd;
        launch(p, K_BN_PGRAD, d, &kp);
    } else if (fwd ^ y->inv) { /* a MAF's sampling pass (IAF's density): z = in -> x = out */
        iaf_bwd(p, y, din, g, in, out, n);
    } else { /* a MAF's density pass (IAF's sampling): x = in -> z = out */
        const dmlp *m = &y->net[0];
        const float *h = y->tape[0] + mlp_tape(m, n) - n * y->npc * d;
        k.o0 = din, k.o1 = p->dout, k.i0 = h, k.i1 = out, k.i2 = g, k.i3 = p->gl, k.i4 = in, k.a = y->npc * d, k.d = d;
        k.tx = y->tx;
        launch(p, K_MAF_INV_BWD, n * d, &k);
        mlp_bwd(p, m, dparams, din ? p->dxc[0] : NULL, p->dout, y->tape[0], made_in(p, in, n), n, &ONE);
        if (din) add_x_part(p, din, p->dxc[0], n);
    }
}

/* ---- whole flows ------------------------------------------------------- */

/* The density of the k rows at `x` (device): z and ldj, rowv = log p(x)
 * (base + ildj).  Training programs keep u[l]; others ping-pong. */
static const float *density(nf_dprog *p, const float *x, size_t k) {
    size_t L = p->L, blk = p->R * p->d;
    OPS(p)->zero(ST(p), p->ldj, k * sizeof(float));
    const float *in = x;
    for (size_t l = L; l-- > 0;) {
        float *out = p->train ? p->u + l * blk : in == p->u ? p->u + blk : p->u;
        layer_pass(p, &p->lay[l], out, p->ldj, in, k, 0);
        in = out;
    }
    return in;
}

/* The step's gradient is in: MADE masks applied, its squared norm (ST_SQ). */
static void grad_done(nf_dprog *p) {
    if (p->gmask) { /* MADE masks: masked weights get no gradient */
        nf_kargs m = {0};
        m.o0 = p->tb.g, m.i0 = p->gmask;
        launch(p, K_MUL, p->tb.P, &m);
    }
    OPS(p)->reduce(ST(p), p->tb.state + ST_SQ, p->tb.g, p->tb.P, 1, 0);
}

void nf__dprog_nll(nf_dprog *p, size_t k, int grad) {
    p->bn_mode = grad ? 2 : 0; /* batch norm: a training step's statistics (validation: the running averages) */
    const float *z = density(p, p->tb.batch, k);
    nf_kargs a = {0};
    a.o0 = p->rowv, a.i0 = z, a.i1 = p->loc, a.i2 = p->scale, a.i3 = p->ldj, a.d = p->d;
    if (grad) a.o1 = p->gz[0], a.o2 = p->gl, a.f0 = 1.0f / (float)k;
    launch(p, K_NORMAL, k, &a);
    OPS(p)->reduce(ST(p), p->tb.state + ST_LOSS, p->rowv, k, 0, 0);
    if (!grad) return;
    /* (p->bn_mode stays 2 through the backward pass: the forward's statistics) */
    size_t blk = p->R * p->d;
    int cur = 0;
    for (size_t l = 0; l < p->L; l++) { /* u[l] = inverse_l(u[l + 1]) */
        float *dy = l + 1 < p->L ? p->gz[cur ^ 1] : NULL;
        layer_bwd(p, &p->lay[l], 0, dy, p->gz[cur], p->u + (l + 1) * blk, p->u + l * blk, k);
        cur ^= 1;
    }
    grad_done(p);
    p->bn_mode = 0;
}

nf_status nf__dprog_kl_forward(nf_dprog *p, const float *z, size_t k, float *y, float *fldj) {
    size_t d = p->d, blk = p->R * d;
    NF_TRY(OPS(p)->put(ST(p), p->u, z, k * d * sizeof(float)));
    OPS(p)->zero(ST(p), p->ldj, k * sizeof(float));
    for (size_t l = 0; l < p->L; l++) /* u[l + 1] = forward_l(u[l]), taped */
        layer_pass(p, &p->lay[l], p->u + (l + 1) * blk, p->ldj, p->u + l * blk, k, 1);
    NF_TRY(OPS(p)->get(ST(p), y, p->u + p->L * blk, k * d * sizeof(float)));
    return OPS(p)->get(ST(p), fldj, p->ldj, k * sizeof(float));
}

nf_status nf__dprog_kl_backward(nf_dprog *p, size_t k, const float *gy, const float *gl) {
    size_t d = p->d, blk = p->R * d;
    NF_TRY(OPS(p)->put(ST(p), p->gz[0], gy, k * d * sizeof(float)));
    NF_TRY(OPS(p)->put(ST(p), p->gl, gl, k * sizeof(float)));
    int cur = 0;
    for (size_t l = p->L; l-- > 0;) {
        float *dx = l ? p->gz[cur ^ 1] : NULL;
        layer_bwd(p, &p->lay[l], 1, dx, p->gz[cur], p->u + l * blk, p->u + (l + 1) * blk, k);
        cur ^= 1;
    }
    grad_done(p);
    return NF_OK;
}

nf_status nf__dprog_log_prob(nf_dprog *p, const float *x, const float *ctx, size_t n, float *lp, float *zout) {
    size_t d = p->d;
    float *in = p->train ? p->tb.batch : p->u;
    for (size_t r = 0; r < n; r += p->R) {
        size_t k = n - r < p->R ? n - r : p->R;
        NF_TRY(OPS(p)->put(ST(p), in, x + r * d, k * d * sizeof(float)));
        if (p->dc) NF_TRY(OPS(p)->put(ST(p), p->tb.ctx, ctx + r * p->dc, k * p->dc * sizeof(float)));
        const float *z = density(p, in, k);
        nf_kargs a = {0};
        a.o0 = p->rowv, a.i0 = z, a.i1 = p->loc, a.i2 = p->scale, a.i3 = p->ldj, a.d = d;
        if (lp) launch(p, K_NORMAL, k, &a);
        if (zout) NF_TRY(OPS(p)->get(ST(p), zout + r * d, z, k * d * sizeof(float)));
        if (lp) NF_TRY(OPS(p)->get(ST(p), lp + r, p->rowv, k * sizeof(float)));
    }
    return NF_OK;
}

/* The forward map of the k base points in device block u[0] (context in
 * place): into host x, and with ldj the forward log-det added into host ldj. */
static nf_status forward_chunk(nf_dprog *p, size_t k, float *x, float *ldj) {
    size_t blk = p->R * p->d;
    float *in = p->u, *out = p->u + blk;
    if (ldj) OPS(p)->zero(ST(p), p->ldj, k * sizeof(float));
    for (size_t l = 0; l < p->L; l++) {
        layer_pass(p, &p->lay[l], out, ldj ? p->ldj : NULL, in, k, 1);
        float *t = in;
        in = out, out = t;
    }
    NF_TRY(OPS(p)->get(ST(p), x, in, k * p->d * sizeof(float)));
    if (ldj) {
        NF_TRY(OPS(p)->get(ST(p), p->hrow, p->ldj, k * sizeof(float)));
        for (size_t i = 0; i < k; i++) ldj[i] += p->hrow[i];
    }
    return NF_OK;
}

nf_status nf__dprog_sample(nf_dprog *p, nf_rng *rng, const float *ctx, size_t n, float *x, float *lpb, float *ldj) {
    size_t d = p->d, N = n * d;
    if (!N) return NF_OK;
    uint64_t st[6];
    nf__rng_get_state(rng, st);
    int spare0 = st[4] != 0;
    double spare;
    memcpy(&spare, &st[5], sizeof spare);
    size_t maxw = 2 * (p->R * d / 2 + 2); /* words of a chunk's pairs */
    uint64_t *w = malloc(maxw * sizeof(uint64_t));
    if (!w) return nf__err(NF_ERR_NOMEM, "out of memory");
    if (!p->words) p->words = OPS(p)->alloc(ST(p), maxw * sizeof(uint64_t));
    nf_status s = p->words ? NF_OK : nf__err(NF_ERR_NOMEM, "%s: out of device memory", p->dv->name);
    size_t next = 0;         /* the next pair the generator has not given yet */
    uint64_t last[2] = {0, 0}; /* the words of pair next - 1 */
    for (size_t r = 0; r < n && !s; r += p->R) {
        size_t k = n - r < p->R ? n - r : p->R, e0 = r * d, e1 = e0 + k * d;
        size_t g0 = e0 > (size_t)spare0 ? e0 : (size_t)spare0; /* the chunk's first draw from a pair */
        size_t b = g0 < e1 ? (g0 - (size_t)spare0) / 2 : next, q1 = g0 < e1 ? (e1 - 1 - (size_t)spare0) / 2 : 0, m = 0;
        if (g0 < e1) {
            if (b < next) w[0] = last[0], w[1] = last[1], m = 1; /* a pair this chunk shares with the last */
            for (; next <= q1; next++, m++) w[2 * m] = nf_rng_u64(rng), w[2 * m + 1] = nf_rng_u64(rng);
            last[0] = w[2 * m - 2], last[1] = w[2 * m - 1];
            s = OPS(p)->put(ST(p), p->words, w, 2 * m * sizeof(uint64_t));
        }
        nf_kargs a = {0};
        a.o0 = p->u, a.i1 = p->loc, a.i2 = p->scale, a.u = (const unsigned long long *)p->words, a.a = e0, a.b = b;
        a.flag = spare0, a.dd = spare, a.d = d;
        if (!s) launch(p, K_NORMAL_DRAW, k * d, &a);
        if (!s && p->dc) s = OPS(p)->put(ST(p), p->tb.ctx, ctx + r * p->dc, k * p->dc * sizeof(float));
        if (!s && lpb) {
            nf_kargs q = {0};
            q.o0 = p->rowv, q.i0 = p->u, q.i1 = p->loc, q.i2 = p->scale, q.d = d;
            launch(p, K_NORMAL, k, &q);
            s = OPS(p)->get(ST(p), lpb + r, p->rowv, k * sizeof(float));
        }
        if (!s) s = forward_chunk(p, k, x + r * d, ldj ? ldj + r : NULL);
    }
    free(w);
    if (s) return s;
    /* the generator's state as after N draws: a pair's sine kept when an odd number was used */
    nf__rng_get_state(rng, st);
    size_t used = N - (size_t)spare0;
    st[4] = used % 2;
    if (used % 2) {
        double sp;
        nf__box_muller(nf__u53(last[0]), nf__u53(last[1]), &sp);
        memcpy(&st[5], &sp, sizeof sp);
    }
    nf__rng_set_state(rng, st);
    return NF_OK;
}
