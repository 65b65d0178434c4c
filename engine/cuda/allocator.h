// engine/cuda/allocator.h — the caching device allocator behind every CUDA tensor.
//
// cudaMalloc and cudaFree are slow (tens of microseconds, and cudaFree synchronises the whole
// device), while a training step frees and re-allocates the same sizes every iteration. So
// device memory is taken from the driver in segments and handed out as blocks of them by
// engine/block_pool.h (best fit, split, merged again when freed), as PyTorch's CUDA caching
// allocator does:
//   - sizes round up to 512 B; requests up to 1 MiB come from 2 MiB segments of their own
//     pool (so small tensors do not fragment the large segments), larger ones from 20 MiB
//     segments, or from a segment of their own (rounded up to 2 MiB) from 10 MiB up; a free
//     rest is split off when it is at least 512 B (small pool) or 1 MiB (large pool);
//   - reuse is stream-ordered: all engine work runs on the one compute stream
//     (kernels::cuda::stream()), so a block freed while kernels that read it are still queued
//     is only handed to work queued after them — no event or sync is needed;
//   - out of memory: the whole free segments are returned to the driver (cudaFree) and the
//     request is retried once before failing with a message that says what was asked and
//     what is held;
//   - ENGINE_CUDA_NO_CACHE=1 allocates exact sizes and frees at once (after syncing the
//     stream), so compute-sanitizer sees every allocation as its own and every overrun;
//     ENGINE_CUDA_POISON=1 (or set_poison) fills every block
//     handed out with 0xFF bytes (NaN in float32/float64), so tests catch unwritten outputs.
// Thread-safe (one mutex): tensors may be freed from any thread.
#pragma once

#include <cstddef>
#include <mutex>
#include <unordered_map>

#include "engine/block_pool.h"
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
  // Gives every wholly free segment back to the driver.
  void empty_cache();

  MemoryStats stats();
  void reset_peak();
  bool caching() const { return caching_; }
  void set_poison(bool on);

  // What a request occupies in the statistics: nbytes rounded up to 512 B (a cached block
  // may be a little larger still, see block_pool.h's min_split).
  static size_t round_size(size_t nbytes);

 private:
  BlockPool::Source device_source();  // cudaMalloc / cudaFree, for the pools
  void* device_malloc(size_t bytes);  // cudaMalloc; nullptr when the device is out of memory
  void unmap_free_segments_locked();  // waits for the stream, then cudaFree's whole free segments
  MemoryStats stats_locked() const;   // from the pools (caching on) or exact_stats_

  std::mutex mu_;
  bool caching_ = true;
  bool poison_ = false;
  BlockPool small_, large_;                   // requests up to / above 1 MiB (caching on)
  std::unordered_map<void*, size_t> exact_;   // caching off: each block's exact size
  MemoryStats exact_stats_;                   // caching off: what exact_ holds
  size_t peak_ = 0;                           // highest in_use since start or reset_peak
};

// The process-wide allocator (created on first use, never destroyed: tensors held in statics
// are freed after main returns, possibly after the CUDA runtime has shut down).
CachingAllocator& allocator();

}  // namespace engine::cuda
