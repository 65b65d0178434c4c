// dropout / drop_path: the mask follows the documented counter rule exactly, is reproducible
// from the generator state and independent of layout, the expectation is preserved within a
// stated statistical bound, p = 0 / eval are the identity, p = 1 gives zeros (no 0 * inf NaN),
// and the backward multiplies by the saved mask.
#include <cmath>

#include "kernels/rng.h"
#include "tests/common/check.h"

using namespace engine;
using testing_util::all_close;
using testing_util::grad_check;
using testing_util::random;

TEST(Dropout, MaskFollowsTheCounterRule) {
  const double p = 0.35;
  Tensor x = random({5, 9}, 1, 0.5, 1.5);  // no zeros: y / x recovers the mask
  Generator gen(1234);
  gen.reserve(17);  // the call must start at the generator's current offset
  Tensor y = dropout(x, p, true, gen);
  EXPECT_EQ(gen.offset(), 17u + 45u);  // one counter per element
  std::vector<double> xv = x.to_vector(), yv = y.to_vector();
  int kept = 0;
  for (int64_t i = 0; i < 45; ++i) {
    const bool keep = kernels::rng_uniform(1234, 17 + i) >= p;
    kept += keep;
    EXPECT_EQ(yv[i], keep ? xv[i] * (1.0 / (1.0 - p)) : 0.0) << i;
  }
  EXPECT_GT(kept, 0);
  EXPECT_LT(kept, 45);
}

TEST(Dropout, SameStateSameMaskOtherStateOtherMask) {
  Tensor x = random({6, 7}, 2, 0.5, 1.5, DType::Float32);
  Generator a(99), b(99), c(100);
  Tensor ya = dropout(x, 0.5, true, a), yb = dropout(x, 0.5, true, b),
         yc = dropout(x, 0.5, true, c);
  EXPECT_TRUE(all_close(ya, yb, 0, 0));
  EXPECT_FALSE(all_close(ya, yc, 0, 0));
  // The next call continues the stream: a different mask than the first.
  EXPECT_FALSE(all_close(dropout(x, 0.5, true, a), ya, 0, 0));
  // Element order is the logical (row-major) order, whatever the input's strides.
  Tensor xt = random({7, 6}, 3, 0.5, 1.5).transpose(0, 1);
  Generator d(5), e(5);
  EXPECT_TRUE(all_close(dropout(xt, 0.3, true, d), dropout(xt.contiguous(), 0.3, true, e), 0, 0));
}

TEST(Dropout, ExpectationIsPreserved) {
  // Each output is x * B / (1 - p) with B ~ Bernoulli(1 - p): mean x, standard deviation
  // |x| sqrt(p / (1 - p)). The mean of S draws has sd |x| sqrt(p / ((1 - p) S)); we allow 5 sd
  // per element (a false alarm has probability < 1e-4 over all 39 elements).
  const double p = 0.3;
  const int S = 2000;
  Tensor x = random({3, 13}, 4, -2, 2);
  Generator gen(7);
  std::vector<double> acc(39, 0.0);
  int64_t zeros = 0;
  for (int s = 0; s < S; ++s) {
    std::vector<double> y = dropout(x, p, true, gen).to_vector();
    for (int i = 0; i < 39; ++i) acc[i] += y[i], zeros += y[i] == 0;
  }
  std::vector<double> xv = x.to_vector();
  for (int i = 0; i < 39; ++i)
    EXPECT_NEAR(acc[i] / S, xv[i], 5 * std::abs(xv[i]) * std::sqrt(p / ((1 - p) * S))) << i;
  // The dropped fraction: binomial(39 S, p), sd sqrt(p (1-p) / (39 S)) ~ 1.2e-3; allow 5 sd.
  EXPECT_NEAR(static_cast<double>(zeros) / (39.0 * S), p, 5 * std::sqrt(p * (1 - p) / (39.0 * S)));
}

TEST(Dropout, IdentityWhenEvalOrPZero) {
  Tensor x = random({4, 5}, 5).requires_grad_();
  Generator gen(3);
  EXPECT_TRUE(dropout(x, 0.5, /*training=*/false, gen).same(x));
  EXPECT_TRUE(dropout(x, 0.0, true, gen).same(x));
  EXPECT_TRUE(drop_path(x, 0.5, false, gen).same(x));
  EXPECT_TRUE(drop_path(x, 0.0, true, gen).same(x));
  EXPECT_EQ(gen.offset(), 0u);  // no counters consumed
}

TEST(Dropout, POneGivesZerosAndZeroGradient) {
  for (DType dt : {DType::Float32, DType::Float64}) {
    Tensor x = random({3, 4}, 6, -1, 1, dt).requires_grad_(dt == DType::Float64);
    Generator gen(8);
    Tensor y = dropout(x, 1.0, true, gen);
    EXPECT_TRUE(all_close(y, Tensor::zeros({3, 4}, dt), 0, 0));  // not NaN from 0 * inf
    Tensor z = drop_path(x, 1.0, true, gen);
    EXPECT_TRUE(all_close(z, Tensor::zeros({3, 4}, dt), 0, 0));
    if (dt == DType::Float64) {
      sum(add(y, z)).backward();
      EXPECT_TRUE(all_close(x.grad(), Tensor::zeros({3, 4}, dt), 0, 0));
    }
  }
}

TEST(Dropout, BackwardUsesTheSavedMask) {
  Tensor x = random({4, 6}, 9, 0.5, 1.5).requires_grad_();
  Generator gen(10);
  Tensor y = dropout(x, 0.4, true, gen);
  Tensor g = random({4, 6}, 11);
  y.backward(g);
  Tensor mask = div(y.detach(), x.detach());  // scale or 0 per element
  EXPECT_TRUE(all_close(x.grad(), mul(g, mask), 1e-15, 0));
  // Finite differences: replay the same generator state on every evaluation.
  Tensor x2 = random({3, 5}, 12).requires_grad_();
  auto f = [&gen](const std::vector<Tensor>& in) {
    gen.set_state(77, 3);
    return dropout(in[0], 0.4, true, gen);
  };
  EXPECT_TRUE(grad_check(f, {x2}));
}

TEST(DropPath, WholeSamplesFollowTheCounterRule) {
  const double p = 0.5;
  const int64_t n = 24;
  Tensor x = random({n, 3, 2, 5}, 13, 0.5, 1.5);  // NHWC
  Generator gen(21);
  gen.reserve(4);
  Tensor y = drop_path(x, p, true, gen);
  EXPECT_EQ(gen.offset(), 4u + n);  // one counter per sample
  int kept = 0;
  for (int64_t s = 0; s < n; ++s) {
    const bool keep = kernels::rng_uniform(21, 4 + s) >= p;
    kept += keep;
    Tensor expect =
        keep ? mul(x.select(0, s), 1.0 / (1.0 - p)) : Tensor::zeros({3, 2, 5}, DType::Float64);
    EXPECT_TRUE(all_close(y.select(0, s), expect, 1e-15, 0)) << "sample " << s;
  }
  EXPECT_GT(kept, 0);
  EXPECT_LT(kept, n);
}

TEST(DropPath, ExpectationAndGradient) {
  // Same bound as for dropout, per element, with whole samples kept or dropped together.
  const double p = 0.2;
  const int S = 2000;
  Tensor x = random({5, 3}, 14, -2, 2);
  Generator gen(15);
  std::vector<double> acc(15, 0.0);
  for (int s = 0; s < S; ++s) {
    std::vector<double> y = drop_path(x, p, true, gen).to_vector();
    for (int i = 0; i < 15; ++i) acc[i] += y[i];
  }
  std::vector<double> xv = x.to_vector();
  for (int i = 0; i < 15; ++i)
    EXPECT_NEAR(acc[i] / S, xv[i], 5 * std::abs(xv[i]) * std::sqrt(p / ((1 - p) * S))) << i;

  Tensor x2 = random({6, 2, 3}, 16).requires_grad_();
  auto f = [&gen](const std::vector<Tensor>& in) {
    gen.set_state(5, 0);
    return drop_path(in[0], 0.5, true, gen);
  };
  EXPECT_TRUE(grad_check(f, {x2}));
}

TEST(Dropout, Errors) {
  Tensor x = random({3}, 17);
  Generator gen(1);
  for (double p : {-0.1, 1.5}) {
    try {
      dropout(x, p, true, gen);
      FAIL() << "expected an error";
    } catch (const Error& e) {
      std::string m = e.what();
      EXPECT_NE(m.find("dropout"), std::string::npos) << m;
      EXPECT_NE(m.find("[0, 1]"), std::string::npos) << m;
    }
  }
  EXPECT_THROW(drop_path(x, 2.0, true, gen), Error);
  EXPECT_THROW(drop_path(Tensor::scalar(1.0, DType::Float64), 0.5, true, gen), Error);
  EXPECT_THROW(dropout(Tensor::zeros({2}, DType::Int64), 0.5, true, gen), Error);
}
