// engine/ops/knn.h — pairwise distances and top-k selection, the pieces of k-NN retrieval.
#pragma once

#include <cstdint>

#include "engine/tensor.h"

namespace engine {

// d[i, j] = ||a_i - b_j||^2 for a [Q, D], b [N, D] -> [Q, N]; differentiable in a and b.
Tensor pairwise_sq_l2(const Tensor& a, const Tensor& b);

struct TopK {
  Tensor values;   // [..., k], differentiable (gradient scattered back to the picked slots)
  Tensor indices;  // [..., k] int64
};
// The k smallest (largest=false) or largest values along `dim`, sorted best first; ties go
// to the lower index.
TopK topk(const Tensor& x, int64_t k, int64_t dim = -1, bool largest = false);

enum class KnnMetric { L2, Cosine };
// Fused search without materialising the [Q, N] matrix: for each query the k nearest bank
// rows (L2: smallest squared distance; Cosine: largest cosine similarity). No autograd.
TopK knn_search(const Tensor& queries, const Tensor& bank, int64_t k,
                KnnMetric metric = KnnMetric::L2);

}  // namespace engine
