// layer_norm_mlp (ConvNeXt's LayerNorm -> Linear -> GELU -> Linear as one op) against its
// composed twin mlp(layer_norm(x, ...), ...), forward and every gradient, float64 and float32,
// with and without the LayerNorm's affine, on awkward sizes and for each input asking for its
// gradient alone; finite differences; what the op keeps for its backward (not the LayerNorm's
// output); argument errors.
#include "engine/host_cache.h"
#include "tests/common/check.h"

using namespace engine;
using testing_util::all_close;
using testing_util::expect_error;
using testing_util::grad_check;
using testing_util::random;

namespace {

constexpr double kEps = 1e-6;  // ConvNeXt's

// x, ln_weight, ln_bias, w1, b1, w2.
Tensor fused(const std::vector<Tensor>& in) {
  return layer_norm_mlp(in[0], in[1], in[2], kEps, in[3], in[4], in[5]);
}
Tensor composed(const std::vector<Tensor>& in) {
  return mlp(layer_norm(in[0], in[1], in[2], kEps), in[3], in[4], in[5]);
}

struct Case {
  Shape x;  // [..., in]
  int64_t hidden, out;
  bool affine;
};

// Inputs with a per-row offset and scale (what a LayerNorm is for), weights scaled so GELU's
// input spreads over its curved part. Without affine, ln_weight and ln_bias are undefined.
std::vector<Tensor> inputs(const Case& cs, DType t, uint64_t& seed) {
  const int64_t in = cs.x.back();
  Tensor x = add(mul(random(cs.x, ++seed), 3.0), 2.0);
  std::vector<Tensor> v = {x,
                           cs.affine ? random({in}, ++seed, 0.5, 1.5) : Tensor(),
                           cs.affine ? random({in}, ++seed) : Tensor(),
                           random({cs.hidden, in}, ++seed, -1.5, 1.5),
                           random({cs.hidden}, ++seed),
                           random({cs.out, cs.hidden}, ++seed)};
  for (Tensor& p : v)
    if (p.defined()) p = p.to(t).requires_grad_();
  return v;
}

}  // namespace

TEST(LayerNormMlp, MatchesTheComposedOpsForwardAndBackward) {
  uint64_t seed = 1;
  for (DType t : {DType::Float64, DType::Float32}) {
    const double tol = t == DType::Float64 ? 1e-11 : 5e-5;
    for (const Case& cs : {Case{{2, 5, 3, 12}, 48, 12, true}, Case{{7, 9}, 13, 5, true},
                           Case{{7, 9}, 13, 5, false}, Case{{1, 1, 1, 4}, 16, 4, true},
                           Case{{33, 20}, 80, 17, true}}) {
      std::vector<Tensor> in = inputs(cs, t, seed);
      Shape ys = cs.x;
      ys.back() = cs.out;
      Tensor g = random(ys, ++seed).to(t);
      auto run = [&](auto&& f) {
        Tensor y = f(in);
        y.backward(g);
        std::vector<Tensor> out{y.detach()};
        for (Tensor& p : in)
          if (p.defined()) out.push_back(p.grad()), p.zero_grad();
        return out;
      };
      const std::vector<Tensor> got = run(fused), ref = run(composed);
      ASSERT_EQ(got.size(), ref.size());
      for (size_t i = 0; i < got.size(); ++i)
        EXPECT_TRUE(all_close(got[i], ref[i], tol, tol))
            << "output " << i << " (y, then the gradients in argument order) " << t << " in "
            << cs.x.back() << " hidden " << cs.hidden << " affine " << cs.affine;
    }
  }
}

// Each input alone asking for its gradient takes its own branches of the backward (the
// LayerNorm's backward only for x and its parameters, the recomputed LayerNorm output only for
// w1); nothing asks: no tape.
TEST(LayerNormMlp, EachGradientAloneMatchesAndNoTapeWithoutThem) {
  uint64_t seed = 20;
  std::vector<Tensor> in = inputs({{3, 4, 6}, 10, 6, true}, DType::Float64, seed);
  for (Tensor& p : in) p = p.detach();
  Tensor g = random({3, 4, 6}, ++seed);
  for (size_t which = 0; which < in.size(); ++which) {
    std::vector<Tensor> a = in, b = in;
    a[which] = in[which].detach().requires_grad_();
    b[which] = in[which].detach().requires_grad_();
    fused(a).backward(g);
    composed(b).backward(g);
    EXPECT_TRUE(all_close(a[which].grad(), b[which].grad(), 1e-11, 1e-11)) << "input " << which;
  }
  EXPECT_FALSE(fused(in).requires_grad());
  NoGradGuard no_grad;
  std::vector<Tensor> with_grad = in;
  with_grad[0] = in[0].detach().requires_grad_();
  EXPECT_FALSE(fused(with_grad).requires_grad());
}

TEST(LayerNormMlp, FiniteDifferences) {
  uint64_t seed = 40;
  std::vector<Tensor> in = inputs({{2, 3, 4}, 9, 5, true}, DType::Float64, seed);
  EXPECT_TRUE(grad_check(fused, in));
}

// What stays allocated after the forward: the hidden pre-activation, as for mlp, but not the
// LayerNorm's output, which the composition keeps as mlp's input. Measured as the bytes in use
// in the host block cache (tensors of 1 MiB or more: the [4096, 64] rows and the hidden tensor
// here; x itself was allocated before).
TEST(LayerNormMlp, KeepsNoLayerNormOutputForTheBackward) {
  if (!host_cache().enabled()) GTEST_SKIP() << "the host block cache is off (ASan build or "
                                               "ENGINE_CPU_NO_CACHE): nothing to measure with";
  const int64_t rows = 4096, in = 64, hidden = 256;
  const int64_t row_bytes = rows * in * 4, hidden_bytes = rows * hidden * 4;
  uint64_t seed = 60;
  const std::vector<Tensor> v = inputs({{rows, in}, hidden, in, true}, DType::Float32, seed);
  auto in_use = [] {
    const HostCacheStats s = host_cache().stats();
    return int64_t(s.reserved_bytes) - int64_t(s.cached_bytes);
  };
  auto kept_by = [&](auto&& f) {
    const int64_t before = in_use();
    Tensor y = f(v);
    return in_use() - before - row_bytes;  // y itself is [rows, in]
  };
  const int64_t ours = kept_by(fused), twin = kept_by(composed);
  EXPECT_GE(ours, hidden_bytes);
  EXPECT_LT(ours, hidden_bytes + row_bytes / 2) << "layer_norm_mlp keeps " << ours << " bytes";
  EXPECT_GE(twin, hidden_bytes + row_bytes) << "the composition keeps " << twin << " bytes";
}

TEST(LayerNormMlp, Errors) {
  uint64_t seed = 80;
  const std::vector<Tensor> v = inputs({{2, 3, 4}, 8, 4, true}, DType::Float64, seed);
  auto with = [&](size_t i, const Tensor& t) {
    std::vector<Tensor> w = v;
    w[i] = t;
    return w;
  };
  expect_error([&] { fused(with(1, random({5}, 81))); },
               {"layer_norm_mlp", "weight", "[5]", "4 features"});
  expect_error([&] { fused(with(2, random({4}, 82).to(DType::Float32))); },
               {"layer_norm_mlp", "dtype"});
  expect_error([&] { fused(with(0, random({2, 5}, 83))); }, {"layer_norm_mlp", "5 features"});
  expect_error([&] { fused(with(5, random({4, 9}, 84))); }, {"layer_norm_mlp", "second weight"});
  expect_error([&] { layer_norm_mlp(v[0], v[1], v[2], -1.0, v[3], v[4], v[5]); },
               {"layer_norm_mlp", "eps"});
}
