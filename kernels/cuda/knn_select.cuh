// kernels/cuda/knn_select.cuh — how knn.cu keeps the k best candidates: 64-bit keys and
// warp-held sorted lists (k <= 64), shared by every k-NN version and by topk_rows.
//
// A candidate is one 64-bit key: the score mapped to an order-preserving uint32
// (sign-flip trick; NaN -> the worst key; -0 -> +0) in the high half and the bank index in the
// low half. Comparing keys orders by score and breaks ties by the lower index, so the k best
// do not depend on the order in which threads see candidates. A warp holds a sorted top-k list
// in two registers per lane (entries lane and lane+32); a candidate enters only if it beats the
// k-th entry (a broadcast register), and is inserted with one ballot (its rank = popcount of the
// entries below it) and one shuffle-up. On random data almost every candidate fails that test:
// after m candidates the chance a new one enters is k/m.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace kernels::cuda::topk {

constexpr unsigned kFull = 0xffffffffu;
constexpr uint64_t kSentinel = ~0ull;  // worse than every candidate (index < 2^32 - 1)

// ---- keys -----------------------------------------------------------------------------------

__device__ __forceinline__ uint32_t float_key(float f, bool nan_best) {
  if (isnan(f)) return nan_best ? 0u : 0xffffffffu;
  if (f == 0.f) f = 0.f;  // -0 and +0 are equal scores
  uint32_t u = __float_as_uint(f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ float key_float(uint32_t key) {
  if (key == 0u || key == 0xffffffffu) return __int_as_float(0x7fc00000);  // the NaN keys
  return __uint_as_float((key & 0x80000000u) ? (key & 0x7fffffffu) : ~key);
}
__device__ __forceinline__ uint64_t pack(uint32_t key, int64_t index) {
  return (uint64_t(key) << 32) | uint32_t(index);
}

// Sorted ascending: entry e lives in lane e % 32, register e / 32 (lo: 0..31, hi: 32..63).
struct WarpList {
  uint64_t lo = kSentinel, hi = kSentinel;
};

__device__ __forceinline__ uint64_t kth(const WarpList& l, int k) {  // entry k-1, to all lanes
  return __shfl_sync(kFull, (k - 1) < 32 ? l.lo : l.hi, (k - 1) & 31);
}

// Inserts u (the same value in every lane); entry 63 falls off the end.
__device__ __forceinline__ void insert(WarpList& l, uint64_t u, int lane) {
  const int pos = __popc(__ballot_sync(kFull, l.lo < u)) + __popc(__ballot_sync(kFull, l.hi < u));
  uint64_t lo_prev = __shfl_up_sync(kFull, l.lo, 1);  // entry lane-1
  uint64_t hi_prev = __shfl_up_sync(kFull, l.hi, 1);  // entry lane+31
  uint64_t lo_last = __shfl_sync(kFull, l.lo, 31);    // entry 31, moves to 32 (lane 0's hi)
  if (lane == 0) hi_prev = lo_last;
  l.lo = lane < pos ? l.lo : (lane == pos ? u : lo_prev);
  l.hi = lane + 32 < pos ? l.hi : (lane + 32 == pos ? u : hi_prev);
}

// Offers each lane's candidate to the list; thr is the list's k-th entry (kept current).
__device__ __forceinline__ void offer(WarpList& l, uint64_t cand, uint64_t& thr, int k, int lane) {
  unsigned mask = __ballot_sync(kFull, cand < thr);
  while (mask) {
    const int src = __ffs(mask) - 1;
    mask &= mask - 1;
    const uint64_t u = __shfl_sync(kFull, cand, src);
    if (u < thr) {  // thr may have dropped since the ballot
      insert(l, u, lane);
      thr = kth(l, k);
    }
  }
}

// Writes entries 0..k-1 as (value, index); negate turns "smaller is better" back into scores.
__device__ __forceinline__ void write_list(const WarpList& l, int k, bool negate, float* values,
                                           int64_t* indices, int lane) {
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int e = lane + 32 * h;
    if (e >= k) continue;
    const uint64_t u = h ? l.hi : l.lo;
    const float v = key_float(uint32_t(u >> 32));
    values[e] = negate ? -v : v;
    indices[e] = u == kSentinel ? -1 : int64_t(uint32_t(u));
  }
}

// 256 threads select the k best of n_cand candidates fetch(j); the result is in warp 0's list.
// Each warp scans j = warp*32 + lane + 256*t, four loads in flight before it compares.
template <class Fetch>
__device__ __forceinline__ WarpList block_select(int64_t n_cand, int k, Fetch fetch,
                                                 uint64_t* lists /* [8][64] shared */) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  WarpList l;
  uint64_t thr = kSentinel;
  for (int64_t base = warp * 32; base < n_cand; base += 4 * 256) {
    uint64_t c[4];
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      int64_t j = base + lane + u * 256;
      c[u] = j < n_cand ? fetch(j) : kSentinel;
    }
#pragma unroll
    for (int u = 0; u < 4; ++u) offer(l, c[u], thr, k, lane);
  }
  lists[warp * 64 + lane] = l.lo;
  lists[warp * 64 + 32 + lane] = l.hi;
  __syncthreads();
  WarpList m;
  if (warp == 0) {
    thr = kSentinel;
    for (int w = 0; w < 8; ++w) {
      offer(m, lane < k ? lists[w * 64 + lane] : kSentinel, thr, k, lane);
      offer(m, lane + 32 < k ? lists[w * 64 + 32 + lane] : kSentinel, thr, k, lane);
    }
  }
  return m;
}

}  // namespace kernels::cuda::topk
