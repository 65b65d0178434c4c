// apps/image2gps/cli_device.cpp — --device and the GPU options next to it (cli.h).
#include "apps/image2gps/cli.h"
#include "apps/image2gps/trainer.h"

namespace i2g {

void add_device_options(CLI::App* c, std::string& device, const char* help) {
  c->add_option("--device", device, help)->capture_default_str();
  GpuChoices& g = gpu_choices();
  c->add_option("--kernels", g.kernels,
                "GPU kernels: default (per op family, measured fastest; ENGINE_CUDA_IMPL_<FAMILY> "
                "overrides) | ours (the engine's own for every op) | vendor (cuBLAS/cuDNN "
                "wherever they have the op)")
      ->check(CLI::IsMember({"default", "ours", "vendor"}))
      ->capture_default_str();
  c->add_flag("--tf32", g.tf32,
              "GPU: float32 products on the TF32 tensor cores (PyTorch's allow_tf32; "
              "10-bit mantissas)");
  c->add_flag("--cudnn-benchmark", g.cudnn_benchmark,
              "GPU: choose each convolution's cuDNN algorithm by timing them all at its first "
              "run (PyTorch's cudnn.benchmark; slower first step)");
  c->add_flag("--cudnn-nondeterministic", g.cudnn_nondeterministic,
              "GPU: let cuDNN's convolution backward passes use any algorithm, some of which add "
              "with atomics in no fixed order (PyTorch's default; runs no longer repeat bit for "
              "bit)");
}

}  // namespace i2g
