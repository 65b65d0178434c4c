// The caching device allocator: size classes, reuse across "steps", statistics, emptying the
// cache, poisoning, and the out-of-memory message.
#include <string>

#include "engine/cuda/allocator.h"
#include "tests/cuda/cuda_util.h"

namespace cuda_test {
namespace {

using engine::cuda::CachingAllocator;
using engine::cuda::memory_stats;

// Pure arithmetic: runs without a GPU too.
TEST(CudaAllocatorSizes, RoundUpTo512BytesSmallAnd2MiBLarge) {
  EXPECT_EQ(CachingAllocator::round_size(0), 512u);
  EXPECT_EQ(CachingAllocator::round_size(1), 512u);
  EXPECT_EQ(CachingAllocator::round_size(512), 512u);
  EXPECT_EQ(CachingAllocator::round_size(513), 1024u);
  EXPECT_EQ(CachingAllocator::round_size((1 << 20) - 1), size_t{1} << 20);
  EXPECT_EQ(CachingAllocator::round_size(1 << 20), size_t{2} << 20);
  EXPECT_EQ(CachingAllocator::round_size((3 << 20) + 1), size_t{4} << 20);
}

using CudaAllocator = CudaTest;

TEST_F(CudaAllocator, TrainingStepsReuseTheSameBlocks) {
  if (!engine::cuda::caching_enabled()) GTEST_SKIP() << "ENGINE_CUDA_NO_CACHE=1";
  // Warm-up "step" allocates; the next steps of the same sizes must not call cudaMalloc.
  auto step = [] {
    Tensor a = Tensor::ones({1000, 777}, DType::Float32, kGpu);    // ~3 MiB: large class
    Tensor b = Tensor::ones({37, 11}, DType::Float64, kGpu);       // small class
    Tensor c = engine::add(engine::mul(a, 2.0), 1.0);              // temporaries
    return engine::sum(c).item() + engine::sum(b).item();
  };
  const double first = step();
  const auto before = memory_stats();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(step(), first);
  const auto after = memory_stats();
  EXPECT_EQ(after.device_mallocs, before.device_mallocs);
  EXPECT_GT(after.cache_hits, before.cache_hits);
  EXPECT_EQ(after.in_use, before.in_use);
  // The same block comes back for the same size class.
  void* p = nullptr;
  {
    Tensor t = Tensor::empty({123457}, DType::Float32, kGpu);
    p = t.raw_data();
  }
  Tensor t2 = Tensor::empty({123400}, DType::Float32, kGpu);  // same 512-byte class
  EXPECT_EQ(t2.raw_data(), p);
}

TEST_F(CudaAllocator, StatsTrackInUsePeakAndReserved) {
  engine::cuda::empty_cache();  // so the block below is a fresh one of exactly its size class
  const auto s0 = memory_stats();
  const size_t bytes = 5'000'000 * sizeof(float);
  // Without the cache blocks have their exact size (for compute-sanitizer).
  const size_t block =
      engine::cuda::caching_enabled() ? CachingAllocator::round_size(bytes) : bytes;
  {
    Tensor t = Tensor::empty({5'000'000}, DType::Float32, kGpu);
    const auto s1 = memory_stats();
    EXPECT_EQ(s1.in_use, s0.in_use + block);
    EXPECT_GE(s1.peak, s1.in_use);
    EXPECT_GE(s1.reserved, s1.in_use);
  }
  const auto s2 = memory_stats();
  EXPECT_EQ(s2.in_use, s0.in_use);
  EXPECT_GE(s2.peak, s0.in_use + block);
  engine::cuda::reset_peak_memory();
  EXPECT_EQ(memory_stats().peak, s2.in_use);
  if (engine::cuda::caching_enabled()) {
    EXPECT_GE(s2.reserved, s2.in_use + block);  // kept cached
    engine::cuda::empty_cache();
    EXPECT_EQ(memory_stats().reserved, memory_stats().in_use);
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
