// models/convnext.cpp — see convnext.h (Liu et al. 2022; torchvision's ConvNeXt).
#include "models/convnext.h"

#include "nn/init.h"

namespace models {

namespace {
constexpr double kLayerNormEps = 1e-6;  // torchvision: partial(LayerNorm2d, eps=1e-6)
constexpr double kLayerScaleInit = 1e-6;

// torchvision's ConvNeXt init loop: every Conv2d and Linear trunc_normal_(std=0.02) (bounds
// +-2, absolute) with zero bias. The layers are built with nn::skip_init and drawn here once.
void init_trunc_normal(nn::Module& m, engine::Generator& gen) {
  for (auto& [name, sub] : m.named_modules()) {
    Tensor* weight = nullptr;
    if (auto* c = dynamic_cast<nn::Conv2d*>(sub)) weight = &c->weight;
    if (auto* l = dynamic_cast<nn::Linear*>(sub)) weight = &l->weight;
    if (weight) nn::init::trunc_normal_(*weight, 0.0, 0.02, -2.0, 2.0, gen);  // biases are 0
  }
}
}  // namespace

// ---- CNBlock --------------------------------------------------------------------------------

CNBlock::CNBlock(int64_t dim, double layer_scale_init, double drop_path, engine::Generator& gen,
                 std::shared_ptr<engine::Generator> dropout_gen) {
  layer_scale = Tensor::full({dim, 1, 1}, layer_scale_init);
  register_parameter("layer_scale", &layer_scale);
  block = register_module("block", std::make_shared<nn::Sequential>());
  // block.0: 7x7 depthwise conv
  dwconv = block->push_back(std::make_shared<nn::Conv2d>(
      dim, dim, 7, nn::skip_init, nn::Conv2dOptions{.padding = 3, .groups = dim, .bias = true}));
  block->emplace<nn::Identity>();  // block.1: torchvision's Permute to NHWC
  norm = block->push_back(std::make_shared<nn::LayerNorm>(dim, kLayerNormEps));            // .2
  pwconv1 = block->push_back(std::make_shared<nn::Linear>(dim, 4 * dim, nn::skip_init));  // .3
  block->emplace<nn::GELU>();                                                              // .4
  pwconv2 = block->push_back(std::make_shared<nn::Linear>(4 * dim, dim, nn::skip_init));  // .5
  block->emplace<nn::Identity>();  // block.6: torchvision's Permute back to NCHW
  stochastic_depth = register_module(
      "stochastic_depth", std::make_shared<nn::StochasticDepth>(drop_path, std::move(dropout_gen)));
  init_trunc_normal(*block, gen);
}

Tensor CNBlock::forward(const Tensor& x) {
  // block.2 (LayerNorm), block.3 (Linear C -> 4C), block.4 (GELU) and block.5 (Linear 4C -> C)
  // without its bias as one op, which keeps for the backward neither the LayerNorm's output nor
  // GELU's, only the dwconv's output and one 4C-wide activation (engine/ops/mlp.h).
  Tensor y = engine::layer_norm_mlp((*dwconv)(x), norm->weight, norm->bias, norm->eps,
                                    pwconv1->weight, pwconv1->bias, pwconv2->weight);
  // block.5's bias, the layer scale ([C, 1, 1], along NHWC's C), stochastic depth and the
  // residual add as one pass: x + s[n] * gamma * (h + bias) (engine/ops/scaled_residual.h).
  const Tensor s = stochastic_depth->sample_scale(x.size(0), x.dtype(), x.device());
  return engine::scaled_residual(x, y, layer_scale.view({layer_scale.size(0)}), pwconv2->bias, s);
}

// ---- ConvNeXt -------------------------------------------------------------------------------

ConvNeXt::ConvNeXt(const std::string& arch, const ConvNeXtConfig& config, int64_t num_outputs,
                   Head head, const ModelOptions& options)
    : Model(arch, config.widths[3], num_outputs, head, "classifier.2", options) {
  engine::Generator gen(options.seed);
  const auto& w = config.widths;
  const double rate = options.drop_path_rate >= 0 ? options.drop_path_rate : config.drop_path_rate;
  engine::check(rate < 1, arch, ": drop_path_rate must be < 1, got ", rate);

  features_seq = register_module("features", std::make_shared<nn::Sequential>());
  auto stem = features_seq->emplace<nn::Sequential>();  // features.0
  stem->push_back(
      std::make_shared<nn::Conv2d>(3, w[0], 4, nn::skip_init, nn::Conv2dOptions{.stride = 4}));
  init_trunc_normal(*stem, gen);
  stem->push_back(std::make_shared<nn::LayerNorm>(w[0], kLayerNormEps));

  int64_t total = 0;
  for (int64_t d : config.depths) total += d;
  int64_t block_id = 0;
  for (int s = 0; s < 4; ++s) {
    auto stage = features_seq->emplace<nn::Sequential>();  // features.1, .3, .5, .7
    for (int64_t j = 0; j < config.depths[s]; ++j, ++block_id) {
      const double p = total > 1 ? rate * static_cast<double>(block_id) /
                                       (static_cast<double>(total) - 1.0)
                                 : 0.0;
      stage->emplace<CNBlock>(w[s], kLayerScaleInit, p, gen, dropout_gen_);
    }
    if (s < 3) {
      auto down = features_seq->emplace<nn::Sequential>();  // features.2, .4, .6
      down->push_back(std::make_shared<nn::LayerNorm>(w[s], kLayerNormEps));
      down->push_back(std::make_shared<nn::Conv2d>(w[s], w[s + 1], 2, nn::skip_init,
                                                   nn::Conv2dOptions{.stride = 2}));
      init_trunc_normal(*down, gen);
    }
  }

  classifier = register_module("classifier", std::make_shared<nn::Sequential>());
  classifier_norm = classifier->push_back(std::make_shared<nn::LayerNorm>(w[3], kLayerNormEps));
  classifier->emplace<nn::Flatten>(1);
  head_ = classifier->push_back(make_head(nn::skip_init));
  init_trunc_normal(*head_, gen);  // torchvision's loop covers the head too
}

Tensor ConvNeXt::features(const Tensor& x) {
  check_input(x);
  Tensor y = (*features_seq)(x);
  y = engine::global_avg_pool(y);   // avgpool: [N, C]
  return (*classifier_norm)(y);     // classifier.0 (classifier.1, Flatten, is a no-op on [N, C])
}

std::shared_ptr<ConvNeXt> convnext_tiny(int64_t n, Head head, const ModelOptions& o) {
  return std::make_shared<ConvNeXt>(
      "convnext_tiny", ConvNeXtConfig{{96, 192, 384, 768}, {3, 3, 9, 3}, 0.1}, n, head, o);
}
std::shared_ptr<ConvNeXt> convnext_small(int64_t n, Head head, const ModelOptions& o) {
  return std::make_shared<ConvNeXt>(
      "convnext_small", ConvNeXtConfig{{96, 192, 384, 768}, {3, 3, 27, 3}, 0.4}, n, head, o);
}
std::shared_ptr<ConvNeXt> convnext_base(int64_t n, Head head, const ModelOptions& o) {
  return std::make_shared<ConvNeXt>(
      "convnext_base", ConvNeXtConfig{{128, 256, 512, 1024}, {3, 3, 27, 3}, 0.5}, n, head, o);
}

}  // namespace models
