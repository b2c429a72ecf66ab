/*
 * team.c - the CPU backend on a team of T threads that share each product
 * and element-wise pass of a step by its output's columns (or its rows when
 * the output is narrow), so that a small batch's step splits its networks'
 * work instead of its rows.  Every part writes its own block of the output:
 * a weight gradient is computed once, over the whole batch, by the threads
 * that own its columns; there is no per-thread gradient and no reduction
 * (the row split of pool.c gives each thread a full-size gradient from a
 * few rows, and sums them).
 *
 * A call of the backend is one job: the caller publishes it (a counter, in
 * release order), runs part 0 itself and waits until every worker has
 * counted itself done; workers spin on the counter for a while, then sleep
 * on a condition variable.  Jobs too small to share run on the caller alone.
 * The cuts depend on T and the shapes only, so a result is reproducible for
 * a given T; across T, products may round differently in their last bits.
 * The parts run on min(T, the CPUs online) threads, each taking every W-th
 * part: T threads on fewer cores would spin against each other, and the
 * results do not depend on W.
 */
#include "team.h"

#include "../nn/nn.h"
#include "../train/adam.h"
#include "cpu.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif
#include <sched.h>
#include <unistd.h>

/* Below these sizes a job runs on the caller alone (waking a team costs a
 * few microseconds): multiply-adds of a product, values of a pass. */
enum { MIN_MACS = 1 << 15, MIN_VALUES = 1 << 13, MIN_PART_VALUES = 1 << 11, ALIGN = 16, ROW_ALIGN = 8 };
/* A product's cost of reading (packing) one operand value, in multiply-adds. */
#define PACK_COST 24.0
/* How long a worker spins for the next job before it sleeps, in polls. */
enum { SPIN_POLLS = 1 << 16, YIELD_AFTER = 1 << 12 };

typedef void (*part_fn)(const void *args, size_t part, size_t parts);

struct nf_team {
    nf_backend be; /* first: the backend's functions get the team from `be` */
    size_t T;                  /* the parts a job may be cut into */
    size_t W;                  /* the threads that run them: the caller and W - 1 workers */
    pthread_t th[NF_TEAM_MAX];
    size_t nth; /* workers started */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_ulong gen;    /* jobs published */
    atomic_size_t done;  /* workers finished with the current job */
    atomic_int sleepers; /* workers waiting on cv */
    atomic_int quit;
    /* the current job, written before gen is advanced */
    part_fn fn;
    const void *args;
    size_t parts;
};

typedef struct worker_arg {
    nf_team *t;
    size_t q;
} worker_arg;

/* [*a, *b): part q of [0, n) cut into `parts` at multiples of `al`. */
static void cut(size_t n, size_t parts, size_t q, size_t al, size_t *a, size_t *b) {
    *a = q ? (n * q / parts) / al * al : 0;
    *b = q + 1 < parts ? (n * (q + 1) / parts) / al * al : n;
}

/* Parts for a job of `work` values over `n` units cut at multiples of al. */
static size_t parts_for(const nf_team *t, size_t work, size_t min_work, size_t n, size_t al) {
    if (work < 2 * min_work) return 1;
    size_t p = work / min_work;
    if (p > n / al) p = n / al;
    return p < t->T ? (p ? p : 1) : t->T;
}

static void worker_wait_job(nf_team *t, unsigned long *seen) {
    for (unsigned i = 0; i < SPIN_POLLS; i++) {
        if (atomic_load_explicit(&t->gen, memory_order_acquire) != *seen) goto got;
        if (i >= YIELD_AFTER) sched_yield();
        else CPU_RELAX();
    }
    pthread_mutex_lock(&t->mu);
    atomic_fetch_add(&t->sleepers, 1);
    while (atomic_load(&t->gen) == *seen) pthread_cond_wait(&t->cv, &t->mu);
    atomic_fetch_sub(&t->sleepers, 1);
    pthread_mutex_unlock(&t->mu);
got:
    *seen = atomic_load_explicit(&t->gen, memory_order_acquire);
}

static void *worker_main(void *arg) {
    worker_arg *w = arg;
    nf_team *t = w->t;
    size_t q = w->q;
    free(w);
    unsigned long seen = 0;
    for (;;) {
        worker_wait_job(t, &seen);
        if (atomic_load(&t->quit)) break;
        for (size_t p = q; p < t->parts; p += t->W) t->fn(t->args, p, t->parts);
        atomic_fetch_add_explicit(&t->done, 1, memory_order_release);
    }
    return NULL;
}

/* Runs fn on `parts` parts, the caller doing parts 0, W, 2W, ...; returns when all are done. */
static void run(nf_team *t, part_fn fn, const void *args, size_t parts) {
    if (parts <= 1 || t->W == 1) {
        for (size_t p = 0; p < parts; p++) fn(args, p, parts);
        return;
    }
    t->fn = fn, t->args = args, t->parts = parts;
    atomic_store_explicit(&t->done, 0, memory_order_relaxed);
    atomic_fetch_add(&t->gen, 1); /* (sequentially consistent: ordered before the sleepers' count below) */
    if (atomic_load(&t->sleepers) > 0) {
        pthread_mutex_lock(&t->mu);
        pthread_cond_broadcast(&t->cv);
        pthread_mutex_unlock(&t->mu);
    }
    for (size_t p = 0; p < parts; p += t->W) fn(args, p, parts);
    size_t want = t->nth;
    for (unsigned i = 0; atomic_load_explicit(&t->done, memory_order_acquire) != want; i++) {
        if (i >= YIELD_AFTER) sched_yield();
        else CPU_RELAX();
    }
}

/* ---- the jobs ---------------------------------------------------------------- */

typedef struct gemm_args {
    int ta, tb;
    size_t pr, pc; /* the grid: pr blocks of C's rows by pc blocks of its columns */
    size_t m, n, k, lda, ldb, ldc;
    float alpha, beta;
    const float *A, *B;
    float *C;
    const nf_epi *e;
} gemm_args;

/* Part q: block (q / pc, q % pc) of C, from the same rows of op(A) and columns of op(B). */
static void gemm_part(const void *p, size_t q, size_t parts) {
    const gemm_args *g = p;
    (void)parts;
    size_t r0, r1, c0, c1;
    cut(g->m, g->pr, q / g->pc, ROW_ALIGN, &r0, &r1);
    cut(g->n, g->pc, q % g->pc, ALIGN, &c0, &c1);
    if (r1 <= r0 || c1 <= c0) return;
    const float *A = g->ta ? g->A + r0 : g->A + r0 * g->lda, *B = g->tb ? g->B + c0 * g->ldb : g->B + c0;
    nf__cpu_gemm(NULL, g->ta, g->tb, r1 - r0, c1 - c0, g->k, g->alpha, A, g->lda, B, g->ldb, g->beta,
                 g->C + r0 * g->ldc + c0, g->ldc, NULL);
    nf__epi_apply(g->e, g->C, g->ldc, r0, r1, c0, c1); /* this block's share of the layer's passes */
}

/* The grid of a product on the team: a thread's time taken as its share of
 * the multiply-adds plus PACK_COST per value of the operands it reads (each
 * block packs its rows of op(A) and its columns of op(B)); blocks of at least
 * MIN_MACS, ROW_ALIGN rows and ALIGN columns. */
static void gemm_grid(const nf_team *t, size_t m, size_t n, size_t k, size_t *pr, size_t *pc) {
    double best = (double)m * n * k + PACK_COST * (double)k * (m + n);
    *pr = *pc = 1;
    size_t maxp = m * n * k / MIN_MACS;
    for (size_t r = 1; r <= t->T && r <= m / ROW_ALIGN; r++)
        for (size_t c = 1; r * c <= t->T && r * c <= maxp && (c == 1 || c <= n / ALIGN); c++) {
            double cost = (double)m * n * k / (double)(r * c) + PACK_COST * (double)k * ((double)m / r + (double)n / c);
            if (cost < best * 0.999) best = cost, *pr = r, *pc = c;
        }
}

static void team_gemm(const nf_backend *be, int ta, int tb, size_t m, size_t n, size_t k, float alpha, const float *A,
                      size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc, const nf_epi *e) {
    nf_team *t = (nf_team *)be;
    gemm_args g = {ta, tb, 1, 1, m, n, k, lda, ldb, ldc, alpha, beta, A, B, C, e};
    gemm_grid(t, m, n, k, &g.pr, &g.pc);
    run(t, gemm_part, &g, g.pr * g.pc);
}

typedef struct gemv_args {
    int ta;
    size_t m, n, lda;
    float alpha, beta;
    const float *A, *x;
    float *y;
} gemv_args;

static void gemv_part(const void *p, size_t q, size_t parts) {
    const gemv_args *g = p;
    size_t a, b;
    cut(g->ta ? g->n : g->m, parts, q, ALIGN, &a, &b);
    if (b <= a) return;
    if (g->ta) /* y[a:b] = A[:, a:b]^T x */
        nf__cpu_gemv(NULL, 1, g->m, b - a, g->alpha, g->A + a, g->lda, g->x, g->beta, g->y + a);
    else
        nf__cpu_gemv(NULL, 0, b - a, g->n, g->alpha, g->A + a * g->lda, g->lda, g->x, g->beta, g->y + a);
}

static void team_gemv(const nf_backend *be, int ta, size_t m, size_t n, float alpha, const float *A, size_t lda,
                      const float *x, float beta, float *y) {
    nf_team *t = (nf_team *)be;
    gemv_args g = {ta, m, n, lda, alpha, beta, A, x, y};
    run(t, gemv_part, &g, parts_for(t, m * n, MIN_MACS, ta ? n : m, ALIGN));
}

/* The element-wise passes: one struct, each a part of rows, columns or values. */
typedef struct ew_args {
    nf_activation act;
    float *h, *dst;
    const float *src, *aux;
    size_t n, b;
    const nf_adam *adam;
    float gscale;
    float *p, *m, *v;
    double *sums;
} ew_args;

/* Parts for an element-wise pass of n values (none below MIN_VALUES). */
static size_t ew_parts(const nf_team *t, size_t n, size_t units, size_t al) {
    return n < MIN_VALUES ? 1 : parts_for(t, n, MIN_PART_VALUES, units, al);
}

static void bias_act_part(const void *p, size_t q, size_t parts) {
    const ew_args *e = p;
    size_t a, b;
    cut(e->n, parts, q, 1, &a, &b);
    if (b > a) nf__bias_act_forward(e->act, e->h + a * e->b, e->src, b - a, e->b, e->b);
}

static void team_bias_act_forward(const nf_backend *be, nf_activation act, float *h, const float *bias, size_t n,
                                  size_t b) {
    nf_team *t = (nf_team *)be;
    ew_args e = {.act = act, .h = h, .src = bias, .n = n, .b = b};
    run(t, bias_act_part, &e, ew_parts(t, n * b, n, 1));
}

static void act_backward_part(const void *p, size_t q, size_t parts) {
    const ew_args *e = p;
    size_t a, b;
    cut(e->n, parts, q, ALIGN, &a, &b);
    if (b > a) nf__act_backward(e->act, e->h + a, e->src + a, b - a);
}

static void team_act_backward(const nf_backend *be, nf_activation act, float *g, const float *h, size_t m) {
    nf_team *t = (nf_team *)be;
    ew_args e = {.act = act, .h = g, .src = h, .n = m};
    run(t, act_backward_part, &e, ew_parts(t, m, m, ALIGN));
}

static void bias_grad_part(const void *p, size_t q, size_t parts) {
    const ew_args *e = p;
    size_t a, b;
    cut(e->b, parts, q, ALIGN, &a, &b);
    if (b > a) nf__bias_grad(e->h + a, e->src + a, e->n, b - a, e->b);
}

static void team_bias_grad(const nf_backend *be, float *db, const float *g, size_t n, size_t b) {
    nf_team *t = (nf_team *)be;
    ew_args e = {.h = db, .src = g, .n = n, .b = b};
    run(t, bias_grad_part, &e, ew_parts(t, n * b, b, ALIGN));
}

static void adam_part(const void *p, size_t q, size_t parts) {
    const ew_args *e = p;
    size_t a, b;
    cut(e->n, parts, q, ALIGN, &a, &b);
    if (b > a) nf__adam_apply(e->adam, e->gscale, e->p + a, e->h + a, e->m + a, e->v + a, b - a);
}

static void team_adam(const nf_backend *be, const nf_adam *ad, float gscale, float *p, float *g, float *m, float *v,
                      size_t n) {
    nf_team *t = (nf_team *)be;
    ew_args e = {.h = g, .n = n, .adam = ad, .gscale = gscale, .p = p, .m = m, .v = v};
    run(t, adam_part, &e, ew_parts(t, n, n, ALIGN));
}

static void sum_squares_part(const void *p, size_t q, size_t parts) {
    const ew_args *e = p;
    size_t a, b;
    cut(e->n, parts, q, ALIGN, &a, &b);
    e->sums[q] = b > a ? nf__sum_squares(e->src + a, b - a) : 0;
}

/* The parts' sums added in part order: fixed for a given T. */
static double team_sum_squares(const nf_backend *be, const float *g, size_t n) {
    nf_team *t = (nf_team *)be;
    double sums[NF_TEAM_MAX];
    ew_args e = {.src = g, .n = n, .sums = sums};
    size_t parts = ew_parts(t, n, n, ALIGN);
    run(t, sum_squares_part, &e, parts);
    double s = 0;
    for (size_t q = 0; q < parts; q++) s += sums[q];
    return s;
}

static void mask_acc_part(const void *p, size_t q, size_t parts) {
    const ew_args *e = p;
    size_t a, b;
    cut(e->n, parts, q, ALIGN, &a, &b);
    if (b > a) nf__mask_acc(e->h + a, e->src + a, e->aux + a, b - a);
}

static void team_mask_acc(const nf_backend *be, float *dW, const float *G, const float *M, size_t n) {
    nf_team *t = (nf_team *)be;
    ew_args e = {.h = dW, .src = G, .aux = M, .n = n};
    run(t, mask_acc_part, &e, ew_parts(t, n, n, ALIGN));
}

/* ---- the team ------------------------------------------------------------------ */

void nf__team_free(nf_team *t) {
    if (!t) return;
    pthread_mutex_lock(&t->mu);
    atomic_store(&t->quit, 1);
    atomic_fetch_add(&t->gen, 1);
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    for (size_t q = 0; q < t->nth; q++) pthread_join(t->th[q], NULL);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    free(t);
}

size_t nf__threads_for(size_t T) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    size_t w = cpus > 0 && (size_t)cpus < T ? (size_t)cpus : T;
    return w ? w : 1;
}

nf_status nf__team_create(size_t T, size_t W, nf_team **out) {
    *out = NULL;
    if (T < 2 || T > NF_TEAM_MAX) return nf__err(NF_ERR_ARG, "a team needs 2 to %d threads, got %zu", NF_TEAM_MAX, T);
    if (!W) W = nf__threads_for(T);
    if (W > T) W = T;
    nf_team *t = calloc(1, sizeof *t);
    if (!t) return nf__err(NF_ERR_NOMEM, "out of memory for a team of %zu threads", T);
    t->be = (nf_backend){"cpu team",     team_gemm, team_gemv,        team_bias_act_forward, team_act_backward,
                         team_bias_grad, team_adam, team_sum_squares, team_mask_acc};
    t->T = T;
    t->W = W;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    atomic_init(&t->gen, 0);
    atomic_init(&t->done, 0);
    atomic_init(&t->sleepers, 0);
    atomic_init(&t->quit, 0);
    for (size_t q = 1; q < W; q++) {
        worker_arg *w = malloc(sizeof *w);
        if (w) *w = (worker_arg){t, q};
        if (!w || pthread_create(&t->th[t->nth], NULL, worker_main, w)) {
            free(w);
            nf__team_free(t);
            return nf__err(NF_ERR_NOMEM, "cannot start %zu training threads", T);
        }
        t->nth++;
    }
    *out = t;
    return NF_OK;
}

const nf_backend *nf__team_backend(const nf_team *t) { return &t->be; }
