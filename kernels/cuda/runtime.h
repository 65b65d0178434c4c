// kernels/cuda/runtime.h — what every CUDA kernel file shares: the one compute stream, the
// cuBLAS/cuDNN handles bound to it, error checking, launch sizing, scratch memory and the
// switch between our kernels and the vendor's.
//
// Only .cu files and engine/cuda/ include this (it pulls in the CUDA headers); the per-family
// headers (copy.h, elementwise.h, ...) are plain C++ so engine/ops/*.cpp compile with g++.
//
// Errors: every CUDA/cuBLAS/cuDNN call goes through KCUDA_CHECK / KCUBLAS_CHECK /
// KCUDNN_CHECK and every launch is followed by check_launch("op"). A failure calls raise(),
// which hands the message to the handler the engine installs (it throws engine::Error); the
// kernels themselves know nothing of engine types. Launches are asynchronous, so a fault in a
// kernel is usually reported by a later call: ENGINE_CUDA_SYNC=1 synchronises after every
// launch so the error names the op that caused it.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "kernels/cuda/impl.h"
#include "kernels/dtype.h"

namespace kernels::cuda {

// ---- errors --------------------------------------------------------------------------------

// Must not return (it throws); the engine installs one that throws engine::Error.
using ErrorHandler = void (*)(const std::string& message);
void set_error_handler(ErrorHandler handler);
// Calls the installed handler (default: throws std::runtime_error).
[[noreturn]] void raise(const std::string& message);

void check_cuda(cudaError_t status, const char* what, const char* file, int line);
void check_cublas(cublasStatus_t status, const char* what, const char* file, int line);
void check_cudnn(cudnnStatus_t status, const char* what, const char* file, int line);

#define KCUDA_CHECK(call) ::kernels::cuda::check_cuda((call), #call, __FILE__, __LINE__)
#define KCUBLAS_CHECK(call) ::kernels::cuda::check_cublas((call), #call, __FILE__, __LINE__)
#define KCUDNN_CHECK(call) ::kernels::cuda::check_cudnn((call), #call, __FILE__, __LINE__)
// After every <<<...>>>: reports a bad launch at once, and a fault in the kernel too when
// ENGINE_CUDA_SYNC=1 (set_sync_after_launch).
#define KCUDA_CHECK_LAUNCH(op) ::kernels::cuda::check_launch((op), __FILE__, __LINE__)
void check_launch(const char* op, const char* file, int line);

// After every cuBLAS / cuDNN call: counts it (library_call_count) and, with ENGINE_CUDA_SYNC=1,
// waits for it so a fault names the op.
void after_library_call(const char* op);

// Kernels launched so far by the engine's files and the labs (each launch is followed by a
// check_launch), and cuBLAS / cuDNN calls made (each of which launches one or more kernels of
// its own). The GPU benchmark counts them per training step: the driver holds about a thousand
// pending launches, and a step that queues more makes the host wait at a launch, so its host
// time then measures the GPU, not the host.
uint64_t launch_count();
uint64_t library_call_count();

// ENGINE_CUDA_SYNC=1 (read once) or this call: synchronise the stream after every launch.
void set_sync_after_launch(bool on);
bool sync_after_launch();

// TF32: float32 matrix products on the tensor cores with 10-bit mantissas (PyTorch's
// allow_tf32). Off by default, so float32 results match the CPU within float rounding; on with
// ENGINE_CUDA_TF32=1 (read once) or set_tf32(true), for speed comparisons against PyTorch's
// TF32 settings. It switches cuBLAS's math mode, cuDNN's convolution math type and the
// version of our convolution kernel (kernels/cuda/conv2d.cu) the engine picks.
void set_tf32(bool on);
bool tf32();

// How our TF32 kernels (the convolution lab's and the GEMM's) feed the tensor cores: off (the
// default), each warp rounds the operand elements it reads as it reads them (conv2d version 4);
// on, each element is rounded once in shared memory and along-k fragments are read with
// ldmatrix (conv2d version 5; mma_tf32.cuh). The same bits either way; on with
// ENGINE_CUDA_TF32_LDMATRIX=1 (read once) or set_tf32_ldmatrix(true), the default once a GPU
// run has timed it faster.
void set_tf32_ldmatrix(bool on);
bool tf32_ldmatrix();

// With tf32_ldmatrix() on, also 64x64 warp tiles on 128x128 blocks (conv2d version 6; the GEMM
// likewise): 4 warps a block, each fragment read feeding twice the products. The same bits;
// on with ENGINE_CUDA_TF32_WIDE=1 (read once) or set_tf32_wide(true), off until a GPU run has
// timed it faster.
void set_tf32_wide(bool on);
bool tf32_wide();

// cuDNN's benchmark mode (PyTorch's torch.backends.cudnn.benchmark): the first time a
// convolution shape runs (per pass and TF32 setting), cuDNN times its algorithms on it
// (cudnnFind*AlgorithmEx, which waits for the GPU) and the fastest one the engine allows is
// kept for the process. Off (the default), cuDNN's heuristics rank them without running any:
// nothing is timed at first use, and a run picks the same algorithms as the last. On with
// ENGINE_CUDNN_BENCHMARK=1 (read once) or set_cudnn_benchmark(true).
void set_cudnn_benchmark(bool on);
bool cudnn_benchmark();

// cuDNN's batch norm in training (forward and backward) in CUDNN_BATCHNORM_SPATIAL_PERSISTENT
// mode, cuDNN's optimised path for NHWC data and what PyTorch uses for channels-last training.
// The plain SPATIAL mode took 1.4 ms per forward and 2.1 ms per backward in ResNet-50's
// training step on an H200 (2026-11-27): 92% of the step. On by default; off with
// ENGINE_CUDNN_BN_PERSISTENT=0 (read once) or set_cudnn_bn_persistent(false). Eval-mode batch
// norm is always SPATIAL (cuDNN has no persistent inference).
void set_cudnn_bn_persistent(bool on);
bool cudnn_bn_persistent();

// cuDNN's convolution backward passes (data and weight gradient) only with algorithms cuDNN
// calls deterministic: on by default, so two runs of the vendor path give the same bits, as
// ours always do (PyTorch's torch.backends.cudnn.deterministic = True). Off with
// ENGINE_CUDNN_DETERMINISTIC=0 (read once) or set_cudnn_deterministic(false): every algorithm
// may run, as PyTorch's default; some add partial sums with atomics, in whatever order the GPU
// schedules them. The forward pass is deterministic either way.
void set_cudnn_deterministic(bool on);
bool cudnn_deterministic();

// ---- stream, device and library handles ----------------------------------------------------

// The one compute stream (non-blocking, created on first use on the current device). Every
// kernel, copy and library call of the engine is ordered on it, which is what makes the
// engine's caching allocator safe: a block freed by the host is only reused by later work on
// this same stream.
cudaStream_t stream();
int sm_count();                  // multiprocessors of the current device
cublasHandle_t cublas_handle();  // created once, bound to stream()
cudnnHandle_t cudnn_handle();    // created once, bound to stream()

// Blocks for a grid-stride loop over n items with `threads` per block: enough to fill the
// GPU a few times over, never more than the work needs, at least 1.
int grid_for(int64_t n, int threads);

// ---- scratch memory ------------------------------------------------------------------------

// Kernels that need a temporary buffer (split reductions, library workspaces) take it from
// the engine's caching allocator through these hooks; without hooks they use
// cudaMallocAsync/cudaFreeAsync on stream(). Freeing is stream-ordered: the buffer may be
// handed out again only to work queued later on stream().
struct ScratchHooks {
  void* (*alloc)(size_t nbytes) = nullptr;
  void (*free)(void* ptr, size_t nbytes) = nullptr;
};
void set_scratch_hooks(ScratchHooks hooks);

class Scratch {
 public:
  explicit Scratch(size_t nbytes);
  ~Scratch();
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  void* get() const { return ptr_; }

 private:
  void* ptr_ = nullptr;
  size_t nbytes_ = 0;
};

// ---- helpers for launchers -----------------------------------------------------------------

// Calls f(T{}) with T = float or double; other dtypes fail with "<op>: expected a float32 or
// float64 tensor, got int64". Launchers dispatch once, so each kernel has two instantiations.
[[noreturn]] void unsupported_dtype(const char* op, DType t);
template <class F>
void dispatch_float(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::Float32: f(float{}); return;
    case DType::Float64: f(double{}); return;
    default: unsupported_dtype(op, t);
  }
}

// Runs f(), turning a std::runtime_error from a kernel lab (depthwise_conv2d, layernorm, gelu,
// knn: they depend on nothing of ours, so they throw the standard type) into raise(), i.e.
// engine::Error, with the op's name in front (unless the lab already put it there).
template <class F>
void call_lab(const char* op, F&& f) {
  try {
    f();
  } catch (const std::runtime_error& e) {
    const std::string m = e.what();
    raise(m.rfind(op, 0) == 0 ? m : std::string(op) + ": " + m);  // no "op: op: ..."
  }
}

}  // namespace kernels::cuda
