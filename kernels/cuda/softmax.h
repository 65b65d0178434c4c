// kernels/cuda/softmax.h — softmax and log-softmax over the middle axis of a contiguous
// [outer, n, inner] array, on the GPU.
//
// The CUDA twins of kernels/cpu/softmax.h, same layout and formulas (max-subtracted; the
// backward reads the saved output y). Device pointers, float32 or float64; work is queued on
// kernels::cuda::stream().
#pragma once

#include <cstdint>

#include "kernels/dtype.h"

namespace kernels::cuda {

void softmax_forward(int64_t outer, int64_t n, int64_t inner, const void* x, void* y, bool log,
                     DType dtype);

//   softmax:     dx_k = y_k * (dy_k - sum_j dy_j y_j)
//   log_softmax: dx_k = dy_k - exp(y_k) * sum_j dy_j
void softmax_backward(int64_t outer, int64_t n, int64_t inner, const void* y, const void* dy,
                      void* dx, bool log, DType dtype);

}  // namespace kernels::cuda
