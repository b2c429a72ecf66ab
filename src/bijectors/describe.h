/*
 * describe.h - what a device program (device/prog.c) needs to know of the
 * bijectors it runs: each family that a device supports describes its
 * layer here, from the file that owns it.  A call returns 0 when b is not
 * of that family.
 */
#ifndef NF_DESCRIBE_H
#define NF_DESCRIBE_H

#include "bijector_impl.h"
#include "transform.h"
#include "../nn/nn.h"

typedef struct nf_coupling_desc {
    size_t nc, nt, ni;       /* conditioning, transformed columns; the nets' input width */
    const size_t *ci, *ti;   /* their indices */
    const nf_mlp *net[2];    /* separate: [s, t]; else net[0]: [shift | raw scale] (or shift only) */
    int nnets, separate, tanh_scale, shift_only;
    nf_eltx tx;              /* tx.bins > 0: a spline coupling (one net, np = 3 bins - 1 outputs per coordinate) */
} nf_coupling_desc;
int nf__coupling_describe(const nf_bijector *b, nf_coupling_desc *o);

typedef struct nf_maf_desc {
    const nf_mlp *made;      /* d (+ context) -> np d */
    size_t np;               /* parameters per coordinate */
    nf_eltx tx;              /* the transform: affine (tx.scale its form) or a spline */
    const size_t *by_degree; /* by_degree[k]: the input of degree k + 1 */
    int first_free;          /* the degree-1 outputs are the output biases */
} nf_maf_desc;
int nf__maf_describe(const nf_bijector *b, nf_maf_desc *o);

/* ActNorm (parameters: d shifts, then d log-scales). */
int nf__actnorm_describe(const nf_bijector *b);
/* Batch normalisation (batchnorm.c: parameters [log gamma (d), beta (d)]):
 * its running mean and variance (2d floats of state, host memory; NULL
 * for any other bijector). */
float *nf__batchnorm_describe(const nf_bijector *b);
#define NF_BN_EPS 1e-5
#define NF_BN_MOMENTUM 0.1
/* Invert(inner): forward is inner's inverse (IAF = invert(maf)). */
int nf__invert_describe(const nf_bijector *b, const nf_bijector **inner);

/* Glow's LU linear map (lu_linear.c: parameters [b, L strict lower by rows,
 * U strict upper by rows, log_s]): its permutation's d entries. */
int nf__lu_describe(const nf_bijector *b, const size_t **perm);

/* A permutation (y_j = x_{perm[j]}): its d entries. */
int nf__permute_describe(const nf_bijector *b, const size_t **perm);

#endif
