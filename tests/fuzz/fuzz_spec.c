/* libFuzzer target: the spec parser and builders must never crash, whatever
 * the text; sizes are bounded so nothing huge is allocated. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 4096) return 0;
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = 0;
    nf_flow *f = NULL;
    if (nf_flow_from_spec(s, 2, 1, &f) == NF_OK) nf_flow_free(f);
    else if (f || !nf_last_error()[0]) abort();
    nf_rng *rng = NULL;
    nf_rng_create(1, &rng);
    nf_dist *dist = NULL;
    if (nf_dist_from_spec(s, rng, &dist) == NF_OK) nf_dist_free(dist);
    nf_rng_free(rng);
    free(s);
    return 0;
}
