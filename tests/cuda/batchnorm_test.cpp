// CUDA batch_norm against the CPU, our kernels and cuDNN's: training (batch statistics, the
// running-stat update, the gradient through the statistics), eval, no affine part, [N, C]
// inputs, float64 (ours only: cuDNN's path is float32); and ours against cuDNN directly.
// Also the module, nn::BatchNorm2d: its num_batches_tracked counts training batches on CUDA.
#include "nn/layers.h"
#include "tests/cuda/op_check.h"

namespace cuda_test {
namespace {

using engine::cuda::Family;
using engine::cuda::Impl;
using CudaBatchNorm = CudaTest;

struct Case {
  Shape shape;
  bool affine;
  const char* what;
};
const std::vector<Case> kCases = {
    {{4, 9, 7, 16}, true, "NHWC"},
    {{2, 5, 3, 3}, false, "no affine, 3 channels"},
    {{33, 130}, true, "[N, C], 130 channels (more than one column tile)"},
    {{1, 57, 61, 5}, true, "batch 1, many rows (several row chunks)"},
    // 40-47 row chunks (5 SMs emulated, 132 on an H100): more than a warp's 32 lanes, so the
    // warp that adds a channel's chunk partials wraps around.
    {{2, 60, 50, 5}, true, "more row chunks than a warp has lanes"},
    // Multiples of 4 channels take the 16-byte path (float4; double2 for float64).
    {{3, 7, 5, 72}, true, "72 channels: 18 float4 column vectors, one partial tile"},
    {{2, 5, 6, 260}, true, "260 channels: 65 float4 column vectors, 3 tiles, the last of 1"},
};

// batch_norm in training then in eval mode on both devices (outputs, gradients of x, weight
// and bias, and the running statistics each device updated).
void check_case(const Case& c, DType t, uint64_t seed, const Tolerance& tol,
                const std::string& tag, bool relu = false) {
  const int64_t ch = c.shape.back();
  // Shifted data (mean ~ 3, std ~ 0.6): the shifted-sum statistics are what keeps it exact.
  Tensor x = host_random(c.shape, seed, 2, 4, t);
  Tensor w = c.affine ? host_random({ch}, seed + 1, 0.5, 1.5, t) : Tensor();
  Tensor b = c.affine ? host_random({ch}, seed + 2, -1, 1, t) : Tensor();
  Tensor rm0 = host_random({ch}, seed + 3, -0.5, 0.5, t),
         rv0 = host_random({ch}, seed + 4, 0.5, 2, t);
  for (bool training : {true, false}) {
    // Each device gets its own running-stat buffers, starting equal.
    Tensor rmc = rm0.clone(), rvc = rv0.clone(), rmg = rm0.to(kGpu), rvg = rv0.to(kGpu);
    OpFn f = [&, training](const std::vector<Tensor>& in) {
      const bool gpu = in[0].device().is_cuda();
      return engine::batch_norm(in[0], in[1], in[2], gpu ? rmg : rmc, gpu ? rvg : rvc, training,
                                0.1, 1e-5, relu);
    };
    const std::string what = tag + " " + c.what + (training ? " train " : " eval ") +
                             dtype_str(t) + (relu ? " + relu" : "");
    EXPECT_TRUE(matches_cpu(f, {x, w, b}, tol, what));
    EXPECT_TRUE(testing_util::all_close(rmg, rmc, tol.rtol, tol.atol)) << what << " running_mean";
    EXPECT_TRUE(testing_util::all_close(rvg, rvc, tol.rtol, tol.atol)) << what << " running_var";
  }
}

TEST_F(CudaBatchNorm, OursMatchesCpu) {
  ImplScope ours(Family::BatchNorm, Impl::Ours);
  uint64_t seed = 1;
  for (const Case& c : kCases)
    for (DType t : {DType::Float32, DType::Float64}) {
      // Statistics in double on both sides; float32 differs in the normalise step (FMA) and
      // in sums of up to 17k gradient terms.
      const Tolerance tol =
          t == DType::Float32 ? Tolerance{2e-5, 2e-5, 1e-4, 1e-4} : Tolerance{1e-11, 1e-12};
      check_case(c, t, seed += 10, tol, "ours");
    }
}

// The fused ReLU (batch_norm(..., relu = true)) on both paths: ours fuses it into its passes,
// cuDNN's is followed by engine::relu; either way the CPU's fused result.
TEST_F(CudaBatchNorm, FusedReluMatchesCpu) {
  uint64_t seed = 500;
  for (Impl impl : available_impls()) {
    ImplScope use(Family::BatchNorm, impl);
    for (const Case& c : kCases)
      for (DType t : {DType::Float32, DType::Float64}) {
        const Tolerance tol =
            t == DType::Float32 ? Tolerance{2e-5, 2e-5, 1e-4, 1e-4} : Tolerance{1e-11, 1e-12};
        check_case(c, t, seed += 10, tol, engine::cuda::impl_name(impl), /*relu=*/true);
      }
  }
}

// batch_norm_add_relu on both paths (ours fuses the residual and the ReLU into the normalising
// pass; cuDNN's BatchNorm is followed by engine::add_relu) against the CPU: output, the
// gradients of x, weight, bias and the residual, the running statistics; 16 and 72 channels
// take the 16-byte path, 5 the scalar one.
TEST_F(CudaBatchNorm, FusedAddReluMatchesCpu) {
  uint64_t seed = 900;
  for (Impl impl : available_impls()) {
    ImplScope use(Family::BatchNorm, impl);
    for (const Shape& shape : {Shape{4, 9, 7, 16}, Shape{3, 7, 5, 72}, Shape{2, 60, 50, 5}})
      for (DType t : {DType::Float32, DType::Float64})
        for (bool training : {true, false}) {
          const int64_t ch = shape.back();
          const Tolerance tol =
              t == DType::Float32 ? Tolerance{2e-5, 2e-5, 1e-4, 1e-4} : Tolerance{1e-11, 1e-12};
          Tensor x = host_random(shape, seed += 10, 2, 4, t);
          Tensor z = host_random(shape, seed + 1, -1, 1, t);
          Tensor w = host_random({ch}, seed + 2, 0.5, 1.5, t);
          Tensor b = host_random({ch}, seed + 3, -1, 1, t);
          Tensor rm0 = host_random({ch}, seed + 4, -0.5, 0.5, t);
          Tensor rv0 = host_random({ch}, seed + 5, 0.5, 2, t);
          Tensor rmc = rm0.clone(), rvc = rv0.clone(), rmg = rm0.to(kGpu), rvg = rv0.to(kGpu);
          OpFn f = [&, training](const std::vector<Tensor>& in) {
            const bool gpu = in[0].device().is_cuda();
            return engine::batch_norm_add_relu(in[0], in[1], in[2], in[3], gpu ? rmg : rmc,
                                               gpu ? rvg : rvc, training, 0.1, 1e-5);
          };
          const std::string what = std::string(engine::cuda::impl_name(impl)) + " add_relu " +
                                   dtype_str(t) + (training ? " train" : " eval") + " c=" +
                                   std::to_string(ch);
          EXPECT_TRUE(matches_cpu(f, {x, z, w, b}, tol, what));
          EXPECT_TRUE(testing_util::all_close(rmg, rmc, tol.rtol, tol.atol)) << what;
          EXPECT_TRUE(testing_util::all_close(rvg, rvc, tol.rtol, tol.atol)) << what;
        }
  }
}

// A view that starts one float in (not 16-byte aligned, contiguous() keeps it) with a channel
// count the 16-byte path would take: ours must step down to scalar accesses, forward and
// backward, and agree with the CPU.
TEST_F(CudaBatchNorm, UnalignedInputTakesTheScalarPath) {
  ImplScope ours(Family::BatchNorm, Impl::Ours);
  const Shape shape{2, 5, 3, 16};
  const int64_t n = 2 * 5 * 3 * 16;
  Tensor base = host_random({1 + n}, 71, 2, 4);
  Tensor w = host_random({16}, 72, 0.5, 1.5), b = host_random({16}, 73, -1, 1);
  Tensor dy = host_random(shape, 74, -1, 1);
  for (bool relu : {false, true}) {
    Tensor y[2], grad[2];
    for (int i = 0; i < 2; ++i) {
      const engine::Device d = i == 0 ? engine::Device::cpu() : kGpu;
      Tensor leaf = base.to(d).detach().clone();  // a leaf of its own on each device
      leaf.requires_grad_();
      Tensor x = leaf.slice(0, 1, 1 + n).reshape(shape);
      Tensor rm = Tensor::zeros({16}, DType::Float32, d);
      Tensor rv = Tensor::ones({16}, DType::Float32, d);
      y[i] = engine::batch_norm(x, w.to(d), b.to(d), rm, rv, true, 0.1, 1e-5, relu);
      engine::sum(engine::mul(y[i], dy.to(d))).backward();
      grad[i] = leaf.grad();
    }
    EXPECT_TRUE(testing_util::all_close(y[1], y[0], 2e-5, 2e-5)) << "relu " << relu;
    EXPECT_TRUE(testing_util::all_close(grad[1], grad[0], 1e-4, 1e-4)) << "relu " << relu;
  }
}

// Both of cuDNN's training modes: SPATIAL_PERSISTENT (its NHWC path, the default) and SPATIAL.
TEST_F(CudaBatchNorm, CudnnMatchesCpu) {
  SKIP_WITHOUT_VENDOR_LIBRARIES();
  ImplScope vendor(Family::BatchNorm, Impl::Vendor);
  const bool saved = engine::cuda::cudnn_bn_persistent();
  uint64_t seed = 100;
  for (bool persistent : {true, false}) {
    engine::cuda::set_cudnn_bn_persistent(persistent);
    const std::string tag = persistent ? "cuDNN persistent" : "cuDNN spatial";
    for (const Case& c : kCases) {
      // cuDNN's own float32 statistics (not shifted, not in double): looser than ours.
      check_case(c, DType::Float32, seed += 10, Tolerance{1e-4, 1e-4, 5e-4, 5e-4}, tag);
      // float64 is not cuDNN's here: the engine runs ours, which must still be right.
      check_case(c, DType::Float64, seed += 10, Tolerance{1e-11, 1e-12}, tag + " (float64: ours)");
    }
  }
  engine::cuda::set_cudnn_bn_persistent(saved);
}

TEST_F(CudaBatchNorm, OursAndCudnnAgree) {
  SKIP_WITHOUT_VENDOR_LIBRARIES();
  Tensor x = host_random({8, 14, 14, 64}, 7, -2, 2).to(kGpu);
  Tensor w = host_random({64}, 8, 0.5, 1.5).to(kGpu), b = host_random({64}, 9, -1, 1).to(kGpu);
  Tensor ys[2], rms[2];
  for (int i = 0; i < 2; ++i) {
    ImplScope pick(Family::BatchNorm, i == 0 ? Impl::Ours : Impl::Vendor);
    rms[i] = Tensor::zeros({64}, DType::Float32, kGpu);
    Tensor rv = Tensor::ones({64}, DType::Float32, kGpu);
    ys[i] = engine::batch_norm(x, w, b, rms[i], rv, true, 0.1, 1e-5);
  }
  EXPECT_TRUE(testing_util::all_close(ys[1], ys[0], 1e-4, 1e-4));
  EXPECT_TRUE(testing_util::all_close(rms[1], rms[0], 1e-5, 1e-6));
}

// PyTorch's num_batches_tracked goes into every checkpoint, so it must count training batches
// on the GPU as on the CPU: with the counter where Module::to leaves it (on the host), and
// with a counter that reached the GPU anyway (a device tensor put in its slot), which must
// keep counting from its value. The running statistics move as the CPU module's do.
TEST_F(CudaBatchNorm, ModuleCountsTrainingBatches) {
  Tensor x = host_random({3, 5, 4, 6}, 31, -1, 2);
  nn::BatchNorm2d cpu(6), gpu(6);
  gpu.to(kGpu);
  ASSERT_TRUE(gpu.running_mean.device().is_cuda());
  Tensor gx = x.to(kGpu);
  auto both = [&] {  // one forward of each module on the same batch
    cpu(x);
    gpu(gx);
  };
  both();
  both();
  EXPECT_EQ(gpu.num_batches_tracked.item(), 2.0);
  EXPECT_EQ(gpu.num_batches_tracked.item(), cpu.num_batches_tracked.item());
  gpu.eval();
  cpu.eval();
  both();
  EXPECT_EQ(gpu.num_batches_tracked.item(), 2.0);  // eval does not count

  gpu.train();
  cpu.train();
  gpu.num_batches_tracked = Tensor::full({}, 40, DType::Int64).to(kGpu);
  ASSERT_TRUE(gpu.num_batches_tracked.device().is_cuda());
  Tensor handle = gpu.state_dict().at("num_batches_tracked");  // shares the slot's TensorImpl
  both();
  EXPECT_EQ(gpu.num_batches_tracked.item(), 41.0);
  EXPECT_TRUE(gpu.num_batches_tracked.device().is_cpu());  // back on the host, in place:
  EXPECT_EQ(handle.item(), 41.0);                          // an earlier handle sees it
  both();
  EXPECT_EQ(gpu.state_dict().at("num_batches_tracked").item(), 42.0);
  EXPECT_EQ(cpu.num_batches_tracked.item(), 4.0);
  EXPECT_TRUE(testing_util::all_close(gpu.running_mean, cpu.running_mean, 1e-5, 1e-6));
  EXPECT_TRUE(testing_util::all_close(gpu.running_var, cpu.running_var, 1e-5, 1e-6));
}

}  // namespace
}  // namespace cuda_test
