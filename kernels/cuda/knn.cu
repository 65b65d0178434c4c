// kernels/cuda/knn.cu — k-nearest-neighbour search: squared L2 (or cosine) scores of Q queries
// against N bank rows of dimension D, and the k best per query (k <= 64).
//
//   L2:     d(i, j) = ||q_i||^2 + ||b_j||^2 - 2 q_i . b_j, clamped at 0; smallest first
//   cosine: s(i, j) = q_i . b_j / (max(||q_i||, 1e-12) max(||b_j||, 1e-12)); largest first
// Layout: queries [Q, D], bank [N, D] row-major, both contiguous along D (the GEMM is
// "A times B transposed" with both operands K-contiguous). Outputs values [Q, k], indices
// [Q, k] int64.
//
// Selection (knn_select.cuh): every candidate is a 64-bit key (score, then index), kept in
// per-warp sorted lists of up to 64.
//
// Versions (launcher argument `version`; 0 = the fastest measured = 4 since an H200 timed it):
//   v1  distance matrix [Q, N] in the workspace by a 16x16 shared-memory tiled GEMM (one output
//       per thread, row norms from a warp-per-row kernel), then one 256-thread block per row
//       selects the top k (each warp scans a strided part of the row into its own list, warp 0
//       merges the 8 lists).
//   v2  the same, with a register-blocked GEMM: 128x128 output tile per 256-thread block,
//       8x8 outputs per thread, K-slices of 8 double-buffered in shared memory (one barrier per
//       slice), 16-byte global loads transposed into [k][row] tiles so each inner step is four
//       128-bit shared loads for 64 FMAs.
//   v3  fused: the v2 GEMM tile goes to shared memory instead of global, and the block keeps
//       the top-k of each of its 128 queries in shared memory while it walks its share of the
//       bank (grid = query tiles x bank splits sized to one wave); a merge kernel selects the k
//       best of the splits' lists. The [Q, N] matrix never exists: 0.4 GB less traffic and no
//       workspace of that size. For Q <= 8 a GEMM tile would waste 127/128 of its FLOPs, so v3
//       streams the bank instead: a warp per bank row, 16-byte loads, the queries in shared
//       memory, one warp-sum per query, per-warp lists in registers, merged per block.
//   v4  v3 with the GEMM tile on tensor cores: 8 warps of 64x32, mma.sync m16n8k8 TF32, each
//       operand split in two TF32 halves (3xTF32, mma_tf32.cuh) so the dot products keep about
//       float32's accuracy and the neighbours stay those of v3 (plain TF32 would keep ~3
//       digits: near-ties would swap). Q <= 8 streams the bank as v3.
//   v5  screen, then re-rank: v4's kernel with one TF32 product per product (1xTF32, a third of
//       the tensor-core work and no operand splitting) keeps each query's kc = max(2k, k + 16)
//       best candidates (at most 64) instead of k, and a second pass recomputes those kc
//       distances in float32 (a warp per query, one bank row at a time) and keeps the k best.
//       Plain TF32 errs by ~1e-3 of |q| |b|; the k-th and kc-th best of a large bank lie much
//       further apart, so the k true best are among the kc and come out as v3's. k > 48 leaves
//       no room for candidates: v4 runs. Q <= 8 streams the bank as v3. Not yet timed on a GPU.
//   -Xptxas -v (sm_90, nvcc 13.0): see kernels/README.md; no spills but in v2's distance
//   kernel (24 bytes, its epilogue) and v5's fused kernel (76 bytes at the 128-register cap of
//   two blocks per SM).
//
// Roofline (H100: 2.6 TB/s, 67 TFLOP/s fp32 on CUDA cores):
//   Q=1024, N=100000, D=768, k=15: 2*Q*N*D = 157.3 GFLOP -> 2.35 ms; bank 307 MB -> 0.12 ms;
//     compute-bound. v1/v2 also write and read the 410 MB matrix (+0.32 ms).
//     PyTorch cdist + topk: 5.8 ms (27 TFLOP/s). v4 runs 3 TF32 products per product on the
//     tensor cores (495 TFLOP/s dense): a floor of 3 x 157.3 GFLOP -> 0.95 ms.
//     v5 runs one TF32 product per product: 157.3 GFLOP at 495 TFLOP/s = 0.32 ms, plus the
//     re-rank (Q x kc bank rows read again: 1024 x 31 x 768 x 4 B = 98 MB, ~0.04 ms).
//   Q=1, N=1,000,000, D=768: bank 3.07 GB -> 1.18 ms; 1.5 GFLOP -> 0.02 ms; memory-bound.
#include <algorithm>
#include <string>

#include "kernels/cuda/knn.h"
#include "kernels/cuda/labs_common.cuh"
#include "kernels/cuda/knn_select.cuh"
#include "kernels/cuda/knn_tile.cuh"
#include "kernels/cuda/mma_tf32.cuh"

namespace kernels::cuda {

namespace {

using labs::align256;
using labs::ceil_div;
using labs::warp_sum;

using namespace topk;  // keys and warp lists (knn_select.cuh)

constexpr int kSmallQ = 8;             // v3 streams the bank for Q <= kSmallQ

// ---- norms and the distance epilogue ------------------------------------------------------------

// out[r] = ||x_r||^2 (L2) or 1 / max(||x_r||, 1e-12) (cosine); one warp per row.
__global__ void row_norms(const float* __restrict__ x, int64_t rows, int d, bool inverse,
                          float* __restrict__ out) {
  const int lane = threadIdx.x & 31;
  const int64_t r = blockIdx.x * int64_t(blockDim.x / 32) + (threadIdx.x >> 5);
  if (r >= rows) return;
  float s = 0.f;
  for (int c = lane; c < d; c += 32) {
    float v = x[r * d + c];
    s = fmaf(v, v, s);
  }
  s = warp_sum(s);
  if (lane == 0) out[r] = inverse ? 1.f / fmaxf(sqrtf(s), 1e-12f) : s;
}

// The score stored for selection: smaller is better. L2 clamps at 0 (keeping NaN); cosine
// stores the negated similarity.
__device__ __forceinline__ float score(float dot, float qn, float bn, bool cosine) {
  if (cosine) return -(dot * qn * bn);
  float d = qn + bn - 2.f * dot;
  return d < 0.f ? 0.f : d;
}

// ---- v1: 16x16 tiled distance matrix -----------------------------------------------------------

__global__ void dist_v1(const float* __restrict__ a, const float* __restrict__ b,
                        const float* __restrict__ an, const float* __restrict__ bn,
                        float* __restrict__ out, int64_t q, int64_t n, int d, bool cosine) {
  __shared__ float As[16][17], Bs[16][17];  // +1: Bs[tx][kk] reads hit 16 different banks
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t i0 = int64_t(blockIdx.y) * 16, j0 = int64_t(blockIdx.x) * 16;
  float acc = 0.f;
  for (int k0 = 0; k0 < d; k0 += 16) {
    As[ty][tx] = (i0 + ty < q && k0 + tx < d) ? a[(i0 + ty) * d + k0 + tx] : 0.f;
    Bs[ty][tx] = (j0 + ty < n && k0 + tx < d) ? b[(j0 + ty) * d + k0 + tx] : 0.f;
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < 16; ++kk) acc = fmaf(As[ty][kk], Bs[tx][kk], acc);
    __syncthreads();
  }
  const int64_t i = i0 + ty, j = j0 + tx;
  if (i < q && j < n) out[i * n + j] = score(acc, an[i], bn[j], cosine);
}

// ---- v2 / v3: 128x128 register-blocked GEMM tile -----------------------------------------------

// Tile sizes and the staging layout: knn_tile.cuh.
using knn_tile::kBK;
using knn_tile::kBM;
using knn_tile::kBN;
using knn_tile::kLd;
using knn_tile::kLdT;
using knn_tile::staged_col;

struct __align__(16) GemmSmem {
  float a[2][kBK][kLd];  // [buffer][k][row of the query tile]
  float b[2][kBK][kLd];  // [buffer][k][row of the bank tile]
};

// Thread (tx = tid%16, ty = tid/16) owns rows ty*4+{0..3}, 64+ty*4+{0..3} and columns
// tx*4+{0..3}, 64+tx*4+{0..3} of the tile: the split halves make every shared read a float4
// that a half-warp shares (rows) or reads contiguously (columns).
__device__ __forceinline__ int tile_row(int i) {
  return (i < 4 ? 0 : 60) + (threadIdx.x >> 4) * 4 + i;
}
__device__ __forceinline__ int tile_col(int j) {
  return (j < 4 ? 0 : 60) + (threadIdx.x & 15) * 4 + j;
}

// Loads rows [r0, r0+128) x k [k0, k0+8) of x (rows x d): thread t takes row t/2, k (t%2)*4.
__device__ __forceinline__ float4 load_slice(const float* __restrict__ x, int64_t rows, int d,
                                             int64_t r0, int k0, bool vec) {
  const int64_t r = r0 + knn_tile::staging_row(threadIdx.x);
  const int kk = k0 + knn_tile::staging_k(threadIdx.x);
  if (r >= rows) return make_float4(0.f, 0.f, 0.f, 0.f);
  const float* p = x + r * d + kk;
  if (vec)
    return kk < d ? __ldg(reinterpret_cast<const float4*>(p)) : make_float4(0.f, 0.f, 0.f, 0.f);
  return make_float4(kk < d ? p[0] : 0.f, kk + 1 < d ? p[1] : 0.f, kk + 2 < d ? p[2] : 0.f,
                     kk + 3 < d ? p[3] : 0.f);
}
template <int LD>
__device__ __forceinline__ void store_slice(float (*s)[LD], float4 v) {
  const int r = knn_tile::staging_row(threadIdx.x), kk = knn_tile::staging_k(threadIdx.x);
  const int c = staged_col<LD>(kk, r);  // kk..kk+3 are in one half of the slice
  s[kk][c] = v.x, s[kk + 1][c] = v.y, s[kk + 2][c] = v.z, s[kk + 3][c] = v.w;
}

// The staging both GEMM tiles share: rows [m0, m0+128) of A and [n0, n0+128) of B walked in
// 8-deep slices, double-buffered in s.a / s.b ([buffer][k][row]); the next slice is loaded into
// registers while multiply(buf) consumes buffer buf, then stored into the other buffer (last read
// before the previous barrier). One barrier per slice; ends with one, so the caller may reuse
// the shared memory at once.
template <class Smem, class Multiply>
__device__ __forceinline__ void stage_slices(const float* __restrict__ A, int64_t rows_a,
                                             const float* __restrict__ B, int64_t rows_b, int d,
                                             int64_t m0, int64_t n0, Smem& s, bool vec,
                                             Multiply multiply) {
  const int slices = int(ceil_div(d, kBK));
  store_slice(s.a[0], load_slice(A, rows_a, d, m0, 0, vec));
  store_slice(s.b[0], load_slice(B, rows_b, d, n0, 0, vec));
  __syncthreads();
  for (int t = 0; t < slices; ++t) {
    const int buf = t & 1;
    const bool more = t + 1 < slices;
    float4 na, nb;  // the next slice, in flight while this one is multiplied
    if (more) {
      na = load_slice(A, rows_a, d, m0, (t + 1) * kBK, vec);
      nb = load_slice(B, rows_b, d, n0, (t + 1) * kBK, vec);
    }
    multiply(buf);
    if (more) {
      store_slice(s.b[buf ^ 1], nb);
      store_slice(s.a[buf ^ 1], na);
    }
    __syncthreads();
  }
}

// acc[i][j] = A[m0 + tile_row(i)] . B[n0 + tile_col(j)] (zero rows past the ends). Ends with a
// barrier, so the caller may reuse the shared memory at once.
__device__ __forceinline__ void gemm_tile(const float* __restrict__ A, int64_t rows_a,
                                          const float* __restrict__ B, int64_t rows_b, int d,
                                          int64_t m0, int64_t n0, GemmSmem& s, float (&acc)[8][8],
                                          bool vec) {
#pragma unroll
  for (int i = 0; i < 8; ++i)
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[i][j] = 0.f;
  const int ty4 = (threadIdx.x >> 4) * 4, tx4 = (threadIdx.x & 15) * 4;
  stage_slices(A, rows_a, B, rows_b, d, m0, n0, s, vec, [&](int buf) {
#pragma unroll
    for (int kk = 0; kk < kBK; ++kk) {
      const float4 a0 = *reinterpret_cast<const float4*>(&s.a[buf][kk][ty4]);
      const float4 a1 = *reinterpret_cast<const float4*>(&s.a[buf][kk][64 + ty4]);
      const float4 b0 = *reinterpret_cast<const float4*>(&s.b[buf][kk][tx4]);
      const float4 b1 = *reinterpret_cast<const float4*>(&s.b[buf][kk][64 + tx4]);
      const float ar[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
      const float br[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
      for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(ar[i], br[j], acc[i][j]);
    }
  });
}

__global__ void __launch_bounds__(256, 2)
    dist_v2(const float* __restrict__ a, const float* __restrict__ b, const float* __restrict__ an,
            const float* __restrict__ bn, float* __restrict__ out, int64_t q, int64_t n, int d,
            bool cosine, bool vec) {
  __shared__ GemmSmem s;
  const int64_t m0 = int64_t(blockIdx.y) * kBM, n0 = int64_t(blockIdx.x) * kBN;
  float acc[8][8];
  gemm_tile(a, q, b, n, d, m0, n0, s, acc, vec);
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int64_t m = m0 + tile_row(i);
    if (m >= q) continue;
    const float qv = an[m];
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const int64_t c = n0 + tile_col(j);
      if (c < n) out[m * n + c] = score(acc[i][j], qv, bn[c], cosine);
    }
  }
}

// One block per row of x [rows, n]: keys of (negate_in ? -x : x), best k to values/indices.
__global__ void __launch_bounds__(256)
    select_rows(const float* __restrict__ x, int64_t n, int k, bool negate_in, bool nan_best,
                bool negate_out, float* __restrict__ values, int64_t* __restrict__ indices) {
  __shared__ uint64_t lists[8 * 64];
  const float* row = x + int64_t(blockIdx.x) * n;
  WarpList best = block_select(
      n, k, [&](int64_t j) { return pack(float_key(negate_in ? -row[j] : row[j], nan_best), j); },
      lists);
  if (threadIdx.x < 32) {
    write_list(best, k, negate_out, values + int64_t(blockIdx.x) * k,
               indices + int64_t(blockIdx.x) * k, threadIdx.x);
  }
}

// ---- v3: fused GEMM tile + per-query top-k
// --------------------------------------------------------

constexpr size_t kTileBytes = size_t(kBM) * kLd * sizeof(float);  // the score tile [128][132]
static_assert(sizeof(GemmSmem) <= kTileBytes, "the GEMM staging aliases the score tile");

size_t fused_smem(int k) { return kTileBytes + size_t(kBM) * k * 8 + size_t(kBM) * 8; }

// tile[r][c] = score of query m0 + r against bank row n0 + c, from the GEMM accumulators of
// v2's thread layout. Starts after gemm_tile's final barrier.
__device__ __forceinline__ void store_scores(const float (&acc)[8][8], const float* __restrict__ qn,
                                             const float* __restrict__ bn, int64_t q, int64_t n,
                                             int64_t m0, int64_t n0, bool cosine, float* tile) {
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int r = tile_row(i);
    const float qv = m0 + r < q ? qn[m0 + r] : 0.f;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const int c = tile_col(j);
      const float bv = n0 + c < n ? bn[n0 + c] : 0.f;
      tile[r * kLd + c] = score(acc[i][j], qv, bv, cosine);
    }
  }
}

// ---- v4: the 128x128 tile on tensor cores (3xTF32) ---------------------------------------------
// Staged as v2 ([k][row], double-buffered 8-deep slices) but with rows kBM + 8 apart and the
// second half of a slice's rows XORed with 16 (knn_tile.cuh): a warp's fragment reads (k = t,
// row = g) and its stores both hit 32 different banks. Warp w owns rows wm..wm+63 and columns
// wn..wn+31 of the tile (2 x 4 warps), as 4 x 4 blocks of 16x8; which lane holds which
// fragment element: mma_tile.cuh's mma_a_row / mma_a_k / mma_b_k / mma_b_n / mma_c_row /
// mma_c_n, shared with the TF32 GEMMs.
struct __align__(16) GemmSmemTf32 {
  float a[2][kBK][kLdT];
  float b[2][kBK][kLdT];
};
static_assert(sizeof(GemmSmemTf32) <= kTileBytes, "the GEMM staging aliases the score tile");

// acc[mi][ni][i] = A[m0 + row] . B[n0 + col] for fragment element i of block (mi, ni) (zero
// rows past the ends), each product as big*big + big*small + small*big (kTerms = 3, v4) or as
// big*big alone (kTerms = 1, v5: plain TF32, about 3 digits). Ends with a barrier.
template <int kTerms>
__device__ __forceinline__ void gemm_tile_tf32(const float* __restrict__ A, int64_t rows_a,
                                               const float* __restrict__ B, int64_t rows_b, int d,
                                               int64_t m0, int64_t n0, GemmSmemTf32& s,
                                               float (&acc)[4][4][4], bool vec) {
  using mma::mma_a_k;
  using mma::mma_a_row;
  using mma::mma_b_k;
  using mma::mma_b_n;
  using mma::mma_tf32;
  using mma::split_tf32;
#pragma unroll
  for (int mi = 0; mi < 4; ++mi)
#pragma unroll
    for (int ni = 0; ni < 4; ++ni)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[mi][ni][i] = 0.f;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int wm = (warp >> 2) * 64, wn = (warp & 3) * 32;
  static_assert(kTerms == 1 || kTerms == 3, "1xTF32 or 3xTF32");
  stage_slices(A, rows_a, B, rows_b, d, m0, n0, s, vec, [&](int buf) {
    // big = x rounded to TF32, small = what that rounding left out (kTerms = 1: big alone)
    auto convert = [](float x, uint32_t& big, uint32_t& small) {
      if constexpr (kTerms == 3) split_tf32(x, big, small);
      else big = mma::to_tf32(x), small = 0;
    };
    uint32_t b_big[4][2], b_small[4][2];  // fragment element h of B block ni
#pragma unroll
    for (int ni = 0; ni < 4; ++ni)
#pragma unroll
      for (int h = 0; h < 2; ++h)
        convert(s.b[buf][mma_b_k(lane, h)][staged_col<kLdT>(mma_b_k(lane, h),
                                                            wn + ni * 8 + mma_b_n(lane, h))],
                b_big[ni][h], b_small[ni][h]);
#pragma unroll
    for (int mi = 0; mi < 4; ++mi) {
      uint32_t a_big[4], a_small[4];  // fragment element i of A block mi
#pragma unroll
      for (int i = 0; i < 4; ++i)
        convert(s.a[buf][mma_a_k(lane, i)][staged_col<kLdT>(mma_a_k(lane, i),
                                                            wm + mi * 16 + mma_a_row(lane, i))],
                a_big[i], a_small[i]);
#pragma unroll
      for (int ni = 0; ni < 4; ++ni) {  // the two small terms, then big * big (as CUTLASS)
        if constexpr (kTerms == 3) {
          mma_tf32(acc[mi][ni], a_small, b_big[ni]);
          mma_tf32(acc[mi][ni], a_big, b_small[ni]);
        }
        mma_tf32(acc[mi][ni], a_big, b_big[ni]);
      }
    }
  });
}

// v4's tile of scores: accumulator element i of block (mi, ni) is row mma_c_row(lane, i), column
// mma_c_n(lane, i) of that 16x8 block.
__device__ __forceinline__ void store_scores_tf32(const float (&acc)[4][4][4],
                                                  const float* __restrict__ qn,
                                                  const float* __restrict__ bn, int64_t q,
                                                  int64_t n, int64_t m0, int64_t n0, bool cosine,
                                                  float* tile) {
  using mma::mma_c_n;
  using mma::mma_c_row;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int wm = (warp >> 2) * 64, wn = (warp & 3) * 32;
#pragma unroll
  for (int mi = 0; mi < 4; ++mi)
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int r = wm + mi * 16 + mma_c_row(lane, i);
      const float qv = m0 + r < q ? qn[m0 + r] : 0.f;
#pragma unroll
      for (int ni = 0; ni < 4; ++ni) {
        const int c = wn + ni * 8 + mma_c_n(lane, i);
        const float bv = n0 + c < n ? bn[n0 + c] : 0.f;
        tile[r * kLd + c] = score(acc[mi][ni][i], qv, bv, cosine);
      }
    }
}

// grid (query tiles, bank splits). partial: [Q][splits][k] keys. kTerms: 0 = v3's GEMM tile
// on the CUDA cores, 3 = v4's (3xTF32), 1 = v5's (1xTF32, k being its candidate count).
template <int kTerms>
__global__ void __launch_bounds__(256, 2)  // <= 128 registers: two blocks per SM
    knn_fused(const float* __restrict__ qs, const float* __restrict__ bank,
                 const float* __restrict__ qn, const float* __restrict__ bn, int64_t q, int64_t n,
                 int d, int k, bool cosine, int chunks_per_split, uint64_t* __restrict__ partial,
                 bool vec) {
  extern __shared__ __align__(16) unsigned char smem_fused[];
  float* tile = reinterpret_cast<float*>(smem_fused);  // [128][kLd] scores, after the GEMM
  uint64_t* lists = reinterpret_cast<uint64_t*>(smem_fused + kTileBytes);  // [128][k]
  uint64_t* thr_s = lists + kBM * k;                                       // [128]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t m0 = int64_t(blockIdx.x) * kBM;
  for (int i = threadIdx.x; i < kBM * k; i += 256) lists[i] = kSentinel;
  for (int i = threadIdx.x; i < kBM; i += 256) thr_s[i] = kSentinel;
  const int64_t chunks = ceil_div(n, kBN);
  const int64_t c_begin = int64_t(blockIdx.y) * chunks_per_split;
  const int64_t c_end = c_begin + chunks_per_split < chunks ? c_begin + chunks_per_split : chunks;
  for (int64_t chunk = c_begin; chunk < c_end; ++chunk) {
    const int64_t n0 = chunk * kBN;
    if constexpr (kTerms > 0) {
      float acc[4][4][4];
      gemm_tile_tf32<kTerms>(qs, q, bank, n, d, m0, n0,  // ends with a barrier
                             *reinterpret_cast<GemmSmemTf32*>(smem_fused), acc, vec);
      store_scores_tf32(acc, qn, bn, q, n, m0, n0, cosine, tile);
    } else {
      float acc[8][8];
      gemm_tile(qs, q, bank, n, d, m0, n0, *reinterpret_cast<GemmSmem*>(smem_fused), acc, vec);
      store_scores(acc, qn, bn, q, n, m0, n0, cosine, tile);
    }
    __syncthreads();
    // Warp w updates the lists of rows w*16 .. w*16+15 with this chunk's 128 candidates.
    for (int rr = 0; rr < kBM / 8; ++rr) {
      const int r = warp * (kBM / 8) + rr;
      if (m0 + r >= q) break;
      uint64_t thr = thr_s[r];
      uint64_t cand[4];
      unsigned any = 0;
#pragma unroll
      for (int t = 0; t < 4; ++t) {
        const int c = lane + 32 * t;
        cand[t] = n0 + c < n ? pack(float_key(tile[r * kLd + c], false), n0 + c) : kSentinel;
        any |= __ballot_sync(kFull, cand[t] < thr);
      }
      if (any == 0) continue;  // the common case once the lists have filled
      WarpList l;
      l.lo = lane < k ? lists[r * k + lane] : kSentinel;
      l.hi = lane + 32 < k ? lists[r * k + 32 + lane] : kSentinel;
#pragma unroll
      for (int t = 0; t < 4; ++t) offer(l, cand[t], thr, k, lane);
      if (lane < k) lists[r * k + lane] = l.lo;
      if (lane + 32 < k) lists[r * k + 32 + lane] = l.hi;
      // Every lane read thr_s[r] above. The ballots in between already order that read before
      // this write, but compute-sanitizer's racecheck counts only barriers (it reported this
      // pair on an H200), and an explicit one says what the code relies on.
      __syncwarp();
      if (lane == 0) thr_s[r] = thr;
    }
    __syncthreads();  // the next GEMM's staging overwrites the score tile
  }
  const int splits = gridDim.y;
  for (int i = threadIdx.x; i < kBM * k; i += 256) {
    const int r = i / k, e = i - r * k;
    if (m0 + r < q) partial[((m0 + r) * splits + blockIdx.y) * k + e] = lists[i];
  }
}

// Q <= 8: each warp takes bank rows gw, gw + warps, ... and scores them against every query
// (held in shared memory). partial: [Q][gridDim.x][k]. Shared memory: max(Q*d floats,
// 8 warps x Q x k keys) — the queries are dead once the merge starts.
__global__ void __launch_bounds__(256)
    knn_stream_v3(const float* __restrict__ qs, const float* __restrict__ bank, int q, int64_t n,
                  int d, int k, bool cosine, uint64_t* __restrict__ partial, bool vec) {
  extern __shared__ __align__(16) unsigned char smem_stream[];
  float* sq = reinterpret_cast<float*>(smem_stream);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int i = threadIdx.x; i < q * d; i += 256) sq[i] = qs[i];
  __syncthreads();
  float qnorm[kSmallQ];  // ||q||^2 or 1/max(||q||, 1e-12)
#pragma unroll
  for (int qi = 0; qi < kSmallQ; ++qi) {
    float s = 0.f;
    if (qi < q)
      for (int c = lane; c < d; c += 32) s = fmaf(sq[qi * d + c], sq[qi * d + c], s);
    s = warp_sum(s);
    qnorm[qi] = cosine ? 1.f / fmaxf(sqrtf(s), 1e-12f) : s;
  }
  WarpList lists[kSmallQ];
  uint64_t thr[kSmallQ];
#pragma unroll
  for (int qi = 0; qi < kSmallQ; ++qi) thr[qi] = kSentinel;
  const int64_t warps = int64_t(gridDim.x) * 8;
  const int d4 = d / 4;
  for (int64_t r = blockIdx.x * 8 + warp; r < n; r += warps) {
    float acc[kSmallQ] = {};
    float bsq = 0.f;
    if (vec) {
      const float4* br = reinterpret_cast<const float4*>(bank + r * d);
      const float4* sq4 = reinterpret_cast<const float4*>(sq);
      for (int c = lane; c < d4; c += 32) {
        const float4 bv = __ldg(br + c);
        bsq += (bv.x * bv.x + bv.y * bv.y) + (bv.z * bv.z + bv.w * bv.w);
#pragma unroll
        for (int qi = 0; qi < kSmallQ; ++qi) {
          if (qi < q) {
            const float4 qv = sq4[qi * d4 + c];
            acc[qi] += (bv.x * qv.x + bv.y * qv.y) + (bv.z * qv.z + bv.w * qv.w);
          }
        }
      }
    } else {
      const float* br = bank + r * d;
      for (int c = lane; c < d; c += 32) {
        const float bv = br[c];
        bsq = fmaf(bv, bv, bsq);
#pragma unroll
        for (int qi = 0; qi < kSmallQ; ++qi) {
          if (qi < q) acc[qi] = fmaf(bv, sq[qi * d + c], acc[qi]);
        }
      }
    }
    bsq = warp_sum(bsq);  // every lane ends with the same bits (xor butterfly)
    const float bnorm = cosine ? 1.f / fmaxf(sqrtf(bsq), 1e-12f) : bsq;
#pragma unroll
    for (int qi = 0; qi < kSmallQ; ++qi) {
      if (qi < q) {  // uniform: q is a kernel argument
        const float dot = warp_sum(acc[qi]);
        const uint64_t cand = pack(float_key(score(dot, qnorm[qi], bnorm, cosine), false), r);
        if (cand < thr[qi]) {  // uniform across the warp
          insert(lists[qi], cand, lane);
          thr[qi] = kth(lists[qi], k);
        }
      }
    }
  }
  // Merge the block's 8 warp lists per query; warp qi merges query qi.
  __syncthreads();  // queries no longer read: reuse their shared memory
  uint64_t* ml = reinterpret_cast<uint64_t*>(smem_stream);  // [8 warps][q][k]
#pragma unroll
  for (int qi = 0; qi < kSmallQ; ++qi) {
    if (qi < q && lane < k) ml[(warp * q + qi) * k + lane] = lists[qi].lo;
    if (qi < q && lane + 32 < k) ml[(warp * q + qi) * k + 32 + lane] = lists[qi].hi;
  }
  __syncthreads();
  if (warp >= q) return;
  WarpList m;
  uint64_t t = kSentinel;
  for (int w = 0; w < 8; ++w) {
    offer(m, lane < k ? ml[(w * q + warp) * k + lane] : kSentinel, t, k, lane);
    offer(m, lane + 32 < k ? ml[(w * q + warp) * k + 32 + lane] : kSentinel, t, k, lane);
  }
  uint64_t* out = partial + (int64_t(warp) * gridDim.x + blockIdx.x) * k;
  if (lane < k) out[lane] = m.lo;
  if (lane + 32 < k) out[32 + lane] = m.hi;
}

// One block per query: the k best of its `per_query` partial keys.
__global__ void __launch_bounds__(256)
    merge_partials(const uint64_t* __restrict__ partial, int64_t per_query, int k, bool negate,
                   float* __restrict__ values, int64_t* __restrict__ indices) {
  __shared__ uint64_t lists[8 * 64];
  const uint64_t* p = partial + int64_t(blockIdx.x) * per_query;
  WarpList best = block_select(
      per_query, k, [&](int64_t j) { return p[j]; }, lists);
  if (threadIdx.x < 32) {
    write_list(best, k, negate, values + int64_t(blockIdx.x) * k, indices + int64_t(blockIdx.x) * k,
               threadIdx.x);
  }
}

// ---- v5: 1xTF32 candidates, re-ranked in float32 ---------------------------------------------

// v5's candidates per query: the k best by 1xTF32 scores are very likely among its kc best, so
// the float32 re-rank of kc keeps v3's answer; k + 16 at least, twice k where the warp lists
// have room. Larger k leaves no room (kc <= 64): v5 runs v4 then.
constexpr int kCandidateMargin = 16;
int v5_candidates(int k) { return std::min(kKnnMaxK, std::max(2 * k, k + kCandidateMargin)); }
bool v5_takes(int k) { return k + kCandidateMargin <= kKnnMaxK; }

// One block per query: the kc best of its `per_query` partial keys, as keys [Q][kc].
__global__ void __launch_bounds__(256)
    merge_partial_keys(const uint64_t* __restrict__ partial, int64_t per_query, int kc,
                       uint64_t* __restrict__ out) {
  __shared__ uint64_t lists[8 * 64];
  const uint64_t* p = partial + int64_t(blockIdx.x) * per_query;
  WarpList best = block_select(
      per_query, kc, [&](int64_t j) { return p[j]; }, lists);
  const int lane = threadIdx.x;
  uint64_t* o = out + int64_t(blockIdx.x) * kc;
  if (lane < 32 && lane < kc) o[lane] = best.lo;
  if (lane < 32 && lane + 32 < kc) o[lane + 32] = best.hi;
}

// A warp per query: each of its kc candidates' dot product again in float32 (the warp reads the
// bank row once, coalesced, and sums it with shuffles, as the streaming kernel does), scored
// with the same norms as v3, and the k best of those kept. cand: [Q][kc] keys from
// merge_partial_keys (sentinels where N < kc).
__global__ void __launch_bounds__(256)
    rerank(const float* __restrict__ qs, const float* __restrict__ bank,
           const float* __restrict__ qn, const float* __restrict__ bn, int64_t q, int d, int k,
           int kc, bool cosine, const uint64_t* __restrict__ cand, float* __restrict__ values,
           int64_t* __restrict__ indices) {
  const int lane = threadIdx.x & 31;
  const int64_t i = blockIdx.x * int64_t(blockDim.x / 32) + (threadIdx.x >> 5);
  if (i >= q) return;  // whole warps
  const float* qi = qs + i * d;
  WarpList l;
  uint64_t thr = kSentinel;
  for (int e = 0; e < kc; ++e) {
    const uint64_t key = cand[i * kc + e];  // the same for every lane
    if (key == kSentinel) break;            // sorted: only sentinels follow
    const int64_t j = int64_t(uint32_t(key));
    const float* bj = bank + j * d;
    float dot = 0.f;
    for (int c = lane; c < d; c += 32) dot = fmaf(qi[c], bj[c], dot);
    dot = warp_sum(dot);  // every lane ends with the same bits (xor butterfly)
    const uint64_t u = pack(float_key(score(dot, qn[i], bn[j], cosine), false), j);
    if (u < thr) {  // uniform across the warp
      insert(l, u, lane);
      thr = kth(l, k);
    }
  }
  write_list(l, k, cosine, values + i * k, indices + i * k, lane);
}

// ---- plans and launchers ----------------------------------------------------------------------

void check_args(int64_t q, int64_t n, int d, int k, const char* op) {
  if (q < 1 || n < 1 || d < 1) {
    labs::fail(std::string(op) + ": need Q, N, D >= 1, got Q " + std::to_string(q) + ", N " +
               std::to_string(n) + ", D " + std::to_string(d));
  }
  if (k < 1 || k > kKnnMaxK || k > n) {
    labs::fail(std::string(op) + ": k = " + std::to_string(k) + " must be in 1.." +
               std::to_string(std::min<int64_t>(kKnnMaxK, n)) +
               " (at most 64 and at most N = " + std::to_string(n) + ")");
  }
  if (n >= int64_t(0xffffffffLL)) labs::fail(std::string(op) + ": N must be below 2^32 - 1");
  if (q > 65535LL * 16) labs::fail(std::string(op) + ": more than 1048560 queries in one call");
}

struct Plan {
  int version = 3;
  bool stream = false;       // v3/v4/v5 with Q <= 8: the bank-streaming kernel
  int splits = 1;            // v3: blocks along the bank per query (tile)
  int chunks_per_split = 0;  // v3 GEMM path
  int list_k = 0;            // the fused kernel's list length: k, or v5's candidate count
  size_t smem = 0;           // v3 dynamic shared memory
  size_t norms_bytes = 0, matrix_bytes = 0, partial_bytes = 0, cand_bytes = 0;
  size_t total() const { return norms_bytes + matrix_bytes + partial_bytes + cand_bytes; }
};

// Allows the fused kernel its dynamic shared memory; returns how many of its blocks fit the GPU.
template <int kTerms>
int64_t prepare_fused(size_t smem, const char* op) {
  labs::check(cudaFuncSetAttribute(knn_fused<kTerms>,
                                   cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)),
              op);
  return labs::resident_blocks(reinterpret_cast<const void*>(knn_fused<kTerms>), 256, smem);
}

Plan make_plan(int version, int64_t q, int64_t n, int d, int k, bool /*cosine*/, const char* op) {
  if (version < 0 || version > kKnnVersions) {
    labs::fail(std::string(op) + ": version " + std::to_string(version) + " does not exist (0.." +
               std::to_string(kKnnVersions) + ")");
  }
  check_args(q, n, d, k, op);
  Plan p;
  p.version = version == 0 ? kKnnFastest : version;
  if (p.version < 3) {
    p.norms_bytes = align256(size_t(q + n) * sizeof(float));
    p.matrix_bytes = align256(size_t(q) * size_t(n) * sizeof(float));
    return p;
  }
  const size_t stream_smem =
      std::max(size_t(q) * d * sizeof(float), size_t(8) * q * k * sizeof(uint64_t));
  if (q <= kSmallQ && stream_smem <= 96 * 1024) {
    p.stream = true;
    p.smem = stream_smem;
    labs::check(cudaFuncSetAttribute(knn_stream_v3, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                     int(p.smem)),
                op);
    p.splits = int(std::min<int64_t>(
        labs::resident_blocks(reinterpret_cast<const void*>(knn_stream_v3), 256, p.smem),
        ceil_div(n, 8)));
    p.partial_bytes = align256(size_t(q) * p.splits * k * sizeof(uint64_t));
    return p;
  }
  if (p.version == 5 && !v5_takes(k)) p.version = 4;
  p.list_k = p.version == 5 ? int(std::min<int64_t>(v5_candidates(k), n)) : k;
  p.smem = fused_smem(p.list_k);
  const int64_t q_tiles = ceil_div(q, kBM), chunks = ceil_div(n, kBN);
  const int64_t resident = p.version == 5   ? prepare_fused<1>(p.smem, op)
                           : p.version == 4 ? prepare_fused<3>(p.smem, op)
                                            : prepare_fused<0>(p.smem, op);
  int64_t splits = std::clamp<int64_t>(resident / q_tiles, 1, std::min<int64_t>(chunks, 65535));
  p.chunks_per_split = int(ceil_div(chunks, splits));
  p.splits = int(ceil_div(chunks, p.chunks_per_split));  // no empty splits
  p.norms_bytes = align256(size_t(q + n) * sizeof(float));
  p.partial_bytes = align256(size_t(q) * p.splits * p.list_k * sizeof(uint64_t));
  if (p.version == 5) p.cand_bytes = align256(size_t(q) * p.list_k * sizeof(uint64_t));
  return p;
}

void launch_norms(const float* x, int64_t rows, int d, bool inverse, float* out, cudaStream_t s) {
  row_norms<<<unsigned(ceil_div(rows, 8)), 256, 0, s>>>(x, rows, d, inverse, out);
}

bool aligned_rows(const float* a, const float* b, int d) {
  return d % 4 == 0 && labs::aligned16(a) && labs::aligned16(b);
}

}  // namespace

size_t knn_search_workspace(int version, int64_t q, int64_t n, int d, int k, bool cosine) {
  return make_plan(version, q, n, d, k, cosine, "knn_search").total();
}

void knn_search(int version, const float* queries, const float* bank, int64_t q, int64_t n, int d,
                int k, bool cosine, float* values, int64_t* indices, void* workspace,
                cudaStream_t stream) {
  const char* op = "knn_search";
  if (!queries || !bank || !values || !indices) labs::fail(std::string(op) + ": null pointer");
  Plan p = make_plan(version, q, n, d, k, cosine, op);
  labs::Workspace ws(workspace, p.total(), stream);
  float* norms = ws.as<float>();  // [Q] then [N] (v1, v2 and the v3 GEMM path)
  const bool vec = aligned_rows(queries, bank, d);
  if (p.version < 3) {
    float* matrix = ws.as<float>(p.norms_bytes);
    launch_norms(queries, q, d, cosine, norms, stream);
    launch_norms(bank, n, d, cosine, norms + q, stream);
    labs::check_launch(op);
    if (p.version == 1) {
      dist_v1<<<dim3(unsigned(ceil_div(n, 16)), unsigned(ceil_div(q, 16))), dim3(16, 16), 0,
                stream>>>(queries, bank, norms, norms + q, matrix, q, n, d, cosine);
    } else {
      dist_v2<<<dim3(unsigned(ceil_div(n, kBN)), unsigned(ceil_div(q, kBM))), 256, 0, stream>>>(
          queries, bank, norms, norms + q, matrix, q, n, d, cosine, vec);
    }
    labs::check_launch(op);
    // The matrix holds "smaller is better" scores: negated similarities for cosine.
    select_rows<<<unsigned(q), 256, 0, stream>>>(matrix, n, k, false, false, cosine, values,
                                                 indices);
    labs::check_launch(op);
    return;
  }
  uint64_t* partial = ws.as<uint64_t>(p.norms_bytes);
  if (p.stream) {
    partial = ws.as<uint64_t>(0);
    knn_stream_v3<<<p.splits, 256, p.smem, stream>>>(queries, bank, int(q), n, d, k, cosine,
                                                     partial, vec);
  } else {
    launch_norms(queries, q, d, cosine, norms, stream);
    launch_norms(bank, n, d, cosine, norms + q, stream);
    labs::check_launch(op);
    const dim3 grid(unsigned(ceil_div(q, kBM)), unsigned(p.splits));
    const int lk = p.list_k;
    if (p.version == 5) {
      knn_fused<1><<<grid, 256, p.smem, stream>>>(queries, bank, norms, norms + q, q, n, d, lk,
                                                  cosine, p.chunks_per_split, partial, vec);
      labs::check_launch(op);
      uint64_t* cand = ws.as<uint64_t>(p.norms_bytes + p.partial_bytes);
      merge_partial_keys<<<unsigned(q), 256, 0, stream>>>(partial, int64_t(p.splits) * lk, lk,
                                                          cand);
      labs::check_launch(op);
      rerank<<<unsigned(ceil_div(q, 8)), 256, 0, stream>>>(queries, bank, norms, norms + q, q, d,
                                                           k, lk, cosine, cand, values, indices);
      labs::check_launch(op);
      return;
    }
    if (p.version == 4) {
      knn_fused<3><<<grid, 256, p.smem, stream>>>(queries, bank, norms, norms + q, q, n, d, k,
                                                  cosine, p.chunks_per_split, partial, vec);
    } else {
      knn_fused<0><<<grid, 256, p.smem, stream>>>(queries, bank, norms, norms + q, q, n, d, k,
                                                  cosine, p.chunks_per_split, partial, vec);
    }
  }
  labs::check_launch(op);
  merge_partials<<<unsigned(q), 256, 0, stream>>>(partial, int64_t(p.splits) * k, k, cosine, values,
                                                  indices);
  labs::check_launch(op);
}

void pairwise_sq_l2(int version, const float* a, const float* b, float* out, int64_t q, int64_t n,
                    int d, cudaStream_t stream) {
  const char* op = "pairwise_sq_l2";
  if (version < 0 || version > 2) labs::fail(std::string(op) + ": version must be 0, 1 or 2");
  check_args(q, n, d, 1, op);
  if (!a || !b || !out) labs::fail(std::string(op) + ": null pointer");
  labs::Workspace ws(nullptr, size_t(q + n) * sizeof(float), stream);
  float* norms = ws.as<float>();
  launch_norms(a, q, d, false, norms, stream);
  launch_norms(b, n, d, false, norms + q, stream);
  labs::check_launch(op);
  if (version == 1) {
    dist_v1<<<dim3(unsigned(ceil_div(n, 16)), unsigned(ceil_div(q, 16))), dim3(16, 16), 0,
              stream>>>(a, b, norms, norms + q, out, q, n, d, false);
  } else {
    dist_v2<<<dim3(unsigned(ceil_div(n, kBN)), unsigned(ceil_div(q, kBM))), 256, 0, stream>>>(
        a, b, norms, norms + q, out, q, n, d, false, aligned_rows(a, b, d));
  }
  labs::check_launch(op);
}

void topk_rows(const float* x, int64_t rows, int64_t n, int k, bool largest, float* values,
               int64_t* indices, cudaStream_t stream) {
  const char* op = "topk_rows";
  if (rows < 1) labs::fail(std::string(op) + ": need rows >= 1");
  check_args(1, n, 1, k, op);
  if (rows > 0x7fffffffLL) labs::fail(std::string(op) + ": too many rows");
  if (!x || !values || !indices) labs::fail(std::string(op) + ": null pointer");
  // largest: select the smallest of -x; NaN first as torch.topk does.
  select_rows<<<unsigned(rows), 256, 0, stream>>>(x, n, k, largest, largest, largest, values,
                                                  indices);
  labs::check_launch(op);
}

}  // namespace kernels::cuda
