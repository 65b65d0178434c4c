// engine/ops/gelu.h — GELU in its exact erf form (PyTorch's default approximate='none'):
//   gelu(x) = 0.5 * x * (1 + erf(x / sqrt(2)))
// bias_gelu(x, b) = gelu(x + b) with b broadcast along the last dim, fused in one pass.
#pragma once

#include "engine/tensor.h"

namespace engine {

Tensor gelu(const Tensor& x);
Tensor bias_gelu(const Tensor& x, const Tensor& bias);
// In place and outside autograd: x = gelu(x + bias), x contiguous and not requiring a gradient
// (an MLP's hidden activation in inference, where nothing keeps the pre-activation).
void bias_gelu_(const Tensor& x, const Tensor& bias);

}  // namespace engine
