// engine/ops/softmax.h — softmax and log-softmax along one dim (max-subtracted, stable).
#pragma once

#include <cstdint>

#include "engine/tensor.h"

namespace engine {

Tensor softmax(const Tensor& x, int64_t dim = -1);
Tensor log_softmax(const Tensor& x, int64_t dim = -1);

}  // namespace engine
