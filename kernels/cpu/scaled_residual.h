// kernels/cpu/scaled_residual.h — the tail of a ConvNeXt block in one pass over memory:
//
//   y[n, r, c] = x[n, r, c] + s[n] * gamma[c] * (h[n, r, c] + bias[c])
//
// x is the block's input (the residual), h the second pointwise layer's output before its bias,
// gamma the layer scale, s[n] the stochastic-depth factor of sample n (0 or 1/(1-p); null = 1).
// Layout: x, h, y contiguous [samples, rows, c] (rows = H*W of an NHWC sample); bias, gamma [c].
//
// Composed of separate ops this is four passes over the activation (bias add, layer scale,
// drop path, residual add), each reading and writing it; fused it reads x and h and writes y
// once. The backward, with v = h + bias:
//   dx = dy (the engine passes dy through, no work here)
//   dh = s * gamma * dy,   sum_dy[c] = sum over n, r of s * dy,   sum_dyv[c] = sum of s * dy * v
// from which dbias = gamma * sum_dy and dgamma = sum_dyv: one pass reading dy and h, writing dh.
#pragma once

#include <cstdint>

namespace kernels::cpu {

// bias and sample_scale may be null (0 and 1); gamma may not.
template <class T>
void scaled_residual_forward(int64_t samples, int64_t rows, int64_t c, const T* x, const T* h,
                             const T* bias, const T* gamma, const T* sample_scale, T* y);

// dh may be null (not wanted); sum_dy and sum_dyv [c] are overwritten. Column sums are added per
// thread, then the threads' partials in a fixed order (deterministic for a thread count).
template <class T>
void scaled_residual_backward(int64_t samples, int64_t rows, int64_t c, const T* dy, const T* h,
                              const T* bias, const T* gamma, const T* sample_scale, T* dh,
                              T* sum_dy, T* sum_dyv);

}  // namespace kernels::cpu
