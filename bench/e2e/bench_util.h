// bench/e2e/bench_util.h — what every end-to-end benchmark shares: the thread count, the
// step timer (warm-up, then the median of timed steps), and the peak-memory probe.
//
// Peak memory is the process's resident set (Linux /proc/self/status), the same probe for our
// engine and for LibTorch. A benchmark notes the RSS when it starts (before building its model
// or data), builds everything, then resets the kernel's high-water mark (writing 5 to
// /proc/self/clear_refs) just before the warm-up steps, so temporaries of the setup (our
// Tensor::randn draws in float64) do not count. At the end it reports peak_mb = VmHWM - the
// starting RSS: everything resident at the worst moment of the steps, i.e. weights, inputs,
// gradients, optimizer state, activations, library workspaces and allocator slack; and
// setup_mb = what was resident when the steps began. It undercounts when memory freed by an
// earlier benchmark in the same process is still resident and gets reused, so
// tools/bench_cpu.sh runs every benchmark in a fresh process, and each benchmark reports
// first_in_process = 1 only when nothing ran before it.
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif
#ifdef BENCH_WITH_LIBTORCH
#include <torch/torch.h>
#endif

extern "C" void openblas_set_num_threads(int num_threads);  // OpenBLAS's own pool (cblas.h)

namespace bench {

// The thread count of both sides: 2 (this build machine's cores) unless BENCH_THREADS says
// otherwise.
inline int bench_threads() {
  int n = 2;
  if (const char* e = std::getenv("BENCH_THREADS")) n = std::max(1, std::atoi(e));
  return n;
}

// LibTorch's BLAS is the OpenBLAS we link (Debian's libblas.so.3 wraps it), and our GEMM sets
// it to one thread whenever it runs (kernels/cpu/matmul.cpp): give it its threads back before
// each LibTorch turn.
inline void libtorch_blas_threads() { openblas_set_num_threads(bench_threads()); }

// Sets OpenMP (our kernels and, inside them, our GEMMs), OpenBLAS (for LibTorch, see above) and
// LibTorch's intra-op pool to bench_threads().
inline int set_threads() {
  const int n = bench_threads();
#if defined(_OPENMP)
  omp_set_num_threads(n);
#endif
  libtorch_blas_threads();
#ifdef BENCH_WITH_LIBTORCH
  torch::set_num_threads(n);
#endif
  return n;
}

// The 1-minute load average (-1 when unavailable): how busy the shared machine was.
inline double load_1m() {
  double l[1];
  return getloadavg(l, 1) == 1 ? l[0] : -1.0;
}

// Reads a "Name:   1234 kB" line of /proc/self/status, in MiB (0 when unavailable).
inline double proc_status_mb(const std::string& key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind(key + ":", 0) == 0) return std::atof(line.c_str() + key.size() + 1) / 1024.0;
  }
  return 0.0;
}

class PeakMemory {
 public:
  // Remembers the current RSS (construct it before building the model or data).
  PeakMemory() {
    static int benchmarks_started = 0;
    first_in_process_ = benchmarks_started++ == 0;
    start_mb_ = proc_status_mb("VmRSS");
  }
  // Call after the setup, before the first step: resets the high-water mark to the current RSS.
  void begin_steps() {
    std::ofstream clear("/proc/self/clear_refs");
    clear << "5";
    clear.flush();
    reset_ok_ = clear.good();
    setup_mb_ = proc_status_mb("VmRSS") - start_mb_;
  }
  // Sets peak_mb, setup_mb, rss_start_mb, first_in_process and peak_reset_ok. Without a
  // working reset the high-water mark includes the setup's temporaries (peak_reset_ok = 0).
  void report(benchmark::State& state) const {
    state.counters["peak_mb"] = proc_status_mb("VmHWM") - start_mb_;
    state.counters["setup_mb"] = setup_mb_;
    state.counters["rss_start_mb"] = start_mb_;
    state.counters["first_in_process"] = first_in_process_ ? 1 : 0;
    state.counters["peak_reset_ok"] = reset_ok_ ? 1 : 0;
  }

 private:
  double start_mb_ = 0, setup_mb_ = 0;
  bool first_in_process_ = false, reset_ok_ = false;
};

// How many untimed warm-up calls and timed calls a benchmark makes. BENCH_QUICK=1 (a smoke
// test of the suite) makes it 0 and 1.
struct Steps {
  int warmup, timed;
};
inline Steps steps(int warmup, int timed) {
  if (const char* q = std::getenv("BENCH_QUICK"); q && std::string(q) == "1") return {0, 1};
  return {warmup, timed};
}

// Runs `step` warm-up times untimed, then once per benchmark iteration (the benchmark is
// registered with Iterations(timed)), timing each call. Sets ms_median, ms_min, ms_max,
// load_1m (the higher 1-minute load average of before and after) and,
// with items_per_step > 0, items_per_s = items_per_step / median. The median of a few steps
// resists the spikes a shared machine adds; min shows the least disturbed step.
template <class F>
void time_steps(benchmark::State& state, int warmup, double items_per_step, F&& step) {
  const double load0 = load_1m();
  for (int i = 0; i < warmup; ++i) step();
  std::vector<double> ms;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    step();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                     .count());
  }
  if (ms.empty()) return;
  std::sort(ms.begin(), ms.end());
  const size_t n = ms.size();
  const double median = n % 2 ? ms[n / 2] : 0.5 * (ms[n / 2 - 1] + ms[n / 2]);
  state.counters["ms_median"] = median;
  state.counters["ms_min"] = ms.front();
  state.counters["ms_max"] = ms.back();
  state.counters["steps"] = static_cast<double>(n);
  state.counters["warmup"] = warmup;
  state.counters["load_1m"] = std::max(load0, load_1m());
  if (items_per_step > 0) state.counters["items_per_s"] = items_per_step / (median * 1e-3);
}

// Splits a step into named phases (forward, backward, optimizer): begin() at the start of the
// step, mark(name) at the end of each phase. report() sets <name>_ms = the median over the
// last `n` steps (the timed ones; warm-up steps are recorded first and dropped).
class Phases {
 public:
  void begin() { last_ = std::chrono::steady_clock::now(); }
  void mark(const std::string& name) {
    const auto now = std::chrono::steady_clock::now();
    auto it = std::find_if(ms_.begin(), ms_.end(), [&](const auto& p) { return p.first == name; });
    if (it == ms_.end()) it = ms_.insert(ms_.end(), {name, {}});
    it->second.push_back(std::chrono::duration<double, std::milli>(now - last_).count());
    last_ = now;
  }
  void report(benchmark::State& state, size_t n) const {
    for (const auto& [name, all] : ms_) {
      std::vector<double> v(all.end() - static_cast<std::ptrdiff_t>(std::min(n, all.size())),
                            all.end());
      if (v.empty()) continue;
      std::sort(v.begin(), v.end());
      const size_t k = v.size();
      state.counters[name + "_ms"] = k % 2 ? v[k / 2] : 0.5 * (v[k / 2 - 1] + v[k / 2]);
    }
  }

 private:
  std::chrono::steady_clock::time_point last_;
  std::vector<std::pair<std::string, std::vector<double>>> ms_;
};

}  // namespace bench
