/*
 * rng.c - seedable, reproducible random numbers.
 *
 * xoshiro256** (Blackman & Vigna, 2018) seeded from a 64-bit seed through
 * splitmix64, so the same seed gives the same stream on every machine.
 * Normal draws use Box-Muller in double precision; the second value of each
 * pair is kept in the generator's state, so single and batched draws give
 * the same sequence.
 */
#include "core.h"

#include <stdlib.h>
#include <string.h>

struct nf_rng {
    uint64_t s[4];
    int has_spare;
    double spare;
};

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

nf_status nf_rng_create(uint64_t seed, nf_rng **out) {
    if (!out) return nf__err(NF_ERR_ARG, "nf_rng_create: out is NULL");
    *out = NULL;
    nf_rng *r = calloc(1, sizeof *r);
    if (!r) return nf__err(NF_ERR_NOMEM, "nf_rng_create: out of memory");
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
    *out = r;
    return NF_OK;
}

void nf_rng_free(nf_rng *rng) { free(rng); }

void nf__rng_seed(nf_rng *r, uint64_t seed, uint64_t stream) {
    uint64_t x = seed, y = stream;
    x ^= splitmix64(&y); /* the stream through its own mixer, then the seed's */
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
    r->has_spare = 0;
    r->spare = 0;
}

void nf__rng_get_state(const nf_rng *r, uint64_t st[6]) {
    for (int i = 0; i < 4; i++) st[i] = r->s[i];
    st[4] = (uint64_t)r->has_spare;
    memcpy(&st[5], &r->spare, sizeof(double));
}

int nf__rng_set_state(nf_rng *r, const uint64_t st[6]) {
    if ((st[0] | st[1] | st[2] | st[3]) == 0 || st[4] > 1) return -1; /* xoshiro's state is never all zero */
    for (int i = 0; i < 4; i++) r->s[i] = st[i];
    r->has_spare = (int)st[4];
    memcpy(&r->spare, &st[5], sizeof(double));
    return 0;
}

uint64_t nf_rng_u64(nf_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t nf_rng_below(nf_rng *r, uint64_t bound) {
    if (bound <= 1) return 0;
    /* Rejection sampling: no modulo bias. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    uint64_t v;
    do v = nf_rng_u64(r);
    while (v >= limit);
    return v % bound;
}

float nf_rng_uniform(nf_rng *r) { return (float)(nf_rng_u64(r) >> 40) * 0x1.0p-24f; }

/* Uniform on (0, 1) in double, never 0 (53 bits). */
static double uniform_open(nf_rng *r) { return nf__u53(nf_rng_u64(r)); }

static double normal_double(nf_rng *r) {
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    double u1 = uniform_open(r), u2 = uniform_open(r);
    r->has_spare = 1;
    return nf__box_muller(u1, u2, &r->spare);
}

float nf_rng_normal(nf_rng *r) { return (float)normal_double(r); }

void nf_rng_fill_uniform(nf_rng *r, float *out, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = nf_rng_uniform(r);
}

void nf_rng_fill_normal(nf_rng *r, float *out, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = (float)normal_double(r);
}
