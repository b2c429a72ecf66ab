/*
 * cmd_eval.c - nflow eval: a TensorFlow-Probability calculator for untrained
 * distributions and bijectors given by a spec.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static const char *HELP =
    "usage: nflow eval --dist SPEC (--log-prob|--prob|--cdf) VALUES\n"
    "       nflow eval --dist SPEC --sample N [--seed S]\n"
    "       nflow eval --bijector SPEC [--dim D] (--forward|--inverse|--fldj|--ildj) VALUES\n"
    "       nflow eval --list      every bijector and distribution of the spec language,\n"
    "                              with its arguments\n"
    "\n"
    "VALUES are numbers separated by commas, rows separated by ';' for d > 1\n"
    "(\"1,2;3,4\" is two 2-D points), or --in FILE (CSV or .npy).  One result\n"
    "per line.  forward maps base -> data, inverse data -> base (as in TFP);\n"
    "fldj/ildj are the log-det-Jacobians of those directions.\n"
    "\n"
    "Examples (the seed 001 walkthrough):\n"
    "  nflow eval --dist \"normal(0, 1)\" --log-prob 2.01\n"
    "  nflow eval --bijector normal_cdf --forward 2.01\n"
    "  nflow eval --dist \"transformed(normal(0,1), affine_scalar(shift=0, scale=2))\" --log-prob 0,1,2\n"
    "  nflow eval --dist \"transformed(normal(0,1), affine_scalar(shift=0, scale=2))\" --cdf 0,1,2\n";

/* Parses "a,b;c,d" into rows of d values (d = 0: taken from the first row). */
static int parse_values(const char *s, size_t *d, float **out, size_t *n) {
    size_t cap = 16, k = 0, row = 0, cols = 0;
    float *v = malloc(cap * sizeof(float));
    const char *p = s;
    while (v && *p) {
        char *end;
        double x = strtod(p, &end);
        if (end == p) break;
        if (k == cap) {
            float *nv = realloc(v, (cap *= 2) * sizeof(float));
            if (!nv) break;
            v = nv;
        }
        v[k++] = (float)x, cols++;
        p = end;
        while (*p == ' ') p++;
        if (*p == ',') p++;
        else if (*p == ';' || !*p) {
            if (*d == 0) *d = cols;
            if (cols != *d) break;
            row++, cols = 0;
            if (*p) p++;
        } else
            break;
    }
    if (!v || *p || cols) {
        free(v);
        return -1;
    }
    *out = v, *n = row;
    return 0;
}

/* --list: the spec language's builders from the library's table. */
static int list_builders(void) {
    static const char *const title[2] = {"Bijectors", "Distributions"};
    for (int what = NF_SPEC_BIJECTOR; what <= NF_SPEC_DISTRIBUTION; what++) {
        printf("%s%s:\n", what ? "\n" : "", title[what]);
        const nf_spec_builder_info *b;
        for (size_t k = 0; (b = nf_spec_builder(what, k)); k++) {
            char sig[512] = "";
            size_t len = 0;
            for (int j = 0; b->args[j] && len < sizeof sig; j++)
                len += (size_t)snprintf(sig + len, sizeof sig - len, "%s%s", j ? ", " : "", b->args[j]);
            if (b->positional < 0) snprintf(sig, sizeof sig, "b1, b2, ...");
            else if (!b->args[0] && b->positional == 1) snprintf(sig, sizeof sig, "b");
            else if (!b->args[0] && b->positional == 2) snprintf(sig, sizeof sig, "dist, b");
            printf("  %-14s %s\n", b->name, b->summary);
            if (sig[0]) printf("  %-14s (%s)\n", "", sig);
        }
    }
    printf("\ndocs/spec.md has every argument's meaning and default.\n");
    return 0;
}

/* The op's input rows: --in FILE or VALUES; a scalar distribution takes
 * "0,0.5,1" as three points.  *d: the object's dimension (0: any). */
static int read_rows(const char *cmd, const char *in, const char *vals, int is_dist, size_t *d, float **x, size_t *n) {
    size_t dd = 0;
    if (in) {
        if (nf_read_table(in, x, n, &dd)) return fail(cmd, EXIT_DATA, "%s", nf_last_error());
    } else if (!vals || parse_values(vals, &dd, x, n)) {
        return fail(cmd, EXIT_USAGE, "cannot read the values '%s' (numbers separated by ',' and rows by ';')", vals ? vals : "");
    }
    if (is_dist && dd != *d && *d == 1) { /* "0,0.5,1" for a scalar distribution: three points */
        *n *= dd;
        dd = 1;
    }
    if (*d && dd != *d)
        return fail(cmd, EXIT_USAGE, "the values have %zu columns, the %s has dimension %zu", dd,
                    is_dist ? "distribution" : "bijector", *d);
    *d = dd;
    return 0;
}

/* Runs op on the n x d rows x and prints one result per line. */
static int compute(const char *cmd, const char *op, const nf_dist *D, const nf_bijector *B, const float *x, size_t n,
                   size_t d) {
    float *y = malloc((n * d > 0 ? n * d : 1) * sizeof(float)), *l = malloc((n ? n : 1) * sizeof(float));
    nf_status s = NF_ERR_NOMEM;
    int rows_out = 0; /* print y (n x d) or l (n) */
    if (y && l) {
        if (!strcmp(op, "--log-prob")) s = nf_dist_log_prob(D, x, n, l);
        else if (!strcmp(op, "--prob")) s = nf_dist_prob(D, x, n, l);
        else if (!strcmp(op, "--cdf")) s = nf_dist_cdf(D, x, n, l);
        else if (!strcmp(op, "--forward")) s = nf_bijector_forward(B, x, n, y, NULL), rows_out = 1;
        else if (!strcmp(op, "--inverse")) s = nf_bijector_inverse(B, x, n, y, NULL), rows_out = 1;
        else if (!strcmp(op, "--fldj")) s = nf_bijector_forward_log_det_jacobian(B, x, n, l);
        else s = nf_bijector_inverse_log_det_jacobian(B, x, n, l);
    }
    int rc = 0;
    if (s) {
        fprintf(stderr, "nflow %s: %s\n", cmd, s == NF_ERR_NOMEM ? "out of memory" : nf_last_error());
        rc = s == NF_ERR_NUMERIC ? EXIT_NUMERIC : EXIT_DATA;
    }
    for (size_t i = 0; !rc && i < n; i++) {
        if (rows_out)
            for (size_t j = 0; j < d; j++) printf("%.9g%c", y[i * d + j], j + 1 < d ? ',' : '\n');
        else
            printf("%.9g\n", l[i]);
    }
    free(y);
    free(l);
    return rc;
}

int cmd_eval(int argc, char **argv, const par *procs) {
    (void)procs; /* one process (main.c refuses several) */
    const char *cmd = "eval";
    args a;
    int hrc = help_or_init(&a, cmd, argc, argv, HELP);
    if (hrc) return hrc < 0 ? 0 : hrc;
    const char *dist = opt_str(&a, "--dist", NULL), *bij = opt_str(&a, "--bijector", NULL), *in = opt_str(&a, "--in", NULL);
    static const char *const ops[] = {"--log-prob", "--prob", "--cdf", "--forward", "--inverse", "--fldj", "--ildj", NULL};
    const char *op = NULL, *vals = NULL;
    for (int k = 0; ops[k]; k++) {
        if (!arg_given(argc, argv, ops[k])) continue;
        if (op) {
            args_free(&a);
            return fail(cmd, EXIT_USAGE, "give one of %s and %s", op, ops[k]);
        }
        op = ops[k];
        vals = in ? (opt_flag(&a, ops[k]), "") : opt_str(&a, ops[k], NULL);
    }
    size_t nsample = (size_t)opt_num(&a, "--sample", 0, 1, 1e8);
    size_t d = (size_t)opt_num(&a, "--dim", 0, 1, 1 << 20);
    uint64_t seed = (uint64_t)opt_num(&a, "--seed", 0, 0, 1.8e19);
    int list = opt_flag(&a, "--list");
    int rc = args_check_all_used(&a);
    args_free(&a);
    if (rc) return rc;
    if (list) return list_builders();
    if (!dist == !bij) return fail(cmd, EXIT_USAGE, "give --dist SPEC or --bijector SPEC");
    if (!op && !(dist && nsample)) return fail(cmd, EXIT_USAGE, "say what to compute (e.g. --log-prob VALUES)");
    int is_dist_op = op && (!strcmp(op, "--log-prob") || !strcmp(op, "--prob") || !strcmp(op, "--cdf"));
    if (op && (dist != NULL) != is_dist_op) return fail(cmd, EXIT_USAGE, "%s does not apply to a %s", op, dist ? "distribution" : "bijector");
    nf_rng *rng = NULL;
    nf_rng_create(seed, &rng);
    nf_dist *D = NULL;
    nf_bijector *B = NULL;
    float *x = NULL;
    size_t n = 0;
    if (dist && nf_dist_from_spec(dist, rng, &D)) {
        fprintf(stderr, "nflow eval: %s\n", nf_last_error());
        rc = EXIT_USAGE;
        goto out;
    }
    if (D) d = nf_dist_dim(D);
    if (op && (rc = read_rows(cmd, in, vals, D != NULL, &d, &x, &n))) goto out;
    if (bij && nf_bijector_from_spec(bij, d ? d : 1, rng, &B)) {
        fprintf(stderr, "nflow eval: %s\n", nf_last_error());
        rc = EXIT_USAGE;
        goto out;
    }
    if (!op) { /* --sample */
        float *s = malloc(nsample * d * sizeof(float));
        if (!s || nf_dist_sample(D, rng, nsample, s)) rc = fail(cmd, EXIT_NUMERIC, "%s", nf_last_error());
        else if (nf_write_table("-", s, nsample, d, NULL)) rc = fail(cmd, EXIT_DATA, "%s", nf_last_error());
        free(s);
        goto out;
    }
    rc = compute(cmd, op, D, B, x, n, d);
out:
    free(x);
    nf_dist_free(D);
    nf_bijector_free(B);
    nf_rng_free(rng);
    return rc;
}
