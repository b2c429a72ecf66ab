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

void nf__act_forward(nf_activation a, float *h, size_t m) {
    switch (a) {
    case NF_ACT_IDENTITY: break;
    case NF_ACT_RELU:
        for (size_t i = 0; i < m; i++) h[i] = h[i] > 0 ? h[i] : 0;
        break;
    case NF_ACT_LEAKY_RELU:
        for (size_t i = 0; i < m; i++) h[i] = h[i] > 0 ? h[i] : LEAK * h[i];
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

void nf__act_backward(nf_activation a, float *g, const float *h, size_t m) {
    switch (a) {
    case NF_ACT_IDENTITY: break;
    case NF_ACT_RELU:
        for (size_t i = 0; i < m; i++) g[i] = h[i] > 0 ? g[i] : 0;
        break;
    case NF_ACT_LEAKY_RELU:
        for (size_t i = 0; i < m; i++) g[i] = h[i] > 0 ? g[i] : LEAK * g[i];
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
