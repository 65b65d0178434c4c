// engine/memory.h — raw byte allocation and copies, per device.
//
// The CPU side is 64-byte aligned host memory, its large blocks kept for reuse
// (engine/host_cache.h). The CUDA side (engine/cuda/) is the caching device allocator; in a
// build without CUDA those functions throw a clear engine::Error.
#pragma once

#include <cstddef>

#include "engine/device.h"

namespace engine {

void* alloc_bytes(size_t nbytes, Device device);
void free_bytes(void* ptr, size_t nbytes, Device device);
// Copies nbytes between any two devices (host<->device copies go through pinned staging).
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes);

namespace cuda {
// Implemented in engine/cuda/*.cu, or by engine/cuda_stub.cpp in a CPU-only build.
bool available();
void* alloc(size_t nbytes, int device_index);
void free(void* ptr, size_t nbytes, int device_index);
void copy(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes);
// A device-to-host copy the host collects later (engine/readback.h): begin queues it behind the
// work queued so far and returns a ticket; end waits for it (only for it) and writes dst, or
// with dst null drops it without waiting. At most max_copy_to_host_later() bytes per copy.
size_t max_copy_to_host_later();
size_t begin_copy_to_host(const void* src, size_t nbytes, int device_index);
void end_copy_to_host(size_t ticket, void* dst);
}  // namespace cuda

}  // namespace engine
