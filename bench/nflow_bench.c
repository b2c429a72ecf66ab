/*
 * nflow_bench.c - the nflow side of the benchmark (bench/run runs it next to
 * bench/torch_bench.py with the same configurations).  Prints lines
 *   RESULT <name> <value> <unit>
 * Threads are set by the caller through OPENBLAS_NUM_THREADS = T: training
 * steps split each batch over T nflow threads with single-threaded BLAS
 * (nf_train_opts.threads), and the 1M-point passes split their chunks over T
 * nflow threads the same way (nf_flow_set_threads); the final sgemm uses T
 * BLAS threads.
 *
 * Configurations: the dataflowr RealNVP ("realnvp(layers=6, hidden=[256,256])")
 * and a 5-layer MAF ("maf(layers=5, hidden=[256,256])", ReLU, reversed order
 * between layers), d = 2; training steps at batch 100 and 1024 (a fixed
 * batch, so data generation is not timed); log_prob and sample of 1,000,000
 * points (in chunks of 2048, as the library does); IAF sampling (its fast
 * direction); a 10000x256x256 sgemm; the process's peak resident memory.
 *
 * Usage: nflow_bench [--part steps|passes|sgemm|rows] [--split rows|columns|auto] [--device D] [--gpu]
 *        (default: steps and passes, the library's split)
 * --split: how the T threads share a training step (nf_train_opts.split).
 * --part rows: one thread's step time at batch 6 to 200 (what a slot of a
 * row-split step costs: its fixed part bounds how far rows can be split).
 *        nflow_bench --blas-better           (for bench/run: a faster kernel set, or nothing)
 * --device D runs the flows on D (cuda, cuda:K; an nflow built with make
 * CUDA=1).  --gpu: the configurations of bench/device/run instead: steps at
 * batch 100, 1024 (and 16384 on a device), and passes of 2^20 points in one call each,
 * with the MAF spelled as bench/torch_bench.py's (a plain MADE, the scale
 * e^-a: "maf(layers=5, hidden=[256,256], residual=0, scale=unbounded)").
 * bench/run runs the training steps in several rounds, alternating with
 * PyTorch's, and the passes once.
 */
#include "nflow.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

/* OpenBLAS's thread control, if this CBLAS is OpenBLAS: nflow's own threads
 * share each training batch, so BLAS runs single-threaded inside them. */
extern void openblas_set_num_threads(int) __attribute__((weak));

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#define TRY(e)                                                            \
    do {                                                                  \
        if ((e) != NF_OK) {                                               \
            fprintf(stderr, "bench: %s: %s\n", #e, nf_last_error());      \
            exit(1);                                                      \
        }                                                                 \
    } while (0)

typedef struct fixed {
    const float *x;
} fixed;

static int same_batch(void *u, nf_rng *r, float *x, size_t n) {
    (void)r;
    memcpy(x, ((fixed *)u)->x, n * 2 * sizeof(float));
    return 0;
}

/* ms per training step at batch b (median of 3 timed runs of `steps`),
 * with the batch split over `threads` threads. */
static double step_ms(const char *spec, size_t b, size_t steps, size_t threads, int split, const char *device) {
    nf_flow *f = NULL;
    TRY(nf_flow_from_spec(spec, 2, 1, &f));
    if (device) TRY(nf_flow_set_device(f, device));
    nf_rng *rng = NULL;
    nf_rng_create(3, &rng);
    float *x = malloc(b * 2 * sizeof(float));
    TRY(nf_data_moons(rng, b, 0.05f, x, NULL));
    fixed fx = {x};
    nf_train_opts o = nf_train_defaults();
    o.batch = b, o.lr = 1e-4f, o.log_every = 0, o.threads = threads, o.split = split;
    double t[3];
    o.steps = 5;
    TRY(nf_flow_fit_stream(f, same_batch, &fx, &o, NULL)); /* warm up */
    o.steps = steps;
    for (int k = 0; k < 3; k++) {
        double t0 = now();
        TRY(nf_flow_fit_stream(f, same_batch, &fx, &o, NULL));
        t[k] = (now() - t0) * 1000 / (double)steps;
    }
    double m = t[0] < t[1] ? (t[1] < t[2] ? t[1] : (t[0] < t[2] ? t[2] : t[0])) : (t[0] < t[2] ? t[0] : (t[1] < t[2] ? t[2] : t[1]));
    free(x);
    nf_rng_free(rng);
    nf_flow_free(f);
    return m;
}

int main(int argc, char **argv) {
    char blas[256];
    const char *better = nf_blas_info(blas, sizeof blas);
    if (argc > 1 && !strcmp(argv[1], "--blas-better")) { /* for bench/run: a faster kernel set, or nothing */
        if (better) puts(better);
        return 0;
    }
    int steps = 1, passes = 1, sgemm = 1, gpu = 0, rows = 0;
    const char *device = NULL;
    int split = NF_SPLIT_AUTO;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--part") && i + 1 < argc) {
            const char *p = argv[++i];
            steps = !strcmp(p, "steps"), passes = !strcmp(p, "passes"), sgemm = passes || !strcmp(p, "sgemm");
            rows = !strcmp(p, "rows");
            if (!steps && !sgemm && !rows) i = argc + 1;
        } else if (!strcmp(argv[i], "--device") && i + 1 < argc) {
            device = argv[++i];
        } else if (!strcmp(argv[i], "--split") && i + 1 < argc) {
            const char *p = argv[++i];
            split = !strcmp(p, "rows") ? NF_SPLIT_ROWS : !strcmp(p, "columns") ? NF_SPLIT_COLUMNS : !strcmp(p, "auto") ? NF_SPLIT_AUTO : -1;
            if (split < 0) i = argc + 1;
        } else if (!strcmp(argv[i], "--gpu")) {
            gpu = 1;
        } else {
            i = argc + 1;
        }
        if (i > argc) {
            fprintf(stderr, "usage: nflow_bench [--part steps|passes|sgemm|rows] [--split rows|columns|auto] [--device D] [--gpu] | --blas-better\n");
            return 2;
        }
    }
    printf("INFO nflow blas %s device %s split %s\n", blas, device ? device : "cpu",
           split == NF_SPLIT_ROWS ? "rows" : split == NF_SPLIT_COLUMNS ? "columns" : "auto");
    const char *rnvp = "realnvp(layers=6, hidden=[256,256])",
               *maf = gpu ? "maf(layers=5, hidden=[256,256], residual=0, scale=unbounded)" : "maf(layers=5, hidden=[256,256])",
               *iaf = "iaf(layers=5, hidden=[256,256])";
    const char *env = getenv("OPENBLAS_NUM_THREADS");
    size_t T = env && atoi(env) > 0 ? (size_t)atoi(env) : 1;
    if (T > 1 && openblas_set_num_threads) openblas_set_num_threads(1); /* training: nflow's threads */
    struct rusage ru;
    if (steps) {
        printf("RESULT realnvp_step_b100 %.4f ms\n", step_ms(rnvp, 100, 200, T, split, device));
        size_t big = device ? 100 : 30; /* steps at batch 1024: a GPU's take far less time */
        printf("RESULT realnvp_step_b1024 %.4f ms\n", step_ms(rnvp, 1024, big, T, split, device));
        if (device) printf("RESULT realnvp_step_b16384 %.4f ms\n", step_ms(rnvp, 16384, 30, T, split, device));
        printf("RESULT maf_step_b100 %.4f ms\n", step_ms(maf, 100, 200, T, split, device));
        printf("RESULT maf_step_b1024 %.4f ms\n", step_ms(maf, 1024, big, T, split, device));
        getrusage(RUSAGE_SELF, &ru);
        printf("RESULT peak_rss %.1f MiB\n", ru.ru_maxrss / 1024.0);
        fflush(stdout);
    }
    if (rows) {
        size_t bs[6] = {6, 12, 25, 50, 100, 200};
        for (int q = 0; q < 6; q++) {
            printf("RESULT realnvp_step_rows%zu %.4f ms\n", bs[q], step_ms(rnvp, bs[q], 200, 1, split, device));
            printf("RESULT maf_step_rows%zu %.4f ms\n", bs[q], step_ms(maf, bs[q], 200, 1, split, device));
            fflush(stdout);
        }
    }
    if (!sgemm) return 0;

    size_t N = gpu ? (size_t)1 << 20 : 1000000;
    float *x = malloc((size_t)N * 2 * sizeof(float)), *lp = malloc(N * sizeof(float));
    nf_rng *rng = NULL;
    nf_rng_create(4, &rng);
    TRY(nf_data_moons(rng, N, 0.05f, x, NULL));
    const char *specs[3] = {rnvp, maf, iaf}, *names[3] = {"realnvp", "maf", "iaf"}, *sz = gpu ? "2p20" : "1M";
    for (int k = 0; passes && k < (device ? 2 : 3); k++) { /* (IAF has no GPU kernels) */
        nf_flow *f = NULL;
        TRY(nf_flow_from_spec(specs[k], 2, 1, &f));
        TRY(nf_flow_set_threads(f, T)); /* chunks over T threads, BLAS single-threaded inside */
        if (device) {
            TRY(nf_flow_set_device(f, device));
            TRY(nf_flow_log_prob(f, x, 4096, lp)); /* warm up: the device's workspace */
            TRY(nf_flow_sample(f, rng, 4096, x));
            TRY(nf_data_moons(rng, N, 0.05f, x, NULL));
        }
        if (k < 2) { /* IAF's density is its slow direction: not benchmarked */
            double t0 = now();
            TRY(nf_flow_log_prob(f, x, N, lp));
            printf("RESULT %s_logprob_%s %.4f s\n", names[k], sz, now() - t0);
        }
        double t0 = now();
        TRY(nf_flow_sample(f, rng, N, x));
        printf("RESULT %s_sample_%s %.4f s\n", names[k], sz, now() - t0);
        fflush(stdout);
        nf_flow_free(f);
        TRY(nf_data_moons(rng, N, 0.05f, x, NULL));
    }
    /* peak memory of the flow workload (before the roofline test's matrices) */
    getrusage(RUSAGE_SELF, &ru);
    printf("RESULT peak_rss %.1f MiB\n", ru.ru_maxrss / 1024.0);
    /* the practical roofline: a 10000x256x256 sgemm on the same threads */
    if (T > 1 && openblas_set_num_threads) openblas_set_num_threads((int)T);
    size_t m = 10000, kk = 256, nn = 256;
    float *A = malloc(m * kk * sizeof(float)), *B = malloc(kk * nn * sizeof(float)), *C = malloc(m * nn * sizeof(float));
    nf_rng_fill_normal(rng, A, m * kk);
    nf_rng_fill_normal(rng, B, kk * nn);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)nn, (int)kk, 1, A, (int)kk, B, (int)kk, 0, C, (int)nn);
    double best = 1e9;
    for (int r = 0; r < 10; r++) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)nn, (int)kk, 1, A, (int)kk, B, (int)kk, 0, C, (int)nn);
        double t = now() - t0;
        if (t < best) best = t;
    }
    printf("RESULT sgemm_10000x256x256 %.2f GFLOP/s\n", 2.0 * (double)(m * kk * nn) / best / 1e9);
    free(A), free(B), free(C), free(x), free(lp);
    nf_rng_free(rng);
    return 0;
}
