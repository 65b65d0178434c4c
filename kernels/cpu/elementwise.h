// kernels/cpu/elementwise.h — elementwise unary and binary ops (forward and backward).
//
// Binary ops read both inputs through broadcast strides (stride 0 on a broadcast dim) and
// write a contiguous output. Unary ops work on contiguous arrays. GELU lives in gelu.h.
#pragma once

#include <cstdint>

namespace kernels::cpu {

// Equal gives 1 or 0; AddRelu is max(a + b, 0) (a residual join followed by its ReLU, one pass)
enum class BinaryOp { Add, Sub, Mul, Div, Pow, Maximum, Minimum, Equal, AddRelu };
enum class UnaryOp { Neg, Exp, Log, Sqrt, Abs, Relu, Sigmoid, Tanh, Clamp, PowScalar };

// out[i...] = a[i...] op b[i...] over `shape` (out is contiguous).
template <class T>
void binary(BinaryOp op, int ndim, const int64_t* shape, const T* a, const int64_t* a_strides,
            const T* b, const int64_t* b_strides, T* out);

// y = op(x). p0/p1 are the parameters of Clamp (low, high) and PowScalar (exponent).
template <class T>
void unary(UnaryOp op, int64_t n, const T* x, T* y, T p0 = 0, T p1 = 0);

// dx = dy * op'(x), using the saved input x and/or output y as each derivative needs.
template <class T>
void unary_backward(UnaryOp op, int64_t n, const T* x, const T* y, const T* dy, T* dx, T p0 = 0,
                    T p1 = 0);

}  // namespace kernels::cpu
