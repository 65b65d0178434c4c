// kernels/cpu/matmul.h — C = alpha * op(A) * op(B) + beta * C, row-major, through OpenBLAS.
//
// Parallel over the OpenMP team (OpenBLAS itself runs single-threaded: one thread pool for the
// whole engine, see matmul.cpp); called inside a parallel region, it runs on the calling thread.
//
// op(X) is X or X^T; lda/ldb/ldc are row strides in elements. The engine passes transposed
// views as trans=true with their own leading dimension, so x.transpose(-1,-2) costs no copy.
#pragma once

#include <cstdint>

namespace kernels::cpu {

template <class T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
          int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc);

}  // namespace kernels::cpu
