// bench/cuda/bench_common.cuh — what the kernel-lab benchmarks share (llm.c's dev/cuda/common.h
// in spirit): device buffers, random inputs, validation against a host reference, timing with
// CUDA events and an L2 flush, the roofline arithmetic and a JSON log.
//
// Measuring rules (shared/GPU.md): validate before timing; warm up; the median of many runs;
// the 50 MB L2 is flushed (a 128 MB memset) before every timed run, so small shapes are timed
// from DRAM like the large ones; every CUDA call checked.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace bench {

// The arithmetic rates every FLOP floor is computed from: the H100's datasheet (shared/GPU.md);
// an H200 has the same SMs and clocks, so the same rates. The memory floor uses the copy rate
// measured on the card at hand (peak_bytes_per_s() below): 2.6 TB/s on the H100 of
// shared/GPU.md, about 4.3 on an H200 (HBM3e).
constexpr double kPeakFp32FlopPerS = 67e12;  // datasheet, CUDA cores
constexpr double kPeakTf32FlopPerS = 495e12;  // datasheet, dense TF32 tensor cores

inline void ok(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "CUDA error in %s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

// Exit code 77 = skipped (the convention of the test scripts).
inline void require_gpu(const char* prog) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
    std::printf("%s: no CUDA device visible, skipped\n", prog);
    std::exit(77);
  }
}

inline std::string device_name() {
  cudaDeviceProp prop{};
  ok(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
  return prop.name;
}

template <class T>
class Buffer {
 public:
  explicit Buffer(size_t n) : n_(n) {
    ok(cudaMalloc(&p_, std::max<size_t>(n, 1) * sizeof(T)), "cudaMalloc");
  }
  ~Buffer() { cudaFree(p_); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  T* get() const { return p_; }
  size_t size() const { return n_; }
  void upload(const std::vector<T>& h) {
    ok(cudaMemcpy(p_, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice), "upload");
  }
  std::vector<T> download() const {
    std::vector<T> h(n_);
    ok(cudaDeviceSynchronize(), "kernel execution");
    ok(cudaMemcpy(h.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost), "download");
    return h;
  }
  // NaN / -1 everywhere, finished before this returns. cudaMemset runs on the legacy default
  // stream, which does NOT wait for (or hold back) the engine's non-blocking stream: without
  // the synchronisation a kernel launched next on that stream could write its output before
  // the poison lands on it (seen on an H200: a 12 ms kernel's output came back 92% NaN).
  void poison() {
    ok(cudaMemset(p_, 0xFF, n_ * sizeof(T)), "poison");
    ok(cudaDeviceSynchronize(), "poison");
  }

 private:
  T* p_ = nullptr;
  size_t n_;
};

inline std::vector<float> random_floats(size_t n, uint64_t seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(gen);
  return v;
}

inline std::vector<double> to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

// |got - ref| <= atol + rtol*|ref| everywhere; prints the worst element when it fails.
inline bool validate(const char* what, const std::vector<float>& got,
                     const std::vector<double>& ref, double rtol, double atol) {
  size_t bad = 0, worst = 0;
  double worst_err = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    double err = std::fabs(double(got[i]) - ref[i]);
    if (!(err <= atol + rtol * std::fabs(ref[i]))) {
      if (bad == 0 || std::isnan(err) || err > worst_err) worst_err = err, worst = i;
      ++bad;
    }
  }
  if (bad) {
    std::printf("  FAIL %s: %zu of %zu elements off; worst [%zu] got %.8g expected %.8g\n", what,
                bad, got.size(), worst, double(got[worst]), ref[worst]);
  }
  return bad == 0;
}

// This card's memory ceiling: a 1 GiB device-to-device copy, bytes read + written per second,
// the median of 10 after 3 warm-ups; measured once per process (~30 ms), 2 GiB borrowed.
inline double peak_bytes_per_s() {
  static const double rate = [] {
    const size_t bytes = size_t(1) << 30;
    void *src = nullptr, *dst = nullptr;
    ok(cudaMalloc(&src, bytes), "copy-rate buffer");
    ok(cudaMalloc(&dst, bytes), "copy-rate buffer");
    ok(cudaMemset(src, 0x3C, bytes), "copy-rate buffer");
    cudaEvent_t e0, e1;
    ok(cudaEventCreate(&e0), "event");
    ok(cudaEventCreate(&e1), "event");
    std::vector<double> ms;
    for (int i = 0; i < 13; ++i) {
      ok(cudaEventRecord(e0), "record");
      ok(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice), "copy");
      ok(cudaEventRecord(e1), "record");
      ok(cudaEventSynchronize(e1), "sync");
      float t = 0;
      ok(cudaEventElapsedTime(&t, e0, e1), "elapsed");
      if (i >= 3) ms.push_back(t);
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    cudaFree(src);
    cudaFree(dst);
    std::sort(ms.begin(), ms.end());
    return 2.0 * double(bytes) / (ms[ms.size() / 2] * 1e-3);
  }();
  return rate;
}

// "NVIDIA H200, copy 4300 GB/s": the card and its measured memory ceiling, for a lab's header.
inline std::string device_line() {
  char rate[64];
  std::snprintf(rate, sizeof rate, ", copy %.0f GB/s", peak_bytes_per_s() / 1e9);
  return device_name() + rate;
}

// Writing 128 MB evicts whatever a previous run left in the 50 MB L2.
class L2Flusher {
 public:
  L2Flusher() : buf_(size_t(128) << 20) {}
  void flush(cudaStream_t s) { ok(cudaMemsetAsync(buf_.get(), 0, buf_.size(), s), "L2 flush"); }

 private:
  Buffer<char> buf_;
};

struct Timing {
  double median_ms = 0, min_ms = 0;
  int reps = 0;
};

// Median time of `launch` over reps runs, each after an L2 flush, timed with events around the
// launch alone. Slow versions (> 20 ms) get fewer repetitions.
inline Timing time_it(const std::function<void()>& launch, cudaStream_t s, L2Flusher& flusher,
                      int reps = 50) {
  launch();  // warm-up (module load, first-touch of the workspace pool)
  launch();
  ok(cudaStreamSynchronize(s), "warm-up");
  cudaEvent_t e0, e1;
  ok(cudaEventCreate(&e0), "event");
  ok(cudaEventCreate(&e1), "event");
  auto one = [&] {
    flusher.flush(s);
    ok(cudaEventRecord(e0, s), "record");
    launch();
    ok(cudaEventRecord(e1, s), "record");
    ok(cudaEventSynchronize(e1), "sync");
    float ms = 0;
    ok(cudaEventElapsedTime(&ms, e0, e1), "elapsed");
    return double(ms);
  };
  std::vector<double> t{one()};
  if (t[0] > 20.0) reps = std::min(reps, 5);
  while (int(t.size()) < reps) t.push_back(one());
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  std::sort(t.begin(), t.end());
  return {t[t.size() / 2], t[0], int(t.size())};
}

// One benchmark row: what was timed and its roofline.
struct Row {
  std::string op, shape;
  int version = 0;
  double ms = 0, min_ms = 0;
  double bytes = 0, flops = 0;
  double pytorch_ms = 0;  // 0 = no reference number
  bool valid = true;
  std::string math = "fp32";  // "tf32": the FLOP floor is the tensor cores'
  double cublas_ms = 0;       // cuBLAS on the same shape and math in the same run (0 = none)
  double floor_ms() const {
    const double peak = math == "tf32" ? kPeakTf32FlopPerS : kPeakFp32FlopPerS;
    return 1e3 * std::max(bytes / peak_bytes_per_s(), flops / peak);
  }
};

inline void print_header() {
  std::printf("%-18s %-22s %3s %10s %10s %9s %9s %10s %8s\n", "op", "shape", "v", "median ms",
              "min ms", "GB/s", "TFLOP/s", "floor ms", "% floor");
}

inline void print_row(const Row& r) {
  std::printf("%-18s %-22s %3d %10.4f %10.4f %9.1f %9.2f %10.4f %7.1f%%", r.op.c_str(),
              r.shape.c_str(), r.version, r.ms, r.min_ms, r.bytes / (r.ms * 1e-3) / 1e9,
              r.flops / (r.ms * 1e-3) / 1e12, r.floor_ms(), 100.0 * r.floor_ms() / r.ms);
  if (r.pytorch_ms > 0)
    std::printf("  x%.2f vs PyTorch %.3f ms", r.pytorch_ms / r.ms, r.pytorch_ms);
  if (r.cublas_ms > 0) std::printf("  x%.2f vs cuBLAS %.3f ms", r.cublas_ms / r.ms, r.cublas_ms);
  if (!r.valid) std::printf("  INVALID");
  std::printf("\n");
}

// {"family": ..., "device": ..., "date": ..., "rows": [...]} — the GPU script collects these.
// Written to PATH.tmp, then renamed over PATH: a bench that rewrites its file as rows come in
// (batchnorm_bench) and is stopped by a time limit leaves the last whole file, never half of one.
inline void write_json(const std::string& path, const char* family, const std::vector<Row>& rows) {
  if (path.empty()) return;
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (!f) {
    std::fprintf(stderr, "cannot write %s\n", tmp.c_str());
    std::exit(1);
  }
  std::time_t now = std::time(nullptr);
  char date[32];
  std::strftime(date, sizeof date, "%Y-%m-%d", std::gmtime(&now));
  std::fprintf(
      f,
      "{\n  \"family\": \"%s\",\n  \"device\": \"%s\",\n  \"date\": \"%s\",\n"
      "  \"copy_gbps\": %.1f,\n  \"rows\": [\n",
      family, device_name().c_str(), date, peak_bytes_per_s() / 1e9);
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    std::fprintf(f,
                 "    {\"op\": \"%s\", \"shape\": \"%s\", \"version\": %d, \"median_ms\": %.6f, "
                 "\"min_ms\": %.6f, \"bytes\": %.0f, \"flops\": %.0f, \"gbps\": %.2f, "
                 "\"tflops\": %.4f, \"floor_ms\": %.6f, \"pct_floor\": %.2f, \"pytorch_ms\": %.4f, "
                 "\"math\": \"%s\", \"cublas_ms\": %.6f, \"valid\": %s}%s\n",
                 r.op.c_str(), r.shape.c_str(), r.version, r.ms, r.min_ms, r.bytes, r.flops,
                 r.bytes / (r.ms * 1e-3) / 1e9, r.flops / (r.ms * 1e-3) / 1e12, r.floor_ms(),
                 100.0 * r.floor_ms() / r.ms, r.pytorch_ms, r.math.c_str(), r.cublas_ms,
                 r.valid ? "true" : "false",
                 i + 1 < rows.size() ? "," : "");
  }
  std::fprintf(f, "  ]\n}\n");
  const bool written = std::ferror(f) == 0;
  if (std::fclose(f) != 0 || !written || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    std::exit(1);
  }
}

// Minimal flag parsing: --name value pairs and bare --flags.
struct Args {
  std::vector<std::string> argv;
  Args(int argc, char** a) : argv(a + 1, a + argc) {}
  std::string get(const std::string& name, const std::string& def) const {
    for (size_t i = 0; i + 1 < argv.size(); ++i)
      if (argv[i] == name) return argv[i + 1];
    return def;
  }
  int get_int(const std::string& name, int def) const {
    std::string v = get(name, "");
    return v.empty() ? def : std::atoi(v.c_str());
  }
  bool has(const std::string& name) const {
    return std::find(argv.begin(), argv.end(), name) != argv.end();
  }
};

// Versions to run: --version V (0 = the fastest only) or all of 1..n.
inline std::vector<int> versions(const Args& args, int n) {
  int v = args.get_int("--version", -1);
  if (v >= 0) return {v};
  std::vector<int> all;
  for (int i = 1; i <= n; ++i) all.push_back(i);
  return all;
}

}  // namespace bench
