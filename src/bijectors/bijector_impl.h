/*
 * bijector_impl.h - the bijector interface (design.md section 3).
 *
 * A bijector is a `const` ops table shared by all instances plus per-instance
 * state that starts with `struct nf_bijector`.  Every pass works on a batch of
 * n rows of d floats and never allocates: the caller hands it
 *   - scratch: scratch_bytes(b, n) bytes of temporary memory, and
 *   - tape:    tape_bytes(b, n) bytes that a forward/inverse pass fills (when
 *              non-NULL) with whatever its backward pass will need again.
 * Argument order follows llm.c: outputs first, then inputs.
 *
 * Log-det terms ACCUMULATE into ldj (ldj[i] += ...), so a chain needs no
 * temporary for them.  Backward passes WRITE the input gradient (dx or dy,
 * which may be NULL when not wanted) and ACCUMULATE into dparams (the
 * bijector's slice of the flat gradient buffer, may be NULL).
 */
#ifndef NF_BIJECTOR_IMPL_H
#define NF_BIJECTOR_IMPL_H

#include "../core/backend.h"
#include "../core/core.h"
#include "../core/tensor.h"

typedef struct nf_pass {
    size_t n;         /* rows in this batch */
    void *tape;       /* tape_bytes(b, n) bytes, or NULL: nothing is saved */
    void *scratch;    /* scratch_bytes(b, n) bytes */
    const float *ctx; /* conditional bijectors (dc > 0): n x dc context rows */
    int train;        /* 0: evaluation; 1: a training step (batch norm uses the
                         batch's statistics); 2: also update running averages
                         (one thread of a step does) */
    const nf_backend *be; /* where the networks compute (NULL: the CPU) */
} nf_pass;

enum { NF_PREMASK_APPLY = 1, NF_PREMASK_CHECK = 2 };

typedef struct nf_bijector_ops {
    const char *name;
    /* forward: x -> y, ldj += log|det dy/dx| (ldj may be NULL) */
    nf_status (*forward)(const nf_bijector *b, const nf_pass *p, float *y, float *ldj,
                         const float *x);
    /* inverse: y -> x, ldj += log|det dx/dy| (ldj may be NULL) */
    nf_status (*inverse)(const nf_bijector *b, const nf_pass *p, float *x, float *ldj,
                         const float *y);
    /* reverse mode through forward: given dy, dldj (both non-NULL), the pass
     * input x and output y (and the tape of the same pass if one was given),
     * write dx (may be NULL) and add into dparams (may be NULL). */
    nf_status (*forward_backward)(const nf_bijector *b, const nf_pass *p, float *dx,
                                  float *dparams, const float *dy, const float *dldj,
                                  const float *x, const float *y);
    /* reverse mode through inverse: given dx, dldj, input y and output x. */
    nf_status (*inverse_backward)(const nf_bijector *b, const nf_pass *p, float *dy,
                                  float *dparams, const float *dx, const float *dldj,
                                  const float *y, const float *x);
    /* optional sizes (NULL means 0) */
    size_t (*scratch_bytes)(const nf_bijector *b, size_t n);
    size_t (*tape_bytes)(const nf_bijector *b, size_t n);
    /* optional: called after b->params moved (chain and invert rebind parts) */
    void (*rebind)(nf_bijector *b);
    /* optional: +1 / -1 / 0, see nf_bijector_monotone; NULL means 0 */
    int (*monotone)(const nf_bijector *b);
    /* optional: random initialisation of parameters */
    nf_status (*init_params)(nf_bijector *b, nf_rng *rng);
    /* optional: lists named tensors (PyTorch state_dict style) with names
     * prefixed by `prefix` and parameter offsets by `off`; NULL: one tensor
     * "params" holding every parameter */
    nf_status (*tensors)(const nf_bijector *b, const char *prefix, size_t off, nf_tensor_fn fn, void *ctx);
    /* optional: data-dependent initialisation from a data-side batch y (the
     * input of this bijector's inverse); see nf__bijector_data_init */
    nf_status (*data_init)(nf_bijector *b, const float *y, size_t n);
    /* optional: MADE masks (nn.h).  apply = NF_PREMASK_APPLY: zero the
     * masked weights of b->params and let the passes use them as they are;
     * NF_PREMASK_CHECK: the same where they are all zero already, changing
     * no parameter; 0: the parameters were handed out for writing, mask per
     * pass again.  Composites forward it to their parts. */
    void (*premask)(nf_bijector *b, int apply);
    /* optional, composites (chain): its parts in application order (first
     * applied first) through *parts, and their number */
    size_t (*parts)(const nf_bijector *b, nf_bijector *const **parts);
    /* optional: frees what the instance owns beyond the struct itself */
    void (*destroy)(nf_bijector *b);
} nf_bijector_ops;

struct nf_bijector {
    const nf_bijector_ops *ops;
    const char *name; /* defaults to ops->name */
    size_t d;         /* event dimension */
    size_t dc;        /* context dimension (conditional flows), 0: none */
    size_t nparams;
    float *params;    /* nparams floats; owned when owns_params */
    int owns_params;
};

/* Allocates `size` zeroed bytes for an instance (whose first member is a
 * struct nf_bijector) and `nparams` zeroed parameters.  NULL on failure with
 * the error message set. */
nf_bijector *nf__bijector_alloc(size_t size, const nf_bijector_ops *ops, size_t d,
                                size_t nparams);
/* Moves b's parameters into `storage` (nparams floats) and rebinds parts. */
void nf__bijector_bind(nf_bijector *b, float *storage);

static inline size_t nf__scratch_bytes(const nf_bijector *b, size_t n) {
    return b->ops->scratch_bytes ? b->ops->scratch_bytes(b, n) : 0;
}
static inline size_t nf__tape_bytes(const nf_bijector *b, size_t n) {
    return b->ops->tape_bytes ? b->ops->tape_bytes(b, n) : 0;
}
/* A composite's parts in application order (first applied first) through
 * *parts, and their number (ops->parts); 0 for any other bijector. */
size_t nf__bijector_parts(const nf_bijector *b, nf_bijector *const **parts);
/* The same for a chain only (0 for anything else). */
size_t nf__chain_parts(const nf_bijector *b, nf_bijector *const **parts);
/* Lists b's tensors (dispatching to ops->tensors or the default). */
nf_status nf__bijector_tensors(const nf_bijector *b, const char *prefix, size_t off, nf_tensor_fn fn, void *ctx);
/* Runs data_init through b: a chain initialises its parts from the data side
 * (last applied first), passing the batch through each part's inverse.
 * Allocates (once per call); not for use concurrently with other calls. */
nf_status nf__bijector_data_init(nf_bijector *b, const float *y, const float *ctx, size_t n);
/* Runs ops->premask where there is one (see there).  Not for use
 * concurrently with passes of b. */
void nf__bijector_premask(nf_bijector *b, int apply);
/* Checks the constructor's common arguments; sets the message on failure. */
nf_status nf__check_ctor(const char *fn, size_t d, nf_bijector **out);

#endif
