/*
 * dev.h - a compute device that holds its own memory (a GPU): the ops a
 * device program (prog.c) runs on it.  Pointers handed to these calls are
 * the device's own (from alloc), never host memory, except put/get's host
 * side.  Everything a device computes beyond the matrix products is one of
 * the kernels of kern.h, launched as `count` independent threads that each
 * run nf__kern(id, i, args) for their index i; the same bodies run on the
 * CPU in host.c, so every device program is tested without a GPU.
 *
 * Two implementations: host.c (the CPU pretending to be a device: kernels
 * in loops, CBLAS products; for tests) and cuda/cuda.cu (make CUDA=1:
 * cuBLAS, one CUDA kernel over the same bodies, CUDA graphs).
 */
#ifndef NF_DEV_H
#define NF_DEV_H

#include "kern.h"
#include "nflow.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nf_dev_ops {
    const char *name; /* "host", "cuda" */
    size_t chunk_rows; /* rows per chunk of the one-off calls at most */
    /* Opens device `index` into *state; a message on failure (no GPU, ...). */
    nf_status (*open)(int index, void **state);
    void (*close)(void *state);
    /* bytes of device memory, or NULL (the caller sets the message) */
    void *(*alloc)(void *st, size_t bytes);
    void (*free)(void *st, void *p);
    /* host -> device and device -> host (get waits for the device's work
     * before it; put is ordered before later work) */
    nf_status (*put)(void *st, void *dst, const void *src, size_t bytes);
    nf_status (*get)(void *st, void *dst, const void *src, size_t bytes);
    /* device -> device; zeroing */
    void (*copy)(void *st, void *dst, const void *src, size_t bytes);
    void (*zero)(void *st, void *p, size_t bytes);
    /* row-major C (m x n) = alpha op(A) op(B) + beta C, as nf_backend.gemm */
    void (*gemm)(void *st, int ta, int tb, size_t m, size_t n, size_t k, float alpha, const float *A, size_t lda,
                 const float *B, size_t ldb, float beta, float *C, size_t ldc);
    /* the same for `count` products at fixed strides (floats) sa, sb, sc */
    void (*gemm_batched)(void *st, int ta, int tb, size_t m, size_t n, size_t k, float alpha, const float *A,
                         size_t lda, size_t sa, const float *B, size_t ldb, size_t sb, float beta, float *C,
                         size_t ldc, size_t sc, size_t count);
    /* count threads of kernel id (kern.h), each with the same args */
    void (*launch)(void *st, int id, size_t count, const nf_kargs *a);
    /* out[0] (+)= sum of the n values x[i] (squares when `sq`) in double,
     * in a fixed order; `add`: accumulate into out[0] */
    void (*reduce)(void *st, double *out, const float *x, size_t n, int sq, int add);
    /* optional (NULL: not offered): record the calls between begin and end
     * as one replayable graph (CUDA graphs); replay runs it again */
    nf_status (*graph_begin)(void *st);
    nf_status (*graph_end)(void *st, void **graph);
    nf_status (*graph_replay)(void *st, void *graph);
    void (*graph_free)(void *st, void *graph);
    /* a description for messages and --version ("NVIDIA H200, sm_90") */
    const char *(*describe)(void *st);
    /* optional (NULL: fp32 only): let the products use TF32 (on) or not */
    void (*set_tf32)(void *st, int on);
} nf_dev_ops;

/* The CPU pretending to be a device (host.c): for the tests. */
extern const nf_dev_ops nf__dev_host;
#ifdef NF_CUDA
/* CUDA (cuda/cuda.cu, make CUDA=1). */
extern const nf_dev_ops nf__dev_cuda;
#endif

#ifdef __cplusplus
}
#endif

#endif
