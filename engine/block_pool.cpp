#include "engine/block_pool.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "engine/error.h"

namespace engine {

BlockPool::BlockPool(Policy policy, Source source)
    : policy_(std::move(policy)), source_(std::move(source)) {
  const size_t g = policy_.granule;
  check(g > 0 && (g & (g - 1)) == 0, "BlockPool: the granule must be a power of two, got ", g);
}

BlockPool::~BlockPool() {
  for (auto& [ptr, block] : blocks_) {
    if (block->prev != nullptr) continue;  // only a segment's first block starts a segment
    size_t bytes = 0;
    for (const Block* b = block.get(); b != nullptr; b = b->next) bytes += b->size;
    source_.unmap(ptr, bytes);
  }
}

size_t BlockPool::round(size_t nbytes) const {
  const size_t g = policy_.granule;
  // At least one granule, so that even empty requests get distinct pointers.
  return std::max<size_t>((nbytes + g - 1) / g, 1) * g;
}

void* BlockPool::allocate(size_t nbytes) {
  const size_t size = round(nbytes);
  // The smallest free block of at least `size`; among equal sizes the lowest address (the
  // probe's null address sorts before every real one).
  Block probe{nullptr, size, true, nullptr, nullptr};
  Block* block = nullptr;
  if (auto it = free_.lower_bound(&probe); it != free_.end()) {
    block = *it;
    free_.erase(it);
    ++stats_.hits;
  } else {
    block = map_segment(size);
    if (block == nullptr) return nullptr;
  }
  return take(block, size)->ptr;
}

BlockPool::Block* BlockPool::map_segment(size_t size) {
  size_t bytes = policy_.segment_size(size);
  check(bytes >= size && bytes % policy_.granule == 0, "BlockPool: segment_size(", size,
        ") = ", bytes, " is smaller than the request or not a multiple of the granule");
  char* ptr = static_cast<char*>(source_.map(bytes));
  if (ptr == nullptr && bytes > size) {  // nearly full: a segment of just the request may fit
    bytes = size;
    ptr = static_cast<char*>(source_.map(bytes));
  }
  if (ptr == nullptr) return nullptr;
  auto block = std::make_unique<Block>(Block{ptr, bytes, true, nullptr, nullptr});
  Block* raw = block.get();
  blocks_.emplace(ptr, std::move(block));
  stats_.reserved += bytes;
  ++stats_.segments_mapped;
  return raw;
}

// `block` is free and no longer in free_. Its front `size` bytes are handed out; a rest of at
// least min_split becomes a free block right after it in the same segment.
BlockPool::Block* BlockPool::take(Block* block, size_t size) {
  const size_t rest_size = block->size - size;
  if (rest_size > 0 && rest_size >= policy_.min_split) {
    char* rest_ptr = block->ptr + size;
    auto rest = std::make_unique<Block>(Block{rest_ptr, rest_size, true, block, block->next});
    if (block->next != nullptr) block->next->prev = rest.get();
    block->next = rest.get();
    block->size = size;
    free_.insert(rest.get());
    blocks_.emplace(rest_ptr, std::move(rest));
  }
  block->free = false;
  stats_.allocated += block->size;
  stats_.peak_allocated = std::max(stats_.peak_allocated, stats_.allocated);
  return block;
}

size_t BlockPool::release(void* ptr) {
  auto it = blocks_.find(ptr);
  if (it == blocks_.end() || it->second->free) return 0;
  Block* block = it->second.get();
  const size_t size = block->size;
  block->free = true;
  stats_.allocated -= size;
  // Merge with the free neighbours (each leaves free_ first: its key, the size, changes).
  if (Block* next = block->next; next != nullptr && next->free) {
    free_.erase(next);
    merge_into(block, next);
  }
  if (Block* prev = block->prev; prev != nullptr && prev->free) {
    free_.erase(prev);
    merge_into(prev, block);
    block = prev;
  }
  free_.insert(block);
  return size;
}

void BlockPool::merge_into(Block* left, Block* right) {
  left->size += right->size;
  left->next = right->next;
  if (right->next != nullptr) right->next->prev = left;
  blocks_.erase(right->ptr);  // destroys right
}

size_t BlockPool::unmap_free_segments(size_t keep) {
  // A free block with no neighbours is a whole segment; the largest go first.
  std::vector<Block*> whole;
  for (auto it = free_.rbegin(); it != free_.rend(); ++it)
    if ((*it)->prev == nullptr && (*it)->next == nullptr) whole.push_back(*it);
  size_t unmapped = 0;
  for (Block* segment : whole) {
    if (stats_.free_bytes() <= keep) break;
    const size_t bytes = segment->size;
    free_.erase(segment);
    source_.unmap(segment->ptr, bytes);
    blocks_.erase(segment->ptr);
    stats_.reserved -= bytes;
    unmapped += bytes;
  }
  return unmapped;
}

}  // namespace engine
