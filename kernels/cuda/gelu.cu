// kernels/cuda/gelu.cu — GELU (erf form) forward and backward, plain and with a fused bias.
//
//   gelu(x)  = x * Phi(x),  Phi(x) = 0.5 * erfc(-x / sqrt(2))
//   gelu'(x) = Phi(x) + x * phi(x),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
// Phi is computed as 0.5 * erfc(-x/sqrt 2), not 0.5 * (1 + erf(x/sqrt 2)): for x << 0 the sum
// 1 + erf cancels to a few ulps of 1 (gelu(-5) = -1.4e-6 would carry ~10% error); erfc keeps
// full relative precision in the tail at a few more instructions, which a memory-bound kernel
// does not notice.
// Layout: flat arrays; the bias variants see a contiguous [rows, C] array (the channels of
// NHWC pixels, or the features of a Linear output) and add b[c] along the last dim.
//
// Versions:
//   gelu_forward / gelu_backward (0 = 2):
//     v1  scalar grid-stride loop: one 4-byte load and store per element.
//     v2  float4: 16-byte loads/stores, two independent float4 per thread per iteration so
//         each thread has 32 bytes (forward) or 64 (backward) in flight before it computes;
//         the n % 4 tail is done by block 0. Falls back to v1 on unaligned pointers.
//   bias_gelu_forward / bias_gelu_backward (0 = 3):
//     v1  composed, the slow twin a fused kernel is checked against: one pass adds the bias
//         into the output (the backward: into a scratch buffer), a second applies gelu / gelu'.
//         Twice the traffic.
//     v2  fused, scalar: gelu(x + b[c]) in one pass. The column c is carried along the
//         grid-stride loop (c += stride % C, wrap once) instead of a 64-bit modulo per element.
//     v3  fused, float4 along C (C % 4 == 0 and aligned pointers, else v2): the bias float4 is
//         read from L1 (C floats, reused by every row).
//   -Xptxas -v (sm_90, nvcc 13.0): every kernel under 40 registers, no spills.
//
// Roofline, float32, H100 at 2.6 TB/s (FLOPs ~20/element: never the limit):
//   forward  8 bytes/element, backward 12, forward+backward 20.
//     [64,56,56,96]  19.3 M elements: forward 154 MB -> 59.3 us (PyTorch 0.061 ms, not flushed),
//                    forward+backward 385 MB -> 148 us (PyTorch 0.238 ms)
//     [64,14,14,384]  4.8 M: forward+backward 96 MB -> 37.1 us (PyTorch 0.143 ms)
//     [64,7,7,768]    2.4 M: forward+backward 48 MB -> 18.5 us (PyTorch 0.142 ms)
//     bias_gelu on ConvNeXt stage 1's MLP hidden [64,56,56,384]: 77 M elements, forward
//     617 MB -> 237 us (v1 composed moves 4x the bytes of x: 1.23 GB -> 474 us).
//   Target: >= 2.0 TB/s (77% of the copy rate).
// No __restrict__ and no ld.global.nc here: callers may run these in place (y == x).
#include <algorithm>
#include <string>

#include "kernels/cuda/gelu.h"
#include "kernels/cuda/labs_common.cuh"

namespace kernels::cuda {

namespace {

using labs::ceil_div;

constexpr int kThreads = 256;

__device__ __forceinline__ float gelu_f(float x) {
  return 0.5f * x * erfcf(-x * 0.70710678118654752f);
}
__device__ __forceinline__ float gelu_grad_f(float x) {
  float cdf = 0.5f * erfcf(-x * 0.70710678118654752f);
  float pdf = 0.39894228040143268f * expf(-0.5f * x * x);
  return fmaf(x, pdf, cdf);
}
__device__ __forceinline__ float4 gelu4(float4 v) {
  return make_float4(gelu_f(v.x), gelu_f(v.y), gelu_f(v.z), gelu_f(v.w));
}
__device__ __forceinline__ float4 gelu_bwd4(float4 v, float4 d) {
  return make_float4(d.x * gelu_grad_f(v.x), d.y * gelu_grad_f(v.y), d.z * gelu_grad_f(v.z),
                     d.w * gelu_grad_f(v.w));
}
__device__ __forceinline__ float4 add4(float4 a, float4 b) {
  return make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
}

__device__ __forceinline__ int64_t thread_index() {
  return blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
}
__device__ __forceinline__ int64_t grid_stride() { return int64_t(gridDim.x) * blockDim.x; }

// ---- v1: scalar ------------------------------------------------------------------------------

__global__ void gelu_fwd_v1(const float* x, float* y, int64_t n) {
  for (int64_t i = thread_index(); i < n; i += grid_stride()) y[i] = gelu_f(x[i]);
}
__global__ void gelu_bwd_v1(const float* x, const float* dy, float* dx, int64_t n) {
  for (int64_t i = thread_index(); i < n; i += grid_stride()) dx[i] = dy[i] * gelu_grad_f(x[i]);
}

// ---- v2: float4, two per thread per iteration ------------------------------------------------

__global__ void __launch_bounds__(kThreads) gelu_fwd_v2(const float* x, float* y, int64_t n) {
  const int64_t n4 = n / 4, stride = grid_stride();
  const float4* x4 = reinterpret_cast<const float4*>(x);
  float4* y4 = reinterpret_cast<float4*>(y);
  for (int64_t i = thread_index(); i < n4; i += 2 * stride) {
    const bool second = i + stride < n4;
    float4 a = x4[i];
    float4 b = second ? x4[i + stride] : a;  // both loads issue before any math
    y4[i] = gelu4(a);
    if (second) y4[i + stride] = gelu4(b);
  }
  if (blockIdx.x == 0 && threadIdx.x < n - 4 * n4) {
    int64_t i = 4 * n4 + threadIdx.x;
    y[i] = gelu_f(x[i]);
  }
}

__global__ void __launch_bounds__(kThreads)
    gelu_bwd_v2(const float* x, const float* dy, float* dx, int64_t n) {
  const int64_t n4 = n / 4, stride = grid_stride();
  const float4* x4 = reinterpret_cast<const float4*>(x);
  const float4* d4 = reinterpret_cast<const float4*>(dy);
  float4* o4 = reinterpret_cast<float4*>(dx);
  for (int64_t i = thread_index(); i < n4; i += 2 * stride) {
    const bool second = i + stride < n4;
    float4 a = x4[i], da = d4[i];
    float4 b = second ? x4[i + stride] : a, db = second ? d4[i + stride] : da;
    o4[i] = gelu_bwd4(a, da);
    if (second) o4[i + stride] = gelu_bwd4(b, db);
  }
  if (blockIdx.x == 0 && threadIdx.x < n - 4 * n4) {
    int64_t i = 4 * n4 + threadIdx.x;
    dx[i] = dy[i] * gelu_grad_f(x[i]);
  }
}

// ---- bias: composed (v1), fused scalar (v2), fused float4 (v3) --------------------------------

// out[i] = x[i] + b[i % C] over rows*C elements (v1's first pass).
__global__ void add_bias_v1(const float* x, const float* b, float* out, int64_t n, int C) {
  for (int64_t i = thread_index(); i < n; i += grid_stride()) out[i] = x[i] + b[i % C];
}

// The column of element i, carried along the loop: c advances by stride % C and wraps once.
__global__ void bias_gelu_fwd_v2(const float* x, const float* b, float* y, int64_t n, int C) {
  const int64_t stride = grid_stride();
  const int step = int(stride % C);
  int64_t i = thread_index();
  int c = int(i % C);
  for (; i < n; i += stride) {
    y[i] = gelu_f(x[i] + b[c]);
    c += step;
    if (c >= C) c -= C;
  }
}
__global__ void bias_gelu_bwd_v2(const float* x, const float* b, const float* dy, float* dx,
                                 int64_t n, int C) {
  const int64_t stride = grid_stride();
  const int step = int(stride % C);
  int64_t i = thread_index();
  int c = int(i % C);
  for (; i < n; i += stride) {
    dx[i] = dy[i] * gelu_grad_f(x[i] + b[c]);
    c += step;
    if (c >= C) c -= C;
  }
}

// In float4 units: n4 = rows*C/4, C4 = C/4 (C % 4 == 0, so a float4 never straddles rows).
__global__ void __launch_bounds__(kThreads)
    bias_gelu_fwd_v3(const float* x, const float* b, float* y, int64_t n4, int C4) {
  const int64_t stride = grid_stride();
  const int step = int(stride % C4);
  const float4* x4 = reinterpret_cast<const float4*>(x);
  const float4* b4 = reinterpret_cast<const float4*>(b);
  float4* y4 = reinterpret_cast<float4*>(y);
  int64_t i = thread_index();
  int c = int(i % C4);
  for (; i < n4; i += stride) {
    y4[i] = gelu4(add4(x4[i], b4[c]));
    c += step;
    if (c >= C4) c -= C4;
  }
}
__global__ void __launch_bounds__(kThreads)
    bias_gelu_bwd_v3(const float* x, const float* b, const float* dy, float* dx, int64_t n4,
                     int C4) {
  const int64_t stride = grid_stride();
  const int step = int(stride % C4);
  const float4* x4 = reinterpret_cast<const float4*>(x);
  const float4* b4 = reinterpret_cast<const float4*>(b);
  const float4* d4 = reinterpret_cast<const float4*>(dy);
  float4* o4 = reinterpret_cast<float4*>(dx);
  int64_t i = thread_index();
  int c = int(i % C4);
  for (; i < n4; i += stride) {
    o4[i] = gelu_bwd4(add4(x4[i], b4[c]), d4[i]);
    c += step;
    if (c >= C4) c -= C4;
  }
}

// ---- launchers -------------------------------------------------------------------------------

// Enough blocks to fill every SM (2048 threads each), never more than the work needs.
unsigned grid_for(int64_t work) {
  int64_t full = int64_t(labs::sm_count()) * (2048 / kThreads);
  return unsigned(std::max<int64_t>(1, std::min<int64_t>(full, ceil_div(work, kThreads))));
}

int resolve(int version, int newest, const char* op) {
  if (version < 0 || version > newest) {
    labs::fail(std::string(op) + ": version " + std::to_string(version) + " does not exist (0.." +
               std::to_string(newest) + ")");
  }
  return version == 0 ? newest : version;
}

bool aligned(std::initializer_list<const void*> ps) {
  for (const void* p : ps)
    if (!labs::aligned16(p)) return false;
  return true;
}

void check_sizes(int64_t rows, int C, const void* bias, const char* op) {
  if (bias == nullptr) labs::fail(std::string(op) + ": bias is null");
  if (rows < 0 || C < 1) {
    labs::fail(std::string(op) + ": need rows >= 0 and C >= 1, got rows " + std::to_string(rows) +
               ", C " + std::to_string(C));
  }
}

}  // namespace

void gelu_forward(int version, const float* x, float* y, int64_t n, cudaStream_t stream) {
  const char* op = "gelu_forward";
  version = resolve(version, kGeluVersions, op);
  if (n < 0) labs::fail(std::string(op) + ": negative size");
  if (n == 0) return;
  if (version == 2 && !aligned({x, y})) version = 1;
  if (version == 1) {
    gelu_fwd_v1<<<grid_for(n), kThreads, 0, stream>>>(x, y, n);
  } else {
    gelu_fwd_v2<<<grid_for(ceil_div(n, 8)), kThreads, 0, stream>>>(x, y, n);
  }
  labs::check_launch(op);
}

void gelu_backward(int version, const float* x, const float* dy, float* dx, int64_t n,
                   cudaStream_t stream) {
  const char* op = "gelu_backward";
  version = resolve(version, kGeluVersions, op);
  if (n < 0) labs::fail(std::string(op) + ": negative size");
  if (n == 0) return;
  if (version == 2 && !aligned({x, dy, dx})) version = 1;
  if (version == 1) {
    gelu_bwd_v1<<<grid_for(n), kThreads, 0, stream>>>(x, dy, dx, n);
  } else {
    gelu_bwd_v2<<<grid_for(ceil_div(n, 8)), kThreads, 0, stream>>>(x, dy, dx, n);
  }
  labs::check_launch(op);
}

void bias_gelu_forward(int version, const float* x, const float* bias, float* y, int64_t rows,
                       int C, cudaStream_t stream) {
  const char* op = "bias_gelu_forward";
  version = resolve(version, kBiasGeluVersions, op);
  check_sizes(rows, C, bias, op);
  const int64_t n = rows * C;
  if (n == 0) return;
  if (version == 3 && (C % 4 != 0 || !aligned({x, bias, y}))) version = 2;
  if (version == 1) {
    add_bias_v1<<<grid_for(n), kThreads, 0, stream>>>(x, bias, y, n, C);
    labs::check_launch(op);
    gelu_fwd_v1<<<grid_for(n), kThreads, 0, stream>>>(y, y, n);
  } else if (version == 2) {
    bias_gelu_fwd_v2<<<grid_for(n), kThreads, 0, stream>>>(x, bias, y, n, C);
  } else {
    bias_gelu_fwd_v3<<<grid_for(n / 4), kThreads, 0, stream>>>(x, bias, y, n / 4, C / 4);
  }
  labs::check_launch(op);
}

void bias_gelu_backward(int version, const float* x, const float* bias, const float* dy, float* dx,
                        int64_t rows, int C, cudaStream_t stream) {
  const char* op = "bias_gelu_backward";
  version = resolve(version, kBiasGeluVersions, op);
  check_sizes(rows, C, bias, op);
  const int64_t n = rows * C;
  if (n == 0) return;
  if (version == 3 && (C % 4 != 0 || !aligned({x, bias, dy, dx}))) version = 2;
  if (version == 1) {
    // x + b goes to scratch, not dx: dx may be dy (in place).
    labs::Workspace tmp(nullptr, size_t(n) * sizeof(float), stream);
    add_bias_v1<<<grid_for(n), kThreads, 0, stream>>>(x, bias, tmp.as<float>(), n, C);
    labs::check_launch(op);
    gelu_bwd_v1<<<grid_for(n), kThreads, 0, stream>>>(tmp.as<float>(), dy, dx, n);
  } else if (version == 2) {
    bias_gelu_bwd_v2<<<grid_for(n), kThreads, 0, stream>>>(x, bias, dy, dx, n, C);
  } else {
    bias_gelu_bwd_v3<<<grid_for(n / 4), kThreads, 0, stream>>>(x, bias, dy, dx, n / 4, C / 4);
  }
  labs::check_launch(op);
}

}  // namespace kernels::cuda
