// pairwise_sq_l2, topk and knn_search: forward against plain loops (distances in float64,
// orderings by a stable sort so ties go to the lower index), gradients, NaN ordering, the
// fused search against its composed twin topk(pairwise_sq_l2) across several bank and query
// blocks, exact ties with small integers (exact in any summation order), float32, errors.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "tests/common/check.h"

using namespace engine;
using testing_util::all_close;
using testing_util::grad_check;
using testing_util::random;

namespace {

// [q, n] squared distances in float64 by the definition (no GEMM identity).
std::vector<double> ref_sq_l2(const Tensor& a, const Tensor& b) {
  std::vector<double> av = a.to_vector(), bv = b.to_vector(), out;
  const int64_t q = a.size(0), n = b.size(0), d = a.size(1);
  for (int64_t i = 0; i < q; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t c = 0; c < d; ++c)
        s += (av[i * d + c] - bv[j * d + c]) * (av[i * d + c] - bv[j * d + c]);
      out.push_back(s);
    }
  return out;
}

std::vector<double> ref_cosine(const Tensor& a, const Tensor& b) {
  std::vector<double> av = a.to_vector(), bv = b.to_vector(), out;
  const int64_t q = a.size(0), n = b.size(0), d = a.size(1);
  for (int64_t i = 0; i < q; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double dot = 0, na = 0, nb = 0;
      for (int64_t c = 0; c < d; ++c) {
        dot += av[i * d + c] * bv[j * d + c];
        na += av[i * d + c] * av[i * d + c];
        nb += bv[j * d + c] * bv[j * d + c];
      }
      out.push_back(dot / std::max(std::sqrt(na), 1e-12) / std::max(std::sqrt(nb), 1e-12));
    }
  return out;
}

// Indices of the k best of row, best first, ties to the lower index.
std::vector<int64_t> ref_best(const std::vector<double>& row, int64_t k, bool largest) {
  std::vector<int64_t> idx(row.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int64_t u, int64_t v) {
    if (row[u] != row[v]) return largest ? row[u] > row[v] : row[u] < row[v];
    return u < v;
  });
  idx.resize(k);
  return idx;
}

std::vector<int64_t> as_int(const Tensor& t) {
  std::vector<int64_t> out;
  for (double v : t.to_vector()) out.push_back(static_cast<int64_t>(v));
  return out;
}

// A [rows, d] tensor of small integers in [-r, r]: every dot product and norm is exact.
Tensor small_ints(int64_t rows, int64_t d, int r, uint64_t seed, DType dtype) {
  Generator gen(seed);
  std::vector<double> v(rows * d);
  for (auto& x : v) x = static_cast<double>(gen.randint(2 * r + 1) - r);
  return Tensor::from_vector(v, {rows, d}).to(dtype);
}

using testing_util::expect_error;

}  // namespace

TEST(PairwiseSqL2, MatchesDefinition) {
  Tensor a = random({7, 5}, 1, -2, 2), b = random({13, 5}, 2, -2, 2);
  // The GEMM identity cancels terms of size ~||a||^2 + ||b||^2 <= 40: errors ~1e-14.
  EXPECT_TRUE(all_close(pairwise_sq_l2(a, b).to_vector(), ref_sq_l2(a, b), 1e-12, 1e-13));
  Tensor af = a.to(DType::Float32), bf = b.to(DType::Float32);
  EXPECT_TRUE(all_close(pairwise_sq_l2(af, bf).to_vector(), ref_sq_l2(af, bf), 1e-5, 2e-5));
  // A point's distance to itself is exactly 0, never negative.
  Tensor d = pairwise_sq_l2(af, af);
  for (int64_t i = 0; i < 7; ++i) EXPECT_GE(d.to_vector()[i * 7 + i], 0.0);
  for (double v : pairwise_sq_l2(af, af).to_vector()) EXPECT_GE(v, 0.0);
}

TEST(PairwiseSqL2, GradCheck) {
  Tensor a = random({4, 3}, 3).requires_grad_(), b = random({5, 3}, 4).requires_grad_();
  auto f = [](const std::vector<Tensor>& in) { return pairwise_sq_l2(in[0], in[1]); };
  EXPECT_TRUE(grad_check(f, {a, b}));
  // Only one side needing a gradient still works (the other is skipped).
  Tensor c = random({5, 3}, 5);
  EXPECT_TRUE(
      grad_check([&](const std::vector<Tensor>& in) { return pairwise_sq_l2(in[0], c); }, {a}));
  EXPECT_TRUE(
      grad_check([&](const std::vector<Tensor>& in) { return pairwise_sq_l2(c, in[0]); }, {b}));
}

TEST(TopK, MatchesStableSortOnEveryDim) {
  const Shape s{3, 7, 4};
  for (bool largest : {false, true}) {
    for (int64_t d = 0; d < 3; ++d) {
      // Rounded to 1 decimal in [-1, 1]: plenty of exact ties.
      std::vector<double> v = random(s, 10 + d).to_vector();
      for (auto& x : v) x = std::round(x * 10) / 10;
      Tensor x = Tensor::from_vector(v, s);
      for (int64_t k : {int64_t{1}, int64_t{2}, s[d]}) {
        TopK r = topk(x, k, d, largest);
        Shape so = s;
        so[d] = k;
        ASSERT_EQ(r.values.shape(), so);
        ASSERT_EQ(r.indices.shape(), so);
        std::vector<double> vals = r.values.to_vector();
        std::vector<int64_t> idx = as_int(r.indices);
        // Walk every column along d.
        int64_t outer = 1, inner = 1;
        for (int64_t i = 0; i < d; ++i) outer *= s[i];
        for (int64_t i = d + 1; i < 3; ++i) inner *= s[i];
        for (int64_t o = 0; o < outer; ++o)
          for (int64_t i = 0; i < inner; ++i) {
            std::vector<double> col;
            for (int64_t j = 0; j < s[d]; ++j) col.push_back(v[(o * s[d] + j) * inner + i]);
            std::vector<int64_t> best = ref_best(col, k, largest);
            for (int64_t j = 0; j < k; ++j) {
              EXPECT_EQ(idx[(o * k + j) * inner + i], best[j]) << "dim " << d << " k " << k;
              EXPECT_EQ(vals[(o * k + j) * inner + i], col[best[j]]);
            }
          }
      }
    }
  }
}

TEST(TopK, NaNRanksAboveEverything) {
  const double nan = std::nan("");
  Tensor x = Tensor::from_vector(std::vector<double>{3, nan, -1, 5, nan}, {5});
  TopK hi = topk(x, 3, 0, /*largest=*/true);
  EXPECT_EQ(as_int(hi.indices), (std::vector<int64_t>{1, 4, 3}));
  TopK lo = topk(x, 5, 0, /*largest=*/false);
  EXPECT_EQ(as_int(lo.indices), (std::vector<int64_t>{2, 0, 3, 1, 4}));
}

TEST(TopK, GradientGoesToPickedSlots) {
  Tensor x = random({2, 6}, 20).requires_grad_();
  TopK r = topk(x, 3, 1, true);
  Tensor g = random({2, 3}, 21);
  r.values.backward(g);
  std::vector<double> expect(12, 0.0), gv = g.to_vector();
  std::vector<int64_t> idx = as_int(r.indices);
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 3; ++j) expect[i * 6 + idx[i * 3 + j]] = gv[i * 3 + j];
  EXPECT_TRUE(all_close(x.grad().to_vector(), expect, 0, 0));
  for (int64_t d = 0; d < 3; ++d) {
    Tensor y = random({3, 5, 4}, 22 + d).requires_grad_();  // continuous: no ties
    EXPECT_TRUE(
        grad_check([d](const std::vector<Tensor>& in) { return topk(in[0], 2, d).values; }, {y}))
        << d;
  }
}

TEST(TopK, LargeParallelAndFloat32) {
  Tensor x = random({300, 257}, 23, -1, 1, DType::Float32);
  TopK r = topk(x, 10, 1);
  std::vector<double> v = x.to_vector(), vals = r.values.to_vector();
  std::vector<int64_t> idx = as_int(r.indices);
  for (int64_t i = 0; i < 300; ++i) {
    std::vector<double> row(v.begin() + i * 257, v.begin() + (i + 1) * 257);
    std::vector<int64_t> best = ref_best(row, 10, false);
    for (int64_t j = 0; j < 10; ++j) {
      ASSERT_EQ(idx[i * 10 + j], best[j]) << "row " << i;
      ASSERT_EQ(vals[i * 10 + j], row[best[j]]);
    }
  }
}

TEST(KnnSearch, L2MatchesBruteForceAcrossBlocks) {
  // 300 queries (> one 256-query block) against 9000 rows (three 4096-row bank blocks).
  const int64_t n = 9000;
  Tensor q = random({300, 7}, 30, -1, 1), b = random({n, 7}, 31, -1, 1);
  TopK r = knn_search(q, b, 7, KnnMetric::L2);
  ASSERT_EQ(r.values.shape(), (Shape{300, 7}));
  ASSERT_EQ(r.indices.dtype(), DType::Int64);
  std::vector<double> dist = ref_sq_l2(q, b), vals = r.values.to_vector();
  std::vector<int64_t> idx = as_int(r.indices);
  for (int64_t i = 0; i < 300; ++i) {
    std::vector<double> row(dist.begin() + i * n, dist.begin() + (i + 1) * n);
    std::vector<int64_t> best = ref_best(row, 7, false);
    for (int64_t j = 0; j < 7; ++j) {
      ASSERT_EQ(idx[i * 7 + j], best[j]) << "query " << i << " rank " << j;
      ASSERT_NEAR(vals[i * 7 + j], row[best[j]], 1e-12);
    }
  }
}

TEST(KnnSearch, CosineMatchesBruteForce) {
  const int64_t n = 5000;  // two bank blocks
  Tensor q = random({40, 9}, 32, -1, 1), b = random({n, 9}, 33, -1, 1);
  TopK r = knn_search(q, b, 4, KnnMetric::Cosine);
  std::vector<double> sim = ref_cosine(q, b), vals = r.values.to_vector();
  std::vector<int64_t> idx = as_int(r.indices);
  for (int64_t i = 0; i < 40; ++i) {
    std::vector<double> row(sim.begin() + i * n, sim.begin() + (i + 1) * n);
    std::vector<int64_t> best = ref_best(row, 4, true);
    for (int64_t j = 0; j < 4; ++j) {
      ASSERT_EQ(idx[i * 4 + j], best[j]) << "query " << i << " rank " << j;
      ASSERT_NEAR(vals[i * 4 + j], row[best[j]], 1e-12);
    }
  }
  // Scaling rows changes no cosine; a zero row has similarity 0, not NaN.
  std::vector<double> bv = b.slice(0, 0, 50).to_vector();
  for (double& v : bv) v *= 7.5;
  for (int c = 0; c < 9; ++c) bv[3 * 9 + c] = 0;
  Tensor b2 = Tensor::from_vector(bv, {50, 9});
  TopK all = knn_search(q.slice(0, 0, 1), b2, 50, KnnMetric::Cosine);
  std::vector<int64_t> ai = as_int(all.indices);
  std::vector<double> av = all.values.to_vector();
  for (int64_t j = 0; j < 50; ++j) {
    EXPECT_FALSE(std::isnan(av[j]));
    if (ai[j] == 3) {
      EXPECT_EQ(av[j], 0.0);
    } else {
      EXPECT_NEAR(av[j], sim[ai[j]], 1e-12);
    }
  }
}

TEST(KnnSearch, AgreesWithComposedTopKOfPairwise) {
  Tensor q = random({17, 6}, 34), b = random({1100, 6}, 35);
  TopK fused = knn_search(q, b, 9);
  TopK composed = topk(pairwise_sq_l2(q, b), 9, 1, /*largest=*/false);
  EXPECT_EQ(as_int(fused.indices), as_int(composed.indices));
  EXPECT_TRUE(all_close(fused.values, composed.values, 1e-12, 1e-13));
}

TEST(KnnSearch, ExactTiesGoToTheLowerIndex) {
  // Bank row j is pattern[j % 5]: each distance occurs 1000 times, across bank blocks.
  const int64_t n = 5000;
  std::vector<int64_t> rep(n);
  for (int64_t j = 0; j < n; ++j) rep[j] = j % 5;
  for (DType dt : {DType::Float64, DType::Float32}) {
    Tensor pattern = small_ints(5, 4, 3, 40, dt);
    Tensor b = index_select(pattern, 0, Tensor::from_vector(rep, {n}));
    Tensor q = small_ints(6, 4, 3, 41, dt);
    for (KnnMetric m : {KnnMetric::L2, KnnMetric::Cosine}) {
      const int64_t k = 12;
      TopK r = knn_search(q, b, k, m);
      std::vector<double> ref = m == KnnMetric::L2 ? ref_sq_l2(q, b) : ref_cosine(q, b);
      std::vector<int64_t> idx = as_int(r.indices);
      for (int64_t i = 0; i < 6; ++i) {
        std::vector<double> row(ref.begin() + i * n, ref.begin() + (i + 1) * n);
        if (m == KnnMetric::Cosine) {
          // Dot products of small integers are exact and equal rows share one norm, so equal
          // rows score bit-identically and the tie order is exact; the reference's division
          // is rounded, so round it to make its ties ties too.
          for (auto& v : row) v = std::round(v * 1e9) / 1e9;
        }
        std::vector<int64_t> best = ref_best(row, k, m == KnnMetric::Cosine);
        for (int64_t j = 0; j < k; ++j)
          EXPECT_EQ(idx[i * k + j], best[j]) << dtype_name(dt) << " query " << i << " rank " << j;
      }
    }
  }
}

TEST(KnnSearch, Float32NeighboursAreTheNearestUpToRounding) {
  const int64_t n = 5000;
  Tensor q = random({20, 16}, 50, -1, 1, DType::Float32),
         b = random({n, 16}, 51, -1, 1, DType::Float32);
  const int64_t k = 8;
  TopK r = knn_search(q, b, k);
  std::vector<double> dist = ref_sq_l2(q, b), vals = r.values.to_vector();
  std::vector<int64_t> idx = as_int(r.indices);
  // float32 distances of size ~5 carry ~1e-6 absolute error, so near-ties may swap; check
  // that each returned value is the true distance of its index and the sorted list matches.
  for (int64_t i = 0; i < 20; ++i) {
    std::vector<double> row(dist.begin() + i * n, dist.begin() + (i + 1) * n);
    std::vector<double> sorted = row;
    std::sort(sorted.begin(), sorted.end());
    for (int64_t j = 0; j < k; ++j) {
      EXPECT_NEAR(vals[i * k + j], row[idx[i * k + j]], 2e-5);
      EXPECT_NEAR(vals[i * k + j], sorted[j], 2e-5);
      if (j > 0) {
        EXPECT_LE(vals[i * k + j - 1], vals[i * k + j]);
      }
    }
  }
}

TEST(Knn, Errors) {
  Tensor q = random({3, 4}, 60), b = random({5, 3}, 61);
  expect_error([&] { pairwise_sq_l2(q, b); }, {"pairwise_sq_l2", "[3,4]", "[5,3]"});
  expect_error([&] { knn_search(q, random({5, 4}, 62), 6); }, {"knn_search", "k = 6", "5 rows"});
  expect_error([&] { knn_search(random({4}, 63), b, 1); }, {"knn_search", "2-D"});
  expect_error([&] { topk(q, 5, 1); }, {"topk", "k = 5", "size 4"});
  expect_error([&] { topk(q, 1, 2); }, {"topk", "dimension 2"});
  expect_error(
      [&] {
        knn_search(q, random({5, 4}, 64, -1, 1, DType::Float32), 1);
      },
      {"knn_search", "float64", "float32"});
}
