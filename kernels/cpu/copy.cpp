#include "kernels/cpu/copy.h"

#include <vector>

#include "kernels/cpu/parallel.h"

namespace kernels::cpu {

template <class Src, class Dst>
void copy_strided(int ndim, const int64_t* shape, const Src* src, const int64_t* src_strides,
                  Dst* dst, const int64_t* dst_strides) {
  if (ndim == 0) {
    *dst = static_cast<Dst>(*src);
    return;
  }
  int64_t total = 1;
  for (int d = 0; d < ndim; ++d) total *= shape[d];
  if (total == 0) return;
  const int64_t inner = shape[ndim - 1];
  const int64_t ss = src_strides[ndim - 1], ds = dst_strides[ndim - 1];
  const int64_t rows = total / inner;

  // Each row (all dims but the last) is independent: split rows across threads and
  // recompute the row's start offsets from its linear index.
  parallel_for(rows, total > (1 << 16), [=](int64_t r) {
    int64_t so = 0, dof = 0, rem = r;
    for (int d = ndim - 2; d >= 0; --d) {
      int64_t i = rem % shape[d];
      rem /= shape[d];
      so += i * src_strides[d];
      dof += i * dst_strides[d];
    }
    const Src* s = src + so;
    Dst* o = dst + dof;
    if (ss == 1 && ds == 1) {
      for (int64_t j = 0; j < inner; ++j) o[j] = static_cast<Dst>(s[j]);
    } else {
      for (int64_t j = 0; j < inner; ++j) o[j * ds] = static_cast<Dst>(s[j * ss]);
    }
  });
}

template <class T>
void fill(T* dst, int64_t n, T value) {
  if (n <= (1 << 16)) {  // one thread, no parallel region (see parallel_for)
    for (int64_t i = 0; i < n; ++i) dst[i] = value;
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) dst[i] = value;
}

#define KERNELS_COPY(S, D) \
  template void copy_strided<S, D>(int, const int64_t*, const S*, const int64_t*, D*, const int64_t*);
KERNELS_COPY(float, float)
KERNELS_COPY(float, double)
KERNELS_COPY(double, float)
KERNELS_COPY(double, double)
KERNELS_COPY(int64_t, int64_t)
KERNELS_COPY(int64_t, float)
KERNELS_COPY(int64_t, double)
KERNELS_COPY(float, int64_t)
KERNELS_COPY(double, int64_t)
#undef KERNELS_COPY
template void fill<float>(float*, int64_t, float);
template void fill<double>(double*, int64_t, double);
template void fill<int64_t>(int64_t*, int64_t, int64_t);

}  // namespace kernels::cpu
