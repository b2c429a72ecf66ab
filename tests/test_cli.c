/*
 * test_cli.c - the nflow command end to end: help texts, data -> train ->
 * sample -> logprob round trips through CSV and NPY, info, eval, exit codes
 * (1 usage, 2 bad data or model, 3 numerical failure), the files a training
 * run writes, and the report opened in headless Chromium when installed.
 */
#include "test.h"

#include <ctype.h>

#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char bin[1024], tmp[512];

/* Runs a shell command line; returns its exit code and its stdout (first 64 KiB). */
static int run(char *out, size_t cap, const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = 0;
    char sink[4096];
    if (out) n = fread(out, 1, cap - 1, p);
    while (fread(sink, 1, sizeof sink, p) > 0) {
    }
    if (out) out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int exists(const char *dir, const char *name) {
    char p[2048];
    struct stat sb;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &sb) == 0 && sb.st_size > 0;
}

int nf__alloc_maps_large(void); /* 0 in sanitizer builds */

void test_cli(const char *build) {
    snprintf(bin, sizeof bin, "%s/nflow", build);
    snprintf(tmp, sizeof tmp, "%s/nflow_cli_%d", getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
    mkdir(tmp, 0777);
    static char out[65536];
    const char *cmds[] = {"train", "sample", "logprob", "eval", "data", "plot", "info", "fit-density"};
    CHECK(run(out, sizeof out, "%s --help", bin) == 0 && strstr(out, "train") && strstr(out, "Exit codes"), "nflow --help");
    CHECK(run(out, sizeof out, "%s --version", bin) == 0 && strstr(out, "nflow 0.1.0") && strstr(out, "blas: "),
          "nflow --version names the library and the BLAS");
    for (int i = 0; i < 8; i++) {
        char want[64];
        snprintf(want, sizeof want, "usage: nflow %s", cmds[i]);
        CHECK(run(out, sizeof out, "%s %s --help", bin, cmds[i]) == 0 && strstr(out, want), "nflow %s --help", cmds[i]);
    }
    CHECK(run(NULL, 0, "%s frobnicate 2>/dev/null", bin) == 1, "unknown command: exit 1");
    /* --device: a clear refusal (exit 1) without CUDA or a GPU, on every command that takes it */
    CHECK(run(out, sizeof out, "%s --version", bin) == 0 && strstr(out, nf_cuda_available() ? "cuda: yes" : "cuda: no"),
          "nflow --version says whether CUDA is compiled in");
    {
        const char *dev_cmds[] = {"train --data moons --flow \"realnvp(layers=2, hidden=[8])\" --steps 5",
                                  "fit-density --target u1 --flow \"realnvp(layers=2, hidden=[8])\" --steps 5"};
        for (int i = 0; i < 2; i++) {
            CHECK(run(out, sizeof out, "%s %s --out %s/dev --device tpu 2>&1", bin, dev_cmds[i], tmp) == 1 &&
                      strstr(out, "unknown device \"tpu\" (cpu, cuda or cuda:K") && !exists(tmp, "dev"),
                  "%s --device tpu: exit 1 naming the devices (%s)", dev_cmds[i], out);
            int rc = run(out, sizeof out, "%s %s --out %s/dev --device cuda 2>&1", bin, dev_cmds[i], tmp);
            if (!nf_cuda_available())
                CHECK(rc == 1 && strstr(out, "built without CUDA (build with make CUDA=1)"),
                      "%s --device cuda without CUDA: exit 1 saying so (%s)", dev_cmds[i], out);
            /* --split: a bad value is a usage error; columns and rows both train */
            CHECK(run(out, sizeof out, "%s %s --out %s/split --threads 2 --split diagonal 2>&1", bin, dev_cmds[i], tmp) == 1 &&
                      strstr(out, "--split must be rows, columns or auto, got 'diagonal'") && !exists(tmp, "split"),
                  "%s --split diagonal: exit 1 (%s)", dev_cmds[i], out);
            for (int k = 0; k < 2; k++)
            {
                char model[64];
                snprintf(model, sizeof model, "split%d%d/model.nflow", i, k);
                CHECK(run(out, sizeof out, "%s %s --out %s/split%d%d --threads 3 --split %s --quiet 2>&1", bin, dev_cmds[i],
                          tmp, i, k, k ? "rows" : "columns") == 0 && exists(tmp, model),
                      "%s --threads 3 --split %s (%s)", dev_cmds[i], k ? "rows" : "columns", out);
            }
        }
    }

    /* data -> train (file, validation, scaler) */
    CHECK(run(NULL, 0, "%s data moons -n 600 --seed 3 --out %s/d.csv", bin, tmp) == 0 && exists(tmp, "d.csv"), "nflow data");
    int rc = run(out, sizeof out, "%s train --data %s/d.csv --flow 'maf(hidden=[16,16])' --epochs 40 --batch 100 "
                 "--val-split 0.2 --test-split 0.1 --standardize --out %s/run --quiet", bin, tmp, tmp);
    CHECK(rc == 0 && strstr(out, "test NLL"), "nflow train on a CSV file: rc %d: %s", rc, out);
    const char *files[] = {"model.nflow", "history.csv", "report.html", "samples.png", "density.png", "flow_2x2.png", "stages.png", "loss.png"};
    char rundir[1024];
    snprintf(rundir, sizeof rundir, "%s/run", tmp);
    for (int i = 0; i < 8; i++) CHECK(exists(rundir, files[i]), "train wrote %s", files[i]);
    float *h = NULL;
    size_t n, d;
    char path[2048];
    snprintf(path, sizeof path, "%s/history.csv", rundir);
    CHECK_OK(nf_read_table(path, &h, &n, &d));
    CHECK(n == 40 && d == 3 && h && h[3 * 39 + 1] < h[1], "history: 40 epochs, loss falls (%g -> %g)", h ? h[1] : 0, h ? h[3 * 39 + 1] : 0);
    free(h);

    /* --val FILE: the validation rows from another file (early stopping watches them) */
    CHECK(run(NULL, 0, "%s data moons -n 200 --seed 9 --out %s/dv.csv", bin, tmp) == 0, "nflow data (validation file)");
    rc = run(out, sizeof out, "%s train --data %s/d.csv --val %s/dv.csv --flow 'maf(hidden=[16,16])' --epochs 30 --patience 3 "
             "--out %s/runv --quiet 2>&1", bin, tmp, tmp, tmp);
    CHECK(rc == 0 && strstr(out, "validation"), "train --val FILE --patience: rc %d: %s", rc, out);
    CHECK(run(out, sizeof out, "%s train --data %s/d.csv --val %s/dv.csv --val-split 0.1 --flow maf --epochs 1 --out %s/runv2 2>&1",
              bin, tmp, tmp, tmp) == 1 && strstr(out, "not both"), "--val with --val-split is refused: %s", out);
    CHECK(run(out, sizeof out, "%s train --data %s/d.csv --val examples/data/breast_cancer.csv --flow maf --epochs 1 --out %s/runv3 2>&1",
              bin, tmp, tmp) == 2 && strstr(out, "data and 0 context columns"), "a validation file of other columns: %s", out);
    CHECK(run(out, sizeof out, "%s train --data moons --val %s/dv.csv --flow maf --steps 1 --out %s/runv4 2>&1", bin, tmp, tmp) == 1 &&
              strstr(out, "apply to a file"), "--val on generated data is refused: %s", out);

    /* variational fitting: a short IAF run on U1 */
    rc = run(out, sizeof out, "%s fit-density --target u1 --flow 'iaf(layers=2, hidden=[16,16])' --steps 400 --batch 128 "
             "--lr 3e-3 --out %s/fd --quiet", bin, tmp);
    char fdir[1024];
    snprintf(fdir, sizeof fdir, "%s/fd", tmp);
    const char *kl = strstr(out, "log p~] = ");
    CHECK(rc == 0 && kl && exists(fdir, "fit.png") && exists(fdir, "model.nflow") && exists(fdir, "report.html"),
          "nflow fit-density: rc %d: %s", rc, out);
    CHECK(kl && strtod(kl + 10, NULL) > -1.9 && strtod(kl + 10, NULL) < 0, "fit-density KL estimate above -log Z = -1.8775: %s",
          kl ? kl : "(none)");
    CHECK(run(NULL, 0, "%s fit-density --target u7 --flow planar --out %s/fd2 2>/dev/null", bin, tmp) == 1,
          "unknown target: usage error");

    /* conditional: moons with their label as the context column */
    CHECK(run(NULL, 0, "%s data moons -n 1000 --seed 4 --labels --out %s/dl.csv", bin, tmp) == 0, "nflow data --labels");
    rc = run(out, sizeof out, "%s train --data %s/dl.csv --context-cols 2 --flow 'nsf(layers=4, hidden=[32,32], bins=6, context=1)' "
             "--epochs 60 --batch 100 --lr 3e-3 --val-split 0.2 --test-split 0.1 --out %s/cond --quiet", bin, tmp, tmp);
    CHECK(rc == 0 && strstr(out, "test NLL"), "conditional nflow train: rc %d: %s", rc, out);
    CHECK(run(out, sizeof out, "%s logprob --model %s/cond/model.nflow --in %s/d.csv --out - 2>&1", bin, tmp, tmp) == 2 &&
              strstr(out, "has 2 columns but the model needs 3 (dimension 2 plus its context)"),
          "a conditional model refuses rows without their context: %s", out);
    char cdir[1024];
    snprintf(cdir, sizeof cdir, "%s/cond", tmp);
    CHECK(exists(cdir, "samples_by_context.png") && exists(cdir, "loss.png"), "conditional train drew samples per context");
    rc = run(NULL, 0, "%s train --data %s/dl.csv --context-cols 2 --flow 'nsf(layers=2)' --epochs 1 --out %s/cond2 --quiet 2>/dev/null",
             bin, tmp, tmp);
    CHECK(rc == 1, "a context column with an unconditional spec is a usage error (rc %d)", rc);
    rc = run(out, sizeof out, "%s train --data %s/dl.csv --context-cols label --flow 'realnvp(layers=2, hidden=[8,8], context=1)' "
             "--epochs 1 --out %s/cond3 --quiet 2>&1", bin, tmp, tmp);
    CHECK(rc == 0 && strstr(out, "model:"), "a file's column named `label` is a context column by its name: rc %d: %s", rc, out);
    CHECK(run(out, sizeof out, "%s train --data moons --context-cols 2 --flow 'nsf(context=1)' --steps 1 --out %s/cond4 2>&1", bin,
              tmp) == 1 && strstr(out, "a generated set's context is `label`"),
          "a generated set takes only `label` as its context: %s", out);
    CHECK(run(out, sizeof out, "%s info --model %s/cond/model.nflow", bin, tmp) == 0 && strstr(out, "context:    1 values"),
          "nflow info shows the context dimension: %s", out);
    CHECK(run(NULL, 0, "%s sample --model %s/cond/model.nflow -n 5 --out - 2>/dev/null", bin, tmp) == 1,
          "sampling a conditional model without --context: usage error");
    CHECK(run(out, sizeof out, "%s sample --model %s/cond/model.nflow -n 5 --context 1 --out - --device tpu 2>&1", bin, tmp) == 1 &&
              strstr(out, "unknown device \"tpu\""), "sample --device tpu: exit 1 (%s)", out);
    CHECK(run(out, sizeof out, "%s logprob --model %s/cond/model.nflow --in %s/d.csv --out - --device %s 2>&1", bin, tmp, tmp,
              nf_cuda_available() ? "cuda:7" : "cuda") == 1 && strstr(out, nf_cuda_available() ? "cuda" : "built without CUDA"),
          "logprob --device cuda: exit 1 saying why (%s)", out);
    for (int lab = 0; lab < 2; lab++) {
        float *sm = NULL;
        size_t ns, ds;
        snprintf(path, sizeof path, "%s/cs%d.csv", tmp, lab);
        CHECK(run(NULL, 0, "%s sample --model %s/cond/model.nflow -n 500 --context %d --out %s", bin, tmp, lab, path) == 0,
              "conditional sample with --context %d", lab);
        CHECK_OK(nf_read_table(path, &sm, &ns, &ds));
        double my = 0;
        for (size_t i = 0; sm && i < ns; i++) my += sm[2 * i + 1] / (double)ns;
        CHECK(ns == 500 && ds == 2 && (lab ? my < 0.15 : my > 0.35), "samples for label %d have mean height %.3f", lab, my);
        free(sm);
    }
    rc = run(out, sizeof out, "printf '0,1,0\n0,1,1\n' | %s logprob --model %s/cond/model.nflow --in - --out -", bin, tmp);
    double l0 = NAN, l1 = NAN;
    const char *lp0 = strchr(out, '\n');
    if (lp0) l0 = strtod(lp0 + 1, NULL), lp0 = strchr(lp0 + 1, '\n');
    if (lp0) l1 = strtod(lp0 + 1, NULL);
    CHECK(rc == 0 && l0 > l1 + 2, "logprob of (0, 1): %g given label 0 (its moon), %g given label 1", l0, l1);

    /* --threads: the same samples and densities as one thread with a single-threaded BLAS */
    CHECK(run(NULL, 0, "OPENBLAS_NUM_THREADS=1 %s sample --model %s/model.nflow -n 20000 --seed 2 --out %s/t1.csv && "
              "%s sample --model %s/model.nflow -n 20000 --seed 2 --threads 2 --out %s/t2.csv && cmp -s %s/t1.csv %s/t2.csv",
              bin, rundir, tmp, bin, rundir, tmp, tmp, tmp) == 0, "sample --threads 2 equals one thread");
    CHECK(run(NULL, 0, "OPENBLAS_NUM_THREADS=1 %s logprob --model %s/model.nflow --in %s/t1.csv --out %s/l1.csv && "
              "%s logprob --model %s/model.nflow --in %s/t1.csv --threads 3 --out %s/l2.csv && cmp -s %s/l1.csv %s/l2.csv",
              bin, rundir, tmp, tmp, bin, rundir, tmp, tmp, tmp, tmp) == 0, "logprob --threads 3 equals one thread");

    /* sample / logprob round trip through CSV and NPY */
    CHECK(run(NULL, 0, "%s sample --model %s/model.nflow -n 200 --seed 5 --with-log-prob --out %s/s.npy", bin, rundir, tmp) == 0, "sample to .npy");
    CHECK(run(NULL, 0, "%s sample --model %s/model.nflow -n 200 --seed 5 --out %s/s.csv", bin, rundir, tmp) == 0, "sample to .csv");
    CHECK(run(NULL, 0, "%s logprob --model %s/model.nflow --in %s/s.csv --out %s/lp.npy", bin, rundir, tmp, tmp) == 0, "logprob");
    float *s = NULL, *c = NULL, *lp = NULL;
    size_t n1, d1, n2, d2, n3, d3;
    snprintf(path, sizeof path, "%s/s.npy", tmp);
    nf_status s1 = nf_read_table(path, &s, &n1, &d1);
    snprintf(path, sizeof path, "%s/s.csv", tmp);
    nf_status s2 = nf_read_table(path, &c, &n2, &d2);
    snprintf(path, sizeof path, "%s/lp.npy", tmp);
    nf_status s3 = nf_read_table(path, &lp, &n3, &d3);
    CHECK(!s1 && !s2 && !s3 && n1 == 200 && d1 == 3 && n2 == 200 && d2 == 2 && n3 == 200 && d3 == 1, "shapes of the outputs");
    if (!s1 && !s2 && !s3 && n1 == 200 && n2 == 200 && n3 == 200) {
        double worst = 0, wx = 0;
        for (int i = 0; i < 200; i++) {
            worst = fmax(worst, fabs(lp[i] - s[3 * i + 2]));
            wx = fmax(wx, fmax(fabs(c[2 * i] - s[3 * i]), fabs(c[2 * i + 1] - s[3 * i + 1])));
        }
        CHECK(wx == 0, "same seed, same samples in CSV and NPY (%g)", wx);
        CHECK(worst < 1e-3, "logprob of the samples equals their --with-log-prob column (max diff %g)", worst);
    }
    free(s), free(c), free(lp);
    CHECK(run(out, sizeof out, "%s info --model %s/model.nflow", bin, rundir) == 0 && strstr(out, "maf(hidden=[16,16])") &&
              strstr(out, "scaler:"), "nflow info: %s", out);
    CHECK(run(out, sizeof out, "%s plot --model %s/model.nflow --data moons --out %s/plots --format svg", bin, rundir, tmp) == 0 &&
              strstr(out, "samples.svg"), "nflow plot (svg)");

    /* eval: the seed walkthrough */
    CHECK(run(out, sizeof out, "%s eval --dist 'normal(0, 1)' --log-prob 2.01", bin) == 0 && fabs(atof(out) + 2.938989) < 1e-6,
          "eval log_prob: %s", out);
    CHECK(run(out, sizeof out, "%s eval --dist 'transformed(normal(0,1), affine_scalar(shift=0, scale=2))' --cdf 0,1,2", bin) == 0 &&
              strstr(out, "0.5\n0.69146") && strstr(out, "0.84134"), "eval cdf: %s", out);

    /* --opt=value and -nVALUE */
    CHECK(run(out, sizeof out, "%s eval --dist='normal(0, 1)' --log-prob=2.01", bin) == 0 && fabs(atof(out) + 2.938989) < 1e-6,
          "--opt=value: %s", out);
    CHECK(run(out, sizeof out, "%s sample --model=%s/model.nflow -n3 --seed=2 --out=-", bin, rundir) == 0 && strstr(out, "x1,x2\n") &&
              run(out, sizeof out, "%s sample --model=%s/model.nflow -n3 --seed=2 --out=- | wc -l", bin, rundir) == 0 && atoi(out) == 4,
          "-n3 --seed=2 --out=-: %s", out);

    /* make install: a program built with pkg-config runs without LD_LIBRARY_PATH; the shared library
     * exports the public API only; make uninstall removes it all (not for sanitizer builds, whose
     * library needs their runtime) */
    if (nf__alloc_maps_large() && run(NULL, 0, "command -v pkg-config >/dev/null && command -v make >/dev/null") == 0) {
        CHECK(run(NULL, 0, "make -s install PREFIX=%s/pfx BUILD=%s >/dev/null", tmp, build) == 0, "make install");
        CHECK(run(out, sizeof out, "cc examples/walkthrough.c $(PKG_CONFIG_PATH=%s/pfx/lib/pkgconfig pkg-config --cflags --libs nflow) "
                                   "-lm -o %s/wk && env -u LD_LIBRARY_PATH %s/wk", tmp, tmp, tmp) == 0 && strstr(out, "-2.93899"),
              "an installed program runs without LD_LIBRARY_PATH: %.60s", out);
        CHECK(run(out, sizeof out, "nm -D %s/pfx/lib/libnflow.so.0 | grep -c ' T nf__'", tmp) != 0 && atoi(out) == 0 &&
                  run(out, sizeof out, "nm -D %s/pfx/lib/libnflow.so.0 | grep -c ' T nf_flow_fit$'", tmp) == 0 && atoi(out) == 1,
              "libnflow.so exports nf_ functions and no nf__ ones");
        CHECK(run(NULL, 0, "make -s uninstall PREFIX=%s/pfx BUILD=%s >/dev/null && test -z \"$(find %s/pfx -type f)\"", tmp, build, tmp) == 0,
              "make uninstall removes every file");
    }

    /* the builders' table, listed */
    CHECK(run(out, sizeof out, "%s eval --list", bin) == 0 && strstr(out, "Bijectors:") && strstr(out, "  realnvp ") &&
              strstr(out, "Distributions:") && strstr(out, "  mog "), "eval --list: %.80s", out);
    CHECK(run(out, sizeof out, "%s nosuch 2>&1", bin) == 1 && strstr(out, "known: train, sample, logprob, eval, data, plot, info, fit-density"),
          "unknown command lists the table: %s", out);

    /* exit codes */
    CHECK(run(NULL, 0, "%s train --data moons --flow 'maf(hidden=[8]' --out %s/x --quiet 2>/dev/null", bin, tmp) == 1, "malformed spec: 1");
    CHECK(run(NULL, 0, "%s train --data moons --out %s/x 2>/dev/null", bin, tmp) == 1, "missing --flow: 1");
    snprintf(path, sizeof path, "%s/bad.csv", tmp);
    FILE *f = fopen(path, "w");
    if (f) fputs("1,2\n3,4,5\n", f), fclose(f);
    CHECK(run(NULL, 0, "%s train --data %s --flow 'maf(hidden=[8])' --out %s/x --quiet 2>/dev/null", bin, path, tmp) == 2, "bad data: 2");
    CHECK(run(NULL, 0, "%s sample --model %s -n 3 --out - 2>/dev/null", bin, path) == 2, "bad model file: 2");
    CHECK(run(NULL, 0, "%s train --data moons --flow 'maf(hidden=[8], scale=unbounded, zero_last=0)' --steps 300 --lr 10 --out %s/x --quiet 2>/dev/null", bin, tmp) == 3,
          "numerical failure: 3");
    CHECK(run(NULL, 0, "%s eval --bijector sigmoid --inverse 1 2>/dev/null", bin) == 2, "out-of-domain eval: 2");

    /* reports describe the parameters kept, and "test" only rows never seen */
    {
        const char *bc = "examples/data/breast_cancer.csv";
        snprintf(path, sizeof path, "%s/bc_test.csv", tmp);
        CHECK(run(NULL, 0, "head -1 %s > %s && tail -60 %s >> %s && head -n -60 %s > %s/bc_train.csv", bc, path, bc, path, bc, tmp) == 0,
              "split the table");
        rc = run(out, sizeof out,
                 "%s train --data %s/bc_train.csv --test %s --flow 'maf(layers=2, hidden=[32,32])' --epochs 300 --lr 3e-3 "
                 "--val-split 0.2 --patience 3 --standardize --seed 1 --out %s/bc --grid 20 --quiet",
                 bin, tmp, path, tmp);
        double tnll = NAN, vnll = NAN, best = INFINITY;
        const char *tp = strstr(out, "test NLL: "), *vp = strstr(out, "), validation ");
        if (tp) tnll = atof(tp + 10);
        if (vp) vnll = atof(vp + 14);
        CHECK(rc == 0 && strstr(out, "kept epoch") && strstr(out, "(the rows of --test)"), "early stopping is reported: %s", out);
        char hist[8192] = "";
        snprintf(path, sizeof path, "%s/bc/history.csv", tmp);
        FILE *hf = fopen(path, "r");
        if (hf) {
            char line[256];
            while (fgets(line, sizeof line, hf)) {
                const char *c2 = strrchr(line, ',');
                if (c2 && c2[1] != '\n' && isdigit((unsigned char)line[0])) best = fmin(best, atof(c2 + 1));
                strncat(hist, line, sizeof hist - strlen(hist) - 1);
            }
            fclose(hf);
        }
        CHECK(fabs(vnll - best) < 1e-4, "the validation NLL printed (%.4f) is the kept epoch's, the best in history.csv (%.4f)",
              vnll, best);
        /* the test NLL is the saved model's on the test rows */
        CHECK(run(out, sizeof out, "%s logprob --model %s/bc/model.nflow --in %s/bc_test.csv --out - | "
                                   "awk 'NR > 1 {s -= $1; n++} END {printf \"%%.4f\", s / n}'", bin, tmp, tmp) == 0 &&
                  fabs(atof(out) - tnll) < 1e-3,
              "the test NLL printed (%.4f) is the saved model's on the --test rows (%s)", tnll, out);
        /* without validation: empty fields, never -1 */
        CHECK(run(NULL, 0, "%s train --data %s/bc_train.csv --flow 'maf(hidden=[8])' --epochs 2 --standardize --out %s/bc2 --grid 20 --quiet",
                  bin, tmp, tmp) == 0 && run(out, sizeof out, "sed -n 2p %s/bc2/history.csv", tmp) == 0 && strstr(out, ",\n") &&
                  !strstr(out, "-1\n"), "history.csv leaves a missing validation value empty: %s", out);
        CHECK(run(out, sizeof out, "%s train --data moons --flow 'maf(hidden=[8])' --steps 50 --val-split 0.2 --out %s/x 2>&1", bin, tmp) == 1 &&
                  strstr(out, "--val-split needs rows to hold out"), "--val-split on a stream is refused: %s", out);
    }

    /* real tables: columns by name, constant columns named at once, advice when the loss breaks down,
     * a 1-D log_prob array */
    {
        const char *dg = "examples/data/digits.csv";
        CHECK(run(out, sizeof out, "%s train --data %s --flow 'maf(hidden=[8])' --epochs 1 --standardize --out %s/dg --quiet 2>&1",
                  bin, dg, tmp) == 2 && strstr(out, "3 constant columns (std 0, 0-based): 0, 32, 39") && strstr(out, "--drop-constant"),
              "--standardize names every constant column and the way out: %s", out);
        CHECK(run(out, sizeof out, "%s train --data %s --drop label --drop-constant --flow 'maf(hidden=[8])' --epochs 1 --standardize "
                                   "--out %s/dg --grid 20 --quiet 2>&1", bin, dg, tmp) == 0 &&
                  strstr(out, "dropping 3 constant columns: px0, px32, px39") && run(out, sizeof out, "%s info %s/dg/model.nflow", bin, tmp) == 0 &&
                  strstr(out, "dimension:  61"), "--drop label --drop-constant: 61 columns left: %s", out);
        CHECK(run(out, sizeof out, "%s train --data %s --columns px20,px21,5 --flow 'maf(hidden=[8])' --epochs 1 --out %s/dg3 --grid 20 --quiet "
                                   "&& %s info %s/dg3/model.nflow", bin, dg, tmp, bin, tmp) == 0 && strstr(out, "dimension:  3"),
              "--columns by name and index: %s", out);
        CHECK(run(out, sizeof out, "%s train --data %s --columns nosuch --flow maf --epochs 1 --out %s/dg4 2>&1", bin, dg, tmp) == 1 &&
                  strstr(out, "'nosuch' is not a column"), "an unknown column is named: %s", out);
        CHECK(run(out, sizeof out, "%s train --data examples/data/breast_cancer.csv --drop label --flow 'maf(layers=3, hidden=[64,64], scale=unbounded, zero_last=0)' "
                                   "--epochs 3 --lr 1e-2 --out %s/bcx --quiet 2>&1", bin, tmp) == 3 && strstr(out, "try --standardize"),
              "a loss that breaks down at once on unscaled data suggests --standardize: %s", out);
        CHECK(run(out, sizeof out, "%s train --data %s --drop label --dequantize uniform --flow 'maf(hidden=[16])' --epochs 3 "
                                   "--standardize --test-split 0.2 --out %s/dq --grid 20 --quiet 2>&1", bin, dg, tmp) == 0 &&
                  strstr(out, "test NLL: "), "--dequantize uniform: %s", out);
        { /* --split-seed: one split (and one dequantised test set) for several --seed runs; a model that
           * barely moves (lr 1e-12) makes the test NLL a function of the test rows alone */
            char nll[3][64] = {{0}};
            const char *seeds[3] = {"--seed 1 --split-seed 5", "--seed 2 --split-seed 5", "--seed 2"};
            for (int k = 0; k < 3; k++) {
                const char *t = NULL;
                if (run(out, sizeof out, "%s train --data %s --drop label --dequantize uniform --flow affine_scalar --epochs 1 "
                                         "--lr 1e-12 --test-split 0.2 %s --out %s/ss --grid 20 --quiet 2>&1", bin, dg, seeds[k], tmp) == 0 &&
                    (t = strstr(out, "test NLL: ")))
                    snprintf(nll[k], sizeof nll[k], "%.*s", (int)strcspn(t + 10, " \n") + 10, t);
            }
            CHECK(nll[0][0] && !strcmp(nll[0], nll[1]) && strcmp(nll[1], nll[2]),
                  "--split-seed fixes the held-out rows across --seed: '%s' '%s', without it '%s'", nll[0], nll[1], nll[2]);
        }
        /* the digits as 1 x 8 x 8 images: an image flow, bits per dimension, a figure of images */
        rc = run(out, sizeof out, "%s train --data digits-8x8 --standardize --flow 'glow(levels=2, steps=1, hidden=[8])' "
                 "--epochs 2 --out %s/img --quiet 2>&1", bin, tmp);
        char imgdir[1024];
        snprintf(imgdir, sizeof imgdir, "%s/img", tmp);
        CHECK(rc == 0 && strstr(out, "bits per dimension") && exists(imgdir, "samples.png") && exists(imgdir, "loss.png"),
              "train --data digits-8x8 with glow: rc %d: %s", rc, out);
        CHECK(run(out, sizeof out, "%s train --data digits-8x8 --drop px0 --flow glow --epochs 1 --out %s/img2 2>&1", bin, tmp) == 1 &&
                  strstr(out, "no --columns, --drop"), "digits-8x8 refuses column options: %s", out);
        CHECK(run(out, sizeof out, "NFLOW_DATA=/nonexistent %s train --data digits-8x8 --flow glow --epochs 1 --out %s/img3 2>&1",
                  bin, tmp) == 2 && strstr(out, "set NFLOW_DATA"), "digits-8x8 without its file says where it looked: %s", out);
        CHECK(run(out, sizeof out, "%s train --data digits-8x8 --flow 'realnvp_multiscale(shape=[1,2,32], levels=3)' --epochs 1 --out %s/img4 2>&1",
                  bin, tmp) == 1 && strstr(out, "divisible by 4"), "an image flow's shape must fit its levels: %s", out);
        CHECK(run(out, sizeof out, "%s train --data moons --dequantize uniform --flow maf --steps 10 --out %s/dq2 2>&1", bin, tmp) == 1 &&
                  strstr(out, "apply to a file"), "--dequantize on generated data is refused: %s", out);
        CHECK(run(out, sizeof out, "%s train --data examples/data/breast_cancer.csv --columns mean_radius,mean_area --flow 'maf(hidden=[8])' "
                                   "--epochs 1 --standardize --out %s/nm --grid 20 --quiet >/dev/null && %s sample --model %s/nm/model.nflow -n 1 "
                                   "--with-log-prob --out -", bin, tmp, bin, tmp) == 0 && !strncmp(out, "mean_radius,mean_area,log_prob\n", 31),
              "sample files keep the training data's column names: %s", out);
        snprintf(path, sizeof path, "%s/lp.npy", tmp);
        CHECK(run(NULL, 0, "%s sample --model %s/model.nflow -n 7 --out %s/s.csv && %s logprob --model %s/model.nflow --in %s/s.csv --out %s",
                  bin, rundir, tmp, bin, rundir, tmp, path) == 0 &&
                  run(out, sizeof out, "head -c 80 %s | tr -d '\\000'", path) == 0 && strstr(out, "'shape': (7,)"),
              "logprob writes a 1-D .npy: %s", out);
    }

    /* outputs never destroy: /dev/full fails with the OS's reason and stays a device, /dev/stdout is
     * written through; a failed run leaves no folder it made, a completed one no checkpoint */
    CHECK(run(out, sizeof out, "%s sample --model %s/model.nflow -n 5 --out /dev/full 2>&1", bin, rundir) == 2 &&
              strstr(out, "cannot write /dev/full: No space left on device"), "--out /dev/full: exit 2 (%s)", out);
    CHECK(run(NULL, 0, "test -c /dev/full") == 0, "/dev/full is still a character device");
    CHECK(run(out, sizeof out, "%s sample --model %s/model.nflow -n 3 --out /dev/stdout", bin, rundir) == 0 &&
              strstr(out, "x1,x2\n") && run(NULL, 0, "test -L /dev/stdout") == 0, "--out /dev/stdout prints: %s", out);
    CHECK(run(NULL, 0, "%s train --data moons --flow 'maf(hidden=[8], scale=unbounded, zero_last=0)' --steps 300 --lr 10 --out %s/failed/deep --quiet 2>/dev/null",
              bin, tmp) == 3 && run(NULL, 0, "test -e %s/failed", tmp) != 0, "a failed run leaves no folder it made");
    CHECK(run(out, sizeof out, "%s train --data moons --flow 'maf(hidden=[8], scale=unbounded, zero_last=0)' --steps 300 --lr 10 --checkpoint-every 1 --out %s/failck --quiet 2>&1",
              bin, tmp) == 3 && strstr(out, "failck/checkpoint.nflow is kept") && exists(tmp, "failck/checkpoint.nflow"),
          "a failed run keeps its checkpoint and says so: %s", out);
    CHECK(run(NULL, 0, "%s train --data moons --flow 'maf(hidden=[8])' --steps 100 --checkpoint-every 20 --out %s/okck --quiet --grid 20 >/dev/null",
              bin, tmp) == 0 && exists(tmp, "okck/model.nflow") && !exists(tmp, "okck/checkpoint.nflow"),
          "a completed run removes its checkpoint");

    /* SIGKILL mid-run, then --resume: the same model as an uninterrupted run
     * (maximum likelihood, and reverse KL on two threads) */
    const char *runs[2][2] = {
        {"train", "train --data moons --flow 'maf(hidden=[64])' --steps 20000 --checkpoint-every 100 --seed 3 --quiet"},
        {"fit-density", "fit-density --target u2 --flow 'iaf(layers=2, hidden=[32])' --steps 40000 --checkpoint-every 100 "
                        "--threads 2 --seed 3 --grid 20 --quiet"}};
    for (int k = 0; k < 2; k++) {
        const char *tr = runs[k][1];
        CHECK(run(NULL, 0, "%s %s --out %s/full%d", bin, tr, tmp, k) == 0, "%s: uninterrupted run", runs[k][0]);
        rc = run(out, sizeof out,
                 "%s %s --out %s/killed%d & p=$!; while [ ! -f %s/killed%d/checkpoint.nflow ] && kill -0 $p 2>/dev/null; do sleep 0.01; done; "
                 "kill -9 $p; wait $p; echo $?", bin, tr, tmp, k, tmp, k);
        CHECK(atoi(out) == 137 && !exists(tmp, k ? "killed1/model.nflow" : "killed0/model.nflow"),
              "%s: the run was killed before it finished (%s)", runs[k][0], out);
        CHECK(run(NULL, 0, "%s %s --out %s/killed%d --resume", bin, tr, tmp, k) == 0, "%s: resumed run", runs[k][0]);
        nf_flow *fa = NULL, *fb = NULL;
        snprintf(path, sizeof path, "%s/full%d/model.nflow", tmp, k);
        CHECK_OK(nf_flow_load(path, &fa));
        snprintf(path, sizeof path, "%s/killed%d/model.nflow", tmp, k);
        CHECK_OK(nf_flow_load(path, &fb));
        CHECK(fa && fb && nf_flow_param_count(fa) == nf_flow_param_count(fb) &&
                  !memcmp(nf_flow_params(fa), nf_flow_params(fb), nf_flow_param_count(fa) * sizeof(float)),
              "%s: killed and resumed run ends bit-identical to the uninterrupted one", runs[k][0]);
        nf_flow_free(fa), nf_flow_free(fb);
    }

    /* the report in a real browser */
    if (run(NULL, 0, "command -v chromium >/dev/null 2>&1") == 0) {
        rc = run(NULL, 0,
                 "chromium --headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update "
                 "--no-first-run --user-data-dir=%s/chrome --dump-dom file://%s/report.html > %s/dom.html 2>/dev/null",
                 tmp, rundir, tmp);
        int imgs = -1, val = 0, png = 0;
        if (rc == 0 && run(out, sizeof out, "grep -o '<img' %s/dom.html | wc -l", tmp) == 0) imgs = atoi(out);
        val = run(NULL, 0, "grep -q 'id=\"val-nll\"' %s/dom.html", tmp) == 0;
        png = run(NULL, 0, "grep -q 'data:image/png;base64,iVBOR' %s/dom.html", tmp) == 0;
        CHECK(rc == 0 && imgs == 5 && val && png, "report opens in Chromium with 5 embedded PNGs (rc %d, %d images)", rc, imgs);
    } else {
        printf("note: chromium is not installed; the report's browser check was skipped\n");
    }
    run(NULL, 0, "rm -rf %s", tmp);
}
