/*
 * cmd_data.c - nflow data: writes a generated toy data set.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static const char *HELP =
    "usage: nflow data NAME -n N --out FILE [--noise F] [--seed S] [--labels]\n"
    "\n"
    "Writes N points of a 2-D toy data set as CSV or .npy ('-' is stdout).\n"
    "NAME: moons (scikit-learn's make_moons), circles (make_circles, factor\n"
    "0.8), 8gaussians, checkerboard, spirals, pinwheel.  --noise adds Gaussian\n"
    "noise of that standard deviation (default 0.05).  --labels adds a column\n"
    "with each point's component.\n";

int cmd_data(int argc, char **argv, const par *procs) {
    (void)procs; /* one process (main.c refuses several) */
    const char *cmd = "data";
    args a;
    int hrc = help_or_init(&a, cmd, argc, argv, HELP);
    if (hrc) return hrc < 0 ? 0 : hrc;
    size_t n = (size_t)opt_num(&a, "-n", 1000, 1, 1e9);
    float noise = (float)opt_num(&a, "--noise", 0.05, 0, 1e6);
    uint64_t seed = (uint64_t)opt_num(&a, "--seed", 0, 0, 1.8e19);
    const char *out = opt_str(&a, "--out", NULL);
    int labels = opt_flag(&a, "--labels");
    const char *name = arg_positional(&a, 0);
    int rc = args_check_all_used(&a);
    args_free(&a);
    if (rc) return rc;
    if (!name || !out) return fail(cmd, EXIT_USAGE, "a data set NAME and --out FILE are required");
    nf_rng *rng = NULL;
    nf_rng_create(seed, &rng);
    float *x = malloc(n * 3 * sizeof(float)), *o = malloc(n * 3 * sizeof(float));
    int *lab = malloc(n * sizeof(int));
    if (!x || !o || !lab) rc = fail(cmd, EXIT_DATA, "out of memory");
    else if (nf_data_generate(name, rng, n, noise, x, lab)) rc = fail(cmd, EXIT_USAGE, "%s", nf_last_error());
    else {
        size_t w = labels ? 3 : 2;
        for (size_t i = 0; i < n; i++) {
            o[i * w] = x[2 * i], o[i * w + 1] = x[2 * i + 1];
            if (labels) o[i * w + 2] = (float)lab[i];
        }
        if (nf_write_table(out, o, n, w, labels ? "x1,x2,label" : "x1,x2")) rc = fail(cmd, EXIT_DATA, "%s", nf_last_error());
    }
    free(x), free(o), free(lab);
    nf_rng_free(rng);
    return rc;
}
