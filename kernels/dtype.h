// kernels/dtype.h — the element types a buffer can hold, shared by kernels/ and engine/.
//
// The CUDA kernels take type-erased pointers plus one of these tags (the engine dispatches on
// it once, in the kernel's launcher), so the enum lives here, below the engine; engine/dtype.h
// re-exports it as engine::DType with the same names.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ostream>

namespace kernels {

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

// Lives in the enum's own namespace so argument-dependent lookup finds it from anywhere
// (engine::cat, gtest's printers, ...).
inline std::ostream& operator<<(std::ostream& os, DType t) { return os << dtype_name(t); }

}  // namespace kernels
