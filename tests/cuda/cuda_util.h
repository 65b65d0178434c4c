// tests/cuda/cuda_util.h — what the CUDA tests share: a fixture that skips without a GPU and
// poisons device memory, and helpers to make inputs on the host and move them over.
//
// Every CUDA result is compared with the CPU implementation on the same inputs (the CPU
// kernels are the reference, tested against naive float64 loops in tests/engine/). Each new
// device block is filled with NaN bytes while a test runs (engine::cuda::set_poison), so an
// output element a kernel forgot to write shows up as NaN instead of a lucky zero.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "engine/cuda/runtime.h"
#include "engine/engine.h"
#include "tests/common/check.h"

namespace cuda_test {

using engine::DType;
using engine::Shape;
using engine::Tensor;

inline const engine::Device kGpu = engine::Device::cuda(0);

// True when these tests run on tools/cuda_emu, the CPU emulator of CUDA threads (CTest names
// "emu.engine.*", label emu), instead of a GPU. There only our kernels exist: cuBLAS and cuDNN
// are stubs whose every call fails, so every family starts on ours there and a test
// of the vendor's path skips with SKIP_WITHOUT_VENDOR_LIBRARIES().
constexpr bool emulated() {
#if defined(ENGINE_CUDA_EMULATED)
  return true;
#else
  return false;
#endif
}

#define SKIP_WITHOUT_VENDOR_LIBRARIES()                                                  \
  do {                                                                                   \
    if (::cuda_test::emulated())                                                         \
      GTEST_SKIP() << "cuBLAS and cuDNN are not emulated (tools/cuda_emu runs our kernels " \
                      "only); this test runs on a GPU";                                  \
  } while (0)

// The implementations a test that loops over both can run here: ours, and the vendor's on a GPU.
inline std::vector<engine::cuda::Impl> available_impls() {
  if (emulated()) return {engine::cuda::Impl::Ours};
  return {engine::cuda::Impl::Ours, engine::cuda::Impl::Vendor};
}

inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

class CudaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!engine::cuda_available()) GTEST_SKIP() << "no CUDA device visible";
    engine::cuda::set_poison(true);
    // The float32 tolerances assume FMA math: ENGINE_CUDA_TF32=1 in the environment must not
    // turn the TF32 tensor cores on under them.
    engine::cuda::set_tf32(false);
  }
  void TearDown() override {
    if (!engine::cuda_available()) return;
    engine::cuda::synchronize();  // a fault in this test's kernels fails this test
    engine::cuda::set_poison(false);
  }
};

// Uniform in [low, high), drawn in float64 then converted, on the CPU.
inline Tensor host_random(const Shape& shape, uint64_t seed, double low = -1, double high = 1,
                          DType dtype = DType::Float32) {
  return testing_util::random(shape, seed, low, high).to(dtype);
}

// Small integers in [-range, range] as `dtype`: sums and products of these are exact, so
// GPU and CPU results must agree bit for bit whatever the order of operations.
inline Tensor host_integers(const Shape& shape, uint64_t seed, int range,
                            DType dtype = DType::Float32) {
  std::vector<double> v = testing_util::random(shape, seed, -range - 0.5, range + 0.5).to_vector();
  for (double& x : v) x = std::round(x);
  return Tensor::from_vector(v, shape).to(dtype);
}

// A device output buffer full of NaN (-1 for int64), for direct kernel calls.
inline Tensor poisoned(const Shape& shape, DType dtype = DType::Float32) {
  return Tensor::full(shape, dtype == DType::Int64 ? -1.0 : kNaN, dtype, kGpu);
}

// Bit-exact equality, NaN equal to NaN (for copies, and for ops whose arithmetic is exact).
inline ::testing::AssertionResult same_values(const Tensor& got, const Tensor& ref) {
  if (got.shape() != ref.shape())
    return ::testing::AssertionFailure() << "shape " << engine::cat(got.shape()) << " vs "
                                         << engine::cat(ref.shape());
  std::vector<double> g = got.to_vector(), r = ref.to_vector();
  for (size_t i = 0; i < g.size(); ++i) {
    const bool both_nan = std::isnan(g[i]) && std::isnan(r[i]);
    if (!both_nan && g[i] != r[i])
      return ::testing::AssertionFailure() << "element " << i << ": got " << g[i]
                                           << ", expected " << r[i];
  }
  return ::testing::AssertionSuccess();
}

// Tolerances for results of transcendental functions: CUDA's expf/logf/tanhf/powf are within
// 2 ulp (float: 2.4e-7 relative) of exact, the host's libm within 1; double within 2 ulp
// (4.4e-16). Derivatives such as 1 - tanh(x)^2 turn y's absolute error into an absolute (not
// relative) error of the same size, hence the atol: values here are O(1).
inline double ulp_rtol(DType t) { return t == DType::Float32 ? 2e-6 : 1e-14; }
inline double ulp_atol(DType t) { return t == DType::Float32 ? 1e-6 : 1e-14; }

}  // namespace cuda_test
