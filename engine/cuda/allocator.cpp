#include "engine/cuda/allocator.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "engine/cuda/host_wait.h"
#include "engine/error.h"
#include "kernels/cuda/runtime.h"

namespace engine::cuda {

namespace {

constexpr size_t kSmallGranule = 512;             // below kLargeFrom
constexpr size_t kLargeGranule = 2 << 20;         // 2 MiB, the GPU's large page
constexpr size_t kLargeFrom = 1 << 20;            // 1 MiB
constexpr double kMiB = 1024.0 * 1024.0;

bool env_on(const char* name) {
  const char* v = std::getenv(name);
  return v && *v && std::strcmp(v, "0") != 0;
}

std::string mib(size_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", bytes / kMiB);
  return buf;
}

}  // namespace

CachingAllocator::CachingAllocator()
    : caching_(!env_on("ENGINE_CUDA_NO_CACHE")), poison_(env_on("ENGINE_CUDA_POISON")) {}

size_t CachingAllocator::round_size(size_t nbytes) {
  if (nbytes == 0) return kSmallGranule;  // a real, distinct pointer even for empty tensors
  const size_t g = nbytes < kLargeFrom ? kSmallGranule : kLargeGranule;
  return (nbytes + g - 1) / g * g;
}

void* CachingAllocator::allocate(size_t nbytes) {
  // Without the cache, the exact size: then compute-sanitizer also catches an overrun that
  // would land in a size class's slack.
  const size_t size = caching_ ? round_size(nbytes) : std::max<size_t>(nbytes, 1);
  std::lock_guard<std::mutex> lock(mu_);
  void* ptr = nullptr;
  size_t got = size;
  // The smallest cached block that fits, unless it would waste more than a quarter.
  auto it = free_.lower_bound(size);
  if (it != free_.end() && it->first <= size + size / 4) {
    got = it->first;
    ptr = it->second;
    free_.erase(it);
    ++stats_.cache_hits;
  } else {
    ptr = device_malloc(size);
  }
  live_.emplace(ptr, got);
  stats_.in_use += got;
  if (stats_.in_use > stats_.peak) stats_.peak = stats_.in_use;
  if (poison_) KCUDA_CHECK(cudaMemsetAsync(ptr, 0xFF, got, kernels::cuda::stream()));
  return ptr;
}

void* CachingAllocator::device_malloc(size_t bytes) {
  void* ptr = nullptr;
  cudaError_t status = cudaMalloc(&ptr, bytes);
  if (status == cudaErrorMemoryAllocation && !free_.empty()) {
    cudaGetLastError();  // not sticky; clear it before retrying
    free_cached_locked();
    status = cudaMalloc(&ptr, bytes);
  }
  if (status == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    size_t free_dev = 0, total_dev = 0;
    cudaMemGetInfo(&free_dev, &total_dev);
    fail("CUDA out of memory: asked for ", mib(bytes), " MiB, ", mib(stats_.in_use),
         " MiB in use, ", mib(stats_.reserved), " MiB reserved, ", mib(free_dev),
         " MiB free on device (of ", mib(total_dev),
         " MiB); use a smaller batch or image size, or free tensors that are no longer needed");
  }
  KCUDA_CHECK(status);
  stats_.reserved += bytes;
  ++stats_.device_mallocs;
  return ptr;
}

void CachingAllocator::release(void* ptr) {
  if (!ptr) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = live_.find(ptr);
  if (it == live_.end()) {
    std::fprintf(stderr, "engine: CUDA free of %p, which this allocator did not hand out\n", ptr);
    return;
  }
  const size_t size = it->second;
  live_.erase(it);
  stats_.in_use -= size;
  if (caching_) {
    free_.emplace(size, ptr);
    return;
  }
  // No cache: give it back now. Wait for queued work first, which may still use the block.
  cudaError_t status = wait_for_stream_nothrow();
  if (status == cudaSuccess) status = cudaFree(ptr);
  // At process exit the runtime may be gone already; that is not worth a message.
  if (status != cudaSuccess && status != cudaErrorCudartUnloading)
    std::fprintf(stderr, "engine: cudaFree failed: %s\n", cudaGetErrorString(status));
  stats_.reserved -= size;
}

void CachingAllocator::free_cached_locked() {
  if (free_.empty()) return;
  // Work queued on the stream may still read blocks freed by the host a moment ago.
  wait_for_stream();
  for (auto& [size, ptr] : free_) {
    KCUDA_CHECK(cudaFree(ptr));
    stats_.reserved -= size;
  }
  free_.clear();
}

void CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mu_);
  free_cached_locked();
}

MemoryStats CachingAllocator::stats() {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void CachingAllocator::reset_peak() {
  std::lock_guard<std::mutex> lock(mu_);
  stats_.peak = stats_.in_use;
}

void CachingAllocator::set_poison(bool on) {
  std::lock_guard<std::mutex> lock(mu_);
  poison_ = on;
}

CachingAllocator& allocator() {
  // Deliberately leaked; see the header.
  static CachingAllocator* a = new CachingAllocator();
  return *a;
}

}  // namespace engine::cuda
