// kernels/cuda/loss.h — the elementwise Huber loss and its derivative on the GPU.
//
// The CUDA twins of kernels/cpu/loss.h (same formula, same branch at |d| == delta); the
// reduction to a mean or sum is the engine's. Contiguous device arrays, float32 or float64;
// work is queued on kernels::cuda::stream().
#pragma once

#include <cstdint>

#include "kernels/dtype.h"

namespace kernels::cuda {

// out = 0.5 d^2 if |d| < delta else delta * (|d| - 0.5 delta),  d = pred - target
void huber_forward(int64_t n, const void* pred, const void* target, double delta, void* out,
                   DType dtype);
// dpred = dy * clamp(pred - target, -delta, delta)
void huber_backward(int64_t n, const void* pred, const void* target, double delta, const void* dy,
                    void* dpred, DType dtype);

}  // namespace kernels::cuda
