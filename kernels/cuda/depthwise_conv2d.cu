// kernels/cuda/depthwise_conv2d.cu — depthwise convolution (groups == channels), NHWC, stride 1.
//
//   y[n, p, q, c] = bias[c] + sum_{r,s} x[n, p - pad_h + r, q - pad_w + s, c] * w[c, r, s]
//   x [N, H, W, C] and y [N, P, Q, C] channels last; w [C, R, S, 1] (= [C, R*S]).
// Forward, data gradient and weight (+ bias) gradient. The data gradient is the forward itself:
// with stride 1, dx is dy correlated with the filter flipped in r and s and padding R-1-pad,
// so every forward version takes a FLIP flag and serves both.
//
// Versions (launcher argument `version`; 0 = the fastest = 3):
//   v1  naive: one thread per output element, channel fastest so a warp's loads of x and its
//       stores of y are coalesced; the weight read w[c*R*S + tap] is strided (cached).
//       Weight gradient: one thread per (tap, channel) summing over every n, p, q.
//   v2  shared-memory tile: a block owns an 8x8 output tile of one image and a slab of 32
//       channels (one per lane). It copies the (8+R-1)x(8+S-1) input pixels of the slab into
//       shared memory once (the halo is loaded once per tile instead of R*S times) and the
//       slab's filters transposed to [tap][lane]; each warp then computes 8 of the 64 pixels.
//       Any R, S. Weight gradient: the same tiles of x and dy; each thread owns up to 8 taps of
//       its channel and accumulates them over the tiles its block visits (grid-stride over
//       (n, tile)); per-block partial sums [chunk][tap][C] are added by a second kernel.
//   v3  register-blocked, K x K filters (K = 3, 5, 7; others fall back to v2): the tile is
//       filled with 16-byte loads along C (8 lanes cover one pixel's 32 channels, a warp moves
//       4 pixels = 512 contiguous bytes per instruction) and each thread keeps its channel's
//       K*K weights in registers and computes a 4x4 block of output pixels: it reads each of
//       the 10 input rows (4+K-1) once into 10 registers (4+K-1 columns) and applies it to
//       every output row that needs it: 100 shared loads for 784 FMAs at K=7, against 98
//       loads per output (49 tile + 49 weight) in v2. The compute stays one channel per lane:
//       4 channels per thread would need 4*49 weight registers. Weight gradient: a thread
//       accumulates all K*K taps (+ bias) of its channel in registers over rows of 8 outputs
//       (8 + K*(8+K-1) loads for 8*K*K FMAs), the block's 4 warps are summed in shared memory
//       and the per-block partials go through the same reduction kernel as v2.
//   -Xptxas -v (sm_90, nvcc 13.0): see the table in kernels/README.md; the v3 kernels use no
//   local memory (no spills). v3 forward K=7: 70 registers, 31.6 KB static shared memory;
//   v3 weight gradient K=7: 127 registers, 33.3 KB.
//
// Roofline, float32, batch 64, 7x7 pad 3 (ConvNeXt-T), H100 at 2.6 TB/s and 67 TFLOP/s:
//   forward: bytes = x + y = 8*N*H*W*C, FLOPs = 2*49*N*H*W*C
//     stage 1  96 ch 56x56: 154.1 MB -> 59.3 us,  1.89 GFLOP -> 28.2 us   (PyTorch 0.46 ms)
//     stage 3 384 ch 14x14:  38.5 MB -> 14.8 us,  0.47 GFLOP ->  7.0 us   (PyTorch 0.14 ms)
//     stage 4 768 ch  7x7:   19.3 MB ->  7.4 us,  0.24 GFLOP ->  3.5 us   (PyTorch 0.10 ms)
//   forward + backward (forward, dx reads dy writes dx, dw reads x and dy): 3x the bytes and
//   FLOPs: stage 1 462 MB -> 178 us, stage 3 116 MB -> 44 us, stage 4 58 MB -> 22 us
//   (PyTorch 6.48 / 1.99 / 0.88 ms). Memory-bound: the FLOP floor is about half the byte floor,
//   so the inner loops must also be lean (shared loads per FMA) to reach the byte floor.
// The tile read from L2 is (8+6)^2/8^2 = 3.1x the pixels written (neighbouring tiles share
// their halo through L2, not DRAM); a block that slides down a column strip keeping the last
// K-1 rows in shared memory would cut that to (8+6)/8 — the next step if L2 turns out to limit.
#include <algorithm>
#include <string>

#include "kernels/cuda/depthwise_conv2d.h"
#include "kernels/cuda/labs_common.cuh"

namespace kernels::cuda {

namespace {

using labs::ceil_div;

constexpr int kSlab = 32;     // channels per block: one per lane
constexpr int kTile = 8;      // a block's output tile is kTile x kTile pixels
constexpr int kWStride = 33;  // shared weight row stride [tap][lane]: +1 spreads the transposing
                              // store over all banks (the lane-order load is conflict-free anyway)
constexpr int kMaxTapsV2 = 64;  // v2 weight gradient: up to 8 taps per thread x 8 warps

// The sizes one convolution kernel sees. Forward: in = x [n, hi, wi, c] -> out = y [n, ho, wo, c].
// Data gradient: in = dy [n, P, Q, c] -> out = dx [n, H, W, c] with pad' = R-1-pad (may be < 0).
struct Geo {
  int n, hi, wi, c;  // input  [n, hi, wi, c]
  int ho, wo;        // output [n, ho, wo, c]
  int r, s;          // filter taps
  int pad_h, pad_w;  // input row of output row p, tap r: p - pad_h + r
};

// ---- shared building blocks ------------------------------------------------------------

// tile[(ih*tw + iw)*32 + cl] = in[n, gh0+ih, gw0+iw, c0+cl], zero outside the image or past C.
// vec: 16-byte loads (C % 4 == 0 and `in` 16-byte aligned, so every pixel's slab is aligned).
__device__ __forceinline__ void load_tile(float* tile, const float* in, int n, int hi, int wi,
                                          int c, int gh0, int gw0, int th, int tw, int c0, bool vec,
                                          int tid, int nthreads) {
  if (vec) {
    for (int i = tid; i < th * tw * (kSlab / 4); i += nthreads) {
      int cq = i & 7;    // which float4 of the pixel's 32 channels
      int pix = i >> 3;  // pixel of the tile, row-major
      int ih = pix / tw, iw = pix - ih * tw;
      int gh = gh0 + ih, gw = gw0 + iw, cc = c0 + cq * 4;
      float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
      if (gh >= 0 && gh < hi && gw >= 0 && gw < wi && cc < c) {
        v = __ldg(
            reinterpret_cast<const float4*>(in + ((int64_t(n) * hi + gh) * wi + gw) * c + cc));
      }
      reinterpret_cast<float4*>(tile)[i] = v;  // tile + pix*32 + cq*4
    }
  } else {
    for (int i = tid; i < th * tw * kSlab; i += nthreads) {
      int cl = i & 31, pix = i >> 5;
      int ih = pix / tw, iw = pix - ih * tw;
      int gh = gh0 + ih, gw = gw0 + iw, cc = c0 + cl;
      float v = 0.f;
      if (gh >= 0 && gh < hi && gw >= 0 && gw < wi && cc < c) {
        v = __ldg(in + ((int64_t(n) * hi + gh) * wi + gw) * c + cc);
      }
      tile[i] = v;
    }
  }
}

// ws[tap*kWStride + cl] = w[c0+cl, tap] (tap mirrored when flip), zero past C. The slab's
// filters are contiguous in w, so the global read is coalesced; the transpose happens in the
// shared store.
__device__ __forceinline__ void load_weights(float* ws, const float* w, int c, int rs, int c0,
                                             bool flip, int tid, int nthreads) {
  int count = min(kSlab, c - c0) * rs;
  for (int i = tid; i < kSlab * rs; i += nthreads) {
    int cl = i / rs, tap = i - cl * rs;
    float v = i < count ? __ldg(w + int64_t(c0) * rs + i) : 0.f;
    ws[(flip ? rs - 1 - tap : tap) * kWStride + cl] = v;
  }
}

// ---- forward / data gradient ------------------------------------------------------------

template <bool FLIP>
__global__ void dw_conv_v1(Geo g, const float* __restrict__ in, const float* __restrict__ w,
                           const float* __restrict__ bias, float* __restrict__ out) {
  const int64_t total = int64_t(g.n) * g.ho * g.wo * g.c;
  const int rs = g.r * g.s;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    int c = int(i % g.c);
    int64_t t = i / g.c;
    int q = int(t % g.wo);
    t /= g.wo;
    int p = int(t % g.ho);
    int n = int(t / g.ho);
    float acc = bias ? bias[c] : 0.f;
    for (int r = 0; r < g.r; ++r) {
      int ih = p - g.pad_h + r;
      if (ih < 0 || ih >= g.hi) continue;
      for (int s = 0; s < g.s; ++s) {
        int iw = q - g.pad_w + s;
        if (iw < 0 || iw >= g.wi) continue;
        int tap = r * g.s + s;
        float wv = w[int64_t(c) * rs + (FLIP ? rs - 1 - tap : tap)];
        acc = fmaf(in[((int64_t(n) * g.hi + ih) * g.wi + iw) * g.c + c], wv, acc);
      }
    }
    out[i] = acc;
  }
}

// grid (C/32 slabs, tiles of the output, n); 256 threads = 32 lanes (channels) x 8 warps.
template <bool FLIP>
__global__ void __launch_bounds__(256)
    dw_conv_v2(Geo g, const float* __restrict__ in, const float* __restrict__ w,
               const float* __restrict__ bias, float* __restrict__ out, int tiles_q, bool vec) {
  extern __shared__ float4 smem_v2[];
  float* tile = reinterpret_cast<float*>(smem_v2);
  const int th = kTile + g.r - 1, tw = kTile + g.s - 1, rs = g.r * g.s;
  float* ws = tile + th * tw * kSlab;  // th*tw*32 is a multiple of 4: stays 16-byte aligned
  const int c0 = blockIdx.x * kSlab;
  const int p0 = (blockIdx.y / tiles_q) * kTile, q0 = (blockIdx.y % tiles_q) * kTile;
  const int n = blockIdx.z;
  load_tile(tile, in, n, g.hi, g.wi, g.c, p0 - g.pad_h, q0 - g.pad_w, th, tw, c0, vec, threadIdx.x,
            blockDim.x);
  load_weights(ws, w, g.c, rs, c0, FLIP, threadIdx.x, blockDim.x);
  __syncthreads();

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int c = c0 + lane;
  if (c >= g.c) return;
  const float b = bias ? bias[c] : 0.f;
  for (int pix = warp; pix < kTile * kTile; pix += 8) {
    int op = pix / kTile, oq = pix % kTile;
    int p = p0 + op, q = q0 + oq;
    if (p >= g.ho || q >= g.wo) continue;
    float acc = b;
    for (int r = 0; r < g.r; ++r) {
      const float* trow = tile + ((op + r) * tw + oq) * kSlab + lane;
      const float* wrow = ws + r * g.s * kWStride + lane;
      for (int s = 0; s < g.s; ++s) acc = fmaf(trow[s * kSlab], wrow[s * kWStride], acc);
    }
    out[((int64_t(n) * g.ho + p) * g.wo + q) * g.c + c] = acc;
  }
}

// grid (C/32 slabs, tiles, n); 128 threads = 32 lanes x 4 warps, warp = one 4x4 pixel block.
template <int K, bool FLIP>
__global__ void __launch_bounds__(128)
    dw_conv_v3(Geo g, const float* __restrict__ in, const float* __restrict__ w,
               const float* __restrict__ bias, float* __restrict__ out, int tiles_q, bool vec) {
  constexpr int T = kTile + K - 1;  // input tile side (output tile + halo)
  constexpr int PB = 4, QB = 4;     // output rows x columns per thread
  __shared__ __align__(16) float tile[T * T * kSlab];
  __shared__ float ws[K * K * kWStride];
  const int c0 = blockIdx.x * kSlab;
  const int p0 = (blockIdx.y / tiles_q) * kTile, q0 = (blockIdx.y % tiles_q) * kTile;
  const int n = blockIdx.z;
  load_tile(tile, in, n, g.hi, g.wi, g.c, p0 - g.pad_h, q0 - g.pad_w, T, T, c0, vec, threadIdx.x,
            128);
  load_weights(ws, w, g.c, K * K, c0, FLIP, threadIdx.x, 128);
  __syncthreads();

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int bp = (warp >> 1) * PB, bq = (warp & 1) * QB;  // this warp's block in the tile
  const int c = c0 + lane;
  float wr[K * K];
#pragma unroll
  for (int t = 0; t < K * K; ++t) wr[t] = ws[t * kWStride + lane];
  const float b = (bias != nullptr && c < g.c) ? bias[c] : 0.f;
  float acc[PB][QB];
#pragma unroll
  for (int i = 0; i < PB; ++i)
#pragma unroll
    for (int j = 0; j < QB; ++j) acc[i][j] = b;

  // Input row ir of the block feeds output row pr through filter row r = ir - pr.
  const float* base = tile + (bp * T + bq) * kSlab + lane;
#pragma unroll
  for (int ir = 0; ir < PB + K - 1; ++ir) {
    float row[QB + K - 1];
#pragma unroll
    for (int j = 0; j < QB + K - 1; ++j) row[j] = base[(ir * T + j) * kSlab];
#pragma unroll
    for (int pr = 0; pr < PB; ++pr) {
      const int r = ir - pr;
      if (r < 0 || r >= K) continue;  // resolved at compile time
#pragma unroll
      for (int s = 0; s < K; ++s)
#pragma unroll
        for (int qo = 0; qo < QB; ++qo) acc[pr][qo] = fmaf(row[qo + s], wr[r * K + s], acc[pr][qo]);
    }
  }
  if (c >= g.c) return;
#pragma unroll
  for (int pr = 0; pr < PB; ++pr) {
    int p = p0 + bp + pr;
    if (p >= g.ho) break;
#pragma unroll
    for (int qo = 0; qo < QB; ++qo) {
      int q = q0 + bq + qo;
      if (q < g.wo) out[((int64_t(n) * g.ho + p) * g.wo + q) * g.c + c] = acc[pr][qo];
    }
  }
}

// ---- weight gradient --------------------------------------------------------------------
// Forward geometry: x [n, hi, wi, c], dy [n, ho, wo, c];
// dw[c, r, s] = sum_{n,p,q} dy[n,p,q,c] * x[n, p - pad_h + r, q - pad_w + s, c], dbias = sum dy.

// One thread per (tap, channel); tap == R*S is the bias.
__global__ void dw_wgrad_v1(Geo g, const float* __restrict__ x, const float* __restrict__ dy,
                            float* __restrict__ dw, float* __restrict__ dbias) {
  const int rs = g.r * g.s;
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (rs + 1) * g.c) return;
  int c = i % g.c, tap = i / g.c;
  if (tap == rs && dbias == nullptr) return;
  int r = tap / g.s, s = tap % g.s;
  float acc = 0.f;
  for (int n = 0; n < g.n; ++n) {
    for (int p = 0; p < g.ho; ++p) {
      int ih = p - g.pad_h + r;
      if (tap < rs && (ih < 0 || ih >= g.hi)) continue;
      for (int q = 0; q < g.wo; ++q) {
        float d = dy[((int64_t(n) * g.ho + p) * g.wo + q) * g.c + c];
        if (tap == rs) {
          acc += d;
          continue;
        }
        int iw = q - g.pad_w + s;
        if (iw < 0 || iw >= g.wi) continue;
        acc = fmaf(d, x[((int64_t(n) * g.hi + ih) * g.wi + iw) * g.c + c], acc);
      }
    }
  }
  if (tap < rs) {
    dw[int64_t(c) * rs + tap] = acc;
  } else {
    dbias[c] = acc;
  }
}

// grid (slabs, chunks); 256 threads. Thread (lane, warp) owns taps warp, warp+8, ... of
// channel c0+lane; warp 0 also sums the bias. Writes partial[chunk][tap][c], tap R*S = bias.
__global__ void __launch_bounds__(256)
    dw_wgrad_v2(Geo g, const float* __restrict__ x, const float* __restrict__ dy,
                float* __restrict__ partial, int tiles_q, int tiles_per_image, bool vec) {
  extern __shared__ float4 smem_w2[];
  const int th = kTile + g.r - 1, tw = kTile + g.s - 1, rs = g.r * g.s;
  float* xt = reinterpret_cast<float*>(smem_w2);
  float* dyt = xt + th * tw * kSlab;
  const int c0 = blockIdx.x * kSlab;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  constexpr int J = kMaxTapsV2 / 8;
  int off[J];  // shared-memory offset of each owned tap relative to the output pixel
  float acc[J];
#pragma unroll
  for (int j = 0; j < J; ++j) {
    int tap = warp + 8 * j;
    off[j] = tap < rs ? ((tap / g.s) * tw + tap % g.s) * kSlab : -1;
    acc[j] = 0.f;
  }
  float bacc = 0.f;
  const int total = g.n * tiles_per_image;
  for (int t = blockIdx.y; t < total; t += gridDim.y) {
    int n = t / tiles_per_image, tt = t % tiles_per_image;
    int p0 = (tt / tiles_q) * kTile, q0 = (tt % tiles_q) * kTile;
    __syncthreads();  // the previous tile has been read by every warp
    load_tile(xt, x, n, g.hi, g.wi, g.c, p0 - g.pad_h, q0 - g.pad_w, th, tw, c0, vec, threadIdx.x,
              blockDim.x);
    load_tile(dyt, dy, n, g.ho, g.wo, g.c, p0, q0, kTile, kTile, c0, vec, threadIdx.x, blockDim.x);
    __syncthreads();
    for (int pix = 0; pix < kTile * kTile; ++pix) {
      int op = pix / kTile, oq = pix % kTile;
      float d = dyt[pix * kSlab + lane];  // zero outside dy, so border pixels add nothing
      const float* xp = xt + (op * tw + oq) * kSlab + lane;
      bacc += d;
#pragma unroll
      for (int j = 0; j < J; ++j)
        if (off[j] >= 0) acc[j] = fmaf(d, xp[off[j]], acc[j]);
    }
  }
  const int c = c0 + lane;
  if (c >= g.c) return;
  float* part = partial + int64_t(blockIdx.y) * (rs + 1) * g.c;
#pragma unroll
  for (int j = 0; j < J; ++j) {
    int tap = warp + 8 * j;
    if (tap < rs) part[int64_t(tap) * g.c + c] = acc[j];
  }
  if (warp == 0) part[int64_t(rs) * g.c + c] = bacc;
}

// grid (slabs, chunks); 128 threads; warp w handles rows w and w+4 of each 8x8 tile.
template <int K>
__global__ void __launch_bounds__(128)
    dw_wgrad_v3(Geo g, const float* __restrict__ x, const float* __restrict__ dy,
                float* __restrict__ partial, int tiles_q, int tiles_per_image, bool vec) {
  constexpr int T = kTile + K - 1, KK = K * K;
  constexpr int kFloats = T * T * kSlab + kTile * kTile * kSlab;
  static_assert(4 * (KK + 1) * kSlab <= kFloats, "the warp reduction reuses the tile buffers");
  __shared__ __align__(16) float smem[kFloats];
  float* xt = smem;
  float* dyt = smem + T * T * kSlab;
  const int c0 = blockIdx.x * kSlab;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float acc[KK];
#pragma unroll
  for (int t = 0; t < KK; ++t) acc[t] = 0.f;
  float bacc = 0.f;
  const int total = g.n * tiles_per_image;
  for (int t = blockIdx.y; t < total; t += gridDim.y) {
    int n = t / tiles_per_image, tt = t % tiles_per_image;
    int p0 = (tt / tiles_q) * kTile, q0 = (tt % tiles_q) * kTile;
    __syncthreads();
    load_tile(xt, x, n, g.hi, g.wi, g.c, p0 - g.pad_h, q0 - g.pad_w, T, T, c0, vec, threadIdx.x,
              128);
    load_tile(dyt, dy, n, g.ho, g.wo, g.c, p0, q0, kTile, kTile, c0, vec, threadIdx.x, 128);
    __syncthreads();
    for (int op = warp; op < kTile; op += 4) {
      float d[kTile];
#pragma unroll
      for (int j = 0; j < kTile; ++j) {
        d[j] = dyt[(op * kTile + j) * kSlab + lane];
        bacc += d[j];
      }
#pragma unroll
      for (int r = 0; r < K; ++r) {
        float xr[kTile + K - 1];
#pragma unroll
        for (int j = 0; j < kTile + K - 1; ++j) xr[j] = xt[((op + r) * T + j) * kSlab + lane];
#pragma unroll
        for (int s = 0; s < K; ++s)
#pragma unroll
          for (int j = 0; j < kTile; ++j) acc[r * K + s] = fmaf(d[j], xr[j + s], acc[r * K + s]);
      }
    }
  }
  // Sum the 4 warps' accumulators of each (tap, channel) through shared memory.
  __syncthreads();
  float* red = smem;  // [warp][KK+1][32]
#pragma unroll
  for (int t = 0; t < KK; ++t) red[(warp * (KK + 1) + t) * kSlab + lane] = acc[t];
  red[(warp * (KK + 1) + KK) * kSlab + lane] = bacc;
  __syncthreads();
  float* part = partial + int64_t(blockIdx.y) * (KK + 1) * g.c;
  for (int i = threadIdx.x; i < (KK + 1) * kSlab; i += 128) {
    int cl = i & 31, t = i >> 5;
    float sum = 0.f;
#pragma unroll
    for (int w = 0; w < 4; ++w) sum += red[(w * (KK + 1) + t) * kSlab + cl];
    if (c0 + cl < g.c) part[int64_t(t) * g.c + c0 + cl] = sum;
  }
}

// dw[c, tap] = sum over chunks of partial[chunk][tap][c]; tap == rs is the bias. Fixed order:
// the result does not depend on scheduling.
__global__ void dw_wgrad_reduce(const float* __restrict__ partial, int chunks, int rs, int c,
                                float* __restrict__ dw, float* __restrict__ dbias) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (rs + 1) * c) return;
  int cc = i % c, tap = i / c;  // consecutive threads read consecutive channels
  float sum = 0.f;
  for (int k = 0; k < chunks; ++k) sum += partial[(int64_t(k) * (rs + 1) + tap) * c + cc];
  if (tap < rs) {
    dw[int64_t(cc) * rs + tap] = sum;
  } else if (dbias != nullptr) {
    dbias[cc] = sum;
  }
}

// ---- launchers ---------------------------------------------------------------------------

void validate(const DepthwiseShape& sh, const char* op) {
  if (sh.n < 1 || sh.h < 1 || sh.w < 1 || sh.c < 1 || sh.r < 1 || sh.s < 1 || sh.pad_h < 0 ||
      sh.pad_w < 0) {
    labs::fail(std::string(op) + ": bad shape: input [" + std::to_string(sh.n) + "," +
               std::to_string(sh.h) + "," + std::to_string(sh.w) + "," + std::to_string(sh.c) +
               "], filter " + std::to_string(sh.r) + "x" + std::to_string(sh.s) + ", padding " +
               std::to_string(sh.pad_h) + "," + std::to_string(sh.pad_w) +
               " (sizes must be >= 1, padding >= 0)");
  }
  if (sh.p() < 1 || sh.q() < 1) {
    labs::fail(std::string(op) + ": a " + std::to_string(sh.r) + "x" + std::to_string(sh.s) +
               " filter with padding " + std::to_string(sh.pad_h) + "," + std::to_string(sh.pad_w) +
               " does not fit the " + std::to_string(sh.h) + "x" + std::to_string(sh.w) + " input");
  }
  if (sh.n > 65535) labs::fail(std::string(op) + ": batch over 65535 is not supported");
}

// Which version actually runs: 0 means the fastest; v3 needs a square 3/5/7 filter and v2 a
// tile that fits in shared memory, else they step down.
int resolve(int version, const Geo& g, const char* op) {
  if (version < 0 || version > kDepthwiseVersions) {
    labs::fail(std::string(op) + ": version " + std::to_string(version) + " does not exist (0.." +
               std::to_string(kDepthwiseVersions) + ")");
  }
  if (version == 0) version = 3;
  if (version == 3 && !(g.r == g.s && (g.r == 3 || g.r == 5 || g.r == 7))) version = 2;
  return version;
}

size_t conv_v2_smem(const Geo& g) {
  return size_t((kTile + g.r - 1) * (kTile + g.s - 1) * kSlab + g.r * g.s * kWStride) * 4;
}
size_t wgrad_v2_smem(const Geo& g) {
  return size_t((kTile + g.r - 1) * (kTile + g.s - 1) + kTile * kTile) * kSlab * 4;
}
constexpr size_t kMaxSmem = 227 * 1024;

template <int K, bool FLIP>
void launch_v3(const Geo& g, const float* in, const float* w, const float* bias, float* out,
               bool vec, cudaStream_t stream) {
  int tiles_q = int(ceil_div(g.wo, kTile)), tiles_p = int(ceil_div(g.ho, kTile));
  dim3 grid(unsigned(ceil_div(g.c, kSlab)), unsigned(tiles_p * tiles_q), unsigned(g.n));
  dw_conv_v3<K, FLIP><<<grid, 128, 0, stream>>>(g, in, w, bias, out, tiles_q, vec);
}

template <bool FLIP>
void launch_conv(int version, const Geo& g, const float* in, const float* w, const float* bias,
                 float* out, cudaStream_t stream, const char* op) {
  if (in == nullptr || w == nullptr || out == nullptr)
    labs::fail(std::string(op) + ": null pointer");
  version = resolve(version, g, op);
  if (version == 2 && conv_v2_smem(g) > kMaxSmem) version = 1;
  const bool vec = g.c % 4 == 0 && labs::aligned16(in);
  const int tiles_q = int(ceil_div(g.wo, kTile)), tiles_p = int(ceil_div(g.ho, kTile));
  if (version >= 2 && int64_t(tiles_p) * tiles_q > 65535) version = 1;
  if (version == 1) {
    int64_t total = int64_t(g.n) * g.ho * g.wo * g.c;
    int blocks = int(std::min<int64_t>(ceil_div(total, 256), int64_t(labs::sm_count()) * 32));
    dw_conv_v1<FLIP><<<blocks, 256, 0, stream>>>(g, in, w, bias, out);
  } else if (version == 2) {
    size_t smem = conv_v2_smem(g);
    if (smem > 48 * 1024) {
      labs::check(cudaFuncSetAttribute(dw_conv_v2<FLIP>,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)),
                  op);
    }
    dim3 grid(unsigned(ceil_div(g.c, kSlab)), unsigned(tiles_p * tiles_q), unsigned(g.n));
    dw_conv_v2<FLIP><<<grid, 256, smem, stream>>>(g, in, w, bias, out, tiles_q, vec);
  } else if (g.r == 3) {
    launch_v3<3, FLIP>(g, in, w, bias, out, vec, stream);
  } else if (g.r == 5) {
    launch_v3<5, FLIP>(g, in, w, bias, out, vec, stream);
  } else {
    launch_v3<7, FLIP>(g, in, w, bias, out, vec, stream);
  }
  labs::check_launch(op);
}

Geo forward_geo(const DepthwiseShape& sh) {
  return Geo{sh.n, sh.h, sh.w, sh.c, sh.p(), sh.q(), sh.r, sh.s, sh.pad_h, sh.pad_w};
}

// Version and chunk count of the weight gradient: the chunks (blocks along the reduction)
// are sized to fill the GPU a few times over, and never exceed the number of tiles.
struct WgradPlan {
  int version;
  int chunks;  // partial sums per (tap, channel); 0 for v1
};
WgradPlan wgrad_plan(int version, const DepthwiseShape& sh) {
  const char* op = "depthwise_conv2d_backward_weight";
  Geo g = forward_geo(sh);
  version = resolve(version, g, op);
  if (version == 2 && (g.r * g.s > kMaxTapsV2 || wgrad_v2_smem(g) > kMaxSmem)) version = 1;
  if (version == 1) return {1, 0};
  int64_t tiles = int64_t(sh.n) * ceil_div(g.ho, kTile) * ceil_div(g.wo, kTile);
  int64_t slabs = ceil_div(sh.c, kSlab);
  const void* kernel = version == 2 ? reinterpret_cast<const void*>(dw_wgrad_v2)
                       : g.r == 3   ? reinterpret_cast<const void*>(dw_wgrad_v3<3>)
                       : g.r == 5   ? reinterpret_cast<const void*>(dw_wgrad_v3<5>)
                                    : reinterpret_cast<const void*>(dw_wgrad_v3<7>);
  int64_t resident = version == 2 ? labs::resident_blocks(kernel, 256, wgrad_v2_smem(g))
                                  : labs::resident_blocks(kernel, 128, 0);
  // One wave: slabs x chunks <= resident blocks (at least one chunk per slab).
  int64_t chunks = std::clamp<int64_t>(resident / slabs, 1, std::min<int64_t>(tiles, 65535));
  return {version, int(chunks)};
}

}  // namespace

void depthwise_conv2d_forward(int version, const DepthwiseShape& sh, const float* x, const float* w,
                              const float* bias, float* y, cudaStream_t stream) {
  const char* op = "depthwise_conv2d_forward";
  validate(sh, op);
  launch_conv<false>(version, forward_geo(sh), x, w, bias, y, stream, op);
}

void depthwise_conv2d_backward_data(int version, const DepthwiseShape& sh, const float* dy,
                                    const float* w, float* dx, cudaStream_t stream) {
  const char* op = "depthwise_conv2d_backward_data";
  validate(sh, op);
  // dx = dy (P x Q) correlated with the flipped filter, padding R-1-pad: a forward pass.
  Geo g{
      sh.n, sh.p(), sh.q(), sh.c, sh.h, sh.w, sh.r, sh.s, sh.r - 1 - sh.pad_h, sh.s - 1 - sh.pad_w};
  launch_conv<true>(version, g, dy, w, nullptr, dx, stream, op);
}

size_t depthwise_conv2d_backward_weight_workspace(int version, const DepthwiseShape& sh) {
  validate(sh, "depthwise_conv2d_backward_weight");
  WgradPlan plan = wgrad_plan(version, sh);
  return size_t(plan.chunks) * (sh.r * sh.s + 1) * sh.c * sizeof(float);
}

void depthwise_conv2d_backward_weight(int version, const DepthwiseShape& sh, const float* x,
                                      const float* dy, float* dw, float* dbias, void* workspace,
                                      cudaStream_t stream) {
  const char* op = "depthwise_conv2d_backward_weight";
  validate(sh, op);
  if (x == nullptr || dy == nullptr || dw == nullptr)
    labs::fail(std::string(op) + ": null pointer");
  Geo g = forward_geo(sh);
  WgradPlan plan = wgrad_plan(version, sh);
  const int rs = sh.r * sh.s;
  if (plan.version == 1) {
    int threads = (rs + 1) * sh.c;
    dw_wgrad_v1<<<unsigned(ceil_div(threads, 128)), 128, 0, stream>>>(g, x, dy, dw, dbias);
    labs::check_launch(op);
    return;
  }
  labs::Workspace ws(workspace, size_t(plan.chunks) * (rs + 1) * sh.c * sizeof(float), stream);
  float* partial = ws.as<float>();
  const bool vec = sh.c % 4 == 0 && labs::aligned16(x) && labs::aligned16(dy);
  const int tiles_q = int(ceil_div(g.wo, kTile));
  const int tiles_per_image = int(ceil_div(g.ho, kTile)) * tiles_q;
  dim3 grid(unsigned(ceil_div(sh.c, kSlab)), unsigned(plan.chunks));
  if (plan.version == 2) {
    size_t smem = wgrad_v2_smem(g);
    if (smem > 48 * 1024) {
      labs::check(
          cudaFuncSetAttribute(dw_wgrad_v2, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)),
          op);
    }
    dw_wgrad_v2<<<grid, 256, smem, stream>>>(g, x, dy, partial, tiles_q, tiles_per_image, vec);
  } else if (sh.r == 3) {
    dw_wgrad_v3<3><<<grid, 128, 0, stream>>>(g, x, dy, partial, tiles_q, tiles_per_image, vec);
  } else if (sh.r == 5) {
    dw_wgrad_v3<5><<<grid, 128, 0, stream>>>(g, x, dy, partial, tiles_q, tiles_per_image, vec);
  } else {
    dw_wgrad_v3<7><<<grid, 128, 0, stream>>>(g, x, dy, partial, tiles_q, tiles_per_image, vec);
  }
  labs::check_launch(op);
  int threads = (rs + 1) * sh.c;
  dw_wgrad_reduce<<<unsigned(ceil_div(threads, 256)), 256, 0, stream>>>(partial, plan.chunks, rs,
                                                                        sh.c, dw, dbias);
  labs::check_launch(op);
}

}  // namespace kernels::cuda
