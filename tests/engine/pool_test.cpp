// tests/engine/pool_test.cpp — max_pool2d, adaptive_avg_pool2d, global_avg_pool (NHWC).
//
// Forward results are compared with plain nested-loop references in float64. A max is exact,
// so max_pool2d must match its reference bit for bit in float32 too; averages get a float32
// tolerance of a few ulps of the window mean. Gradients: central differences in float64, and,
// for ties (where finite differences are meaningless), the rule "first maximum of the window
// in scan order gets the gradient" checked against the reference argmax.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "tests/common/check.h"

namespace {

using namespace engine;
using testing_util::all_close;
using testing_util::grad_check;
using testing_util::random;

// Index of x[b, h, w, c] in a contiguous NHWC array.
int64_t at(const Shape& s, int64_t b, int64_t h, int64_t w, int64_t c) {
  return ((b * s[1] + h) * s[2] + w) * s[3] + c;
}

struct MaxRef {
  std::vector<double> y;
  std::vector<int64_t> arg;  // flat input index of the first maximum of each window
  Shape out;
};

// Straightforward max pool: scan each window row by row; skip cells outside the image.
MaxRef max_pool_ref(const Tensor& x, int64_t k, int64_t s, int64_t pad) {
  const Shape& sh = x.shape();
  std::vector<double> v = x.to_vector();
  const int64_t p = (sh[1] + 2 * pad - k) / s + 1, q = (sh[2] + 2 * pad - k) / s + 1;
  MaxRef r;
  r.out = {sh[0], p, q, sh[3]};
  for (int64_t b = 0; b < sh[0]; ++b)
    for (int64_t i = 0; i < p; ++i)
      for (int64_t j = 0; j < q; ++j)
        for (int64_t c = 0; c < sh[3]; ++c) {
          double best = -std::numeric_limits<double>::infinity();
          int64_t arg = -1;
          for (int64_t di = 0; di < k; ++di)
            for (int64_t dj = 0; dj < k; ++dj) {
              int64_t h = i * s - pad + di, w = j * s - pad + dj;
              if (h < 0 || h >= sh[1] || w < 0 || w >= sh[2]) continue;
              double val = v[at(sh, b, h, w, c)];
              if (arg < 0 || val > best) best = val, arg = at(sh, b, h, w, c);
            }
          r.y.push_back(best);
          r.arg.push_back(arg);
        }
  return r;
}

// torch.nn.AdaptiveAvgPool2d windows: [floor(i*H/P), ceil((i+1)*H/P)).
std::vector<double> adaptive_ref(const Tensor& x, int64_t p, int64_t q) {
  const Shape& sh = x.shape();
  std::vector<double> v = x.to_vector(), y;
  for (int64_t b = 0; b < sh[0]; ++b)
    for (int64_t i = 0; i < p; ++i)
      for (int64_t j = 0; j < q; ++j)
        for (int64_t c = 0; c < sh[3]; ++c) {
          int64_t h0 = static_cast<int64_t>(std::floor(double(i) * sh[1] / p));
          int64_t h1 = static_cast<int64_t>(std::ceil(double(i + 1) * sh[1] / p));
          int64_t w0 = static_cast<int64_t>(std::floor(double(j) * sh[2] / q));
          int64_t w1 = static_cast<int64_t>(std::ceil(double(j + 1) * sh[2] / q));
          double acc = 0;
          for (int64_t h = h0; h < h1; ++h)
            for (int64_t w = w0; w < w1; ++w) acc += v[at(sh, b, h, w, c)];
          y.push_back(acc / double((h1 - h0) * (w1 - w0)));
        }
  return y;
}

void expect_error(const std::function<void()>& f, const std::string& part) {
  try {
    f();
    ADD_FAILURE() << "expected an engine::Error containing '" << part << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

struct PoolCase {
  Shape shape;
  int64_t k, s, pad;
};

TEST(MaxPool2d, ForwardMatchesReferenceExactly) {
  const std::vector<PoolCase> cases = {
      {{2, 9, 7, 5}, 3, 2, 1},    // ResNet stem geometry on an odd, non-square input
      {{1, 8, 11, 3}, 2, 2, 0},   // batch 1, odd width drops the last column
      {{3, 5, 6, 17}, 3, 1, 1},   // overlapping windows, odd channels
      {{2, 4, 4, 2}, 1, 1, 0},    // identity
      {{1, 7, 5, 9}, 4, 3, 2},    // padding = kernel / 2, the largest allowed
  };
  uint64_t seed = 10;
  for (const PoolCase& pc : cases) {
    Tensor x = random(pc.shape, seed++, -3, 3);
    MaxRef ref = max_pool_ref(x, pc.k, pc.s, pc.pad);
    Tensor y = max_pool2d(x, pc.k, pc.s, pc.pad);
    ASSERT_EQ(y.shape(), ref.out);
    EXPECT_TRUE(all_close(y.to_vector(), ref.y, 0, 0)) << "shape " << cat(pc.shape);
    Tensor y32 = max_pool2d(x.to(DType::Float32), pc.k, pc.s, pc.pad);
    std::vector<double> ref32 = max_pool_ref(x.to(DType::Float32), pc.k, pc.s, pc.pad).y;
    EXPECT_TRUE(all_close(y32.to_vector(), ref32, 0, 0)) << "float32, shape " << cat(pc.shape);
  }
}

TEST(MaxPool2d, GradientGoesToFirstMaximumOnTies) {
  // Values from {0, 1, 2}: most windows hold several maxima.
  Shape shape = {2, 7, 8, 3};
  Tensor xr = random(shape, 21, 0, 3);
  std::vector<double> v = xr.to_vector();
  for (double& e : v) e = std::floor(e);
  for (DType dt : {DType::Float64, DType::Float32}) {
    Tensor x = Tensor::from_vector(v, shape).to(dt).requires_grad_();
    Tensor y = max_pool2d(x, 3, 2, 1);
    Tensor gy = random(y.shape(), 22, -1, 1).to(dt);
    y.backward(gy);
    MaxRef ref = max_pool_ref(x.detach(), 3, 2, 1);
    std::vector<double> dx(v.size(), 0.0), g = gy.to_vector();
    for (size_t i = 0; i < g.size(); ++i) dx[ref.arg[i]] += g[i];
    EXPECT_TRUE(all_close(x.grad().to_vector(), dx, 1e-6, 1e-6)) << dtype_name(dt);
  }
}

TEST(MaxPool2d, NaNWinsAndPaddingNeverDoes) {
  // All-negative input: zero padding would win, -inf padding must not.
  Tensor x = Tensor::full({1, 3, 3, 1}, -5.0, DType::Float32);
  std::vector<double> y = max_pool2d(x, 3, 1, 1).to_vector();
  for (double e : y) EXPECT_EQ(e, -5.0);
  std::vector<float> v(9, 1.0f);
  v[4] = std::numeric_limits<float>::quiet_NaN();
  Tensor xn = Tensor::from_vector(v, {1, 3, 3, 1});
  std::vector<double> yn = max_pool2d(xn, 2, 1, 0).to_vector();
  for (double e : yn) EXPECT_TRUE(std::isnan(e));  // every 2x2 window holds the centre
}

TEST(MaxPool2d, GradCheck) {
  Tensor x = random({2, 5, 6, 3}, 31).requires_grad_();
  EXPECT_TRUE(grad_check([](const std::vector<Tensor>& in) { return max_pool2d(in[0], 3, 2, 1); },
                         {x}));
  Tensor x2 = random({1, 6, 5, 2}, 32).requires_grad_();
  EXPECT_TRUE(grad_check([](const std::vector<Tensor>& in) { return max_pool2d(in[0], 2, 1, 0); },
                         {x2}));
}

TEST(MaxPool2d, BadArgumentsAreClearErrors) {
  Tensor x = random({1, 4, 4, 2}, 41);
  expect_error([&] { max_pool2d(random({4, 4, 2}, 42), 2, 2); }, "NHWC");
  expect_error([&] { max_pool2d(x, 3, 2, 2); }, "at most half the kernel");
  expect_error([&] { max_pool2d(x, 5, 1, 0); }, "smaller than the kernel");
  expect_error([&] { max_pool2d(x, 2, 0, 0); }, "stride (0)");
  expect_error([&] { max_pool2d(Tensor::zeros({1, 4, 4, 2}, DType::Int64), 2, 2); }, "int64");
}

TEST(AdaptiveAvgPool2d, ForwardMatchesReference) {
  struct Case {
    Shape shape;
    int64_t p, q;
  };
  const std::vector<Case> cases = {
      {{2, 7, 5, 3}, 3, 4},   // windows of unequal size that overlap
      {{1, 3, 2, 5}, 5, 3},   // output larger than input: windows repeat rows
      {{3, 8, 6, 4}, 4, 2},   // exact division
      {{2, 9, 11, 7}, 1, 1},  // global
  };
  uint64_t seed = 50;
  for (const Case& c : cases) {
    Tensor x = random(c.shape, seed++, -2, 2);
    std::vector<double> ref = adaptive_ref(x, c.p, c.q);
    Tensor y = adaptive_avg_pool2d(x, c.p, c.q);
    ASSERT_EQ(y.shape(), (Shape{c.shape[0], c.p, c.q, c.shape[3]}));
    EXPECT_TRUE(all_close(y.to_vector(), ref, 1e-12, 1e-14)) << cat(c.shape);
    // float32: inputs are rounded to float (|x| <= 2, so <= 1.2e-7 each) and the mean is
    // rounded once more; sums run in double.
    Tensor y32 = adaptive_avg_pool2d(x.to(DType::Float32), c.p, c.q);
    EXPECT_TRUE(all_close(y32.to_vector(), ref, 1e-6, 3e-7)) << "float32 " << cat(c.shape);
  }
}

TEST(AdaptiveAvgPool2d, GradCheck) {
  Tensor x = random({2, 5, 7, 3}, 61).requires_grad_();
  EXPECT_TRUE(grad_check(
      [](const std::vector<Tensor>& in) { return adaptive_avg_pool2d(in[0], 3, 4); }, {x}));
  Tensor x2 = random({1, 2, 3, 2}, 62).requires_grad_();
  EXPECT_TRUE(grad_check(
      [](const std::vector<Tensor>& in) { return adaptive_avg_pool2d(in[0], 3, 5); }, {x2}));
}

TEST(AdaptiveAvgPool2d, BadArgumentsAreClearErrors) {
  Tensor x = random({1, 4, 4, 2}, 71);
  expect_error([&] { adaptive_avg_pool2d(x, 0, 2); }, "must be positive");
  expect_error([&] { adaptive_avg_pool2d(random({4, 4}, 72), 1, 1); }, "[4,4]");
}

TEST(GlobalAvgPool, ForwardMatchesReferenceAndShapeIsNC) {
  Tensor x = random({3, 7, 5, 9}, 81, -1, 3);
  Tensor y = global_avg_pool(x);
  ASSERT_EQ(y.shape(), (Shape{3, 9}));
  EXPECT_TRUE(all_close(y.to_vector(), adaptive_ref(x, 1, 1), 1e-12, 1e-14));
  // A large float32 image: the double accumulator keeps the mean within one rounding.
  Tensor big = random({1, 64, 96, 3}, 82, 0, 1);
  Tensor y32 = global_avg_pool(big.to(DType::Float32));
  EXPECT_TRUE(all_close(y32.to_vector(), adaptive_ref(big, 1, 1), 2e-7, 0));
}

TEST(GlobalAvgPool, GradCheck) {
  Tensor x = random({2, 3, 4, 5}, 91).requires_grad_();
  EXPECT_TRUE(grad_check([](const std::vector<Tensor>& in) { return global_avg_pool(in[0]); },
                         {x}));
}

TEST(GlobalAvgPool, BadArgumentsAreClearErrors) {
  expect_error([&] { global_avg_pool(random({2, 3}, 92)); }, "global_avg_pool");
}

}  // namespace
