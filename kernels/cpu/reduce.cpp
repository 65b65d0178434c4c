#include "kernels/cpu/reduce.h"

#include "kernels/cpu/parallel.h"

#include <cmath>
#include <vector>

namespace kernels::cpu {

template <class T>
void reduce_sum(int64_t outer, int64_t r, int64_t inner, const T* x, T* out) {
  if (inner == 1) {
    // Row sums: each output is one contiguous run.
    parallel_for(outer, outer * r > (1 << 15), [=](int64_t o) {
      const T* p = x + o * r;
      double acc = 0;
      for (int64_t k = 0; k < r; ++k) acc += p[k];
      out[o] = static_cast<T>(acc);
    });
    return;
  }
  // Column sums: walk rows in order (contiguous, vectorised) adding into an accumulator row.
  // With one outer slice (e.g. BatchNorm statistics over N*H*W), threads split the rows and
  // their partial rows are added at the end.
  const int64_t work = outer * r * inner;
  if (outer == 1 && r >= 64 && work > (1 << 16)) {
    const int nt = max_threads();
    std::vector<double> part(static_cast<size_t>(nt) * inner, 0.0);
#pragma omp parallel for schedule(static, 1)
    for (int t = 0; t < nt; ++t) {
      double* acc = part.data() + static_cast<size_t>(t) * inner;
      int64_t k0 = r * t / nt, k1 = r * (t + 1) / nt;
      for (int64_t k = k0; k < k1; ++k) {
        const T* p = x + k * inner;
        for (int64_t i = 0; i < inner; ++i) acc[i] += p[i];
      }
    }
    for (int64_t i = 0; i < inner; ++i) {
      double s = 0;
      for (int t = 0; t < nt; ++t) s += part[static_cast<size_t>(t) * inner + i];
      out[i] = static_cast<T>(s);
    }
    return;
  }
  parallel_for(outer, work > (1 << 15), [=](int64_t o) {
    std::vector<double> acc(inner, 0.0);
    for (int64_t k = 0; k < r; ++k) {
      const T* p = x + (o * r + k) * inner;
      for (int64_t i = 0; i < inner; ++i) acc[i] += p[i];
    }
    for (int64_t i = 0; i < inner; ++i) out[o * inner + i] = static_cast<T>(acc[i]);
  });
}

template <class T>
void reduce_max(int64_t outer, int64_t r, int64_t inner, const T* x, T* out, int64_t* idx) {
#pragma omp parallel for schedule(static) if (outer * r * inner > (1 << 15))
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      const T* p = x + o * r * inner + i;
      T best = p[0];
      int64_t bi = 0;
      for (int64_t k = 1; k < r && !std::isnan(best); ++k) {
        T v = p[k * inner];
        if (v > best || std::isnan(v)) best = v, bi = k;
      }
      out[o * inner + i] = best;
      idx[o * inner + i] = bi;
    }
  }
}

template <class T>
void reduce_max_backward(int64_t outer, int64_t r, int64_t inner, const T* dy, const int64_t* idx,
                         T* dx) {
#pragma omp parallel for schedule(static) if (outer * r * inner > (1 << 15))
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t k = 0; k < r; ++k) {
      for (int64_t i = 0; i < inner; ++i) {
        int64_t j = o * inner + i;
        dx[(o * r + k) * inner + i] = idx[j] == k ? dy[j] : T(0);
      }
    }
  }
}

template void reduce_sum<float>(int64_t, int64_t, int64_t, const float*, float*);
template void reduce_sum<double>(int64_t, int64_t, int64_t, const double*, double*);
template void reduce_max<float>(int64_t, int64_t, int64_t, const float*, float*, int64_t*);
template void reduce_max<double>(int64_t, int64_t, int64_t, const double*, double*, int64_t*);
template void reduce_max_backward<float>(int64_t, int64_t, int64_t, const float*, const int64_t*,
                                         float*);
template void reduce_max_backward<double>(int64_t, int64_t, int64_t, const double*,
                                          const int64_t*, double*);

}  // namespace kernels::cpu
