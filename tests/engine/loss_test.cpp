// mse_loss and huber_loss: every reduction against a plain reference (Huber on both sides of
// delta and for several deltas), float32, gradients by finite differences (away from the
// |d| = delta seam), the target receiving no gradient, and shape/delta errors.
#include <cmath>

#include "tests/common/check.h"

using namespace engine;
using testing_util::all_close;
using testing_util::grad_check;
using testing_util::random;

namespace {

std::vector<double> ref_elems(const Tensor& p, const Tensor& t, bool huber, double delta) {
  std::vector<double> a = p.to_vector(), b = t.to_vector(), out;
  for (size_t i = 0; i < a.size(); ++i) {
    double d = a[i] - b[i];
    if (!huber) out.push_back(d * d);
    else out.push_back(std::abs(d) < delta ? 0.5 * d * d : delta * (std::abs(d) - 0.5 * delta));
  }
  return out;
}

double total(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s;
}

}  // namespace

TEST(Loss, MseAllReductions) {
  Tensor p = random({5, 3}, 1, -2, 2), t = random({5, 3}, 2, -2, 2);
  std::vector<double> e = ref_elems(p, t, false, 0);
  EXPECT_TRUE(all_close(mse_loss(p, t, Reduction::None).to_vector(), e, 1e-15, 0));
  EXPECT_NEAR(mse_loss(p, t, Reduction::Sum).item(), total(e), 1e-13);
  EXPECT_NEAR(mse_loss(p, t).item(), total(e) / 15.0, 1e-14);
  EXPECT_EQ(mse_loss(p, t).dim(), 0);
  EXPECT_EQ(mse_loss(p, t, Reduction::None).shape(), (Shape{5, 3}));
}

TEST(Loss, HuberBothBranchesAndSeveralDeltas) {
  // Differences spread over [-6, 6] so every delta below has elements on both branches.
  Tensor p = random({9, 5}, 3, -3, 3), t = random({9, 5}, 4, -3, 3);
  for (double delta : {0.3, 1.0, 2.5}) {
    std::vector<double> e = ref_elems(p, t, true, delta);
    int quad = 0;
    for (double d : (p - t).to_vector()) quad += std::abs(d) < delta;
    ASSERT_GT(quad, 0) << "no element on the quadratic branch for delta " << delta;
    ASSERT_LT(quad, 45) << "no element on the linear branch for delta " << delta;
    EXPECT_TRUE(all_close(huber_loss(p, t, delta, Reduction::None).to_vector(), e, 1e-14, 1e-15));
    EXPECT_NEAR(huber_loss(p, t, delta, Reduction::Sum).item(), total(e), 1e-13);
    EXPECT_NEAR(huber_loss(p, t, delta, Reduction::Mean).item(), total(e) / 45.0, 1e-14);
  }
  // Exactly at |d| = delta both branches agree: 0.5 delta^2.
  Tensor a = Tensor::from_vector(std::vector<double>{1.5, -1.5}, {2});
  Tensor z = Tensor::zeros({2}, DType::Float64);
  EXPECT_TRUE(all_close(huber_loss(a, z, 1.5, Reduction::None).to_vector(), {1.125, 1.125}, 0, 0));
}

TEST(Loss, Float32) {
  Tensor p = random({33, 2}, 5, -3, 3, DType::Float32),
         t = random({33, 2}, 6, -3, 3, DType::Float32);
  // A mean of 66 float terms: relative error a few 1e-7.
  EXPECT_NEAR(mse_loss(p, t).item(), total(ref_elems(p, t, false, 0)) / 66, 1e-5);
  EXPECT_NEAR(huber_loss(p, t, 0.7).item(), total(ref_elems(p, t, true, 0.7)) / 66, 1e-5);
  EXPECT_EQ(huber_loss(p, t).dtype(), DType::Float32);
}

TEST(Loss, GradCheck) {
  Tensor p = random({4, 3}, 7, -2, 2).requires_grad_();
  Tensor t = random({4, 3}, 8, -2, 2);
  for (Reduction r : {Reduction::Mean, Reduction::Sum, Reduction::None}) {
    EXPECT_TRUE(
        grad_check([&](const std::vector<Tensor>& in) { return mse_loss(in[0], t, r); }, {p}));
    // Finite differences are wrong across the seam |d| = delta; keep every |d| 1e-3 away.
    for (double delta : {0.5, 1.3}) {
      for (double d : (p.detach() - t).to_vector()) ASSERT_GT(std::abs(std::abs(d) - delta), 1e-3);
      EXPECT_TRUE(grad_check(
          [&](const std::vector<Tensor>& in) { return huber_loss(in[0], t, delta, r); }, {p}));
    }
  }
}

TEST(Loss, HuberGradientIsClampedDifference) {
  Tensor p = Tensor::from_vector(std::vector<double>{3.0, -0.2, 0.4, -5.0}, {4}).requires_grad_();
  Tensor t = Tensor::zeros({4}, DType::Float64);
  huber_loss(p, t, 1.0, Reduction::Sum).backward();
  EXPECT_TRUE(all_close(p.grad().to_vector(), {1.0, -0.2, 0.4, -1.0}, 1e-15, 0));
}

TEST(Loss, TargetGetsNoGradient) {
  Tensor p = random({3}, 9).requires_grad_();
  Tensor t = random({3}, 10).requires_grad_();
  add(mse_loss(p, t), huber_loss(p, t)).backward();
  EXPECT_TRUE(p.grad().defined());
  EXPECT_FALSE(t.grad().defined());
}

TEST(Loss, Errors) {
  Tensor p = random({4, 2}, 11);
  try {
    mse_loss(p, random({4}, 12));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("mse_loss"), std::string::npos) << m;
    EXPECT_NE(m.find("[4,2]"), std::string::npos) << m;
    EXPECT_NE(m.find("[4]"), std::string::npos) << m;
  }
  try {
    huber_loss(p, random({4, 2}, 13), 0.0);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("huber_loss"), std::string::npos) << m;
    EXPECT_NE(m.find("delta"), std::string::npos) << m;
  }
  EXPECT_THROW(huber_loss(p, random({4, 2}, 14, -1, 1, DType::Float32)), Error);
}
