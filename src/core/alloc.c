/*
 * alloc.c - aligned allocation for workspaces (64-byte, cache-line and
 * AVX-512 friendly).
 */
#include "core.h"

#include <stdlib.h>

void *nf__aligned_alloc(size_t bytes) {
    size_t sz = nf__align(bytes ? bytes : 1);
    return aligned_alloc(NF_ALIGN_BYTES, sz);
}

void nf__aligned_free(void *p) { free(p); }
