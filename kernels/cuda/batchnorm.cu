// kernels/cuda/batchnorm.cu — BatchNorm statistics, forward and backward on [m, c] (NHWC).
//
// Ours: every per-channel quantity is a column reduction over m = N*H*W rows, done in two
// passes without atomics (deterministic, run to run and across block schedules):
//   1. column_sums_kernel: grid = (column tiles, row chunks); a block holds `cols` columns x
//      `groups` row groups (consecutive threads read consecutive channels of a row:
//      coalesced), sums its chunk in double, combines the groups by a tree in shared memory,
//      and writes part[chunk][2][c].
//   2. a warp per channel adds the chunks' partials (lane l the chunks l, l + 32, ..., then a
//      fixed shuffle tree) and finishes the formula. (A thread per channel adding them in chunk
//      order was a chain of ~500 dependent L2 reads for a 64-channel layer on an H100's grid.)
// Then the elementwise passes (normalise, or dx) read the per-channel results.
//   stats:    sums of d = x - x[0, ch] and d^2 (shifting by a sample keeps the variance exact
//             when |mean| >> std), then mean and biased var, as the CPU.
//   backward: sums of dy and dy * (x - mean) -> dbias, dweight, and training-mode
//             dx = w invstd (dy - mean(dy) - (x - mean) invstd^2 mean(dy (x - mean))).
// Cost on [64,56,56,64] float32 (m = 200704): stats read 51 MB, forward 51 + 51 MB, backward
// reads x and dy twice and writes dx: ~257 MB -> ~0.1 ms at ~2.6 TB/s.
// cuDNN: cudnnBatchNormalizationForwardTraining / ForwardInference / Backward; training in
// SPATIAL_PERSISTENT mode unless cudnn_bn_persistent() is off (runtime.h), eval in SPATIAL.
#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdio>

#include "kernels/cuda/batchnorm.h"
#include "kernels/cuda/cudnn_util.cuh"
#include "kernels/cuda/labs_common.cuh"
#include "kernels/cuda/runtime.h"

namespace kernels::cuda {

namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float fma_t(float a, float b, float c) { return fmaf(a, b, c); }
__device__ __forceinline__ double fma_t(double a, double b, double c) { return fma(a, b, c); }

// The forward's pre-activation (x - mean) * invstd * weight + bias of element (row, ch), one
// rounding for the multiply-add as on the CPU (std::fma there), so that a fused ReLU's backward
// recomputes the forward's mask bit for bit.
template <class T>
__device__ __forceinline__ T bn_pre(T x, T mean, T invstd, const T* weight, const T* bias,
                                    int64_t ch) {
  return fma_t(x - mean, invstd * (weight ? weight[ch] : T(1)), bias ? bias[ch] : T(0));
}

// A fused ReLU's mask for the backward: keep(at, ch) is true where the forward's
// pre-activation was > 0. x == null: no ReLU, everything is kept.
template <class T>
struct ReluMask {
  const T* x = nullptr;
  const T* mean = nullptr;
  const T* invstd = nullptr;
  const T* weight = nullptr;
  const T* bias = nullptr;
  __device__ __forceinline__ bool keep(int64_t at, int64_t ch) const {
    return x == nullptr || bn_pre(x[at], mean[ch], invstd[ch], weight, bias, ch) > T(0);
  }
};

// part[chunk][0][col] = sum of u, part[chunk][1][col] = sum of u * v over the chunk's rows, where
//   stats (center == null):   u = v = x - x[0, col]                   (a = x)
//   backward (center given):  u = dy, v = x - center[col]             (a = dy, b = x)
//   backward without v (b == null): only the first sum.
//   backward of a fused ReLU: u = dy where relu.keep(), else 0.
template <class T>
__global__ void column_sums_kernel(int64_t m, int64_t c, const T* __restrict__ a,
                                   const T* __restrict__ b, const T* __restrict__ center, int cols,
                                   int groups, int64_t chunk_rows, ReluMask<T> relu,
                                   double* __restrict__ part) {
  __shared__ double s1[kThreads], s2[kThreads];
  const int lc = threadIdx.x % cols, g = threadIdx.x / cols;
  const int64_t col = static_cast<int64_t>(blockIdx.x) * cols + lc;
  const int64_t r0 = static_cast<int64_t>(blockIdx.y) * chunk_rows;
  const int64_t r1 = r0 + chunk_rows < m ? r0 + chunk_rows : m;
  const bool active = g < groups && col < c;
  const bool stats = center == nullptr;
  double acc1 = 0, acc2 = 0;
  if (active) {
    const double shift = stats ? static_cast<double>(a[col]) : 0.0;
    const double mu = stats ? 0.0 : static_cast<double>(center[col]);
    for (int64_t r = r0 + g; r < r1; r += groups) {
      const int64_t at = r * c + col;
      if (stats) {
        const double d = static_cast<double>(a[at]) - shift;
        acc1 += d;
        acc2 += d * d;
      } else {
        const double u = relu.keep(at, col) ? static_cast<double>(a[at]) : 0.0;
        acc1 += u;
        if (b) acc2 += u * (static_cast<double>(b[at]) - mu);
      }
    }
  }
  s1[threadIdx.x] = acc1;
  s2[threadIdx.x] = acc2;
  __syncthreads();
  for (int half = groups / 2; half > 0; half /= 2) {  // tree over the row groups
    if (g < half) {
      s1[threadIdx.x] += s1[threadIdx.x + half * cols];
      s2[threadIdx.x] += s2[threadIdx.x + half * cols];
    }
    __syncthreads();
  }
  if (g == 0 && col < c) {
    double* p = part + static_cast<int64_t>(blockIdx.y) * 2 * c;
    p[col] = s1[threadIdx.x];
    p[c + col] = s2[threadIdx.x];
  }
}

// s1, s2 = the sums over the chunks of part[k][0][ch] and part[k][1][ch], by one warp: lane l
// adds chunks l, l + 32, ... in order, then the lanes' sums meet in a fixed xor tree. Every lane
// returns the same sums, the same every run (the chunk count does not depend on timing).
__device__ __forceinline__ void chunk_sums(const double* __restrict__ part, int64_t c,
                                           int64_t chunks, int64_t ch, double& s1, double& s2) {
  const int lane = threadIdx.x % 32;
  s1 = 0, s2 = 0;
  for (int64_t k = lane; k < chunks; k += 32) {
    s1 += part[k * 2 * c + ch];
    s2 += part[k * 2 * c + c + ch];
  }
  s1 = labs::warp_sum(s1);
  s2 = labs::warp_sum(s2);
}

// Launched with one warp per channel (grid_for(32 * c, ...)); the loop over channels is per
// warp, so every lane of a warp takes it the same number of times (the shuffles need them all).
__device__ __forceinline__ int64_t warp_index() {
  return (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / 32;
}
__device__ __forceinline__ int64_t warp_count() {
  return static_cast<int64_t>(gridDim.x) * blockDim.x / 32;
}

template <class T>
__global__ void stats_finish_kernel(int64_t m, int64_t c, int64_t chunks, const T* __restrict__ x,
                                    const double* __restrict__ part, T* __restrict__ mean,
                                    T* __restrict__ var) {
  for (int64_t ch = warp_index(); ch < c; ch += warp_count()) {
    double s1, s2;
    chunk_sums(part, c, chunks, ch, s1, s2);
    if (threadIdx.x % 32 != 0) continue;
    const double dm = s1 / static_cast<double>(m);  // mean of the shifted data
    mean[ch] = static_cast<T>(static_cast<double>(x[ch]) + dm);
    const double v = s2 / static_cast<double>(m) - dm * dm;
    var[ch] = static_cast<T>(v > 0 ? v : 0.0);
  }
}

// sums[0][ch] = sum dy, sums[1][ch] = sum dy (x - mean); dbias / dweight when wanted.
template <class T>
__global__ void grad_finish_kernel(int64_t c, int64_t chunks, const double* __restrict__ part,
                                   const T* __restrict__ invstd, double* __restrict__ sums,
                                   T* __restrict__ dweight, T* __restrict__ dbias) {
  for (int64_t ch = warp_index(); ch < c; ch += warp_count()) {
    double s1, s2;
    chunk_sums(part, c, chunks, ch, s1, s2);
    if (threadIdx.x % 32 != 0) continue;
    sums[ch] = s1;
    sums[c + ch] = s2;
    if (dbias) dbias[ch] = static_cast<T>(s1);
    if (dweight) dweight[ch] = static_cast<T>(s2 * static_cast<double>(invstd[ch]));
  }
}

template <class T>
__global__ void invstd_kernel(int64_t c, const T* __restrict__ var, double eps,
                              T* __restrict__ invstd) {
  for (int64_t ch = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; ch < c;
       ch += static_cast<int64_t>(gridDim.x) * blockDim.x)
    invstd[ch] = static_cast<T>(1.0 / sqrt(static_cast<double>(var[ch]) + eps));
}

template <class T>
__global__ void running_kernel(int64_t c, double unbias, double momentum,
                               const T* __restrict__ mean, const T* __restrict__ var,
                               T* __restrict__ running_mean, T* __restrict__ running_var) {
  for (int64_t ch = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; ch < c;
       ch += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    if (running_mean)
      running_mean[ch] = static_cast<T>((1 - momentum) * running_mean[ch] + momentum * mean[ch]);
    if (running_var)
      running_var[ch] =
          static_cast<T>((1 - momentum) * running_var[ch] + momentum * var[ch] * unbias);
  }
}

template <class T>
__global__ void forward_kernel(int64_t m, int64_t c, const T* __restrict__ x,
                               const T* __restrict__ mean, const T* __restrict__ invstd,
                               const T* __restrict__ weight, const T* __restrict__ bias, bool relu,
                               T* __restrict__ y) {
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < m * c;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t ch = t % c;
    const T v = bn_pre(x[t], mean[ch], invstd[ch], weight, bias, ch);
    y[t] = relu ? (v > T(0) ? v : T(0)) : v;  // engine::relu's rule (NaN -> 0)
  }
}

// dx = k (dy - a - (x - mean) b) with the CPU's per-channel k, a, b (training), or k dy (eval).
template <class T>
__global__ void dx_kernel(int64_t m, int64_t c, const T* __restrict__ x, const T* __restrict__ dy,
                          const T* __restrict__ mean, const T* __restrict__ invstd,
                          const T* __restrict__ weight, const double* __restrict__ sums,
                          bool training, ReluMask<T> relu, T* __restrict__ dx) {
  const double inv_m = 1.0 / static_cast<double>(m);
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < m * c;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t ch = t % c;
    const double is = invstd[ch];
    const T k = static_cast<T>(is * (weight ? static_cast<double>(weight[ch]) : 1.0));
    const T g = relu.keep(t, ch) ? dy[t] : T(0);
    if (!training) {
      dx[t] = k * g;
      continue;
    }
    const T a = static_cast<T>(sums[ch] * inv_m);
    const T b = static_cast<T>(sums[c + ch] * inv_m * is * is);
    dx[t] = k * (g - a - (x[t] - mean[ch]) * b);
  }
}

// The column-reduction plan: column tiles of `cols` and row chunks of chunk_rows, enough
// blocks to fill the GPU a few times over.
struct ColumnPlan {
  int cols = 32, groups = 8;
  int64_t tiles = 1, chunks = 1, chunk_rows = 1;
};

ColumnPlan column_plan(int64_t m, int64_t c) {
  ColumnPlan p;
  p.cols = static_cast<int>(std::min<int64_t>(c, 32));
  p.groups = 1;
  while (p.groups * 2 * p.cols <= kThreads) p.groups *= 2;
  p.tiles = (c + p.cols - 1) / p.cols;
  const int64_t want = std::max<int64_t>(1, int64_t(sm_count()) * 8 / p.tiles);  // chunks
  p.chunk_rows = std::max<int64_t>((m + want - 1) / want, 4 * int64_t(p.groups));
  p.chunks = std::max<int64_t>(1, (m + p.chunk_rows - 1) / p.chunk_rows);
  if (p.tiles > INT_MAX || p.chunks > 65535) {  // grid limits: longer chunks instead
    p.chunks = std::min<int64_t>(p.chunks, 65535);
    p.chunk_rows = (m + p.chunks - 1) / p.chunks;
  }
  return p;
}

template <class T>
void launch_column_sums(const ColumnPlan& p, int64_t m, int64_t c, const T* a, const T* b,
                        const T* center, ReluMask<T> relu, double* part, const char* op) {
  column_sums_kernel<T>
      <<<dim3(static_cast<unsigned>(p.tiles), static_cast<unsigned>(p.chunks)), kThreads, 0,
         stream()>>>(m, c, a, b, center, p.cols, p.groups, p.chunk_rows, relu, part);
  KCUDA_CHECK_LAUNCH(op);
}

constexpr int kSmallThreads = 128;  // per-channel kernels: c is at most a few thousand

int as_int(const char* op, int64_t v) {
  if (v > INT_MAX)
    raise(std::string(op) + ": size " + std::to_string(v) +
          " exceeds the 32-bit sizes cuDNN takes");
  return static_cast<int>(v);
}

}  // namespace

void batchnorm_stats(int64_t m, int64_t c, const void* x, void* mean, void* var, DType dtype) {
  dispatch_float(dtype, "batch_norm", [&](auto zero) {
    using T = decltype(zero);
    if (m <= 0 || c <= 0) return;
    const ColumnPlan p = column_plan(m, c);
    Scratch part(sizeof(double) * 2 * c * p.chunks);
    const T* px = static_cast<const T*>(x);
    launch_column_sums<T>(p, m, c, px, nullptr, nullptr, ReluMask<T>{},
                          static_cast<double*>(part.get()), "batch_norm statistics");
    stats_finish_kernel<T><<<grid_for(32 * c, kSmallThreads), kSmallThreads, 0, stream()>>>(
        m, c, p.chunks, px, static_cast<const double*>(part.get()), static_cast<T*>(mean),
        static_cast<T*>(var));
    KCUDA_CHECK_LAUNCH("batch_norm statistics");
  });
}

void batchnorm_invstd(int64_t c, const void* var, double eps, void* invstd, DType dtype) {
  dispatch_float(dtype, "batch_norm", [&](auto zero) {
    using T = decltype(zero);
    if (c <= 0) return;
    invstd_kernel<T><<<grid_for(c, kSmallThreads), kSmallThreads, 0, stream()>>>(
        c, static_cast<const T*>(var), eps, static_cast<T*>(invstd));
    KCUDA_CHECK_LAUNCH("batch_norm invstd");
  });
}

void batchnorm_update_running(int64_t m, int64_t c, const void* mean, const void* var,
                              double momentum, void* running_mean, void* running_var, DType dtype) {
  dispatch_float(dtype, "batch_norm", [&](auto zero) {
    using T = decltype(zero);
    if (c <= 0 || (!running_mean && !running_var)) return;
    const double unbias = static_cast<double>(m) / static_cast<double>(m - 1);
    running_kernel<T><<<grid_for(c, kSmallThreads), kSmallThreads, 0, stream()>>>(
        c, unbias, momentum, static_cast<const T*>(mean), static_cast<const T*>(var),
        static_cast<T*>(running_mean), static_cast<T*>(running_var));
    KCUDA_CHECK_LAUNCH("batch_norm running statistics");
  });
}

void batchnorm_forward(int64_t m, int64_t c, const void* x, const void* mean, const void* invstd,
                       const void* weight, const void* bias, bool relu, void* y, DType dtype) {
  dispatch_float(dtype, "batch_norm", [&](auto zero) {
    using T = decltype(zero);
    if (m * c <= 0) return;
    forward_kernel<T><<<grid_for(m * c, kThreads), kThreads, 0, stream()>>>(
        m, c, static_cast<const T*>(x), static_cast<const T*>(mean), static_cast<const T*>(invstd),
        static_cast<const T*>(weight), static_cast<const T*>(bias), relu, static_cast<T*>(y));
    KCUDA_CHECK_LAUNCH("batch_norm");
  });
}

void batchnorm_backward(int64_t m, int64_t c, const void* x, const void* dy, const void* mean,
                        const void* invstd, const void* weight, const void* bias, bool relu,
                        bool training, void* dx, void* dweight, void* dbias, DType dtype) {
  dispatch_float(dtype, "batch_norm_backward", [&](auto zero) {
    using T = decltype(zero);
    if (c <= 0) return;
    const T* px = static_cast<const T*>(x);
    const T* pdy = static_cast<const T*>(dy);
    const T* pmean = static_cast<const T*>(mean);
    const T* pinv = static_cast<const T*>(invstd);
    const bool need_xmu = dweight || (training && dx);
    const bool need_sums = dbias || need_xmu;
    ReluMask<T> mask;
    if (relu)
      mask = ReluMask<T>{px, pmean, pinv, static_cast<const T*>(weight),
                         static_cast<const T*>(bias)};
    // sums [2][c] stays zero when nothing needs it (eval-mode dx alone).
    Scratch sums(sizeof(double) * 2 * c);
    if (need_sums && m > 0) {
      const ColumnPlan p = column_plan(m, c);
      Scratch part(sizeof(double) * 2 * c * p.chunks);
      launch_column_sums<T>(p, m, c, pdy, need_xmu ? px : nullptr, pmean, mask,
                            static_cast<double*>(part.get()), "batch_norm_backward");
      grad_finish_kernel<T><<<grid_for(32 * c, kSmallThreads), kSmallThreads, 0, stream()>>>(
          c, p.chunks, static_cast<const double*>(part.get()), pinv,
          static_cast<double*>(sums.get()), static_cast<T*>(dweight), static_cast<T*>(dbias));
      KCUDA_CHECK_LAUNCH("batch_norm_backward");
    } else {
      KCUDA_CHECK(cudaMemsetAsync(sums.get(), 0, sizeof(double) * 2 * c, stream()));
      if (dbias) KCUDA_CHECK(cudaMemsetAsync(dbias, 0, sizeof(T) * c, stream()));
      if (dweight) KCUDA_CHECK(cudaMemsetAsync(dweight, 0, sizeof(T) * c, stream()));
    }
    if (!dx || m * c == 0) return;
    dx_kernel<T><<<grid_for(m * c, kThreads), kThreads, 0, stream()>>>(
        m, c, px, pdy, pmean, pinv, static_cast<const T*>(weight),
        static_cast<const double*>(sums.get()), training, mask, static_cast<T*>(dx));
    KCUDA_CHECK_LAUNCH("batch_norm_backward");
  });
}

// ---- cuDNN -----------------------------------------------------------------------------------

bool batchnorm_vendor_takes(DType dtype) { return dtype == DType::Float32; }

namespace {

// A training call in cuDNN's NHWC-optimised persistent mode, or plain SPATIAL when that is
// switched off (runtime.h) or cuDNN refuses it (NOT_SUPPORTED or BAD_PARAM: checked before
// anything runs, so nothing was written and the running statistics were not updated): then the
// call is made again in SPATIAL, which every cuDNN takes, said once on stderr, and SPATIAL is
// used from then on. Any other error is raised. call(mode) returns the cuDNN call's status.
std::atomic<bool> g_persistent_refused{false};

template <class Call>
void call_training(const char* op, Call call) {
  if (cudnn_bn_persistent() && !g_persistent_refused.load()) {
    const cudnnStatus_t status = call(CUDNN_BATCHNORM_SPATIAL_PERSISTENT);
    if (status == CUDNN_STATUS_SUCCESS) return;
    // cuDNN 9's codes are categories of 1000 (CUDNN_STATUS_NOT_SUPPORTED_SHAPE = 3002, ...).
    const int category = int(status) / 1000 * 1000;
    if (category != CUDNN_STATUS_NOT_SUPPORTED && category != CUDNN_STATUS_BAD_PARAM)
      KCUDNN_CHECK(status);
    if (!g_persistent_refused.exchange(true))
      std::fprintf(stderr,
                   "engine: %s: cuDNN refused CUDNN_BATCHNORM_SPATIAL_PERSISTENT (%s); batch "
                   "norm runs in CUDNN_BATCHNORM_SPATIAL from now on (said once)\n",
                   op, cudnnGetErrorString(status));
  }
  KCUDNN_CHECK(call(CUDNN_BATCHNORM_SPATIAL));
}

// The [n, h, w, c] data descriptor and the derived [1, c, 1, 1] parameter descriptor.
struct BnDescs {
  TensorDesc data, param;
  BnDescs(const char* op, DType t, int64_t n, int64_t h, int64_t w, int64_t c,
          cudnnBatchNormMode_t mode)
      : data(t, as_int(op, n), as_int(op, h), as_int(op, w), as_int(op, c)) {
    if (!batchnorm_vendor_takes(t)) unsupported_dtype(op, t);
    KCUDNN_CHECK(cudnnDeriveBNTensorDescriptor(param.get(), data.get(), mode));
  }
};

}  // namespace

void batchnorm_forward_training_vendor(int64_t n, int64_t h, int64_t w, int64_t c, const void* x,
                                       const void* weight, const void* bias, double momentum,
                                       double eps, void* running_mean, void* running_var, void* y,
                                       void* save_mean, void* save_invstd, DType dtype) {
  const char* op = "batch_norm (cuDNN)";
  Blend b(dtype);
  call_training(op, [&](cudnnBatchNormMode_t mode) {
    BnDescs d(op, dtype, n, h, w, c, mode);
    return cudnnBatchNormalizationForwardTraining(
        cudnn_handle(), mode, b.one(), b.zero(), d.data.get(), x, d.data.get(), y, d.param.get(),
        weight, bias, momentum, running_mean, running_var, eps, save_mean, save_invstd);
  });
  after_library_call(op);
}

void batchnorm_forward_inference_vendor(int64_t n, int64_t h, int64_t w, int64_t c, const void* x,
                                        const void* weight, const void* bias,
                                        const void* running_mean, const void* running_var,
                                        double eps, void* y, DType dtype) {
  const char* op = "batch_norm (cuDNN, eval)";
  BnDescs d(op, dtype, n, h, w, c, CUDNN_BATCHNORM_SPATIAL);
  Blend b(dtype);
  KCUDNN_CHECK(cudnnBatchNormalizationForwardInference(
      cudnn_handle(), CUDNN_BATCHNORM_SPATIAL, b.one(), b.zero(), d.data.get(), x, d.data.get(), y,
      d.param.get(), weight, bias, running_mean, running_var, eps));
  after_library_call(op);
}

void batchnorm_backward_vendor(int64_t n, int64_t h, int64_t w, int64_t c, const void* x,
                               const void* dy, const void* weight, const void* save_mean,
                               const void* save_invstd, double eps, void* dx, void* dweight,
                               void* dbias, DType dtype) {
  const char* op = "batch_norm_backward (cuDNN)";
  Blend b(dtype);
  call_training(op, [&](cudnnBatchNormMode_t mode) {
    BnDescs d(op, dtype, n, h, w, c, mode);
    return cudnnBatchNormalizationBackward(
        cudnn_handle(), mode, b.one(), b.zero(), b.one(), b.zero(), d.data.get(), x,
        d.data.get(), dy, d.data.get(), dx, d.param.get(), weight, dweight, dbias, eps,
        save_mean, save_invstd);
  });
  after_library_call(op);
}

}  // namespace kernels::cuda
