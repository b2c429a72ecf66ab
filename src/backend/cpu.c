/*
 * cpu.c - the CPU's compute backend: matrix products through CBLAS
 * (OpenBLAS), and the vectorised element-wise kernels of nn/activation.c and
 * train/adam.c (compiled for AVX-512, AVX2 and the baseline, picked at load).
 */
#include "../core/backend.h"
#include "../nn/nn.h"
#include "../train/adam.h"

#include <cblas.h>

static void cpu_gemm(int ta, int tb, size_t m, size_t n, size_t k, float alpha, const float *A, size_t lda,
                     const float *B, size_t ldb, float beta, float *C, size_t ldc) {
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k,
                alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

static void cpu_gemv(int ta, size_t m, size_t n, float alpha, const float *A, size_t lda, const float *x, float beta,
                     float *y) {
    cblas_sgemv(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, (int)m, (int)n, alpha, A, (int)lda, x, 1, beta, y, 1);
}

const nf_backend nf__backend_cpu = {
    "cpu", cpu_gemm, cpu_gemv, nf__bias_act_forward, nf__act_backward, nf__bias_grad, nf__adam_apply, nf__sum_squares,
};
