/*
 * model.c - model files in the safetensors format:
 *   8 bytes: little-endian u64 N;  N bytes: JSON header (space padded to a
 *   multiple of 8);  then the tensors' raw little-endian float32 bytes.
 * The header maps tensor names to {"dtype":"F32","shape":[..],
 * "data_offsets":[begin,end]} (offsets from the start of the data) and
 * "__metadata__" to string values: format, version, spec, dim, build_seed,
 * scaler_mean, scaler_std, summary.
 *
 * Loading rebuilds the flow from its spec and seed, then requires every
 * tensor the spec makes to be in the file with the same shape, every size to
 * lie inside the file, fixed buffers (MADE masks, permutations) to equal the
 * rebuilt ones, no extra tensors, and finite parameters.
 */
#include "../flow/flow.h"
#include "json.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NF_MODEL_VERSION "1"
#define NF_MAX_HEADER (64u << 20)

/* ---- a growing string ---------------------------------------------------- */

typedef struct sbuf {
    char *s;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *t, size_t len) {
    if (b->oom) return;
    if (b->n + len + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 1024;
        while (nc < b->n + len + 1) nc *= 2;
        char *ns = realloc(b->s, nc);
        if (!ns) {
            b->oom = 1;
            return;
        }
        b->s = ns, b->cap = nc;
    }
    memcpy(b->s + b->n, t, len);
    b->n += len;
    b->s[b->n] = 0;
}

static void sb_printf(sbuf *b, const char *fmt, ...) NF_PRINTF(2, 3);
#include <stdarg.h>
static void sb_printf(sbuf *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k > 0) sb_put(b, tmp, (size_t)k < sizeof tmp ? (size_t)k : sizeof tmp - 1);
}

static void sb_json_str(sbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            sb_put(b, e, 2);
        } else if (c < 0x20 || c > 0x7e) {
            sb_printf(b, "\\u%04x", c);
        } else
            sb_put(b, (const char *)&c, 1);
    }
    sb_put(b, "\"", 1);
}

/* ---- tensor lists -------------------------------------------------------- */

typedef struct tlist {
    nf_tensor_info *t;
    size_t n, cap;
} tlist;

static nf_status collect(void *ctx, const nf_tensor_info *t) {
    tlist *l = ctx;
    if (l->n == l->cap) {
        size_t nc = l->cap ? 2 * l->cap : 64;
        nf_tensor_info *nt = realloc(l->t, nc * sizeof *nt);
        if (!nt) return nf__err(NF_ERR_NOMEM, "out of memory listing tensors");
        l->t = nt, l->cap = nc;
    }
    l->t[l->n++] = *t;
    return NF_OK;
}

static void floats_json(sbuf *b, const float *v, size_t n) {
    sb_put(b, "[", 1);
    for (size_t i = 0; i < n; i++) sb_printf(b, "%s%.9g", i ? ", " : "", v[i]);
    sb_put(b, "]", 1);
}

nf_status nf_flow_save(const nf_flow *f, const char *path, const char *summary) {
    return nf__flow_save_ex(f, path, summary, NULL, 0, NULL, 0);
}

nf_status nf__flow_save_ex(const nf_flow *f, const char *path, const char *summary, const nf_extra_tensor *xt,
                           size_t nxt, const char *const *meta_kv, size_t nmeta) {
    const char *fn = "nf_flow_save";
    if (!f || !path) return nf__err(NF_ERR_ARG, "%s: flow and path must not be NULL", fn);
    if (!f->spec) return nf__err(NF_ERR_UNSUPPORTED, "%s: this flow was not built from a spec, so its file could not be loaded back", fn);
    tlist l = {0};
    nf_status s = nf__flow_tensors(f, collect, &l);
    if (s) {
        free(l.t);
        return nf__err_prefix(s, fn);
    }
    sbuf h = {0}, meta = {0};
    static const char head0[] = "{\"__metadata__\":{\"format\":\"nflow\",\"version\":\"" NF_MODEL_VERSION "\",\"spec\":";
    sb_put(&h, head0, strlen(head0));
    sb_json_str(&h, f->spec);
    sb_printf(&h, ",\"dim\":\"%zu\",\"build_seed\":\"%llu\"", f->d, (unsigned long long)f->build_seed);
    if (f->has_scaler) {
        floats_json(&meta, f->mean, f->d);
        sb_put(&h, ",\"scaler_mean\":", 15);
        sb_json_str(&h, meta.s);
        meta.n = 0;
        floats_json(&meta, f->std, f->d);
        sb_put(&h, ",\"scaler_std\":", 14);
        sb_json_str(&h, meta.s);
    }
    if (summary) {
        sb_put(&h, ",\"summary\":", 11);
        sb_json_str(&h, summary);
    }
    for (size_t i = 0; i < nmeta; i++) {
        sb_put(&h, ",", 1);
        sb_json_str(&h, meta_kv[2 * i]);
        sb_put(&h, ":", 1);
        sb_json_str(&h, meta_kv[2 * i + 1]);
    }
    sb_put(&h, "}", 1);
    for (size_t i = 0; i < nxt; i++) { /* extra tensors go into the same list */
        nf_tensor_info t;
        memset(&t, 0, sizeof t);
        snprintf(t.name, sizeof t.name, "%s", xt[i].name);
        t.ndim = 1, t.shape[0] = t.count = xt[i].count, t.buffer = xt[i].data;
        if ((s = collect(&l, &t))) {
            free(h.s), free(l.t), free(meta.s);
            return nf__err_prefix(s, fn);
        }
    }
    size_t off = 0;
    for (size_t i = 0; i < l.n; i++) {
        const nf_tensor_info *t = &l.t[i];
        sb_put(&h, ",", 1);
        sb_json_str(&h, t->name);
        if (t->ndim == 2) sb_printf(&h, ":{\"dtype\":\"F32\",\"shape\":[%zu,%zu]", t->shape[0], t->shape[1]);
        else sb_printf(&h, ":{\"dtype\":\"F32\",\"shape\":[%zu]", t->shape[0]);
        sb_printf(&h, ",\"data_offsets\":[%zu,%zu]}", off, off + 4 * t->count);
        off += 4 * t->count;
    }
    sb_put(&h, "}", 1);
    while (!h.oom && h.n % 8) sb_put(&h, " ", 1);
    free(meta.s);
    if (h.oom) {
        free(h.s), free(l.t);
        return nf__err(NF_ERR_NOMEM, "%s: out of memory", fn);
    }
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp) {
        free(h.s), free(l.t);
        return nf__err(NF_ERR_ARG, "%s: path too long", fn);
    }
    FILE *fp = fopen(tmp, "wb");
    if (!fp) {
        free(h.s), free(l.t);
        return nf__err(NF_ERR_ARG, "%s: cannot create %s: %s", fn, tmp, strerror(errno));
    }
    unsigned char len8[8];
    for (int k = 0; k < 8; k++) len8[k] = (unsigned char)((uint64_t)h.n >> (8 * k));
    int ok = fwrite(len8, 1, 8, fp) == 8 && fwrite(h.s, 1, h.n, fp) == h.n;
    for (size_t i = 0; ok && i < l.n; i++) {
        const nf_tensor_info *t = &l.t[i];
        const float *src = t->buffer ? t->buffer : t->state ? t->state : f->params + t->offset;
        ok = fwrite(src, sizeof(float), t->count, fp) == t->count; /* little-endian hosts */
    }
    ok = ok && fflush(fp) == 0 && fsync(fileno(fp)) == 0;
    ok = (fclose(fp) == 0) && ok;
    free(h.s), free(l.t);
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        return nf__err(NF_ERR_ARG, "%s: cannot write %s: %s", fn, path, strerror(e));
    }
    return NF_OK;
}

/* ---- loading ------------------------------------------------------------- */

typedef struct mfile {
    unsigned char *raw; /* the whole file */
    size_t len, hlen;
    js head;
} mfile;

static nf_status bad(const char *path, const char *fmt, ...) NF_PRINTF(2, 3);
static nf_status bad(const char *path, const char *fmt, ...) {
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return nf__err(NF_ERR_DOMAIN, "%s: not a valid nflow model file: %s", path, what);
}

static nf_status open_model(const char *path, mfile *m) {
    memset(m, 0, sizeof *m);
    FILE *fp = fopen(path, "rb");
    if (!fp) return nf__err(NF_ERR_ARG, "cannot open %s: %s", path, strerror(errno));
    long flen = -1;
    if (fseek(fp, 0, SEEK_END) == 0) flen = ftell(fp);
    rewind(fp);
    if (flen < 8) {
        fclose(fp);
        return bad(path, "%ld bytes, shorter than the 8-byte header length", flen);
    }
    unsigned char len8[8];
    if (fread(len8, 1, 8, fp) != 8) {
        fclose(fp);
        return bad(path, "cannot read the header length");
    }
    uint64_t hl = 0;
    for (int k = 0; k < 8; k++) hl |= (uint64_t)len8[k] << (8 * k);
    if (hl == 0 || hl > NF_MAX_HEADER || hl > (uint64_t)flen - 8) {
        fclose(fp);
        return bad(path, "header length %llu does not fit the file's %ld bytes", (unsigned long long)hl, flen);
    }
    m->len = (size_t)flen, m->hlen = (size_t)hl;
    m->raw = malloc(m->len);
    rewind(fp);
    size_t got = m->raw ? fread(m->raw, 1, m->len, fp) : 0;
    fclose(fp);
    if (!m->raw) return nf__err(NF_ERR_NOMEM, "%s: out of memory", path);
    if (got != m->len) return bad(path, "short read");
    size_t pos;
    if (nf__json_parse((const char *)m->raw + 8, m->hlen, &m->head, &pos) || m->head.kind != JS_OBJ)
        return bad(path, "the JSON header is malformed near byte %zu", 8 + pos);
    return NF_OK;
}

static void close_model(mfile *m) {
    nf__json_free(&m->head);
    free(m->raw);
}

static const char *meta(const mfile *m, const char *key) {
    const js *md = nf__json_get(&m->head, "__metadata__");
    const js *v = nf__json_get(md, key);
    return v && v->kind == JS_STR ? v->str : NULL;
}

nf_status nf_model_metadata(const char *path, const char *key, char **value) {
    if (!path || !key || !value) return nf__err(NF_ERR_ARG, "nf_model_metadata: NULL argument");
    *value = NULL;
    mfile m;
    nf_status s = open_model(path, &m);
    if (!s) {
        const char *v = meta(&m, key);
        if (!v) s = nf__err(NF_ERR_ARG, "%s: no metadata '%s'", path, key);
        else if (!(*value = strdup(v))) s = nf__err(NF_ERR_NOMEM, "out of memory");
    }
    close_model(&m);
    return s;
}

nf_status nf__model_open(const char *path, nf_model_file **out) {
    *out = NULL;
    mfile *m = calloc(1, sizeof *m);
    if (!m) return nf__err(NF_ERR_NOMEM, "out of memory");
    nf_status s = open_model(path, m);
    if (s) {
        close_model(m);
        free(m);
        return s;
    }
    *out = (nf_model_file *)m;
    return NF_OK;
}

void nf__model_close(nf_model_file *mf) {
    if (!mf) return;
    close_model((mfile *)mf);
    free(mf);
}

const char *nf__model_meta(const nf_model_file *mf, const char *key) { return meta((const mfile *)mf, key); }

nf_status nf__model_tensor(const nf_model_file *mf, const char *path, const char *name, float *dst, size_t count) {
    const mfile *m = (const mfile *)mf;
    const js *e = nf__json_get(&m->head, name);
    const js *dt = nf__json_get(e, "dtype"), *sh = nf__json_get(e, "shape"), *of = nf__json_get(e, "data_offsets");
    if (!e || !dt || dt->kind != JS_STR || strcmp(dt->str, "F32") || !sh || sh->kind != JS_ARR || sh->n != 1 ||
        sh->kids[0].kind != JS_NUM || sh->kids[0].num != (double)count || !of || of->kind != JS_ARR || of->n != 2)
        return bad(path, "tensor '%s' of %zu float32 values is missing or has another shape", name, count);
    double b = of->kids[0].num, en = of->kids[1].num, avail = (double)(m->len - 8 - m->hlen);
    if (b < 0 || en > avail || en - b != 4.0 * (double)count || b != floor(b))
        return bad(path, "tensor '%s' has data_offsets outside the file", name);
    memcpy(dst, m->raw + 8 + m->hlen + (size_t)b, 4 * count);
    size_t k = nf__first_nonfinite(dst, count);
    if (k < count) return bad(path, "tensor '%s' holds a non-finite value at index %zu", name, k);
    return NF_OK;
}

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

typedef struct loadctx {
    const char *path;
    mfile *m;
    nf_flow *f;
    unsigned char *used; /* per header entry */
} loadctx;

static nf_status load_one(void *ctx, const nf_tensor_info *t) {
    loadctx *c = ctx;
    const js *h = &c->m->head;
    size_t idx = h->n;
    for (size_t i = 0; i < h->n; i++)
        if (h->keys[i] && !strcmp(h->keys[i], t->name)) idx = i;
    if (idx == h->n) return bad(c->path, "tensor '%s' that the spec needs is missing", t->name);
    c->used[idx] = 1;
    const js *e = &h->kids[idx], *dt = nf__json_get(e, "dtype"), *sh = nf__json_get(e, "shape"),
             *of = nf__json_get(e, "data_offsets");
    if (!dt || dt->kind != JS_STR || strcmp(dt->str, "F32"))
        return bad(c->path, "tensor '%s' must have dtype F32", t->name);
    if (!sh || sh->kind != JS_ARR || (int)sh->n != t->ndim)
        return bad(c->path, "tensor '%s' must have %d dimensions", t->name, t->ndim);
    for (int k = 0; k < t->ndim; k++)
        if (sh->kids[k].kind != JS_NUM || sh->kids[k].num != (double)t->shape[k])
            return bad(c->path, "tensor '%s' has shape entry %d = %g, the spec makes %zu", t->name, k,
                       sh->kids[k].num, t->shape[k]);
    if (!of || of->kind != JS_ARR || of->n != 2 || of->kids[0].kind != JS_NUM || of->kids[1].kind != JS_NUM)
        return bad(c->path, "tensor '%s' has no valid data_offsets", t->name);
    double b = of->kids[0].num, en = of->kids[1].num, avail = (double)(c->m->len - 8 - c->m->hlen);
    if (b < 0 || en < b || en > avail || b != floor(b) || en != floor(en) || en - b != 4.0 * (double)t->count)
        return bad(c->path, "tensor '%s' has data_offsets [%.0f, %.0f] inconsistent with its shape or the file's %.0f data bytes",
                   t->name, b, en, avail);
    const unsigned char *src = c->m->raw + 8 + c->m->hlen + (size_t)b;
    if (t->state) { /* checked before it replaces the current state */
        for (size_t k = 0; k < t->count; k++) {
            float v;
            memcpy(&v, src + 4 * k, 4);
            if (!isfinite(v)) return bad(c->path, "state tensor '%s' holds a non-finite value at index %zu", t->name, k);
        }
        memcpy(t->state, src, 4 * t->count);
        return NF_OK;
    }
    if (t->buffer) {
        if (memcmp(src, t->buffer, 4 * t->count))
            return bad(c->path, "buffer '%s' differs from the one its spec and seed build", t->name);
        return NF_OK;
    }
    float *dst = c->f->params + t->offset;
    memcpy(dst, src, 4 * t->count);
    size_t k = nf__first_nonfinite(dst, t->count);
    if (k < t->count) return bad(c->path, "tensor '%s' holds a non-finite value at index %zu", t->name, k);
    return NF_OK;
}

/* Reads every tensor of f's model from m.  strict: a tensor of the file
 * that is not part of the model is an error (except "train.*", checkpoint
 * state). */
static nf_status load_tensors(mfile *m, const char *path, nf_flow *f, int strict) {
    loadctx c = {path, m, f, calloc(m->head.n + 1, 1)};
    if (!c.used) return nf__err(NF_ERR_NOMEM, "out of memory");
    nf_status s = nf__flow_tensors(f, load_one, &c);
    for (size_t i = 0; strict && !s && i < m->head.n; i++)
        if (!c.used[i] && strcmp(m->head.keys[i], "__metadata__") && strncmp(m->head.keys[i], "train.", 6))
            s = bad(path, "tensor '%s' is not part of the spec's model", m->head.keys[i]);
    free(c.used);
    if (!s) nf__bijector_premask(f->bij, NF_PREMASK_CHECK); /* parameters stay bit for bit as read */
    return s;
}

nf_status nf__model_load_params(const nf_model_file *mf, const char *path, nf_flow *f) {
    return load_tensors((mfile *)mf, path, f, 0);
}

nf_status nf_flow_load(const char *path, nf_flow **out) {
    const char *fn = "nf_flow_load";
    if (!path || !out) return nf__err(NF_ERR_ARG, "%s: NULL argument", fn);
    *out = NULL;
    mfile m;
    nf_status s = open_model(path, &m);
    nf_flow *f = NULL;
    const char *fmt = s ? NULL : meta(&m, "format"), *ver = s ? NULL : meta(&m, "version");
    const char *spec = s ? NULL : meta(&m, "spec"), *dim = s ? NULL : meta(&m, "dim");
    const char *seed = s ? NULL : meta(&m, "build_seed");
    if (!s && (!fmt || strcmp(fmt, "nflow"))) s = bad(path, "__metadata__ has no format \"nflow\"");
    if (!s && (!ver || strcmp(ver, NF_MODEL_VERSION)))
        s = bad(path, "format version %s is not supported (this nflow reads version " NF_MODEL_VERSION ")", ver ? ver : "(none)");
    char *end = NULL;
    unsigned long long dv = 0, sv = 0;
    if (!s) {
        dv = dim ? strtoull(dim, &end, 10) : 0;
        if (!spec || !dim || *end || dv == 0 || dv > (1u << 24)) s = bad(path, "spec or dim missing or invalid");
    }
    if (!s) {
        sv = seed ? strtoull(seed, &end, 10) : 0;
        if (!seed || *end) s = bad(path, "build_seed missing or invalid");
    }
    if (!s) {
        s = nf_flow_from_spec(spec, (size_t)dv, (uint64_t)sv, &f);
        if (s) {
            char head[4200];
            snprintf(head, sizeof head, "%s: its spec does not build", path);
            nf__err_prefix(s, head);
            s = NF_ERR_DOMAIN;
        }
    }
    if (!s) s = load_tensors(&m, path, f, 1);
    if (!s && (meta(&m, "scaler_mean") || meta(&m, "scaler_std"))) {
        float *ms = malloc(2 * f->d * sizeof(float));
        if (!ms) s = nf__err(NF_ERR_NOMEM, "out of memory");
        else if (parse_floats(meta(&m, "scaler_mean"), ms, f->d) || parse_floats(meta(&m, "scaler_std"), ms + f->d, f->d))
            s = bad(path, "scaler_mean/scaler_std must be lists of %zu finite numbers", f->d);
        else if (nf_flow_set_scaler(f, ms, ms + f->d)) {
            char why[512];
            snprintf(why, sizeof why, "%s", nf_last_error());
            s = bad(path, "invalid scaler: %s", why);
        }
        free(ms);
    }
    close_model(&m);
    if (s) {
        nf_flow_free(f);
        return nf__err_prefix(s, fn);
    }
    *out = f;
    return NF_OK;
}
