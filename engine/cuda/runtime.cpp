// engine/cuda/runtime.cpp — the engine's side of the CUDA backend: device discovery, the
// entry points of engine/memory.h (alloc, free, copy; host<->device copies go through the
// pinned pool of engine/cuda/staging.h), the host waits of engine/cuda/host_wait.h and the
// controls of engine/cuda/runtime.h.
#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "engine/cuda/allocator.h"
#include "engine/cuda/host_wait.h"
#include "engine/cuda/runtime.h"
#include "engine/cuda/staging.h"
#include "engine/device.h"
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

size_t max_copy_to_host_later() { return Staging::kChunk; }

size_t begin_copy_to_host(const void* src, size_t nbytes, int device_index) {
  require_device(device_index);
  return staging().begin_to_host(src, nbytes);
}

void end_copy_to_host(size_t ticket, void* dst) { staging().end_to_host(ticket, dst); }

// ---- engine/cuda/host_wait.h ---------------------------------------------------------------

namespace {
std::atomic<size_t> g_host_syncs{0};
}  // namespace

void wait_for_stream() {
  g_host_syncs.fetch_add(1);
  KCUDA_CHECK(cudaStreamSynchronize(kernels::cuda::stream()));
}

cudaError_t wait_for_stream_nothrow() {
  g_host_syncs.fetch_add(1);
  return cudaStreamSynchronize(kernels::cuda::stream());
}

void wait_for_event(cudaEvent_t event, bool counted) {
  if (counted) g_host_syncs.fetch_add(1);
  KCUDA_CHECK(cudaEventSynchronize(event));
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
  wait_for_stream();
}

size_t host_syncs() { return g_host_syncs.load(); }
uint64_t launch_count() { return kernels::cuda::launch_count(); }
uint64_t library_call_count() { return kernels::cuda::library_call_count(); }

size_t pinned_staging_bytes() { return available() ? staging().pinned_bytes() : 0; }

void set_sync_after_launch(bool on) { kernels::cuda::set_sync_after_launch(on); }

void set_tf32(bool on) { kernels::cuda::set_tf32(on); }
bool tf32() { return kernels::cuda::tf32(); }

void set_cudnn_benchmark(bool on) { kernels::cuda::set_cudnn_benchmark(on); }
bool cudnn_benchmark() { return kernels::cuda::cudnn_benchmark(); }

void set_cudnn_deterministic(bool on) { kernels::cuda::set_cudnn_deterministic(on); }
bool cudnn_deterministic() { return kernels::cuda::cudnn_deterministic(); }

void set_cudnn_bn_persistent(bool on) { kernels::cuda::set_cudnn_bn_persistent(on); }
bool cudnn_bn_persistent() { return kernels::cuda::cudnn_bn_persistent(); }

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

}  // namespace engine::cuda

namespace engine {

void set_gpu_kernels(const std::string& choice) {
  check(choice == "default" || choice == "ours" || choice == "vendor", "--kernels: '", choice,
        "' is not a choice (default, ours or vendor)");
  if (choice == "default") return;
  for (int f = 0; f < static_cast<int>(cuda::Family::kCount); ++f)
    cuda::set_impl(static_cast<cuda::Family>(f),
                   choice == "ours" ? cuda::Impl::Ours : cuda::Impl::Vendor);
}

void set_gpu_tf32(bool on) { cuda::set_tf32(on); }
void set_gpu_cudnn_benchmark(bool on) { cuda::set_cudnn_benchmark(on); }
void set_gpu_cudnn_deterministic(bool on) { cuda::set_cudnn_deterministic(on); }

std::string gpu_kernels_summary() {
  std::string s;
  for (int f = 0; f < static_cast<int>(cuda::Family::kCount); ++f) {
    const auto fam = static_cast<cuda::Family>(f);
    s += cat(kernels::cuda::family_name(fam), "=", kernels::cuda::impl_name(cuda::impl(fam)), " ");
  }
  return s + (cuda::tf32() ? "TF32=on" : "TF32=off") +
         (cuda::cudnn_benchmark() ? " cudnn_benchmark=on" : "") +
         (cuda::cudnn_deterministic() ? "" : " cudnn_deterministic=off");
}

}  // namespace engine

namespace engine::cuda {

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
