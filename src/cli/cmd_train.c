/*
 * cmd_train.c - nflow train: fit a flow by maximum likelihood and write the
 * model, its loss history, figures and an HTML report.
 */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
    "  --grid G          density figure on a G x G grid (default 200; dataflowr used 500)\n"
    ENGINE_OPTS_HELP
    "  --quiet           no progress display\n"
    "\n"
    "The test NLL is measured on 10,000 fresh points for generated data, on the\n"
    "validation rows for a file.  Exit codes: 0 ok, 1 usage, 2 bad data or model\n"
    "file, 3 numerical failure (e.g. a NaN loss: the step is named).\n"
    "\n"
    "Example:\n"
    "  nflow train --data moons --flow \"realnvp(layers=6, hidden=[256,256])\" \\\n"
    "              --steps 5000 --out runs/moons\n";


typedef struct gen {
    const char *name;
    float noise;
    int labels; /* rows [x1, x2, label] (a conditional flow's context) */
} gen;

/* n rows of a generated set: [x1, x2] or [x1, x2, label]. */
static nf_status generate(const gen *g, nf_rng *rng, size_t n, float *x) {
    if (!g->labels) return nf_data_generate(g->name, rng, n, g->noise, x, NULL);
    int *lab = malloc((n ? n : 1) * sizeof(int));
    if (!lab) return NF_ERR_NOMEM;
    nf_status s = nf_data_generate(g->name, rng, n, g->noise, x, lab);
    for (size_t i = n; !s && i-- > 0;) { /* spread [x1, x2] rows to [x1, x2, label], from the end */
        float a = x[2 * i], b = x[2 * i + 1];
        x[3 * i] = a, x[3 * i + 1] = b, x[3 * i + 2] = (float)lab[i];
    }
    free(lab);
    return s;
}

static int draw(void *user, nf_rng *rng, float *x, size_t n) { return generate(user, rng, n, x) != NF_OK; }

/* Parses "2" or "3,4" (0-based column indices) into flags over d columns;
 * returns the count, or 0 on a bad list. */
static size_t parse_cols(const char *s, size_t d, unsigned char *is_ctx) {
    size_t k = 0;
    memset(is_ctx, 0, d);
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 0 || (size_t)v >= d || is_ctx[v]) return 0;
        if (*end && *end != ',') return 0;
        is_ctx[v] = 1, k++;
        s = *end == ',' ? end + 1 : end;
    }
    return k;
}



static int on_progress(void *user, const nf_train_progress *p) {
    progress_update((progress *)user, p);
    return 0;
}

/* Mean NLL of n rows [x | context]. */
static double mean_nll(const nf_flow *f, const float *rows, size_t n, nf_status *s) {
    size_t d = nf_flow_dim(f), dc = nf_flow_context_dim(f);
    float *lp = malloc(n * sizeof(float)), *x = malloc(n * d * sizeof(float)), *c = malloc(n * (dc ? dc : 1) * sizeof(float));
    double acc = 0;
    *s = lp && x && c ? NF_OK : NF_ERR_NOMEM;
    if (!*s) split_context_rows(rows, n, d, dc, x, c);
    if (!*s) *s = nf_flow_log_prob_ctx(f, x, dc ? c : NULL, n, lp);
    for (size_t i = 0; !*s && i < n; i++) acc -= lp[i];
    free(lp), free(x), free(c);
    return acc / (double)n;
}

int cmd_train(int argc, char **argv) {
    const char *cmd = "train";
    args a;
    int hrc = help_or_init(&a, cmd, argc, argv, HELP);
    if (hrc) return hrc < 0 ? 0 : hrc;
    const char *data = opt_str(&a, "--data", NULL), *spec = opt_str(&a, "--flow", NULL), *out = opt_str(&a, "--out", NULL);
    const char *format = opt_str(&a, "--format", "png");
    const char *ctxcols = opt_str(&a, "--context-cols", NULL);
    int has_steps = 0, has_epochs = 0;
    for (int i = 0; i < argc; i++) has_steps |= !strcmp(argv[i], "--steps"), has_epochs |= !strcmp(argv[i], "--epochs");
    size_t steps = (size_t)opt_num(&a, "--steps", 5000, 1, 1e9), epochs = (size_t)opt_num(&a, "--epochs", 0, 1, 1e9);
    nf_train_opts o = nf_train_defaults();
    o.batch = (size_t)opt_num(&a, "--batch", 100, 0, 1e8);
    o.lr = (float)opt_num(&a, "--lr", 1e-3, 1e-12, 10);
    o.val_split = (float)opt_num(&a, "--val-split", 0, 0, 0.99);
    o.patience = (size_t)opt_num(&a, "--patience", 0, 0, 1e9);
    o.clip_norm = (float)opt_num(&a, "--clip", 0, 0, 1e30);
    o.weight_decay = (float)opt_num(&a, "--weight-decay", 0, 0, 1e3);
    o.standardize = opt_flag(&a, "--standardize");
    size_t ngen = (size_t)opt_num(&a, "--n", 1000, 2, 1e9);
    float noise = (float)opt_num(&a, "--noise", 0.05, 0, 1e3);
    uint64_t seed = (uint64_t)opt_num(&a, "--seed", 0, 0, 1.8e19);
    int quiet = opt_flag(&a, "--quiet");
    engine_opts eng;
    engine_opts_parse(&a, &eng);
    int grid = (int)opt_num(&a, "--grid", 200, 2, 2000);
    int rc = args_check_all_used(&a);
    args_free(&a);
    if (rc) return rc;
    if (!data || !spec || !out) return fail(cmd, EXIT_USAGE, "--data, --flow and --out are required");
    if (has_steps && has_epochs) return fail(cmd, EXIT_USAGE, "give --steps or --epochs, not both");
    if (strcmp(format, "png") && strcmp(format, "svg") && strcmp(format, "pdf"))
        return fail(cmd, EXIT_USAGE, "--format must be png, svg or pdf");
    int generated = 0;
    for (size_t k = 0; nf_data_name(k); k++) generated |= !strcmp(data, nf_data_name(k));
    int labels = ctxcols && !strcmp(ctxcols, "label");
    if (ctxcols && generated != labels)
        return fail(cmd, EXIT_USAGE, "--context-cols: %s", generated ? "a generated set's context is `label`"
                                                                      : "give column numbers of the data file");
    gen g = {data, noise, labels};
    size_t W = 2 + (size_t)labels, nctx = (size_t)labels; /* row width and context columns of the data */

    /* data */
    float *x = NULL, *test = NULL, *hv = NULL;
    size_t n = 0, d = 2, ntest = 0;
    nf_rng *rng = NULL;
    nf_flow *flow = NULL;
    nf_train_report rep;
    memset(&rep, 0, sizeof rep);
    nf_status s = nf_rng_create(seed ^ 0x5eedULL, &rng);
    if (s) { rc = fail(cmd, EXIT_DATA, "%s", nf_last_error()); goto out; }
    if (generated) {
        n = has_epochs ? ngen : 0;
        if (n) {
            x = malloc(n * W * sizeof(float));
            if (!x || generate(&g, rng, n, x)) { rc = fail(cmd, EXIT_DATA, "%s", nf_last_error()); goto out; }
        }
        ntest = 10000;
        test = malloc(ntest * W * sizeof(float));
        nf_rng *tr = NULL;
        nf_rng_create(seed + 12345, &tr);
        if (!test || generate(&g, tr, ntest, test)) { rc = fail(cmd, EXIT_DATA, "%s", nf_last_error()); goto out; }
        nf_rng_free(tr);
    } else {
        if ((s = nf_read_table(data, &x, &n, &d))) { rc = fail(cmd, EXIT_DATA, "%s", nf_last_error()); goto out; }
        if (ctxcols) { /* reorder each row to [x | context] */
            unsigned char *is_ctx = malloc(d);
            float *row = malloc(d * sizeof(float));
            nctx = is_ctx && row ? parse_cols(ctxcols, d, is_ctx) : 0;
            for (size_t i = 0; nctx && nctx < d && i < n; i++) {
                size_t a0 = 0, c0 = d - nctx;
                for (size_t j = 0; j < d; j++) row[is_ctx[j] ? c0++ : a0++] = x[i * d + j];
                memcpy(x + i * d, row, d * sizeof(float));
            }
            free(is_ctx), free(row);
            if (!nctx || nctx >= d) {
                rc = fail(cmd, EXIT_USAGE, "--context-cols %s: give distinct column numbers 0..%zu, leaving at least one data column",
                          ctxcols, d - 1);
                goto out;
            }
            d -= nctx;
        }
    }
    o.epochs = epochs; /* 0 with --steps: on a file, the library runs whole epochs covering them */
    o.steps = steps;
    if (o.patience && o.val_split <= 0) { rc = fail(cmd, EXIT_USAGE, "--patience needs --val-split"); goto out; }

    if ((s = nf_flow_from_spec(spec, d, seed, &flow))) {
        fprintf(stderr, "nflow train: %s\n", nf_last_error());
        rc = s == NF_ERR_NOMEM ? EXIT_DATA : EXIT_USAGE;
        goto out;
    }
    if (nf_flow_context_dim(flow) != nctx) {
        rc = fail(cmd, EXIT_USAGE, "the flow takes a context of %zu values (context=K in its spec) but --context-cols gives %zu",
                  nf_flow_context_dim(flow), nctx);
        goto out;
    }
    if (generated && !has_epochs && o.standardize) {
        /* the scaler of a stream: fitted on 100,000 points drawn once */
        size_t m = 100000;
        float *big = malloc(m * W * sizeof(float));
        if (!big || generate(&g, rng, m, big) || nf_flow_fit_scaler(flow, big, m)) {
            free(big);
            rc = fail(cmd, EXIT_DATA, "%s", nf_last_error());
            goto out;
        }
        free(big);
    }
    if (mkdir_p(out)) { rc = fail(cmd, EXIT_DATA, "cannot create %s: %s", out, strerror(errno)); goto out; }

    progress pr;
    progress_init(&pr, quiet);
    o.seed = seed + 1;
    o.callback = on_progress, o.user = &pr;
    engine_opts_apply(cmd, &eng, out, quiet, &o);
    size_t hist_every = 1;
    if (generated && !has_epochs) {
        o.log_every = steps >= 100 ? steps / 100 : 1;
        hist_every = o.log_every;
        s = nf_flow_fit_stream(flow, draw, &g, &o, &rep);
    } else {
        s = nf_flow_fit(flow, x, n, &o, &rep);
    }
    progress_done(&pr);
    if (s) {
        fprintf(stderr, "nflow train: %s\n", nf_last_error());
        rc = s == NF_ERR_NUMERIC ? EXIT_NUMERIC : EXIT_DATA;
        goto out;
    }

    /* evaluation */
    double test_nll = NAN;
    if (generated) test_nll = mean_nll(flow, test, ntest, &s);
    else if (o.val_split > 0) test_nll = rep.val_loss;
    if (s) { rc = fail(cmd, EXIT_NUMERIC, "evaluating the test NLL: %s", nf_last_error()); goto out; }

    char path[4096], summary[1024];
    snprintf(summary, sizeof summary,
             "{\"data\": \"%s\", \"steps\": %zu, \"epochs\": %zu, \"seconds\": %.3f, \"train_nll\": %.6g, "
             "\"val_nll\": %.6g, \"test_nll\": %.6g, \"seed\": %llu}",
             generated ? data : "file", rep.steps, rep.epochs, rep.seconds, rep.train_loss,
             isnan(rep.val_loss) ? -1.0 : rep.val_loss, isnan(test_nll) ? -1.0 : test_nll, (unsigned long long)seed);
    snprintf(path, sizeof path, "%s/model.nflow", out);
    if ((s = nf_flow_save(flow, path, summary))) { rc = fail(cmd, EXIT_DATA, "%s", nf_last_error()); goto out; }
    /* the loss history */
    hv = malloc((rep.n_history + 1) * 3 * sizeof(float));
    for (size_t i = 0; hv && i < rep.n_history; i++) {
        hv[3 * i] = (float)((i + 1) * hist_every);
        hv[3 * i + 1] = (float)rep.train_history[i];
        hv[3 * i + 2] = isnan(rep.val_history[i]) ? -1.0f : (float)rep.val_history[i];
    }
    snprintf(path, sizeof path, "%s/history.csv", out);
    if (!hv || nf_write_table(path, hv, rep.n_history, 3, hist_every == 1 && !(generated && !has_epochs)
                                                               ? "epoch,train_nll,val_nll"
                                                               : "step,train_nll,val_nll"))
        { rc = fail(cmd, EXIT_DATA, "cannot write %s", path); goto out; }

    /* figures and report */
    char cmdline[2048] = "nflow train";
    for (int i = 0; i < argc; i++) {
        strncat(cmdline, " ", sizeof cmdline - strlen(cmdline) - 1);
        int quote = strpbrk(argv[i], " ()[],\"") != NULL;
        if (quote) strncat(cmdline, "\"", sizeof cmdline - strlen(cmdline) - 1);
        strncat(cmdline, argv[i], sizeof cmdline - strlen(cmdline) - 1);
        if (quote) strncat(cmdline, "\"", sizeof cmdline - strlen(cmdline) - 1);
    }
    run_info info = {cmdline, spec, data, nf_flow_param_count(flow), d, rep.steps, rep.epochs, rep.seconds,
                     rep.train_loss, rep.val_loss, test_nll, rep.train_history, rep.val_history, rep.n_history,
                     hist_every, format, grid};
    char names[16][64];
    int nfig = 0;
    rc = make_figures(cmd, flow, generated ? test : x, generated ? ntest : n, out, &info, names, &nfig);
    if (!rc) rc = write_report(cmd, out, &info, names, nfig);
    if (!quiet || !rc) {
        printf("model:   %s/model.nflow (%zu parameters)\n", out, nf_flow_param_count(flow));
        if (rep.epochs) printf("trained: %zu steps, %zu epochs in %.1f s; final train NLL %.4f", rep.steps, rep.epochs, rep.seconds, rep.train_loss);
        else printf("trained: %zu steps on fresh batches in %.1f s; final train NLL %.4f", rep.steps, rep.seconds, rep.train_loss);
        if (!isnan(rep.val_loss)) printf(", validation %.4f", rep.val_loss);
        printf("\n");
        if (!isnan(test_nll)) printf("test NLL: %.4f nats (%s)\n", test_nll, generated ? "10,000 fresh points" : "validation rows");
        if (!rc) printf("report:  %s/report.html (%d figures)\n", out, nfig);
    }
out:
    free(hv);
    nf_train_report_free(&rep);
    nf_flow_free(flow);
    nf_rng_free(rng);
    free(x), free(test);
    return rc;
}
