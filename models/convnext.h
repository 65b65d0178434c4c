// models/convnext.h — ConvNeXt-Tiny/Small/Base as torchvision builds them.
//
// Z. Liu, H. Mao, C.-Y. Wu, C. Feichtenhofer, T. Darrell, S. Xie, "A ConvNet for the 2020s",
// CVPR 2022, Section 3 and Table 9:
//   stem      4x4 conv stride 4 -> LayerNorm                      features.0.{0,1}
//   stage i   depths[i] blocks of width widths[i]                  features.{1,3,5,7}.<j>
//   downsample LayerNorm -> 2x2 conv stride 2 (between stages)     features.{2,4,6}.{0,1}
//   head      global average pool -> LayerNorm -> Linear           classifier.{0,2}
//             T: widths 96,192,384,768   depths 3,3,9,3   drop path 0.1
//             S: widths 96,192,384,768   depths 3,3,27,3  drop path 0.4
//             B: widths 128,256,512,1024 depths 3,3,27,3  drop path 0.5
// A block (CNBlock): 7x7 depthwise conv -> LayerNorm -> Linear 4C -> GELU -> Linear C,
// scaled per channel by layer_scale (init 1e-6), dropped per sample with probability
// drop_path_rate * block_index / (num_blocks - 1), added to the input.
//
// Names are torchvision's: features.1.0.block.0 (dwconv), block.2 (LayerNorm), block.3 / block.5
// (the two Linear), features.1.0.layer_scale. torchvision's block.1 and block.6 are Permutes
// (NCHW <-> NHWC); activations here are already NHWC, so they are Identity. layer_scale keeps
// torchvision's shape [C, 1, 1] so checkpoints load as they are; forward views it as [C].
// LayerNorms use eps 1e-6. Init as torchvision: every Conv2d and Linear trunc_normal(std 0.02)
// with zero bias.
#pragma once

#include <array>
#include <memory>

#include "models/model.h"
#include "nn/layers.h"

namespace models {

class CNBlock : public nn::Module {
 public:
  CNBlock(int64_t dim, double layer_scale_init, double drop_path, engine::Generator& gen,
          std::shared_ptr<engine::Generator> dropout_gen);
  Tensor forward(const Tensor& x) override;

  Tensor layer_scale;                    // [dim, 1, 1]
  std::shared_ptr<nn::Sequential> block;  // 0 dwconv, 1 Identity, 2 norm, 3 fc1, 4 GELU, 5 fc2, 6 Identity
  std::shared_ptr<nn::Conv2d> dwconv;
  std::shared_ptr<nn::LayerNorm> norm;
  std::shared_ptr<nn::Linear> pwconv1, pwconv2;
  std::shared_ptr<nn::StochasticDepth> stochastic_depth;
};

struct ConvNeXtConfig {
  std::array<int64_t, 4> widths;
  std::array<int64_t, 4> depths;
  double drop_path_rate;  // torchvision's stochastic_depth_prob
};

class ConvNeXt : public Model {
 public:
  ConvNeXt(const std::string& arch, const ConvNeXtConfig& config, int64_t num_outputs, Head head,
           const ModelOptions& options);
  // [N, H, W, 3] -> [N, widths[3]]: global average pool, then classifier.0's LayerNorm.
  Tensor features(const Tensor& x) override;

  std::shared_ptr<nn::Sequential> features_seq;  // "features"
  std::shared_ptr<nn::Sequential> classifier;    // "classifier": 0 LayerNorm, 1 Flatten, 2 head
  std::shared_ptr<nn::LayerNorm> classifier_norm;
};

std::shared_ptr<ConvNeXt> convnext_tiny(int64_t num_outputs, Head head = Head::Linear,
                                        const ModelOptions& options = {});
std::shared_ptr<ConvNeXt> convnext_small(int64_t num_outputs, Head head = Head::Linear,
                                         const ModelOptions& options = {});
std::shared_ptr<ConvNeXt> convnext_base(int64_t num_outputs, Head head = Head::Linear,
                                        const ModelOptions& options = {});

}  // namespace models
