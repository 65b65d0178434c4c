// kernels/cuda/batchnorm.cu — BatchNorm statistics, forward and backward on [m, c] (NHWC).
//
// Ours: every per-channel quantity is a column reduction over m = N*H*W rows, done in two
// passes without atomics (deterministic, run to run and across block schedules):
//   1. column_sums_kernel: grid = (column tiles, row chunks); a block holds `cols` column
//      vectors x `groups` row groups (consecutive threads read consecutive channels of a row:
//      coalesced), sums its chunk in double, combines the groups by a tree in shared memory,
//      and writes part[chunk][2][c].
//   2. a warp per channel adds the chunks' partials (lane l the chunks l, l + 32, ..., then a
//      fixed shuffle tree) and finishes the formula. (A thread per channel adding them in chunk
//      order was a chain of ~500 dependent L2 reads for a 64-channel layer on an H100's grid.)
// Then the elementwise passes (normalise, or dx) read the per-channel results.
//   stats:    sums of d = x - x[0, ch] and d^2 (shifting by a sample keeps the variance exact
//             when |mean| >> std), then mean, biased var, invstd and the running statistics,
//             as the CPU, in the one finishing kernel.
//   backward: sums of dy and dy * (x - mean) -> dbias, dweight, and training-mode
//             dx = w invstd (dy - mean(dy) - (x - mean) invstd^2 mean(dy (x - mean))).
// Every pass is laid out the same way: a thread owns V consecutive channels (V = 4 floats or
// 2 doubles, one 16-byte access, when c is a multiple of V and the arrays are 16-byte aligned;
// else V = 1) and walks down the rows, so its channels' constants (mean, scale, shift, ...)
// sit in registers and no element pays an index division.
// Cost on [64,56,56,64] float32 (m = 200704, 51 MB): training forward reads x twice and
// writes y (154 MB), backward reads x and dy twice and writes dx (257 MB): ~0.16 ms at
// ~2.6 TB/s on an H100; ResNet-50's 53 BatchNorms at batch 64 move ~22 GB a step (~8.5 ms).
// cuDNN: cudnnBatchNormalizationForwardTraining / ForwardInference / Backward; training in
// SPATIAL_PERSISTENT mode unless cudnn_bn_persistent() is off (runtime.h), eval in SPATIAL.
#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdio>
#include <type_traits>

#include "kernels/cuda/batchnorm.h"
#include "kernels/cuda/cudnn_util.cuh"
#include "kernels/cuda/labs_common.cuh"
#include "kernels/cuda/pack.cuh"
#include "kernels/cuda/runtime.h"

namespace kernels::cuda {

namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float fma_t(float a, float b, float c) { return fmaf(a, b, c); }
__device__ __forceinline__ double fma_t(double a, double b, double c) { return fma(a, b, c); }

// V consecutive elements from / to p: one 16-byte access when V is the pack size (the
// launcher checked c % V == 0 and the alignment), else V scalar ones.
template <int V, class T>
__device__ __forceinline__ void load_v(const T* p, T (&v)[V]) {
  if constexpr (V == Pack<T>::kSize) {
    const Pack<T> q = load_pack(p);
#pragma unroll
    for (int i = 0; i < V; ++i) v[i] = q.v[i];
  } else {
#pragma unroll
    for (int i = 0; i < V; ++i) v[i] = p[i];
  }
}
template <int V, class T>
__device__ __forceinline__ void store_v(T* p, const T (&v)[V]) {
  if constexpr (V == Pack<T>::kSize) {
    Pack<T> q;
#pragma unroll
    for (int i = 0; i < V; ++i) q.v[i] = v[i];
    store_pack(p, q);
  } else {
#pragma unroll
    for (int i = 0; i < V; ++i) p[i] = v[i];
  }
}

// The forward's affine for one channel: pre = (x - mean) * scale + shift with scale = invstd *
// weight, one rounding for the multiply-add as on the CPU (std::fma there), so that a fused
// ReLU's backward recomputes the forward's mask bit for bit.
template <class T>
struct Affine {
  T mean, scale, shift;
  __device__ __forceinline__ T pre(T x) const { return fma_t(x - mean, scale, shift); }
};
template <class T>
__device__ __forceinline__ Affine<T> affine_of(int64_t ch, const T* mean, const T* invstd,
                                               const T* weight, const T* bias) {
  return {mean[ch], invstd[ch] * (weight ? weight[ch] : T(1)), bias ? bias[ch] : T(0)};
}

// A fused ReLU's mask for the backward: an element's gradient is kept where the forward's
// pre-activation was > 0. x == null: no ReLU, everything is kept.
template <class T>
struct ReluMask {
  const T* x = nullptr;
  const T* mean = nullptr;
  const T* invstd = nullptr;
  const T* weight = nullptr;
  const T* bias = nullptr;
};

// The layout every pass shares: a block of kThreads threads is `cols` column vectors (V
// channels each) x `groups` row groups; grid.x runs over column tiles, grid.y over row chunks
// of chunk_rows rows (a thread takes rows r0 + g, r0 + g + groups, ...).
struct Plan {
  int v = 1;  // channels per thread
  int cols = 32, groups = 8;
  int64_t tiles = 1, chunks = 1, chunk_rows = 1;
};

// Blocks to aim for per SM: with 256 threads each, eight fill an SM's 2048 threads once.
constexpr int kBlocksPerSm = 8;

Plan make_plan(int64_t m, int64_t c, int v) {
  Plan p;
  p.v = v;
  const int64_t cv = c / v;  // column vectors
  p.cols = static_cast<int>(std::min<int64_t>(cv, 32));
  p.groups = 1;
  while (p.groups * 2 * p.cols <= kThreads) p.groups *= 2;
  p.tiles = (cv + p.cols - 1) / p.cols;
  const int64_t want = std::max<int64_t>(1, int64_t(sm_count()) * kBlocksPerSm / p.tiles);
  p.chunk_rows = std::max<int64_t>((m + want - 1) / want, 4 * int64_t(p.groups));
  p.chunks = std::max<int64_t>(1, (m + p.chunk_rows - 1) / p.chunk_rows);
  if (p.tiles > INT_MAX || p.chunks > 65535) {  // grid limits: longer chunks instead
    p.chunks = std::min<int64_t>(p.chunks, 65535);
    p.chunk_rows = (m + p.chunks - 1) / p.chunks;
  }
  return p;
}

// The thread's place in a Plan's grid: its first channel col0, its row group g and its chunk's
// rows [r0, r1). A thread with no column vector (a partial last tile: col0 >= c) or no row
// group (g >= groups, when kThreads % cols != 0) does no loads.
// The reductions take the chunks last to first (block y = 0 gets the last chunk), the
// elementwise passes first to last: blocks start roughly in index order, so each pass begins
// where the previous one ended, on rows still in L2 (50 MB on an H100; a ResNet-50 activation
// is 12-205 MB). Which block takes which chunk changes nothing in the results.
struct Place {
  int lc, g;
  int64_t chunk, col0, r0, r1;
};
__device__ __forceinline__ Place place(int64_t m, int v, int cols, int64_t chunk_rows,
                                       bool last_first) {
  Place p;
  p.lc = threadIdx.x % cols;
  p.g = threadIdx.x / cols;
  p.col0 = (static_cast<int64_t>(blockIdx.x) * cols + p.lc) * v;
  p.chunk = last_first ? gridDim.y - 1 - blockIdx.y : blockIdx.y;
  p.r0 = p.chunk * chunk_rows;
  p.r1 = p.r0 + chunk_rows < m ? p.r0 + chunk_rows : m;
  return p;
}

// part[chunk][0][col] = sum of u, part[chunk][1][col] = sum of u * w over the chunk's rows,
//   stats (center == null):   u = w = x - x[0, col]                (a = x)
//   backward (center given):  u = dy, w = x - center[col]          (a = dy, b = x)
//   backward without w (b == null): only the first sum.
//   backward of a fused ReLU: u = dy where the forward's pre-activation was > 0, else 0.
template <class T, int V>
__global__ void column_sums_kernel(int64_t m, int64_t c, const T* __restrict__ a,
                                   const T* __restrict__ b, const T* __restrict__ center, int cols,
                                   int groups, int64_t chunk_rows, ReluMask<T> relu,
                                   double* __restrict__ part) {
  __shared__ double s1[kThreads * V], s2[kThreads * V];
  const Place at = place(m, V, cols, chunk_rows, /*last_first=*/true);
  const bool active = at.g < groups && at.col0 < c;
  const bool stats = center == nullptr;
  const T* xs = relu.x ? relu.x : b;  // where the backward reads x, if it does
  double acc1[V] = {}, acc2[V] = {};
  if (active) {
    double base[V];  // stats: the shift x[0, col]; backward: the mean
    Affine<T> aff[V];
#pragma unroll
    for (int i = 0; i < V; ++i) {
      base[i] = static_cast<double>(stats ? a[at.col0 + i] : center[at.col0 + i]);
      if (relu.x) aff[i] = affine_of(at.col0 + i, relu.mean, relu.invstd, relu.weight, relu.bias);
    }
    for (int64_t r = at.r0 + at.g; r < at.r1; r += groups) {
      T u[V], x[V] = {};
      load_v<V>(a + r * c + at.col0, u);
      if (stats) {
#pragma unroll
        for (int i = 0; i < V; ++i) {
          const double d = static_cast<double>(u[i]) - base[i];
          acc1[i] += d;
          acc2[i] += d * d;
        }
        continue;
      }
      if (xs) load_v<V>(xs + r * c + at.col0, x);
#pragma unroll
      for (int i = 0; i < V; ++i) {
        const double ui = (relu.x && !(aff[i].pre(x[i]) > T(0))) ? 0.0 : static_cast<double>(u[i]);
        acc1[i] += ui;
        if (b) acc2[i] += ui * (static_cast<double>(x[i]) - base[i]);
      }
    }
  }
#pragma unroll
  for (int i = 0; i < V; ++i) {
    s1[threadIdx.x * V + i] = acc1[i];
    s2[threadIdx.x * V + i] = acc2[i];
  }
  __syncthreads();
  for (int half = groups / 2; half > 0; half /= 2) {  // tree over the row groups
    if (at.g < half) {
#pragma unroll
      for (int i = 0; i < V; ++i) {
        s1[threadIdx.x * V + i] += s1[(threadIdx.x + half * cols) * V + i];
        s2[threadIdx.x * V + i] += s2[(threadIdx.x + half * cols) * V + i];
      }
    }
    __syncthreads();
  }
  if (at.g == 0 && at.col0 < c) {
    double* p = part + at.chunk * 2 * c;
#pragma unroll
    for (int i = 0; i < V; ++i) {
      p[at.col0 + i] = s1[threadIdx.x * V + i];
      p[c + at.col0 + i] = s2[threadIdx.x * V + i];
    }
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

// mean, biased var (both rounded to T first, as the CPU stores them), invstd from that var,
// and the running statistics (either pointer may be null), in kernels/cpu/batchnorm's formulas.
template <class T>
__global__ void stats_finish_kernel(int64_t m, int64_t c, int64_t chunks, const T* __restrict__ x,
                                    const double* __restrict__ part, double eps, double momentum,
                                    T* __restrict__ mean, T* __restrict__ invstd,
                                    T* __restrict__ running_mean, T* __restrict__ running_var) {
  for (int64_t ch = warp_index(); ch < c; ch += warp_count()) {
    double s1, s2;
    chunk_sums(part, c, chunks, ch, s1, s2);
    if (threadIdx.x % 32 != 0) continue;
    const double dm = s1 / static_cast<double>(m);  // mean of the shifted data
    const T mu = static_cast<T>(static_cast<double>(x[ch]) + dm);
    const double v = s2 / static_cast<double>(m) - dm * dm;
    const T var = static_cast<T>(v > 0 ? v : 0.0);
    mean[ch] = mu;
    invstd[ch] = static_cast<T>(1.0 / sqrt(static_cast<double>(var) + eps));
    if (running_mean)
      running_mean[ch] = static_cast<T>((1 - momentum) * running_mean[ch] + momentum * mu);
    if (running_var) {
      const double unbias = static_cast<double>(m) / static_cast<double>(m - 1);
      running_var[ch] = static_cast<T>((1 - momentum) * running_var[ch] + momentum * var * unbias);
    }
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

// y = pre(x) [+ residual] [then max(., 0) with relu: engine::relu's rule, NaN -> 0], each step
// rounded as the separate ops would round it.
template <class T, int V>
__global__ void forward_kernel(int64_t m, int64_t c, int cols, int groups, int64_t chunk_rows,
                               const T* __restrict__ x, const T* __restrict__ mean,
                               const T* __restrict__ invstd, const T* __restrict__ weight,
                               const T* __restrict__ bias, const T* __restrict__ residual,
                               bool relu, T* __restrict__ y) {
  const Place at = place(m, V, cols, chunk_rows, /*last_first=*/false);
  if (at.g >= groups || at.col0 >= c) return;
  Affine<T> aff[V];
#pragma unroll
  for (int i = 0; i < V; ++i) aff[i] = affine_of(at.col0 + i, mean, invstd, weight, bias);
#pragma unroll 4
  for (int64_t r = at.r0 + at.g; r < at.r1; r += groups) {
    T v[V], z[V] = {};
    load_v<V>(x + r * c + at.col0, v);
    if (residual) load_v<V>(residual + r * c + at.col0, z);
#pragma unroll
    for (int i = 0; i < V; ++i) {
      T p = aff[i].pre(v[i]);
      if (residual) p += z[i];
      v[i] = relu ? (p > T(0) ? p : T(0)) : p;
    }
    store_v<V>(y + r * c + at.col0, v);
  }
}

// dx = k (g - a - (x - mean) b) with the CPU's per-channel k, a, b (training), or k g (eval);
// g = dy, zeroed where a fused ReLU's mask is off.
template <class T, int V>
__global__ void dx_kernel(int64_t m, int64_t c, int cols, int groups, int64_t chunk_rows,
                          const T* __restrict__ x, const T* __restrict__ dy,
                          const T* __restrict__ mean, const T* __restrict__ invstd,
                          const T* __restrict__ weight, const double* __restrict__ sums,
                          bool training, ReluMask<T> relu, T* __restrict__ dx) {
  const Place at = place(m, V, cols, chunk_rows, /*last_first=*/false);
  if (at.g >= groups || at.col0 >= c) return;
  const double inv_m = 1.0 / static_cast<double>(m);
  T k[V], a[V], b[V], mu[V];
  Affine<T> aff[V];
#pragma unroll
  for (int i = 0; i < V; ++i) {
    const int64_t ch = at.col0 + i;
    const double is = invstd[ch];
    k[i] = static_cast<T>(is * (weight ? static_cast<double>(weight[ch]) : 1.0));
    a[i] = training ? static_cast<T>(sums[ch] * inv_m) : T(0);
    b[i] = training ? static_cast<T>(sums[c + ch] * inv_m * is * is) : T(0);
    mu[i] = mean[ch];
    if (relu.x) aff[i] = affine_of(ch, relu.mean, relu.invstd, relu.weight, relu.bias);
  }
  const bool read_x = training || relu.x;
#pragma unroll 4
  for (int64_t r = at.r0 + at.g; r < at.r1; r += groups) {
    T g[V], xv[V] = {};
    load_v<V>(dy + r * c + at.col0, g);
    if (read_x) load_v<V>(x + r * c + at.col0, xv);
#pragma unroll
    for (int i = 0; i < V; ++i) {
      if (relu.x && !(aff[i].pre(xv[i]) > T(0))) g[i] = T(0);
      g[i] = training ? k[i] * (g[i] - a[i] - (xv[i] - mu[i]) * b[i]) : k[i] * g[i];
    }
    store_v<V>(dx + r * c + at.col0, g);
  }
}

// V for [m, c] arrays at these addresses: the pack size when every row starts 16-byte aligned.
template <class T>
int vector_width(int64_t c, std::initializer_list<const void*> arrays) {
  constexpr int kPack = Pack<T>::kSize;
  if (c % kPack != 0) return 1;
  for (const void* p : arrays)
    if (!aligned16(p)) return 1;
  return kPack;
}

// Launches one of a kernel's two instantiations on the plan's grid: `scalar` (V = 1) or
// `packed` (V = the pack size), as the plan's v says.
template <class... Args>
void launch(const Plan& p, void (*scalar)(Args...), void (*packed)(Args...),
            std::type_identity_t<Args>... args) {
  const dim3 grid(static_cast<unsigned>(p.tiles), static_cast<unsigned>(p.chunks));
  void (*kernel)(Args...) = p.v == 1 ? scalar : packed;
  kernel<<<grid, kThreads, 0, stream()>>>(args...);
}

constexpr int kSmallThreads = 128;  // per-channel kernels: c is at most a few thousand

int as_int(const char* op, int64_t v) {
  if (v > INT_MAX)
    raise(std::string(op) + ": size " + std::to_string(v) +
          " exceeds the 32-bit sizes cuDNN takes");
  return static_cast<int>(v);
}

}  // namespace

void batchnorm_training_stats(int64_t m, int64_t c, const void* x, double eps, double momentum,
                              void* mean, void* invstd, void* running_mean, void* running_var,
                              DType dtype) {
  dispatch_float(dtype, "batch_norm", [&](auto zero) {
    using T = decltype(zero);
    if (m <= 0 || c <= 0) return;
    const T* px = static_cast<const T*>(x);
    const Plan p = make_plan(m, c, vector_width<T>(c, {x}));
    Scratch part(sizeof(double) * 2 * c * p.chunks);
    launch(p, column_sums_kernel<T, 1>, column_sums_kernel<T, Pack<T>::kSize>, m, c, px, nullptr,
           nullptr, p.cols, p.groups, p.chunk_rows, ReluMask<T>{},
           static_cast<double*>(part.get()));
    KCUDA_CHECK_LAUNCH("batch_norm statistics");
    stats_finish_kernel<T><<<grid_for(32 * c, kSmallThreads), kSmallThreads, 0, stream()>>>(
        m, c, p.chunks, px, static_cast<const double*>(part.get()), eps, momentum,
        static_cast<T*>(mean), static_cast<T*>(invstd), static_cast<T*>(running_mean),
        static_cast<T*>(running_var));
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

void batchnorm_forward(int64_t m, int64_t c, const void* x, const void* mean, const void* invstd,
                       const void* weight, const void* bias, const void* residual, bool relu,
                       void* y, DType dtype) {
  dispatch_float(dtype, "batch_norm", [&](auto zero) {
    using T = decltype(zero);
    if (m <= 0 || c <= 0) return;
    const Plan p = make_plan(m, c, vector_width<T>(c, {x, residual, y}));
    launch(p, forward_kernel<T, 1>, forward_kernel<T, Pack<T>::kSize>, m, c, p.cols, p.groups,
           p.chunk_rows, static_cast<const T*>(x), static_cast<const T*>(mean),
           static_cast<const T*>(invstd), static_cast<const T*>(weight),
           static_cast<const T*>(bias), static_cast<const T*>(residual), relu,
           static_cast<T*>(y));
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
    // One plan for both passes (the same arrays, dx aside).
    const Plan p = make_plan(m, c, vector_width<T>(c, {x, dy, dx}));
    // sums [2][c] stays zero when nothing needs it (eval-mode dx alone).
    Scratch sums(sizeof(double) * 2 * c);
    if (need_sums && m > 0) {
      Scratch part(sizeof(double) * 2 * c * p.chunks);
      launch(p, column_sums_kernel<T, 1>, column_sums_kernel<T, Pack<T>::kSize>, m, c, pdy,
             need_xmu ? px : nullptr, pmean, p.cols, p.groups, p.chunk_rows, mask,
             static_cast<double*>(part.get()));
      KCUDA_CHECK_LAUNCH("batch_norm_backward");
      grad_finish_kernel<T><<<grid_for(32 * c, kSmallThreads), kSmallThreads, 0, stream()>>>(
          c, p.chunks, static_cast<const double*>(part.get()), pinv,
          static_cast<double*>(sums.get()), static_cast<T*>(dweight), static_cast<T*>(dbias));
      KCUDA_CHECK_LAUNCH("batch_norm_backward");
    } else {
      KCUDA_CHECK(cudaMemsetAsync(sums.get(), 0, sizeof(double) * 2 * c, stream()));
      if (dbias) KCUDA_CHECK(cudaMemsetAsync(dbias, 0, sizeof(T) * c, stream()));
      if (dweight) KCUDA_CHECK(cudaMemsetAsync(dweight, 0, sizeof(T) * c, stream()));
    }
    if (!dx || m <= 0) return;
    launch(p, dx_kernel<T, 1>, dx_kernel<T, Pack<T>::kSize>, m, c, p.cols, p.groups,
           p.chunk_rows, px, pdy, pmean, pinv, static_cast<const T*>(weight),
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
