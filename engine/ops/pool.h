// engine/ops/pool.h — pooling on NHWC activations ([N, H, W, C] in, [N, P, Q, C] out).
#pragma once

#include <cstdint>

#include "engine/tensor.h"

namespace engine {

// Max over kernel x kernel windows; padding counts as -inf (ResNet stem: 3, 2, 1).
// The gradient goes to the first maximal element of each window, as PyTorch does.
Tensor max_pool2d(const Tensor& x, int64_t kernel, int64_t stride, int64_t padding = 0);

// Average over the adaptive windows of torch.nn.AdaptiveAvgPool2d: output cell (i, j) averages
// rows [floor(i*H/P), ceil((i+1)*H/P)) and likewise for columns.
Tensor adaptive_avg_pool2d(const Tensor& x, int64_t out_h, int64_t out_w);

// Mean over H and W: [N, H, W, C] -> [N, C] (the global average pool before a model's head).
Tensor global_avg_pool(const Tensor& x);

}  // namespace engine
