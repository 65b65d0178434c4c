// kernels/cpu/softmax.h — softmax and log-softmax over the middle axis of a contiguous
// [outer, n, inner] array.
//
// Softmax over dim d of any contiguous tensor is this shape with outer = product of the sizes
// before d and inner = product of the sizes after d, so the engine never permutes. Both use the
// max-subtracted (stable) form, which cannot overflow exp():
//   softmax:     y_k = exp(x_k - m) / sum_j exp(x_j - m),   m = max_j x_j
//   log_softmax: y_k = x_k - m - log(sum_j exp(x_j - m))
#pragma once

#include <cstdint>

namespace kernels::cpu {

template <class T>
void softmax_forward(int64_t outer, int64_t n, int64_t inner, const T* x, T* y, bool log);

// Gradients from the saved output y (cheaper than from x: no exp to recompute for softmax):
//   softmax:     dx_k = y_k * (dy_k - sum_j dy_j y_j)
//   log_softmax: dx_k = dy_k - exp(y_k) * sum_j dy_j
template <class T>
void softmax_backward(int64_t outer, int64_t n, int64_t inner, const T* y, const T* dy, T* dx,
                      bool log);

}  // namespace kernels::cpu
