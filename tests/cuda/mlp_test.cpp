// CUDA mlp (ConvNeXt's Linear -> GELU -> Linear) against the CPU, forward and the gradients of
// x, w1, b1 and w2, on both GPU paths: our GEMM with its fusions (bias and GELU in the GEMMs'
// loads and epilogues) and cuBLAS with separate GELU passes; float32, float64 and TF32; and
// what each path keeps on the device for the backward.
#include <cmath>
#include <string>

#include "tests/cuda/op_check.h"

namespace cuda_test {
namespace {

using CudaMlp = CudaTest;
using engine::cuda::Family;
using engine::cuda::Impl;

struct Case {
  Shape x;  // [..., in]
  int64_t hidden, out;
};
const std::vector<Case> kCases = {{{2, 5, 3, 12}, 48, 12},  // ConvNeXt's 4x expansion, small
                                  {{7, 9}, 13, 5},          // nothing a multiple of 4
                                  {{3, 28, 5, 96}, 384, 96},  // stage 1's widths
                                  {{1, 1, 1, 4}, 16, 4}};

std::vector<Tensor> inputs(const Case& cs, DType t, uint64_t& seed) {
  const int64_t in = cs.x.back();
  // w1 in [-1.5, 1.5) / sqrt-ish scale: the pre-activations cover GELU's curved part.
  return {host_random(cs.x, ++seed, -1, 1, t),
          host_random({cs.hidden, in}, ++seed, -1.5 / std::sqrt(double(in)),
                      1.5 / std::sqrt(double(in)), t),
          host_random({cs.hidden}, ++seed, -1, 1, t),
          host_random({cs.out, cs.hidden}, ++seed, -1, 1, t)};
}

Tensor run_mlp(const std::vector<Tensor>& in) { return engine::mlp(in[0], in[1], in[2], in[3]); }

TEST_F(CudaMlp, BothPathsMatchCpu) {
  uint64_t seed = 1;
  for_each_mlp_path([&](const std::string& path) {
    for (DType t : {DType::Float32, DType::Float64})
      for (const Case& cs : kCases) {
        // Sums over up to 384 terms, in another order on each device.
        const double tol = t == DType::Float32 ? 1e-4 : 1e-11;
        EXPECT_TRUE(matches_cpu(run_mlp, inputs(cs, t, seed), {tol, tol}, "mlp", ++seed))
            << path << " " << t << " in=" << cs.x.back() << " hidden=" << cs.hidden;
      }
  });
}

// One input at a time asking for its gradient: each takes its own branch of the backward (only
// w2: no dh at all; the others: no recomputed GELU output), on both paths.
TEST_F(CudaMlp, EachGradientAloneMatchesCpu) {
  uint64_t seed = 30;
  const std::vector<Tensor> host = inputs(kCases[1], DType::Float64, seed);
  Tensor g = host_random({7, 5}, ++seed, -1, 1, DType::Float64);
  for_each_mlp_path([&](const std::string& path) {
    EXPECT_TRUE(each_gradient_alone_matches_cpu(run_mlp, host, g, 1e-11)) << path;
  });
}

// TF32 rounds every GEMM operand to 10 mantissa bits (the GELU output included, after it is
// computed in fp32), so an element's error scales with the sum of |terms| it adds up, not with
// its value; a weight gradient summed over 420 rows can be off by a few 1e-2 where it nearly
// cancels. Checked per tensor against its largest element: within 1% of max |ref| on the
// float32 CPU, where a lost fusion (no bias, no GELU, no slope) is off by O(max |ref|).
TEST_F(CudaMlp, Tf32PathsStayCloseToTheCpu) {
  engine::cuda::set_tf32(true);
  uint64_t seed = 50;
  for_each_mlp_path([&](const std::string& path) {
    for (const Case& cs : kCases) {
      const std::vector<Tensor> host = inputs(cs, DType::Float32, seed);
      EXPECT_TRUE(matches_cpu_to_scale(run_mlp, host, 1e-2, ++seed))
          << path << " in=" << cs.x.back() << " hidden=" << cs.hidden
          << " (inputs: x, w1, b1, w2)";
    }
  });
  engine::cuda::set_tf32(false);
}

// After the forward, the device holds y and, for the backward, the hidden pre-activation once
// (the GELU output is never kept; the composition keeps both).
TEST_F(CudaMlp, KeepsOneHiddenWideTensorForTheBackward) {
  const int64_t rows = 1024, in = 16, hidden = 512, hidden_bytes = rows * hidden * 4;
  uint64_t seed = 90;
  std::vector<Tensor> host = inputs({{rows, in}, hidden, in}, DType::Float32, seed);
  std::vector<Tensor> dev = leaves_on(host, kGpu);
  for_each_mlp_path([&](const std::string& path) {
    auto kept_by = [&](auto&& f) {
      const int64_t before = int64_t(engine::cuda::memory_stats().in_use);
      Tensor y = f();
      return int64_t(engine::cuda::memory_stats().in_use) - before - y.numel() * 4;
    };
    const int64_t fused = kept_by([&] { return run_mlp(dev); });
    const int64_t twin = kept_by([&] {
      return engine::linear(engine::bias_gelu(engine::linear(dev[0], dev[1]), dev[2]), dev[3]);
    });
    EXPECT_GE(fused, hidden_bytes) << path;
    EXPECT_LT(fused, hidden_bytes + hidden_bytes / 8) << path << ": mlp keeps " << fused;
    EXPECT_GE(twin, 2 * hidden_bytes) << path << ": the composition keeps " << twin;
  });
}

}  // namespace
}  // namespace cuda_test
