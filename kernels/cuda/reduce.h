// kernels/cuda/reduce.h — reductions over the middle axis of a contiguous [outer, r, inner]
// array, on the GPU.
//
// The CUDA twins of kernels/cpu/reduce.h, same layout and semantics (sums accumulate in
// double; max takes the first maximal index and lets NaN win, as PyTorch). Pointers are device
// pointers; float32 and float64 only; idx is int64. Work is queued on kernels::cuda::stream().
#pragma once

#include <cstdint>

#include "kernels/dtype.h"

namespace kernels::cuda {

// out[o, i] = sum_k x[o, k, i]
void reduce_sum(int64_t outer, int64_t r, int64_t inner, const void* x, void* out, DType dtype);

// out[o, i] = max_k x[o, k, i]; idx[o, i] = the first k attaining it (r >= 1).
void reduce_max(int64_t outer, int64_t r, int64_t inner, const void* x, void* out, int64_t* idx,
                DType dtype);

// dx[o, k, i] = (k == idx[o, i]) ? dy[o, i] : 0
void reduce_max_backward(int64_t outer, int64_t r, int64_t inner, const void* dy,
                         const int64_t* idx, void* dx, DType dtype);

}  // namespace kernels::cuda
