// engine/cuda/runtime.h — the CUDA backend's public controls: memory statistics, the compute
// stream, debugging switches and the our-kernel-or-vendor switch.
//
// Only in CUDA builds (ENGINE_WITH_CUDA). Tensors never need this header: they reach the GPU
// through engine/memory.h. Use it to watch memory, to synchronise before timing, or to pick
// implementations. Environment variables read at first use:
//   ENGINE_CUDA_SYNC=1          synchronise after every launch, so an error names its op
//   ENGINE_CUDA_NO_CACHE=1      free device memory at once (for compute-sanitizer)
//   ENGINE_CUDA_POISON=1        fill new device blocks with NaN bytes (catches unwritten output)
//   ENGINE_CUDA_IMPL_GEMM=ours|vendor   our tiled GEMM or cuBLAS (default vendor)
//   ENGINE_CUDA_IMPL_CONV, _DEPTHWISE, _BATCHNORM, _POOL=ours|vendor   our kernels or cuDNN
//                                       (default vendor, but ours for DEPTHWISE, measured
//                                       faster; cases cuDNN cannot take run ours)
//   ENGINE_CUDA_TF32=1          float32 matrix products and convolutions on the TF32 tensor
//                               cores (PyTorch's allow_tf32); default off
//   ENGINE_CUDA_TF32_LDMATRIX=1 our TF32 kernels round each operand element once in shared
//                               memory and read fragments with ldmatrix (the same bits;
//                               default off until a GPU run times it faster)
//   ENGINE_CUDA_TF32_WIDE=1     with the above, 64x64 warp tiles on 128x128 blocks (conv2d
//                               v6; the same bits; default off until timed)
//   ENGINE_CUDNN_BENCHMARK=1    cuDNN's convolution algorithms chosen by timing them at each
//                               shape's first run (PyTorch's cudnn.benchmark); default off
//   ENGINE_CUDNN_BN_PERSISTENT=0  cuDNN's training batch norm in plain SPATIAL mode instead of
//                               its NHWC-optimised SPATIAL_PERSISTENT one (the default)
// The engine drives one GPU, cuda:0 (pick it with CUDA_VISIBLE_DEVICES).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "kernels/cuda/impl.h"

namespace engine::cuda {

struct MemoryStats {
  size_t in_use = 0;          // bytes in blocks held by tensors (sizes rounded up to 512 B)
  size_t peak = 0;            // highest in_use since start or reset_peak_memory()
  size_t reserved = 0;        // bytes held from cudaMalloc: in use + cached
  size_t device_mallocs = 0;  // cudaMalloc calls so far (segments; cache misses)
  size_t cache_hits = 0;      // allocations served from cached free blocks
};
MemoryStats memory_stats();
void reset_peak_memory();
// Returns the cached segments that are wholly free to the driver (reserved drops to in_use plus
// the free space inside segments that still hold a live block).
void empty_cache();
// False under ENGINE_CUDA_NO_CACHE=1.
bool caching_enabled();
// Fill every block handed out from now on with 0xFF bytes (NaN for float32/float64).
void set_poison(bool on);

// The compute stream every op is queued on.
cudaStream_t stream();
// Waits for all queued work; throws engine::Error if any of it failed.
void synchronize();
// How many times so far the engine made the host wait for the GPU: synchronize(), each copy to
// the host (to_vector, item, .to(cpu), saving), each Readback collected, and the rare waits of
// the allocator (out of memory, ENGINE_CUDA_NO_CACHE) and of the staging pool (all its chunks
// in flight). Counted whether or not the GPU had finished already, so the count is the same on
// every run. Queuing ops and copies to the device adds nothing: a training loop that reads its
// loss with engine::Readback a step later adds one per step and keeps the GPU's queue full.
size_t host_syncs();
// Kernels launched so far (ours: each launch is checked and counted) and cuBLAS / cuDNN calls
// made (each launches kernels of its own): per training step, they say how deep the GPU's queue
// gets (kernels/cuda/runtime.h).
uint64_t launch_count();
uint64_t library_call_count();
// Pinned host memory held by the host<->device staging pool (engine/cuda/staging.h).
size_t pinned_staging_bytes();
// The same switch as ENGINE_CUDA_SYNC=1.
void set_sync_after_launch(bool on);

// Our kernel or cuBLAS/cuDNN, per op family (see kernels/cuda/impl.h).
using kernels::cuda::Family;
using kernels::cuda::family_name;
using kernels::cuda::Impl;
using kernels::cuda::impl;
using kernels::cuda::impl_name;
using kernels::cuda::set_impl;
// By name, for command lines: set_impl("gemm", "ours"); fails on unknown names.
void set_impl(const std::string& family, const std::string& choice);

// TF32 for float32 products on the tensor cores, as PyTorch's allow_tf32: cuBLAS's math mode,
// cuDNN's convolution math type and the version of our convolution kernel the engine picks
// (kernels/cuda/runtime.h). The same switch as ENGINE_CUDA_TF32=1; ops queued after the call
// see it.
void set_tf32(bool on);
bool tf32();

// cuDNN's benchmark mode, as PyTorch's torch.backends.cudnn.benchmark: each convolution shape's
// algorithm chosen by timing them all once, the first time it runs (kernels/cuda/runtime.h).
// The same switch as ENGINE_CUDNN_BENCHMARK=1; default off.
void set_cudnn_benchmark(bool on);
bool cudnn_benchmark();

// cuDNN's training batch norm in SPATIAL_PERSISTENT mode (on, the default: cuDNN's NHWC path,
// as PyTorch for channels-last) or SPATIAL (kernels/cuda/runtime.h). ENGINE_CUDNN_BN_PERSISTENT.
void set_cudnn_bn_persistent(bool on);
bool cudnn_bn_persistent();

// cuDNN's convolution backward passes with deterministic algorithms only (on, the default: as
// PyTorch's cudnn.deterministic = True) or any algorithm (off: PyTorch's default)
// (kernels/cuda/runtime.h). ENGINE_CUDNN_DETERMINISTIC.
void set_cudnn_deterministic(bool on);
bool cudnn_deterministic();

// "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, 79.2 GiB)", for logs and benchmark records.
std::string device_description();

}  // namespace engine::cuda
