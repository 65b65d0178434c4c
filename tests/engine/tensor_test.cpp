// Tensor: creation, views (view/reshape/permute/transpose/slice/select/expand/unsqueeze/
// squeeze/flatten) share storage and index like the plain index arithmetic below, writes
// through a view reach the base, contiguous()/clone()/to(dtype), gradients through chains of
// views, the errors of bad view requests, and Generator determinism.
#include <cmath>

#include "kernels/rng.h"
#include "tests/common/check.h"

using namespace engine;
using testing_util::all_close;
using testing_util::grad_check;
using testing_util::random;

namespace {

// x.to_vector() as a function of a multi-index, for checking views element by element.
struct Dense {
  Shape shape;
  std::vector<double> v;
  explicit Dense(const Tensor& t) : shape(t.shape()), v(t.to_vector()) {}
  double at(const std::vector<int64_t>& idx) const {
    int64_t f = 0;
    for (size_t d = 0; d < shape.size(); ++d) f = f * shape[d] + idx[d];
    return v[f];
  }
};

// Calls f(index) for every multi-index of shape.
void for_each_index(const Shape& s, const std::function<void(const std::vector<int64_t>&)>& f) {
  std::vector<int64_t> idx(s.size(), 0);
  for (int64_t n = 0; n < numel(s); ++n) {
    f(idx);
    for (int64_t d = static_cast<int64_t>(s.size()) - 1; d >= 0; --d) {
      if (++idx[d] < s[d]) break;
      idx[d] = 0;
    }
  }
}

bool shares_storage(const Tensor& a, const Tensor& b) {
  return a.impl().storage.get() == b.impl().storage.get();
}

using testing_util::expect_error;

}  // namespace

TEST(Tensor, CreationAndHostAccess) {
  EXPECT_EQ(Tensor::zeros({2, 3}).to_vector(), std::vector<double>(6, 0.0));
  EXPECT_EQ(Tensor::ones({4}, DType::Float64).to_vector(), std::vector<double>(4, 1.0));
  EXPECT_EQ(Tensor::full({2}, -2.5).to_vector(), (std::vector<double>{-2.5, -2.5}));
  EXPECT_EQ(Tensor::arange(4, DType::Int64).to_vector(), (std::vector<double>{0, 1, 2, 3}));
  Tensor s = Tensor::scalar(3.5, DType::Float64);
  EXPECT_EQ(s.dim(), 0);
  EXPECT_EQ(s.item(), 3.5);
  Tensor f = Tensor::from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_EQ(f.dtype(), DType::Float32);
  EXPECT_EQ(f.strides(), (Shape{3, 1}));
  EXPECT_TRUE(f.is_contiguous());
  EXPECT_EQ(f.size(-1), 3);
  expect_error(
      [] {
        Tensor::from_vector(std::vector<double>{1, 2, 3}, {2, 2});
      },
      {"from_vector", "3", "[2,2]"});
  expect_error([&] { f.item(); }, {"item", "6 elements"});
  expect_error([] { Tensor::empty({2, -1}); }, {"negative", "[2,-1]"});
  expect_error([&] { f.data<double>(); }, {"float32"});
}

TEST(TensorViews, ViewReshapeShareStorage) {
  Tensor x = random({2, 3, 4}, 1);
  Tensor v = x.view({6, -1});
  EXPECT_EQ(v.shape(), (Shape{6, 4}));
  EXPECT_TRUE(shares_storage(v, x));
  EXPECT_EQ(v.to_vector(), x.to_vector());  // same row-major order
  Tensor r = x.reshape({4, 6});
  EXPECT_TRUE(shares_storage(r, x));
  // A transposed tensor cannot be viewed as 1-D, but reshape copies.
  Tensor t = x.transpose(1, 2);
  expect_error([&] { t.view({24}); }, {"view", "reshape"});
  Tensor rt = t.reshape({24});
  EXPECT_FALSE(shares_storage(rt, x));
  EXPECT_EQ(rt.to_vector(), t.contiguous().to_vector());
  // Some non-contiguous views can still be viewed: splitting a dim of a transposed tensor.
  Tensor split = t.view({2, 2, 2, 3});
  EXPECT_TRUE(shares_storage(split, x));
  EXPECT_EQ(split.to_vector(), t.to_vector());
}

TEST(TensorViews, PermuteTransposeIndexCorrectly) {
  Tensor x = random({2, 3, 4, 5}, 2);  // NHWC
  Dense dx(x);
  Tensor nchw = x.permute({0, 3, 1, 2});
  EXPECT_EQ(nchw.shape(), (Shape{2, 5, 3, 4}));
  EXPECT_TRUE(shares_storage(nchw, x));
  EXPECT_FALSE(nchw.is_contiguous());
  Dense dp(nchw);
  for_each_index(nchw.shape(), [&](const std::vector<int64_t>& i) {
    ASSERT_EQ(dp.at(i), dx.at({i[0], i[2], i[3], i[1]}));
  });
  Dense dt(x.transpose(-1, 1));
  for_each_index({2, 5, 4, 3}, [&](const std::vector<int64_t>& i) {
    ASSERT_EQ(dt.at(i), dx.at({i[0], i[3], i[2], i[1]}));
  });
  // Permuting back restores a contiguous layout.
  EXPECT_TRUE(nchw.permute({0, 2, 3, 1}).is_contiguous());
}

TEST(TensorViews, SliceWithStepAndSelect) {
  Tensor x = random({5, 9}, 3);
  Dense dx(x);
  struct Case {
    int64_t dim, start, end, step;
  };
  for (const auto& c : std::vector<Case>{{1, 1, 8, 3},
                                         {1, 0, 9, 2},
                                         {0, -3, 100, 1},
                                         {0, 4, 2, 1},
                                         {1, -9, -1, 4},
                                         {0, 0, 5, 7}}) {
    Tensor s = x.slice(c.dim, c.start, c.end, c.step);
    EXPECT_TRUE(shares_storage(s, x));
    // Python slicing: negative start/end count from the end, out-of-range bounds clamp.
    const int64_t n = x.size(c.dim);
    int64_t b = std::clamp(c.start < 0 ? c.start + n : c.start, int64_t{0}, n);
    int64_t e = std::max(std::clamp(c.end < 0 ? c.end + n : c.end, int64_t{0}, n), b);
    ASSERT_EQ(s.size(c.dim), (e - b + c.step - 1) / c.step) << c.start << ":" << c.end;
    Dense ds(s);
    for_each_index(s.shape(), [&](const std::vector<int64_t>& i) {
      std::vector<int64_t> j = i;
      j[c.dim] = b + i[c.dim] * c.step;
      ASSERT_EQ(ds.at(i), dx.at(j));
    });
  }
  Tensor row = x.select(0, -2);  // negative index counts from the end
  EXPECT_EQ(row.shape(), (Shape{9}));
  EXPECT_EQ(row.to_vector(), x.slice(0, 3, 4).to_vector());
  Tensor col = x.select(1, 4);
  for (int64_t i = 0; i < 5; ++i) EXPECT_EQ(col.to_vector()[i], dx.at({i, 4}));
}

TEST(TensorViews, WritesThroughViewsReachTheBase) {
  Tensor x = Tensor::zeros({4, 6}, DType::Float64);
  x.slice(1, 1, 6, 2).fill_(7.0);  // columns 1, 3, 5
  x.select(0, 2).fill_(-1.0);
  Dense d(x);
  for_each_index({4, 6}, [&](const std::vector<int64_t>& i) {
    double expect = i[0] == 2 ? -1.0 : (i[1] % 2 == 1 ? 7.0 : 0.0);
    ASSERT_EQ(d.at(i), expect);
  });
  Tensor src = random({3, 4}, 4);
  x.slice(0, 1, 4).slice(1, 2, 6).copy_(src);
  EXPECT_EQ(x.slice(0, 1, 4).slice(1, 2, 6).to_vector(), src.to_vector());
}

TEST(TensorViews, ExpandUnsqueezeSqueezeFlatten) {
  Tensor b = random({3, 1}, 5);
  Tensor e = b.expand({2, 3, 4});
  EXPECT_EQ(e.shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(e.strides()[0], 0);
  EXPECT_EQ(e.strides()[2], 0);
  EXPECT_TRUE(shares_storage(e, b));
  Dense de(e), db(b);
  for_each_index(e.shape(), [&](const std::vector<int64_t>& i) {
    ASSERT_EQ(de.at(i), db.at({i[1], 0}));
  });
  EXPECT_EQ(b.expand({-1, 5}).shape(), (Shape{3, 5}));

  Tensor x = random({2, 3}, 6);
  EXPECT_EQ(x.unsqueeze(0).shape(), (Shape{1, 2, 3}));
  EXPECT_EQ(x.unsqueeze(-1).shape(), (Shape{2, 3, 1}));
  EXPECT_EQ(x.unsqueeze(1).shape(), (Shape{2, 1, 3}));
  EXPECT_EQ(x.unsqueeze(1).to_vector(), x.to_vector());
  EXPECT_EQ(x.unsqueeze(1).squeeze(1).shape(), (Shape{2, 3}));
  EXPECT_EQ(x.squeeze(0).shape(), (Shape{2, 3}));  // size 2: no-op
  // unsqueeze of a transposed view keeps sharing storage.
  Tensor tu = x.transpose(0, 1).unsqueeze(1);
  EXPECT_TRUE(shares_storage(tu, x));
  EXPECT_EQ(tu.to_vector(), x.transpose(0, 1).to_vector());

  Tensor y = random({2, 3, 4, 5}, 7);
  EXPECT_EQ(y.flatten().shape(), (Shape{120}));
  EXPECT_EQ(y.flatten(1).shape(), (Shape{2, 60}));
  EXPECT_EQ(y.flatten(1, 2).shape(), (Shape{2, 12, 5}));
  EXPECT_EQ(y.flatten(-2).shape(), (Shape{2, 3, 20}));
  EXPECT_EQ(y.flatten(1, 2).to_vector(), y.to_vector());
  EXPECT_EQ(Tensor::scalar(2.0).flatten().shape(), (Shape{1}));
}

TEST(Tensor, ContiguousCloneAndDtype) {
  Tensor x = random({3, 4}, 8);
  EXPECT_TRUE(x.contiguous().same(x));  // already packed: no copy
  Tensor t = x.transpose(0, 1);
  Tensor c = t.contiguous();
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_FALSE(shares_storage(c, x));
  EXPECT_EQ(c.to_vector(), t.to_vector());
  Tensor k = x.clone();
  EXPECT_FALSE(shares_storage(k, x));
  k.fill_(0.0);
  EXPECT_NE(x.to_vector(), k.to_vector());  // the clone is independent

  Tensor f = x.to(DType::Float32);
  EXPECT_EQ(f.dtype(), DType::Float32);
  std::vector<double> xv = x.to_vector(), fv = f.to_vector();
  for (size_t i = 0; i < xv.size(); ++i)
    EXPECT_EQ(fv[i], static_cast<double>(static_cast<float>(xv[i])));
  EXPECT_TRUE(x.to(DType::Float64).same(x));
  Tensor i = Tensor::from_vector(std::vector<double>{-2.7, 0.2, 3.9}, {3}).to(DType::Int64);
  EXPECT_EQ(i.to_vector(), (std::vector<double>{-2, 0, 3}));  // truncation, as C++ and torch
  EXPECT_EQ(t.to(DType::Float32).to_vector(), f.transpose(0, 1).to_vector());  // strided source
}

TEST(TensorViews, GradientsThroughViews) {
  Tensor x = random({2, 3, 4}, 9).requires_grad_();
  auto chains = std::vector<std::function<Tensor(const Tensor&)>>{
      [](const Tensor& t) {
        return t.view({6, 4}).transpose(0, 1);
      },
      [](const Tensor& t) {
        return t.permute({2, 0, 1}).reshape({4, 6});
      },
      [](const Tensor& t) { return t.slice(2, 0, 4, 3).slice(1, 1, 3); },
      [](const Tensor& t) { return t.select(1, -1); },
      [](const Tensor& t) {
        return t.slice(0, 1, 2).expand({3, 3, 4});
      },
      [](const Tensor& t) { return t.unsqueeze(1).squeeze(1).flatten(0, 1); },
      [](const Tensor& t) { return t.transpose(0, 2).contiguous().view({-1}); },
      [](const Tensor& t) { return mul(t.select(2, 0), t.select(2, 3)); },  // two views, one base
  };
  for (size_t k = 0; k < chains.size(); ++k)
    EXPECT_TRUE(grad_check([&](const std::vector<Tensor>& in) { return chains[k](in[0]); }, {x}))
        << "chain " << k;
  // Exact: the gradient of a strided slice lands on the picked elements only.
  Tensor y = Tensor::zeros({6}, DType::Float64).requires_grad_();
  sum(y.slice(0, 1, 6, 2)).backward();
  EXPECT_EQ(y.grad().to_vector(), (std::vector<double>{0, 1, 0, 1, 0, 1}));
  // Through dtype conversion: float64 -> float32 -> float64 passes the gradient through.
  Tensor z = random({3}, 10).requires_grad_();
  Tensor w = random({3}, 11, -1, 1, DType::Float32);
  sum(mul(z.to(DType::Float32), w)).backward();
  EXPECT_EQ(z.grad().dtype(), DType::Float64);
  EXPECT_EQ(z.grad().to_vector(), w.to_vector());
}

TEST(TensorViews, Errors) {
  Tensor x = random({2, 3}, 12);
  expect_error([&] { x.view({4}); }, {"view", "[2,3]", "[4]"});
  expect_error([&] { x.view({-1, -1}); }, {"view", "-1"});
  expect_error([&] { x.reshape({5, -1}); }, {"reshape", "[2,3]", "[5,-1]"});
  expect_error([&] { x.permute({0}); }, {"permute", "[2,3]"});
  expect_error([&] { x.permute({1, 1}); }, {"permute", "twice"});
  expect_error([&] { x.transpose(0, 2); }, {"transpose", "dimension 2"});
  expect_error([&] { x.select(1, 3); }, {"select", "index 3", "size 3"});
  expect_error([&] { x.select(0, -3); }, {"select", "index -3"});
  expect_error([&] { x.slice(0, 0, 2, 0); }, {"slice", "step"});
  expect_error([&] { x.expand({2, 4}); }, {"expand", "[2,3]", "[2,4]"});
  expect_error([&] { x.expand({3}); }, {"expand", "fewer"});
  expect_error([&] { x.unsqueeze(3); }, {"unsqueeze", "dimension 3"});
  expect_error([&] { x.flatten(1, 0); }, {"flatten", "start_dim"});
  expect_error([&] { x.copy_(random({3, 2}, 13)); }, {"copy_", "[2,3]", "[3,2]"});
  expect_error([] { Tensor().shape(); }, {"undefined"});
}

TEST(Generator, Determinism) {
  Generator a(42), b(42), c(43);
  Tensor ra = Tensor::randn({5, 7}, a), rb = Tensor::randn({5, 7}, b),
         rc = Tensor::randn({5, 7}, c);
  EXPECT_EQ(ra.to_vector(), rb.to_vector());
  EXPECT_NE(ra.to_vector(), rc.to_vector());
  EXPECT_EQ(a.offset(), 35u);  // one counter per element
  // The next draw continues the stream; restoring the state replays it.
  Tensor next = Tensor::rand({4}, a, -1, 1, DType::Float64);
  EXPECT_NE(next.to_vector(), Tensor::rand({4}, c, -1, 1, DType::Float64).to_vector());
  a.set_state(42, 35);
  EXPECT_EQ(Tensor::rand({4}, a, -1, 1, DType::Float64).to_vector(), next.to_vector());
  // rand is the documented map of the counter RNG.
  Generator d(7);
  d.reserve(3);
  std::vector<double> u = Tensor::rand({5}, d, 2, 4, DType::Float64).to_vector();
  for (int i = 0; i < 5; ++i) EXPECT_EQ(u[i], 2 + 2 * kernels::rng_uniform(7, 3 + i));
  // float32 tensors from the same state are the float64 values rounded.
  Generator e(42);
  EXPECT_EQ(Tensor::randn({5, 7}, e, DType::Float32).to_vector(),
            ra.to(DType::Float32).to_vector());
}

TEST(Generator, Distributions) {
  Generator g(2024);
  // 20000 draws: the mean's sd is 1/sqrt(12 * 20000) = 2e-3 for U[0,1) and 7e-3 for N(0,1);
  // the variance of N(0,1) has sd sqrt(2/20000) = 0.01. Bounds are 5 sd.
  std::vector<double> u = Tensor::rand({20000}, g, 0, 1, DType::Float64).to_vector();
  double mu = 0;
  for (double v : u) {
    ASSERT_GE(v, 0.0);
    ASSERT_LT(v, 1.0);
    mu += v;
  }
  EXPECT_NEAR(mu / 20000, 0.5, 5 * 2.04e-3);
  std::vector<double> n = Tensor::randn({20000}, g, DType::Float64).to_vector();
  double m = 0, s = 0;
  for (double v : n) m += v;
  m /= 20000;
  for (double v : n) s += (v - m) * (v - m);
  EXPECT_NEAR(m, 0.0, 5 * 7.1e-3);
  EXPECT_NEAR(s / 19999, 1.0, 5 * 0.01);
  for (int i = 0; i < 1000; ++i) {
    int64_t r = g.randint(7);
    ASSERT_GE(r, 0);
    ASSERT_LT(r, 7);
  }
  EXPECT_EQ(g.randint(0), 0);
}

TEST(TensorViews, DroppingAVeryDeepGraphDoesNotOverflowTheStack) {
  // 200000 chained views (cheap: no data is copied) make a graph whose teardown used to recurse
  // once per node; it must be freed iteratively, and backward must still reach the leaf.
  Tensor x = random({2, 3}, 14).requires_grad_();
  Tensor y = x;
  for (int i = 0; i < 200000; ++i) y = y.view({i % 2 ? 2 : 3, i % 2 ? 3 : 2});
  sum(y).backward();
  EXPECT_TRUE(all_close(x.grad(), Tensor::ones({2, 3}, DType::Float64), 0, 0));
  y = Tensor();  // drops the last handle to the whole chain
  EXPECT_FALSE(y.defined());
}

// Device names, and the command line's GPU kernel choice, which every build checks (a build
// without CUDA then has nothing to apply it to).
TEST(Device, ParsesNamesAndChecksGpuKernelChoices) {
  EXPECT_EQ(Device::parse("cpu"), Device::cpu());
  EXPECT_EQ(Device::parse("cuda:1"), Device::cuda(1));
  EXPECT_THROW(Device::parse("tpu"), Error);
  EXPECT_THROW(set_gpu_kernels("fastest"), Error);
  EXPECT_NO_THROW(set_gpu_kernels("default"));
}
