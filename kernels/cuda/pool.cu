// kernels/cuda/pool.cu — max pooling and adaptive average pooling on NHWC, forward/backward.
//
// Ours (one version each; the channel dim is innermost, so consecutive threads take
// consecutive channels of one pixel and every load and store is coalesced):
//   forward: a thread per output element walks its window.
//   backward: a thread per INPUT element gathers from the output cells whose window holds it
//     (max: those whose argmax is this position), adding in the CPU's order. No atomics, so
//     the result is deterministic and equal to the CPU's bit for bit.
// cuDNN: cudnnPoolingForward / cudnnPoolingBackward with NHWC descriptors.
// Cost, ResNet stem max pool 3x3/2 on [64,112,112,64] float32: 205 MB read + 51 MB written
// (+ 103 MB of int64 argmax): ~0.14 ms at ~2.6 TB/s; the global pool [64,7,7,512] is 6.4 MB.
#include <climits>

#include "kernels/cuda/cudnn_util.cuh"
#include "kernels/cuda/pool.h"
#include "kernels/cuda/runtime.h"

namespace kernels::cuda {

namespace {

constexpr int kThreads = 256;

template <class T>
__global__ void max_pool_forward_kernel(PoolShape s, const T* __restrict__ x, T* __restrict__ y,
                                        int64_t* __restrict__ idx) {
  const int64_t total = s.n * s.p * s.q * s.c;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < total;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t ch = t % s.c, cell = t / s.c, j = cell % s.q, r = cell / s.q;
    const int64_t i = r % s.p, b = r / s.p;
    const int64_t h0 = i * s.stride - s.pad, w0 = j * s.stride - s.pad;
    const int64_t hs = h0 > 0 ? h0 : 0, he = h0 + s.kernel < s.h ? h0 + s.kernel : s.h;
    const int64_t ws = w0 > 0 ? w0 : 0, we = w0 + s.kernel < s.w ? w0 + s.kernel : s.w;
    const T* xb = x + b * s.h * s.w * s.c + ch;
    T best = -INFINITY;
    int64_t at = hs * s.w + ws;  // PyTorch's index when every value is -inf
    for (int64_t hh = hs; hh < he; ++hh)
      for (int64_t ww = ws; ww < we; ++ww) {
        const int64_t pos = hh * s.w + ww;
        const T v = xb[pos * s.c];
        if (v > best || v != v) best = v, at = pos;  // as the CPU: the first max, NaN wins
      }
    y[t] = best;
    idx[t] = at;
  }
}

// Output cells i whose window [i*stride - pad, i*stride - pad + kernel) holds input row hh.
__device__ __forceinline__ void cells_covering(int64_t hh, int64_t kernel, int64_t stride,
                                               int64_t pad, int64_t p, int64_t& lo, int64_t& hi) {
  const int64_t top = hh + pad - kernel + 1;  // i * stride >= top
  lo = top <= 0 ? 0 : (top + stride - 1) / stride;
  hi = (hh + pad) / stride;  // i * stride <= hh + pad
  if (hi > p - 1) hi = p - 1;
}

template <class T>
__global__ void max_pool_backward_kernel(PoolShape s, const T* __restrict__ dy,
                                         const int64_t* __restrict__ idx, T* __restrict__ dx) {
  const int64_t total = s.n * s.h * s.w * s.c;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < total;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t ch = t % s.c, pos = (t / s.c) % (s.h * s.w), b = t / (s.c * s.h * s.w);
    const int64_t hh = pos / s.w, ww = pos % s.w;
    int64_t i0, i1, j0, j1;
    cells_covering(hh, s.kernel, s.stride, s.pad, s.p, i0, i1);
    cells_covering(ww, s.kernel, s.stride, s.pad, s.q, j0, j1);
    T sum = T(0);
    for (int64_t i = i0; i <= i1; ++i)
      for (int64_t j = j0; j <= j1; ++j) {
        const int64_t o = ((b * s.p + i) * s.q + j) * s.c + ch;
        if (idx[o] == pos) sum += dy[o];
      }
    dx[t] = sum;
  }
}

template <class T>
__global__ void adaptive_avg_forward_kernel(int64_t n, int64_t h, int64_t w, int64_t c, int64_t p,
                                            int64_t q, const T* __restrict__ x, T* __restrict__ y) {
  const int64_t total = n * p * q * c;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < total;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t ch = t % c, cell = t / c, j = cell % q, r = cell / q, i = r % p, b = r / p;
    const int64_t hs = i * h / p, he = ((i + 1) * h + p - 1) / p;  // floor, ceil
    const int64_t ws = j * w / q, we = ((j + 1) * w + q - 1) / q;
    const T* xb = x + b * h * w * c + ch;
    double acc = 0;
    for (int64_t hh = hs; hh < he; ++hh)
      for (int64_t ww = ws; ww < we; ++ww) acc += static_cast<double>(xb[(hh * w + ww) * c]);
    y[t] = static_cast<T>(acc * (1.0 / static_cast<double>((he - hs) * (we - ws))));
  }
}

// Adaptive cells i whose window [floor(i*h/p), ceil((i+1)*h/p)) holds input row hh:
// floor(hh*p/h) <= i <= ceil((hh+1)*p/h) - 1.
__device__ __forceinline__ void adaptive_cells(int64_t hh, int64_t h, int64_t p, int64_t& lo,
                                               int64_t& hi) {
  lo = hh * p / h;
  hi = ((hh + 1) * p + h - 1) / h - 1;
  if (hi > p - 1) hi = p - 1;
}

template <class T>
__global__ void adaptive_avg_backward_kernel(int64_t n, int64_t h, int64_t w, int64_t c, int64_t p,
                                             int64_t q, const T* __restrict__ dy,
                                             T* __restrict__ dx) {
  const int64_t total = n * h * w * c;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < total;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t ch = t % c, pos = (t / c) % (h * w), b = t / (c * h * w);
    const int64_t hh = pos / w, ww = pos % w;
    int64_t i0, i1, j0, j1;
    adaptive_cells(hh, h, p, i0, i1);
    adaptive_cells(ww, w, q, j0, j1);
    T sum = T(0);
    for (int64_t i = i0; i <= i1; ++i) {
      const int64_t hs = i * h / p, he = ((i + 1) * h + p - 1) / p;
      for (int64_t j = j0; j <= j1; ++j) {
        const int64_t ws = j * w / q, we = ((j + 1) * w + q - 1) / q;
        const T inv = T(1) / static_cast<T>((he - hs) * (we - ws));  // as the CPU, in T
        sum += dy[((b * p + i) * q + j) * c + ch] * inv;
      }
    }
    dx[t] = sum;
  }
}

int as_int(const char* op, int64_t v) {
  if (v > INT_MAX)
    raise(std::string(op) + ": size " + std::to_string(v) +
          " exceeds the 32-bit sizes cuDNN takes");
  return static_cast<int>(v);
}

}  // namespace

void max_pool2d_forward(const PoolShape& s, const void* x, void* y, int64_t* idx, DType dtype) {
  dispatch_float(dtype, "max_pool2d", [&](auto zero) {
    using T = decltype(zero);
    const int64_t total = s.n * s.p * s.q * s.c;
    if (total == 0) return;
    max_pool_forward_kernel<T><<<grid_for(total, kThreads), kThreads, 0, stream()>>>(
        s, static_cast<const T*>(x), static_cast<T*>(y), idx);
    KCUDA_CHECK_LAUNCH("max_pool2d");
  });
}

void max_pool2d_backward(const PoolShape& s, const void* dy, const int64_t* idx, void* dx,
                         DType dtype) {
  dispatch_float(dtype, "max_pool2d_backward", [&](auto zero) {
    using T = decltype(zero);
    const int64_t total = s.n * s.h * s.w * s.c;
    if (total == 0) return;
    max_pool_backward_kernel<T><<<grid_for(total, kThreads), kThreads, 0, stream()>>>(
        s, static_cast<const T*>(dy), idx, static_cast<T*>(dx));
    KCUDA_CHECK_LAUNCH("max_pool2d_backward");
  });
}

void adaptive_avg_pool2d_forward(int64_t n, int64_t h, int64_t w, int64_t c, int64_t p, int64_t q,
                                 const void* x, void* y, DType dtype) {
  dispatch_float(dtype, "adaptive_avg_pool2d", [&](auto zero) {
    using T = decltype(zero);
    const int64_t total = n * p * q * c;
    if (total == 0) return;
    adaptive_avg_forward_kernel<T><<<grid_for(total, kThreads), kThreads, 0, stream()>>>(
        n, h, w, c, p, q, static_cast<const T*>(x), static_cast<T*>(y));
    KCUDA_CHECK_LAUNCH("adaptive_avg_pool2d");
  });
}

void adaptive_avg_pool2d_backward(int64_t n, int64_t h, int64_t w, int64_t c, int64_t p, int64_t q,
                                  const void* dy, void* dx, DType dtype) {
  dispatch_float(dtype, "adaptive_avg_pool2d_backward", [&](auto zero) {
    using T = decltype(zero);
    const int64_t total = n * h * w * c;
    if (total == 0) return;
    adaptive_avg_backward_kernel<T><<<grid_for(total, kThreads), kThreads, 0, stream()>>>(
        n, h, w, c, p, q, static_cast<const T*>(dy), static_cast<T*>(dx));
    KCUDA_CHECK_LAUNCH("adaptive_avg_pool2d_backward");
  });
}

// ---- cuDNN -----------------------------------------------------------------------------------

bool pool_vendor_takes(DType dtype) { return dtype == DType::Float32; }

void max_pool2d_forward_vendor(const PoolShape& s, const void* x, void* y, DType dtype) {
  const char* op = "max_pool2d (cuDNN)";
  if (!pool_vendor_takes(dtype)) unsupported_dtype(op, dtype);
  const int n = as_int(op, s.n), c = as_int(op, s.c);
  TensorDesc xd(dtype, n, as_int(op, s.h), as_int(op, s.w), c);
  TensorDesc yd(dtype, n, as_int(op, s.p), as_int(op, s.q), c);
  const int k = as_int(op, s.kernel), st = as_int(op, s.stride), pd = as_int(op, s.pad);
  PoolDesc pool(CUDNN_POOLING_MAX_DETERMINISTIC, k, k, pd, pd, st, st);
  Blend b(dtype);
  KCUDNN_CHECK(
      cudnnPoolingForward(cudnn_handle(), pool.get(), b.one(), xd.get(), x, b.zero(), yd.get(), y));
  after_library_call(op);
}

void max_pool2d_backward_vendor(const PoolShape& s, const void* x, const void* y, const void* dy,
                                void* dx, DType dtype) {
  const char* op = "max_pool2d_backward (cuDNN)";
  if (!pool_vendor_takes(dtype)) unsupported_dtype(op, dtype);
  const int n = as_int(op, s.n), c = as_int(op, s.c);
  TensorDesc xd(dtype, n, as_int(op, s.h), as_int(op, s.w), c);
  TensorDesc yd(dtype, n, as_int(op, s.p), as_int(op, s.q), c);
  const int k = as_int(op, s.kernel), st = as_int(op, s.stride), pd = as_int(op, s.pad);
  PoolDesc pool(CUDNN_POOLING_MAX_DETERMINISTIC, k, k, pd, pd, st, st);
  Blend b(dtype);
  KCUDNN_CHECK(cudnnPoolingBackward(cudnn_handle(), pool.get(), b.one(), yd.get(), y, yd.get(), dy,
                                    xd.get(), x, b.zero(), xd.get(), dx));
  after_library_call(op);
}

bool avg_pool_vendor_takes(int64_t h, int64_t w, int64_t p, int64_t q, DType dtype) {
  return dtype == DType::Float32 && p > 0 && q > 0 && h % p == 0 && w % q == 0;
}

void avg_pool2d_forward_vendor(int64_t n, int64_t h, int64_t w, int64_t c, int64_t p, int64_t q,
                               const void* x, void* y, DType dtype) {
  const char* op = "adaptive_avg_pool2d (cuDNN)";
  if (!avg_pool_vendor_takes(h, w, p, q, dtype))
    raise(std::string(op) + ": cuDNN takes only float32 windows that tile the input");
  const int ni = as_int(op, n), ci = as_int(op, c);
  TensorDesc xd(dtype, ni, as_int(op, h), as_int(op, w), ci);
  TensorDesc yd(dtype, ni, as_int(op, p), as_int(op, q), ci);
  const int wh = as_int(op, h / p), ww = as_int(op, w / q);
  PoolDesc pool(CUDNN_POOLING_AVERAGE_COUNT_EXCLUDE_PADDING, wh, ww, 0, 0, wh, ww);
  Blend b(dtype);
  KCUDNN_CHECK(
      cudnnPoolingForward(cudnn_handle(), pool.get(), b.one(), xd.get(), x, b.zero(), yd.get(), y));
  after_library_call(op);
}

}  // namespace kernels::cuda
