// kernels/cuda/conv2d_ops.cu — general 2-D convolution on NHWC for the engine: the implicit-GEMM
// lab, im2col + GEMM, and cuDNN.
//
// Ours (kernels::cuda::impl(Family::Conv) == Ours; conv.cpp calls these functions then):
//   * float32, groups == 1 (and sizes the lab takes: conv2d_lab_takes): the kernel lab
//     kernels/cuda/conv2d.cu, an implicit GEMM that gathers its operands from x, dy and w on
//     the fly (no column matrix): version 0 (its fastest fp32 version, CUDA cores) or, when
//     kernels::cuda::tf32() is on (ENGINE_CUDA_TF32=1), the TF32 tensor-core version
//     (kConv2dTf32Version). Its weight gradient is split over N*P*Q and summed in a fixed order
//     (deterministic); the workspace comes from the engine's allocator.
//   * everything else (float64, grouped convolutions): im2col + GEMM, correct and simple:
//   The batch is processed in chunks of whole images (so no input pixel is shared by two
//   chunks) whose column matrix fits kColumnBytes. For a chunk of `rows` output pixels:
//     im2col:  cols[rows, R*S*C], row = one output pixel, laid out [G][R][S][C/G] as the CPU
//              (a thread per element; consecutive threads take consecutive channels of one
//              tap, so reads of x and writes of cols are coalesced; zeros in the padding).
//     forward: y_g[rows, K/G] = cols_g @ w_g^T            (one GEMM per group)
//     data:    dcols_g = dy_g @ w_g, then col2im as a gather: a thread per input element adds
//              the taps of the output pixels that read it (no atomics, deterministic).
//     weight:  dw_g += dy_g^T @ cols_g                     (beta = 1 after the first chunk)
//   A 1x1, stride-1, unpadded convolution skips im2col/col2im: x IS the column matrix.
//   The GEMMs are kernels::cuda::gemm: cuBLAS or our tiled SGEMM (ENGINE_CUDA_IMPL_GEMM).
// cuDNN (Vendor, the default until the lab is measured faster on an H100):
//   cudnnConvolutionForward / BackwardData / BackwardFilter on NHWC descriptors; the backward
//   passes with deterministic algorithms only unless cudnn_deterministic() is off (runtime.h).
// Cost of ResNet's 3x3 64->64 layer at 56x56, batch 64, float32: 2 * 200704 * 64 * 576 =
// 14.8 GFLOP -> 0.22 ms at ~67 TFLOP/s fp32; im2col adds a 462 MB column matrix written and
// read (~0.36 ms at ~2.6 TB/s): the reason the lab is an implicit GEMM.
#include <algorithm>
#include <atomic>
#include <climits>
#include <compare>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "kernels/cuda/conv2d.h"
#include "kernels/cuda/conv2d_ops.h"
#include "kernels/cuda/cudnn_algos.h"
#include "kernels/cuda/cudnn_util.cuh"
#include "kernels/cuda/matmul.h"
#include "kernels/cuda/runtime.h"

namespace kernels::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int64_t kColumnBytes = int64_t{128} << 20;  // the column buffer of one chunk

// cols[row, ((g * R + r) * S + s) * Cg + cg] = x[b, hh, ww, g * Cg + cg] (0 in the padding),
// rows [0, rows) being output pixels b0 * P * Q + row.
template <class T>
__global__ void im2col_kernel(Conv2dShape sh, int64_t b0, int64_t rows, const T* __restrict__ x,
                              T* __restrict__ cols) {
  const int64_t cg_n = sh.c / sh.groups, rsc = sh.r * sh.s * sh.c;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < rows * rsc;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t col = t % rsc, row = t / rsc;
    const int64_t cg = col % cg_n, tap = (col / cg_n) % (sh.r * sh.s),
                  g = col / (cg_n * sh.r * sh.s);
    const int64_t r = tap / sh.s, s = tap % sh.s;
    const int64_t pix = b0 * sh.p * sh.q + row;
    const int64_t b = pix / (sh.p * sh.q), pq = pix % (sh.p * sh.q);
    const int64_t hh = (pq / sh.q) * sh.stride_h - sh.pad_h + r * sh.dil_h;
    const int64_t ww = (pq % sh.q) * sh.stride_w - sh.pad_w + s * sh.dil_w;
    const bool inside = hh >= 0 && hh < sh.h && ww >= 0 && ww < sh.w;
    cols[t] = inside ? x[((b * sh.h + hh) * sh.w + ww) * sh.c + g * cg_n + cg] : T(0);
  }
}

// dx[b, hh, ww, c] for the images [b0, b0 + nb) = the sum over taps (r, s) of the dcols entry
// of the output pixel that read (hh, ww) through that tap, if any.
template <class T>
__global__ void col2im_kernel(Conv2dShape sh, int64_t b0, int64_t nb, const T* __restrict__ dcols,
                              T* __restrict__ dx) {
  const int64_t cg_n = sh.c / sh.groups, rsc = sh.r * sh.s * sh.c;
  const int64_t per_image = sh.h * sh.w * sh.c;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < nb * per_image;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t c = t % sh.c, pos = (t / sh.c) % (sh.h * sh.w), bl = t / per_image;
    const int64_t hh = pos / sh.w, ww = pos % sh.w, g = c / cg_n, cg = c % cg_n;
    T sum = T(0);
    for (int64_t r = 0; r < sh.r; ++r) {
      const int64_t ph = hh + sh.pad_h - r * sh.dil_h;  // = output row * stride_h
      if (ph < 0 || ph % sh.stride_h != 0 || ph / sh.stride_h >= sh.p) continue;
      for (int64_t s = 0; s < sh.s; ++s) {
        const int64_t pw = ww + sh.pad_w - s * sh.dil_w;
        if (pw < 0 || pw % sh.stride_w != 0 || pw / sh.stride_w >= sh.q) continue;
        const int64_t row = (bl * sh.p + ph / sh.stride_h) * sh.q + pw / sh.stride_w;
        sum += dcols[row * rsc + ((g * sh.r + r) * sh.s + s) * cg_n + cg];
      }
    }
    dx[b0 * per_image + t] = sum;
  }
}

template <class T>
__global__ void add_bias_kernel(int64_t rows, int64_t k, const T* __restrict__ bias,
                                T* __restrict__ y) {
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < rows * k;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x)
    y[t] += bias[t % k];
}

bool is_pointwise(const Conv2dShape& sh) {
  return sh.r == 1 && sh.s == 1 && sh.stride_h == 1 && sh.stride_w == 1 && sh.pad_h == 0 &&
         sh.pad_w == 0;
}

// Images per chunk: as many as keep the column matrix under kColumnBytes, at least one.
int64_t images_per_chunk(const Conv2dShape& sh, size_t elem) {
  const int64_t per_image = sh.p * sh.q * sh.r * sh.s * sh.c * static_cast<int64_t>(elem);
  return std::clamp<int64_t>(kColumnBytes / std::max<int64_t>(per_image, 1), 1, sh.n);
}

// ---- the implicit-GEMM lab ---------------------------------------------------------------------

// The lab's int32 shape, if every size fits and the lab accepts it (float32, groups == 1).
bool to_lab_shape(const Conv2dShape& sh, DType dtype, Conv2dLabShape& out) {
  if (dtype != DType::Float32 || sh.groups != 1) return false;
  for (int64_t v : {sh.n, sh.h, sh.w, sh.c, sh.k, sh.r, sh.s, sh.stride_h, sh.stride_w, sh.pad_h,
                    sh.pad_w, sh.dil_h, sh.dil_w})
    if (v < 0 || v > INT_MAX) return false;  // conv2d_lab_takes checks the rest
  Conv2dLabShape l;
  l.n = int(sh.n), l.h = int(sh.h), l.w = int(sh.w), l.c = int(sh.c), l.k = int(sh.k);
  l.r = int(sh.r), l.s = int(sh.s), l.stride_h = int(sh.stride_h), l.stride_w = int(sh.stride_w);
  l.pad_h = int(sh.pad_h), l.pad_w = int(sh.pad_w);
  l.dil_h = int(sh.dil_h), l.dil_w = int(sh.dil_w);
  if (!conv2d_lab_takes(l) || l.p() != sh.p || l.q() != sh.q) return false;
  out = l;
  return true;
}

int lab_version() {
  if (!tf32()) return 0;
  if (!tf32_ldmatrix()) return kConv2dTf32Version;       // 4
  return tf32_wide() ? kConv2dTf32Version + 2 : kConv2dTf32Version + 1;  // 6, 5
}

}  // namespace

void add_bias_rows(int64_t rows, int64_t k, const void* bias, void* y, DType dtype) {
  dispatch_float(dtype, "conv2d bias", [&](auto zero) {
    using T = decltype(zero);
    if (rows * k == 0) return;
    add_bias_kernel<T><<<grid_for(rows * k, kThreads), kThreads, 0, stream()>>>(
        rows, k, static_cast<const T*>(bias), static_cast<T*>(y));
    KCUDA_CHECK_LAUNCH("conv2d bias");
  });
}

void conv2d_forward(const Conv2dShape& sh, const void* x, const void* w, const void* bias, void* y,
                    DType dtype) {
  Conv2dLabShape lab;
  if (to_lab_shape(sh, dtype, lab)) {
    call_lab("conv2d", [&] {
      conv2d_forward(lab_version(), lab, static_cast<const float*>(x), static_cast<const float*>(w),
                     static_cast<const float*>(bias), static_cast<float*>(y), stream());
    });
    return;
  }
  dispatch_float(dtype, "conv2d", [&](auto zero) {
    using T = decltype(zero);
    const int64_t kg = sh.k / sh.groups, rscg = sh.r * sh.s * (sh.c / sh.groups);
    const int64_t rsc = sh.r * sh.s * sh.c;
    const T* px = static_cast<const T*>(x);
    const int64_t chunk = is_pointwise(sh) ? sh.n : images_per_chunk(sh, sizeof(T));
    Scratch cols_buf(is_pointwise(sh) ? 0 : sizeof(T) * chunk * sh.p * sh.q * rsc);
    T* cols = static_cast<T*>(cols_buf.get());
    for (int64_t b0 = 0; b0 < sh.n; b0 += chunk) {
      const int64_t nb = std::min(chunk, sh.n - b0), rows = nb * sh.p * sh.q;
      const T* a = px + b0 * sh.h * sh.w * sh.c;  // pointwise: the input rows themselves
      if (!is_pointwise(sh)) {
        im2col_kernel<T>
            <<<grid_for(rows * rsc, kThreads), kThreads, 0, stream()>>>(sh, b0, rows, px, cols);
        KCUDA_CHECK_LAUNCH("conv2d im2col");
        a = cols;
      }
      for (int64_t g = 0; g < sh.groups; ++g)  // y_g = cols_g @ w_g^T
        gemm(false, true, rows, kg, rscg, 1.0, a, g * rscg, rsc, w, g * kg * rscg, rscg, 0.0, y,
             b0 * sh.p * sh.q * sh.k + g * kg, sh.k, dtype);
    }
    if (bias) add_bias_rows(sh.n * sh.p * sh.q, sh.k, bias, y, dtype);
  });
}

void conv2d_backward_data(const Conv2dShape& sh, const void* dy, const void* w, void* dx,
                          DType dtype) {
  Conv2dLabShape lab;
  if (to_lab_shape(sh, dtype, lab)) {
    call_lab("conv2d backward", [&] {
      conv2d_backward_data(lab_version(), lab, static_cast<const float*>(dy),
                           static_cast<const float*>(w), static_cast<float*>(dx), stream());
    });
    return;
  }
  dispatch_float(dtype, "conv2d backward", [&](auto zero) {
    using T = decltype(zero);
    const int64_t kg = sh.k / sh.groups, rscg = sh.r * sh.s * (sh.c / sh.groups);
    const int64_t rsc = sh.r * sh.s * sh.c;
    if (is_pointwise(sh)) {  // dx_g = dy_g @ w_g, straight into dx
      for (int64_t g = 0; g < sh.groups; ++g)
        gemm(false, false, sh.n * sh.h * sh.w, rscg, kg, 1.0, dy, g * kg, sh.k, w, g * kg * rscg,
             rscg, 0.0, dx, g * rscg, sh.c, dtype);
      return;
    }
    const int64_t chunk = images_per_chunk(sh, sizeof(T));
    Scratch dcols_buf(sizeof(T) * chunk * sh.p * sh.q * rsc);
    T* dcols = static_cast<T*>(dcols_buf.get());
    for (int64_t b0 = 0; b0 < sh.n; b0 += chunk) {
      const int64_t nb = std::min(chunk, sh.n - b0), rows = nb * sh.p * sh.q;
      for (int64_t g = 0; g < sh.groups; ++g)  // dcols_g = dy_g @ w_g
        gemm(false, false, rows, rscg, kg, 1.0, dy, b0 * sh.p * sh.q * sh.k + g * kg, sh.k, w,
             g * kg * rscg, rscg, 0.0, dcols, g * rscg, rsc, dtype);
      const int64_t n_out = nb * sh.h * sh.w * sh.c;
      col2im_kernel<T><<<grid_for(n_out, kThreads), kThreads, 0, stream()>>>(sh, b0, nb, dcols,
                                                                             static_cast<T*>(dx));
      KCUDA_CHECK_LAUNCH("conv2d col2im");
    }
  });
}

void conv2d_backward_weight(const Conv2dShape& sh, const void* x, const void* dy, void* dw,
                            DType dtype) {
  Conv2dLabShape lab;
  if (to_lab_shape(sh, dtype, lab)) {
    call_lab("conv2d backward", [&] {
      const int v = lab_version();
      Scratch ws(conv2d_backward_weight_workspace(v, lab));
      conv2d_backward_weight(v, lab, static_cast<const float*>(x), static_cast<const float*>(dy),
                             static_cast<float*>(dw), nullptr, ws.get(), stream());
    });
    return;
  }
  dispatch_float(dtype, "conv2d backward", [&](auto zero) {
    using T = decltype(zero);
    const int64_t kg = sh.k / sh.groups, rscg = sh.r * sh.s * (sh.c / sh.groups);
    const int64_t rsc = sh.r * sh.s * sh.c;
    const T* px = static_cast<const T*>(x);
    const int64_t chunk = is_pointwise(sh) ? sh.n : images_per_chunk(sh, sizeof(T));
    Scratch cols_buf(is_pointwise(sh) ? 0 : sizeof(T) * chunk * sh.p * sh.q * rsc);
    T* cols = static_cast<T*>(cols_buf.get());
    for (int64_t b0 = 0; b0 < sh.n; b0 += chunk) {
      const int64_t nb = std::min(chunk, sh.n - b0), rows = nb * sh.p * sh.q;
      const T* a = px + b0 * sh.h * sh.w * sh.c;
      if (!is_pointwise(sh)) {
        im2col_kernel<T>
            <<<grid_for(rows * rsc, kThreads), kThreads, 0, stream()>>>(sh, b0, rows, px, cols);
        KCUDA_CHECK_LAUNCH("conv2d im2col");
        a = cols;
      }
      for (int64_t g = 0; g < sh.groups; ++g)  // dw_g (+)= dy_g^T @ cols_g
        gemm(true, false, kg, rscg, rows, 1.0, dy, b0 * sh.p * sh.q * sh.k + g * kg, sh.k, a,
             g * rscg, rsc, b0 == 0 ? 0.0 : 1.0, dw, g * kg * rscg, rscg, dtype);
    }
  });
}

// ---- cuDNN -----------------------------------------------------------------------------------

bool conv_vendor_takes(DType dtype) { return dtype == DType::Float32; }

namespace {

int as_int(const char* op, int64_t v) {
  if (v > INT_MAX)
    raise(std::string(op) + ": size " + std::to_string(v) +
          " exceeds the 32-bit sizes cuDNN takes");
  return static_cast<int>(v);
}

struct ConvDescs {
  TensorDesc x, y;
  FilterDesc w;
  ConvDesc conv;
  ConvDescs(const char* op, const Conv2dShape& sh, DType t)
      : x(t, as_int(op, sh.n), as_int(op, sh.h), as_int(op, sh.w), as_int(op, sh.c)),
        y(t, as_int(op, sh.n), as_int(op, sh.p), as_int(op, sh.q), as_int(op, sh.k)),
        w(t, as_int(op, sh.k), as_int(op, sh.r), as_int(op, sh.s), as_int(op, sh.c / sh.groups)),
        conv(t, as_int(op, sh.pad_h), as_int(op, sh.pad_w), as_int(op, sh.stride_h),
             as_int(op, sh.stride_w), as_int(op, sh.dil_h), as_int(op, sh.dil_w),
             as_int(op, sh.groups)) {
    if (!conv_vendor_takes(t)) unsupported_dtype(op, t);
  }
};

// Workspaces above this are skipped (the next algorithm usually needs far less); PyTorch caps
// nothing, but one conv asking for several GiB of a 80 GiB card mid-step is not worth it.
constexpr size_t kMaxWorkspaceBytes = size_t(1) << 30;

std::atomic<int64_t> g_fallbacks{0};

// Says once per op name that cuDNN could not take a convolution and our kernel ran instead.
void note_fallback(const char* op, const Conv2dShape& sh) {
  g_fallbacks.fetch_add(1);
  static std::mutex mu;
  static std::set<std::string> said;
  std::lock_guard<std::mutex> lock(mu);
  if (!said.insert(op).second) return;
  std::fprintf(stderr,
               "engine: %s: no %sFMA%s algorithm of cuDNN runs [n=%lld h=%lld w=%lld c=%lld] "
               "k=%lld %lldx%lld groups=%lld; our kernel runs instead (said once per op; "
               "kernels::cuda::conv_vendor_fallbacks() counts them)\n",
               op, std::strstr(op, "backward") && cudnn_deterministic() ? "deterministic " : "",
               tf32() ? " or TF32" : "",
               (long long)sh.n, (long long)sh.h, (long long)sh.w, (long long)sh.c,
               (long long)sh.k, (long long)sh.r, (long long)sh.s, (long long)sh.groups);
}

// The algorithm chosen for a (pass, shape, TF32 setting): a training step runs the same
// convolutions every iteration, and cuDNN's heuristics query (plus a workspace query per
// candidate) on every call would be host work repeated ~160 times per ResNet-50 step.
// PyTorch caches its choice per shape the same way.
struct AlgoKey {
  int pass;  // 0 forward, 1 data gradient, 2 weight gradient
  int64_t n, h, w, c, k, r, s, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups;
  bool tf32;
  bool timed;          // chosen by timing (cudnn_benchmark()) rather than by the heuristics
  bool deterministic;  // only cuDNN's deterministic algorithms (cudnn_deterministic())
  auto operator<=>(const AlgoKey&) const = default;
};
struct AlgoChoice {
  bool found;  // false: no algorithm of cuDNN's runs this one (ours does)
  int algo;
  cudnnMathType_t math;
  size_t bytes;
};
std::mutex g_algo_mu;
std::map<AlgoKey, AlgoChoice> g_algos;

std::atomic<int64_t> g_benchmark_failures{0};

// Benchmark mode's ranking: the workspace is the largest that the heuristics' candidates
// (ranked[0, count)) need, up to the cap (an algorithm needing more comes back failed and is
// filtered out like any other); the descriptor allows TF32 exactly when tf32() does. Returns
// find's count, its results in `ranked`, fastest first. Should the timing itself fail (its
// workspace not allocatable, cuDNN refusing), the heuristics' ranking is used again, said once
// on stderr and counted (conv_benchmark_failures()): a convolution never fails for it.
template <class Perf, class Query, class Workspace, class Find>
int find_ranked(const char* op, const ConvDescs& d, bool allow_tf32, bool deterministic,
                std::vector<Perf>& ranked, int count, Query query, Workspace workspace,
                Find find) {
  size_t most = 0;
  for (const Perf& p : conv_algo_candidates(ranked.data(), count, allow_tf32, deterministic)) {
    KCUDNN_CHECK(cudnnSetConvolutionMathType(d.conv.get(),
                                             allow_tf32 ? p.mathType : CUDNN_FMA_MATH));
    size_t bytes = 0;
    if (workspace(p.algo, &bytes) == CUDNN_STATUS_SUCCESS && bytes <= kMaxWorkspaceBytes)
      most = std::max(most, bytes);
  }
  KCUDNN_CHECK(cudnnSetConvolutionMathType(d.conv.get(),
                                           allow_tf32 ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH));
  try {
    Scratch ws(most);
    return find(ranked, ws.get(), most);
  } catch (const std::exception& e) {
    if (g_benchmark_failures.fetch_add(1) == 0)
      std::fprintf(stderr, "engine: %s: timing cuDNN's algorithms failed (%s); cuDNN's "
                           "heuristics choose instead (said once)\n", op, e.what());
    return query(ranked);
  }
}

// Runs the convolution with the algorithm cached for its key, or else with the first of
// cuDNN's ranked algorithms (query fills them; filtered by conv_algo_candidates) that cuDNN
// accepts: its math type on the descriptor, its workspace, the call. An algorithm whose
// workspace query or call says CUDNN_STATUS_NOT_SUPPORTED (or whose workspace is above the cap)
// is passed over; any other error is raised. False when none runs (also cached).
// In benchmark mode (cudnn_benchmark()) the ranking is find's instead: cuDNN runs and times
// every algorithm on these buffers, fastest first (PyTorch's cudnn.benchmark), given a
// workspace as large as the largest the heuristics' candidates ask for.
//   query(std::vector<Perf>& ranked) -> count;  workspace(algo, &bytes) -> cudnnStatus_t;
//   find(std::vector<Perf>& ranked, workspace, bytes) -> count;
//   run(algo, workspace, bytes) -> cudnnStatus_t
template <class Perf, class Query, class Workspace, class Find, class Run>
bool run_ranked(const char* op, int pass, const Conv2dShape& sh, const ConvDescs& d,
                bool deterministic, Query query, Workspace workspace, Find find, Run run) {
  using Algo = decltype(Perf::algo);
  const bool allow_tf32 = tf32(), timed = cudnn_benchmark();
  const AlgoKey key{pass,     sh.n,     sh.h,      sh.w,       sh.c,     sh.k,
                    sh.r,     sh.s,     sh.stride_h, sh.stride_w, sh.pad_h, sh.pad_w,
                    sh.dil_h, sh.dil_w, sh.groups, allow_tf32, timed, deterministic};
  auto attempt = [&](Algo algo, cudnnMathType_t math, size_t bytes) {
    KCUDNN_CHECK(cudnnSetConvolutionMathType(d.conv.get(), math));
    Scratch ws(bytes);
    const cudnnStatus_t status = run(algo, ws.get(), bytes);
    if (status == CUDNN_STATUS_NOT_SUPPORTED) return false;
    check_cudnn(status, op, __FILE__, __LINE__);
    after_library_call(op);
    return true;
  };
  {
    std::unique_lock<std::mutex> lock(g_algo_mu);
    auto it = g_algos.find(key);
    if (it != g_algos.end()) {
      const AlgoChoice choice = it->second;
      lock.unlock();
      if (!choice.found) return false;
      if (attempt(static_cast<Algo>(choice.algo), choice.math, choice.bytes)) return true;
    }
  }
  std::vector<Perf> ranked;
  int count = query(ranked);
  if (timed)
    count = find_ranked(op, d, allow_tf32, deterministic, ranked, count, query, workspace, find);
  AlgoChoice choice{false, 0, CUDNN_FMA_MATH, 0};
  for (const Perf& p : conv_algo_candidates(ranked.data(), count, allow_tf32, deterministic)) {
    const cudnnMathType_t math = allow_tf32 ? p.mathType : CUDNN_FMA_MATH;
    KCUDNN_CHECK(cudnnSetConvolutionMathType(d.conv.get(), math));
    size_t bytes = 0;
    const cudnnStatus_t status = workspace(p.algo, &bytes);
    if (status == CUDNN_STATUS_NOT_SUPPORTED || bytes > kMaxWorkspaceBytes) continue;
    check_cudnn(status, op, __FILE__, __LINE__);
    if (attempt(p.algo, math, bytes)) {
      choice = {true, static_cast<int>(p.algo), math, bytes};
      break;
    }
  }
  std::lock_guard<std::mutex> lock(g_algo_mu);
  g_algos[key] = choice;
  return choice.found;
}

}  // namespace

int64_t conv_vendor_fallbacks() { return g_fallbacks.load(); }
int64_t conv_benchmark_failures() { return g_benchmark_failures.load(); }

bool conv2d_forward_vendor(const Conv2dShape& sh, const void* x, const void* w, const void* bias,
                           void* y, DType dtype) {
  const char* op = "conv2d (cuDNN)";
  ConvDescs d(op, sh, dtype);
  cudnnHandle_t h = cudnn_handle();
  Blend b(dtype);
  const bool ran = run_ranked<cudnnConvolutionFwdAlgoPerf_t>(
      op, 0, sh, d, /*deterministic=*/false,
      [&](std::vector<cudnnConvolutionFwdAlgoPerf_t>& ranked) {
        int max_count = 0, count = 0;
        KCUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(h, &max_count));
        ranked.resize(std::max(max_count, 1));
        KCUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(
            h, d.x.get(), d.w.get(), d.conv.get(), d.y.get(), max_count, &count, ranked.data()));
        return count;
      },
      [&](auto algo, size_t* bytes) {
        return cudnnGetConvolutionForwardWorkspaceSize(h, d.x.get(), d.w.get(), d.conv.get(),
                                                       d.y.get(), algo, bytes);
      },
      [&](std::vector<cudnnConvolutionFwdAlgoPerf_t>& ranked, void* ws, size_t bytes) {
        int count = 0;
        KCUDNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(
            h, d.x.get(), x, d.w.get(), w, d.conv.get(), d.y.get(), y, int(ranked.size()),
            &count, ranked.data(), ws, bytes));
        return count;
      },
      [&](auto algo, void* ws, size_t bytes) {
        return cudnnConvolutionForward(h, b.one(), d.x.get(), x, d.w.get(), w, d.conv.get(),
                                       algo, ws, bytes, b.zero(), d.y.get(), y);
      });
  if (!ran) {
    note_fallback(op, sh);
    return false;
  }
  if (bias) add_bias_rows(sh.n * sh.p * sh.q, sh.k, bias, y, dtype);
  return true;
}

bool conv2d_backward_data_vendor(const Conv2dShape& sh, const void* dy, const void* w, void* dx,
                                 DType dtype) {
  const char* op = "conv2d backward data (cuDNN)";
  ConvDescs d(op, sh, dtype);
  cudnnHandle_t h = cudnn_handle();
  Blend b(dtype);
  const bool ran = run_ranked<cudnnConvolutionBwdDataAlgoPerf_t>(
      op, 1, sh, d, /*deterministic=*/cudnn_deterministic(),
      [&](std::vector<cudnnConvolutionBwdDataAlgoPerf_t>& ranked) {
        int max_count = 0, count = 0;
        KCUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, &max_count));
        ranked.resize(std::max(max_count, 1));
        KCUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(
            h, d.w.get(), d.y.get(), d.conv.get(), d.x.get(), max_count, &count, ranked.data()));
        return count;
      },
      [&](auto algo, size_t* bytes) {
        return cudnnGetConvolutionBackwardDataWorkspaceSize(h, d.w.get(), d.y.get(),
                                                            d.conv.get(), d.x.get(), algo, bytes);
      },
      [&](std::vector<cudnnConvolutionBwdDataAlgoPerf_t>& ranked, void* ws, size_t bytes) {
        int count = 0;
        KCUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithmEx(
            h, d.w.get(), w, d.y.get(), dy, d.conv.get(), d.x.get(), dx, int(ranked.size()),
            &count, ranked.data(), ws, bytes));
        return count;
      },
      [&](auto algo, void* ws, size_t bytes) {
        return cudnnConvolutionBackwardData(h, b.one(), d.w.get(), w, d.y.get(), dy, d.conv.get(),
                                            algo, ws, bytes, b.zero(), d.x.get(), dx);
      });
  if (!ran) note_fallback(op, sh);
  return ran;
}

bool conv2d_backward_weight_vendor(const Conv2dShape& sh, const void* x, const void* dy, void* dw,
                                   DType dtype) {
  const char* op = "conv2d backward weight (cuDNN)";
  ConvDescs d(op, sh, dtype);
  cudnnHandle_t h = cudnn_handle();
  Blend b(dtype);
  const bool ran = run_ranked<cudnnConvolutionBwdFilterAlgoPerf_t>(
      op, 2, sh, d, /*deterministic=*/cudnn_deterministic(),
      [&](std::vector<cudnnConvolutionBwdFilterAlgoPerf_t>& ranked) {
        int max_count = 0, count = 0;
        KCUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, &max_count));
        ranked.resize(std::max(max_count, 1));
        KCUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
            h, d.x.get(), d.y.get(), d.conv.get(), d.w.get(), max_count, &count, ranked.data()));
        return count;
      },
      [&](auto algo, size_t* bytes) {
        return cudnnGetConvolutionBackwardFilterWorkspaceSize(h, d.x.get(), d.y.get(),
                                                              d.conv.get(), d.w.get(), algo,
                                                              bytes);
      },
      [&](std::vector<cudnnConvolutionBwdFilterAlgoPerf_t>& ranked, void* ws, size_t bytes) {
        int count = 0;
        KCUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithmEx(
            h, d.x.get(), x, d.y.get(), dy, d.conv.get(), d.w.get(), dw, int(ranked.size()),
            &count, ranked.data(), ws, bytes));
        return count;
      },
      [&](auto algo, void* ws, size_t bytes) {
        return cudnnConvolutionBackwardFilter(h, b.one(), d.x.get(), x, d.y.get(), dy,
                                              d.conv.get(), algo, ws, bytes, b.zero(), d.w.get(),
                                              dw);
      });
  if (!ran) note_fallback(op, sh);
  return ran;
}

}  // namespace kernels::cuda
