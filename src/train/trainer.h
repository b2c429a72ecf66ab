/*
 * trainer.h - the training engine's private interface (docs/architecture.md).
 *
 * Every public fit call (fit.c) is one loop (loop.c) fed by
 *   - a batch source: what fills the step's batch t->x (rows of an array in
 *     shuffled epochs, a sampler callback, base samples), and
 *   - an objective:  the loss of a slot's rows and its gradient (NLL through
 *     the inverse, objective_nll.c; reverse KL through the forward,
 *     objective_kl.c).
 * One step is always
 *   batch -> objective on T slots (pool.c) -> fixed-order sum of the slots'
 *   gradients -> REDUCE HOOK (opts->reduce: an all-reduce across processes)
 *   -> norm, clipping -> Adam (split over the slots) -> history, callback ->
 *   checkpoint (checkpoint.c) -> early stopping.
 * Buffers are sized once by nf__trainer_init; a step allocates nothing.
 */
#ifndef NF_TRAINER_H
#define NF_TRAINER_H

#include "../flow/flow.h"
#include "adam.h"

#include <pthread.h>

#define NF_MAX_THREADS 64

typedef struct nf_trainer nf_trainer;
typedef struct nf_dtrain nf_dtrain; /* device/dtrain.c */
typedef struct nf_team nf_team;     /* backend/team.c */

/* One thread's share of a step: rows [r0, r0 + m) of the batch, its own
 * workspace and (but for slot 0, which uses the trainer's) gradient buffer. */
typedef struct nf_slot {
    unsigned char *mem;
    void *tape, *bscratch, *dscratch;
    float *u, *v, *w;          /* rows x d each, the objective's to use */
    float *ldj, *lp, *lt, *gl; /* rows each */
    float *grad;               /* P: this slot's gradient (slot 0: the trainer's) */
    double sum;                /* the objective's per-row terms summed over its rows */
    double sq;                 /* sum of squares of the reduced gradient over its parameter share */
    nf_status st;
    char msg[512];
    nf_trainer *owner;
} nf_slot;

/* What a step minimises.  run() computes slot w's rows [r0, r0 + m) of the
 * k-row batch: w->sum (summed per-row terms), and with `grad` the gradient of
 * the mean loss into w->grad (accumulating); on failure w->st and w->msg.
 * loss() turns the slots' summed terms into the mean loss of the k rows. */
typedef struct nf_objective {
    const char *name;
    void (*run)(nf_trainer *t, nf_slot *w, size_t r0, size_t m, size_t k, int grad);
    double (*loss)(const nf_trainer *t, double sum, size_t k);
} nf_objective;

extern const nf_objective nf__objective_nll;        /* maximum likelihood, data -> base */
extern const nf_objective nf__objective_reverse_kl; /* reverse KL, base -> data */

/* Where the batches come from.  next() fills t->x (and t->ctx) with the
 * next step's rows (model space) and says how many.  An array source's
 * epoch ends when its position `pos` returns to 0. */
typedef struct nf_source nf_source;
struct nf_source {
    const char *mode; /* the checkpoint's train.mode: "epochs", "stream", "reverse_kl" */
    nf_status (*next)(nf_source *src, nf_trainer *t, nf_rng *rng, size_t *k);
    size_t step; /* rows per step (an epoch's last step may have fewer) */
    /* epochs over an array (validation, early stopping) */
    const float *data;
    size_t ntr, nval, D, pos, *idx;
    size_t nsteps, j; /* across processes: steps per epoch (each a part of the rows), the next one */
    int wrapped;      /* the step just taken ended an epoch */
    float *vnoise; /* dequantisation (NULL: none): the validation rows' fixed U(0, 1) noise */
    /* streams */
    nf_sampler_fn draw;
    void *user;
};
/* Epochs over ntr training rows of D floats each ([x | context]), followed
 * by nval validation rows; frees with nf__source_free. */
nf_status nf__source_array(nf_source *src, const float *data, size_t ntr, size_t nval, size_t D, size_t step);
void nf__source_free(nf_source *src);
/* Dequantisation of an array source: U(0, 1) noise on the d data values of
 * every row (fresh each epoch for training rows, one draw from `seed` for
 * the validation rows). */
nf_status nf__source_dequantize(nf_source *src, size_t d, uint64_t seed);
nf_source nf__source_sampler(nf_sampler_fn draw, void *user, size_t step);
nf_source nf__source_base(size_t step);
/* The mean NLL of an array source's validation rows (+inf where the model
 * gives some of them density 0). */
nf_status nf__source_validation(nf_source *src, nf_trainer *t, double *nll);

struct nf_trainer {
    nf_flow *f;
    const nf_objective *obj;
    const nf_backend *be; /* the flow's compute backend: networks, Adam, the norm */
    size_t B, d, P, T; /* T: slots (the batch's slices) */
    size_t W;          /* threads that run the slots (pool.c) */
    unsigned char *mem;
    float *x;       /* B x d: the batch (model space; base samples for reverse KL) */
    size_t dc;      /* conditional flows: context values per row */
    float *ctx;     /* B x dc, the batch's context (NULL if dc = 0) */
    float *raw;     /* B x (d + dc), a sampler's rows (conditional streams) */
    float *lpb;     /* B: log-densities of base samples (reverse KL) */
    void *dscratch; /* the base's scratch for B rows */
    float *grad, *m, *v, *best;
    nf_adam adam;
    float clip, gscale; /* gscale: the clipping factor of this step's gradient */
    double norm;        /* of the last step's gradient, before clipping */
    size_t stepno;      /* the step being taken (1-based) */
    /* reverse KL */
    nf_log_density_fn target;
    void *target_user;
    size_t anneal_steps;
    /* across processes (opts->comm with size > 1; else NULL) */
    const nf_comm *comm;
    double kglob; /* the rows of the last evaluated step over all processes */
    /* the reduction hook (opts->reduce) */
    int (*reduce)(void *user, float *grad, size_t n, double *loss);
    void *reduce_user;
    nf_dtrain *dev; /* the step runs on the flow's device (NULL: the CPU) */
    nf_team *team;  /* split by columns: the CPU backend on `team`'s threads (t->be), one slot */
    nf_slot slots[NF_MAX_THREADS];
    /* the pool (pool.c): T - 1 workers */
    pthread_t th[NF_MAX_THREADS];
    pthread_barrier_t bar;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int pool, quit, ready, start_failed;
    void (*task_a)(nf_trainer *t, size_t s); /* the current task: a, barrier, then b (may be NULL) */
    void (*task_b)(nf_trainer *t, size_t s);
    size_t task_k;
    int task_grad;
};

/* pool.c: sizes every buffer for batches of up to B rows and starts
 * opts->threads - 1 workers; nf__trainer_free joins them and frees all. */
nf_status nf__trainer_init(nf_trainer *t, nf_flow *f, const nf_objective *obj, size_t B, const nf_train_opts *o);
void nf__trainer_free(nf_trainer *t);
/* Runs the objective on the k rows in t->x over all slots; with `grad` the
 * slots' gradients are summed into t->grad in slot order.  *loss: the mean. */
nf_status nf__trainer_eval(nf_trainer *t, size_t k, int grad, double *loss);
/* A step that failed before its evaluation (status st): across processes
 * it still takes part in the step's sums, so every process fails it. */
nf_status nf__trainer_fail(nf_trainer *t, nf_status st);
/* One Adam step with t->gscale over all slots. */
void nf__trainer_adam(nf_trainer *t);

/* device/dtrain.c: the step on the flow's device.  init sets t->dev when
 * the flow has a device (refusing objectives and set-ups it cannot run);
 * upload copies the host's parameters, moments and Adam's count to the
 * device; step runs one step on the k rows in t->x (loss read later);
 * sync brings parameters, moments and the first bad step (0: none) back,
 * and with sum non-NULL the period's summed log p and its rows (starting
 * the next period's); eval is
 * nf__trainer_eval without the gradient. */
nf_status nf__dtrain_init(nf_trainer *t);
void nf__dtrain_free(nf_trainer *t);
nf_status nf__dtrain_upload(nf_trainer *t);
nf_status nf__dtrain_step(nf_trainer *t, size_t k);
nf_status nf__dtrain_sync(nf_trainer *t, double *sum, double *rows, size_t *bad);
nf_status nf__dtrain_eval(nf_trainer *t, size_t k, double *loss);

/* loop.c: the one loop.  src fills the batches; opts say how many steps
 * (epochs of an array source, else steps), the checkpoints, the callback. */
nf_status nf__train_loop(nf_trainer *t, nf_source *src, const nf_train_opts *o, nf_train_report *rep);

/* checkpoint.c: the loop's counters, saved with the parameters, Adam's
 * moments, the best parameters and the RNG. */
typedef struct nf_loop_state {
    const char *mode;
    size_t step, epoch, logs, cnt, best_epoch, since;
    double acc, best;
    double *htrain, *hval; /* `logs` entries each */
} nf_loop_state;
nf_status nf__checkpoint_save(const nf_trainer *t, const char *path, const nf_rng *rng, const nf_loop_state *c);
/* Restores a checkpoint into t, rng and c (whose histories hold hist_cap). */
nf_status nf__checkpoint_load(nf_trainer *t, const char *path, nf_rng *rng, nf_loop_state *c, size_t hist_cap);

#endif
