// kernels/cuda/optimizer.h — fused SGD and Adam/AdamW updates of many parameters at once.
//
// The CUDA twins of kernels/cpu/optimizer.h, with the same arithmetic (torch.optim's
// single-tensor rules; per-step scalars computed in double on the host and cast to the element
// type once, exactly as the CPU kernel does). The difference is the launch: a model has tens to
// hundreds of parameter tensors, many of them tiny (biases, norms), and one launch per tensor
// would cost more than the update. So these take a list of parameters and update them all in a
// few launches ("multi-tensor apply", as PyTorch's foreach/fused optimizers): each launch
// carries a table of up to 64 tensors and up to 640 (tensor, chunk) pairs in its kernel
// arguments (no device-side metadata, no host-device copy, no synchronisation), and block b
// updates chunk b's elements.
// All entries of one call have the given dtype (float32 or float64) and contiguous device
// arrays; work is queued on kernels::cuda::stream(). The host arrays may be freed on return.
#pragma once

#include <cstdint>

#include "kernels/dtype.h"

namespace kernels::cuda {

struct SgdParam {
  void* param;         // [n], updated in place
  const void* grad;    // [n]
  void* momentum_buf;  // [n], updated in place; null when momentum == 0
  int64_t n;
  double lr, weight_decay;  // the parameter's group settings
  bool first_step;  // buf = d (torch.clone) instead of momentum * buf + (1 - dampening) * d
};

// For each entry, as kernels::cpu::sgd_update.
void sgd_update_multi(const SgdParam* params, int64_t count, double momentum, double dampening,
                      bool nesterov, DType dtype);

struct AdamParam {
  void* param;       // [n], updated in place
  const void* grad;  // [n]
  void* exp_avg;     // [n], updated in place
  void* exp_avg_sq;  // [n], updated in place
  int64_t n;
  double lr, weight_decay;  // the parameter's group settings
  int64_t step;  // this parameter's step count after incrementing (1 on its first update)
};

// For each entry, as kernels::cpu::adam_update (decoupled = AdamW).
void adam_update_multi(const AdamParam* params, int64_t count, double beta1, double beta2,
                       double eps, bool decoupled, DType dtype);

}  // namespace kernels::cuda
