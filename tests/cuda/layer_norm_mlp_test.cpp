// CUDA layer_norm_mlp (ConvNeXt's LayerNorm -> Linear -> GELU -> Linear) against the CPU,
// forward and the gradients of all six inputs, on both GPU paths: our GEMM with its fusions
// (the LayerNorm applied by the GEMMs as they load x, its output never written) and the
// composed steps (cuBLAS, or ours with fusion off); float32, float64 and TF32; with and without
// the LayerNorm's affine; and what the fused path keeps and allocates.
#include <cmath>
#include <string>

#include "tests/cuda/op_check.h"

namespace cuda_test {
namespace {

using CudaLayerNormMlp = CudaTest;
using engine::cuda::Family;
using engine::cuda::Impl;

constexpr double kEps = 1e-6;

struct Case {
  Shape x;  // [..., in]
  int64_t hidden, out;
  bool affine;
};
const std::vector<Case> kCases = {{{2, 5, 3, 12}, 48, 12, true},  // ConvNeXt's 4x expansion
                                  {{7, 9}, 13, 5, true},          // nothing a multiple of 4
                                  {{7, 9}, 13, 5, false},         // no affine
                                  {{3, 28, 5, 96}, 384, 96, true},  // stage 1's widths
                                  {{1, 1, 1, 4}, 16, 4, true}};

// x, ln_weight, ln_bias, w1, b1, w2; x with a per-element offset and spread (what a LayerNorm
// removes), w1 scaled so the pre-activations cover GELU's curved part.
std::vector<Tensor> inputs(const Case& cs, DType t, uint64_t& seed) {
  const int64_t in = cs.x.back();
  const double s = 1.5 / std::sqrt(double(in));
  return {host_random(cs.x, ++seed, -2, 4, t),
          cs.affine ? host_random({in}, ++seed, 0.5, 1.5, t) : Tensor(),
          cs.affine ? host_random({in}, ++seed, -1, 1, t) : Tensor(),
          host_random({cs.hidden, in}, ++seed, -s, s, t),
          host_random({cs.hidden}, ++seed, -1, 1, t),
          host_random({cs.out, cs.hidden}, ++seed, -1, 1, t)};
}

Tensor run(const std::vector<Tensor>& in) {
  return engine::layer_norm_mlp(in[0], in[1], in[2], kEps, in[3], in[4], in[5]);
}

TEST_F(CudaLayerNormMlp, BothPathsMatchCpu) {
  uint64_t seed = 1;
  for_each_mlp_path([&](const std::string& path) {
    for (DType t : {DType::Float32, DType::Float64})
      for (const Case& cs : kCases) {
        const double tol = t == DType::Float32 ? 2e-4 : 1e-10;
        EXPECT_TRUE(matches_cpu(run, inputs(cs, t, seed), {tol, tol}, "layer_norm_mlp", ++seed))
            << path << " " << t << " in=" << cs.x.back() << " hidden=" << cs.hidden
            << " affine=" << cs.affine;
      }
  });
}

// One input at a time asking for its gradient (each takes its own branches of the backward).
TEST_F(CudaLayerNormMlp, EachGradientAloneMatchesCpu) {
  uint64_t seed = 30;
  const std::vector<Tensor> host = inputs(kCases[1], DType::Float64, seed);
  Tensor g = host_random({7, 5}, ++seed, -1, 1, DType::Float64);
  for_each_mlp_path([&](const std::string& path) {
    EXPECT_TRUE(each_gradient_alone_matches_cpu(run, host, g, 1e-10)) << path;
  });
}

// TF32 rounds the normalised operand (after the LayerNorm, in fp32) like any other: checked per
// tensor against its largest element, as mlp's TF32 test does (tests/cuda/mlp_test.cpp).
TEST_F(CudaLayerNormMlp, Tf32PathsStayCloseToTheCpu) {
  engine::cuda::set_tf32(true);
  uint64_t seed = 50;
  for_each_mlp_path([&](const std::string& path) {
    for (const Case& cs : kCases) {
      const std::vector<Tensor> host = inputs(cs, DType::Float32, seed);
      EXPECT_TRUE(matches_cpu_to_scale(run, host, 1e-2, ++seed))
          << path << " in=" << cs.x.back() << " hidden=" << cs.hidden
          << " (inputs: x, ln_weight, ln_bias, w1, b1, w2)";
    }
  });
  engine::cuda::set_tf32(false);
}

// After the forward the device holds y and the hidden pre-activation (and two floats per row):
// on the fused path the LayerNorm's output is not even allocated in between (the peak of the
// forward stays under a C-wide tensor above what it keeps); the composition keeps it too.
TEST_F(CudaLayerNormMlp, WritesNoLayerNormOutputOnTheFusedPath) {
  const int64_t rows = 1024, in = 64, hidden = 256;
  const int64_t row_bytes = rows * in * 4, hidden_bytes = rows * hidden * 4;
  uint64_t seed = 90;
  const std::vector<Tensor> dev = leaves_on(inputs({{rows, in}, hidden, in, true},
                                                   DType::Float32, seed), kGpu);
  auto measure = [&](auto&& f, int64_t& peak) {
    engine::cuda::reset_peak_memory();
    const int64_t before = int64_t(engine::cuda::memory_stats().in_use);
    Tensor y = f();
    peak = int64_t(engine::cuda::memory_stats().peak) - before - row_bytes;
    return int64_t(engine::cuda::memory_stats().in_use) - before - row_bytes;  // less y
  };
  ImplScope use(Family::Gemm, Impl::Ours);
  int64_t peak = 0, twin_peak = 0;
  const int64_t kept = measure([&] { return run(dev); }, peak);
  const int64_t twin = measure([&] {
    return engine::mlp(engine::layer_norm(dev[0], dev[1], dev[2], kEps), dev[3], dev[4], dev[5]);
  }, twin_peak);
  EXPECT_GE(kept, hidden_bytes);
  EXPECT_LT(kept, hidden_bytes + row_bytes / 4) << "layer_norm_mlp keeps " << kept;
  EXPECT_LT(peak, hidden_bytes + row_bytes / 4) << "layer_norm_mlp's forward peaked at " << peak;
  EXPECT_GE(twin, hidden_bytes + row_bytes) << "the composition keeps " << twin;
}

// Inference (no autograd) on the composed path: the LayerNorm's output is freed once the first
// Linear has read it and GELU runs in place, so at most one hidden-wide tensor is alive at a
// time (PyTorch's eager Linear -> GELU -> Linear holds two at the GELU, the composition before
// this held both plus the LayerNorm's output). The peak above the input stays under one
// hidden-wide tensor plus the LayerNorm's output and y; the output matches the training-mode
// forward exactly.
TEST_F(CudaLayerNormMlp, InferenceHoldsOneHiddenWideTensorOnTheComposedPath) {
  const int64_t rows = 1024, in = 64, hidden = 256;
  const int64_t row_bytes = rows * in * 4, hidden_bytes = rows * hidden * 4;
  uint64_t seed = 95;
  const std::vector<Tensor> dev = leaves_on(inputs({{rows, in}, hidden, in, true},
                                                   DType::Float32, seed), kGpu);
  const bool fusion = engine::mlp_fusion();
  engine::set_mlp_fusion(false);  // the composed steps, on whichever GEMM is selected
  Tensor with_grad = run(dev).detach();
  Tensor y;
  int64_t peak = 0;
  {
    engine::NoGradGuard no_grad;
    engine::cuda::reset_peak_memory();
    const int64_t before = int64_t(engine::cuda::memory_stats().in_use);
    y = run(dev);
    peak = int64_t(engine::cuda::memory_stats().peak) - before;
  }
  engine::set_mlp_fusion(fusion);
  EXPECT_GE(peak, hidden_bytes);
  EXPECT_LE(peak, hidden_bytes + 2 * row_bytes + row_bytes / 4)
      << "layer_norm_mlp's inference forward peaked at " << peak << " bytes";
  EXPECT_TRUE(testing_util::all_close(y, with_grad, 0, 0));
}

}  // namespace
}  // namespace cuda_test
