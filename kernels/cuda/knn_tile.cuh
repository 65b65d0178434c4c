// kernels/cuda/knn_tile.cuh — how the k-NN lab's GEMM tiles (knn.cu, versions 2-5) stage their
// operands in shared memory: the tile sizes, which thread stores which elements of a slice,
// and where element (kk, row) lives. Plain C++ with __host__ __device__ functions: knn.cu calls
// them, and tests/cuda_labs/knn_test.cpp counts their shared-memory bank conflicts on the CPU.
//
// A block computes a 128x128 tile of scores from rows [m0, m0+128) of the queries and
// [n0, n0+128) of the bank, walking D in 8-deep slices. Thread t loads 16 bytes of a slice from
// global memory, row t/2 and kk (t%2)*4 (two threads cover a row's 32 bytes: the loads are
// coalesced), and stores them transposed into a [kk][row] array, one float per store.
#pragma once

#if defined(__CUDACC__)
#define KNN_HD __host__ __device__ __forceinline__
#else
#define KNN_HD inline
#endif

namespace kernels::cuda::knn_tile {

constexpr int kBM = 128, kBN = 128, kBK = 8;  // score tile and slice depth
// Row strides of the staging arrays [kk][row]:
//   v2, v3 (kLd): float4 reads of 4 rows at one kk; 132 = 4 mod 32, so the 32 floats a warp
//     stores for one kk (rows t/2, kk 0 or 4) land in 32 different banks.
//   v4, v5 (kLdT): mma.sync fragments, a warp reading (kk t, row g) for t < 4, g < 8; 136 = 8
//     mod 32 spreads those over 32 banks (132 would pair them up). But then rows r at kk and
//     kk + 4 share a bank (4 * 136 = 0 mod 32), and a warp's stores collided in pairs, so the
//     second half of each slice (kk >= 4) is stored with its rows XORed with 16: the row
//     permutation keeps the fragment reads' 8 consecutive rows consecutive in the bank order
//     and moves the stores of kk + 4 half a bank row away.
constexpr int kLd = kBM + 4;
constexpr int kLdT = kBM + 8;

// The elements thread tid stores: row staging_row(tid), kk staging_k(tid) + 0..3.
KNN_HD int staging_row(int tid) { return tid >> 1; }
KNN_HD int staging_k(int tid) { return (tid & 1) * 4; }

// The column of a [kk][LD] staging array that holds row `row` of k-line kk.
template <int LD>
KNN_HD int staged_col(int kk, int row) {
  return LD == kLdT ? row ^ ((kk & 4) << 2) : row;
}

}  // namespace kernels::cuda::knn_tile
