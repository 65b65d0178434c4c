// sum / mean / max / var over single dims, adjacent and non-adjacent dim sets, all dims, with
// and without keepdim, against plain loops over every input element; each kernel path (row
// sums, column sums, the split column sum over a long single slice); float32 accumulation;
// finite-difference gradients; max's tie rule; sum_to; argument errors.
#include <cmath>
#include <limits>

#include "tests/common/check.h"

using namespace engine;
using testing_util::all_close;
using testing_util::grad_check;
using testing_util::random;

namespace {

enum class Op { Sum, Mean, Max, Var0, Var1 };

// Reduces x over `dims` (empty = all) by walking every input element and adding it into the
// output slot whose reduced coordinates are zeroed. Returns values in keepdim layout.
std::vector<double> ref_reduce(const Tensor& x, std::vector<int64_t> dims, Op op, Shape& keep) {
  const Shape& s = x.shape();
  const int64_t nd = x.dim();
  std::vector<bool> red(nd, dims.empty());
  for (int64_t d : dims) red[d < 0 ? d + nd : d] = true;
  keep.clear();
  int64_t count = 1;
  for (int64_t d = 0; d < nd; ++d) {
    keep.push_back(red[d] ? 1 : s[d]);
    if (red[d]) count *= s[d];
  }
  std::vector<double> xv = x.to_vector();
  auto slot = [&](int64_t flat) {
    int64_t rem = flat, out = 0, stride = 1;
    for (int64_t d = nd - 1; d >= 0; --d) {
      int64_t i = rem % s[d];
      rem /= s[d];
      out += (red[d] ? 0 : i) * stride;
      stride *= keep[d];
    }
    return out;
  };
  const int64_t m = numel(keep);
  std::vector<double> acc(m, op == Op::Max ? -std::numeric_limits<double>::infinity() : 0.0);
  for (int64_t f = 0; f < x.numel(); ++f) {
    int64_t o = slot(f);
    if (op == Op::Max) acc[o] = std::max(acc[o], xv[f]);
    else acc[o] += xv[f];
  }
  if (op == Op::Sum || op == Op::Max) return acc;
  for (auto& v : acc) v /= static_cast<double>(count);
  if (op == Op::Mean) return acc;
  std::vector<double> sq(m, 0.0);  // second pass: squared deviations from the mean
  for (int64_t f = 0; f < x.numel(); ++f) {
    int64_t o = slot(f);
    sq[o] += (xv[f] - acc[o]) * (xv[f] - acc[o]);
  }
  for (auto& v : sq) v /= static_cast<double>(count - (op == Op::Var1 ? 1 : 0));
  return sq;
}

Tensor run(Op op, const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  switch (op) {
    case Op::Sum:
      return sum(x, dims, keepdim);
    case Op::Mean:
      return mean(x, dims, keepdim);
    case Op::Max:
      return max(x, dims, keepdim);
    case Op::Var0:
      return var(x, dims, 0, keepdim);
    case Op::Var1:
      return var(x, dims, 1, keepdim);
  }
  return {};
}

const char* name(Op op) {
  const char* n[] = {"sum", "mean", "max", "var(correction=0)", "var(correction=1)"};
  return n[static_cast<int>(op)];
}

const std::vector<std::vector<int64_t>>& dim_sets() {
  static const std::vector<std::vector<int64_t>> sets{
      {0},    {1},          {2},    {3},    {-1},  // single dims (first, middle, last, negative)
      {1, 2}, {0, 1, 2},                           // adjacent blocks
      {0, 2}, {1, 3},       {0, 3}, {3, 1},        // non-adjacent (any order)
      {},     {0, 1, 2, 3},                        // all dims, implicitly and explicitly
  };
  return sets;
}

}  // namespace

TEST(Reduce, EveryOpOverEveryDimSetMatchesLoops) {
  const Shape s{3, 4, 5, 2};
  Tensor x = random(s, 1, -3, 3);
  for (Op op : {Op::Sum, Op::Mean, Op::Max, Op::Var0, Op::Var1}) {
    for (const auto& dims : dim_sets()) {
      Shape keep;
      std::vector<double> ref = ref_reduce(x, dims, op, keep);
      for (bool keepdim : {true, false}) {
        Tensor y = run(op, x, dims, keepdim);
        Shape expect_shape;
        for (int64_t d = 0; d < 4; ++d) {
          bool reduced = dims.empty();
          for (int64_t r : dims) reduced = reduced || (r < 0 ? r + 4 : r) == d;
          if (!reduced) expect_shape.push_back(s[d]);
          else if (keepdim) expect_shape.push_back(1);
        }
        ASSERT_EQ(y.shape(), expect_shape) << name(op) << " dims " << cat(dims);
        EXPECT_TRUE(all_close(y.to_vector(), ref, 1e-13, 1e-14))
            << name(op) << " dims " << cat(dims) << " keepdim " << keepdim;
      }
    }
  }
}

TEST(Reduce, KernelPathsOnLargerInputs) {
  // Row sums ([M, N, 1]), column sums with several outer slices, and the split column sum
  // (one outer slice, >= 64 rows, > 2^16 elements) that threads add up at the end.
  Tensor x = random({8, 40, 30, 7}, 2, -1, 1);  // NHWC, 67200 elements
  for (const auto& dims : std::vector<std::vector<int64_t>>{{3}, {1}, {0, 1, 2}, {0, 2}}) {
    for (Op op : {Op::Sum, Op::Var1}) {
      Shape keep;
      std::vector<double> ref = ref_reduce(x, dims, op, keep);
      EXPECT_TRUE(all_close(run(op, x, dims, true).to_vector(), ref, 1e-12, 1e-12))
          << name(op) << " dims " << cat(dims);
    }
  }
}

TEST(Reduce, Float32SumsAccumulateInDouble) {
  // 100000 x 0.1f: a float accumulator drifts by ~1e-3 relative; a double one stays exact
  // to float rounding of the result.
  Tensor x = Tensor::full({100000}, 0.1, DType::Float32);
  const double exact = 100000 * static_cast<double>(0.1f);
  EXPECT_NEAR(sum(x).item(), exact, exact * 1e-7);
  EXPECT_NEAR(mean(x).item(), static_cast<double>(0.1f), 1e-8);
  Tensor y = random({6, 7, 5}, 3, -2, 2, DType::Float32);
  Shape keep;
  EXPECT_TRUE(
      all_close(sum(y, {0, 2}).to_vector(), ref_reduce(y, {0, 2}, Op::Sum, keep), 1e-6, 1e-6));
  EXPECT_TRUE(all_close(var(y, {1}).to_vector(), ref_reduce(y, {1}, Op::Var1, keep), 1e-5, 1e-6));
  EXPECT_EQ(sum(y).dtype(), DType::Float32);
}

TEST(Reduce, GradCheck) {
  Tensor x = random({3, 4, 2, 3}, 4, -2, 2).requires_grad_();
  for (Op op : {Op::Sum, Op::Mean, Op::Max, Op::Var0, Op::Var1}) {
    for (const auto& dims : std::vector<std::vector<int64_t>>{{1}, {0, 2}, {1, 3}, {}, {3}}) {
      for (bool keepdim : {true, false}) {
        EXPECT_TRUE(grad_check(
            [&](const std::vector<Tensor>& in) { return run(op, in[0], dims, keepdim); }, {x}))
            << name(op) << " dims " << cat(dims) << " keepdim " << keepdim;
      }
    }
  }
}

TEST(Reduce, MaxGradientGoesToFirstMaximum) {
  Tensor x = Tensor::from_vector(std::vector<double>{1, 3, 3, 2, 5, 5}, {2, 3}).requires_grad_();
  sum(max(x, {1})).backward();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{0, 1, 0, 0, 1, 0}));
  x.zero_grad();
  max(x).backward();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{0, 0, 0, 0, 1, 0}));
  // NaN wins, as in PyTorch.
  Tensor n = Tensor::from_vector(std::vector<double>{1, std::nan(""), 7}, {3});
  EXPECT_TRUE(std::isnan(max(n).item()));
}

TEST(Reduce, SumTo) {
  Tensor x = random({2, 3, 4}, 5);
  Shape keep;
  // [2,3,4] -> [3,1]: sum over dim 0 (dropped) and dim 2 (kept as 1).
  EXPECT_TRUE(
      all_close(sum_to(x, {3, 1}).to_vector(), ref_reduce(x, {0, 2}, Op::Sum, keep), 1e-14, 0));
  EXPECT_EQ(sum_to(x, {3, 1}).shape(), (Shape{3, 1}));
  EXPECT_TRUE(
      all_close(sum_to(x, {4}).to_vector(), ref_reduce(x, {0, 1}, Op::Sum, keep), 1e-14, 0));
  EXPECT_TRUE(
      all_close(sum_to(x, {2, 1, 4}).to_vector(), ref_reduce(x, {1}, Op::Sum, keep), 1e-14, 0));
  EXPECT_TRUE(
      all_close(sum_to(x, {1, 4}).to_vector(), ref_reduce(x, {0, 1}, Op::Sum, keep), 1e-14, 0));
  EXPECT_NEAR(sum_to(x, {}).item(), sum(x).item(), 1e-14);
  EXPECT_TRUE(sum_to(x, {2, 3, 4}).same(x));  // nothing to do: the same tensor
  // The inverse of broadcasting: sum_to(expand(y)) = y * (number of copies).
  Tensor y = random({3, 1}, 6);
  EXPECT_TRUE(all_close(sum_to(y.expand({5, 3, 4}), {3, 1}), mul(y, 20.0), 1e-14, 0));
  Tensor g = random({2, 3, 4}, 7).requires_grad_();
  EXPECT_TRUE(grad_check([](const std::vector<Tensor>& in) { return sum_to(in[0], {3, 1}); }, {g}));
  EXPECT_THROW(sum_to(x, {3}), Error);
  EXPECT_THROW(sum_to(x, {5, 2, 3, 4}), Error);
}

TEST(Reduce, Errors) {
  Tensor x = random({2, 3}, 8);
  auto expect_error = [](const std::function<void()>& f, const std::vector<std::string>& parts) {
    try {
      f();
      ADD_FAILURE() << "expected an engine::Error";
    } catch (const Error& e) {
      std::string m = e.what();
      for (const auto& p : parts)
        EXPECT_NE(m.find(p), std::string::npos) << "'" << p << "' not in: " << m;
    }
  };
  expect_error([&] { sum(x, {2}); }, {"sum", "dimension 2"});
  expect_error([&] { mean(x, {-3}); }, {"mean", "dimension -3"});
  expect_error([&] { max(x, {1, -1}); }, {"max", "listed twice"});
  expect_error([&] { var(x, {0}, 2); }, {"var", "correction 2", "[2,3]"});
  expect_error([&] { sum_to(x, {4}); }, {"sum_to", "[2,3]", "[4]"});
  expect_error([&] { sum(Tensor::zeros({2}, DType::Int64)); }, {"sum", "int64"});
}
