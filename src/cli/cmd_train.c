/*
 * cmd_train.c - nflow train: fit a flow by maximum likelihood and write the
 * model, its loss history, figures and an HTML report.
 */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *HELP =
    "usage: nflow train --data NAME|FILE --flow SPEC --out DIR [options]\n"
    "\n"
    "Fits a normalizing flow to data by maximum likelihood (Adam) and writes\n"
    "DIR/model.nflow, DIR/history.csv, the figures and DIR/report.html.\n"
    "\n"
    "  --data NAME|FILE  moons, circles, 8gaussians, checkerboard, spirals, pinwheel\n"
    "                    (generated), or a CSV / .npy file of n rows x d columns\n"
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
    "  --val-split F     last fraction of the rows held out for validation (default 0;\n"
    "                    0.2 is Keras' choice)\n"
    "  --patience P      stop after P epochs without validation improvement and keep\n"
    "                    the best parameters (needs --val-split)\n"
    "  --clip C          clip the gradient's L2 norm to C\n"
    "  --weight-decay W  L2 weight decay\n"
    "  --standardize     fit a standard scaler inside the model (densities stay in\n"
    "                    the data's units)\n"
    "  --context-cols C  conditional flows: the data columns that are the condition\n"
    "                    (0-based, comma-separated, e.g. 2 or 3,4), or `label` for a\n"
    "                    generated set's label; the flow needs context=K in its spec\n"
    "                    (K = the number of context columns), e.g. --data moons\n"
    "                    --context-cols label --flow \"nsf(context=1)\"\n"
    "  --n N             generated points for --epochs training (default 1000)\n"
    "  --noise F         noise of generated data (default 0.05)\n"
    "  --seed S          seed of the weights, batches and generated data (default 0)\n"
    "  --format FMT      figures as png (default), svg or pdf\n"
    "  --grid G          density figure on a G x G grid (default 200; dataflowr used 500)\n" ENGINE_OPTS_HELP
    "  --quiet           no progress display\n"
    "\n"
    "The test NLL is measured on 10,000 fresh points for generated data, on the\n"
    "validation rows for a file.  Exit codes: 0 ok, 1 usage, 2 bad data or model\n"
    "file, 3 numerical failure (e.g. a NaN loss: the step is named).\n"
    "\n"
    "Example:\n"
    "  nflow train --data moons --flow \"realnvp(layers=6, hidden=[256,256])\" \\\n"
    "              --steps 5000 --out runs/moons\n";

/* The command's options. */
typedef struct train_cfg {
    const char *data, *spec, *out, *format, *ctxcols;
    int has_steps, has_epochs, quiet, grid;
    size_t steps, epochs, ngen;
    float noise;
    uint64_t seed;
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
    for (int i = 0; i < argc; i++) {
        c->has_steps |= !strcmp(argv[i], "--steps");
        c->has_epochs |= !strcmp(argv[i], "--epochs");
    }
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
    c->ngen = (size_t)opt_num(&a, "--n", 1000, 2, 1e9);
    c->noise = (float)opt_num(&a, "--noise", 0.05, 0, 1e3);
    c->seed = (uint64_t)opt_num(&a, "--seed", 0, 0, 1.8e19);
    c->quiet = opt_flag(&a, "--quiet");
    engine_opts_parse(&a, &c->eng);
    c->grid = (int)opt_num(&a, "--grid", 200, 2, 2000);
    rc = args_check_all_used(&a);
    args_free(&a);
    if (rc) return rc;
    if (!c->data || !c->spec || !c->out) return fail(cmd, EXIT_USAGE, "--data, --flow and --out are required");
    if (c->has_steps && c->has_epochs) return fail(cmd, EXIT_USAGE, "give --steps or --epochs, not both");
    if (strcmp(c->format, "png") && strcmp(c->format, "svg") && strcmp(c->format, "pdf"))
        return fail(cmd, EXIT_USAGE, "--format must be png, svg or pdf");
    return 0;
}

/* Stage 2: the training rows (a file, or --epochs points drawn once) and,
 * for generated data, 10,000 fresh test rows. */
static int load_rows(const train_cfg *c, train_run *r) {
    const char *cmd = "train";
    r->generated = rows_generated(c->data);
    int labels = c->ctxcols && !strcmp(c->ctxcols, "label");
    if (c->ctxcols && r->generated != labels)
        return fail(cmd, EXIT_USAGE, "--context-cols: %s",
                    r->generated ? "a generated set's context is `label`" : "give column numbers of the data file");
    r->g = (rows_src){c->data, c->noise, labels, labels ? NULL : c->ctxcols};
    r->stream = r->generated && !c->has_epochs;
    r->d = 2;
    r->nctx = (size_t)labels;
    size_t W = 2 + (size_t)labels; /* a generated row's width */
    if (nf_rng_create(c->seed ^ 0x5eedULL, &r->rng)) return fail(cmd, EXIT_DATA, "%s", nf_last_error());
    if (!r->generated) return rows_read(cmd, &r->g, &r->x, &r->n, &r->d, &r->nctx);
    r->n = c->has_epochs ? c->ngen : 0;
    if (r->n) {
        r->x = malloc(r->n * W * sizeof(float));
        if (!r->x || rows_generate(&r->g, r->rng, r->n, r->x)) return fail(cmd, EXIT_DATA, "%s", nf_last_error());
    }
    r->ntest = 10000;
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
    if (c->o.patience && c->o.val_split <= 0) return fail(cmd, EXIT_USAGE, "--patience needs --val-split");
    nf_status s = nf_flow_from_spec(c->spec, r->d, c->seed, &r->flow);
    if (s) {
        fprintf(stderr, "nflow train: %s\n", nf_last_error());
        return s == NF_ERR_NOMEM ? EXIT_DATA : EXIT_USAGE;
    }
    if (nf_flow_context_dim(r->flow) != r->nctx)
        return fail(cmd, EXIT_USAGE,
                    "the flow takes a context of %zu values (context=K in its spec) but --context-cols gives %zu",
                    nf_flow_context_dim(r->flow), r->nctx);
    if (!r->stream || !c->o.standardize) return 0;
    size_t m = 100000;
    float *big = malloc(m * (2 + (size_t)r->g.labels) * sizeof(float));
    int bad = !big || rows_generate(&r->g, r->rng, m, big) || nf_flow_fit_scaler(r->flow, big, m);
    free(big);
    return bad ? fail(cmd, EXIT_DATA, "%s", nf_last_error()) : 0;
}

/* Stage 4: training (fresh batches for a stream, epochs otherwise). */
static int fit(train_cfg *c, train_run *r) {
    const char *cmd = "train";
    if (mkdir_p(c->out, c->eng.made, sizeof c->eng.made))
        return fail(cmd, EXIT_DATA, "cannot create %s: %s", c->out, strerror(errno));
    nf_train_opts o = c->o;
    engine_opts_apply(cmd, &c->eng, c->out, c->quiet, &o);
    progress pr;
    progress_init(&pr, c->quiet);
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
        return s == NF_ERR_NUMERIC ? EXIT_NUMERIC : EXIT_DATA;
    }
    return 0;
}

/* Stage 5: the test NLL, the model file and history.csv. */
static int save(const train_cfg *c, train_run *r) {
    const char *cmd = "train";
    const nf_train_report *rep = &r->rep;
    nf_status s = NF_OK;
    r->test_nll = NAN;
    if (r->generated)
        r->test_nll = mean_nll(r->flow, r->test, r->ntest, &s);
    else if (c->o.val_split > 0)
        r->test_nll = rep->val_loss;
    if (s) return fail(cmd, EXIT_NUMERIC, "evaluating the test NLL: %s", nf_last_error());
    char path[4096], summary[1024];
    snprintf(summary, sizeof summary,
             "{\"data\": \"%s\", \"steps\": %zu, \"epochs\": %zu, \"seconds\": %.3f, \"train_nll\": %.6g, "
             "\"val_nll\": %.6g, \"test_nll\": %.6g, \"seed\": %llu}",
             r->generated ? c->data : "file", rep->steps, rep->epochs, rep->seconds, rep->train_loss,
             isnan(rep->val_loss) ? -1.0 : rep->val_loss, isnan(r->test_nll) ? -1.0 : r->test_nll,
             (unsigned long long)c->seed);
    snprintf(path, sizeof path, "%s/model.nflow", c->out);
    if (nf_flow_save(r->flow, path, summary)) return fail(cmd, EXIT_DATA, "%s", nf_last_error());
    float *hv = malloc((rep->n_history + 1) * 3 * sizeof(float));
    for (size_t i = 0; hv && i < rep->n_history; i++) {
        hv[3 * i] = (float)((i + 1) * r->hist_every);
        hv[3 * i + 1] = (float)rep->train_history[i];
        hv[3 * i + 2] = isnan(rep->val_history[i]) ? -1.0f : (float)rep->val_history[i];
    }
    snprintf(path, sizeof path, "%s/history.csv", c->out);
    int bad =
        !hv || nf_write_table(path, hv, rep->n_history, 3,
                              r->hist_every == 1 && !r->stream ? "epoch,train_nll,val_nll" : "step,train_nll,val_nll");
    free(hv);
    return bad ? fail(cmd, EXIT_DATA, "cannot write %s", path) : 0;
}

/* Stage 6: figures, report.html and the console summary. */
static int report(const train_cfg *c, const train_run *r, int argc, char **argv) {
    const char *cmd = "train";
    const nf_train_report *rep = &r->rep;
    char cmdline[2048];
    cmdline_join(cmdline, sizeof cmdline, "nflow train", argc, argv);
    run_info info = {cmdline,
                     c->spec,
                     c->data,
                     nf_flow_param_count(r->flow),
                     r->d,
                     rep->steps,
                     rep->epochs,
                     rep->seconds,
                     rep->train_loss,
                     rep->val_loss,
                     r->test_nll,
                     rep->train_history,
                     rep->val_history,
                     rep->n_history,
                     r->hist_every,
                     c->format,
                     c->grid};
    char names[16][64];
    int nfig = 0;
    int rc = make_figures(cmd, r->flow, r->generated ? r->test : r->x, r->generated ? r->ntest : r->n, c->out, &info,
                          names, &nfig);
    if (!rc) rc = write_report(cmd, c->out, &info, names, nfig);
    if (c->quiet && rc) return rc;
    printf("model:   %s/model.nflow (%zu parameters)\n", c->out, nf_flow_param_count(r->flow));
    if (rep->epochs)
        printf("trained: %zu steps, %zu epochs in %.1f s; final train NLL %.4f", rep->steps, rep->epochs, rep->seconds,
               rep->train_loss);
    else
        printf("trained: %zu steps on fresh batches in %.1f s; final train NLL %.4f", rep->steps, rep->seconds,
               rep->train_loss);
    if (!isnan(rep->val_loss)) printf(", validation %.4f", rep->val_loss);
    printf("\n");
    if (!isnan(r->test_nll))
        printf("test NLL: %.4f nats (%s)\n", r->test_nll, r->generated ? "10,000 fresh points" : "validation rows");
    if (!rc) printf("report:  %s/report.html (%d figures)\n", c->out, nfig);
    return rc;
}

static void run_free(train_run *r) {
    nf_train_report_free(&r->rep);
    nf_flow_free(r->flow);
    nf_rng_free(r->rng);
    free(r->x);
    free(r->test);
}

int cmd_train(int argc, char **argv) {
    train_cfg c;
    train_run r;
    memset(&c, 0, sizeof c);
    memset(&r, 0, sizeof r);
    int rc = parse(&c, argc, argv);
    if (rc) return rc < 0 ? 0 : rc;
    if (!(rc = load_rows(&c, &r)) && !(rc = build(&c, &r)) && !(rc = fit(&c, &r)) && !(rc = save(&c, &r)))
        rc = report(&c, &r, argc, argv);
    if (r.flow) engine_opts_finish("train", &c.eng, c.out, rc);
    run_free(&r);
    return rc;
}
