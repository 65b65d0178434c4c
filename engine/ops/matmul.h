// engine/ops/matmul.h — matrix products.
//
// matmul: a [..., M, K] @ b [..., K, N] -> [..., M, N], batch dims broadcast (2-D is the
// plain product). linear: x [..., in] @ w[out, in]^T + bias[out], as torch.nn.functional.linear.
#pragma once

#include "engine/tensor.h"

namespace engine {

Tensor matmul(const Tensor& a, const Tensor& b);
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = {});

}  // namespace engine
