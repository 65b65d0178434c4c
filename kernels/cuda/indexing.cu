// kernels/cuda/indexing.cu — cat, index_select, gather and their backwards.
//
// Forwards are copies of whole elements: a thread per output element reads one word through
// the index (4 or 8 bytes, whatever the dtype, so each kernel has two instantiations). Output
// writes are coalesced; reads are coalesced along `inner` (contiguous) and random across rows.
// cat with one outer slice is a single cudaMemcpyAsync.
// Backwards are gathers, not scatters (no atomics, deterministic, bit-equal to the CPU):
//   index_select: thread per dx element sums the dy rows listed for it in the CSR inverse.
//   gather: thread per dx column (o, i) zeroes it and adds dy[o, j, i] for j = 0..m-1.
// Cost of selecting 4096 rows of a [100000, 512] float32 table: 8 MB read + 8 MB written.
#include "kernels/cuda/indexing.h"
#include "kernels/cuda/runtime.h"

namespace kernels::cuda {

namespace {

constexpr int kThreads = 256;

// out[(o * total + offset) * inner + r] = src[o * row + r], row = n * inner.
template <class W>
__global__ void cat_kernel(int64_t outer, int64_t row, const W* __restrict__ src, int64_t total_row,
                           int64_t offset_row, W* __restrict__ out) {
  const int64_t count = outer * row;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < count;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t o = t / row, r = t % row;
    out[o * total_row + offset_row + r] = src[t];
  }
}

template <class W>
__global__ void index_select_kernel(int64_t outer, int64_t n, int64_t inner,
                                    const W* __restrict__ x, int64_t m,
                                    const int64_t* __restrict__ index, W* __restrict__ out) {
  const int64_t count = outer * m * inner;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < count;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = t % inner, oj = t / inner, j = oj % m, o = oj / m;
    out[t] = x[(o * n + index[j]) * inner + i];
  }
}

template <class W>
__global__ void gather_kernel(int64_t outer, int64_t n, int64_t inner, const W* __restrict__ x,
                              int64_t m, const int64_t* __restrict__ index, W* __restrict__ out) {
  const int64_t count = outer * m * inner;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < count;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = t % inner, o = t / (m * inner);
    out[t] = x[(o * n + index[t]) * inner + i];
  }
}

template <class T>
__global__ void index_select_backward_kernel(int64_t outer, int64_t n, int64_t inner, int64_t m,
                                             const int64_t* __restrict__ row_start,
                                             const int64_t* __restrict__ by_row,
                                             const T* __restrict__ dy, T* __restrict__ dx) {
  const int64_t count = outer * n * inner;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < count;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = t % inner, orow = t / inner, r = orow % n, o = orow / n;
    T s = T(0);
    for (int64_t u = row_start[r]; u < row_start[r + 1]; ++u)
      s += dy[(o * m + by_row[u]) * inner + i];
    dx[t] = s;
  }
}

template <class T>
__global__ void gather_backward_kernel(int64_t outer, int64_t n, int64_t inner, int64_t m,
                                       const int64_t* __restrict__ index, const T* __restrict__ dy,
                                       T* __restrict__ dx) {
  const int64_t count = outer * inner;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < count;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t o = t / inner, i = t % inner;
    T* d = dx + o * n * inner + i;
    for (int64_t r = 0; r < n; ++r) d[r * inner] = T(0);
    for (int64_t j = 0; j < m; ++j) {
      const int64_t at = (o * m + j) * inner + i;
      d[index[at] * inner] += dy[at];
    }
  }
}

// Calls f(W{}) with the unsigned word type of the element size (copies move bits only).
template <class F>
void by_word(DType dtype, F&& f) {
  if (dtype_size(dtype) == 4)
    f(uint32_t{});
  else
    f(uint64_t{});
}

}  // namespace

void cat_copy(int64_t outer, int64_t n, int64_t inner, const void* src, int64_t total,
              int64_t offset, void* out, DType dtype) {
  const int64_t row = n * inner;
  if (outer == 0 || row == 0) return;
  const size_t es = dtype_size(dtype);
  if (outer == 1) {
    KCUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(out) + offset * inner * es, src, row * es,
                                cudaMemcpyDeviceToDevice, stream()));
    return;
  }
  by_word(dtype, [&](auto w) {
    using W = decltype(w);
    cat_kernel<W><<<grid_for(outer * row, kThreads), kThreads, 0, stream()>>>(
        outer, row, static_cast<const W*>(src), total * inner, offset * inner,
        static_cast<W*>(out));
    KCUDA_CHECK_LAUNCH("cat");
  });
}

void index_select_forward(int64_t outer, int64_t n, int64_t inner, const void* x, int64_t m,
                          const int64_t* index, void* out, DType dtype) {
  if (outer * m * inner == 0) return;
  by_word(dtype, [&](auto w) {
    using W = decltype(w);
    index_select_kernel<W><<<grid_for(outer * m * inner, kThreads), kThreads, 0, stream()>>>(
        outer, n, inner, static_cast<const W*>(x), m, index, static_cast<W*>(out));
    KCUDA_CHECK_LAUNCH("index_select");
  });
}

void index_select_backward(int64_t outer, int64_t n, int64_t inner, int64_t m,
                           const int64_t* row_start, const int64_t* by_row, const void* dy,
                           void* dx, DType dtype) {
  dispatch_float(dtype, "index_select_backward", [&](auto zero) {
    using T = decltype(zero);
    if (outer * n * inner == 0) return;
    index_select_backward_kernel<T>
        <<<grid_for(outer * n * inner, kThreads), kThreads, 0, stream()>>>(
            outer, n, inner, m, row_start, by_row, static_cast<const T*>(dy), static_cast<T*>(dx));
    KCUDA_CHECK_LAUNCH("index_select_backward");
  });
}

void gather_forward(int64_t outer, int64_t n, int64_t inner, const void* x, int64_t m,
                    const int64_t* index, void* out, DType dtype) {
  if (outer * m * inner == 0) return;
  by_word(dtype, [&](auto w) {
    using W = decltype(w);
    gather_kernel<W><<<grid_for(outer * m * inner, kThreads), kThreads, 0, stream()>>>(
        outer, n, inner, static_cast<const W*>(x), m, index, static_cast<W*>(out));
    KCUDA_CHECK_LAUNCH("gather");
  });
}

void gather_backward(int64_t outer, int64_t n, int64_t inner, int64_t m, const int64_t* index,
                     const void* dy, void* dx, DType dtype) {
  dispatch_float(dtype, "gather_backward", [&](auto zero) {
    using T = decltype(zero);
    if (outer * n * inner == 0) return;
    gather_backward_kernel<T><<<grid_for(outer * inner, kThreads), kThreads, 0, stream()>>>(
        outer, n, inner, m, index, static_cast<const T*>(dy), static_cast<T*>(dx));
    KCUDA_CHECK_LAUNCH("gather_backward");
  });
}

}  // namespace kernels::cuda
