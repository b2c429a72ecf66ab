/*
 * tensor.c - emitting a parameter tensor record (tensor.h).
 */
#include "tensor.h"

#include <stdio.h>
#include <string.h>

nf_status nf__emit(nf_tensor_fn fn, void *ctx, const char *prefix, const char *name, size_t off, size_t rows,
                   size_t cols) {
    nf_tensor_info t;
    memset(&t, 0, sizeof t);
    snprintf(t.name, sizeof t.name, "%s%s", prefix, name);
    t.ndim = rows ? 2 : 1;
    t.shape[0] = rows ? rows : cols;
    t.shape[1] = rows ? cols : 0;
    t.count = rows ? rows * cols : cols;
    t.offset = off;
    return fn(ctx, &t);
}
