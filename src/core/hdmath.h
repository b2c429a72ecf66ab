/*
 * hdmath.h - scalar maths shared by the CPU code and the device kernels
 * (device/kern.h): plain static inline C that nvcc also compiles for the
 * GPU (NF_HD marks it __host__ __device__ there).
 */
#ifndef NF_HDMATH_H
#define NF_HDMATH_H

#include <math.h>
#include <stdint.h>

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

/* core/rng.c's normal draws, shared with the device's (device/kern.h): a
 * uniform on (0, 1), never 0, from a 64-bit word's top 53 bits, and the
 * Box-Muller pair of two such uniforms (returns the cosine draw, *sine the
 * other). */
NF_HD double nf__u53(uint64_t w) { return ((double)(w >> 11) + 0.5) * 0x1.0p-53; }
NF_HD double nf__box_muller(double u1, double u2, double *sine) {
    double rad = sqrt(-2.0 * log(u1));
    double th = 6.283185307179586476925 * u2;
    *sine = rad * sin(th);
    return rad * cos(th);
}

#endif
