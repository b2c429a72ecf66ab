/*
 * dist_impl.h - the distribution interface: a const ops table plus state that
 * starts with struct nf_dist.  Passes never allocate; the caller hands them
 * scratch_bytes(dist, n) bytes.  Outputs first, then inputs.
 */
#ifndef NF_DIST_IMPL_H
#define NF_DIST_IMPL_H

#include "../bijectors/bijector_impl.h" /* nf_tensor_fn, nf__emit */

typedef struct nf_dist_ops {
    const char *name;
    /* lp[i] = log p(x_i) (-inf outside the support) */
    nf_status (*log_prob)(const nf_dist *D, void *scratch, float *lp, const float *x, size_t n);
    /* x: n draws; lp (may be NULL): their log-densities */
    nf_status (*sample)(const nf_dist *D, void *scratch, nf_rng *rng, float *x, float *lp, size_t n);
    /* optional, d = 1 only */
    nf_status (*cdf)(const nf_dist *D, void *scratch, float *c, const float *x, size_t n);
    /* optional: g = d log p / dx (n x d), used by training */
    nf_status (*log_prob_grad)(const nf_dist *D, float *g, const float *x, size_t n);
    /* optional, trainable distributions: gp[k] += sum_i w_i d log p(x_i) / d param_k */
    nf_status (*param_grad)(const nf_dist *D, float *gp, const float *w, const float *x, size_t n);
    /* optional: named parameter tensors (as the bijectors' tensors op) */
    nf_status (*tensors)(const nf_dist *D, const char *prefix, size_t off, nf_tensor_fn fn, void *ctx);
    size_t (*scratch_bytes)(const nf_dist *D, size_t n); /* optional */
    void (*destroy)(nf_dist *D);                         /* optional */
} nf_dist_ops;

struct nf_dist {
    const nf_dist_ops *ops;
    const char *name;
    size_t d;
    size_t nparams;   /* trainable parameters (a mixture base), else 0 */
    float *params;
    int owns_params;
};

static inline size_t nf__dist_scratch(const nf_dist *D, size_t n) {
    return D->ops->scratch_bytes ? D->ops->scratch_bytes(D, n) : 0;
}

/* A normal base (normal.c: normal, mvn_diag, mvn_scaled_identity): its d
 * locations and scales; 0 for any other distribution (device/prog.c). */
int nf__dist_normal_describe(const nf_dist *D, const float **loc, const float **scale);

#endif
