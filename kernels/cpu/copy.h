// kernels/cpu/copy.h — strided copies (with dtype conversion) and fills.
//
// These move a tensor between layouts: contiguous(), permute+copy for NCHW<->NHWC, slices.
// Shapes and strides are in elements; `ndim` may be 0 (one element).
#pragma once

#include <cstdint>

namespace kernels::cpu {

// dst[i...] = src[i...] over `shape`, reading and writing through the given strides.
template <class Src, class Dst>
void copy_strided(int ndim, const int64_t* shape, const Src* src, const int64_t* src_strides,
                  Dst* dst, const int64_t* dst_strides);

template <class T>
void fill(T* dst, int64_t n, T value);

}  // namespace kernels::cpu
