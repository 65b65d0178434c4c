// bench/cpu/repeated_runs.h — how the short per-kernel benchmarks (matmul, LayerNorm, per-op
// overhead, the Winograd table) are timed: wall-clock time (the work runs on 2 threads) of
// single iterations, repeated 30 times (or as asked), reported as median and min (plus Google Benchmark's mean/stddev/cv). The
// build machine is shared: other jobs only ever add time, and single iterations let the min
// show an undisturbed run even when the median cannot.
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <vector>

namespace bench_cpu {

inline void repeated_runs(benchmark::internal::Benchmark* b, int repetitions) {
  b->UseRealTime()->Unit(benchmark::kMillisecond)->Iterations(1)
      ->Repetitions(repetitions)->ReportAggregatesOnly(true)
      ->ComputeStatistics("min", [](const std::vector<double>& v) {
        return *std::min_element(v.begin(), v.end());
      });
}
// The default, for ->Apply(repeated_runs): 30 repetitions.
inline void repeated_runs(benchmark::internal::Benchmark* b) { repeated_runs(b, 30); }

}  // namespace bench_cpu
