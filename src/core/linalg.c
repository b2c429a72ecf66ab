/*
 * linalg.c - small dense linear algebra in double precision (LU with partial
 * pivoting and its solves), used by the affine bijector's r x r capacitance
 * matrix and by the tests' finite-difference Jacobians.  Large products go
 * through BLAS elsewhere; these matrices are tiny.
 */
#include "core.h"

int nf__lu(double *a, size_t n, size_t *piv, double *logabsdet) {
    double lad = 0;
    int singular = 0;
    for (size_t k = 0; k < n; k++) {
        size_t p = k;
        double best = fabs(a[k * n + k]);
        for (size_t i = k + 1; i < n; i++)
            if (fabs(a[i * n + k]) > best) best = fabs(a[i * n + k]), p = i;
        piv[k] = p;
        if (p != k)
            for (size_t j = 0; j < n; j++) {
                double t = a[k * n + j];
                a[k * n + j] = a[p * n + j];
                a[p * n + j] = t;
            }
        double pv = a[k * n + k];
        if (pv == 0) {
            singular = 1;
            lad = -INFINITY;
            continue;
        }
        lad += log(fabs(pv));
        for (size_t i = k + 1; i < n; i++) {
            double f = a[i * n + k] / pv;
            a[i * n + k] = f;
            for (size_t j = k + 1; j < n; j++) a[i * n + j] -= f * a[k * n + j];
        }
    }
    if (logabsdet) *logabsdet = lad;
    return singular;
}

void nf__lu_solve(const double *lu, const size_t *piv, size_t n, double *b) {
    for (size_t k = 0; k < n; k++)
        if (piv[k] != k) {
            double t = b[k];
            b[k] = b[piv[k]];
            b[piv[k]] = t;
        }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++) b[i] -= lu[i * n + j] * b[j];
    for (size_t i = n; i-- > 0;) {
        for (size_t j = i + 1; j < n; j++) b[i] -= lu[i * n + j] * b[j];
        b[i] /= lu[i * n + i];
    }
}

void nf__lu_solve_t(const double *lu, const size_t *piv, size_t n, double *b) {
    /* A = P^T L U, so A^T x = b  <=>  U^T L^T P x = b. */
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < i; j++) b[i] -= lu[j * n + i] * b[j];
        b[i] /= lu[i * n + i];
    }
    for (size_t i = n; i-- > 0;)
        for (size_t j = i + 1; j < n; j++) b[i] -= lu[j * n + i] * b[j];
    for (size_t k = n; k-- > 0;)
        if (piv[k] != k) {
            double t = b[k];
            b[k] = b[piv[k]];
            b[piv[k]] = t;
        }
}
