/*
 * alloc.c - aligned allocation for workspaces (64-byte, cache-line and
 * AVX-512 friendly).
 *
 * Blocks of NF_MAP_MIN bytes or more are mapped from the kernel directly and
 * unmapped when freed.  glibc's malloc would serve them itself: it raises
 * its mmap threshold to the size of each large block freed, after which a
 * training run's workspaces come from the heap and stay resident when freed
 * (12.8 MiB more resident memory after each call of a RealNVP fit here,
 * until it settled near 74 MiB).  Mapped blocks leave no such trace.
 * Sanitizer builds and runs under valgrind use malloc for everything, so
 * that a workspace overrun is still caught at its first byte.
 *
 * Every block carries a 64-byte header in front of it: how it was obtained
 * and, for a mapping, its base and length.
 */
#define _DEFAULT_SOURCE
#include "core.h"

#include <stdint.h>
#include <stdlib.h>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#if defined(MAP_ANONYMOUS)
#define NF_HAVE_MAP 1
#endif
#endif

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer) || __has_feature(thread_sanitizer)
#define NF_MALLOC_ONLY 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define NF_MALLOC_ONLY 1
#endif

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

#define NF_MAP_MIN ((size_t)1 << 20)
#define HDR NF_ALIGN_BYTES

typedef struct header {
    uint32_t magic; /* MAGIC_HEAP or MAGIC_MAP */
    void *base;     /* what to give back */
    size_t len;     /* mapping length */
} header;
_Static_assert(sizeof(header) <= HDR, "allocation header must fit its slot");

enum { MAGIC_HEAP = 0x6e66686du, MAGIC_MAP = 0x6e666d6du };

void *nf__aligned_alloc(size_t bytes) {
    size_t sz = nf__align(bytes ? bytes : 1);
    if (sz < bytes || sz > SIZE_MAX / 2) return NULL;
    unsigned char *base = NULL;
    header h = {MAGIC_HEAP, NULL, 0};
#if defined(NF_HAVE_MAP) && !defined(NF_MALLOC_ONLY)
    if (sz >= NF_MAP_MIN && !RUNNING_ON_VALGRIND) {
        void *p = mmap(NULL, sz + HDR, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return NULL;
        base = p; /* page-aligned, so base + HDR is 64-byte aligned */
        h = (header){MAGIC_MAP, p, sz + HDR};
    }
#endif
    if (!base) {
        base = aligned_alloc(NF_ALIGN_BYTES, sz + HDR);
        if (!base) return NULL;
        h.base = base;
    }
    *(header *)base = h;
    return base + HDR;
}

int nf__alloc_maps_large(void) {
#if defined(NF_HAVE_MAP) && !defined(NF_MALLOC_ONLY)
    return !RUNNING_ON_VALGRIND;
#else
    return 0;
#endif
}

void nf__aligned_free(void *p) {
    if (!p) return;
    header *h = (header *)((unsigned char *)p - HDR);
#if defined(NF_HAVE_MAP)
    if (h->magic == MAGIC_MAP) {
        munmap(h->base, h->len);
        return;
    }
#endif
    free(h->base);
}
