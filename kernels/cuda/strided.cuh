// kernels/cuda/strided.cuh — element offsets of N strided operands from one linear index.
//
// Used by the kernels that read or write through arbitrary strides (copy_strided, broadcast
// binary ops). The host first merges dims that are contiguous with each other in every
// operand, so an NHWC tensor + bias[C] becomes [N*H*W, C] and a same-layout copy becomes one
// flat dim; the kernel then turns linear index i into one offset per operand with one
// division per remaining dim (32-bit divisions when the index fits, they are ~4x cheaper).
#pragma once

#include <cstdint>

#include "kernels/cuda/runtime.h"

namespace kernels::cuda {

constexpr int kMaxDims = 10;  // after merging; more than any layout the engine produces

template <int N>
struct Strided {
  int ndim = 1;                      // >= 1
  bool index32 = true;               // every linear index fits in uint32_t
  int64_t numel = 1;
  int64_t shape[kMaxDims] = {};      // outermost first
  int64_t stride[N][kMaxDims] = {};  // elements, per operand

  __device__ __forceinline__ void offsets(int64_t i, int64_t (&off)[N]) const {
#pragma unroll
    for (int a = 0; a < N; ++a) off[a] = 0;
    if (index32) {
      uint32_t rem = static_cast<uint32_t>(i);
      for (int d = ndim - 1; d > 0; --d) {
        uint32_t s = static_cast<uint32_t>(shape[d]);
        uint32_t q = rem / s;
        uint32_t id = rem - q * s;  // index along dim d
        rem = q;
#pragma unroll
        for (int a = 0; a < N; ++a) off[a] += static_cast<int64_t>(id) * stride[a][d];
      }
#pragma unroll
      for (int a = 0; a < N; ++a) off[a] += static_cast<int64_t>(rem) * stride[a][0];
    } else {
      int64_t rem = i;
      for (int d = ndim - 1; d > 0; --d) {
        int64_t q = rem / shape[d];
        int64_t id = rem - q * shape[d];
        rem = q;
#pragma unroll
        for (int a = 0; a < N; ++a) off[a] += id * stride[a][d];
      }
#pragma unroll
      for (int a = 0; a < N; ++a) off[a] += rem * stride[a][0];
    }
  }
};

// Merges dims (size-1 dims dropped; d joins the dim before it when stride_prev ==
// stride_d * shape_d in every operand). ndim may be 0 (one element). Returns false when more
// than kMaxDims dims remain after merging.
template <int N>
bool try_make_strided(int ndim, const int64_t* shape, const int64_t* const (&strides)[N],
                      Strided<N>& s) {
  s = Strided<N>();
  int nd = 0;
  s.numel = 1;
  for (int d = 0; d < ndim; ++d) {
    s.numel *= shape[d];
    if (shape[d] == 1) continue;
    bool merge = nd > 0;
    for (int a = 0; a < N && merge; ++a) merge = s.stride[a][nd - 1] == strides[a][d] * shape[d];
    if (merge) {
      s.shape[nd - 1] *= shape[d];
      for (int a = 0; a < N; ++a) s.stride[a][nd - 1] = strides[a][d];
      continue;
    }
    if (nd == kMaxDims) return false;
    s.shape[nd] = shape[d];
    for (int a = 0; a < N; ++a) s.stride[a][nd] = strides[a][d];
    ++nd;
  }
  if (nd == 0) {  // a single element
    s.shape[0] = 1;
    nd = 1;
  }
  s.ndim = nd;
  s.index32 = s.numel <= static_cast<int64_t>(UINT32_MAX);
  return true;
}

// The same, failing with a message naming `op` when too many dims remain.
template <int N>
Strided<N> make_strided(const char* op, int ndim, const int64_t* shape,
                        const int64_t* const (&strides)[N]) {
  Strided<N> s;
  if (!try_make_strided<N>(ndim, shape, strides, s))
    raise(std::string(op) + ": operands with more than " + std::to_string(kMaxDims) +
          " dims that cannot be merged are not supported on CUDA; reshape them first");
  return s;
}

// True when operand a walks memory contiguously (one merged dim of stride 1).
template <int N>
bool is_flat(const Strided<N>& s, int a) {
  return s.ndim == 1 && (s.stride[a][0] == 1 || s.shape[0] == 1);
}

}  // namespace kernels::cuda
