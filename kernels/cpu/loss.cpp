#include "kernels/cpu/loss.h"

#include <algorithm>
#include <cmath>

namespace kernels::cpu {

namespace {
constexpr int64_t kParallelMin = 1 << 15;  // below this, threads cost more than they save
}

template <class T>
void huber_forward(int64_t n, const T* pred, const T* target, T delta, T* out) {
  const T half_delta = T(0.5) * delta;
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const T d = pred[i] - target[i], a = std::abs(d);
    out[i] = a < delta ? T(0.5) * d * d : delta * (a - half_delta);
  }
}

template <class T>
void huber_backward(int64_t n, const T* pred, const T* target, T delta, const T* dy, T* dpred) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) dpred[i] = dy[i] * std::clamp(pred[i] - target[i], -delta, delta);
}

template void huber_forward<float>(int64_t, const float*, const float*, float, float*);
template void huber_forward<double>(int64_t, const double*, const double*, double, double*);
template void huber_backward<float>(int64_t, const float*, const float*, float, const float*,
                                    float*);
template void huber_backward<double>(int64_t, const double*, const double*, double, const double*,
                                     double*);

}  // namespace kernels::cpu
