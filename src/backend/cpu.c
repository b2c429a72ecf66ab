/*
 * cpu.c - the CPU's compute backend: matrix products through CBLAS
 * (OpenBLAS), and the vectorised element-wise kernels of nn/activation.c and
 * train/adam.c (compiled for AVX-512, AVX2 and the baseline, picked at load).
 * The functions are also the parts the CPU team (team.c) runs on its threads.
 */
#include "cpu.h"

#include "../nn/nn.h"
#include "../train/adam.h"

#include <cblas.h>

void nf__epi_apply(const nf_epi *e, float *C, size_t ldc, size_t r0, size_t r1, size_t c0, size_t c1) {
    if (!e || r1 <= r0 || c1 <= c0) return;
    float *blk = C + r0 * ldc + c0;
    if (e->bias) nf__bias_act_forward(e->act, blk, e->bias + c0, r1 - r0, c1 - c0, ldc);
    if (e->H) nf__act_backward_2d(e->act, blk, ldc, e->H + r0 * e->ldh + c0, e->ldh, r1 - r0, c1 - c0);
    if (e->db && c0 == 0) nf__bias_grad(e->db + r0, e->G + r0, e->gn, r1 - r0, e->ldg);
}

void nf__cpu_gemm(const nf_backend *be, int ta, int tb, size_t m, size_t n, size_t k, float alpha, const float *A,
                  size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc, const nf_epi *e) {
    (void)be;
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k,
                alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
    nf__epi_apply(e, C, ldc, 0, m, 0, n);
}

void nf__cpu_gemv(const nf_backend *be, int ta, size_t m, size_t n, float alpha, const float *A, size_t lda,
                  const float *x, float beta, float *y) {
    (void)be;
    cblas_sgemv(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, (int)m, (int)n, alpha, A, (int)lda, x, 1, beta, y, 1);
}

static void cpu_bias_act_forward(const nf_backend *be, nf_activation a, float *h, const float *bias, size_t n,
                                 size_t b) {
    (void)be;
    nf__bias_act_forward(a, h, bias, n, b, b);
}

static void cpu_act_backward(const nf_backend *be, nf_activation a, float *g, const float *h, size_t m) {
    (void)be;
    nf__act_backward(a, g, h, m);
}

static void cpu_bias_grad(const nf_backend *be, float *db, const float *g, size_t n, size_t b) {
    (void)be;
    nf__bias_grad(db, g, n, b, b);
}

static void cpu_adam(const nf_backend *be, const nf_adam *a, float gscale, float *p, float *g, float *m, float *v,
                     size_t n) {
    (void)be;
    nf__adam_apply(a, gscale, p, g, m, v, n);
}

static double cpu_sum_squares(const nf_backend *be, const float *g, size_t n) {
    (void)be;
    return nf__sum_squares(g, n);
}

static void cpu_mask_acc(const nf_backend *be, float *dW, const float *G, const float *M, size_t n) {
    (void)be;
    nf__mask_acc(dW, G, M, n);
}

const nf_backend nf__backend_cpu = {
    "cpu",       nf__cpu_gemm,    nf__cpu_gemv,    cpu_bias_act_forward, cpu_act_backward,
    cpu_bias_grad, cpu_adam, cpu_sum_squares, cpu_mask_acc,
};
