// tools/cuda_emu/include/cuda_emu/runtime.h — the CUDA runtime API calls the kernel labs, the
// engine's CUDA backend (engine/cuda/, kernels/cuda/) and their tests make, and nothing else (a
// call the emulator does not know fails to compile).
//
// One emulated device (device 0) with kSmCount SMs and DeviceMemory::kCapacity bytes. Memory
// calls act on memory.h's allocations and check what the real runtime checks: that device
// pointers are device memory, host pointers are not, and that a range stays inside its buffer.
// Everything is synchronous: "Async" calls are done when they return, whatever the stream.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "cuda_emu/device.h"
#include "cuda_emu/errors.h"
#include "cuda_emu/launch.h"
#include "cuda_emu/memory.h"
#include "cuda_emu/types.h"

enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
};
enum cudaDeviceAttr { cudaDevAttrMultiProcessorCount = 16 };
enum cudaFuncAttribute {
  cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
  cudaFuncAttributePreferredSharedMemoryCarveout = 9,
};
enum cudaSharedCarveout { cudaSharedmemCarveoutMaxShared = 100 };

// ---- errors -----------------------------------------------------------------------------------
inline cudaError_t cudaGetLastError() { return emu::take_pending(); }

inline const char* cudaGetErrorString(cudaError_t code) {
  const emu::ErrorState& e = emu::errors();
  if (code == e.last_code && !e.message.empty()) return e.message.c_str();
  switch (code) {
    case cudaSuccess:
      return "no error";
    case cudaErrorInvalidValue:
      return "invalid argument";
    case cudaErrorMemoryAllocation:
      return "out of memory";
    case cudaErrorCudartUnloading:
      return "driver shutting down";
    case cudaErrorInvalidConfiguration:
      return "invalid configuration argument";
    case cudaErrorInvalidDevicePointer:
      return "invalid device pointer";
    case cudaErrorInvalidDeviceFunction:
      return "invalid device function";
    case cudaErrorIllegalAddress:
      return "an illegal memory access was encountered";
    case cudaErrorLaunchOutOfResources:
      return "too many resources requested for launch";
    case cudaErrorLaunchFailure:
      return "unspecified launch failure";
    case cudaErrorNotReady:
      return "device not ready";
    case cudaErrorNotSupported:
      return "operation not supported";
  }
  return "unknown error";
}

inline const char* cudaGetErrorName(cudaError_t code) {
  switch (code) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorCudartUnloading: return "cudaErrorCudartUnloading";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
    case cudaErrorInvalidDeviceFunction: return "cudaErrorInvalidDeviceFunction";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorLaunchOutOfResources: return "cudaErrorLaunchOutOfResources";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorNotSupported: return "cudaErrorNotSupported";
  }
  return "cudaErrorUnknown";
}

// ---- the device -------------------------------------------------------------------------------
inline cudaError_t cudaGetDeviceCount(int* count) {
  emu::announce();
  *count = 1;
  return cudaSuccess;
}
inline cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}
inline cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (device != 0)
    return emu::report(cudaErrorInvalidValue,
                       "cudaDeviceGetAttribute: no device " + std::to_string(device));
  if (attr != cudaDevAttrMultiProcessorCount)
    return emu::report(cudaErrorInvalidValue, "cudaDeviceGetAttribute: attribute " +
                                                  std::to_string(int(attr)) + " is not emulated");
  *value = emu::kSmCount;
  return cudaSuccess;
}
inline cudaError_t cudaSetDevice(int device) {
  if (device != 0)
    return emu::report(cudaErrorInvalidValue, "cudaSetDevice: no device " + std::to_string(device));
  return cudaSuccess;
}
inline cudaError_t cudaDeviceSynchronize() { return emu::take_pending(); }

// The fields the engine prints (engine::cuda::device_name); the name says what this is.
struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  int major, minor;
  int multiProcessorCount;
};
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (device != 0)
    return emu::report(cudaErrorInvalidValue,
                       "cudaGetDeviceProperties: no device " + std::to_string(device));
  *prop = {};
  std::snprintf(prop->name, sizeof prop->name, "cuda_emu CPU emulator (not a GPU)");
  prop->totalGlobalMem = emu::DeviceMemory::kCapacity;
  prop->major = 9;  // what the code was compiled for on the GPU (sm_90)
  prop->minor = 0;
  prop->multiProcessorCount = emu::kSmCount;
  return cudaSuccess;
}

// ---- streams and events -------------------------------------------------------------------------
// Work is done when its call returns, so a stream is only a name and an event is always complete.
// Creating them is still checked, and synchronising hands out a pending error as on the GPU.
#define cudaStreamNonBlocking 0x01
#define cudaEventDisableTiming 0x02
typedef struct CUevent_st* cudaEvent_t;

namespace emu {
struct Token {};  // what a stream handle points at
// An event: when it was last recorded, by the host's clock (the work before it is done by then,
// so host time between two records is the emulated work's time; it says nothing of a GPU's).
struct Event {
  bool timing = true;
  bool recorded = false;
  std::chrono::steady_clock::time_point at;
};
}  // namespace emu

inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags) {
  emu::announce();
  if (flags & ~0x01u)
    return emu::report(cudaErrorInvalidValue, "cudaStreamCreateWithFlags: bad flags");
  *s = reinterpret_cast<cudaStream_t>(new emu::Token);
  return cudaSuccess;
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return emu::take_pending(); }
inline emu::Event* emu_event(cudaEvent_t e) { return reinterpret_cast<emu::Event*>(e); }
inline cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned flags) {
  if (flags & ~0x0Fu)
    return emu::report(cudaErrorInvalidValue, "cudaEventCreateWithFlags: bad flags");
  auto* ev = new emu::Event;
  ev->timing = !(flags & cudaEventDisableTiming);
  *e = reinterpret_cast<cudaEvent_t>(ev);
  return cudaSuccess;
}
inline cudaError_t cudaEventCreate(cudaEvent_t* e) { return cudaEventCreateWithFlags(e, 0); }
inline cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete emu_event(e);
  return cudaSuccess;
}
inline cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) {
  if (e == nullptr) return emu::report(cudaErrorInvalidValue, "cudaEventRecord: null event");
  emu_event(e)->recorded = true;
  emu_event(e)->at = std::chrono::steady_clock::now();
  return cudaSuccess;
}
inline cudaError_t cudaEventSynchronize(cudaEvent_t e) {
  if (e == nullptr) return emu::report(cudaErrorInvalidValue, "cudaEventSynchronize: null event");
  return emu::take_pending();
}
// Always complete (cudaErrorNotReady never comes back): only a pending error is handed out.
inline cudaError_t cudaEventQuery(cudaEvent_t e) {
  if (e == nullptr) return emu::report(cudaErrorInvalidValue, "cudaEventQuery: null event");
  return emu::take_pending();
}
inline cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (start == nullptr || end == nullptr || !emu_event(start)->timing || !emu_event(end)->timing ||
      !emu_event(start)->recorded || !emu_event(end)->recorded)
    return emu::report(cudaErrorInvalidValue,
                       "cudaEventElapsedTime: an event is null, not recorded, or created with "
                       "cudaEventDisableTiming");
  *ms = std::chrono::duration<float, std::milli>(emu_event(end)->at - emu_event(start)->at).count();
  return cudaSuccess;
}

// Versions: 0, there is no CUDA runtime or driver here (the device's name says "emulator").
inline cudaError_t cudaRuntimeGetVersion(int* v) {
  *v = 0;
  return cudaSuccess;
}
inline cudaError_t cudaDriverGetVersion(int* v) {
  *v = 0;
  return cudaSuccess;
}

// ---- kernels ----------------------------------------------------------------------------------
// The same answer for every kernel: kBlocksPerSm (it depends on registers and shared memory,
// which the emulator does not model); the labs size their persistent grids from it.
inline cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int* blocks, const void* kernel,
                                                                 int block_size, size_t smem) {
  if (kernel == nullptr || block_size < 1 || block_size > int(emu::kMaxThreadsPerBlock) ||
      smem > emu::kMaxShared)
    return emu::report(cudaErrorInvalidValue,
                       "cudaOccupancyMaxActiveBlocksPerMultiprocessor: "
                       "bad kernel, block size or shared memory");
  *blocks = emu::kBlocksPerSm;
  return cudaSuccess;
}

template <class... P>
inline cudaError_t cudaFuncSetAttribute(void (*kernel)(P...), cudaFuncAttribute attr, int value) {
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (value < 0 || size_t(value) > emu::kMaxShared)
      return emu::report(cudaErrorInvalidValue,
                         "cudaFuncSetAttribute: " + std::to_string(value) +
                             " bytes of dynamic shared memory is over 227 KB");
    emu::max_dynamic_shared()[reinterpret_cast<const void*>(kernel)] = size_t(value);
    return cudaSuccess;
  }
  if (attr == cudaFuncAttributePreferredSharedMemoryCarveout) {  // a hint: only checked
    if (value < -1 || value > 100)
      return emu::report(cudaErrorInvalidValue, "cudaFuncSetAttribute: carveout " +
                                                    std::to_string(value) + " not in -1..100");
    return cudaSuccess;
  }
  return emu::report(cudaErrorInvalidValue, "cudaFuncSetAttribute: attribute " +
                                                std::to_string(int(attr)) + " is not emulated");
}

// ---- memory -----------------------------------------------------------------------------------
inline cudaError_t cudaMalloc(void** p, size_t bytes) {
  emu::announce();
  *p = emu::device_memory().allocate(bytes);
  if (*p == nullptr && bytes > 0)
    return emu::report(cudaErrorMemoryAllocation,
                       "cudaMalloc of " + std::to_string(bytes) + " bytes failed");
  return cudaSuccess;
}
// The toolkit's cuda_runtime.h has this typed overload too (bench/cuda/bench_common.cuh uses it).
template <class T>
inline cudaError_t cudaMalloc(T** p, size_t bytes) {
  return cudaMalloc(reinterpret_cast<void**>(p), bytes);
}
inline cudaError_t cudaFree(void* p) {
  if (p == nullptr || emu::device_memory().release(p)) return cudaSuccess;
  return emu::report(cudaErrorInvalidDevicePointer,
                     "cudaFree of a pointer cudaMalloc did not return");
}
inline cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  *total_bytes = emu::DeviceMemory::kCapacity;
  *free_bytes = emu::DeviceMemory::kCapacity - emu::device_memory().in_use();
  return cudaSuccess;
}

// Pinned host memory is ordinary host memory here (never released: the engine's staging
// buffers live as long as the process).
#define cudaHostAllocDefault 0x00
inline cudaError_t cudaHostAlloc(void** p, size_t bytes, unsigned flags) {
  if (flags != cudaHostAllocDefault)
    return emu::report(cudaErrorInvalidValue,
                       "cudaHostAlloc: only cudaHostAllocDefault is emulated");
  *p = std::aligned_alloc(4096, (bytes + 4095) / 4096 * 4096);
  if (*p == nullptr)
    return emu::report(cudaErrorMemoryAllocation, "cudaHostAlloc of " + std::to_string(bytes) +
                                                      " bytes failed");
  return cudaSuccess;
}

inline cudaError_t cudaMallocAsync(void** p, size_t bytes, cudaStream_t) {
  return cudaMalloc(p, bytes);
}
inline cudaError_t cudaFreeAsync(void* p, cudaStream_t) { return cudaFree(p); }

namespace emu {
// A range the runtime is handed: device memory must be inside one buffer, host memory must
// not be device memory.
inline bool check_range(const char* call, const char* role, const void* p, size_t n, bool device) {
  if (device && !device_memory().contains(p, n)) {
    report(cudaErrorInvalidValue, std::string(call) + ": " + role + " [" +
                                      std::to_string(reinterpret_cast<uintptr_t>(p)) + ", +" +
                                      std::to_string(n) + ") is not inside one device buffer");
    return false;
  }
  if (!device && n > 0 && device_memory().find(p) != nullptr) {
    report(cudaErrorInvalidValue, std::string(call) + ": " + role +
                                      " is device memory but the "
                                      "copy kind says host");
    return false;
  }
  return true;
}
}  // namespace emu

inline cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  if (cudaError_t e = emu::take_pending(); e != cudaSuccess) return e;  // an earlier kernel's
  const bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  if (!emu::check_range("cudaMemcpy", "destination", dst, bytes, dst_dev) ||
      !emu::check_range("cudaMemcpy", "source", src, bytes, src_dev))
    return emu::take_pending();
  if (bytes > 0) std::memmove(dst, src, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                                   cudaStream_t) {
  return cudaMemcpy(dst, src, bytes, kind);
}
inline cudaError_t cudaMemset(void* dst, int value, size_t bytes) {
  if (!emu::check_range("cudaMemset", "destination", dst, bytes, true)) return emu::take_pending();
  if (bytes > 0) std::memset(dst, value, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t) {
  return cudaMemset(dst, value, bytes);
}
