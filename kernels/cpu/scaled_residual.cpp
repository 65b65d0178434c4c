#include "kernels/cpu/scaled_residual.h"

#include <vector>

#include "kernels/cpu/parallel.h"

namespace kernels::cpu {

template <class T>
void scaled_residual_forward(int64_t samples, int64_t rows, int64_t c, const T* x, const T* h,
                             const T* bias, const T* gamma, const T* sample_scale, T* y) {
  std::vector<T> zeros;
  if (!bias) zeros.assign(c, T(0)), bias = zeros.data();
  const int64_t m = samples * rows;
#pragma omp parallel for schedule(static) if (m * c > kParallelWork)
  for (int64_t r = 0; r < m; ++r) {
    const T s = sample_scale ? sample_scale[r / rows] : T(1);
    const T* xr = x + r * c;
    const T* hr = h + r * c;
    T* yr = y + r * c;
#pragma omp simd
    for (int64_t ch = 0; ch < c; ++ch) yr[ch] = xr[ch] + s * gamma[ch] * (hr[ch] + bias[ch]);
  }
}

template <class T>
void scaled_residual_backward(int64_t samples, int64_t rows, int64_t c, const T* dy, const T* h,
                              const T* bias, const T* gamma, const T* sample_scale, T* dh,
                              T* sum_dy, T* sum_dyv) {
  std::vector<T> zeros;
  if (!bias) zeros.assign(c, T(0)), bias = zeros.data();
  // pa, pb: this chunk's partial column sums (column_sums2 adds the chunks in order).
  auto chunk = [&](int64_t r0, int64_t r1, T* pa, T* pb) {
    for (int64_t r = r0; r < r1; ++r) {
      const T s = sample_scale ? sample_scale[r / rows] : T(1);
      const T* gr = dy + r * c;
      const T* hr = h + r * c;
#pragma omp simd
      for (int64_t ch = 0; ch < c; ++ch) {
        const T sg = s * gr[ch];
        pa[ch] += sg;
        pb[ch] += sg * (hr[ch] + bias[ch]);
      }
      if (dh) {
        T* dr = dh + r * c;
#pragma omp simd
        for (int64_t ch = 0; ch < c; ++ch) dr[ch] = s * gamma[ch] * gr[ch];
      }
    }
  };
  column_sums2<T>(samples * rows, c, chunk, sum_dy, sum_dyv);
}

#define INSTANTIATE(T)                                                                        \
  template void scaled_residual_forward<T>(int64_t, int64_t, int64_t, const T*, const T*,     \
                                           const T*, const T*, const T*, T*);                 \
  template void scaled_residual_backward<T>(int64_t, int64_t, int64_t, const T*, const T*,    \
                                            const T*, const T*, const T*, T*, T*, T*);
INSTANTIATE(float)
INSTANTIATE(double)
#undef INSTANTIATE

}  // namespace kernels::cpu
