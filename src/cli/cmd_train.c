/*
 * cmd_train.c - nflow train: fit a flow by maximum likelihood and write the
 * model, its loss history, figures and an HTML report.
 */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *HELP =
    "usage: nflow train --data NAME|FILE --flow SPEC --out DIR [options]\n"
    "\n"
    "Fits a normalizing flow to data by maximum likelihood (Adam) and writes\n"
    "DIR/model.nflow, DIR/history.csv, the figures and DIR/report.html.\n"
    "\n"
    "  --data NAME|FILE  moons, circles, 8gaussians, checkerboard, spirals, pinwheel\n"
    "                    (generated), or a CSV / .npy file of n rows x d columns, or\n"
    "                    digits-8x8: scikit-learn's digits as 1 x 8 x 8 images\n"
    "                    (examples/data/digits.csv, or $NFLOW_DATA/digits.csv;\n"
    "                    dequantised, 15% validation and 15% test rows unless given)\n"
    "                    for image flows, e.g. --flow \"glow(levels=2, steps=4,\n"
    "                    hidden=[64,64], bins=8)\"; its figure shows images\n"
    "  --flow SPEC       the flow, e.g. \"realnvp(layers=6, hidden=[256,256])\",\n"
    "                    \"maf(layers=5, hidden=[256,256])\", \"chain(maf(hidden=[16,16]),\n"
    "                    permute([1,0]), maf(hidden=[16,16]))\", a spline flow\n"
    "                    \"nsf(layers=4, hidden=[64,64], bins=8)\" (see docs/spec.md)\n"
    "  --out DIR         output folder (created if missing)\n"
    "  --steps N         optimiser steps (default 5000); with generated data every\n"
    "                    step draws a fresh batch\n"
    "  --epochs N        passes over the data instead (a file, or --n generated points)\n"
    "  --batch B         rows per step (default 100; 0 = the whole training set)\n"
    "  --lr LR           Adam learning rate (default 0.001)\n"
    "  --val-split F     a fraction of a file's rows (drawn at random with\n"
    "                    --split-seed) held out for validation: early stopping\n"
    "                    watches it (default 0)\n"
    "  --patience P      stop after P epochs without validation improvement and keep\n"
    "                    the best epoch's parameters (needs --val-split)\n"
    "  --test-split F    a fraction of a file's rows (drawn at random with\n"
    "                    --split-seed) held out for the test NLL: never used in\n"
    "                    training or early stopping\n"
    "  --test FILE       test rows from another file (the same columns)\n"
    "  --val FILE        validation rows from another file (the same columns), instead\n"
    "                    of --val-split: with --test, a split made once, outside\n"
    "                    nflow, that every run and every other tool share\n"
    "  --clip C          clip the gradient's L2 norm to C\n"
    "  --weight-decay W  L2 weight decay\n"
    "  --standardize     fit a standard scaler inside the model (densities stay in\n"
    "                    the data's units)\n"
    "  --columns LIST    a file's columns to use, by header name or 0-based index\n"
    "                    (e.g. --columns 0,1,5 or --columns mean_radius,mean_area)\n"
    "  --drop LIST       a file's columns to leave out (e.g. --drop label)\n"
    "  --dequantize uniform  integer data (counts, pixel values): add U(0,1) noise to\n"
    "                    every value, fresh each epoch (one fixed draw for validation\n"
    "                    and test rows); NLLs are then those of the dequantised data,\n"
    "                    in the data's units, an upper bound on the integer data's;\n"
    "                    the test NLL is also given in bits per dimension\n"
    "  --drop-constant   leave out the columns that are constant (named on stderr);\n"
    "                    --standardize refuses them otherwise, naming them all\n"
    "  --context-cols C  conditional flows: the data columns that are the condition\n"
    "                    (names or 0-based indices after --columns/--drop, e.g. 2 or\n"
    "                    3,4), or `label` for a generated set's label; the flow\n"
    "                    needs context=K in its spec\n"
    "                    (K = the number of context columns), e.g. --data moons\n"
    "                    --context-cols label --flow \"nsf(context=1)\"\n"
    "  --n N             generated points for --epochs training (default 1000)\n"
    "  --noise F         noise of generated data (default 0.05)\n"
    "  --seed S          seed of the weights, batches and generated data (default 0)\n"
    "  --split-seed S    seed of the draw of --val-split/--test-split rows and of the test\n"
    "                    rows' dequantisation (default: --seed); fix it to train several\n"
    "                    seeds on one split\n"
    "  --format FMT      figures as png (default), svg or pdf\n"
    "  --grid G          density figure on a G x G grid (default 200; dataflowr used 500)\n" ENGINE_OPTS_HELP
    "  --quiet           no progress display\n"
    "\n"
    "The test NLL is measured with the parameters saved, on rows the training never\n"
    "saw: 10,000 fresh points for generated data, the --test-split or --test rows\n"
    "for a file (without them no test NLL is reported, only the validation NLL).\n"
    "Exit codes: 0 ok, 1 usage, 2 bad data or model file, 3 numerical failure (e.g.\n"
    "a NaN loss: the step is named).\n"
    "\n"
    "Example:\n"
    "  nflow train --data moons --flow \"realnvp(layers=6, hidden=[256,256])\" \\\n"
    "              --steps 5000 --out runs/moons\n";

/* The command's options. */
typedef struct train_cfg {
    const char *data, *spec, *out, *format, *ctxcols, *test_file, *val_file, *columns, *drop;
    int has_steps, has_epochs, quiet, grid, drop_constant;
    float test_split;
    size_t steps, epochs, ngen;
    float noise;
    uint64_t seed, split_seed; /* split_seed: the held-out rows' draw (default: seed) */
    int image;                 /* --data digits-8x8: 1 x 8 x 8 images (figures of images) */
    char data_path[4096];      /* the file a named table (digits-8x8) resolves to */
    nf_train_opts o;
    engine_opts eng;
} train_cfg;

/* What the stages make, freed by run_free. */
typedef struct train_run {
    rows_src g;
    int generated;   /* a generated set (else a file) */
    int stream;      /* fresh batches every step */
    float *x, *test; /* training rows (file or --epochs points), test rows (generated) */
    size_t n, d, nctx, ntest;
    const char *test_what; /* the test rows, in words */
    char **names;          /* a file's column names (d + nctx), saved with the model */
    nf_rng *rng;
    nf_flow *flow;
    nf_train_report rep;
    double test_nll;
    size_t hist_every; /* steps per history entry (1: epochs) */
} train_run;

static int on_progress(void *user, const nf_train_progress *p) {
    progress_update((progress *)user, p);
    return 0;
}

/* Mean NLL of n rows [x | context]. */
static double mean_nll(const nf_flow *f, const float *rows, size_t n, nf_status *s) {
    size_t d = nf_flow_dim(f), dc = nf_flow_context_dim(f);
    float *lp = malloc(n * sizeof(float)), *x = malloc(n * d * sizeof(float)),
          *c = malloc(n * (dc ? dc : 1) * sizeof(float));
    double acc = 0;
    *s = lp && x && c ? NF_OK : NF_ERR_NOMEM;
    if (!*s) split_context_rows(rows, n, d, dc, x, c);
    if (!*s) *s = nf_flow_log_prob_ctx(f, x, dc ? c : NULL, n, lp);
    for (size_t i = 0; !*s && i < n; i++) acc -= lp[i];
    free(lp);
    free(x);
    free(c);
    return acc / (double)n;
}

/* Stage 1: the options, checked. */
static int parse(train_cfg *c, int argc, char **argv) {
    const char *cmd = "train";
    args a;
    int rc = help_or_init(&a, cmd, argc, argv, HELP);
    if (rc) return rc < 0 ? -1 : rc;
    c->data = opt_str(&a, "--data", NULL);
    c->spec = opt_str(&a, "--flow", NULL);
    c->out = opt_str(&a, "--out", NULL);
    c->format = opt_str(&a, "--format", "png");
    c->ctxcols = opt_str(&a, "--context-cols", NULL);
    c->has_steps = arg_given(argc, argv, "--steps");
    c->has_epochs = arg_given(argc, argv, "--epochs");
    c->steps = (size_t)opt_num(&a, "--steps", 5000, 1, 1e9);
    c->epochs = (size_t)opt_num(&a, "--epochs", 0, 1, 1e9);
    nf_train_opts *o = &c->o;
    *o = nf_train_defaults();
    o->batch = (size_t)opt_num(&a, "--batch", 100, 0, 1e8);
    o->lr = (float)opt_num(&a, "--lr", 1e-3, 1e-12, 10);
    o->val_split = (float)opt_num(&a, "--val-split", 0, 0, 0.99);
    o->patience = (size_t)opt_num(&a, "--patience", 0, 0, 1e9);
    o->clip_norm = (float)opt_num(&a, "--clip", 0, 0, 1e30);
    o->weight_decay = (float)opt_num(&a, "--weight-decay", 0, 0, 1e3);
    o->standardize = opt_flag(&a, "--standardize");
    c->test_split = (float)opt_num(&a, "--test-split", 0, 0, 0.99);
    c->test_file = opt_str(&a, "--test", NULL);
    c->val_file = opt_str(&a, "--val", NULL);
    c->columns = opt_str(&a, "--columns", NULL);
    c->drop = opt_str(&a, "--drop", NULL);
    c->drop_constant = opt_flag(&a, "--drop-constant");
    const char *deq = opt_str(&a, "--dequantize", NULL);
    c->ngen = (size_t)opt_num(&a, "--n", 1000, 2, 1e9);
    c->noise = (float)opt_num(&a, "--noise", 0.05, 0, 1e3);
    c->seed = (uint64_t)opt_num(&a, "--seed", 0, 0, 1.8e19);
    c->split_seed = (uint64_t)opt_num(&a, "--split-seed", (double)c->seed, 0, 1.8e19);
    c->quiet = opt_flag(&a, "--quiet");
    engine_opts_parse(&a, &c->eng);
    c->grid = (int)opt_num(&a, "--grid", 200, 2, 2000);
    rc = args_check_all_used(&a);
    args_free(&a);
    if (rc) return rc;
    if (!c->data || !c->spec || !c->out) return fail(cmd, EXIT_USAGE, "--data, --flow and --out are required");
    if (c->has_steps && c->has_epochs) return fail(cmd, EXIT_USAGE, "give --steps or --epochs, not both");
    if (c->val_file && o->val_split > 0) return fail(cmd, EXIT_USAGE, "give --val FILE or --val-split F, not both");
    if (deq && strcmp(deq, "uniform")) return fail(cmd, EXIT_USAGE, "--dequantize takes `uniform`, got '%s'", deq);
    o->dequantize = deq != NULL;
    if (!strcmp(c->data, "digits-8x8")) { /* scikit-learn's digits as 1 x 8 x 8 images of 17 grey levels */
        const char *dir = getenv("NFLOW_DATA");
        snprintf(c->data_path, sizeof c->data_path, "%s/digits.csv", dir && *dir ? dir : "examples/data");
        if (access(c->data_path, R_OK))
            return fail(cmd, EXIT_DATA, "digits-8x8 reads %s: %s (run from nflow's folder, or set NFLOW_DATA to the folder "
                        "of digits.csv)", c->data_path, strerror(errno));
        if (c->columns || c->drop || c->ctxcols)
            return fail(cmd, EXIT_USAGE, "digits-8x8 is the 64 pixels of digits.csv: no --columns, --drop or --context-cols");
        c->data = c->data_path, c->drop = "label", c->image = 1;
        o->dequantize = 1; /* integer pixels */
        if (o->val_split == 0 && !c->val_file) o->val_split = 0.15f;
        if (c->test_split == 0 && !c->test_file) c->test_split = 0.15f;
    }
    if (strcmp(c->format, "png") && strcmp(c->format, "svg") && strcmp(c->format, "pdf"))
        return fail(cmd, EXIT_USAGE, "--format must be png, svg or pdf");
    return 0;
}

/* The rows of another file (--test, --val), the training file's columns. */
static int other_rows(const train_cfg *c, const train_run *r, const char *file, float **x, size_t *n) {
    size_t td = 0, tc = 0;
    rows_src g = r->g;
    g.data = file;
    int rc = rows_read("train", &g, x, n, &td, &tc, NULL);
    if (rc) return rc;
    if (td == r->d && tc == r->nctx) return 0;
    free(*x);
    *x = NULL, *n = 0;
    return fail("train", EXIT_DATA, "%s has %zu data and %zu context columns, %s has %zu and %zu", file, td, tc, c->data, r->d,
                r->nctx);
}

/* --val FILE: its rows (this process's part of them) appended to the
 * training rows, for the library holds out the last *nval rows. */
static int append_val(const train_cfg *c, train_run *r, size_t *nval) {
    size_t W = r->d + r->nctx, nv = 0;
    float *v = NULL;
    int rc = other_rows(c, r, c->val_file, &v, &nv);
    if (rc) return rc;
    float *x = realloc(r->x, (r->n + nv) * W * sizeof(float) + 1);
    if (!x) {
        free(v);
        return fail("train", EXIT_DATA, "out of memory");
    }
    memcpy(x + r->n * W, v, nv * W * sizeof(float));
    free(v);
    r->x = x;
    r->n += nv;
    *nval += nv;
    return 0;
}

/* A file's rows: shuffled with the seed when rows are held out; the test
 * rows (--test-split, from the end, or --test FILE) moved to r->test; the
 * validation fraction handed to the library as a share of what is left. */
static int file_rows(train_cfg *c, train_run *r) {
    const char *cmd = "train";
    int rc = rows_read(cmd, &r->g, &r->x, &r->n, &r->d, &r->nctx, &r->names);
    if (rc) return rc;
    size_t W = r->d + r->nctx, N = r->n;
    if (c->o.val_split > 0 || c->test_split > 0) { /* held-out rows drawn at random, reproducibly */
        nf_rng *sh = NULL;
        float *tmp = malloc(W * sizeof(float));
        if (!tmp || nf_rng_create(c->split_seed + 7777, &sh)) {
            free(tmp);
            return fail(cmd, EXIT_DATA, "out of memory");
        }
        for (size_t i = N; i-- > 1;) {
            size_t j = (size_t)nf_rng_below(sh, i + 1);
            memcpy(tmp, r->x + i * W, W * sizeof(float));
            memcpy(r->x + i * W, r->x + j * W, W * sizeof(float));
            memcpy(r->x + j * W, tmp, W * sizeof(float));
        }
        free(tmp);
        nf_rng_free(sh);
    }
    size_t nval = (size_t)((double)N * c->o.val_split), ntest = (size_t)((double)N * c->test_split);
    if (c->test_file) {
        if ((rc = other_rows(c, r, c->test_file, &r->test, &r->ntest))) return rc;
        r->test_what = "the rows of --test";
    } else if (ntest) {
        r->ntest = ntest;
        r->test = malloc(ntest * W * sizeof(float));
        if (!r->test) return fail(cmd, EXIT_DATA, "out of memory");
        memcpy(r->test, r->x + (N - ntest) * W, ntest * W * sizeof(float));
        r->n = N - ntest;
        r->test_what = "held-out rows, --test-split";
    }
    if (c->val_file && (rc = append_val(c, r, &nval))) return rc;
    if (r->n < 2 || nval + 1 > r->n)
        return fail(cmd, EXIT_USAGE, "%zu rows leave %zu for training after %zu test and %zu validation rows", N,
                    r->n > nval ? r->n - nval : 0, ntest, nval);
    c->o.val_split = nval ? (float)(((double)nval + 0.5) / (double)r->n) : 0; /* exactly nval rows */
    return 0;
}

/* Several processes: this process's share of a file, in the one-process
 * run's sets.  Each reads its part of the file; the rows' global numbers
 * come from the counts of all; the one-process shuffle (split seed + 7777) is
 * replayed on row numbers, so the test, validation and training sets are
 * exactly the one-process run's, each process keeping its rows of each. */
static int file_rows_par(train_cfg *c, train_run *r, const par *procs) {
    const char *cmd = "train";
    r->g.part = (size_t)procs->rank, r->g.parts = (size_t)procs->size;
    int rc = rows_read(cmd, &r->g, &r->x, &r->n, &r->d, &r->nctx, &r->names);
    if ((rc = par_agree(procs, rc))) return rc;
    size_t W = r->d + r->nctx, N, g0; /* this part's first row among all N */
    if ((rc = par_offset(procs, r->n, &g0, &N))) return rc;
    size_t nval = (size_t)((double)N * c->o.val_split), ntest = c->test_file ? 0 : (size_t)((double)N * c->test_split);
    if (N < 2 || nval + ntest + 1 > N)
        return fail(cmd, EXIT_USAGE, "%zu rows leave none for training after %zu test and %zu validation rows", N, ntest,
                    nval);
    float *tr = malloc(r->n * W * sizeof(float) + 1), *va = malloc(r->n * W * sizeof(float) + 1),
          *te = malloc(r->n * W * sizeof(float) + 1);
    size_t *idx = nval || ntest ? malloc(N * sizeof(size_t)) : NULL;
    nf_rng *sh = NULL;
    if (!tr || !va || !te || ((nval || ntest) && (!idx || nf_rng_create(c->split_seed + 7777, &sh)))) rc = EXIT_DATA;
    size_t ntr_l = 0, nval_l = 0, ntest_l = 0;
    if (!rc && (nval || ntest)) {
        for (size_t i = 0; i < N; i++) idx[i] = i;
        for (size_t i = N; i-- > 1;) { /* the one-process Fisher-Yates, on row numbers */
            size_t j = (size_t)nf_rng_below(sh, i + 1), t = idx[i];
            idx[i] = idx[j];
            idx[j] = t;
        }
    }
    for (size_t p = 0; !rc && p < N; p++) { /* position p holds row idx[p]: the set is the position's */
        size_t g = idx ? idx[p] : p;
        if (g < g0 || g >= g0 + r->n) continue;
        float *dst = p >= N - ntest ? te + ntest_l++ * W : p >= N - ntest - nval ? va + nval_l++ * W : tr + ntr_l++ * W;
        memcpy(dst, r->x + (g - g0) * W, W * sizeof(float));
    }
    free(idx);
    nf_rng_free(sh);
    if (!rc && ntr_l == 0) rc = fail(cmd, EXIT_USAGE, "rank %d has no training rows: fewer processes, please", procs->rank);
    if (!rc) { /* [training | validation] rows, then the test rows */
        memcpy(r->x, tr, ntr_l * W * sizeof(float));
        memcpy(r->x + ntr_l * W, va, nval_l * W * sizeof(float));
        r->n = ntr_l + nval_l;
        c->o.val_split = nval ? (float)(((double)nval_l + 0.5) / (double)r->n) : 0; /* exactly nval_l rows */
        if (ntest) {
            r->test = te, te = NULL;
            r->ntest = ntest_l;
            r->test_what = "held-out rows, --test-split";
        }
    }
    free(tr), free(va), free(te);
    if (!rc && c->val_file && !(rc = append_val(c, r, &nval_l)))
        c->o.val_split = (float)(((double)nval_l + 0.5) / (double)r->n);
    if (!rc && c->test_file) {
        rc = other_rows(c, r, c->test_file, &r->test, &r->ntest);
        r->test_what = "the rows of --test";
    }
    return par_agree(procs, rc);
}

/* Stage 2: the training rows (a file, or --epochs points drawn once) and,
 * for generated data, 10,000 fresh test rows. */
static int load_rows(train_cfg *c, train_run *r, const par *procs) {
    const char *cmd = "train";
    r->generated = rows_generated(c->data);
    /* `label`: a generated set's label; for a file, a column of that name */
    int labels = r->generated && c->ctxcols && !strcmp(c->ctxcols, "label");
    if (r->generated && c->ctxcols && !labels)
        return fail(cmd, EXIT_USAGE, "--context-cols: a generated set's context is `label`");
    r->g = (rows_src){.data = c->data,
                      .noise = c->noise,
                      .labels = labels,
                      .ctxcols = labels ? NULL : c->ctxcols,
                      .columns = c->columns,
                      .drop = c->drop,
                      .drop_constant = c->drop_constant};
    r->stream = r->generated && !c->has_epochs;
    r->d = 2;
    r->nctx = (size_t)labels;
    size_t W = 2 + (size_t)labels; /* a generated row's width */
    if (nf_rng_create(c->seed ^ 0x5eedULL, &r->rng)) return fail(cmd, EXIT_DATA, "%s", nf_last_error());
    if (!r->generated) return procs->size > 1 ? file_rows_par(c, r, procs) : file_rows(c, r);
    if (c->test_split > 0 || c->test_file || c->val_file || c->o.dequantize)
        return fail(cmd, EXIT_USAGE, "--test-split, --test, --val and --dequantize apply to a file: generated data is continuous "
                                     "and tested on 10,000 fresh points");
    if (r->stream && c->o.val_split > 0)
        return fail(cmd, EXIT_USAGE, "--val-split needs rows to hold out: a file, or --epochs with --n generated points "
                                     "(streamed training draws fresh points every step and is tested on 10,000 more)");
    r->n = c->has_epochs ? c->ngen : 0;
    if (r->n) {
        r->x = malloc(r->n * W * sizeof(float));
        if (!r->x || rows_generate(&r->g, r->rng, r->n, r->x)) return fail(cmd, EXIT_DATA, "%s", nf_last_error());
        if (procs->size > 1) { /* several processes: each keeps its part of the points */
            size_t a, b;
            par_range(procs, r->n, &a, &b);
            memmove(r->x, r->x + a * W, (b - a) * W * sizeof(float));
            r->n = b - a;
        }
    }
    r->ntest = 10000;
    r->test_what = "10,000 fresh points";
    r->test = malloc(r->ntest * W * sizeof(float));
    nf_rng *tr = NULL;
    nf_rng_create(c->seed + 12345, &tr);
    nf_status s = r->test && tr ? rows_generate(&r->g, tr, r->ntest, r->test) : NF_ERR_NOMEM;
    nf_rng_free(tr);
    return s ? fail(cmd, EXIT_DATA, "%s", nf_last_error()) : 0;
}

/* Stage 3: the flow, its context checked; a stream's scaler fitted on
 * 100,000 points drawn once. */
static int build(const train_cfg *c, train_run *r) {
    const char *cmd = "train";
    if (c->o.patience && c->o.val_split <= 0) return fail(cmd, EXIT_USAGE, "--patience needs --val-split or --val");
    nf_status s = nf_flow_from_spec(c->spec, r->d, c->seed, &r->flow);
    if (s) {
        fprintf(stderr, "nflow train: %s\n", nf_last_error());
        return s == NF_ERR_NOMEM ? EXIT_DATA : EXIT_USAGE;
    }
    if (r->names && nf_flow_context_dim(r->flow) == r->nctx && nf_flow_set_column_names(r->flow, (const char *const *)r->names))
        return fail(cmd, EXIT_DATA, "%s", nf_last_error());
    if (nf_flow_context_dim(r->flow) != r->nctx)
        return fail(cmd, EXIT_USAGE,
                    "the flow takes a context of %zu values (context=K in its spec) but --context-cols gives %zu",
                    nf_flow_context_dim(r->flow), r->nctx);
    int drc = set_device(cmd, r->flow, c->eng.device);
    if (drc) return drc;
    if (!r->stream || !c->o.standardize) return 0;
    size_t m = 100000;
    float *big = malloc(m * (2 + (size_t)r->g.labels) * sizeof(float));
    int bad = !big || rows_generate(&r->g, r->rng, m, big) || nf_flow_fit_scaler(r->flow, big, m);
    free(big);
    return bad ? fail(cmd, EXIT_DATA, "%s", nf_last_error()) : 0;
}

/* Stage 4: training (fresh batches for a stream, epochs otherwise). */
static int fit(train_cfg *c, train_run *r, const par *procs) {
    const char *cmd = "train";
    int lead = procs->rank == 0, rc = 0; /* several processes: rank 0 writes and speaks */
    if (lead && mkdir_p(c->out, c->eng.made, sizeof c->eng.made))
        rc = fail(cmd, EXIT_DATA, "cannot create %s: %s", c->out, strerror(errno));
    if ((rc = par_agree(procs, rc))) return rc;
    nf_train_opts o = c->o;
    engine_opts_apply(cmd, &c->eng, c->out, c->quiet || !lead, &o);
    o.comm = procs->comm;
    progress pr;
    progress_init(&pr, c->quiet || !lead);
    o.seed = c->seed + 1;
    o.callback = on_progress;
    o.user = &pr;
    o.epochs = c->epochs; /* 0 with --steps: on a file, the library runs whole epochs covering them */
    o.steps = c->steps;
    r->hist_every = 1;
    nf_status s;
    if (r->stream) {
        o.log_every = c->steps >= 100 ? c->steps / 100 : 1;
        r->hist_every = o.log_every;
        s = nf_flow_fit_stream(r->flow, rows_draw, &r->g, &o, &r->rep);
    } else {
        s = nf_flow_fit(r->flow, r->x, r->n, &o, &r->rep);
    }
    progress_done(&pr);
    if (s) {
        fprintf(stderr, "nflow train: %s\n", nf_last_error());
        if (strstr(nf_last_error(), "constant column"))
            fprintf(stderr, "nflow train: leave them out with --drop-constant (or --drop COLUMNS)\n");
        else if (s == NF_ERR_NUMERIC && r->rep.steps < 10)
            fprintf(stderr, "nflow train: the loss broke down in the first steps: %s\n",
                    c->o.standardize ? "try a lower --lr (or --clip)" : "try --standardize (unscaled data) or a lower --lr");
        return s == NF_ERR_NUMERIC ? EXIT_NUMERIC : EXIT_DATA;
    }
    return 0;
}

/* Stage 5: the test NLL, the model file and history.csv. */
static int save(const train_cfg *c, train_run *r, const par *procs) {
    const char *cmd = "train";
    const nf_train_report *rep = &r->rep;
    nf_status s = NF_OK;
    r->test_nll = NAN;
    if (r->test && c->o.dequantize) { /* the test rows dequantised too: one fixed draw */
        nf_rng *dq = NULL;
        nf_rng_create(c->split_seed ^ 0x7e57ULL, &dq);
        for (size_t i = 0; dq && i < r->ntest; i++)
            for (size_t j = 0; j < r->d; j++) r->test[i * (r->d + r->nctx) + j] += nf_rng_uniform(dq);
        nf_rng_free(dq);
    }
    int shared = procs->size > 1 && !r->generated; /* each process has its part of a file's test rows */
    if (r->test && (r->ntest || !shared))
        r->test_nll = mean_nll(r->flow, r->test, r->ntest, &s); /* the parameters saved, rows never seen */
    int rc = par_agree(procs, s ? fail(cmd, EXIT_NUMERIC, "evaluating the test NLL: %s", nf_last_error()) : 0);
    if (rc) return rc;
    if (shared && (r->test || c->test_split > 0 || c->test_file)) { /* the mean over every process's test rows */
        double v[2] = {r->ntest ? r->test_nll * (double)r->ntest : 0, (double)r->ntest};
        if ((rc = par_sum(procs, v, 2))) return rc;
        r->test_nll = v[1] > 0 ? v[0] / v[1] : NAN;
    }
    if (procs->rank) return 0; /* rank 0 writes */
    char path[4096], summary[1024], val[32] = "null", test[32] = "null";
    if (!isnan(rep->val_loss)) snprintf(val, sizeof val, "%.6g", rep->val_loss);
    if (!isnan(r->test_nll)) snprintf(test, sizeof test, "%.6g", r->test_nll);
    char bpd[32] = "null";
    if (!isnan(r->test_nll) && c->o.dequantize) snprintf(bpd, sizeof bpd, "%.6g", r->test_nll / ((double)r->d * log(2.0)));
    snprintf(summary, sizeof summary,
             "{\"data\": \"%s\", \"steps\": %zu, \"epochs\": %zu, \"seconds\": %.3f, \"train_nll\": %.6g, "
             "\"val_nll\": %s, \"test_nll\": %s, \"test_bits_per_dim\": %s, \"kept_epoch\": %zu, \"seed\": %llu, "
             "\"device\": \"%s\"}",
             r->generated ? c->data : "file", rep->steps, rep->epochs, rep->seconds, rep->train_loss, val, test, bpd,
             rep->restored ? rep->best_epoch : rep->epochs, (unsigned long long)c->seed, nf_flow_device(r->flow));
    snprintf(path, sizeof path, "%s/model.nflow", c->out);
    if (nf_flow_save(r->flow, path, summary)) return fail(cmd, EXIT_DATA, "%s", nf_last_error());
    snprintf(path, sizeof path, "%s/history.csv", c->out);
    return write_history(cmd, path, r->hist_every == 1 && !r->stream ? "epoch,train_nll,val_nll" : "step,train_nll,val_nll",
                         rep->train_history, rep->val_history, rep->n_history, r->hist_every);
}

/* Stage 6: figures, report.html and the console summary. */
static int report(const train_cfg *c, const train_run *r, int argc, char **argv) {
    const char *cmd = "train";
    const nf_train_report *rep = &r->rep;
    char cmdline[2048];
    cmdline_join(cmdline, sizeof cmdline, "nflow train", argc, argv);
    run_info info = {.cmdline = cmdline,
                     .spec = c->spec,
                     .data_name = c->data,
                     .n_params = nf_flow_param_count(r->flow),
                     .dim = r->d,
                     .steps = rep->steps,
                     .epochs = rep->epochs,
                     .seconds = rep->seconds,
                     .train_nll = rep->train_loss,
                     .val_nll = rep->val_loss,
                     .test_nll = r->test_nll,
                     .train_hist = rep->train_history,
                     .val_hist = rep->val_history,
                     .n_hist = rep->n_history,
                     .hist_every = r->hist_every,
                     .format = c->format,
                     .grid = c->grid,
                     .restored = rep->restored,
                     .best_epoch = rep->best_epoch,
                     .patience = c->o.patience,
                     .test_what = r->test_what,
                     .image = {c->image ? 1 : 0, c->image ? 8 : 0, c->image ? 8 : 0},
                     .image_max = c->image ? 17 : 0};
    char names[16][64];
    int nfig = 0;
    int rc = make_figures(cmd, r->flow, r->generated ? r->test : r->x, r->generated ? r->ntest : r->n, c->out, &info,
                          names, &nfig);
    if (!rc) rc = write_report(cmd, c->out, &info, names, nfig);
    if (c->quiet && rc) return rc;
    printf("model:   %s/model.nflow (%zu parameters)\n", c->out, nf_flow_param_count(r->flow));
    if (rep->epochs)
        printf("trained: %zu steps, %zu epochs in %.1f s", rep->steps, rep->epochs, rep->seconds);
    else
        printf("trained: %zu steps on fresh batches in %.1f s", rep->steps, rep->seconds);
    if (strcmp(nf_flow_device(r->flow), "cpu")) printf(" on %s", nf_flow_device(r->flow));
    if (rep->restored)
        printf("; kept epoch %zu's parameters (best validation NLL; %zu epochs without improvement)\n"
               "         train NLL %.4f (epoch %zu's mean), validation %.4f\n",
               rep->best_epoch, c->o.patience, rep->train_loss, rep->best_epoch, rep->val_loss);
    else if (!isnan(rep->val_loss))
        printf("; final train NLL %.4f, validation %.4f\n", rep->train_loss, rep->val_loss);
    else
        printf("; final train NLL %.4f\n", rep->train_loss);
    if (!isnan(r->test_nll) && c->o.dequantize) /* integer data: the dequantised density bounds the bins' probability */
        printf("test NLL: %.4f nats (%s), %.4f bits per dimension\n", r->test_nll, r->test_what,
               r->test_nll / ((double)r->d * log(2.0)));
    else if (!isnan(r->test_nll))
        printf("test NLL: %.4f nats (%s)\n", r->test_nll, r->test_what);
    if (!rc) printf("report:  %s/report.html (%d figures)\n", c->out, nfig);
    return rc;
}

static void run_free(train_run *r) {
    nf_free_names(r->names, r->d + r->nctx);
    nf_train_report_free(&r->rep);
    nf_flow_free(r->flow);
    nf_rng_free(r->rng);
    free(r->x);
    free(r->test);
}

int cmd_train(int argc, char **argv, const par *procs) {
    train_cfg c;
    train_run r;
    memset(&c, 0, sizeof c);
    memset(&r, 0, sizeof r);
    int rc = parse(&c, argc, argv);
    if (rc) return rc < 0 ? 0 : rc;
    if (procs->size > 1 && c.drop_constant)
        return procs->rank ? EXIT_USAGE
                           : fail("train", EXIT_USAGE, "--drop-constant looks at one process's rows: under mpirun, name "
                                                       "the constant columns with --drop");
    if (!(rc = load_rows(&c, &r, procs)) && !(rc = par_agree(procs, build(&c, &r))) && !(rc = fit(&c, &r, procs)) &&
        !(rc = save(&c, &r, procs)) && procs->rank == 0)
        rc = report(&c, &r, argc, argv);
    if (r.flow && procs->rank == 0) engine_opts_finish("train", &c.eng, c.out, rc);
    run_free(&r);
    return rc;
}
