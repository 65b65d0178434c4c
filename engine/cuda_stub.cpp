// Compiled only when the engine is built without CUDA: every CUDA entry point says so.
#include "engine/device.h"
#include "engine/error.h"
#include "engine/memory.h"
#include "engine/profiler_clock.h"

namespace engine {

void set_gpu_kernels(const std::string& choice) {
  check(choice == "default" || choice == "ours" || choice == "vendor", "--kernels: '", choice,
        "' is not a choice (default, ours or vendor)");
}
void set_gpu_tf32(bool) {}
void set_gpu_cudnn_benchmark(bool) {}
void set_gpu_cudnn_deterministic(bool) {}
std::string gpu_kernels_summary() { return "no CUDA in this build"; }

}  // namespace engine

namespace engine::cuda {

bool available() { return false; }

void* alloc(size_t, int) {
  fail("this build of the engine has no CUDA backend (configure with -DENGINE_CUDA=ON)");
}

void free(void*, size_t, int) {}

void copy(void*, Device, const void*, Device, size_t) {
  fail("this build of the engine has no CUDA backend (configure with -DENGINE_CUDA=ON)");
}

size_t max_copy_to_host_later() { return 0; }

size_t begin_copy_to_host(const void*, size_t, int) {
  fail("this build of the engine has no CUDA backend (configure with -DENGINE_CUDA=ON)");
}

void end_copy_to_host(size_t, void*) {}

}  // namespace engine::cuda

namespace engine::profiler {

std::unique_ptr<Clock> make_event_clock() {
  fail("profiler: this build of the engine has no CUDA backend, so it has no GPU clock");
}

}  // namespace engine::profiler
