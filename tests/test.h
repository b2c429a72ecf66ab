/*
 * test.h - a minimal test harness.  Every CHECK counts one check; the runner
 * prints "N passed, N failed" at the end and exits non-zero on failure.
 */
#ifndef NF_TEST_H
#define NF_TEST_H

#include "nflow.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct test_counts {
    long passed, failed, skipped;
} test_counts;

extern test_counts tc;

void test_fail(const char *file, int line, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Counts a group of checks that could not run here, printing why. */
void test_skip(const char *suite, const char *why);

#define CHECK(cond, ...)                                        \
    do {                                                        \
        if (cond) tc.passed++;                                  \
        else test_fail(__FILE__, __LINE__, __VA_ARGS__);        \
    } while (0)

/* |a - b| <= tol * (1 + |b|) */
#define CHECK_NEAR(a, b, tol, ...)                                                       \
    do {                                                                                 \
        double ta_ = (a), tb_ = (b);                                                     \
        if (fabs(ta_ - tb_) <= (tol) * (1 + fabs(tb_))) tc.passed++;                      \
        else {                                                                           \
            char tm_[256];                                                               \
            snprintf(tm_, sizeof tm_, __VA_ARGS__);                                      \
            test_fail(__FILE__, __LINE__, "%s: got %.9g, expected %.9g", tm_, ta_, tb_); \
        }                                                                                \
    } while (0)

#define CHECK_OK(expr)                                                                 \
    do {                                                                               \
        nf_status s_ = (expr);                                                         \
        CHECK(s_ == NF_OK, "%s failed: %s (%s)", #expr, nf_status_str(s_), nf_last_error()); \
    } while (0)

/* The call must fail with `code` and a message containing `needle`. */
#define CHECK_ERR(expr, code, needle)                                                          \
    do {                                                                                       \
        nf_status s_ = (expr);                                                                 \
        CHECK(s_ == (code) && strstr(nf_last_error(), (needle)) != NULL,                       \
              "%s: expected %s with \"%s\", got %s: \"%s\"", #expr, nf_status_str(code), needle, \
              nf_status_str(s_), nf_last_error());                                             \
    } while (0)

/* Suites (one file each). */
void test_core(void);
void test_conformance(void);
void test_bijectors(void);
void test_dist(void);
void test_spline(void);
void test_threads(void);
void test_team(void);
void test_comm(void);
void test_train(void);
void test_device(void);
void test_torch_flows(void);
void test_spec(void);
void test_io(void);
void test_locale(void);
void test_model(void);
void test_fuzz_replay(void);
void test_examples(const char *example_dir);
void test_cli(const char *build_dir);

#endif
