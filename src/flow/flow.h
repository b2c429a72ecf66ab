/*
 * flow.h - the flow object's internals: the struct and its private helpers
 * (model files: flow_file.h).
 */
#ifndef NF_FLOW_H
#define NF_FLOW_H

#include "../bijectors/bijector_impl.h"
#include "../dist/dist_impl.h"

typedef struct nf_flow_dev nf_flow_dev;

struct nf_flow {
    nf_bijector *bij; /* forward: base -> model space */
    nf_dist *base;
    size_t d;
    int has_scaler;   /* data = mean + std * model */
    float *mean, *std;
    double log_std_sum;
    float *params;        /* every trainable parameter: the bijector's, then a
                             trainable base's (one buffer when the base has any) */
    size_t P, Pb;         /* all of them, and the bijector's */
    int owns_params;
    size_t threads;       /* log_prob / sample split their chunks over this many (0, 1: one) */
    const nf_backend *be; /* where its passes and training compute (NULL: the CPU, core/backend.h) */
    struct nf_flow_dev *dev; /* its device (nf_flow_set_device; NULL: the CPU), device/device.c */
    char *spec;           /* the spec it was built from (NULL: built by hand) */
    uint64_t build_seed;  /* the seed of its initial weights and MADE orders */
    int spec_defaults;    /* the spec language's defaults it was built with (spec/spec.h) */
    char **names;         /* the data's column names, d + context (NULL: none) */
};

/* Rows per chunk of the one-off calls (bounds their workspace). */
#define NF_FLOW_CHUNK NF_CHUNK_ROWS
#define NF_FLOW_MAX_THREADS 64

/* Lists the flow's tensors: the bijector's, then the base's ("base." names). */
nf_status nf__flow_tensors(const nf_flow *f, nf_tensor_fn fn, void *ctx);
/* nf_flow_from_spec with the spec defaults of version `defaults` (a model
 * file's; spec/spec.h NF_SPEC_DEFAULTS). */
nf_status nf__flow_from_spec(const char *spec, size_t d, uint64_t seed, int defaults, nf_flow **out);

/* Data units -> model space, in place, n rows. */
void nf__flow_scale_in(const nf_flow *f, float *x, size_t n);
/* nf_flow_fit_scaler over the rows of every process (comm; NULL: this
 * one's); every process gets the same scaler. */
nf_status nf__flow_fit_scaler(nf_flow *f, const float *x, size_t n, const nf_comm *comm);

#endif
