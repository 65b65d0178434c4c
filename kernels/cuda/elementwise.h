// kernels/cuda/elementwise.h — elementwise unary and binary ops on the GPU (forward, backward).
//
// The CUDA twins of kernels/cpu/elementwise.h, with the same op enums and the same
// semantics (NaN handling of Maximum/Minimum/Clamp included). Binary ops read both inputs
// through broadcast strides (0 on a broadcast dim) and write a contiguous output; unary ops
// work on contiguous arrays. Pointers are device pointers to element [0,...,0]; float32 and
// float64 only. Work is queued on kernels::cuda::stream().
#pragma once

#include <cstdint>

#include "kernels/cpu/elementwise.h"
#include "kernels/dtype.h"

namespace kernels::cuda {

using kernels::cpu::BinaryOp;
using kernels::cpu::UnaryOp;

// out[i...] = a[i...] op b[i...] over `shape` (out contiguous).
void binary(BinaryOp op, int ndim, const int64_t* shape, const void* a, const int64_t* a_strides,
            const void* b, const int64_t* b_strides, void* out, DType dtype);

// y = op(x); p0/p1 are Clamp's (low, high) and PowScalar's exponent.
void unary(UnaryOp op, int64_t n, const void* x, void* y, DType dtype, double p0 = 0,
           double p1 = 0);

// dx = dy * op'(x, y); x or y may be null when the derivative does not read it.
void unary_backward(UnaryOp op, int64_t n, const void* x, const void* y, const void* dy, void* dx,
                    DType dtype, double p0 = 0, double p1 = 0);

}  // namespace kernels::cuda
