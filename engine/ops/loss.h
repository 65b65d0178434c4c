// engine/ops/loss.h — regression losses (Image2GPS regresses normalised coordinates).
//   mse:   (pred - target)^2
//   huber: 0.5 d^2 if |d| < delta else delta * (|d| - 0.5 delta)   (torch.nn.HuberLoss)
// `target` must have pred's shape; it gets no gradient.
#pragma once

#include "engine/tensor.h"

namespace engine {

enum class Reduction { Mean, Sum, None };

Tensor mse_loss(const Tensor& pred, const Tensor& target, Reduction r = Reduction::Mean);
Tensor huber_loss(const Tensor& pred, const Tensor& target, double delta = 1.0,
                  Reduction r = Reduction::Mean);

}  // namespace engine
