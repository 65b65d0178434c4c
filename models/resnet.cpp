// models/resnet.cpp — see resnet.h (He et al. 2016; torchvision's V1.5 Bottleneck).
#include "models/resnet.h"

#include "nn/init.h"

namespace models {

namespace {

// Convs start uninitialised (nn::skip_init): ResNet's constructor draws every conv weight once,
// with torchvision's kaiming_normal, instead of nn.Conv2d's default followed by that.
std::shared_ptr<nn::Conv2d> conv3x3(int64_t in, int64_t out, int64_t stride) {
  return std::make_shared<nn::Conv2d>(in, out, 3, nn::skip_init,
                                      nn::Conv2dOptions{.stride = stride, .padding = 1, .bias = false});
}

std::shared_ptr<nn::Conv2d> conv1x1(int64_t in, int64_t out, int64_t stride) {
  return std::make_shared<nn::Conv2d>(in, out, 1, nn::skip_init,
                                      nn::Conv2dOptions{.stride = stride, .bias = false});
}

// The projection shortcut (1x1 conv + BatchNorm) where shape changes, else none.
std::shared_ptr<nn::Sequential> make_downsample(int64_t in, int64_t out, int64_t stride) {
  if (stride == 1 && in == out) return nullptr;
  auto seq = std::make_shared<nn::Sequential>();
  seq->push_back(conv1x1(in, out, stride));            // downsample.0
  seq->push_back(std::make_shared<nn::BatchNorm2d>(out));   // downsample.1
  return seq;
}

// torchvision's ResNet init loop: every conv kaiming_normal(fan_out, relu); BatchNorm is
// already weight 1, bias 0 (zero_init_residual is off by default).
void init_convs(nn::Module& m, engine::Generator& gen) {
  for (auto& [name, sub] : m.named_modules())
    if (auto* conv = dynamic_cast<nn::Conv2d*>(sub)) nn::init::kaiming_normal_fan_out_relu_(conv->weight, gen);
}

}  // namespace

// ---- blocks ---------------------------------------------------------------------------------

BasicBlock::BasicBlock(int64_t inplanes, int64_t planes, int64_t stride, engine::Generator& gen) {
  conv1 = register_module("conv1", conv3x3(inplanes, planes, stride));
  bn1 = register_module("bn1", std::make_shared<nn::BatchNorm2d>(planes));
  conv2 = register_module("conv2", conv3x3(planes, planes, 1));
  bn2 = register_module("bn2", std::make_shared<nn::BatchNorm2d>(planes));
  downsample = make_downsample(inplanes, planes * kExpansion, stride);
  if (downsample) register_module("downsample", downsample);
  init_convs(*this, gen);
}

Tensor BasicBlock::forward(const Tensor& x) {
  Tensor out = bn1->forward_relu((*conv1)(x));  // bn1 + relu in one op
  out = (*conv2)(out);  // bn1's output freed here when nothing saved it (inference)
  Tensor identity = downsample ? (*downsample)(x) : x;
  return bn2->forward_add_relu(out, identity);  // relu(bn2(out) + identity): one op
}

Bottleneck::Bottleneck(int64_t inplanes, int64_t planes, int64_t stride, engine::Generator& gen) {
  const int64_t width = planes;  // groups = 1, base_width = 64
  conv1 = register_module("conv1", conv1x1(inplanes, width, 1));
  bn1 = register_module("bn1", std::make_shared<nn::BatchNorm2d>(width));
  conv2 = register_module("conv2", conv3x3(width, width, stride));  // V1.5: stride here
  bn2 = register_module("bn2", std::make_shared<nn::BatchNorm2d>(width));
  conv3 = register_module("conv3", conv1x1(width, planes * kExpansion, 1));
  bn3 = register_module("bn3", std::make_shared<nn::BatchNorm2d>(planes * kExpansion));
  downsample = make_downsample(inplanes, planes * kExpansion, stride);
  if (downsample) register_module("downsample", downsample);
  init_convs(*this, gen);
}

Tensor Bottleneck::forward(const Tensor& x) {
  Tensor out = bn1->forward_relu((*conv1)(x));  // BatchNorm + ReLU as one op each
  out = bn2->forward_relu((*conv2)(out));
  out = (*conv3)(out);  // bn2's output freed before the downsample runs (inference)
  Tensor identity = downsample ? (*downsample)(x) : x;
  return bn3->forward_add_relu(out, identity);  // relu(bn3(out) + identity): one op
}

// ---- ResNet ---------------------------------------------------------------------------------

namespace {
int64_t embedding_of(const ResNetConfig& c) {
  return 512 * (c.bottleneck ? Bottleneck::kExpansion : BasicBlock::kExpansion);
}
}  // namespace

ResNet::ResNet(const std::string& arch, const ResNetConfig& config, int64_t num_outputs,
               Head head, const ModelOptions& options)
    : Model(arch, embedding_of(config), num_outputs, head, "fc", options) {
  engine::Generator gen(options.seed);
  conv1 = register_module("conv1", std::make_shared<nn::Conv2d>(
                                       3, 64, 7, nn::skip_init,
                                       nn::Conv2dOptions{.stride = 2, .padding = 3, .bias = false}));
  bn1 = register_module("bn1", std::make_shared<nn::BatchNorm2d>(64));
  maxpool = register_module("maxpool", std::make_shared<nn::MaxPool2d>(3, 2, 1));

  const int64_t expansion = config.bottleneck ? Bottleneck::kExpansion : BasicBlock::kExpansion;
  int64_t inplanes = 64;
  for (int s = 0; s < 4; ++s) {
    const int64_t planes = int64_t{64} << s;
    const int64_t stride = s == 0 ? 1 : 2;
    auto stage = std::make_shared<nn::Sequential>();
    for (int64_t b = 0; b < config.layers[s]; ++b) {
      const int64_t st = b == 0 ? stride : 1;
      if (config.bottleneck) stage->emplace<Bottleneck>(inplanes, planes, st, gen);
      else stage->emplace<BasicBlock>(inplanes, planes, st, gen);
      inplanes = planes * expansion;
    }
    layers[s] = register_module("layer" + std::to_string(s + 1), stage);
  }
  // The blocks initialised their own convs; the head keeps nn.Linear's default init.
  nn::init::kaiming_normal_fan_out_relu_(conv1->weight, gen);
  head_ = register_module("fc", make_head(gen));
}

Tensor ResNet::features(const Tensor& x) {
  check_input(x);
  // Two statements, so that conv1's output (the network's largest activation, which
  // forward_relu keeps only for its backward) is freed before the pooling runs: one
  // expression would hold the temporary until the pooling returned.
  Tensor y = bn1->forward_relu((*conv1)(x));
  y = (*maxpool)(y);
  for (auto& stage : layers) y = (*stage)(y);
  return engine::global_avg_pool(y);  // avgpool + flatten: [N, C]
}

std::shared_ptr<ResNet> resnet18(int64_t n, Head head, const ModelOptions& o) {
  return std::make_shared<ResNet>("resnet18", ResNetConfig{false, {2, 2, 2, 2}}, n, head, o);
}
std::shared_ptr<ResNet> resnet34(int64_t n, Head head, const ModelOptions& o) {
  return std::make_shared<ResNet>("resnet34", ResNetConfig{false, {3, 4, 6, 3}}, n, head, o);
}
std::shared_ptr<ResNet> resnet50(int64_t n, Head head, const ModelOptions& o) {
  return std::make_shared<ResNet>("resnet50", ResNetConfig{true, {3, 4, 6, 3}}, n, head, o);
}

}  // namespace models
