// The CUDA runtime's controls and error paths: no device, a device index we do not drive,
// the our-kernel-or-vendor switch, synchronous mode, the device description.
#include <cstdlib>
#include <string>

#include "tests/cuda/cuda_util.h"

namespace cuda_test {
namespace {

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// Runs only where there is no GPU (CI): CUDA tensors fail with an actionable message, and
// asking whether CUDA is there never throws.
TEST(CudaWithoutDevice, CreatingATensorSaysNoDeviceIsVisible) {
  if (engine::cuda_available()) GTEST_SKIP() << "a CUDA device is visible";
  try {
    Tensor t = Tensor::zeros({3}, DType::Float32, kGpu);
    FAIL() << "a CUDA tensor was created without a device";
  } catch (const engine::Error& e) {
    EXPECT_TRUE(contains(e.what(), "no CUDA device is visible")) << e.what();
    EXPECT_TRUE(contains(e.what(), "device cpu")) << e.what();
  }
  EXPECT_TRUE(contains(engine::cuda::device_description(), "no CUDA device"));
  EXPECT_NO_THROW(engine::cuda::synchronize());
}

// Host-side state only: runs with or without a GPU.
TEST(CudaImplSwitch, SetByNameAndRejectUnknownNames) {
  const auto saved = engine::cuda::impl(engine::cuda::Family::Gemm);
  engine::cuda::set_impl("gemm", "ours");
  EXPECT_EQ(engine::cuda::impl(engine::cuda::Family::Gemm), engine::cuda::Impl::Ours);
  engine::cuda::set_impl("GEMM", "vendor");
  EXPECT_EQ(engine::cuda::impl(engine::cuda::Family::Gemm), engine::cuda::Impl::Vendor);
  try {
    engine::cuda::set_impl("convolution", "ours");
    FAIL() << "unknown family accepted";
  } catch (const engine::Error& e) {
    EXPECT_TRUE(contains(e.what(), "unknown op family 'convolution' (known: gemm")) << e.what();
  }
  EXPECT_THROW(engine::cuda::set_impl("gemm", "fastest"), engine::Error);
  engine::cuda::set_impl(engine::cuda::Family::Gemm, saved);
}

// cuDNN's batch-norm mode switch: SPATIAL_PERSISTENT unless ENGINE_CUDNN_BN_PERSISTENT=0, and
// set_cudnn_bn_persistent overrides it. Host-side state only.
TEST(CudaImplSwitch, CudnnBatchNormModeDefaultsToPersistent) {
  const char* env = std::getenv("ENGINE_CUDNN_BN_PERSISTENT");
  const bool saved = engine::cuda::cudnn_bn_persistent();
  if (env == nullptr || *env == '\0') {
    EXPECT_TRUE(saved) << "the default is the persistent mode";
  }
  engine::cuda::set_cudnn_bn_persistent(false);
  EXPECT_FALSE(engine::cuda::cudnn_bn_persistent());
  engine::cuda::set_cudnn_bn_persistent(true);
  EXPECT_TRUE(engine::cuda::cudnn_bn_persistent());
  engine::cuda::set_cudnn_bn_persistent(saved);
}

// The command line's --kernels / --tf32 (engine/device.h): every family at once, "default"
// leaves them as they are, the summary says what is set. Host-side state only.
TEST(CudaImplSwitch, GpuKernelsChoiceSetsEveryFamily) {
  using engine::cuda::Family;
  std::vector<engine::cuda::Impl> saved;
  for (int f = 0; f < int(Family::kCount); ++f) saved.push_back(engine::cuda::impl(Family(f)));
  engine::cuda::set_impl(Family::Gemm, engine::cuda::Impl::Vendor);
  engine::set_gpu_kernels("ours");
  for (int f = 0; f < int(Family::kCount); ++f)
    EXPECT_EQ(engine::cuda::impl(Family(f)), engine::cuda::Impl::Ours) << f;
  engine::set_gpu_kernels("vendor");
  engine::set_gpu_kernels("default");  // leaves them
  for (int f = 0; f < int(Family::kCount); ++f)
    EXPECT_EQ(engine::cuda::impl(Family(f)), engine::cuda::Impl::Vendor) << f;
  engine::set_gpu_tf32(true);
  EXPECT_TRUE(contains(engine::gpu_kernels_summary(), "GEMM=vendor"))
      << engine::gpu_kernels_summary();
  EXPECT_TRUE(contains(engine::gpu_kernels_summary(), "TF32=on"));
  engine::set_gpu_tf32(false);
  const bool benchmark = engine::cuda::cudnn_benchmark();  // ENGINE_CUDNN_BENCHMARK's
  engine::set_gpu_cudnn_benchmark(false);
  EXPECT_FALSE(contains(engine::gpu_kernels_summary(), "cudnn_benchmark"));
  engine::set_gpu_cudnn_benchmark(true);
  EXPECT_TRUE(engine::cuda::cudnn_benchmark());
  EXPECT_TRUE(contains(engine::gpu_kernels_summary(), "cudnn_benchmark=on"));
  engine::set_gpu_cudnn_benchmark(false);
  EXPECT_FALSE(engine::cuda::cudnn_benchmark());
  engine::set_gpu_cudnn_benchmark(benchmark);
  EXPECT_THROW(engine::set_gpu_kernels("fastest"), engine::Error);
  for (int f = 0; f < int(Family::kCount); ++f) engine::cuda::set_impl(Family(f), saved[f]);
}

using CudaRuntime = CudaTest;

TEST_F(CudaRuntime, OnlyCuda0IsDriven) {
  try {
    Tensor t = Tensor::zeros({3}, DType::Float32, engine::Device::cuda(1));
    FAIL() << "cuda:1 accepted";
  } catch (const engine::Error& e) {
    EXPECT_TRUE(contains(e.what(), "CUDA_VISIBLE_DEVICES=1")) << e.what();
  }
}

TEST_F(CudaRuntime, SynchronousModeRunsOpsAndReportsNothingWhenAllIsWell) {
  engine::cuda::set_sync_after_launch(true);
  Tensor x = host_random({513, 7}, 3);
  Tensor got = engine::sum(engine::relu(engine::matmul(x.to(kGpu), x.to(kGpu).transpose(0, 1))));
  Tensor ref = engine::sum(engine::relu(engine::matmul(x, x.transpose(0, 1))));
  engine::cuda::set_sync_after_launch(false);
  EXPECT_TRUE(testing_util::all_close(got, ref, 1e-5, 1e-3));
}

// The launch counters the GPU benchmark reads per step: an elementwise op is one kernel of ours
// (launch_count), a GEMM on our kernel launches and calls no library, a GEMM on cuBLAS is one
// library call (library_call_count).
TEST_F(CudaRuntime, CountsKernelLaunchesAndLibraryCalls) {
  Tensor a = host_random({33, 17}, 5).to(kGpu), b = host_random({17, 9}, 6).to(kGpu);
  uint64_t launches = engine::cuda::launch_count(), calls = engine::cuda::library_call_count();
  Tensor sum = engine::add(a, a);
  EXPECT_GE(engine::cuda::launch_count(), launches + 1);
  EXPECT_EQ(engine::cuda::library_call_count(), calls);
  const auto saved = engine::cuda::impl(engine::cuda::Family::Gemm);
  engine::cuda::set_impl(engine::cuda::Family::Gemm, engine::cuda::Impl::Ours);
  launches = engine::cuda::launch_count();
  Tensor ours = engine::matmul(a, b);
  EXPECT_GE(engine::cuda::launch_count(), launches + 1);
  EXPECT_EQ(engine::cuda::library_call_count(), calls);
  if (!emulated()) {  // cuBLAS exists
    engine::cuda::set_impl(engine::cuda::Family::Gemm, engine::cuda::Impl::Vendor);
    Tensor theirs = engine::matmul(a, b);
    EXPECT_EQ(engine::cuda::library_call_count(), calls + 1);
  }
  engine::cuda::set_impl(engine::cuda::Family::Gemm, saved);
}

TEST_F(CudaRuntime, DescribesTheDevice) {
  const std::string d = engine::cuda::device_description();
  EXPECT_TRUE(contains(d, "(sm_")) << d;
  EXPECT_TRUE(contains(d, " SMs, ")) << d;
  EXPECT_NE(engine::cuda::stream(), nullptr);
}

}  // namespace
}  // namespace cuda_test
