/*
 * cli.h - the nflow command.  Uses only the public API (include/nflow.h).
 * Exit codes: 0 ok, 1 usage error, 2 bad data or model file, 3 numerical
 * failure.
 */
#ifndef NF_CLI_H
#define NF_CLI_H

#include "nflow.h"

#include <stdio.h>

enum { EXIT_USAGE = 1, EXIT_DATA = 2, EXIT_NUMERIC = 3 };

/* A tiny option parser: options are "--name value", "--name=value" (and
 * "-n VALUE" or "-nVALUE" for one-letter ones) or "--flag"; anything else is
 * a positional argument. */
typedef struct args {
    int argc;
    char **argv;
    int *used;
    const char *cmd;
} args;

int args_init(args *a, const char *cmd, int argc, char **argv);
void args_free(args *a);
/* args_init plus --help/-h: prints `help` and returns -1 (the caller exits
 * 0); returns an exit code on failure, 0 to go on. */
int help_or_init(args *a, const char *cmd, int argc, char **argv, const char *help);
/* Value of --name (NULL if absent); exits with a usage error if it has none. */
const char *opt_str(args *a, const char *name, const char *def);
int opt_flag(args *a, const char *name);
double opt_num(args *a, const char *name, double def, double lo, double hi);
/* Fails with a usage error naming the first argument no option consumed. */
int args_check_all_used(args *a);
const char *arg_positional(args *a, int k);
/* Whether the option `name` is on the command line (either form). */
int arg_given(int argc, char **argv, const char *name);

/* Prints "nflow CMD: message" and returns the exit code. */
int fail(const char *cmd, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* The exit code for a library status in a context where data or model
 * files are read (2) or computation happens (3). */
int status_exit(nf_status s);

/* The processes a command runs on (par.c): one, or under mpirun in the MPI
 * build every rank.  comm: NULL for one process. */
typedef struct par {
    int rank, size;
    const nf_comm *comm;
} par;
/* MPI_Init in the MPI build; 0 or an exit code. */
int par_init(par *p, int *argc, char ***argv);
/* The end of the program: rc != 0 on a rank of several ends every rank
 * (MPI_Abort); returns rc. */
int par_finish(par *p, int rc);
/* Sums v over every process, in place (0, or an exit code). */
int par_sum(const par *p, double *v, size_t n);
/* Every process has n rows: *first, the rows of the lower ranks (this
 * process's first row's global number), and *total, all (0, or an exit
 * code; one process: 0 and n). */
int par_offset(const par *p, size_t n, size_t *first, size_t *total);
/* This process's even part [*a, *b) of n rows (one process: all). */
void par_range(const par *p, size_t n, size_t *a, size_t *b);
/* Every process passes its exit code; each gets its own if non-zero, else
 * another's (all 0: 0). */
int par_agree(const par *p, int rc);
/* One table file of every process's rows (n x w here), in rank order:
 * the bytes nf_write_table (vector: nf_write_vector) writes of all rows in
 * one process; written in parts beside `path` and renamed over it. */
int par_write_table(const par *p, const char *cmd, const char *path, const float *x, size_t n, size_t w,
                    const char *header, int vector);

int cmd_train(int argc, char **argv, const par *procs);
int cmd_sample(int argc, char **argv, const par *procs);
int cmd_logprob(int argc, char **argv, const par *procs);
int cmd_eval(int argc, char **argv, const par *procs);
int cmd_data(int argc, char **argv, const par *procs);
int cmd_info(int argc, char **argv, const par *procs);
int cmd_fit_density(int argc, char **argv, const par *procs);
int cmd_plot(int argc, char **argv, const par *procs);

/* Progress display: a live bar on a terminal, a line every 10% otherwise. */
typedef struct progress {
    int quiet, tty;
    double t0, last_print;
    size_t last_decile, first_step; /* first_step: where this process started (after a resume) */
} progress;
void progress_init(progress *p, int quiet);
void progress_update(progress *p, const nf_train_progress *tp);
void progress_done(progress *p);
double now_seconds(void);

/* mkdir -p: creates dir and its missing parents; 0, or -1 with errno set.
 * made (may be NULL): the first folder it created ("" if none). */
int mkdir_p(const char *dir, char *made, size_t cap);
/* Removes dir and its parents up to `made` where they are empty. */
void rmdir_made(const char *dir, const char *made);

/* The training engine's options that train and fit-density share:
 * --threads N, --checkpoint-every N, --resume (DIR/checkpoint.nflow). */
typedef struct engine_opts {
    size_t threads, ck_every;
    int split;          /* --split: nf_split */
    const char *device; /* --device (NULL: the CPU) */
    int resume;
    char ckpath[4200];
    char made[4096]; /* the first output folder this run created ("" if none) */
} engine_opts;
#define ENGINE_OPTS_HELP                                                                   \
    "  --checkpoint-every N  write DIR/checkpoint.nflow every N steps (every N epochs\n"    \
    "                    with --epochs): parameters, Adam state, RNG state, histories;\n" \
    "                    written atomically (temporary file, fsync, rename)\n"             \
    "  --resume          continue from DIR/checkpoint.nflow (run the same command with\n" \
    "                    --resume added): the result is bit-identical to an\n"            \
    "                    uninterrupted run; without a checkpoint it starts afresh.  The\n"\
    "                    checkpoint is removed when the run completes (the model holds\n" \
    "                    the final parameters) and kept, and named, when it fails\n"     \
    "  --threads N       share each step among N threads (BLAS then runs one thread\n"   \
    "                    inside each); results are reproducible for a given N and split\n" \
    "  --split S         how: rows (each thread a slice of the batch, its own gradient,\n" \
    "                    summed), columns (every product and pass of the whole batch\n"  \
    "                    cut by its output columns: one gradient; for small batches) or\n" \
    "                    auto (default: columns when each thread would get fewer than\n"  \
    "                    32 rows)\n"                                                       \
    DEVICE_HELP                                                                        \
    "  mpirun -np N nflow ...  (the MPI build, make MPI=1) N processes train one model:\n" \
    "                    --batch is the global batch, each process takes its part of\n" \
    "                    it (a file: of the rows, each reading its share; generated\n"   \
    "                    data: its own draws); gradients are summed every step; rank\n" \
    "                    0 writes the outputs and checkpoints (docs/scaling.md)\n"
#define DEVICE_HELP                                                                     \
    "  --device D        cpu (default), cuda or cuda:K (cuda,tf32: TF32 products): compute\n" \
    "                    on GPU K (an nflow built with make CUDA=1; nflow --version\n"     \
    "                    says): couplings (realnvp, nice, nsf), maf, iaf, actnorm,\n"       \
    "                    batchnorm, lu_linear and permutations on a normal base; other\n"   \
    "                    flows are refused by name (docs/cli.md)\n"
void engine_opts_parse(args *a, engine_opts *e);
/* Puts f on `device` (NULL: leaves it on the CPU); 0, or EXIT_USAGE with the
 * reason printed (no CUDA in this build, no GPU, a layer the GPU cannot run). */
int set_device(const char *cmd, nf_flow *f, const char *device);
/* Sets o's checkpoint, resume and thread options (and one BLAS thread when
 * N > 1); says on stderr whether it resumes, unless quiet. */
void engine_opts_apply(const char *cmd, engine_opts *e, const char *out, int quiet, nf_train_opts *o);
/* After the run (rc: its exit code): on success the checkpoint goes; on
 * failure a checkpoint is kept and named, or else the output folders this
 * run created are removed if they are empty. */
void engine_opts_finish(const char *cmd, const engine_opts *e, const char *out, int rc);

/* A command's rows (rows.c): a generated set or a file, [x | context]. */
typedef struct rows_src {
    const char *data;    /* a generated set's name (nf_data_name) or a file */
    float noise;         /* generated sets */
    int labels;          /* generated sets: [x1, x2, label] rows (the label is the context) */
    const char *ctxcols; /* files: the context columns, "2", "3,4" or names (NULL: none) */
    const char *columns; /* files: the columns to keep (names or indices), or */
    const char *drop;    /* the columns to leave out */
    int drop_constant;   /* leave out the columns that are constant (said on stderr) */
    size_t part, parts;  /* files: read only part `part` of `parts` (nf_read_table_part; parts 0 or 1: all) */
} rows_src;
int rows_generated(const char *data);
/* n generated rows of width 2 + labels. */
nf_status rows_generate(const rows_src *g, nf_rng *rng, size_t n, float *x);
/* An nf_sampler_fn over rows_generate (user: the rows_src). */
int rows_draw(void *user, nf_rng *rng, float *x, size_t n);
/* Reads the file: n rows of d data columns then dc context columns; 0 or
 * an exit code (the message printed).  names (may be NULL): the header's
 * names of those d + dc columns (NULL without a header; nf_free_names). */
int rows_read(const char *cmd, const rows_src *g, float **x, size_t *n, size_t *d, size_t *dc, char ***names);

/* The command line as the report shows it: "prog arg ...", arguments with
 * spaces or brackets in double quotes. */
void cmdline_join(char *buf, size_t cap, const char *prog, int argc, char **argv);

/* Splits n rows [x (d values) | c (dc values)] into x (n x d) and c
 * (n x dc); x may be `rows` itself (packed in place, front to back). */
void split_context_rows(const float *rows, size_t n, size_t d, size_t dc, float *x, float *c);

/* Figures and the report (figures.c, drawn with plot/); return 0 or an exit code. */
typedef struct run_info {
    const char *cmdline, *spec, *data_name;
    size_t n_params, dim, steps, epochs;
    double seconds, train_nll, val_nll, test_nll;
    const double *train_hist, *val_hist;
    size_t n_hist, hist_every; /* epochs (1) or steps per entry */
    const char *format;        /* png, svg, pdf */
    int grid;                  /* density grid points per axis (0: 200) */
    const char *loss_name;     /* what the loss is (NULL: the negative log-likelihood) */
    int restored;              /* early stopping put back the parameters of best_epoch */
    size_t best_epoch, patience;
    const char *test_what;     /* the rows of the test NLL, never seen in training */
    size_t image[3];           /* {C, H, W}: the rows are images (figures draw them); {0}: points */
    double image_max;          /* the images' largest value (grey scale 0..image_max) */
} run_info;
/* history.csv: a header, then per entry the step (or epoch) and the columns
 * (val may be NULL); a missing value is an empty field. */
int write_history(const char *cmd, const char *path, const char *header, const double *train, const double *val, size_t n,
                  size_t every);
int make_figures(const char *cmd, const nf_flow *flow, const float *data, size_t n, const char *dir,
                 const run_info *info, char names[][64], int *nfig);
int write_report(const char *cmd, const char *dir, const run_info *info, char names[][64], int nfig);
/* fit-density's figures: the target exp(log p~) and the fitted q on the
 * same grid of [lo, hi]^2, samples, and the loss. */
int make_fit_figures(const char *cmd, const nf_flow *flow, nf_log_density_fn target, double lo, double hi,
                     const char *dir, const run_info *info, char names[][64], int *nfig);

#endif
