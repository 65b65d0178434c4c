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
// The policy, as the CUDA allocator's (engine/cuda/allocator.h) but for host memory:
//   - blocks of at least kMinCachedBytes (1 MiB) and at most an eighth of the limit are
//     rounded up to 64 KiB and, when freed, kept on a free list by size; smaller ones go
//     straight to malloc/free (glibc keeps those in its own bins), and so do larger ones: a
//     block that big is usually a one-off (a bank of embeddings being built, a checkpoint
//     being read) that would otherwise stay resident unused;
//   - a request takes the smallest cached block that fits, if it exceeds the request by at
//     most a sixteenth (a 4 MiB request does not pin a 1 GiB block); blocks are not split,
//     which costs some peak memory where glibc would carve a small request out of a freed
//     large block (ResNet-50 training, batch 8: 1.46 GB peak against 1.35 GB without it);
//   - at most limit() bytes stay cached (an eighth of physical memory, at most 4 GiB;
//     ENGINE_CPU_CACHE_MB overrides): a freed block is kept and, beyond the limit, the
//     largest of the blocks cached before it are freed to make room;
//   - a failed allocation frees the whole cache and tries once more;
//   - ENGINE_CPU_NO_CACHE=1 turns the cache off, so valgrind sees every block as its own (a
//     use after free in a cached block would go unnoticed); AddressSanitizer builds have it
//     off always.
// Thread-safe (one mutex): tensors are freed from the loader's threads too.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>

namespace engine {

struct HostCacheStats {
  size_t cached_bytes = 0;  // held on the free lists now
  int64_t hits = 0;         // requests served from the free lists
  int64_t misses = 0;       // cacheable requests that went to malloc
};

class HostBlockCache {
 public:
  static constexpr size_t kMinCachedBytes = size_t(1) << 20;
  static constexpr size_t kGranule = size_t(64) << 10;
  static constexpr size_t kAlign = 64;  // one cache line; also what AVX-512 loads like

  HostBlockCache();  // reads ENGINE_CPU_NO_CACHE and ENGINE_CPU_CACHE_MB
  HostBlockCache(bool enabled, size_t limit_bytes);
  ~HostBlockCache();
  HostBlockCache(const HostBlockCache&) = delete;
  HostBlockCache& operator=(const HostBlockCache&) = delete;

  // At least nbytes, 64-byte aligned; throws engine::Error when memory is exhausted.
  void* allocate(size_t nbytes);
  // A block from allocate() with the same nbytes.
  void release(void* ptr, size_t nbytes);
  void empty();  // frees every cached block

  HostCacheStats stats();
  bool enabled() const { return enabled_; }
  size_t limit() const { return limit_; }
  // What a block serving nbytes really occupies (cacheable sizes round up to 64 KiB).
  static size_t block_size(size_t nbytes);

 private:
  bool cacheable_size(size_t bytes) const;  // a block of this size goes on the free lists
  void trim_locked(size_t limit);  // frees the largest cached blocks until at most `limit`

  bool enabled_;
  size_t limit_;
  std::mutex mu_;
  std::multimap<size_t, void*> free_;  // cached blocks by block_size
  HostCacheStats stats_;
};

// The process-wide cache behind every CPU tensor (never destroyed: tensors held in statics are
// freed after main returns).
HostBlockCache& host_cache();

}  // namespace engine
