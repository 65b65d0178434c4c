// kernels/cpu/gelu.h — GELU in its exact erf form, and the fused bias + GELU of a Linear/1x1
// conv output (ConvNeXt's MLP), forward and backward, on contiguous arrays.
//
//   gelu(x)  = x * Phi(x),  Phi(x) = 0.5 * (1 + erf(x / sqrt(2)))   (the normal CDF)
//   gelu'(x) = Phi(x) + x * phi(x),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
// Phi is computed as 0.5 * erfc(-x / sqrt(2)), the same value without the cancellation of
// 1 + erf for x << 0 (as the CUDA kernels do). float32 runs 8 lanes at a time through glibc's
// vector erfc and exp (libmvec) where the build found it, else through scalar libm calls.
// The backward recomputes Phi from the saved input instead of saving it (one erfc is cheaper
// than a second activation-sized buffer).
#pragma once

#include <cstdint>

namespace kernels::cpu {

template <class T>
void gelu_forward(int64_t n, const T* x, T* y);
// dx = dy * gelu'(x)
template <class T>
void gelu_backward(int64_t n, const T* x, const T* dy, T* dx);

// y[r, c] = gelu(x[r, c] + bias[c])   x, y: [rows, channels] (NHWC: rows = N*H*W); y may be x
template <class T>
void bias_gelu_forward(int64_t rows, int64_t channels, const T* x, const T* bias, T* y);
// dx[r, c] = dy[r, c] * gelu'(x[r, c] + bias[c]); the bias gradient is the column sum of dx.
// y: null, or it receives gelu(x[r, c] + bias[c]) again, for a caller that did not keep the
// forward's output (engine::mlp: the second Linear's weight gradient needs it); Phi is computed
// once for both. dx may alias dy (each element is read before it is written).
template <class T>
void bias_gelu_backward(int64_t rows, int64_t channels, const T* x, const T* bias, const T* dy,
                        T* dx, T* y = nullptr);

}  // namespace kernels::cpu
