// bench/cpu/conv2d_winograd_bench.cpp — the CPU 3x3 convolution's three algorithms side by side
// on ResNet's stride-1 3x3 layers at batch 8: im2col + GEMM, Winograd F(2x2, 3x3) and F(4x4,
// 3x3) (kernels/cpu/conv2d_winograd.cpp), for the forward pass and both gradients. These are
// the measurements behind winograd_tile's choice in kernels/cpu/conv2d.cpp and the table in
// kernels/README.md. Ours only (LibTorch's convolution is in conv2d_bench.cpp).
//
//   build/bench/cpu_bench --benchmark_filter=conv2d_winograd
//
// Names: BM_conv2d_winograd/<layer>/<pass>/<algorithm>, layer = HxW_C (C in and out channels),
// pass = fwd|data|weight, algorithm = im2col|f2x2|f4x4. Wall time of single calls on the
// default thread count, 10 repetitions (repeated_runs.h): mean, median, min (ms).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "bench/cpu/repeated_runs.h"
#include "kernels/cpu/conv2d.h"
#include "kernels/cpu/conv2d_winograd.h"

namespace {

using kernels::cpu::Conv2dAlgo;
using kernels::cpu::Conv2dShape;
using kernels::cpu::WinogradTile;

struct Layer {
  int64_t hw, c;
};
constexpr Layer kLayers[] = {{56, 64}, {28, 128}, {14, 256}, {7, 512}};
constexpr int64_t kBatch = 8;

enum class Pass { Forward, Data, Weight };
enum class Algo { Im2col, F2x2, F4x4 };

void run_case(benchmark::State& state, Layer layer, Pass pass, Algo algo) {
  Conv2dShape sh{kBatch, layer.hw, layer.hw, layer.c, layer.c, 3, 3, layer.hw, layer.hw};
  sh.pad_h = sh.pad_w = 1;
  const size_t act = size_t(kBatch * layer.hw * layer.hw * layer.c);
  std::vector<float> x(act), dy(act), out(act), w(size_t(layer.c * 9 * layer.c)), dw(w.size());
  std::mt19937 gen(1);
  std::normal_distribution<float> normal;
  for (std::vector<float>* v : {&x, &dy, &w})
    std::generate(v->begin(), v->end(), [&] { return normal(gen); });
  const WinogradTile tile = algo == Algo::F4x4 ? WinogradTile::F4x4 : WinogradTile::F2x2;
  auto call = [&] {
    namespace k = kernels::cpu;
    if (algo == Algo::Im2col) {  // conv2d_* with Winograd switched off
      if (pass == Pass::Forward)
        k::conv2d_forward<float>(sh, x.data(), w.data(), nullptr, out.data());
      if (pass == Pass::Data) k::conv2d_backward_data<float>(sh, dy.data(), w.data(), out.data());
      if (pass == Pass::Weight)
        k::conv2d_backward_weight<float>(sh, x.data(), dy.data(), dw.data());
      return;
    }
    if (pass == Pass::Forward)
      k::conv2d_forward_winograd<float>(sh, x.data(), w.data(), nullptr, out.data(), tile);
    if (pass == Pass::Data)
      k::conv2d_backward_data_winograd<float>(sh, dy.data(), w.data(), out.data(), tile);
    if (pass == Pass::Weight)
      k::conv2d_backward_weight_winograd<float>(sh, x.data(), dy.data(), dw.data(), tile);
  };
  kernels::cpu::set_conv2d_algo(algo == Algo::Im2col ? Conv2dAlgo::Im2col : Conv2dAlgo::Auto);
  call();  // untimed: per-thread buffers reach their size
  for (auto _ : state) call();
  kernels::cpu::set_conv2d_algo(Conv2dAlgo::Auto);
  state.counters["GFLOPs"] = benchmark::Counter(
      2.0 * kBatch * layer.hw * layer.hw * layer.c * layer.c * 9, benchmark::Counter::kIsRate);
}

const bool registered = [] {
  const std::pair<Pass, const char*> passes[] = {
      {Pass::Forward, "fwd"}, {Pass::Data, "data"}, {Pass::Weight, "weight"}};
  const std::pair<Algo, const char*> algos[] = {
      {Algo::Im2col, "im2col"}, {Algo::F2x2, "f2x2"}, {Algo::F4x4, "f4x4"}};
  for (const Layer& layer : kLayers)
    for (auto [pass, pass_name] : passes)
      for (auto [algo, algo_name] : algos) {
        const std::string name = "BM_conv2d_winograd/" + std::to_string(layer.hw) + "x" +
                                 std::to_string(layer.hw) + "_" + std::to_string(layer.c) + "/" +
                                 pass_name + "/" + algo_name;
        bench_cpu::repeated_runs(
            benchmark::RegisterBenchmark(name.c_str(), run_case, layer, pass, algo), 10);
      }
  return true;
}();

}  // namespace
