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
    float *params;        /* every trainable parameter: the bijector's, then a
                             trainable base's (one buffer when the base has any) */
    size_t P, Pb;         /* all of them, and the bijector's */
    int owns_params;
    size_t threads;       /* log_prob / sample split their chunks over this many (0, 1: one) */
    const nf_backend *be; /* where its passes and training compute (NULL: the CPU, core/backend.h) */
    char *spec;           /* the spec it was built from (NULL: built by hand) */
    uint64_t build_seed;  /* the seed of its initial weights and MADE orders */
};

/* Rows per chunk of the one-off calls (bounds their workspace). */
#define NF_FLOW_CHUNK 2048
#define NF_FLOW_MAX_THREADS 64

/* Model files with extra content (training checkpoints), src/io/model.c. */
typedef struct nf_extra_tensor {
    const char *name;
    const float *data;
    size_t count;
} nf_extra_tensor;
nf_status nf__flow_save_ex(const nf_flow *f, const char *path, const char *summary, const nf_extra_tensor *xt,
                           size_t nxt, const char *const *meta_kv, size_t nmeta);
typedef struct nf_model_file nf_model_file;
nf_status nf__model_open(const char *path, nf_model_file **out);
void nf__model_close(nf_model_file *m);
const char *nf__model_meta(const nf_model_file *m, const char *key);
/* Copies the 1-D float32 tensor `name` of exactly `count` values. */
nf_status nf__model_tensor(const nf_model_file *m, const char *path, const char *name, float *dst, size_t count);

/* Loads the parameters of f (built from the file's spec) from the file. */
nf_status nf__model_load_params(const nf_model_file *m, const char *path, nf_flow *f);

/* Lists the flow's tensors: the bijector's, then the base's ("base." names). */
nf_status nf__flow_tensors(const nf_flow *f, nf_tensor_fn fn, void *ctx);

/* Data units -> model space, in place, n rows. */
void nf__flow_scale_in(const nf_flow *f, float *x, size_t n);

#endif
