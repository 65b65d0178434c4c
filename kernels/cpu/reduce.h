// kernels/cpu/reduce.h — reductions over the middle axis of a contiguous [outer, r, inner] array.
//
// Any reduction over a set of adjacent dims is this shape: sum over N,H,W of an NHWC tensor is
// [1, N*H*W, C]; a row sum of a matrix is [M, N, 1]. The engine permutes non-adjacent dims.
#pragma once

#include <cstdint>

namespace kernels::cpu {

// out[o, i] = sum_k x[o, k, i]   (accumulated in double for float inputs' long sums)
template <class T>
void reduce_sum(int64_t outer, int64_t r, int64_t inner, const T* x, T* out);

// out[o, i] = max_k x[o, k, i]; idx[o, i] = the first k attaining it (NaN wins, as PyTorch).
template <class T>
void reduce_max(int64_t outer, int64_t r, int64_t inner, const T* x, T* out, int64_t* idx);

// dx[o, k, i] = (k == idx[o, i]) ? dy[o, i] : 0
template <class T>
void reduce_max_backward(int64_t outer, int64_t r, int64_t inner, const T* dy, const int64_t* idx,
                         T* dx);

}  // namespace kernels::cpu
