/*
 * inline.c - TFP Inline: a bijector made of user callbacks on whole batches.
 * ildj defaults to -fldj(inverse(y)).  Gradients are available when the user
 * gives the backward callbacks; inline bijectors have no parameters in the
 * flat buffer (their state is the user's).
 */
#include "bijector_impl.h"

#include <stdio.h>
#include <string.h>

typedef struct inl {
    nf_bijector base;
    nf_inline_fns fns;
    void *user;
    char name[32];
} inl;

static nf_status cb_fail(const nf_bijector *b, const char *what, int rc) {
    return nf__err(NF_ERR_DOMAIN, "%s: the %s callback reported failure (code %d)", b->name, what, rc);
}

/* n floats of scratch for the log-det values. */
static size_t inl_scratch(const nf_bijector *b, size_t n) {
    return nf__align(n * sizeof(float)) + nf__align(n * b->d * sizeof(float));
}

static nf_status add_ldj(const nf_bijector *b, const nf_pass *p, float *ldj, const float *x,
                         const float *y, int fwd) {
    const inl *u = (const inl *)b;
    float *tmp = p->scratch;
    int rc;
    if (fwd) {
        rc = u->fns.forward_log_det(u->user, x, tmp, p->n, b->d);
        if (rc) return cb_fail(b, "forward_log_det", rc);
    } else if (u->fns.inverse_log_det) {
        rc = u->fns.inverse_log_det(u->user, y, tmp, p->n, b->d);
        if (rc) return cb_fail(b, "inverse_log_det", rc);
    } else {
        rc = u->fns.forward_log_det(u->user, x, tmp, p->n, b->d);
        if (rc) return cb_fail(b, "forward_log_det", rc);
        for (size_t i = 0; i < p->n; i++) tmp[i] = -tmp[i];
    }
    for (size_t i = 0; i < p->n; i++) ldj[i] += tmp[i];
    return NF_OK;
}

static nf_status inl_forward(const nf_bijector *b, const nf_pass *p, float *y, float *ldj,
                             const float *x) {
    const inl *u = (const inl *)b;
    int rc = u->fns.forward(u->user, x, y, p->n, b->d);
    if (rc) return cb_fail(b, "forward", rc);
    return ldj ? add_ldj(b, p, ldj, x, y, 1) : NF_OK;
}

static nf_status inl_inverse(const nf_bijector *b, const nf_pass *p, float *x, float *ldj,
                             const float *y) {
    const inl *u = (const inl *)b;
    int rc = u->fns.inverse(u->user, y, x, p->n, b->d);
    if (rc) return cb_fail(b, "inverse", rc);
    return ldj ? add_ldj(b, p, ldj, x, y, 0) : NF_OK;
}

static nf_status inl_fb(const nf_bijector *b, const nf_pass *p, float *dx, float *dparams,
                        const float *dy, const float *dldj, const float *x, const float *y) {
    (void)dparams, (void)y;
    const inl *u = (const inl *)b;
    if (!u->fns.forward_backward)
        return nf__err(NF_ERR_UNSUPPORTED, "%s: no forward_backward callback was given, so it has no gradient", b->name);
    float *out = dx ? dx : (float *)((unsigned char *)p->scratch + nf__align(p->n * sizeof(float)));
    int rc = u->fns.forward_backward(u->user, x, dy, dldj, out, p->n, b->d);
    return rc ? cb_fail(b, "forward_backward", rc) : NF_OK;
}

static nf_status inl_ib(const nf_bijector *b, const nf_pass *p, float *dy, float *dparams,
                        const float *dx, const float *dldj, const float *y, const float *x) {
    (void)dparams, (void)x;
    const inl *u = (const inl *)b;
    if (!u->fns.inverse_backward)
        return nf__err(NF_ERR_UNSUPPORTED, "%s: no inverse_backward callback was given, so it has no gradient", b->name);
    float *out = dy ? dy : (float *)((unsigned char *)p->scratch + nf__align(p->n * sizeof(float)));
    int rc = u->fns.inverse_backward(u->user, y, dx, dldj, out, p->n, b->d);
    return rc ? cb_fail(b, "inverse_backward", rc) : NF_OK;
}

static int inl_monotone(const nf_bijector *b) { return ((const inl *)b)->fns.monotone; }

static void inl_destroy(nf_bijector *b) {
    inl *u = (inl *)b;
    if (u->fns.destroy) u->fns.destroy(u->user);
}

static const nf_bijector_ops inline_ops = {
    .name = "inline",
    .forward = inl_forward,
    .inverse = inl_inverse,
    .forward_backward = inl_fb,
    .inverse_backward = inl_ib,
    .scratch_bytes = inl_scratch,
    .monotone = inl_monotone,
    .destroy = inl_destroy,
};

nf_status nf_bijector_inline(size_t d, const char *name, const nf_inline_fns *fns, void *user,
                             nf_bijector **out) {
    const char *fn = "nf_bijector_inline";
    NF_TRY(nf__check_ctor(fn, d, out));
    if (!fns || !fns->forward || !fns->inverse || !fns->forward_log_det)
        return nf__err(NF_ERR_ARG, "%s: forward, inverse and forward_log_det callbacks are required", fn);
    if (fns->monotone < -1 || fns->monotone > 1)
        return nf__err(NF_ERR_ARG, "%s: monotone must be -1, 0 or 1, got %d", fn, fns->monotone);
    inl *u = (inl *)nf__bijector_alloc(sizeof(inl), &inline_ops, d, 0);
    if (!u) return nf__err_prefix(NF_ERR_NOMEM, fn);
    u->fns = *fns;
    u->user = user;
    snprintf(u->name, sizeof u->name, "%s", name && name[0] ? name : "inline");
    u->base.name = u->name;
    *out = &u->base;
    return NF_OK;
}
