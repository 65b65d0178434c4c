#include "engine/memory.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include "engine/error.h"
#include "engine/host_cache.h"
#include "engine/storage.h"

namespace engine {

void* alloc_bytes(size_t nbytes, Device device) {
  if (device.is_cuda()) return cuda::alloc(nbytes, device.index);
  return host_cache().allocate(nbytes);
}

void free_bytes(void* ptr, size_t nbytes, Device device) {
  if (!ptr) return;
  if (device.is_cuda()) return cuda::free(ptr, nbytes, device.index);
  host_cache().release(ptr, nbytes);
}

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes) {
  if (nbytes == 0) return;
  if (dst_device.is_cpu() && src_device.is_cpu()) {
    std::memcpy(dst, src, nbytes);
    return;
  }
  cuda::copy(dst, dst_device, src, src_device, nbytes);
}

Storage::Storage(size_t nbytes, Device device)
    : data_(alloc_bytes(nbytes, device)), nbytes_(nbytes), device_(device) {}

Storage::~Storage() { free_bytes(data_, nbytes_, device_); }

Device Device::parse(const std::string& s) {
  if (s == "cpu") return cpu();
  if (s == "cuda") return cuda(0);
  if (s.rfind("cuda:", 0) == 0) {
    try {
      size_t used = 0;
      int i = std::stoi(s.substr(5), &used);
      if (used == s.size() - 5 && i >= 0) return cuda(i);
    } catch (const std::exception&) {
    }
  }
  fail("unknown device '", s, "' (expected cpu, cuda or cuda:N)");
}

bool cuda_available() { return cuda::available(); }

}  // namespace engine
