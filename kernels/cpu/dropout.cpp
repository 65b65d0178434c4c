#include "kernels/cpu/dropout.h"

#include "kernels/rng.h"

namespace kernels::cpu {

namespace {
constexpr int64_t kParallelMin = 1 << 14;  // the hash is ~10 multiplies per element
}

template <class T>
void dropout_forward(int64_t n, const T* x, uint64_t seed, uint64_t first, double p, T scale, T* y,
                     T* mask) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const T m = rng_uniform(seed, first + static_cast<uint64_t>(i)) >= p ? scale : T(0);
    mask[i] = m;
    y[i] = x[i] * m;
  }
}

template <class T>
void dropout_backward(int64_t n, const T* dy, const T* mask, T* dx) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * mask[i];
}

template <class T>
void drop_path_forward(int64_t samples, int64_t per_sample, const T* x, uint64_t seed,
                       uint64_t first, double p, T scale, T* y, T* sample_scale) {
  for (int64_t s = 0; s < samples; ++s)
    sample_scale[s] = rng_uniform(seed, first + static_cast<uint64_t>(s)) >= p ? scale : T(0);
  drop_path_backward(samples, per_sample, x, sample_scale, y);  // the same row scaling
}

template <class T>
void drop_path_backward(int64_t samples, int64_t per_sample, const T* dy, const T* sample_scale,
                        T* dx) {
#pragma omp parallel for schedule(static) if (samples * per_sample > kParallelMin)
  for (int64_t s = 0; s < samples; ++s) {
    const T m = sample_scale[s];
    const T* g = dy + s * per_sample;
    T* d = dx + s * per_sample;
    for (int64_t i = 0; i < per_sample; ++i) d[i] = g[i] * m;
  }
}

template void dropout_forward<float>(int64_t, const float*, uint64_t, uint64_t, double, float,
                                     float*, float*);
template void dropout_forward<double>(int64_t, const double*, uint64_t, uint64_t, double, double,
                                      double*, double*);
template void dropout_backward<float>(int64_t, const float*, const float*, float*);
template void dropout_backward<double>(int64_t, const double*, const double*, double*);
template void drop_path_forward<float>(int64_t, int64_t, const float*, uint64_t, uint64_t, double,
                                       float, float*, float*);
template void drop_path_forward<double>(int64_t, int64_t, const double*, uint64_t, uint64_t, double,
                                        double, double*, double*);
template void drop_path_backward<float>(int64_t, int64_t, const float*, const float*, float*);
template void drop_path_backward<double>(int64_t, int64_t, const double*, const double*, double*);

}  // namespace kernels::cpu
