// tools/cuda_emu/include/cuda_emu/types.h — the CUDA vocabulary that is plain C++ on the CPU:
// function qualifiers, vector types (dim3, uint3, float2, float4) and the device math and bit
// builtins the kernel labs call. Only what the labs use; anything else fails to compile, which
// is the point (a kernel must not silently run something different from what nvcc builds).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <source_location>
#include <type_traits>

// ---- qualifiers ------------------------------------------------------------------------------
// Kernels and device functions become ordinary functions; the emulator decides which thread
// runs them. __launch_bounds__ only guides nvcc's register allocation: nothing to emulate.
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) alignas(n)

// ---- vector and index types ------------------------------------------------------------------
// Same layout and alignment as CUDA's: a float4 is 16 bytes aligned to 16, so a float4 access
// through a pointer that is not 16-byte aligned is exactly as wrong here as on the GPU (the
// emulated tests are built with -fsanitize=alignment, which reports it).
struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
};
struct alignas(8) float2 {
  float x, y;
};
struct alignas(16) float4 {
  float x, y, z, w;
};
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }

inline constexpr int warpSize = 32;

// Streams: the emulator runs every kernel to completion at its launch, so all work is
// synchronous and the stream (always the default one in the labs' tests) is just carried along.
typedef struct CUstream_st* cudaStream_t;

// ---- math -------------------------------------------------------------------------------------
// fmaf, sqrtf, expf, erfcf, fmaxf come from the C library (<cmath>): correctly rounded or
// within an ulp or two, while CUDA's are within their documented ulp bounds. Results can
// differ in the last bits from the GPU's; the lab tests' tolerances allow for that.
using std::isnan;
inline float rsqrtf(float v) { return 1.f / std::sqrt(v); }

// CUDA's min/max are overloaded for every pair of arithmetic types, with the usual
// promotions (min(int, long long) is a long long).
template <class A, class B>
requires std::is_arithmetic_v<A> && std::is_arithmetic_v<B>
constexpr std::common_type_t<A, B> min(A a, B b) { return b < a ? b : a; }
template <class A, class B>
requires std::is_arithmetic_v<A> && std::is_arithmetic_v<B>
constexpr std::common_type_t<A, B> max(A a, B b) { return a < b ? b : a; }

// ---- bits -------------------------------------------------------------------------------------
inline int __popc(unsigned v) { return __builtin_popcount(v); }
inline int __ffs(unsigned v) { return __builtin_ffs(int(v)); }
inline unsigned __float_as_uint(float f) {
  unsigned u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float __uint_as_float(unsigned u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline float __int_as_float(int i) {
  float f;
  std::memcpy(&f, &i, 4);
  return f;
}

// ---- memory access -----------------------------------------------------------------------------
// __ldg loads through the read-only cache on the GPU: the same value, read now. A load of a
// T from an address that is not aligned to T faults on the GPU ("misaligned address").
namespace emu {
[[noreturn]] inline void misaligned_load(size_t align, const void* p,
                                         const std::source_location& site);
}
template <class T>
inline T __ldg(const T* p, std::source_location site = std::source_location::current()) {
  if (reinterpret_cast<uintptr_t>(p) % alignof(T) != 0) emu::misaligned_load(alignof(T), p, site);
  return *p;
}

// One emulated thread runs at a time and is never interrupted between two of its own
// instructions, so a read-modify-write is atomic by construction. (What this cannot show is
// the nondeterministic order in which real blocks add: the result here is always the same.)
template <class T>
requires std::is_arithmetic_v<T>
inline T atomicAdd(T* address, T value) {
  T old = *address;
  *address = old + value;
  return old;
}
