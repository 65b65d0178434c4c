// kernels/cuda/gelu.cu — GELU (erf form) forward and backward, plain and with a fused bias.
//
//   gelu(x)  = x * Phi(x),  Phi(x) = 0.5 * erfc(-x / sqrt(2))
//   gelu'(x) = Phi(x) + x * phi(x),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
// Phi is computed as 0.5 * erfc(-x/sqrt 2), not 0.5 * (1 + erf(x/sqrt 2)), which cancels for
// x << 0 (gelu_math.cuh: gelu_at / gelu_grad_at, shared with the GEMM's GELU fusions); erfc
// costs a few more instructions, which a memory-bound kernel does not notice.
// Layout: flat arrays; the bias variants see a contiguous [rows, C] array (the channels of
// NHWC pixels, or the features of a Linear output) and add b[c] along the last dim.
//
// Versions:
//   gelu_forward / gelu_backward (0 = 2, gelu.h's kGeluFastest):
//     v1  scalar grid-stride loop: one 4-byte load and store per element.
//     v2  float4: 16-byte loads/stores, two independent float4 per thread per iteration so
//         each thread has 32 bytes (forward) or 64 (backward) in flight before it computes;
//         the n % 4 tail is done by block 0. Falls back to v1 on unaligned pointers.
//     v3  no loop: a block per 1,024 float4s, each thread loads its four before any math
//         (64 bytes in flight, 128 backward), and the SM starts a new block as each one ends,
//         as PyTorch's elementwise kernels run (PyTorch's forward reached 90% of the H200's
//         copy rate, v2 80%). Falls back to v1 on unaligned pointers. Not yet timed on a GPU.
//   bias_gelu_forward / bias_gelu_backward (0 = 3):
//     v1  composed, the slow twin a fused kernel is checked against: one pass adds the bias
//         into the output (the backward: into a scratch buffer), a second applies gelu / gelu'.
//         Twice the traffic.
//     v2  fused, scalar: gelu(x + b[c]) in one pass. The column c is carried along the
//         grid-stride loop (c += stride % C, wrap once) instead of a 64-bit modulo per element.
//     v3  fused, float4 along C (C % 4 == 0 and aligned pointers, else v2): the bias float4 is
//         read from L1 (C floats, reused by every row).
//   bias_gelu_backward_dbias, dx and the bias gradient dbias[c] = sum over rows of dx[r, c]
//   (0 = 2, kBiasGeluDbiasFastest):
//     v1  bias_gelu_backward v0, then a column-sum pass that reads dx again (16 bytes/element).
//     v2  the column-sum kernel computes dx itself, stores it and sums it: 12 bytes/element, the
//         sum rides along for free. Both use one kernel shape: a block is `lanes` x W threads
//         over W float4 columns (float for C % 4 != 0 or unaligned pointers) and a chunk of
//         rows; thread (lane, q) walks every lanes-th row of the chunk in column q keeping a
//         running sum, the lanes' sums are added in shared memory in lane order into the
//         block's partial row, and a second tiny kernel adds the chunks' rows (a warp per
//         column, in a fixed order).
//         ConvNeXt-T stage 1 (C = 384, 200,704 rows): 924 MB -> 355 us at 2.6 TB/s, where the
//         unfused pair moves 1.23 GB (474 us).
//     v3  v2's pass with two rows per thread per step, both loaded before either is stored
//         (dx may be dy, so the compiler cannot hoist a later row's loads over a store), and
//         as many blocks as fit on the GPU at once (v2 runs 4 per SM: at C = 384 that is
//         blocks of 192 threads, 768 threads an SM, and it reached 47% of the H200's copy rate
//         where bias_gelu_backward v3 reached 85%). The sums take the rows in the same order.
//         Not yet timed.
//     Each can also write y = gelu(x + b) (engine::mlp, which does not keep the forward's
//     output, recomputes it here for the second Linear's weight gradient): v2 and v3 in the
//     same pass (+4 bytes/element), v1 with bias_gelu_forward.
//   -Xptxas -v (sm_90, nvcc 13.0): no spills; 27-40 registers, except the float4 column-sum
//   kernels (v2 48, v3 58) and gelu_backward v3 (48).
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
#include "kernels/cuda/gelu_math.cuh"
#include "kernels/cuda/labs_common.cuh"

namespace kernels::cuda {

namespace {

using labs::ceil_div;

constexpr int kThreads = 256;

__device__ __forceinline__ float4 gelu4(float4 v) {
  return make_float4(gelu_at(v.x), gelu_at(v.y), gelu_at(v.z), gelu_at(v.w));
}
__device__ __forceinline__ float4 gelu_bwd4(float4 v, float4 d) {
  return make_float4(d.x * gelu_grad_at(v.x), d.y * gelu_grad_at(v.y), d.z * gelu_grad_at(v.z),
                     d.w * gelu_grad_at(v.w));
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
  for (int64_t i = thread_index(); i < n; i += grid_stride()) y[i] = gelu_at(x[i]);
}
__global__ void gelu_bwd_v1(const float* x, const float* dy, float* dx, int64_t n) {
  for (int64_t i = thread_index(); i < n; i += grid_stride()) dx[i] = dy[i] * gelu_grad_at(x[i]);
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
    y[i] = gelu_at(x[i]);
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
    dx[i] = dy[i] * gelu_grad_at(x[i]);
  }
}

// ---- v3: one-shot grid, four float4 per thread, loads first ---------------------------------
// No loop. Block b owns float4s [b * 1024, (b + 1) * 1024); thread t takes t, t + 256, t + 512
// and t + 768 of them (each warp's loads one 512-byte span) and issues all its loads before any
// math. v2's loop cannot do that across iterations: its stores may not move past the next
// iteration's loads (y may be x, so the compiler must assume they overlap). Here the grid is as
// large as the data (ConvNeXt-T stage 1: 4,704 blocks) and the SM starts a new block whenever one
// finishes, as PyTorch's elementwise kernels do. The n % 4 tail is the last block's.
constexpr int kPerThread = 4;  // float4s per thread in v3
constexpr int64_t kPerBlock = int64_t(kThreads) * kPerThread;

__global__ void __launch_bounds__(kThreads) gelu_fwd_v3(const float* x, float* y, int64_t n) {
  const int64_t n4 = n / 4, first = blockIdx.x * kPerBlock + threadIdx.x;
  const float4* x4 = reinterpret_cast<const float4*>(x);
  float4* y4 = reinterpret_cast<float4*>(y);
  float4 v[kPerThread] = {};
#pragma unroll
  for (int u = 0; u < kPerThread; ++u)
    if (first + u * kThreads < n4) v[u] = x4[first + u * kThreads];
#pragma unroll
  for (int u = 0; u < kPerThread; ++u)
    if (first + u * kThreads < n4) y4[first + u * kThreads] = gelu4(v[u]);
  if (blockIdx.x == gridDim.x - 1 && threadIdx.x < n - 4 * n4) {
    const int64_t i = 4 * n4 + threadIdx.x;
    y[i] = gelu_at(x[i]);
  }
}

__global__ void __launch_bounds__(kThreads)
    gelu_bwd_v3(const float* x, const float* dy, float* dx, int64_t n) {
  const int64_t n4 = n / 4, first = blockIdx.x * kPerBlock + threadIdx.x;
  const float4* x4 = reinterpret_cast<const float4*>(x);
  const float4* d4 = reinterpret_cast<const float4*>(dy);
  float4* o4 = reinterpret_cast<float4*>(dx);
  float4 v[kPerThread] = {}, d[kPerThread] = {};
#pragma unroll
  for (int u = 0; u < kPerThread; ++u) {
    if (first + u * kThreads < n4) {
      v[u] = x4[first + u * kThreads];
      d[u] = d4[first + u * kThreads];
    }
  }
#pragma unroll
  for (int u = 0; u < kPerThread; ++u)
    if (first + u * kThreads < n4) o4[first + u * kThreads] = gelu_bwd4(v[u], d[u]);
  if (blockIdx.x == gridDim.x - 1 && threadIdx.x < n - 4 * n4) {
    const int64_t i = 4 * n4 + threadIdx.x;
    dx[i] = dy[i] * gelu_grad_at(x[i]);
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
    y[i] = gelu_at(x[i] + b[c]);
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
    dx[i] = dy[i] * gelu_grad_at(x[i] + b[c]);
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

// ---- bias gradient: column sums of dx, optionally fused with computing dx ---------------------

__device__ __forceinline__ float vadd(float a, float b) { return a + b; }
__device__ __forceinline__ float4 vadd(float4 a, float4 b) { return add4(a, b); }
__device__ __forceinline__ float vgelu_bwd(float v, float d) { return d * gelu_grad_at(v); }
__device__ __forceinline__ float4 vgelu_bwd(float4 v, float4 d) { return gelu_bwd4(v, d); }
template <class V>
__device__ __forceinline__ V vzero() {
  if constexpr (sizeof(V) == 16) return make_float4(0.f, 0.f, 0.f, 0.f);
  else return 0.f;
}

__device__ __forceinline__ float vgelu(float v) { return gelu_at(v); }
__device__ __forceinline__ float4 vgelu(float4 v) { return gelu4(v); }

// V = float4 (C % 4 == 0, aligned) or float; cv = C / (sizeof(V) / 4) columns of V. Grid
// (chunks, column tiles), block lanes * w threads (w columns of the tile, `lanes` rows at a
// time). kFused: dx = dy * gelu'(x + b) is computed, stored and summed (and gelu(x + b) stored
// to y when y is not null); else dx is only read. kRows rows per thread per step (v2: 1,
// v3: 2), all of them loaded before any is stored; the running sum still takes the rows in
// order, so the result does not depend on kRows. partial: [chunks, cv] of V.
template <class V, bool kFused, int kRows>
__global__ void __launch_bounds__(kThreads)
    bias_grad_partial(const float* x, const float* b, const float* dy, float* dx, float* y,
                      float* partial, int64_t rows, int cv, int w, int lanes,
                      int64_t chunk_rows) {
  __shared__ V red[kThreads];
  const int tid = threadIdx.x, q = tid % w, lane = tid / w;
  const int col = blockIdx.y * w + q;
  const bool active = col < cv;  // the last tile may be narrower than w
  const int64_t r0 = blockIdx.x * chunk_rows, r1 = min(rows, r0 + chunk_rows);
  const V* xv = reinterpret_cast<const V*>(x);
  const V* dyv = reinterpret_cast<const V*>(dy);
  V* dxv = reinterpret_cast<V*>(dx);
  V* yv = reinterpret_cast<V*>(y);
  V acc = vzero<V>();
  if (active) {
    const V bias = kFused ? reinterpret_cast<const V*>(b)[col] : vzero<V>();
    for (int64_t r = r0 + lane; r < r1; r += int64_t(kRows) * lanes) {
      V xs[kRows], ds[kRows];  // loads first: dx may be dy, so no store may come before them
#pragma unroll
      for (int u = 0; u < kRows; ++u) {
        const int64_t i = (r + int64_t(u) * lanes) * cv + col;
        const bool in = r + int64_t(u) * lanes < r1;
        if constexpr (kFused) {
          xs[u] = in ? xv[i] : vzero<V>();
          ds[u] = in ? dyv[i] : vzero<V>();
        } else {
          ds[u] = in ? dxv[i] : vzero<V>();
        }
      }
#pragma unroll
      for (int u = 0; u < kRows; ++u) {
        if (r + int64_t(u) * lanes >= r1) break;
        const int64_t i = (r + int64_t(u) * lanes) * cv + col;
        V d = ds[u];
        if constexpr (kFused) {
          const V v = vadd(xs[u], bias);
          d = vgelu_bwd(v, ds[u]);
          dxv[i] = d;
          if (y) yv[i] = vgelu(v);
        }
        acc = vadd(acc, d);
      }
    }
  }
  red[tid] = acc;
  __syncthreads();
  if (lane != 0 || !active) return;
  for (int l = 1; l < lanes; ++l) acc = vadd(acc, red[l * w + q]);
  reinterpret_cast<V*>(partial)[blockIdx.x * int64_t(cv) + col] = acc;
}

// dbias[c] = sum over chunks k of partial[k][c]; one warp per column: lane l adds chunks l,
// l + 32, ... in order, then the lanes meet in a fixed xor tree (the same order every run).
// A thread per column adding the ~500 chunks of an H100's grid in order was a chain of
// dependent L2 reads that cost more than the pass itself at ConvNeXt-T's stage-3 shapes.
__global__ void bias_grad_sum(const float* partial, int64_t chunks, int C, float* dbias) {
  const int c = (blockIdx.x * blockDim.x + threadIdx.x) / 32, lane = threadIdx.x % 32;
  if (c >= C) return;  // whole warps: blockDim.x is a multiple of 32
  float s = 0.f;
  for (int64_t k = lane; k < chunks; k += 32) s += partial[k * C + c];
  s = labs::warp_sum(s);
  if (lane == 0) dbias[c] = s;
}

// How bias_grad_partial covers [rows, C]: `width` floats per column element (4 or 1). v1 and
// v2 run about 4 blocks per SM in all, v3 as many as fit on the GPU at once (its registers
// decide: 58 for float4, 5 blocks of 192 threads an SM at C = 384, where v2 ran 4).
struct BiasGradPlan {
  int width, cv, w, lanes, tiles, rows_per_step;
  int64_t chunks, chunk_rows;
};
BiasGradPlan bias_grad_plan(int64_t rows, int C, int width, int version) {
  BiasGradPlan p{};
  p.width = width;
  p.cv = C / width;
  p.tiles = int(ceil_div(p.cv, 128));             // at most 128 columns per block
  p.w = int(ceil_div(p.cv, p.tiles));
  p.lanes = std::max(1, kThreads / p.w);          // rows walked at once (>= 2 when w <= 128)
  p.rows_per_step = version == 3 ? 2 : 1;
  int64_t blocks = int64_t(labs::sm_count()) * 4;
  if (version == 3) {  // v3 is always the fused kernel
    const void* kernel =
        width == 4 ? reinterpret_cast<const void*>(bias_grad_partial<float4, true, 2>)
                   : reinterpret_cast<const void*>(bias_grad_partial<float, true, 2>);
    blocks = labs::resident_blocks(kernel, p.lanes * p.w, 0);
  }
  // Each block walks at least 4 steps per lane.
  const int64_t want = std::max<int64_t>(1, blocks / p.tiles);
  p.chunks = std::clamp<int64_t>(
      want, 1, std::max<int64_t>(1, rows / (4 * int64_t(p.rows_per_step) * p.lanes)));
  p.chunk_rows = ceil_div(std::max<int64_t>(rows, 1), p.chunks);
  p.chunks = ceil_div(std::max<int64_t>(rows, 1), p.chunk_rows);
  return p;
}

// ---- launchers -------------------------------------------------------------------------------

// Enough blocks to fill every SM (2048 threads each), never more than the work needs.
unsigned grid_for(int64_t work) {
  int64_t full = int64_t(labs::sm_count()) * (2048 / kThreads);
  return unsigned(std::max<int64_t>(1, std::min<int64_t>(full, ceil_div(work, kThreads))));
}

// v3's grid: a block per 1,024 float4s, at least one (the tail's).
unsigned one_shot_grid(int64_t n) {
  const int64_t blocks = std::max<int64_t>(1, ceil_div(n / 4, kPerBlock));
  if (blocks > 0x7fffffff) labs::fail("gelu: " + std::to_string(n) + " elements is too many");
  return unsigned(blocks);
}

// Version 0 is `fastest`, the one measured fastest on a GPU (gelu.h).
int resolve(int version, int newest, int fastest, const char* op) {
  if (version < 0 || version > newest) {
    labs::fail(std::string(op) + ": version " + std::to_string(version) + " does not exist (0.." +
               std::to_string(newest) + ")");
  }
  return version == 0 ? fastest : version;
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
  version = resolve(version, kGeluVersions, kGeluFastest, op);
  if (n < 0) labs::fail(std::string(op) + ": negative size");
  if (n == 0) return;
  if (version >= 2 && !aligned({x, y})) version = 1;
  if (version == 1) {
    gelu_fwd_v1<<<grid_for(n), kThreads, 0, stream>>>(x, y, n);
  } else if (version == 2) {
    gelu_fwd_v2<<<grid_for(ceil_div(n, 8)), kThreads, 0, stream>>>(x, y, n);
  } else {
    gelu_fwd_v3<<<one_shot_grid(n), kThreads, 0, stream>>>(x, y, n);
  }
  labs::check_launch(op);
}

void gelu_backward(int version, const float* x, const float* dy, float* dx, int64_t n,
                   cudaStream_t stream) {
  const char* op = "gelu_backward";
  version = resolve(version, kGeluVersions, kGeluFastest, op);
  if (n < 0) labs::fail(std::string(op) + ": negative size");
  if (n == 0) return;
  if (version >= 2 && !aligned({x, dy, dx})) version = 1;
  if (version == 1) {
    gelu_bwd_v1<<<grid_for(n), kThreads, 0, stream>>>(x, dy, dx, n);
  } else if (version == 2) {
    gelu_bwd_v2<<<grid_for(ceil_div(n, 8)), kThreads, 0, stream>>>(x, dy, dx, n);
  } else {
    gelu_bwd_v3<<<one_shot_grid(n), kThreads, 0, stream>>>(x, dy, dx, n);
  }
  labs::check_launch(op);
}

void bias_gelu_forward(int version, const float* x, const float* bias, float* y, int64_t rows,
                       int C, cudaStream_t stream) {
  const char* op = "bias_gelu_forward";
  version = resolve(version, kBiasGeluVersions, kBiasGeluVersions, op);
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
  version = resolve(version, kBiasGeluVersions, kBiasGeluVersions, op);
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

size_t bias_gelu_backward_dbias_workspace(int64_t rows, int C) {
  if (rows <= 0 || C < 1) return 0;
  size_t most = 0;  // whichever plan (float4 or float, any version) needs the most
  for (int width : {4, 1}) {
    if (C % width != 0) continue;
    for (int version = 1; version <= kBiasGeluDbiasVersions; ++version) {
      const BiasGradPlan p = bias_grad_plan(rows, C, width, version);
      most = std::max(most, size_t(p.chunks) * size_t(C) * sizeof(float));
    }
  }
  return most;
}

// The column-sum kernel for a plan: V, fused or not, rows per step.
template <class V, bool kFused>
void launch_bias_grad_partial(const BiasGradPlan& p, const float* x, const float* bias,
                              const float* dy, float* dx, float* y, float* part, int64_t rows,
                              cudaStream_t stream) {
  const dim3 grid(unsigned(p.chunks), unsigned(p.tiles));
  const int threads = p.lanes * p.w;
  if (p.rows_per_step == 2)
    bias_grad_partial<V, kFused, 2><<<grid, threads, 0, stream>>>(
        x, bias, dy, dx, y, part, rows, p.cv, p.w, p.lanes, p.chunk_rows);
  else
    bias_grad_partial<V, kFused, 1><<<grid, threads, 0, stream>>>(
        x, bias, dy, dx, y, part, rows, p.cv, p.w, p.lanes, p.chunk_rows);
}

void bias_gelu_backward_dbias(int version, const float* x, const float* bias, const float* dy,
                              float* dx, float* dbias, float* y, int64_t rows, int C,
                              void* workspace, cudaStream_t stream) {
  const char* op = "bias_gelu_backward_dbias";
  version = resolve(version, kBiasGeluDbiasVersions, kBiasGeluDbiasFastest, op);
  check_sizes(rows, C, bias, op);
  if (dbias == nullptr) labs::fail(std::string(op) + ": dbias is null");
  if (rows == 0) {  // an empty sum
    labs::check(cudaMemsetAsync(dbias, 0, size_t(C) * sizeof(float), stream), op);
    return;
  }
  if (version == 1) {
    if (y) bias_gelu_forward(0, x, bias, y, rows, C, stream);  // a pass of its own
    bias_gelu_backward(0, x, bias, dy, dx, rows, C, stream);
  }
  const bool vec = C % 4 == 0 && aligned({x, bias, dy, dx}) && (y == nullptr || aligned({y}));
  const BiasGradPlan p = bias_grad_plan(rows, C, vec ? 4 : 1, version);
  if (p.chunks > 65535 || p.tiles > 65535) labs::fail(std::string(op) + ": too many rows");
  labs::Workspace partial(workspace, size_t(p.chunks) * size_t(C) * sizeof(float), stream);
  float* part = partial.as<float>();
  if (vec && version >= 2)
    launch_bias_grad_partial<float4, true>(p, x, bias, dy, dx, y, part, rows, stream);
  else if (vec)
    launch_bias_grad_partial<float4, false>(p, x, bias, dy, dx, nullptr, part, rows, stream);
  else if (version >= 2)
    launch_bias_grad_partial<float, true>(p, x, bias, dy, dx, y, part, rows, stream);
  else
    launch_bias_grad_partial<float, false>(p, x, bias, dy, dx, nullptr, part, rows, stream);
  labs::check_launch(op);
  bias_grad_sum<<<unsigned(ceil_div(int64_t(C) * 32, kThreads)), kThreads, 0, stream>>>(
      part, p.chunks, C, dbias);
  labs::check_launch(op);
}

}  // namespace kernels::cuda
