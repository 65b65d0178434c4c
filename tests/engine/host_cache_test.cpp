// engine/host_cache.h: large host blocks are reused (split and merged by engine/block_pool.h),
// small ones never cached, the limit holds, and the switch turns it all off.
#include "engine/host_cache.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include "engine/engine.h"

namespace {

using engine::HostBlockCache;
using engine::HostCacheStats;
constexpr size_t kMiB = size_t(1) << 20;

TEST(HostCache, BlockSizesRoundUp) {
  EXPECT_EQ(HostBlockCache::block_size(0), 64u);
  EXPECT_EQ(HostBlockCache::block_size(65), 128u);
  EXPECT_EQ(HostBlockCache::block_size(kMiB), kMiB);
  EXPECT_EQ(HostBlockCache::block_size(kMiB + 1), kMiB + HostBlockCache::kGranule);
}

TEST(HostCache, ReusesALargeBlockForTheSameSize) {
  HostBlockCache cache(true, 256 * kMiB);
  void* a = cache.allocate(3 * kMiB + 5);
  ASSERT_EQ(reinterpret_cast<uintptr_t>(a) % HostBlockCache::kAlign, 0u);
  std::memset(a, 1, 3 * kMiB + 5);  // the whole request is usable
  EXPECT_EQ(cache.stats().reserved_bytes, 20 * kMiB);  // one segment
  cache.release(a, 3 * kMiB + 5);
  EXPECT_EQ(cache.stats().cached_bytes, 20 * kMiB);  // the whole segment is free again
  void* b = cache.allocate(3 * kMiB);
  EXPECT_EQ(b, a);
  EXPECT_EQ(cache.stats().hits, 1);
  EXPECT_EQ(cache.stats().misses, 1);
  cache.release(b, 3 * kMiB);
}

// The point of splitting: an early large block, once freed, serves the smaller requests after
// it instead of sitting unused while new memory is taken for them.
TEST(HostCache, AFreedLargeBlockServesSmallerRequests) {
  HostBlockCache cache(true, 256 * kMiB);
  void* big = cache.allocate(12 * kMiB);  // 10 MiB or more: a segment of its own size
  EXPECT_EQ(cache.stats().reserved_bytes, 12 * kMiB);
  cache.release(big, 12 * kMiB);
  void* a = cache.allocate(5 * kMiB);
  void* b = cache.allocate(7 * kMiB);
  EXPECT_EQ(a, big);
  EXPECT_EQ(static_cast<char*>(b), static_cast<char*>(big) + 5 * kMiB);
  EXPECT_EQ(cache.stats().reserved_bytes, 12 * kMiB);
  EXPECT_EQ(cache.stats().misses, 1);
  cache.release(a, 5 * kMiB);
  cache.release(b, 7 * kMiB);
  void* again = cache.allocate(12 * kMiB);  // merged back: the large request fits again
  EXPECT_EQ(again, big);
  cache.release(again, 12 * kMiB);
}

TEST(HostCache, SmallBlocksGoStraightBackToMalloc) {
  HostBlockCache cache(true, 64 * kMiB);
  void* p = cache.allocate(1000);
  ASSERT_EQ(reinterpret_cast<uintptr_t>(p) % HostBlockCache::kAlign, 0u);
  cache.release(p, 1000);
  EXPECT_EQ(cache.stats().cached_bytes, 0u);
  EXPECT_EQ(cache.stats().misses, 0);  // not a cacheable request at all
}

// Free memory is kept up to the limit; beyond it whole free segments go back to malloc, the
// largest first. Requests above an eighth of the limit never come from the pool.
TEST(HostCache, KeepsAtMostItsLimitFree) {
  HostBlockCache cache(true, 16 * kMiB);  // requests up to 2 MiB, segments of 2 MiB
  std::vector<void*> twos;
  for (int i = 0; i < 9; ++i) twos.push_back(cache.allocate(2 * kMiB));
  EXPECT_EQ(cache.stats().reserved_bytes, 18 * kMiB);
  for (void* p : twos) cache.release(p, 2 * kMiB);
  EXPECT_EQ(cache.stats().cached_bytes, 16 * kMiB);  // the ninth free segment went back
  EXPECT_EQ(cache.stats().reserved_bytes, 16 * kMiB);
  void* big = cache.allocate(3 * kMiB);  // above an eighth of the limit: plain malloc
  cache.release(big, 3 * kMiB);
  EXPECT_EQ(cache.stats().misses, 9);
  EXPECT_EQ(cache.stats().reserved_bytes, 16 * kMiB);
  cache.empty();
  EXPECT_EQ(cache.stats().cached_bytes, 0u);
  EXPECT_EQ(cache.stats().reserved_bytes, 0u);
}

// Tensors are freed on the loader's threads as well as the trainer's: the cache is shared.
// Four threads allocate, fill, check and free blocks of random sizes at once; no block may
// ever be handed to two of them (each finds its own bytes intact), and at the end every byte
// is free again.
TEST(HostCache, ThreadsShareItSafely) {
  HostBlockCache cache(true, 256 * kMiB);
  std::atomic<int> corrupted{0};
  auto worker = [&](int id) {
    std::mt19937 rng(100 + id);
    std::vector<std::pair<unsigned char*, size_t>> live;
    for (int step = 0; step < 400; ++step) {
      if (live.size() < 6 && (live.empty() || rng() % 2 == 0)) {
        const size_t bytes = kMiB + rng() % (3 * kMiB);
        auto* p = static_cast<unsigned char*>(cache.allocate(bytes));
        std::memset(p, id + 1, bytes);
        live.emplace_back(p, bytes);
      } else {
        const size_t i = rng() % live.size();
        auto [p, bytes] = live[i];
        for (size_t k = 0; k < bytes; k += 4093)
          if (p[k] != id + 1) ++corrupted;
        cache.release(p, bytes);
        live.erase(live.begin() + static_cast<std::ptrdiff_t>(i));
      }
    }
    for (auto [p, bytes] : live) cache.release(p, bytes);
  };
  std::vector<std::thread> threads;
  for (int id = 0; id < 4; ++id) threads.emplace_back(worker, id);
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(corrupted.load(), 0);
  EXPECT_EQ(cache.stats().cached_bytes, cache.stats().reserved_bytes);  // nothing in use
  EXPECT_GT(cache.stats().hits, 0);
}

TEST(HostCache, DisabledCachesNothing) {
  HostBlockCache cache(false, 64 * kMiB);
  void* a = cache.allocate(4 * kMiB);
  cache.release(a, 4 * kMiB);
  EXPECT_EQ(cache.stats().cached_bytes, 0u);
  EXPECT_EQ(cache.stats().hits + cache.stats().misses, 0);
}

// The engine's CPU tensors go through the process-wide cache: once a freed activation's memory
// is there, the next tensor of its size is served from it, without new memory from malloc
// (unless this build or ENGINE_CPU_NO_CACHE turned the cache off).
TEST(HostCache, TensorsReuseFreedBlocks) {
  HostBlockCache& cache = engine::host_cache();
  if (!cache.enabled())
    GTEST_SKIP() << "host cache off (AddressSanitizer or ENGINE_CPU_NO_CACHE=1)";
  { engine::Tensor t = engine::Tensor::zeros({512, 1024}, engine::DType::Float32); }  // 2 MiB
  const HostCacheStats before = cache.stats();
  engine::Tensor u = engine::Tensor::zeros({512, 1024}, engine::DType::Float32);
  EXPECT_EQ(cache.stats().hits, before.hits + 1);
  EXPECT_EQ(cache.stats().misses, before.misses);
  EXPECT_EQ(cache.stats().reserved_bytes, before.reserved_bytes);
}

}  // namespace
