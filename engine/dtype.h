// engine/dtype.h — element types a tensor can hold.
//
// float32 is what models train in; float64 exists so gradient checks by finite differences
// are exact enough to mean something. The enum leaves room for bf16/fp16 storage later.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ostream>

#include "engine/error.h"

namespace engine {

enum class DType : uint8_t { Float32, Float64, Int64 };

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::Float32: return 4;
    case DType::Float64: return 8;
    case DType::Int64: return 8;
  }
  return 0;
}

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Int64: return "int64";
  }
  return "?";
}

inline std::ostream& operator<<(std::ostream& os, DType t) { return os << dtype_name(t); }

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
