/*
 * host.c - the CPU pretending to be a device (dev.h): "device" memory is
 * host memory, products are CBLAS calls, every kernel runs its threads in
 * one loop, reductions sum in index order.  Slow and single-threaded; it is
 * how the tests run the device programs (prog.c) and the kernels (kern.h)
 * without a GPU, against the CPU flows.
 */
#include "dev.h"
#include "../core/core.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

static nf_status h_open(int index, void **st) {
    if (index != 0) return nf__err(NF_ERR_ARG, "the host device has one unit, 0; got %d", index);
    *st = NULL;
    return NF_OK;
}
static void h_close(void *st) { (void)st; }
static void *h_alloc(void *st, size_t bytes) {
    (void)st;
    return calloc(1, bytes ? bytes : 1);
}
static void h_free(void *st, void *p) {
    (void)st;
    free(p);
}
static nf_status h_put(void *st, void *dst, const void *src, size_t bytes) {
    (void)st;
    if (bytes) memcpy(dst, src, bytes);
    return NF_OK;
}
static void h_copy(void *st, void *dst, const void *src, size_t bytes) {
    (void)st;
    if (bytes && dst != src) memmove(dst, src, bytes);
}
static void h_zero(void *st, void *p, size_t bytes) {
    (void)st;
    if (bytes) memset(p, 0, bytes);
}
static void h_gemm(void *st, int ta, int tb, size_t m, size_t n, size_t k, float alpha, const float *A, size_t lda,
                   const float *B, size_t ldb, float beta, float *C, size_t ldc) {
    (void)st;
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k,
                alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}
static void h_gemm_batched(void *st, int ta, int tb, size_t m, size_t n, size_t k, float alpha, const float *A,
                           size_t lda, size_t sa, const float *B, size_t ldb, size_t sb, float beta, float *C, size_t ldc,
                           size_t sc, size_t count) {
    for (size_t q = 0; q < count; q++)
        h_gemm(st, ta, tb, m, n, k, alpha, A + q * sa, lda, B + q * sb, ldb, beta, C + q * sc, ldc);
}
static void h_launch(void *st, int id, size_t count, const nf_kargs *a) {
    (void)st;
    for (size_t i = 0; i < count; i++) nf__kern(id, i, a);
}
static void h_reduce(void *st, double *out, const float *x, size_t n, int sq, int add) {
    (void)st;
    double s = 0;
    for (size_t i = 0; i < n; i++) s += sq ? (double)x[i] * x[i] : (double)x[i];
    out[0] = add ? out[0] + s : s;
}
static const char *h_describe(void *st) {
    (void)st;
    return "the CPU emulating a device (tests)";
}

const nf_dev_ops nf__dev_host = {
    "host", 4096, h_open, h_close, h_alloc, h_free, h_put, h_put, h_copy, h_zero, h_gemm, h_gemm_batched, h_launch, h_reduce,
    NULL, NULL, NULL, NULL, h_describe, NULL,
};
