/*
 * mlp.c - multilayer perceptrons (and MADE's masked ones) with hand-written
 * backward passes; every matrix product goes through the compute backend (core/backend.h; CBLAS sgemm on the CPU).
 *
 *   forward, layer l:   H_{l+1} = act(H_l W_l^T + b_l)      (no act on the output)
 *   backward, layer l:  G_pre = G ⊙ act'(H_{l+1})
 *                       dW_l += G_pre^T H_l,  db_l += sum_rows G_pre,
 *                       G_l = G_pre W_l
 * Masked layers use W_l ⊙ M_l in both passes and add dW ⊙ M_l, so masked
 * weights never influence anything and get exactly zero gradient; when the
 * masks were applied to the parameters once (nn.h: premasked), W_l ⊙ M_l is
 * W_l itself and no pass masks anything but the gradient.  Layers
 * with one input or one output (a coupling's first and last layers in 2-D)
 * use outer products and GEMV instead of a packed GEMM.
 *
 * The residual form (nf_mlp.residual, nflows' MADE): T_0 = x W_0^T + b_0;
 * block k: T_{2k+1} = act(T_{2k}) W^T + b, T_{2k+2} = act(T_{2k+1}) W^T + b
 * + T_{2k}; output T_L = T_{L-1} W^T + b.  The tape holds every T; the
 * activations act(T) are recomputed in backward, and act' is taken from
 * them as for the plain form.
 */
#include "nn.h"

#include <stdio.h>

#include <stdlib.h>
#include <string.h>

nf_status nf__mlp_init(nf_mlp *m, size_t in, const size_t *hidden, size_t nhidden, size_t out,
                       nf_activation act) {
    memset(m, 0, sizeof *m);
    if (nhidden + 1 > NF_MLP_MAX_LAYERS)
        return nf__err(NF_ERR_ARG, "network: at most %d hidden layers, got %zu", NF_MLP_MAX_LAYERS - 1, nhidden);
    if ((int)act < 0 || act > NF_ACT_ELU) return nf__err(NF_ERR_ARG, "network: unknown activation %d", (int)act);
    m->nlin = nhidden + 1;
    m->w[0] = in;
    for (size_t l = 0; l < nhidden; l++) m->w[l + 1] = hidden[l];
    m->w[nhidden + 1] = out;
    m->act = act;
    size_t total = 0;
    for (size_t l = 0; l <= m->nlin; l++) {
        if (m->w[l] == 0 || m->w[l] > 65536)
            return nf__err(NF_ERR_ARG, "network: layer width %zu must be in 1..65536", m->w[l]);
        if (l < m->nlin) total += m->w[l] * m->w[l + 1] + m->w[l + 1];
    }
    if (total > ((size_t)1 << 28))
        return nf__err(NF_ERR_ARG, "network: %zu parameters is too many (max 2^28)", total);
    return NF_OK;
}

nf_status nf__mlp_init_net(nf_mlp *m, size_t in, const nf_net_opts *o, size_t out) {
    if (!o->residual) return nf__mlp_init(m, in, o->hidden, o->nhidden, out, o->activation);
    size_t nb = o->nhidden, w = nb ? o->hidden[0] : 0, hid[NF_MLP_MAX_LAYERS];
    if (nb < 1 || 2 * nb + 1 > NF_MLP_MAX_LAYERS - 1)
        return nf__err(NF_ERR_ARG, "network: residual=1 takes 1..%d blocks (entries of hidden), got %zu",
                       (NF_MLP_MAX_LAYERS - 2) / 2, nb);
    for (size_t k = 0; k < nb; k++)
        if (o->hidden[k] != w)
            return nf__err(NF_ERR_ARG, "network: residual=1 needs equal hidden widths (blocks of one width), got %zu and %zu",
                           w, o->hidden[k]);
    for (size_t l = 0; l < 2 * nb + 1; l++) hid[l] = w;
    NF_TRY(nf__mlp_init(m, in, hid, 2 * nb + 1, out, o->activation));
    m->residual = 1;
    return NF_OK;
}

void nf__mlp_free_masks(nf_mlp *m) {
    for (size_t l = 0; l < NF_MLP_MAX_LAYERS; l++) {
        free(m->masks[l]);
        m->masks[l] = NULL;
    }
    if (m->conv) {
        free(m->conv->in_pos);
        free(m->conv->out_pos);
        free(m->conv);
        m->conv = NULL;
    }
}

/* Whether layer l has a mask that changes anything. */
static int masked(const nf_mlp *m, size_t l) { return m->masks[l] && !m->ones[l]; }

void nf__mlp_apply_masks(nf_mlp *m, float *p, int check_only) {
    if (m->conv) return; /* no masks */
    int zero = 1;
    for (size_t l = 0; l < m->nlin; l++) {
        size_t a = m->w[l], b = m->w[l + 1];
        const float *M = m->masks[l];
        if (masked(m, l) && check_only)
            for (size_t k = 0; k < a * b; k++) zero &= M[k] != 0.0f || p[k] == 0.0f;
        else if (masked(m, l))
            for (size_t k = 0; k < a * b; k++) p[k] *= M[k];
        p += a * b + b;
    }
    m->premasked = zero;
}

size_t nf__mlp_param_count(const nf_mlp *m) {
    if (m->conv) return nf__conv_param_count(m);
    size_t t = 0;
    for (size_t l = 0; l < m->nlin; l++) t += m->w[l] * m->w[l + 1] + m->w[l + 1];
    return t;
}

size_t nf__mlp_tape_floats(const nf_mlp *m, size_t n) {
    if (m->conv) return nf__conv_tape_floats(m, n);
    size_t t = 0;
    for (size_t l = 1; l <= m->nlin; l++) t += n * m->w[l];
    return t;
}

size_t nf__mlp_max_width(const nf_mlp *m) {
    size_t mx = 0;
    for (size_t l = 0; l <= m->nlin; l++)
        if (m->w[l] > mx) mx = m->w[l];
    return mx;
}

static size_t max_weights(const nf_mlp *m) {
    size_t mx = 0;
    for (size_t l = 0; l < m->nlin; l++)
        if (m->w[l] * m->w[l + 1] > mx) mx = m->w[l] * m->w[l + 1];
    return mx;
}

size_t nf__mlp_scratch_bytes(const nf_mlp *m, size_t n) {
    if (m->conv) return nf__conv_scratch_bytes(m, n);
    size_t wb = nf__align(max_weights(m) * sizeof(float));
    return 2 * wb + (m->residual ? 4 : 2) * nf__align(n * nf__mlp_max_width(m) * sizeof(float));
}

void nf__mlp_init_params(const nf_mlp *m, float *p, nf_rng *rng, nf_init s, int zero_last) {
    if (m->conv) {
        nf__conv_init_params(m, p, rng, s, zero_last);
        return;
    }
    for (size_t l = 0; l < m->nlin; l++) {
        size_t a = m->w[l], b = m->w[l + 1];
        float *W = p, *bias = p + a * b;
        size_t fan = l == 0 && m->fan_in0 ? m->fan_in0 : a;
        double bound = 1.0 / sqrt((double)fan);
        for (size_t k = 0; k < a * b; k++) {
            double u = 2.0 * nf_rng_uniform(rng) - 1.0;
            if (s == NF_INIT_GLOROT) W[k] = (float)(u * sqrt(6.0 / (double)(fan + b)));
            else if (s == NF_INIT_HE) W[k] = (float)(nf_rng_normal(rng) * sqrt(2.0 / (double)fan));
            else W[k] = (float)(u * bound);
        }
        for (size_t j = 0; j < b; j++)
            bias[j] = s == NF_INIT_TORCH ? (float)((2.0 * nf_rng_uniform(rng) - 1.0) * bound) : 0.0f;
        if (m->residual && l > 0 && l % 2 == 0 && l + 1 < m->nlin) /* a block's last layer: near zero (nflows) */
            for (size_t k = 0; k < a * b + b; k++) W[k] = (float)((2.0 * nf_rng_uniform(rng) - 1.0) * 1e-3);
        if (zero_last && l == m->nlin - 1) memset(W, 0, (a * b + b) * sizeof(float));
        p += a * b + b;
    }
}

/* W_l, masked into `buf` when the layer has a mask not yet applied. */
static const float *weights(const nf_mlp *m, size_t l, const float *W, float *buf) {
    if (!masked(m, l) || m->premasked) return W;
    size_t k = m->w[l] * m->w[l + 1];
    const float *M = m->masks[l];
    for (size_t i = 0; i < k; i++) buf[i] = W[i] * M[i];
    return buf;
}

/* Whether linear layer l of a residual MLP reads act(its input), and whether
 * it adds its block's input (the output of layer l - 2). */
static int res_act_in(const nf_mlp *m, size_t l) { return l > 0 && l + 1 < m->nlin; }
static int res_skip(const nf_mlp *m, size_t l) { return l > 0 && l % 2 == 0 && l + 1 < m->nlin; }

/* out (n x b) = act(in (n x a) W^T + bias): one input an outer product, one
 * output a matrix-vector product, else a GEMM with bias and activation as
 * its epilogue. */
static void linear(const nf_backend *be, nf_activation act, const float *in, const float *W, const float *bias,
                   float *out, size_t n, size_t a, size_t b) {
    if (a == 1) {
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < b; j++) out[i * b + j] = in[i] * W[j];
    } else if (b == 1) {
        be->gemv(be, 0, n, a, 1.0f, in, a, W, 0.0f, out);
    } else {
        nf_epi e = {.act = act, .bias = bias};
        be->gemm(be, 0, 1, n, b, a, 1.0f, in, a, W, a, 0.0f, out, b, &e);
        return;
    }
    be->bias_act_forward(be, act, out, bias, n, b);
}

/* dW += g^T in, db += sum g (masked: only the unmasked weights; one output or one input: GEMV).
 * A GEMM adds the bias gradient as its epilogue. */
static void param_grad(const nf_mlp *m, const nf_backend *be, size_t l, float *dW, float *dwbuf, const float *g,
                       const float *in, size_t n) {
    size_t a = m->w[l], b = m->w[l + 1];
    nf_epi e = {.db = dW + a * b, .G = g, .gn = n, .ldg = b};
    if (masked(m, l)) {
        be->gemm(be, 1, 0, b, a, n, 1.0f, g, b, in, a, 0.0f, dwbuf, a, &e);
        be->mask_acc(be, dW, dwbuf, m->masks[l], a * b);
        return;
    } else if (b == 1) {
        be->gemv(be, 1, n, a, 1.0f, in, a, g, 1.0f, dW);
    } else if (a == 1) {
        be->gemv(be, 1, n, b, 1.0f, g, b, in, 1.0f, dW);
    } else {
        be->gemm(be, 1, 0, b, a, n, 1.0f, g, b, in, a, 1.0f, dW, a, &e);
        return;
    }
    be->bias_grad(be, dW + a * b, g, n, b);
}

/* next (n x a) = g (n x b) W (b x a): one output an outer product, one input a GEMV.
 * With h (the input's activation outputs, n x a), next *= act'(.) too: a
 * GEMM's epilogue. */
static void input_grad(const nf_backend *be, const float *g, const float *W, float *next, size_t n, size_t a, size_t b,
                       nf_activation act, const float *h) {
    if (b == 1) {
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < a; j++) next[i * a + j] = g[i] * W[j];
    } else if (a == 1) {
        be->gemv(be, 0, n, b, 1.0f, g, b, W, 0.0f, next);
    } else {
        nf_epi e = {.act = act, .H = h, .ldh = a};
        be->gemm(be, 0, 0, n, a, b, 1.0f, g, b, W, a, 0.0f, next, a, h ? &e : NULL);
        return;
    }
    if (h) be->act_backward(be, act, next, h, n * a);
}

static const float *forward_res(const nf_mlp *m, const nf_backend *be, const float *params, float *tape, void *scratch,
                                const float *x, size_t n) {
    unsigned char *cur = scratch;
    float *wbuf = nf__carve(&cur, max_weights(m) * sizeof(float));
    float *abuf = nf__carve(&cur, n * nf__mlp_max_width(m) * sizeof(float));
    const float *p = params, *in = x;
    float *t = tape;
    for (size_t l = 0; l < m->nlin; l++) {
        size_t a = m->w[l], b = m->w[l + 1];
        const float *W = weights(m, l, p, wbuf), *src = in;
        if (res_act_in(m, l)) {
            memcpy(abuf, in, n * a * sizeof(float));
            nf__act_forward(m->act, abuf, n * a);
            src = abuf;
        }
        linear(be, NF_ACT_IDENTITY, src, W, p + a * b, t, n, a, b);
        if (res_skip(m, l)) {
            const float *blk = t - n * b - n * a; /* the output of layer l - 2 (width a = b) */
            for (size_t q = 0; q < n * b; q++) t[q] += blk[q];
        }
        in = t;
        t += n * b;
        p += a * b + b;
    }
    return in;
}

const float *nf__mlp_forward(const nf_mlp *m, const nf_backend *be, const float *params, float *tape, void *scratch,
                             const float *x, size_t n) {
    if (m->conv) return nf__conv_forward(m, be, params, tape, scratch, x, n);
    if (m->residual) return forward_res(m, be, params, tape, scratch, x, n);
    float *wbuf = scratch;
    const float *in = x, *p = params;
    float *t = tape;
    for (size_t l = 0; l < m->nlin; l++) {
        size_t a = m->w[l], b = m->w[l + 1];
        linear(be, l + 1 < m->nlin ? m->act : NF_ACT_IDENTITY, in, weights(m, l, p, wbuf), p + a * b, t, n, a, b);
        in = t;
        t += n * b;
        p += a * b + b;
    }
    return in;
}

/* Backward of the residual form.  gs: the gradient of the current stream
 * value T_{2k} (the output layer's input, then each block's input). */
static void backward_res(const nf_mlp *m, const nf_backend *be, const float *params, float *dparams, float *dx,
                         float *dout, const float *tape, void *scratch, const float *x, size_t n) {
    unsigned char *cur = scratch;
    size_t wb = max_weights(m) * sizeof(float), gb = n * nf__mlp_max_width(m) * sizeof(float);
    float *wbuf = nf__carve(&cur, wb), *dwbuf = nf__carve(&cur, wb);
    float *gs = nf__carve(&cur, gb), *gt = nf__carve(&cur, gb), *ga = nf__carve(&cur, gb), *abuf = nf__carve(&cur, gb);
    size_t off[NF_MLP_MAX_LAYERS], toff[NF_MLP_MAX_LAYERS], o = 0, to = 0;
    for (size_t l = 0; l < m->nlin; l++) {
        off[l] = o, toff[l] = to;
        o += m->w[l] * m->w[l + 1] + m->w[l + 1];
        to += n * m->w[l + 1];
    }
    size_t L = m->nlin - 1, w = m->w[1];
    /* the output layer: reads T_{L-1} as it is */
    if (dparams) param_grad(m, be, L, dparams + off[L], dwbuf, dout, tape + toff[L - 1], n);
    input_grad(be, dout, weights(m, L, params + off[L], wbuf), gs, n, w, m->w[L + 1], m->act, NULL);
    for (size_t l = L - 1; l >= 2; l -= 2) { /* block (l - 1, l): gs is dL/dT_l; T_l = f(T_{l-2}) + T_{l-2} */
        for (size_t j = 0; j < 2; j++) {
            size_t q = l - j; /* layer q reads act(T_{q-1}) */
            const float *g = j ? gt : gs;
            memcpy(abuf, tape + toff[q - 1], n * w * sizeof(float));
            nf__act_forward(m->act, abuf, n * w);
            if (dparams) param_grad(m, be, q, dparams + off[q], dwbuf, g, abuf, n);
            float *dst = j ? ga : gt; /* dL/dT_{l-1}, then the block's part of dL/dT_{l-2} */
            input_grad(be, g, weights(m, q, params + off[q], wbuf), dst, n, w, w, m->act, NULL);
            be->act_backward(be, m->act, dst, abuf, n * w);
            if (j)
                for (size_t k = 0; k < n * w; k++) gs[k] += ga[k]; /* dL/dT_{l-2}: the skip plus the block */
        }
    }
    if (dparams) param_grad(m, be, 0, dparams + off[0], dwbuf, gs, x, n);
    if (dx) input_grad(be, gs, weights(m, 0, params + off[0], wbuf), dx, n, m->w[0], w, m->act, NULL);
}

void nf__mlp_backward(const nf_mlp *m, const nf_backend *be, const float *params, float *dparams, float *dx,
                      float *dout, const float *tape, void *scratch, const float *x, size_t n) {
    if (m->conv) {
        nf__conv_backward(m, be, params, dparams, dx, dout, tape, scratch, x, n);
        return;
    }
    if (m->residual) {
        backward_res(m, be, params, dparams, dx, dout, tape, scratch, x, n);
        return;
    }
    unsigned char *cur = scratch;
    size_t wb = max_weights(m) * sizeof(float), gb = n * nf__mlp_max_width(m) * sizeof(float);
    float *wbuf = nf__carve(&cur, wb), *dwbuf = nf__carve(&cur, wb);
    float *gbuf[2] = {nf__carve(&cur, gb), nf__carve(&cur, gb)};
    size_t off[NF_MLP_MAX_LAYERS], toff[NF_MLP_MAX_LAYERS], o = 0, to = 0;
    for (size_t l = 0; l < m->nlin; l++) {
        off[l] = o, toff[l] = to;
        o += m->w[l] * m->w[l + 1] + m->w[l + 1];
        to += n * m->w[l + 1];
    }
    float *g = dout; /* the gradient at layer l's output, through its activation (the output layer has none) */
    int which = 0;
    for (size_t l = m->nlin; l-- > 0;) {
        size_t a = m->w[l], b = m->w[l + 1];
        const float *in = l ? tape + toff[l - 1] : x; /* layer l - 1's activation outputs */
        if (dparams) param_grad(m, be, l, dparams + off[l], dwbuf, g, in, n);
        if (l == 0 && !dx) break;
        float *next = l == 0 ? dx : gbuf[which];
        which ^= 1;
        input_grad(be, g, weights(m, l, params + off[l], wbuf), next, n, a, b, m->act, l ? in : NULL);
        g = next;
    }
}

nf_status nf__made_masks(nf_mlp *m, const size_t *order, size_t d, size_t k) {
    if (m->w[0] < d || m->w[m->nlin] != k * d)
        return nf__err(NF_ERR_SHAPE, "made: network widths do not match d=%zu with %zu outputs per input", d, k);
    size_t *deg[NF_MLP_MAX_LAYERS + 1] = {0};
    nf_status s = NF_OK;
    for (size_t l = 0; l < m->nlin; l++) {
        deg[l] = malloc(m->w[l] * sizeof(size_t));
        m->masks[l] = malloc(m->w[l] * m->w[l + 1] * sizeof(float));
        if (!deg[l] || !m->masks[l]) s = nf__err(NF_ERR_NOMEM, "made: out of memory for masks");
    }
    if (!s) {
        for (size_t i = 0; i < m->w[0]; i++) deg[0][i] = i < d ? order[i] : 0; /* context inputs: degree 0 */
        size_t cyc = d > 1 ? d - 1 : 1;
        for (size_t l = 1; l < m->nlin; l++)
            for (size_t u = 0; u < m->w[l]; u++) deg[l][u] = u % cyc + 1;
        for (size_t l = 0; l < m->nlin; l++) {
            size_t a = m->w[l], b = m->w[l + 1];
            for (size_t u = 0; u < b; u++)
                for (size_t v = 0; v < a; v++) {
                    int on = l + 1 < m->nlin ? deg[l + 1][u] >= deg[l][v]
                                             : order[u % d] > deg[l][v]; /* output u -> input u % d */
                    m->masks[l][u * a + v] = on ? 1.0f : 0.0f;
                }
            m->ones[l] = 1;
            for (size_t q = 0; q < a * b && m->ones[l]; q++) m->ones[l] = m->masks[l][q] == 1.0f;
        }
    }
    for (size_t l = 0; l <= m->nlin; l++) free(deg[l]);
    if (s) nf__mlp_free_masks(m);
    return s;
}

/* Layer l's name: "2l" (nn.Sequential), or nflows' MADE names in the residual form. */
static void layer_name(const nf_mlp *m, size_t l, char *nm, size_t cap) {
    if (!m->residual) snprintf(nm, cap, "%zu", 2 * l);
    else if (l == 0) snprintf(nm, cap, "initial_layer");
    else if (l + 1 == m->nlin) snprintf(nm, cap, "final_layer");
    else snprintf(nm, cap, "blocks.%zu.linear_layers.%zu", (l - 1) / 2, (l - 1) % 2);
}

nf_status nf__mlp_tensors(const nf_mlp *m, const char *prefix, size_t off, nf_tensor_fn fn, void *ctx) {
    if (m->conv) return nf__conv_tensors(m, prefix, off, fn, ctx);
    for (size_t l = 0; l < m->nlin; l++) {
        char nm[128], ly[64];
        size_t a = m->w[l], b = m->w[l + 1];
        layer_name(m, l, ly, sizeof ly);
        snprintf(nm, sizeof nm, "%s.weight", ly);
        NF_TRY(nf__emit(fn, ctx, prefix, nm, off, b, a));
        snprintf(nm, sizeof nm, "%s.bias", ly);
        NF_TRY(nf__emit(fn, ctx, prefix, nm, off + a * b, 0, b));
        if (m->masks[l]) {
            nf_tensor_info t;
            memset(&t, 0, sizeof t);
            snprintf(t.name, sizeof t.name, "%s%s.mask", prefix, ly);
            t.ndim = 2, t.shape[0] = b, t.shape[1] = a, t.count = a * b, t.buffer = m->masks[l];
            NF_TRY(fn(ctx, &t));
        }
        off += a * b + b;
    }
    return NF_OK;
}
