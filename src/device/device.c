/*
 * device.c - a flow's device (nf_flow_set_device): opening it, the
 * one-off calls (log_prob, to_base, samples) through a device program
 * built on first use, and what nflow was built with.  A flow's device
 * calls are serialised by the device's lock (the CPU path runs calls of a
 * const flow concurrently; a device program is one set of buffers).
 */
#include "prog.h"
#include "../core/core.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rows per device chunk of the one-off calls (a million-point log_prob is
 * one chunk), and the device memory their workspace may take. */
#define DEV_CHUNK_ROWS ((size_t)1 << 20)
#define DEV_CHUNK_BYTES ((size_t)2 << 30)

struct nf_flow_dev {
    nf_device *dv;
    nf_dprog *eval; /* built on first use */
    pthread_mutex_t mu;
};

static nf_status open_on(nf_flow *f, const nf_dev_ops *ops, int index, int tf32) {
    nf_device *dv = NULL;
    NF_TRY(nf__device_open(ops, index, &dv));
    nf_status s = NF_OK;
    if (tf32 && !ops->set_tf32) s = nf__err(NF_ERR_UNSUPPORTED, "%s does not offer TF32", dv->name);
    if (tf32 && !s) {
        ops->set_tf32(dv->st, 1);
        size_t len = strlen(dv->name);
        snprintf(dv->name + len, sizeof dv->name - len, ",tf32");
    }
    if (!s) s = nf__dprog_check(f, dv->name);
    nf_flow_dev *fd = s ? NULL : calloc(1, sizeof *fd);
    if (!s && !fd) s = nf__err(NF_ERR_NOMEM, "out of memory");
    if (s) {
        nf__device_close(dv);
        return s;
    }
    fd->dv = dv;
    pthread_mutex_init(&fd->mu, NULL);
    nf__flow_dev_free(f->dev);
    f->dev = fd;
    return NF_OK;
}

void nf__flow_dev_free(nf_flow_dev *fd) {
    if (!fd) return;
    nf__dprog_free(fd->eval);
    nf__device_close(fd->dv);
    pthread_mutex_destroy(&fd->mu);
    free(fd);
}

nf_status nf__flow_set_device_ops(nf_flow *f, const nf_dev_ops *ops, int index) {
    if (!ops) {
        nf__flow_dev_free(f->dev);
        f->dev = NULL;
        return NF_OK;
    }
    return open_on(f, ops, index, 0);
}

int nf_cuda_available(void) {
#ifdef NF_CUDA
    return 1;
#else
    return 0;
#endif
}

nf_status nf_flow_set_device(nf_flow *f, const char *device) {
    const char *fn = "nf_flow_set_device";
    if (!f || !device) return nf__err(NF_ERR_ARG, "%s: flow and device must not be NULL", fn);
    if (strcmp(device, "cpu") == 0) return nf__flow_set_device_ops(f, NULL, 0);
    int index = 0;
    size_t len = strlen(device);
    int tf32 = len > 5 && strcmp(device + len - 5, ",tf32") == 0; /* "cuda,tf32", "cuda:1,tf32" */
    if (tf32) len -= 5;
    if (len >= 4 && strncmp(device, "cuda", 4) == 0 && (len == 4 || device[4] == ':')) {
        if (len > 4) {
            char *end;
            long k = strtol(device + 5, &end, 10);
            if (end == device + 5 || end != device + len || k < 0 || k > 1024)
                return nf__err(NF_ERR_ARG, "%s: \"%s\": the GPU's number after cuda: must be 0..1024", fn, device);
            index = (int)k;
        }
#ifdef NF_CUDA
        return nf__err_prefix(open_on(f, &nf__dev_cuda, index, tf32), fn);
#else
        (void)index;
        return nf__err(NF_ERR_UNSUPPORTED, "%s: \"%s\": this nflow was built without CUDA (build with make CUDA=1)", fn,
                       device);
#endif
    }
    return nf__err(NF_ERR_ARG, "%s: unknown device \"%s\" (cpu, cuda or cuda:K, with ,tf32 for TF32 products)", fn,
                   device);
}

const char *nf_flow_device(const nf_flow *f) { return f && f->dev ? f->dev->dv->name : "cpu"; }

/* Rows per chunk for f: up to DEV_CHUNK_ROWS, as many as fit in DEV_CHUNK_BYTES. */
static size_t chunk_rows(const nf_flow *f) {
    size_t cap = f->dev->dv->ops->chunk_rows;
    return nf__dprog_rows_for(f, DEV_CHUNK_BYTES, cap < DEV_CHUNK_ROWS ? cap : DEV_CHUNK_ROWS);
}

static nf_status eval_prog(const nf_flow *f, nf_flow_dev *fd) {
    if (!fd->eval) NF_TRY(nf__dprog_create(f, fd->dv, chunk_rows(f), 0, &fd->eval));
    return nf__dprog_put_params(fd->eval, f->params); /* the host's values are the flow's */
}

nf_status nf__flow_dev_density(const nf_flow *f, const float *x, const float *ctx, size_t n, float *lp, float *z) {
    nf_flow_dev *fd = f->dev;
    size_t d = f->d, m = chunk_rows(f);
    float *buf = malloc((n < m ? n : m) * d * sizeof(float));
    if (!buf) return nf__err(NF_ERR_NOMEM, "out of memory");
    pthread_mutex_lock(&fd->mu);
    nf_status s = eval_prog(f, fd);
    for (size_t r = 0; r < n && !s; r += m) {
        size_t k = n - r < m ? n - r : m;
        memcpy(buf, x + r * d, k * d * sizeof(float));
        nf__flow_scale_in(f, buf, k);
        s = nf__dprog_log_prob(fd->eval, buf, ctx ? ctx + r * f->bij->dc : NULL, k, lp ? lp + r : NULL, z ? z + r * d : NULL);
    }
    pthread_mutex_unlock(&fd->mu);
    free(buf);
    return s;
}

nf_status nf__flow_dev_sample(const nf_flow *f, nf_rng *rng, const float *ctx, size_t n, float *x, float *lpb,
                              float *ldj) {
    nf_flow_dev *fd = f->dev;
    pthread_mutex_lock(&fd->mu);
    nf_status s = eval_prog(f, fd);
    if (!s) s = nf__dprog_sample(fd->eval, rng, ctx, n, x, lpb, ldj);
    pthread_mutex_unlock(&fd->mu);
    return s;
}

nf_device *nf__flow_dev_device(const nf_flow *f) { return f->dev ? f->dev->dv : NULL; }
