// engine/host_cache.h — large host blocks kept for reuse instead of going back to malloc.
//
// A training step frees and re-allocates the same large activations every iteration. glibc
// serves blocks above its mmap threshold with mmap and returns them with munmap, and returns
// the top of its heap to the kernel when enough of it is free; either way the next step's
// block is fresh memory, and every 4 KiB page of it costs a page fault and a zero fill before
// the kernel that writes it can run. When nothing else allocates, glibc's heuristics settle
// after the first step and reuse works; when other code shares the process (the data loader's
// threads, LibTorch in the paired benchmark) they do not: measured 2026-11-26 on the 2-core
// build machine, each ResNet-50 training step (batch 8) took 70-80k page faults and 0.1-0.3 s
// of system time in the paired benchmark, against none once this cache keeps the blocks.
//
// The policy (the block mechanics are engine/block_pool.h's, shared with the CUDA allocator):
//   - requests of at least kMinCachedBytes (1 MiB) and at most an eighth of the limit come
//     from the pool: segments of 20 MiB (a request of 10 MiB or more: its own size, rounded up
//     to 2 MiB) split into blocks of whole kGranule (4 KiB) pages; a freed block merges with
//     its free neighbours and serves any later request it covers, so an early, large
//     activation's memory also serves the smaller ones after it (ResNet-18 inference, batch 8:
//     peak 215 MB when freed blocks were only reused for requests of about their size);
//   - smaller requests go straight to malloc/free (glibc keeps those in its own bins), and so do
//     larger ones: a block that big is usually a one-off (a bank of embeddings being built, a
//     checkpoint being read) that would otherwise stay resident unused;
//   - at most limit() free bytes stay mapped (an eighth of physical memory, at most 4 GiB;
//     ENGINE_CPU_CACHE_MB overrides): beyond it, whole free segments go back to malloc, the
//     largest first (free space inside a segment that is partly in use stays);
//   - a failed allocation gives every whole free segment back and tries once more;
//   - ENGINE_CPU_NO_CACHE=1 turns the cache off, so valgrind sees every block as its own (a
//     use after free in a cached block would go unnoticed); AddressSanitizer builds have it
//     off always.
// Thread-safe (one mutex): tensors are freed from the loader's threads too.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>

#include "engine/block_pool.h"

namespace engine {

struct HostCacheStats {
  size_t cached_bytes = 0;    // free bytes in the pool's segments now
  size_t reserved_bytes = 0;  // bytes in the pool's segments: in use + cached
  int64_t hits = 0;           // pool requests served from free blocks
  int64_t misses = 0;         // pool requests that had to take a new segment from malloc
};

class HostBlockCache {
 public:
  static constexpr size_t kMinCachedBytes = size_t(1) << 20;
  static constexpr size_t kGranule = size_t(4) << 10;  // one page
  static constexpr size_t kAlign = 64;  // one cache line; also what AVX-512 loads like

  HostBlockCache();  // reads ENGINE_CPU_NO_CACHE and ENGINE_CPU_CACHE_MB
  HostBlockCache(bool enabled, size_t limit_bytes);
  HostBlockCache(const HostBlockCache&) = delete;
  HostBlockCache& operator=(const HostBlockCache&) = delete;

  // At least nbytes, 64-byte aligned; throws engine::Error when memory is exhausted.
  void* allocate(size_t nbytes);
  // A block from allocate() with the same nbytes.
  void release(void* ptr, size_t nbytes);
  void empty();  // gives every whole free segment back to malloc

  HostCacheStats stats();
  bool enabled() const { return enabled_; }
  size_t limit() const { return limit_; }
  // What a request of nbytes asks malloc or the pool for: pool sizes round up to whole pages
  // (the block handed out may be up to 1 MiB larger still: a smaller rest is not split off).
  static size_t block_size(size_t nbytes);

 private:
  bool from_pool(size_t nbytes) const;  // a request of this size is served by the pool

  bool enabled_;
  size_t limit_;
  std::mutex mu_;
  BlockPool pool_;
};

// The process-wide cache behind every CPU tensor (never destroyed: tensors held in statics are
// freed after main returns).
HostBlockCache& host_cache();

}  // namespace engine
