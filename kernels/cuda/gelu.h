// kernels/cuda/gelu.h — GELU (exact erf form, PyTorch's approximate='none') on the GPU, and the
// fused bias + GELU of a Linear / 1x1-conv output. Algorithms and roofline: gelu.cu.
//
//   gelu(x)  = x * Phi(x), Phi(x) = 0.5 * erfc(-x / sqrt(2))   (= 0.5 * (1 + erf(x / sqrt(2))))
//   gelu'(x) = Phi(x) + x * exp(-x^2 / 2) / sqrt(2 pi)
//   bias_gelu(x, b)[r, c] = gelu(x[r, c] + b[c])   x, y: contiguous [rows, C] (NHWC: rows =
//   N*H*W), b: [C]
//
// Device pointers, float32 only; work is queued on `stream` without synchronising; bad
// arguments and launch failures throw std::runtime_error. In-place (y == x, dx == dy) is fine.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace kernels::cuda {

// gelu_forward / gelu_backward: 1 scalar, 2 float4 in a grid-stride loop, 3 float4 in a one-shot
// grid (not yet timed on a GPU); 0 = kGeluFastest, the fastest measured: v2 (H200, 2026-11-27).
inline constexpr int kGeluVersions = 3;
inline constexpr int kGeluFastest = 2;
// bias_gelu_*: 0 = fastest (3), 1 composed (bias add, then gelu: two passes), 2 fused scalar,
// 3 fused float4.
inline constexpr int kBiasGeluVersions = 3;

void gelu_forward(int version, const float* x, float* y, int64_t n, cudaStream_t stream);
// dx = dy * gelu'(x)
void gelu_backward(int version, const float* x, const float* dy, float* dx, int64_t n,
                   cudaStream_t stream);

void bias_gelu_forward(int version, const float* x, const float* bias, float* y, int64_t rows,
                       int C, cudaStream_t stream);
// dx = dy * gelu'(x + b). The bias gradient is the column sum of dx: bias_gelu_backward_dbias
// below computes both.
void bias_gelu_backward(int version, const float* x, const float* bias, const float* dy, float* dx,
                        int64_t rows, int C, cudaStream_t stream);

// dx as bias_gelu_backward and dbias[c] = sum over rows of dx[r, c] (what a training step needs:
// the bias is a parameter). 1 = bias_gelu_backward (v0) then a column-sum pass over dx, 2 = one
// pass that stores dx and sums it, 3 = v2 with two rows loaded per step and a full SM of
// threads (not yet timed on a GPU); 0 = kBiasGeluDbiasFastest, the fastest measured: v2 (H200,
// 2026-11-27). Deterministic: partial sums per block,
// added in a fixed order by a second kernel. workspace: at least ..._workspace() bytes of
// device memory, or null to have it allocated with cudaMallocAsync on the stream.
// y: null, or it receives gelu(x + b) again (for a caller that did not keep the forward's
// output: engine::mlp); version 2 writes it in the same pass, version 1 with bias_gelu_forward.
inline constexpr int kBiasGeluDbiasVersions = 3;
inline constexpr int kBiasGeluDbiasFastest = 2;
size_t bias_gelu_backward_dbias_workspace(int64_t rows, int C);
void bias_gelu_backward_dbias(int version, const float* x, const float* bias, const float* dy,
                              float* dx, float* dbias, float* y, int64_t rows, int C,
                              void* workspace, cudaStream_t stream);

}  // namespace kernels::cuda
