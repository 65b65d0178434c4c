// kernels/cuda/mma_tf32.cuh — the TF32 tensor-core instructions the kernel labs use
// (conv2d_tf32.cu, matmul_tf32.cu, knn.cu), as inline PTX (sm_80+).
//
// mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32: one warp computes D = A B + C for a
// 16x8 block, A 16x8 and B 8x8 in TF32 (a float with a 10-bit mantissa: the tensor core reads
// the top 19 bits), products exact and summed in fp32. Each lane holds part of every operand
// (PTX ISA, "Matrix Fragments for mma.m16n8k8", .tf32; g = lane >> 2, t = lane & 3):
//   A 16x8:  a0 (g, t)  a1 (g+8, t)  a2 (g, t+4)  a3 (g+8, t+4)            (row, k)
//   B 8x8:   b0 (k=t, n=g)  b1 (k=t+4, n=g)
//   C 16x8:  c0 (g, 2t)  c1 (g, 2t+1)  c2 (g+8, 2t)  c3 (g+8, 2t+1)         (row, n)
//
// 3xTF32 (split): a float x is big + small with big = tf32(x) and small = tf32(x - big), and
// x y ~ big_x big_y + big_x small_y + small_x big_y (the small x small term is ~2^-22 of x y and
// dropped). Three tensor-core products give about float32's accuracy, where one TF32 product
// keeps only ~3 decimal digits.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/mma_tile.cuh"

namespace kernels::cuda::mma {

// Round to TF32: nearest, ties away from zero (the result is a float bit pattern).
__device__ __forceinline__ uint32_t to_tf32(float v) {
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(v));
  return r;
}

// x = big + small, both TF32 (see the header comment).
__device__ __forceinline__ void split_tf32(float x, uint32_t& big, uint32_t& small) {
  big = to_tf32(x);
  small = to_tf32(x - __uint_as_float(big));
}

// d += a * b for one 16x8x8 block (fragments as in the header comment).
__device__ __forceinline__ void mma_tf32(float (&d)[4], const uint32_t (&a)[4],
                                         const uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
      "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// ldmatrix.sync.aligned.m8n8.x4: lane L passes the shared address of the row it names
// (mma_tile.cuh: ldsm_a_row, ...).
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const float* row) {
  const unsigned s = unsigned(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(s)
               : "memory");
}

// Round the 4 adjacent floats at chunk (16-byte aligned, in shared memory) to TF32 in place.
__device__ __forceinline__ void round_chunk_tf32(float* chunk) {
  float4 v = *reinterpret_cast<float4*>(chunk);
  v.x = __uint_as_float(to_tf32(v.x));
  v.y = __uint_as_float(to_tf32(v.y));
  v.z = __uint_as_float(to_tf32(v.z));
  v.w = __uint_as_float(to_tf32(v.w));
  *reinterpret_cast<float4*>(chunk) = v;
}

// The rounded pipelines' landed hook: round the chunks thread tid copied into stage tile s
// (Slots: mma_tile.cuh's TileSlots, Tile: Tf32Tile) to TF32, once each.
template <class Slots, class Tile>
__device__ __forceinline__ void round_own_chunks_tf32(float* s, int tid) {
#pragma unroll
  for (int j = 0; j < Slots::E; ++j)
    round_chunk_tf32(s + Tile::index(Slots::row(tid, j), Slots::kk(tid, j)));
}

// One 16-deep slice of a warp's 64 x 8NI tile of C (4 x NI blocks of 16x8; NI = 4: 64x32, the
// TF32 GEMMs' inner step, conv2d_tf32.cu and matmul_tf32.cu; NI = 8: conv2d v6's 64x64): for
// each 8-deep k-step, read the warp's A and B fragments from the stage tiles ta (TileA: rows m)
// and tb (TileB: rows n) laid out as mma_tile.cuh says, and accumulate 4 NI mma.sync into acc.
// wm, wn: the warp tile's first row and column in the block tile.
//   ROUNDED = false (conv2d v4): every fragment element is rounded to TF32 as it is read. With
//     8 warps on a 128x128 block tile each element of A is rounded by the 4 warps that read it,
//     each of B by 2, and a lane issues 24 shared loads + 24 cvt for its 16 mma.sync.
//   ROUNDED = true (conv2d v5, v6; the GEMM with set_tf32_ldmatrix): the tiles hold TF32 values
//     already (round_own_chunks_tf32 in the landed hook), and along-k tiles, swizzled
//     (Tf32Tile<..., true>: each row's 16-byte chunks permuted so that the 8 rows of a matrix
//     fall in 8 different groups of 4 banks), are read with ldmatrix.x4: one per 16x8 A
//     block, one per two 8x8 B blocks; 6 loads per k-step at 64x32, no cvt. Same roundings,
//     products and sums: the same bits either way.
template <class TileA, class TileB, int BK, bool ROUNDED = false, int NI = 4>
__device__ __forceinline__ void warp_tile_slice(const float* ta, const float* tb, int wm, int wn,
                                                int lane, float (&acc)[4][NI][4]) {
  static_assert(NI % 2 == 0, "ldmatrix.x4 reads two 8x8 B blocks at once");
  auto fragment = [](float v) { return ROUNDED ? __float_as_uint(v) : to_tf32(v); };
#pragma unroll
  for (int ks = 0; ks < BK; ks += 8) {
    uint32_t af[4][4], bf[NI][2];
#pragma unroll
    for (int mi = 0; mi < 4; ++mi) {
      if constexpr (ROUNDED && TileA::kAlongK) {
        ldmatrix_x4(af[mi], ta + ldsm_a_index<TileA>(wm + mi * 16, ks, lane));
      } else {
#pragma unroll
        for (int i = 0; i < 4; ++i)
          af[mi][i] = fragment(ta[mma_a_index<TileA>(wm + mi * 16, ks, lane, i)]);
      }
    }
#pragma unroll
    for (int ni = 0; ni < NI; ni += 2) {
      if constexpr (ROUNDED && TileB::kAlongK) {
        uint32_t r[4];
        ldmatrix_x4(r, tb + ldsm_b_index<TileB>(wn + ni * 8, ks, lane));
        bf[ni][0] = r[0], bf[ni][1] = r[1], bf[ni + 1][0] = r[2], bf[ni + 1][1] = r[3];
      } else {
#pragma unroll
        for (int h = 0; h < 2; ++h)
#pragma unroll
          for (int i = 0; i < 2; ++i)
            bf[ni + h][i] = fragment(tb[mma_b_index<TileB>(wn + (ni + h) * 8, ks, lane, i)]);
      }
    }
#pragma unroll
    for (int mi = 0; mi < 4; ++mi)
#pragma unroll
      for (int ni = 0; ni < NI; ++ni) mma_tf32(acc[mi][ni], af[mi], bf[ni]);
  }
}

// The main-loop variants of the TF32 GEMMs, named by the convolution lab's versions (the GEMM
// runs the same ones: 4 by default, 5 with set_tf32_ldmatrix, 6 with set_tf32_wide too):
//   4: 64x32 warp tiles; fragments rounded (cvt) as they are read; padded tiles.
//   5: operands rounded once in shared memory, along-k fragments by ldmatrix, swizzled tiles.
//   6: version 5 with 64x64 warp tiles, on 128x128 blocks only (the launchers run version 5's
//      kernels for 128x64 and 64x128 blocks: with 2 warps a block their loaders spilled).
template <int V>
struct Tf32Loop {
  static_assert(V >= 4 && V <= 6, "main loops 4, 5, 6");
  static constexpr bool kRounded = V >= 5;
  static constexpr int kWarpN = V >= 6 ? 64 : 32;  // warp tile: 64 x kWarpN
  static constexpr int kNI = kWarpN / 8;            // n8 blocks per warp tile
  static constexpr int threads(int bm, int bn) { return bm * bn / (64 * kWarpN) * 32; }
  // Registers: 256-thread blocks <= 128 (2 per SM), 128-thread blocks <= 168 (3 per SM);
  // version 6's 128-thread 128x128 blocks (128 accumulators a thread) <= 255 (2 per SM).
  static constexpr int min_blocks(int bm, int bn) { return bm * bn == 128 * 128 ? 2 : 3; }
  // The loop a launcher runs for a block tile (6 -> 5 below 128x128).
  static constexpr int for_tile(int bm, int bn) { return V >= 6 && bm * bn != 128 * 128 ? 5 : V; }
};

// Where a lane's accumulators of a 64 x 8NI warp tile sit in C, for the TF32 GEMMs' epilogues:
// f(mi, ni, h, row, col) for each pair acc[mi][ni][2h], acc[mi][ni][2h + 1], which are C's
// (row, col) and (row, col + 1) relative to the warp tile's origin (h = 0: c0, c1; h = 1: c2,
// c3 of the m16 x n8 block (mi, ni)).
template <int NI = 4, class F>
__device__ __forceinline__ void for_each_c_pair(int lane, F&& f) {
#pragma unroll
  for (int mi = 0; mi < 4; ++mi)
#pragma unroll
    for (int ni = 0; ni < NI; ++ni)
#pragma unroll
      for (int h = 0; h < 2; ++h)
        f(mi, ni, h, mi * 16 + mma_c_row(lane, 2 * h), ni * 8 + mma_c_n(lane, 2 * h));
}

}  // namespace kernels::cuda::mma
