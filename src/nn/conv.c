/*
 * conv.c - a convolutional network behind the nf_mlp interface (nn.h), the
 * conditioner of couplings on images (Real NVP's and Glow's convnets).
 *
 * The network reads the coupling's conditioning columns, places them in a
 * C x H x W image whose other entries are zero (the masked-out, transformed
 * ones), runs 3 x 3 convolutions (padding 1, stride 1: the image keeps its
 * size) with `act` between them, and returns, for every transformed
 * coordinate (channel c at pixel q), its K parameters read from output
 * channels k C + c at q: row layout out[k nt + j], as the MLP nets give.
 *
 * Activations are stored channel-major across the batch, A[c][i HW + q], so
 * a layer is one GEMM over all rows (im2col):
 *   forward   col = im2col(A_l)            [9 C_l x n HW]
 *             A_{l+1} = act(W_l col + b_l)  W_l [C_{l+1} x 9 C_l]
 *   backward  dW_l += G col^T, db_l += row sums of G,
 *             dA_l = col2im(W_l^T G) (then act' through A_l's values)
 * The tape holds every layer's output and the gathered output rows; the
 * input image and the columns are rebuilt in backward from x.  Parameters
 * per layer: W_l as [C_{l+1}, 9 C_l] (PyTorch's [out, in, 3, 3] flattened),
 * then b_l.
 */
#include "nn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KS 3 /* kernel side */

nf_status nf__mlp_init_conv(nf_mlp *m, const size_t shape[3], const size_t *in_pos, size_t ni, const size_t *out_pos,
                            size_t nt, size_t K, const nf_net_opts *o) {
    memset(m, 0, sizeof *m);
    size_t C = shape[0], H = shape[1], W = shape[2];
    if (!C || !H || !W || C > 4096 || H > 4096 || W > 4096)
        return nf__err(NF_ERR_ARG, "convnet: image shape %zu x %zu x %zu must be positive (each at most 4096)", C, H, W);
    if (o->nhidden < 1 || o->nhidden + 1 > NF_MLP_MAX_LAYERS)
        return nf__err(NF_ERR_ARG, "convnet: 1..%d hidden layers (channel counts), got %zu", NF_MLP_MAX_LAYERS - 1,
                       o->nhidden);
    if (o->residual) return nf__err(NF_ERR_UNSUPPORTED, "convnet: residual=1 is for MLPs; image nets are plain");
    if ((int)o->activation < 0 || o->activation > NF_ACT_ELU)
        return nf__err(NF_ERR_ARG, "convnet: unknown activation %d", (int)o->activation);
    nf_convnet *cv = calloc(1, sizeof *cv);
    if (!cv) return nf__err(NF_ERR_NOMEM, "convnet: out of memory");
    cv->C = C, cv->H = H, cv->W = W, cv->nt = nt, cv->K = K;
    cv->ch[0] = C;
    for (size_t l = 0; l < o->nhidden; l++) cv->ch[l + 1] = o->hidden[l];
    cv->ch[o->nhidden + 1] = K * C;
    cv->in_pos = malloc((ni + 1) * sizeof(size_t));
    cv->out_pos = malloc((nt + 1) * sizeof(size_t));
    m->conv = cv; /* freed by nf__mlp_free_masks from here on */
    if (!cv->in_pos || !cv->out_pos) {
        nf__mlp_free_masks(m);
        return nf__err(NF_ERR_NOMEM, "convnet: out of memory");
    }
    memcpy(cv->in_pos, in_pos, ni * sizeof(size_t));
    memcpy(cv->out_pos, out_pos, nt * sizeof(size_t));
    m->nlin = o->nhidden + 1;
    m->act = o->activation;
    m->w[0] = ni;
    for (size_t l = 1; l < m->nlin; l++) m->w[l] = cv->ch[l];
    m->w[m->nlin] = K * nt;
    double total = 0;
    for (size_t l = 0; l < m->nlin; l++) {
        if (cv->ch[l + 1] == 0 || cv->ch[l + 1] > 65536) {
            nf__mlp_free_masks(m);
            return nf__err(NF_ERR_ARG, "convnet: channel counts must be in 1..65536, got %zu", cv->ch[l + 1]);
        }
        total += (double)(cv->ch[l + 1] * (cv->ch[l] * KS * KS + 1));
    }
    if (total > (double)((size_t)1 << 28)) {
        nf__mlp_free_masks(m);
        return nf__err(NF_ERR_ARG, "convnet: %.0f parameters is too many (max 2^28)", total);
    }
    return NF_OK;
}

size_t nf__conv_param_count(const nf_mlp *m) {
    const nf_convnet *cv = m->conv;
    size_t t = 0;
    for (size_t l = 0; l < m->nlin; l++) t += cv->ch[l + 1] * (cv->ch[l] * KS * KS + 1);
    return t;
}

static size_t max_ch(const nf_mlp *m) {
    size_t mx = 0;
    for (size_t l = 0; l <= m->nlin; l++)
        if (m->conv->ch[l] > mx) mx = m->conv->ch[l];
    return mx;
}

size_t nf__conv_tape_floats(const nf_mlp *m, size_t n) {
    const nf_convnet *cv = m->conv;
    size_t N = n * cv->H * cv->W, t = n * m->w[m->nlin];
    for (size_t l = 1; l <= m->nlin; l++) t += cv->ch[l] * N;
    return t;
}

size_t nf__conv_scratch_bytes(const nf_mlp *m, size_t n) {
    size_t N = n * m->conv->H * m->conv->W, c = max_ch(m);
    return 2 * nf__align(c * KS * KS * N * sizeof(float)) + 3 * nf__align(c * N * sizeof(float));
}

void nf__conv_init_params(const nf_mlp *m, float *p, nf_rng *rng, nf_init s, int zero_last) {
    const nf_convnet *cv = m->conv;
    for (size_t l = 0; l < m->nlin; l++) {
        size_t a = cv->ch[l] * KS * KS, b = cv->ch[l + 1];
        float *W = p, *bias = p + a * b;
        double fan_out = (double)(b * KS * KS), bound = 1.0 / sqrt((double)a);
        for (size_t k = 0; k < a * b; k++) {
            double u = 2.0 * nf_rng_uniform(rng) - 1.0;
            if (s == NF_INIT_GLOROT) W[k] = (float)(u * sqrt(6.0 / ((double)a + fan_out)));
            else if (s == NF_INIT_HE) W[k] = (float)(nf_rng_normal(rng) * sqrt(2.0 / (double)a));
            else W[k] = (float)(u * bound);
        }
        for (size_t j = 0; j < b; j++) bias[j] = s == NF_INIT_TORCH ? (float)((2.0 * nf_rng_uniform(rng) - 1.0) * bound) : 0.0f;
        if (zero_last && l + 1 == m->nlin) memset(W, 0, (a * b + b) * sizeof(float));
        p += a * b + b;
    }
}

/* col [9 C x N] from A [C x N] (N = n H W), zero outside the image. */
static void im2col(const nf_convnet *cv, const float *A, size_t C, size_t n, float *col) {
    size_t H = cv->H, W = cv->W, HW = H * W, N = n * HW;
    for (size_t c = 0; c < C; c++)
        for (size_t ky = 0; ky < KS; ky++)
            for (size_t kx = 0; kx < KS; kx++) {
                float *row = col + ((c * KS + ky) * KS + kx) * N;
                const float *src = A + c * N;
                for (size_t i = 0; i < n; i++)
                    for (size_t y = 0; y < H; y++) {
                        float *r = row + i * HW + y * W;
                        size_t yy = y + ky - 1; /* wraps below 0: then >= H */
                        if (yy >= H) {
                            memset(r, 0, W * sizeof(float));
                            continue;
                        }
                        const float *s = src + i * HW + yy * W;
                        for (size_t x = 0; x < W; x++) {
                            size_t xx = x + kx - 1;
                            r[x] = xx < W ? s[xx] : 0.0f;
                        }
                    }
            }
}

/* dA [C x N] = col2im(dcol): the adjoint of im2col. */
static void col2im(const nf_convnet *cv, const float *dcol, size_t C, size_t n, float *dA) {
    size_t H = cv->H, W = cv->W, HW = H * W, N = n * HW;
    memset(dA, 0, C * N * sizeof(float));
    for (size_t c = 0; c < C; c++)
        for (size_t ky = 0; ky < KS; ky++)
            for (size_t kx = 0; kx < KS; kx++) {
                const float *row = dcol + ((c * KS + ky) * KS + kx) * N;
                float *dst = dA + c * N;
                for (size_t i = 0; i < n; i++)
                    for (size_t y = 0; y < H; y++) {
                        size_t yy = y + ky - 1;
                        if (yy >= H) continue;
                        const float *r = row + i * HW + y * W;
                        float *d = dst + i * HW + yy * W;
                        for (size_t x = 0; x < W; x++) {
                            size_t xx = x + kx - 1;
                            if (xx < W) d[xx] += r[x];
                        }
                    }
            }
}

/* The input image [C x N]: the conditioning columns at their pixels, zero elsewhere. */
static void scatter_input(const nf_mlp *m, const float *x, size_t n, float *A0) {
    const nf_convnet *cv = m->conv;
    size_t HW = cv->H * cv->W, N = n * HW, ni = m->w[0];
    memset(A0, 0, cv->C * N * sizeof(float));
    for (size_t j = 0; j < ni; j++) {
        float *dst = A0 + (cv->in_pos[j] / HW) * N + cv->in_pos[j] % HW;
        for (size_t i = 0; i < n; i++) dst[i * HW] = x[i * ni + j];
    }
}

/* Position of parameter k of transformed coordinate j, row i, in the last layer's output. */
static size_t out_at(const nf_convnet *cv, size_t k, size_t j, size_t i, size_t N) {
    size_t HW = cv->H * cv->W;
    return (k * cv->C + cv->out_pos[j] / HW) * N + i * HW + cv->out_pos[j] % HW;
}

const float *nf__conv_forward(const nf_mlp *m, const nf_backend *be, const float *params, float *tape, void *scratch,
                              const float *x, size_t n) {
    const nf_convnet *cv = m->conv;
    size_t N = n * cv->H * cv->W, c = max_ch(m);
    unsigned char *cur = scratch;
    float *col = nf__carve(&cur, c * KS * KS * N * sizeof(float));
    nf__carve(&cur, c * KS * KS * N * sizeof(float));
    float *A0 = nf__carve(&cur, c * N * sizeof(float));
    scatter_input(m, x, n, A0);
    const float *in = A0, *p = params;
    float *t = tape;
    for (size_t l = 0; l < m->nlin; l++) {
        size_t a = cv->ch[l] * KS * KS, b = cv->ch[l + 1];
        im2col(cv, in, cv->ch[l], n, col);
        be->gemm(be, 0, 0, b, N, a, 1.0f, p, a, col, N, 0.0f, t, N, NULL);
        for (size_t co = 0; co < b; co++) {
            float *r = t + co * N, bias = p[a * b + co];
            for (size_t q = 0; q < N; q++) r[q] += bias;
        }
        if (l + 1 < m->nlin) nf__act_forward(m->act, t, b * N);
        in = t;
        t += b * N;
        p += a * b + b;
    }
    size_t no = m->w[m->nlin];
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < cv->K; k++)
            for (size_t j = 0; j < cv->nt; j++) t[i * no + k * cv->nt + j] = in[out_at(cv, k, j, i, N)];
    return t;
}

void nf__conv_backward(const nf_mlp *m, const nf_backend *be, const float *params, float *dparams, float *dx,
                       float *dout, const float *tape, void *scratch, const float *x, size_t n) {
    const nf_convnet *cv = m->conv;
    size_t N = n * cv->H * cv->W, c = max_ch(m), no = m->w[m->nlin];
    unsigned char *cur = scratch;
    float *col = nf__carve(&cur, c * KS * KS * N * sizeof(float)), *dcol = nf__carve(&cur, c * KS * KS * N * sizeof(float));
    float *A0 = nf__carve(&cur, c * N * sizeof(float));
    float *gb[2] = {nf__carve(&cur, c * N * sizeof(float)), nf__carve(&cur, c * N * sizeof(float))};
    size_t off[NF_MLP_MAX_LAYERS], toff[NF_MLP_MAX_LAYERS], o = 0, to = 0;
    for (size_t l = 0; l < m->nlin; l++) {
        off[l] = o, toff[l] = to;
        o += cv->ch[l + 1] * (cv->ch[l] * KS * KS + 1);
        to += cv->ch[l + 1] * N;
    }
    float *G = gb[0];
    memset(G, 0, cv->ch[m->nlin] * N * sizeof(float));
    for (size_t i = 0; i < n; i++) /* each output is read from one place */
        for (size_t k = 0; k < cv->K; k++)
            for (size_t j = 0; j < cv->nt; j++) G[out_at(cv, k, j, i, N)] = dout[i * no + k * cv->nt + j];
    scatter_input(m, x, n, A0);
    for (size_t l = m->nlin; l-- > 0;) {
        size_t a = cv->ch[l] * KS * KS, b = cv->ch[l + 1];
        const float *W = params + off[l], *in = l ? tape + toff[l - 1] : A0;
        if (l + 1 < m->nlin) be->act_backward(be, m->act, G, tape + toff[l], b * N);
        im2col(cv, in, cv->ch[l], n, col);
        if (dparams) {
            float *dW = dparams + off[l], *db = dW + a * b;
            be->gemm(be, 0, 1, b, a, N, 1.0f, G, N, col, N, 1.0f, dW, a, NULL);
            for (size_t co = 0; co < b; co++) {
                double s = 0;
                for (size_t q = 0; q < N; q++) s += G[co * N + q];
                db[co] += (float)s;
            }
        }
        if (l == 0 && !dx) break;
        be->gemm(be, 1, 0, a, N, b, 1.0f, W, a, G, N, 0.0f, dcol, N, NULL);
        float *dA = G == gb[0] ? gb[1] : gb[0];
        col2im(cv, dcol, cv->ch[l], n, dA);
        G = dA;
    }
    if (dx) {
        size_t HW = cv->H * cv->W, ni = m->w[0];
        for (size_t j = 0; j < ni; j++) {
            const float *src = G + (cv->in_pos[j] / HW) * N + cv->in_pos[j] % HW;
            for (size_t i = 0; i < n; i++) dx[i * ni + j] = src[i * HW];
        }
    }
}

nf_status nf__conv_tensors(const nf_mlp *m, const char *prefix, size_t off, nf_tensor_fn fn, void *ctx) {
    const nf_convnet *cv = m->conv;
    for (size_t l = 0; l < m->nlin; l++) {
        char nm[48];
        size_t a = cv->ch[l] * KS * KS, b = cv->ch[l + 1];
        snprintf(nm, sizeof nm, "convs.%zu.weight", 2 * l);
        NF_TRY(nf__emit(fn, ctx, prefix, nm, off, b, a));
        snprintf(nm, sizeof nm, "convs.%zu.bias", 2 * l);
        NF_TRY(nf__emit(fn, ctx, prefix, nm, off + a * b, 0, b));
        off += a * b + b;
    }
    return NF_OK;
}
