// kernels/cuda/labs_common.cuh — the few helpers the hand-written kernel families share
// (depthwise_conv2d.cu, layernorm.cu, gelu.cu, knn.cu): error checks that throw, warp
// reductions, 16-byte alignment tests and a stream-ordered workspace.
//
// These files are "kernel labs" in the sense of llm.c's dev/cuda/: every family keeps all of
// its versions side by side, version 0 is the fastest (the one the engine calls), and none of
// them depends on engine/ or on kernels/cuda/runtime.h, so a family compiles and benchmarks on
// its own (bench/cuda/<family>_bench.cu links just kernels/cuda/<family>.cu). Launch failures
// become std::runtime_error with the op's name; the engine can catch and re-throw them as its
// own error type.
#pragma once

#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <tuple>

namespace kernels::cuda::labs {

inline void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(status));
  }
}

// Kernels launched in this process: check_launch below and the engine's own check_launch
// (kernels/cuda/runtime.cu) both count here; kernels::cuda::launch_count() reads it.
inline std::atomic<uint64_t>& launches() {
  static std::atomic<uint64_t> count{0};
  return count;
}

// After every <<<...>>>: a bad configuration (too much shared memory, grid too large) is
// reported here, naming the kernel; faults inside the kernel surface at the next sync.
inline void check_launch(const char* op) {
  launches().fetch_add(1, std::memory_order_relaxed);
  cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess) {
    throw std::runtime_error(std::string(op) +
                             ": kernel launch failed: " + cudaGetErrorString(status));
  }
}

[[noreturn]] inline void fail(const std::string& message) { throw std::runtime_error(message); }

inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

__host__ __device__ inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Multiprocessors of the current device (asked once per process; the labs assume one device).
inline int sm_count() {
  static int count = [] {
    int dev = 0, n = 0;
    check(cudaGetDevice(&dev), "cudaGetDevice");
    check(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev),
          "cudaDeviceGetAttribute(MultiProcessorCount)");
    return n;
  }();
  return count;
}

// How many blocks of `kernel` fit on the whole GPU at once (at least one per SM): persistent
// grids use exactly this many, so no block waits for a second wave. Asked of the runtime once
// per (kernel, block size, shared memory): launchers call this on every launch, and a training
// step launches the same few dozen shapes hundreds of times.
inline int resident_blocks(const void* kernel, int threads, size_t dynamic_smem) {
  static std::mutex mu;
  static std::map<std::tuple<const void*, int, size_t>, int> known;
  const auto key = std::make_tuple(kernel, threads, dynamic_smem);
  std::lock_guard<std::mutex> lock(mu);
  if (auto it = known.find(key); it != known.end()) return it->second;
  int per_sm = 0;
  check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, dynamic_smem),
        "cudaOccupancyMaxActiveBlocksPerMultiprocessor");
  return known[key] = sm_count() * (per_sm > 0 ? per_sm : 1);
}

// A temporary device buffer for split reductions. When the caller passes its own workspace
// (the engine hands out blocks of its caching allocator) that one is used; otherwise it is
// taken with cudaMallocAsync on the same stream and given back, stream-ordered, on scope exit.
class Workspace {
 public:
  Workspace(void* given, size_t nbytes, cudaStream_t stream) : stream_(stream) {
    if (given != nullptr || nbytes == 0) {
      ptr_ = given;
    } else {
      check(cudaMallocAsync(&ptr_, nbytes, stream), "cudaMallocAsync(workspace)");
      owned_ = true;
    }
  }
  ~Workspace() {
    if (owned_) cudaFreeAsync(ptr_, stream_);  // cannot throw from a destructor
  }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  template <class T>
  T* as(size_t byte_offset = 0) const {
    return reinterpret_cast<T*>(static_cast<char*>(ptr_) + byte_offset);
  }

 private:
  void* ptr_ = nullptr;
  cudaStream_t stream_;
  bool owned_ = false;
};

// Round a byte count up to 256 so that sub-buffers carved from one workspace stay aligned.
inline size_t align256(size_t n) { return (n + 255) / 256 * 256; }

#if defined(__CUDACC__)
// Sum / max over the `width` lanes of a group (width a power of two <= 32, groups aligned):
// xor-shuffles never leave the group because every offset is < width. The same additions in
// the same order every run, and every lane ends with the same sum (a + b == b + a exactly).
template <int width = 32, class T>
__device__ __forceinline__ T group_sum(T v) {
#pragma unroll
  for (int o = width / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o, width);
  return v;
}
template <class T>
__device__ __forceinline__ T warp_sum(T v) {
  return group_sum<32>(v);
}
#endif

}  // namespace kernels::cuda::labs
