// matmul / linear: 2-D, batched, broadcast batch dims, odd and degenerate sizes, operands that
// are transposed or row-strided views (handed to GEMM without a copy) or not GEMM-compatible
// (packed first), exact results on small integers, float32, gradients, and shape errors; the
// GEMM kernel's split across threads (by rows, by columns, by the reduction) against a loop.
#include <omp.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/cpu/matmul.h"
#include "tests/common/check.h"

using namespace engine;
using testing_util::all_close;
using testing_util::grad_check;
using testing_util::random;

namespace {

// Plain triple loop over broadcast batch dims: out[..., i, j] = sum_k a[..., i, k] b[..., k, j].
std::vector<double> ref_matmul(const Tensor& a, const Tensor& b, Shape& out_shape) {
  Shape ba(a.shape().begin(), a.shape().end() - 2), bb(b.shape().begin(), b.shape().end() - 2);
  Shape batch = broadcast_shapes(ba, bb, "ref");
  const int64_t m = a.size(-2), k = a.size(-1), n = b.size(-1);
  Shape sa = batch, sb = batch;
  sa.insert(sa.end(), {m, k});
  sb.insert(sb.end(), {k, n});
  // Materialise the broadcast operands through expand + to_vector (logical order).
  std::vector<double> av = a.expand(sa).to_vector(), bv = b.expand(sb).to_vector();
  out_shape = batch;
  out_shape.insert(out_shape.end(), {m, n});
  const int64_t nb = numel(batch);
  std::vector<double> out(nb * m * n, 0.0);
  for (int64_t t = 0; t < nb; ++t)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t p = 0; p < k; ++p) s += av[(t * m + i) * k + p] * bv[(t * k + p) * n + j];
        out[(t * m + i) * n + j] = s;
      }
  return out;
}

void expect_matmul(const Tensor& a, const Tensor& b, double rtol, double atol, const char* what) {
  Shape shape;
  std::vector<double> ref = ref_matmul(a, b, shape);
  Tensor y = matmul(a, b);
  ASSERT_EQ(y.shape(), shape) << what;
  EXPECT_TRUE(all_close(y.to_vector(), ref, rtol, atol)) << what;
}

Tensor small_ints(const Shape& s, uint64_t seed, DType dt = DType::Float64) {
  Generator gen(seed);
  std::vector<double> v(numel(s));
  for (auto& x : v) x = static_cast<double>(gen.randint(9) - 4);
  return Tensor::from_vector(v, s).to(dt);
}

}  // namespace

TEST(Matmul, TwoDOddSizes) {
  const std::vector<std::array<int64_t, 3>> sizes{{5, 7, 3},  {1, 1, 1},  {13, 1, 9},
                                                  {1, 17, 1}, {1, 6, 11}, {33, 65, 17}};
  uint64_t seed = 1;
  for (auto [m, k, n] : sizes) {
    Tensor a = random({m, k}, seed++);
    Tensor b = random({k, n}, seed++);
    expect_matmul(a, b, 1e-13, 1e-14, "2-D");
  }
}

TEST(Matmul, ExactOnSmallIntegersInFloat32) {
  // Products and sums of small integers are exact in float, in any summation order.
  Tensor a = small_ints({37, 29}, 10, DType::Float32), b = small_ints({29, 41}, 11, DType::Float32);
  expect_matmul(a, b, 0, 0, "integers");
  expect_matmul(small_ints({3, 5, 7}, 12, DType::Float32), small_ints({7, 2}, 13, DType::Float32),
                0, 0, "integers batched");
}

TEST(Matmul, Float32Random) {
  // k = 64 terms of size <= 1: float32 error a few 1e-6 absolute.
  Tensor a = random({19, 64}, 14, -1, 1, DType::Float32),
         b = random({64, 23}, 15, -1, 1, DType::Float32);
  expect_matmul(a, b, 1e-5, 1e-5, "float32");
  EXPECT_EQ(matmul(a, b).dtype(), DType::Float32);
}

TEST(Matmul, BatchedAndBroadcastBatch) {
  expect_matmul(random({4, 5, 6}, 20), random({4, 6, 3}, 21), 1e-13, 1e-14, "batched");
  expect_matmul(random({2, 1, 5, 6}, 22), random({3, 6, 4}, 23), 1e-13, 1e-14, "broadcast batch");
  expect_matmul(random({5, 6}, 24), random({3, 6, 4}, 25), 1e-13, 1e-14, "2-D @ batched");
  expect_matmul(random({2, 3, 5, 6}, 26), random({6, 4}, 27), 1e-13, 1e-14, "batched @ 2-D");
  expect_matmul(random({1, 5, 6}, 28), random({3, 1, 6, 2}, 29), 1e-13, 1e-14, "ones on both");
}

TEST(Matmul, ViewsWithoutCopyAndPackedFallback) {
  // Transposed views (GEMM reads them with trans = true).
  Tensor x = random({7, 5}, 30), w = random({3, 7}, 31);
  expect_matmul(x.transpose(0, 1), w.transpose(0, 1), 1e-13, 1e-14, "both transposed");
  expect_matmul(x.transpose(0, 1), random({7, 4}, 32), 1e-13, 1e-14, "a transposed");
  // Row-strided views: a column slice of a wider matrix keeps ld = 10.
  Tensor wide = random({6, 10}, 33);
  expect_matmul(wide.slice(1, 2, 9), random({7, 3}, 34), 1e-13, 1e-14, "row-strided a");
  expect_matmul(random({4, 6}, 35), wide.slice(1, 1, 8), 1e-13, 1e-14, "row-strided b");
  // Batched transposed views.
  Tensor bt = random({3, 4, 6}, 36);
  expect_matmul(random({3, 5, 4}, 37), bt.transpose(1, 2).transpose(1, 2), 1e-13, 1e-14,
                "identity");
  expect_matmul(bt.transpose(1, 2), random({3, 4, 2}, 38), 1e-13, 1e-14, "batched transposed");
  expect_matmul(random({2, 6, 4}, 40).permute({0, 2, 1}), random({2, 6, 5}, 41), 1e-13, 1e-14,
                "permuted batch");
  // Not expressible as GEMM operands (column stride 2 in both dims): packed first.
  Tensor step = random({8, 10}, 39).slice(0, 0, 8, 2).slice(1, 0, 10, 2);  // [4, 5]
  expect_matmul(step, random({5, 3}, 42), 1e-13, 1e-14, "stepped");
  expect_matmul(random({2, 4}, 43), step, 1e-13, 1e-14, "stepped b");
  // The inputs are not modified.
  Tensor a = random({3, 4}, 44), acopy = a.clone();
  matmul(a.transpose(0, 1), random({3, 2}, 45));
  EXPECT_TRUE(all_close(a, acopy, 0, 0));
}

TEST(Matmul, GradCheck) {
  auto f = [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); };
  struct Case {
    Shape a, b;
  };
  for (const auto& c : std::vector<Case>{{{3, 4}, {4, 2}},
                                         {{2, 3, 4}, {2, 4, 2}},
                                         {{2, 1, 3, 4}, {3, 4, 2}},
                                         {{3, 4}, {2, 4, 5}},
                                         {{1, 1}, {1, 3}}}) {
    Tensor a = random(c.a, 50).requires_grad_(), b = random(c.b, 51).requires_grad_();
    EXPECT_TRUE(grad_check(f, {a, b})) << cat(c.a) << " @ " << cat(c.b);
  }
  // Through transposed views of the leaves.
  Tensor a = random({4, 3}, 52).requires_grad_(), b = random({2, 4}, 53).requires_grad_();
  EXPECT_TRUE(grad_check(
      [](const std::vector<Tensor>& in) {
        return matmul(in[0].transpose(0, 1), in[1].transpose(0, 1));
      },
      {a, b}));
}

TEST(Linear, WithAndWithoutBias) {
  Tensor x = random({2, 3, 7}, 60), w = random({5, 7}, 61), b = random({5}, 62);
  std::vector<double> xv = x.to_vector(), wv = w.to_vector(), bv = b.to_vector();
  std::vector<double> ref, ref_nb;
  for (int64_t r = 0; r < 6; ++r)
    for (int64_t o = 0; o < 5; ++o) {
      double s = 0;
      for (int64_t i = 0; i < 7; ++i) s += xv[r * 7 + i] * wv[o * 7 + i];
      ref_nb.push_back(s);
      ref.push_back(s + bv[o]);
    }
  Tensor y = linear(x, w, b);
  EXPECT_EQ(y.shape(), (Shape{2, 3, 5}));
  EXPECT_TRUE(all_close(y.to_vector(), ref, 1e-13, 1e-14));
  EXPECT_TRUE(all_close(linear(x, w).to_vector(), ref_nb, 1e-13, 1e-14));
  // 1-D input: one sample.
  Tensor y1 = linear(x.select(0, 1).select(0, 2), w, b);
  EXPECT_EQ(y1.shape(), (Shape{5}));
  EXPECT_TRUE(
      all_close(y1.to_vector(), std::vector<double>(ref.begin() + 25, ref.end()), 1e-13, 1e-14));
}

TEST(Linear, GradCheck) {
  Tensor x = random({2, 3, 4}, 70).requires_grad_(), w = random({5, 4}, 71).requires_grad_();
  Tensor b = random({5}, 72).requires_grad_();
  EXPECT_TRUE(grad_check([](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2]); },
                         {x, w, b}));
  EXPECT_TRUE(
      grad_check([](const std::vector<Tensor>& in) { return linear(in[0], in[1]); }, {x, w}));
}

// linear is one autograd node that saves the input only for the weight gradient and the weight
// only for the input gradient: each subset of trainable arguments gets exactly its gradients
// (a frozen backbone under a trainable head; a head whose input needs a gradient).
TEST(Linear, GradientsOfEachTrainableSubset) {
  const Tensor x0 = random({3, 4}, 73), w0 = random({2, 4}, 74), b0 = random({2}, 75);
  Tensor full_x = x0.detach().requires_grad_(), full_w = w0.detach().requires_grad_();
  Tensor full_b = b0.detach().requires_grad_();
  Tensor full_y = linear(full_x, full_w, full_b);
  sum(mul(full_y, full_y)).backward();
  for (int mask = 1; mask < 8; ++mask) {
    SCOPED_TRACE(testing::Message() << "x w b trainable: " << (mask & 1) << (mask >> 1 & 1)
                                    << (mask >> 2 & 1));
    Tensor x = x0.detach(), w = w0.detach(), b = b0.detach();
    if (mask & 1) x.requires_grad_();
    if (mask & 2) w.requires_grad_();
    if (mask & 4) b.requires_grad_();
    Tensor y = linear(x, w, b);
    sum(mul(y, y)).backward();
    EXPECT_EQ(x.grad().defined(), bool(mask & 1));
    EXPECT_EQ(w.grad().defined(), bool(mask & 2));
    EXPECT_EQ(b.grad().defined(), bool(mask & 4));
    if (mask & 1) {
      EXPECT_TRUE(all_close(x.grad().to_vector(), full_x.grad().to_vector(), 1e-13, 0));
    }
    if (mask & 2) {
      EXPECT_TRUE(all_close(w.grad().to_vector(), full_w.grad().to_vector(), 1e-13, 0));
      EXPECT_TRUE(w.grad().is_contiguous());
    }
    if (mask & 4) {
      EXPECT_TRUE(all_close(b.grad().to_vector(), full_b.grad().to_vector(), 1e-13, 0));
    }
  }
}

// kernels::cpu::gemm splits a large product across the OpenMP team: along M or N when C is
// big, along K (private partials, summed) when C is small. Each split, with every
// transposition, beta 0 on a NaN-filled C (must be ignored, as BLAS does) and beta 0.5, on
// row strides wider than the rows, against a plain float64 loop. The team is set to 3 so the
// splits run even where the suite runs single-threaded, and the ranges come out uneven.
TEST(Gemm, ThreadSplitsMatchALoop) {
  struct Dims {
    int64_t m, n, k;
  };
  const int threads = omp_get_max_threads();
  omp_set_num_threads(3);
  for (Dims dm : {Dims{301, 37, 700}, Dims{19, 301, 700}, Dims{3, 5, 40001}, Dims{2, 2, 9}}) {
    for (int t = 0; t < 4; ++t) {
      for (double beta : {0.0, 0.5}) {
        const bool ta = t & 1, tb = t & 2;
        SCOPED_TRACE(testing::Message() << dm.m << "x" << dm.n << "x" << dm.k << " ta " << ta
                                        << " tb " << tb << " beta " << beta);
        // op(A) is [m, k]; stored [m, k] or [k, m] with 3 extra columns of padding per row.
        const int64_t lda = (ta ? dm.m : dm.k) + 3, ldb = (tb ? dm.k : dm.n) + 3, ldc = dm.n + 3;
        std::vector<double> a = random({(ta ? dm.k : dm.m) * lda}, 1).to_vector();
        std::vector<double> b = random({(tb ? dm.n : dm.k) * ldb}, 2).to_vector();
        std::vector<double> c = random({dm.m * ldc}, 3).to_vector();
        if (beta == 0.0) std::fill(c.begin(), c.end(), std::numeric_limits<double>::quiet_NaN());
        std::vector<double> want = c;
        for (int64_t i = 0; i < dm.m; ++i)
          for (int64_t j = 0; j < dm.n; ++j) {
            double sum = 0;
            for (int64_t p = 0; p < dm.k; ++p)
              sum += (ta ? a[p * lda + i] : a[i * lda + p]) * (tb ? b[j * ldb + p] : b[p * ldb + j]);
            want[i * ldc + j] = 1.5 * sum + (beta == 0.0 ? 0.0 : beta * c[i * ldc + j]);
          }
        kernels::cpu::gemm<double>(ta, tb, dm.m, dm.n, dm.k, 1.5, a.data(), lda, b.data(), ldb,
                                   beta, c.data(), ldc);
        for (int64_t i = 0; i < dm.m; ++i)
          for (int64_t j = 0; j < dm.n; ++j)
            ASSERT_NEAR(c[i * ldc + j], want[i * ldc + j], 1e-9 * (1 + std::abs(want[i * ldc + j])))
                << "C[" << i << ", " << j << "]";
        // The padding between rows of C is never written (NaN stays NaN: compare bits).
        for (int64_t i = 0; i < dm.m; ++i)
          for (int64_t j = dm.n; j < ldc; ++j)
            ASSERT_EQ(std::memcmp(&c[i * ldc + j], &want[i * ldc + j], sizeof(double)), 0);
      }
    }
  }
  omp_set_num_threads(threads);
}

TEST(Matmul, Errors) {
  auto expect_error = [](const std::function<void()>& f, const std::vector<std::string>& parts) {
    try {
      f();
      ADD_FAILURE() << "expected an engine::Error";
    } catch (const Error& e) {
      std::string m = e.what();
      for (const auto& p : parts)
        EXPECT_NE(m.find(p), std::string::npos) << "'" << p << "' not in: " << m;
    }
  };
  expect_error(
      [] {
        matmul(random({2, 3}, 1), random({4, 5}, 2));
      },
      {"matmul", "inner sizes", "[2,3]", "[4,5]"});
  expect_error([] { matmul(random({3}, 1), random({3, 2}, 2)); }, {"matmul", "2 dims", "[3]"});
  expect_error([] { matmul(random({2, 2, 3}, 1), random({3, 3, 2}, 2)); }, {"matmul", "broadcast"});
  expect_error(
      [] {
        matmul(random({2, 3}, 1), random({3, 2}, 2, -1, 1, DType::Float32));
      },
      {"matmul", "dtype"});
  expect_error(
      [] {
        linear(random({2, 3}, 1), random({4, 5}, 2));
      },
      {"linear", "[2,3]", "[4,5]", "3 features"});
  expect_error(
      [] {
        linear(random({2, 5}, 1), random({4, 5}, 2), random({3}, 3));
      },
      {"linear", "bias", "[3]"});
  expect_error([] { linear(random({2, 5}, 1), random({5}, 2)); }, {"linear", "[out, in]"});
}
