// engine/dtype.h — element types a tensor can hold.
//
// float32 is what models train in; float64 exists so gradient checks by finite differences
// are exact enough to mean something. The enum leaves room for bf16/fp16 storage later.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ostream>

#include "engine/error.h"
#include "kernels/dtype.h"

namespace engine {

// The enum, dtype_size, dtype_name and operator<< are defined in kernels/dtype.h (the CUDA
// kernels take the same tag); these declarations make them engine:: names as before.
using kernels::DType;
using kernels::dtype_name;
using kernels::dtype_size;

template <class T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::Float32; }
template <> constexpr DType dtype_of<double>() { return DType::Float64; }
template <> constexpr DType dtype_of<int64_t>() { return DType::Int64; }

// Calls f(T{}) with T the C++ type of a floating dtype:
//   dispatch_float(x.dtype(), "exp", [&](auto zero) { using T = decltype(zero); ... });
template <class F>
decltype(auto) dispatch_float(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::Float32: return f(float{});
    case DType::Float64: return f(double{});
    default: break;
  }
  fail(op, ": expected a float32 or float64 tensor, got ", dtype_name(t));
}

}  // namespace engine
