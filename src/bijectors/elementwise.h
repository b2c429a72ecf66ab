/*
 * elementwise.h - bijectors that act on each coordinate alone, y_ij = f(x_ij),
 * described by scalar kernels.  The driver in elementwise.c turns a kernel
 * into the batched passes and derives both backward passes from the forward
 * partial derivatives:
 *   forward:  dL/dx = dy f_x + dldj l_x,           dL/dp += dy f_p + dldj l_p
 *   inverse:  x = f^-1(y), dx/dy = 1/f_x, dildj/dy = -l_x/f_x,
 *             dx/dp = -f_p/f_x, dildj/dp = -(l_p + l_x dx/dp)
 * where l(x) = log|f'(x)| is the forward log-det term.
 */
#ifndef NF_ELEMENTWISE_H
#define NF_ELEMENTWISE_H

#include "bijector_impl.h"

#define NF_EW_MAXP 2 /* parameters per slot */
#define NF_EW_MAXC 3 /* fixed constants (not trained) of a parameter-free kernel */

/* Kernel return codes. */
enum { NF_EW_OK = 0, NF_EW_OUT_OF_DOMAIN = 1, NF_EW_BAD_PARAM = 2 };

typedef struct nf_ew_kernel {
    const char *name;
    size_t k;                  /* parameters per slot (0..NF_EW_MAXP) */
    size_t nc;                 /* fixed constants (0..NF_EW_MAXC), the same for every column:
                                  the kernels read them as p (such a kernel has k = 0) */
    const char *fwd_domain;    /* e.g. "x > 0"; NULL: every real */
    const char *inv_domain;    /* e.g. "0 < y < 1" */
    const char *param_domain;  /* e.g. "scale != 0" */
    int monotone;              /* +1 / -1, or 0: sign of f_x, found from the parameters */
    const char *pnames[NF_EW_MAXP]; /* tensor names of the parameters */
    /* p: this column's k parameters.  Return an NF_EW_* code. */
    int (*fwd)(const float *p, double x, double *y, double *ldj);
    int (*inv)(const float *p, double y, double *x, double *ildj);
    void (*partials)(const float *p, double x, double *fx, double *lx, double *fp, double *lp);
} nf_ew_kernel;

/* New elementwise bijector of dimension d with `nslot` parameter slots (1:
 * shared by every column, or d: one per column), parameters initialised from
 * `init` (nslot * k values, may be NULL for zeros). */
nf_status nf__ew_create(const char *fn, const nf_ew_kernel *kern, size_t d, size_t nslot,
                        const float *init, nf_bijector **out);
/* The same with the kernel's kern->nc fixed constants (TFP's non-trainable
 * arguments: Sigmoid's low and high, Softplus's hinge_softness, ...). */
nf_status nf__ew_create_const(const char *fn, const nf_ew_kernel *kern, size_t d, size_t nslot, const float *init,
                              const float *consts, nf_bijector **out);

#endif
