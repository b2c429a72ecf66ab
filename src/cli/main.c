/*
 * main.c - the nflow command: dispatch to the subcommands.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

/* The commands: the dispatcher, the help and the unknown-command message
 * all come from this table. */
static const struct command {
    const char *name;
    int (*fn)(int, char **, const par *);
    int parallel; /* runs on several MPI ranks (the others: one process) */
    const char *summary;
} COMMANDS[] = {
    {"train", cmd_train, 1, "fit a flow to data, write the model, figures and an HTML report"},
    {"sample", cmd_sample, 1, "draw samples from a trained model"},
    {"logprob", cmd_logprob, 1, "log-density of points under a trained model"},
    {"eval", cmd_eval, 0, "evaluate untrained distributions and bijectors from a spec (--list: every builder)"},
    {"data", cmd_data, 0, "write a toy data set (moons, circles, 8gaussians, ...)"},
    {"plot", cmd_plot, 0, "draw a trained model's figures"},
    {"info", cmd_info, 0, "describe a model file"},
    {"fit-density", cmd_fit_density, 1, "fit a flow to an unnormalised density (U1-U4) by reverse KL"},
};
enum { NCOMMANDS = sizeof COMMANDS / sizeof COMMANDS[0] };

static void print_help(FILE *out) {
    fputs("usage: nflow COMMAND [options]   (nflow COMMAND --help for each)\n"
          "\n"
          "Normalizing flows: train, sample, score and draw.\n"
          "\n"
          "commands:\n",
          out);
    for (size_t k = 0; k < NCOMMANDS; k++) fprintf(out, "  %-12s %s\n", COMMANDS[k].name, COMMANDS[k].summary);
    fputs("  --version    the version, the BLAS and its kernels (and whether the CPU runs faster ones)\n"
          "\n"
          "Direction convention (TensorFlow Probability): a bijector's forward maps\n"
          "base -> data (sampling), its inverse data -> base (density).\n"
          "Exit codes: 0 ok, 1 usage error, 2 bad data or model file, 3 numerical failure.\n"
          "\n"
          "Example:\n"
          "  nflow train --data moons --flow \"realnvp(layers=6, hidden=[256,256])\" --steps 5000 --out runs/moons\n",
          out);
}

static int print_version(void) {
    char what[256];
    const char *better = nf_blas_info(what, sizeof what);
    const char *env = getenv("OPENBLAS_CORETYPE");
    printf("nflow %s\nblas: %s\n", nf_version(), what);
#ifdef NF_MPI
    printf("mpi: yes (mpirun -np N nflow train|fit-density|logprob|sample ...)\n");
#else
    printf("mpi: no (make MPI=1 builds it)\n");
#endif
    if (nf_cuda_available()) printf("cuda: yes (--device cuda[:K] on train, fit-density, logprob, sample)\n");
    else printf("cuda: no (make CUDA=1 builds it)\n");
    if (env) printf("OPENBLAS_CORETYPE=%s (set in the environment)\n", env);
    if (better)
        printf("note: this CPU also runs OpenBLAS's AVX-512 kernels, about twice as fast for the matrix products:\n"
               "      OPENBLAS_CORETYPE=%s selects them\n",
               better);
    return 0;
}

static int run(int argc, char **argv, const par *p) {
    static char help_flag[] = "--help";
    char *h[3] = {NULL, help_flag, NULL};
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        if (argc >= 3 && !strcmp(argv[1], "help")) {
            h[0] = argv[2];
            argv = h, argc = 2;
        } else {
            print_help(argc < 2 ? stderr : stdout);
            return argc < 2 ? EXIT_USAGE : 0;
        }
    } else {
        argv++, argc--;
    }
    if (!strcmp(argv[0], "--version")) return print_version();
    for (size_t k = 0; k < NCOMMANDS; k++) {
        if (strcmp(argv[0], COMMANDS[k].name)) continue;
        if (p->size > 1 && !COMMANDS[k].parallel) { /* every rank knows: all stop, rank 0 says why */
            if (p->rank == 0)
                fprintf(stderr, "nflow %s: runs in one process; under mpirun: train, fit-density, logprob, sample\n",
                        argv[0]);
            return EXIT_USAGE;
        }
        return COMMANDS[k].fn(argc - 1, argv + 1, p);
    }
    fprintf(stderr, "nflow: unknown command '%s' (known:", argv[0]);
    for (size_t k = 0; k < NCOMMANDS; k++) fprintf(stderr, "%s %s", k ? "," : "", COMMANDS[k].name);
    fprintf(stderr, ")\n");
    return EXIT_USAGE;
}

int main(int argc, char **argv) {
    par p;
    int rc = par_init(&p, &argc, &argv);
    if (rc) return rc;
    return par_finish(&p, run(argc, argv, &p));
}
