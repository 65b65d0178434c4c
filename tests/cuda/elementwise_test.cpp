// CUDA elementwise ops against the CPU: every binary op over broadcast layouts, every unary op
// forward and backward (through autograd, so the engine's CUDA call sites are covered too),
// NaN semantics, and the scalar fallback for unaligned views.
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "kernels/cpu/elementwise.h"
#include "kernels/cuda/elementwise.h"
#include "tests/cuda/cuda_util.h"

namespace cuda_test {
namespace {

using BinaryFn = std::function<Tensor(const Tensor&, const Tensor&)>;
using CudaElementwise = CudaTest;

struct BinaryCase {
  const char* name;
  BinaryFn f;
  double b_low, b_high;  // b's range (positive for div and pow)
  bool exact;            // IEEE-exact on both devices
};

std::vector<BinaryCase> binary_cases() {
  return {
      {"add", [](const Tensor& a, const Tensor& b) { return engine::add(a, b); }, -1, 1, true},
      {"sub", [](const Tensor& a, const Tensor& b) { return engine::sub(a, b); }, -1, 1, true},
      {"mul", [](const Tensor& a, const Tensor& b) { return engine::mul(a, b); }, -1, 1, true},
      {"div", [](const Tensor& a, const Tensor& b) { return engine::div(a, b); }, 0.5, 2, true},
      {"pow", [](const Tensor& a, const Tensor& b) { return engine::pow(a, b); }, -2, 2, false},
      {"maximum", [](const Tensor& a, const Tensor& b) { return engine::maximum(a, b); }, -1, 1,
       true},
      {"minimum", [](const Tensor& a, const Tensor& b) { return engine::minimum(a, b); }, -1, 1,
       true},
      {"add_relu", [](const Tensor& a, const Tensor& b) { return engine::add_relu(a, b); }, -1, 1,
       true},
  };
}

// Shape pairs that take every launcher path: flat, flat with a scalar operand, strided
// broadcast (NHWC + bias, outer products, middle-dim broadcast), a long flat run with a tail.
const std::vector<std::pair<Shape, Shape>> kShapes = {
    {{1000003}, {1000003}}, {{17, 33}, {}},      {{}, {5, 3}},        {{2, 9, 11, 13}, {13}},
    {{5, 1, 7}, {3, 1}},    {{4, 1}, {1, 6}},    {{3, 1, 129}, {3, 64, 1}},
};

TEST_F(CudaElementwise, BinaryOpsMatchCpuOnBroadcastShapes) {
  uint64_t seed = 100;
  for (const BinaryCase& c : binary_cases()) {
    for (DType t : {DType::Float32, DType::Float64}) {
      for (const auto& [sa, sb] : kShapes) {
        // a positive for pow (non-integer exponents); signs matter elsewhere.
        Tensor a = host_random(sa, ++seed, std::string(c.name) == "pow" ? 0.25 : -1, 2, t);
        Tensor b = host_random(sb, ++seed, c.b_low, c.b_high, t);
        Tensor ref = c.f(a, b), got = c.f(a.to(kGpu), b.to(kGpu));
        EXPECT_EQ(got.device(), kGpu);
        if (c.exact)
          EXPECT_TRUE(same_values(got, ref)) << c.name << " " << t << " " << engine::cat(sa)
                                             << " op " << engine::cat(sb);
        else
          EXPECT_TRUE(testing_util::all_close(got, ref, ulp_rtol(t), ulp_atol(t)))
              << c.name << " " << t << " " << engine::cat(sa) << " op " << engine::cat(sb);
      }
    }
  }
}

TEST_F(CudaElementwise, BinaryOpsReadStridedAndUnalignedInputs) {
  Tensor a = host_random({40, 31}, 1), b = host_random({31, 40}, 2);
  Tensor ga = a.to(kGpu), gb = b.to(kGpu);
  // Transposed b: strided path. Offset-by-one slices: flat path without 128-bit accesses.
  EXPECT_TRUE(same_values(engine::mul(ga, gb.transpose(0, 1)), engine::mul(a, b.transpose(0, 1))));
  Tensor fa = a.reshape({-1}), fb = b.reshape({-1});
  Tensor gfa = ga.reshape({-1}), gfb = gb.reshape({-1});
  EXPECT_TRUE(same_values(engine::sub(gfa.slice(0, 1, 1240), gfb.slice(0, 0, 1239)),
                          engine::sub(fa.slice(0, 1, 1240), fb.slice(0, 0, 1239))));
}

TEST_F(CudaElementwise, MaximumMinimumAndEqualFollowCpuNaNRules) {
  std::vector<double> av = {1, kNaN, 3, kNaN, -0.0, 2, 5}, bv = {kNaN, 1, kNaN, kNaN, 0.0, 2, 4};
  Tensor a = Tensor::from_vector(av, {7}), b = Tensor::from_vector(bv, {7});
  EXPECT_TRUE(same_values(engine::maximum(a.to(kGpu), b.to(kGpu)), engine::maximum(a, b)));
  EXPECT_TRUE(same_values(engine::minimum(a.to(kGpu), b.to(kGpu)), engine::minimum(a, b)));
  // Equal has no engine function yet: call both kernels directly, into a NaN-filled output.
  const int64_t shape[] = {7}, stride[] = {1};
  Tensor ga = a.to(kGpu), gb = b.to(kGpu), gout = poisoned({7}, DType::Float64);
  Tensor hout = Tensor::empty({7}, DType::Float64);
  kernels::cuda::binary(kernels::cuda::BinaryOp::Equal, 1, shape, ga.raw_data(), stride,
                        gb.raw_data(), stride, gout.raw_data(), DType::Float64);
  kernels::cpu::binary<double>(kernels::cpu::BinaryOp::Equal, 1, shape, a.data<double>(), stride,
                               b.data<double>(), stride, hout.data<double>());
  EXPECT_TRUE(same_values(gout, hout));
}

TEST_F(CudaElementwise, BroadcastGradientsMatchCpu) {
  // d(a*b + b)/db sums over the broadcast dims: exercises sum_to (reductions) on the GPU.
  Tensor a = host_random({6, 5, 7}, 11, -1, 1, DType::Float64).requires_grad_();
  Tensor b = host_random({5, 1}, 12, -1, 1, DType::Float64).requires_grad_();
  Tensor ga = a.detach().to(kGpu).requires_grad_(), gb = b.detach().to(kGpu).requires_grad_();
  Tensor w = host_random({6, 5, 7}, 13, -1, 1, DType::Float64);
  engine::sum(engine::mul(engine::add(engine::mul(a, b), b), w)).backward();
  engine::sum(engine::mul(engine::add(engine::mul(ga, gb), gb), w.to(kGpu))).backward();
  EXPECT_TRUE(testing_util::all_close(ga.grad(), a.grad(), 1e-13, 1e-13));
  EXPECT_TRUE(testing_util::all_close(gb.grad(), b.grad(), 1e-13, 1e-13));
}

// add_relu's gradient (relu's, from the output, summed over broadcast dims) equals the CPU's.
TEST_F(CudaElementwise, AddReluGradientsMatchCpu) {
  for (DType t : {DType::Float32, DType::Float64}) {
    Tensor a = host_random({4, 6, 9}, 21, -1, 1, t).requires_grad_();
    Tensor b = host_random({6, 1}, 22, -1, 1, t).requires_grad_();
    Tensor ga = a.detach().to(kGpu).requires_grad_(), gb = b.detach().to(kGpu).requires_grad_();
    Tensor w = host_random({4, 6, 9}, 23, -1, 1, t);
    engine::sum(engine::mul(engine::add_relu(a, b), w)).backward();
    engine::sum(engine::mul(engine::add_relu(ga, gb), w.to(kGpu))).backward();
    EXPECT_TRUE(same_values(ga.grad(), a.grad())) << t;  // a mask times w: exact
    EXPECT_TRUE(testing_util::all_close(gb.grad(), b.grad(), 1e-6, 1e-6)) << t;  // a sum
  }
}

struct UnaryCase {
  const char* name;
  std::function<Tensor(const Tensor&)> f;
  double low, high;  // input range (positive where the op needs it)
  bool exact;
};

std::vector<UnaryCase> unary_cases() {
  return {
      {"neg", [](const Tensor& x) { return engine::neg(x); }, -3, 3, true},
      {"exp", [](const Tensor& x) { return engine::exp(x); }, -3, 3, false},
      {"log", [](const Tensor& x) { return engine::log(x); }, 0.1, 3, false},
      {"sqrt", [](const Tensor& x) { return engine::sqrt(x); }, 0.1, 3, false},
      {"abs", [](const Tensor& x) { return engine::abs(x); }, -3, 3, true},
      {"relu", [](const Tensor& x) { return engine::relu(x); }, -3, 3, true},
      {"sigmoid", [](const Tensor& x) { return engine::sigmoid(x); }, -3, 3, false},
      {"tanh", [](const Tensor& x) { return engine::tanh(x); }, -3, 3, false},
      {"clamp", [](const Tensor& x) { return engine::clamp(x, -0.5, 0.7); }, -3, 3, true},
      {"pow 2.5", [](const Tensor& x) { return engine::pow(x, 2.5); }, 0.1, 3, false},
      {"pow 3", [](const Tensor& x) { return engine::pow(x, 3.0); }, -3, 3, false},
  };
}

TEST_F(CudaElementwise, UnaryOpsAndGradientsMatchCpu) {
  uint64_t seed = 500;
  for (const UnaryCase& c : unary_cases()) {
    for (DType t : {DType::Float32, DType::Float64}) {
      // 1000003: 128-bit body plus a tail; 5: tail only.
      for (int64_t n : {int64_t{5}, int64_t{1000003}}) {
        Tensor x = host_random({n}, ++seed, c.low, c.high, t).requires_grad_();
        Tensor gx = x.detach().to(kGpu).requires_grad_();
        Tensor dy = host_random({n}, ++seed, -1, 1, t);
        Tensor y = c.f(x), gy = c.f(gx);
        y.backward(dy);
        gy.backward(dy.to(kGpu));
        ASSERT_TRUE(gx.grad().defined()) << c.name;
        EXPECT_EQ(gx.grad().device(), kGpu);
        const double rtol = c.exact ? 0 : ulp_rtol(t), atol = c.exact ? 0 : ulp_atol(t);
        EXPECT_TRUE(testing_util::all_close(gy, y, rtol, atol)) << c.name << " " << t << " n=" << n;
        EXPECT_TRUE(testing_util::all_close(gx.grad(), x.grad(), rtol, atol))
            << c.name << " backward " << t << " n=" << n;
      }
    }
  }
}

// ReLU's and Clamp's backward select (as on the CPU and in PyTorch): a NaN or inf incoming
// gradient stays out of the masked-off elements. 1027 elements: the 128-bit body and the tail.
TEST_F(CudaElementwise, MaskGradientsIgnoreNonFiniteIncomingGradients) {
  const double inf = std::numeric_limits<double>::infinity();
  for (DType t : {DType::Float32, DType::Float64}) {
    Tensor x = host_random({1027}, 41, -2, 2, t);
    std::vector<double> g(1027);
    for (size_t i = 0; i < g.size(); ++i) g[i] = i % 3 == 0 ? kNaN : (i % 3 == 1 ? inf : 1.5);
    Tensor dy = Tensor::from_vector(g, {1027}).to(t);
    const std::vector<double> xs = x.to_vector();
    for (int op = 0; op < 2; ++op) {
      auto f = [&](const Tensor& v) { return op == 0 ? engine::relu(v) : engine::clamp(v, -1, 1); };
      Tensor cx = x.detach().requires_grad_(), gx = x.to(kGpu).requires_grad_();
      f(cx).backward(dy);
      f(gx).backward(dy.to(kGpu));
      std::vector<double> want = cx.grad().to_vector(), got = gx.grad().to(engine::Device::cpu()).to_vector();
      int64_t masked = 0;
      for (size_t i = 0; i < want.size(); ++i) {
        const bool passes = op == 0 ? xs[i] > 0 : std::abs(xs[i]) <= 1;
        if (!passes) {
          ++masked;
          EXPECT_EQ(got[i], 0) << (op == 0 ? "relu" : "clamp") << " " << t << " i=" << i;
        }
        // NaN compares unequal to itself: compare NaN-ness, then the value.
        ASSERT_EQ(std::isnan(got[i]), std::isnan(want[i])) << i;
        if (!std::isnan(want[i])) {
          EXPECT_EQ(got[i], want[i]) << i;
        }
      }
      EXPECT_GT(masked, 100);  // the random inputs really exercise the mask
    }
  }
}

TEST_F(CudaElementwise, UnaryOnUnalignedViewsAndKernelErrors) {
  Tensor x = host_random({1001}, 9), gx = x.to(kGpu);
  EXPECT_TRUE(testing_util::all_close(engine::exp(gx.slice(0, 3, 1001)),
                                      engine::exp(x.slice(0, 3, 1001)), ulp_rtol(DType::Float32),
                                      ulp_atol(DType::Float32)));
  // Integer tensors are not differentiable math: the kernel says which op and dtype.
  Tensor i = Tensor::full({4}, 2, DType::Int64, kGpu);
  try {
    engine::add(i, i);
    FAIL() << "int64 add on the GPU did not throw";
  } catch (const engine::Error& e) {
    EXPECT_NE(std::string(e.what()).find("add: expected a float32 or float64 tensor, got int64"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace cuda_test
