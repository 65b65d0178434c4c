// bench/cpu/repeated_runs.h — how the short per-kernel benchmarks (matmul, LayerNorm, per-op
// overhead) are timed: wall-clock time (the work runs on 2 threads) of single iterations,
// repeated 30 times, reported as median and min (plus Google Benchmark's mean/stddev/cv). The
// build machine is shared: other jobs only ever add time, and single iterations let the min
// show an undisturbed run even when the median cannot.
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <vector>

namespace bench_cpu {

inline void repeated_runs(benchmark::internal::Benchmark* b) {
  b->UseRealTime()->Unit(benchmark::kMillisecond)->Iterations(1)
      ->Repetitions(30)->ReportAggregatesOnly(true)
      ->ComputeStatistics("min", [](const std::vector<double>& v) {
        return *std::min_element(v.begin(), v.end());
      });
}

}  // namespace bench_cpu
