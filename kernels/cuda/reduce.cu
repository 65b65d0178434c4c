// kernels/cuda/reduce.cu — sum and max over the middle axis of a contiguous [outer, r, inner].
//
// Sum, two layouts (the launcher picks), both accumulating in double like the CPU:
//   rows (inner == 1, e.g. a row sum or the sum of everything): threads of a row read it with
//     a stride of one (coalesced). Short rows (r <= 1024) get one warp each, 8 rows per block;
//     long rows get a whole block, and when there are too few rows to fill the GPU each row is
//     split into chunks across blocks whose partial sums a second kernel adds (deterministic,
//     no atomics).
//   columns (inner > 1, e.g. BatchNorm statistics [1, N*H*W, C]): a block holds `cols`
//     columns x `groups` row groups; thread t reads column t % cols of every groups-th row, so
//     consecutive threads read consecutive addresses. inner <= 128: the block spans all columns
//     (cols = inner); wider: 32-column tiles. Row groups are combined by a tree in shared
//     memory, row chunks across blocks by the same second kernel as above.
// Cost of the BatchNorm-statistics sum [1, 64*56*56, 96] in float32: 77 MB read, 19 MFLOP:
// ~0.03 ms at ~2.6 TB/s.
//
// Max: the same row layout with (value, index) pairs merged by `wins`; columns use one thread
// per output walking its column (coalesced across threads, but serial in r: fine for the
// engine's uses so far, a split version is the next step if max over long columns matters).
#include "kernels/cuda/reduce.h"

#include <algorithm>

#include "kernels/cuda/runtime.h"

namespace kernels::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kWarp = 32;

__device__ __forceinline__ double warp_sum(double v) {
#pragma unroll
  for (int d = kWarp / 2; d > 0; d /= 2) v += __shfl_down_sync(0xffffffffu, v, d);
  return v;
}

// Rows: rows_per_block rows per block (8: a warp per row; 1: the block per row); blockIdx.y
// is the chunk of the row, chunk elements long. Writes out (one chunk) or partial[chunk][row].
template <class T>
__global__ void sum_rows_kernel(int64_t outer, int64_t r, const T* __restrict__ x,
                                T* __restrict__ out, double* __restrict__ partial,
                                int rows_per_block, int64_t chunk) {
  __shared__ double warp_part[kThreads / kWarp];
  const int tpr = blockDim.x / rows_per_block;  // threads per row
  const int64_t row = blockIdx.x * static_cast<int64_t>(rows_per_block) + threadIdx.x / tpr;
  const int lane = threadIdx.x % tpr;
  const int64_t k0 = blockIdx.y * chunk, k1 = k0 + chunk < r ? k0 + chunk : r;
  double acc = 0;
  if (row < outer)
    for (int64_t k = k0 + lane; k < k1; k += tpr) acc += static_cast<double>(x[row * r + k]);
  acc = warp_sum(acc);
  if (tpr > kWarp) {  // the whole block is one row: add the warps' sums
    if (threadIdx.x % kWarp == 0) warp_part[threadIdx.x / kWarp] = acc;
    __syncthreads();
    acc = 0;
    if (threadIdx.x < kWarp) {
      acc = threadIdx.x < blockDim.x / kWarp ? warp_part[threadIdx.x] : 0.0;
      acc = warp_sum(acc);
    }
  }
  if (lane == 0 && row < outer) {
    if (gridDim.y == 1) out[row] = static_cast<T>(acc);
    else partial[blockIdx.y * outer + row] = acc;
  }
}

// Columns: block = cols x groups threads (groups a power of two); blockIdx.x = (o, column
// tile), blockIdx.y = chunk of rows. Writes out (one chunk) or partial[chunk][o * inner + col].
template <class T>
__global__ void sum_cols_kernel(int64_t outer, int64_t r, int64_t inner, const T* __restrict__ x,
                                T* __restrict__ out, double* __restrict__ partial, int cols,
                                int groups, int64_t tiles, int64_t chunk) {
  __shared__ double part[kThreads];
  const int c = threadIdx.x % cols, g = threadIdx.x / cols;
  const int64_t o = blockIdx.x / tiles;
  const int64_t col = (blockIdx.x % tiles) * cols + c;
  const int64_t k0 = blockIdx.y * chunk, k1 = k0 + chunk < r ? k0 + chunk : r;
  const bool active = g < groups && col < inner;
  double acc = 0;
  if (active)
    for (int64_t k = k0 + g; k < k1; k += groups)
      acc += static_cast<double>(x[(o * r + k) * inner + col]);
  part[threadIdx.x] = acc;
  __syncthreads();
  for (int half = groups / 2; half > 0; half /= 2) {  // tree over row groups
    if (g < half) part[threadIdx.x] += part[threadIdx.x + half * cols];
    __syncthreads();
  }
  if (g == 0 && col < inner) {
    if (gridDim.y == 1) out[o * inner + col] = static_cast<T>(part[threadIdx.x]);
    else partial[blockIdx.y * outer * inner + o * inner + col] = part[threadIdx.x];
  }
}

// out[j] = sum over chunks s of partial[s][j]
template <class T>
__global__ void sum_chunks_kernel(int64_t n, int64_t chunks, const double* __restrict__ partial,
                                  T* __restrict__ out) {
  for (int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; j < n;
       j += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    double s = 0;
    for (int64_t c = 0; c < chunks; ++c) s += partial[c * n + j];
    out[j] = static_cast<T>(s);
  }
}

// Does (v, i) beat (best, bi)? NaN beats numbers, a larger value beats a smaller one, and on a
// tie the smaller index wins: so the result is the first maximal index, or the first NaN.
template <class T>
__device__ __forceinline__ bool wins(T v, int64_t i, T best, int64_t bi) {
  const bool vn = isnan(v), bn = isnan(best);
  if (vn != bn) return vn;
  if (!vn && v != best) return v > best;
  return i < bi;
}

template <class T>
__global__ void max_rows_kernel(int64_t outer, int64_t r, const T* __restrict__ x,
                                T* __restrict__ out, int64_t* __restrict__ idx,
                                int rows_per_block) {
  __shared__ T warp_best[kThreads / kWarp];
  __shared__ int64_t warp_bi[kThreads / kWarp];
  const int tpr = blockDim.x / rows_per_block;
  const int64_t row = blockIdx.x * static_cast<int64_t>(rows_per_block) + threadIdx.x / tpr;
  const int lane = threadIdx.x % tpr;
  T best = -INFINITY;
  int64_t bi = INT64_MAX;  // "no element yet": loses to every real element
  if (row < outer)
    for (int64_t k = lane; k < r; k += tpr) {
      T v = x[row * r + k];
      if (wins(v, k, best, bi)) best = v, bi = k;
    }
  auto merge_warp = [&] {
#pragma unroll
    for (int d = kWarp / 2; d > 0; d /= 2) {
      T v = __shfl_down_sync(0xffffffffu, best, d);
      int64_t i = __shfl_down_sync(0xffffffffu, bi, d);
      if (wins(v, i, best, bi)) best = v, bi = i;
    }
  };
  merge_warp();
  if (tpr > kWarp) {
    if (threadIdx.x % kWarp == 0) {
      warp_best[threadIdx.x / kWarp] = best;
      warp_bi[threadIdx.x / kWarp] = bi;
    }
    __syncthreads();
    if (threadIdx.x < kWarp) {
      const bool has = threadIdx.x < blockDim.x / kWarp;
      best = has ? warp_best[threadIdx.x] : T(-INFINITY);
      bi = has ? warp_bi[threadIdx.x] : INT64_MAX;
      merge_warp();
    }
  }
  if (lane == 0 && row < outer) out[row] = best, idx[row] = bi;
}

template <class T>
__global__ void max_cols_kernel(int64_t outer, int64_t r, int64_t inner, const T* __restrict__ x,
                                T* __restrict__ out, int64_t* __restrict__ idx) {
  for (int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; j < outer * inner;
       j += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t o = j / inner, i = j - o * inner;
    const T* p = x + o * r * inner + i;
    T best = p[0];
    int64_t bi = 0;
    for (int64_t k = 1; k < r && !isnan(best); ++k) {
      T v = p[k * inner];
      if (v > best || isnan(v)) best = v, bi = k;
    }
    out[j] = best;
    idx[j] = bi;
  }
}

template <class T>
__global__ void max_backward_kernel(int64_t outer, int64_t r, int64_t inner,
                                    const T* __restrict__ dy, const int64_t* __restrict__ idx,
                                    T* __restrict__ dx) {
  const int64_t n = outer * r * inner;
  for (int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; j < n;
       j += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = j % inner, ok = j / inner;  // ok = o * r + k
    const int64_t k = ok % r, o = ok / r;
    const int64_t src = o * inner + i;
    dx[j] = idx[src] == k ? dy[src] : T(0);
  }
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// How many chunks to split each of `outputs` reductions of length r into, so that about
// `target` blocks run, without chunks shorter than min_chunk.
int64_t chunks_for(int64_t blocks, int64_t r, int64_t min_chunk) {
  const int64_t target = static_cast<int64_t>(sm_count()) * 4;
  if (blocks >= target) return 1;
  return std::max<int64_t>(1, std::min(ceil_div(target, blocks), r / min_chunk));
}

template <class T>
void sum_impl(int64_t outer, int64_t r, int64_t inner, const T* x, T* out) {
  const int64_t n = outer * inner;
  dim3 grid;
  int rows_per_block = 1, cols = 0, groups = 0;
  int64_t tiles = 0;
  if (inner == 1) {
    rows_per_block = r <= 1024 ? kThreads / kWarp : 1;
    grid.x = static_cast<unsigned>(ceil_div(outer, rows_per_block));
    grid.y = rows_per_block == 1 ? static_cast<unsigned>(chunks_for(outer, r, 4096)) : 1;
  } else {
    cols = static_cast<int>(inner <= 128 ? inner : 32);
    groups = 1;
    while (groups * 2 * cols <= kThreads) groups *= 2;
    tiles = ceil_div(inner, cols);
    grid.x = static_cast<unsigned>(outer * tiles);
    grid.y = static_cast<unsigned>(chunks_for(outer * tiles, r, 8 * groups));
  }
  const int64_t chunk = ceil_div(r, grid.y);
  Scratch partial(grid.y > 1 ? grid.y * n * sizeof(double) : 0);
  double* part = static_cast<double*>(partial.get());
  if (inner == 1)
    sum_rows_kernel<T><<<grid, kThreads, 0, stream()>>>(outer, r, x, out, part, rows_per_block,
                                                        chunk);
  else
    sum_cols_kernel<T><<<grid, kThreads, 0, stream()>>>(outer, r, inner, x, out, part, cols,
                                                        groups, tiles, chunk);
  KCUDA_CHECK_LAUNCH("sum");
  if (grid.y > 1) {
    sum_chunks_kernel<T><<<grid_for(n, kThreads), kThreads, 0, stream()>>>(n, grid.y, part, out);
    KCUDA_CHECK_LAUNCH("sum (adding chunks)");
  }
}

}  // namespace

// ---- launchers -----------------------------------------------------------------------------

void reduce_sum(int64_t outer, int64_t r, int64_t inner, const void* x, void* out, DType dtype) {
  dispatch_float(dtype, "sum", [&](auto zero) {
    using T = decltype(zero);
    const int64_t n = outer * inner;
    if (n == 0) return;
    if (r == 0) {  // an empty sum is 0 (all-zero bits)
      KCUDA_CHECK(cudaMemsetAsync(out, 0, n * sizeof(T), stream()));
      return;
    }
    sum_impl<T>(outer, r, inner, static_cast<const T*>(x), static_cast<T*>(out));
  });
}

void reduce_max(int64_t outer, int64_t r, int64_t inner, const void* x, void* out, int64_t* idx,
                DType dtype) {
  dispatch_float(dtype, "max", [&](auto zero) {
    using T = decltype(zero);
    if (outer * inner == 0) return;
    if (r <= 0) raise("max: reducing over an empty dimension");
    const T* px = static_cast<const T*>(x);
    T* po = static_cast<T*>(out);
    if (inner == 1) {
      const int rows_per_block = r <= 1024 ? kThreads / kWarp : 1;
      const auto blocks = static_cast<unsigned>(ceil_div(outer, rows_per_block));
      max_rows_kernel<T><<<blocks, kThreads, 0, stream()>>>(outer, r, px, po, idx, rows_per_block);
    } else {
      max_cols_kernel<T><<<grid_for(outer * inner, kThreads), kThreads, 0, stream()>>>(
          outer, r, inner, px, po, idx);
    }
    KCUDA_CHECK_LAUNCH("max");
  });
}

void reduce_max_backward(int64_t outer, int64_t r, int64_t inner, const void* dy,
                         const int64_t* idx, void* dx, DType dtype) {
  dispatch_float(dtype, "max_backward", [&](auto zero) {
    using T = decltype(zero);
    const int64_t n = outer * r * inner;
    if (n == 0) return;
    max_backward_kernel<T><<<grid_for(n, kThreads), kThreads, 0, stream()>>>(
        outer, r, inner, static_cast<const T*>(dy), idx, static_cast<T*>(dx));
    KCUDA_CHECK_LAUNCH("max_backward");
  });
}

}  // namespace kernels::cuda
