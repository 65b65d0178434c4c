// mlp (ConvNeXt's Linear -> GELU -> Linear as one op) against its composed twin
// linear(bias_gelu(linear(x, w1), b1), w2), forward and every gradient, float64 and float32,
// on awkward sizes and every subset of inputs that asks for a gradient; finite differences; what
// the op keeps for its backward (one hidden-wide tensor, not two); argument errors.
#include "engine/host_cache.h"
#include "tests/common/check.h"

using namespace engine;
using testing_util::all_close;
using testing_util::expect_error;
using testing_util::grad_check;
using testing_util::random;

namespace {

Tensor composed(const Tensor& x, const Tensor& w1, const Tensor& b1, const Tensor& w2) {
  return linear(bias_gelu(linear(x, w1), b1), w2);
}

struct Case {
  Shape x;  // [..., in]
  int64_t hidden, out;
};

}  // namespace

TEST(Mlp, MatchesTheComposedOpsForwardAndBackward) {
  uint64_t seed = 1;
  for (DType t : {DType::Float64, DType::Float32}) {
    const double tol = t == DType::Float64 ? 1e-12 : 3e-5;
    for (const Case& cs : {Case{{2, 5, 3, 12}, 48, 12}, Case{{7, 9}, 13, 5},
                           Case{{1, 1, 1, 4}, 16, 4}, Case{{33, 20}, 80, 17}}) {
      const int64_t in = cs.x.back();
      // Inputs of GELU spread over [-3, 3]: weights scaled so the pre-activation is O(1).
      Tensor x = random(cs.x, ++seed).to(t).requires_grad_();
      Tensor w1 = random({cs.hidden, in}, ++seed, -1.5, 1.5).to(t).requires_grad_();
      Tensor b1 = random({cs.hidden}, ++seed).to(t).requires_grad_();
      Tensor w2 = random({cs.out, cs.hidden}, ++seed).to(t).requires_grad_();
      Shape ys = cs.x;
      ys.back() = cs.out;
      Tensor g = random(ys, ++seed).to(t);
      const std::vector<Tensor*> params{&x, &w1, &b1, &w2};

      Tensor y = mlp(x, w1, b1, w2);
      y.backward(g);
      std::vector<Tensor> got{y.detach()};
      for (Tensor* p : params) got.push_back(p->grad()), p->zero_grad();
      Tensor yr = composed(x, w1, b1, w2);
      yr.backward(g);
      std::vector<Tensor> ref{yr.detach()};
      for (Tensor* p : params) ref.push_back(p->grad()), p->zero_grad();
      const char* names[] = {"y", "dx", "dw1", "db1", "dw2"};
      for (size_t i = 0; i < got.size(); ++i)
        EXPECT_TRUE(all_close(got[i], ref[i], tol, tol))
            << names[i] << " " << t << " rank " << cs.x.size() << " in " << cs.x.back()
            << " hidden " << cs.hidden;
    }
  }
}

// Each input alone asking for its gradient takes a different branch of the backward (the
// recomputed GELU output only for w2, the in-place slope only for the others).
TEST(Mlp, EachGradientAloneMatchesAndNoTapeWithoutThem) {
  Tensor x = random({3, 4, 6}, 10), w1 = random({10, 6}, 11), b1 = random({10}, 12);
  Tensor w2 = random({6, 10}, 13), g = random({3, 4, 6}, 14);
  std::vector<Tensor> in{x, w1, b1, w2};
  for (size_t which = 0; which < in.size(); ++which) {
    std::vector<Tensor> a, b;
    for (size_t i = 0; i < in.size(); ++i) {
      a.push_back(i == which ? in[i].detach().requires_grad_() : in[i]);
      b.push_back(i == which ? in[i].detach().requires_grad_() : in[i]);
    }
    mlp(a[0], a[1], a[2], a[3]).backward(g);
    composed(b[0], b[1], b[2], b[3]).backward(g);
    EXPECT_TRUE(all_close(a[which].grad(), b[which].grad(), 1e-12, 1e-12)) << "input " << which;
    for (size_t i = 0; i < in.size(); ++i)
      if (i != which) {
        EXPECT_FALSE(a[i].grad().defined()) << "input " << i;
      }
  }
  EXPECT_FALSE(mlp(x, w1, b1, w2).requires_grad());
  NoGradGuard no_grad;
  EXPECT_FALSE(mlp(x.detach().requires_grad_(), w1, b1, w2).requires_grad());
}

TEST(Mlp, FiniteDifferences) {
  Tensor x = random({2, 3, 4}, 20).requires_grad_(), w1 = random({9, 4}, 21).requires_grad_();
  Tensor b1 = random({9}, 22).requires_grad_(), w2 = random({5, 9}, 23).requires_grad_();
  auto f = [](const std::vector<Tensor>& in) { return mlp(in[0], in[1], in[2], in[3]); };
  EXPECT_TRUE(grad_check(f, {x, w1, b1, w2}));
}

// The point of the op: after the forward, what stays allocated for the backward is the hidden
// pre-activation once (the composition keeps it and the GELU output: two). Measured as the
// bytes in use in the host block cache, which serves every tensor of 1 MiB or more (the hidden
// tensors here are 4 MiB; everything else is far below 1 MiB).
TEST(Mlp, KeepsOneHiddenWideTensorForTheBackward) {
  if (!host_cache().enabled()) GTEST_SKIP() << "the host block cache is off (ASan build or "
                                               "ENGINE_CPU_NO_CACHE): nothing to measure with";
  const int64_t rows = 4096, in = 8, hidden = 256;
  const int64_t hidden_bytes = rows * hidden * 4;
  Tensor x = random({rows, in}, 30).to(DType::Float32).requires_grad_();
  Tensor w1 = random({hidden, in}, 31).to(DType::Float32).requires_grad_();
  Tensor b1 = random({hidden}, 32).to(DType::Float32).requires_grad_();
  Tensor w2 = random({in, hidden}, 33).to(DType::Float32).requires_grad_();
  auto in_use = [] {
    const HostCacheStats s = host_cache().stats();
    return int64_t(s.reserved_bytes) - int64_t(s.cached_bytes);
  };
  auto kept_by = [&](auto&& f) {
    const int64_t before = in_use();
    Tensor y = f();
    return in_use() - before;
  };
  const int64_t fused = kept_by([&] { return mlp(x, w1, b1, w2); });
  const int64_t twin = kept_by([&] { return composed(x, w1, b1, w2); });
  EXPECT_GE(fused, hidden_bytes);
  EXPECT_LT(fused, 2 * hidden_bytes) << "mlp keeps " << fused << " bytes";
  EXPECT_GE(twin, 2 * hidden_bytes) << "the composition keeps " << twin << " bytes";
}

TEST(Mlp, Errors) {
  Tensor x = random({2, 3, 4}, 40), w1 = random({8, 4}, 41), b1 = random({8}, 42);
  Tensor w2 = random({4, 8}, 43);
  expect_error([&] { mlp(random({2, 5}, 44), w1, b1, w2); }, {"mlp", "5 features", "[8,4]"});
  expect_error([&] { mlp(x, w1, random({7}, 45), w2); }, {"mlp", "bias"});
  expect_error([&] { mlp(x, w1, b1, random({4, 9}, 46)); }, {"mlp", "second weight"});
  expect_error([&] { mlp(x, w1, b1.to(DType::Float32), w2); }, {"mlp", "dtype"});
  expect_error([&] { mlp(x, w1.view({32}), b1, w2); }, {"mlp", "[out, in]"});
}
