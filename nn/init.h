// nn/init.h — parameter initialisation, as torch.nn.init, from a seeded engine::Generator.
//
// Values are drawn on the host in float64 from the counter-based RNG and copied into the
// tensor (any device), so the same seed gives the same model on the CPU and the GPU. They are
// not PyTorch's numbers (different RNG); the distributions are the same.
//
// Fans for the engine's weight layouts (DESIGN.md): conv [K, R, S, C/groups], linear
// [out, in]. In both, fan_in = numel / shape[0] and fan_out = numel / shape.back()
// (conv: K*R*S, linear: out), the same numbers torch.nn.init computes on OIHW / [out, in].
#pragma once

#include <cstdint>

#include "engine/engine.h"

namespace nn::init {

using engine::Generator;
using engine::Tensor;

int64_t fan_in(const Tensor& weight);
int64_t fan_out(const Tensor& weight);

void constant_(const Tensor& t, double value);
void zeros_(const Tensor& t);
void ones_(const Tensor& t);
void uniform_(const Tensor& t, double low, double high, Generator& gen);
void normal_(const Tensor& t, double mean, double std, Generator& gen);
// Normal(mean, std) redrawn until inside [a, b] (absolute bounds, as torch.nn.init).
void trunc_normal_(const Tensor& t, double mean, double std, double a, double b, Generator& gen);

// torch.nn.init.kaiming_uniform_(w, a, mode="fan_in", nonlinearity="leaky_relu"):
// U(-bound, bound), bound = sqrt(2 / (1 + a^2)) * sqrt(3 / fan_in). With a = sqrt(5) (the
// default of nn.Conv2d and nn.Linear) the bound is 1 / sqrt(fan_in).
void kaiming_uniform_(const Tensor& w, double a, Generator& gen);
// torch.nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu"): N(0, 2 / fan_out),
// what torchvision's ResNet uses for every conv.
void kaiming_normal_fan_out_relu_(const Tensor& w, Generator& gen);

}  // namespace nn::init
