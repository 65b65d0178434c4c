// k-NN kernel lab (kernels/cuda/knn.cu): every version of knn_search (L2 and cosine), the
// distance matrix and the row top-k, against float64 references.
//
// Float32 distances from ||q||^2 + ||b||^2 - 2 q.b round differently from the exact ones, so
// near-ties may legitimately swap. The random-data check is therefore: the k returned indices
// are distinct, their values are sorted and match the exact distance of that index within a
// tolerance, and none is worse than the exact k-th best by more than twice that tolerance.
// With small-integer data every quantity is exact in float32, and there the result must equal
// the reference exactly, ties (duplicate rows) going to the lower index.
#include "kernels/cuda/knn.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/cuda/knn_tile.cuh"
#include "kernels/cuda/mma_tile.cuh"
#include "tests/cuda_labs/labs_test_util.h"
#include "tests/cuda_labs/smem_banks.h"

namespace {

using labs_test::DeviceBuffer;

// Exact scores, "smaller is better": squared distance, or minus the cosine similarity.
std::vector<double> exact_scores(const std::vector<float>& qs, const std::vector<float>& bank,
                                 int64_t q, int64_t n, int d, bool cosine) {
  std::vector<double> s(size_t(q) * n);
  for (int64_t i = 0; i < q; ++i) {
    double qq = 0;
    for (int c = 0; c < d; ++c) qq += double(qs[i * d + c]) * qs[i * d + c];
    for (int64_t j = 0; j < n; ++j) {
      double bb = 0, qb = 0, dd = 0;
      for (int c = 0; c < d; ++c) {
        double a = qs[i * d + c], b = bank[j * d + c];
        bb += b * b, qb += a * b, dd += (a - b) * (a - b);
      }
      s[i * n + j] =
          cosine ? -qb / (std::max(std::sqrt(qq), 1e-12) * std::max(std::sqrt(bb), 1e-12)) : dd;
    }
  }
  return s;
}

struct Result {
  std::vector<float> values;
  std::vector<int64_t> indices;
};

Result run(int version, const std::vector<float>& qs, const std::vector<float>& bank, int64_t q,
           int64_t n, int d, int k, bool cosine) {
  DeviceBuffer<float> dq(qs), db(bank), values(size_t(q) * k);
  DeviceBuffer<int64_t> indices(size_t(q) * k);
  values.poison();
  indices.poison();
  DeviceBuffer<char> ws(kernels::cuda::knn_search_workspace(version, q, n, d, k, cosine) + 1);
  kernels::cuda::knn_search(version, dq.data(), db.data(), q, n, d, k, cosine, values.data(),
                            indices.data(), ws.data(), nullptr);
  return {values.download(), indices.download()};
}

void check_random(int64_t q, int64_t n, int d, int k, bool cosine, uint64_t seed) {
  std::vector<float> qs = labs_test::random_floats(size_t(q) * d, seed);
  std::vector<float> bank = labs_test::random_floats(size_t(n) * d, seed + 1);
  std::vector<double> ex = exact_scores(qs, bank, q, n, d, cosine);
  for (int v = 0; v <= kernels::cuda::kKnnVersions; ++v) {
    SCOPED_TRACE("version " + std::to_string(v) + " Q " + std::to_string(q) + " N " +
                 std::to_string(n) + " D " + std::to_string(d) + " k " + std::to_string(k) +
                 (cosine ? " cosine" : " L2"));
    Result r = run(v, qs, bank, q, n, d, k, cosine);
    for (int64_t i = 0; i < q; ++i) {
      std::vector<double> row(ex.begin() + i * n, ex.begin() + (i + 1) * n);
      std::nth_element(row.begin(), row.begin() + (k - 1), row.end());
      const double kth = row[k - 1];
      double qq = 0;
      for (int c = 0; c < d; ++c) qq += double(qs[i * d + c]) * qs[i * d + c];
      // float32 sums of D products: the error is at most ~eps * D * (||q||^2 + ||b||^2) for L2
      // (E||b||^2 = D/3 here) and ~eps * D for cosine; the bounds keep a margin of ~4x.
      const double tol = cosine ? 1e-6 * d + 1e-6 : 2.5e-7 * d * (qq + d / 3.0) + 1e-5;
      std::set<int64_t> seen;
      for (int e = 0; e < k; ++e) {
        const int64_t idx = r.indices[i * k + e];
        ASSERT_TRUE(idx >= 0 && idx < n) << "query " << i << " slot " << e << " index " << idx;
        ASSERT_TRUE(seen.insert(idx).second) << "query " << i << " index " << idx << " twice";
        const double got = cosine ? -double(r.values[i * k + e]) : r.values[i * k + e];
        EXPECT_NEAR(got, ex[i * n + idx], tol) << "query " << i << " slot " << e;
        EXPECT_LE(ex[i * n + idx], kth + 2 * tol)
            << "query " << i << " slot " << e << " not in top k";
        if (e > 0) {
          const double prev = cosine ? -double(r.values[i * k + e - 1]) : r.values[i * k + e - 1];
          EXPECT_LE(prev, got) << "query " << i << " not sorted at slot " << e;
        }
      }
    }
  }
}

TEST(CudaLabsKnn, RandomL2AndCosine) {
  LABS_SKIP_WITHOUT_CUDA();
  check_random(37, 1000, 37, 15, false, 1);  // D % 4 != 0: scalar loads
  check_random(37, 1000, 37, 15, true, 2);
  check_random(130, 3001, 64, 64, false, 3);  // k = 64, two query tiles, a partial bank chunk
  check_random(9, 129, 16, 8, true, 4);       // Q = 9: the GEMM path with one query tile
}

TEST(CudaLabsKnn, FewQueriesStreamTheBank) {
  LABS_SKIP_WITHOUT_CUDA();
  check_random(1, 20000, 768, 15, false, 10);
  check_random(1, 20000, 768, 15, true, 11);
  check_random(5, 300, 33, 1, false, 12);    // scalar path, k = 1
  check_random(8, 2048, 128, 64, true, 13);  // the largest Q of the streaming path
}

// Small integers: every distance is exact, duplicate bank rows make exact ties, and the result
// must be the reference order (distance, then index) element for element.
TEST(CudaLabsKnn, ExactOnIntegersWithTies) {
  LABS_SKIP_WITHOUT_CUDA();
  for (auto [q, n, d, k] : {std::tuple<int64_t, int64_t, int, int>{3, 20, 8, 20},  // k == N
                            {11, 700, 12, 17},
                            {140, 400, 20, 10}}) {
    std::vector<float> qs = labs_test::random_ints(size_t(q) * d, 40 + n, -2, 2);
    std::vector<float> bank = labs_test::random_ints(size_t(n) * d, 41 + n, -2, 2);
    for (int64_t j = 1; j < n; j += 3)  // every third row repeats an earlier one
      std::copy_n(bank.begin() + (j / 2) * d, d, bank.begin() + j * d);
    std::vector<double> ex = exact_scores(qs, bank, q, n, d, false);
    for (int v = 0; v <= kernels::cuda::kKnnVersions; ++v) {
      SCOPED_TRACE("version " + std::to_string(v) + " Q " + std::to_string(q) + " N " +
                   std::to_string(n));
      Result r = run(v, qs, bank, q, n, d, k, false);
      for (int64_t i = 0; i < q; ++i) {
        std::vector<int64_t> order(n);
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(),
                         [&](int64_t a, int64_t b) { return ex[i * n + a] < ex[i * n + b]; });
        for (int e = 0; e < k; ++e) {
          ASSERT_EQ(r.indices[i * k + e], order[e]) << "query " << i << " slot " << e;
          ASSERT_EQ(double(r.values[i * k + e]), ex[i * n + order[e]])
              << "query " << i << " slot " << e;
        }
      }
    }
  }
}

// A bank built so that plain TF32 (10-bit mantissas) ranks wrongly: q = (1, 0, 0, 0); 16 rows
// (1 + 2^-10, 0, 0, 0), exact in TF32, at squared distance 2^-20; then row A = (1 + 3 * 2^-13,
// 0, 0, 0), truly nearer (1.3e-7) but rounded to 1 by TF32, which puts it at 7.3e-4, behind all
// 16; the rest far away. Every version must return A first: float32 and 3xTF32 see it directly;
// v5 must carry it among its candidates (it is 17th by TF32, within k + 16) and re-rank it.
TEST(CudaLabsKnn, ReRankFindsWhatPlainTf32Misorders) {
  LABS_SKIP_WITHOUT_CUDA();
  const int64_t q = 9, n = 40;  // Q > 8: the fused (tile) path
  const int d = 4, k = 1, a = 16;
  std::vector<float> qs(q * d, 0.f), bank(n * d, 0.f);
  for (int64_t i = 0; i < q; ++i) qs[i * d] = 1.f;
  const float tied = 1.f + std::ldexp(1.f, -10), nearest = 1.f + 3 * std::ldexp(1.f, -13);
  for (int64_t j = 0; j < n; ++j) bank[j * d] = j < a ? tied : j == a ? nearest : 0.5f;
  for (int v = 0; v <= kernels::cuda::kKnnVersions; ++v) {
    SCOPED_TRACE("version " + std::to_string(v));
    Result r = run(v, qs, bank, q, n, d, k, false);
    for (int64_t i = 0; i < q; ++i) EXPECT_EQ(r.indices[i], a) << "query " << i;
  }
}

// A NaN row scores worst: with k == N it comes last, otherwise never.
TEST(CudaLabsKnn, NanRanksLast) {
  LABS_SKIP_WITHOUT_CUDA();
  const int64_t q = 2, n = 10;
  const int d = 4;
  std::vector<float> qs = labs_test::random_ints(q * d, 7), bank = labs_test::random_ints(n * d, 8);
  bank[3 * d + 1] = std::numeric_limits<float>::quiet_NaN();
  for (bool cosine : {false, true}) {
    for (int v = 0; v <= kernels::cuda::kKnnVersions; ++v) {
      SCOPED_TRACE("version " + std::to_string(v) + (cosine ? " cosine" : " L2"));
      Result all = run(v, qs, bank, q, n, d, int(n), cosine);
      Result some = run(v, qs, bank, q, n, d, 9, cosine);
      for (int64_t i = 0; i < q; ++i) {
        EXPECT_EQ(all.indices[i * n + n - 1], 3);
        EXPECT_TRUE(std::isnan(all.values[i * n + n - 1]));
        for (int e = 0; e < 9; ++e) EXPECT_NE(some.indices[i * 9 + e], 3);
      }
    }
  }
}

TEST(CudaLabsKnn, PairwiseDistanceMatrix) {
  LABS_SKIP_WITHOUT_CUDA();
  const int64_t q = 133, n = 259;
  const int d = 45;
  std::vector<float> a = labs_test::random_floats(q * d, 20),
                     b = labs_test::random_floats(n * d, 21);
  std::vector<double> ex = exact_scores(a, b, q, n, d, false);
  DeviceBuffer<float> da(a), dbank(b), out(q * n);
  for (int v = 0; v <= 2; ++v) {
    SCOPED_TRACE("version " + std::to_string(v));
    out.poison();
    kernels::cuda::pairwise_sq_l2(v, da.data(), dbank.data(), out.data(), q, n, d, nullptr);
    // distances ~ 2D/3 = 30 from terms of ~D/3 = 15: float32 identity error ~ 1e-5 relative
    EXPECT_TRUE(labs_test::close(out.download(), ex, 1e-4, 1e-4, "pairwise_sq_l2"));
  }
}

TEST(CudaLabsKnn, TopkRowsMatchesTorchOrdering) {
  LABS_SKIP_WITHOUT_CUDA();
  const int64_t rows = 5, n = 3000;
  const int k = 33;
  std::vector<float> x = labs_test::random_ints(rows * n, 30, -50, 50);  // many ties
  x[2 * n + 17] = std::numeric_limits<float>::quiet_NaN();
  DeviceBuffer<float> dx(x), values(rows * k);
  DeviceBuffer<int64_t> indices(rows * k);
  for (bool largest : {false, true}) {
    SCOPED_TRACE(largest ? "largest" : "smallest");
    values.poison();
    indices.poison();
    kernels::cuda::topk_rows(dx.data(), rows, n, k, largest, values.data(), indices.data(),
                             nullptr);
    std::vector<float> got_v = values.download();
    std::vector<int64_t> got_i = indices.download();
    for (int64_t r = 0; r < rows; ++r) {
      std::vector<int64_t> order(n);
      std::iota(order.begin(), order.end(), 0);
      auto better = [&](int64_t a, int64_t b) {  // torch.topk: NaN largest; ties to lower index
        float u = x[r * n + a], v = x[r * n + b];
        if (std::isnan(u) || std::isnan(v))
          return largest ? (std::isnan(u) && !std::isnan(v)) : (!std::isnan(u) && std::isnan(v));
        return largest ? u > v : u < v;
      };
      std::stable_sort(order.begin(), order.end(), better);
      for (int e = 0; e < k; ++e) {
        ASSERT_EQ(got_i[r * k + e], order[e]) << "row " << r << " slot " << e;
        float want = x[r * n + order[e]];
        if (std::isnan(want)) {
          EXPECT_TRUE(std::isnan(got_v[r * k + e]));
        } else {
          EXPECT_EQ(got_v[r * k + e], want);
        }
      }
    }
  }
}

TEST(CudaLabsKnn, RejectsBadArguments) {
  float dummy = 0;
  int64_t idx = 0;
  try {
    kernels::cuda::knn_search(0, &dummy, &dummy, 1, 10, 4, 65, false, &dummy, &idx, nullptr,
                              nullptr);
    FAIL() << "k = 65 accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("k = 65"), std::string::npos) << e.what();
  }
  EXPECT_THROW(kernels::cuda::knn_search(0, &dummy, &dummy, 1, 10, 4, 11, false, &dummy, &idx,
                                         nullptr, nullptr),
               std::runtime_error);  // k > N
  EXPECT_THROW(kernels::cuda::knn_search(kernels::cuda::kKnnVersions + 1, &dummy, &dummy, 1, 10,
                                         4, 1, false, &dummy, &idx, nullptr, nullptr),
               std::runtime_error);  // a version past the last
  EXPECT_THROW(kernels::cuda::topk_rows(&dummy, 1, 5, 6, false, &dummy, &idx, nullptr),
               std::runtime_error);
}

// ---- the GEMM tiles' shared-memory bank conflicts (no GPU; tests/cuda_labs/smem_banks.h) -----

// Passes of one 8-deep slice of a 256-thread block: every warp's staging stores (one float per
// store, 4 stores per operand) and, for v4 / v5, every warp's mma.sync fragment reads (8 warps
// of 64x32, 16 A and 8 B loads each), from knn_tile.cuh's layout functions.
// staged: knn_tile.cuh's column of each row (false: the row itself, the layout before the XOR).
template <int LD>
void count_slice(bool fragment_reads, bool staged, int& passes, int& ideal) {
  namespace kt = kernels::cuda::knn_tile;
  namespace mma = kernels::cuda::mma;
  passes = ideal = 0;
  auto add = [&](const smem_banks::WarpAccess& a) {
    passes += smem_banks::wavefronts(a), ideal += smem_banks::ideal_wavefronts(a.bytes);
  };
  auto at = [&](int kk, int row) {
    return 4L * (kk * LD + (staged ? kt::staged_col<LD>(kk, row) : row));
  };
  for (int warp = 0; warp < 8; ++warp) {
    for (int operand = 0; operand < 2; ++operand)
      for (int e = 0; e < 4; ++e)
        add(smem_banks::warp_access(4, [&](int lane) {
          const int tid = 32 * warp + lane;
          return at(kt::staging_k(tid) + e, kt::staging_row(tid));
        }));
    if (!fragment_reads) continue;
    const int wm = (warp >> 2) * 64, wn = (warp & 3) * 32;
    for (int mi = 0; mi < 4; ++mi)
      for (int i = 0; i < 4; ++i)
        add(smem_banks::warp_access(4, [&](int l) {
          return at(mma::mma_a_k(l, i), wm + mi * 16 + mma::mma_a_row(l, i));
        }));
    for (int ni = 0; ni < 4; ++ni)
      for (int h = 0; h < 2; ++h)
        add(smem_banks::warp_access(4, [&](int l) {
          return at(mma::mma_b_k(l, h), wn + ni * 8 + mma::mma_b_n(l, h));
        }));
  }
}

// v2 / v3's stores and v4 / v5's stores and fragment reads each take the fewest passes; v4 / v5
// without the XOR of the second half-slice's rows would take 64 more per slice (a fifth).
TEST(CudaLabsKnn, StagingTakesNoBankConflicts) {
  namespace kt = kernels::cuda::knn_tile;
  int passes = 0, ideal = 0;
  count_slice<kt::kLd>(false, true, passes, ideal);
  EXPECT_EQ(passes, ideal) << "v2 / v3 staging stores";
  EXPECT_EQ(ideal, 64);
  count_slice<kt::kLdT>(true, true, passes, ideal);
  EXPECT_EQ(passes, ideal) << "v4 / v5 staging stores and fragment reads";
  EXPECT_EQ(ideal, 256);
  count_slice<kt::kLdT>(true, false, passes, ideal);
  EXPECT_EQ(passes, ideal + 64) << "without the XOR every store collides with one other";
  // The XOR only permutes a k-line's rows: every row still has one column.
  for (int kk = 0; kk < kt::kBK; ++kk) {
    std::set<int> cols;
    for (int row = 0; row < kt::kBM; ++row) cols.insert(kt::staged_col<kt::kLdT>(kk, row));
    EXPECT_EQ(cols.size(), size_t(kt::kBM));
    EXPECT_EQ(*cols.begin(), 0);
    EXPECT_EQ(*cols.rbegin(), kt::kBM - 1);
  }
}

}  // namespace
