// engine/cuda/allocator.h — the caching device allocator behind every CUDA tensor.
//
// cudaMalloc and cudaFree are slow (tens of microseconds, and cudaFree synchronises the whole
// device), while a training step frees and re-allocates the same sizes every iteration. So a
// freed block goes to a free list keyed by its size and the next request of that size class
// takes it back without a CUDA call:
//   - sizes round up to 512 B below 1 MiB and to 2 MiB above, so nearby requests share a
//     class; a cached block is reused for a request it exceeds by at most a quarter;
//   - reuse is stream-ordered: all engine work runs on the one compute stream
//     (kernels::cuda::stream()), so a block freed while kernels that read it are still queued
//     is only handed to work queued after them — no event or sync is needed;
//   - out of memory: the free lists are returned to the driver (cudaFree) and the request is
//     retried once before failing with a message that says what was asked and what is held;
//   - ENGINE_CUDA_NO_CACHE=1 allocates exact sizes and frees at once (after syncing the
//     stream), so compute-sanitizer sees every allocation as its own and every overrun;
//     ENGINE_CUDA_POISON=1 (or set_poison) fills every block
//     handed out with 0xFF bytes (NaN in float32/float64), so tests catch unwritten outputs.
// Thread-safe (one mutex): tensors may be freed from any thread.
#pragma once

#include <cstddef>
#include <map>
#include <mutex>
#include <unordered_map>

#include "engine/cuda/runtime.h"

namespace engine::cuda {

class CachingAllocator {
 public:
  CachingAllocator();  // reads ENGINE_CUDA_NO_CACHE and ENGINE_CUDA_POISON
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  // A device block of at least nbytes (nbytes may be 0). Throws engine::Error when the
  // device is out of memory even after emptying the cache.
  void* allocate(size_t nbytes);
  // Returns a block from allocate(). Never throws (it runs in destructors): problems are
  // printed to stderr.
  void release(void* ptr);
  // Gives every cached (free) block back to the driver.
  void empty_cache();

  MemoryStats stats();
  void reset_peak();
  bool caching() const { return caching_; }
  void set_poison(bool on);

  // The size class of a request: what a block serving it really occupies.
  static size_t round_size(size_t nbytes);

 private:
  void* device_malloc(size_t bytes);  // cudaMalloc with one empty-the-cache retry
  void free_cached_locked();

  std::mutex mu_;
  bool caching_ = true;
  bool poison_ = false;
  std::unordered_map<void*, size_t> live_;  // handed-out block -> its rounded size
  std::multimap<size_t, void*> free_;       // cached blocks by rounded size
  MemoryStats stats_;
};

// The process-wide allocator (created on first use, never destroyed: tensors held in statics
// are freed after main returns, possibly after the CUDA runtime has shut down).
CachingAllocator& allocator();

}  // namespace engine::cuda
