// engine/ops/layernorm.h — LayerNorm over the last dim (the channels of an NHWC tensor, as
// ConvNeXt's LayerNorm2d; or the features of a [N, C] embedding).
//   y = (x - mean) * rstd * weight + bias,  rstd = 1 / sqrt(var_biased + eps)
// Forward saves mean and rstd per row for the backward (not the normalised input).
#pragma once

#include "engine/tensor.h"

namespace engine {

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps = 1e-6);

// The kernels under layer_norm, without autograd or argument checks, for ops that fuse a
// LayerNorm into something else (engine::layer_norm_mlp). x is a contiguous [m, c] tensor,
// weight and bias contiguous [c] or undefined.
struct LayerNormRows {
  Tensor y;           // [m, c]; undefined when only the statistics were asked for
  Tensor mean, rstd;  // [m]
};
LayerNormRows layer_norm_rows(const Tensor& x, const Tensor& weight, const Tensor& bias,
                              double eps, bool with_output = true);
// The backward from the forward's statistics: dx [m, c], dweight and dbias [c], each written
// when defined.
void layer_norm_rows_backward(const Tensor& x, const Tensor& dy, const Tensor& mean,
                              const Tensor& rstd, const Tensor& weight, const Tensor& dx,
                              const Tensor& dweight, const Tensor& dbias);

}  // namespace engine
