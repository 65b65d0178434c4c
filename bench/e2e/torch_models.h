// bench/e2e/torch_models.h — torchvision's resnet18, resnet50 and convnext_tiny written with
// LibTorch's torch::nn, so the end-to-end benchmarks can time LibTorch on the same networks as
// models::create() builds (Debian's LibTorch has no torchvision for C++).
//
// Each definition follows torchvision 0.14 (models/resnet.py, models/convnext.py) layer by
// layer: same shapes, strides, paddings, biases, eps, GELU (erf), stochastic depth ("row" mode,
// rate 0.1 * block / (blocks - 1) for ConvNeXt-T) and initialisation. Only the timing matters
// here, but the init is torchvision's too, so neither side runs on unusually small or
// denormal values (ConvNeXt's layer_scale starts at 1e-6 on both sides).
//
//   auto net = bench::torch_model("convnext_tiny", /*num_outputs=*/2);
//   bench::to_channels_last(*net);   // optional: NHWC storage, as our engine uses
//   torch::Tensor y = net->forward(x);   // x [N, 3, H, W] -> [N, num_outputs]
#pragma once

#include <torch/torch.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

namespace bench {

// The common base: one forward for every model.
struct TorchNet : torch::nn::Module {
  virtual torch::Tensor forward(torch::Tensor x) = 0;
};

namespace detail {

inline torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t pad,
                              bool bias = false, int64_t groups = 1) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, k)
                               .stride(stride).padding(pad).bias(bias).groups(groups));
}

// ---- ResNet (He et al. 2016; torchvision's V1.5: the stride sits on the 3x3 conv) ----------

struct ResBlock : torch::nn::Module {
  // BasicBlock (expansion 1) when bottleneck is false, Bottleneck (expansion 4) otherwise.
  ResBlock(int64_t inplanes, int64_t planes, int64_t stride, bool bottleneck)
      : bottleneck_(bottleneck) {
    const int64_t out = planes * (bottleneck ? 4 : 1);
    if (bottleneck) {
      c1 = register_module("conv1", conv(inplanes, planes, 1, 1, 0));
      c2 = register_module("conv2", conv(planes, planes, 3, stride, 1));
      c3 = register_module("conv3", conv(planes, out, 1, 1, 0));
      b3 = register_module("bn3", torch::nn::BatchNorm2d(out));
    } else {
      c1 = register_module("conv1", conv(inplanes, planes, 3, stride, 1));
      c2 = register_module("conv2", conv(planes, planes, 3, 1, 1));
    }
    b1 = register_module("bn1", torch::nn::BatchNorm2d(planes));
    b2 = register_module("bn2", torch::nn::BatchNorm2d(planes));
    if (stride != 1 || inplanes != out) {
      down_conv = register_module("downsample_0", conv(inplanes, out, 1, stride, 0));
      down_bn = register_module("downsample_1", torch::nn::BatchNorm2d(out));
    }
  }
  torch::Tensor forward(torch::Tensor x) {
    torch::Tensor y = torch::relu(b1(c1(x)));
    y = b2(c2(y));
    if (bottleneck_) y = b3(c3(torch::relu(y)));
    torch::Tensor identity = down_conv ? down_bn(down_conv(x)) : x;
    return torch::relu(y + identity);
  }

  bool bottleneck_;
  torch::nn::Conv2d c1{nullptr}, c2{nullptr}, c3{nullptr}, down_conv{nullptr};
  torch::nn::BatchNorm2d b1{nullptr}, b2{nullptr}, b3{nullptr}, down_bn{nullptr};
};

struct ResNet : TorchNet {
  ResNet(const std::vector<int64_t>& layers, bool bottleneck, int64_t num_outputs) {
    conv1 = register_module("conv1", conv(3, 64, 7, 2, 3));
    bn1 = register_module("bn1", torch::nn::BatchNorm2d(64));
    int64_t inplanes = 64;
    for (size_t s = 0; s < layers.size(); ++s) {
      const int64_t planes = 64 << s;
      for (int64_t b = 0; b < layers[s]; ++b) {
        const int64_t stride = (s > 0 && b == 0) ? 2 : 1;
        auto block = std::make_shared<ResBlock>(inplanes, planes, stride, bottleneck);
        blocks.push_back(register_module(
            "layer" + std::to_string(s + 1) + "_" + std::to_string(b), block));
        inplanes = planes * (bottleneck ? 4 : 1);
      }
    }
    fc = register_module("fc", torch::nn::Linear(inplanes, num_outputs));
    // torchvision: kaiming_normal_(fan_out, relu) for convs, BatchNorm weight 1 / bias 0,
    // fc keeps nn.Linear's default init.
    torch::NoGradGuard no_grad;
    for (auto& m : modules(/*include_self=*/false)) {
      if (auto* c = m->as<torch::nn::Conv2d>())
        torch::nn::init::kaiming_normal_(c->weight, 0, torch::kFanOut, torch::kReLU);
    }
  }
  torch::Tensor forward(torch::Tensor x) override {
    x = torch::max_pool2d(torch::relu(bn1(conv1(x))), 3, 2, 1);
    for (auto& b : blocks) x = b->forward(x);
    return fc(torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1));
  }

  torch::nn::Conv2d conv1{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr};
  std::vector<std::shared_ptr<ResBlock>> blocks;
  torch::nn::Linear fc{nullptr};
};

// ---- ConvNeXt (Liu et al. 2022) ------------------------------------------------------------

// LayerNorm over the channels of an NCHW tensor (torchvision's LayerNorm2d): permute to NHWC,
// normalise the last dim, permute back. On channels_last storage both permutes are free.
inline torch::Tensor layer_norm_2d(const torch::Tensor& x, torch::nn::LayerNorm& ln) {
  return ln(x.permute({0, 2, 3, 1})).permute({0, 3, 1, 2});
}

inline torch::nn::LayerNorm layer_norm(int64_t dim) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(1e-6));
}

// torchvision.ops.stochastic_depth(mode="row"): drop whole samples with probability p in
// training, scale survivors by 1/(1-p).
inline torch::Tensor stochastic_depth(const torch::Tensor& x, double p, bool training) {
  if (!training || p == 0.0) return x;
  const double survival = 1.0 - p;
  torch::Tensor noise = torch::empty({x.size(0), 1, 1, 1}, x.options()).bernoulli_(survival);
  return x * noise.div_(survival);
}

struct CNBlock : torch::nn::Module {
  CNBlock(int64_t dim, double drop_path) : drop_path_(drop_path) {
    dwconv = register_module("dwconv", conv(dim, dim, 7, 1, 3, /*bias=*/true, /*groups=*/dim));
    norm = register_module("norm", layer_norm(dim));
    fc1 = register_module("fc1", torch::nn::Linear(dim, 4 * dim));
    fc2 = register_module("fc2", torch::nn::Linear(4 * dim, dim));
    layer_scale = register_parameter("layer_scale", torch::full({dim, 1, 1}, 1e-6));
  }
  torch::Tensor forward(torch::Tensor x) {
    // dwconv in NCHW, then Linear layers over channels in NHWC (torchvision's Permutes).
    torch::Tensor y = dwconv(x).permute({0, 2, 3, 1});
    y = fc2(torch::gelu(fc1(norm(y)))).permute({0, 3, 1, 2});
    return x + stochastic_depth(layer_scale * y, drop_path_, is_training());
  }

  double drop_path_;
  torch::nn::Conv2d dwconv{nullptr};
  torch::nn::LayerNorm norm{nullptr};
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
  torch::Tensor layer_scale;
};

struct ConvNeXt : TorchNet {
  ConvNeXt(const std::vector<int64_t>& widths, const std::vector<int64_t>& depths,
           double drop_path_rate, int64_t num_outputs) {
    stem = register_module("stem", conv(3, widths[0], 4, 4, 0, /*bias=*/true));
    stem_norm = register_module("stem_norm", layer_norm(widths[0]));
    int64_t total = 0, id = 0;
    for (int64_t d : depths) total += d;
    for (size_t s = 0; s < depths.size(); ++s) {
      std::vector<std::shared_ptr<CNBlock>> stage;
      for (int64_t b = 0; b < depths[s]; ++b, ++id) {
        const double p = drop_path_rate * static_cast<double>(id) / (total - 1.0);
        stage.push_back(register_module(
            "stage" + std::to_string(s) + "_" + std::to_string(b),
            std::make_shared<CNBlock>(widths[s], p)));
      }
      stages.push_back(stage);
      if (s + 1 < depths.size()) {
        down_norms.push_back(register_module("down_norm" + std::to_string(s),
                                             layer_norm(widths[s])));
        down_convs.push_back(register_module(
            "down_conv" + std::to_string(s), conv(widths[s], widths[s + 1], 2, 2, 0, true)));
      }
    }
    head_norm = register_module("head_norm", layer_norm(widths.back()));
    head = register_module("head", torch::nn::Linear(widths.back(), num_outputs));
    // torchvision: trunc_normal_(std=0.02) on every Conv2d and Linear weight, zero bias.
    torch::NoGradGuard no_grad;
    for (auto& m : modules(/*include_self=*/false)) {
      torch::Tensor w, b;
      if (auto* c = m->as<torch::nn::Conv2d>()) w = c->weight, b = c->bias;
      if (auto* l = m->as<torch::nn::Linear>()) w = l->weight, b = l->bias;
      if (!w.defined()) continue;
      // trunc_normal_(std 0.02, a=-2, b=2): the cut at +-2 (100 std) never binds, so a plain
      // normal draw has the same distribution.
      w.normal_(0.0, 0.02);
      if (b.defined()) b.zero_();
    }
  }
  torch::Tensor forward(torch::Tensor x) override {
    x = layer_norm_2d(stem(x), stem_norm);
    for (size_t s = 0; s < stages.size(); ++s) {
      for (auto& b : stages[s]) x = b->forward(x);
      if (s < down_convs.size()) x = down_convs[s](layer_norm_2d(x, down_norms[s]));
    }
    x = torch::adaptive_avg_pool2d(x, {1, 1});
    return head(layer_norm_2d(x, head_norm).flatten(1));
  }

  torch::nn::Conv2d stem{nullptr};
  torch::nn::LayerNorm stem_norm{nullptr}, head_norm{nullptr};
  std::vector<std::vector<std::shared_ptr<CNBlock>>> stages;
  std::vector<torch::nn::LayerNorm> down_norms;
  std::vector<torch::nn::Conv2d> down_convs;
  torch::nn::Linear head{nullptr};
};

}  // namespace detail

// "resnet18", "resnet50" or "convnext_tiny" with a Linear head of num_outputs; nullptr for
// any other name.
inline std::shared_ptr<TorchNet> torch_model(const std::string& arch, int64_t num_outputs) {
  if (arch == "resnet18")
    return std::make_shared<detail::ResNet>(std::vector<int64_t>{2, 2, 2, 2}, false, num_outputs);
  if (arch == "resnet50")
    return std::make_shared<detail::ResNet>(std::vector<int64_t>{3, 4, 6, 3}, true, num_outputs);
  if (arch == "convnext_tiny")
    return std::make_shared<detail::ConvNeXt>(std::vector<int64_t>{96, 192, 384, 768},
                                              std::vector<int64_t>{3, 3, 9, 3}, 0.1, num_outputs);
  return nullptr;
}

// Python's model.to(memory_format=torch.channels_last): every 4-d parameter stored NHWC.
inline void to_channels_last(torch::nn::Module& net) {
  torch::NoGradGuard no_grad;
  for (auto& p : net.parameters())
    if (p.dim() == 4) p.set_data(p.contiguous(torch::MemoryFormat::ChannelsLast));
}

}  // namespace bench
