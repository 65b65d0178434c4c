#include "tests/common/check.h"

#include <cmath>
#include <sstream>

namespace testing_util {

using namespace engine;

Tensor random(const Shape& shape, uint64_t seed, double low, double high, DType dtype) {
  Generator gen(seed);
  return Tensor::rand(shape, gen, low, high, dtype);
}

::testing::AssertionResult all_close(const std::vector<double>& got,
                                     const std::vector<double>& ref, double rtol, double atol) {
  if (got.size() != ref.size())
    return ::testing::AssertionFailure() << "size " << got.size() << " vs " << ref.size();
  double worst = 0;
  size_t wi = 0;
  bool ok = true;
  for (size_t i = 0; i < got.size(); ++i) {
    double err = std::abs(got[i] - ref[i]);
    double excess = err - (atol + rtol * std::abs(ref[i]));
    if (!(excess <= 0)) {  // also catches NaN
      if (ok || excess > worst || std::isnan(excess)) worst = excess, wi = i;
      ok = false;
    }
  }
  if (ok) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "element " << wi << ": got " << got[wi] << ", expected "
                                       << ref[wi] << " (rtol " << rtol << ", atol " << atol << ")";
}

::testing::AssertionResult all_close(const Tensor& got, const Tensor& ref, double rtol,
                                     double atol) {
  if (got.shape() != ref.shape())
    return ::testing::AssertionFailure() << "shape " << cat(got.shape()) << " vs "
                                         << cat(ref.shape());
  return all_close(got.to_vector(), ref.to_vector(), rtol, atol);
}

::testing::AssertionResult grad_check(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                                      const std::vector<Tensor>& inputs, double eps, double rtol,
                                      double atol) {
  for (const Tensor& x : inputs) x.zero_grad();
  Tensor y = f(inputs);
  Tensor w = random(y.shape(), 12345, -1.0, 1.0, y.dtype());
  sum(mul(y, w)).backward();

  for (size_t k = 0; k < inputs.size(); ++k) {
    const Tensor& x = inputs[k];
    if (!x.requires_grad()) continue;
    if (!x.grad().defined())
      return ::testing::AssertionFailure() << "input " << k << " received no gradient";
    std::vector<double> analytic = x.grad().to_vector();
    std::vector<double> numeric(x.numel());
    double* p = x.data<double>();  // inputs are contiguous float64 leaves
    NoGradGuard ng;
    for (int64_t i = 0; i < x.numel(); ++i) {
      double old = p[i];
      p[i] = old + eps;
      double fp = sum(mul(f(inputs), w)).item();
      p[i] = old - eps;
      double fm = sum(mul(f(inputs), w)).item();
      p[i] = old;
      numeric[i] = (fp - fm) / (2 * eps);
    }
    auto r = all_close(analytic, numeric, rtol, atol);
    if (!r) return ::testing::AssertionFailure() << "input " << k << " gradient: " << r.message();
  }
  return ::testing::AssertionSuccess();
}

void expect_error(const std::function<void()>& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "expected an engine::Error";
  } catch (const Error& e) {
    std::string m = e.what();
    for (const auto& p : parts)
      EXPECT_NE(m.find(p), std::string::npos) << "'" << p << "' not in: " << m;
  }
}

}  // namespace testing_util
