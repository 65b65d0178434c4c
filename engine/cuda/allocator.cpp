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

constexpr size_t kGranule = 512;
constexpr size_t kMiB = size_t(1) << 20;
constexpr size_t kSmallRequest = kMiB;  // up to this: the small pool

// Small requests share 2 MiB segments; a rest of one granule is worth splitting off.
BlockPool::Policy small_policy() {
  return {kGranule, kGranule, [](size_t bytes) { return std::max(bytes, 2 * kMiB); }};
}

// Large requests: 20 MiB segments below 10 MiB, else a segment of their own rounded up to
// 2 MiB (the GPU's large page); rests under 1 MiB stay with their block (a rest that small
// would only ever serve the small pool's requests).
BlockPool::Policy large_policy() {
  return {kGranule, kMiB, [](size_t bytes) {
            if (bytes < 10 * kMiB) return 20 * kMiB;
            return (bytes + 2 * kMiB - 1) / (2 * kMiB) * (2 * kMiB);
          }};
}

bool env_on(const char* name) {
  const char* v = std::getenv(name);
  return v && *v && std::strcmp(v, "0") != 0;
}

std::string mib(size_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", bytes / double(kMiB));
  return buf;
}

void cuda_free_nothrow(void* ptr) {
  const cudaError_t status = cudaFree(ptr);
  // At process exit the runtime may be gone already; that is not worth a message.
  if (status != cudaSuccess && status != cudaErrorCudartUnloading)
    std::fprintf(stderr, "engine: cudaFree failed: %s\n", cudaGetErrorString(status));
}

}  // namespace

CachingAllocator::CachingAllocator()
    : caching_(!env_on("ENGINE_CUDA_NO_CACHE")),
      poison_(env_on("ENGINE_CUDA_POISON")),
      small_(small_policy(), device_source()),
      large_(large_policy(), device_source()) {}

BlockPool::Source CachingAllocator::device_source() {
  return {[this](size_t bytes) { return device_malloc(bytes); },
          [](void* ptr, size_t) { cuda_free_nothrow(ptr); }};
}

size_t CachingAllocator::round_size(size_t nbytes) {
  // At least one granule: a real, distinct pointer even for empty tensors.
  return std::max<size_t>((nbytes + kGranule - 1) / kGranule, 1) * kGranule;
}

void* CachingAllocator::allocate(size_t nbytes) {
  std::lock_guard<std::mutex> lock(mu_);
  void* ptr = nullptr;
  size_t size = 0;
  if (caching_) {
    size = round_size(nbytes);
    BlockPool& pool = size <= kSmallRequest ? small_ : large_;
    ptr = pool.allocate(size);
    if (ptr == nullptr) {  // out of memory: give the free segments back, try once more
      unmap_free_segments_locked();
      ptr = pool.allocate(size);
    }
  } else {
    // The exact size: then compute-sanitizer also catches an overrun that would land in a
    // block's rounding.
    size = std::max<size_t>(nbytes, 1);
    ptr = device_malloc(size);
    if (ptr != nullptr) {
      exact_.emplace(ptr, size);
      exact_stats_.in_use += size;
      exact_stats_.reserved += size;
      ++exact_stats_.device_mallocs;
    }
  }
  const MemoryStats now = stats_locked();
  if (ptr == nullptr) {
    size_t free_dev = 0, total_dev = 0;
    cudaMemGetInfo(&free_dev, &total_dev);
    fail("CUDA out of memory: asked for ", mib(size), " MiB, ", mib(now.in_use),
         " MiB in use, ", mib(now.reserved), " MiB reserved, ", mib(free_dev),
         " MiB free on device (of ", mib(total_dev),
         " MiB); use a smaller batch or image size, or free tensors that are no longer needed");
  }
  peak_ = std::max(peak_, now.in_use);
  if (poison_) KCUDA_CHECK(cudaMemsetAsync(ptr, 0xFF, size, kernels::cuda::stream()));
  return ptr;
}

void* CachingAllocator::device_malloc(size_t bytes) {
  void* ptr = nullptr;
  const cudaError_t status = cudaMalloc(&ptr, bytes);
  if (status == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // not sticky; clear it
    return nullptr;
  }
  KCUDA_CHECK(status);
  return ptr;
}

void CachingAllocator::release(void* ptr) {
  if (!ptr) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (caching_) {
    if (small_.release(ptr) == 0 && large_.release(ptr) == 0)
      std::fprintf(stderr, "engine: CUDA free of %p, which this allocator did not hand out\n", ptr);
    return;
  }
  auto it = exact_.find(ptr);
  if (it == exact_.end()) {
    std::fprintf(stderr, "engine: CUDA free of %p, which this allocator did not hand out\n", ptr);
    return;
  }
  const size_t size = it->second;
  exact_.erase(it);
  // No cache: give it back now. Wait for queued work first, which may still use the block.
  const cudaError_t status = wait_for_stream_nothrow();
  if (status == cudaSuccess) {
    cuda_free_nothrow(ptr);
  } else if (status != cudaErrorCudartUnloading) {
    std::fprintf(stderr, "engine: CUDA error before a free: %s\n", cudaGetErrorString(status));
  }
  exact_stats_.in_use -= size;
  exact_stats_.reserved -= size;
}

void CachingAllocator::unmap_free_segments_locked() {
  if (small_.stats().free_bytes() + large_.stats().free_bytes() == 0) return;
  // Work queued on the stream may still read blocks freed by the host a moment ago.
  wait_for_stream();
  small_.unmap_free_segments();
  large_.unmap_free_segments();
}

MemoryStats CachingAllocator::stats_locked() const {
  MemoryStats s = exact_stats_;  // without the cache, allocate and release keep these
  if (caching_) {                // with it, the pools know
    const BlockPoolStats& sp = small_.stats();
    const BlockPoolStats& lp = large_.stats();
    s.in_use = sp.allocated + lp.allocated;
    s.reserved = sp.reserved + lp.reserved;
    s.device_mallocs = size_t(sp.segments_mapped + lp.segments_mapped);
    s.cache_hits = size_t(sp.hits + lp.hits);
  }
  s.peak = peak_;
  return s;
}

void CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mu_);
  unmap_free_segments_locked();
}

MemoryStats CachingAllocator::stats() {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_locked();
}

void CachingAllocator::reset_peak() {
  std::lock_guard<std::mutex> lock(mu_);
  peak_ = stats_locked().in_use;
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
