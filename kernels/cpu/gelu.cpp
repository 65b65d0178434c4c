#include "kernels/cpu/gelu.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "kernels/cpu/parallel.h"

#if defined(KERNELS_HAVE_LIBMVEC) && defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
// glibc's vector math (libmvec): erfc and exp on 8 floats, within a few ulp like the scalar
// libm calls, which g++ only vectorises to these under -ffast-math.
extern "C" __m256 _ZGVdN8v_erfcf(__m256);
extern "C" __m256 _ZGVdN8v_expf(__m256);
#define GELU_VECTOR_MATH 1
#endif

namespace kernels::cpu {

namespace {

constexpr int64_t kParallelMin = 1 << 14;  // erf is ~20 flops, so threads pay off earlier

// Phi(x) = P(Z <= x) = erfc(-x / sqrt 2) / 2, as the CUDA kernels compute it: unlike
// (1 + erf(x / sqrt 2)) / 2 it does not cancel for x << 0, where GELU(x) = x Phi(x) is tiny.
template <class T>
T phi(T v) {
  return T(0.5) * std::erfc(v * T(-0.70710678118654752440));  // -1/sqrt(2)
}

template <class T>
T gelu(T v) {
  return v * phi(v);
}

template <class T>
T gelu_grad(T v) {
  const T pdf = std::exp(T(-0.5) * v * v) * T(0.39894228040143267794);  // 1/sqrt(2 pi)
  return phi(v) + v * pdf;
}

#if defined(GELU_VECTOR_MATH)
// The same on 8 floats (version 2 of the float32 loops): as scalar libm calls, erf and exp
// were ~20% of ConvNeXt-T's training step on the CPU (perf, 2026-11-26).
inline __m256 phi8(__m256 v) {
  const __m256 z = _mm256_mul_ps(v, _mm256_set1_ps(-0.70710678118654752440f));
  return _mm256_mul_ps(_mm256_set1_ps(0.5f), _ZGVdN8v_erfcf(z));
}
inline __m256 gelu8(__m256 v) { return _mm256_mul_ps(v, phi8(v)); }
inline __m256 gelu_grad8(__m256 v) {
  const __m256 e = _ZGVdN8v_expf(_mm256_mul_ps(_mm256_mul_ps(v, v), _mm256_set1_ps(-0.5f)));
  const __m256 pdf = _mm256_mul_ps(e, _mm256_set1_ps(0.39894228040143267794f));
  return _mm256_add_ps(phi8(v), _mm256_mul_ps(v, pdf));
}

// out[i] = f(x[i] (+ b[i]), dy[i]) over [0, n) in blocks of 8; the last partial block goes
// through a zero-padded copy, so every element takes the same arithmetic. b, dy may be null.
template <class F8>
void blocks8(int64_t n, const float* x, const float* b, const float* dy, float* out, F8 f) {
  auto one = [&](const float* xp, const float* bp, const float* dp, float* op) {
    __m256 v = _mm256_loadu_ps(xp);
    if (b) v = _mm256_add_ps(v, _mm256_loadu_ps(bp));
    __m256 r = f(v);
    if (dy) r = _mm256_mul_ps(_mm256_loadu_ps(dp), r);
    _mm256_storeu_ps(op, r);
  };
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) one(x + i, b + (b ? i : 0), dy + (dy ? i : 0), out + i);
  if (i == n) return;
  float xs[8] = {}, bs[8] = {}, ds[8] = {}, os[8];
  for (int64_t k = i; k < n; ++k) {
    xs[k - i] = x[k];
    if (b) bs[k - i] = b[k];
    if (dy) ds[k - i] = dy[k];
  }
  one(xs, bs, ds, os);
  for (int64_t k = i; k < n; ++k) out[k] = os[k - i];
}

// blocks8 over a flat array of n, in tasks of 4096 elements (a multiple of 8, so every block
// but the array's last is whole).
template <class F8>
void flat8(int64_t n, const float* x, const float* dy, float* out, F8 f) {
  constexpr int64_t kTask = 4096;
  parallel_for((n + kTask - 1) / kTask, n > kParallelMin, [=](int64_t t) {
    const int64_t i0 = t * kTask;
    blocks8(std::min(kTask, n - i0), x + i0, nullptr, dy ? dy + i0 : nullptr, out + i0, f);
  });
}

// blocks8 over each row of [rows, channels], the bias added along the row.
template <class F8>
void rows8(int64_t rows, int64_t channels, const float* x, const float* bias, const float* dy,
           float* out, F8 f) {
  parallel_for(rows, rows * channels > kParallelMin, [=](int64_t r) {
    const int64_t o = r * channels;
    blocks8(channels, x + o, bias, dy ? dy + o : nullptr, out + o, f);
  });
}

// bias_gelu_backward's float32 loop when it also writes y: per row, blocks of 8 (the tail through a padded
// copy), Phi shared by the value x Phi(x) and the slope Phi(x) + x phi(x), each computed with
// the same operations as gelu8 / gelu_grad8, so the results are those of the separate kernels.
void rows8_recompute(int64_t rows, int64_t channels, const float* x, const float* bias,
                     const float* dy, float* dx, float* y) {
  auto one = [](const float* xp, const float* bp, const float* dp, float* dxp, float* yp) {
    const __m256 v = _mm256_add_ps(_mm256_loadu_ps(xp), _mm256_loadu_ps(bp));
    const __m256 p = phi8(v);
    const __m256 e = _ZGVdN8v_expf(_mm256_mul_ps(_mm256_mul_ps(v, v), _mm256_set1_ps(-0.5f)));
    const __m256 pdf = _mm256_mul_ps(e, _mm256_set1_ps(0.39894228040143267794f));
    const __m256 slope = _mm256_add_ps(p, _mm256_mul_ps(v, pdf));
    _mm256_storeu_ps(dxp, _mm256_mul_ps(_mm256_loadu_ps(dp), slope));
    _mm256_storeu_ps(yp, _mm256_mul_ps(v, p));
  };
  parallel_for(rows, rows * channels > kParallelMin, [=](int64_t r) {
    const int64_t o = r * channels;
    int64_t c = 0;
    for (; c + 8 <= channels; c += 8) one(x + o + c, bias + c, dy + o + c, dx + o + c, y + o + c);
    if (c == channels) return;
    float xs[8] = {}, bs[8] = {}, ds[8] = {}, dxs[8], ys[8];
    for (int64_t k = c; k < channels; ++k)
      xs[k - c] = x[o + k], bs[k - c] = bias[k], ds[k - c] = dy[o + k];
    one(xs, bs, ds, dxs, ys);
    for (int64_t k = c; k < channels; ++k) dx[o + k] = dxs[k - c], y[o + k] = ys[k - c];
  });
}
#endif

}  // namespace

template <class T>
void gelu_forward(int64_t n, const T* x, T* y) {
#if defined(GELU_VECTOR_MATH)
  if constexpr (std::is_same_v<T, float>) return flat8(n, x, nullptr, y, gelu8);
#endif
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] = gelu(x[i]);
}

template <class T>
void gelu_backward(int64_t n, const T* x, const T* dy, T* dx) {
#if defined(GELU_VECTOR_MATH)
  if constexpr (std::is_same_v<T, float>) return flat8(n, x, dy, dx, gelu_grad8);
#endif
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * gelu_grad(x[i]);
}

template <class T>
void bias_gelu_forward(int64_t rows, int64_t channels, const T* x, const T* bias, T* y) {
#if defined(GELU_VECTOR_MATH)
  if constexpr (std::is_same_v<T, float>) return rows8(rows, channels, x, bias, nullptr, y, gelu8);
#endif
#pragma omp parallel for schedule(static) if (rows * channels > kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * channels;
    T* yr = y + r * channels;
    for (int64_t c = 0; c < channels; ++c) yr[c] = gelu(xr[c] + bias[c]);
  }
}

template <class T>
void bias_gelu_backward(int64_t rows, int64_t channels, const T* x, const T* bias, const T* dy,
                        T* dx, T* y) {
#if defined(GELU_VECTOR_MATH)
  if constexpr (std::is_same_v<T, float>) {
    if (y) return rows8_recompute(rows, channels, x, bias, dy, dx, y);
    return rows8(rows, channels, x, bias, dy, dx, gelu_grad8);
  }
#endif
#pragma omp parallel for schedule(static) if (rows * channels > kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t o = r * channels;
    for (int64_t c = 0; c < channels; ++c) {
      const T v = x[o + c] + bias[c];
      dx[o + c] = dy[o + c] * gelu_grad(v);
      if (y) y[o + c] = gelu(v);
    }
  }
}

template void gelu_forward<float>(int64_t, const float*, float*);
template void gelu_forward<double>(int64_t, const double*, double*);
template void gelu_backward<float>(int64_t, const float*, const float*, float*);
template void gelu_backward<double>(int64_t, const double*, const double*, double*);
template void bias_gelu_forward<float>(int64_t, int64_t, const float*, const float*, float*);
template void bias_gelu_forward<double>(int64_t, int64_t, const double*, const double*, double*);
template void bias_gelu_backward<float>(int64_t, int64_t, const float*, const float*, const float*,
                                        float*, float*);
template void bias_gelu_backward<double>(int64_t, int64_t, const double*, const double*,
                                         const double*, double*, double*);

}  // namespace kernels::cpu
