// engine/host_cache.h: large host blocks are reused for requests of (nearly) their size, small
// ones never cached, the limit holds, and the switch turns it all off.
#include "engine/host_cache.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "engine/engine.h"

namespace {

using engine::HostBlockCache;
constexpr size_t kMiB = size_t(1) << 20;

TEST(HostCache, BlockSizesRoundUp) {
  EXPECT_EQ(HostBlockCache::block_size(0), 64u);
  EXPECT_EQ(HostBlockCache::block_size(65), 128u);
  EXPECT_EQ(HostBlockCache::block_size(kMiB), kMiB);
  EXPECT_EQ(HostBlockCache::block_size(kMiB + 1), kMiB + (64u << 10));
}

TEST(HostCache, ReusesALargeBlockForTheSameSize) {
  HostBlockCache cache(true, 64 * kMiB);
  void* a = cache.allocate(3 * kMiB + 5);
  ASSERT_EQ(reinterpret_cast<uintptr_t>(a) % HostBlockCache::kAlign, 0u);
  std::memset(a, 1, 3 * kMiB + 5);  // the whole request is usable
  cache.release(a, 3 * kMiB + 5);
  EXPECT_EQ(cache.stats().cached_bytes, HostBlockCache::block_size(3 * kMiB + 5));
  void* b = cache.allocate(3 * kMiB);  // the same 64 KiB class
  EXPECT_EQ(b, a);
  EXPECT_EQ(cache.stats().hits, 1);
  EXPECT_EQ(cache.stats().cached_bytes, 0u);
  cache.release(b, 3 * kMiB);
}

TEST(HostCache, DoesNotHandOutBlocksFarLargerThanTheRequest) {
  HostBlockCache cache(true, 64 * kMiB);
  void* big = cache.allocate(8 * kMiB);
  cache.release(big, 8 * kMiB);
  void* small = cache.allocate(4 * kMiB);  // 8 MiB exceeds 4 MiB by more than a sixteenth
  EXPECT_NE(small, big);
  EXPECT_EQ(cache.stats().hits, 0);
  EXPECT_EQ(cache.stats().misses, 2);
  EXPECT_EQ(cache.stats().cached_bytes, 8 * kMiB);  // still there for an 8 MiB request
  void* again = cache.allocate(8 * kMiB);
  EXPECT_EQ(again, big);
  cache.release(small, 4 * kMiB);
  cache.release(again, 8 * kMiB);
}

TEST(HostCache, SmallBlocksGoStraightBackToMalloc) {
  HostBlockCache cache(true, 64 * kMiB);
  void* p = cache.allocate(1000);
  ASSERT_EQ(reinterpret_cast<uintptr_t>(p) % HostBlockCache::kAlign, 0u);
  cache.release(p, 1000);
  EXPECT_EQ(cache.stats().cached_bytes, 0u);
  EXPECT_EQ(cache.stats().misses, 0);  // not a cacheable request at all
}

// A freed block is kept (if it is at most an eighth of the limit); older cached blocks make
// room, the largest first.
TEST(HostCache, KeepsAtMostItsLimitFreeingTheLargestFirst) {
  HostBlockCache cache(true, 16 * kMiB);  // blocks up to 2 MiB are cached
  std::vector<void*> twos;
  for (int i = 0; i < 8; ++i) twos.push_back(cache.allocate(2 * kMiB));
  void* one = cache.allocate(kMiB);
  for (void* p : twos) cache.release(p, 2 * kMiB);
  EXPECT_EQ(cache.stats().cached_bytes, 16 * kMiB);
  cache.release(one, kMiB);  // 17 > 16: one cached 2 MiB block makes room for the newest
  EXPECT_EQ(cache.stats().cached_bytes, 15 * kMiB);
  EXPECT_EQ(cache.allocate(kMiB), one);  // the newest is there
  cache.release(one, kMiB);
  void* big = cache.allocate(3 * kMiB);  // above an eighth of the limit: never cached
  cache.release(big, 3 * kMiB);
  EXPECT_EQ(cache.stats().cached_bytes, 15 * kMiB);
  EXPECT_EQ(cache.stats().misses, 9);  // the 3 MiB request was not a cacheable one
  cache.empty();
  EXPECT_EQ(cache.stats().cached_bytes, 0u);
}

TEST(HostCache, DisabledCachesNothing) {
  HostBlockCache cache(false, 64 * kMiB);
  void* a = cache.allocate(4 * kMiB);
  cache.release(a, 4 * kMiB);
  EXPECT_EQ(cache.stats().cached_bytes, 0u);
  EXPECT_EQ(cache.stats().hits + cache.stats().misses, 0);
}

// The engine's CPU tensors go through the process-wide cache: a freed activation's block
// serves the next tensor of its size (unless this build or ENGINE_CPU_NO_CACHE turned it off).
TEST(HostCache, TensorsReuseFreedBlocks) {
  HostBlockCache& cache = engine::host_cache();
  if (!cache.enabled()) GTEST_SKIP() << "host cache off (AddressSanitizer or ENGINE_CPU_NO_CACHE=1)";
  const void* first = nullptr;
  {
    engine::Tensor t = engine::Tensor::zeros({512, 1024}, engine::DType::Float32);  // 2 MiB
    first = t.raw_data();
  }
  const int64_t hits = cache.stats().hits;
  engine::Tensor u = engine::Tensor::zeros({512, 1024}, engine::DType::Float32);
  EXPECT_EQ(u.raw_data(), first);
  EXPECT_EQ(cache.stats().hits, hits + 1);
}

}  // namespace
