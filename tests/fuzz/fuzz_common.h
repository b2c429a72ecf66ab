/*
 * fuzz_common.h - helpers for the libFuzzer targets: the readers take file
 * paths, so inputs go through a per-process temporary file.
 */
#ifndef NF_FUZZ_COMMON_H
#define NF_FUZZ_COMMON_H

#include "nflow.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static inline const char *fuzz_write(const uint8_t *data, size_t size, const char *ext) {
    static char path[256];
    const char *t = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/nflow_fuzz_%d%s", t && *t ? t : "/tmp", (int)getpid(), ext);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    fclose(f);
    return path;
}

#endif
