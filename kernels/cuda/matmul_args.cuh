// kernels/cuda/matmul_args.cuh — what kernels::cuda::gemm (matmul.cu) hands to its own
// kernels: the fp32 tiled kernel in matmul.cu and the TF32 tensor-core kernel in
// matmul_tf32.cu. Internal to those two files.
//
// Split-K. A GEMM with few output tiles and a long k (a Linear layer's weight gradient,
// dW [out, in] = dY^T X with k = batch * pixels: ConvNeXt-T's first MLP at batch 64 is a
// 384 x 96 product with k = 200,704) would occupy 3 blocks of a 132-SM GPU. Instead block z of
// the grid multiplies only kk in [z * k_per_split, min(k, (z + 1) * k_per_split)), stores its raw
// sums in its own [m, n] slice of a scratch buffer, and a second kernel (gemm_reduce_splits,
// matmul.cu) adds the slices in the order z = 0, 1, ... and applies alpha and beta: the result
// does not depend on which block finished first (no floating-point atomics).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/gelu_math.cuh"

namespace kernels::cuda::gemm_detail {

// The LayerNorm fusion on one operand (matmul.h, GemmRowNorm): row r of op(X) becomes
// (x - mean[r]) * rstd[r] * weight[c] + bias[c]. Off when mean is null.
template <class T>
struct RowNorm {
  const T* mean = nullptr;
  const T* rstd = nullptr;
  const T* weight = nullptr;  // null: 1
  const T* bias = nullptr;    // null: 0
};

// Element (r, c) of an operand under its RowNorm (which is on). The formula and its order of
// operations are the LayerNorm forward's (layernorm.cu).
template <class T>
__device__ __forceinline__ T row_norm_at(const RowNorm<T>& n, int r, int c, T x) {
  T v = (x - n.mean[r]) * n.rstd[r];
  if (n.weight) v *= n.weight[c];
  if (n.bias) v += n.bias[c];
  return v;
}

template <class T>
struct GemmArgs {
  bool trans_a, trans_b;  // op(A) = A^T: A is stored [k, m]; likewise B [n, k]
  int m, n, k;            // C [m, n] = alpha op(A) [m, k] op(B) [k, n] + beta C
  T alpha, beta;          // beta == 0: C is not read (it may hold NaN)
  const T* a;
  int64_t lda;  // row strides in elements
  const T* b;
  int64_t ldb;
  T* c;
  int64_t ldc;
  int k_per_split;  // a multiple of 16; >= k when there is one split
  T* partial;       // null: write C; else split z stores its sums at partial + z*m*n (ld n)
  // Fusions (matmul.h, GemmFusion): GELU or LayerNorm on an operand as it is loaded, and the
  // epilogue's bias and gelu' factor (applied once, to the final sum: by the split-K pass when
  // k is split).
  bool gelu_a = false, gelu_b = false;  // multiply gelu(op(A)) / gelu(op(B)), elementwise
  RowNorm<T> norm_a{}, norm_b{};        // multiply op(A) / op(B) with their rows layer-normed
  const T* bias = nullptr;              // C[i, j] gets + bias[j]
  const T* gelu_grad_of = nullptr;      // C[i, j] gets * gelu'(aux[i * ld_aux + j])
  int64_t ld_aux = 0;
  T* col_partial = nullptr;  // TF32 kernel, unsplit: block (x, y) writes its tile's column sums
                             // of C to col_partial[x * n + j] for its columns j
};

// What C[i, j] becomes from the product's sum, before beta C is added: alpha * sum, then the
// epilogue fusions in GemmFusion's order (+ bias, * gelu').
template <class T>
__device__ __forceinline__ T gemm_epilogue(const GemmArgs<T>& a, int i, int j, T sum) {
  T v = a.alpha * sum;
  if (a.bias) v += a.bias[j];
  if (a.gelu_grad_of) v *= gelu_grad_at(a.gelu_grad_of[int64_t(i) * a.ld_aux + j]);
  return v;
}

// The TF32 kernel's block tile (128x128, or 128x64 / 64x128 along a side of at most 64) and
// how many of its blocks an SM holds (registers and shared memory).
struct TileShape {
  int bm, bn, blocks_per_sm;
};
TileShape gemm_tf32_tile(int m, int n);

// Queues the TF32 kernel on `stream` with grid (m tiles, n tiles, splits).
void launch_gemm_tf32(const GemmArgs<float>& args, int splits, cudaStream_t stream);

}  // namespace kernels::cuda::gemm_detail
