// kernels/cpu/optimizer.h — fused optimizer updates: one pass over a parameter, its gradient
// and its state, instead of the 4-6 elementwise passes (and temporaries) the composed update
// needs. The arithmetic follows torch.optim's single-tensor code line by line (torch 1.13
// sgd.py / adam.py / adamw.py), in the element type T, with the per-step scalars (bias
// corrections, step size) computed in double as Python does. nn/optimizer.cpp keeps the
// composed twin (engine ops) for other devices and a test asserts the two agree.
#pragma once

#include <cstdint>

namespace kernels::cpu {

// SGD with momentum, dampening, Nesterov and L2 weight decay, on n contiguous elements:
//   d = g + wd * p
//   buf = first_step ? d : momentum * buf + (1 - dampening) * d      (when momentum != 0)
//   d = nesterov ? d + momentum * buf : buf                          (when momentum != 0)
//   p -= lr * d
// `buf` may be null when momentum == 0.
template <class T>
void sgd_update(int64_t n, T* param, const T* grad, T* buf, double lr, double momentum,
                double dampening, double weight_decay, bool nesterov, bool first_step);

// Adam (decoupled = false: L2 decay folded into the gradient) or AdamW (decoupled = true:
// p *= 1 - lr * wd before the moment update). `step` is the step count after incrementing
// (1 on the first update):
//   m = beta1 * m + (1 - beta1) * g
//   v = beta2 * v + (1 - beta2) * g * g
//   p -= lr / (1 - beta1^step) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
template <class T>
void adam_update(int64_t n, T* param, const T* grad, T* exp_avg, T* exp_avg_sq, double lr,
                 double beta1, double beta2, double eps, double weight_decay, bool decoupled,
                 int64_t step);

}  // namespace kernels::cpu
