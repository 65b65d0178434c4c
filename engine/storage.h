// engine/storage.h — a reference-counted block of bytes on one device.
//
// Tensors are views onto a Storage (shape + strides + offset), so reshape/permute/slice share
// bytes instead of copying them. The bytes come from the device's allocator (engine/memory.h).
#pragma once

#include <cstddef>

#include "engine/device.h"

namespace engine {

class Storage {
 public:
  Storage(size_t nbytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
};

}  // namespace engine
