// CUDA GEMM: our tiled kernel and cuBLAS, each against the CPU (OpenBLAS) and against each
// other, on awkward shapes, transposed views, batches, alpha/beta/offsets/leading dims.
#include <cmath>

#include "kernels/cpu/matmul.h"
#include "kernels/cuda/matmul.h"
#include "tests/cuda/cuda_util.h"

namespace cuda_test {
namespace {

using engine::cuda::Family;
using engine::cuda::Impl;

// Selects a GEMM implementation for one scope.
class GemmImpl {
 public:
  explicit GemmImpl(Impl i) : saved_(engine::cuda::impl(Family::Gemm)) {
    engine::cuda::set_impl(Family::Gemm, i);
  }
  ~GemmImpl() { engine::cuda::set_impl(Family::Gemm, saved_); }

 private:
  Impl saved_;
};

// Inputs uniform in [-1, 1): a dot product of length k is ~sqrt(k/3) in size and each side's
// float32 rounding error grows like k * 2^-24 at worst in practice; a wrong element is O(1).
double atol_for(DType t, int64_t k) { return (t == DType::Float32 ? 4e-7 : 1e-15) * (k + 1); }
double rtol_for(DType t) { return t == DType::Float32 ? 1e-5 : 1e-13; }

using CudaMatmul = CudaTest;

struct Mkn {
  int64_t m, k, n;
};
const std::vector<Mkn> kShapes = {{1, 1, 1},     {17, 33, 65},  {129, 257, 63},
                                  {256, 128, 384}, {3, 1000, 5}, {1, 300, 1}};

TEST_F(CudaMatmul, BothImplementationsMatchCpuWithEveryTransposition) {
  uint64_t seed = 1;
  for (Impl impl : available_impls()) {
    GemmImpl use(impl);
    for (DType t : {DType::Float32, DType::Float64}) {
      for (const Mkn& s : kShapes) {
        // Plain operands and transposed views of [k, m] / [n, k] storage (trans flags).
        Tensor a = host_random({s.m, s.k}, ++seed, -1, 1, t);
        Tensor at = host_random({s.k, s.m}, ++seed, -1, 1, t).transpose(0, 1);
        Tensor b = host_random({s.k, s.n}, ++seed, -1, 1, t);
        Tensor bt = host_random({s.n, s.k}, ++seed, -1, 1, t).transpose(0, 1);
        for (const Tensor& x : {a, at})
          for (const Tensor& y : {b, bt}) {
            Tensor ref = engine::matmul(x, y), got = engine::matmul(x.to(kGpu), y.to(kGpu));
            EXPECT_TRUE(testing_util::all_close(got, ref, rtol_for(t), atol_for(t, s.k)))
                << engine::cuda::impl_name(impl) << " " << t << " m=" << s.m << " k=" << s.k
                << " n=" << s.n << " trans_a=" << !x.is_contiguous()
                << " trans_b=" << !y.is_contiguous();
          }
      }
    }
  }
}

TEST_F(CudaMatmul, ExactOnSmallIntegers) {
  // |entries| <= 4 and k = 1000: every partial sum is an integer below 2^24, exact in float32
  // in any order, so both GPU implementations must equal the CPU bit for bit.
  Tensor a = host_integers({130, 1000}, 7, 4), b = host_integers({1000, 67}, 8, 4);
  Tensor ref = engine::matmul(a, b);
  for (Impl impl : available_impls()) {
    GemmImpl use(impl);
    EXPECT_TRUE(same_values(engine::matmul(a.to(kGpu), b.to(kGpu)), ref))
        << engine::cuda::impl_name(impl);
  }
}

TEST_F(CudaMatmul, BatchedBroadcastAndEmptyInnerDim) {
  Tensor a = host_random({2, 3, 19, 23}, 11), b = host_random({3, 23, 29}, 12);
  Tensor c = host_random({37, 23}, 13), d = host_random({4, 23, 5}, 14);
  Tensor z0 = host_random({3, 0}, 15), z1 = host_random({0, 4}, 16);
  for (Impl impl : available_impls()) {
    GemmImpl use(impl);
    EXPECT_TRUE(testing_util::all_close(engine::matmul(a.to(kGpu), b.to(kGpu)),
                                        engine::matmul(a, b), 1e-5, atol_for(DType::Float32, 23)));
    EXPECT_TRUE(testing_util::all_close(engine::matmul(c.to(kGpu), d.to(kGpu)),
                                        engine::matmul(c, d), 1e-5, atol_for(DType::Float32, 23)));
    // k = 0: a [3, 4] of zeros, written over the poisoned output.
    EXPECT_TRUE(same_values(engine::matmul(z0.to(kGpu), z1.to(kGpu)), Tensor::zeros({3, 4})));
  }
}

TEST_F(CudaMatmul, GradientsMatchCpu) {
  for (Impl impl : available_impls()) {
    GemmImpl use(impl);
    Tensor x = host_random({5, 31, 17}, 21, -1, 1, DType::Float64).requires_grad_();
    Tensor w = host_random({9, 17}, 22, -1, 1, DType::Float64).requires_grad_();
    Tensor bias = host_random({9}, 23, -1, 1, DType::Float64).requires_grad_();
    Tensor gx = x.detach().to(kGpu).requires_grad_(), gw = w.detach().to(kGpu).requires_grad_();
    Tensor gbias = bias.detach().to(kGpu).requires_grad_();
    Tensor r = host_random({5, 31, 9}, 24, -1, 1, DType::Float64);
    engine::sum(engine::mul(engine::linear(x, w, bias), r)).backward();
    engine::sum(engine::mul(engine::linear(gx, gw, gbias), r.to(kGpu))).backward();
    for (auto [got, ref] : {std::pair{gx, x}, std::pair{gw, w}, std::pair{gbias, bias}})
      EXPECT_TRUE(testing_util::all_close(got.grad(), ref.grad(), 1e-12, 1e-13))
          << engine::cuda::impl_name(impl);
  }
}

// Direct kernel calls with everything the engine does not exercise: alpha, beta, element
// offsets and leading dims wider than the matrix. C's window is compared with OpenBLAS on the
// same inputs, and C outside the window must be untouched.
TEST_F(CudaMatmul, OursAndCublasAgreeWithAlphaBetaOffsetsAndLeadingDims) {
  const int64_t m = 70, n = 45, k = 133, pad = 3, off = 5;
  uint64_t seed = 30;
  for (DType t : {DType::Float32, DType::Float64}) {
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (double beta : {0.0, -0.5}) {
          const int64_t lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
          Tensor a = host_random({off + (ta ? k : m) * lda}, ++seed, -1, 1, t);
          Tensor b = host_random({off + (tb ? n : k) * ldb}, ++seed, -1, 1, t);
          // With beta == 0 the m x n window starts as NaN: C must not be read.
          Tensor c0 = host_random({off + m * ldc}, ++seed, -1, 1, t);
          if (beta == 0)
            c0.slice(0, off, off + m * ldc).view({m, ldc}).slice(1, 0, n).fill_(kNaN);
          Tensor ref = c0.clone();
          engine::dispatch_float(t, "test", [&](auto zero) {
            using T = decltype(zero);
            kernels::cpu::gemm<T>(ta, tb, m, n, k, T(0.75), a.data<T>() + off, lda,
                                  b.data<T>() + off, ldb, T(beta), ref.data<T>() + off, ldc);
          });
          for (Impl impl : available_impls()) {
            GemmImpl use(impl);
            Tensor ga = a.to(kGpu), gb = b.to(kGpu), gc = c0.to(kGpu);
            kernels::cuda::gemm(ta, tb, m, n, k, 0.75, ga.raw_data(), off, lda, gb.raw_data(), off,
                                ldb, beta, gc.raw_data(), off, ldc, t);
            EXPECT_TRUE(testing_util::all_close(gc, ref, rtol_for(t), atol_for(t, k)))
                << engine::cuda::impl_name(impl) << " " << t << " ta=" << ta << " tb=" << tb
                << " beta=" << beta;
          }
        }
  }
}

}  // namespace
}  // namespace cuda_test
