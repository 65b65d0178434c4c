#include "engine/host_cache.h"

#include <unistd.h>

#include <algorithm>
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

}  // namespace

HostBlockCache::HostBlockCache()
    : HostBlockCache(!kSanitized && !env_flag("ENGINE_CPU_NO_CACHE"), default_limit()) {}

HostBlockCache::HostBlockCache(bool enabled, size_t limit_bytes)
    : enabled_(enabled), limit_(limit_bytes) {}

HostBlockCache::~HostBlockCache() { empty(); }

size_t HostBlockCache::block_size(size_t nbytes) {
  if (nbytes < kMinCachedBytes)
    return std::max<size_t>((nbytes + kAlign - 1) / kAlign, 1) * kAlign;
  return (nbytes + kGranule - 1) / kGranule * kGranule;
}

bool HostBlockCache::cacheable_size(size_t bytes) const {
  return enabled_ && bytes >= kMinCachedBytes && bytes <= limit_ / 8;
}

void* HostBlockCache::allocate(size_t nbytes) {
  const size_t bytes = block_size(nbytes);
  const bool cacheable = cacheable_size(bytes);
  if (cacheable) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = free_.lower_bound(bytes);
    if (it != free_.end() && it->first - bytes <= bytes / 16) {
      void* p = it->second;
      stats_.cached_bytes -= it->first;
      ++stats_.hits;
      free_.erase(it);
      return p;
    }
    ++stats_.misses;
  }
  void* p = aligned_malloc(bytes);
  if (p == nullptr && cacheable) {  // give the cached blocks back and try once more
    empty();
    p = aligned_malloc(bytes);
  }
  if (p == nullptr) fail("out of host memory: could not allocate ", nbytes, " bytes");
  return p;
}

void HostBlockCache::release(void* ptr, size_t nbytes) {
  if (ptr == nullptr) return;
  // A reused block may be up to a sixteenth larger than block_size(nbytes); it is filed again
  // under that smaller size, so it is only ever handed out for requests it covers.
  const size_t bytes = block_size(nbytes);
  if (!cacheable_size(bytes)) {
    std::free(ptr);
    return;
  }
  std::lock_guard<std::mutex> lock(mu_);
  trim_locked(limit_ - bytes);
  free_.emplace(bytes, ptr);
  stats_.cached_bytes += bytes;
}

void HostBlockCache::empty() {
  std::lock_guard<std::mutex> lock(mu_);
  trim_locked(0);
}

void HostBlockCache::trim_locked(size_t limit) {
  while (stats_.cached_bytes > limit && !free_.empty()) {
    auto largest = std::prev(free_.end());
    std::free(largest->second);
    stats_.cached_bytes -= largest->first;
    free_.erase(largest);
  }
}

HostCacheStats HostBlockCache::stats() {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

HostBlockCache& host_cache() {
  static HostBlockCache* cache = new HostBlockCache();
  return *cache;
}

}  // namespace engine
