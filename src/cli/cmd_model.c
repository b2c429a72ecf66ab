/*
 * cmd_model.c - subcommands on a saved model: sample, logprob, info, plot.
 */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *HELP_SAMPLE =
    "usage: nflow sample --model M -n N --out FILE [--seed S] [--with-log-prob] [--context V,...] [--threads T]\n"
    "\n"
    "Draws N samples from a trained flow (forward direction: base -> data) and\n"
    "writes them as CSV or .npy (by extension; '-' is stdout), in the data's\n"
    "units.  --with-log-prob adds a last column with each sample's log-density.\n"
    "A conditional model needs --context: its context values (e.g. --context 1),\n"
    "the same for every sample.  --threads T splits the work into chunks over T\n"
    "threads (BLAS runs one thread inside nflow's): the samples equal a\n"
    "one-thread run's.\n";
static const char *HELP_LOGPROB =
    "usage: nflow logprob --model M --in FILE --out FILE [--threads T]\n"
    "\n"
    "Writes the log-density of every row of FILE (CSV or .npy, '-' for stdin)\n"
    "under the model (inverse direction: data -> base), one value per row, in\n"
    "the units of the data.  For a conditional model each row is the point\n"
    "followed by its context values: log p(x | c).  --threads T splits the rows\n"
    "into chunks over T threads (BLAS runs one thread inside nflow's; the values\n"
    "equal a one-thread run's).\n";
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
    "is a CSV/.npy file or a generated set (moons, circles, ...; --n points).\n"
    "A conditional model draws samples for each context found in --data (rows:\n"
    "point, then context; a generated set gives its label as the context).\n";

/* Loads a model; threads > 1 (--threads) splits its passes into chunks over
 * that many threads. */
static int load(const char *cmd, const char *path, size_t threads, nf_flow **f) {
    if (!path) return fail(cmd, EXIT_USAGE, "--model is required");
    if (nf_flow_load(path, f)) return fail(cmd, EXIT_DATA, "%s", nf_last_error());
    if (threads <= 1) return 0;
    if (nf_flow_set_threads(*f, threads)) {
        int rc = fail(cmd, EXIT_USAGE, "%s", nf_last_error());
        nf_flow_free(*f);
        *f = NULL;
        return rc;
    }
    return 0;
}

/* The header of a sample file: the model's column names (saved by nflow
 * train from the data's header) or x1, x2, ...; then log_prob. */
static char *sample_header(const nf_flow *f, int with_lp) {
    size_t d = nf_flow_dim(f), cap = 16;
    for (size_t j = 0; j < d; j++) cap += (nf_flow_column_name(f, j) ? strlen(nf_flow_column_name(f, j)) : 0) + 24;
    char *h = malloc(cap);
    size_t len = 0;
    for (size_t j = 0; h && j < d; j++) {
        const char *nm = nf_flow_column_name(f, j);
        if (nm) len += (size_t)snprintf(h + len, cap - len, "%s%s", j ? "," : "", nm);
        else len += (size_t)snprintf(h + len, cap - len, "%sx%zu", j ? "," : "", j + 1);
    }
    if (h && with_lp) snprintf(h + len, cap - len, ",log_prob");
    return h;
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
    const char *ctxs = opt_str(&a, "--context", NULL);
    size_t threads = (size_t)opt_num(&a, "--threads", 1, 1, 64);
    rc = args_check_all_used(&a);
    args_free(&a);
    if (rc) return rc;
    if (!out || n == 0) return fail(cmd, EXIT_USAGE, "-n N and --out FILE are required");
    nf_flow *f = NULL;
    if ((rc = load(cmd, model, threads, &f))) return rc;
    size_t d = nf_flow_dim(f), w = d + (with_lp ? 1 : 0), dc = nf_flow_context_dim(f);
    float *ctx = NULL;
    if (dc || ctxs) { /* --context V1,...,Vdc for every sample */
        float v[64];
        size_t k = 0;
        for (const char *p = ctxs; p && *p && k < 64;) {
            char *end;
            double val = strtod(p, &end);
            if (end == p || !isfinite(val) || (*end && *end != ',')) break;
            v[k++] = (float)val;
            p = *end ? end + 1 : end;
        }
        if (!ctxs || k != dc) {
            nf_flow_free(f);
            return fail(cmd, EXIT_USAGE, "the model takes a context of %zu values: give --context with %zu numbers", dc, dc);
        }
        ctx = malloc(n * dc * sizeof(float));
        for (size_t i = 0; ctx && i < n; i++) memcpy(ctx + i * dc, v, dc * sizeof(float));
    }
    float *x = malloc(n * d * sizeof(float)), *lp = malloc(n * sizeof(float)), *o = malloc(n * w * sizeof(float));
    nf_rng *rng = NULL;
    nf_rng_create(seed, &rng);
    nf_status s = !x || !lp || !o || (dc && !ctx) ? NF_ERR_NOMEM
                  : with_lp ? nf_flow_sample_and_log_prob_ctx(f, rng, ctx, n, x, lp)
                            : nf_flow_sample_ctx(f, rng, ctx, n, x);
    if (s) rc = fail(cmd, s == NF_ERR_NOMEM ? EXIT_DATA : EXIT_NUMERIC, "%s", s == NF_ERR_NOMEM ? "out of memory" : nf_last_error());
    if (!rc) {
        for (size_t i = 0; i < n; i++) {
            memcpy(o + i * w, x + i * d, d * sizeof(float));
            if (with_lp) o[i * w + d] = lp[i];
        }
        char *header = sample_header(f, with_lp); /* the training data's column names, or x1, x2, ... */
        if (!header || nf_write_table(out, o, n, w, header))
            rc = fail(cmd, EXIT_DATA, "%s", header ? nf_last_error() : "out of memory");
        free(header);
    }
    free(x), free(lp), free(o), free(ctx);
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
    size_t threads = (size_t)opt_num(&a, "--threads", 1, 1, 64);
    rc = args_check_all_used(&a);
    args_free(&a);
    if (rc) return rc;
    if (!in || !out) return fail(cmd, EXIT_USAGE, "--in FILE and --out FILE are required");
    nf_flow *f = NULL;
    if ((rc = load(cmd, model, threads, &f))) return rc;
    float *x = NULL;
    size_t n, d;
    size_t fd = nf_flow_dim(f), dc = nf_flow_context_dim(f);
    if (nf_read_table(in, &x, &n, &d)) rc = fail(cmd, EXIT_DATA, "%s", nf_last_error());
    else if (d != fd + dc)
        rc = fail(cmd, EXIT_DATA, "%s has %zu columns but the model needs %zu (dimension %zu%s)", in, d, fd + dc, fd,
                  dc ? " plus its context" : "");
    float *lp = rc ? NULL : malloc(n * sizeof(float)), *c = rc || !dc ? NULL : malloc(n * dc * sizeof(float));
    if (!rc && dc && c) split_context_rows(x, n, fd, dc, x, c);
    if (!rc && (!lp || (dc && !c) || nf_flow_log_prob_ctx(f, x, c, n, lp))) rc = fail(cmd, EXIT_NUMERIC, "%s", nf_last_error());
    free(c);
    if (!rc && nf_write_vector(out, lp, n, "log_prob")) rc = fail(cmd, EXIT_DATA, "%s", nf_last_error());
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
    if ((rc = load(cmd, model, 1, &f))) return rc;
    printf("model:      %s\nspec:       %s\ndimension:  %zu\nparameters: %zu\n", model, nf_flow_spec(f), nf_flow_dim(f),
           nf_flow_param_count(f));
    if (nf_flow_context_dim(f))
        printf("context:    %zu values per point (conditional: sample --context, logprob rows [x | c])\n",
               nf_flow_context_dim(f));
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
    const char *columns = opt_str(&a, "--columns", NULL), *drop = opt_str(&a, "--drop", NULL);
    size_t n = (size_t)opt_num(&a, "--n", 2000, 1, 1e7);
    int grid = (int)opt_num(&a, "--grid", 200, 2, 2000);
    rc = args_check_all_used(&a);
    args_free(&a);
    if (rc) return rc;
    if (!out) return fail(cmd, EXIT_USAGE, "--out DIR is required");
    if (strcmp(fmt, "png") && strcmp(fmt, "svg") && strcmp(fmt, "pdf")) return fail(cmd, EXIT_USAGE, "--format must be png, svg or pdf");
    nf_flow *f = NULL;
    if ((rc = load(cmd, model, 1, &f))) return rc;
    float *x = NULL;
    size_t d = nf_flow_dim(f), dc = nf_flow_context_dim(f);
    if (data && rows_generated(data)) {
        nf_rng *rng = NULL;
        nf_rng_create(99, &rng);
        rows_src g = {.data = data, .noise = 0.05f, .labels = dc > 0};
        x = malloc(n * 3 * sizeof(float));
        if (d != 2 || dc > 1)
            rc = fail(cmd, EXIT_DATA, "generated data are 2-D with a label but the model's dimension is %zu (context %zu)", d, dc);
        else if (!x || rows_generate(&g, rng, n, x))
            rc = fail(cmd, EXIT_DATA, "%s", nf_last_error());
        nf_rng_free(rng);
    } else if (data) {
        size_t dd, dcf;
        rows_src g = {.data = data, .columns = columns, .drop = drop};
        rc = rows_read(cmd, &g, &x, &n, &dd, &dcf, NULL);
        if (!rc && dd != d + dc) rc = fail(cmd, EXIT_DATA, "%s has %zu columns, the model needs %zu", data, dd, d + dc);
    }
    if (!rc && mkdir_p(out, NULL, 0)) rc = fail(cmd, EXIT_DATA, "cannot create %s: %s", out, strerror(errno));
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
