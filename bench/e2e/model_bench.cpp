// bench/e2e/model_bench.cpp — one training step and one inference pass of ResNet-18,
// ResNet-50 and ConvNeXt-Tiny at 224x224, batch 8: our engine next to LibTorch doing the
// identical work with the same number of threads.
//
//   tools/bench_cpu.sh                      # everything, one process per benchmark, + report
//   build/bench-cpu/bench/e2e_bench --benchmark_filter='BM_e2e_train_resnet18/'
//
// BM_e2e_train_<arch>/<side>: zero_grad (gradients dropped, as torch's set_to_none), forward,
//   MSE loss against a random [8, 2] target, backward, AdamW step (lr 1e-4, weight decay 0.01).
//   Model in training mode (BatchNorm batch statistics, ConvNeXt's stochastic depth 0.1 drawing
//   its masks).
// BM_e2e_infer_<arch>/<side>: eval mode, no autograd: forward only.
// Sides, each alone in its process (so its peak memory is its own):
//   ours           models::create(arch, 2, Head::Linear), NHWC;
//   libtorch       bench/e2e/torch_models.h with parameters and input in channels_last (the
//                  layout our engine uses);
//   libtorch_nchw  the same network on default contiguous NCHW tensors.
// BM_e2e_<mode>_<arch>/paired: all three in one process, one step of each per round, the order
//   rotating each round, so a load spike from other jobs on a shared machine hits all sides
//   alike. ratio_median = the median over rounds of ours / LibTorch (the LibTorch layout with
//   the lower median); no memory counters (three models share the process).
// Counters: ms_median / ms_min / ms_max over the timed steps (after the warm-up steps),
//   items_per_s = 8 / ms_median (images per second), load_1m (the 1-minute load average, the
//   highest seen at the start and end), peak_mb and setup_mb (bench_util.h); training also
//   fwd_ms (zero_grad + forward + loss), bwd_ms (backward), opt_ms (AdamW step), medians.
// E2E_PROFILE_DIR=DIR: the 'ours' benchmarks also write a per-op profile of one step there
//   (profile_one_step below).
// Both sides see the same input images (our NHWC tensor's bytes, viewed as NCHW by LibTorch).
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "bench/e2e/bench_util.h"
#include "engine/engine.h"
#include "engine/profiler.h"
#include "models/model.h"
#include "nn/optimizer.h"
#ifdef BENCH_WITH_LIBTORCH
#include "bench/e2e/torch_models.h"
#endif

namespace {

constexpr int64_t kBatch = 8, kRes = 224, kOutputs = 2;
constexpr double kLr = 1e-4, kWeightDecay = 1e-2;

struct Arch {
  const char* name;
  int steps;   // timed steps alone; rounds when paired (one warm-up step/round before)
  int paired;  // training steps take ~0.5 s (ResNet-18) to ~3 s (ConvNeXt-T) on 2 cores
};
constexpr Arch kArchs[] = {{"resnet18", 3, 5}, {"resnet50", 3, 3}, {"convnext_tiny", 3, 3}};

// The shared inputs: random images [8, 224, 224, 3] NHWC and targets [8, 2], seed-fixed.
struct Inputs {
  engine::Tensor images, targets;
  Inputs() {
    engine::Generator gen(7);
    images = engine::Tensor::randn({kBatch, kRes, kRes, 3}, gen);
    targets = engine::Tensor::randn({kBatch, kOutputs}, gen);
  }
};

// One side of the comparison: builds its model, then step() runs one training step (phases
// marked in ph when given) or one inference pass.
class OursSide {
 public:
  OursSide(const Arch& arch, bool train) : train_(train) {
    model_ = models::create(arch.name, kOutputs, models::Head::Linear);
    model_->train(train);
    if (train)
      opt_ = std::make_unique<nn::AdamW>(model_->parameters(),
                                         nn::AdamWOptions{.lr = kLr, .weight_decay = kWeightDecay});
  }
  void step(bench::Phases* ph) {
    if (!train_) {
      engine::NoGradGuard no_grad;
      engine::Tensor out = model_->forward(in_.images);
      benchmark::DoNotOptimize(out.raw_data());
      return;
    }
    if (ph) ph->begin();
    opt_->zero_grad();
    engine::Tensor loss = engine::mse_loss(model_->forward(in_.images), in_.targets);
    if (ph) ph->mark("fwd");
    loss.backward();
    if (ph) ph->mark("bwd");
    opt_->step();
    if (ph) ph->mark("opt");
  }

 private:
  bool train_;
  Inputs in_;
  std::shared_ptr<models::Model> model_;
  std::unique_ptr<nn::AdamW> opt_;
};

#ifdef BENCH_WITH_LIBTORCH
class TorchSide {
 public:
  TorchSide(const Arch& arch, bool train, bool channels_last) : train_(train) {
    torch::manual_seed(0);
    Inputs in;
    net_ = bench::torch_model(arch.name, kOutputs);
    const auto format = channels_last ? torch::MemoryFormat::ChannelsLast
                                      : torch::MemoryFormat::Contiguous;
    if (channels_last) bench::to_channels_last(*net_);
    // Our NHWC bytes viewed as NCHW (channels_last strides), then an owning copy.
    torch::Tensor nhwc = torch::from_blob(in.images.raw_data(), {kBatch, kRes, kRes, 3});
    images_ = nhwc.permute({0, 3, 1, 2}).clone(format);
    targets_ = torch::from_blob(in.targets.raw_data(), {kBatch, kOutputs}).clone();
    net_->train(train);
    params_ = net_->parameters();
    if (train)
      opt_ = std::make_unique<torch::optim::AdamW>(
          params_, torch::optim::AdamWOptions(kLr).weight_decay(kWeightDecay));
  }
  void step(bench::Phases* ph) {
    bench::libtorch_blas_threads();  // ours, in the paired rounds, left OpenBLAS at 1 thread
    if (!train_) {
      torch::NoGradGuard no_grad;
      torch::Tensor out = net_->forward(images_);
      benchmark::DoNotOptimize(out.data_ptr());
      return;
    }
    if (ph) ph->begin();
    // LibTorch 1.13's zero_grad() zeroes in place; drop the gradients instead, as ours does.
    for (auto& p : params_) p.mutable_grad().reset();
    torch::Tensor loss = torch::mse_loss(net_->forward(images_), targets_);
    if (ph) ph->mark("fwd");
    loss.backward();
    if (ph) ph->mark("bwd");
    opt_->step();
    if (ph) ph->mark("opt");
  }

 private:
  bool train_;
  std::shared_ptr<bench::TorchNet> net_;
  torch::Tensor images_, targets_;
  std::vector<torch::Tensor> params_;
  std::unique_ptr<torch::optim::AdamW> opt_;
};
#endif

// With E2E_PROFILE_DIR set, one more step of ours runs inside an engine::profiler session,
// after the timing: DIR/profile_<train|infer>_<arch>_cpu.trace.json (Chrome's trace format)
// and .txt (the table by op). tools/bench_cpu.sh sets it; tools/bench_report.py sums the trace
// by op family next to PyTorch's profile of the same step.
void profile_one_step(OursSide& side, const Arch& arch, bool train) {
  const char* dir = std::getenv("E2E_PROFILE_DIR");
  if (!dir || !*dir) return;
  engine::profiler::Session session;
  side.step(nullptr);
  const engine::profiler::Profile p = session.stop();
  const std::string base = std::string(dir) + "/profile_" + (train ? "train_" : "infer_") +
                           arch.name + "_cpu";
  std::ofstream(base + ".trace.json") << p.chrome_trace();
  std::ofstream(base + ".txt") << p.table(40);
}

// One side alone in the process: time, phases, peak memory.
template <class Side, class... Extra>
void run_alone(benchmark::State& state, const Arch& arch, bool train, int warmup, Extra... extra) {
  bench::PeakMemory mem;
  bench::set_threads();
  Side side(arch, train, extra...);
  bench::Phases ph;
  mem.begin_steps();
  bench::time_steps(state, warmup, kBatch, [&] { side.step(train ? &ph : nullptr); });
  if (train) ph.report(state, state.iterations());
  mem.report(state);
  if constexpr (std::is_same_v<Side, OursSide>) profile_one_step(side, arch, train);
}

#ifdef BENCH_WITH_LIBTORCH
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0.0 : n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// All sides in one process, interleaved: see the header comment.
void run_paired(benchmark::State& state, const Arch& arch, bool train, int warmup) {
  bench::set_threads();
  OursSide ours(arch, train);
  TorchSide cl(arch, train, true), nchw(arch, train, false);
  std::vector<double> ms[3];  // ours, channels_last, nchw
  auto timed = [](auto& side) {
    const auto t0 = std::chrono::steady_clock::now();
    side.step(nullptr);
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  };
  auto run = [&](int first) {  // one round, starting with side `first`
    for (int i = 0; i < 3; ++i) {
      const int s = (first + i) % 3;
      const double t = s == 0 ? timed(ours) : s == 1 ? timed(cl) : timed(nchw);
      ms[s].push_back(t);
    }
  };
  for (int w = 0; w < warmup; ++w) run(w % 3);
  for (auto& v : ms) v.clear();
  const double load0 = bench::load_1m();
  int round = 0;
  for (auto _ : state) run(round++ % 3);
  const double m_ours = median(ms[0]), m_cl = median(ms[1]), m_nchw = median(ms[2]);
  const std::vector<double>& best = m_cl <= m_nchw ? ms[1] : ms[2];
  std::vector<double> ratios;
  for (size_t i = 0; i < ms[0].size(); ++i) ratios.push_back(ms[0][i] / best[i]);
  state.counters["ours_ms"] = m_ours;
  state.counters["libtorch_ms"] = m_cl;
  state.counters["libtorch_nchw_ms"] = m_nchw;
  state.counters["best_is_channels_last"] = m_cl <= m_nchw ? 1 : 0;
  state.counters["ratio_median"] = median(ratios);
  state.counters["ratio_min"] = *std::min_element(ratios.begin(), ratios.end());
  state.counters["ratio_max"] = *std::max_element(ratios.begin(), ratios.end());
  state.counters["rounds"] = static_cast<double>(ratios.size());
  state.counters["load_1m"] = std::max(load0, bench::load_1m());
}
#endif

// Registered in code: per (mode, architecture) LibTorch's two layouts, ours, then paired.
const bool registered = [] {
  for (const Arch& a : kArchs) {
    const bench::Steps alone = bench::steps(1, a.steps);
    [[maybe_unused]] const bench::Steps paired = bench::steps(1, a.paired);  // LibTorch only
    for (bool train : {true, false}) {
      const std::string base = std::string(train ? "BM_e2e_train_" : "BM_e2e_infer_") + a.name + "/";
      auto reg = [](const std::string& name, int iterations, auto fn) {
        benchmark::RegisterBenchmark(name.c_str(), fn)
            ->Iterations(iterations)->UseRealTime()->Unit(benchmark::kMillisecond);
      };
#ifdef BENCH_WITH_LIBTORCH
      reg(base + "libtorch", alone.timed, [&a, train, alone](benchmark::State& s) {
        run_alone<TorchSide>(s, a, train, alone.warmup, true);
      });
      reg(base + "libtorch_nchw", alone.timed, [&a, train, alone](benchmark::State& s) {
        run_alone<TorchSide>(s, a, train, alone.warmup, false);
      });
#endif
      reg(base + "ours", alone.timed, [&a, train, alone](benchmark::State& s) {
        run_alone<OursSide>(s, a, train, alone.warmup);
      });
#ifdef BENCH_WITH_LIBTORCH
      reg(base + "paired", paired.timed, [&a, train, paired](benchmark::State& s) {
        run_paired(s, a, train, paired.warmup);
      });
#endif
    }
  }
  return true;
}();

}  // namespace
