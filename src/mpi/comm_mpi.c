/*
 * comm_mpi.c - an nf_comm over an MPI communicator (nflow_mpi.h): the two
 * sums as in-place MPI_Allreduce, in pieces of at most 2^30 elements (MPI
 * counts are ints).  Built only by `make MPI=1`.
 */
#include "nflow_mpi.h"

#include <stdlib.h>

typedef struct nf_mpi {
    nf_comm c; /* first: the nf_comm handed out is the struct itself */
    MPI_Comm mc;
} nf_mpi;

static int sum(void *user, void *buf, size_t n, MPI_Datatype t, size_t es) {
    nf_mpi *m = user;
    for (size_t i = 0; i < n;) {
        size_t k = n - i < ((size_t)1 << 30) ? n - i : ((size_t)1 << 30);
        int rc = MPI_Allreduce(MPI_IN_PLACE, (char *)buf + i * es, (int)k, t, MPI_SUM, m->mc);
        if (rc != MPI_SUCCESS) return rc;
        i += k;
    }
    return 0;
}
static int sum_floats(void *user, float *buf, size_t n) { return sum(user, buf, n, MPI_FLOAT, sizeof(float)); }
static int sum_doubles(void *user, double *buf, size_t n) { return sum(user, buf, n, MPI_DOUBLE, sizeof(double)); }

nf_status nf_mpi_comm_create(MPI_Comm comm, nf_comm **out) {
    if (!out) return NF_ERR_ARG;
    *out = NULL;
    nf_mpi *m = calloc(1, sizeof *m);
    if (!m) return NF_ERR_NOMEM;
    m->mc = comm;
    if (MPI_Comm_rank(comm, &m->c.rank) != MPI_SUCCESS || MPI_Comm_size(comm, &m->c.size) != MPI_SUCCESS) {
        free(m);
        return NF_ERR_ARG;
    }
    m->c.sum_floats = sum_floats;
    m->c.sum_doubles = sum_doubles;
    m->c.user = m;
    *out = &m->c;
    return NF_OK;
}

void nf_mpi_comm_free(nf_comm *comm) { free(comm); }
