// tools/cuda_emu/include/cuda_emu/memory.h — "device memory": ordinary CPU memory that the
// emulator keeps a list of, so that it can tell a device pointer from a host one.
//
// Every cudaMalloc gets its own mapping: a PROT_NONE guard page, the data, another guard page.
// The data starts 256-byte aligned (as cudaMalloc's does: the labs' 16-byte fast paths depend
// on it) and ends as close to the second guard page as that alignment allows, so a kernel
// that runs more than 255 bytes past the end of a buffer faults instead of reading its
// neighbour. Overruns within the last 256 bytes go unnoticed, as on the GPU without
// compute-sanitizer. Fresh memory is filled with a poison byte (see poison_byte()), never
// zeros: a kernel that reads a workspace it never wrote gets garbage here too.
//
// Built with -fsanitize=address, buffers are instead exact-size heap blocks (256-byte aligned):
// AddressSanitizer's redzones then catch every overrun, the last 256 bytes included.
//
// The list is also what lets the emulator check that kernel pointer arguments, cudaMemcpy
// directions and cp.async sources refer to device memory.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <map>

#include "cuda_emu/fiber.h"

namespace emu {

// The byte that fills memory nobody has written yet (fresh allocations, each block's shared
// memory). It alternates between 0xFF (a float NaN, an int -1) and 0xCD (-4.3e8 as a float,
// and not a value a kernel is likely to use as a sentinel: 0xFF..FF is knn.cu's "no
// candidate" key, so poisoning with it alone would hide a missing initialisation).
inline unsigned char poison_byte() {
  static unsigned serial = 0;
  return (serial++ & 1) ? 0xCD : 0xFF;
}

struct Allocation {
  char* map = nullptr;  // the whole mapping, guard pages included
  size_t map_bytes = 0;
  char* data = nullptr;  // what cudaMalloc returned
  size_t bytes = 0;      // what was asked for
};

class DeviceMemory {
 public:
  ~DeviceMemory() {
    for (auto& [begin, a] : allocations_) give_back(a);
  }

  // The emulated device's memory: what cudaMemGetInfo reports, and where cudaMalloc says "out
  // of memory" (the host's own limits would otherwise decide, differently on every machine).
  static constexpr size_t kCapacity = size_t{16} << 30;

  void* allocate(size_t bytes) {
    if (bytes == 0 || bytes > kCapacity - in_use_) return nullptr;
    Allocation a;
    a.bytes = bytes;
#if defined(EMU_ASAN)
    void* q = nullptr;
    if (posix_memalign(&q, 256, bytes) != 0) return nullptr;
    a.data = static_cast<char*>(q);
    std::memset(a.data, poison_byte(), bytes);
#else
    const size_t page = page_size();
    const size_t padded = (bytes + 255) / 256 * 256;
    const size_t data_pages = (padded + page - 1) / page * page;
    a.map_bytes = data_pages + 2 * page;
    void* p = mmap(nullptr, a.map_bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return nullptr;
    a.map = static_cast<char*>(p);
    mprotect(a.map, page, PROT_NONE);
    mprotect(a.map + page + data_pages, page, PROT_NONE);
    a.data = a.map + page + data_pages - padded;
    std::memset(a.data, poison_byte(), padded);
#endif
    allocations_[reinterpret_cast<uintptr_t>(a.data)] = a;
    in_use_ += bytes;
    return a.data;
  }

  bool release(void* p) {
    auto it = allocations_.find(reinterpret_cast<uintptr_t>(p));
    if (it == allocations_.end()) return false;
    in_use_ -= it->second.bytes;
    give_back(it->second);
    allocations_.erase(it);
    return true;
  }

  // The allocation whose data (or one-past-the-end) contains p, or null.
  const Allocation* find(const void* p) const {
    const uintptr_t u = reinterpret_cast<uintptr_t>(p);
    auto it = allocations_.upper_bound(u);
    if (it == allocations_.begin()) return nullptr;
    const Allocation& a = std::prev(it)->second;
    return u <= reinterpret_cast<uintptr_t>(a.data) + a.bytes ? &a : nullptr;
  }

  // Is [p, p + n) inside one allocation?
  bool contains(const void* p, size_t n) const {
    const Allocation* a = find(p);
    return a != nullptr && static_cast<const char*>(p) + n <= a->data + a->bytes;
  }

  size_t in_use() const { return in_use_; }

  // The allocation whose mapping (guard pages included) contains p: for the fault handler.
  const Allocation* find_mapping(const void* p) const {
    for (const auto& [begin, a] : allocations_)
      if (p >= a.map && p < a.map + a.map_bytes) return &a;
    return nullptr;
  }

 private:
  static void give_back(const Allocation& a) {
    if (a.map != nullptr)
      munmap(a.map, a.map_bytes);
    else
      std::free(a.data);  // a heap block (EMU_ASAN)
  }

  std::map<uintptr_t, Allocation> allocations_;  // by data address
  size_t in_use_ = 0;                            // bytes asked for, all live allocations
};

inline DeviceMemory& device_memory() {
  static DeviceMemory memory;
  return memory;
}

}  // namespace emu
