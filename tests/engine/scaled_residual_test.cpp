// scaled_residual (ConvNeXt's block tail as one op) against its composed twin
// x + s * gamma * (h + bias) built from broadcasting mul/add, forward and every gradient, with
// and without bias and stochastic depth, float64 and float32; finite differences; the drop-path
// factors it takes against drop_path's own mask; argument errors.
#include <cmath>

#include "tests/common/check.h"

using namespace engine;
using testing_util::all_close;
using testing_util::grad_check;
using testing_util::random;

namespace {

// The composition torchvision writes: stochastic_depth(layer_scale * (h + bias)) + x.
Tensor composed(const Tensor& x, const Tensor& h, const Tensor& gamma, const Tensor& bias,
                const Tensor& s) {
  Tensor v = bias.defined() ? add(h, bias) : h;
  Tensor y = mul(v, gamma);
  if (s.defined()) {
    Shape per_sample(x.dim(), 1);
    per_sample[0] = x.size(0);
    y = mul(y, s.view(per_sample));
  }
  return add(y, x);
}

struct Case {
  Shape shape;
  bool bias, drop;
};

}  // namespace

TEST(ScaledResidual, MatchesTheComposedOpsForwardAndBackward) {
  uint64_t seed = 1;
  for (DType t : {DType::Float64, DType::Float32}) {
    const double tol = t == DType::Float64 ? 1e-13 : 2e-5;
    for (const Case& cs : {Case{{3, 5, 4, 7}, true, true}, Case{{3, 5, 4, 7}, false, false},
                           Case{{2, 9, 16}, true, false}, Case{{4, 3, 2, 8}, false, true},
                           Case{{1, 1, 1, 3}, true, true}, Case{{6}, true, false}}) {
      Tensor x = random(cs.shape, ++seed).to(t).requires_grad_();
      Tensor h = random(cs.shape, ++seed).to(t).requires_grad_();
      const int64_t c = cs.shape.back();
      Tensor gamma = random({c}, ++seed, 0.5, 1.5).to(t).requires_grad_();
      Tensor bias = cs.bias ? random({c}, ++seed).to(t).requires_grad_() : Tensor();
      Tensor s;  // one dropped sample (0), the others kept at 1/(1 - 0.3)
      if (cs.drop) {
        std::vector<double> f(cs.shape[0], 1.0 / 0.7);
        f[0] = 0.0;
        s = Tensor::from_vector(f, {cs.shape[0]}).to(t);
      }
      Tensor g = random(cs.shape, ++seed).to(t);

      Tensor y = scaled_residual(x, h, gamma, bias, s);
      y.backward(g);
      std::vector<Tensor> got{y.detach(), x.grad(), h.grad(), gamma.grad()};
      if (cs.bias) got.push_back(bias.grad());
      for (const Tensor* p : {&x, &h, &gamma, &bias})
        if (p->defined()) p->zero_grad();

      Tensor yr = composed(x, h, gamma, bias, s);
      yr.backward(g);
      std::vector<Tensor> ref{yr.detach(), x.grad(), h.grad(), gamma.grad()};
      if (cs.bias) ref.push_back(bias.grad());
      const char* names[] = {"y", "dx", "dh", "dgamma", "dbias"};
      for (size_t i = 0; i < got.size(); ++i)
        EXPECT_TRUE(all_close(got[i], ref[i], tol, tol))
            << names[i] << " " << t << " rank " << cs.shape.size() << " c " << c << " bias "
            << cs.bias << " drop " << cs.drop;
    }
  }
}

TEST(ScaledResidual, FiniteDifferences) {
  Tensor x = random({2, 3, 5}, 20).requires_grad_(), h = random({2, 3, 5}, 21).requires_grad_();
  Tensor gamma = random({5}, 22).requires_grad_(), bias = random({5}, 23).requires_grad_();
  Tensor s = Tensor::from_vector(std::vector<double>{1.25, 0.5}, {2});
  auto f = [&](const std::vector<Tensor>& in) {
    return scaled_residual(in[0], in[1], in[2], in[3], s);
  };
  EXPECT_TRUE(grad_check(f, {x, h, gamma, bias}));
}

TEST(ScaledResidual, OnlyTheGradientsAskedForAndNoTapeWithoutThem) {
  Tensor x = random({2, 4, 3}, 30), h = random({2, 4, 3}, 31).requires_grad_();
  Tensor gamma = random({3}, 32), bias = random({3}, 33);
  Tensor y = scaled_residual(x, h, gamma, bias);
  y.backward(Tensor::ones({2, 4, 3}, DType::Float64));
  // dh = gamma broadcast over the rows.
  EXPECT_TRUE(all_close(h.grad(), mul(Tensor::ones({2, 4, 3}, DType::Float64), gamma), 1e-15, 0));
  EXPECT_FALSE(x.grad().defined());
  EXPECT_FALSE(scaled_residual(x, h.detach(), gamma, bias).requires_grad());
}

// The factors drop_path_scale hands to scaled_residual are drop_path's own: the same counters
// of the same generator, so a model that fuses the scaling drops the same samples.
TEST(ScaledResidual, DropPathScaleIsDropPathsMask) {
  const int64_t n = 32;
  const double p = 0.4;
  Generator a(7), b(7);
  a.reserve(3), b.reserve(3);
  Tensor ones = Tensor::ones({n, 2}, DType::Float64);
  Tensor masked = drop_path(ones, p, true, a);                  // rows of 0 or 1/(1-p)
  Tensor s = drop_path_scale(n, p, true, b, DType::Float64, Device::cpu());
  EXPECT_TRUE(all_close(s, masked.select(1, 0), 0, 0));
  EXPECT_EQ(a.offset(), b.offset());
  double kept = 0;
  for (double v : s.to_vector()) kept += v != 0;
  EXPECT_GT(kept, 0);
  EXPECT_LT(kept, n);
  // Identity cases draw nothing and give no tensor.
  EXPECT_FALSE(drop_path_scale(n, p, false, b, DType::Float32, Device::cpu()).defined());
  EXPECT_FALSE(drop_path_scale(n, 0.0, true, b, DType::Float32, Device::cpu()).defined());
  EXPECT_EQ(b.offset(), a.offset());
}

TEST(ScaledResidual, Errors) {
  Tensor x = random({2, 3, 4}, 40), gamma = random({4}, 41);
  auto expect_error = [](auto&& call, const std::string& what) {
    try {
      call();
      FAIL() << "expected an error mentioning " << what;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  expect_error([&] { scaled_residual(x, random({2, 3, 5}, 42), gamma); }, "differ in shape");
  expect_error([&] { scaled_residual(x, x, random({3}, 43)); }, "gamma");
  expect_error([&] { scaled_residual(x, x, gamma, random({5}, 44)); }, "bias");
  expect_error([&] { scaled_residual(x, x, gamma, {}, random({3}, 45)); }, "one value per sample");
  expect_error([&] { scaled_residual(x, x.to(DType::Float32), gamma); }, "dtype");
}
