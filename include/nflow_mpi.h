/*
 * nflow_mpi.h - nflow's transport over MPI (libnflow_mpi, built by
 * `make MPI=1`): an nf_comm whose sums are MPI_Allreduce(MPI_IN_PLACE, ...,
 * MPI_SUM) on a communicator of the caller's.  A C program that already
 * uses MPI trains inside its own communicator:
 *
 *     nf_comm *comm;
 *     nf_mpi_comm_create(MPI_COMM_WORLD, &comm);
 *     nf_train_opts o = nf_train_defaults();
 *     o.comm = comm;                  // batch: the global batch
 *     nf_flow_fit(flow, my_rows, my_n, &o, &report);   // on every rank
 *     nf_mpi_comm_free(comm);
 *
 * MPI must be initialised before and finalised after; the communicator is
 * not duplicated (nflow's collectives are made in the same order on every
 * rank, between the caller's own).  Link with -lnflow_mpi -lnflow and
 * mpicc.  See docs/scaling.md.
 */
#ifndef NFLOW_MPI_H
#define NFLOW_MPI_H

#include <mpi.h>

#include "nflow.h"

#ifdef __cplusplus
extern "C" {
#endif

nf_status nf_mpi_comm_create(MPI_Comm comm, nf_comm **out);
void nf_mpi_comm_free(nf_comm *comm);

#ifdef __cplusplus
}
#endif

#endif
