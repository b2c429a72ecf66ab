/*
 * tensor.h - the listing of a model's named tensors (PyTorch state_dict
 * style), through which model files are written and read: every bijector,
 * network and trainable distribution lists its tensors with a callback.
 */
#ifndef NF_TENSOR_H
#define NF_TENSOR_H

#include "core.h"

/* One named tensor: a slice of the flat parameter buffer (buffer == NULL)
 * or a fixed buffer such as a MADE mask. */
typedef struct nf_tensor_info {
    char name[160];
    size_t shape[2];
    int ndim;
    size_t offset;       /* parameters: offset in the flow's flat buffer */
    const float *buffer; /* fixed buffers: their values */
    float *state;        /* mutable state (ActNorm's flag): saved, and loaded back */
    size_t count;
} nf_tensor_info;
typedef nf_status (*nf_tensor_fn)(void *ctx, const nf_tensor_info *t);

/* Emits one parameter tensor "<prefix><name>" at offset `off` (ndim 1 when
 * rows == 0). */
nf_status nf__emit(nf_tensor_fn fn, void *ctx, const char *prefix, const char *name, size_t off, size_t rows,
                   size_t cols);

#endif
