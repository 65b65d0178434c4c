// bench/e2e/loader_bench.cpp — the training data loader: JPEG decode + augmentation +
// normalisation into an NHWC float batch, on the 500 real 224x224 crops of
// ../shared/data/penn-campus/crops224 (BENCH_DATA_DIR overrides the folder).
//
//   build/bench-cpu/bench/e2e_bench --benchmark_filter='BM_e2e_loader'
//
// BM_e2e_loader_<preset>/ours: one epoch (500 images, batch 32) through i2g::Loader with one
//   worker thread, no image cache (every image is decoded every epoch); preset geo_safe
//   (RandomResizedCrop 0.8-1 -> 224, ColorJitter, blur with p 0.1) or none (resize only).
//   items_per_s = images per second of wall time = the per-core rate (the one worker does all
//   the work; the consumer only waits). per_worker_images_per_s is the loader's own count
//   (images per second of worker busy time).
// BM_e2e_loader_<preset>_2workers/ours: the same with 2 workers: throughput on both cores.
// tools/bench_cpu.sh times torchvision's transforms on the same files (PIL decode and
// the same ops, one core) as the reference row.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "apps/image2gps/loader.h"
#include "bench/e2e/bench_util.h"

namespace {

std::string data_dir() {
  if (const char* e = std::getenv("BENCH_DATA_DIR")) return e;
  return std::string(ENGINE_SOURCE_DIR) + "/../shared/data/penn-campus/crops224";
}

void loader(benchmark::State& state, i2g::AugmentPreset preset, int workers, int warmup) {
  bench::PeakMemory mem;
  bench::set_threads();
  const std::string dir = data_dir();
  if (!std::filesystem::exists(dir + "/metadata.csv")) {
    state.SkipWithError(("no data set at " + dir + " (set BENCH_DATA_DIR)").c_str());
    for (auto _ : state) {
    }
    return;
  }
  const i2g::Dataset data = i2g::Dataset::open(dir);
  const i2g::CoordNorm norm = i2g::CoordNorm::fit(data.records);
  i2g::LoaderOptions opt;
  opt.batch_size = 32;
  opt.shuffle = true;
  opt.workers = workers;
  opt.augment.preset = preset;
  opt.augment.size = 224;
  uint64_t epoch = 0;
  double per_worker = 0;
  int64_t images = 0;
  mem.begin_steps();
  bench::time_steps(state, warmup, static_cast<double>(data.size()), [&] {
    // A fresh Loader per epoch, as the trainer makes one; no cache: decode every time.
    i2g::Loader l(data, norm, opt, epoch++, std::make_shared<i2g::ImageCache>(0));
    i2g::Batch b;
    while (l.next(b)) images += b.images.size(0);
    per_worker = l.images_per_second_per_worker();
  });
  state.counters["per_worker_images_per_s"] = per_worker;
  state.counters["images_per_epoch"] = static_cast<double>(data.size());
  state.counters["workers"] = workers;
  benchmark::DoNotOptimize(images);
  mem.report(state);
}

const bool registered = [] {
  const bench::Steps st = bench::steps(1, 3);
  struct Case {
    const char* name;
    i2g::AugmentPreset preset;
    int workers;
  };
  for (Case c : {Case{"geo_safe", i2g::AugmentPreset::GeoSafe, 1},
                 Case{"none", i2g::AugmentPreset::None, 1},
                 Case{"geo_safe_2workers", i2g::AugmentPreset::GeoSafe, 2}}) {
    benchmark::RegisterBenchmark(
        (std::string("BM_e2e_loader_") + c.name + "/ours").c_str(),
        [c, st](benchmark::State& s) { loader(s, c.preset, c.workers, st.warmup); })
        ->Iterations(st.timed)->UseRealTime()->Unit(benchmark::kMillisecond);
  }
  return true;
}();

}  // namespace
