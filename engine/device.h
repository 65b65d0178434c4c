// engine/device.h — where a tensor's bytes live: host memory or one CUDA GPU.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>

namespace engine {

enum class DeviceType : uint8_t { CPU, CUDA };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;  // GPU ordinal; always 0 for the CPU

  static Device cpu() { return {}; }
  static Device cuda(int i = 0) { return {DeviceType::CUDA, i}; }
  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  bool operator==(const Device&) const = default;
  std::string str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }
  // Parses "cpu", "cuda", "cuda:1"; throws engine::Error on anything else.
  static Device parse(const std::string& s);
};

inline std::ostream& operator<<(std::ostream& os, const Device& d) { return os << d.str(); }

// True when the engine was built with CUDA and a GPU is visible (never throws).
bool cuda_available();

// The GPU choices a program takes on its command line, in any build (one without CUDA checks
// the words and has nothing to apply them to):
//   set_gpu_kernels("ours")    our kernels for every op family; "vendor": cuBLAS/cuDNN wherever
//                              they have the op; "default": leave each family as it is (its
//                              ENGINE_CUDA_IMPL_<FAMILY> or built-in default, kernels/cuda/impl.h)
//   set_gpu_tf32(true)         TF32 tensor-core math for float32 products (ENGINE_CUDA_TF32)
//   set_gpu_cudnn_benchmark(true)  cuDNN's convolution algorithms chosen by timing them at each
//                              shape's first run (ENGINE_CUDNN_BENCHMARK; PyTorch's
//                              cudnn.benchmark)
//   set_gpu_cudnn_deterministic(false)  cuDNN's convolution backward passes may use any
//                              algorithm, some adding with atomics in no fixed order
//                              (ENGINE_CUDNN_DETERMINISTIC=0; PyTorch's default)
//   gpu_kernels_summary()      e.g. "GEMM=ours CONV=vendor ... TF32=on", for logs
void set_gpu_kernels(const std::string& choice);
void set_gpu_tf32(bool on);
void set_gpu_cudnn_benchmark(bool on);
void set_gpu_cudnn_deterministic(bool on);
std::string gpu_kernels_summary();

}  // namespace engine
