/*
 * cmd_fit.c - nflow fit-density: variational fitting of a flow to one of the
 * energies of Rezende & Mohamed 2015 by reverse KL.
 */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *HELP =
    "usage: nflow fit-density --target u1|u2|u3|u4 --flow SPEC --out DIR [options]\n"
    "\n"
    "Fits a flow q to an unnormalised 2-D density p~ = exp(-U) by minimising the\n"
    "reverse KL divergence E_q[log q - log p~] (Rezende & Mohamed 2015: U1-U4 are\n"
    "the energies of its Table 1; U2-U4 get the envelope (x1/4)^8/2 so that they\n"
    "can be normalised).  Each step maps fresh base samples forward (sampling\n"
    "direction), so flows that sample in one pass fit fastest: planar, radial,\n"
    "IAF, couplings.  Writes DIR/model.nflow, DIR/history.csv, DIR/fit.png\n"
    "(target, fitted density and samples side by side), DIR/loss.png and\n"
    "DIR/report.html.\n"
    "\n"
    "  --target U        u1, u2, u3 or u4\n"
    "  --flow SPEC       e.g. \"planar(layers=32)\", \"radial(layers=32)\",\n"
    "                    \"iaf(layers=4, hidden=[64,64])\" (see docs/spec.md)\n"
    "  --out DIR         output folder (created if missing)\n"
    "  --steps N         optimiser steps (default 10000)\n"
    "  --batch B         base samples per step (default 256)\n"
    "  --lr LR           Adam learning rate (default 0.001)\n"
    "  --clip C          clip the gradient's L2 norm to C\n"
    "  --anneal N        raise the target's weight from 0.01 to 1 over the first N\n"
    "                    steps (the paper's annealing; helps to find every mode)\n"
    "  --seed S          seed of the weights and samples (default 0)\n"
    ENGINE_OPTS_HELP
    "  --format FMT      figures as png (default), svg or pdf\n"
    "  --grid G          density figures on a G x G grid of [-4, 4]^2 (default 200)\n"
    "  --quiet           no progress display\n"
    "\n"
    "The printed KL estimate is E_q[log q - log p~] = KL(q || p) - log Z: it\n"
    "falls towards -log Z as q approaches p.  Exit codes: 0 ok, 1 usage, 2 file\n"
    "error, 3 numerical failure.\n"
    "\n"
    "Example:\n"
    "  nflow fit-density --target u1 --flow \"planar(layers=32)\" --steps 10000 --out runs/u1\n";

static int on_progress(void *user, const nf_train_progress *p) {
    progress_update((progress *)user, p);
    return 0;
}

int cmd_fit_density(int argc, char **argv, const par *procs) {
    const char *cmd = "fit-density";
    args a;
    int rc = help_or_init(&a, cmd, argc, argv, HELP);
    if (rc) return rc < 0 ? 0 : rc;
    const char *tname = opt_str(&a, "--target", NULL), *spec = opt_str(&a, "--flow", NULL), *out = opt_str(&a, "--out", NULL);
    const char *format = opt_str(&a, "--format", "png");
    nf_train_opts o = nf_train_defaults();
    o.steps = (size_t)opt_num(&a, "--steps", 10000, 1, 1e9);
    o.batch = (size_t)opt_num(&a, "--batch", 256, 1, 1e7);
    o.lr = (float)opt_num(&a, "--lr", 1e-3, 1e-12, 10);
    o.clip_norm = (float)opt_num(&a, "--clip", 0, 0, 1e30);
    o.anneal_steps = (size_t)opt_num(&a, "--anneal", 0, 0, 1e9);
    uint64_t seed = (uint64_t)opt_num(&a, "--seed", 0, 0, 1.8e19);
    int grid = (int)opt_num(&a, "--grid", 200, 2, 2000), quiet = opt_flag(&a, "--quiet");
    engine_opts eng;
    engine_opts_parse(&a, &eng);
    rc = args_check_all_used(&a);
    args_free(&a);
    if (rc) return rc;
    if (!tname || !spec || !out) return fail(cmd, EXIT_USAGE, "--target, --flow and --out are required");
    if (strcmp(format, "png") && strcmp(format, "svg") && strcmp(format, "pdf"))
        return fail(cmd, EXIT_USAGE, "--format must be png, svg or pdf");
    nf_log_density_fn target = NULL;
    if (nf_energy_target(tname, &target)) return fail(cmd, EXIT_USAGE, "%s", nf_last_error());
    nf_flow *flow = NULL;
    if (nf_flow_from_spec(spec, 2, seed, &flow)) return fail(cmd, EXIT_USAGE, "%s", nf_last_error());
    if ((rc = set_device(cmd, flow, eng.device))) {
        nf_flow_free(flow);
        return rc;
    }
    int lead = procs->rank == 0; /* several processes (mpirun): rank 0 writes and speaks */
    if (lead && mkdir_p(out, eng.made, sizeof eng.made)) rc = fail(cmd, EXIT_DATA, "cannot create %s: %s", out, strerror(errno));
    if ((rc = par_agree(procs, rc))) {
        nf_flow_free(flow);
        return rc;
    }
    progress pr;
    progress_init(&pr, quiet || !lead);
    o.seed = seed + 1, o.log_every = o.steps >= 100 ? o.steps / 100 : 1;
    o.callback = on_progress, o.user = &pr;
    o.comm = procs->comm; /* each process its own base samples, --batch the global batch */
    engine_opts_apply(cmd, &eng, out, quiet || !lead, &o);
    nf_train_report rep;
    nf_status s = nf_flow_fit_reverse_kl(flow, target, NULL, &o, &rep);
    progress_done(&pr);
    if (s) {
        rc = fail(cmd, s == NF_ERR_NUMERIC ? EXIT_NUMERIC : EXIT_DATA, "%s", nf_last_error());
        goto done;
    }
    if (!lead) goto done;
    char path[4096], summary[512];
    snprintf(summary, sizeof summary, "{\"target\": \"%s\", \"steps\": %zu, \"seconds\": %.3f, \"kl_estimate\": %.6g, \"seed\": %llu}",
             tname, rep.steps, rep.seconds, rep.train_loss, (unsigned long long)seed);
    snprintf(path, sizeof path, "%s/model.nflow", out);
    if (nf_flow_save(flow, path, summary)) {
        rc = fail(cmd, EXIT_DATA, "%s", nf_last_error());
        goto done;
    }
    snprintf(path, sizeof path, "%s/history.csv", out);
    if ((rc = write_history(cmd, path, "step,kl_estimate", rep.train_history, NULL, rep.n_history, o.log_every))) goto done;
    char cmdline[2048];
    cmdline_join(cmdline, sizeof cmdline, "nflow fit-density", argc, argv);
    run_info info = {.cmdline = cmdline,
                     .spec = spec,
                     .data_name = tname,
                     .n_params = nf_flow_param_count(flow),
                     .dim = 2,
                     .steps = rep.steps,
                     .seconds = rep.seconds,
                     .train_nll = rep.train_loss,
                     .val_nll = NAN,
                     .test_nll = NAN,
                     .train_hist = rep.train_history,
                     .val_hist = rep.val_history,
                     .n_hist = rep.n_history,
                     .hist_every = o.log_every,
                     .format = format,
                     .grid = grid,
                     .loss_name = "KL estimate E_q[log q - log p~]"};
    char names[16][64];
    int nfig = 0;
    rc = make_fit_figures(cmd, flow, target, -4, 4, out, &info, names, &nfig);
    if (!rc) rc = write_report(cmd, out, &info, names, nfig);
    if (!rc) {
        printf("model:   %s/model.nflow (%zu parameters)\n", out, nf_flow_param_count(flow));
        printf("fitted:  %zu steps in %.1f s; KL estimate E_q[log q - log p~] = %.4f (-log Z when q = p)\n", rep.steps,
               rep.seconds, rep.train_loss);
        printf("report:  %s/report.html (%d figures)\n", out, nfig);
    }
done:
    if (lead) engine_opts_finish(cmd, &eng, out, rc);
    nf_train_report_free(&rep);
    nf_flow_free(flow);
    return rc;
}
