// CUDA conv2d against the CPU, forward and both gradients, for each implementation: our
// im2col + GEMM (general) and depthwise kernels (the lab for float32 stride 1, simple kernels
// otherwise), and cuDNN's; then ours against cuDNN on the same inputs.
#include <algorithm>
#include <cmath>

#include <cudnn.h>

#include "kernels/cuda/conv2d_ops.h"
#include "kernels/cuda/cudnn_algos.h"
#include "kernels/cuda/runtime.h"
#include "tests/cuda/op_check.h"

namespace cuda_test {
namespace {

using engine::Conv2dParams;
using engine::cuda::Family;
using engine::cuda::Impl;
using CudaConv = CudaTest;

struct Case {
  Shape x;  // [N, H, W, C]
  Shape w;  // [K, R, S, C / groups]
  Conv2dParams p;
  bool bias;
  const char* what;
};

Conv2dParams params(int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dil, int64_t groups) {
  return {sh, sw, ph, pw, dil, dil, groups};
}

const std::vector<Case> kGeneral = {
    {{2, 9, 11, 5}, {7, 3, 3, 5}, params(1, 1, 1, 1, 1, 1), true, "3x3 same"},
    {{1, 23, 17, 3}, {8, 7, 7, 3}, params(2, 2, 3, 3, 1, 1), false, "7x7/2 stem, odd input"},
    {{3, 6, 5, 16}, {9, 1, 1, 16}, params(1, 1, 0, 0, 1, 1), true, "1x1 (no im2col)"},
    {{2, 9, 7, 8}, {12, 1, 1, 8}, params(2, 2, 0, 0, 1, 1), false, "1x1 stride 2 downsample"},
    {{2, 10, 9, 6}, {4, 3, 2, 3}, params(1, 2, 2, 1, 2, 2), true, "groups 2, dilation 2, 3x2"},
    {{1, 5, 4, 4},
     {8, 3, 3, 1},
     params(1, 1, 1, 1, 1, 4),
     false,
     "groups = C, K = 2C (not depthwise)"},
};

const std::vector<Case> kDepthwise = {
    {{2, 13, 11, 24}, {24, 7, 7, 1}, params(1, 1, 3, 3, 1, 24), true, "7x7 pad 3 (ConvNeXt)"},
    {{1, 9, 9, 7}, {7, 3, 3, 1}, params(1, 1, 1, 1, 1, 7), false, "3x3, odd channels"},
    {{3, 6, 8, 32}, {32, 5, 3, 1}, params(1, 1, 0, 1, 1, 32), true, "5x3, uneven padding"},
    {{2, 11, 10, 8}, {8, 3, 3, 1}, params(2, 2, 1, 1, 1, 8), false, "3x3 stride 2 (simple kernel)"},
    {{1, 12, 12, 4}, {4, 3, 3, 1}, params(1, 1, 2, 2, 2, 4), true, "dilation 2 (simple kernel)"},
};

// Dot products of R*S*C/G terms of values in [-1, 1): float32 error ~ terms * 2^-24 relative
// to the sum of magnitudes; weight gradients sum over N*P*Q pixels as well.
Tolerance tol_for(const Case& c, DType t) {
  const double terms = static_cast<double>(c.w[1] * c.w[2] * c.w[3]);
  const double pixels = static_cast<double>(c.x[0] * c.x[1] * c.x[2]);
  if (t == DType::Float64) return {1e-12, 1e-13 * terms, 1e-12, 1e-13 * (terms + pixels)};
  return {1e-5, 3e-7 * terms, 1e-5, 3e-7 * (terms + pixels)};
}

void check_all(const std::vector<Case>& cases, Family family, Impl impl, uint64_t seed,
               const std::vector<DType>& dtypes) {
  ImplScope pick(family, impl);
  for (const Case& c : cases)
    for (DType t : dtypes) {
      Tensor x = host_random(c.x, ++seed, -1, 1, t), w = host_random(c.w, ++seed, -1, 1, t);
      Tensor b = c.bias ? host_random({c.w[0]}, ++seed, -1, 1, t) : Tensor();
      const Conv2dParams p = c.p;
      OpFn f = [p](const std::vector<Tensor>& in) {
        return engine::conv2d(in[0], in[1], in[2], p);
      };
      EXPECT_TRUE(matches_cpu(
          f, {x, w, b}, tol_for(c, t),
          std::string(engine::cuda::impl_name(impl)) + " " + c.what + " " + dtype_str(t)));
    }
}

TEST_F(CudaConv, OursGeneralMatchesCpu) {
  check_all(kGeneral, Family::Conv, Impl::Ours, 1, {DType::Float32, DType::Float64});
}

TEST_F(CudaConv, OursDepthwiseMatchesCpu) {
  check_all(kDepthwise, Family::Depthwise, Impl::Ours, 100, {DType::Float32, DType::Float64});
}

// With TF32 on, the engine runs the lab's v4, or v5 under ENGINE_CUDA_TF32_LDMATRIX
// (kernels::cuda::set_tf32_ldmatrix), or v6 with ENGINE_CUDA_TF32_WIDE too: the same bits for
// the output and both gradients, strided data gradients (by stride phase) included.
TEST_F(CudaConv, OursTf32LdmatrixSwitchKeepsTheBits) {
  ImplScope pick(Family::Conv, Impl::Ours);
  engine::cuda::set_tf32(true);
  const bool saved_ldmatrix = kernels::cuda::tf32_ldmatrix();
  const bool saved_wide = kernels::cuda::tf32_wide();
  uint64_t seed = 300;
  std::vector<Case> cases = kGeneral;  // + every GEMM on 128x128 blocks (v6's 64x64 warp tiles)
  cases.push_back({{2, 9, 9, 72}, {80, 3, 3, 72}, params(1, 1, 1, 1, 1, 1), true, "72 -> 80"});
  for (const Case& c : cases) {
    if (c.p.groups != 1) continue;
    Tensor x = host_random(c.x, ++seed), w = host_random(c.w, ++seed);
    Tensor g = Tensor();
    std::vector<std::vector<double>> runs;
    for (int loop : {4, 5, 6}) {  // conv2d versions 4, 5 (ldmatrix) and 6 (wide warp tiles)
      kernels::cuda::set_tf32_ldmatrix(loop >= 5);
      kernels::cuda::set_tf32_wide(loop == 6);
      std::vector<Tensor> in = leaves_on({x, w}, kGpu);
      Tensor y = engine::conv2d(in[0], in[1], Tensor(), c.p);
      if (!g.defined()) g = host_random(y.shape(), ++seed);
      engine::sum(engine::mul(y, g.to(kGpu))).backward();
      std::vector<double> all = y.to_vector(), dx = in[0].grad().to_vector(),
                          dw = in[1].grad().to_vector();
      all.insert(all.end(), dx.begin(), dx.end());
      all.insert(all.end(), dw.begin(), dw.end());
      runs.push_back(all);
    }
    kernels::cuda::set_tf32_ldmatrix(saved_ldmatrix);
    kernels::cuda::set_tf32_wide(saved_wide);
    for (size_t r = 1; r < runs.size(); ++r) {
      ASSERT_EQ(runs[0].size(), runs[r].size());
      size_t differ = 0;
      for (size_t i = 0; i < runs[0].size(); ++i) differ += runs[0][i] != runs[r][i];
      EXPECT_EQ(differ, 0u) << c.what << ": values that differ from version 4's in version "
                            << 4 + r;
    }
    EXPECT_TRUE(std::all_of(runs[0].begin(), runs[0].end(),
                            [](double v) { return std::isfinite(v); }))
        << c.what;
  }
  engine::cuda::set_tf32(false);
}

TEST_F(CudaConv, CudnnMatchesCpu) {
  SKIP_WITHOUT_VENDOR_LIBRARIES();
  check_all(kGeneral, Family::Conv, Impl::Vendor, 200, {DType::Float32});
  check_all(kDepthwise, Family::Depthwise, Impl::Vendor, 300, {DType::Float32});
}

// Benchmark mode (engine::cuda::set_cudnn_benchmark, PyTorch's cudnn.benchmark): cuDNN times
// its algorithms on each shape's first run and the fastest allowed one runs; the results must
// match the CPU as the heuristics' choice does, in fp32 and with TF32 allowed, with no fallback
// to our kernel, and a second run of each shape (the cached choice) must give the same bits.
TEST_F(CudaConv, CudnnBenchmarkModeMatchesCpuAndKeepsItsChoice) {
  SKIP_WITHOUT_VENDOR_LIBRARIES();
  const bool saved = engine::cuda::cudnn_benchmark();
  engine::cuda::set_cudnn_benchmark(true);
  const int64_t before = kernels::cuda::conv_vendor_fallbacks();
  const int64_t failures = kernels::cuda::conv_benchmark_failures();
  check_all(kGeneral, Family::Conv, Impl::Vendor, 600, {DType::Float32});
  check_all(kDepthwise, Family::Depthwise, Impl::Vendor, 700, {DType::Float32});
  EXPECT_EQ(kernels::cuda::conv_vendor_fallbacks(), before);
  EXPECT_EQ(kernels::cuda::conv_benchmark_failures(), failures) << "timing cuDNN's algorithms "
                                                                   "failed (stderr says why)";
  ImplScope conv(Family::Conv, Impl::Vendor);
  for (bool tf32 : {false, true}) {
    engine::cuda::set_tf32(tf32);
    const Case& c = kGeneral[0];
    Tensor x = host_random(c.x, 800).to(kGpu), w = host_random(c.w, 801).to(kGpu);
    Tensor first = engine::conv2d(x, w, {}, c.p), again = engine::conv2d(x, w, {}, c.p);
    EXPECT_TRUE(testing_util::all_close(again, first, 0, 0)) << c.what << " tf32=" << tf32;
    Tensor ref = engine::conv2d(x.to(engine::Device::cpu()), w.to(engine::Device::cpu()), {}, c.p);
    EXPECT_TRUE(close_to_scale(first, ref, tf32 ? 1e-2 : 1e-5)) << c.what << " tf32=" << tf32;
  }
  engine::cuda::set_tf32(false);
  engine::cuda::set_cudnn_benchmark(saved);
}

// engine::cuda::set_cudnn_deterministic(false), PyTorch's default: cuDNN may pick backward
// algorithms that add partial sums in any order; the gradients must still match the CPU, in
// heuristic and benchmark mode.
TEST_F(CudaConv, CudnnAnyAlgorithmMatchesCpu) {
  SKIP_WITHOUT_VENDOR_LIBRARIES();
  const bool saved = engine::cuda::cudnn_deterministic();
  const bool saved_timed = engine::cuda::cudnn_benchmark();
  engine::cuda::set_cudnn_deterministic(false);
  for (bool timed : {false, true}) {
    engine::cuda::set_cudnn_benchmark(timed);
    check_all(kGeneral, Family::Conv, Impl::Vendor, timed ? 920 : 900, {DType::Float32});
  }
  engine::cuda::set_cudnn_benchmark(saved_timed);
  engine::cuda::set_cudnn_deterministic(saved);
}

// The shapes our networks use must really run on cuDNN when it is asked for (a convolution
// cuDNN has no deterministic FMA algorithm for runs ours and counts a fallback).
TEST_F(CudaConv, CudnnTakesTheNetworksShapes) {
  SKIP_WITHOUT_VENDOR_LIBRARIES();
  uint64_t seed = 500;
  for (const Case& c : {kGeneral[0], kGeneral[1], kGeneral[2], kGeneral[3], kDepthwise[0]}) {
    ImplScope conv(Family::Conv, Impl::Vendor), dw(Family::Depthwise, Impl::Vendor);
    const int64_t before = kernels::cuda::conv_vendor_fallbacks();
    Tensor x = host_random(c.x, ++seed).to(kGpu).requires_grad_();
    Tensor w = host_random(c.w, ++seed).to(kGpu).requires_grad_();
    Tensor y = engine::conv2d(x, w, {}, c.p);
    y.backward(host_random(y.shape(), ++seed).to(kGpu));
    EXPECT_EQ(kernels::cuda::conv_vendor_fallbacks(), before)
        << c.what << ": cuDNN offered no deterministic FMA algorithm for forward, data or "
        << "weight gradient (stderr names which)";
  }
}

// Which of cuDNN's ranked algorithms the engine may run (kernels/cuda/cudnn_algos.h): host
// code on cuDNN's types, so this runs without a GPU.
TEST(CudnnAlgos, CandidatesKeepRankOnlyFmaOrTf32AndDeterministicWhenAsked) {
  using Perf = cudnnConvolutionBwdFilterAlgoPerf_t;
  auto perf = [](int algo, cudnnStatus_t st, cudnnDeterminism_t det, cudnnMathType_t math) {
    Perf p{};
    p.algo = static_cast<decltype(p.algo)>(algo);
    p.status = st, p.determinism = det, p.mathType = math;
    return p;
  };
  const cudnnStatus_t ok = CUDNN_STATUS_SUCCESS, no = CUDNN_STATUS_NOT_SUPPORTED;
  const std::vector<Perf> ranked = {
      perf(0, ok, CUDNN_DETERMINISTIC, CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION),  // FP16: never
      perf(1, ok, CUDNN_DETERMINISTIC, CUDNN_TENSOR_OP_MATH),                   // TF32 only
      perf(2, no, CUDNN_DETERMINISTIC, CUDNN_FMA_MATH),                         // cannot run
      perf(3, ok, CUDNN_NON_DETERMINISTIC, CUDNN_FMA_MATH),                     // atomics
      perf(4, ok, CUDNN_DETERMINISTIC, CUDNN_DEFAULT_MATH),
      perf(5, ok, CUDNN_DETERMINISTIC, CUDNN_FMA_MATH),
  };
  auto algos = [&](bool tf32, bool det) {
    std::vector<int> out;
    for (const Perf& p : kernels::cuda::conv_algo_candidates(ranked.data(), int(ranked.size()),
                                                             tf32, det))
      out.push_back(static_cast<int>(p.algo));
    return out;
  };
  EXPECT_EQ(algos(false, true), (std::vector<int>{4, 5}));
  EXPECT_EQ(algos(false, false), (std::vector<int>{3, 4, 5}));
  EXPECT_EQ(algos(true, true), (std::vector<int>{1, 4, 5}));
  EXPECT_EQ(algos(true, false), (std::vector<int>{1, 3, 4, 5}));
  // Only the first `count` entries are cuDNN's answer.
  EXPECT_TRUE(kernels::cuda::conv_algo_candidates(ranked.data(), 3, false, false).empty());
}

TEST_F(CudaConv, OursAndCudnnAgree) {
  SKIP_WITHOUT_VENDOR_LIBRARIES();
  uint64_t seed = 400;
  std::vector<Case> all = kGeneral;
  all.insert(all.end(), kDepthwise.begin(), kDepthwise.end());
  for (const Case& c : all) {
    Tensor x = host_random(c.x, ++seed).to(kGpu), w = host_random(c.w, ++seed).to(kGpu);
    Tensor dy;
    Tensor y[2], dx[2], dw[2];
    for (int i = 0; i < 2; ++i) {
      ImplScope conv(Family::Conv, i == 0 ? Impl::Ours : Impl::Vendor);
      ImplScope dw_impl(Family::Depthwise, i == 0 ? Impl::Ours : Impl::Vendor);
      Tensor xl = x.detach().requires_grad_(), wl = w.detach().requires_grad_();
      y[i] = engine::conv2d(xl, wl, {}, c.p);
      if (!dy.defined()) dy = host_random(y[i].shape(), ++seed).to(kGpu);
      y[i].backward(dy);
      dx[i] = xl.grad(), dw[i] = wl.grad();
    }
    const Tolerance tol = tol_for(c, DType::Float32);
    EXPECT_TRUE(testing_util::all_close(y[1], y[0], tol.rtol, tol.atol)) << c.what;
    EXPECT_TRUE(testing_util::all_close(dx[1], dx[0], tol.grad_rtol, tol.grad_atol)) << c.what;
    EXPECT_TRUE(testing_util::all_close(dw[1], dw[0], tol.grad_rtol, tol.grad_atol)) << c.what;
  }
}

TEST_F(CudaConv, LargeBatchSpansSeveralColumnChunks) {
  // The im2col path (float64: the implicit-GEMM lab takes float32). 20 images of 56x56 with a
  // 3x3x64 filter: 14.5 MB of float64 columns per image, 289 MB in all, so the 128 MB chunks
  // hold 8 images: images 0-7, 8-15 and 16-19 go through separate GEMMs.
  ImplScope ours(Family::Conv, Impl::Ours);
  Tensor x = host_random({20, 56, 56, 64}, 9, -1, 1, DType::Float64).to(kGpu);
  Tensor w = host_random({8, 3, 3, 64}, 10, -1, 1, DType::Float64).to(kGpu);
  Tensor xl = x.detach().requires_grad_(), wl = w.detach().requires_grad_();
  Tensor y = engine::conv2d(xl, wl, {}, engine::Conv2dParams::make(1, 1));
  engine::sum(y).backward();
  // The same images one at a time (one chunk each) must give the same output and gradients.
  for (int64_t i : {0, 7, 8, 19}) {
    Tensor xi = x.slice(0, i, i + 1).contiguous().requires_grad_();
    Tensor wi = w.detach().requires_grad_();
    Tensor yi = engine::conv2d(xi, wi, {}, engine::Conv2dParams::make(1, 1));
    engine::sum(yi).backward();
    EXPECT_TRUE(testing_util::all_close(yi, y.slice(0, i, i + 1), 1e-12, 1e-12)) << i;
    EXPECT_TRUE(testing_util::all_close(xi.grad(), xl.grad().slice(0, i, i + 1), 1e-12, 1e-12)) << i;
  }
  // The weight gradient accumulates over chunks (beta = 1): it must equal the sum of the
  // gradients of two halves that each fit one chunk.
  Tensor dw_sum;
  for (int64_t h : {0, 10}) {
    Tensor xh = x.slice(0, h, h + 10).contiguous(), wh = w.detach().requires_grad_();
    engine::sum(engine::conv2d(xh, wh, {}, engine::Conv2dParams::make(1, 1))).backward();
    dw_sum = dw_sum.defined() ? engine::add(dw_sum, wh.grad()) : wh.grad();
  }
  EXPECT_TRUE(testing_util::all_close(wl.grad(), dw_sum, 1e-11, 1e-9));
}

}  // namespace
}  // namespace cuda_test
