/* libFuzzer target: the NPY reader. */
#define FUZZ_EXT ".npy"
#include "fuzz_table.h"
