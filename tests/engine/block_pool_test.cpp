// engine/block_pool.h: best fit, splitting, merging, segments mapped and unmapped, and a long
// random run checked against the invariants after every step. The source is plain host memory
// that the test watches, so nothing here needs a GPU.
#include "engine/block_pool.h"

#include <gtest/gtest.h>

#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <vector>

namespace {

using engine::BlockPool;
constexpr size_t kKiB = size_t(1) << 10, kMiB = size_t(1) << 20;

// Host memory as the source, with a record of what is mapped and a switch that makes it fail.
struct WatchedSource {
  std::map<uintptr_t, size_t> mapped;  // address -> bytes
  int64_t maps = 0, unmaps = 0;
  bool out_of_memory = false;
  size_t budget = SIZE_MAX;  // at most this many bytes mapped at once

  BlockPool::Source source() {
    return {[this](size_t bytes) -> void* {
              if (out_of_memory || bytes > budget - mapped_bytes()) return nullptr;
              void* p = std::aligned_alloc(512, bytes);
              mapped[reinterpret_cast<uintptr_t>(p)] = bytes;
              ++maps;
              return p;
            },
            [this](void* p, size_t bytes) {
              auto it = mapped.find(reinterpret_cast<uintptr_t>(p));
              ASSERT_NE(it, mapped.end()) << "unmapped a pointer that was never mapped";
              EXPECT_EQ(it->second, bytes) << "unmapped with another size than mapped";
              mapped.erase(it);
              ++unmaps;
              std::free(p);
            }};
  }
  size_t mapped_bytes() const {
    size_t total = 0;
    for (const auto& [p, bytes] : mapped) total += bytes;
    return total;
  }
};

// Granule 512 B, rests of 1 KiB and more split off, segments of 16 KiB (larger requests get a
// segment of their own size).
BlockPool::Policy test_policy() {
  return {512, kKiB, [](size_t bytes) { return std::max(bytes, 16 * kKiB); }};
}

char* as_bytes(void* p) { return static_cast<char*>(p); }

TEST(BlockPool, SizesRoundUpToTheGranule) {
  WatchedSource src;
  BlockPool pool(test_policy(), src.source());
  EXPECT_EQ(pool.round(0), 512u);
  EXPECT_EQ(pool.round(1), 512u);
  EXPECT_EQ(pool.round(512), 512u);
  EXPECT_EQ(pool.round(513), 1024u);
  EXPECT_THROW(BlockPool({384, 0, [](size_t b) { return b; }}, src.source()), std::exception);
}

TEST(BlockPool, SplitsOneSegmentIntoAdjacentBlocks) {
  WatchedSource src;
  BlockPool pool(test_policy(), src.source());
  void* a = pool.allocate(3000);  // 3 KiB
  void* b = pool.allocate(5000);  // 5 KiB, carved from the same 16 KiB segment
  EXPECT_EQ(src.maps, 1);
  EXPECT_EQ(as_bytes(b), as_bytes(a) + 3 * kKiB);
  EXPECT_EQ(pool.stats().allocated, 8 * kKiB);
  EXPECT_EQ(pool.stats().reserved, 16 * kKiB);
  EXPECT_EQ(pool.stats().hits, 1);  // the second request was served by the segment's rest
  std::memset(a, 1, 3000);
  std::memset(b, 2, 5000);
  EXPECT_EQ(pool.release(a), 3 * kKiB);
  EXPECT_EQ(pool.release(b), 5 * kKiB);
  EXPECT_EQ(pool.stats().allocated, 0u);
}

TEST(BlockPool, FreedNeighboursMergeBackIntoTheWholeSegment) {
  WatchedSource src;
  BlockPool pool(test_policy(), src.source());
  void* a = pool.allocate(4 * kKiB);
  void* b = pool.allocate(4 * kKiB);
  void* c = pool.allocate(4 * kKiB);
  // Free the middle last: it must merge with a free block on both sides.
  pool.release(a);
  pool.release(c);
  EXPECT_EQ(pool.unmap_free_segments(), 0u);  // b still holds the segment
  pool.release(b);
  // One free block of 16 KiB: a request of the whole segment fits without a new map.
  void* whole = pool.allocate(16 * kKiB);
  EXPECT_EQ(whole, a);
  EXPECT_EQ(src.maps, 1);
  pool.release(whole);
  EXPECT_EQ(pool.unmap_free_segments(), 16 * kKiB);
  EXPECT_EQ(src.unmaps, 1);
  EXPECT_EQ(pool.stats().reserved, 0u);
  EXPECT_TRUE(src.mapped.empty());
}

TEST(BlockPool, TakesTheSmallestFreeBlockThatFits) {
  WatchedSource src;
  BlockPool pool(test_policy(), src.source());
  // Three segments of their own sizes, all freed: 20, 24 and 32 KiB.
  void* p20 = pool.allocate(20 * kKiB);
  void* p32 = pool.allocate(32 * kKiB);
  void* p24 = pool.allocate(24 * kKiB);
  for (void* p : {p20, p32, p24}) pool.release(p);
  EXPECT_EQ(pool.allocate(22 * kKiB), p24);  // not the 32 KiB one, not the first freed
  EXPECT_EQ(pool.allocate(17 * kKiB), p20);
  EXPECT_EQ(src.maps, 3);
}

TEST(BlockPool, ASmallRestStaysWithTheBlock) {
  WatchedSource src;
  BlockPool pool(test_policy(), src.source());
  void* p = pool.allocate(20 * kKiB);
  pool.release(p);
  // 20 KiB - 19.5 KiB = 512 B < min_split: handed out whole, and counted whole.
  EXPECT_EQ(pool.allocate(19 * kKiB + 512), p);
  EXPECT_EQ(pool.stats().allocated, 20 * kKiB);
  EXPECT_EQ(pool.release(p), 20 * kKiB);
}

TEST(BlockPool, OutOfMemoryReturnsNullAndChangesNothing) {
  WatchedSource src;
  BlockPool pool(test_policy(), src.source());
  void* a = pool.allocate(8 * kKiB);
  const auto before = pool.stats();
  src.out_of_memory = true;
  EXPECT_EQ(pool.allocate(64 * kKiB), nullptr);  // no free block that large, no new segment
  EXPECT_NE(pool.allocate(4 * kKiB), nullptr);   // the segment's free rest still serves this
  EXPECT_EQ(pool.stats().reserved, before.reserved);
  EXPECT_EQ(pool.stats().segments_mapped, before.segments_mapped);
  pool.release(a);
}

// A nearly full device: no room for a whole new segment, but for one of just the request.
TEST(BlockPool, WhenASegmentDoesNotFitOneOfTheRequestsSizeIsTried) {
  WatchedSource src;
  src.budget = 20 * kKiB;
  BlockPool pool(test_policy(), src.source());
  void* a = pool.allocate(12 * kKiB);  // a 16 KiB segment
  void* b = pool.allocate(4 * kKiB);   // its rest
  void* c = pool.allocate(3 * kKiB);   // 16 more would exceed the budget; 3 do not
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(src.mapped_bytes(), 19 * kKiB);
  EXPECT_EQ(pool.allocate(2 * kKiB), nullptr);  // and now nothing fits at all
  for (void* p : {a, b, c}) pool.release(p);
  EXPECT_EQ(pool.unmap_free_segments(), 19 * kKiB);
}

TEST(BlockPool, ReleaseOfAForeignOrFreedPointerIsRefused) {
  WatchedSource src;
  BlockPool pool(test_policy(), src.source());
  void* a = pool.allocate(4 * kKiB);
  int local = 0;
  EXPECT_EQ(pool.release(&local), 0u);
  EXPECT_EQ(pool.release(a), 4 * kKiB);
  EXPECT_EQ(pool.release(a), 0u);  // a double free changes nothing
  EXPECT_EQ(pool.stats().allocated, 0u);
}

TEST(BlockPool, UnmapKeepsWhatIsAskedAndTheLargestGoFirst) {
  WatchedSource src;
  BlockPool pool(test_policy(), src.source());
  void* a = pool.allocate(16 * kKiB);
  void* b = pool.allocate(32 * kKiB);
  void* c = pool.allocate(64 * kKiB);
  for (void* p : {a, b, c}) pool.release(p);
  EXPECT_EQ(pool.unmap_free_segments(60 * kKiB), 64 * kKiB);  // 112 -> 48 KiB free
  EXPECT_EQ(pool.stats().free_bytes(), 48 * kKiB);
  EXPECT_EQ(pool.unmap_free_segments(), 48 * kKiB);
  EXPECT_EQ(src.unmaps, 3);
}

// A training step allocates and frees the same sizes every iteration: after the first, no new
// segment is mapped, and the peak is what the step itself needs.
TEST(BlockPool, RepeatedStepsMapNothingNew) {
  WatchedSource src;
  BlockPool pool({512, 512, [](size_t b) { return std::max(b, 64 * kKiB); }}, src.source());
  auto step = [&] {
    std::vector<void*> live;
    for (size_t kib : {25, 25, 6, 6, 3, 12, 1, 2}) live.push_back(pool.allocate(kib * kKiB));
    pool.release(live[0]);  // an early activation dies; later requests reuse its memory
    for (size_t kib : {6, 6, 6, 4}) live.push_back(pool.allocate(kib * kKiB));
    for (size_t i = 1; i < live.size(); ++i) pool.release(live[i]);
  };
  step();
  const auto after_first = pool.stats();
  for (int i = 0; i < 5; ++i) step();
  EXPECT_EQ(pool.stats().segments_mapped, after_first.segments_mapped);
  EXPECT_EQ(pool.stats().reserved, after_first.reserved);
  EXPECT_EQ(pool.stats().allocated, 0u);
}

// Random allocations and frees; after every step: live blocks lie inside mapped segments and
// never overlap, each still holds the bytes written into it, and the statistics add up.
TEST(BlockPool, RandomUseKeepsEveryInvariant) {
  WatchedSource src;
  BlockPool pool({512, kKiB, [](size_t b) { return b < 32 * kKiB ? 64 * kKiB : b; }},
                 src.source());
  std::mt19937 rng(7);
  struct Live {
    size_t size;    // what the pool says the block is (round(request) or a little more)
    size_t asked;   // what was requested
    uint8_t fill;
  };
  std::map<uintptr_t, Live> live;
  size_t peak = 0, allocated = 0;
  for (int step = 0; step < 4000; ++step) {
    const bool grow = live.empty() || (live.size() < 60 && rng() % 100 < 55);
    if (grow) {
      const size_t asked = rng() % 4 == 0 ? 1 + rng() % (96 * kKiB) : 1 + rng() % (6 * kKiB);
      void* p = pool.allocate(asked);
      ASSERT_NE(p, nullptr);
      ASSERT_EQ(reinterpret_cast<uintptr_t>(p) % 512, 0u);
      const uint8_t fill = uint8_t(rng());
      std::memset(p, fill, asked);
      const size_t before = pool.stats().allocated;
      live[reinterpret_cast<uintptr_t>(p)] = {before - allocated, asked, fill};
      ASSERT_GE(before - allocated, pool.round(asked));
      allocated = before;
    } else {
      auto it = live.begin();
      std::advance(it, rng() % live.size());
      const auto* bytes = reinterpret_cast<const uint8_t*>(it->first);
      for (size_t i = 0; i < it->second.asked; i += 97)
        ASSERT_EQ(bytes[i], it->second.fill) << "a block was overwritten: blocks overlap";
      ASSERT_EQ(pool.release(reinterpret_cast<void*>(it->first)), it->second.size);
      allocated -= it->second.size;
      live.erase(it);
    }
    peak = std::max(peak, allocated);
    // No overlap (the map is sorted by address), every block inside one mapped segment.
    uintptr_t end_of_previous = 0;
    for (const auto& [addr, block] : live) {
      ASSERT_GE(addr, end_of_previous);
      end_of_previous = addr + block.size;
      auto seg = src.mapped.upper_bound(addr);
      ASSERT_NE(seg, src.mapped.begin());
      --seg;
      ASSERT_LE(addr + block.size, seg->first + seg->second) << "a block crosses its segment";
    }
    ASSERT_EQ(pool.stats().allocated, allocated);
    ASSERT_EQ(pool.stats().peak_allocated, peak);
    ASSERT_EQ(pool.stats().reserved, src.mapped_bytes());
    if (step % 500 == 0) pool.unmap_free_segments();
  }
  for (const auto& [addr, block] : live) pool.release(reinterpret_cast<void*>(addr));
  EXPECT_EQ(pool.stats().allocated, 0u);
  // Everything merged back into whole segments: all of them can go.
  pool.unmap_free_segments();
  EXPECT_TRUE(src.mapped.empty());
  EXPECT_EQ(pool.stats().reserved, 0u);
}

TEST(BlockPool, DestructionUnmapsEverySegment) {
  WatchedSource src;
  {
    BlockPool pool(test_policy(), src.source());
    pool.allocate(3 * kKiB);                  // still live when the pool goes
    pool.release(pool.allocate(40 * kKiB));  // free
    EXPECT_EQ(src.mapped.size(), 2u);
  }
  EXPECT_TRUE(src.mapped.empty());
}

}  // namespace
