/*
 * nflow.h - normalizing flows in C: bijectors, distributions, flows.
 *
 * Conventions (the same as TensorFlow Probability):
 *   - A bijector's FORWARD maps base space to data space (the sampling
 *     direction); its INVERSE maps data space to base space (the density
 *     direction).  log p(y) = log p_base(inverse(y)) + ildj(y).
 *   - Data are row-major batches of n rows of d floats ("n x d").
 *   - Every fallible call returns an nf_status; on failure a readable message
 *     naming the function, the object and the offending value is kept for the
 *     calling thread and returned by nf_last_error().
 *   - Constructors return a new object through their last argument; the caller
 *     frees it with the matching *_free function (NULL is accepted there).
 *   - Composite constructors (chain, invert, transformed) take ownership of
 *     their parts on success only; on failure the caller still owns them.
 *   - The library never prints and never exits.  Objects hold no hidden
 *     mutable state: a bijector or distribution may be used from several
 *     threads at once; an nf_rng belongs to one thread at a time.
 */
#ifndef NFLOW_H
#define NFLOW_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NF_VERSION_MAJOR 0
#define NF_VERSION_MINOR 1
#define NF_VERSION_PATCH 0

/* ------------------------------------------------------------------------ */
/* Status codes and errors                                                   */
/* ------------------------------------------------------------------------ */

typedef enum nf_status {
    NF_OK = 0,
    NF_ERR_ARG = 1,         /* invalid argument: NULL pointer, bad count, bad option */
    NF_ERR_SHAPE = 2,       /* dimensions of two objects or arrays disagree */
    NF_ERR_DOMAIN = 3,      /* an input is non-finite or outside the map's domain */
    NF_ERR_NUMERIC = 4,     /* a result overflowed or became non-finite */
    NF_ERR_NOMEM = 5,       /* an allocation failed */
    NF_ERR_UNSUPPORTED = 6, /* the operation is not defined for this object */
    NF_ERR_IO = 7           /* a file could not be opened, read or written (the OS's reason in the message) */
} nf_status;

/* Short fixed description of a status code ("domain error", ...). */
const char *nf_status_str(nf_status s);

/* Message of the last failed nflow call made by the calling thread ("" if
 * none).  The pointer stays valid until the thread's next failing call. */
const char *nf_last_error(void);

/* Library version as "MAJOR.MINOR.PATCH". */
const char *nf_version(void);

/* The BLAS behind nflow's matrix products, in words, written into buf (at
 * most cap bytes, always terminated when cap > 0): e.g. "OpenBLAS 0.3.21
 * DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64; kernels: Haswell", or "a
 * CBLAS other than OpenBLAS".  Returns the name of a faster set of OpenBLAS
 * kernels that this CPU runs than the set in use (AVX-512 when OpenBLAS runs
 * AVX2 kernels, as when OPENBLAS_CORETYPE=Haswell pins them), to give to the
 * OPENBLAS_CORETYPE environment variable before the program starts, or NULL.
 * nflow never changes the kernels itself.  Thread-safe. */
const char *nf_blas_info(char *buf, size_t cap);

/* ------------------------------------------------------------------------ */
/* Random numbers                                                            */
/* ------------------------------------------------------------------------ */

/* A seedable generator (xoshiro256**, seeded through splitmix64).  The same
 * seed gives the same stream on every run and machine.  Not to be shared
 * between threads without a lock; give each thread its own. */
typedef struct nf_rng nf_rng;

nf_status nf_rng_create(uint64_t seed, nf_rng **out);
void nf_rng_free(nf_rng *rng);
/* Uniform on [0, 1), 24 random bits. */
float nf_rng_uniform(nf_rng *rng);
/* Standard normal (Box-Muller in double precision). */
float nf_rng_normal(nf_rng *rng);
/* Uniform 64-bit integer, and an integer uniform on [0, bound). */
uint64_t nf_rng_u64(nf_rng *rng);
uint64_t nf_rng_below(nf_rng *rng, uint64_t bound);
void nf_rng_fill_uniform(nf_rng *rng, float *out, size_t n);
void nf_rng_fill_normal(nf_rng *rng, float *out, size_t n);

/* ------------------------------------------------------------------------ */
/* Bijectors                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct nf_bijector nf_bijector;

/* --- elementwise bijectors (y_ij = f(x_ij)) ------------------------------ */
/* Every constructor takes the event dimension d (row length). */

nf_status nf_bijector_identity(size_t d, nf_bijector **out);
/* y = x + shift.  `count` values: 1 (broadcast to all d columns) or d. */
nf_status nf_bijector_shift(size_t d, const float *shift, size_t count, nf_bijector **out);
/* y = scale * x, every scale nonzero.  `count` is 1 or d. */
nf_status nf_bijector_scale(size_t d, const float *scale, size_t count, nf_bijector **out);
/* TFP Scale(log_scale=a): y = e^a x, the log-scale trainable (1 or d values). */
nf_status nf_bijector_scale_log(size_t d, const float *log_scale, size_t count, nf_bijector **out);
/* y = shift + scale * x (TFP AffineScalar), scale nonzero. */
nf_status nf_bijector_affine_scalar(size_t d, float shift, float scale, nf_bijector **out);
/* y = exp(x). */
nf_status nf_bijector_exp(size_t d, nf_bijector **out);
/* y = log(x), x > 0 (the inverse of exp). */
nf_status nf_bijector_log(size_t d, nf_bijector **out);
/* y = 1 / (1 + exp(-x)); inverse needs 0 < y < 1. */
nf_status nf_bijector_sigmoid(size_t d, nf_bijector **out);
/* TFP Sigmoid(low, high): y = high sigmoid(x) + low sigmoid(-x), low < high
 * fixed; every output is a float strictly inside (low, high). */
nf_status nf_bijector_sigmoid_range(size_t d, float low, float high, nf_bijector **out);
/* y = tanh(x); inverse needs -1 < y < 1. */
nf_status nf_bijector_tanh(size_t d, nf_bijector **out);
/* y = log(1 + exp(x)); inverse needs y > 0. */
nf_status nf_bijector_softplus(size_t d, nf_bijector **out);
/* TFP Softplus(hinge_softness = c, low): y = c log(1 + exp(x / c)) + low,
 * c > 0 and low fixed; inverse needs y > low. */
nf_status nf_bijector_softplus_hinge(size_t d, float hinge_softness, float low, nf_bijector **out);
/* TFP RationalQuadraticSpline: one monotone rational-quadratic spline for every
 * column, K bins with knots x at range_min + cumsum(bin_widths), y at
 * range_min + cumsum(bin_heights) (equal sums, all positive), slopes 1 at the
 * ends and knot_slopes (K - 1, positive) inside; identity outside the range.
 * The arguments are fixed. */
nf_status nf_bijector_rq_spline(size_t d, size_t K, const float *bin_widths, const float *bin_heights,
                                const float *knot_slopes, float range_min, nf_bijector **out);
/* TFP SoftClip(low, high, hinge_softness = c): a smooth clip into (low, high),
 * y = high - sp(w - sp(x - low)) w / sp(w), w = high - low, sp(u) = c log(1 + e^(u/c));
 * the arguments fixed; the inverse needs low < y < high. */
nf_status nf_bijector_soft_clip(size_t d, float low, float high, float hinge_softness, nf_bijector **out);
/* TFP PowerTransform(power = p >= 0): y = (1 + p x)^(1/p) (p = 0: e^x) for
 * 1 + p x > 0; inverse needs y > 0.  p fixed. */
nf_status nf_bijector_power_transform(size_t d, float power, nf_bijector **out);
/* y = Phi(x), the standard normal CDF; inverse needs 0 < y < 1. */
nf_status nf_bijector_normal_cdf(size_t d, nf_bijector **out);
/* TFP Softsign: y = x / (1 + |x|); inverse needs -1 < y < 1. */
nf_status nf_bijector_softsign(size_t d, nf_bijector **out);
/* TFP Expm1: y = e^x - 1; inverse needs y > -1. */
nf_status nf_bijector_expm1(size_t d, nf_bijector **out);
/* TFP SinhArcsinh: y = sinh(tailweight (asinh(x) + skewness)), tailweight > 0;
 * both trainable (shared by every column). */
nf_status nf_bijector_sinh_arcsinh(size_t d, float skewness, float tailweight, nf_bijector **out);
/* y = x for x >= 0, alpha * x for x < 0, alpha > 0 learnable.  The stored
 * (trainable) parameter is log(alpha), so alpha stays positive. */
nf_status nf_bijector_leaky_relu(size_t d, float alpha, nf_bijector **out);

/* --- linear bijectors ---------------------------------------------------- */

/* TFP Affine: y = (L + V V^T) x + shift, with L (d x d) lower triangular
 * with nonzero diagonal, V (d x r).  The log-det uses the matrix
 * determinant lemma and the inverse the Woodbury identity.
 * Inputs (any may be NULL for the default):
 *   shift: d values (default 0);
 *   scale_tril: d x d row-major, only the lower triangle read (default I);
 *   perturb: d x r row-major V (default 0; see nf_bijector_init_params).
 * Parameters are stored as [shift (d), L packed by rows (d(d+1)/2), V (d*r)]. */
nf_status nf_bijector_affine(size_t d, size_t r, const float *shift, const float *scale_tril,
                             const float *perturb, nf_bijector **out);

/* Glow's LU-decomposed invertible linear map (Kingma & Dhariwal 2018; nflows'
 * LULinear):
 *   forward (base -> data): y = P L (U + diag(exp(log_s))) x + b,
 *                           fldj = sum log_s
 *   inverse (data -> base): two triangular solves, ildj = -sum log_s.
 * L unit lower triangular, U strictly upper triangular, P the fixed
 * permutation (P c)_j = c_perm[j] (perm NULL: identity).  Parameters:
 * [b (d), L strict lower by rows (d(d-1)/2), U strict upper by rows
 * (d(d-1)/2), log_s (d)], all zero at creation (the map is P). */
nf_status nf_bijector_lu_linear(size_t d, const size_t *perm, nf_bijector **out);

/* Batch normalisation as a bijector (RealNVP, MAF): the inverse (data ->
 * base) is x = (y - m) / sqrt(v + 1e-5) * exp(gamma) + beta.  In a training
 * step (nf_flow_fit, nf_flow_fit_stream) m and v are the batch's statistics
 * and the running averages are updated (momentum 0.1); everywhere else
 * (validation, log_prob, sampling) the running averages are used.  They are
 * saved in model files, so a reloaded model evaluates exactly as before.
 * Parameters [gamma (d), beta (d)]. */
nf_status nf_bijector_batchnorm(size_t d, nf_bijector **out);
/* The running mean and variance (d floats each) of a batchnorm bijector. */
nf_status nf_bijector_batchnorm_running(nf_bijector *b, float **mean, float **var);

/* ActNorm (Glow): per-coordinate y = x exp(s) + b (forward, base -> data),
 * ildj = -sum s.  Parameters [b (d), s (d)].  Initialised from data by
 * nf_flow_data_init (which nf_flow_fit and nf_flow_fit_stream run on the
 * first training batch): b = column means, s = log(std + 1e-6) of the data
 * reaching it, so its base-side output starts standardised.  The
 * initialised flag is saved in model files: a reloaded or resumed model is
 * not initialised again. */
nf_status nf_bijector_actnorm(size_t d, nf_bijector **out);
/* *initialised = 1 once an actnorm has been initialised from data. */
nf_status nf_bijector_actnorm_initialised(const nf_bijector *b, int *initialised);

/* Planar and radial flows (Rezende & Mohamed 2015), for variational fitting
 * (nf_flow_fit_reverse_kl); parameters drawn near the identity with rng.
 *   planar: y = z + u' tanh(w.z + b), u' constrained so that w.u' >= -1
 *           (invertible); parameters [u (d), w (d), b].  The inverse solves
 *           a scalar monotone equation (safeguarded Newton).
 *   radial: y = z + beta (z - z0) / (alpha + |z - z0|), alpha = softplus(a),
 *           beta = -alpha + softplus(b') (invertible); parameters
 *           [z0 (d), a, b'].  The inverse solves a quadratic in |z - z0|. */
nf_status nf_bijector_planar(size_t d, nf_rng *rng, nf_bijector **out);
nf_status nf_bijector_radial(size_t d, nf_rng *rng, nf_bijector **out);

/* y_j = x_{perm[j]} (TFP Permute); perm is a permutation of 0..d-1. */
nf_status nf_bijector_permute(size_t d, const size_t *perm, nf_bijector **out);
/* Reverses the order of the d columns. */
nf_status nf_bijector_reverse(size_t d, nf_bijector **out);
/* A learnable Householder reflection y = (I - 2 v v^T / v.v) x: its own
 * inverse, volume preserving; v (d parameters) drawn from rng. */
nf_status nf_bijector_householder(size_t d, nf_rng *rng, nf_bijector **out);
/* TFP Ascending: y_0 = x_0, y_i = y_{i-1} + e^{x_i} (strictly increasing);
 * the inverse needs strictly increasing rows. */
nf_status nf_bijector_ascending(size_t d, nf_bijector **out);

/* Images: a row of d = C H W values is a C x H x W image, coordinate
 * c H W + y W + x holding channel c of pixel (y, x).
 * Squeeze (Real NVP's space-to-depth) as a permutation: the data side is the
 * C x H x W image (H, W even), the base side 4C x H/2 x W/2 with channel
 * 4c + 2dy + dx holding pixels (2y + dy, 2x + dx) of channel c; the inverse
 * (density direction) squeezes, the forward unsqueezes. */
nf_status nf_bijector_squeeze(const size_t shape[3], nf_bijector **out);
/* Real NVP's logit pre-transform of pixel values: the data side x in
 * [0, levels] (dequantised levels 0..levels-1), the base side
 * z = logit(alpha + (1 - 2 alpha) x / levels); no parameters, alpha in (0, 1/2). */
nf_status nf_bijector_logit_pre(size_t d, double levels, double alpha, nf_bijector **out);
/* One bijector of dimension C = shape[0] at every pixel of a C x H x W image,
 * its parameters shared (Glow: pixelwise(actnorm), and the invertible 1x1
 * convolution pixelwise(lu_linear)); log|det| sums over the pixels.  Takes
 * ownership of `inner` on success. */
nf_status nf_bijector_pixelwise(nf_bijector *inner, const size_t shape[3], nf_bijector **out);
/* TFP Blockwise: bs[i] acts on the i-th block of consecutive columns (the
 * blocks' sizes are the parts' dimensions, d their sum); the log-dets add.
 * With identity blocks, Real NVP's multi-scale factoring-out.  Takes
 * ownership of the parts on success; no conditional parts. */
nf_status nf_bijector_blockwise(nf_bijector **bs, size_t m, nf_bijector **out);

/* --- composition ---------------------------------------------------------- */

/* TFP order: chain([b_{k-1}, ..., b_1, b_0]) applies bs[k-1] FIRST in the
 * forward direction, bs[0] last.  All parts must share one dimension.  Takes
 * ownership of the k parts on success; their parameters move into the
 * chain's single flat buffer. */
nf_status nf_bijector_chain(nf_bijector **bs, size_t k, nf_bijector **out);
/* Swaps forward and inverse of b; takes ownership of b on success. */
nf_status nf_bijector_invert(nf_bijector *b, nf_bijector **out);

/* --- user-defined bijectors (TFP Inline) ---------------------------------- */

/* Callbacks on whole batches (n rows of d floats).  Each returns 0 on
 * success, or a non-zero value to report a failure (which nflow turns into
 * NF_ERR_DOMAIN, naming the bijector).  Log-det callbacks WRITE ldj[i]. */
typedef struct nf_inline_fns {
    int (*forward)(void *user, const float *x, float *y, size_t n, size_t d);
    int (*inverse)(void *user, const float *y, float *x, size_t n, size_t d);
    int (*forward_log_det)(void *user, const float *x, float *ldj, size_t n, size_t d);
    /* Optional: if NULL, ildj(y) = -fldj(inverse(y)). */
    int (*inverse_log_det)(void *user, const float *y, float *ldj, size_t n, size_t d);
    /* Optional reverse-mode gradients.  Given upstream dL/dy (n x d) and
     * dL/dldj (n), WRITE dL/dx (n x d) for the forward map; likewise for the
     * inverse with the roles of x and y swapped.  Without them the inline
     * bijector cannot be trained through (NF_ERR_UNSUPPORTED). */
    int (*forward_backward)(void *user, const float *x, const float *dy, const float *dldj,
                            float *dx, size_t n, size_t d);
    int (*inverse_backward)(void *user, const float *y, const float *dx, const float *dldj,
                            float *dy, size_t n, size_t d);
    /* Optional: +1 increasing, -1 decreasing, 0 unknown (used by cdf). */
    int monotone;
    /* Optional: called with `user` when the bijector is freed. */
    void (*destroy)(void *user);
} nf_inline_fns;

/* `name` (copied, at most 31 characters kept) appears in error messages. */
nf_status nf_bijector_inline(size_t d, const char *name, const nf_inline_fns *fns, void *user,
                             nf_bijector **out);

/* --- using bijectors ------------------------------------------------------ */

void nf_bijector_free(nf_bijector *b);
size_t nf_bijector_dim(const nf_bijector *b);
const char *nf_bijector_name(const nf_bijector *b);

/* x: n x d in the domain; y: n x d; ldj: n values (may be NULL) receiving
 * log|det dy/dx| of each row.  x and y may alias. */
nf_status nf_bijector_forward(const nf_bijector *b, const float *x, size_t n, float *y, float *ldj);
/* y: n x d; x: n x d; ldj: n values (may be NULL) receiving log|det dx/dy|. */
nf_status nf_bijector_inverse(const nf_bijector *b, const float *y, size_t n, float *x, float *ldj);
nf_status nf_bijector_forward_log_det_jacobian(const nf_bijector *b, const float *x, size_t n,
                                               float *ldj);
nf_status nf_bijector_inverse_log_det_jacobian(const nf_bijector *b, const float *y, size_t n,
                                               float *ldj);

/* Reverse-mode gradients of a scalar loss L through one pass.
 * Forward pass x -> (y, ldj): given dy = dL/dy (n x d, NULL means zero) and
 * dldj = dL/dldj (n, NULL means zero), WRITES dx = dL/dx (n x d, may be NULL)
 * and ADDS dL/dparams into dparams (nf_bijector_param_count values, may be
 * NULL).  Inverse pass y -> (x, ldj): the same with the roles swapped. */
nf_status nf_bijector_forward_backward(const nf_bijector *b, const float *x, size_t n,
                                       const float *dy, const float *dldj, float *dx,
                                       float *dparams);
nf_status nf_bijector_inverse_backward(const nf_bijector *b, const float *y, size_t n,
                                       const float *dx, const float *dldj, float *dy,
                                       float *dparams);

/* Conditional bijectors (nf_bijector_context_dim(b) = dc > 0: coupling and
 * MAF layers built with a context, and chains or inverses of them) read a
 * context vector per row: ctx is n x dc.  The calls above refuse them; these
 * take the context (NULL for an unconditional bijector). */
size_t nf_bijector_context_dim(const nf_bijector *b);
nf_status nf_bijector_forward_ctx(const nf_bijector *b, const float *x, const float *ctx, size_t n, float *y,
                                  float *ldj);
nf_status nf_bijector_inverse_ctx(const nf_bijector *b, const float *y, const float *ctx, size_t n, float *x,
                                  float *ldj);
nf_status nf_bijector_forward_backward_ctx(const nf_bijector *b, const float *x, const float *ctx, size_t n,
                                           const float *dy, const float *dldj, float *dx, float *dparams);
nf_status nf_bijector_inverse_backward_ctx(const nf_bijector *b, const float *y, const float *ctx, size_t n,
                                           const float *dx, const float *dldj, float *dy, float *dparams);

/* +1 if every coordinate map is increasing, -1 if decreasing (only
 * meaningful for d = 1), 0 if unknown. */
int nf_bijector_monotone(const nf_bijector *b);

/* Parameters: one flat float buffer per bijector (a chain holds its parts'
 * parameters contiguously, in application order of the parts).  The pointer
 * is writable: an optimiser updates it in place.  NULL when count is 0.
 * MADE weights that a mask removes have no effect whatever you write there:
 * nflow keeps them at zero and skips masking while it owns the buffer
 * (after creation, training and loading), and masks on every pass again
 * once this call (or nf_flow_params) has handed the buffer out, until the
 * next training run zeroes them.  Not to be called while passes of the
 * same object run on other threads. */
size_t nf_bijector_param_count(const nf_bijector *b);
float *nf_bijector_params(nf_bijector *b);
/* Random initialisation of the trainable parameters that need it (e.g. the
 * low-rank factor of affine, whose gradient vanishes at V = 0). */
nf_status nf_bijector_init_params(nf_bijector *b, nf_rng *rng);

/* ------------------------------------------------------------------------ */
/* Trainable bijectors: coupling layers (NICE, RealNVP) and MAF / IAF       */
/* ------------------------------------------------------------------------ */

typedef enum nf_activation {
    NF_ACT_IDENTITY = 0,
    NF_ACT_RELU = 1,
    NF_ACT_LEAKY_RELU = 2, /* slope 0.01 for x < 0, as PyTorch's nn.LeakyReLU() */
    NF_ACT_TANH = 3,
    NF_ACT_SIGMOID = 4,
    NF_ACT_ELU = 5
} nf_activation;

typedef enum nf_init {
    NF_INIT_TORCH = 0,  /* W, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch nn.Linear */
    NF_INIT_GLOROT = 1, /* W ~ U(-sqrt(6/(fan_in+fan_out)), +...), b = 0 */
    NF_INIT_HE = 2      /* W ~ N(0, 2/fan_in), b = 0 */
} nf_init;

#define NF_MAX_HIDDEN 8

/* A multilayer perceptron's shape.  Parameters of each linear layer are
 * stored as weight [out, in] (PyTorch layout) then bias [out]. */
typedef struct nf_net_opts {
    size_t hidden[NF_MAX_HIDDEN]; /* hidden layer widths */
    size_t nhidden;               /* number of hidden layers (0..8) */
    nf_activation activation;     /* of the hidden layers; the output is linear */
    nf_init init;
    int zero_last;                /* start the output layer at zero, so the layer
                                     starts as the identity (avoids NaN in deep flows) */
    int residual;                 /* 0: a plain MLP (hidden layers act(W h + b)).
                                     1: nflows' residual MADE/MLP: a linear input layer
                                     to width w, one pre-activation residual block per
                                     entry of hidden (h += W2 act(W1 act(h) + b1) + b2,
                                     W2 and b2 drawn from U(-1e-3, 1e-3)), a linear output
                                     layer on h; the widths must be equal, at most 3
                                     blocks.  The input-to-output path is linear at the
                                     start (docs/tabular.md measures why it matters). */
} nf_net_opts;

/* Affine coupling (RealNVP, Dinh et al. 2017) or additive coupling (NICE,
 * Dinh et al. 2015).  Conditioning coordinates x_c pass unchanged; the others
 *   forward (base -> data):  y_t = x_t * exp(s(x_c)) + t(x_c),  fldj = sum s
 *   inverse (data -> base):  x_t = (y_t - t(y_c)) * exp(-s(y_c)) (one pass)
 * Only the transformed coordinates are computed; the networks read only x_c. */
typedef struct nf_coupling_opts {
    nf_net_opts net;
    const unsigned char *mask; /* d flags, 1 = conditioning coordinate (dataflowr's
                                  mask); NULL: the first num_masked coordinates (TFP) */
    size_t num_masked;
    float fraction_masked;     /* used when mask is NULL and num_masked is 0:
                                  num_masked = floor(fraction_masked * d) (TFP) */
    int separate_nets;         /* 1: separate s and t networks (dataflowr);
                                  0: one network with a shift and a log-scale head (TFP) */
    int tanh_scale;            /* s = tanh(network output) (dataflowr's scale net) */
    int shift_only;            /* NICE: s = 0, volume preserving */
    size_t spline_bins;        /* 0: affine (above); K in 2..128: a rational-quadratic
                                  spline with K bins instead (see nf_maf_opts) */
    float spline_bound;        /* the spline's interval [-B, B]; 0 means 3 */
    size_t context_dim;        /* conditional flows: the nets also read a context
                                  vector of this size (nf_bijector_forward_ctx, ...) */
    size_t image[3];           /* {C, H, W} with C H W = d: the nets are convnets on the
                                  image (coordinate c H W + y W + x is channel c, pixel
                                  (y, x)): 3 x 3 convolutions, net.hidden their channel
                                  counts; the masked-out entries read as zero (Real NVP's
                                  checkerboard and channel masks).  {0}: MLP nets */
} nf_coupling_opts;

/* The networks' parameters are drawn with rng (NF_INIT_*). */
nf_status nf_bijector_coupling(size_t d, const nf_coupling_opts *opts, nf_rng *rng,
                               nf_bijector **out);
/* A chain of `layers` couplings whose conditioning halves alternate (layer k
 * conditions on coordinates j with (j + k) odd: for d = 2 the masks are
 * [0,1], [1,0], ... in application order, as in dataflowr).  opts->mask and
 * opts->num_masked are ignored. */
nf_status nf_bijector_realnvp(size_t d, size_t layers, const nf_coupling_opts *opts, nf_rng *rng,
                              nf_bijector **out);

typedef enum nf_order { NF_ORDER_NATURAL = 0, NF_ORDER_REVERSED = 1, NF_ORDER_RANDOM = 2 } nf_order;

/* Masked autoregressive flow layer (Papamakarios et al. 2017; TFP's
 * MaskedAutoregressiveFlow with a MADE of Germain et al. 2015).  The MADE
 * gives per coordinate a shift m_i and log-scale a_i of earlier coordinates:
 *   inverse (data -> base, density): z = (x - m(x)) * exp(-a(x)), ONE pass,
 *            ildj = -sum a;
 *   forward (base -> data, sampling): x_i = z_i exp(a_i) + m_i, d passes,
 *            the first without the network (the first coordinate's m, a are
 *            the MADE's output biases), so d - 1 network passes.
 * IAF (Kingma et al. 2016) is invert(MAF): sampling in one pass, density in
 * d - 1 network passes. */
/* The scale of an affine autoregressive layer, z = (x - m) s(a) in the
 * density direction (src/bijectors/transform.h): */
typedef enum {
    NF_SCALE_UNBOUNDED = 0, /* s = e^{-a}: MAF's classic form */
    NF_SCALE_TANH = 1,      /* s = e^{-3 tanh(a/3)}: a soft clamp, s in [e^-3, e^3] */
    NF_SCALE_SIGMOID = 2,   /* z = x s + m, s = sigmoid(a + 2) + 1e-3: nflows' MAF (before 0.14) */
    NF_SCALE_SOFTPLUS = 3   /* z = x s + m, s = softplus(a + 0.5413) + 1e-3 (s = 1 at a = 0): nflows' current MAF */
} nf_scale;

typedef struct nf_maf_opts {
    nf_net_opts net;
    nf_order order;            /* input order (degrees) of the MADE */
    nf_scale scale;            /* affine layers: the scale's form (0: unbounded) */
    /* Spline flows (Durkan et al. 2019, "Neural Spline Flows"): with
     * spline_bins = K in 2..128 each coordinate gets a monotone
     * rational-quadratic spline with K bins on [-B, B] (B = spline_bound, 0
     * means 3) and identity tails, instead of the affine map; the network
     * outputs 3K - 1 values per coordinate (K widths, K heights, K - 1 inner
     * derivatives; all zero is the identity, so zero_last starts the layer at
     * the identity).  Density direction z = S(x), sampling x = S^{-1}(z) by a
     * stable quadratic root.  0: affine. */
    size_t spline_bins;
    float spline_bound;
    /* Conditional flows: the MADE also reads a context vector of this size,
     * connected to every hidden unit (degree 0), as nflows' and zuko's
     * context. */
    size_t context_dim;
} nf_maf_opts;

nf_status nf_bijector_maf(size_t d, const nf_maf_opts *opts, nf_rng *rng, nf_bijector **out);
nf_status nf_bijector_iaf(size_t d, const nf_maf_opts *opts, nf_rng *rng, nf_bijector **out);

/* ------------------------------------------------------------------------ */
/* Distributions                                                             */
/* ------------------------------------------------------------------------ */

typedef struct nf_dist nf_dist;

/* Normal(loc, scale), scalar (d = 1), scale > 0. */
nf_status nf_dist_normal(float loc, float scale, nf_dist **out);
/* Uniform(low, high), scalar (d = 1), low < high; log_prob on the closed
 * support [low, high] (-inf outside), samples in [low, high). */
nf_status nf_dist_uniform(float low, float high, nf_dist **out);
/* Independent normals: loc (d values, NULL = 0) and scale_diag (d values,
 * each > 0; NULL = 1). */
nf_status nf_dist_mvn_diag(size_t d, const float *loc, const float *scale_diag, nf_dist **out);
/* d independent copies of a scalar distribution (TFP's Sample(dist, d)):
 * log p sums over the columns, e.g. a flow's base from any scalar family.
 * Takes ownership of `scalar` on success; it must have no trainable
 * parameters. */
nf_status nf_dist_independent(nf_dist *scalar, size_t d, nf_dist **out);
/* TFP MultivariateNormalTriL(loc, scale_tril): x = loc + L z with L lower
 * triangular, positive diagonal (covariance L L^T); scale_tril is d x d
 * row-major (the upper part ignored); NULL loc = 0, NULL scale_tril = I.
 * Trainable as a flow's base (loc, the lower triangle, log of its diagonal). */
nf_status nf_dist_mvn_tril(size_t d, const float *loc, const float *scale_tril, nf_dist **out);
/* TFP's Logistic(loc, scale) and Laplace(loc, scale), each an independent
 * d-dimensional distribution (d = 1: the scalar one, with a cdf); both
 * serve as a flow's base (they have the log-density's gradient). */
nf_status nf_dist_logistic(size_t d, float loc, float scale, nf_dist **out);
nf_status nf_dist_laplace(size_t d, float loc, float scale, nf_dist **out);
/* TFP StudentT(df, loc, scale), independent in d dimensions, df > 0 fixed:
 * log_prob, sample (normal over the root of a chi-square draw), cdf (d = 1,
 * by the regularised incomplete beta), and as a flow's base. */
nf_status nf_dist_student_t(size_t d, float df, float loc, float scale, nf_dist **out);
/* A trainable mixture of K diagonal Gaussians (1..256 components), the base
 * of the MAF paper's "MoG" models: as a flow's base (nf_flow_create, spec
 * `transformed(mog(k=8), maf(...))`) its weights, means and log-scales train
 * with the bijector's parameters (after them in nf_flow_params).  Starts
 * with equal weights, unit scales and means drawn from N(0, I) with rng.
 * No cdf; a flow with this base cannot be fitted by reverse KL (its samples
 * are not reparameterisable). */
nf_status nf_dist_mog(size_t d, size_t k, nf_rng *rng, nf_dist **out);
/* Independent normals with scale = multiplier * I (TFP's
 * scale_identity_multiplier), multiplier > 0. */
nf_status nf_dist_mvn_scaled_identity(size_t d, const float *loc, float multiplier, nf_dist **out);
/* The distribution of y = b.forward(z), z ~ base.  Takes ownership of base
 * and b on success. */
nf_status nf_dist_transformed(nf_dist *base, nf_bijector *b, nf_dist **out);

void nf_dist_free(nf_dist *dist);
size_t nf_dist_dim(const nf_dist *dist);
const char *nf_dist_name(const nf_dist *dist);

/* x: n x d; out: n log-densities (-inf outside the support). */
nf_status nf_dist_log_prob(const nf_dist *dist, const float *x, size_t n, float *out);
nf_status nf_dist_prob(const nf_dist *dist, const float *x, size_t n, float *out);
/* Scalar distributions (d = 1) only; for a transformed one the bijector must
 * be monotone (nf_bijector_monotone != 0). */
nf_status nf_dist_cdf(const nf_dist *dist, const float *x, size_t n, float *out);
/* out: n x d samples drawn with rng. */
nf_status nf_dist_sample(const nf_dist *dist, nf_rng *rng, size_t n, float *out);
/* Samples and their log-densities in one pass (consistent with log_prob). */
nf_status nf_dist_sample_and_log_prob(const nf_dist *dist, nf_rng *rng, size_t n, float *x,
                                      float *log_prob);


/* ------------------------------------------------------------------------ */
/* Flows: a base distribution and a bijector, trained by maximum likelihood */
/* ------------------------------------------------------------------------ */

typedef struct nf_flow nf_flow;

/* Takes ownership of b (and of base, which may be NULL for a standard normal
 * of b's dimension) on success. */
nf_status nf_flow_create(nf_bijector *b, nf_dist *base, nf_flow **out);
void nf_flow_free(nf_flow *flow);
size_t nf_flow_dim(const nf_flow *flow);
size_t nf_flow_param_count(const nf_flow *flow);
/* The flow's parameters (the bijector's, then a trainable base's), writable;
 * see nf_bijector_params for MADE masks and threads. */
float *nf_flow_params(nf_flow *flow);
const nf_bijector *nf_flow_bijector(const nf_flow *flow);

/* A standard scaler inside the model: the bijector sees (x - mean) / std, and
 * log_prob, sample and every other call stay in the user's units (log_prob
 * includes -sum log std).  NULL mean/std removes it. */
nf_status nf_flow_set_scaler(nf_flow *flow, const float *mean, const float *std);
/* Fits the scaler to data (column means and standard deviations). */
nf_status nf_flow_fit_scaler(nf_flow *flow, const float *x, size_t n);
/* Data-dependent initialisation of the layers that have one (actnorm): the
 * rows x (user units) go through the scaler and the bijector's inverse, each
 * such layer initialising itself from the batch that reaches it, once.
 * nf_flow_fit and nf_flow_fit_stream call it on the first training batch. */
nf_status nf_flow_data_init(nf_flow *flow, const float *x, size_t n);

/* Points whose base-space image overflows float (far outside the data) get
 * log p = -inf; NaN is never returned.
 * These calls work through the rows in chunks of NF_CHUNK_ROWS from the
 * first (with threads too).  A row's result can depend, in its last bits, on
 * its position in its chunk (BLAS kernels block rows); to reproduce a call's
 * bits on a sub-range of its rows, pass whole chunks (nflow logprob under
 * mpirun does: docs/scaling.md). */
#define NF_CHUNK_ROWS 2048
nf_status nf_flow_log_prob(const nf_flow *flow, const float *x, size_t n, float *out);
nf_status nf_flow_sample(const nf_flow *flow, nf_rng *rng, size_t n, float *x);
nf_status nf_flow_sample_and_log_prob(const nf_flow *flow, nf_rng *rng, size_t n, float *x,
                                      float *log_prob);

/* Conditional flows (built from conditional layers: context_dim > 0, or
 * context=K in a spec) model p(x | c): every call takes a context row per
 * point (ctx: n x nf_flow_context_dim values).  The calls without _ctx refuse
 * a conditional flow.  Training rows (nf_flow_fit, nf_flow_fit_stream,
 * nf_flow_fit_scaler) are [x (d values), c (context values)]; the scaler
 * standardises x only. */
size_t nf_flow_context_dim(const nf_flow *flow);

/* log_prob, to_base and the sample calls work in chunks of 2048 rows; with
 * threads > 1 (up to 64) the chunks are split over that many threads, each
 * with its own workspace.  Results are identical for any thread count (the
 * base samples are drawn in order on the calling thread).  BLAS runs one
 * thread inside every nflow call (nflow's threading policy: its own threads
 * do the parallel work, and results never depend on OPENBLAS_NUM_THREADS).
 * Default 1.  Not to be called while another thread uses the flow. */
nf_status nf_flow_set_threads(nf_flow *flow, size_t threads);

/* Where the flow computes: "cpu" (the default), "cuda" or "cuda:K" (GPU K;
 * needs an nflow built with make CUDA=1, see nf_cuda_available); a ",tf32"
 * suffix ("cuda,tf32") lets the matrix products use TF32 (fp32 otherwise).  On a GPU
 * the flow's parameters are copied to the device; log_prob, to_base, the
 * sample calls and training (nf_flow_fit and the other fit calls) run there
 * in large chunks, and results agree with the CPU's to rounding (fp32).
 * Rows the device gives a non-finite log-density are done again on the CPU.
 * The families a GPU runs: couplings with MLP networks, affine or spline
 * (realnvp, nice, nsf, coupling), maf and iaf (affine or spline), actnorm,
 * batchnorm, lu_linear, permutations (reverse, permute) on a normal base, conditional or not;
 * NF_ERR_UNSUPPORTED names the first layer it cannot run (nothing falls back
 * silently).  Model files stay device-neutral.  Calls on a flow that
 * computes on a device are serialised; not to be called while another
 * thread uses the flow. */
nf_status nf_flow_set_device(nf_flow *flow, const char *device);
/* "cpu", or the device's name ("cuda:0"). */
const char *nf_flow_device(const nf_flow *flow);
/* 1 when this nflow was built with CUDA (make CUDA=1), else 0. */
int nf_cuda_available(void);
nf_status nf_flow_log_prob_ctx(const nf_flow *flow, const float *x, const float *ctx, size_t n, float *log_prob);
nf_status nf_flow_sample_ctx(const nf_flow *flow, nf_rng *rng, const float *ctx, size_t n, float *x);
nf_status nf_flow_sample_and_log_prob_ctx(const nf_flow *flow, nf_rng *rng, const float *ctx, size_t n, float *x,
                                          float *log_prob);
/* z = the bijector's inverse of x (in base space), e.g. for the dataflowr
 * figure "z = f^-1(X)". */
nf_status nf_flow_to_base(const nf_flow *flow, const float *x, size_t n, float *z);
/* Number of stages nf_flow_sample_stages writes: 1 + the parts of the chain
 * (1 + 1 if the bijector is not a chain). */
size_t nf_flow_stage_count(const nf_flow *flow);
/* Draws n base samples and pushes them through the chain part by part:
 * out[s] (n x d each, stage_count blocks) holds the samples after s parts
 * (out[0] = base samples, the last = flow samples, in the user's units).
 * names[s] (may be NULL) receives each stage's bijector name ("base" first). */
nf_status nf_flow_sample_stages(const nf_flow *flow, nf_rng *rng, size_t n, float *out,
                                const char **names);

/* ------------------------------------------------------------------------ */
/* Training                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct nf_train_progress {
    size_t step, total_steps;  /* optimiser steps so far, and planned */
    size_t epoch;              /* completed epochs (0 for streamed data) */
    int epoch_end;             /* 1 when an epoch (or a log interval) just ended */
    double train_loss;         /* mean NLL of the last step, or of the epoch at its end */
    double val_loss;           /* mean validation NLL (NAN when there is none) */
} nf_train_progress;

/* Data-parallel training across processes (docs/scaling.md).  Every
 * process calls the same fit with its own share of the data and the same
 * options; after each step's gradient is complete, the processes sum it
 * (weighted by their rows: the gradient of the global batch's mean loss),
 * then run identical clipping and Adam, so the parameters stay equal.  An
 * nf_comm is the transport: nflow_mpi.h gives one over an MPI communicator;
 * any other (threads, a custom transport) fills the struct itself.
 *   sum_floats / sum_doubles: sum buf elementwise over all processes, in
 *   place; every process must receive the same values (MPI_Allreduce with
 *   MPI_SUM); return 0 on success.  Every process makes the same calls in
 *   the same order; a non-zero return fails the fit on that process.
 * With comm->size > 1:
 *   - opts->batch is the global batch: each step takes about batch / size
 *     rows from each process (nf_flow_fit: an epoch is ceil(global training
 *     rows / batch) steps for every process, each process's rows cut into
 *     that many parts; streams and reverse KL: the rows of a step split
 *     evenly, each process drawing its own);
 *   - each process's random numbers (shuffles, draws, dequantisation noise)
 *     come from a stream keyed by (seed, rank, step), so a run is
 *     reproducible for a given number of processes and a checkpoint resumes
 *     bit-identically with the same number (and correctly with another);
 *   - the parameters start as rank 0's (and after a data-dependent
 *     initialisation, act-norm, rank 0's), the scaler (standardize) is
 *     fitted to every process's training rows, validation NLLs and losses
 *     are of all processes' rows, early stopping and callbacks agree;
 *   - a failure on one process (a NaN, a bad row, a failed write) fails the
 *     fit on every process, at the same step, instead of leaving them
 *     waiting; a parameter checksum every check_every steps (0: 100) fails
 *     it if the processes' parameters ever differ;
 *   - only rank 0 writes checkpoints; every process reads resume_path.
 * comm->size == 1 (or comm NULL) is an ordinary single-process run. */
typedef struct nf_comm {
    int rank, size;
    int (*sum_floats)(void *user, float *buf, size_t n);
    int (*sum_doubles)(void *user, double *buf, size_t n);
    void *user;
    size_t check_every;
} nf_comm;

typedef struct nf_train_opts {
    float lr, beta1, beta2, eps;   /* Adam */
    float weight_decay;            /* L2 added to the gradient (Adam, not AdamW) */
    size_t batch;                  /* rows per step; 0 = the whole training set */
    size_t epochs;                 /* nf_flow_fit: passes over the data; 0: whole
                                      epochs covering at least `steps` steps */
    size_t steps;                  /* nf_flow_fit_stream, nf_flow_fit_reverse_kl:
                                      optimiser steps (nf_flow_fit: see epochs) */
    float val_split;               /* nf_flow_fit: last fraction held out (Keras) */
    size_t patience;               /* early stopping after this many epochs
                                      without validation improvement (0: off);
                                      the best parameters are restored */
    float clip_norm;               /* clip the gradient's global L2 norm (0: off) */
    uint64_t seed;                 /* shuffling and streamed data */
    int standardize;               /* nf_flow_fit: fit the scaler to the training rows */
    size_t log_every;              /* nf_flow_fit_stream: callback interval in steps */
    /* Called after every epoch (fit) or log_every steps (fit_stream); a
     * non-zero return stops training. */
    int (*callback)(void *user, const nf_train_progress *p);
    void *user;
    /* Checkpoints: when checkpoint_path is set, the whole training state
     * (parameters, Adam moments, RNG, counters, histories, best parameters)
     * is written there every checkpoint_every steps (fit_stream) or epochs
     * (fit), atomically.  When resume_path names an existing checkpoint of
     * the same flow, training continues from it and ends bit-identical to an
     * uninterrupted run with the same options. */
    const char *checkpoint_path;
    size_t checkpoint_every;
    const char *resume_path;
    /* Threads that share each step (0 or 1: the calling thread alone), as
     * `split` says.  Results are reproducible for a given split and thread
     * count.  BLAS runs one thread inside nflow's calls, whatever the host set. */
    size_t threads;
    /* nf_flow_fit_reverse_kl: the target's weight beta rises linearly from
     * 0.01 to 1 over this many steps (Rezende & Mohamed's annealing, which
     * helps flows find every mode); 0: beta = 1 throughout. */
    size_t anneal_steps;
    /* The gradient-reduction seam: when set, called once per step on this
     * process's gradient of its mean loss (grad: every parameter of the
     * flow, n floats) and that mean loss, once both are complete and before
     * clipping and Adam.  It may change both in place: an all-reduce across
     * processes (average them), gradient accumulation.  Every process then
     * runs the same clipping and Adam.  A non-zero return stops training
     * with NF_ERR_ARG naming the step; the parameters of the last good step
     * are kept. */
    int (*reduce)(void *reduce_user, float *grad, size_t n, double *loss);
    void *reduce_user;
    /* nf_flow_fit: 1 = uniform dequantisation of integer data (Theis et al.
     * 2016): U(0, 1) noise on every data value (not the context), drawn
     * afresh each epoch for the training rows, one fixed draw for the
     * validation rows and the scaler.  The NLL is then that of the
     * dequantised data, an upper bound on the integer data's NLL (-log P of
     * the unit cell), in nats per row of the data's own units. */
    int dequantize;
    /* Data-parallel training across processes (see nf_comm); NULL: one. */
    const nf_comm *comm;
    /* How `threads` share a step (nf_split): NF_SPLIT_ROWS gives each thread
     * a slice of the batch's rows with its own workspace and gradient, summed
     * in a fixed order; NF_SPLIT_COLUMNS runs the whole batch on the calling
     * thread and shares each of the networks' matrix products and element-
     * wise passes (and Adam) across the threads by its output's columns: one
     * gradient, nothing to sum, and no thread's cost fixed by the full-size
     * weights whatever its rows (the CPU backend only; a flow on another
     * backend or a device splits rows).  NF_SPLIT_AUTO (0) takes columns
     * when each thread would get fewer than NF_SPLIT_AUTO_ROWS rows. */
    int split;
} nf_train_opts;

enum nf_split { NF_SPLIT_AUTO = 0, NF_SPLIT_ROWS = 1, NF_SPLIT_COLUMNS = 2 };
#define NF_SPLIT_AUTO_ROWS 32

/* lr 1e-3, betas 0.9/0.999, eps 1e-8, batch 100, epochs 100, steps 1000,
 * val_split 0, patience 0, clip_norm 0, seed 0, log_every 100. */
nf_train_opts nf_train_defaults(void);

typedef struct nf_train_report {
    size_t steps, epochs;
    /* Of the parameters the flow holds on return: when early stopping
     * restored the best epoch's (restored = 1), that epoch's mean training
     * loss and its validation NLL; otherwise the last epoch's (or the last
     * log interval's).  NAN where there is none. */
    double train_loss;
    double val_loss;
    double best_val_loss;    /* the best validation NLL, at best_epoch */
    size_t best_epoch;
    int stopped_early;       /* patience ran out, or the callback asked to stop */
    int restored;            /* the parameters of best_epoch were put back */
    double seconds;
    /* per-epoch (fit) or per-log-interval (fit_stream) histories, n_history
     * entries each, owned by the report: free with nf_train_report_free.
     * When a fit fails, the histories are freed before it returns (the
     * counters still say how far it got). */
    double *train_history, *val_history;
    size_t n_history;
} nf_train_report;
void nf_train_report_free(nf_train_report *r);

/* Maximum likelihood on n rows of data (n x d), minibatches with shuffling. */
nf_status nf_flow_fit(nf_flow *flow, const float *data, size_t n, const nf_train_opts *opts,
                      nf_train_report *report);
/* Maximum likelihood on fresh batches drawn by `draw` at every step. */
typedef int (*nf_sampler_fn)(void *user, nf_rng *rng, float *x, size_t n);
nf_status nf_flow_fit_stream(nf_flow *flow, nf_sampler_fn draw, void *draw_user,
                             const nf_train_opts *opts, nf_train_report *report);

/* Variational fitting (Rezende & Mohamed 2015): an unnormalised target
 * log-density log p~(x) of n points (n x d) with its gradient (n x d; the
 * callback may be asked for it with grad != NULL); returns 0 on success. */
typedef int (*nf_log_density_fn)(void *user, const float *x, size_t n, size_t d, float *log_p, float *grad);
/* The four 2-D energies of Rezende & Mohamed 2015, Table 1, as log p~ = -U:
 * "u1" .. "u4" (U2-U4 with the envelope (z1/4)^8/2, see src/train/energy.c). */
nf_status nf_energy_target(const char *name, nf_log_density_fn *fn);
/* Minimises the reverse KL divergence KL(q || p) = E_q[log q(x) - log p~(x)]
 * + log Z over the flow's parameters: each step draws opts->batch base
 * samples z, maps them forward (sampling direction: IAF, planar and radial
 * flows and couplings are one pass), and follows the gradient of the
 * estimate.  opts: steps, batch, lr and Adam, clip_norm, seed, log_every,
 * callback, threads (the target is then called from each thread on
 * disjoint rows: it must be safe to call concurrently), checkpoints and
 * resume (as for the other fit calls), reduce.  The report's train history
 * holds the mean of log q - log p~, which is >= -log Z (equal when q = p).
 * Unconditional flows only. */
nf_status nf_flow_fit_reverse_kl(nf_flow *flow, nf_log_density_fn target, void *target_user,
                                 const nf_train_opts *opts, nf_train_report *report);

/* ------------------------------------------------------------------------ */
/* The spec language                                                         */
/* ------------------------------------------------------------------------ */

/* One grammar for the C API and the CLI:
 *   spec := name [ '(' [ arg {, arg} ] ')' ],  arg := [name '='] value,
 *   value := number | name | spec | '[' value {, value} ']'
 * Bijectors: identity, shift(v), scale(v), affine_scalar(shift, scale),
 *   affine(rank=r), exp, log, sigmoid, tanh, softplus, normal_cdf,
 *   leaky_relu(alpha=0.2), permute([..]), reverse, chain(b, ...) (TFP order),
 *   invert(b), coupling(mask=[..] | num_masked=k | fraction_masked=f,
 *   tanh_scale=1 (log-scales soft-bounded by tanh), ...),
 *   realnvp(layers=6, hidden=[256,256], activation=leaky_relu, separate=1,
 *   tanh_scale=1), nice(layers=4, ...), maf(layers=1, hidden=[256,256],
 *   activation=relu, order=natural), iaf(...).  Network options on all of
 *   coupling/realnvp/nice/maf/iaf: hidden, activation (identity, relu,
 *   leaky_relu, tanh, sigmoid, elu), init (torch, glorot, he), zero_last.
 *   maf/iaf with layers > 1 put reverse permutations between the layers.
 * Distributions: normal(loc, scale), uniform(low, high),
 *   mvn_diag(loc=[..], scale=[..]), transformed(dist, bijector).
 * Errors name the column, with a caret line, and list the known names.
 * rng draws the networks' initial weights (and random MADE orders); it may
 * be NULL (a spec that draws nothing needs none; one that does then draws
 * from seed 0).
 * nf_spec_builder lists every builder; `nflow eval --list` prints them. */
nf_status nf_bijector_from_spec(const char *spec, size_t d, nf_rng *rng, nf_bijector **out);

/* The spec language's builders, from its one table: the k-th bijector
 * (what = NF_SPEC_BIJECTOR) or distribution (NF_SPEC_DISTRIBUTION), k = 0,
 * 1, ...; NULL past the last.  Static data, never freed. */
enum { NF_SPEC_BIJECTOR = 0, NF_SPEC_DISTRIBUTION = 1 };
typedef struct nf_spec_builder_info {
    const char *name;
    const char *const *args; /* its keyword arguments, NULL-terminated */
    int positional;          /* positional arguments it takes (-1: any number of bijectors) */
    const char *summary;     /* one line */
} nf_spec_builder_info;
const nf_spec_builder_info *nf_spec_builder(int what, size_t k);
nf_status nf_dist_from_spec(const char *spec, nf_rng *rng, nf_dist **out);
/* A bijector spec (standard normal base) or transformed(base, bijector).
 * `seed` draws the initial weights (and random MADE orders); the flow keeps
 * the spec and the seed, so it can be saved to a model file. */
nf_status nf_flow_from_spec(const char *spec, size_t d, uint64_t seed, nf_flow **out);
/* The spec a flow was built from (NULL if it was built by hand). */
const char *nf_flow_spec(const nf_flow *flow);
/* 1 and the scaler's arrays if the flow has one, else 0. */
int nf_flow_scaler(const nf_flow *flow, const float **mean, const float **std);
/* The data's column names (d values, then the context's): kept with the
 * flow, saved in its model file, and used as the header of sample files.
 * names NULL removes them.  The name of column j, or NULL. */
nf_status nf_flow_set_column_names(nf_flow *flow, const char *const *names);
const char *nf_flow_column_name(const nf_flow *flow, size_t j);

/* ------------------------------------------------------------------------ */
/* Model files                                                               */
/* ------------------------------------------------------------------------ */

/* Model files: safetensors (8-byte little-endian header length, JSON header,
 * raw little-endian float32 tensors) readable from Python with a few lines.
 * __metadata__ holds format "nflow", version, the spec, the dimension, the
 * build seed, the scaler and `summary` (a string, e.g. JSON, may be NULL);
 * tensors are named like a PyTorch state_dict ("layers.0.s_net.0.weight",
 * weights [out, in]), MADE masks and permutations stored as buffers.
 * Saving goes through nf_write_file (a temporary file, fsync, rename).
 * nf_flow_load rebuilds the flow from its spec and checks every tensor's
 * name, shape and size against the spec and the file length.  A flow built
 * with the C constructors (no spec) is saved the same way; load it with
 * nf_flow_load_params into the same flow built again (as PyTorch's
 * load_state_dict): nf_flow_load says so for such a file. */
nf_status nf_flow_save(const nf_flow *flow, const char *path, const char *summary);
nf_status nf_flow_load(const char *path, nf_flow **out);
/* Loads a model file's parameters (and scaler) into `flow`, whose tensors
 * must match the file's in name and shape (fixed buffers such as MADE masks
 * equal); on failure the flow's parameters are left as they were. */
nf_status nf_flow_load_params(nf_flow *flow, const char *path);
/* The metadata value `key` of a model file's header (malloc'd; free()). */
nf_status nf_model_metadata(const char *path, const char *key, char **value);

/* ------------------------------------------------------------------------ */
/* Data files                                                                */
/* ------------------------------------------------------------------------ */

/* Reads a table of numbers: CSV (comma or whitespace separated, optional
 * header line, '#' comments; "-" is stdin) or NumPy .npy (float32/float64,
 * C order, shape (n,) or (n, d)), chosen by the extension.  *data is
 * malloc'd (free it with free()).  Errors name the file, line and column;
 * NaN or infinite values are errors. */
nf_status nf_read_table(const char *path, float **data, size_t *n, size_t *d);
/* Writes n x d floats as CSV (header line if non-NULL) or .npy (float32),
 * atomically (temporary file, then rename); "-" is stdout (CSV). */
/* nf_read_table and the column names of a CSV header (*names: d strings,
 * NULL for a .npy file or a CSV without a header; free with nf_free_names). */
nf_status nf_read_table_names(const char *path, float **data, size_t *n, size_t *d, char ***names);
void nf_free_names(char **names, size_t d);
/* Part `part` (0-based) of `parts` of a table file, for processes that each
 * read a share: every data row lies in exactly one part, in file order.
 * .npy: rows [n * part / parts, n * (part + 1) / parts), read by offset;
 * CSV: the data lines that start in bytes [size * part / parts,
 * size * (part + 1) / parts) (found by seeking to a line start; the header
 * is never data).  A part may have no rows (*n = 0); *d is the file's
 * columns either way, *names (may be NULL) the header's names.  A regular
 * file is needed for parts > 1. */
nf_status nf_read_table_part(const char *path, size_t part, size_t parts, float **data, size_t *n, size_t *d,
                             char ***names);
nf_status nf_write_table(const char *path, const float *x, size_t n, size_t d, const char *header);
/* n values as a vector: a .npy of shape (n,), or a one-column CSV. */
nf_status nf_write_vector(const char *path, const float *x, size_t n, const char *header);
/* Writes len bytes to `path` the way every nflow writer does (tables, model
 * files, checkpoints, the CLI's figures and reports): "-" is standard
 * output; a character device, FIFO or stream (/dev/stdout, also through a
 * symlink) is written in place; a regular file (a symlink's target, the
 * link kept) or a new path is written to a unique temporary beside it,
 * keeping the original's mode, synced and renamed over it, so a failure
 * leaves the original intact; a directory is refused.  Every write, flush
 * and close is checked: NF_ERR_IO with the path and the OS's reason. */
nf_status nf_write_file(const char *path, const void *data, size_t len);

/* ------------------------------------------------------------------------ */
/* Toy data sets (2-D)                                                       */
/* ------------------------------------------------------------------------ */

/* scikit-learn's make_moons(n, noise): two interleaved half circles, the
 * second shifted by (1, -0.5), Gaussian noise of std `noise`, rows shuffled.
 * labels (may be NULL) receive 0 or 1. */
nf_status nf_data_moons(nf_rng *rng, size_t n, float noise, float *x, int *labels);
/* Names: "moons", "circles", "8gaussians", "checkerboard", "spirals", "pinwheel". */
nf_status nf_data_generate(const char *name, nf_rng *rng, size_t n, float noise, float *x, int *labels);
/* The k-th generated data set's name (k = 0, 1, ...); NULL past the last. */
const char *nf_data_name(size_t k);

#ifdef __cplusplus
}
#endif
#endif /* NFLOW_H */
