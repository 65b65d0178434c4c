// engine/ops/batchnorm.h — BatchNorm2d on NHWC activations: statistics per channel (last dim)
// over N, H and W.
//
// training: normalise with the batch mean and biased variance, and update the running stats
//   in place (running = (1 - momentum) * running + momentum * batch, with the UNBIASED batch
//   variance for running_var, exactly as PyTorch). eval: normalise with the running stats.
// weight/bias [C] (may be undefined: no affine); running_mean/var [C] (may be undefined in
// training: no tracking). Running stats are updated without autograd.
// relu: relu(batch_norm(...)) as one op (ResNet's BN -> ReLU): the ReLU is applied in the
//   normalising pass, and the backward zeroes the gradient where the pre-activation was <= 0
//   inside the BatchNorm backward's own passes (the mask recomputed from x, never stored): two
//   passes over the activation fewer forward and three backward than the composed ops. On CUDA
//   with cuDNN's BatchNorm selected (ENGINE_CUDA_IMPL_BATCHNORM=vendor) it is the composition.
#pragma once

#include "engine/tensor.h"

namespace engine {

Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias,
                  const Tensor& running_mean, const Tensor& running_var, bool training,
                  double momentum = 0.1, double eps = 1e-5, bool relu = false);

// relu(batch_norm(x) + residual) as one op: ResNet's block ending (the last BatchNorm, the
// identity or downsample branch added, then the ReLU). The forward adds the residual and
// applies the ReLU in the normalising pass (two passes over the activation fewer than
// batch_norm then add_relu, same result bit for bit); the backward takes the ReLU's mask from
// the output, which is also the residual's gradient, then runs batch_norm's backward.
// residual: x's shape, dtype and device. On CUDA with cuDNN's BatchNorm it is the composition.
Tensor batch_norm_add_relu(const Tensor& x, const Tensor& residual, const Tensor& weight,
                           const Tensor& bias, const Tensor& running_mean,
                           const Tensor& running_var, bool training, double momentum = 0.1,
                           double eps = 1e-5);

}  // namespace engine
