#include "engine/host_cache.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "engine/error.h"

namespace engine {

namespace {

// Under AddressSanitizer every block is its own (a cached block would hide a use after free).
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

bool env_flag(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && std::string(v) == "1";
}

// An eighth of physical memory, at most 4 GiB; ENGINE_CPU_CACHE_MB overrides.
size_t default_limit() {
  if (const char* v = std::getenv("ENGINE_CPU_CACHE_MB")) {
    char* end = nullptr;
    const unsigned long long mb = std::strtoull(v, &end, 10);
    check(end != v && *end == '\0', "ENGINE_CPU_CACHE_MB must be a whole number of MiB, got '", v,
          "'");
    return static_cast<size_t>(mb) << 20;
  }
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  const size_t physical = pages > 0 && page > 0 ? size_t(pages) * size_t(page) : size_t(0);
  return std::min(physical / 8, size_t(4) << 30);
}

void* aligned_malloc(size_t bytes) {
  return std::aligned_alloc(HostBlockCache::kAlign, bytes);  // bytes: a multiple of kAlign
}

constexpr size_t kMiB = size_t(1) << 20;

// Segments of 20 MiB for requests below 10 MiB (fewer when the limit is tiny: a segment above
// the limit would go back to malloc as soon as it is free); larger requests get a segment of
// their own, rounded up to 2 MiB so that nearby sizes can reuse it.
BlockPool::Policy pool_policy(size_t limit) {
  const size_t small_segment =
      std::clamp<size_t>(limit / 8 / HostBlockCache::kGranule * HostBlockCache::kGranule,
                         HostBlockCache::kGranule, 20 * kMiB);
  return {HostBlockCache::kGranule, HostBlockCache::kMinCachedBytes, [small_segment](size_t bytes) {
            if (bytes < 10 * kMiB) return std::max(bytes, small_segment);
            return (bytes + 2 * kMiB - 1) / (2 * kMiB) * (2 * kMiB);
          }};
}

BlockPool::Source malloc_source() {
  return {aligned_malloc, [](void* ptr, size_t) { std::free(ptr); }};
}

}  // namespace

HostBlockCache::HostBlockCache()
    : HostBlockCache(!kSanitized && !env_flag("ENGINE_CPU_NO_CACHE"), default_limit()) {}

HostBlockCache::HostBlockCache(bool enabled, size_t limit_bytes)
    : enabled_(enabled), limit_(limit_bytes), pool_(pool_policy(limit_bytes), malloc_source()) {}

size_t HostBlockCache::block_size(size_t nbytes) {
  const size_t granule = nbytes < kMinCachedBytes ? kAlign : kGranule;
  return std::max<size_t>((nbytes + granule - 1) / granule, 1) * granule;
}

bool HostBlockCache::from_pool(size_t nbytes) const {
  return enabled_ && nbytes >= kMinCachedBytes && block_size(nbytes) <= limit_ / 8;
}

void* HostBlockCache::allocate(size_t nbytes) {
  const size_t bytes = block_size(nbytes);
  void* p = nullptr;
  if (from_pool(nbytes)) {
    std::lock_guard<std::mutex> lock(mu_);
    p = pool_.allocate(bytes);
    if (p == nullptr) {  // give the free segments back and try once more
      pool_.unmap_free_segments();
      p = pool_.allocate(bytes);
    }
  } else {
    p = aligned_malloc(bytes);
    if (p == nullptr && enabled_) {
      empty();
      p = aligned_malloc(bytes);
    }
  }
  if (p == nullptr) fail("out of host memory: could not allocate ", nbytes, " bytes");
  return p;
}

void HostBlockCache::release(void* ptr, size_t nbytes) {
  if (ptr == nullptr) return;
  if (!from_pool(nbytes)) {
    std::free(ptr);
    return;
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (pool_.release(ptr) == 0) {
    std::fprintf(stderr, "engine: host free of %p (%zu bytes), which the cache did not hand out\n",
                 ptr, nbytes);
    return;
  }
  if (pool_.stats().free_bytes() > limit_) pool_.unmap_free_segments(limit_);
}

void HostBlockCache::empty() {
  std::lock_guard<std::mutex> lock(mu_);
  pool_.unmap_free_segments();
}

HostCacheStats HostBlockCache::stats() {
  std::lock_guard<std::mutex> lock(mu_);
  const BlockPoolStats& s = pool_.stats();
  return {s.free_bytes(), s.reserved, s.hits, s.segments_mapped};
}

HostBlockCache& host_cache() {
  static HostBlockCache* cache = new HostBlockCache();
  return *cache;
}

}  // namespace engine
