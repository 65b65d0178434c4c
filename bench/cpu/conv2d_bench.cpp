// bench/cpu/conv2d_bench.cpp — a ResNet stage-1 conv: 3x3, 64 -> 64 channels, pad 1, on a
// [8,56,56,64] NHWC float32 batch; ours (im2col + OpenBLAS GEMM) next to LibTorch in one process.
//
//   cmake -S . -B build -DENGINE_BENCH=ON && cmake --build build --target cpu_bench
//   build/bench/cpu_bench --benchmark_filter=conv2d_3x3
//   BENCH_THREADS=1 build/bench/cpu_bench --benchmark_filter=conv2d_3x3   # one thread each
//
// BM_conv2d_3x3_fwd/{libtorch,ours}: forward only, no autograd tape.
// BM_conv2d_3x3_fwd_bwd/{libtorch,ours}: x, weight, bias require grad; forward, then backward
//   of a fixed random output gradient (dx, dw, db); grads dropped every iteration.
// LibTorch runs torch::conv2d on channels_last tensors (the same memory layout as ours, so
// neither side pays for a layout change); both sides use 2 threads (BENCH_THREADS). LibTorch
// is registered first, so each "ours" row can report the ratios.
// Counters: ms = mean milliseconds per iteration (after one untimed warm-up call), min_ms =
// the fastest iteration, cpu_ms = the least process CPU time of an iteration (only exact with
// BENCH_THREADS=1: Linux adds other threads' time late; with one thread it is nearly immune
// to other processes), x_libtorch = our min_ms / LibTorch's min_ms, x_libtorch_cpu = the
// same for cpu_ms,
// GFLOPs = 2*N*P*Q*K*R*S*C per forward (3x that for forward + backward) / min time.
#include <benchmark/benchmark.h>
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <map>
#include <string>
#include <utility>

#include "engine/engine.h"
#ifdef BENCH_WITH_LIBTORCH
#include <torch/torch.h>
#endif

namespace {

constexpr int64_t kN = 8, kH = 56, kW = 56, kC = 64, kK = 64, kR = 3;
constexpr double kFwdFlops = 2.0 * kN * kH * kW * kK * kR * kR * kC;  // P = H, Q = W (pad 1)

// Threads for both sides: 2, or BENCH_THREADS from the environment (1 gives a comparison
// that other processes on a busy machine barely disturb: compare cpu_ms).
int threads() {
  static const int n = [] {
    const char* env = std::getenv("BENCH_THREADS");
    return env && std::atoi(env) > 0 ? std::atoi(env) : 2;
  }();
  return n;
}

// Our kernels use OpenMP, our GEMM uses OpenBLAS's own threads: set both.
void use_our_threads() {
  omp_set_num_threads(threads());
  openblas_set_num_threads(threads());
}

double process_cpu_ms() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

// Fastest iteration of each LibTorch benchmark (wall and CPU ms), for the "ours" row's ratios.
std::map<std::string, std::pair<double, double>>& libtorch_min_ms() {
  static std::map<std::string, std::pair<double, double>> t;
  return t;
}

// Runs `step` once untimed, then once per benchmark iteration, and sets the counters. Ratios
// use the fastest iteration of each side: on a shared machine other processes only ever add
// time, so the minimum is the least disturbed estimate.
template <class F>
void timed(benchmark::State& state, const std::string& key, bool is_ours, double flops, F&& step) {
  step();
  double total = 0, best = 1e300, best_cpu = 1e300;
  for (auto _ : state) {
    const double c0 = process_cpu_ms();
    const auto t0 = std::chrono::steady_clock::now();
    step();
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    total += ms, best = std::min(best, ms), best_cpu = std::min(best_cpu, process_cpu_ms() - c0);
  }
  state.counters["ms"] = total / static_cast<double>(state.iterations());
  state.counters["min_ms"] = best;
  state.counters["cpu_ms"] = best_cpu;
  state.counters["GFLOPs"] = flops / (best * 1e6);
  if (!is_ours) {
    libtorch_min_ms()[key] = {best, best_cpu};
  } else if (libtorch_min_ms().count(key)) {
    state.counters["x_libtorch"] = best / libtorch_min_ms()[key].first;
    state.counters["x_libtorch_cpu"] = best_cpu / libtorch_min_ms()[key].second;
  }
}

const engine::Conv2dParams kParams = engine::Conv2dParams::make(/*stride=*/1, /*padding=*/1);

void conv2d_fwd_ours(benchmark::State& state) {
  use_our_threads();
  engine::Generator gen(1);
  engine::Tensor x = engine::Tensor::randn({kN, kH, kW, kC}, gen);
  engine::Tensor w = engine::Tensor::randn({kK, kR, kR, kC}, gen);
  engine::Tensor b = engine::Tensor::randn({kK}, gen);
  engine::NoGradGuard no_grad;
  timed(state, "fwd", true, kFwdFlops, [&] {
    engine::Tensor y = engine::conv2d(x, w, b, kParams);
    benchmark::DoNotOptimize(y.raw_data());
  });
}

void conv2d_fwd_bwd_ours(benchmark::State& state) {
  use_our_threads();
  engine::Generator gen(2);
  engine::Tensor x = engine::Tensor::randn({kN, kH, kW, kC}, gen).requires_grad_();
  engine::Tensor w = engine::Tensor::randn({kK, kR, kR, kC}, gen).requires_grad_();
  engine::Tensor b = engine::Tensor::randn({kK}, gen).requires_grad_();
  engine::Tensor dy = engine::Tensor::randn({kN, kH, kW, kK}, gen);
  timed(state, "fwd_bwd", true, 3 * kFwdFlops, [&] {
    engine::Tensor y = engine::conv2d(x, w, b, kParams);
    y.backward(dy);
    benchmark::DoNotOptimize(x.grad().raw_data());
    x.zero_grad(), w.zero_grad(), b.zero_grad();
  });
}

#ifdef BENCH_WITH_LIBTORCH
// NCHW-shaped tensors stored channels-last: the same bytes as our NHWC tensors.
torch::Tensor randn_cl(std::vector<int64_t> shape) {
  return torch::randn(shape).contiguous(torch::MemoryFormat::ChannelsLast);
}

void conv2d_fwd_libtorch(benchmark::State& state) {
  torch::set_num_threads(threads());
  torch::manual_seed(1);
  torch::Tensor x = randn_cl({kN, kC, kH, kW}), w = randn_cl({kK, kC, kR, kR});
  torch::Tensor b = torch::randn({kK});
  torch::NoGradGuard no_grad;
  timed(state, "fwd", false, kFwdFlops, [&] {
    torch::Tensor y = torch::conv2d(x, w, b, /*stride=*/1, /*padding=*/1);
    benchmark::DoNotOptimize(y.data_ptr());
  });
}

void conv2d_fwd_bwd_libtorch(benchmark::State& state) {
  torch::set_num_threads(threads());
  torch::manual_seed(2);
  torch::Tensor x = randn_cl({kN, kC, kH, kW}).requires_grad_();
  torch::Tensor w = randn_cl({kK, kC, kR, kR}).requires_grad_();
  torch::Tensor b = torch::randn({kK}).requires_grad_();
  torch::Tensor dy = randn_cl({kN, kK, kH, kW});
  timed(state, "fwd_bwd", false, 3 * kFwdFlops, [&] {
    torch::Tensor y = torch::conv2d(x, w, b, /*stride=*/1, /*padding=*/1);
    y.backward(dy);
    benchmark::DoNotOptimize(x.grad().data_ptr());
    x.mutable_grad().reset(), w.mutable_grad().reset(), b.mutable_grad().reset();
  });
}

BENCHMARK(conv2d_fwd_libtorch)
    ->Name("BM_conv2d_3x3_fwd/libtorch")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(20);
#endif
BENCHMARK(conv2d_fwd_ours)
    ->Name("BM_conv2d_3x3_fwd/ours")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(20);
#ifdef BENCH_WITH_LIBTORCH
BENCHMARK(conv2d_fwd_bwd_libtorch)
    ->Name("BM_conv2d_3x3_fwd_bwd/libtorch")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(10);
#endif
BENCHMARK(conv2d_fwd_bwd_ours)
    ->Name("BM_conv2d_3x3_fwd_bwd/ours")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(10);

}  // namespace
