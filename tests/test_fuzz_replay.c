/*
 * test_fuzz_replay.c - replays the fuzz seed corpora and every saved crash
 * input (tests/fuzz/regressions/<target>/) through the readers on each test
 * run: each must load or fail with a message, never crash (and ASan checks
 * them in the sanitizer build).
 */
#include "test.h"

#include <dirent.h>
#include <stdlib.h>

static int replay(const char *target, const char *path) {
    nf_last_error();
    if (!strcmp(target, "csv") || !strcmp(target, "npy")) {
        float *x = NULL;
        size_t n, d;
        nf_status s = nf_read_table(path, &x, &n, &d);
        int ok = s == NF_OK ? x != NULL : x == NULL && nf_last_error()[0];
        free(x);
        return ok;
    }
    if (!strcmp(target, "model")) {
        nf_flow *f = NULL;
        nf_status s = nf_flow_load(path, &f);
        int ok = s == NF_OK ? f != NULL : f == NULL && nf_last_error()[0];
        nf_flow_free(f);
        return ok;
    }
    FILE *fp = fopen(path, "rb");
    if (!fp) return 0;
    char buf[4097];
    size_t k = fread(buf, 1, 4096, fp);
    fclose(fp);
    buf[k] = 0;
    nf_flow *f = NULL;
    nf_status s = nf_flow_from_spec(buf, 2, 1, &f);
    int ok = s == NF_OK ? f != NULL : f == NULL && nf_last_error()[0];
    nf_flow_free(f);
    return ok;
}

void test_fuzz_replay(void) {
    const char *targets[] = {"csv", "npy", "model", "spec"}, *dirs[] = {"corpus", "regressions"};
    for (int t = 0; t < 4; t++)
        for (int k = 0; k < 2; k++) {
            char dir[512];
            snprintf(dir, sizeof dir, "tests/fuzz/%s/%s", dirs[k], targets[t]);
            DIR *dp = opendir(dir);
            CHECK(dp != NULL, "cannot open %s", dir);
            if (!dp) continue;
            struct dirent *e;
            while ((e = readdir(dp))) {
                if (e->d_name[0] == '.') continue;
                char path[1024];
                snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
                CHECK(replay(targets[t], path), "%s: %s failed without a message", targets[t], path);
            }
            closedir(dp);
        }
}
