/*
 * safetensors.c - the safetensors container (safetensors.h): a bounded
 * reader that checks every size against the file, and an atomic writer.
 */
#include "safetensors.h"
#include "json.h"
#include "output.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
        b->s = ns;
        b->cap = nc;
    }
    memcpy(b->s + b->n, t, len);
    b->n += len;
    b->s[b->n] = 0;
}

static void sb_printf(sbuf *b, const char *fmt, ...) NF_PRINTF(2, 3);
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
        } else if (c < 0x20 || c == 0x7f) { /* bytes >= 0x80 pass as they are: UTF-8 stays UTF-8 */
            sb_printf(b, "\\u%04x", c);
        } else
            sb_put(b, (const char *)&c, 1);
    }
    sb_put(b, "\"", 1);
}

/* ---- writing ------------------------------------------------------------- */

static void header(sbuf *h, const char *const *meta_kv, size_t nmeta, const nf_st_tensor *t, size_t nt) {
    sb_put(h, "{\"__metadata__\":{", 17);
    for (size_t i = 0; i < nmeta; i++) {
        if (i) sb_put(h, ",", 1);
        sb_json_str(h, meta_kv[2 * i]);
        sb_put(h, ":", 1);
        sb_json_str(h, meta_kv[2 * i + 1]);
    }
    sb_put(h, "}", 1);
    size_t off = 0;
    for (size_t i = 0; i < nt; i++) {
        sb_put(h, ",", 1);
        sb_json_str(h, t[i].name);
        if (t[i].ndim == 2)
            sb_printf(h, ":{\"dtype\":\"F32\",\"shape\":[%zu,%zu]", t[i].shape[0], t[i].shape[1]);
        else
            sb_printf(h, ":{\"dtype\":\"F32\",\"shape\":[%zu]", t[i].shape[0]);
        sb_printf(h, ",\"data_offsets\":[%zu,%zu]}", off, off + 4 * t[i].count);
        off += 4 * t[i].count;
    }
    sb_put(h, "}", 1);
    while (!h->oom && h->n % 8) sb_put(h, " ", 1);
}

nf_status nf__st_write(const char *path, const char *const *meta_kv, size_t nmeta, const nf_st_tensor *t, size_t nt) {
    sbuf h = {0};
    header(&h, meta_kv, nmeta, t, nt);
    if (h.oom) {
        free(h.s);
        return nf__err(NF_ERR_NOMEM, "out of memory");
    }
    nf_out o;
    nf_status s = nf__out_open(&o, path);
    if (s) {
        free(h.s);
        return s;
    }
    unsigned char len8[8];
    for (int k = 0; k < 8; k++) len8[k] = (unsigned char)((uint64_t)h.n >> (8 * k));
    int ok = fwrite(len8, 1, 8, o.fp) == 8 && fwrite(h.s, 1, h.n, o.fp) == h.n;
    for (size_t i = 0; ok && i < nt; i++)
        ok = fwrite(t[i].data, sizeof(float), t[i].count, o.fp) == t[i].count; /* little-endian hosts */
    free(h.s);
    return nf__out_close(&o, ok);
}

/* ---- reading ------------------------------------------------------------- */

struct nf_st_file {
    const char *path, *what;
    unsigned char *raw; /* the whole file */
    size_t len, hlen;
    js head;
};

static nf_status vbad(const char *path, const char *what, const char *fmt, va_list ap) {
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    return nf__err(NF_ERR_DOMAIN, "%s: not a valid %s: %s", path, what, msg);
}

nf_status nf__st_bad(const nf_st_file *f, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    nf_status s = vbad(f->path, f->what, fmt, ap);
    va_end(ap);
    return s;
}

static nf_status read_all(nf_st_file *m) {
    FILE *fp = fopen(m->path, "rb");
    if (!fp) return nf__err(NF_ERR_IO, "cannot open %s: %s", m->path, strerror(errno));
    long flen = -1;
    if (fseek(fp, 0, SEEK_END) == 0) flen = ftell(fp);
    rewind(fp);
    unsigned char len8[8];
    nf_status s = NF_OK;
    if (flen < 8)
        s = nf__st_bad(m, "%ld bytes, shorter than the 8-byte header length", flen);
    else if (fread(len8, 1, 8, fp) != 8)
        s = nf__st_bad(m, "cannot read the header length");
    uint64_t hl = 0;
    for (int k = 0; !s && k < 8; k++) hl |= (uint64_t)len8[k] << (8 * k);
    if (!s && (hl == 0 || hl > NF_MAX_HEADER || hl > (uint64_t)flen - 8))
        s = nf__st_bad(m, "header length %llu does not fit the file's %ld bytes", (unsigned long long)hl, flen);
    if (!s) {
        m->len = (size_t)flen;
        m->hlen = (size_t)hl;
        m->raw = malloc(m->len);
        rewind(fp);
        size_t got = m->raw ? fread(m->raw, 1, m->len, fp) : 0;
        if (!m->raw)
            s = nf__err(NF_ERR_NOMEM, "%s: out of memory", m->path);
        else if (got != m->len)
            s = nf__st_bad(m, "short read");
    }
    fclose(fp);
    return s;
}

nf_status nf__st_open(const char *path, const char *what, nf_st_file **out) {
    *out = NULL;
    nf_st_file *m = calloc(1, sizeof *m);
    if (!m) return nf__err(NF_ERR_NOMEM, "out of memory");
    m->path = path;
    m->what = what;
    nf_status s = read_all(m);
    size_t pos = 0;
    if (!s && (nf__json_parse((const char *)m->raw + 8, m->hlen, &m->head, &pos) || m->head.kind != JS_OBJ))
        s = nf__st_bad(m, "the JSON header is malformed near byte %zu", 8 + pos);
    if (s) {
        nf__st_close(m);
        return s;
    }
    *out = m;
    return NF_OK;
}

void nf__st_close(nf_st_file *m) {
    if (!m) return;
    nf__json_free(&m->head);
    free(m->raw);
    free(m);
}

const char *nf__st_meta(const nf_st_file *m, const char *key) {
    const js *md = nf__json_get(&m->head, "__metadata__");
    const js *v = nf__json_get(md, key);
    return v && v->kind == JS_STR ? v->str : NULL;
}

size_t nf__st_entries(const nf_st_file *m) { return m->head.n; }
const char *nf__st_entry(const nf_st_file *m, size_t i) { return i < m->head.n ? m->head.keys[i] : NULL; }

nf_status nf__st_find(const nf_st_file *m, const char *name, int ndim, const size_t *shape, size_t count,
                      const unsigned char **bytes, size_t *index) {
    const js *h = &m->head;
    size_t idx = h->n;
    for (size_t i = 0; i < h->n; i++)
        if (h->keys[i] && !strcmp(h->keys[i], name)) idx = i;
    if (idx == h->n) return nf__st_bad(m, "tensor '%s' that the spec needs is missing", name);
    if (index) *index = idx;
    const js *e = &h->kids[idx], *dt = nf__json_get(e, "dtype"), *sh = nf__json_get(e, "shape"),
             *of = nf__json_get(e, "data_offsets");
    if (!dt || dt->kind != JS_STR || strcmp(dt->str, "F32"))
        return nf__st_bad(m, "tensor '%s' must have dtype F32", name);
    if (!sh || sh->kind != JS_ARR || (int)sh->n != ndim)
        return nf__st_bad(m, "tensor '%s' must have %d dimensions", name, ndim);
    for (int k = 0; k < ndim; k++)
        if (sh->kids[k].kind != JS_NUM || sh->kids[k].num != (double)shape[k])
            return nf__st_bad(m, "tensor '%s' has shape entry %d = %g, the spec makes %zu", name, k, sh->kids[k].num,
                              shape[k]);
    if (!of || of->kind != JS_ARR || of->n != 2 || of->kids[0].kind != JS_NUM || of->kids[1].kind != JS_NUM)
        return nf__st_bad(m, "tensor '%s' has no valid data_offsets", name);
    double b = of->kids[0].num, en = of->kids[1].num, avail = (double)(m->len - 8 - m->hlen);
    if (b < 0 || en < b || en > avail || b != floor(b) || en != floor(en) || en - b != 4.0 * (double)count)
        return nf__st_bad(
            m, "tensor '%s' has data_offsets [%.0f, %.0f] inconsistent with its shape or the file's %.0f data bytes",
            name, b, en, avail);
    *bytes = m->raw + 8 + m->hlen + (size_t)b;
    return NF_OK;
}

nf_status nf__st_read_floats(const nf_st_file *m, const char *name, float *dst, size_t count) {
    const unsigned char *src = NULL;
    size_t shape[1] = {count};
    NF_TRY(nf__st_find(m, name, 1, shape, count, &src, NULL));
    memcpy(dst, src, 4 * count);
    size_t k = nf__first_nonfinite(dst, count);
    if (k < count) return nf__st_bad(m, "tensor '%s' holds a non-finite value at index %zu", name, k);
    return NF_OK;
}
