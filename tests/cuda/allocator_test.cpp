// The caching device allocator: sizes, reuse across "steps" and across sizes, statistics,
// emptying the cache, poisoning, and the out-of-memory message. (The block mechanics are
// tested on their own in tests/engine/block_pool_test.cpp.)
#include <algorithm>
#include <string>

#include "engine/cuda/allocator.h"
#include "tests/cuda/cuda_util.h"

namespace cuda_test {
namespace {

using engine::cuda::CachingAllocator;
using engine::cuda::memory_stats;

constexpr size_t kMiB = size_t(1) << 20;

// Pure arithmetic: runs without a GPU too.
TEST(CudaAllocatorSizes, RoundUpTo512Bytes) {
  EXPECT_EQ(CachingAllocator::round_size(0), 512u);
  EXPECT_EQ(CachingAllocator::round_size(1), 512u);
  EXPECT_EQ(CachingAllocator::round_size(512), 512u);
  EXPECT_EQ(CachingAllocator::round_size(513), 1024u);
  EXPECT_EQ(CachingAllocator::round_size(kMiB - 1), kMiB);
  EXPECT_EQ(CachingAllocator::round_size((3 << 20) + 1), 3 * kMiB + 512);
}

using CudaAllocator = CudaTest;

TEST_F(CudaAllocator, TrainingStepsReuseTheSameBlocks) {
  if (!engine::cuda::caching_enabled()) GTEST_SKIP() << "ENGINE_CUDA_NO_CACHE=1";
  // Warm-up "step" allocates; the next steps of the same sizes must not call cudaMalloc.
  auto step = [] {
    Tensor a = Tensor::ones({1000, 777}, DType::Float32, kGpu);    // ~3 MiB: large pool
    Tensor b = Tensor::ones({37, 11}, DType::Float64, kGpu);       // small pool
    Tensor c = engine::add(engine::mul(a, 2.0), 1.0);              // temporaries
    return engine::sum(c).item() + engine::sum(b).item();
  };
  const double first = step();
  const auto before = memory_stats();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(step(), first);
  const auto after = memory_stats();
  EXPECT_EQ(after.device_mallocs, before.device_mallocs);
  EXPECT_EQ(after.reserved, before.reserved);
  EXPECT_GT(after.cache_hits, before.cache_hits);
  EXPECT_EQ(after.in_use, before.in_use);
}

// Freed memory serves any request it covers: a large tensor's block, once freed, holds the
// smaller tensors that come after it without a new cudaMalloc (block_pool.h splits it).
TEST_F(CudaAllocator, AFreedLargeBlockServesSmallerTensors) {
  if (!engine::cuda::caching_enabled()) GTEST_SKIP() << "ENGINE_CUDA_NO_CACHE=1";
  { Tensor big = Tensor::empty({int64_t{16} << 20}, DType::Float32, kGpu); }  // 64 MiB
  const auto before = memory_stats();
  {
    Tensor a = Tensor::empty({int64_t{5} << 20}, DType::Float32, kGpu);  // 20 MiB
    Tensor b = Tensor::empty({int64_t{5} << 20}, DType::Float32, kGpu);
    Tensor c = Tensor::empty({int64_t{3} << 20}, DType::Float32, kGpu);  // 12 MiB
    EXPECT_EQ(memory_stats().device_mallocs, before.device_mallocs);
    // 52 MiB, plus at most a rest under 1 MiB per block that was not worth splitting off.
    EXPECT_GE(memory_stats().in_use, before.in_use + 52 * kMiB);
    EXPECT_LT(memory_stats().in_use, before.in_use + 55 * kMiB);
  }
  EXPECT_EQ(memory_stats().reserved, before.reserved);
}

TEST_F(CudaAllocator, StatsTrackInUsePeakAndReserved) {
  engine::cuda::empty_cache();  // whole free segments go; free space in used ones stays
  const auto s0 = memory_stats();
  // Larger than all the free space left, so the block takes a new segment of its own.
  const size_t bytes = std::max<size_t>(20'000'000, s0.reserved - s0.in_use + 2 * kMiB) / 4 * 4;
  // Without the cache blocks have their exact size (for compute-sanitizer); with it, the
  // request rounded up to 512 B, plus the segment's rest when that is under 1 MiB.
  const bool caching = engine::cuda::caching_enabled();
  const size_t block = caching ? CachingAllocator::round_size(bytes) : bytes;
  size_t got = 0;
  {
    Tensor t = Tensor::empty({int64_t(bytes / 4)}, DType::Float32, kGpu);
    const auto s1 = memory_stats();
    got = s1.in_use - s0.in_use;
    EXPECT_GE(got, block);
    EXPECT_LT(got, block + (caching ? kMiB : 1));
    EXPECT_GE(s1.peak, s1.in_use);
    EXPECT_GE(s1.reserved, s1.in_use);
  }
  const auto s2 = memory_stats();
  EXPECT_EQ(s2.in_use, s0.in_use);
  EXPECT_GE(s2.peak, s0.in_use + got);
  engine::cuda::reset_peak_memory();
  EXPECT_EQ(memory_stats().peak, s2.in_use);
  if (caching) {
    EXPECT_GE(s2.reserved, s2.in_use + got);  // kept cached
    engine::cuda::empty_cache();
    EXPECT_EQ(memory_stats().reserved, s0.reserved);  // its segment went back
  } else {
    EXPECT_EQ(s2.reserved, s2.in_use);  // returned at once
  }
}

TEST_F(CudaAllocator, PoisonedBlocksReadAsNaN) {
  // The fixture turned poisoning on: a fresh (or reused) block is all NaN until written.
  Tensor t = Tensor::empty({1000}, DType::Float32, kGpu);
  for (double v : t.to_vector()) ASSERT_TRUE(std::isnan(v));
  Tensor d = Tensor::empty({3, 5}, DType::Float64, kGpu);
  for (double v : d.to_vector()) ASSERT_TRUE(std::isnan(v));
}

TEST_F(CudaAllocator, OutOfMemorySaysWhatWasAskedAndHeld) {
  Tensor keep = Tensor::ones({1 << 20}, DType::Float32, kGpu);
  try {
    Tensor huge = Tensor::empty({int64_t{1} << 48}, DType::Float32, kGpu);  // 1 PiB
    FAIL() << "a 1 PiB allocation succeeded";
  } catch (const engine::Error& e) {
    const std::string m = e.what();
    for (const char* part : {"CUDA out of memory: asked for ", " MiB, ", " MiB in use, ",
                             " MiB reserved, ", " MiB free on device"})
      EXPECT_NE(m.find(part), std::string::npos) << "missing '" << part << "' in: " << m;
  }
  // Not sticky: the device keeps working, and what we held is intact.
  EXPECT_EQ(engine::sum(keep).item(), double(1 << 20));
  EXPECT_EQ(Tensor::full({3}, 2.0, DType::Float32, kGpu).to_vector(), std::vector<double>(3, 2.0));
}

}  // namespace
}  // namespace cuda_test
