// nn/layers.cpp — see layers.h. Each forward is one engine op; the work is in engine/ops/.
#include "nn/layers.h"

#include <cmath>

#include "nn/init.h"

namespace nn {

using engine::check;
using engine::DType;

// ---- Conv2d -------------------------------------------------------------------------------

Conv2d::Conv2d(int64_t in, int64_t out, int64_t k, SkipInit, const Conv2dOptions& opt)
    : in_channels(in), out_channels(out), kernel_size(k), options(opt) {
  check(in > 0 && out > 0 && k > 0, "Conv2d: channels and kernel size must be positive (in=", in,
        ", out=", out, ", kernel=", k, ")");
  check(opt.groups > 0 && in % opt.groups == 0 && out % opt.groups == 0, "Conv2d: groups=",
        opt.groups, " must divide in_channels=", in, " and out_channels=", out);
  check(opt.stride > 0 && opt.padding >= 0 && opt.dilation > 0,
        "Conv2d: needs stride > 0, padding >= 0, dilation > 0 (got ", opt.stride, ", ",
        opt.padding, ", ", opt.dilation, ")");
  weight = Tensor::zeros({out, k, k, in / opt.groups});
  register_parameter("weight", &weight);
  if (opt.bias) {
    bias = Tensor::zeros({out});
    register_parameter("bias", &bias);
  }
}

Conv2d::Conv2d(int64_t in, int64_t out, int64_t k, Generator& gen, const Conv2dOptions& opt)
    : Conv2d(in, out, k, skip_init, opt) {
  // torch.nn.Conv2d.reset_parameters: kaiming_uniform_(a=sqrt(5)), bias U(+-1/sqrt(fan_in)).
  init::kaiming_uniform_(weight, std::sqrt(5.0), gen);
  if (bias.defined()) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(init::fan_in(weight)));
    init::uniform_(bias, -bound, bound, gen);
  }
}

Tensor Conv2d::forward(const Tensor& x) {
  engine::Conv2dParams p = engine::Conv2dParams::make(options.stride, options.padding,
                                                      options.dilation, options.groups);
  return engine::conv2d(x, weight, bias, p);
}

// ---- Linear -------------------------------------------------------------------------------

Linear::Linear(int64_t in, int64_t out, SkipInit, bool with_bias)
    : in_features(in), out_features(out) {
  check(in > 0 && out > 0, "Linear: sizes must be positive (in=", in, ", out=", out, ")");
  weight = Tensor::zeros({out, in});
  register_parameter("weight", &weight);
  if (with_bias) {
    bias = Tensor::zeros({out});
    register_parameter("bias", &bias);
  }
}

Linear::Linear(int64_t in, int64_t out, Generator& gen, bool with_bias)
    : Linear(in, out, skip_init, with_bias) {
  init::kaiming_uniform_(weight, std::sqrt(5.0), gen);
  if (bias.defined()) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(in));
    init::uniform_(bias, -bound, bound, gen);
  }
}

Tensor Linear::forward(const Tensor& x) { return engine::linear(x, weight, bias); }

// ---- BatchNorm2d --------------------------------------------------------------------------

BatchNorm2d::BatchNorm2d(int64_t c, double eps_, double momentum_)
    : num_features(c), eps(eps_), momentum(momentum_) {
  check(c > 0, "BatchNorm2d: num_features must be positive, got ", c);
  check(momentum_ >= 0 && momentum_ <= 1, "BatchNorm2d: momentum must be in [0, 1], got ",
        momentum_);
  weight = Tensor::ones({c});
  bias = Tensor::zeros({c});
  running_mean = Tensor::zeros({c});
  running_var = Tensor::ones({c});
  num_batches_tracked = Tensor::zeros({}, DType::Int64);
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
  register_buffer("running_mean", &running_mean);
  register_buffer("running_var", &running_var);
  register_buffer("num_batches_tracked", &num_batches_tracked);
}

void BatchNorm2d::count_batch() {
  if (is_training()) {
    // Informational only (momentum is fixed), but checkpoints carry it, so keep it honest on
    // every device. It is a host counter (Module::to leaves it on the CPU, so counting costs no
    // GPU round trip); if it reached a GPU anyway (a device tensor assigned or loaded into the
    // slot), it moves back once, in place, as Module::to moves tensors, and counts from there.
    if (!num_batches_tracked.device().is_cpu()) {
      engine::NoGradGuard no_grad;
      Tensor host = num_batches_tracked.detach().to(engine::Device::cpu()).contiguous();
      engine::TensorImpl& impl = num_batches_tracked.impl();
      impl.storage = host.impl().storage;
      impl.strides = host.strides();
      impl.offset = host.offset();
    }
    num_batches_tracked.data<int64_t>()[0] += 1;
  }
}

Tensor BatchNorm2d::forward(const Tensor& x) {
  count_batch();
  return engine::batch_norm(x, weight, bias, running_mean, running_var, is_training(), momentum,
                            eps);
}

Tensor BatchNorm2d::forward_relu(const Tensor& x) {
  count_batch();
  return engine::batch_norm(x, weight, bias, running_mean, running_var, is_training(), momentum,
                            eps, /*relu=*/true);
}

Tensor BatchNorm2d::forward_add_relu(const Tensor& x, const Tensor& residual) {
  count_batch();
  return engine::batch_norm_add_relu(x, residual, weight, bias, running_mean, running_var,
                                     is_training(), momentum, eps);
}

// ---- LayerNorm ----------------------------------------------------------------------------

LayerNorm::LayerNorm(int64_t c, double eps_) : normalized_shape(c), eps(eps_) {
  check(c > 0, "LayerNorm: normalized_shape must be positive, got ", c);
  weight = Tensor::ones({c});
  bias = Tensor::zeros({c});
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
}

Tensor LayerNorm::forward(const Tensor& x) {
  check(x.dim() >= 1 && x.size(-1) == normalized_shape, "LayerNorm: input ", x.shape(),
        " must end in ", normalized_shape, " features (NHWC: channels last)");
  return engine::layer_norm(x, weight, bias, eps);
}

// ---- activations and pooling --------------------------------------------------------------

Tensor GELU::forward(const Tensor& x) { return engine::gelu(x); }
Tensor ReLU::forward(const Tensor& x) { return engine::relu(x); }

MaxPool2d::MaxPool2d(int64_t k, int64_t s, int64_t pad)
    : kernel_size(k), stride(s == 0 ? k : s), padding(pad) {
  check(k > 0 && stride > 0 && pad >= 0 && 2 * pad <= k, "MaxPool2d: needs kernel > 0, stride",
        " > 0 and 0 <= padding <= kernel/2 (got ", k, ", ", s, ", ", pad, ")");
}

Tensor MaxPool2d::forward(const Tensor& x) {
  return engine::max_pool2d(x, kernel_size, stride, padding);
}

AdaptiveAvgPool2d::AdaptiveAvgPool2d(int64_t h, int64_t w) : out_h(h), out_w(w) {
  check(h > 0 && w > 0, "AdaptiveAvgPool2d: output size must be positive, got ", h, "x", w);
}

Tensor AdaptiveAvgPool2d::forward(const Tensor& x) {
  if (out_h == 1 && out_w == 1) {
    // The common case (before every head) has a dedicated reduction.
    check(x.dim() == 4, "AdaptiveAvgPool2d: expected NHWC input, got ", x.shape());
    return engine::global_avg_pool(x).view({x.size(0), 1, 1, x.size(3)});
  }
  return engine::adaptive_avg_pool2d(x, out_h, out_w);
}

// ---- Dropout and StochasticDepth ----------------------------------------------------------

namespace {
std::shared_ptr<Generator> need_gen(std::shared_ptr<Generator> g, const char* who) {
  check(g != nullptr, who, ": needs a generator (pass one, or a seed)");
  return g;
}
void check_p(double p, const char* who) {
  check(p >= 0 && p < 1, who, ": probability must be in [0, 1), got ", p);
}
}  // namespace

Dropout::Dropout(double p_, std::shared_ptr<Generator> g)
    : p(p_), gen(need_gen(std::move(g), "Dropout")) {
  check_p(p, "Dropout");
}
Dropout::Dropout(double p_, uint64_t seed) : Dropout(p_, std::make_shared<Generator>(seed)) {}
Tensor Dropout::forward(const Tensor& x) { return engine::dropout(x, p, is_training(), *gen); }

StochasticDepth::StochasticDepth(double p_, std::shared_ptr<Generator> g)
    : p(p_), gen(need_gen(std::move(g), "StochasticDepth")) {
  check_p(p, "StochasticDepth");
}
StochasticDepth::StochasticDepth(double p_, uint64_t seed)
    : StochasticDepth(p_, std::make_shared<Generator>(seed)) {}
Tensor StochasticDepth::forward(const Tensor& x) {
  return engine::drop_path(x, p, is_training(), *gen);
}

Tensor StochasticDepth::sample_scale(int64_t samples, engine::DType dtype, engine::Device device) {
  return engine::drop_path_scale(samples, p, is_training(), *gen, dtype, device);
}

// ---- Flatten, Sequential ------------------------------------------------------------------

Flatten::Flatten(int64_t s, int64_t e) : start_dim(s), end_dim(e) {}
Tensor Flatten::forward(const Tensor& x) { return x.flatten(start_dim, end_dim); }

Sequential::Sequential(const std::vector<std::shared_ptr<Module>>& modules) {
  for (const auto& m : modules) {
    check(m != nullptr, "Sequential: null module at index ", children().size());
    push_back(m);
  }
}

const std::shared_ptr<Module>& Sequential::operator[](size_t i) const {
  check(i < children().size(), "Sequential: index ", i, " out of range (size ", children().size(),
        ")");
  return children()[i].second;
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor y = x;
  for (const auto& [name, m] : children()) y = m->forward(y);
  return y;
}

}  // namespace nn
