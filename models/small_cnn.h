// models/small_cnn.h — a small residual CNN for CPU-sized problems (the image2gps demo).
//
// The ResNet recipe at a tenth of the width: a 3x3 stride-2 stem, then four stages of one
// BasicBlock each (widths 16, 32, 64, 128; stages 2-4 halve the resolution), global average
// pool, head. About 0.5 M parameters and ~20 MFLOP per 64x64 image, so it trains on two CPU
// cores in minutes. Not a torchvision model: there are no ImageNet weights for it.
#pragma once

#include <array>
#include <memory>

#include "models/model.h"
#include "models/resnet.h"

namespace models {

class SmallCnn : public Model {
 public:
  SmallCnn(int64_t num_outputs, Head head, const ModelOptions& options);
  Tensor features(const Tensor& x) override;  // [N, H, W, 3] -> [N, 128]

  std::shared_ptr<nn::Conv2d> conv1;
  std::shared_ptr<nn::BatchNorm2d> bn1;
  std::array<std::shared_ptr<BasicBlock>, 4> layers;
};

std::shared_ptr<SmallCnn> small_cnn(int64_t num_outputs, Head head = Head::Linear,
                                    const ModelOptions& options = {});

}  // namespace models
