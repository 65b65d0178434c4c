// engine/block_pool.h — blocks carved out of large segments, best fit, merged again when freed.
//
// Both caching allocators (host memory: engine/host_cache.h; device memory:
// engine/cuda/allocator.h) keep freed memory for the next request instead of returning it to
// malloc or cudaFree. Keeping whole blocks and handing one out only for a request of about its
// size wastes memory whenever sizes vary: in ResNet-18 inference the stem's 25.7 MB
// activations are freed early, and no later request is that large, so they sat unused for the
// rest of the step (a 215 MB peak against 182 MB for the same step on plain malloc). This pool
// does what malloc and PyTorch's CUDA caching allocator do with such memory:
//
//   - memory comes from the source (malloc, cudaMalloc) in segments, and a segment is split
//     into blocks: a request takes the smallest free block that fits (best fit; the lowest
//     address among equals) and, when the rest is at least `min_split`, the rest stays free as
//     a block of its own;
//   - a freed block merges with its free neighbours in the same segment, so a segment whose
//     blocks are all free is one free block again, as large as when it was mapped;
//   - a request that fits no free block maps a new segment of segment_size(request) bytes
//     (larger than the request for small ones, so that later small requests share it), or,
//     when the source has no room for that, a segment of just the request;
//   - segments go back to the source only when asked (unmap_free_segments), and only whole
//     free ones.
//
// Sizes round up to `granule` (a power of two), so every block starts granule-aligned when the
// source's segments are. The pool is not thread-safe: its owner holds the lock. Its owner also
// decides what to do when the source is out of memory (allocate returns nullptr): typically
// unmap the free segments and try once more.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <unordered_map>

namespace engine {

struct BlockPoolStats {
  size_t allocated = 0;       // bytes in blocks handed out now (rounded sizes)
  size_t peak_allocated = 0;  // highest `allocated` since the start or reset_peak()
  size_t reserved = 0;        // bytes in mapped segments: allocated + free
  int64_t segments_mapped = 0;  // calls to the source so far (requests no free block served)
  int64_t hits = 0;             // requests served from free blocks
  size_t free_bytes() const { return reserved - allocated; }
};

class BlockPool {
 public:
  struct Policy {
    size_t granule;    // block sizes are multiples of this (a power of two)
    size_t min_split;  // a free rest smaller than this stays part of the block handed out
    // Bytes to map for a request of `bytes` (already rounded) that no free block serves: at
    // least `bytes`, and a multiple of the granule.
    std::function<size_t(size_t bytes)> segment_size;
  };
  struct Source {
    std::function<void*(size_t bytes)> map;           // nullptr when out of memory
    std::function<void(void* ptr, size_t bytes)> unmap;
  };

  BlockPool(Policy policy, Source source);
  ~BlockPool();  // unmaps every segment, including any still in use
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  // A block of round(nbytes) bytes or a little more (see min_split); nullptr when the source
  // has no memory for a new segment (nothing changes then).
  void* allocate(size_t nbytes);
  // Frees a block from allocate() and returns its size; 0 for a pointer this pool did not
  // hand out (nothing changes then).
  size_t release(void* ptr);
  // Unmaps whole free segments, largest first, until at most `keep` free bytes remain (or no
  // whole free segment is left); returns the bytes unmapped.
  size_t unmap_free_segments(size_t keep = 0);

  size_t round(size_t nbytes) const;  // what a request of nbytes asks the pool for
  const BlockPoolStats& stats() const { return stats_; }
  void reset_peak() { stats_.peak_allocated = stats_.allocated; }

 private:
  // One piece of a segment. prev/next are its neighbours in address order within the same
  // segment (never across segments): a block with neither is a whole segment.
  struct Block {
    char* ptr;
    size_t size;
    bool free;
    Block* prev;
    Block* next;
  };
  struct BySizeThenAddress {
    bool operator()(const Block* a, const Block* b) const {
      if (a->size != b->size) return a->size < b->size;
      return reinterpret_cast<uintptr_t>(a->ptr) < reinterpret_cast<uintptr_t>(b->ptr);
    }
  };

  Block* take(Block* block, size_t size);  // hands out (a front part of) a free block
  Block* map_segment(size_t size);          // a new segment as one free block, or nullptr
  void merge_into(Block* left, Block* right);  // both free neighbours; right is gone after

  Policy policy_;
  Source source_;
  std::unordered_map<void*, std::unique_ptr<Block>> blocks_;  // every block, by address
  std::set<Block*, BySizeThenAddress> free_;                   // the free ones, smallest first
  BlockPoolStats stats_;
};

}  // namespace engine
