// tools/cuda_emu/include/cuda_emu/launch.h — `kernel<<<grid, block, smem, stream>>>(args)`.
//
// transform.py rewrites every launch into
//   ::emu::Launcher(kernel, "kernel", grid, block, smem, stream)(args);
// The Launcher converts the arguments to the kernel's parameter types once (as a launch does),
// checks what the GPU would refuse — the configuration (block and grid limits, dynamic shared
// memory beyond 48 KB without the cudaFuncSetAttribute opt-in) and pointer arguments that are
// not device memory — and then runs the whole grid, block by block (device.h), before it
// returns. Every thread calls the kernel with its own copy of the arguments.
//
// Problems are reported like a failed launch (errors.h): the lab's check_launch() right after
// the launch throws with the emulator's message. EMU_STATS=1 prints, at exit, the launches,
// blocks and seconds spent per kernel: where an emulated test's time goes.
//
// EMU_KERNELS=skip checks and counts every launch but runs no kernel: every result is garbage,
// and what a program's time is then made of is its own host work (building the autograd graph,
// allocating, checking shapes, launching). That is the floor a real GPU cannot take away: a
// training step whose host work outlasts its kernels leaves the GPU waiting.
#pragma once

#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <source_location>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "cuda_emu/device.h"
#include "cuda_emu/errors.h"
#include "cuda_emu/faults.h"
#include "cuda_emu/memory.h"

namespace emu {

// ---- per-kernel attributes (cudaFuncSetAttribute) ----------------------------------------------
inline std::map<const void*, size_t>& max_dynamic_shared() {  // kernel -> opt-in, in bytes
  static std::map<const void*, size_t> opt_in;
  return opt_in;
}

// ---- statistics (EMU_STATS=1) -----------------------------------------------------------------
struct KernelStats {
  long launches = 0, blocks = 0;
  double seconds = 0;
};
struct Stats {
  bool enabled = std::getenv("EMU_STATS") != nullptr;
  std::map<std::string, KernelStats> by_kernel;
  ~Stats() {
    if (!enabled) return;
    std::fprintf(stderr, "cuda_emu: %-60s %9s %9s %9s\n", "kernel", "launches", "blocks",
                 "seconds");
    for (const auto& [name, k] : by_kernel)
      std::fprintf(stderr, "cuda_emu: %-60s %9ld %9ld %9.3f\n", name.c_str(), k.launches, k.blocks,
                   k.seconds);
  }
};
inline Stats& stats() {
  static Stats s;
  return s;
}

// ---- EMU_KERNELS=skip ------------------------------------------------------------------------
// Read once from the environment; a test may switch it (set_kernels_skipped).
inline bool& kernels_skipped_flag() {
  static bool skip = [] {
    const char* v = std::getenv("EMU_KERNELS");
    return v != nullptr && std::string(v) == "skip";
  }();
  return skip;
}
inline bool kernels_skipped() { return kernels_skipped_flag(); }
inline void set_kernels_skipped(bool skip) { kernels_skipped_flag() = skip; }

// ---- the configuration a GPU (sm_90) accepts --------------------------------------------------
inline std::string check_config(const void* kernel, dim3 grid, dim3 block, size_t smem) {
  auto dims = [](dim3 d) {
    return "(" + std::to_string(d.x) + "," + std::to_string(d.y) + "," + std::to_string(d.z) + ")";
  };
  const uint64_t threads = uint64_t(block.x) * block.y * block.z;
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || threads == 0)
    return "empty grid " + dims(grid) + " or block " + dims(block);
  if (threads > kMaxThreadsPerBlock || block.x > 1024 || block.y > 1024 || block.z > 64)
    return "block " + dims(block) + " is over 1024 threads (or z over 64)";
  if (grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535)
    return "grid " + dims(grid) + " is over the limits (2^31-1, 65535, 65535)";
  const auto opt = max_dynamic_shared().find(kernel);
  const size_t allowed = opt == max_dynamic_shared().end() ? kDefaultMaxDynamic : opt->second;
  if (smem > allowed)
    return std::to_string(smem) + " bytes of dynamic shared memory, but the kernel allows " +
           std::to_string(allowed) +
           " (over 48 KB needs cudaFuncSetAttribute(MaxDynamicSharedMemorySize) first)";
  return "";
}

// ---- running a grid ---------------------------------------------------------------------------
inline cudaError_t run_grid(const void* kernel, const char* name, const std::source_location& site,
                            dim3 grid, dim3 block, size_t smem, const std::function<void()>& body) {
  announce();
  auto at = [&] { return std::string(name) + " launched at " + where(site); };
  if (g_current != nullptr)
    return report(cudaErrorNotSupported, "kernel " + at() +
                                             " from device code: dynamic "
                                             "parallelism is not emulated");
  if (std::string bad = check_config(kernel, grid, block, smem); !bad.empty())
    return report(cudaErrorInvalidConfiguration, "kernel " + at() + ": " + bad);
  if (kernels_skipped()) {
    if (stats().enabled) ++stats().by_kernel[name].launches;
    return cudaSuccess;
  }
  install_fault_handler();
  const auto start = std::chrono::steady_clock::now();
  Run& r = emulator().run;
  r.kernel = name;
  r.launch_site = site;
  r.grid = grid, r.block = block, r.dynamic_shared = smem;
  r.body = &body;
  r.nthreads = block.x * block.y * block.z;
  r.failed = false;
  r.failure.clear();
  g_block_dim = block, g_grid_dim = grid;
  long blocks = 0;
  for (unsigned z = 0; z < grid.z && !r.failed; ++z)
    for (unsigned y = 0; y < grid.y && !r.failed; ++y)
      for (unsigned x = 0; x < grid.x && !r.failed; ++x, ++blocks) run_block({x, y, z});
  if (stats().enabled) {
    KernelStats& k = stats().by_kernel[name];
    ++k.launches, k.blocks += blocks;
    k.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  if (r.failed) return report(cudaErrorLaunchFailure, r.failure);
  return cudaSuccess;
}

// ---- the launch expression --------------------------------------------------------------------
template <class... P>
class Launcher {
 public:
  Launcher(void (*kernel)(P...), const char* name, dim3 grid, dim3 block, size_t smem = 0,
           cudaStream_t = nullptr, std::source_location site = std::source_location::current())
      : kernel_(kernel), name_(name), grid_(grid), block_(block), smem_(smem), site_(site) {}

  template <class... A>
  void operator()(A&&... args) const {
    static_assert(sizeof...(A) == sizeof...(P), "wrong number of kernel arguments");
    const std::tuple<P...> params(std::forward<A>(args)...);  // converted as by a launch
    // (Skipped with the kernels: EMU_KERNELS=skip measures the program's host work alone.)
    if (std::string bad = kernels_skipped()
                              ? std::string()
                              : host_pointer_argument(params, std::index_sequence_for<P...>{});
        !bad.empty()) {
      report(cudaErrorIllegalAddress,
             "kernel " + std::string(name_) + " launched at " + where(site_) + ": " + bad);
      return;
    }
    const std::function<void()> body = [&] { std::apply(kernel_, params); };
    run_grid(reinterpret_cast<const void*>(kernel_), name_, site_, grid_, block_, smem_, body);
  }

 private:
  // A non-null pointer argument must point into (or one past) a cudaMalloc buffer: a kernel
  // that dereferences a host pointer faults on the GPU.
  template <size_t... I>
  static std::string host_pointer_argument(const std::tuple<P...>& params,
                                           std::index_sequence<I...>) {
    std::string bad;
    auto check = [&](size_t i, const auto& v) {
      if constexpr (std::is_pointer_v<std::decay_t<decltype(v)>>) {
        if (v != nullptr && bad.empty() && device_memory().find(v) == nullptr)
          bad = "argument " + std::to_string(i + 1) + " is not device memory (a host pointer?)";
      }
    };
    (check(I, std::get<I>(params)), ...);
    (void)check, (void)params;  // (a kernel without arguments)
    return bad;
  }

  void (*kernel_)(P...);
  const char* name_;
  dim3 grid_, block_;
  size_t smem_;
  std::source_location site_;
};

}  // namespace emu
