/*
 * flow_spec.c - the spec-built constructor: the spec language (spec/) makes
 * the base and the bijector; the flow keeps the spec and the seed, so that
 * its model file can be loaded back.
 */
#include "flow.h"
#include "../spec/spec.h"

#include <stdlib.h>
#include <string.h>

nf_status nf_flow_from_spec(const char *spec, size_t d, uint64_t seed, nf_flow **out) {
    return nf__flow_from_spec(spec, d, seed, NF_SPEC_DEFAULTS, out);
}

nf_status nf__flow_from_spec(const char *spec, size_t d, uint64_t seed, int defaults, nf_flow **out) {
    const char *fn = "nf_flow_from_spec";
    if (!out) return nf__err(NF_ERR_ARG, "%s: out is NULL", fn);
    *out = NULL;
    if (d == 0) return nf__err(NF_ERR_ARG, "%s: dimension must be >= 1", fn);
    nf_rng *rng = NULL;
    NF_TRY(nf_rng_create(seed, &rng));
    nf_dist *base = NULL;
    nf_bijector *b = NULL;
    nf_status s = nf__spec_flow_parts(spec, d, rng, defaults, &base, &b);
    nf_rng_free(rng);
    if (!s && (s = nf_flow_create(b, base, out))) {
        nf_bijector_free(b);
        nf_dist_free(base);
    }
    if (!s) {
        (*out)->spec = strdup(spec);
        (*out)->build_seed = seed;
        (*out)->spec_defaults = defaults;
        if (!(*out)->spec) {
            nf_flow_free(*out);
            *out = NULL;
            s = nf__err(NF_ERR_NOMEM, "out of memory");
        }
    }
    return s ? nf__err_prefix(s, fn) : NF_OK;
}
