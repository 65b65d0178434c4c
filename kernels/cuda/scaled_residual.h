// kernels/cuda/scaled_residual.h — the ConvNeXt block tail on the GPU:
//   y[n, r, c] = x[n, r, c] + s[n] * gamma[c] * (h[n, r, c] + bias[c])
// and its backward (dh and the two column sums). The CUDA twins of kernels/cpu/scaled_residual.h
// (same arguments, same results up to float rounding; see that header for the math).
// Contiguous device arrays, float32 or float64; work is queued on kernels::cuda::stream().
#pragma once

#include <cstdint>

#include "kernels/dtype.h"

namespace kernels::cuda {

// bias and sample_scale may be null (0 and 1).
void scaled_residual_forward(int64_t samples, int64_t rows, int64_t c, const void* x,
                             const void* h, const void* bias, const void* gamma,
                             const void* sample_scale, void* y, DType dtype);

// dh may be null; sum_dy and sum_dyv [c] are overwritten (fixed-order sums: deterministic).
void scaled_residual_backward(int64_t samples, int64_t rows, int64_t c, const void* dy,
                              const void* h, const void* bias, const void* gamma,
                              const void* sample_scale, void* dh, void* sum_dy, void* sum_dyv,
                              DType dtype);

}  // namespace kernels::cuda
