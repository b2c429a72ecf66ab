/*
 * flow_file.h - model files (flow_file.c): a flow's tensors and metadata in
 * a safetensors container (io/safetensors.h), for nf_flow_save/load and for
 * the training checkpoints (train/checkpoint.c), which add their own
 * tensors and metadata.
 */
#ifndef NF_FLOW_FILE_H
#define NF_FLOW_FILE_H

#include "../io/safetensors.h"
#include "flow.h"

/* A tensor that is not part of the flow (Adam's moments in a checkpoint). */
typedef struct nf_extra_tensor {
    const char *name;
    const float *data;
    size_t count;
} nf_extra_tensor;

/* nf_flow_save with extra tensors and nmeta extra metadata pairs. */
nf_status nf__flow_save_ex(const nf_flow *f, const char *path, const char *summary, const nf_extra_tensor *xt,
                           size_t nxt, const char *const *meta_kv, size_t nmeta);

/* Loads the tensors of f (built from the file's spec) from the file;
 * tensors of the file that f does not have are allowed. */
nf_status nf__flow_load_tensors(const nf_st_file *m, nf_flow *f);

#endif
