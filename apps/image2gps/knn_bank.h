// apps/image2gps/knn_bank.h — k-NN location retrieval over image embeddings.
//
// The training set's embeddings (the model's features before its head) form a bank, each row
// with its (lat, lon). A query is placed at
//   mean:   the plain mean of its k nearest bank rows by L2 distance (the course: k = 15), or
//   cosine: a softmax-weighted mean over the k most cosine-similar rows, weights
//           softmax(similarity / temperature) (the course: k = 20, temperature 0.1).
// Neighbour search is engine::knn_search (the fused kernel on CUDA).
#pragma once

#include <array>
#include <vector>

#include "engine/engine.h"

namespace i2g {

enum class KnnMode { Mean, Cosine };

struct KnnBank {
  engine::Tensor embeddings;  // [N, D] float32
  engine::Tensor coords;      // [N, 2] float64 (lat, lon in degrees)

  // One (lat, lon) per query row of `queries` [Q, D].
  std::vector<std::array<double, 2>> predict(const engine::Tensor& queries, int64_t k,
                                             KnnMode mode, double temperature = 0.1) const;
};

}  // namespace i2g
