/*
 * blas.c - which BLAS nflow runs on, and whether OpenBLAS runs kernels below
 * what this CPU can do.
 *
 * OpenBLAS built with DYNAMIC_ARCH (Debian's) picks its kernels once, when it
 * is loaded: from the CPU model, or from the OPENBLAS_CORETYPE variable if it
 * is set.  A machine image that pins OPENBLAS_CORETYPE=Haswell (as the one
 * nflow's benchmark ran on does) gets AVX2 kernels on an AVX-512 CPU, and
 * sgemm at about 95 instead of 175 GFLOP/s a core (docs/performance.md).
 * OpenBLAS's SkylakeX kernels need AVX-512 F, CD, BW, DQ and VL.  nflow only
 * reports this; it never changes what the user or the machine chose.
 */
#include "core.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* OpenBLAS's own queries; absent (NULL) with another CBLAS. */
extern char *openblas_get_config(void) __attribute__((weak));
extern char *openblas_get_corename(void) __attribute__((weak));

static int cpu_has_avx512_skx(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vl");
#else
    return 0;
#endif
}

/* OpenBLAS kernel sets without AVX-512. */
static int is_avx2_fallback(const char *core) {
    static const char *const names[] = {"haswell", "zen", "sandybridge", NULL};
    for (int k = 0; names[k]; k++) {
        const char *a = core, *b = names[k];
        while (*a && *b && (*a | 0x20) == *b) a++, b++;
        if (!*a && !*b) return 1;
    }
    return 0;
}

const char *nf_blas_info(char *buf, size_t cap) {
    if (!openblas_get_config || !openblas_get_corename) {
        if (cap) snprintf(buf, cap, "a CBLAS other than OpenBLAS");
        return NULL;
    }
    const char *config = openblas_get_config(), *core = openblas_get_corename();
    if (!config) config = "OpenBLAS";
    if (!core) core = "unknown";
    if (cap) snprintf(buf, cap, "%s; kernels: %s", config, core);
    if (!strstr(config, "DYNAMIC_ARCH") || !is_avx2_fallback(core) || !cpu_has_avx512_skx()) return NULL;
    return "SkylakeX";
}

/* ---- one BLAS thread inside nflow's calls --------------------------------- */

/* nflow's threading policy: its own threads split the work (nf_train_opts
 * .threads, nf_flow_set_threads), and BLAS runs one thread inside every
 * nflow call, so that a seeded result never depends on OPENBLAS_NUM_THREADS
 * (OpenBLAS's multi-threaded kernels sum in another order) and small
 * products do not pay for waking a thread pool.  OpenBLAS 0.3.27 and later
 * set this per thread (openblas_set_num_threads_local); older ones only for
 * the whole process, so the first of nflow's concurrent calls lowers it and
 * the last one puts the host's setting back (a counter under a mutex: the
 * one piece of shared state in the library, guarding OpenBLAS's own). */
extern int openblas_set_num_threads_local(int) __attribute__((weak));
extern int openblas_get_num_threads(void) __attribute__((weak));
extern void openblas_set_num_threads(int) __attribute__((weak));

static pthread_mutex_t blas_mu = PTHREAD_MUTEX_INITIALIZER;
static int blas_users, blas_saved;

void nf__blas_enter(nf_blas_guard *g) {
    g->prev = -1;
    if (openblas_set_num_threads_local) {
        g->prev = openblas_set_num_threads_local(1);
        return;
    }
    if (!openblas_get_num_threads || !openblas_set_num_threads) return;
    pthread_mutex_lock(&blas_mu);
    if (blas_users++ == 0) {
        blas_saved = openblas_get_num_threads();
        if (blas_saved != 1) openblas_set_num_threads(1);
    }
    pthread_mutex_unlock(&blas_mu);
    g->prev = 0;
}

void nf__blas_leave(nf_blas_guard *g) {
    if (g->prev < 0) return;
    if (openblas_set_num_threads_local) {
        openblas_set_num_threads_local(g->prev);
        return;
    }
    pthread_mutex_lock(&blas_mu);
    if (--blas_users == 0 && blas_saved != 1) openblas_set_num_threads(blas_saved);
    pthread_mutex_unlock(&blas_mu);
}
