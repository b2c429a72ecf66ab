/* libFuzzer target: the CSV reader. */
#define FUZZ_EXT ".csv"
#include "fuzz_table.h"
