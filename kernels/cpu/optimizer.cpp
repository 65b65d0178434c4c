// kernels/cpu/optimizer.cpp — see optimizer.h. Each loop is one pass over contiguous arrays
// with loop-invariant branches hoisted, so it vectorises (AVX2) and splits across threads.
#include "kernels/cpu/optimizer.h"

#include <cmath>

namespace kernels::cpu {

namespace {
constexpr int64_t kParallelMin = 1 << 16;  // below this, threads cost more than they save
}

template <class T>
void sgd_update(int64_t n, T* param, const T* grad, T* buf, double lr, double momentum,
                double dampening, double weight_decay, bool nesterov, bool first_step) {
  // Scalars are cast to T once, as PyTorch casts a Python float for a float tensor.
  const T wd = static_cast<T>(weight_decay), mom = static_cast<T>(momentum);
  const T keep = static_cast<T>(1.0 - dampening), neg_lr = static_cast<T>(-lr);
  if (momentum == 0) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
    for (int64_t i = 0; i < n; ++i) {
      T d = weight_decay != 0 ? grad[i] + wd * param[i] : grad[i];
      param[i] = param[i] + neg_lr * d;
    }
    return;
  }
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    T d = weight_decay != 0 ? grad[i] + wd * param[i] : grad[i];
    T b = first_step ? d : buf[i] * mom + keep * d;  // torch.clone(d_p) on the first step
    buf[i] = b;
    d = nesterov ? d + mom * b : b;
    param[i] = param[i] + neg_lr * d;
  }
}

template <class T>
void adam_update(int64_t n, T* param, const T* grad, T* exp_avg, T* exp_avg_sq, double lr,
                 double beta1, double beta2, double eps, double weight_decay, bool decoupled,
                 int64_t step) {
  const double bias_correction1 = 1.0 - std::pow(beta1, static_cast<double>(step));
  const double bias_correction2 = 1.0 - std::pow(beta2, static_cast<double>(step));
  const T neg_step_size = static_cast<T>(-(lr / bias_correction1));
  const T bc2_sqrt = static_cast<T>(std::sqrt(bias_correction2));
  const T b1 = static_cast<T>(beta1), one_minus_b1 = static_cast<T>(1.0 - beta1);
  const T b2 = static_cast<T>(beta2), one_minus_b2 = static_cast<T>(1.0 - beta2);
  const T e = static_cast<T>(eps);
  const T l2 = static_cast<T>(decoupled ? 0.0 : weight_decay);
  const T shrink = static_cast<T>(1.0 - lr * weight_decay);  // AdamW's p.mul_(1 - lr*wd)
  const bool do_shrink = decoupled && weight_decay != 0;
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    T p = param[i];
    T g = grad[i];
    if (do_shrink) p = p * shrink;
    else if (l2 != 0) g = g + l2 * p;  // grad.add(param, alpha=weight_decay)
    T m = exp_avg[i] * b1 + one_minus_b1 * g;
    T v = exp_avg_sq[i] * b2 + one_minus_b2 * g * g;  // addcmul_(grad, grad, value=1-beta2)
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    T denom = std::sqrt(v) / bc2_sqrt + e;
    param[i] = p + neg_step_size * m / denom;  // addcdiv_: self + value * t1 / t2
  }
}

template void sgd_update<float>(int64_t, float*, const float*, float*, double, double, double,
                                double, bool, bool);
template void sgd_update<double>(int64_t, double*, const double*, double*, double, double,
                                 double, double, bool, bool);
template void adam_update<float>(int64_t, float*, const float*, float*, float*, double, double,
                                 double, double, double, bool, int64_t);
template void adam_update<double>(int64_t, double*, const double*, double*, double*, double,
                                  double, double, double, double, bool, int64_t);

}  // namespace kernels::cpu
