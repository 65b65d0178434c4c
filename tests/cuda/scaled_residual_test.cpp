// CUDA scaled_residual (ConvNeXt's block tail) against the CPU: forward and the gradients of x,
// h, gamma and bias, float32 and float64, on shapes that take the float4 path (C % 4 == 0) and
// the scalar one (C = 7, 97), with and without bias and drop-path factors (one sample dropped),
// batches larger than the backward's chunking; and drop_path_scale drawing on the GPU exactly
// the factors it draws on the CPU.
#include "tests/cuda/op_check.h"

namespace cuda_test {
namespace {

using CudaScaledResidual = CudaTest;

TEST_F(CudaScaledResidual, MatchesCpu) {
  uint64_t seed = 1;
  const std::vector<Shape> shapes = {{3, 5, 4, 8}, {2, 9, 7}, {5, 13, 11, 97}, {1, 1, 1, 4},
                                     {4, 56, 3, 96}};
  for (DType t : {DType::Float32, DType::Float64})
    for (const Shape& shape : shapes)
      for (bool bias : {true, false})
        for (bool drop : {true, false}) {
          const int64_t c = shape.back(), n = shape[0];
          std::vector<double> f(n, 1.25);
          f[0] = drop ? 0.0 : 1.25;
          const Tensor s = drop ? Tensor::from_vector(f, {n}).to(t) : Tensor();
          auto op = [&](const std::vector<Tensor>& in) {
            Tensor sd = s.defined() ? s.to(in[0].device()) : Tensor();
            return engine::scaled_residual(in[0], in[1], in[2], in[3], sd);
          };
          std::vector<Tensor> host = {host_random(shape, ++seed, -1, 1, t),
                                      host_random(shape, ++seed, -1, 1, t),
                                      host_random({c}, ++seed, 0.5, 1.5, t),
                                      bias ? host_random({c}, ++seed, -1, 1, t) : Tensor()};
          // The column sums add up to N*H*W terms in a different order on each device.
          const double tol = t == DType::Float32 ? 2e-5 : 1e-12;
          EXPECT_TRUE(matches_cpu(op, host, {tol, tol}, "scaled_residual", ++seed))
              << t << " c=" << c << " bias=" << bias << " drop=" << drop;
        }
}

TEST_F(CudaScaledResidual, DropPathScaleEqualsTheCpusBitForBit) {
  for (DType t : {DType::Float32, DType::Float64}) {
    engine::Generator gc(9), gg(9);
    gc.reserve(100), gg.reserve(100);
    Tensor sc = engine::drop_path_scale(257, 0.3, true, gc, t, engine::Device::cpu());
    Tensor sg = engine::drop_path_scale(257, 0.3, true, gg, t, kGpu);
    ASSERT_TRUE(sg.device().is_cuda());
    EXPECT_TRUE(same_values(sg, sc)) << t;
    EXPECT_EQ(gg.offset(), gc.offset());
  }
}

}  // namespace
}  // namespace cuda_test
