// kernels/cuda/depthwise_conv2d_ops.cu — depthwise convolution for the engine: the lab's
// version 0 for float32 stride-1 cases (depthwise_conv2d.cu has its algorithms and roofline),
// and simple kernels for everything else (float64, stride or dilation > 1):
//   forward: a thread per output element walks its R x S taps (channel fastest: coalesced).
//   data:    a thread per input element gathers the taps of the outputs that read it.
//   weight:  a thread per (chunk of output rows, tap, channel) sums dy * x over its chunk;
//            a second kernel adds the chunks in order (deterministic, no atomics).
#include <algorithm>
#include <climits>

#include "kernels/cuda/depthwise_conv2d.h"
#include "kernels/cuda/depthwise_conv2d_ops.h"
#include "kernels/cuda/runtime.h"

namespace kernels::cuda {

namespace {

constexpr int kThreads = 256;

template <class T>
__global__ void dw_forward_kernel(Conv2dShape sh, const T* __restrict__ x, const T* __restrict__ w,
                                  const T* __restrict__ bias, T* __restrict__ y) {
  const int64_t total = sh.n * sh.p * sh.q * sh.c;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < total;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t ch = t % sh.c, pq = (t / sh.c) % (sh.p * sh.q), b = t / (sh.c * sh.p * sh.q);
    const int64_t h0 = (pq / sh.q) * sh.stride_h - sh.pad_h,
                  w0 = (pq % sh.q) * sh.stride_w - sh.pad_w;
    T acc = bias ? bias[ch] : T(0);
    for (int64_t r = 0; r < sh.r; ++r) {
      const int64_t hh = h0 + r * sh.dil_h;
      if (hh < 0 || hh >= sh.h) continue;
      for (int64_t s = 0; s < sh.s; ++s) {
        const int64_t ww = w0 + s * sh.dil_w;
        if (ww < 0 || ww >= sh.w) continue;
        acc += x[((b * sh.h + hh) * sh.w + ww) * sh.c + ch] * w[(ch * sh.r + r) * sh.s + s];
      }
    }
    y[t] = acc;
  }
}

template <class T>
__global__ void dw_backward_data_kernel(Conv2dShape sh, const T* __restrict__ dy,
                                        const T* __restrict__ w, T* __restrict__ dx) {
  const int64_t total = sh.n * sh.h * sh.w * sh.c;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < total;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t ch = t % sh.c, pos = (t / sh.c) % (sh.h * sh.w), b = t / (sh.c * sh.h * sh.w);
    const int64_t hh = pos / sh.w, ww = pos % sh.w;
    T acc = T(0);
    for (int64_t r = 0; r < sh.r; ++r) {
      const int64_t ph = hh + sh.pad_h - r * sh.dil_h;  // = output row * stride_h
      if (ph < 0 || ph % sh.stride_h != 0 || ph / sh.stride_h >= sh.p) continue;
      for (int64_t s = 0; s < sh.s; ++s) {
        const int64_t pw = ww + sh.pad_w - s * sh.dil_w;
        if (pw < 0 || pw % sh.stride_w != 0 || pw / sh.stride_w >= sh.q) continue;
        acc += dy[((b * sh.p + ph / sh.stride_h) * sh.q + pw / sh.stride_w) * sh.c + ch] *
               w[(ch * sh.r + r) * sh.s + s];
      }
    }
    dx[t] = acc;
  }
}

// part[chunk][(ch * R + r) * S + s] = sum over the chunk's output rows (b, pp) and all qq of
// dy[b, pp, qq, ch] * x[b, hh, ww, ch]; blockIdx.y = chunk.
template <class T>
__global__ void dw_weight_partial_kernel(Conv2dShape sh, int64_t chunk_rows,
                                         const T* __restrict__ x, const T* __restrict__ dy,
                                         T* __restrict__ part) {
  const int64_t taps = sh.r * sh.s, per = taps * sh.c;
  const int64_t rows = sh.n * sh.p;
  const int64_t r0 = blockIdx.y * chunk_rows, r1 = r0 + chunk_rows < rows ? r0 + chunk_rows : rows;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < per;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t ch = t % sh.c, tap = t / sh.c, r = tap / sh.s, s = tap % sh.s;
    T acc = T(0);
    for (int64_t row = r0; row < r1; ++row) {
      const int64_t b = row / sh.p, pp = row % sh.p;
      const int64_t hh = pp * sh.stride_h - sh.pad_h + r * sh.dil_h;
      if (hh < 0 || hh >= sh.h) continue;
      for (int64_t qq = 0; qq < sh.q; ++qq) {
        const int64_t ww = qq * sh.stride_w - sh.pad_w + s * sh.dil_w;
        if (ww < 0 || ww >= sh.w) continue;
        acc += dy[((b * sh.p + pp) * sh.q + qq) * sh.c + ch] *
               x[((b * sh.h + hh) * sh.w + ww) * sh.c + ch];
      }
    }
    part[blockIdx.y * per + (ch * sh.r + r) * sh.s + s] = acc;
  }
}

template <class T>
__global__ void sum_chunks_kernel(int64_t per, int64_t chunks, const T* __restrict__ part,
                                  T* __restrict__ out) {
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < per;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    T s = T(0);
    for (int64_t k = 0; k < chunks; ++k) s += part[k * per + t];
    out[t] = s;
  }
}

bool fits_int(const Conv2dShape& sh) {
  for (int64_t v : {sh.n, sh.h, sh.w, sh.c, sh.r, sh.s, sh.pad_h, sh.pad_w, sh.p, sh.q})
    if (v > INT_MAX) return false;
  return true;
}

// The lab: float32, stride 1, dilation 1, batch <= 65535.
bool lab_takes(const Conv2dShape& sh, DType dtype) {
  return dtype == DType::Float32 && sh.stride_h == 1 && sh.stride_w == 1 && sh.dil_h == 1 &&
         sh.dil_w == 1 && sh.n >= 1 && sh.n <= 65535 && fits_int(sh);
}

DepthwiseShape lab_shape(const Conv2dShape& sh) {
  DepthwiseShape d;
  d.n = static_cast<int>(sh.n), d.h = static_cast<int>(sh.h), d.w = static_cast<int>(sh.w);
  d.c = static_cast<int>(sh.c), d.r = static_cast<int>(sh.r), d.s = static_cast<int>(sh.s);
  d.pad_h = static_cast<int>(sh.pad_h), d.pad_w = static_cast<int>(sh.pad_w);
  return d;
}

}  // namespace

void depthwise_conv2d_forward(const Conv2dShape& sh, const void* x, const void* w, const void* bias,
                              void* y, DType dtype) {
  dispatch_float(dtype, "conv2d (depthwise)", [&](auto zero) {
    using T = decltype(zero);
    const int64_t total = sh.n * sh.p * sh.q * sh.c;
    if (total == 0) return;
    if (lab_takes(sh, dtype)) {
      call_lab("conv2d (depthwise)", [&] {
        depthwise_conv2d_forward(0, lab_shape(sh), static_cast<const float*>(x),
                                 static_cast<const float*>(w), static_cast<const float*>(bias),
                                 static_cast<float*>(y), stream());
      });
    } else {
      dw_forward_kernel<T><<<grid_for(total, kThreads), kThreads, 0, stream()>>>(
          sh, static_cast<const T*>(x), static_cast<const T*>(w), static_cast<const T*>(bias),
          static_cast<T*>(y));
    }
    KCUDA_CHECK_LAUNCH("conv2d (depthwise)");
  });
}

void depthwise_conv2d_backward_data(const Conv2dShape& sh, const void* dy, const void* w, void* dx,
                                    DType dtype) {
  dispatch_float(dtype, "conv2d backward (depthwise)", [&](auto zero) {
    using T = decltype(zero);
    const int64_t total = sh.n * sh.h * sh.w * sh.c;
    if (total == 0) return;
    if (lab_takes(sh, dtype)) {
      call_lab("conv2d backward (depthwise)", [&] {
        depthwise_conv2d_backward_data(0, lab_shape(sh), static_cast<const float*>(dy),
                                       static_cast<const float*>(w), static_cast<float*>(dx),
                                       stream());
      });
    } else {
      dw_backward_data_kernel<T><<<grid_for(total, kThreads), kThreads, 0, stream()>>>(
          sh, static_cast<const T*>(dy), static_cast<const T*>(w), static_cast<T*>(dx));
    }
    KCUDA_CHECK_LAUNCH("conv2d backward (depthwise)");
  });
}

void depthwise_conv2d_backward_weight(const Conv2dShape& sh, const void* x, const void* dy,
                                      void* dw, DType dtype) {
  dispatch_float(dtype, "conv2d backward (depthwise)", [&](auto zero) {
    using T = decltype(zero);
    const int64_t per = sh.r * sh.s * sh.c;
    if (per == 0) return;
    if (lab_takes(sh, dtype)) {
      call_lab("conv2d backward (depthwise)", [&] {
        const DepthwiseShape d = lab_shape(sh);
        Scratch ws(depthwise_conv2d_backward_weight_workspace(0, d));
        depthwise_conv2d_backward_weight(0, d, static_cast<const float*>(x),
                                         static_cast<const float*>(dy), static_cast<float*>(dw),
                                         nullptr, ws.get(), stream());
      });
      KCUDA_CHECK_LAUNCH("conv2d backward (depthwise)");
      return;
    }
    const int64_t rows = sh.n * sh.p;
    if (rows == 0) {
      KCUDA_CHECK(cudaMemsetAsync(dw, 0, sizeof(T) * per, stream()));
      return;
    }
    // Enough chunks that (chunks x per) threads fill the GPU a few times over.
    const int64_t want = std::max<int64_t>(1, int64_t(sm_count()) * 2048 * 2 / per);
    const int64_t chunks = std::clamp<int64_t>(want, 1, std::min<int64_t>(rows, 65535));
    const int64_t chunk_rows = (rows + chunks - 1) / chunks;
    const int64_t used = (rows + chunk_rows - 1) / chunk_rows;
    Scratch part(sizeof(T) * per * used);
    const dim3 grid(
        static_cast<unsigned>(std::min<int64_t>((per + kThreads - 1) / kThreads, INT_MAX)),
        static_cast<unsigned>(used));
    dw_weight_partial_kernel<T>
        <<<grid, kThreads, 0, stream()>>>(sh, chunk_rows, static_cast<const T*>(x),
                                          static_cast<const T*>(dy), static_cast<T*>(part.get()));
    KCUDA_CHECK_LAUNCH("conv2d backward (depthwise)");
    sum_chunks_kernel<T><<<grid_for(per, kThreads), kThreads, 0, stream()>>>(
        per, used, static_cast<const T*>(part.get()), static_cast<T*>(dw));
    KCUDA_CHECK_LAUNCH("conv2d backward (depthwise)");
  });
}

}  // namespace kernels::cuda
