// bench/cpu/matmul_bench.cpp — a [4096,512] @ [512,512] float32 matmul (the shape of a
// Linear layer on 4096 tokens of width 512), ours (OpenBLAS sgemm) next to LibTorch.
//
//   build/bench/cpu_bench --benchmark_filter=matmul
//
// BM_matmul_fwd/{ours,libtorch}: forward only, no autograd tape. 2*4096*512*512 = 2.15 GFLOP.
// BM_matmul_fwd_bwd/{ours,libtorch}: both operands require grad; forward, then backward of a
//   fixed random output gradient (dA = dY B^T, dB = A^T dY): 3 GEMMs, 6.4 GFLOP.
// Both sides use 2 threads (our OpenMP team; LibTorch is set to 2, and so is the OpenBLAS it
// calls, which is ours: our GEMM runs it single-threaded inside its own threads).
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <algorithm>
#include <vector>

#include "bench/cpu/repeated_runs.h"
#include "engine/engine.h"
#ifdef BENCH_WITH_LIBTORCH
#include <torch/torch.h>
#endif

namespace {

constexpr int64_t kM = 4096, kK = 512, kN = 512;
constexpr double kFlop = 2.0 * kM * kK * kN;

void matmul_fwd_ours(benchmark::State& state) {
  engine::Generator gen(3);
  engine::Tensor a = engine::Tensor::randn({kM, kK}, gen);
  engine::Tensor b = engine::Tensor::randn({kK, kN}, gen);
  engine::NoGradGuard no_grad;
  for (auto _ : state) {
    engine::Tensor y = engine::matmul(a, b);
    benchmark::DoNotOptimize(y.raw_data());
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(kFlop * 1e-9 * state.iterations(), benchmark::Counter::kIsRate);
}

void matmul_fwd_bwd_ours(benchmark::State& state) {
  engine::Generator gen(4);
  engine::Tensor a = engine::Tensor::randn({kM, kK}, gen).requires_grad_();
  engine::Tensor b = engine::Tensor::randn({kK, kN}, gen).requires_grad_();
  engine::Tensor dy = engine::Tensor::randn({kM, kN}, gen);
  for (auto _ : state) {
    engine::Tensor y = engine::matmul(a, b);
    y.backward(dy);
    benchmark::DoNotOptimize(a.grad().raw_data());
    a.zero_grad(), b.zero_grad();
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(3 * kFlop * 1e-9 * state.iterations(), benchmark::Counter::kIsRate);
}

using bench_cpu::repeated_runs;  // bench/cpu/repeated_runs.h

#ifdef BENCH_WITH_LIBTORCH
void matmul_fwd_libtorch(benchmark::State& state) {
  torch::set_num_threads(2);
  openblas_set_num_threads(2);  // LibTorch's BLAS is our OpenBLAS, which our GEMM left at 1
  torch::manual_seed(3);
  torch::Tensor a = torch::randn({kM, kK}), b = torch::randn({kK, kN});
  torch::NoGradGuard no_grad;
  for (auto _ : state) {
    torch::Tensor y = torch::matmul(a, b);
    benchmark::DoNotOptimize(y.data_ptr());
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(kFlop * 1e-9 * state.iterations(), benchmark::Counter::kIsRate);
}

void matmul_fwd_bwd_libtorch(benchmark::State& state) {
  torch::set_num_threads(2);
  openblas_set_num_threads(2);
  torch::manual_seed(4);
  torch::Tensor a = torch::randn({kM, kK}).requires_grad_();
  torch::Tensor b = torch::randn({kK, kN}).requires_grad_();
  torch::Tensor dy = torch::randn({kM, kN});
  for (auto _ : state) {
    torch::Tensor y = torch::matmul(a, b);
    y.backward(dy);
    benchmark::DoNotOptimize(a.grad().data_ptr());
    a.mutable_grad().reset(), b.mutable_grad().reset();
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(3 * kFlop * 1e-9 * state.iterations(), benchmark::Counter::kIsRate);
}
#endif

BENCHMARK(matmul_fwd_ours)->Name("BM_matmul_fwd/ours")->Apply(repeated_runs);
#ifdef BENCH_WITH_LIBTORCH
BENCHMARK(matmul_fwd_libtorch)->Name("BM_matmul_fwd/libtorch")->Apply(repeated_runs);
#endif
BENCHMARK(matmul_fwd_bwd_ours)->Name("BM_matmul_fwd_bwd/ours")->Apply(repeated_runs);
#ifdef BENCH_WITH_LIBTORCH
BENCHMARK(matmul_fwd_bwd_libtorch)->Name("BM_matmul_fwd_bwd/libtorch")->Apply(repeated_runs);
#endif

}  // namespace
