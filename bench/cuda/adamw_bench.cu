// bench/cuda/adamw_bench.cu — validates and times the engine's AdamW update on the GPU
// (kernels/cuda/optimizer.cu: every parameter tensor of a model in a few multi-tensor launches)
// over the parameter tensors of ResNet-50 and ConvNeXt-T (2-output heads, as image2gps trains
// them), float32, as one optimizer step of a training step.
//
//   adamw_bench [--model resnet50|convnext_tiny|all] [--reps 30] [--json FILE] [--no-check]
//
// One version of ours (v1); the reference is PyTorch's torch.optim.AdamW (foreach and fused)
// on the same tensors, timed by bench/gpu/torch_kernels.py in the same session. Floor: an
// element's update reads param, grad, exp_avg and exp_avg_sq and writes three of them back:
// 28 bytes (ResNet-50's 23.5 M parameters: 658 MB, 0.16 ms at 4.2 TB/s). Inputs: params and
// grads uniform in [-1, 1), exp_avg in [-0.1, 0.1), exp_avg_sq in [0, 0.01), step 10; every
// element of the GPU's result checked against kernels::cpu::adam_update (the same arithmetic:
// float32 within a few ulps). Exit: 0 valid, 1 invalid, 77 no GPU.
#include <cstdio>
#include <string>
#include <vector>

#include "bench/cuda/bench_common.cuh"
#include "kernels/cpu/optimizer.h"
#include "kernels/cuda/optimizer.h"
#include "kernels/cuda/runtime.h"
#include "models/model.h"

namespace kc = kernels::cuda;

int main(int argc, char** argv) {
  bench::Args args(argc, argv);
  bench::require_gpu("adamw_bench");
  const std::string which = args.get("--model", "all");
  const int reps = args.get_int("--reps", 30);
  const bool check = !args.has("--no-check");
  const double lr = 1e-4, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.01;
  const int64_t step = 10;
  std::printf("adamw_bench on %s: float32, AdamW(lr %g, weight decay %g)\n",
              bench::device_line().c_str(), lr, weight_decay);

  cudaStream_t stream = kc::stream();  // where the update's launches go
  bench::L2Flusher flusher;
  std::vector<bench::Row> rows_out;
  bool all_valid = true;
  for (const char* arch : {"resnet50", "convnext_tiny"}) {
    if (which != "all" && which != arch) continue;
    // The parameter tensors' sizes, from the model itself (built on the CPU once).
    std::vector<int64_t> sizes;
    for (const auto& p : models::create(arch, 2)->parameters()) sizes.push_back(p.numel());
    std::vector<int64_t> offsets;  // each tensor 16-byte aligned in one buffer per array
    int64_t total = 0;
    for (int64_t n : sizes) offsets.push_back(total), total += (n + 3) / 4 * 4;
    const std::vector<float> p0 = bench::random_floats(total, 1), g = bench::random_floats(total, 2),
                             m0 = bench::random_floats(total, 3, -0.1f, 0.1f),
                             v0 = bench::random_floats(total, 4, 0.f, 0.01f);
    bench::Buffer<float> d_p(total), d_g(total), d_m(total), d_v(total);
    d_p.upload(p0), d_g.upload(g), d_m.upload(m0), d_v.upload(v0);
    std::vector<kc::AdamParam> table;
    for (size_t t = 0; t < sizes.size(); ++t) {
      const int64_t o = offsets[t];
      table.push_back({d_p.get() + o, d_g.get() + o, d_m.get() + o, d_v.get() + o, sizes[t], lr,
                       weight_decay, step});
    }
    auto update = [&] {
      kc::adam_update_multi(table.data(), int64_t(table.size()), beta1, beta2, eps,
                            /*decoupled=*/true, kernels::DType::Float32);
    };
    int64_t params = 0;
    for (int64_t n : sizes) params += n;
    char shape[96];
    std::snprintf(shape, sizeof shape, "%s P=%lld T=%zu", arch, (long long)params, sizes.size());
    bool valid = true;
    if (check) {
      update();
      bench::ok(cudaStreamSynchronize(stream), "validation run");
      std::vector<float> p = p0, m = m0, v = v0;
      for (size_t t = 0; t < sizes.size(); ++t) {
        const int64_t o = offsets[t];
        kernels::cpu::adam_update<float>(sizes[t], p.data() + o, g.data() + o, m.data() + o,
                                         v.data() + o, lr, beta1, beta2, eps, weight_decay,
                                         /*decoupled=*/true, step);
      }
      const std::string tag = std::string(arch) + " ";
      valid &= bench::validate((tag + "param").c_str(), d_p.download(), bench::to_double(p), 1e-6,
                               1e-7);
      valid &= bench::validate((tag + "exp_avg").c_str(), d_m.download(), bench::to_double(m),
                               1e-6, 1e-9);
      valid &= bench::validate((tag + "exp_avg_sq").c_str(), d_v.download(),
                               bench::to_double(v), 1e-6, 1e-12);
      all_valid &= valid;
    }
    const bench::Timing t = bench::time_it(update, stream, flusher, reps);
    rows_out.push_back({"adamw_step", shape, 1, t.median_ms, t.min_ms, 28.0 * double(params),
                        12.0 * double(params), 0, valid});
  }
  bench::print_header();
  for (const auto& r : rows_out) bench::print_row(r);
  bench::write_json(args.get("--json", ""), "adamw", rows_out);
  if (!all_valid) std::printf("adamw_bench: the update FAILED validation\n");
  return all_valid ? 0 : 1;
}
