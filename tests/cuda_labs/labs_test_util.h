// tests/cuda_labs/labs_test_util.h — what the kernel-lab tests share: skipping without a GPU,
// an RAII device buffer, seeded random inputs and an elementwise closeness check.
//
// Every test runs EVERY version of a family on awkward shapes against a float64 host reference
// written plainly in the test, with outputs poisoned (NaN) before each launch so an element a
// kernel forgets to write fails the check.
#pragma once

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace labs_test {

// True when these tests are built for the CPU emulator (tools/cuda_emu, tests/cuda_emu/, CTest
// label emu) instead of a GPU. There every CUDA thread is a CPU fiber, about a million times
// slower than a GPU: a test may then use fewer or smaller shapes, keeping the awkward ones
// (odd sizes, tails, misaligned pointers) and every version.
constexpr bool emulated() {
#if defined(LABS_CUDA_EMULATED)
  return true;
#else
  return false;
#endif
}

inline bool cuda_device_visible() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

#define LABS_SKIP_WITHOUT_CUDA()                \
  do {                                          \
    if (!::labs_test::cuda_device_visible()) {  \
      GTEST_SKIP() << "no CUDA device visible"; \
    }                                           \
  } while (0)

inline void cuda_ok(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

// A device array of T that frees itself. `extra` leading elements let a test hand a kernel a
// pointer that is deliberately not 16-byte aligned (data() + 1).
template <class T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t n) : n_(n) {
    cuda_ok(cudaMalloc(reinterpret_cast<void**>(&ptr_), (n + 4) * sizeof(T)), "cudaMalloc");
  }
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) { upload(host); }
  ~DeviceBuffer() { cudaFree(ptr_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* data() { return ptr_; }
  const T* data() const { return ptr_; }
  size_t size() const { return n_; }
  void upload(const std::vector<T>& host, size_t offset = 0) {
    cuda_ok(cudaMemcpy(ptr_ + offset, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice),
            "cudaMemcpy H2D");
  }
  std::vector<T> download(size_t count = size_t(-1), size_t offset = 0) const {
    std::vector<T> host(count == size_t(-1) ? n_ : count);
    cuda_ok(cudaDeviceSynchronize(), "kernel execution");
    cuda_ok(cudaMemcpy(host.data(), ptr_ + offset, host.size() * sizeof(T), cudaMemcpyDeviceToHost),
            "cudaMemcpy D2H");
    return host;
  }
  // All bytes 0xFF: a float NaN, an int64 -1 — whatever a kernel leaves unwritten shows.
  void poison() { cuda_ok(cudaMemset(ptr_, 0xFF, (n_ + 4) * sizeof(T)), "cudaMemset"); }

 private:
  T* ptr_ = nullptr;
  size_t n_ = 0;
};

// Uniform in [low, high).
inline std::vector<float> random_floats(size_t n, uint64_t seed, float low = -1.f,
                                        float high = 1.f) {
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<float> dist(low, high);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(gen);
  return v;
}

// Small integers in [low, high]: products and short sums are exact in float32, so a fast kernel
// must match the reference bit for bit whatever its summation order.
inline std::vector<float> random_ints(size_t n, uint64_t seed, int low = -3, int high = 3) {
  std::mt19937_64 gen(seed);
  std::uniform_int_distribution<int> dist(low, high);
  std::vector<float> v(n);
  for (auto& x : v) x = float(dist(gen));
  return v;
}

inline std::vector<double> to_double(const std::vector<float>& v) {
  return std::vector<double>(v.begin(), v.end());
}

// The same float bit patterns, element for element (two versions that must agree exactly).
inline ::testing::AssertionResult bitwise_equal(const std::vector<float>& got,
                                                const std::vector<float>& want) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << "size " << got.size() << " vs " << want.size();
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < got.size(); ++i)
    if (std::memcmp(&got[i], &want[i], sizeof(float)) != 0 && bad++ == 0) first = i;
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << got.size()
                                       << " elements differ; first at " << first << ": "
                                       << got[first] << " vs " << want[first];
}

// |got - ref| <= atol + rtol * |ref| for every element (NaN in got always fails); reports the
// count of failures and the worst element.
inline ::testing::AssertionResult close(const std::vector<float>& got,
                                        const std::vector<double>& ref, double rtol, double atol,
                                        const std::string& what) {
  if (got.size() != ref.size()) {
    return ::testing::AssertionFailure() << what << ": size " << got.size() << " vs " << ref.size();
  }
  size_t bad = 0, worst = 0;
  double worst_excess = -1;
  for (size_t i = 0; i < got.size(); ++i) {
    double err = std::fabs(double(got[i]) - ref[i]);
    double allowed = atol + rtol * std::fabs(ref[i]);
    bool ok = err <= allowed;  // false for NaN
    if (!ok) {
      ++bad;
      double excess = std::isnan(err) ? 1e300 : err - allowed;
      if (excess > worst_excess) worst_excess = excess, worst = i;
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << what << ": " << bad << " of " << got.size() << " elements off; worst at " << worst
         << ": got " << got[worst] << ", expected " << ref[worst] << " (rtol " << rtol << ", atol "
         << atol << ")";
}

}  // namespace labs_test
