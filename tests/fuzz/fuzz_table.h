/*
 * fuzz_table.h - the body shared by the CSV and NPY targets: the table
 * reader must never crash, must return finite data, and must say why it
 * failed.  FUZZ_EXT picks the reader by extension.
 */
#include "fuzz_common.h"

#include <math.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    float *x = NULL;
    size_t n = 0, d = 0;
    if (nf_read_table(fuzz_write(data, size, FUZZ_EXT), &x, &n, &d) == NF_OK) {
        if (!x || n == 0 || d == 0) abort();
        for (size_t i = 0; i < n * d; i++)
            if (!isfinite(x[i])) abort();
    } else if (x || !nf_last_error()[0]) {
        abort(); /* failures return no data and always say why */
    }
    free(x);
    return 0;
}
