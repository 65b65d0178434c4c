// kernels/cuda/mma_tile.cuh — how the TF32 tensor-core GEMMs (conv2d_tf32.cu, matmul_tf32.cu)
// lay an operand tile out in shared memory, which thread copies which 16 bytes of it, and where
// each lane finds its mma.sync fragment elements. Plain C++ with __host__ __device__ functions:
// the kernels call them, and tests/cuda_labs/conv2d_test.cpp replays a warp's mma.sync from
// them on the CPU against a plain product. The instructions themselves are in mma_tf32.cuh.
//
// An operand tile is ROWS x BK: rows are m for A (C = A B) and n for B, BK elements of the
// inner dimension kk per row. An operand is "along k" when consecutive kk of one row are
// consecutive in memory (a row-major A, a transposed B), else consecutive rows of one kk are.
#pragma once

#if defined(__CUDACC__)
#define MMA_HD __host__ __device__ __forceinline__
#else
#define MMA_HD inline
#endif

namespace kernels::cuda::mma {

// ---- mma.sync.m16n8k8 .row.col TF32 fragments (PTX ISA, "Matrix Fragments for mma.m16n8k8") --
// With g = lane >> 2 (groupID) and t = lane & 3 (threadID_in_group), lane holds
//   A (16x8, row-major): a0 (g, t)  a1 (g+8, t)  a2 (g, t+4)  a3 (g+8, t+4)      (row, k)
//   B (8x8, "col"):      b0 (k=t, n=g)  b1 (k=t+4, n=g)
//   C/D (16x8, fp32):    c0 (g, 2t)  c1 (g, 2t+1)  c2 (g+8, 2t)  c3 (g+8, 2t+1)  (row, n)
MMA_HD int mma_a_row(int lane, int i) { return (lane >> 2) + 8 * (i & 1); }
MMA_HD int mma_a_k(int lane, int i) { return (lane & 3) + 4 * (i >> 1); }
MMA_HD int mma_b_k(int lane, int i) { return (lane & 3) + 4 * i; }
MMA_HD int mma_b_n(int lane, int /*i*/) { return lane >> 2; }
MMA_HD int mma_c_row(int lane, int i) { return (lane >> 2) + 8 * (i >> 1); }
MMA_HD int mma_c_n(int lane, int i) { return 2 * (lane & 3) + (i & 1); }

// Shared-memory layout of one operand tile (ROWS x BK) in one pipeline stage, fixed by
// cp.async, which copies 16 contiguous bytes: along-k tiles are stored [row][kk] (4 kk per
// chunk), the others [kk][row]. Shared memory is 32 banks of 4 bytes; a warp's access takes one
// pass per 4-byte word any bank must deliver (tests/cuda_labs/smem_banks.h counts them).
//   Padded (conv2d v4, the GEMM's version 3): rows kLd floats apart. A warp's scalar fragment
//     reads (row g, kk t) for g < 8, t < 4 are words g*kLd + t (kLd = BK+4 = 4*odd: 32 distinct
//     banks) or t*kLd + g (kLd = ROWS+8 = 8 mod 32: 32 distinct banks). But an along-k tile's
//     16-byte chunk writes collide: the 8 threads of a quarter warp write rows r and r+1, 4
//     chunks each, and at 5 chunks per row chunk 0 of row r and chunk 3 of row r+1 share their
//     banks: every cp.async, and every read or write of v5's rounding pass, takes 2 passes.
//   SWIZZLED (along-k tiles of the rounded pipelines: conv2d v5, v6, the GEMM's 5, 6): no
//     padding (rows BK floats apart) and chunk c of row r stored at chunk position c ^ sw(r),
//     sw(r) = (r / (8 / P)) % P with P = BK / 4 chunks per row: the rows sharing one 128-byte
//     line of banks hold their chunks in different positions. Then the 8 rows of an ldmatrix
//     matrix, the two rows a quarter warp writes, and the 8 rows x 4 kk of a scalar fragment
//     read all fall in different banks; and 20% less shared memory.
template <bool ALONG_K, int ROWS, int BK, bool SWIZZLED = false>
struct Tf32Tile {
  static constexpr bool kAlongK = ALONG_K;
  static constexpr bool kSwizzled = SWIZZLED && ALONG_K;  // [kk][row] tiles need no swizzle
  static constexpr int kChunks = BK / 4;                  // chunks per row of an along-k tile
  static_assert(!kSwizzled || kChunks == 2 || kChunks == 4 || kChunks == 8,
                "the swizzle permutes 2, 4 or 8 chunks within a 128-byte line");
  static constexpr int kLd = kAlongK ? (kSwizzled ? BK : BK + 4) : ROWS + 8;
  static constexpr int kFloats = kAlongK ? ROWS * kLd : BK * kLd;
  MMA_HD static int index(int row, int kk) {
    if constexpr (kSwizzled) {
      const int sw = (row / (8 / kChunks)) % kChunks;
      return row * kLd + (((kk >> 2) ^ sw) << 2) + (kk & 3);
    } else {
      return kAlongK ? row * kLd + kk : kk * kLd + row;
    }
  }
};

// The shared-memory index of fragment element i of lane for the 16x8 A block whose first row
// is row0, and the 8x8 B block whose first column is n0, at k-step ks of the tile.
template <class Tile>
MMA_HD int mma_a_index(int row0, int ks, int lane, int i) {
  return Tile::index(row0 + mma_a_row(lane, i), ks + mma_a_k(lane, i));
}
template <class Tile>
MMA_HD int mma_b_index(int n0, int ks, int lane, int i) {
  return Tile::index(n0 + mma_b_n(lane, i), ks + mma_b_k(lane, i));
}

// ---- ldmatrix.x4 on an along-k tile (the pipelines' rounded variant, mma_tf32.cuh) ------------
// ldmatrix.sync.aligned.m8n8.x4 loads four 8x8 matrices of 16-bit elements, i.e. of 8 rows x
// 4 words: lane L names the address of row L % 8 of matrix L / 8 (16 contiguous bytes), and
// register j of lane L receives word L % 4 of row L / 4 of matrix j. On a tile stored
// [row][kk], a matrix of 8 rows x 4 kk delivers (row g, kk t) to lane L: exactly how mma.sync
// spreads a TF32 fragment. So one ldmatrix.x4 fills a lane's a0..a3 of a 16x8 A block (matrix
// j: rows + 8 (j & 1), kk + 4 (j >> 1)), or b0, b1 of two 8x8 B blocks (matrix j: the block
// j >> 1, kk + 4 (j & 1)). The row (of the block's first row / column) and kk (of the k-step)
// whose address lane L names:
MMA_HD int ldsm_a_row(int lane) { return (lane & 7) + 8 * ((lane >> 3) & 1); }
MMA_HD int ldsm_a_k(int lane) { return 4 * (lane >> 4); }
MMA_HD int ldsm_b_n(int lane) { return (lane & 7) + 8 * (lane >> 4); }
MMA_HD int ldsm_b_k(int lane) { return 4 * ((lane >> 3) & 1); }

// The shared-memory index of the row lane names, for the ldmatrix.x4 of the 16x8 A block whose
// first row is row0, or of the two 8x8 B blocks whose first column is n0, at k-step ks.
template <class Tile>
MMA_HD int ldsm_a_index(int row0, int ks, int lane) {
  return Tile::index(row0 + ldsm_a_row(lane), ks + ldsm_a_k(lane));
}
template <class Tile>
MMA_HD int ldsm_b_index(int n0, int ks, int lane) {
  return Tile::index(n0 + ldsm_b_n(lane), ks + ldsm_b_k(lane));
}

// ---- which elements a thread copies ----------------------------------------------------------
// The tile is cut into chunks of 4 elements consecutive along the operand's contiguous axis (kk
// if along k, else the row), and chunk idx = tid + j*THREADS is slot j of thread tid.
// Consecutive threads take consecutive chunks of a line, so a warp's loads are contiguous runs
// of memory. THREADS is a multiple of the chunks per line, so a thread keeps the same position
// in its line for every slot.
template <bool kAlongK, int ROWS, int BK, int THREADS>
struct TileSlots {
  static constexpr int kPerLine = kAlongK ? BK / 4 : ROWS / 4;  // chunks along the contiguous axis
  static constexpr int E = ROWS * BK / (4 * THREADS);           // slots per thread
  static_assert(BK % 4 == 0 && ROWS % 4 == 0, "chunks are 4 elements");
  static_assert(E >= 1 && E * 4 * THREADS == ROWS * BK, "the threads cover the tile exactly");
  static_assert(THREADS % kPerLine == 0, "a thread keeps its position along the line");
  // Tile coordinates of element 0 of slot j (elements 1..3 follow along kk or along the row).
  MMA_HD static int row(int tid, int j) {
    const int idx = tid + j * THREADS;
    return kAlongK ? idx / kPerLine : (idx % kPerLine) * 4;
  }
  MMA_HD static int kk(int tid, int j) {
    const int idx = tid + j * THREADS;
    return kAlongK ? (idx % kPerLine) * 4 : idx / kPerLine;
  }
};

}  // namespace kernels::cuda::mma
