/*
 * json.h - a small bounded JSON reader for model-file headers: objects,
 * arrays, strings (ASCII escapes and \u00XX), numbers, true/false/null.
 */
#ifndef NF_JSON_H
#define NF_JSON_H

#include <stddef.h>

typedef enum { JS_NULL, JS_BOOL, JS_NUM, JS_STR, JS_ARR, JS_OBJ } js_kind;

typedef struct js {
    js_kind kind;
    double num;
    char *str;          /* JS_STR */
    size_t n;           /* JS_ARR, JS_OBJ children */
    struct js *kids;
    char **keys;        /* JS_OBJ */
} js;

/* Parses text[0..len); returns 0 and fills *out, or -1 with an error
 * position in *err_pos. */
int nf__json_parse(const char *text, size_t len, js *out, size_t *err_pos);
void nf__json_free(js *v);
const js *nf__json_get(const js *obj, const char *key);

#endif
