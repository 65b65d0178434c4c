// kernels/cpu/matmul.cpp — GEMM through OpenBLAS, parallelised by OpenMP (see matmul.h).
//
// One thread pool: every parallel loop of the engine is OpenMP, and OpenBLAS is told to run
// single-threaded. With two pools (OpenMP's team and OpenBLAS's own pthreads), each pool's
// idle threads spin-wait while the other pool works, and on a 2-core machine that made a
// training step slower with 2 threads than the two pools could reach apart. So gemm() splits
// the product into one sub-product per OpenMP thread and calls OpenBLAS once in each:
//   - along M (rows of C) or N (columns of C), whichever is larger: each thread writes its
//     own block of C, no synchronisation;
//   - along K when C is small and K large (a weight gradient: dW[64, 576] summed over 25,000
//     pixels): each thread computes a partial C into a private buffer, and the partials are
//     added in a fixed order (deterministic).
// Called from inside a parallel region (a convolution chunk per thread) it runs on the
// calling thread alone.
#include "kernels/cpu/matmul.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <memory>

namespace kernels::cpu {

namespace {

// Below this many multiply-adds a product is not worth waking the team for.
constexpr double kParallelMacs = 1 << 18;
// Each thread's block along M or N is at least this long (OpenBLAS's own register tiles are
// 4-16 wide; thinner blocks waste its micro-kernel).
constexpr int64_t kMinBlock = 32;

void blas(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a,
              static_cast<int>(lda), b, static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

void blas(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a,
          int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a,
              static_cast<int>(lda), b, static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

// OpenBLAS single-threaded. Checked on every call (a cheap read) rather than set once: a
// benchmark that runs LibTorch in the same process gives OpenBLAS its threads back for
// LibTorch's turn, and our parallel regions must not each start OpenBLAS's team on top.
void single_threaded_blas() {
  if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
}

// [begin, end) of part i of n equal parts of [0, total).
int64_t part(int64_t total, int i, int n) { return total * i / n; }

}  // namespace

template <class T>
void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda,
          const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  single_threaded_blas();
  const int team = omp_in_parallel() ? 1 : omp_get_max_threads();
  const double macs = static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  if (team == 1 || macs < kParallelMacs || k == 0) {
    blas(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  // Element (i, j) of op(A) is a[i * lda + j], or a[j * lda + i] when transposed; so are B's.
  const int64_t a_row = ta ? 1 : lda, a_col = ta ? lda : 1;
  const int64_t b_row = tb ? 1 : ldb, b_col = tb ? ldb : 1;

  if (std::max(m, n) >= kMinBlock * team || k < kMinBlock * team) {
    const bool by_rows = m >= n;
    const int64_t len = by_rows ? m : n;
    const int parts = static_cast<int>(std::clamp<int64_t>(len / kMinBlock, 1, team));
#pragma omp parallel for num_threads(parts) schedule(static, 1)
    for (int i = 0; i < parts; ++i) {
      const int64_t i0 = part(len, i, parts), i1 = part(len, i + 1, parts);
      if (by_rows)
        blas(ta, tb, i1 - i0, n, k, alpha, a + i0 * a_row, lda, b, ldb, beta, c + i0 * ldc, ldc);
      else
        blas(ta, tb, m, i1 - i0, k, alpha, a, lda, b + i0 * b_col, ldb, beta, c + i0, ldc);
    }
    return;
  }

  // Split K: partial products into private [m, n] buffers, then C = beta * C + their sum.
  const int parts = team;
  const auto partial = std::make_unique_for_overwrite<T[]>(static_cast<size_t>(parts * m * n));
#pragma omp parallel num_threads(parts)
  {
#pragma omp for schedule(static, 1)
    for (int i = 0; i < parts; ++i) {
      const int64_t k0 = part(k, i, parts), k1 = part(k, i + 1, parts);
      blas(ta, tb, m, n, k1 - k0, alpha, a + k0 * a_col, lda, b + k0 * b_row, ldb, T(0),
           partial.get() + i * m * n, n);
    }
    // Implicit barrier above; now each thread finishes its own rows of C.
#pragma omp for schedule(static)
    for (int64_t r = 0; r < m; ++r) {
      T* crow = c + r * ldc;
      for (int64_t j = 0; j < n; ++j) crow[j] = beta == T(0) ? T(0) : beta * crow[j];
      for (int i = 0; i < parts; ++i) {
        const T* prow = partial.get() + (i * m + r) * n;
        for (int64_t j = 0; j < n; ++j) crow[j] += prow[j];
      }
    }
  }
}

template void gemm<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t,
                          const float*, int64_t, float, float*, int64_t);
template void gemm<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t,
                           const double*, int64_t, double, double*, int64_t);

}  // namespace kernels::cpu
