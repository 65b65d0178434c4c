// tests/engine/layernorm_test.cpp — layer_norm over the last dim.
//
// Three references: plain float64 loops (forward), the same function composed from engine
// ops (mean, var, sqrt, ...) whose autograd gives an independent backward (the candle rule: a
// fused fast path keeps its composed slow twin and a test shows they agree), and central
// differences. The ConvNeXt widths 96..768 run through the float32 kernel against float64.
#include <cmath>
#include <string>
#include <vector>

#include "tests/common/check.h"

namespace {

using namespace engine;
using testing_util::all_close;
using testing_util::grad_check;
using testing_util::random;

std::vector<double> layer_norm_ref(const Tensor& x, const Tensor& w, const Tensor& b,
                                   double eps) {
  const int64_t c = x.size(-1), m = x.numel() / c;
  std::vector<double> v = x.to_vector(), y(v.size());
  std::vector<double> wv = w.defined() ? w.to_vector() : std::vector<double>(c, 1.0);
  std::vector<double> bv = b.defined() ? b.to_vector() : std::vector<double>(c, 0.0);
  for (int64_t r = 0; r < m; ++r) {
    double mu = 0, var = 0;
    for (int64_t i = 0; i < c; ++i) mu += v[r * c + i];
    mu /= c;
    for (int64_t i = 0; i < c; ++i) var += (v[r * c + i] - mu) * (v[r * c + i] - mu);
    var /= c;
    for (int64_t i = 0; i < c; ++i)
      y[r * c + i] = (v[r * c + i] - mu) / std::sqrt(var + eps) * wv[i] + bv[i];
  }
  return y;
}

// The slow twin: the same function from differentiable engine ops.
Tensor layer_norm_composed(const Tensor& x, const Tensor& w, const Tensor& b, double eps) {
  Tensor mu = mean(x, {-1}, /*keepdim=*/true);
  Tensor var_b = var(x, {-1}, /*correction=*/0, /*keepdim=*/true);
  return add(mul(div(sub(x, mu), sqrt(add(var_b, eps))), w), b);
}

void expect_error(const std::function<void()>& f, const std::string& part) {
  try {
    f();
    ADD_FAILURE() << "expected an engine::Error containing '" << part << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

TEST(LayerNorm, ForwardMatchesReference) {
  const std::vector<Shape> shapes = {{2, 3, 5, 7}, {1, 1, 1, 1}, {5, 96}, {3, 2, 192}, {2, 13}};
  uint64_t seed = 200;
  for (const Shape& s : shapes) {
    const int64_t c = s.back();
    Tensor x = random(s, seed++, -2, 3);
    Tensor w = random({c}, seed++, 0.5, 2), b = random({c}, seed++, -1, 1);
    Tensor y = layer_norm(x, w, b, 1e-6);
    EXPECT_TRUE(all_close(y.to_vector(), layer_norm_ref(x, w, b, 1e-6), 1e-10, 1e-10)) << cat(s);
    Tensor y0 = layer_norm(x, {}, {}, 1e-5);
    EXPECT_TRUE(all_close(y0.to_vector(), layer_norm_ref(x, {}, {}, 1e-5), 1e-10, 1e-10))
        << "no affine " << cat(s);
  }
}

TEST(LayerNorm, NonContiguousInputAndWeight) {
  Tensor base = random({4, 7, 6}, 210);
  Tensor x = base.permute({1, 0, 2});  // [7, 4, 6], rows not in memory order
  Tensor w = random({12}, 211).slice(0, 0, 12, 2), b = random({6}, 212);  // strided weight
  EXPECT_TRUE(all_close(layer_norm(x, w, b).to_vector(), layer_norm_ref(x, w, b, 1e-6), 1e-10,
                        1e-10));
}

TEST(LayerNorm, GradCheck) {
  Tensor x = random({2, 3, 5}, 220, -1, 2).requires_grad_();
  Tensor w = random({5}, 221, 0.5, 2).requires_grad_();
  Tensor b = random({5}, 222, -1, 1).requires_grad_();
  EXPECT_TRUE(grad_check(
      [](const std::vector<Tensor>& in) { return layer_norm(in[0], in[1], in[2], 1e-5); },
      {x, w, b}));
  Tensor x2 = random({3, 1, 2, 4}, 223, -1, 2).requires_grad_();
  EXPECT_TRUE(grad_check([](const std::vector<Tensor>& in) { return layer_norm(in[0], {}, {}); },
                         {x2}));
}

TEST(LayerNorm, FusedAgreesWithComposedTwin) {
  // Same values and gradients as the composition of engine ops, on a shape large enough for
  // the threaded backward (per-thread dweight/dbias partials).
  Tensor x = random({4, 9, 11, 40}, 230, -3, 3).requires_grad_();
  Tensor w = random({40}, 231, 0.5, 2).requires_grad_();
  Tensor b = random({40}, 232, -1, 1).requires_grad_();
  Tensor gy = random(x.shape(), 233, -1, 1);
  Tensor y = layer_norm(x, w, b, 1e-6);
  y.backward(gy);
  Tensor dx = x.grad(), dw = w.grad(), db = b.grad();
  for (const Tensor& t : {x, w, b}) t.zero_grad();
  Tensor yc = layer_norm_composed(x, w, b, 1e-6);
  yc.backward(gy);
  EXPECT_TRUE(all_close(y, yc.detach(), 1e-10, 1e-10));
  EXPECT_TRUE(all_close(dx, x.grad(), 1e-9, 1e-10));
  EXPECT_TRUE(all_close(dw, w.grad(), 1e-9, 1e-10));
  EXPECT_TRUE(all_close(db, b.grad(), 1e-9, 1e-10));
}

TEST(LayerNorm, Float32ConvNeXtWidthsMatchFloat64) {
  // Rows of the widths ConvNeXt uses. The float64 run on the same (float-representable)
  // inputs is the reference. Forward: values |y| <~ 6, float sums of <= 768 terms ->
  // atol 2e-5. dweight/dbias sum over up to 600 rows of O(1) terms in float (per-thread
  // partials), so their error grows like sqrt(rows) * ulp(sum): rtol/atol 1e-4.
  uint64_t seed = 240;
  for (int64_t c : {96, 192, 384, 768}) {
    const int64_t m = 60000 / c;  // > 32768 elements: exercises the threaded path
    Tensor x64 = random({m, c}, seed++, -2, 3).to(DType::Float32).to(DType::Float64);
    Tensor w64 = random({c}, seed++, 0.5, 1.5).to(DType::Float32).to(DType::Float64);
    Tensor b64 = random({c}, seed++, -1, 1).to(DType::Float32).to(DType::Float64);
    Tensor gy64 = random({m, c}, seed++, -1, 1).to(DType::Float32).to(DType::Float64);
    std::vector<Tensor> ref = {x64, w64, b64}, got;
    for (const Tensor& t : ref) got.push_back(t.to(DType::Float32).requires_grad_());
    for (Tensor& t : ref) t.requires_grad_();
    Tensor y64 = layer_norm(ref[0], ref[1], ref[2]);
    Tensor y32 = layer_norm(got[0], got[1], got[2]);
    EXPECT_TRUE(all_close(y32.to_vector(), y64.to_vector(), 1e-5, 2e-5)) << "c=" << c;
    y64.backward(gy64);
    y32.backward(gy64.to(DType::Float32));
    EXPECT_TRUE(all_close(got[0].grad().to_vector(), ref[0].grad().to_vector(), 1e-4, 1e-5))
        << "dx, c=" << c;
    EXPECT_TRUE(all_close(got[1].grad().to_vector(), ref[1].grad().to_vector(), 1e-4, 1e-4))
        << "dweight, c=" << c;
    EXPECT_TRUE(all_close(got[2].grad().to_vector(), ref[2].grad().to_vector(), 1e-4, 1e-4))
        << "dbias, c=" << c;
  }
}

TEST(LayerNorm, OnlyWeightNeedsGradient) {
  Tensor x = random({6, 8}, 250);
  Tensor w = random({8}, 251, 0.5, 2).requires_grad_();
  Tensor b = random({8}, 252);
  Tensor gy = random({6, 8}, 253);
  layer_norm(x, w, b).backward(gy);
  // dweight = sum over rows of gy * xhat, xhat = the normalised input (layer_norm without affine).
  Tensor expect = sum(mul(gy, layer_norm(x, {}, {})), {0});
  EXPECT_TRUE(all_close(w.grad(), expect, 1e-12, 1e-12));
}

TEST(LayerNorm, BadArgumentsAreClearErrors) {
  Tensor x = random({2, 3, 4}, 260);
  expect_error([&] { layer_norm(x, random({3}, 261), {}); },
               "weight has shape [3] but input [2,3,4] has 4 features");
  expect_error([&] { layer_norm(x, {}, random({4}, 262).to(DType::Float32)); },
               "bias is float32 but input is float64");
  expect_error([&] { layer_norm(Tensor::zeros({2, 0}), {}, {}); }, "non-empty last dim");
  expect_error([&] { layer_norm(Tensor::zeros({2, 3}, DType::Int64), {}, {}); }, "int64");
}

}  // namespace
