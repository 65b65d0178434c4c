// ConvNeXt-T/S/B: torchvision's names, shapes and parameter counts, layer scale and stochastic
// depth settings, output and embedding shapes, and torchvision's outputs for the same weights.
#include <cmath>

#include "models/convnext.h"
#include "tests/common/check.h"
#include "tests/models/torch_reference.h"

using namespace engine;
using testing_util::random;
using torch_reference::count_parameters;

TEST(ConvNeXt, TinyParameterCountMatchesTorchvision) {
  EXPECT_EQ(count_parameters(*models::convnext_tiny(1000)), 28589128);
}

TEST(ConvNeXt, NamesAndShapesMatchTorchvision) {
  REQUIRE_TORCH_REFERENCE();
  torch_reference::expect_matches_torchvision(*models::convnext_tiny(1000), "convnext_tiny");
}

TEST(ConvNeXt, KeyNamesWithoutPython) {
  auto m = models::convnext_tiny(10);
  auto sd = m->state_dict();
  EXPECT_EQ(sd.at("features.0.0.weight").shape(), (Shape{96, 4, 4, 3}));  // stem 4x4 s4
  EXPECT_EQ(sd.at("features.0.1.weight").shape(), (Shape{96}));
  EXPECT_EQ(sd.at("features.1.0.block.0.weight").shape(), (Shape{96, 7, 7, 1}));  // depthwise
  EXPECT_EQ(sd.at("features.1.0.block.2.weight").shape(), (Shape{96}));
  EXPECT_EQ(sd.at("features.1.0.block.3.weight").shape(), (Shape{384, 96}));
  EXPECT_EQ(sd.at("features.1.0.block.5.weight").shape(), (Shape{96, 384}));
  EXPECT_EQ(sd.at("features.1.0.layer_scale").shape(), (Shape{96, 1, 1}));
  EXPECT_EQ(sd.at("features.2.0.weight").shape(), (Shape{96}));              // downsample LN
  EXPECT_EQ(sd.at("features.2.1.weight").shape(), (Shape{192, 2, 2, 96}));  // 2x2 s2
  EXPECT_EQ(sd.at("features.5.8.block.0.weight").shape(), (Shape{384, 7, 7, 1}));
  EXPECT_FALSE(sd.count("features.5.9.block.0.weight"));
  EXPECT_EQ(sd.at("classifier.0.weight").shape(), (Shape{768}));
  EXPECT_EQ(sd.at("classifier.2.weight").shape(), (Shape{10, 768}));
  EXPECT_EQ(m->head_prefix(), "classifier.2");
}

TEST(ConvNeXt, SmallAndBaseConfigurations) {
  // Counts from the configuration (torchvision: 50,223,688 and 88,591,464) without building
  // the 88M-parameter model twice: each stage of width C and depth d adds d * (C*49 + C
  // + 2C + 8C^2 + 4C + C + C) (dwconv w+b, LN, two Linear w+b, layer scale).
  auto stage = [](int64_t c, int64_t d) { return d * (49 * c + c + 2 * c + 8 * c * c + 4 * c + c + c); };
  auto total = [&](std::array<int64_t, 4> w, std::array<int64_t, 4> d) {
    int64_t n = 3 * w[0] * 16 + w[0] + 2 * w[0];  // stem conv + LN
    for (int s = 0; s < 4; ++s) n += stage(w[s], d[s]);
    for (int s = 0; s < 3; ++s) n += 2 * w[s] + 4 * w[s] * w[s + 1] + w[s + 1];  // downsample
    return n + 2 * w[3] + 1000 * w[3] + 1000;  // classifier
  };
  EXPECT_EQ(total({96, 192, 384, 768}, {3, 3, 9, 3}), 28589128);  // the formula is right
  EXPECT_EQ(total({96, 192, 384, 768}, {3, 3, 27, 3}), 50223688);
  EXPECT_EQ(total({128, 256, 512, 1024}, {3, 3, 27, 3}), 88591464);
  auto small = models::convnext_small(1000);
  EXPECT_EQ(count_parameters(*small), 50223688);
  EXPECT_EQ(small->features_seq->at<nn::Sequential>(5)->size(), 27u);
}

TEST(ConvNeXt, LayerScaleAndStochasticDepthAsTorchvision) {
  auto m = models::convnext_tiny(4);
  auto first = m->features_seq->at<nn::Sequential>(1)->at<models::CNBlock>(0);
  auto last = m->features_seq->at<nn::Sequential>(7)->at<models::CNBlock>(2);
  auto mid = m->features_seq->at<nn::Sequential>(5)->at<models::CNBlock>(0);  // block 6 of 18
  EXPECT_EQ(first->layer_scale.to_vector(), std::vector<double>(96, static_cast<float>(1e-6)));
  EXPECT_DOUBLE_EQ(first->stochastic_depth->p, 0.0);
  EXPECT_DOUBLE_EQ(mid->stochastic_depth->p, 0.1 * 6 / 17);
  EXPECT_DOUBLE_EQ(last->stochastic_depth->p, 0.1);
  auto custom = models::convnext_tiny(4, models::Head::Linear, {.drop_path_rate = 0.3});
  EXPECT_DOUBLE_EQ(custom->features_seq->at<nn::Sequential>(7)->at<models::CNBlock>(2)->stochastic_depth->p, 0.3);
  // trunc_normal(0.02) weights, zero biases.
  auto w = m->state_dict().at("features.3.1.block.3.weight").to_vector();
  double ss = 0, mx = 0;
  for (double v : w) ss += v * v, mx = std::max(mx, std::abs(v));
  EXPECT_NEAR(std::sqrt(ss / w.size()), 0.02, 0.001);
  EXPECT_LT(mx, 0.15);
  EXPECT_EQ(m->state_dict().at("features.3.1.block.3.bias").to_vector(), std::vector<double>(768, 0.0));
}

TEST(ConvNeXt, OutputEmbeddingAndMlpHead) {
  auto m = models::convnext_tiny(5, models::Head::Mlp);
  Tensor x = random({1, 64, 64, 3}, 1, -1, 1, DType::Float32);
  m->eval();
  Tensor e = m->features(x);
  EXPECT_EQ(e.shape(), (Shape{1, 768}));
  // The embedding has been through classifier.0's LayerNorm (weight 1, bias 0 at init).
  auto ev = e.to_vector();
  double mean = 0;
  for (double v : ev) mean += v / 768;
  EXPECT_NEAR(mean, 0.0, 1e-4);
  EXPECT_EQ(m->forward(x).shape(), (Shape{1, 5}));
  auto sd = m->state_dict();
  EXPECT_EQ(sd.at("classifier.2.1.weight").shape(), (Shape{256, 768}));
  EXPECT_EQ(sd.at("classifier.2.3.weight").shape(), (Shape{5, 256}));
  EXPECT_FALSE(sd.count("classifier.2.weight"));
  Tensor x2 = random({2, 72, 40, 3}, 2, -1, 1, DType::Float32);
  EXPECT_EQ(m->forward(x2).shape(), (Shape{2, 5}));
}

TEST(ConvNeXt, TrainingModeDropsPathsFromTheModelsStream) {
  auto m = models::convnext_tiny(3, models::Head::Linear, {.dropout_seed = 9, .drop_path_rate = 0.5});
  // Larger layer scales than the 1e-6 init, so a dropped block changes the output visibly.
  for (auto& [name, p] : m->named_parameters())
    if (name.ends_with("layer_scale")) p.fill_(0.5);
  Tensor x = random({4, 32, 32, 3}, 3, -1, 1, DType::Float32);
  const uint64_t before = m->dropout_generator().offset();
  m->train();
  Tensor a = m->forward(x);
  EXPECT_GT(m->dropout_generator().offset(), before);
  Tensor b = m->forward(x);
  EXPECT_FALSE(testing_util::all_close(a, b, 1e-3, 1e-3));  // new masks
  m->eval();
  EXPECT_FALSE(testing_util::all_close(m->forward(x), a, 1e-3, 1e-3));  // eval drops nothing
  m->train();
  m->dropout_generator().set_state(9, before);
  EXPECT_EQ(m->forward(x).to_vector(), a.to_vector());  // restoring the stream repeats them
}

TEST(ConvNeXt, ForwardMatchesTorchvision) {
  REQUIRE_TORCH_REFERENCE();
  auto m = models::convnext_tiny(7);
  torch_reference::expect_forward_matches_torchvision(*m, "convnext_tiny", 1e-4, 1e-4);
}
