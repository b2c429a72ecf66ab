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
static nf_status one_coupling(const bctx *c, const sp_node *n, size_t d, nf_coupling_opts *o, size_t layers,
                              size_t last, nf_bijector **out) {
    unsigned char *mask = NULL;
    const sp_node *mv = arg(n, "mask", -1);
    if (last) { /* num_masked = -last: the last coordinates condition */
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
    o.separate_nets = sep != 0;
    o.tanh_scale = ts != 0;
    o.shift_only = so != 0;
    o.fraction_masked = (float)fm;
    o.num_masked = nm;
    if (d < 2) return nf__spec_error(NF_ERR_ARG, c->text, n->col, "%s() needs data of dimension >= 2, got %zu", n->name, d);
    if (spl && (o.separate_nets || o.shift_only))
        return nf__spec_error(NF_ERR_ARG, c->text, n->col, "a spline coupling uses one network: separate and shift_only must be 0");
    double outw = per_coordinate(o.spline_bins) * (double)d;
    NF_TRY(check_budget(c, n, (double)layers * (o.separate_nets && !o.shift_only ? 2 : 1) * net_params(d + o.context_dim, &o.net, (size_t)outw)));
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
    nf_status (*mk)(size_t, nf_rng *, nf_bijector **) = n->name[0] == 'p' ? nf_bijector_planar : nf_bijector_radial;
    nf_bijector **bs = calloc(layers, sizeof *bs);
    if (!bs) return nf__err(NF_ERR_NOMEM, "spec: out of memory");
    nf_status s = NF_OK;
    for (size_t l = 0; l < layers && !s; l++) s = mk(d, c->rng, &bs[l]);
    return finish_stack(s, bs, layers, out);
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

static const char *const A_NONE[] = {NULL};
static const char *const A_SHIFT[] = {"shift", NULL};
static const char *const A_SCALE[] = {"scale", NULL};
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
                                         "fraction_masked", "bins",  "bound",      "context", NULL};

/* Every bijector of the spec language: the one list from which the
 * dispatcher, the "known:" messages and `nflow eval --list` come.
 * positional: how many positional arguments it takes (-1: any number). */
static const bij_entry BIJECTORS[] = {
    {{"identity", A_NONE, 0, "y = x"}, NULL, nf_bijector_identity},
    {{"shift", A_SHIFT, 1, "y = x + v (a number or one per column)"}, b_shift_scale, NULL},
    {{"scale", A_SCALE, 1, "y = v x (a number or one per column)"}, b_shift_scale, NULL},
    {{"affine_scalar", A_AFFINE_SCALAR, 2, "y = shift + scale x"}, b_affine_scalar, NULL},
    {{"affine", A_RANK, 1, "y = (L + V V^T) x + b, trainable (rank of V)"}, b_affine, NULL},
    {{"exp", A_NONE, 0, "y = e^x"}, NULL, nf_bijector_exp},
    {{"log", A_NONE, 0, "y = log x"}, NULL, nf_bijector_log},
    {{"sigmoid", A_NONE, 0, "y = 1 / (1 + e^-x)"}, NULL, nf_bijector_sigmoid},
    {{"tanh", A_NONE, 0, "y = tanh x"}, NULL, nf_bijector_tanh},
    {{"softplus", A_NONE, 0, "y = log(1 + e^x)"}, NULL, nf_bijector_softplus},
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

/* Every distribution of the spec language (see BIJECTORS). */
static const dist_entry DISTS[] = {
    {{"normal", A_LOC_SCALE, 2, "normal(loc, scale), scalar"}, d_normal},
    {{"uniform", A_LOW_HIGH, 2, "uniform(low, high), scalar"}, d_uniform},
    {{"mvn_diag", A_MVN, 2, "Gaussian with diagonal covariance (loc, scale: lists or numbers)"}, d_mvn_diag},
    {{"mog", A_MOG, 1, "mixture of k diagonal Gaussians, trainable as a flow's base"}, d_mog},
    {{"logistic", A_LOCSCALE, 2, "independent logistic(loc, scale) in d dimensions (a flow's base too)"}, d_locscale},
    {{"laplace", A_LOCSCALE, 2, "independent laplace(loc, scale) in d dimensions (a flow's base too)"}, d_locscale},
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
