// CUDA GELU and bias + GELU against the CPU, forward and backward: float32 through the GELU
// lab (its float4 paths on aligned sizes, the scalar fallbacks on odd ones), float64 through
// the simple kernels; the bias gradient is the engine's column sum.
#include "kernels/cpu/gelu.h"
#include "kernels/cuda/gelu_ops.h"
#include "tests/cuda/op_check.h"

namespace cuda_test {
namespace {

using CudaGelu = CudaTest;

// The CPU computes Phi as 0.5 * (1 + erf(x / sqrt 2)), the GPU as 0.5 * erfc(-x / sqrt 2): for
// x << 0 the CPU's float32 sum cancels (an absolute error ~ |x| * 2^-24), the GPU's does not.
// So float32 needs an absolute tolerance of a few 1e-7 * |x|; values here are within [-6, 6].
Tolerance tol_for(DType t) {
  return t == DType::Float32 ? Tolerance{2e-6, 2e-6} : Tolerance{1e-13, 1e-14};
}

TEST_F(CudaGelu, GeluMatchesCpu) {
  uint64_t seed = 1;
  for (DType t : {DType::Float32, DType::Float64})
    for (Shape s : {Shape{1}, Shape{7}, Shape{4, 33, 5}, Shape{2, 28, 28, 96}, Shape{1001, 3}}) {
      Tensor x = host_random(s, ++seed, -6, 6, t);
      OpFn f = [](const std::vector<Tensor>& in) { return engine::gelu(in[0]); };
      EXPECT_TRUE(matches_cpu(f, {x}, tol_for(t), "gelu " + std::string(dtype_str(t))));
    }
}

TEST_F(CudaGelu, BiasGeluMatchesCpu) {
  uint64_t seed = 20;
  for (DType t : {DType::Float32, DType::Float64})
    for (Shape s : {Shape{5, 384}, Shape{2, 7, 7, 96}, Shape{37, 13}, Shape{3, 1}}) {
      Tensor x = host_random(s, ++seed, -5, 5, t);
      Tensor b = host_random({s.back()}, ++seed, -1, 1, t);
      OpFn f = [](const std::vector<Tensor>& in) { return engine::bias_gelu(in[0], in[1]); };
      // The bias gradient sums up to 5*7*7 rows: its absolute error grows with the row count.
      Tolerance tol = tol_for(t);
      tol.grad_atol = tol.atol * 100;
      EXPECT_TRUE(matches_cpu(f, {x, b}, tol, "bias_gelu " + std::string(dtype_str(t))));
    }
}

TEST_F(CudaGelu, UnalignedViewsTakeTheScalarPath) {
  // A view starting one element in: not 16-byte aligned, so the lab's float4 path must step
  // down; contiguous() keeps the offset (a slice of the last dim would be copied instead).
  Tensor base = host_random({1 + 4 * 257}, 5, -3, 3);
  Tensor x = base.slice(0, 1, 1 + 4 * 257);
  Tensor got = engine::gelu(x.to(kGpu)), ref = engine::gelu(x);
  EXPECT_TRUE(testing_util::all_close(got, ref, 2e-6, 2e-6));
  Tensor gb = base.to(kGpu).slice(0, 1, 1 + 4 * 257);  // the view itself on the device
  EXPECT_TRUE(testing_util::all_close(engine::gelu(gb), ref, 2e-6, 2e-6));
}

// bias_gelu_backward with its optional output, as engine::mlp's backward runs it beside cuBLAS:
// dx = dy * gelu'(x + b) and y = gelu(x + b) recomputed, against the CPU kernel, out of place
// and in place (dx over dy).
TEST_F(CudaGelu, BackwardRecomputeMatchesCpuInPlaceToo) {
  uint64_t seed = 40;
  for (DType t : {DType::Float32, DType::Float64})
    for (auto [rows, c] : {std::pair<int64_t, int64_t>{37, 13}, {50, 384}, {3, 1}})
      for (bool in_place : {false, true}) {
        Tensor x = host_random({rows, c}, ++seed, -5, 5, t);
        Tensor b = host_random({c}, ++seed, -1, 1, t);
        Tensor dy = host_random({rows, c}, ++seed, -1, 1, t);
        Tensor dx = Tensor::empty({rows, c}, t), y = Tensor::empty({rows, c}, t);
        engine::dispatch_float(t, "test", [&](auto zero) {
          using T = decltype(zero);
          kernels::cpu::bias_gelu_backward<T>(rows, c, x.data<T>(), b.data<T>(), dy.data<T>(),
                                              dx.data<T>(), y.data<T>());
        });
        Tensor gx = x.to(kGpu), gb = b.to(kGpu), gdy = dy.to(kGpu);
        Tensor gdx = in_place ? gdy : Tensor::empty({rows, c}, t, kGpu);
        Tensor gy = Tensor::empty({rows, c}, t, kGpu);
        kernels::cuda::bias_gelu_backward(rows, c, gx.raw_data(), gb.raw_data(), gdy.raw_data(),
                                          gdx.raw_data(), gy.raw_data(), t);
        const Tolerance tol = tol_for(t);
        EXPECT_TRUE(testing_util::all_close(gdx, dx, tol.rtol, tol.atol))
            << t << " dx rows=" << rows << " c=" << c << " in_place=" << in_place;
        EXPECT_TRUE(testing_util::all_close(gy, y, tol.rtol, tol.atol))
            << t << " y rows=" << rows << " c=" << c << " in_place=" << in_place;
      }
}

}  // namespace
}  // namespace cuda_test
