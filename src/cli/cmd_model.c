/*
 * cmd_model.c - subcommands on a saved model: sample, logprob, info, plot.
 */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *HELP_SAMPLE =
    "usage: nflow sample --model M -n N --out FILE [--seed S] [--with-log-prob]\n"
    "\n"
    "Draws N samples from a trained flow (forward direction: base -> data) and\n"
    "writes them as CSV or .npy (by extension; '-' is stdout), in the data's\n"
    "units.  --with-log-prob adds a last column with each sample's log-density.\n";
static const char *HELP_LOGPROB =
    "usage: nflow logprob --model M --in FILE --out FILE\n"
    "\n"
    "Writes the log-density of every row of FILE (CSV or .npy, '-' for stdin)\n"
    "under the model (inverse direction: data -> base), one value per row, in\n"
    "the units of the data.\n";
static const char *HELP_INFO =
    "usage: nflow info --model M\n"
    "\n"
    "Prints a model file's spec, dimension, parameter count, scaler and\n"
    "training summary.\n";
static const char *HELP_PLOT =
    "usage: nflow plot --model M --out DIR [--data FILE|NAME] [--n N] [--grid G] [--format png|svg|pdf]\n"
    "\n"
    "Draws a model's figures into DIR: data vs samples, the learned density\n"
    "(2-D), dataflowr's 2x2 figure and the samples after each bijector.  --data\n"
    "is a CSV/.npy file or a generated set (moons, circles, ...; --n points).\n";

static int load(const char *cmd, const char *path, nf_flow **f) {
    if (!path) return fail(cmd, EXIT_USAGE, "--model is required");
    if (nf_flow_load(path, f)) return fail(cmd, EXIT_DATA, "%s", nf_last_error());
    return 0;
}

int cmd_sample(int argc, char **argv) {
    const char *cmd = "sample";
    args a;
    int rc = help_or_init(&a, cmd, argc, argv, HELP_SAMPLE);
    if (rc) return rc < 0 ? 0 : rc;
    const char *model = opt_str(&a, "--model", NULL), *out = opt_str(&a, "--out", NULL);
    size_t n = (size_t)opt_num(&a, "-n", 0, 1, 1e9);
    uint64_t seed = (uint64_t)opt_num(&a, "--seed", 0, 0, 1.8e19);
    int with_lp = opt_flag(&a, "--with-log-prob");
    rc = args_check_all_used(&a);
    args_free(&a);
    if (rc) return rc;
    if (!out || n == 0) return fail(cmd, EXIT_USAGE, "-n N and --out FILE are required");
    nf_flow *f = NULL;
    if ((rc = load(cmd, model, &f))) return rc;
    size_t d = nf_flow_dim(f), w = d + (with_lp ? 1 : 0);
    float *x = malloc(n * d * sizeof(float)), *lp = malloc(n * sizeof(float)), *o = malloc(n * w * sizeof(float));
    nf_rng *rng = NULL;
    nf_rng_create(seed, &rng);
    nf_status s = !x || !lp || !o ? NF_ERR_NOMEM : with_lp ? nf_flow_sample_and_log_prob(f, rng, n, x, lp) : nf_flow_sample(f, rng, n, x);
    if (s) rc = fail(cmd, s == NF_ERR_NOMEM ? EXIT_DATA : EXIT_NUMERIC, "%s", s == NF_ERR_NOMEM ? "out of memory" : nf_last_error());
    if (!rc) {
        for (size_t i = 0; i < n; i++) {
            memcpy(o + i * w, x + i * d, d * sizeof(float));
            if (with_lp) o[i * w + d] = lp[i];
        }
        char header[256] = "", col[32];
        for (size_t j = 0; j < d && strlen(header) < 200; j++) {
            snprintf(col, sizeof col, "%sx%zu", j ? "," : "", j + 1);
            strncat(header, col, sizeof header - strlen(header) - 1);
        }
        if (with_lp) strncat(header, ",log_prob", sizeof header - strlen(header) - 1);
        if (nf_write_table(out, o, n, w, header)) rc = fail(cmd, EXIT_DATA, "%s", nf_last_error());
    }
    free(x), free(lp), free(o);
    nf_rng_free(rng);
    nf_flow_free(f);
    return rc;
}

int cmd_logprob(int argc, char **argv) {
    const char *cmd = "logprob";
    args a;
    int rc = help_or_init(&a, cmd, argc, argv, HELP_LOGPROB);
    if (rc) return rc < 0 ? 0 : rc;
    const char *model = opt_str(&a, "--model", NULL), *in = opt_str(&a, "--in", NULL), *out = opt_str(&a, "--out", NULL);
    rc = args_check_all_used(&a);
    args_free(&a);
    if (rc) return rc;
    if (!in || !out) return fail(cmd, EXIT_USAGE, "--in FILE and --out FILE are required");
    nf_flow *f = NULL;
    if ((rc = load(cmd, model, &f))) return rc;
    float *x = NULL;
    size_t n, d;
    if (nf_read_table(in, &x, &n, &d)) rc = fail(cmd, EXIT_DATA, "%s", nf_last_error());
    else if (d != nf_flow_dim(f))
        rc = fail(cmd, EXIT_DATA, "%s has %zu columns but the model's dimension is %zu", in, d, nf_flow_dim(f));
    float *lp = rc ? NULL : malloc(n * sizeof(float));
    if (!rc && (!lp || nf_flow_log_prob(f, x, n, lp))) rc = fail(cmd, EXIT_NUMERIC, "%s", nf_last_error());
    if (!rc && nf_write_table(out, lp, n, 1, "log_prob")) rc = fail(cmd, EXIT_DATA, "%s", nf_last_error());
    free(x), free(lp);
    nf_flow_free(f);
    return rc;
}

int cmd_info(int argc, char **argv) {
    const char *cmd = "info";
    args a;
    int rc = help_or_init(&a, cmd, argc, argv, HELP_INFO);
    if (rc) return rc < 0 ? 0 : rc;
    const char *model = opt_str(&a, "--model", NULL);
    if (!model) model = arg_positional(&a, 0);
    rc = args_check_all_used(&a);
    args_free(&a);
    if (rc) return rc;
    nf_flow *f = NULL;
    if ((rc = load(cmd, model, &f))) return rc;
    printf("model:      %s\nspec:       %s\ndimension:  %zu\nparameters: %zu\n", model, nf_flow_spec(f), nf_flow_dim(f),
           nf_flow_param_count(f));
    const float *m, *s;
    if (nf_flow_scaler(f, &m, &s)) {
        printf("scaler:     mean [");
        for (size_t j = 0; j < nf_flow_dim(f); j++) printf("%s%g", j ? ", " : "", m[j]);
        printf("], std [");
        for (size_t j = 0; j < nf_flow_dim(f); j++) printf("%s%g", j ? ", " : "", s[j]);
        printf("]\n");
    }
    char *v = NULL;
    if (nf_model_metadata(model, "summary", &v) == NF_OK) printf("training:   %s\n", v);
    free(v);
    nf_flow_free(f);
    return 0;
}

int cmd_plot(int argc, char **argv) {
    const char *cmd = "plot";
    args a;
    int rc = help_or_init(&a, cmd, argc, argv, HELP_PLOT);
    if (rc) return rc < 0 ? 0 : rc;
    const char *model = opt_str(&a, "--model", NULL), *out = opt_str(&a, "--out", NULL), *data = opt_str(&a, "--data", NULL);
    const char *fmt = opt_str(&a, "--format", "png");
    size_t n = (size_t)opt_num(&a, "--n", 2000, 1, 1e7);
    int grid = (int)opt_num(&a, "--grid", 200, 2, 2000);
    rc = args_check_all_used(&a);
    args_free(&a);
    if (rc) return rc;
    if (!out) return fail(cmd, EXIT_USAGE, "--out DIR is required");
    if (strcmp(fmt, "png") && strcmp(fmt, "svg") && strcmp(fmt, "pdf")) return fail(cmd, EXIT_USAGE, "--format must be png, svg or pdf");
    nf_flow *f = NULL;
    if ((rc = load(cmd, model, &f))) return rc;
    float *x = NULL;
    size_t d = nf_flow_dim(f);
    if (data) {
        nf_rng *rng = NULL;
        nf_rng_create(99, &rng);
        float *g = malloc(n * 2 * sizeof(float));
        if (g && nf_data_generate(data, rng, n, 0.05f, g, NULL) == NF_OK) {
            x = g;
            if (d != 2) rc = fail(cmd, EXIT_DATA, "generated data are 2-D but the model's dimension is %zu", d);
        } else {
            free(g);
            size_t dd;
            if (nf_read_table(data, &x, &n, &dd)) rc = fail(cmd, EXIT_DATA, "%s", nf_last_error());
            else if (dd != d) rc = fail(cmd, EXIT_DATA, "%s has %zu columns, the model %zu", data, dd, d);
        }
        nf_rng_free(rng);
    }
    char mk[4200];
    snprintf(mk, sizeof mk, "mkdir -p '%s'", out);
    if (!rc && strchr(out, '\'') == NULL && system(mk) != 0) rc = fail(cmd, EXIT_DATA, "cannot create %s", out);
    run_info info;
    memset(&info, 0, sizeof info);
    info.format = fmt;
    info.grid = grid;
    char names[16][64];
    int nfig = 0;
    if (!rc) rc = make_figures(cmd, f, x, x ? n : 0, out, &info, names, &nfig);
    if (!rc)
        for (int i = 0; i < nfig; i++) printf("%s/%s\n", out, names[i]);
    free(x);
    nf_flow_free(f);
    return rc;
}
