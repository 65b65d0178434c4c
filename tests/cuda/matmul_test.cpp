// CUDA GEMM: our tiled kernel and cuBLAS, each against the CPU (OpenBLAS) and against each
// other, on awkward shapes, transposed views, batches, alpha/beta/offsets/leading dims.
#include <cmath>

#include "kernels/cpu/gelu.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cuda/matmul.h"
#include "kernels/cuda/runtime.h"
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

// Turns the TF32 tensor cores on for one scope (the fixture turns them off for every test).
class Tf32On {
 public:
  Tf32On() { engine::cuda::set_tf32(true); }
  ~Tf32On() { engine::cuda::set_tf32(false); }
};

// With TF32 each operand keeps a 10-bit mantissa (relative error <= 2^-11 rounded, < 2^-10
// truncated; cuBLAS may do either), so a product is off by at most ~2^-9 of |a| |b| and an
// element of C by 2^-9 * sum_k |a_ik| |b_kj|, plus float32 summation error. `bound` is that
// sum (|A| @ |B| on the CPU); a wrong element, or fp16-like precision, is far outside it.
testing::AssertionResult within_tf32(const Tensor& got, const Tensor& ref, const Tensor& bound,
                                     int64_t k) {
  Tensor g = got.to(engine::Device::cpu()).contiguous(), r = ref.contiguous();
  Tensor b = bound.contiguous();
  const float* pg = g.data<float>();
  const float* pr = r.data<float>();
  const float* pb = b.data<float>();
  for (int64_t i = 0; i < g.numel(); ++i) {
    const double tol = std::ldexp(double(pb[i]), -9) + 4e-7 * double(k + 1);
    if (!(std::abs(double(pg[i]) - double(pr[i])) <= tol))
      return testing::AssertionFailure() << "element " << i << ": " << pg[i] << " vs " << pr[i]
                                         << " (TF32 bound " << tol << ")";
  }
  return testing::AssertionSuccess();
}

// |got - ref| <= rel * bound per element (any float dtype; bound = sum_k |a_ik| |b_kj|).
testing::AssertionResult within_bound(const Tensor& got, const Tensor& ref, const Tensor& bound,
                                      double rel) {
  Tensor g = got.to(engine::Device::cpu()).to(DType::Float64).contiguous();
  Tensor r = ref.to(DType::Float64).contiguous(), b = bound.to(DType::Float64).contiguous();
  for (int64_t i = 0; i < g.numel(); ++i) {
    const double tol = rel * b.data<double>()[i] + 1e-30;
    if (!(std::abs(g.data<double>()[i] - r.data<double>()[i]) <= tol))
      return testing::AssertionFailure() << "element " << i << ": " << g.data<double>()[i]
                                         << " vs " << r.data<double>()[i] << " (bound " << tol
                                         << ")";
  }
  return testing::AssertionSuccess();
}

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
// k = 1200 is split along k (the partial sums' second pass applies alpha and beta), and TF32
// (float32 only) is checked against its bound.
TEST_F(CudaMatmul, OursAndCublasAgreeWithAlphaBetaOffsetsAndLeadingDims) {
  const int64_t m = 70, n = 45, pad = 3, off = 5;
  uint64_t seed = 30;
  for (int64_t k : {int64_t(133), int64_t(1200)})
  for (bool tf32 : {false, true})
  for (DType t : {DType::Float32, DType::Float64}) {
    if (tf32 && t == DType::Float64) continue;
    engine::cuda::set_tf32(tf32);
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
          Tensor ref = c0.clone(), bound = engine::abs(c0);
          engine::dispatch_float(t, "test", [&](auto zero) {
            using T = decltype(zero);
            kernels::cpu::gemm<T>(ta, tb, m, n, k, T(0.75), a.data<T>() + off, lda,
                                  b.data<T>() + off, ldb, T(beta), ref.data<T>() + off, ldc);
            // TF32 bound: 0.75 |A| |B| (+ |beta C| rounded the same way, harmlessly).
            Tensor aa = engine::abs(a), ab = engine::abs(b);
            kernels::cpu::gemm<T>(ta, tb, m, n, k, T(0.75), aa.data<T>() + off, lda,
                                  ab.data<T>() + off, ldb, T(std::abs(beta)),
                                  bound.data<T>() + off, ldc);
          });
          for (Impl impl : available_impls()) {
            GemmImpl use(impl);
            Tensor ga = a.to(kGpu), gb = b.to(kGpu), gc = c0.to(kGpu);
            kernels::cuda::gemm(ta, tb, m, n, k, 0.75, ga.raw_data(), off, lda, gb.raw_data(), off,
                                ldb, beta, gc.raw_data(), off, ldc, t);
            // Outside the window ref keeps c0's values: C there must be untouched.
            const bool ok = tf32 ? bool(within_tf32(gc, ref, bound, k))
                                 : bool(testing_util::all_close(gc, ref, rtol_for(t),
                                                                atol_for(t, k)));
            EXPECT_TRUE(ok) << engine::cuda::impl_name(impl) << " " << t << " k=" << k
                            << " tf32=" << tf32 << " ta=" << ta << " tb=" << tb
                            << " beta=" << beta;
          }
        }
  }
  engine::cuda::set_tf32(false);
}

// Split-K: a product whose output is one or two tiles but whose k is long (a Linear layer's
// weight gradient) is split along k over many blocks, and the partial sums are added in a fixed
// order. Split and unsplit shapes against the CPU, in fp32, float64 and TF32, and the same call
// twice gives the same bits.
TEST_F(CudaMatmul, OursSplitsALongKAndStaysDeterministic) {
  GemmImpl use(Impl::Ours);
  using kernels::cuda::gemm_ours_splits;
  for (bool tf32 : {false, true}) {
    engine::cuda::set_tf32(tf32);
    EXPECT_GT(gemm_ours_splits(40, 70, 5000, kernels::DType::Float32), 4) << "tf32=" << tf32;
    // 256 output tiles fill an H100's 132 SMs (and the emulator's 5) without splitting.
    EXPECT_EQ(gemm_ours_splits(2048, 2048, 5000, kernels::DType::Float32), 1) << "tf32=" << tf32;
    EXPECT_EQ(gemm_ours_splits(40, 70, 700, kernels::DType::Float32), 1) << "tf32=" << tf32;
  }
  engine::cuda::set_tf32(false);
  EXPECT_GT(gemm_ours_splits(40, 70, 5000, kernels::DType::Float64), 4);

  uint64_t seed = 40;
  for (bool tf32 : {false, true})
    for (DType t : {DType::Float32, DType::Float64}) {
      if (tf32 && t == DType::Float64) continue;  // TF32 is a float32 setting
      engine::cuda::set_tf32(tf32);
      // The weight gradient's layout: g^T [40, 5000] (g stored [5000, 40]) @ x [5000, 70];
      // k = 5003 leaves the last split short.
      Tensor g = host_random({5003, 40}, ++seed, -1, 1, t);
      Tensor x = host_random({5003, 70}, ++seed, -1, 1, t);
      Tensor ref = engine::matmul(g.transpose(0, 1), x);
      Tensor gg = g.to(kGpu), gx = x.to(kGpu);
      Tensor got = engine::matmul(gg.transpose(0, 1), gx);
      Tensor again = engine::matmul(gg.transpose(0, 1), gx);
      if (tf32) {
        Tensor bound = engine::matmul(engine::abs(g).transpose(0, 1), engine::abs(x));
        EXPECT_TRUE(within_tf32(got, ref, bound, 5003));
      } else {
        EXPECT_TRUE(testing_util::all_close(got, ref, rtol_for(t), atol_for(t, 5003))) << t;
      }
      EXPECT_TRUE(same_values(again, got)) << t << " tf32=" << tf32;
    }
  engine::cuda::set_tf32(false);
}

// TF32: every transposition and awkward shape (edges of every tile, k not a multiple of the
// 16-deep slice, contiguous extents not a multiple of 4, so both the 16-byte and the 4-byte
// copies run) within the TF32 bound of the float32 CPU result.
TEST_F(CudaMatmul, Tf32WithinItsBoundForEveryTransposition) {
  Tf32On on;
  uint64_t seed = 60;
  const std::vector<Mkn> shapes = {{1, 1, 1},    {17, 33, 65},  {129, 257, 63}, {256, 128, 384},
                                   {64, 40, 48}, {200, 12, 96}, {3, 1000, 5}};
  for (Impl impl : available_impls()) {
    GemmImpl use(impl);
    for (const Mkn& s : shapes) {
      Tensor a = host_random({s.m, s.k}, ++seed), at = host_random({s.k, s.m}, ++seed);
      Tensor b = host_random({s.k, s.n}, ++seed), bt = host_random({s.n, s.k}, ++seed);
      for (const Tensor& x : {a, at.transpose(0, 1)})
        for (const Tensor& y : {b, bt.transpose(0, 1)}) {
          Tensor ref = engine::matmul(x, y), got = engine::matmul(x.to(kGpu), y.to(kGpu));
          Tensor bound = engine::matmul(engine::abs(x), engine::abs(y));
          EXPECT_TRUE(within_tf32(got, ref, bound, s.k))
              << engine::cuda::impl_name(impl) << " m=" << s.m << " k=" << s.k << " n=" << s.n
              << " trans_a=" << !x.is_contiguous() << " trans_b=" << !y.is_contiguous();
        }
    }
  }
}

// Our TF32 kernel really rounds to TF32: 1 + 2^-12 is below half a TF32 ulp above 1, so with
// every a = 1 + 2^-12 and b = 1 each product is exactly 1 and C = k exactly, where float32
// gives k (1 + 2^-12). (Only ours: cuBLAS may keep a small product on the FP32 units.)
TEST_F(CudaMatmul, OursTf32RoundsTheOperands) {
  GemmImpl use(Impl::Ours);
  const int64_t m = 35, n = 20, k = 96;
  Tensor a = Tensor::full({m, k}, 1.0 + std::ldexp(1.0, -12)), b = Tensor::ones({k, n});
  Tensor ga = a.to(kGpu), gb = b.to(kGpu);
  EXPECT_TRUE(same_values(engine::matmul(ga, gb), engine::matmul(a, b))) << "fp32";
  Tf32On on;
  EXPECT_TRUE(same_values(engine::matmul(ga, gb), Tensor::full({m, n}, double(k)))) << "tf32";
}

// The rounded TF32 pipeline (kernels::cuda::set_tf32_ldmatrix: each operand element rounded once
// in shared memory, along-k fragments by ldmatrix), alone and with 64x64 warp tiles
// (set_tf32_wide), must give the bits of the per-read rounding, for every transposition, on the
// 16-byte and the 4-byte copy paths, on every block tile, with a split k, and with the fusions
// that rewrite the tiles in shared memory (GELU, LayerNorm) or sum C's columns.
TEST_F(CudaMatmul, OursTf32LdmatrixGivesTheSameBits) {
  Tf32On on;
  const bool saved_ldmatrix = kernels::cuda::tf32_ldmatrix();
  const bool saved_wide = kernels::cuda::tf32_wide();
  uint64_t seed = 900;
  // 128x64, 128x128, 64x128 blocks; then 128x128 with k split (one combination: emulated
  // runs are slow).
  for (Mkn s : {Mkn{256, 64, 128}, Mkn{70, 133, 45}, Mkn{40, 3001, 70}, Mkn{136, 130, 1100}})
    for (int fusion_kind = 0; fusion_kind < 3; ++fusion_kind)
      for (bool ta : {false, true})
        for (bool tb : {false, true}) {
          const int64_t m = s.m, n = s.n, k = s.k;
          if (k > 1000 && (fusion_kind != 2 || ta || !tb)) continue;
          if (k > 1000)
            ASSERT_GT(kernels::cuda::gemm_ours_splits(m, n, k, DType::Float32), 1) << "no split";
          Tensor a = host_random({m * k}, ++seed, -2, 2).to(kGpu);
          Tensor b = host_random({k * n}, ++seed, -2, 2).to(kGpu);
          Tensor mean = host_random({m}, ++seed, -1, 1).to(kGpu);
          Tensor rstd = host_random({m}, ++seed, 0.5, 2).to(kGpu);
          Tensor sums = Tensor::empty({n}, DType::Float32, kGpu);
          kernels::cuda::GemmFusion fusion;
          if (fusion_kind == 1) fusion.gelu_b = true;
          if (fusion_kind == 2) {
            fusion.norm_a = {mean.raw_data(), rstd.raw_data(), nullptr, nullptr};
            fusion.col_sums = sums.raw_data();
          }
          std::vector<Tensor> out;
          for (int loop : {4, 5, 6}) {  // the main loops of mma_tf32.cuh's Tf32Loop
            kernels::cuda::set_tf32_ldmatrix(loop >= 5);
            kernels::cuda::set_tf32_wide(loop == 6);
            Tensor c = poisoned({m, n});
            kernels::cuda::gemm_fused(ta, tb, m, n, k, 1.0, a.raw_data(), 0, ta ? m : k,
                                      b.raw_data(), 0, tb ? k : n, 0.0, c.raw_data(), 0, n,
                                      DType::Float32, fusion);
            out.push_back(c.to(engine::Device::cpu()));
            if (fusion_kind == 2) out.push_back(sums.to(engine::Device::cpu()));
          }
          kernels::cuda::set_tf32_ldmatrix(saved_ldmatrix);
          kernels::cuda::set_tf32_wide(saved_wide);
          const size_t per = out.size() / 3;  // C (and the column sums) of each loop
          for (double v : out[0].to_vector()) ASSERT_TRUE(std::isfinite(v)) << "C unwritten";
          for (size_t r = 1; r < 3; ++r)
            for (size_t i = 0; i < per; ++i)
              EXPECT_TRUE(same_values(out[r * per + i], out[i]))
                  << (i == 0 ? "C" : "column sums") << " of loop " << 4 + r << ": m=" << m
                  << " k=" << k << " n=" << n << " ta=" << ta << " tb=" << tb << " fusion "
                  << fusion_kind;
        }
}

// gemm_fused (matmul.h): GELU on either operand as it is loaded, then the epilogue
// C = (alpha * sum + bias[j]) * gelu'(aux[i, j]) + beta * C, against the CPU composing the same
// steps from its own kernels (gemm, gelu_forward, gelu_backward), for every transposition, with
// offsets, padded leading dimensions and a NaN-filled C under beta = 0, in fp32, float64 and
// TF32, and on a shape long enough in k to be split (the epilogue then runs in the split pass).
TEST_F(CudaMatmul, FusedGeluOperandsAndEpilogueMatchTheComposedCpuSteps) {
  struct Case {
    bool gelu_a, gelu_b, bias, grad;
    double beta;
  };
  const std::vector<Case> cases = {{true, false, false, false, 0.0},
                                   {false, true, false, false, 0.0},
                                   {false, false, true, true, 0.0},
                                   {true, true, true, true, -0.5}};
  const int64_t pad = 3, off = 5;
  uint64_t seed = 70;
  for (Mkn s : {Mkn{70, 133, 45}, Mkn{40, 5003, 70}})
  for (bool tf32 : {false, true})
  for (DType t : {DType::Float32, DType::Float64}) {
    if (tf32 && t == DType::Float64) continue;
    engine::cuda::set_tf32(tf32);
    const int64_t m = s.m, n = s.n, k = s.k, ldc = n + pad, ld_aux = n + 2 * pad;
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (const Case& f : cases) {
          const int64_t lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad;
          // Inputs in [-3, 3): GELU's curved part, not just its linear tails.
          Tensor a = host_random({off + (ta ? k : m) * lda}, ++seed, -3, 3, t);
          Tensor b = host_random({off + (tb ? n : k) * ldb}, ++seed, -3, 3, t);
          Tensor bias = host_random({n}, ++seed, -1, 1, t);
          Tensor aux = host_random({m * ld_aux}, ++seed, -3, 3, t);
          Tensor c0 = host_random({off + m * ldc}, ++seed, -1, 1, t);
          Tensor window = c0.slice(0, off, off + m * ldc).view({m, ldc}).slice(1, 0, n);
          if (f.beta == 0) window.fill_(kNaN);
          Tensor ref = c0.clone(), bound = engine::abs(c0);
          engine::dispatch_float(t, "test", [&](auto zero) {
            using T = decltype(zero);
            // The operands GELU'd (the whole buffers: elementwise, padding included).
            Tensor ea = a.clone(), eb = b.clone();
            if (f.gelu_a) kernels::cpu::gelu_forward<T>(a.numel(), a.data<T>(), ea.data<T>());
            if (f.gelu_b) kernels::cpu::gelu_forward<T>(b.numel(), b.data<T>(), eb.data<T>());
            Tensor prod = Tensor::zeros({m, n}, t), mag = Tensor::zeros({m, n}, t);
            kernels::cpu::gemm<T>(ta, tb, m, n, k, T(0.75), ea.data<T>() + off, lda,
                                  eb.data<T>() + off, ldb, T(0), prod.data<T>(), n);
            Tensor aa = engine::abs(ea), ab = engine::abs(eb);
            kernels::cpu::gemm<T>(ta, tb, m, n, k, T(0.75), aa.data<T>() + off, lda,
                                  ab.data<T>() + off, ldb, T(0), mag.data<T>(), n);
            Tensor slope = Tensor::ones({m * ld_aux}, t);  // gelu'(aux) = 1 * gelu'(aux)
            kernels::cpu::gelu_backward<T>(aux.numel(), aux.data<T>(), slope.data<T>(),
                                           slope.data<T>());
            for (int64_t i = 0; i < m; ++i)
              for (int64_t j = 0; j < n; ++j) {
                T v = prod.data<T>()[i * n + j], bnd = mag.data<T>()[i * n + j];
                if (f.bias) v += bias.data<T>()[j];
                if (f.grad) {
                  const T g = slope.data<T>()[i * ld_aux + j];
                  v *= g, bnd *= std::abs(g);
                }
                T& r = ref.data<T>()[off + i * ldc + j];
                T& bd = bound.data<T>()[off + i * ldc + j];
                r = f.beta == 0 ? v : v + T(f.beta) * r;
                bd = f.beta == 0 ? bnd : bnd + T(std::abs(f.beta)) * bd;  // C may be NaN
              }
          });
          Tensor ga = a.to(kGpu), gb = b.to(kGpu), gc = c0.to(kGpu);
          Tensor gbias = bias.to(kGpu), gaux = aux.to(kGpu);
          kernels::cuda::GemmFusion fusion;
          fusion.gelu_a = f.gelu_a;
          fusion.gelu_b = f.gelu_b;
          if (f.bias) fusion.bias = gbias.raw_data();
          if (f.grad) fusion.gelu_grad_of = gaux.raw_data(), fusion.ld_aux = ld_aux;
          kernels::cuda::gemm_fused(ta, tb, m, n, k, 0.75, ga.raw_data(), off, lda, gb.raw_data(),
                                    off, ldb, f.beta, gc.raw_data(), off, ldc, t, fusion);
          // Outside the window ref keeps c0's values: C there must be untouched.
          const bool ok = tf32 ? bool(within_tf32(gc, ref, bound, k))
                               : bool(testing_util::all_close(gc, ref, rtol_for(t),
                                                              atol_for(t, 3 * k)));
          EXPECT_TRUE(ok) << t << " m=" << m << " k=" << k << " n=" << n << " tf32=" << tf32
                          << " ta=" << ta << " tb=" << tb << " gelu_a=" << f.gelu_a
                          << " gelu_b=" << f.gelu_b << " bias=" << f.bias << " grad=" << f.grad;
        }
  }
  engine::cuda::set_tf32(false);
  EXPECT_GT(kernels::cuda::gemm_ours_splits(40, 70, 5003, kernels::DType::Float32), 1)
      << "the long shape no longer exercises split-K";
}

// GemmFusion::col_sums: the sums over the rows of the C that was stored, from the TF32 kernel's
// epilogue (one m tile, many m tiles, C's last tile partly outside) or from the pass after the
// product (fp32 and float64 kernels, a split k), bit-identical when run twice; no rows: zeros.
TEST_F(CudaMatmul, FusedColumnSumsAreTheSumsOfTheStoredC) {
  GemmImpl use(Impl::Ours);
  uint64_t seed = 90;
  for (Mkn s : {Mkn{70, 133, 45}, Mkn{1000, 96, 384}, Mkn{40, 5003, 70}})
  for (bool tf32 : {false, true})
  for (DType t : {DType::Float32, DType::Float64}) {
    if (tf32 && t == DType::Float64) continue;
    engine::cuda::set_tf32(tf32);
    const int64_t m = s.m, n = s.n, k = s.k;
    Tensor ha = host_random({m, k}, ++seed, -1, 1, t), hb = host_random({k, n}, ++seed, -1, 1, t);
    Tensor haux = host_random({m, n}, ++seed, -3, 3, t);
    Tensor a = ha.to(kGpu), b = hb.to(kGpu), aux = haux.to(kGpu);
    Tensor c = Tensor::empty({m, n}, t, kGpu), sums = Tensor::empty({n}, t, kGpu);
    Tensor again = Tensor::empty({n}, t, kGpu);
    kernels::cuda::GemmFusion fusion;
    fusion.gelu_grad_of = aux.raw_data(), fusion.ld_aux = n;
    for (Tensor* out : {&sums, &again}) {
      fusion.col_sums = out->raw_data();
      kernels::cuda::gemm_fused(false, false, m, n, k, 1.0, a.raw_data(), 0, k, b.raw_data(), 0,
                                n, 0.0, c.raw_data(), 0, n, t, fusion);
    }
    // C itself: (A B) * gelu'(aux) from the CPU (the sums below are only as good as C is).
    Tensor slope = Tensor::ones({m, n}, t);
    engine::dispatch_float(t, "test", [&](auto zero) {
      using T = decltype(zero);
      kernels::cpu::gelu_backward<T>(m * n, haux.data<T>(), slope.data<T>(), slope.data<T>());
    });
    Tensor ref_c = engine::mul(engine::matmul(ha, hb), slope);
    if (tf32) {
      Tensor bound =
          engine::mul(engine::matmul(engine::abs(ha), engine::abs(hb)), engine::abs(slope));
      EXPECT_TRUE(within_tf32(c, ref_c, bound, k)) << "C, m=" << m << " k=" << k;
    } else {
      EXPECT_TRUE(testing_util::all_close(c, ref_c, rtol_for(t), atol_for(t, 3 * k)))
          << "C, " << t << " m=" << m << " k=" << k;
    }
    // The stored C summed on the CPU in float64; the GPU adds the same float values in
    // another order (in float32 for TF32's per-block sums): a relative 1e-5 of sum |C|.
    Tensor c_host = c.to(engine::Device::cpu()).to(DType::Float64);
    Tensor ref = engine::sum(c_host, {0});
    Tensor mag = engine::sum(engine::abs(c_host), {0});
    Tensor got = sums.to(engine::Device::cpu()).to(DType::Float64);
    for (int64_t j = 0; j < n; ++j) {
      const double tol = (t == DType::Float32 ? 1e-5 : 1e-12) * mag.data<double>()[j] + 1e-30;
      ASSERT_LE(std::abs(got.data<double>()[j] - ref.data<double>()[j]), tol)
          << t << " m=" << m << " k=" << k << " n=" << n << " tf32=" << tf32 << " column " << j;
    }
    EXPECT_TRUE(same_values(again, sums)) << t << " m=" << m << " tf32=" << tf32;
  }
  engine::cuda::set_tf32(true);
  EXPECT_GT(kernels::cuda::gemm_ours_splits(40, 70, 5003, kernels::DType::Float32), 1);
  EXPECT_EQ(kernels::cuda::gemm_ours_splits(1000, 384, 96, kernels::DType::Float32), 1);
  engine::cuda::set_tf32(false);

  // No rows: the sums are zeros (written, not left as they were). Float64 buffers, as the call
  // says: a float32 one is half the size the memset writes (the caching allocator's rounding
  // hid that; ENGINE_CUDA_NO_CACHE=1 under compute-sanitizer did not).
  Tensor sums = Tensor::full({5}, 7.0, DType::Float64).to(kGpu);
  Tensor dummy = Tensor::ones({4}, DType::Float64).to(kGpu);
  kernels::cuda::GemmFusion fusion;
  fusion.col_sums = sums.raw_data();
  kernels::cuda::gemm_fused(false, false, 0, 5, 3, 1.0, dummy.raw_data(), 0, 3, dummy.raw_data(),
                            0, 5, 0.0, dummy.raw_data(), 0, 5, DType::Float64, fusion);
  EXPECT_TRUE(same_values(sums, Tensor::zeros({5}, DType::Float64)));
}

// GemmFusion::norm_a / norm_b: the rows of op(A) [m, k] (along m) and of op(B) [k, n] (along k)
// normalised as they are loaded, (x - mean[r]) * rstd[r] * weight[c] + bias[c], against the CPU
// normalising the dense operands first and multiplying them; for every transposition, with
// offsets and padded leading dimensions, on one operand or both, with and without the affine,
// in fp32, float64 and TF32, and on a shape long enough in k to be split (the split's end must
// stay zero, not become -mean * rstd * weight + bias). The statistics are arbitrary values: the
// kernel applies them, whatever they are.
TEST_F(CudaMatmul, FusedLayerNormOnOperandsMatchesNormalisingFirst) {
  struct Case {
    bool norm_a, norm_b, affine;
  };
  const std::vector<Case> cases = {{true, false, true}, {false, true, true}, {true, true, false}};
  const int64_t pad = 3, off = 5;
  uint64_t seed = 150;
  for (Mkn s : {Mkn{70, 133, 45}, Mkn{40, 5003, 70}})
  for (bool tf32 : {false, true})
  for (DType t : {DType::Float32, DType::Float64}) {
    if (tf32 && t == DType::Float64) continue;
    engine::cuda::set_tf32(tf32);
    const int64_t m = s.m, n = s.n, k = s.k;
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (const Case& f : cases) {
          const int64_t lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad;
          Tensor a = host_random({off + (ta ? k : m) * lda}, ++seed, -2, 4, t);
          Tensor b = host_random({off + (tb ? n : k) * ldb}, ++seed, -2, 4, t);
          // Statistics per row of op(A) (m) and of op(B) (k); affine per column (k and n).
          Tensor mean_a = host_random({m}, ++seed, -1, 2, t);
          Tensor rstd_a = host_random({m}, ++seed, 0.3, 2, t);
          Tensor mean_b = host_random({k}, ++seed, -1, 2, t);
          Tensor rstd_b = host_random({k}, ++seed, 0.3, 2, t);
          Tensor w_a = host_random({k}, ++seed, 0.5, 1.5, t);
          Tensor b_a = host_random({k}, ++seed, -1, 1, t);
          Tensor w_b = host_random({n}, ++seed, 0.5, 1.5, t);
          Tensor b_b = host_random({n}, ++seed, -1, 1, t);
          Tensor ref, bound;
          engine::dispatch_float(t, "test", [&](auto zero) {
            using T = decltype(zero);
            // The dense operands op(A) [m, k] and op(B) [k, n], normalised where asked.
            Tensor da = Tensor::empty({m, k}, t), db = Tensor::empty({k, n}, t);
            for (int64_t i = 0; i < m; ++i)
              for (int64_t kk = 0; kk < k; ++kk) {
                T v = a.data<T>()[off + (ta ? kk * lda + i : i * lda + kk)];
                if (f.norm_a) {
                  v = (v - mean_a.data<T>()[i]) * rstd_a.data<T>()[i];
                  if (f.affine) v = v * w_a.data<T>()[kk] + b_a.data<T>()[kk];
                }
                da.data<T>()[i * k + kk] = v;
              }
            for (int64_t kk = 0; kk < k; ++kk)
              for (int64_t j = 0; j < n; ++j) {
                T v = b.data<T>()[off + (tb ? j * ldb + kk : kk * ldb + j)];
                if (f.norm_b) {
                  v = (v - mean_b.data<T>()[kk]) * rstd_b.data<T>()[kk];
                  if (f.affine) v = v * w_b.data<T>()[j] + b_b.data<T>()[j];
                }
                db.data<T>()[kk * n + j] = v;
              }
            ref = engine::mul(engine::matmul(da, db), 0.75);
            bound = engine::mul(engine::matmul(engine::abs(da), engine::abs(db)), 0.75);
          });
          Tensor gc = Tensor::empty({m, n}, t, kGpu);
          std::vector<Tensor> dev;  // kept alive until the product is done
          auto on_gpu = [&](const Tensor& x) {
            dev.push_back(x.to(kGpu));
            return dev.back().raw_data();
          };
          kernels::cuda::GemmFusion fusion;
          if (f.norm_a)
            fusion.norm_a = {on_gpu(mean_a), on_gpu(rstd_a), f.affine ? on_gpu(w_a) : nullptr,
                             f.affine ? on_gpu(b_a) : nullptr};
          if (f.norm_b)
            fusion.norm_b = {on_gpu(mean_b), on_gpu(rstd_b), f.affine ? on_gpu(w_b) : nullptr,
                             f.affine ? on_gpu(b_b) : nullptr};
          kernels::cuda::gemm_fused(ta, tb, m, n, k, 0.75, on_gpu(a), off, lda, on_gpu(b), off,
                                    ldb, 0.0, gc.raw_data(), 0, n, t, fusion);
          // fp32 and float64: within 2e-5 (1e-12) of sum |terms|, where a lost normalisation
          // is O(1) of it and a split's tail that stopped being zero ~1e-3.
          const bool ok = tf32 ? bool(within_tf32(gc, ref, bound, k))
                               : bool(within_bound(gc, ref, bound,
                                                   t == DType::Float32 ? 2e-5 : 1e-12));
          EXPECT_TRUE(ok) << t << " m=" << m << " k=" << k << " n=" << n << " tf32=" << tf32
                          << " ta=" << ta << " tb=" << tb << " norm_a=" << f.norm_a
                          << " norm_b=" << f.norm_b << " affine=" << f.affine;
        }
  }
  engine::cuda::set_tf32(false);
}

TEST_F(CudaMatmul, FusedRejectsGeluAndLayerNormOnOneOperandOrHalfAStatistic) {
  Tensor a = Tensor::ones({4, 4}).to(kGpu), c = Tensor::zeros({4, 4}).to(kGpu);
  Tensor stat = Tensor::ones({4}).to(kGpu);
  auto run = [&](const kernels::cuda::GemmFusion& fusion) {
    kernels::cuda::gemm_fused(false, false, 4, 4, 4, 1.0, a.raw_data(), 0, 4, a.raw_data(), 0, 4,
                              0.0, c.raw_data(), 0, 4, DType::Float32, fusion);
  };
  kernels::cuda::GemmFusion both;
  both.gelu_b = true;
  both.norm_b = {stat.raw_data(), stat.raw_data(), nullptr, nullptr};
  testing_util::expect_error([&] { run(both); }, {"gemm", "GELU or a LayerNorm"});
  kernels::cuda::GemmFusion half;
  half.norm_a.mean = stat.raw_data();
  testing_util::expect_error([&] { run(half); }, {"gemm", "mean", "rstd"});
}

TEST_F(CudaMatmul, FusedRejectsAnAuxRowShorterThanC) {
  Tensor a = Tensor::ones({4, 4}).to(kGpu), c = Tensor::zeros({4, 4}).to(kGpu);
  kernels::cuda::GemmFusion fusion;
  fusion.gelu_grad_of = a.raw_data();
  fusion.ld_aux = 3;
  EXPECT_THROW(kernels::cuda::gemm_fused(false, false, 4, 4, 4, 1.0, a.raw_data(), 0, 4,
                                         a.raw_data(), 0, 4, 0.0, c.raw_data(), 0, 4,
                                         DType::Float32, fusion),
               engine::Error);
}

}  // namespace
}  // namespace cuda_test
