// gelu / bias_gelu: known values of the normal CDF, a reference through erfc (a different
// libm path than the kernel's erf), float32, the parallel path, bias_gelu against its composed
// twin gelu(x + b) forward and backward, finite-difference gradients, and argument errors.
#include <cmath>

#include "tests/common/check.h"

using namespace engine;
using testing_util::all_close;
using testing_util::expect_error;
using testing_util::grad_check;
using testing_util::random;

namespace {

// x * Phi(x) with Phi(x) = 0.5 erfc(-x / sqrt 2): accurate also for very negative x.
std::vector<double> ref_gelu(const std::vector<double>& x) {
  std::vector<double> y;
  for (double v : x) y.push_back(v * 0.5 * std::erfc(-v / std::sqrt(2.0)));
  return y;
}

}  // namespace

TEST(Gelu, KnownValues) {
  // Phi(1) = 0.841344746068543 and Phi(-1) = 0.158655253931457 (normal tables).
  Tensor x = Tensor::from_vector(std::vector<double>{0.0, 1.0, -1.0, 6.0, -9.0}, {5});
  std::vector<double> y = gelu(x).to_vector();
  EXPECT_EQ(y[0], 0.0);
  EXPECT_NEAR(y[1], 0.841344746068543, 1e-14);
  EXPECT_NEAR(y[2], -0.158655253931457, 1e-14);
  EXPECT_NEAR(y[3], 6.0, 1e-8);   // gelu(x) -> x for large x
  EXPECT_NEAR(y[4], 0.0, 1e-17);  // and -> 0 for very negative x
}

TEST(Gelu, MatchesReferenceFloat64AndFloat32) {
  Tensor x = random({3, 5, 7}, 1, -5, 5);
  // 1 - erf(...) loses relative precision for x << 0 where gelu is tiny: atol covers it.
  EXPECT_TRUE(all_close(gelu(x).to_vector(), ref_gelu(x.to_vector()), 1e-13, 1e-15));
  Tensor xf = x.to(DType::Float32);
  EXPECT_TRUE(all_close(gelu(xf).to_vector(), ref_gelu(xf.to_vector()), 1e-6, 1e-7));
  // Parallel path and a non-contiguous input.
  Tensor big = random({130, 257}, 2, -4, 4).transpose(0, 1);
  EXPECT_TRUE(all_close(gelu(big).to_vector(), ref_gelu(big.to_vector()), 1e-13, 1e-15));
}

TEST(Gelu, GradCheck) {
  Tensor x = random({4, 5}, 3, -3, 3).requires_grad_();
  EXPECT_TRUE(grad_check([](const std::vector<Tensor>& in) { return gelu(in[0]); }, {x}));
  // gelu'(0) = 0.5 exactly.
  Tensor z = Tensor::zeros({1}, DType::Float64).requires_grad_();
  sum(gelu(z)).backward();
  EXPECT_EQ(z.grad().item(), 0.5);
}

TEST(BiasGelu, EqualsComposedGeluOfSum) {
  // NHWC activation [2, 3, 4, 5] with a per-channel bias [5].
  Tensor x = random({2, 3, 4, 5}, 4, -3, 3).requires_grad_();
  Tensor b = random({5}, 5, -1, 1).requires_grad_();
  Tensor g = random({2, 3, 4, 5}, 6);
  Tensor fused = bias_gelu(x, b);
  fused.backward(g);
  Tensor gx = x.grad(), gb = b.grad();
  x.zero_grad(), b.zero_grad();
  Tensor composed = gelu(add(x, b));
  composed.backward(g);
  EXPECT_TRUE(all_close(fused, composed, 1e-15, 1e-15));
  EXPECT_TRUE(all_close(gx, x.grad(), 1e-15, 1e-15));
  EXPECT_TRUE(all_close(gb, b.grad(), 1e-13, 1e-14));

  Tensor xf = x.detach().to(DType::Float32), bf = b.detach().to(DType::Float32);
  EXPECT_TRUE(all_close(bias_gelu(xf, bf).to_vector(),
                        ref_gelu(add(xf, bf).to(DType::Float64).to_vector()), 1e-6, 1e-7));
}

TEST(BiasGelu, GradCheck) {
  Tensor x = random({3, 2, 7}, 7, -2, 2).requires_grad_();
  Tensor b = random({7}, 8, -1, 1).requires_grad_();
  EXPECT_TRUE(
      grad_check([](const std::vector<Tensor>& in) { return bias_gelu(in[0], in[1]); }, {x, b}));
  // 1-D input: one row.
  Tensor x1 = random({7}, 9).requires_grad_();
  EXPECT_TRUE(
      grad_check([](const std::vector<Tensor>& in) { return bias_gelu(in[0], in[1]); }, {x1, b}));
}

TEST(BiasGelu, Errors) {
  Tensor x = random({2, 4}, 10);
  try {
    bias_gelu(x, random({3}, 11));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("bias_gelu"), std::string::npos) << m;
    EXPECT_NE(m.find("[3]"), std::string::npos) << m;
    EXPECT_NE(m.find("[2,4]"), std::string::npos) << m;
  }
  EXPECT_THROW(bias_gelu(x, random({4}, 12, -1, 1, DType::Float32)), Error);
  EXPECT_THROW(gelu(Tensor::zeros({2}, DType::Int64)), Error);
}

// bias_gelu_ (in place, no autograd) writes exactly what bias_gelu returns, float32 (its
// 8-wide path, 13 channels: a tail block per row) and float64, and refuses a tensor autograd
// needs, a non-contiguous view, or a bias of the wrong size.
TEST(BiasGelu, InPlaceEqualsOutOfPlace) {
  for (DType t : {DType::Float32, DType::Float64}) {
    Tensor x = random({37, 13}, 20, -4, 4).to(t), b = random({13}, 21).to(t);
    Tensor expected = bias_gelu(x, b);
    Tensor y = x.clone();
    bias_gelu_(y, b);
    EXPECT_TRUE(all_close(y, expected, 0, 0)) << t;
  }
  Tensor leaf = random({4, 3}, 22).requires_grad_();
  expect_error([&] { bias_gelu_(leaf, random({3}, 23)); }, {"requires a gradient"});
  {
    NoGradGuard no_grad;  // without a tape it is allowed
    EXPECT_NO_THROW(bias_gelu_(leaf, random({3}, 23)));
  }
  Tensor wide = random({4, 6}, 24);
  expect_error([&] { bias_gelu_(wide.slice(1, 0, 3), random({3}, 25)); }, {"contiguous"});
  expect_error([&] { bias_gelu_(wide, random({5}, 26)); }, {"does not match"});
}
