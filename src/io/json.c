/*
 * json.c - see json.h.  Depth and sizes are bounded; every read is checked
 * against the end of the buffer.
 */
#include "json.h"
#include "../core/core.h"

#include <stdlib.h>
#include <string.h>

typedef struct jp {
    const char *s;
    size_t i, n;
    int depth;
} jp;

static void ws(jp *p) {
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r')) p->i++;
}

static int value(jp *p, js *v);

static int string(jp *p, char **out) {
    if (p->i >= p->n || p->s[p->i] != '"') return -1;
    p->i++;
    size_t cap = 16, k = 0;
    char *b = malloc(cap);
    if (!b) return -1;
    while (p->i < p->n && p->s[p->i] != '"') {
        char c = p->s[p->i++];
        if ((unsigned char)c < 0x20) goto fail;
        if (c == '\\') {
            if (p->i >= p->n) goto fail;
            char e = p->s[p->i++];
            switch (e) {
            case '"': case '\\': case '/': c = e; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'n': c = '\n'; break;
            case 'r': c = '\r'; break;
            case 't': c = '\t'; break;
            case 'u': {
                if (p->i + 4 > p->n) goto fail;
                unsigned v = 0;
                for (int q = 0; q < 4; q++) {
                    char h = p->s[p->i++];
                    v = v * 16 + (unsigned)(h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10
                                           : h >= 'A' && h <= 'F' ? h - 'A' + 10 : 99);
                    if (v > 0xffff) goto fail;
                }
                if (v > 0x7f) goto fail; /* headers written by nflow are ASCII */
                c = (char)v;
                break;
            }
            default: goto fail;
            }
        }
        if (k + 2 > cap) {
            char *nb = realloc(b, cap *= 2);
            if (!nb) goto fail;
            b = nb;
        }
        b[k++] = c;
    }
    if (p->i >= p->n) goto fail;
    p->i++;
    b[k] = 0;
    *out = b;
    return 0;
fail:
    free(b);
    return -1;
}

static int push(js *v, jp *p, char *key) {
    if (v->n >= 1000000) return -1;
    js *nk = realloc(v->kids, (v->n + 1) * sizeof *nk);
    if (!nk) return -1;
    v->kids = nk;
    if (v->kind == JS_OBJ) {
        char **keys = realloc(v->keys, (v->n + 1) * sizeof *keys);
        if (!keys) return -1;
        v->keys = keys;
        v->keys[v->n] = key;
    }
    memset(&v->kids[v->n], 0, sizeof(js));
    v->n++;
    if (value(p, &v->kids[v->n - 1])) return -1;
    return 0;
}

static int value(jp *p, js *v) {
    memset(v, 0, sizeof *v);
    if (++p->depth > 32) return -1;
    ws(p);
    if (p->i >= p->n) return -1;
    char c = p->s[p->i];
    int rc = 0;
    if (c == '{' || c == '[') {
        v->kind = c == '{' ? JS_OBJ : JS_ARR;
        p->i++;
        ws(p);
        if (p->i < p->n && p->s[p->i] == (c == '{' ? '}' : ']')) {
            p->i++;
        } else
            for (;;) {
                char *key = NULL;
                if (v->kind == JS_OBJ) {
                    ws(p);
                    if (string(p, &key)) return -1;
                    ws(p);
                    if (p->i >= p->n || p->s[p->i] != ':') {
                        free(key);
                        return -1;
                    }
                    p->i++;
                }
                if (push(v, p, key)) {
                    if (v->kind == JS_OBJ && (v->n == 0 || v->keys[v->n - 1] != key)) free(key);
                    return -1;
                }
                ws(p);
                if (p->i >= p->n) return -1;
                if (p->s[p->i] == ',') {
                    p->i++;
                    continue;
                }
                if (p->s[p->i] == (c == '{' ? '}' : ']')) {
                    p->i++;
                    break;
                }
                return -1;
            }
    } else if (c == '"') {
        v->kind = JS_STR;
        rc = string(p, &v->str);
    } else if (c == 't' || c == 'f' || c == 'n') {
        const char *w = c == 't' ? "true" : c == 'f' ? "false" : "null";
        size_t l = strlen(w);
        if (p->i + l > p->n || memcmp(p->s + p->i, w, l)) return -1;
        p->i += l;
        v->kind = c == 'n' ? JS_NULL : JS_BOOL;
        v->num = c == 't';
    } else {
        char buf[64];
        size_t k = 0;
        while (p->i < p->n && k < 63 && strchr("+-0123456789.eE", p->s[p->i])) buf[k++] = p->s[p->i++];
        buf[k] = 0;
        char *end;
        v->num = strtod(buf, &end);
        if (k == 0 || *end) return -1;
        v->kind = JS_NUM;
    }
    p->depth--;
    return rc;
}

void nf__json_free(js *v) {
    if (!v) return;
    for (size_t i = 0; i < v->n; i++) {
        nf__json_free(&v->kids[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->kids);
    free(v->keys);
    free(v->str);
    memset(v, 0, sizeof *v);
}

static int nf__json_parse_impl(const char *text, size_t len, js *out, size_t *err_pos) {
    jp p = {text, 0, len, 0};
    if (value(&p, out) == 0) {
        ws(&p);
        if (p.i == p.n) return 0;
    }
    if (err_pos) *err_pos = p.i;
    nf__json_free(out);
    return -1;
}

/* In the C locale whatever the host program set (core/clocale.c). */
int nf__json_parse(const char *text, size_t len, js *out, size_t *err_pos) {
    nf_clocale loc;
    nf__clocale_enter(&loc);
    int r = nf__json_parse_impl(text, len, out, err_pos);
    nf__clocale_leave(&loc);
    return r;
}

const js *nf__json_get(const js *obj, const char *key) {
    if (!obj || obj->kind != JS_OBJ) return NULL;
    for (size_t i = 0; i < obj->n; i++)
        if (obj->keys[i] && !strcmp(obj->keys[i], key)) return &obj->kids[i];
    return NULL;
}
