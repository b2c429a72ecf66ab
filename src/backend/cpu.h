/*
 * cpu.h - the CPU backend's products, shared with the CPU team (team.c).
 */
#ifndef NF_BACKEND_CPU_H
#define NF_BACKEND_CPU_H

#include "../core/backend.h"

void nf__cpu_gemm(const nf_backend *be, int ta, int tb, size_t m, size_t n, size_t k, float alpha, const float *A,
                  size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc, const nf_epi *e);
/* The epilogue e on rows [r0, r1) and columns [c0, c1) of C; the bias
 * gradient's part of those rows is added by the block with c0 = 0. */
void nf__epi_apply(const nf_epi *e, float *C, size_t ldc, size_t r0, size_t r1, size_t c0, size_t c1);
void nf__cpu_gemv(const nf_backend *be, int ta, size_t m, size_t n, float alpha, const float *A, size_t lda,
                  const float *x, float beta, float *y);

#endif
