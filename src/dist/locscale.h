/*
 * locscale.h - independent location-scale families built from a standard
 * one-dimensional density: x_j = loc + scale z_j with z_j i.i.d. from the
 * kernel (logistic.c, laplace.c, student_t.c).  The driver (locscale.c) gives log_prob,
 * sample, cdf (d = 1) and the log-density's gradient, so such a
 * distribution serves as a flow's base as well as a scalar distribution:
 *   log p(x) = sum_j [ log f((x_j - loc) / scale) - log scale ],
 *   d log p / dx_j = (log f)'(z_j) / scale.
 */
#ifndef NF_LOCSCALE_H
#define NF_LOCSCALE_H

#include "dist_impl.h"

/* c: the family's shape constant (Student's t: df; unused by the others). */
typedef struct nf_ls_kernel {
    const char *name;
    double (*log_pdf)(double z, double c);  /* log f(z) */
    double (*dlog_pdf)(double z, double c); /* (log f)'(z) */
    double (*cdf)(double z, double c);      /* F(z) */
    double (*draw)(nf_rng *rng, double c);  /* z ~ f */
} nf_ls_kernel;

nf_status nf__locscale_create(const char *fn, const nf_ls_kernel *k, size_t d, float loc, float scale, nf_dist **out);
/* The same with the shape constant c. */
nf_status nf__locscale_create_shape(const char *fn, const nf_ls_kernel *k, size_t d, float loc, float scale, double c,
                                   nf_dist **out);

#endif
