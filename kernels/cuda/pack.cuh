// kernels/cuda/pack.cuh — 16-byte vector loads and stores (4 floats or 2 doubles per access).
//
// Memory-bound kernels reach the H100's bandwidth with fewer instructions when each thread
// moves 128 bits at a time (LDG.E.128 / STG.E.128 in the SASS). Only valid on 16-byte-aligned
// addresses: launchers check with aligned16() and fall back to scalar loops otherwise (views
// with an odd offset, for example).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace kernels::cuda {

template <class T>
struct alignas(16) Pack {
  static constexpr int kSize = 16 / sizeof(T);  // elements per 128-bit access
  T v[kSize];
};

template <class T>
__device__ __forceinline__ Pack<T> load_pack(const T* p) {
  return *reinterpret_cast<const Pack<T>*>(p);
}

template <class T>
__device__ __forceinline__ void store_pack(T* p, const Pack<T>& x) {
  *reinterpret_cast<Pack<T>*>(p) = x;
}

// Null counts as aligned: an operand that is not read imposes nothing.
inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace kernels::cuda
