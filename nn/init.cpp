// nn/init.cpp — see init.h.
//
// Value i of a draw is a pure function of (generator seed, first counter + i) (kernels/rng.h),
// so filling runs in parallel and gives the same numbers on any thread count; float32 CPU
// tensors (every model parameter at construction) are written in place, anything else goes
// through a float64 host buffer and one copy.
#include "nn/init.h"

#include <cmath>
#include <vector>

#include "kernels/rng.h"

namespace nn::init {

namespace {

constexpr int64_t kParallelMin = 1 << 14;

// t[i] = f(i) for every element, i in row-major order.
template <class F>
void fill_with(const Tensor& t, F f) {
  engine::NoGradGuard no_grad;
  const int64_t n = t.numel();
  if (t.device().is_cpu() && t.is_contiguous() && t.dtype() == engine::DType::Float32) {
    float* p = t.data<float>();
#pragma omp parallel for schedule(static) if (n > kParallelMin)
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<float>(f(i));
    return;
  }
  std::vector<double> v(n);
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) v[i] = f(i);
  t.copy_(Tensor::from_vector(v, t.shape()));
}

// Standard normals for elements [0, n): Box-Muller on the uniforms of counters (first + 2k,
// first + 2k + 1) gives elements 2k (cos) and 2k + 1 (sin), one log and one sincos per two
// values; then t[i] = f(z_i, i).
template <class F>
void fill_normal(const Tensor& t, uint64_t seed, uint64_t first, F f) {
  engine::NoGradGuard no_grad;
  const int64_t n = t.numel(), pairs = (n + 1) / 2;
  std::vector<double> host;
  const bool direct = t.device().is_cpu() && t.is_contiguous() && t.dtype() == engine::DType::Float32;
  float* p = direct ? t.data<float>() : nullptr;
  if (!direct) host.resize(n);
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t k = 0; k < pairs; ++k) {
    const double u1 = kernels::rng_uniform(seed, first + 2 * k);
    const double u2 = kernels::rng_uniform(seed, first + 2 * k + 1);
    const double r = std::sqrt(-2.0 * std::log(1.0 - u1));  // 1-u1 in (0,1]: finite
    // The angle in float: sincosf is ~3x cheaper than sincos and float32 is what is stored.
    const float a = static_cast<float>(6.283185307179586 * u2);
    const double z[2] = {r * std::cos(a), r * std::sin(a)};
    for (int64_t j = 0; j < 2 && 2 * k + j < n; ++j) {
      const int64_t i = 2 * k + j;
      const double v = f(z[j], i);
      if (direct) p[i] = static_cast<float>(v);
      else host[i] = v;
    }
  }
  if (!direct) t.copy_(Tensor::from_vector(host, t.shape()));
}

void check_weight(const Tensor& w, const char* fn) {
  engine::check(w.defined() && w.dim() >= 2, fn, ": needs a weight with at least 2 dims, got ",
                w.defined() ? w.shape() : engine::Shape{});
}

}  // namespace

int64_t fan_in(const Tensor& w) {
  check_weight(w, "fan_in");
  return w.shape()[0] == 0 ? 0 : w.numel() / w.shape()[0];
}

int64_t fan_out(const Tensor& w) {
  check_weight(w, "fan_out");
  return w.shape().back() == 0 ? 0 : w.numel() / w.shape().back();
}

void constant_(const Tensor& t, double value) { t.fill_(value); }
void zeros_(const Tensor& t) { t.fill_(0.0); }
void ones_(const Tensor& t) { t.fill_(1.0); }

void uniform_(const Tensor& t, double low, double high, Generator& gen) {
  const uint64_t seed = gen.seed(), first = gen.reserve(t.numel());
  fill_with(t, [=](int64_t i) { return low + (high - low) * kernels::rng_uniform(seed, first + i); });
}

void normal_(const Tensor& t, double mean, double std, Generator& gen) {
  const uint64_t seed = gen.seed(), first = gen.reserve(2 * ((t.numel() + 1) / 2));
  fill_normal(t, seed, first, [=](double z, int64_t) { return mean + std * z; });
}

void trunc_normal_(const Tensor& t, double mean, double std, double a, double b, Generator& gen) {
  engine::check(a < b && std > 0, "trunc_normal_: needs a < b and std > 0 (got a=", a, ", b=", b,
                ", std=", std, ")");
  // Rejection is fine for the bounds models use (|a|, |b| >= 2 std accept > 95% of draws);
  // bounds far in the tail would spin, so they are refused.
  engine::check((b - mean) / std > -3 && (a - mean) / std < 3, "trunc_normal_: [", a, ", ", b,
                "] is more than 3 std away from the mean; rejection sampling would not end");
  const uint64_t seed = gen.seed(), first = gen.reserve(2 * ((t.numel() + 1) / 2));
  fill_normal(t, seed, first, [=](double z, int64_t i) {
    // A rejected element redraws from its own counter under derived seeds, so every element
    // still depends only on (seed, counter).
    double x = mean + std * z;
    for (uint64_t attempt = 1; x < a || x > b; ++attempt)
      x = mean + std * kernels::rng_normal(seed + attempt * 0x632be59bd9b4e019ULL, first + i);
    return x;
  });
}

void kaiming_uniform_(const Tensor& w, double a, Generator& gen) {
  const double gain = std::sqrt(2.0 / (1.0 + a * a));
  const int64_t fan = fan_in(w);
  engine::check(fan > 0, "kaiming_uniform_: weight ", w.shape(), " has fan_in 0");
  const double bound = gain * std::sqrt(3.0 / static_cast<double>(fan));
  uniform_(w, -bound, bound, gen);
}

void kaiming_normal_fan_out_relu_(const Tensor& w, Generator& gen) {
  const int64_t fan = fan_out(w);
  engine::check(fan > 0, "kaiming_normal_: weight ", w.shape(), " has fan_out 0");
  normal_(w, 0.0, std::sqrt(2.0 / static_cast<double>(fan)), gen);
}

}  // namespace nn::init
