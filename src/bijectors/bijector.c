/*
 * bijector.c - the public bijector calls: argument checks, workspace
 * allocation for one-off calls, aliasing, and checks that inputs are finite
 * and outputs did not overflow.  The per-family passes live in their own
 * files and never allocate; these convenience wrappers allocate one
 * workspace per call.
 */
#include "bijector_impl.h"
#include "../nn/nn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

nf_bijector *nf__bijector_alloc(size_t size, const nf_bijector_ops *ops, size_t d,
                                size_t nparams) {
    nf_bijector *b = calloc(1, size);
    if (!b) {
        nf__err(NF_ERR_NOMEM, "%s: out of memory", ops->name);
        return NULL;
    }
    b->ops = ops;
    b->name = ops->name;
    b->d = d;
    b->nparams = nparams;
    if (nparams) {
        b->params = calloc(nparams, sizeof(float));
        if (!b->params) {
            free(b);
            nf__err(NF_ERR_NOMEM, "%s: out of memory for %zu parameters", ops->name, nparams);
            return NULL;
        }
        b->owns_params = 1;
    }
    return b;
}

void nf__bijector_bind(nf_bijector *b, float *storage) {
    float *old = b->params;
    int owned = b->owns_params;
    if (b->nparams) memcpy(storage, old, b->nparams * sizeof(float));
    b->params = b->nparams ? storage : NULL;
    b->owns_params = 0;
    /* Parts still point into `old` until they are rebound: free it after. */
    if (b->ops->rebind) b->ops->rebind(b);
    if (owned) free(old);
}

nf_status nf__bijector_tensors(const nf_bijector *b, const char *prefix, size_t off, nf_tensor_fn fn, void *ctx) {
    if (b->ops->tensors) return b->ops->tensors(b, prefix, off, fn, ctx);
    return b->nparams ? nf__emit(fn, ctx, prefix, "params", off, 0, b->nparams) : NF_OK;
}

nf_status nf__check_ctor(const char *fn, size_t d, nf_bijector **out) {
    if (!out) return nf__err(NF_ERR_ARG, "%s: out is NULL", fn);
    *out = NULL;
    if (d == 0) return nf__err(NF_ERR_ARG, "%s: dimension d must be at least 1, got 0", fn);
    if (d > ((size_t)1 << 24))
        return nf__err(NF_ERR_ARG, "%s: dimension d=%zu is larger than 2^24", fn, d);
    return NF_OK;
}

void nf_bijector_free(nf_bijector *b) {
    if (!b) return;
    if (b->ops->destroy) b->ops->destroy(b);
    if (b->owns_params) free(b->params);
    free(b);
}

size_t nf_bijector_dim(const nf_bijector *b) { return b ? b->d : 0; }
const char *nf_bijector_name(const nf_bijector *b) { return b ? b->name : "(null)"; }
size_t nf_bijector_param_count(const nf_bijector *b) { return b ? b->nparams : 0; }
/* The caller may write the buffer: masked weights could become nonzero. */
float *nf_bijector_params(nf_bijector *b) {
    if (!b) return NULL;
    nf__bijector_premask(b, 0);
    return b->params;
}

void nf__bijector_premask(nf_bijector *b, int apply) {
    if (b->ops->premask) b->ops->premask(b, apply);
}

int nf_bijector_monotone(const nf_bijector *b) {
    if (!b || !b->ops->monotone) return 0;
    return b->ops->monotone(b);
}

nf_status nf_bijector_init_params(nf_bijector *b, nf_rng *rng) {
    if (!b || !rng) return nf__err(NF_ERR_ARG, "nf_bijector_init_params: NULL argument");
    if (!b->ops->init_params) return NF_OK;
    return nf__err_prefix(b->ops->init_params(b, rng), "nf_bijector_init_params");
}

/* ---- one-off passes ------------------------------------------------------ */

/* A conditional bijector needs n x dc context rows, others none. */
static nf_status check_ctx(const char *fn, const nf_bijector *b, const float *ctx, size_t n) {
    if (b->dc && !ctx)
        return nf__err(NF_ERR_ARG, "%s: %s is conditional: it needs a context of %zu values per row (the _ctx calls)", fn,
                       b->name, b->dc);
    if (!b->dc && ctx) return nf__err(NF_ERR_ARG, "%s: %s takes no context", fn, b->name);
    nf_status s = ctx ? nf__check_finite("context", ctx, n, b->dc) : NF_OK;
    if (s) nf__err_prefix(s, b->name);
    return s ? nf__err_prefix(s, fn) : NF_OK;
}

/* Runs one pass (forward if fwd, else inverse) with a fresh workspace.
 * `tape` may be NULL.  ldj (may be NULL) is overwritten. */
static nf_status run_pass(const char *fn, const nf_bijector *b, int fwd, const float *in, const float *ctx,
                          size_t n, float *out, float *ldj, void *tape) {
    size_t d = b->d;
    if (n > SIZE_MAX / sizeof(float) / d)
        return nf__err(NF_ERR_ARG, "%s: %s: batch of %zu rows is too large", fn, b->name, n);
    NF_TRY(check_ctx(fn, b, ctx, n));
    nf_status s = nf__check_finite(fwd ? "input x" : "input y", in, n, d);
    if (s) {
        nf__err_prefix(s, b->name);
        return nf__err_prefix(s, fn);
    }
    size_t sb = nf__scratch_bytes(b, n);
    int alias = (in < out + n * d) && (out < in + n * d);
    unsigned char *ws = nf__aligned_alloc(sb + (alias ? nf__align(n * d * sizeof(float)) : 0));
    if (!ws) return nf__err(NF_ERR_NOMEM, "%s: %s: out of memory for the workspace", fn, b->name);
    unsigned char *cur = ws;
    void *scratch = nf__carve(&cur, sb);
    if (alias) {
        float *copy = nf__carve(&cur, n * d * sizeof(float));
        memcpy(copy, in, n * d * sizeof(float));
        in = copy;
    }
    if (ldj) memset(ldj, 0, n * sizeof(float));
    nf_pass p = {n, tape, scratch, ctx, 0, NULL};
    nf_blas_guard bg;
    nf__blas_enter(&bg);
    s = fwd ? b->ops->forward(b, &p, out, ldj, in) : b->ops->inverse(b, &p, out, ldj, in);
    nf__blas_leave(&bg);
    if (s == NF_OK) {
        size_t k = nf__first_nonfinite(out, n * d);
        if (k < n * d)
            s = nf__err(NF_ERR_NUMERIC, "%s: %s produced a non-finite value (%g) at row %zu, column %zu",
                        b->name, fwd ? "forward" : "inverse", (double)out[k], k / d, k % d);
        else if (ldj && (k = nf__first_nonfinite(ldj, n)) < n)
            s = nf__err(NF_ERR_NUMERIC, "%s: %s log-det-Jacobian is non-finite (%g) at row %zu", b->name,
                        fwd ? "forward" : "inverse", (double)ldj[k], k);
    }
    nf__aligned_free(ws);
    return s ? nf__err_prefix(s, fn) : NF_OK;
}

#define CHECK_PASS_ARGS(fn, b, in, out)                                                \
    do {                                                                               \
        if (!(b)) return nf__err(NF_ERR_ARG, "%s: bijector is NULL", fn);              \
        if (n == 0) return NF_OK;                                                      \
        if (!(in) || !(out)) return nf__err(NF_ERR_ARG, "%s: %s: NULL array", fn, (b)->name); \
    } while (0)

nf_status nf_bijector_forward(const nf_bijector *b, const float *x, size_t n, float *y, float *ldj) {
    CHECK_PASS_ARGS("nf_bijector_forward", b, x, y);
    return run_pass("nf_bijector_forward", b, 1, x, NULL, n, y, ldj, NULL);
}

nf_status nf_bijector_inverse(const nf_bijector *b, const float *y, size_t n, float *x, float *ldj) {
    CHECK_PASS_ARGS("nf_bijector_inverse", b, y, x);
    return run_pass("nf_bijector_inverse", b, 0, y, NULL, n, x, ldj, NULL);
}

nf_status nf_bijector_forward_ctx(const nf_bijector *b, const float *x, const float *ctx, size_t n, float *y,
                                  float *ldj) {
    CHECK_PASS_ARGS("nf_bijector_forward_ctx", b, x, y);
    return run_pass("nf_bijector_forward_ctx", b, 1, x, ctx, n, y, ldj, NULL);
}

nf_status nf_bijector_inverse_ctx(const nf_bijector *b, const float *y, const float *ctx, size_t n, float *x,
                                  float *ldj) {
    CHECK_PASS_ARGS("nf_bijector_inverse_ctx", b, y, x);
    return run_pass("nf_bijector_inverse_ctx", b, 0, y, ctx, n, x, ldj, NULL);
}

size_t nf_bijector_context_dim(const nf_bijector *b) { return b ? b->dc : 0; }

static nf_status ldj_only(const char *fn, const nf_bijector *b, int fwd, const float *in, size_t n,
                          float *ldj) {
    CHECK_PASS_ARGS(fn, b, in, ldj);
    float *tmp = malloc(n * b->d * sizeof(float));
    if (!tmp) return nf__err(NF_ERR_NOMEM, "%s: %s: out of memory", fn, b->name);
    nf_status s = run_pass(fn, b, fwd, in, NULL, n, tmp, ldj, NULL);
    free(tmp);
    return s;
}

nf_status nf_bijector_forward_log_det_jacobian(const nf_bijector *b, const float *x, size_t n,
                                               float *ldj) {
    return ldj_only("nf_bijector_forward_log_det_jacobian", b, 1, x, n, ldj);
}

nf_status nf_bijector_inverse_log_det_jacobian(const nf_bijector *b, const float *y, size_t n,
                                               float *ldj) {
    return ldj_only("nf_bijector_inverse_log_det_jacobian", b, 0, y, n, ldj);
}

size_t nf__bijector_parts(const nf_bijector *b, nf_bijector *const **parts) {
    return b->ops->parts ? b->ops->parts(b, parts) : 0;
}

/* Whether b or one of its parts has a data-dependent initialisation. */
static int needs_data_init(const nf_bijector *b) {
    nf_bijector *const *parts;
    size_t k = nf__bijector_parts(b, &parts);
    if (!k) return b->ops->data_init != NULL;
    for (size_t i = 0; i < k; i++)
        if (needs_data_init(parts[i])) return 1;
    return 0;
}

nf_status nf__bijector_data_init(nf_bijector *b, const float *y, const float *ctx, size_t n) {
    if (!needs_data_init(b)) return NF_OK;
    nf_bijector *const *parts;
    size_t k = nf__bijector_parts(b, &parts);
    if (!k) return b->ops->data_init(b, y, n);
    size_t lo = 0; /* the part nearest the base that needs it: the batch goes no further */
    while (!needs_data_init(parts[lo])) lo++;
    float *buf[2] = {malloc(n * b->d * sizeof(float) + 1), malloc(n * b->d * sizeof(float) + 1)};
    nf_status s = buf[0] && buf[1] ? NF_OK : nf__err(NF_ERR_NOMEM, "data init: out of memory for %zu rows", n);
    const float *cur = y;
    for (size_t i = k; i-- > lo && !s;) {
        s = nf__bijector_data_init(parts[i], cur, ctx, n);
        if (!s && i > lo) {
            float *next = buf[(k - i) % 2];
            s = nf_bijector_inverse_ctx(parts[i], cur, parts[i]->dc ? ctx : NULL, n, next, NULL);
            cur = next;
        }
    }
    free(buf[0]), free(buf[1]);
    return s ? nf__err_prefix(s, "data initialisation") : NF_OK;
}

/* One pass with a tape, then its backward pass. */
static nf_status run_backward(const char *fn, const nf_bijector *b, int fwd, const float *in, const float *ctx,
                              size_t n, const float *gout, const float *gldj, float *gin,
                              float *dparams) {
    if (!b) return nf__err(NF_ERR_ARG, "%s: bijector is NULL", fn);
    if (n == 0) return NF_OK;
    if (!in) return nf__err(NF_ERR_ARG, "%s: %s: input array is NULL", fn, b->name);
    NF_TRY(check_ctx(fn, b, ctx, n));
    size_t d = b->d, nd = n * d;
    if (n > SIZE_MAX / sizeof(float) / d / 4)
        return nf__err(NF_ERR_ARG, "%s: %s: batch of %zu rows is too large", fn, b->name, n);
    const char *gname = fwd ? "gradient dy" : "gradient dx";
    nf_status s = NF_OK;
    if (gout) s = nf__check_finite(gname, gout, n, d);
    if (!s && gldj) s = nf__check_finite("gradient dldj", gldj, n, 1);
    if (s) {
        nf__err_prefix(s, b->name);
        return nf__err_prefix(s, fn);
    }
    size_t tb = nf__tape_bytes(b, n), sb = nf__scratch_bytes(b, n);
    size_t fb = nf__align(nd * sizeof(float)), lb = nf__align(n * sizeof(float));
    unsigned char *ws = nf__aligned_alloc(tb + sb + 3 * fb + 2 * lb);
    if (!ws) return nf__err(NF_ERR_NOMEM, "%s: %s: out of memory for the workspace", fn, b->name);
    unsigned char *cur = ws;
    void *tape = nf__carve(&cur, tb);
    void *scratch = nf__carve(&cur, sb);
    float *out = nf__carve(&cur, nd * sizeof(float));
    float *g = nf__carve(&cur, nd * sizeof(float));
    float *gi = nf__carve(&cur, nd * sizeof(float));
    float *gl = nf__carve(&cur, n * sizeof(float));
    float *ldj = nf__carve(&cur, n * sizeof(float));
    if (gout) memcpy(g, gout, nd * sizeof(float));
    else memset(g, 0, nd * sizeof(float));
    if (gldj) memcpy(gl, gldj, n * sizeof(float));
    else memset(gl, 0, n * sizeof(float));
    memset(ldj, 0, n * sizeof(float));
    s = nf__check_finite(fwd ? "input x" : "input y", in, n, d);
    if (s) nf__err_prefix(s, b->name);
    nf_pass p = {n, tape, scratch, ctx, 0, NULL};
    if (!s) s = fwd ? b->ops->forward(b, &p, out, ldj, in) : b->ops->inverse(b, &p, out, ldj, in);
    if (!s) {
        size_t k = nf__first_nonfinite(out, nd);
        if (k < nd)
            s = nf__err(NF_ERR_NUMERIC, "%s: %s produced a non-finite value at row %zu, column %zu",
                        b->name, fwd ? "forward" : "inverse", k / d, k % d);
    }
    if (!s)
        s = fwd ? b->ops->forward_backward(b, &p, gi, dparams, g, gl, in, out)
                : b->ops->inverse_backward(b, &p, gi, dparams, g, gl, in, out);
    if (!s) {
        size_t k = nf__first_nonfinite(gi, nd);
        if (k < nd)
            s = nf__err(NF_ERR_NUMERIC, "%s: gradient is non-finite at row %zu, column %zu", b->name,
                        k / d, k % d);
        else if (gin)
            memcpy(gin, gi, nd * sizeof(float));
    }
    nf__aligned_free(ws);
    return s ? nf__err_prefix(s, fn) : NF_OK;
}

nf_status nf_bijector_forward_backward(const nf_bijector *b, const float *x, size_t n,
                                       const float *dy, const float *dldj, float *dx,
                                       float *dparams) {
    return run_backward("nf_bijector_forward_backward", b, 1, x, NULL, n, dy, dldj, dx, dparams);
}

nf_status nf_bijector_forward_backward_ctx(const nf_bijector *b, const float *x, const float *ctx, size_t n,
                                           const float *dy, const float *dldj, float *dx, float *dparams) {
    return run_backward("nf_bijector_forward_backward_ctx", b, 1, x, ctx, n, dy, dldj, dx, dparams);
}

nf_status nf_bijector_inverse_backward_ctx(const nf_bijector *b, const float *y, const float *ctx, size_t n,
                                           const float *dx, const float *dldj, float *dy, float *dparams) {
    return run_backward("nf_bijector_inverse_backward_ctx", b, 0, y, ctx, n, dx, dldj, dy, dparams);
}

nf_status nf_bijector_inverse_backward(const nf_bijector *b, const float *y, size_t n,
                                       const float *dx, const float *dldj, float *dy,
                                       float *dparams) {
    return run_backward("nf_bijector_inverse_backward", b, 0, y, NULL, n, dx, dldj, dy, dparams);
}
