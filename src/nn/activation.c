/*
 * activation.c - activations and their derivatives through their outputs:
 *   relu h = max(0, p)           h' = [h > 0]
 *   leaky_relu h = p or 0.01 p   h' = 1 or 0.01   (PyTorch's default slope)
 *   tanh                         h' = 1 - h^2
 *   sigmoid                      h' = h (1 - h)
 *   elu h = p or e^p - 1         h' = 1 or h + 1
 */
#include "nn.h"

#define LEAK 0.01f

NF_VEC static void bias_grad(float *restrict db, const float *restrict g, size_t n, size_t b, size_t ldg) {
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < b; j++) db[j] += g[i * ldg + j];
}

NF_VEC static void mask_acc(float *restrict dW, const float *restrict G, const float *restrict M, size_t n) {
    for (size_t i = 0; i < n; i++) dW[i] += G[i] * M[i];
}

const char *nf__act_name(nf_activation a) {
    switch (a) {
    case NF_ACT_IDENTITY: return "identity";
    case NF_ACT_RELU: return "relu";
    case NF_ACT_LEAKY_RELU: return "leaky_relu";
    case NF_ACT_TANH: return "tanh";
    case NF_ACT_SIGMOID: return "sigmoid";
    case NF_ACT_ELU: return "elu";
    }
    return "unknown";
}

/* Written as multiplications by 0/1 masks, which vectorise (-O3): the sign
 * of a pre-activation is random, so a branch would mispredict about half
 * the time, and a select becomes a conditional store that does not
 * vectorise. */
NF_VEC static void act_forward(nf_activation a, float *h, size_t m) {
    switch (a) {
    case NF_ACT_IDENTITY: break;
    case NF_ACT_RELU:
        for (size_t i = 0; i < m; i++) h[i] *= (float)(h[i] > 0);
        break;
    case NF_ACT_LEAKY_RELU:
        for (size_t i = 0; i < m; i++) h[i] *= LEAK + (1 - LEAK) * (float)(h[i] > 0);
        break;
    case NF_ACT_TANH:
        for (size_t i = 0; i < m; i++) h[i] = tanhf(h[i]);
        break;
    case NF_ACT_SIGMOID:
        for (size_t i = 0; i < m; i++) h[i] = (float)nf__sigmoid(h[i]);
        break;
    case NF_ACT_ELU:
        for (size_t i = 0; i < m; i++) h[i] = h[i] > 0 ? h[i] : expm1f(h[i]);
        break;
    }
}

NF_VEC static void bias_act_forward(nf_activation a, float *h, const float *bias, size_t n, size_t b, size_t ldh) {
    for (size_t i = 0; i < n; i++) {
        float *r = h + i * ldh;
        for (size_t j = 0; j < b; j++) r[j] += bias[j];
        act_forward(a, r, b);
    }
}

NF_VEC static void act_backward(nf_activation a, float *g, const float *h, size_t m) {
    switch (a) {
    case NF_ACT_IDENTITY: break;
    case NF_ACT_RELU:
        for (size_t i = 0; i < m; i++) g[i] *= (float)(h[i] > 0);
        break;
    case NF_ACT_LEAKY_RELU:
        for (size_t i = 0; i < m; i++) g[i] *= LEAK + (1 - LEAK) * (float)(h[i] > 0);
        break;
    case NF_ACT_TANH:
        for (size_t i = 0; i < m; i++) g[i] *= 1 - h[i] * h[i];
        break;
    case NF_ACT_SIGMOID:
        for (size_t i = 0; i < m; i++) g[i] *= h[i] * (1 - h[i]);
        break;
    case NF_ACT_ELU:
        for (size_t i = 0; i < m; i++) g[i] = h[i] > 0 ? g[i] : g[i] * (h[i] + 1);
        break;
    }
}

/* The clones are called through these plain functions, so that other files
 * need not see the multiversioning attribute (GCC and Clang disagree on
 * multiversioned functions declared in one file and defined in another). */
void nf__act_forward(nf_activation a, float *h, size_t m) { act_forward(a, h, m); }
void nf__act_backward(nf_activation a, float *g, const float *h, size_t m) { act_backward(a, g, h, m); }
void nf__bias_act_forward(nf_activation a, float *h, const float *bias, size_t n, size_t b, size_t ldh) {
    bias_act_forward(a, h, bias, n, b, ldh);
}
void nf__act_backward_2d(nf_activation a, float *g, size_t ldg, const float *h, size_t ldh, size_t n, size_t b) {
    if (ldg == b && ldh == b) {
        act_backward(a, g, h, n * b);
        return;
    }
    for (size_t i = 0; i < n; i++) act_backward(a, g + i * ldg, h + i * ldh, b);
}
void nf__bias_grad(float *db, const float *g, size_t n, size_t b, size_t ldg) { bias_grad(db, g, n, b, ldg); }
void nf__mask_acc(float *dW, const float *G, const float *M, size_t n) { mask_acc(dW, G, M, n); }
