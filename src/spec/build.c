/*
 * build.c - builds bijectors, distributions and flows from parsed specs.
 * Every builder declares its arguments, so unknown arguments and names are
 * reported with the list of known ones, pointing at the column.
 */
#include "spec.h"
#include "../bijectors/transform.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct bctx {
    const char *text;
    nf_rng *rng;
    int defaults; /* NF_SPEC_DEFAULTS, or a model file's older version (spec.h) */
} bctx;

/* ---- argument access ---------------------------------------------------- */

/* The argument called `key`, or the positional one at `pos` (-1: none). */
static const sp_node *arg(const sp_node *n, const char *key, int pos) {
    for (size_t i = 0; i < n->n; i++)
        if (n->keys[i][0] && !strcmp(n->keys[i], key)) return n->kids[i];
    int k = 0;
    for (size_t i = 0; i < n->n; i++)
        if (!n->keys[i][0] && k++ == pos) return n->kids[i];
    return NULL;
}

/* "a, b, c" from names, whole names only: one that does not fit ends the
 * list with "...". */
static void join_names(char *buf, size_t cap, const char *const *names, size_t count, size_t stride) {
    size_t len = 0;
    buf[0] = 0;
    for (size_t k = 0; k < count; k++) {
        const char *nm = *(const char *const *)((const char *)names + k * stride);
        if (!nm) break;
        size_t need = strlen(nm) + (k ? 2 : 0);
        if (len + need + 4 >= cap) {
            snprintf(buf + len, cap - len, "%s...", k ? ", " : "");
            return;
        }
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", k ? ", " : "", nm);
    }
}

/* Rejects keyword arguments outside `known` (a NULL-terminated list) and
 * more than `npos` positional ones. */
static nf_status check_args(const bctx *c, const sp_node *n, const char *const *known, int npos) {
    int pos = 0;
    for (size_t i = 0; i < n->n; i++) {
        if (!n->keys[i][0]) {
            if (++pos > npos)
                return nf__spec_error(NF_ERR_ARG, c->text, n->kids[i]->col, "%s() takes %d positional argument%s", n->name,
                                      npos, npos == 1 ? "" : "s");
            continue;
        }
        int ok = 0;
        for (int k = 0; known[k]; k++) ok |= !strcmp(known[k], n->keys[i]);
        if (!ok) {
            char list[1024];
            join_names(list, sizeof list, known, SIZE_MAX, sizeof *known);
            return nf__spec_error(NF_ERR_ARG, c->text, n->kids[i]->col, "unknown argument '%s' of %s() (known: %s)",
                                  n->keys[i], n->name, list[0] ? list : "none");
        }
    }
    return NF_OK;
}

static nf_status get_num(const bctx *c, const sp_node *n, const char *key, int pos, double lo, double hi, double def,
                         double *out) {
    const sp_node *v = arg(n, key, pos);
    if (!v) {
        *out = def;
        return NF_OK;
    }
    if (v->kind == SP_NAME && (!strcmp(v->name, "true") || !strcmp(v->name, "false"))) {
        *out = v->name[0] == 't';
    } else if (v->kind != SP_NUM) {
        return nf__spec_error(NF_ERR_ARG, c->text, v->col, "%s of %s() must be a number", key, n->name);
    } else
        *out = v->num;
    if (!(*out >= lo && *out <= hi))
        return nf__spec_error(NF_ERR_ARG, c->text, v->col, "%s of %s() must be in [%g, %g], got %g", key, n->name, lo, hi, *out);
    return NF_OK;
}

static nf_status get_size(const bctx *c, const sp_node *n, const char *key, int pos, size_t lo, size_t hi, size_t def,
                          size_t *out) {
    double v;
    NF_TRY(get_num(c, n, key, pos, (double)lo, (double)hi, (double)def, &v));
    const sp_node *a = arg(n, key, pos);
    if (v != floor(v)) return nf__spec_error(NF_ERR_ARG, c->text, a ? a->col : n->col, "%s of %s() must be a whole number", key, n->name);
    *out = (size_t)v;
    return NF_OK;
}

/* A list of numbers (or one number) with `d` entries: 1 broadcasts when `bcast`. */
static nf_status get_vec(const bctx *c, const sp_node *n, const char *key, int pos, size_t d, float def,
                         float *out, size_t *count) {
    const sp_node *v = arg(n, key, pos);
    if (!v) {
        for (size_t j = 0; j < d; j++) out[j] = def;
        if (count) *count = d;
        return NF_OK;
    }
    if (v->kind == SP_NUM) {
        for (size_t j = 0; j < d; j++) out[j] = (float)v->num;
        if (count) *count = 1;
        return NF_OK;
    }
    if (v->kind != SP_LIST || v->n != d)
        return nf__spec_error(NF_ERR_SHAPE, c->text, v->col, "%s of %s() must be a number or a list of %zu numbers", key,
                              n->name, d);
    for (size_t j = 0; j < d; j++) {
        if (v->kids[j]->kind != SP_NUM)
            return nf__spec_error(NF_ERR_ARG, c->text, v->kids[j]->col, "%s of %s() must hold numbers", key, n->name);
        out[j] = (float)v->kids[j]->num;
    }
    if (count) *count = d;
    return NF_OK;
}

static nf_status get_name(const bctx *c, const sp_node *n, const char *key, const char *const *names, int def,
                          int *out) {
    const sp_node *v = arg(n, key, -1);
    *out = def;
    if (!v) return NF_OK;
    if (v->kind == SP_NAME || (v->kind == SP_CALL && v->n == 0))
        for (int k = 0; names[k]; k++)
            if (!strcmp(names[k], v->name)) {
                *out = k;
                return NF_OK;
            }
    char list[1024];
    join_names(list, sizeof list, names, SIZE_MAX, sizeof *names);
    return nf__spec_error(NF_ERR_ARG, c->text, v->col, "%s of %s() must be one of: %s", key, n->name, list);
}

static const char *const ACTS[] = {"identity", "relu", "leaky_relu", "tanh", "sigmoid", "elu", NULL};
static const char *const INITS[] = {"torch", "glorot", "he", NULL};
static const char *const ORDERS[] = {"natural", "reversed", "random", NULL};
static const char *const SCALES[] = {"unbounded", "tanh", "sigmoid", "softplus", NULL};

/* hidden=[..], activation=, init=, zero_last= */
static nf_status get_net(const bctx *c, const sp_node *n, int def_act, int def_zero, int def_res, nf_net_opts *o) {
    memset(o, 0, sizeof *o);
    const sp_node *h = arg(n, "hidden", -1);
    if (!h) {
        o->hidden[0] = o->hidden[1] = 256, o->nhidden = 2;
    } else if (h->kind == SP_NUM) {
        if (h->num != floor(h->num) || h->num < 1 || h->num > 65536)
            return nf__spec_error(NF_ERR_ARG, c->text, h->col, "hidden widths must be whole numbers in 1..65536");
        o->hidden[0] = (size_t)h->num, o->nhidden = 1;
    } else if (h->kind == SP_LIST && h->n <= NF_MAX_HIDDEN) {
        for (size_t i = 0; i < h->n; i++) {
            const sp_node *w = h->kids[i];
            if (w->kind != SP_NUM || w->num != floor(w->num) || w->num < 1 || w->num > 65536)
                return nf__spec_error(NF_ERR_ARG, c->text, w->col, "hidden widths must be whole numbers in 1..65536");
            o->hidden[i] = (size_t)w->num;
        }
        o->nhidden = h->n;
    } else
        return nf__spec_error(NF_ERR_ARG, c->text, h->col, "hidden must be a list of at most %d widths", NF_MAX_HIDDEN);
    int a, in;
    double z;
    NF_TRY(get_name(c, n, "activation", ACTS, def_act, &a));
    NF_TRY(get_name(c, n, "init", INITS, 0, &in));
    NF_TRY(get_num(c, n, "zero_last", -1, 0, 1, def_zero, &z));
    o->activation = (nf_activation)a, o->init = (nf_init)in, o->zero_last = z != 0;
    NF_TRY(get_num(c, n, "residual", -1, 0, 1, def_res, &z));
    o->residual = z != 0;
    return NF_OK;
}

/* bins=K (0: affine, 2..128: rational-quadratic spline) and bound=B. */
static nf_status get_spline(const bctx *c, const sp_node *n, size_t def_bins, size_t *bins, float *bound) {
    double b;
    NF_TRY(get_size(c, n, "bins", -1, 0, 128, def_bins, bins));
    if (*bins == 1) return nf__spec_error(NF_ERR_ARG, c->text, n->col, "bins must be 0 (affine) or 2..128, got 1");
    NF_TRY(get_num(c, n, "bound", -1, 1e-3, 1e6, 3, &b));
    *bound = (float)b;
    return NF_OK;
}

/* ---- size budget ---------------------------------------------------------- */

/* Specs may not ask for more than this many parameters (512 MiB of floats),
 * checked before anything is allocated. */
#define NF_SPEC_MAX_PARAMS ((size_t)1 << 27)

static double net_params(size_t in, const nf_net_opts *o, size_t out) {
    double t = 0, a = (double)in;
    if (o->residual && o->nhidden) { /* an input layer, then per entry a block of two w x w layers */
        double w = (double)o->hidden[0];
        t = a * w + w + 2 * (double)o->nhidden * (w * w + w);
        a = w;
    } else
        for (size_t l = 0; l < o->nhidden; l++) {
            t += a * (double)o->hidden[l] + (double)o->hidden[l];
            a = (double)o->hidden[l];
        }
    return t + a * (double)out + (double)out;
}

/* A convnet's parameters (3 x 3 convolutions): C input channels, K C outputs. */
static double conv_params(size_t C, const nf_net_opts *o, size_t K) {
    double t = 0, a = (double)C;
    for (size_t l = 0; l < o->nhidden; l++) {
        t += 9 * a * (double)o->hidden[l] + (double)o->hidden[l];
        a = (double)o->hidden[l];
    }
    return t + 9 * a * (double)(K * C) + (double)(K * C);
}

static nf_status check_budget(const bctx *c, const sp_node *n, double params) {
    if (params > (double)NF_SPEC_MAX_PARAMS)
        return nf__spec_error(NF_ERR_ARG, c->text, n->col, "%s() would have %.3g parameters, more than the limit of %zu",
                              n->name, params, NF_SPEC_MAX_PARAMS);
    return NF_OK;
}

/* ---- bijectors ------------------------------------------------------------ */

/* Every builder: the dispatcher has checked the call's arguments against
 * its table row (keyword names, positional count). */
typedef nf_status (*bij_builder)(const bctx *c, const sp_node *n, size_t d, nf_bijector **out);
typedef struct bij_entry {
    nf_spec_builder_info info; /* name, keyword arguments, positional count, summary */
    bij_builder build;         /* reads the arguments and builds, or NULL: */
    nf_status (*make)(size_t d, nf_bijector **out); /* a constructor that takes no argument */
} bij_entry;

static nf_status build_bij(const bctx *c, const sp_node *n, size_t d, nf_bijector **out);

/* Parameters per coordinate of the elementwise transform of a MAF or a
 * coupling layer: affine 2, a spline of K bins 3K - 1 (transform.h). */
static double per_coordinate(size_t bins) {
    nf_eltx t = {bins, 3, 0};
    return (double)nf__eltx_np(&t);
}

/* The end of building a stack of k parts (bs: malloc'ed): with s = NF_OK the
 * one part or their chain; on any failure every part is freed.  bs goes. */
static nf_status finish_stack(nf_status s, nf_bijector **bs, size_t k, nf_bijector **out) {
    if (!s && k == 1) *out = bs[0];
    else if (!s) s = nf_bijector_chain(bs, k, out);
    if (s)
        for (size_t i = 0; i < k; i++) nf_bijector_free(bs[i]);
    free(bs);
    return s;
}

/* maf / iaf stacks: layers with reverse permutations between them. */
static nf_status build_maf_stack(const bctx *c, const sp_node *n, size_t d, int iaf, nf_bijector **out) {
    nf_maf_opts m;
    memset(&m, 0, sizeof m);
    size_t layers = 0;
    int order = 0, scale = 0;
    NF_TRY(get_spline(c, n, 0, &m.spline_bins, &m.spline_bound));
    NF_TRY(get_size(c, n, "context", -1, 0, 1 << 20, 0, &m.context_dim));
    /* defaults (docs/tabular.md measured them): a soft-clamped scale; an identity start for a
     * MAF (density estimation) but not an affine IAF, whose reverse-KL fits start better from
     * random weights (docs/spec.md) */
    int v = c->defaults;
    NF_TRY(get_net(c, n, NF_ACT_RELU, v >= 2 ? !iaf || m.spline_bins > 0 : m.spline_bins > 0, v >= 3 && !iaf, &m.net));
    NF_TRY(get_name(c, n, "order", ORDERS, 0, &order));
    NF_TRY(get_name(c, n, "scale", SCALES, v >= 2 ? NF_SCALE_TANH : NF_SCALE_UNBOUNDED, &scale));
    NF_TRY(get_size(c, n, "layers", -1, 1, 256, 1, &layers));
    m.order = (nf_order)order;
    m.scale = (nf_scale)scale;
    NF_TRY(check_budget(c, n, (double)layers * net_params(d + m.context_dim, &m.net, (size_t)(per_coordinate(m.spline_bins) * (double)d))));
    nf_bijector **bs = calloc(2 * layers, sizeof *bs);
    if (!bs) return nf__err(NF_ERR_NOMEM, "spec: out of memory");
    size_t k = 0;
    nf_status s = NF_OK;
    for (size_t l = 0; l < layers && !s; l++) {
        if (l) s = nf_bijector_reverse(d, &bs[k++]);
        if (!s) s = iaf ? nf_bijector_iaf(d, &m, c->rng, &bs[k++]) : nf_bijector_maf(d, &m, c->rng, &bs[k++]);
    }
    return finish_stack(s, bs, k, out);
}
static nf_status b_maf(const bctx *c, const sp_node *n, size_t d, nf_bijector **out) {
    return build_maf_stack(c, n, d, 0, out);
}
static nf_status b_iaf(const bctx *c, const sp_node *n, size_t d, nf_bijector **out) {
    return build_maf_stack(c, n, d, 1, out);
}

/* coupling(mask=...) as one layer: the mask from mask=, num_masked= (a
 * negative one: the last |num_masked| condition, as TFP's RealNVP) or
 * fraction_masked= (default: the first half conditions). */
/* shape=[C,H,W] (key `key`): an image of d = C H W values; absent: shape[0] = 0. */
static nf_status get_shape(const bctx *c, const sp_node *n, const char *key, size_t d, size_t shape[3]) {
    const sp_node *v = arg(n, key, -1);
    shape[0] = shape[1] = shape[2] = 0;
    if (!v) return NF_OK;
    float t[3];
    NF_TRY(get_vec(c, n, key, -1, 3, 0, t, NULL));
    if (v->kind != SP_LIST) return nf__spec_error(NF_ERR_SHAPE, c->text, v->col, "%s of %s() is a list [C, H, W]", key, n->name);
    for (int k = 0; k < 3; k++) {
        if (!(t[k] >= 1 && t[k] <= 65536 && t[k] == floorf(t[k])))
            return nf__spec_error(NF_ERR_ARG, c->text, v->col, "%s of %s() must hold whole numbers in 1..65536", key, n->name);
        shape[k] = (size_t)t[k];
    }
    if (shape[0] * shape[1] * shape[2] != d)
        return nf__spec_error(NF_ERR_SHAPE, c->text, v->col, "%s of %s(): %zu x %zu x %zu = %zu values, but the data has %zu",
                              key, n->name, shape[0], shape[1], shape[2], shape[0] * shape[1] * shape[2], d);
    return NF_OK;
}

/* Real NVP's image masks (1 = conditioning): checkerboard, (c + y + x) even, or
 * channel, the first half of the channels; parity 1 swaps the halves. */
static unsigned char *image_mask(const size_t sh[3], int checker, int parity) {
    size_t C = sh[0], H = sh[1], W = sh[2];
    unsigned char *m = malloc(C * H * W);
    if (!m) return NULL;
    for (size_t ch = 0; ch < C; ch++)
        for (size_t y = 0; y < H; y++)
            for (size_t x = 0; x < W; x++)
                m[(ch * H + y) * W + x] = (unsigned char)((checker ? (ch + y + x) % 2 == 0 : ch < C / 2) != (parity != 0));
    return m;
}

static const char *const MASKS[] = {"checkerboard", "channel", NULL};

static nf_status one_coupling(const bctx *c, const sp_node *n, size_t d, nf_coupling_opts *o, size_t layers,
                              size_t last, nf_bijector **out) {
    unsigned char *mask = NULL;
    const sp_node *mv = arg(n, "mask", -1);
    if (mv && mv->kind == SP_NAME) { /* mask=checkerboard|channel: an image's */
        int kind;
        double par;
        NF_TRY(get_name(c, n, "mask", MASKS, 0, &kind));
        NF_TRY(get_num(c, n, "parity", -1, 0, 1, 0, &par));
        if (!o->image[0])
            return nf__spec_error(NF_ERR_ARG, c->text, mv->col, "mask=%s needs image=[C,H,W]", MASKS[kind]);
        if (kind == 1 && o->image[0] < 2)
            return nf__spec_error(NF_ERR_ARG, c->text, mv->col, "mask=channel needs at least 2 channels, the image has %zu",
                                  o->image[0]);
        if (!(mask = image_mask(o->image, kind == 0, par != 0))) return nf__err(NF_ERR_NOMEM, "spec: out of memory");
        o->mask = mask;
        mv = NULL, last = 0;
    } else if (arg(n, "parity", -1))
        return nf__spec_error(NF_ERR_ARG, c->text, n->col, "parity goes with mask=checkerboard or mask=channel");
    if (o->mask) {
    } else if (last) { /* num_masked = -last: the last coordinates condition */
        if (mv || last >= d)
            return nf__spec_error(NF_ERR_ARG, c->text, n->col, "num_masked=-%zu needs 1..d-1 = %zu coordinates and no mask", last,
                                  d - 1);
        if (!(mask = calloc(d, 1))) return nf__err(NF_ERR_NOMEM, "spec: out of memory");
        for (size_t j = d - last; j < d; j++) mask[j] = 1;
        o->mask = mask;
    } else if (mv) {
        float *tmp = malloc(d * sizeof(float));
        mask = malloc(d);
        if (!tmp || !mask) {
            free(tmp);
            free(mask);
            return nf__err(NF_ERR_NOMEM, "spec: out of memory");
        }
        nf_status s = get_vec(c, n, "mask", -1, d, 0, tmp, NULL);
        for (size_t j = 0; j < d && !s; j++) mask[j] = tmp[j] != 0;
        free(tmp);
        if (s) {
            free(mask);
            return s;
        }
        o->mask = mask;
    } else if (!o->num_masked && !(o->fraction_masked > 0))
        o->num_masked = d / 2;
    nf_status s = NF_OK;
    if (layers != 1) s = nf__spec_error(NF_ERR_ARG, c->text, n->col, "coupling() is one layer; use realnvp(layers=...)");
    if (!s) s = nf_bijector_coupling(d, o, c->rng, out);
    free(mask);
    return s;
}

/* kind 0: coupling(), 1: realnvp(), 2: nice(), 3: nsf() */
static nf_status build_coupling(const bctx *c, const sp_node *n, size_t d, int kind, nf_bijector **out) {
    nf_coupling_opts o;
    memset(&o, 0, sizeof o);
    double sep = 0, ts = 0, so = 0, fm = 0;
    size_t layers = 0, nm = 0;
    NF_TRY(get_spline(c, n, kind == 3 ? 8 : 0, &o.spline_bins, &o.spline_bound));
    int spl = o.spline_bins > 0;
    NF_TRY(get_net(c, n, kind == 2 || kind == 3 ? NF_ACT_RELU : NF_ACT_LEAKY_RELU, spl, 0, &o.net));
    NF_TRY(get_num(c, n, "separate", -1, 0, 1, kind == 1 && !spl, &sep));
    NF_TRY(get_num(c, n, "tanh_scale", -1, 0, 1, kind != 2 && !spl, &ts)); /* scales soft-bounded unless asked otherwise */
    NF_TRY(get_num(c, n, "shift_only", -1, 0, 1, kind == 2, &so));
    NF_TRY(get_num(c, n, "fraction_masked", -1, 0, 1, 0, &fm));
    double nmv = 0; /* TFP: a negative num_masked conditions on the last |num_masked| coordinates */
    NF_TRY(get_num(c, n, "num_masked", -1, -(double)(1 << 24), (double)(1 << 24), 0, &nmv));
    if (nmv != floor(nmv)) return nf__spec_error(NF_ERR_ARG, c->text, n->col, "num_masked of %s() must be a whole number", n->name);
    nm = nmv > 0 ? (size_t)nmv : 0;
    size_t last = nmv < 0 ? (size_t)-nmv : 0;
    NF_TRY(get_size(c, n, "context", -1, 0, 1 << 20, 0, &o.context_dim));
    NF_TRY(get_size(c, n, "layers", -1, 1, 1024, kind == 0 ? 1 : kind == 1 ? 6 : 4, &layers));
    NF_TRY(get_shape(c, n, "image", d, o.image));
    if (o.image[0] && kind != 0)
        return nf__spec_error(NF_ERR_ARG, c->text, n->col, "image=[C,H,W] goes with coupling(); for image flows see glow() "
                              "and realnvp_multiscale()");
    o.separate_nets = sep != 0;
    o.tanh_scale = ts != 0;
    o.shift_only = so != 0;
    o.fraction_masked = (float)fm;
    o.num_masked = nm;
    if (d < 2) return nf__spec_error(NF_ERR_ARG, c->text, n->col, "%s() needs data of dimension >= 2, got %zu", n->name, d);
    if (spl && (o.separate_nets || o.shift_only))
        return nf__spec_error(NF_ERR_ARG, c->text, n->col, "a spline coupling uses one network: separate and shift_only must be 0");
    double outw = per_coordinate(o.spline_bins) * (double)d;
    NF_TRY(check_budget(c, n, (double)layers * (o.separate_nets && !o.shift_only ? 2 : 1) *
                                  (o.image[0] ? conv_params(o.image[0], &o.net, (size_t)per_coordinate(o.spline_bins))
                                              : net_params(d + o.context_dim, &o.net, (size_t)outw))));
    if (kind == 0) return one_coupling(c, n, d, &o, layers, last, out);
    if (arg(n, "mask", -1) || nm || last || fm > 0)
        return nf__spec_error(NF_ERR_ARG, c->text, n->col, "%s() alternates its masks; use coupling() for a given mask", n->name);
    return nf_bijector_realnvp(d, layers, &o, c->rng, out);
}
static nf_status b_coupling(const bctx *c, const sp_node *n, size_t d, nf_bijector **out) {
    return build_coupling(c, n, d, 0, out);
}
static nf_status b_realnvp(const bctx *c, const sp_node *n, size_t d, nf_bijector **out) {
    return build_coupling(c, n, d, 1, out);
}
static nf_status b_nice(const bctx *c, const sp_node *n, size_t d, nf_bijector **out) {
    return build_coupling(c, n, d, 2, out);
}
static nf_status b_nsf(const bctx *c, const sp_node *n, size_t d, nf_bijector **out) {
    return build_coupling(c, n, d, 3, out);
}

/* A permute (lu = 0) or lu_linear (lu = 1) with a permutation drawn from
 * the spec's generator: the same spec and seed give the same one. */
static nf_status random_perm_bij(const bctx *c, size_t d, int lu, nf_bijector **out) {
    size_t *p = malloc(d * sizeof(size_t));
    if (!p) return nf__err(NF_ERR_NOMEM, "spec: out of memory");
    for (size_t j = 0; j < d; j++) p[j] = j;
    for (size_t j = d; j-- > 1;) {
        size_t r = (size_t)nf_rng_below(c->rng, j + 1), t = p[j];
        p[j] = p[r];
        p[r] = t;
    }
    nf_status s = lu ? nf_bijector_lu_linear(d, p, out) : nf_bijector_permute(d, p, out);
    free(p);
    return s;
}

/* shift(v) and scale(v): a number or one per column. */
static nf_status b_shift_scale(const bctx *c, const sp_node *n, size_t d, nf_bijector **out) {
    const char *nm = n->name;
    int is_shift = nm[1] == 'h';
    if (!is_shift && arg(n, "log_scale", -1)) { /* TFP's Scale(log_scale=...) */
        if (arg(n, nm, 0)) return nf__spec_error(NF_ERR_ARG, c->text, n->col, "scale() takes a scale or log_scale, not both");
        float *v = malloc(d * sizeof(float));
        size_t cnt;
        if (!v) return nf__err(NF_ERR_NOMEM, "spec: out of memory");
        nf_status s = get_vec(c, n, "log_scale", -1, d, 0, v, &cnt);
        if (!s) s = nf_bijector_scale_log(d, v, cnt, out);
        free(v);
        return s;
    }
    if (!arg(n, nm, 0)) return nf__spec_error(NF_ERR_ARG, c->text, n->col, "%s() needs a value", nm);
    float *v = malloc(d * sizeof(float));
    size_t cnt;
    if (!v) return nf__err(NF_ERR_NOMEM, "spec: out of memory");
    nf_status s = get_vec(c, n, nm, 0, d, 0, v, &cnt);
    if (!s) s = is_shift ? nf_bijector_shift(d, v, cnt, out) : nf_bijector_scale(d, v, cnt, out);
    free(v);
    return s;
}

static nf_status b_affine_scalar(const bctx *c, const sp_node *n, size_t d, nf_bijector **out) {
    double sh, sc;
    NF_TRY(get_num(c, n, "shift", 0, -1e30, 1e30, 0, &sh));
    NF_TRY(get_num(c, n, "scale", 1, -1e30, 1e30, 1, &sc));
    return nf_bijector_affine_scalar(d, (float)sh, (float)sc, out);
}

static nf_status b_affine(const bctx *c, const sp_node *n, size_t d, nf_bijector **out) {
    size_t r = 0;
    NF_TRY(get_size(c, n, "rank", 0, 0, 4096, 0, &r));
    NF_TRY(check_budget(c, n, (double)d * (double)d + (double)d * (double)r));
    NF_TRY(nf_bijector_affine(d, r, NULL, NULL, NULL, out));
    return nf_bijector_init_params(*out, c->rng);
}

static nf_status b_sinh_arcsinh(const bctx *c, const sp_node *n, size_t d, nf_bijector **out) {
    double sk, tw;
    NF_TRY(get_num(c, n, "skewness", 0, -1e30, 1e30, 0, &sk));
    NF_TRY(get_num(c, n, "tailweight", 1, 1e-30, 1e30, 1, &tw));
    return nf_bijector_sinh_arcsinh(d, (float)sk, (float)tw, out);
}

/* sigmoid, or TFP's sigmoid(low, high) */
static nf_status b_sigmoid(const bctx *c, const sp_node *n, size_t d, nf_bijector **out) {
    if (!arg(n, "low", 0) && !arg(n, "high", 1)) return nf_bijector_sigmoid(d, out);
    double lo, hi;
    NF_TRY(get_num(c, n, "low", 0, -1e30, 1e30, 0, &lo));
    NF_TRY(get_num(c, n, "high", 1, -1e30, 1e30, 1, &hi));
    if (!(hi > lo)) return nf__spec_error(NF_ERR_ARG, c->text, n->col, "sigmoid() needs low < high, got %g and %g", lo, hi);
    return nf_bijector_sigmoid_range(d, (float)lo, (float)hi, out);
}

/* softplus, or TFP's softplus(hinge_softness, low) */
static nf_status b_softplus(const bctx *c, const sp_node *n, size_t d, nf_bijector **out) {
    if (!arg(n, "hinge_softness", 0) && !arg(n, "low", 1)) return nf_bijector_softplus(d, out);
    double h, lo;
    NF_TRY(get_num(c, n, "hinge_softness", 0, 1e-30, 1e30, 1, &h));
    NF_TRY(get_num(c, n, "low", 1, -1e30, 1e30, 0, &lo));
    return nf_bijector_softplus_hinge(d, (float)h, (float)lo, out);
}

/* rational_quadratic_spline(bin_widths=[..], bin_heights=[..], knot_slopes=[..], range_min=-1) */
static nf_status b_rq_spline(const bctx *c, const sp_node *n, size_t d, nf_bijector **out) {
    const sp_node *w = arg(n, "bin_widths", 0);
    if (!w || w->kind != SP_LIST || w->n < 1 || w->n > NF_RQS_MAX_BINS)
        return nf__spec_error(NF_ERR_ARG, c->text, n->col, "rational_quadratic_spline() needs bin_widths=[...] (1..%d bins)",
                              NF_RQS_MAX_BINS);
    size_t K = w->n;
    float v[3 * NF_RQS_MAX_BINS];
    double rmin;
    NF_TRY(get_vec(c, n, "bin_widths", 0, K, 1, v, NULL));
    NF_TRY(get_vec(c, n, "bin_heights", 1, K, 1, v + K, NULL));
    if (K > 1) NF_TRY(get_vec(c, n, "knot_slopes", 2, K - 1, 1, v + 2 * K, NULL));
    NF_TRY(get_num(c, n, "range_min", 3, -1e30, 1e30, -1, &rmin));
    return nf_bijector_rq_spline(d, K, v, v + K, v + 2 * K, (float)rmin, out);
}

/* k layers made by mk(d, rng), chained (planar, radial, householder). */
static nf_status stack_of(const bctx *c, nf_status (*mk)(size_t, nf_rng *, nf_bijector **), size_t d, size_t k,
                          nf_bijector **out) {
    nf_bijector **bs = calloc(k, sizeof *bs);
    if (!bs) return nf__err(NF_ERR_NOMEM, "spec: out of memory");
    nf_status s = NF_OK;
    for (size_t l = 0; l < k && !s; l++) s = mk(d, c->rng, &bs[l]);
    return finish_stack(s, bs, k, out);
}

/* householder(reflections=1): a chain of learnable reflections */
static nf_status b_householder(const bctx *c, const sp_node *n, size_t d, nf_bijector **out) {
    size_t k = 1;
    NF_TRY(get_size(c, n, "reflections", 0, 1, 256, 1, &k));
    return stack_of(c, nf_bijector_householder, d, k, out);
}

/* soft_clip(low, high, hinge_softness=1) */
static nf_status b_soft_clip(const bctx *c, const sp_node *n, size_t d, nf_bijector **out) {
    double lo, hi, h;
    NF_TRY(get_num(c, n, "low", 0, -1e30, 1e30, -1, &lo));
    NF_TRY(get_num(c, n, "high", 1, -1e30, 1e30, 1, &hi));
    NF_TRY(get_num(c, n, "hinge_softness", 2, 1e-30, 1e30, 1, &h));
    if (!(hi > lo)) return nf__spec_error(NF_ERR_ARG, c->text, n->col, "soft_clip() needs low < high, got %g and %g", lo, hi);
    return nf_bijector_soft_clip(d, (float)lo, (float)hi, (float)h, out);
}

static nf_status b_power_transform(const bctx *c, const sp_node *n, size_t d, nf_bijector **out) {
    double p;
    NF_TRY(get_num(c, n, "power", 0, 0, 1e6, 1, &p));
    return nf_bijector_power_transform(d, (float)p, out);
}

static nf_status b_leaky_relu(const bctx *c, const sp_node *n, size_t d, nf_bijector **out) {
    double a;
    NF_TRY(get_num(c, n, "alpha", 0, 1e-30, 1e30, 0.2, &a));
    return nf_bijector_leaky_relu(d, (float)a, out);
}

static nf_status b_permute(const bctx *c, const sp_node *n, size_t d, nf_bijector **out) {
    const sp_node *v = arg(n, "permutation", 0);
    if (v && v->kind == SP_NAME && !strcmp(v->name, "random")) return random_perm_bij(c, d, 0, out);
    if (!v || v->kind != SP_LIST || v->n != d)
        return nf__spec_error(NF_ERR_SHAPE, c->text, v ? v->col : n->col, "permute() needs a list of %zu indices or random", d);
    size_t *p = malloc(d * sizeof(size_t));
    if (!p) return nf__err(NF_ERR_NOMEM, "spec: out of memory");
    for (size_t j = 0; j < d; j++) {
        const sp_node *e = v->kids[j];
        if (e->kind != SP_NUM || e->num < 0 || e->num != floor(e->num) || e->num >= (double)d) {
            free(p);
            return nf__spec_error(NF_ERR_ARG, c->text, e->col, "permutation entries must be whole numbers in 0..%zu", d - 1);
        }
        p[j] = (size_t)e->num;
    }
    nf_status s = nf_bijector_permute(d, p, out);
    free(p);
    return s ? nf__spec_error(s, c->text, v->col, "not a permutation of 0..%zu", d - 1) : NF_OK;
}

/* planar(layers=L) and radial(layers=L): a chain of L layers. */
static nf_status b_planar_radial(const bctx *c, const sp_node *n, size_t d, nf_bijector **out) {
    size_t layers = 0;
    NF_TRY(get_size(c, n, "layers", -1, 1, 4096, 1, &layers));
    return stack_of(c, n->name[0] == 'p' ? nf_bijector_planar : nf_bijector_radial, d, layers, out);
}

static nf_status b_lu_linear(const bctx *c, const sp_node *n, size_t d, nf_bijector **out) {
    static const char *const PERMS[] = {"random", "identity", NULL};
    int pk;
    NF_TRY(get_name(c, n, "perm", PERMS, 0, &pk));
    NF_TRY(check_budget(c, n, (double)d * (double)d));
    if (pk == 1) return nf_bijector_lu_linear(d, NULL, out);
    return random_perm_bij(c, d, 1, out);
}

static nf_status b_chain(const bctx *c, const sp_node *n, size_t d, nf_bijector **out) {
    if (n->n == 0) return nf__spec_error(NF_ERR_ARG, c->text, n->col, "chain() needs at least one bijector");
    nf_bijector **bs = calloc(n->n, sizeof *bs);
    if (!bs) return nf__err(NF_ERR_NOMEM, "spec: out of memory");
    nf_status s = NF_OK;
    for (size_t i = 0; i < n->n && !s; i++) s = build_bij(c, n->kids[i], d, &bs[i]);
    if (!s) s = nf_bijector_chain(bs, n->n, out);
    if (s)
        for (size_t i = 0; i < n->n; i++) nf_bijector_free(bs[i]);
    free(bs);
    return s;
}

static nf_status b_invert(const bctx *c, const sp_node *n, size_t d, nf_bijector **out) {
    if (n->n != 1) return nf__spec_error(NF_ERR_ARG, c->text, n->col, "invert() takes one bijector");
    nf_bijector *b = NULL;
    NF_TRY(build_bij(c, n->kids[0], d, &b));
    nf_status s = nf_bijector_invert(b, out);
    if (s) nf_bijector_free(b);
    return s;
}

/* shape=[C,H,W], or a square one-channel image when d is a square. */
static nf_status get_image(const bctx *c, const sp_node *n, size_t d, size_t sh[3]) {
    NF_TRY(get_shape(c, n, "shape", d, sh));
    size_t side = (size_t)floor(sqrt((double)d) + 0.5);
    if (!sh[0] && side * side == d) sh[0] = 1, sh[1] = sh[2] = side;
    if (!sh[0])
        return nf__spec_error(NF_ERR_ARG, c->text, n->col, "%s() needs shape=[C,H,W] (the data's %zu values are no square "
                              "image)", n->name, d);
    return NF_OK;
}

/* logit_pre(levels=256, alpha=0.05) */
static nf_status b_logit_pre(const bctx *c, const sp_node *n, size_t d, nf_bijector **out) {
    double k, a;
    NF_TRY(get_num(c, n, "levels", 0, 1e-6, 1e9, 256, &k));
    NF_TRY(get_num(c, n, "alpha", 1, 1e-9, 0.499999, 0.05, &a));
    return nf_bijector_logit_pre(d, k, a, out);
}

/* squeeze(shape=[C,H,W]): the data-side image; the inverse squeezes it. */
static nf_status b_squeeze(const bctx *c, const sp_node *n, size_t d, nf_bijector **out) {
    size_t sh[3];
    NF_TRY(get_image(c, n, d, sh));
    if (sh[1] % 2 || sh[2] % 2)
        return nf__spec_error(NF_ERR_SHAPE, c->text, n->col, "squeeze() needs an even height and width, got %zu x %zu", sh[1], sh[2]);
    return nf_bijector_squeeze(sh, out);
}

/* pixelwise(b, shape=[C,H,W]): b of dimension C at every pixel. */
static nf_status b_pixelwise(const bctx *c, const sp_node *n, size_t d, nf_bijector **out) {
    size_t sh[3];
    NF_TRY(get_shape(c, n, "shape", d, sh));
    const sp_node *in = arg(n, "", 0);
    if (!sh[0] || !in || in->kind == SP_NUM || in->kind == SP_LIST)
        return nf__spec_error(NF_ERR_ARG, c->text, n->col, "pixelwise() takes a bijector and shape=[C,H,W]");
    nf_bijector *b = NULL;
    NF_TRY(build_bij(c, in, sh[0], &b));
    nf_status s = nf_bijector_pixelwise(b, sh, out);
    if (s) nf_bijector_free(b);
    return s;
}

/* blockwise(b1, b2, ..., sizes=[k1, k2, ...]): bi on the i-th block of columns. */
static nf_status b_blockwise(const bctx *c, const sp_node *n, size_t d, nf_bijector **out) {
    const sp_node *sz = arg(n, "sizes", -1);
    size_t m = 0;
    for (size_t i = 0; i < n->n; i++) m += n->keys[i][0] == 0;
    if (!sz || sz->kind != SP_LIST || sz->n != m || m == 0)
        return nf__spec_error(NF_ERR_ARG, c->text, n->col, "blockwise() takes bijectors and sizes=[...] with one size each");
    size_t total = 0;
    for (size_t i = 0; i < m; i++) {
        double v = sz->kids[i]->kind == SP_NUM ? sz->kids[i]->num : -1;
        if (!(v >= 1 && v == floor(v) && v <= (double)d))
            return nf__spec_error(NF_ERR_ARG, c->text, sz->kids[i]->col, "sizes of blockwise() must be whole numbers in 1..%zu", d);
        total += (size_t)v;
    }
    if (total != d)
        return nf__spec_error(NF_ERR_SHAPE, c->text, sz->col, "the sizes of blockwise() add up to %zu, the data has %zu", total, d);
    nf_bijector **bs = calloc(m, sizeof *bs);
    if (!bs) return nf__err(NF_ERR_NOMEM, "spec: out of memory");
    nf_status s = NF_OK;
    for (size_t i = 0, k = 0; i < n->n && !s; i++)
        if (n->keys[i][0] == 0) {
            s = build_bij(c, n->kids[i], (size_t)sz->kids[k]->num, &bs[k]);
            k++;
        }
    if (!s) s = nf_bijector_blockwise(bs, m, out);
    if (s)
        for (size_t i = 0; i < m; i++) nf_bijector_free(bs[i]);
    free(bs);
    return s;
}

/* One coupling on an image with a checkerboard or channel mask. */
static nf_status image_coupling(const bctx *c, const size_t sh[3], int checker, int parity, const nf_coupling_opts *base,
                                nf_bijector **out) {
    nf_coupling_opts o = *base;
    memcpy(o.image, sh, sizeof o.image);
    unsigned char *mask = image_mask(sh, checker, parity);
    if (!mask) return nf__err(NF_ERR_NOMEM, "spec: out of memory");
    o.mask = mask;
    nf_status s = nf_bijector_coupling(sh[0] * sh[1] * sh[2], &o, c->rng, out);
    free(mask);
    return s;
}

/* A growable list of bijectors in TFP chain order (data side first). */
typedef struct blist {
    nf_bijector **b;
    size_t n, cap;
} blist;

static nf_status blist_add(blist *l, nf_status s, nf_bijector *b) {
    if (s) return s;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        nf_bijector **nb = realloc(l->b, cap * sizeof *nb);
        if (!nb) {
            nf_bijector_free(b);
            return nf__err(NF_ERR_NOMEM, "spec: out of memory");
        }
        l->b = nb, l->cap = cap;
    }
    l->b[l->n++] = b;
    return NF_OK;
}

/* Level `lv` of an image flow on the data-side image sh (glow: Glow steps,
 * else Real NVP's multi-scale couplings); levels after it act on half of the
 * squeezed channels (blockwise with an identity: factored out to the base). */
static nf_status image_level(const bctx *c, const size_t sh[3], size_t lv, size_t levels, size_t steps, int glow,
                             const nf_coupling_opts *o, nf_bijector **out) {
    blist l = {0};
    nf_status s = NF_OK;
    nf_bijector *b = NULL;
    int last = lv + 1 == levels;
    if (!glow) /* Real NVP: checkerboard couplings before the squeeze (4 at the last level) */
        for (size_t k = 0; k < (last ? steps + 1 : steps) && !s; k++) {
            s = image_coupling(c, sh, 1, (int)(k % 2), o, &b);
            s = blist_add(&l, s, b);
        }
    size_t q[3] = {4 * sh[0], sh[1] / 2, sh[2] / 2}, dq = q[0] * q[1] * q[2];
    if (!s && !(last && !glow)) { /* the last Real NVP level has no squeeze */
        s = nf_bijector_squeeze(sh, &b);
        s = blist_add(&l, s, b);
        for (size_t k = 0; k < steps && !s; k++) {
            if (glow) {
                nf_bijector *in = NULL;
                s = nf_bijector_actnorm(q[0], &in);
                if (!s && (s = nf_bijector_pixelwise(in, q, &b))) nf_bijector_free(in);
                s = blist_add(&l, s, b);
                in = NULL;
                if (!s) s = random_perm_bij(c, q[0], 1, &in);
                if (!s && (s = nf_bijector_pixelwise(in, q, &b))) nf_bijector_free(in);
                s = blist_add(&l, s, b);
            }
            if (!s) s = image_coupling(c, q, 0, (int)(k % 2), o, &b);
            s = blist_add(&l, s, b);
        }
    }
    if (!s && !last) { /* the first half of the channels goes on, the second to the base */
        size_t h[3] = {q[0] / 2, q[1], q[2]};
        nf_bijector *parts[2] = {NULL, NULL};
        s = image_level(c, h, lv + 1, levels, steps, glow, o, &parts[0]);
        if (!s) s = nf_bijector_identity(dq - dq / 2, &parts[1]);
        if (!s) s = nf_bijector_blockwise(parts, 2, &b);
        if (s) nf_bijector_free(parts[0]), nf_bijector_free(parts[1]);
        s = blist_add(&l, s, b);
    }
    return finish_stack(s, l.b, l.n, out);
}

/* glow(shape=[C,H,W], levels=2, steps=4, hidden=[64,64], bins=0) and
 * realnvp_multiscale(shape=[C,H,W], levels=2, steps=3, hidden=[64,64], bins=0) */
static nf_status b_image_flow(const bctx *c, const sp_node *n, size_t d, nf_bijector **out) {
    int glow = n->name[0] == 'g';
    nf_coupling_opts o;
    memset(&o, 0, sizeof o);
    size_t sh[3], levels, steps;
    NF_TRY(get_image(c, n, d, sh));
    NF_TRY(get_size(c, n, "levels", -1, 1, 8, 2, &levels));
    NF_TRY(get_size(c, n, "steps", -1, 1, 64, glow ? 4 : 3, &steps));
    NF_TRY(get_spline(c, n, 0, &o.spline_bins, &o.spline_bound));
    NF_TRY(get_net(c, n, NF_ACT_RELU, 1, 0, &o.net));
    if (!arg(n, "hidden", -1)) o.net.hidden[0] = o.net.hidden[1] = 64;
    o.tanh_scale = o.spline_bins == 0;
    size_t H = sh[1], W = sh[2], need = glow ? levels : levels - 1;
    for (size_t k = 0; k < need; k++, H /= 2, W /= 2)
        if (H % 2 || W % 2)
            return nf__spec_error(NF_ERR_SHAPE, c->text, n->col, "%s() with %zu levels needs height and width divisible by %d, "
                                  "got %zu x %zu", n->name, levels, 1 << need, sh[1], sh[2]);
    /* the budget: per level, the couplings' convnets on C (checkerboard) and 4C (channel) channels */
    double total = 0, C = (double)sh[0], K = per_coordinate(o.spline_bins);
    for (size_t lv = 0; lv < levels; lv++, C *= 2)
        total += (double)(steps + 1) * (conv_params((size_t)C, &o.net, (size_t)K) + conv_params((size_t)(4 * C), &o.net, (size_t)K)) +
                 (double)steps * (2 * 4 * C + 16 * C * C);
    NF_TRY(check_budget(c, n, total));
    return image_level(c, sh, 0, levels, steps, glow, &o, out);
}

static const char *const A_NONE[] = {NULL};
static const char *const A_SHIFT[] = {"shift", NULL};
static const char *const A_SCALE[] = {"scale", "log_scale", NULL};
static const char *const A_AFFINE_SCALAR[] = {"shift", "scale", NULL};
static const char *const A_RANK[] = {"rank", NULL};
static const char *const A_SINH_ARCSINH[] = {"skewness", "tailweight", NULL};
static const char *const A_ALPHA[] = {"alpha", NULL};
static const char *const A_PERMUTATION[] = {"permutation", NULL};
static const char *const A_LAYERS[] = {"layers", NULL};
static const char *const A_PERM[] = {"perm", NULL};
static const char *const A_MAF[] = {"layers", "hidden", "activation", "order", "init", "zero_last", "residual", "bins", "bound",
                                    "context", "scale", NULL};
static const char *const A_COUPLING[] = {"layers",     "hidden",     "activation", "init", "zero_last", "residual",
                                         "separate",   "tanh_scale", "shift_only", "mask", "num_masked",
                                         "fraction_masked", "bins",  "bound",      "context", "image", "parity", NULL};
static const char *const A_SHAPE[] = {"shape", NULL};
static const char *const A_SIGMOID[] = {"low", "high", NULL};
static const char *const A_SOFTPLUS[] = {"hinge_softness", "low", NULL};
static const char *const A_POWER[] = {"power", NULL};
static const char *const A_REFLECTIONS[] = {"reflections", NULL};
static const char *const A_SOFT_CLIP[] = {"low", "high", "hinge_softness", NULL};
static const char *const A_RQS[] = {"bin_widths", "bin_heights", "knot_slopes", "range_min", NULL};
static const char *const A_LOGIT_PRE[] = {"levels", "alpha", NULL};
static const char *const A_SIZES[] = {"sizes", NULL};
static const char *const A_IMAGE_FLOW[] = {"shape", "levels", "steps", "hidden", "activation", "init", "zero_last",
                                           "bins", "bound", NULL};

/* Every bijector of the spec language: the one list from which the
 * dispatcher, the "known:" messages and `nflow eval --list` come.
 * positional: how many positional arguments it takes (-1: any number). */
static const bij_entry BIJECTORS[] = {
    {{"identity", A_NONE, 0, "y = x"}, NULL, nf_bijector_identity},
    {{"shift", A_SHIFT, 1, "y = x + v (a number or one per column)"}, b_shift_scale, NULL},
    {{"scale", A_SCALE, 1, "y = v x, or y = e^a x with scale(log_scale=a) (a number or one per column)"}, b_shift_scale, NULL},
    {{"affine_scalar", A_AFFINE_SCALAR, 2, "y = shift + scale x"}, b_affine_scalar, NULL},
    {{"affine", A_RANK, 1, "y = (L + V V^T) x + b, trainable (rank of V)"}, b_affine, NULL},
    {{"exp", A_NONE, 0, "y = e^x"}, NULL, nf_bijector_exp},
    {{"log", A_NONE, 0, "y = log x"}, NULL, nf_bijector_log},
    {{"sigmoid", A_SIGMOID, 2, "y = 1 / (1 + e^-x), or TFP's high sigmoid(x) + low sigmoid(-x), strictly inside (low, high)"},
     b_sigmoid, NULL},
    {{"tanh", A_NONE, 0, "y = tanh x"}, NULL, nf_bijector_tanh},
    {{"softplus", A_SOFTPLUS, 2, "y = log(1 + e^x), or TFP's c log(1 + e^(x/c)) + low"}, b_softplus, NULL},
    {{"rational_quadratic_spline", A_RQS, 4, "TFP's RationalQuadraticSpline from its bin widths, heights and knot slopes"},
     b_rq_spline, NULL},
    {{"soft_clip", A_SOFT_CLIP, 3, "TFP SoftClip: a smooth clip into (low, high), nearly the identity inside"}, b_soft_clip,
     NULL},
    {{"householder", A_REFLECTIONS, 1, "learnable Householder reflections (volume-preserving mixing)"}, b_householder, NULL},
    {{"ascending", A_NONE, 0, "TFP Ascending: y_0 = x_0, y_i = y_{i-1} + e^{x_i}"}, NULL, nf_bijector_ascending},
    {{"power_transform", A_POWER, 1, "TFP PowerTransform: y = (1 + p x)^(1/p), e^x for p = 0"}, b_power_transform, NULL},
    {{"normal_cdf", A_NONE, 0, "y = Phi(x), the standard normal CDF"}, NULL, nf_bijector_normal_cdf},
    {{"softsign", A_NONE, 0, "y = x / (1 + |x|)"}, NULL, nf_bijector_softsign},
    {{"expm1", A_NONE, 0, "y = e^x - 1"}, NULL, nf_bijector_expm1},
    {{"sinh_arcsinh", A_SINH_ARCSINH, 2, "y = sinh(tailweight (asinh x + skewness)), both trainable"}, b_sinh_arcsinh,
     NULL},
    {{"leaky_relu", A_ALPHA, 1, "y = x (x > 0) or alpha x, alpha trainable"}, b_leaky_relu, NULL},
    {{"permute", A_PERMUTATION, 1, "reorders the columns: a list of indices, or random"}, b_permute, NULL},
    {{"reverse", A_NONE, 0, "reverses the columns"}, NULL, nf_bijector_reverse},
    {{"lu_linear", A_PERM, 0, "Glow's invertible linear map P L (U + diag e^s) + b"}, b_lu_linear, NULL},
    {{"actnorm", A_NONE, 0, "per-column scale and shift, initialised from the first batch"}, NULL, nf_bijector_actnorm},
    {{"batchnorm", A_NONE, 0, "batch normalisation (batch statistics in training)"}, NULL, nf_bijector_batchnorm},
    {{"planar", A_LAYERS, 0, "planar flow layers (Rezende & Mohamed 2015)"}, b_planar_radial, NULL},
    {{"radial", A_LAYERS, 0, "radial flow layers (Rezende & Mohamed 2015)"}, b_planar_radial, NULL},
    {{"chain", A_NONE, -1, "composition, TFP order: chain(b1, b2) applies b2 first"}, b_chain, NULL},
    {{"invert", A_NONE, 1, "swaps forward and inverse of a bijector"}, b_invert, NULL},
    {{"coupling", A_COUPLING, 0, "one affine or spline coupling layer with a given mask"}, b_coupling, NULL},
    {{"realnvp", A_COUPLING, 0, "RealNVP: affine couplings with alternating masks"}, b_realnvp, NULL},
    {{"nice", A_COUPLING, 0, "NICE: additive couplings"}, b_nice, NULL},
    {{"nsf", A_COUPLING, 0, "neural spline flow: rational-quadratic spline couplings"}, b_nsf, NULL},
    {{"logit_pre", A_LOGIT_PRE, 2, "Real NVP's logit pre-transform of pixels in [0, levels] (no parameters)"}, b_logit_pre,
     NULL},
    {{"squeeze", A_SHAPE, 0, "an image's space-to-depth (the inverse squeezes C x H x W to 4C x H/2 x W/2)"}, b_squeeze, NULL},
    {{"pixelwise", A_SHAPE, 1, "a C-dimensional bijector at every pixel, shared (Glow's ActNorm, 1x1 convolution)"},
     b_pixelwise, NULL},
    {{"blockwise", A_SIZES, -1, "bijectors on consecutive blocks of columns (multi-scale factoring-out)"}, b_blockwise,
     NULL},
    {{"glow", A_IMAGE_FLOW, 0, "Glow on images: squeeze, steps of ActNorm, 1x1 convolution, convnet coupling"},
     b_image_flow, NULL},
    {{"realnvp_multiscale", A_IMAGE_FLOW, 0, "Real NVP's multi-scale image flow: checkerboard and channel couplings"},
     b_image_flow, NULL},
    {{"maf", A_MAF, 0, "masked autoregressive flow (one-pass density)"}, b_maf, NULL},
    {{"iaf", A_MAF, 0, "inverse autoregressive flow (one-pass sampling)"}, b_iaf, NULL},
};
enum { NBIJ = sizeof BIJECTORS / sizeof BIJECTORS[0] };

static nf_status build_bij(const bctx *c, const sp_node *n, size_t d, nf_bijector **out) {
    if (n->kind != SP_CALL && n->kind != SP_NAME)
        return nf__spec_error(NF_ERR_ARG, c->text, n->col, "expected a bijector such as exp or maf(...)");
    for (size_t k = 0; k < NBIJ; k++) {
        const bij_entry *e = &BIJECTORS[k];
        if (strcmp(n->name, e->info.name)) continue;
        NF_TRY(check_args(c, n, e->info.args, e->info.positional < 0 ? (int)n->n : e->info.positional));
        return e->build ? e->build(c, n, d, out) : e->make(d, out);
    }
    char list[1024];
    join_names(list, sizeof list, &BIJECTORS[0].info.name, NBIJ, sizeof BIJECTORS[0]);
    return nf__spec_error(NF_ERR_ARG, c->text, n->col, "unknown bijector '%s' (known: %s)", n->name, list);
}

/* ---- distributions ------------------------------------------------------- */

typedef nf_status (*dist_builder)(const bctx *c, const sp_node *n, size_t d_hint, nf_dist **out);
typedef struct dist_entry {
    nf_spec_builder_info info;
    dist_builder build;
} dist_entry;

static nf_status build_dist(const bctx *c, const sp_node *n, size_t d_hint, nf_dist **out);

static nf_status d_normal(const bctx *c, const sp_node *n, size_t d_hint, nf_dist **out) {
    (void)d_hint;
    double loc, sc;
    NF_TRY(get_num(c, n, "loc", 0, -1e30, 1e30, 0, &loc));
    NF_TRY(get_num(c, n, "scale", 1, 0, 1e30, 1, &sc));
    return nf_dist_normal((float)loc, (float)sc, out);
}

static nf_status d_uniform(const bctx *c, const sp_node *n, size_t d_hint, nf_dist **out) {
    (void)d_hint;
    double lo, hi;
    NF_TRY(get_num(c, n, "low", 0, -1e30, 1e30, 0, &lo));
    NF_TRY(get_num(c, n, "high", 1, -1e30, 1e30, 1, &hi));
    return nf_dist_uniform((float)lo, (float)hi, out);
}

static nf_status d_mvn_diag(const bctx *c, const sp_node *n, size_t d_hint, nf_dist **out) {
    size_t d = d_hint;
    const sp_node *l = arg(n, "loc", 0), *s = arg(n, "scale", 1);
    if (l && l->kind == SP_LIST) d = l->n;
    else if (s && s->kind == SP_LIST) d = s->n;
    NF_TRY(get_size(c, n, "d", -1, 1, 1 << 24, d ? d : 1, &d));
    float *v = malloc(2 * d * sizeof(float));
    if (!v) return nf__err(NF_ERR_NOMEM, "spec: out of memory");
    nf_status st = get_vec(c, n, "loc", 0, d, 0, v, NULL);
    if (!st) st = get_vec(c, n, "scale", 1, d, 1, v + d, NULL);
    if (!st) st = nf_dist_mvn_diag(d, v, v + d, out);
    free(v);
    return st;
}

/* logistic(loc, scale, d) and laplace(loc, scale, d) */
static nf_status d_locscale(const bctx *c, const sp_node *n, size_t d_hint, nf_dist **out) {
    double loc, sc;
    size_t d = 0;
    NF_TRY(get_num(c, n, "loc", 0, -1e30, 1e30, 0, &loc));
    NF_TRY(get_num(c, n, "scale", 1, 0, 1e30, 1, &sc));
    NF_TRY(get_size(c, n, "d", -1, 1, 1 << 24, d_hint ? d_hint : 1, &d));
    return (n->name[1] == 'o' ? nf_dist_logistic : nf_dist_laplace)(d, (float)loc, (float)sc, out);
}

/* mvn_tril(loc=[..], scale_tril=[..] (the lower triangle row by row), d=) */
static nf_status d_mvn_tril(const bctx *c, const sp_node *n, size_t d_hint, nf_dist **out) {
    size_t d = d_hint;
    const sp_node *l = arg(n, "loc", 0), *t = arg(n, "scale_tril", 1);
    if (l && l->kind == SP_LIST) d = l->n;
    else if (t && t->kind == SP_LIST) d = (size_t)((sqrt(8.0 * (double)t->n + 1) - 1) / 2);
    NF_TRY(get_size(c, n, "d", -1, 1, 4096, d ? d : 1, &d));
    size_t nt = d * (d + 1) / 2;
    float *v = malloc((d + nt + d * d) * sizeof(float));
    if (!v) return nf__err(NF_ERR_NOMEM, "spec: out of memory");
    float *L = v + d + nt;
    nf_status st = get_vec(c, n, "loc", 0, d, 0, v, NULL);
    if (!st && t) st = get_vec(c, n, "scale_tril", 1, nt, 0, v + d, NULL);
    if (!st) {
        memset(L, 0, d * d * sizeof(float));
        for (size_t i = 0, k = 0; i < d; i++)
            for (size_t j = 0; j <= i; j++, k++) L[i * d + j] = t ? v[d + k] : (float)(i == j);
        st = nf_dist_mvn_tril(d, v, L, out);
    }
    free(v);
    return st;
}

/* independent(dist, d=): d copies of a scalar distribution (d defaults to the data's) */
static nf_status d_independent(const bctx *c, const sp_node *n, size_t d_hint, nf_dist **out) {
    const sp_node *in = arg(n, "", 0);
    if (!in || in->kind == SP_NUM || in->kind == SP_LIST)
        return nf__spec_error(NF_ERR_ARG, c->text, n->col, "independent() takes a scalar distribution, e.g. independent(normal(0, 2))");
    size_t d = 0;
    NF_TRY(get_size(c, n, "d", -1, 1, 1 << 24, d_hint ? d_hint : 1, &d));
    nf_dist *s = NULL;
    NF_TRY(build_dist(c, in, 1, &s));
    nf_status st = nf_dist_independent(s, d, out);
    if (st) nf_dist_free(s);
    return st;
}

/* student_t(df, loc, scale, d) */
static nf_status d_student_t(const bctx *c, const sp_node *n, size_t d_hint, nf_dist **out) {
    double df, loc, sc;
    size_t d = 0;
    NF_TRY(get_num(c, n, "df", 0, 1e-30, 1e30, 1, &df));
    NF_TRY(get_num(c, n, "loc", 1, -1e30, 1e30, 0, &loc));
    NF_TRY(get_num(c, n, "scale", 2, 0, 1e30, 1, &sc));
    NF_TRY(get_size(c, n, "d", -1, 1, 1 << 24, d_hint ? d_hint : 1, &d));
    return nf_dist_student_t(d, (float)df, (float)loc, (float)sc, out);
}

static nf_status d_mog(const bctx *c, const sp_node *n, size_t d_hint, nf_dist **out) {
    size_t K = 0, d = 0;
    NF_TRY(get_size(c, n, "k", 0, 1, 256, 8, &K));
    NF_TRY(get_size(c, n, "d", -1, 1, 1 << 20, d_hint ? d_hint : 1, &d));
    return nf_dist_mog(d, K, c->rng, out);
}

static nf_status d_transformed(const bctx *c, const sp_node *n, size_t d_hint, nf_dist **out) {
    if (n->n != 2) return nf__spec_error(NF_ERR_ARG, c->text, n->col, "transformed() takes a distribution and a bijector");
    nf_dist *base = NULL, *t = NULL;
    nf_bijector *b = NULL;
    NF_TRY(build_dist(c, n->kids[0], d_hint, &base));
    nf_status s = build_bij(c, n->kids[1], nf_dist_dim(base), &b);
    if (!s) s = nf_dist_transformed(base, b, &t);
    if (s) {
        nf_dist_free(base);
        nf_bijector_free(b);
        return s;
    }
    *out = t;
    return NF_OK;
}

static const char *const A_LOC_SCALE[] = {"loc", "scale", NULL};
static const char *const A_LOW_HIGH[] = {"low", "high", NULL};
static const char *const A_MVN[] = {"loc", "scale", "d", NULL};
static const char *const A_MOG[] = {"k", "d", NULL};
static const char *const A_LOCSCALE[] = {"loc", "scale", "d", NULL};
static const char *const A_STUDENT_T[] = {"df", "loc", "scale", "d", NULL};
static const char *const A_MVN_TRIL[] = {"loc", "scale_tril", "d", NULL};
static const char *const A_INDEPENDENT[] = {"d", NULL};

/* Every distribution of the spec language (see BIJECTORS). */
static const dist_entry DISTS[] = {
    {{"normal", A_LOC_SCALE, 2, "normal(loc, scale), scalar"}, d_normal},
    {{"uniform", A_LOW_HIGH, 2, "uniform(low, high), scalar"}, d_uniform},
    {{"mvn_diag", A_MVN, 2, "Gaussian with diagonal covariance (loc, scale: lists or numbers)"}, d_mvn_diag},
    {{"mog", A_MOG, 1, "mixture of k diagonal Gaussians, trainable as a flow's base"}, d_mog},
    {{"logistic", A_LOCSCALE, 2, "independent logistic(loc, scale) in d dimensions (a flow's base too)"}, d_locscale},
    {{"laplace", A_LOCSCALE, 2, "independent laplace(loc, scale) in d dimensions (a flow's base too)"}, d_locscale},
    {{"independent", A_INDEPENDENT, 1, "d independent copies of a scalar distribution (TFP's Sample(dist, d))"}, d_independent},
    {{"mvn_tril", A_MVN_TRIL, 2, "full-covariance normal loc + L z (L lower triangular), trainable as a flow's base"},
     d_mvn_tril},
    {{"student_t", A_STUDENT_T, 3, "independent student_t(df, loc, scale) in d dimensions, df fixed (a flow's base too)"},
     d_student_t},
    {{"transformed", A_NONE, 2, "transformed(distribution, bijector): the bijector's forward applied to samples"},
     d_transformed},
};
enum { NDIST = sizeof DISTS / sizeof DISTS[0] };

static nf_status build_dist(const bctx *c, const sp_node *n, size_t d_hint, nf_dist **out) {
    if (n->kind != SP_CALL && n->kind != SP_NAME)
        return nf__spec_error(NF_ERR_ARG, c->text, n->col, "expected a distribution such as normal(0, 1)");
    for (size_t k = 0; k < NDIST; k++) {
        const dist_entry *e = &DISTS[k];
        if (strcmp(n->name, e->info.name)) continue;
        NF_TRY(check_args(c, n, e->info.args, e->info.positional));
        return e->build(c, n, d_hint, out);
    }
    char list[1024];
    join_names(list, sizeof list, &DISTS[0].info.name, NDIST, sizeof DISTS[0]);
    return nf__spec_error(NF_ERR_ARG, c->text, n->col, "unknown distribution '%s' (known: %s)", n->name, list);
}

const nf_spec_builder_info *nf_spec_builder(int what, size_t k) {
    if (what == NF_SPEC_BIJECTOR) return k < NBIJ ? &BIJECTORS[k].info : NULL;
    if (what == NF_SPEC_DISTRIBUTION) return k < NDIST ? &DISTS[k].info : NULL;
    return NULL;
}

/* ---- public entry points -------------------------------------------------- */

nf_status nf_bijector_from_spec(const char *spec, size_t d, nf_rng *rng, nf_bijector **out) {
    const char *fn = "nf_bijector_from_spec";
    if (!out) return nf__err(NF_ERR_ARG, "%s: out must not be NULL", fn);
    *out = NULL;
    if (d == 0) return nf__err(NF_ERR_ARG, "%s: dimension must be >= 1", fn);
    nf_rng *own = NULL; /* rng NULL: random draws (initial weights) from seed 0 */
    if (!rng) NF_TRY(nf_rng_create(0, &own));
    sp_node *n = NULL;
    nf_status s = nf__spec_parse(spec, &n);
    bctx c = {spec, rng ? rng : own, NF_SPEC_DEFAULTS};
    if (!s) s = build_bij(&c, n, d, out);
    nf__spec_free(n);
    nf_rng_free(own);
    return s ? nf__err_prefix(s, fn) : NF_OK;
}

nf_status nf_dist_from_spec(const char *spec, nf_rng *rng, nf_dist **out) {
    const char *fn = "nf_dist_from_spec";
    if (!out) return nf__err(NF_ERR_ARG, "%s: out must not be NULL", fn);
    *out = NULL;
    nf_rng *own = NULL; /* rng NULL: random draws (a mixture's, a flow's weights) from seed 0 */
    if (!rng) NF_TRY(nf_rng_create(0, &own));
    sp_node *n = NULL;
    nf_status s = nf__spec_parse(spec, &n);
    bctx c = {spec, rng ? rng : own, NF_SPEC_DEFAULTS};
    if (!s) s = build_dist(&c, n, 0, out);
    nf__spec_free(n);
    nf_rng_free(own);
    return s ? nf__err_prefix(s, fn) : NF_OK;
}

nf_status nf__spec_flow_parts(const char *spec, size_t d, nf_rng *rng, int defaults, nf_dist **base, nf_bijector **bij) {
    *base = NULL;
    *bij = NULL;
    sp_node *n = NULL;
    nf_status s = nf__spec_parse(spec, &n);
    bctx c = {spec, rng, defaults};
    if (!s && !strcmp(n->name, "transformed")) {
        if (n->n != 2) s = nf__spec_error(NF_ERR_ARG, spec, n->col, "transformed() takes a distribution and a bijector");
        if (!s) s = build_dist(&c, n->kids[0], d, base);
        if (!s && nf_dist_dim(*base) != d)
            s = nf__spec_error(NF_ERR_SHAPE, spec, n->kids[0]->col, "the base has dimension %zu but the data %zu",
                               nf_dist_dim(*base), d);
        if (!s) s = build_bij(&c, n->kids[1], d, bij);
    } else if (!s)
        s = build_bij(&c, n, d, bij);
    if (s) {
        nf_bijector_free(*bij);
        nf_dist_free(*base);
        *bij = NULL;
        *base = NULL;
    }
    nf__spec_free(n);
    return s;
}
