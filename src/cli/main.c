/*
 * main.c - the nflow command: dispatch to the subcommands.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static const char *HELP =
    "usage: nflow COMMAND [options]   (nflow COMMAND --help for each)\n"
    "\n"
    "Normalizing flows: train, sample, score and draw.\n"
    "\n"
    "commands:\n"
    "  train    fit a flow to data, write the model, figures and an HTML report\n"
    "  sample   draw samples from a trained model\n"
    "  logprob  log-density of points under a trained model\n"
    "  eval     evaluate untrained distributions and bijectors from a spec\n"
    "  data     write a toy data set (moons, circles, 8gaussians, ...)\n"
    "  plot     draw a trained model's figures\n"
    "  info     describe a model file\n"
    "  fit-density  fit a flow to an unnormalised density (U1-U4) by reverse KL\n"
    "  --version    the version, the BLAS and its kernels (and whether the CPU runs faster ones)\n"
    "\n"
    "Direction convention (TensorFlow Probability): a bijector's forward maps\n"
    "base -> data (sampling), its inverse data -> base (density).\n"
    "Exit codes: 0 ok, 1 usage error, 2 bad data or model file, 3 numerical failure.\n"
    "\n"
    "Example:\n"
    "  nflow train --data moons --flow \"realnvp(layers=6, hidden=[256,256])\" --steps 5000 --out runs/moons\n";

int main(int argc, char **argv) {
    static char help_flag[] = "--help";
    char *h[3] = {NULL, help_flag, NULL};
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        if (argc >= 3 && !strcmp(argv[1], "help")) {
            h[0] = argv[2];
            argv = h, argc = 2;
        } else {
            fputs(HELP, argc < 2 ? stderr : stdout);
            return argc < 2 ? EXIT_USAGE : 0;
        }
    } else {
        argv++, argc--;
    }
    if (!strcmp(argv[0], "--version")) {
        char what[256];
        const char *better = nf_blas_info(what, sizeof what);
        const char *env = getenv("OPENBLAS_CORETYPE");
        printf("nflow %s\nblas: %s\n", nf_version(), what);
        if (env) printf("OPENBLAS_CORETYPE=%s (set in the environment)\n", env);
        if (better)
            printf("note: this CPU also runs OpenBLAS's AVX-512 kernels, about twice as fast for the matrix products:\n"
                   "      OPENBLAS_CORETYPE=%s selects them\n", better);
        return 0;
    }
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {{"train", cmd_train}, {"sample", cmd_sample}, {"logprob", cmd_logprob}, {"eval", cmd_eval},
                {"data", cmd_data},   {"plot", cmd_plot},     {"info", cmd_info},
                {"fit-density", cmd_fit_density}};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(argv[0], cmds[i].name)) return cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "nflow: unknown command '%s' (known: train, sample, logprob, eval, data, plot, info, fit-density)\n", argv[0]);
    return EXIT_USAGE;
}
