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
    "                    [--device cpu|cuda[:K]]\n"
    "\n"
    "Draws N samples from a trained flow (forward direction: base -> data) and\n"
    "writes them as CSV or .npy (by extension; '-' is stdout), in the data's\n"
    "units.  --with-log-prob adds a last column with each sample's log-density.\n"
    "A conditional model needs --context: its context values (e.g. --context 1),\n"
    "the same for every sample.  --threads T splits the work into chunks over T\n"
    "threads (BLAS runs one thread inside nflow's): the samples equal a\n"
    "one-thread run's.  Samples are drawn in blocks of 65,536 rows, each from its\n"
    "own stream of the seed, so `mpirun -np N nflow sample` (MPI build) writes\n"
    "the same file as one process, each rank drawing and writing its rows.\n"
    "--device cuda[:K] samples on GPU K (make CUDA=1 builds it) from the same\n"
    "random words as the CPU, so the samples equal the CPU's to rounding.\n";
static const char *HELP_LOGPROB =
    "usage: nflow logprob --model M --in FILE --out FILE [--threads T] [--device cpu|cuda[:K]]\n"
    "\n"
    "Writes the log-density of every row of FILE (CSV or .npy, '-' for stdin)\n"
    "under the model (inverse direction: data -> base), one value per row, in\n"
    "the units of the data.  For a conditional model each row is the point\n"
    "followed by its context values: log p(x | c).  --threads T splits the rows\n"
    "into chunks over T threads (BLAS runs one thread inside nflow's; the values\n"
    "equal a one-thread run's).  Under `mpirun -np N` (MPI build) each rank reads\n"
    "its part of FILE (.npy by offset, CSV by byte ranges at line starts) and\n"
    "writes its values into the one output file: the same bytes as one process.\n"
    "--device cuda[:K] computes on GPU K (make CUDA=1 builds it; fp32, equal to\n"
    "the CPU's values to rounding).\n";
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
static int load(const char *cmd, const char *path, size_t threads, const char *device, nf_flow **f) {
    if (!path) return fail(cmd, EXIT_USAGE, "--model is required");
    if (nf_flow_load(path, f)) return fail(cmd, EXIT_DATA, "%s", nf_last_error());
    int rc = set_device(cmd, *f, device);
    if (!rc && threads > 1 && nf_flow_set_threads(*f, threads)) rc = fail(cmd, EXIT_USAGE, "%s", nf_last_error());
    if (rc) {
        nf_flow_free(*f);
        *f = NULL;
    }
    return rc;
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

/* Samples are drawn in blocks of this many rows, block b from the seed
 * block_seed(seed, b) (block 0 from the seed itself). */
#define SAMPLE_BLOCK ((size_t)65536)
static uint64_t block_seed(uint64_t seed, uint64_t b) {
    uint64_t z = seed + b * 0x9e3779b97f4a7c15ull; /* splitmix64 of the block */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int cmd_sample(int argc, char **argv, const par *procs) {
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
    const char *device = opt_str(&a, "--device", NULL);
    rc = args_check_all_used(&a);
    args_free(&a);
    if (rc) return rc;
    if (!out || n == 0) return fail(cmd, EXIT_USAGE, "-n N and --out FILE are required");
    nf_flow *f = NULL;
    if ((rc = load(cmd, model, threads, device, &f))) return rc;
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
        size_t rows = n < SAMPLE_BLOCK ? n : SAMPLE_BLOCK;
        ctx = malloc(rows * dc * sizeof(float));
        for (size_t i = 0; ctx && i < rows; i++) memcpy(ctx + i * dc, v, dc * sizeof(float));
    }
    /* rows [r0, r1): all of them, or this process's part */
    size_t r0, r1;
    par_range(procs, n, &r0, &r1);
    size_t m = r1 - r0, B = SAMPLE_BLOCK < n ? SAMPLE_BLOCK : n;
    float *x = malloc(B * d * sizeof(float)), *lp = malloc(B * sizeof(float)), *o = malloc(m * w * sizeof(float) + 1);
    nf_rng *rng = NULL;
    nf_status s = !x || !lp || !o || (dc && !ctx) ? NF_ERR_NOMEM : NF_OK;
    /* block b of SAMPLE_BLOCK rows from its own stream (block 0: the seed's): the file does not depend on the
     * number of processes */
    for (size_t b = r0 / SAMPLE_BLOCK; !s && b * SAMPLE_BLOCK < r1; b++) {
        size_t b0 = b * SAMPLE_BLOCK, k = n - b0 < SAMPLE_BLOCK ? n - b0 : SAMPLE_BLOCK;
        nf_rng_free(rng);
        rng = NULL;
        if ((s = nf_rng_create(b ? block_seed(seed, b) : seed, &rng))) break;
        s = with_lp ? nf_flow_sample_and_log_prob_ctx(f, rng, ctx, k, x, lp) : nf_flow_sample_ctx(f, rng, ctx, k, x);
        for (size_t i = b0 > r0 ? b0 : r0; !s && i < b0 + k && i < r1; i++) {
            memcpy(o + (i - r0) * w, x + (i - b0) * d, d * sizeof(float));
            if (with_lp) o[(i - r0) * w + d] = lp[i - b0];
        }
    }
    if (s) rc = fail(cmd, s == NF_ERR_NOMEM ? EXIT_DATA : EXIT_NUMERIC, "%s", s == NF_ERR_NOMEM ? "out of memory" : nf_last_error());
    char *header = rc ? NULL : sample_header(f, with_lp); /* the training data's column names, or x1, x2, ... */
    if (!rc && !header) rc = fail(cmd, EXIT_DATA, "out of memory");
    rc = par_agree(procs, rc);
    if (!rc) rc = par_write_table(procs, cmd, out, o, m, w, header, 0);
    free(header);
    free(x), free(lp), free(o), free(ctx);
    nf_rng_free(rng);
    nf_flow_free(f);
    return rc;
}

/* log p of this process's n rows x (row g0 onwards of all N) into lp, in
 * the one-process run's chunks of NF_CHUNK_ROWS: the rows go into one call
 * that starts at a chunk boundary, the chunks cut by this part's ends filled
 * up with copies of a row of ours, so every row is computed at its
 * one-process position and its bits are the same. */
static nf_status logprob_aligned(const nf_flow *f, const float *x, const float *c, size_t n, size_t g0, size_t N,
                                 float *lp) {
    if (!n) return NF_OK;
    size_t d = nf_flow_dim(f), dc = nf_flow_context_dim(f), C = NF_CHUNK_ROWS;
    size_t a = g0 / C * C, b = (g0 + n + C - 1) / C * C, k; /* [a, b): whole chunks around ours */
    if (b > N) b = N;
    k = b - a;
    float *bx = malloc(k * d * sizeof(float)), *bc = malloc(k * (dc ? dc : 1) * sizeof(float)), *bl = malloc(k * sizeof(float));
    nf_status s = bx && bc && bl ? NF_OK : NF_ERR_NOMEM;
    for (size_t i = 0; !s && i < k; i++) {
        size_t g = a + i, src = g < g0 ? 0 : g >= g0 + n ? n - 1 : g - g0; /* ours, or a stand-in */
        memcpy(bx + i * d, x + src * d, d * sizeof(float));
        if (dc) memcpy(bc + i * dc, c + src * dc, dc * sizeof(float));
    }
    if (!s) s = nf_flow_log_prob_ctx(f, bx, dc ? bc : NULL, k, bl);
    if (!s) memcpy(lp, bl + (g0 - a), n * sizeof(float));
    free(bx), free(bc), free(bl);
    return s;
}

int cmd_logprob(int argc, char **argv, const par *procs) {
    const char *cmd = "logprob";
    args a;
    int rc = help_or_init(&a, cmd, argc, argv, HELP_LOGPROB);
    if (rc) return rc < 0 ? 0 : rc;
    const char *model = opt_str(&a, "--model", NULL), *in = opt_str(&a, "--in", NULL), *out = opt_str(&a, "--out", NULL);
    size_t threads = (size_t)opt_num(&a, "--threads", 1, 1, 64);
    const char *device = opt_str(&a, "--device", NULL);
    rc = args_check_all_used(&a);
    args_free(&a);
    if (rc) return rc;
    if (!in || !out) return fail(cmd, EXIT_USAGE, "--in FILE and --out FILE are required");
    nf_flow *f = NULL;
    if ((rc = load(cmd, model, threads, device, &f))) return rc;
    float *x = NULL;
    size_t n = 0, d = 0;
    size_t fd = nf_flow_dim(f), dc = nf_flow_context_dim(f);
    /* several processes: each its part of the rows (nf_read_table_part), one output file */
    if (procs->size > 1 ? nf_read_table_part(in, (size_t)procs->rank, (size_t)procs->size, &x, &n, &d, NULL)
                      : nf_read_table(in, &x, &n, &d))
        rc = fail(cmd, EXIT_DATA, "%s", nf_last_error());
    else if (d != fd + dc)
        rc = fail(cmd, EXIT_DATA, "%s has %zu columns but the model needs %zu (dimension %zu%s)", in, d, fd + dc, fd,
                  dc ? " plus its context" : "");
    float *lp = rc ? NULL : malloc(n * sizeof(float) + 1), *c = rc || !dc ? NULL : malloc(n * dc * sizeof(float) + 1);
    if (!rc && dc && c) split_context_rows(x, n, fd, dc, x, c);
    size_t g0, N; /* this part's first row among all N */
    if (par_offset(procs, n, &g0, &N)) rc = EXIT_DATA;
    if (!rc && (!lp || (dc && !c) ||
                (procs->size > 1 ? logprob_aligned(f, x, c, n, g0, N, lp) : nf_flow_log_prob_ctx(f, x, c, n, lp))))
        rc = fail(cmd, EXIT_NUMERIC, "%s", nf_last_error());
    free(c);
    rc = par_agree(procs, rc);
    if (!rc) rc = par_write_table(procs, cmd, out, lp, n, 1, "log_prob", 1);
    free(x), free(lp);
    nf_flow_free(f);
    return rc;
}

int cmd_info(int argc, char **argv, const par *procs) {
    (void)procs; /* one process (main.c refuses several) */
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
    if ((rc = load(cmd, model, 1, NULL, &f))) return rc;
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

int cmd_plot(int argc, char **argv, const par *procs) {
    (void)procs; /* one process (main.c refuses several) */
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
    if ((rc = load(cmd, model, 1, NULL, &f))) return rc;
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
