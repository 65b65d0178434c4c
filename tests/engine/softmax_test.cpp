// softmax / log_softmax: forward against a plain float64 reference along every dim (last dim
// = contiguous rows, other dims = the column-block path, inner > 256 = several blocks),
// stability on huge inputs, float32 tolerance, gradients by finite differences, errors.
#include <cmath>

#include "tests/common/check.h"

using namespace engine;
using testing_util::all_close;
using testing_util::grad_check;
using testing_util::random;

namespace {

// Plain reference: exp(x_k) / sum_j exp(x_j) computed in double on moderate inputs (no max
// subtraction, so it is independent of the kernel's stable form).
std::vector<double> ref_softmax(const std::vector<double>& x, const Shape& s, int64_t d, bool log) {
  int64_t outer = 1, inner = 1, n = s[d];
  for (int64_t i = 0; i < static_cast<int64_t>(s.size()); ++i) {
    if (i < d) outer *= s[i];
    if (i > d) inner *= s[i];
  }
  std::vector<double> y(x.size());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      double z = 0;
      for (int64_t k = 0; k < n; ++k) z += std::exp(x[(o * n + k) * inner + i]);
      for (int64_t k = 0; k < n; ++k) {
        double v = x[(o * n + k) * inner + i];
        y[(o * n + k) * inner + i] = log ? v - std::log(z) : std::exp(v) / z;
      }
    }
  return y;
}

}  // namespace

TEST(Softmax, MatchesReferenceAlongEveryDim) {
  const Shape s{3, 5, 7};
  Tensor x = random(s, 1, -4, 4);
  for (bool log : {false, true}) {
    for (int64_t d = 0; d < 3; ++d) {
      Tensor y = log ? log_softmax(x, d) : softmax(x, d);
      EXPECT_TRUE(all_close(y.to_vector(), ref_softmax(x.to_vector(), s, d, log), 1e-12, 1e-14))
          << "log=" << log << " dim=" << d;
    }
    // Negative dims count from the end.
    Tensor a = log ? log_softmax(x, -2) : softmax(x, -2);
    Tensor b = log ? log_softmax(x, 1) : softmax(x, 1);
    EXPECT_TRUE(all_close(a, b, 0, 0));
  }
}

TEST(Softmax, WideInnerSpansSeveralColumnBlocks) {
  // Softmax over H of an NHWC-like [2, 3, 300] tensor: inner = 300 > one 256-column block.
  const Shape s{2, 3, 300};
  Tensor x = random(s, 2, -3, 3);
  EXPECT_TRUE(
      all_close(softmax(x, 1).to_vector(), ref_softmax(x.to_vector(), s, 1, false), 1e-12, 1e-14));
  EXPECT_TRUE(all_close(log_softmax(x, 1).to_vector(), ref_softmax(x.to_vector(), s, 1, true),
                        1e-12, 1e-13));
}

TEST(Softmax, LargeInputsUseTheParallelPathAndSumToOne) {
  const Shape s{67, 1001};
  Tensor x = random(s, 3, -8, 8);
  Tensor y = softmax(x, -1);
  EXPECT_TRUE(all_close(y.to_vector(), ref_softmax(x.to_vector(), s, 1, false), 1e-11, 1e-15));
  EXPECT_TRUE(all_close(sum(y, {1}), Tensor::ones({67}, DType::Float64), 1e-12, 0));
  Tensor z = softmax(x, 0);  // 1001 columns along the inner dim, 67 rows each
  EXPECT_TRUE(all_close(z.to_vector(), ref_softmax(x.to_vector(), s, 0, false), 1e-11, 1e-15));
  EXPECT_TRUE(all_close(sum(z, {0}), Tensor::ones({1001}, DType::Float64), 1e-12, 0));
}

TEST(Softmax, StableForHugeAndTinyInputs) {
  // exp(1000) overflows; the stable form equals softmax of the shifted values.
  std::vector<double> base{0.0, 1.0, 2.5, -3.0, 0.5};
  for (double shift : {1000.0, -1000.0, 1e6}) {
    std::vector<double> shifted;
    for (double v : base) shifted.push_back(v + shift);
    Tensor x = Tensor::from_vector(shifted, {5});
    std::vector<double> ref = ref_softmax(base, {5}, 0, false);
    std::vector<double> ref_log = ref_softmax(base, {5}, 0, true);
    // Shifting by 1e6 in float64 rounds the inputs by ~1e-10, hence the atol.
    EXPECT_TRUE(all_close(softmax(x).to_vector(), ref, 1e-9, 1e-10)) << "shift " << shift;
    // log_softmax keeps the (large) value minus the log-sum-exp; compare shifted back.
    std::vector<double> got = log_softmax(x).to_vector();
    EXPECT_TRUE(all_close(got, ref_log, 1e-9, 1e-9)) << "shift " << shift;
  }
  // float32 too: exp(100) alone would overflow float.
  Tensor xf = Tensor::from_vector(std::vector<float>{100.f, 101.f, 99.f}, {3});
  for (double v : softmax(xf).to_vector()) EXPECT_TRUE(std::isfinite(v));
  for (double v : log_softmax(xf).to_vector()) EXPECT_TRUE(std::isfinite(v));
}

TEST(Softmax, Float32MatchesFloat64Reference) {
  // float32 exp and division have ~1e-7 relative error; sums of a few dozen terms add a few ulp.
  const Shape s{4, 33, 9};
  Tensor x64 = random(s, 4, -5, 5);
  Tensor x32 = x64.to(DType::Float32);
  for (int64_t d : {1, 2}) {
    EXPECT_TRUE(all_close(softmax(x32, d).to_vector(), ref_softmax(x32.to_vector(), s, d, false),
                          2e-6, 1e-8));
    EXPECT_TRUE(all_close(log_softmax(x32, d).to_vector(), ref_softmax(x32.to_vector(), s, d, true),
                          1e-6, 5e-6));
  }
}

TEST(Softmax, NonContiguousInput) {
  Tensor x = random({6, 4}, 5);
  Tensor xt = x.transpose(0, 1);  // [4, 6] view, softmax over its rows
  Tensor ref = softmax(xt.contiguous(), 1);
  EXPECT_TRUE(all_close(softmax(xt, 1), ref, 0, 0));
}

TEST(Softmax, GradCheck) {
  for (bool log : {false, true}) {
    for (int64_t d : {0, 1, 2}) {
      Tensor x = random({3, 4, 5}, 10 + d, -2, 2).requires_grad_();
      auto f = [log, d](const std::vector<Tensor>& in) {
        return log ? log_softmax(in[0], d) : softmax(in[0], d);
      };
      EXPECT_TRUE(grad_check(f, {x})) << "log=" << log << " dim=" << d;
    }
  }
  // Through a transposed view (the op makes its input contiguous).
  Tensor x = random({4, 3}, 20, -2, 2).requires_grad_();
  EXPECT_TRUE(grad_check(
      [](const std::vector<Tensor>& in) { return softmax(in[0].transpose(0, 1), -1); }, {x}));
}

TEST(Softmax, ChainedWithLossGradientIsSoftmaxMinusOneHot) {
  // d/dx of -log_softmax(x)[t] = softmax(x) - onehot(t): an exact identity worth checking.
  Tensor x = random({7}, 30, -3, 3).requires_grad_();
  Tensor lp = log_softmax(x, 0);
  neg(lp.select(0, 2)).backward();
  std::vector<double> expect = softmax(x.detach(), 0).to_vector();
  expect[2] -= 1;
  EXPECT_TRUE(all_close(x.grad().to_vector(), expect, 1e-12, 1e-15));
}

TEST(Softmax, Errors) {
  Tensor x = random({2, 3}, 40);
  try {
    softmax(x, 2);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("softmax"), std::string::npos) << m;
    EXPECT_NE(m.find("dimension 2"), std::string::npos) << m;
  }
  try {
    log_softmax(Tensor::zeros({3}, DType::Int64), 0);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("log_softmax"), std::string::npos) << m;
    EXPECT_NE(m.find("int64"), std::string::npos) << m;
  }
}
