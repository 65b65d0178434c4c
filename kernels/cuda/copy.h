// kernels/cuda/copy.h — strided copies (with dtype conversion) and fills on the GPU.
//
// The CUDA twins of kernels/cpu/copy.h: they move a tensor between layouts (contiguous(),
// permute+copy, slices, writes into views) and between dtypes. Pointers are device pointers to
// element [0,...,0]; shapes and strides are in elements; ndim may be 0 (one element). Work is
// queued on kernels::cuda::stream() and returns before it finishes.
#pragma once

#include <cstdint>

#include "kernels/dtype.h"

namespace kernels::cuda {

// dst[i...] = (dst dtype) src[i...] over `shape`.
void copy_strided(int ndim, const int64_t* shape, const void* src, DType src_dtype,
                  const int64_t* src_strides, void* dst, DType dst_dtype,
                  const int64_t* dst_strides);

// dst[0..n) = value, converted to `dtype`.
void fill(void* dst, DType dtype, int64_t n, double value);

}  // namespace kernels::cuda
