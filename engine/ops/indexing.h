// engine/ops/indexing.h — joining tensors and picking elements by index.
// Index tensors are int64 on the same device; out-of-range indices throw an engine::Error.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/tensor.h"

namespace engine {

Tensor cat(const std::vector<Tensor>& xs, int64_t dim);
Tensor stack(const std::vector<Tensor>& xs, int64_t dim);
// out[..., i, ...] = x[..., index[i], ...] along dim (index is 1-D).
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
// torch.gather: out[i][j] = x[i][index[i][j]] for dim 1, index has x's rank.
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);

}  // namespace engine
