// kernels/cuda/depthwise_conv2d.h — depthwise 2-D convolution on NHWC activations, on the GPU
// (forward, data gradient, weight + bias gradient). Algorithms and roofline: depthwise_conv2d.cu.
//
//   x  [N, H, W, C]   input, channels last (contiguous), device memory
//   w  [C, R, S, 1]   one R x S filter per channel (equivalently [C, R*S])
//   y  [N, P, Q, C]   output, stride 1, dilation 1: P = H + 2*pad_h - R + 1, Q likewise
//
// float32 only. Every function queues work on `stream` and returns without synchronising;
// errors (bad shapes, bad version, launch failures) throw std::runtime_error.
// version: 0 = the fastest (what the engine uses, currently 3), or 1, 2, 3 (see the .cu).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace kernels::cuda {

struct DepthwiseShape {
  int n = 1, h = 1, w = 1, c = 1;  // input  [N, H, W, C]
  int r = 1, s = 1;                // filter [C, R, S, 1]
  int pad_h = 0, pad_w = 0;        // zeros added on each side; stride and dilation are 1
  int p() const { return h + 2 * pad_h - r + 1; }  // output height
  int q() const { return w + 2 * pad_w - s + 1; }  // output width
};

inline constexpr int kDepthwiseVersions = 3;  // valid versions are 0 (= fastest) .. 3

// y = depthwise_conv(x, w) + bias; bias [C] may be null.
void depthwise_conv2d_forward(int version, const DepthwiseShape& sh, const float* x, const float* w,
                              const float* bias, float* y, cudaStream_t stream);

// dx [N, H, W, C] = the gradient of sum(y * dy) with respect to x; overwrites dx.
void depthwise_conv2d_backward_data(int version, const DepthwiseShape& sh, const float* dy,
                                    const float* w, float* dx, cudaStream_t stream);

// Bytes of scratch that depthwise_conv2d_backward_weight needs (per-block partial sums).
size_t depthwise_conv2d_backward_weight_workspace(int version, const DepthwiseShape& sh);

// dw [C, R, S, 1] and dbias [C] (may be null) from x and dy [N, P, Q, C]; both overwritten.
// Deterministic: partial sums per block are added in a fixed order by a second kernel, no
// floating-point atomics. workspace: at least ..._workspace() bytes of device memory, or null
// to have it allocated with cudaMallocAsync on `stream`.
void depthwise_conv2d_backward_weight(int version, const DepthwiseShape& sh, const float* x,
                                      const float* dy, float* dw, float* dbias, void* workspace,
                                      cudaStream_t stream);

}  // namespace kernels::cuda
