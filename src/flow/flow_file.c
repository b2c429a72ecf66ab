/*
 * flow_file.c - model files: a flow in a safetensors container.
 * "__metadata__" holds format "nflow", version, spec, dim, build_seed,
 * scaler_mean, scaler_std (JSON lists as strings) and summary; the tensors
 * are the flow's (nf__flow_tensors: PyTorch state_dict names, MADE masks and
 * permutations as fixed buffers, ActNorm/BatchNorm state).
 *
 * Loading rebuilds the flow from its spec and seed, then requires every
 * tensor the spec makes to be in the file with the same shape, every size to
 * lie inside the file, fixed buffers (MADE masks, permutations) to equal the
 * rebuilt ones, no extra tensors (but checkpoints' "train.*"), and finite
 * parameters.
 */
#include "flow_file.h"
#include "../io/json.h"
#include "../spec/spec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NF_MODEL_VERSION "1"
#define WHAT             "nflow model file"

/* ---- saving -------------------------------------------------------------- */

typedef struct tlist {
    const nf_flow *f;
    nf_st_tensor *t;
    size_t n, cap;
} tlist;

static nf_status add(tlist *l, const char *name, int ndim, const size_t *shape, size_t count, const float *data) {
    if (l->n == l->cap) {
        size_t nc = l->cap ? 2 * l->cap : 64;
        nf_st_tensor *nt = realloc(l->t, nc * sizeof *nt);
        if (!nt) return nf__err(NF_ERR_NOMEM, "out of memory listing tensors");
        l->t = nt;
        l->cap = nc;
    }
    char *nm = strdup(name);
    if (!nm) return nf__err(NF_ERR_NOMEM, "out of memory listing tensors");
    l->t[l->n++] = (nf_st_tensor){nm, ndim, {shape[0], ndim == 2 ? shape[1] : 0}, count, data};
    return NF_OK;
}

static nf_status collect(void *ctx, const nf_tensor_info *t) {
    tlist *l = ctx;
    const float *src = t->buffer ? t->buffer : t->state ? t->state : l->f->params + t->offset;
    return add(l, t->name, t->ndim, t->shape, t->count, src);
}

static void tlist_free(tlist *l) {
    for (size_t i = 0; i < l->n; i++) free((char *)l->t[i].name);
    free(l->t);
}

static char *floats_json(const float *v, size_t n) {
    char *b = malloc(n * 18 + 3);
    if (!b) return NULL;
    size_t k = (size_t)sprintf(b, "[");
    for (size_t i = 0; i < n; i++) k += (size_t)snprintf(b + k, 18, "%s%.9g", i ? ", " : "", v[i]);
    snprintf(b + k, 2, "]");
    return b;
}

/* The column names as a JSON list of strings (NULL: none, or out of memory). */
static char *names_json(const nf_flow *f) {
    size_t D = f->d + f->bij->dc, cap = 3;
    if (!nf_flow_column_name(f, 0)) return NULL;
    for (size_t j = 0; j < D; j++) cap += 6 * strlen(nf_flow_column_name(f, j)) + 4;
    char *b = malloc(cap), *p = b;
    if (!b) return NULL;
    *p++ = '[';
    for (size_t j = 0; j < D; j++) {
        p += sprintf(p, "%s\"", j ? "," : "");
        for (const unsigned char *c = (const unsigned char *)nf_flow_column_name(f, j); *c; c++) {
            if (*c == '"' || *c == '\\') *p++ = '\\';
            if (*c < 0x20) p += sprintf(p, "\\u%04x", *c);
            else *p++ = (char)*c;
        }
        *p++ = '"';
    }
    *p++ = ']';
    *p = 0;
    return b;
}

nf_status nf_flow_save(const nf_flow *f, const char *path, const char *summary) {
    return nf__flow_save_ex(f, path, summary, NULL, 0, NULL, 0);
}

static nf_status nf__flow_save_ex_impl(const nf_flow *f, const char *path, const char *summary, const nf_extra_tensor *xt,
                           size_t nxt, const char *const *meta_kv, size_t nmeta) {
    const char *fn = "nf_flow_save";
    if (!f || !path) return nf__err(NF_ERR_ARG, "%s: flow and path must not be NULL", fn);
    tlist l = {f, NULL, 0, 0};
    nf_status s = nf__flow_tensors(f, collect, &l);
    for (size_t i = 0; !s && i < nxt; i++) s = add(&l, xt[i].name, 1, &xt[i].count, xt[i].count, xt[i].data);
    char dim[32], seed[32], *mean = NULL, *std = NULL, *cols = names_json(f);
    snprintf(dim, sizeof dim, "%zu", f->d);
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)f->build_seed);
    char defaults[16];
    snprintf(defaults, sizeof defaults, "%d", f->spec_defaults);
    const char **kv = malloc((2 * nmeta + 24) * sizeof *kv);
    size_t nkv = 0;
    if (!s && !kv) s = nf__err(NF_ERR_NOMEM, "out of memory");
    if (!s && f->has_scaler && (!(mean = floats_json(f->mean, f->d)) || !(std = floats_json(f->std, f->d))))
        s = nf__err(NF_ERR_NOMEM, "out of memory");
    if (!s) {
        /* a flow built by the C constructors has no spec: its file is loaded into the same flow
         * built again (nf_flow_load_params) */
        kv[nkv++] = "format";
        kv[nkv++] = "nflow";
        kv[nkv++] = "version";
        kv[nkv++] = NF_MODEL_VERSION;
        if (f->spec) {
            kv[nkv++] = "spec";
            kv[nkv++] = f->spec;
        }
        kv[nkv++] = "dim";
        kv[nkv++] = dim;
        if (f->spec) {
            kv[nkv++] = "build_seed";
            kv[nkv++] = seed;
            kv[nkv++] = "spec_defaults";
            kv[nkv++] = defaults;
        }
        if (mean) {
            kv[nkv++] = "scaler_mean";
            kv[nkv++] = mean;
            kv[nkv++] = "scaler_std";
            kv[nkv++] = std;
        }
        if (summary) {
            kv[nkv++] = "summary";
            kv[nkv++] = summary;
        }
        if (cols) {
            kv[nkv++] = "columns";
            kv[nkv++] = cols;
        }
        for (size_t i = 0; i < 2 * nmeta; i++) kv[nkv++] = meta_kv[i];
        s = nf__st_write(path, kv, nkv / 2, l.t, l.n);
    }
    free(kv);
    free(mean);
    free(std);
    free(cols);
    tlist_free(&l);
    return s ? nf__err_prefix(s, fn) : NF_OK;
}

/* In the C locale whatever the host program set (core/clocale.c). */
nf_status nf__flow_save_ex(const nf_flow *f, const char *path, const char *summary, const nf_extra_tensor *xt,
                           size_t nxt, const char *const *meta_kv, size_t nmeta) {
    nf_clocale loc;
    nf__clocale_enter(&loc);
    nf_status r = nf__flow_save_ex_impl(f, path, summary, xt, nxt, meta_kv, nmeta);
    nf__clocale_leave(&loc);
    return r;
}

/* ---- loading ------------------------------------------------------------- */

typedef struct loadctx {
    const nf_st_file *m;
    nf_flow *f;
    unsigned char *used; /* per header entry */
} loadctx;

static nf_status load_one(void *ctx, const nf_tensor_info *t) {
    loadctx *c = ctx;
    const unsigned char *src = NULL;
    size_t idx = 0;
    NF_TRY(nf__st_find(c->m, t->name, t->ndim, t->shape, t->count, &src, &idx));
    c->used[idx] = 1;
    if (t->state) { /* checked before it replaces the current state */
        for (size_t k = 0; k < t->count; k++) {
            float v;
            memcpy(&v, src + 4 * k, 4);
            if (!isfinite(v))
                return nf__st_bad(c->m, "state tensor '%s' holds a non-finite value at index %zu", t->name, k);
        }
        memcpy(t->state, src, 4 * t->count);
        return NF_OK;
    }
    if (t->buffer) {
        if (memcmp(src, t->buffer, 4 * t->count))
            return nf__st_bad(c->m, "buffer '%s' differs from the one its spec and seed build", t->name);
        return NF_OK;
    }
    float *dst = c->f->params + t->offset;
    memcpy(dst, src, 4 * t->count);
    size_t k = nf__first_nonfinite(dst, t->count);
    if (k < t->count) return nf__st_bad(c->m, "tensor '%s' holds a non-finite value at index %zu", t->name, k);
    return NF_OK;
}

/* Reads every tensor of f's model from m.  strict: a tensor of the file
 * that is not part of the model is an error (except "train.*", checkpoint
 * state). */
static nf_status load_tensors(const nf_st_file *m, nf_flow *f, int strict) {
    size_t ne = nf__st_entries(m);
    loadctx c = {m, f, calloc(ne + 1, 1)};
    if (!c.used) return nf__err(NF_ERR_NOMEM, "out of memory");
    nf_status s = nf__flow_tensors(f, load_one, &c);
    for (size_t i = 0; strict && !s && i < ne; i++) {
        const char *nm = nf__st_entry(m, i);
        if (!c.used[i] && strcmp(nm, "__metadata__") && strncmp(nm, "train.", 6))
            s = nf__st_bad(m, "tensor '%s' is not part of the spec's model", nm);
    }
    free(c.used);
    if (!s) nf__bijector_premask(f->bij, NF_PREMASK_CHECK); /* parameters stay bit for bit as read */
    return s;
}

nf_status nf__flow_load_tensors(const nf_st_file *m, nf_flow *f) { return load_tensors(m, f, 0); }

/* Parses "[a, b, ...]" of exactly d floats. */
static int parse_floats(const char *s, float *out, size_t d) {
    js v;
    if (!s || nf__json_parse(s, strlen(s), &v, NULL)) return -1;
    int ok = v.kind == JS_ARR && v.n == d;
    for (size_t i = 0; ok && i < d; i++) {
        ok = v.kids[i].kind == JS_NUM && isfinite(v.kids[i].num);
        if (ok) out[i] = (float)v.kids[i].num;
    }
    nf__json_free(&v);
    return ok ? 0 : -1;
}

/* The flow the file's metadata describes, built from its spec and seed. */
static nf_status build_from_meta(const nf_st_file *m, const char *path, nf_flow **f) {
    const char *fmt = nf__st_meta(m, "format"), *ver = nf__st_meta(m, "version");
    const char *spec = nf__st_meta(m, "spec"), *dim = nf__st_meta(m, "dim"), *seed = nf__st_meta(m, "build_seed");
    if (!fmt || strcmp(fmt, "nflow")) return nf__st_bad(m, "__metadata__ has no format \"nflow\"");
    if (!ver || strcmp(ver, NF_MODEL_VERSION))
        return nf__st_bad(m, "format version %s is not supported (this nflow reads version " NF_MODEL_VERSION ")",
                          ver ? ver : "(none)");
    char *end = NULL;
    unsigned long long dv = dim ? strtoull(dim, &end, 10) : 0;
    if (!spec && dim)
        return nf__err(NF_ERR_UNSUPPORTED, "%s: the flow was built with the C constructors, not from a spec: build the same "
                       "flow and load its parameters with nf_flow_load_params", path);
    if (!spec || !dim || *end || dv == 0 || dv > (1u << 24)) return nf__st_bad(m, "spec or dim missing or invalid");
    unsigned long long sv = seed ? strtoull(seed, &end, 10) : 0;
    if (!seed || *end) return nf__st_bad(m, "build_seed missing or invalid");
    const char *dfl = nf__st_meta(m, "spec_defaults"); /* absent: written before defaults were versioned */
    long dfv = dfl ? strtol(dfl, &end, 10) : NF_SPEC_DEFAULTS_UNRECORDED;
    if (dfl && (*end || dfv < 1))
        return nf__st_bad(m, "spec_defaults '%s' is not a version number", dfl);
    if (dfv > NF_SPEC_DEFAULTS)
        return nf__err(NF_ERR_UNSUPPORTED, "%s: its spec uses the defaults of version %ld, newer than this nflow's (%d): "
                       "update nflow", path, dfv, NF_SPEC_DEFAULTS);
    nf_status s = nf__flow_from_spec(spec, (size_t)dv, (uint64_t)sv, (int)dfv, f);
    if (s) {
        char head[4200];
        snprintf(head, sizeof head, "%s: its spec does not build", path);
        nf__err_prefix(s, head);
        return NF_ERR_DOMAIN;
    }
    return NF_OK;
}

/* The column names saved with the flow, if any. */
static nf_status load_names(const nf_st_file *m, nf_flow *f) {
    const char *s = nf__st_meta(m, "columns");
    if (!s) return NF_OK;
    size_t D = f->d + f->bij->dc;
    js v;
    if (nf__json_parse(s, strlen(s), &v, NULL)) return nf__st_bad(m, "columns is not a JSON list");
    nf_status st = NF_OK;
    const char **names = calloc(D, sizeof *names);
    if (!names) st = nf__err(NF_ERR_NOMEM, "out of memory");
    else if (v.kind != JS_ARR || v.n != D) st = nf__st_bad(m, "columns must list %zu names", D);
    for (size_t j = 0; !st && j < D; j++) {
        if (v.kids[j].kind != JS_STR) st = nf__st_bad(m, "columns must be strings");
        else names[j] = v.kids[j].str;
    }
    if (!st) st = nf_flow_set_column_names(f, names);
    free(names);
    nf__json_free(&v);
    return st;
}

static nf_status load_scaler(const nf_st_file *m, nf_flow *f) {
    if (!nf__st_meta(m, "scaler_mean") && !nf__st_meta(m, "scaler_std")) return NF_OK;
    float *ms = malloc(2 * f->d * sizeof(float));
    nf_status s = NF_OK;
    if (!ms)
        s = nf__err(NF_ERR_NOMEM, "out of memory");
    else if (parse_floats(nf__st_meta(m, "scaler_mean"), ms, f->d) ||
             parse_floats(nf__st_meta(m, "scaler_std"), ms + f->d, f->d))
        s = nf__st_bad(m, "scaler_mean/scaler_std must be lists of %zu finite numbers", f->d);
    else if (nf_flow_set_scaler(f, ms, ms + f->d)) {
        char why[512];
        snprintf(why, sizeof why, "%s", nf_last_error());
        s = nf__st_bad(m, "invalid scaler: %s", why);
    }
    free(ms);
    return s;
}

nf_status nf_flow_load(const char *path, nf_flow **out) {
    const char *fn = "nf_flow_load";
    if (!path || !out) return nf__err(NF_ERR_ARG, "%s: NULL argument", fn);
    *out = NULL;
    nf_st_file *m = NULL;
    nf_flow *f = NULL;
    nf_status s = nf__st_open(path, WHAT, &m);
    if (!s) s = build_from_meta(m, path, &f);
    if (!s) s = load_tensors(m, f, 1);
    if (!s) s = load_scaler(m, f);
    if (!s) s = load_names(m, f);
    nf__st_close(m);
    if (s) {
        nf_flow_free(f);
        return nf__err_prefix(s, fn);
    }
    *out = f;
    return NF_OK;
}

/* The file's format, version and dimension against f's. */
static nf_status check_header(const nf_st_file *m, const nf_flow *f) {
    const char *fmt = nf__st_meta(m, "format"), *ver = nf__st_meta(m, "version"), *dim = nf__st_meta(m, "dim");
    if (!fmt || strcmp(fmt, "nflow")) return nf__st_bad(m, "__metadata__ has no format \"nflow\"");
    if (!ver || strcmp(ver, NF_MODEL_VERSION)) return nf__st_bad(m, "format version %s is not supported", ver ? ver : "(none)");
    char *end = NULL;
    unsigned long long dv = dim ? strtoull(dim, &end, 10) : 0;
    if (!dim || *end || dv != f->d)
        return nf__err(NF_ERR_SHAPE, "the file's flow has dimension %s, this one %zu", dim ? dim : "(none)", f->d);
    return NF_OK;
}

nf_status nf_flow_load_params(nf_flow *f, const char *path) {
    const char *fn = "nf_flow_load_params";
    if (!f || !path) return nf__err(NF_ERR_ARG, "%s: NULL argument", fn);
    float *keep = malloc(f->P * sizeof(float) + 1);
    if (!keep) return nf__err(NF_ERR_NOMEM, "%s: out of memory", fn);
    memcpy(keep, f->params, f->P * sizeof(float));
    nf_st_file *m = NULL;
    nf_status s = nf__st_open(path, WHAT, &m);
    if (!s) s = check_header(m, f);
    if (!s) s = load_tensors(m, f, 1);
    if (!s) s = load_scaler(m, f);
    nf__st_close(m);
    if (s) memcpy(f->params, keep, f->P * sizeof(float)); /* all or nothing */
    free(keep);
    return s ? nf__err_prefix(s, fn) : NF_OK;
}

nf_status nf_model_metadata(const char *path, const char *key, char **value) {
    if (!path || !key || !value) return nf__err(NF_ERR_ARG, "nf_model_metadata: NULL argument");
    *value = NULL;
    nf_st_file *m = NULL;
    nf_status s = nf__st_open(path, WHAT, &m);
    if (!s) {
        const char *v = nf__st_meta(m, key);
        if (!v)
            s = nf__err(NF_ERR_ARG, "%s: no metadata '%s'", path, key);
        else if (!(*value = strdup(v)))
            s = nf__err(NF_ERR_NOMEM, "out of memory");
    }
    nf__st_close(m);
    return s;
}
