// engine/ops/layernorm.h — LayerNorm over the last dim (the channels of an NHWC tensor, as
// ConvNeXt's LayerNorm2d; or the features of a [N, C] embedding).
//   y = (x - mean) * rstd * weight + bias,  rstd = 1 / sqrt(var_biased + eps)
// Forward saves mean and rstd per row for the backward (not the normalised input).
#pragma once

#include "engine/tensor.h"

namespace engine {

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps = 1e-6);

}  // namespace engine
