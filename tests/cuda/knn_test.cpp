// CUDA k-NN pieces against the CPU: pairwise squared distances (forward through the k-NN lab
// for float32, the simple kernel for float64; backward composed of GEMMs), top-k (lab for
// float32 rows with k <= 64, the simple kernel for k > 64, middle dims and float64) with ties
// and NaN, and the fused knn_search (lab / simple) for L2 and cosine.
#include <set>

#include "tests/cuda/op_check.h"

namespace cuda_test {
namespace {

using CudaKnn = CudaTest;

TEST_F(CudaKnn, PairwiseSqL2MatchesCpu) {
  uint64_t seed = 1;
  struct Qnd {
    int64_t q, n, d;
  };
  for (DType t : {DType::Float32, DType::Float64})
    for (Qnd s : {Qnd{1, 1, 1}, Qnd{17, 33, 5}, Qnd{130, 257, 67}, Qnd{3, 1000, 128}}) {
      Tensor a = host_random({s.q, s.d}, ++seed, -1, 1, t);
      Tensor b = host_random({s.n, s.d}, ++seed, -1, 1, t);
      OpFn f = [](const std::vector<Tensor>& in) { return engine::pairwise_sq_l2(in[0], in[1]); };
      // ||a||^2 + ||b||^2 - 2 a.b of O(d) terms: float32 error ~ d * 2^-24 absolute.
      const double atol = t == DType::Float32 ? 2e-6 * (s.d + 1) : 1e-13 * (s.d + 1);
      const double rtol = t == DType::Float32 ? 1e-5 : 1e-12;
      // Gradients: sums over n of g * (a - b) terms; g in [-1, 1).
      const Tolerance tol{rtol, atol, rtol, atol * (s.n + s.q)};
      EXPECT_TRUE(matches_cpu(f, {a, b}, tol,
                              "q=" + std::to_string(s.q) + " n=" + std::to_string(s.n) +
                                  " d=" + std::to_string(s.d) + " " + dtype_str(t)));
    }
}

TEST_F(CudaKnn, TopkMatchesCpuWithTiesAndNaN) {
  uint64_t seed = 20;
  struct Case {
    Shape shape;
    int64_t k, dim;
    const char* what;
  };
  const std::vector<Case> cases = {
      {{9, 300}, 7, -1, "rows, k <= 64 (lab for float32)"},
      {{5, 100}, 64, 1, "rows, k = 64"},
      {{4, 150}, 100, 1, "rows, k > 64 (simple kernel)"},
      {{3, 40, 6}, 5, 1, "middle dim (simple kernel)"},
      {{2, 1}, 1, 1, "one column"},
  };
  for (const Case& c : cases)
    for (DType t : {DType::Float32, DType::Float64})
      for (bool largest : {false, true}) {
        // Integers in [-20, 20]: many ties, so "equal values to the lower index" decides.
        Tensor x = host_integers(c.shape, ++seed, 20, t);
        Tensor xc = x.detach().requires_grad_(), xg = x.to(kGpu).requires_grad_();
        engine::TopK rc = engine::topk(xc, c.k, c.dim, largest);
        engine::TopK rg = engine::topk(xg, c.k, c.dim, largest);
        const std::string what =
            std::string(c.what) + (largest ? " largest " : " smallest ") + dtype_str(t);
        EXPECT_TRUE(same_values(rg.values, rc.values)) << what;
        EXPECT_TRUE(same_values(rg.indices, rc.indices)) << what;
        Tensor w = host_random(rc.values.shape(), ++seed, -1, 1, t);
        engine::sum(engine::mul(rc.values, w)).backward();
        engine::sum(engine::mul(rg.values, w.to(kGpu))).backward();
        EXPECT_TRUE(same_values(xg.grad(), xc.grad())) << "grad " << what;
      }
  // NaN ranks above every number: first for largest, last for smallest (torch.topk).
  std::vector<double> v(2 * 70);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>((i * 31) % 17);
  v[5] = kNaN, v[70 + 69] = kNaN, v[70 + 3] = kNaN;
  for (DType t : {DType::Float32, DType::Float64})
    for (bool largest : {false, true})
      for (int64_t k : {3, 70}) {
        Tensor x = Tensor::from_vector(v, {2, 70}).to(t);
        engine::TopK rc = engine::topk(x, k, 1, largest),
                     rg = engine::topk(x.to(kGpu), k, 1, largest);
        EXPECT_TRUE(same_values(rg.values, rc.values)) << "NaN " << t << " k=" << k;
        EXPECT_TRUE(same_values(rg.indices, rc.indices)) << "NaN " << t << " k=" << k;
      }
}

// The k returned neighbours of each query are distinct, sorted best first, and their true
// scores (from the CPU's float64 pairwise matrix) equal the CPU's k best scores: a different
// index is accepted only for a tie within the tolerance.
void expect_same_neighbours(const engine::TopK& got, const engine::TopK& ref, const Tensor& scores,
                            double tol, const std::string& what) {
  const int64_t q = ref.values.size(0), k = ref.values.size(1), n = scores.size(1);
  std::vector<double> gv = got.values.to_vector(), rv = ref.values.to_vector();
  std::vector<double> gi = got.indices.to_vector(), s = scores.to_vector();
  EXPECT_TRUE(testing_util::all_close(gv, rv, tol, tol)) << what;
  for (int64_t i = 0; i < q; ++i) {
    std::set<int64_t> seen;
    for (int64_t j = 0; j < k; ++j) {
      const int64_t idx = static_cast<int64_t>(gi[i * k + j]);
      ASSERT_TRUE(idx >= 0 && idx < n) << what << " query " << i << " index " << idx;
      EXPECT_TRUE(seen.insert(idx).second) << what << " query " << i << " repeats " << idx;
      EXPECT_NEAR(s[i * n + idx], rv[i * k + j], tol * (1 + std::abs(rv[i * k + j])))
          << what << " query " << i << " rank " << j;
    }
  }
}

TEST_F(CudaKnn, KnnSearchMatchesCpu) {
  uint64_t seed = 60;
  struct Case {
    int64_t q, n, d, k;
  };
  for (DType t : {DType::Float32, DType::Float64})
    for (Case c : {Case{1, 5000, 64, 15}, Case{37, 3001, 33, 10}, Case{300, 2000, 96, 64},
                   Case{5, 400, 17, 70}})
      for (engine::KnnMetric metric : {engine::KnnMetric::L2, engine::KnnMetric::Cosine}) {
        Tensor queries = host_random({c.q, c.d}, ++seed, -1, 1, t);
        Tensor bank = host_random({c.n, c.d}, ++seed, -1, 1, t);
        engine::TopK ref = engine::knn_search(queries, bank, c.k, metric);
        engine::TopK got = engine::knn_search(queries.to(kGpu), bank.to(kGpu), c.k, metric);
        const bool cosine = metric == engine::KnnMetric::Cosine;
        // The true scores in float64 (cosine: normalised rows' dot products).
        Tensor q64 = queries.to(DType::Float64), b64 = bank.to(DType::Float64);
        Tensor scores;
        if (cosine) {
          auto unit = [](const Tensor& x) {
            return engine::div(x, engine::sqrt(engine::sum(engine::mul(x, x), {1}, true)));
          };
          scores = engine::matmul(unit(q64), unit(b64).transpose(0, 1));
        } else {
          scores = engine::pairwise_sq_l2(q64, b64);
        }
        const double tol = t == DType::Float32 ? 1e-6 * c.d : 1e-11;
        expect_same_neighbours(got, ref, scores, tol,
                               std::string(cosine ? "cosine" : "L2") + " q=" + std::to_string(c.q) +
                                   " n=" + std::to_string(c.n) + " k=" + std::to_string(c.k) + " " +
                                   dtype_str(t));
      }
}

}  // namespace
}  // namespace cuda_test
