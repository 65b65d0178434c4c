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

// How many blocks along k our kernel splits this product into (1: none; matmul_args.cuh), with
// the current TF32 setting. For tests and benchmarks.
int gemm_ours_splits(int64_t m, int64_t n, int64_t k, DType dtype);

}  // namespace kernels::cuda
