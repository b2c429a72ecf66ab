/* libFuzzer target: the model-file loader must never crash; a model it
 * accepts must evaluate without errors on a few points. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    nf_flow *f = NULL;
    if (nf_flow_load(fuzz_write(data, size, ".nflow"), &f) == NF_OK) {
        size_t d = nf_flow_dim(f), dc = nf_flow_context_dim(f);
        if (d <= 16 && dc <= 16) {
            float x[64] = {0}, c[64] = {0}, lp[4];
            /* 4 rows of d <= 16 (and their context): may fail cleanly, never crash */
            nf_flow_log_prob_ctx(f, x, dc ? c : NULL, 4, lp);
        }
        nf_flow_free(f);
    } else if (f || !nf_last_error()[0]) {
        abort();
    }
    return 0;
}
