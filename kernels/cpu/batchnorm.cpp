#include "kernels/cpu/batchnorm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/parallel.h"

namespace kernels::cpu {

namespace {

// The forward's per-channel affine, pre = (x - mean) * scale + shift with scale = invstd *
// weight, built the same way by the forward and by the backward of a fused ReLU, which
// recomputes its mask pre > 0 from x: std::fma rounds once wherever it runs, so both sides see
// the very same float (a contraction the compiler chose in one loop and not the other could
// flip an element that sits on 0).
template <class T>
struct Affine {
  std::vector<T> scale, shift;
  Affine(int64_t c, const T* invstd, const T* weight, const T* bias) : scale(c), shift(c) {
    for (int64_t ch = 0; ch < c; ++ch) {
      scale[ch] = invstd[ch] * (weight ? weight[ch] : T(1));
      shift[ch] = bias ? bias[ch] : T(0);
    }
  }
};
template <class T>
inline T affine(T x, T mean, T scale, T shift) {
  return std::fma(x - mean, scale, shift);
}

}  // namespace

template <class T>
void batchnorm_stats(int64_t m, int64_t c, const T* x, T* mean, T* var) {
  // s1, s2 = sum d, sum d^2 per channel, d = x - x[0, ch] (the shift: no cancellation when the
  // mean is large against the spread).
  std::vector<double> s1(c), s2(c);
  column_sums2<double>(
      m, c,
      [&](int64_t r0, int64_t r1, double* a, double* b) {
        for (int64_t r = r0; r < r1; ++r) {
          const T* xr = x + r * c;
          for (int64_t ch = 0; ch < c; ++ch) {
            const double d = static_cast<double>(xr[ch]) - static_cast<double>(x[ch]);
            a[ch] += d;
            b[ch] += d * d;
          }
        }
      },
      s1.data(), s2.data());
  for (int64_t ch = 0; ch < c; ++ch) {
    const double dm = s1[ch] / static_cast<double>(m);  // mean of the shifted data
    mean[ch] = static_cast<T>(static_cast<double>(x[ch]) + dm);
    var[ch] = static_cast<T>(std::max(s2[ch] / static_cast<double>(m) - dm * dm, 0.0));
  }
}

template <class T>
void batchnorm_invstd(int64_t c, const T* var, double eps, T* invstd) {
  for (int64_t ch = 0; ch < c; ++ch)
    invstd[ch] = static_cast<T>(1.0 / std::sqrt(static_cast<double>(var[ch]) + eps));
}

template <class T>
void batchnorm_update_running(int64_t m, int64_t c, const T* mean, const T* var, double momentum,
                              T* running_mean, T* running_var) {
  const double unbias = static_cast<double>(m) / static_cast<double>(m - 1);
  for (int64_t ch = 0; ch < c; ++ch) {
    if (running_mean)
      running_mean[ch] = static_cast<T>((1 - momentum) * running_mean[ch] + momentum * mean[ch]);
    if (running_var)
      running_var[ch] =
          static_cast<T>((1 - momentum) * running_var[ch] + momentum * var[ch] * unbias);
  }
}

template <class T>
void batchnorm_training_stats(int64_t m, int64_t c, const T* x, double eps, double momentum,
                              T* mean, T* invstd, T* running_mean, T* running_var) {
  std::vector<T> var(c);
  batchnorm_stats(m, c, x, mean, var.data());
  batchnorm_invstd(c, var.data(), eps, invstd);
  batchnorm_update_running(m, c, mean, var.data(), momentum, running_mean, running_var);
}

template <class T>
void batchnorm_forward(int64_t m, int64_t c, const T* x, const T* mean, const T* invstd,
                       const T* weight, const T* bias, const T* residual, bool relu, T* y) {
  // Fold weight into the scale once per channel; the row loop is then one sub and one FMA.
  const Affine<T> af(c, invstd, weight, bias);
  const T* sc = af.scale.data();
  const T* sh = af.shift.data();
#pragma omp parallel for schedule(static) if (m * c > kParallelWork)
  for (int64_t r = 0; r < m; ++r) {
    const T* xr = x + r * c;
    const T* zr = residual ? residual + r * c : nullptr;
    T* yr = y + r * c;
    for (int64_t ch = 0; ch < c; ++ch) yr[ch] = affine(xr[ch], mean[ch], sc[ch], sh[ch]);
    if (zr)
      for (int64_t ch = 0; ch < c; ++ch) yr[ch] += zr[ch];
    if (relu)
      for (int64_t ch = 0; ch < c; ++ch) yr[ch] = yr[ch] > T(0) ? yr[ch] : T(0);  // NaN -> 0
  }
}

namespace {

// batchnorm_backward with the ReLU mask as a compile-time choice, so that every loop stays a
// straight vectorisable one: kRelu = false is the plain BatchNorm backward.
template <bool kRelu, class T>
void backward_impl(int64_t m, int64_t c, const T* x, const T* dy, const T* mean, const T* invstd,
                   const T* weight, const T* bias, bool training, T* dx, T* dweight, T* dbias) {
  // With a fused ReLU the gradient that reaches the normalisation is dy where the forward's
  // pre-activation was > 0 and 0 elsewhere (the mask recomputed from x, see Affine; without
  // the ReLU it is not built).
  const Affine<T> af(kRelu ? c : 0, invstd, weight, bias);
  const T* sc = af.scale.data();
  const T* sh = af.shift.data();
  auto grad = [=](T g, T xv, int64_t ch) {
    if constexpr (kRelu) return affine(xv, mean[ch], sc[ch], sh[ch]) > T(0) ? g : T(0);
    else return g;
  };
  // Column sums: sum(dy) and sum(dy * (x - mean)), needed by dbias, dweight and training dx.
  std::vector<double> sum_dy(c, 0.0), sum_dy_xmu(c, 0.0);
  // x is only read (and may be null otherwise) when dweight, training-mode dx or the ReLU
  // mask needs it.
  const bool need_xmu = dweight || (training && dx);
  if (dbias || need_xmu) {
    column_sums2<double>(
        m, c,
        [&](int64_t r0, int64_t r1, double* s1, double* s2) {
          // With the mask, each row's masked gradient goes through a small buffer first: GCC
          // vectorises the select and the double sums as two loops, not as one.
          std::vector<T> masked(kRelu ? c : 0);
          for (int64_t r = r0; r < r1; ++r) {
            const T* gr = dy + r * c;
            const T* xr = kRelu || need_xmu ? x + r * c : nullptr;
            if constexpr (kRelu) {
              for (int64_t ch = 0; ch < c; ++ch) masked[ch] = grad(gr[ch], xr[ch], ch);
              gr = masked.data();
            }
            if (!need_xmu) {
              for (int64_t ch = 0; ch < c; ++ch) s1[ch] += gr[ch];
              continue;
            }
            for (int64_t ch = 0; ch < c; ++ch) {
              const double g = gr[ch];
              s1[ch] += g;
              s2[ch] += g * (static_cast<double>(xr[ch]) - static_cast<double>(mean[ch]));
            }
          }
        },
        sum_dy.data(), sum_dy_xmu.data());
  }
  for (int64_t ch = 0; ch < c; ++ch) {
    if (dbias) dbias[ch] = static_cast<T>(sum_dy[ch]);
    if (dweight) dweight[ch] = static_cast<T>(sum_dy_xmu[ch] * invstd[ch]);
  }
  if (!dx) return;

  // dx = k * (dy - a - (x - mean) * b): k = weight * invstd; in training a = mean(dy) and
  // b = invstd^2 * mean(dy * (x - mean)) (the gradient through the batch statistics), in eval
  // a = b = 0.
  std::vector<T> k(c), a(c), b(c);
  const double inv_m = 1.0 / static_cast<double>(m);
  for (int64_t ch = 0; ch < c; ++ch) {
    const double is = invstd[ch];
    k[ch] = static_cast<T>(is * (weight ? static_cast<double>(weight[ch]) : 1.0));
    a[ch] = training ? static_cast<T>(sum_dy[ch] * inv_m) : T(0);
    b[ch] = training ? static_cast<T>(sum_dy_xmu[ch] * inv_m * is * is) : T(0);
  }
  const T* kp = k.data();
  const T* ap = a.data();
  const T* bp = b.data();
#pragma omp parallel for schedule(static) if (m * c > kParallelWork)
  for (int64_t r = 0; r < m; ++r) {
    const T* gr = dy + r * c;
    const T* xr = kRelu || training ? x + r * c : nullptr;
    T* dr = dx + r * c;
    if (!training) {
      for (int64_t ch = 0; ch < c; ++ch)
        dr[ch] = kp[ch] * grad(gr[ch], kRelu ? xr[ch] : T(0), ch);
      continue;
    }
    for (int64_t ch = 0; ch < c; ++ch)
      dr[ch] = kp[ch] * (grad(gr[ch], xr[ch], ch) - ap[ch] - (xr[ch] - mean[ch]) * bp[ch]);
  }
}

}  // namespace

template <class T>
void batchnorm_backward(int64_t m, int64_t c, const T* x, const T* dy, const T* mean,
                        const T* invstd, const T* weight, const T* bias, bool relu,
                        bool training, T* dx, T* dweight, T* dbias) {
  if (relu)
    backward_impl<true>(m, c, x, dy, mean, invstd, weight, bias, training, dx, dweight, dbias);
  else
    backward_impl<false>(m, c, x, dy, mean, invstd, weight, bias, training, dx, dweight, dbias);
}

template void batchnorm_stats<float>(int64_t, int64_t, const float*, float*, float*);
template void batchnorm_invstd<float>(int64_t, const float*, double, float*);
template void batchnorm_update_running<float>(int64_t, int64_t, const float*, const float*,
                                            double, float*, float*);
template void batchnorm_training_stats<float>(int64_t, int64_t, const float*, double, double,
                                               float*, float*, float*, float*);
template void batchnorm_forward<float>(int64_t, int64_t, const float*, const float*,
                                       const float*, const float*, const float*, const float*,
                                       bool, float*);
template void batchnorm_backward<float>(int64_t, int64_t, const float*, const float*,
                                      const float*, const float*, const float*, const float*,
                                      bool, bool, float*, float*, float*);
template void batchnorm_stats<double>(int64_t, int64_t, const double*, double*, double*);
template void batchnorm_invstd<double>(int64_t, const double*, double, double*);
template void batchnorm_update_running<double>(int64_t, int64_t, const double*, const double*,
                                            double, double*, double*);
template void batchnorm_training_stats<double>(int64_t, int64_t, const double*, double, double,
                                               double*, double*, double*, double*);
template void batchnorm_forward<double>(int64_t, int64_t, const double*, const double*,
                                        const double*, const double*, const double*,
                                        const double*, bool, double*);
template void batchnorm_backward<double>(int64_t, int64_t, const double*, const double*,
                                      const double*, const double*, const double*, const double*,
                                      bool, bool, double*, double*, double*);

}  // namespace kernels::cpu
