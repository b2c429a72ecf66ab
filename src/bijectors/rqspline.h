/*
 * rqspline.h - monotone rational-quadratic splines (Durkan, Bekasov, Murray &
 * Papamakarios 2019, "Neural Spline Flows") on [-B, B] with identity (linear)
 * tails, as scalar kernels in double precision.
 *
 * One spline has 3K - 1 raw parameters, read with a stride (p[k * stride]):
 *   p[0 .. K-1]       bin widths   (softmax, then at least NF_RQS_MIN_BIN)
 *   p[K .. 2K-1]      bin heights  (the same)
 *   p[2K .. 3K-2]     derivatives at the K-1 inner knots:
 *                     NF_RQS_MIN_DERIV + softplus(p + c0), c0 chosen so that
 *                     p = 0 gives derivative 1.
 * The boundary derivatives are 1 (the tails' slope), so all-zero parameters
 * give the identity map; a zero-initialised conditioner starts at identity.
 *
 * S maps x to z = S(x); inside [-B, B] it is the spline, outside identity.
 * `lder` is log S'(x).
 */
#ifndef NF_RQSPLINE_H
#define NF_RQSPLINE_H

#include <stddef.h>

#define NF_RQS_MAX_BINS 128
#define NF_RQS_MIN_BIN 1e-3
#define NF_RQS_MIN_DERIV 1e-3

/* z = S(x); returns log S'(x). */
double nf__rqs_eval(size_t K, double B, const float *p, size_t stride, double x, double *z);
/* x = S^{-1}(z) (a stable root of the bin's quadratic, clamped to the bin);
 * returns log S'(x). */
double nf__rqs_invert(size_t K, double B, const float *p, size_t stride, double z, double *x);
/* Reverse mode at x for a loss with dL/dz = gz and dL/d(log S'(x)) = gl:
 * *gx = gz S'(x) + gl d log S'/dx, and gp[k * stride] = dL/dp_k (written,
 * every k). */
void nf__rqs_grad(size_t K, double B, const float *p, size_t stride, double x, double gz, double gl,
                  double *gx, float *gp);

/* A spline given by its knots (TFP's RationalQuadraticSpline): K bins, knots
 * X[0..K] and Y[0..K] increasing, slopes D[0..K] > 0 (D[0] = D[K] = 1 for
 * smooth identity tails); identity outside [X[0], X[K]] (inverse: outside
 * [Y[0], Y[K]]).  The same kernels as above. */
typedef struct nf_rqs_knots {
    size_t K;
    double X[NF_RQS_MAX_BINS + 1], Y[NF_RQS_MAX_BINS + 1], D[NF_RQS_MAX_BINS + 1];
} nf_rqs_knots;
double nf__rqs_knots_eval(const nf_rqs_knots *kn, double x, double *z);
double nf__rqs_knots_invert(const nf_rqs_knots *kn, double z, double *x);
/* gz S'(x) + gl d log S'(x) / dx */
double nf__rqs_knots_gx(const nf_rqs_knots *kn, double x, double gz, double gl);

#endif
