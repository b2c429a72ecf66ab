/*
 * main.c - runs every suite and prints the closing line "N passed, N failed"
 * (", N skipped" when some checks could not run here, each with a SKIP line).
 * Usage: run [BUILD_DIR]   (the examples and the nflow command are run and
 * checked when given)
 */
#include "test.h"

#include <stdarg.h>
#include <stdlib.h>

test_counts tc;

void test_fail(const char *file, int line, const char *fmt, ...) {
    tc.failed++;
    if (tc.failed > 200) return; /* keep the log readable */
    va_list ap;
    va_start(ap, fmt);
    fprintf(stdout, "FAIL %s:%d: ", file, line);
    vfprintf(stdout, fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
}

void test_skip(const char *suite, const char *why) {
    tc.skipped++;
    printf("SKIP %s: %s\n", suite, why);
}

/* NF_TEST_ONLY=threads or NF_TEST_ONLY=io,model,spec runs only those suites. */
static int selected(const char *name) {
    const char *only = getenv("NF_TEST_ONLY");
    if (!only || !*only) return 1;
    size_t n = strlen(name);
    for (const char *p = only; (p = strstr(p, name)); p += n)
        if ((p == only || p[-1] == ',') && (p[n] == 0 || p[n] == ',')) return 1;
    return 0;
}

static void suite(const char *name, void (*fn)(void)) {
    if (!selected(name)) return;
    long p = tc.passed, f = tc.failed;
    fn();
    printf("%-14s %6ld passed, %ld failed\n", name, tc.passed - p, tc.failed - f);
    fflush(stdout);
}

int main(int argc, char **argv) {
    suite("core", test_core);
    suite("conformance", test_conformance);
    suite("bijectors", test_bijectors);
    suite("dist", test_dist);
    suite("spline", test_spline);
    suite("threads", test_threads);
    suite("train", test_train);
    suite("team", test_team);
    suite("device", test_device);
    suite("comm", test_comm);
    suite("torch_flows", test_torch_flows);
    suite("spec", test_spec);
    suite("io", test_io);
    suite("locale", test_locale);
    suite("model", test_model);
    suite("fuzz_replay", test_fuzz_replay);
    if (argc > 1) { /* the suites that run the programs in the build folder argv[1] */
        char ex[1024];
        snprintf(ex, sizeof ex, "%s/examples", argv[1]);
        if (selected("examples")) {
            long p = tc.passed, f = tc.failed;
            test_examples(ex);
            printf("%-14s %6ld passed, %ld failed\n", "examples", tc.passed - p, tc.failed - f);
        }
        if (selected("cli")) {
            long p = tc.passed, f = tc.failed;
            test_cli(argv[1]);
            printf("%-14s %6ld passed, %ld failed\n", "cli", tc.passed - p, tc.failed - f);
        }
    }
    if (tc.skipped) printf("%ld passed, %ld failed, %ld skipped\n", tc.passed, tc.failed, tc.skipped);
    else printf("%ld passed, %ld failed\n", tc.passed, tc.failed);
    return tc.failed ? 1 : 0;
}
