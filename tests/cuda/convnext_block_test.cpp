// Two ConvNeXt blocks (models::CNBlock: depthwise 7x7, LayerNorm, the MLP, layer scale,
// residual) forward and backward on the GPU against the CPU, with our kernels (the MLP then
// fused into its GEMMs, and composed with engine::set_mlp_fusion(false)) and with the vendors'
// where they run: every parameter's gradient and the input's. Parameters are random O(1)
// values (torchvision's init, 0.02-wide weights and a 1e-6 layer scale, would leave GELU linear
// and hide the blocks). tests/parity holds the CPU to torchvision; this holds the GPU to the CPU.
#include <optional>

#include "models/convnext.h"
#include "tests/cuda/op_check.h"

namespace cuda_test {
namespace {

using engine::cuda::Family;
using engine::cuda::Impl;
using CudaConvNeXtBlock = CudaTest;

struct Blocks {
  std::vector<std::shared_ptr<models::CNBlock>> blocks;
  Tensor forward(Tensor x) {
    for (auto& b : blocks) x = b->forward(x);
    return x;
  }
};

// Two blocks of width `dim`, parameters drawn from fixed seeds (the same on every call).
Blocks make_blocks(int64_t dim, DType t, engine::Device d) {
  Blocks out;
  uint64_t seed = 100;
  for (int i = 0; i < 2; ++i) {
    engine::Generator gen(7);
    auto b = std::make_shared<models::CNBlock>(dim, 1.0, 0.0, gen,
                                               std::make_shared<engine::Generator>(8));
    for (auto& [name, p] : b->named_parameters()) {
      // Fan-in scaled, so pre-activations stay O(1): the MLP's first Linear sees dim inputs,
      // the second 4*dim, the depthwise conv 49.
      const int64_t fan_in = p.dim() >= 2 ? p.numel() / p.size(0) : 1;
      const double r = p.dim() >= 2 ? 1.5 / std::sqrt(double(fan_in)) : 1.0;
      p.detach().copy_(host_random(p.shape(), ++seed, -r, r, DType::Float64));
    }
    b->to(t);
    b->to(d);
    out.blocks.push_back(b);
  }
  return out;
}

// Forward, then sum(y * w) backward; returns y and every gradient (the input's last).
std::vector<Tensor> run(Blocks& m, const Tensor& x_host, const Tensor& w_host, engine::Device d) {
  Tensor x = x_host.detach().clone().to(d).requires_grad_();  // a fresh leaf on each device
  Tensor y = m.forward(x);
  engine::sum(engine::mul(y, w_host.to(d))).backward();
  std::vector<Tensor> out{y.detach()};
  for (auto& b : m.blocks)
    for (auto& [name, p] : b->named_parameters()) out.push_back(p.grad());
  out.push_back(x.grad());
  return out;
}

TEST_F(CudaConvNeXtBlock, ForwardAndEveryGradientMatchTheCpu) {
  const int64_t dim = 24;
  for (DType t : {DType::Float64, DType::Float32}) {
    // float32: sums over up to 4 * 24 * 2 * 9 * 11 terms in another order on each device.
    const double tol = t == DType::Float64 ? 1e-10 : 1e-4;
    Tensor x = host_random({2, 9, 11, dim}, 1, -1, 1, t);
    Tensor w = host_random({2, 9, 11, dim}, 2, -1, 1, t);
    Blocks cpu_blocks = make_blocks(dim, t, engine::Device::cpu());
    const std::vector<Tensor> ref = run(cpu_blocks, x, w, engine::Device::cpu());
    for (Impl impl : available_impls())
      for (bool fusion : {true, false}) {
        ImplScope gemm(Family::Gemm, impl), dw(Family::Depthwise, impl);
        if (!fusion) engine::set_mlp_fusion(false);
        Blocks gpu_blocks = make_blocks(dim, t, kGpu);
        const std::vector<Tensor> got = run(gpu_blocks, x, w, kGpu);
        engine::set_mlp_fusion(true);
        ASSERT_EQ(got.size(), ref.size());
        for (size_t i = 0; i < got.size(); ++i)
          EXPECT_TRUE(close_to_scale(got[i], ref[i], tol))
              << engine::cuda::impl_name(impl) << " fusion=" << fusion << " " << t
              << (i == 0 ? " output" : i + 1 == got.size() ? " input gradient" : " gradient ")
              << (i > 0 && i + 1 < got.size() ? std::to_string(i - 1) : "");
      }
  }
}

}  // namespace
}  // namespace cuda_test
