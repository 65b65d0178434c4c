// engine/ops/reduce.h — sum, mean, max and var over dims, with keepdim; sum_to for
// broadcasting's backward. An empty `dims` list means "all dims".
#pragma once

#include <vector>

#include "engine/tensor.h"

namespace engine {

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
// Maximum values (gradient flows to the first maximal element, as torch.max(dim) does).
Tensor max(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
// Variance with `correction` (1 = unbiased, as torch.var's default; 0 = population).
Tensor var(const Tensor& x, const std::vector<int64_t>& dims = {}, int64_t correction = 1,
           bool keepdim = false);
// Sums `x` down to `shape` (the inverse of broadcasting `shape` up to x's shape).
Tensor sum_to(const Tensor& x, const Shape& shape);

}  // namespace engine
