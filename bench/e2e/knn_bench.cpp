// bench/e2e/knn_bench.cpp — k-NN retrieval as image2gps eval does it: 1024 query embeddings
// against a bank of N embeddings of dim 768 (ConvNeXt-T's width), k = 15, squared L2.
//
//   build/bench-cpu/bench/e2e_bench --benchmark_filter='BM_e2e_knn'
//
// BM_e2e_knn_<N>/ours: engine::knn_search, the fused search (blocked distance GEMM with a
//   per-query heap; never holds the [1024, N] distance matrix).
// BM_e2e_knn_<N>/libtorch: torch::cdist (its matmul path for inputs this size) then
//   topk(15, largest = false): what one writes in LibTorch; it materialises [1024, N].
// N = 100,000 and 250,000. The 1,000,000-row bank (3 GB of float32, plus a 4 GB distance
// matrix on the LibTorch side) is left out on the 2-core build machine: it would take minutes
// per call. Counters: ms_median, items_per_s (queries per second), GFLOP/s of the distance
// computation (2 * Q * N * D), peak_mb (bench_util.h), and on our row agree = the fraction of
// our neighbours that LibTorch's result also lists (checked after timing, not timed).
#include <benchmark/benchmark.h>

#include <set>
#include <string>

#include "bench/e2e/bench_util.h"
#include "engine/engine.h"

namespace {

constexpr int64_t kQueries = 1024, kDim = 768, kK = 15;

struct KnnData {
  engine::Tensor queries, bank;
  explicit KnnData(int64_t n) {
    engine::Generator gen(11);
    queries = engine::Tensor::randn({kQueries, kDim}, gen);
    bank = engine::Tensor::randn({n, kDim}, gen);
  }
};

void set_flops(benchmark::State& state, int64_t n) {
  const double flop = 2.0 * kQueries * static_cast<double>(n) * kDim;
  state.counters["GFLOP/s"] = flop * 1e-9 / (state.counters["ms_median"] * 1e-3);
}

#ifdef BENCH_WITH_LIBTORCH
torch::Tensor as_torch(const engine::Tensor& t) {
  return torch::from_blob(t.raw_data(), {t.size(0), t.size(1)});  // borrows: t outlives it
}

torch::Tensor libtorch_knn(const torch::Tensor& q, const torch::Tensor& bank) {
  return std::get<1>(torch::cdist(q, bank).topk(kK, /*dim=*/1, /*largest=*/false));
}
#endif

void knn_ours(benchmark::State& state, int64_t n, int warmup) {
  bench::PeakMemory mem;
  bench::set_threads();
  KnnData d(n);
  engine::TopK r;
  mem.begin_steps();
  bench::time_steps(state, warmup, kQueries, [&] {
    r = engine::knn_search(d.queries, d.bank, kK, engine::KnnMetric::L2);
    benchmark::DoNotOptimize(r.indices.raw_data());
  });
  set_flops(state, n);
  mem.report(state);
#ifdef BENCH_WITH_LIBTORCH
  // Same neighbours as LibTorch? Sets, not order: near-ties may swap places.
  torch::Tensor theirs = libtorch_knn(as_torch(d.queries), as_torch(d.bank)).contiguous();
  const int64_t* ti = theirs.data_ptr<int64_t>();
  const int64_t* oi = r.indices.data<int64_t>();
  int64_t same = 0;
  for (int64_t qi = 0; qi < kQueries; ++qi) {
    std::set<int64_t> s(ti + qi * kK, ti + (qi + 1) * kK);
    for (int64_t j = 0; j < kK; ++j) same += s.count(oi[qi * kK + j]);
  }
  state.counters["agree"] = static_cast<double>(same) / (kQueries * kK);
#endif
}

#ifdef BENCH_WITH_LIBTORCH
void knn_libtorch(benchmark::State& state, int64_t n, int warmup) {
  bench::PeakMemory mem;
  bench::set_threads();
  KnnData d(n);
  torch::Tensor q = as_torch(d.queries), bank = as_torch(d.bank);
  torch::NoGradGuard no_grad;
  mem.begin_steps();
  bench::time_steps(state, warmup, kQueries, [&] {
    bench::libtorch_blas_threads();
    torch::Tensor idx = libtorch_knn(q, bank);
    benchmark::DoNotOptimize(idx.data_ptr());
  });
  set_flops(state, n);
  mem.report(state);
}
#endif

const bool registered = [] {
  struct Size {
    int64_t n;
    int warmup, timed;
  };
  for (Size sz : {Size{100000, 1, 3}, Size{250000, 1, 2}}) {
    const bench::Steps st = bench::steps(sz.warmup, sz.timed);
    const std::string base = "BM_e2e_knn_" + std::to_string(sz.n) + "/";
    const int64_t n = sz.n;
#ifdef BENCH_WITH_LIBTORCH
    benchmark::RegisterBenchmark((base + "libtorch").c_str(),
                                 [n, st](benchmark::State& s) { knn_libtorch(s, n, st.warmup); })
        ->Iterations(st.timed)->UseRealTime()->Unit(benchmark::kMillisecond);
#endif
    benchmark::RegisterBenchmark((base + "ours").c_str(),
                                 [n, st](benchmark::State& s) { knn_ours(s, n, st.warmup); })
        ->Iterations(st.timed)->UseRealTime()->Unit(benchmark::kMillisecond);
  }
  return true;
}();

}  // namespace
