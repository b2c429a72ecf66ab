/*
 * comm.c - collectives over a user's nf_comm (nflow.h): the few operations
 * the training engine needs across processes, all built on the transport's
 * two sums.  Every process calls them in the same order.
 */
#include "core.h"

#include <string.h>

int nf__comm_on(const nf_comm *c) { return c && c->size > 1; }

nf_status nf__comm_check(const nf_comm *c) {
    if (!c) return NF_OK;
    if (c->size < 1 || c->rank < 0 || c->rank >= c->size)
        return nf__err(NF_ERR_ARG, "comm: rank %d of %d processes is not a valid rank", c->rank, c->size);
    if (c->size > 1 && (!c->sum_floats || !c->sum_doubles))
        return nf__err(NF_ERR_ARG, "comm: sum_floats and sum_doubles must be set");
    return NF_OK;
}

nf_status nf__comm_sum_d(const nf_comm *c, double *buf, size_t n) {
    int rc = c->sum_doubles(c->user, buf, n);
    return rc ? nf__err(NF_ERR_IO, "the sum across processes failed (code %d, %zu doubles)", rc, n) : NF_OK;
}

nf_status nf__comm_sum_f(const nf_comm *c, float *buf, size_t n) {
    int rc = c->sum_floats(c->user, buf, n);
    return rc ? nf__err(NF_ERR_IO, "the sum across processes failed (code %d, %zu floats)", rc, n) : NF_OK;
}

nf_status nf__comm_agree(const nf_comm *c, nf_status st) {
    if (!nf__comm_on(c)) return st;
    double v[2] = {st ? 1.0 : 0.0, st ? (double)st : 0.0};
    nf_status s = nf__comm_sum_d(c, v, 2);
    if (st) return st; /* this process's own failure, with its own message */
    if (s) return s;
    if (v[0] > 0) {
        nf_status code = v[0] == 1 ? (nf_status)(int)v[1] : NF_ERR_ARG;
        return nf__err(code, "%g other process%s failed (%s message%s say%s why)", v[0], v[0] > 1 ? "es" : "",
                       v[0] > 1 ? "their" : "its", v[0] > 1 ? "s" : "", v[0] > 1 ? "" : "s");
    }
    return NF_OK;
}

nf_status nf__comm_bcast_f(const nf_comm *c, float *x, size_t n) {
    if (!nf__comm_on(c)) return NF_OK;
    /* a sum with -0.0 from every other rank: exact, and keeps rank 0's signed zeros */
    if (c->rank != 0)
        for (size_t i = 0; i < n; i++) x[i] = -0.0f;
    return nf__comm_sum_f(c, x, n);
}

nf_status nf__comm_same(const nf_comm *c, const float *x, size_t n, int *same) {
    *same = 1;
    if (!nf__comm_on(c)) return NF_OK;
    uint64_t h = 1469598103934665603ull; /* FNV-1a over the bytes */
    const unsigned char *b = (const unsigned char *)x;
    for (size_t i = 0; i < n * sizeof(float); i++) h = (h ^ b[i]) * 1099511628211ull;
    /* four 16-bit pieces and their squares: equal on every process iff the
     * variance of each piece is 0, which integer-valued doubles decide exactly */
    double v[8];
    for (int q = 0; q < 4; q++) {
        v[q] = (double)((h >> (16 * q)) & 0xffff);
        v[4 + q] = v[q] * v[q];
    }
    NF_TRY(nf__comm_sum_d(c, v, 8));
    for (int q = 0; q < 4; q++)
        if (v[q] * v[q] != (double)c->size * v[4 + q]) *same = 0;
    return NF_OK;
}

size_t nf__part(size_t n, size_t parts, size_t i) { /* n * i / parts without overflow */
    return (n / parts) * i + (n % parts) * i / parts;
}
