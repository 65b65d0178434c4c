#include "apps/image2gps/knn_bank.h"

#include <algorithm>
#include <cmath>

namespace i2g {

std::vector<std::array<double, 2>> KnnBank::predict(const engine::Tensor& queries, int64_t k,
                                                    KnnMode mode, double temperature) const {
  using engine::check;
  check(embeddings.defined() && embeddings.dim() == 2, "k-NN: the bank has no embeddings");
  check(queries.dim() == 2 && queries.size(1) == embeddings.size(1), "k-NN: query shape ",
        queries.shape(), " does not match bank ", embeddings.shape());
  check(k >= 1, "k-NN: k must be at least 1, got ", k);
  check(temperature > 0, "k-NN: temperature must be positive, got ", temperature);
  k = std::min<int64_t>(k, embeddings.size(0));

  engine::NoGradGuard no_grad;
  engine::Tensor q = queries.to(embeddings.device()).to(embeddings.dtype());
  auto metric = mode == KnnMode::Mean ? engine::KnnMetric::L2 : engine::KnnMetric::Cosine;
  engine::TopK nn = engine::knn_search(q, embeddings, k, metric);
  std::vector<double> score = nn.values.to_vector();
  std::vector<double> idx = nn.indices.to_vector();
  std::vector<double> xy = coords.to_vector();

  std::vector<std::array<double, 2>> out(queries.size(0));
  for (int64_t i = 0; i < queries.size(0); ++i) {
    std::vector<double> w(k, 1.0);
    if (mode == KnnMode::Cosine) {
      // Softmax over similarity / T, shifted by the best for stability.
      double best = score[i * k];
      for (int64_t j = 0; j < k; ++j) w[j] = std::exp((score[i * k + j] - best) / temperature);
    }
    double wsum = 0, lat = 0, lon = 0;
    for (int64_t j = 0; j < k; ++j) {
      auto row = static_cast<int64_t>(idx[i * k + j]);
      lat += w[j] * xy[row * 2];
      lon += w[j] * xy[row * 2 + 1];
      wsum += w[j];
    }
    out[i] = {lat / wsum, lon / wsum};
  }
  return out;
}

}  // namespace i2g
