/*
 * cuda.cu - the CUDA device (dev.h; built with make CUDA=1): cuBLAS for the
 * products, one CUDA kernel per kern.h body (a template on the kernel's
 * number, so each compiles to its own code), a fixed-order block reduction,
 * and CUDA graphs for whole training steps.  Everything is queued on one
 * stream per device; only get() waits for it.  fp32 throughout (cuBLAS's
 * default math mode) unless TF32 is asked for (c_set_tf32: the products
 * only; the kernels stay fp32/fp64).
 */
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern "C" { /* nflow's C headers (kern.h's inline bodies have internal linkage either way) */
#include "../core/core.h"
#include "../device/dev.h"
}

namespace {

struct cuda_state {
    int index;
    cudaStream_t stream;
    cublasHandle_t blas;
    void *workspace; /* cuBLAS's, fixed so that graph capture allocates nothing */
    /* pinned staging for copies to the GPU: two slots, so that the host can
     * fill the next batch while the GPU still reads the last one */
    unsigned char *pin[2];
    cudaEvent_t done[2];
    int slot;
    double *parts; /* PARTS partial sums of reduce() */
    char desc[160];
};

const size_t WORKSPACE = (size_t)32 << 20;
const size_t STAGING = (size_t)16 << 20; /* bytes per pinned slot; larger copies go straight from pageable memory */
const int THREADS = 256;

nf_status cuda_fail(cudaError_t e, const char *what) {
    return nf__err(NF_ERR_IO, "cuda: %s: %s", what, cudaGetErrorString(e));
}

template <int ID> __global__ void kern(size_t count, const __grid_constant__ nf_kargs a) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x)
        nf__kern(ID, i, &a);
}

/* Sums in double, in a fixed order whatever the timing: block b of
 * `used` (at most PARTS, one per 1024 values) sums the elements b*1024 + t,
 * stepping by used*1024, into part[b]
 * (a tree over its threads); then one block sums the parts the same way
 * into out[0] (adding to it when `add`). */
const int PARTS = 256;

__global__ void reduce_parts(double *part, const float *x, size_t n, int sq) {
    __shared__ double t[1024];
    double s = 0;
    for (size_t i = (size_t)blockIdx.x * 1024 + threadIdx.x; i < n; i += (size_t)gridDim.x * 1024)
        s += sq ? (double)x[i] * x[i] : (double)x[i];
    t[threadIdx.x] = s;
    __syncthreads();
    for (unsigned w = 512; w > 0; w /= 2) {
        if (threadIdx.x < w) t[threadIdx.x] += t[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) part[blockIdx.x] = t[0];
}

__global__ void reduce_final(double *out, const double *part, unsigned used, int add) {
    __shared__ double t[PARTS];
    t[threadIdx.x] = threadIdx.x < used ? part[threadIdx.x] : 0.0;
    __syncthreads();
    for (unsigned w = PARTS / 2; w > 0; w /= 2) {
        if (threadIdx.x < w) t[threadIdx.x] += t[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) out[0] = add ? out[0] + t[0] : t[0];
}

/* Every call works on the state's GPU, whichever the calling thread used last. */
void use(const cuda_state *c) {
    int cur = -1;
    if (cudaGetDevice(&cur) != cudaSuccess || cur != c->index) cudaSetDevice(c->index);
}

nf_status c_open(int index, void **st) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) return nf__err(NF_ERR_UNSUPPORTED, "no usable GPU: %s", cudaGetErrorString(e));
    if (index >= n) return nf__err(NF_ERR_UNSUPPORTED, "cuda:%d: there %s %d GPU%s", index, n == 1 ? "is" : "are", n, n == 1 ? "" : "s");
    if ((e = cudaSetDevice(index)) != cudaSuccess) return cuda_fail(e, "cudaSetDevice");
    cuda_state *c = (cuda_state *)calloc(1, sizeof *c);
    if (!c) return nf__err(NF_ERR_NOMEM, "out of memory");
    c->index = index;
    cudaDeviceProp pr;
    if ((e = cudaGetDeviceProperties(&pr, index)) != cudaSuccess) {
        free(c);
        return cuda_fail(e, "cudaGetDeviceProperties");
    }
    snprintf(c->desc, sizeof c->desc, "%s, sm_%d%d, %.0f GiB", pr.name, pr.major, pr.minor,
             (double)pr.totalGlobalMem / (1 << 30));
    if ((e = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking)) != cudaSuccess) {
        free(c);
        return cuda_fail(e, "cudaStreamCreate");
    }
    if (cublasCreate(&c->blas) != CUBLAS_STATUS_SUCCESS) {
        cudaStreamDestroy(c->stream);
        free(c);
        return nf__err(NF_ERR_IO, "cuda: cublasCreate failed");
    }
    cublasSetStream(c->blas, c->stream);
    cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH); /* fp32, no TF32 */
    if (cudaMalloc(&c->workspace, WORKSPACE) == cudaSuccess) cublasSetWorkspace(c->blas, c->workspace, WORKSPACE);
    if ((e = cudaMalloc((void **)&c->parts, PARTS * sizeof(double))) != cudaSuccess) {
        cublasDestroy(c->blas);
        cudaFree(c->workspace);
        cudaStreamDestroy(c->stream);
        free(c);
        return cuda_fail(e, "cudaMalloc");
    }
    for (int k = 0; k < 2; k++)
        if (cudaMallocHost((void **)&c->pin[k], STAGING) != cudaSuccess ||
            cudaEventCreateWithFlags(&c->done[k], cudaEventDisableTiming) != cudaSuccess) {
            cudaGetLastError();
            c->pin[k] = NULL; /* no staging: copies from pageable memory */
        }
    *st = c;
    return NF_OK;
}

void c_close(void *st) {
    cuda_state *c = (cuda_state *)st;
    if (!c) return;
    use(c);
    cudaStreamSynchronize(c->stream);
    cublasDestroy(c->blas);
    cudaFree(c->workspace);
    cudaFree(c->parts);
    for (int k = 0; k < 2; k++)
        if (c->pin[k]) cudaFreeHost(c->pin[k]), cudaEventDestroy(c->done[k]);
    cudaStreamDestroy(c->stream);
    free(c);
}

void *c_alloc(void *st, size_t bytes) {
    cuda_state *c = (cuda_state *)st;
    void *p = NULL;
    use(c);
    if (cudaMalloc(&p, bytes ? bytes : 1) != cudaSuccess) {
        cudaGetLastError(); /* clear it */
        return NULL;
    }
    cudaMemsetAsync(p, 0, bytes ? bytes : 1, c->stream);
    return p;
}

void c_free(void *st, void *p) {
    cuda_state *c = (cuda_state *)st;
    if (!p) return;
    use(c);
    cudaStreamSynchronize(c->stream);
    cudaFree(p);
}

nf_status c_put(void *st, void *dst, const void *src, size_t bytes) {
    cuda_state *c = (cuda_state *)st;
    if (!bytes) return NF_OK;
    use(c);
    int k = c->slot;
    cudaError_t e;
    if (bytes <= STAGING && c->pin[k]) { /* wait until the slot's last copy is done, then reuse it */
        e = cudaEventSynchronize(c->done[k]);
        if (e == cudaSuccess) {
            memcpy(c->pin[k], src, bytes);
            e = cudaMemcpyAsync(dst, c->pin[k], bytes, cudaMemcpyHostToDevice, c->stream);
        }
        if (e == cudaSuccess) e = cudaEventRecord(c->done[k], c->stream);
        c->slot ^= 1;
    } else {
        e = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->stream);
    }
    return e == cudaSuccess ? NF_OK : cuda_fail(e, "copy to the GPU");
}

nf_status c_get(void *st, void *dst, const void *src, size_t bytes) {
    cuda_state *c = (cuda_state *)st;
    use(c);
    cudaError_t e = bytes ? cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, c->stream) : cudaSuccess;
    if (e == cudaSuccess) e = cudaStreamSynchronize(c->stream);
    return e == cudaSuccess ? NF_OK : cuda_fail(e, "a GPU computation or copy");
}

void c_copy(void *st, void *dst, const void *src, size_t bytes) {
    cuda_state *c = (cuda_state *)st;
    use(c);
    if (bytes && dst != src) cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, c->stream);
}

void c_zero(void *st, void *p, size_t bytes) {
    cuda_state *c = (cuda_state *)st;
    use(c);
    if (bytes) cudaMemsetAsync(p, 0, bytes, c->stream);
}

/* Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T. */
void c_gemm(void *st, int ta, int tb, size_t m, size_t n, size_t k, float alpha, const float *A, size_t lda,
            const float *B, size_t ldb, float beta, float *C, size_t ldc) {
    cuda_state *c = (cuda_state *)st;
    use(c);
    if (!m || !n) return;
    cublasSgemm(c->blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, (int)n, (int)m, (int)k,
                &alpha, B, (int)ldb, A, (int)lda, &beta, C, (int)ldc);
}

void c_gemm_batched(void *st, int ta, int tb, size_t m, size_t n, size_t k, float alpha, const float *A, size_t lda,
                    size_t sa, const float *B, size_t ldb, size_t sb, float beta, float *C, size_t ldc, size_t sc,
                    size_t count) {
    cuda_state *c = (cuda_state *)st;
    use(c);
    if (!m || !n || !count) return;
    cublasSgemmStridedBatched(c->blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, (int)n, (int)m,
                              (int)k, &alpha, B, (int)ldb, (long long)sb, A, (int)lda, (long long)sa, &beta, C, (int)ldc,
                              (long long)sc, (int)count);
}

static_assert(K_COUNT == 35, "c_launch lists every kernel of kern.h");

void c_launch(void *st, int id, size_t count, const nf_kargs *a) {
    cuda_state *c = (cuda_state *)st;
    use(c);
    if (!count) return;
    size_t blocks = (count + THREADS - 1) / THREADS;
    if (blocks > 65535) blocks = 65535; /* the kernels stride over the rest */
    unsigned g = (unsigned)blocks;
    cudaStream_t s = c->stream;
    switch (id) {
#define L(ID) \
    case ID: kern<ID><<<g, THREADS, 0, s>>>(count, *a); break;
        L(0) L(1) L(2) L(3) L(4) L(5) L(6) L(7) L(8) L(9) L(10) L(11) L(12) L(13) L(14) L(15) L(16) L(17) L(18) L(19) L(20) L(21) L(22) L(23) L(24) L(25) L(26) L(27) L(28) L(29) L(30) L(31) L(32) L(33) L(34)
#undef L
    default: break;
    }
}

void c_reduce(void *st, double *out, const float *x, size_t n, int sq, int add) {
    cuda_state *c = (cuda_state *)st;
    use(c);
    size_t used = (n + 1023) / 1024;
    used = used < 1 ? 1 : used > (size_t)PARTS ? (size_t)PARTS : used;
    reduce_parts<<<(unsigned)used, 1024, 0, c->stream>>>(c->parts, x, n, sq);
    reduce_final<<<1, PARTS, 0, c->stream>>>(out, c->parts, (unsigned)used, add);
}

nf_status c_graph_begin(void *st) {
    cuda_state *c = (cuda_state *)st;
    cudaError_t e = cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal);
    return e == cudaSuccess ? NF_OK : cuda_fail(e, "cudaStreamBeginCapture");
}

nf_status c_graph_end(void *st, void **graph) {
    cuda_state *c = (cuda_state *)st;
    cudaGraph_t g = NULL;
    cudaGraphExec_t x = NULL;
    cudaError_t e = cudaStreamEndCapture(c->stream, &g);
    if (e == cudaSuccess) e = cudaGraphInstantiate(&x, g, 0);
    if (g) cudaGraphDestroy(g);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return cuda_fail(e, "recording a training step as a CUDA graph");
    }
    *graph = (void *)x;
    return NF_OK;
}

nf_status c_graph_replay(void *st, void *graph) {
    cuda_state *c = (cuda_state *)st;
    cudaError_t e = cudaGraphLaunch((cudaGraphExec_t)graph, c->stream);
    return e == cudaSuccess ? NF_OK : cuda_fail(e, "cudaGraphLaunch");
}

void c_graph_free(void *st, void *graph) {
    cuda_state *c = (cuda_state *)st;
    cudaStreamSynchronize(c->stream);
    cudaGraphExecDestroy((cudaGraphExec_t)graph);
}

const char *c_describe(void *st) { return ((cuda_state *)st)->desc; }

/* TF32 tensor cores for the products (10-bit mantissas in the products' inputs), or fp32. */
void c_set_tf32(void *st, int on) {
    cuda_state *c = (cuda_state *)st;
    cublasSetMathMode(c->blas, on ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH);
}

} // namespace

extern "C" const nf_dev_ops nf__dev_cuda = {
    "cuda",       (size_t)1 << 20, c_open,         c_close,        c_alloc,      c_free,
    c_put,        c_get,           c_copy,         c_zero,         c_gemm,       c_gemm_batched, c_launch,
    c_reduce,     c_graph_begin,   c_graph_end,    c_graph_replay, c_graph_free, c_describe, c_set_tf32,
};
