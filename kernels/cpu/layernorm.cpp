#include "kernels/cpu/layernorm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/parallel.h"

namespace kernels::cpu {


template <class T>
void layernorm_forward(int64_t m, int64_t c, const T* x, const T* weight, const T* bias,
                       double eps, T* y, T* mean, T* rstd) {
  // Missing affine parameters become 1 and 0 so the row loop has no branches.
  std::vector<T> ones, zeros;
  if (!weight) ones.assign(c, T(1)), weight = ones.data();
  if (!bias) zeros.assign(c, T(0)), bias = zeros.data();
  const T inv_c = T(1) / static_cast<T>(c);
  const T eps_t = static_cast<T>(eps);
#pragma omp parallel for schedule(static) if (m * c > kParallelWork)
  for (int64_t r = 0; r < m; ++r) {
    const T* xr = x + r * c;
    T* yr = y ? y + r * c : nullptr;
    // Two passes over a row that sits in L1: the mean first, then the variance around it
    // (no cancellation as in E[x^2] - E[x]^2).
    T sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t ch = 0; ch < c; ++ch) sum += xr[ch];
    const T mu = sum * inv_c;
    T sq = 0;
#pragma omp simd reduction(+ : sq)
    for (int64_t ch = 0; ch < c; ++ch) {
      const T d = xr[ch] - mu;
      sq += d * d;
    }
    const T rs = T(1) / std::sqrt(sq * inv_c + eps_t);
    if (y != nullptr) {  // null: the statistics only
#pragma omp simd
      for (int64_t ch = 0; ch < c; ++ch) yr[ch] = (xr[ch] - mu) * rs * weight[ch] + bias[ch];
    }
    mean[r] = mu;
    rstd[r] = rs;
  }
}

template <class T>
void layernorm_backward(int64_t m, int64_t c, const T* x, const T* dy, const T* mean,
                        const T* rstd, const T* weight, T* dx, T* dweight, T* dbias) {
  std::vector<T> ones;
  if (!weight) ones.assign(c, T(1)), weight = ones.data();
  const bool want_params = dweight || dbias;
  const T inv_c = T(1) / static_cast<T>(c);
  // pw, pb: this chunk's dweight and dbias partial sums (column_sums2 adds the chunks up).
  auto rows = [&](int64_t r0, int64_t r1, T* pw, T* pb) {
    for (int64_t r = r0; r < r1; ++r) {
      const T* xr = x + r * c;
      const T* gr = dy + r * c;
      const T mu = mean[r], rs = rstd[r];
      // Pass 1: the two row means dx needs, and the parameter partial sums.
      T sg = 0, sgx = 0;  // sum(dy * w), sum(dy * w * xhat)
      if (want_params) {
#pragma omp simd reduction(+ : sg, sgx)
        for (int64_t ch = 0; ch < c; ++ch) {
          const T xh = (xr[ch] - mu) * rs;
          const T g = gr[ch] * weight[ch];
          sg += g;
          sgx += g * xh;
          pw[ch] += gr[ch] * xh;
          pb[ch] += gr[ch];
        }
      } else {
#pragma omp simd reduction(+ : sg, sgx)
        for (int64_t ch = 0; ch < c; ++ch) {
          const T g = gr[ch] * weight[ch];
          sg += g;
          sgx += g * (xr[ch] - mu) * rs;
        }
      }
      if (!dx) continue;
      // Pass 2 (row still in L1): dx = rstd * (g - mean(g) - xhat * mean(g * xhat)).
      const T a = sg * inv_c, b = sgx * inv_c;
      T* dr = dx + r * c;
#pragma omp simd
      for (int64_t ch = 0; ch < c; ++ch) {
        const T xh = (xr[ch] - mu) * rs;
        dr[ch] = rs * (gr[ch] * weight[ch] - a - xh * b);
      }
    }
  };
  std::vector<T> sw(c), sb(c);
  column_sums2<T>(m, c, rows, sw.data(), sb.data());
  if (dweight) std::copy(sw.begin(), sw.end(), dweight);
  if (dbias) std::copy(sb.begin(), sb.end(), dbias);
}

template void layernorm_forward<float>(int64_t, int64_t, const float*, const float*,
                                       const float*, double, float*, float*, float*);
template void layernorm_forward<double>(int64_t, int64_t, const double*, const double*,
                                        const double*, double, double*, double*, double*);
template void layernorm_backward<float>(int64_t, int64_t, const float*, const float*,
                                        const float*, const float*, const float*, float*, float*,
                                        float*);
template void layernorm_backward<double>(int64_t, int64_t, const double*, const double*,
                                         const double*, const double*, const double*, double*,
                                         double*, double*);

}  // namespace kernels::cpu
