/*
 * cpu.h - the CPU backend's products, shared with the CPU team (team.c).
 */
#ifndef NF_BACKEND_CPU_H
#define NF_BACKEND_CPU_H

#include "../core/backend.h"

void nf__cpu_gemm(const nf_backend *be, int ta, int tb, size_t m, size_t n, size_t k, float alpha, const float *A,
                  size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc);
void nf__cpu_gemv(const nf_backend *be, int ta, size_t m, size_t n, float alpha, const float *A, size_t lda,
                  const float *x, float beta, float *y);

#endif
