// Autograd: graphs with shared inputs and diamonds, accumulation, no_grad, detach, errors.
#include <functional>

#include "tests/common/check.h"

using namespace engine;
using testing_util::all_close;
using testing_util::random;

TEST(Autograd, TensorUsedTwiceGetsSumOfGradients) {
  Tensor x = random({3, 4}, 1).requires_grad_();
  Tensor y = sum(mul(x, x));  // d/dx = 2x through two uses of x
  y.backward();
  EXPECT_TRUE(all_close(x.grad(), mul(x.detach(), 2.0), 1e-12, 1e-12));
}

// A computed tensor (not a leaf) reached along several paths: its gradients are summed while
// they wait in the backward's queue, in place when the queue holds the only reference to the
// first one, into a new tensor when that memory is shared (add's backward hands the same g to
// both of its inputs: summing in place would add into the other path's gradient too).
TEST(Autograd, ComputedTensorUsedTwiceGetsSumOfGradients) {
  struct Case {
    const char* graph;
    std::function<Tensor(const Tensor&)> f;  // of h = 3x
    double dx;                               // d sum(f(3x)) / dx
  };
  const std::vector<Case> cases = {
      {"h*2 + h*5 (two fresh gradients)", [](const Tensor& h) { return add(sum(mul(h, 2.0)), sum(mul(h, 5.0))); }, 21},
      {"h + h (one gradient, shared)", [](const Tensor& h) { return sum(add(h, h)); }, 6},
      {"(h + h) + h*4 (shared, then fresh)", [](const Tensor& h) { return add(sum(add(h, h)), sum(mul(h, 4.0))); }, 18},
      {"h*4 + (h + h) (fresh, then shared)", [](const Tensor& h) { return add(sum(mul(h, 4.0)), sum(add(h, h))); }, 18},
      {"h + h + h (three paths)", [](const Tensor& h) { return sum(add(add(h, h), h)); }, 9},
  };
  for (const Case& c : cases) {
    Tensor x = random({3, 4}, 1).requires_grad_();
    c.f(mul(x, 3.0)).backward();
    EXPECT_TRUE(all_close(x.grad(), Tensor::full({3, 4}, c.dx, DType::Float64), 1e-12, 1e-12))
        << c.graph;
  }
}

TEST(Autograd, DiamondGraph) {
  Tensor x = random({5}, 2).requires_grad_();
  Tensor a = exp(x), b = mul(x, 3.0);
  Tensor y = sum(mul(a, b));  // y = sum(3 x e^x), dy/dx = 3 e^x (1 + x)
  y.backward();
  Tensor xd = x.detach();
  Tensor expect = mul(mul(exp(xd), add(xd, 1.0)), 3.0);
  EXPECT_TRUE(all_close(x.grad(), expect, 1e-12, 1e-12));
}

TEST(Autograd, LeafGradientsAccumulateAcrossBackwardCalls) {
  Tensor x = random({4}, 3).requires_grad_();
  sum(x).backward();
  sum(mul(x, 2.0)).backward();
  EXPECT_TRUE(all_close(x.grad(), Tensor::full({4}, 3.0, DType::Float64), 0, 0));
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
}

TEST(Autograd, NoGradRecordsNothing) {
  Tensor x = random({4}, 4).requires_grad_();
  Tensor y;
  {
    NoGradGuard g;
    y = mul(x, 2.0);
  }
  EXPECT_FALSE(y.requires_grad());
  EXPECT_TRUE(grad_enabled());
  EXPECT_THROW(sum(y).backward(), Error);
}

TEST(Autograd, DetachCutsTheGraphButSharesData) {
  Tensor x = random({4}, 5).requires_grad_();
  Tensor d = x.detach();
  EXPECT_FALSE(d.requires_grad());
  EXPECT_EQ(d.raw_data(), x.raw_data());
  Tensor y = sum(mul(x, d));  // gradient only through the first factor: d
  y.backward();
  EXPECT_TRUE(all_close(x.grad(), d, 0, 0));
}

TEST(Autograd, SecondBackwardWithoutRetainIsAClearError) {
  Tensor x = random({3}, 6).requires_grad_();
  Tensor y = sum(exp(x));
  y.backward();
  try {
    y.backward();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("retain_graph"), std::string::npos) << e.what();
  }
}

TEST(Autograd, RetainGraphAllowsTwoBackwards) {
  Tensor x = random({3}, 7).requires_grad_();
  Tensor y = sum(exp(x));
  y.backward({}, /*retain_graph=*/true);
  y.backward();
  EXPECT_TRUE(all_close(x.grad(), mul(exp(x.detach()), 2.0), 1e-12, 1e-12));
}

TEST(Autograd, NonScalarBackwardNeedsAGradient) {
  Tensor x = random({3}, 8).requires_grad_();
  Tensor y = exp(x);
  EXPECT_THROW(y.backward(), Error);
  y.backward(Tensor::ones({3}, DType::Float64));
  EXPECT_TRUE(all_close(x.grad(), exp(x.detach()), 1e-12, 1e-12));
}

TEST(Autograd, DeepChainDoesNotOverflowTheStack) {
  Tensor x = random({2}, 9).requires_grad_();
  Tensor y = x;
  for (int i = 0; i < 20000; ++i) y = add(y, 0.0);
  sum(y).backward();
  EXPECT_TRUE(all_close(x.grad(), Tensor::ones({2}, DType::Float64), 0, 0));
}

TEST(Autograd, OnlyInputsThatRequireGradReceiveOne) {
  Tensor a = random({3}, 10).requires_grad_();
  Tensor b = random({3}, 11);
  sum(mul(a, b)).backward();
  EXPECT_TRUE(a.grad().defined());
  EXPECT_FALSE(b.grad().defined());
}
