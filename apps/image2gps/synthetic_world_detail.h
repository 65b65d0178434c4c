// apps/image2gps/synthetic_world_detail.h — helpers shared by synthetic_world.cpp (layout) and
// synthetic_world_render.cpp (ray caster). Not part of the public API.
#pragma once

#include <cmath>
#include <cstdint>

#include "apps/image2gps/synthetic_world.h"

namespace i2g::detail {

constexpr double kPi = 3.14159265358979323846;
constexpr double kDeg = kPi / 180;

// splitmix64: tiny, fast, and the same numbers on every compiler and standard library.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t next() {
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  float uniformf(double lo, double hi) { return static_cast<float>(uniform(lo, hi)); }
  int below(int n) { return static_cast<int>(uniform() * n); }

 private:
  uint64_t s_;
};

inline Rgb mix(Rgb a, Rgb b, float t) {
  return {a.r + (b.r - a.r) * t, a.g + (b.g - a.g) * t, a.b + (b.b - a.b) * t};
}
inline Rgb scale(Rgb a, float k) { return {a.r * k, a.g * k, a.b * k}; }

// Hue in turns [0, 1), saturation and value in [0, 1].
inline Rgb hsv(float h, float s, float v) {
  h = (h - std::floor(h)) * 6;
  const int i = static_cast<int>(h) % 6;
  const float f = h - std::floor(h);
  const float p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
  switch (i) {
    case 0: return {v, t, p};
    case 1: return {q, v, p};
    case 2: return {p, v, t};
    case 3: return {p, q, v};
    case 4: return {t, p, v};
    default: return {v, p, q};
  }
}

inline uint32_t hash2(int x, int y, uint32_t seed) {
  uint32_t h = seed ^ (static_cast<uint32_t>(x) * 0x8da6b343u) ^ (static_cast<uint32_t>(y) * 0xd8163841u);
  h ^= h >> 15;
  h *= 0x2c1b3c6du;
  h ^= h >> 12;
  h *= 0x297a2d39u;
  h ^= h >> 15;
  return h;
}

// Smooth value noise in [0, 1] with one feature per unit.
inline float value_noise(float x, float y, uint32_t seed) {
  const float fx0 = std::floor(x), fy0 = std::floor(y);
  const int ix = static_cast<int>(fx0), iy = static_cast<int>(fy0);
  float fx = x - fx0, fy = y - fy0;
  fx = fx * fx * (3 - 2 * fx);
  fy = fy * fy * (3 - 2 * fy);
  auto v = [&](int dx, int dy) { return (hash2(ix + dx, iy + dy, seed) >> 8) * (1.0f / 16777216.0f); };
  const float a = v(0, 0) + (v(1, 0) - v(0, 0)) * fx;
  const float b = v(0, 1) + (v(1, 1) - v(0, 1)) * fx;
  return a + (b - a) * fy;
}

// Light falling on a surface with unit normal n: sky light (more on upward faces) plus Lambert
// sunlight; `sunlit` = 0 in shadow.
inline float light(const World& w, float nx, float ny, float nz, float sunlit) {
  const float ndl = nx * w.sun[0] + ny * w.sun[1] + nz * w.sun[2];
  return 0.42f + 0.12f * nz + 0.72f * sunlit * (ndl > 0 ? ndl : 0);
}

// Renderer entry used while building the world: multiplies every ground-map albedo by its
// light, tracing a shadow ray toward the sun from each cell (synthetic_world_render.cpp).
void light_ground(World& world);

// Grass color away from the ground map (outside the campus), unlit.
Rgb outside_albedo(float x, float y, uint32_t seed);

}  // namespace i2g::detail
