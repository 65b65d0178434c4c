// kernels/cuda/conv2d.cu — dense 2-D convolution (groups == 1), NHWC, as an implicit GEMM:
// forward, data gradient, weight + bias gradient; any stride, padding and dilation; float32.
//
//   y[n, p, q, k] = bias[k] + sum_{r,s,c} x[n, p*sh - ph + r*dh, q*sw - pw + s*dw, c] * w[k,r,s,c]
//   x [N, H, W, C], y [N, P, Q, K] channels last; w [K, R, S, C].
// Each pass is one GEMM C[M, Ncols] = A[M, Kdim] B[Kdim, Ncols] whose operands are gathered
// from x, dy and w on the fly (never written out as im2col columns):
//   forward  M = N*P*Q  Ncols = K      Kdim = R*S*C   A = x gathered,  B[kk, k] = w[k, kk]
//   data     M = N*H*W  Ncols = C      Kdim = R*S*K   A = dy gathered, B[(r,s,k), c] = w[k,r,s,c]
//   weight   M = K      Ncols = R*S*C  Kdim = N*P*Q   A[k, npq] = dy[npq, k], B = x gathered
// conv2d_gemm_view.cuh holds the index math of the three views (shared with the tests, which
// rebuild the GEMMs on the CPU); versions 2-5 are ONE templated main loop each, instantiated
// for the views (the three above, and the data gradient by stride phase): the kernel does not
// know which pass it computes.
// The data gradient gathers dy where (h + pad - r*dil) is a multiple of the stride: for stride
// 2, 3 of 4 of its A entries would be structural zeros multiplied anyway (stride^2 waste), so
// a strided layer (dilation 1) runs one GEMM per stride phase of dx instead, each over only the
// taps that reach its pixels (DgradPhaseView in conv2d_gemm_view.cuh).
// The weight gradient has a huge Kdim (N*P*Q = 200704) and a small C (K x RSC = 64 x 576): its Kdim
// is split across blocks (split-K); every split writes its own partial dw (and dbias, by a
// column-sum kernel) and a second kernel adds the splits in a fixed order: deterministic, no
// floating-point atomics.
//
// Versions (launcher argument `version`; 0 = the fastest fp32 = 3):
//   v1  naive: one thread per output element, direct loops over the taps and channels (y: k
//       fastest across threads, dx: c fastest; dw: one thread per (k, r, s, c) and chunk of
//       N*P*Q, so the sum has enough threads; the chunks go through the same fixed-order sum).
//   v2  shared-memory tiled implicit GEMM: a 256-thread block computes a 64x64 tile of C; for
//       each 16-deep slice of Kdim it gathers the 64x16 A and 16x64 B slices into shared memory
//       (one scalar load per element, zeros in the padding) and each thread accumulates a 4x4
//       block of outputs from the slices: two float4 shared reads per 16 FMAs.
//   v3  register-blocked: a 128x128 tile (128x64 when Ncols <= 64, 64x128 when M <= 64), 8x8
//       outputs per thread (4 float4 shared reads per 64 FMAs), slices 8 deep, double-buffered
//       in shared memory so the next slice's global loads are in flight during the FMAs (one
//       barrier per slice). When C and K are multiples of 4 and the pointers 16-byte aligned,
//       every global load is a float4 (4 channels of one pixel); otherwise 4 scalar loads with
//       their own bounds tests (e.g. the RGB stem, C = 3).
//   v4  TF32 tensor cores (conv2d_tf32.cu): the v3 tiles as 64x32 warp tiles of
//       mma.sync.m16n8k8 (operands rounded to TF32 with cvt.rna, fp32 accumulators), slices 16
//       deep copied global -> shared with cp.async (zero-fill for the padding) in a 4-stage
//       pipeline. Only when asked for (kConv2dTf32Version): its rounding differs from fp32.
//   v5  v4 with each operand element rounded to TF32 once, in shared memory, by the thread
//       that copied it, and the along-k fragments read by ldmatrix.x4: 4x fewer shared loads and
//       no cvt in the inner loop; the same bits as v4 (conv2d_tf32.cu).
//   v6  v5 with 64x64 warp tiles (4 warps on a 128x128 block, 128 accumulators a thread):
//       each warp's fragment reads serve twice the products, a third fewer shared-memory
//       passes per slice than v5; the same bits as v4 (conv2d_tf32.cu).
//   -Xptxas -v (sm_90, nvcc 13.0): kernels/README.md has the registers and shared memory of
//   every kernel; none spills but v3's data gradient at 128x128 on the 16-byte path (16 B).
//
// Roofline, ResNet-50's 3x3 64->64 layer at 56x56, batch 64, pad 1 (H100, shared/GPU.md):
//   FLOPs = 2*N*P*Q*K*R*S*C = 2 * 200704 * 64 * 576 = 14.8 GFLOP per pass (forward, data and
//   weight gradients each) -> 0.22 ms at ~67 TFLOP/s fp32, 0.030 ms at ~495 TFLOP/s TF32.
//   Bytes (each tensor once) = x 51.4 MB + y 51.4 MB + w 0.15 MB = 103 MB -> 0.04 ms at 2.6
//   TB/s: compute-bound by 5x in fp32, memory-bound at the TF32 peak (0.040 ms); the gather
//   re-reads x R*S = 9 times, from L2.
//   cuDNN 9.19 on this layer: 38.8 TFLOP/s fp32 (0.38 ms), 80.5 TF32 (0.18 ms) (GPU.md).
//   Target: v3 >= 50% of cuDNN fp32 (<= 0.76 ms), v4 >= 50% of cuDNN TF32 (<= 0.37 ms).
//   bench/cuda/conv2d_bench.cu times every version on four ResNet-50 layers against cuDNN:
//     conv2d_bench [--version V] [--shape res2_3x3|res2_1x1|res4_3x3|stem] [--json FILE]
//   tests: cuda_labs_tests --gtest_filter='Conv2d*' (the index math also runs without a GPU).
#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "kernels/cuda/conv2d.h"
#include "kernels/cuda/conv2d_gemm_view.cuh"
#include "kernels/cuda/labs_common.cuh"

namespace kernels::cuda {

namespace {

using conv::BlockTile;
using conv::Geo;
using conv::GemmArgs;
using conv::TileLoader;
using labs::ceil_div;

// ---- v1: direct loops ----------------------------------------------------------------------

// y[n, p, q, k], one thread each, k fastest: a warp reads the same x values (broadcast) and
// 32 filters (strided, cached).
__global__ void fwd_v1(Geo g, const float* __restrict__ x, const float* __restrict__ w,
                       const float* __restrict__ bias, float* __restrict__ y) {
  const int64_t total = int64_t(g.n) * g.p * g.q * g.k;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int k = int(i % g.k), pix = int(i / g.k);
    const int q = pix % g.q, p = (pix / g.q) % g.p, n = pix / (g.q * g.p);
    float acc = bias != nullptr ? bias[k] : 0.f;
    for (int r = 0; r < g.r; ++r) {
      const int ih = p * g.stride_h - g.pad_h + r * g.dil_h;
      if (ih < 0 || ih >= g.h) continue;
      for (int s = 0; s < g.s; ++s) {
        const int iw = q * g.stride_w - g.pad_w + s * g.dil_w;
        if (iw < 0 || iw >= g.w) continue;
        const float* xp = x + ((n * g.h + ih) * g.w + iw) * g.c;
        const float* wp = w + ((k * g.r + r) * g.s + s) * g.c;
        for (int c = 0; c < g.c; ++c) acc = fmaf(xp[c], wp[c], acc);
      }
    }
    y[i] = acc;
  }
}

// dx[n, h, w, c], one thread each, c fastest: the taps (r, s) that reach (h, w) from an output
// pixel, each summed over k.
__global__ void dgrad_v1(Geo g, const float* __restrict__ dy, const float* __restrict__ w,
                         float* __restrict__ dx) {
  const int64_t total = int64_t(g.n) * g.h * g.w * g.c;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int c = int(i % g.c), pix = int(i / g.c);
    const int wx = pix % g.w, h = (pix / g.w) % g.h, n = pix / (g.w * g.h);
    float acc = 0.f;
    for (int r = 0; r < g.r; ++r) {
      const int p = conv::exact_output_index(h + g.pad_h - r * g.dil_h, g.stride_h, g.p);
      if (p < 0) continue;
      for (int s = 0; s < g.s; ++s) {
        const int q = conv::exact_output_index(wx + g.pad_w - s * g.dil_w, g.stride_w, g.q);
        if (q < 0) continue;
        const float* dyp = dy + ((n * g.p + p) * g.q + q) * g.k;
        const float* wp = w + (r * g.s + s) * g.c + c;  // w[k, r, s, c] at wp[k * R*S*C]
        const int kstride = g.r * g.s * g.c;
        for (int k = 0; k < g.k; ++k) acc = fmaf(dyp[k], wp[k * kstride], acc);
      }
    }
    dx[i] = acc;
  }
}

// partial[z][i] for i = (k, r, s, c) < K*R*S*C: sum of dy[npq, k] * x[pixel read by tap (r, s)
// of npq, c] over split z's chunk of npq; i = K*R*S*C + k: sum of dy[npq, k] (the bias).
// grid (threads over i, splits); consecutive threads take consecutive c: x reads coalesce.
__global__ void wgrad_v1(Geo g, const float* __restrict__ x, const float* __restrict__ dy,
                         float* __restrict__ partial, int chunk, int per_split) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= per_split) return;
  const int rsc = g.r * g.s * g.c, npq_total = g.n * g.p * g.q;
  const int npq0 = blockIdx.y * chunk, npq1 = min(npq0 + chunk, npq_total);
  float acc = 0.f;
  if (i >= g.k * rsc) {  // bias
    const int k = i - g.k * rsc;
    for (int npq = npq0; npq < npq1; ++npq) acc += dy[npq * g.k + k];
  } else {
    const int k = i / rsc, c = i % g.c, r = (i % rsc) / (g.s * g.c), s = (i / g.c) % g.s;
    int q = npq0 % g.q, p = (npq0 / g.q) % g.p, n = npq0 / (g.q * g.p);
    for (int npq = npq0; npq < npq1; ++npq) {
      const int ih = p * g.stride_h - g.pad_h + r * g.dil_h;
      const int iw = q * g.stride_w - g.pad_w + s * g.dil_w;
      if (ih >= 0 && ih < g.h && iw >= 0 && iw < g.w)
        acc = fmaf(dy[npq * g.k + k], x[((n * g.h + ih) * g.w + iw) * g.c + c], acc);
      if (++q == g.q) {  // next output pixel
        q = 0;
        if (++p == g.p) p = 0, ++n;
      }
    }
  }
  partial[int64_t(blockIdx.y) * per_split + i] = acc;
}

// ---- weight gradient: bias partial sums and the fixed-order sum of the splits ----------------

// partial[z][K*R*S*C + k] = sum of dy[npq, k] over split z's npq range. Block (32, 8): 32
// consecutive k (coalesced rows of dy) x 8 row phases, added in shared memory in a fixed order.
__global__ void bias_partial(Geo g, const float* __restrict__ dy, float* __restrict__ partial,
                             int chunk, int per_split) {
  __shared__ float red[8][33];
  const int k = blockIdx.x * 32 + threadIdx.x;
  const int npq0 = blockIdx.y * chunk, npq1 = min(npq0 + chunk, g.n * g.p * g.q);
  float acc = 0.f;
  if (k < g.k)
    for (int npq = npq0 + threadIdx.y; npq < npq1; npq += 8) acc += dy[npq * g.k + k];
  red[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y != 0 || k >= g.k) return;
  float sum = 0.f;
  for (int j = 0; j < 8; ++j) sum += red[j][threadIdx.x];
  partial[int64_t(blockIdx.y) * per_split + g.k * g.r * g.s * g.c + k] = sum;
}

// dw[i] (i < K*R*S*C) or dbias[i - K*R*S*C] = sum over splits z of partial[z][i]. Block
// (32, 8): 32 consecutive i (coalesced) x 8 phases of z (z = ty, ty+8, ...: 8 times the loads
// in flight of one thread per i), the 8 phase sums added in a fixed order: deterministic.
__global__ void wgrad_reduce(const float* __restrict__ partial, int splits, int per_split,
                             int krsc, float* __restrict__ dw, float* __restrict__ dbias) {
  __shared__ float red[8][33];
  const int i = blockIdx.x * 32 + threadIdx.x;
  float sum = 0.f;
  if (i < per_split)
    for (int z = threadIdx.y; z < splits; z += 8) sum += partial[int64_t(z) * per_split + i];
  red[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y != 0 || i >= per_split || (i >= krsc && dbias == nullptr)) return;
  sum = 0.f;
  for (int j = 0; j < 8; ++j) sum += red[j][threadIdx.x];
  if (i < krsc) {
    dw[i] = sum;
  } else {
    dbias[i - krsc] = sum;
  }
}

// ---- v2 / v3 building blocks -----------------------------------------------------------------

// Global -> registers: the loader's chunks of the current k-tile (zeros where offset is -1).
template <class L, bool VEC>
__device__ __forceinline__ void fetch(const L& ld, const Geo& g, const float* __restrict__ p,
                                      float4 (&r)[L::E]) {
  int off[L::E][L::V];
  ld.offsets(g, off);
#pragma unroll
  for (int j = 0; j < L::E; ++j) {
    if constexpr (VEC) {
      r[j] = off[j][0] >= 0 ? __ldg(reinterpret_cast<const float4*>(p + off[j][0]))
                            : make_float4(0.f, 0.f, 0.f, 0.f);
    } else {
      r[j].x = off[j][0] >= 0 ? __ldg(p + off[j][0]) : 0.f;
      r[j].y = off[j][1] >= 0 ? __ldg(p + off[j][1]) : 0.f;
      r[j].z = off[j][2] >= 0 ? __ldg(p + off[j][2]) : 0.f;
      r[j].w = off[j][3] >= 0 ? __ldg(p + off[j][3]) : 0.f;
    }
  }
}

// Registers -> shared slice s[kk][row] (row contiguous, so the FMA loop reads float4 along it).
// kAlongK chunks hold 4 kk of one row: transposed into 4 scalar stores.
template <class L, int LD>
__device__ __forceinline__ void stash(float (*s)[LD], const float4 (&r)[L::E], int tid) {
#pragma unroll
  for (int j = 0; j < L::E; ++j) {
    const int row = L::Slots::row(tid, j), kk = L::Slots::kk(tid, j);
    if constexpr (L::kAlongK) {
      s[kk][row] = r[j].x, s[kk + 1][row] = r[j].y;
      s[kk + 2][row] = r[j].z, s[kk + 3][row] = r[j].w;
    } else {
      *reinterpret_cast<float4*>(&s[kk][row]) = r[j];
    }
  }
}

// out[m, n .. n+3] = v (+ bias[n ..]) for the columns < ncols. vec: ncols % 4 == 0 and out
// 16-byte aligned, so the 4 columns are all in or all out and one float4 store writes them.
template <bool VEC>
__device__ __forceinline__ void store4(float* __restrict__ row, int n, int ncols, float4 v,
                                       const float* __restrict__ bias) {
  if (bias != nullptr) {
    v.x += n < ncols ? bias[n] : 0.f, v.y += n + 1 < ncols ? bias[n + 1] : 0.f;
    v.z += n + 2 < ncols ? bias[n + 2] : 0.f, v.w += n + 3 < ncols ? bias[n + 3] : 0.f;
  }
  if (VEC) {
    if (n < ncols) *reinterpret_cast<float4*>(row + n) = v;
  } else {
    if (n < ncols) row[n] = v.x;
    if (n + 1 < ncols) row[n + 1] = v.y;
    if (n + 2 < ncols) row[n + 2] = v.z;
    if (n + 3 < ncols) row[n + 3] = v.w;
  }
}

// The kk range of split blockIdx.z and its number of BK-deep tiles.
template <class View, int BK>
__device__ __forceinline__ int split_tiles(const GemmArgs& a, int& k0) {
  k0 = blockIdx.z * a.k_per_split;
  const int k1 = min(k0 + a.k_per_split, View::kdim(a.g));
  return k1 > k0 ? (k1 - k0 + BK - 1) / BK : 0;
}

// ---- v2: 64x64 tile, 16-deep slices in shared memory, 4x4 outputs per thread -----------------
template <class View>
__global__ void __launch_bounds__(256) gemm_v2(GemmArgs a) {
  constexpr int BM = 64, BN = 64, BK = 16, T = 256;
  __shared__ __align__(16) float As[BK][BM + 4];  // [kk][m]
  __shared__ __align__(16) float Bs[BK][BN + 4];  // [kk][n]
  const Geo& g = a.g;
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int m0 = blockIdx.x * BM, n0 = blockIdx.y * BN;
  int k0;
  const int tiles = split_tiles<View, BK>(a, k0);
  using LA = TileLoader<typename View::A, BM, BK, T, false>;
  using LB = TileLoader<typename View::B, BN, BK, T, false>;
  LA la;
  LB lb;
  la.init(g, m0, k0, tid);
  lb.init(g, n0, k0, tid);
  float acc[4][4] = {};
  for (int t = 0; t < tiles; ++t) {
    float4 ra[LA::E], rb[LB::E];
    fetch<LA, false>(la, g, a.a, ra);
    fetch<LB, false>(lb, g, a.b, rb);
    stash<LA>(As, ra, tid);
    stash<LB>(Bs, rb, tid);
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      const float4 av = *reinterpret_cast<const float4*>(&As[kk][ty * 4]);
      const float4 bv = *reinterpret_cast<const float4*>(&Bs[kk][tx * 4]);
      const float ar[4] = {av.x, av.y, av.z, av.w}, br[4] = {bv.x, bv.y, bv.z, bv.w};
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(ar[i], br[j], acc[i][j]);
    }
    __syncthreads();  // the slices are overwritten next step
    la.advance(g);
    lb.advance(g);
  }
  const int mrows = View::m(g), ncols = View::n(g);
  float* out = a.out + int64_t(blockIdx.z) * a.out_split_stride;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int m = m0 + ty * 4 + i;
    if (m < mrows)
      store4<false>(out + View::row_offset(g, m), n0 + tx * 4, ncols,
                    make_float4(acc[i][0], acc[i][1], acc[i][2], acc[i][3]), a.bias);
  }
}

// ---- v3: BMxBN tile, 8-deep double-buffered slices, 8x8 outputs per thread -------------------
// Thread (tx, ty) owns rows ty*4 + {0..3} and BM/2 + ty*4 + {0..3}, columns tx*4 + {0..3} and
// BN/2 + tx*4 + {0..3}: split halves make each shared read one float4 that a warp reads as a
// few broadcast addresses (A) or one contiguous run (B).
// Registers: 64 accumulators + 16 operands + the staged slice + loader state. 256-thread
// blocks are held to 128 registers (2 blocks, 16 warps per SM); 128-thread blocks, whose
// threads stage twice as many chunks, may use 168 (3 blocks, 12 warps per SM) and do not spill.
template <class View, int BM, int BN, bool VEC>
__global__ void __launch_bounds__(BM * BN / 64, BM * BN / 64 == 256 ? 2 : 3) gemm_v3(GemmArgs a) {
  constexpr int BK = 8, T = BM * BN / 64, TX = BN / 8;
  __shared__ __align__(16) float As[2][BK][BM + 4];  // +4: conflict-free transposing stores
  __shared__ __align__(16) float Bs[2][BK][BN + 4];
  const Geo& g = a.g;
  const int tid = threadIdx.x, tx = tid % TX, ty = tid / TX;
  const int m0 = blockIdx.x * BM, n0 = blockIdx.y * BN;
  int k0;
  const int tiles = split_tiles<View, BK>(a, k0);
  using LA = TileLoader<typename View::A, BM, BK, T, VEC>;
  using LB = TileLoader<typename View::B, BN, BK, T, VEC>;
  LA la;
  LB lb;
  la.init(g, m0, k0, tid);
  lb.init(g, n0, k0, tid);
  float4 ra[LA::E], rb[LB::E];  // the next slice, in flight while this one is multiplied
  fetch<LA, VEC>(la, g, a.a, ra);
  fetch<LB, VEC>(lb, g, a.b, rb);
  stash<LA>(As[0], ra, tid);
  stash<LB>(Bs[0], rb, tid);
  __syncthreads();
  float acc[8][8] = {};
  for (int t = 0; t < tiles; ++t) {
    const int buf = t & 1;
    const bool more = t + 1 < tiles;
    if (more) {
      la.advance(g);
      lb.advance(g);
      fetch<LA, VEC>(la, g, a.a, ra);
      fetch<LB, VEC>(lb, g, a.b, rb);
    }
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      const float4 a0 = *reinterpret_cast<const float4*>(&As[buf][kk][ty * 4]);
      const float4 a1 = *reinterpret_cast<const float4*>(&As[buf][kk][BM / 2 + ty * 4]);
      const float4 b0 = *reinterpret_cast<const float4*>(&Bs[buf][kk][tx * 4]);
      const float4 b1 = *reinterpret_cast<const float4*>(&Bs[buf][kk][BN / 2 + tx * 4]);
      const float ar[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
      const float br[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
      for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(ar[i], br[j], acc[i][j]);
    }
    if (more) {  // buffer buf^1 was last read before the previous barrier
      stash<LA>(As[buf ^ 1], ra, tid);
      stash<LB>(Bs[buf ^ 1], rb, tid);
    }
    __syncthreads();
  }
  const int mrows = View::m(g), ncols = View::n(g);
  float* out = a.out + int64_t(blockIdx.z) * a.out_split_stride;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int m = m0 + (i < 4 ? 0 : BM / 2 - 4) + ty * 4 + i;
    if (m >= mrows) continue;
    float* row = out + View::row_offset(g, m);
    store4<VEC>(row, n0 + tx * 4, ncols,
                make_float4(acc[i][0], acc[i][1], acc[i][2], acc[i][3]), a.bias);
    store4<VEC>(row, n0 + BN / 2 + tx * 4, ncols,
                make_float4(acc[i][4], acc[i][5], acc[i][6], acc[i][7]), a.bias);
  }
}

// ---- launchers -------------------------------------------------------------------------------

constexpr int kSplitUnit = 16;  // k_per_split is a multiple of every version's slice depth
constexpr int kMaxSplitFloats = 16 << 20;  // weight-gradient partial sums: at most 64 MB

std::string shape_text(const Conv2dLabShape& sh) {
  auto s = [](int v) { return std::to_string(v); };
  return "input [" + s(sh.n) + "," + s(sh.h) + "," + s(sh.w) + "," + s(sh.c) + "], weight [" +
         s(sh.k) + "," + s(sh.r) + "," + s(sh.s) + "," + s(sh.c) + "], stride " + s(sh.stride_h) +
         "," + s(sh.stride_w) + ", padding " + s(sh.pad_h) + "," + s(sh.pad_w) + ", dilation " +
         s(sh.dil_h) + "," + s(sh.dil_w);
}

void validate(const Conv2dLabShape& sh, const char* op) {
  const std::string where = std::string(op) + ": ";
  if (sh.groups != 1)
    labs::fail(where + "groups=" + std::to_string(sh.groups) +
               " is not supported: this lab computes dense convolutions (groups == 1); "
               "depthwise convolutions have depthwise_conv2d.h");
  if (sh.n < 1 || sh.h < 1 || sh.w < 1 || sh.c < 1 || sh.k < 1 || sh.r < 1 || sh.s < 1 ||
      sh.stride_h < 1 || sh.stride_w < 1 || sh.dil_h < 1 || sh.dil_w < 1 || sh.pad_h < 0 ||
      sh.pad_w < 0)
    labs::fail(where + "bad shape: " + shape_text(sh) +
               " (sizes, strides and dilations must be >= 1, padding >= 0)");
  // conv2d_gemm_view.cuh: a coordinate offset by kFar = -2^29 must stay negative.
  const int64_t lim = int64_t(1) << 26;
  if (sh.h >= lim || sh.w >= lim || sh.pad_h >= lim || sh.pad_w >= lim ||
      int64_t(sh.dil_h) * sh.r >= lim || int64_t(sh.dil_w) * sh.s >= lim)
    labs::fail(where + "an image side, padding or dilated filter of 2^26 or more: " +
               shape_text(sh));
  if (int64_t(sh.h) + 2 * int64_t(sh.pad_h) < int64_t(sh.dil_h) * (sh.r - 1) + 1 ||
      int64_t(sh.w) + 2 * int64_t(sh.pad_w) < int64_t(sh.dil_w) * (sh.s - 1) + 1)
    labs::fail(where + "the dilated filter does not fit the padded input: " + shape_text(sh));
  const int64_t nx = int64_t(sh.n) * sh.h * sh.w * sh.c, nw = int64_t(sh.k) * sh.r * sh.s * sh.c;
  const int64_t ny = int64_t(sh.n) * sh.p() * sh.q() * sh.k;
  if (std::max({nx, nw, ny}) >= (int64_t(1) << 30))  // int32 indices, with room for tile edges
    labs::fail(where + "a tensor of 2^30 or more elements (int32 indices): " + shape_text(sh));
}

int resolve(int version, const char* op) {
  if (version < 0 || version > kConv2dVersions)
    labs::fail(std::string(op) + ": version " + std::to_string(version) + " does not exist (0.." +
               std::to_string(kConv2dVersions) + "; " + std::to_string(kConv2dTf32Version) +
               " and up = TF32)");
  return version == 0 ? 3 : version;
}

template <class View>
constexpr conv::ViewKind kind_of() {
  if constexpr (std::is_same_v<View, conv::FwdView>) return conv::ViewKind::Fwd;
  if constexpr (std::is_same_v<View, conv::DgradView>) return conv::ViewKind::Dgrad;
  if constexpr (std::is_same_v<View, conv::DgradPhaseView>) return conv::ViewKind::DgradPhase;
  return conv::ViewKind::Wgrad;
}

template <class View, int BM, int BN>
void launch_v3_tile(const GemmArgs& a, int splits, bool vec, cudaStream_t stream) {
  const Geo& g = a.g;
  dim3 grid(unsigned(ceil_div(View::m(g), BM)), unsigned(ceil_div(View::n(g), BN)),
            unsigned(splits));
  if (vec)
    gemm_v3<View, BM, BN, true><<<grid, BM * BN / 64, 0, stream>>>(a);
  else
    gemm_v3<View, BM, BN, false><<<grid, BM * BN / 64, 0, stream>>>(a);
}

// Versions 2-6 of one view.
template <class View>
void launch_gemm(int version, const GemmArgs& a, int splits, bool vec, cudaStream_t stream,
                 const char* op) {
  const Geo& g = a.g;
  if (ceil_div(View::n(g), 64) > 65535 || splits > 65535)
    labs::fail(std::string(op) + ": too many column tiles or splits for the grid");
  if (version == 2) {
    dim3 grid(unsigned(ceil_div(View::m(g), 64)), unsigned(ceil_div(View::n(g), 64)),
              unsigned(splits));
    gemm_v2<View><<<grid, 256, 0, stream>>>(a);
  } else if (version == 3) {
    const BlockTile t = conv::pick_tile(View::m(g), View::n(g));
    if (t.bn == 64)
      launch_v3_tile<View, 128, 64>(a, splits, vec, stream);
    else if (t.bm == 64)
      launch_v3_tile<View, 64, 128>(a, splits, vec, stream);
    else
      launch_v3_tile<View, 128, 128>(a, splits, vec, stream);
  } else {
    conv::launch_tf32(kind_of<View>(), a, splits, vec, version, stream);
  }
  labs::check_launch(op);
}

int grid_1d(int64_t total, int threads) {
  return int(std::clamp<int64_t>(ceil_div(total, threads), 1, int64_t(labs::sm_count()) * 32));
}

// How the weight gradient splits N*P*Q: `splits` chunks of k_per_split output pixels, each
// writing per_split = K*R*S*C + K partial sums (dw, then dbias).
struct WgradPlan {
  int version, splits, k_per_split, per_split;
};
WgradPlan wgrad_plan(int version, const Conv2dLabShape& sh, const char* op) {
  validate(sh, op);
  WgradPlan plan{resolve(version, op), 1, 0, sh.k * sh.r * sh.s * sh.c + sh.k};
  const int npq = sh.n * sh.p() * sh.q(), rsc = sh.r * sh.s * sh.c;
  int64_t want;  // splits
  if (plan.version == 1) {  // threads to fill the GPU four times over
    want = ceil_div(int64_t(labs::sm_count()) * 2048 * 4, plan.per_split);
  } else {  // two full waves of blocks (they are long: a wave-quantization tail would idle SMs)
    const BlockTile t = plan.version == 2 ? BlockTile{64, 64} : conv::pick_tile(sh.k, rsc);
    const int per_sm = plan.version == 2 ? 4 : t.bm * t.bn == 128 * 128 ? 2 : 3;  // regs, smem
    want = 2 * int64_t(labs::sm_count()) * per_sm / (ceil_div(sh.k, t.bm) * ceil_div(rsc, t.bn));
  }
  const int64_t units = ceil_div(npq, kSplitUnit);
  const int64_t cap = std::max<int64_t>(1, kMaxSplitFloats / plan.per_split);
  const int64_t splits = std::clamp<int64_t>(want, 1, std::min<int64_t>({units, cap, 65535}));
  plan.k_per_split = int(ceil_div(units, splits)) * kSplitUnit;
  plan.splits = int(ceil_div(npq, plan.k_per_split));  // no empty split
  return plan;
}

}  // namespace

bool conv2d_lab_takes(const Conv2dLabShape& sh) {
  try {
    validate(sh, "conv2d");
  } catch (const std::runtime_error&) {
    return false;
  }
  // The column tiles of every view must fit gridDim.y (launch_gemm).
  const int64_t widest = std::max<int64_t>({sh.k, sh.c, int64_t(sh.r) * sh.s * sh.c});
  return ceil_div(widest, 64) <= 65535;
}

void conv2d_forward(int version, const Conv2dLabShape& sh, const float* x, const float* w,
                    const float* bias, float* y, cudaStream_t stream) {
  const char* op = "conv2d_forward";
  validate(sh, op);
  version = resolve(version, op);
  if (x == nullptr || w == nullptr || y == nullptr) labs::fail(std::string(op) + ": null pointer");
  const Geo g = conv::make_geo(sh);
  if (version == 1) {
    fwd_v1<<<grid_1d(int64_t(g.n) * g.p * g.q * g.k, 256), 256, 0, stream>>>(g, x, w, bias, y);
    labs::check_launch(op);
    return;
  }
  const int kdim = conv::FwdView::kdim(g);
  const GemmArgs a{g, x, w, bias, y, int(ceil_div(kdim, kSplitUnit)) * kSplitUnit, 0};
  const bool vec = sh.c % 4 == 0 && sh.k % 4 == 0 && labs::aligned16(x) && labs::aligned16(w) &&
                   labs::aligned16(y);
  launch_gemm<conv::FwdView>(version, a, 1, vec, stream, op);
}

void conv2d_backward_data(int version, const Conv2dLabShape& sh, const float* dy, const float* w,
                          float* dx, cudaStream_t stream) {
  const char* op = "conv2d_backward_data";
  validate(sh, op);
  version = resolve(version, op);
  if (dy == nullptr || w == nullptr || dx == nullptr)
    labs::fail(std::string(op) + ": null pointer");
  const Geo g = conv::make_geo(sh);
  if (version == 1) {
    dgrad_v1<<<grid_1d(int64_t(g.n) * g.h * g.w * g.c, 256), 256, 0, stream>>>(g, dy, w, dx);
    labs::check_launch(op);
    return;
  }
  const bool vec = sh.c % 4 == 0 && sh.k % 4 == 0 && labs::aligned16(dy) && labs::aligned16(w) &&
                   labs::aligned16(dx);
  if ((sh.stride_h == 1 && sh.stride_w == 1) || sh.dil_h != 1 || sh.dil_w != 1) {
    const int kdim = conv::DgradView::kdim(g);
    const GemmArgs a{g, dy, w, nullptr, dx, int(ceil_div(kdim, kSplitUnit)) * kSplitUnit, 0};
    launch_gemm<conv::DgradView>(version, a, 1, vec, stream, op);
    return;
  }
  // Strided: one GEMM per stride phase (conv2d_gemm_view.cuh, DgradPhaseView), each pixel of
  // dx written by exactly one of them.
  for (int ph = 0; ph < sh.stride_h; ++ph)
    for (int pw = 0; pw < sh.stride_w; ++pw) {
      GemmArgs a{g, dy, w, nullptr, dx, 0, 0};
      a.g.phase = conv::make_phase(g, ph, pw);
      if (conv::DgradPhaseView::m(a.g) == 0) continue;  // H or W < stride: an empty phase
      a.k_per_split = int(ceil_div(conv::DgradPhaseView::kdim(a.g), kSplitUnit)) * kSplitUnit;
      launch_gemm<conv::DgradPhaseView>(version, a, 1, vec, stream, op);
    }
}

size_t conv2d_backward_weight_workspace(int version, const Conv2dLabShape& sh) {
  const WgradPlan plan = wgrad_plan(version, sh, "conv2d_backward_weight");
  return size_t(plan.splits) * plan.per_split * sizeof(float);
}

void conv2d_backward_weight(int version, const Conv2dLabShape& sh, const float* x,
                            const float* dy, float* dw, float* dbias, void* workspace,
                            cudaStream_t stream) {
  const char* op = "conv2d_backward_weight";
  const WgradPlan plan = wgrad_plan(version, sh, op);
  if (x == nullptr || dy == nullptr || dw == nullptr)
    labs::fail(std::string(op) + ": null pointer");
  if (workspace != nullptr && !labs::aligned16(workspace))
    labs::fail(std::string(op) + ": the workspace must be 16-byte aligned");
  const Geo g = conv::make_geo(sh);
  labs::Workspace ws(workspace, size_t(plan.splits) * plan.per_split * sizeof(float), stream);
  float* partial = ws.as<float>();
  const int krsc = sh.k * sh.r * sh.s * sh.c;
  if (plan.version == 1) {
    dim3 grid(unsigned(ceil_div(plan.per_split, 256)), unsigned(plan.splits));
    wgrad_v1<<<grid, 256, 0, stream>>>(g, x, dy, partial, plan.k_per_split, plan.per_split);
    labs::check_launch(op);
  } else {
    const GemmArgs a{g, dy, x, nullptr, partial, plan.k_per_split, plan.per_split};
    const bool vec =
        sh.c % 4 == 0 && sh.k % 4 == 0 && labs::aligned16(x) && labs::aligned16(dy);
    launch_gemm<conv::WgradView>(plan.version, a, plan.splits, vec, stream, op);
    if (dbias != nullptr) {
      dim3 grid(unsigned(ceil_div(sh.k, 32)), unsigned(plan.splits));
      bias_partial<<<grid, dim3(32, 8), 0, stream>>>(g, dy, partial, plan.k_per_split,
                                                      plan.per_split);
      labs::check_launch(op);
    }
  }
  wgrad_reduce<<<unsigned(ceil_div(plan.per_split, 32)), dim3(32, 8), 0, stream>>>(
      partial, plan.splits, plan.per_split, krsc, dw, dbias);
  labs::check_launch(op);
}

}  // namespace kernels::cuda
