// kernels/cuda/matmul.cu — GEMM: our tiled kernel and cuBLAS behind one call.
//
// Ours ("version 1", gemm_tiled_kernel): the classic shared-memory SGEMM.
//   - A block computes a BM x BN tile of C with 256 threads; each thread owns TM x TN outputs
//     (register blocking: per k it reads TM + TN values from shared memory and does TM*TN FMAs).
//   - The thread's outputs are 2 x 2 blocks of (TM/2) x (TN/2), half a tile apart, so a warp's
//     shared-memory reads are 128-bit, conflict-free (B) or broadcast (A).
//   - A and B are staged through shared memory in BK-deep slices, k-major (As[k][m], Bs[k][n]),
//     double-buffered: the next slice's global loads are issued into registers before the
//     current slice's math, and stored to the other buffer after it (one __syncthreads per
//     slice). Global loads are coalesced for both layouts of each operand (the thread-to-
//     element map follows the operand's contiguous axis); rows are padded so the transposing
//     stores do not hit one bank.
//   - float: 128x128x8 tiles, 8x8 per thread; double: 64x64x8, 4x4 per thread.
//   - Not yet: 128-bit global loads, tensor cores (TF32/BF16 wgmma), split-k for small m*n.
// Vendor: cublasSgemm/cublasDgemm on the engine's stream with the operands swapped (row-major
// C = A B is column-major C^T = B^T A^T), plain FP32 math mode.
// Cost at m = n = k = 4096 (float32): 137 GFLOP, 201 MB moved at least: ~2 ms at the H100's
// ~67 TFLOP/s FP32 — compute-bound; smaller shapes are launch- and occupancy-bound.
#include "kernels/cuda/matmul.h"

#include <climits>

#include "kernels/cuda/pack.cuh"
#include "kernels/cuda/runtime.h"

namespace kernels::cuda {

namespace {

template <class T, int BM, int BN, int BK, int TM, int TN>
__global__ void __launch_bounds__((BM / TM) * (BN / TN))
    gemm_tiled_kernel(bool trans_a, bool trans_b, int m, int n, int k, T alpha,
                      const T* __restrict__ a, int64_t lda, const T* __restrict__ b, int64_t ldb,
                      T beta, T* __restrict__ c, int64_t ldc) {
  constexpr int NT = (BM / TM) * (BN / TN);  // threads per block
  constexpr int LA = BM * BK / NT;           // A elements each thread stages per slice
  constexpr int LB = BN * BK / NT;
  constexpr int HM = TM / 2, HN = TN / 2;  // a thread's outputs: 2 x 2 blocks of HM x HN
  constexpr int PAD = Pack<T>::kSize;      // keeps rows 16-byte aligned, spreads banks
  static_assert(HM == Pack<T>::kSize && HN == Pack<T>::kSize, "one 128-bit read per half");
  static_assert(BM * BK % NT == 0 && BN * BK % NT == 0, "whole slices per thread");
  __shared__ alignas(16) T As[2][BK][BM + PAD];
  __shared__ alignas(16) T Bs[2][BK][BN + PAD];

  const int tid = threadIdx.x;
  const int tx = tid % (BN / TN), ty = tid / (BN / TN);  // thread's column / row block
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;  // tile origin in C

  // Element e of a slice -> (row of the tile, k): k runs fastest when the operand is
  // contiguous along k, rows run fastest when it is transposed, so loads stay coalesced.
  auto a_pos = [&](int e, int& mm, int& kk) {
    if (trans_a) kk = e / BM, mm = e % BM;
    else mm = e / BK, kk = e % BK;
  };
  auto b_pos = [&](int e, int& nn, int& kk) {
    if (trans_b) nn = e / BK, kk = e % BK;
    else kk = e / BN, nn = e % BN;
  };

  T ra[LA], rb[LB];  // the next slice, in flight
  auto load_slice = [&](int k0) {
#pragma unroll
    for (int i = 0; i < LA; ++i) {
      int mm, kk;
      a_pos(tid + i * NT, mm, kk);
      const int gm = m0 + mm, gk = k0 + kk;
      ra[i] = gm < m && gk < k ? a[trans_a ? gk * lda + gm : gm * lda + gk] : T(0);
    }
#pragma unroll
    for (int i = 0; i < LB; ++i) {
      int nn, kk;
      b_pos(tid + i * NT, nn, kk);
      const int gn = n0 + nn, gk = k0 + kk;
      rb[i] = gn < n && gk < k ? b[trans_b ? gn * ldb + gk : gk * ldb + gn] : T(0);
    }
  };
  auto store_slice = [&](int buf) {
#pragma unroll
    for (int i = 0; i < LA; ++i) {
      int mm, kk;
      a_pos(tid + i * NT, mm, kk);
      As[buf][kk][mm] = ra[i];
    }
#pragma unroll
    for (int i = 0; i < LB; ++i) {
      int nn, kk;
      b_pos(tid + i * NT, nn, kk);
      Bs[buf][kk][nn] = rb[i];
    }
  };

  T acc[TM][TN] = {};
  const int slices = (k + BK - 1) / BK;
  if (slices > 0) {
    load_slice(0);
    store_slice(0);
  }
  __syncthreads();
  for (int s = 0; s < slices; ++s) {
    const int buf = s & 1;
    if (s + 1 < slices) load_slice((s + 1) * BK);
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      T fa[TM], fb[TN];
      Pack<T> p0 = load_pack(&As[buf][kk][ty * HM]);
      Pack<T> p1 = load_pack(&As[buf][kk][BM / 2 + ty * HM]);
      Pack<T> q0 = load_pack(&Bs[buf][kk][tx * HN]);
      Pack<T> q1 = load_pack(&Bs[buf][kk][BN / 2 + tx * HN]);
#pragma unroll
      for (int i = 0; i < HM; ++i) fa[i] = p0.v[i], fa[HM + i] = p1.v[i];
#pragma unroll
      for (int j = 0; j < HN; ++j) fb[j] = q0.v[j], fb[HN + j] = q1.v[j];
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] += fa[i] * fb[j];
    }
    if (s + 1 < slices) store_slice(buf ^ 1);
    __syncthreads();
  }

#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int row = m0 + (i < HM ? ty * HM + i : BM / 2 + ty * HM + i - HM);
    if (row >= m) continue;
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const int col = n0 + (j < HN ? tx * HN + j : BN / 2 + tx * HN + j - HN);
      if (col >= n) continue;
      T* out = c + row * ldc + col;
      T v = alpha * acc[i][j];
      if (beta != T(0)) v += beta * *out;  // beta == 0: C is never read (it may be NaN)
      *out = v;
    }
  }
}

template <class T, int BM, int BN, int BK, int TM, int TN>
void launch_tiled(bool ta, bool tb, int m, int n, int k, T alpha, const T* a, int64_t lda,
                  const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  constexpr int threads = (BM / TM) * (BN / TN);
  const dim3 grid((n + BN - 1) / BN, (m + BM - 1) / BM);
  if (grid.y > 65535) raise("gemm: m = " + std::to_string(m) + " is too large for one launch");
  gemm_tiled_kernel<T, BM, BN, BK, TM, TN>
      <<<grid, threads, 0, stream()>>>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  KCUDA_CHECK_LAUNCH("gemm (ours)");
}

void check_int(const char* what, int64_t v) {
  if (v > INT_MAX)
    raise(std::string("gemm: ") + what + " = " + std::to_string(v) +
          " exceeds the 32-bit sizes the CUDA GEMM takes; split the product");
}

}  // namespace

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
          const void* a, int64_t a_offset, int64_t lda, const void* b, int64_t b_offset,
          int64_t ldb, double beta, void* c, int64_t c_offset, int64_t ldc, DType dtype) {
  dispatch_float(dtype, "matmul", [&](auto zero) {
    using T = decltype(zero);
    if (m <= 0 || n <= 0) return;
    for (auto [what, v] : {std::pair<const char*, int64_t>{"m", m}, {"n", n}, {"k", k},
                           {"lda", lda}, {"ldb", ldb}, {"ldc", ldc}})
      check_int(what, v);
    const T* pa = static_cast<const T*>(a) + a_offset;
    const T* pb = static_cast<const T*>(b) + b_offset;
    T* pc = static_cast<T*>(c) + c_offset;
    const T al = static_cast<T>(alpha), be = static_cast<T>(beta);
    const int im = static_cast<int>(m), in = static_cast<int>(n), ik = static_cast<int>(k);

    // k == 0 (C = beta C, an empty sum) always takes our kernel: BLAS's rule for it is not
    // something cuBLAS documents, and PyTorch never hands it one either.
    if (impl(Family::Gemm) == Impl::Ours || k == 0) {
      if constexpr (sizeof(T) == 4)
        launch_tiled<T, 128, 128, 8, 8, 8>(trans_a, trans_b, im, in, ik, al, pa, lda, pb, ldb, be,
                                           pc, ldc);
      else
        launch_tiled<T, 64, 64, 8, 4, 4>(trans_a, trans_b, im, in, ik, al, pa, lda, pb, ldb, be,
                                         pc, ldc);
      return;
    }
    // Row-major C[m,n] = op(A) op(B) is column-major C^T[n,m] = op(B)^T op(A)^T: pass B first.
    cublasHandle_t h = cublas_handle();
    const cublasOperation_t ob = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasOperation_t oa = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    const int ila = static_cast<int>(lda), ilb = static_cast<int>(ldb), ilc = static_cast<int>(ldc);
    if constexpr (sizeof(T) == 4)
      KCUBLAS_CHECK(cublasSgemm(h, ob, oa, in, im, ik, &al, pb, ilb, pa, ila, &be, pc, ilc));
    else
      KCUBLAS_CHECK(cublasDgemm(h, ob, oa, in, im, ik, &al, pb, ilb, pa, ila, &be, pc, ilc));
    if (sync_after_launch()) KCUDA_CHECK(cudaStreamSynchronize(stream()));
  });
}

}  // namespace kernels::cuda
