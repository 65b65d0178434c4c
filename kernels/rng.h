// kernels/rng.h — a counter-based random number generator, identical on CPU and GPU.
//
// Random value i of a stream is a pure function of (seed, i): hash the pair, map to [0,1).
// So dropout masks do not depend on how many threads or blocks produced them, and the CPU and
// CUDA kernels draw exactly the same numbers. The hash is SplitMix64's finaliser applied
// twice (seed and counter mixed separately), which passes BigCrush as a counter-based RNG.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define RNG_HD __host__ __device__ __forceinline__
#else
#define RNG_HD inline
#endif

namespace kernels {

RNG_HD uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// 64 random bits for element `counter` of the stream `seed`.
RNG_HD uint64_t rng_bits(uint64_t seed, uint64_t counter) {
  return mix64(mix64(seed + 0x9e3779b97f4a7c15ULL) ^ (counter * 0x9e3779b97f4a7c15ULL + 1));
}

// Uniform in [0, 1) with 53 (double) random bits.
RNG_HD double rng_uniform(uint64_t seed, uint64_t counter) {
  return static_cast<double>(rng_bits(seed, counter) >> 11) * (1.0 / 9007199254740992.0);
}

// Standard normal via Box-Muller on the two uniforms of counters 2i and 2i+1.
RNG_HD double rng_normal(uint64_t seed, uint64_t counter) {
  double u1 = rng_uniform(seed, 2 * counter);
  double u2 = rng_uniform(seed, 2 * counter + 1);
  double r = sqrt(-2.0 * log(1.0 - u1));  // 1-u1 is in (0,1], so log is finite
  return r * cos(6.283185307179586 * u2);
}

}  // namespace kernels
