/*
 * safetensors.h - the safetensors container, generic (uses core/ only):
 *   8 bytes: little-endian u64 N;  N bytes: JSON header (space padded to a
 *   multiple of 8);  then the tensors' raw little-endian float32 bytes.
 * The header maps tensor names to {"dtype":"F32","shape":[..],
 * "data_offsets":[begin,end]} (offsets from the start of the data) and
 * "__metadata__" to string values.  What the tensors and keys mean is the
 * caller's business (flow/flow_file.c: model files; train/checkpoint.c).
 */
#ifndef NF_SAFETENSORS_H
#define NF_SAFETENSORS_H

#include "../core/core.h"

/* One tensor to write: float32, 1-D (shape[0]) or 2-D. */
typedef struct nf_st_tensor {
    const char *name;
    int ndim;
    size_t shape[2];
    size_t count;
    const float *data;
} nf_st_tensor;

/* Writes the file as io/output.h says (a regular file: a temporary
 * beside it, fsync, rename): nmeta
 * metadata pairs meta_kv[2i] = key, meta_kv[2i+1] = value (strings, in this
 * order), then the tensors in this order. */
nf_status nf__st_write(const char *path, const char *const *meta_kv, size_t nmeta, const nf_st_tensor *t, size_t nt);

typedef struct nf_st_file nf_st_file;
/* Reads the whole file and parses its header; errors say "PATH: not a
 * valid WHAT: ..." (what: e.g. "nflow model file"). */
nf_status nf__st_open(const char *path, const char *what, nf_st_file **out);
void nf__st_close(nf_st_file *f);
/* A metadata string, or NULL. */
const char *nf__st_meta(const nf_st_file *f, const char *key);
/* The header's entries (the tensors and "__metadata__"): count and names. */
size_t nf__st_entries(const nf_st_file *f);
const char *nf__st_entry(const nf_st_file *f, size_t i);
/* Tensor `name` checked against dtype F32, ndim, shape and count, its
 * offsets inside the file: *bytes (count little-endian floats) and its
 * entry index.  A missing tensor says "tensor 'NAME' ... is missing". */
nf_status nf__st_find(const nf_st_file *f, const char *name, int ndim, const size_t *shape, size_t count,
                      const unsigned char **bytes, size_t *index);
/* Copies a 1-D tensor of exactly count finite values into dst. */
nf_status nf__st_read_floats(const nf_st_file *f, const char *name, float *dst, size_t count);
/* NF_ERR_DOMAIN with "PATH: not a valid WHAT: <formatted>". */
nf_status nf__st_bad(const nf_st_file *f, const char *fmt, ...) NF_PRINTF(2, 3);

#endif
