/*
 * prog.h - a flow compiled for a device (dev.h): its layers, their
 * parameters in one device buffer laid out as the flow's own (flow.h), and
 * workspaces sized once for batches of up to R rows.  The families a device
 * runs: couplings (RealNVP, NICE, spline couplings; MLP networks, plain or
 * residual), permutations, ActNorm, batch norm (a training step's
 * statistics and running averages, as batchnorm.c), Glow's LU map, MAF layers, affine or spline (density
 * in one pass, sampling in d) and their inversions (IAF: density in d
 * passes, its backward in d sweeps), on a diagonal normal base, with or
 * without context rows (conditional flows); anything else is refused by name when the program
 * is built.  A program is used by one thread at a time.
 */
#ifndef NF_PROG_H
#define NF_PROG_H

#include "dev.h"
#include "../flow/flow.h"

typedef struct nf_dprog nf_dprog;

/* A flow's device state (device.c; flow.h's nf_flow.dev). */
void nf__flow_dev_free(nf_flow_dev *fd);
/* Sets f's device to ops' unit `index` (NULL ops: the CPU); for the tests,
 * which run the host device (dev.h), and nf_flow_set_device. */
nf_status nf__flow_set_device_ops(nf_flow *f, const nf_dev_ops *ops, int index);
/* The one-off calls on f's device (flow.c calls them after its checks):
 * x in data units; lp and z as nf__dprog_log_prob's (without the scaler's
 * log std). */
nf_status nf__flow_dev_density(const nf_flow *f, const float *x, const float *ctx, size_t n, float *lp, float *z);
/* n samples drawn as nf__dprog_sample does, in model space; lpb (may be
 * NULL) their base log-densities, ldj (may be NULL) += the forward log-det. */
nf_status nf__flow_dev_sample(const nf_flow *f, nf_rng *rng, const float *ctx, size_t n, float *x, float *lpb,
                              float *ldj);

/* An opened device (one per flow that computes on one). */
typedef struct nf_device {
    const nf_dev_ops *ops;
    void *st;
    int index;
    char name[32]; /* "cuda:0" */
} nf_device;

/* Opens ops' unit `index`; frees with nf__device_close. */
nf_status nf__device_open(const nf_dev_ops *ops, int index, nf_device **out);
void nf__device_close(nf_device *dv);
/* The device a flow computes on (NULL: the CPU). */
nf_device *nf__flow_dev_device(const nf_flow *f);

/* Whether the device runs f; a message naming the first layer it cannot. */
nf_status nf__dprog_check(const nf_flow *f, const char *device);
/* Compiles f for batches of up to R rows; train: keeps what a backward pass
 * needs and allocates gradients and Adam's moments. */
nf_status nf__dprog_create(const nf_flow *f, nf_device *dv, size_t R, int train, nf_dprog **out);
void nf__dprog_free(nf_dprog *p);
/* Rows (256..cap) whose evaluation workspace fits in about `bytes`. */
size_t nf__dprog_rows_for(const nf_flow *f, size_t bytes, size_t cap);
/* The device's parameters from host values (the flow's layout; MADE masks
 * applied on the way), or back to the host. */
nf_status nf__dprog_put_params(nf_dprog *p, const float *params);
nf_status nf__dprog_get_params(nf_dprog *p, float *params);
/* The base log-density plus the inverse's log-det of n host rows in model
 * space (with their n x dc context rows ctx, conditional flows), into host
 * lp (n; may be NULL), and their base points into host z (n x d; may be
 * NULL).  Chunks of R.  The overlap of z and x is allowed. */
nf_status nf__dprog_log_prob(nf_dprog *p, const float *x, const float *ctx, size_t n, float *lp, float *z);
/* n samples: base points drawn from the host generator rng as the CPU's
 * normal base draws them (the same words, the Box-Muller transform on the
 * device; rng left as after the CPU's draws), mapped forward: into host x,
 * their base log-densities into lpb (may be NULL), the forward log-det
 * added into ldj (may be NULL).  Chunks of R rows. */
nf_status nf__dprog_sample(nf_dprog *p, nf_rng *rng, const float *ctx, size_t n, float *x, float *lpb, float *ldj);

/* Training (dtrain.c uses these): the device buffers and one step's parts. */
typedef struct nf_dprog_train {
    float *p, *g, *mv; /* parameters, gradient, Adam's m then v (2P) */
    double *state;     /* ST_N doubles (kern.h) */
    float *batch;      /* R x d: the step's rows */
    float *ctx;        /* R x dc: their context (conditional flows; else NULL) */
    size_t P, R, d;
} nf_dprog_train;
const nf_dprog_train *nf__dprog_buffers(const nf_dprog *p);
nf_device *nf__dprog_device(const nf_dprog *p);
/* On the k rows in the batch buffer: the loss's terms (state ST_LOSS: sum
 * of log p) and, with grad, the gradient of the mean NLL into g and its
 * squared norm (ST_SQ).  No host synchronisation. */
void nf__dprog_nll(nf_dprog *p, size_t k, int grad);
/* Reverse KL (training through the sampling direction): the forward pass of
 * k host base points z, taped, into host y and the forward log-det fldj;
 * then, given the host gradients gy = dL/dy and gl = dL/dfldj, the
 * backward pass into the device gradient and its squared norm (ST_SQ). */
nf_status nf__dprog_kl_forward(nf_dprog *p, const float *z, size_t k, float *y, float *fldj);
nf_status nf__dprog_kl_backward(nf_dprog *p, size_t k, const float *gy, const float *gl);

#endif
