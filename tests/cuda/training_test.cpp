// Training on CUDA against training on the CPU, end to end: small_cnn (convolutions, batch
// norm in training mode with running statistics, ReLU, residual adds, global pool, the MLP
// head's dropout and linears) takes three SGD-with-momentum steps on the same batch from the
// same initial weights on both devices, with our kernels and with cuDNN's; the losses must
// agree within 1e-3, the weights must have moved the same way (with cuDNN: each tensor's
// change within 3% of the CPU's, as its Winograd/FFT algorithms round differently) and every
// BatchNorm must have counted its three batches (num_batches_tracked). (SGD, not Adam, so that the
// update is linear in the gradient: Adam turns a gradient component that is zero up to
// rounding into a full +-lr step whose sign the rounding decides. Adam's kernels are checked
// in optimizer_test.cpp.) A float64 twin holds every result to 1e-9, which float32 cannot.
#include <cmath>
#include <map>
#include <string>

#include "kernels/cpu/conv2d_winograd.h"
#include "models/model.h"
#include "nn/optimizer.h"
#include "tests/cuda/op_check.h"

namespace cuda_test {
namespace {

using engine::cuda::Family;
using engine::cuda::Impl;
using CudaTraining = CudaTest;

// The network every test here trains, freshly initialised (always the same weights).
std::shared_ptr<models::Model> make_model() {
  models::ModelOptions mo;
  mo.seed = 3;
  return models::create("small_cnn", 2, models::Head::Mlp, mo);
}

// Three steps on `device` in `dtype`; returns the losses and leaves the trained model in *out.
std::vector<double> train_three_steps(engine::Device device, const Tensor& x, const Tensor& target,
                                      std::shared_ptr<models::Model>* out,
                                      DType dtype = DType::Float32) {
  std::shared_ptr<models::Model> model = make_model();
  model->to(dtype);
  model->to(device);
  model->train();
  nn::SGDOptions o;
  o.lr = 0.05, o.momentum = 0.9, o.weight_decay = 1e-4;
  nn::SGD opt(model->parameters(), o);
  std::vector<double> losses;
  for (int step = 0; step < 3; ++step) {
    Tensor loss = engine::huber_loss(model->forward(x.to(dtype).to(device)),
                                     target.to(dtype).to(device));
    losses.push_back(loss.item());
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
  *out = model;
  return losses;
}

// make_model()'s parameters and buffers before training, on the CPU.
std::map<std::string, Tensor> initial_state() {
  std::map<std::string, Tensor> out;
  for (auto& [name, t] : make_model()->state_dict()) out.emplace(name, t.detach().clone());
  return out;
}

// |(got - init) - (ref - init)| <= rel * |ref - init| (L2 norms over the tensor): the tensor
// changed as the reference did, up to `rel` of the change.
::testing::AssertionResult same_update(const Tensor& got, const Tensor& ref, const Tensor& init,
                                       double rel) {
  std::vector<double> g = got.to_vector(), r = ref.to_vector(), i = init.to_vector();
  double diff = 0, change = 0;
  for (size_t k = 0; k < r.size(); ++k) {
    diff += (g[k] - r[k]) * (g[k] - r[k]);
    change += (r[k] - i[k]) * (r[k] - i[k]);
  }
  diff = std::sqrt(diff), change = std::sqrt(change);
  if (std::isfinite(diff) && diff <= rel * change + 1e-7) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "differs from the reference by " << diff
                                       << " (L2) where the reference changed by " << change;
}

TEST_F(CudaTraining, SmallCnnTrainsLikeOnTheCpu) {
  Tensor x = host_random({6, 40, 36, 3}, 1, -1, 1);  // NHWC, awkward size
  Tensor target = host_random({6, 2}, 2, -1, 1);
  std::shared_ptr<models::Model> cpu_model;
  // The CPU reference sums its convolutions directly (im2col + GEMM), as the GPU's do. Three
  // float32 steps of this small network amplify rounding differences (its deep BatchNorms
  // normalise over 54 values, and a BatchNorm bias feeding another BatchNorm has a gradient
  // that nearly cancels): the CPU's Winograd against its own im2col differs by 1.3% of
  // bn1.bias's norm after three steps, while in float64 the two agree to 2e-15 (2026-11-26).
  std::vector<double> ref;
  {
    struct Im2col {  // for this scope, restored even if training throws
      Im2col() { kernels::cpu::set_conv2d_algo(kernels::cpu::Conv2dAlgo::Im2col); }
      ~Im2col() { kernels::cpu::set_conv2d_algo(kernels::cpu::Conv2dAlgo::Auto); }
    } direct;
    ref = train_three_steps(engine::Device::cpu(), x, target, &cpu_model);
  }
  // Where cuDNN runs, it may pick a Winograd or FFT forward algorithm, whose float32 rounding
  // differs from a direct sum as the CPU's Winograd does (1.3% of bn1.bias above): there each
  // tensor's change over the three steps must match the CPU's within 3% of its norm, which a
  // wrong gradient (off by its own size) cannot meet.
  const auto init = initial_state();
  for (Impl impl : available_impls()) {
    ImplScope conv(Family::Conv, impl), dw(Family::Depthwise, impl);
    ImplScope bn(Family::BatchNorm, impl), pool(Family::Pool, impl);
    std::shared_ptr<models::Model> gpu_model;
    const std::vector<double> got = train_three_steps(kGpu, x, target, &gpu_model);
    for (int s = 0; s < 3; ++s)
      EXPECT_NEAR(got[s], ref[s], 1e-3) << engine::cuda::impl_name(impl) << " step " << s;
    EXPECT_NE(ref[2], ref[0]);  // it did train
    // Every parameter and buffer (running statistics) moved the same way.
    auto cs = cpu_model->state_dict(), gs = gpu_model->state_dict();
    ASSERT_EQ(cs.size(), gs.size());
    for (auto& [name, t] : cs) {
      if (t.dtype() == DType::Int64) {  // num_batches_tracked: three training forwards each
        EXPECT_EQ(gs.at(name).item(), 3.0) << engine::cuda::impl_name(impl) << " " << name;
        EXPECT_EQ(t.item(), 3.0) << name;
        continue;
      }
      if (impl == Impl::Ours) {
        EXPECT_TRUE(testing_util::all_close(gs.at(name), t, 1e-3, 1e-4))
            << engine::cuda::impl_name(impl) << " " << name;
      } else {
        EXPECT_TRUE(same_update(gs.at(name), t, init.at(name), 0.03)) << "cuDNN " << name;
      }
    }
  }
}

// The same three steps in float64, where rounding cannot hide a wrong result: every parameter,
// buffer and loss within 1e-9 relative of the CPU's (the float64 kernels accumulate in
// float64). The CPU keeps its default algorithms here (Winograd where it applies): in float64
// it agrees with im2col to 2e-15.
TEST_F(CudaTraining, SmallCnnTrainsLikeOnTheCpuInFloat64) {
  Tensor x = host_random({6, 40, 36, 3}, 1, -1, 1, DType::Float64);
  Tensor target = host_random({6, 2}, 2, -1, 1, DType::Float64);
  std::shared_ptr<models::Model> cpu_model;
  const std::vector<double> ref =
      train_three_steps(engine::Device::cpu(), x, target, &cpu_model, DType::Float64);
  EXPECT_NE(ref[2], ref[0]);  // it did train
  for (Impl impl : available_impls()) {
    ImplScope conv(Family::Conv, impl), dw(Family::Depthwise, impl);
    ImplScope bn(Family::BatchNorm, impl), pool(Family::Pool, impl), gemm(Family::Gemm, impl);
    std::shared_ptr<models::Model> gpu_model;
    const std::vector<double> got =
        train_three_steps(kGpu, x, target, &gpu_model, DType::Float64);
    for (int s = 0; s < 3; ++s)
      EXPECT_NEAR(got[s], ref[s], 1e-9 * std::abs(ref[s]))
          << engine::cuda::impl_name(impl) << " step " << s;
    auto cs = cpu_model->state_dict(), gs = gpu_model->state_dict();
    ASSERT_EQ(cs.size(), gs.size());
    for (auto& [name, t] : cs) {
      if (t.dtype() == DType::Int64) continue;
      EXPECT_EQ(gs.at(name).dtype(), DType::Float64) << name;
      EXPECT_TRUE(testing_util::all_close(gs.at(name), t, 1e-9, 1e-12))
          << engine::cuda::impl_name(impl) << " " << name;
    }
  }
}

}  // namespace
}  // namespace cuda_test

namespace cuda_test {
namespace {

// The host queues every kernel of a training step; at ~2-5 us a launch, the count bounds what
// the host costs a step whatever the GPU does. One AdamW step of ConvNeXt-T (batch 2 at 32x32:
// the network's every op, on tiny tensors) on our kernels everywhere queued 558 launches on
// the CPU emulator on 2026-11-27 (ResNet-50: 586, ResNet-18: 237); the budget leaves room for
// split-K plans that differ with the SM count, and fails on a per-op regression (an extra
// kernel in a block's op is +18 to +36 launches, a per-parameter kernel +180).
TEST_F(CudaTraining, ConvNeXtStepStaysWithinItsLaunchBudget) {
  std::vector<std::unique_ptr<ImplScope>> ours;
  for (Family f : {Family::Gemm, Family::Conv, Family::Depthwise, Family::BatchNorm,
                   Family::Pool})
    ours.push_back(std::make_unique<ImplScope>(f, Impl::Ours));
  models::ModelOptions mo;
  mo.seed = 5;
  std::shared_ptr<models::Model> model = models::create("convnext_tiny", 2,
                                                        models::Head::Linear, mo);
  model->to(kGpu);
  model->train(true);
  Tensor x = host_random({2, 32, 32, 3}, 61, -1, 1).to(kGpu);
  Tensor target = host_random({2, 2}, 62, -1, 1).to(kGpu);
  nn::AdamW opt(model->parameters(), nn::AdamWOptions{.lr = 1e-4, .weight_decay = 0.01});
  const uint64_t before = engine::cuda::launch_count();
  opt.zero_grad();
  engine::mse_loss(model->forward(x), target).backward();
  opt.step();
  const uint64_t launches = engine::cuda::launch_count() - before;
  std::printf("ConvNeXt-T training step: %llu kernel launches\n",
              static_cast<unsigned long long>(launches));
  EXPECT_GE(launches, 300u);  // every block's ops ran (a count that stopped counting fails)
  EXPECT_LE(launches, 650u);
}

}  // namespace
}  // namespace cuda_test
