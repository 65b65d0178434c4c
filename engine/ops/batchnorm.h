// engine/ops/batchnorm.h — BatchNorm2d on NHWC activations: statistics per channel (last dim)
// over N, H and W.
//
// training: normalise with the batch mean and biased variance, and update the running stats
//   in place (running = (1 - momentum) * running + momentum * batch, with the UNBIASED batch
//   variance for running_var, exactly as PyTorch). eval: normalise with the running stats.
// weight/bias [C] (may be undefined: no affine); running_mean/var [C] (may be undefined in
// training: no tracking). Running stats are updated without autograd.
#pragma once

#include "engine/tensor.h"

namespace engine {

Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias,
                  const Tensor& running_mean, const Tensor& running_var, bool training,
                  double momentum = 0.1, double eps = 1e-5);

}  // namespace engine
