// CUDA reductions against the CPU: sum over every layout the launcher distinguishes (short
// and long rows, narrow and wide columns, split into chunks or not), max with ties and NaN,
// and their gradients.
#include "kernels/cuda/reduce.h"
#include "tests/cuda/cuda_util.h"

namespace cuda_test {
namespace {

using CudaReduce = CudaTest;

struct SumCase {
  Shape shape;
  std::vector<int64_t> dims;
  const char* what;
};

const std::vector<SumCase> kSumCases = {
    {{1000003}, {}, "everything: one long row split into chunks"},
    {{7, 30001}, {1}, "few long rows: block per row, chunks"},
    {{300, 17}, {1}, "many short rows: warp per row"},
    {{5, 200003, 3}, {1}, "3 columns: whole-row groups, chunks"},
    {{2, 999, 130}, {1}, "130 columns: 32-column tiles"},
    {{16, 7, 7, 96}, {0, 1, 2}, "BatchNorm statistics of NHWC [1, N*H*W, C]"},
    {{3, 4, 5}, {0, 2}, "non-adjacent dims (permuted first)"},
    {{1, 1}, {0}, "one element"},
    {{4, 0, 3}, {1}, "empty reduced dim: zeros"},
};

TEST_F(CudaReduce, SumMatchesCpuOnEveryLayout) {
  uint64_t seed = 1;
  for (const SumCase& c : kSumCases) {
    for (DType t : {DType::Float32, DType::Float64}) {
      Tensor x = host_random(c.shape, ++seed, -1, 2, t);
      for (bool keep : {false, true}) {
        Tensor ref = engine::sum(x, c.dims, keep), got = engine::sum(x.to(kGpu), c.dims, keep);
        // Both accumulate in double and round once: float32 results may differ in the last
        // bit only; float64 ones by the CPU's sequential rounding (~1e-13 over 1e6 terms).
        const double rtol = t == DType::Float32 ? 2.5e-7 : 1e-12;
        EXPECT_TRUE(testing_util::all_close(got, ref, rtol, 1e-12))
            << c.what << " " << t << (keep ? " keepdim" : "");
      }
    }
  }
}

TEST_F(CudaReduce, ExactOnIntegersAndComposedOpsMatch) {
  // Integer values: every partial sum is exact, so any summation order gives the same bits.
  Tensor x = host_integers({33, 4099, 5}, 3, 9, DType::Float32);
  EXPECT_TRUE(same_values(engine::sum(x.to(kGpu), {1}), engine::sum(x, {1})));
  EXPECT_TRUE(same_values(engine::sum(x.to(kGpu), {0, 2}), engine::sum(x, {0, 2})));
  Tensor y = host_random({64, 129}, 4, -1, 1, DType::Float64);
  EXPECT_TRUE(testing_util::all_close(engine::mean(y.to(kGpu), {0}), engine::mean(y, {0}), 1e-13,
                                      1e-15));
  EXPECT_TRUE(testing_util::all_close(engine::var(y.to(kGpu), {1}), engine::var(y, {1}), 1e-12,
                                      1e-15));
}

TEST_F(CudaReduce, MaxAndItsGradientMatchCpuWithTies) {
  // Values from {-3..3}: many ties, so "first maximal index" decides where gradients go.
  struct Case {
    Shape shape;
    std::vector<int64_t> dims;
  };
  const std::vector<Case> cases = {{{9, 2000}, {1}},    // long rows: a block per row
                                   {{300, 37}, {1}},    // short rows: a warp per row
                                   {{4, 50, 6}, {1}},   // columns
                                   {{5, 6, 7}, {}},     // everything
                                   {{6, 5, 4}, {0, 2}}};
  uint64_t seed = 40;
  for (const Case& c : cases) {
    for (DType t : {DType::Float32, DType::Float64}) {
      Tensor x = host_integers(c.shape, ++seed, 3, t).requires_grad_();
      Tensor gx = x.detach().to(kGpu).requires_grad_();
      Tensor y = engine::max(x, c.dims), gy = engine::max(gx, c.dims);
      EXPECT_TRUE(same_values(gy, y)) << engine::cat(c.shape) << " " << t;
      Tensor w = host_random(y.shape(), ++seed, -1, 1, t);
      engine::sum(engine::mul(y, w)).backward();
      engine::sum(engine::mul(gy, w.to(kGpu))).backward();
      EXPECT_TRUE(same_values(gx.grad(), x.grad())) << "grad " << engine::cat(c.shape) << " " << t;
    }
  }
}

TEST_F(CudaReduce, MaxPropagatesTheFirstNaN) {
  std::vector<double> v(3 * 2000);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>((i * 37) % 101);
  v[1 * 2000 + 1500] = kNaN;  // row 1: NaN late in a long row
  v[2 * 2000 + 3] = kNaN, v[2 * 2000 + 1999] = kNaN;
  for (Shape s : {Shape{3, 2000}, Shape{3, 40, 50}}) {
    Tensor x = Tensor::from_vector(v, s);
    Tensor gx = x.to(kGpu);
    const std::vector<int64_t> dims =
        s.size() == 2 ? std::vector<int64_t>{1} : std::vector<int64_t>{1, 2};
    EXPECT_TRUE(same_values(engine::max(gx, dims), engine::max(x, dims)));
    // The index itself, straight from the kernel (columns layout when dims is {1} of [3,40,50]).
    Tensor out = poisoned({3 * 50}), idx = poisoned({3 * 50}, DType::Int64);
    Tensor xs = x.reshape({3, 40, 50}).to(DType::Float32);
    kernels::cuda::reduce_max(3, 40, 50, xs.to(kGpu).raw_data(), out.raw_data(),
                              idx.data<int64_t>(), DType::Float32);
    EXPECT_TRUE(same_values(out.reshape({3, 50}), engine::max(xs, {1})));
    std::vector<double> got_idx = idx.to_vector();
    for (int64_t o = 0; o < 3; ++o)
      for (int64_t i = 0; i < 50; ++i) {
        const float* p = xs.data<float>() + o * 2000 + i;
        int64_t want = 0;
        for (int64_t k = 1; k < 40 && !std::isnan(p[want * 50]); ++k)
          if (p[k * 50] > p[want * 50] || std::isnan(p[k * 50])) want = k;
        ASSERT_EQ(got_idx[o * 50 + i], want) << "o=" << o << " i=" << i;
      }
  }
}

}  // namespace
}  // namespace cuda_test
