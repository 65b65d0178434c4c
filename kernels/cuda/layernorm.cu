// kernels/cuda/layernorm.cu — LayerNorm over the last dim of a contiguous [rows, C] array
// (the channels of each NHWC pixel), forward saving mean and rstd, and backward.
//
//   forward:  mean, var (biased) per row; y = (x - mean) * rstd * w + b, rstd = 1/sqrt(var+eps)
//   backward: xhat = (x - mean) * rstd, g = dy * w
//             dx = rstd * (g - mean_c(g) - xhat * mean_c(g * xhat))
//             dw = sum over rows of dy * xhat,  db = sum over rows of dy
//
// Versions (launcher argument `version`; 0 = the fastest = 3):
//   v1  one thread per row: three passes over the row (mean, variance, output). A warp's 32
//       threads read 32 different rows, C floats apart: every load is its own transaction.
//       Backward: one thread per row for dx; dw/db by a second kernel, one thread per column
//       walking all rows (coalesced across columns, but only C threads).
//   v2  one warp per row: lanes stride the row 32 floats apart (coalesced), the sums are warp
//       shuffles (no shared memory). The three passes re-read the row from L1.
//       Backward: a warp per row for dx; each warp accumulates dw/db for its rows in its own
//       shared-memory row (no conflicts, no atomics inside the block), the block adds its warps
//       and issues one global atomicAdd per column ("limited atomics": blocks x C in total;
//       the result's rounding depends on the order blocks finish).
//   v3  a group of G lanes per row holding the whole row in registers as float4s: V float4 per
//       lane (C = 96: 8 lanes x 3, 192: 16 x 3, 384: 32 x 3, 768: 32 x 6; other C%4==0 up to
//       1024 use the nearest config with guards). One read of x, 16-byte loads and stores,
//       group-wide shuffles (G/2 .. 1); small C no longer idles most of a warp. Mean first,
//       then the variance from the registers (two-pass, no E[x^2]-E[x]^2 cancellation).
//       Backward: the same grouping; a persistent grid where each lane keeps dw/db partials
//       for its fixed columns in registers over all the rows it visits, the block sums its
//       groups in shared memory and writes one partial row per block; a second kernel adds
//       the partial rows in a fixed order (deterministic). Falls back to v2 when C % 4 != 0,
//       C > 1024 or a pointer is not 16-byte aligned.
//   -Xptxas -v (sm_90, nvcc 13.0): no spills; see kernels/README.md for registers per config.
//
// Roofline, float32, H100 at 2.6 TB/s (FLOPs ~7/element forward, ~12 backward: negligible):
//   forward  bytes = 8*rows*C (x in, y out) + 8*rows (mean, rstd)
//     [64,56,56,96]   155.7 MB ->  59.9 us   (target >= 1.5 TB/s = 104 us; PyTorch 0.32 ms)
//     [64,28,28,192]   77.5 MB ->  29.8 us
//     [64,14,14,384]   38.6 MB ->  14.8 us
//     [64,7,7,768]     19.3 MB ->   7.4 us
//   backward bytes = 12*rows*C (x, dy in, dx out) + 8*rows; dw/db partials are noise
//     [64,56,56,96]   232.8 MB ->  89.5 us   (PyTorch forward+backward 0.66 ms)
//     [64,14,14,384]   57.8 MB ->  22.2 us   (PyTorch forward+backward 0.22 ms)
//     [64,7,7,768]     28.9 MB ->  11.1 us   (PyTorch forward+backward 0.22 ms)
#include <algorithm>
#include <string>

#include "kernels/cuda/labs_common.cuh"
#include "kernels/cuda/layernorm.h"

namespace kernels::cuda {

namespace {

using labs::ceil_div;
using labs::group_sum;
using labs::warp_sum;

// ---- v1: one thread per row ----------------------------------------------------------------

__global__ void ln_fwd_v1(const float* __restrict__ x, const float* __restrict__ w,
                          const float* __restrict__ b, float* __restrict__ y,
                          float* __restrict__ mean, float* __restrict__ rstd, int64_t rows, int C,
                          float eps) {
  int64_t row = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (row >= rows) return;
  const float* xr = x + row * C;
  float s = 0.f;
  for (int j = 0; j < C; ++j) s += xr[j];
  const float m = s / C;
  float v = 0.f;
  for (int j = 0; j < C; ++j) {
    float d = xr[j] - m;
    v = fmaf(d, d, v);
  }
  const float rs = rsqrtf(v / C + eps);
  if (y != nullptr) {  // null: the statistics only
    float* yr = y + row * C;
    for (int j = 0; j < C; ++j) yr[j] = (xr[j] - m) * rs * (w ? w[j] : 1.f) + (b ? b[j] : 0.f);
  }
  if (mean) mean[row] = m;
  if (rstd) rstd[row] = rs;
}

__global__ void ln_bwd_dx_v1(const float* __restrict__ x, const float* __restrict__ dy,
                             const float* __restrict__ mean, const float* __restrict__ rstd,
                             const float* __restrict__ w, float* __restrict__ dx, int64_t rows,
                             int C) {
  int64_t row = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (row >= rows) return;
  const float* xr = x + row * C;
  const float* dyr = dy + row * C;
  const float m = mean[row], rs = rstd[row];
  float s1 = 0.f, s2 = 0.f;
  for (int j = 0; j < C; ++j) {
    float g = dyr[j] * (w ? w[j] : 1.f);
    s1 += g;
    s2 = fmaf(g, (xr[j] - m) * rs, s2);
  }
  s1 /= C;
  s2 /= C;
  for (int j = 0; j < C; ++j) {
    float g = dyr[j] * (w ? w[j] : 1.f);
    dx[row * C + j] = rs * (g - s1 - (xr[j] - m) * rs * s2);
  }
}

// One thread per column over every row.
__global__ void ln_bwd_params_v1(const float* __restrict__ x, const float* __restrict__ dy,
                                 const float* __restrict__ mean, const float* __restrict__ rstd,
                                 float* __restrict__ dw, float* __restrict__ db, int64_t rows,
                                 int C) {
  int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= C) return;
  float sw = 0.f, sb = 0.f;
  for (int64_t r = 0; r < rows; ++r) {
    float d = dy[r * C + j];
    sw = fmaf(d, (x[r * C + j] - mean[r]) * rstd[r], sw);
    sb += d;
  }
  if (dw) dw[j] = sw;
  if (db) db[j] = sb;
}

// ---- v2: one warp per row --------------------------------------------------------------------

__global__ void __launch_bounds__(256)
    ln_fwd_v2(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ b,
              float* __restrict__ y, float* __restrict__ mean, float* __restrict__ rstd,
              int64_t rows, int C, float eps) {
  const int lane = threadIdx.x & 31;
  const int64_t row = blockIdx.x * int64_t(blockDim.x / 32) + (threadIdx.x >> 5);
  if (row >= rows) return;  // uniform across the warp
  const float* xr = x + row * C;
  float s = 0.f;
  for (int j = lane; j < C; j += 32) s += xr[j];
  const float m = warp_sum(s) / C;
  float v = 0.f;
  for (int j = lane; j < C; j += 32) {
    float d = xr[j] - m;
    v = fmaf(d, d, v);
  }
  const float rs = rsqrtf(warp_sum(v) / C + eps);
  if (y != nullptr) {
    float* yr = y + row * C;
    for (int j = lane; j < C; j += 32)
      yr[j] = (xr[j] - m) * rs * (w ? w[j] : 1.f) + (b ? b[j] : 0.f);
  }
  if (lane == 0) {
    if (mean) mean[row] = m;
    if (rstd) rstd[row] = rs;
  }
}

// 128 threads; warps stride over rows. Shared memory: [4 warps][2][C] dw/db partials.
__global__ void __launch_bounds__(128)
    ln_bwd_v2(const float* __restrict__ x, const float* __restrict__ dy,
              const float* __restrict__ mean, const float* __restrict__ rstd,
              const float* __restrict__ w, float* __restrict__ dx, float* __restrict__ dw,
              float* __restrict__ db, int64_t rows, int C) {
  extern __shared__ float acc_v2[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const bool params = dw != nullptr || db != nullptr;
  float* pw = acc_v2 + warp * 2 * C;  // this warp's dw row, then its db row
  float* pb = pw + C;
  if (params) {
    for (int j = lane; j < C; j += 32) pw[j] = pb[j] = 0.f;
  }
  for (int64_t row = blockIdx.x * 4 + warp; row < rows; row += int64_t(gridDim.x) * 4) {
    const float* xr = x + row * C;
    const float* dyr = dy + row * C;
    const float m = mean[row], rs = rstd[row];
    float s1 = 0.f, s2 = 0.f;
    for (int j = lane; j < C; j += 32) {
      float d = dyr[j], xh = (xr[j] - m) * rs, g = d * (w ? w[j] : 1.f);
      s1 += g;
      s2 = fmaf(g, xh, s2);
      if (params) {
        pw[j] = fmaf(d, xh, pw[j]);
        pb[j] += d;
      }
    }
    s1 = warp_sum(s1) / C;
    s2 = warp_sum(s2) / C;
    if (dx) {
      for (int j = lane; j < C; j += 32) {
        float g = dyr[j] * (w ? w[j] : 1.f);
        dx[row * C + j] = rs * (g - s1 - (xr[j] - m) * rs * s2);
      }
    }
  }
  if (!params) return;
  __syncthreads();
  for (int j = threadIdx.x; j < C; j += blockDim.x) {
    float sw = 0.f, sb = 0.f;
    for (int k = 0; k < 4; ++k) {
      sw += acc_v2[k * 2 * C + j];
      sb += acc_v2[k * 2 * C + C + j];
    }
    if (dw) atomicAdd(dw + j, sw);
    if (db) atomicAdd(db + j, sb);
  }
}

// ---- v3: G lanes per row, the row in registers -----------------------------------------------

__device__ __forceinline__ float4 f4(float v) { return make_float4(v, v, v, v); }
__device__ __forceinline__ float hsum(float4 a) { return (a.x + a.y) + (a.z + a.w); }

// 256 threads = 256/G rows per block. Lane gl of a group holds float4 number gl + t*G of the
// row, t < V (consecutive lanes read consecutive 16 bytes: coalesced).
template <int G, int V>
__global__ void __launch_bounds__(256)
    ln_fwd_v3(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ b,
              float* __restrict__ y, float* __restrict__ mean, float* __restrict__ rstd,
              int64_t rows, int C, float eps) {
  constexpr int kRows = 256 / G;
  const int gl = threadIdx.x % G;  // lane within the row's group
  const int64_t row = blockIdx.x * int64_t(kRows) + threadIdx.x / G;
  // Lanes past the last row keep going with zeros: every lane of a warp must reach the
  // shuffles, and groups of one warp can straddle the end.
  const bool valid = row < rows;
  const int C4 = C / 4;
  const float4* xr = reinterpret_cast<const float4*>(x + (valid ? row : 0) * C);
  float4 v[V];
  float s = 0.f;
#pragma unroll
  for (int t = 0; t < V; ++t) {
    int f = gl + t * G;
    v[t] = (valid && f < C4) ? xr[f] : f4(0.f);
    s += hsum(v[t]);
  }
  const float m = group_sum<G>(s) / C;
  float var = 0.f;
#pragma unroll
  for (int t = 0; t < V; ++t) {
    if (gl + t * G < C4) {
      float4 d = make_float4(v[t].x - m, v[t].y - m, v[t].z - m, v[t].w - m);
      var += (d.x * d.x + d.y * d.y) + (d.z * d.z + d.w * d.w);
    }
  }
  const float rs = rsqrtf(group_sum<G>(var) / C + eps);
  if (!valid) return;  // no shuffles below
  if (y != nullptr) {  // null: the statistics only
    float4* yr = reinterpret_cast<float4*>(y + row * C);
#pragma unroll
    for (int t = 0; t < V; ++t) {
      int f = gl + t * G;
      if (f >= C4) continue;
      float4 wv = w ? reinterpret_cast<const float4*>(w)[f] : f4(1.f);
      float4 bv = b ? reinterpret_cast<const float4*>(b)[f] : f4(0.f);
      yr[f] = make_float4((v[t].x - m) * rs * wv.x + bv.x, (v[t].y - m) * rs * wv.y + bv.y,
                          (v[t].z - m) * rs * wv.z + bv.z, (v[t].w - m) * rs * wv.w + bv.w);
    }
  }
  if (gl == 0) {
    if (mean) mean[row] = m;
    if (rstd) rstd[row] = rs;
  }
}

// Persistent grid: block-uniform loop over row bases so every lane runs the same number of
// iterations (the shuffles need the whole warp). partial: [gridDim.x][2][C] (dw row, db row).
template <int G, int V>
__global__ void __launch_bounds__(256)
    ln_bwd_v3(const float* __restrict__ x, const float* __restrict__ dy,
              const float* __restrict__ mean, const float* __restrict__ rstd,
              const float* __restrict__ w, float* __restrict__ dx, float* __restrict__ partial,
              int64_t rows, int C) {
  constexpr int kRows = 256 / G;
  __shared__ __align__(16) float red[kRows * G * V * 4];  // [group][C] for the block sum
  const int gl = threadIdx.x % G, group = threadIdx.x / G;
  const int C4 = C / 4;
  const float invC = 1.f / C;
  float4 wv[V], pw[V], pb[V];
#pragma unroll
  for (int t = 0; t < V; ++t) {
    int f = gl + t * G;
    wv[t] = f < C4 ? (w ? reinterpret_cast<const float4*>(w)[f] : f4(1.f)) : f4(0.f);
    pw[t] = f4(0.f);
    pb[t] = f4(0.f);
  }
  for (int64_t base = blockIdx.x * int64_t(kRows); base < rows;
       base += int64_t(gridDim.x) * kRows) {
    const int64_t row = base + group;
    const bool valid = row < rows;
    const float m = valid ? mean[row] : 0.f, rs = valid ? rstd[row] : 0.f;
    const float4* xr = reinterpret_cast<const float4*>(x + (valid ? row : 0) * C);
    const float4* dyr = reinterpret_cast<const float4*>(dy + (valid ? row : 0) * C);
    float4 xh[V], g[V];
    float s1 = 0.f, s2 = 0.f;
#pragma unroll
    for (int t = 0; t < V; ++t) {
      int f = gl + t * G;
      float4 xv = f4(0.f), dv = f4(0.f);
      if (valid && f < C4) xv = xr[f], dv = dyr[f];
      // Zero x and dy give zero xhat (rs = 0 for invalid rows) and zero contributions.
      xh[t] = make_float4((xv.x - m) * rs, (xv.y - m) * rs, (xv.z - m) * rs, (xv.w - m) * rs);
      if (!(valid && f < C4)) xh[t] = f4(0.f);
      g[t] = make_float4(dv.x * wv[t].x, dv.y * wv[t].y, dv.z * wv[t].z, dv.w * wv[t].w);
      s1 += hsum(g[t]);
      s2 += (g[t].x * xh[t].x + g[t].y * xh[t].y) + (g[t].z * xh[t].z + g[t].w * xh[t].w);
      pw[t] = make_float4(fmaf(dv.x, xh[t].x, pw[t].x), fmaf(dv.y, xh[t].y, pw[t].y),
                          fmaf(dv.z, xh[t].z, pw[t].z), fmaf(dv.w, xh[t].w, pw[t].w));
      pb[t] = make_float4(pb[t].x + dv.x, pb[t].y + dv.y, pb[t].z + dv.z, pb[t].w + dv.w);
    }
    s1 = group_sum<G>(s1) * invC;
    s2 = group_sum<G>(s2) * invC;
    if (dx != nullptr && valid) {
      float4* dxr = reinterpret_cast<float4*>(dx + row * C);
#pragma unroll
      for (int t = 0; t < V; ++t) {
        int f = gl + t * G;
        if (f < C4) {
          dxr[f] =
              make_float4(rs * (g[t].x - s1 - xh[t].x * s2), rs * (g[t].y - s1 - xh[t].y * s2),
                          rs * (g[t].z - s1 - xh[t].z * s2), rs * (g[t].w - s1 - xh[t].w * s2));
        }
      }
    }
  }
  if (partial == nullptr) return;  // uniform: no dw/db wanted
  // Block sum of the groups' partials, dw then db, through red[group][C].
  for (int which = 0; which < 2; ++which) {
    __syncthreads();
#pragma unroll
    for (int t = 0; t < V; ++t) {
      int f = gl + t * G;
      if (f < C4) reinterpret_cast<float4*>(red + group * C)[f] = which == 0 ? pw[t] : pb[t];
    }
    __syncthreads();
    for (int j = threadIdx.x; j < C; j += 256) {
      float s = 0.f;
      for (int k = 0; k < kRows; ++k) s += red[k * C + j];
      partial[(int64_t(blockIdx.x) * 2 + which) * C + j] = s;
    }
  }
}

// dw[c] / db[c] = sum over blocks of partial[block][0 / 1][c], in a fixed order.
// 256 threads = 32 columns x 8 strided sums, then a shared-memory sum of the 8.
__global__ void __launch_bounds__(256)
    ln_params_reduce(const float* __restrict__ partial, int blocks, int C, float* __restrict__ dw,
                     float* __restrict__ db) {
  __shared__ float sum8[8][33];
  const int cl = threadIdx.x & 31, ty = threadIdx.x >> 5;
  const int col = blockIdx.x * 32 + cl;  // 0..2C-1: dw columns, then db columns
  const int which = col / C, c = col % C;
  float s = 0.f;
  if (col < 2 * C) {
    for (int k = ty; k < blocks; k += 8) s += partial[(int64_t(k) * 2 + which) * C + c];
  }
  sum8[ty][cl] = s;
  __syncthreads();
  if (ty != 0 || col >= 2 * C) return;
  float total = 0.f;
  for (int k = 0; k < 8; ++k) total += sum8[k][cl];
  float* out = which == 0 ? dw : db;
  if (out) out[c] = total;
}

// ---- launchers -------------------------------------------------------------------------------

struct V3Config {
  int g = 0, v = 0;  // 0: no v3 config for this C
};
// Rows of C floats as G lanes x V float4: the exact fits of ConvNeXt's widths, guards elsewhere.
V3Config v3_config(int C) {
  if (C % 4 != 0) return {};
  int c4 = C / 4;
  if (c4 <= 24) return {8, 3};
  if (c4 <= 48) return {16, 3};
  if (c4 <= 96) return {32, 3};
  if (c4 <= 192) return {32, 6};
  if (c4 <= 256) return {32, 8};
  return {};
}

bool all_aligned(std::initializer_list<const void*> ps) {
  for (const void* p : ps)
    if (!labs::aligned16(p)) return false;
  return true;
}

void check_args(int version, int64_t rows, int C, const char* op) {
  if (version < 0 || version > kLayernormVersions) {
    labs::fail(std::string(op) + ": version " + std::to_string(version) + " does not exist (0.." +
               std::to_string(kLayernormVersions) + ")");
  }
  if (rows < 1 || C < 1) {
    labs::fail(std::string(op) + ": need rows >= 1 and C >= 1, got rows " + std::to_string(rows) +
               ", C " + std::to_string(C));
  }
}

template <int G, int V>
void launch_fwd_v3(const float* x, const float* w, const float* b, float* y, float* mean,
                   float* rstd, int64_t rows, int C, float eps, cudaStream_t stream) {
  int64_t blocks = ceil_div(rows, 256 / G);
  ln_fwd_v3<G, V><<<unsigned(blocks), 256, 0, stream>>>(x, w, b, y, mean, rstd, rows, C, eps);
}

// Backward launch plan: which version runs and, for v3, how many blocks (= partial rows).
struct BwdPlan {
  int version;
  V3Config cfg;
  int blocks;
};
BwdPlan bwd_plan(int version, int64_t rows, int C, bool aligned) {
  if (version == 0) version = 3;
  V3Config cfg = v3_config(C);
  if (version == 3 && (cfg.g == 0 || !aligned)) version = 2;
  if (version == 2 && size_t(8) * C * 4 > 227 * 1024) version = 1;  // v2's shared partials
  // Persistent grids of exactly one wave (or fewer blocks when there are few rows).
  int blocks = 0;
  if (version == 3) {
    const void* k = cfg.g == 8    ? reinterpret_cast<const void*>(ln_bwd_v3<8, 3>)
                    : cfg.g == 16 ? reinterpret_cast<const void*>(ln_bwd_v3<16, 3>)
                    : cfg.v == 3  ? reinterpret_cast<const void*>(ln_bwd_v3<32, 3>)
                    : cfg.v == 6  ? reinterpret_cast<const void*>(ln_bwd_v3<32, 6>)
                                  : reinterpret_cast<const void*>(ln_bwd_v3<32, 8>);
    blocks = int(std::min<int64_t>(ceil_div(rows, 256 / cfg.g), labs::resident_blocks(k, 256, 0)));
  } else if (version == 2) {
    blocks = int(std::min<int64_t>(ceil_div(rows, 4), int64_t(labs::sm_count()) * 8));
  }
  return {version, cfg, blocks};
}

template <int G, int V>
void launch_bwd_v3(const float* x, const float* dy, const float* mean, const float* rstd,
                   const float* w, float* dx, float* partial, int64_t rows, int C, int blocks,
                   cudaStream_t stream) {
  ln_bwd_v3<G, V><<<blocks, 256, 0, stream>>>(x, dy, mean, rstd, w, dx, partial, rows, C);
}

}  // namespace

void layernorm_forward(int version, const float* x, const float* w, const float* b, float* y,
                       float* mean, float* rstd, int64_t rows, int C, float eps,
                       cudaStream_t stream) {
  const char* op = "layernorm_forward";
  check_args(version, rows, C, op);
  if (x == nullptr) labs::fail(std::string(op) + ": null x");
  if (y == nullptr && (mean == nullptr || rstd == nullptr))
    labs::fail(std::string(op) + ": null y (the statistics only) needs mean and rstd");
  if (version == 0) version = 3;
  V3Config cfg = v3_config(C);
  if (version == 3 && (cfg.g == 0 || !all_aligned({x, w, b, y}))) version = 2;
  if (version == 1) {
    ln_fwd_v1<<<unsigned(ceil_div(rows, 128)), 128, 0, stream>>>(x, w, b, y, mean, rstd, rows, C,
                                                                 eps);
  } else if (version == 2) {
    ln_fwd_v2<<<unsigned(ceil_div(rows, 8)), 256, 0, stream>>>(x, w, b, y, mean, rstd, rows, C,
                                                               eps);
  } else if (cfg.g == 8) {
    launch_fwd_v3<8, 3>(x, w, b, y, mean, rstd, rows, C, eps, stream);
  } else if (cfg.g == 16) {
    launch_fwd_v3<16, 3>(x, w, b, y, mean, rstd, rows, C, eps, stream);
  } else if (cfg.v == 3) {
    launch_fwd_v3<32, 3>(x, w, b, y, mean, rstd, rows, C, eps, stream);
  } else if (cfg.v == 6) {
    launch_fwd_v3<32, 6>(x, w, b, y, mean, rstd, rows, C, eps, stream);
  } else {
    launch_fwd_v3<32, 8>(x, w, b, y, mean, rstd, rows, C, eps, stream);
  }
  labs::check_launch(op);
}

size_t layernorm_backward_workspace(int version, int64_t rows, int C) {
  check_args(version, rows, C, "layernorm_backward");
  BwdPlan plan = bwd_plan(version, rows, C, true);
  return plan.version == 3 ? size_t(plan.blocks) * 2 * C * sizeof(float) : 0;
}

void layernorm_backward(int version, const float* x, const float* dy, const float* mean,
                        const float* rstd, const float* w, float* dx, float* dw, float* db,
                        int64_t rows, int C, void* workspace, cudaStream_t stream) {
  const char* op = "layernorm_backward";
  check_args(version, rows, C, op);
  if (x == nullptr || dy == nullptr || mean == nullptr || rstd == nullptr) {
    labs::fail(std::string(op) + ": x, dy, mean and rstd are required");
  }
  const bool params = dw != nullptr || db != nullptr;
  if (dx == nullptr && !params) return;
  BwdPlan plan = bwd_plan(version, rows, C, all_aligned({x, dy, w, dx}));
  if (plan.version == 1) {
    if (dx) {
      ln_bwd_dx_v1<<<unsigned(ceil_div(rows, 128)), 128, 0, stream>>>(x, dy, mean, rstd, w, dx,
                                                                      rows, C);
      labs::check_launch(op);
    }
    if (params) {
      ln_bwd_params_v1<<<unsigned(ceil_div(C, 128)), 128, 0, stream>>>(x, dy, mean, rstd, dw, db,
                                                                       rows, C);
      labs::check_launch(op);
    }
    return;
  }
  if (plan.version == 2) {
    if (dw) labs::check(cudaMemsetAsync(dw, 0, size_t(C) * sizeof(float), stream), op);
    if (db) labs::check(cudaMemsetAsync(db, 0, size_t(C) * sizeof(float), stream), op);
    size_t smem = params ? size_t(8) * C * sizeof(float) : 0;
    if (smem > 48 * 1024) {
      labs::check(
          cudaFuncSetAttribute(ln_bwd_v2, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)),
          op);
    }
    ln_bwd_v2<<<plan.blocks, 128, smem, stream>>>(x, dy, mean, rstd, w, dx, dw, db, rows, C);
    labs::check_launch(op);
    return;
  }
  labs::Workspace ws(params ? workspace : nullptr,
                     params ? size_t(plan.blocks) * 2 * C * sizeof(float) : 0, stream);
  float* partial = params ? ws.as<float>() : nullptr;
  const int g = plan.cfg.g, v = plan.cfg.v;
  if (g == 8) {
    launch_bwd_v3<8, 3>(x, dy, mean, rstd, w, dx, partial, rows, C, plan.blocks, stream);
  } else if (g == 16) {
    launch_bwd_v3<16, 3>(x, dy, mean, rstd, w, dx, partial, rows, C, plan.blocks, stream);
  } else if (v == 3) {
    launch_bwd_v3<32, 3>(x, dy, mean, rstd, w, dx, partial, rows, C, plan.blocks, stream);
  } else if (v == 6) {
    launch_bwd_v3<32, 6>(x, dy, mean, rstd, w, dx, partial, rows, C, plan.blocks, stream);
  } else {
    launch_bwd_v3<32, 8>(x, dy, mean, rstd, w, dx, partial, rows, C, plan.blocks, stream);
  }
  labs::check_launch(op);
  if (params) {
    ln_params_reduce<<<unsigned(ceil_div(2 * C, 32)), 256, 0, stream>>>(partial, plan.blocks, C, dw,
                                                                        db);
    labs::check_launch(op);
  }
}

}  // namespace kernels::cuda
