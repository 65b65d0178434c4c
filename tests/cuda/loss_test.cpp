// CUDA losses against the CPU: huber_loss (one fused kernel each way) with both branches of
// the formula in play and every reduction, and mse_loss (composed of elementwise ops).
#include "tests/cuda/op_check.h"

namespace cuda_test {
namespace {

using CudaLoss = CudaTest;

TEST_F(CudaLoss, HuberAndMseMatchCpu) {
  uint64_t seed = 10;
  for (DType t : {DType::Float32, DType::Float64})
    for (double delta : {0.3, 1.0})
      for (engine::Reduction r :
           {engine::Reduction::Mean, engine::Reduction::Sum, engine::Reduction::None}) {
        // |pred - target| up to 4: both the quadratic and the linear part of huber are hit.
        Tensor pred = host_random({97, 3}, ++seed, -2, 2, t);
        Tensor target = host_random({97, 3}, ++seed, -2, 2, t);
        const Tolerance tol = t == DType::Float32 ? Tolerance{1e-6, 1e-6} : Tolerance{1e-13, 1e-15};
        OpFn huber = [delta, r](const std::vector<Tensor>& in) {
          return engine::huber_loss(in[0], in[1].detach(), delta, r);
        };
        EXPECT_TRUE(matches_cpu(huber, {pred, target}, tol, "huber " + std::string(dtype_str(t))));
        OpFn mse = [r](const std::vector<Tensor>& in) {
          return engine::mse_loss(in[0], in[1].detach(), r);
        };
        EXPECT_TRUE(matches_cpu(mse, {pred, target}, tol, "mse " + std::string(dtype_str(t))));
      }
}

TEST_F(CudaLoss, HuberGradientIsTheClampedDifference) {
  // Differences exactly at +-delta and 0 (the kink and the centre), integers: exact.
  Tensor pred = Tensor::from_vector(std::vector<double>{-3, -1, 0, 1, 3, 0.5}, {6});
  Tensor target = Tensor::zeros({6}, DType::Float64);
  Tensor p = pred.to(kGpu).requires_grad_();
  engine::sum(engine::huber_loss(p, target.to(kGpu), 1.0, engine::Reduction::None)).backward();
  EXPECT_TRUE(
      same_values(p.grad(), Tensor::from_vector(std::vector<double>{-1, -1, 0, 1, 1, 0.5}, {6})));
}

}  // namespace
}  // namespace cuda_test
