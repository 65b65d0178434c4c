// ResNet-18/34/50: torchvision's names, shapes and parameter counts, output and embedding
// shapes, heads, gradients, freezing, and torchvision's outputs for the same weights.
#include <cmath>

#include "models/resnet.h"
#include "tests/common/check.h"
#include "tests/models/torch_reference.h"

using namespace engine;
using testing_util::random;
using torch_reference::count_parameters;

TEST(ResNet, ParameterCountsMatchTorchvision) {
  // torchvision's numbers with the 1000-class head.
  EXPECT_EQ(count_parameters(*models::resnet18(1000)), 11689512);
  EXPECT_EQ(count_parameters(*models::resnet50(1000)), 25557032);
}

TEST(ResNet, NamesAndShapesMatchTorchvision) {
  REQUIRE_TORCH_REFERENCE();
  torch_reference::expect_matches_torchvision(*models::resnet18(1000), "resnet18");
  torch_reference::expect_matches_torchvision(*models::resnet34(1000), "resnet34");
  torch_reference::expect_matches_torchvision(*models::resnet50(1000), "resnet50");
}

TEST(ResNet, KeyNamesWithoutPython) {
  auto m = models::resnet50(10);
  auto sd = m->state_dict();
  // Our layouts: conv [K, R, S, C]; V1.5 puts the stride on conv2 (3x3).
  EXPECT_EQ(sd.at("conv1.weight").shape(), (Shape{64, 7, 7, 3}));
  EXPECT_EQ(sd.at("layer2.0.conv2.weight").shape(), (Shape{128, 3, 3, 128}));
  EXPECT_EQ(m->layers[1]->at<models::Bottleneck>(0)->conv2->options.stride, 2);
  EXPECT_EQ(m->layers[1]->at<models::Bottleneck>(0)->conv1->options.stride, 1);
  EXPECT_EQ(sd.at("layer1.0.downsample.0.weight").shape(), (Shape{256, 1, 1, 64}));
  EXPECT_EQ(sd.at("layer1.0.downsample.1.running_var").shape(), (Shape{256}));
  EXPECT_FALSE(sd.count("layer1.1.downsample.0.weight"));
  EXPECT_EQ(sd.at("fc.weight").shape(), (Shape{10, 2048}));
  EXPECT_EQ(sd.at("bn1.num_batches_tracked").dtype(), DType::Int64);
  EXPECT_FALSE(models::resnet18(10)->state_dict().count("layer1.0.downsample.0.weight"));
}

TEST(ResNet, OutputAndEmbeddingShapesOnAwkwardInput) {
  Tensor x = random({2, 61, 47, 3}, 1, -1, 1, DType::Float32);
  auto r18 = models::resnet18(5);
  EXPECT_EQ(r18->features(x).shape(), (Shape{2, 512}));
  EXPECT_EQ(r18->forward(x).shape(), (Shape{2, 5}));
  EXPECT_EQ(r18->embedding_dim(), 512);
  auto r50 = models::resnet50(3, models::Head::Mlp);
  Tensor x1 = random({1, 64, 64, 3}, 2, -1, 1, DType::Float32);
  EXPECT_EQ(r50->features(x1).shape(), (Shape{1, 2048}));
  EXPECT_EQ(r50->forward(x1).shape(), (Shape{1, 3}));
  EXPECT_THROW(r18->forward(random({1, 3, 32, 32}, 3, -1, 1, DType::Float32)), Error);  // NCHW
}

TEST(ResNet, MlpHeadNamesAndShapes) {
  auto m = models::resnet18(2, models::Head::Mlp);
  auto sd = m->state_dict();
  EXPECT_EQ(sd.at("fc.1.weight").shape(), (Shape{256, 512}));
  EXPECT_EQ(sd.at("fc.1.bias").shape(), (Shape{256}));
  EXPECT_EQ(sd.at("fc.3.weight").shape(), (Shape{2, 256}));
  EXPECT_EQ(sd.at("fc.3.bias").shape(), (Shape{2}));
  EXPECT_FALSE(sd.count("fc.weight"));
  EXPECT_EQ(m->head_prefix(), "fc");
  EXPECT_EQ(m->head_type(), models::Head::Mlp);
}

TEST(ResNet, InitIsTorchvisionsAndSeeded) {
  auto a = models::resnet18(4, models::Head::Linear, {.seed = 3});
  auto b = models::resnet18(4, models::Head::Linear, {.seed = 3});
  auto c = models::resnet18(4, models::Head::Linear, {.seed = 4});
  EXPECT_EQ(a->conv1->weight.to_vector(), b->conv1->weight.to_vector());
  EXPECT_NE(a->conv1->weight.to_vector(), c->conv1->weight.to_vector());
  // kaiming_normal(fan_out, relu) on layer4's 3x3 convs: std = sqrt(2 / (512*9)).
  Tensor w = a->state_dict().at("layer4.1.conv2.weight");
  double ss = 0;
  for (double v : w.to_vector()) ss += v * v;
  EXPECT_NEAR(std::sqrt(ss / w.numel()), std::sqrt(2.0 / (512 * 9)), 0.01 * std::sqrt(2.0 / 4608));
  EXPECT_EQ(a->state_dict().at("layer3.0.bn2.weight").to_vector(), std::vector<double>(256, 1.0));
}

TEST(ResNet, BackwardReachesEveryParameterAndFreezingKeepsOnlyTheHead) {
  auto m = models::resnet18(3, models::Head::Mlp);
  Tensor x = random({2, 40, 36, 3}, 5, -1, 1, DType::Float32);
  sum(m->forward(x)).backward();
  for (auto& [name, p] : m->named_parameters()) EXPECT_TRUE(p.grad().defined()) << name;
  m->zero_grad();
  m->freeze_backbone();
  std::vector<std::string> trainable;
  for (auto& [name, p] : m->named_parameters())
    if (p.requires_grad()) trainable.push_back(name);
  EXPECT_EQ(trainable, (std::vector<std::string>{"fc.1.weight", "fc.1.bias", "fc.3.weight", "fc.3.bias"}));
  sum(m->forward(x)).backward();
  EXPECT_FALSE(m->conv1->weight.grad().defined());
  EXPECT_TRUE(m->state_dict().at("fc.3.weight").grad().defined());
  m->freeze_backbone(false);
  EXPECT_EQ(m->parameters().size(), m->all_parameters().size());
}

TEST(ResNet, ForwardMatchesTorchvision) {
  REQUIRE_TORCH_REFERENCE();
  auto m = models::resnet18(7);
  torch_reference::expect_forward_matches_torchvision(*m, "resnet18", 1e-4, 1e-4);
  EXPECT_EQ(m->bn1->num_batches_tracked.item(), 17.0);
}
