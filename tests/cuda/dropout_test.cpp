// CUDA dropout and drop_path against the CPU: the counter-based RNG must give the very same
// mask on both devices (bit for bit, so the outputs and gradients are identical), and the
// generator must advance by the same number of counters.
#include "tests/cuda/op_check.h"

namespace cuda_test {
namespace {

using CudaDropout = CudaTest;

TEST_F(CudaDropout, MasksEqualTheCpusBitForBit) {
  uint64_t seed = 1;
  for (DType t : {DType::Float32, DType::Float64})
    for (double p : {0.1, 0.5, 0.9})
      for (Shape s : {Shape{1}, Shape{1000003}, Shape{3, 17, 19, 5}}) {
        Tensor x = host_random(s, ++seed, 0.5, 1.5, t);  // never 0: a zero output is a drop
        engine::Generator gc(77), gg(77);
        gc.reserve(12345), gg.reserve(12345);  // mid-stream, as in training
        Tensor xc = x.detach().requires_grad_(), xg = x.to(kGpu).requires_grad_();
        Tensor yc = engine::dropout(xc, p, true, gc), yg = engine::dropout(xg, p, true, gg);
        EXPECT_TRUE(same_values(yg, yc)) << "p=" << p << " " << t;
        EXPECT_EQ(gg.offset(), gc.offset());
        Tensor w = host_random(s, ++seed, -1, 1, t);
        engine::sum(engine::mul(yc, w)).backward();
        engine::sum(engine::mul(yg, w.to(kGpu))).backward();
        EXPECT_TRUE(same_values(xg.grad(), xc.grad())) << "grad p=" << p << " " << t;
        // The kept fraction is about 1 - p (a broken RNG would not be): within 5 standard
        // deviations of the binomial count (n = 4845: 0.036 at p = 0.5; n = 1e6: 0.0025).
        if (x.numel() > 1000) {
          std::vector<double> y = yg.to_vector();
          double kept = 0;
          for (double v : y) kept += v != 0;
          const double n = double(y.size());
          EXPECT_NEAR(kept / n, 1 - p, 5 * std::sqrt(p * (1 - p) / n)) << "n=" << n;
        }
      }
}

TEST_F(CudaDropout, DropPathMatchesCpuBitForBit) {
  uint64_t seed = 30;
  for (DType t : {DType::Float32, DType::Float64})
    for (double p : {0.2, 0.7}) {
      Tensor x = host_random({64, 7, 7, 9}, ++seed, 0.5, 1.5, t);
      engine::Generator gc(5), gg(5);
      Tensor xc = x.detach().requires_grad_(), xg = x.to(kGpu).requires_grad_();
      Tensor yc = engine::drop_path(xc, p, true, gc), yg = engine::drop_path(xg, p, true, gg);
      EXPECT_TRUE(same_values(yg, yc)) << "p=" << p << " " << t;
      EXPECT_EQ(gg.offset(), gc.offset());
      Tensor w = host_random(x.shape(), ++seed, -1, 1, t);
      engine::sum(engine::mul(yc, w)).backward();
      engine::sum(engine::mul(yg, w.to(kGpu))).backward();
      EXPECT_TRUE(same_values(xg.grad(), xc.grad())) << "grad p=" << p << " " << t;
    }
}

TEST_F(CudaDropout, EdgeProbabilities) {
  engine::Generator g(3);
  Tensor x = host_random({5, 11}, 4, 0.5, 1.5).to(kGpu);
  EXPECT_TRUE(engine::dropout(x, 0.0, true, g).same(x));  // identity, no counters used
  EXPECT_TRUE(engine::dropout(x, 0.5, false, g).same(x));
  EXPECT_EQ(g.offset(), 0u);
  EXPECT_TRUE(same_values(engine::dropout(x, 1.0, true, g), Tensor::zeros({5, 11})));
  EXPECT_TRUE(same_values(engine::drop_path(x, 1.0, true, g), Tensor::zeros({5, 11})));
}

}  // namespace
}  // namespace cuda_test
