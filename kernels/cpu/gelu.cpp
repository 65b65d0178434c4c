#include "kernels/cpu/gelu.h"

#include <cmath>

namespace kernels::cpu {

namespace {

constexpr int64_t kParallelMin = 1 << 14;  // erf is ~20 flops, so threads pay off earlier

template <class T>
T gelu(T v) {
  return T(0.5) * v * (T(1) + std::erf(v * T(0.70710678118654752440)));  // 1/sqrt(2)
}

template <class T>
T gelu_grad(T v) {
  const T cdf = T(0.5) * (T(1) + std::erf(v * T(0.70710678118654752440)));
  const T pdf = std::exp(T(-0.5) * v * v) * T(0.39894228040143267794);  // 1/sqrt(2 pi)
  return cdf + v * pdf;
}

}  // namespace

template <class T>
void gelu_forward(int64_t n, const T* x, T* y) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] = gelu(x[i]);
}

template <class T>
void gelu_backward(int64_t n, const T* x, const T* dy, T* dx) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * gelu_grad(x[i]);
}

template <class T>
void bias_gelu_forward(int64_t rows, int64_t channels, const T* x, const T* bias, T* y) {
#pragma omp parallel for schedule(static) if (rows * channels > kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * channels;
    T* yr = y + r * channels;
    for (int64_t c = 0; c < channels; ++c) yr[c] = gelu(xr[c] + bias[c]);
  }
}

template <class T>
void bias_gelu_backward(int64_t rows, int64_t channels, const T* x, const T* bias, const T* dy,
                        T* dx) {
#pragma omp parallel for schedule(static) if (rows * channels > kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t o = r * channels;
    for (int64_t c = 0; c < channels; ++c) dx[o + c] = dy[o + c] * gelu_grad(x[o + c] + bias[c]);
  }
}

template void gelu_forward<float>(int64_t, const float*, float*);
template void gelu_forward<double>(int64_t, const double*, double*);
template void gelu_backward<float>(int64_t, const float*, const float*, float*);
template void gelu_backward<double>(int64_t, const double*, const double*, double*);
template void bias_gelu_forward<float>(int64_t, int64_t, const float*, const float*, float*);
template void bias_gelu_forward<double>(int64_t, int64_t, const double*, const double*, double*);
template void bias_gelu_backward<float>(int64_t, int64_t, const float*, const float*, const float*,
                                        float*);
template void bias_gelu_backward<double>(int64_t, int64_t, const double*, const double*,
                                         const double*, double*);

}  // namespace kernels::cpu
