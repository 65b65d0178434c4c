// bench/cpu/conv_bench.h — what the two convolution benchmarks share (conv2d_bench.cpp: a
// ResNet 3x3 conv; depthwise_conv2d_bench.cpp: ConvNeXt's 7x7 depthwise conv): one case of
// a convolution on an NHWC float32 batch, timed forward and forward+backward, ours next to
// LibTorch in one process.
//
// For a case named NAME, register_conv_case() adds
//   BM_NAME_fwd/{libtorch,ours}: forward only, no autograd tape;
//   BM_NAME_fwd_bwd/{libtorch,ours}: x, weight, bias require grad; forward, then backward of a
//     fixed random output gradient (dx, dw, db); grads dropped every iteration.
// LibTorch runs torch::conv2d on channels_last tensors (the same memory layout as ours, so
// neither side pays for a layout change); both sides use 2 threads (BENCH_THREADS). LibTorch
// is registered first, so each "ours" row can report the ratios.
// Counters: ms = mean milliseconds per iteration (after one untimed warm-up call), min_ms =
// the fastest iteration, cpu_ms = the least process CPU time of an iteration (only exact with
// BENCH_THREADS=1: Linux adds other threads' time late; with one thread it is nearly immune
// to other processes), x_libtorch = our min_ms / LibTorch's min_ms, x_libtorch_cpu = the
// same for cpu_ms, GFLOPs = 2*N*P*Q*K*R*S*C/G per forward (3x that for forward + backward)
// / min time.
#pragma once

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
#include <vector>

#include "engine/engine.h"
#ifdef BENCH_WITH_LIBTORCH
#include <torch/torch.h>
#endif

namespace conv_bench {

// A stride-1 "same" convolution of a [n, h, w, c] batch into k channels with r x r filters.
struct Case {
  std::string name;  // "conv2d_3x3" -> BM_conv2d_3x3_fwd/ours, ...
  int64_t n, h, w, c, k, r, groups;
  int fwd_iterations, fwd_bwd_iterations;
  int64_t pad() const { return r / 2; }
  double fwd_flops() const { return 2.0 * n * h * w * k * r * r * (c / groups); }
  engine::Conv2dParams params() const {
    return engine::Conv2dParams::make(/*stride=*/1, pad(), /*dilation=*/1, groups);
  }
};

// Threads for both sides: 2, or BENCH_THREADS from the environment (1 gives a comparison
// that other processes on a busy machine barely disturb: compare cpu_ms).
inline int threads() {
  static const int n = [] {
    const char* env = std::getenv("BENCH_THREADS");
    return env && std::atoi(env) > 0 ? std::atoi(env) : 2;
  }();
  return n;
}

inline double process_cpu_ms() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

// Fastest iteration of each LibTorch benchmark (wall and CPU ms), for the "ours" row's ratios.
inline std::map<std::string, std::pair<double, double>>& libtorch_min_ms() {
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

// Ours: x [n, h, w, c], w [k, r, r, c/groups].
inline void ours(benchmark::State& state, const Case& cs, bool backward) {
  omp_set_num_threads(threads());  // our one thread pool (the GEMMs run inside it)
  engine::Generator gen(backward ? 2 : 1);
  engine::Tensor x = engine::Tensor::randn({cs.n, cs.h, cs.w, cs.c}, gen);
  engine::Tensor w = engine::Tensor::randn({cs.k, cs.r, cs.r, cs.c / cs.groups}, gen);
  engine::Tensor b = engine::Tensor::randn({cs.k}, gen);
  const std::string key = cs.name + (backward ? "/fwd_bwd" : "/fwd");
  if (!backward) {
    engine::NoGradGuard no_grad;
    timed(state, key, true, cs.fwd_flops(), [&] {
      engine::Tensor y = engine::conv2d(x, w, b, cs.params());
      benchmark::DoNotOptimize(y.raw_data());
    });
    return;
  }
  x.requires_grad_(), w.requires_grad_(), b.requires_grad_();
  engine::Tensor dy = engine::Tensor::randn({cs.n, cs.h, cs.w, cs.k}, gen);
  timed(state, key, true, 3 * cs.fwd_flops(), [&] {
    engine::Tensor y = engine::conv2d(x, w, b, cs.params());
    y.backward(dy);
    benchmark::DoNotOptimize(x.grad().raw_data());
    x.zero_grad(), w.zero_grad(), b.zero_grad();
  });
}

#ifdef BENCH_WITH_LIBTORCH
// NCHW-shaped tensors stored channels-last: the same bytes as our NHWC tensors.
inline torch::Tensor randn_cl(std::vector<int64_t> shape) {
  return torch::randn(shape).contiguous(torch::MemoryFormat::ChannelsLast);
}

inline void libtorch(benchmark::State& state, const Case& cs, bool backward) {
  torch::set_num_threads(threads());
  openblas_set_num_threads(threads());  // in case LibTorch's BLAS is the OpenBLAS we share
  torch::manual_seed(backward ? 2 : 1);
  torch::Tensor x = randn_cl({cs.n, cs.c, cs.h, cs.w});
  torch::Tensor w = randn_cl({cs.k, cs.c / cs.groups, cs.r, cs.r});
  torch::Tensor b = torch::randn({cs.k});
  const std::string key = cs.name + (backward ? "/fwd_bwd" : "/fwd");
  auto conv = [&] { return torch::conv2d(x, w, b, 1, cs.pad(), 1, cs.groups); };
  if (!backward) {
    torch::NoGradGuard no_grad;
    timed(state, key, false, cs.fwd_flops(), [&] {
      torch::Tensor y = conv();
      benchmark::DoNotOptimize(y.data_ptr());
    });
    return;
  }
  x.requires_grad_(), w.requires_grad_(), b.requires_grad_();
  torch::Tensor dy = randn_cl({cs.n, cs.k, cs.h, cs.w});
  timed(state, key, false, 3 * cs.fwd_flops(), [&] {
    torch::Tensor y = conv();
    y.backward(dy);
    benchmark::DoNotOptimize(x.grad().data_ptr());
    x.mutable_grad().reset(), w.mutable_grad().reset(), b.mutable_grad().reset();
  });
}
#endif

// Registers the four benchmarks of the case, LibTorch before ours (for the ratios).
inline bool register_case(const Case& cs) {
  for (bool backward : {false, true}) {
    const std::string name = "BM_" + cs.name + (backward ? "_fwd_bwd" : "_fwd");
    const int iterations = backward ? cs.fwd_bwd_iterations : cs.fwd_iterations;
#ifdef BENCH_WITH_LIBTORCH
    benchmark::RegisterBenchmark((name + "/libtorch").c_str(),
                                 [cs, backward](benchmark::State& s) { libtorch(s, cs, backward); })
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond)
        ->Iterations(iterations);
#endif
    benchmark::RegisterBenchmark((name + "/ours").c_str(),
                                 [cs, backward](benchmark::State& s) { ours(s, cs, backward); })
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond)
        ->Iterations(iterations);
  }
  return true;
}

}  // namespace conv_bench
