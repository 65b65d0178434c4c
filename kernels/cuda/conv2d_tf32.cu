// kernels/cuda/conv2d_tf32.cu — versions 4-6 of the implicit-GEMM convolution (conv2d.cu
// has the problem, the three GEMM views and versions 1-3): TF32 tensor cores through mma.sync.
//
// Block tile BM x BN (128x128; 128x64 or 64x128 when a side is <= 64, as v3), one 64x32 warp
// tile per warp: 4 x 4 mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 per 8-deep k-step,
// 64 fp32 accumulators per thread. Operands are rounded to TF32 (10-bit mantissa) with
// cvt.rna.tf32.f32 as they leave shared memory; products are exact in the tensor core and
// summed in fp32.
//
// Fragments: which lane holds which element of A, B and C is in mma_tile.cuh (mma_a_row, ...,
// from the PTX ISA's table); the CPU test replays a warp's mma from them against a plain
// 16x8x8 product.
//
// Pipeline: Kdim is walked in 16-deep slices; cp.async copies each thread's chunks of a slice
// straight from global to shared memory (16 bytes per chunk when C and K are multiples of 4,
// else 4 bytes per element; src-size 0 zero-fills the padding and the tile edges), 4 slices in
// flight (stages). One barrier per slice: at step t, wait_group(STAGES-2) + __syncthreads
// guarantee slice t has landed for every thread AND every warp has finished step t-1, whose
// stage is then refilled with slice t+STAGES-1 while slice t is multiplied
// (pipelined_slices in cp_async.cuh, shared with matmul_tf32.cu).
// Shared layout per stage: operands contiguous along kk (forward A and B, data A) as
// [row][16+4], the others as [kk][rows+8]: cp.async writes 16 contiguous bytes, and the
// fragment reads (row g, k t) hit 32 different banks (Tf32Tile in mma_tile.cuh).
// Shared memory: 4 x (20 KB forward, 18.5 KB data, 13 KB weight at 64x128) -> 2 blocks/SM.
//
// Version 5 is version 4 with each operand element rounded to TF32 once, in shared memory, by
// the thread that copied it (as soon as its copy lands, before the slice's barrier), and the
// fragments of along-k tiles read by ldmatrix.x4 (mma_tf32.cuh, warp_tile_slice<..., ROUNDED>):
// per k-step a lane of a 128x128 block issues 6 shared loads and no cvt for its 16 mma.sync
// instead of 24 loads and 24 cvt (forward: both operands along k; data gradient: A; weight
// gradient: neither, so there only the cvt go). Same roundings and sums: the same bits as v4.
// Its along-k tiles are swizzled, not padded (mma_tile.cuh): with v4's padding every 16-byte
// chunk write (cp.async, and the rounding pass's load and store) collides with another in one
// bank group; the bank model (tests/cuda_labs/smem_banks.h) counts 768 shared-memory passes per
// 128x128 forward slice for v5 against 1152 with the padding and 640 for v4 (no rounding pass).
//
// Version 6 is version 5 with 64x64 warp tiles on 128x128 blocks: 4 warps a block, 4 x 8
// mma.sync blocks and 128 accumulators a thread (218-238 registers, 2 blocks per SM). The
// fragment reads are the largest share of a slice's shared-memory passes (each A row is read
// by every warp along n); with half as many warps along n they fall from 384 to 256 per
// 128x128 slice (640 passes in all, against v5's 768; cp.async and the rounding pass make the
// other 384). Half as many warps per SM as v5, each with twice the independent mma.sync per
// k-step. Same sums in the same order: the same bits as v4.
#include <string>

#include "kernels/cuda/conv2d.h"
#include "kernels/cuda/conv2d_gemm_view.cuh"
#include "kernels/cuda/cp_async.cuh"
#include "kernels/cuda/labs_common.cuh"
#include "kernels/cuda/mma_tf32.cuh"

namespace kernels::cuda::conv {

namespace {

using labs::ceil_div;

constexpr int kBK = 16, kStages = 4;

// The PTX: cp_async* in cp_async.cuh; the TF32 rounding and mma.sync of a slice in
// mma_tf32.cuh (warp_tile_slice).

// Issue the copies of this thread's chunks of the loader's current slice into stage tile s.
template <class L, class Tile, bool VEC>
__device__ __forceinline__ void copy_slice(const L& ld, const Geo& g, const float* __restrict__ p,
                                           float* s, int tid) {
  int off[L::E][L::V];
  ld.offsets(g, off);
#pragma unroll
  for (int j = 0; j < L::E; ++j) {
    float* dst = s + Tile::index(L::Slots::row(tid, j), L::Slots::kk(tid, j));
    if constexpr (VEC) {
      cp_async16(dst, p + max(off[j][0], 0), off[j][0] >= 0);
    } else {
#pragma unroll
      for (int e = 0; e < 4; ++e) cp_async4(dst + e, p + max(off[j][e], 0), off[j][e] >= 0);
    }
  }
}

// V: the version, 4-6 (mma_tf32.cuh's Tf32Loop).
template <class View, int BM, int BN, bool VEC, int V>
__global__ void __launch_bounds__(mma::Tf32Loop<V>::threads(BM, BN),
                                  mma::Tf32Loop<V>::min_blocks(BM, BN))
    gemm_tf32(GemmArgs a) {
  using Loop = mma::Tf32Loop<V>;
  static_assert(Loop::for_tile(BM, BN) == V, "version 6 runs 128x128 blocks only");
  constexpr bool ROUNDED = Loop::kRounded;
  constexpr int WARP_N = Loop::kWarpN, NI = Loop::kNI;        // warp tile 64 x WARP_N
  constexpr int T = Loop::threads(BM, BN), WN = BN / WARP_N;  // threads; warps along n
  using TA = Tf32Tile<View::A::kAlongK, BM, kBK, ROUNDED>;
  using TB = Tf32Tile<View::B::kAlongK, BN, kBK, ROUNDED>;
  using LA = TileLoader<typename View::A, BM, kBK, T, VEC>;
  using LB = TileLoader<typename View::B, BN, kBK, T, VEC>;
  extern __shared__ float4 smem_tf32[];
  float* sa = reinterpret_cast<float*>(smem_tf32);  // [stage][TA]
  float* sb = sa + kStages * TA::kFloats;            // [stage][TB]
  const Geo& g = a.g;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = (warp / WN) * 64, wn = (warp % WN) * WARP_N;  // warp tile origin
  const int m0 = blockIdx.x * BM, n0 = blockIdx.y * BN;
  const int k0 = blockIdx.z * a.k_per_split;
  const int k1 = min(k0 + a.k_per_split, View::kdim(g));
  const int tiles = k1 > k0 ? (k1 - k0 + kBK - 1) / kBK : 0;
  LA la;
  LB lb;
  la.init(g, m0, k0, tid);
  lb.init(g, n0, k0, tid);
  // The loaders always point at the next slice to issue (slices are issued in order).
  auto issue = [&](int t) {
    const int stage = t % kStages;
    copy_slice<LA, TA, VEC>(la, g, a.a, sa + stage * TA::kFloats, tid);
    copy_slice<LB, TB, VEC>(lb, g, a.b, sb + stage * TB::kFloats, tid);
    la.advance(g);
    lb.advance(g);
  };
  auto landed = [&](int t) {  // v5, v6: this thread's chunks of slice t, rounded once
    if constexpr (ROUNDED) {
      mma::round_own_chunks_tf32<typename LA::Slots, TA>(sa + (t % kStages) * TA::kFloats, tid);
      mma::round_own_chunks_tf32<typename LB::Slots, TB>(sb + (t % kStages) * TB::kFloats, tid);
    }
  };
  float acc[4][NI][4] = {};  // [m16 block][n8 block][c0..c3]
  pipelined_slices<kStages>(tiles, issue, landed, [&](int t) {
    const float* ta = sa + (t % kStages) * TA::kFloats;
    const float* tb = sb + (t % kStages) * TB::kFloats;
    mma::warp_tile_slice<TA, TB, kBK, ROUNDED, NI>(ta, tb, wm, wn, lane, acc);
  });

  // c0/c1 (and c2/c3) are two adjacent columns of one row: one 8-byte store when vec.
  const int mrows = View::m(g), ncols = View::n(g);
  float* out = a.out + int64_t(blockIdx.z) * a.out_split_stride;
  mma::for_each_c_pair<NI>(lane, [&](int mi, int ni, int h, int row_in_warp, int col_in_warp) {
    const int m = m0 + wm + row_in_warp, n = n0 + wn + col_in_warp;
    if (m >= mrows) return;
    float v0 = acc[mi][ni][2 * h], v1 = acc[mi][ni][2 * h + 1];
    if (a.bias != nullptr) {
      v0 += n < ncols ? a.bias[n] : 0.f;
      v1 += n + 1 < ncols ? a.bias[n + 1] : 0.f;
    }
    float* row = out + View::row_offset(g, m);
    if (VEC) {
      if (n < ncols) *reinterpret_cast<float2*>(row + n) = make_float2(v0, v1);
    } else {
      if (n < ncols) row[n] = v0;
      if (n + 1 < ncols) row[n + 1] = v1;
    }
  });
}

template <class View, int BM, int BN, bool VEC, int V>
void launch(const GemmArgs& a, int splits, cudaStream_t stream) {
  using TA = Tf32Tile<View::A::kAlongK, BM, kBK, mma::Tf32Loop<V>::kRounded>;
  using TB = Tf32Tile<View::B::kAlongK, BN, kBK, mma::Tf32Loop<V>::kRounded>;
  constexpr size_t smem = size_t(kStages) * (TA::kFloats + TB::kFloats) * sizeof(float);
  // Once per kernel: > 48 KB of dynamic shared memory needs an opt-in, and the largest shared
  // memory carveout lets 2-3 blocks (160-180 KB) share an SM.
  static const bool opted_in = [] {
    labs::check(cudaFuncSetAttribute(gemm_tf32<View, BM, BN, VEC, V>,
                                     cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)),
                "conv2d (TF32): cudaFuncSetAttribute");
    labs::check(cudaFuncSetAttribute(gemm_tf32<View, BM, BN, VEC, V>,
                                     cudaFuncAttributePreferredSharedMemoryCarveout,
                                     int(cudaSharedmemCarveoutMaxShared)),
                "conv2d (TF32): cudaFuncSetAttribute");
    return true;
  }();
  (void)opted_in;
  dim3 grid(unsigned(ceil_div(View::m(a.g), BM)), unsigned(ceil_div(View::n(a.g), BN)),
            unsigned(splits));
  gemm_tf32<View, BM, BN, VEC, V><<<grid, mma::Tf32Loop<V>::threads(BM, BN), smem, stream>>>(a);
}

template <class View, bool VEC, int V>
void launch_view(const GemmArgs& a, int splits, cudaStream_t stream) {
  using Loop = mma::Tf32Loop<V>;
  const BlockTile t = pick_tile(View::m(a.g), View::n(a.g));
  if (t.bn == 64)
    launch<View, 128, 64, VEC, Loop::for_tile(128, 64)>(a, splits, stream);
  else if (t.bm == 64)
    launch<View, 64, 128, VEC, Loop::for_tile(64, 128)>(a, splits, stream);
  else
    launch<View, 128, 128, VEC, V>(a, splits, stream);
}

template <class View, int V>
void launch_view(const GemmArgs& a, int splits, bool vec, cudaStream_t stream) {
  if (vec)
    launch_view<View, true, V>(a, splits, stream);
  else
    launch_view<View, false, V>(a, splits, stream);
}

template <class View>
void launch_view(const GemmArgs& a, int splits, bool vec, int version, cudaStream_t stream) {
  switch (version) {
    case 4: launch_view<View, 4>(a, splits, vec, stream); break;
    case 5: launch_view<View, 5>(a, splits, vec, stream); break;
    default: launch_view<View, 6>(a, splits, vec, stream); break;
  }
}

}  // namespace

void launch_tf32(ViewKind view, const GemmArgs& args, int splits, bool vec, int version,
                 cudaStream_t stream) {
  switch (view) {
    case ViewKind::Fwd: launch_view<FwdView>(args, splits, vec, version, stream); break;
    case ViewKind::Dgrad: launch_view<DgradView>(args, splits, vec, version, stream); break;
    case ViewKind::DgradPhase:
      launch_view<DgradPhaseView>(args, splits, vec, version, stream);
      break;
    case ViewKind::Wgrad: launch_view<WgradView>(args, splits, vec, version, stream); break;
  }
}

}  // namespace kernels::cuda::conv
