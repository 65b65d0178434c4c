// Layers: torch.nn's default initialisation (bounds and spread), each forward wired to its op
// with the right options, BatchNorm's buffers, dropout streams, Sequential naming.
#include <cmath>

#include "nn/init.h"
#include "nn/layers.h"
#include "tests/common/check.h"

using namespace engine;
using testing_util::all_close;
using testing_util::random;

namespace {

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::abs(x));
  return m;
}
double mean_sq(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x * x;
  return s / static_cast<double>(v.size());
}

}  // namespace

TEST(Init, ConvUsesKaimingUniformWithASqrt5) {
  Generator gen(7);
  // groups=2: fan_in = (6/2) * 5 * 5 = 75, bound = 1/sqrt(75)
  nn::Conv2d conv(6, 40, 5, gen, {.stride = 2, .padding = 2, .groups = 2});
  EXPECT_EQ(conv.weight.shape(), (Shape{40, 5, 5, 3}));
  EXPECT_EQ(conv.bias.shape(), (Shape{40}));
  const double bound = 1.0 / std::sqrt(75.0);
  auto w = conv.weight.to_vector();
  EXPECT_LE(max_abs(w), bound);
  EXPECT_GT(max_abs(w), 0.95 * bound);
  // U(-b, b) has variance b^2 / 3; 3000 draws put the estimate within ~5%.
  EXPECT_NEAR(mean_sq(w), bound * bound / 3, 0.1 * bound * bound / 3);
  auto b = conv.bias.to_vector();
  EXPECT_LE(max_abs(b), bound);
  EXPECT_GT(max_abs(b), 0.5 * bound);
  EXPECT_TRUE(conv.weight.requires_grad());
}

TEST(Init, LinearBoundsAndSeedsReproduce) {
  Generator g1(9), g2(9), g3(10);
  nn::Linear a(50, 40, g1), b(50, 40, g2), c(50, 40, g3);
  EXPECT_LE(max_abs(a.weight.to_vector()), 1.0 / std::sqrt(50.0));
  EXPECT_LE(max_abs(a.bias.to_vector()), 1.0 / std::sqrt(50.0));
  EXPECT_EQ(a.weight.to_vector(), b.weight.to_vector());
  EXPECT_NE(a.weight.to_vector(), c.weight.to_vector());
  nn::Linear nobias(3, 2, g1, false);
  EXPECT_FALSE(nobias.bias.defined());
  EXPECT_EQ(nobias.named_parameters().size(), 1u);
}

TEST(Init, KaimingNormalFanOutAndTruncNormal) {
  Generator gen(3);
  Tensor w = Tensor::empty({64, 3, 3, 32});  // conv [K, R, S, C]: fan_out = K*R*S = 576
  EXPECT_EQ(nn::init::fan_in(w), 288);
  EXPECT_EQ(nn::init::fan_out(w), 576);
  nn::init::kaiming_normal_fan_out_relu_(w, gen);
  EXPECT_NEAR(mean_sq(w.to_vector()), 2.0 / 576, 0.05 * 2.0 / 576);
  Tensor t = Tensor::empty({20000});
  nn::init::trunc_normal_(t, 0.5, 1.0, -0.5, 1.0, gen);
  auto v = t.to_vector();
  double lo = 1e9, hi = -1e9;
  for (double x : v) lo = std::min(lo, x), hi = std::max(hi, x);
  EXPECT_GE(lo, -0.5);
  EXPECT_LE(hi, 1.0);
  EXPECT_LT(lo, -0.45);
  EXPECT_GT(hi, 0.95);
}

TEST(Linear, ForwardIsXWtPlusB) {
  Generator gen(4);
  nn::Linear lin(5, 3, gen);
  Tensor x = random({2, 4, 5}, 1, -1, 1, DType::Float32);  // extra leading dims
  Tensor y = lin(x);
  ASSERT_EQ(y.shape(), (Shape{2, 4, 3}));
  auto xv = x.to_vector(), wv = lin.weight.to_vector(), bv = lin.bias.to_vector(), yv = y.to_vector();
  std::vector<double> ref(24);
  for (int r = 0; r < 8; ++r)
    for (int o = 0; o < 3; ++o) {
      double s = bv[o];
      for (int i = 0; i < 5; ++i) s += xv[r * 5 + i] * wv[o * 5 + i];
      ref[r * 3 + o] = s;
    }
  EXPECT_TRUE(all_close(yv, ref, 1e-5, 1e-6));
}

TEST(Conv2d, ForwardPassesItsOptions) {
  Generator gen(5);
  nn::Conv2d conv(4, 6, 3, gen, {.stride = 2, .padding = 1, .dilation = 2, .groups = 2});
  Tensor x = random({2, 9, 7, 4}, 2, -1, 1, DType::Float32);
  Tensor y = conv(x);
  // P = (9 + 2 - 2*2 - 1) / 2 + 1 = 4, Q = (7 + 2 - 4 - 1) / 2 + 1 = 3
  ASSERT_EQ(y.shape(), (Shape{2, 4, 3, 6}));
  Tensor ref = conv2d(x, conv.weight, conv.bias, Conv2dParams::make(2, 1, 2, 2));
  EXPECT_TRUE(all_close(y, ref, 0, 0));
  EXPECT_THROW(nn::Conv2d(5, 6, 3, gen, {.groups = 2}), Error);
}

TEST(BatchNorm2d, BuffersCountAndRunningStats) {
  nn::BatchNorm2d bn(3, 1e-5, 0.1);
  Tensor x = random({4, 3, 5, 3}, 3, -1, 3, DType::Float32);
  bn(x);
  bn(x);
  EXPECT_EQ(bn.num_batches_tracked.item(), 2.0);
  // running_mean after two updates from 0 with the same batch: (1 - 0.9^2) * batch mean.
  auto xv = x.to_vector();
  std::vector<double> mean(3, 0);
  for (size_t i = 0; i < xv.size(); ++i) mean[i % 3] += xv[i] / 60.0;
  std::vector<double> expect(3);
  for (int c = 0; c < 3; ++c) expect[c] = 0.19 * mean[c];
  EXPECT_TRUE(all_close(bn.running_mean.to_vector(), expect, 1e-5, 1e-6));

  bn.eval();
  bn.weight.detach().copy_(Tensor::from_vector(std::vector<double>{0.5, 2.0, -1.0}, {3}));
  bn.bias.detach().copy_(Tensor::from_vector(std::vector<double>{0.1, 0.0, 0.3}, {3}));
  Tensor y = bn(x);
  EXPECT_EQ(bn.num_batches_tracked.item(), 2.0);  // eval does not count
  auto rm = bn.running_mean.to_vector(), rv = bn.running_var.to_vector(), yv = y.to_vector();
  const double w[] = {0.5, 2.0, -1.0}, b[] = {0.1, 0.0, 0.3};
  std::vector<double> ref(xv.size());
  for (size_t i = 0; i < xv.size(); ++i) {
    int c = i % 3;
    ref[i] = (xv[i] - rm[c]) / std::sqrt(rv[c] + 1e-5) * w[c] + b[c];
  }
  EXPECT_TRUE(all_close(yv, ref, 1e-5, 1e-6));
}

TEST(LayerNorm, NormalisesTheLastDim) {
  nn::LayerNorm ln(5, 1e-6);
  Tensor x = random({2, 3, 5}, 4, -2, 2, DType::Float32);
  auto xv = x.to_vector(), yv = ln(x).to_vector();
  std::vector<double> ref(xv.size());
  for (int r = 0; r < 6; ++r) {
    double m = 0, v = 0;
    for (int i = 0; i < 5; ++i) m += xv[r * 5 + i] / 5;
    for (int i = 0; i < 5; ++i) v += (xv[r * 5 + i] - m) * (xv[r * 5 + i] - m) / 5;
    for (int i = 0; i < 5; ++i) ref[r * 5 + i] = (xv[r * 5 + i] - m) / std::sqrt(v + 1e-6);
  }
  EXPECT_TRUE(all_close(yv, ref, 1e-5, 1e-5));
  EXPECT_THROW(ln(random({2, 4}, 1)), Error);
}

TEST(Dropout, TrainDropsAndScalesEvalIsIdentity) {
  auto gen = std::make_shared<Generator>(11);
  nn::Dropout drop(0.3, gen);
  Tensor x = Tensor::ones({100, 200});
  auto y = drop(x).to_vector();
  int zeros = 0;
  for (double v : y) {
    if (v == 0) ++zeros;
    else EXPECT_NEAR(v, 1 / 0.7, 1e-6);
  }
  EXPECT_NEAR(zeros / 20000.0, 0.3, 0.02);
  EXPECT_GT(gen->offset(), 0u);  // the shared stream advanced
  // The same generator state draws the same mask.
  auto g2 = std::make_shared<Generator>(11);
  nn::Dropout again(0.3, g2);
  EXPECT_EQ(again(x).to_vector(), y);
  drop.eval();
  EXPECT_EQ(drop(x).to_vector(), x.to_vector());
  EXPECT_THROW(nn::Dropout(1.0, uint64_t{1}), Error);
}

TEST(StochasticDepth, DropsWholeSamples) {
  nn::StochasticDepth sd(0.5, uint64_t{5});
  Tensor x = Tensor::ones({64, 2, 3, 4});
  auto y = sd(x).to_vector();
  int dropped = 0;
  for (int n = 0; n < 64; ++n) {
    double first = y[n * 24];
    for (int i = 0; i < 24; ++i) EXPECT_EQ(y[n * 24 + i], first);
    EXPECT_TRUE(first == 0.0 || std::abs(first - 2.0) < 1e-6) << first;
    dropped += first == 0.0;
  }
  EXPECT_GT(dropped, 16);
  EXPECT_LT(dropped, 48);
  sd.eval();
  EXPECT_EQ(sd(x).to_vector(), x.to_vector());
}

TEST(Pooling, MaxAndAdaptiveAverage) {
  Tensor x = random({2, 7, 9, 3}, 8, -1, 1, DType::Float32);
  nn::MaxPool2d mp(3, 2, 1);
  EXPECT_TRUE(all_close(mp(x), max_pool2d(x, 3, 2, 1), 0, 0));
  EXPECT_EQ(mp(x).shape(), (Shape{2, 4, 5, 3}));
  nn::AdaptiveAvgPool2d gap(1, 1);
  Tensor g = gap(x);
  ASSERT_EQ(g.shape(), (Shape{2, 1, 1, 3}));
  EXPECT_TRUE(all_close(g.flatten(1), mean(x, {1, 2}), 1e-5, 1e-6));
  nn::AdaptiveAvgPool2d ap(2, 3);
  EXPECT_TRUE(all_close(ap(x), adaptive_avg_pool2d(x, 2, 3), 0, 0));
  nn::Flatten fl;
  EXPECT_EQ(fl(g).shape(), (Shape{2, 3}));
}

TEST(Sequential, NamesChildrenByIndexAndChainsForward) {
  Generator gen(6);
  nn::Sequential seq;
  seq.emplace<nn::Linear>(4, 8, gen);
  seq.emplace<nn::GELU>();
  seq.emplace<nn::Identity>();
  auto last = seq.push_back(std::make_shared<nn::Linear>(8, 2, gen));
  EXPECT_EQ(seq.size(), 4u);
  std::vector<std::string> names;
  for (auto& [n, t] : seq.named_parameters()) names.push_back(n);
  EXPECT_EQ(names, (std::vector<std::string>{"0.weight", "0.bias", "3.weight", "3.bias"}));
  Tensor x = random({3, 4}, 9, -1, 1, DType::Float32);
  Tensor ref = linear(gelu(linear(x, seq.at<nn::Linear>(0)->weight, seq.at<nn::Linear>(0)->bias)),
                      last->weight, last->bias);
  EXPECT_TRUE(all_close(seq(x), ref, 0, 0));
  EXPECT_THROW(seq[4], Error);
  EXPECT_THROW(seq.at<nn::Linear>(1), Error);
}
