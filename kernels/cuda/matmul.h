// kernels/cuda/matmul.h — C = alpha * op(A) * op(B) + beta * C on the GPU, row-major.
//
// The CUDA twin of kernels/cpu/matmul.h. op(X) is X or X^T; lda/ldb/ldc are row strides in
// elements, and *_offset is the element offset of the matrix from the pointer (the engine
// walks batch items this way). Two implementations behind one call, chosen per call by
// kernels::cuda::impl(Family::Gemm) (ENGINE_CUDA_IMPL_GEMM=ours|vendor): our tiled GEMM or
// cuBLAS (the default until ours is measured faster). With beta == 0, C is not read (it may
// hold NaN). float32 and float64; float32 in plain FP32 arithmetic unless kernels::cuda::tf32()
// is on (ENGINE_CUDA_TF32=1, PyTorch's allow_tf32): then both ours (matmul_tf32.cu) and cuBLAS
// round the operands to TF32 on the tensor cores. Deterministic: the same call gives the same
// bits (our split-K adds its partial sums in a fixed order).
#pragma once

#include <cstdint>

#include "kernels/dtype.h"

namespace kernels::cuda {

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
          const void* a, int64_t a_offset, int64_t lda, const void* b, int64_t b_offset,
          int64_t ldb, double beta, void* c, int64_t c_offset, int64_t ldc, DType dtype);

// What our GEMM kernels can do on the way in and out, so that an activation between two GEMMs
// needs no pass of its own (engine::mlp: ConvNeXt's Linear -> GELU -> Linear):
//   C[i, j] = ((alpha * sum_k A'[i, kk] B'[kk, j] + bias[j]) * gelu'(aux[i, j])) + beta * C[i, j]
// with A' = gelu(op(A)) when gelu_a, A' = op(A) with its rows layer-normed when norm_a.mean is
// set (below), else op(A); B' likewise; each fusion left out when its flag is off or its
// pointer null. GELU is the erf form (gelu_math.cuh); aux has C's dtype and row stride ld_aux.
// They hold for any transposition and survive split-K (the epilogue runs once, on the final sum).
// The LayerNorm fusion (engine::layer_norm_mlp: ConvNeXt's LayerNorm -> Linear, the LayerNorm's
// output never written): each row r of the operand as the product sees it (op(A) [m, k]: rows
// along m; op(B) [k, n]: rows along k) becomes (x - mean[r]) * rstd[r] * weight[c] + bias[c],
// c its column; mean and rstd as a LayerNorm forward saves them, weight and bias may be null
// (1 and 0). An operand takes GELU or a LayerNorm, not both.
// col_sums[j] = sum_i C[i, j] of the values stored (a Linear's bias gradient when C is the
// gradient at its output; C must then be contiguous, ldc == n): the TF32 kernel sums each
// block's tile in its epilogue and a short pass adds the blocks' rows in order (deterministic),
// so C is not read again; the other kernels, and a split k, sum C in a pass after the product.
struct GemmRowNorm {
  const void* mean = nullptr;  // [rows]; null: no LayerNorm on this operand
  const void* rstd = nullptr;  // [rows]
  const void* weight = nullptr;  // [columns] or null
  const void* bias = nullptr;    // [columns] or null
};
struct GemmFusion {
  bool gelu_a = false;                 // multiply gelu(op(A))
  bool gelu_b = false;                 // multiply gelu(op(B))
  GemmRowNorm norm_a{}, norm_b{};      // multiply op(A) / op(B) with their rows layer-normed
  const void* bias = nullptr;          // [n]
  const void* gelu_grad_of = nullptr;  // aux [m, n], row stride ld_aux
  int64_t ld_aux = 0;
  void* col_sums = nullptr;            // [n], written (not added to)
};

// gemm() with fusions. Always our kernels, whatever impl(Family::Gemm) says: cuBLAS has no such
// call (the engine composes cuBLAS with separate GELU passes when the vendor path is chosen).
void gemm_fused(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
                const void* a, int64_t a_offset, int64_t lda, const void* b, int64_t b_offset,
                int64_t ldb, double beta, void* c, int64_t c_offset, int64_t ldc, DType dtype,
                const GemmFusion& fusion);

// How many blocks along k our kernel splits this product into (1: none; matmul_args.cuh), with
// the current TF32 setting. For tests and benchmarks.
int gemm_ours_splits(int64_t m, int64_t n, int64_t k, DType dtype);

}  // namespace kernels::cuda
