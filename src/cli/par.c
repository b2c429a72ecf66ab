/*
 * par.c - the processes a command runs on: one, or (the MPI build, under
 * mpirun) every rank of MPI_COMM_WORLD.  Commands ask it for their rank,
 * agree on failures, sum numbers, and write one output file from every
 * rank's rows (the bytes a one-process run writes).
 */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef NF_MPI
#include <fcntl.h>
#include <sys/stat.h>

#include "nflow_mpi.h"
#endif

int par_init(par *p, int *argc, char ***argv) {
    memset(p, 0, sizeof *p);
    p->size = 1;
#ifdef NF_MPI
    if (MPI_Init(argc, argv) != MPI_SUCCESS) {
        fprintf(stderr, "nflow: MPI_Init failed\n");
        return EXIT_DATA;
    }
    nf_comm *c = NULL;
    if (nf_mpi_comm_create(MPI_COMM_WORLD, &c)) {
        fprintf(stderr, "nflow: cannot set up MPI_COMM_WORLD\n");
        MPI_Abort(MPI_COMM_WORLD, EXIT_DATA);
    }
    p->rank = c->rank, p->size = c->size, p->comm = c;
#else
    (void)argc, (void)argv;
#endif
    return 0;
}

int par_finish(par *p, int rc) {
#ifdef NF_MPI
    if (rc && p->size > 1) { /* a failed rank ends them all, now, instead of leaving them waiting */
        fflush(stdout);
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, rc);
    }
    nf_mpi_comm_free((nf_comm *)p->comm);
    MPI_Finalize();
#endif
    p->comm = NULL;
    return rc;
}

int par_sum(const par *p, double *v, size_t n) {
    if (p->size == 1) return 0;
    return p->comm->sum_doubles(p->comm->user, v, n) ? EXIT_DATA : 0;
}

int par_offset(const par *p, size_t n, size_t *first, size_t *total) {
    *first = 0, *total = n;
    if (p->size == 1) return 0;
    double *cnt = calloc((size_t)p->size, sizeof(double)); /* exact: counts below 2^53 */
    if (!cnt) return EXIT_DATA;
    cnt[p->rank] = (double)n;
    int rc = par_sum(p, cnt, (size_t)p->size);
    *total = 0;
    for (int q = 0; !rc && q < p->size; q++) *total += (size_t)cnt[q], *first += q < p->rank ? (size_t)cnt[q] : 0;
    free(cnt);
    return rc;
}

void par_range(const par *p, size_t n, size_t *a, size_t *b) {
    *a = n / (size_t)p->size * (size_t)p->rank + n % (size_t)p->size * (size_t)p->rank / (size_t)p->size;
    *b = n / (size_t)p->size * (size_t)(p->rank + 1) + n % (size_t)p->size * (size_t)(p->rank + 1) / (size_t)p->size;
}

int par_agree(const par *p, int rc) {
    if (p->size == 1) return rc;
    double v[2] = {rc != 0, rc};
    if (par_sum(p, v, 2)) return EXIT_DATA;
    if (rc) return rc;
    return v[0] == 0 ? 0 : v[0] == 1 ? (int)v[1] : EXIT_DATA;
}

/* The bytes of a table file, as nf_write_table / nf_write_vector write
 * them: the NPY header for N rows (*len), or a CSV header line. */
static size_t npy_header(unsigned char *h, size_t N, size_t w, int vector) {
    char dict[128];
    int len = vector ? snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%zu,), }", N)
                     : snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%zu, %zu), }", N, w);
    size_t total = 10 + (size_t)len + 1, pad = (64 - total % 64) % 64, hl = (size_t)len + 1 + pad;
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hl & 0xff), (unsigned char)(hl >> 8)};
    memcpy(h, pre, 10);
    memcpy(h + 10, dict, (size_t)len);
    memset(h + 10 + len, ' ', pad);
    h[10 + (size_t)len + pad] = '\n';
    return 10 + hl;
}

#ifdef NF_MPI
/* This rank's rows as CSV text (no header). */
static char *csv_text(const float *x, size_t n, size_t w, size_t *len) {
    char *buf = NULL;
    size_t cap = 0;
    FILE *m = open_memstream(&buf, &cap);
    if (!m) return NULL;
    int ok = 1;
    for (size_t i = 0; i < n && ok; i++)
        for (size_t j = 0; j < w && ok; j++) ok = fprintf(m, "%.9g%c", x[i * w + j], j + 1 < w ? ',' : '\n') >= 0;
    if (fclose(m) || !ok) {
        free(buf);
        return NULL;
    }
    *len = cap;
    return buf;
}

static int pwrite_all(int fd, const void *b, size_t len, off_t off) {
    const char *c = b;
    while (len) {
        ssize_t k = pwrite(fd, c, len, off);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        c += k, len -= (size_t)k, off += k;
    }
    return 0;
}

/* Every rank's bytes at its offset of a temporary beside `path` (made by
 * rank 0), then rank 0 syncs and renames it over `path`: the one-process
 * file, written in parallel, never half-written where `path` is. */
static int write_parts(const par *p, const char *cmd, const char *path, const void *head, size_t hlen, const void *body,
                       size_t blen) {
    size_t before = 0, total = 0; /* this rank's bytes go after every lower rank's */
    char tmp[4200] = "";
    int rc = par_offset(p, blen, &before, &total), fd = -1;
    if (!rc && p->rank == 0) {
        snprintf(tmp, sizeof tmp, "%s.nflow-part-XXXXXX", path);
        fd = mkstemp(tmp);
        if (fd < 0) rc = fail(cmd, EXIT_DATA, "cannot create a temporary beside %s: %s", path, strerror(errno));
        else fchmod(fd, 0644);
    }
    rc = par_agree(p, rc);
    MPI_Bcast(tmp, sizeof tmp, MPI_CHAR, 0, MPI_COMM_WORLD);
    if (!rc && p->rank) {
        fd = open(tmp, O_WRONLY);
        if (fd < 0) rc = fail(cmd, EXIT_DATA, "rank %d: cannot open %s: %s (a folder every rank sees)", p->rank, tmp, strerror(errno));
    }
    off_t off = (off_t)(hlen + before);
    if (!rc && p->rank == 0 && pwrite_all(fd, head, hlen, 0)) rc = fail(cmd, EXIT_DATA, "writing %s: %s", tmp, strerror(errno));
    if (!rc && pwrite_all(fd, body, blen, off)) rc = fail(cmd, EXIT_DATA, "writing %s: %s", tmp, strerror(errno));
    if (fd >= 0 && (fsync(fd) || close(fd)) && !rc) rc = fail(cmd, EXIT_DATA, "writing %s: %s", tmp, strerror(errno));
    rc = par_agree(p, rc); /* every part is written and synced */
    if (p->rank == 0 && tmp[0]) {
        if (!rc && rename(tmp, path)) rc = fail(cmd, EXIT_DATA, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
        if (rc) unlink(tmp);
    }
    return par_agree(p, rc);
}
#endif

int par_write_table(const par *p, const char *cmd, const char *path, const float *x, size_t n, size_t w,
                    const char *header, int vector) {
    if (p->size == 1) {
        nf_status s = vector ? nf_write_vector(path, x, n, header) : nf_write_table(path, x, n, w, header);
        return s ? fail(cmd, EXIT_DATA, "%s", nf_last_error()) : 0;
    }
#ifdef NF_MPI
    if (!strcmp(path, "-")) return fail(cmd, EXIT_USAGE, "--out -: standard output takes one process's rows; give a file");
    size_t first, N;
    if (par_offset(p, n, &first, &N)) return EXIT_DATA;
    size_t len = strlen(path);
    int npy = len >= 4 && !strcmp(path + len - 4, ".npy");
    unsigned char nh[256];
    char *text = NULL;
    size_t hlen = 0, blen = n * w * sizeof(float);
    const void *head = nh, *body = x;
    if (npy) {
        hlen = npy_header(nh, N, w, vector);
    } else {
        head = header ? header : "";
        hlen = header ? strlen(header) : 0;
        text = csv_text(x, n, w, &blen);
        body = text;
    }
    char *hl = NULL;
    if (!npy && header) { /* the header line with its newline */
        hl = malloc(hlen + 2);
        if (hl) snprintf(hl, hlen + 2, "%s\n", header), head = hl, hlen++;
    }
    int rc = (!npy && !text) || (header && !npy && !hl) ? EXIT_DATA : 0;
    rc = par_agree(p, rc);
    if (!rc) rc = write_parts(p, cmd, path, head, hlen, body, blen);
    free(text);
    free(hl);
    return rc;
#else
    (void)npy_header;
    return EXIT_DATA;
#endif
}
