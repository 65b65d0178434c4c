// kernels/cuda/matmul.cu — GEMM: our kernels and cuBLAS behind one call.
//
// Ours, fp32 ("version 1", gemm_tiled_kernel): the classic shared-memory SGEMM.
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
//   - Not yet: 128-bit global loads.
// Ours, TF32 ("version 3"): float32 when kernels::cuda::tf32() is on, on the tensor cores
// (mma.sync, cp.async pipeline): matmul_tf32.cu.
// Both split a long k over more blocks when the output alone has too few tiles to fill the GPU
// (a Linear layer's weight gradient): split-K with a fixed-order sum, see matmul_args.cuh.
// Both apply gemm_fused's fusions (matmul.h): GELU or LayerNorm on an operand as its slice
// reaches shared memory, and bias + gelu' in the epilogue (gemm_epilogue, matmul_args.cuh).
// Vendor: cublasSgemm/cublasDgemm on the engine's stream with the operands swapped (row-major
// C = A B is column-major C^T = B^T A^T), FP32 math, or TF32 tensor-op math when tf32() is on.
// Cost at m = n = k = 4096 (float32): 137 GFLOP, 201 MB moved at least: ~2 ms at the H100's
// ~67 TFLOP/s FP32 — compute-bound; smaller shapes are launch- and occupancy-bound.
#include "kernels/cuda/matmul.h"

#include <algorithm>
#include <climits>
#include <optional>

#include "kernels/cuda/matmul_args.cuh"
#include "kernels/cuda/pack.cuh"
#include "kernels/cuda/reduce.h"
#include "kernels/cuda/runtime.h"

namespace kernels::cuda {

namespace {

using gemm_detail::GemmArgs;
using gemm_detail::TileShape;

template <class T, int BM, int BN, int BK, int TM, int TN>
__global__ void __launch_bounds__((BM / TM) * (BN / TN))
    gemm_tiled_kernel(GemmArgs<T> p) {
  constexpr int NT = (BM / TM) * (BN / TN);  // threads per block
  constexpr int LA = BM * BK / NT;           // A elements each thread stages per slice
  constexpr int LB = BN * BK / NT;
  constexpr int HM = TM / 2, HN = TN / 2;  // a thread's outputs: 2 x 2 blocks of HM x HN
  constexpr int PAD = Pack<T>::kSize;      // keeps rows 16-byte aligned, spreads banks
  static_assert(HM == Pack<T>::kSize && HN == Pack<T>::kSize, "one 128-bit read per half");
  static_assert(BM * BK % NT == 0 && BN * BK % NT == 0, "whole slices per thread");
  __shared__ alignas(16) T As[2][BK][BM + PAD];
  __shared__ alignas(16) T Bs[2][BK][BN + PAD];

  const bool trans_a = p.trans_a, trans_b = p.trans_b;
  const int m = p.m, n = p.n;
  const T* __restrict__ a = p.a;
  const T* __restrict__ b = p.b;
  const int64_t lda = p.lda, ldb = p.ldb;
  const int k_begin = blockIdx.z * p.k_per_split;  // this block's split of k
  const int k_end = min(k_begin + p.k_per_split, p.k);
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

  // LayerNorm fusion: each element is normalised as it is loaded (only those inside the
  // matrix: the zeros past its edges must stay zero). op(A)'s rows run along m, op(B)'s along k.
  const bool norm_a = p.norm_a.mean != nullptr, norm_b = p.norm_b.mean != nullptr;
  T ra[LA], rb[LB];  // the next slice, in flight
  auto load_slice = [&](int k0) {
#pragma unroll
    for (int i = 0; i < LA; ++i) {
      int mm, kk;
      a_pos(tid + i * NT, mm, kk);
      const int gm = m0 + mm, gk = k0 + kk;
      ra[i] = T(0);
      if (gm < m && gk < k_end) {
        ra[i] = a[trans_a ? gk * lda + gm : gm * lda + gk];
        if (norm_a) ra[i] = gemm_detail::row_norm_at(p.norm_a, gm, gk, ra[i]);
      }
    }
#pragma unroll
    for (int i = 0; i < LB; ++i) {
      int nn, kk;
      b_pos(tid + i * NT, nn, kk);
      const int gn = n0 + nn, gk = k0 + kk;
      rb[i] = T(0);
      if (gn < n && gk < k_end) {
        rb[i] = b[trans_b ? gn * ldb + gk : gk * ldb + gn];
        if (norm_b) rb[i] = gemm_detail::row_norm_at(p.norm_b, gk, gn, rb[i]);
      }
    }
  };
  // GELU fusion: the slice is transformed on its way from registers to shared memory, once
  // per element (out-of-range zeros stay zero: gelu(0) = 0).
  const bool gelu_a = p.gelu_a, gelu_b = p.gelu_b;
  auto store_slice = [&](int buf) {
#pragma unroll
    for (int i = 0; i < LA; ++i) {
      int mm, kk;
      a_pos(tid + i * NT, mm, kk);
      As[buf][kk][mm] = gelu_a ? gelu_at(ra[i]) : ra[i];
    }
#pragma unroll
    for (int i = 0; i < LB; ++i) {
      int nn, kk;
      b_pos(tid + i * NT, nn, kk);
      Bs[buf][kk][nn] = gelu_b ? gelu_at(rb[i]) : rb[i];
    }
  };

  T acc[TM][TN] = {};
  const int slices = k_end > k_begin ? (k_end - k_begin + BK - 1) / BK : 0;
  if (slices > 0) {
    load_slice(k_begin);
    store_slice(0);
  }
  __syncthreads();
  for (int s = 0; s < slices; ++s) {
    const int buf = s & 1;
    if (s + 1 < slices) load_slice(k_begin + (s + 1) * BK);
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

  // Into C (alpha, the epilogue fusions, beta applied), or the raw sums into this split's
  // slice of the partials.
  const bool to_c = p.partial == nullptr;
  T* c = to_c ? p.c : p.partial + int64_t(blockIdx.z) * m * n;
  const int64_t ldc = to_c ? p.ldc : n;
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int row = m0 + (i < HM ? ty * HM + i : BM / 2 + ty * HM + i - HM);
    if (row >= m) continue;
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const int col = n0 + (j < HN ? tx * HN + j : BN / 2 + tx * HN + j - HN);
      if (col >= n) continue;
      T* out = c + row * ldc + col;
      T v = acc[i][j];
      if (to_c) {
        v = gemm_detail::gemm_epilogue(p, row, col, v);
        if (p.beta != T(0)) v += p.beta * *out;  // beta == 0: C is never read (it may be NaN)
      }
      *out = v;
    }
  }
}

// Split-K's second pass (matmul_args.cuh): C = epilogue(partial[0] + partial[1] + ...) + beta C
// (epilogue: alpha and the fusions, gemm_epilogue), the splits added in order, one thread per
// element of C (consecutive threads: consecutive columns, so the partials and C are read
// coalesced).
template <class T>
__global__ void gemm_reduce_splits(GemmArgs<T> p, int splits) {
  const int64_t mn = int64_t(p.m) * p.n;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < mn;
       i += int64_t(gridDim.x) * blockDim.x) {
    T sum = 0;
    for (int z = 0; z < splits; ++z) sum += p.partial[z * mn + i];
    const int row = int(i / p.n), col = int(i % p.n);
    T* out = p.c + int64_t(row) * p.ldc + col;
    T v = gemm_detail::gemm_epilogue(p, row, col, sum);
    if (p.beta != T(0)) v += p.beta * *out;
    *out = v;
  }
}

template <class T, int BM, int BN, int BK, int TM, int TN>
void launch_tiled(const GemmArgs<T>& args, int splits, cudaStream_t s) {
  constexpr int threads = (BM / TM) * (BN / TN);
  const dim3 grid((args.n + BN - 1) / BN, (args.m + BM - 1) / BM, splits);
  if (grid.y > 65535 || splits > 65535)
    raise("gemm: m = " + std::to_string(args.m) + " is too large for one launch");
  gemm_tiled_kernel<T, BM, BN, BK, TM, TN><<<grid, threads, 0, s>>>(args);
  KCUDA_CHECK_LAUNCH("gemm (ours)");
}

// Split-K (matmul_args.cuh) only where the output tiles leave most of the GPU idle: fewer
// blocks than SMs. Then enough splits for two waves of blocks, each split at least
// kMinSplitK deep (shallower, the partial sums cost more traffic than the split saves), the
// partials under kMaxPartialBytes.
constexpr int kMinSplitK = 512;
constexpr int64_t kMaxPartialBytes = int64_t(64) << 20;

int plan_splits(int m, int n, int k, TileShape tile, size_t elem_bytes) {
  const int64_t blocks = int64_t((m + tile.bm - 1) / tile.bm) * ((n + tile.bn - 1) / tile.bn);
  if (blocks >= sm_count() || k < 2 * kMinSplitK) return 1;
  const int64_t want = (2 * int64_t(sm_count()) * tile.blocks_per_sm + blocks - 1) / blocks;
  const int64_t cap = std::min<int64_t>({k / kMinSplitK, 65535,
                                         kMaxPartialBytes / (int64_t(elem_bytes) * m * n)});
  return int(std::max<int64_t>(1, std::min(want, cap)));
}

// The block tile of the kernel gemm() runs for `dtype` (and the TF32 switch).
TileShape ours_tile(int m, int n, DType dtype) {
  if (dtype == DType::Float64) return {64, 64, 4};
  return tf32() ? gemm_detail::gemm_tf32_tile(m, n) : TileShape{128, 128, 2};
}

// Runs one of our GEMM kernels (`launch(args, splits, stream)`) on args, with split-K where
// plan_splits asks for it: partials in scratch memory, then their fixed-order sum into C.
template <class T, class Launch>
void run_ours(GemmArgs<T> args, TileShape tile, Launch launch) {
  int splits = plan_splits(args.m, args.n, args.k, tile, sizeof(T));
  args.k_per_split = args.k;
  if (splits == 1) {
    launch(args, 1, stream());
    return;
  }
  args.k_per_split = (args.k + splits - 1) / splits;
  args.k_per_split = (args.k_per_split + 15) / 16 * 16;  // whole 16-deep slices per split
  splits = (args.k + args.k_per_split - 1) / args.k_per_split;  // none of them empty
  const int64_t mn = int64_t(args.m) * args.n;
  Scratch partial(size_t(splits) * mn * sizeof(T));
  args.partial = static_cast<T*>(partial.get());
  launch(args, splits, stream());
  gemm_reduce_splits<T><<<grid_for(mn, 256), 256, 0, stream()>>>(args, splits);
  KCUDA_CHECK_LAUNCH("gemm (ours): sum of the k splits");
}

template <class T>
gemm_detail::RowNorm<T> row_norm(const GemmRowNorm& n) {
  return {static_cast<const T*>(n.mean), static_cast<const T*>(n.rstd),
          static_cast<const T*>(n.weight), static_cast<const T*>(n.bias)};
}

void check_int(const char* what, int64_t v) {
  if (v > INT_MAX)
    raise(std::string("gemm: ") + what + " = " + std::to_string(v) +
          " exceeds the 32-bit sizes the CUDA GEMM takes; split the product");
}

// gemm() and gemm_fused(): fusion null means none, and lets cuBLAS run when it is selected.
void run_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
              const void* a, int64_t a_offset, int64_t lda, const void* b, int64_t b_offset,
              int64_t ldb, double beta, void* c, int64_t c_offset, int64_t ldc, DType dtype,
              const GemmFusion* fusion) {
  dispatch_float(dtype, "matmul", [&](auto zero) {
    using T = decltype(zero);
    if (m <= 0 || n <= 0) {  // nothing to multiply; the column sums of no rows are zeros
      if (fusion && fusion->col_sums && n > 0)
        KCUDA_CHECK(cudaMemsetAsync(fusion->col_sums, 0, size_t(n) * sizeof(T), stream()));
      return;
    }
    for (auto [what, v] : {std::pair<const char*, int64_t>{"m", m}, {"n", n}, {"k", k},
                           {"lda", lda}, {"ldb", ldb}, {"ldc", ldc}})
      check_int(what, v);
    if (fusion && fusion->gelu_grad_of && fusion->ld_aux < n)
      raise("gemm: the gelu' operand's row stride " + std::to_string(fusion->ld_aux) +
            " is shorter than a row of C (" + std::to_string(n) + ")");
    if (fusion && ((fusion->gelu_a && fusion->norm_a.mean) ||
                   (fusion->gelu_b && fusion->norm_b.mean)))
      raise("gemm: an operand takes GELU or a LayerNorm as it is loaded, not both");
    if (fusion && ((fusion->norm_a.mean != nullptr) != (fusion->norm_a.rstd != nullptr) ||
                   (fusion->norm_b.mean != nullptr) != (fusion->norm_b.rstd != nullptr)))
      raise("gemm: a LayerNorm on an operand needs both its mean and its rstd");
    if (fusion && fusion->col_sums && ldc != n)
      raise("gemm: column sums need a contiguous C (ldc " + std::to_string(ldc) + ", n " +
            std::to_string(n) + ")");
    const T* pa = static_cast<const T*>(a) + a_offset;
    const T* pb = static_cast<const T*>(b) + b_offset;
    T* pc = static_cast<T*>(c) + c_offset;
    const T al = static_cast<T>(alpha), be = static_cast<T>(beta);
    const int im = static_cast<int>(m), in = static_cast<int>(n), ik = static_cast<int>(k);

    // k == 0 (C = beta C, an empty sum) always takes our kernel: BLAS's rule for it is not
    // something cuBLAS documents, and PyTorch never hands it one either.
    if (fusion || impl(Family::Gemm) == Impl::Ours || k == 0) {
      GemmArgs<T> args{trans_a, trans_b, im, in, ik, al, be, pa, lda, pb, ldb, pc, ldc,
                       ik, nullptr};
      if (fusion) {
        args.gelu_a = fusion->gelu_a;
        args.gelu_b = fusion->gelu_b;
        args.norm_a = row_norm<T>(fusion->norm_a);
        args.norm_b = row_norm<T>(fusion->norm_b);
        args.bias = static_cast<const T*>(fusion->bias);
        args.gelu_grad_of = static_cast<const T*>(fusion->gelu_grad_of);
        args.ld_aux = fusion->ld_aux;
      }
      const TileShape tile = ours_tile(im, in, dtype);
      void* col_sums = fusion ? fusion->col_sums : nullptr;
      bool sums_done = false;  // col_sums written by the TF32 kernel's epilogue
      if constexpr (sizeof(T) == 4) {
        if (tf32()) {
          // Per-block column sums, one row per m tile, when the product is not split.
          const int64_t m_tiles = (im + tile.bm - 1) / tile.bm;
          std::optional<Scratch> block_sums;
          if (col_sums && plan_splits(im, in, ik, tile, sizeof(T)) == 1) {
            block_sums.emplace(size_t(m_tiles) * in * sizeof(T));
            args.col_partial = static_cast<T*>(block_sums->get());
          }
          run_ours(args, tile, gemm_detail::launch_gemm_tf32);
          if (args.col_partial) {
            reduce_sum(1, m_tiles, in, args.col_partial, col_sums, dtype);
            sums_done = true;
          }
        } else {
          run_ours(args, tile, launch_tiled<T, 128, 128, 8, 8, 8>);
        }
      } else {
        run_ours(args, tile, launch_tiled<T, 64, 64, 8, 4, 4>);
      }
      if (col_sums && !sums_done) reduce_sum(1, im, in, pc, col_sums, dtype);  // a pass over C
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
    after_library_call("matmul (cuBLAS)");
  });
}

}  // namespace

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
          const void* a, int64_t a_offset, int64_t lda, const void* b, int64_t b_offset,
          int64_t ldb, double beta, void* c, int64_t c_offset, int64_t ldc, DType dtype) {
  run_gemm(trans_a, trans_b, m, n, k, alpha, a, a_offset, lda, b, b_offset, ldb, beta, c,
           c_offset, ldc, dtype, nullptr);
}

void gemm_fused(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
                const void* a, int64_t a_offset, int64_t lda, const void* b, int64_t b_offset,
                int64_t ldb, double beta, void* c, int64_t c_offset, int64_t ldc, DType dtype,
                const GemmFusion& fusion) {
  run_gemm(trans_a, trans_b, m, n, k, alpha, a, a_offset, lda, b, b_offset, ldb, beta, c,
           c_offset, ldc, dtype, &fusion);
}

int gemm_ours_splits(int64_t m, int64_t n, int64_t k, DType dtype) {
  if (m <= 0 || n <= 0 || m > INT_MAX || n > INT_MAX || k > INT_MAX) return 1;
  const int dtype_bytes = dtype == DType::Float64 ? 8 : 4;
  return plan_splits(int(m), int(n), int(k), ours_tile(int(m), int(n), dtype), dtype_bytes);
}

}  // namespace kernels::cuda
