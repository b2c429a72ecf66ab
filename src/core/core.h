/*
 * core.h - internal helpers shared by every layer of nflow: error reporting,
 * aligned carving of workspaces, and numerically stable scalar functions.
 * Not part of the public API.
 */
#ifndef NF_CORE_H
#define NF_CORE_H

#include "hdmath.h" /* nf__softplus, nf__sigmoid */
#include "nflow.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define NF_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define NF_PRINTF(a, b)
#endif

/* NF_VEC marks an elementwise hot loop (Adam, activations, bias passes) to be
 * compiled three times, for AVX-512, AVX2 and the baseline, with the best
 * one the CPU runs picked once at load time (GCC/Clang target_clones).  The
 * library is built for the baseline x86-64, so without this those loops get
 * 4-wide SSE2.  Results are identical whichever clone runs: the loops are
 * elementwise or keep their summation order, and -ffp-contract=off (Makefile)
 * stops a*b+c from becoming an FMA in one clone and not in another. */
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define NF_NO_CLONES /* TSan instruments the resolvers, which run before it starts */
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define NF_NO_CLONES
#endif
#if defined(__x86_64__) && defined(__GNUC__) && !defined(NF_NO_CLONES) && defined(__ELF__)
#define NF_VEC __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define NF_VEC
#endif

/* Records a formatted message for the calling thread and returns `s`. */
nf_status nf__err(nf_status s, const char *fmt, ...) NF_PRINTF(2, 3);
/* Prefixes the calling thread's current message with "fn: " and returns s. */
nf_status nf__err_prefix(nf_status s, const char *fn);

/* Propagates a failing status. */
#define NF_TRY(expr)                    \
    do {                                \
        nf_status nf__s_ = (expr);      \
        if (nf__s_ != NF_OK) return nf__s_; \
    } while (0)

/* Workspaces are carved into 64-byte aligned pieces. */
#define NF_ALIGN_BYTES 64u
static inline size_t nf__align(size_t bytes) {
    return (bytes + NF_ALIGN_BYTES - 1) & ~(size_t)(NF_ALIGN_BYTES - 1);
}
/* Returns *cursor and advances it by nf__align(bytes). */
static inline void *nf__carve(unsigned char **cursor, size_t bytes) {
    void *p = *cursor;
    *cursor += nf__align(bytes);
    return p;
}
/* 64-byte aligned allocation of `bytes` (0 gives a valid minimal block). */
void *nf__aligned_alloc(size_t bytes);
void nf__aligned_free(void *p);
/* 1 when blocks of 1 MiB or more are mapped from the kernel (and given back
 * when freed), 0 when everything comes from malloc (sanitizer builds,
 * valgrind, systems without anonymous mappings). */
int nf__alloc_maps_large(void);

/* The C locale for the calling thread while numbers are parsed or printed
 * (clocale.c): enter, do the work, leave. */
typedef struct nf_clocale {
    void *c, *old; /* locale_t */
} nf_clocale;
void nf__clocale_enter(nf_clocale *l);
void nf__clocale_leave(nf_clocale *l);

/* One BLAS thread for the duration of an nflow call (blas.c): enter, do the
 * work, leave. */
typedef struct nf_blas_guard {
    int prev;
} nf_blas_guard;
void nf__blas_enter(nf_blas_guard *g);
void nf__blas_leave(nf_blas_guard *g);

/* Index of the first non-finite value among n, or n if all are finite. */
size_t nf__first_nonfinite(const float *x, size_t n);
/* Reports NF_ERR_DOMAIN naming `what`, if some value of the n x d batch x is
 * not finite. */
nf_status nf__check_finite(const char *what, const float *x, size_t n, size_t d);

/* The generator's whole state as 6 words (4 of xoshiro, the spare flag, the
 * spare normal's bits), for checkpoints; set returns -1 on an invalid state. */
void nf__rng_get_state(const nf_rng *rng, uint64_t st[6]);
int nf__rng_set_state(nf_rng *rng, const uint64_t st[6]);

/* Collectives over an nf_comm (comm.c).  nf__comm_on: more than one
 * process.  agree: every process passes its status; a failed one gets its
 * own back, the others an error saying another failed.  bcast_f: rank 0's
 * values to every process, exactly.  same: *same = 1 iff x is bit-identical
 * on every process (a checksum).  The sums fail with NF_ERR_IO. */
int nf__comm_on(const nf_comm *c);
nf_status nf__comm_check(const nf_comm *c);
nf_status nf__comm_sum_d(const nf_comm *c, double *buf, size_t n);
nf_status nf__comm_sum_f(const nf_comm *c, float *buf, size_t n);
nf_status nf__comm_agree(const nf_comm *c, nf_status st);
nf_status nf__comm_bcast_f(const nf_comm *c, float *x, size_t n);
nf_status nf__comm_same(const nf_comm *c, const float *x, size_t n, int *same);
/* The start of part i when n items are cut into `parts` nearly equal parts
 * (part i is [nf__part(n, parts, i), nf__part(n, parts, i + 1))). */
size_t nf__part(size_t n, size_t parts, size_t i);
/* Reseeds the generator from (seed, stream): independent streams. */
void nf__rng_seed(nf_rng *rng, uint64_t seed, uint64_t stream);

#define NF_LOG_SQRT_2PI 0.91893853320467274178
#define NF_SQRT1_2 0.70710678118654752440
#define NF_LN2 0.69314718055994530942
/* Standard normal CDF and its inverse (0 < p < 1). */
double nf__ndtr(double x);
double nf__ndtri(double p);
/* The regularised incomplete beta function I_x(a, b), a, b > 0. */
double nf__betainc(double a, double b, double x);
/* A Gamma(alpha, 1) draw, alpha > 0 (Marsaglia & Tsang). */
double nf__rng_gamma(nf_rng *rng, double alpha);

/* Small dense linear algebra in double, row-major n x n. */
/* LU with partial pivoting in place; piv receives the row permutation.
 * Returns 0, or 1 if a pivot is exactly zero.  *logabsdet gets log|det|. */
int nf__lu(double *a, size_t n, size_t *piv, double *logabsdet);
/* Solves A x = b (in place in b) with the factors of nf__lu. */
void nf__lu_solve(const double *lu, const size_t *piv, size_t n, double *b);
/* Solves A^T x = b (in place in b) with the factors of nf__lu. */
void nf__lu_solve_t(const double *lu, const size_t *piv, size_t n, double *b);

#endif
