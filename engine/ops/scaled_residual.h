// engine/ops/scaled_residual.h — the tail of a ConvNeXt block as one op:
//
//   scaled_residual(x, h, gamma, bias, sample_scale) = x + sample_scale * gamma * (h + bias)
//
// x, h: the same shape [N, ..., C], channels last; gamma, bias: [C] (bias may be undefined);
// sample_scale: [N] or undefined, the stochastic-depth factor of each sample (drop_path_scale
// in dropout.h; a mask, never differentiated). torchvision writes it as
//   y = stochastic_depth(layer_scale * (pwconv2(h))) + x
// which is four passes over the activation forward (bias, scale, drop path, add) and as many
// backward; this is one each way (kernels/cpu/scaled_residual.h has the math).
#pragma once

#include "engine/tensor.h"

namespace engine {

Tensor scaled_residual(const Tensor& x, const Tensor& h, const Tensor& gamma,
                       const Tensor& bias = {}, const Tensor& sample_scale = {});

}  // namespace engine
