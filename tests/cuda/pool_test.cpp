// CUDA pooling against the CPU and our kernels against cuDNN's: max_pool2d (ResNet's 3/2/1
// stem and others, odd sizes, ties, NaN), adaptive_avg_pool2d with overlapping windows and the
// global pool, forward and backward. Our kernels add in the CPU's order, so they agree with it
// bit for bit (up to FMA contraction in the average's backward); cuDNN is held to a tolerance
// on tie-free data.
#include "tests/cuda/op_check.h"

namespace cuda_test {
namespace {

using engine::cuda::Family;
using engine::cuda::Impl;
using CudaPool = CudaTest;

struct MaxCase {
  Shape shape;
  int64_t kernel, stride, pad;
};
const std::vector<MaxCase> kMaxCases = {
    {{2, 17, 13, 5}, 3, 2, 1},  // ResNet stem geometry on odd sizes
    {{1, 8, 9, 64}, 2, 2, 0},
    {{3, 6, 7, 3}, 3, 1, 1},  // overlapping windows: inputs feed up to 9 outputs
    {{2, 5, 5, 1}, 5, 3, 2},
};

TEST_F(CudaPool, OursMaxPoolIsBitExactWithTies) {
  ImplScope ours(Family::Pool, Impl::Ours);
  uint64_t seed = 1;
  for (const MaxCase& c : kMaxCases)
    for (DType t : {DType::Float32, DType::Float64}) {
      // Values from {-2..2}: many ties, so "first maximum in scan order" decides the argmax.
      Tensor x = host_integers(c.shape, ++seed, 2, t);
      OpFn f = [c](const std::vector<Tensor>& in) {
        return engine::max_pool2d(in[0], c.kernel, c.stride, c.pad);
      };
      EXPECT_TRUE(matches_cpu(f, {x}, {0, 0},
                              "max_pool2d k" + std::to_string(c.kernel) + " " + dtype_str(t)));
    }
}

TEST_F(CudaPool, OursMaxPoolLetsNaNWin) {
  ImplScope ours(Family::Pool, Impl::Ours);
  Tensor x = host_random({1, 6, 6, 2}, 3, -1, 1, DType::Float64);
  std::vector<double> v = x.to_vector();
  v[(2 * 6 + 3) * 2 + 1] = kNaN;
  x = Tensor::from_vector(v, {1, 6, 6, 2});
  EXPECT_TRUE(same_values(engine::max_pool2d(x.to(kGpu), 3, 2, 1), engine::max_pool2d(x, 3, 2, 1)));
}

// The average's forward is exact (the same double sums and one multiply); its backward adds
// dy * (1 / window) terms, which the compilers may contract into FMAs differently: 1 ulp.
Tolerance grad_rounding(DType t) {
  return {0, 0, t == DType::Float32 ? 1e-6 : 1e-15, t == DType::Float32 ? 1e-8 : 1e-17};
}

TEST_F(CudaPool, AdaptiveAndGlobalAverageMatchCpu) {
  ImplScope ours(Family::Pool, Impl::Ours);
  uint64_t seed = 20;
  for (DType t : {DType::Float32, DType::Float64}) {
    struct Case {
      Shape shape;
      int64_t p, q;
    };
    for (Case c : {Case{{2, 7, 5, 3}, 3, 2}, Case{{1, 10, 10, 8}, 4, 6}, Case{{3, 6, 4, 5}, 6, 4},
                   Case{{2, 9, 9, 16}, 1, 1}}) {
      Tensor x = host_random(c.shape, ++seed, -1, 1, t);
      OpFn f = [c](const std::vector<Tensor>& in) {
        return engine::adaptive_avg_pool2d(in[0], c.p, c.q);
      };
      EXPECT_TRUE(matches_cpu(f, {x}, grad_rounding(t),
                              "adaptive_avg_pool2d " + std::string(dtype_str(t))));
    }
    Tensor x = host_random({4, 7, 7, 33}, ++seed, -1, 1, t);
    OpFn g = [](const std::vector<Tensor>& in) { return engine::global_avg_pool(in[0]); };
    EXPECT_TRUE(
        matches_cpu(g, {x}, grad_rounding(t), "global_avg_pool " + std::string(dtype_str(t))));
  }
}

TEST_F(CudaPool, CudnnMatchesCpuAndOurs) {
  SKIP_WITHOUT_VENDOR_LIBRARIES();
  uint64_t seed = 40;
  // Continuous random values: no ties, so every implementation picks the same argmax. The
  // forward is a selection (exact); an input's gradient sums dy over up to 9 windows, in an
  // order cuDNN does not document: float32 reordering of such a sum, with cancellation, is
  // worth a few 1e-7 absolute.
  const Tolerance tol{1e-6, 1e-7, 1e-5, 1e-6};
  for (const MaxCase& c : kMaxCases) {
    Tensor x = host_random(c.shape, ++seed, -1, 1);
    OpFn f = [c](const std::vector<Tensor>& in) {
      return engine::max_pool2d(in[0], c.kernel, c.stride, c.pad);
    };
    ImplScope vendor(Family::Pool, Impl::Vendor);
    EXPECT_TRUE(matches_cpu(f, {x}, tol, "cuDNN max_pool2d k" + std::to_string(c.kernel)));
    Tensor theirs = engine::max_pool2d(x.to(kGpu), c.kernel, c.stride, c.pad);
    ImplScope ours(Family::Pool, Impl::Ours);
    EXPECT_TRUE(same_values(engine::max_pool2d(x.to(kGpu), c.kernel, c.stride, c.pad), theirs))
        << "ours vs cuDNN, k" << c.kernel;
  }
  for (Shape s : {Shape{4, 7, 7, 33}, Shape{2, 8, 6, 16}}) {
    Tensor x = host_random(s, ++seed, -1, 1);
    ImplScope vendor(Family::Pool, Impl::Vendor);
    OpFn g = [](const std::vector<Tensor>& in) { return engine::global_avg_pool(in[0]); };
    EXPECT_TRUE(matches_cpu(g, {x}, tol, "cuDNN global_avg_pool"));
    OpFn a = [](const std::vector<Tensor>& in) { return engine::adaptive_avg_pool2d(in[0], 2, 3); };
    EXPECT_TRUE(matches_cpu(a, {x}, tol, "cuDNN adaptive_avg_pool2d (tiling windows)"));
  }
}

}  // namespace
}  // namespace cuda_test
