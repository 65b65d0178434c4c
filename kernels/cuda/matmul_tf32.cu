// kernels/cuda/matmul_tf32.cu — the GEMM on the TF32 tensor cores (mma.sync), which
// kernels::cuda::gemm (matmul.cu) runs for float32 when TF32 is on (kernels::cuda::tf32(),
// PyTorch's allow_tf32) and our kernels are selected.
//
// It is the pipeline of the convolution's version 4 (conv2d_tf32.cu) on plain strided
// matrices, so the two read alike:
//   - Block tile BM x BN = 128x128 (256 threads), or 128x64 / 64x128 (128 threads) when a side
//     is at most 64 long; each warp owns a 64x32 tile of C = 4 x 4 mma.sync.m16n8k8 blocks, 64
//     fp32 accumulators per thread.
//   - k is walked in 16-deep slices. cp.async copies each thread's chunks of a slice from
//     global straight into shared memory (16 bytes per chunk when the operand's contiguous
//     extent, its leading dimension and its address allow it, else 4 bytes per element; src-size
//     0 zero-fills what lies past the matrix), 4 slices in flight. One barrier per slice: at
//     step t, wait_group(STAGES-2) + __syncthreads guarantee slice t has landed for every
//     thread and every warp has finished step t-1, whose stage is refilled with slice
//     t+STAGES-1 while slice t is multiplied (pipelined_slices, cp_async.cuh).
//   - Operands are rounded to TF32 (cvt.rna: 10-bit mantissa, like PyTorch's TF32 GEMMs, which
//     cuBLAS rounds the same way) as they leave shared memory; products are exact in the tensor
//     core and summed in fp32. Relative error per product <= 2^-10, so |C - C_exact| <=
//     ~2^-10 * sum_k |a| |b|: the tests check exactly that bound. With
//     kernels::cuda::tf32_ldmatrix() on, each element is rounded once in shared memory instead
//     (after the fusions below) and the along-k fragments are read with ldmatrix.x4 (as
//     conv2d_tf32.cu's version 5): the same bits, fewer instructions per mma.sync.
//     kernels::cuda::tf32_wide() on as well gives 128x128 blocks 64x64 warp tiles (4 warps,
//     conv2d's version 6; mma_tf32.cuh's Tf32Loop): the same bits, fewer fragment reads.
//   - Shared layout per operand and stage (mma_tile.cuh): along-k operands (A row-major,
//     B stored [n, k]) as [row][16+4], the others as [kk][rows+8]; fragment reads are
//     conflict-free either way. 4 stages x 20 KB (128x128, both along k) = 80 KB: 2 blocks/SM.
//     The rounded main loop stores along-k operands [row][16] with their chunks swizzled
//     instead (conflict-free chunk writes too; 4 x 16 KB).
//   - Split-K and the epilogue (alpha, the bias and gelu' fusions, beta): matmul_args.cuh.
//   - GELU fusion on an operand (gemm_fused, matmul.h): after a slice lands, each thread
//     replaces the elements it copied by their GELU, before the slice's barrier
//     (pipelined_slices' landed hook): each element once per block, not once per warp that
//     reads it. It costs an erfc per element, hidden where the product is memory-bound (the
//     MLP's second layer reads the 4C-wide activation and writes C: 1/4 the bytes).
//   - LayerNorm fusion on an operand, the same way: (x - mean) * rstd * weight + bias per
//     element with its row's statistics and its column's affine, both small arrays that stay
//     in L1/L2; ConvNeXt's first MLP layer then reads the LayerNorm's input, and its output is
//     never written (engine::layer_norm_mlp).
// Roofline at ConvNeXt-T's first MLP layer, batch 16 ([50176, 96] @ [96, 384], matmul_bench's
// pw_expand): 3.70 GFLOP and 96.5 MB moved at least: 0.037 ms at 2.6 TB/s against 0.0075 ms at
// 495 TFLOP/s TF32 — memory-bound, where on the fp32 CUDA cores (67 TFLOP/s: 0.055 ms) it is
// compute-bound; the square 4096 product (137 GFLOP: 0.28 ms TF32) is compute-bound in both.
#include <string>

#include "kernels/cuda/cp_async.cuh"
#include "kernels/cuda/matmul_args.cuh"
#include "kernels/cuda/mma_tf32.cuh"
#include "kernels/cuda/mma_tile.cuh"
#include "kernels/cuda/runtime.h"

namespace kernels::cuda::gemm_detail {

namespace {

constexpr int kBK = 16, kStages = 4;

// One operand as the kernel stages it: ROWS rows (m of A, n of B) of a 16-deep slice.
// kAlongK: element (row, kk) is p[row * ld + kk]; otherwise p[kk * ld + row].
// ROUNDED: the rounded pipeline's layout (swizzled along-k tiles; mma_tile.cuh).
template <bool kAlongK, int ROWS, int THREADS, bool VEC, bool ROUNDED>
struct Operand {
  using Slots = mma::TileSlots<kAlongK, ROWS, kBK, THREADS>;
  using Tile = mma::Tf32Tile<kAlongK, ROWS, kBK, ROUNDED>;

  // Issue this thread's copies of the slice [k0, k0 + 16) of rows [row0, row0 + ROWS) into the
  // stage tile s. Rows >= rows and kk >= k1 (the end of this block's split) read as zero.
  __device__ __forceinline__ static void copy(const float* __restrict__ p, int64_t ld, int rows,
                                              int row0, int k0, int k1, float* s, int tid) {
#pragma unroll
    for (int j = 0; j < Slots::E; ++j) {
      const int r = Slots::row(tid, j), kk = Slots::kk(tid, j);
      const int gr = row0 + r, gk = k0 + kk;
      float* dst = s + Tile::index(r, kk);
      if constexpr (VEC) {
        // The 4 elements of a chunk are all inside or all outside: the contiguous extent and
        // k1 are multiples of 4 (the launcher checks the first; k_per_split is one of 16).
        const bool ok = gr < rows && gk < k1;
        const int64_t off = kAlongK ? int64_t(gr) * ld + gk : int64_t(gk) * ld + gr;
        cp_async16(dst, ok ? p + off : p, ok);
      } else {
#pragma unroll
        for (int e = 0; e < 4; ++e) {  // element e: the next kk, or the next row
          const int er = kAlongK ? gr : gr + e, ek = kAlongK ? gk + e : gk;
          const bool ok = er < rows && ek < k1;
          const int64_t off = kAlongK ? int64_t(er) * ld + ek : int64_t(ek) * ld + er;
          cp_async4(dst + e, ok ? p + off : p, ok);
        }
      }
    }
  }

  // The GELU fusion: replace this thread's chunks of stage tile s (those copy() filled, landed
  // by now) by gelu of themselves. A chunk's 4 elements are adjacent in shared memory in both
  // layouts; zero-filled ones stay zero (gelu(0) = 0).
  __device__ __forceinline__ static void gelu_in_place(float* s, int tid) {
#pragma unroll
    for (int j = 0; j < Slots::E; ++j) {
      float* chunk = s + Tile::index(Slots::row(tid, j), Slots::kk(tid, j));
#pragma unroll
      for (int e = 0; e < 4; ++e) chunk[e] = gelu_at(chunk[e]);
    }
  }

  // The LayerNorm fusion, the same way; but an element needs its place (its LayerNorm row's
  // mean and rstd, its column's weight and bias), and only those inside the matrix and this
  // split are normalised: the zero fill must stay zero. The slice covers [k0, k1) of k and
  // this tile's rows [row0, rows) (m for A, n for B); kNormRowsAlongK: the LayerNorm's rows
  // run along k (op(B) [k, n]), else along the tile's rows (op(A) [m, k]).
  template <bool kNormRowsAlongK>
  __device__ __forceinline__ static void norm_in_place(float* s, const RowNorm<float>& norm,
                                                       int rows, int row0, int k0, int k1,
                                                       int tid) {
#pragma unroll
    for (int j = 0; j < Slots::E; ++j) {
      const int r = Slots::row(tid, j), kk = Slots::kk(tid, j);
      float* chunk = s + Tile::index(r, kk);
#pragma unroll
      for (int e = 0; e < 4; ++e) {  // element e: the next kk, or the next row (as copy())
        const int er = kAlongK ? row0 + r : row0 + r + e, ek = kAlongK ? k0 + kk + e : k0 + kk;
        if (er >= rows || ek >= k1) continue;
        chunk[e] = kNormRowsAlongK ? row_norm_at(norm, ek, er, chunk[e])
                                   : row_norm_at(norm, er, ek, chunk[e]);
      }
    }
  }
};

// The epilogue's column sums (GemmFusion::col_sums): the 8 lanes that share t = lane & 3 hold
// the same two columns of each n8 block for 8 different rows, so three xor-shuffles add them
// (the same tree in every run); lanes 0-3 then hold the warp's 32 column sums (64 in loop 6),
// the warps along m add theirs in shared memory in order, and the block writes one row of
// col_partial.
template <int BM, int BN, int V>
__device__ __forceinline__ void block_column_sums(const GemmArgs<float>& a,
                                                  float (&sums)[mma::Tf32Loop<V>::kNI][2],
                                                  float4* smem, int warp, int lane, int tid) {
  using Loop = mma::Tf32Loop<V>;
  constexpr int WN = BN / Loop::kWarpN, WM = BM / 64, T = Loop::threads(BM, BN);
#pragma unroll
  for (int ni = 0; ni < Loop::kNI; ++ni)
#pragma unroll
    for (int e = 0; e < 2; ++e)
#pragma unroll
      for (int off = 4; off < 32; off <<= 1)
        sums[ni][e] += __shfl_xor_sync(0xffffffffu, sums[ni][e], off);
  float* red = reinterpret_cast<float*>(smem);  // [WM][BN], over the pipeline's stages
  __syncthreads();                              // every warp is done reading them
  if (lane < 4)
#pragma unroll
    for (int ni = 0; ni < Loop::kNI; ++ni)
#pragma unroll
      for (int e = 0; e < 2; ++e)
        red[(warp / WN) * BN + (warp % WN) * Loop::kWarpN + ni * 8 + 2 * lane + e] = sums[ni][e];
  __syncthreads();
  for (int j = tid; j < BN; j += T) {
    const int n = blockIdx.y * BN + j;
    if (n >= a.n) break;
    float s = 0.f;
#pragma unroll
    for (int w = 0; w < WM; ++w) s += red[w * BN + j];
    a.col_partial[int64_t(blockIdx.x) * a.n + n] = s;
  }
}

// pair: C's rows (or the partial slices) allow 8-byte stores of two adjacent columns.
// V: the main loop (mma_tf32.cuh's Tf32Loop): 4, or 5 with tf32_ldmatrix() (operands rounded
// once in shared memory, fragments by ldmatrix), or 6 with tf32_wide() too (64x64 warp tiles).
template <bool TA, bool TB, int BM, int BN, bool VEC, int V>
__global__ void __launch_bounds__(mma::Tf32Loop<V>::threads(BM, BN),
                                  mma::Tf32Loop<V>::min_blocks(BM, BN))
    gemm_tf32_kernel(GemmArgs<float> a, bool pair) {
  using Loop = mma::Tf32Loop<V>;
  static_assert(Loop::for_tile(BM, BN) == V, "main loop 6 runs 128x128 blocks only");
  constexpr bool ROUNDED = Loop::kRounded;
  constexpr int NI = Loop::kNI, T = Loop::threads(BM, BN), WN = BN / Loop::kWarpN;
  using OpA = Operand<!TA, BM, T, VEC, ROUNDED>;  // A [m, k] is along k unless transposed
  using OpB = Operand<TB, BN, T, VEC, ROUNDED>;   // B [k, n] is along k only when transposed
  using TA_ = typename OpA::Tile;
  using TB_ = typename OpB::Tile;
  extern __shared__ float4 smem_gemm_tf32[];
  float* sa = reinterpret_cast<float*>(smem_gemm_tf32);  // [stage][TA_]
  float* sb = sa + kStages * TA_::kFloats;                // [stage][TB_]
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = (warp / WN) * 64, wn = (warp % WN) * Loop::kWarpN;  // warp tile origin
  const int m0 = blockIdx.x * BM, n0 = blockIdx.y * BN;
  const int k0 = blockIdx.z * a.k_per_split;
  const int k1 = min(k0 + a.k_per_split, a.k);
  const int tiles = k1 > k0 ? (k1 - k0 + kBK - 1) / kBK : 0;
  auto issue = [&](int t) {  // slice t of this split into stage t % kStages
    const int stage = t % kStages, kt = k0 + t * kBK;
    OpA::copy(a.a, a.lda, a.m, m0, kt, k1, sa + stage * TA_::kFloats, tid);
    OpB::copy(a.b, a.ldb, a.n, n0, kt, k1, sb + stage * TB_::kFloats, tid);
  };
  auto landed = [&](int t) {  // GELU or LayerNorm on an operand: once per element, in smem
    const int stage = t % kStages, kt = k0 + t * kBK;
    if (a.gelu_a) OpA::gelu_in_place(sa + stage * TA_::kFloats, tid);
    if (a.gelu_b) OpB::gelu_in_place(sb + stage * TB_::kFloats, tid);
    if (a.norm_a.mean)
      OpA::template norm_in_place<false>(sa + stage * TA_::kFloats, a.norm_a, a.m, m0, kt, k1, tid);
    if (a.norm_b.mean)
      OpB::template norm_in_place<true>(sb + stage * TB_::kFloats, a.norm_b, a.n, n0, kt, k1, tid);
    if constexpr (ROUNDED) {  // after the fusions: the tiles hold what the product reads
      mma::round_own_chunks_tf32<typename OpA::Slots, TA_>(sa + stage * TA_::kFloats, tid);
      mma::round_own_chunks_tf32<typename OpB::Slots, TB_>(sb + stage * TB_::kFloats, tid);
    }
  };
  float acc[4][NI][4] = {};  // [m16 block][n8 block][c0..c3]
  pipelined_slices<kStages>(tiles, issue, landed, [&](int t) {
    const float* ta = sa + (t % kStages) * TA_::kFloats;
    const float* tb = sb + (t % kStages) * TB_::kFloats;
    mma::warp_tile_slice<TA_, TB_, kBK, ROUNDED, NI>(ta, tb, wm, wn, lane, acc);
  });

  // c0/c1 (and c2/c3) are two adjacent columns of one row. sums[ni][e]: this thread's part of
  // the column sums (column wn + ni*8 + 2t + e, rows g and g+8 of each m16 block).
  float sums[NI][2] = {};
  const bool to_c = a.partial == nullptr;
  float* out = to_c ? a.c : a.partial + int64_t(blockIdx.z) * a.m * a.n;
  const int64_t ld = to_c ? a.ldc : a.n;
  mma::for_each_c_pair<NI>(lane, [&](int mi, int ni, int h, int row_in_warp, int col_in_warp) {
    const int m = m0 + wm + row_in_warp, n = n0 + wn + col_in_warp;
    if (m >= a.m || n >= a.n) return;
    const bool both = n + 1 < a.n;
    float* row = out + int64_t(m) * ld;
    float v0 = acc[mi][ni][2 * h], v1 = acc[mi][ni][2 * h + 1];
    if (to_c) {
      v0 = gemm_epilogue(a, m, n, v0);
      if (both) v1 = gemm_epilogue(a, m, n + 1, v1);
      if (a.beta != 0.f) {  // beta == 0: C is never read (it may be NaN)
        v0 += a.beta * row[n];
        if (both) v1 += a.beta * row[n + 1];
      }
    }
    if (pair && both) {
      *reinterpret_cast<float2*>(row + n) = make_float2(v0, v1);
    } else {
      row[n] = v0;
      if (both) row[n + 1] = v1;
    }
    sums[ni][0] += v0, sums[ni][1] += v1;  // v1 past the last column is never stored
  });
  if (a.col_partial) block_column_sums<BM, BN, V>(a, sums, smem_gemm_tf32, warp, lane, tid);
}

template <bool TA, bool TB, int BM, int BN, bool VEC, int V>
void launch(const GemmArgs<float>& a, int splits, bool pair, cudaStream_t stream) {
  using Loop = mma::Tf32Loop<V>;
  using TileA = typename Operand<!TA, BM, Loop::threads(BM, BN), VEC, Loop::kRounded>::Tile;
  using TileB = typename Operand<TB, BN, Loop::threads(BM, BN), VEC, Loop::kRounded>::Tile;
  constexpr size_t smem = size_t(kStages) * (TileA::kFloats + TileB::kFloats) * sizeof(float);
  // Once per kernel: > 48 KB of dynamic shared memory needs an opt-in, and the largest shared
  // memory carveout lets 2-3 blocks (160-180 KB) share an SM.
  static const bool opted_in = [] {
    KCUDA_CHECK(cudaFuncSetAttribute(gemm_tf32_kernel<TA, TB, BM, BN, VEC, V>,
                                     cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    KCUDA_CHECK(cudaFuncSetAttribute(gemm_tf32_kernel<TA, TB, BM, BN, VEC, V>,
                                     cudaFuncAttributePreferredSharedMemoryCarveout,
                                     int(cudaSharedmemCarveoutMaxShared)));
    return true;
  }();
  (void)opted_in;
  const dim3 grid(unsigned((a.m + BM - 1) / BM), unsigned((a.n + BN - 1) / BN), unsigned(splits));
  gemm_tf32_kernel<TA, TB, BM, BN, VEC, V><<<grid, Loop::threads(BM, BN), smem, stream>>>(a,
                                                                                        pair);
  KCUDA_CHECK_LAUNCH("gemm (ours, TF32)");
}

template <bool TA, bool TB, bool VEC, int V>
void launch_tile(const GemmArgs<float>& a, int splits, bool pair, cudaStream_t stream) {
  using Loop = mma::Tf32Loop<V>;
  const TileShape t = gemm_tf32_tile(a.m, a.n);
  if (t.bn == 64)
    launch<TA, TB, 128, 64, VEC, Loop::for_tile(128, 64)>(a, splits, pair, stream);
  else if (t.bm == 64)
    launch<TA, TB, 64, 128, VEC, Loop::for_tile(64, 128)>(a, splits, pair, stream);
  else
    launch<TA, TB, 128, 128, VEC, V>(a, splits, pair, stream);
}

template <bool TA, bool TB, int V>
void launch_loop(const GemmArgs<float>& a, int splits, bool vec, bool pair, cudaStream_t stream) {
  vec ? launch_tile<TA, TB, true, V>(a, splits, pair, stream)
      : launch_tile<TA, TB, false, V>(a, splits, pair, stream);
}

template <bool TA, bool TB>
void launch_vec(const GemmArgs<float>& a, int splits, bool vec, bool pair, cudaStream_t stream) {
  if (!tf32_ldmatrix())
    launch_loop<TA, TB, 4>(a, splits, vec, pair, stream);
  else if (!tf32_wide())
    launch_loop<TA, TB, 5>(a, splits, vec, pair, stream);
  else
    launch_loop<TA, TB, 6>(a, splits, vec, pair, stream);
}

bool aligned(const void* p, int bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

}  // namespace

TileShape gemm_tf32_tile(int m, int n) {
  if (n <= 64) return {128, 64, 3};
  if (m <= 64) return {64, 128, 3};
  return {128, 128, 2};
}

void launch_gemm_tf32(const GemmArgs<float>& a, int splits, cudaStream_t stream) {
  if ((a.n + 63) / 64 > 65535 || splits > 65535)
    raise("gemm (TF32): n = " + std::to_string(a.n) + " or " + std::to_string(splits) +
          " splits are too many for one launch");
  // 16-byte chunks: both operands 16-byte aligned, leading dimensions and contiguous extents
  // (A: k, or m when transposed; B: n, or k when transposed) multiples of 4 floats.
  const bool vec = aligned(a.a, 16) && aligned(a.b, 16) && a.lda % 4 == 0 && a.ldb % 4 == 0 &&
                   (a.trans_a ? a.m : a.k) % 4 == 0 && (a.trans_b ? a.k : a.n) % 4 == 0;
  const bool pair = a.partial ? a.n % 2 == 0 : aligned(a.c, 8) && a.ldc % 2 == 0;
  if (a.trans_a) {
    if (a.trans_b) launch_vec<true, true>(a, splits, vec, pair, stream);
    else launch_vec<true, false>(a, splits, vec, pair, stream);
  } else {
    if (a.trans_b) launch_vec<false, true>(a, splits, vec, pair, stream);
    else launch_vec<false, false>(a, splits, vec, pair, stream);
  }
}

}  // namespace kernels::cuda::gemm_detail
