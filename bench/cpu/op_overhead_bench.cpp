// bench/cpu/op_overhead_bench.cpp — the framework's own cost per op: 10,000 multiplies of
// 4-float tensors, where the arithmetic is nothing and shape checks, allocation and the
// autograd tape are everything (on a GPU this host work runs while earlier kernels do).
//
//   build/bench/cpu_bench --benchmark_filter=op_overhead
//
// BM_op_overhead_grad/{ours,libtorch}: y = a * b with a requiring grad (a tape node per op).
// BM_op_overhead_nograd/{ours,libtorch}: the same without autograd.
// BM_op_overhead_chain_bwd/{ours,libtorch}: a chain of 10,000 multiplies, then backward through
//   it: one node per op on the way back, gradients summed into a's .grad.
// Time per call is for all 10,000 ops: 10 ms means 1 us per op.
#include <benchmark/benchmark.h>

#include "bench/cpu/repeated_runs.h"
#include "engine/engine.h"
#ifdef BENCH_WITH_LIBTORCH
#include <torch/torch.h>
#endif

namespace {

constexpr int kOps = 10000;

void op_overhead_grad_ours(benchmark::State& state) {
  engine::Tensor a = engine::Tensor::full({4}, 1.0).requires_grad_();
  engine::Tensor b = engine::Tensor::full({4}, 1.0);
  for (auto _ : state)
    for (int i = 0; i < kOps; ++i) benchmark::DoNotOptimize((a * b).raw_data());
}

void op_overhead_nograd_ours(benchmark::State& state) {
  engine::Tensor a = engine::Tensor::full({4}, 1.0), b = engine::Tensor::full({4}, 1.0);
  engine::NoGradGuard no_grad;
  for (auto _ : state)
    for (int i = 0; i < kOps; ++i) benchmark::DoNotOptimize((a * b).raw_data());
}

void op_overhead_chain_bwd_ours(benchmark::State& state) {
  engine::Tensor a = engine::Tensor::full({4}, 1.0).requires_grad_();
  engine::Tensor b = engine::Tensor::full({4}, 1.0);
  for (auto _ : state) {
    engine::Tensor y = a;
    for (int i = 0; i < kOps; ++i) y = y * b;
    engine::sum(y).backward();
    benchmark::DoNotOptimize(a.grad().raw_data());
    a.zero_grad();
  }
}

using bench_cpu::repeated_runs;  // bench/cpu/repeated_runs.h

#ifdef BENCH_WITH_LIBTORCH
void op_overhead_grad_libtorch(benchmark::State& state) {
  torch::set_num_threads(2);
  torch::Tensor a = torch::full({4}, 1.0).requires_grad_(), b = torch::full({4}, 1.0);
  for (auto _ : state)
    for (int i = 0; i < kOps; ++i) benchmark::DoNotOptimize((a * b).data_ptr());
}

void op_overhead_nograd_libtorch(benchmark::State& state) {
  torch::set_num_threads(2);
  torch::Tensor a = torch::full({4}, 1.0), b = torch::full({4}, 1.0);
  torch::NoGradGuard no_grad;
  for (auto _ : state)
    for (int i = 0; i < kOps; ++i) benchmark::DoNotOptimize((a * b).data_ptr());
}

void op_overhead_chain_bwd_libtorch(benchmark::State& state) {
  torch::set_num_threads(2);
  torch::Tensor a = torch::full({4}, 1.0).requires_grad_(), b = torch::full({4}, 1.0);
  for (auto _ : state) {
    torch::Tensor y = a;
    for (int i = 0; i < kOps; ++i) y = y * b;
    y.sum().backward();
    benchmark::DoNotOptimize(a.grad().data_ptr());
    a.mutable_grad().reset();
  }
}
#endif

BENCHMARK(op_overhead_grad_ours)->Name("BM_op_overhead_grad/ours")->Apply(repeated_runs);
#ifdef BENCH_WITH_LIBTORCH
BENCHMARK(op_overhead_grad_libtorch)->Name("BM_op_overhead_grad/libtorch")->Apply(repeated_runs);
#endif
BENCHMARK(op_overhead_nograd_ours)->Name("BM_op_overhead_nograd/ours")->Apply(repeated_runs);
#ifdef BENCH_WITH_LIBTORCH
BENCHMARK(op_overhead_nograd_libtorch)
    ->Name("BM_op_overhead_nograd/libtorch")
    ->Apply(repeated_runs);
#endif
BENCHMARK(op_overhead_chain_bwd_ours)->Name("BM_op_overhead_chain_bwd/ours")->Apply(repeated_runs);
#ifdef BENCH_WITH_LIBTORCH
BENCHMARK(op_overhead_chain_bwd_libtorch)
    ->Name("BM_op_overhead_chain_bwd/libtorch")
    ->Apply(repeated_runs);
#endif

}  // namespace
