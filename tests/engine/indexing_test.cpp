// cat / stack / index_select / gather: forward against plain index arithmetic on every dim
// (float64, float32 and int64), non-contiguous inputs, backward (slices for cat, scatter-ADD
// for repeated indices), finite-difference gradients, and the errors a user would hit.
#include <string>

#include "tests/common/check.h"

using namespace engine;
using testing_util::all_close;
using testing_util::grad_check;
using testing_util::random;

namespace {

// Multi-index helpers for a row-major shape.
std::vector<int64_t> unravel(int64_t flat, const Shape& s) {
  std::vector<int64_t> idx(s.size());
  for (int64_t d = static_cast<int64_t>(s.size()) - 1; d >= 0; --d) {
    idx[d] = flat % s[d];
    flat /= s[d];
  }
  return idx;
}
int64_t ravel(const std::vector<int64_t>& idx, const Shape& s) {
  int64_t flat = 0;
  for (size_t d = 0; d < s.size(); ++d) flat = flat * s[d] + idx[d];
  return flat;
}

Tensor random_index(const Shape& shape, int64_t n, uint64_t seed) {
  Generator gen(seed);
  std::vector<int64_t> v(numel(shape));
  for (auto& i : v) i = gen.randint(n);
  return Tensor::from_vector(v, shape);
}

using testing_util::expect_error;

}  // namespace

TEST(Cat, MatchesIndexArithmeticOnEveryDim) {
  for (int64_t d = 0; d < 3; ++d) {
    Shape s{2, 3, 4};
    std::vector<Tensor> xs;
    std::vector<int64_t> sizes{1, 3, 2};
    for (int k = 0; k < 3; ++k) {
      Shape sk = s;
      sk[d] = sizes[k];
      xs.push_back(random(sk, 10 * d + k));
    }
    Tensor y = cat(xs, d);
    Shape so = s;
    so[d] = 6;
    ASSERT_EQ(y.shape(), so);
    std::vector<double> got = y.to_vector();
    for (int64_t f = 0; f < y.numel(); ++f) {
      auto idx = unravel(f, so);
      int k = 0;
      while (idx[d] >= sizes[k]) idx[d] -= sizes[k++];
      EXPECT_EQ(got[f], xs[k].to_vector()[ravel(idx, xs[k].shape())]) << "dim " << d;
    }
    // Negative dim is the same.
    EXPECT_TRUE(all_close(cat(xs, d - 3), y, 0, 0));
  }
}

TEST(Cat, NonContiguousFloat32AndInt64Inputs) {
  Tensor a = random({3, 2}, 1, -1, 1, DType::Float32);
  Tensor b = random({2, 3}, 2, -1, 1, DType::Float32).transpose(0, 1);  // [3, 2] view
  Tensor y = cat({a, b}, 1);
  EXPECT_TRUE(all_close(y.slice(1, 0, 2), a, 0, 0));
  EXPECT_TRUE(all_close(y.slice(1, 2, 4), b, 0, 0));
  EXPECT_EQ(y.dtype(), DType::Float32);

  Tensor i = Tensor::from_vector(std::vector<int64_t>{1, 2, 3}, {3});
  Tensor j = Tensor::from_vector(std::vector<int64_t>{-4, 5}, {2});
  Tensor k = cat({i, j}, 0);
  EXPECT_EQ(k.dtype(), DType::Int64);
  EXPECT_EQ(k.to_vector(), (std::vector<double>{1, 2, 3, -4, 5}));
  // An input of size 0 along the dim is allowed.
  Tensor e = Tensor::empty({3, 0}, DType::Float32);
  EXPECT_TRUE(all_close(cat({a, e}, 1), a, 0, 0));
}

TEST(Cat, BackwardHandsEachInputItsSlice) {
  Tensor a = random({2, 3}, 3).requires_grad_(), b = random({2, 4}, 4).requires_grad_();
  Tensor g = random({2, 7}, 5);
  cat({a, b}, 1).backward(g);
  EXPECT_TRUE(all_close(a.grad(), g.slice(1, 0, 3), 0, 0));
  EXPECT_TRUE(all_close(b.grad(), g.slice(1, 3, 7), 0, 0));

  Tensor c = random({3, 2, 2}, 6).requires_grad_(), d = random({1, 2, 2}, 7).requires_grad_();
  EXPECT_TRUE(grad_check(
      [](const std::vector<Tensor>& in) {
        return cat({in[0], in[1], in[0]}, 0);
      },
      {c, d}));
}

TEST(Stack, EveryPositionAndGradient) {
  Tensor a = random({2, 3}, 8), b = random({2, 3}, 9);
  for (int64_t d = 0; d <= 2; ++d) {
    Tensor y = stack({a, b}, d);
    EXPECT_EQ(y.dim(), 3);
    EXPECT_EQ(y.size(d), 2);
    EXPECT_TRUE(all_close(y.select(d, 0), a, 0, 0)) << d;
    EXPECT_TRUE(all_close(y.select(d, 1), b, 0, 0)) << d;
  }
  EXPECT_TRUE(all_close(stack({a, b}, -1), stack({a, b}, 2), 0, 0));
  Tensor x = random({3}, 10).requires_grad_(), z = random({3}, 11).requires_grad_();
  EXPECT_TRUE(grad_check(
      [](const std::vector<Tensor>& in) {
        return stack({in[0], in[1]}, 1);
      },
      {x, z}));
}

TEST(IndexSelect, MatchesIndexArithmeticOnEveryDimWithRepeats) {
  const Shape s{4, 5, 3};
  Tensor x = random(s, 12);
  std::vector<double> xv = x.to_vector();
  for (int64_t d = 0; d < 3; ++d) {
    Tensor index = random_index({7}, s[d], 20 + d);  // 7 picks from <= 5: repeats for sure
    Tensor y = index_select(x, d, index);
    Shape so = s;
    so[d] = 7;
    ASSERT_EQ(y.shape(), so);
    std::vector<double> got = y.to_vector(), iv = index.to_vector();
    for (int64_t f = 0; f < y.numel(); ++f) {
      auto idx = unravel(f, so);
      idx[d] = static_cast<int64_t>(iv[idx[d]]);
      EXPECT_EQ(got[f], xv[ravel(idx, s)]);
    }
  }
}

TEST(IndexSelect, RepeatedIndicesAccumulateGradient) {
  Tensor x = random({3, 2}, 13).requires_grad_();
  Tensor index = Tensor::from_vector(std::vector<int64_t>{2, 0, 2, 2}, {4});
  Tensor g = random({4, 2}, 14);
  index_select(x, 0, index).backward(g);
  std::vector<double> gv = g.to_vector(), expect(6, 0.0);
  for (int c = 0; c < 2; ++c) {
    expect[0 * 2 + c] = gv[1 * 2 + c];
    expect[2 * 2 + c] = gv[0 * 2 + c] + gv[2 * 2 + c] + gv[3 * 2 + c];
  }
  EXPECT_TRUE(all_close(x.grad().to_vector(), expect, 1e-15, 0));
  for (int64_t d = 0; d < 3; ++d) {
    Tensor y = random({3, 4, 5}, 15 + d).requires_grad_();
    Tensor i = random_index({6}, y.size(d), 30 + d);
    EXPECT_TRUE(
        grad_check([&](const std::vector<Tensor>& in) { return index_select(in[0], d, i); }, {y}))
        << d;
  }
}

TEST(IndexSelect, LargeScatterUsesThreadsWithoutRaces) {
  // 200 picks of 10 rows, 600 columns: column blocks run on several threads; every repeat of a
  // row must still be summed exactly once.
  Tensor x = Tensor::zeros({10, 600}, DType::Float64).requires_grad_();
  Tensor index = random_index({200}, 10, 40);
  index_select(x, 0, index).backward(Tensor::ones({200, 600}, DType::Float64));
  std::vector<double> count(10, 0.0);
  for (double i : index.to_vector()) count[static_cast<int>(i)] += 1;
  Tensor expect = Tensor::from_vector(count, {10, 1}).expand({10, 600});
  EXPECT_TRUE(all_close(x.grad(), expect, 0, 0));
}

TEST(IndexSelect, Int64AndFloat32Tensors) {
  Tensor labels = Tensor::from_vector(std::vector<int64_t>{10, 11, 12, 13}, {4});
  Tensor index = Tensor::from_vector(std::vector<int64_t>{3, 3, 0}, {3});
  EXPECT_EQ(index_select(labels, 0, index).to_vector(), (std::vector<double>{13, 13, 10}));
  Tensor f = random({4, 2}, 41, -1, 1, DType::Float32);
  Tensor y = index_select(f, 0, index);
  EXPECT_EQ(y.dtype(), DType::Float32);
  EXPECT_TRUE(all_close(y.select(0, 2), f.select(0, 0), 0, 0));
}

TEST(Gather, MatchesTorchSemanticsOnEveryDim) {
  const Shape s{3, 4, 5};
  Tensor x = random(s, 16);
  std::vector<double> xv = x.to_vector();
  for (int64_t d = 0; d < 3; ++d) {
    // The index may be longer than x along d and shorter on the other dims (torch.gather).
    Shape is{2, 3, 4};
    is[d] = 6;
    Tensor index = random_index(is, s[d], 50 + d);
    Tensor y = gather(x, d, index);
    ASSERT_EQ(y.shape(), is);
    std::vector<double> got = y.to_vector(), iv = index.to_vector();
    for (int64_t f = 0; f < y.numel(); ++f) {
      auto idx = unravel(f, is);
      idx[d] = static_cast<int64_t>(iv[f]);
      EXPECT_EQ(got[f], xv[ravel(idx, s)]) << "dim " << d << " element " << f;
    }
  }
}

TEST(Gather, BackwardScatterAddsAndGradCheck) {
  Tensor x = random({2, 3}, 17).requires_grad_();
  Tensor index = Tensor::from_vector(std::vector<int64_t>{1, 1, 1, 0, 2, 0, 0, 0}, {2, 4});
  Tensor g = random({2, 4}, 18);
  gather(x, 1, index).backward(g);
  std::vector<double> gv = g.to_vector();
  // Row 0 picks columns 1,1,1,0; row 1 picks 2,0,0,0.
  std::vector<double> expect{gv[3], gv[0] + gv[1] + gv[2], 0, gv[5] + gv[6] + gv[7], 0, gv[4]};
  EXPECT_TRUE(all_close(x.grad().to_vector(), expect, 1e-15, 0));

  for (int64_t d = 0; d < 3; ++d) {
    Tensor y = random({3, 4, 2}, 19 + d).requires_grad_();
    Shape is{2, 3, 2};
    is[d] = 5;
    Tensor i = random_index(is, y.size(d), 60 + d);
    EXPECT_TRUE(grad_check([&](const std::vector<Tensor>& in) { return gather(in[0], d, i); }, {y}))
        << d;
  }
}

TEST(Gather, Int64Values) {
  Tensor x = Tensor::from_vector(std::vector<int64_t>{5, 6, 7, 8}, {2, 2});
  Tensor i = Tensor::from_vector(std::vector<int64_t>{1, 0, 1, 1}, {2, 2});
  EXPECT_EQ(gather(x, 1, i).to_vector(), (std::vector<double>{6, 5, 8, 8}));
}

TEST(Indexing, Errors) {
  Tensor x = random({4, 5}, 70);
  Tensor bad = Tensor::from_vector(std::vector<int64_t>{0, 7, 1}, {3});
  expect_error([&] { index_select(x, 1, bad); }, {"index_select", "index 7", "size 5"});
  Tensor neg = Tensor::from_vector(std::vector<int64_t>{-1}, {1});
  expect_error([&] { index_select(x, 0, neg); }, {"index_select", "index -1", "size 4"});
  expect_error([&] { index_select(x, 0, Tensor::zeros({2}, DType::Float32)); },
               {"index_select", "int64", "float32"});
  expect_error(
      [&] {
        index_select(x, 0, Tensor::zeros({2, 2}, DType::Int64));
      },
      {"index_select", "1-D", "[2,2]"});
  Tensor gi = Tensor::from_vector(std::vector<int64_t>{0, 1, 3, 9}, {2, 2});
  expect_error([&] { gather(x, 0, gi); }, {"gather", "index 9", "size 4"});
  expect_error([&] { gather(x, 1, Tensor::zeros({4}, DType::Int64)); }, {"gather", "rank"});
  expect_error(
      [&] {
        gather(x, 0, Tensor::zeros({2, 6}, DType::Int64));
      },
      {"gather", "[2,6]", "[4,5]"});
  expect_error([&] { cat({x, random({3, 4}, 71)}, 0); }, {"cat", "[3,4]", "[4,5]"});
  expect_error(
      [&] {
        cat({x, random({4, 5}, 72, -1, 1, DType::Float32)}, 0);
      },
      {"cat", "float32", "float64"});
  expect_error([&] { cat({}, 0); }, {"cat"});
  expect_error([&] { cat({x}, 2); }, {"cat", "dimension 2"});
  expect_error([&] { stack({x, random({5, 4}, 73)}, 0); }, {"stack", "[5,4]", "[4,5]"});
}
