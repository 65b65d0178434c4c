// models/resnet.h — ResNet-18/34/50 as torchvision builds them.
//
// K. He, X. Zhang, S. Ren, J. Sun, "Deep Residual Learning for Image Recognition", CVPR 2016,
// Table 1. The Bottleneck puts its stride on the 3x3 conv (torchvision's "ResNet V1.5"), not
// on the first 1x1 as the paper does.
//
//   stage    output (224 in)   resnet18/34 (BasicBlock)   resnet50 (Bottleneck)
//   conv1    112x112           7x7, 64, stride 2          same
//   maxpool  56x56             3x3 max, stride 2          same
//   layer1   56x56             [3x3,64; 3x3,64] x 2 / 3   [1x1,64; 3x3,64; 1x1,256] x 3
//   layer2   28x28             [3x3,128 x2] x 2 / 4       [1x1,128; 3x3,128; 1x1,512] x 4
//   layer3   14x14             [3x3,256 x2] x 2 / 6       [1x1,256; 3x3,256; 1x1,1024] x 6
//   layer4   7x7               [3x3,512 x2] x 2 / 3       [1x1,512; 3x3,512; 1x1,2048] x 3
//   avgpool + fc               512 -> N                   2048 -> N
//
// Parameter names are torchvision's keys: conv1.weight, bn1.*, layer1.0.conv1.weight,
// layer2.0.downsample.0.weight (1x1 conv), layer2.0.downsample.1.* (BatchNorm), fc.*.
// Init as torchvision: convs kaiming_normal(fan_out, relu), BatchNorm 1/0, fc nn.Linear's.
#pragma once

#include <array>
#include <memory>

#include "models/model.h"
#include "nn/layers.h"

namespace models {

// Two 3x3 convs; the first carries the stride. expansion 1.
class BasicBlock : public nn::Module {
 public:
  static constexpr int64_t kExpansion = 1;
  BasicBlock(int64_t inplanes, int64_t planes, int64_t stride, engine::Generator& gen);
  Tensor forward(const Tensor& x) override;

  std::shared_ptr<nn::Conv2d> conv1, conv2;
  std::shared_ptr<nn::BatchNorm2d> bn1, bn2;
  std::shared_ptr<nn::Sequential> downsample;  // null when the shortcut is the identity
};

// 1x1 reduce, 3x3 (stride here: V1.5), 1x1 expand to 4x. expansion 4.
class Bottleneck : public nn::Module {
 public:
  static constexpr int64_t kExpansion = 4;
  Bottleneck(int64_t inplanes, int64_t planes, int64_t stride, engine::Generator& gen);
  Tensor forward(const Tensor& x) override;

  std::shared_ptr<nn::Conv2d> conv1, conv2, conv3;
  std::shared_ptr<nn::BatchNorm2d> bn1, bn2, bn3;
  std::shared_ptr<nn::Sequential> downsample;
};

struct ResNetConfig {
  bool bottleneck;                // Bottleneck (resnet50) or BasicBlock (resnet18/34)
  std::array<int64_t, 4> layers;  // blocks per stage
};

class ResNet : public Model {
 public:
  ResNet(const std::string& arch, const ResNetConfig& config, int64_t num_outputs, Head head,
         const ModelOptions& options);
  // [N, H, W, 3] -> [N, 512] (BasicBlock) or [N, 2048] (Bottleneck).
  Tensor features(const Tensor& x) override;

  std::shared_ptr<nn::Conv2d> conv1;
  std::shared_ptr<nn::BatchNorm2d> bn1;
  std::shared_ptr<nn::MaxPool2d> maxpool;
  std::array<std::shared_ptr<nn::Sequential>, 4> layers;  // layer1..layer4
};

std::shared_ptr<ResNet> resnet18(int64_t num_outputs, Head head = Head::Linear,
                                 const ModelOptions& options = {});
std::shared_ptr<ResNet> resnet34(int64_t num_outputs, Head head = Head::Linear,
                                 const ModelOptions& options = {});
std::shared_ptr<ResNet> resnet50(int64_t num_outputs, Head head = Head::Linear,
                                 const ModelOptions& options = {});

}  // namespace models
