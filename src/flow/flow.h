/*
 * flow.h - the flow object's internals, shared with train/.
 */
#ifndef NF_FLOW_H
#define NF_FLOW_H

#include "../bijectors/bijector_impl.h"
#include "../dist/dist_impl.h"

struct nf_flow {
    nf_bijector *bij; /* forward: base -> model space */
    nf_dist *base;
    size_t d;
    int has_scaler;   /* data = mean + std * model */
    float *mean, *std;
    double log_std_sum;
    char *spec;           /* the spec it was built from (NULL: built by hand) */
    uint64_t build_seed;  /* the seed of its initial weights and MADE orders */
};

/* Rows per chunk of the one-off calls (bounds their workspace). */
#define NF_FLOW_CHUNK 8192

/* Data units -> model space, in place, n rows. */
void nf__flow_scale_in(const nf_flow *f, float *x, size_t n);

#endif
