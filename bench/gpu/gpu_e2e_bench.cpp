// bench/gpu/gpu_e2e_bench.cpp — our engine end to end on the GPU: one training step and one
// inference pass of ResNet-18, ResNet-50 and ConvNeXt-Tiny (batch 64, 224x224), and k-NN
// retrieval (1024 queries x 100k / 1M bank vectors of dim 768, k = 15). The PyTorch and
// LibTorch sides of the same comparison are bench/gpu/torch_e2e.py and bench/gpu/libtorch/;
// tools/gpu_bench.sh runs all three within a time budget and prints the table.
//
//   build/cuda-release/bench/gpu_e2e_bench --arch resnet50 --impl vendor --json out.json
//   gpu_e2e_bench --bench knn --knn 1024x100000,1x1000000
//   gpu_e2e_bench --device cpu --batch 2 --steps 2 --warmup 1    # smoke test without a GPU
//   gpu_e2e_bench --arch convnext_tiny --bench train --profile out/  # + where the time goes
//
// train: zero_grad (gradients dropped, as torch's set_to_none), forward, MSE loss against a
//   [B, 2] target, backward, AdamW step (lr 1e-4, weight decay 0.01, our fused multi-tensor
//   kernel). models::create(arch, 2, Head::Linear) in training mode (BatchNorm batch
//   statistics, ConvNeXt stochastic depth 0.1 drawing its masks), NHWC input.
// infer: eval mode, no autograd, forward only.
// Each for --precision fp32 (TF32 off: cuBLAS default math, cuDNN FMA math) and tf32
// (engine::cuda::set_tf32(true), as PyTorch's allow_tf32), and for --impl vendor (every op
// family with a cuBLAS/cuDNN version uses it), ours (every family runs our kernels) or default
// (the engine's per-family defaults), each with optional per-family exceptions
// (default+BATCHNORM=ours: the defaults, our BatchNorm). Ops without a vendor version (LayerNorm, GELU, AdamW,
// losses, elementwise) are always ours. cuDNN's convolution algorithms are chosen by timing
// (engine::cuda::set_cudnn_benchmark, as torch_e2e.py's cudnn.benchmark = True) unless
// --cudnn-benchmark off, and, as on PyTorch's side (cudnn.deterministic = False, its default),
// any of cuDNN's algorithms may run the backward passes unless --cudnn-deterministic on (the
// engine's own default allows only deterministic ones: engine::cuda::set_cudnn_deterministic).
// knn: engine::knn_search (fused: distance tiles never leave shared memory; one query streams
//   the bank with warp dot products), float32, squared L2. Before timing, the first
//   --knn-cpu-check queries are searched on the CPU too and the neighbour sets compared.
//
// Timing (bench/gpu/e2e_common.h): synchronise, step, synchronise; ms = wall time of that,
// median over the timed steps after the warm-up. gpu_ms and the fwd/bwd/opt split come from
// CUDA events on the engine's stream (queued between the calls, no extra synchronisation).
// Memory: the engine's caching allocator (engine/cuda/runtime.h). The cache is emptied before
// each benchmark; peak_mib = the highest bytes held by live tensors during the steps, counted
// from before the model was built (weights, inputs, gradients, AdamW state, activations and
// library workspaces, each block counted at its size rounded up to 512 B, as PyTorch's
// max_memory_allocated counts);
// reserved_mib = what the allocator holds from cudaMalloc at the end (live + cached).
// --profile DIR: after each training benchmark's timing, --profile-steps more steps run inside an
//   engine::profiler session (GPU time per op from CUDA events on the stream); the Chrome trace
//   and the text table go to DIR, the record names the trace (bench_report_gpu.py sums it).
// Output: JSON {"context": {...}, "results": [...]}, one record per benchmark, rewritten after
// each (so a run stopped by a time limit keeps what it measured). Exit status: 0, 1 when a
// benchmark failed (its record says why), 2 for bad options, 77 when no GPU is visible.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench/gpu/e2e_common.h"
#include "engine/cuda/runtime.h"
#include "engine/engine.h"
#include "engine/profiler.h"
#include "kernels/cuda/conv2d_ops.h"
#include "models/model.h"
#include "nn/optimizer.h"

namespace {

using engine::Device;
using engine::Tensor;
using engine::cuda::Family;
using engine::cuda::Impl;

constexpr int64_t kOutputs = 2;
constexpr double kLr = 1e-4, kWeightDecay = 1e-2, kMiB = 1024.0 * 1024.0;

void cuda_ok(cudaError_t status, const char* what) {
  if (status != cudaSuccess)
    throw engine::Error(std::string(what) + ": " + cudaGetErrorString(status));
}

// A CUDA event on the engine's stream (RAII).
class Event {
 public:
  Event() { cuda_ok(cudaEventCreate(&e_), "cudaEventCreate"); }
  ~Event() { cudaEventDestroy(e_); }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  void record() { cuda_ok(cudaEventRecord(e_, engine::cuda::stream()), "cudaEventRecord"); }
  // ms from `start` to this event (both recorded and complete).
  double since(const Event& start) const {
    float ms = 0;
    cuda_ok(cudaEventElapsedTime(&ms, start.e_, e_), "cudaEventElapsedTime");
    return ms;
  }

 private:
  cudaEvent_t e_ = nullptr;
};

// Events at the phase boundaries of a step on the GPU; nothing on the CPU. mark(i) records
// boundary i; after the step's synchronisation, collect() appends each phase's ms.
class PhaseEvents {
 public:
  PhaseEvents(bool on, std::vector<std::string> names) : names_(std::move(names)) {
    if (on)
      for (size_t i = 0; i <= names_.size(); ++i) ev_.push_back(std::make_unique<Event>());
    ms_.resize(names_.size() + 1);
  }
  void mark(size_t i) {
    if (!ev_.empty()) ev_[i]->record();
  }
  void collect() {
    if (ev_.empty()) return;
    for (size_t i = 0; i < names_.size(); ++i) ms_[i].push_back(ev_[i + 1]->since(*ev_[i]));
    ms_.back().push_back(ev_.back()->since(*ev_.front()));
  }
  // <name>_ms medians and gpu_ms_median (first to last boundary).
  void put(e2e::Record& r) const {
    if (ev_.empty()) return;
    r.set("gpu_ms_median", e2e::median(ms_.back()));
    if (names_.size() > 1)
      for (size_t i = 0; i < names_.size(); ++i) r.set(names_[i] + "_ms", e2e::median(ms_[i]));
  }

 private:
  std::vector<std::string> names_;
  std::vector<std::unique_ptr<Event>> ev_;
  std::vector<std::vector<double>> ms_;
};

// Device memory seen by the caching allocator over one benchmark (GPU only).
class MemoryProbe {
 public:
  explicit MemoryProbe(bool on) : on_(on) {
    if (!on_) return;
    engine::cuda::synchronize();
    engine::cuda::empty_cache();
    base_ = engine::cuda::memory_stats().in_use;
  }
  // After the setup (model, inputs, optimizer), before the first step.
  void begin_steps() {
    if (!on_) return;
    engine::cuda::synchronize();
    setup_ = engine::cuda::memory_stats().in_use - base_;
    engine::cuda::reset_peak_memory();
  }
  void put(e2e::Record& r, const std::string& peak_key = "peak_mib") const {
    if (!on_) return;
    const engine::cuda::MemoryStats s = engine::cuda::memory_stats();
    r.set(peak_key, (static_cast<double>(s.peak) - base_) / kMiB);
    r.set("setup_mib", setup_ / kMiB);
    r.set("reserved_mib", (static_cast<double>(s.reserved) - base_) / kMiB);
  }

 private:
  bool on_;
  double base_ = 0, setup_ = 0;
};

// A float32 tensor of `shape` filled with e2e::hash_uniform(i, seed) (the shared formula).
Tensor uniform(const engine::Shape& shape, uint32_t seed, Device device) {
  std::vector<float> v(static_cast<size_t>(engine::numel(shape)));
  e2e::fill_uniform(v.data(), static_cast<int64_t>(v.size()), seed);
  return Tensor::from_vector(v, shape, device);
}

struct Config {
  Device device;
  int64_t batch = 64, res = 224;
  e2e::Plan train, infer, knn;
  int64_t knn_dim = 768, knn_k = 15, knn_cpu_check = 16;
  std::string knn_indices_dir;
  std::string profile_dir;  // per-op profiles of the model benchmarks go there when set
  int profile_steps = 2;
};

// Writes `text` to `path` whole (a benchmark artifact: not worth a temporary and a rename).
void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
  if (!f) throw engine::Error(path + ": cannot write");
}

// The per-family defaults, read before any set_impl so "default" can restore them.
std::vector<Impl> g_default_impl;

// A kernel choice (--impl): "vendor", "ours" or "default" (the engine's per-family defaults),
// optionally followed by per-family exceptions, "+FAMILY=ours|vendor" each: "vendor+BATCHNORM=ours"
// is cuBLAS/cuDNN everywhere but our BatchNorm. Returns FAMILY -> Impl for the exceptions;
// throws on anything else, naming what it expected.
std::map<int, Impl> impl_exceptions(const std::string& spec) {
  std::stringstream ss(spec);
  std::string base, item;
  std::getline(ss, base, '+');
  if (base != "vendor" && base != "ours" && base != "default")
    throw std::runtime_error("--impl: '" + spec + "' must start with vendor, ours or default");
  std::map<int, Impl> out;
  while (std::getline(ss, item, '+')) {
    const size_t eq = item.find('=');
    const std::string fam = item.substr(0, eq);
    const std::string which = eq == std::string::npos ? "" : item.substr(eq + 1);
    int found = -1;
    std::string families;
    for (int f = 0; f < static_cast<int>(Family::kCount); ++f) {
      const std::string name = engine::cuda::family_name(static_cast<Family>(f));
      if (fam == name) found = f;
      families += (families.empty() ? "" : ", ") + name;
    }
    if (found < 0 || (which != "ours" && which != "vendor"))
      throw std::runtime_error("--impl: '" + item + "' in '" + spec +
                               "' is not FAMILY=ours or FAMILY=vendor (families: " + families +
                               ")");
    out[found] = which == "ours" ? Impl::Ours : Impl::Vendor;
  }
  return out;
}

// Applies an --impl choice to every op family; returns "GEMM=vendor,CONV=vendor,...".
std::string apply_impl(const std::string& which) {
  const std::map<int, Impl> except = impl_exceptions(which);
  const std::string base = which.substr(0, which.find('+'));
  std::string desc;
  for (int f = 0; f < static_cast<int>(Family::kCount); ++f) {
    const auto fam = static_cast<Family>(f);
    Impl i = base == "ours" ? Impl::Ours
             : base == "vendor" ? Impl::Vendor
                                : g_default_impl[static_cast<size_t>(f)];
    if (auto e = except.find(f); e != except.end()) i = e->second;
    engine::cuda::set_impl(fam, i);
    desc += std::string(desc.empty() ? "" : ",") + engine::cuda::family_name(fam) + "=" +
            engine::cuda::impl_name(i);
  }
  return desc;
}

void sync(const Config& c) {
  if (c.device.is_cuda()) engine::cuda::synchronize();
}

// One training-step or inference benchmark.
e2e::Record model_bench(const Config& c, const std::string& arch, bool train,
                        const std::string& precision, const std::string& impl) {
  e2e::Record r;
  r.set("bench", train ? "train" : "infer").set("model", arch).set("side", "ours");
  r.set("precision", precision).set("variant", impl).set("batch", c.batch).set("res", c.res);
  const bool gpu = c.device.is_cuda();
  if (gpu) {
    engine::cuda::set_tf32(precision == "tf32");
    r.set("impl_families", apply_impl(impl));
  }
  MemoryProbe mem(gpu);
  const int64_t fallbacks0 = gpu ? kernels::cuda::conv_vendor_fallbacks() : 0;
  const int64_t timing_failures0 = gpu ? kernels::cuda::conv_benchmark_failures() : 0;
  std::shared_ptr<models::Model> model = models::create(arch, kOutputs, models::Head::Linear);
  model->to(c.device);
  model->train(train);
  Tensor images = uniform({c.batch, c.res, c.res, 3}, e2e::kSeedImages, c.device);  // NHWC
  Tensor targets = uniform({c.batch, kOutputs}, e2e::kSeedTargets, c.device);
  std::unique_ptr<nn::AdamW> opt;
  if (train)
    opt = std::make_unique<nn::AdamW>(model->parameters(),
                                      nn::AdamWOptions{.lr = kLr, .weight_decay = kWeightDecay});
  PhaseEvents ph(gpu, train ? std::vector<std::string>{"fwd", "bwd", "opt"}
                            : std::vector<std::string>{"fwd"});
  Tensor first, last;  // the first and last step's loss (train) or output (infer)
  bool pending = false;  // a timed step's events wait to be read after its synchronisation
  auto step = [&] {
    ph.mark(0);
    if (train) {
      opt->zero_grad();
      Tensor loss = engine::mse_loss(model->forward(images), targets);
      ph.mark(1);
      loss.backward();
      ph.mark(2);
      opt->step();
      ph.mark(3);
      last = loss.detach();
    } else {
      engine::NoGradGuard no_grad;
      last = model->forward(images);
      ph.mark(1);
    }
    if (!first.defined()) first = last;
  };
  mem.begin_steps();
  // Kernels and cuBLAS/cuDNN calls one timed step queues (gpu only): past the driver's ~1,000
  // pending launches the host waits at a launch, and its queuing time then tracks the GPU's.
  uint64_t launches = 0, library_calls = 0;
  const e2e::StepTimes st = e2e::run_steps(
      train ? c.train : c.infer,
      [&](bool timed) {
        const uint64_t l0 = gpu ? engine::cuda::launch_count() : 0;
        const uint64_t c0 = gpu ? engine::cuda::library_call_count() : 0;
        step();
        if (timed && gpu) {
          launches += engine::cuda::launch_count() - l0;
          library_calls += engine::cuda::library_call_count() - c0;
        }
        pending = timed;
      },
      [&] {
        sync(c);
        if (pending) ph.collect();
        pending = false;
      });
  e2e::put_times(r, st);
  if (gpu && !st.ms.empty()) {
    r.set("launches_per_step", double(launches) / double(st.ms.size()));
    r.set("library_calls_per_step", double(library_calls) / double(st.ms.size()));
  }
  r.set("img_s", c.batch / (e2e::median(st.ms) * 1e-3));
  // Convolutions asked of cuDNN that ran on our kernels (no deterministic FMA/TF32 algorithm
  // for the shape): 0 means a "vendor" row is all cuDNN's.
  if (gpu) r.set("conv_vendor_fallbacks", kernels::cuda::conv_vendor_fallbacks() - fallbacks0);
  if (gpu)
    r.set("cudnn_benchmark_failures",
          kernels::cuda::conv_benchmark_failures() - timing_failures0);
  ph.put(r);
  mem.put(r);
  // Sanity, after timing: the steps computed finite numbers (the JSON keeps the first and last
  // loss, so a reader sees training move it).
  double s_first = 0, s_last = 0;
  for (double v : first.to_vector()) s_first += v;
  for (double v : last.to_vector()) s_last += v;
  r.set(train ? "loss_first" : "out_sum_first", s_first).set(train ? "loss_last" : "out_sum_last", s_last);
  r.set("status", std::isfinite(s_first) && std::isfinite(s_last) ? "ok" : "nonfinite");
  if (train && !c.profile_dir.empty() && c.profile_steps > 0) {
    // After the timing, a few more steps inside a profiler session (engine/profiler.h): on the
    // GPU two CUDA events per op, queued without waiting, so the steps run as the timed ones.
    // A failure here costs the profile, not the timings above.
    try {
      const std::string base =
          c.profile_dir + "/profile_train_" + arch + "_" + precision + "_" + impl;
      engine::profiler::Session session(c.device);
      for (int i = 0; i < c.profile_steps; ++i) step();
      const engine::profiler::Profile p = session.stop();
      write_text(base + ".trace.json", p.chrome_trace());
      write_text(base + ".txt", p.table(40));
      r.set("profile_trace", base + ".trace.json").set("profile_steps", c.profile_steps);
      r.set("profile_ops_ms", p.busy_us() / 1000 / c.profile_steps);
      r.set("profile_host_ops_ms", p.host_busy_us() / 1000 / c.profile_steps);
      r.set("profile_span_ms", p.span_us() / 1000 / c.profile_steps);
    } catch (const std::exception& e) {
      r.set("profile_error", e.what());
      std::fprintf(stderr, "profile %s %s %s: %s\n", arch.c_str(), precision.c_str(),
                   impl.c_str(), e.what());
    }
  }
  return r;
}

// "1024x100000" -> {1024, 100000}.
std::pair<int64_t, int64_t> parse_case(const std::string& s) {
  const auto x = s.find('x');
  char* end = nullptr;
  const long long q = x == std::string::npos ? 0 : std::strtoll(s.c_str(), &end, 10);
  const long long n = x == std::string::npos ? 0 : std::strtoll(s.c_str() + x + 1, &end, 10);
  if (q <= 0 || n <= 0 || *end)
    throw engine::Error("--knn: '" + s + "' is not QUERIESxBANK (e.g. 1024x100000)");
  return {q, n};
}

// k-NN over every case; the bank (the largest N) and queries (the largest Q) are built once
// and each case searches their leading rows.
void knn_benches(const Config& c, const std::vector<std::string>& cases, e2e::JsonLog& log,
                 int& failures) {
  std::vector<std::pair<int64_t, int64_t>> qn;
  int64_t qmax = 0, nmax = 0;
  for (const auto& s : cases) {
    qn.push_back(parse_case(s));
    qmax = std::max(qmax, qn.back().first);
    nmax = std::max(nmax, qn.back().second);
  }
  if (qn.empty()) return;
  const int64_t d = c.knn_dim, k = c.knn_k;
  const bool gpu = c.device.is_cuda();
  // Built on the host (the CPU check needs them there), then copied to the device once.
  Tensor q_host, bank_host, q_all, bank_all;
  try {
    q_host = uniform({qmax, d}, e2e::kSeedQueries, Device::cpu());
    bank_host = uniform({nmax, d}, e2e::kSeedBank, Device::cpu());
    q_all = q_host.to(c.device);
    bank_all = bank_host.to(c.device);
  } catch (const std::exception& e) {
    e2e::Record r;
    r.set("bench", "knn").set("side", "ours").set("status", "error");
    r.set("error", std::string("building the bank: ") + e.what());
    log.add(r);
    ++failures;
    std::fprintf(stderr, "knn: building the bank: %s\n", e.what());
    return;
  }
  for (auto [q, n] : qn) {
    e2e::Record r;
    r.set("bench", "knn").set("side", "ours").set("variant", "fused").set("precision", "fp32");
    r.set("queries", q).set("bank", n).set("dim", d).set("k", k);
    try {
      Tensor queries = q_all.slice(0, 0, q), bank = bank_all.slice(0, 0, n);
      MemoryProbe mem(gpu);
      engine::TopK result;
      mem.begin_steps();
      const e2e::StepTimes st = e2e::run_steps(
          c.knn, [&](bool) { result = engine::knn_search(queries, bank, k, engine::KnnMetric::L2); },
          [&] { sync(c); });
      e2e::put_times(r, st);
      const double ms = e2e::median(st.ms);
      r.set("queries_s", q / (ms * 1e-3));
      r.set("gflop_s", 2.0 * q * n * d / (ms * 1e-3) * 1e-9);
      r.set("bank_gb_s", 4.0 * n * d / (ms * 1e-3) * 1e-9);  // the bank read once: the floor
      mem.put(r, "extra_peak_mib");                             // above queries + bank
      const std::vector<double> idx_d = result.indices.to_vector();
      std::vector<int64_t> idx(idx_d.begin(), idx_d.end());
      // The CPU's answer for the first queries (a different code path: OpenBLAS + heaps).
      const int64_t m = std::min(q, c.knn_cpu_check);
      if (gpu && m > 0) {
        engine::TopK ref = engine::knn_search(q_host.slice(0, 0, m), bank_host.slice(0, 0, n), k,
                                              engine::KnnMetric::L2);
        const std::vector<double> ref_d = ref.indices.to_vector();
        std::vector<int64_t> ref_i(ref_d.begin(), ref_d.end());
        std::vector<int64_t> head(idx.begin(), idx.begin() + m * k);
        r.set("cpu_check_queries", m).set("agree_cpu", e2e::neighbour_agreement(head, ref_i, k));
      }
      if (!c.knn_indices_dir.empty()) {
        const std::string path = c.knn_indices_dir + "/knn_ours_" + std::to_string(q) + "x" +
                                 std::to_string(n) + ".i64";
        std::ofstream f(path, std::ios::binary);
        f.write(reinterpret_cast<const char*>(idx.data()),
                static_cast<std::streamsize>(idx.size() * sizeof(int64_t)));
        r.set("indices_file", path);
      }
      r.set("status", "ok");
    } catch (const std::exception& e) {
      r.set("status", "error").set("error", e.what());
      ++failures;
      std::fprintf(stderr, "knn %lldx%lld: %s\n", static_cast<long long>(q),
                   static_cast<long long>(n), e.what());
    }
    log.add(r);
    std::printf("%s\n", r.str().c_str());
    std::fflush(stdout);
  }
}

std::string version_string(int v) {  // 12090 -> "12.9", cuDNN 91900 -> "9.19.0"
  return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10);
}

void describe(const Config& c, e2e::Record& ctx) {
  ctx.set("side", "ours").set("date", e2e::utc_now()).set("device_kind", c.device.str());
  ctx.set("batch", c.batch).set("res", c.res);
  ctx.set("timing", "wall ms of synchronise-step-synchronise, median of timed steps; gpu_ms from "
                    "CUDA events");
  if (!c.device.is_cuda()) return;
  ctx.set("device", engine::cuda::device_description());
  int rt = 0, drv = 0;
  cudaRuntimeGetVersion(&rt);
  cudaDriverGetVersion(&drv);
  ctx.set("cuda_runtime", version_string(rt)).set("cuda_driver_api", version_string(drv));
  const size_t dnn = cudnnGetVersion();
  ctx.set("cudnn", std::to_string(dnn / 10000) + "." + std::to_string(dnn % 10000 / 100) + "." +
                       std::to_string(dnn % 100));
  int major = 0, minor = 0, patch = 0;
  cublasGetProperty(MAJOR_VERSION, &major);
  cublasGetProperty(MINOR_VERSION, &minor);
  cublasGetProperty(PATCH_LEVEL, &patch);
  ctx.set("cublas", std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch));
  ctx.set("allocator_caching", engine::cuda::caching_enabled());
  ctx.set("cudnn_benchmark", engine::cuda::cudnn_benchmark());
  ctx.set("cudnn_deterministic", engine::cuda::cudnn_deterministic());
  ctx.set("optimizer", "nn::AdamW(lr 1e-4, weight_decay 0.01), fused multi-tensor kernel");
}

int run(int argc, char** argv) {
  e2e::Args a(argc, argv, {
      {"device", "cuda (default) or cpu (a smoke test of this program, no GPU numbers)"},
      {"bench", "train,infer,knn (default all three)"},
      {"arch", "resnet18,resnet50,convnext_tiny (default all)"},
      {"precision", "fp32,tf32 (default both)"},
      {"impl", "vendor,ours,default: which kernels the op families use (default vendor,ours); "
               "each may name exceptions, e.g. vendor+BATCHNORM=ours"},
      {"batch", "images per step (default 64)"},
      {"res", "image side (default 224)"},
      {"warmup", "untimed steps per model benchmark (default 5)"},
      {"steps", "timed steps per model benchmark (default 20)"},
      {"max-seconds", "time cap per model benchmark (default 20)"},
      {"knn", "k-NN cases QUERIESxBANK (default 1024x100000,1024x1000000,1x1000000)"},
      {"knn-dim", "vector dimension (default 768)"},
      {"knn-k", "neighbours (default 15)"},
      {"knn-warmup", "untimed searches per case (default 2)"},
      {"knn-steps", "timed searches per case (default 10)"},
      {"knn-max-seconds", "time cap per k-NN case (default 15)"},
      {"knn-cpu-check", "queries re-searched on the CPU to check the GPU's answer (default 16)"},
      {"knn-indices-dir", "write our neighbour indices there (knn_ours_QxN.i64, raw int64)"},
      {"json", "write the results there"},
      {"profile", "after each training benchmark, profile a few more steps op by op into this "
                  "folder (profile_train_<arch>_<precision>_<impl>.trace.json for Perfetto, .txt)"},
      {"profile-steps", "steps per profile (default 2)"},
      {"cudnn-benchmark", "on (default: cuDNN's algorithms timed per shape, as PyTorch's "
                          "cudnn.benchmark on the other side) or off (cuDNN's heuristics)"},
      {"cudnn-deterministic", "off (default: any cuDNN convolution algorithm may run, as "
                              "PyTorch's default cudnn.deterministic = False on the other side) "
                              "or on (deterministic backward algorithms only, the engine's own "
                              "default)"},
  });
  if (a.help()) {
    std::printf("gpu_e2e_bench: our engine end to end on the GPU (see the source's header)\n%s",
                a.usage().c_str());
    return 0;
  }
  Config c;
  c.device = Device::parse(a.str("device", "cuda"));
  c.batch = static_cast<int64_t>(a.num("batch", 64));
  c.res = static_cast<int64_t>(a.num("res", 224));
  c.train.warmup = c.infer.warmup = static_cast<int>(a.num("warmup", 5));
  c.train.steps = c.infer.steps = static_cast<int>(a.num("steps", 20));
  c.train.max_seconds = c.infer.max_seconds = a.num("max-seconds", 20);
  c.knn.warmup = static_cast<int>(a.num("knn-warmup", 2));
  c.knn.steps = static_cast<int>(a.num("knn-steps", 10));
  c.knn.max_seconds = a.num("knn-max-seconds", 15);
  c.knn_dim = static_cast<int64_t>(a.num("knn-dim", 768));
  c.knn_k = static_cast<int64_t>(a.num("knn-k", 15));
  c.knn_cpu_check = static_cast<int64_t>(a.num("knn-cpu-check", 16));
  c.knn_indices_dir = a.str("knn-indices-dir", "");
  c.profile_dir = a.str("profile", "");
  c.profile_steps = static_cast<int>(a.num("profile-steps", 2));
  const auto benches = a.list("bench", "train,infer,knn", {"train", "infer", "knn"});
  const auto archs = a.list("arch", "resnet18,resnet50,convnext_tiny");
  const auto precisions = a.list("precision", "fp32,tf32", {"fp32", "tf32"});
  const auto impls = a.list("impl", "vendor,ours");
  for (const auto& impl : impls) impl_exceptions(impl);  // a bad choice fails now
  const auto knn_cases = a.list("knn", "1024x100000,1024x1000000,1x1000000");
  const auto cudnn_benchmark = a.list("cudnn-benchmark", "on", {"on", "off"});
  const auto cudnn_deterministic = a.list("cudnn-deterministic", "off", {"on", "off"});
  if (cudnn_benchmark.size() != 1 || cudnn_deterministic.size() != 1) {
    std::fprintf(stderr,
                 "gpu_e2e_bench: --cudnn-benchmark and --cudnn-deterministic take on or off\n");
    return 2;
  }
  auto has = [&](const char* b) { return std::find(benches.begin(), benches.end(), b) != benches.end(); };
  for (const auto& k : knn_cases) parse_case(k);  // bad cases fail now, not after the models

  if (c.device.is_cuda()) {
    if (!engine::cuda_available()) {
      std::printf("gpu_e2e_bench: no CUDA device visible (%s), skipped\n",
                  engine::cuda::device_description().c_str());
      return 77;
    }
    for (int f = 0; f < static_cast<int>(Family::kCount); ++f)
      g_default_impl.push_back(engine::cuda::impl(static_cast<Family>(f)));
    engine::cuda::set_cudnn_benchmark(cudnn_benchmark[0] == "on");
    engine::cuda::set_cudnn_deterministic(cudnn_deterministic[0] == "on");
  }
  e2e::JsonLog log(a.str("json", ""));
  describe(c, log.context());
  log.flush();
  int failures = 0;
  for (const auto& arch : archs) {
    for (const auto& precision : precisions) {
      for (const auto& impl : impls) {
        for (const bool train : {true, false}) {
          if (!has(train ? "train" : "infer")) continue;
          e2e::Record r;
          try {
            r = model_bench(c, arch, train, precision, impl);
          } catch (const std::exception& e) {
            r.set("bench", train ? "train" : "infer").set("model", arch).set("side", "ours");
            r.set("precision", precision).set("variant", impl).set("batch", c.batch);
            r.set("status", "error").set("error", e.what());
            ++failures;
            std::fprintf(stderr, "%s %s %s %s: %s\n", train ? "train" : "infer", arch.c_str(),
                         precision.c_str(), impl.c_str(), e.what());
          }
          log.add(r);
          std::printf("%s\n", r.str().c_str());
          std::fflush(stdout);
        }
      }
    }
  }
  if (has("knn")) {
    if (c.device.is_cuda()) engine::cuda::set_tf32(false);
    knn_benches(c, knn_cases, log, failures);
  }
  return failures ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gpu_e2e_bench: %s\n", e.what());
    return 2;
  }
}
