/*
 * fit_comm.c - a C program that already uses MPI trains nflow flows inside
 * its own communicators (nflow_mpi.h).  Built by `make MPI=1` as
 * build-mpi/examples/mpi_fit_comm; run with an even number of ranks:
 *
 *     mpirun -np 4 build-mpi/examples/mpi_fit_comm
 *
 * The world is split in two groups; each group trains its own RealNVP on
 * its own data set (moons, circles) data-parallel, every rank holding its
 * share of the group's rows, while the program makes its own collectives
 * on the world between nflow's calls.  Rank 0 of each group prints the
 * group's test NLL; every rank checks that its group's parameters are
 * equal on all its ranks.  Exit status 0 on success.
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nflow.h"
#include "nflow_mpi.h"

#define ROWS 4000

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int wrank, wsize;
    MPI_Comm_rank(MPI_COMM_WORLD, &wrank);
    MPI_Comm_size(MPI_COMM_WORLD, &wsize);
    int group = wrank % 2; /* 0: moons, 1: circles */
    MPI_Comm gcomm;
    MPI_Comm_split(MPI_COMM_WORLD, group, wrank, &gcomm);
    nf_comm *comm = NULL;
    int rc = nf_mpi_comm_create(gcomm, &comm) != NF_OK;
    const char *set = group ? "circles" : "moons";

    /* every rank of a group draws the group's rows with one seed and keeps its share */
    float *all = malloc(ROWS * 2 * sizeof(float)), *test = malloc(1000 * 2 * sizeof(float));
    nf_rng *rng = NULL;
    nf_flow *flow = NULL;
    nf_train_report rep;
    memset(&rep, 0, sizeof rep);
    rc = rc || !all || !test || nf_rng_create(7 + (uint64_t)group, &rng) || nf_data_generate(set, rng, ROWS, 0.05f, all, NULL) ||
         nf_data_generate(set, rng, 1000, 0.05f, test, NULL);
    size_t r = comm ? (size_t)comm->rank : 0, n = comm ? (size_t)comm->size : 1, a = ROWS * r / n, b = ROWS * (r + 1) / n;

    /* the program's own collective on the world, before nflow's */
    int before = 0;
    MPI_Allreduce(&rc, &before, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (!before) {
        nf_train_opts o = nf_train_defaults();
        o.batch = 200, o.epochs = 30, o.lr = 3e-3f, o.seed = 1, o.comm = comm;
        rc = nf_flow_from_spec("realnvp(layers=4, hidden=[32,32])", 2, 3, &flow) ||
             nf_flow_fit(flow, all + a * 2, b - a, &o, &rep);
        if (rc) fprintf(stderr, "rank %d: %s\n", wrank, nf_last_error());
    }
    /* ... and after: the communicators were used in the same order on every rank */
    int failed = 0;
    MPI_Allreduce(&rc, &failed, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    int same = 1;
    if (!failed) { /* the group's parameters, compared with its rank 0's */
        size_t P = nf_flow_param_count(flow);
        float *p0 = malloc(P * sizeof(float));
        memcpy(p0, nf_flow_params(flow), P * sizeof(float));
        MPI_Bcast(p0, (int)P, MPI_FLOAT, 0, gcomm);
        same = !memcmp(p0, nf_flow_params(flow), P * sizeof(float));
        free(p0);
        float lp[1000];
        double nll = 0;
        nf_flow_log_prob(flow, test, 1000, lp);
        for (int i = 0; i < 1000; i++) nll -= lp[i] / 1000.0;
        if (r == 0)
            printf("group %d (%s, %d ranks): %zu steps, test NLL %.4f\n", group, set, (int)n, rep.steps, nll);
    }
    int all_same = 0;
    MPI_Allreduce(&same, &all_same, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (wrank == 0) printf("%s\n", failed ? "FAILED" : all_same ? "every group's ranks hold equal parameters" : "PARAMETERS DIFFER");
    nf_train_report_free(&rep);
    nf_flow_free(flow);
    nf_rng_free(rng);
    free(all), free(test);
    nf_mpi_comm_free(comm);
    MPI_Comm_free(&gcomm);
    MPI_Finalize();
    return failed || !all_same;
}
