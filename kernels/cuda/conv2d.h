// kernels/cuda/conv2d.h — dense 2-D convolution on NHWC activations on the GPU as an implicit
// GEMM: forward, data gradient, weight (+ bias) gradient. Algorithms and roofline: conv2d.cu
// (versions 1-3, fp32 CUDA cores) and conv2d_tf32.cu (versions 4-6, TF32 tensor cores); the index
// math of the three GEMM views is in conv2d_gemm_view.cuh.
//
//   x  [N, H, W, C]   input, channels last (contiguous), device memory
//   w  [K, R, S, C]   K filters of R x S taps (KRSC: contiguous along C)
//   y  [N, P, Q, K]   output; P = (H + 2*pad_h - dil_h*(R-1) - 1) / stride_h + 1, Q likewise
//
// groups == 1 only (depthwise convolutions have depthwise_conv2d.h). Any stride, padding and
// dilation. float32 in and out; versions 4-6 round the operands to TF32 (10-bit mantissa) and
// accumulates in fp32. Every tensor must have fewer than 2^30 elements (int32 indices).
// Every function queues work on `stream` and returns without synchronising; errors (bad
// shapes, bad version, launch failures) throw std::runtime_error.
// version: 0 = the fastest fp32 version (3), 1..3 fp32, 4..6 TF32 (conv2d_version_is_tf32).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

namespace kernels::cuda {

struct Conv2dLabShape {
  int n = 1, h = 1, w = 1, c = 1;  // input  [N, H, W, C]
  int k = 1, r = 1, s = 1;         // weight [K, R, S, C]
  int stride_h = 1, stride_w = 1;
  int pad_h = 0, pad_w = 0;  // zeros added on each side
  int dil_h = 1, dil_w = 1;
  int groups = 1;  // must be 1: the launchers reject anything else
  int p() const { return (h + 2 * pad_h - dil_h * (r - 1) - 1) / stride_h + 1; }  // output rows
  int q() const { return (w + 2 * pad_w - dil_w * (s - 1) - 1) / stride_w + 1; }  // output cols
};

inline constexpr int kConv2dVersions = 6;     // valid versions: 0 (= 3) .. 6
inline constexpr int kConv2dTf32Version = 4;  // the first TF32 tensor-core version; 0 never
                                              // picks one: their rounding differs from fp32
// With TF32 on (kernels::cuda::tf32()) the engine runs version 4, or 5 when
// kernels::cuda::tf32_ldmatrix() is on (the same bits), 6 with tf32_wide() too; both off until
// a GPU run times them faster.
constexpr bool conv2d_version_is_tf32(int version) { return version >= kConv2dTf32Version; }

// True when the launchers below accept sh (groups == 1, every size >= 1, the filter fits, each
// tensor under 2^30 elements, ...): the engine asks before handing a convolution to the lab.
bool conv2d_lab_takes(const Conv2dLabShape& sh);

// y = conv(x, w) + bias; bias [K] may be null.
void conv2d_forward(int version, const Conv2dLabShape& sh, const float* x, const float* w,
                    const float* bias, float* y, cudaStream_t stream);

// dx [N, H, W, C] = the gradient of sum(y * dy) with respect to x; overwrites dx.
void conv2d_backward_data(int version, const Conv2dLabShape& sh, const float* dy,
                          const float* w, float* dx, cudaStream_t stream);

// Bytes of scratch that conv2d_backward_weight needs (per-split partial sums of dw and dbias).
size_t conv2d_backward_weight_workspace(int version, const Conv2dLabShape& sh);

// dw [K, R, S, C] and dbias [K] (may be null) from x and dy [N, P, Q, K]; both overwritten.
// Deterministic: the N*P*Q reduction is split into chunks whose partial sums are added in a
// fixed order by a second kernel, no floating-point atomics. workspace: at least
// ..._workspace() bytes of device memory, or null to have it allocated with cudaMallocAsync.
void conv2d_backward_weight(int version, const Conv2dLabShape& sh, const float* x,
                            const float* dy, float* dw, float* dbias, void* workspace,
                            cudaStream_t stream);

}  // namespace kernels::cuda
