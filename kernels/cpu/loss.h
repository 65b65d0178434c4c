// kernels/cpu/loss.h — elementwise regression losses on contiguous arrays (the reduction to a
// mean or sum is done by the engine's reduce ops).
//
//   huber(d) = 0.5 d^2                    if |d| <  delta      d = pred - target
//            = delta * (|d| - 0.5 delta)  otherwise            (torch.nn.HuberLoss)
// Its derivative is clamp(d, -delta, delta): quadratic near zero, constant slope outside,
// continuous at |d| = delta, which is why it tolerates outliers (wrong GPS tags) in training.
#pragma once

#include <cstdint>

namespace kernels::cpu {

template <class T>
void huber_forward(int64_t n, const T* pred, const T* target, T delta, T* out);

// dpred = dy * clamp(pred - target, -delta, delta)
template <class T>
void huber_backward(int64_t n, const T* pred, const T* target, T delta, const T* dy, T* dpred);

}  // namespace kernels::cpu
