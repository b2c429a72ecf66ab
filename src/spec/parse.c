/*
 * parse.c - recursive-descent parser of the spec language (see spec.h).
 * Nesting depth and sizes are bounded, so hostile specs cannot exhaust the
 * stack or memory.
 */
#include "spec.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SP_MAX_DEPTH 64
#define SP_MAX_KIDS 4096
#define SP_MAX_LEN 65536

typedef struct parser {
    const char *text;
    size_t pos;
    int depth;
    nf_status err;
} parser;

nf_status nf__spec_error(nf_status s, const char *text, size_t col, const char *fmt, ...) {
    char what[1024]; /* room for every known name in full */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    size_t len = strlen(text);
    if (len > 200) len = 200;
    if (col > len + 1) col = len + 1;
    return nf__err(s, "spec: %s at column %zu\n  %.*s\n  %*s^", what, col, (int)len, text, (int)(col - 1), "");
}

static void skip_ws(parser *p) {
    while (isspace((unsigned char)p->text[p->pos])) p->pos++;
}

static sp_node *node(parser *p, sp_kind k) {
    sp_node *n = calloc(1, sizeof *n);
    if (!n) {
        p->err = nf__err(NF_ERR_NOMEM, "spec: out of memory");
        return NULL;
    }
    n->kind = k;
    n->col = p->pos + 1;
    return n;
}

void nf__spec_free(sp_node *n) {
    if (!n) return;
    for (size_t i = 0; i < n->n; i++) nf__spec_free(n->kids[i]);
    free(n->kids);
    free(n->keys);
    free(n);
}

static int add_kid(parser *p, sp_node *parent, sp_node *kid, const char *key) {
    if (parent->n >= SP_MAX_KIDS) {
        p->err = nf__spec_error(NF_ERR_ARG, p->text, kid->col, "more than %d items", SP_MAX_KIDS);
        return 0;
    }
    sp_node **k = realloc(parent->kids, (parent->n + 1) * sizeof *k);
    if (!k) {
        p->err = nf__err(NF_ERR_NOMEM, "spec: out of memory");
        return 0;
    }
    parent->kids = k;
    if (parent->kind == SP_CALL) {
        char(*keys)[32] = realloc(parent->keys, (parent->n + 1) * sizeof *keys);
        if (!keys) {
            p->err = nf__err(NF_ERR_NOMEM, "spec: out of memory");
            return 0;
        }
        parent->keys = keys;
        snprintf(parent->keys[parent->n], 32, "%s", key ? key : "");
    }
    parent->kids[parent->n++] = kid;
    return 1;
}

static int read_name(parser *p, char *buf) {
    size_t start = p->pos, k = 0;
    if (!(isalpha((unsigned char)p->text[p->pos]) || p->text[p->pos] == '_')) return 0;
    while (isalnum((unsigned char)p->text[p->pos]) || p->text[p->pos] == '_') {
        if (k < 31) buf[k++] = (char)tolower((unsigned char)p->text[p->pos]);
        p->pos++;
    }
    buf[k] = 0;
    if (p->pos - start > 31) {
        p->err = nf__spec_error(NF_ERR_ARG, p->text, start + 1, "a name longer than 31 characters");
        return 0;
    }
    return 1;
}

static sp_node *value(parser *p);

/* The items of a list "[v, ...]" or the arguments of a call "(k=v, ...)",
 * from the opening bracket at p->pos to the matching `close`. */
static sp_node *items(parser *p, sp_node *n, char close) {
    p->pos++; /* '[' or '(' */
    skip_ws(p);
    if (p->text[p->pos] == close) {
        p->pos++;
        return n;
    }
    for (;;) {
        skip_ws(p);
        char key[32] = "";
        if (n->kind == SP_CALL) { /* "name = value" or a positional value */
            size_t save = p->pos;
            if (read_name(p, key)) {
                skip_ws(p);
                if (p->text[p->pos] == '=') {
                    p->pos++;
                } else {
                    key[0] = 0;
                    p->pos = save;
                }
            } else if (p->err) {
                nf__spec_free(n);
                return NULL;
            }
        }
        sp_node *v = value(p);
        if (!v || !add_kid(p, n, v, key)) {
            nf__spec_free(v);
            nf__spec_free(n);
            return NULL;
        }
        skip_ws(p);
        char c = p->text[p->pos];
        if (c == ',') {
            p->pos++;
            continue;
        }
        if (c == close) {
            p->pos++;
            return n;
        }
        const char *found = c ? "another character" : "the end";
        if (n->kind == SP_CALL)
            p->err = nf__spec_error(NF_ERR_ARG, p->text, p->pos + 1,
                                    "expected ',' or ')' after an argument of %s(), found %s", n->name, found);
        else
            p->err = nf__spec_error(NF_ERR_ARG, p->text, p->pos + 1, "expected ',' or ']' in a list, found %s", found);
        nf__spec_free(n);
        return NULL;
    }
}

static sp_node *value(parser *p) {
    if (++p->depth > SP_MAX_DEPTH) {
        p->err = nf__spec_error(NF_ERR_ARG, p->text, p->pos + 1, "nesting deeper than %d", SP_MAX_DEPTH);
        return NULL;
    }
    skip_ws(p);
    const char *s = p->text + p->pos;
    sp_node *n = NULL;
    if (*s == '[') {
        n = node(p, SP_LIST);
        if (n) n = items(p, n, ']');
    } else if (isdigit((unsigned char)*s) || ((*s == '-' || *s == '+' || *s == '.') && (isdigit((unsigned char)s[1]) || s[1] == '.'))) {
        n = node(p, SP_NUM);
        if (n) {
            char *end;
            n->num = strtod(s, &end);
            if (end == s || !isfinite(n->num)) {
                p->err = nf__spec_error(NF_ERR_ARG, p->text, p->pos + 1, "a malformed number");
                nf__spec_free(n);
                n = NULL;
            } else
                p->pos += (size_t)(end - s);
        }
    } else if (isalpha((unsigned char)*s) || *s == '_') {
        n = node(p, SP_NAME);
        if (n && !read_name(p, n->name)) {
            nf__spec_free(n);
            n = NULL;
        } else if (n) {
            skip_ws(p);
            if (p->text[p->pos] == '(') {
                n->kind = SP_CALL;
                n = items(p, n, ')');
            }
        }
    } else {
        p->err = nf__spec_error(NF_ERR_ARG, p->text, p->pos + 1, "expected a name, a number or '[', found %s",
                                *s ? "another character" : "the end");
    }
    p->depth--;
    return n;
}

static nf_status nf__spec_parse_impl(const char *text, sp_node **out) {
    *out = NULL;
    if (!text) return nf__err(NF_ERR_ARG, "spec: NULL text");
    if (strlen(text) > SP_MAX_LEN) return nf__err(NF_ERR_ARG, "spec: longer than %d characters", SP_MAX_LEN);
    parser p = {text, 0, 0, NF_OK};
    sp_node *n = value(&p);
    if (!n) return p.err ? p.err : nf__err(NF_ERR_ARG, "spec: could not parse");
    skip_ws(&p);
    if (text[p.pos]) {
        nf__spec_free(n);
        return nf__spec_error(NF_ERR_ARG, text, p.pos + 1, "unexpected text after the end of the spec");
    }
    if (n->kind == SP_NAME) n->kind = SP_CALL; /* "exp" is "exp()" */
    if (n->kind != SP_CALL) {
        nf__spec_free(n);
        return nf__spec_error(NF_ERR_ARG, text, 1, "expected a name such as realnvp(...)");
    }
    *out = n;
    return NF_OK;
}

/* In the C locale whatever the host program set (core/clocale.c). */
nf_status nf__spec_parse(const char *text, sp_node **out) {
    nf_clocale loc;
    nf__clocale_enter(&loc);
    nf_status r = nf__spec_parse_impl(text, out);
    nf__clocale_leave(&loc);
    return r;
}
