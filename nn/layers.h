// nn/layers.h — the layers ResNet and ConvNeXt are made of, named and initialised as PyTorch.
//
// Each layer is a thin Module around one engine op: it owns the parameters (public members,
// registered under torch.nn's names "weight", "bias", "running_mean", ...) and draws their
// initial values from an engine::Generator with torch.nn's default distribution. Activations
// are NHWC [N, H, W, C]; so LayerNorm over the last dim is both nn.LayerNorm and torchvision's
// LayerNorm2d, and ConvNeXt's Permute layers are not needed.
//
//   engine::Generator gen(42);
//   auto conv = std::make_shared<nn::Conv2d>(3, 64, 7, gen, nn::Conv2dOptions{.stride = 2,
//                                            .padding = 3, .bias = false});
//   Tensor y = (*conv)(x);  // x [N, H, W, 3] -> y [N, H/2, W/2, 64]
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "nn/module.h"

namespace nn {

using engine::Generator;

// Tag for layers whose parameters the caller initialises itself (models re-initialise as
// torchvision does): weights start at zero and no random numbers are drawn, as
// torch.nn.utils.skip_init. Biases start at zero too.
struct SkipInit {};
inline constexpr SkipInit skip_init{};

struct Conv2dOptions {
  int64_t stride = 1;
  int64_t padding = 0;
  int64_t dilation = 1;
  int64_t groups = 1;
  bool bias = true;
};

// torch.nn.Conv2d. weight [K, R, S, C/groups] (the engine's layout; PyTorch checkpoints hold
// OIHW and are permuted at load, see models/weights.h), bias [K] when options.bias.
// Init: kaiming_uniform(a=sqrt(5)) for weight, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for bias.
class Conv2d : public Module {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel_size, Generator& gen,
         const Conv2dOptions& options = {});
  Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel_size, SkipInit,
         const Conv2dOptions& options = {});
  Tensor forward(const Tensor& x) override;

  int64_t in_channels, out_channels, kernel_size;
  Conv2dOptions options;
  Tensor weight, bias;  // bias undefined (and not registered) without options.bias
};

// torch.nn.Linear: weight [out, in], bias [out]; init as Conv2d with fan_in = in.
class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, Generator& gen, bool bias = true);
  Linear(int64_t in_features, int64_t out_features, SkipInit, bool bias = true);
  Tensor forward(const Tensor& x) override;  // [..., in] -> [..., out]

  int64_t in_features, out_features;
  Tensor weight, bias;
};

// torch.nn.BatchNorm2d over the channels (last dim) of NHWC input. Parameters weight (1) and
// bias (0); buffers running_mean (0), running_var (1) and num_batches_tracked (int64 scalar,
// counted in training as PyTorch does, whatever the device; it stays on the host, see Module::to,
// and one put on a GPU moves back to the host at the next training forward).
class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(int64_t num_features, double eps = 1e-5, double momentum = 0.1);
  Tensor forward(const Tensor& x) override;
  // relu(forward(x)) as one op (engine::batch_norm's relu: one pass each way fewer).
  Tensor forward_relu(const Tensor& x);
  // relu(this(x) + residual) as one op (engine::batch_norm_add_relu): ResNet's block ending.
  Tensor forward_add_relu(const Tensor& x, const Tensor& residual);

  int64_t num_features;
  double eps, momentum;
  Tensor weight, bias, running_mean, running_var, num_batches_tracked;

 private:
  void count_batch();  // num_batches_tracked += 1 in training mode
};

// torch.nn.LayerNorm(C) over the last dim; on NHWC input this is also torchvision's
// LayerNorm2d (ConvNeXt passes eps = 1e-6). weight 1, bias 0.
class LayerNorm : public Module {
 public:
  explicit LayerNorm(int64_t normalized_shape, double eps = 1e-5);
  Tensor forward(const Tensor& x) override;

  int64_t normalized_shape;
  double eps;
  Tensor weight, bias;
};
using LayerNorm2d = LayerNorm;

// torch.nn.GELU() (exact erf form).
class GELU : public Module {
 public:
  Tensor forward(const Tensor& x) override;
};

class ReLU : public Module {
 public:
  Tensor forward(const Tensor& x) override;
};

class Identity : public Module {
 public:
  Tensor forward(const Tensor& x) override { return x; }
};

// torch.nn.MaxPool2d(kernel, stride, padding); stride 0 means stride = kernel, as PyTorch's None.
class MaxPool2d : public Module {
 public:
  MaxPool2d(int64_t kernel_size, int64_t stride = 0, int64_t padding = 0);
  Tensor forward(const Tensor& x) override;

  int64_t kernel_size, stride, padding;
};

// torch.nn.AdaptiveAvgPool2d((out_h, out_w)): [N, H, W, C] -> [N, out_h, out_w, C].
class AdaptiveAvgPool2d : public Module {
 public:
  AdaptiveAvgPool2d(int64_t out_h, int64_t out_w);
  Tensor forward(const Tensor& x) override;

  int64_t out_h, out_w;
};

// torch.nn.Dropout(p). The mask comes from `gen`, which the caller may share between layers
// (one "dropout" stream per model, saved with a checkpoint so a resumed run continues it).
class Dropout : public Module {
 public:
  Dropout(double p, std::shared_ptr<Generator> gen);
  Dropout(double p, uint64_t seed);  // with its own generator
  Tensor forward(const Tensor& x) override;

  double p;
  std::shared_ptr<Generator> gen;
};

// torchvision.ops.StochasticDepth(p, mode="row"): drops whole samples of a residual branch.
class StochasticDepth : public Module {
 public:
  StochasticDepth(double p, std::shared_ptr<Generator> gen);
  StochasticDepth(double p, uint64_t seed);
  Tensor forward(const Tensor& x) override;
  // The per-sample factors forward() would apply to a batch of `samples`, for a caller that
  // fuses the scaling (ConvNeXt's block tail); undefined in eval mode or with p == 0.
  Tensor sample_scale(int64_t samples, engine::DType dtype, engine::Device device);

  double p;
  std::shared_ptr<Generator> gen;
};

// torch.nn.Flatten(start_dim, end_dim). On NHWC input the element order differs from
// PyTorch's NCHW flatten unless H = W = 1 (after global pooling, where models use it).
class Flatten : public Module {
 public:
  explicit Flatten(int64_t start_dim = 1, int64_t end_dim = -1);
  Tensor forward(const Tensor& x) override;

  int64_t start_dim, end_dim;
};

// torch.nn.Sequential: children named "0", "1", ... in the order they are added; forward
// applies them in turn.
class Sequential : public Module {
 public:
  Sequential() = default;
  explicit Sequential(const std::vector<std::shared_ptr<Module>>& modules);

  template <class M>
  std::shared_ptr<M> push_back(std::shared_ptr<M> m) {
    return register_module(std::to_string(children().size()), std::move(m));
  }
  // Constructs an M in place: seq.emplace<nn::ReLU>().
  template <class M, class... Args>
  std::shared_ptr<M> emplace(Args&&... args) {
    return push_back(std::make_shared<M>(std::forward<Args>(args)...));
  }

  size_t size() const { return children().size(); }
  const std::shared_ptr<Module>& operator[](size_t i) const;
  // The i-th child as an M (throws engine::Error when it is not one).
  template <class M>
  std::shared_ptr<M> at(size_t i) const {
    auto m = std::dynamic_pointer_cast<M>((*this)[i]);
    engine::check(m != nullptr, "Sequential::at(", i, "): child has a different type");
    return m;
  }

  Tensor forward(const Tensor& x) override;
};

}  // namespace nn
