/*
 * permute.c - TFP Permute: y_j = x_{perm[j]} (a gather along the last axis),
 * and Reverse (perm[j] = d-1-j).  Volume preserving: both log-dets are 0.
 * Backward: dx_{perm[j]} = dy_j  (forward),  dy_j = dx_{perm[j]}  (inverse).
 */
#include "bijector_impl.h"
#include "describe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct permute {
    nf_bijector base;
    size_t *perm;
    float *permf; /* the permutation as floats, for model files */
} permute;

static nf_status perm_forward(const nf_bijector *b, const nf_pass *p, float *y, float *ldj,
                              const float *x) {
    (void)ldj;
    const size_t *pm = ((const permute *)b)->perm;
    size_t d = b->d;
    for (size_t i = 0; i < p->n; i++)
        for (size_t j = 0; j < d; j++) y[i * d + j] = x[i * d + pm[j]];
    return NF_OK;
}

static nf_status perm_inverse(const nf_bijector *b, const nf_pass *p, float *x, float *ldj,
                              const float *y) {
    (void)ldj;
    const size_t *pm = ((const permute *)b)->perm;
    size_t d = b->d;
    for (size_t i = 0; i < p->n; i++)
        for (size_t j = 0; j < d; j++) x[i * d + pm[j]] = y[i * d + j];
    return NF_OK;
}

static nf_status perm_forward_backward(const nf_bijector *b, const nf_pass *p, float *dx,
                                       float *dparams, const float *dy, const float *dldj,
                                       const float *x, const float *y) {
    (void)dparams, (void)dldj, (void)x, (void)y;
    return dx ? perm_inverse(b, p, dx, NULL, dy) : NF_OK;
}

static nf_status perm_inverse_backward(const nf_bijector *b, const nf_pass *p, float *dy,
                                       float *dparams, const float *dx, const float *dldj,
                                       const float *y, const float *x) {
    (void)dparams, (void)dldj, (void)x, (void)y;
    return dy ? perm_forward(b, p, dy, NULL, dx) : NF_OK;
}

static int perm_monotone(const nf_bijector *b) { return b->d == 1 ? 1 : 0; }

static void perm_destroy(nf_bijector *b) {
    free(((permute *)b)->perm);
    free(((permute *)b)->permf);
}

static nf_status perm_tensors(const nf_bijector *b, const char *prefix, size_t off, nf_tensor_fn fn, void *ctx) {
    (void)off;
    nf_tensor_info t;
    memset(&t, 0, sizeof t);
    snprintf(t.name, sizeof t.name, "%spermutation", prefix);
    t.ndim = 1, t.shape[0] = t.count = b->d, t.buffer = ((const permute *)b)->permf;
    return fn(ctx, &t);
}

static const nf_bijector_ops permute_ops = {
    .name = "permute",
    .forward = perm_forward,
    .inverse = perm_inverse,
    .forward_backward = perm_forward_backward,
    .inverse_backward = perm_inverse_backward,
    .monotone = perm_monotone,
    .tensors = perm_tensors,
    .destroy = perm_destroy,
};

static nf_status make(const char *fn, size_t d, const size_t *perm, int reverse, nf_bijector **out) {
    NF_TRY(nf__check_ctor(fn, d, out));
    if (!reverse && !perm) return nf__err(NF_ERR_ARG, "%s: perm is NULL", fn);
    unsigned char *seen = calloc(d, 1);
    size_t *pm = malloc(d * sizeof(size_t));
    if (!seen || !pm) {
        free(seen), free(pm);
        return nf__err(NF_ERR_NOMEM, "%s: out of memory", fn);
    }
    for (size_t j = 0; j < d; j++) {
        size_t v = reverse ? d - 1 - j : perm[j];
        if (v >= d || seen[v]) {
            free(seen), free(pm);
            return nf__err(NF_ERR_ARG, "%s: perm is not a permutation of 0..%zu: entry %zu is %zu%s", fn,
                           d - 1, j, v, v < d ? " (repeated)" : " (out of range)");
        }
        seen[v] = 1;
        pm[j] = v;
    }
    free(seen);
    permute *P = (permute *)nf__bijector_alloc(sizeof(permute), &permute_ops, d, 0);
    if (!P) {
        free(pm);
        return nf__err_prefix(NF_ERR_NOMEM, fn);
    }
    P->perm = pm;
    P->permf = malloc(d * sizeof(float));
    if (!P->permf) {
        nf_bijector_free(&P->base);
        return nf__err(NF_ERR_NOMEM, "%s: out of memory", fn);
    }
    for (size_t j = 0; j < d; j++) P->permf[j] = (float)pm[j];
    if (reverse) P->base.name = "reverse";
    *out = &P->base;
    return NF_OK;
}

nf_status nf_bijector_permute(size_t d, const size_t *perm, nf_bijector **out) {
    return make("nf_bijector_permute", d, perm, 0, out);
}

nf_status nf_bijector_reverse(size_t d, nf_bijector **out) {
    return make("nf_bijector_reverse", d, NULL, 1, out);
}

int nf__permute_describe(const nf_bijector *b, const size_t **perm) {
    if (b->ops != &permute_ops) return 0;
    *perm = ((const permute *)b)->perm;
    return 1;
}
