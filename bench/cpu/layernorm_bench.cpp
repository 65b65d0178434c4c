// bench/cpu/layernorm_bench.cpp — LayerNorm over the 96 channels of a [8,56,56,96] NHWC
// float32 tensor (ConvNeXt-T stage 1: 25088 rows of 96), ours next to LibTorch in one process.
//
//   cmake -S . -B build -DENGINE_BENCH=ON && cmake --build build --target cpu_bench
//   build/bench/cpu_bench --benchmark_filter=layernorm
//
// BM_layernorm_fwd/{ours,libtorch}: forward only, no autograd tape.
// BM_layernorm_fwd_bwd/{ours,libtorch}: x, weight, bias require grad; forward, then backward
//   of a fixed random output gradient (dx, dweight, dbias), grads dropped every iteration.
// Both sides use 2 threads (our OpenMP default on this 2-core machine; LibTorch is set to 2).
// Bytes processed: forward reads x and writes y; forward+backward also reads x, dy, writes dx.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <vector>

#include "bench/cpu/repeated_runs.h"
#include "engine/engine.h"
#ifdef BENCH_WITH_LIBTORCH
#include <torch/torch.h>
#endif

namespace {

constexpr int64_t kN = 8, kH = 56, kW = 56, kC = 96;
constexpr int64_t kElems = kN * kH * kW * kC;
constexpr double kEps = 1e-6;

void layernorm_fwd_ours(benchmark::State& state) {
  engine::Generator gen(1);
  engine::Tensor x = engine::Tensor::randn({kN, kH, kW, kC}, gen);
  engine::Tensor w = engine::Tensor::randn({kC}, gen), b = engine::Tensor::randn({kC}, gen);
  engine::NoGradGuard no_grad;
  for (auto _ : state) {
    engine::Tensor y = engine::layer_norm(x, w, b, kEps);
    benchmark::DoNotOptimize(y.raw_data());
  }
  state.SetBytesProcessed(state.iterations() * 2 * kElems * 4);
}

void layernorm_fwd_bwd_ours(benchmark::State& state) {
  engine::Generator gen(2);
  engine::Tensor x = engine::Tensor::randn({kN, kH, kW, kC}, gen).requires_grad_();
  engine::Tensor w = engine::Tensor::randn({kC}, gen).requires_grad_();
  engine::Tensor b = engine::Tensor::randn({kC}, gen).requires_grad_();
  engine::Tensor dy = engine::Tensor::randn({kN, kH, kW, kC}, gen);
  for (auto _ : state) {
    engine::Tensor y = engine::layer_norm(x, w, b, kEps);
    y.backward(dy);
    benchmark::DoNotOptimize(x.grad().raw_data());
    x.zero_grad(), w.zero_grad(), b.zero_grad();
  }
  state.SetBytesProcessed(state.iterations() * 5 * kElems * 4);
}

using bench_cpu::repeated_runs;  // bench/cpu/repeated_runs.h

#ifdef BENCH_WITH_LIBTORCH
void layernorm_fwd_libtorch(benchmark::State& state) {
  torch::set_num_threads(2);
  torch::manual_seed(1);
  torch::Tensor x = torch::randn({kN, kH, kW, kC});
  torch::Tensor w = torch::randn({kC}), b = torch::randn({kC});
  torch::NoGradGuard no_grad;
  for (auto _ : state) {
    torch::Tensor y = torch::layer_norm(x, {kC}, w, b, kEps);
    benchmark::DoNotOptimize(y.data_ptr());
  }
  state.SetBytesProcessed(state.iterations() * 2 * kElems * 4);
}

void layernorm_fwd_bwd_libtorch(benchmark::State& state) {
  torch::set_num_threads(2);
  torch::manual_seed(2);
  torch::Tensor x = torch::randn({kN, kH, kW, kC}).requires_grad_();
  torch::Tensor w = torch::randn({kC}).requires_grad_();
  torch::Tensor b = torch::randn({kC}).requires_grad_();
  torch::Tensor dy = torch::randn({kN, kH, kW, kC});
  for (auto _ : state) {
    torch::Tensor y = torch::layer_norm(x, {kC}, w, b, kEps);
    y.backward(dy);
    benchmark::DoNotOptimize(x.grad().data_ptr());
    x.mutable_grad().reset(), w.mutable_grad().reset(), b.mutable_grad().reset();
  }
  state.SetBytesProcessed(state.iterations() * 5 * kElems * 4);
}
#endif

BENCHMARK(layernorm_fwd_ours)->Name("BM_layernorm_fwd/ours")->Apply(repeated_runs);
#ifdef BENCH_WITH_LIBTORCH
BENCHMARK(layernorm_fwd_libtorch)->Name("BM_layernorm_fwd/libtorch")->Apply(repeated_runs);
#endif
BENCHMARK(layernorm_fwd_bwd_ours)->Name("BM_layernorm_fwd_bwd/ours")->Apply(repeated_runs);
#ifdef BENCH_WITH_LIBTORCH
BENCHMARK(layernorm_fwd_bwd_libtorch)->Name("BM_layernorm_fwd_bwd/libtorch")->Apply(repeated_runs);
#endif

}  // namespace
