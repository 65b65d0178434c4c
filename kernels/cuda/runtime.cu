#include "kernels/cuda/runtime.h"

#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>

#include "kernels/cuda/labs_common.cuh"

namespace kernels::cuda {

// ---- errors --------------------------------------------------------------------------------

namespace {

std::atomic<ErrorHandler> g_handler{nullptr};

// "/work/main/kernels/cuda/copy.cu" -> "kernels/cuda/copy.cu": the part a reader can open.
std::string short_path(const char* file) {
  std::string f = file;
  for (const char* top : {"/kernels/", "/engine/"}) {
    size_t at = f.rfind(top);
    if (at != std::string::npos) return f.substr(at + 1);
  }
  return f;
}

std::string where(const char* file, int line) {
  return short_path(file) + ":" + std::to_string(line);
}

const char* sync_hint() {
  return sync_after_launch()
             ? ""
             : " (CUDA reports faults of earlier asynchronous work at a later call; rerun with "
               "ENGINE_CUDA_SYNC=1 to find the op that caused it)";
}

}  // namespace

void set_error_handler(ErrorHandler handler) { g_handler.store(handler); }

void raise(const std::string& message) {
  if (ErrorHandler h = g_handler.load()) h(message);
  throw std::runtime_error(message);  // no handler installed, or it returned
}

void check_cuda(cudaError_t status, const char* what, const char* file, int line) {
  if (status == cudaSuccess) return;
  // A failed allocation or launch configuration is not sticky: clear it so later calls that
  // have nothing to do with it do not report it again.
  cudaGetLastError();
  raise(std::string("CUDA error: ") + what + " failed at " + where(file, line) + ": " +
        cudaGetErrorString(status) + " (" + cudaGetErrorName(status) + ")" + sync_hint());
}

void check_cublas(cublasStatus_t status, const char* what, const char* file, int line) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  raise(std::string("cuBLAS error: ") + what + " failed at " + where(file, line) + ": " +
        cublasGetStatusString(status));
}

void check_cudnn(cudnnStatus_t status, const char* what, const char* file, int line) {
  if (status == CUDNN_STATUS_SUCCESS) return;
  // cuDNN 9 keeps why the last call failed (which descriptor field, which constraint).
  char detail[1024] = {};
  cudnnGetLastErrorString(detail, sizeof detail);
  raise(std::string("cuDNN error: ") + what + " failed at " + where(file, line) + ": " +
        cudnnGetErrorString(status) + (detail[0] ? std::string(" (") + detail + ")" : ""));
}

namespace {

// A process-wide on/off switch that starts as its environment variable says (read at first
// use: set and not "0" means on) until set() changes it.
class EnvSwitch {
 public:
  constexpr explicit EnvSwitch(const char* name, bool fallback = false)
      : name_(name), fallback_(fallback) {}
  bool get() {
    int s = state_.load();
    if (s < 0) {  // unset or empty: the fallback; "0": off; anything else: on
      const char* env = std::getenv(name_);
      s = env && *env ? std::strcmp(env, "0") != 0 : fallback_;
      state_.store(s);
    }
    return s == 1;
  }
  void set(bool on) { state_.store(on ? 1 : 0); }

 private:
  const char* name_;
  bool fallback_;
  std::atomic<int> state_{-1};  // -1: not read from the environment yet; 0/1: off/on
};

// Constant-initialised (before any code runs), so a static initialiser elsewhere may read them.
constinit EnvSwitch g_sync("ENGINE_CUDA_SYNC");
constinit EnvSwitch g_tf32("ENGINE_CUDA_TF32");
constinit EnvSwitch g_tf32_ldmatrix("ENGINE_CUDA_TF32_LDMATRIX");
constinit EnvSwitch g_tf32_wide("ENGINE_CUDA_TF32_WIDE");
constinit EnvSwitch g_cudnn_benchmark("ENGINE_CUDNN_BENCHMARK");
constinit EnvSwitch g_cudnn_bn_persistent("ENGINE_CUDNN_BN_PERSISTENT", /*fallback=*/true);
constinit EnvSwitch g_cudnn_deterministic("ENGINE_CUDNN_DETERMINISTIC", /*fallback=*/true);

}  // namespace

void set_sync_after_launch(bool on) { g_sync.set(on); }
bool sync_after_launch() { return g_sync.get(); }

void set_tf32(bool on) { g_tf32.set(on); }
bool tf32() { return g_tf32.get(); }

void set_tf32_ldmatrix(bool on) { g_tf32_ldmatrix.set(on); }
bool tf32_ldmatrix() { return g_tf32_ldmatrix.get(); }

void set_tf32_wide(bool on) { g_tf32_wide.set(on); }
bool tf32_wide() { return g_tf32_wide.get(); }

void set_cudnn_benchmark(bool on) { g_cudnn_benchmark.set(on); }
bool cudnn_benchmark() { return g_cudnn_benchmark.get(); }

void set_cudnn_bn_persistent(bool on) { g_cudnn_bn_persistent.set(on); }
bool cudnn_bn_persistent() { return g_cudnn_bn_persistent.get(); }

void set_cudnn_deterministic(bool on) { g_cudnn_deterministic.set(on); }
bool cudnn_deterministic() { return g_cudnn_deterministic.get(); }

namespace {
std::atomic<uint64_t> g_library_calls{0};
}  // namespace

// One launch counter for the engine's files and the labs: labs::check_launch counts there too.
uint64_t launch_count() { return labs::launches().load(); }
uint64_t library_call_count() { return g_library_calls.load(); }

void after_library_call(const char* op) {
  g_library_calls.fetch_add(1, std::memory_order_relaxed);
  if (!sync_after_launch()) return;
  const cudaError_t status = cudaStreamSynchronize(stream());
  if (status != cudaSuccess)
    raise(std::string("CUDA error: running ") + op + ": " + cudaGetErrorString(status));
}

void check_launch(const char* op, const char* file, int line) {
  labs::launches().fetch_add(1, std::memory_order_relaxed);
  cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess)
    raise(std::string("CUDA error: launching ") + op + " at " + where(file, line) + ": " +
          cudaGetErrorString(status) + " (" + cudaGetErrorName(status) + ")" + sync_hint());
  if (!sync_after_launch()) return;
  status = cudaStreamSynchronize(stream());
  if (status != cudaSuccess)
    raise(std::string("CUDA error: running ") + op + " (launched at " + where(file, line) +
          "): " + cudaGetErrorString(status) + " (" + cudaGetErrorName(status) + ")");
}

void unsupported_dtype(const char* op, DType t) {
  raise(std::string(op) + ": expected a float32 or float64 tensor, got " + dtype_name(t));
}

// ---- stream, device and library handles ----------------------------------------------------
// Created once and deliberately never destroyed: tensors that outlive main() (statics) still
// free into them, and the CUDA runtime may already be unloaded when static destructors run.

cudaStream_t stream() {
  static cudaStream_t s = [] {
    cudaStream_t created = nullptr;
    KCUDA_CHECK(cudaStreamCreateWithFlags(&created, cudaStreamNonBlocking));
    return created;
  }();
  return s;
}

int sm_count() {
  static int n = [] {
    int dev = 0, count = 0;
    KCUDA_CHECK(cudaGetDevice(&dev));
    KCUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, dev));
    return count;
  }();
  return n;
}

cublasHandle_t cublas_handle() {
  static cublasHandle_t h = [] {
    cublasHandle_t created = nullptr;
    KCUBLAS_CHECK(cublasCreate(&created));
    KCUBLAS_CHECK(cublasSetStream(created, stream()));
    return created;
  }();
  // Plain FP32 arithmetic unless TF32 is on (set on every use: the switch may change).
  KCUBLAS_CHECK(cublasSetMathMode(h, tf32() ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  return h;
}

cudnnHandle_t cudnn_handle() {
  static cudnnHandle_t h = [] {
    cudnnHandle_t created = nullptr;
    KCUDNN_CHECK(cudnnCreate(&created));
    KCUDNN_CHECK(cudnnSetStream(created, stream()));
    return created;
  }();
  return h;
}

int grid_for(int64_t n, int threads) {
  int64_t blocks = (n + threads - 1) / threads;
  // 2048 resident threads per SM on sm_90; four waves of them is plenty for a grid-stride loop.
  int64_t cap = static_cast<int64_t>(sm_count()) * (2048 / threads) * 4;
  if (blocks > cap) blocks = cap;
  return blocks < 1 ? 1 : static_cast<int>(blocks);
}

// ---- scratch memory ------------------------------------------------------------------------

namespace {
std::mutex g_scratch_mu;
ScratchHooks g_scratch;
}  // namespace

void set_scratch_hooks(ScratchHooks hooks) {
  std::lock_guard<std::mutex> lock(g_scratch_mu);
  g_scratch = hooks;
}

Scratch::Scratch(size_t nbytes) : nbytes_(nbytes) {
  if (nbytes == 0) return;
  ScratchHooks h;
  {
    std::lock_guard<std::mutex> lock(g_scratch_mu);
    h = g_scratch;
  }
  if (h.alloc) ptr_ = h.alloc(nbytes);
  else KCUDA_CHECK(cudaMallocAsync(&ptr_, nbytes, stream()));
}

Scratch::~Scratch() {
  if (!ptr_) return;
  ScratchHooks h;
  {
    std::lock_guard<std::mutex> lock(g_scratch_mu);
    h = g_scratch;
  }
  if (h.free) {
    h.free(ptr_, nbytes_);
    return;
  }
  // A destructor must not throw; a failure here means the context is already broken and the
  // next checked call reports it.
  cudaError_t status = cudaFreeAsync(ptr_, stream());
  if (status != cudaSuccess) std::fprintf(stderr, "kernels::cuda::Scratch: cudaFreeAsync: %s\n",
                                          cudaGetErrorString(status));
}

// ---- our kernel or the vendor's ------------------------------------------------------------

namespace {

struct FamilyInfo {
  const char* name;
  Impl fallback;  // the default until ENGINE_CUDA_IMPL_<name> or set_impl says otherwise
};
// Every family starts on the vendor's library until ours is measured faster on our shapes
// (tools/gpu_check.sh): GEMM = cuBLAS; CONV, BATCHNORM, POOL = cuDNN. DEPTHWISE starts on ours:
// on an H200 (2026-11-27, docs/BENCHMARKS.md) the lab's v3 ran ConvNeXt-T's stage-1 7x7
// forward in 0.105 ms and forward + backward in 0.33 ms, where cuDNN (through conv2d_ops.cu)
// averaged 1.47 ms per forward and 3.40 ms per backward over the network's depthwise layers
// and PyTorch's kernels 0.49 / 6.2 ms. Built for the CPU emulator (tools/cuda_emu) there are no
// vendor libraries, so every family starts on ours.
#if defined(ENGINE_CUDA_EMULATED)
constexpr Impl kVendorUnlessEmulated = Impl::Ours;
#else
constexpr Impl kVendorUnlessEmulated = Impl::Vendor;
#endif
constexpr std::array<FamilyInfo, static_cast<size_t>(Family::kCount)> kFamilies = {{
    {"GEMM", kVendorUnlessEmulated},
    {"CONV", kVendorUnlessEmulated},
    {"DEPTHWISE", Impl::Ours},
    {"BATCHNORM", kVendorUnlessEmulated},
    {"POOL", kVendorUnlessEmulated},
}};

std::mutex g_impl_mu;
// 0: not decided yet (zero-initialised before any code runs); else 1 + the Impl.
int g_impl[static_cast<size_t>(Family::kCount)] = {};

}  // namespace

const char* family_name(Family f) { return kFamilies[static_cast<size_t>(f)].name; }
const char* impl_name(Impl i) { return i == Impl::Ours ? "ours" : "vendor"; }

Impl impl(Family f) {
  std::lock_guard<std::mutex> lock(g_impl_mu);
  int& chosen = g_impl[static_cast<size_t>(f)];
  if (chosen == 0) {
    const FamilyInfo& info = kFamilies[static_cast<size_t>(f)];
    std::string var = std::string("ENGINE_CUDA_IMPL_") + info.name;
    const char* env = std::getenv(var.c_str());
    Impl pick = info.fallback;
    if (env && *env) {
      if (std::strcmp(env, "ours") == 0) pick = Impl::Ours;
      else if (std::strcmp(env, "vendor") == 0) pick = Impl::Vendor;
      else raise(var + "=" + env + ": expected 'ours' or 'vendor'");
    }
    chosen = 1 + static_cast<int>(pick);
  }
  return static_cast<Impl>(chosen - 1);
}

void set_impl(Family f, Impl i) {
  std::lock_guard<std::mutex> lock(g_impl_mu);
  g_impl[static_cast<size_t>(f)] = 1 + static_cast<int>(i);
}

}  // namespace kernels::cuda
