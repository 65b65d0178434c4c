#include "kernels/cpu/indexing.h"

#include <algorithm>
#include <cstring>

namespace kernels::cpu {

namespace {

constexpr int64_t kParallelMin = 1 << 15;  // elements; below this threads cost more than they save
constexpr int64_t kChunk = 512;            // inner columns per scatter task

// Scatter-adds cannot split over j (a repeated index would make two threads add into the same
// slot), so their tasks are (o, block of inner columns): every dx[o, :, i] has one owner.
template <class F>
void for_column_blocks(int64_t outer, int64_t inner, int64_t work, F f) {
  const int64_t nb = (inner + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (work > kParallelMin)
  for (int64_t t = 0; t < outer * nb; ++t) {
    const int64_t o = t / nb, b = t % nb;
    f(o, b * kChunk, std::min(inner, (b + 1) * kChunk));
  }
}

}  // namespace

template <class T>
void cat_copy(int64_t outer, int64_t n, int64_t inner, const T* src, int64_t total, int64_t offset,
              T* out) {
  const int64_t row = n * inner;  // one outer slice of src is one contiguous run
  if (row == 0) return;
#pragma omp parallel for schedule(static) if (outer * row > kParallelMin)
  for (int64_t o = 0; o < outer; ++o)
    std::memcpy(out + (o * total + offset) * inner, src + o * row, sizeof(T) * row);
}

template <class T>
void index_select_forward(int64_t outer, int64_t n, int64_t inner, const T* x, int64_t m,
                          const int64_t* index, T* out) {
  if (inner == 0) return;
#pragma omp parallel for schedule(static) if (outer * m * inner > kParallelMin)
  for (int64_t t = 0; t < outer * m; ++t) {
    const int64_t o = t / m, j = t % m;
    std::memcpy(out + t * inner, x + (o * n + index[j]) * inner, sizeof(T) * inner);
  }
}

template <class T>
void index_select_backward(int64_t outer, int64_t n, int64_t inner, int64_t m, const int64_t* index,
                           const T* dy, T* dx) {
  std::fill(dx, dx + outer * n * inner, T(0));
  for_column_blocks(outer, inner, outer * m * inner, [&](int64_t o, int64_t i0, int64_t i1) {
    for (int64_t j = 0; j < m; ++j) {
      const T* g = dy + (o * m + j) * inner;
      T* d = dx + (o * n + index[j]) * inner;
      for (int64_t i = i0; i < i1; ++i) d[i] += g[i];
    }
  });
}

template <class T>
void gather_forward(int64_t outer, int64_t n, int64_t inner, const T* x, int64_t m,
                    const int64_t* index, T* out) {
#pragma omp parallel for schedule(static) if (outer * m * inner > kParallelMin)
  for (int64_t t = 0; t < outer * m; ++t) {
    const int64_t o = t / m;
    const int64_t* idx = index + t * inner;
    const T* xo = x + o * n * inner;
    T* y = out + t * inner;
    for (int64_t i = 0; i < inner; ++i) y[i] = xo[idx[i] * inner + i];
  }
}

template <class T>
void gather_backward(int64_t outer, int64_t n, int64_t inner, int64_t m, const int64_t* index,
                     const T* dy, T* dx) {
  std::fill(dx, dx + outer * n * inner, T(0));
  for_column_blocks(outer, inner, outer * m * inner, [&](int64_t o, int64_t i0, int64_t i1) {
    T* d = dx + o * n * inner;
    for (int64_t j = 0; j < m; ++j) {
      const int64_t* idx = index + (o * m + j) * inner;
      const T* g = dy + (o * m + j) * inner;
      for (int64_t i = i0; i < i1; ++i) d[idx[i] * inner + i] += g[i];
    }
  });
}

template void cat_copy<float>(int64_t, int64_t, int64_t, const float*, int64_t, int64_t, float*);
template void cat_copy<double>(int64_t, int64_t, int64_t, const double*, int64_t, int64_t, double*);
template void cat_copy<int64_t>(int64_t, int64_t, int64_t, const int64_t*, int64_t, int64_t,
                                int64_t*);
template void index_select_forward<float>(int64_t, int64_t, int64_t, const float*, int64_t,
                                          const int64_t*, float*);
template void index_select_forward<double>(int64_t, int64_t, int64_t, const double*, int64_t,
                                           const int64_t*, double*);
template void index_select_forward<int64_t>(int64_t, int64_t, int64_t, const int64_t*, int64_t,
                                            const int64_t*, int64_t*);
template void index_select_backward<float>(int64_t, int64_t, int64_t, int64_t, const int64_t*,
                                           const float*, float*);
template void index_select_backward<double>(int64_t, int64_t, int64_t, int64_t, const int64_t*,
                                            const double*, double*);
template void gather_forward<float>(int64_t, int64_t, int64_t, const float*, int64_t,
                                    const int64_t*, float*);
template void gather_forward<double>(int64_t, int64_t, int64_t, const double*, int64_t,
                                     const int64_t*, double*);
template void gather_forward<int64_t>(int64_t, int64_t, int64_t, const int64_t*, int64_t,
                                      const int64_t*, int64_t*);
template void gather_backward<float>(int64_t, int64_t, int64_t, int64_t, const int64_t*,
                                     const float*, float*);
template void gather_backward<double>(int64_t, int64_t, int64_t, int64_t, const int64_t*,
                                      const double*, double*);

}  // namespace kernels::cpu
