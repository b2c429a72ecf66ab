/*
 * test_core.c - status strings, error messages, the random number generator
 * (reproducible stream, moments) and the normal CDF and its inverse.
 */
#include "test.h"

#include "../src/core/core.h"

#include <stdlib.h>

static void test_status(void) {
    const nf_status all[] = {NF_OK, NF_ERR_ARG, NF_ERR_SHAPE, NF_ERR_DOMAIN, NF_ERR_NUMERIC,
                             NF_ERR_NOMEM, NF_ERR_UNSUPPORTED};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        CHECK(nf_status_str(all[i]) && nf_status_str(all[i])[0], "status %d has a description", all[i]);
        for (size_t j = 0; j < i; j++)
            CHECK(strcmp(nf_status_str(all[i]), nf_status_str(all[j])) != 0, "descriptions %zu, %zu differ", i, j);
    }
    CHECK(strcmp(nf_version(), "0.1.0") == 0, "version");
    {
        char what[256] = "unset", tiny[8];
        const char *better = nf_blas_info(what, sizeof what);
        CHECK(strlen(what) > 10 && strcmp(what, "unset") != 0, "nf_blas_info describes the BLAS: %s", what);
        CHECK(!better || (strstr(what, "OpenBLAS") && strstr(what, "kernels: ")), "a better kernel set is named only for OpenBLAS");
        nf_blas_info(tiny, sizeof tiny);
        CHECK(strlen(tiny) == sizeof tiny - 1, "nf_blas_info truncates to the buffer");
        CHECK(nf_blas_info(NULL, 0) == better, "nf_blas_info with no buffer");
    }
    /* A message names the function, the object and the value. */
    nf_bijector *b = NULL;
    float s = 0;
    CHECK_ERR(nf_bijector_scale(2, &s, 1, &b), NF_ERR_DOMAIN, "nf_bijector_scale");
    CHECK(strstr(nf_last_error(), "scale != 0") != NULL, "message says what is needed: %s", nf_last_error());
    CHECK(b == NULL, "no object on failure");
}

static void test_rng(void) {
    /* Golden values of xoshiro256** seeded by splitmix64(42), from an
     * independent Python implementation of the published algorithms. */
    const uint64_t golden[4] = {0x15780b2e0c2ec716ull, 0x6104d9866d113a7eull, 0xae17533239e499a1ull,
                                0xecb8ad4703b360a1ull};
    nf_rng *a = NULL, *b = NULL;
    CHECK_OK(nf_rng_create(42, &a));
    for (int i = 0; i < 4; i++) {
        uint64_t v = nf_rng_u64(a);
        CHECK(v == golden[i], "rng output %d: %016llx", i, (unsigned long long)v);
    }
    nf_rng_free(a);

    /* Same seed, same stream; single draws equal batched draws. */
    CHECK_OK(nf_rng_create(7, &a));
    CHECK_OK(nf_rng_create(7, &b));
    float fa[101], fb[101];
    nf_rng_fill_normal(a, fa, 101);
    for (int i = 0; i < 101; i++) fb[i] = nf_rng_normal(b);
    CHECK(memcmp(fa, fb, sizeof fa) == 0, "normal: batch and single draws agree");
    nf_rng_fill_uniform(a, fa, 101);
    for (int i = 0; i < 101; i++) fb[i] = nf_rng_uniform(b);
    CHECK(memcmp(fa, fb, sizeof fa) == 0, "uniform: batch and single draws agree");
    nf_rng_free(b);
    CHECK_OK(nf_rng_create(8, &b));
    CHECK(nf_rng_u64(a) != nf_rng_u64(b), "different seeds differ");

    /* Moments. */
    enum { M = 200000 };
    float *v = malloc(M * sizeof(float));
    nf_rng_fill_uniform(a, v, M);
    double m = 0, m2 = 0, lo = 1, hi = 0;
    for (int i = 0; i < M; i++) {
        m += v[i], m2 += (double)v[i] * v[i];
        if (v[i] < lo) lo = v[i];
        if (v[i] > hi) hi = v[i];
    }
    m /= M, m2 = m2 / M - m * m;
    CHECK(lo >= 0 && hi < 1, "uniform in [0, 1): [%g, %g]", lo, hi);
    CHECK(fabs(m - 0.5) < 0.005, "uniform mean %g", m);
    CHECK(fabs(m2 - 1.0 / 12) < 0.002, "uniform variance %g", m2);
    nf_rng_fill_normal(a, v, M);
    double s1 = 0, s2 = 0, s4 = 0;
    for (int i = 0; i < M; i++) s1 += v[i];
    s1 /= M;
    for (int i = 0; i < M; i++) {
        double c = v[i] - s1;
        s2 += c * c, s4 += c * c * c * c;
    }
    s2 /= M, s4 /= M;
    CHECK(fabs(s1) < 0.01, "normal mean %g", s1);
    CHECK(fabs(s2 - 1) < 0.01, "normal variance %g", s2);
    CHECK(fabs(s4 / (s2 * s2) - 3) < 0.06, "normal kurtosis %g", s4 / (s2 * s2));
    int counts[7] = {0};
    for (int i = 0; i < 70000; i++) counts[nf_rng_below(a, 7)]++;
    for (int k = 0; k < 7; k++) CHECK(abs(counts[k] - 10000) < 500, "below(7): count of %d is %d", k, counts[k]);
    free(v);
    nf_rng_free(a);
    nf_rng_free(b);
    CHECK_ERR(nf_rng_create(1, NULL), NF_ERR_ARG, "nf_rng_create");
}

static void test_normal_cdf_inverse(void) {
    /* Phi^-1 of known quantiles, and the round trip in float through the
     * public bijector. */
    nf_bijector *b = NULL;
    CHECK_OK(nf_bijector_normal_cdf(1, &b));
    const double p[] = {0.975, 0.5, 0.025, 0x1p-20, 1 - 0x1p-20}; /* the tails exact in float */
    const double q[] = {1.9599639845400536, 0, -1.9599639845400536, -4.7630010342678135, 4.7630010342678135};
    for (int i = 0; i < 5; i++) {
        float pf = (float)p[i], x;
        CHECK_OK(nf_bijector_inverse(b, &pf, 1, &x, NULL));
        /* compare against the quantile of the float-rounded p */
        double dp = (double)pf - p[i];
        double qx = q[i] + dp * 2.5066282746310002 * exp(0.5 * q[i] * q[i]);
        CHECK_NEAR(x, qx, 2e-6, "ndtri(%g)", p[i]);
    }
    /* Far tails stay finite. */
    float tiny = 1e-30f, x;
    CHECK_OK(nf_bijector_inverse(b, &tiny, 1, &x, NULL));
    CHECK_NEAR(x, -11.46403, 1e-5, "ndtri(1e-30)");
    nf_bijector_free(b);
}

/* Workspace blocks: 64-byte aligned and fully writable, small or large
 * (large ones are mapped from the kernel where nf__alloc_maps_large says
 * so); freeing NULL is a no-op. */
static void test_aligned_alloc(void) {
    size_t sizes[] = {0, 1, 63, 64, 4096, ((size_t)1 << 20) - 1, (size_t)1 << 20, 3 * ((size_t)1 << 20) + 5};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        unsigned char *p = nf__aligned_alloc(sizes[k]);
        CHECK(p != NULL, "nf__aligned_alloc(%zu)", sizes[k]);
        if (!p) continue;
        CHECK(((uintptr_t)p & (NF_ALIGN_BYTES - 1)) == 0, "block of %zu bytes is 64-byte aligned", sizes[k]);
        size_t n = nf__align(sizes[k] ? sizes[k] : 1);
        for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(i * 7u);
        size_t bad = 0;
        for (size_t i = 0; i < n; i++) bad += p[i] != (unsigned char)(i * 7u);
        CHECK(bad == 0, "block of %zu bytes keeps what was written", sizes[k]);
        nf__aligned_free(p);
    }
    nf__aligned_free(NULL);
    CHECK(nf__aligned_alloc(SIZE_MAX - 8) == NULL, "an impossible size gives NULL");
}

void test_core(void) {
    test_aligned_alloc();
    test_status();
    test_rng();
    test_normal_cdf_inverse();
}
