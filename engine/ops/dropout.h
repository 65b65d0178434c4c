// engine/ops/dropout.h — dropout and stochastic depth with the counter-based RNG, so the same
// generator state gives the same mask on the CPU and the GPU.
//
// dropout: zero each element with probability p, scale survivors by 1/(1-p).
// drop_path: zero whole samples (dim 0) with probability p, scale survivors by 1/(1-p)
//   (torchvision's StochasticDepth mode "row"). Both are the identity when !training or p == 0.
#pragma once

#include "engine/random.h"
#include "engine/tensor.h"

namespace engine {

Tensor dropout(const Tensor& x, double p, bool training, Generator& gen);
Tensor drop_path(const Tensor& x, double p, bool training, Generator& gen);

// The [samples] factors drop_path would multiply each sample by (0 or 1/(1-p)), drawn from gen
// exactly as drop_path draws them (the same counters), for ops that fuse the scaling into their
// own pass (scaled_residual.h). Undefined, and no counters used, when !training or p == 0.
Tensor drop_path_scale(int64_t samples, double p, bool training, Generator& gen, DType dtype,
                       Device device);

}  // namespace engine
