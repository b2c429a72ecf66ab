/*
 * hdmath.h - scalar maths shared by the CPU code and the device kernels
 * (device/kern.h): plain static inline C that nvcc also compiles for the
 * GPU (NF_HD marks it __host__ __device__ there).
 */
#ifndef NF_HDMATH_H
#define NF_HDMATH_H

#include <math.h>

#ifdef __CUDACC__
#define NF_HD __host__ __device__ static inline
#else
#define NF_HD static inline
#endif

/* Stable scalar functions (double precision). */
NF_HD double nf__softplus(double x) { /* log(1 + e^x) */
    return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));
}
NF_HD double nf__sigmoid(double x) {
    if (x >= 0) return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

#endif
