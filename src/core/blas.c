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
