// Elementwise ops: every binary op with broadcasting (trailing alignment, size-1 dims on both
// sides, NHWC + [C], 0-d scalars, strided views, the parallel path) against a plain reference
// that maps each output index back to its inputs; every unary op forward and by finite
// differences away from kinks; scalar overloads and operators; dtype/device/shape errors.
#include <cmath>
#include <functional>
#include <limits>

#include "tests/common/check.h"

using namespace engine;
using testing_util::all_close;
using testing_util::grad_check;
using testing_util::random;

namespace {

using BinFn = std::function<Tensor(const Tensor&, const Tensor&)>;
using RefFn = std::function<double(double, double)>;

struct BinaryCase {
  const char* name;
  BinFn op;
  RefFn ref;
  double a_low, a_high, b_low, b_high;  // input ranges keeping the op smooth and defined
};

std::vector<BinaryCase> binary_cases() {
  return {
      {"add", [](auto& a, auto& b) { return add(a, b); }, [](double u, double v) { return u + v; },
       -2, 2, -2, 2},
      {"sub", [](auto& a, auto& b) { return sub(a, b); }, [](double u, double v) { return u - v; },
       -2, 2, -2, 2},
      {"mul", [](auto& a, auto& b) { return mul(a, b); }, [](double u, double v) { return u * v; },
       -2, 2, -2, 2},
      {"div", [](auto& a, auto& b) { return div(a, b); }, [](double u, double v) { return u / v; },
       -2, 2, 0.5, 2},
      {"pow", [](auto& a, auto& b) { return pow(a, b); },
       [](double u, double v) { return std::pow(u, v); }, 0.5, 2, -2, 2},
      {"maximum", [](auto& a, auto& b) { return maximum(a, b); },
       [](double u, double v) { return std::max(u, v); }, -2, 2, -2, 2},
      {"minimum", [](auto& a, auto& b) { return minimum(a, b); },
       [](double u, double v) { return std::min(u, v); }, -2, 2, -2, 2},
      {"add_relu", [](auto& a, auto& b) { return add_relu(a, b); },
       [](double u, double v) { return std::max(u + v, 0.0); }, -2, 2, -2, 2},
  };
}

// out[i] = f(a[ia], b[ib]) where ia/ib drop leading dims and pin size-1 dims to 0.
std::vector<double> ref_broadcast(const Tensor& a, const Tensor& b, const RefFn& f, Shape& out) {
  const size_t n = std::max(a.shape().size(), b.shape().size());
  out.assign(n, 1);
  auto padded = [n](const Shape& s) {
    Shape p(n - s.size(), 1);
    p.insert(p.end(), s.begin(), s.end());
    return p;
  };
  Shape pa = padded(a.shape()), pb = padded(b.shape());
  for (size_t d = 0; d < n; ++d) out[d] = std::max(pa[d], pb[d]);
  std::vector<double> av = a.to_vector(), bv = b.to_vector(), y(numel(out));
  for (int64_t f_ = 0; f_ < numel(out); ++f_) {
    int64_t rem = f_, ia = 0, ib = 0, sa = 1, sb = 1;
    for (int64_t d = static_cast<int64_t>(n) - 1; d >= 0; --d) {
      int64_t i = rem % out[d];
      rem /= out[d];
      ia += (pa[d] == 1 ? 0 : i) * sa;
      ib += (pb[d] == 1 ? 0 : i) * sb;
      sa *= pa[d];
      sb *= pb[d];
    }
    y[f_] = f(av[ia], bv[ib]);
  }
  return y;
}

const std::vector<std::pair<Shape, Shape>>& broadcast_pairs() {
  static const std::vector<std::pair<Shape, Shape>> pairs{
      {{4, 7}, {4, 7}},              // same shape: one flat loop
      {{2, 1, 5}, {3, 1}},           // both sides broadcast, different ranks
      {{2, 3, 4, 5}, {5}},           // NHWC + per-channel [C]
      {{5}, {2, 3, 4, 5}},           // the same, swapped
      {{3, 1}, {1, 4}},              // outer product shape
      {{}, {3, 4}},                  // 0-d scalar
      {{1, 3, 1, 2}, {4, 1, 5, 1}},  // size-1 dims on both sides everywhere
  };
  return pairs;
}

using testing_util::expect_error;

}  // namespace

TEST(Binary, EveryOpWithBroadcastingMatchesReference) {
  uint64_t seed = 1;
  for (const auto& c : binary_cases()) {
    for (const auto& [sa, sb] : broadcast_pairs()) {
      Tensor a = random(sa, seed++, c.a_low, c.a_high), b = random(sb, seed++, c.b_low, c.b_high);
      Shape out;
      std::vector<double> ref = ref_broadcast(a, b, c.ref, out);
      Tensor y = c.op(a, b);
      ASSERT_EQ(y.shape(), out) << c.name;
      EXPECT_TRUE(all_close(y.to_vector(), ref, 1e-15, 0))
          << c.name << " " << cat(sa) << " " << cat(sb);
      // float32: one rounding of the result (pow through libm: a few ulp).
      Tensor af = a.to(DType::Float32), bf = b.to(DType::Float32);
      std::vector<double> reff = ref_broadcast(af, bf, c.ref, out);
      EXPECT_TRUE(all_close(c.op(af, bf).to_vector(), reff, 5e-7, 0)) << c.name << " float32";
    }
  }
}

TEST(Binary, StridedViewsAndTheParallelPath) {
  for (const auto& c : binary_cases()) {
    // A transposed [5, 4] view with a [4] row, and a stride-2 slice with a [3, 1] column.
    Tensor a = random({4, 5}, 100, c.a_low, c.a_high).transpose(0, 1);
    Tensor b = random({4}, 101, c.b_low, c.b_high);
    Shape out;
    EXPECT_TRUE(all_close(c.op(a, b).to_vector(), ref_broadcast(a, b, c.ref, out), 1e-15, 0))
        << c.name;
    Tensor s = random({3, 9}, 102, c.a_low, c.a_high).slice(1, 1, 9, 2);
    Tensor col = random({3, 1}, 103, c.b_low, c.b_high);
    EXPECT_TRUE(all_close(c.op(s, col).to_vector(), ref_broadcast(s, col, c.ref, out), 1e-15, 0))
        << c.name;
    // 70 x 601 > 2^15 elements: rows split across threads.
    Tensor big = random({70, 601}, 104, c.a_low, c.a_high),
           row = random({601}, 105, c.b_low, c.b_high);
    EXPECT_TRUE(
        all_close(c.op(big, row).to_vector(), ref_broadcast(big, row, c.ref, out), 1e-15, 0))
        << c.name;
    Tensor row_a = random({601}, 106, c.a_low, c.a_high),
           big_b = random({70, 601}, 107, c.b_low, c.b_high);
    EXPECT_TRUE(all_close(c.op(row_a, big_b).to_vector(), ref_broadcast(row_a, big_b, c.ref, out),
                          1e-15, 0))
        << c.name;
  }
}

TEST(Binary, GradCheckWithBroadcasting) {
  uint64_t seed = 200;
  for (const auto& c : binary_cases()) {
    for (const auto& [sa, sb] : std::vector<std::pair<Shape, Shape>>{
             {{2, 1, 3}, {3, 1}}, {{2, 2, 3}, {3}}, {{}, {2, 3}}, {{2, 3}, {2, 3}}}) {
      Tensor a = random(sa, seed++, c.a_low, c.a_high).requires_grad_();
      Tensor b = random(sb, seed++, c.b_low, c.b_high).requires_grad_();
      EXPECT_TRUE(
          grad_check([&](const std::vector<Tensor>& in) { return c.op(in[0], in[1]); }, {a, b}))
          << c.name << " " << cat(sa) << " " << cat(sb);
    }
  }
}

TEST(Binary, MaximumTieGivesGradientToFirstOperand) {
  Tensor a = Tensor::from_vector(std::vector<double>{1, 2, 3}, {3}).requires_grad_();
  Tensor b = Tensor::from_vector(std::vector<double>{1, 5, 0}, {3}).requires_grad_();
  sum(maximum(a, b)).backward();
  EXPECT_EQ(a.grad().to_vector(), (std::vector<double>{1, 0, 1}));
  EXPECT_EQ(b.grad().to_vector(), (std::vector<double>{0, 1, 0}));
  a.zero_grad(), b.zero_grad();
  sum(minimum(a, b)).backward();
  EXPECT_EQ(a.grad().to_vector(), (std::vector<double>{1, 1, 0}));
  EXPECT_EQ(b.grad().to_vector(), (std::vector<double>{0, 0, 1}));
}

TEST(Binary, ScalarOverloadsAndOperators) {
  Tensor a = random({2, 3}, 300), b = random({2, 3}, 301, 0.5, 2);
  std::vector<double> av = a.to_vector(), bv = b.to_vector();
  auto each = [&](auto f) {
    std::vector<double> r;
    for (size_t i = 0; i < av.size(); ++i) r.push_back(f(av[i], bv[i]));
    return r;
  };
  EXPECT_TRUE(all_close((a + b).to_vector(), each([](double u, double v) { return u + v; }), 0, 0));
  EXPECT_TRUE(all_close((a - b).to_vector(), each([](double u, double v) { return u - v; }), 0, 0));
  EXPECT_TRUE(all_close((a * b).to_vector(), each([](double u, double v) { return u * v; }), 0, 0));
  EXPECT_TRUE(all_close((a / b).to_vector(), each([](double u, double v) { return u / v; }), 0, 0));
  EXPECT_TRUE(all_close((-a).to_vector(), each([](double u, double) { return -u; }), 0, 0));
  EXPECT_TRUE(
      all_close((a + 1.5).to_vector(), each([](double u, double) { return u + 1.5; }), 0, 0));
  EXPECT_TRUE(
      all_close((a - 1.5).to_vector(), each([](double u, double) { return u - 1.5; }), 0, 0));
  EXPECT_TRUE(all_close((a * 3.0).to_vector(), each([](double u, double) { return u * 3; }), 0, 0));
  EXPECT_TRUE(all_close((3.0 * a).to_vector(), each([](double u, double) { return 3 * u; }), 0, 0));
  EXPECT_TRUE(all_close((a / 4.0).to_vector(), each([](double u, double) { return u / 4; }), 0, 0));
  EXPECT_TRUE(
      all_close(add(a, -2.0).to_vector(), each([](double u, double) { return u - 2; }), 0, 0));
  EXPECT_TRUE(
      all_close(mul(a, 0.5).to_vector(), each([](double u, double) { return u * 0.5; }), 0, 0));
  // Scalar overloads keep the tensor's dtype.
  Tensor f = a.to(DType::Float32);
  EXPECT_EQ((f * 2.0).dtype(), DType::Float32);
  EXPECT_EQ((f + 1.0).dtype(), DType::Float32);
}

namespace {

struct UnaryCase {
  const char* name;
  std::function<Tensor(const Tensor&)> op;
  std::function<double(double)> ref;
  double low, high;  // input range (smooth, defined)
  bool avoid_zero;   // mirror the range to negative values, skipping (-low, low)
};

std::vector<UnaryCase> unary_cases() {
  return {
      {"neg", [](auto& x) { return neg(x); }, [](double v) { return -v; }, -2, 2, false},
      {"exp", [](auto& x) { return exp(x); }, [](double v) { return std::exp(v); }, -3, 3, false},
      {"log", [](auto& x) { return log(x); }, [](double v) { return std::log(v); }, 0.2, 5, false},
      {"sqrt", [](auto& x) { return sqrt(x); }, [](double v) { return std::sqrt(v); }, 0.2, 5,
       false},
      {"abs", [](auto& x) { return abs(x); }, [](double v) { return std::abs(v); }, 0.1, 2, true},
      {"relu", [](auto& x) { return relu(x); }, [](double v) { return v > 0 ? v : 0; }, 0.1, 2,
       true},
      {"sigmoid", [](auto& x) { return sigmoid(x); },
       [](double v) { return 1 / (1 + std::exp(-v)); }, -4, 4, false},
      {"tanh", [](auto& x) { return tanh(x); }, [](double v) { return std::tanh(v); }, -3, 3,
       false},
      {"clamp", [](auto& x) { return clamp(x, -0.5, 0.7); },
       [](double v) { return std::min(std::max(v, -0.5), 0.7); }, -2, 2, false},
      {"pow2", [](auto& x) { return pow(x, 2.0); }, [](double v) { return v * v; }, -2, 2, false},
      {"pow3", [](auto& x) { return pow(x, 3.0); }, [](double v) { return v * v * v; }, -2, 2,
       false},
      {"pow0.5", [](auto& x) { return pow(x, 0.5); }, [](double v) { return std::sqrt(v); }, 0.2, 3,
       false},
      {"pow-1.5", [](auto& x) { return pow(x, -1.5); },
       [](double v) { return 1 / (v * std::sqrt(v)); }, 0.3, 3, false},
      {"pow0", [](auto& x) { return pow(x, 0.0); }, [](double) { return 1.0; }, -2, 2, false},
  };
}

Tensor unary_input(const UnaryCase& c, const Shape& s, uint64_t seed) {
  Tensor x = random(s, seed, c.low, c.high);
  if (!c.avoid_zero) return x;
  // Flip the sign of every other element: |x| >= low keeps finite differences off the kink.
  std::vector<double> v = x.to_vector();
  for (size_t i = 0; i < v.size(); i += 2) v[i] = -v[i];
  return Tensor::from_vector(v, s);
}

}  // namespace

TEST(Unary, EveryOpMatchesReference) {
  uint64_t seed = 400;
  for (const auto& c : unary_cases()) {
    Tensor x = unary_input(c, {3, 5, 7}, seed++);
    std::vector<double> ref;
    for (double v : x.to_vector()) ref.push_back(c.ref(v));
    EXPECT_TRUE(all_close(c.op(x).to_vector(), ref, 1e-15, 1e-300)) << c.name;
    Tensor xf = x.to(DType::Float32);
    std::vector<double> reff;
    for (double v : xf.to_vector()) reff.push_back(c.ref(v));
    EXPECT_TRUE(all_close(c.op(xf).to_vector(), reff, 3e-7, 1e-30)) << c.name << " float32";
    EXPECT_EQ(c.op(xf).dtype(), DType::Float32);
    // Non-contiguous input and the parallel path (40000 elements).
    Tensor big = unary_input(c, {200, 200}, seed++).transpose(0, 1);
    std::vector<double> refb;
    for (double v : big.to_vector()) refb.push_back(c.ref(v));
    EXPECT_TRUE(all_close(c.op(big).to_vector(), refb, 1e-15, 1e-300)) << c.name << " big";
  }
}

TEST(Unary, GradCheck) {
  uint64_t seed = 500;
  for (const auto& c : unary_cases()) {
    Tensor x = unary_input(c, {3, 4}, seed++);
    if (std::string(c.name) == "clamp") {
      // Keep finite differences off the clamp bounds.
      for (double v : x.to_vector()) {
        ASSERT_GT(std::abs(v + 0.5), 1e-3);
        ASSERT_GT(std::abs(v - 0.7), 1e-3);
      }
    }
    x.requires_grad_();
    EXPECT_TRUE(grad_check([&](const std::vector<Tensor>& in) { return c.op(in[0]); }, {x}))
        << c.name;
  }
}

TEST(Unary, ClampAndReluGradientsAreMasks) {
  Tensor x = Tensor::from_vector(std::vector<double>{-2, -0.25, 0.5, 3}, {4}).requires_grad_();
  sum(clamp(x, -1, 1)).backward();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{0, 1, 1, 0}));
  x.zero_grad();
  sum(relu(x)).backward();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{0, 0, 1, 1}));
  EXPECT_THROW(clamp(x, 1, -1), Error);
}

// As PyTorch's threshold_backward: the masks select, they do not multiply, so where the mask is
// 0 the gradient is 0 even if the incoming one is inf or NaN (0 * inf would be NaN).
TEST(Unary, MaskGradientsIgnoreNonFiniteIncomingGradients) {
  const double inf = std::numeric_limits<double>::infinity(), nan = std::nan("");
  for (DType t : {DType::Float64, DType::Float32}) {
    Tensor x = Tensor::from_vector(std::vector<double>{-2, -0.25, 0.5, 3}, {4}).to(t);
    Tensor dy = Tensor::from_vector(std::vector<double>{nan, inf, 5, -inf}, {4}).to(t);
    x.requires_grad_();
    relu(x).backward(dy);
    std::vector<double> g = x.grad().to_vector();
    EXPECT_EQ(g[0], 0) << t;
    EXPECT_EQ(g[1], 0) << t;
    EXPECT_EQ(g[2], 5) << t;
    EXPECT_EQ(g[3], -inf) << t;
    x.zero_grad();
    clamp(x, -1, 1).backward(dy);
    g = x.grad().to_vector();
    EXPECT_EQ(g[0], 0) << t;
    EXPECT_EQ(g[1], inf) << t;
    EXPECT_EQ(g[2], 5) << t;
    EXPECT_EQ(g[3], 0) << t;
  }
}

TEST(Elementwise, Errors) {
  Tensor a = random({2, 3}, 600), f = random({2, 3}, 601, -1, 1, DType::Float32);
  expect_error([&] { add(a, f); }, {"add", "dtype", "float64", "float32"});
  expect_error([&] { mul(f, a); }, {"mul", "dtype"});
  expect_error([&] { maximum(a, f); }, {"maximum", "dtype"});
  expect_error([&] { sub(a, random({4}, 602)); }, {"sub", "[2,3]", "[4]", "broadcast"});
  expect_error([&] { add(Tensor::zeros({2}, DType::Int64), Tensor::zeros({2}, DType::Int64)); },
               {"add", "int64"});
  expect_error([&] { exp(Tensor::zeros({2}, DType::Int64)); }, {"exp", "int64"});
  expect_error([&] { add(a, Tensor()); }, {"add", "undefined"});
  if (!cuda_available()) {
    // A CUDA tensor cannot be made in this build; the message must still say why.
    expect_error([&] { Tensor::zeros({2}, DType::Float32, Device::cuda()); }, {"CUDA"});
  } else {
    Tensor g = Tensor::zeros({2, 3}, DType::Float64, Device::cuda());
    expect_error([&] { add(a, g); }, {"add", "different devices", "cpu", "cuda:0"});
  }
}
