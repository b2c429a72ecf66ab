/*
 * nn.h - dense and masked-dense layers and MLPs on raw float arrays, each
 * with forward and hand-written backward (llm.c style: outputs first, then
 * saved activations, then inputs and weights, then sizes).
 *
 * Parameters of an MLP with widths w[0..L] (w[0] inputs, w[L] outputs) are
 * laid out per linear layer l as W_l [w[l+1] x w[l]] (PyTorch's [out, in])
 * followed by b_l [w[l+1]].  Hidden layers apply `act`; the output layer is
 * linear.  Masked layers (MADE) multiply W_l by a 0/1 mask of the same shape.
 *
 * Masks are applied once, not per pass: nf__mlp_apply_masks zeroes the
 * masked weights in the parameter buffer and sets `premasked`, after which
 * the passes use W as it is and backward keeps masked gradients at zero, so
 * training keeps them zero.  Whoever hands the buffer out for writing clears
 * `premasked` (nf_flow_params, nf_bijector_params): the passes then mask a
 * copy per call again, so a nonzero masked weight written from outside
 * still has no effect.  All-ones masks (every hidden layer of a MADE on
 * d = 2) are never applied.
 */
#ifndef NF_NN_H
#define NF_NN_H

#include "../core/backend.h"
#include "../core/core.h"
#include "../core/tensor.h"

#define NF_MLP_MAX_LAYERS 9 /* linear layers: up to 8 hidden layers + output */

/* A convolutional network in the nf_mlp interface (conv.c): 3 x 3 convolutions
 * on a C x H x W image; the inputs are the conditioning coordinates (flattened
 * image positions in_pos), the outputs K parameters per transformed coordinate
 * (positions out_pos), laid out out[k nt + j]. */
typedef struct nf_convnet {
    size_t C, H, W;                     /* image shape */
    size_t ch[NF_MLP_MAX_LAYERS + 1];   /* channels: ch[0] = C, hidden..., K C */
    size_t *in_pos, *out_pos;           /* ni and nt positions c H W + y W + x (owned) */
    size_t nt, K;
} nf_convnet;

typedef struct nf_mlp {
    size_t nlin;                         /* linear layers */
    size_t w[NF_MLP_MAX_LAYERS + 1];     /* widths */
    nf_activation act;                   /* hidden activation */
    float *masks[NF_MLP_MAX_LAYERS];     /* NULL, or 0/1 masks [w[l+1] x w[l]] (owned) */
    unsigned char ones[NF_MLP_MAX_LAYERS]; /* mask l is all ones: nothing to apply */
    int premasked;                       /* the parameters' masked weights are zero: the
                                            passes use W as it is (nf__mlp_apply_masks) */
    size_t fan_in0;                      /* fan-in the first layer's init assumes (0: w[0]) */
    int residual;                        /* nflows' residual form (nflow.h nf_net_opts):
                                            layer 0 linear, then blocks of layers (2k+1, 2k+2)
                                            reading act(input), layer 2k+2 adding the block's
                                            input; the output layer reads the sum stream */
    nf_convnet *conv;                    /* non-NULL: a convnet (conv.c), the nf__mlp_* calls
                                            dispatch to it; owned, freed by nf__mlp_free_masks */
} nf_mlp;

/* Activation functions applied in place; the derivative is computed from the
 * activation's OUTPUT h, so only outputs need saving. */
void nf__act_forward(nf_activation a, float *h, size_t m);
/* Fused pass over n rows of width b, ldh floats apart: h = act(h + bias). */
void nf__bias_act_forward(nf_activation a, float *h, const float *bias, size_t n, size_t b, size_t ldh);
/* db[j] += sum_i g[i][j] over an n x b block of rows ldg floats apart (the
 * rows in order: a block of columns sums as the whole does). */
void nf__bias_grad(float *db, const float *g, size_t n, size_t b, size_t ldg);
/* dW[i] += G[i] M[i] (a masked layer's weight gradient) */
void nf__mask_acc(float *dW, const float *G, const float *M, size_t n);
/* g[i] *= act'(pre) expressed through h[i] = act(pre) */
void nf__act_backward(nf_activation a, float *g, const float *h, size_t m);
/* The same over an n x b block of g (rows ldg apart) and h (rows ldh apart). */
void nf__act_backward_2d(nf_activation a, float *g, size_t ldg, const float *h, size_t ldh, size_t n, size_t b);
const char *nf__act_name(nf_activation a);

/* Sets up widths in, hidden..., out.  Returns NF_ERR_ARG with a message on bad sizes. */
nf_status nf__mlp_init(nf_mlp *m, size_t in, const size_t *hidden, size_t nhidden, size_t out,
                       nf_activation act);
/* The same from a network's options: o->residual gives the residual form,
 * with one block per entry of o->hidden (equal widths, at most 3). */
nf_status nf__mlp_init_net(nf_mlp *m, size_t in, const nf_net_opts *o, size_t out);
/* A convnet on a shape[0] x shape[1] x shape[2] image: o->hidden are the hidden
 * layers' channel counts; K parameters per transformed coordinate. */
nf_status nf__mlp_init_conv(nf_mlp *m, const size_t shape[3], const size_t *in_pos, size_t ni, const size_t *out_pos,
                            size_t nt, size_t K, const nf_net_opts *o);
/* Frees the masks and the convnet. */
void nf__mlp_free_masks(nf_mlp *m);
/* conv.c's halves of the nf__mlp_* calls (used through them). */
size_t nf__conv_param_count(const nf_mlp *m);
size_t nf__conv_tape_floats(const nf_mlp *m, size_t n);
size_t nf__conv_scratch_bytes(const nf_mlp *m, size_t n);
void nf__conv_init_params(const nf_mlp *m, float *params, nf_rng *rng, nf_init s, int zero_last);
const float *nf__conv_forward(const nf_mlp *m, const nf_backend *be, const float *params, float *tape, void *scratch,
                              const float *x, size_t n);
void nf__conv_backward(const nf_mlp *m, const nf_backend *be, const float *params, float *dparams, float *dx,
                       float *dout, const float *tape, void *scratch, const float *x, size_t n);
nf_status nf__conv_tensors(const nf_mlp *m, const char *prefix, size_t off, nf_tensor_fn fn, void *ctx);
/* Zeroes the masked weights of `params` and sets m->premasked; with
 * check_only, zeroes nothing and sets premasked only if they are all zero
 * already (a loaded model keeps its parameters bit for bit). */
void nf__mlp_apply_masks(nf_mlp *m, float *params, int check_only);
size_t nf__mlp_param_count(const nf_mlp *m);
/* Floats the forward pass saves for n rows (every layer's output). */
size_t nf__mlp_tape_floats(const nf_mlp *m, size_t n);
/* Scratch bytes of forward and backward for n rows. */
size_t nf__mlp_scratch_bytes(const nf_mlp *m, size_t n);
/* Max width. */
size_t nf__mlp_max_width(const nf_mlp *m);

/* Draws parameters: W, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (PyTorch
 * nn.Linear default), Glorot-uniform or He-normal weights with zero biases.
 * zero_last: the output layer starts at zero.  Masked entries are drawn
 * like the others; nf__mlp_apply_masks zeroes them. */
void nf__mlp_init_params(const nf_mlp *m, float *params, nf_rng *rng, nf_init s, int zero_last);

/* The passes run on the backend `be` (never NULL: callers pass nf__be(p->be)).
 * Forward: tape receives every layer's output (n x w[l+1]); the network's
 * output is the last block, returned.  x: n x w[0]. */
const float *nf__mlp_forward(const nf_mlp *m, const nf_backend *be, const float *params, float *tape, void *scratch,
                             const float *x, size_t n);
/* Backward from dout (n x w[L], gradient of the network's output): adds to
 * dparams (may be NULL), writes dx (n x w[0], may be NULL).  Uses the tape of
 * the matching forward.  dout may be modified. */
void nf__mlp_backward(const nf_mlp *m, const nf_backend *be, const float *params, float *dparams, float *dx,
                      float *dout, const float *tape, void *scratch, const float *x, size_t n);

/* Lists the MLP's tensors (parameters from `off`) as a PyTorch
 * nn.Sequential of Linear layers and activations: "<prefix>0.weight"
 * [w1, w0], "<prefix>0.bias", "<prefix>2.weight", ..., and "<prefix>N.mask"
 * buffers for masked layers. */
nf_status nf__mlp_tensors(const nf_mlp *m, const char *prefix, size_t off, nf_tensor_fn fn, void *ctx);

/* MADE (Germain et al. 2015) masks for d inputs with the given input order
 * (order[i] = degree of input i, a permutation of 1..d), `k` outputs per
 * input (output block j*d + i belongs to input i), hidden degrees cycling
 * through 1..d-1.  Output i depends only on inputs of degree < degree(i).
 * Inputs beyond the first d (a conditional flow's context) get degree 0:
 * every hidden unit sees them. */
nf_status nf__made_masks(nf_mlp *m, const size_t *order, size_t d, size_t k);

#endif
