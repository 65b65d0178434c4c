// engine/cuda/runtime.cpp — the engine's side of the CUDA backend: device discovery, the
// entry points of engine/memory.h (alloc, free, copy) and the controls of engine/cuda/runtime.h.
//
// Host<->device copies go through two pinned staging buffers used in turn, so the DMA engine
// reads/writes page-locked memory at full PCIe speed and the host copy of one chunk overlaps
// the transfer of the next:
//   host -> device: memcpy into a staging buffer, cudaMemcpyAsync on the compute stream, move
//     on (the buffer is reused only after its event says the transfer is done). The call
//     returns before the data arrives; later work on the stream sees it.
//   device -> host: cudaMemcpyAsync into a staging buffer, wait for its event, memcpy out.
//     This wait is where the host synchronises with the GPU (to_vector, item, saving).
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "engine/cuda/allocator.h"
#include "engine/cuda/runtime.h"
#include "engine/error.h"
#include "engine/memory.h"
#include "kernels/cuda/runtime.h"

namespace engine::cuda {

namespace {

// Kernel-side failures become engine::Error, and kernels' scratch buffers come from the
// caching allocator. Installed during static initialisation of this file, which every CUDA
// build links (engine/memory.cpp calls alloc below), so before any kernel can run.
[[noreturn]] void throw_engine_error(const std::string& message) { throw Error(message); }
void* scratch_alloc(size_t nbytes) { return allocator().allocate(nbytes); }
void scratch_free(void* ptr, size_t) { allocator().release(ptr); }
[[maybe_unused]] const bool g_hooks_installed = [] {
  kernels::cuda::set_error_handler(&throw_engine_error);
  kernels::cuda::set_scratch_hooks({&scratch_alloc, &scratch_free});
  return true;
}();

struct DeviceProbe {
  bool ok = false;
  std::string why;  // when !ok: what cudaGetDeviceCount said
};

const DeviceProbe& probe() {
  static const DeviceProbe p = [] {
    DeviceProbe r;
    int count = 0;
    cudaError_t status = cudaGetDeviceCount(&count);
    if (status != cudaSuccess) {
      cudaGetLastError();
      r.why = std::string("cudaGetDeviceCount: ") + cudaGetErrorString(status);
    } else if (count == 0) {
      r.why = "cudaGetDeviceCount found 0 devices";
    } else {
      r.ok = cudaSetDevice(0) == cudaSuccess;
      if (!r.ok) r.why = "cudaSetDevice(0) failed";
    }
    return r;
  }();
  return p;
}

void require_device(int device_index) {
  const DeviceProbe& p = probe();
  check(p.ok, "cuda:", device_index, ": no CUDA device is visible (", p.why,
        "); run on the CPU (device cpu) or check the NVIDIA driver and CUDA_VISIBLE_DEVICES");
  check(device_index == 0, "cuda:", device_index,
        ": the engine drives one GPU, cuda:0; choose which with CUDA_VISIBLE_DEVICES=",
        device_index);
}

// Two pinned buffers used in turn; each has an event marking the end of its last transfer.
class Staging {
 public:
  static constexpr size_t kChunk = 8 << 20;  // 8 MiB: long enough to reach full PCIe speed

  void to_device(void* dst, const void* src, size_t nbytes) {
    std::lock_guard<std::mutex> lock(mu_);
    init();
    for (size_t off = 0, b = 0; off < nbytes; off += kChunk, b ^= 1) {
      const size_t len = std::min(kChunk, nbytes - off);
      KCUDA_CHECK(cudaEventSynchronize(done_[b]));  // its previous transfer has left
      std::memcpy(buf_[b], static_cast<const char*>(src) + off, len);
      KCUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(dst) + off, buf_[b], len,
                                  cudaMemcpyHostToDevice, kernels::cuda::stream()));
      KCUDA_CHECK(cudaEventRecord(done_[b], kernels::cuda::stream()));
    }
  }

  void to_host(void* dst, const void* src, size_t nbytes) {
    std::lock_guard<std::mutex> lock(mu_);
    init();
    auto issue = [&](size_t off, size_t b) {
      const size_t len = std::min(kChunk, nbytes - off);
      KCUDA_CHECK(cudaMemcpyAsync(buf_[b], static_cast<const char*>(src) + off, len,
                                  cudaMemcpyDeviceToHost, kernels::cuda::stream()));
      KCUDA_CHECK(cudaEventRecord(done_[b], kernels::cuda::stream()));
    };
    issue(0, 0);
    for (size_t off = 0, b = 0; off < nbytes; off += kChunk, b ^= 1) {
      if (off + kChunk < nbytes) issue(off + kChunk, b ^ 1);  // next chunk in flight
      KCUDA_CHECK(cudaEventSynchronize(done_[b]));
      std::memcpy(static_cast<char*>(dst) + off, buf_[b], std::min(kChunk, nbytes - off));
    }
  }

 private:
  void init() {
    if (buf_[0]) return;
    for (int b = 0; b < 2; ++b) {
      KCUDA_CHECK(cudaHostAlloc(&buf_[b], kChunk, cudaHostAllocDefault));
      KCUDA_CHECK(cudaEventCreateWithFlags(&done_[b], cudaEventDisableTiming));
    }
  }

  std::mutex mu_;
  void* buf_[2] = {nullptr, nullptr};
  cudaEvent_t done_[2] = {nullptr, nullptr};
};

Staging& staging() {
  static Staging* s = new Staging();  // leaked like the allocator: freed pinned memory at exit
  return *s;                          // is the driver's job, and it may be gone already
}

}  // namespace

// ---- engine/memory.h -----------------------------------------------------------------------

bool available() { return probe().ok; }

void* alloc(size_t nbytes, int device_index) {
  require_device(device_index);
  return allocator().allocate(nbytes);
}

void free(void* ptr, size_t, int) { allocator().release(ptr); }

void copy(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes) {
  if (nbytes == 0) return;
  if (dst_device.is_cuda()) require_device(dst_device.index);
  if (src_device.is_cuda()) require_device(src_device.index);
  if (dst_device.is_cuda() && src_device.is_cuda()) {
    KCUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToDevice,
                                kernels::cuda::stream()));
    if (kernels::cuda::sync_after_launch()) synchronize();
    return;
  }
  if (dst_device.is_cuda()) return staging().to_device(dst, src, nbytes);
  if (src_device.is_cuda()) return staging().to_host(dst, src, nbytes);
  std::memcpy(dst, src, nbytes);
}

// ---- engine/cuda/runtime.h -----------------------------------------------------------------

MemoryStats memory_stats() { return allocator().stats(); }
void reset_peak_memory() { allocator().reset_peak(); }
void empty_cache() { allocator().empty_cache(); }
bool caching_enabled() { return allocator().caching(); }
void set_poison(bool on) { allocator().set_poison(on); }

cudaStream_t stream() {
  require_device(0);
  return kernels::cuda::stream();
}

void synchronize() {
  if (!available()) return;
  KCUDA_CHECK(cudaStreamSynchronize(kernels::cuda::stream()));
}

void set_sync_after_launch(bool on) { kernels::cuda::set_sync_after_launch(on); }

void set_tf32(bool on) { kernels::cuda::set_tf32(on); }
bool tf32() { return kernels::cuda::tf32(); }

void set_impl(const std::string& family, const std::string& choice) {
  check(choice == "ours" || choice == "vendor", "set_impl: '", choice,
        "' is not an implementation (ours or vendor)");
  const Impl i = choice == "ours" ? Impl::Ours : Impl::Vendor;
  std::string known;
  for (int f = 0; f < static_cast<int>(Family::kCount); ++f) {
    std::string name = kernels::cuda::family_name(static_cast<Family>(f));
    std::string lower = name;
    for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (family == name || family == lower) return set_impl(static_cast<Family>(f), i);
    known += (known.empty() ? "" : ", ") + lower;
  }
  fail("set_impl: unknown op family '", family, "' (known: ", known, ")");
}

std::string device_description() {
  const DeviceProbe& p = probe();
  if (!p.ok) return "no CUDA device (" + p.why + ")";
  cudaDeviceProp prop{};
  KCUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  char gib[32];
  std::snprintf(gib, sizeof gib, "%.1f", prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0));
  return cat(prop.name, " (sm_", prop.major, prop.minor, ", ", prop.multiProcessorCount,
             " SMs, ", gib, " GiB)");
}

}  // namespace engine::cuda
